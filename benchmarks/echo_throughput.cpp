// echo_throughput — round trips per second and latency percentiles against a
// WebSocket echo server.
//
// Each of --connections keeps --pipeline messages of --size bytes in flight; a
// reply is matched to its send (echo preserves order), checked byte for byte,
// and its round-trip time goes into a log-linear histogram. Only replies that
// arrive in the --seconds window after --warmup count. Asio opens the
// connections; a raw epoll loop drives them (--driver asio keeps Asio, --driver uring
// uses io_uring when liburing was found at build time). The client threads
// busy-poll (--poll busy) when they and the server threads fit the cores: a
// CPU that halts while waiting costs every reply a wake-up, which on a VM is
// a hypervisor exit and a wait to be scheduled again. With --server the
// program spawns the server itself (--port 0 --threads 1), reports its CPU time
// from /proc, and stops it by PID with SIGTERM at the end.
//
//   echo_throughput --server build/release/examples/echo/echo_server
//   echo_throughput --url ws://127.0.0.1:9001/ --connections 100 --size 64 --seconds 10
//   echo_throughput --server build/reference/uws_phoenix --path /echo
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#if defined(PLUME_BENCH_URING)
#include <liburing.h>
#endif

#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/bench_support.hpp"
#include "support/ws_load_client.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace plume_bench;

enum class Phase { warmup, measure, stop };

struct Config {
    std::string server;
    std::vector<std::string> server_args;
    std::string url;
    std::string path = "/";  // with --server: the echo endpoint's path
    std::string driver = "epoll";
    int connections = 100;
    int pipeline = 1;
    std::size_t size = 64;
    bool text = false;
    double seconds = 10;
    double warmup = 2;
    int client_threads = 1;
    int server_threads = 1;
    bool busy_poll = true;  // --poll busy: client threads never sleep in the kernel
    bool show_server_output = false;
};

/// What main and the client threads share. Phase changes are the only
/// coordination on the hot path: a relaxed load per echo.
struct Shared {
    std::atomic<Phase> phase{Phase::warmup};
    std::atomic<int> opened{0};
    std::atomic<int> open_failures{0};
    std::atomic<int> threads_ready{0};
    std::atomic<bool> go{false};
    std::atomic<bool> abandon{false};
    std::atomic<int> closed{0};
    std::atomic<bool> first_error_reported{false};

    void report(const char* what, std::string_view why) {
        if (!first_error_reported.exchange(true))
            std::fprintf(stderr, "echo_throughput: %s (%.*s)\n", what, static_cast<int>(why.size()),
                         why.data());
    }
};

/// Figures owned by one client thread; main reads them after join.
struct ClientStats {
    LatencyHistogram histogram;
    std::uint64_t measured = 0;  // echoes received inside the window
    std::uint64_t mismatches = 0;
};

/// The echo protocol of one connection, whatever drives its socket: stamps each
/// message with a sequence number and send time, verifies each echo byte for
/// byte and in order, and records its round trip while the window is open.
class EchoState {
  public:
    enum class Next { send, close, wait, fail };

    EchoState(const Config& config, ClientStats& stats, Shared& shared)
        : stats_(stats),
          shared_(shared),
          op_(config.text ? Opcode::text : Opcode::binary),
          payload_(config.size),
          sent_at_(static_cast<std::size_t>(config.pipeline)) {
        // Printable ASCII: valid as text (UTF-8) and as binary.
        for (std::size_t i = 0; i < payload_.size(); ++i)
            payload_[i] = static_cast<std::uint8_t>('a' + i % 26);
        seq_bytes_ = payload_.size() >= 16 ? 16 : 0;
    }

    Opcode opcode() const { return op_; }

    std::span<const std::uint8_t> next_message() {
        if (seq_bytes_) write_seq(payload_.data(), next_seq_);
        sent_at_[next_seq_ % sent_at_.size()] = Clock::now();
        ++next_seq_;
        return payload_;
    }

