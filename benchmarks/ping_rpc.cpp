// ping_rpc — request/reply over Phoenix Channels: how many `ping` pushes per
// second the chat answers, and how fast.
//
// Spawns examples/chat (--port 0 --threads N --no-presence --no-rate-limits,
// plus any arguments after `--`), opens --connections Phoenix V2 sockets
// (?vsn=2.0.0&user_id=pK), joins each to room:lobby, then every socket keeps
// one push in flight: ["1",REF,"room:lobby","ping",{"seq":REF}], answered by
// the chat's RoomChannel with reply_ok(payload), i.e.
// ["1",REF,"room:lobby","phx_reply",{"response":{"seq":REF},"status":"ok"}].
// Each reply is checked (ref, status, echoed payload) and its round trip goes
// into a histogram; only replies received in the --seconds window after
// --warmup count. Prints replies/s, p50/p90/p99/max latency and the server's
// CPU per reply (/proc/PID/stat). Asio opens the sockets; one client thread
// drives them with a level-triggered epoll loop (busy polling when the client
// and server threads fit the cores, as echo_throughput does). Bounded in time;
// the server is stopped by its PID.
//
// --compare-metrics N runs it 2N times, the chat's metrics on and off
// (--no-metrics) alternately, and prints the medians and what metrics cost.
//
//   ping_rpc                                         # 100 sockets, 10 s
//   ping_rpc --compare-metrics 5                     # metrics on vs off
//   ping_rpc --server build/reference/uws_phoenix --server-threads 2
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/bench_support.hpp"
#include "support/ws_load_client.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace plume_bench;

constexpr std::string_view join_frame = R"(["1","1","room:lobby","phx_join",{}])";
constexpr std::string_view join_reply_prefix = R"(["1","1","room:lobby","phx_reply",)";

enum class Phase { warmup, measure, stop };

struct Config {
    std::string server = "build/release/examples/chat/chat";
    std::vector<std::string> server_args;
    int connections = 100;
    double seconds = 10;
    double warmup = 2;
    int server_threads = 1;
    bool busy_poll = true;
    bool show_server_output = false;
};

struct Shared {
    std::atomic<Phase> phase{Phase::warmup};
    std::atomic<int> opened{0};
    std::atomic<int> joined{0};
    std::atomic<bool> ready{false};  // every socket joined: pings start
    std::atomic<bool> failed{false};
    std::atomic<bool> first_error_reported{false};

    void report(const std::string& what) {
        if (!first_error_reported.exchange(true))
            std::fprintf(stderr, "ping_rpc: %s\n", what.c_str());
    }
};

struct Stats {
    LatencyHistogram latency;
    std::uint64_t measured = 0;
    std::uint64_t mismatches = 0;
    int closed = 0;
};

