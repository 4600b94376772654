// plume/presence/detail/shard.hpp — the state of one tracker shard: this
// replica's entries and log, the other replicas (Remote), the visible index
// with its pending diffs, and the outbox/inbox the TrackerCore drains. Plain
// data; the rules that change it are TrackerCore's (tracker_core.hpp).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "plume/presence/detail/state.hpp"
#include "plume/presence/entry.hpp"
#include "plume/pubsub/pubsub.hpp"

namespace plume::presence::detail {

using TimePoint = std::chrono::steady_clock::time_point;
/// key → that key's presences on one topic, sorted by phx_ref.
using TopicIndex = std::map<std::string, std::vector<EntryPtr>, std::less<>>;

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

/// The PubSub operations the tracker uses, with the adapter type erased so
/// Tracker is one type whatever the adapter.
struct Transport {
    std::string node;
    std::function<void(const std::string&, pubsub::SubscriberPtr)> subscribe;
    std::function<void(const std::string&, const pubsub::Subscriber*)> unsubscribe;
    std::function<void(const pubsub::Subscriber*, pubsub::MessagePtr)> broadcast_from;
    std::function<void(const std::string&, pubsub::MessagePtr)> direct_broadcast;

    template <pubsub::Adapter A>
    static Transport of(pubsub::PubSub<A>& ps) {
        Transport t;
        t.node = std::string(ps.node_name());
        t.subscribe = [&ps](const std::string& topic, pubsub::SubscriberPtr s) {
            ps.subscribe(topic, std::move(s));
        };
        t.unsubscribe = [&ps](const std::string& topic, const pubsub::Subscriber* s) {
            ps.unsubscribe(topic, s);
        };
        t.broadcast_from = [&ps](const pubsub::Subscriber* from, pubsub::MessagePtr m) {
            ps.broadcast_from(from, std::move(m));
        };
        t.direct_broadcast = [&ps](const std::string& node, pubsub::MessagePtr m) {
            ps.direct_broadcast(node, std::move(m));
        };
        return t;
    }
};

/// Another replica as this one knows it.
struct Remote {
    std::uint64_t incarnation = 0;
    ReplicaState state;
    TimePoint last_heard{};
    /// Its entries are in the visible index: it is up and in sync.
    bool visible = false;
    std::optional<TimePoint> transfer_requested;
    /// A whole-state transfer in parts, until its last part is in.
    struct Assembly {
        std::uint64_t version = 0;
        std::uint64_t parts = 0;
        std::uint64_t next = 0;  // the part expected next
        EntryMap entries;
    };
    std::optional<Assembly> assembling;
};

/// Changes to one topic not yet delivered; a join and a leave of the same ref
/// cancel out.
struct Pending {
    EntryMap joins;
    EntryMap leaves;
    TimePoint since{};
};

/// Work to do without locks, in order: deliver a diff or publish a message.
struct Action {
    enum class Kind { diff, broadcast, direct } kind = Kind::diff;
    std::string topic;  // diff: the topic; direct: the node
    std::vector<EntryPtr> joins;
    std::vector<EntryPtr> leaves;
    pubsub::MessagePtr message;
};

struct Shard {
    explicit Shard(std::size_t i) : index(i) {}

    std::size_t index;
    std::string topic;  // replication topic
    std::uint64_t salt = 0;
    pubsub::SubscriberPtr subscriber;

    // Serialises replication work (inbox, heartbeats, down detection) on this
    // shard; held while encoding and decoding, which `mutex` is not.
    std::mutex repl;
    // Guards the state below: unique for changes, shared for reads.
    mutable std::shared_mutex mutex;

    // This replica's own entries and log.
    std::uint64_t version = 0;
    EntryMap own;
    std::unordered_map<OwnerId, std::vector<EntryPtr>> by_owner;
    std::deque<Op> log;  // versions log_first .. version
    std::uint64_t log_first = 1;
    std::uint64_t sent_version = 0;
    std::optional<TimePoint> last_period;
    std::optional<TimePoint> last_sent;

    // Everyone else.
    std::map<std::string, Remote, std::less<>> remotes;
    std::map<std::pair<std::string, std::uint64_t>, TimePoint> tombstones;

    // What reads see: this replica's entries and those of visible remotes.
    std::unordered_map<std::string, TopicIndex, StringHash, std::equal_to<>> topics;
    std::map<std::string, Pending, std::less<>> pending;

    // Actions run in order by one thread at a time, with no lock held.
    std::mutex out_mutex;
    std::condition_variable out_cv;
    std::deque<Action> outbox;
    bool draining = false;
    std::thread::id drainer;

    std::mutex in_mutex;
    std::deque<pubsub::MessagePtr> inbox;
};

inline void insert_sorted(std::vector<EntryPtr>& v, const EntryPtr& e) {
    auto pos = std::lower_bound(v.begin(), v.end(), e->ref,
                                [](const EntryPtr& x, const std::string& r) { return x->ref < r; });
    v.insert(pos, e);
}

}  // namespace plume::presence::detail
