// TlsStream running the TLS 1.3 record layer itself (a server stream on a
// context of use_own_record_layer(), after its handshake), against raw
// OpenSSL as the client over real sockets on 127.0.0.1: the three AEAD
// suites, the fallbacks to OpenSSL's records (TLS 1.2, a host's keylog
// callback, the client role), KeyUpdate, tampered and malformed records,
// close_notify and truncation, and writes against a full socket.
#include <catch2/catch.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <plume/transport.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "support/localhost_cert.hpp"
#include "support/run_until.hpp"

namespace ws = plume::transport;
using namespace std::chrono_literals;

namespace {

const std::string& cert_pem = plume::test::localhost_cert_pem;
const std::string& key_pem = plume::test::localhost_key_pem;

/// A server context; with `own`, prepared for plume's record layer.
std::shared_ptr<asio::ssl::context> server_context(bool own = true) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->use_certificate_chain(asio::buffer(cert_pem));
    ctx->use_private_key(asio::buffer(key_pem), asio::ssl::context::pem);
    if (own && !ws::use_own_record_layer(*ctx)) throw std::logic_error("use_own_record_layer");
    return ctx;
}

/// `size` bytes of a pattern that differs from message to message.
std::string pattern(std::size_t size, std::size_t seed) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
        s[i] = static_cast<char>((i * 7 + seed * 13) % 251);
    return s;
}

/// A failure of the client's thread (Catch2's assertions stay on the main
/// thread): the message and the thread's OpenSSL errors.
[[noreturn]] void fail(const std::string& what) {
    std::string text = what;
    while (unsigned long e = ERR_get_error()) {
        std::array<char, 256> buf{};
        ERR_error_string_n(e, buf.data(), buf.size());
        text += std::string(" [") + buf.data() + "]";
    }
    throw std::runtime_error(text);
}

constexpr auto rethrow = [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
};

/// Handshake messages the client received after its handshake.
struct Seen {
    int key_updates = 0;
    int last_request_update = -1;  // of the last KeyUpdate: 0 not requested, 1 requested
    int tickets = 0;
};

void on_message(int write_p, int, int type, const void* buf, std::size_t len, SSL*, void* arg) {
    auto* p = static_cast<const unsigned char*>(buf);
    auto* seen = static_cast<Seen*>(arg);
    if (write_p || type != SSL3_RT_HANDSHAKE || len < 4) return;
    if (p[0] == SSL3_MT_NEWSESSION_TICKET) ++seen->tickets;
    if (p[0] == SSL3_MT_KEY_UPDATE && len >= 5) {
        ++seen->key_updates;
        seen->last_request_update = p[4];
    }
}

/// The client's end: raw OpenSSL on a blocking socket (10 s timeouts), used
/// only by the client's thread.
struct Client {
    SSL* ssl;
    int fd;
    Seen& seen;
    std::atomic<bool>& go;  // set when the client may go on (the full-socket test)

    void write(std::string_view data) {
        for (std::size_t off = 0, n = 0; off < data.size(); off += n)
            if (SSL_write_ex(ssl, data.data() + off, data.size() - off, &n) != 1)
                fail("SSL_write: SSL_get_error " + std::to_string(SSL_get_error(ssl, 0)));
    }
    std::string read(std::size_t size) {
        std::string s(size, '\0');
        for (std::size_t got = 0, n = 0; got < size; got += n)
            if (SSL_read_ex(ssl, s.data() + got, size - got, &n) != 1)
                fail("SSL_read: " + std::to_string(got) + " of " + std::to_string(size) +
                     " bytes, SSL_get_error " + std::to_string(SSL_get_error(ssl, 0)));
        return s;
    }
    void echo(const std::string& m, const std::string& what) {
        write(m);
        if (read(m.size()) != m) fail(what + ": the echo differs");
    }
    void send_raw(std::string_view bytes) {
        for (std::size_t off = 0; off < bytes.size();) {
            ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return;  // the server may have given up already
            off += static_cast<std::size_t>(n);
        }
    }
    /// A read that must not return data: -1 for the server's close_notify
    /// (SSL_ERROR_ZERO_RETURN), else OpenSSL's reason (an alert's is 1000 +
    /// its number), 0 for none (the socket's timeout).
    int read_end() {
        char byte;
        std::size_t n;
        ERR_clear_error();
        const int r = SSL_read_ex(ssl, &byte, 1, &n);
        if (r == 1) fail("SSL_read: data where the end was due");
        const int reason =
            SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN ? -1 : ERR_GET_REASON(ERR_peek_error());
        ERR_clear_error();
        return reason;
    }
    /// close_notify both ways: the client's, then the server's answer.
    void close() {
        if (SSL_shutdown(ssl) < 0) fail("SSL_shutdown");
        if (int r = read_end(); r != -1) fail("no close_notify: " + std::to_string(r));
    }
};

