// plume/transport/error.hpp — why a WebSocket did not open, as a
// std::error_code (like Beast's websocket::error). Failures of the network
// itself (DNS, connect, reset) keep their system or Asio codes; these are the
// WebSocket's own.
//
//   void on_handshake_error(auto& conn, std::error_code ec, std::string_view detail) {
//       if (ec == plume::transport::error::upgrade_refused) ... // detail: "HTTP 403"
//   }
#pragma once

#include <string>
#include <system_error>

namespace plume::transport {

enum class error {
    handshake_timeout = 1,  ///< the handshake (TLS included) took longer than handshake_timeout
    response_too_large,     ///< the server's answer head exceeded max_header_size
    malformed_response,     ///< the server's answer is not HTTP
    upgrade_refused,        ///< the server answered something else than 101 (detail: the status)
    bad_upgrade_response,   ///< a 101 that breaks RFC 6455 4.2.2 (detail: what)
    tls_handshake_failed,   ///< detail: OpenSSL's reason (an untrusted certificate, ...)
    scheme_mismatch,        ///< ws:// over a TLS stream, or wss:// without one
    no_tls_context,         ///< wss:// without a client TLS context
};

namespace detail {
class ErrorCategory final : public std::error_category {
  public:
    const char* name() const noexcept override { return "plume.transport"; }
    std::string message(int code) const override {
        switch (static_cast<error>(code)) {
            case error::handshake_timeout:
                return "WebSocket handshake timed out";
            case error::response_too_large:
                return "the server's response head is too large";
            case error::malformed_response:
                return "malformed HTTP response";
            case error::upgrade_refused:
                return "the server refused the WebSocket upgrade";
            case error::bad_upgrade_response:
                return "the server's upgrade response is invalid";
            case error::tls_handshake_failed:
                return "TLS handshake failed";
            case error::scheme_mismatch:
                return "the URL's scheme does not match the stream (ws:// is plain TCP, wss:// "
                       "needs a TLS connection: connect<Handler, TlsSocket>)";
            case error::no_tls_context:
                return "wss:// needs a client TLS context (client_tls_context())";
        }
        return "unknown plume.transport error";
    }
};
}  // namespace detail

inline const std::error_category& error_category() noexcept {
    static const detail::ErrorCategory category;
    return category;
}

inline std::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), error_category()};
}

}  // namespace plume::transport

template <>
struct std::is_error_code_enum<plume::transport::error> : std::true_type {};
