// plume/transport/websocket.hpp — one WebSocket connection over Asio, either
// role, templated on the next layer: plain TCP (asio::ip::tcp::socket, the
// default), TLS (TlsSocket), or a stream of the host's with its own
// StreamTraits (stream.hpp).
//
// Events go to a Handler object that lives inside the connection (no extra
// allocation, no virtual calls):
//
//   struct Echo {
//       void on_open(auto& conn) {}
//       void on_message(auto& conn, plume::transport::opcode op, std::string_view data) {
//           op == plume::transport::opcode::text ? conn.send_text(data) : conn.send_binary(data);
//       }
//       void on_close(auto& conn, std::uint16_t code, std::string_view reason) {}
//       // optional, server role: inspect the upgrade and accept or refuse it
//       void on_upgrade(const plume::transport::UpgradeRequest& req,
//                       plume::transport::UpgradeResponse& res) {}
//   };
//
// Threading: every handler call runs on the connection's executor (a strand
// when created by transport::Server). Call send/close/ping on that executor;
// from other threads use post_send()/post_close(), which hop onto it.
//
// Performance habits: reads go into one buffer per thread (an idle
// connection holds no read buffer, only a partial frame when one is pending);
// frames to send are immutable shared buffers, so one broadcast frame serves
// every connection; frames queued while a write is in flight leave together
// in one gathered write; the send queue is bounded (see Options).
#pragma once

#include <asio.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <cstdint>
#include <functional>
#include <iterator>
#include <limits>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "plume/detail/spin_lock.hpp"
#include "plume/transport/close_code.hpp"
#include "plume/transport/deflate.hpp"
#include "plume/transport/detail/deadlines.hpp"
#include "plume/transport/detail/io_buffers.hpp"
#include "plume/transport/detail/readiness.hpp"
#include "plume/transport/detail/registry.hpp"
#include "plume/transport/detail/tcp_queue.hpp"
#include "plume/transport/drain_turns.hpp"
#include "plume/transport/error.hpp"
#include "plume/transport/frame.hpp"
#include "plume/transport/handler.hpp"
#include "plume/transport/handshake.hpp"
#include "plume/transport/http.hpp"
#include "plume/transport/http_exchange.hpp"
#include "plume/transport/lane_ticker.hpp"
#include "plume/transport/options.hpp"
#include "plume/transport/parser.hpp"
#include "plume/transport/priority.hpp"
#include "plume/transport/stream.hpp"
#include "plume/transport/upgrade.hpp"

namespace plume::transport {

template <class Handler, class NextLayer = asio::ip::tcp::socket>
class Connection : public std::enable_shared_from_this<Connection<Handler, NextLayer>> {
  public:
    using executor_type = typename NextLayer::executor_type;
    using registry_type = detail::Registry<Connection>;
    using traits = StreamTraits<NextLayer>;

    Connection(NextLayer layer, std::shared_ptr<const Options> options, role r,
               Handler handler = Handler{})
        : handler_(std::move(handler)),
          layer_(std::move(layer)),
          options_(std::move(options)),
          parser_(r, options_->max_message_size),
          role_(r) {
        static_assert(ConnectionHandler<Handler, Connection>,
                      "a Handler needs on_message(conn, opcode, data) and "
                      "on_close(conn, code, reason)");
        if constexpr ((traits::waits_readable || traits::waits_when_drained) &&
                      std::is_convertible_v<executor_type, asio::any_io_executor>)
            readiness_ = detail::ReadinessSet::of(layer_.get_executor());
        if constexpr (std::is_convertible_v<executor_type, asio::any_io_executor>)
            deadlines_ = detail::Deadlines::of(layer_.get_executor());
    }

    ~Connection() {
        leave_readiness_set();
        if (registry_) {
            std::lock_guard lock(registry_->mutex);
            registry_->erase(*this);
            registry_->notify_if_stopped();
        }
    }