    Next on_echo(Opcode op, std::span<const std::uint8_t> data) {
        const auto now = Clock::now();
        if (next_seq_ == expected_seq_ || !matches(op, data)) {
            ++stats_.mismatches;
            shared_.report("unexpected echo",
                           "payload, opcode or order differs from what was sent");
            return Next::fail;
        }
        const auto sent = sent_at_[expected_seq_ % sent_at_.size()];
        ++expected_seq_;
        const Phase phase = shared_.phase.load(std::memory_order_relaxed);
        if (phase == Phase::measure) {
            stats_.histogram.record(static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent).count()));
            ++stats_.measured;
        }
        if (phase != Phase::stop) return Next::send;
        return next_seq_ == expected_seq_ ? Next::close : Next::wait;  // drained: end politely
    }

  private:
    // 16 hex digits of sequence number: catches lost, duplicated or reordered echoes.
    static void write_seq(std::uint8_t* at, std::uint64_t seq) {
        static constexpr char hex[] = "0123456789abcdef";
        for (int i = 15; i >= 0; --i, seq >>= 4)
            at[i] = static_cast<std::uint8_t>(hex[seq & 15]);
    }

    bool matches(Opcode op, std::span<const std::uint8_t> data) const {
        if (op != op_ || data.size() != payload_.size()) return false;
        if (seq_bytes_) {
            std::uint8_t expected[16];
            write_seq(expected, expected_seq_);
            if (std::memcmp(expected, data.data(), 16) != 0) return false;
        }
        return std::memcmp(data.data() + seq_bytes_, payload_.data() + seq_bytes_,
                           data.size() - seq_bytes_) == 0;
    }

    ClientStats& stats_;
    Shared& shared_;
    Opcode op_;
    std::vector<std::uint8_t> payload_;
    std::size_t seq_bytes_ = 0;
    std::vector<Clock::time_point> sent_at_;  // ring indexed by sequence number
    std::uint64_t next_seq_ = 0;
    std::uint64_t expected_seq_ = 0;
};

/// How long connections get to drain and close after the window before the
/// rest are dropped.
constexpr auto drain_limit = std::chrono::seconds(5);

// ------------------------------------------------------- raw socket drivers --

/// One connection the epoll or io_uring driver took over from Asio.
struct RawConnection {
    int fd;
    FrameReader reader;
    EchoState echo;
    FastRng rng;
    std::vector<std::uint8_t> out{};  // frames queued for the next send
    bool close_sent = false;
    bool close_received = false;
    bool done = false;
};

/// What the epoll and io_uring drivers share: the connections taken from Asio,
/// the echo protocol on the bytes they read, queueing replies, ending a
/// connection, and the drain after the window. `Conn` is a RawConnection with
/// the driver's own send state.
template <class Conn>
class RawDriver {
  public:
    void reserve(std::size_t n) { conns_.reserve(n); }

  protected:
    RawDriver(const Config& config, ClientStats& stats, Shared& shared)
        : config_(config), stats_(stats), shared_(shared) {}
    ~RawDriver() {
        for (auto& c : conns_)
            if (!c.done) ::close(c.fd);
    }

    /// Takes over a socket; false (and counted as closed) if Asio could not let it go.
    bool take(LoadConnection::Detached detached) {
        if (detached.fd < 0) {
            shared_.report("connection lost", "could not take the socket from Asio");
            shared_.closed.fetch_add(1);
            return false;
        }
        conns_.push_back(Conn{{detached.fd, std::move(detached.reader),
                               EchoState(config_, stats_, shared_), FastRng(random_seed())}});
        return true;
    }

    void queue_first_messages(Conn& c) {
        for (int i = 0; i < config_.pipeline; ++i)
            queue(c, c.echo.opcode(), c.echo.next_message());
    }

    /// Hands `n` bytes that arrived to the frame reader; echoes queue their
    /// replies in c.out. False once the connection has ended.
    bool received(Conn& c, std::size_t n) {
        c.reader.commit(n);
        Sink sink{*this, c};
        if (const char* error = c.reader.drain(sink)) finish(c, error);
        return !c.done;
    }

