// Test support: phoenix.js's Presence.syncState and Presence.syncDiff
// (phoenix 1.8), step for step, on nlohmann::json states — how the presence
// tests replay the presence_state and presence_diff payloads a server sends,
// the way a browser would. (Checked once against phoenix.js 1.8.16 itself on
// recorded cluster histories; plume's client layer has its own Presence.)
//
//   nlohmann::json state = nlohmann::json::object();
//   state = plume::test::sync_state(state, presence_state_payload);
//   state = plume::test::sync_diff(state, presence_diff_payload,
//       [](const std::string& key, const nlohmann::json* before, const nlohmann::json& joined) {},
//       [](const std::string& key, const nlohmann::json& now, const nlohmann::json& left) {});
//
// Metas are told apart by phx_ref only. In a diff, joins are applied before
// leaves; a joined key takes the joined presence (extra fields included) with
// its current metas that are not among the joined ones put first; a key whose
// last meta leaves is removed; leaves of unknown keys are ignored.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

namespace plume::test {

/// onJoin(key, current presence or null, joined presence)
using SyncJoin = std::function<void(const std::string& key, const nlohmann::json* current,
                                    const nlohmann::json& joined)>;
/// onLeave(key, current presence after removal, left presence)
using SyncLeave = std::function<void(const std::string& key, const nlohmann::json& current,
                                     const nlohmann::json& left)>;

namespace sync_detail {

inline std::vector<nlohmann::json> refs_of(const nlohmann::json& presence) {
    std::vector<nlohmann::json> refs;
    auto metas = presence.find("metas");
    if (metas == presence.end() || !metas->is_array()) return refs;
    for (const auto& m : *metas)
        refs.push_back(m.is_object() && m.contains("phx_ref") ? m["phx_ref"] : nlohmann::json());
    return refs;
}

inline bool has_ref(const std::vector<nlohmann::json>& refs, const nlohmann::json& meta) {
    const nlohmann::json ref =
        meta.is_object() && meta.contains("phx_ref") ? meta["phx_ref"] : nlohmann::json();
    return std::find(refs.begin(), refs.end(), ref) != refs.end();
}

}  // namespace sync_detail

/// Presence.syncDiff(state, {joins, leaves}, onJoin, onLeave).
inline nlohmann::json sync_diff(nlohmann::json state, const nlohmann::json& diff,
                                const SyncJoin& on_join = {}, const SyncLeave& on_leave = {}) {
    if (!state.is_object()) state = nlohmann::json::object();
    const auto empty = nlohmann::json::object();
    const auto& joins = diff.contains("joins") ? diff["joins"] : empty;
    const auto& leaves = diff.contains("leaves") ? diff["leaves"] : empty;
    for (const auto& [key, joined] : joins.items()) {
        nlohmann::json current;
        const bool had = state.contains(key);
        if (had) current = state[key];
        state[key] = joined;
        if (had) {
            const auto joined_refs = sync_detail::refs_of(state[key]);
            auto kept = nlohmann::json::array();
            for (const auto& m : current["metas"])
                if (!sync_detail::has_ref(joined_refs, m)) kept.push_back(m);
            auto& metas = state[key]["metas"];
            metas.insert(metas.begin(), kept.begin(), kept.end());
        }
        if (on_join) on_join(key, had ? &current : nullptr, joined);
    }
    for (const auto& [key, left] : leaves.items()) {
        if (!state.contains(key)) continue;
        auto& current = state[key];
        const auto remove = sync_detail::refs_of(left);
        auto kept = nlohmann::json::array();
        for (const auto& m : current["metas"])
            if (!sync_detail::has_ref(remove, m)) kept.push_back(m);
        current["metas"] = std::move(kept);
        if (on_leave) on_leave(key, current, left);
        if (current["metas"].empty()) state.erase(key);
    }
    return state;
}

/// Presence.syncState(state, newState, onJoin, onLeave): what joined and left
/// between the two, applied with sync_diff.
inline nlohmann::json sync_state(const nlohmann::json& state, const nlohmann::json& new_state,
                                 const SyncJoin& on_join = {}, const SyncLeave& on_leave = {}) {
    nlohmann::json current = state.is_object() ? state : nlohmann::json::object();
    auto joins = nlohmann::json::object();
    auto leaves = nlohmann::json::object();
    for (const auto& [key, presence] : current.items())
        if (!new_state.contains(key)) leaves[key] = presence;
    for (const auto& [key, fresh] : new_state.items()) {
        if (!current.contains(key)) {
            joins[key] = fresh;
            continue;
        }
        const auto& existing = current[key];
        const auto new_refs = sync_detail::refs_of(fresh);
        const auto cur_refs = sync_detail::refs_of(existing);
        auto joined = nlohmann::json::array();
        for (const auto& m : fresh["metas"])
            if (!sync_detail::has_ref(cur_refs, m)) joined.push_back(m);
        auto left = nlohmann::json::array();
        for (const auto& m : existing["metas"])
            if (!sync_detail::has_ref(new_refs, m)) left.push_back(m);
        if (!joined.empty()) {
            joins[key] = fresh;
            joins[key]["metas"] = std::move(joined);
        }
        if (!left.empty()) {
            leaves[key] = existing;
            leaves[key]["metas"] = std::move(left);
        }
    }
    nlohmann::json diff{{"joins", std::move(joins)}, {"leaves", std::move(leaves)}};
    return sync_diff(std::move(current), diff, on_join, on_leave);
}

}  // namespace plume::test
