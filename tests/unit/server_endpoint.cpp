// The Phoenix socket protocol of plume::server::Endpoint, driven in-process by
// a raw V2 client (plume's client-role WebSocket) over 127.0.0.1.
#include <catch2/catch.hpp>

#include <plume/server.hpp>
#include <plume/transport.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

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

class RoomChannel;

struct TestSocket {
    std::string user = "anon";
    ps::ConnectResult connect(const ps::Params& params, const ps::ConnectInfo&) {
        if (params.value("reject", "") == "yes") return ps::ConnectResult::refuse("no");
        user = params.value("user", "anon");
        return ps::ConnectResult::accept();
    }
    std::optional<std::string> id() const { return "socket:" + user; }
    static void channels(ps::Router<TestSocket>& r) { r.channel<RoomChannel>("room:*"); }
};

std::atomic<int> terminations{0};

class RoomChannel : public ps::Channel<TestSocket> {
  public:
    JoinResult join(std::string_view topic, const Payload& params) override {
        if (topic == "room:closed") return error({{"reason", "closed"}});
        if (params.is_json() && params.json().value("boom", false))
            throw std::runtime_error("join boom");
        if (params.is_json() && params.json().value("after_join", false))
            send_info({{"hello", socket().user}});
        return ok({{"user", socket().user}});
    }
    InResult handle_in(std::string_view event, const Payload& p) override {
        if (event == "shout") {
            broadcast("shout", p);
            return noreply();
        }
        if (event == "whisper") {
            broadcast_from("whisper", p);
            return noreply();
        }
        if (event == "boom") throw std::runtime_error("handler boom");
        if (event == "echo") return reply_ok(p);
        return ps::Channel<TestSocket>::handle_in(event, p);
    }
    void handle_info(const json& m) override { push("info", m); }
    void terminate(std::string_view) override { ++terminations; }
};

// Where the first frame matching `pred` arrived (frames.size() if none did).
template <class Pred>
std::size_t index_of(Frames& rec, Pred pred) {
    std::lock_guard l(rec.mutex);
    return static_cast<std::size_t>(std::find_if(rec.frames.begin(), rec.frames.end(), pred) -
                                    rec.frames.begin());
}

struct Fixture {
    asio::io_context io;
    ps::Endpoint<TestSocket> endpoint;
    explicit Fixture(ps::EndpointConfig cfg = make_config()) : endpoint(io, cfg) {
        endpoint.start();
    }
    static ps::EndpointConfig make_config() {
        ps::EndpointConfig c;
        c.port = 0;
        c.log.sink = [](const ps::LogRecord&) {};
        return c;
    }
    std::string url(std::string query = "user=a") {
        return "ws://127.0.0.1:" + std::to_string(endpoint.local_endpoint().port()) +
               "/socket/websocket?vsn=2.0.0&" + query;
    }
    auto connect(std::shared_ptr<Frames> rec, std::string query = "user=a") {
        return ws::connect<RawClient>(io, url(std::move(query)), ws::Options{}, RawClient{rec});
    }
};

}  // namespace

TEST_CASE("join, push with reply, heartbeat, leave", "[server]") {
    Fixture f;
    auto rec = std::make_shared<Frames>();
    auto c = f.connect(rec);
    REQUIRE(run_until(f.io, [&] { return rec->open; }));
    send(c, {"1", "1", "room:lobby", "phx_join", json::object()});
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("1").has_value(); }));
    CHECK(*rec->reply_to("1") == json{"1",
                                      "1",
                                      "room:lobby",
                                      "phx_reply",
                                      {{"status", "ok"}, {"response", {{"user", "a"}}}}});

    send(c, {"1", "2", "room:lobby", "echo", {{"x", 1}}});
    send(c, {nullptr, "3", "phoenix", "heartbeat", json::object()});
    send(c, {"1", "4", "room:lobby", "nope", json::object()});
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("4").has_value(); }));
    CHECK((*rec->reply_to("2"))[4] == json{{"status", "ok"}, {"response", {{"x", 1}}}});
    CHECK(*rec->reply_to("3") == json{nullptr,
                                      "3",
                                      "phoenix",
                                      "phx_reply",
                                      {{"status", "ok"}, {"response", json::object()}}});
    CHECK((*rec->reply_to("4"))[4]["status"] == "error");

    send(c, {"1", "5", "room:lobby", "phx_leave", json::object()});
    REQUIRE(run_until(f.io, [&] { return !rec->matching("phx_close").empty(); }));
    CHECK((*rec->reply_to("5"))[4]["status"] == "ok");
    CHECK(rec->matching("phx_close")[0] ==
          json{"1", "1", "room:lobby", "phx_close", json::object()});
    // After leaving, the topic is unmatched again.
    send(c, {"1", "6", "room:lobby", "echo", json::object()});
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("6").has_value(); }));
    CHECK(*rec->reply_to("6") ==
          json{nullptr,
               "6",
               "room:lobby",
               "phx_reply",
               {{"status", "error"}, {"response", {{"reason", "unmatched topic"}}}}});
}