    /// The loop's condition: connections are still open and, after the
    /// window, the drain limit has not passed.
    bool running() {
        if (closed_ == conns_.size()) return false;
        if (shared_.phase.load(std::memory_order_relaxed) != Phase::stop) return true;
        if (!give_up_) give_up_ = Clock::now() + drain_limit;
        return Clock::now() <= *give_up_;
    }

    void finish_all() {
        if (closed_ < conns_.size())
            shared_.report("connections still open after the drain limit", "dropped");
        for (auto& c : conns_)
            finish(c, nullptr);
    }

    void finish(Conn& c, const char* error) {
        if (c.done) return;
        c.done = true;
        // Ends pending operations too (their completions are ignored); close()
        // also takes the socket out of an epoll set.
        ::shutdown(c.fd, SHUT_RDWR);
        ::close(c.fd);
        ++closed_;
        shared_.closed.fetch_add(1);
        if (error && shared_.phase.load() != Phase::stop) shared_.report("connection lost", error);
    }

    void finish_read_error(Conn& c, int error) {
        if (error == 0)
            finish(c, c.close_sent && c.close_received ? nullptr : "server closed the connection");
        else
            finish(c, std::strerror(error));
    }

    std::size_t index(const Conn& c) const { return static_cast<std::size_t>(&c - conns_.data()); }

    const Config& config_;
    ClientStats& stats_;
    Shared& shared_;
    std::vector<Conn> conns_;  // reserved up front: epoll data and user_data hold indexes

  private:
    struct Sink {
        RawDriver& d;
        Conn& c;
        bool stopped() const { return c.done; }
        void on_message(Opcode op, std::span<const std::uint8_t> data) {
            if (c.close_sent) return;  // the server may still be echoing
            switch (c.echo.on_echo(op, data)) {
                case EchoState::Next::send:
                    return d.queue(c, c.echo.opcode(), c.echo.next_message());
                case EchoState::Next::close:
                    return d.queue_close(c, {});
                case EchoState::Next::fail:
                    return d.finish(c, "echo mismatch");
                case EchoState::Next::wait:
                    return;
            }
        }
        void on_ping(std::span<const std::uint8_t> payload) {
            if (!c.close_sent) d.queue(c, Opcode::pong, payload);
        }
        void on_close(std::span<const std::uint8_t> payload) {
            c.close_received = true;
            if (!c.close_sent)
                d.queue_close(c, payload.first(std::min<std::size_t>(2, payload.size())));
        }
    };

    void queue(Conn& c, Opcode op, std::span<const std::uint8_t> payload) {
        append_masked(c.out, c.rng, op, payload);
    }

    void queue_close(Conn& c, std::span<const std::uint8_t> body) {
        static constexpr std::array<std::uint8_t, 2> normal{0x03, 0xE8};  // 1000
        queue(c, Opcode::close, body.empty() ? std::span<const std::uint8_t>(normal) : body);
        c.close_sent = true;
    }

    std::size_t closed_ = 0;
    std::optional<Clock::time_point> give_up_;
};

// ----------------------------------------------------------- epoll driver --

struct EpollConnection : RawConnection {
    std::size_t out_sent = 0;  // bytes of `out` the kernel has taken
    bool want_write = false;   // EPOLLOUT armed
};

/// The default driver: Asio only opens the connections; then each client thread
/// runs its own level-triggered epoll loop over the raw sockets. Per round trip
/// that is one send() and one recv() (plus a share of epoll_wait). Asio's
/// reactor adds a third system call per message — a speculative recv() that
/// fails with EAGAIN, or an epoll_ctl() for async_wait — and on a 2-core machine
/// every microsecond the load generator spends is taken from the server.
class EpollDriver : public RawDriver<EpollConnection> {
  public:
    EpollDriver(const Config& config, ClientStats& stats, Shared& shared)
        : RawDriver(config, stats, shared), epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {}
    ~EpollDriver() { ::close(epoll_fd_); }

