// plume/transport/http_exchange.hpp — one HTTP request and its answer on a
// kept-alive connection: how long the body is, whether the connection stays
// open afterwards, and a Responder that answers now or later.
//
// A Handler with
//     void on_http(const http::Request& req, const asio::ip::tcp::endpoint& peer,
//                  http::Responder responder);
// answers when it likes (a long poll holds its request until there is
// something to say) and from any thread; the connection reads nothing more
// than the next request's bytes meanwhile, and cancels the Responder when the
// peer goes away first. A Handler whose on_http returns a Response answers at
// once. Requests on one connection are answered one at a time, in order.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <utility>

#include "plume/transport/http.hpp"

namespace plume::transport::http {

/// Answers one request, once: the first send() wins, later ones are ignored.
/// Copies share the request. Thread-safe.
class Responder {
  public:
    using Deliver = std::function<void(Response)>;

    Responder() = default;
    explicit Responder(Deliver deliver) : state_(std::make_shared<State>()) {
        state_->deliver = std::move(deliver);
    }

    /// Answers the request (on the connection's own executor, posted); false
    /// when it was answered or cancelled already.
    bool send(Response response) const {
        Deliver deliver;
        {
            std::lock_guard lock(state_->mutex);
            if (state_->done) return false;
            state_->done = true;
            state_->cancel = nullptr;
            deliver = std::move(state_->deliver);
        }
        deliver(std::move(response));
        return true;
    }

    /// Runs `f` if the connection ends before the request is answered (at
    /// once if it already has). Replaces an earlier callback.
    void on_cancel(std::function<void()> f) const {
        {
            std::lock_guard lock(state_->mutex);
            if (!state_->cancelled) {
                if (!state_->done) state_->cancel = std::move(f);
                return;
            }
        }
        if (f) f();
    }

    /// The connection ended before an answer.
    bool cancelled() const {
        std::lock_guard lock(state_->mutex);
        return state_->cancelled;
    }
    /// Answered (or cancelled): a send() would do nothing.
    bool done() const {
        std::lock_guard lock(state_->mutex);
        return state_->done;
    }
    explicit operator bool() const noexcept { return state_ != nullptr; }

    /// Used by the connection that reads the request.
    void cancel() const {
        std::function<void()> f;
        {
            std::lock_guard lock(state_->mutex);
            if (state_->done) return;
            state_->done = state_->cancelled = true;
            state_->deliver = nullptr;
            f = std::move(state_->cancel);
        }
        if (f) f();
    }

  private:
    struct State {
        std::mutex mutex;
        bool done = false;
        bool cancelled = false;
        Deliver deliver;
        std::function<void()> cancel;
    };
    std::shared_ptr<State> state_;
};

/// How much body follows a request head: `length` bytes, or `status` to
/// refuse it with (400 malformed Content-Length, 413 over `max_body`, 501 a
/// Transfer-Encoding: plume reads only Content-Length bodies, which is what
/// browsers and fetch() send for a string body).
struct BodyLength {
    std::size_t length = 0;
    int status = 0;
};

inline BodyLength body_length(const Request& req, std::size_t max_body) {
    if (req.has_header("transfer-encoding")) return {0, 501};
    if (req.header_count("content-length") > 1) return {0, 400};
    auto value = req.header("content-length");
    if (value.empty()) return {0, req.has_header("content-length") ? 400 : 0};
    std::size_t n = 0;
    for (char c : value) {
        if (c < '0' || c > '9') return {0, 400};
        if (n > (max_body + 1) / 10 + 1) return {0, 413};  // no overflow on long digits
        n = n * 10 + static_cast<std::size_t>(c - '0');
    }
    if (n > max_body) return {0, 413};
    return {n, 0};
}

/// Whether the client lets the connection stay open after this request:
/// HTTP/1.1 unless it says "Connection: close"; HTTP/1.0 only with
/// "Connection: keep-alive".
inline bool keeps_alive(const Request& req) {
    auto connection = req.header_list("connection");
    if (req.version_minor == 0) return has_token(connection, "keep-alive");
    return !has_token(connection, "close");
}

}  // namespace plume::transport::http
