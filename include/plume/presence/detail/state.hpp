// plume/presence/detail/state.hpp — the replicated data of the Tracker, as
// pure values and functions (no locks, no I/O), so the CRDT rules can be tested
// on their own.
//
// Every replica (a node name plus an incarnation) is the only writer of its
// own entries. Its writes are numbered by a version counter, one per
// operation. What other replicas hold of it is therefore a ReplicaState:
// the set of its entries as of some version. Merging two copies keeps the one
// with the higher version (last writer wins per replica), which is
// commutative, associative and idempotent; a restarted node is a new
// incarnation, and the higher incarnation of a name supersedes the lower.
// Deltas (the operations of a version range) carry a replica forward without
// sending everything: applying the delta (base, v] to any copy at version
// k >= base gives the copy at v.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "plume/detail/base64.hpp"
#include "plume/presence/entry.hpp"

namespace plume::presence::detail {

/// FNV-1a: the same on every platform and build, so every node maps a topic
/// to the same shard.
inline std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 0xcbf29ce484222325ull) noexcept {
    for (unsigned char c : s) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h;
}

struct ReplicaId {
    std::string name;
    std::uint64_t incarnation = 0;
    friend bool operator==(const ReplicaId&, const ReplicaId&) = default;
    friend auto operator<=>(const ReplicaId&, const ReplicaId&) = default;
};

/// A replica's entries by phx_ref. The key views the ref inside the entry the
/// same node holds, so it lives exactly as long as the entry; entries are
/// only ever inserted and erased, never replaced in place.
using EntryMap = std::unordered_map<std::string_view, EntryPtr>;

inline bool put(EntryMap& m, const EntryPtr& e) {
    return m.emplace(e->ref, e).second;
}

inline EntryPtr take(EntryMap& m, std::string_view ref) {
    auto it = m.find(ref);
    if (it == m.end()) return nullptr;
    EntryPtr e = std::move(it->second);
    m.erase(it);
    return e;
}

/// One operation of a replica's log. `add` set: that entry was added; `remove`
/// set: the entry with that ref was removed; neither: an add whose entry was
/// removed again later (its meta is no longer worth sending: the remove that
/// follows it in the log is enough for every receiver).
struct Op {
    std::uint64_t version = 0;
    EntryPtr add;
    std::string remove;
};

struct ReplicaState {
    std::uint64_t version = 0;
    EntryMap entries;
};

/// What a merge changed: entries that appeared and entries that disappeared.
struct Change {
    std::vector<EntryPtr> joins;
    std::vector<EntryPtr> leaves;
};

/// Applies the delta (base, version] to `s`. Returns false, changing nothing,
/// when the delta starts after what `s` has seen (a gap: ask for a transfer).
/// Operations `s` has already seen are skipped, so duplicated, overlapping or
/// stale deltas are harmless.
inline bool apply_delta(ReplicaState& s, std::uint64_t base, std::uint64_t version,
                        std::span<const Op> ops, Change* change = nullptr) {
    if (base > s.version) return false;
    if (version <= s.version) return true;
    for (const Op& op : ops) {
        if (op.version <= s.version || op.version > version) continue;
        if (op.add) {
            if (put(s.entries, op.add) && change) change->joins.push_back(op.add);
        } else if (!op.remove.empty()) {
            if (auto gone = take(s.entries, op.remove); gone && change)
                change->leaves.push_back(std::move(gone));
        }
    }
    s.version = version;
    return true;
}

/// Replaces `s` by a full copy at `version` if that copy is newer. Returns
/// false when it is older (ignored). A copy at the same version is the same
/// content (one writer), so it changes nothing.
inline bool merge_full(ReplicaState& s, std::uint64_t version, EntryMap entries,
                       Change* change = nullptr) {
    if (version < s.version) return false;
    if (version == s.version) return true;
    if (change) {
        for (auto& [ref, e] : s.entries)
            if (!entries.contains(ref)) change->leaves.push_back(e);
        for (auto& [ref, e] : entries)
            if (!s.entries.contains(ref)) change->joins.push_back(e);
    }
    s.entries = std::move(entries);
    s.version = version;
    return true;
}

/// Of two incarnations of one node name, the higher one is the live node.
inline bool supersedes(std::uint64_t incarnation, std::uint64_t other) noexcept {
    return incarnation > other;
}

/// Copies of several replicas, by node name: the whole replicated state of a
/// shard as one replica sees it. merge() is the CRDT join.
struct Snapshot {
    struct Item {
        std::uint64_t incarnation = 0;
        ReplicaState state;
    };
    std::map<std::string, Item, std::less<>> replicas;

    void merge(const Snapshot& other) {
        for (const auto& [name, theirs] : other.replicas) {
            auto it = replicas.find(name);
            if (it == replicas.end()) {
                replicas.emplace(name, theirs);
            } else if (supersedes(theirs.incarnation, it->second.incarnation)) {
                it->second = theirs;
            } else if (theirs.incarnation == it->second.incarnation) {
                merge_full(it->second.state, theirs.state.version, theirs.state.entries);
            }
        }
    }
};

