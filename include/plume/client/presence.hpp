// plume/client/presence.hpp — the client side of Phoenix Presence:
// phoenix.js's Presence, with the same results for the same messages.
//
//   plume::client::Presence presence(room);          // binds presence_state/presence_diff
//   presence.on_join([](const std::string& id, const std::optional<nlohmann::json>& current,
//                       const nlohmann::json& joined) {
//       if (!current) std::cout << id << " is online\n";
//   });
//   presence.on_leave([](const std::string& id, const nlohmann::json& current,
//                        const nlohmann::json& left) {
//       if (current["metas"].empty()) std::cout << id << " went offline\n";
//   });
//   presence.on_sync([&] { render(presence.list()); });
//
// A presence is {"metas": [{"phx_ref": ..., ...}, ...], ...}; list() gives
// them in phoenix.js's order: keys that are array indices ("0", "42") first,
// ascending, then the others in the order they arrived. (nlohmann::json
// sorts object keys, so keys that arrive in one message arrive sorted.)
// Diffs that come before the first presence_state of the current join are
// held and applied after it, as phoenix.js does.
//
// PresenceSync is the same logic without a channel (feed it payloads);
// Presence::sync_state/sync_diff/list are phoenix.js's static API.
//
// Threading: the callbacks run on the socket's strand; list() and state()
// may be called from any thread (the state is guarded by a mutex, held
// while a message is applied, so a callback calling list() sees what
// phoenix.js's would: the old state during a presence_state, the state being
// changed during a presence_diff).
#pragma once

#include <nlohmann/json.hpp>

#include <compare>
#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "plume/client/channel.hpp"

namespace plume::client {

/// Presences by key, iterated in JavaScript's own-property order.
class PresenceState {
  public:
    const nlohmann::json* find(const std::string& key) const {
        auto it = entries_.find(key);
        return it == entries_.end() ? nullptr : &it->second.second;
    }
    nlohmann::json* find(const std::string& key) {
        auto it = entries_.find(key);
        return it == entries_.end() ? nullptr : &it->second.second;
    }
    bool contains(const std::string& key) const { return entries_.count(key) != 0; }

    /// Replaces the value in place, or adds the key at its position.
    void set(const std::string& key, nlohmann::json presence) {
        if (auto it = entries_.find(key); it != entries_.end()) {
            it->second.second = std::move(presence);
            return;
        }
        Order o = order_for(key);
        order_.emplace(o, key);
        entries_.emplace(key, std::make_pair(o, std::move(presence)));
    }

    bool erase(const std::string& key) {
        auto it = entries_.find(key);
        if (it == entries_.end()) return false;
        order_.erase(it->second.first);
        entries_.erase(it);
        return true;
    }

    std::size_t size() const noexcept { return entries_.size(); }
    bool empty() const noexcept { return entries_.empty(); }

    /// f(const std::string& key, const nlohmann::json& presence), in order.
    template <class F>
    void for_each(F&& f) const {
        for (auto& [order, key] : order_)
            f(key, entries_.at(key).second);
    }

    std::vector<std::string> keys() const {
        std::vector<std::string> out;
        for (auto& [order, key] : order_)
            out.push_back(key);
        return out;
    }

    /// From a payload object (non-object presences are skipped).
    static PresenceState from_json(const nlohmann::json& object) {
        PresenceState s;
        if (!object.is_object()) return s;
        for (auto& [key, presence] : object.items())
            if (presence.is_object()) s.set(key, presence);
        return s;
    }

    /// As a JSON object (nlohmann::json sorts its keys; use keys() for order).
    nlohmann::json to_json() const {
        nlohmann::json out = nlohmann::json::object();
        for (auto& [key, entry] : entries_)
            out[key] = entry.second;
        return out;
    }

    friend bool operator==(const PresenceState& a, const PresenceState& b) {
        if (a.size() != b.size()) return false;
        auto ka = a.keys(), kb = b.keys();
        if (ka != kb) return false;
        for (auto& k : ka)
            if (*a.find(k) != *b.find(k)) return false;
        return true;
    }

