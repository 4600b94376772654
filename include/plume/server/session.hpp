// plume/server/session.hpp — one client socket of an Endpoint: the Phoenix
// socket protocol (Phoenix's transport process), whatever carries it.
//
// It decodes messages with the serializer the client asked for (?vsn=),
// answers heartbeats, routes phx_join to channels, runs their handlers, sends
// their replies and pushes, and gives each joined channel an encode-once fast
// lane for its topic's broadcasts. Users never name it.
//
// The carrier is a policy (`Over`): a WebSocket Connection (OverWebSocket) or
// a long-poll session (OverLongPoll, longpoll.hpp). Both give the Session the
// same small interface, so a socket's channels cannot tell which carries them:
//     get_executor(), shared_from_this(), handler(), is_open(),
//     send_text(sv), send_binary(sv), send(SharedFrame), post_send(SharedFrame),
//     close(code, reason), pause_reading(), resume_reading()
// and call on_open(carrier), on_message(carrier, opcode, data) and
// on_close(carrier, code, reason), on the carrier's executor.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "plume/detail/spin_lock.hpp"
#include "plume/pubsub/pubsub.hpp"
#include "plume/server/channel.hpp"
#include "plume/server/log.hpp"
#include "plume/server/socket.hpp"
#include "plume/server/telemetry.hpp"
#include "plume/transport/websocket.hpp"
#include "plume/wire/encoded_payload.hpp"
#include "plume/wire/vsn.hpp"

namespace plume::server {

/// Carries a Session over a WebSocket Connection on NextLayer (TCP, TLS).
template <class NextLayer>
struct OverWebSocket {
    template <class Session>
    using carrier = transport::Connection<Session, NextLayer>;
};

/// Why a socket was not opened: an HTTP status (a WebSocket upgrade answers
/// with it; long-poll with {"status": 403}) and a reason for the body.
struct Refusal {
    int status = 403;
    std::string reason;
    transport::http::Fields headers;
};

namespace detail {

inline std::string_view payload_kind(const Payload& p) {
    return p.is_json() ? "json" : "binary";
}

inline pubsub::MessagePtr to_pubsub(std::string topic, std::string_view event, Payload payload,
                                    const SendOptions& how = {}) {
    auto m = std::make_shared<pubsub::Message>();
    m->topic = std::move(topic);
    m->event = std::string(event);
    if (payload.is_binary())
        m->binary = std::move(payload).bytes();
    else
        m->payload = std::move(payload).json();
    m->priority = how.priority;
    m->coalesce_key = how.key();
    return m;
}

inline Payload from_pubsub(const pubsub::Message& m) {
    if (m.binary) return wire::Binary{*m.binary};
    return m.payload;
}

inline transport::SharedFrame to_shared(const wire::Frame& f) {
    return transport::make_shared_frame(
        f.is_binary ? transport::opcode::binary : transport::opcode::text, f.bytes);
}

// The frame of a broadcast for one serializer, encoded once per message.
inline transport::SharedFrame broadcast_frame(const pubsub::Message& m, wire::Vsn vsn) {
    return m.frame(static_cast<std::size_t>(vsn), [&]() -> transport::SharedFrame {
        wire::Broadcast b{m.topic, m.event, from_pubsub(m)};
        auto frame = wire::with_serializer(vsn, [&]<class S>(S) { return S::encode(b); });
        return frame ? to_shared(*frame) : nullptr;
    });
}

}  // namespace detail

/// The Phoenix socket of `EndpointT` (its socket_type, adapter_type),
/// carried `Over` a transport.
template <class EndpointT, class Over>
class Session final : public detail::ChannelHost {
  public:
    using endpoint_type = EndpointT;
    using SocketT = typename EndpointT::socket_type;
    using A = typename EndpointT::adapter_type;
    using connection_type = typename Over::template carrier<Session>;
    static constexpr TransportKind transport_kind = detail::transport_of<Over>;

    explicit Session(endpoint_type* endpoint = nullptr) : endpoint_(endpoint) {}

    // --------------------------------------------------------- opening --

    /// Runs the user's connect() for a socket the Endpoint's checks let
    /// through (address rate, Origin, ?vsn=); nothing when it may open.
    std::optional<Refusal> connect_socket(wire::Vsn vsn, const transport::http::Request& req,
                                          const asio::ip::tcp::endpoint& peer,
                                          std::optional<std::string> auth_token) {
        vsn_ = vsn;
        ConnectInfo info;
        info.peer = peer;
        info.request = &req;
        info.auth_token = std::move(auth_token);
        Params params = Params::object();
        for (auto& [k, v] : req.query)
            if (k != "vsn") params[k] = v;
        ConnectResult result;
        try {
            result = socket_.connect(params, info);
        } catch (const std::exception& e) {
            endpoint_->log()(LogLevel::error, "connect raised", {{"what", e.what()}});
            return Refusal{500, "connect failed", {}};
        }
        if (!result.accepted) return Refusal{result.status, result.reason, {}};
        return std::nullopt;
    }

