// Deterministic property tests of the presence Tracker. Each seed drives a
// random history — track / update / untrack / untrack_all on 3-5 replicas,
// partitions, heals, crashes and graceful restarts, time steps — over a
// network that drops, duplicates, delays and reorders messages. After a heal
// and enough quiet ticks every replica must show the same list for every
// topic, equal to what the owners really track, and the diffs each replica
// emitted, replayed from nothing, must rebuild its list exactly. The merge
// rules themselves are checked for commutativity, associativity and
// idempotence, and deltas against full states. A failing seed is printed.
#include <catch2/catch.hpp>

#include <plume/presence.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "support/memory_bus.hpp"
#include "support/presence_cluster.hpp"
#include "support/presence_sync.hpp"

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace presence = plume::presence;
using plume::test::PresenceCluster;
using plume::test::Rng;

namespace {

/// Applies diffs as phoenix.js does, and checks each one is exact: a join is
/// never of a phx_ref already shown, a leave always of one that is.
struct Replay {
    json state = json::object();
    std::set<std::string> refs;
    std::vector<std::string> problems;

    void apply(const std::string& topic, const json& diff) {
        for (auto& [key, p] : diff["joins"].items())
            for (auto& m : p["metas"])
                if (!refs.insert(topic + "|" + m["phx_ref"].get<std::string>()).second)
                    problems.push_back("join of a present ref on " + topic + " " + key);
        for (auto& [key, p] : diff["leaves"].items())
            for (auto& m : p["metas"])
                if (refs.erase(topic + "|" + m["phx_ref"].get<std::string>()) != 1)
                    problems.push_back("leave of an absent ref on " + topic + " " + key);
        auto& t = state[topic];
        t = plume::test::sync_diff(t.is_null() ? json::object() : t, diff);
    }

