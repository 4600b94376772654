// plume/wire/vsn.hpp — choosing the serializer from the client's ?vsn= parameter.
//
// Phoenix matches the vsn against [{V1, "~> 1.0.0"}, {V2, "~> 2.0.0"}] with
// Elixir's Version module: a full MAJOR.MINOR.PATCH is required ("2.0" is
// refused), any 2.0.x picks V2 and any 1.0.x picks V1; "2.1.0", "3.0.0" and
// garbage are refused (Phoenix answers the upgrade with HTTP 403). A request
// without a vsn parameter speaks V1 — pass vsn_when_absent then.
//
// The serializer is a compile-time policy, the vsn a runtime value; with_serializer
// bridges the two by calling a generic lambda with the matching policy object.
//
//   auto vsn = plume::wire::serializer_for_vsn(query.value_or(plume::wire::vsn_when_absent));
//   if (!vsn) return respond(403);
//   auto frame = plume::wire::with_serializer(*vsn, [&]<class S>(S) { return S::encode(reply); });
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "plume/result.hpp"
#include "plume/wire/error.hpp"
#include "plume/wire/v1_json.hpp"
#include "plume/wire/v2_json.hpp"

namespace plume::wire {

/// The protocol versions plume speaks.
enum class Vsn : std::uint8_t { v1 = 1, v2 = 2 };

/// The vsn a client means when it sends none (Phoenix's default).
inline constexpr std::string_view vsn_when_absent = "1.0.0";

namespace detail {

// Parses one dot-free number of a semantic version: digits, no leading zero.
constexpr std::optional<unsigned> parse_semver_number(std::string_view s) noexcept {
    if (s.empty() || s.size() > 9 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
    unsigned n = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + static_cast<unsigned>(c - '0');
    }
    return n;
}

// Dot-separated, non-empty identifiers of [0-9A-Za-z-] (pre-release and build).
constexpr bool valid_semver_identifiers(std::string_view s, bool numeric_no_leading_zero) noexcept {
    if (s.empty()) return false;
    std::size_t start = 0;
    while (true) {
        std::size_t dot = s.find('.', start);
        std::string_view id = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
        if (id.empty()) return false;
        bool numeric = true;
        for (char c : id) {
            bool digit = c >= '0' && c <= '9';
            bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
            if (!digit && !alpha) return false;
            numeric = numeric && digit;
        }
        if (numeric_no_leading_zero && numeric && id.size() > 1 && id[0] == '0') return false;
        if (dot == std::string_view::npos) return true;
        start = dot + 1;
    }
}

struct Semver {
    unsigned major = 0, minor = 0, patch = 0;
    bool pre_release = false;
};

constexpr std::optional<Semver> parse_semver(std::string_view s) noexcept {
    if (auto plus = s.find('+'); plus != s.npos) {
        if (!valid_semver_identifiers(s.substr(plus + 1), false)) return std::nullopt;
        s = s.substr(0, plus);
    }
    Semver v;
    if (auto dash = s.find('-'); dash != s.npos) {
        if (!valid_semver_identifiers(s.substr(dash + 1), true)) return std::nullopt;
        v.pre_release = true;
        s = s.substr(0, dash);
    }
    auto d1 = s.find('.');
    if (d1 == s.npos) return std::nullopt;
    auto d2 = s.find('.', d1 + 1);
    if (d2 == s.npos) return std::nullopt;
    auto major = parse_semver_number(s.substr(0, d1));
    auto minor = parse_semver_number(s.substr(d1 + 1, d2 - d1 - 1));
    auto patch = parse_semver_number(s.substr(d2 + 1));
    if (!major || !minor || !patch) return std::nullopt;
    v.major = *major, v.minor = *minor, v.patch = *patch;
    return v;
}

// "~> M.m.0": >= M.m.0 and < M.(m+1).0. A pre-release of M.m.0 itself sorts
// below M.m.0; pre-releases of later patches match (Elixir's allow_pre default).
constexpr bool matches_pessimistic(const Semver& v, unsigned major, unsigned minor) noexcept {
    return v.major == major && v.minor == minor && !(v.patch == 0 && v.pre_release);
}

}  // namespace detail

/// The serializer for a client's vsn, or error::unsupported_vsn.
inline Result<Vsn> serializer_for_vsn(std::string_view vsn) noexcept {
    auto v = detail::parse_semver(vsn);
    if (!v) return error::unsupported_vsn;
    if (detail::matches_pessimistic(*v, 2, 0)) return Vsn::v2;
    if (detail::matches_pessimistic(*v, 1, 0)) return Vsn::v1;
    return error::unsupported_vsn;
}

/// Calls f(V1Json{}) or f(V2Json{}); both calls must return the same type.
template <class F>
decltype(auto) with_serializer(Vsn vsn, F&& f) {
    if (vsn == Vsn::v2) return std::forward<F>(f)(V2Json{});
    return std::forward<F>(f)(V1Json{});
}

constexpr std::string_view to_string(Vsn vsn) noexcept {
    return vsn == Vsn::v2 ? V2Json::vsn : V1Json::vsn;
}

}  // namespace plume::wire
