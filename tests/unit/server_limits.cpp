// What one socket may send, how much and how often (EndpointConfig::limits),
// and the log that peers cannot flood or forge (EndpointConfig::log): pure
// unit tests of the pieces, then an Endpoint on 127.0.0.1 driven by a raw V2
// client.
#include <catch2/catch.hpp>

#include <plume/server.hpp>
#include <plume/transport.hpp>

#include <atomic>
#include <mutex>

#include "support/raw_v2_client.hpp"
#include "support/run_until.hpp"

namespace ps = plume::server;
namespace ws = plume::transport;
using nlohmann::json;
using plume::test::Frames;
using plume::test::RawClient;
using plume::test::run_until;
using plume::test::send;
using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------ token buckets --

TEST_CASE("TokenBucket: a burst, then the sustained rate", "[limits]") {
    ps::RateLimit limit{.per_second = 10, .burst = 3};
    ps::TokenBucket b;
    auto t0 = Clock::now();
    CHECK(b.take(limit, t0));
    CHECK(b.take(limit, t0));
    CHECK(b.take(limit, t0));
    CHECK_FALSE(b.take(limit, t0));
    CHECK(b.retry_after(limit, t0) == 1);
    CHECK_FALSE(b.take(limit, t0 + std::chrono::milliseconds(50)));  // half a token
    CHECK(b.take(limit, t0 + std::chrono::milliseconds(100)));       // one whole token
    CHECK_FALSE(b.take(limit, t0 + std::chrono::milliseconds(100)));
    // Never more than the burst, however long the pause.
    auto later = t0 + std::chrono::hours(1);
    CHECK(b.full(limit, later));
    for (int i = 0; i < 3; ++i)
        CHECK(b.take(limit, later));
    CHECK_FALSE(b.take(limit, later));
    // An off limit always admits.
    ps::TokenBucket off;
    for (int i = 0; i < 1000; ++i)
        REQUIRE(off.take(ps::RateLimit{}, t0));
}

TEST_CASE("TokenBucket: Retry-After counts whole seconds until the next token", "[limits]") {
    ps::RateLimit slow{.per_second = 0.25, .burst = 1};
    ps::TokenBucket b;
    auto t0 = Clock::now();
    CHECK(b.take(slow, t0));
    CHECK(b.retry_after(slow, t0) == 4);
    CHECK(b.retry_after(slow, t0 + std::chrono::milliseconds(3500)) == 1);
    CHECK(b.retry_after(slow, t0 + std::chrono::seconds(4)) == 0);
}

TEST_CASE("AddressLimiter: one bucket per IPv4 address and per IPv6 /64", "[limits]") {
    ps::AddressLimiter limiter;
    ps::RateLimit limit{.per_second = 0.001, .burst = 2};
    auto t0 = Clock::now();
    auto a = asio::ip::make_address("10.0.0.1");
    auto b = asio::ip::make_address("10.0.0.2");
    CHECK(limiter.admit(limit, a, t0) == 0);
    CHECK(limiter.admit(limit, a, t0) == 0);
    CHECK(limiter.admit(limit, a, t0) > 0);  // a is over; b is not
    CHECK(limiter.admit(limit, b, t0) == 0);
    // The same host as an IPv4-mapped IPv6 address shares a's bucket.
    CHECK(limiter.admit(limit, asio::ip::make_address("::ffff:10.0.0.1"), t0) > 0);
    // Two addresses of one /64 share a bucket; another /64 does not.
    CHECK(limiter.admit(limit, asio::ip::make_address("2001:db8:0:1::1"), t0) == 0);
    CHECK(limiter.admit(limit, asio::ip::make_address("2001:db8:0:1::2"), t0) == 0);
    CHECK(limiter.admit(limit, asio::ip::make_address("2001:db8:0:1::3"), t0) > 0);
    CHECK(limiter.admit(limit, asio::ip::make_address("2001:db8:0:2::1"), t0) == 0);
    CHECK(limiter.tracked() == 4);
    CHECK(limiter.admit(ps::RateLimit{}, a, t0) == 0);  // off
}

// --------------------------------------------------------------------- log --

