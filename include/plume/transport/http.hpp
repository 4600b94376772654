// plume/transport/http.hpp — the HTTP/1.1 requests and responses a WebSocket
// (or long-poll) server needs: parse a request head strictly but tolerantly,
// expose path, query and headers, and write small responses.
//
// Strict: a malformed request line, header syntax, or obsolete line folding is
// refused with 400. Tolerant: header names are case-insensitive, values lose
// surrounding whitespace, repeated list headers combine.
//
//   plume::transport::http::Request req;
//   auto status = plume::transport::http::parse_request(head, req);   // 0 = ok
//   if (status == 0 && req.header("upgrade") == "websocket") ...
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace plume::transport::http {

inline char ascii_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? char(c + 32) : c;
}

inline bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return ascii_lower(x) == ascii_lower(y);
           });
}

inline std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

/// Calls f(token) for each comma-separated element of a list header
/// ("keep-alive, Upgrade"), trimmed, skipping empty elements.
template <class F>
void for_each_token(std::string_view list, F&& f) {
    while (!list.empty()) {
        auto comma = list.find(',');
        auto token = trim(list.substr(0, comma));
        if (!token.empty()) f(token);
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
}

/// True when the comma-separated list contains `token` (case-insensitive).
inline bool has_token(std::string_view list, std::string_view token) {
    bool found = false;
    for_each_token(list, [&](std::string_view t) { found = found || iequals(t, token); });
    return found;
}

/// Decodes %XX escapes and '+' (as space, per form encoding). Returns nullopt
/// for a malformed escape.
inline std::optional<std::string> percent_decode(std::string_view s) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        c = ascii_lower(c);
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%') {
            if (i + 2 >= s.size()) return std::nullopt;
            int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (s[i] == '+') {
            out.push_back(' ');
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

using Fields = std::vector<std::pair<std::string, std::string>>;

struct Request {
    std::string method;
    std::string target;  // as sent: path plus query
    std::string path;    // percent-decoded path, without the query
    std::string query_string;
    Fields query;    // decoded query parameters, in order
    Fields headers;  // names as sent; look up with header()
    int version_minor = 1;
    std::string body;  // as long as Content-Length says (bounded by Options::max_request_body)

    /// The first header with this name (case-insensitive), or empty.
    std::string_view header(std::string_view name) const noexcept {
        for (auto& [k, v] : headers)
            if (iequals(k, name)) return v;
        return {};
    }
    bool has_header(std::string_view name) const noexcept {
        for (auto& [k, v] : headers)
            if (iequals(k, name)) return true;
        return false;
    }
    std::size_t header_count(std::string_view name) const noexcept {
        return static_cast<std::size_t>(std::count_if(
            headers.begin(), headers.end(), [&](auto& kv) { return iequals(kv.first, name); }));
    }
    /// All values of a list header joined with ", " (RFC 7230 3.2.2).
    std::string header_list(std::string_view name) const {
        std::string out;
        for (auto& [k, v] : headers) {
            if (!iequals(k, name)) continue;
            if (!out.empty()) out += ", ";
            out += v;
        }
        return out;
    }
    /// The first query parameter with this name, if any.
    std::optional<std::string_view> query_param(std::string_view name) const noexcept {
        for (auto& [k, v] : query)
            if (k == name) return std::string_view(v);
        return std::nullopt;
    }
};

/// Where a request head ends: the offset just past "\r\n\r\n", or npos.
inline std::size_t find_head_end(std::string_view buffer, std::size_t search_from = 0) noexcept {
    search_from = search_from >= 3 ? search_from - 3 : 0;
    auto pos = buffer.find("\r\n\r\n", search_from);
    return pos == std::string_view::npos ? pos : pos + 4;
}

inline bool is_tchar(char c) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

inline bool is_token(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

/// Parses "a=1&b=two" into decoded pairs. Returns false on a bad escape.
inline bool parse_query(std::string_view qs, Fields& out) {
    while (!qs.empty()) {
        auto amp = qs.find('&');
        auto part = qs.substr(0, amp);
        if (!part.empty()) {
            auto eq = part.find('=');
            auto k = percent_decode(part.substr(0, eq));
            auto v = percent_decode(eq == std::string_view::npos ? std::string_view{}
                                                                 : part.substr(eq + 1));
            if (!k || !v) return false;
            out.emplace_back(std::move(*k), std::move(*v));
        }
        if (amp == std::string_view::npos) break;
        qs.remove_prefix(amp + 1);
    }
    return true;
}

/// Parses a complete request head (through the blank line). Returns 0 on
/// success or the HTTP status to refuse it with (400, 505).
inline int parse_request(std::string_view head, Request& req) {
    auto line_end = head.find("\r\n");
    if (line_end == std::string_view::npos) return 400;
    std::string_view line = head.substr(0, line_end);
    head.remove_prefix(line_end + 2);

    // request-line = method SP request-target SP HTTP-version
    auto sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) return 400;
    auto sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        return 400;
    auto method = line.substr(0, sp1);
    auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    auto version = line.substr(sp2 + 1);
    if (!is_token(method) || target.empty()) return 400;
    if (version.size() != 8 || version.substr(0, 7) != "HTTP/1." || version[7] < '0' ||
        version[7] > '9')
        return version.substr(0, 5) == "HTTP/" ? 505 : 400;
    for (char c : target)
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F) return 400;

    req.method.assign(method);
    req.target.assign(target);
    req.version_minor = version[7] - '0';

    // absolute-form ("http://host/path") is legal; keep only the path part.
    std::string_view path_and_query = target;
    if (target.front() != '/') {
        auto scheme_end = target.find("://");
        if (scheme_end != std::string_view::npos) {
            auto slash = target.find('/', scheme_end + 3);
            path_and_query = slash == std::string_view::npos ? "/" : target.substr(slash);
        } else if (target != "*") {
            return 400;  // asterisk-form ("OPTIONS *") still has its headers parsed below
        }
    }
    auto qmark = path_and_query.find('?');
    auto raw_path = path_and_query.substr(0, qmark);
    // '+' is literal in paths; only decode %XX there.
    std::string path_plus_safe;
    for (char c : raw_path)
        path_plus_safe += c == '+' ? std::string("%2B") : std::string(1, c);
    auto path = percent_decode(path_plus_safe);
    if (!path) return 400;
    req.path = std::move(*path);
    if (qmark != std::string_view::npos) {
        req.query_string.assign(path_and_query.substr(qmark + 1));
        if (!parse_query(req.query_string, req.query)) return 400;
    }

    // header-field = field-name ":" OWS field-value OWS
    while (!head.empty()) {
        line_end = head.find("\r\n");
        if (line_end == std::string_view::npos) return 400;
        line = head.substr(0, line_end);
        head.remove_prefix(line_end + 2);
        if (line.empty()) break;  // the blank line ends the head
        if (line.front() == ' ' || line.front() == '\t') return 400;  // obsolete folding
        auto colon = line.find(':');
        if (colon == std::string_view::npos) return 400;
        auto name = line.substr(0, colon);
        if (!is_token(name)) return 400;  // also rejects "Name :" (RFC 7230 3.2.4)
        auto value = trim(line.substr(colon + 1));
        for (char c : value)
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7F) return 400;
        req.headers.emplace_back(std::string(name), std::string(value));
    }
    if (req.version_minor >= 1 && !req.has_header("host")) return 400;
    return 0;
}

