// pubsub::History: offsets, what a rejoin recovers, and when it cannot.
#include <catch2/catch.hpp>

#include <plume/pubsub/history.hpp>

#include <string>
#include <vector>

using nlohmann::json;
using plume::pubsub::History;
using plume::pubsub::HistoryOptions;
using plume::pubsub::make_message;
using plume::pubsub::MessagePtr;

namespace {

History make(std::vector<std::string> topics, std::size_t size = 3, std::size_t max_topics = 10) {
    HistoryOptions o;
    o.topics = std::move(topics);
    o.size = size;
    o.max_topics = max_topics;
    return History(o);
}

std::vector<MessagePtr> send(History& h, const std::string& topic, int n) {
    std::vector<MessagePtr> out;
    for (int i = 0; i < n; ++i)
        h.record(make_message(topic, "e", {{"i", i}}),
                 [&](const MessagePtr& m) { out.push_back(m); });
    return out;
}

History::Recovery recover(History& h, const std::string& topic, json params) {
    History::Recovery out;
    h.recover(topic, params, [&](const History::Recovery& r) { out = r; });
    return out;
}

}  // namespace

TEST_CASE("topics with history: exact names and prefixes", "[pubsub][history]") {
    auto h = make({"room:*", "news"});
    CHECK(h.enabled("room:lobby"));
    CHECK(h.enabled("room:"));
    CHECK(h.enabled("news"));
    CHECK(!h.enabled("news:1"));
    CHECK(!h.enabled("roo"));
    CHECK(!make({}).enabled("room:lobby"));
    CHECK(!make({"room:*"}, 0).enabled("room:lobby"));  // size 0: none
}

TEST_CASE("broadcasts get consecutive offsets; other messages pass unchanged",
          "[pubsub][history]") {
    auto h = make({"room:*"});
    auto sent = send(h, "room:1", 5);
    REQUIRE(sent.size() == 5);
    for (int i = 0; i < 5; ++i) {
        CHECK(sent[static_cast<std::size_t>(i)]->payload["offset"] == i + 1);
        CHECK(sent[static_cast<std::size_t>(i)]->payload["i"] == i);
    }
    CHECK(send(h, "room:2", 1)[0]->payload["offset"] == 1);  // per topic
    auto plain = send(h, "other", 1);
    CHECK(!plain[0]->payload.contains("offset"));
    std::vector<MessagePtr> out;
    auto bin = plume::pubsub::make_binary_message("room:1", "b", "xyz");
    h.record(bin, [&](const MessagePtr& m) { out.push_back(m); });
    CHECK(out.at(0) == bin);  // binary: not stamped, not kept
    HistoryOptions only;
    only.topics = {"room:*"};
    only.events = {"new_msg"};
    History h2(only);
    auto typing = make_message("room:1", "typing", json::object());
    h2.record(typing, [&](const MessagePtr& m) { out.push_back(m); });
    CHECK(out.back() == typing);  // an event not kept passes unchanged
    auto msg = make_message("room:1", "new_msg", json::object());
    h2.record(msg, [&](const MessagePtr& m) { out.push_back(m); });
    CHECK(out.back()->payload["offset"] == 1);
    out.resize(1);
    auto arr = make_message("room:1", "e", json::array({1}));
    h.record(arr, [&](const MessagePtr& m) { out.push_back(m); });
    CHECK(out.at(1) == arr);  // not an object: nowhere to write the offset
}

TEST_CASE("a rejoin recovers what it missed, or says it cannot", "[pubsub][history]") {
    auto h = make({"room:*"}, 3);
    auto first = recover(h, "room:1", json::object());
    CHECK(!first.recovered);
    CHECK(first.position.offset == 0);
    const auto epoch = first.position.epoch;
    REQUIRE(epoch.size() == 12);

    // Up to date from the start: nothing missed, recovered.
    auto none = recover(h, "room:1", {{"offset", 0}, {"epoch", epoch}});
    CHECK(none.recovered);
    CHECK(none.missed.empty());

    send(h, "room:1", 5);  // offsets 1..5, 3..5 kept
    auto r = recover(h, "room:1", {{"offset", 3}, {"epoch", epoch}});
    CHECK(r.recovered);
    REQUIRE(r.missed.size() == 2);
    CHECK(r.missed[0]->payload["offset"] == 4);
    CHECK(r.missed[1]->payload["offset"] == 5);
    CHECK(r.position.offset == 5);

    CHECK(recover(h, "room:1", {{"offset", 2}, {"epoch", epoch}}).recovered);   // 3..5 kept
    CHECK(!recover(h, "room:1", {{"offset", 1}, {"epoch", epoch}}).recovered);  // 2 is gone
    CHECK(recover(h, "room:1", {{"offset", 5}, {"epoch", epoch}}).recovered);
    CHECK(!recover(h, "room:1", {{"offset", 6}, {"epoch", epoch}}).recovered);  // the future
    CHECK(!recover(h, "room:1", {{"offset", 4}, {"epoch", "other"}}).recovered);
    CHECK(!recover(h, "room:1", {{"offset", -1}, {"epoch", epoch}}).recovered);
    CHECK(!recover(h, "room:1", {{"offset", "4"}, {"epoch", epoch}}).recovered);
    CHECK(!recover(h, "room:1", {{"offset", 4}}).recovered);
    CHECK(!recover(h, "room:1", json::array()).recovered);
    CHECK(History::asks_recovery({{"offset", 1}, {"epoch", "x"}}));
    CHECK(!History::asks_recovery({{"offset", 1}}));
}

TEST_CASE("too many topics: the least recently used history is forgotten", "[pubsub][history]") {
    auto h = make({"t:*"}, 3, 2);
    send(h, "t:a", 1);
    send(h, "t:b", 1);
    const auto epoch_a = recover(h, "t:a", json::object()).position.epoch;
    send(h, "t:a", 1);  // a is used more recently than b
    send(h, "t:c", 1);  // a third topic: b goes
    CHECK(h.topic_count() == 2);
    CHECK(recover(h, "t:a", {{"offset", 1}, {"epoch", epoch_a}}).recovered);
    auto b = recover(h, "t:b", json::object());  // b starts again: new epoch, offset 0
    CHECK(b.position.offset == 0);
}
