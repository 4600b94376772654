// benchmarks/support/ws_load_client.hpp — a minimal RFC 6455 client for load generation.
//
// Raw standalone Asio, one LoadConnection per connection, driven by one
// io_context thread (no strands, no locks). It does just what the benchmarks
// need, correctly: the HTTP upgrade (random key, 101 status,
// Sec-WebSocket-Accept checked), masked client frames, unmasked server frames
// with 7/16/64-bit lengths, fragmented messages, pong replies to pings and the
// close handshake. The receive side (FrameReader) knows no transport, so a
// connection can be detach()ed after its handshake and driven by a raw epoll
// loop, which echo_throughput does to spend fewer system calls than Asio.
//
// channel_fanout and idle_connections use plume's own client by default; this
// one stays as their `--driver epoll`/`raw` and as echo_throughput's driver:
// independent of plume, so a client bug cannot flatter or hide a server's
// figures, and cheaper per message than a full Phoenix client.
#pragma once

#include <netinet/in.h>  // IP_BIND_ADDRESS_NO_PORT
#include <openssl/evp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <asio.hpp>
#include <plume/transport/frame.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace plume_bench {

enum class Opcode : std::uint8_t {
    continuation = 0x0,
    text = 0x1,
    binary = 0x2,
    close = 0x8,
    ping = 0x9,
    pong = 0xA,
};

inline std::string base64_encode(std::span<const std::uint8_t> in) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const std::uint32_t v = (std::uint32_t{in[i]} << 16) | (std::uint32_t{in[i + 1]} << 8) |
                                std::uint32_t{in[i + 2]};
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (const std::size_t rest = in.size() - i; rest > 0) {
        std::uint32_t v = std::uint32_t{in[i]} << 16;
        if (rest == 2) v |= std::uint32_t{in[i + 1]} << 8;
        out += alphabet[(v >> 18) & 63];
        out += alphabet[(v >> 12) & 63];
        out += rest == 2 ? alphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

/// The Sec-WebSocket-Accept value a server must answer `key` with (RFC 6455 4.2.2).
inline std::string websocket_accept_for(std::string_view key) {
    std::string input(key);
    input += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    std::array<std::uint8_t, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    if (EVP_Digest(input.data(), input.size(), digest.data(), &length, EVP_sha1(), nullptr) != 1)
        return {};
    return base64_encode(std::span(digest.data(), length));
}

struct WsUrl {
    std::string host;
    std::uint16_t port = 80;
    std::string path = "/";
};

/// Parses ws://HOST[:PORT][/PATH]. Only plain ws: the benchmarks measure the
/// server's WebSocket path, not TLS.
inline std::optional<WsUrl> parse_ws_url(std::string_view url) {
    constexpr std::string_view scheme = "ws://";
    if (!url.starts_with(scheme)) return std::nullopt;
    url.remove_prefix(scheme.size());
    WsUrl out;
    const auto slash = url.find('/');
    std::string_view authority = url.substr(0, slash);
    if (slash != std::string_view::npos) out.path = std::string(url.substr(slash));
    if (authority.starts_with('[')) {  // [v6]:port
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        out.host = std::string(authority.substr(1, close - 1));
        authority.remove_prefix(close + 1);
    } else {
        const auto colon = authority.find(':');
        out.host = std::string(authority.substr(0, colon));
        authority.remove_prefix(colon == std::string_view::npos ? authority.size() : colon);
    }
    if (!authority.empty()) {
        if (authority[0] != ':' || authority.size() < 2) return std::nullopt;
        unsigned port = 0;
        for (char c : authority.substr(1)) {
            if (c < '0' || c > '9') return std::nullopt;
            port = port * 10 + static_cast<unsigned>(c - '0');
            if (port > 65535) return std::nullopt;
        }
        out.port = static_cast<std::uint16_t>(port);
    }
    if (out.host.empty()) return std::nullopt;
    return out;
}

/// xorshift64*: masking keys only need to vary per frame; a CSPRNG per frame
/// would cost more than the frame. The seed comes from std::random_device.
class FastRng {
  public:
    explicit FastRng(std::uint64_t seed) : state_(seed ? seed : 0x9E3779B97F4A7C15ull) {}
    std::uint64_t next() {
        state_ ^= state_ >> 12;
        state_ ^= state_ << 25;
        state_ ^= state_ >> 27;
        return state_ * 0x2545F4914F6CDD1Dull;
    }

  private:
    std::uint64_t state_;
};

/// XORs `data` with the 4-byte key, eight bytes at a time where it can.
inline void apply_mask(std::uint8_t* data, std::size_t size, std::array<std::uint8_t, 4> key) {
    // The key repeated in memory order, so one 64-bit XOR masks eight bytes.
    std::array<std::uint8_t, 8> pattern{};
    for (std::size_t i = 0; i < 8; ++i)
        pattern[i] = key[i % 4];
    std::uint64_t wide;
    std::memcpy(&wide, pattern.data(), 8);
    std::size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        std::uint64_t chunk;
        std::memcpy(&chunk, data + i, 8);
        chunk ^= wide;
        std::memcpy(data + i, &chunk, 8);
    }
    for (; i < size; ++i)
        data[i] ^= key[i % 4];
}

