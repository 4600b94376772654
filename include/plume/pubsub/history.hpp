// plume/pubsub/history.hpp — recent broadcasts per topic, so a client that
// lost its connection for a moment gets what it missed when it rejoins.
//
// Opt-in per topic (exact names, or prefixes ending in '*'). Each broadcast
// of such a topic gets the topic's next offset (1, 2, ...), written into its
// JSON payload under `offset_key`, and is kept, the last `size` of them per
// topic. A topic's history also has an epoch, a random string fixed when the
// history of the topic starts (on this node: a restart is a new epoch), so a
// client never mistakes one history for another. A client rejoins with
// {"offset": N, "epoch": E} in its join params and gets every broadcast after
// N, in order, before any live one — or "recovered": false when E is not the
// epoch or the broadcasts after N are no longer kept.
//
// Offsets are assigned and delivered under one lock per History, so they
// reach every subscriber in offset order, and a recovery (read the missed
// messages, then subscribe) cannot miss or repeat a broadcast made meanwhile.
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
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
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
};

class History {
  public:
    struct Position {
        std::uint64_t offset = 0;  // of the last broadcast (0: none yet)
        std::string epoch;
    };
    /// What a rejoining client missed.
    struct Recovery {
        bool recovered = false;
        std::vector<MessagePtr> missed;  // in offset order (empty unless recovered)
        Position position;               // where the topic is now
    };

    explicit History(HistoryOptions options = {}) : options_(std::move(options)) {}

    const HistoryOptions& options() const noexcept { return options_; }

    bool enabled(std::string_view topic) const {
        if (options_.size == 0) return false;
        for (const auto& p : options_.topics) {
            if (!p.empty() && p.back() == '*') {
                if (topic.substr(0, p.size() - 1) == std::string_view(p).substr(0, p.size() - 1))
                    return true;
            } else if (topic == p) {
                return true;
            }
        }
        return false;
    }

    /// Stamps `m` (a JSON object payload of a topic with history) with the
    /// topic's next offset, keeps it, and runs `publish(stamped)` before any
    /// other broadcast or recovery of this History may run. Other messages
    /// (binary, non-object payloads, topics without history) are published
    /// as they are.
    template <class Publish>
    void record(const MessagePtr& m, Publish&& publish) {
        if (m->binary || !m->payload.is_object() || !enabled(m->topic) || !kept_event(m->event))
            return publish(m);
        std::lock_guard lock(mutex_);
        auto& t = topic(m->topic);
        auto stamped = std::make_shared<Message>();
        stamped->topic = m->topic;
        stamped->event = m->event;
        stamped->payload = m->payload;
        stamped->payload[options_.offset_key] = ++t.last;
        t.kept.push_back(stamped);
        if (t.kept.size() > options_.size) t.kept.pop_front();
        t.used = ++clock_;
        publish(MessagePtr(stamped));
    }

    /// For a client joining `topic` with `params` (its join payload): what it
    /// missed, if it asked (an "offset" and an "epoch" in params), and where
    /// the topic is. `then(recovery)` runs under the lock: it sends the
    /// reply and the missed messages and subscribes, and no broadcast of this
    /// History can come in between.
    template <class Then>
    void recover(const std::string& name, const nlohmann::json& params, Then&& then) {
        std::lock_guard lock(mutex_);
        auto& t = topic(name);
        Recovery r;
        r.position = {t.last, t.epoch};
        if (params.is_object()) {
            auto o = params.find("offset");
            auto e = params.find("epoch");
            const bool offset_ok =
                o != params.end() && (o->is_number_unsigned() ||
                                      (o->is_number_integer() && o->get<std::int64_t>() >= 0));
            if (offset_ok && e != params.end() && e->is_string() && *e == t.epoch) {
                const auto from = o->get<std::uint64_t>();
                const std::uint64_t oldest = t.last - t.kept.size() + 1;  // first kept offset
                if (from <= t.last && from + 1 >= oldest) {
                    r.recovered = true;
                    for (std::uint64_t off = from + 1; off <= t.last; ++off)
                        r.missed.push_back(t.kept[static_cast<std::size_t>(off - oldest)]);
                }
            }
        }
        then(r);
    }

    bool kept_event(std::string_view event) const {
        if (options_.events.empty()) return true;
        for (const auto& e : options_.events)
            if (e == event) return true;
        return false;
    }

    /// Whether the join payload asks for a recovery.
    static bool asks_recovery(const nlohmann::json& params) {
        return params.is_object() && params.contains("offset") && params.contains("epoch");
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
        t.epoch = new_epoch();
        t.used = ++clock_;
        return topics_.emplace(name, std::move(t)).first->second;
    }

    std::string new_epoch() {
        static constexpr char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
        std::string e(12, '0');
        std::uniform_int_distribution<int> d(0, 35);
        for (auto& c : e)
            c = digits[d(rng_)];
        return e;
    }

    HistoryOptions options_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Topic> topics_;
    std::uint64_t clock_ = 0;
    std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace plume::pubsub
