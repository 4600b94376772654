// plume/server/log.hpp — the Endpoint's log: one hook, structured records,
// and no way for a peer to flood it or forge lines in it.
//
//   plume::server::EndpointConfig config;
//   config.log.level = plume::server::LogLevel::warning;
//   config.log.sink = [](const plume::server::LogRecord& r) {
//       my_logger.write(r.level, r.message, r.fields);     // or: std::clog << r.line() << "\n";
//   };
//
// Every field value is treated as untrusted (topics, events, origins and
// reasons come from peers): it is cut to `max_field_bytes` and its control
// characters and invalid UTF-8 bytes are escaped before any sink sees it, so
// a megabyte topic costs 200 bytes of log and a "\n" in it cannot start a
// line of its own. Each message (the constant text, e.g. "unmatched topic")
// is rate-limited on its own: beyond `max_per_second` records of one message
// in a second, records are dropped and counted, and the next record of that
// message that gets through says how many were suppressed. Without a sink,
// records go to standard error, one line each.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "plume/detail/utf8.hpp"

namespace plume::server {

enum class LogLevel : std::uint8_t { debug, info, warning, error };

inline std::string_view to_string(LogLevel level) noexcept {
    switch (level) {
        case LogLevel::debug:
            return "debug";
        case LogLevel::info:
            return "info";
        case LogLevel::warning:
            return "warning";
        case LogLevel::error:
            return "error";
    }
    return "?";
}

/// One key=value pair of a record; the value is already sanitised.
struct LogField {
    std::string_view key;
    std::string value;
};

/// What a sink receives. `message` is a constant string of the library's
/// (never peer data); peer data is only ever in `fields`.
struct LogRecord {
    LogLevel level = LogLevel::info;
    std::string_view message;
    std::span<const LogField> fields;
    /// Records of this message dropped by the rate limit since the last one
    /// that got through.
    std::size_t suppressed = 0;

    /// `[plume] warning unmatched topic topic="x" (3 similar suppressed)`
    std::string line() const {
        std::string out = "[plume] ";
        out += to_string(level);
        out += ' ';
        out += message;
        for (auto& f : fields) {
            out += ' ';
            out += f.key;
            out += "=\"";
            out += f.value;
            out += '"';
        }
        if (suppressed) out += " (" + std::to_string(suppressed) + " similar suppressed)";
        return out;
    }
};

using LogSink = std::function<void(const LogRecord&)>;

struct LogOptions {
    /// Where records go; empty: standard error.
    LogSink sink;
    /// Records below this level are dropped before any work is done.
    LogLevel level = LogLevel::info;
    /// Longest field value kept, in bytes of the original (escaping may add).
    std::size_t max_field_bytes = 200;
    /// Records of one message let through per second (0: no limit).
    unsigned max_per_second = 10;
};

namespace detail {

/// `s` cut to `max_bytes` (at a character boundary), with `"`, `\`, control
/// characters and bytes that are not UTF-8 escaped (\n, \t, \xNN), and
/// "...(N more bytes)" when cut. Reads at most max_bytes of `s`.
inline std::string sanitize_log_value(std::string_view s, std::size_t max_bytes) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    std::size_t take = std::min(s.size(), max_bytes);
    out.reserve(take + 16);
    std::size_t i = 0;
    auto escape_byte = [&](unsigned char c) {
        out += "\\x";
        out += hex[c >> 4];
        out += hex[c & 0xF];
    };
    while (i < take) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            switch (c) {
                case '\n':
                    out += "\\n";
                    break;
                case '\r':
                    out += "\\r";
                    break;
                case '\t':
                    out += "\\t";
                    break;
                case '"':
                    out += "\\\"";
                    break;
                case '\\':
                    out += "\\\\";
                    break;
                default:
                    if (c < 0x20 || c == 0x7f)
                        escape_byte(c);
                    else
                        out += static_cast<char>(c);
            }
            ++i;
            continue;
        }
        // A multi-byte character is kept whole only if it is valid and fits.
        std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (len > 1 && i + len <= take && plume::detail::is_valid_utf8(s.substr(i, len))) {
            out.append(s.data() + i, len);
            i += len;
        } else {
            escape_byte(c);
            ++i;
        }
    }
    if (i < s.size()) out += "...(" + std::to_string(s.size() - i) + " more bytes)";
    return out;
}

/// Per-message rate limit: fixed one-second windows.
class LogLimiter {
  public:
    /// True if a record of `message` may go out now; `suppressed` gets the
    /// count dropped since the last one that went out.
    bool admit(std::string_view message, unsigned per_second, std::size_t& suppressed) {
        if (per_second == 0) return true;
        auto now = std::chrono::steady_clock::now();
        std::lock_guard lock(mutex_);
        // Messages are the library's constants, so this stays small; the
        // bound is a guard against a sink-less misuse with dynamic text.
        if (windows_.size() > 1024) windows_.clear();
        auto& w = windows_[std::string(message)];
        if (now - w.start >= std::chrono::seconds(1)) {
            w.start = now;
            w.count = 0;
        }
        if (w.count >= per_second) {
            ++w.suppressed;
            return false;
        }
        ++w.count;
        suppressed = w.suppressed;
        w.suppressed = 0;
        return true;
    }

  private:
    struct Window {
        std::chrono::steady_clock::time_point start{};
        unsigned count = 0;
        std::size_t suppressed = 0;
    };
    std::mutex mutex_;
    std::unordered_map<std::string, Window> windows_;
};

}  // namespace detail

/// The log an Endpoint writes through. Thread-safe.
class Log {
  public:
    explicit Log(LogOptions options = {}) : options_(std::move(options)) {}

    const LogOptions& options() const noexcept { return options_; }
    bool enabled(LogLevel level) const noexcept { return level >= options_.level; }

    /// Writes one record; every field value is sanitised first.
    /// log(LogLevel::warning, "unmatched topic", {{"topic", topic}});
    void operator()(
        LogLevel level, std::string_view message,
        std::initializer_list<std::pair<std::string_view, std::string_view>> fields = {}) {
        if (!enabled(level)) return;
        std::size_t suppressed = 0;
        if (!limiter_.admit(message, options_.max_per_second, suppressed)) return;
        std::vector<LogField> clean;
        clean.reserve(fields.size());
        for (auto& [k, v] : fields)
            clean.push_back({k, detail::sanitize_log_value(v, options_.max_field_bytes)});
        LogRecord record{level, message, clean, suppressed};
        if (options_.sink) {
            try {
                options_.sink(record);
            } catch (...) {
                // A failing sink must not take a connection down with it.
            }
            return;
        }
        std::string line = record.line();
        line += '\n';
        std::cerr.write(line.data(), static_cast<std::streamsize>(line.size()));
        std::cerr.flush();
    }

  private:
    LogOptions options_;
    detail::LogLimiter limiter_;
};

}  // namespace plume::server
