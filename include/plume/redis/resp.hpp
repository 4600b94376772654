// plume/redis/resp.hpp — RESP2, the Redis protocol: commands out, replies in.
//
// Commands are arrays of bulk strings, appended to one buffer so that any
// number of them leave in one write (pipelining). Replies are parsed
// incrementally from whatever the socket returned; a reply split across reads
// is completed by the next feed. The parser is bounded: a bulk string, an
// array or the nesting beyond the limits is a protocol error, never an
// allocation the peer chose.
//
//   std::string out;
//   plume::redis::append_command(out, {"SET", "k", "v"});
//   plume::redis::Parser p;
//   p.feed("+OK\r\n");
//   auto v = p.next();   // Result<std::optional<Value>>: a value, "need more", or an error
#pragma once

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plume/redis/error.hpp"
#include "plume/result.hpp"

namespace plume::redis {

/// One RESP2 reply.
struct Value {
    enum class Type { simple, error, integer, bulk, array, nil };
    Type type = Type::nil;
    std::string str;  // simple, error, bulk
    std::int64_t integer = 0;
    std::vector<Value> elements;  // array

    bool is_nil() const noexcept { return type == Type::nil; }
    bool is_error() const noexcept { return type == Type::error; }
    bool is_array() const noexcept { return type == Type::array; }
    /// The text of a simple string, bulk string or error ("" otherwise).
    const std::string& text() const noexcept { return str; }

    static Value simple_string(std::string s) { return {Type::simple, std::move(s), 0, {}}; }
    static Value error_reply(std::string s) { return {Type::error, std::move(s), 0, {}}; }
    static Value bulk_string(std::string s) { return {Type::bulk, std::move(s), 0, {}}; }
    static Value number(std::int64_t n) { return {Type::integer, {}, n, {}}; }
};

/// Appends one command (an array of bulk strings) to `out`.
template <class Range>
void append_command(std::string& out, const Range& args) {
    auto append_number = [&](char tag, std::size_t n) {
        char digits[24];
        auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
        out += tag;
        out.append(digits, end);
        out += "\r\n";
    };
    append_number('*', static_cast<std::size_t>(std::distance(std::begin(args), std::end(args))));
    for (const auto& a : args) {
        std::string_view s(a);
        append_number('$', s.size());
        out += s;
        out += "\r\n";
    }
}
inline void append_command(std::string& out, std::initializer_list<std::string_view> args) {
    append_command<std::initializer_list<std::string_view>>(out, args);
}

struct ParserLimits {
    /// Longest bulk string or simple line accepted (Redis's own cap is 512 MB).
    std::size_t max_bulk = std::size_t{64} << 20;
    /// Most elements in one array (an EXEC or a SUBSCRIBE batch stays far below).
    std::size_t max_elements = 1 << 20;
    /// Deepest nesting of arrays.
    std::size_t max_depth = 16;
};

/// Incremental RESP2 reply parser.
class Parser {
  public:
    explicit Parser(ParserLimits limits = {}) : limits_(limits) {}

    /// Appends bytes read from the connection.
    void feed(std::string_view bytes) {
        compact();
        buffer_.append(bytes);
    }
    /// Space to read into directly (`size` bytes at the end of the buffer);
    /// commit(n) keeps the n bytes actually read.
    char* prepare(std::size_t size) {
        compact();
        filled_ = buffer_.size();
        buffer_.resize(filled_ + size);
        return buffer_.data() + filled_;
    }
    void commit(std::size_t n) { buffer_.resize(filled_ + n); }

    /// The next complete reply; std::nullopt when more bytes are needed; an
    /// error (protocol_error) when the bytes are not RESP2 or exceed the
    /// limits, after which the connection must be dropped.
    Result<std::optional<Value>> next() {
        std::size_t pos = start_;
        Value v;
        auto r = parse(pos, v, 0);
        if (r == Step::error) return error::protocol_error;
        if (r == Step::more) {
            // A line longer than any limit allows without a CRLF: not RESP.
            if (buffer_.size() - start_ > limits_.max_bulk + 64 &&
                buffer_.find("\r\n", start_) == std::string::npos)
                return error::protocol_error;
            return std::optional<Value>{};
        }
        start_ = pos;
        return std::optional<Value>{std::move(v)};
    }

    /// Bytes received and not yet consumed by a complete reply.
    std::size_t buffered() const noexcept { return buffer_.size() - start_; }

    void reset() {
        buffer_.clear();
        start_ = 0;
    }

  private:
    enum class Step { done, more, error };

    void compact() {
        if (start_ == 0) return;
        buffer_.erase(0, start_);
        start_ = 0;
    }

    // The line at `pos` (without CRLF); false when it is not complete yet.
    bool line(std::size_t& pos, std::string_view& out) const {
        auto end = buffer_.find("\r\n", pos);
        if (end == std::string::npos) return false;
        out = std::string_view(buffer_).substr(pos, end - pos);
        pos = end + 2;
        return true;
    }

    static bool to_int(std::string_view s, std::int64_t& n) {
        if (s.empty()) return false;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        return ec == std::errc{} && p == s.data() + s.size();
    }

    Step parse(std::size_t& pos, Value& v, std::size_t depth) {
        if (pos >= buffer_.size()) return Step::more;
        const char tag = buffer_[pos++];
        std::string_view l;
        if (!line(pos, l)) return Step::more;
        if (l.size() > limits_.max_bulk) return Step::error;
        switch (tag) {
            case '+':
                v = Value::simple_string(std::string(l));
                return Step::done;
            case '-':
                v = Value::error_reply(std::string(l));
                return Step::done;
            case ':': {
                std::int64_t n;
                if (!to_int(l, n)) return Step::error;
                v = Value::number(n);
                return Step::done;
            }
            case '$': {
                std::int64_t n;
                if (!to_int(l, n) || n < -1) return Step::error;
                if (n == -1) {
                    v = Value{};
                    return Step::done;
                }
                const auto size = static_cast<std::size_t>(n);
                if (size > limits_.max_bulk) return Step::error;
                if (buffer_.size() - pos < size + 2) return Step::more;
                if (buffer_.compare(pos + size, 2, "\r\n") != 0) return Step::error;
                v = Value::bulk_string(buffer_.substr(pos, size));
                pos += size + 2;
                return Step::done;
            }
            case '*': {
                std::int64_t n;
                if (!to_int(l, n) || n < -1) return Step::error;
                if (n == -1) {
                    v = Value{};
                    return Step::done;
                }
                if (static_cast<std::size_t>(n) > limits_.max_elements ||
                    depth + 1 > limits_.max_depth)
                    return Step::error;
                v = Value{Value::Type::array, {}, 0, {}};
                // Reserve what the bytes present can hold (3 bytes per element at
                // least), not what the header claims.
                v.elements.reserve(
                    std::min<std::size_t>(static_cast<std::size_t>(n), (buffer_.size() - pos) / 3));
                for (std::int64_t i = 0; i < n; ++i) {
                    Value e;
                    auto r = parse(pos, e, depth + 1);
                    if (r != Step::done) return r;
                    v.elements.push_back(std::move(e));
                }
                return Step::done;
            }
            default:
                return Step::error;
        }
    }

    ParserLimits limits_;
    std::string buffer_;
    std::size_t start_ = 0;
    std::size_t filled_ = 0;
};

}  // namespace plume::redis
