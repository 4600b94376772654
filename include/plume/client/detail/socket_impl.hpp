// plume/client/detail/socket_impl.hpp — SocketImpl, phoenix.js's
// socket.js: the connection with reconnect and backoff, the heartbeat, the
// send buffer while offline, and routing of incoming messages to channels.
#pragma once

#include <asio.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "plume/client/detail/channel_impl.hpp"
#include "plume/client/detail/timer.hpp"
#include "plume/client/error.hpp"
#include "plume/client/options.hpp"
#include "plume/detail/base64.hpp"
#include "plume/transport/client.hpp"
#include "plume/wire/v1_json.hpp"
#include "plume/wire/v2_json.hpp"
#include "plume/wire/vsn.hpp"

namespace plume::client::detail {

// --------------------------------------------------------------- Socket --

class SocketImpl : public std::enable_shared_from_this<SocketImpl> {
  public:
    // The transport's handler: forwards to the socket while it is the
    // socket's current connection (same strand, so no locking).
    struct ConnHandler {
        std::weak_ptr<SocketImpl> socket;
        std::uint64_t generation = 0;

        void on_open(auto&) {
            if (auto s = socket.lock()) s->transport_open(generation);
        }
        void on_message(auto&, transport::opcode op, std::string_view data) {
            if (auto s = socket.lock()) s->transport_message(generation, op, data);
        }
        void on_close(auto&, std::uint16_t code, std::string_view why) {
            if (auto s = socket.lock()) s->transport_closed(generation, code, std::string(why));
        }
        void on_handshake_error(auto&, std::string_view what) {
            if (auto s = socket.lock()) s->connect_failed(generation, std::string(what));
        }
    };
    using TcpConnection = transport::Connection<ConnHandler>;
    using TlsConnection = transport::Connection<ConnHandler, transport::TlsSocket>;

    // The connection of the moment, over TCP (ws://) or TLS (wss://).
    class Connection {
      public:
        Connection() = default;
        template <class C>
        explicit Connection(std::shared_ptr<C> c) : c_(std::move(c)) {}
        explicit operator bool() const noexcept { return c_.index() != 0; }
        void close(std::uint16_t code = transport::to_int(transport::close_code::normal),
                   std::string_view why = {}) {
            visit([&](auto& c) { c->close(code, why); });
        }
        void send_text(std::string_view s) {
            visit([&](auto& c) { c->send_text(s); });
        }
        void send_binary(std::string_view s) {
            visit([&](auto& c) { c->send_binary(s); });
        }

      private:
        template <class F>
        void visit(F&& f) {
            if (auto* t = std::get_if<std::shared_ptr<TcpConnection>>(&c_)) return f(*t);
            if (auto* t = std::get_if<std::shared_ptr<TlsConnection>>(&c_)) return f(*t);
        }
        std::variant<std::monostate, std::shared_ptr<TcpConnection>, std::shared_ptr<TlsConnection>>
            c_;
    };

    using OpenCallback = std::function<void()>;
    using CloseCallback = std::function<void(std::uint16_t, const std::string&)>;
    using ErrorCallback = std::function<void(std::error_code, const std::string&)>;
    using MessageCallback = std::function<void(const Event&)>;

    template <class F>
    struct Listener {
        std::uint64_t ref;
        F fn;
    };

    SocketImpl(const asio::any_io_executor& executor, SocketOptions options)
        : strand_(asio::make_strand(executor)),
          options_(std::move(options)),
          transport_options_(std::make_shared<const transport::Options>(options_.websocket)),
          heartbeat_timer_(strand_),
          heartbeat_timeout_timer_(strand_),
          connect_timer_(strand_),
          reconnect_timer_(strand_, jittered(options_.reconnect_after, options_.reconnect_jitter)) {
        auto vsn = wire::serializer_for_vsn(options_.vsn);
        if (!vsn) throw std::invalid_argument("unsupported vsn \"" + options_.vsn + "\"");
        vsn_ = *vsn;
        auto url = transport::parse_url(endpoint_url(options_.url, Json::object(), options_.vsn));
        if (!url) throw std::invalid_argument("not a ws:// URL: " + options_.url);
        if (!options_.local_address.empty()) {
            std::error_code ec;
            local_address_ = asio::ip::make_address(options_.local_address, ec);
            if (ec) throw std::invalid_argument("not an IP address: " + options_.local_address);
        }
        if (!options_.reconnect_after) options_.reconnect_after = phoenix_reconnect_after;
        if (!options_.rejoin_after) options_.rejoin_after = phoenix_rejoin_after;
    }