TEST_CASE("join errors: refused, crashed, unmatched; duplicate join closes the old one",
          "[server]") {
    Fixture f;
    auto rec = std::make_shared<Frames>();
    auto c = f.connect(rec);
    REQUIRE(run_until(f.io, [&] { return rec->open; }));
    send(c, {"1", "1", "room:closed", "phx_join", json::object()});
    send(c, {"2", "2", "room:x", "phx_join", {{"boom", true}}});
    send(c, {"3", "3", "other:1", "phx_join", json::object()});
    send(c, {"4", "4", "room:dup", "phx_join", json::object()});
    send(c, {"5", "5", "room:dup", "phx_join", json::object()});
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("5").has_value(); }));
    CHECK((*rec->reply_to("1"))[4] ==
          json{{"status", "error"}, {"response", {{"reason", "closed"}}}});
    CHECK((*rec->reply_to("2"))[4] ==
          json{{"status", "error"}, {"response", {{"reason", "join crashed"}}}});
    CHECK((*rec->reply_to("3"))[0].is_null());
    CHECK((*rec->reply_to("3"))[4]["response"]["reason"] == "unmatched topic");
    CHECK(rec->matching("phx_close") ==
          std::vector<json>{json{"4", "4", "room:dup", "phx_close", json::object()}});
    CHECK((*rec->reply_to("5"))[4]["status"] == "ok");
    // Phoenix's order: the new join's reply first, then phx_close for the old join_ref.
    CHECK(index_of(*rec, [](const json& f) { return f[3] == "phx_reply" && f[1] == "5"; }) <
          index_of(*rec, [](const json& f) { return f[3] == "phx_close"; }));
    // A push carrying the old join_ref is dropped; the new one works.
    send(c, {"4", "6", "room:dup", "echo", json::object()});
    send(c, {"5", "7", "room:dup", "echo", json::object()});
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("7").has_value(); }));
    CHECK_FALSE(rec->reply_to("6").has_value());
}

TEST_CASE("a refused duplicate join still closes the old channel, after the error reply",
          "[server]") {
    Fixture f;
    auto rec = std::make_shared<Frames>();
    auto c = f.connect(rec);
    REQUIRE(run_until(f.io, [&] { return rec->open; }));
    send(c, {"1", "1", "room:dup", "phx_join", json::object()});
    send(c, {"2", "2", "room:dup", "phx_join", {{"boom", true}}});
    REQUIRE(run_until(f.io, [&] { return !rec->matching("phx_close").empty(); }));
    CHECK((*rec->reply_to("2"))[4]["response"]["reason"] == "join crashed");
    CHECK(rec->matching("phx_close") ==
          std::vector<json>{json{"1", "1", "room:dup", "phx_close", json::object()}});
    CHECK(index_of(*rec, [](const json& f) { return f[3] == "phx_reply" && f[1] == "2"; }) <
          index_of(*rec, [](const json& f) { return f[3] == "phx_close"; }));
    send(c, {"1", "3", "room:dup", "echo", json::object()});
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("3").has_value(); }));
    CHECK((*rec->reply_to("3"))[4]["response"]["reason"] == "unmatched topic");
}

