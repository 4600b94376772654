// plume's Redis client against a real redis-server started on a free port:
// pipelining, errors, AUTH/SELECT, outages, a wedged server, subscriptions.
#include <catch2/catch.hpp>

#include <plume/redis.hpp>

#include <string>
#include <vector>

#include "support/redis_server.hpp"
#include "support/run_until.hpp"

namespace redis = plume::redis;
using plume::test::RedisServer;
using plume::test::run_until;
using namespace std::chrono_literals;

namespace {

redis::Options options_for(const std::string& url, std::vector<std::error_code>* states = nullptr) {
    redis::Options o;
    o.url = *redis::parse_url(url);
    o.reconnect_min = 20ms;
    o.reconnect_max = 200ms;
    if (states) o.on_state = [states](std::error_code ec) { states->push_back(ec); };
    return o;
}

// Runs one command to completion.
std::pair<std::error_code, redis::Value> run(asio::io_context& io, redis::Client& c,
                                             std::vector<std::string> args) {
    bool done = false;
    std::pair<std::error_code, redis::Value> out;
    c.command(args, [&](std::error_code ec, redis::Value v) {
        out = {ec, std::move(v)};
        done = true;
    });
    REQUIRE(run_until(io, [&] { return done; }));
    return out;
}

}  // namespace

TEST_CASE("commands are pipelined: a burst leaves in a few writes, replies in order",
          "[redis][client]") {
    RedisServer server;
    asio::io_context io;
    auto c = redis::Client::create(io.get_executor(), options_for(server.url()));
    c->start();
    REQUIRE(run_until(io, [&] { return c->up(); }));

    constexpr int n = 10'000;
    std::vector<std::int64_t> got;
    for (int i = 0; i < n; ++i)
        c->command({"INCR", "counter"}, [&](std::error_code ec, redis::Value v) {
            REQUIRE(!ec);
            got.push_back(v.integer);
        });
    REQUIRE(run_until(io, [&] { return got.size() == n; }));
    for (int i = 0; i < n; ++i)
        REQUIRE(got[static_cast<std::size_t>(i)] == i + 1);
    auto s = c->stats();
    CHECK(s.commands == n);
    CHECK(s.link.writes < 50);  // one write per turn, not one per command

    auto [ec, v] = run(io, *c, {"GET", "counter"});
    CHECK(!ec);
    CHECK(v.text() == std::to_string(n));
    auto [ec2, v2] = run(io, *c, {"GET", "missing"});
    CHECK(!ec2);
    CHECK(v2.is_nil());
    // An error reply is an error code plus the reply's text; the connection stays.
    auto [ec3, v3] = run(io, *c, {"INCR", "counter", "extra"});
    CHECK(ec3 == redis::error::server_error);
    CHECK(v3.text().find("wrong number of arguments") != std::string::npos);
    auto [ec4, v4] = run(io, *c, {"SET", "bin", std::string("a\0\r\nb", 5)});
    CHECK(!ec4);
    auto [ec5, v5] = run(io, *c, {"GET", "bin"});
    CHECK(v5.text() == std::string("a\0\r\nb", 5));
    CHECK(c->stats().link.faults == 0);

    c->stop();
    CHECK(plume::test::runs_out_of_work(io));
}

TEST_CASE("AUTH and SELECT come from the URL; a wrong password is a clear error",
          "[redis][client]") {
    RedisServer server({"--requirepass", "s3cret"});
    const auto port = std::to_string(server.port());
    asio::io_context io;

    std::vector<std::error_code> states;
    auto c = redis::Client::create(
        io.get_executor(), options_for("redis://:s3cret@127.0.0.1:" + port + "/2", &states));
    c->start();
    REQUIRE(run_until(io, [&] { return c->up(); }));
    REQUIRE(states.size() == 1);
    CHECK(!states[0]);
    CHECK(!run(io, *c, {"SET", "where", "db2"}).first);

    auto c0 =
        redis::Client::create(io.get_executor(), options_for("redis://:s3cret@127.0.0.1:" + port));
    c0->start();
    REQUIRE(run_until(io, [&] { return c0->up(); }));
    CHECK(run(io, *c0, {"GET", "where"}).second.is_nil());  // another database
    CHECK(run(io, *c0, {"SELECT", "2"}).second.text() == "OK");
    CHECK(run(io, *c0, {"GET", "where"}).second.text() == "db2");

    std::vector<std::error_code> bad_states;
    auto bad = redis::Client::create(io.get_executor(),
                                     options_for("redis://:wrong@127.0.0.1:" + port, &bad_states));
    bad->start();
    REQUIRE(run_until(io, [&] { return !bad_states.empty(); }));
    CHECK(bad_states[0] == redis::error::connect_failed);
    CHECK(!bad->up());
    CHECK(run(io, *bad, {"PING"}).first == redis::error::not_connected);
    // Retries keep failing without another report.
    REQUIRE(run_until(io, [&] { return bad->stats().link.faults >= 3; }));
    CHECK(bad_states.size() == 1);

    for (auto* x : {c.get(), c0.get(), bad.get()})
        x->stop();
    CHECK(plume::test::runs_out_of_work(io));
}

