// plume/transport.hpp — the WebSocket transport layer in one include:
// framing, handshake, permessage-deflate, Connection and Server, over TCP or
// TLS (stream.hpp, tls.hpp).
#pragma once

#include "plume/transport/client.hpp"
#include "plume/transport/close_code.hpp"
#include "plume/transport/deflate.hpp"
#include "plume/transport/error.hpp"
#include "plume/transport/frame.hpp"
#include "plume/transport/handshake.hpp"
#include "plume/transport/http.hpp"
#include "plume/transport/http_exchange.hpp"
#include "plume/transport/options.hpp"
#include "plume/transport/parser.hpp"
#include "plume/transport/server.hpp"
#include "plume/transport/stream.hpp"
#include "plume/transport/tls.hpp"
#include "plume/transport/utf8.hpp"
#include "plume/transport/websocket.hpp"
