// presence_state as a joiner gets it: the topic's list as of its last
// presence_diff, encoded once per topic version (presence_state_text), so
// that the state plus the diffs that follow rebuild the tracker's list exactly
// on a phoenix.js client, with or without a diff window.
#include <catch2/catch.hpp>

#include <plume/presence.hpp>
#include <plume/wire/encoded_payload.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
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

struct Fixture {
    plume::test::ManualClock clock;
    plume::pubsub::PubSub<> pubsub;
    std::vector<json> diffs;  // every presence_diff payload of "room", in order
    std::unique_ptr<Presence> p;

    explicit Fixture(std::chrono::milliseconds window, PresenceOptions o = {}) {
        o.tracker.incarnation = 1;
        o.tracker.clock = clock.fn();
        o.tracker.diff_window = window;
        o.on_diff = [this](const std::string& topic, const json& diff) {
            if (topic == "room") diffs.push_back(diff);
        };
        p = std::make_unique<Presence>(pubsub, std::move(o));
    }
    /// One timer tick after `d` (start() ticks every window).
    void advance(std::chrono::milliseconds d) {
        clock.advance(d);
        p->tick();
    }
};

// Within a key phoenix.js keeps arrival order, the server phx_ref order.
json sorted(json state) {
    for (auto& [k, v] : state.items())
        std::sort(v["metas"].begin(), v["metas"].end(),
                  [](const json& a, const json& b) { return a["phx_ref"] < b["phx_ref"]; });
    return state;
}

/// A phoenix.js client: subscribed to the topic when `subscribed` diffs had been
/// delivered, given `state` some time later; diffs delivered in between are
/// held back by presence.js and applied after the state, as are the later ones.
json client_view(const json& state, const std::vector<json>& diffs, std::size_t subscribed) {
    json view = plume::test::sync_state(json::object(), state);
    for (std::size_t i = subscribed; i < diffs.size(); ++i)
        view = plume::test::sync_diff(view, diffs[i]);
    return view;
}

}  // namespace

TEST_CASE("presence_state_text is presence_state's text, encoded once per topic version",
          "[presence]") {
    Fixture f(50ms);
    CHECK(*f.p->presence_state_text("room") == "{}");

    auto a = f.p->track(1, "room", "alice", {{"tab", 1}});
    REQUIRE(a);
    // Not published before the window has passed: the diff that carries it is pending.
    CHECK(*f.p->presence_state_text("room") == "{}");
    CHECK(f.p->presence_state("room") == json::object());
    CHECK(f.p->list("room").size() == 1);

    f.advance(50ms);
    REQUIRE(f.diffs.size() == 1);
    const auto first = f.p->presence_state_text("room");
    CHECK(*first == f.p->presence_state("room").dump());
    CHECK(json::parse(*first) == f.p->list("room"));
    CHECK(f.p->presence_state_text("room") == first);  // the same shared text

    // Another topic's diff leaves it alone; this topic's next diff replaces it.
    REQUIRE(f.p->track(2, "elsewhere", "bob", json::object()));
    f.advance(50ms);
    CHECK(f.p->presence_state_text("room") == first);
    REQUIRE(f.p->track(3, "room", "alice", {{"tab", 2}, {"name", "Zoë \"Z\""}}));
    REQUIRE(f.p->track(4, "room", "__proto__", json::object()));
    f.advance(50ms);
    const auto second = f.p->presence_state_text("room");
    CHECK(second != first);
    CHECK(*second == f.p->presence_state("room").dump());
    CHECK(json::parse(*second)["alice"]["metas"].size() == 2);

    // Everyone gone: the topic's state is empty again.
    f.p->untrack_all(1);
    f.p->untrack_all(3);
    f.p->untrack_all(4);
    f.advance(50ms);
    CHECK(*f.p->presence_state_text("room") == "{}");
}

TEST_CASE("presence_state_text runs fetch once per topic version", "[presence]") {
    int fetches = 0;
    PresenceOptions o;
    o.fetch = [&](const std::string&, json& presences) {
        ++fetches;
        for (auto& [key, p] : presences.items())
            p["user"] = {{"name", "user " + key}};
    };
    Fixture f(0ms, o);
    REQUIRE(f.p->track(1, "room", "42", json::object()));
    fetches = 0;
    const auto text = f.p->presence_state_text("room");
    CHECK(json::parse(*text)["42"]["user"]["name"] == "user 42");
    CHECK(*text == f.p->presence_state("room").dump());
    fetches = 0;
    for (int i = 0; i < 5; ++i)
        CHECK(f.p->presence_state_text("room") == text);
    CHECK(fetches == 0);
}

