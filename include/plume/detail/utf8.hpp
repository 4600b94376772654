// plume/detail/utf8.hpp — UTF-8 validation shared by every layer.
//
// WebSocket text messages arrive in fragments and TCP chunks that can split a
// code point anywhere, and RFC 6455 asks us to fail a bad message as soon as
// the first invalid byte is seen (Autobahn 6.x "fail fast"). So the validator
// keeps a tiny state between calls instead of needing the whole message. The
// wire layer uses the whole-string form for header strings of binary frames.
//
//   plume::detail::Utf8Validator v;
//   bool ok = v.feed(part1) && v.feed(part2) && v.complete();
//   bool also_ok = plume::detail::is_valid_utf8(whole);
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace plume::detail {

class Utf8Validator {
  public:
    /// Feeds more bytes. Returns false as soon as the bytes so far cannot be a
    /// prefix of valid UTF-8 (overlong forms, surrogates, > U+10FFFF, stray
    /// continuation bytes, bytes C0, C1, F5-FF).
    bool feed(std::string_view bytes) noexcept {
        const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
        const auto* end = p + bytes.size();
        while (p != end) {
            if (need_ == 0) {
                // Fast path: skip ASCII eight bytes at a time.
                while (end - p >= 8) {
                    std::uint64_t chunk;
                    std::memcpy(&chunk, p, 8);
                    if (chunk & 0x8080808080808080ULL) break;
                    p += 8;
                }
                if (p == end) break;
                unsigned char c = *p++;
                if (c < 0x80) continue;
                if (c >= 0xC2 && c <= 0xDF) {
                    need_ = 1, lo_ = 0x80, hi_ = 0xBF;
                } else if (c >= 0xE0 && c <= 0xEF) {
                    need_ = 2;
                    lo_ = c == 0xE0 ? 0xA0 : 0x80;  // E0 80..9F would be overlong
                    hi_ = c == 0xED ? 0x9F : 0xBF;  // ED A0..BF are surrogates
                } else if (c >= 0xF0 && c <= 0xF4) {
                    need_ = 3;
                    lo_ = c == 0xF0 ? 0x90 : 0x80;  // F0 80..8F would be overlong
                    hi_ = c == 0xF4 ? 0x8F : 0xBF;  // F4 90.. would exceed U+10FFFF
                } else {
                    return false;
                }
            } else {
                unsigned char c = *p++;
                if (c < lo_ || c > hi_) return false;
                // Only the first continuation byte has a narrowed range.
                lo_ = 0x80, hi_ = 0xBF;
                --need_;
            }
        }
        return true;
    }

    /// True when the bytes fed so far end on a code point boundary.
    bool complete() const noexcept { return need_ == 0; }

    void reset() noexcept { need_ = 0, lo_ = 0x80, hi_ = 0xBF; }

  private:
    std::uint8_t need_ = 0;  // continuation bytes still expected
    std::uint8_t lo_ = 0x80, hi_ = 0xBF;
};

/// Validates a complete string.
inline bool is_valid_utf8(std::string_view s) noexcept {
    Utf8Validator v;
    return v.feed(s) && v.complete();
}

}  // namespace plume::detail
