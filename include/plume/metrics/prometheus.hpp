// plume/metrics/prometheus.hpp — a Snapshot in the Prometheus text
// exposition format, version 0.0.4, for a /metrics route.
//
//   endpoint.route("/metrics", [&](const plume::transport::http::Request&) {
//       return plume::metrics::prometheus_response(endpoint.metrics().snapshot());
//   });
//
// Per family: `# HELP` (backslash and newline escaped), `# TYPE`, then one
// line per series; label values escape backslash, double quote and newline;
// a histogram gives cumulative `_bucket{le="..."}` lines ending with
// le="+Inf", then `_sum` and `_count`.
#pragma once

#include <charconv>
#include <cmath>
#include <string>
#include <string_view>

#include "plume/metrics/metrics.hpp"
#include "plume/transport/http.hpp"

namespace plume::metrics {

/// The Content-Type of the text format.
inline constexpr std::string_view prometheus_content_type =
    "text/plain; version=0.0.4; charset=utf-8";

namespace detail {

inline void append_escaped(std::string& out, std::string_view s, bool quote) {
    for (char c : s) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else if (quote && c == '"')
            out += "\\\"";
        else
            out += c;
    }
}

inline void append_number(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "NaN";
    } else if (std::isinf(v)) {
        out += v > 0 ? "+Inf" : "-Inf";
    } else {
        char buf[32];
        // Shortest text that reads back as the same double: 3 for 3.0, 0.005.
        auto r = std::to_chars(buf, buf + sizeof buf, v);
        out.append(buf, r.ptr);
    }
}

inline void append_series(std::string& out, std::string_view name, std::string_view suffix,
                          const Labels& labels, const std::string* le, double value) {
    out += name;
    out += suffix;
    if (!labels.empty() || le) {
        out += '{';
        bool first = true;
        for (const auto& [k, v] : labels) {
            if (!first) out += ',';
            first = false;
            out += k;
            out += "=\"";
            append_escaped(out, v, true);
            out += '"';
        }
        if (le) {
            if (!first) out += ',';
            out += "le=\"";
            out += *le;
            out += '"';
        }
        out += '}';
    }
    out += ' ';
    append_number(out, value);
    out += '\n';
}

}  // namespace detail

/// The exposition text of `snap`.
inline std::string to_prometheus(const Snapshot& snap) {
    std::string out;
    for (const auto& f : snap.families) {
        out += "# HELP ";
        out += f.name;
        out += ' ';
        detail::append_escaped(out, f.help, false);
        out += "\n# TYPE ";
        out += f.name;
        out += ' ';
        out += type_name(f.type);
        out += '\n';
        for (const auto& s : f.samples) {
            if (f.type != Type::histogram) {
                detail::append_series(out, f.name, "", s.labels, nullptr, s.value);
                continue;
            }
            const auto& h = s.histogram;
            std::string le;
            for (std::size_t i = 0; i < h.bounds.size(); ++i) {
                le.clear();
                detail::append_number(le, h.bounds[i]);
                detail::append_series(out, f.name, "_bucket", s.labels, &le,
                                      static_cast<double>(h.buckets[i]));
            }
            le = "+Inf";
            detail::append_series(out, f.name, "_bucket", s.labels, &le,
                                  static_cast<double>(h.count));
            detail::append_series(out, f.name, "_sum", s.labels, nullptr, h.sum);
            detail::append_series(out, f.name, "_count", s.labels, nullptr,
                                  static_cast<double>(h.count));
        }
    }
    return out;
}

/// A 200 response carrying the exposition of `snap`, for a route.
inline transport::http::Response prometheus_response(const Snapshot& snap) {
    transport::http::Response r;
    r.body = to_prometheus(snap);
    r.set("Content-Type", std::string(prometheus_content_type)).set("Cache-Control", "no-store");
    return r;
}

}  // namespace plume::metrics
