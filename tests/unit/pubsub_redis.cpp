// PubSub across nodes through a real redis-server: per-topic routing (no
// fan-in), encode-once envelopes, own echoes skipped, failures counted.
#include <catch2/catch.hpp>

#include <plume/pubsub.hpp>
#include <plume/pubsub/redis.hpp>

#include <string>
#include <vector>

#include "support/redis_server.hpp"
#include "support/run_until.hpp"

using plume::pubsub::Message;
using plume::pubsub::PubSub;
using plume::pubsub::Redis;
using plume::pubsub::RedisOptions;
using plume::test::RedisServer;
using plume::test::run_until;
using namespace std::chrono_literals;

namespace {

RedisOptions node(const RedisServer& server, std::string name) {
    RedisOptions o;
    o.url = server.url();
    o.node_name = std::move(name);
    o.unsubscribe_linger = 100ms;
    o.link.reconnect_min = 20ms;
    o.link.reconnect_max = 200ms;
    return o;
}

// NUMSUB of one Redis channel, asked through a client of our own.
std::int64_t numsub(asio::io_context& io, const RedisServer& server, const std::string& channel) {
    plume::redis::Options o;
    o.url = *plume::redis::parse_url(server.url());
    auto c = plume::redis::Client::create(io.get_executor(), o);
    c->start();
    REQUIRE(run_until(io, [&] { return c->up(); }));
    std::int64_t n = -1;
    c->command({"PUBSUB", "NUMSUB", channel}, [&](std::error_code ec, plume::redis::Value v) {
        REQUIRE(!ec);
        n = v.elements.at(1).integer;
    });
    REQUIRE(run_until(io, [&] { return n >= 0; }));
    c->stop();
    return n;
}

}  // namespace

TEST_CASE("a broadcast reaches the other nodes' subscribers once, and only nodes that serve it",
          "[pubsub][redis]") {
    RedisServer server;
    asio::io_context io;
    PubSub<Redis> a(Redis(io.get_executor(), node(server, "a")));
    PubSub<Redis> b(Redis(io.get_executor(), node(server, "b")));
    PubSub<Redis> c(Redis(io.get_executor(), node(server, "c")));
    REQUIRE(run_until(io, [&] {
        return a.adapter().connected() && b.adapter().connected() && c.adapter().connected();
    }));

    std::vector<std::string> on_a, on_b;
    auto sa = a.subscribe("room:1", io.get_executor(),
                          [&](const Message& m) { on_a.push_back(m.payload["body"]); });
    auto sb = b.subscribe("room:1", io.get_executor(),
                          [&](const Message& m) { on_b.push_back(m.payload["body"]); });
    // prepare() says when the topic's broadcasts reach this node.
    bool ready_a = false, ready_b = false;
    a.prepare("room:1", [&](std::error_code ec) { ready_a = !ec; });
    b.prepare("room:1", [&](std::error_code ec) { ready_b = !ec; });
    REQUIRE(run_until(io, [&] { return ready_a && ready_b; }));
    a.release("room:1");
    b.release("room:1");

    for (int i = 0; i < 100; ++i)
        a.broadcast("room:1", "new_msg", {{"body", "m" + std::to_string(i)}});
    REQUIRE(run_until(io, [&] { return on_b.size() == 100; }));
    for (int i = 0; i < 100; ++i) {
        CHECK(on_a[static_cast<std::size_t>(i)] == "m" + std::to_string(i));  // local, once
        CHECK(on_b[static_cast<std::size_t>(i)] == "m" + std::to_string(i));  // in order
    }
    // The origin skipped its own echoes; c, serving no subscriber, received nothing.
    REQUIRE(run_until(io, [&] { return a.adapter().stats().own == 100; }));
    CHECK(on_a.size() == 100);
    CHECK(a.adapter().stats().received == 0);
    CHECK(b.adapter().stats().received == 100);
    CHECK(c.adapter().stats().received == 0);
    CHECK(c.adapter().stats().subscriber.messages == 0);
    CHECK(numsub(io, server, "plume:t:room:1") == 2);
    REQUIRE(run_until(io, [&] { return a.adapter().stats().published == 100; }));
    CHECK(a.adapter().stats().client.link.writes < 100);  // coalesced

    // Binary payloads travel as bytes.
    std::vector<std::string> bin;
    auto sb2 = b.subscribe("room:bin", io.get_executor(),
                           [&](const Message& m) { bin.push_back(*m.binary); });
    bool ready = false;
    b.prepare("room:bin", [&](std::error_code ec) { ready = !ec; });
    REQUIRE(run_until(io, [&] { return ready; }));
    b.release("room:bin");
    a.broadcast(plume::pubsub::make_binary_message("room:bin", "blob", std::string("\0\xff", 2)));
    REQUIRE(run_until(io, [&] { return bin.size() == 1; }));
    CHECK(bin[0] == std::string("\0\xff", 2));

    // The last subscriber leaves: after the linger, the node unsubscribes.
    b.unsubscribe("room:1", sb);
    REQUIRE(run_until(
        io, [&] { return numsub(io, server, "plume:t:room:1") == 1; }, 5s));
    a.broadcast("room:1", "new_msg", {{"body", "late"}});
    REQUIRE(run_until(io, [&] { return a.adapter().stats().published == 102; }));
    CHECK(on_b.size() == 100);

    // direct_broadcast goes to one node's channel.
    std::vector<std::string> direct;
    auto sc = c.subscribe("tracker:x", io.get_executor(),
                          [&](const Message& m) { direct.push_back(m.event); });
    a.direct_broadcast("c", plume::pubsub::make_message("tracker:x", "transfer", {}));
    REQUIRE(run_until(io, [&] { return direct.size() == 1; }));

    // Over the size cap: refused at the origin, counted; a direct message
    // (a Tracker transfer) has its own, larger cap.
    const auto failed = a.adapter().stats().publish_failed;
    a.broadcast("room:1", "big", {{"body", std::string(2 << 20, 'x')}});
    CHECK(a.adapter().stats().too_large == 1);
    CHECK(a.adapter().stats().publish_failed == failed + 1);
    a.direct_broadcast("c", plume::pubsub::make_message("tracker:x", "transfer_ack",
                                                        {{"body", std::string(2 << 20, 'y')}}));
    REQUIRE(run_until(io, [&] { return direct.size() == 2; }));
    CHECK(direct[1] == "transfer_ack");
    CHECK(a.adapter().stats().too_large == 1);

    a.adapter().stop();
    b.adapter().stop();
    c.adapter().stop();
    CHECK(plume::test::runs_out_of_work(io));
}

