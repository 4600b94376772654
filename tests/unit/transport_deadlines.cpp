// The timeouts of the connections of an io_context that one thread runs, in
// one heap under one Asio timer (transport/detail/deadlines.hpp): expiry in
// order, moves and cancels, the owners' lifetimes, and run() running out of
// work once nothing is armed. Then real connections on 127.0.0.1 using it:
// idle and handshake timeouts with one shared wait.
#include <catch2/catch.hpp>

#include <plume/transport.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "support/echo_client.hpp"
#include "support/run_until.hpp"

namespace ws = plume::transport;
using plume::test::run_until;
using plume::test::runs_out_of_work;
using Deadlines = ws::detail::Deadlines;
using namespace std::chrono_literals;

namespace {

// An owner that records, in `fired`, its number when its deadline passes.
struct Owner {
    int number;
    std::vector<int>* fired;
    static void on_expiry(void* p) {
        auto& o = *static_cast<Owner*>(p);
        o.fired->push_back(o.number);
    }
};

std::uint32_t add(Deadlines& d, std::chrono::milliseconds in, int number, std::vector<int>& fired,
                  std::weak_ptr<Owner>* watch = nullptr) {
    auto owner = std::make_shared<Owner>(Owner{number, &fired});
    if (watch) *watch = owner;
    return d.add(Deadlines::clock::now() + in, &Owner::on_expiry, std::move(owner));
}

}  // namespace

TEST_CASE("Deadlines: only on an io_context made for one thread", "[transport][deadlines]") {
    asio::io_context one{1};
    asio::io_context many;
    CHECK(Deadlines::of(one.get_executor()) != nullptr);
    CHECK(Deadlines::of(many.get_executor()) == nullptr);
}

TEST_CASE("Deadlines: expire in deadline order, moved and cancelled ones as set last",
          "[transport][deadlines]") {
    asio::io_context io{1};
    auto& d = *Deadlines::of(io.get_executor());
    std::vector<int> fired;
    add(d, 60ms, 6, fired);
    auto later = add(d, 10ms, 9, fired);  // moved to the end
    add(d, 20ms, 2, fired);
    auto gone = add(d, 30ms, 0, fired);     // cancelled
    auto sooner = add(d, 500ms, 1, fired);  // moved to the front
    add(d, 40ms, 4, fired);
    std::weak_ptr<Owner> cancelled;
    d.cancel(add(d, 5ms, -1, fired, &cancelled));
    d.move(later, Deadlines::clock::now() + 90ms);
    d.move(sooner, Deadlines::clock::now() + 1ms);
    d.cancel(gone);
    CHECK(d.size() == 5);
    CHECK(d.waits_pending() == 1);
    REQUIRE(runs_out_of_work(io));
    CHECK(fired == std::vector<int>{1, 2, 4, 6, 9});
    CHECK(d.size() == 0);
    CHECK(d.waits_pending() == 0);
    CHECK(cancelled.expired());  // let go in a posted handler
}

TEST_CASE("Deadlines: an owner is held until its deadline passes, then let go",
          "[transport][deadlines]") {
    asio::io_context io{1};
    auto& d = *Deadlines::of(io.get_executor());
    std::vector<int> fired;
    std::weak_ptr<Owner> watch;
    add(d, 30ms, 1, fired, &watch);
    CHECK_FALSE(watch.expired());
    REQUIRE(run_until(io, [&] { return !fired.empty(); }));
    CHECK(watch.expired());
}

TEST_CASE("Deadlines: cancelling the last one lets run() run out of work at once",
          "[transport][deadlines]") {
    asio::io_context io{1};
    auto& d = *Deadlines::of(io.get_executor());
    std::vector<int> fired;
    auto slot = add(d, std::chrono::hours(1), 1, fired);
    CHECK(d.waits_pending() == 1);
    d.cancel(slot);
    CHECK(d.waits_pending() == 0);
    auto start = std::chrono::steady_clock::now();
    REQUIRE(runs_out_of_work(io));
    CHECK(std::chrono::steady_clock::now() - start < 1s);  // not the hour's wait
    CHECK(fired.empty());
    // And armed again after that, it still fires.
    add(d, 5ms, 2, fired);
    REQUIRE(runs_out_of_work(io));
    CHECK(fired == std::vector<int>{2});
}

TEST_CASE("Deadlines: an expiry that arms again and cancels others", "[transport][deadlines]") {
    asio::io_context io{1};
    auto& d = *Deadlines::of(io.get_executor());
    struct Chain {
        Deadlines* d;
        std::uint32_t victim;
        int rounds = 0;
        static void on_expiry(void* p) {
            auto& c = *static_cast<Chain*>(p);
            if (c.victim != Deadlines::none) c.d->cancel(std::exchange(c.victim, Deadlines::none));
            if (++c.rounds < 3)
                c.d->add(Deadlines::clock::now() + 2ms, &Chain::on_expiry,
                         std::shared_ptr<void>(&c, [](void*) {}));
        }
    };
    std::vector<int> fired;
    Chain chain{&d, Deadlines::none};
    d.add(Deadlines::clock::now() + 5ms, &Chain::on_expiry,
          std::shared_ptr<void>(&chain, [](void*) {}));
    chain.victim = add(d, 50ms, 7, fired);
    REQUIRE(runs_out_of_work(io));
    CHECK(chain.rounds == 3);
    CHECK(fired.empty());
}

