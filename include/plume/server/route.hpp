// plume/server/route.hpp — the HTTP routes of an Endpoint, as a Phoenix
// router writes them: exact paths, `:name` segments and a trailing `*glob`,
// each for one method.
//
//   plume::server::RoutePattern p("/api/token/:user_id");
//   plume::server::RouteParams params;
//   if (p.match("/api/token/al%20ice", params) == plume::server::MatchStatus::matched)
//       params["user_id"];                                   // "al ice"
//
//   endpoint.route("/api/token/:user_id", [](const Request& req, const RouteParams& p) {...});
//   endpoint.route("POST", "/api/token/:user_id", handler);  // GET when no method is named
//
// Matching is segment by segment on the raw path (no regex), so an encoded
// "/" (%2F) stays inside its segment. Captured values are percent-decoded
// ('+' stays '+', as in any path); a bad escape or a NUL is a 400. Exact
// routes win over parameterised ones whatever the registration order;
// parameterised ones are tried in registration order. Empty segments are
// segments: "/api/token/" does not match "/api/token/:user_id".
#pragma once

#include <algorithm>
#include <concepts>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "plume/transport/http.hpp"

namespace plume::server {

/// The values a route's `:name` and `*name` segments captured, decoded.
class RouteParams {
  public:
    /// The value captured as `name`; empty when the route has no such name.
    const std::string& operator[](std::string_view name) const noexcept {
        static const std::string none;
        auto v = find(name);
        return v ? *v : none;
    }
    /// The value captured as `name`, or nullptr.
    const std::string* find(std::string_view name) const noexcept {
        for (auto& [k, v] : values_)
            if (k == name) return &v;
        return nullptr;
    }
    bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }
    std::size_t size() const noexcept { return values_.size(); }
    bool empty() const noexcept { return values_.empty(); }
    auto begin() const noexcept { return values_.begin(); }
    auto end() const noexcept { return values_.end(); }

    void set(std::string name, std::string value) {
        values_.emplace_back(std::move(name), std::move(value));
    }
    void clear() noexcept { values_.clear(); }

  private:
    std::vector<std::pair<std::string, std::string>> values_;
};

enum class MatchStatus {
    no_match,
    matched,
    bad_request,  // the path fits the pattern but a segment is badly encoded or holds a NUL
};

/// Decodes the %XX escapes of one path segment. '+' is literal in paths.
/// nullopt for a malformed escape or a NUL (no handler should see one).
inline std::optional<std::string> decode_path_segment(std::string_view s) {
    if (s.find('%') == std::string_view::npos) {
        if (s.find('\0') != std::string_view::npos) return std::nullopt;
        return std::string(s);
    }
    std::string escaped;
    escaped.reserve(s.size());
    for (char c : s)
        escaped += c == '+' ? std::string_view("%2B") : std::string_view(&c, 1);
    auto out = transport::http::percent_decode(escaped);
    if (!out || out->find('\0') != std::string::npos) return std::nullopt;
    return out;
}

