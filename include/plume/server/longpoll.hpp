// plume/server/longpoll.hpp — Phoenix's long-poll transport: a socket carried
// by HTTP requests, for networks and proxies that block WebSockets
// (phoenix.js `transport: LongPoll`, or `longPollFallbackMs`).
//
//   GET  <path>/longpoll?vsn=2.0.0&...   no session token: connect() runs; the
//        answer is {"status":410,"token":T,"messages":[]} (phoenix.js: open),
//        or {"status":403} when refused.
//   GET  ...&token=T (or X-Phoenix-Longpoll-Token: T)  a poll: waits up to
//        `window` for messages → {"status":200,"token":T,"messages":[...]},
//        else {"status":204,"token":T,"messages":[]}; {"status":410} when
//        the session is gone (the client reconnects and rejoins).
//   POST ...&token=T   one message, or with Content-Type
//        application/x-ndjson one per line (a line starting with '[' or '{'
//        is text, any other base64 of a binary message), handled in order;
//        {"status":200} once all are, {"status":410} without a session,
//        {"status":413} for more than max_batch_messages lines.
//
// Every answer is HTTP 200 with a JSON body: phoenix.js reads the status from
// the body. Each element of "messages" is one serialized message (a V2 array
// as text). A session that is not polled for 1.5 × window is closed and its
// channels terminated (their presences leave), as Phoenix does; a session
// holding more than max_held_messages (or max_held_bytes) unpolled messages
// is closed too, so a client that stopped polling costs bounded memory.
//
// LongPollSession is the carrier Session runs over (OverLongPoll): the same
// Socket and Channel code serves both transports.
#pragma once

#include <asio.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "plume/detail/base64.hpp"
#include "plume/transport/close_code.hpp"
#include "plume/transport/frame.hpp"
#include "plume/transport/http_exchange.hpp"
#include "plume/transport/priority.hpp"

namespace plume::server {

struct LongPollOptions {
    /// Serve <socket path>/longpoll (off by default, as in Phoenix).
    bool enabled = false;
    /// How long a poll waits for messages (Phoenix's window_ms). A session
    /// not polled for 1.5 × window is closed.
    std::chrono::milliseconds window{10'000};
    /// Lines one POST may carry (phoenix.js ≥ 1.8.6 sends at most 100;
    /// older clients send a whole batch). More → {"status":413}.
    std::size_t max_batch_messages = 1000;
    /// Fairness: the most messages of a session handled per turn of its io
    /// thread; the rest of a batch goes on in a fresh handler, posted behind
    /// the other sessions' and connections' work (a POST is answered once
    /// all its messages are handled). 0: no limit.
    std::size_t max_messages_per_turn = 128;
    /// Messages (and bytes) a session holds for its next poll; beyond
    /// either, the client is too slow to poll and the session is closed.
    std::size_t max_held_messages = 10'000;
    std::size_t max_held_bytes = std::size_t{4} << 20;
    /// Signs session tokens; a random secret per process when empty (a
    /// session lives on one node, so its token is only good there).
    std::string secret_key_base;
};

/// The JSON body of a long-poll answer.
inline std::string longpoll_body(int status) {
    return "{\"status\":" + std::to_string(status) + "}";
}

inline transport::http::Response longpoll_response(std::string body) {
    transport::http::Response r;
    r.body = std::move(body);
    r.set("Content-Type", "application/json; charset=utf-8")
        .set("Cache-Control", "no-store")
        .set("Access-Control-Allow-Origin", "*");
    return r;
}

/// One message from a POST body: text, or binary (base64 in the body).
struct LongPollMessage {
    std::string data;
    bool binary = false;
};

/// Splits a POST body into messages; false for a line that is neither JSON
/// text nor valid base64.
inline bool split_longpoll_body(std::string_view body, bool ndjson,
                                std::vector<LongPollMessage>& out) {
    auto add = [&](std::string_view line) {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) return true;
        if (line.front() == '[' || line.front() == '{') {
            out.push_back({std::string(line), false});
            return true;
        }
        auto bytes = plume::detail::base64_decode(line);
        if (!bytes) bytes = plume::detail::base64_decode_unpadded(line);
        if (!bytes) return false;
        out.push_back({std::move(*bytes), true});
        return true;
    };
    if (!ndjson) return add(body);
    while (!body.empty()) {
        auto nl = body.find('\n');
        if (!add(body.substr(0, nl))) return false;
        if (nl == std::string_view::npos) break;
        body.remove_prefix(nl + 1);
    }
    return true;
}

template <class Handler>
class LongPollSession : public std::enable_shared_from_this<LongPollSession<Handler>> {
  public:
    using executor_type = asio::strand<asio::io_context::executor_type>;

