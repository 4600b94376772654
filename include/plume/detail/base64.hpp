// plume/detail/base64.hpp — RFC 4648 base64, standard and URL alphabets,
// padded and unpadded, with strict decoding.
//
// Several places in plume need a different flavour:
//   * WebSocket handshake keys         standard, padded     base64_encode / base64_decode
//   * phoenix.js authToken subprotocol standard, unpadded   base64_decode_unpadded
//     ("base64url.bearer.phx.<btoa(token) without '='>" — standard alphabet despite the name)
//   * signed tokens (Phoenix.Token)    URL-safe, unpadded   base64url_encode_unpadded
//
// Decoding is strict because its input comes from the network: any character
// outside the alphabet (whitespace included), misplaced or missing '=' in the
// padded forms, any '=' in the unpadded forms, an impossible length, or non-zero
// leftover bits (a non-canonical encoding) makes it return std::nullopt.
//
//   std::string b64 = plume::detail::base64_encode("hello");           // "aGVsbG8="
//   auto raw = plume::detail::base64url_decode_unpadded("aGVsbG8");   // "hello"
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace plume::detail {

enum class Base64Alphabet : std::uint8_t { standard, url };
enum class Base64Padding : std::uint8_t { padded, unpadded };

namespace base64_impl {

inline constexpr std::string_view standard_chars =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
inline constexpr std::string_view url_chars =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// 256-entry reverse table: the 6-bit value of a character, or -1.
constexpr std::array<std::int8_t, 256> make_reverse(std::string_view chars) {
    std::array<std::int8_t, 256> table{};
    for (auto& v : table)
        v = -1;
    for (std::size_t i = 0; i < chars.size(); ++i)
        table[static_cast<unsigned char>(chars[i])] = static_cast<std::int8_t>(i);
    return table;
}

inline constexpr auto standard_reverse = make_reverse(standard_chars);
inline constexpr auto url_reverse = make_reverse(url_chars);

}  // namespace base64_impl

/// Encodes bytes in the given alphabet, with or without '=' padding.
inline std::string base64_encode(std::string_view data, Base64Alphabet alphabet,
                                 Base64Padding padding) {
    const std::string_view chars =
        alphabet == Base64Alphabet::standard ? base64_impl::standard_chars : base64_impl::url_chars;
    const auto* in = reinterpret_cast<const unsigned char*>(data.data());
    const std::size_t n = data.size();
    std::string out;
    out.reserve((n + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        std::uint32_t v =
            (std::uint32_t{in[i]} << 16) | (std::uint32_t{in[i + 1]} << 8) | in[i + 2];
        out += chars[(v >> 18) & 63];
        out += chars[(v >> 12) & 63];
        out += chars[(v >> 6) & 63];
        out += chars[v & 63];
    }
    const std::size_t rest = n - i;
    if (rest > 0) {
        std::uint32_t v = std::uint32_t{in[i]} << 16;
        if (rest == 2) v |= std::uint32_t{in[i + 1]} << 8;
        out += chars[(v >> 18) & 63];
        out += chars[(v >> 12) & 63];
        if (rest == 2) out += chars[(v >> 6) & 63];
        if (padding == Base64Padding::padded) out.append(3 - rest, '=');
    }
    return out;
}

/// Strictly decodes base64 in the given alphabet; std::nullopt on any defect
/// (see the header comment). The empty string decodes to the empty string.
inline std::optional<std::string> base64_decode(std::string_view text, Base64Alphabet alphabet,
                                                Base64Padding padding) {
    const auto& reverse = alphabet == Base64Alphabet::standard ? base64_impl::standard_reverse
                                                               : base64_impl::url_reverse;
    if (padding == Base64Padding::padded) {
        if (text.size() % 4 != 0) return std::nullopt;
        // Strip at most two '=' at the very end; any other '=' (as in "A===" or
        // "====") is outside the alphabet and fails in the loop below.
        if (!text.empty() && text.back() == '=') text.remove_suffix(1);
        if (!text.empty() && text.back() == '=') text.remove_suffix(1);
    } else if (text.size() % 4 == 1) {
        return std::nullopt;  // 6 bits cannot make a byte
    }

    std::string out;
    out.reserve(text.size() / 4 * 3 + 2);
    std::uint32_t acc = 0;
    int bits = 0;
    for (char ch : text) {
        std::int8_t v = reverse[static_cast<unsigned char>(ch)];
        if (v < 0) return std::nullopt;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFF);
        }
    }
    // Leftover bits of the last group must be zero, or two different strings
    // would decode to the same bytes.
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
    return out;
}

// The named flavours plume uses.

inline std::string base64_encode(std::string_view data) {
    return base64_encode(data, Base64Alphabet::standard, Base64Padding::padded);
}
inline std::string base64_encode(const unsigned char* data, std::size_t size) {
    return base64_encode(std::string_view(reinterpret_cast<const char*>(data), size));
}
inline std::string base64_encode_unpadded(std::string_view data) {
    return base64_encode(data, Base64Alphabet::standard, Base64Padding::unpadded);
}
inline std::string base64url_encode(std::string_view data) {
    return base64_encode(data, Base64Alphabet::url, Base64Padding::padded);
}
inline std::string base64url_encode_unpadded(std::string_view data) {
    return base64_encode(data, Base64Alphabet::url, Base64Padding::unpadded);
}

inline std::optional<std::string> base64_decode(std::string_view text) {
    return base64_decode(text, Base64Alphabet::standard, Base64Padding::padded);
}
inline std::optional<std::string> base64_decode_unpadded(std::string_view text) {
    return base64_decode(text, Base64Alphabet::standard, Base64Padding::unpadded);
}
inline std::optional<std::string> base64url_decode(std::string_view text) {
    return base64_decode(text, Base64Alphabet::url, Base64Padding::padded);
}
inline std::optional<std::string> base64url_decode_unpadded(std::string_view text) {
    return base64_decode(text, Base64Alphabet::url, Base64Padding::unpadded);
}

}  // namespace plume::detail
