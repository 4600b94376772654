// plume/transport/impl/connection_close.hpp — Connection's end:
// failing with a close code, the closing handshake, TLS close_notify, the
// last write and the socket's shutdown, and the handshake/idle/close timer.
// Included by websocket.hpp, after the class.
#pragma once

#include "plume/transport/websocket.hpp"

namespace plume::transport {

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::peer_closed(std::uint16_t code, std::string_view reason) {
    if (state_ == state::open) {
        // Echo the peer's code (RFC 6455 5.5.1); an empty close gets an empty echo.
        notify_close(code, reason);
        state_ = state::draining;
        if (code == to_int(close_code::no_status))
            push_close(std::string());
        else
            push_close(close_payload(code, {}));
        arm_timer(options_->close_timeout);
    } else if (state_ == state::closing) {
        state_ = state::draining;
        maybe_shutdown();
    }
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::fail(std::uint16_t code, std::string_view reason, bool later) {
    if (state_ == state::open) {
        notify_close(code, reason, later);
        queue_close_frame(code, reason);
    }
    state_ = state::draining;
    arm_timer(options_->close_timeout);
    maybe_shutdown();
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::queue_close_frame(std::uint16_t code,
                                                       std::string_view reason) {
    push_close(close_payload(code, reason));
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::push_close(std::string payload) {
    if (close_queued_) return;
    enqueue(control_frame(opcode::close, payload), false, true);
    close_queued_ = true;
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::notify_close(std::uint16_t code, std::string_view reason,
                                                  bool later) {
    if (notified_) return;
    notified_ = true;
    if (!later) return handler_.on_close(*this, code, reason);
    asio::post(get_executor(), [self = this->shared_from_this(), code, r = std::string(reason)] {
        self->handler_.on_close(*self, code, r);
    });
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::maybe_shutdown() {
    if (state_ != state::draining || writing_ || !queue_.empty() || fin_sent_) return;
    if constexpr (traits::is_tls) {
        // close_notify, then the peer's (or its EOF), then TCP closes;
        // the close timer bounds the wait. Not beside a pending read: the
        // read ends first (the peer's close frame or EOF).
        if (role_ == role::server) {
            if (reading_ || starting_) return;
            fin_sent_ = true;
            shutting_ = true;
            layer_.async_shutdown([self = this->shared_from_this()](std::error_code) {
                self->shutting_ = false;
                if (self->state_ == state::closed) return self->close_if_idle();
                self->finish();
            });
            return;
        }
    }
    fin_sent_ = true;
    if (role_ == role::server) {
        std::error_code ec;
        layer_.lowest_layer().shutdown(asio::socket_base::shutdown_send, ec);
    }
    wait_readable();
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::finish() {
    if (state_ == state::closed) return;
    state_ = state::closed;
    cancel_timer();
    if (handshake_) {
        // A request still unanswered: its handler learns the peer is gone.
        auto responder = std::move(handshake_->responder);
        handshake_.reset();
        if (responder) responder.cancel();
    }
    if constexpr (requires { handler_.on_finish(*this); }) handler_.on_finish(*this);
    queue_.clear();
    lanes_.reset();
    pong_slot_ = no_pong;
    queued_bytes_ = 0;
    std::error_code ec;
    // Pending operations end with EOF/EPIPE (a connect with ECONNRESET),
    // then the socket closes.
    if (pending()) {
        layer_.lowest_layer().shutdown(asio::socket_base::shutdown_both, ec);
    } else {
        leave_readiness_set();
        layer_.lowest_layer().close(ec);
    }
}

template <class Handler, class NextLayer>
bool Connection<Handler, NextLayer>::pending() const noexcept {
    return reading_ || writing_ || connecting_ || starting_ || shutting_;
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::close_if_idle() {
    if (pending()) return;
    leave_readiness_set();
    std::error_code ec;
    layer_.lowest_layer().close(ec);
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::arm_timer(std::chrono::milliseconds d) {
    if (d.count() <= 0) return cancel_timer();
    if (deadlines_) {
        auto at = detail::Deadlines::clock::now() + d;
        if (deadline_slot_ != detail::Deadlines::none) return deadlines_->move(deadline_slot_, at);
        deadline_slot_ = deadlines_->add(
            at,
            [](void* c) {
                auto& self = *static_cast<Connection*>(c);
                self.deadline_slot_ = detail::Deadlines::none;
                self.on_timer();
            },
            this->shared_from_this());
        return;
    }
    if (!timer_) timer_ = std::make_unique<asio::steady_timer>(layer_.get_executor());
    timer_->expires_after(d);
    timer_->async_wait([self = this->shared_from_this()](std::error_code ec) {
        if (!ec) self->on_timer();
    });
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::cancel_timer() {
    if (deadline_slot_ != detail::Deadlines::none)
        deadlines_->cancel(std::exchange(deadline_slot_, detail::Deadlines::none));
    else if (timer_)
        timer_->cancel();
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::on_timer() {
    switch (state_) {
        case state::open: {
            auto idle = options_->idle_timeout;
            auto quiet = std::chrono::steady_clock::now() - last_activity_;
            if (quiet >= idle) return close(to_int(close_code::going_away), "idle timeout");
            arm_timer(std::chrono::duration_cast<std::chrono::milliseconds>(idle - quiet) +
                      std::chrono::milliseconds(1));
            return;
        }
        case state::http_wait:
            return;
        case state::handshake:
        case state::client_handshake:
            if (state_ == state::client_handshake)
                detail::report_handshake_error(handler_, *this, error::handshake_timeout);
            return finish();
        case state::closing:
        case state::draining:
            return finish();  // the peer did not finish the close in time
        case state::closed:
            return;
    }
}

}  // namespace plume::transport
