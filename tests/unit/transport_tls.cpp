// wss:// end to end over real sockets on 127.0.0.1: plume's TLS server
// (Server<Handler, TlsSocket>) and client (connect<Handler, TlsSocket>), with
// certificate checks, a handshake that never comes, and the closing handshake.
#include <catch2/catch.hpp>

#include <plume/client.hpp>
#include <plume/server.hpp>
#include <plume/transport.hpp>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "support/localhost_cert.hpp"
#include "support/run_until.hpp"

namespace ws = plume::transport;
namespace ps = plume::server;
namespace pc = plume::client;
using plume::test::run_until;

namespace {

const std::string& cert_pem = plume::test::localhost_cert_pem;
const std::string& key_pem = plume::test::localhost_key_pem;

// An unrelated self-signed certificate (CN "other"): a CA that signed nothing here.
const std::string other_pem = R"(-----BEGIN CERTIFICATE-----
MIIBijCCAS+gAwIBAgIUccSS7mzM63/EVzPIZa+rGflK8ZowCgYIKoZIzj0EAwIw
EDEOMAwGA1UEAwwFb3RoZXIwIBcNMjYxMjA1MTMwOTMyWhgPMjEyNjExMTExMzA5
MzJaMBAxDjAMBgNVBAMMBW90aGVyMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
1HaAQ3MRwOtC4tRTMNGojvwTkSDAgAr01k7ZHgQguSm/wCEWVBoRF0SEMAREr7IW
dXcF4Va6cdwDsemMlLiCAKNlMGMwHQYDVR0OBBYEFOxZm1IJESDf5+YZ0aczfLd4
xUSaMB8GA1UdIwQYMBaAFOxZm1IJESDf5+YZ0aczfLd4xUSaMA8GA1UdEwEB/wQF
MAMBAf8wEAYDVR0RBAkwB4IFb3RoZXIwCgYIKoZIzj0EAwIDSQAwRgIhANSOmEYg
VuZzi+RszMikmnGGzEs7a3JEYpR+NqpTTiGgAiEAk18bSMO6eEMUYs0L+9OFk8Fr
0WcEo1sSJ51/o17mxfQ=
-----END CERTIFICATE-----
)";

std::shared_ptr<asio::ssl::context> server_context() {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->use_certificate_chain(asio::buffer(cert_pem));
    ctx->use_private_key(asio::buffer(key_pem), asio::ssl::context::pem);
    return ctx;
}

struct Echo {
    void on_message(auto& conn, ws::opcode op, std::string_view data) {
        op == ws::opcode::text ? conn.send_text(data) : conn.send_binary(data);
    }
    void on_close(auto&, std::uint16_t, std::string_view) {}
};

struct Record {
    bool opened = false;
    std::string handshake_error;
    std::vector<std::string> messages;
    int close_code = 0;
};

struct Client {
    std::shared_ptr<Record> rec;
    void on_open(auto&) { rec->opened = true; }
    void on_message(auto&, ws::opcode, std::string_view data) { rec->messages.emplace_back(data); }
    void on_close(auto&, std::uint16_t code, std::string_view) { rec->close_code = code; }
    void on_handshake_error(auto&, std::string_view what) { rec->handshake_error = what; }
};

struct TlsServer {
    asio::io_context& io;
    ws::Server<Echo, ws::TlsSocket> server;
    explicit TlsServer(asio::io_context& io, ws::Options o = {})
        : io(io), server(io, o, [] { return Echo{}; }, {server_context()}) {
        server.listen("127.0.0.1", 0);
    }
    std::string url(std::string_view host) const {
        return "wss://" + std::string(host) + ":" + std::to_string(server.local_endpoint().port()) +
               "/";
    }
};

ws::ClientTlsOptions trusting(const std::string& pem) {
    ws::ClientTlsOptions o;
    o.ca_pem = pem;
    return o;
}
ws::ClientTlsOptions unverified() {
    ws::ClientTlsOptions o;
    o.verify = false;
    return o;
}

auto connect(asio::io_context& io, const std::string& url, std::shared_ptr<Record> rec,
             ws::ClientTlsOptions tls, ws::Options o = {}) {
    return ws::connect<Client, ws::TlsSocket>(io, url, o, Client{std::move(rec)}, {},
                                              {ws::client_tls_context(tls)});
}

}  // namespace

TEST_CASE("wss: echo of small and large messages, then a clean close", "[transport][tls]") {
    asio::io_context io;
    // Close timers far beyond run_until's limit: only a closing handshake and
    // TLS shutdown that work end the connection in time.
    ws::Options slow_close;
    slow_close.close_timeout = std::chrono::minutes(1);
    TlsServer s(io, slow_close);
    auto rec = std::make_shared<Record>();
    auto conn = connect(io, s.url("localhost"), rec, trusting(cert_pem), slow_close);
    REQUIRE(run_until(io, [&] { return rec->opened || !rec->handshake_error.empty(); }));
    REQUIRE(rec->handshake_error.empty());
    const std::string big(1 << 20, 'b');  // many TLS records each way
    conn->send_text("hello");
    conn->send_binary(big);
    REQUIRE(run_until(io, [&] { return rec->messages.size() == 2; }));
    CHECK(rec->messages[0] == "hello");
    CHECK(rec->messages[1] == big);
    conn->close(1000, "bye");
    // The server answers, sends close_notify and closes: the client sees the
    // connection end and the server forgets it.
    REQUIRE(run_until(io, [&] { return conn->finished() && s.server.connection_count() == 0; }));
    CHECK(rec->close_code == 1000);
    s.server.stop();
    CHECK(plume::test::runs_out_of_work(io));
}