/// Appends one masked client frame to `out`.
inline void append_client_frame(std::vector<std::uint8_t>& out, Opcode op, bool fin,
                                std::span<const std::uint8_t> payload,
                                std::array<std::uint8_t, 4> mask_key) {
    const std::size_t start = out.size();
    const std::uint64_t n = payload.size();
    std::size_t header = 2 + 4 + (n < 126 ? 0 : n <= 0xFFFF ? 2 : 8);
    out.resize(start + header + payload.size());
    std::uint8_t* p = out.data() + start;
    p[0] = static_cast<std::uint8_t>((fin ? 0x80 : 0) | static_cast<std::uint8_t>(op));
    std::size_t pos = 2;
    if (n < 126) {
        p[1] = static_cast<std::uint8_t>(0x80 | n);
    } else if (n <= 0xFFFF) {
        p[1] = 0x80 | 126;
        p[2] = static_cast<std::uint8_t>(n >> 8);
        p[3] = static_cast<std::uint8_t>(n);
        pos = 4;
    } else {
        p[1] = 0x80 | 127;
        for (int i = 0; i < 8; ++i)
            p[2 + i] = static_cast<std::uint8_t>(n >> (56 - 8 * i));
        pos = 10;
    }
    std::memcpy(p + pos, mask_key.data(), 4);
    pos += 4;
    if (!payload.empty()) std::memcpy(p + pos, payload.data(), payload.size());
    apply_mask(p + pos, payload.size(), mask_key);
}

struct ServerFrame {
    bool fin = true;
    Opcode op = Opcode::binary;
    std::size_t header_size = 0;
    std::uint64_t payload_size = 0;
};

enum class FrameStatus { incomplete, ok, error };

/// Parses the header of one server frame at the start of `in`, with the checks a
/// client owes (RFC 6455 5.1-5.5): unmasked, no RSV bits (we offer no
/// extension), a known opcode, control frames final and at most 125 bytes.
inline FrameStatus parse_server_frame(std::span<const std::uint8_t> in, ServerFrame& out,
                                      const char*& error) {
    // The byte layout is plume's own frame codec; the client-side checks are ours.
    plume::transport::FrameHeader h;
    const std::string_view bytes(reinterpret_cast<const char*>(in.data()), in.size());
    if (plume::transport::parse_header(bytes, h) == plume::transport::header_status::need_more)
        return FrameStatus::incomplete;
    out.fin = h.fin;
    const std::uint8_t op = h.opcode;
    if (h.rsv1 || h.rsv2 || h.rsv3)
        return error = "RSV bit set without an extension", FrameStatus::error;
    if (!plume::transport::is_known_opcode(op)) return error = "unknown opcode", FrameStatus::error;
    if (h.masked) return error = "server frame is masked", FrameStatus::error;
    out.op = static_cast<Opcode>(op);
    const std::uint64_t len = h.payload_length;
    const std::size_t pos = h.header_length;
    if (len >> 63) return error = "64-bit length has its top bit set", FrameStatus::error;
    if (op >= 0x8 && (!out.fin || len > 125))
        return error = "fragmented or oversized control frame", FrameStatus::error;
    out.header_size = pos;
    out.payload_size = len;
    return FrameStatus::ok;
}

