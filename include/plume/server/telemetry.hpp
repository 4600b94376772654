// plume/server/telemetry.hpp — what an Endpoint tells about itself: typed
// telemetry events (Phoenix's :telemetry) and built-in metrics.
//
//   plume::server::EndpointConfig config;
//   config.telemetry.channel_joined = [](const plume::server::telemetry::ChannelJoined& e) {
//       std::cout << e.topic << " joined in " << e.duration.count() << " ns\n";
//   };
//   config.telemetry.handle_in = [](const plume::server::telemetry::HandleIn& e) { ... };
//   plume::server::Endpoint<UserSocket> endpoint(io, config);
//   endpoint.route("/metrics", [&](const plume::transport::http::Request&) {
//       return plume::metrics::prometheus_response(endpoint.metrics().snapshot());
//   });
//
// Telemetry: one std::function per event in EndpointConfig::telemetry. An
// event whose function is empty costs a null check: no clock is read, no
// metadata is built. A function runs on the thread where the event happened
// (a connection's strand, the publisher's thread), synchronously: keep it
// short and never block. The metadata's string_views are valid during the
// call only.
//
// Metrics (EndpointConfig::metrics, on by default): counters, gauges and
// histograms in the endpoint's metrics::Registry (metrics.hpp), recorded
// without locks per thread and merged by snapshot(); the README lists them.
// Applications may declare their own families in endpoint.metrics() before
// the endpoint records anything (before start()).
#pragma once

#include <asio.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include <nlohmann/json.hpp>

#include "plume/metrics/metrics.hpp"
#include "plume/pubsub/message.hpp"
#include "plume/transport/priority.hpp"
#include "plume/wire/message.hpp"