TEST_CASE("log values: cut to the limit, control characters and bad UTF-8 escaped", "[log]") {
    using ps::detail::sanitize_log_value;
    CHECK(sanitize_log_value("room:lobby", 200) == "room:lobby");
    CHECK(sanitize_log_value("a\nb\r\t\"\\", 200) == "a\\nb\\r\\t\\\"\\\\");
    CHECK(sanitize_log_value(std::string("x\0y\x1b", 4), 200) == "x\\x00y\\x1b");
    CHECK(sanitize_log_value("caf\xc3\xa9", 200) == "caf\xc3\xa9");      // valid UTF-8 kept
    CHECK(sanitize_log_value("bad\xc3(\xff", 200) == "bad\\xc3(\\xff");  // invalid escaped
    std::string huge(1 << 20, 'a');
    auto cut = sanitize_log_value(huge, 200);
    CHECK(cut == std::string(200, 'a') + "...(" + std::to_string((1 << 20) - 200) + " more bytes)");
    // A character that does not fit whole is escaped, never split.
    auto edge = sanitize_log_value("ab\xc3\xa9", 3);
    CHECK(edge == "ab\\xc3...(1 more bytes)");
}

TEST_CASE("log: levels, structured fields, one line each, repeated lines rate-limited", "[log]") {
    std::vector<std::string> lines;
    std::vector<std::size_t> suppressed;
    ps::LogOptions opt;
    opt.level = ps::LogLevel::info;
    opt.max_per_second = 3;
    opt.sink = [&](const ps::LogRecord& r) {
        lines.push_back(r.line());
        suppressed.push_back(r.suppressed);
    };
    ps::Log log(opt);
    log(ps::LogLevel::debug, "too detailed");
    CHECK(lines.empty());
    log(ps::LogLevel::warning, "unmatched topic", {{"topic", "x\n[plume] FORGED"}});
    REQUIRE(lines.size() == 1);
    CHECK(lines[0] == "[plume] warning unmatched topic topic=\"x\\n[plume] FORGED\"");
    CHECK(lines[0].find('\n') == std::string::npos);
    for (int i = 0; i < 1000; ++i)
        log(ps::LogLevel::warning, "unmatched topic", {{"topic", "t"}});
    CHECK(lines.size() == 3);  // 3 per second for this message...
    log(ps::LogLevel::warning, "channel crashed", {{"topic", "t"}});
    CHECK(lines.size() == 4);  // ...and other messages have their own budget
    CHECK(std::count(suppressed.begin(), suppressed.end(), 0u) == 4);
}

// ------------------------------------------------------------ the endpoint --

namespace {

class LimitedChannel;

struct LimitSocket {
    ps::ConnectResult connect(const ps::Params&, const ps::ConnectInfo&) {
        return ps::ConnectResult::accept();
    }
    static void channels(ps::Router<LimitSocket>& r) { r.channel<LimitedChannel>("room:*"); }
};

std::atomic<int> handled{0};

class LimitedChannel : public ps::Channel<LimitSocket> {
  public:
    LimitedChannel() { limit_event("typing", {.per_second = 0.001, .burst = 2}); }
    JoinResult join(std::string_view, const Payload&) override { return ok(); }
    InResult handle_in(std::string_view, const Payload& p) override {
        ++handled;
        return reply_ok(p);
    }
};

struct LimitFixture {
    asio::io_context io;
    std::mutex log_mutex;
    std::vector<std::string> log_lines;
    std::unique_ptr<ps::Endpoint<LimitSocket>> endpoint;

    explicit LimitFixture(std::function<void(ps::EndpointConfig&)> tune = {}) {
        ps::EndpointConfig c;
        c.port = 0;
        c.log.sink = [this](const ps::LogRecord& r) {
            std::lock_guard l(log_mutex);
            log_lines.push_back(r.line());
        };
        if (tune) tune(c);
        endpoint = std::make_unique<ps::Endpoint<LimitSocket>>(io, c);
        endpoint->start();
    }
    std::string url() {
        return "ws://127.0.0.1:" + std::to_string(endpoint->local_endpoint().port()) +
               "/socket/websocket?vsn=2.0.0";
    }
    auto connect(std::shared_ptr<Frames> rec) {
        return ws::connect<RawClient>(io, url(), ws::Options{}, RawClient{rec});
    }
    auto joined(std::shared_ptr<Frames> rec, std::string topic = "room:a") {
        auto c = connect(rec);
        REQUIRE(run_until(io, [&] {
            std::lock_guard l(rec->mutex);
            return rec->open;
        }));
        send(c, json::array({"1", "1", topic, "phx_join", json::object()}));
        REQUIRE(run_until(io, [&] { return rec->reply_to("1").has_value(); }));
        REQUIRE((*rec->reply_to("1"))[4]["status"] == "ok");
        return c;
    }
};

json error_reason(const json& reply) {
    return reply[4]["status"] == "error" ? reply[4]["response"]["reason"] : json();
}

}  // namespace

