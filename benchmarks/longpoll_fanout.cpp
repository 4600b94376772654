// longpoll_fanout — how fast the chat server delivers broadcasts to clients
// on Phoenix's long-poll transport, and what each delivery costs it.
//
// Spawns examples/chat (--host 127.0.0.1 --port 0 --no-presence
// --no-rate-limits, plus --longpoll-window-ms N and any arguments after
// `--`), then opens --clients long-poll sessions (GET /socket/longpoll?
// vsn=2.0.0&user_id=uK → {"status":410,"token":T}) and one publisher
// session, each with two HTTP/1.1 keep-alive connections: one carries its
// polls (GET ...&token=T, held by the server up to the window; the client
// polls again as soon as an answer arrives), the other its POSTs
// (application/x-ndjson, one V2 message a line). Every session POSTs a
// phx_join for room:lobby; a subscriber's POST connection is closed once
// its join is acknowledged (it has nothing more to send), and the run waits
// until every join reply ("status":"ok") has come back through the polls.
//
// Then the publisher POSTs --messages new_msg pushes, batches of at most
// --batch lines, at full speed (the next batch once the last is
// acknowledged) or at --rate messages per second. Each body is "m<seq>
// <steady-clock ns>" padded to --size bytes. Every client checks that it
// gets each body exactly once and in order, and stamps its arrival. Printed:
// the time from the first POST until the last client has every message,
// deliveries/s (clients × messages / that time), poll answers carrying
// messages and messages per answer, send-to-arrival latency (p50/p99/max
// over all deliveries), the server's CPU (/proc/PID/stat) in seconds and µs
// per delivery, lost / duplicated / out-of-order counts, and anything odd:
// 410s (sessions gone), HTTP errors, connections the server closed.
// --runs N (3) repeats it with a fresh server each time and prints the medians.
// Every phase is bounded (--setup-timeout, --timeout); the server is
// stopped by its PID.
//
//   longpoll_fanout                                   # 1,000 clients, 200 messages, 3 runs
//   longpoll_fanout --runs 1 --clients 5000
//   longpoll_fanout --rate 100 --messages 500 --window-ms 2000
//   longpoll_fanout --server /tmp/chat_before
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <asio.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/bench_support.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace plume_bench;

constexpr std::string_view join_line = R"(["1","1","room:lobby","phx_join",{}])";
// What the messages look like inside poll answers, as plume's V2 serializer
// writes them (compact JSON, object keys sorted: "body" leads the payload).
constexpr std::string_view broadcast_prefix = R"([null,null,"room:lobby","new_msg",{"body":")";
constexpr std::string_view join_reply_prefix = R"(["1","1","room:lobby","phx_reply",)";

struct Config {
    std::string server = "build/release/examples/chat/chat";
    std::vector<std::string> server_args;
    int clients = 1000;
    int messages = 200;
    std::size_t size = 64;
    double rate = 0;  // messages per second; 0: as fast as the POSTs are acknowledged
    int batch = 100;
    int runs = 3;
    int concurrency = 100;  // sessions being opened and joined at once
    long window_ms = 0;     // 0: the server's default (10 s)
    double setup_timeout = 30;
    double timeout = 30;
    double quiet = 0.3;
    bool show_server_output = false;
};

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

std::string with_commas(double value) {
    const auto n = static_cast<unsigned long long>(std::llround(std::max(0.0, value)));
    std::string digits = std::to_string(n), out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

/// Query-string escaping (session tokens are base64url and '.', but be safe).
std::string url_escape(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// ------------------------------------------------------- answer parsing --

void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

bool hex4(std::string_view s, std::size_t at, std::uint32_t& out) {
    if (at + 4 > s.size()) return false;
    return std::from_chars(s.data() + at, s.data() + at + 4, out, 16).ptr == s.data() + at + 4;
}

/// Reads the JSON string starting at s[i] == '"' into `out` (unescaped);
/// leaves i just past its closing quote.
bool read_json_string(std::string_view s, std::size_t& i, std::string& out) {
    out.clear();
    if (i >= s.size() || s[i] != '"') return false;
    ++i;
    while (i < s.size()) {
        const std::size_t stop = s.find_first_of("\"\\", i);
        if (stop == std::string_view::npos) return false;
        out.append(s.data() + i, stop - i);
        i = stop;
        if (s[i] == '"') return ++i, true;
        if (++i >= s.size()) return false;
        const char e = s[i++];
        switch (e) {
            case '"':
            case '\\':
            case '/':
                out += e;
                break;
            case 'b':
                out += '\b';
                break;
            case 'f':
                out += '\f';
                break;
            case 'n':
                out += '\n';
                break;
            case 'r':
                out += '\r';
                break;
            case 't':
                out += '\t';
                break;
            case 'u': {
                std::uint32_t cp = 0;
                if (!hex4(s, i, cp)) return false;
                i += 4;
                if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= s.size() && s[i] == '\\' &&
                    s[i + 1] == 'u') {
                    std::uint32_t low = 0;
                    if (hex4(s, i + 2, low) && low >= 0xDC00 && low < 0xE000) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                        i += 6;
                    }
                }
                append_utf8(out, cp);
                break;
            }
            default:
                return false;
        }
    }
    return false;
}

