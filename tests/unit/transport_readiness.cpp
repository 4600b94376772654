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

#include "support/raw_websocket.hpp"
#include "support/run_until.hpp"

#ifdef PLUME_HAS_READINESS_SET

namespace ws = plume::transport;
using plume::test::run_until;
using plume::test::runs_out_of_work;
using Readiness = ws::detail::ReadinessSet;

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

// A client that handshakes by hand, writes masked frames and counts the
// echoes' payload bytes.
struct Client {
    asio::ip::tcp::socket sock;
    std::string in;
    bool upgraded = false;
    std::string echoed;  // payloads, concatenated

    Client(asio::io_context& io, std::uint16_t port) : sock(io) {
        sock.connect({asio::ip::make_address("127.0.0.1"), port});
        asio::write(sock, asio::buffer(plume::test::upgrade_request));
        sock.non_blocking(true);
    }
    static std::string frame(std::string_view payload) {
        unsigned char header[ws::max_header_size];
        const unsigned char mask[4] = {0, 0, 0, 0};  // XOR with zeros: the payload as is
        std::size_t n =
            ws::write_header(header, ws::opcode::binary, payload.size(), true, false, mask);
        return std::string(reinterpret_cast<char*>(header), n) + std::string(payload);
    }
    void send(const std::string& bytes) {
        sock.non_blocking(false);
        asio::write(sock, asio::buffer(bytes));
        sock.non_blocking(true);
    }
    // Reads what is there; unmasked server frames, payload lengths < 64 KiB.
    void read() {
        char buf[64 * 1024];
        std::error_code ec;
        for (std::size_t n; (n = sock.read_some(asio::buffer(buf), ec)), !ec;)
            in.append(buf, n);
        if (!upgraded) {
            auto end = in.find("\r\n\r\n");
            if (end == std::string::npos) return;
            REQUIRE(in.starts_with("HTTP/1.1 101"));
            in.erase(0, end + 4);
            upgraded = true;
        }
        while (in.size() >= 2) {
            std::size_t len = static_cast<unsigned char>(in[1]) & 0x7f, head = 2;
            if (len == 126) {
                if (in.size() < 4) return;
                len = (std::size_t(static_cast<unsigned char>(in[2])) << 8) |
                      static_cast<unsigned char>(in[3]);
                head = 4;
            }
            if (in.size() < head + len) return;
            echoed.append(in, head, len);
            in.erase(0, head + len);
        }
    }
    bool open() {
        read();
        return upgraded;
    }
};

bool all_open(const std::vector<std::unique_ptr<Client>>& clients) {
    for (auto& c : clients)
        if (!c->open()) return false;
    return true;
}

}  // namespace

TEST_CASE("a one-thread io_context's connections wait in its readiness set",
          "[transport][readiness]") {
    asio::io_context io{1};
    Server server(io, ws::Options{});
    server.listen("127.0.0.1", 0);
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 5; ++i)
        clients.push_back(std::make_unique<Client>(io, server.local_endpoint().port()));
    REQUIRE(run_until(io, [&] { return all_open(clients); }));
    auto& set = asio::use_service<Readiness>(io);
    CHECK(set.size() == 5);
    CHECK(Readiness::of(io.get_executor()) == &set);

    // Request and reply, many times over: each reply comes from one edge.
    std::string expected;
    for (int round = 0; round < 200; ++round) {
        std::string msg = "m" + std::to_string(round);
        expected += msg;
        for (auto& c : clients)
            c->send(Client::frame(msg));
        REQUIRE(run_until(io, [&] {
            for (auto& c : clients) {
                c->read();
                if (c->echoed.size() < expected.size()) return false;
            }
            return true;
        }));
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
        std::vector<std::unique_ptr<Client>> clients;  // ends before `io`, after `server`
        Server server(io, ws::Options{});
        server.listen("127.0.0.1", 0);
        for (int i = 0; i < 3; ++i)
            clients.push_back(std::make_unique<Client>(io, server.local_endpoint().port()));
        REQUIRE(run_until(io, [&] { return all_open(clients); }));
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
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 150; ++i)
        clients.push_back(std::make_unique<Client>(io, server.local_endpoint().port()));
    REQUIRE(run_until(io, [&] { return all_open(clients); }));
    auto& set = asio::use_service<Readiness>(io);
    std::string expected;
    for (int round = 0; round < 20; ++round) {
        std::string msg = "r" + std::to_string(round);
        expected += msg;
        for (auto& c : clients)
            c->send(Client::frame(msg));
        REQUIRE(run_until(io, [&] {
            for (auto& c : clients) {
                c->read();
                if (c->echoed.size() < expected.size()) return false;
            }
            return true;
        }));
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