    // ------------------------------------------------------ any thread --

    const Strand& strand() const noexcept { return strand_; }
    const SocketOptions& options() const noexcept { return options_; }
    ConnectionState connection_state() const noexcept { return conn_state_.load(); }
    bool is_connected() const noexcept { return conn_state_.load() == ConnectionState::open; }
    std::uint64_t next_callback_ref() noexcept { return ++next_callback_ref_; }

    std::string current_endpoint_url() const {
        return endpoint_url(options_.url,
                            options_.params_provider ? options_.params_provider() : options_.params,
                            options_.vsn);
    }

    // ---------------------------------------------------------- strand --

    std::string make_ref() { return std::to_string(++ref_); }

    void connect() {
        if (shut_down_ || conn_) return;
        ++connect_clock_;
        close_was_clean_ = false;
        // A pending reconnect would replace this attempt; its tries are kept
        // until a connection opens.
        reconnect_timer_.cancel();
        auto g = ++generation_;

        auto url = transport::parse_url(current_endpoint_url());
        if (!url) {
            post_connect_failure(g, "not a ws:// or wss:// URL: " + options_.url);
            return;
        }
        transport::ClientRequest request;
        request.host = url->host.find(':') != std::string::npos ? "[" + url->host + "]" : url->host;
        if (url->port != (url->scheme == "wss" ? 443 : 80))
            request.host += ":" + std::to_string(url->port);
        request.target = url->target;
        std::optional<std::string> token =
            options_.auth_token_provider ? options_.auth_token_provider() : options_.auth_token;
        if (token) {
            // phoenix.js: btoa(token) without '=' — standard alphabet, unpadded.
            request.subprotocols = {
                "phoenix", "base64url.bearer.phx." + plume::detail::base64_encode_unpadded(*token)};
        }
        for (auto& [k, v] : options_.headers)
            request.headers.emplace_back(k, v);

        conn_state_ = ConnectionState::connecting;
        auto self = shared_from_this();
        connect_timer_.start(options_.connect_timeout, [self, g] { self->connect_timed_out(g); });
        if (url->scheme == "wss") {
            std::shared_ptr<asio::ssl::context> tls;
            try {
                tls = tls_context();
            } catch (const std::exception& e) {
                conn_ = Connection(std::make_shared<TcpConnection>(
                    asio::ip::tcp::socket(strand_), transport_options_, transport::role::client,
                    ConnHandler{weak_from_this(), g}));
                return post_connect_failure(g, e.what());
            }
            auto conn = std::make_shared<TlsConnection>(
                transport::TlsSocket(asio::ip::tcp::socket(strand_), *tls), transport_options_,
                transport::role::client, ConnHandler{weak_from_this(), g});
            transport::detail::prepare_client_tls(conn->next_layer(), url->host);
            conn_ = Connection(conn);
            return open_connection(g, std::move(conn), *url, std::move(request), std::move(tls));
        }
        auto conn = std::make_shared<TcpConnection>(asio::ip::tcp::socket(strand_),
                                                    transport_options_, transport::role::client,
                                                    ConnHandler{weak_from_this(), g});
        conn_ = Connection(conn);
        open_connection(g, std::move(conn), *url, std::move(request), nullptr);
    }

    // The TLS context for wss:// (SocketOptions::tls_context, or one made
    // from SocketOptions::tls on first use). Throws for a CA it cannot read.
    std::shared_ptr<asio::ssl::context> tls_context() {
        if (options_.tls_context) return options_.tls_context;
        if (!tls_context_) tls_context_ = transport::client_tls_context(options_.tls);
        return tls_context_;
    }