  private:
    // Array-index keys sort before named keys, numerically; named keys by
    // arrival (ECMAScript OrdinaryOwnPropertyKeys).
    struct Order {
        bool named = false;
        std::uint64_t n = 0;
        auto operator<=>(const Order&) const = default;
    };

    static std::optional<std::uint64_t> array_index(std::string_view key) {
        if (key.empty() || key.size() > 10) return std::nullopt;
        if (key.size() > 1 && key[0] == '0') return std::nullopt;
        std::uint64_t n = 0;
        for (char c : key) {
            if (c < '0' || c > '9') return std::nullopt;
            n = n * 10 + static_cast<std::uint64_t>(c - '0');
        }
        if (n > 4294967294ULL) return std::nullopt;  // 2^32 - 2, the largest array index
        return n;
    }

    Order order_for(const std::string& key) {
        if (auto n = array_index(key)) return {false, *n};
        return {true, next_++};
    }

    std::map<Order, std::string> order_;
    std::unordered_map<std::string, std::pair<Order, nlohmann::json>> entries_;
    std::uint64_t next_ = 0;
};

/// on_join(key, current presence or none, the presence that joined).
using PresenceJoin =
    std::function<void(const std::string& key, const std::optional<nlohmann::json>& current,
                       const nlohmann::json& joined)>;
/// on_leave(key, the presence after the leave, the presence that left).
using PresenceLeave = std::function<void(const std::string& key, const nlohmann::json& current,
                                         const nlohmann::json& left)>;

namespace detail {

// phx_ref of a meta; nullopt when absent (JavaScript's undefined).
inline std::optional<nlohmann::json> phx_ref(const nlohmann::json& meta) {
    if (meta.is_object())
        if (auto it = meta.find("phx_ref"); it != meta.end()) return *it;
    return std::nullopt;
}

inline const nlohmann::json& metas_of(const nlohmann::json& presence) {
    static const nlohmann::json empty = nlohmann::json::array();
    if (!presence.is_object()) return empty;
    auto it = presence.find("metas");
    return it != presence.end() && it->is_array() ? *it : empty;
}

inline std::vector<std::optional<nlohmann::json>> refs_of(const nlohmann::json& presence) {
    std::vector<std::optional<nlohmann::json>> out;
    for (auto& m : metas_of(presence))
        out.push_back(phx_ref(m));
    return out;
}

inline bool contains_ref(const std::vector<std::optional<nlohmann::json>>& refs,
                         const std::optional<nlohmann::json>& ref) {
    for (auto& r : refs)
        if (r == ref) return true;
    return false;
}

/// The metas of `presence` whose phx_ref is not in `refs`.
inline nlohmann::json metas_without(const nlohmann::json& presence,
                                    const std::vector<std::optional<nlohmann::json>>& refs) {
    nlohmann::json out = nlohmann::json::array();
    for (auto& m : metas_of(presence))
        if (!contains_ref(refs, phx_ref(m))) out.push_back(m);
    return out;
}

/// phoenix.js's syncDiff on `state`, in place.
inline void apply_diff(PresenceState& state, const PresenceState& joins,
                       const PresenceState& leaves, const PresenceJoin& on_join,
                       const PresenceLeave& on_leave) {
    joins.for_each([&](const std::string& key, const nlohmann::json& joined) {
        std::optional<nlohmann::json> current;
        if (auto* c = state.find(key)) current = *c;
        nlohmann::json merged = joined;
        if (!merged["metas"].is_array()) merged["metas"] = nlohmann::json::array();
        if (current) {
            auto kept = metas_without(*current, refs_of(merged));
            auto& metas = merged["metas"];
            metas.insert(metas.begin(), kept.begin(), kept.end());
        }
        state.set(key, std::move(merged));
        if (on_join) on_join(key, current, joined);
    });
    leaves.for_each([&](const std::string& key, const nlohmann::json& left) {
        auto* current = state.find(key);
        if (!current) return;
        nlohmann::json remaining = metas_without(*current, refs_of(left));
        (*current)["metas"] = std::move(remaining);
        if (on_leave) on_leave(key, *current, left);
        // The callback may have changed the state (it is a reference).
        if (auto* again = state.find(key); again && metas_of(*again).empty()) state.erase(key);
    });
}

inline PresenceState diff_part(const nlohmann::json& diff, const char* name) {
    if (!diff.is_object()) return {};
    auto it = diff.find(name);
    return it == diff.end() ? PresenceState{} : PresenceState::from_json(*it);
}

}  // namespace detail

/// phoenix.js's Presence logic without a channel: feed it the payloads of
/// presence_state and presence_diff with the channel's current join_ref.
class PresenceSync {
  public:
    void on_join(PresenceJoin f) {
        std::lock_guard lock(mutex_);
        on_join_ = std::move(f);
    }
    void on_leave(PresenceLeave f) {
        std::lock_guard lock(mutex_);
        on_leave_ = std::move(f);
    }
    void on_sync(std::function<void()> f) {
        std::lock_guard lock(mutex_);
        on_sync_ = std::move(f);
    }