/// A long-poll answer, {"status":S,"token":T,"messages":["...",...]}: its
/// status, and each message (the V2 array as text) handed to `on_message`.
/// False when it is not shaped so.
template <class F>
bool parse_answer(std::string_view body, int& status, std::string& scratch, F&& on_message) {
    constexpr std::string_view status_key = "\"status\":";
    const auto at = body.find(status_key);
    if (at == std::string_view::npos) return false;
    const char* first = body.data() + at + status_key.size();
    if (std::from_chars(first, body.data() + body.size(), status).ec != std::errc{}) return false;
    constexpr std::string_view messages_key = "\"messages\":[";
    const auto m = body.find(messages_key, at);
    if (m == std::string_view::npos) return true;  // {"status":200} and the like
    std::size_t i = m + messages_key.size();
    const auto skip_space = [&] {
        while (i < body.size() && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r'))
            ++i;
    };
    skip_space();
    if (i < body.size() && body[i] == ']') return true;
    while (i < body.size()) {
        skip_space();
        if (!read_json_string(body, i, scratch)) return false;
        on_message(std::string_view(scratch));
        skip_space();
        if (i >= body.size()) return false;
        if (body[i] == ']') return true;
        if (body[i++] != ',') return false;
    }
    return false;
}

/// "m<seq> <ns>..." at the start of a broadcast body.
bool parse_stamp(std::string_view body, std::uint32_t& seq, std::int64_t& ns) {
    if (body.empty() || body.front() != 'm') return false;
    const char* end = body.data() + body.size();
    auto r = std::from_chars(body.data() + 1, end, seq);
    if (r.ec != std::errc{} || r.ptr == end || *r.ptr != ' ') return false;
    return std::from_chars(r.ptr + 1, end, ns).ec == std::errc{};
}

std::string stamp_body(std::uint32_t seq, std::int64_t ns, std::size_t size) {
    std::string body = "m" + std::to_string(seq) + ' ' + std::to_string(ns);
    if (body.size() < size) body.append(size - body.size(), 'x');
    return body;
}

// ------------------------------------------------- HTTP/1.1 connection --

struct NetStats {
    std::uint64_t connects = 0;
    std::uint64_t server_closed = 0;    // answers that said "Connection: close"
    std::uint64_t retried = 0;          // requests resent after a kept-alive connection failed
    std::uint64_t idle_reconnects = 0;  // connections replaced before reuse (idle ≥ 10 s)
};

struct HttpResult {
    std::error_code ec;
    std::string what;  // set on failure
    int status = 0;    // the HTTP status
    std::string body;
};

/// One keep-alive HTTP/1.1 connection, one request at a time. Reconnects
/// when the server said close; a request that fails on a reused connection
/// before any answer byte (the server closed it while idle) is sent once more
/// on a new one.
class HttpConn : public std::enable_shared_from_this<HttpConn> {
  public:
    using Callback = std::function<void(HttpResult&)>;

    HttpConn(asio::io_context& io, asio::ip::tcp::endpoint endpoint, NetStats& stats)
        : socket_(io), endpoint_(endpoint), stats_(stats) {}

    bool busy() const { return static_cast<bool>(callback_); }

    void request(std::string text, Callback callback) {
        request_ = std::move(text);
        callback_ = std::move(callback);
        retried_ = false;
        start();
    }

    void close() {
        std::error_code ignored;
        socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
        served_ = 0;
    }

  private:
    void start() {
        in_.clear();
        head_end_ = std::string::npos;
        if (socket_.is_open() && Clock::now() - last_used_ > std::chrono::seconds(10)) {
            ++stats_.idle_reconnects;
            close();
        }
        if (socket_.is_open()) return write();
        ++stats_.connects;
        socket_.async_connect(endpoint_, [self = shared_from_this()](std::error_code ec) {
            if (ec) return self->fail(ec, "connect");
            std::error_code ignored;
            self->socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
            self->write();
        });
    }

    void write() {
        asio::async_write(socket_, asio::buffer(request_),
                          [self = shared_from_this()](std::error_code ec, std::size_t) {
                              if (ec) return self->fail(ec, "write");
                              self->read();
                          });
    }

    void read() {
        const std::size_t old = in_.size();
        std::size_t want = 16384;
        if (head_end_ != std::string::npos)
            want = std::max(want, head_end_ + content_length_ - old);
        in_.resize(old + want);
        socket_.async_read_some(
            asio::buffer(in_.data() + old, want),
            [self = shared_from_this(), old](std::error_code ec, std::size_t n) {
                self->in_.resize(old + n);
                if (ec) return self->fail(ec, "read");
                self->on_bytes();
            });
    }

    void on_bytes() {
        if (head_end_ == std::string::npos) {
            const auto end = in_.find("\r\n\r\n");
            if (end == std::string::npos) {
                if (in_.size() > 65536) return fail({}, "answer head too large");
                return read();
            }
            head_end_ = end + 4;
            if (!parse_head(std::string_view(in_).substr(0, end)))
                return fail({}, "malformed answer head: " + in_.substr(0, std::min(end, 200ul)));
        }
        if (in_.size() < head_end_ + content_length_) return read();
        if (in_.size() > head_end_ + content_length_)
            return fail({}, "bytes after the answer, unasked for");
        HttpResult result;
        result.status = status_;
        result.body = in_.substr(head_end_);
        ++served_;
        last_used_ = Clock::now();
        if (close_after_) {
            ++stats_.server_closed;
            close();
        }
        complete(result);
    }

    bool parse_head(std::string_view head) {
        // "HTTP/1.1 200 OK", then "Name: value" lines.
        const auto eol = head.find("\r\n");
        const auto status_line = head.substr(0, eol);
        if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12) return false;
        if (std::from_chars(status_line.data() + 9, status_line.data() + 12, status_).ec !=
            std::errc{})
            return false;
        bool has_length = false;
        close_after_ = status_line.starts_with("HTTP/1.0");
        std::size_t at = eol == std::string_view::npos ? head.size() : eol + 2;
        while (at < head.size()) {
            auto next = head.find("\r\n", at);
            if (next == std::string_view::npos) next = head.size();
            const auto line = head.substr(at, next - at);
            at = next + 2;
            const auto colon = line.find(':');
            if (colon == std::string_view::npos) return false;
            std::string name(line.substr(0, colon));
            for (auto& c : name)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            auto value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ')
                value.remove_prefix(1);
            if (name == "content-length") {
                if (std::from_chars(value.data(), value.data() + value.size(), content_length_)
                        .ec != std::errc{})
                    return false;
                has_length = true;
            } else if (name == "connection") {
                std::string v(value);
                for (auto& c : v)
                    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                if (v.find("close") != std::string::npos) close_after_ = true;
                if (v.find("keep-alive") != std::string::npos) close_after_ = false;
            }
        }
        return has_length;
    }

    void fail(std::error_code ec, std::string what) {
        if (ec == asio::error::operation_aborted) return;  // we closed it
        const bool nothing_answered = in_.empty() && head_end_ == std::string::npos;
        const bool reused = served_ > 0;
        close();
        if (ec && nothing_answered && reused && !retried_) {
            retried_ = true;
            ++stats_.retried;
            return start();
        }
        HttpResult result;
        result.ec = ec ? ec : std::make_error_code(std::errc::protocol_error);
        result.what = what + (ec ? ": " + ec.message() : std::string());
        complete(result);
    }

    void complete(HttpResult& result) {
        auto callback = std::exchange(callback_, nullptr);
        if (callback) callback(result);
    }

    asio::ip::tcp::socket socket_;
    asio::ip::tcp::endpoint endpoint_;
    NetStats& stats_;
    std::string request_;
    Callback callback_;
    std::string in_;
    std::size_t head_end_ = std::string::npos;
    std::size_t content_length_ = 0;
    int status_ = 0;
    bool close_after_ = false;
    bool retried_ = false;
    std::size_t served_ = 0;  // requests answered on the current TCP connection
    Clock::time_point last_used_ = Clock::now();
};

