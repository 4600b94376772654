// plume/presence/detail/replication.hpp — the tracker's replication messages
// as values: Incoming (a decoded heartbeat, transfer_req, transfer_ack or
// permdown) and decode_replication(), which checks every field of what a
// peer sent. The encoders are in state.hpp.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "plume/detail/utf8.hpp"
#include "plume/presence/detail/state.hpp"
#include "plume/presence/entry.hpp"
#include "plume/pubsub/pubsub.hpp"

namespace plume::presence::detail {

/// An incoming replication message, decoded.
struct Incoming {
    enum class Kind { heartbeat, transfer_req, transfer_ack, permdown } kind = Kind::heartbeat;
    ReplicaId from;
    std::optional<ReplicaId> to;
    std::uint64_t base = 0;
    std::uint64_t version = 0;
    std::uint64_t have = 0;
    bool full = false;
    std::uint64_t part = 0;  // of a whole-state transfer in `parts` messages
    std::uint64_t parts = 1;
    std::vector<Op> ops;
    EntryMap entries;
};

/// Most parts of one whole-state transfer a receiver accepts.
inline constexpr std::uint64_t max_transfer_parts = 1 << 16;

inline std::optional<std::uint64_t> get_u64(const nlohmann::json& j, const char* name) {
    auto it = j.find(name);
    if (it == j.end() || !it->is_number_unsigned()) return std::nullopt;
    return it->get<std::uint64_t>();
}

/// A run of a shard's log, for encode_ops. Not std::ranges::subrange: clang 14
/// cannot instantiate libstdc++ 12's subrange (Debian 12's default clang).
struct OpSlice {
    std::deque<Op>::const_iterator first, last;
    auto begin() const noexcept { return first; }
    auto end() const noexcept { return last; }
};

/// Decodes a replication message (heartbeat, transfer_req, transfer_ack,
/// permdown) from a peer running `shards` shards; nullopt for anything
/// malformed. A free function so the fuzzer can reach it without a tracker.
inline std::optional<Incoming> decode_replication(const pubsub::Message& m, std::size_t shards) {
    try {
        const auto& p = m.payload;
        if (!p.is_object()) return std::nullopt;
        Incoming in;
        auto from = p.find("from");
        if (from == p.end()) return std::nullopt;
        auto id = decode_id(*from);
        if (!id) return std::nullopt;
        in.from = std::move(*id);
        if (auto n = get_u64(p, "shards"); !n || *n != shards) return std::nullopt;
        if (auto to = p.find("to"); to != p.end()) {
            in.to = decode_id(*to);
            if (!in.to) return std::nullopt;
        }
        auto read_delta = [&]() -> bool {
            auto base = get_u64(p, "base");
            auto version = get_u64(p, "version");
            auto ops = p.find("ops");
            if (!base || !version || ops == p.end() || *base > *version) return false;
            auto decoded = decode_ops(*ops);
            if (!decoded) return false;
            in.base = *base;
            in.version = *version;
            in.ops = std::move(*decoded);
            return true;
        };
        if (m.event == "heartbeat") {
            in.kind = Incoming::Kind::heartbeat;
            if (!read_delta()) return std::nullopt;
        } else if (m.event == "transfer_req") {
            in.kind = Incoming::Kind::transfer_req;
            auto have = get_u64(p, "have");
            if (!have || !in.to) return std::nullopt;
            in.have = *have;
        } else if (m.event == "transfer_ack") {
            in.kind = Incoming::Kind::transfer_ack;
            if (!in.to) return std::nullopt;
            if (auto entries = p.find("entries"); entries != p.end()) {
                auto version = get_u64(p, "version");
                auto decoded = decode_entries(*entries);
                if (!version || !decoded) return std::nullopt;
                in.full = true;
                in.version = *version;
                in.entries = std::move(*decoded);
                auto part = get_u64(p, "part");
                auto parts = get_u64(p, "parts");
                if (part.has_value() != parts.has_value()) return std::nullopt;
                if (parts) {
                    if (*parts == 0 || *parts > max_transfer_parts || *part >= *parts)
                        return std::nullopt;
                    in.part = *part;
                    in.parts = *parts;
                }
            } else if (!read_delta()) {
                return std::nullopt;
            }
        } else if (m.event == "permdown") {
            in.kind = Incoming::Kind::permdown;
        } else {
            return std::nullopt;
        }
        return in;
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
}

}  // namespace plume::presence::detail
