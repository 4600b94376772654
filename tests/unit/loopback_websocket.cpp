// Server and client roles of plume's WebSocket layer talking to each other
// over real sockets on 127.0.0.1, in one io_context.
#include <catch2/catch.hpp>

#include <plume/transport.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/full_listener.hpp"
#include "support/run_until.hpp"

namespace ws = plume::transport;
using plume::test::run_until;

namespace {

struct EchoHandler {
    void on_message(auto& conn, ws::opcode op, std::string_view data) {
        op == ws::opcode::text ? conn.send_text(data) : conn.send_binary(data);
    }
    void on_close(auto&, std::uint16_t, std::string_view) {}
};

struct Record {
    bool opened = false;
    std::string handshake_error;
    std::error_code handshake_ec;
    std::vector<std::pair<ws::opcode, std::string>> messages;
    int close_code = 0;
    std::string close_reason;
    std::string subprotocol;
};

struct ClientHandler {
    std::shared_ptr<Record> rec;
    void on_open(auto& conn) {
        rec->opened = true;
        rec->subprotocol = conn.subprotocol();
    }
    void on_message(auto&, ws::opcode op, std::string_view data) {
        rec->messages.emplace_back(op, std::string(data));
    }
    void on_close(auto&, std::uint16_t code, std::string_view reason) {
        rec->close_code = code;
        rec->close_reason = std::string(reason);
    }
    void on_handshake_error(auto&, std::error_code ec, std::string_view detail) {
        rec->handshake_ec = ec;
        rec->handshake_error = ec.message();
        if (!detail.empty()) rec->handshake_error += ": " + std::string(detail);
    }
};

// Accepts only /chat, offers "phoenix" when the client asks for it.
struct PickyHandler : EchoHandler {
    void on_upgrade(const ws::UpgradeRequest& req, ws::UpgradeResponse& res) {
        if (req.path() != "/chat") return res.reject(403, "no such socket");
        for (auto& p : req.subprotocols)
            if (p == "phoenix") return res.accept("phoenix");
    }
};

// Answers every message with which executor the connection runs on: the
// io_context's own, or another (a strand of it).
struct ExecutorHandler {
    inline static asio::io_context* io = nullptr;
    void on_message(auto& conn, ws::opcode, std::string_view) {
        conn.send_text(runs_on_io_context(conn) ? "io_context" : "strand");
    }
    void on_close(auto&, std::uint16_t, std::string_view) {}
    static bool runs_on_io_context(auto& conn) {
        return conn.get_executor() == asio::any_io_executor(io->get_executor());
    }
};

template <class Handler = EchoHandler>
struct Fixture {
    asio::io_context io;
    ws::Server<Handler> server;
    std::string url;
    explicit Fixture(ws::Options opt = {}, int concurrency_hint = ASIO_CONCURRENCY_HINT_DEFAULT)
        : io(concurrency_hint), server(io, opt) {
        server.listen("127.0.0.1", 0);
        url = "ws://127.0.0.1:" + std::to_string(server.local_endpoint().port());
    }
    auto client(std::shared_ptr<Record> rec, std::string path = "/", ws::Options opt = {},
                ws::ClientRequest req = {}) {
        return ws::connect<ClientHandler>(io, url + path, opt, ClientHandler{rec}, std::move(req));
    }
};

}  // namespace