    json topic(const std::string& t) const {
        if (!state.contains(t)) return json::object();
        json s = state[t];
        for (auto& [k, v] : s.items())
            std::sort(v["metas"].begin(), v["metas"].end(),
                      [](const json& a, const json& b) { return a["phx_ref"] < b["phx_ref"]; });
        return s;
    }
};

/// A list with phx_refs removed and metas sorted: comparable to ground truth.
json without_refs(json list) {
    for (auto& [k, v] : list.items()) {
        for (auto& m : v["metas"]) {
            m.erase("phx_ref");
            m.erase("phx_ref_prev");
        }
        std::sort(v["metas"].begin(), v["metas"].end(),
                  [](const json& a, const json& b) { return a.dump() < b.dump(); });
    }
    return list;
}

struct Scenario {
    std::uint64_t seed;
    std::size_t nodes;
    std::size_t topics;
    std::chrono::milliseconds window;
    plume::test::MemoryBus::Faults faults;
};

Scenario scenario(std::uint64_t seed) {
    Rng r(seed * 7919 + 1);
    Scenario s;
    s.seed = seed;
    s.nodes = static_cast<std::size_t>(r.between(3, 5));
    s.topics = static_cast<std::size_t>(r.between(1, 3));
    s.window = r.chance(0.4) ? std::chrono::milliseconds(r.between(1, 120)) : 0ms;
    s.faults.drop = static_cast<double>(r.between(0, 20)) / 100.0;
    s.faults.duplicate = static_cast<double>(r.between(0, 20)) / 100.0;
    s.faults.min_delay = 0ms;
    s.faults.max_delay = std::chrono::milliseconds(r.between(0, 150));
    return s;
}

/// What the random scenarios exercised, summed over seeds.
struct Coverage {
    std::map<std::string, std::size_t> events;
    std::size_t restarts = 0, partitions = 0, downs = 0, window_seeds = 0;
};

/// Runs one seed; returns what went wrong (nothing when the properties hold).
std::vector<std::string> run_cluster_seed(std::uint64_t seed, int operations, Coverage& cov) {
    const Scenario sc = scenario(seed);
    presence::TrackerOptions o;
    o.broadcast_period = 100ms;
    o.max_silent_periods = 1;
    o.down_period = 300ms;
    o.permdown_period = 1000ms;
    o.shards = 2;
    o.diff_window = sc.window;
    o.max_delta_ops = 8;  // small, so both delta and full transfers happen
    PresenceCluster c(sc.nodes, o, seed, sc.faults);
    Rng r(seed);
    std::vector<std::string> problems;
    auto fail = [&](const std::string& what) { problems.push_back(what); };

    // What each node's owners really track: (owner, topic, key) → meta.
    using Truth = std::map<std::tuple<presence::OwnerId, std::string, std::string>, json>;
    std::vector<Truth> truth(sc.nodes);
    int counter = 0;
    auto topic_name = [&] { return "room:" + std::to_string(r.below(sc.topics)); };
    auto key_name = [&] { return "u" + std::to_string(r.below(4)); };

    for (int step = 0; step < operations; ++step) {
        const auto n = static_cast<std::size_t>(r.below(sc.nodes));
        const auto owner = static_cast<presence::OwnerId>(r.between(1, 4));
        const auto roll = r.below(100);
        auto& t = c.tracker(n);
        if (roll < 30) {
            const auto topic = topic_name(), key = key_name();
            json meta{{"v", ++counter}, {"node", n}};
            auto res = t.track(owner, topic, key, meta);
            const bool had = truth[n].contains({owner, topic, key});
            if (had != (res.error() == presence::error::already_tracked) || (!had && !res))
                fail("track result " + res.error().message());
            if (!had) truth[n][{owner, topic, key}] = meta;
        } else if (roll < 45) {
            const auto topic = topic_name(), key = key_name();
            json meta{{"v", ++counter}, {"node", n}, {"updated", true}};
            auto res = r.chance(0.5) ? t.update(owner, topic, key, meta)
                                     : t.update(owner, topic, key, [&](const json& old) {
                                           json m = meta;
                                           if (!old.contains("phx_ref")) m["bad"] = true;
                                           return m;
                                       });
            const bool had = truth[n].contains({owner, topic, key});
            if (had != res.has_value()) fail("update result " + res.error().message());
            if (had) truth[n][{owner, topic, key}] = meta;
        } else if (roll < 60) {
            const auto topic = topic_name(), key = key_name();
            auto ec = t.untrack(owner, topic, key);
            const bool had = truth[n].erase({owner, topic, key}) == 1;
            if (had != !ec) fail("untrack result " + ec.message());
        } else if (roll < 65) {
            std::size_t expected = 0;
            for (auto it = truth[n].begin(); it != truth[n].end();)
                if (std::get<0>(it->first) == owner) {
                    it = truth[n].erase(it);
                    ++expected;
                } else {
                    ++it;
                }
            if (t.untrack_all(owner) != expected) fail("untrack_all count");
        } else if (roll < 69) {
            std::vector<std::vector<std::string>> groups(2);
            for (std::size_t i = 0; i < sc.nodes; ++i)
                groups[r.below(2)].push_back(c.node(i).name);
            c.bus.partition(groups);
            ++cov.partitions;
        } else if (roll < 73) {
            c.bus.heal();
        } else if (roll < 76) {
            c.restart(n, r.chance(0.5));
            truth[n].clear();
            ++cov.restarts;
        } else {
            c.step(std::chrono::milliseconds(r.between(10, 250)));
            for (std::size_t s = 0; s < 2; ++s)
                for (auto& info : c.tracker(n).replicas(s))
                    cov.downs += info.up ? 0 : 1;
        }
    }

    // Heal, stop losing messages (duplicates and reordering go on), settle.
    c.bus.heal();
    auto quiet = sc.faults;
    quiet.drop = 0;
    c.bus.set_faults(quiet);
    c.run(30);
    for (std::size_t i = 0; i < sc.nodes; ++i)
        c.tracker(i).flush();
    std::vector<std::size_t> diff_counts;
    for (std::size_t i = 0; i < sc.nodes; ++i)
        diff_counts.push_back(c.node(i).diffs.size());

    for (std::size_t ti = 0; ti < sc.topics; ++ti) {
        const auto topic = "room:" + std::to_string(ti);
        // Ground truth: every live owner's presences.
        json expected = json::object();
        for (std::size_t n = 0; n < sc.nodes; ++n)
            for (auto& [k, meta] : truth[n])
                if (std::get<1>(k) == topic) expected[std::get<2>(k)]["metas"].push_back(meta);
        expected = without_refs(expected);
        const json first = c.list(0, topic);
        for (std::size_t n = 0; n < sc.nodes; ++n) {
            const json l = c.list(n, topic);
            if (l != first) fail("replicas 0 and " + std::to_string(n) + " differ on " + topic);
            if (without_refs(l) != expected)
                fail("node " + std::to_string(n) + " differs from the owners on " + topic + ": " +
                     without_refs(l).dump() + " vs " + expected.dump());
        }
    }
    // Each node's diffs rebuild its lists, and each diff was exact.
    for (std::size_t n = 0; n < sc.nodes; ++n) {
        Replay replay;
        for (auto& d : c.node(n).diffs)
            replay.apply(d.topic, d.payload);
        for (auto& p : replay.problems)
            fail("node " + std::to_string(n) + ": " + p);
        for (std::size_t ti = 0; ti < sc.topics; ++ti) {
            const auto topic = "room:" + std::to_string(ti);
            if (replay.topic(topic) != c.list(n, topic))
                fail("node " + std::to_string(n) + " diffs do not rebuild " + topic);
        }
    }
    for (auto& [event, count] : c.bus.stats().events)
        cov.events[event] += count;
    cov.window_seeds += sc.window.count() > 0 ? 1 : 0;
    // Quiet means quiet: more ticks, no more diffs.
    c.run(5);
    for (std::size_t i = 0; i < sc.nodes; ++i) {
        c.tracker(i).flush();
        if (c.node(i).diffs.size() != diff_counts[i]) fail("diffs after convergence");
    }
    return problems;
}

// --- the merge rules, on their own ------------------------------------------

using presence::detail::EntryMap;
using presence::detail::Op;
using presence::detail::ReplicaState;
using presence::detail::Snapshot;

std::string describe(const Snapshot& s) {
    std::ostringstream out;
    for (const auto& [name, item] : s.replicas) {
        std::set<std::string> refs;
        for (const auto& [ref, e] : item.state.entries)
            refs.insert(std::string(ref) + "=" + e->meta.dump());
        out << name << "#" << item.incarnation << "@" << item.state.version << "{";
        for (auto& x : refs)
            out << x << ",";
        out << "} ";
    }
    return out.str();
}

/// A single writer's history: its state after every version, and its log as
/// it was at every version (adds of entries removed since are voided, as the
/// Tracker does; a delta is always cut from the log as it is when sent).
struct History {
    std::vector<ReplicaState> states;   // states[v]
    std::vector<std::vector<Op>> logs;  // logs[v][u - 1]: operation u as the log at v has it
    std::vector<Op> log;                // the latest log
};

History make_history(Rng& r, const std::string& name, std::uint64_t incarnation, int ops) {
    History h;
    ReplicaState cur;
    h.states.push_back(cur);
    h.logs.emplace_back();
    const auto salt = presence::detail::ref_salt({name, incarnation}, 0);
    for (int i = 0; i < ops; ++i) {
        const auto v = cur.version + 1;
        if (cur.entries.empty() || r.chance(0.6)) {
            auto e = std::make_shared<presence::Entry>();
            e->version = v;
            e->ref = presence::detail::make_ref(v, salt);
            e->topic = "t";
            e->key = "k" + std::to_string(r.below(5));
            e->meta = {{"v", v}, {"phx_ref", e->ref}};
            presence::detail::put(cur.entries, e);
            h.log.push_back(Op{v, e, {}});
        } else {
            auto it = cur.entries.begin();
            std::advance(it, static_cast<std::ptrdiff_t>(r.below(cur.entries.size())));
            auto gone = presence::detail::take(cur.entries, it->first);
            h.log[gone->version - 1].add.reset();
            h.log.push_back(Op{v, nullptr, gone->ref});
        }
        cur.version = v;
        h.states.push_back(cur);
        h.logs.push_back(h.log);
    }
    return h;
}

}  // namespace

