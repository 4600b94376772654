// Presence payloads byte for byte as phoenix.js's Presence reads them
// (presence_state, presence_diff), the Presence hooks (fetch, handle_metas,
// first join / last leave), and the tests' replay of phoenix.js's
// syncState / syncDiff (support/presence_sync.hpp), checked on the cases
// phoenix.js's own test suite uses.
#include <catch2/catch.hpp>

#include <plume/presence.hpp>
#include <plume/wire.hpp>

#include <map>
#include <string>
#include <vector>

#include "support/presence_cluster.hpp"
#include "support/presence_sync.hpp"

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace presence = plume::presence;
using plume::presence::Presence;
using plume::presence::PresenceOptions;

namespace {

PresenceOptions fixed_options(plume::test::ManualClock& clock) {
    PresenceOptions o;
    o.tracker.incarnation = 1;  // refs are then the same on every run
    o.tracker.clock = clock.fn();
    o.tracker.diff_window = std::chrono::milliseconds(0);  // one diff per change, at once
    return o;
}

struct DiffLog {
    std::vector<std::pair<std::string, json>> diffs;
    void attach(PresenceOptions& o) {
        o.on_diff = [this](const std::string& topic, const json& d) {
            diffs.emplace_back(topic, d);
        };
    }
};

std::string frame_of(const plume::wire::Message& m) {
    return plume::wire::V2Json::encode(m).value().bytes;
}
std::string frame_of(const plume::wire::Broadcast& b) {
    return plume::wire::V2Json::encode(b).value().bytes;
}

}  // namespace

TEST_CASE("phx_ref: 16 URL-safe characters, stable for a given replica", "[presence]") {
    plume::test::ManualClock clock;
    plume::pubsub::PubSub<> ps;
    Presence p(ps, fixed_options(clock));
    auto r1 = p.track(1, "room:lobby", "42", json::object());
    auto r2 = p.track(2, "room:lobby", "43", json::object());
    REQUIRE(r1);
    REQUIRE(r2);
    // 6 bytes of the replica's operation counter, then 6 bytes naming the replica (and shard).
    CHECK(*r1 == "AAAAAAAB" + r1->substr(8));
    CHECK(*r2 == "AAAAAAAC" + r1->substr(8));
    CHECK(r1->size() == 16);
    CHECK(*r1 ==
          presence::detail::make_ref(
              1, presence::detail::ref_salt({"local", 1}, p.tracker().shard_of("room:lobby"))));
}

TEST_CASE("presence_state is {key: {metas: [...]}} byte for byte", "[presence]") {
    plume::test::ManualClock clock;
    plume::pubsub::PubSub<> ps;
    Presence p(ps, fixed_options(clock));
    CHECK(p.presence_state("room:lobby").dump() == "{}");

    auto r42 = p.track(1, "room:lobby", "42", {{"online_at", "1700000000"}});
    auto r7a = p.track(2, "room:lobby", "7", json::object());
    auto r7b = p.track(3, "room:lobby", "7", {{"device", "phone"}, {"n", 2}});
    REQUIRE(r42);
    REQUIRE(r7a);
    REQUIRE(r7b);
    const std::string expected = R"({"42":{"metas":[{"online_at":"1700000000","phx_ref":")" + *r42 +
                                 R"("}]},"7":{"metas":[{"phx_ref":")" + *r7a +
                                 R"("},{"device":"phone","n":2,"phx_ref":")" + *r7b + R"("}]}})";
    CHECK(p.presence_state("room:lobby").dump() == expected);
    CHECK(p.list("room:lobby") == p.presence_state("room:lobby"));

    // As the channel pushes it after join: its join_ref, no ref.
    plume::wire::Message push{"3", std::nullopt, "room:lobby", "presence_state",
                              p.presence_state("room:lobby")};
    CHECK(frame_of(push) == R"(["3",null,"room:lobby","presence_state",)" + expected + "]");

    CHECK(p.get_by_key("room:lobby", "7").dump() ==
          R"({"metas":[{"phx_ref":")" + *r7a + R"("},{"device":"phone","n":2,"phx_ref":")" + *r7b +
              R"("}]})");
    CHECK(p.get_by_key("room:lobby", "nobody").is_null());
}