struct ClientOptions {
    const char* suites = nullptr;  // TLS 1.3 suites offered (OpenSSL's default)
    int max_version = TLS1_3_VERSION;
    int buffers = 0;  // SO_RCVBUF of the client, SO_SNDBUF of the server (0: the defaults)
};

/// A TCP connection on 127.0.0.1: the server's end a TlsStream driven here
/// by `io`, the client's end raw OpenSSL in a thread of its own.
class Link {
  public:
    asio::io_context io;
    std::optional<ws::TlsStream> server;
    std::atomic<bool> go{false};
    Seen seen;                 // the client's, read after finish()
    std::string client_error;  // the client's failure, read after finish()

    explicit Link(asio::ssl::context& ctx, ClientOptions o = {}) {
        asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
        asio::ip::tcp::socket client(io, asio::ip::tcp::v4()), accepted(io);
        client.set_option(asio::ip::tcp::no_delay(true));
        if (o.buffers) client.set_option(asio::socket_base::receive_buffer_size(o.buffers));
        client.connect(acceptor.local_endpoint());
        acceptor.accept(accepted);
        accepted.set_option(asio::ip::tcp::no_delay(true));
        if (o.buffers) accepted.set_option(asio::socket_base::send_buffer_size(o.buffers));
        server.emplace(std::move(accepted), ctx);
        fd_ = client.release();  // blocking, with timeouts that bound every client call
        const timeval limit{10, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);

        cctx_ = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(cctx_, SSL_VERIFY_NONE, nullptr);
        SSL_CTX_set_max_proto_version(cctx_, o.max_version);
        if (o.suites) SSL_CTX_set_ciphersuites(cctx_, o.suites);
        ssl_ = SSL_new(cctx_);
        SSL_set_fd(ssl_, fd_);
        SSL_set_msg_callback(ssl_, on_message);
        SSL_set_msg_callback_arg(ssl_, &seen);
    }
    Link(const Link&) = delete;
    Link& operator=(const Link&) = delete;
    ~Link() {
        stop_client();
        SSL_free(ssl_);
        SSL_CTX_free(cctx_);
        ::close(fd_);
    }

    /// Starts the client's thread: its handshake, then `script`.
    void start(std::function<void(Client&)> script) {
        thread_ = std::thread([this, script = std::move(script)] {
            Client c{ssl_, fd_, seen, go};
            try {
                if (SSL_connect(ssl_) != 1) fail("SSL_connect");
                script(c);
            } catch (const std::exception& e) {
                client_error = e.what();
                client_failed_ = true;
            }
            ERR_clear_error();
            client_done_ = true;
        });
    }
    bool client_done() const { return client_done_; }
    SSL* client_ssl() const { return ssl_; }

    /// Runs the server's side until pred() (true), a failure of the client's,
    /// or 20 s. Nothing more runs after a false.
    template <class Pred>
    bool run(Pred pred) {
        if (given_up_) return false;
        plume::test::run_until(
            io, [&] { return pred() || client_failed_; }, 20s);
        if (pred()) return true;
        if (client_failed_) UNSCOPED_INFO("the client: " << client_error);
        given_up_ = true;
        return false;
    }
    /// Runs one operation of the server's stream to its end (bounded).
    template <class Start>
    std::pair<std::error_code, std::size_t> await(Start start) {
        auto r = std::make_shared<std::optional<std::pair<std::error_code, std::size_t>>>();
        if (given_up_) return {asio::error::timed_out, 0};
        start([r](std::error_code ec, std::size_t n = 0) { r->emplace(ec, n); });
        if (!run([&] { return r->has_value(); })) return {asio::error::timed_out, 0};
        return **r;
    }
    std::error_code handshake() {
        return await([&](auto h) { server->async_handshake(asio::ssl::stream_base::server, h); })
            .first;
    }
    std::error_code shutdown() {
        return await([&](auto h) { server->async_shutdown(h); }).first;
    }
    /// Reads until a read fails: that failure and the bytes before it.
    std::pair<std::error_code, std::string> read_until_error() {
        std::string got;
        for (int i = 0; i < 10000; ++i) {
            auto [ec, n] = await([&](auto h) { server->async_read_some(asio::buffer(rbuf_), h); });
            got.append(rbuf_.data(), n);
            if (ec) return {ec, got};
        }
        return {asio::error::fault, got};
    }
    /// Runs the server's side until the client's thread is done (bounded), and joins it.
    bool finish() {
        bool done = run([&] { return client_done(); });
        stop_client();
        return done;
    }

