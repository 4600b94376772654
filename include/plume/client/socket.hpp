// plume/client/socket.hpp — a connection to a Phoenix (or plume) server:
// phoenix.js's Socket, resilient by default.
//
//   asio::io_context io;
//   plume::client::Socket socket(io, {.url = "ws://127.0.0.1:4000/socket",
//                                     .params = {{"user_id", "alice"}}});
//   socket.on_open([] { std::cerr << "connected\n"; });
//   socket.on_close([](std::uint16_t code, const std::string& why) { ... });
//   socket.on_error([](std::error_code ec, const std::string& detail) { ... });
//   auto room = socket.channel("room:lobby");
//   room.join();
//   socket.connect();
//   io.run();
//
// What it does for you (phoenix.js 1.8.16's rules):
//   * connects to <url>/websocket?<params>&vsn=2.0.0, with authToken as
//     Sec-WebSocket-Protocol "phoenix, base64url.bearer.phx.<base64>";
//   * reconnects whenever the connection closes or cannot be made, whatever
//     the close code, with reconnect_after backoff — until disconnect();
//   * heartbeats on topic "phoenix"; a missing reply closes the connection
//     with 1000 "heartbeat timeout" and reconnects;
//   * errors the joined channels when the connection goes, and rejoins them
//     when it comes back, with fresh join_refs;
//   * buffers joins/leaves made while offline and sends them on open, minus
//     those of joins that are no longer current (phoenix.js's isOutdated).
//     Channel pushes made while offline or before the join wait in their
//     channel and go out after the rejoin; max_buffered_pushes bounds them
//     (a push over the bound is refused with "error" {"reason":"buffer_full"}).
//
// Bad input from the server never throws: it goes to on_error (see
// client/error.hpp) and the message is ignored; a push that never gets its
// reply settles with "timeout".
//
// Threading: the socket, its channels and pushes live on one strand of the
// executor. Every public function may be called from any thread: it runs at
// once when called on that strand, otherwise it is posted there (in call
// order). Callbacks run on the strand and should not throw (an exception
// leaves io_context::run()). Destroy the Socket on its strand, or while no
// thread runs its handlers (like any Asio I/O object): destruction closes the
// connection, stops every timer and releases every callback — receive()
// callbacks of unanswered pushes are dropped, async_reply waiters complete
// with error::socket_closed. Channel and Push handles stay valid but inert
// (a later push or join gets "error" {"reason":"socket closed"}). Note that
// disconnect() alone, like phoenix.js's, leaves push timeouts running.
#pragma once

#include <asio.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "plume/client/channel.hpp"
#include "plume/client/detail/core.hpp"
#include "plume/client/options.hpp"

namespace plume::client {

/// Identifies one socket callback, for off().
using CallbackRef = std::uint64_t;

class Socket {
  public:
    using executor_type = detail::Strand;

    /// Throws std::invalid_argument for a URL that is not ws://host[:port]/path
    /// or an unsupported vsn. Does not connect: call connect().
    Socket(asio::io_context& io, SocketOptions options)
        : Socket(io.get_executor(), std::move(options)) {}
    Socket(const asio::any_io_executor& executor, SocketOptions options)
        : impl_(std::make_shared<detail::SocketImpl>(executor, std::move(options))) {}

    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    Socket(Socket&&) noexcept = default;
    Socket& operator=(Socket&& other) noexcept {
        if (this != &other) {
            if (impl_) impl_->shutdown();
            impl_ = std::move(other.impl_);
        }
        return *this;
    }
    ~Socket() {
        if (impl_) impl_->shutdown();
    }

    /// Connects (no-op while connected or connecting). Reconnects follow on
    /// their own until disconnect().
    void connect() {
        asio::dispatch(impl_->strand(), [impl = impl_] { impl->connect(); });
    }

    /// Closes the connection with `code` and stops reconnecting; channels
    /// are errored and rejoin if connect() is called again.
    void disconnect(std::uint16_t code = 1000, std::string reason = {}) {
        asio::dispatch(impl_->strand(), [impl = impl_, code, reason = std::move(reason)] {
            impl->disconnect(code, reason);
        });
    }

    /// A channel for `topic`, joined with `params` (re-sent on every rejoin).
    Channel channel(std::string topic, nlohmann::json params = nlohmann::json::object()) {
        return make_channel(std::move(topic), [params = std::move(params)] { return params; });
    }
    /// A channel whose join params are computed at every (re)join.
    Channel channel(std::string topic, std::function<nlohmann::json()> params) {
        return make_channel(std::move(topic), std::move(params));
    }

    CallbackRef on_open(std::function<void()> callback) {
        auto ref = impl_->next_callback_ref();
        asio::dispatch(impl_->strand(), [impl = impl_, ref, cb = std::move(callback)]() mutable {
            impl->add_open(ref, std::move(cb));
        });
        return ref;
    }
    /// Every time a connection closes (by the server, the network, a
    /// heartbeat timeout, disconnect()) or an attempt fails (1006).
    CallbackRef on_close(std::function<void(std::uint16_t code, const std::string& reason)> cb) {
        auto ref = impl_->next_callback_ref();
        asio::dispatch(impl_->strand(), [impl = impl_, ref, cb = std::move(cb)]() mutable {
            impl->add_close(ref, std::move(cb));
        });
        return ref;
    }
    /// Connection failures and bad input from the server; see error.hpp.
    CallbackRef on_error(std::function<void(std::error_code, const std::string& detail)> cb) {
        auto ref = impl_->next_callback_ref();
        asio::dispatch(impl_->strand(), [impl = impl_, ref, cb = std::move(cb)]() mutable {
            impl->add_error(ref, std::move(cb));
        });
        return ref;
    }
    /// Every message received, after the channels saw it. With such a
    /// callback, unknown topics and unbound events are not reported as errors.
    CallbackRef on_message(std::function<void(const Event&)> cb) {
        auto ref = impl_->next_callback_ref();
        asio::dispatch(impl_->strand(), [impl = impl_, ref, cb = std::move(cb)]() mutable {
            impl->add_message(ref, std::move(cb));
        });
        return ref;
    }
    void off(CallbackRef ref) {
        asio::dispatch(impl_->strand(), [impl = impl_, ref] { impl->off(ref); });
    }

    /// Sends an extra heartbeat and calls back with the round trip time.
    /// False when not connected (then nothing is sent).
    bool ping(std::function<void(std::chrono::milliseconds rtt)> callback) {
        if (!impl_->is_connected()) return false;
        asio::dispatch(impl_->strand(), [impl = impl_, cb = std::move(callback)]() mutable {
            impl->ping(std::move(cb));
        });
        return true;
    }

    bool is_connected() const noexcept { return impl_->is_connected(); }
    ConnectionState connection_state() const noexcept { return impl_->connection_state(); }
    /// The URL the next attempt connects to.
    std::string endpoint_url() const { return impl_->current_endpoint_url(); }
    const SocketOptions& options() const noexcept { return impl_->options(); }
    const executor_type& get_executor() const noexcept { return impl_->strand(); }

  private:
    Channel make_channel(std::string topic, std::function<nlohmann::json()> params) {
        auto ch =
            detail::ChannelImpl::create(impl_, impl_->strand(), std::move(topic), std::move(params),
                                        impl_->options().timeout, impl_->options().rejoin_after);
        asio::dispatch(impl_->strand(), [impl = impl_, ch] { impl->add_channel(ch); });
        return Channel(ch);
    }

    std::shared_ptr<detail::SocketImpl> impl_;
};

}  // namespace plume::client
