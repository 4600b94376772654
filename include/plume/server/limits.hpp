// plume/server/limits.hpp — what one Phoenix socket may send, how much and
// how often (EndpointConfig::limits).
//
//   plume::server::EndpointConfig config;
//   config.limits.messages = {.per_second = 50, .burst = 100};   // per socket
//   config.limits.connections_per_address = {};                   // off (behind a proxy)
//
// The defaults never touch normal phoenix.js use (a heartbeat every 30 s, a
// few pushes a second, a burst of joins at connect) and stop a client that
// floods. Answers, all of them Phoenix-shaped:
//   - a message over the rate: `phx_reply` {"status":"error","response":
//     {"reason":"rate_limited"}} when it has a ref, dropped when it has none;
//   - more than `close_after_refused` refused within `refused_window`: close
//     1008 "rate limited";
//   - a join over the join rate: the same error reply;
//   - a topic, event or join over its size: `phx_reply` error with reason
//     "topic too long", "event too long" or "join payload too large";
//   - a new WebSocket from an address over its connection rate: HTTP 429
//     with Retry-After.
// A channel may add limits of its own per event (Channel::limit_event).
#pragma once

#include <chrono>
#include <cstddef>

#include "plume/server/rate_limit.hpp"

namespace plume::server {

struct SocketLimits {
    /// Longest topic accepted, in bytes (Phoenix apps never come close).
    std::size_t max_topic_bytes = 256;
    /// Longest event name accepted, in bytes.
    std::size_t max_event_bytes = 256;
    /// Largest phx_join frame accepted, in bytes (the join params plus the
    /// envelope); other messages are bounded by websocket.max_message_size.
    std::size_t max_join_bytes = 64 * 1024;
    /// Every message a socket sends (pushes, joins, leaves, heartbeats).
    RateLimit messages{.per_second = 100, .burst = 200};
    /// Joins per socket, on top of `messages`.
    RateLimit joins{.per_second = 20, .burst = 100};
    /// Sustained abuse: this many refused messages within `refused_window`
    /// close the socket with 1008 "rate limited" (0: never close).
    std::size_t close_after_refused = 1000;
    std::chrono::milliseconds refused_window{10'000};
    /// New WebSocket connections per client address (IPv4 address or IPv6
    /// /64). Behind a reverse proxy every client has the proxy's address:
    /// turn this off there ({}), and limit at the proxy.
    RateLimit connections_per_address{.per_second = 100, .burst = 500};
};

}  // namespace plume::server
