// plume/detail/utf8.hpp — whole-string UTF-8 validation for the lowest layers.
//
// The wire layer must not depend on the transport (layers only point down), yet
// it has to reject invalid UTF-8 in the header strings of V2 binary frames:
// those strings end up in JSON replies and log lines. This is the strict
// RFC 3629 check: no overlong forms, no surrogates, nothing above U+10FFFF.
//
//   if (!plume::detail::is_valid_utf8(topic)) return plume::wire::error::invalid_utf8;
#pragma once

#include <string_view>

namespace plume::detail {

inline bool is_valid_utf8(std::string_view s) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* end = p + s.size();
    while (p != end) {
        unsigned char c = *p++;
        if (c < 0x80) continue;
        int need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;  // E0 80..9F would be overlong
            if (c == 0xED) hi = 0x9F;  // ED A0..BF are surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;  // F0 80..8F would be overlong
            if (c == 0xF4) hi = 0x8F;  // F4 90.. would exceed U+10FFFF
        } else {
            return false;  // stray continuation byte, C0, C1, F5..FF
        }
        if (end - p < need) return false;
        // Only the first continuation byte has a narrowed range.
        if (*p < lo || *p > hi) return false;
        for (int i = 1; i < need; ++i)
            if (p[i] < 0x80 || p[i] > 0xBF) return false;
        p += need;
    }
    return true;
}

}  // namespace plume::detail
