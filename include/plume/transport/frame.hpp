// plume/transport/frame.hpp — the RFC 6455 frame format as pure functions.
//
// Encodes frame headers (7/16/64-bit payload lengths, optional mask), parses
// them from bytes that may be incomplete, and applies the XOR mask. No I/O;
// the stream parser (parser.hpp) and the connection (websocket.hpp) use it.
//
//   std::string frame = plume::transport::make_frame(opcode::text, "hello");
//   // frame is ready to go on the wire from a server (servers never mask).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace plume::transport {

enum class opcode : std::uint8_t {
    continuation = 0x0,
    text = 0x1,
    binary = 0x2,
    close = 0x8,
    ping = 0x9,
    pong = 0xA,
};

constexpr bool is_control(opcode op) noexcept {
    return (static_cast<std::uint8_t>(op) & 0x8) != 0;
}

constexpr bool is_known_opcode(std::uint8_t op) noexcept {
    return op <= 0x2 || (op >= 0x8 && op <= 0xA);
}

/// Control frames carry at most 125 payload bytes (RFC 6455 5.5).
inline constexpr std::size_t max_control_payload = 125;
/// The largest frame header: 2 bytes + 8 length bytes + 4 mask bytes.
inline constexpr std::size_t max_header_size = 14;

struct FrameHeader {
    bool fin = true;
    bool rsv1 = false;  // "compressed" under permessage-deflate
    bool rsv2 = false;
    bool rsv3 = false;
    std::uint8_t opcode = 0;  // raw, so unknown opcodes can be reported
    bool masked = false;
    std::array<unsigned char, 4> mask{};
    std::uint64_t payload_length = 0;
    std::size_t header_length = 0;  // bytes the header occupied on the wire
};

enum class header_status { ok, need_more };

/// Parses a frame header from the start of `data`. Returns need_more when the
/// bytes do not yet hold the whole header. Semantic checks (masking rules,
/// reserved bits, control-frame limits) belong to the caller, who knows the role.
inline header_status parse_header(std::string_view data, FrameHeader& h) noexcept {
    if (data.size() < 2) return header_status::need_more;
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    h.fin = (p[0] & 0x80) != 0;
    h.rsv1 = (p[0] & 0x40) != 0;
    h.rsv2 = (p[0] & 0x20) != 0;
    h.rsv3 = (p[0] & 0x10) != 0;
    h.opcode = p[0] & 0x0F;
    h.masked = (p[1] & 0x80) != 0;
    std::uint64_t len = p[1] & 0x7F;
    std::size_t pos = 2;
    if (len == 126) {
        if (data.size() < 4) return header_status::need_more;
        len = (std::uint64_t{p[2]} << 8) | p[3];
        pos = 4;
    } else if (len == 127) {
        if (data.size() < 10) return header_status::need_more;
        len = 0;
        for (int i = 0; i < 8; ++i)
            len = (len << 8) | p[2 + i];
        pos = 10;
    }
    if (h.masked) {
        if (data.size() < pos + 4) return header_status::need_more;
        std::memcpy(h.mask.data(), p + pos, 4);
        pos += 4;
    }
    h.payload_length = len;
    h.header_length = pos;
    return header_status::ok;
}

/// Returns true when a header uses the shortest length encoding, as RFC 6455
/// 5.2 requires ("the minimal number of bytes MUST be used").
inline bool uses_minimal_length(std::string_view data, const FrameHeader& h) noexcept {
    auto len7 = static_cast<unsigned char>(data[1]) & 0x7F;
    if (len7 == 126) return h.payload_length >= 126;
    if (len7 == 127) return h.payload_length > 0xFFFF && (h.payload_length >> 63) == 0;
    return true;
}