TEST_CASE("a crashing handler ends only its channel with phx_error", "[server]") {
    Fixture f;
    auto rec = std::make_shared<Frames>();
    auto c = f.connect(rec);
    REQUIRE(run_until(f.io, [&] { return rec->open; }));
    int before = terminations;
    send(c, {"1", "1", "room:a", "phx_join", json::object()});
    send(c, {"2", "2", "room:b", "phx_join", json::object()});
    send(c, {"1", "3", "room:a", "boom", json::object()});
    send(c, {"2", "4", "room:b", "echo", {{"still", "here"}}});
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("4").has_value(); }));
    REQUIRE(run_until(f.io, [&] { return !rec->matching("phx_error").empty(); }));
    CHECK(rec->matching("phx_error")[0] ==
          json{"1", "1", "room:a", "phx_error", {{"reason", "channel_crash"}}});
    CHECK_FALSE(rec->reply_to("3").has_value());
    CHECK((*rec->reply_to("4"))[4]["response"] == json{{"still", "here"}});
    CHECK(terminations == before + 1);
    CHECK(rec->close_code == 0);  // the socket stays open
}

TEST_CASE("broadcast reaches every member; broadcast_from skips the sender", "[server]") {
    Fixture f;
    std::vector<std::shared_ptr<Frames>> recs;
    std::vector<std::shared_ptr<ws::Connection<RawClient>>> conns;
    for (int i = 0; i < 5; ++i) {
        recs.push_back(std::make_shared<Frames>());
        conns.push_back(f.connect(recs.back(), "user=u" + std::to_string(i)));
    }
    for (std::size_t i = 0; i < conns.size(); ++i) {
        REQUIRE(run_until(f.io, [&] { return recs[i]->open; }));
        send(conns[i], {"1", "1", "room:lobby", "phx_join", json::object()});
        REQUIRE(run_until(f.io, [&] { return recs[i]->reply_to("1").has_value(); }));
    }
    send(conns[0], {"1", "2", "room:lobby", "shout", {{"n", 1}}});
    send(conns[0], {"1", "3", "room:lobby", "whisper", {{"n", 2}}});
    f.endpoint.broadcast("room:lobby", "news", json{{"n", 3}});
    auto all_have = [&](std::string_view event, std::size_t from) {
        for (std::size_t i = from; i < recs.size(); ++i)
            if (recs[i]->matching(event).empty()) return false;
        return true;
    };
    REQUIRE(run_until(f.io, [&] {
        return all_have("shout", 0) && all_have("whisper", 1) && all_have("news", 0);
    }));
    CHECK(recs[0]->matching("whisper").empty());
    CHECK(recs[3]->matching("shout")[0] ==
          json{nullptr, nullptr, "room:lobby", "shout", {{"n", 1}}});
}

TEST_CASE("handle_info after join, disconnect by socket id, refused connect", "[server]") {
    Fixture f;
    auto rec = std::make_shared<Frames>();
    auto c = f.connect(rec, "user=zoe");
    REQUIRE(run_until(f.io, [&] { return rec->open; }));
    send(c, {"1", "1", "room:lobby", "phx_join", {{"after_join", true}}});
    REQUIRE(run_until(f.io, [&] { return !rec->matching("info").empty(); }));
    {
        std::lock_guard l(rec->mutex);
        CHECK(rec->frames[0][3] == "phx_reply");  // the join reply comes first
        CHECK(rec->frames[1] == json{"1", nullptr, "room:lobby", "info", {{"hello", "zoe"}}});
    }
    // Another event on the socket id's topic is not a disconnect: a round
    // trip after it finds the socket open.
    f.endpoint.broadcast("socket:zoe", "other", json::object());
    send(c, {"1", "2", "room:lobby", "echo", {{"after", "other"}}});
    REQUIRE(run_until(f.io, [&] { return rec->matching("phx_reply").size() == 2; }));
    CHECK(rec->close_code == 0);
    f.endpoint.disconnect("socket:zoe");
    REQUIRE(run_until(f.io, [&] { return rec->close_code != 0; }));
    CHECK(rec->close_code == 1001);

    auto refused = std::make_shared<Frames>();
    f.connect(refused, "reject=yes");
    REQUIRE(run_until(f.io, [&] { return !refused->handshake_error.empty(); }));
    CHECK(refused->handshake_error == "the server refused the WebSocket upgrade: HTTP 403");

    auto bad_vsn = std::make_shared<Frames>();
    ws::connect<RawClient>(f.io,
                           "ws://127.0.0.1:" + std::to_string(f.endpoint.local_endpoint().port()) +
                               "/socket/websocket?vsn=9.0.0",
                           ws::Options{}, RawClient{bad_vsn});
    REQUIRE(run_until(f.io, [&] { return !bad_vsn->handshake_error.empty(); }));
    CHECK(bad_vsn->handshake_error == "the server refused the WebSocket upgrade: HTTP 403");
}