    // ------------------------------------------- WebSocket handler part --

    void on_upgrade(const transport::UpgradeRequest& req, transport::UpgradeResponse& res) {
        const auto t0 = endpoint_->instruments().start_connect();
        auto refused = endpoint_->upgrade_socket(req, res, *this);
        if (!refused) endpoint_->instruments().socket_connected(transport_kind, t0, req.peer);
        if (refused) {
            endpoint_->instruments().socket_refused(transport_kind, t0, refused->status,
                                                    refused->reason, req.peer);
            res.reject(refused->status, std::move(refused->reason));
            for (auto& h : refused->headers)
                res.headers.push_back(std::move(h));
        }
    }

    void on_http(const transport::http::Request& req, const asio::ip::tcp::endpoint& peer,
                 transport::http::Responder responder) {
        endpoint_->serve_http(req, peer, std::move(responder));
    }

    void on_open(connection_type& conn) {
        // An aliasing pointer: channels reach the session through the
        // connection's own reference count, and only weakly.
        auto self = conn.shared_from_this();
        conn_ = self;
        host_ = std::shared_ptr<detail::ChannelHost>(self, this);  // weak: no cycle
        opened_ = true;
        if constexpr (detail::HasId<SocketT>) {
            if (auto id = socket_.id()) {
                id_topic_ = *id;
                id_sub_ = std::make_shared<Disconnector>(conn_);
                endpoint_->pubsub().subscribe(id_topic_, id_sub_);
            }
        }
        endpoint_->connection_opened();
        endpoint_->instruments().opened(transport_kind);
    }

    void on_message(connection_type& conn, transport::opcode op, std::string_view data) {
        wire::FrameView frame(op == transport::opcode::binary, data);
        auto msg = wire::with_serializer(vsn_, [&]<class S>(S) { return S::decode(frame); });
        if (!msg) {
            // Not a Phoenix message at all: nothing to reply to, so say why
            // in the close frame. Other connections are not affected.
            endpoint_->log()(LogLevel::info, "malformed message",
                             {{"error", msg.error().message()}});
            conn.close(transport::to_int(transport::close_code::invalid_payload),
                       "malformed Phoenix message: " + msg.error().message());
            return;
        }
        endpoint_->instruments().message_in(*msg, data.size());
        if (!admit(*msg, data.size())) return;
        handle(*msg);
    }

    void on_close(connection_type& conn, std::uint16_t code, std::string_view reason) {
        if (id_sub_) endpoint_->pubsub().unsubscribe(id_topic_, id_sub_);
        id_sub_.reset();
        while (!channels_.empty()) {
            auto it = channels_.begin();
            end_channel(it, "closed", false);
        }
        if (opened_) {
            endpoint_->connection_closed();
            auto lane = transport::Priority::normal;
            if constexpr (requires { conn.lane_stats(); }) lane = conn.lane_stats().overflow_lane;
            endpoint_->instruments().closed(transport_kind, code, reason, lane);
            record_lanes(conn);
        }
        opened_ = false;
    }

    // The connection is done (after on_close): what its lanes did since.
    void on_finish(connection_type& conn) { record_lanes(conn); }

    // ------------------------------------------------------ ChannelHost --

    void host_push(const std::string& topic, const std::optional<wire::Ref>& join_ref,
                   std::string_view event, Payload payload, const SendOptions& how) override {
        send(wire::Message{join_ref, std::nullopt, topic, std::string(event), std::move(payload)},
             detail::OutClass::push, how);
    }

    void host_reply(const std::string& topic, const std::optional<wire::Ref>& join_ref,
                    const std::optional<wire::Ref>& ref, std::string_view status,
                    Payload response) override {
        send(wire::Reply{join_ref, ref, topic, std::string(status), std::move(response)});
    }

    void host_broadcast(const std::string& topic, std::string_view event, Payload payload,
                        bool exclude_self, const SendOptions& how) override {
        auto m = detail::to_pubsub(topic, event, std::move(payload), how);
        auto it = channels_.find(topic);
        endpoint_->publish(m, exclude_self && it != channels_.end() ? it->second.sub : nullptr);
    }

    void host_post_info(const std::string& topic, std::uint64_t incarnation,
                        nlohmann::json message) override {
        auto conn = conn_.lock();
        if (!conn) return;
        asio::post(conn->get_executor(), [conn, topic, incarnation, m = std::move(message)] {
            conn->handler().deliver_info(topic, incarnation, m);
        });
    }

