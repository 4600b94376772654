// plume::client::Presence against phoenix.js's Presence: the same message
// sequences must give the same callbacks (with the same arguments, and the
// same list() seen from inside them) and the same list() order.
//
// The expected behaviour was recorded by running phoenix.js 1.8.16 over the
// sequences (tests/node/support/presence_reference.mjs --header) and is
// embedded in support/client_presence_reference.hpp; the Node test
// client_presence_reference.test.mjs re-runs phoenix.js and fails if the
// embedded recording ever differs from what phoenix.js does.
#include <catch2/catch.hpp>

#include <plume/client/presence.hpp>

#include <optional>
#include <string>

#include "support/client_presence_reference.hpp"

namespace pc = plume::client;
using nlohmann::json;

namespace {

json keys_of(const pc::PresenceSync& sync) {
    return sync.list([](const std::string& key, const json&) { return key; });
}

// Feeds one recorded sequence to PresenceSync and records what phoenix.js's
// runCase() records.
json run_case(const json& steps) {
    pc::PresenceSync sync;
    json events = json::array();
    std::optional<std::string> join_ref;
    sync.on_join(
        [&](const std::string& key, const std::optional<json>& current, const json& joined) {
            events.push_back({{"type", "join"},
                              {"key", key},
                              {"current", current ? *current : json()},
                              {"joined", joined},
                              {"list", sync.list()}});
        });
    sync.on_leave([&](const std::string& key, const json& current, const json& left) {
        events.push_back({{"type", "leave"},
                          {"key", key},
                          {"current", current},
                          {"left", left},
                          {"list", sync.list()}});
    });
    sync.on_sync([&] { events.push_back({{"type", "sync"}, {"list", sync.list()}}); });
    for (auto& step : steps) {
        auto op = step["op"].get<std::string>();
        if (op == "join")
            join_ref = step["ref"].get<std::string>();
        else if (op == "state")
            sync.handle_state(step["payload"], join_ref);
        else if (op == "diff")
            sync.handle_diff(step["payload"], join_ref);
        events.push_back({{"type", "step"},
                          {"keys", keys_of(sync)},
                          {"pending", sync.in_pending_sync_state(join_ref)}});
    }
    return events;
}

}  // namespace

TEST_CASE("client Presence matches phoenix.js on recorded sequences", "[client][presence]") {
    auto reference = json::parse(plume::test::client_presence_reference());
    REQUIRE(reference["cases"].size() >= 30);
    for (auto& c : reference["cases"]) {
        INFO("case: " << c["name"].get<std::string>());
        auto actual = run_case(c["steps"]);
        auto& expected = c["expected"];
        REQUIRE(actual.size() == expected.size());
        for (std::size_t i = 0; i < expected.size(); ++i) {
            INFO("event " << i);
            CHECK(actual[i].dump() == expected[i].dump());
        }
    }
}

TEST_CASE("PresenceState iterates in JavaScript property order", "[client][presence]") {
    pc::PresenceState s;
    for (auto key : {"b", "10", "a", "2", "007", "4294967294", "4294967295", "0"})
        s.set(key, json::object());
    CHECK(s.keys() ==
          std::vector<std::string>{"0", "2", "10", "4294967294", "b", "a", "007", "4294967295"});
    s.set("b", json{{"x", 1}});  // replacing keeps the position
    CHECK(s.keys().at(4) == "b");
    s.erase("b");
    s.set("b", json::object());  // re-adding goes to the end
    CHECK(s.keys().back() == "b");
}

TEST_CASE("Presence static API: sync_state, sync_diff, list", "[client][presence]") {
    auto meta = [](const char* ref) { return json{{"phx_ref", ref}}; };
    json state = {{"alice", {{"metas", {meta("a1")}}}}, {"bob", {{"metas", {meta("b1")}}}}};
    std::vector<std::string> joined, left;
    auto on_join = [&](const std::string& k, const std::optional<json>&, const json&) {
        joined.push_back(k);
    };
    auto on_leave = [&](const std::string& k, const json&, const json&) { left.push_back(k); };

    auto s = pc::Presence::sync_state({}, state, on_join, on_leave);
    CHECK(joined == std::vector<std::string>{"alice", "bob"});
    CHECK(pc::Presence::list(s).size() == 2);

    s = pc::Presence::sync_diff(s,
                                {{"joins", {{"alice", {{"metas", {meta("a2")}}}}}},
                                 {"leaves", {{"bob", {{"metas", {meta("b1")}}}}}}},
                                on_join, on_leave);
    CHECK(left == std::vector<std::string>{"bob"});
    auto list = pc::Presence::list(s);
    REQUIRE(list.size() == 1);
    CHECK(list[0]["metas"] == json{meta("a1"), meta("a2")});

    // Malformed payloads are tolerated, never thrown on.
    s = pc::Presence::sync_diff(s, json("nonsense"));
    s = pc::Presence::sync_diff(s, {{"joins", {{"x", 5}, {"y", {{"metas", 3}}}}}});
    s = pc::Presence::sync_state(s, json::array());
    CHECK(s.empty());
}
