// plume/client/detail/push_impl.hpp — PushImpl, phoenix.js's push.js: one
// message sent on a channel, its ref, its receive hooks and its timeout. The
// definitions that need ChannelImpl and SocketImpl are in core.hpp.
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

#include "plume/client/detail/protocol.hpp"
#include "plume/client/detail/timer.hpp"
#include "plume/client/error.hpp"
#include "plume/client/options.hpp"
#include "plume/detail/base64.hpp"
#include "plume/transport/client.hpp"
#include "plume/wire/v1_json.hpp"
#include "plume/wire/v2_json.hpp"
#include "plume/wire/vsn.hpp"

namespace plume::client::detail {

// ----------------------------------------------------------------- Push --

class PushImpl : public std::enable_shared_from_this<PushImpl> {
  public:
    PushImpl(const Strand& strand, std::weak_ptr<ChannelImpl> channel, std::string event,
             std::function<wire::Payload()> payload, milliseconds timeout, bool persistent = false)
        : strand_(strand),
          channel_(std::move(channel)),
          event_(std::move(event)),
          payload_(std::move(payload)),
          timeout_(timeout),
          persistent_(persistent),
          timer_(strand) {}

    void send();
    void resend(milliseconds timeout) {
        timeout_ = timeout;
        reset();
        send();
    }
    void reset() {
        cancel_ref_event();
        ref_.reset();
        received_.reset();
        sent_ = false;
    }
    void start_timeout();
    void cancel_timeout() { timer_.cancel(); }
    void cancel_ref_event();

    void receive(std::string status, ResponseHandler handler) {
        if (has_received(status)) handler(received_->response);
        // An answered push other than a join is final: nothing to keep.
        if (received_ && !persistent_) return;
        hooks_.emplace_back(std::move(status), std::move(handler));
    }

    /// One-shot: the next settlement (or the current one, if settled).
    void wait(Waiter w) {
        if (received_) return w(status_code(received_->status), *received_);
        waiters_.push_back(std::move(w));
    }

    /// phoenix.js's push.trigger: goes through the ref binding, so it does
    /// nothing once the push was reset or already received its answer.
    void trigger(std::string status, wire::Payload response) {
        if (!listening_) return;
        on_reply(Reply{std::move(status), std::move(response)});
    }

    /// The ref binding fired: a reply, or the local timeout.
    void on_reply(Reply r) {
        cancel_ref_event();
        cancel_timeout();
        unbuffer();
        settle(std::move(r));
    }

    /// Records the answer and calls the matching receive hooks and waiters.
    void settle(Reply r) {
        auto answer = std::make_shared<const Reply>(std::move(r));
        received_ = answer;
        std::vector<ResponseHandler> matching;
        for (auto& [status, handler] : hooks_)
            if (status == answer->status) matching.push_back(handler);
        // Only a join push is ever sent again; other pushes drop their hooks
        // once answered (a later receive() still replays the answer), which
        // frees callbacks that capture handles.
        if (!persistent_) hooks_.clear();
        for (auto& handler : matching)
            handler(answer->response);
        if (!waiters_.empty()) {
            auto waiters = std::move(waiters_);
            waiters_.clear();
            auto ec = status_code(answer->status);
            for (auto& w : waiters)
                w(ec, *answer);
        }
    }

    bool has_received(std::string_view status) const {
        return received_ && received_->status == status;
    }

    /// Leaves its channel's push buffer (answered while buffered).
    void unbuffer();

    /// The socket shut down: no answer will come.
    void abandon() {
        cancel_timeout();
        listening_ = false;
        buffered_ = false;
        hooks_.clear();
        auto waiters = std::move(waiters_);
        waiters_.clear();
        Reply gone{"error", reason("socket closed")};
        for (auto& w : waiters)
            w(error::socket_closed, gone);
    }

    const Strand strand_;
    const std::weak_ptr<ChannelImpl> channel_;
    const std::string event_;
    const std::function<wire::Payload()> payload_;
    milliseconds timeout_;
    const bool persistent_;
    Timer timer_;
    std::optional<std::string> ref_;
    bool listening_ = false;  // phoenix.js's refEvent binding is in place
    bool buffered_ = false;   // waiting in its channel's push buffer
    bool sent_ = false;
    bool tracked_ = false;  // known to the socket's shutdown()
    std::shared_ptr<const Reply> received_;
    std::vector<std::pair<std::string, ResponseHandler>> hooks_;
    std::vector<Waiter> waiters_;
};

}  // namespace plume::client::detail