  private:
    void stop_client() {
        if (!thread_.joinable()) return;
        if (!client_done_) ::shutdown(fd_, SHUT_RDWR);  // ends its blocking calls
        go = true;
        go.notify_all();
        thread_.join();
    }

    asio::executor_work_guard<asio::io_context::executor_type> work_{io.get_executor()};
    std::array<char, 65536> rbuf_{};
    int fd_ = -1;
    SSL_CTX* cctx_ = nullptr;
    SSL* ssl_ = nullptr;
    std::thread thread_;
    std::atomic<bool> client_done_{false}, client_failed_{false};
    bool given_up_ = false;
};

/// What the server's echo saw.
struct Echo {
    std::string received;
    std::error_code read_error, write_error;
    int empty_reads = 0, bad_writes = 0;  // no bytes and no error; none or over a record
    bool done = false;
};

/// Writes back what it reads, in ≤ 16 KiB writes, until a read fails.
asio::awaitable<void> echo(ws::TlsStream& s, std::shared_ptr<Echo> e) {
    std::vector<char> buf(20000);  // a 16 KiB record and more
    while (e->empty_reads < 1000) {
        std::error_code ec;
        std::size_t n = co_await s.async_read_some(asio::buffer(buf),
                                                   asio::redirect_error(asio::use_awaitable, ec));
        e->received.append(buf.data(), n);
        if (ec) {
            e->read_error = ec;
            break;
        }
        if (n == 0) ++e->empty_reads;
        for (std::size_t off = 0; off < n;) {
            std::size_t w =
                co_await s.async_write_some(asio::buffer(buf.data() + off, n - off),
                                            asio::redirect_error(asio::use_awaitable, ec));
            e->bad_writes += w == 0 || w > ws::TlsStream::max_record;
            if (ec || w == 0) {
                e->write_error = ec;
                e->done = true;
                co_return;
            }
            off += w;
        }
    }
    e->done = true;
}

/// The client runs `script` and closes (close_notify both ways); the server
/// echoes meanwhile and closes after it. What the server read.
std::string run_echo(Link& link, bool own, std::function<void(Client&)> script) {
    link.start([script](Client& c) {
        script(c);
        c.close();
    });
    CHECK(!link.server->own_record_layer());
    REQUIRE(link.handshake() == std::error_code());
    CHECK(link.server->own_record_layer() == own);
    // An empty write sends nothing and completes at once.
    auto [ec, n] =
        link.await([&](auto h) { link.server->async_write_some(asio::const_buffer(), h); });
    CHECK(!ec);
    CHECK(n == 0);
    auto e = std::make_shared<Echo>();
    asio::co_spawn(link.io, echo(*link.server, e), rethrow);
    REQUIRE(link.run([&] { return e->done; }));
    CHECK(e->read_error == asio::error::eof);
    CHECK(e->write_error == std::error_code());
    CHECK(e->empty_reads == 0);
    CHECK(e->bad_writes == 0);
    CHECK(link.shutdown() == std::error_code());
    REQUIRE(link.finish());
    CHECK(link.client_error == "");
    return e->received;
}

}  // namespace

TEST_CASE("TLS 1.3 own record layer: echo in every AEAD suite, of every size, 2,000 records",
          "[transport][tls][tls13]") {
    const std::string suite = GENERATE(as<std::string>{}, "TLS_AES_128_GCM_SHA256",
                                       "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256");
    INFO(suite);
    auto ctx = server_context();
    ClientOptions o;
    o.suites = suite.c_str();
    std::string sent, negotiated;  // the client's (before the link: its thread ends first)
    Link link(*ctx, o);
    const std::string received = run_echo(link, true, [&](Client& c) {
        negotiated = SSL_CIPHER_get_name(SSL_get_current_cipher(c.ssl));
        for (std::size_t size : {0, 1, 100, 16384, 16385, 70000}) {
            sent += pattern(size, size);
            c.echo(pattern(size, size), std::to_string(size) + " bytes");
        }
        // 1,000 messages in a row (a record each), then 1,000 one at a time.
        std::string burst;
        for (std::size_t i = 0; i < 1000; ++i) {
            burst += pattern(10, i);
            c.write(pattern(10, i));
        }
        if (c.read(burst.size()) != burst) fail("the burst's echo differs");
        sent += burst;
        for (std::size_t i = 0; i < 1000; ++i) {
            sent += pattern(10, i + 1000);
            c.echo(pattern(10, i + 1000), "message " + std::to_string(i));
        }
    });
    CHECK(negotiated == suite);
    CHECK(received.size() == sent.size());
    CHECK(received == sent);
    CHECK(link.seen.tickets == 0);  // none while plume runs the records
}

