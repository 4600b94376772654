// plume/transport/stream.hpp — the stream policy: what a Connection needs to
// know about the byte stream under it (the NextLayer of Connection<Handler,
// NextLayer>), so plain TCP, TLS, or a stream of the host's own plug in
// without touching the connection.
//
//   plume::transport::Connection<Echo>                          // TCP (asio::ip::tcp::socket)
//   plume::transport::Connection<Echo, plume::transport::TlsSocket>   // TLS over TCP
//   plume::transport::Connection<Echo, plume::transport::AsioTlsSocket>  // asio::ssl::stream
//
// A host stream type gets its own specialization of StreamTraits (see the
// TCP one below for what it provides): whether the connection may read and
// write it speculatively (non-blocking system calls before any wait), how a
// new connection starts (e.g. a TLS handshake), and how it ends (e.g. TLS
// close_notify). Its lowest_layer() must be a TCP socket.
#pragma once

#include <asio.hpp>
#include <asio/ssl.hpp>

#include <memory>
#include <system_error>
#include <type_traits>
#include <utility>

#include "plume/transport/parser.hpp"  // role
#include "plume/transport/tls_stream.hpp"

namespace plume::transport {

/// TLS over TCP: OpenSSL on the socket itself (tls_stream.hpp).
using TlsSocket = TlsStream;
/// TLS over TCP through asio::ssl::stream: its engine and buffers (~67 KiB
/// per connection), one record per buffer written. Kept as a second TLS
/// stream policy (and for comparison in benchmarks/tls_overhead).
using AsioTlsSocket = asio::ssl::stream<asio::ip::tcp::socket>;

/// The policy of plain TCP, and the default for any stream type.
template <class NextLayer>
struct StreamTraits {
    /// What a server needs to make a stream of an accepted socket.
    struct Context {};
    static constexpr bool is_tls = false;
    /// Non-blocking read_some/write_some are allowed before any wait (one
    /// system call when bytes are there, no completion handler).
    static constexpr bool speculative = true;
    /// The stream can wait until it is readable without a buffer (a socket's
    /// async_wait), and everything read is in the socket, nothing buffered
    /// above it: the connection then holds no read buffer while it waits.
    static constexpr bool waits_readable = requires(NextLayer & s) {
        s.async_wait(asio::socket_base::wait_read, [](std::error_code) {});
        s.native_handle();
    };
    /// The stream buffers above the socket but says when it holds nothing
    /// (drained()), and completes async_wait_readable(handler) once a read
    /// would not block: the connection then holds no read buffer either,
    /// and waits for the socket itself while the stream is drained.
    static constexpr bool waits_when_drained = false;

    static NextLayer make(asio::ip::tcp::socket socket, const Context&) {
        return NextLayer(std::move(socket));
    }
    /// Runs before the WebSocket handshake; calls done(ec) on the stream's executor.
    template <class Done>
    static void async_start(NextLayer&, role, Done&& done) {
        done(std::error_code{});
    }
    /// Whether async_start has anything to do.
    static constexpr bool has_start = false;
};

namespace detail {

/// What both TLS streams share: a server context, the handshake before the
/// HTTP upgrade, close_notify at the end (async_shutdown, bounded by the
/// connection's close timer).
template <class Stream, bool Speculative>
struct TlsStreamTraits {
    struct Context {
        std::shared_ptr<asio::ssl::context> ssl;
        /// TlsStream only: a server's streams run the TLS 1.3 record layer
        /// themselves after the handshake (use_own_record_layer(): ~1.5 KB
        /// per idle connection instead of ~17 KB; no session tickets).
        bool own_record_layer = true;
    };
    static constexpr bool is_tls = true;
    static constexpr bool speculative = Speculative;
    // OpenSSL may hold decrypted bytes the socket no longer shows.
    static constexpr bool waits_readable = false;
    static constexpr bool waits_when_drained = requires(Stream & s) {
        s.drained();
        s.async_wait_readable([](std::error_code) {});
    };
    static constexpr bool has_start = true;

    static Stream make(asio::ip::tcp::socket socket, const Context& c) {
        return Stream(std::move(socket), *c.ssl);
    }
    /// Once, before a server uses the context.
    static void prepare_server(Context& c) {
        if constexpr (std::is_same_v<Stream, TlsStream>)
            if (c.own_record_layer && c.ssl) use_own_record_layer(*c.ssl);
    }
    template <class Done>
    static void async_start(Stream& s, role r, Done&& done) {
        s.async_handshake(
            r == role::server ? asio::ssl::stream_base::server : asio::ssl::stream_base::client,
            std::forward<Done>(done));
    }
};

}  // namespace detail

/// TLS over TCP (TlsStream): reads and writes are tried speculatively, as on
/// a plain socket.
template <>
struct StreamTraits<TlsStream> : detail::TlsStreamTraits<TlsStream, true> {};

/// TLS over TCP through asio::ssl::stream: reads and writes wait for
/// readiness through the SSL engine, never speculatively.
template <>
struct StreamTraits<AsioTlsSocket> : detail::TlsStreamTraits<AsioTlsSocket, false> {};

}  // namespace plume::transport
