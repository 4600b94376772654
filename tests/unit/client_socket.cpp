// plume::client::Socket/Channel/Push against servers in the same io_context
// on 127.0.0.1: a plume::server::Endpoint for the normal life (joins, pushes,
// broadcasts, restarts, crashes), and scripted plume::transport servers for
// what a good server never does (no answers, junk, oversize messages).
//
// Timers are injected short; every wait is for an event, bounded.
#include <catch2/catch.hpp>

#include <plume/client.hpp>
#include <plume/server.hpp>
#include <plume/transport.hpp>

#include <asio/experimental/as_tuple.hpp>

#include <atomic>
#include <mutex>
#include <thread>

#include "support/full_listener.hpp"
#include "support/run_until.hpp"

namespace pc = plume::client;
namespace ps = plume::server;
namespace ws = plume::transport;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// ------------------------------------------------------------ the server --

class RoomChannel;

struct TestSocket {
    std::string user = "anon";
    ps::ConnectResult connect(const ps::Params& params, const ps::ConnectInfo& info) {
        if (info.auth_token)
            user = "token:" + *info.auth_token;
        else
            user = params.value("user", "anon");
        return ps::ConnectResult::accept();
    }
    std::optional<std::string> id() const { return "client_test:" + user; }
    static void channels(ps::Router<TestSocket>& r) { r.channel<RoomChannel>("room:*"); }
};

// What the server saw, in order (one io thread, but guarded for the
// multi-threaded test).
struct ServerLog {
    std::mutex mutex;
    std::vector<json> in;  // {topic, event, payload}
    int joins = 0;
    void add(json j) {
        std::lock_guard l(mutex);
        in.push_back(std::move(j));
    }
    std::vector<json> events(std::string_view name) {
        std::lock_guard l(mutex);
        std::vector<json> out;
        for (auto& j : in)
            if (j["event"] == name) out.push_back(j);
        return out;
    }
    void clear() {
        std::lock_guard l(mutex);
        in.clear();
        joins = 0;
    }
} server_log;

class RoomChannel : public ps::Channel<TestSocket> {
  public:
    JoinResult join(std::string_view topic, const Payload& params) override {
        {
            std::lock_guard l(server_log.mutex);
            ++server_log.joins;
        }
        if (params.is_json() && params.json().value("fail", false))
            return error({{"reason", "refused"}});
        return ok({{"user", socket().user}, {"topic", topic}});
    }
    InResult handle_in(std::string_view event, const Payload& p) override {
        server_log.add({{"topic", topic()}, {"event", event}, {"payload", ps_json(p)}});
        if (event == "echo") return reply_ok(p);
        if (event == "fail") return reply_error({{"reason", "asked"}});
        if (event == "silent") return noreply();
        if (event == "crash") throw std::runtime_error("crash requested");
        if (event == "shout") {
            broadcast("shout", p);
            return noreply();
        }
        if (event == "presence") {
            push(p.json()["event"].get<std::string>(), p.json()["payload"]);
            return reply_ok();
        }
        return reply_error({{"reason", "unknown"}});
    }

  private:
    static json ps_json(const Payload& p) { return p.is_json() ? p.json() : json("binary"); }
};

// ----------------------------------------------- a scripted raw server --

// Sends from inside a scripted server's message handler.
struct Peer {
    std::function<void(const std::string&)> text;
    std::function<void(const std::string&)> binary;
    std::function<void(std::uint16_t, const std::string&)> close;
};

struct Script {
    std::function<void(Peer&, const json&)> on_message;  // none: never answers
    std::vector<json> frames;
    std::vector<std::string> targets;
    std::vector<std::vector<std::string>> subprotocols;
    std::vector<std::string> peers;  // client source addresses
    int opened = 0;
};

struct ScriptedHandler {
    std::shared_ptr<Script> script;
    void on_upgrade(const ws::UpgradeRequest& req, ws::UpgradeResponse& res) {
        script->targets.push_back(req.http.target);
        script->subprotocols.push_back(req.subprotocols);
        script->peers.push_back(req.peer.address().to_string());
        for (auto& p : req.subprotocols)
            if (p == "phoenix") return res.accept("phoenix");
    }
    void on_open(auto&) { ++script->opened; }
    void on_message(auto& conn, ws::opcode, std::string_view data) {
        auto j = json::parse(data, nullptr, false);
        script->frames.push_back(j);
        if (!script->on_message) return;
        Peer peer{[&conn](const std::string& s) { conn.send_text(s); },
                  [&conn](const std::string& s) { conn.send_binary(s); },
                  [&conn](std::uint16_t code, const std::string& why) { conn.close(code, why); }};
        script->on_message(peer, j);
    }
    void on_close(auto&, std::uint16_t, std::string_view) {}
};

json reply(const json& msg, std::string_view status, json response = json::object()) {
    return json{msg[0],
                msg[1],
                msg[2],
                "phx_reply",
                {{"status", status}, {"response", std::move(response)}}};
}

