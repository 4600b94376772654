// abuse — attacks against the chat example, and what each one costs the server
// and a well-behaved client next to it.
//
// For every attack it spawns a fresh chat server (release build, one io
// thread, --port 0, on 127.0.0.1), joins a *bystander* to room:lobby (a V2
// client that sends a new_msg and a ping every 100 ms and times the ping's
// reply and its own broadcast coming back), runs the attack for a bounded time
// from raw sockets (so the attacker can misbehave in ways plume's client
// never would), then prints one row: what the server answered the attacker,
// its idle / peak (VmHWM) / final RSS, the CPU it spent, the bytes it logged,
// and the bystander's losses and latency. A markdown table and the command
// line close the run; progress goes to stderr.
//
//   abuse [--server build/release/examples/chat/chat] [--attack ping-flood,join-storm]
//         [--listeners 200] [--storm 5000] [--seconds S] [--pings 1000000]
//         [--slow-connections 1000] [--cap 60]
//
// Attacks: ping-flood, deflate-1m, deflate-256k, msg-flood, log-flood,
// long-topics, join-storm, conn-flood, slowloris, big-frame, big-header
// (benchmarks/README.md says what each does and how each figure is measured).
//
// Attackers and crowds connect from their own loopback addresses (127.1.x.y
// for the join storm, 127.2.x.y for listeners, 127.3.0.x for attackers); the
// bystander from 127.0.0.1, so a per-address limit on an attacker never
// touches it. Every wait has a deadline, and each attack a hard cap (--cap).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/bench_support.hpp"
#include "support/ws_load_client.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using namespace plume_bench;
using nlohmann::json;

// ------------------------------------------------------------ formatting --

double seconds_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

std::string with_commas(std::uint64_t n) {
    std::string digits = std::to_string(n);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string fixed(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

std::string mib(long kib) {
    return kib < 0 ? "?" : fixed(static_cast<double>(kib) / 1024.0, 1);
}

/// A string for a table cell: no pipes or newlines, at most `max` characters.
std::string cell(std::string_view text, std::size_t max = 200) {
    std::string out;
    for (char c : text.substr(0, max)) {
        if (c == '|')
            out += "\\|";
        else if (c == '\n' || c == '\r')
            out += "\\n";
        else if (static_cast<unsigned char>(c) < 0x20)
            out += '?';
        else
            out += c;
    }
    if (text.size() > max) out += "…";
    return out;
}

/// "a ×3, b ×1" from counts, largest first.
std::string tally(const std::map<std::string, std::uint64_t>& counts) {
    std::vector<std::pair<std::string, std::uint64_t>> v(counts.begin(), counts.end());
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second > b.second; });
    std::string out;
    for (auto& [what, n] : v)
        out += (out.empty() ? "" : ", ") + what + " ×" + with_commas(n);
    return out;
}

// ------------------------------------------------------------- sockets --

in_addr loopback(unsigned b, unsigned c, unsigned d) {
    in_addr a{};
    a.s_addr = htonl((127u << 24) | (b << 16) | (c << 8) | d);
    return a;
}

/// The n-th address of a crowd in 127.B.x.y (n from 0; y from 1 to 250).
in_addr crowd_address(unsigned b, int n) {
    return loopback(b, static_cast<unsigned>(n / 250), static_cast<unsigned>(n % 250 + 1));
}

int remaining_ms(Clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return static_cast<int>(std::clamp<long long>(left.count(), 0, 1'000'000));
}

/// Waits for `events` on fd until the deadline; the revents, 0 on timeout.
short wait_fd(int fd, short events, Clock::time_point deadline) {
    pollfd p{fd, events, 0};
    while (true) {
        const int r = poll(&p, 1, remaining_ms(deadline));
        if (r > 0) return p.revents;
        if (r == 0 || errno != EINTR) return 0;
    }
}

/// A non-blocking TCP connection from `source`; -1 on failure (errno says why).
int connect_tcp(const sockaddr_in& server, in_addr source, Clock::time_point deadline) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    const int one = 1;
    // Ports are then chosen per 4-tuple at connect(), so bind() cannot run dry.
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr = source;
    if (bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0 ||
        (connect(fd, reinterpret_cast<const sockaddr*>(&server), sizeof server) != 0 &&
         errno != EINPROGRESS)) {
        const int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (!(wait_fd(fd, POLLOUT, deadline) & (POLLOUT | POLLERR | POLLHUP))) {
        close(fd);
        errno = ETIMEDOUT;
        return -1;
    }
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/// Sends everything before the deadline; false on timeout or error.
bool send_all(int fd, const void* data, std::size_t size, Clock::time_point deadline) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    while (size > 0) {
        const ssize_t n = ::send(fd, p, size, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            size -= static_cast<std::size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!(wait_fd(fd, POLLOUT, deadline) & POLLOUT)) return false;
        } else if (n < 0 && errno != EINTR) {
            return false;
        }
    }
    return true;
}

bool send_all(int fd, std::string_view s, Clock::time_point deadline) {
    return send_all(fd, s.data(), s.size(), deadline);
}

/// Sends what the kernel takes now; erases it from `out`. False on error.
bool send_some(int fd, std::vector<std::uint8_t>& out, std::size_t& sent) {
    while (sent < out.size()) {
        const ssize_t n =
            ::send(fd, out.data() + sent, out.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        } else if (n < 0 && errno != EINTR) {
            return false;
        }
    }
    out.clear();
    sent = 0;
    return true;
}

/// Closes with a RST: no TIME_WAIT left behind on either side.
void abort_close(int fd) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

// ----------------------------------------------------- WebSocket frames --

/// Received bytes and the frames in them. Lenient: RSV1 is allowed (a
/// permessage-deflate attacker may get compressed frames) and reported.
struct Frame {
    std::uint8_t op = 0;
    bool fin = true;
    bool rsv1 = false;
    std::string_view payload;
};

class Inbox {
  public:
    void append(const char* data, std::size_t n) { buf_.append(data, n); }

    /// The next complete frame, or nullopt; its payload lives until the next call to compact().
    std::optional<Frame> next() {
        plume::transport::FrameHeader h;
        const std::string_view rest = std::string_view(buf_).substr(start_);
        if (plume::transport::parse_header(rest, h) == plume::transport::header_status::need_more)
            return std::nullopt;
        if (h.payload_length > (1ull << 32)) {
            broken_ = true;  // no server of ours sends that; give up on this stream
            return std::nullopt;
        }
        const std::size_t total = h.header_length + static_cast<std::size_t>(h.payload_length);
        if (rest.size() < total) return std::nullopt;
        Frame f{h.opcode, h.fin, h.rsv1,
                rest.substr(h.header_length, static_cast<std::size_t>(h.payload_length))};
        start_ += total;
        return f;
    }
    /// Drops the frames handed out; keeps a partial one.
    void compact() {
        if (start_ == buf_.size()) {
            // A crowd holds thousands of these: give back what a burst grew.
            if (buf_.capacity() > 16384)
                buf_ = std::string();
            else
                buf_.clear();
        } else if (start_ > 0) {
            buf_.erase(0, start_);
        }
        start_ = 0;
    }
    bool broken() const { return broken_; }

  private:
    std::string buf_;
    std::size_t start_ = 0;
    bool broken_ = false;
};

struct ReadResult {
    std::size_t bytes = 0;
    bool eof = false;   // orderly end or error
    std::string error;  // errno text when not an orderly end
};

/// Reads what is available now (non-blocking) into `in`.
ReadResult read_available(int fd, Inbox& in, std::size_t max_bytes = 1 << 22) {
    static thread_local std::vector<char> chunk(1 << 16);
    ReadResult r;
    while (r.bytes < max_bytes) {
        const ssize_t n = ::recv(fd, chunk.data(), chunk.size(), MSG_DONTWAIT);
        if (n > 0) {
            in.append(chunk.data(), static_cast<std::size_t>(n));
            r.bytes += static_cast<std::size_t>(n);
            if (static_cast<std::size_t>(n) < chunk.size()) break;
        } else if (n == 0) {
            r.eof = true;
            break;
        } else if (errno == EINTR) {
            continue;
        } else {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                r.eof = true;
                r.error = std::strerror(errno);
            }
            break;
        }
    }
    return r;
}

