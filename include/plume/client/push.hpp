// plume/client/push.hpp — one message a Channel sent (or will send), and what
// became of it: phoenix.js's Push.
//
//   channel.push("new_msg", {{"body", "hi"}})
//       .receive("ok", [](const nlohmann::json& response) { ... })
//       .receive("error", [](const nlohmann::json& reason) { ... })
//       .receive("timeout", [] { ... });
//
//   // or with a completion token, e.g. in a coroutine:
//   auto [ec, reply] = co_await channel.push("ping").async_reply(
//       asio::as_tuple(asio::use_awaitable));
//
// Every push settles: with the server's reply, with "timeout" when none came
// in time (the timer starts when the push is made, also while it waits in a
// buffer, and restarts when it is actually sent — phoenix.js's rule), or with
// "error" at once when it cannot be sent at all ({"reason":"buffer_full"},
// an unencodable payload, or {"reason":"socket closed"}).
//
// A Push is a cheap handle (shared ownership); callbacks run on the socket's
// strand. receive() may be called from any thread.
#pragma once

#include <asio.hpp>

#include <memory>
#include <string>
#include <utility>

#include "plume/client/detail/core.hpp"
#include "plume/client/detail/handlers.hpp"

namespace plume::client {

class Push {
  public:
    Push() = default;
    explicit Push(std::shared_ptr<detail::PushImpl> impl) : impl_(std::move(impl)) {}

    /// Calls `callback(response)` when the push receives `status`: "ok",
    /// "error", "timeout", or any other status the server replies with.
    /// Registered after that answer already came, it is called at once.
    /// The callback takes (const nlohmann::json&), (const wire::Payload&) or
    /// nothing. Join pushes keep their callbacks: they fire on every rejoin.
    template <class F>
    Push& receive(std::string status, F&& callback) {
        auto handler = detail::response_handler(std::forward<F>(callback));
        asio::dispatch(impl_->strand_, [impl = impl_, status = std::move(status),
                                        handler = std::move(handler)]() mutable {
            impl->receive(std::move(status), std::move(handler));
        });
        return *this;
    }

    /// Waits for the push's answer (the current one if it has settled) with
    /// an Asio completion token; signature void(std::error_code, Reply).
    /// ec is empty for "ok", error::timeout for a timeout, error::reply_error
    /// for any other status (see reply.status), error::socket_closed when the
    /// Socket was destroyed first.
    template <class Token>
    auto async_reply(Token&& token) {
        return asio::async_initiate<Token, void(std::error_code, Reply)>(
            [](auto handler, std::shared_ptr<detail::PushImpl> impl) {
                using Handler = decltype(handler);
                auto shared = std::make_shared<Handler>(std::move(handler));
                auto ex = asio::prefer(asio::get_associated_executor(*shared, impl->strand_),
                                       asio::execution::outstanding_work.tracked);
                asio::dispatch(impl->strand_, [impl, shared, ex] {
                    impl->wait([shared, ex](std::error_code ec, const Reply& reply) {
                        asio::post(ex, [shared, ec, reply]() mutable {
                            std::move (*shared)(ec, std::move(reply));
                        });
                    });
                });
            },
            token, impl_);
    }

    /// The event this push carries.
    const std::string& event() const noexcept { return impl_->event_; }
    explicit operator bool() const noexcept { return impl_ != nullptr; }

  private:
    std::shared_ptr<detail::PushImpl> impl_;
};

}  // namespace plume::client