    void adopt(LoadConnection::Detached detached) {
        if (!take(std::move(detached))) return;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = conns_.size() - 1;
        epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, conns_.back().fd, &ev);
    }

    void run() {
        for (auto& c : conns_) {
            queue_first_messages(c);
            flush(c);
        }
        // Busy polling never lets this thread's CPU halt, so the server's
        // replies need no wake-up (see --poll).
        const int timeout_ms = config_.busy_poll ? 0 : 50;
        std::array<epoll_event, 256> events{};
        while (running()) {
            const int n =
                epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
            for (int i = 0; i < n; ++i) {
                auto& c = conns_[events[static_cast<std::size_t>(i)].data.u64];
                const auto what = events[static_cast<std::size_t>(i)].events;
                if (!c.done && (what & (EPOLLIN | EPOLLHUP | EPOLLERR))) read(c);
                if (!c.done && (what & EPOLLOUT)) flush(c);
            }
        }
        finish_all();
    }

  private:
    void read(EpollConnection& c) {
        const auto space = c.reader.space();
        const ssize_t n = ::recv(c.fd, space.data(), space.size(), MSG_DONTWAIT);
        if (n > 0) {
            // Replies queued while draining leave in one send().
            if (received(c, static_cast<std::size_t>(n))) flush(c);
        } else if (n == 0) {
            finish_read_error(c, 0);
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            finish_read_error(c, errno);
        }
    }

    void flush(EpollConnection& c) {
        if (!flush_epoll(epoll_fd_, c.fd, index(c), c.out, c.out_sent, c.want_write))
            finish(c, std::strerror(errno));
    }

    int epoll_fd_;
};

// ------------------------------------------------------------ Asio driver --

/// --driver asio: the same echo loop on LoadConnection, all in Asio. Kept to show
/// what Asio's per-message system calls cost (compare the client CPU lines).
class AsioEchoSession : public std::enable_shared_from_this<AsioEchoSession> {
  public:
    AsioEchoSession(std::shared_ptr<LoadConnection> connection, EchoState echo, Shared& shared,
                    std::size_t& closed_here)
        : connection_(std::move(connection)),
          echo_(std::move(echo)),
          shared_(shared),
          closed_here_(closed_here) {}

    void start(int pipeline) {
        connection_->on_message([this](Opcode op, std::span<const std::uint8_t> data) {
            switch (echo_.on_echo(op, data)) {
                case EchoState::Next::send:
                    return connection_->send(echo_.opcode(), echo_.next_message());
                case EchoState::Next::close:
                    return connection_->close(1000);
                case EchoState::Next::fail:
                    return connection_->abort();
                case EchoState::Next::wait:
                    return;
            }
        });
        connection_->on_closed(
            [self = shared_from_this()](std::error_code ec, std::string_view why) {
                if (ec && self->shared_.phase.load() != Phase::stop)
                    self->shared_.report("connection lost", why);
                ++self->closed_here_;
                self->shared_.closed.fetch_add(1);
            });
        for (int i = 0; i < pipeline; ++i)
            connection_->send(echo_.opcode(), echo_.next_message());
    }

    void abort() { connection_->abort(); }

  private:
    std::shared_ptr<LoadConnection> connection_;
    EchoState echo_;
    Shared& shared_;
    std::size_t& closed_here_;
};

#if defined(PLUME_BENCH_URING)
// ---------------------------------------------------------- io_uring driver --

struct UringConnection : RawConnection {
    std::vector<std::uint8_t> sending{};  // the frames of the send in flight
    std::size_t sent = 0;
    bool send_pending = false;
};

/// --driver uring: the epoll driver's echo loop on io_uring. Every connection
/// keeps one recv armed; replies go out as send operations; one
/// io_uring_enter() per loop submits and reaps them for all connections, so
/// the load generator makes a fraction of a system call per round trip
/// instead of two.
class UringDriver : public RawDriver<UringConnection> {
  public:
    UringDriver(const Config& config, ClientStats& stats, Shared& shared)
        : RawDriver(config, stats, shared) {}
    ~UringDriver() {
        if (ring_ready_) io_uring_queue_exit(&ring_);
    }