TEST_CASE("Redis down: broadcasts fail fast and are counted, local delivery goes on, then resumes",
          "[pubsub][redis]") {
    RedisServer server;
    asio::io_context io;
    PubSub<Redis> a(Redis(io.get_executor(), node(server, "a")));
    PubSub<Redis> b(Redis(io.get_executor(), node(server, "b")));
    std::vector<std::string> on_a, on_b;
    auto sa = a.subscribe("t", io.get_executor(),
                          [&](const Message& m) { on_a.push_back(m.payload["n"]); });
    auto sb = b.subscribe("t", io.get_executor(),
                          [&](const Message& m) { on_b.push_back(m.payload["n"]); });
    REQUIRE(run_until(io, [&] { return a.adapter().connected() && b.adapter().connected(); }));
    bool ready = false;
    b.prepare("t", [&](std::error_code ec) { ready = !ec; });
    REQUIRE(run_until(io, [&] { return ready; }));
    b.release("t");

    server.kill();
    REQUIRE(run_until(io, [&] {
        return a.adapter().stats().client.link.faults >= 1 && !b.adapter().connected();
    }));
    for (int i = 0; i < 10; ++i)
        a.broadcast("t", "e", {{"n", "down"}});
    REQUIRE(run_until(io, [&] { return a.adapter().stats().publish_failed == 10; }));
    CHECK(a.adapter().stats().client.commands == 0);  // refused, never queued
    CHECK(on_a.size() == 10);                         // local subscribers still get them
    CHECK(on_b.empty());

    server.start();
    // Both nodes reconnect and b subscribes "t" again by itself.
    REQUIRE(run_until(io, [&] {
        return a.adapter().connected() && b.adapter().stats().subscriber.confirmed == 2;
    }));
    a.broadcast("t", "e", {{"n", "up"}});
    REQUIRE(run_until(io, [&] { return on_b.size() == 1; }));
    CHECK(on_b[0] == "up");

    a.adapter().stop();
    b.adapter().stop();
    CHECK(plume::test::runs_out_of_work(io));
}