namespace plume::server {

/// What carries a socket.
enum class TransportKind { websocket, longpoll };

inline std::string_view to_string(TransportKind t) noexcept {
    return t == TransportKind::websocket ? "websocket" : "longpoll";
}

namespace telemetry {

using Duration = std::chrono::steady_clock::duration;

/// A socket's connect() accepted it. duration: from the upgrade request (or
/// long-poll GET) to the decision, the checks and connect() included.
struct SocketConnected {
    Duration duration;
    TransportKind transport;
    const asio::ip::tcp::endpoint& peer;
};

/// A socket was refused: by a check (status 429 rate, 403 Origin or vsn,
/// 404 path) or by connect() (its status, 403 unless it chose another).
struct SocketRefused {
    Duration duration;
    TransportKind transport;
    int status;
    std::string_view reason;
    const asio::ip::tcp::endpoint& peer;
};

/// A channel's join() returned ok. duration: the join() call.
struct ChannelJoined {
    Duration duration;
    std::string_view topic;
    TransportKind transport;
};

/// A phx_join was answered with an error (or closed the socket: too many
/// refusals, server/limits.hpp). cause, one of a fixed set (the metrics'
/// label): "join" (join() returned an error), "join_crashed" (join()
/// raised), "unmatched_topic", "too_many_channels", "rate_limited",
/// "topic_too_long", "join_too_large". reason: the error reply's "reason"
/// as the client gets it: join()'s own (empty when its response has no
/// "reason" string), or plume's ("unmatched topic", "join crashed", ...).
/// duration: the join() call (0 when join() did not run).
struct ChannelRefused {
    Duration duration;
    std::string_view topic;
    TransportKind transport;
    std::string_view cause;
    std::string_view reason;
};

/// A channel ended: reason "left" (phx_leave), "closed" (its socket
/// closed), "duplicate_join", "crash", or a handle_in stop reason.
struct ChannelLeft {
    std::string_view topic;
    std::string_view reason;
};

/// A channel's handler raised: the channel ended, the client got phx_error.
struct ChannelCrashed {
    std::string_view topic;
    std::string_view why;
};

/// A handle_in ran. result: "noreply", "reply", "stop" or "crashed".
struct HandleIn {
    Duration duration;
    std::string_view topic;
    std::string_view event;  // as the client sent it (bounded by limits.max_event_bytes)
    std::string_view result;
};

/// A broadcast left this node's endpoint (Channel::broadcast,
/// broadcast_from, Endpoint::broadcast). payload_bytes: the JSON text or
/// binary size; subscribers: channels on this node joined to the topic.
struct Broadcast {
    std::string_view topic;
    std::string_view event;
    std::size_t payload_bytes;
    std::size_t subscribers;
};

/// A connection's send queue went over max_send_queue: what was queued is
/// dropped and the connection closed with 1008. lane: the priority of the
/// frame that did not fit, "critical", "high" or "normal" (low frames are
/// dropped one by one instead, counted in plume_dropped_total).
struct SendQueueOverflow {
    TransportKind transport;
    std::string_view lane;
};

/// A rate limit refused something. scope: "connection" (new sockets from
/// an address), "socket" (a socket's messages or joins), "channel" (a
/// channel's limit_event). topic and event are empty for "connection".
struct RateLimited {
    std::string_view scope;
    std::string_view topic;
    std::string_view event;
};

/// This node sent a presence_diff.
struct PresenceDiff {
    std::string_view topic;
    std::size_t joins;
    std::size_t leaves;
};

/// The PubSub adapter failed an operation the endpoint waited for:
/// operation "join" (a topic not confirmed) or "history" (not read).
struct AdapterError {
    std::string_view operation;
    std::string_view topic;
    std::error_code error;
};

}  // namespace telemetry

/// EndpointConfig::telemetry: set the events you want.
struct Telemetry {
    std::function<void(const telemetry::SocketConnected&)> socket_connected;
    std::function<void(const telemetry::SocketRefused&)> socket_refused;
    std::function<void(const telemetry::ChannelJoined&)> channel_joined;
    std::function<void(const telemetry::ChannelRefused&)> channel_refused;
    std::function<void(const telemetry::ChannelLeft&)> channel_left;
    std::function<void(const telemetry::ChannelCrashed&)> channel_crashed;
    std::function<void(const telemetry::HandleIn&)> handle_in;
    std::function<void(const telemetry::Broadcast&)> broadcast;
    std::function<void(const telemetry::SendQueueOverflow&)> send_queue_overflow;
    std::function<void(const telemetry::RateLimited&)> rate_limited;
    std::function<void(const telemetry::PresenceDiff&)> presence_diff;
    std::function<void(const telemetry::AdapterError&)> adapter_error;
};

template <class NextLayer>
struct OverWebSocket;

namespace detail {

template <class Over>
inline constexpr TransportKind transport_of = TransportKind::longpoll;
template <class NextLayer>
inline constexpr TransportKind transport_of<OverWebSocket<NextLayer>> = TransportKind::websocket;

/// The bounded classes messages are counted by (never a user's event name).
enum class InClass : std::size_t { join, leave, heartbeat, app, count };
enum class OutClass : std::size_t { reply, push, broadcast, control, count };
inline constexpr std::array<std::string_view, 4> in_class_names = {"phx_join", "phx_leave",
                                                                   "heartbeat", "app"};
inline constexpr std::array<std::string_view, 4> out_class_names = {"reply", "push", "broadcast",
                                                                    "control"};
enum class Scope : std::size_t { connection, socket, channel, count };
inline constexpr std::array<std::string_view, 3> scope_names = {"connection", "socket", "channel"};
/// How a handle_in ended (the handle_in histogram's label).
enum class HandleResult : std::size_t { noreply, reply, stop, crashed, count };
inline constexpr std::array<std::string_view, 4> handle_result_names = {"noreply", "reply", "stop",
                                                                        "crashed"};
/// Why a phx_join was refused (ChannelRefused::cause, a metrics label).
enum class Refusal : std::size_t {
    join,
    join_crashed,
    unmatched_topic,
    too_many_channels,
    rate_limited,
    topic_too_long,
    event_too_long,
    join_too_large,
    count
};
inline constexpr std::array<std::string_view, 8> refusal_names = {
    "join",         "join_crashed",   "unmatched_topic", "too_many_channels",
    "rate_limited", "topic_too_long", "event_too_long",  "join_too_large"};

inline InClass in_class(const wire::Message& m) noexcept {
    if (m.event == wire::event::join) return InClass::join;
    if (m.event == wire::event::leave) return InClass::leave;
    if (wire::is_heartbeat(m)) return InClass::heartbeat;
    return InClass::app;
}

// The payload size of a shared server frame (unmasked: 2, 4 or 10 bytes of
// header; long-poll unwraps the same frames).
inline std::size_t frame_payload_size(std::string_view frame) noexcept {
    if (frame.size() < 2) return frame.size();
    auto len7 = static_cast<unsigned char>(frame[1]) & 0x7f;
    std::size_t header = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
    return frame.size() >= header ? frame.size() - header : 0;
}

/// The endpoint's own series, looked up once.
struct EndpointMetrics {
    template <std::size_t N, class H, class F>
    static std::array<H, N> by(const F& family, const std::array<std::string_view, N>& names) {
        std::array<H, N> out;
        for (std::size_t i = 0; i < N; ++i)
            out[i] = family.series({std::string(names[i])});
        return out;
    }

