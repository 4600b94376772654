// The Endpoint's telemetry events and built-in metrics
// (plume/server/telemetry.hpp), driven by a raw V2 client on 127.0.0.1.
#include <catch2/catch.hpp>

#include <plume/server.hpp>
#include <plume/transport.hpp>

#include <functional>
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
    // Set while push_flood pushes; the destructor tells if it ran meanwhile.
    static inline bool pushing = false;
    static inline bool destroyed_while_pushing = false;
    ~TelemetryChannel() override {
        if (pushing) destroyed_while_pushing = true;
    }
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
        if (event == "stop") return stop("done");
        // {"frames": [[key, pad bytes], ...], "reply": bool}: low-priority pushes.
        if (event == "low") {
            for (const auto& f : p.json()["frames"])
                push("low", {{"pad", std::string(f[1].get<std::size_t>(), '.')}},
                     ps::SendOptions(ps::Priority::low, f[0].get<std::string>()));
            return p.json()["reply"].get<bool>() ? reply_ok() : noreply();
        }
        // {"priority": name, "n": count, "size": bytes}: broadcasts in a lane.
        if (event == "flood") {
            auto name = p.json()["priority"].get<std::string>();
            auto lane = name == "critical" ? ps::Priority::critical
                        : name == "high"   ? ps::Priority::high
                                           : ps::Priority::normal;
            for (int i = 0; i < p.json()["n"].get<int>(); ++i)
                broadcast("flood", {{"pad", std::string(p.json()["size"].get<std::size_t>(), '.')}},
                          ps::SendOptions(lane));
            return noreply();
        }
        // {"n": count, "size": bytes}: pushes from inside handle_in, past
        // the send queue's bound, then the channel goes on using itself.
        if (event == "push_flood") {
            pushing = true;
            for (int i = 0; i < p.json()["n"].get<int>(); ++i)
                push("flood", {{"pad", std::string(p.json()["size"].get<std::size_t>(), '.')}});
            pushing = false;
            ++pushes_done_;
            return noreply();
        }
        return reply_ok(p);
    }

  private:
    int pushes_done_ = 0;
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

    explicit Fixture(bool metrics = true, std::function<void(ps::EndpointConfig&)> tweak = {}) {
        ps::EndpointConfig c;
        c.port = 0;
        c.log.sink = [](const ps::LogRecord&) {};
        c.metrics = metrics;
        if (tweak) tweak(c);
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
            record("join refused " + std::string(e.topic) + " " + std::string(e.cause) + " (" +
                   std::string(e.reason) + ")");
        };
        t.send_queue_overflow = [this](const auto& e) {
            record("overflow " + std::string(ps::to_string(e.transport)) + " " +
                   std::string(e.lane));
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
    double value(std::string_view name, const plume::metrics::Labels& labels = {}) {
        return endpoint->metrics().snapshot().value(name, labels);
    }
    // An open client.
    std::shared_ptr<ws::Connection<RawClient, asio::ip::tcp::socket>> open(
        const std::shared_ptr<Frames>& rec) {
        auto c = ws::connect<RawClient>(io, url(), ws::Options{}, RawClient{rec});
        REQUIRE(run_until(io, [&] {
            std::lock_guard l(rec->mutex);
            return rec->open;
        }));
        return c;
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
    CHECK(snap.value("plume_join_refusals_total", {{"cause", "join"}}) == 1);
    CHECK(snap.value("plume_join_refusals_total", {{"cause", "unmatched_topic"}}) == 1);
    CHECK(snap.value("plume_join_refusals_total", {{"cause", "join_crashed"}}) == 0);
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
    // handle_in durations by result: ping replied, shout did not, boom raised.
    for (auto [result, n] : {std::pair{"reply", 1}, {"noreply", 1}, {"crashed", 1}, {"stop", 0}}) {
        const auto* h = snap.histogram("plume_handle_in_duration_seconds", {{"result", result}});
        REQUIRE(h);
        CHECK(h->count == static_cast<std::uint64_t>(n));
        CHECK(h->sum >= 0);
        CHECK(h->sum < 10);  // seconds: a handler of this test takes microseconds
    }
    // Bytes in: exactly the frames the client sent.
    double in_bytes = 0;
    for (auto cls : {"phx_join", "phx_leave", "heartbeat", "app"})
        in_bytes += snap.value("plume_message_bytes_in_total", {{"class", cls}});
    CHECK(in_bytes > 0);

    std::vector<std::string> expected = {
        "refused 403 no",
        "connected websocket",
        "joined room:a",
        "join refused room:closed join (closed)",
        "join refused nowhere unmatched_topic (unmatched topic)",
        "handle_in ping reply",
        "broadcast shout 7 1",
        "handle_in shout noreply",
        "handle_in boom crashed",
        "crashed room:a",
        "left room:a crash",
        "joined room:b",
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

TEST_CASE("metrics: handle_in durations, one observation per handler call", "[server][telemetry]") {
    Fixture f;
    auto rec = std::make_shared<Frames>();
    auto c = f.open(rec);
    send(c, json::array({"1", "1", "room:a", "phx_join", json::object()}));
    for (int i = 0; i < 5; ++i)
        send(c, json::array({"1", std::to_string(10 + i), "room:a", "ping", json::object()}));
    send(c, json::array({"1", "20", "room:a", "stop", json::object()}));
    // stop: no reply, the channel closes.
    REQUIRE(run_until(f.io, [&] { return !rec->matching("phx_close").empty(); }));
    auto snap = f.endpoint->metrics().snapshot();
    const auto* reply = snap.histogram("plume_handle_in_duration_seconds", {{"result", "reply"}});
    const auto* stop = snap.histogram("plume_handle_in_duration_seconds", {{"result", "stop"}});
    REQUIRE(reply);
    REQUIRE(stop);
    CHECK(reply->count == 5);
    CHECK(reply->buckets.back() <= 5);  // cumulative, +Inf excluded
    CHECK(stop->count == 1);
    CHECK(snap.value("plume_messages_in_total", {{"class", "app"}}) == 6);
}

TEST_CASE("metrics: the low lane's counters, exact once the connections ended",
          "[server][telemetry][lanes]") {
    Fixture f(true, [](ps::EndpointConfig& c) {
        c.websocket.low_lane_window = std::chrono::hours(1);  // only a write takes them
        c.websocket.low_lane_limit = 1000;
    });
    auto rec = std::make_shared<Frames>();
    auto c = f.open(rec);
    send(c, json::array({"1", "1", "room:a", "phx_join", json::object()}));
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("1").has_value(); }));

    // One handler: "t" then a newer "t" (coalesced), four frames of ~340
    // bytes of which two fit under the 1000-byte low limit (two refused).
    // The reply's write carries the three waiting low frames: one batch.
    json frames =
        json::array({json::array({"t", 10}), json::array({"", 300}), json::array({"", 300}),
                     json::array({"", 300}), json::array({"", 300}), json::array({"t", 10})});
    send(c, json::array({"1", "2", "room:a", "low", {{"frames", frames}, {"reply", true}}}));
    REQUIRE(run_until(f.io, [&] { return rec->matching("low").size() == 3; }));
    REQUIRE(rec->reply_to("2").has_value());
    // Counted on the connection; in the metrics at its next heartbeat.
    CHECK(f.value("plume_lane_frames_total", {{"lane", "low"}}) == 0);
    send(c, json::array({nullptr, "3", "phoenix", "heartbeat", json::object()}));
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("3").has_value(); }));
    auto snap = f.endpoint->metrics().snapshot();
    CHECK(snap.value("plume_dropped_total", {{"lane", "low"}, {"reason", "pressure"}}) == 2);
    CHECK(snap.value("plume_coalesced_total", {{"lane", "low"}}) == 1);
    CHECK(snap.value("plume_lane_frames_total", {{"lane", "low"}}) == 3);
    CHECK(snap.value("plume_lane_batches_total", {{"lane", "low"}}) == 1);

    // A second connection's counts add up.
    auto rec2 = std::make_shared<Frames>();
    auto c2 = f.open(rec2);
    send(c2, json::array({"1", "1", "room:b", "phx_join", json::object()}));
    send(c2, json::array({"1",
                          "2",
                          "room:b",
                          "low",
                          {{"frames", json::array({json::array({"k", 10}), json::array({"k", 10}),
                                                   json::array({"k", 10})})},
                           {"reply", true}}}));
    REQUIRE(run_until(f.io, [&] { return rec2->matching("low").size() == 1; }));
    c2->close();

    // Two low frames wait (no write to carry them) when the client closes:
    // they go before the close frame, and are counted when the connection
    // ends, after its on_close.
    send(c, json::array({"1",
                         "4",
                         "room:a",
                         "low",
                         {{"frames", json::array({json::array({"", 10}), json::array({"", 10})})},
                          {"reply", false}}}));
    asio::post(c->get_executor(), [c] { c->close(); });
    REQUIRE(run_until(f.io, [&] {
        return f.value("plume_lane_frames_total", {{"lane", "low"}}) == 6 &&
               f.value("plume_coalesced_total", {{"lane", "low"}}) == 3 &&
               f.value("plume_connections_open", {{"transport", "websocket"}}) == 0;
    }));
    snap = f.endpoint->metrics().snapshot();
    CHECK(snap.value("plume_dropped_total", {{"lane", "low"}, {"reason", "pressure"}}) == 2);
    CHECK(snap.value("plume_coalesced_total", {{"lane", "low"}}) == 3);
    CHECK(snap.value("plume_lane_frames_total", {{"lane", "low"}}) == 6);
    CHECK(snap.value("plume_lane_batches_total", {{"lane", "low"}}) == 2);
    CHECK(snap.value("plume_dropped_total", {{"lane", "normal"}, {"reason", "overflow"}}) == 0);
}