// --------------------------------------------------------------- harness --

struct Harness {
    asio::io_context io;
    std::vector<std::unique_ptr<ps::Endpoint<TestSocket>>> endpoints;  // old ones stay alive
    std::unique_ptr<ws::Server<ScriptedHandler>> raw;
    std::shared_ptr<Script> script = std::make_shared<Script>();
    std::uint16_t port = 0;

    Harness() { server_log.clear(); }

    ps::Endpoint<TestSocket>& start_endpoint(std::uint16_t on_port = 0) {
        ps::EndpointConfig c;
        c.port = on_port;
        c.log.sink = [](const ps::LogRecord&) {};
        endpoints.push_back(std::make_unique<ps::Endpoint<TestSocket>>(io, c));
        endpoints.back()->start();
        port = endpoints.back()->local_endpoint().port();
        return *endpoints.back();
    }
    ps::Endpoint<TestSocket>& endpoint() { return *endpoints.back(); }

    void start_raw() {
        raw = std::make_unique<ws::Server<ScriptedHandler>>(
            io, ws::Options{}, [s = script] { return ScriptedHandler{s}; });
        raw->listen("127.0.0.1", 0);
        port = raw->local_endpoint().port();
    }

    pc::SocketOptions options(json params = {{"user", "alice"}}) {
        pc::SocketOptions o;
        o.url = "ws://127.0.0.1:" + std::to_string(port) + "/socket";
        o.params = std::move(params);
        o.reconnect_after = [](unsigned) { return 10ms; };
        o.rejoin_after = [](unsigned) { return 20ms; };
        o.timeout = 3s;
        return o;
    }

    template <class Pred>
    bool wait(Pred p, std::chrono::milliseconds limit = 5s) {
        return plume::test::run_until(io, p, limit);
    }
};

// Everything a socket reported, for assertions.
struct Events {
    int opens = 0;
    std::vector<std::pair<int, std::string>> closes;
    std::vector<std::pair<pc::error, std::string>> errors;

    void attach(pc::Socket& s) {
        s.on_open([this] { ++opens; });
        s.on_close([this](std::uint16_t c, const std::string& r) { closes.emplace_back(c, r); });
        s.on_error([this](std::error_code ec, const std::string& d) {
            errors.emplace_back(static_cast<pc::error>(ec.value()), d);
        });
    }
    int count(pc::error e) const {
        int n = 0;
        for (auto& [k, d] : errors)
            n += k == e;
        return n;
    }
};

// A round trip through the connection: everything sent before it was handled.
bool round_trip(Harness& h, pc::Socket& s) {
    bool done = false;
    if (!s.ping([&](std::chrono::milliseconds) { done = true; })) return false;
    return h.wait([&] { return done; });
}

}  // namespace

// ---------------------------------------------------------------- tests --

TEST_CASE("endpoint URL: /websocket, params as query, vsn last", "[client]") {
    asio::io_context io;
    pc::SocketOptions o;
    o.url = "ws://example.com:4000/socket";
    o.params = {
        {"token", "a b&c"}, {"user", {{"id", 42}, {"tags", {"x", "y"}}}}, {"skip", nullptr}};
    pc::Socket s(io, o);
    CHECK(s.endpoint_url() ==
          "ws://example.com:4000/socket/websocket?token=a%20b%26c&user%5Bid%5D=42&"
          "user%5Btags%5D%5B0%5D=x&user%5Btags%5D%5B1%5D=y&vsn=2.0.0");
    o.url = "ws://h/socket/?k=v";
    o.params = json::object();
    o.vsn = "1.0.0";
    CHECK(pc::Socket(io, o).endpoint_url() == "ws://h/socket/websocket?k=v&vsn=1.0.0");
    o.url = "http://h/socket";
    CHECK_THROWS_AS(pc::Socket(io, o), std::invalid_argument);
    o.url = "ws://h/socket";
    o.vsn = "3.0.0";
    CHECK_THROWS_AS(pc::Socket(io, o), std::invalid_argument);
}