TEST_CASE("Endpoint::stop closes every socket, then runs on_stopped", "[server]") {
    Fixture f;
    auto a = std::make_shared<Frames>(), b = std::make_shared<Frames>();
    f.connect(a, "user=a");
    f.connect(b, "user=b");
    REQUIRE(run_until(f.io, [&] { return a->open && b->open; }));
    bool stopped = false;
    f.endpoint.stop(1012, [&] { stopped = true; });
    REQUIRE(run_until(f.io, [&] { return stopped; }));
    CHECK(f.endpoint.connection_count() == 0);
    CHECK(a->close_code == 1012);
    CHECK(b->close_code == 1012);
}

TEST_CASE("malformed messages close only their own connection with 1007", "[server]") {
    Fixture f;
    auto bad = std::make_shared<Frames>(), good = std::make_shared<Frames>();
    auto cb = f.connect(bad);
    auto cg = f.connect(good);
    REQUIRE(run_until(f.io, [&] { return bad->open && good->open; }));
    asio::post(cb->get_executor(), [cb] { cb->send_text("this is not json"); });
    REQUIRE(run_until(f.io, [&] { return bad->close_code != 0; }));
    CHECK(bad->close_code == 1007);
    send(cg, {nullptr, "1", "phoenix", "heartbeat", json::object()});
    REQUIRE(run_until(f.io, [&] { return good->reply_to("1").has_value(); }));
}

TEST_CASE("broadcasts from a foreign thread with a multi-threaded io_context",
          "[server][threads]") {
    Fixture f;
    constexpr int clients = 8, messages = 200;
    std::vector<std::shared_ptr<Frames>> recs;
    for (int i = 0; i < clients; ++i) {
        recs.push_back(std::make_shared<Frames>());
        auto c = f.connect(recs.back(), "user=t" + std::to_string(i));
        REQUIRE(run_until(f.io, [&] { return recs.back()->open; }));
        send(c, {"1", "1", "room:threads", "phx_join", json::object()});
        REQUIRE(run_until(f.io, [&] { return recs.back()->reply_to("1").has_value(); }));
    }
    // Now let four threads run the io_context while another broadcasts.
    auto guard = asio::make_work_guard(f.io);
    std::vector<std::thread> pool;
    for (int i = 0; i < 4; ++i)
        pool.emplace_back([&] { f.io.run(); });
    std::thread publisher([&] {
        for (int n = 0; n < messages; ++n)
            f.endpoint.broadcast("room:threads", "n", json{{"n", n}});
    });
    publisher.join();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    bool all = false;
    while (!all && std::chrono::steady_clock::now() < deadline) {
        all = true;
        for (auto& r : recs)
            all = all && r->matching("n").size() == messages;
        if (!all) std::this_thread::yield();
    }
    guard.reset();
    f.io.stop();
    for (auto& t : pool)
        t.join();
    REQUIRE(all);
    // Each client saw the broadcasts in publication order.
    for (auto& r : recs) {
        auto got = r->matching("n");
        for (int n = 0; n < messages; ++n)
            CHECK(got[static_cast<std::size_t>(n)][4]["n"] == n);
    }
}

