// The Endpoint's telemetry events and built-in metrics
// (plume/server/telemetry.hpp), driven by a raw V2 client on 127.0.0.1.
#include <catch2/catch.hpp>

#include <plume/server.hpp>
#include <plume/transport.hpp>

#include <mutex>
#include <string>
#include <vector>

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

class TelemetryChannel;

struct TelemetrySocket {
    ps::ConnectResult connect(const ps::Params& params, const ps::ConnectInfo&) {
        if (params.contains("refuse")) return ps::ConnectResult::refuse("no");
        return ps::ConnectResult::accept();
    }
    static void channels(ps::Router<TelemetrySocket>& r) { r.channel<TelemetryChannel>("room:*"); }
};

class TelemetryChannel : public ps::Channel<TelemetrySocket> {
  public:
    JoinResult join(std::string_view topic, const Payload&) override {
        if (topic == "room:closed") return error({{"reason", "closed"}});
        return ok();
    }
    InResult handle_in(std::string_view event, const Payload& p) override {
        if (event == "boom") throw std::runtime_error("boom");
        if (event == "shout") {
            broadcast("shout", p);
            return noreply();
        }
        return reply_ok(p);
    }
};

struct Fixture {
    asio::io_context io;
    std::mutex mutex;
    std::vector<std::string> events;  // "kind topic detail", in order
    std::unique_ptr<ps::Endpoint<TelemetrySocket>> endpoint;

    void record(std::string s) {
        std::lock_guard l(mutex);
        events.push_back(std::move(s));
    }
    bool has(const std::string& s) {
        std::lock_guard l(mutex);
        return std::find(events.begin(), events.end(), s) != events.end();
    }

    explicit Fixture(bool metrics = true) {
        ps::EndpointConfig c;
        c.port = 0;
        c.log.sink = [](const ps::LogRecord&) {};
        c.metrics = metrics;
        auto& t = c.telemetry;
        t.socket_connected = [this](const auto& e) {
            CHECK(e.duration.count() >= 0);
            record("connected " + std::string(ps::to_string(e.transport)));
        };
        t.socket_refused = [this](const auto& e) {
            record("refused " + std::to_string(e.status) + " " + std::string(e.reason));
        };
        t.channel_joined = [this](const auto& e) { record("joined " + std::string(e.topic)); };
        t.channel_refused = [this](const auto& e) {
            record("join refused " + std::string(e.topic));
        };
        t.channel_left = [this](const auto& e) {
            record("left " + std::string(e.topic) + " " + std::string(e.reason));
        };
        t.channel_crashed = [this](const auto& e) { record("crashed " + std::string(e.topic)); };
        t.handle_in = [this](const auto& e) {
            record("handle_in " + std::string(e.event) + " " + std::string(e.result));
        };
        t.broadcast = [this](const auto& e) {
            record("broadcast " + std::string(e.event) + " " + std::to_string(e.payload_bytes) +
                   " " + std::to_string(e.subscribers));
        };
        endpoint = std::make_unique<ps::Endpoint<TelemetrySocket>>(io, c);
        endpoint->start();
    }
    std::string url(std::string query = "") {
        return "ws://127.0.0.1:" + std::to_string(endpoint->local_endpoint().port()) +
               "/socket/websocket?vsn=2.0.0" + query;
    }
};

}  // namespace