TEST_CASE("join ok, push ok/error, broadcasts reach every member", "[client]") {
    Harness h;
    h.start_endpoint();
    pc::Socket alice(h.io, h.options({{"user", "alice"}}));
    pc::Socket bob(h.io, h.options({{"user", "bob"}}));
    Events ea, eb;
    ea.attach(alice);
    eb.attach(bob);

    auto room = alice.channel("room:lobby");
    auto bob_room = bob.channel("room:lobby");
    std::vector<json> alice_shouts, bob_shouts;
    room.on("shout", [&](const json& p) { alice_shouts.push_back(p); });
    bob_room.on("shout", [&](const json& p) { bob_shouts.push_back(p); });

    json joined;
    room.join().receive("ok", [&](const json& r) { joined = r; });
    bool bob_joined = false;
    bob_room.join().receive("ok", [&] { bob_joined = true; });
    alice.connect();
    bob.connect();
    REQUIRE(h.wait([&] { return !joined.is_null() && bob_joined; }));
    CHECK(joined == json{{"user", "alice"}, {"topic", "room:lobby"}});
    CHECK(room.state() == pc::ChannelState::joined);
    CHECK(ea.opens == 1);

    json ok, err;
    room.push("echo", {{"n", 1}}).receive("ok", [&](const json& r) { ok = r; });
    room.push("fail").receive("error", [&](const json& r) { err = r; });
    REQUIRE(h.wait([&] { return !ok.is_null() && !err.is_null(); }));
    CHECK(ok == json{{"n", 1}});
    CHECK(err == json{{"reason", "asked"}});

    room.push("shout", {{"body", "hi all"}});
    REQUIRE(h.wait([&] { return alice_shouts.size() == 1 && bob_shouts.size() == 1; }));
    CHECK(bob_shouts[0] == json{{"body", "hi all"}});

    // A reply callback registered after the reply came is called at once.
    bool late = false;
    auto p = room.push("echo", {{"n", 2}});
    bool first = false;
    p.receive("ok", [&] { first = true; });
    REQUIRE(h.wait([&] { return first; }));
    p.receive("ok", [&] { late = true; });
    CHECK(h.wait([&] { return late; }));
    CHECK(ea.errors.empty());
    CHECK(eb.errors.empty());
}

TEST_CASE("payloads of any JSON kind are pushed, echoed and broadcast", "[client]") {
    Harness h;
    h.start_endpoint();
    pc::Socket alice(h.io, h.options({{"user", "alice"}}));
    Events ea;
    ea.attach(alice);
    auto room = alice.channel("room:any");
    std::vector<json> shouts;
    room.on("shout", [&](const json& p) { shouts.push_back(p); });
    bool joined = false;
    room.join().receive("ok", [&] { joined = true; });
    alice.connect();
    REQUIRE(h.wait([&] { return joined; }));
    std::vector<json> echoed;
    const std::vector<json> payloads{json("str"), json(42), json::array({1, "a"}), json()};
    for (const auto& p : payloads)
        room.push("echo", p).receive("ok", [&](const json& r) { echoed.push_back(r); });
    room.push("shout", json("to all"));
    REQUIRE(h.wait([&] { return echoed.size() == payloads.size() && shouts.size() == 1; }));
    CHECK(echoed == payloads);
    CHECK(shouts[0] == "to all");
    CHECK(ea.errors.empty());
}

TEST_CASE("join error: errored, retried with rejoin_after, until leave()", "[client]") {
    Harness h;
    h.start_endpoint();
    auto opts = h.options();
    std::atomic<int> rejoin_schedules{0};
    opts.rejoin_after = [&](unsigned) {
        ++rejoin_schedules;
        return 20ms;
    };
    pc::Socket s(h.io, opts);
    auto room = s.channel("room:vip", {{"fail", true}});
    int errors = 0;
    json reason;
    room.join().receive("error", [&](const json& r) {
        ++errors;
        reason = r;
    });
    s.connect();
    REQUIRE(h.wait([&] { return errors >= 3; }));  // the join is retried
    CHECK(reason == json{{"reason", "refused"}});
    CHECK(room.state() != pc::ChannelState::joined);

    room.leave();
    CHECK(h.wait([&] { return room.state() == pc::ChannelState::closed; }));
    int schedules = rejoin_schedules;
    int joins_seen = server_log.joins;
    REQUIRE(round_trip(h, s));
    REQUIRE(round_trip(h, s));
    CHECK(rejoin_schedules == schedules);  // nothing more is scheduled
    CHECK(server_log.joins == joins_seen);
    CHECK_THROWS_AS(room.join(), std::logic_error);
}

TEST_CASE("join timeout: leave for that join, then rejoin with a new ref", "[client]") {
    Harness h;
    h.start_raw();  // accepts, never answers
    auto opts = h.options();
    pc::Socket s(h.io, opts);
    auto room = s.channel("room:lobby");
    int timeouts = 0;
    room.join(50ms).receive("timeout", [&] { ++timeouts; });
    s.connect();
    REQUIRE(h.wait([&] { return timeouts >= 2; }));
    // join(ref a) ... phx_leave(join_ref a) ... join(ref b) with b != a
    std::vector<json> joins, leaves;
    for (auto& f : h.script->frames) {
        if (f[3] == "phx_join") joins.push_back(f);
        if (f[3] == "phx_leave") leaves.push_back(f);
    }
    REQUIRE(joins.size() >= 2);
    REQUIRE(!leaves.empty());
    CHECK(joins[0][0] == joins[0][1]);  // a join's join_ref is its ref
    CHECK(leaves[0][0] == joins[0][0]);
    CHECK(joins[1][0] != joins[0][0]);
    CHECK(room.state() != pc::ChannelState::joined);
}