/// Receive side of a client, free of any transport so the Asio connection below
/// and a raw epoll loop share it: bytes go into space()/commit(), and drain()
/// hands every complete message and control frame to a sink.
class FrameReader {
  public:
    FrameReader() = default;
    FrameReader(std::size_t initial_buffer, std::uint64_t max_message)
        : buf_(std::max<std::size_t>(initial_buffer, 256)), max_message_(max_message) {}

    /// Where the next read should land; never empty.
    std::span<std::uint8_t> space() {
        if (used_ == buf_.size()) buf_.resize(std::max<std::size_t>(256, buf_.size() * 2));
        return std::span(buf_.data() + used_, buf_.size() - used_);
    }
    void commit(std::size_t n) { used_ += n; }

    /// Received bytes not consumed yet (the handshake reads its response here).
    std::span<const std::uint8_t> buffered() const { return std::span(buf_.data(), used_); }
    void discard(std::size_t n) {
        std::memmove(buf_.data(), buf_.data() + n, used_ - n);
        used_ -= n;
    }

    /// Handles every complete frame: sink.on_message(op, payload) for whole
    /// (reassembled) messages, sink.on_ping(payload), sink.on_close(payload).
    /// Stops early once sink.stopped(). Returns an error description if the
    /// server broke the protocol, else nullptr.
    template <typename Sink>
    const char* drain(Sink& sink) {
        std::size_t offset = 0;
        const char* error = nullptr;
        while (!sink.stopped()) {
            ServerFrame frame;
            const auto status =
                parse_server_frame(std::span(buf_.data() + offset, used_ - offset), frame, error);
            if (status == FrameStatus::error) return error;
            if (status == FrameStatus::incomplete) break;
            if (frame.payload_size > max_message_) return "frame larger than the message limit";
            const std::size_t total =
                frame.header_size + static_cast<std::size_t>(frame.payload_size);
            if (used_ - offset < total) {
                // Make room for the whole frame so later reads can complete it.
                if (total > buf_.size()) {
                    discard(offset);
                    offset = 0;
                    buf_.resize(total);
                }
                break;
            }
            const std::span<const std::uint8_t> payload(
                buf_.data() + offset + frame.header_size,
                static_cast<std::size_t>(frame.payload_size));
            offset += total;
            if ((error = handle(frame, payload, sink))) return error;
        }
        if (offset > 0) discard(offset);
        return nullptr;
    }

  private:
    template <typename Sink>
    const char* handle(const ServerFrame& frame, std::span<const std::uint8_t> payload,
                       Sink& sink) {
        switch (frame.op) {
            case Opcode::text:
            case Opcode::binary:
                if (fragmented_) return "new message inside a fragmented one";
                if (frame.fin) return sink.on_message(frame.op, payload), nullptr;
                fragmented_ = true;
                fragment_op_ = frame.op;
                fragments_.assign(payload.begin(), payload.end());
                return nullptr;
            case Opcode::continuation:
                if (!fragmented_) return "continuation without a message";
                if (fragments_.size() + payload.size() > max_message_) return "message too large";
                fragments_.insert(fragments_.end(), payload.begin(), payload.end());
                if (frame.fin) {
                    fragmented_ = false;
                    sink.on_message(fragment_op_, std::span<const std::uint8_t>(fragments_));
                }
                return nullptr;
            case Opcode::ping:
                return sink.on_ping(payload), nullptr;
            case Opcode::pong:
                return nullptr;
            case Opcode::close:
                return sink.on_close(payload), nullptr;
        }
        return nullptr;
    }

    std::vector<std::uint8_t> buf_ = std::vector<std::uint8_t>(4096);  // [0, used_) received
    std::size_t used_ = 0;
    std::uint64_t max_message_ = 64u << 20;
    bool fragmented_ = false;
    Opcode fragment_op_ = Opcode::binary;
    std::vector<std::uint8_t> fragments_;
};