std::vector<std::uint8_t> client_frame(FastRng& rng, Opcode op, std::string_view payload) {
    std::vector<std::uint8_t> out;
    append_masked(out, rng, op,
                  std::span(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()));
    return out;
}

void append_frame(std::vector<std::uint8_t>& out, FastRng& rng, Opcode op,
                  std::string_view payload) {
    append_masked(out, rng, op,
                  std::span(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size()));
}

/// `close 1008 "rate limited"` from a close frame's payload.
std::string describe_close(std::string_view payload) {
    if (payload.size() < 2) return "close (no code)";
    const unsigned code =
        (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]);
    std::string out = "close " + std::to_string(code);
    if (payload.size() > 2) out += " \"" + std::string(payload.substr(2, 80)) + "\"";
    return out;
}

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

// --------------------------------------------------- Phoenix V2 messages --

std::string chat_path(std::string_view user) {
    return "/socket/websocket?vsn=2.0.0&user_id=" + std::string(user);
}

std::string phx_message(std::string_view join_ref, std::uint64_t ref, std::string_view topic,
                        std::string_view event, const json& payload) {
    return json::array({join_ref.empty() ? json(nullptr) : json(join_ref), std::to_string(ref),
                        topic, event, payload})
        .dump();
}

/// A phx_reply's ref, status and reason (if the status is not ok).
struct Reply {
    std::uint64_t ref = 0;
    std::string status;
    std::string reason;
};

std::optional<Reply> parse_reply(std::string_view text) {
    if (!contains(text.substr(0, 300), "\"phx_reply\"") &&
        !(text.size() > 300 && contains(text, "\"phx_reply\"")))
        return std::nullopt;
    const json j = json::parse(text, nullptr, false);
    if (!j.is_array() || j.size() != 5 || j[3] != "phx_reply" || !j[4].is_object())
        return std::nullopt;
    Reply r;
    if (j[1].is_string())
        r.ref = std::strtoull(j[1].get_ref<const std::string&>().c_str(), nullptr, 10);
    r.status = j[4].value("status", "");
    if (r.status != "ok") {
        const auto& response = j[4].contains("response") ? j[4]["response"] : json();
        if (response.is_object() && response.contains("reason") && response["reason"].is_string())
            r.reason = response["reason"].get<std::string>();
        else
            r.reason = response.dump().substr(0, 80);
    }
    return r;
}

std::string reply_label(const Reply& r) {
    return r.status == "ok" ? "ok" : r.status + " \"" + r.reason + "\"";
}

// ------------------------------------------------------------- upgrade --

struct Upgrade {
    int fd = -1;
    int status = 0;     // HTTP status, 0 if none was read
    std::string head;   // the response head
    std::string error;  // why there is no status
    Inbox inbox;        // bytes after the response head
};

/// Connects from `source` and sends an upgrade request for `path` (with
/// `extra` header lines), then reads the response head. The fd stays open
/// (non-blocking) whatever the status; the caller closes it.
Upgrade ws_open(const sockaddr_in& server, in_addr source, std::string_view path,
                std::string_view extra, Clock::time_point deadline) {
    Upgrade up;
    up.fd = connect_tcp(server, source, deadline);
    if (up.fd < 0) {
        up.error = std::string("connect: ") + std::strerror(errno);
        return up;
    }
    std::string request = "GET " + std::string(path) +
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n" +
                          std::string(extra) + "\r\n";
    if (!send_all(up.fd, request, deadline)) {
        up.error = "could not send the upgrade request";
        return up;
    }
    std::string got;
    char chunk[4096];
    while (true) {
        const auto end = got.find("\r\n\r\n");
        if (end != std::string::npos) {
            up.head = got.substr(0, end);
            up.inbox.append(got.data() + end + 4, got.size() - end - 4);
            break;
        }
        if (got.size() > 65536) {
            up.error = "response head too large";
            return up;
        }
        if (!(wait_fd(up.fd, POLLIN, deadline) & (POLLIN | POLLHUP | POLLERR))) {
            up.error = "no response in time";
            return up;
        }
        const ssize_t n = ::recv(up.fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            up.error =
                n == 0 ? "closed without a response" : std::string("read: ") + std::strerror(errno);
            return up;
        }
        if (n > 0) got.append(chunk, static_cast<std::size_t>(n));
    }
    if (up.head.starts_with("HTTP/1.1 ") && up.head.size() >= 12)
        up.status = std::atoi(up.head.c_str() + 9);
    else
        up.error = "not an HTTP response";
    return up;
}

std::string header_value(std::string_view head, std::string_view name) {
    for (std::size_t pos = 0; pos < head.size();) {
        auto eol = head.find("\r\n", pos);
        if (eol == std::string_view::npos) eol = head.size();
        const std::string_view line = head.substr(pos, eol - pos);
        pos = eol + 2;
        const auto colon = line.find(':');
        if (colon != name.size()) continue;
        bool same = true;
        for (std::size_t i = 0; i < colon; ++i)
            same = same && (line[i] | 0x20) == (name[i] | 0x20);
        if (!same) continue;
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ')
            value.remove_prefix(1);
        return std::string(value);
    }
    return {};
}

// ----------------------------------------------------------- bystander --

struct BystanderResult {
    std::uint64_t sent = 0;  // pings + new_msgs sent during the attack
    std::uint64_t answered = 0;
    std::uint64_t lost = 0;
    std::uint64_t errors = 0;  // error replies
    std::map<std::string, std::uint64_t> error_reasons;
    std::uint64_t diffs = 0;  // presence_diff pushes received during the attack
    LatencyHistogram latency;
    bool disconnected = false;
    std::string how;  // close frame / EOF / phx_error
};

/// A well-behaved V2 client joined to room:lobby. Between start() and
/// finish() it sends a ping and a new_msg every 100 ms on its own thread and
/// times each ping's reply and each new_msg's broadcast back to it.
class Bystander {
  public:
    ~Bystander() {
        quit_ = true;
        if (thread_.joinable()) thread_.join();
        if (fd_ >= 0) close(fd_);
    }

    bool join(const sockaddr_in& server, std::string& error) {
        const auto deadline = Clock::now() + 10s;
        Upgrade up = ws_open(server, loopback(0, 0, 1), chat_path("bystander"), "", deadline);
        fd_ = up.fd;
        if (up.status != 101) {
            error =
                up.status ? "bystander upgrade got HTTP " + std::to_string(up.status) : up.error;
            return false;
        }
        inbox_ = std::move(up.inbox);
        const std::string join = phx_message("1", 1, "room:lobby", "phx_join", json::object());
        const auto frame = client_frame(rng_, Opcode::text, join);
        if (!send_all(fd_, frame.data(), frame.size(), deadline)) {
            error = "bystander could not send its join";
            return false;
        }
        bool joined = false;
        std::optional<Clock::time_point> settle_until;
        while (Clock::now() < deadline) {
            while (auto f = inbox_.next()) {
                if (f->op != 0x1) continue;
                if (auto r = parse_reply(f->payload); r && r->ref == 1) {
                    if (r->status != "ok") {
                        error = "bystander join: " + reply_label(*r);
                        return false;
                    }
                    joined = true;
                }
            }
            inbox_.compact();
            // After the reply, what the join itself causes (presence_state,
            // our own presence_diff) is read here, not counted in the attack.
            if (joined && !settle_until) settle_until = Clock::now() + 300ms;
            if (settle_until && Clock::now() >= *settle_until) return true;
            wait_fd(fd_, POLLIN, settle_until ? *settle_until : deadline);
            if (read_available(fd_, inbox_).eof) break;
        }
        error = joined ? "bystander closed right after its join" : "bystander join got no reply";
        return false;
    }

    void start() {
        thread_ = std::thread([this] { run(); });
    }