std::span<const std::uint8_t> bytes_of(std::string_view text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

/// The sockets after the upgrade: joins them, then keeps one ping each in flight.
class PingDriver {
  public:
    PingDriver(const Config& config, Shared& shared, Stats& stats)
        : config_(config),
          shared_(shared),
          stats_(stats),
          epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {}
    ~PingDriver() {
        for (auto& c : conns_)
            if (!c.done) ::close(c.fd);
        ::close(epoll_fd_);
    }

    void reserve(std::size_t n) { conns_.reserve(n); }

    bool adopt(LoadConnection::Detached detached) {
        if (detached.fd < 0) return false;
        conns_.push_back(Conn{detached.fd, std::move(detached.reader), FastRng(random_seed())});
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = conns_.size() - 1;
        epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, detached.fd, &ev);
        return true;
    }

    void run() {
        for (auto& c : conns_)
            send(c, bytes_of(join_frame));
        const int timeout_ms = config_.busy_poll ? 0 : 20;
        std::array<epoll_event, 256> events{};
        bool pinging = false;
        std::optional<Clock::time_point> give_up;
        const auto join_deadline = Clock::now() + std::chrono::seconds(30);
        while (closed_ < conns_.size()) {
            const int n =
                epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
            for (int i = 0; i < n; ++i) {
                const auto& e = events[static_cast<std::size_t>(i)];
                Conn& c = conns_[e.data.u64];
                if (!c.done && (e.events & (EPOLLIN | EPOLLHUP | EPOLLERR))) read(c);
                if (!c.done && (e.events & EPOLLOUT)) flush(c);
            }
            if (!pinging && joined_ == conns_.size()) {
                pinging = true;
                shared_.ready = true;
                for (auto& c : conns_)
                    if (!c.done) ping(c);
            }
            if (!pinging && Clock::now() > join_deadline) {
                shared_.report("not every socket joined within 30 s");
                shared_.failed = true;
                break;
            }
            if (shared_.failed.load(std::memory_order_relaxed)) break;
            if (shared_.phase.load(std::memory_order_relaxed) == Phase::stop) {
                if (!give_up) {
                    give_up = Clock::now() + std::chrono::seconds(5);
                    for (auto& c : conns_)
                        if (!c.done && !c.in_flight) close_politely(c);
                }
                if (Clock::now() > *give_up) break;
            }
        }
        if (closed_ < conns_.size() && shared_.phase.load() == Phase::stop)
            shared_.report("connections still open 5 s after the window; dropped");
        for (auto& c : conns_)
            finish(c, nullptr);
        stats_.closed = static_cast<int>(clean_closes_);
    }

  private:
    struct Conn {
        int fd;
        FrameReader reader;
        FastRng rng;
        std::vector<std::uint8_t> out{};
        std::size_t out_sent = 0;
        std::uint64_t ref = 1;  // the join's; pings count on from 2
        Clock::time_point sent_at{};
        bool joined = false;
        bool in_flight = false;
        bool want_write = false;
        bool close_sent = false;
        bool done = false;
    };

    struct Sink {
        PingDriver& d;
        Conn& c;
        bool stopped() const { return c.done; }
        void on_message(Opcode op, std::span<const std::uint8_t> data) {
            const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
            if (op != Opcode::text || c.close_sent) return;
            if (!c.joined) {
                if (!text.starts_with(join_reply_prefix) ||
                    text.find(R"("status":"ok")") == std::string_view::npos) {
                    d.shared_.report("join refused: " + std::string(text.substr(0, 200)));
                    d.shared_.failed = true;
                    return;
                }
                c.joined = true;
                ++d.joined_;
                d.shared_.joined.fetch_add(1);
                return;
            }
            d.on_reply(c, text);
        }
        void on_ping(std::span<const std::uint8_t> payload) {
            if (!c.close_sent) append_masked(c.out, c.rng, Opcode::pong, payload);
        }
        void on_close(std::span<const std::uint8_t> payload) {
            if (!c.close_sent) {
                if (d.shared_.phase.load() != Phase::stop)
                    d.shared_.report("the server closed a socket");
                append_masked(c.out, c.rng, Opcode::close,
                              payload.first(std::min<std::size_t>(2, payload.size())));
                c.close_sent = true;
            } else {
                ++d.clean_closes_;
            }
        }
    };

    void on_reply(Conn& c, std::string_view text) {
        const auto now = Clock::now();
        // ["1","REF","room:lobby","phx_reply",{"response":{"seq":REF},"status":"ok"}]
        char expected[160];
        const int len = std::snprintf(expected, sizeof expected,
                                      R"(["1","%)" PRIu64
                                      R"(","room:lobby","phx_reply",{"response":{"seq":%)" PRIu64
                                      R"(},"status":"ok"}])",
                                      c.ref, c.ref);
        if (!c.in_flight || text != std::string_view(expected, static_cast<std::size_t>(len))) {
            ++stats_.mismatches;
            shared_.report("unexpected frame: " + std::string(text.substr(0, 200)));
            return;
        }
        c.in_flight = false;
        if (shared_.phase.load(std::memory_order_relaxed) == Phase::measure) {
            stats_.latency.record(static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.sent_at).count()));
            ++stats_.measured;
        }
        if (shared_.phase.load(std::memory_order_relaxed) == Phase::stop)
            close_politely(c);
        else
            ping(c);
    }

    void ping(Conn& c) {
        ++c.ref;
        char frame[128];
        const int len = std::snprintf(
            frame, sizeof frame,
            R"(["1","%)" PRIu64 R"(","room:lobby","ping",{"seq":%)" PRIu64 R"(}])", c.ref, c.ref);
        c.in_flight = true;
        c.sent_at = Clock::now();
        send(c, bytes_of(std::string_view(frame, static_cast<std::size_t>(len))));
    }

    void close_politely(Conn& c) {
        if (c.close_sent) return;
        static constexpr std::array<std::uint8_t, 2> normal{0x03, 0xE8};  // 1000
        c.close_sent = true;
        send(c, normal, Opcode::close);
    }

    void send(Conn& c, std::span<const std::uint8_t> payload, Opcode op = Opcode::text) {
        append_masked(c.out, c.rng, op, payload);
        flush(c);
    }

    void read(Conn& c) {
        const auto space = c.reader.space();
        const ssize_t n = ::recv(c.fd, space.data(), space.size(), MSG_DONTWAIT);
        if (n > 0) {
            c.reader.commit(static_cast<std::size_t>(n));
            Sink sink{*this, c};
            if (const char* error = c.reader.drain(sink)) return finish(c, error);
            if (!c.out.empty()) flush(c);
        } else if (n == 0) {
            finish(c, c.close_sent ? nullptr : "server closed the connection");
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            finish(c, std::strerror(errno));
        }
    }

    void flush(Conn& c) {
        if (!flush_epoll(epoll_fd_, c.fd, static_cast<std::uint64_t>(&c - conns_.data()), c.out,
                         c.out_sent, c.want_write))
            finish(c, std::strerror(errno));
    }

    void finish(Conn& c, const char* error) {
        if (c.done) return;
        c.done = true;
        ::close(c.fd);
        ++closed_;
        if (error && shared_.phase.load() != Phase::stop)
            shared_.report(std::string("connection lost: ") + error);
    }

    const Config& config_;
    Shared& shared_;
    Stats& stats_;
    int epoll_fd_;
    std::vector<Conn> conns_;  // reserved up front: epoll data holds indexes
    std::size_t closed_ = 0;
    std::size_t joined_ = 0;
    std::size_t clean_closes_ = 0;
};

