// The presence Tracker: local operations and their errors, diffs and their
// coalescing, replication between replicas (heartbeats, transfers, down,
// permdown, restarts, graceful stop), callbacks, executor mode and threads.
#include <catch2/catch.hpp>

#include <plume/presence.hpp>

#include <atomic>
#include <set>
#include <thread>

#include "support/memory_bus.hpp"
#include "support/presence_cluster.hpp"
#include "support/run_until.hpp"

using namespace std::chrono_literals;
using plume::presence::EntryPtr;
using plume::presence::Tracker;
using plume::presence::TrackerOptions;
using plume::test::ManualClock;
using plume::test::PresenceCluster;
namespace presence = plume::presence;
using json = nlohmann::json;

namespace {

TrackerOptions fast_options() {
    TrackerOptions o;
    o.broadcast_period = 100ms;
    o.max_silent_periods = 1;
    o.down_period = 300ms;
    o.permdown_period = 1000ms;
    o.shards = 2;
    o.diff_window = 0ms;  // one diff per change, delivered at once
    return o;
}

struct Diffs {
    std::vector<std::tuple<std::string, std::vector<EntryPtr>, std::vector<EntryPtr>>> all;
    presence::DiffHandler handler() {
        return [this](const std::string& t, const std::vector<EntryPtr>& j,
                      const std::vector<EntryPtr>& l) { all.emplace_back(t, j, l); };
    }
    json payload(std::size_t i) const {
        return presence::diff_payload(presence::to_json(std::get<1>(all.at(i))),
                                      presence::to_json(std::get<2>(all.at(i))));
    }
};

std::vector<std::string> keys_of(const std::vector<EntryPtr>& v) {
    std::vector<std::string> out;
    for (auto& e : v)
        out.push_back(e->key);
    return out;
}

// A single tracker on the Local adapter, on a manual clock.
struct Solo {
    ManualClock clock;
    Diffs diffs;
    plume::pubsub::PubSub<> pubsub;
    std::unique_ptr<Tracker> tracker;
    explicit Solo(TrackerOptions o = fast_options()) {
        o.clock = clock.fn();
        o.on_diff = diffs.handler();
        tracker = std::make_unique<Tracker>(pubsub, o);
    }
};

}  // namespace