TEST_CASE(
    "TLS 1.3 own record layer: OpenSSL keeps the records for TLS 1.2, a host's keylog "
    "callback, and the client role",
    "[transport][tls][tls13]") {
    auto script = [](Client& c) {
        for (std::size_t size : {1, 16385, 70000})
            c.echo(pattern(size, size), std::to_string(size) + " bytes");
    };
    SECTION("a TLS 1.2 client") {
        auto ctx = server_context();
        ClientOptions o;
        o.max_version = TLS1_2_VERSION;
        Link link(*ctx, o);
        CHECK(run_echo(link, false, script).size() == 1 + 16385 + 70000);
        CHECK(SSL_version(link.client_ssl()) == TLS1_2_VERSION);
    }
    SECTION("a context whose keylog callback is the host's") {
        static std::atomic<int> lines{0};
        auto host = [](const SSL*, const char*) { ++lines; };
        auto ctx = server_context(false);
        SSL_CTX_set_keylog_callback(ctx->native_handle(), host);
        CHECK(!ws::use_own_record_layer(*ctx));
        CHECK(SSL_CTX_get_keylog_callback(ctx->native_handle()) == +host);
        Link link(*ctx);
        CHECK(run_echo(link, false, script).size() == 1 + 16385 + 70000);
        CHECK(lines > 0);  // the host's callback saw the handshake
    }
    SECTION("a TlsStream in the client role, even on a context of use_own_record_layer()") {
        asio::io_context io;
        asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
        asio::ip::tcp::socket accepted(io), connected(io);
        connected.connect(acceptor.local_endpoint());
        acceptor.accept(accepted);
        auto ctx = server_context();
        ws::ClientTlsOptions unverified;
        unverified.verify = false;
        auto client_ctx = ws::client_tls_context(unverified);
        CHECK(ws::use_own_record_layer(*client_ctx));
        ws::TlsStream server(std::move(accepted), *ctx), client(std::move(connected), *client_ctx);
        int handshakes = 0;
        auto count = [&](std::error_code ec) { handshakes += ec ? 100 : 1; };
        server.async_handshake(asio::ssl::stream_base::server, count);
        client.async_handshake(asio::ssl::stream_base::client, count);
        REQUIRE(plume::test::run_until(io, [&] { return handshakes >= 2; }));
        REQUIRE(handshakes == 2);
        CHECK(server.own_record_layer());
        CHECK(!client.own_record_layer());
    }
}

TEST_CASE("TLS 1.3 own record layer: KeyUpdate from the client, requested or not",
          "[transport][tls][tls13]") {
    auto ctx = server_context();
    std::string sent, log;
    Link link(*ctx);
    const std::string received = run_echo(link, true, [&](Client& c) {
        for (std::size_t round = 0; round < 4; ++round) {
            for (int type : {SSL_KEY_UPDATE_REQUESTED, SSL_KEY_UPDATE_NOT_REQUESTED}) {
                const int before = c.seen.key_updates;
                if (SSL_key_update(c.ssl, type) != 1) fail("SSL_key_update");
                const std::string m = pattern(1000 + round, round * 2 + std::size_t(type));
                sent += m;
                // The reply proves OpenSSL took the server's KeyUpdate and its new keys.
                c.echo(m, "round " + std::to_string(round));
                // One KeyUpdate (not requesting ours) for each request, none otherwise.
                log += std::to_string(c.seen.key_updates - before) + "/" +
                       std::to_string(c.seen.last_request_update) + " ";
            }
        }
    });
    CHECK(log == "1/0 0/0 1/0 0/0 1/0 0/0 1/0 0/0 ");
    CHECK(link.seen.key_updates == 4);
    CHECK(received == sent);
}