    /// Stops sending, waits up to `drain` for the answers still due, and
    /// returns the figures; whatever is unanswered then counts as lost.
    BystanderResult finish(std::chrono::milliseconds drain) {
        drain_deadline_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 (Clock::now() + drain).time_since_epoch())
                                 .count();
        stop_sending_ = true;
        if (thread_.joinable()) thread_.join();
        result_.lost = pings_.size() + msgs_.size();
        return std::move(result_);
    }

  private:
    void run() {
        auto next_send = Clock::now();
        while (!quit_) {
            const auto now = Clock::now();
            if (stop_sending_) {
                const auto drain_until =
                    Clock::time_point(std::chrono::milliseconds(drain_deadline_ms_.load()));
                if (result_.disconnected || (pings_.empty() && msgs_.empty()) || now >= drain_until)
                    return;
            } else if (!result_.disconnected && now >= next_send) {
                send_pair(now);
                next_send += 100ms;
                if (next_send < now) next_send = now + 100ms;
            }
            if (result_.disconnected) {
                std::this_thread::sleep_for(5ms);
                continue;
            }
            if (!send_some(fd_, out_, out_sent_)) {
                disconnect(std::string("send: ") + std::strerror(errno));
                continue;
            }
            pollfd p{fd_, static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT)), 0};
            const auto wait =
                std::chrono::duration_cast<std::chrono::milliseconds>(next_send - now);
            poll(&p, 1, static_cast<int>(std::clamp<long long>(wait.count(), 1, 5)));
            if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
                const ReadResult r = read_available(fd_, inbox_);
                handle_frames();
                if (r.eof && !result_.disconnected)
                    disconnect(r.error.empty() ? "TCP closed without a close frame" : r.error);
            }
        }
    }

    void send_pair(Clock::time_point now) {
        const std::uint64_t ping_ref = ++ref_;
        append_frame(out_, rng_, Opcode::text,
                     phx_message("1", ping_ref, "room:lobby", "ping", json{{"n", ping_ref}}));
        pings_[ping_ref] = now;
        const std::uint64_t msg_ref = ++ref_;
        append_frame(out_, rng_, Opcode::text,
                     phx_message("1", msg_ref, "room:lobby", "new_msg",
                                 json{{"body", "by-" + std::to_string(msg_ref)}}));
        msgs_[msg_ref] = now;
        result_.sent += 2;
    }

    void answered(std::unordered_map<std::uint64_t, Clock::time_point>& pending,
                  std::uint64_t ref) {
        const auto it = pending.find(ref);
        if (it == pending.end()) return;
        result_.latency.record(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - it->second)
                .count()));
        ++result_.answered;
        pending.erase(it);
    }

    void handle_frames() {
        while (auto f = inbox_.next()) {
            if (f->op == 0x9) {
                append_frame(out_, rng_, Opcode::pong, f->payload);
            } else if (f->op == 0x8) {
                disconnect(describe_close(f->payload));
            } else if (f->op == 0x1) {
                handle_text(f->payload);
            }
        }
        inbox_.compact();
        if (inbox_.broken()) disconnect("unparsable frame");
    }

    void handle_text(std::string_view text) {
        // The attacks send many messages past the bystander; parse only ours.
        const std::string_view head = text.substr(0, 200);
        if (contains(head, "\"presence_diff\"")) {
            ++result_.diffs;
        } else if (contains(head, "\"phx_reply\"")) {
            const auto r = parse_reply(text);
            if (!r) return;
            if (r->status != "ok") {
                ++result_.errors;
                ++result_.error_reasons[r->reason];
                // An error answers the push too (it is not lost), but has no latency figure.
                pings_.erase(r->ref);
                msgs_.erase(r->ref);
                return;
            }
            answered(pings_, r->ref);
        } else if (contains(text, "\"user_id\":\"bystander\"")) {
            const json j = json::parse(text, nullptr, false);
            if (!j.is_array() || j.size() != 5 || j[3] != "new_msg" || !j[4].is_object()) return;
            const std::string body = j[4].value("body", "");
            if (body.starts_with("by-"))
                answered(msgs_, std::strtoull(body.c_str() + 3, nullptr, 10));
        } else if ((contains(head, "\"phx_error\"") || contains(head, "\"phx_close\"")) &&
                   contains(head, "\"room:lobby\"")) {
            disconnect("channel got phx_error/phx_close");
        }
    }

    void disconnect(std::string how) {
        if (result_.disconnected) return;
        result_.disconnected = true;
        result_.how = std::move(how);
    }

    int fd_ = -1;
    Inbox inbox_;
    FastRng rng_{random_seed()};
    std::vector<std::uint8_t> out_;
    std::size_t out_sent_ = 0;
    std::uint64_t ref_ = 1;
    std::unordered_map<std::uint64_t, Clock::time_point> pings_;  // ref -> sent at
    std::unordered_map<std::uint64_t, Clock::time_point> msgs_;   // ref -> sent at
    BystanderResult result_;
    std::thread thread_;
    std::atomic<bool> quit_{false};
    std::atomic<bool> stop_sending_{false};
    std::atomic<long long> drain_deadline_ms_{0};
};

// --------------------------------------------------------------- crowd --

/// Many plain V2 clients (listeners, a join storm) on one epoll thread that
/// read everything, answer pings and count what they get.
class Crowd {
  public:
    struct Member {
        int fd = -1;
        Inbox inbox;
        std::vector<std::uint8_t> out;
        std::size_t sent = 0;
        bool want_write = false;
        bool replied = false;
        bool closed = false;
    };

    ~Crowd() { stop(); }

    /// Opens `n` WebSockets one after the other, member i from
    /// crowd_address(second_octet, i). Returns how many opened.
    int open(const sockaddr_in& server, int n, unsigned second_octet, std::string_view name,
             Clock::time_point deadline) {
        for (int i = 0; i < n && Clock::now() < deadline; ++i) {
            Upgrade up = ws_open(server, crowd_address(second_octet, i),
                                 chat_path(std::string(name) + std::to_string(i)), "", deadline);
            if (up.status != 101) {
                if (up.fd >= 0) close(up.fd);
                ++open_failures[up.status ? "HTTP " + std::to_string(up.status) : up.error];
                continue;
            }
            auto m = std::make_unique<Member>();
            m->fd = up.fd;
            m->inbox = std::move(up.inbox);
            members_.push_back(std::move(m));
        }
        return static_cast<int>(members_.size());
    }

    /// Queues a phx_join of room:lobby on every member (sent when start() runs).
    void queue_joins() {
        const std::string join = phx_message("1", 1, "room:lobby", "phx_join", json::object());
        for (auto& m : members_)
            append_frame(m->out, rng_, Opcode::text, join);
    }

