// plume/transport/close_code.hpp — WebSocket close codes and the rules for them.
//
// One table decides which code plume sends in which situation. It matters
// because phoenix.js clients before 1.8.16 never reconnect after 1000:
//
//   code  name               plume sends it when
//   1000  normal             the peer must not come back (work is done; also the
//                            echo of a peer's own 1000)
//   1001  going_away         server shutdown, forced disconnect, idle timeout
//   1002  protocol_error     any RFC 6455 framing or handshake-state violation
//   1007  invalid_payload    text or close reason that is not valid UTF-8;
//                            a permessage-deflate stream that does not inflate
//   1008  policy_violation   the peer broke a documented policy: its send queue
//                            overflowed (a reader too slow for its traffic)
//   1009  message_too_big    a message larger than Options::max_message_size
//   1011  internal_error     an exception or bug on our side
//   1012  service_restart    draining for a restart; reconnect soon
//
// Example:
//   if (!plume::transport::is_valid_received_close_code(code)) fail(close_code::protocol_error);
#pragma once

#include <cstdint>
#include <string_view>

namespace plume::transport {

enum class close_code : std::uint16_t {
    normal = 1000,
    going_away = 1001,
    protocol_error = 1002,
    unsupported_data = 1003,
    no_status = 1005,  // never on the wire: "close frame had no code"
    abnormal = 1006,   // never on the wire: "connection dropped without close"
    invalid_payload = 1007,
    policy_violation = 1008,
    message_too_big = 1009,
    mandatory_extension = 1010,
    internal_error = 1011,
    service_restart = 1012,
    try_again_later = 1013,
};

constexpr std::uint16_t to_int(close_code c) noexcept {
    return static_cast<std::uint16_t>(c);
}

/// True for codes a peer may put in a close frame (RFC 6455 7.4.1 and the IANA
/// registry): 1000-1003, 1007-1014, and the 3000-4999 ranges for libraries and
/// applications. 1004-1006 and 1015 are reserved and must never be sent.
constexpr bool is_valid_received_close_code(std::uint16_t code) noexcept {
    if (code >= 3000 && code <= 4999) return true;
    switch (code) {
        case 1000:
        case 1001:
        case 1002:
        case 1003:
        case 1007:
        case 1008:
        case 1009:
        case 1010:
        case 1011:
        case 1012:
        case 1013:
        case 1014:
            return true;
        default:
            return false;
    }
}

constexpr std::string_view close_code_name(std::uint16_t code) noexcept {
    switch (code) {
        case 1000:
            return "normal";
        case 1001:
            return "going away";
        case 1002:
            return "protocol error";
        case 1003:
            return "unsupported data";
        case 1005:
            return "no status";
        case 1006:
            return "abnormal closure";
        case 1007:
            return "invalid payload";
        case 1008:
            return "policy violation";
        case 1009:
            return "message too big";
        case 1010:
            return "mandatory extension";
        case 1011:
            return "internal error";
        case 1012:
            return "service restart";
        case 1013:
            return "try again later";
        default:
            return code >= 3000 && code <= 4999 ? "application" : "unknown";
    }
}

}  // namespace plume::transport