// ----------------------------------------------------------------- run --

struct Client {
    std::string user;
    std::string token;
    std::shared_ptr<HttpConn> poll;
    std::shared_ptr<HttpConn> post;
    bool publisher = false;
    bool joined = false;
    bool failed = false;
    // What arrived of the --messages broadcasts.
    std::vector<std::uint8_t> seen;
    int unique = 0;
    std::int64_t last_seq = -1;
    std::uint64_t duplicates = 0;
    std::uint64_t out_of_order = 0;
    Clock::time_point complete_at{};
};

struct RunResult {
    bool ok = false;
    bool set_up = false;  // every session opened and joined
    double setup_s = 0;
    double first_s = 0;  // first send to the first delivery
    double elapsed_s = 0;
    double deliveries_per_s = 0;
    std::uint64_t deliveries = 0;
    std::uint64_t answers_with_messages = 0;
    std::uint64_t answers_empty = 0;  // 200s without a broadcast, and 204s
    double per_answer = 0;
    double p50_ms = 0, p99_ms = 0, max_ms = 0;
    double server_cpu_s = 0;
    double us_per_delivery = 0;
    double client_cpu_s = 0;
    double others_cpu_s = 0;
    double steal_s = 0;
    std::uint64_t lost = 0, duplicated = 0, out_of_order = 0;
};

class Run {
  public:
    Run(const Config& config, const asio::ip::tcp::endpoint& endpoint, const std::string& host)
        : config_(config), endpoint_(endpoint), host_(host) {}

