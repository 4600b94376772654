// plume/wire.hpp — layer 1: the Phoenix Channels protocol as pure values.
//
// Messages, replies, broadcasts and the control events (message.hpp), refs
// that keep the JSON kind the client gave them (ref.hpp), the
// Serializer concept and frames (serializer.hpp), the V1 and V2 serializers
// (v1_json.hpp, v2_json.hpp, including V2 binary frames), serializer choice by
// vsn (vsn.hpp) and the error codes they report (error.hpp). No I/O.
//
//   #include <plume/wire.hpp>
//   auto msg = plume::wire::V2Json::decode(plume::wire::FrameView::text(text));
//   if (msg && plume::wire::is_heartbeat(*msg))
//       send(*plume::wire::V2Json::encode(plume::wire::heartbeat_reply(*msg)));
#pragma once

#include "plume/result.hpp"
#include "plume/wire/error.hpp"
#include "plume/wire/message.hpp"
#include "plume/wire/ref.hpp"
#include "plume/wire/serializer.hpp"
#include "plume/wire/v1_json.hpp"
#include "plume/wire/v2_json.hpp"
#include "plume/wire/vsn.hpp"