TEST_CASE("push timeout, and pushes made before the join go out after it", "[client]") {
    Harness h;
    h.start_endpoint();
    pc::Socket s(h.io, h.options());
    auto room = s.channel("room:lobby");
    room.join();
    // Made before the socket even connects: buffered in the channel.
    json early;
    room.push("echo", {{"early", true}}).receive("ok", [&](const json& r) { early = r; });
    h.io.poll();  // calls from outside the strand were posted to it
    CHECK(room.state() == pc::ChannelState::joining);
    s.connect();
    REQUIRE(h.wait([&] { return !early.is_null(); }));
    CHECK(early == json{{"early", true}});

    bool timed_out = false, got_ok = false;
    room.push("silent", json::object(), 50ms)
        .receive("timeout", [&] { timed_out = true; })
        .receive("ok", [&] { got_ok = true; });
    REQUIRE(h.wait([&] { return timed_out; }));
    CHECK_FALSE(got_ok);

    // A buffered push whose timeout fires before the join is never sent.
    auto late_room = s.channel("room:late", {{"fail", true}});
    late_room.join();
    bool late_timeout = false;
    late_room.push("echo", {{"never", true}}, 30ms).receive("timeout", [&] {
        late_timeout = true;
    });
    REQUIRE(h.wait([&] { return late_timeout; }));
    REQUIRE(round_trip(h, s));
    for (auto& e : server_log.events("echo"))
        CHECK(e["payload"] != json{{"never", true}});
}

TEST_CASE("server restart: reconnect, rejoin, buffered pushes all delivered in order", "[client]") {
    Harness h;
    auto& first = h.start_endpoint();
    auto port = h.port;
    pc::Socket s(h.io, h.options());
    Events ev;
    ev.attach(s);
    auto room = s.channel("room:lobby");
    int join_oks = 0;
    std::vector<std::string> join_refs;
    room.join().receive("ok", [&] {
        ++join_oks;
        join_refs.push_back(room.join_ref().value_or(""));
    });
    s.connect();
    REQUIRE(h.wait([&] { return join_oks == 1; }));

    // 1000 is the code old phoenix.js clients never reconnected after.
    first.stop(1000);
    REQUIRE(h.wait([&] { return !ev.closes.empty(); }));
    CHECK(ev.closes[0].first == 1000);
    CHECK(room.state() == pc::ChannelState::errored);

    std::vector<json> replies;
    for (int i = 0; i < 5; ++i)
        room.push("echo", {{"i", i}}).receive("ok", [&](const json& r) { replies.push_back(r); });
    REQUIRE(h.wait([&] { return first.connection_count() == 0; }));
    h.start_endpoint(port);
    REQUIRE(h.wait([&] { return replies.size() == 5; }));
    CHECK(join_oks == 2);
    CHECK(ev.opens == 2);
    REQUIRE(join_refs.size() == 2);
    CHECK(join_refs[0] != join_refs[1]);
    auto seen = server_log.events("echo");
    REQUIRE(seen.size() == 5);
    for (int i = 0; i < 5; ++i) {
        CHECK(seen[i]["payload"]["i"] == i);
        CHECK(replies[i]["i"] == i);
    }
}

TEST_CASE("a channel crash on the server: phx_error, then rejoin", "[client]") {
    Harness h;
    h.start_endpoint();
    pc::Socket s(h.io, h.options());
    auto room = s.channel("room:lobby");
    int join_oks = 0;
    json crash;
    room.join().receive("ok", [&] { ++join_oks; });
    room.on_error([&](const json& p) { crash = p; });
    s.connect();
    REQUIRE(h.wait([&] { return join_oks == 1; }));
    auto first_ref = room.join_ref();
    room.push("crash");
    REQUIRE(h.wait([&] { return join_oks == 2; }));
    CHECK(crash == json{{"reason", "channel_crash"}});
    CHECK(room.join_ref() != first_ref);
    CHECK(room.state() == pc::ChannelState::joined);
    json ok;
    room.push("echo", {{"after", "crash"}}).receive("ok", [&](const json& r) { ok = r; });
    CHECK(h.wait([&] { return !ok.is_null(); }));
}

TEST_CASE("heartbeat timeout: close 1000 'heartbeat timeout', reconnect", "[client]") {
    Harness h;
    h.start_raw();  // completes the handshake, never answers heartbeats
    auto opts = h.options();
    opts.heartbeat_interval = 30ms;
    opts.heartbeat_timeout = 60ms;
    pc::Socket s(h.io, opts);
    Events ev;
    ev.attach(s);
    auto room = s.channel("room:lobby");
    json transport_error;
    room.on_error([&](const json& p) { transport_error = p; });
    s.connect();
    REQUIRE(h.wait([&] { return ev.opens >= 2; }));
    REQUIRE(!ev.closes.empty());
    CHECK(ev.closes[0] == std::pair<int, std::string>{1000, "heartbeat timeout"});
    CHECK(ev.count(pc::error::heartbeat_timeout) >= 1);
    int heartbeats = 0;
    for (auto& f : h.script->frames)
        if (f[2] == "phoenix" && f[3] == "heartbeat") {
            ++heartbeats;
            CHECK(f[0].is_null());
        }
    CHECK(heartbeats >= 1);
    (void)transport_error;  // the channel never joined, so it is not errored
}

