// plume/transport/options.hpp — limits and timeouts of a WebSocket connection.
//
// Defaults suit a Phoenix-style server: 1 MiB messages, a 60 s idle timeout
// (phoenix.js heartbeats every 30 s), a 4 MiB send queue per connection.
//
//   plume::transport::Options opt;
//   opt.max_message_size = 16 << 20;
//   opt.deflate.enabled = true;
#pragma once

#include <chrono>
#include <cstddef>

#include "plume/transport/deflate.hpp"

namespace plume::transport {

struct Options {
    /// Largest message accepted (after decompression). Bigger → close 1009.
    std::size_t max_message_size = 1 << 20;
    /// Largest HTTP request head accepted. Bigger → HTTP 431.
    std::size_t max_header_size = 16 * 1024;
    /// Bytes that may wait in one connection's send queue. One message of
    /// any size is always accepted into an empty queue; beyond that, a send
    /// that would exceed the bound drops the queued data and closes the
    /// connection with 1008 "send queue overflow" (the slow-reader policy).
    /// Control frames (pong, close) are exempt and jump ahead of data; at
    /// most one pong waits at a time (a newer ping's pong replaces it).
    std::size_t max_send_queue = 4 << 20;
    /// Priority lanes (priority.hpp) under pressure: once the send queue
    /// holds this many bytes, low-priority frames are dropped (counted in
    /// LaneStats) instead of queued, and those waiting are dropped when a
    /// frame of a higher lane needs room. Normal and high frames wait up to
    /// max_send_queue; a critical one may go a quarter beyond it, so it is
    /// not the frame that closes the connection. 0: half of max_send_queue.
    std::size_t low_lane_limit = 0;
    /// Low-priority frames are held up to this long and leave in one write
    /// (with the next write of another lane, if one comes first). 0: they
    /// leave at once, like normal ones (coalescing by key still applies to
    /// frames waiting behind a write in flight).
    std::chrono::milliseconds low_lane_window{100};
    /// The most bytes the kernel may hold unsent for a connection
    /// (TCP_NOTSENT_LOWAT; where the platform lacks it, ignored). 0 keeps
    /// the system's setting: on Linux no limit, so a slow reader's backlog
    /// first fills the kernel's send buffer (autotuned up to tcp_wmem's
    /// maximum, 4 MiB by default) and the send queue, where the lanes apply,
    /// sees it only then — until that buffer is full, critical frames wait
    /// behind it and no low frame is dropped. A few KiB to a few tens of KiB
    /// keep the backlog in the send queue, at the price of more, smaller
    /// writes to a connection that is behind. Connections that use the lanes
    /// get behind_write_bytes without asking.
    std::size_t tcp_notsent_lowat = 0;
    /// Slow readers and the lanes. Once a connection uses the lanes (queues
    /// a critical, high or low frame), the kernel may hold at most this many
    /// bytes of it unsent (TCP_NOTSENT_LOWAT, unless tcp_notsent_lowat is
    /// smaller), so a backlog waits in the send queue, where the lanes order
    /// it. When a write then finds its socket full, the connection is
    /// "behind": each write takes at most this many bytes, highest lane
    /// first, so a critical frame goes with the next write; and its low
    /// frames are paced. At the end of each low_lane_window they may go only
    /// if the kernel has sent everything and the peer's receive window is
    /// (nearly) as open as it gets: then the window's allowance is one frame
    /// more than the last clear window's (at most 64), else none and half as
    /// many next time. A quarter of the allowance leaves at once, the rest
    /// one frame per write of the other lanes (the frames that do not go
    /// coalesce, or are dropped at low_lane_limit). So the low lane fills
    /// the capacity the reader has to spare instead of a backlog in front of
    /// the next critical frame. At a clear window's end with no more than
    /// this many bytes queued, the connection has caught up: not behind.
    /// 0, or a low_lane_window of 0: a connection is never behind (a write
    /// takes everything queued). Linux's TCP_INFO tells whether the peer
    /// drained; elsewhere each window is taken as clear.
    std::size_t behind_write_bytes = 2048;
    /// Fairness: the most messages (control frames included) one connection
    /// handles per turn of its io thread. A turn that reaches it keeps the
    /// unparsed bytes (the only time a connection copies its input) and goes
    /// on in a fresh handler, posted behind the other connections' work; the
    /// socket is not read again until those bytes are handled, so a peer that
    /// floods is throttled by TCP flow control. Zero: no limit.
    std::size_t max_messages_per_read_turn = 128;
    /// Fairness for fan-out: the most broadcast bytes (frames given to
    /// post_send) an execution context writes per pass through its handler
    /// queue; each connection's drain also counts 1 KiB for its system call.
    /// A fan-out bigger than this is written a budget at a time, in order, so
    /// other connections' reads, timers and replies run in between instead of
    /// waiting for the whole fan-out (16 MiB: about 10 ms of writing on a
    /// 2-core VM; a 64-byte broadcast to 10,000 sockets fits in one budget).
    /// Zero: no limit.
    std::size_t max_broadcast_bytes_per_turn = std::size_t{16} << 20;
    /// Time allowed for a complete upgrade request after accept.
    std::chrono::milliseconds handshake_timeout{10'000};
    /// Plain HTTP requests (routes, files, long-poll) share a connection
    /// (HTTP/1.1 keep-alive): it waits this long for the next request, then
    /// closes. The time to send one request is bounded by it too.
    std::chrono::milliseconds keep_alive_timeout{15'000};
    /// Requests answered on one connection; the last says "Connection: close".
    std::size_t max_requests_per_connection = 1000;
    /// Largest request body read (Content-Length). Bigger → HTTP 413.
    std::size_t max_request_body = 1 << 20;
    /// An open connection that receives nothing for this long is closed with
    /// 1001 "idle timeout". Zero disables it.
    std::chrono::milliseconds idle_timeout{60'000};
    /// Time allowed for the closing handshake before the TCP connection is cut.
    std::chrono::milliseconds close_timeout{5'000};
    /// permessage-deflate (RFC 7692); off unless enabled.
    DeflateOptions deflate;
};

}  // namespace plume::transport
