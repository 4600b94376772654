// plume/presence/presence.hpp — Phoenix.Presence for C++: a Tracker plus the
// payloads phoenix.js's Presence consumes and Phoenix's server-side hooks.
//
//   plume::presence::PresenceOptions opts;
//   opts.on_diff = [&](const std::string& topic, const nlohmann::json& diff) {
//       // Every node computes its own diffs, so send them to this node's subscribers only.
//       pubsub.local_broadcast(plume::pubsub::make_message(topic, "presence_diff", diff));
//   };
//   plume::presence::Presence presence(pubsub, opts);
//   presence.start(io.get_executor());
//
//   // in a channel, after join:
//   presence.track(channel_id, topic, user_id, {{"online_at", now}});
//   push("presence_state", presence.presence_state(topic));   // {"42": {"metas": [...]}}
//   // or, encoded once per topic version for every joiner (Channel::push_presence_state):
//   std::shared_ptr<const std::string> text = presence.presence_state_text(topic);
//   // when the channel ends:
//   presence.untrack_all(channel_id);
//
// Shapes (keys are strings; metas carry phx_ref, and phx_ref_prev after an update):
//   presence_state  {"<key>": {"metas": [{...meta, "phx_ref": "..."}, ...]}, ...}
//   presence_diff   {"joins": {<same shape>}, "leaves": {<same shape>}}
// An update shows up in one diff as a leave of the old meta and a join of the
// new one; phoenix.js applies joins before leaves, so the key never vanishes.
//
// presence_state is the topic's list as of the last presence_diff delivered
// (list() is the live one). With a diff window the two differ by the changes
// still pending, which the next diff carries: a joiner subscribed before it
// asks for the state therefore ends with exactly the tracker's list (state,
// then every later diff; a diff it already saw in the state is a no-op for
// phoenix.js's syncDiff, which matches metas by phx_ref). The live list would
// not do: a join and a leave that cancel out within a window never reach the
// diffs. The state's JSON text is cached per topic until the next diff, so a
// join storm encodes it once per window, not once per joiner.
//
// Hooks, all optional, all called without locks held and in diff order per topic:
//   fetch(topic, presences)        enrich a whole {"key": {"metas": [...]}} object in place,
//                                   once per list(), presence_state() and side of a diff, and
//                                   once per topic version for presence_state_text() (Phoenix
//                                   fetch/2)
//   on_diff(topic, payload)        the presence_diff payload, after fetch
//   handle_metas(topic, joins, leaves, current)   Phoenix's handle_metas/4
//   on_join(topic, key, metas)     a key appeared on a topic (its first meta)
//   on_leave(topic, key, metas)    a key's last meta left a topic
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "plume/presence/entry.hpp"
#include "plume/presence/tracker.hpp"
#include "plume/result.hpp"

namespace plume::presence {

/// Presences grouped by key; each key's metas sorted by phx_ref.
using Grouped = std::map<std::string, std::vector<EntryPtr>, std::less<>>;

inline Grouped group(const std::vector<EntryPtr>& entries) {
    Grouped out;
    for (const auto& e : entries) {
        auto& metas = out[e->key];
        detail::insert_sorted(metas, e);
    }
    return out;
}

/// {"key": {"metas": [meta, ...]}, ...}: presence_state, and each side of presence_diff.
inline nlohmann::json to_json(const Grouped& grouped) {
    auto out = nlohmann::json::object();
    for (const auto& [key, metas] : grouped) {
        auto list = nlohmann::json::array();
        for (const auto& e : metas)
            list.push_back(e->meta);
        out[key] = nlohmann::json{{"metas", std::move(list)}};
    }
    return out;
}

inline nlohmann::json to_json(const std::vector<EntryPtr>& entries) {
    return to_json(group(entries));
}

/// {"joins": ..., "leaves": ...}: both always present, as Phoenix sends them.
inline nlohmann::json diff_payload(nlohmann::json joins, nlohmann::json leaves) {
    return nlohmann::json{{"joins", std::move(joins)}, {"leaves", std::move(leaves)}};
}

struct PresenceOptions {
    /// The tracker's options; its on_diff is Presence's own and is replaced.
    TrackerOptions tracker;
    std::function<void(const std::string& topic, nlohmann::json& presences)> fetch;
    std::function<void(const std::string& topic, const nlohmann::json& diff)> on_diff;
    std::function<void(const std::string& topic, const Grouped& joins, const Grouped& leaves,
                       const Grouped& current)>
        handle_metas;
    std::function<void(const std::string& topic, const std::string& key,
                       const std::vector<EntryPtr>& metas)>
        on_join;
    std::function<void(const std::string& topic, const std::string& key,
                       const std::vector<EntryPtr>& metas)>
        on_leave;
};

/// Thread-safe; not copyable or movable. The PubSub must outlive it.
class Presence {
  public:
    template <pubsub::Adapter A>
    explicit Presence(pubsub::PubSub<A>& pubsub, PresenceOptions options = {})
        : hooks_(std::move(options)),
          published_(make_shards(hooks_.tracker.shards)),
          tracker_(pubsub, tracker_options()) {}