TEST_CASE("metrics: an overflow is counted, and told, in the lane that overflowed",
          "[server][telemetry][lanes]") {
    Fixture f(true, [](ps::EndpointConfig& c) { c.websocket.max_send_queue = 2048; });
    std::vector<std::string> lanes = {"critical", "high", "normal"};
    for (const auto& lane : lanes) {
        auto rec = std::make_shared<Frames>();
        auto c = f.open(rec);
        send(c, json::array({"1", "1", "room:" + lane, "phx_join", json::object()}));
        REQUIRE(run_until(f.io, [&] { return rec->reply_to("1").has_value(); }));
        // Two 3000-byte broadcasts wait in the connection's mailbox at once:
        // more than the queue takes, even a critical frame's quarter more.
        send(c, json::array({"1",
                             "2",
                             "room:" + lane,
                             "flood",
                             {{"priority", lane}, {"n", 2}, {"size", 3000}}}));
        REQUIRE(run_until(f.io, [&] {
            std::lock_guard l(rec->mutex);
            return rec->close_code != 0;
        }));
        CHECK(rec->close_code == 1008);
        CHECK(f.has("overflow websocket " + lane));
    }
    auto snap = f.endpoint->metrics().snapshot();
    for (const auto& lane : lanes)
        CHECK(snap.value("plume_dropped_total", {{"lane", lane}, {"reason", "overflow"}}) == 1);
    CHECK(snap.value("plume_dropped_total", {{"lane", "low"}, {"reason", "pressure"}}) == 0);
}