TEST_CASE("property: replicas converge to the owners' truth; diffs rebuild every list",
          "[presence][property]") {
    int failed = 0;
    Coverage cov;
    for (std::uint64_t seed = 1; seed <= 120; ++seed) {
        auto problems = run_cluster_seed(seed, 250, cov);
        if (!problems.empty() && failed++ < 3) {
            const auto sc = scenario(seed);
            INFO("seed " << seed << " nodes " << sc.nodes << " topics " << sc.topics << " window "
                         << sc.window.count() << "ms drop " << sc.faults.drop << " dup "
                         << sc.faults.duplicate << " max_delay " << sc.faults.max_delay.count()
                         << "ms");
            for (std::size_t i = 0; i < problems.size() && i < 5; ++i)
                FAIL_CHECK(problems[i]);
        }
    }
    CHECK(failed == 0);
    // The scenarios did reach the interesting paths.
    INFO("events: " << json(cov.events).dump() << " restarts " << cov.restarts << " partitions "
                    << cov.partitions << " down sightings " << cov.downs);
    CHECK(cov.events["transfer_ack"] > 50);          // delta catch-ups
    CHECK(cov.events["transfer_ack+entries"] > 50);  // full transfers
    CHECK(cov.events["permdown"] > 50);              // graceful restarts
    CHECK(cov.restarts > 100);
    CHECK(cov.partitions > 100);
    CHECK(cov.downs > 100);
    CHECK(cov.window_seeds > 20);
}