    LongPollSession(asio::io_context& io, const LongPollOptions& options, Handler handler)
        : strand_(asio::make_strand(io)),
          timer_(strand_),
          options_(options),
          handler_(std::move(handler)) {}

    Handler& handler() noexcept { return handler_; }
    executor_type get_executor() const noexcept { return strand_; }
    bool is_open() const noexcept { return state_ == state::open; }
    /// The signed token the client sends back (set once, before start()).
    void set_token(std::string token) { token_ = std::move(token); }
    /// Runs once the session is closed (on its strand): the Endpoint forgets it.
    void on_finished(std::function<void()> f) { on_finished_ = std::move(f); }
    /// Messages waiting for a poll.
    std::size_t held_messages() const noexcept { return held_.size(); }

    // ------------------------------------------------ Endpoint side --
    // Any thread; they hop onto the session's strand.

    void start() {
        asio::dispatch(strand_, [self = this->shared_from_this()] {
            self->handler_.on_open(*self);
            self->arm_idle();
        });
    }

    void poll(transport::http::Responder responder) {
        asio::dispatch(strand_, [self = this->shared_from_this(), r = std::move(responder)] {
            self->take_poll(r);
        });
    }

    void push(std::vector<LongPollMessage> messages, transport::http::Responder responder) {
        asio::dispatch(strand_, [self = this->shared_from_this(), m = std::move(messages),
                                 r = std::move(responder)]() mutable {
            self->take_push(std::move(m), std::move(r));
        });
    }

    /// Closes from any thread (Endpoint::stop, a disconnect).
    void post_close(std::uint16_t code, std::string reason) {
        asio::post(strand_, [self = this->shared_from_this(), code, r = std::move(reason)] {
            self->close(code, r);
        });
    }

    // ------------------------------------------- carrier (Session side) --
    // On the strand, but post_send.

    void send_text(std::string_view text) { hold(std::make_shared<const std::string>(text), 0); }
    /// phoenix.js cannot read binary messages over long-poll (its serializer
    /// takes a string there as JSON), so they are not sent: counted instead.
    void send_binary(std::string_view) { ++dropped_binary_; }
    /// A server WebSocket frame: its payload is the message.
    void send(transport::SharedFrame frame) {
        if (!frame || frame->size() < 2) return;
        const auto op = static_cast<unsigned char>((*frame)[0]) & 0x0F;
        if (op != 0x1) return send_binary({});
        const auto len7 = static_cast<unsigned char>((*frame)[1]) & 0x7F;
        const std::uint32_t skip = len7 < 126 ? 2 : len7 == 126 ? 4 : 10;
        hold(std::move(frame), skip);
    }
    void post_send(transport::SharedFrame frame) {
        asio::post(strand_, [self = this->shared_from_this(), f = std::move(frame)]() mutable {
            self->send(std::move(f));
        });
    }
    // Priority lanes are a WebSocket send queue's: a poll takes every held
    // message at once, in arrival order, so the lane changes nothing here.
    void send_text(std::string_view text, transport::Priority, const transport::CoalesceKey&) {
        send_text(text);
    }
    void send_binary(std::string_view data, transport::Priority, const transport::CoalesceKey&) {
        send_binary(data);
    }
    void send(transport::SharedFrame frame, transport::Priority, const transport::CoalesceKey&) {
        send(std::move(frame));
    }
    void post_send(transport::SharedFrame frame, transport::Priority, transport::CoalesceKey) {
        post_send(std::move(frame));
    }