    void start() {
        epoll_ = epoll_create1(EPOLL_CLOEXEC);
        for (std::size_t i = 0; i < members_.size(); ++i) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u64 = i;
            epoll_ctl(epoll_, EPOLL_CTL_ADD, members_[i]->fd, &ev);
        }
        started_at = Clock::now();
        thread_ = std::thread([this] { run(); });
    }

    /// Stops the thread and closes every connection.
    void stop() {
        quit_ = true;
        if (thread_.joinable()) thread_.join();
        for (auto& m : members_)
            if (m->fd >= 0) abort_close(m->fd), m->fd = -1;
        if (epoll_ >= 0) close(epoll_), epoll_ = -1;
    }

    int size() const { return static_cast<int>(members_.size()); }

    // Written by the crowd thread; read while it runs only through the atomics.
    std::atomic<int> replies{0};
    std::atomic<int> closed{0};
    std::atomic<std::uint64_t> messages{0};
    std::atomic<long long> last_reply_ns{0};  // since started_at
    Clock::time_point started_at;
    // Read after stop() (or before start()).
    std::map<std::string, std::uint64_t> open_failures;
    std::map<std::string, std::uint64_t> reply_kinds;
    std::map<std::string, std::uint64_t> close_kinds;
    std::uint64_t diffs = 0;

  private:
    void run() {
        // The queued joins go out at once, all of them.
        for (std::size_t i = 0; i < members_.size(); ++i)
            flush(i);
        std::vector<epoll_event> events(512);
        while (!quit_) {
            const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 20);
            for (int e = 0; e < n; ++e) {
                const std::size_t i = events[static_cast<std::size_t>(e)].data.u64;
                Member& m = *members_[i];
                if (m.closed) continue;
                if (events[static_cast<std::size_t>(e)].events & EPOLLOUT) flush(i);
                if (events[static_cast<std::size_t>(e)].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                    const ReadResult r = read_available(m.fd, m.inbox, 1 << 18);
                    handle(i);
                    if (r.eof) end(i, r.error.empty() ? "TCP closed" : r.error);
                }
            }
        }
    }

    void flush(std::size_t i) {
        Member& m = *members_[i];
        if (m.closed || m.out.empty()) return;
        if (!flush_epoll(epoll_, m.fd, i, m.out, m.sent, m.want_write))
            end(i, std::string("send: ") + std::strerror(errno));
    }

    void handle(std::size_t i) {
        Member& m = *members_[i];
        std::uint64_t count = 0;
        while (auto f = m.inbox.next()) {
            ++count;
            if (f->op == 0x9) {
                append_frame(m.out, rng_, Opcode::pong, f->payload);
            } else if (f->op == 0x8) {
                end(i, describe_close(f->payload));
                return;
            } else if (f->op == 0x1) {
                const std::string_view head = f->payload.substr(0, 120);
                if (contains(head, "\"presence_diff\"")) {
                    ++diffs;
                } else if (!m.replied && contains(head, "\"phx_reply\"")) {
                    if (auto r = parse_reply(f->payload); r && r->ref == 1) {
                        m.replied = true;
                        ++reply_kinds[reply_label(*r)];
                        last_reply_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                            Clock::now() - started_at)
                                            .count();
                        ++replies;
                    }
                }
            }
        }
        m.inbox.compact();
        messages += count;
        if (!m.out.empty()) flush(i);
    }

    void end(std::size_t i, const std::string& how) {
        Member& m = *members_[i];
        if (m.closed) return;
        m.closed = true;
        epoll_ctl(epoll_, EPOLL_CTL_DEL, m.fd, nullptr);
        ++close_kinds[how];
        ++closed;
    }

    std::vector<std::unique_ptr<Member>> members_;
    FastRng rng_{random_seed()};
    int epoll_ = -1;
    std::thread thread_;
    std::atomic<bool> quit_{false};
};

// ------------------------------------------------------ server's stderr --

/// Counts the bytes the server writes to stderr and spots lines that begin
/// with a forged "[plume] FORGED" prefix. Fed by ServerProcess's drain thread.
class LogWatch {
  public:
    void feed(std::string_view chunk) {
        bytes += chunk.size();
        std::lock_guard lock(mutex_);
        for (char c : chunk) {
            if (c == '\n') {
                if (line_.starts_with("[plume] FORGED")) forged = true;
                if (shown_ < 3 && !line_.empty()) {
                    std::fprintf(stderr, "  [server stderr] %s\n", cell(line_, 160).c_str());
                    ++shown_;
                }
                line_.clear();
            } else if (line_.size() < 64) {
                line_ += c;  // a prefix is all the checks need
            }
        }
    }

    std::atomic<std::uint64_t> bytes{0};
    std::atomic<bool> forged{false};

  private:
    std::mutex mutex_;
    std::string line_;
    int shown_ = 0;
};

// -------------------------------------------------------------- attacks --

struct Config {
    std::string server = "build/release/examples/chat/chat";
    std::vector<std::string> attacks;
    int listeners = 200;
    int storm = 5000;
    double seconds = 0;  // 0: each attack's own default
    std::uint64_t pings = 1'000'000;
    int slow_connections = 1000;
    double cap = 60;
};

struct Ctx {
    const Config& cfg;
    sockaddr_in server{};
    pid_t pid = -1;
    Clock::time_point deadline;  // the attack's hard cap
    LogWatch& log;

    double seconds_or(double fallback) const { return cfg.seconds > 0 ? cfg.seconds : fallback; }
    Clock::time_point until(Clock::duration d) const {
        return std::min(deadline, Clock::now() + d);
    }
};

struct Outcome {
    std::string answer;  // what the server answered the attacker
    std::string notes;   // the attack's own figures
};

/// Reads an attacker's socket until it closes, `quiet` passes without a
/// byte, or the deadline; counts frames by kind and keeps the close.
struct Drained {
    std::map<std::string, std::uint64_t> kinds;
    std::string close;  // close frame, or how TCP ended
    std::optional<Clock::time_point> first_byte;
};

Drained drain_socket(int fd, Inbox& inbox, Clock::duration quiet, Clock::time_point deadline,
                     bool wait_for_first = false) {
    Drained d;
    auto last = Clock::now();
    while (Clock::now() < deadline &&
           ((wait_for_first && !d.first_byte) || Clock::now() - last < quiet)) {
        wait_fd(fd, POLLIN,
                (wait_for_first && !d.first_byte) ? deadline : std::min(deadline, last + quiet));
        const ReadResult r = read_available(fd, inbox);
        if (r.bytes > 0) {
            last = Clock::now();
            if (!d.first_byte) d.first_byte = last;
        }
        while (auto f = inbox.next()) {
            switch (f->op) {
                case 0x8:
                    d.close = describe_close(f->payload);
                    break;
                case 0xA:
                    ++d.kinds["pong"];
                    break;
                case 0x9:
                    ++d.kinds["ping"];
                    break;
                default:
                    if (auto reply = f->op == 0x1 ? parse_reply(f->payload) : std::nullopt)
                        ++d.kinds["phx_reply " + reply_label(*reply)];
                    else
                        ++d.kinds[f->rsv1 ? "compressed message" : "message"];
            }
        }
        inbox.compact();
        if (r.eof) {
            if (d.close.empty()) d.close = r.error.empty() ? "TCP closed" : r.error;
            break;
        }
    }
    return d;
}

std::string answer_of(const Drained& d, std::string_view otherwise = "none") {
    if (!d.close.empty()) return d.close;
    return std::string(otherwise);
}

/// An attacker's WebSocket: upgraded and (optionally) joined to room:lobby.
struct Attacker {
    Upgrade up;
    FastRng rng{random_seed()};
    std::string failure;  // set when it could not get going

    Attacker(const Ctx& c, unsigned n, std::string_view extra = "") {
        up = ws_open(c.server, loopback(3, 0, n), chat_path("attacker" + std::to_string(n)), extra,
                     c.until(10s));
        if (up.status != 101) failure = up.status ? "HTTP " + std::to_string(up.status) : up.error;
    }
    ~Attacker() {
        if (up.fd >= 0) abort_close(up.fd);
    }

    bool join_lobby(const Ctx& c) {
        const auto frame = client_frame(
            rng, Opcode::text, phx_message("1", 1, "room:lobby", "phx_join", json::object()));
        const auto deadline = c.until(10s);
        if (!send_all(up.fd, frame.data(), frame.size(), deadline)) return false;
        while (Clock::now() < deadline) {
            while (auto f = up.inbox.next())
                if (f->op == 0x1)
                    if (auto r = parse_reply(f->payload); r && r->ref == 1) {
                        up.inbox.compact();
                        if (r->status != "ok") failure = "join: " + reply_label(*r);
                        return r->status == "ok";
                    }
            up.inbox.compact();
            wait_fd(up.fd, POLLIN, deadline);
            if (read_available(up.fd, up.inbox).eof) break;
        }
        failure = "join got no reply";
        return false;
    }
};

Outcome ping_flood(Ctx& c) {
    Attacker a(c, 1);
    if (!a.failure.empty()) return {a.failure, "could not connect"};
    // 1,000 masked pings of 125 bytes, sent again and again without reading.
    const std::string body(125, 'p');
    std::vector<std::uint8_t> batch;
    for (int i = 0; i < 1000; ++i)
        append_frame(batch, a.rng, Opcode::ping, body);
    const std::uint64_t batches = (c.cfg.pings + 999) / 1000;
    const auto t0 = Clock::now();
    const auto send_deadline = c.until(40s);
    std::uint64_t sent = 0;
    for (std::uint64_t b = 0; b < batches; ++b) {
        if (!send_all(a.up.fd, batch.data(), batch.size(), send_deadline)) break;
        sent += 1000;
    }
    const double took = seconds_between(t0, Clock::now());
    const long rss_then = rss_kib(c.pid);
    std::fprintf(stderr, "  %s pings sent in %.1f s; server RSS %s MiB; reading back\n",
                 with_commas(sent).c_str(), took, mib(rss_then).c_str());
    const Drained d = drain_socket(a.up.fd, a.up.inbox, 3s, c.until(30s));
    const auto pongs = d.kinds.contains("pong") ? d.kinds.at("pong") : 0;
    return {answer_of(d), with_commas(sent) + " pings sent in " + fixed(took, 1) +
                              " s; server RSS " + mib(rss_then) + " MiB when the last was sent; " +
                              with_commas(pongs) + " pongs read back afterwards"};
}