    /// Opens, joins and measures; the server stays up (stopped by the caller).
    RunResult execute(pid_t server_pid) {
        RunResult out;
        const int n = config_.clients;
        clients_.resize(static_cast<std::size_t>(n) + 1);
        for (int i = 0; i <= n; ++i) {
            auto& c = clients_[static_cast<std::size_t>(i)];
            c.publisher = i == n;
            c.user = c.publisher ? "publisher" : "u" + std::to_string(i);
            c.poll = std::make_shared<HttpConn>(io_, endpoint_, net_);
            c.post = std::make_shared<HttpConn>(io_, endpoint_, net_);
            c.seen.assign(static_cast<std::size_t>(config_.messages), 0);
        }

        // 1. Sessions and joins, --concurrency at a time (the publisher first).
        const auto setup_start = Clock::now();
        const auto setup_deadline = setup_start + to_duration(config_.setup_timeout);
        open_more();
        auto last_progress = setup_start;
        while (joined_ < n + 1 && Clock::now() < setup_deadline && !fatal_) {
            io_.run_one_for(std::chrono::milliseconds(50));
            if (Clock::now() - last_progress > std::chrono::seconds(5)) {
                last_progress = Clock::now();
                std::fprintf(stderr, "longpoll_fanout: %.0f s: %d of %d sessions joined\n",
                             seconds_between(setup_start, last_progress), joined_, n + 1);
            }
        }
        out.setup_s = seconds_between(setup_start, Clock::now());
        if (joined_ < n + 1) {
            std::fprintf(stderr,
                         "longpoll_fanout: %d of %d sessions joined room:lobby in %.1f s (%d "
                         "refused, %d failed%s)\n",
                         joined_, n + 1, out.setup_s, join_refused_, failed_clients_,
                         fatal_ ? "; the publisher's among them" : "");
            shutdown();
            return out;
        }
        out.set_up = true;

        // 2. The fan-out.
        const double cpu_before = proc_cpu_seconds(server_pid).value_or(-1);
        const double self_before = self_cpu_seconds();
        const MachineCpu machine_before = machine_cpu();
        measuring_ = true;
        t0_ = Clock::now();
        publish_next();
        const auto deadline = t0_ + to_duration(config_.timeout);
        last_progress = t0_;
        while (complete_ < n && Clock::now() < deadline && !fatal_) {
            io_.run_one_for(std::chrono::milliseconds(50));
            if (Clock::now() - last_progress > std::chrono::seconds(5)) {
                last_progress = Clock::now();
                std::fprintf(stderr,
                             "longpoll_fanout: %.0f s: %d of %d sent, %s deliveries, %d clients "
                             "complete\n",
                             seconds_between(t0_, last_progress), sent_, config_.messages,
                             with_commas(static_cast<double>(deliveries_)).c_str(), complete_);
            }
        }
        const double cpu_after = proc_cpu_seconds(server_pid).value_or(-1);
        const double self_after = self_cpu_seconds();
        const MachineCpu machine_after = machine_cpu();
        const bool timed_out = complete_ < n;
        Clock::time_point t_end = t0_;
        for (int i = 0; i < n; ++i)
            t_end = std::max(t_end, clients_[static_cast<std::size_t>(i)].complete_at);
        if (timed_out) t_end = Clock::now();

        // Late duplicates would arrive now.
        const auto quiet_end = Clock::now() + to_duration(config_.quiet);
        while (Clock::now() < quiet_end && !timed_out)
            io_.run_one_for(std::chrono::milliseconds(20));
        measuring_ = false;

        out.elapsed_s = seconds_between(t0_, t_end);
        out.first_s = deliveries_ ? seconds_between(t0_, first_arrival_) : 0;
        out.deliveries = deliveries_;
        out.deliveries_per_s = static_cast<double>(deliveries_) / std::max(1e-9, out.elapsed_s);
        out.answers_with_messages = answers_with_messages_;
        out.answers_empty = answers_empty_;
        out.per_answer = answers_with_messages_ ? static_cast<double>(deliveries_) /
                                                      static_cast<double>(answers_with_messages_)
                                                : 0;
        out.p50_ms = static_cast<double>(latency_.quantile(0.5)) / 1e6;
        out.p99_ms = static_cast<double>(latency_.quantile(0.99)) / 1e6;
        out.max_ms = static_cast<double>(latency_.max()) / 1e6;
        out.server_cpu_s = cpu_after - cpu_before;
        out.us_per_delivery =
            deliveries_ ? out.server_cpu_s * 1e6 / static_cast<double>(deliveries_) : 0;
        out.client_cpu_s = self_after - self_before;
        out.others_cpu_s =
            machine_after.busy - machine_before.busy - out.server_cpu_s - out.client_cpu_s;
        out.steal_s = machine_after.steal - machine_before.steal;
        for (int i = 0; i < n; ++i) {
            const auto& c = clients_[static_cast<std::size_t>(i)];
            out.lost += static_cast<std::uint64_t>(config_.messages - c.unique);
            out.duplicated += c.duplicates;
            out.out_of_order += c.out_of_order;
        }
        if (timed_out)
            std::fprintf(stderr, "longpoll_fanout: %s: %d of %d sent, %d of %d clients complete\n",
                         fatal_ ? "the publisher failed" : "TIMED OUT", sent_, config_.messages,
                         complete_, n);
        out.ok = !timed_out && !fatal_ && out.lost == 0 && out.duplicated == 0 &&
                 out.out_of_order == 0 && failed_clients_ == 0 && unexpected_ == 0;
        shutdown();
        return out;
    }