    Handler& handler() noexcept { return handler_; }
    const Handler& handler() const noexcept { return handler_; }
    executor_type get_executor() noexcept { return layer_.get_executor(); }
    NextLayer& next_layer() noexcept { return layer_; }
    const Options& options() const noexcept { return *options_; }
    bool is_open() const noexcept { return state_ == state::open; }
    /// Stops handing messages to the handler after the one being handled
    /// (the rest stays buffered, the socket is not read) until
    /// resume_reading(). A handler waiting for something before it may take
    /// the next message (a join waiting for its PubSub subscription) uses it,
    /// as a Phoenix socket process waits for a channel's join.
    void pause_reading() {
        paused_ = true;
        turn_budget_ = 0;
        parser_.end_budget();
    }
    void resume_reading() {
        if (!paused_) return;
        paused_ = false;
        if (in_read_ || reading_ || state_ == state::closed) return;  // end_turn goes on
        if (backlog_)
            asio::post(get_executor(), [self = this->shared_from_this()] { self->resume(); });
        else
            wait_readable();
    }
    bool reading_paused() const noexcept { return paused_; }
    /// Bytes waiting to be written (including a write in flight).
    std::size_t queued_bytes() const noexcept { return queued_bytes_; }
    /// Broadcast bytes given to post_send and not yet moved to the send queue.
    std::size_t mailbox_bytes() const {
        std::lock_guard lock(mailbox_mutex_);
        return mailbox_bytes_;
    }
    /// Bytes read but not parsed yet: held only while a turn that ran out of
    /// max_messages_per_read_turn has work left (an idle connection holds none).
    std::size_t unparsed_bytes() const noexcept {
        return backlog_ ? backlog_->bytes.size() - backlog_->pos : 0;
    }
    /// The permessage-deflate parameters in force, if it was negotiated.
    const DeflateParams* deflate_params() const noexcept {
        return deflate_ ? &deflate_->params() : nullptr;
    }

    // ------------------------------------------------------------ start --

    /// Server role: reads and answers the upgrade request.
    void start_server() {
        state_ = state::handshake;
        arm_timer(options_->handshake_timeout);
        set_nonblocking();
        start_stream([this] { wait_readable(); });
    }

    /// Client role: sends the upgrade request over an already-connected layer.
    void start_client(ClientRequest request) {
        state_ = state::client_handshake;
        auto& hs = handshake_state();
        hs.client_key = make_client_key();
        if (options_->deflate.enabled) request.extensions = deflate_offer(options_->deflate);
        auto bytes = client_request(request, hs.client_key);
        hs.request = std::move(request);
        arm_timer(options_->handshake_timeout);
        set_nonblocking();
        start_stream([this, bytes = std::move(bytes)]() mutable {
            enqueue(std::make_shared<const std::string>(std::move(bytes)), true);
            wait_readable();
        });
    }

    // ------------------------------------------------------------- send --

    void send_text(std::string_view payload) { send_message(opcode::text, payload); }
    void send_binary(std::string_view payload) { send_message(opcode::binary, payload); }
    /// In a priority lane (priority.hpp); `key` coalesces low-priority frames.
    void send_text(std::string_view payload, Priority p, const CoalesceKey& key = {}) {
        send_message(opcode::text, payload, p, key);
    }
    void send_binary(std::string_view payload, Priority p, const CoalesceKey& key = {}) {
        send_message(opcode::binary, payload, p, key);
    }

    /// Sends an already-framed message (make_shared_frame); the bytes are
    /// shared, not copied. Server role only: client frames are masked per
    /// connection and cannot be shared.
    void send(SharedFrame frame) {
        if (role_ == role::client) throw std::logic_error("shared frames are server-side only");
        if (state_ == state::open) enqueue(std::move(frame), false);
    }
    void send(SharedFrame frame, Priority p, const CoalesceKey& key = {}) {
        if (role_ == role::client) throw std::logic_error("shared frames are server-side only");
        if (state_ == state::open) enqueue_in_lane(std::move(frame), p, key);
    }

    /// What the priority lanes did so far (on the connection's executor).
    LaneStats lane_stats() const noexcept { return lanes_ ? lanes_->stats : LaneStats{}; }
    /// Whether the connection is behind: its reader took less than it was
    /// sent, so its writes are bounded and its low frames paced
    /// (Options::behind_write_bytes).
    bool is_behind() const noexcept { return lanes_ && lanes_->behind; }

    void ping(std::string_view payload = {}) {
        if (state_ == state::open)
            enqueue(control_frame(opcode::ping, payload.substr(0, max_control_payload)), true);
    }

    /// Starts the closing handshake. The handler's on_close runs now.
    void close(std::uint16_t code = to_int(close_code::normal), std::string_view reason = {}) {
        if (state_ == state::open) {
            state_ = state::closing;
            notify_close(code, reason);
            queue_close_frame(code, reason);
            arm_timer(options_->close_timeout);
        } else if (state_ == state::handshake || state_ == state::client_handshake ||
                   state_ == state::http_wait) {
            finish();
        }
    }