TEST_CASE("a bad Redis URL is refused when the adapter is made", "[pubsub][redis]") {
    asio::io_context io;
    RedisOptions o;
    o.url = "http://127.0.0.1:6379";
    try {
        Redis r(io.get_executor(), o);
        FAIL("no exception");
    } catch (const std::system_error& e) {
        CHECK(e.code() == plume::redis::error::bad_url);
        CHECK(std::string(e.what()).find("http://127.0.0.1:6379") != std::string::npos);
    }
}

TEST_CASE("envelopes: what one node encodes, another decodes; garbage is refused",
          "[pubsub][redis]") {
    auto m = plume::pubsub::make_message("room:é", "ev", {{"a", {1, 2}}, {"s", "x\"y"}});
    auto bytes = plume::pubsub::detail::encode_envelope("n1#42", *m);
    auto e = plume::pubsub::detail::decode_envelope(bytes);
    REQUIRE(e);
    CHECK(e->origin == "n1#42");
    CHECK(e->message->topic == "room:é");
    CHECK(e->message->event == "ev");
    CHECK(e->message->payload == m->payload);
    for (std::size_t cut = 0; cut < 2 + 4 + 5 + 4 + 8 + 4 + 2; ++cut)
        CHECK(!plume::pubsub::detail::decode_envelope(std::string_view(bytes).substr(0, cut)));
    CHECK(!plume::pubsub::detail::decode_envelope(std::string(bytes).replace(0, 1, "\x07")));
    CHECK(!plume::pubsub::detail::decode_envelope(bytes.substr(0, bytes.size() - 1)));  // bad JSON
    CHECK(e->message->priority == plume::transport::Priority::normal);
    CHECK(bytes[1] == 0);  // a normal broadcast's envelope is what it was before lanes
}

TEST_CASE("envelopes carry a broadcast's lane and coalesce key", "[pubsub][redis][lanes]") {
    using plume::transport::Priority;
    for (auto p : {Priority::critical, Priority::high, Priority::low}) {
        auto m = std::make_shared<plume::pubsub::Message>();
        m->topic = "room:1";
        m->event = "typing";
        m->payload = {{"user_id", "u"}};
        m->priority = p;
        if (p == Priority::low) m->coalesce_key = plume::transport::coalesce_key("typing:u");
        auto bytes = plume::pubsub::detail::encode_envelope("n1", *m);
        auto e = plume::pubsub::detail::decode_envelope(bytes);
        REQUIRE(e);
        CHECK(e->message->priority == p);
        CHECK(e->message->payload == m->payload);
        if (p == Priority::low) {
            REQUIRE(e->message->coalesce_key);
            CHECK(*e->message->coalesce_key == "typing:u");
        } else {
            CHECK_FALSE(e->message->coalesce_key);
        }
        // A lane byte out of range is refused.
        auto bad = bytes;
        bad[2 + 4 + 2 + 4 + 6 + 4 + 6] = 9;
        CHECK(!plume::pubsub::detail::decode_envelope(bad));
    }
    auto b = plume::pubsub::make_binary_message("room:1", "blob", std::string("\0\1", 2));
    auto lb = std::make_shared<plume::pubsub::Message>();
    lb->topic = "room:1";
    lb->event = "blob";
    lb->binary = std::string("\0\1", 2);
    lb->priority = Priority::high;
    auto e =
        plume::pubsub::detail::decode_envelope(plume::pubsub::detail::encode_envelope("n", *lb));
    REQUIRE(e);
    CHECK(e->message->priority == Priority::high);
    CHECK(e->message->binary == b->binary);
}

namespace {

plume::pubsub::HistoryOptions rooms(std::size_t size) {
    plume::pubsub::HistoryOptions h;
    h.topics = {"room:*"};
    h.size = size;
    return h;
}

plume::pubsub::HistoryRecovery recover(asio::io_context& io, Redis& r, const std::string& topic,
                                       const plume::pubsub::HistoryOptions& h,
                                       nlohmann::json params) {
    std::optional<plume::pubsub::HistoryRecovery> out;
    r.recover_history(topic, plume::pubsub::HistoryRequest::from(params), h,
                      [&](plume::pubsub::HistoryRecovery rec) { out = std::move(rec); });
    REQUIRE(run_until(io, [&] { return out.has_value(); }));
    return *out;
}

}  // namespace