    // Resolves, connects and starts the handshake of `conn`. `keep` holds
    // what its stream needs alive (the TLS context) until it is done.
    template <class Conn>
    void open_connection(std::uint64_t g, std::shared_ptr<Conn> conn, const transport::Url& url,
                         transport::ClientRequest request, std::shared_ptr<void> keep) {
        auto self = shared_from_this();
        resolver_ = std::make_shared<asio::ip::tcp::resolver>(strand_);
        resolver_->async_resolve(
            url.host, std::to_string(url.port),
            [self, g, conn, keep, request = std::move(request), resolver = resolver_](
                std::error_code ec, asio::ip::tcp::resolver::results_type results) mutable {
                if (g != self->generation_) return;
                if (ec) return self->connect_failed(g, "resolve: " + ec.message());
                transport::detail::async_connect(
                    *conn, results, self->local_address_,
                    [self, g, conn, keep,
                     request = std::move(request)](std::error_code ec2) mutable {
                        if (g != self->generation_) return;
                        if (ec2) return self->connect_failed(g, "connect: " + ec2.message());
                        conn->start_client(std::move(request));
                    });
            });
    }

    void disconnect(std::uint16_t code, const std::string& why) {
        auto self = shared_from_this();
        ++connect_clock_;
        close_was_clean_ = true;
        reconnect_timer_.reset();
        if (!conn_) return;
        bool was_open = is_connected();
        auto conn = detach();
        conn.close(code, why);
        trigger_chan_error("connection_closed");
        if (was_open) notify_close(code, why);
    }

    /// The Socket handle is gone: stop everything and release every callback.
    void shutdown() {
        if (shut_down_) return;
        shut_down_ = true;
        close_was_clean_ = true;
        reconnect_timer_.reset();
        if (conn_) detach().close(transport::to_int(transport::close_code::normal), "");
        auto channels = std::move(channels_);
        channels_.clear();
        for (auto& ch : channels)
            ch->abandon();
        auto buffer = std::move(send_buffer_);
        send_buffer_.clear();
        for (auto& b : buffer)
            if (auto p = b.push.lock()) p->abandon();
        // Pushes of channels that closed earlier may still wait for a reply.
        auto timed = std::move(timed_pushes_);
        timed_pushes_.clear();
        for (auto& weak : timed)
            if (auto p = weak.lock()) p->abandon();
        open_listeners_.clear();
        error_listeners_.clear();
        on_open_.clear();
        on_close_.clear();
        on_error_.clear();
        on_message_.clear();
        pings_.clear();
    }

    /// phoenix.js's socket.push: send now, or buffer until the next open.
    void push(wire::Message m, const std::shared_ptr<ChannelImpl>& channel,
              const std::shared_ptr<PushImpl>& p) {
        if (is_connected()) return send(m, channel.get(), p.get());
        // What can never be sent is dropped now rather than at the flush
        // (a join_ref never becomes current again, a closed channel stays closed).
        std::erase_if(send_buffer_, [this](const Buffered& b) { return outdated(b); });
        send_buffer_.push_back({std::move(m), channel, channel != nullptr, p});
    }

    void add_channel(const std::shared_ptr<ChannelImpl>& ch) {
        if (shut_down_) return;
        channels_.push_back(ch);
        std::weak_ptr<ChannelImpl> weak = ch;
        ch->open_listener_ = next_callback_ref();
        open_listeners_.push_back({ch->open_listener_, [weak] {
                                       if (auto c = weak.lock()) c->on_socket_open();
                                   }});
        ch->error_listener_ = next_callback_ref();
        error_listeners_.push_back({ch->error_listener_, [weak] {
                                        if (auto c = weak.lock()) c->on_socket_error();
                                    }});
    }

    /// phoenix.js's socket.remove (the channel closed).
    void remove(ChannelImpl& ch) {
        remember_departed(ch.topic_, ch.join_ref());
        off(ch.open_listener_);
        off(ch.error_listener_);
        std::erase_if(channels_,
                      [&](const std::shared_ptr<ChannelImpl>& c) { return c.get() == &ch; });
        ch.release_callbacks();
    }