TEST_CASE("a channel's own pushes that overflow the send queue close the socket after handle_in",
          "[server][telemetry][lanes]") {
    Fixture f(true, [](ps::EndpointConfig& c) { c.websocket.max_send_queue = 2048; });
    auto rec = std::make_shared<Frames>();
    auto c = f.open(rec);
    send(c, json::array({"1", "1", "room:a", "phx_join", json::object()}));
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("1").has_value(); }));
    // Pushed during the read turn, the frames wait (corked) and the second
    // one overflows the queue while handle_in is still running.
    send(c, json::array({"1", "2", "room:a", "push_flood", {{"n", 4}, {"size", 3000}}}));
    REQUIRE(run_until(f.io, [&] {
        std::lock_guard l(rec->mutex);
        return rec->close_code != 0;
    }));
    CHECK(rec->close_code == 1008);
    REQUIRE(run_until(f.io, [&] { return f.has("left room:a closed"); }));
    CHECK(f.has("overflow websocket normal"));
    CHECK(f.has("handle_in push_flood noreply"));
    // The channel outlived its handle_in: on_close ran from a fresh handler.
    CHECK_FALSE(TelemetryChannel::destroyed_while_pushing);
}

TEST_CASE("telemetry: a refused join tells its cause and reason", "[server][telemetry]") {
    Fixture f(true, [](ps::EndpointConfig& c) {
        c.max_channels_per_socket = 1;
        c.limits.max_topic_bytes = 16;
    });
    auto rec = std::make_shared<Frames>();
    auto c = f.open(rec);
    send(c, json::array({"1", "1", "room:a", "phx_join", json::object()}));
    send(c, json::array({"2", "2", "room:b", "phx_join", json::object()}));
    send(c, json::array({"3", "3", "room:" + std::string(20, 'x'), "phx_join", json::object()}));
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("3").has_value(); }));
    CHECK(f.has("join refused room:b too_many_channels (too many channels joined)"));
    CHECK(f.has("join refused room:" + std::string(20, 'x') + " topic_too_long (topic too long)"));
    auto snap = f.endpoint->metrics().snapshot();
    CHECK(snap.value("plume_joins_total", {{"result", "ok"}}) == 1);
    CHECK(snap.value("plume_joins_total", {{"result", "refused"}}) == 2);
    CHECK(snap.value("plume_join_refusals_total", {{"cause", "too_many_channels"}}) == 1);
    CHECK(snap.value("plume_join_refusals_total", {{"cause", "topic_too_long"}}) == 1);
}