TEST_CASE("property: merge is commutative, associative and idempotent", "[presence][property]") {
    for (std::uint64_t seed = 1; seed <= 200; ++seed) {
        Rng r(seed);
        // Copies of three nodes, two incarnations each, at random versions.
        std::vector<Snapshot> pool;
        for (const char* name : {"a", "b", "c"}) {
            for (std::uint64_t inc = 1; inc <= 2; ++inc) {
                auto h = make_history(r, name, inc, static_cast<int>(r.between(0, 12)));
                for (int k = 0; k < 3; ++k) {
                    Snapshot s;
                    s.replicas[name] = {inc, h.states[r.below(h.states.size())]};
                    pool.push_back(s);
                }
            }
        }
        auto pick = [&] { return pool[r.below(pool.size())]; };
        auto join = [](Snapshot a, const Snapshot& b) {
            a.merge(b);
            return a;
        };
        // Random combinations of several pool members.
        for (int trial = 0; trial < 20; ++trial) {
            Snapshot a = join(pick(), pick()), b = join(pick(), pick()), c = pick();
            CAPTURE(seed, trial);
            CHECK(describe(join(a, b)) == describe(join(b, a)));
            CHECK(describe(join(join(a, b), c)) == describe(join(a, join(b, c))));
            CHECK(describe(join(a, a)) == describe(a));
            CHECK(describe(join(join(a, b), b)) == describe(join(a, b)));
        }
        // Folding the whole pool in any order, with duplicates, gives one result.
        Snapshot reference;
        for (auto& s : pool)
            reference.merge(s);
        for (int order = 0; order < 5; ++order) {
            std::vector<std::size_t> idx;
            for (std::size_t i = 0; i < pool.size(); ++i) {
                idx.push_back(i);
                if (r.chance(0.3)) idx.push_back(i);
            }
            for (std::size_t i = idx.size(); i > 1; --i)
                std::swap(idx[i - 1], idx[r.below(i)]);
            Snapshot folded;
            for (auto i : idx)
                folded.merge(pool[i]);
            CAPTURE(seed, order);
            CHECK(describe(folded) == describe(reference));
        }
    }
}