TEST_CASE("TLS 1.3 own record layer: a tampered or malformed record fails the read with an alert",
          "[transport][tls][tls13]") {
    struct Bad {
        const char* name;
        std::function<void(Client&)> send;  // after a good record "before"
        int alert;                          // what the client must receive
    };
    const Bad bad = GENERATE(
        Bad{"a flipped ciphertext byte",
            [](Client& c) {
                BIO* memory = BIO_new(BIO_s_mem());
                SSL_set0_wbio(c.ssl, memory);  // the client's next record stays here
                c.write("tampered with");
                std::string record(static_cast<std::size_t>(BIO_pending(memory)), '\0');
                BIO_read(memory, record.data(), static_cast<int>(record.size()));
                record[5 + 3] ^= 0x01;  // in the ciphertext, past the 5-byte header
                c.send_raw(record);
            },
            SSL_R_SSLV3_ALERT_BAD_RECORD_MAC},
        Bad{"a handshake record (outer type 22) after the handshake",
            [](Client& c) { c.send_raw(std::string("\x16\x03\x03\x00\x04\x01\x00\x00\x00", 9)); },
            SSL_R_SSLV3_ALERT_UNEXPECTED_MESSAGE},
        Bad{"a record of 2^14 + 257 bytes",
            [](Client& c) { c.send_raw("\x17\x03\x03\x41\x01" + std::string(16641, 'x')); },
            SSL_R_TLSV1_ALERT_RECORD_OVERFLOW});
    INFO(bad.name);
    auto ctx = server_context();
    int alert = -1;
    Link link(*ctx);
    link.start([&](Client& c) {
        c.write("before");
        bad.send(c);
        alert = c.read_end();
    });
    REQUIRE(link.handshake() == std::error_code());
    REQUIRE(link.server->own_record_layer());
    auto [ec, got] = link.read_until_error();
    CHECK(got == "before");
    INFO("the server's read: " << ec.message());
    CHECK(ec.category().name() == std::string(asio::error::get_ssl_category().name()));
    CHECK(ec.value() != 0);
    using Catch::Matchers::Contains;
    if (bad.alert == SSL_R_SSLV3_ALERT_BAD_RECORD_MAC)
        CHECK_THAT(ec.message(), Contains("bad record mac", Catch::CaseSensitive::No) ||
                                     Contains("decryption fail", Catch::CaseSensitive::No));
    // The alert went out before the read failed; then EOF, so that a missing
    // alert shows at once.
    std::error_code ignored;
    link.server->lowest_layer().shutdown(asio::socket_base::shutdown_send, ignored);
    REQUIRE(link.finish());
    CHECK(link.client_error == "");
    const char* reason =
        alert > 0 ? ERR_reason_error_string(ERR_PACK(ERR_LIB_SSL, 0, alert)) : nullptr;
    INFO("the client's read: " << alert << " " << (reason ? reason : ""));
    CHECK(alert == bad.alert);
}

TEST_CASE("TLS 1.3 own record layer: close_notify either way, and EOF without it",
          "[transport][tls][tls13]") {
    auto ctx = server_context();
    Link link(*ctx);
    SECTION("the client's close_notify: the server's read ends with eof") {
        link.start([](Client& c) {
            c.write("last");
            c.close();
        });
        REQUIRE(link.handshake() == std::error_code());
        CHECK(link.server->own_record_layer());
        auto [ec, got] = link.read_until_error();
        CHECK(got == "last");
        CHECK(ec == asio::error::eof);
        CHECK(link.shutdown() == std::error_code());  // its close_notify; the client's is in
    }
    SECTION("the server's close_notify: SSL_read returns 0 with SSL_ERROR_ZERO_RETURN") {
        link.start([](Client& c) {
            if (c.read(3) != "bye") fail("no bye");
            if (int r = c.read_end(); r != -1) fail("no close_notify: " + std::to_string(r));
            if (SSL_shutdown(c.ssl) != 1) fail("SSL_shutdown: not both close_notify");
        });
        REQUIRE(link.handshake() == std::error_code());
        CHECK(link.server->own_record_layer());
        auto [ec, n] =
            link.await([&](auto h) { link.server->async_write_some(asio::buffer("bye", 3), h); });
        CHECK(!ec);
        CHECK(n == 3);
        CHECK(link.shutdown() == std::error_code());  // ends with the client's close_notify
    }
    SECTION("the client closes TCP without close_notify: stream_truncated") {
        link.start([](Client& c) {
            c.write("half");
            ::shutdown(c.fd, SHUT_WR);
        });
        REQUIRE(link.handshake() == std::error_code());
        CHECK(link.server->own_record_layer());
        auto [ec, got] = link.read_until_error();
        CHECK(got == "half");
        CHECK(ec == asio::ssl::error::stream_truncated);
    }
    REQUIRE(link.finish());
    CHECK(link.client_error == "");
}