    explicit EndpointMetrics(metrics::Registry& r) {
        constexpr std::array<std::string_view, 2> transports = {"websocket", "longpoll"};
        open = by<2, metrics::Gauge>(
            r.gauge("plume_connections_open", "Sockets open now.", {"transport"}), transports);
        connections = by<2, metrics::Counter>(
            r.counter("plume_connections_total", "Sockets accepted.", {"transport"}), transports);
        refused = by<2, metrics::Counter>(
            r.counter("plume_connections_refused_total",
                      "Sockets refused (checks, rate limit or connect()).", {"transport"}),
            transports);
        auto joins = r.counter("plume_joins_total", "Channel joins by result.", {"result"});
        joins_ok = joins.series({"ok"});
        joins_refused = joins.series({"refused"});
        refusals = by<refusal_names.size(), metrics::Counter>(
            r.counter("plume_join_refusals_total",
                      "Joins refused, by cause (join: the channel's join() returned an error).",
                      {"cause"}),
            refusal_names);
        channels = r.gauge("plume_channels_joined", "Channels joined now.").series({});
        crashes =
            r.counter("plume_channel_crashes_total", "Channels ended by an exception in a handler.")
                .series({});
        in_messages = by<4, metrics::Counter>(
            r.counter("plume_messages_in_total", "Phoenix messages received, by class.", {"class"}),
            in_class_names);
        in_bytes = by<4, metrics::Counter>(
            r.counter("plume_message_bytes_in_total",
                      "Bytes of Phoenix messages received (frame payloads), by class.", {"class"}),
            in_class_names);
        out_messages = by<4, metrics::Counter>(
            r.counter("plume_messages_out_total", "Phoenix messages sent, by class.", {"class"}),
            out_class_names);
        out_bytes = by<4, metrics::Counter>(
            r.counter("plume_message_bytes_out_total",
                      "Bytes of Phoenix messages sent (frame payloads), by class.", {"class"}),
            out_class_names);
        broadcasts =
            r.counter("plume_broadcasts_total", "Broadcasts published by this node.").series({});
        // The same count as plume_messages_out_total{class="broadcast"}: read
        // from it at scrape time, so a delivery bumps one cell less.
        r.collect([](metrics::Snapshot& s) {
            const auto n = s.value("plume_messages_out_total", {{"class", "broadcast"}});
            s.counter("plume_broadcast_deliveries_total",
                      "Broadcast frames queued to this node's subscribers.")
                .add({}, n);
        });
        queue_depth =
            r.histogram("plume_send_queue_depth_bytes",
                        "Bytes waiting in a WebSocket's send queue, sampled at each heartbeat.", {},
                        {0, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304})
                .series({});
        auto dropped = r.counter(
            "plume_dropped_total",
            "Dropped by the slow-reader policy. reason overflow: send queues dropped when a "
            "frame of the lane did not fit (the connection closed with 1008); reason pressure: "
            "low-lane frames dropped to make room or refused.",
            {"lane", "reason"});
        overflow = {dropped.series({"critical", "overflow"}), dropped.series({"high", "overflow"}),
                    dropped.series({"normal", "overflow"})};
        low_dropped = dropped.series({"low", "pressure"});
        low_coalesced =
            r.counter("plume_coalesced_total",
                      "Low-lane frames replaced by a newer one with the same key.", {"lane"})
                .series({"low"});
        low_frames = r.counter("plume_lane_frames_total", "Frames of a lane written.", {"lane"})
                         .series({"low"});
        low_batches =
            r.counter("plume_lane_batches_total", "Writes that carried frames of a lane.", {"lane"})
                .series({"low"});
        fell_behind = r.counter("plume_fell_behind_total",
                                "Times a connection that uses the lanes fell behind its reader: "
                                "its writes bounded to behind_write_bytes, its low frames paced.")
                          .series({});
        handle_in = by<4, metrics::Histogram>(
            r.histogram("plume_handle_in_duration_seconds",
                        "Time in a channel's handle_in, by how it ended.", {"result"},
                        {0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1}),
            handle_result_names);
        rate_limited = by<3, metrics::Counter>(
            r.counter("plume_rate_limited_total",
                      "Refused by a rate limit: new sockets of an address (connection), a "
                      "socket's messages or joins (socket), a channel's event limit (channel).",
                      {"scope"}),
            scope_names);
        presence_diffs =
            r.counter("plume_presence_diffs_total", "presence_diff messages sent by this node.")
                .series({});
    }