inline std::string_view reason_phrase(int status) noexcept {
    switch (status) {
        case 101:
            return "Switching Protocols";
        case 200:
            return "OK";
        case 204:
            return "No Content";
        case 400:
            return "Bad Request";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 410:
            return "Gone";
        case 411:
            return "Length Required";
        case 408:
            return "Request Timeout";
        case 413:
            return "Content Too Large";
        case 426:
            return "Upgrade Required";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 503:
            return "Service Unavailable";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return "Unknown";
    }
}

struct Response {
    int status = 200;
    Fields headers;
    std::string body;

    Response& set(std::string name, std::string value) {
        headers.emplace_back(std::move(name), std::move(value));
        return *this;
    }

    /// True when a Connection header says "close".
    bool says_close() const noexcept {
        for (auto& [k, v] : headers)
            if (iequals(k, "connection") && has_token(v, "close")) return true;
        return false;
    }

    /// Serializes status line, headers, Content-Length (unless a 101) and body.
    std::string to_string() const {
        std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
        out += reason_phrase(status);
        out += "\r\n";
        bool has_connection = false;
        for (auto& [k, v] : headers) {
            out += k + ": " + v + "\r\n";
            has_connection = has_connection || iequals(k, "connection");
        }
        // Without a Connection header the response closes the connection; a
        // server that keeps it alive says so (transport::Connection does),
        // or clients would reuse a closed connection (RFC 9112 9.6).
        if (status != 101 && !has_connection) out += "Connection: close\r\n";
        if (status != 101) out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
        out += "\r\n";
        out += body;
        return out;
    }
};

/// A small plain-text error response that closes the connection.
inline Response error_response(int status, std::string_view detail) {
    Response r;
    r.status = status;
    r.set("Content-Type", "text/plain; charset=utf-8").set("Connection", "close");
    r.body = std::string(reason_phrase(status)) + ": " + std::string(detail) + "\n";
    return r;
}

}  // namespace plume::transport::http