/// The path part of a request target, still encoded: "/a%2Fb" of
/// "/a%2Fb?x=1" or of "http://host/a%2Fb".
inline std::string_view raw_path_of(std::string_view target) noexcept {
    if (!target.empty() && target.front() != '/') {
        auto scheme_end = target.find("://");
        if (scheme_end == std::string_view::npos) return {};
        auto slash = target.find('/', scheme_end + 3);
        target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
    return target.substr(0, target.find('?'));
}

/// A route path: literal segments, `:name` segments (one non-empty
/// segment each) and at most one `*name` glob, last, which takes the rest of
/// the path (zero or more segments, joined with '/').
class RoutePattern {
  public:
    /// Throws std::invalid_argument for a pattern that cannot be matched as
    /// meant (no leading '/', an unnamed or repeated parameter, a glob before
    /// the end). A pattern without parameters is exact and taken as is.
    explicit RoutePattern(std::string pattern) : pattern_(std::move(pattern)) {
        std::string_view rest = pattern_;
        bool has_params = false;
        for_each_segment(rest, [&](std::string_view s) {
            has_params = has_params || (!s.empty() && (s.front() == ':' || s.front() == '*'));
        });
        if (!has_params) return;
        if (pattern_.empty() || pattern_.front() != '/')
            throw std::invalid_argument("route \"" + pattern_ + "\" must start with '/'");
        for_each_segment(std::string_view(pattern_).substr(1), [&](std::string_view s) {
            if (!segments_.empty() && segments_.back().kind == Segment::glob)
                throw std::invalid_argument("route \"" + pattern_ + "\": *" +
                                            segments_.back().text + " must be the last segment");
            Segment seg{Segment::literal, std::string(s)};
            if (!s.empty() && (s.front() == ':' || s.front() == '*')) {
                seg.kind = s.front() == ':' ? Segment::param : Segment::glob;
                seg.text = std::string(s.substr(1));
                if (!valid_name(seg.text))
                    throw std::invalid_argument("route \"" + pattern_ +
                                                "\": bad parameter name \"" + std::string(s) +
                                                "\" (letters, digits, _)");
                for (auto& other : segments_)
                    if (other.kind != Segment::literal && other.text == seg.text)
                        throw std::invalid_argument("route \"" + pattern_ + "\": parameter \"" +
                                                    seg.text + "\" appears twice");
            } else if (s.find('\0') != std::string_view::npos) {
                throw std::invalid_argument("route \"" + pattern_ + "\" holds a NUL");
            }
            segments_.push_back(std::move(seg));
        });
    }

    const std::string& pattern() const noexcept { return pattern_; }
    /// True when the pattern has no parameters: it matches one path only.
    bool is_exact() const noexcept { return segments_.empty(); }

    /// Matches a raw (still percent-encoded) path, without its query. On
    /// `matched`, `params` holds the decoded captures (it is cleared first).
    MatchStatus match(std::string_view raw_path, RouteParams& params) const {
        params.clear();
        if (is_exact()) {
            // Exact routes compare the decoded path, as the request's `path`.
            if (raw_path.empty() || raw_path.front() != '/') return MatchStatus::no_match;
            std::string decoded;
            bool bad = false;
            for_each_segment(raw_path.substr(1), [&](std::string_view s) {
                auto d = decode_path_segment(s);
                bad = bad || !d;
                if (d) decoded += "/" + *d;
            });
            if (bad) return MatchStatus::bad_request;
            return decoded == pattern_ ? MatchStatus::matched : MatchStatus::no_match;
        }
        if (raw_path.empty() || raw_path.front() != '/') return MatchStatus::no_match;
        raw_path.remove_prefix(1);
        std::vector<std::string_view> parts;
        for_each_segment(raw_path, [&](std::string_view s) { parts.push_back(s); });
        bool glob = segments_.back().kind == Segment::glob;
        std::size_t fixed = segments_.size() - (glob ? 1 : 0);
        if (glob ? parts.size() < fixed : parts.size() != fixed) return MatchStatus::no_match;

        // Literals first: a path that is not this route's is a no_match even
        // if one of its segments is badly encoded elsewhere.
        for (std::size_t i = 0; i < fixed; ++i)
            if (segments_[i].kind == Segment::literal) {
                auto d = decode_path_segment(parts[i]);
                if (!d) return MatchStatus::bad_request;
                if (*d != segments_[i].text) return MatchStatus::no_match;
            }
        RouteParams captured;
        for (std::size_t i = 0; i < fixed; ++i) {
            if (segments_[i].kind != Segment::param) continue;
            if (parts[i].empty()) return MatchStatus::no_match;
            auto d = decode_path_segment(parts[i]);
            if (!d) return MatchStatus::bad_request;
            captured.set(segments_[i].text, std::move(*d));
        }
        if (glob) {
            std::string rest;
            for (std::size_t i = fixed; i < parts.size(); ++i) {
                auto d = decode_path_segment(parts[i]);
                if (!d) return MatchStatus::bad_request;
                if (i > fixed) rest += '/';
                rest += *d;
            }
            captured.set(segments_.back().text, std::move(rest));
        }
        params = std::move(captured);
        return MatchStatus::matched;
    }

  private:
    struct Segment {
        enum Kind { literal, param, glob } kind;
        std::string text;  // the literal, or the parameter's name
    };

    // "a/b/" → "a", "b", "" (an empty segment is a segment).
    template <class F>
    static void for_each_segment(std::string_view path, F&& f) {
        while (true) {
            auto slash = path.find('/');
            f(path.substr(0, slash));
            if (slash == std::string_view::npos) break;
            path.remove_prefix(slash + 1);
        }
    }

    static bool valid_name(std::string_view n) noexcept {
        if (n.empty()) return false;
        for (char c : n)
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_'))
                return false;
        return true;
    }

    std::string pattern_;
    std::vector<Segment> segments_;  // empty: exact
};

using RouteHandler =
    std::function<transport::http::Response(const transport::http::Request&, const RouteParams&)>;

/// What Endpoint::route accepts: a handler of (const Request&) or of
/// (const Request&, const RouteParams&) that returns a Response.
template <class F>
concept RouteHandlerFn =
    std::is_invocable_r_v<transport::http::Response, F&, const transport::http::Request&,
                          const RouteParams&> ||
    std::is_invocable_r_v<transport::http::Response, F&, const transport::http::Request&>;

template <RouteHandlerFn F>
RouteHandler make_route_handler(F f) {
    if constexpr (std::is_invocable_r_v<transport::http::Response, F&,
                                        const transport::http::Request&, const RouteParams&>)
        return RouteHandler(std::move(f));
    else
        return [f = std::move(f)](const transport::http::Request& req, const RouteParams&) mutable {
            return f(req);
        };
}

/// The routes of one endpoint. Filled before the endpoint starts, then only
/// read (from any thread).
class RouteTable {
  public:
    enum class Status {
        none,                // no route has this path: static files, or 404
        matched,             // `handler` and `params` are set
        method_not_allowed,  // a route has this path for other methods: `allow`
        bad_request,         // the path fits a route but is badly encoded (400)
    };
    struct Lookup {
        Status status = Status::none;
        const RouteHandler* handler = nullptr;
        const std::string* pattern = nullptr;
        RouteParams params;
        std::string allow;  // "GET, HEAD, POST" for a 405
    };

    /// Adds (or replaces) the route for this method and pattern. Throws
    /// std::invalid_argument for a bad pattern or method.
    void add(std::string method, std::string pattern, RouteHandler handler) {
        if (!transport::http::is_token(method))
            throw std::invalid_argument("route method \"" + method + "\" is not an HTTP token");
        RoutePattern p(std::move(pattern));
        auto& list = p.is_exact() ? exact_[p.pattern()] : parameterised_;
        for (auto& r : list)
            if (r.method == method && r.pattern.pattern() == p.pattern()) {
                r.handler = std::move(handler);
                return;
            }
        list.push_back({std::move(method), std::move(p), std::move(handler)});
    }

    bool empty() const noexcept { return exact_.empty() && parameterised_.empty(); }

    /// Finds the route for a request. A GET route answers HEAD too.
    /// `decoded_path` is the request's `path`, `target` its raw target.
    Lookup find(std::string_view method, std::string_view target,
                const std::string& decoded_path) const {
        Lookup out;
        std::vector<std::string_view> allowed;
        auto consider = [&](const Route& r, RouteParams&& params) {
            if (fits(r.method, method)) {
                out.status = Status::matched;
                out.handler = &r.handler;
                out.pattern = &r.pattern.pattern();
                out.params = std::move(params);
                return true;
            }
            allowed.push_back(r.method);
            return false;
        };
        if (auto it = exact_.find(decoded_path); it != exact_.end())
            for (auto& r : it->second)
                if (consider(r, {})) return out;
        auto raw = raw_path_of(target);
        RouteParams params;
        for (auto& r : parameterised_) {
            switch (r.pattern.match(raw, params)) {
                case MatchStatus::no_match:
                    break;
                case MatchStatus::bad_request:
                    out.status = Status::bad_request;
                    return out;
                case MatchStatus::matched:
                    if (consider(r, std::move(params))) return out;
                    break;
            }
        }
        if (allowed.empty()) return out;
        out.status = Status::method_not_allowed;
        if (std::find(allowed.begin(), allowed.end(), "GET") != allowed.end())
            allowed.push_back("HEAD");
        std::sort(allowed.begin(), allowed.end());
        allowed.erase(std::unique(allowed.begin(), allowed.end()), allowed.end());
        for (auto m : allowed) {
            if (!out.allow.empty()) out.allow += ", ";
            out.allow += m;
        }
        return out;
    }

  private:
    struct Route {
        std::string method;
        RoutePattern pattern;
        RouteHandler handler;
    };

    static bool fits(std::string_view route_method, std::string_view method) noexcept {
        return route_method == method || (method == "HEAD" && route_method == "GET");
    }

    std::map<std::string, std::vector<Route>, std::less<>> exact_;
    std::vector<Route> parameterised_;
};

}  // namespace plume::server