    presence::Presence& host_presence() override { return endpoint_->presence(); }

    void host_push_text(const std::string& topic, const std::optional<wire::Ref>& join_ref,
                        std::string_view event,
                        std::shared_ptr<const std::string> payload_json) override {
        auto conn = conn_.lock();
        if (!conn) return;
        auto frame =
            wire::encode_push_with_payload_text(vsn_, join_ref, topic, event, *payload_json);
        if (!frame) {
            endpoint_->log()(LogLevel::error, "cannot encode message",
                             {{"topic", topic}, {"error", frame.error().message()}});
            return;
        }
        conn->send_text(frame->bytes);
        endpoint_->instruments().sent(detail::OutClass::push, frame->bytes.size());
    }

    SocketT& socket() noexcept { return socket_; }

  private:
    struct Joined;

    // Listens on the socket id's topic for "disconnect" (Endpoint::broadcast
    // to the id, as Phoenix's MyAppWeb.Endpoint.broadcast(id, "disconnect",
    // %{})); every socket with an id has one, so it holds only the weak
    // connection (40 bytes with its control block, where a CallbackSubscriber
    // and its executor took 112).
    class Disconnector final : public pubsub::Subscriber {
      public:
        explicit Disconnector(std::weak_ptr<connection_type> conn) : conn_(std::move(conn)) {}
        void deliver(const pubsub::MessagePtr& m) override {
            if (m->event != "disconnect") return;
            auto c = conn_.lock();
            if (!c) return;
            // 1001: phoenix.js < 1.8.16 would not reconnect after 1000.
            asio::post(c->get_executor(), [c] {
                c->close(transport::to_int(transport::close_code::going_away), "disconnected");
            });
        }

      private:
        std::weak_ptr<connection_type> conn_;
    };

    // The fast lane: broadcasts for a joined topic are encoded once per
    // serializer and the shared frame goes straight to the connection.
    class Lane final : public pubsub::Subscriber {
      public:
        Lane(std::weak_ptr<connection_type> conn, std::string topic, std::uint64_t incarnation,
             wire::Vsn vsn, std::vector<std::string> intercepted)
            : conn_(std::move(conn)),
              topic_(std::move(topic)),
              incarnation_(incarnation),
              vsn_(vsn),
              intercepted_(std::move(intercepted)) {}

        void deliver(const pubsub::MessagePtr& m) override {
            auto conn = conn_.lock();
            if (!conn) return;
            if (holding_.load(std::memory_order_acquire)) {
                std::lock_guard lock(held_mutex_);
                if (holding_.load(std::memory_order_relaxed)) return held_.push_back(m);
            }
            if (auto floor = floor_.load(std::memory_order_acquire); floor != 0 && m->offset != 0) {
                if (m->offset <= floor) return;  // a straggler the recovery had
                floor_.compare_exchange_strong(floor, 0, std::memory_order_acq_rel);
            }
            route(*conn, m);
        }

        // While the join reads its history, broadcasts wait here; release()
        // (on the connection's strand, after the reply and the missed ones)
        // sends them, but those at or below the recovery's position: the
        // recovery had them, or they are from before the join. So are the
        // ones at or below it that come after the release: with Redis the
        // recovery's answer and the live broadcasts travel on two
        // connections, and a broadcast published before the recovery read
        // may be delivered after its answer. They are dropped until the
        // first broadcast past the position arrives (offsets then only grow;
        // a new epoch whose first offsets are at or below it before any
        // broadcast past it would lose those, a flush of Redis in between).
        void hold() { holding_.store(true, std::memory_order_release); }
        void release(connection_type& conn, std::uint64_t position) {
            std::lock_guard lock(held_mutex_);
            for (auto& m : held_)
                if (m->offset == 0 || m->offset > position) route(conn, m);
            const bool passed = std::any_of(held_.begin(), held_.end(),
                                            [&](const auto& m) { return m->offset > position; });
            held_.clear();
            held_.shrink_to_fit();
            floor_.store(passed ? 0 : position, std::memory_order_release);
            holding_.store(false, std::memory_order_release);
        }

      private:
        void route(connection_type& conn, const pubsub::MessagePtr& m) {
            for (auto& e : intercepted_) {
                if (e == m->event) {
                    asio::post(conn.get_executor(),
                               [conn = conn.shared_from_this(), m, t = topic_, i = incarnation_] {
                                   conn->handler().deliver_out(t, i, *m);
                               });
                    return;
                }
            }
            auto frame = detail::broadcast_frame(*m, vsn_);
            if (!frame) return;
            conn.handler().endpoint_->instruments().delivered(*frame);
            conn.post_send(std::move(frame), m->priority, m->coalesce_key);
        }