TEST_CASE("history in Redis: one offset sequence for every node, recovery from any node",
          "[pubsub][redis][history]") {
    RedisServer server;
    asio::io_context io;
    PubSub<Redis> a(Redis(io.get_executor(), node(server, "a")));
    PubSub<Redis> b(Redis(io.get_executor(), node(server, "b")));
    REQUIRE(run_until(io, [&] { return a.adapter().connected() && b.adapter().connected(); }));
    const auto h = rooms(5);

    // Both nodes serve room:1; a's subscriber gets a's own broadcasts from
    // their echo, stamped, in the same order as b's.
    std::vector<std::pair<std::uint64_t, std::string>> on_a, on_b, local_a;
    auto sa = a.subscribe("room:1", io.get_executor(), [&](const Message& m) {
        on_a.emplace_back(m.offset, m.payload["body"]);
    });
    auto sb = b.subscribe("room:1", io.get_executor(), [&](const Message& m) {
        CHECK(m.payload["offset"] == m.offset);
        on_b.emplace_back(m.offset, m.payload["body"]);
    });
    int ready = 0;
    a.prepare("room:1", [&](std::error_code ec) { ready += !ec; });
    b.prepare("room:1", [&](std::error_code ec) { ready += !ec; });
    REQUIRE(run_until(io, [&] { return ready == 2; }));
    a.release("room:1");
    b.release("room:1");

    const auto first = recover(io, a.adapter(), "room:1", h, nlohmann::json::object());
    CHECK(!first.error);
    CHECK(first.position.offset == 0);
    CHECK(first.position.epoch.size() == 12);
    for (int i = 0; i < 8; ++i) {
        auto m =
            plume::pubsub::make_message("room:1", "new_msg", {{"body", "m" + std::to_string(i)}});
        auto& from = i % 2 ? b : a;
        from.adapter().publish_history(m, h, [&, &node = from](plume::pubsub::MessagePtr s) {
            if (&node == &a) local_a.emplace_back(s->offset, s->payload["body"]);
            node.local_broadcast(std::move(s));
        });
    }
    REQUIRE(run_until(io, [&] { return on_a.size() == 8 && on_b.size() == 8; }));
    CHECK(on_a == on_b);  // the same order on both nodes
    for (std::uint64_t i = 0; i < 8; ++i)
        CHECK(on_a[static_cast<std::size_t>(i)].first == i + 1);  // consecutive
    CHECK(local_a.size() == 4);  // a's own, through the callback its publisher gave
    CHECK(a.adapter().stats().received == 4);

    // From node b: what followed offset 4 of this epoch.
    auto r =
        recover(io, b.adapter(), "room:1", h, {{"offset", 4}, {"epoch", first.position.epoch}});
    CHECK(r.recovered);
    CHECK(r.position.offset == 8);
    CHECK(r.position.epoch == first.position.epoch);
    REQUIRE(r.missed.size() == 4);
    for (std::size_t i = 0; i < 4; ++i) {
        CHECK(r.missed[i]->offset == 5 + i);
        CHECK(r.missed[i]->payload["offset"] == 5 + i);
        CHECK(r.missed[i]->payload["body"] == on_a[4 + i].second);
        CHECK(r.missed[i]->topic == "room:1");
        CHECK(r.missed[i]->event == "new_msg");
    }
    // Up to date: recovered, nothing missed.
    r = recover(io, b.adapter(), "room:1", h, {{"offset", 8}, {"epoch", first.position.epoch}});
    CHECK(r.recovered);
    CHECK(r.missed.empty());
    // Too far behind (6 > 5 kept), another epoch, the future, garbage: not recovered.
    for (auto params : {nlohmann::json{{"offset", 2}, {"epoch", first.position.epoch}},
                        nlohmann::json{{"offset", 4}, {"epoch", "000000000000"}},
                        nlohmann::json{{"offset", 9}, {"epoch", first.position.epoch}},
                        nlohmann::json{{"offset", -1}, {"epoch", first.position.epoch}},
                        nlohmann::json{{"offset", "4"}, {"epoch", first.position.epoch}}}) {
        r = recover(io, a.adapter(), "room:1", h, params);
        CHECK(!r.recovered);
        CHECK(r.missed.empty());
        CHECK(r.position.offset == 8);
        CHECK(!r.error);
    }

    a.adapter().stop();
    b.adapter().stop();
    CHECK(plume::test::runs_out_of_work(io));
}