TEST_CASE("client and server exchange text and binary messages", "[transport][loopback]") {
    Fixture f;
    auto rec = std::make_shared<Record>();
    auto conn = f.client(rec);
    REQUIRE(run_until(f.io, [&] { return rec->opened; }));
    std::string big(200'000, 'x');
    big[1234] = 'y';
    asio::post(conn->get_executor(), [&] {
        conn->send_text("héllo");
        conn->send_binary(std::string("\0\1\2", 3));
        conn->send_text(big);
    });
    REQUIRE(run_until(f.io, [&] { return rec->messages.size() == 3; }));
    CHECK(rec->messages[0] == std::pair{ws::opcode::text, std::string("héllo")});
    CHECK(rec->messages[1] == std::pair{ws::opcode::binary, std::string("\0\1\2", 3)});
    CHECK(rec->messages[2].second == big);

    asio::post(conn->get_executor(), [&] { conn->close(4001, "done"); });
    REQUIRE(run_until(f.io, [&] { return f.server.connection_count() == 0; }));
    CHECK(rec->close_code == 4001);
}

TEST_CASE("an io_context made for one thread runs connections without a strand each",
          "[transport][loopback]") {
    for (const bool one_thread : {true, false}) {
        CAPTURE(one_thread);
        Fixture<ExecutorHandler> f({}, one_thread ? 1 : ASIO_CONCURRENCY_HINT_DEFAULT);
        ExecutorHandler::io = &f.io;
        auto rec = std::make_shared<Record>();
        auto conn = f.client(rec);
        CHECK(ExecutorHandler::runs_on_io_context(*conn) == one_thread);
        REQUIRE(run_until(f.io, [&] { return rec->opened; }));
        // A message bigger than one read of the per-thread buffer, then a small one.
        asio::post(conn->get_executor(), [&] {
            conn->send_binary(std::string(300'000, 'x'));
            conn->send_text("which?");
        });
        REQUIRE(run_until(f.io, [&] { return rec->messages.size() == 2; }));
        const std::string expected = one_thread ? "io_context" : "strand";
        CHECK(rec->messages[0].second == expected);
        CHECK(rec->messages[1].second == expected);
        asio::post(conn->get_executor(), [&] { conn->close(1000, "done"); });
        REQUIRE(run_until(f.io, [&] { return f.server.connection_count() == 0; }));
    }
}

TEST_CASE("ClientRequest::local_address binds the client's source address",
          "[transport][loopback]") {
    struct PeerHandler : EchoHandler {
        std::shared_ptr<std::vector<std::string>> peers;
        void on_upgrade(const ws::UpgradeRequest& req, ws::UpgradeResponse&) {
            peers->push_back(req.peer.address().to_string());
        }
    };
    asio::io_context io;
    auto peers = std::make_shared<std::vector<std::string>>();
    ws::Server<PeerHandler> server(io, ws::Options{}, [peers] { return PeerHandler{{}, peers}; });
    server.listen("127.0.0.1", 0);
    const std::string url = "ws://127.0.0.1:" + std::to_string(server.local_endpoint().port());

    std::vector<std::shared_ptr<Record>> recs;
    for (const char* source : {"127.0.0.2", "127.0.0.3"}) {
        ws::ClientRequest req;
        req.local_address = asio::ip::make_address(source);
        recs.push_back(std::make_shared<Record>());
        ws::connect<ClientHandler>(io, url, ws::Options{}, ClientHandler{recs.back()},
                                   std::move(req));
    }
    REQUIRE(run_until(io, [&] { return recs[0]->opened && recs[1]->opened; }));
    std::sort(peers->begin(), peers->end());
    CHECK(*peers == std::vector<std::string>{"127.0.0.2", "127.0.0.3"});

    // No endpoint of the local address's family: a handshake error, not a hang.
    ws::ClientRequest v6;
    v6.local_address = asio::ip::make_address("::1");
    auto failed = std::make_shared<Record>();
    ws::connect<ClientHandler>(io, url, ws::Options{}, ClientHandler{failed}, std::move(v6));
    REQUIRE(run_until(io, [&] { return !failed->handshake_error.empty(); }));
    CHECK_FALSE(failed->opened);
}

TEST_CASE("permessage-deflate is negotiated and round-trips", "[transport][loopback][deflate]") {
    ws::Options opt;
    opt.deflate.enabled = true;
    Fixture f(opt);
    auto rec = std::make_shared<Record>();
    auto conn = f.client(rec, "/", opt);
    REQUIRE(run_until(f.io, [&] { return rec->opened; }));
    REQUIRE(conn->deflate_params() != nullptr);
    std::string text;
    for (int i = 0; i < 5000; ++i)
        text += "message " + std::to_string(i) + " ";
    asio::post(conn->get_executor(), [&] {
        conn->send_text(text);
        conn->send_text("short");
    });
    REQUIRE(run_until(f.io, [&] { return rec->messages.size() == 2; }));
    CHECK(rec->messages[0].second == text);
    CHECK(rec->messages[1].second == "short");
}

TEST_CASE("on_upgrade routes, refuses and picks a subprotocol", "[transport][loopback]") {
    Fixture<PickyHandler> f;
    auto refused = std::make_shared<Record>();
    f.client(refused, "/other");
    REQUIRE(run_until(f.io, [&] { return !refused->handshake_error.empty(); }));
    CHECK(refused->handshake_ec == ws::error::upgrade_refused);
    CHECK(refused->handshake_error == "the server refused the WebSocket upgrade: HTTP 403");
    CHECK_FALSE(refused->opened);

    auto ok = std::make_shared<Record>();
    ws::ClientRequest req;
    req.subprotocols = {"phoenix", "base64url.bearer.phx.dG9rZW4"};
    f.client(ok, "/chat?vsn=2.0.0", {}, req);
    REQUIRE(run_until(f.io, [&] { return ok->opened; }));
    CHECK(ok->subprotocol == "phoenix");
}

TEST_CASE("Server::stop closes open connections with 1001", "[transport][loopback]") {
    Fixture f;
    std::vector<std::shared_ptr<Record>> recs;
    for (int i = 0; i < 5; ++i) {
        recs.push_back(std::make_shared<Record>());
        f.client(recs.back());
    }
    REQUIRE(run_until(f.io, [&] {
        for (auto& r : recs)
            if (!r->opened) return false;
        return true;
    }));
    f.server.stop();
    REQUIRE(run_until(f.io, [&] {
        for (auto& r : recs)
            if (r->close_code == 0) return false;
        return f.server.connection_count() == 0;
    }));
    for (auto& r : recs) {
        CHECK(r->close_code == 1001);
        CHECK(r->close_reason == "server shutting down");
    }
}

TEST_CASE("Server::stop runs on_stopped once the listener and every connection are closed",
          "[transport][loopback]") {
    Fixture f;
    const auto listening = f.server.local_endpoint();
    std::vector<std::shared_ptr<Record>> recs;
    for (int i = 0; i < 3; ++i) {
        recs.push_back(std::make_shared<Record>());
        f.client(recs.back());
    }
    REQUIRE(run_until(f.io, [&] {
        return std::all_of(recs.begin(), recs.end(), [](auto& r) { return r->opened; });
    }));
    int calls = 0;
    std::size_t left_at_call = 99;
    f.server.stop(1012, "restart", [&] {
        ++calls;
        left_at_call = f.server.connection_count();
    });
    REQUIRE(run_until(f.io, [&] { return calls > 0; }));
    CHECK(left_at_call == 0);
    for (auto& r : recs) {
        CHECK(r->close_code == 1012);
        CHECK(r->close_reason == "restart");
    }
    asio::ip::tcp::socket probe(f.io);
    std::error_code ec;
    probe.connect(listening, ec);
    CHECK(ec == asio::error::connection_refused);  // nothing listens any more
    CHECK(plume::test::runs_out_of_work(f.io));
    CHECK(calls == 1);  // once, also when the io_context has run dry
}

TEST_CASE("Server::stop with no connection runs on_stopped once the listener is closed",
          "[transport][loopback]") {
    Fixture f;
    f.io.poll();  // the acceptor's wait is pending
    bool stopped = false;
    f.server.stop(1001, "bye", [&] { stopped = true; });
    REQUIRE(run_until(f.io, [&] { return stopped; }));
    CHECK(plume::test::runs_out_of_work(f.io));
}

TEST_CASE("a message above max_message_size closes with 1009", "[transport][loopback]") {
    ws::Options opt;
    opt.max_message_size = 1000;
    Fixture f(opt);
    auto rec = std::make_shared<Record>();
    auto conn = f.client(rec);
    REQUIRE(run_until(f.io, [&] { return rec->opened; }));
    asio::post(conn->get_executor(), [&] {
        conn->send_text(std::string(1000, 'a'));  // exactly the limit: fine
        conn->send_text(std::string(1001, 'a'));
    });
    REQUIRE(run_until(f.io, [&] { return rec->close_code != 0; }));
    CHECK(rec->messages.size() == 1);
    CHECK(rec->close_code == 1009);
}

TEST_CASE("idle connections are closed with 1001 after idle_timeout", "[transport][loopback]") {
    ws::Options opt;
    opt.idle_timeout = std::chrono::milliseconds(200);
    Fixture f(opt);
    auto rec = std::make_shared<Record>();
    f.client(rec);
    REQUIRE(run_until(f.io, [&] { return rec->close_code != 0; }));
    CHECK(rec->close_code == 1001);
    CHECK(rec->close_reason == "idle timeout");
}

TEST_CASE("a failed TCP connect reports a handshake error", "[transport][loopback]") {
    asio::io_context io;
    // Bind a port and close it again so nothing listens there.
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    auto port = a.local_endpoint().port();
    a.close();
    auto rec = std::make_shared<Record>();
    ws::connect<ClientHandler>(io, "ws://127.0.0.1:" + std::to_string(port) + "/", ws::Options{},
                               ClientHandler{rec});
    REQUIRE(run_until(io, [&] { return !rec->handshake_error.empty(); }));
    CHECK(rec->handshake_ec == asio::error::connection_refused);
    CHECK_FALSE(rec->opened);
}

TEST_CASE("closing a client whose TCP connect is pending ends the connect",
          "[transport][loopback]") {
    asio::io_context io;
    plume::test::FullListener listener(io);
    auto rec = std::make_shared<Record>();
    auto conn = ws::connect<ClientHandler>(io, listener.url(), ws::Options{}, ClientHandler{rec});
    REQUIRE(run_until(io, [&] { return listener.connects_pending() == 1; }));
    asio::post(conn->get_executor(), [&] { conn->close(); });
    REQUIRE(run_until(io, [&] { return !rec->handshake_error.empty(); }));
    CHECK(listener.connects_pending() == 0);
    CHECK_FALSE(rec->opened);
    CHECK_FALSE(conn->next_layer().is_open());
    conn.reset();
    CHECK(plume::test::runs_out_of_work(io));
}

namespace {

// A client that speaks raw bytes: handshakes by hand, then writes whatever
// frames a test builds and reads only when told to.
struct RawClient {
    asio::ip::tcp::socket sock;
    std::string received;
    bool upgraded = false;

    RawClient(asio::io_context& io, std::uint16_t port, std::string_view path = "/") : sock(io) {
        sock.connect({asio::ip::make_address("127.0.0.1"), port});
        std::string req = "GET " + std::string(path) +
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n";
        asio::write(sock, asio::buffer(req));
        sock.non_blocking(true);
    }
    // Appends what the kernel holds for us, without blocking.
    void read_now() {
        char buf[64 * 1024];
        std::error_code ec;
        while (true) {
            std::size_t n = sock.read_some(asio::buffer(buf), ec);
            if (ec) return;
            received.append(buf, n);
        }
    }
    bool handshake_done() {
        if (upgraded) return true;
        read_now();
        auto end = received.find("\r\n\r\n");
        if (end == std::string::npos) return false;
        REQUIRE(received.starts_with("HTTP/1.1 101"));
        received.erase(0, end + 4);
        return upgraded = true;
    }
    // Writes what the kernel takes now; returns how much that was.
    std::size_t write_now(std::string_view data) {
        std::size_t done = 0;
        std::error_code ec;
        while (done < data.size() && !ec)
            done += sock.write_some(asio::buffer(data.substr(done)), ec);
        return done;
    }
    static std::string frame(ws::opcode op, std::string_view payload) {
        const unsigned char mask[4] = {0x0f, 0xa5, 0x3c, 0x81};
        return ws::make_frame(op, payload, true, false, mask);
    }
};

std::string be32(std::uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
            static_cast<char>(v)};
}

std::uint32_t from_be(std::string_view s) {
    std::uint32_t v = 0;
    for (char c : s)
        v = (v << 8) | static_cast<unsigned char>(c);
    return v;
}

// Samples the connection's queued_bytes() at each message (the ping flood's markers).
struct Samples {
    std::vector<std::size_t> queued;
};
struct Probe {
    std::shared_ptr<Samples> samples;
    void on_message(auto& conn, ws::opcode, std::string_view) {
        samples->queued.push_back(conn.queued_bytes());
    }
    void on_close(auto&, std::uint16_t, std::string_view) {}
};

// Logs messages of all connections in the order handled: "/flood" is 'F',
// any other path 'O'.
struct Log {
    std::vector<std::pair<char, std::string>> messages;  // (connection, payload)
    std::function<std::size_t()> flood_available;        // the flood's server-side socket
    std::function<std::size_t()> flood_unparsed;
    bool other_open = false;
};
struct Tagged {
    std::shared_ptr<Log> log;
    char tag = '?';
    void on_upgrade(const ws::UpgradeRequest& req, ws::UpgradeResponse&) {
        tag = req.path() == "/flood" ? 'F' : 'O';
    }
    void on_open(auto& conn) {
        if (tag == 'O') {
            log->other_open = true;
            return;
        }
        auto weak = conn.weak_from_this();
        log->flood_available = [weak] {
            std::error_code ec;
            return weak.lock()->next_layer().available(ec);
        };
        log->flood_unparsed = [weak] { return weak.lock()->unparsed_bytes(); };
    }
    void on_message(auto&, ws::opcode, std::string_view data) {
        log->messages.emplace_back(tag, std::string(data));
    }
    void on_close(auto&, std::uint16_t, std::string_view) {}
};

}  // namespace

TEST_CASE("a peer that pings without reading has at most one pong waiting",
          "[transport][loopback][flood]") {
    // Issue 11: one pong was queued per ping, past max_send_queue.
    asio::io_context io;
    auto samples = std::make_shared<Samples>();
    ws::Server<Probe> server(io, ws::Options{}, [samples] { return Probe{samples}; });
    server.listen("127.0.0.1", 0);
    RawClient client(io, server.local_endpoint().port());
    REQUIRE(run_until(io, [&] { return client.handshake_done(); }));

    // 200,000 pings (2 MB, far more than the socket buffers take), and a
    // text message every 10,000 to sample the server's queue as it goes.
    constexpr std::uint32_t pings = 200'000;
    std::string flood;
    for (std::uint32_t i = 0; i < pings; ++i) {
        flood += RawClient::frame(ws::opcode::ping, be32(i));
        if ((i + 1) % 10'000 == 0) flood += RawClient::frame(ws::opcode::text, "mark");
    }
    bool written = false;
    asio::async_write(client.sock, asio::buffer(flood), [&](std::error_code ec, std::size_t) {
        REQUIRE_FALSE(ec);
        written = true;
    });
    REQUIRE(run_until(
        io, [&] { return written && samples->queued.size() == pings / 10'000; },
        std::chrono::seconds(60)));
    // All that waits is the one newest pong and what the kernel refused of
    // the write in flight (itself at most a pong or two); never one per ping.
    CHECK(*std::max_element(samples->queued.begin(), samples->queued.end()) <= 1024);

    // Now the client reads: pongs, in order, the last one for the last ping.
    struct Pongs {
        std::vector<std::uint32_t> seen;
        void on_message(ws::opcode, std::string_view) {}
        void on_ping(std::string_view) {}
        void on_pong(std::string_view p) { seen.push_back(from_be(p)); }
        void on_close(std::uint16_t, std::string_view) {}
    } pongs;
    ws::Parser parser(ws::role::client, 1 << 20);
    REQUIRE(run_until(
        io,
        [&] {
            client.read_now();
            REQUIRE_FALSE(parser.consume(client.received.data(), client.received.size(), pongs));
            client.received.clear();
            return !pongs.seen.empty() && pongs.seen.back() == pings - 1;
        },
        std::chrono::seconds(20)));
    CHECK(pongs.seen.size() < pings / 10);
    CHECK(std::is_sorted(pongs.seen.begin(), pongs.seen.end()));
    CHECK(std::adjacent_find(pongs.seen.begin(), pongs.seen.end()) == pongs.seen.end());
}

TEST_CASE("a flooding connection lets the others on its thread run between turns",
          "[transport][loopback][fairness]") {
    asio::io_context io;  // one thread: the connections take turns on it
    auto log = std::make_shared<Log>();
    ws::Options opt;
    REQUIRE(opt.max_messages_per_read_turn < 10'000);
    ws::Server<Tagged> server(io, opt, [log] { return Tagged{log}; });
    server.listen("127.0.0.1", 0);
    RawClient flooder(io, server.local_endpoint().port(), "/flood");
    RawClient other(io, server.local_endpoint().port(), "/other");
    REQUIRE(run_until(io, [&] {
        return flooder.handshake_done() && other.handshake_done() && log->other_open &&
               log->flood_available;
    }));

    // 10,000 small messages in one write (80 KB: the loopback socket takes it whole).
    constexpr std::uint32_t count = 10'000;
    std::string flood;
    for (std::uint32_t i = 0; i < count; ++i)
        flood += RawClient::frame(ws::opcode::binary, be32(i).substr(2));
    REQUIRE(flooder.write_now(flood) == flood.size());
    // Every byte is readable by the server at once, so without a budget its
    // first turn would handle all 10,000 before anything else ran.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (log->flood_available() < flood.size() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::yield();
    REQUIRE(log->flood_available() == flood.size());

    REQUIRE(run_until(io, [&] { return !log->messages.empty(); }));  // the first turn
    std::size_t first_turn = log->messages.size();
    CHECK(first_turn == opt.max_messages_per_read_turn);
    CHECK(log->flood_unparsed() > 0);  // the rest waits in the connection

    // The other connection's message, sent now, is handled long before the flood's last.
    REQUIRE(other.write_now(RawClient::frame(ws::opcode::text, "me too")) > 0);
    REQUIRE(run_until(io, [&] { return log->messages.size() == count + 1; }));
    std::vector<std::uint32_t> flood_order;
    std::size_t other_at = 0, last_flood_at = 0;
    for (std::size_t k = 0; k < log->messages.size(); ++k) {
        auto& [tag, data] = log->messages[k];
        if (tag == 'O') {
            other_at = k;
            CHECK(data == "me too");
        } else {
            flood_order.push_back(from_be(data));
            last_flood_at = k;
        }
    }
    CHECK(other_at > first_turn - 1);
    CHECK(other_at < last_flood_at);
    REQUIRE(flood_order.size() == count);
    for (std::uint32_t i = 0; i < count; ++i)
        if (flood_order[i] != i) FAIL("flood message " << i << " arrived as " << flood_order[i]);
    CHECK(log->flood_unparsed() == 0);  // done: no buffer held any more
}

namespace {

// "/fan" connections only receive broadcasts; "/other" records, at each of its
// messages, how many fan connections still hold broadcasts in their mailbox.
struct FanLog {
    std::vector<std::function<void(ws::SharedFrame)>> post;  // post_send of each fan
    std::vector<std::function<std::size_t()>> mailbox;       // mailbox_bytes of each fan
    std::function<std::size_t()> other_available;
    std::vector<std::size_t> pending_at_other;
};
struct FanHandler {
    std::shared_ptr<FanLog> log;
    bool fan = false;
    void on_upgrade(const ws::UpgradeRequest& req, ws::UpgradeResponse&) {
        fan = req.path() == "/fan";
    }
    void on_open(auto& conn) {
        auto weak = conn.weak_from_this();
        if (!fan) {
            log->other_available = [weak] {
                std::error_code ec;
                return weak.lock()->next_layer().available(ec);
            };
            return;
        }
        log->post.push_back([weak](ws::SharedFrame f) { weak.lock()->post_send(std::move(f)); });
        log->mailbox.push_back([weak] { return weak.lock()->mailbox_bytes(); });
    }
    void on_message(auto&, ws::opcode, std::string_view) {
        std::size_t pending = 0;
        for (auto& m : log->mailbox)
            pending += m() > 0;
        log->pending_at_other.push_back(pending);
    }
    void on_close(auto&, std::uint16_t, std::string_view) {}
};

// 32 connections get two 256 KiB broadcasts each (16 MiB) while another
// connection's message is already readable; returns how many of the 32 still
// held their first broadcast when that message was handled.
std::size_t fan_out_with_a_reader_waiting(const ws::Options& opt) {
    asio::io_context io;  // one thread: drains and reads take turns on it
    auto log = std::make_shared<FanLog>();
    ws::Server<FanHandler> server(io, opt, [log] { return FanHandler{log}; });
    server.listen("127.0.0.1", 0);
    constexpr std::size_t fans = 32;
    constexpr std::size_t size = 256 * 1024;
    std::vector<std::unique_ptr<RawClient>> clients;
    for (std::size_t i = 0; i < fans; ++i)
        clients.push_back(std::make_unique<RawClient>(io, server.local_endpoint().port(), "/fan"));
    RawClient other(io, server.local_endpoint().port(), "/other");
    REQUIRE(run_until(io, [&] {
        for (auto& c : clients)
            if (!c->handshake_done()) return false;
        return other.handshake_done() && log->post.size() == fans && log->other_available;
    }));

    REQUIRE(other.write_now(RawClient::frame(ws::opcode::text, "me too")) > 0);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (log->other_available() == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::yield();
    REQUIRE(log->other_available() > 0);

    auto first = ws::make_shared_frame(ws::opcode::binary, std::string(size, 'x'));
    auto second = ws::make_shared_frame(ws::opcode::binary, std::string(size, 'y'));
    for (auto& post : log->post) {
        post(first);
        post(second);
    }
    REQUIRE(run_until(io, [&] { return !log->pending_at_other.empty(); }));

    // Every fan connection gets both broadcasts, whole and in order.
    const std::size_t frame_size = first->size();
    REQUIRE(run_until(
        io,
        [&] {
            for (auto& c : clients) {
                c->read_now();
                if (c->received.size() < 2 * frame_size) return false;
            }
            return true;
        },
        std::chrono::seconds(20)));
    for (auto& c : clients) {
        REQUIRE(c->received.size() == 2 * frame_size);
        CHECK(c->received.compare(0, frame_size, *first) == 0);
        CHECK(c->received.compare(frame_size, frame_size, *second) == 0);
    }
    CHECK(ws::detail::DrainTurns::of(io.get_executor()).waiting() == 0);
    return log->pending_at_other.front();
}

}  // namespace

TEST_CASE("a big fan-out is written a budget at a time, other connections' reads in between",
          "[transport][loopback][fairness]") {
    ws::Options opt;
    CHECK(opt.max_broadcast_bytes_per_turn == std::size_t{16} << 20);  // on by default
    opt.max_broadcast_bytes_per_turn = 1 << 20;                        // 16 MiB is 16 budgets
    // The message was handled while most fan connections still waited.
    CHECK(fan_out_with_a_reader_waiting(opt) >= 16);

    // Without the budget every drain runs before the reactor is polled again.
    opt.max_broadcast_bytes_per_turn = 0;
    CHECK(fan_out_with_a_reader_waiting(opt) == 0);
}

TEST_CASE("URLs parse into host, port and target", "[transport][url]") {
    auto u = ws::parse_url("ws://example.com:4000/socket/websocket?vsn=2.0.0");
    REQUIRE(u);
    CHECK(u->host == "example.com");
    CHECK(u->port == 4000);
    CHECK(u->target == "/socket/websocket?vsn=2.0.0");
    CHECK(ws::parse_url("wss://h")->port == 443);
    CHECK(ws::parse_url("ws://h?x=1")->target == "/?x=1");
    CHECK(ws::parse_url("ws://[::1]:9/")->host == "::1");
    CHECK_FALSE(ws::parse_url("http://h/"));
    CHECK_FALSE(ws::parse_url("ws://:80/"));
    CHECK_FALSE(ws::parse_url("ws://h:0/"));
    CHECK_FALSE(ws::parse_url("ws://h:99999/"));
}

TEST_CASE("a server that never answers the upgrade: error::handshake_timeout",
          "[transport][loopback]") {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    asio::ip::tcp::socket held(io);  // accepted, never answered
    a.async_accept(held, [](std::error_code) {});
    ws::Options opt;
    opt.handshake_timeout = std::chrono::milliseconds(200);
    auto rec = std::make_shared<Record>();
    ws::connect<ClientHandler>(io, "ws://127.0.0.1:" + std::to_string(a.local_endpoint().port()),
                               opt, ClientHandler{rec});
    REQUIRE(run_until(io, [&] { return !rec->handshake_error.empty(); }));
    CHECK(rec->handshake_ec == ws::error::handshake_timeout);
    CHECK(rec->handshake_error == "WebSocket handshake timed out");
    CHECK_FALSE(rec->opened);
}
