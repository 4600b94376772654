// The Tracker's replication decoder, decode_replication(): what a peer's
// heartbeat, transfer and permdown messages decode to, and what is refused.
// (tests/fuzz/fuzz_tracker.cpp fuzzes it.)
#include <catch2/catch.hpp>

#include <plume/presence.hpp>

using plume::presence::detail::decode_replication;
using plume::presence::detail::Incoming;
using json = nlohmann::json;
// Replication numbers are unsigned on the wire (the tracker writes uint64s),
// hence the u suffixes below.

namespace {

// decode_replication takes the message by reference; this one lives until the
// end of the full expression that decodes it.
const plume::pubsub::Message& message(std::string event, json payload) {
    thread_local plume::pubsub::MessagePtr last;
    last = plume::pubsub::make_message("phx_tracker:t:0", std::move(event), std::move(payload));
    return *last;
}

const json from = json::array({"node1", 7u});
const json to = json::array({"node2", 9u});
const json add = json::array({"+", 3u, "ref3", "room:lobby", "42", {{"online_at", "1"}}});

}  // namespace

TEST_CASE("decode_replication reads heartbeats, transfers and permdowns", "[presence]") {
    auto hb = decode_replication(
        message("heartbeat", {{"from", from},
                              {"shards", 2u},
                              {"base", 1u},
                              {"version", 3u},
                              {"ops", json::array({json::array({"-", 2u, "ref1"}), add})}}),
        2u);
    REQUIRE(hb);
    CHECK(hb->kind == Incoming::Kind::heartbeat);
    CHECK(hb->from.name == "node1");
    CHECK(hb->from.incarnation == 7u);
    CHECK_FALSE(hb->to);
    CHECK(hb->base == 1u);
    CHECK(hb->version == 3u);
    REQUIRE(hb->ops.size() == 2u);
    CHECK(hb->ops[0].remove == "ref1");
    REQUIRE(hb->ops[1].add);
    CHECK(hb->ops[1].add->meta["phx_ref"] == "ref3");

    auto req = decode_replication(
        message("transfer_req", {{"from", from}, {"to", to}, {"shards", 2u}, {"have", 5u}}), 2u);
    REQUIRE(req);
    CHECK(req->kind == Incoming::Kind::transfer_req);
    CHECK(req->have == 5u);
    CHECK(req->to->name == "node2");

    auto ack = decode_replication(
        message("transfer_ack",
                {{"from", from},
                 {"to", to},
                 {"shards", 2u},
                 {"version", 3u},
                 {"entries",
                  json::array({json::array({3u, "ref3", "room:lobby", "42", json::object()})})}}),
        2u);
    REQUIRE(ack);
    CHECK(ack->full);
    CHECK(ack->entries.size() == 1u);

    auto down = decode_replication(message("permdown", {{"from", from}, {"shards", 2u}}), 2u);
    REQUIRE(down);
    CHECK(down->kind == Incoming::Kind::permdown);
}

TEST_CASE("decode_replication refuses malformed messages", "[presence]") {
    const json ok{{"from", from}, {"shards", 2u}, {"base", 0u}, {"version", 1u}, {"ops", {add}}};
    REQUIRE(decode_replication(message("heartbeat", ok), 2u));
    CHECK_FALSE(decode_replication(message("heartbeat", ok), 3u));  // another shard count
    CHECK_FALSE(decode_replication(message("presence_diff", ok), 2u));
    CHECK_FALSE(decode_replication(message("heartbeat", json::array()), 2u));
    auto bad = [&](const char* key, json value) {
        auto p = ok;
        p[key] = std::move(value);
        return !decode_replication(message("heartbeat", p), 2u);
    };
    CHECK(bad("from", json::array({"node1", -1})));
    CHECK(bad("base", 2u));  // base after version
    CHECK(bad("ops", json::array({json::array({"+", 1u, "", "t", "k", json::object()})})));
    CHECK(bad("ops", json::array({json::array({"-", 1u, ""})})));
    CHECK(bad("ops", json::array({json::array({"*"})})));
    // transfer_req and transfer_ack need a recipient.
    CHECK_FALSE(decode_replication(
        message("transfer_req", {{"from", from}, {"shards", 2u}, {"have", 0u}}), 2u));
    CHECK_FALSE(decode_replication(message("transfer_ack", ok), 2u));
    // A whole-state transfer in parts: part and parts together, part < parts.
    const json full{
        {"from", from},
        {"to", to},
        {"shards", 2u},
        {"version", 3u},
        {"entries", json::array({json::array({3u, "ref3", "t", "k", json::object()})})}};
    auto parts = [&](json part, json count) {
        auto p = full;
        if (!part.is_null()) p["part"] = std::move(part);
        if (!count.is_null()) p["parts"] = std::move(count);
        return decode_replication(message("transfer_ack", p), 2u);
    };
    auto one = parts(nullptr, nullptr);
    REQUIRE(one);
    CHECK(one->parts == 1u);
    auto second = parts(1u, 3u);
    REQUIRE(second);
    CHECK(second->part == 1u);
    CHECK(second->parts == 3u);
    CHECK_FALSE(parts(1u, nullptr));
    CHECK_FALSE(parts(nullptr, 3u));
    CHECK_FALSE(parts(3u, 3u));
    CHECK_FALSE(parts(0u, 0u));
    CHECK_FALSE(parts(0u, 1u << 20));
    CHECK_FALSE(parts(-1, 3u));
}
