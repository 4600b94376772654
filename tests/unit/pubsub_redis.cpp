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
}
