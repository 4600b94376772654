// plume/client/options.hpp — how a client Socket connects, retries and
// buffers, with phoenix.js 1.8's defaults; and the small value types its
// callbacks receive.
//
//   plume::client::SocketOptions opt;
//   opt.url = "ws://127.0.0.1:4000/socket";        // "/websocket" is appended, as phoenix.js does
//   opt.params = {{"user_id", "alice"}};            // query parameters, then vsn=2.0.0
//   opt.auth_token = "SFMyNTY...";                   // Sec-WebSocket-Protocol, not the URL
//   opt.reconnect_after = [](unsigned tries) { return std::chrono::milliseconds(100 * tries); };
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "plume/transport/options.hpp"
#include "plume/transport/tls.hpp"
#include "plume/wire/message.hpp"

namespace plume::client {

/// A backoff schedule: the delay before attempt number `tries` (1, 2, ...).
using Backoff = std::function<std::chrono::milliseconds(unsigned tries)>;

/// phoenix.js's reconnectAfterMs: 10, 50, 100, 150, 200, 250, 500, 1000,
/// 2000 ms, then 5 s.
inline std::chrono::milliseconds phoenix_reconnect_after(unsigned tries) {
    static constexpr int steps[] = {10, 50, 100, 150, 200, 250, 500, 1000, 2000};
    if (tries >= 1 && tries <= std::size(steps)) return std::chrono::milliseconds(steps[tries - 1]);
    return std::chrono::milliseconds(5000);
}

/// phoenix.js's rejoinAfterMs: 1, 2, 5 s, then 10 s.
inline std::chrono::milliseconds phoenix_rejoin_after(unsigned tries) {
    static constexpr int steps[] = {1000, 2000, 5000};
    if (tries >= 1 && tries <= std::size(steps)) return std::chrono::milliseconds(steps[tries - 1]);
    return std::chrono::milliseconds(10000);
}

/// The WebSocket limits a client uses by default: the transport's, except
/// that nothing closes an idle connection (the heartbeat detects dead ones)
/// and messages may be 16 MiB (a presence_state of a big room is large).
inline transport::Options default_client_transport() {
    transport::Options o;
    o.idle_timeout = std::chrono::milliseconds(0);
    o.max_message_size = 16 << 20;
    return o;
}

struct SocketOptions {
    /// The socket's mount point, "ws://host:port/socket". The client connects
    /// to "<url>/websocket?<params>&vsn=<vsn>" as phoenix.js does (a query
    /// already in `url` is kept, after the path).
    std::string url{};
    /// Connect params, sent as query parameters (nested objects as a[b]=c).
    nlohmann::json params = nlohmann::json::object();
    /// Called before every connection attempt instead of `params` when set
    /// (phoenix.js accepts a function too), e.g. to send a fresh token.
    std::function<nlohmann::json()> params_provider{};
    /// phoenix.js's authToken: sent as Sec-WebSocket-Protocol
    /// "phoenix, base64url.bearer.phx.<standard base64 without '='>".
    std::optional<std::string> auth_token{};
    /// Called before every attempt instead of `auth_token` when set.
    std::function<std::string()> auth_token_provider{};
    /// Serializer version: "2.0.0" (phoenix.js's) or "1.0.0".
    std::string vsn = "2.0.0";
    /// wss:// URLs: how the server's certificate is checked (the system CA
    /// store and the URL's host by default; a CA file or PEM text; or no
    /// check at all, for tests only).
    transport::ClientTlsOptions tls{};
    /// Or a TLS context of the host's own (wins over `tls`).
    std::shared_ptr<asio::ssl::context> tls_context{};

    /// Delay before reconnect attempt `tries` after the connection was lost.
    Backoff reconnect_after = phoenix_reconnect_after;
    /// Each reconnect delay is multiplied by a random factor in
    /// [1 - reconnect_jitter, 1]; 0 (the default) keeps phoenix.js's exact
    /// steps. 0.5 spreads a crowd of clients after a server restart.
    double reconnect_jitter = 0.0;
    /// Delay before rejoin attempt `tries` of a channel that errored.
    Backoff rejoin_after = phoenix_rejoin_after;

    /// A heartbeat goes out this long after the connection opened and after
    /// each heartbeat reply. Zero disables heartbeats.
    std::chrono::milliseconds heartbeat_interval{30'000};
    /// A heartbeat without a reply for this long closes the connection with
    /// 1000 "heartbeat timeout" and reconnects (phoenix.js uses the interval).
    std::chrono::milliseconds heartbeat_timeout{30'000};
    /// Default join and push timeout (phoenix.js's `timeout`).
    std::chrono::milliseconds timeout{10'000};
    /// Bound on DNS + TCP connect + WebSocket handshake of one attempt.
    std::chrono::milliseconds connect_timeout{10'000};

    /// Pushes waiting to be sent (made while offline or before their
    /// channel joined), across all channels of the socket. When the bound is
    /// reached a new push is refused: it receives "error" with
    /// {"reason":"buffer_full"} at once and is never sent, and on_error gets
    /// error::send_buffer_full. Pushes already accepted are kept, in order.
    /// Zero means unbounded (phoenix.js's behaviour).
    std::size_t max_buffered_pushes = 10'000;

    /// WebSocket limits (message size, send queue, close timeout, deflate).
    transport::Options websocket = default_client_transport();
    /// Extra HTTP headers for the upgrade request (e.g. Origin, User-Agent).
    std::vector<std::pair<std::string, std::string>> headers{};
    /// Source IP address to connect from ("127.0.0.2"); empty: the OS
    /// chooses. One process holding more connections to one server than an
    /// address has ephemeral ports spreads them over several.
    std::string local_address{};
};

/// Where a channel is in its life, as phoenix.js names it.
enum class ChannelState { closed, errored, joined, joining, leaving };

inline const char* to_string(ChannelState s) noexcept {
    switch (s) {
        case ChannelState::closed:
            return "closed";
        case ChannelState::errored:
            return "errored";
        case ChannelState::joined:
            return "joined";
        case ChannelState::joining:
            return "joining";
        case ChannelState::leaving:
            return "leaving";
    }
    return "?";
}

/// The socket's connection: connecting (resolving, TCP, handshake), open or closed.
enum class ConnectionState { connecting, open, closed };

/// A message delivered to a channel's on(event) callbacks.
struct Event {
    std::string topic;
    std::string event;
    /// The payload; for "phx_reply" the reply's response.
    wire::Payload payload;
    std::optional<std::string> ref;
    std::optional<std::string> join_ref;
    /// "phx_reply" only: the reply's status.
    std::string status;
};

/// What a push received: the server's reply, or a local "timeout".
struct Reply {
    std::string status;
    wire::Payload response;
};

}  // namespace plume::client