TEST_CASE("heartbeats answered keep the connection", "[client]") {
    Harness h;
    h.start_endpoint();
    auto opts = h.options();
    opts.heartbeat_interval = 10ms;
    opts.heartbeat_timeout = 1s;
    pc::Socket s(h.io, opts);
    Events ev;
    ev.attach(s);
    int heartbeat_replies = 0;
    s.on_message([&](const pc::Event& e) {
        if (e.topic == "phoenix" && e.event == "phx_reply" && e.status == "ok") ++heartbeat_replies;
    });
    s.connect();
    // Each reply schedules the next heartbeat: many rounds on one connection.
    REQUIRE(h.wait([&] { return heartbeat_replies >= 10; }));
    CHECK(ev.opens == 1);
    CHECK(ev.closes.empty());
    CHECK(ev.errors.empty());
}

TEST_CASE("disconnect() stops reconnecting; connect() again rejoins", "[client]") {
    Harness h;
    auto& server = h.start_endpoint();
    auto opts = h.options();
    std::atomic<int> reconnect_schedules{0};
    opts.reconnect_after = [&](unsigned) {
        ++reconnect_schedules;
        return 1ms;
    };
    pc::Socket s(h.io, opts);
    Events ev;
    ev.attach(s);
    auto room = s.channel("room:lobby");
    int join_oks = 0;
    room.join().receive("ok", [&] { ++join_oks; });
    s.connect();
    REQUIRE(h.wait([&] { return join_oks == 1; }));

    s.disconnect();
    CHECK(h.wait([&] { return server.connection_count() == 0; }));
    REQUIRE(ev.closes.size() == 1);
    CHECK(ev.closes[0].first == 1000);
    CHECK(s.connection_state() == pc::ConnectionState::closed);
    CHECK(reconnect_schedules == 0);  // a reconnect would have been scheduled by now
    CHECK(room.state() == pc::ChannelState::errored);

    s.connect();
    REQUIRE(h.wait([&] { return join_oks == 2; }));
    CHECK(ev.opens == 2);
    CHECK(reconnect_schedules == 0);
}

TEST_CASE("send buffer bound: pushes over it are refused with buffer_full", "[client]") {
    Harness h;
    h.start_endpoint();
    auto opts = h.options();
    opts.max_buffered_pushes = 3;
    pc::Socket s(h.io, opts);
    Events ev;
    ev.attach(s);
    auto room = s.channel("room:lobby");
    room.join();
    std::vector<int> acked;
    std::vector<int> refused;
    for (int i = 0; i < 5; ++i)
        room.push("echo", {{"i", i}})
            .receive("ok", [&, i] { acked.push_back(i); })
            .receive("error", [&, i](const json& r) {
                CHECK(r == json{{"reason", "buffer_full"}});
                refused.push_back(i);
            });
    // Refused at once, before any connection.
    h.io.poll();  // (calls from outside the strand were posted to it)
    CHECK(refused == std::vector<int>{3, 4});
    CHECK(ev.count(pc::error::send_buffer_full) == 2);
    s.connect();
    REQUIRE(h.wait([&] { return acked.size() == 3; }));
    CHECK(acked == std::vector<int>{0, 1, 2});
    // The bound counts waiting pushes only: once flushed there is room again.
    bool ok = false;
    room.push("echo").receive("ok", [&] { ok = true; });
    CHECK(h.wait([&] { return ok; }));
}