TEST_CASE("property: a delta (k, v] takes any copy at k or later to v", "[presence][property]") {
    for (std::uint64_t seed = 1; seed <= 200; ++seed) {
        Rng r(seed);
        auto h = make_history(r, "a", 1, static_cast<int>(r.between(1, 40)));
        const auto top = h.states.size() - 1;
        for (int trial = 0; trial < 20; ++trial) {
            const auto base = r.below(top + 1);
            const auto v = base + r.below(top - base + 1);
            const auto at = base + r.below(v - base + 1);  // the receiver's version
            ReplicaState copy = h.states[at];
            const auto& log = h.logs[v];
            std::vector<Op> delta(log.begin() + static_cast<std::ptrdiff_t>(base),
                                  log.begin() + static_cast<std::ptrdiff_t>(v));
            if (r.chance(0.3)) delta.insert(delta.end(), delta.begin(), delta.end());  // duplicated
            presence::detail::Change change;
            CAPTURE(seed, base, v, at);
            REQUIRE(presence::detail::apply_delta(copy, base, v, delta, &change));
            Snapshot got, want;
            got.replicas["a"] = {1, copy};
            want.replicas["a"] = {1, h.states[v]};
            CHECK(describe(got) == describe(want));
            // The change reported is exactly the difference.
            CHECK(static_cast<std::ptrdiff_t>(h.states[at].entries.size() + change.joins.size() -
                                              change.leaves.size()) ==
                  static_cast<std::ptrdiff_t>(h.states[v].entries.size()));
            // A full copy gives the same, and an older one changes nothing.
            ReplicaState full = h.states[at];
            CHECK(presence::detail::merge_full(full, v, h.states[v].entries));
            CHECK(full.entries.size() == h.states[v].entries.size());
            if (v > 0) {
                CHECK_FALSE(presence::detail::merge_full(full, v - 1, EntryMap{}));
                CHECK(full.version == v);
                CHECK(full.entries.size() == h.states[v].entries.size());
            }
        }
        // A delta that starts after what the copy has seen is refused untouched.
        if (top >= 2) {
            ReplicaState copy = h.states[0];
            std::vector<Op> delta(h.log.begin() + 1, h.log.end());
            CHECK_FALSE(presence::detail::apply_delta(copy, 1, top, delta));
            CHECK(copy.version == 0);
            CHECK(copy.entries.empty());
        }
    }
}

TEST_CASE("property: coalesced diffs rebuild the list, whatever the window and timing",
          "[presence][property]") {
    for (std::uint64_t seed = 1; seed <= 150; ++seed) {
        Rng r(seed);
        plume::test::ManualClock clock;
        plume::pubsub::PubSub<> ps;
        presence::TrackerOptions o;
        o.clock = clock.fn();
        o.shards = 2;
        o.diff_window = std::chrono::milliseconds(r.between(0, 100));
        Replay replay;
        std::size_t diffs = 0;
        o.on_diff = [&](const std::string& topic, const auto& j, const auto& l) {
            ++diffs;
            replay.apply(topic, presence::diff_payload(presence::to_json(j), presence::to_json(l)));
        };
        presence::Tracker t(ps, o);
        for (int i = 0; i < 300; ++i) {
            const auto owner = static_cast<presence::OwnerId>(r.between(1, 5));
            const auto topic = "t" + std::to_string(r.below(3));
            const auto key = "k" + std::to_string(r.below(3));
            switch (r.below(6)) {
                case 0:
                case 1:
                    (void)t.track(owner, topic, key, {{"i", i}});
                    break;
                case 2:
                    (void)t.update(owner, topic, key, {{"i", i}});
                    break;
                case 3:
                    (void)t.untrack(owner, topic, key);
                    break;
                case 4:
                    if (r.chance(0.2)) t.untrack_all(owner);
                    break;
                default:
                    clock.advance(std::chrono::milliseconds(r.between(0, 60)));
                    t.tick();
            }
        }
        t.flush();
        CAPTURE(seed, o.diff_window.count());
        CHECK(replay.problems.empty());
        for (int i = 0; i < 3; ++i) {
            const auto topic = "t" + std::to_string(i);
            CHECK(replay.topic(topic) == presence::to_json(t.list(topic)));
        }
        if (o.diff_window.count() == 0) CHECK(diffs > 0);
    }
}