void client_thread(const Config& config, const asio::ip::tcp::endpoint& server,
                   const std::string& host_header, Shared& shared, Stats& stats) {
    asio::io_context io{1};
    std::vector<std::shared_ptr<LoadConnection>> connections;
    int settled = 0;
    for (int i = 0; i < config.connections; ++i) {
        LoadConnection::Options options;
        options.host_header = host_header;
        options.path = "/socket/websocket?vsn=2.0.0&user_id=p" + std::to_string(i);
        auto connection = LoadConnection::create(io, options, random_seed());
        connection->async_open(server, std::nullopt, [&](std::error_code ec, std::string_view why) {
            ++settled;
            if (!ec) return void(shared.opened.fetch_add(1));
            shared.report("open failed: " + ec.message() + " (" + std::string(why) + ")");
        });
        connections.push_back(std::move(connection));
    }
    const auto deadline = Clock::now() + std::chrono::seconds(15);
    while (settled < config.connections && Clock::now() < deadline)
        io.run_one_for(std::chrono::milliseconds(50));

    PingDriver driver(config, shared, stats);
    driver.reserve(connections.size());
    for (auto& c : connections)
        if (c->is_open() && !driver.adopt(c->detach())) shared.report("could not take a socket");
    for (auto& c : connections)
        c->abort();
    io.restart();
    io.run();
    connections.clear();
    if (shared.opened != config.connections) {
        shared.failed = true;
        return;
    }
    driver.run();
}

