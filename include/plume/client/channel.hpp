// plume/client/channel.hpp — a topic joined over a client Socket:
// phoenix.js's Channel.
//
//   auto room = socket.channel("room:lobby", {{"token", token}});
//   room.on("new_msg", [](const nlohmann::json& msg) { std::cout << msg["body"] << "\n"; });
//   room.join()
//       .receive("ok", [](const nlohmann::json& resp) { ... })
//       .receive("error", [](const nlohmann::json& reason) { ... });
//   room.push("new_msg", {{"body", "hi"}}).receive("ok", [] { ... });
//
// Resilience, as in phoenix.js: pushes made before the join succeeded (or
// while offline) wait in a buffer and go out after the (re)join, each with
// the channel's current join_ref; a join that fails, times out, or is undone
// by a phx_error from the server or a lost connection is retried with
// rejoin_after backoff (immediately when the socket reconnects); a phx_close
// from the server, or leave(), closes the channel for good. Messages tagged
// with an earlier join_ref are dropped (phoenix.js's isMember).
//
// Thread safety: every method may be called from any thread; the work runs
// on the socket's strand (at once when already there, else posted, in call
// order). Callbacks run on that strand. join_ref() is for use on the strand.
#pragma once

#include <asio.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "plume/client/detail/core.hpp"
#include "plume/client/detail/handlers.hpp"
#include "plume/client/push.hpp"

namespace plume::client {

class Presence;

/// Identifies one on() callback, for off().
using BindingRef = std::uint64_t;

class Channel {
  public:
    Channel() = default;
    explicit Channel(std::shared_ptr<detail::ChannelImpl> impl) : impl_(std::move(impl)) {}

    const std::string& topic() const noexcept { return impl_->topic_; }
    /// closed, joining, joined, errored or leaving; readable from any thread.
    ChannelState state() const noexcept { return impl_->state(); }
    bool is_joined() const noexcept { return state() == ChannelState::joined; }

    /// Joins (once per Channel object; a second call throws
    /// std::logic_error, as phoenix.js does). The returned join push fires
    /// its "ok"/"error"/"timeout" callbacks on every (re)join attempt.
    Push join(std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
        if (impl_->joined_once_.exchange(true))
            throw std::logic_error(
                "tried to join multiple times: join() can only be called "
                "once per channel object");
        auto t = timeout.value_or(impl_->timeout());
        asio::dispatch(impl_->strand_, [impl = impl_, t] { impl->join(t); });
        return Push(impl_->join_push_);
    }

    /// Sends `event` with a JSON payload (the server's handle_in): usually an
    /// object, but any JSON value goes, as with phoenix.js and Phoenix.
    /// Before join() this throws std::logic_error (phoenix.js does too).
    Push push(std::string event, nlohmann::json payload = nlohmann::json::object(),
              std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
        return push_payload(std::move(event), wire::Payload(std::move(payload)), timeout);
    }
    /// Sends `event` with a binary payload (a V2 binary frame).
    Push push_binary(std::string event, std::string bytes,
                     std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
        return push_payload(std::move(event), wire::Payload(wire::Binary{std::move(bytes)}),
                            timeout);
    }
    /// Sends a wire::Payload (JSON or binary) as it is.
    template <std::same_as<wire::Payload> P>
    Push push(std::string event, P payload,
              std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
        return push_payload(std::move(event), std::move(payload), timeout);
    }

    /// Leaves: tells the server (when connected) and closes the channel at
    /// once — the on_close callbacks get "leave" — without waiting for the
    /// server's answer, exactly like phoenix.js. No rejoin follows.
    Push leave(std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
        auto t = timeout.value_or(impl_->timeout());
        auto p = std::make_shared<detail::PushImpl>(
            impl_->strand_, impl_, std::string(detail::leave_event), [] { return wire::Payload(); },
            t);
        asio::dispatch(impl_->strand_, [impl = impl_, p] { impl->leave(p); });
        return Push(p);
    }

    /// Calls `callback` for every `event` on this channel (server pushes,
    /// broadcasts). It takes (const nlohmann::json& payload),
    /// (const wire::Payload&), (const client::Event&) or nothing.
    template <class F>
    BindingRef on(std::string event, F&& callback) {
        auto ref = ++impl_->next_binding_ref_;
        auto handler = detail::event_handler(std::forward<F>(callback));
        asio::dispatch(impl_->strand_, [impl = impl_, event = std::move(event), ref,
                                        handler = std::move(handler)]() mutable {
            impl->add_binding(std::move(event), ref, std::move(handler));
        });
        return ref;
    }
    /// phx_close: the server closed the channel, or leave() did ("leave").
    template <class F>
    BindingRef on_close(F&& callback) {
        return on(std::string(detail::close_event), std::forward<F>(callback));
    }
    /// phx_error: the channel crashed on the server, or the connection was
    /// lost ({"source":"transport","reason":...}); a rejoin follows.
    template <class F>
    BindingRef on_error(F&& callback) {
        return on(std::string(detail::error_event), std::forward<F>(callback));
    }
    /// Removes one callback of `event`, or all of them without a ref.
    void off(std::string event, std::optional<BindingRef> ref = std::nullopt) {
        asio::dispatch(impl_->strand_, [impl = impl_, event = std::move(event), ref] {
            impl->remove_bindings(event, ref);
        });
    }

    /// The ref of the current join (every push carries it); on the strand only.
    const std::optional<std::string>& join_ref() const noexcept { return impl_->join_ref(); }

    /// The socket's strand, where callbacks run.
    const detail::Strand& get_executor() const noexcept { return impl_->strand_; }
    explicit operator bool() const noexcept { return impl_ != nullptr; }

  private:
    friend class Presence;

    Push push_payload(std::string event, wire::Payload payload,
                      std::optional<std::chrono::milliseconds> timeout) {
        if (!impl_->joined_once_.load())
            throw std::logic_error("tried to push '" + event + "' to '" + impl_->topic_ +
                                   "' before joining: call join() first");
        auto t = timeout.value_or(impl_->timeout());
        std::weak_ptr<detail::ChannelImpl> weak = impl_;
        auto shared_payload = std::make_shared<const wire::Payload>(std::move(payload));
        auto p = std::make_shared<detail::PushImpl>(
            impl_->strand_, weak, std::move(event), [shared_payload] { return *shared_payload; },
            t);
        asio::dispatch(impl_->strand_, [impl = impl_, p] { impl->push(p); });
        return Push(p);
    }

    std::shared_ptr<detail::ChannelImpl> impl_;
};

}  // namespace plume::client