TEST_CASE("history in Redis: Redis down, the read fails with an error and publishing falls back",
          "[pubsub][redis][history]") {
    auto server = std::make_unique<RedisServer>();
    asio::io_context io;
    PubSub<Redis> a(Redis(io.get_executor(), node(*server, "a")));
    REQUIRE(run_until(io, [&] { return a.adapter().connected(); }));
    server.reset();  // Redis is gone
    REQUIRE(run_until(io, [&] { return !a.adapter().connected(); }));
    const auto h = rooms(5);
    auto r = recover(io, a.adapter(), "room:1", h, {{"offset", 1}, {"epoch", "x"}});
    CHECK(r.error);
    CHECK(!r.recovered);
    CHECK(r.position.epoch.empty());
    CHECK(a.adapter().stats().recovery_failed == 1);
    // Not sent: the publisher's local delivery still runs, without an offset.
    std::vector<plume::pubsub::MessagePtr> local;
    a.adapter().publish_history(plume::pubsub::make_message("room:1", "new_msg", {{"b", 1}}), h,
                                [&](plume::pubsub::MessagePtr m) { local.push_back(m); });
    REQUIRE(run_until(io, [&] { return local.size() == 1; }));
    CHECK(local[0]->offset == 0);
    CHECK(!local[0]->payload.contains("offset"));
    CHECK(a.adapter().stats().publish_failed == 1);
    a.adapter().stop();
    CHECK(plume::test::runs_out_of_work(io));
}

TEST_CASE("history envelopes and recovery replies: malformed ones are refused", "[pubsub][redis]") {
    using namespace plume::pubsub::detail;
    auto m = plume::pubsub::make_message("room:1", "new_msg", {{"body", "x"}});
    // As the publish script makes it: head, then the offset, then the payload.
    auto with_offset = [&](std::string_view offset, std::string_view payload) {
        std::string e = encode_history_head("n#1", *m, 7, "offset");
        put_field(e, offset);
        return e + std::string(payload);
    };
    auto e = decode_envelope(with_offset("12", R"({"body":"x","offset":"user's"})"));
    REQUIRE(e);
    CHECK(e->seq == 7);
    CHECK(e->message->offset == 12);
    CHECK(e->message->payload["offset"] == 12);  // the history's, not the sender's
    CHECK(!decode_envelope(with_offset("0", "{}")));
    CHECK(!decode_envelope(with_offset("x1", "{}")));
    CHECK(!decode_envelope(with_offset("", "{}")));
    CHECK(!decode_envelope(with_offset("3", "[1]")));  // history payloads are objects

    using V = plume::redis::Value;
    auto entry = [](std::string id, std::string payload) {
        V fields{V::Type::array,
                 {},
                 0,
                 {V::bulk_string("e"), V::bulk_string("new_msg"), V::bulk_string("p"),
                  V::bulk_string(std::move(payload))}};
        return V{V::Type::array, {}, 0, {V::bulk_string(std::move(id)), std::move(fields)}};
    };
    auto reply = [](std::int64_t last, std::vector<V> entries) {
        return V{V::Type::array,
                 {},
                 0,
                 {V::number(last), V::bulk_string("ep"), V{V::Type::array, {}, 0, entries}}};
    };
    auto req = plume::pubsub::HistoryRequest::from({{"offset", 1}, {"epoch", "ep"}});
    auto ok = read_recovery(reply(3, {entry("2-0", "{}"), entry("3-0", R"({"a":1})")}), "room:1",
                            req, "offset");
    CHECK(ok.recovered);
    REQUIRE(ok.missed.size() == 2);
    CHECK(ok.missed[1]->payload == nlohmann::json{{"a", 1}, {"offset", 3}});
    // A hole (trimmed), a wrong ID, bad JSON, a short list: not recovered, no error.
    for (auto bad :
         {reply(3, {entry("3-0", "{}"), entry("3-0", "{}")}),
          reply(3, {entry("2-1", "{}"), entry("3-0", "{}")}),
          reply(3, {entry("2-0", "{"), entry("3-0", "{}")}), reply(3, {entry("3-0", "{}")})}) {
        auto r = read_recovery(bad, "room:1", req, "offset");
        CHECK(!r.recovered);
        CHECK(r.missed.empty());
        CHECK(!r.error);
    }
    CHECK(read_recovery(V::number(1), "room:1", req, "offset").error);
    CHECK(read_recovery(reply(-1, {}), "room:1", req, "offset").error);
}