TEST_CASE("presence_diff for a join, a leave and an update, byte for byte", "[presence]") {
    plume::test::ManualClock clock;
    plume::pubsub::PubSub<> ps;
    auto o = fixed_options(clock);
    DiffLog log;
    log.attach(o);
    Presence p(ps, o);

    auto r1 = p.track(1, "room:lobby", "42", {{"status", "online"}});
    REQUIRE(r1);
    REQUIRE(log.diffs.size() == 1);
    CHECK(log.diffs[0].first == "room:lobby");
    CHECK(log.diffs[0].second.dump() == R"({"joins":{"42":{"metas":[{"phx_ref":")" + *r1 +
                                            R"(","status":"online"}]}},"leaves":{}})");

    auto r2 = p.update(1, "room:lobby", "42", {{"status", "away"}});
    REQUIRE(r2);
    REQUIRE(log.diffs.size() == 2);
    const std::string update_diff =
        R"({"joins":{"42":{"metas":[{"phx_ref":")" + *r2 + R"(","phx_ref_prev":")" + *r1 +
        R"(","status":"away"}]}},"leaves":{"42":{"metas":[{"phx_ref":")" + *r1 +
        R"(","status":"online"}]}}})";
    CHECK(log.diffs[1].second.dump() == update_diff);
    // As broadcast to the topic: join_ref and ref null.
    plume::wire::Broadcast b{"room:lobby", "presence_diff", log.diffs[1].second};
    CHECK(frame_of(b) == R"([null,null,"room:lobby","presence_diff",)" + update_diff + "]");

    CHECK(p.untrack(1, "room:lobby", "42") == std::error_code{});
    REQUIRE(log.diffs.size() == 3);
    CHECK(log.diffs[2].second.dump() == R"({"joins":{},"leaves":{"42":{"metas":[{"phx_ref":")" +
                                            *r2 + R"(","phx_ref_prev":")" + *r1 +
                                            R"(","status":"away"}]}}})");
}

TEST_CASE("keys and metas go out as JSON phoenix.js parses, whatever they contain", "[presence]") {
    plume::test::ManualClock clock;
    plume::pubsub::PubSub<> ps;
    Presence p(ps, fixed_options(clock));
    auto a = p.track(1, "t", "__proto__", {{"name", "Zoë \"Z\" \xe2\x9c\x93"}});
    auto b = p.track(1, "t", "line\nbreak", {{"nested", {{"x", {1, 2}}}}});
    REQUIRE(a);
    REQUIRE(b);
    const auto text = p.presence_state("t").dump();
    CHECK(text == R"({"__proto__":{"metas":[{"name":"Zoë \"Z\" ✓","phx_ref":")" + *a +
                      R"("}]},"line\nbreak":{"metas":[{"nested":{"x":[1,2]},"phx_ref":")" + *b +
                      R"("}]}})");
    CHECK(json::parse(text) == p.presence_state("t"));
}

TEST_CASE("fetch enriches list, get_by_key and each side of a diff in one call", "[presence]") {
    plume::test::ManualClock clock;
    plume::pubsub::PubSub<> ps;
    auto o = fixed_options(clock);
    DiffLog log;
    log.attach(o);
    std::vector<std::vector<std::string>> batches;
    o.fetch = [&](const std::string& topic, json& presences) {
        CHECK(topic == "room:1");
        std::vector<std::string> keys;
        for (auto& [key, value] : presences.items()) {
            keys.push_back(key);
            value["user"] = {{"name", "user " + key}};  // beside "metas", as in Phoenix
        }
        batches.push_back(keys);
    };
    Presence p(ps, o);
    REQUIRE(p.track(1, "room:1", "a", json::object()));
    REQUIRE(p.track(2, "room:1", "b", json::object()));
    batches.clear();

    auto list = p.list("room:1");
    REQUIRE(batches.size() == 1);  // the whole list in one batch
    CHECK(batches[0] == std::vector<std::string>{"a", "b"});
    CHECK(list["a"]["user"]["name"] == "user a");
    CHECK(list["a"]["metas"].size() == 1);
    CHECK(p.get_by_key("room:1", "b")["user"]["name"] == "user b");

    batches.clear();
    REQUIRE(p.update(2, "room:1", "b", {{"s", 1}}));
    CHECK(batches.size() == 2);  // joins, then leaves
    const auto& d = log.diffs.back().second;
    CHECK(d["joins"]["b"]["user"]["name"] == "user b");
    CHECK(d["leaves"]["b"]["user"]["name"] == "user b");

    batches.clear();
    CHECK(p.list("room:2").empty());
    CHECK(batches.empty());  // nothing to enrich, fetch not called
}

