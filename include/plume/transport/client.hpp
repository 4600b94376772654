// plume/transport/client.hpp — opening a client-role WebSocket connection.
//
//   asio::io_context io;
//   auto conn = plume::transport::connect<MyHandler>(io, "ws://127.0.0.1:9001/socket?x=1",
//                                                    plume::transport::Options{});
//   io.run();   // MyHandler::on_open runs once the server said 101
//
// Failures before the WebSocket opens reach the handler's optional
// on_handshake_error(conn, std::error_code, std::string_view detail): DNS and
// TCP with their system codes, a refused or malformed handshake, TLS and the
// handshake timeout as transport::error (error.hpp). The older
// on_handshake_error(conn, what) gets the message as text. The connection is
// then closed.
//
// ClientRequest::local_address binds the connection to a source address
// first (many client connections to one server: 127.0.0.2, 127.0.0.3, ...).
#pragma once

#include <asio.hpp>

#include <charconv>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "plume/transport/executor.hpp"
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
void report_handshake_error(C& conn, std::error_code ec) {
    report_handshake_error(conn.handler(), conn, ec);
}

using Endpoints = asio::ip::tcp::resolver::results_type;

// Tries the endpoints from `it` on in order, each from `local` when given
// (then only those of its address family). asio::async_connect cannot do
// this: it reopens the socket for every endpoint, which drops a bind made
// before, and it would go on to the next endpoint after conn was finished.
template <class Conn, class Handler>
void connect_from(Conn& conn, Endpoints endpoints, Endpoints::iterator it,
                  const std::optional<asio::ip::address>& local, std::error_code last,
                  Handler handler) {
    auto& socket = conn.next_layer().lowest_layer();
    for (; it != endpoints.end(); ++it) {
        if (conn.finished()) return handler(make_error_code(asio::error::operation_aborted));
        const auto remote = it->endpoint();
        if (local && remote.address().is_v4() != local->is_v4()) continue;
        std::error_code ec;
        socket.close(ec);  // nothing is pending on it between attempts
        socket.open(remote.protocol(), ec);
        if (!ec && local) {
#if defined(IP_BIND_ADDRESS_NO_PORT)
            // Leave the port to connect(): then it need only be unique per
            // 4-tuple, not per local address, so bind() cannot run out of ports.
            std::error_code ignored;
            socket.set_option(
                asio::detail::socket_option::boolean<IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT>(true),
                ignored);
#endif
            socket.bind(asio::ip::tcp::endpoint(*local, 0), ec);
        }
        if (ec) {
            last = ec;
            continue;
        }
        auto next = std::next(it);
        conn.connect_started();
        socket.async_connect(remote, [&conn, endpoints = std::move(endpoints), next, local,
                                      handler = std::move(handler)](std::error_code ec) mutable {
            // Finished meanwhile (a close, a timeout): no further attempt.
            if (!conn.connect_done() || ec == asio::error::operation_aborted)
                return handler(make_error_code(asio::error::operation_aborted));
            if (!ec) return handler(ec);
            connect_from(conn, std::move(endpoints), next, local, ec, std::move(handler));
        });
        return;
    }
    handler(last ? last : make_error_code(asio::error::address_family_not_supported));
}

/// Before a client TLS handshake with `host`: SNI (a host name, never an
/// address: RFC 6066 3) and the check that the certificate names `host`
/// (when the context verifies peers).
inline void prepare_client_tls(TlsStream& tls, const std::string& host) {
    tls.set_host(host);
}

inline void prepare_client_tls(AsioTlsSocket& tls, const std::string& host) {
    std::error_code ec;
    (void)asio::ip::make_address(host, ec);
    if (ec) SSL_set_tlsext_host_name(tls.native_handle(), host.c_str());
    tls.set_verify_callback(asio::ssl::host_name_verification(host));
}

/// Connects `conn`'s socket to one of `endpoints`, from `local` when given;
/// `handler(std::error_code)`. `conn` must outlive the operation (the handler
/// usually holds it). Closing `conn` meanwhile ends the attempt with
/// operation_aborted.
template <class Conn, class Handler>
void async_connect(Conn& conn, const Endpoints& endpoints,
                   const std::optional<asio::ip::address>& local, Handler handler) {
    connect_from(conn, endpoints, endpoints.begin(), local, {}, std::move(handler));
}
}  // namespace detail

/// Resolves, connects and starts the WebSocket handshake. Returns the
/// connection at once; it opens asynchronously on its own strand (or on
/// the io_context itself when one thread runs it, see executor.hpp). ws:// runs
/// over plain TCP, wss:// over NextLayer = TlsSocket with `stream` holding a
/// client context (client_tls_context(): the server's certificate is checked
/// against the system CAs and the URL's host, which is also sent as SNI).
template <class Handler, class NextLayer = asio::ip::tcp::socket>
std::shared_ptr<Connection<Handler, NextLayer>> connect(
    asio::io_context& io, const Url& url, std::shared_ptr<const Options> options,
    Handler handler = Handler{}, ClientRequest request = {},
    typename StreamTraits<NextLayer>::Context stream = {}) {
    using Conn = Connection<Handler, NextLayer>;
    using traits = StreamTraits<NextLayer>;
    asio::any_io_executor executor = detail::connection_executor(io);
    std::error_code wrong;
    if ((url.scheme == "wss") != traits::is_tls) wrong = error::scheme_mismatch;
    if constexpr (traits::is_tls) {
        if (!stream.ssl) {
            stream.ssl = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
            wrong = error::no_tls_context;
        }
    }
    auto conn = std::make_shared<Conn>(traits::make(asio::ip::tcp::socket(executor), stream),
                                       std::move(options), role::client, std::move(handler));
    if (wrong) {
        asio::post(executor,
                   [conn, wrong] { detail::report_handshake_error<Handler>(*conn, wrong); });
        return conn;
    }
    if constexpr (traits::is_tls) detail::prepare_client_tls(conn->next_layer(), url.host);
    bool default_port = url.port == (traits::is_tls ? 443 : 80);
    request.host = url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
    if (!default_port) request.host += ":" + std::to_string(url.port);
    request.target = url.target;
    auto resolver = std::make_shared<asio::ip::tcp::resolver>(executor);
    resolver->async_resolve(
        url.host, std::to_string(url.port),
        [conn, resolver, request = std::move(request)](
            std::error_code ec, asio::ip::tcp::resolver::results_type results) mutable {
            if (ec) return detail::report_handshake_error<Handler>(*conn, ec);
            auto local = request.local_address;
            detail::async_connect(
                *conn, results, local,
                [conn, request = std::move(request)](std::error_code ec2) mutable {
                    if (ec2) return detail::report_handshake_error<Handler>(*conn, ec2);
                    conn->start_client(std::move(request));
                });
        });
    return conn;
}

template <class Handler, class NextLayer = asio::ip::tcp::socket>
std::shared_ptr<Connection<Handler, NextLayer>> connect(
    asio::io_context& io, std::string_view url, const Options& options, Handler handler = Handler{},
    ClientRequest request = {}, typename StreamTraits<NextLayer>::Context stream = {}) {
    auto parsed = parse_url(url);
    if (!parsed) throw std::invalid_argument("not a ws:// or wss:// URL: " + std::string(url));
    return connect<Handler, NextLayer>(io, *parsed, std::make_shared<const Options>(options),
                                       std::move(handler), std::move(request), std::move(stream));
}

}  // namespace plume::transport
