// Server and client roles of plume's WebSocket layer talking to each other
// over real sockets on 127.0.0.1, in one io_context.
#include <catch2/catch.hpp>

#include <plume/transport.hpp>

#include <algorithm>
#include <memory>
#include <string>
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
    void on_handshake_error(auto&, std::string_view what) { rec->handshake_error = what; }
};

// Accepts only /chat, offers "phoenix" when the client asks for it.
struct PickyHandler : EchoHandler {
    void on_upgrade(const ws::UpgradeRequest& req, ws::UpgradeResponse& res) {
        if (req.path() != "/chat") return res.reject(403, "no such socket");
        for (auto& p : req.subprotocols)
            if (p == "phoenix") return res.accept("phoenix");
    }
};

template <class Handler = EchoHandler>
struct Fixture {
    asio::io_context io;
    ws::Server<Handler> server;
    std::string url;
    explicit Fixture(ws::Options opt = {}) : server(io, opt) {
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
    CHECK(refused->handshake_error == "server answered HTTP 403");
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