Outcome deflate_blocks(Ctx& c, std::size_t size) {
    Attacker a(c, 2, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    if (!a.failure.empty()) return {a.failure, "could not connect"};
    if (!contains(header_value(a.up.head, "Sec-WebSocket-Extensions"), "permessage-deflate"))
        return {"deflate not negotiated", "the server did not accept permessage-deflate"};
    // `03 00`: a final, empty block with fixed Huffman codes, repeated.
    std::string payload(size, '\0');
    for (std::size_t i = 0; i < size; i += 2)
        payload[i] = '\x03';
    std::vector<std::uint8_t> out;
    append_frame(out, a.rng, Opcode::text, payload);
    out[0] |= 0x40;  // RSV1: compressed
    // A ping right behind it: whatever the server makes of the message, the
    // pong (or a close) says when it got through.
    append_frame(out, a.rng, Opcode::ping, "after");
    const auto t0 = Clock::now();
    if (!send_all(a.up.fd, out.data(), out.size(), c.until(30s)))
        return {"could not send the frame", ""};
    const Drained d = drain_socket(a.up.fd, a.up.inbox, 1s, c.deadline, true);
    if (!d.first_byte)
        return {"none within " + fixed(seconds_between(t0, c.deadline), 0) + " s",
                with_commas(size) + " bytes of `03 00`; no answer before the cap"};
    const double after = seconds_between(t0, *d.first_byte);
    std::string answer = d.close.empty() ? tally(d.kinds) : d.close;
    if (!d.close.empty() && !d.kinds.empty()) answer += " (after " + tally(d.kinds) + ")";
    return {answer + ", after " + fixed(after, 2) + " s",
            with_commas(size) + " bytes of `03 00` in one RSV1 text frame; first answer " +
                fixed(after, 2) +
                " s after sending; then: " + (tally(d.kinds).empty() ? "-" : tally(d.kinds))};
}

Outcome msg_flood(Ctx& c) {
    Crowd crowd;
    const int opened = crowd.open(c.server, c.cfg.listeners, 2, "l", c.until(30s));
    crowd.queue_joins();
    crowd.start();
    const auto join_deadline = c.until(20s);
    while (crowd.replies + crowd.closed < opened && Clock::now() < join_deadline)
        std::this_thread::sleep_for(10ms);
    const int listeners_joined = crowd.replies;
    std::fprintf(stderr, "  %d listeners opened, %d join replies\n", opened, listeners_joined);

    Attacker a(c, 3);
    if (!a.failure.empty() || !a.join_lobby(c)) return {a.failure, "could not join"};
    const double window = c.seconds_or(5);
    const auto t0 = Clock::now();
    const auto end =
        c.until(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(window)));
    std::vector<std::uint8_t> out;
    std::size_t out_sent = 0;
    std::uint64_t ref = 1, queued = 0, received = 0;
    std::map<std::string, std::uint64_t> errors;
    std::string close;
    const json body = {{"body", "flood"}};
    while (Clock::now() < end && close.empty()) {
        if (out.empty()) {
            for (int i = 0; i < 256; ++i)
                append_frame(out, a.rng, Opcode::text,
                             phx_message("1", ++ref, "room:lobby", "new_msg", body));
            queued += 256;
        }
        if (!send_some(a.up.fd, out, out_sent)) {
            close = std::string("send: ") + std::strerror(errno);
            break;
        }
        pollfd p{a.up.fd, static_cast<short>(POLLIN | (out.empty() ? 0 : POLLOUT)), 0};
        poll(&p, 1, 5);
        const ReadResult r = read_available(a.up.fd, a.up.inbox);
        while (auto f = a.up.inbox.next()) {
            if (f->op == 0x8) close = describe_close(f->payload);
            if (f->op != 0x1) continue;
            ++received;
            if (contains(f->payload.substr(0, 120), "\"phx_reply\""))
                if (auto reply = parse_reply(f->payload); reply && reply->status != "ok")
                    ++errors[reply_label(*reply)];
        }
        a.up.inbox.compact();
        if (r.eof && close.empty()) close = r.error.empty() ? "TCP closed" : r.error;
    }
    // Frames still in `out` never left: not sent.
    const std::uint64_t unsent =
        out.empty()
            ? 0
            : static_cast<std::uint64_t>(256.0 * static_cast<double>(out.size() - out_sent) /
                                         static_cast<double>(out.size()));
    const std::uint64_t sent = queued - unsent;
    const double took = seconds_between(t0, Clock::now());
    if (close.empty()) {
        // The server may still be working through what it read; take what
        // it answers in the next second.
        const Drained d = drain_socket(a.up.fd, a.up.inbox, 1s, c.until(1s));
        for (auto& [k, n] : d.kinds)
            if (k.starts_with("phx_reply error")) errors[k.substr(10)] += n;
        close = d.close;
    }
    crowd.stop();
    std::string answer;
    std::uint64_t error_count = 0;
    for (auto& [k, n] : errors)
        error_count += n;
    if (error_count > 0) answer = with_commas(error_count) + " phx_reply " + tally(errors);
    if (!close.empty()) answer += (answer.empty() ? "" : "; ") + close;
    if (answer.empty()) answer = "none";
    return {answer, with_commas(sent) + " new_msg sent in " + fixed(took, 1) + " s (" +
                        with_commas(static_cast<std::uint64_t>(static_cast<double>(sent) / took)) +
                        "/s), " + with_commas(received) + " messages read back; " +
                        std::to_string(listeners_joined) + " of " +
                        std::to_string(c.cfg.listeners) + " listeners joined, " +
                        std::to_string(crowd.closed.load()) + " closed by the server" +
                        (crowd.close_kinds.empty() ? "" : " (" + tally(crowd.close_kinds) + ")") +
                        ", " + with_commas(crowd.messages.load()) + " messages to the listeners"};
}

Outcome log_flood(Ctx& c) {
    Attacker a(c, 4);
    if (!a.failure.empty()) return {a.failure, "could not connect"};
    // ~64 KiB topics that match no route, with newlines every 128 bytes.
    std::string filler;
    while (filler.size() < 65536 - 64)
        filler += std::string(127, 'x') + '\n';
    const double window = c.seconds_or(3);
    const std::uint64_t log_before = c.log.bytes;
    const auto t0 = Clock::now();
    const auto end =
        c.until(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(window)));
    std::vector<std::uint8_t> out;
    std::size_t out_sent = 0;
    std::uint64_t ref = 0, replies = 0;
    std::map<std::string, std::uint64_t> kinds;
    std::string close;
    // The first join tries to forge a log line of the server's own.
    append_frame(out, a.rng, Opcode::text,
                 phx_message(std::to_string(ref + 1), ref + 1,
                             "nomatch:x\n[plume] FORGED line from the attacker\n", "phx_join",
                             json::object()));
    ++ref;
    while (Clock::now() < end && close.empty()) {
        // At most 64 joins unanswered: the attacker reads its replies.
        while (ref - replies < 64 && out.size() < (4u << 20)) {
            ++ref;
            append_frame(out, a.rng, Opcode::text,
                         phx_message(std::to_string(ref), ref,
                                     "nomatch:" + std::to_string(ref) + ":" + filler, "phx_join",
                                     json::object()));
        }
        if (!send_some(a.up.fd, out, out_sent)) {
            close = std::string("send: ") + std::strerror(errno);
            break;
        }
        pollfd p{a.up.fd, static_cast<short>(POLLIN | (out.empty() ? 0 : POLLOUT)), 0};
        poll(&p, 1, 5);
        const ReadResult r = read_available(a.up.fd, a.up.inbox);
        while (auto f = a.up.inbox.next()) {
            if (f->op == 0x8) close = describe_close(f->payload);
            if (f->op != 0x1) continue;
            if (auto reply = parse_reply(f->payload)) ++replies, ++kinds[reply_label(*reply)];
        }
        a.up.inbox.compact();
        if (r.eof && close.empty()) close = r.error.empty() ? "TCP closed" : r.error;
    }
    const double took = seconds_between(t0, Clock::now());
    // Let the server finish logging what it has read.
    std::this_thread::sleep_for(500ms);
    const std::uint64_t logged = c.log.bytes - log_before;
    std::string answer = tally(kinds);
    if (!close.empty()) answer += (answer.empty() ? "" : "; ") + close;
    if (answer.empty()) answer = "none";
    return {answer,
            with_commas(replies) + " joins answered in " + fixed(took, 1) +
                " s; the server wrote " + mib(static_cast<long>(logged / 1024)) +
                " MiB to stderr (" + with_commas(replies ? logged / replies : 0) +
                " bytes per join); forged line " +
                (c.log.forged ? "APPEARED at the start of a stderr line" : "did not appear")};
}