/// Masks `payload` into a frame at the end of `out`, with a fresh key from `rng`.
inline void append_masked(std::vector<std::uint8_t>& out, FastRng& rng, Opcode op,
                          std::span<const std::uint8_t> payload) {
    const std::uint64_t r = rng.next();
    std::array<std::uint8_t, 4> key{};
    std::memcpy(key.data(), &r, 4);
    append_client_frame(out, op, true, payload, key);
}

/// Writes `out` from byte `sent` on without blocking, for a raw socket in an
/// epoll set (registered for EPOLLIN with `data`); once everything is out,
/// `out` is cleared and `sent` reset. EPOLLOUT is armed exactly while the
/// kernel's buffer is full, `want_write` tracking it. False on a failure
/// (errno tells).
inline bool flush_epoll(int epoll_fd, int fd, std::uint64_t data, std::vector<std::uint8_t>& out,
                        std::size_t& sent, bool& want_write) {
    bool blocked = false;
    while (sent < out.size() && !blocked) {
        const ssize_t n =
            ::send(fd, out.data() + sent, out.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            sent += static_cast<std::size_t>(n);
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            blocked = true;  // wait for room
        else if (n < 0 && errno != EINTR)
            return false;
    }
    if (!blocked) {
        out.clear();
        sent = 0;
    }
    if (want_write != blocked) {
        want_write = blocked;
        epoll_event ev{};
        ev.events = EPOLLIN | (blocked ? EPOLLOUT : 0u);
        ev.data.u64 = data;
        epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &ev);
    }
    return true;
}

/// One client WebSocket. Create with create(), set the handlers, then
/// async_open(). Every member must be called on the thread running its io_context.
class LoadConnection : public std::enable_shared_from_this<LoadConnection> {
  public:
    using OpenHandler = std::function<void(std::error_code, std::string_view why)>;
    using MessageHandler = std::function<void(Opcode, std::span<const std::uint8_t>)>;
    using ClosedHandler = std::function<void(std::error_code, std::string_view why)>;

    struct Options {
        std::string host_header = "127.0.0.1";
        std::string path = "/";
        // Initial read buffer; it grows to fit a larger frame. Small for idle
        // connections so the client's own memory stays modest.
        std::size_t read_buffer = 4096;
        std::uint64_t max_message = 64u << 20;
        // SO_RCVBUF set before connecting (0: the system's default): a small
        // one makes a slow reader's backlog wait in the server's queue.
        int receive_buffer = 0;
    };

    static std::shared_ptr<LoadConnection> create(asio::io_context& io, Options options,
                                                  std::uint64_t seed) {
        return std::shared_ptr<LoadConnection>(new LoadConnection(io, std::move(options), seed));
    }

    void on_message(MessageHandler h) { on_message_ = std::move(h); }
    void on_closed(ClosedHandler h) { on_closed_ = std::move(h); }

    bool is_open() const { return state_ == State::open; }

    /// Connects (from `local` if given, so many connections can share one server
    /// port without exhausting one source address's ephemeral ports) and upgrades.
    void async_open(const asio::ip::tcp::endpoint& server,
                    const std::optional<asio::ip::address>& local, OpenHandler done) {
        on_open_ = std::move(done);
        state_ = State::connecting;
        std::error_code ec;
        socket_.open(server.protocol(), ec);
        if (!ec && options_.receive_buffer > 0)
            socket_.set_option(asio::socket_base::receive_buffer_size(options_.receive_buffer), ec);
        if (!ec && local) {
            // Defer the port choice to connect(): ports are then unique per
            // 4-tuple instead of per local address, so bind() cannot run dry.
            socket_.set_option(
                asio::detail::socket_option::boolean<IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT>(true),
                ec);
            if (!ec) socket_.bind(asio::ip::tcp::endpoint(*local, 0), ec);
        }
        if (ec) return finish(ec, "socket/bind");
        socket_.async_connect(server, [self = shared_from_this()](std::error_code ec) {
            if (self->state_ == State::closed) return;
            if (ec) return self->finish(ec, "connect");
            std::error_code ignored;
            self->socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
            self->send_upgrade();
        });
    }