TEST_CASE("no Redis: commands fail at once, and the client connects when it appears",
          "[redis][client]") {
    std::uint16_t port;
    {
        RedisServer probe;  // a port that was free a moment ago
        port = probe.port();
    }
    asio::io_context io;
    std::vector<std::error_code> states;
    auto o = options_for("redis://127.0.0.1:" + std::to_string(port), &states);
    auto c = redis::Client::create(io.get_executor(), o);
    c->start();
    REQUIRE(run_until(io, [&] { return !states.empty(); }));
    CHECK(states[0] == redis::error::connect_failed);
    CHECK(states[0].message() == "could not connect to Redis");
    // Refused without being queued or written (no waiting for a timeout).
    CHECK(run(io, *c, {"PING"}).first == redis::error::not_connected);
    CHECK(c->stats().refused == 1);
    CHECK(c->stats().commands == 0);
    c->stop();
    CHECK(plume::test::runs_out_of_work(io));
}

TEST_CASE("a Redis restart fails what was in flight, refuses while down, then resumes",
          "[redis][client]") {
    RedisServer server;
    asio::io_context io;
    std::vector<std::error_code> states;
    auto c = redis::Client::create(io.get_executor(), options_for(server.url(), &states));
    c->start();
    REQUIRE(run_until(io, [&] { return c->up(); }));
    CHECK(!run(io, *c, {"SET", "a", "1"}).first);

    server.kill();
    REQUIRE(run_until(io, [&] { return !c->up(); }));
    REQUIRE(states.size() == 2);
    CHECK(states[1] == redis::error::connection_lost);
    // While down: refused at once, every time.
    for (int i = 0; i < 3; ++i)
        CHECK(run(io, *c, {"SET", "a", "2"}).first == redis::error::not_connected);

    server.start();
    REQUIRE(run_until(io, [&] { return c->up(); }));
    CHECK(!states.back());
    CHECK(!run(io, *c, {"SET", "a", "3"}).first);
    CHECK(run(io, *c, {"GET", "a"}).second.text() == "3");
    CHECK(c->stats().link.connects == 2);
    c->stop();
    CHECK(plume::test::runs_out_of_work(io));
}

TEST_CASE("a wedged Redis (TCP open, nothing answers) times out and is replaced",
          "[redis][client]") {
    RedisServer server;
    asio::io_context io;
    std::vector<std::error_code> states;
    auto o = options_for(server.url(), &states);
    o.command_timeout = 300ms;
    o.ping_interval = 100ms;
    auto c = redis::Client::create(io.get_executor(), o);
    c->start();
    REQUIRE(run_until(io, [&] { return c->up(); }));

    server.pause();
    std::error_code got;
    bool done = false;
    auto t0 = std::chrono::steady_clock::now();
    c->command({"PING"}, [&](std::error_code ec, redis::Value) {
        got = ec;
        done = true;
    });
    REQUIRE(run_until(io, [&] { return done; }));
    auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(got == redis::error::timeout);
    CHECK(waited >= 300ms);  // the command timeout, not earlier
    CHECK(c->stats().link.timeouts == 1);
    CHECK(states.back() == redis::error::timeout);

    // The idle probe finds a wedge with no command in flight as well.
    server.resume();
    REQUIRE(run_until(io, [&] { return c->up(); }));
    server.pause();
    REQUIRE(run_until(
        io, [&] { return c->stats().link.timeouts == 2; }, 10s));
    server.resume();
    REQUIRE(run_until(io, [&] { return c->up(); }));
    CHECK(!run(io, *c, {"PING"}).first);
    c->stop();
    CHECK(plume::test::runs_out_of_work(io));
}

