// plume/redis/url.hpp — redis://[[user]:password@]host[:port][/db]
//
//   auto url = plume::redis::parse_url("redis://:secret@127.0.0.1:6380/2");
//   // url->host "127.0.0.1", port 6380, password "secret", db 2
//   plume::redis::parse_url("http://x");   // error::bad_url
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "plume/redis/error.hpp"
#include "plume/result.hpp"

namespace plume::redis {

struct Url {
    std::string host = "127.0.0.1";
    std::uint16_t port = 6379;
    std::string username;  // ACL user (AUTH user password); empty: AUTH password
    std::string password;  // empty: no AUTH
    int db = 0;            // SELECT db when not 0
};

namespace detail {

inline bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        if (i + 2 >= in.size()) return false;  // "%" or "%x" at the end
        unsigned v = 0;
        auto [p, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, v, 16);
        if (ec != std::errc{} || p != in.data() + i + 3) return false;
        out += static_cast<char>(v);
        i += 2;
    }
    return true;
}

}  // namespace detail

/// Parses a Redis URL (the scheme redis:// only; rediss:// is not supported yet).
inline Result<Url> parse_url(std::string_view s) {
    constexpr std::string_view scheme = "redis://";
    if (s.substr(0, scheme.size()) != scheme) return error::bad_url;
    s.remove_prefix(scheme.size());
    Url url;
    // Path: "/db", optional.
    auto slash = s.find('/');
    std::string_view path = slash == std::string_view::npos ? "" : s.substr(slash + 1);
    s = s.substr(0, slash);
    if (!path.empty()) {
        auto [p, ec] = std::from_chars(path.data(), path.data() + path.size(), url.db);
        if (ec != std::errc{} || p != path.data() + path.size() || url.db < 0)
            return error::bad_url;
    }
    // Userinfo: "[user]:password@" (the last '@': a password may hold one, escaped or not).
    auto at = s.rfind('@');
    if (at != std::string_view::npos) {
        auto userinfo = s.substr(0, at);
        s.remove_prefix(at + 1);
        auto colon = userinfo.find(':');
        if (colon == std::string_view::npos) {
            // "redis://password@host" is read as a password, as redis-cli -u does.
            if (!detail::percent_decode(userinfo, url.password)) return error::bad_url;
        } else {
            if (!detail::percent_decode(userinfo.substr(0, colon), url.username) ||
                !detail::percent_decode(userinfo.substr(colon + 1), url.password))
                return error::bad_url;
        }
    }
    // Host and port: "host", "host:port", "[v6]:port".
    std::string_view host = s, port;
    if (!s.empty() && s.front() == '[') {
        auto close = s.find(']');
        if (close == std::string_view::npos) return error::bad_url;
        host = s.substr(1, close - 1);
        auto rest = s.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return error::bad_url;
            port = rest.substr(1);
            if (port.empty()) return error::bad_url;
        }
    } else if (auto colon = s.find(':'); colon != std::string_view::npos) {
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
        if (port.empty()) return error::bad_url;
    }
    if (host.empty()) return error::bad_url;
    for (char c : host)
        if (static_cast<unsigned char>(c) <= ' ' || c == '/' || c == '?' || c == '#' || c == '@')
            return error::bad_url;
    url.host = std::string(host);
    if (!port.empty()) {
        unsigned n = 0;
        auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
        if (ec != std::errc{} || p != port.data() + port.size() || n == 0 || n > 65535)
            return error::bad_url;
        url.port = static_cast<std::uint16_t>(n);
    }
    return url;
}

}  // namespace plume::redis