    void adopt(LoadConnection::Detached detached) { take(std::move(detached)); }

    void run() {
        const auto entries = std::bit_ceil(static_cast<unsigned>(2 * conns_.size() + 8));
        if (io_uring_queue_init(entries, &ring_, 0) < 0) {
            shared_.report("io_uring_queue_init failed", std::strerror(errno));
            finish_all();
            return;
        }
        ring_ready_ = true;
        for (auto& c : conns_) {
            queue_first_messages(c);
            start_send(c);
            start_recv(c);
        }
        while (running()) {
            if (config_.busy_poll) {
                // Enters the kernel without waiting: completions are posted
                // by task work that runs on the way back.
                io_uring_submit_and_get_events(&ring_);
            } else {
                __kernel_timespec wait{0, 50'000'000};
                io_uring_cqe* cqe = nullptr;
                io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &wait, nullptr);
            }
            unsigned head = 0;
            unsigned seen = 0;
            io_uring_cqe* cqe = nullptr;
            io_uring_for_each_cqe(&ring_, head, cqe) {
                ++seen;
                on_completion(cqe->user_data, cqe->res);
            }
            io_uring_cq_advance(&ring_, seen);
        }
        finish_all();
    }

  private:
    // user_data: connection index * 2, plus 1 for a send.
    io_uring_sqe* sqe() {
        io_uring_sqe* e = io_uring_get_sqe(&ring_);
        if (!e) {
            io_uring_submit(&ring_);
            e = io_uring_get_sqe(&ring_);
        }
        return e;
    }

    void start_recv(UringConnection& c) {
        const auto space = c.reader.space();
        io_uring_sqe* e = sqe();
        io_uring_prep_recv(e, c.fd, space.data(), space.size(), 0);
        io_uring_sqe_set_data64(e, index(c) * 2);
    }

    void start_send(UringConnection& c) {
        if (c.send_pending || c.done) return;
        if (c.sent == c.sending.size()) {
            if (c.out.empty()) return;
            c.sending.swap(c.out);
            c.out.clear();
            c.sent = 0;
        }
        io_uring_sqe* e = sqe();
        io_uring_prep_send(e, c.fd, c.sending.data() + c.sent, c.sending.size() - c.sent,
                           MSG_NOSIGNAL);
        io_uring_sqe_set_data64(e, index(c) * 2 + 1);
        c.send_pending = true;
    }

    void on_completion(std::uint64_t data, int res) {
        auto& c = conns_[data / 2];
        if (data % 2 == 1) {
            c.send_pending = false;
            if (c.done) return;
            if (res < 0) return finish(c, std::strerror(-res));
            c.sent += static_cast<std::size_t>(res);
            return start_send(c);
        }
        if (c.done) return;
        if (res <= 0) return finish_read_error(c, -res);
        if (!received(c, static_cast<std::size_t>(res))) return;
        start_send(c);
        start_recv(c);
    }

    io_uring ring_{};
    bool ring_ready_ = false;
};
#endif

// --------------------------------------------------------- client thread --

/// Hands the opened connections over to a raw-socket driver and runs it.
template <class Driver>
void drive(asio::io_context& io, std::vector<std::shared_ptr<LoadConnection>>& connections,
           const Config& config, ClientStats& stats, Shared& shared) {
    Driver driver(config, stats, shared);
    driver.reserve(connections.size());
    for (auto& c : connections)
        driver.adopt(c->detach());
    io.restart();
    io.run();  // the detached sockets' cancelled reads complete here
    connections.clear();
    driver.run();
}

