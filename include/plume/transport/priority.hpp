// plume/transport/priority.hpp — event priority lanes of a connection's send
// queue.
//
// Every data frame a connection sends goes in one of four lanes; frames
// waiting for the socket leave in lane order, and in arrival order within a
// lane (so Phoenix's per-topic ordering holds for events of one priority):
//
//   critical  jumps ahead of everything queued, with the control frames;
//             never dropped while the connection stays open.
//   high      before normal and low.
//   normal    the default; what every frame was before lanes.
//   low       batched: held up to Options::low_lane_window and sent with the
//             next write; a frame with a coalesce key replaces the waiting
//             low frame with the same key; the first to be dropped (counted)
//             when the queue fills (Options::low_lane_limit).
//
// Lanes are server-side only: the wire format does not change.
//
//   conn.send(frame, plume::transport::Priority::low, plume::transport::coalesce_key("typing:42"));
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace plume::transport {

enum class Priority : std::uint8_t { critical, high, normal, low };

inline constexpr std::string_view to_string(Priority p) noexcept {
    switch (p) {
        case Priority::critical:
            return "critical";
        case Priority::high:
            return "high";
        case Priority::normal:
            return "normal";
        case Priority::low:
            return "low";
    }
    return "normal";
}

/// Names the state a low-priority frame carries ("typing:<user>"): a newer
/// frame with an equal key replaces the one still waiting. Shared, so one
/// broadcast's key serves every connection.
using CoalesceKey = std::shared_ptr<const std::string>;

inline CoalesceKey coalesce_key(std::string key) {
    return std::make_shared<const std::string>(std::move(key));
}

/// What a connection's lanes did, counted since it opened.
struct LaneStats {
    std::uint64_t low_dropped = 0;    // low frames dropped to make room, or refused
    std::uint64_t low_coalesced = 0;  // low frames replaced by a newer one of the same key
    std::uint64_t low_sent = 0;       // low frames written
    std::uint64_t low_batches = 0;    // writes that carried low frames
    std::uint64_t fell_behind = 0;    // times the reader fell behind (Options::behind_write_bytes)
    // After the queue overflowed (closed with 1008): the lane of the frame
    // that did not fit (critical, high or normal; low frames are dropped).
    Priority overflow_lane = Priority::normal;
};

}  // namespace plume::transport