    Presence(const Presence&) = delete;
    Presence& operator=(const Presence&) = delete;

    Result<std::string> track(OwnerId owner, std::string_view topic, std::string_view key,
                              nlohmann::json meta) {
        return tracker_.track(owner, topic, key, std::move(meta));
    }
    Result<std::string> update(OwnerId owner, std::string_view topic, std::string_view key,
                               nlohmann::json meta) {
        return tracker_.update(owner, topic, key, std::move(meta));
    }
    template <class F>
    requires std::is_invocable_r_v<nlohmann::json, F&, const nlohmann::json&> Result<std::string>
    update(OwnerId owner, std::string_view topic, std::string_view key, F&& fn) {
        return tracker_.update(owner, topic, key, std::forward<F>(fn));
    }
    std::error_code untrack(OwnerId owner, std::string_view topic, std::string_view key) {
        return tracker_.untrack(owner, topic, key);
    }
    std::size_t untrack_all(OwnerId owner) { return tracker_.untrack_all(owner); }

    /// {"key": {"metas": [...]}} for `topic`, after fetch.
    nlohmann::json list(std::string_view topic) const {
        auto out = to_json(tracker_.list(topic));
        if (hooks_.fetch && !out.empty()) hooks_.fetch(std::string(topic), out);
        return out;
    }

    /// The payload to push as "presence_state" after every (re)join: the
    /// topic's list as of the last presence_diff delivered, after fetch.
    nlohmann::json presence_state(std::string_view topic) const {
        auto out = to_json(published(topic));
        if (hooks_.fetch && !out.empty()) hooks_.fetch(std::string(topic), out);
        return out;
    }

    /// presence_state(topic) as JSON text, encoded (and fetched) once per topic
    /// version and shared by every caller until the next diff of the topic.
    std::shared_ptr<const std::string> presence_state_text(std::string_view topic) const {
        auto& shard = *published_[tracker_.shard_of(topic)];
        std::vector<EntryPtr> entries;
        std::uint64_t version = 0;
        {
            std::shared_lock lock(shard.mutex);
            auto t = shard.topics.find(topic);
            if (t == shard.topics.end() || t->second.current.empty()) return empty_state_text();
            if (t->second.state_text) return t->second.state_text;
            version = t->second.version;
            entries = flatten(t->second.current);
        }
        auto text = std::make_shared<const std::string>(encode_state(topic, entries));
        std::unique_lock lock(shard.mutex);
        auto t = shard.topics.find(topic);
        if (t != shard.topics.end() && t->second.version == version && !t->second.state_text)
            t->second.state_text = text;
        return text;
    }

    /// {"metas": [...]} (plus fetched fields) for one key, or null if absent.
    nlohmann::json get_by_key(std::string_view topic, std::string_view key) const {
        auto entries = tracker_.get_by_key(topic, key);
        if (entries.empty()) return nullptr;
        auto out = to_json(entries);
        if (hooks_.fetch) hooks_.fetch(std::string(topic), out);
        auto it = out.find(std::string(key));
        return it == out.end() ? nlohmann::json() : *it;
    }

    void tick() { tracker_.tick(); }
    void poll() { tracker_.poll(); }
    void flush() { tracker_.flush(); }
    void start(const asio::any_io_executor& ex) { tracker_.start(ex); }
    void stop() { tracker_.stop(); }
    void stop(bool permdown) { tracker_.stop(permdown); }

    Tracker& tracker() noexcept { return tracker_; }
    const Tracker& tracker() const noexcept { return tracker_; }

  private:
    TrackerOptions tracker_options() {
        TrackerOptions o = hooks_.tracker;
        o.on_diff = [this](const std::string& topic, const std::vector<EntryPtr>& joins,
                           const std::vector<EntryPtr>& leaves) {
            on_tracker_diff(topic, joins, leaves);
        };
        return o;
    }

    /// A topic as its presence_diff subscribers know it.
    struct Published {
        Grouped current;
        std::uint64_t version = 0;                      // unique in the shard, new with each diff
        std::shared_ptr<const std::string> state_text;  // for `version`, after fetch
    };
    /// Written only by the tracker's delivery path for the shard (one thread
    /// at a time), read by any thread under the shared lock.
    struct PublishedShard {
        mutable std::shared_mutex mutex;
        std::unordered_map<std::string, Published, detail::StringHash, std::equal_to<>> topics;
        std::uint64_t last_version = 0;
    };