    std::array<metrics::Gauge, 2> open;
    std::array<metrics::Counter, 2> connections, refused;
    metrics::Counter joins_ok, joins_refused, crashes;
    std::array<metrics::Counter, refusal_names.size()> refusals;
    metrics::Gauge channels;
    std::array<metrics::Counter, 4> in_messages, in_bytes, out_messages, out_bytes;
    metrics::Counter broadcasts;
    metrics::Histogram queue_depth;
    std::array<metrics::Counter, 3> overflow;  // critical, high, normal
    metrics::Counter low_dropped, low_coalesced, low_frames, low_batches, fell_behind;
    std::array<metrics::Histogram, 4> handle_in;
    std::array<metrics::Counter, 3> rate_limited;
    metrics::Counter presence_diffs;
};

/// What the session and the endpoint call where something happens: each
/// call records the metrics (when on) and emits the event (when its function
/// is set), and does nothing else.
class Instruments {
  public:
    using clock = std::chrono::steady_clock;

    Instruments(const Telemetry& t, metrics::Registry* registry)
        : t_(t), m_(registry ? std::make_unique<EndpointMetrics>(*registry) : nullptr) {}

    /// The metrics are on (EndpointConfig::metrics).
    bool recording() const noexcept { return m_ != nullptr; }

    // A start time only when an event or a metric will want the duration.
    clock::time_point start_connect() const {
        return t_.socket_connected || t_.socket_refused ? clock::now() : clock::time_point{};
    }
    clock::time_point start_join() const {
        return t_.channel_joined || t_.channel_refused ? clock::now() : clock::time_point{};
    }
    clock::time_point start_handle_in() const {
        return t_.handle_in || m_ ? clock::now() : clock::time_point{};
    }

    void socket_connected(TransportKind k, clock::time_point t0,
                          const asio::ip::tcp::endpoint& peer) const {
        if (m_) m_->connections[index(k)].inc();
        if (t_.socket_connected) t_.socket_connected({clock::now() - t0, k, peer});
    }
    void socket_refused(TransportKind k, clock::time_point t0, int status, std::string_view reason,
                        const asio::ip::tcp::endpoint& peer) const {
        if (m_) m_->refused[index(k)].inc();
        if (t_.socket_refused) t_.socket_refused({clock::now() - t0, k, status, reason, peer});
    }
    void opened(TransportKind k) const {
        if (m_) m_->open[index(k)].inc();
    }
    // `lane`: the lane whose frame overflowed the queue, if it did.
    void closed(TransportKind k, std::uint16_t code, std::string_view reason,
                transport::Priority lane = transport::Priority::normal) const {
        if (m_) m_->open[index(k)].dec();
        // The transport's slow-reader policy, as the close tells it.
        if (code == 1008 && reason == "send queue overflow") {
            if (lane == transport::Priority::low) lane = transport::Priority::normal;  // never
            if (m_) m_->overflow[static_cast<std::size_t>(lane)].inc();
            if (t_.send_queue_overflow) t_.send_queue_overflow({k, transport::to_string(lane)});
        }
    }
    // What a connection's lanes did since the last call (deltas of its
    // LaneStats, recorded at heartbeats and when it ends).
    void lanes(const transport::LaneStats& d) const {
        if (!m_) return;
        if (d.low_dropped) m_->low_dropped.inc(d.low_dropped);
        if (d.low_coalesced) m_->low_coalesced.inc(d.low_coalesced);
        if (d.low_sent) m_->low_frames.inc(d.low_sent);
        if (d.low_batches) m_->low_batches.inc(d.low_batches);
        if (d.fell_behind) m_->fell_behind.inc(d.fell_behind);
    }

