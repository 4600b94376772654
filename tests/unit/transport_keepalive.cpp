// HTTP/1.1 on plume's transport before (or instead of) an upgrade: bodies,
// answers given later and from other threads, keep-alive with its request
// limit and idle timeout, pipelining, and the refusals that close — with a
// raw TCP client on 127.0.0.1.
#include <catch2/catch.hpp>

#include <plume/transport.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/run_until.hpp"

namespace ws = plume::transport;
namespace http = plume::transport::http;
using plume::test::run_until;

namespace {

// What the handler saw, and the requests it holds unanswered.
struct Seen {
    std::vector<http::Request> requests;
    std::vector<http::Responder> held;
    int cancelled = 0;
};

// Answers "<method> <path> <body>" at once, but holds /hold/... requests
// until the test answers them; echoes WebSocket messages.
struct AsyncHandler {
    std::shared_ptr<Seen> seen = std::make_shared<Seen>();
    void on_http(const http::Request& req, const asio::ip::tcp::endpoint&, http::Responder r) {
        seen->requests.push_back(req);
        if (req.path.rfind("/hold", 0) == 0) {
            r.on_cancel([s = seen] { ++s->cancelled; });
            seen->held.push_back(r);
            return;
        }
        http::Response res;
        res.body = req.method + " " + req.path + " " + req.body;
        r.send(res);
    }
    void on_message(auto& conn, ws::opcode, std::string_view data) { conn.send_text(data); }
    void on_close(auto&, std::uint16_t, std::string_view) {}
};

// The older form: a Response returned at once.
struct SyncHandler {
    http::Response on_http(const http::Request& req, const asio::ip::tcp::endpoint&) {
        http::Response res;
        res.body = "sync " + req.path;
        return res;
    }
    void on_message(auto&, ws::opcode, std::string_view) {}
    void on_close(auto&, std::uint16_t, std::string_view) {}
};

struct Answer {
    int status = 0;
    std::string head;
    std::string body;
    bool closes() const { return head.find("\r\nConnection: close\r\n") != std::string::npos; }
    bool keeps() const { return head.find("\r\nConnection: keep-alive\r\n") != std::string::npos; }
};

// A client that writes raw bytes and collects what comes back.
struct RawHttp {
    asio::ip::tcp::socket sock;
    std::string in;
    bool eof = false;
    char buf[4096];

    RawHttp(asio::io_context& io, std::uint16_t port) : sock(io) {
        sock.connect({asio::ip::make_address("127.0.0.1"), port});
        read();
    }
    void read() {
        sock.async_read_some(asio::buffer(buf), [this](std::error_code ec, std::size_t n) {
            if (ec) {
                eof = true;
                return;
            }
            in.append(buf, n);
            read();
        });
    }
    void send(const std::string& bytes) { asio::write(sock, asio::buffer(bytes)); }

    // The complete answers received so far.
    std::vector<Answer> answers() const {
        std::vector<Answer> out;
        std::size_t pos = 0;
        while (true) {
            auto end = in.find("\r\n\r\n", pos);
            if (end == std::string::npos) break;
            Answer a;
            a.head = in.substr(pos, end + 4 - pos);
            a.status = std::stoi(a.head.substr(9, 3));
            std::size_t length = 0;
            auto cl = a.head.find("Content-Length: ");
            if (cl != std::string::npos) length = std::stoul(a.head.substr(cl + 16));
            if (in.size() < end + 4 + length) break;
            a.body = in.substr(end + 4, length);
            out.push_back(std::move(a));
            pos = end + 4 + length;
        }
        return out;
    }
};

std::string get(std::string path, std::string extra = {}) {
    return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "\r\n";
}

template <class Handler = AsyncHandler>
struct Fixture {
    asio::io_context io;
    Handler handler;
    ws::Server<Handler> server;
    std::uint16_t port;
    explicit Fixture(ws::Options opt = {}) : server(io, opt, [h = handler] { return h; }) {
        server.listen("127.0.0.1", 0);
        port = server.local_endpoint().port();
    }
};

}  // namespace

TEST_CASE("several requests are answered on one kept-alive connection", "[transport][http]") {
    Fixture f;
    RawHttp c(f.io, f.port);
    c.send(get("/a"));
    REQUIRE(run_until(f.io, [&] { return c.answers().size() == 1; }));
    c.send(get("/b"));
    REQUIRE(run_until(f.io, [&] { return c.answers().size() == 2; }));
    auto a = c.answers();
    CHECK(a[0].body == "GET /a ");
    CHECK(a[1].body == "GET /b ");
    CHECK(a[0].keeps());
    CHECK(a[1].keeps());
    CHECK_FALSE(c.eof);
    CHECK(f.server.connection_count() == 1);
}

