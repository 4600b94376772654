// plume/transport/client.hpp — opening a client-role WebSocket connection.
//
//   asio::io_context io;
//   auto conn = plume::transport::connect<MyHandler>(io, "ws://127.0.0.1:9001/socket?x=1",
//                                                    plume::transport::Options{});
//   io.run();   // MyHandler::on_open runs once the server said 101
//
// Failures before the WebSocket opens (DNS, TCP, a refused or malformed
// handshake, the handshake timeout) reach the handler's optional
// on_handshake_error(conn, what); the connection is then closed.
#pragma once

#include <asio.hpp>

#include <charconv>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "plume/transport/websocket.hpp"

namespace plume::transport {

struct Url {
    std::string scheme;  // "ws" or "wss"
    std::string host;
    std::uint16_t port = 0;
    std::string target;  // path plus query, at least "/"
};

/// Parses ws://host[:port][/path][?query] (IPv6 hosts in brackets).
inline std::optional<Url> parse_url(std::string_view s) {
    Url u;
    auto scheme_end = s.find("://");
    if (scheme_end == std::string_view::npos) return std::nullopt;
    u.scheme = std::string(s.substr(0, scheme_end));
    for (auto& c : u.scheme)
        c = http::ascii_lower(c);
    if (u.scheme != "ws" && u.scheme != "wss") return std::nullopt;
    s.remove_prefix(scheme_end + 3);
    auto path_start = s.find_first_of("/?");
    auto authority = s.substr(0, path_start);
    u.target = path_start == std::string_view::npos ? "/" : std::string(s.substr(path_start));
    if (u.target.front() == '?') u.target.insert(0, "/");
    std::string_view port_text;
    if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        u.host = std::string(authority.substr(1, close - 1));
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') return std::nullopt;
            port_text = authority.substr(close + 2);
        }
    } else {
        auto colon = authority.rfind(':');
        u.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    }
    if (u.host.empty()) return std::nullopt;
    u.port = u.scheme == "wss" ? 443 : 80;
    if (!port_text.empty()) {
        unsigned p = 0;
        auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
        if (ec != std::errc{} || end != port_text.data() + port_text.size() || p == 0 || p > 65535)
            return std::nullopt;
        u.port = static_cast<std::uint16_t>(p);
    }
    return u;
}

namespace detail {
template <class H, class C>
void report_handshake_error(C& conn, std::string_view what) {
    if constexpr (HasOnHandshakeError<H, C>) conn.handler().on_handshake_error(conn, what);
}
}  // namespace detail

/// Resolves, connects and starts the WebSocket handshake. Returns the
/// connection at once; it opens asynchronously on its own strand.
template <class Handler>
std::shared_ptr<Connection<Handler>> connect(asio::io_context& io, const Url& url,
                                             std::shared_ptr<const Options> options,
                                             Handler handler = Handler{},
                                             ClientRequest request = {}) {
    using Conn = Connection<Handler>;
    auto strand = asio::make_strand(io);
    auto conn = std::make_shared<Conn>(asio::ip::tcp::socket(strand), std::move(options),
                                       role::client, std::move(handler));
    if (url.scheme != "ws") {
        asio::post(strand, [conn] {
            detail::report_handshake_error<Handler>(*conn, "wss:// needs a TLS next layer");
        });
        return conn;
    }
    bool default_port = url.port == 80;
    request.host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
    if (!default_port) request.host += ":" + std::to_string(url.port);
    request.target = url.target;
    auto resolver = std::make_shared<asio::ip::tcp::resolver>(strand);
    resolver->async_resolve(
        url.host, std::to_string(url.port),
        [conn, resolver, request = std::move(request)](
            std::error_code ec, asio::ip::tcp::resolver::results_type results) mutable {
            if (ec) return detail::report_handshake_error<Handler>(*conn, ec.message());
            asio::async_connect(conn->next_layer(), results,
                                [conn, request = std::move(request)](
                                    std::error_code ec2, const asio::ip::tcp::endpoint&) mutable {
                                    if (ec2)
                                        return detail::report_handshake_error<Handler>(
                                            *conn, ec2.message());
                                    conn->start_client(std::move(request));
                                });
        });
    return conn;
}

template <class Handler>
std::shared_ptr<Connection<Handler>> connect(asio::io_context& io, std::string_view url,
                                             const Options& options, Handler handler = Handler{},
                                             ClientRequest request = {}) {
    auto parsed = parse_url(url);
    if (!parsed) throw std::invalid_argument("not a ws:// URL: " + std::string(url));
    return connect<Handler>(io, *parsed, std::make_shared<const Options>(options),
                            std::move(handler), std::move(request));
}

}  // namespace plume::transport