TEST_CASE("limits: topic, event and join payload sizes are answered with a reason",
          "[limits][server]") {
    LimitFixture f;
    auto rec = std::make_shared<Frames>();
    auto c = f.joined(rec);
    std::string long_topic = "room:" + std::string(300, 'x');
    send(c, json::array({"2", "2", long_topic, "phx_join", json::object()}));
    send(c, json::array({"1", "3", "room:a", std::string(300, 'e'), json::object()}));
    send(c, json::array({"4", "4", "room:b", "phx_join", {{"pad", std::string(70'000, 'p')}}}));
    send(c, json::array({"5", "5", "room:c", "phx_join", {{"pad", std::string(60'000, 'p')}}}));
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("5").has_value(); }));
    CHECK(error_reason(*rec->reply_to("2")) == "topic too long");
    CHECK(error_reason(*rec->reply_to("3")) == "event too long");
    CHECK(error_reason(*rec->reply_to("4")) == "join payload too large");
    CHECK((*rec->reply_to("5"))[4]["status"] == "ok");  // under the limit
    // A topic of exactly the limit is fine.
    send(c, json::array({"6", "6", "room:" + std::string(251, 'y'), "phx_join", json::object()}));
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("6").has_value(); }));
    CHECK((*rec->reply_to("6"))[4]["status"] == "ok");
}

TEST_CASE("limits: pushes over the socket's rate get rate_limited; the socket stays open",
          "[limits][server]") {
    LimitFixture f(
        [](ps::EndpointConfig& c) { c.limits.messages = {.per_second = 0.001, .burst = 5}; });
    auto rec = std::make_shared<Frames>();
    auto c = f.joined(rec);  // the join took one token
    handled = 0;
    for (int i = 0; i < 10; ++i)
        send(c, json::array({"1", "p" + std::to_string(i), "room:a", "echo", {{"i", i}}}));
    send(c, json::array({"1", nullptr, "room:a", "echo", json::object()}));  // no ref: dropped
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("p9").has_value(); }));
    int ok = 0, limited = 0;
    for (int i = 0; i < 10; ++i) {
        auto r = *rec->reply_to("p" + std::to_string(i));
        if (r[4]["status"] == "ok") ++ok;
        if (error_reason(r) == "rate_limited") ++limited;
        if (i < 4) CHECK(r[4]["status"] == "ok");
    }
    CHECK(ok == 4);
    CHECK(limited == 6);
    CHECK(handled == 4);
    std::lock_guard l(rec->mutex);
    CHECK(rec->close_code == 0);
}

TEST_CASE("limits: sustained abuse closes the socket with 1008 \"rate limited\"",
          "[limits][server]") {
    LimitFixture f([](ps::EndpointConfig& c) {
        c.limits.messages = {.per_second = 0.001, .burst = 2};
        c.limits.close_after_refused = 20;
    });
    auto rec = std::make_shared<Frames>();
    auto c = f.joined(rec);
    for (int i = 0; i < 40; ++i)
        send(c, json::array({"1", "p" + std::to_string(i), "room:a", "echo", json::object()}));
    REQUIRE(run_until(f.io, [&] {
        std::lock_guard l(rec->mutex);
        return rec->close_code != 0;
    }));
    std::lock_guard l(rec->mutex);
    CHECK(rec->close_code == 1008);
    int limited = 0;
    for (auto& fr : rec->frames)
        if (fr[3] == "phx_reply" && error_reason(fr) == "rate_limited") ++limited;
    CHECK(limited == 20);  // the 21st refusal closes instead of replying
    std::lock_guard ll(f.log_mutex);
    CHECK(std::any_of(f.log_lines.begin(), f.log_lines.end(), [](auto& s) {
        return s.find("socket closed: rate limited") != std::string::npos;
    }));
}

TEST_CASE("limits: joins have their own rate", "[limits][server]") {
    LimitFixture f(
        [](ps::EndpointConfig& c) { c.limits.joins = {.per_second = 0.001, .burst = 3}; });
    auto rec = std::make_shared<Frames>();
    auto c = f.joined(rec);  // 1 of 3
    for (int i = 0; i < 4; ++i)
        send(c, json::array({"j" + std::to_string(i), "j" + std::to_string(i),
                             "room:" + std::to_string(i), "phx_join", json::object()}));
    send(c, json::array({"1", "e", "room:a", "echo", json::object()}));  // pushes still go
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("e").has_value(); }));
    CHECK((*rec->reply_to("j0"))[4]["status"] == "ok");
    CHECK((*rec->reply_to("j1"))[4]["status"] == "ok");
    CHECK(error_reason(*rec->reply_to("j2")) == "rate_limited");
    CHECK(error_reason(*rec->reply_to("j3")) == "rate_limited");
    CHECK((*rec->reply_to("e"))[4]["status"] == "ok");
}