TEST_CASE("handle_metas sees every diff with the current state; first join and last leave",
          "[presence]") {
    plume::test::ManualClock clock;
    plume::pubsub::PubSub<> ps;
    auto o = fixed_options(clock);
    std::vector<std::string> events;
    std::map<std::string, std::size_t> current_sizes;
    o.handle_metas = [&](const std::string& topic, const presence::Grouped& joins,
                         const presence::Grouped& leaves, const presence::Grouped& current) {
        events.push_back("metas " + topic + " +" + std::to_string(joins.size()) + " -" +
                         std::to_string(leaves.size()));
        current_sizes.clear();
        for (auto& [k, v] : current)
            current_sizes[k] = v.size();
    };
    o.on_join = [&](const std::string& topic, const std::string& key,
                    const std::vector<presence::EntryPtr>& metas) {
        events.push_back("join " + topic + " " + key + " " + std::to_string(metas.size()));
    };
    o.on_leave = [&](const std::string& topic, const std::string& key,
                     const std::vector<presence::EntryPtr>& metas) {
        events.push_back("leave " + topic + " " + key + " " + std::to_string(metas.size()));
    };
    Presence p(ps, o);

    REQUIRE(p.track(1, "t", "u", json::object()));  // first meta of u: a join
    REQUIRE(p.track(2, "t", "u", json::object()));  // second tab: no join
    CHECK(current_sizes == std::map<std::string, std::size_t>{{"u", 2}});
    REQUIRE(p.update(1, "t", "u", {{"x", 1}}));          // leave+join of one meta: neither
    CHECK(p.untrack(1, "t", "u") == std::error_code{});  // one tab left
    CHECK(p.untrack(2, "t", "u") == std::error_code{});  // the last one: a leave
    CHECK(current_sizes.empty());
    CHECK(events == std::vector<std::string>{"metas t +1 -0", "join t u 1", "metas t +1 -0",
                                             "metas t +1 -1", "metas t +0 -1", "metas t +0 -1",
                                             "leave t u 1"});
}

TEST_CASE("the tests' sync_diff and sync_state behave as phoenix.js's Presence", "[presence]") {
    using plume::test::sync_diff;
    using plume::test::sync_state;
    const json fixture_state = json::parse(R"({
        "u1": {"metas": [{"id": 1, "phx_ref": "1"}]},
        "u2": {"metas": [{"id": 2, "phx_ref": "2"}]},
        "u3": {"metas": [{"id": 3, "phx_ref": "3"}]}})");
    const json fixture_joins = json::parse(R"({"u1": {"metas": [{"id": 1, "phx_ref": "1.2"}]}})");
    const json fixture_leaves = json::parse(R"({"u2": {"metas": [{"id": 2, "phx_ref": "2"}]}})");

    SECTION("syncState syncs empty state") {
        const json fresh = json::parse(R"({"u1": {"metas": [{"id": 1, "phx_ref": "1"}]}})");
        CHECK(sync_state(json::object(), fresh) == fresh);
    }
    SECTION("syncState calls onJoin for new presences and onLeave for left ones") {
        std::map<std::string, json> joined, left;
        auto state = sync_state(
            json::parse(R"({"u4": {"metas": [{"id": 4, "phx_ref": "4"}]}})"), fixture_state,
            [&](const std::string& k, const json* cur, const json& p) {
                joined[k] = {{"current", cur ? *cur : json()}, {"newPres", p}};
            },
            [&](const std::string& k, const json& cur, const json& p) {
                left[k] = {{"current", cur}, {"leftPres", p}};
            });
        CHECK(state == fixture_state);
        CHECK(joined.size() == 3);
        CHECK(joined["u1"] == json::parse(R"({"current": null,
                                 "newPres": {"metas": [{"id": 1, "phx_ref": "1"}]}})"));
        CHECK(left.size() == 1);
        CHECK(left["u4"] == json::parse(R"({"current": {"metas": []},
                                 "leftPres": {"metas": [{"id": 4, "phx_ref": "4"}]}})"));
    }
    SECTION("syncState joins only newly added metas") {
        const json fresh = json::parse(
            R"({"u3": {"metas": [{"id": 3, "phx_ref": "3"}, {"id": 3, "phx_ref": "3.new"}]}})");
        std::vector<json> joins;
        auto state =
            sync_state(json::parse(R"({"u3": {"metas": [{"id": 3, "phx_ref": "3"}]}})"), fresh,
                       [&](const std::string&, const json*, const json& p) { joins.push_back(p); });
        CHECK(state == fresh);
        REQUIRE(joins.size() == 1);
        CHECK(joins[0] == json::parse(R"({"metas": [{"id": 3, "phx_ref": "3.new"}]})"));
    }
    SECTION("syncDiff syncs empty state") {
        const json joins = json::parse(R"({"u1": {"metas": [{"id": 1, "phx_ref": "1"}]}})");
        CHECK(sync_diff(json::object(), {{"joins", joins}, {"leaves", json::object()}}) == joins);
    }
    SECTION("syncDiff removes presence when meta is empty and adds additional meta") {
        auto state =
            sync_diff(fixture_state, {{"joins", fixture_joins}, {"leaves", fixture_leaves}});
        CHECK(state == json::parse(R"({
            "u1": {"metas": [{"id": 1, "phx_ref": "1"}, {"id": 1, "phx_ref": "1.2"}]},
            "u3": {"metas": [{"id": 3, "phx_ref": "3"}]}})"));
    }
    SECTION("syncDiff removes a meta while leaving the key if other metas exist") {
        auto state = sync_diff(
            json::parse(
                R"({"u1": {"metas": [{"id": 1, "phx_ref": "1"}, {"id": 1, "phx_ref": "1.2"}]}})"),
            json::parse(
                R"({"joins": {}, "leaves": {"u1": {"metas": [{"id": 1, "phx_ref": "1"}]}}})"));
        CHECK(state == json::parse(R"({"u1": {"metas": [{"id": 1, "phx_ref": "1.2"}]}})"));
    }
    SECTION("an update diff (leave old ref, join new ref under one key) keeps the key") {
        auto state = sync_diff(
            json::parse(R"({"u": {"metas": [{"s": "a", "phx_ref": "1"}]}})"),
            json::parse(
                R"({"joins": {"u": {"metas": [{"s": "b", "phx_ref": "2", "phx_ref_prev": "1"}]}},
                            "leaves": {"u": {"metas": [{"s": "a", "phx_ref": "1"}]}}})"));
        CHECK(
            state ==
            json::parse(R"({"u": {"metas": [{"s": "b", "phx_ref": "2", "phx_ref_prev": "1"}]}})"));
    }
    SECTION("leaves of unknown keys are ignored") {
        CHECK(sync_diff(fixture_state, {{"joins", json::object()},
                                        {"leaves", {{"zz", {{"metas", {{{"phx_ref", "9"}}}}}}}}}) ==
              fixture_state);
    }
}