Outcome long_topics(Ctx& c) {
    Attacker a(c, 5);
    if (!a.failure.empty()) return {a.failure, "could not connect"};
    const int joins = 99;
    // The topic fills the message up to just under the 1 MiB limit.
    const std::size_t topic_size = (1u << 20) - 128;
    int queued = 0, answered = 0;
    std::map<std::string, std::uint64_t> kinds;
    std::string close;
    std::vector<std::uint8_t> out;
    std::size_t out_sent = 0;
    std::uint64_t bytes_in = 0;
    const auto t0 = Clock::now();
    while (answered < joins && close.empty() && Clock::now() < c.deadline) {
        if (out.empty() && queued < joins) {
            ++queued;
            std::string topic = "room:" + std::to_string(queued) + "-";
            topic.resize(topic_size, 'a');
            append_frame(out, a.rng, Opcode::text,
                         phx_message(std::to_string(queued), static_cast<std::uint64_t>(queued),
                                     topic, "phx_join", json::object()));
        }
        if (!send_some(a.up.fd, out, out_sent)) {
            close = std::string("send: ") + std::strerror(errno);
            break;
        }
        pollfd p{a.up.fd, static_cast<short>(POLLIN | (out.empty() ? 0 : POLLOUT)), 0};
        poll(&p, 1, 5);
        const ReadResult r = read_available(a.up.fd, a.up.inbox);
        bytes_in += r.bytes;
        while (auto f = a.up.inbox.next()) {
            if (f->op == 0x8) close = describe_close(f->payload);
            if (f->op != 0x1) continue;
            if (auto reply = parse_reply(f->payload)) ++answered, ++kinds[reply_label(*reply)];
        }
        a.up.inbox.compact();
        if (r.eof && close.empty()) close = r.error.empty() ? "TCP closed" : r.error;
    }
    const double took = seconds_between(t0, Clock::now());
    const long rss_joined = rss_kib(c.pid);
    std::string answer = tally(kinds);
    if (!close.empty()) answer += (answer.empty() ? "" : "; ") + close;
    if (answer.empty()) answer = "none";
    return {answer, std::to_string(queued) + " joins of " + with_commas(topic_size) +
                        "-byte topics sent, " + std::to_string(answered) + " answered in " +
                        fixed(took, 1) + " s; " + mib(static_cast<long>(bytes_in / 1024)) +
                        " MiB came back to the attacker; server RSS " + mib(rss_joined) +
                        " MiB with the attacker still connected"};
}

Outcome join_storm(Ctx& c) {
    Crowd crowd;
    const auto t_open = Clock::now();
    const int opened = crowd.open(c.server, c.cfg.storm, 1, "s", c.until(40s));
    const double open_s = seconds_between(t_open, Clock::now());
    std::fprintf(stderr, "  %d sockets opened in %.1f s; all join now\n", opened, open_s);
    crowd.queue_joins();
    crowd.start();
    while (crowd.replies + crowd.closed < opened && Clock::now() < c.deadline)
        std::this_thread::sleep_for(10ms);
    const double waited = seconds_between(crowd.started_at, Clock::now());
    const int replies = crowd.replies;
    const double last = static_cast<double>(crowd.last_reply_ns.load()) / 1e9;
    // Give the presence_diffs a second to reach the bystander.
    std::this_thread::sleep_for(1s);
    crowd.stop();
    std::string answer = tally(crowd.reply_kinds);
    if (!crowd.close_kinds.empty())
        answer += (answer.empty() ? "" : "; ") + tally(crowd.close_kinds);
    if (const int missing = opened - replies - crowd.closed; missing > 0)
        answer += (answer.empty() ? "" : "; ") + with_commas(static_cast<std::uint64_t>(missing)) +
                  " joins unanswered at the cap";
    if (!crowd.open_failures.empty())
        answer += (answer.empty() ? "" : "; ") + std::string("open failed: ") +
                  tally(crowd.open_failures);
    if (answer.empty()) answer = "none";
    std::string notes =
        std::to_string(opened) + " sockets opened in " + fixed(open_s, 1) +
        " s, then all joined at once: " + with_commas(static_cast<std::uint64_t>(replies)) +
        " join replies, the last " + fixed(last, 2) + " s after the joins went out";
    if (replies + crowd.closed < opened)
        notes += " (" + std::to_string(opened - replies - crowd.closed) + " unanswered after " +
                 fixed(waited, 0) + " s: the cap)";
    notes += "; the crowd received " + with_commas(crowd.diffs) + " presence_diff";
    return {answer, notes};
}

Outcome conn_flood(Ctx& c) {
    const double window = c.seconds_or(3);
    const auto end =
        c.until(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(window)));
    std::mutex mutex;
    std::map<std::string, std::uint64_t> statuses;
    std::string retry_after;
    std::uint64_t total = 0;
    const auto t0 = Clock::now();
    // Four handshakes in flight from one address (127.3.0.6), each closed
    // with a close frame and a RST as soon as the status line is in.
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            FastRng rng(random_seed());
            std::map<std::string, std::uint64_t> mine;
            std::string retry;
            std::uint64_t n = 0;
            while (Clock::now() < end) {
                Upgrade up = ws_open(c.server, loopback(3, 0, 6), chat_path("flood"), "",
                                     std::min(c.deadline, Clock::now() + 5s));
                ++n;
                ++mine[up.status ? "HTTP " + std::to_string(up.status) : up.error];
                if (up.status == 101) {
                    const auto close =
                        client_frame(rng, Opcode::close, std::string_view("\x03\xe8", 2));
                    ::send(up.fd, close.data(), close.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
                } else if (retry.empty()) {
                    retry = header_value(up.head, "Retry-After");
                }
                if (up.fd >= 0) abort_close(up.fd);
            }
            std::lock_guard lock(mutex);
            for (auto& [k, v] : mine)
                statuses[k] += v;
            total += n;
            if (retry_after.empty()) retry_after = retry;
        });
    for (auto& t : threads)
        t.join();
    const double took = seconds_between(t0, Clock::now());
    return {tally(statuses) + (retry_after.empty() ? "" : "; Retry-After: " + retry_after),
            with_commas(total) + " connections in " + fixed(took, 1) + " s (" +
                with_commas(static_cast<std::uint64_t>(static_cast<double>(total) / took)) +
                "/s) from one address, 4 at a time"};
}