TEST_CASE("wss: the client checks the certificate: wrong CA, wrong name, or no check",
          "[transport][tls]") {
    asio::io_context io;
    TlsServer s(io);
    SECTION("signed by a CA the client does not trust") {
        auto rec = std::make_shared<Record>();
        auto conn = connect(io, s.url("localhost"), rec, trusting(other_pem));
        REQUIRE(run_until(io, [&] { return !rec->handshake_error.empty(); }));
        CHECK(!rec->opened);
        CHECK(rec->handshake_error.find("TLS handshake failed") != std::string::npos);
        CHECK(rec->handshake_error.find("certificate verify failed") != std::string::npos);
    }
    SECTION("a certificate for localhost, reached as 127.0.0.1") {
        auto rec = std::make_shared<Record>();
        auto conn = connect(io, s.url("127.0.0.1"), rec, trusting(cert_pem));
        REQUIRE(run_until(io, [&] { return !rec->handshake_error.empty(); }));
        CHECK(!rec->opened);
        CHECK(rec->handshake_error.find("certificate verify failed") != std::string::npos);
    }
    SECTION("verification off: it opens whatever the certificate") {
        auto rec = std::make_shared<Record>();
        auto conn = connect(io, s.url("127.0.0.1"), rec, unverified());
        REQUIRE(run_until(io, [&] { return rec->opened || !rec->handshake_error.empty(); }));
        CHECK(rec->opened);
        conn->close(1000);
        REQUIRE(run_until(io, [&] { return conn->finished(); }));
    }
    // The server shrugs failed handshakes off and serves the next client.
    REQUIRE(run_until(io, [&] { return s.server.connection_count() == 0; }));
    auto rec = std::make_shared<Record>();
    auto conn = connect(io, s.url("localhost"), rec, trusting(cert_pem));
    REQUIRE(run_until(io, [&] { return rec->opened; }));
    conn->close(1000);
    REQUIRE(run_until(io, [&] { return conn->finished(); }));
    s.server.stop();
    CHECK(plume::test::runs_out_of_work(io));
}

TEST_CASE("wss: a TCP connection that never starts TLS, or sends garbage, is closed",
          "[transport][tls]") {
    asio::io_context io;
    ws::Options o;
    o.handshake_timeout = std::chrono::milliseconds(200);
    TlsServer s(io, o);
    const auto port = s.server.local_endpoint().port();
    for (const std::string& hello : {std::string(), std::string("GET / HTTP/1.1\r\n\r\n")}) {
        asio::ip::tcp::socket raw(io);
        raw.connect({asio::ip::make_address("127.0.0.1"), port});
        if (!hello.empty()) asio::write(raw, asio::buffer(hello));
        bool ended = false;
        char byte;
        // The server's answer: EOF (silence), or a TLS alert (garbage).
        raw.async_read_some(asio::buffer(&byte, 1),
                            [&](std::error_code, std::size_t) { ended = true; });
        REQUIRE(run_until(io, [&] { return ended && s.server.connection_count() == 0; }));
    }
    s.server.stop();
    CHECK(plume::test::runs_out_of_work(io));
}

TEST_CASE("TlsStream: one read takes every record already received, then the peer's close_notify",
          "[transport][tls]") {
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    asio::ip::tcp::socket accepted(io), connected(io);
    connected.connect(acceptor.local_endpoint());
    connected.set_option(asio::ip::tcp::no_delay(true));  // each record leaves at once
    acceptor.accept(accepted);
    auto server_ctx = server_context();
    auto client_ctx = ws::client_tls_context(unverified());
    ws::TlsStream server(std::move(accepted), *server_ctx);
    ws::TlsStream client(std::move(connected), *client_ctx);
    int handshakes = 0;
    std::error_code server_ec, client_ec;
    server.async_handshake(asio::ssl::stream_base::server, [&](std::error_code ec) {
        server_ec = ec;
        ++handshakes;
    });
    client.async_handshake(asio::ssl::stream_base::client, [&](std::error_code ec) {
        client_ec = ec;
        ++handshakes;
    });
    REQUIRE(run_until(io, [&] { return handshakes == 2; }));
    REQUIRE(!server_ec);
    REQUIRE(!client_ec);

    // Three records (one per write), then close_notify: all on the server's
    // socket before it reads.
    for (std::string_view part : {"one", "two", "three"}) {
        std::error_code ec;
        REQUIRE(client.write_some(asio::buffer(part), ec) == part.size());
        REQUIRE(!ec);
    }
    client.async_shutdown([](std::error_code) {});
    // TLS 1.3 with an AEAD of 16-byte tags: a record is its data + 22 bytes
    // (header, content type, tag); close_notify is 2 + 22.
    REQUIRE(SSL_version(client.native_handle()) == TLS1_3_VERSION);
    const std::size_t sent = (3 + 22) + (3 + 22) + (5 + 22) + (2 + 22);
    REQUIRE(run_until(io, [&] { return server.next_layer().available() >= sent; }));

    std::array<char, 256> buf{};
    std::size_t got = 0;
    std::error_code ec;
    bool read = false;
    server.async_read_some(asio::buffer(buf), [&](std::error_code e, std::size_t n) {
        ec = e;
        got = n;
        read = true;
    });
    REQUIRE(run_until(io, [&] { return read; }));
    CHECK(!ec);
    CHECK(std::string_view(buf.data(), got) == "onetwothree");
    // The close_notify behind the data is the next read's answer.
    read = false;
    server.async_read_some(asio::buffer(buf), [&](std::error_code e, std::size_t n) {
        ec = e;
        got = n;
        read = true;
    });
    REQUIRE(run_until(io, [&] { return read; }));
    CHECK(ec == asio::error::eof);
    CHECK(got == 0);
}