TEST_CASE("a client fed presence_state then the diffs of another node ends with its list",
          "[presence]") {
    plume::test::PresenceCluster c(2, [] {
        presence::TrackerOptions o;
        o.broadcast_period = 100ms;
        o.max_silent_periods = 1;
        o.down_period = 300ms;
        o.permdown_period = 1s;
        o.diff_window = 0ms;
        return o;
    }());
    REQUIRE(c.tracker(0).track(1, "room", "alice", {{"tab", 1}}));
    c.run(2);
    // A phoenix.js client joins on node 1: presence_state first...
    json client = plume::test::sync_state(json::object(), c.list(1, "room"));
    const std::size_t seen = c.node(1).diffs.size();
    // ...then everything that happens anywhere reaches it as presence_diff from node 1.
    REQUIRE(c.tracker(0).track(2, "room", "alice", {{"tab", 2}}));
    REQUIRE(c.tracker(1).track(3, "room", "bob", json::object()));
    REQUIRE(c.tracker(0).update(1, "room", "alice", {{"tab", 1}, {"away", true}}));
    c.run(2);
    REQUIRE(c.tracker(1).untrack(3, "room", "bob") == std::error_code{});
    REQUIRE(c.tracker(0).track(4, "room", "carol", json::object()));
    c.run(2);
    const auto& diffs = c.node(1).diffs;
    for (std::size_t i = seen; i < diffs.size(); ++i)
        client = plume::test::sync_diff(client, diffs[i].payload);
    // Same presences; within a key the client keeps arrival order, the server phx_ref order.
    auto sorted = [](json state) {
        for (auto& [k, v] : state.items())
            std::sort(v["metas"].begin(), v["metas"].end(),
                      [](const json& a, const json& b) { return a["phx_ref"] < b["phx_ref"]; });
        return state;
    };
    CHECK(sorted(client) == c.list(1, "room"));
    CHECK(c.list(1, "room") == c.list(0, "room"));
    CHECK(c.list(1, "room")["alice"]["metas"].size() == 2);
}