    /// Before a join: leave any other channel object joined to the same topic.
    void leave_open_topic(const std::string& topic, const ChannelImpl* except) {
        auto channels = channels_;
        for (auto& ch : channels) {
            if (ch.get() == except || ch->topic_ != topic) continue;
            if (ch->is(ChannelState::joined) || ch->is(ChannelState::joining)) {
                ch->leave(std::make_shared<PushImpl>(
                    strand_, ch, std::string(leave_event), [] { return wire::Payload(); },
                    ch->timeout()));
                return;
            }
        }
    }

    /// Remembers a push whose timeout runs, so that shutdown() can stop it
    /// (the channel that made it may have closed meanwhile).
    void track(std::weak_ptr<PushImpl> p) {
        if (timed_pushes_.size() >= prune_at_) {
            std::erase_if(timed_pushes_, [](const auto& w) { return w.expired(); });
            prune_at_ = std::max<std::size_t>(64, timed_pushes_.size() * 2);
        }
        timed_pushes_.push_back(std::move(p));
    }

    bool ping(std::function<void(milliseconds)> callback) {
        if (!is_connected()) return false;
        auto ref = make_ref();
        pings_[ref] = {std::chrono::steady_clock::now(), std::move(callback)};
        send(wire::heartbeat(ref), nullptr, nullptr);
        return true;
    }

    void report(error e, const std::string& detail) {
        auto callbacks = on_error_;
        auto ec = make_error_code(e);
        for (auto& l : callbacks)
            l.fn(ec, detail);
    }

    void add_open(std::uint64_t ref, OpenCallback f) { on_open_.push_back({ref, std::move(f)}); }
    void add_close(std::uint64_t ref, CloseCallback f) { on_close_.push_back({ref, std::move(f)}); }
    void add_error(std::uint64_t ref, ErrorCallback f) { on_error_.push_back({ref, std::move(f)}); }
    void add_message(std::uint64_t ref, MessageCallback f) {
        on_message_.push_back({ref, std::move(f)});
    }
    void off(std::uint64_t ref) {
        auto drop = [ref](const auto& l) { return l.ref == ref; };
        std::erase_if(open_listeners_, drop);
        std::erase_if(error_listeners_, drop);
        std::erase_if(on_open_, drop);
        std::erase_if(on_close_, drop);
        std::erase_if(on_error_, drop);
        std::erase_if(on_message_, drop);
    }

    std::size_t buffered_pushes_ = 0;
    bool shut_down_ = false;

  private:
    struct Buffered {
        wire::Message message;
        std::weak_ptr<ChannelImpl> channel;
        bool for_channel = false;
        std::weak_ptr<PushImpl> push;
    };

    static Backoff jittered(Backoff calc, double jitter) {
        if (!calc) calc = phoenix_reconnect_after;
        if (jitter <= 0) return calc;
        jitter = std::min(jitter, 1.0);
        return [calc = std::move(calc), jitter,
                rng = std::minstd_rand(std::random_device{}())](unsigned tries) mutable {
            std::uniform_real_distribution<double> factor(1.0 - jitter, 1.0);
            return milliseconds(static_cast<milliseconds::rep>(
                static_cast<double>(calc(tries).count()) * factor(rng)));
        };
    }

    // phoenix.js's isOutdated: made for an earlier join, or the channel left.
    static bool outdated(const wire::Message& m, const ChannelImpl* ch) {
        return m.join_ref != ch->join_ref() || ch->is(ChannelState::closed);
    }
    static bool outdated(const Buffered& b) {
        if (!b.for_channel) return false;
        auto ch = b.channel.lock();
        return !ch || outdated(b.message, ch.get());
    }

    void send(const wire::Message& m, ChannelImpl* channel, PushImpl* p) {
        if (!conn_ || !is_connected()) return;
        // A leave still goes out after its channel closed locally.
        if (channel && m.event != leave_event && outdated(m, channel)) return;
        auto frame = vsn_ == wire::Vsn::v1 ? wire::V1Json::encode_for_server(m)
                                           : wire::V2Json::encode_for_server(m);
        if (!frame) {
            report(error::invalid_payload,
                   m.topic + " " + m.event + ": " + frame.error().message());
            if (p) p->trigger("error", reason(frame.error().message()));
            return;
        }
        if (frame->is_binary)
            conn_.send_binary(frame->bytes);
        else
            conn_.send_text(frame->bytes);
    }

