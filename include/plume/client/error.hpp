// plume/client/error.hpp — what a client Socket reports through on_error, and
// the completion codes of Push::async_reply.
//
// Everything the server (or the network) does wrong reaches the socket's
// on_error callbacks as one of these codes plus a sentence of detail; the
// socket itself keeps running (and reconnects where phoenix.js would).
//
//   socket.on_error([](std::error_code ec, const std::string& detail) {
//       if (ec == plume::client::error::unhandled_event) return;  // not interesting here
//       std::cerr << ec.message() << ": " << detail << "\n";
//   });
#pragma once

#include <string>
#include <system_error>
#include <type_traits>

namespace plume::client {

enum class error {
    // The connection.
    connect_failed = 1,  // DNS, TCP, an HTTP refusal (e.g. 403) or a connect/handshake timeout
    connection_lost,     // the connection dropped without a closing handshake (1006)
    protocol_error,      // the WebSocket closed with 1002 (protocol) or 1007 (invalid data)
    message_too_big,     // a message over SocketOptions::websocket.max_message_size (1009)
    heartbeat_timeout,   // no heartbeat reply within heartbeat_timeout
    // Bad input from the server; the message is ignored.
    malformed_frame,   // not a Phoenix message in the socket's vsn
    unknown_topic,     // a message for a topic no channel of this socket has
    unhandled_event,   // an event no callback of its channel is bound to
    unexpected_reply,  // a reply whose ref no push is waiting for (late, or never sent)
    // Pushes that cannot be sent; the push receives "error".
    send_buffer_full,  // max_buffered_pushes reached: the new push was refused
    invalid_payload,   // the payload cannot be encoded (invalid UTF-8, binary over V1, ...)
    // Completion codes of Push::async_reply (never passed to on_error).
    reply_error,    // the reply's status was not "ok"
    timeout,        // no reply within the push's timeout
    socket_closed,  // the Socket was destroyed before the push settled
};

namespace detail {

class ClientCategory final : public std::error_category {
  public:
    const char* name() const noexcept override { return "plume.client"; }
    std::string message(int code) const override {
        switch (static_cast<error>(code)) {
            case error::connect_failed:
                return "could not connect";
            case error::connection_lost:
                return "connection lost";
            case error::protocol_error:
                return "WebSocket protocol error";
            case error::message_too_big:
                return "message too big";
            case error::heartbeat_timeout:
                return "heartbeat timeout";
            case error::malformed_frame:
                return "malformed frame from the server";
            case error::unknown_topic:
                return "message for a topic with no channel";
            case error::unhandled_event:
                return "event with no bound callback";
            case error::unexpected_reply:
                return "reply for a ref no push is waiting for";
            case error::send_buffer_full:
                return "send buffer full: push refused";
            case error::invalid_payload:
                return "push payload cannot be encoded";
            case error::reply_error:
                return "the server replied with an error status";
            case error::timeout:
                return "push timed out";
            case error::socket_closed:
                return "socket closed";
        }
        return "unknown plume.client error";
    }
};

}  // namespace detail

inline const std::error_category& client_category() noexcept {
    static const detail::ClientCategory category;
    return category;
}

inline std::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), client_category()};
}

}  // namespace plume::client

template <>
struct std::is_error_code_enum<plume::client::error> : std::true_type {};