TEST_CASE("bad input from the server goes to on_error; the socket keeps working", "[client]") {
    Harness h;
    h.script->on_message = [](Peer& peer, const json& msg) {
        if (!msg.is_array()) return;
        if (msg[3] == "phx_join") {
            peer.text(reply(msg, "ok").dump());
            auto join_ref = msg[0];
            peer.text("not json at all");
            peer.text(R"([1,2,3])");
            peer.binary(std::string("\x07junk", 5));
            peer.text(json{nullptr, nullptr, "room:nowhere", "news", json::object()}.dump());
            peer.text(json{join_ref, nullptr, "room:lobby", "mystery", json::object()}.dump());
            peer.text(json{join_ref,
                           "999",
                           "room:lobby",
                           "phx_reply",
                           {{"status", "ok"}, {"response", json::object()}}}
                          .dump());
            peer.text(json{join_ref, "1000", "room:lobby", "phx_reply", {{"oops", 1}}}.dump());
            // Stale join_ref: dropped silently (phoenix.js's isMember).
            peer.text(json{"stale", nullptr, "room:lobby", "news", {{"n", 0}}}.dump());
            // Current join_ref and null join_ref are delivered.
            peer.text(json{join_ref, nullptr, "room:lobby", "news", {{"n", 1}}}.dump());
            peer.text(json{nullptr, nullptr, "room:lobby", "news", {{"n", 2}}}.dump());
        } else if (msg[3] == "echo") {
            peer.text(reply(msg, "ok", msg[4]).dump());
        } else if (msg[3] == "big") {
            peer.text(
                json{nullptr, nullptr, "room:lobby", "news", {{"blob", std::string(4000, 'x')}}}
                    .dump());
        }
    };
    h.start_raw();
    auto opts = h.options();
    opts.websocket.max_message_size = 1024;
    pc::Socket s(h.io, opts);
    Events ev;
    ev.attach(s);
    auto room = s.channel("room:lobby");
    std::vector<int> news;
    room.on("news", [&](const json& p) { news.push_back(p.value("n", -1)); });
    int join_oks = 0;
    room.join().receive("ok", [&] { ++join_oks; });
    s.connect();
    REQUIRE(h.wait([&] { return news.size() == 2; }));
    CHECK(news == std::vector<int>{1, 2});
    CHECK(ev.count(pc::error::malformed_frame) == 4);  // text, array, binary, bad reply
    CHECK(ev.count(pc::error::unknown_topic) == 1);
    CHECK(ev.count(pc::error::unhandled_event) == 1);
    CHECK(ev.count(pc::error::unexpected_reply) == 1);
    CHECK(ev.closes.empty());

    json echoed;
    room.push("echo", {{"still", "works"}}).receive("ok", [&](const json& r) { echoed = r; });
    REQUIRE(h.wait([&] { return !echoed.is_null(); }));
    CHECK(echoed == json{{"still", "works"}});

    // Oversize: the client closes with 1009, reports it, reconnects, rejoins.
    room.push("big");
    REQUIRE(h.wait([&] { return join_oks == 2; }));
    CHECK(ev.count(pc::error::message_too_big) == 1);
    REQUIRE(!ev.closes.empty());
    CHECK(ev.closes[0].first == 1009);
}

TEST_CASE("leave(): closed at once, no errors for the server's late answers", "[client]") {
    Harness h;
    h.start_endpoint();
    pc::Socket s(h.io, h.options());
    Events ev;
    ev.attach(s);
    auto room = s.channel("room:lobby");
    bool joined = false;
    std::string closed_with;
    room.on_close([&](const json& p) { closed_with = p.get<std::string>(); });
    room.join().receive("ok", [&] { joined = true; });
    s.connect();
    REQUIRE(h.wait([&] { return joined; }));
    bool left = false;
    room.leave().receive("ok", [&] { left = true; });
    REQUIRE(h.wait([&] { return left; }));
    CHECK(room.state() == pc::ChannelState::closed);
    CHECK(closed_with == "leave");
    REQUIRE(round_trip(h, s));  // the leave's reply and phx_close came meanwhile
    CHECK(ev.errors.empty());

    // A second channel object on a topic leaves the first before joining.
    auto a = s.channel("room:dup");
    auto b = s.channel("room:dup");
    bool a_ok = false, b_ok = false;
    a.join().receive("ok", [&] { a_ok = true; });
    REQUIRE(h.wait([&] { return a_ok; }));
    b.join().receive("ok", [&] { b_ok = true; });
    REQUIRE(h.wait([&] { return b_ok; }));
    CHECK(a.state() == pc::ChannelState::closed);
    CHECK(b.state() == pc::ChannelState::joined);
}

TEST_CASE("vsn 1.0.0 speaks V1 JSON", "[client]") {
    Harness h;
    h.start_endpoint();
    auto opts = h.options();
    opts.vsn = "1.0.0";
    pc::Socket s(h.io, opts);
    auto room = s.channel("room:v1");
    bool joined = false;
    json echoed;
    room.join().receive("ok", [&] { joined = true; });
    room.push("echo", {{"v", 1}}).receive("ok", [&](const json& r) { echoed = r; });
    s.connect();
    REQUIRE(h.wait([&] { return joined && !echoed.is_null(); }));
    CHECK(echoed == json{{"v", 1}});
}

TEST_CASE("auth_token goes in Sec-WebSocket-Protocol as phoenix.js sends it", "[client]") {
    SECTION("the exact header") {
        Harness h;
        h.start_raw();
        auto opts = h.options({{"user", "x"}});
        opts.auth_token = "hello";
        pc::Socket s(h.io, opts);
        Events ev;
        ev.attach(s);
        s.connect();
        REQUIRE(h.wait([&] { return ev.opens == 1; }));
        REQUIRE(h.script->subprotocols.size() == 1);
        CHECK(h.script->subprotocols[0] ==
              std::vector<std::string>{"phoenix", "base64url.bearer.phx.aGVsbG8"});
        CHECK(h.script->targets[0] == "/socket/websocket?user=x&vsn=2.0.0");
    }
    SECTION("a plume server decodes it") {
        Harness h;
        h.start_endpoint();
        auto opts = h.options(json::object());
        opts.auth_token_provider = [] { return std::string("s3cr3t+/?"); };
        pc::Socket s(h.io, opts);
        auto room = s.channel("room:lobby");
        json joined;
        room.join().receive("ok", [&](const json& r) { joined = r; });
        s.connect();
        REQUIRE(h.wait([&] { return !joined.is_null(); }));
        CHECK(joined["user"] == "token:s3cr3t+/?");
    }
}

