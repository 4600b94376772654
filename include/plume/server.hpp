// plume/server.hpp — Phoenix Channels on the server side in one include:
// Endpoint, Socket, Channel, Router, HTTP routes, tokens.
#pragma once

#include "plume/server/channel.hpp"
#include "plume/server/endpoint.hpp"
#include "plume/server/longpoll.hpp"
#include "plume/server/origin.hpp"
#include "plume/server/route.hpp"
#include "plume/server/session.hpp"
#include "plume/server/socket.hpp"
