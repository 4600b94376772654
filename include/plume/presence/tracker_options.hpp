// plume/presence/tracker_options.hpp — how a Tracker is configured
// (TrackerOptions, the on_diff callback) and what it reports of the other
// replicas (ReplicaInfo). See tracker.hpp.
//
//   plume::presence::TrackerOptions opts;
//   opts.on_diff = [](const std::string& topic, const auto& joins, const auto& leaves) { ... };
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "plume/presence/entry.hpp"

namespace plume::presence {

/// Called with the presences that appeared on (joins) and disappeared from
/// (leaves) a topic; each list sorted by key, then phx_ref.
using DiffHandler = std::function<void(const std::string& topic, const std::vector<EntryPtr>& joins,
                                       const std::vector<EntryPtr>& leaves)>;

struct TrackerOptions {
    /// Replica name; empty means the PubSub's node name. Unique per node.
    std::string name;
    /// Tells apart several trackers sharing one PubSub (part of the topics).
    std::string tracker_name = "presence";
    /// 0 means nanoseconds since the epoch at start, so a restart under the
    /// same name gets a higher one. Set it only to something that grows too.
    std::uint64_t incarnation = 0;
    /// Must be the same on every node.
    std::size_t shards = 8;
    std::chrono::milliseconds broadcast_period{1500};
    /// A shard with nothing to send still heartbeats after this many periods.
    unsigned max_silent_periods = 10;
    /// 0 means broadcast_period * max_silent_periods * 2 (Phoenix's 30 s).
    std::chrono::milliseconds down_period{0};
    std::chrono::milliseconds permdown_period{1'200'000};
    /// Changes to one topic within this window become one diff, delivered by
    /// the tick after the window has passed (start()'s timer ticks every
    /// window, so a change reaches subscribers 1-2 windows later). A join storm
    /// of N users then costs one diff per window to each subscriber instead of
    /// N (N² frames in all). 0 = one diff per operation, delivered before the
    /// operation returns (Phoenix's behaviour; tests that step the clock by hand
    /// use it).
    std::chrono::milliseconds diff_window{50};
    /// Bound on the serialized meta (without phx_ref).
    std::size_t max_meta_bytes = 4096;
    /// Bound on the metas this node holds under one (topic, key).
    std::size_t max_metas_per_key = 64;
    /// Operations kept to answer transfer requests with a delta.
    std::size_t max_delta_ops = 10'000;
    /// A whole-state transfer goes out in messages of at most this many
    /// entries (the receiver merges it once every part is in), so no single
    /// PubSub message grows with the shard: over Redis each stays far below
    /// its pub/sub buffer limits. 0: one message.
    std::size_t transfer_chunk_entries = 1'000;
    /// stop() and the destructor broadcast "permdown" so peers drop this
    /// replica's presences at once instead of after down_period.
    bool permdown_on_shutdown = true;
    /// Time source; empty means std::chrono::steady_clock::now.
    std::function<std::chrono::steady_clock::time_point()> clock;
    DiffHandler on_diff;
};

/// What this replica knows of another (for monitoring and tests).
struct ReplicaInfo {
    std::string name;
    std::uint64_t incarnation = 0;
    bool up = false;
    std::uint64_t version = 0;
    std::size_t entries = 0;
};

}  // namespace plume::presence