    void close(std::uint16_t code = transport::to_int(transport::close_code::normal),
               std::string_view reason = {}) {
        if (state_ != state::open) return;
        state_ = state::closed;
        ++timer_generation_;
        timer_.cancel();
        handler_.on_close(*this, code, reason);
        // What was said last (a phx_close, a reply) still goes out when a
        // poll waits for it; the next request learns the session is gone.
        if (poll_) {
            auto r = std::move(poll_);
            poll_ = {};
            r.send(longpoll_response(held_.empty() ? longpoll_body(410) : held_body(200)));
        }
        held_.clear();
        held_bytes_ = 0;
        inbound_.clear();
        for (auto& [seq, r] : acks_)
            r.send(longpoll_response(longpoll_body(410)));
        acks_.clear();
        if (on_finished_) std::exchange(on_finished_, nullptr)();
    }

    /// A join waiting for its PubSub subscription or its history: the
    /// session handles no other message meanwhile.
    void pause_reading() { paused_ = true; }
    void resume_reading() {
        if (!paused_) return;
        paused_ = false;
        post_inbound();
    }

  private:
    enum class state : std::uint8_t { open, closed };
    struct Held {
        transport::SharedFrame bytes;
        std::uint32_t skip;  // the WebSocket header before the message
    };

    void hold(transport::SharedFrame bytes, std::uint32_t skip) {
        if (state_ != state::open) return;
        held_bytes_ += bytes->size() - skip;
        held_.push_back({std::move(bytes), skip});
        if (held_.size() > options_.max_held_messages || held_bytes_ > options_.max_held_bytes)
            return close(transport::to_int(transport::close_code::policy_violation),
                         "too many messages held for a long-poll client");
        if (poll_ && !answer_posted_) {
            // Answered after this handler: what else it sends goes along.
            answer_posted_ = true;
            asio::post(strand_, [self = this->shared_from_this()] {
                self->answer_posted_ = false;
                self->answer_poll();
            });
        }
    }

