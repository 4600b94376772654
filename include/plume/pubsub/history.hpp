// plume/pubsub/history.hpp — recent broadcasts per topic, so a client that
// lost its connection for a moment gets what it missed when it rejoins.
//
// Opt-in per topic (exact names, or prefixes ending in '*'). Each broadcast
// of such a topic gets the topic's next offset (1, 2, ...), written into its
// JSON payload under `offset_key` (and Message::offset), and is kept, the
// last `size` of them per topic. A topic's history also has an epoch, a
// random string fixed when the history of the topic starts, so a client
// never mistakes one history for another. A client rejoins with
// {"offset": N, "epoch": E} in its join params and gets every broadcast after
// N, in order, before any live one — or "recovered": false when E is not the
// epoch or the broadcasts after N are no longer kept.
//
// Where it is kept depends on the PubSub adapter: `History` below keeps it in
// this node's memory (pubsub::Local: a restart is a new epoch); an adapter
// that models `KeepsHistory` keeps it itself (pubsub::Redis: in Redis, shared
// by every node, so a client may rejoin on any node).
//
// `History` assigns and delivers offsets under one lock, so they reach every
// subscriber in offset order. A recovery (read the missed messages) and the
// subscription of the rejoining channel are not atomic: the session
// subscribes first, holds live broadcasts back, and drops those at or below
// the recovery's position (server/session.hpp).
//
//   plume::pubsub::HistoryOptions h;
//   h.topics = {"room:*"};
//   h.events = {"new_msg"};
//   h.size = 200;
//   config.history = h;                     // EndpointConfig
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "plume/pubsub/message.hpp"

namespace plume::pubsub {

struct HistoryOptions {
    /// Topics with history: exact names, or prefixes ending in '*' ("room:*").
    /// Empty: no history.
    std::vector<std::string> topics;
    /// Events kept (e.g. {"new_msg"}, not typing indicators); empty: all.
    std::vector<std::string> events;
    /// Broadcasts kept per topic.
    std::size_t size = 100;
    /// Most topics with history at once; the one broadcast to least recently
    /// is forgotten first (its clients then rejoin with recovered: false).
    std::size_t max_topics = 10'000;
    /// The payload key that carries a broadcast's offset.
    std::string offset_key = "offset";
    /// Kept in Redis (pubsub::Redis): how long a topic's history stays after
    /// its last broadcast or join (a later one starts a new epoch).
    std::chrono::seconds ttl{24 * 3600};

    /// Whether `topic` has history.
    bool enabled(std::string_view topic) const {
        if (size == 0) return false;
        for (const auto& p : topics) {
            if (!p.empty() && p.back() == '*') {
                if (topic.substr(0, p.size() - 1) == std::string_view(p).substr(0, p.size() - 1))
                    return true;
            } else if (topic == p) {
                return true;
            }
        }
        return false;
    }
    bool kept_event(std::string_view event) const {
        if (events.empty()) return true;
        for (const auto& e : events)
            if (e == event) return true;
        return false;
    }
    /// Whether `m` goes into its topic's history: a JSON object payload of a
    /// kept event of a topic with history.
    bool keeps(const Message& m) const {
        return !m.binary && m.payload.is_object() && enabled(m.topic) && kept_event(m.event);
    }
};

/// Where a topic's history is.
struct HistoryPosition {
    std::uint64_t offset = 0;  // of the last broadcast (0: none yet)
    std::string epoch;         // empty: unknown (the store could not be read)
};

/// What a rejoining client missed.
struct HistoryRecovery {
    bool recovered = false;
    std::vector<MessagePtr> missed;  // in offset order (empty unless recovered)
    HistoryPosition position;        // where the topic is now
    std::error_code error;           // why the store could not be read
};

/// What a join asks: {"offset": N, "epoch": E} in its params.
struct HistoryRequest {
    bool asked = false;  // both keys present
    bool valid = false;  // N a non-negative integer and E a string
    std::uint64_t offset = 0;
    std::string epoch;