TEST_CASE("local_address: the socket connects from that source address", "[client]") {
    Harness h;
    h.start_raw();
    auto opts = h.options();
    opts.local_address = "127.0.0.3";
    pc::Socket s(h.io, opts);
    Events ev;
    ev.attach(s);
    s.connect();
    REQUIRE(h.wait([&] { return ev.opens == 1; }));
    REQUIRE(h.script->peers.size() == 1);
    CHECK(h.script->peers[0] == "127.0.0.3");

    opts.local_address = "not-an-address";
    CHECK_THROWS_AS(pc::Socket(h.io, opts), std::invalid_argument);
}

TEST_CASE("connect failures are reported and retried", "[client]") {
    Harness h;
    h.start_endpoint();
    auto port = h.port;
    h.endpoint().stop();
    REQUIRE(h.wait([&] { return h.endpoint().connection_count() == 0; }));
    h.io.poll();  // the acceptor closes
    pc::Socket s(h.io, h.options());
    Events ev;
    ev.attach(s);
    auto room = s.channel("room:lobby");
    bool joined = false;
    room.join().receive("ok", [&] { joined = true; });
    s.connect();
    REQUIRE(h.wait([&] { return ev.count(pc::error::connect_failed) >= 2; }));
    CHECK(ev.opens == 0);
    h.start_endpoint(port);
    CHECK(h.wait([&] { return joined; }));
}

TEST_CASE("disconnect() while the TCP connect is pending ends it and leaves nothing behind",
          "[client]") {
    Harness h;
    plume::test::FullListener listener(h.io);
    auto opts = h.options();
    opts.url = listener.url("/socket");
    Events ev;
    {
        pc::Socket s(h.io, opts);
        ev.attach(s);
        s.connect();
        REQUIRE(h.wait([&] { return listener.connects_pending() == 1; }));
        s.disconnect();
        REQUIRE(h.wait([&] { return listener.connects_pending() == 0; }));
        CHECK_FALSE(s.is_connected());
    }
    CHECK(ev.opens == 0);
    CHECK(ev.errors.empty());  // the user asked for it: no connect_failed
    CHECK(plume::test::runs_out_of_work(h.io));
}