namespace {

// Sends `request` on a fresh TCP connection and returns what comes back: the
// whole response for plain HTTP (the server closes), the head for a 101.
std::string http_exchange(Fixture& f, std::string request) {
    auto sock = std::make_shared<asio::ip::tcp::socket>(f.io);
    auto out = std::make_shared<std::string>();
    auto done = std::make_shared<bool>(false);
    auto buf = std::make_shared<std::array<char, 4096>>();
    auto req = std::make_shared<std::string>(std::move(request));
    auto read = std::make_shared<std::function<void()>>();
    *read = [=] {
        sock->async_read_some(asio::buffer(*buf), [=](std::error_code ec, std::size_t n) {
            out->append(buf->data(), n);
            bool upgraded =
                out->rfind("HTTP/1.1 101", 0) == 0 && out->find("\r\n\r\n") != std::string::npos;
            if (ec || upgraded) {
                *done = true;
                *read = nullptr;  // ends the self-reference
                return;
            }
            (*read)();
        });
    };
    sock->async_connect(f.endpoint.local_endpoint(), [=](std::error_code ec) {
        if (ec) return void(*done = true);
        asio::async_write(*sock, asio::buffer(*req), [=](std::error_code ec2, std::size_t) {
            if (ec2) return void(*done = true);
            (*read)();
        });
    });
    REQUIRE(run_until(f.io, [&] { return *done; }));
    return *out;
}

// http_exchange reads until the server closes: the request says so (a
// kept-alive connection would wait for the next request).
std::string request_head(std::string method, std::string target, std::string extra = {}) {
    return method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + extra +
           "\r\n";
}

std::string upgrade_head(std::string protocols) {
    return request_head("GET", "/socket/websocket?vsn=2.0.0",
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " +
                            protocols + "\r\n");
}

bool has_header_line(const std::string& response, std::string_view name) {
    auto head = std::string_view(response).substr(0, response.find("\r\n\r\n"));
    std::string lower;
    for (char c : head)
        lower += plume::transport::http::ascii_lower(c);
    std::string needle = "\r\n";
    for (char c : name)
        needle += plume::transport::http::ascii_lower(c);
    return lower.find(needle + ":") != std::string::npos;
}

ps::EndpointConfig relaxed_config() {
    auto c = Fixture::make_config();
    c.require_phoenix_subprotocol = false;
    return c;
}

}  // namespace

TEST_CASE("subprotocols without phoenix: 403 by default, 101 without one when relaxed",
          "[server][subprotocol]") {
    SECTION("strict (the default): 403 with a body that says why") {
        Fixture f;
        CHECK(f.endpoint.config().require_phoenix_subprotocol);
        auto res = http_exchange(f, upgrade_head("mqtt"));
        CHECK(res.rfind("HTTP/1.1 403 ", 0) == 0);
        CHECK(res.find("unsupported subprotocol (expected \"phoenix\")") != std::string::npos);
        // The authToken subprotocol alone does not count as phoenix.
        CHECK(http_exchange(f, upgrade_head("base64url.bearer.phx.dG9rZW4"))
                  .rfind("HTTP/1.1 403 ", 0) == 0);
        auto ok = http_exchange(f, upgrade_head("mqtt, phoenix"));
        CHECK(ok.rfind("HTTP/1.1 101 ", 0) == 0);
        CHECK(ok.find("Sec-WebSocket-Protocol: phoenix\r\n") != std::string::npos);
    }
    SECTION("relaxed: 101 without Sec-WebSocket-Protocol; phoenix is still chosen") {
        Fixture f(relaxed_config());
        auto res = http_exchange(f, upgrade_head("mqtt"));
        CHECK(res.rfind("HTTP/1.1 101 ", 0) == 0);
        CHECK_FALSE(has_header_line(res, "sec-websocket-protocol"));
        res = http_exchange(f, upgrade_head("base64url.bearer.phx.dG9rZW4"));
        CHECK(res.rfind("HTTP/1.1 101 ", 0) == 0);
        CHECK_FALSE(has_header_line(res, "sec-websocket-protocol"));
        res = http_exchange(f, upgrade_head("mqtt, phoenix, v2"));
        CHECK(res.rfind("HTTP/1.1 101 ", 0) == 0);
        CHECK(res.find("Sec-WebSocket-Protocol: phoenix\r\n") != std::string::npos);
        // A malformed authToken is still refused.
        CHECK(http_exchange(f, upgrade_head("base64url.bearer.phx.!!")).rfind("HTTP/1.1 400 ", 0) ==
              0);
    }
    SECTION("relaxed: a client offering only \"mqtt\" connects and joins a channel") {
        Fixture f(relaxed_config());
        auto rec = std::make_shared<Frames>();
        ws::ClientRequest request;
        request.subprotocols = {"mqtt"};
        auto c = ws::connect<RawClient>(f.io, f.url(), ws::Options{}, RawClient{rec}, request);
        REQUIRE(run_until(f.io, [&] { return rec->open || !rec->handshake_error.empty(); }));
        REQUIRE(rec->open);
        CHECK(c->subprotocol().empty());
        send(c, {"1", "1", "room:lobby", "phx_join", json::object()});
        REQUIRE(run_until(f.io, [&] { return rec->reply_to("1").has_value(); }));
        CHECK((*rec->reply_to("1"))[4]["status"] == "ok");
    }
}