template <typename Predicate>
bool wait_until(Predicate done, double seconds) {
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(static_cast<long>(seconds * 1000));
    while (!done()) {
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
}

void print_usage() {
    std::fputs(
        "usage: ping_rpc [--server build/release/examples/chat/chat] [--connections 100]\n"
        "         [--seconds 10] [--warmup 2] [--server-threads 1] [--poll busy|block]\n"
        "         [--server-output] [--compare-metrics RUNS] [-- SERVER ARGS...]\n",
        stderr);
}

// One measurement; its main figures in `figures` when given.
int run(const Config& config, RunFigures* figures = nullptr) {
    require_fd_limit(config.connections);
    ServerProcess server;
    std::vector<std::string> args{"--port",        "0",
                                  "--threads",     std::to_string(config.server_threads),
                                  "--no-presence", "--no-rate-limits"};
    args.insert(args.end(), config.server_args.begin(), config.server_args.end());
    server.start(config.server, args, std::chrono::seconds(15), config.show_server_output);
    const std::string host = server.host().empty() ? "127.0.0.1" : server.host();
    const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(host), server.port());
    const std::string host_header = host + ":" + std::to_string(server.port());
    const pid_t pid = server.pid();

    Shared shared;
    Stats stats;
    std::thread client(client_thread, std::cref(config), std::cref(endpoint),
                       std::cref(host_header), std::ref(shared), std::ref(stats));
    if (!wait_until([&] { return shared.ready.load() || shared.failed.load(); }, 50) ||
        !shared.ready) {
        shared.failed = true;
        shared.phase = Phase::stop;
        client.join();
        std::printf("ping_rpc\n  result             not measured: %d of %d opened, %d joined\n",
                    shared.opened.load(), config.connections, shared.joined.load());
        std::printf("  server stop        %s\n", server.stop(std::chrono::seconds(10)).c_str());
        return 1;
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(config.warmup));
    const double server_cpu_before = proc_cpu_seconds(pid).value_or(-1);
    const double client_cpu_before = self_cpu_seconds();
    const MachineCpu machine_before = machine_cpu();
    const auto window_start = Clock::now();
    shared.phase = Phase::measure;
    std::this_thread::sleep_for(std::chrono::duration<double>(config.seconds));
    shared.phase = Phase::stop;
    const auto window_end = Clock::now();
    const double server_cpu_used = proc_cpu_seconds(pid).value_or(-1) - server_cpu_before;
    const double client_cpu_used = self_cpu_seconds() - client_cpu_before;
    const MachineCpu machine_after = machine_cpu();
    client.join();
    const std::string server_end = server.stop(std::chrono::seconds(10));

    const double window = std::chrono::duration<double>(window_end - window_start).count();
    const double per_reply = stats.measured ? 1e6 / static_cast<double>(stats.measured) : 0;
    const auto us = [&](double q) {
        return static_cast<double>(stats.latency.quantile(q)) / 1000.0;
    };
    std::printf("ping_rpc\n");
    std::printf("  server             %s --threads %d\n", config.server.c_str(),
                config.server_threads);
    std::printf("  url                ws://%s/socket/websocket?vsn=2.0.0&user_id=pK\n",
                host_header.c_str());
    std::printf("  sockets            %d joined room:lobby, one ping in flight each (%s)\n",
                config.connections, config.busy_poll ? "busy polling" : "blocking waits");
    std::printf("  duration           %.2f s measured after %.1f s warmup\n", window,
                config.warmup);
    std::printf("  replies            %" PRIu64 "\n", stats.measured);
    std::printf("  replies/s          %.0f\n", static_cast<double>(stats.measured) / window);
    std::printf("  latency us         p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  (push to reply)\n",
                us(0.50), us(0.90), us(0.99), static_cast<double>(stats.latency.max()) / 1000.0);
    std::printf("  server CPU         %.2f s in window (%.0f%% of one core, %.2f us per reply)\n",
                server_cpu_used, 100.0 * server_cpu_used / window, server_cpu_used * per_reply);
    std::printf("  client CPU         %.2f s in window (%.0f%% of one core, %.2f us per reply)\n",
                client_cpu_used, 100.0 * client_cpu_used / window, client_cpu_used * per_reply);
    const double others =
        machine_after.busy - machine_before.busy - client_cpu_used - server_cpu_used;
    std::printf(
        "  other load         %.0f%% of one core by other processes, %.0f%% stolen by the "
        "hypervisor\n",
        std::max(0.0, 100.0 * others / window),
        100.0 * (machine_after.steal - machine_before.steal) / window);
    std::printf("  mismatches         %" PRIu64 "\n", stats.mismatches);
    const bool clean = stats.closed == config.connections && !shared.first_error_reported;
    std::printf("  clean close        %s\n", clean ? "yes" : "no");
    std::printf("  server stop        %s\n", server_end.c_str());
    if (figures)
        *figures = {{"replies/s", static_cast<double>(stats.measured) / window, "per second", true},
                    {"server CPU per reply", server_cpu_used * per_reply, "us", false},
                    {"latency p50", us(0.50), "us", false},
                    {"latency p99", us(0.99), "us", false}};
    return stats.mismatches == 0 && !shared.failed && clean ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        CliArgs args(argc, argv, {"server-output", "help"});
        if (args.flag("help")) return print_usage(), 0;
        Config config;
        config.server = args.get("server", config.server);
        config.server_args = args.passthrough();
        config.connections = static_cast<int>(args.number("connections", config.connections));
        config.seconds = args.number("seconds", config.seconds);
        config.warmup = args.number("warmup", config.warmup);
        config.server_threads = static_cast<int>(args.number("server-threads", 1));
        config.show_server_output = args.flag("server-output");
        // Spinning only helps while the client thread and the server's fit the cores.
        const auto cores = std::max(1u, std::thread::hardware_concurrency());
        const bool fits = static_cast<unsigned>(1 + config.server_threads) <= cores;
        const std::string poll = args.get("poll", fits ? "busy" : "block");
        if (poll != "busy" && poll != "block") throw std::runtime_error("--poll is busy or block");
        config.busy_poll = poll == "busy";
        const int compare = static_cast<int>(args.number("compare-metrics", 0));
        args.finish();
        if (config.connections < 1 || config.seconds <= 0 || config.warmup < 0 ||
            config.server_threads < 1 || compare < 0)
            throw std::runtime_error("counts must be positive");
        if (compare > 0) return compare_metrics("ping_rpc", compare, config, run);
        return run(config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ping_rpc: %s\n", e.what());
        return 1;
    }
}