    /// A presence_state arrived while the channel's join_ref was `join_ref`.
    void handle_state(const nlohmann::json& new_state, std::optional<std::string> join_ref);
    /// A presence_diff arrived; held while no state of the current join came.
    void handle_diff(const nlohmann::json& diff, const std::optional<std::string>& join_ref) {
        std::lock_guard lock(mutex_);
        if (in_pending_sync_state(join_ref)) {
            pending_diffs_.push_back(diff);
            return;
        }
        detail::apply_diff(state_, detail::diff_part(diff, "joins"),
                           detail::diff_part(diff, "leaves"), on_join_, on_leave_);
        if (on_sync_) on_sync_();
    }

    bool in_pending_sync_state(const std::optional<std::string>& channel_join_ref) const {
        std::lock_guard lock(mutex_);
        return !join_ref_ || join_ref_->empty() || join_ref_ != channel_join_ref;
    }

    std::vector<nlohmann::json> list() const;
    template <class F>
    requires std::invocable<F&, const std::string&, const nlohmann::json&>
    auto list(F&& chooser) const {
        std::lock_guard lock(mutex_);
        using R = std::invoke_result_t<F&, const std::string&, const nlohmann::json&>;
        std::vector<R> out;
        state_.for_each(
            [&](const std::string& k, const nlohmann::json& p) { out.push_back(chooser(k, p)); });
        return out;
    }
    PresenceState state() const {
        std::lock_guard lock(mutex_);
        return state_;
    }

  private:
    mutable std::recursive_mutex mutex_;
    PresenceState state_;
    std::vector<nlohmann::json> pending_diffs_;
    std::optional<std::string> join_ref_;
    PresenceJoin on_join_;
    PresenceLeave on_leave_;
    std::function<void()> on_sync_;
};

/// The event names a server uses for presence (Phoenix's defaults).
struct PresenceEvents {
    std::string state = "presence_state";
    std::string diff = "presence_diff";
};

/// Presence bound to a Channel (phoenix.js's `new Presence(channel)`).
class Presence {
  public:
    using Events = PresenceEvents;

    explicit Presence(Channel channel, Events events = Events())
        : sync_(std::make_shared<PresenceSync>()),
          channel_(std::move(channel)),
          events_(std::move(events)) {
        std::weak_ptr<PresenceSync> sync = sync_;
        std::weak_ptr<detail::ChannelImpl> ch = channel_.impl_;
        state_ref_ = channel_.on(events_.state, [sync, ch](const Event& e) {
            auto s = sync.lock();
            auto c = ch.lock();
            if (s && c && e.payload.is_json()) s->handle_state(e.payload.json(), c->join_ref());
        });
        diff_ref_ = channel_.on(events_.diff, [sync, ch](const Event& e) {
            auto s = sync.lock();
            auto c = ch.lock();
            if (s && c && e.payload.is_json()) s->handle_diff(e.payload.json(), c->join_ref());
        });
    }
    ~Presence() {
        if (!channel_) return;
        channel_.off(events_.state, state_ref_);
        channel_.off(events_.diff, diff_ref_);
    }
    Presence(const Presence&) = delete;
    Presence& operator=(const Presence&) = delete;