    // The body of an answer carrying what is held (which stays held).
    std::string held_body(int status) const {
        std::string body = "{\"status\":" + std::to_string(status) + ",\"token\":";
        body += nlohmann::json(token_).dump();
        body += ",\"messages\":[";
        bool first = true;
        for (auto& h : held_) {
            if (!first) body += ',';
            first = false;
            std::string_view text(h.bytes->data() + h.skip, h.bytes->size() - h.skip);
            body += nlohmann::json(std::string(text))
                        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
        body += "]}";
        return body;
    }

    // Answers a poll with what is held (200), or with nothing (204). The
    // messages are let go only if the answer was taken: a poll whose client
    // went away (cancelled) leaves them for the next one.
    bool deliver(const transport::http::Responder& poll) {
        if (!poll.send(longpoll_response(held_body(held_.empty() ? 204 : 200)))) return false;
        held_.clear();
        held_bytes_ = 0;
        return true;
    }

    void take_poll(const transport::http::Responder& responder) {
        if (state_ != state::open)
            return void(responder.send(longpoll_response(longpoll_body(410))));
        // A newer poll replaces a waiting one (the client gave up on it).
        if (poll_) deliver(std::exchange(poll_, {}));
        if (!held_.empty()) {
            if (deliver(responder)) arm_idle();
            return;
        }
        poll_ = responder;
        // The client went away before the answer: nothing was taken, the
        // messages wait for its next poll.
        poll_.on_cancel([weak = this->weak_from_this(), generation = ++poll_generation_] {
            if (auto self = weak.lock())
                asio::post(self->strand_, [self, generation] {
                    if (self->poll_generation_ != generation || !self->poll_) return;
                    self->poll_ = {};
                    self->arm_idle();
                });
        });
        arm(options_.window, [this] {
            if (!poll_) return;
            deliver(std::exchange(poll_, {}));
            arm_idle();
        });
    }

    void answer_poll() {
        if (!poll_ || held_.empty() || state_ != state::open) return;
        deliver(std::exchange(poll_, {}));
        arm_idle();
    }

    void take_push(std::vector<LongPollMessage> messages, transport::http::Responder responder) {
        if (state_ != state::open)
            return void(responder.send(longpoll_response(longpoll_body(410))));
        received_ += messages.size();
        for (auto& m : messages)
            inbound_.push_back(std::move(m));
        acks_.emplace_back(received_, std::move(responder));
        handle_inbound();
    }

    // Messages in order, one at a time, until a join pauses the session or
    // the turn's budget is spent (the rest goes on in a posted handler); a
    // POST is acknowledged once its last message was handled.
    void handle_inbound() {
        const std::size_t budget = options_.max_messages_per_turn;
        for (std::size_t n = 0; !paused_ && state_ == state::open && !inbound_.empty(); ++n) {
            if (budget != 0 && n == budget) {
                post_inbound();
                break;
            }
            auto m = std::move(inbound_.front());
            inbound_.pop_front();
            ++handled_;
            handler_.on_message(
                *this, m.binary ? transport::opcode::binary : transport::opcode::text, m.data);
        }
        while (state_ == state::open && !acks_.empty() && acks_.front().first <= handled_) {
            acks_.front().second.send(longpoll_response(longpoll_body(200)));
            acks_.pop_front();
        }
    }

    // handle_inbound() in a fresh handler, behind the work already queued.
    void post_inbound() {
        if (inbound_posted_) return;
        inbound_posted_ = true;
        asio::post(strand_, [self = this->shared_from_this()] {
            self->inbound_posted_ = false;
            self->handle_inbound();
        });
    }

    // Not polled for 1.5 × window: the client is gone.
    void arm_idle() {
        if (state_ != state::open || poll_) return;
        arm(options_.window + options_.window / 2, [this] {
            if (!poll_)
                close(transport::to_int(transport::close_code::going_away),
                      "long-poll session not polled in time");
        });
    }

    template <class F>
    void arm(std::chrono::milliseconds d, F on_expiry) {
        const auto generation = ++timer_generation_;
        timer_.expires_after(d);
        timer_.async_wait([self = this->shared_from_this(), generation,
                           on_expiry = std::move(on_expiry)](std::error_code ec) {
            if (ec || self->timer_generation_ != generation || self->state_ != state::open) return;
            on_expiry();
        });
    }

    executor_type strand_;
    asio::steady_timer timer_;
    std::uint64_t timer_generation_ = 0;
    const LongPollOptions& options_;
    Handler handler_;
    state state_ = state::open;
    std::string token_;
    std::function<void()> on_finished_;
    std::deque<Held> held_;
    std::size_t held_bytes_ = 0;
    transport::http::Responder poll_;  // the poll waiting for messages, if any
    std::uint64_t poll_generation_ = 0;
    bool answer_posted_ = false;
    std::deque<LongPollMessage> inbound_;
    std::deque<std::pair<std::uint64_t, transport::http::Responder>> acks_;
    std::uint64_t received_ = 0;  // messages posted so far
    std::uint64_t handled_ = 0;   // of which handled
    bool paused_ = false;
    bool inbound_posted_ = false;  // a handle_inbound() is posted
    std::uint64_t dropped_binary_ = 0;
};

/// Carries a Session over long-poll requests.
struct OverLongPoll {
    template <class Session>
    using carrier = LongPollSession<Session>;
};

}  // namespace plume::server