TEST_CASE("a pushed presence_state splices the shared text into each joiner's frame",
          "[presence]") {
    const std::string payload = R"({"42":{"metas":[{"phx_ref":"AAAAAAAB"}]}})";
    auto v2 = plume::wire::encode_push_with_payload_text(plume::wire::Vsn::v2, "3", "room:lobby",
                                                         "presence_state", payload);
    REQUIRE(v2);
    CHECK(v2->bytes == R"(["3",null,"room:lobby","presence_state",)" + payload + "]");
    auto v1 = plume::wire::encode_push_with_payload_text(plume::wire::Vsn::v1, "3", "room:lobby",
                                                         "presence_state", payload);
    REQUIRE(v1);
    // Byte for byte what encoding the parsed payload gives.
    plume::wire::Message m{"3", std::nullopt, "room:lobby", "presence_state", json::parse(payload)};
    CHECK(v1->bytes == plume::wire::V1Json::encode(m)->bytes);
    CHECK(v2->bytes == plume::wire::V2Json::encode(m)->bytes);
}

TEST_CASE(
    "with a diff window, the live list as a joiner's state could leave a ghost; "
    "presence_state does not",
    "[presence]") {
    Fixture f(50ms);
    REQUIRE(f.p->track(1, "room", "alice", json::object()));
    f.advance(50ms);
    // Bob joins and leaves within one window: the two cancel out, no diff mentions him.
    const std::size_t subscribed = f.diffs.size();
    REQUIRE(f.p->track(2, "room", "bob", json::object()));
    const json live = f.p->list("room");
    const json state = f.p->presence_state("room");
    f.p->untrack_all(2);
    f.advance(50ms);
    f.p->flush();
    CHECK(f.diffs.size() == subscribed);
    CHECK(client_view(live, f.diffs, subscribed).contains("bob"));  // the ghost
    CHECK(sorted(client_view(state, f.diffs, subscribed)) == f.p->list("room"));
}

TEST_CASE(
    "property: a joiner's presence_state plus the diffs that follow is the true list, "
    "under interleaved joins, leaves, updates and window flushes",
    "[presence][property]") {
    for (std::uint64_t seed = 1; seed <= 120; ++seed) {
        std::mt19937_64 rng(seed);
        auto between = [&](int lo, int hi) {
            return std::uniform_int_distribution<int>(lo, hi)(rng);
        };
        const auto window = std::chrono::milliseconds(seed % 4 == 0 ? 0 : between(5, 100));
        Fixture f(window);
        CAPTURE(seed, window.count());

        struct Joiner {
            std::size_t subscribed;
            json state;
            bool has_state = false;
            bool from_text = false;
        };
        std::vector<Joiner> joiners;
        std::vector<presence::OwnerId> owners;  // tracked on "room"
        presence::OwnerId next_owner = 1;
        const std::vector<std::string> keys{"a", "b", "c", "d", "e"};

        for (int step = 0; step < 300; ++step) {
            switch (between(0, 9)) {
                case 0:
                case 1:
                case 2: {  // a user joins (several owners may share a key)
                    const auto owner = next_owner++;
                    const auto& key = keys[static_cast<std::size_t>(between(0, 4))];
                    if (f.p->track(owner, "room", key, {{"n", step}})) owners.push_back(owner);
                    break;
                }
                case 3:
                case 4: {  // one leaves
                    if (owners.empty()) break;
                    const auto i =
                        static_cast<std::size_t>(between(0, static_cast<int>(owners.size()) - 1));
                    f.p->untrack_all(owners[i]);
                    owners.erase(owners.begin() + static_cast<std::ptrdiff_t>(i));
                    break;
                }
                case 5: {  // one updates its meta
                    if (owners.empty()) break;
                    const auto owner = owners[static_cast<std::size_t>(
                        between(0, static_cast<int>(owners.size()) - 1))];
                    for (const auto& k : keys)
                        (void)f.p->update(owner, "room", k, json{{"n", step}, {"typing", true}});
                    break;
                }
                case 6:  // a client subscribes to the topic (its channel joined)
                    joiners.push_back({f.diffs.size(), json(), false, between(0, 1) == 1});
                    break;
                case 7:  // ... and gets its presence_state a little later (after_join)
                    for (auto& j : joiners) {
                        if (j.has_state || between(0, 1) == 0) continue;
                        j.state = j.from_text ? json::parse(*f.p->presence_state_text("room"))
                                              : f.p->presence_state("room");
                        j.has_state = true;
                        break;
                    }
                    break;
                case 8:  // time passes: the timer ticks, windows end
                    f.advance(std::chrono::milliseconds(between(1, 40)));
                    break;
                case 9:  // other topics change too
                    (void)f.p->track(next_owner++, "other", "x", json::object());
                    break;
            }
        }
        for (auto& j : joiners)
            if (!j.has_state) {
                j.state = json::parse(*f.p->presence_state_text("room"));
                j.has_state = true;
            }
        f.advance(window + 1ms);
        f.p->flush();

        const json truth = f.p->list("room");
        CHECK(json::parse(*f.p->presence_state_text("room")) == truth);
        CHECK(f.p->presence_state("room") == truth);
        for (std::size_t i = 0; i < joiners.size(); ++i) {
            CAPTURE(i, joiners[i].subscribed, joiners[i].from_text);
            CHECK(sorted(client_view(joiners[i].state, f.diffs, joiners[i].subscribed)) == truth);
        }
    }
}
