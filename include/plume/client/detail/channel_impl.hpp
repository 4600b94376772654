// plume/client/detail/channel_impl.hpp — ChannelImpl, phoenix.js's
// channel.js: join/rejoin, the push buffer while not joined, leave, and the
// event bindings. The definitions that need SocketImpl are in core.hpp.
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

#include "plume/client/detail/push_impl.hpp"
#include "plume/client/detail/timer.hpp"
#include "plume/client/error.hpp"
#include "plume/client/options.hpp"
#include "plume/detail/base64.hpp"
#include "plume/transport/client.hpp"
#include "plume/wire/v1_json.hpp"
#include "plume/wire/v2_json.hpp"
#include "plume/wire/vsn.hpp"

namespace plume::client::detail {

// -------------------------------------------------------------- Channel --

class ChannelImpl : public std::enable_shared_from_this<ChannelImpl> {
  public:
    struct Binding {
        std::string event;
        std::uint64_t ref;
        EventHandler handler;
    };

    ChannelImpl(std::weak_ptr<SocketImpl> socket, const Strand& strand, std::string topic,
                std::function<Json()> params, milliseconds timeout, Backoff rejoin_after)
        : socket_(std::move(socket)),
          strand_(strand),
          topic_(std::move(topic)),
          params_(std::move(params)),
          timeout_ms_(timeout.count()),
          rejoin_timer_(strand, std::move(rejoin_after)) {}

    /// Any thread: builds the channel and its join push with phoenix.js's
    /// internal join hooks (registered first, so they run before the user's).
    static std::shared_ptr<ChannelImpl> create(std::weak_ptr<SocketImpl> socket,
                                               const Strand& strand, std::string topic,
                                               std::function<Json()> params, milliseconds timeout,
                                               Backoff rejoin_after) {
        auto ch =
            std::make_shared<ChannelImpl>(std::move(socket), strand, std::move(topic),
                                          std::move(params), timeout, std::move(rejoin_after));
        std::weak_ptr<ChannelImpl> weak = ch;
        auto params_fn = ch->params_;
        ch->join_push_ = std::make_shared<PushImpl>(
            strand, weak, std::string(join_event),
            [params_fn] { return wire::Payload(params_fn ? params_fn() : Json::object()); },
            timeout, /*persistent=*/true);
        ch->join_push_->receive("ok", [weak](const wire::Payload&) {
            if (auto c = weak.lock()) c->on_join_ok();
        });
        ch->join_push_->receive("error", [weak](const wire::Payload&) {
            if (auto c = weak.lock()) c->on_join_error();
        });
        ch->join_push_->receive("timeout", [weak](const wire::Payload&) {
            if (auto c = weak.lock()) c->on_join_timeout();
        });
        return ch;
    }

    // Any thread.
    ChannelState state() const noexcept { return state_.load(); }
    milliseconds timeout() const noexcept { return milliseconds(timeout_ms_.load()); }

    bool is(ChannelState s) const noexcept { return state_.load() == s; }
    const std::optional<std::string>& join_ref() const noexcept { return join_push_->ref_; }
    bool socket_connected() const;
    bool can_push() const { return socket_connected() && is(ChannelState::joined); }

    /// phoenix.js's isMember: same topic, and no join_ref or the current one.
    bool is_member(std::string_view topic, const std::optional<std::string>& join_ref) const {
        if (topic != topic_) return false;
        return !join_ref || join_ref->empty() || join_ref == join_push_->ref_;
    }

    void join(milliseconds timeout) {
        timeout_ms_ = timeout.count();
        rejoin();
    }

    void rejoin();
    void push(const std::shared_ptr<PushImpl>& p);
    void leave(const std::shared_ptr<PushImpl>& leave_push);

    /// Delivers an event: the internal phx_close/phx_error/phx_reply handling
    /// first (phoenix.js registers those bindings in its constructor), then
    /// the user's bindings. True if anything was bound to it.
    bool trigger(const Event& ev) {
        std::vector<EventHandler> matching;
        for (auto& b : bindings_)
            if (b.event == ev.event) matching.push_back(b.handler);
        bool handled = !matching.empty();
        if (ev.event == close_event) {
            on_close();
            handled = true;
        } else if (ev.event == error_event) {
            on_error();
            handled = true;
        } else if (ev.event == reply_event && ev.ref) {
            if (auto it = awaiting_.find(*ev.ref); it != awaiting_.end()) {
                if (auto p = it->second.lock()) {
                    p->on_reply(Reply{ev.status, ev.payload});
                    handled = true;
                }
            }
        }
        for (auto& h : matching)
            h(ev);
        return handled;
    }

    void add_binding(std::string event, std::uint64_t ref, EventHandler handler) {
        bindings_.push_back({std::move(event), ref, std::move(handler)});
    }
    void remove_bindings(const std::string& event, std::optional<std::uint64_t> ref) {
        std::erase_if(bindings_, [&](const Binding& b) {
            return b.event == event && (!ref || b.ref == *ref);
        });
    }

    // Socket notifications (phoenix.js's socket.onOpen/onError bindings).
    void on_socket_open() {
        rejoin_timer_.reset();
        if (is(ChannelState::errored)) rejoin();
    }
    void on_socket_error() { rejoin_timer_.reset(); }

    /// The channel left the socket (closed): nothing can reach its callbacks
    /// any more, so they are released (they may capture handles).
    void release_callbacks() {
        bindings_.clear();
        join_push_->hooks_.clear();
    }

    /// The socket shut down.
    void abandon() {
        rejoin_timer_.reset();
        join_push_->abandon();
        for (auto& p : push_buffer_)
            p->abandon();
        for (auto& [ref, weak] : awaiting_)
            if (auto p = weak.lock()) p->abandon();
        push_buffer_.clear();
        awaiting_.clear();
        bindings_.clear();
    }

    const std::weak_ptr<SocketImpl> socket_;
    const Strand strand_;
    const std::string topic_;
    const std::function<Json()> params_;
    std::atomic<ChannelState> state_{ChannelState::closed};
    std::atomic<milliseconds::rep> timeout_ms_;
    std::atomic<bool> joined_once_{false};
    std::atomic<std::uint64_t> next_binding_ref_{0};
    std::vector<Binding> bindings_;
    std::shared_ptr<PushImpl> join_push_;
    std::vector<std::shared_ptr<PushImpl>> push_buffer_;
    BackoffTimer rejoin_timer_;
    // Pushes listening for a reply, by ref (phoenix.js's chan_reply_<ref> bindings).
    std::unordered_map<std::string, std::weak_ptr<PushImpl>> awaiting_;
    std::uint64_t open_listener_ = 0, error_listener_ = 0;

  private:
    void set_state(ChannelState s) noexcept { state_.store(s); }

    void schedule_rejoin() {
        rejoin_timer_.schedule([self = shared_from_this()] {
            if (self->socket_connected()) self->rejoin();
        });
    }

    void on_join_ok();
    void on_join_error() {
        set_state(ChannelState::errored);
        if (socket_connected()) schedule_rejoin();
    }
    void on_join_timeout() {
        auto leave = std::make_shared<PushImpl>(
            strand_, weak_from_this(), std::string(leave_event), [] { return wire::Payload(); },
            timeout());
        leave->send();
        set_state(ChannelState::errored);
        join_push_->reset();
        if (socket_connected()) schedule_rejoin();
    }
    void on_close();
    void on_error() {
        if (is(ChannelState::joining)) join_push_->reset();
        set_state(ChannelState::errored);
        if (socket_connected()) schedule_rejoin();
    }
};

}  // namespace plume::client::detail
