// plume/transport/handler.hpp — what a Connection's Handler provides: the
// required on_message/on_close (ConnectionHandler) and the optional hooks it
// looks for at compile time (on_upgrade, on_http, on_open, on_pong,
// on_handshake_error, on_finish).
#pragma once

#include <asio.hpp>

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include "plume/transport/frame.hpp"
#include "plume/transport/http.hpp"
#include "plume/transport/http_exchange.hpp"
#include "plume/transport/upgrade.hpp"

namespace plume::transport {

namespace detail {

template <class H, class C>
concept HasOnUpgrade = requires(H& h, const UpgradeRequest& req, UpgradeResponse& res) {
    h.on_upgrade(req, res);
};
template <class H, class C>
concept HasOnHttp = requires(H& h, const http::Request& req, const asio::ip::tcp::endpoint& peer) {
    { h.on_http(req, peer) } -> std::convertible_to<http::Response>;
};
template <class H>
concept HasOnHttpAsync = requires(H& h, const http::Request& req,
                                  const asio::ip::tcp::endpoint& peer, http::Responder r) {
    h.on_http(req, peer, r);
};
template <class H, class C>
concept HasOnOpen = requires(H& h, C& c) {
    h.on_open(c);
};
template <class H, class C>
concept HasOnPong = requires(H& h, C& c, std::string_view s) {
    h.on_pong(c, s);
};
// on_handshake_error(conn, std::error_code, std::string_view detail), or the
// older on_handshake_error(conn, std::string_view what).
template <class H, class C>
concept HasOnHandshakeErrorCode = requires(H& h, C& c, std::error_code ec, std::string_view s) {
    h.on_handshake_error(c, ec, s);
};
template <class H, class C>
concept HasOnHandshakeErrorText = requires(H& h, C& c, std::string_view s) {
    h.on_handshake_error(c, s);
};
template <class H, class C>
concept HasOnHandshakeError = HasOnHandshakeErrorCode<H, C> || HasOnHandshakeErrorText<H, C>;

/// Tells the handler why its connection did not open (if it wants to know).
template <class H, class C>
void report_handshake_error(H& h, C& c, std::error_code ec, std::string_view detail = {}) {
    if constexpr (HasOnHandshakeErrorCode<H, C>) {
        h.on_handshake_error(c, ec, detail);
    } else if constexpr (HasOnHandshakeErrorText<H, C>) {
        auto what = ec.message();
        if (!detail.empty()) what += ": " + std::string(detail);
        h.on_handshake_error(c, std::string_view(what));
    }
}

}  // namespace detail

/// What every Handler must provide; on_upgrade, on_http, on_open, on_pong,
/// on_handshake_error and on_finish(conn) (the connection is done: after
/// on_close, before the socket closes; lane_stats() are final) are optional.
template <class H, class C>
concept ConnectionHandler = requires(H& h, C& c, opcode op, std::string_view s,
                                     std::uint16_t code) {
    h.on_message(c, op, s);
    h.on_close(c, code, s);
};

}  // namespace plume::transport
