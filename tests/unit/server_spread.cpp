// Endpoint::spread_over (transport::Server::spread_over): the WebSocket
// connections go to several io_contexts, one after another, each made for
// one thread and run by a thread of its own. A broadcast from a connection on
// one reaches the subscribers on every one, in order, and stop() closes them
// all and calls back once the last one has closed, after which the contexts
// run out of work. A real Endpoint on 127.0.0.1, raw V2 clients on the
// test's own io_context.
#include <catch2/catch.hpp>

#include <plume/server.hpp>
#include <plume/transport.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/raw_v2_client.hpp"
#include "support/run_until.hpp"

namespace ps = plume::server;
namespace ws = plume::transport;
using nlohmann::json;
using plume::test::Frames;
using plume::test::RawClient;
using plume::test::run_until;
using plume::test::send;

namespace {

class Lobby;

struct SpreadSocket {
    ps::ConnectResult connect(const ps::Params&, const ps::ConnectInfo&) {
        return ps::ConnectResult::accept();
    }
    static void channels(ps::Router<SpreadSocket>& r) { r.channel<Lobby>("room:*"); }
};

// The threads the joins ran on.
struct Seen {
    std::mutex mutex;
    std::set<std::thread::id> threads;
};
Seen seen;

class Lobby : public ps::Channel<SpreadSocket> {
  public:
    JoinResult join(std::string_view, const Payload&) override {
        std::lock_guard l(seen.mutex);
        seen.threads.insert(std::this_thread::get_id());
        return ok();
    }
    InResult handle_in(std::string_view event, const Payload& payload) override {
        if (event != "shout") return reply_error({{"reason", "unknown event"}});
        broadcast("shout", payload.json());
        return noreply();
    }
};

}  // namespace

TEST_CASE("connections spread over io_contexts of their own threads get every broadcast",
          "[server][threads]") {
    {
        std::lock_guard l(seen.mutex);
        seen.threads.clear();
    }
    ps::EndpointConfig config;
    config.port = 0;
    config.log.sink = [](const ps::LogRecord&) {};
    asio::io_context first{1}, second{1};
    ps::Endpoint<SpreadSocket> endpoint(first, config);
    endpoint.spread_over({&first, &second});
    auto guard_first = asio::make_work_guard(first);
    auto guard_second = asio::make_work_guard(second);
    endpoint.start();
    std::thread first_thread([&] { first.run(); });
    std::thread second_thread([&] { second.run(); });
    const auto first_id = first_thread.get_id();
    // On a failed REQUIRE too: the contexts stop and their threads end.
    struct Join {
        asio::io_context &a, &b;
        std::thread &ta, &tb;
        ~Join() {
            if (ta.joinable()) a.stop(), ta.join();
            if (tb.joinable()) b.stop(), tb.join();
        }
    } join_at_exit{first, second, first_thread, second_thread};

    asio::io_context io;  // the clients'
    const std::string url = "ws://127.0.0.1:" + std::to_string(endpoint.local_endpoint().port()) +
                            "/socket/websocket?vsn=2.0.0";
    constexpr int n = 6;
    std::vector<std::shared_ptr<Frames>> recs;
    std::vector<decltype(ws::connect<RawClient>(io, url, ws::Options{}, RawClient{}))> conns;
    // One at a time: each connection is its own accept wake-up (whose last
    // accept finds nothing), and still they alternate between the contexts.
    for (int i = 0; i < n; ++i) {
        recs.push_back(std::make_shared<Frames>());
        conns.push_back(ws::connect<RawClient>(io, url, ws::Options{}, RawClient{recs.back()}));
        REQUIRE(run_until(io, [&] {
            std::lock_guard l(recs.back()->mutex);
            return recs.back()->open;
        }));
    }
    for (int i = 0; i < n; ++i)
        send(conns[static_cast<std::size_t>(i)], {"1", "1", "room:lobby", "phx_join", {}});
    REQUIRE(run_until(io, [&] {
        for (auto& r : recs)
            if (!r->reply_to("1")) return false;
        return true;
    }));
    for (auto& r : recs)
        CHECK((*r->reply_to("1"))[4]["status"] == "ok");
    {
        std::lock_guard l(seen.mutex);
        CHECK(seen.threads.size() == 2);  // one after another: both contexts have joins
        CHECK_FALSE(seen.threads.contains(std::this_thread::get_id()));
    }

    // Two senders, one on each context (the 1st and 2nd connection), 50
    // shouts each: every client gets all 100, each sender's in its order.
    constexpr int shouts = 50;
    for (int k = 0; k < shouts; ++k)
        for (int s = 0; s < 2; ++s)
            send(conns[static_cast<std::size_t>(s)],
                 {"1", std::to_string(k + 2), "room:lobby", "shout", {{"from", s}, {"k", k}}});
    REQUIRE(run_until(io, [&] {
        for (auto& r : recs)
            if (r->matching("shout").size() < 2 * shouts) return false;
        return true;
    }));
    for (auto& r : recs) {
        auto got = r->matching("shout");
        CHECK(got.size() == 2 * shouts);
        int next[2] = {0, 0};
        for (auto& f : got) {
            const int from = f[4]["from"];
            CHECK(f[4]["k"] == next[from]++);
        }
    }

    // stop(): every connection closed with 1001, then the callback, on the
    // endpoint's io_context; without their guards the contexts run out of
    // work and their threads end.
    std::atomic<bool> stopped{false};
    std::atomic<std::thread::id> stopped_on{};
    endpoint.stop(ws::to_int(ws::close_code::going_away), [&] {
        stopped_on = std::this_thread::get_id();
        stopped = true;
        guard_first.reset();
        guard_second.reset();
    });
    REQUIRE(run_until(io, [&] {
        for (auto& r : recs) {
            std::lock_guard l(r->mutex);
            if (r->close_code == 0) return false;
        }
        return stopped.load();
    }));
    for (auto& r : recs)
        CHECK(r->close_code == 1001);
    first_thread.join();
    second_thread.join();
    CHECK(stopped_on.load() == first_id);
    CHECK(endpoint.connection_count() == 0);
}
