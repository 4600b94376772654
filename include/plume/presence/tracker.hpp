// plume/presence/tracker.hpp — Phoenix.Tracker for C++: who is present on
// which topic, replicated to every node through the configured PubSub.
//
//   plume::pubsub::PubSub<> pubsub;
//   plume::presence::TrackerOptions opts;
//   opts.on_diff = [](const std::string& topic, const auto& joins, const auto& leaves) { ... };
//   plume::presence::Tracker tracker(pubsub, opts);
//   tracker.start(io.get_executor());                    // heartbeats, down detection, diffs
//   auto ref = tracker.track(channel_id, "room:lobby", "42", {{"online_at", "1700000000"}});
//   tracker.list("room:lobby");                          // this node's and every up node's
//   tracker.untrack_all(channel_id);                     // the channel ended
//
// Every Tracker is a replica: a node name (the PubSub's) plus an incarnation,
// so a restarted node is a new replica that supersedes the old one. A replica
// is the only writer of its own entries and numbers its operations, so the
// others keep a copy of it per version (detail/state.hpp) and merging is
// "highest version wins": commutative, associative, idempotent.
//
// Replication rides on PubSub, one topic per shard ("phx_tracker:<tracker
// name>:<shard>"). Every broadcast_period a shard broadcasts a heartbeat with
// the operations since its previous one; a receiver that finds a gap asks the
// sender for a transfer (a delta from its recent log, else its whole state,
// in parts of transfer_chunk_entries that the receiver merges once all came).
// A replica silent for down_period is down (its presences leave, but are kept),
// after permdown_period it is forgotten; when a down replica is heard again its
// presences join again. stop() tells the others to forget this one at once.
//
// Topics are spread over `shards` independent shards (each with its own lock,
// state and replication topic) so one busy topic does not serialise the
// others; the shard count must be the same on every node. Reads take a shared
// lock and copy pointers; replication work never holds the lock while it
// encodes or decodes. Every change to what a topic shows produces a diff for
// the on_diff callback, immediately or coalesced over diff_window. Callbacks
// run without any tracker lock held, one at a time per shard, in order.
//
// Time is read from an injectable clock and advanced by tick(): start() calls
// it from a timer, tests call it by hand.
#pragma once

#include <asio.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "plume/detail/utf8.hpp"
#include "plume/presence/detail/replication.hpp"
#include "plume/presence/detail/shard.hpp"
#include "plume/presence/detail/state.hpp"
#include "plume/presence/detail/tracker_core.hpp"
#include "plume/presence/entry.hpp"
#include "plume/presence/error.hpp"
#include "plume/presence/tracker_options.hpp"
#include "plume/pubsub/pubsub.hpp"
#include "plume/result.hpp"

namespace plume::presence {

/// A replica of the presence state. Thread-safe; not copyable or movable.
/// The PubSub (and the executor given to start()) must outlive it.
class Tracker {
  public:
    template <pubsub::Adapter A>
    explicit Tracker(pubsub::PubSub<A>& pubsub, TrackerOptions options = {})
        : core_(std::make_shared<detail::TrackerCore>(detail::Transport::of(pubsub),
                                                      std::move(options))) {
        core_->open();
    }
    /// stop(): with permdown_on_shutdown, peers drop this replica at once.
    ~Tracker() { core_->stop(core_->options().permdown_on_shutdown); }
    Tracker(const Tracker&) = delete;
    Tracker& operator=(const Tracker&) = delete;

    /// Adds a presence of `key` on `topic`, owned by `owner`; returns its phx_ref.
    /// Errors: invalid_topic, invalid_key, invalid_meta, meta_too_large,
    /// too_many_metas, already_tracked (this owner already tracks that key there).
    Result<std::string> track(OwnerId owner, std::string_view topic, std::string_view key,
                              nlohmann::json meta) {
        return core_->track(owner, topic, key, std::move(meta));
    }

    /// Replaces the meta: the presence gets a new phx_ref and "phx_ref_prev" =
    /// the old one; the diff shows the old meta leaving and the new one joining.
    Result<std::string> update(OwnerId owner, std::string_view topic, std::string_view key,
                               nlohmann::json meta) {
        return core_->update(owner, topic, key, std::move(meta));
    }

    /// Like update(), with the new meta computed from the old one (which
    /// includes phx_ref). `fn` runs without any lock held, and again if the
    /// presence changed while it ran.
    template <class F>
    requires std::is_invocable_r_v<nlohmann::json, F&, const nlohmann::json&> Result<std::string>
    update(OwnerId owner, std::string_view topic, std::string_view key, F&& fn) {
        return core_->update_with(owner, topic, key, std::forward<F>(fn));
    }

    /// Removes one presence; not_tracked (and no change) if there is none.
    std::error_code untrack(OwnerId owner, std::string_view topic, std::string_view key) {
        return core_->untrack(owner, topic, key);
    }

    /// Removes everything `owner` tracks on any topic (a channel ended).
    /// Returns how many presences were removed.
    std::size_t untrack_all(OwnerId owner) { return core_->untrack_all(owner); }

    /// The presences on `topic` of this node and of every node that is up,
    /// sorted by key, then phx_ref.
    std::vector<EntryPtr> list(std::string_view topic) const { return core_->list(topic); }
    std::vector<EntryPtr> get_by_key(std::string_view topic, std::string_view key) const {
        return core_->get_by_key(topic, key);
    }
    /// Topics with at least one visible presence.
    std::vector<std::string> topics() const { return core_->topics(); }

    /// Does what is due at the clock's current time. start() calls it from a timer.
    void tick() { core_->tick(); }
    /// Processes received replication messages only.
    void poll() { core_->poll(); }
    /// Delivers coalesced diffs now instead of at the end of their window.
    void flush() { core_->flush(); }
    /// Runs tick() every broadcast_period (or diff_window if shorter) and
    /// processes replication messages as they arrive, on a strand of `ex`.
    void start(const asio::any_io_executor& ex) { core_->start(ex); }
    /// Leaves the cluster: unsubscribes, optionally broadcasts permdown, and
    /// returns once no callback is running on another thread.
    void stop() { core_->stop(core_->options().permdown_on_shutdown); }
    void stop(bool permdown) { core_->stop(permdown); }
    bool stopped() const noexcept { return core_->stopped(); }

    const detail::ReplicaId& replica() const noexcept { return core_->self(); }
    const TrackerOptions& options() const noexcept { return core_->options(); }
    std::size_t shard_count() const noexcept { return core_->shard_count(); }
    std::size_t shard_of(std::string_view topic) const noexcept { return core_->shard_of(topic); }
    /// Other replicas as shard `shard` sees them.
    std::vector<ReplicaInfo> replicas(std::size_t shard = 0) const {
        return core_->replicas(shard);
    }
    /// Exceptions thrown by on_diff (or by the adapter) caught so far.
    std::size_t handler_errors() const noexcept { return core_->handler_errors(); }

  private:
    std::shared_ptr<detail::TrackerCore> core_;
};

}  // namespace plume::presence