/// Writes a frame header into `out` (at least max_header_size bytes) and
/// returns its length. `mask` is written only when non-null (client role).
inline std::size_t write_header(unsigned char* out, opcode op, std::uint64_t payload_length,
                                bool fin = true, bool rsv1 = false,
                                const unsigned char* mask = nullptr) noexcept {
    out[0] = static_cast<unsigned char>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) |
                                        static_cast<std::uint8_t>(op));
    const unsigned char mask_bit = mask ? 0x80 : 0;
    std::size_t pos;
    if (payload_length < 126) {
        out[1] = static_cast<unsigned char>(mask_bit | payload_length);
        pos = 2;
    } else if (payload_length <= 0xFFFF) {
        out[1] = mask_bit | 126;
        out[2] = static_cast<unsigned char>(payload_length >> 8);
        out[3] = static_cast<unsigned char>(payload_length);
        pos = 4;
    } else {
        out[1] = mask_bit | 127;
        for (int i = 0; i < 8; ++i)
            out[2 + i] = static_cast<unsigned char>(payload_length >> (56 - 8 * i));
        pos = 10;
    }
    if (mask) {
        std::memcpy(out + pos, mask, 4);
        pos += 4;
    }
    return pos;
}

/// XORs `data` with the 4-byte mask, starting at mask position `offset`
/// (so a payload can be unmasked piecewise as it arrives). Returns the offset
/// for the next piece.
inline std::size_t apply_mask(char* data, std::size_t size,
                              const std::array<unsigned char, 4>& mask,
                              std::size_t offset = 0) noexcept {
    auto* p = reinterpret_cast<unsigned char*>(data);
    std::size_t i = 0;
    offset &= 3;
    // Align to the mask, then work eight bytes at a time.
    while (i < size && offset != 0) {
        p[i++] ^= mask[offset];
        offset = (offset + 1) & 3;
    }
    if (size - i >= 8) {
        std::uint64_t m8;
        unsigned char rep[8] = {mask[0], mask[1], mask[2], mask[3],
                                mask[0], mask[1], mask[2], mask[3]};
        std::memcpy(&m8, rep, 8);
        for (; size - i >= 8; i += 8) {
            std::uint64_t v;
            std::memcpy(&v, p + i, 8);
            v ^= m8;
            std::memcpy(p + i, &v, 8);
        }
    }
    for (; i < size; ++i) {
        p[i] ^= mask[offset];
        offset = (offset + 1) & 3;
    }
    return offset;
}

/// Builds one complete frame. Servers pass no mask; clients must.
inline std::string make_frame(opcode op, std::string_view payload, bool fin = true,
                              bool rsv1 = false, const unsigned char* mask = nullptr) {
    unsigned char header[max_header_size];
    std::size_t n = write_header(header, op, payload.size(), fin, rsv1, mask);
    std::string frame;
    frame.reserve(n + payload.size());
    frame.append(reinterpret_cast<const char*>(header), n);
    frame.append(payload);
    if (mask) {
        std::array<unsigned char, 4> m{mask[0], mask[1], mask[2], mask[3]};
        apply_mask(frame.data() + n, payload.size(), m);
    }
    return frame;
}

/// Payload of a close frame: the code in network order, then the reason.
inline std::string close_payload(std::uint16_t code, std::string_view reason) {
    std::string p;
    p.reserve(2 + reason.size());
    p.push_back(static_cast<char>(code >> 8));
    p.push_back(static_cast<char>(code & 0xFF));
    // A control frame holds 125 bytes; a longer reason is cut, never split
    // inside a UTF-8 sequence.
    std::size_t n = std::min<std::size_t>(reason.size(), max_control_payload - 2);
    while (n > 0 && n < reason.size() && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80)
        --n;
    p.append(reason.substr(0, n));
    return p;
}

/// An already-framed, immutable message. One broadcast builds one of these and
/// every subscriber's send queue shares it: server frames are unmasked, so the
/// same bytes are right for every connection.
using SharedFrame = std::shared_ptr<const std::string>;

inline SharedFrame make_shared_frame(opcode op, std::string_view payload) {
    return std::make_shared<const std::string>(make_frame(op, payload));
}

}  // namespace plume::transport