    /// Thread-safe variants: hop onto the connection's executor.
    ///
    /// Frames posted while the connection is busy wait in a mailbox that one
    /// posted drain empties into a single gathered write, so a burst of
    /// broadcasts costs one handler and one system call per connection, not
    /// one per frame. The mailbox counts toward max_send_queue: a reader too
    /// slow for its broadcasts is closed with 1008, never buffered without end.
    void post_send(SharedFrame frame) {
        bool schedule = false;
        {
            std::lock_guard lock(mailbox_mutex_);
            if (mailbox_overflow_) return;
            if (!mailbox_.empty() && mailbox_bytes_ + frame->size() > options_->max_send_queue) {
                mailbox_overflow_ = true;
                std::vector<SharedFrame>().swap(mailbox_);
                mailbox_bytes_ = 0;
            } else {
                mailbox_bytes_ += frame->size();
                mailbox_.push_back(std::move(frame));
            }
            schedule = !drain_posted_;
            drain_posted_ = true;
        }
        if (schedule)
            asio::post(get_executor(),
                       [self = this->shared_from_this()] { self->drain_mailbox(); });
    }
    /// post_send in a priority lane. A low frame finds the mailbox's waiting
    /// low frame of the same key and replaces it, or is dropped when the
    /// mailbox holds low_lane_limit bytes.
    void post_send(SharedFrame frame, Priority p, CoalesceKey key = {}) {
        if (p == Priority::normal) return post_send(std::move(frame));
        bool schedule = false;
        {
            std::lock_guard lock(mailbox_mutex_);
            if (mailbox_overflow_) return;
            if (!tagged_) tagged_ = std::make_unique<TaggedMailbox>();
            auto& t = *tagged_;
            const std::size_t size = frame->size();
            const std::size_t held = mailbox_bytes_ + t.bytes;
            if (p == Priority::low) {
                if (key) {
                    for (auto& w : t.frames) {
                        if (w.priority == Priority::low && w.key && *w.key == *key) {
                            t.bytes = t.bytes - w.frame->size() + size;
                            w.frame = std::move(frame);
                            ++t.coalesced;
                            return;  // a drain is already posted for the replaced one
                        }
                    }
                }
                if (held > 0 && held + size > low_lane_limit()) {
                    ++t.dropped;
                    return;
                }
            } else if (held > 0 && held + size > lane_limit(p)) {
                mailbox_overflow_ = true;
                mailbox_overflow_lane_ = p;
                std::vector<SharedFrame>().swap(mailbox_);
                mailbox_bytes_ = 0;
                t.frames.clear();
                t.bytes = 0;
            }
            if (!mailbox_overflow_) {
                t.bytes += size;
                t.frames.push_back({std::move(frame), std::move(key), p});
            }
            schedule = !drain_posted_;
            drain_posted_ = true;
        }
        if (schedule)
            asio::post(get_executor(),
                       [self = this->shared_from_this()] { self->drain_mailbox(); });
    }
    void post_close(std::uint16_t code, std::string reason = {}) {
        asio::post(get_executor(), [self = this->shared_from_this(), code, r = std::move(reason)] {
            self->close(code, r);
        });
    }

    /// Cuts the TCP connection without a closing handshake.
    void abort() {
        if (state_ == state::open) notify_close(to_int(close_code::abnormal), "aborted");
        finish();
    }

    /// Client role, for the connect helpers of client.hpp: a TCP connect is
    /// in flight on next_layer(). Until connect_done(), finishing the
    /// connection ends that connect with shutdown() instead of closing the
    /// socket under it (see close_if_idle).
    void connect_started() noexcept { connecting_ = true; }
    /// The connect completed; false if the connection was finished meanwhile
    /// (its socket is closed now, and the connect must not go on).
    bool connect_done() {
        connecting_ = false;
        if (state_ != state::closed) return true;
        close_if_idle();
        return false;
    }
    /// close() or abort() ran, or the transport failed: nothing more will happen.
    bool finished() const noexcept { return state_ == state::closed; }

    /// Joins `registry`, whose mutex the caller holds.
    void attach(std::shared_ptr<registry_type> registry) {
        registry->insert(*this);
        registry_ = std::move(registry);
    }

  private:
    enum class state : std::uint8_t {
        handshake,         // server: reading a request (an upgrade, or plain HTTP)
        http_wait,         // server: a plain HTTP request is being answered
        client_handshake,  // client: waiting for the 101
        open,
        closing,   // we sent close; waiting for the peer's
        draining,  // handshake over or failed: flush, FIN, read until EOF
        closed,
    };