Outcome slowloris(Ctx& c) {
    const double window = c.seconds_or(15);
    const int n = c.cfg.slow_connections;
    std::vector<pollfd> fds;
    const auto t0 = Clock::now();
    int failed = 0;
    for (int i = 0; i < n && Clock::now() < c.deadline; ++i) {
        const int fd = connect_tcp(c.server, loopback(3, 0, 7), c.until(5s));
        if (fd < 0) {
            ++failed;
            continue;
        }
        const std::string start = "GET " + chat_path("slow" + std::to_string(i)) +
                                  " HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
        ::send(fd, start.data(), start.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        fds.push_back({fd, POLLIN, 0});
    }
    std::vector<double> closed_at(fds.size(), -1);
    std::map<std::string, std::uint64_t> answers;
    const auto end =
        c.until(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(window)));
    auto next_byte = Clock::now() + 1s;
    std::size_t open = fds.size();
    while (Clock::now() < end && open > 0) {
        if (Clock::now() >= next_byte) {
            // One more byte of the header each second, never its end.
            for (auto& p : fds)
                if (p.fd >= 0) ::send(p.fd, "a", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            next_byte += 1s;
        }
        poll(fds.data(), fds.size(), 50);
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[512];
            const ssize_t r = ::recv(fds[i].fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r > 0) {
                const std::string_view text(buf, static_cast<std::size_t>(r));
                if (text.starts_with("HTTP/1.1 "))
                    ++answers["HTTP " + std::string(text.substr(9, 3))];
                continue;
            }
            if (r < 0 && errno == EAGAIN) continue;
            closed_at[i] = seconds_between(t0, Clock::now());
            abort_close(fds[i].fd);
            fds[i].fd = -1;
            fds[i].events = 0;
            --open;
        }
    }
    std::vector<double> times;
    for (double t : closed_at)
        if (t >= 0) times.push_back(t);
    std::sort(times.begin(), times.end());
    for (auto& p : fds)
        if (p.fd >= 0) abort_close(p.fd);
    const double took = seconds_between(t0, Clock::now());
    std::string answer = tally(answers);
    if (!times.empty())
        answer += (answer.empty() ? "TCP closed without an HTTP status" : ", then TCP closed") +
                  std::string(": ") + std::to_string(times.size()) + " of " +
                  std::to_string(fds.size()) + " after " + fixed(times.front(), 1) + "–" +
                  fixed(times.back(), 1) + " s";
    if (answer.empty()) answer = "none";
    return {answer, std::to_string(fds.size()) + " connections from one address (" +
                        std::to_string(failed) +
                        " failed to connect) each sending one header byte a second; " +
                        std::to_string(times.size()) + " closed by the server, " +
                        std::to_string(open) + " still open after " + fixed(took, 1) + " s"};
}

Outcome big_frame(Ctx& c) {
    Attacker a(c, 8);
    if (!a.failure.empty()) return {a.failure, "could not connect"};
    // A text frame header announcing 2^62 bytes, then 64 KiB of them.
    std::vector<std::uint8_t> out = {0x81, 0x80 | 127};
    const std::uint64_t length = 1ull << 62;
    for (int i = 0; i < 8; ++i)
        out.push_back(static_cast<std::uint8_t>(length >> (56 - 8 * i)));
    out.insert(out.end(), {1, 2, 3, 4});
    out.resize(out.size() + 65536, 'a');
    const auto t0 = Clock::now();
    send_all(a.up.fd, out.data(), out.size(), c.until(10s));
    const Drained d = drain_socket(a.up.fd, a.up.inbox, 1s, c.until(15s), true);
    const double after = d.first_byte ? seconds_between(t0, *d.first_byte) : -1;
    return {answer_of(d) + (after >= 0 ? ", after " + fixed(after * 1000, 1) + " ms" : ""),
            "a text frame header announcing 2^62 bytes, then 64 KiB of payload"};
}

Outcome big_header(Ctx& c) {
    const int fd = connect_tcp(c.server, loopback(3, 0, 9), c.until(5s));
    if (fd < 0) return {std::string("connect: ") + std::strerror(errno), ""};
    // An upgrade request with 1 MiB of header lines.
    std::string request = "GET " + chat_path("big") +
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n";
    for (int i = 0; request.size() < (1u << 20); ++i)
        request += "X-Pad-" + std::to_string(i) + ": " + std::string(1000, 'a') + "\r\n";
    request += "\r\n";
    const auto t0 = Clock::now();
    const bool all_sent = send_all(fd, request, c.until(10s));
    std::string got;
    char buf[4096];
    while (wait_fd(fd, POLLIN, c.until(10s)) & (POLLIN | POLLHUP | POLLERR)) {
        const ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r <= 0) break;
        got.append(buf, static_cast<std::size_t>(r));
    }
    const double after = seconds_between(t0, Clock::now());
    abort_close(fd);
    std::string answer = got.starts_with("HTTP/1.1 ") ? "HTTP " + got.substr(9, got.find('\r') - 9)
                                                      : "no HTTP answer";
    return {answer + (all_sent ? "" : " (before the request was all sent)"),
            with_commas(request.size()) +
                "-byte upgrade request (1 KiB header lines); connection closed " +
                fixed(after * 1000, 0) + " ms after the first byte was sent"};
}

// ---------------------------------------------------------------- runs --

struct Attack {
    std::string name;
    std::string what;
    std::vector<std::string> server_args;
    std::function<Outcome(Ctx&)> run;
};

std::vector<Attack> all_attacks() {
    return {
        {"ping-flood", "10^6 masked 125-byte pings, never reading", {}, ping_flood},
        {"deflate-1m",
         "permessage-deflate: 1 MiB − 16 B of empty deflate blocks",
         {"--deflate"},
         [](Ctx& c) { return deflate_blocks(c, (1u << 20) - 16); }},
        {"deflate-256k",
         "permessage-deflate: 256 KiB of empty deflate blocks",
         {"--deflate"},
         [](Ctx& c) { return deflate_blocks(c, 256u << 10); }},
        {"msg-flood", "new_msg as fast as possible into a room of listeners", {}, msg_flood},
        {"log-flood", "phx_join of 64 KiB unmatched topics with newlines", {}, log_flood},
        {"long-topics", "99 joins of ~1 MiB `room:` topics on one socket", {}, long_topics},
        {"join-storm",
         "thousands of sockets join room:lobby at once (presence on)",
         {},
         join_storm},
        {"conn-flood", "WebSocket handshakes as fast as possible from one address", {}, conn_flood},
        {"slowloris", "upgrade requests that never end, one byte a second", {}, slowloris},
        {"big-frame", "a frame header announcing 2^62 bytes", {}, big_frame},
        {"big-header", "an upgrade request with 1 MiB of headers", {}, big_header},
    };
}

struct Row {
    std::string attack;
    std::string answer;
    std::string notes;
    long idle_kib = -1, peak_kib = -1, end_kib = -1;
    double cpu = 0;
    double took = 0;
    double other_load = -1;  // cores busy with other work during the attack
    double steal = 0;
    std::uint64_t log_bytes = 0;
    BystanderResult by;
    std::string server_end;  // set when the server died or had to be killed
};

bool process_gone(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto paren = all.rfind(')');
    return paren == std::string::npos || paren + 2 >= all.size() || all[paren + 2] == 'Z';
}

double ms(std::uint64_t ns) {
    return static_cast<double>(ns) / 1e6;
}