        std::weak_ptr<connection_type> conn_;
        std::string topic_;
        std::uint64_t incarnation_;
        wire::Vsn vsn_;
        std::vector<std::string> intercepted_;
        std::atomic<bool> holding_{false};
        std::atomic<std::uint64_t> floor_{0};  // after release: stragglers at or below it
        plume::detail::SpinLock held_mutex_;
        std::vector<pubsub::MessagePtr> held_;  // while holding (bounded by the join's wait)
    };

    struct Joined {
        std::unique_ptr<Channel<SocketT>> channel;
        // As the client's phx_join carried it, null included (every V1 join):
        // phx_close and phx_error echo it, and a later message with another
        // non-null join_ref is stale (Phoenix's put_channel join_ref). The
        // channel's own pushes and replies use channel->join_ref() instead.
        std::optional<wire::Ref> join_ref;
        // Tells this join from earlier ones on the topic, whatever their refs,
        // for posted infos and intercepted broadcasts that arrive late.
        std::uint64_t incarnation = 0;
        std::shared_ptr<Lane> sub;
        // Only while the join reads its history (most joins never do).
        struct Recovery {
            Payload reply;                         // the join's ok response, not sent yet
            std::vector<nlohmann::json> deferred;  // infos posted to the channel meanwhile
        };
        std::unique_ptr<Recovery> recovery;
    };
    // A channel whose join() said ok, and the reply to send.
    struct Started {
        Joined joined;
        Payload reply;
    };
    // Ordered: a socket joins a few topics, and a tree of a few nodes costs
    // less than a hash table's bucket array (~100 bytes per socket).
    using Channels = std::map<std::string, Joined, std::less<>>;

    template <class M>
    void send(const M& m,
              detail::OutClass c = std::is_same_v<M, wire::Reply> ? detail::OutClass::reply
                                                                  : detail::OutClass::control,
              const SendOptions& how = {}) {
        auto conn = conn_.lock();
        if (!conn) return;
        auto frame = wire::with_serializer(vsn_, [&]<class S>(S) { return S::encode(m); });
        if (!frame) {
            endpoint_->log()(LogLevel::error, "cannot encode message",
                             {{"topic", m.topic}, {"error", frame.error().message()}});
            return;
        }
        const auto key = how.key();
        if (frame->is_binary)
            conn->send_binary(frame->bytes, how.priority, key);
        else
            conn->send_text(frame->bytes, how.priority, key);
        endpoint_->instruments().sent(c, frame->bytes.size());
    }

    // The socket's limits (EndpointConfig::limits), checked before any other
    // work is done for a message. False: it was answered or dropped here.
    bool admit(const wire::Message& msg, std::size_t frame_size) {
        const auto& lim = endpoint_->config().limits;
        auto now = std::chrono::steady_clock::now();
        bool is_join = msg.event == wire::event::join;
        if (!message_bucket_.take(lim.messages, now) ||
            (is_join && !join_bucket_.take(lim.joins, now))) {
            endpoint_->instruments().rate_limited(detail::Scope::socket, msg.topic, msg.event);
            return refuse(msg, detail::Refusal::rate_limited, wire::reason::rate_limited, now);
        }
        if (msg.topic.size() > lim.max_topic_bytes)
            return refuse(msg, detail::Refusal::topic_too_long, wire::reason::topic_too_long, now);
        if (msg.event.size() > lim.max_event_bytes)
            return refuse(msg, detail::Refusal::event_too_long, wire::reason::event_too_long, now);
        if (is_join && frame_size > lim.max_join_bytes)
            return refuse(msg, detail::Refusal::join_too_large, wire::reason::join_too_large, now);
        return true;
    }

    // Answers a refused message (a push without a ref gets nothing) and
    // closes the socket once it has been refused too often: the abuser pays
    // for its abuse, not the other members of its rooms. A refused phx_join
    // is counted under `cause`.
    bool refuse(const wire::Message& msg, detail::Refusal cause, std::string_view why,
                std::chrono::steady_clock::time_point now) {
        const auto& lim = endpoint_->config().limits;
        if (msg.event == wire::event::join)
            endpoint_->instruments().channel_refused(msg.topic, transport_kind, cause, why);
        if (lim.close_after_refused != 0) {
            if (refused_ == 0 || now - refused_since_ > lim.refused_window) {
                refused_since_ = now;
                refused_ = 0;
            }
            if (++refused_ > lim.close_after_refused) {
                endpoint_->log()(LogLevel::warning, "socket closed: rate limited",
                                 {{"reason", why}, {"topic", msg.topic}});
                if (auto conn = conn_.lock())
                    conn->close(transport::to_int(transport::close_code::policy_violation),
                                "rate limited");
                return false;
            }
        }
        if (msg.ref) send(wire::reply_error(msg, wire::reason_payload(why)));
        return false;
    }