    struct Sink {
        Connection& c;
        void on_message(opcode op, std::string_view data) {
            if (c.state_ == state::open) c.handler_.on_message(c, op, data);
        }
        void on_ping(std::string_view data) {
            if (c.state_ == state::open) c.queue_pong(data);
        }
        void on_pong(std::string_view data) {
            if constexpr (detail::HasOnPong<Handler, Connection>)
                if (c.state_ == state::open) c.handler_.on_pong(c, data);
        }
        void on_close(std::uint16_t code, std::string_view reason) { c.peer_closed(code, reason); }
    };

    // ------------------------------------------------------------ reads --

    void set_nonblocking() {
        std::error_code ec;
        layer_.lowest_layer().non_blocking(true, ec);
        layer_.lowest_layer().set_option(asio::ip::tcp::no_delay(true), ec);
        // Keeps a slow reader's backlog in the send queue, where the lanes
        // apply, instead of in the kernel's (autotuned, megabytes) buffer.
        if (const std::size_t lowat = options_->tcp_notsent_lowat; lowat > 0)
            detail::limit_unsent(layer_.lowest_layer(), lowat);
    }

    // A plain socket waits until it is readable, holding no buffer, then
    // reads what is there into the per-thread buffer (one receive per
    // message in a request/response exchange, where a speculative read would
    // fail first). A TLS stream does the same while it holds nothing of the
    // peer's (drained()), and otherwise completes a wait at once. Other
    // streams read into a small buffer inside the connection, so Asio can
    // read speculatively; when it fills up, the rest is drained into the
    // per-thread buffer.
    void wait_readable() {
        if (reading_ || starting_ || shutting_ || state_ == state::closed) return;
        // A TLS server ends with close_notify (maybe_shutdown), which cannot
        // run beside a read: once it is draining it reads no more.
        if constexpr (traits::is_tls)
            if (role_ == role::server && state_ == state::draining) return maybe_shutdown();
        reading_ = true;
        if constexpr (traits::waits_readable) {
            if (readiness_ && wait_in_readiness_set()) return;
            layer_.async_wait(
                asio::socket_base::wait_read,
                [self = this->shared_from_this()](std::error_code ec) { self->on_readable(ec); });
        } else if constexpr (traits::waits_when_drained) {
            if (readiness_ && layer_.drained()) {
                drained_ = true;
                if (wait_in_readiness_set()) return;
            }
            layer_.async_wait_readable(
                [self = this->shared_from_this()](std::error_code ec) { self->on_readable(ec); });
        } else {
            layer_.async_read_some(
                read_buffer(), [self = this->shared_from_this()](
                                   std::error_code ec, std::size_t n) { self->on_read(ec, n); });
        }
    }

    // The connection's io_context has a readiness set (one thread runs it):
    // wait there, without a system call. Bytes left in the socket, or an
    // edge that came while the connection was busy, make it read again now.
    // False if the set refused the socket (async_wait then).
    bool wait_in_readiness_set() {
        if (read_slot_ == detail::ReadinessSet::none) {
            read_slot_ = readiness_->add(layer_.lowest_layer().native_handle(), [](void* c) {
                static_cast<Connection*>(c)->on_readable({});
            });
            if (read_slot_ == detail::ReadinessSet::none) {
                readiness_ = nullptr;
                return false;
            }
        }
        if (drained_ && readiness_->wait(read_slot_, this->shared_from_this())) return true;
        asio::post(get_executor(),
                   [self = this->shared_from_this()] { self->on_readable(std::error_code{}); });
        return true;
    }

    // Before the socket closes (a closed descriptor's number is reused).
    void leave_readiness_set() noexcept {
        if (read_slot_ == detail::ReadinessSet::none) return;
        readiness_->release(std::exchange(read_slot_, detail::ReadinessSet::none),
                            layer_.lowest_layer().native_handle());
    }

    void on_readable(std::error_code ec) {
        reading_ = false;
        if (state_ == state::closed) return close_if_idle();
        if (ec) return transport_failed();
        last_activity_ = std::chrono::steady_clock::now();
        start_turn();
        drain_socket();
        end_turn();
    }

    // Where an asynchronous read lands: the small inline buffer (a stream
    // read speculatively drains the rest into the per-thread buffer). A
    // stream that is not (TLS) reads into the inline buffer too while the
    // peer is quiet, and into a record's worth, allocated for the burst,
    // while a read fills the inline one: an idle TLS connection holds no
    // read buffer of its own.
    asio::mutable_buffer read_buffer() {
        if constexpr (!traits::speculative) {
            if (big_reads_) {
                if (!stream_read_) stream_read_ = std::make_unique<char[]>(stream_read_size);
                return asio::buffer(stream_read_.get(), stream_read_size);
            }
        }
        return asio::buffer(inline_read_);
    }