    // Oddities, printed by the caller.
    const NetStats& net() const { return net_; }
    int status_410() const { return status_410_; }
    int http_errors() const { return http_errors_; }
    int failed_clients() const { return failed_clients_; }
    std::uint64_t unexpected() const { return unexpected_; }

  private:
    static Clock::duration to_duration(double seconds) {
        return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    }

    std::string get_text(const std::string& query) const {
        return "GET /socket/longpoll?vsn=2.0.0&" + query + " HTTP/1.1\r\nHost: " + host_ +
               "\r\n\r\n";
    }

    std::string post_text(const Client& c, const std::string& body) const {
        return "POST /socket/longpoll?vsn=2.0.0&token=" + url_escape(c.token) +
               " HTTP/1.1\r\nHost: " + host_ +
               "\r\nContent-Type: application/x-ndjson\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body;
    }

    /// Counts a problem; the first five of each kind are printed.
    __attribute__((format(printf, 2, 3))) static void report(int& counter, const char* format,
                                                             ...) {
        if (++counter > 5) return;
        std::va_list args;
        va_start(args, format);
        std::fprintf(stderr, "longpoll_fanout: ");
        std::vfprintf(stderr, format, args);
        std::fputc('\n', stderr);
        va_end(args);
    }

    void fail_client(Client& c) {
        if (c.failed) return;
        c.failed = true;
        ++failed_clients_;
        if (!c.joined) --in_setup_, open_more();
        if (c.publisher) fatal_ = true;
    }

    void open_more() {
        while (in_setup_ < config_.concurrency && next_open_ <= config_.clients) {
            // The publisher (the last slot) goes first.
            const int i = next_open_ == 0 ? config_.clients : next_open_ - 1;
            ++next_open_;
            ++in_setup_;
            open_session(static_cast<std::size_t>(i));
        }
    }

    void open_session(std::size_t i) {
        auto& c = clients_[i];
        c.poll->request(get_text("user_id=" + c.user), [this, i](HttpResult& r) {
            auto& c = clients_[i];
            if (stopping_) return;
            nlohmann::json answer;
            if (!r.ec && r.status == 200) answer = nlohmann::json::parse(r.body, nullptr, false);
            if (r.ec || r.status != 200 || !answer.is_object() ||
                answer.value("status", 0) != 410 || !answer.contains("token") ||
                !answer["token"].is_string()) {
                report(http_errors_, "%s: no session: %s", c.user.c_str(),
                       r.ec ? r.what.c_str()
                            : ("HTTP " + std::to_string(r.status) + " " + r.body).c_str());
                return fail_client(c);
            }
            c.token = answer["token"].get<std::string>();
            poll(i);
            c.post->request(post_text(c, std::string(join_line)), [this, i](HttpResult& r) {
                auto& c = clients_[i];
                if (stopping_) return;
                int status = 0;
                std::string scratch;
                if (r.ec || r.status != 200 ||
                    !parse_answer(r.body, status, scratch, [](std::string_view) {}) ||
                    status != 200) {
                    if (status == 410) ++status_410_;
                    report(http_errors_, "%s: join POST: %s", c.user.c_str(),
                           r.ec ? r.what.c_str() : r.body.c_str());
                    return fail_client(c);
                }
                // A subscriber has nothing more to POST.
                if (!c.publisher) c.post->close();
            });
        });
    }

    void poll(std::size_t i) {
        auto& c = clients_[i];
        c.poll->request(get_text("token=" + url_escape(c.token)),
                        [this, i](HttpResult& r) { on_poll(i, r); });
    }