    void handle(wire::Message& msg) {
        if (wire::is_heartbeat(msg)) return heartbeat(msg);
        if (msg.event == wire::event::join) return join(msg);
        auto it = channels_.find(msg.topic);
        if (msg.event == wire::event::leave) {
            if (it == channels_.end()) return send(wire::reply_ok(msg));
            if (msg.join_ref && *msg.join_ref != it->second.join_ref) return;  // raced a close
            send(wire::reply_ok(msg));
            return end_channel(it, "left", true);
        }
        if (it == channels_.end()) return send(wire::unmatched_topic_reply(msg));
        // A push for an older incarnation of this channel: Phoenix drops it.
        if (msg.join_ref && *msg.join_ref != it->second.join_ref) return;
        // Replies carry the channel's join_ref, also for a push sent without one.
        msg.join_ref = it->second.channel->join_ref();
        auto& ch = *it->second.channel;
        if (auto now = std::chrono::steady_clock::now(); !ch.admit_event(msg.event, now)) {
            endpoint_->instruments().rate_limited(detail::Scope::channel, msg.topic, msg.event);
            refuse(msg, detail::Refusal::rate_limited, wire::reason::rate_limited, now);
            return;
        }
        ch.current_ref_ = msg.ref;
        InResult result;
        const auto t0 = endpoint_->instruments().start_handle_in();
        try {
            result = ch.handle_in(msg.event, msg.payload);
        } catch (const std::exception& e) {
            endpoint_->instruments().handle_in(msg.topic, msg.event, t0,
                                               detail::HandleResult::crashed);
            return crash(msg.topic, std::string("handle_in raised: ") + e.what());
        } catch (...) {
            endpoint_->instruments().handle_in(msg.topic, msg.event, t0,
                                               detail::HandleResult::crashed);
            return crash(msg.topic, "handle_in raised");
        }
        endpoint_->instruments().handle_in(msg.topic, msg.event, t0, handle_result(result.what));
        ch.current_ref_.reset();
        if (result.what == InResult::kind::noreply) return;
        if (!result.status.empty() || result.what == InResult::kind::reply)
            send(wire::reply(msg, result.status.empty() ? "ok" : result.status,
                             std::move(result.response)));
        if (result.what == InResult::kind::stop) {
            auto again = channels_.find(msg.topic);
            if (again != channels_.end()) end_channel(again, result.stop_reason, true);
        }
    }

    void join(wire::Message& msg) {
        auto factory = endpoint_->router().match(msg.topic);
        if (!factory) {
            endpoint_->log()(LogLevel::warning, "unmatched topic", {{"topic", msg.topic}});
            endpoint_->instruments().channel_refused(msg.topic, transport_kind,
                                                     detail::Refusal::unmatched_topic,
                                                     wire::reason::unmatched_topic);
            return send(wire::unmatched_topic_reply(msg));
        }
        // With an adapter that routes topics between nodes (pubsub::Redis),
        // the join waits until the other nodes' broadcasts of the topic reach
        // this node, so none published after the join reply is missed. The
        // socket handles nothing else meanwhile, as a Phoenix socket process
        // waits for a channel's join.
        if constexpr (pubsub::RoutesTopics<A>) {
            if (auto conn = conn_.lock()) {
                conn->pause_reading();
                const std::string topic = msg.topic;  // msg moves into the callback
                auto endpoint = endpoint_;
                // Posted, never run inside prepare() (which holds PubSub's lock).
                endpoint_->pubsub().prepare(topic, [weak = conn_, endpoint, msg = std::move(msg)](
                                                       std::error_code ec) mutable {
                    auto conn = weak.lock();
                    if (!conn) return endpoint->pubsub().release(msg.topic);
                    auto ex = conn->get_executor();
                    asio::post(ex, [conn = std::move(conn), msg = std::move(msg), ec]() mutable {
                        conn->handler().finish_join(*conn, msg, ec);
                    });
                });
                return;
            }
        }
        join_now(msg, std::move(factory));
    }

    void finish_join(connection_type& conn, wire::Message& msg, std::error_code ec) {
        if (ec) {
            endpoint_->log()(LogLevel::warning, "join not confirmed by the PubSub adapter",
                             {{"topic", msg.topic}, {"error", ec.message()}});
            endpoint_->instruments().adapter_error("join", msg.topic, ec);
        }
        // Still open: join (served locally at least; the adapter routes the
        // topic once it can).
        bool done = true;
        if (conn.is_open()) {
            if (auto factory = endpoint_->router().match(msg.topic))
                done = join_now(msg, std::move(factory));
        }
        endpoint_->pubsub().release(msg.topic);
        if (done) conn.resume_reading();
    }