    void on_read(std::error_code ec, std::size_t n) {
        reading_ = false;
        if (state_ == state::closed) return close_if_idle();
        if (ec) return transport_failed();
        last_activity_ = std::chrono::steady_clock::now();
        start_turn();
        if constexpr (traits::speculative) {
            on_bytes(inline_read_.data(), n);
            if (n == inline_read_.size()) drain_socket();
        } else {
            const bool big = big_reads_;
            on_bytes(big ? stream_read_.get() : inline_read_.data(), n);
            if (!big && n == inline_read_.size()) {
                big_reads_ = true;
            } else if (big && n < inline_read_.size()) {  // quiet again
                big_reads_ = false;
                stream_read_.reset();
            }
        }
        end_turn();
    }

    // The stream's own start (a TLS handshake), then `then`. A failed start
    // ends the connection; the handshake timer bounds it.
    template <class Then>
    void start_stream(Then then) {
        if constexpr (!traits::has_start) {
            then();
        } else {
            starting_ = true;
            traits::async_start(layer_, role_,
                                [self = this->shared_from_this(),
                                 then = std::move(then)](std::error_code ec) mutable {
                                    self->starting_ = false;
                                    if (self->state_ == state::closed) return self->close_if_idle();
                                    if (ec) {
                                        if (self->state_ == state::client_handshake)
                                            return self->client_failed(error::tls_handshake_failed,
                                                                       ec.message());
                                        return self->finish();
                                    }
                                    then();
                                });
        }
    }

    // A turn is one handler's worth of parsing: at most
    // max_messages_per_read_turn events, so one flooding peer cannot hold an
    // io thread while the other connections on it wait.
    void start_turn() {
        in_read_ = true;
        auto budget = options_->max_messages_per_read_turn;
        turn_budget_ = paused_ ? 0 : budget ? budget : std::numeric_limits<std::size_t>::max();
    }

    void end_turn() {
        in_read_ = false;
        if (state_ == state::closed) {
            backlog_.reset();
            return;
        }
        if (backlog_ && state_ != state::open && state_ != state::closing) backlog_.reset();
        flush();
        if (paused_) return;  // resume_reading() goes on
        // Bytes left over from a turn out of budget are parsed in a fresh
        // handler, behind whatever else waits on this thread; the socket is
        // read again only once they are gone (flow control still works).
        if (backlog_)
            asio::post(get_executor(), [self = this->shared_from_this()] { self->resume(); });
        else
            wait_readable();
    }

    void resume() {
        if (state_ == state::closed) {
            backlog_.reset();
            return;
        }
        start_turn();
        auto& b = *backlog_;
        std::size_t left = b.bytes.size() - b.pos;
        b.pos += state_ == state::open || state_ == state::closing
                     ? parse_frames(b.bytes.data() + b.pos, left)
                     : left;
        if (b.pos == b.bytes.size()) backlog_.reset();
        end_turn();
    }

    // Parses what this turn's budget allows; returns the bytes used. Bytes
    // after a close, a failure or a connection's end are used up (discarded).
    std::size_t parse_frames(char* data, std::size_t n) {
        std::size_t used = 0;
        if (auto f = parser_.consume(data, n, sink_, turn_budget_, used)) {
            fail(f.code, f.reason);
            return n;
        }
        if (turn_budget_ > 0 || parser_.close_received() ||
            (state_ != state::open && state_ != state::closing))
            return n;
        return used;
    }

    // Bytes of the per-thread buffer (or a handshake's tail) the turn had no
    // budget for: the only time a connection copies what it read.
    void parse_or_keep(char* data, std::size_t n) {
        std::size_t used = parse_frames(data, n);
        if (used == n) return;
        backlog_ = std::make_unique<Backlog>();
        backlog_->bytes.assign(data + used, n - used);
    }

    // Reads what is waiting into the per-thread buffer, a few buffers' worth
    // at most, then yields to others: all of a plain socket's reads, the rest
    // of a burst for a stream that filled its inline buffer.
    // drained_ says whether the last read found the socket empty.
    void drain_socket() {
        char* buf = detail::thread_read_buffer();
        drained_ = false;
        for (int round = 0; round < 4 && state_ != state::closed && !backlog_ && turn_budget_ > 0;
             ++round) {
            std::error_code ec;
            std::size_t n = layer_.read_some(asio::buffer(buf, detail::read_buffer_size), ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again) {
                drained_ = true;
                return;
            }
            if (ec) return transport_failed();
            drained_ = n < detail::read_buffer_size;
            on_bytes(buf, n);
            if (drained_) return;
        }
    }