    static HistoryRequest from(const nlohmann::json& params) {
        HistoryRequest r;
        if (!params.is_object()) return r;
        auto o = params.find("offset");
        auto e = params.find("epoch");
        if (o == params.end() || e == params.end()) return r;
        r.asked = true;
        const bool offset_ok =
            o->is_number_unsigned() || (o->is_number_integer() && o->get<std::int64_t>() >= 0);
        if (!offset_ok || !e->is_string()) return r;
        r.valid = true;
        r.offset = o->get<std::uint64_t>();
        r.epoch = e->get<std::string>();
        return r;
    }
};

/// A PubSub adapter that keeps the history of its topics itself, shared by
/// every node (pubsub::Redis). publish_history() broadcasts a message that
/// `options.keeps()`, stamped with its offset; this node's subscribers get
/// it through `local` (in offset order with the other nodes' broadcasts;
/// null: no local delivery needed). recover_history() reads what a join
/// asked for and runs `done` (any thread).
template <class A>
concept KeepsHistory = requires(A& a, const MessagePtr& m, const HistoryOptions& options,
                                std::function<void(MessagePtr)> local, std::string_view topic,
                                const HistoryRequest& request,
                                std::function<void(HistoryRecovery)> done) {
    a.publish_history(m, options, local);
    a.recover_history(topic, request, options, done);
};

namespace detail {

/// A fresh epoch: 12 characters of [0-9a-z].
template <class Rng>
std::string new_epoch(Rng& rng) {
    static constexpr char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    std::string e(12, '0');
    std::uniform_int_distribution<int> d(0, 35);
    for (auto& c : e)
        c = digits[d(rng)];
    return e;
}

/// `m` with its offset: a copy whose payload carries it under `key`.
inline MessagePtr stamped(const Message& m, std::uint64_t offset, const std::string& key) {
    auto s = std::make_shared<Message>();
    s->topic = m.topic;
    s->event = m.event;
    s->payload = m.payload;
    s->payload[key] = offset;
    s->offset = offset;
    s->priority = m.priority;
    s->coalesce_key = m.coalesce_key;
    return s;
}

}  // namespace detail

class History {
  public:
    using Position = HistoryPosition;
    using Recovery = HistoryRecovery;

    explicit History(HistoryOptions options = {}) : options_(std::move(options)) {}

    const HistoryOptions& options() const noexcept { return options_; }
    bool enabled(std::string_view topic) const { return options_.enabled(topic); }
    bool kept_event(std::string_view event) const { return options_.kept_event(event); }

    /// Stamps `m` (when options().keeps(m)) with the topic's next offset,
    /// keeps it, and runs `publish(stamped)` before any other broadcast of
    /// this History may run. Other messages are published as they are.
    template <class Publish>
    void record(const MessagePtr& m, Publish&& publish) {
        if (!options_.keeps(*m)) return publish(m);
        std::lock_guard lock(mutex_);
        auto& t = topic(m->topic);
        auto s = detail::stamped(*m, ++t.last, options_.offset_key);
        t.kept.push_back(s);
        if (t.kept.size() > options_.size) t.kept.pop_front();
        t.used = ++clock_;
        publish(s);
    }

    /// For a client joining `name` with `params` (its join payload): what it
    /// missed, if it asked, and where the topic is; `then(recovery)` runs
    /// at once, on this thread.
    template <class Then>
    void recover(const std::string& name, const nlohmann::json& params, Then&& then) {
        then(read(name, HistoryRequest::from(params)));
    }

    HistoryRecovery read(const std::string& name, const HistoryRequest& request) {
        std::lock_guard lock(mutex_);
        auto& t = topic(name);
        HistoryRecovery r;
        r.position = {t.last, t.epoch};
        if (request.valid && request.epoch == t.epoch) {
            const auto from = request.offset;
            const std::uint64_t oldest = t.last - t.kept.size() + 1;  // first kept offset
            if (from <= t.last && from + 1 >= oldest) {
                r.recovered = true;
                for (std::uint64_t off = from + 1; off <= t.last; ++off)
                    r.missed.push_back(t.kept[static_cast<std::size_t>(off - oldest)]);
            }
        }
        return r;
    }

    /// Whether the join payload asks for a recovery.
    static bool asks_recovery(const nlohmann::json& params) {
        return HistoryRequest::from(params).asked;
    }

    std::size_t topic_count() const {
        std::lock_guard lock(mutex_);
        return topics_.size();
    }

  private:
    struct Topic {
        std::string epoch;
        std::uint64_t last = 0;
        std::deque<MessagePtr> kept;
        std::uint64_t used = 0;
    };

    // The topic's history, made on first use; the least recently used one
    // goes when there are too many. Locked.
    Topic& topic(const std::string& name) {
        auto it = topics_.find(name);
        if (it != topics_.end()) return it->second;
        if (topics_.size() >= std::max<std::size_t>(1, options_.max_topics)) {
            auto oldest = topics_.begin();
            for (auto i = topics_.begin(); i != topics_.end(); ++i)
                if (i->second.used < oldest->second.used) oldest = i;
            topics_.erase(oldest);
        }
        Topic t;
        t.epoch = detail::new_epoch(rng_);
        t.used = ++clock_;
        return topics_.emplace(name, std::move(t)).first->second;
    }

    HistoryOptions options_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Topic> topics_;
    std::uint64_t clock_ = 0;
    std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace plume::pubsub
