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
//   push("presence_state", presence.presence_state(topic));   // {"42": {"metas": [...]}}
//   presence.track(channel_id, topic, user_id, {{"online_at", now}});
//   // when the channel ends:
//   presence.untrack_all(channel_id);
//
// Shapes (keys are strings; metas carry phx_ref, and phx_ref_prev after an update):
//   presence_state  {"<key>": {"metas": [{...meta, "phx_ref": "..."}, ...]}, ...}
//   presence_diff   {"joins": {<same shape>}, "leaves": {<same shape>}}
// An update shows up in one diff as a leave of the old meta and a join of the
// new one; phoenix.js applies joins before leaves, so the key never vanishes.
//
// Hooks, all optional, all called without locks held and in diff order per topic:
//   fetch(topic, presences)        enrich a whole {"key": {"metas": [...]}} object in place,
//                                   once per list() and once per side of a diff (Phoenix fetch/2)
//   on_diff(topic, payload)        the presence_diff payload, after fetch
//   handle_metas(topic, joins, leaves, current)   Phoenix's handle_metas/4
//   on_join(topic, key, metas)     a key appeared on a topic (its first meta)
//   on_leave(topic, key, metas)    a key's last meta left a topic
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <map>
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
          mirrors_(hooks_.tracker.shards == 0 ? 1 : hooks_.tracker.shards),
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

    /// The payload to push as "presence_state" after every (re)join: list(topic).
    nlohmann::json presence_state(std::string_view topic) const { return list(topic); }

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

    // Runs on the tracker's delivery path: one thread at a time per shard, so
    // the mirror of a shard's topics needs no lock of its own.
    void on_tracker_diff(const std::string& topic, const std::vector<EntryPtr>& joins,
                         const std::vector<EntryPtr>& leaves) {
        if (hooks_.on_diff) {
            auto j = to_json(joins);
            auto l = to_json(leaves);
            if (hooks_.fetch) {
                if (!j.empty()) hooks_.fetch(topic, j);
                if (!l.empty()) hooks_.fetch(topic, l);
            }
            hooks_.on_diff(topic, diff_payload(std::move(j), std::move(l)));
        }
        if (!hooks_.handle_metas && !hooks_.on_join && !hooks_.on_leave) return;

        auto& topics = mirrors_[tracker_.shard_of(topic)];
        auto t = topics.find(topic);
        if (t == topics.end()) t = topics.emplace(topic, Grouped{}).first;
        Grouped& current = t->second;
        const Grouped gj = group(joins);
        const Grouped gl = group(leaves);
        std::vector<std::string> was_present;
        for (const auto* side : {&gj, &gl})
            for (const auto& [key, metas] : *side)
                if (current.contains(key)) was_present.push_back(key);
        auto present_before = [&](const std::string& key) {
            return std::find(was_present.begin(), was_present.end(), key) != was_present.end();
        };
        for (const auto& e : joins)
            detail::insert_sorted(current[e->key], e);
        for (const auto& e : leaves) {
            auto k = current.find(e->key);
            if (k == current.end()) continue;
            std::erase_if(k->second, [&](const EntryPtr& x) { return x->ref == e->ref; });
            if (k->second.empty()) current.erase(k);
        }

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
        if (current.empty()) topics.erase(topic);
    }

    PresenceOptions hooks_;
    std::vector<std::unordered_map<std::string, Grouped>> mirrors_;
    Tracker tracker_;  // last: destroyed (and stopped) first
};

}  // namespace plume::presence