    void flush_send_buffer() {
        if (!is_connected() || send_buffer_.empty()) return;
        auto buffer = std::move(send_buffer_);
        send_buffer_.clear();
        for (auto& b : buffer) {
            if (outdated(b)) continue;
            auto ch = b.channel.lock();
            auto p = b.push.lock();
            send(b.message, ch.get(), p.get());
        }
    }

    // The current connection stops being ours: later events from it are
    // ignored (generation), and the heartbeats stop.
    Connection detach() {
        auto conn = std::move(conn_);
        conn_ = Connection();
        ++generation_;
        conn_state_ = ConnectionState::closed;
        connect_timer_.cancel();
        clear_heartbeats();
        pings_.clear();
        if (resolver_) {
            resolver_->cancel();
            resolver_.reset();
        }
        return conn;
    }

    void post_connect_failure(std::uint64_t g, std::string what) {
        asio::post(strand_, [self = shared_from_this(), g, what = std::move(what)] {
            self->connect_failed(g, what);
        });
    }

    // ------------------------------------------------- transport events --

    void transport_open(std::uint64_t g) {
        if (g != generation_) return;
        auto self = shared_from_this();
        conn_state_ = ConnectionState::open;
        connect_timer_.cancel();
        close_was_clean_ = false;
        flush_send_buffer();
        reconnect_timer_.reset();
        reset_heartbeat();
        // Channels and user callbacks, in registration order, as phoenix.js.
        std::vector<std::pair<std::uint64_t, std::function<void()>>> ordered;
        for (auto& l : open_listeners_)
            ordered.emplace_back(l.ref, l.fn);
        for (auto& l : on_open_)
            ordered.emplace_back(l.ref, l.fn);
        std::sort(ordered.begin(), ordered.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        for (auto& [ref, fn] : ordered)
            fn();
    }

    void transport_message(std::uint64_t g, transport::opcode op, std::string_view data) {
        if (g != generation_ || !is_connected()) return;
        auto self = shared_from_this();
        wire::FrameView frame(op == transport::opcode::binary, data);
        auto decoded = vsn_ == wire::Vsn::v1 ? wire::V1Json::decode_from_server(frame)
                                             : wire::V2Json::decode_from_server(frame);
        if (!decoded) {
            report(error::malformed_frame, decoded.error().message() + ": " + preview(data));
            return;
        }
        Event ev = to_event(std::move(*decoded));

        bool answered = false;  // a heartbeat or ping reply
        if (ev.ref && pending_heartbeat_ref_ && *ev.ref == *pending_heartbeat_ref_) {
            clear_heartbeats();
            schedule_heartbeat();
            answered = true;
        }

        bool topic_known = false, member = false, handled = false;
        auto channels = channels_;
        for (auto& ch : channels) {
            if (ch->topic_ != ev.topic) continue;
            topic_known = true;
            if (!ch->is_member(ev.topic, ev.join_ref)) continue;
            member = true;
            if (ch->trigger(ev)) handled = true;
        }
        auto message_callbacks = on_message_;
        for (auto& l : message_callbacks)
            l.fn(ev);
        if (ev.ref) {
            if (auto it = pings_.find(*ev.ref); it != pings_.end()) {
                auto ping = std::move(it->second);
                pings_.erase(it);
                ping.callback(std::chrono::duration_cast<milliseconds>(
                    std::chrono::steady_clock::now() - ping.sent));
                answered = true;
            }
        }
        if (answered || shut_down_) return;
        bool is_reply = ev.event == reply_event;
        if (!topic_known) {
            if (departed(ev.topic, ev.join_ref)) return;  // e.g. the reply to a leave
            if (is_reply)
                return report(error::unexpected_reply, "reply " + ev.status + " for ref " +
                                                           ev.ref.value_or("null") + " on " +
                                                           ev.topic + ", which has no channel");
            if (message_callbacks.empty())
                report(error::unknown_topic, ev.event + " on " + ev.topic);
            return;
        }
        if (!member) return;  // for an earlier join: dropped, as phoenix.js does
        if (handled) return;
        if (is_reply)
            report(error::unexpected_reply, "reply " + ev.status + " for ref " +
                                                ev.ref.value_or("null") + " on " + ev.topic +
                                                ": no push is waiting for it");
        else if (message_callbacks.empty())
            report(error::unhandled_event, ev.event + " on " + ev.topic);
    }

    void transport_closed(std::uint64_t g, std::uint16_t code, const std::string& why) {
        if (g != generation_) return;
        auto self = shared_from_this();
        detach();
        auto clock = connect_clock_;
        if (code == transport::to_int(transport::close_code::abnormal)) {
            report(error::connection_lost, why);
            notify_transport_error();
            trigger_chan_error("connection_error");
        } else if (code == transport::to_int(transport::close_code::message_too_big)) {
            report(error::message_too_big, std::to_string(code) + " " + why);
        } else if (code == transport::to_int(transport::close_code::protocol_error) ||
                   code == transport::to_int(transport::close_code::invalid_payload)) {
            report(error::protocol_error, std::to_string(code) + " " + why);
        }
        trigger_chan_error("connection_closed");
        maybe_reconnect(clock);
        notify_close(code, why);
    }

    void connect_failed(std::uint64_t g, const std::string& what) {
        if (g != generation_) return;
        auto self = shared_from_this();
        detach();
        auto clock = connect_clock_;
        report(error::connect_failed, what);
        notify_transport_error();
        trigger_chan_error("connection_error");
        maybe_reconnect(clock);
        notify_close(transport::to_int(transport::close_code::abnormal), what);
    }

    void connect_timed_out(std::uint64_t g) {
        if (g != generation_ || conn_state_ != ConnectionState::connecting) return;
        auto conn = conn_;
        connect_failed(
            g, "no connection within " + std::to_string(options_.connect_timeout.count()) + " ms");
        if (conn) conn.close();
    }

    // Reconnect unless the user disconnected, or connected again, meanwhile.
    void maybe_reconnect(std::uint64_t clock) {
        if (clock != connect_clock_ || close_was_clean_ || shut_down_ || conn_) return;
        reconnect_timer_.schedule([self = shared_from_this()] { self->connect(); });
    }

    void notify_close(std::uint16_t code, const std::string& why) {
        auto callbacks = on_close_;
        for (auto& l : callbacks)
            l.fn(code, why);
    }

    void notify_transport_error() {
        auto listeners = error_listeners_;
        for (auto& l : listeners)
            l.fn();
    }

    /// Errors the channels that were using the connection, so that they
    /// rejoin over the next one (phoenix.js's triggerChanError).
    void trigger_chan_error(std::string_view why) {
        std::vector<std::pair<std::shared_ptr<ChannelImpl>, std::optional<std::string>>> joins;
        for (auto& ch : channels_)
            joins.emplace_back(ch, ch->join_ref());
        for (auto& [ch, join_ref] : joins) {
            // An earlier callback may have rejoined this channel already.
            if (ch->join_ref() != join_ref) continue;
            if (ch->is(ChannelState::errored) || ch->is(ChannelState::leaving) ||
                ch->is(ChannelState::closed))
                continue;
            ch->trigger(Event{ch->topic_, std::string(error_event),
                              Json{{"reason", why}, {"source", "transport"}}, std::nullopt,
                              std::nullopt, ""});
        }
    }

    // ------------------------------------------------------- heartbeat --

    void reset_heartbeat() {
        clear_heartbeats();
        schedule_heartbeat();
    }
    void schedule_heartbeat() {
        if (options_.heartbeat_interval.count() <= 0) return;
        heartbeat_timer_.start(options_.heartbeat_interval,
                               [self = shared_from_this()] { self->send_heartbeat(); });
    }
    void clear_heartbeats() {
        heartbeat_timer_.cancel();
        heartbeat_timeout_timer_.cancel();
        pending_heartbeat_ref_.reset();
    }
    void send_heartbeat() {
        if (!is_connected()) return;
        pending_heartbeat_ref_ = make_ref();
        send(wire::heartbeat(*pending_heartbeat_ref_), nullptr, nullptr);
        heartbeat_timeout_timer_.start(options_.heartbeat_timeout, [self = shared_from_this()] {
            self->heartbeat_timed_out();
        });
    }
    void heartbeat_timed_out() {
        if (!pending_heartbeat_ref_) return;
        pending_heartbeat_ref_.reset();
        auto self = shared_from_this();
        close_was_clean_ = false;
        report(error::heartbeat_timeout, "no heartbeat reply within " +
                                             std::to_string(options_.heartbeat_timeout.count()) +
                                             " ms");
        if (!conn_) return;  // an error callback disconnected
        // The connection is presumed dead: close it now, error the channels,
        // reconnect (phoenix.js closes with 1000 "heartbeat timeout").
        constexpr std::uint16_t code = 1000;
        const std::string why = "heartbeat timeout";
        detach().close(code, why);
        auto clock = connect_clock_;
        trigger_chan_error("heartbeat_timeout");
        maybe_reconnect(clock);
        notify_close(code, why);
    }

    // ---------------------------------------------------------- helpers --

    static Event to_event(wire::ServerMessage m) {
        if (auto* r = std::get_if<wire::Reply>(&m))
            return Event{std::move(r->topic), std::string(reply_event), std::move(r->response),
                         std::move(r->ref),   std::move(r->join_ref),   std::move(r->status)};
        auto& msg = std::get<wire::Message>(m);
        return Event{std::move(msg.topic), std::move(msg.event),    std::move(msg.payload),
                     std::move(msg.ref),   std::move(msg.join_ref), std::string()};
    }

    // Channels that closed recently: the server may still send a few
    // messages for them (the leave's reply, phx_close, racing broadcasts).
    void remember_departed(const std::string& topic, const std::optional<std::string>& join_ref) {
        departed_.emplace_back(topic, join_ref);
        if (departed_.size() > 64) departed_.pop_front();
    }
    bool departed(const std::string& topic, const std::optional<std::string>& join_ref) const {
        for (auto& [t, j] : departed_)
            if (t == topic && (!join_ref || join_ref->empty() || join_ref == j)) return true;
        return false;
    }

    struct Ping {
        std::chrono::steady_clock::time_point sent;
        std::function<void(milliseconds)> callback;
    };

    Strand strand_;
    SocketOptions options_;
    std::shared_ptr<const transport::Options> transport_options_;
    std::optional<asio::ip::address> local_address_;
    wire::Vsn vsn_ = wire::Vsn::v2;
    std::atomic<ConnectionState> conn_state_{ConnectionState::closed};
    std::atomic<std::uint64_t> next_callback_ref_{0};

    Connection conn_;
    std::shared_ptr<asio::ssl::context> tls_context_;  // made from options_.tls on first use
    std::shared_ptr<asio::ip::tcp::resolver> resolver_;
    std::uint64_t generation_ = 0;     // which connection events are for
    std::uint64_t connect_clock_ = 0;  // bumped by connect()/disconnect()
    bool close_was_clean_ = true;      // the user disconnected
    std::uint64_t ref_ = 0;

    std::vector<std::shared_ptr<ChannelImpl>> channels_;
    std::deque<Buffered> send_buffer_;
    std::deque<std::pair<std::string, std::optional<std::string>>> departed_;
    std::unordered_map<std::string, Ping> pings_;
    std::vector<std::weak_ptr<PushImpl>> timed_pushes_;
    std::size_t prune_at_ = 64;

    Timer heartbeat_timer_;
    Timer heartbeat_timeout_timer_;
    std::optional<std::string> pending_heartbeat_ref_;
    Timer connect_timer_;
    BackoffTimer reconnect_timer_;

    std::vector<Listener<std::function<void()>>> open_listeners_;   // channels
    std::vector<Listener<std::function<void()>>> error_listeners_;  // channels
    std::vector<Listener<OpenCallback>> on_open_;
    std::vector<Listener<CloseCallback>> on_close_;
    std::vector<Listener<ErrorCallback>> on_error_;
    std::vector<Listener<MessageCallback>> on_message_;
};

}  // namespace plume::client::detail