TEST_CASE("TLS 1.3 own record layer: 4 MiB to a client that does not read yet",
          "[transport][tls][tls13]") {
    auto ctx = server_context();
    ClientOptions o;
    o.buffers = 8192;  // small socket buffers: the server's writes must wait
    const std::string data = pattern(4 << 20, 0);  // byte i is i * 7 % 251
    std::atomic<bool> reading{false};
    Link link(*ctx, o);
    link.start([&](Client& c) {
        c.go.wait(false);
        reading = true;
        if (c.read(data.size()) != data) fail("the 4 MiB differ");
        c.close();
    });
    REQUIRE(link.handshake() == std::error_code());
    REQUIRE(link.server->own_record_layer());

    // Non-blocking writes until the socket is full (would_block)...
    std::size_t written = 0, n = 1;
    std::error_code ec;
    while (!ec && n > 0 && written < data.size()) {
        const std::size_t chunk = std::min(data.size() - written, ws::TlsStream::max_record);
        n = link.server->write_some(asio::buffer(&data[written], chunk), ec);
        REQUIRE(n <= chunk);
        written += n;  // none on would_block
    }
    REQUIRE(ec == asio::error::would_block);
    REQUIRE(n == 0);
    // ...then asynchronous ones, from the same bytes on, each a record's
    // worth gathered from two buffers, counted as asio::async_write does.
    struct Writes {
        std::size_t written = 0, bad = 0;
        std::error_code ec;
        bool done = false, after_reading = false;
    };
    auto w = std::make_shared<Writes>();
    w->written = written;
    auto writer = [](ws::TlsStream& s, const std::string& data, std::shared_ptr<Writes> w,
                     const std::atomic<bool>& reading) -> asio::awaitable<void> {
        while (w->written < data.size()) {
            const char* p = data.data() + w->written;
            const std::size_t chunk = std::min(data.size() - w->written, ws::TlsStream::max_record);
            std::array<asio::const_buffer, 2> parts{asio::buffer(p, chunk / 3),
                                                    asio::buffer(p + chunk / 3, chunk - chunk / 3)};
            std::size_t n = co_await s.async_write_some(
                parts, asio::redirect_error(asio::use_awaitable, w->ec));
            if (w->ec || n == 0 || n > chunk) {
                ++w->bad;
                break;
            }
            w->written += n;
        }
        w->after_reading = reading;
        w->done = true;
    };
    asio::co_spawn(link.io, writer(*link.server, data, w, reading), rethrow);
    link.io.restart();
    for (int i = 0; i < 100000 && link.io.poll() > 0; ++i) {
    }
    CHECK(!w->done);  // waiting for the socket
    CHECK(w->written < data.size());
    link.go = true;
    link.go.notify_all();
    REQUIRE(link.run([&] { return w->done; }));
    CHECK(w->bad == 0);
    CHECK(w->ec == std::error_code());
    CHECK(w->written == data.size());
    CHECK(w->after_reading);
    CHECK(link.read_until_error().first == asio::error::eof);
    CHECK(link.shutdown() == std::error_code());
    REQUIRE(link.finish());
    CHECK(link.client_error == "");
}

namespace {
struct Quiet {
    void on_message(auto&, ws::opcode, std::string_view) {}
    void on_close(auto&, std::uint16_t, std::string_view) {}
};
}  // namespace

TEST_CASE("TLS 1.3 own record layer: Server prepares its context unless told not to",
          "[transport][tls][tls13]") {
    using Handler = Quiet;
    asio::io_context io;
    auto ctx = server_context(false), kept = server_context(false);
    ws::Server<Handler, ws::TlsSocket> with(io, ws::Options{}, [] { return Handler{}; }, {ctx});
    ws::Server<Handler, ws::TlsSocket> without(io, ws::Options{}, [] { return Handler{}; },
                                               {kept, false});
    CHECK(SSL_CTX_get_keylog_callback(ctx->native_handle()) != nullptr);
    CHECK(ws::use_own_record_layer(*ctx));  // the callback is plume's
    CHECK(SSL_CTX_get_keylog_callback(kept->native_handle()) == nullptr);
}