    /// Sends one whole message (a single final frame).
    void send(Opcode op, std::span<const std::uint8_t> payload) {
        if (state_ == State::open) queue_frame(op, payload);
    }

    /// Starts the close handshake; on_closed fires when the server has closed TCP.
    void close(std::uint16_t code = 1000) {
        if (state_ != State::open) return;
        const std::array<std::uint8_t, 2> body{static_cast<std::uint8_t>(code >> 8),
                                               static_cast<std::uint8_t>(code)};
        queue_frame(Opcode::close, body);
        state_ = State::closing;
    }

    /// Drops the TCP connection at once; on_closed (or the open handler) fires.
    void abort() { finish(asio::error::operation_aborted, "aborted"); }

    /// Hands the open socket and any bytes already received to a caller that
    /// drives it without Asio (a raw epoll loop); no handler fires afterwards.
    /// Only between a completed open and the first send.
    struct Detached {
        int fd = -1;
        FrameReader reader;
    };
    Detached detach() {
        Detached out;
        if (state_ != State::open || write_in_flight_) return out;
        state_ = State::closed;  // the cancelled read's handler sees this and returns
        std::error_code ec;
        out.fd = socket_.release(ec);
        if (ec) out.fd = -1;
        out.reader = std::move(reader_);
        on_message_ = nullptr;
        on_closed_ = nullptr;
        return out;
    }

  private:
    enum class State { idle, connecting, handshaking, open, closing, closed };

    LoadConnection(asio::io_context& io, Options options, std::uint64_t seed)
        : socket_(io),
          options_(std::move(options)),
          rng_(seed),
          reader_(std::max<std::size_t>(options_.read_buffer, 512), options_.max_message) {}

    void send_upgrade() {
        state_ = State::handshaking;
        std::array<std::uint8_t, 16> nonce{};
        for (std::size_t i = 0; i < nonce.size(); i += 8) {
            const std::uint64_t r = rng_.next();
            std::memcpy(nonce.data() + i, &r, 8);
        }
        const std::string key = base64_encode(nonce);
        expected_accept_ = websocket_accept_for(key);
        const std::string request = "GET " + options_.path +
                                    " HTTP/1.1\r\nHost: " + options_.host_header +
                                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                    "Sec-WebSocket-Key: " +
                                    key + "\r\nSec-WebSocket-Version: 13\r\n\r\n";
        pending_.assign(request.begin(), request.end());
        flush();
        read_some();
    }

    void read_some() {
        const auto space = reader_.space();
        socket_.async_read_some(
            asio::buffer(space.data(), space.size()),
            [self = shared_from_this()](std::error_code ec, std::size_t n) {
                if (self->state_ == State::closed) return;
                if (ec) {
                    // EOF after the close handshake is the clean end.
                    const bool clean = ec == asio::error::eof && self->close_received_;
                    return self->finish(clean ? std::error_code{} : ec, clean ? "closed" : "read");
                }
                self->reader_.commit(n);
                if (self->state_ == State::handshaking) return self->on_handshake_bytes();
                if (!self->consume()) return;
                self->read_some();
            });
    }

    static bool iequals(std::string_view a, std::string_view b) {
        return a.size() == b.size() &&
               std::equal(a.begin(), a.end(), b.begin(),
                          [](char x, char y) { return (x | 0x20) == (y | 0x20); });
    }