    // True when the join is done; false while it waits for its history
    // (reading stays paused until finish_recovery()).
    bool join_now(wire::Message& msg, typename Router<SocketT>::Factory factory) {
        // Duplicate join. Phoenix shuts the old channel down first, whatever
        // becomes of the new join, and queues the old join_ref's phx_close in
        // its own mailbox, so on the wire it follows the new join's reply, ok
        // or error (lib/phoenix/socket.ex, v1.7.24 and v1.8.12, handle_in/4
        // for "phx_join" on a topic that has a channel):
        //     :ok = shutdown_duplicate_channel(pid)
        //     {:push, {opcode, payload}, {new_state, new_socket}} = socket_close(pid, ...)
        //     send(self(), {:socket_push, opcode, payload})
        //     handle_in(nil, message, new_state, new_socket)
        // Ending it here also unsubscribes it before the new channel
        // subscribes, so no broadcast reaches the client twice.
        bool replaced = false;
        std::optional<wire::Ref> replaced_join_ref;
        if (auto old = channels_.find(msg.topic); old != channels_.end()) {
            replaced = true;
            replaced_join_ref = old->second.join_ref;
            end_channel(old, "duplicate_join", false);
        }
        const auto t0 = endpoint_->instruments().start_join();
        auto started = start_channel(factory, msg, t0);
        if (started) endpoint_->instruments().channel_joined(msg.topic, transport_kind, t0);
        if (!started) {
            if (replaced) send(wire::phx_close(msg.topic, replaced_join_ref));
            return true;
        }
        if (!endpoint_->config().history.enabled(msg.topic) || !msg.payload.is_json()) {
            // Reply before subscribing, as Phoenix does: the client sees its
            // join ok before any broadcast of the topic.
            send(wire::reply_ok(msg, std::move(started->reply)));
            if (replaced) send(wire::phx_close(msg.topic, replaced_join_ref));
            endpoint_->pubsub().subscribe(msg.topic, started->joined.sub);
            channels_.emplace(msg.topic, std::move(started->joined));
            return true;
        }
        // Recovery: subscribed now, but broadcasts are held back while the
        // history is read (at once in memory; a round trip to Redis); then
        // the reply says where the topic is (and whether what the client
        // missed follows), the missed broadcasts go out, then the held ones
        // after them, none lost or repeated. The socket reads nothing else
        // meanwhile.
        auto conn = conn_.lock();
        if (!conn) return true;
        auto& joined = started->joined;
        joined.sub->hold();
        joined.recovery = std::make_unique<typename Joined::Recovery>();
        joined.recovery->reply = std::move(started->reply);
        endpoint_->pubsub().subscribe(msg.topic, joined.sub);
        const auto incarnation = joined.incarnation;
        channels_.emplace(msg.topic, std::move(joined));
        conn->pause_reading();
        wire::Message head{msg.join_ref, msg.ref, msg.topic, msg.event, Payload{}};
        const bool asked = pubsub::HistoryRequest::from(msg.payload.json()).asked;
        endpoint_->recover(
            msg.topic, msg.payload.json(),
            [weak = conn_, head = std::move(head), incarnation, asked,
             replaced_join_ref = replaced ? replaced_join_ref : std::nullopt,
             replaced](pubsub::HistoryRecovery r) mutable {
                auto conn = weak.lock();
                if (!conn) return;
                auto ex = conn->get_executor();
                asio::post(ex, [conn = std::move(conn), head = std::move(head), incarnation, asked,
                                replaced, replaced_join_ref = std::move(replaced_join_ref),
                                r = std::move(r)]() mutable {
                    conn->handler().finish_recovery(*conn, head, incarnation, asked, replaced,
                                                    replaced_join_ref, r);
                });
            });
        return false;
    }

