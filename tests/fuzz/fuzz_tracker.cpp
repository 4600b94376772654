// Fuzzes the presence Tracker's replication decoder
// (plume::presence::detail::decode_replication). Input: [event][shards] then
// the JSON payload a peer sent.
//   event % 5: heartbeat, transfer_req, transfer_ack, permdown, something else
//   shards: the receiver's shard count, 1 + shards % 8
// Properties: a decoded message re-encoded the way TrackerCore sends it
// decodes to the same message, and merging it into a replica's state keeps
// that state consistent (every entry keyed by its own ref).
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "plume/presence/tracker.hpp"
#include "plume/wire/detail/json.hpp"

namespace {

using namespace plume::presence;
using namespace plume::presence::detail;

bool same_entry(const EntryPtr& a, const EntryPtr& b) {
    if (!a || !b) return a == b;
    return a->version == b->version && a->ref == b->ref && a->topic == b->topic &&
           a->key == b->key && a->meta == b->meta;
}

bool same(const Incoming& a, const Incoming& b) {
    if (a.kind != b.kind || a.from != b.from || a.to != b.to || a.base != b.base ||
        a.version != b.version || a.have != b.have || a.full != b.full ||
        a.ops.size() != b.ops.size() || a.entries.size() != b.entries.size())
        return false;
    for (std::size_t i = 0; i < a.ops.size(); ++i)
        if (a.ops[i].version != b.ops[i].version || a.ops[i].remove != b.ops[i].remove ||
            !same_entry(a.ops[i].add, b.ops[i].add))
            return false;
    for (auto& [ref, e] : a.entries) {
        auto it = b.entries.find(ref);
        if (it == b.entries.end() || !same_entry(e, it->second)) return false;
    }
    return true;
}

// The payload TrackerCore would send for `in` (see push_message's callers).
nlohmann::json encode(const Incoming& in, std::size_t shards) {
    nlohmann::json p{{"from", encode_id(in.from)}, {"shards", shards}};
    if (in.to) p["to"] = encode_id(*in.to);
    switch (in.kind) {
        case Incoming::Kind::transfer_req:
            p["have"] = in.have;
            break;
        case Incoming::Kind::permdown:
            break;
        case Incoming::Kind::heartbeat:
        case Incoming::Kind::transfer_ack:
            p["version"] = in.version;
            if (in.full) {
                p["entries"] = encode_entries(in.entries);
            } else {
                p["base"] = in.base;
                p["ops"] = encode_ops(in.ops);
            }
            break;
    }
    return p;
}

void check_state(const ReplicaState& s) {
    for (auto& [ref, e] : s.entries)
        FUZZ_CHECK(e && ref == e->ref && !e->ref.empty() && !e->topic.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static constexpr const char* events[] = {"heartbeat", "transfer_req", "transfer_ack",
                                             "permdown", "presence_diff"};
    if (size < 2) return 0;
    const std::size_t shards = 1 + data[1] % 8;
    // Replication payloads arrive through PubSub already parsed; the wire
    // serializers' depth bound keeps the fuzzer off nlohmann's recursion.
    auto payload = plume::wire::detail::parse_json(
        std::string_view(reinterpret_cast<const char*>(data) + 2, size - 2));
    if (!payload) return 0;
    plume::pubsub::Message m;
    m.topic = "phx_tracker:fuzz:0";
    m.event = events[data[0] % 5];
    m.payload = std::move(*payload);

    auto in = decode_replication(m, shards);
    if (!in) return 0;
    FUZZ_CHECK(m.event != "presence_diff");

    plume::pubsub::Message again;
    again.topic = m.topic;
    again.event = m.event;
    again.payload = encode(*in, shards);
    auto back = decode_replication(again, shards);
    FUZZ_CHECK(back && same(*in, *back));
    FUZZ_CHECK(!decode_replication(again, shards + 1));

    // Merge it into a replica's copy, as TrackerCore::handle does.
    ReplicaState state;
    Change change;
    if (in->full)
        FUZZ_CHECK(merge_full(state, in->version, std::move(in->entries), &change));
    else if (in->kind == Incoming::Kind::heartbeat || in->kind == Incoming::Kind::transfer_ack)
        FUZZ_CHECK(apply_delta(state, in->base, in->version, in->ops, &change) == (in->base == 0));
    check_state(state);
    return 0;
}
