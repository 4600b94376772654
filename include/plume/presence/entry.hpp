// plume/presence/entry.hpp — one tracked presence: what list() returns and
// what diffs are made of.
//
// An Entry is immutable and shared (EntryPtr) between the tracker's indexes,
// its replication log and every diff or list that mentions it, so reading a
// topic with thousands of presences copies pointers, not JSON.
//
//   for (const plume::presence::EntryPtr& e : tracker.list("room:lobby"))
//       std::cout << e->key << " " << e->meta.dump() << "\n";   // meta has phx_ref
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace plume::presence {

/// Who tracked a presence on this node: an opaque id the caller chooses, one
/// per channel (Phoenix uses the channel's pid). untrack_all(owner) removes
/// everything an owner tracked, which is what a channel does when it ends.
using OwnerId = std::uint64_t;

/// A fresh OwnerId, unique in this process (never 0): one per channel instance.
inline OwnerId new_owner_id() noexcept {
    static std::atomic<OwnerId> next{0};
    return ++next;
}

struct Entry {
    std::string topic;
    std::string key;
    /// The phx_ref: unique in the cluster, 16 URL-safe base64 characters.
    std::string ref;
    /// The caller's meta plus "phx_ref" (and "phx_ref_prev" after an update):
    /// exactly one element of the "metas" array phoenix.js receives.
    nlohmann::json meta;
    /// The owner that tracked it, for entries of this node (0 for others').
    OwnerId owner = 0;
    /// Tracked on this node (by this tracker incarnation).
    bool local = false;
    /// The owning replica's version when it was added (replication bookkeeping).
    std::uint64_t version = 0;
};

using EntryPtr = std::shared_ptr<const Entry>;

}  // namespace plume::presence