    void on_poll(std::size_t i, HttpResult& r) {
        auto& c = clients_[i];
        if (stopping_ || c.failed) return;
        if (r.ec || r.status != 200) {
            report(http_errors_, "%s: poll: %s", c.user.c_str(),
                   r.ec ? r.what.c_str() : ("HTTP " + std::to_string(r.status)).c_str());
            return fail_client(c);
        }
        const auto arrived = Clock::now();
        const std::int64_t arrived_ns = now_ns();
        int status = 0;
        std::uint64_t broadcasts = 0;
        const bool parsed = parse_answer(r.body, status, scratch_, [&](std::string_view m) {
            if (m.starts_with(broadcast_prefix)) {
                ++broadcasts;
                on_broadcast(c, m.substr(broadcast_prefix.size()), arrived, arrived_ns);
            } else if (m.starts_with(join_reply_prefix)) {
                on_join_reply(c, m);
            } else {
                if (++unexpected_ <= 3)
                    std::fprintf(stderr, "longpoll_fanout: %s: unexpected message %.*s\n",
                                 c.user.c_str(),
                                 static_cast<int>(std::min<std::size_t>(m.size(), 200)), m.data());
            }
        });
        if (!parsed) {
            report(http_errors_, "%s: unreadable poll answer: %.200s", c.user.c_str(),
                   r.body.c_str());
            return fail_client(c);
        }
        if (status == 410) {
            // The session is gone (closed by the server: not polled in time,
            // too many messages held, or stopping).
            ++status_410_;
            report(http_errors_, "%s: poll answered 410 (session gone)", c.user.c_str());
            return fail_client(c);
        }
        if (status != 200 && status != 204) {
            report(http_errors_, "%s: poll answered status %d", c.user.c_str(), status);
            return fail_client(c);
        }
        if (measuring_ && !c.publisher) {
            if (broadcasts > 0)
                ++answers_with_messages_;
            else
                ++answers_empty_;
        }
        poll(i);  // at once, as phoenix.js does
    }

    void on_join_reply(Client& c, std::string_view m) {
        if (c.joined || c.failed) return;
        if (m.find(R"("status":"ok")") == std::string_view::npos) {
            ++join_refused_;
            report(http_errors_, "%s: join refused: %.*s", c.user.c_str(),
                   static_cast<int>(m.size()), m.data());
            return fail_client(c);
        }
        c.joined = true;
        ++joined_;
        --in_setup_;
        open_more();
    }

    void on_broadcast(Client& c, std::string_view rest, Clock::time_point arrived,
                      std::int64_t arrived_ns) {
        const auto quote = rest.find('"');
        std::uint32_t seq = 0;
        std::int64_t sent_ns = 0;
        if (quote == std::string_view::npos || !parse_stamp(rest.substr(0, quote), seq, sent_ns) ||
            seq >= static_cast<std::uint32_t>(config_.messages)) {
            ++unexpected_;
            return;
        }
        if (c.publisher) return;  // its own broadcasts: not counted
        auto& seen = c.seen[seq];
        if (seen) return void(++c.duplicates);
        seen = 1;
        if (static_cast<std::int64_t>(seq) != c.last_seq + 1) ++c.out_of_order;
        c.last_seq = seq;
        if (deliveries_++ == 0) first_arrival_ = arrived;
        latency_.record(
            static_cast<std::uint64_t>(std::max<std::int64_t>(0, arrived_ns - sent_ns)));
        if (++c.unique == config_.messages) {
            c.complete_at = arrived;
            ++complete_;
        }
    }

    // The publisher's next batch: all that is due (--rate) or left, at most
    // --batch lines, once the previous POST is acknowledged.
    void publish_next() {
        auto& p = clients_.back();
        if (stopping_ || p.failed || sent_ >= config_.messages || p.post->busy()) return;
        int due = config_.messages;
        if (config_.rate > 0) {
            const double elapsed = seconds_between(t0_, Clock::now());
            due = std::min(config_.messages, static_cast<int>(elapsed * config_.rate) + 1);
            if (due <= sent_) {
                // Wake up when the next one is due.
                timer_.expires_at(t0_ + to_duration(sent_ / config_.rate));
                timer_.async_wait([this](std::error_code ec) {
                    if (!ec) publish_next();
                });
                return;
            }
        }
        const int count = std::min(config_.batch, due - sent_);
        std::string body;
        const std::int64_t stamp = now_ns();
        for (int k = 0; k < count; ++k) {
            const auto seq = static_cast<std::uint32_t>(sent_ + k);
            if (k) body += '\n';
            body += R"(["1",")" + std::to_string(seq + 2) +
                    R"(","room:lobby","new_msg",{"body":")" + stamp_body(seq, stamp, config_.size) +
                    "\"}]";
        }
        sent_ += count;
        p.post->request(post_text(p, body), [this](HttpResult& r) {
            if (stopping_) return;
            int status = 0;
            std::string scratch;
            if (r.ec || r.status != 200 ||
                !parse_answer(r.body, status, scratch, [](std::string_view) {}) || status != 200) {
                if (status == 410) ++status_410_;
                report(http_errors_, "publisher: POST: %s", r.ec ? r.what.c_str() : r.body.c_str());
                return fail_client(clients_.back());
            }
            publish_next();
        });
    }

    void shutdown() {
        stopping_ = true;
        timer_.cancel();
        for (auto& c : clients_) {
            c.poll->close();
            c.post->close();
        }
        io_.restart();
        io_.run_for(std::chrono::seconds(2));
    }