Row run_attack(const Config& cfg, const Attack& attack) {
    Row row;
    row.attack = attack.name;
    std::fprintf(stderr, "== %s: %s\n", attack.name.c_str(), attack.what.c_str());
    auto log = std::make_shared<LogWatch>();
    ServerProcess server;
    server.capture_stderr([log](std::string_view chunk) { log->feed(chunk); });
    std::vector<std::string> args = {"--host", "127.0.0.1", "--port", "0", "--threads", "1"};
    args.insert(args.end(), attack.server_args.begin(), attack.server_args.end());
    server.start(cfg.server, args, 10s, false);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server.port());
    inet_pton(AF_INET, server.host().empty() ? "127.0.0.1" : server.host().c_str(), &addr.sin_addr);

    Bystander bystander;
    std::string error;
    if (!bystander.join(addr, error)) {
        row.answer = "(not run: " + error + ")";
        return row;
    }
    std::this_thread::sleep_for(500ms);
    row.idle_kib = rss_kib(server.pid());
    const double cpu0 = proc_cpu_seconds(server.pid()).value_or(0);
    const std::uint64_t log0 = log->bytes;
    const MachineCpu machine0 = machine_cpu();
    const double self0 = self_cpu_seconds();

    Ctx ctx{cfg, addr, server.pid(), {}, *log};
    const auto t0 = Clock::now();
    ctx.deadline =
        t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.cap));
    bystander.start();
    Outcome outcome;
    try {
        outcome = attack.run(ctx);
    } catch (const std::exception& e) {
        outcome = {std::string("(attack failed: ") + e.what() + ")", ""};
    }
    // Short attacks still give the bystander a second of samples.
    std::this_thread::sleep_until(t0 + 1s);
    row.took = seconds_between(t0, Clock::now());
    row.by = bystander.finish(3s);
    std::this_thread::sleep_for(1s);  // let the server release what it held for the attacker
    row.answer = outcome.answer;
    row.notes = outcome.notes;
    if (process_gone(server.pid())) {
        row.server_end = "server died during the attack: " + server.stop(1s);
    } else {
        row.end_kib = rss_kib(server.pid());
        row.peak_kib = proc_status_kib(std::to_string(server.pid()), "VmHWM").value_or(-1);
        row.cpu = proc_cpu_seconds(server.pid()).value_or(0) - cpu0;
        row.log_bytes = log->bytes - log0;
        // What else ran meanwhile (other work on the machine), in cores.
        const MachineCpu machine1 = machine_cpu();
        const double wall = seconds_between(t0, Clock::now());
        row.other_load =
            (machine1.busy - machine0.busy - row.cpu - (self_cpu_seconds() - self0)) / wall;
        row.steal = (machine1.steal - machine0.steal) / wall;
        const std::string how = server.stop(10s);
        if (how.find("killed") != std::string::npos) row.server_end = "server " + how;
    }
    const auto& h = row.by.latency;
    std::fprintf(stderr,
                 "  answer: %s\n  %s\n  server RSS idle %s, peak %s, end %s MiB; CPU %.2f s; "
                 "stderr %s bytes\n  bystander: %s lost of %s, p50 %.1f p99 %.1f max %.1f ms%s%s\n"
                 "  took %.1f s\n",
                 row.answer.c_str(), row.notes.c_str(), mib(row.idle_kib).c_str(),
                 mib(row.peak_kib).c_str(), mib(row.end_kib).c_str(), row.cpu,
                 with_commas(row.log_bytes).c_str(), with_commas(row.by.lost).c_str(),
                 with_commas(row.by.sent).c_str(), ms(h.quantile(0.5)), ms(h.quantile(0.99)),
                 ms(h.max()), row.by.disconnected ? ", disconnected: " : "", row.by.how.c_str(),
                 row.took);
    if (!row.server_end.empty()) std::fprintf(stderr, "  %s\n", row.server_end.c_str());
    return row;
}

std::string latency_cell(const BystanderResult& b, double q) {
    if (b.latency.total() == 0) return "-";
    return fixed(ms(q >= 1 ? b.latency.max() : b.latency.quantile(q)), 1);
}

void print_table(const std::vector<Row>& rows, const std::string& command) {
    std::printf(
        "| attack | server's answer to the attacker | RSS idle → peak → end (MiB) | server CPU s | "
        "stderr bytes | bystander lost / sent | p50 ms | p99 ms | max ms | bystander closed |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (const Row& r : rows) {
        std::string closed = r.by.disconnected ? "yes: " + r.by.how : "no";
        if (r.by.errors > 0) closed += "; error replies: " + tally(r.by.error_reasons);
        std::printf("| %s | %s | %s → %s → %s | %.2f | %s | %s / %s | %s | %s | %s | %s |\n",
                    r.attack.c_str(), cell(r.answer).c_str(), mib(r.idle_kib).c_str(),
                    mib(r.peak_kib).c_str(), mib(r.end_kib).c_str(), r.cpu,
                    with_commas(r.log_bytes).c_str(), with_commas(r.by.lost).c_str(),
                    with_commas(r.by.sent).c_str(), latency_cell(r.by, 0.5).c_str(),
                    latency_cell(r.by, 0.99).c_str(), latency_cell(r.by, 1).c_str(),
                    cell(closed).c_str());
    }
    std::printf("\n");
    for (const Row& r : rows) {
        std::string line = "- **" + r.attack + "** (" + fixed(r.took, 1) + " s): " + r.notes;
        if (r.by.diffs > 0)
            line += "; the bystander got " + with_commas(r.by.diffs) + " presence_diff";
        if (!r.server_end.empty()) line += "; " + r.server_end;
        if (r.other_load >= 0)
            line += "; other load " + fixed(std::max(0.0, r.other_load) * 100, 0) +
                    "% of a core, steal " + fixed(r.steal * 100, 0) + "%";
        std::printf("%s\n", line.c_str());
    }
    std::printf("\n```sh\n%s\n```\n", command.c_str());
}

std::vector<std::string> split_commas(const std::string& s) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= s.size()) {
        const auto comma = s.find(',', start);
        const std::string part =
            s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!part.empty()) out.push_back(part);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    Config cfg;
    std::string command;
    for (int i = 0; i < argc; ++i)
        command += (i ? " " : "") + std::string(argv[i]);
    try {
        // --attack may be given several times; CliArgs keeps one value per
        // flag, so collect those first.
        std::vector<char*> rest = {argv[0]};
        for (int i = 1; i < argc; ++i) {
            const std::string_view a = argv[i];
            if (a == "--attack" && i + 1 < argc) {
                for (auto& n : split_commas(argv[++i]))
                    cfg.attacks.push_back(n);
            } else if (a.starts_with("--attack=")) {
                for (auto& n : split_commas(std::string(a.substr(9))))
                    cfg.attacks.push_back(n);
            } else {
                rest.push_back(argv[i]);
            }
        }
        CliArgs args(static_cast<int>(rest.size()), rest.data(), {});
        cfg.server = args.get("server", cfg.server);
        cfg.listeners = static_cast<int>(args.number("listeners", cfg.listeners));
        cfg.storm = static_cast<int>(args.number("storm", cfg.storm));
        cfg.seconds = args.number("seconds", cfg.seconds);
        cfg.pings =
            static_cast<std::uint64_t>(args.number("pings", static_cast<double>(cfg.pings)));
        cfg.slow_connections =
            static_cast<int>(args.number("slow-connections", cfg.slow_connections));
        cfg.cap = args.number("cap", cfg.cap);
        args.finish();
        if (!args.passthrough().empty())
            throw std::runtime_error("no server arguments are taken after --");
    } catch (const std::exception& e) {
        std::fprintf(
            stderr,
            "abuse: %s\nusage: abuse [--server PATH] [--attack NAME[,NAME...]]... "
            "[--listeners 200] [--storm 5000]\n"
            "             [--seconds S] [--pings 1000000] [--slow-connections 1000] [--cap 60]\n"
            "attacks:",
            e.what());
        for (auto& a : all_attacks())
            std::fprintf(stderr, " %s", a.name.c_str());
        std::fprintf(stderr, "\n");
        return 2;
    }
    std::vector<Attack> chosen;
    for (auto& a : all_attacks())
        if (cfg.attacks.empty() ||
            std::find(cfg.attacks.begin(), cfg.attacks.end(), a.name) != cfg.attacks.end())
            chosen.push_back(a);
    for (auto& name : cfg.attacks) {
        const auto known = all_attacks();
        if (std::none_of(known.begin(), known.end(), [&](auto& a) { return a.name == name; })) {
            std::fprintf(stderr, "abuse: unknown attack %s\n", name.c_str());
            return 2;
        }
    }
    // Each side (this program, and the server, which inherits the limit)
    // holds the storm's or the slowloris' sockets, the listeners and a few more.
    const int fds_needed = std::max(cfg.storm, cfg.slow_connections) + cfg.listeners + 64;
    if (rlimit limit{}; getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
                        limit.rlim_max < static_cast<rlim_t>(fds_needed + 64)) {
        // Root may raise the hard limit too (up to fs.nr_open).
        limit.rlim_max = limit.rlim_cur = static_cast<rlim_t>(fds_needed + 64);
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    try {
        require_fd_limit(fds_needed);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "abuse: %s\n", e.what());
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    std::vector<Row> rows;
    const auto t0 = Clock::now();
    for (const Attack& a : chosen) {
        try {
            rows.push_back(run_attack(cfg, a));
        } catch (const std::exception& e) {
            Row r;
            r.attack = a.name;
            r.answer = std::string("(not run: ") + e.what() + ")";
            rows.push_back(std::move(r));
        }
    }
    std::fprintf(stderr, "all attacks in %.0f s\n", seconds_between(t0, Clock::now()));
    print_table(rows, command);
    return 0;
}