    static std::vector<std::unique_ptr<PublishedShard>> make_shards(std::size_t n) {
        std::vector<std::unique_ptr<PublishedShard>> out;
        for (std::size_t i = 0; i < std::max<std::size_t>(n, 1); ++i)
            out.push_back(std::make_unique<PublishedShard>());
        return out;
    }

    static std::vector<EntryPtr> flatten(const Grouped& g) {
        std::vector<EntryPtr> out;
        for (const auto& [key, metas] : g)
            out.insert(out.end(), metas.begin(), metas.end());
        return out;
    }

    /// The published entries of a topic, sorted by key, then phx_ref.
    std::vector<EntryPtr> published(std::string_view topic) const {
        auto& shard = *published_[tracker_.shard_of(topic)];
        std::shared_lock lock(shard.mutex);
        auto t = shard.topics.find(topic);
        return t == shard.topics.end() ? std::vector<EntryPtr>{} : flatten(t->second.current);
    }

    static std::shared_ptr<const std::string> empty_state_text() {
        static const auto empty = std::make_shared<const std::string>("{}");
        return empty;
    }

    /// The same text as presence_state(topic).dump(), written straight from the
    /// entries (sorted by key) when there is no fetch to run.
    std::string encode_state(std::string_view topic, const std::vector<EntryPtr>& entries) const {
        if (hooks_.fetch) {
            auto j = to_json(entries);
            hooks_.fetch(std::string(topic), j);
            return j.dump();
        }
        std::string out = "{";
        const std::string* key = nullptr;
        for (const auto& e : entries) {
            if (key && *key == e->key) {
                out += ',';
            } else {
                if (key) out += "]},";
                key = &e->key;
                out += nlohmann::json(e->key).dump();
                out += R"(:{"metas":[)";
            }
            out += e->meta.dump();
        }
        if (key) out += "]}";
        out += '}';
        return out;
    }

    // Runs on the tracker's delivery path: one thread at a time per shard, in
    // diff order. The published list changes before the diff goes out, so a
    // joiner that reads the state after subscribing misses no diff.
    void on_tracker_diff(const std::string& topic, const std::vector<EntryPtr>& joins,
                         const std::vector<EntryPtr>& leaves) {
        const Grouped gj = group(joins);
        const Grouped gl = group(leaves);
        const bool key_hooks = hooks_.handle_metas || hooks_.on_join || hooks_.on_leave;
        auto& shard = *published_[tracker_.shard_of(topic)];
        std::vector<std::string> was_present;
        Published* published = nullptr;
        {
            std::unique_lock lock(shard.mutex);
            auto t = shard.topics.find(topic);
            if (t == shard.topics.end()) t = shard.topics.emplace(topic, Published{}).first;
            published = &t->second;
            Grouped& current = published->current;
            if (key_hooks)
                for (const auto* side : {&gj, &gl})
                    for (const auto& [key, metas] : *side)
                        if (current.contains(key)) was_present.push_back(key);
            for (const auto& e : joins)
                detail::insert_sorted(current[e->key], e);
            for (const auto& e : leaves) {
                auto k = current.find(e->key);
                if (k == current.end()) continue;
                std::erase_if(k->second, [&](const EntryPtr& x) { return x->ref == e->ref; });
                if (k->second.empty()) current.erase(k);
            }
            published->version = ++shard.last_version;
            published->state_text.reset();
        }

        if (hooks_.on_diff) {
            auto j = to_json(gj);
            auto l = to_json(gl);
            if (hooks_.fetch) {
                if (!j.empty()) hooks_.fetch(topic, j);
                if (!l.empty()) hooks_.fetch(topic, l);
            }
            hooks_.on_diff(topic, diff_payload(std::move(j), std::move(l)));
        }

        // Only this thread writes the published list, so it reads it unlocked.
        const Grouped& current = published->current;
        auto present_before = [&](const std::string& key) {
            return std::find(was_present.begin(), was_present.end(), key) != was_present.end();
        };
        if (hooks_.handle_metas) hooks_.handle_metas(topic, gj, gl, current);
        if (hooks_.on_join)
            for (const auto& [key, metas] : gj)
                if (!present_before(key))
                    if (auto k = current.find(key); k != current.end())
                        hooks_.on_join(topic, key, k->second);
        if (hooks_.on_leave)
            for (const auto& [key, metas] : gl)
                if (present_before(key) && !current.contains(key))
                    hooks_.on_leave(topic, key, metas);
        if (current.empty()) {
            std::unique_lock lock(shard.mutex);
            shard.topics.erase(topic);
        }
    }

    PresenceOptions hooks_;
    std::vector<std::unique_ptr<PublishedShard>> published_;
    Tracker tracker_;  // last: destroyed (and stopped) first
};

}  // namespace plume::presence
