// PubSub with the Local adapter: delivery, exclusion, sharding, threads.
#include <catch2/catch.hpp>

#include <plume/pubsub.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "support/run_until.hpp"

using plume::pubsub::Message;
using plume::pubsub::PubSub;
using plume::test::run_until;

TEST_CASE("subscribers of a topic receive its broadcasts, others do not", "[pubsub]") {
    asio::io_context io;
    PubSub<> ps;
    std::vector<std::string> a, b;
    auto sa = ps.subscribe("room:1", io.get_executor(), [&](const Message& m) {
        a.push_back(m.event + ":" + m.payload["body"].get<std::string>());
    });
    auto sb =
        ps.subscribe("room:2", io.get_executor(), [&](const Message& m) { b.push_back(m.event); });
    ps.broadcast("room:1", "new_msg", {{"body", "hi"}});
    ps.broadcast("room:3", "nobody", {});
    REQUIRE(run_until(io, [&] { return a.size() == 1; }));
    io.poll();
    CHECK(a == std::vector<std::string>{"new_msg:hi"});
    CHECK(b.empty());
    CHECK(ps.subscriber_count("room:1") == 1);

    ps.unsubscribe("room:1", sa);
    CHECK(ps.subscriber_count("room:1") == 0);
    ps.broadcast("room:1", "new_msg", {{"body", "again"}});
    io.restart();
    io.poll();
    CHECK(a.size() == 1);
}

TEST_CASE("broadcast_from skips the sender; direct_broadcast to this node", "[pubsub]") {
    asio::io_context io;
    PubSub<> ps;
    int x = 0, y = 0;
    auto sx = ps.subscribe("t", io.get_executor(), [&](const Message&) { ++x; });
    auto sy = ps.subscribe("t", io.get_executor(), [&](const Message&) { ++y; });
    ps.broadcast_from(sx.get(), plume::pubsub::make_message("t", "e", {}));
    ps.direct_broadcast("local", plume::pubsub::make_message("t", "e", {}));
    ps.direct_broadcast("elsewhere", plume::pubsub::make_message("t", "e", {}));
    REQUIRE(run_until(io, [&] { return y == 2; }));
    io.poll();
    CHECK(x == 1);
    CHECK(y == 2);
}

TEST_CASE("the encode-once cache encodes a message once per slot", "[pubsub]") {
    auto m = plume::pubsub::make_message("t", "e", {{"k", 1}});
    std::atomic<int> encodes{0};
    std::vector<std::thread> threads;
    std::vector<plume::transport::SharedFrame> got(8);
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&, i] {
            got[static_cast<std::size_t>(i)] = m->frame(0, [&] {
                ++encodes;
                return plume::transport::make_shared_frame(plume::transport::opcode::text,
                                                           m->payload.dump());
            });
        });
    for (auto& t : threads)
        t.join();
    CHECK(encodes == 1);
    for (auto& f : got)
        CHECK(f == got[0]);  // the very same bytes, shared
}

TEST_CASE("publishing from many threads reaches every subscriber", "[pubsub]") {
    asio::io_context io;
    PubSub<> ps(plume::pubsub::Local{}, 4);
    std::atomic<int> received{0};
    std::vector<plume::pubsub::SubscriberPtr> subs;
    for (int i = 0; i < 20; ++i)
        subs.push_back(ps.subscribe("topic:" + std::to_string(i % 5), io.get_executor(),
                                    [&](const Message&) { ++received; }));
    std::vector<std::thread> publishers;
    for (int t = 0; t < 4; ++t)
        publishers.emplace_back([&, t] {
            for (int i = 0; i < 250; ++i)
                ps.broadcast("topic:" + std::to_string((t + i) % 5), "e", {{"i", i}});
        });
    for (auto& t : publishers)
        t.join();
    // 1000 broadcasts, each to the 4 subscribers of its topic.
    REQUIRE(run_until(io, [&] { return received == 4000; }));
}