TEST_CASE("telemetry and metrics: a socket's life, event by event", "[server][telemetry]") {
    Fixture f;
    auto refused = std::make_shared<Frames>();
    auto r = ws::connect<RawClient>(f.io, f.url("&refuse=1"), ws::Options{}, RawClient{refused});
    REQUIRE(run_until(f.io, [&] { return f.has("refused 403 no"); }));

    auto rec = std::make_shared<Frames>();
    auto c = ws::connect<RawClient>(f.io, f.url(), ws::Options{}, RawClient{rec});
    REQUIRE(run_until(f.io, [&] {
        std::lock_guard l(rec->mutex);
        return rec->open;
    }));
    send(c, json::array({"1", "1", "room:a", "phx_join", json::object()}));
    send(c, json::array({"2", "2", "room:closed", "phx_join", json::object()}));
    send(c, json::array({"3", "3", "nowhere", "phx_join", json::object()}));
    send(c, json::array({"1", "4", "room:a", "ping", {{"n", 1}}}));
    send(c, json::array({"1", "5", "room:a", "shout", {{"n", 2}}}));
    send(c, json::array({nullptr, "6", "phoenix", "heartbeat", json::object()}));
    send(c, json::array({"1", "7", "room:a", "boom", json::object()}));
    send(c, json::array({"8", "8", "room:b", "phx_join", json::object()}));
    send(c, json::array({"8", "9", "room:b", "phx_leave", json::object()}));
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("9").has_value(); }));

    auto snap = f.endpoint->metrics().snapshot();
    CHECK(snap.value("plume_connections_total", {{"transport", "websocket"}}) == 1);
    CHECK(snap.value("plume_connections_refused_total", {{"transport", "websocket"}}) == 1);
    CHECK(snap.value("plume_connections_open", {{"transport", "websocket"}}) == 1);
    CHECK(snap.value("plume_joins_total", {{"result", "ok"}}) == 2);
    CHECK(snap.value("plume_joins_total", {{"result", "refused"}}) == 2);
    CHECK(snap.value("plume_channels_joined") == 0);  // room:a crashed, room:b left
    CHECK(snap.value("plume_channel_crashes_total") == 1);
    CHECK(snap.value("plume_messages_in_total", {{"class", "phx_join"}}) == 4);
    CHECK(snap.value("plume_messages_in_total", {{"class", "phx_leave"}}) == 1);
    CHECK(snap.value("plume_messages_in_total", {{"class", "heartbeat"}}) == 1);
    CHECK(snap.value("plume_messages_in_total", {{"class", "app"}}) == 3);
    CHECK(snap.value("plume_broadcasts_total") == 1);
    CHECK(snap.value("plume_broadcast_deliveries_total") == 1);
    CHECK(snap.value("plume_messages_out_total", {{"class", "broadcast"}}) == 1);
    // Replies: 4 joins, ping, heartbeat, leave; phx_error and phx_close are control.
    CHECK(snap.value("plume_messages_out_total", {{"class", "reply"}}) == 7);
    CHECK(snap.value("plume_messages_out_total", {{"class", "control"}}) == 2);
    const auto* depth = snap.histogram("plume_send_queue_depth_bytes");
    REQUIRE(depth);
    CHECK(depth->count == 1);  // sampled at the heartbeat
    // Bytes in: exactly the frames the client sent.
    double in_bytes = 0;
    for (auto cls : {"phx_join", "phx_leave", "heartbeat", "app"})
        in_bytes += snap.value("plume_message_bytes_in_total", {{"class", cls}});
    CHECK(in_bytes > 0);

    std::vector<std::string> expected = {
        "refused 403 no",           "connected websocket",     "joined room:a",
        "join refused room:closed", "join refused nowhere",    "handle_in ping reply",
        "broadcast shout 7 1",      "handle_in shout noreply", "handle_in boom crashed",
        "crashed room:a",           "left room:a crash",       "joined room:b",
        "left room:b left",
    };
    {
        std::lock_guard l(f.mutex);
        CHECK(f.events == expected);
    }
    c->close();
    REQUIRE(run_until(f.io, [&] {
        return f.endpoint->metrics().snapshot().value("plume_connections_open",
                                                      {{"transport", "websocket"}}) == 0;
    }));
}

TEST_CASE("metrics: EndpointConfig::metrics = false records nothing", "[server][telemetry]") {
    Fixture f(false);
    auto rec = std::make_shared<Frames>();
    auto c = ws::connect<RawClient>(f.io, f.url(), ws::Options{}, RawClient{rec});
    REQUIRE(run_until(f.io, [&] {
        std::lock_guard l(rec->mutex);
        return rec->open;
    }));
    send(c, json::array({"1", "1", "room:a", "phx_join", json::object()}));
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("1").has_value(); }));
    CHECK(f.endpoint->metrics().snapshot().families.empty());
    CHECK(f.has("joined room:a"));  // telemetry goes on
}