    const Config& config_;
    asio::io_context io_{1};
    asio::steady_timer timer_{io_};
    asio::ip::tcp::endpoint endpoint_;
    std::string host_;
    NetStats net_;
    std::vector<Client> clients_;  // subscribers, then the publisher
    std::string scratch_;
    bool stopping_ = false;
    bool fatal_ = false;
    bool measuring_ = false;
    int next_open_ = 0;
    int in_setup_ = 0;
    int joined_ = 0;
    int join_refused_ = 0;
    int failed_clients_ = 0;
    int complete_ = 0;
    int sent_ = 0;
    int http_errors_ = 0;
    int status_410_ = 0;
    std::uint64_t unexpected_ = 0;
    std::uint64_t deliveries_ = 0;
    std::uint64_t answers_with_messages_ = 0;
    std::uint64_t answers_empty_ = 0;
    Clock::time_point t0_{};
    Clock::time_point first_arrival_{};
    LatencyHistogram latency_;
};

void print_usage() {
    std::fputs(
        "usage: longpoll_fanout [--server build/release/examples/chat/chat] [--clients 1000]\n"
        "         [--messages 200] [--size 64] [--rate 0 (full speed)] [--batch 100]\n"
        "         [--runs 3] [--window-ms N (server default 10000)] [--concurrency 100]\n"
        "         [--setup-timeout 30] [--timeout 30] [--quiet 0.3] [--server-output]\n"
        "         [-- SERVER ARGS...]\n",
        stderr);
}

void print_result(const char* label, const RunResult& r, int clients, int messages) {
    std::printf("%s\n", label);
    std::printf(
        "  delivered                   %d clients x %d messages = %s in %.3f s: %s "
        "deliveries/s\n",
        clients, messages, with_commas(static_cast<double>(r.deliveries)).c_str(), r.elapsed_s,
        with_commas(r.deliveries_per_s).c_str());
    std::printf(
        "  poll answers                %s: %s with messages (%.1f messages each), %s empty\n",
        with_commas(static_cast<double>(r.answers_with_messages + r.answers_empty)).c_str(),
        with_commas(static_cast<double>(r.answers_with_messages)).c_str(), r.per_answer,
        with_commas(static_cast<double>(r.answers_empty)).c_str());
    std::printf(
        "  latency send -> arrival     p50 %.1f ms, p99 %.1f ms, max %.1f ms; first "
        "delivery after %.1f ms\n",
        r.p50_ms, r.p99_ms, r.max_ms, r.first_s * 1000);
    std::printf("  server CPU                  %.2f s, %.2f us per delivery\n", r.server_cpu_s,
                r.us_per_delivery);
    std::printf("  load generator CPU          %.2f s; other processes %.2f s; steal %.2f s\n",
                r.client_cpu_s, r.others_cpu_s, r.steal_s);
    std::printf("  checked                     %llu lost, %llu duplicated, %llu out of order\n",
                static_cast<unsigned long long>(r.lost),
                static_cast<unsigned long long>(r.duplicated),
                static_cast<unsigned long long>(r.out_of_order));
}