    void on_bytes(char* data, std::size_t n) {
        switch (state_) {
            case state::handshake:
            case state::http_wait:
                return request_bytes(data, n);
            case state::client_handshake:
                return handshake_bytes(data, n);
            case state::open:
            case state::closing:
                return parse_or_keep(data, n);
            default:
                return;  // draining: the peer's leftovers are discarded
        }
    }

    // The peer vanished (EOF, reset) or a read/write failed.
    void transport_failed() {
        if (state_ == state::open) notify_close(to_int(close_code::abnormal), "connection lost");
        finish();
    }

    // -------------------------------------------------------- handshake --
    // Defined in impl/connection_handshake.hpp.

    // Client role: the server's answer to the upgrade request.
    void handshake_bytes(char* data, std::size_t n);

    // Server role, before an upgrade: HTTP requests, one at a time. One that
    // is not an upgrade goes to the handler; once answered, the connection
    // waits for the next (keep-alive) when both sides allow it.
    void request_bytes(const char* data, std::size_t n);

    // Handles the requests complete in the buffer, until one is upgraded,
    // refused, or waits for its answer.
    void next_request();

    void dispatch_request();

    // The answer to the request in hand (the exchange `id`): written, then
    // the next request, or the connection closes.
    void answer(std::uint64_t id, http::Response response);

    bool stop_requested() const;
    void server_handshake(const http::Request& req);
    void client_handshake();
    void open();
    static SharedFrame serialize(const http::Response& response, bool head_only);
    void refuse(const http::Response& response, bool head_only = false);
    void client_failed(std::error_code ec, std::string_view detail = {});

  public:
    /// The subprotocol the server chose (empty if none).
    const std::string& subprotocol() const noexcept {
        static const std::string none;
        return subprotocol_ ? *subprotocol_ : none;
    }

  private:
    // ------------------------------------------------------------ close --
    // Defined in impl/connection_close.hpp.

    void peer_closed(std::uint16_t code, std::string_view reason);

    // _Fail the WebSocket Connection_ (RFC 6455 7.1.7).
    // With `later`, the handler hears of it from a fresh handler: the send
    // that overflowed may be inside one of its own callbacks (a channel's
    // push in handle_in), whose objects on_close would destroy under it.
    void fail(std::uint16_t code, std::string_view reason, bool later = false);

    void queue_close_frame(std::uint16_t code, std::string_view reason);

    void push_close(std::string payload);

    void notify_close(std::uint16_t code, std::string_view reason, bool later = false);

    // After our close frame is out and the handshake is over: FIN (server
    // closes TCP first, RFC 6455 7.1.1), then read until the peer's EOF.
    void maybe_shutdown();

    void finish();

    // An operation is in flight on the stream.
    bool pending() const noexcept;

    // A socket is closed only while no operation is pending on it, and its
    // operations are ended by shutdown(), never cancelled: Asio 1.22's
    // io_uring backend (PLUME_IO_URING) submits cancellations without
    // setting their user data, so their completions land on whatever
    // operation last used that ring slot: operations are lost (a leaked
    // connection, an io_context::run() that never returns) or completed twice.
    void close_if_idle();

    // ----------------------------------------------------------- timers --

    // Sets the one timeout to `d` from now; 0 or less: none.
    void arm_timer(std::chrono::milliseconds d);

    void cancel_timer();

    void on_timer();

    // ----------------------------------------------------------- writes --
    // Defined in impl/connection_write.hpp.

    SharedFrame control_frame(opcode op, std::string_view payload);

    void send_message(opcode op, std::string_view payload, Priority p = Priority::normal,
                      const CoalesceKey& key = {});

    // At most one pong waits to be written: a newer ping's pong replaces it
    // (RFC 6455 5.5.3 allows answering only the most recent ping), so a peer
    // that pings without reading cannot make us queue one pong per ping. A
    // pong already in the write in flight (inflight_) is never touched.
    void queue_pong(std::string_view payload);

    void enqueue(SharedFrame frame, bool control, bool is_close = false);