TEST_CASE("public calls from other threads are posted to the strand", "[client]") {
    constexpr int kPushes = 150;
    Harness h;
    h.start_endpoint();
    auto s = std::make_unique<pc::Socket>(h.io, h.options());
    auto room = s->channel("room:threads");
    std::atomic<bool> joined{false};
    std::atomic<int> acked{0};
    room.join().receive("ok", [&] { joined = true; });
    s->connect();
    auto guard = asio::make_work_guard(h.io);
    std::thread t1([&] { h.io.run(); }), t2([&] { h.io.run(); });
    auto wait = [](auto pred) {
        auto deadline = std::chrono::steady_clock::now() + 5s;
        while (!pred() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::yield();
        return pred();
    };
    CHECK(wait([&] { return joined.load(); }));
    // 150 pushes at once: within the server's default burst of 200 messages
    // per socket, with the join counted (SocketLimits::messages).
    for (int i = 0; i < kPushes; ++i)
        room.push("echo", {{"i", i}}).receive("ok", [&] { ++acked; });
    CHECK(wait([&] { return acked.load() == kPushes; }));
    guard.reset();
    h.io.stop();
    t1.join();
    t2.join();
    s.reset();  // destroyed while no thread runs the io_context
    auto seen = server_log.events("echo");
    REQUIRE(seen.size() == kPushes);
    for (int i = 0; i < kPushes; ++i)
        CHECK(seen[i]["payload"]["i"] == i);  // call order kept
}

TEST_CASE("async_reply works with completion tokens and coroutines", "[client]") {
    Harness h;
    h.start_endpoint();
    pc::Socket s(h.io, h.options());
    auto room = s.channel("room:lobby");
    s.connect();

    std::error_code join_ec = pc::error::socket_closed;
    room.join().async_reply([&](std::error_code ec, pc::Reply r) {
        join_ec = ec;
        CHECK(r.status == "ok");
    });
    REQUIRE(h.wait([&] { return !join_ec; }));

    // (No Catch2 assertions or string literals inside the coroutine: GCC 12
    // cannot keep such arrays in a coroutine frame.)
    std::optional<pc::Reply> echoed, failed, timed_out;
    std::error_code ec1, ec2, ec3;
    auto echo = [&] { return room.push("echo", {{"x", 1}}); };
    auto fail = [&] { return room.push("fail"); };
    auto silent = [&] { return room.push("silent", json::object(), 30ms); };
    asio::co_spawn(
        h.io,
        [&]() -> asio::awaitable<void> {
            auto tuple = asio::experimental::as_tuple(asio::use_awaitable);
            std::tie(ec1, echoed) = co_await echo().async_reply(tuple);
            std::tie(ec2, failed) = co_await fail().async_reply(tuple);
            std::tie(ec3, timed_out) = co_await silent().async_reply(tuple);
        },
        asio::detached);
    REQUIRE(h.wait([&] { return timed_out.has_value(); }));
    CHECK(!ec1);
    CHECK(ec2 == pc::error::reply_error);
    CHECK(ec3 == pc::error::timeout);
    CHECK(echoed->response.json() == json{{"x", 1}});
    CHECK(failed->status == "error");
    CHECK(timed_out->status == "timeout");
}

TEST_CASE("Presence follows presence_state and presence_diff of a channel", "[client]") {
    Harness h;
    h.start_endpoint();
    pc::Socket s(h.io, h.options());
    auto room = s.channel("room:lobby");
    pc::Presence presence(room);
    std::vector<std::string> joins, leaves;
    int syncs = 0;
    presence.on_join([&](const std::string& k, const std::optional<json>& cur, const json&) {
        if (!cur) joins.push_back(k);
    });
    presence.on_leave([&](const std::string& k, const json& cur, const json&) {
        if (cur["metas"].empty()) leaves.push_back(k);
    });
    presence.on_sync([&] { ++syncs; });
    bool joined = false;
    room.join().receive("ok", [&] { joined = true; });
    s.connect();
    REQUIRE(h.wait([&] { return joined; }));
    auto meta = [](const char* r) { return json{{"phx_ref", r}}; };
    auto presence_of = [&](const char* ref) { return json{{"metas", json::array({meta(ref)})}}; };
    auto send = [&](const char* event, json payload) {
        room.push("presence", {{"event", event}, {"payload", std::move(payload)}});
    };
    // A diff before the state is held.
    send("presence_diff", {{"joins", {{"bob", presence_of("b1")}}}, {"leaves", json::object()}});
    send("presence_state", {{"alice", presence_of("a1")}});
    REQUIRE(h.wait([&] { return syncs == 1; }));
    CHECK(joins == std::vector<std::string>{"alice", "bob"});
    send("presence_diff", {{"joins", json::object()}, {"leaves", {{"alice", presence_of("a1")}}}});
    REQUIRE(h.wait([&] { return syncs == 2; }));
    CHECK(leaves == std::vector<std::string>{"alice"});
    auto list = presence.list([](const std::string& k, const json&) { return k; });
    CHECK(list == std::vector<std::string>{"bob"});
}

TEST_CASE("destroying the Socket settles nothing twice and releases callbacks", "[client]") {
    Harness h;
    h.start_endpoint();
    auto s = std::make_unique<pc::Socket>(h.io, h.options());
    auto room = s->channel("room:lobby");
    bool joined = false;
    room.join().receive("ok", [&] { joined = true; });
    // Callbacks that capture the handles themselves (a cycle without shutdown).
    room.on("shout", [room](const json&) {});
    s->connect();
    REQUIRE(h.wait([&] { return joined; }));
    std::error_code waited, waited_left;
    auto pending = room.push("silent", json::object(), 10s);
    pending.receive("ok", [pending] {});
    pending.async_reply([&](std::error_code ec, pc::Reply) { waited = ec; });
    // A push of a channel that has closed since still waits for its reply.
    auto other = s->channel("room:other");
    bool other_joined = false;
    other.join().receive("ok", [&] { other_joined = true; });
    REQUIRE(h.wait([&] { return other_joined; }));
    other.push("silent", json::object(), 10s).async_reply([&](std::error_code ec, pc::Reply) {
        waited_left = ec;
    });
    other.leave();
    REQUIRE(h.wait([&] { return other.state() == pc::ChannelState::closed; }));
    auto late = s->channel("room:late");  // joined only after the socket is gone
    s.reset();
    CHECK(h.wait([&] { return waited == pc::error::socket_closed; }));
    CHECK(h.wait([&] { return waited_left == pc::error::socket_closed; }));
    json after;
    room.push("echo").receive("error", [&](const json& r) { after = r; });
    REQUIRE(h.wait([&] { return !after.is_null(); }));
    CHECK(after == json{{"reason", "socket closed"}});
    json join_after;
    late.join().receive("error", [&](const json& r) { join_after = r; });
    REQUIRE(h.wait([&] { return !join_after.is_null(); }));
    CHECK(join_after == json{{"reason", "socket closed"}});
}