    void on_handshake_bytes() {
        const auto bytes = reader_.buffered();
        const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        const auto end = text.find("\r\n\r\n");
        if (end == std::string_view::npos) {
            if (text.size() > 16384)
                return finish(std::make_error_code(std::errc::message_size),
                              "upgrade response too large");
            return read_some();
        }
        const std::string_view head = text.substr(0, end + 2);
        const auto protocol_error = std::make_error_code(std::errc::protocol_error);
        if (!head.starts_with("HTTP/1.1 101"))
            return finish(protocol_error, head.substr(0, head.find('\r')));
        bool accept_ok = false;
        for (std::size_t pos = head.find("\r\n") + 2; pos < head.size();) {
            const auto eol = head.find("\r\n", pos);
            const std::string_view line = head.substr(pos, eol - pos);
            pos = eol + 2;
            const auto colon = line.find(':');
            if (colon == std::string_view::npos) continue;
            const std::string_view name = line.substr(0, colon);
            std::string_view value = line.substr(colon + 1);
            while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
                value.remove_prefix(1);
            while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
                value.remove_suffix(1);
            if (iequals(name, "Sec-WebSocket-Accept")) accept_ok = value == expected_accept_;
            // We offered no extension, so any in the answer is a server bug.
            if (iequals(name, "Sec-WebSocket-Extensions") && !value.empty())
                return finish(protocol_error, "unrequested extension");
        }
        if (!accept_ok) return finish(protocol_error, "bad Sec-WebSocket-Accept");
        reader_.discard(end + 4);  // frames may already follow the response
        state_ = State::open;
        if (auto h = std::exchange(on_open_, nullptr)) h({}, {});
        if (state_ == State::closed || !consume()) return;
        read_some();
    }

    /// The FrameReader's sink: this connection's reactions to server frames.
    struct Sink {
        LoadConnection& c;
        bool stopped() const { return c.state_ == State::closed; }
        void on_message(Opcode op, std::span<const std::uint8_t> payload) {
            // After our close frame the server may still be sending; drop it.
            if (c.state_ == State::open && c.on_message_) c.on_message_(op, payload);
        }
        void on_ping(std::span<const std::uint8_t> payload) {
            if (c.state_ == State::open) c.queue_frame(Opcode::pong, payload);
        }
        void on_close(std::span<const std::uint8_t> payload) {
            c.close_received_ = true;
            // Echo the code unless we started the close; then wait for the server's EOF.
            if (c.state_ != State::open) return;
            c.queue_frame(Opcode::close, payload.first(std::min<std::size_t>(2, payload.size())));
            c.state_ = State::closing;
        }
    };

    /// Handles every complete frame received; false once the connection is closed.
    bool consume() {
        Sink sink{*this};
        if (const char* error = reader_.drain(sink))
            finish(std::make_error_code(std::errc::protocol_error), error);
        return state_ != State::closed;
    }

    void queue_frame(Opcode op, std::span<const std::uint8_t> payload) {
        append_masked(pending_, rng_, op, payload);
        if (!write_in_flight_) flush();
    }

    void flush() {
        // Double buffering: frames queued while a write is in flight go out
        // together in the next one, and both vectors keep their capacity.
        std::swap(writing_, pending_);
        pending_.clear();
        write_in_flight_ = true;
        asio::async_write(socket_, asio::buffer(writing_),
                          [self = shared_from_this()](std::error_code ec, std::size_t) {
                              self->write_in_flight_ = false;
                              if (self->state_ == State::closed) return;
                              if (ec) return self->finish(ec, "write");
                              if (!self->pending_.empty()) self->flush();
                          });
    }

    void finish(std::error_code ec, std::string_view why) {
        if (state_ == State::closed) return;
        const bool opening = state_ != State::open && state_ != State::closing;
        state_ = State::closed;
        std::error_code ignored;
        socket_.close(ignored);
        if (opening) {
            if (auto h = std::exchange(on_open_, nullptr)) h(ec, why);
            return;
        }
        // Drop the handlers: they usually capture whoever owns this connection.
        on_message_ = nullptr;
        if (auto h = std::exchange(on_closed_, nullptr)) h(ec, why);
    }

    asio::ip::tcp::socket socket_;
    Options options_;
    FastRng rng_;
    FrameReader reader_;
    State state_ = State::idle;
    std::string expected_accept_;
    OpenHandler on_open_;
    MessageHandler on_message_;
    ClosedHandler on_closed_;
    bool close_received_ = false;

    std::vector<std::uint8_t> pending_;  // frames waiting for the current write
    std::vector<std::uint8_t> writing_;  // the buffer of the write in flight
    bool write_in_flight_ = false;
};

/// A seed per connection from the OS, so keys and masks differ across runs.
inline std::uint64_t random_seed() {
    static thread_local std::random_device device;
    return (std::uint64_t{device()} << 32) | device();
}

}  // namespace plume_bench