TEST_CASE("Deadlines: a shuffled heap of moves and cancels keeps its order",
          "[transport][deadlines]") {
    asio::io_context io{1};
    auto& d = *Deadlines::of(io.get_executor());
    std::mt19937 rng(7);
    std::vector<int> fired;
    auto base = Deadlines::clock::now() + 20ms;
    // 300 deadlines at distinct microseconds; a third moved, a fifth cancelled.
    std::vector<std::uint32_t> slots;
    std::vector<long> when(300);
    std::vector<bool> live(300, true);
    for (int i = 0; i < 300; ++i) {
        when[i] = static_cast<long>(rng() % 100);
        slots.push_back(d.add(base + std::chrono::microseconds(when[i] * 300 + i),
                              &Owner::on_expiry, std::make_shared<Owner>(Owner{i, &fired})));
    }
    for (int i = 0; i < 300; ++i) {
        if (i % 3 == 0) {
            when[i] = static_cast<long>(rng() % 100);
            d.move(slots[i], base + std::chrono::microseconds(when[i] * 300 + i));
        }
        if (i % 5 == 0) {
            d.cancel(slots[i]);
            live[i] = false;
        }
    }
    std::vector<int> expected;
    for (int i = 0; i < 300; ++i)
        if (live[i]) expected.push_back(i);
    std::sort(expected.begin(), expected.end(),
              [&](int a, int b) { return when[a] * 300 + a < when[b] * 300 + b; });
    // The latest is 20 + 30 ms away.
    REQUIRE(runs_out_of_work(io));
    CHECK(fired == expected);
}

namespace {

struct Echo {
    void on_message(auto& c, ws::opcode, std::string_view data) { c.send_binary(data); }
    void on_close(auto&, std::uint16_t, std::string_view) {}
};

}  // namespace

TEST_CASE("a one-thread server's connections share one timer for their timeouts",
          "[transport][deadlines]") {
    asio::io_context io{1};
    ws::Options opt;
    opt.idle_timeout = 300ms;
    opt.handshake_timeout = 300ms;
    opt.close_timeout = 200ms;  // these clients never answer a close frame
    ws::Server<Echo> server(io, opt);
    server.listen("127.0.0.1", 0);
    auto port = server.local_endpoint().port();
    auto& deadlines = *Deadlines::of(io.get_executor());

    // 20 open (idle deadlines), and 5 sockets that never send their upgrade
    // request (handshake deadlines).
    auto clients = plume::test::open_clients(io, port, 20);
    std::vector<asio::ip::tcp::socket> silent;
    for (int i = 0; i < 5; ++i) {
        silent.emplace_back(io);
        silent.back().connect({asio::ip::make_address("127.0.0.1"), port});
        silent.back().non_blocking(true);
    }
    REQUIRE(run_until(io, [&] { return deadlines.size() == 25; }));
    CHECK(deadlines.waits_pending() == 1);

    // Activity moves a deadline later: a client that keeps talking outlives
    // the idle timeout of the others.
    plume::test::EchoClients talker;
    talker.push_back(std::move(clients.back()));
    clients.pop_back();
    std::string talked;
    auto others_closed = [&] {
        for (auto& c : clients) {
            c->read();
            if (!c->eof) return false;
        }
        char byte;
        std::error_code ec;
        for (auto& s : silent) {
            s.read_some(asio::buffer(&byte, 1), ec);
            if (ec != asio::error::eof) return false;
        }
        return true;
    };
    // Bounded: about 0.5 s is expected (idle 300 ms, then close 200 ms).
    for (int round = 0; !others_closed(); ++round) {
        REQUIRE(round < 500);
        talked += "hi";
        REQUIRE(plume::test::echo_round(io, talker, "hi", talked.size()));
        io.run_for(20ms);
    }
    for (auto& c : clients)
        CHECK(c->echoed == std::string("\x03\xe9idle timeout"));  // 1001
    CHECK(talker[0]->echoed == talked);
    CHECK_FALSE(talker[0]->eof);
    CHECK(deadlines.size() == 1);  // the talker's idle deadline

    // Then it goes quiet too, and with the listener stopped nothing is left.
    REQUIRE(run_until(io, [&] {
        talker[0]->read();
        return talker[0]->eof;
    }));
    server.stop();
    CHECK(plume::test::runs_out_of_work(io));
    CHECK(deadlines.size() == 0);
    CHECK(deadlines.waits_pending() == 0);
}
