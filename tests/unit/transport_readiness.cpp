// How a plain socket's connection waits to read, on an io_context that one
// thread runs: in the io_context's readiness set (transport/detail/
// readiness.hpp), an edge-triggered epoll set of its own, instead of one
// async_wait (and one epoll_ctl) per message. Edges announce new bytes only,
// so these tests cover the bytes no edge announces: those left in the socket
// by a turn out of budget, and those that came while the connection was
// paused. A real server on 127.0.0.1 and raw clients.
#include <catch2/catch.hpp>

#include <plume/transport.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "support/echo_client.hpp"
#include "support/run_until.hpp"

#ifdef PLUME_HAS_READINESS_SET

namespace ws = plume::transport;
using plume::test::run_until;
using plume::test::runs_out_of_work;
using Readiness = ws::detail::ReadinessSet;
using Client = plume::test::EchoClient;
using plume::test::echo_round;
using plume::test::open_clients;

namespace {

// Echoes; a message "pause" pauses reading until the test resumes it.
struct Echo {
    inline static std::vector<std::shared_ptr<void>> paused;
    void on_message(auto& c, ws::opcode, std::string_view data) {
        c.send_binary(data);
        if (data == "pause") {
            c.pause_reading();
            paused.push_back(c.shared_from_this());
        }
    }
    void on_close(auto&, std::uint16_t, std::string_view) {}
};
using Server = ws::Server<Echo>;
using Conn = Server::connection_type;

}  // namespace

TEST_CASE("a one-thread io_context's connections wait in its readiness set",
          "[transport][readiness]") {
    asio::io_context io{1};
    Server server(io, ws::Options{});
    server.listen("127.0.0.1", 0);
    auto clients = open_clients(io, server.local_endpoint().port(), 5);
    auto& set = asio::use_service<Readiness>(io);
    CHECK(set.size() == 5);
    CHECK(Readiness::of(io.get_executor()) == &set);

    // Request and reply, many times over: each reply comes from one edge.
    std::string expected;
    for (int round = 0; round < 200; ++round) {
        std::string msg = "m" + std::to_string(round);
        expected += msg;
        REQUIRE(echo_round(io, clients, msg, expected.size()));
    }
    for (auto& c : clients)
        CHECK(c->echoed == expected);
    CHECK(set.added() == 5);

    // A peer that goes away takes its socket out of the set.
    clients.pop_back();
    REQUIRE(run_until(io, [&] { return set.size() == 4; }));
    server.stop();
    clients.clear();
    CHECK(runs_out_of_work(io));
    CHECK(set.size() == 0);
}

TEST_CASE("an io_context that several threads may run uses async_wait", "[transport][readiness]") {
    asio::io_context io;  // no concurrency hint: connections get strands
    CHECK(Readiness::of(io.get_executor()) == nullptr);
    Server server(io, ws::Options{});
    server.listen("127.0.0.1", 0);
    Client client(io, server.local_endpoint().port());
    REQUIRE(run_until(io, [&] { return client.open(); }));
    client.send(Client::frame("hello"));
    REQUIRE(run_until(io, [&] {
        client.read();
        return client.echoed == "hello";
    }));
    CHECK(asio::use_service<Readiness>(io).size() == 0);
    server.stop();
}

TEST_CASE("bytes a turn left in the socket are read without a new edge", "[transport][readiness]") {
    // Two messages a turn, and more than the four 64 KiB reads a turn makes:
    // after the first turns the socket still holds bytes that no edge will
    // announce again, since the client sends nothing more.
    ws::Options opt;
    opt.max_messages_per_read_turn = 2;
    asio::io_context io{1};
    Server server(io, opt);
    server.listen("127.0.0.1", 0);
    Client client(io, server.local_endpoint().port());
    REQUIRE(run_until(io, [&] { return client.open(); }));
    client.sock.set_option(asio::socket_base::send_buffer_size(1 << 20));
    std::string burst, expected;
    for (int i = 0; i < 400; ++i) {
        std::string payload = std::to_string(i) + std::string(1000, 'x');
        burst += Client::frame(payload);
        expected += payload;
    }
    REQUIRE(burst.size() > 4 * 64 * 1024);
    client.send(burst);
    REQUIRE(run_until(io, [&] {
        client.read();
        return client.echoed.size() >= expected.size();
    }));
    CHECK(client.echoed == expected);
    server.stop();
}

TEST_CASE("bytes that came while a connection was paused are read when it resumes",
          "[transport][readiness]") {
    Echo::paused.clear();
    asio::io_context io{1};
    Server server(io, ws::Options{});
    server.listen("127.0.0.1", 0);
    Client client(io, server.local_endpoint().port());
    Client idle(io, server.local_endpoint().port());  // waits: the set is watched meanwhile
    REQUIRE(run_until(io, [&] { return client.open() && idle.open(); }));
    client.send(Client::frame("pause"));
    REQUIRE(run_until(io, [&] {
        client.read();
        return client.echoed == "pause" && Echo::paused.size() == 1;
    }));
    // The edge of this message comes while nobody waits for the socket.
    auto& set = asio::use_service<Readiness>(io);
    client.send(Client::frame("after"));
    REQUIRE(run_until(io, [&] { return set.marked_ready() == 1; }));
    client.read();
    CHECK(client.echoed == "pause");
    static_cast<Conn*>(Echo::paused.front().get())->resume_reading();
    REQUIRE(run_until(io, [&] {
        client.read();
        return client.echoed == "pauseafter";
    }));
    CHECK(set.marked_ready() == 0);
    Echo::paused.clear();
    server.stop();
}

TEST_CASE("connections waiting in the set end with their io_context", "[transport][readiness]") {
    // No stop(): the io_context's end destroys the waits, as it destroys
    // pending handlers; ASan reports what would leak.
    {
        asio::io_context io{1};
        plume::test::EchoClients clients;  // ends before `io`, after `server`
        Server server(io, ws::Options{});
        server.listen("127.0.0.1", 0);
        clients = open_clients(io, server.local_endpoint().port(), 3);
        CHECK(asio::use_service<Readiness>(io).size() == 3);
    }
}

TEST_CASE("more ready sockets than one batch: one wait on the set, and run() ends",
          "[transport][readiness]") {
    // 150 sockets turn readable at once, more than the 64 events one batch
    // takes, and each connection waits again while the batch is handled.
    // The set must keep exactly one wait of its own pending (stacked waits
    // kept the chat's io_context running after its last connection closed).
    asio::io_context io{1};
    Server server(io, ws::Options{});
    server.listen("127.0.0.1", 0);
    auto clients = open_clients(io, server.local_endpoint().port(), 150);
    auto& set = asio::use_service<Readiness>(io);
    std::string expected;
    for (int round = 0; round < 20; ++round) {
        std::string msg = "r" + std::to_string(round);
        expected += msg;
        REQUIRE(echo_round(io, clients, msg, expected.size()));
        CHECK(set.waits_pending() <= 1);
    }
    for (auto& c : clients)
        CHECK(c->echoed == expected);
    clients.clear();
    REQUIRE(run_until(io, [&] { return set.size() == 0; }));
    server.stop();
    CHECK(runs_out_of_work(io));
    CHECK(set.waits_pending() == 0);
}

#endif