    // The rest of a join with history, on the strand, once it was read.
    void finish_recovery(connection_type& conn, const wire::Message& head,
                         std::uint64_t incarnation, bool asked, bool replaced,
                         const std::optional<wire::Ref>& replaced_join_ref,
                         const pubsub::HistoryRecovery& r) {
        auto it = channels_.find(head.topic);
        if (it != channels_.end() && it->second.incarnation == incarnation && it->second.recovery) {
            if (r.error) {
                endpoint_->log()(LogLevel::warning, "history not read",
                                 {{"topic", head.topic}, {"error", r.error.message()}});
                endpoint_->instruments().adapter_error("history", head.topic, r.error);
            }
            auto recovery = std::move(it->second.recovery);
            Payload response = std::move(recovery->reply);
            if (response.is_json() && (response.json().is_object() || response.json().is_null())) {
                auto& j = response.json();
                if (j.is_null()) j = nlohmann::json::object();
                if (!r.position.epoch.empty()) {
                    j["offset"] = r.position.offset;
                    j["epoch"] = r.position.epoch;
                }
                if (asked) j["recovered"] = r.recovered;
            }
            send(wire::reply_ok(head, std::move(response)));
            for (const auto& m : r.missed)
                if (auto frame = detail::broadcast_frame(*m, vsn_)) {
                    endpoint_->instruments().delivered(*frame);
                    conn.send(std::move(frame));
                }
            if (replaced) send(wire::phx_close(head.topic, replaced_join_ref));
            // Without a position (history not read) nothing held is dropped.
            it->second.sub->release(conn, r.position.epoch.empty() ? 0 : r.position.offset);
            for (const auto& m : recovery->deferred)
                deliver_info(head.topic, incarnation, m);  // each finds the channel again
        }
        conn.resume_reading();
    }

    // Runs a new channel's join(); the joined channel with its reply, not
    // sent nor subscribed yet, or nothing when the join was refused (the
    // error reply is sent, the refusal recorded; t0 from start_join()).
    // The reply echoes the phx_join's join_ref as it came, null included,
    // while the channel's pushes and replies carry join_ref || ref, as
    // Phoenix's Channel.Server sets socket.join_ref.
    std::optional<Started> start_channel(typename Router<SocketT>::Factory factory,
                                         const wire::Message& msg,
                                         detail::Instruments::clock::time_point t0) {
        auto refused = [&](detail::Refusal cause, std::string_view reason, bool ran) {
            endpoint_->instruments().channel_refused(
                msg.topic, transport_kind, cause, reason,
                ran ? t0 : detail::Instruments::clock::time_point{});
        };
        if (channels_.size() >= endpoint_->config().max_channels_per_socket) {
            refused(detail::Refusal::too_many_channels, wire::reason::too_many_channels, false);
            send(wire::reply_error(msg, wire::reason_payload(wire::reason::too_many_channels)));
            return std::nullopt;
        }
        auto channel = factory();
        channel->topic_ = msg.topic;
        channel->join_ref_ = msg.join_ref ? msg.join_ref : msg.ref;
        channel->incarnation_ = ++last_incarnation_;
        channel->socket_ = &socket_;
        channel->presence_owner_ = endpoint_->next_owner_id();
        channel->host_ = this;
        channel->host_weak_ = host_;
        channel->current_ref_ = msg.ref;
        JoinResult result;
        try {
            result = channel->join(msg.topic, msg.payload);
        } catch (const std::exception& e) {
            endpoint_->log()(LogLevel::error, "join crashed",
                             {{"topic", msg.topic}, {"what", e.what()}});
            refused(detail::Refusal::join_crashed, wire::reason::join_crashed, true);
            send(wire::reply_error(msg, wire::reason_payload(wire::reason::join_crashed)));
            return std::nullopt;
        } catch (...) {
            refused(detail::Refusal::join_crashed, wire::reason::join_crashed, true);
            send(wire::reply_error(msg, wire::reason_payload(wire::reason::join_crashed)));
            return std::nullopt;
        }
        channel->current_ref_.reset();
        if (!result.ok) {
            std::string_view reason;
            if (result.response.is_json() && result.response.json().is_object()) {
                auto it = result.response.json().find("reason");
                if (it != result.response.json().end() && it->is_string())
                    reason = it->template get_ref<const std::string&>();
            }
            refused(detail::Refusal::join, reason, true);
            send(wire::reply_error(msg, std::move(result.response)));
            return std::nullopt;
        }
        auto lane = std::make_shared<Lane>(conn_, msg.topic, channel->incarnation_, vsn_,
                                           channel->intercepted());
        auto incarnation = channel->incarnation_;
        return Started{Joined{std::move(channel), msg.join_ref, incarnation, std::move(lane), {}},
                       std::move(result.response)};
    }

    // Ends a channel: unsubscribe, terminate, and tell the client (phx_close
    // when graceful; crash() sends phx_error instead).
    void end_channel(typename Channels::iterator it, std::string_view reason, bool tell_client) {
        Joined joined = std::move(it->second);
        std::string topic = it->first;
        channels_.erase(it);
        endpoint_->instruments().channel_left(topic, reason);
        endpoint_->pubsub().unsubscribe(topic, joined.sub.get());
        try {
            joined.channel->terminate(reason);
        } catch (...) {
            endpoint_->log()(LogLevel::error, "terminate raised", {{"topic", topic}});
        }
        // Like Phoenix monitoring the channel process: its presences leave.
        endpoint_->presence().untrack_all(joined.channel->presence_owner_);
        if (tell_client) send(wire::phx_close(topic, joined.join_ref));
    }