/// One load-generating thread: opens its share of the connections with Asio,
/// reports ready, waits for the go, then drives them until they have drained
/// after the window (or drain_limit passes).
void client_thread(const Config& config, const asio::ip::tcp::endpoint& server, const WsUrl& url,
                   int count, Shared& shared, ClientStats& stats) {
    asio::io_context io{1};  // one thread per context: Asio may skip its locking
    LoadConnection::Options options;
    options.host_header = url.host + ":" + std::to_string(url.port);
    options.path = url.path;
    options.read_buffer = std::max<std::size_t>(4096, 2 * (config.size + 14));
    std::vector<std::shared_ptr<LoadConnection>> connections;
    int settled = 0;
    for (int i = 0; i < count; ++i) {
        auto connection = LoadConnection::create(io, options, random_seed());
        connection->async_open(server, std::nullopt, [&](std::error_code ec, std::string_view why) {
            ++settled;
            if (!ec) return void(shared.opened.fetch_add(1));
            shared.open_failures.fetch_add(1);
            shared.report(("open failed: " + ec.message()).c_str(), why);
        });
        connections.push_back(std::move(connection));
    }
    const auto open_deadline = Clock::now() + std::chrono::seconds(15);
    while (settled < count && Clock::now() < open_deadline && !io.stopped())
        io.run_one_for(std::chrono::milliseconds(50));
    shared.threads_ready.fetch_add(1);
    while (!shared.go.load())
        std::this_thread::sleep_for(std::chrono::milliseconds(1));

    if (shared.abandon.load()) {
        for (auto& c : connections)
            c->abort();
        io.restart();
        io.run();
        return;
    }

#if defined(PLUME_BENCH_URING)
    if (config.driver == "uring") return drive<UringDriver>(io, connections, config, stats, shared);
#endif
    if (config.driver == "epoll") return drive<EpollDriver>(io, connections, config, stats, shared);

    std::size_t closed_here = 0;
    std::vector<std::shared_ptr<AsioEchoSession>> sessions;
    for (auto& c : connections)
        sessions.push_back(std::make_shared<AsioEchoSession>(c, EchoState(config, stats, shared),
                                                             shared, closed_here));
    connections.clear();
    for (auto& s : sessions)
        s->start(config.pipeline);
    io.restart();
    std::optional<Clock::time_point> give_up;
    while (closed_here < sessions.size() && !io.stopped()) {
        if (config.busy_poll)
            io.poll();
        else
            io.run_one_for(std::chrono::milliseconds(50));
        if (shared.phase.load(std::memory_order_relaxed) == Phase::stop) {
            if (!give_up) give_up = Clock::now() + drain_limit;
            if (Clock::now() > *give_up) break;
        }
    }
    if (closed_here < sessions.size())
        shared.report("connections still open after the drain limit", "dropped");
    for (auto& s : sessions)
        s->abort();
    io.restart();
    io.run();  // aborted operations complete; then no work is left
}

void print_usage() {
    std::fputs(
        "usage: echo_throughput (--server PATH [--path /] [-- SERVER ARGS...] |\n"
        "                        --url ws://HOST:PORT/)\n"
        "         [--connections 100] [--pipeline 1] [--size 64] [--text] [--seconds 10]\n"
        "         [--warmup 2] [--client-threads 1] [--server-threads 1] [--driver "
        "epoll|asio|uring]\n"
        "         [--poll busy|block] [--server-output]\n",
        stderr);
}

