// plume/client.hpp — the client layer: phoenix.js's Socket, Channel, Push and
// Presence in C++ (see each header for its contract).
//
//   #include <plume/client.hpp>
//
//   asio::io_context io;
//   plume::client::Socket socket(io, {.url = "ws://127.0.0.1:4000/socket",
//                                     .params = {{"user_id", "alice"}}});
//   auto room = socket.channel("room:lobby");
//   room.on("new_msg", [](const nlohmann::json& m) { std::cout << m["body"] << "\n"; });
//   room.join().receive("ok", [&] { room.push("new_msg", {{"body", "hi"}}); });
//   socket.connect();
//   io.run();
#pragma once

#include "plume/client/channel.hpp"
#include "plume/client/error.hpp"
#include "plume/client/options.hpp"
#include "plume/client/presence.hpp"
#include "plume/client/push.hpp"
#include "plume/client/socket.hpp"