    // Each records its counters with one look-up of the thread's shard,
    // inlined where the message or frame is counted (the hot paths).
    [[gnu::always_inline]] void message_in(const wire::Message& m, std::size_t bytes) const {
        if (!m_) return;
        auto c = static_cast<std::size_t>(in_class(m));
        metrics::Counter::inc_together(m_->in_messages[c], 1, m_->in_bytes[c], bytes);
    }
    [[gnu::always_inline]] void sent(OutClass c, std::size_t bytes) const {
        if (!m_) return;
        const auto i = static_cast<std::size_t>(c);
        metrics::Counter::inc_together(m_->out_messages[i], 1, m_->out_bytes[i], bytes);
    }
    // A broadcast's shared frame queued to a connection.
    [[gnu::always_inline]] void delivered(std::string_view frame) const {
        if (!m_) return;
        constexpr auto b = static_cast<std::size_t>(OutClass::broadcast);
        metrics::Counter::inc_together(m_->out_messages[b], 1, m_->out_bytes[b],
                                       frame_payload_size(frame));
    }
    void queue_depth(std::size_t bytes) const {
        if (m_) m_->queue_depth.observe(static_cast<double>(bytes));
    }

    void channel_joined(std::string_view topic, TransportKind k, clock::time_point t0) const {
        if (m_) {
            m_->joins_ok.inc();
            m_->channels.inc();
        }
        if (t_.channel_joined) t_.channel_joined({clock::now() - t0, topic, k});
    }
    // t0: start_join() before join() ran, or nothing when it did not run.
    void channel_refused(std::string_view topic, TransportKind k, Refusal cause,
                         std::string_view reason, clock::time_point t0 = {}) const {
        if (m_) {
            m_->joins_refused.inc();
            m_->refusals[static_cast<std::size_t>(cause)].inc();
        }
        if (t_.channel_refused)
            t_.channel_refused(
                {t0 == clock::time_point{} ? telemetry::Duration{} : clock::now() - t0, topic, k,
                 refusal_names[static_cast<std::size_t>(cause)], reason});
    }
    void channel_left(std::string_view topic, std::string_view reason) const {
        if (m_) m_->channels.dec();
        if (t_.channel_left) t_.channel_left({topic, reason});
    }
    void channel_crashed(std::string_view topic, std::string_view why) const {
        if (m_) m_->crashes.inc();
        if (t_.channel_crashed) t_.channel_crashed({topic, why});
    }
    void handle_in(std::string_view topic, std::string_view event, clock::time_point t0,
                   HandleResult result) const {
        if (!m_ && !t_.handle_in) return;
        const auto d = clock::now() - t0;
        const auto i = static_cast<std::size_t>(result);
        if (m_) m_->handle_in[i].observe(std::chrono::duration<double>(d).count());
        if (t_.handle_in) t_.handle_in({d, topic, event, handle_result_names[i]});
    }

    template <class CountSubscribers>
    void broadcast(const pubsub::Message& m, CountSubscribers&& subscribers) const {
        if (m_) m_->broadcasts.inc();
        if (t_.broadcast)
            t_.broadcast({m.topic, m.event, m.binary ? m.binary->size() : m.payload.dump().size(),
                          subscribers()});
    }
    void rate_limited(Scope s, std::string_view topic = {}, std::string_view event = {}) const {
        if (m_) m_->rate_limited[static_cast<std::size_t>(s)].inc();
        if (t_.rate_limited)
            t_.rate_limited({scope_names[static_cast<std::size_t>(s)], topic, event});
    }
    void presence_diff(std::string_view topic, const nlohmann::json& diff) const {
        if (m_) m_->presence_diffs.inc();
        if (t_.presence_diff) {
            auto count = [&](const char* k) {
                auto it = diff.find(k);
                return it == diff.end() ? std::size_t{0} : it->size();
            };
            t_.presence_diff({topic, count("joins"), count("leaves")});
        }
    }
    void adapter_error(std::string_view operation, std::string_view topic,
                       std::error_code ec) const {
        if (t_.adapter_error) t_.adapter_error({operation, topic, ec});
    }

  private:
    static std::size_t index(TransportKind k) noexcept { return static_cast<std::size_t>(k); }

    const Telemetry& t_;
    std::unique_ptr<EndpointMetrics> m_;
};

}  // namespace detail
}  // namespace plume::server