    // A heartbeat's reply, and a sample of the send queue's depth (a cheap
    // read, once per socket every 30 s with phoenix.js).
    void heartbeat(const wire::Message& msg) {
        send(wire::heartbeat_reply(msg));
        if constexpr (requires(connection_type & c) { c.queued_bytes(); }) {
            if (auto conn = conn_.lock()) {
                endpoint_->instruments().queue_depth(conn->queued_bytes());
                record_lanes(*conn);
            }
        }
    }

    static detail::HandleResult handle_result(InResult::kind k) noexcept {
        return k == InResult::kind::noreply ? detail::HandleResult::noreply
               : k == InResult::kind::reply ? detail::HandleResult::reply
                                            : detail::HandleResult::stop;
    }

    // Adds what the connection's lanes did since the last call to the
    // metrics: at heartbeats, at the close and when the connection is done,
    // so that the totals are exact once every connection ended.
    void record_lanes(connection_type& conn) {
        if constexpr (requires { conn.lane_stats(); }) {
            if (!endpoint_->instruments().recording()) return;
            const auto now = conn.lane_stats();
            if (!lanes_seen_) {
                // Most connections never use a lane other than normal.
                if ((now.low_dropped | now.low_coalesced | now.low_sent | now.low_batches |
                     now.fell_behind) == 0)
                    return;
                lanes_seen_ = std::make_unique<transport::LaneStats>();
            }
            auto& seen = *lanes_seen_;
            auto since = [](std::uint64_t n, std::uint64_t before) {
                return n >= before ? n - before : 0;
            };
            endpoint_->instruments().lanes({since(now.low_dropped, seen.low_dropped),
                                            since(now.low_coalesced, seen.low_coalesced),
                                            since(now.low_sent, seen.low_sent),
                                            since(now.low_batches, seen.low_batches),
                                            since(now.fell_behind, seen.fell_behind)});
            seen = now;
        }
    }

    void crash(const std::string& topic, const std::string& why) {
        endpoint_->log()(LogLevel::error, "channel crashed", {{"topic", topic}, {"why", why}});
        auto it = channels_.find(topic);
        if (it == channels_.end()) return;
        auto join_ref = it->second.join_ref;
        endpoint_->instruments().channel_crashed(topic, why);
        end_channel(it, "crash", false);
        send(wire::phx_error(topic, join_ref));
    }

  public:
    // Called on the strand for posted infos and intercepted broadcasts.
    void deliver_info(const std::string& topic, std::uint64_t incarnation,
                      const nlohmann::json& m) {
        auto it = channels_.find(topic);
        if (it == channels_.end() || it->second.incarnation != incarnation) return;
        // Its join reply is not out yet (history being read): the info waits,
        // as a Phoenix channel handles its mailbox only after join/3 returned.
        if (it->second.recovery) return it->second.recovery->deferred.push_back(m);
        try {
            it->second.channel->handle_info(m);
        } catch (const std::exception& e) {
            crash(topic, std::string("handle_info raised: ") + e.what());
        } catch (...) {
            crash(topic, "handle_info raised");
        }
    }

    void deliver_out(const std::string& topic, std::uint64_t incarnation,
                     const pubsub::Message& m) {
        auto it = channels_.find(topic);
        if (it == channels_.end() || it->second.incarnation != incarnation) return;
        try {
            it->second.channel->handle_out(m.event, detail::from_pubsub(m));
        } catch (const std::exception& e) {
            crash(topic, std::string("handle_out raised: ") + e.what());
        } catch (...) {
            crash(topic, "handle_out raised");
        }
    }

  private:
    endpoint_type* endpoint_;
    SocketT socket_{};
    wire::Vsn vsn_ = wire::Vsn::v2;
    Channels channels_;
    std::uint64_t last_incarnation_ = 0;
    std::weak_ptr<connection_type> conn_;
    std::weak_ptr<detail::ChannelHost> host_;
    bool opened_ = false;
    std::string id_topic_;
    pubsub::SubscriberPtr id_sub_;
    TokenBucket message_bucket_;
    TokenBucket join_bucket_;
    std::uint32_t refused_ = 0;  // within the window that began at refused_since_
    std::chrono::steady_clock::time_point refused_since_{};
    // As record_lanes() last added them; made when a lane was first used.
    std::unique_ptr<transport::LaneStats> lanes_seen_;
};

}  // namespace plume::server
