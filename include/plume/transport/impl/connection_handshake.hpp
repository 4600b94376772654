// plume/transport/impl/connection_handshake.hpp — Connection's opening:
// the server role's HTTP/1.1 requests (keep-alive, pipelining, bodies,
// handlers' answers) up to the upgrade, the client role's reading of the
// server's 101, and the refusals. Included by websocket.hpp, after the class.
#pragma once

#include "plume/transport/websocket.hpp"

namespace plume::transport {

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::handshake_bytes(char* data, std::size_t n) {
    auto& buf = handshake_state().buffer;
    std::size_t searched = buf.size();
    buf.append(data, n);
    auto end = http::find_head_end(buf, searched);
    if (end == std::string::npos) {
        if (buf.size() > options_->max_header_size) client_failed(error::response_too_large);
        return;
    }
    if (end > options_->max_header_size) return client_failed(error::response_too_large);
    std::string rest = buf.substr(end);
    buf.resize(end);
    client_handshake();
    handshake_.reset();
    // Frames the server sent right behind its 101.
    if (!rest.empty() && state_ == state::open) parse_or_keep(rest.data(), rest.size());
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::request_bytes(const char* data, std::size_t n) {
    auto& hs = handshake_state();
    hs.buffer.append(data, n);
    if (state_ == state::http_wait) {
        // The next request, pipelined, waits for this answer; a peer that
        // only sends is cut off.
        if (hs.buffer.size() > options_->max_header_size + options_->max_request_body) finish();
        return;
    }
    next_request();
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::next_request() {
    while (state_ == state::handshake && handshake_) {
        auto& hs = *handshake_;
        if (!hs.head_parsed) {
            auto end = http::find_head_end(hs.buffer, hs.searched);
            if (end == std::string::npos) {
                hs.searched = hs.buffer.size();
                if (hs.buffer.size() > options_->max_header_size)
                    refuse(http::error_response(431, "request head too large"));
                return;
            }
            if (end > options_->max_header_size)
                return refuse(http::error_response(431, "request head too large"));
            hs.server_request = http::Request{};
            if (int status = http::parse_request(std::string_view(hs.buffer).substr(0, end),
                                                 hs.server_request))
                return refuse(http::error_response(status, "malformed request"));
            if (is_upgrade_request(hs.server_request)) {
                std::string rest = hs.buffer.substr(end);
                server_handshake(hs.server_request);
                if (state_ != state::open) return;
                handshake_.reset();
                // Frames the client sent right behind its upgrade request.
                if (!rest.empty()) parse_or_keep(rest.data(), rest.size());
                return;
            }
            auto length = http::body_length(hs.server_request, options_->max_request_body);
            if (length.status)
                return refuse(http::error_response(
                    length.status, length.status == 413 ? "request body too large"
                                   : length.status == 501
                                       ? "only Content-Length request bodies are read"
                                       : "malformed Content-Length"));
            hs.head_end = end;
            hs.body_length = length.length;
            // A client that waits for leave to send its body (curl does
            // for bodies over 1 KiB) gets it at once (RFC 9110 10.1.1).
            if (hs.body_length > 0 && hs.server_request.version_minor >= 1 &&
                http::has_token(hs.server_request.header("expect"), "100-continue") &&
                hs.buffer.size() - end < hs.body_length)
                enqueue(std::make_shared<const std::string>("HTTP/1.1 100 Continue\r\n\r\n"), true);
            hs.head_parsed = true;
        }
        if (hs.buffer.size() - hs.head_end < hs.body_length) return;  // more to come
        hs.server_request.body.assign(hs.buffer, hs.head_end, hs.body_length);
        hs.buffer.erase(0, hs.head_end + hs.body_length);
        hs.head_parsed = false;
        hs.searched = 0;
        dispatch_request();
    }
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::dispatch_request() {
    auto& hs = *handshake_;
    ++hs.requests;
    std::error_code ec;
    auto peer = layer_.lowest_layer().remote_endpoint(ec);
    if constexpr (detail::HasOnHttpAsync<Handler>) {
        state_ = state::http_wait;
        arm_timer(std::chrono::milliseconds(0));  // the handler bounds its answer
        const auto id = ++hs.exchange;
        hs.responder = http::Responder([weak = this->weak_from_this(), id](http::Response r) {
            auto self = weak.lock();
            if (!self) return;
            auto ex = self->get_executor();
            asio::post(ex, [self = std::move(self), id, r = std::move(r)]() mutable {
                self->answer(id, std::move(r));
            });
        });
        handler_.on_http(hs.server_request, peer, hs.responder);
    } else if constexpr (detail::HasOnHttp<Handler, Connection>) {
        state_ = state::http_wait;
        answer(hs.exchange, handler_.on_http(hs.server_request, peer));
    } else {
        refuse(refuse_upgrade(check_upgrade(hs.server_request)));
    }
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::answer(std::uint64_t id, http::Response response) {
    if (state_ != state::http_wait || !handshake_ || handshake_->exchange != id) return;
    auto& hs = *handshake_;
    hs.responder = http::Responder{};
    bool keep = http::keeps_alive(hs.server_request) && !response.says_close() &&
                hs.requests < options_->max_requests_per_connection && !stop_requested();
    // The answer to HEAD has the head of GET's, and no body (RFC 9110 9.3.2).
    const bool head_only = hs.server_request.method == "HEAD";
    hs.server_request = http::Request{};
    if (!keep) {
        if (!response.says_close()) response.set("Connection", "close");
        return refuse(response, head_only);
    }
    response.set("Connection", "keep-alive");
    // Tells clients when an idle connection will be closed, so they do
    // not reuse one as it closes.
    if (options_->keep_alive_timeout.count() > 0)
        response.set("Keep-Alive",
                     "timeout=" + std::to_string(std::max<long long>(
                                      1, options_->keep_alive_timeout.count() / 1000)));
    state_ = state::handshake;
    arm_timer(options_->keep_alive_timeout);
    bool corked = in_read_;
    in_read_ = true;  // the answer and any pipelined ones in one write
    enqueue(serialize(response, head_only), true);
    next_request();
    in_read_ = corked;
    if (!corked) flush();
}

template <class Handler, class NextLayer>
bool Connection<Handler, NextLayer>::stop_requested() const {
    if (!registry_) return false;
    std::lock_guard lock(registry_->mutex);
    return registry_->stopping;
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::server_handshake(const http::Request& req) {
    std::error_code ec;
    auto peer = layer_.lowest_layer().remote_endpoint(ec);
    auto verdict = check_upgrade(req);
    if (!verdict.ok()) return refuse(refuse_upgrade(verdict));

    UpgradeResponse answer;
    if constexpr (detail::HasOnUpgrade<Handler, Connection>) {
        UpgradeRequest view{req, peer, offered_subprotocols(req)};
        handler_.on_upgrade(view, answer);
        if (answer.status != 101) {
            auto r = http::error_response(answer.status, answer.body);
            for (auto& h : answer.headers)
                r.headers.push_back(h);
            return refuse(r);
        }
    }
    std::string extensions;
    if (auto agreed =
            negotiate_deflate(req.header_list("sec-websocket-extensions"), options_->deflate)) {
        extensions = agreed->response_header();
        deflate_ = std::make_unique<DeflateSession>(*agreed, options_->deflate, true);
        parser_.set_deflate(deflate_.get());
    }
    set_subprotocol(answer.subprotocol);
    auto res = switching_protocols(req, answer.subprotocol, extensions);
    for (auto& h : answer.headers)
        res.headers.push_back(h);
    enqueue(std::make_shared<const std::string>(res.to_string()), true);
    open();
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::client_handshake() {
    ServerResponse res;
    if (!parse_response(handshake_->buffer, res)) return client_failed(error::malformed_response);
    if (auto problem = check_server_response(res, handshake_->client_key, handshake_->request);
        !problem.empty())
        return client_failed(
            res.status != 101 ? error::upgrade_refused : error::bad_upgrade_response,
            res.status != 101 ? "HTTP " + std::to_string(res.status) : problem);
    if (auto ext = res.header("sec-websocket-extensions"); !ext.empty()) {
        auto agreed = accept_deflate_response(ext);
        if (!agreed)
            return client_failed(error::bad_upgrade_response,
                                 "unacceptable Sec-WebSocket-Extensions");
        deflate_ = std::make_unique<DeflateSession>(*agreed, options_->deflate, false);
        parser_.set_deflate(deflate_.get());
    }
    set_subprotocol(res.header("sec-websocket-protocol"));
    open();
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::open() {
    state_ = state::open;
    last_activity_ = std::chrono::steady_clock::now();
    arm_timer(options_->idle_timeout);
    if constexpr (detail::HasOnOpen<Handler, Connection>) handler_.on_open(*this);
}

template <class Handler, class NextLayer>
SharedFrame Connection<Handler, NextLayer>::serialize(const http::Response& response,
                                                      bool head_only) {
    auto bytes = response.to_string();
    if (head_only) bytes.resize(bytes.size() - response.body.size());
    return std::make_shared<const std::string>(std::move(bytes));
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::refuse(const http::Response& response, bool head_only) {
    state_ = state::draining;
    enqueue(serialize(response, head_only), true);
    close_queued_ = true;
    arm_timer(options_->close_timeout);
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::client_failed(std::error_code ec, std::string_view detail) {
    detail::report_handshake_error(handler_, *this, ec, detail);
    finish();
}

}  // namespace plume::transport