TEST_CASE("pipelined requests are answered one at a time, in order", "[transport][http]") {
    Fixture f;
    RawHttp c(f.io, f.port);
    // The first is held; the second must not be answered (nor even handled) first.
    c.send(get("/hold/1") + get("/b"));
    REQUIRE(run_until(f.io, [&] { return f.handler.seen->held.size() == 1; }));
    // Nothing else happens while the first is held.
    run_until(
        f.io, [] { return false; }, std::chrono::milliseconds(100));
    CHECK(c.answers().empty());
    CHECK(f.handler.seen->requests.size() == 1);
    // Answered from another thread, as a long-poll session would.
    std::thread([r = f.handler.seen->held[0]] {
        http::Response res;
        res.body = "late";
        r.send(res);
    }).join();
    REQUIRE(run_until(f.io, [&] { return c.answers().size() == 2; }));
    auto a = c.answers();
    CHECK(a[0].body == "late");
    CHECK(a[1].body == "GET /b ");
    // A second send() on an answered request does nothing.
    CHECK_FALSE(f.handler.seen->held[0].send(http::Response{}));
}

TEST_CASE("request bodies are read by Content-Length, also in pieces", "[transport][http]") {
    Fixture f;
    RawHttp c(f.io, f.port);
    std::string body(10'000, 'x');
    auto head = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(body.size()) +
                "\r\n\r\n";
    c.send(head + body.substr(0, 3000));
    run_until(
        f.io, [] { return false; }, std::chrono::milliseconds(50));
    CHECK(f.handler.seen->requests.empty());  // waits for the whole body
    c.send(body.substr(3000) + get("/after"));
    REQUIRE(run_until(f.io, [&] { return c.answers().size() == 2; }));
    CHECK(c.answers()[0].body == "POST /p " + body);
    CHECK(c.answers()[1].body == "GET /after ");
}

TEST_CASE("the request limit closes the connection after its last answer", "[transport][http]") {
    ws::Options opt;
    opt.max_requests_per_connection = 2;
    Fixture f(opt);
    RawHttp c(f.io, f.port);
    c.send(get("/1") + get("/2") + get("/3"));
    REQUIRE(run_until(f.io, [&] { return c.eof; }));
    auto a = c.answers();
    REQUIRE(a.size() == 2);
    CHECK(a[0].keeps());
    CHECK(a[1].closes());
    CHECK(f.handler.seen->requests.size() == 2);  // the third was never handled
}

TEST_CASE("Connection: close and HTTP/1.0 close after the answer", "[transport][http]") {
    Fixture f;
    SECTION("close") {
        RawHttp c(f.io, f.port);
        c.send(get("/x", "Connection: close\r\n"));
        REQUIRE(run_until(f.io, [&] { return c.eof; }));
        REQUIRE(c.answers().size() == 1);
        CHECK(c.answers()[0].closes());
    }
    SECTION("HTTP/1.0") {
        RawHttp c(f.io, f.port);
        c.send("GET /x HTTP/1.0\r\n\r\n");
        REQUIRE(run_until(f.io, [&] { return c.eof; }));
        REQUIRE(c.answers().size() == 1);
        CHECK(c.answers()[0].closes());
    }
    SECTION("HTTP/1.0 with keep-alive") {
        RawHttp c(f.io, f.port);
        c.send("GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        REQUIRE(run_until(f.io, [&] { return c.answers().size() == 1; }));
        CHECK(c.answers()[0].keeps());
        CHECK_FALSE(c.eof);
    }
}

TEST_CASE("an idle kept-alive connection is closed after keep_alive_timeout", "[transport][http]") {
    ws::Options opt;
    opt.keep_alive_timeout = std::chrono::milliseconds(200);
    Fixture f(opt);
    RawHttp c(f.io, f.port);
    c.send(get("/a"));
    REQUIRE(run_until(f.io, [&] { return c.answers().size() == 1; }));
    auto answered = std::chrono::steady_clock::now();
    REQUIRE(run_until(
        f.io, [&] { return c.eof; }, std::chrono::seconds(5)));
    CHECK(std::chrono::steady_clock::now() - answered >= std::chrono::milliseconds(150));
    REQUIRE(run_until(f.io, [&] { return f.server.connection_count() == 0; }));
}

TEST_CASE("bodies that are too large or chunked are refused and the connection closes",
          "[transport][http]") {
    ws::Options opt;
    opt.max_request_body = 1000;
    Fixture f(opt);
    SECTION("too large") {
        RawHttp c(f.io, f.port);
        c.send("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n");
        REQUIRE(run_until(f.io, [&] { return c.eof; }));
        REQUIRE(c.answers().size() == 1);
        CHECK(c.answers()[0].status == 413);
    }
    SECTION("chunked") {
        RawHttp c(f.io, f.port);
        c.send("POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
        REQUIRE(run_until(f.io, [&] { return c.eof; }));
        REQUIRE(c.answers().size() == 1);
        CHECK(c.answers()[0].status == 501);
    }
    SECTION("malformed length") {
        RawHttp c(f.io, f.port);
        c.send("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 12a\r\n\r\n");
        REQUIRE(run_until(f.io, [&] { return c.eof; }));
        REQUIRE(c.answers().size() == 1);
        CHECK(c.answers()[0].status == 400);
    }
    CHECK(f.handler.seen->requests.empty());
}

TEST_CASE("a held request is cancelled when the client goes away", "[transport][http]") {
    Fixture f;
    {
        RawHttp c(f.io, f.port);
        c.send(get("/hold/1"));
        REQUIRE(run_until(f.io, [&] { return f.handler.seen->held.size() == 1; }));
        c.sock.close();
        // The read ends (operation_aborted) before `c` goes.
        REQUIRE(run_until(f.io, [&] { return c.eof; }));
    }
    REQUIRE(run_until(f.io, [&] { return f.handler.seen->cancelled == 1; }));
    CHECK(f.handler.seen->held[0].cancelled());
    CHECK_FALSE(f.handler.seen->held[0].send(http::Response{}));
    REQUIRE(run_until(f.io, [&] { return f.server.connection_count() == 0; }));
}

TEST_CASE("a kept-alive connection can still be upgraded", "[transport][http]") {
    Fixture f;
    RawHttp c(f.io, f.port);
    c.send(get("/page"));
    REQUIRE(run_until(f.io, [&] { return c.answers().size() == 1; }));
    c.send(get("/socket",
               "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
    REQUIRE(run_until(f.io, [&] { return c.answers().size() == 2; }));
    CHECK(c.answers()[1].status == 101);
    // A masked text frame "hi" comes back unmasked.
    c.send(std::string("\x81\x82\x01\x02\x03\x04", 6) + std::string{'h' ^ 1, 'i' ^ 2});
    REQUIRE(run_until(f.io, [&] { return c.in.ends_with(std::string("\x81\x02hi", 4)); }));
}

TEST_CASE("a handler that answers at once keeps the connection alive too", "[transport][http]") {
    Fixture<SyncHandler> f;
    RawHttp c(f.io, f.port);
    c.send(get("/one") + get("/two"));
    REQUIRE(run_until(f.io, [&] { return c.answers().size() == 2; }));
    CHECK(c.answers()[0].body == "sync /one");
    CHECK(c.answers()[1].body == "sync /two");
    CHECK(c.answers()[1].keeps());
}

TEST_CASE("body_length and keeps_alive read the request head", "[transport][http]") {
    http::Request r;
    CHECK(http::body_length(r, 10).length == 0);
    r.headers = {{"Content-Length", "10"}};
    CHECK(http::body_length(r, 10).length == 10);
    CHECK(http::body_length(r, 9).status == 413);
    r.headers = {{"Content-Length", "99999999999999999999999999"}};
    CHECK(http::body_length(r, 10).status == 413);
    r.headers = {{"Content-Length", "1"}, {"Content-Length", "1"}};
    CHECK(http::body_length(r, 10).status == 400);
    r.headers = {{"Content-Length", ""}};
    CHECK(http::body_length(r, 10).status == 400);
    r.headers = {{"Transfer-Encoding", "chunked"}};
    CHECK(http::body_length(r, 10).status == 501);

    http::Request k;
    CHECK(http::keeps_alive(k));
    k.headers = {{"Connection", "keep-alive, Close"}};
    CHECK_FALSE(http::keeps_alive(k));
    k.version_minor = 0;
    k.headers = {};
    CHECK_FALSE(http::keeps_alive(k));
    k.headers = {{"Connection", "Keep-Alive"}};
    CHECK(http::keeps_alive(k));
}