TEST_CASE("limits: a channel's own per-event limit", "[limits][server]") {
    LimitFixture f;
    auto rec = std::make_shared<Frames>();
    auto c = f.joined(rec);
    handled = 0;
    for (int i = 0; i < 4; ++i)
        send(c, json::array({"1", "t" + std::to_string(i), "room:a", "typing", json::object()}));
    send(c, json::array({"1", "other", "room:a", "echo", json::object()}));
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("other").has_value(); }));
    CHECK((*rec->reply_to("t0"))[4]["status"] == "ok");
    CHECK((*rec->reply_to("t1"))[4]["status"] == "ok");
    CHECK(error_reason(*rec->reply_to("t2")) == "rate_limited");
    CHECK(error_reason(*rec->reply_to("t3")) == "rate_limited");
    CHECK((*rec->reply_to("other"))[4]["status"] == "ok");  // other events unaffected
    CHECK(handled == 3);
}

TEST_CASE("limits: new connections per address over the rate get HTTP 429 with Retry-After",
          "[limits][server]") {
    LimitFixture f([](ps::EndpointConfig& c) {
        c.limits.connections_per_address = {.per_second = 0.01, .burst = 2};
    });
    std::vector<std::shared_ptr<Frames>> recs;
    for (int i = 0; i < 2; ++i) {
        recs.push_back(std::make_shared<Frames>());
        auto c = f.connect(recs.back());
        REQUIRE(run_until(f.io, [&] {
            std::lock_guard l(recs.back()->mutex);
            return recs.back()->open;
        }));
    }
    // The third, as a raw HTTP request so the response head can be read.
    asio::ip::tcp::socket s(f.io);
    s.connect({asio::ip::make_address("127.0.0.1"), f.endpoint->local_endpoint().port()});
    std::string req =
        "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    asio::write(s, asio::buffer(req));
    std::string head;
    std::array<char, 1024> buf;
    REQUIRE(run_until(f.io, [&] {
        std::error_code ec;
        s.non_blocking(true);
        auto n = s.read_some(asio::buffer(buf), ec);
        if (!ec) head.append(buf.data(), n);
        return head.find("\r\n\r\n") != std::string::npos || (ec && ec != asio::error::would_block);
    }));
    CHECK(head.rfind("HTTP/1.1 429 ", 0) == 0);
    auto at = head.find("Retry-After: ");
    REQUIRE(at != std::string::npos);
    int wait = std::stoi(head.substr(at + 13));
    CHECK(wait >= 1);
    CHECK(wait <= 100);  // a token every 100 s
}

TEST_CASE("log: an unmatched topic is logged cut, escaped and rate-limited", "[log][server]") {
    LimitFixture f([](ps::EndpointConfig& c) {
        c.limits.messages = {};
        c.limits.max_topic_bytes = 1 << 20;
        c.limits.max_join_bytes = 1 << 20;
    });
    auto rec = std::make_shared<Frames>();
    auto c = f.joined(rec);
    std::string topic = "nomatch:\n[plume] FORGED " + std::string(100'000, 'z');
    auto start = Clock::now();
    for (int i = 0; i < 50; ++i)
        send(c, json::array({"n", "n" + std::to_string(i), topic, "phx_join", json::object()}));
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("n49").has_value(); }));
    auto seconds = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count();
    CHECK(error_reason(*rec->reply_to("n49")) == "unmatched topic");
    std::lock_guard l(f.log_mutex);
    std::size_t unmatched = 0;
    for (auto& line : f.log_lines) {
        CHECK(line.size() < 400);
        CHECK(line.find('\n') == std::string::npos);
        if (line.find("unmatched topic") != std::string::npos) ++unmatched;
    }
    CHECK(unmatched >= 1);
    // The default: 10 a second per message (a slow build may span windows).
    CHECK(unmatched <= static_cast<std::size_t>(10 * (seconds + 1)));
    CHECK(unmatched < 50);
}