    // ---------------------------------------------------- priority lanes --
    struct Lanes;
    // Critical frames join the control frames at the head of queue_; high and
    // low ones wait in lanes_ (made on first use), normal ones in queue_
    // behind the control frames. take_queue() lines them up for a write:
    // control+critical, high, normal, low.

    std::size_t low_lane_limit() const noexcept;
    std::size_t lane_limit(Priority p) const noexcept;

    // Room for `size` more bytes under `limit`, dropping the waiting low
    // frames if that is what it takes. One frame always fits an empty queue.
    bool make_room(std::size_t size, std::size_t limit);

    Lanes& lanes();

    void enqueue_in_lane(SharedFrame frame, Priority p, const CoalesceKey& key);

    // Low frames leave with the next write, or when the window ends.
    void schedule_low();
    // Asks LaneTicker for a call to low_window_ended (false: it is shutting down).
    bool start_low_tick();

    void low_window_ended();

    // Before the close frame: what waits in the lanes goes in queue_, in
    // lane order, so nothing is written after the close.
    void fold_lanes();

    // Something to write: a lane's frames, or low ones whose time has come
    // (for a connection that is behind: as many as its allowance).
    bool write_ready() const noexcept;

    // Moves what waits to inflight_ (empty), in lane order: all of it, or,
    // for a connection that is behind, at most Options::behind_write_bytes
    // (and at least one frame), so a critical frame queued meanwhile goes
    // with the next write instead of after the whole backlog.
    void take_queue();
    void take_bounded(std::size_t cap);

    // A write found the socket full on a connection that uses the lanes: it
    // is behind (Options::behind_write_bytes). Its writes are bounded
    // (take_bounded), and at the end of each window pace_low() asks the
    // kernel whether everything written has been sent and the peer's
    // receive window is (nearly) as open as it gets: then `quota` low frames
    // may go this window (one more than last time), else none (and the
    // quota halves); or the connection has caught up.
    void fell_behind();
    bool pace_low();
    // When a connection first uses the lanes: the kernel may hold at most
    // behind_write_bytes of it unsent (TCP_NOTSENT_LOWAT), so a backlog waits
    // in the send queue, where the lanes order it.
    void limit_kernel_backlog();

    // Frames posted by other threads join the queue, in one gathered write.
    // `admitted`: DrainTurns already gave this drain its turn.
    void drain_mailbox(bool admitted = false);

    // Asks the execution context's broadcast budget for a turn; a refused
    // drain keeps its mailbox (drain_posted_ stays set) until DrainTurns runs it.
    bool admit_drain();

    // The slow-reader policy: drop what waits, tell the peer why, close.
    void overflow(Priority lane = Priority::normal);

    void flush();

    // One non-blocking write of the in-flight frames from inflight_pos_. On a
    // plain stream, a run of small frames is first copied into one per-thread
    // buffer (see the definition). Returns the bytes written.
    std::size_t write_some_inflight(std::error_code& ec);

    // Moves past `n` written bytes of the in-flight frames.
    void advance_written(std::size_t n);

    void write_done();

    void on_written(std::error_code ec, std::size_t n);