    void on_join(PresenceJoin f) { sync_->on_join(std::move(f)); }
    void on_leave(PresenceLeave f) { sync_->on_leave(std::move(f)); }
    void on_sync(std::function<void()> f) { sync_->on_sync(std::move(f)); }

    /// The presences, in phoenix.js's order.
    std::vector<nlohmann::json> list() const { return sync_->list(); }
    /// chooser(key, presence) for each, in order.
    template <class F>
    requires std::invocable<F&, const std::string&, const nlohmann::json&>
    auto list(F&& chooser) const { return sync_->list(std::forward<F>(chooser)); }
    PresenceState state() const { return sync_->state(); }

    // ---- phoenix.js's static API ------------------------------------------

    /// Syncs a full presence_state into `current`, reporting joins and leaves.
    static PresenceState sync_state(const PresenceState& current, const nlohmann::json& new_state,
                                    const PresenceJoin& on_join = {},
                                    const PresenceLeave& on_leave = {}) {
        PresenceState state = current;
        PresenceState incoming = PresenceState::from_json(new_state);
        PresenceState joins, leaves;
        state.for_each([&](const std::string& key, const nlohmann::json& presence) {
            if (!incoming.contains(key)) leaves.set(key, presence);
        });
        incoming.for_each([&](const std::string& key, const nlohmann::json& presence) {
            if (auto* cur = state.find(key)) {
                auto joined = detail::metas_without(presence, detail::refs_of(*cur));
                auto left = detail::metas_without(*cur, detail::refs_of(presence));
                if (!joined.empty()) {
                    nlohmann::json j = presence;
                    j["metas"] = std::move(joined);
                    joins.set(key, std::move(j));
                }
                if (!left.empty()) {
                    nlohmann::json l = *cur;
                    l["metas"] = std::move(left);
                    leaves.set(key, std::move(l));
                }
            } else {
                joins.set(key, presence);
            }
        });
        detail::apply_diff(state, joins, leaves, on_join, on_leave);
        return state;
    }

    /// Applies a presence_diff {"joins": {...}, "leaves": {...}}.
    static PresenceState sync_diff(PresenceState state, const nlohmann::json& diff,
                                   const PresenceJoin& on_join = {},
                                   const PresenceLeave& on_leave = {}) {
        detail::apply_diff(state, detail::diff_part(diff, "joins"),
                           detail::diff_part(diff, "leaves"), on_join, on_leave);
        return state;
    }

    static std::vector<nlohmann::json> list(const PresenceState& state) {
        std::vector<nlohmann::json> out;
        state.for_each([&](const std::string&, const nlohmann::json& p) { out.push_back(p); });
        return out;
    }

  private:
    std::shared_ptr<PresenceSync> sync_;
    Channel channel_;
    Events events_;
    BindingRef state_ref_ = 0, diff_ref_ = 0;
};

inline void PresenceSync::handle_state(const nlohmann::json& new_state,
                                       std::optional<std::string> join_ref) {
    std::lock_guard lock(mutex_);
    join_ref_ = std::move(join_ref);
    // Callbacks during the state sync see the previous state, as in phoenix.js.
    state_ = Presence::sync_state(state_, new_state, on_join_, on_leave_);
    auto pending = std::move(pending_diffs_);
    pending_diffs_.clear();
    for (auto& diff : pending)
        detail::apply_diff(state_, detail::diff_part(diff, "joins"),
                           detail::diff_part(diff, "leaves"), on_join_, on_leave_);
    if (on_sync_) on_sync_();
}

inline std::vector<nlohmann::json> PresenceSync::list() const {
    std::lock_guard lock(mutex_);
    return Presence::list(state_);
}

}  // namespace plume::client