// --- phx_ref ----------------------------------------------------------------

/// 48 bits that tell this replica's refs from every other's.
inline std::uint64_t ref_salt(const ReplicaId& id, std::size_t shard) noexcept {
    std::uint64_t h = fnv1a(id.name);
    h = fnv1a(std::to_string(id.incarnation), h ^ 0x9e3779b97f4a7c15ull);
    h = fnv1a(std::to_string(shard), h);
    return h & 0xffffffffffffull;
}

/// A phx_ref: 6 bytes of version and 6 bytes of replica salt, URL-safe base64
/// without padding (16 characters, the length Phoenix's refs have).
inline std::string make_ref(std::uint64_t version, std::uint64_t salt) {
    char bytes[12];
    for (int i = 0; i < 6; ++i)
        bytes[i] = static_cast<char>((version >> (8 * (5 - i))) & 0xff);
    for (int i = 0; i < 6; ++i)
        bytes[6 + i] = static_cast<char>((salt >> (8 * (5 - i))) & 0xff);
    return plume::detail::base64url_encode_unpadded(std::string_view(bytes, sizeof bytes));
}

// --- wire encoding of replication messages ----------------------------------
// Only plume nodes read these. Entries travel as [version, ref, topic, key, meta].

inline nlohmann::json encode_id(const ReplicaId& id) {
    return nlohmann::json::array({id.name, id.incarnation});
}

inline std::optional<ReplicaId> decode_id(const nlohmann::json& j) {
    if (!j.is_array() || j.size() != 2 || !j[0].is_string() || !j[1].is_number_unsigned())
        return std::nullopt;
    return ReplicaId{j[0].get<std::string>(), j[1].get<std::uint64_t>()};
}

inline nlohmann::json encode_entry(const Entry& e) {
    return nlohmann::json::array({e.version, e.ref, e.topic, e.key, e.meta});
}

/// Decodes the entry that starts at element `at` of the array `j`.
inline EntryPtr decode_entry(const nlohmann::json& j, std::size_t at = 0) {
    if (!j.is_array() || j.size() != at + 5 || !j[at].is_number_unsigned() ||
        !j[at + 1].is_string() || !j[at + 2].is_string() || !j[at + 3].is_string() ||
        !j[at + 4].is_object())
        return nullptr;
    auto e = std::make_shared<Entry>();
    e->version = j[at].get<std::uint64_t>();
    e->ref = j[at + 1].get<std::string>();
    e->topic = j[at + 2].get<std::string>();
    e->key = j[at + 3].get<std::string>();
    e->meta = j[at + 4];
    if (e->ref.empty() || e->topic.empty()) return nullptr;
    e->meta["phx_ref"] = e->ref;  // what clients compare; never trust it to differ
    return e;
}

/// An op is either ["+", entry...] or ["-", version, ref]. `ops` is any range of Op.
template <class Ops>
nlohmann::json encode_ops(const Ops& ops) {
    auto out = nlohmann::json::array();
    for (const Op& op : ops) {
        if (op.add) {
            auto j = encode_entry(*op.add);
            j.insert(j.begin(), "+");
            out.push_back(std::move(j));
        } else if (!op.remove.empty()) {
            out.push_back(nlohmann::json::array({"-", op.version, op.remove}));
        }
    }
    return out;
}

inline std::optional<std::vector<Op>> decode_ops(const nlohmann::json& j) {
    if (!j.is_array()) return std::nullopt;
    std::vector<Op> ops;
    ops.reserve(j.size());
    for (const auto& o : j) {
        if (!o.is_array() || o.empty() || !o[0].is_string()) return std::nullopt;
        const auto& kind = o[0].get_ref<const std::string&>();
        if (kind == "+") {
            auto e = decode_entry(o, 1);
            if (!e) return std::nullopt;
            ops.push_back(Op{e->version, std::move(e), {}});
        } else if (kind == "-" && o.size() == 3 && o[1].is_number_unsigned() && o[2].is_string()) {
            ops.push_back(Op{o[1].get<std::uint64_t>(), nullptr, o[2].get<std::string>()});
            if (ops.back().remove.empty()) return std::nullopt;
        } else {
            return std::nullopt;
        }
    }
    return ops;
}

inline nlohmann::json encode_entries(const EntryMap& entries) {
    auto out = nlohmann::json::array();
    for (const auto& [ref, e] : entries)
        out.push_back(encode_entry(*e));
    return out;
}

inline std::optional<EntryMap> decode_entries(const nlohmann::json& j) {
    if (!j.is_array()) return std::nullopt;
    EntryMap out;
    out.reserve(j.size());
    for (const auto& item : j) {
        auto e = decode_entry(item);
        if (!e) return std::nullopt;
        put(out, e);
    }
    return out;
}

}  // namespace plume::presence::detail