TEST_CASE("HTTP routes: path parameters, methods, exact routes first, 400/404/405/413",
          "[server][route]") {
    Fixture f;
    using plume::transport::http::Request;
    using plume::transport::http::Response;
    auto text = [](std::string body) {
        Response r;
        r.body = std::move(body);
        return r;
    };
    f.endpoint.route("/api/token/:user_id", [&](const Request&, const ps::RouteParams& p) {
        return text("token for " + p["user_id"]);
    });
    f.endpoint.route("/api/token/new", [&](const Request&) { return text("exact"); });
    f.endpoint.route("POST", "/api/token/:user_id", [&](const Request& req, const auto& p) {
        return text(req.method + " " + p["user_id"] + req.body);
    });
    f.endpoint.route("/files/*path",
                     [&](const Request&, const ps::RouteParams& p) { return text(p["path"]); });
    f.endpoint.route("/boom/:x", [](const Request&, const ps::RouteParams&) -> Response {
        throw std::runtime_error("boom");
    });
    CHECK_THROWS_AS(f.endpoint.route("/bad/:", [&](const Request&) { return text(""); }),
                    std::invalid_argument);

    auto body_of = [](const std::string& res) { return res.substr(res.find("\r\n\r\n") + 4); };
    auto get = http_exchange(f, request_head("GET", "/api/token/al%20ice?x=1"));
    CHECK(get.rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(body_of(get) == "token for al ice");
    CHECK(body_of(http_exchange(f, request_head("GET", "/api/token/new"))) == "exact");
    CHECK(body_of(http_exchange(f, request_head("GET", "/files/a/b%2Bc"))) == "a/b+c");
    auto post = http_exchange(f, request_head("POST", "/api/token/bob", "Content-Length: 0\r\n"));
    CHECK(post.rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(body_of(post) == "POST bob");

    auto with_body =
        http_exchange(f, request_head("POST", "/api/token/bob", "Content-Length: 4\r\n") + " a=1");
    CHECK(with_body.rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(body_of(with_body) == "POST bob a=1");
    // Over EndpointConfig::websocket.max_request_body (1 MiB): refused unread.
    auto too_big =
        http_exchange(f, request_head("POST", "/api/token/bob", "Content-Length: 1048577\r\n"));
    CHECK(too_big.rfind("HTTP/1.1 413 ", 0) == 0);
    auto del = http_exchange(f, request_head("DELETE", "/api/token/bob"));
    CHECK(del.rfind("HTTP/1.1 405 ", 0) == 0);
    CHECK(del.find("Allow: GET, HEAD, POST\r\n") != std::string::npos);
    CHECK(http_exchange(f, request_head("GET", "/api/token/a%00b")).rfind("HTTP/1.1 400 ", 0) == 0);
    CHECK(http_exchange(f, request_head("GET", "/api/token/%zz")).rfind("HTTP/1.1 400 ", 0) == 0);
    CHECK(http_exchange(f, request_head("GET", "/api/token/")).rfind("HTTP/1.1 404 ", 0) == 0);
    CHECK(http_exchange(f, request_head("GET", "/nothing")).rfind("HTTP/1.1 404 ", 0) == 0);
    CHECK(http_exchange(f, request_head("POST", "/nothing")).rfind("HTTP/1.1 404 ", 0) == 0);
    auto post_socket = http_exchange(f, request_head("POST", "/socket/websocket"));
    CHECK(post_socket.rfind("HTTP/1.1 405 ", 0) == 0);
    CHECK(post_socket.find("Allow: GET, HEAD\r\n") != std::string::npos);
    CHECK(http_exchange(f, request_head("GET", "/boom/1")).rfind("HTTP/1.1 500 ", 0) == 0);
}