double median_of(std::vector<RunResult>& results, double RunResult::*field) {
    std::vector<double> v;
    for (const auto& r : results)
        v.push_back(r.*field);
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int run(const Config& config) {
    if (access(config.server.c_str(), X_OK) != 0)
        throw std::runtime_error("the chat server " + config.server +
                                 " is missing or not executable; build it with `cmake --preset "
                                 "release && cmake --build --preset release --target chat` (or "
                                 "pass --server PATH)");
    // Two connections per session, the publisher's included.
    require_fd_limit(2 * (config.clients + 1) + 16);

    std::printf(
        "longpoll_fanout: %d long-poll clients in room:lobby, %d messages of %zu B %s, "
        "batches of <= %d; server %s%s\n",
        config.clients, config.messages, config.size,
        config.rate > 0 ? ("at " + with_commas(config.rate) + "/s").c_str() : "at full speed",
        config.batch, config.server.c_str(),
        config.window_ms ? (", window " + std::to_string(config.window_ms) + " ms").c_str() : "");
    std::fflush(stdout);
    std::vector<RunResult> results;
    bool all_ok = true;
    for (int run_index = 1; run_index <= config.runs; ++run_index) {
        ServerProcess server;
        std::vector<std::string> args{"--host", "127.0.0.1",     "--port",
                                      "0",      "--no-presence", "--no-rate-limits"};
        if (config.window_ms > 0) {
            args.push_back("--longpoll-window-ms");
            args.push_back(std::to_string(config.window_ms));
        }
        args.insert(args.end(), config.server_args.begin(), config.server_args.end());
        server.start(config.server, args, std::chrono::seconds(15), config.show_server_output);
        const std::string host = server.host().empty() ? "127.0.0.1" : server.host();
        const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(host), server.port());

        RunResult result;
        std::string oddities;
        {
            Run one(config, endpoint, host + ":" + std::to_string(server.port()));
            result = one.execute(server.pid());
            const auto& net = one.net();
            char line[512];
            std::snprintf(line, sizeof line,
                          "  setup                       %.2f s to open and join %d sessions; "
                          "%llu connections opened\n"
                          "  oddities                    %d answered 410, %d HTTP/poll errors, %d "
                          "clients failed, %llu unexpected messages; %llu closes by the server, "
                          "%llu requests retried, %llu idle reconnects\n",
                          result.setup_s, config.clients + 1,
                          static_cast<unsigned long long>(net.connects), one.status_410(),
                          one.http_errors(), one.failed_clients(),
                          static_cast<unsigned long long>(one.unexpected()),
                          static_cast<unsigned long long>(net.server_closed),
                          static_cast<unsigned long long>(net.retried),
                          static_cast<unsigned long long>(net.idle_reconnects));
            oddities = line;
        }
        const std::string stopped = server.stop(std::chrono::seconds(5));
        const std::string label = "run " + std::to_string(run_index) + " of " +
                                  std::to_string(config.runs) + (result.ok ? "" : "  (FAILED)");
        if (result.set_up)
            print_result(label.c_str(), result, config.clients, config.messages);
        else
            std::printf("%s: the sessions did not all open and join; nothing measured\n",
                        label.c_str());
        std::printf("%s  server stop                 %s\n", oddities.c_str(), stopped.c_str());
        std::fflush(stdout);
        all_ok = all_ok && result.ok;
        if (result.set_up) results.push_back(result);
    }
    if (results.size() > 1) {
        RunResult m;
        m.elapsed_s = median_of(results, &RunResult::elapsed_s);
        m.first_s = median_of(results, &RunResult::first_s);
        m.deliveries_per_s = median_of(results, &RunResult::deliveries_per_s);
        m.per_answer = median_of(results, &RunResult::per_answer);
        m.p50_ms = median_of(results, &RunResult::p50_ms);
        m.p99_ms = median_of(results, &RunResult::p99_ms);
        m.max_ms = median_of(results, &RunResult::max_ms);
        m.server_cpu_s = median_of(results, &RunResult::server_cpu_s);
        m.us_per_delivery = median_of(results, &RunResult::us_per_delivery);
        m.client_cpu_s = median_of(results, &RunResult::client_cpu_s);
        m.others_cpu_s = median_of(results, &RunResult::others_cpu_s);
        m.steal_s = median_of(results, &RunResult::steal_s);
        std::vector<double> answers, empties, deliveries;
        for (const auto& r : results) {
            m.lost += r.lost;
            m.duplicated += r.duplicated;
            m.out_of_order += r.out_of_order;
            answers.push_back(static_cast<double>(r.answers_with_messages));
            empties.push_back(static_cast<double>(r.answers_empty));
            deliveries.push_back(static_cast<double>(r.deliveries));
        }
        const auto median = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            const std::size_t n = v.size();
            return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
        };
        m.answers_with_messages = static_cast<std::uint64_t>(median(answers));
        m.answers_empty = static_cast<std::uint64_t>(median(empties));
        m.deliveries = static_cast<std::uint64_t>(median(deliveries));
        const std::string label = "median of " + std::to_string(results.size()) +
                                  " runs (each figure on its own; checked: the sums over all runs)";
        print_result(label.c_str(), m, config.clients, config.messages);
    }
    return all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        CliArgs args(argc, argv, {"server-output", "help"});
        if (args.flag("help")) return print_usage(), 0;
        Config config;
        config.server = args.get("server", config.server);
        config.server_args = args.passthrough();
        config.clients = static_cast<int>(args.number("clients", config.clients));
        config.messages = static_cast<int>(args.number("messages", config.messages));
        config.size = static_cast<std::size_t>(args.number("size", 64));
        config.rate = args.number("rate", config.rate);
        config.batch = static_cast<int>(args.number("batch", config.batch));
        config.runs = static_cast<int>(args.number("runs", config.runs));
        config.concurrency = static_cast<int>(args.number("concurrency", config.concurrency));
        config.window_ms = static_cast<long>(args.number("window-ms", 0));
        config.setup_timeout = args.number("setup-timeout", config.setup_timeout);
        config.timeout = args.number("timeout", config.timeout);
        config.quiet = args.number("quiet", config.quiet);
        config.show_server_output = args.flag("server-output");
        args.finish();
        if (config.clients < 1 || config.messages < 1 || config.batch < 1 || config.runs < 1 ||
            config.concurrency < 1 || config.rate < 0 || config.window_ms < 0 ||
            config.setup_timeout <= 0 || config.timeout <= 0 || config.quiet < 0)
            throw std::runtime_error("counts and times must be positive, --rate >= 0");
        if (config.size > 4000) throw std::runtime_error("--size <= 4000 (the chat's limit)");
        if (config.runs > 20 || config.clients > 20000)
            throw std::runtime_error("--runs <= 20 and --clients <= 20000 keep a run bounded");
        return run(config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "longpoll_fanout: %s\n", e.what());
        print_usage();
        return 2;
    }
}
