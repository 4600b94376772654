// Test support: what a hand-written WebSocket client sends to open a
// connection, for tests that drive the server byte by byte.
#pragma once

#include <string_view>

namespace plume::test {

/// An upgrade request with RFC 6455's sample key, for the path "/".
inline constexpr std::string_view upgrade_request =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

}  // namespace plume::test