    Handler handler_;
    NextLayer layer_;
    // The timeout (handshake, idle, close): a slot in the io_context's
    // Deadlines when one thread runs it, else a timer of its own.
    detail::Deadlines* deadlines_ = nullptr;
    std::unique_ptr<asio::steady_timer> timer_;
    std::shared_ptr<const Options> options_;
    Parser parser_;
    Sink sink_{*this};
    std::vector<SharedFrame> queue_;     // waiting for the next write
    std::vector<SharedFrame> inflight_;  // in the current write
    std::size_t inflight_pos_ = 0;       // first in-flight frame not fully written
    std::size_t inflight_offset_ = 0;    // bytes of it already written
    std::size_t control_front_ = 0;      // control frames at the head of queue_
    static constexpr std::size_t no_pong = std::numeric_limits<std::size_t>::max();
    std::size_t pong_slot_ = no_pong;  // where in queue_ the one waiting pong is
    std::size_t queued_bytes_ = 0;
    std::chrono::steady_clock::time_point last_activity_{};
    // Streams that cannot wait for readability read into this (none for TCP).
    struct NoInlineRead {};
    [[no_unique_address]] std::conditional_t<traits::waits_readable || traits::waits_when_drained,
                                             NoInlineRead, std::array<char, 256>>
        inline_read_{};
    // Reads of a stream that is not read speculatively (TLS), made on first use.
    static constexpr std::size_t stream_read_size = 16 * 1024;
    std::unique_ptr<char[]> stream_read_;
    bool big_reads_ = false;  // the next read goes to stream_read_
    std::unique_ptr<DeflateSession> deflate_;
    // Read but not yet parsed, only after a turn ran out of budget (an idle
    // connection holds none).
    struct Backlog {
        std::string bytes;
        std::size_t pos = 0;  // parsed up to here
    };
    std::unique_ptr<Backlog> backlog_;
    std::size_t turn_budget_ = 0;  // events this turn may still deliver
    // Only while handshaking: the HTTP head so far (and the client's request).
    struct HandshakeState {
        std::string buffer;
        std::string client_key;
        ClientRequest request;
        // Server: the request being read or answered, and how far.
        http::Request server_request;
        std::size_t searched = 0;  // buffer searched for the head's end up to here
        std::size_t head_end = 0;
        std::size_t body_length = 0;
        bool head_parsed = false;
        std::size_t requests = 0;    // answered or in hand, on this connection
        std::uint64_t exchange = 0;  // which request `responder` answers
        http::Responder responder;
    };
    HandshakeState& handshake_state() {
        if (!handshake_) handshake_ = std::make_unique<HandshakeState>();
        return *handshake_;
    }
    std::unique_ptr<HandshakeState> handshake_;
    // Made only when one was agreed (most connections have none).
    std::unique_ptr<const std::string> subprotocol_;
    void set_subprotocol(std::string_view name) {
        if (!name.empty()) subprotocol_ = std::make_unique<const std::string>(name);
    }
    // The high and low lanes (the critical one is queue_'s head), made for the
    // first frame of another priority than normal; on the connection's executor.
    struct Held {
        SharedFrame frame;
        CoalesceKey key;
    };
    struct Lanes {
        std::vector<SharedFrame> high;
        std::vector<Held> low;
        std::size_t low_bytes = 0;        // counted in queued_bytes_ too
        bool low_due = false;             // the low frames go with the next write
        bool tick_pending = false;        // LaneTicker will call low_window_ended
        bool behind = false;              // writes take at most behind_write_bytes
        std::uint32_t widest_window = 0;  // the peer's widest receive window of late
        std::uint32_t quota = 0;          // behind: low frames per window
        std::uint32_t allowance = 0;      // behind: low frames this window may still send
        static constexpr std::uint32_t max_quota = 64;
        LaneStats stats;
    };
    std::unique_ptr<Lanes> lanes_;
    // Guards the mailboxes: post_send runs on any thread.
    mutable plume::detail::SpinLock mailbox_mutex_;
    std::vector<SharedFrame> mailbox_;
    std::size_t mailbox_bytes_ = 0;
    // post_send's frames of other lanes than normal, made on first use.
    struct Tagged {
        SharedFrame frame;
        CoalesceKey key;
        Priority priority;
    };
    struct TaggedMailbox {
        std::vector<Tagged> frames;
        std::size_t bytes = 0;
        std::uint64_t dropped = 0, coalesced = 0;  // low frames, for LaneStats
    };
    std::unique_ptr<TaggedMailbox> tagged_;
    bool drain_posted_ = false;
    bool paused_ = false;  // pause_reading(): no messages to the handler until resumed
    bool mailbox_overflow_ = false;
    Priority mailbox_overflow_lane_ = Priority::normal;  // with mailbox_overflow_
    std::shared_ptr<registry_type> registry_;
    detail::RegistryHook<Connection> registry_hook_;
    friend registry_type;
    role role_;
    state state_ = state::handshake;
    bool reading_ = false;
    bool drained_ = true;  // the last read emptied the socket (drain_socket)
    // The io_context's readiness set, when one thread runs it, and this
    // socket's slot there (added at the first wait).
    detail::ReadinessSet* readiness_ = nullptr;
    std::uint32_t read_slot_ = detail::ReadinessSet::none;
    std::uint32_t deadline_slot_ = detail::Deadlines::none;
    bool writing_ = false;
    bool connecting_ = false;  // client role: a TCP connect is pending on layer_
    bool starting_ = false;    // the stream's start (TLS handshake) is pending
    bool shutting_ = false;    // the stream's shutdown (TLS close_notify) is pending
    bool in_read_ = false;     // corked: sends queue up, one flush at the end
    bool close_queued_ = false;
    bool fin_sent_ = false;
    bool notified_ = false;
};

}  // namespace plume::transport

#include "plume/transport/impl/connection_close.hpp"
#include "plume/transport/impl/connection_handshake.hpp"
#include "plume/transport/impl/connection_write.hpp"