TEST_CASE("wss:// needs a TLS connection, ws:// a plain one", "[transport][tls]") {
    asio::io_context io;
    auto rec = std::make_shared<Record>();
    auto plain = ws::connect<Client>(io, "wss://localhost:1/", ws::Options{}, Client{rec});
    REQUIRE(run_until(io, [&] { return !rec->handshake_error.empty(); }));
    CHECK(rec->handshake_error.find("needs a TLS connection") != std::string::npos);
    auto rec2 = std::make_shared<Record>();
    auto tls = connect(io, "ws://localhost:1/", rec2, unverified());
    REQUIRE(run_until(io, [&] { return !rec2->handshake_error.empty(); }));
    CHECK(rec2->handshake_error.find("does not match the stream") != std::string::npos);
}

namespace {

class EchoChannel;
struct EchoSocket {
    ps::ConnectResult connect(const ps::Params&, const ps::ConnectInfo&) {
        return ps::ConnectResult::accept();
    }
    static void channels(ps::Router<EchoSocket>& r) { r.channel<EchoChannel>("room:*"); }
};
class EchoChannel : public ps::Channel<EchoSocket> {
  public:
    JoinResult join(std::string_view, const Payload&) override { return ok(); }
    InResult handle_in(std::string_view, const Payload& p) override { return reply_ok(p); }
};

}  // namespace

TEST_CASE("plume's Phoenix client over wss:// to a TLS Endpoint; bad certificates are errors",
          "[transport][tls][client]") {
    asio::io_context io;
    ps::EndpointConfig config;
    config.port = 0;
    config.log.sink = [](const ps::LogRecord&) {};
    config.tls.context = server_context();
    ps::Endpoint<EchoSocket, plume::pubsub::Local, ws::TlsSocket> endpoint(io, config);
    endpoint.start();
    const auto url =
        "wss://localhost:" + std::to_string(endpoint.local_endpoint().port()) + "/socket";

    pc::SocketOptions o;
    o.url = url;
    o.tls.ca_pem = cert_pem;
    o.reconnect_after = [](unsigned) { return std::chrono::milliseconds(50); };
    pc::Socket socket(io, o);
    auto room = socket.channel("room:tls");
    bool joined = false;
    nlohmann::json echoed;
    room.join().receive("ok", [&] { joined = true; });
    socket.connect();
    REQUIRE(run_until(io, [&] { return joined; }));
    room.push("echo", {{"over", "tls"}}).receive("ok", [&](const nlohmann::json& r) {
        echoed = r;
    });
    REQUIRE(run_until(io, [&] { return !echoed.is_null(); }));
    CHECK(echoed == nlohmann::json{{"over", "tls"}});
    socket.disconnect();

    // A client that trusts another CA: each attempt fails with a transport
    // error naming the certificate; nothing opens.
    pc::SocketOptions wrong = o;
    wrong.tls.ca_pem = other_pem;
    pc::Socket stranger(io, wrong);
    std::vector<std::string> errors;
    int opens = 0;
    stranger.on_open([&] { ++opens; });
    stranger.on_error([&](std::error_code, const std::string& what) { errors.push_back(what); });
    stranger.connect();
    REQUIRE(run_until(io, [&] { return errors.size() >= 2; }));  // and it keeps retrying
    CHECK(opens == 0);
    CHECK(errors[0].find("certificate verify failed") != std::string::npos);
    stranger.disconnect();

    // An unreadable CA file is an error of its own, not a crash.
    pc::SocketOptions missing = o;
    missing.tls.ca_pem.clear();
    missing.tls.ca_file = "/nonexistent/ca.pem";
    pc::Socket lost(io, missing);
    std::string error;
    lost.on_error([&](std::error_code, const std::string& what) { error = what; });
    lost.connect();
    REQUIRE(run_until(io, [&] { return !error.empty(); }));
    CHECK(error.find("/nonexistent/ca.pem") != std::string::npos);
    lost.disconnect();
    endpoint.stop();
}
