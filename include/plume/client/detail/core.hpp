// plume/client/detail/core.hpp — the state behind client::Socket, Channel and
// Push: phoenix.js's socket.js, channel.js and push.js, step for step, on one
// strand.
//
// Ownership: the Socket handle owns its SocketImpl; a SocketImpl owns its
// channels; a ChannelImpl owns its join push and its buffered pushes. Back
// references (push → channel → socket) are weak, so handles kept by the user
// never keep a socket alive, and callbacks that capture handles are released
// when the socket shuts down or the channel closes.
//
// Every member function runs on the strand unless its comment says otherwise.
#pragma once
//
// One concept per file: protocol.hpp (names and helpers), push_impl.hpp,
// channel_impl.hpp, socket_impl.hpp; this file includes them all and holds
// the definitions that need all three classes complete.
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

#include "plume/client/detail/timer.hpp"
#include "plume/client/error.hpp"
#include "plume/client/options.hpp"
#include "plume/detail/base64.hpp"
#include "plume/transport/client.hpp"
#include "plume/wire/v1_json.hpp"
#include "plume/wire/v2_json.hpp"
#include "plume/wire/vsn.hpp"

#include "plume/client/detail/channel_impl.hpp"
#include "plume/client/detail/protocol.hpp"
#include "plume/client/detail/push_impl.hpp"
#include "plume/client/detail/socket_impl.hpp"

namespace plume::client::detail {

// ------------------------------------------- out-of-class definitions --

inline void PushImpl::send() {
    if (has_received("timeout")) return;
    auto ch = channel_.lock();
    if (!ch) return;
    auto sock = ch->socket_.lock();
    if (!sock) return;
    start_timeout();
    sent_ = true;
    wire::Message m{ch->join_ref(), ref_, ch->topic_, event_, payload_()};
    sock->push(std::move(m), ch, shared_from_this());
}

inline void PushImpl::start_timeout() {
    cancel_timeout();
    cancel_ref_event();
    auto ch = channel_.lock();
    auto sock = ch ? ch->socket_.lock() : nullptr;
    if (!sock) return;
    ref_ = sock->make_ref();
    listening_ = true;
    ch->awaiting_[*ref_] = weak_from_this();
    if (!tracked_) {
        tracked_ = true;
        sock->track(weak_from_this());
    }
    timer_.start(timeout_,
                 [self = shared_from_this()] { self->trigger("timeout", Json::object()); });
}

inline void PushImpl::cancel_ref_event() {
    if (!listening_) return;
    listening_ = false;
    if (!ref_) return;
    if (auto ch = channel_.lock()) {
        auto it = ch->awaiting_.find(*ref_);
        if (it != ch->awaiting_.end() && it->second.lock().get() == this) ch->awaiting_.erase(it);
    }
}

inline void PushImpl::unbuffer() {
    if (!buffered_) return;
    buffered_ = false;
    auto ch = channel_.lock();
    if (!ch) return;
    std::erase_if(ch->push_buffer_,
                  [this](const std::shared_ptr<PushImpl>& p) { return p.get() == this; });
    if (auto sock = ch->socket_.lock(); sock && sock->buffered_pushes_ > 0)
        --sock->buffered_pushes_;
}

inline bool ChannelImpl::socket_connected() const {
    auto sock = socket_.lock();
    return sock && sock->is_connected();
}

inline void ChannelImpl::rejoin() {
    if (is(ChannelState::leaving)) return;
    auto sock = socket_.lock();
    if (!sock || sock->shut_down_) {
        // No socket to join over: the join settles rather than waiting forever.
        if (!join_push_->received_) join_push_->settle(Reply{"error", reason("socket closed")});
        return;
    }
    sock->leave_open_topic(topic_, this);
    set_state(ChannelState::joining);
    join_push_->resend(timeout());
}

inline void ChannelImpl::push(const std::shared_ptr<PushImpl>& p) {
    auto sock = socket_.lock();
    if (!sock || sock->shut_down_) return p->settle(Reply{"error", reason("socket closed")});
    if (can_push()) return p->send();
    auto limit = sock->options().max_buffered_pushes;
    if (limit != 0 && sock->buffered_pushes_ >= limit) {
        p->settle(Reply{"error", reason("buffer_full")});
        sock->report(error::send_buffer_full, p->event_ + " on " + topic_ +
                                                  " refused: " + std::to_string(limit) +
                                                  " pushes are already waiting to be sent");
        return;
    }
    // phoenix.js: the timeout runs from the push, also while it waits.
    p->start_timeout();
    p->buffered_ = true;
    push_buffer_.push_back(p);
    ++sock->buffered_pushes_;
}

inline void ChannelImpl::leave(const std::shared_ptr<PushImpl>& leave_push) {
    rejoin_timer_.reset();
    join_push_->cancel_timeout();
    set_state(ChannelState::leaving);
    std::weak_ptr<ChannelImpl> weak = weak_from_this();
    auto closed = [weak](const wire::Payload&) {
        if (auto c = weak.lock())
            c->trigger(Event{c->topic_, std::string(close_event), Json("leave"), std::nullopt,
                             std::nullopt, ""});
    };
    leave_push->receive("ok", closed);
    leave_push->receive("timeout", closed);
    leave_push->send();
    // Not joined (or offline): the leave is acknowledged locally at once.
    if (!can_push()) leave_push->trigger("ok", Json::object());
}

inline void ChannelImpl::on_join_ok() {
    set_state(ChannelState::joined);
    rejoin_timer_.reset();
    auto buffered = std::move(push_buffer_);
    push_buffer_.clear();
    auto sock = socket_.lock();
    for (auto& p : buffered) {
        p->buffered_ = false;
        if (sock && sock->buffered_pushes_ > 0) --sock->buffered_pushes_;
        p->send();
    }
}

inline void ChannelImpl::on_close() {
    rejoin_timer_.reset();
    set_state(ChannelState::closed);
    if (auto sock = socket_.lock()) sock->remove(*this);
}

}  // namespace plume::client::detail