TEST_CASE("track adds a presence with a phx_ref; list and get_by_key see it", "[presence]") {
    Solo s;
    auto ref = s.tracker->track(1, "room:lobby", "42", {{"online_at", "1700000000"}});
    REQUIRE(ref);
    CHECK(ref->size() == 16);
    CHECK(ref->find_first_not_of(
              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
          std::string::npos);
    auto l = s.tracker->list("room:lobby");
    REQUIRE(l.size() == 1);
    CHECK(l[0]->key == "42");
    CHECK(l[0]->ref == *ref);
    CHECK(l[0]->meta == json{{"online_at", "1700000000"}, {"phx_ref", *ref}});
    CHECK(l[0]->owner == 1);
    CHECK(l[0]->local);
    CHECK(s.tracker->get_by_key("room:lobby", "42").size() == 1);
    CHECK(s.tracker->get_by_key("room:lobby", "7").empty());
    CHECK(s.tracker->list("room:other").empty());
    CHECK(s.tracker->topics() == std::vector<std::string>{"room:lobby"});
    // One diff, delivered before track() returned (no coalescing window).
    REQUIRE(s.diffs.all.size() == 1);
    CHECK(std::get<0>(s.diffs.all[0]) == "room:lobby");
    CHECK(keys_of(std::get<1>(s.diffs.all[0])) == std::vector<std::string>{"42"});
    CHECK(std::get<2>(s.diffs.all[0]).empty());
}

TEST_CASE("one owner tracks a (topic, key) once; other owners add metas", "[presence]") {
    Solo s;
    REQUIRE(s.tracker->track(1, "t", "u", {{"tab", 1}}));
    auto again = s.tracker->track(1, "t", "u", {{"tab", 2}});
    CHECK(again.error() == presence::error::already_tracked);
    CHECK(s.tracker->track(2, "t", "u", {{"tab", 2}}));
    CHECK(s.tracker->track(1, "t", "v", json::object()));
    CHECK(s.tracker->track(1, "t2", "u", json::object()));
    CHECK(s.tracker->get_by_key("t", "u").size() == 2);
    auto l = s.tracker->list("t");
    REQUIRE(l.size() == 3);
    CHECK(keys_of(l) == std::vector<std::string>{"u", "u", "v"});  // by key, then phx_ref
    CHECK(l[0]->ref < l[1]->ref);
    CHECK(s.diffs.all.size() == 4);  // the refused track made no diff
}

TEST_CASE("update gives a new phx_ref with phx_ref_prev; the diff is leave old + join new",
          "[presence]") {
    Solo s;
    auto r1 = s.tracker->track(1, "t", "u", {{"status", "online"}});
    REQUIRE(r1);
    s.diffs.all.clear();
    auto r2 = s.tracker->update(1, "t", "u", {{"status", "away"}, {"phx_ref", "forged"}});
    REQUIRE(r2);
    CHECK(*r2 != *r1);
    auto l = s.tracker->list("t");
    REQUIRE(l.size() == 1);
    CHECK(l[0]->meta == json{{"status", "away"}, {"phx_ref", *r2}, {"phx_ref_prev", *r1}});
    REQUIRE(s.diffs.all.size() == 1);
    CHECK(s.diffs.payload(0) ==
          json{{"joins", {{"u", {{"metas", {l[0]->meta}}}}}},
               {"leaves", {{"u", {{"metas", {{{"status", "online"}, {"phx_ref", *r1}}}}}}}}});

    SECTION("with a function of the old meta, which sees phx_ref") {
        auto r3 = s.tracker->update(1, "t", "u", [&](const json& old) {
            CHECK(old.at("phx_ref") == *r2);
            json m = old;
            m["status"] = "busy";
            return m;
        });
        REQUIRE(r3);
        auto now = s.tracker->get_by_key("t", "u");
        REQUIRE(now.size() == 1);
        CHECK(now[0]->meta == json{{"status", "busy"}, {"phx_ref", *r3}, {"phx_ref_prev", *r2}});
    }
    SECTION("of something not tracked: not_tracked, nothing changes") {
        CHECK(s.tracker->update(2, "t", "u", json::object()).error() ==
              presence::error::not_tracked);
        CHECK(s.tracker->update(1, "t", "nobody", [](const json& m) { return m; }).error() ==
              presence::error::not_tracked);
        CHECK(s.tracker->list("t").size() == 1);
        CHECK(s.diffs.all.size() == 1);
    }
    SECTION("a function returning a bad meta is refused") {
        CHECK(s.tracker->update(1, "t", "u", [](const json&) { return json::array(); }).error() ==
              presence::error::invalid_meta);
        CHECK(s.tracker->list("t")[0]->ref == *r2);
    }
}

TEST_CASE("update with a function retries when the presence changed while it ran", "[presence]") {
    Solo s;
    REQUIRE(s.tracker->track(1, "t", "u", {{"n", 0}}));
    int calls = 0;
    auto r = s.tracker->update(1, "t", "u", [&](const json& old) {
        if (++calls == 1) REQUIRE(s.tracker->update(1, "t", "u", {{"n", 10}}));  // a racing writer
        json m = old;
        m["n"] = old["n"].get<int>() + 1;
        return m;
    });
    REQUIRE(r);
    CHECK(calls == 2);
    CHECK(s.tracker->list("t")[0]->meta["n"] == 11);
}

TEST_CASE("untrack removes one presence; untracking nothing is a no-op", "[presence]") {
    Solo s;
    auto ref = s.tracker->track(1, "t", "u", {{"a", 1}});
    REQUIRE(ref);
    REQUIRE(s.tracker->track(2, "t", "u", {{"a", 2}}));
    s.diffs.all.clear();
    CHECK(s.tracker->untrack(1, "t", "u") == std::error_code{});
    auto l = s.tracker->list("t");
    REQUIRE(l.size() == 1);
    CHECK(l[0]->owner == 2);
    REQUIRE(s.diffs.all.size() == 1);
    CHECK(std::get<1>(s.diffs.all[0]).empty());
    REQUIRE(std::get<2>(s.diffs.all[0]).size() == 1);
    CHECK(std::get<2>(s.diffs.all[0])[0]->ref == *ref);

    CHECK(s.tracker->untrack(1, "t", "u") == presence::error::not_tracked);
    CHECK(s.tracker->untrack(3, "t", "u") == presence::error::not_tracked);
    CHECK(s.tracker->untrack(2, "nope", "u") == presence::error::not_tracked);
    CHECK(s.tracker->list("t").size() == 1);
    CHECK(s.diffs.all.size() == 1);
}

TEST_CASE("untrack_all removes an owner's presences on every topic and shard", "[presence]") {
    auto o = fast_options();
    o.shards = 4;
    Solo s(o);
    std::set<std::size_t> shards;
    for (int i = 0; i < 8; ++i) {
        const auto topic = "room:" + std::to_string(i);
        shards.insert(s.tracker->shard_of(topic));
        REQUIRE(s.tracker->track(7, topic, "u7", json::object()));
        REQUIRE(s.tracker->track(8, topic, "u8", json::object()));
    }
    CHECK(shards.size() > 1);
    s.diffs.all.clear();
    CHECK(s.tracker->untrack_all(7) == 8);
    CHECK(s.tracker->untrack_all(7) == 0);
    CHECK(s.diffs.all.size() == 8);  // one leave diff per topic
    for (int i = 0; i < 8; ++i)
        CHECK(keys_of(s.tracker->list("room:" + std::to_string(i))) ==
              std::vector<std::string>{"u8"});
}

TEST_CASE("bad input is refused with a clear error and changes nothing", "[presence]") {
    auto o = fast_options();
    o.max_meta_bytes = 32;
    o.max_metas_per_key = 3;
    Solo s(o);
    using presence::error;
    CHECK(s.tracker->track(1, "t", "u", json::array()).error() == error::invalid_meta);
    CHECK(s.tracker->track(1, "t", "u", "str").error() == error::invalid_meta);
    CHECK(s.tracker->track(1, "t", "u", nullptr).error() == error::invalid_meta);
    CHECK(s.tracker->track(1, "t", "u", {{"bad", std::string("\xff\xfe")}}).error() ==
          error::invalid_meta);
    CHECK(s.tracker->track(1, "", "u", json::object()).error() == error::invalid_topic);
    CHECK(s.tracker->track(1, std::string("t\xc0"), "u", json::object()).error() ==
          error::invalid_topic);
    CHECK(s.tracker->track(1, "t", std::string("\xed\xa0\x80"), json::object()).error() ==
          error::invalid_key);
    // {"s":"..."} is 8 bytes plus the string: 24 characters make exactly 32.
    CHECK(s.tracker->track(1, "t", "u", {{"s", std::string(24, 'x')}}));
    CHECK(s.tracker->track(2, "t", "u", {{"s", std::string(25, 'x')}}).error() ==
          error::meta_too_large);
    CHECK(s.tracker->track(2, "t", "u", json::object()));
    CHECK(s.tracker->track(3, "t", "u", json::object()));
    CHECK(s.tracker->track(4, "t", "u", json::object()).error() == error::too_many_metas);
    CHECK(s.tracker->update(1, "t", "u", {{"s", std::string(40, 'x')}}).error() ==
          error::meta_too_large);
    CHECK(s.tracker->untrack(1, "", "u") == error::invalid_topic);
    CHECK(s.tracker->list("t").size() == 3);

    const std::error_code ec = error::already_tracked;
    CHECK(ec.category().name() == std::string("plume.presence"));
    CHECK(ec.message() == "this owner already tracks that key on that topic");
    CHECK(std::error_code(error::meta_too_large).message().find("max_meta_bytes") !=
          std::string::npos);
}

TEST_CASE("options are validated like Phoenix.Tracker's", "[presence]") {
    plume::pubsub::PubSub<> ps;
    auto o = fast_options();
    o.down_period = 150ms;  // less than 2 broadcast periods
    CHECK_THROWS_AS(Tracker(ps, o), std::invalid_argument);
    o = fast_options();
    o.permdown_period = o.down_period;
    CHECK_THROWS_AS(Tracker(ps, o), std::invalid_argument);
    o = fast_options();
    o.shards = 0;
    CHECK_THROWS_AS(Tracker(ps, o), std::invalid_argument);
    o = TrackerOptions{};
    Tracker t(ps, o);
    CHECK(t.options().down_period == 30s);  // 1500 ms * 10 * 2
    CHECK(t.replica().name == "local");     // the PubSub's node name
    CHECK(t.replica().incarnation > 0);
    CHECK(t.shard_count() == 8);
}

TEST_CASE("a stopped tracker refuses changes", "[presence]") {
    Solo s;
    REQUIRE(s.tracker->track(1, "t", "u", json::object()));
    s.tracker->stop();
    CHECK(s.tracker->stopped());
    CHECK(s.tracker->track(2, "t", "u", json::object()).error() == presence::error::stopped);
    CHECK(s.tracker->untrack(1, "t", "u") == presence::error::stopped);
    CHECK(s.tracker->untrack_all(1) == 0);
}

TEST_CASE("coalescing merges a window's changes to a topic into one diff", "[presence]") {
    auto o = fast_options();
    o.diff_window = 50ms;
    Solo s(o);
    auto& t = *s.tracker;

    // A join and a leave of the same phx_ref within the window cancel out.
    REQUIRE(t.track(1, "t", "a", json::object()));
    CHECK(t.untrack(1, "t", "a") == std::error_code{});
    s.clock.advance(60ms);
    t.tick();
    CHECK(s.diffs.all.empty());

    // Several joins and an update: one diff with the final metas only.
    REQUIRE(t.track(1, "t", "a", {{"v", 1}}));
    s.clock.advance(10ms);
    REQUIRE(t.track(2, "t", "b", {{"v", 1}}));
    auto r = t.update(1, "t", "a", {{"v", 2}});
    REQUIRE(r);
    REQUIRE(t.track(3, "other", "c", json::object()));
    s.clock.advance(30ms);
    t.tick();
    CHECK(s.diffs.all.empty());  // 40 ms since the first change of "t"
    s.clock.advance(10ms);
    t.tick();
    REQUIRE(s.diffs.all.size() == 1);  // "t" is due, "other" (30 ms old) is not
    CHECK(std::get<0>(s.diffs.all[0]) == "t");
    CHECK(keys_of(std::get<1>(s.diffs.all[0])) == std::vector<std::string>{"a", "b"});
    CHECK(std::get<1>(s.diffs.all[0])[0]->ref == *r);
    CHECK(std::get<2>(s.diffs.all[0]).empty());
    t.flush();
    REQUIRE(s.diffs.all.size() == 2);
    CHECK(std::get<0>(s.diffs.all[1]) == "other");

    // An update of something already announced: leave old + join new.
    s.diffs.all.clear();
    REQUIRE(t.update(1, "t", "a", {{"v", 3}}));
    REQUIRE(t.update(1, "t", "a", {{"v", 4}}));  // the intermediate meta never shows
    t.flush();
    REQUIRE(s.diffs.all.size() == 1);
    CHECK(std::get<1>(s.diffs.all[0]).size() == 1);
    CHECK(std::get<1>(s.diffs.all[0])[0]->meta["v"] == 4);
    REQUIRE(std::get<2>(s.diffs.all[0]).size() == 1);
    CHECK(std::get<2>(s.diffs.all[0])[0]->ref == *r);
}

TEST_CASE("callbacks run without locks: they may read and change the tracker", "[presence]") {
    ManualClock clock;
    plume::pubsub::PubSub<> ps;
    std::unique_ptr<Tracker> tracker;
    std::vector<std::size_t> sizes;
    auto o = fast_options();
    o.clock = clock.fn();
    o.on_diff = [&](const std::string& topic, const std::vector<EntryPtr>& joins,
                    const std::vector<EntryPtr>&) {
        sizes.push_back(tracker->list(topic).size());
        // A bot greets every human who joins.
        for (auto& e : joins)
            if (e->key != "bot") (void)tracker->track(99, topic, "bot", json::object());
    };
    tracker = std::make_unique<Tracker>(ps, o);
    REQUIRE(tracker->track(1, "t", "human", json::object()));
    CHECK(tracker->list("t").size() == 2);
    CHECK(sizes == std::vector<std::size_t>{1, 2});  // the bot's diff came after, in order
}

TEST_CASE("an exception thrown by on_diff is counted and does not stop later diffs", "[presence]") {
    ManualClock clock;
    plume::pubsub::PubSub<> ps;
    int calls = 0;
    auto o = fast_options();
    o.clock = clock.fn();
    o.on_diff = [&](const std::string&, const auto&, const auto&) {
        if (++calls == 1) throw std::runtime_error("boom");
    };
    Tracker t(ps, o);
    REQUIRE(t.track(1, "t", "a", json::object()));
    REQUIRE(t.track(1, "t", "b", json::object()));
    CHECK(calls == 2);
    CHECK(t.handler_errors() == 1);
}

TEST_CASE("replicas see each other's presences after a heartbeat", "[presence]") {
    PresenceCluster c(3, fast_options());
    auto ref = c.tracker(0).track(1, "room:1", "alice", {{"device", "phone"}});
    REQUIRE(ref);
    REQUIRE(c.tracker(1).track(1, "room:1", "bob", json::object()));
    CHECK(c.tracker(2).list("room:1").empty());
    c.run(2);
    for (std::size_t i = 0; i < 3; ++i) {
        auto l = c.tracker(i).list("room:1");
        REQUIRE(keys_of(l) == std::vector<std::string>{"alice", "bob"});
        CHECK(l[0]->ref == *ref);
        CHECK(l[0]->meta == json{{"device", "phone"}, {"phx_ref", *ref}});
    }
    CHECK_FALSE(c.tracker(2).list("room:1")[0]->local);
    // Node 2 saw two joins, each in a diff of its own or together.
    std::set<std::string> joined;
    for (auto& d : c.node(2).diffs)
        for (auto& [k, v] : d.payload["joins"].items())
            joined.insert(k);
    CHECK(joined == std::set<std::string>{"alice", "bob"});

    // Removal travels too, and every replica reports it.
    REQUIRE(c.tracker(0).untrack(1, "room:1", "alice") == std::error_code{});
    c.run(2);
    for (std::size_t i = 0; i < 3; ++i)
        CHECK(keys_of(c.tracker(i).list("room:1")) == std::vector<std::string>{"bob"});
    auto last = c.node(2).diffs.back().payload;
    CHECK(last["leaves"].contains("alice"));
}

TEST_CASE("a lost heartbeat is repaired by a transfer, delta or full", "[presence]") {
    auto o = fast_options();
    o.max_delta_ops = 4;
    PresenceCluster c(2, o);
    c.run(2);  // both announced, in sync
    REQUIRE(c.tracker(1).replicas(0).size() == 1);
    // Watch what node1 receives on the replication topic of "t".
    struct Spy : plume::pubsub::Subscriber {
        int acks = 0, full_acks = 0;
        void deliver(const plume::pubsub::MessagePtr& m) override {
            if (m->event != "transfer_ack") return;
            ++acks;
            if (m->payload.contains("entries")) ++full_acks;
        }
    };
    auto spy = std::make_shared<Spy>();
    c.node(1).pubsub->subscribe(
        "phx_tracker:presence:" + std::to_string(c.tracker(1).shard_of("t")), spy);

    SECTION("a short gap: the missing operations come from the sender's log") {
        REQUIRE(c.tracker(0).track(1, "t", "a", json::object()));
        c.bus.isolate("node1");  // the next heartbeat is lost
        c.run(1);
        c.bus.heal();
        REQUIRE(c.tracker(0).track(1, "t", "b", json::object()));
        c.run(5);  // heartbeat with a gap → transfer_req → transfer_ack (delta) → applied
        CHECK(keys_of(c.tracker(1).list("t")) == std::vector<std::string>{"a", "b"});
        CHECK(spy->acks == 1);
        CHECK(spy->full_acks == 0);
    }
    SECTION("a long gap beyond the log: the whole state is sent") {
        c.bus.isolate("node1");
        for (int i = 0; i < 30; ++i)
            REQUIRE(c.tracker(0).track(static_cast<presence::OwnerId>(i), "t",
                                       "k" + std::to_string(i), json::object()));
        for (int i = 0; i < 25; ++i)
            REQUIRE(c.tracker(0).untrack(static_cast<presence::OwnerId>(i), "t",
                                         "k" + std::to_string(i)) == std::error_code{});
        c.run(1);  // the log is trimmed past what node1 saw (it stays under the down period)
        c.bus.heal();
        c.run(5);
        CHECK(presence::to_json(c.tracker(1).list("t")) ==
              presence::to_json(c.tracker(0).list("t")));
        CHECK(c.tracker(1).list("t").size() == 5);
        CHECK(spy->full_acks == 1);
    }
}

TEST_CASE("a whole-state transfer goes out in parts, merged once the last one is in",
          "[presence]") {
    auto o = fast_options();
    o.max_delta_ops = 4;
    o.transfer_chunk_entries = 4;
    PresenceCluster c(2, o);
    c.run(2);
    struct Spy : plume::pubsub::Subscriber {
        std::vector<std::size_t> sizes;  // entries per part, in order
        void deliver(const plume::pubsub::MessagePtr& m) override {
            if (m->event != "transfer_ack" || !m->payload.contains("entries")) return;
            CHECK(m->payload["part"] == sizes.size());
            CHECK(m->payload["parts"] == 6);
            sizes.push_back(m->payload["entries"].size());
        }
    };
    auto spy = std::make_shared<Spy>();
    c.node(1).pubsub->subscribe(
        "phx_tracker:presence:" + std::to_string(c.tracker(1).shard_of("t")), spy);
    c.bus.isolate("node1");
    for (int i = 0; i < 23; ++i)
        REQUIRE(c.tracker(0).track(static_cast<presence::OwnerId>(i), "t", "k" + std::to_string(i),
                                   json::object()));
    c.run(1);
    c.bus.heal();
    c.run(5);
    CHECK(spy->sizes == std::vector<std::size_t>{4, 4, 4, 4, 4, 3});
    CHECK(c.tracker(1).list("t").size() == 23);
    CHECK(presence::to_json(c.tracker(1).list("t")) == presence::to_json(c.tracker(0).list("t")));
}

TEST_CASE("a transfer with a part missing or out of order changes nothing", "[presence]") {
    auto o = fast_options();
    PresenceCluster c(1, o);
    c.run(1);
    const std::string shard_topic =
        "phx_tracker:presence:" + std::to_string(c.tracker(0).shard_of("room:x"));
    // Parts of a transfer from "ghost" (incarnation 1) at version 3, addressed to node0.
    auto part = [&](std::uint64_t i, std::uint64_t n, std::uint64_t version) {
        presence::Entry e;
        e.version = i + 1;
        e.ref = "ref" + std::to_string(i);
        e.topic = "room:x";
        e.key = "user" + std::to_string(i);
        e.meta = json::object();
        json payload{{"from", json::array({"ghost", 1u})},
                     {"to", json::array({"node0", c.node(0).incarnation})},
                     {"shards", o.shards},
                     {"version", version},
                     {"part", i},
                     {"parts", n},
                     {"entries", json::array({presence::detail::encode_entry(e)})}};
        c.node(0).pubsub->local_broadcast(
            plume::pubsub::make_message(shard_topic, "transfer_ack", std::move(payload)));
        c.run(1);
    };
    part(0, 3, 3);
    part(2, 3, 3);  // part 1 lost
    CHECK(c.tracker(0).list("room:x").empty());
    part(1, 3, 3);  // late: the transfer it belonged to was dropped
    CHECK(c.tracker(0).list("room:x").empty());
    part(0, 3, 3);
    part(1, 3, 3);
    CHECK(c.tracker(0).list("room:x").empty());  // not all in yet
    part(2, 3, 3);
    CHECK(c.tracker(0).list("room:x").size() == 3);
}

TEST_CASE("duplicated and reordered replication messages change nothing twice", "[presence]") {
    PresenceCluster c(2, fast_options(), 7,
                      {.drop = 0, .duplicate = 1.0, .min_delay = 0ms, .max_delay = 250ms});
    for (int i = 0; i < 10; ++i) {
        REQUIRE(c.tracker(0).track(1, "t", "k" + std::to_string(i), json::object()));
        if (i % 3 == 0)
            REQUIRE(c.tracker(0).untrack(1, "t", "k" + std::to_string(i)) == std::error_code{});
        c.step(50ms);
    }
    c.bus.set_faults({});
    c.run(10);
    CHECK(c.list(1, "t") == c.list(0, "t"));
    CHECK(c.bus.stats().duplicated > 0);
    // Replay node 1's diffs: no join of something present, no leave of something absent.
    std::set<std::string> present;
    for (auto& d : c.node(1).diffs) {
        for (auto& [k, v] : d.payload["joins"].items())
            for (auto& m : v["metas"])
                CHECK(present.insert(m["phx_ref"].get<std::string>()).second);
        for (auto& [k, v] : d.payload["leaves"].items())
            for (auto& m : v["metas"])
                CHECK(present.erase(m["phx_ref"].get<std::string>()) == 1);
    }
    CHECK(present.size() == c.tracker(1).list("t").size());
}

TEST_CASE("a silent replica goes down (leaves), comes back up (joins), changes catch up",
          "[presence]") {
    PresenceCluster c(2, fast_options());
    REQUIRE(c.tracker(0).track(1, "t", "a", json::object()));
    REQUIRE(c.tracker(0).track(2, "t", "b", json::object()));
    c.run(2);
    REQUIRE(c.tracker(1).list("t").size() == 2);
    c.node(1).diffs.clear();

    c.bus.partition({{"node0"}, {"node1"}});
    c.run(2);
    CHECK(c.tracker(1).list("t").size() == 2);  // not yet down_period (300 ms)
    c.run(2);
    CHECK(c.tracker(1).list("t").empty());  // down: hidden
    auto reps = c.tracker(1).replicas(c.tracker(1).shard_of("t"));
    REQUIRE(reps.size() == 1);
    CHECK_FALSE(reps[0].up);
    CHECK(reps[0].entries == 2);  // kept for permdown_period
    REQUIRE(c.node(1).diffs.size() == 1);
    CHECK(c.node(1).diffs[0].payload["leaves"].size() == 2);
    CHECK(c.tracker(0).list("t").size() == 2);  // node0's own are always visible

    // Meanwhile, on the other side of the split.
    REQUIRE(c.tracker(0).untrack(1, "t", "a") == std::error_code{});
    REQUIRE(c.tracker(0).track(3, "t", "c", json::object()));
    c.run(1);
    c.bus.heal();
    c.run(4);  // heartbeat with a gap, transfer_req, transfer_ack, applied
    CHECK(c.list(1, "t") == c.list(0, "t"));
    CHECK(keys_of(c.tracker(1).list("t")) == std::vector<std::string>{"b", "c"});
    // Coming back with a gap, node0 stayed hidden until the transfer: "a" never re-joined.
    for (auto& d : c.node(1).diffs)
        CHECK_FALSE(d.payload["joins"].contains("a"));
}

TEST_CASE("after permdown_period a replica is forgotten, and can still come back", "[presence]") {
    PresenceCluster c(2, fast_options());
    REQUIRE(c.tracker(0).track(1, "t", "a", json::object()));
    c.run(2);
    c.bus.partition({{"node0"}, {"node1"}});
    c.run(12);  // 1.2 s > permdown_period
    CHECK(c.tracker(1).replicas(c.tracker(1).shard_of("t")).empty());
    CHECK(c.tracker(1).list("t").empty());
    c.bus.heal();
    c.run(5);
    CHECK(c.list(1, "t") == c.list(0, "t"));
    CHECK(c.tracker(1).list("t").size() == 1);
}

TEST_CASE("a graceful stop makes peers drop the replica at once", "[presence]") {
    PresenceCluster c(3, fast_options());
    REQUIRE(c.tracker(0).track(1, "t", "a", json::object()));
    REQUIRE(c.tracker(1).track(1, "t", "b", json::object()));
    c.run(2);
    REQUIRE(c.tracker(2).list("t").size() == 2);
    c.shutdown(0);
    c.step(1ms);  // far less than down_period
    CHECK(keys_of(c.tracker(2).list("t")) == std::vector<std::string>{"b"});
    CHECK(keys_of(c.tracker(1).list("t")) == std::vector<std::string>{"b"});
    CHECK(c.node(2).diffs.back().payload["leaves"].contains("a"));
}

TEST_CASE("a restarted node is a new replica that supersedes the old at once", "[presence]") {
    PresenceCluster c(2, fast_options());
    REQUIRE(c.tracker(0).track(1, "t", "old", json::object()));
    c.run(2);
    REQUIRE(c.tracker(1).list("t").size() == 1);
    c.crash(0);  // no permdown
    c.start(0);
    REQUIRE(c.tracker(0).track(1, "t", "new", json::object()));
    c.run(2);  // the new incarnation's first heartbeat
    CHECK(keys_of(c.tracker(1).list("t")) == std::vector<std::string>{"new"});
    auto reps = c.tracker(1).replicas(c.tracker(1).shard_of("t"));
    REQUIRE(reps.size() == 1);
    CHECK(reps[0].incarnation == 2);
    CHECK(reps[0].up);
}

TEST_CASE("messages of an older incarnation arriving late are ignored", "[presence]") {
    PresenceCluster c(2, fast_options());
    REQUIRE(c.tracker(0).track(1, "t", "old", json::object()));
    c.bus.set_faults({.min_delay = 500ms, .max_delay = 500ms});
    c.run(1);  // incarnation 1's heartbeat carrying "old" is slow
    c.bus.set_faults({});
    c.crash(0);
    c.start(0);
    c.run(2);
    CHECK(c.tracker(1).list("t").empty());
    REQUIRE(c.tracker(1).replicas(c.tracker(1).shard_of("t")).size() == 1);
    c.run(6);  // the slow heartbeat arrives now
    CHECK(c.tracker(1).list("t").empty());
    auto reps = c.tracker(1).replicas(c.tracker(1).shard_of("t"));
    REQUIRE(reps.size() == 1);
    CHECK(reps[0].incarnation == 2);
}

TEST_CASE("malformed replication messages are ignored", "[presence]") {
    PresenceCluster c(2, fast_options());
    REQUIRE(c.tracker(0).track(1, "t", "a", json::object()));
    c.run(2);
    auto& ps = *c.node(1).pubsub;
    const std::string topic = "phx_tracker:presence:" + std::to_string(c.tracker(1).shard_of("t"));
    for (json bad :
         {json(nullptr), json::array(), json{{"from", 1}},
          json{{"from", {"x", 1}}, {"shards", 2}, {"base", 5}, {"version", 1}, {"ops", {}}},
          json{{"from", {"x", 1}},
               {"shards", 2},
               {"base", 0},
               {"version", 1},
               {"ops", {{"+", 1, "r", "t", "k", "not an object"}}}},
          json{{"from", {"x", 1}}, {"shards", 3}, {"base", 0}, {"version", 0}, {"ops", {}}}}) {
        ps.local_broadcast(plume::pubsub::make_message(topic, "heartbeat", bad));
    }
    ps.local_broadcast(plume::pubsub::make_message(topic, "who_knows", json::object()));
    c.run(1);
    CHECK(c.tracker(1).list("t").size() == 1);
    CHECK(c.tracker(1).replicas(c.tracker(1).shard_of("t")).size() == 1);
}

TEST_CASE("shards: deterministic topic placement, one replication topic each", "[presence]") {
    auto o = fast_options();
    o.shards = 4;
    PresenceCluster c(2, o);
    // FNV-1a, so every node (and build) agrees.
    CHECK(c.tracker(0).shard_of("room:lobby") == c.tracker(1).shard_of("room:lobby"));
    CHECK(c.tracker(0).shard_of("room:lobby") == presence::detail::fnv1a("room:lobby") % 4);
    std::set<std::size_t> used;
    for (int i = 0; i < 16; ++i) {
        const auto topic = "room:" + std::to_string(i);
        used.insert(c.tracker(0).shard_of(topic));
        REQUIRE(c.tracker(0).track(1, topic, "u", json::object()));
    }
    CHECK(used.size() == 4);
    c.run(2);
    for (int i = 0; i < 16; ++i)
        CHECK(c.tracker(1).list("room:" + std::to_string(i)).size() == 1);
    for (std::size_t s = 0; s < 4; ++s)
        CHECK(c.tracker(1).replicas(s).size() == 1);
}

TEST_CASE("start() drives heartbeats and receipt from an executor", "[presence]") {
    asio::io_context io;
    plume::test::MemoryBus bus;
    bus.set_immediate(true);
    plume::pubsub::PubSub<plume::test::MemoryBus::Adapter> pa(bus.adapter("a")),
        pb(bus.adapter("b"));
    auto o = fast_options();
    o.broadcast_period = 20ms;
    o.down_period = 2s;  // a loaded test machine must not make replicas flap
    o.permdown_period = 5s;
    std::atomic<int> diffs_b{0};
    auto ob = o;
    ob.on_diff = [&](const std::string&, const auto&, const auto&) { ++diffs_b; };
    Tracker a(pa, o), b(pb, ob);
    a.start(io.get_executor());
    b.start(io.get_executor());
    REQUIRE(a.track(1, "t", "u", json::object()));
    REQUIRE(plume::test::run_until(io, [&] { return b.list("t").size() == 1; }));
    CHECK(diffs_b == 1);
    REQUIRE(a.untrack(1, "t", "u") == std::error_code{});
    REQUIRE(plume::test::run_until(io, [&] { return b.list("t").empty(); }));
    a.stop();
    b.stop();
    io.poll();
}

TEST_CASE("many threads track, update, untrack and read at once", "[presence]") {
    plume::test::MemoryBus bus;
    bus.set_immediate(true);
    plume::pubsub::PubSub<plume::test::MemoryBus::Adapter> pa(bus.adapter("a")),
        pb(bus.adapter("b"));
    auto o = fast_options();
    o.shards = 3;
    std::atomic<long> balance_a{0};
    auto oa = o;
    oa.on_diff = [&](const std::string&, const auto& j, const auto& l) {
        balance_a += static_cast<long>(j.size()) - static_cast<long>(l.size());
    };
    Tracker a(pa, oa), b(pb, o);
    std::atomic<bool> done{false};
    std::vector<std::thread> threads;
    for (int w = 0; w < 4; ++w) {
        threads.emplace_back([&, w] {
            for (int i = 0; i < 300; ++i) {
                const auto owner = static_cast<presence::OwnerId>(w * 1000 + i % 7);
                const auto topic = "room:" + std::to_string(i % 5);
                const auto key = "u" + std::to_string(i % 3);
                switch (i % 4) {
                    case 0:
                    case 1:
                        (void)a.track(owner, topic, key, {{"i", i}});
                        break;
                    case 2:
                        (void)a.update(owner, topic, key, [&](const json& m) {
                            json n = m;
                            n["u"] = w;
                            return n;
                        });
                        break;
                    default:
                        (void)a.untrack(owner, topic, key);
                }
                if (i % 50 == 0) a.untrack_all(owner);
            }
        });
    }
    threads.emplace_back([&] {
        while (!done) {
            for (int t = 0; t < 5; ++t)
                (void)b.list("room:" + std::to_string(t));
            a.tick();
            b.tick();
        }
    });
    for (int w = 0; w < 4; ++w)
        threads[static_cast<std::size_t>(w)].join();
    done = true;
    threads.back().join();
    // Replication settles once the writers are done (real clock: heartbeat when due).
    a.flush();
    std::size_t total = 0;
    for (int t = 0; t < 5; ++t)
        total += a.list("room:" + std::to_string(t)).size();
    CHECK(balance_a == static_cast<long>(total));
    asio::io_context io;
    REQUIRE(plume::test::run_until(io, [&] {
        a.tick();
        b.tick();
        for (int t = 0; t < 5; ++t) {
            const auto topic = "room:" + std::to_string(t);
            if (presence::to_json(a.list(topic)) != presence::to_json(b.list(topic))) return false;
        }
        return true;
    }));
}

TEST_CASE("stop() while io threads and writers are busy: no callback after it returns",
          "[presence]") {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    plume::test::MemoryBus bus;
    bus.set_immediate(true);
    plume::pubsub::PubSub<plume::test::MemoryBus::Adapter> pa(bus.adapter("a")),
        pb(bus.adapter("b"));
    auto o = fast_options();
    o.broadcast_period = 5ms;
    o.down_period = 50ms;
    o.diff_window = 2ms;
    std::atomic<bool> a_stopped{false};
    std::atomic<int> late{0}, diffs{0};
    auto oa = o;
    oa.on_diff = [&](const std::string&, const auto&, const auto&) {
        if (a_stopped) ++late;
        ++diffs;
    };
    Tracker a(pa, oa), b(pb, o);
    a.start(io.get_executor());
    b.start(io.get_executor());
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i)
        threads.emplace_back([&] { io.run(); });
    std::atomic<bool> writing{true};
    for (int w = 0; w < 2; ++w)
        threads.emplace_back([&, w] {
            for (int i = 0; writing; ++i) {
                const auto owner = static_cast<presence::OwnerId>(w * 100 + i % 10);
                (void)a.track(owner, "t", "k" + std::to_string(i % 4), json::object());
                (void)b.track(owner, "t", "k" + std::to_string(i % 4), json::object());
                if (i % 3 == 0) {
                    a.untrack_all(owner);
                    b.untrack_all(owner);
                }
            }
        });
    asio::io_context waiter;
    CHECK(plume::test::run_until(waiter, [&] { return diffs > 200; }));
    a.stop();
    a_stopped = true;
    // The permdown reaches b: none of a's presences remain there.
    CHECK(plume::test::run_until(waiter, [&] {
        auto l = b.list("t");
        return std::all_of(l.begin(), l.end(), [](const EntryPtr& e) { return e->local; });
    }));
    writing = false;
    b.stop();
    work.reset();
    for (auto& t : threads)
        t.join();
    CHECK(late == 0);
    CHECK(a.track(1, "t", "x", json::object()).error() == presence::error::stopped);
}

TEST_CASE("new_owner_id gives distinct non-zero ids", "[presence]") {
    std::set<presence::OwnerId> ids;
    for (int i = 0; i < 100; ++i)
        ids.insert(presence::new_owner_id());
    CHECK(ids.size() == 100);
    CHECK_FALSE(ids.contains(0));
}