template <typename Predicate>
bool wait_until(Predicate done, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    while (!done()) {
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

/// The server's CPU seconds so far, or -1 when we did not spawn it (a plain
/// double: GCC 12 warns falsely about optional<double> in the arithmetic below).
double server_cpu(const ServerProcess& server) {
    if (server.pid() <= 0) return -1;
    return proc_cpu_seconds(server.pid()).value_or(-1);
}

int run(const Config& config) {
    raise_fd_limit();
    ServerProcess server;
    WsUrl url;
    if (!config.server.empty()) {
        std::vector<std::string> args{"--port", "0", "--threads",
                                      std::to_string(config.server_threads)};
        args.insert(args.end(), config.server_args.begin(), config.server_args.end());
        server.start(config.server, args, std::chrono::seconds(15), config.show_server_output);
        url.host = server.host().empty() ? "127.0.0.1" : server.host();
        url.port = server.port();
        url.path = config.path;
    } else {
        const auto parsed = parse_ws_url(config.url);
        if (!parsed) throw std::runtime_error("bad --url (want ws://IP:PORT/PATH): " + config.url);
        url = *parsed;
    }
    const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(url.host), url.port);

    Shared shared;
    const auto thread_count = static_cast<std::size_t>(config.client_threads);
    std::vector<ClientStats> stats(thread_count);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < thread_count; ++t) {
        // Connections split as evenly as they go.
        const int count = config.connections / config.client_threads +
                          (static_cast<int>(t) < config.connections % config.client_threads);
        threads.emplace_back(client_thread, std::cref(config), std::cref(endpoint), std::cref(url),
                             count, std::ref(shared), std::ref(stats[t]));
    }
    wait_until([&] { return shared.threads_ready.load() == config.client_threads; },
               std::chrono::seconds(30));
    if (shared.opened.load() != config.connections) {
        shared.abandon = true;
        shared.go = true;
        for (auto& t : threads)
            t.join();
        std::fprintf(stderr, "echo_throughput: only %d of %d connections opened\n",
                     shared.opened.load(), config.connections);
        std::fprintf(stderr, "server: %s\n", server.stop(std::chrono::seconds(5)).c_str());
        return 1;
    }

    shared.go = true;
    std::this_thread::sleep_for(std::chrono::duration<double>(config.warmup));
    const double server_cpu_before = server_cpu(server);
    const double client_cpu_before = self_cpu_seconds();
    const MachineCpu machine_before = machine_cpu();
    const auto window_start = Clock::now();
    shared.phase = Phase::measure;
    std::this_thread::sleep_for(std::chrono::duration<double>(config.seconds));
    shared.phase = Phase::stop;
    const auto window_end = Clock::now();
    const double client_cpu = self_cpu_seconds() - client_cpu_before;
    const double server_cpu_after = server_cpu(server);
    const MachineCpu machine_after = machine_cpu();

    for (auto& t : threads)
        t.join();  // each ends within drain_limit
    const bool closed_cleanly = !shared.first_error_reported && shared.closed == config.connections;
    const std::string server_end =
        server.pid() > 0 ? server.stop(std::chrono::seconds(5)) : std::string("not spawned");

    LatencyHistogram histogram;
    std::uint64_t measured = 0, mismatches = 0;
    for (const auto& s : stats) {
        histogram.merge(s.histogram);
        measured += s.measured;
        mismatches += s.mismatches;
    }
    const double window = std::chrono::duration<double>(window_end - window_start).count();
    const double rate = static_cast<double>(measured) / window;
    const auto us = [&](double q) { return static_cast<double>(histogram.quantile(q)) / 1000.0; };
    const std::string server_threads =
        config.server.empty() ? "" : ", server --threads " + std::to_string(config.server_threads);

    std::printf("echo_throughput\n");
    std::printf("  server             %s\n",
                config.server.empty() ? config.url.c_str() : config.server.c_str());
    std::printf("  url                ws://%s:%u%s\n", url.host.c_str(), unsigned{url.port},
                url.path.c_str());
    std::printf("  connections        %d (pipeline %d each; %d client thread%s, %s driver, %s%s)\n",
                config.connections, config.pipeline, config.client_threads,
                config.client_threads == 1 ? "" : "s", config.driver.c_str(),
                config.busy_poll ? "busy polling" : "blocking waits", server_threads.c_str());
    std::printf("  message            %zu bytes %s\n", config.size,
                config.text ? "text" : "binary");
    std::printf("  duration           %.2f s measured after %.1f s warmup\n", window,
                config.warmup);
    std::printf("  round trips        %" PRIu64 "\n", measured);
    std::printf("  round trips/s      %.0f\n", rate);
    std::printf("  latency us         p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
                us(0.50), us(0.90), us(0.99), us(0.999),
                static_cast<double>(histogram.max()) / 1000.0);
    // CPU per round trip stays meaningful when other processes share the cores,
    // where round trips/s alone would just drop.
    const double per_rt = measured ? 1e6 / static_cast<double>(measured) : 0;
    if (server_cpu_before >= 0 && server_cpu_after >= 0) {
        const double used = server_cpu_after - server_cpu_before;
        std::printf(
            "  server CPU         %.2f s in window (%.0f%% of one core, %.2f us per round "
            "trip)\n",
            used, 100.0 * used / window, used * per_rt);
    }
    std::printf(
        "  client CPU         %.2f s in window (%.0f%% of one core, %.2f us per round "
        "trip)\n",
        client_cpu, 100.0 * client_cpu / window, client_cpu * per_rt);
    if (server_cpu_before >= 0 && server_cpu_after >= 0) {
        // Whatever else ran took CPU from this run: its rate is then a lower bound.
        const double ours = client_cpu + server_cpu_after - server_cpu_before;
        const double others = machine_after.busy - machine_before.busy - ours;
        std::printf(
            "  other load         %.0f%% of one core by other processes, %.0f%% stolen by "
            "the hypervisor\n",
            std::max(0.0, 100.0 * others / window),
            100.0 * (machine_after.steal - machine_before.steal) / window);
    }
    std::printf("  echo mismatches    %" PRIu64 "\n", mismatches);
    std::printf("  clean close        %s\n", closed_cleanly ? "yes" : "no");
    std::printf("  server stop        %s\n", server_end.c_str());
    const bool met = rate >= 100000 && us(0.99) < 2000;
    std::printf("  target             >= 100000 rt/s and p99 < 2000 us: %s\n",
                met ? "met" : "NOT met");
    return mismatches == 0 && closed_cleanly ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        CliArgs args(argc, argv, {"text", "server-output", "help"});
        if (args.flag("help")) return print_usage(), 0;
        Config config;
        config.server = args.get("server", "");
        config.server_args = args.passthrough();
        config.url = args.get("url", "");
        config.path = args.get("path", config.path);
        config.driver = args.get("driver", "epoll");
        config.connections = static_cast<int>(args.number("connections", 100));
        config.pipeline = static_cast<int>(args.number("pipeline", 1));
        config.size = static_cast<std::size_t>(args.number("size", 64));
        config.text = args.flag("text");
        config.seconds = args.number("seconds", 10);
        config.warmup = args.number("warmup", 2);
        config.client_threads = static_cast<int>(args.number("client-threads", 1));
        config.server_threads = static_cast<int>(args.number("server-threads", 1));
        config.show_server_output = args.flag("server-output");
        // Spinning threads only help while every thread has a core of its own.
        const auto cores = std::max(1u, std::thread::hardware_concurrency());
        const bool fits =
            static_cast<unsigned>(config.client_threads + config.server_threads) <= cores;
        const std::string poll = args.get("poll", fits ? "busy" : "block");
        if (poll != "busy" && poll != "block") throw std::runtime_error("--poll is busy or block");
        config.busy_poll = poll == "busy";
        args.finish();
        if (!config.path.starts_with('/')) throw std::runtime_error("--path must start with /");
        if (config.server.empty() == config.url.empty()) {
            print_usage();
            return 2;
        }
        if (config.driver != "epoll" && config.driver != "asio" && config.driver != "uring")
            throw std::runtime_error("--driver is epoll, asio or uring");
#if !defined(PLUME_BENCH_URING)
        if (config.driver == "uring")
            throw std::runtime_error("--driver uring: built without liburing (liburing-dev)");
#endif
        if (config.connections < 1 || config.pipeline < 1 || config.client_threads < 1 ||
            config.client_threads > config.connections || config.seconds <= 0 || config.warmup < 0)
            throw std::runtime_error("counts must be positive (and threads <= connections)");
        return run(config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_throughput: %s\n", e.what());
        return 1;
    }
}
