// plume/server/origin.hpp — check_origin as Phoenix does it: refuse browser
// upgrades from pages of other sites (cross-site WebSocket hijacking).
//
//   plume::server::OriginPolicy p = plume::server::OriginPolicy::allow_list(
//       {"https://example.com", "//*.example.org", "http://localhost:4000"});
//   bool ok = p.allows(request.header("origin"), request.header("host"));
//
// No Origin header (non-browser clients) is always allowed, as in Phoenix.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plume/transport/http.hpp"

namespace plume::server {

struct OriginParts {
    std::string scheme;  // empty: any
    std::string host;    // "*.x.com" matches x.com and its subdomains
    std::string port;    // empty: any
};

/// Parses "scheme://host:port", "//host", "host" into parts.
inline std::optional<OriginParts> parse_origin(std::string_view s) {
    OriginParts o;
    auto sep = s.find("//");
    if (sep != std::string_view::npos) {
        if (sep > 0) {
            if (s[sep - 1] != ':') return std::nullopt;
            o.scheme = std::string(s.substr(0, sep - 1));
        }
        s.remove_prefix(sep + 2);
    }
    auto slash = s.find('/');
    s = s.substr(0, slash);
    if (s.empty()) return std::nullopt;
    auto colon = s.rfind(':');
    if (colon != std::string_view::npos && s.find(']') == std::string_view::npos) {
        o.port = std::string(s.substr(colon + 1));
        s = s.substr(0, colon);
    }
    o.host = std::string(s);
    for (auto& c : o.host)
        c = transport::http::ascii_lower(c);
    for (auto& c : o.scheme)
        c = transport::http::ascii_lower(c);
    return o;
}

class OriginPolicy {
  public:
    enum class mode { any, same_host, list };

    /// Accept every origin (check_origin: false).
    static OriginPolicy any() { return OriginPolicy(mode::any); }
    /// Origin host must equal the request's Host (check_origin: :conn).
    static OriginPolicy same_host() { return OriginPolicy(mode::same_host); }
    /// Origin must match one entry; components left out are wildcards.
    static OriginPolicy allow_list(std::vector<std::string> origins) {
        OriginPolicy p(mode::list);
        for (auto& o : origins)
            if (auto parts = parse_origin(o)) p.allowed_.push_back(std::move(*parts));
        return p;
    }

    bool allows(std::string_view origin, std::string_view host_header) const {
        if (origin.empty() || mode_ == mode::any) return true;
        auto o = parse_origin(origin);
        if (!o) return false;
        if (mode_ == mode::same_host) {
            auto h = parse_origin(host_header);
            return h && h->host == o->host && h->port == o->port;
        }
        for (auto& a : allowed_)
            if (matches(a, *o)) return true;
        return false;
    }

    mode kind() const noexcept { return mode_; }

  private:
    explicit OriginPolicy(mode m) : mode_(m) {}

    static bool matches(const OriginParts& allowed, const OriginParts& o) {
        if (!allowed.scheme.empty() && allowed.scheme != o.scheme) return false;
        if (!allowed.port.empty() && allowed.port != o.port) return false;
        if (allowed.host.rfind("*.", 0) == 0) {
            std::string_view base = std::string_view(allowed.host).substr(2);
            return o.host == base ||
                   (o.host.size() > base.size() &&
                    o.host.compare(o.host.size() - base.size(), base.size(), base) == 0 &&
                    o.host[o.host.size() - base.size() - 1] == '.');
        }
        return allowed.host == o.host;
    }

    mode mode_;
    std::vector<OriginParts> allowed_;
};

}  // namespace plume::server