TEST_CASE("subscriptions: confirmed before the callback, batched, restored after a restart",
          "[redis][subscriber]") {
    RedisServer server;
    asio::io_context io;
    std::vector<std::pair<std::string, std::string>> got;
    auto sub = redis::Subscriber::create(
        io.get_executor(), options_for(server.url()),
        [&](std::string_view ch, std::string_view payload) { got.emplace_back(ch, payload); });
    auto pub = redis::Client::create(io.get_executor(), options_for(server.url()));
    sub->start();
    pub->start();
    REQUIRE(run_until(io, [&] { return sub->up() && pub->up(); }));

    // A publish issued from the confirmation is received: the SUBSCRIBE was done.
    bool confirmed = false;
    sub->subscribe("t:a", [&](std::error_code ec) {
        REQUIRE(!ec);
        confirmed = true;
        pub->command({"PUBLISH", "t:a", "first"},
                     [](std::error_code, redis::Value v) { CHECK(v.integer == 1); });
    });
    REQUIRE(run_until(io, [&] { return got.size() == 1; }));
    CHECK(confirmed);
    CHECK(got[0] == std::pair<std::string, std::string>("t:a", "first"));

    // 2,000 channels in one turn: four SUBSCRIBE commands of at most 512.
    const auto before = sub->stats().subscribe_commands;
    std::size_t ok = 0;
    for (int i = 0; i < 2000; ++i)
        sub->subscribe("t:" + std::to_string(i), [&](std::error_code ec) { ok += !ec; });
    REQUIRE(run_until(io, [&] { return ok == 2000; }));
    CHECK(sub->stats().subscribe_commands - before == 4);
    CHECK(sub->stats().confirmed == 2001);
    CHECK(run(io, *pub, {"PUBSUB", "NUMSUB", "t:1999"}).second.elements.at(1).integer == 1);

    // Unsubscribed: Redis has no subscriber left, and nothing more arrives.
    sub->unsubscribe("t:a");
    REQUIRE(run_until(io, [&] {
        return run(io, *pub, {"PUBSUB", "NUMSUB", "t:a"}).second.elements.at(1).integer == 0;
    }));
    CHECK(run(io, *pub, {"PUBLISH", "t:a", "second"}).second.integer == 0);

    // Churn within one turn and across turns ends as the last call says.
    sub->subscribe("t:churn");
    REQUIRE(run_until(io, [&] { return sub->stats().confirmed == 2001; }));
    sub->unsubscribe("t:churn");
    sub->subscribe("t:churn");
    sub->unsubscribe("t:churn");
    REQUIRE(run_until(io, [&] {
        return run(io, *pub, {"PUBSUB", "NUMSUB", "t:churn"}).second.elements.at(1).integer == 0;
    }));
    bool back = false;
    sub->subscribe("t:churn", [&](std::error_code ec) { back = !ec; });
    REQUIRE(run_until(io, [&] { return back; }));
    CHECK(run(io, *pub, {"PUBSUB", "NUMSUB", "t:churn"}).second.elements.at(1).integer == 1);
    sub->unsubscribe("t:churn");
    REQUIRE(run_until(io, [&] { return sub->stats().channels == 2000; }));

    // Restart: every wanted channel is subscribed again, in batches.
    server.kill();
    REQUIRE(run_until(io, [&] { return !sub->up(); }));
    CHECK(sub->stats().confirmed == 0);
    server.start();
    REQUIRE(run_until(io, [&] { return sub->stats().confirmed == 2000; }));
    REQUIRE(run_until(io, [&] { return pub->up(); }));
    auto channels = run(io, *pub, {"PUBSUB", "NUMPAT"});  // a round trip: no patterns used
    CHECK(channels.second.integer == 0);
    auto all = run(io, *pub, {"PUBSUB", "CHANNELS", "t:*"});
    CHECK(all.second.elements.size() == 2000);
    got.clear();
    CHECK(run(io, *pub, {"PUBLISH", "t:7", "again"}).second.integer == 1);
    REQUIRE(run_until(io, [&] { return got.size() == 1; }));
    CHECK(got[0].second == "again");

    sub->stop();
    pub->stop();
    CHECK(plume::test::runs_out_of_work(io));
}
