// cluster_fanout — one topic's broadcasts across a cluster of chat nodes
// sharing them through Redis (pubsub::Redis): throughput, and the latency a
// subscriber on the publisher's node sees against one on another node.
//
// Starts its own redis-server (Debian's, on PATH, or --redis-server PATH) on a
// free 127.0.0.1 port and --nodes chat processes (examples/chat, each
// `--port 0 --threads 1 --no-presence --no-rate-limits --history H --redis URL
// --node nK`; --history 0 by default: plain pub/sub; with --history N every
// broadcast goes through the history script in Redis),
// opens --subscribers Phoenix V2 JSON sockets spread evenly over the nodes
// (`?vsn=2.0.0&user_id=uK`, subscriber K on node K mod N), joins each to
// room:lobby and waits for every join reply. A join reply means the node
// already receives the topic from Redis; to be sure the cluster is meshed, a
// publisher joined on node 1 then pushes probe messages until a subscriber on
// every node has received one. Then the publisher pushes --messages new_msg,
// each body "SEQ NANOS xxx..." (sequence number, steady-clock send time,
// padded to --size bytes), at --rate per second on an absolute schedule
// (with --tick-ms T the timer waits at least T ms and the pushes due meanwhile
// leave together), or with --rate 0 as fast as the cluster delivers them: at
// most --window broadcasts not yet received by every subscriber. Every
// subscriber stamps each broadcast on receipt and checks its sequence.
//
// Prints broadcasts/s accepted by node 1 (its own broadcast coming back to the
// publisher), deliveries/s, publish-to-client latency p50/p99/max separately
// for node 1's subscribers (local) and the other nodes' (cross-node, through
// Redis), lost and out-of-order deliveries, the CPU seconds of each node, of
// redis-server and of this program (publisher and subscriber threads apart)
// over the fan-out, the other load on the machine, and Redis's own counters
// over the fan-out (PUBLISH calls, reads and writes processed, bytes in and out).
//
//   cluster_fanout                             # 3,000 subscribers, --rate 0 --window 8
//   cluster_fanout --rate 46                   # paced, e.g. at half of saturation
//   cluster_fanout --subscribers 30 --rate 0 --window 64 --messages 100000
//   cluster_fanout --subscribers 30 --rate 21700 --messages 100000 --tick-ms 1
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
#include <deque>
#include <exception>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/bench_support.hpp"
#include "support/redis_process.hpp"
#include "support/ws_load_client.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace plume_bench;

constexpr std::string_view join_frame = R"(["1","1","room:lobby","phx_join",{}])";
constexpr std::string_view join_reply_prefix = R"(["1","1","room:lobby","phx_reply",)";
// plume's V2 serializer writes compact JSON with sorted keys: "body" leads,
// on the publisher's node and on a node that decoded the Redis envelope alike.
constexpr std::string_view broadcast_prefix = R"([null,null,"room:lobby","new_msg",{"body":")";
constexpr std::string_view heartbeat_reply_marker = R"(,"phoenix","phx_reply",)";
constexpr std::string_view probe_word = "probe";

struct Config {
    std::string server = "build/release/examples/chat/chat";
    std::vector<std::string> server_args;
    std::string redis_server;
    int nodes = 3;
    int subscribers = 3000;
    int messages = 1000;
    double rate = 0;
    int window = 8;
    std::size_t size = 128;
    int client_threads = 1;
    int concurrency = 200;
    double open_timeout = 60;
    double join_timeout = 60;
    double mesh_timeout = 10;
    double timeout = 120;
    double heartbeat = 30;
    double tick_ms = 0;  // --rate R: the timer's shortest wait; pushes due within it go together
    int history = 0;     // --history N: the rooms keep N messages in Redis (0: plain pub/sub)
    bool show_server_output = false;
};

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

/// The body a push carries: "SEQ NANOS" (steady clock), padded to `size`.
std::string stamp_body(std::uint32_t seq, std::int64_t nanos, std::size_t size) {
    std::string body = std::to_string(seq) + ' ' + std::to_string(nanos);
    if (body.size() < size) body.append(size - body.size(), 'x');
    return body;
}

bool parse_stamp(std::string_view body, std::uint32_t& seq, std::int64_t& nanos) {
    const char* end = body.data() + body.size();
    auto r = std::from_chars(body.data(), end, seq);
    if (r.ec != std::errc{} || r.ptr == end || *r.ptr != ' ') return false;
    return std::from_chars(r.ptr + 1, end, nanos).ec == std::errc{};
}

/// utime + stime of one thread of this process (/proc/self/task/TID/stat;
/// /proc/TID/stat would give the whole process's), in seconds.
double task_cpu_seconds(pid_t tid) {
    std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto paren = all.rfind(')');
    if (paren == std::string::npos) return 0;
    std::istringstream fields(all.substr(paren + 2));
    std::string skip;
    for (int i = 3; i < 14; ++i)
        fields >> skip;  // state .. cmajflt
    unsigned long long utime = 0, stime = 0;
    fields >> utime >> stime;
    return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::span<const std::uint8_t> bytes_of(std::string_view text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

enum class Phase : int { open, join, run, close };

/// What the client threads, the publisher and main share.
struct Shared {
    explicit Shared(const Config& config)
        : per_seq(static_cast<std::size_t>(config.messages)),
          probe_seen(static_cast<std::size_t>(config.nodes)) {}

    std::atomic<Phase> phase{Phase::open};
    std::atomic<int> opened{0};
    std::atomic<int> open_failed{0};
    std::atomic<int> threads_running{0};
    std::atomic<int> joined{0};
    std::atomic<int> join_failed{0};
    std::atomic<int> lost_connections{0};
    std::atomic<std::uint64_t> delivered{0};
    std::atomic<std::uint32_t> completed{0};          // broadcasts every subscriber has received
    std::vector<std::atomic<std::uint32_t>> per_seq;  // subscribers that received seq
    std::vector<std::atomic<bool>> probe_seen;        // per node
    std::atomic<std::uint32_t> final_pushed{0};       // set before Phase::close
    std::function<void()> on_complete;                // a broadcast reached everyone
    std::atomic<bool> first_error_reported{false};

    void report(const std::string& what) {
        if (!first_error_reported.exchange(true))
            std::fprintf(stderr, "cluster_fanout: %s\n", what.c_str());
    }
};

/// Figures owned by one client thread; main reads them after join().
struct ThreadStats {
    LatencyHistogram local;  // subscribers on node 1, the publisher's
    LatencyHistogram cross;  // subscribers on the other nodes
    std::uint64_t delivered_local = 0;
    std::uint64_t delivered_cross = 0;
    std::uint64_t out_of_order = 0;
    std::uint64_t unexpected = 0;
    std::uint64_t lost = 0;  // pushed - received, summed over the thread's subscribers
    std::int64_t last_delivery_ns = 0;
    std::atomic<pid_t> tid{0};  // the client thread's, for its CPU figure
};

// ------------------------------------------------------------ subscribers --

/// One client thread's subscribers after the upgrade, driven by a
/// level-triggered epoll loop: joins them when told, stamps broadcasts, sends
/// heartbeats spread over --heartbeat seconds, and drops them at the end.
class Driver {
  public:
    Driver(const Config& config, Shared& shared, ThreadStats& stats)
        : config_(config),
          shared_(shared),
          stats_(stats),
          epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {}
    ~Driver() {
        for (auto& c : conns_)
            if (!c.done) ::close(c.fd);
        ::close(epoll_fd_);
    }

    void reserve(std::size_t n) { conns_.reserve(n); }

    void adopt(LoadConnection::Detached detached, int node) {
        if (detached.fd < 0) {
            shared_.report("could not take a socket from Asio");
            shared_.lost_connections.fetch_add(1);
            return;
        }
        conns_.push_back(
            Conn{detached.fd, std::move(detached.reader), FastRng(random_seed()), node});
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = conns_.size() - 1;
        epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, detached.fd, &ev);
    }

    void run() {
        std::array<epoll_event, 512> events{};
        auto last_tick = Clock::now();
        double heartbeat_credit = 0;
        std::size_t heartbeat_cursor = 0;
        bool joins_sent = false;
        while (shared_.phase.load(std::memory_order_relaxed) != Phase::close) {
            const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 20);
            for (int i = 0; i < n; ++i) {
                const auto& e = events[static_cast<std::size_t>(i)];
                Conn& c = conns_[e.data.u64];
                if (!c.done && (e.events & (EPOLLIN | EPOLLHUP | EPOLLERR))) read(c);
                if (!c.done && (e.events & EPOLLOUT)) flush(c);
            }
            if (!joins_sent && shared_.phase.load(std::memory_order_relaxed) != Phase::open) {
                joins_sent = true;
                for (auto& c : conns_)
                    if (!c.done) send(c, bytes_of(join_frame));
            }
            const auto now = Clock::now();
            heartbeat_credit += static_cast<double>(conns_.size()) *
                                std::chrono::duration<double>(now - last_tick).count() /
                                config_.heartbeat;
            last_tick = now;
            for (; heartbeat_credit >= 1 && !conns_.empty(); heartbeat_credit -= 1) {
                Conn& c = conns_[heartbeat_cursor++ % conns_.size()];
                if (c.done) continue;
                const std::string hb = R"([null,")" + std::to_string(++heartbeat_ref_) +
                                       R"(","phoenix","heartbeat",{}])";
                send(c, bytes_of(hb));
            }
        }
        const std::uint32_t pushed = shared_.final_pushed.load();
        for (auto& c : conns_)
            if (c.received < pushed) stats_.lost += pushed - c.received;
    }

  private:
    struct Conn {
        int fd;
        FrameReader reader;
        FastRng rng;
        int node;
        std::vector<std::uint8_t> out{};
        std::size_t out_sent = 0;
        std::uint32_t received = 0;
        std::uint32_t next_seq = 0;
        bool joined = false;
        bool want_write = false;
        bool done = false;
    };

    struct Sink {
        Driver& d;
        Conn& c;
        std::int64_t now;
        std::uint64_t& delivered;
        bool stopped() const { return c.done; }
        void on_message(Opcode op, std::span<const std::uint8_t> data) {
            const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
            if (op == Opcode::text && text.starts_with(broadcast_prefix)) {
                const auto body = text.substr(broadcast_prefix.size());
                if (body.starts_with(probe_word)) {
                    d.shared_.probe_seen[static_cast<std::size_t>(c.node)].store(true);
                    return;
                }
                std::uint32_t seq = 0;
                std::int64_t sent = 0;
                if (!parse_stamp(body, seq, sent) || seq >= d.shared_.per_seq.size())
                    return d.unexpected(text);
                if (seq != c.next_seq) ++d.stats_.out_of_order;
                c.next_seq = seq + 1;
                ++c.received;
                ++delivered;
                const auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - sent));
                if (c.node == 0) {
                    d.stats_.local.record(ns);
                    ++d.stats_.delivered_local;
                } else {
                    d.stats_.cross.record(ns);
                    ++d.stats_.delivered_cross;
                }
                d.stats_.last_delivery_ns = std::max(d.stats_.last_delivery_ns, now);
                const auto everyone = static_cast<std::uint32_t>(d.config_.subscribers);
                if (d.shared_.per_seq[seq].fetch_add(1, std::memory_order_relaxed) + 1 ==
                    everyone) {
                    d.shared_.completed.fetch_add(1);
                    if (d.shared_.on_complete) d.shared_.on_complete();
                }
            } else if (op == Opcode::text && text.starts_with(join_reply_prefix)) {
                if (std::exchange(c.joined, true)) return d.unexpected(text);
                if (text.find(R"("status":"ok")") != std::string_view::npos) {
                    d.shared_.joined.fetch_add(1);
                } else {
                    d.shared_.join_failed.fetch_add(1);
                    d.shared_.report("join refused: " + std::string(text));
                }
            } else if (op == Opcode::text && text.starts_with("[null,") &&
                       text.find(heartbeat_reply_marker) != std::string_view::npos) {
                // a heartbeat's answer
            } else {
                d.unexpected(text);
            }
        }
        void on_ping(std::span<const std::uint8_t> payload) {
            append_masked(c.out, c.rng, Opcode::pong, payload);
        }
        void on_close(std::span<const std::uint8_t> payload) {
            const int code = payload.size() >= 2 ? (payload[0] << 8 | payload[1]) : 1005;
            d.shared_.report("a node closed a subscriber: " + std::to_string(code));
            d.finish(c);
        }
    };

    void unexpected(std::string_view text) {
        ++stats_.unexpected;
        shared_.report("unexpected frame: " + std::string(text.substr(0, 200)));
    }

    void read(Conn& c) {
        const auto space = c.reader.space();
        const ssize_t n = ::recv(c.fd, space.data(), space.size(), MSG_DONTWAIT);
        if (n > 0) {
            c.reader.commit(static_cast<std::size_t>(n));
            std::uint64_t delivered = 0;
            Sink sink{*this, c, now_ns(), delivered};
            const char* error = c.reader.drain(sink);
            if (delivered) shared_.delivered.fetch_add(delivered, std::memory_order_relaxed);
            if (error) {
                shared_.report(std::string("protocol error: ") + error);
                return finish(c);
            }
            if (!c.done && !c.out.empty()) flush(c);
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            shared_.report("a node dropped a subscriber");
            finish(c);
        }
    }

    void send(Conn& c, std::span<const std::uint8_t> payload) {
        append_masked(c.out, c.rng, Opcode::text, payload);
        flush(c);
    }

    void flush(Conn& c) {
        if (!flush_epoll(epoll_fd_, c.fd, static_cast<std::uint64_t>(&c - conns_.data()), c.out,
                         c.out_sent, c.want_write)) {
            shared_.report(std::string("send failed: ") + std::strerror(errno));
            finish(c);
        }
    }

    // A subscriber the node closed or dropped during the run: counted as lost.
    void finish(Conn& c) {
        if (c.done) return;
        c.done = true;
        ::close(c.fd);
        shared_.lost_connections.fetch_add(1);
    }

    const Config& config_;
    Shared& shared_;
    ThreadStats& stats_;
    int epoll_fd_;
    std::vector<Conn> conns_;  // reserved up front: epoll data holds indexes
    std::uint64_t heartbeat_ref_ = 0;
};

/// One client thread: opens its subscribers with Asio (at most `concurrency`
/// handshakes at a time), then drives them with epoll until Phase::close.
void client_thread(const Config& config, const std::vector<asio::ip::tcp::endpoint>& nodes,
                   std::vector<int> indexes, Shared& shared, ThreadStats& stats) {
    asio::io_context io{1};
    struct Pending {
        std::shared_ptr<LoadConnection> connection;
        int node;
    };
    std::vector<Pending> connections;
    connections.reserve(indexes.size());
    std::size_t next = 0;
    int in_flight = 0, settled = 0;
    const int concurrency = std::max(1, config.concurrency / config.client_threads);
    std::function<void()> open_more = [&] {
        while (in_flight < concurrency && next < indexes.size()) {
            const int index = indexes[next++];
            const int node = index % config.nodes;
            const auto& server = nodes[static_cast<std::size_t>(node)];
            LoadConnection::Options options;
            options.host_header = "127.0.0.1:" + std::to_string(server.port());
            options.path = "/socket/websocket?vsn=2.0.0&user_id=u" + std::to_string(index);
            options.read_buffer = 4096;
            auto connection = LoadConnection::create(io, options, random_seed());
            // One loopback source address per node, so no node's clients share
            // ephemeral ports with another's.
            const auto source =
                asio::ip::address_v4((127u << 24) | static_cast<unsigned>(2 + node));
            ++in_flight;
            connection->async_open(server, asio::ip::address(source),
                                   [&](std::error_code ec, std::string_view why) {
                                       --in_flight;
                                       ++settled;
                                       if (ec) {
                                           shared.open_failed.fetch_add(1);
                                           shared.report("open failed: " + ec.message() + " (" +
                                                         std::string(why) + ")");
                                       } else {
                                           shared.opened.fetch_add(1);
                                       }
                                       open_more();
                                   });
            connections.push_back({std::move(connection), node});
        }
    };
    open_more();
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(static_cast<long>(config.open_timeout * 1000));
    while (settled < static_cast<int>(connections.size()) || next < indexes.size()) {
        if (Clock::now() > deadline || shared.phase.load() == Phase::close) break;
        io.run_one_for(std::chrono::milliseconds(50));
    }
    Driver driver(config, shared, stats);
    driver.reserve(connections.size());
    for (auto& p : connections)
        if (p.connection->is_open()) driver.adopt(p.connection->detach(), p.node);
    for (auto& p : connections)
        p.connection->abort();
    io.restart();
    io.run();  // the detached sockets' cancelled reads complete here
    connections.clear();
    stats.tid = static_cast<pid_t>(gettid());
    shared.threads_running.fetch_add(1);
    driver.run();
}

// -------------------------------------------------------------- publisher --

/// Joined to room:lobby on node 1, on its own thread and io_context. Pushes
/// probes until the cluster is meshed, then the measured new_msg: paced by
/// --rate, or (--rate 0) keeping at most --window broadcasts that have not
/// reached every subscriber yet. Its own broadcasts come back to it from node
/// 1: that is node 1 accepting them.
class Publisher {
  public:
    Publisher(const Config& config, Shared& shared, asio::ip::tcp::endpoint node)
        : config_(config),
          shared_(shared),
          node_(node),
          push_timer_(io_),
          heartbeat_timer_(io_),
          guard_(asio::make_work_guard(io_)) {
        asio::post(io_, [this] { open(); });
        thread_ = std::thread([this] {
            tid = static_cast<pid_t>(gettid());
            io_.run();
        });
    }
    ~Publisher() {
        asio::post(io_, [this] {
            push_timer_.cancel();
            heartbeat_timer_.cancel();
            if (connection_) connection_->abort();
        });
        guard_.reset();
        if (thread_.joinable()) thread_.join();
    }

    std::atomic<bool> ready{false};
    std::atomic<bool> failed{false};
    std::atomic<std::uint32_t> pushed{0};
    std::atomic<std::uint32_t> echoed{0};
    std::atomic<std::int64_t> first_push_ns{0};
    std::atomic<std::int64_t> last_push_ns{0};
    std::atomic<std::int64_t> last_echo_ns{0};
    std::atomic<pid_t> tid{0};  // the publisher thread's, for its CPU figure

    void probe() {
        asio::post(io_,
                   [this] { send(std::string(probe_word) + " " + std::to_string(++probes_)); });
    }
    /// A broadcast reached every subscriber (any thread).
    void completed() {
        if (config_.rate <= 0) asio::post(io_, [this] { fill_window(); });
    }
    void start() {
        asio::post(io_, [this] {
            start_ = Clock::now();
            if (config_.rate > 0)
                pace();
            else
                fill_window();
        });
    }

  private:
    void open() {
        LoadConnection::Options options;
        options.host_header = "127.0.0.1:" + std::to_string(node_.port());
        options.path = "/socket/websocket?vsn=2.0.0&user_id=publisher";
        connection_ = LoadConnection::create(io_, options, random_seed());
        connection_->on_message([this](Opcode, std::span<const std::uint8_t> data) {
            const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
            if (text.starts_with(join_reply_prefix)) {
                if (text.find(R"("status":"ok")") == std::string_view::npos) {
                    shared_.report("the publisher's join was refused: " + std::string(text));
                    failed = true;
                    return;
                }
                ready = true;
                heartbeat();
            } else if (text.starts_with(broadcast_prefix)) {
                std::uint32_t seq = 0;
                std::int64_t sent = 0;
                if (parse_stamp(text.substr(broadcast_prefix.size()), seq, sent)) {
                    echoed.fetch_add(1);
                    last_echo_ns = now_ns();
                }
            }
        });
        connection_->on_closed([this](std::error_code ec, std::string_view why) {
            if (shared_.phase.load() != Phase::close)
                shared_.report("the publisher lost its connection: " + ec.message() + " (" +
                               std::string(why) + ")");
        });
        connection_->async_open(
            node_, std::nullopt, [this](std::error_code ec, std::string_view why) {
                if (ec) {
                    shared_.report("the publisher could not connect: " + ec.message() + " (" +
                                   std::string(why) + ")");
                    failed = true;
                    return;
                }
                connection_->send(Opcode::text, bytes_of(join_frame));
            });
    }

    void send(const std::string& body) {
        const std::string frame = R"(["1",")" + std::to_string(++ref_) +
                                  R"(","room:lobby","new_msg",{"body":")" + body + R"("}])";
        connection_->send(Opcode::text, bytes_of(frame));
    }

    void push(std::uint32_t seq) {
        const std::int64_t now = now_ns();
        if (seq == 0) first_push_ns = now;
        last_push_ns = now;
        pushed = seq + 1;
        send(stamp_body(seq, now, config_.size));
    }

    // --rate R: on an absolute schedule (push K is due at K / R s), so a late
    // push does not delay the ones after it. Every push that is due leaves
    // now; the timer then waits for the next one, but at least --tick-ms, so
    // with a tick the pushes due within it leave together.
    Clock::time_point due(std::uint32_t seq) const {
        return start_ + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(seq / config_.rate));
    }
    void pace() {
        const auto total = static_cast<std::uint32_t>(config_.messages);
        const auto now = Clock::now();
        while (pushed < total && due(pushed) <= now)
            push(pushed);
        if (pushed >= total) return;
        push_timer_.expires_at(std::max(
            due(pushed), now + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double, std::milli>(config_.tick_ms))));
        push_timer_.async_wait([this](std::error_code ec) {
            if (!ec) pace();
        });
    }

    void fill_window() {
        const auto total = static_cast<std::uint32_t>(config_.messages);
        const auto window = static_cast<std::uint32_t>(config_.window);
        while (pushed < total && pushed - shared_.completed.load() < window)
            push(pushed);
    }

    void heartbeat() {
        heartbeat_timer_.expires_after(
            std::chrono::milliseconds(static_cast<long>(config_.heartbeat * 1000)));
        heartbeat_timer_.async_wait([this](std::error_code ec) {
            if (ec) return;
            const std::string hb =
                R"([null,"hb)" + std::to_string(++ref_) + R"(","phoenix","heartbeat",{}])";
            connection_->send(Opcode::text, bytes_of(hb));
            heartbeat();
        });
    }

    const Config& config_;
    Shared& shared_;
    asio::ip::tcp::endpoint node_;
    asio::io_context io_{1};
    asio::steady_timer push_timer_;
    asio::steady_timer heartbeat_timer_;
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    std::shared_ptr<LoadConnection> connection_;
    std::thread thread_;
    Clock::time_point start_{};
    std::uint64_t ref_ = 1;  // "1" is the join's
    std::uint64_t probes_ = 0;
};

// ------------------------------------------------------------------- main --

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

/// A node's stderr, kept (the last lines) so a failure can show it.
struct NodeLog {
    std::mutex mutex;
    std::string tail;
    std::uint64_t bytes = 0;
    bool echo = false;
    int node = 0;
    void add(std::string_view chunk) {
        std::lock_guard lock(mutex);
        bytes += chunk.size();
        if (echo)
            std::fprintf(stderr, "[n%d] %.*s", node, static_cast<int>(chunk.size()), chunk.data());
        tail.append(chunk);
        if (tail.size() > 4096) tail.erase(0, tail.size() - 4096);
    }
};

/// Redis's own counters (INFO), before and after the fan-out.
struct RedisCounters {
    double publish_calls = 0, publish_usec = 0, reads = 0, writes = 0, net_in = 0, net_out = 0;
};

RedisCounters redis_counters(SyncRedis& redis) {
    const auto info = redis.call({"INFO", "all"}).text();
    RedisCounters c;
    c.publish_calls = info_number(info, "cmdstat_publish", "calls");
    c.publish_usec = info_number(info, "cmdstat_publish", "usec");
    c.reads = info_number(info, "total_reads_processed");
    c.writes = info_number(info, "total_writes_processed");
    c.net_in = info_number(info, "total_net_input_bytes");
    c.net_out = info_number(info, "total_net_output_bytes");
    return c;
}

void print_usage() {
    std::fputs(
        "usage: cluster_fanout [--server build/release/examples/chat/chat] [--redis-server PATH]\n"
        "         [--nodes 3] [--subscribers 3000] [--messages 1000] [--rate 0] [--window 8]\n"
        "         [--size 128] [--client-threads 1] [--concurrency 200] [--open-timeout 60]\n"
        "         [--join-timeout 60] [--mesh-timeout 10] [--timeout 120] [--heartbeat 30]\n"
        "         [--tick-ms 0] [--history 0]\n"
        "         [--server-output] [-- CHAT ARGS...]\n",
        stderr);
}

int run(const Config& config) {
    require_fd_limit(config.subscribers + 256);

    RedisProcess redis(config.redis_server);
    redis.start();
    const std::string url = redis.url();

    // The nodes.
    // The logs outlive the nodes: a node's stderr drain thread writes to its log.
    std::vector<std::unique_ptr<NodeLog>> logs;
    std::vector<std::unique_ptr<ServerProcess>> nodes;
    std::vector<asio::ip::tcp::endpoint> endpoints;
    for (int k = 0; k < config.nodes; ++k) {
        auto log = std::make_unique<NodeLog>();
        log->echo = config.show_server_output;
        log->node = k + 1;
        auto node = std::make_unique<ServerProcess>();
        node->capture_stderr([log = log.get()](std::string_view chunk) { log->add(chunk); });
        std::vector<std::string> args{"--port",        "0",
                                      "--threads",     "1",
                                      "--no-presence", "--no-rate-limits",
                                      "--redis",       url,
                                      "--node",        "n" + std::to_string(k + 1),
                                      "--history",     std::to_string(config.history)};
        args.insert(args.end(), config.server_args.begin(), config.server_args.end());
        node->start(config.server, args, std::chrono::seconds(15), config.show_server_output);
        endpoints.emplace_back(asio::ip::make_address("127.0.0.1"), node->port());
        nodes.push_back(std::move(node));
        logs.push_back(std::move(log));
    }
    plume::redis::Options redis_options;
    redis_options.url = *plume::redis::parse_url(url);
    SyncRedis redis_admin(redis_options);

    Shared shared(config);
    Publisher publisher(config, shared, endpoints[0]);
    shared.on_complete = [&publisher] { publisher.completed(); };
    std::vector<ThreadStats> stats(static_cast<std::size_t>(config.client_threads));
    std::vector<std::thread> pool;

    const auto stop_all = [&] {
        shared.final_pushed = publisher.pushed.load();
        shared.phase = Phase::close;
        for (auto& t : pool)
            t.join();
        pool.clear();
    };
    const auto give_up = [&](const std::string& why) {
        stop_all();
        std::printf("cluster_fanout\n  result             not measured: %s\n", why.c_str());
        for (std::size_t k = 0; k < nodes.size(); ++k) {
            std::lock_guard lock(logs[k]->mutex);
            if (!logs[k]->tail.empty())
                std::printf("  n%zu stderr (tail)\n%s\n", k + 1, logs[k]->tail.c_str());
        }
        for (std::size_t k = 0; k < nodes.size(); ++k)
            std::printf("  n%zu stop            %s\n", k + 1,
                        nodes[k]->stop(std::chrono::seconds(10)).c_str());
        std::printf("  redis-server stop  %s\n", redis.stop(std::chrono::seconds(5)).c_str());
        return 1;
    };

    if (!wait_until([&] { return publisher.ready.load() || publisher.failed.load(); }, 15) ||
        !publisher.ready)
        return give_up("the publisher did not join on n1");

    // Subscribers: open, spread over the nodes and the client threads.
    const auto open_start = Clock::now();
    for (int t = 0; t < config.client_threads; ++t) {
        std::vector<int> indexes;
        for (int i = t; i < config.subscribers; i += config.client_threads)
            indexes.push_back(i);
        pool.emplace_back(client_thread, std::cref(config), std::cref(endpoints),
                          std::move(indexes), std::ref(shared),
                          std::ref(stats[static_cast<std::size_t>(t)]));
    }
    wait_until([&] { return shared.threads_running == config.client_threads; },
               config.open_timeout + 10);
    const double open_seconds = std::chrono::duration<double>(Clock::now() - open_start).count();
    if (shared.opened != config.subscribers)
        return give_up(std::to_string(shared.opened) + " of " + std::to_string(config.subscribers) +
                       " subscribers opened");

    // Join; every reply means that node already receives room:lobby from Redis.
    const auto join_start = Clock::now();
    shared.phase = Phase::join;
    wait_until(
        [&] {
            return shared.joined + shared.join_failed + shared.lost_connections >=
                   config.subscribers;
        },
        config.join_timeout);
    const double join_seconds = std::chrono::duration<double>(Clock::now() - join_start).count();
    if (shared.joined != config.subscribers)
        return give_up(std::to_string(shared.joined) + " of " + std::to_string(config.subscribers) +
                       " subscribers joined in time");

    // Meshed: a probe from n1 reached a subscriber on every node.
    const auto mesh_start = Clock::now();
    int probes = 0;
    const bool meshed = wait_until(
        [&] {
            if (std::all_of(shared.probe_seen.begin(), shared.probe_seen.end(),
                            [](const auto& seen) { return seen.load(); }))
                return true;
            const auto elapsed = Clock::now() - mesh_start;
            if (elapsed >= probes * std::chrono::milliseconds(100)) {
                publisher.probe();
                ++probes;
            }
            return false;
        },
        config.mesh_timeout);
    const double mesh_seconds = std::chrono::duration<double>(Clock::now() - mesh_start).count();
    if (!meshed) return give_up("a probe broadcast from n1 did not reach every node in time");
    const auto numsub = redis_admin.call({"PUBSUB", "NUMSUB", "plume:t:room:lobby"});
    const auto topic_subscribers = numsub.elements.size() == 2 ? numsub.elements[1].integer : -1;
    // Let the probes' fan-out finish before the measurement starts.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));

    // Fan-out.
    const std::uint64_t expected = static_cast<std::uint64_t>(config.subscribers) *
                                   static_cast<std::uint64_t>(config.messages);
    const double limit =
        std::max(config.timeout, config.rate > 0 ? config.messages / config.rate + 30 : 0.0);
    const auto counters_before = redis_counters(redis_admin);
    std::vector<double> node_cpu_before;
    for (auto& n : nodes)
        node_cpu_before.push_back(proc_cpu_seconds(n->pid()).value_or(0));
    const double redis_cpu_before = proc_cpu_seconds(redis.pid()).value_or(0);
    const double client_cpu_before = self_cpu_seconds();
    // This program's CPU by thread: the publisher's, and the subscribers' threads'.
    const auto thread_cpu = [](pid_t tid) { return task_cpu_seconds(tid); };
    const auto subscribers_cpu = [&] {
        double sum = 0;
        for (const auto& s : stats)
            sum += thread_cpu(s.tid.load());
        return sum;
    };
    const double publisher_cpu_before = thread_cpu(publisher.tid.load());
    const double subscribers_cpu_before = subscribers_cpu();
    const MachineCpu machine_before = machine_cpu();
    const auto fanout_start = Clock::now();
    shared.phase = Phase::run;
    publisher.start();
    const bool complete = wait_until(
        [&] { return shared.delivered.load() >= expected || shared.lost_connections.load() > 0; },
        limit);
    // The publisher's last echo may trail the last delivery slightly.
    wait_until([&] { return publisher.echoed.load() >= publisher.pushed.load(); }, 2);
    const auto fanout_end = Clock::now();
    std::vector<double> node_cpu;
    for (std::size_t k = 0; k < nodes.size(); ++k)
        node_cpu.push_back(proc_cpu_seconds(nodes[k]->pid()).value_or(0) - node_cpu_before[k]);
    const double redis_cpu = proc_cpu_seconds(redis.pid()).value_or(0) - redis_cpu_before;
    const double client_cpu = self_cpu_seconds() - client_cpu_before;
    const double publisher_cpu = thread_cpu(publisher.tid.load()) - publisher_cpu_before;
    const double subscriber_threads_cpu = subscribers_cpu() - subscribers_cpu_before;
    const MachineCpu machine_after = machine_cpu();
    const auto counters_after = redis_counters(redis_admin);
    const std::uint32_t pushed = publisher.pushed;
    const std::uint32_t echoed = publisher.echoed;
    const std::int64_t first_push = publisher.first_push_ns;
    const std::int64_t last_push = publisher.last_push_ns;
    const std::int64_t last_echo = publisher.last_echo_ns;
    const int lost_connections = shared.lost_connections;
    std::uint64_t duplicates = 0;
    for (std::uint32_t s = 0; s < pushed; ++s) {
        const auto got = shared.per_seq[s].load();
        if (got > static_cast<std::uint32_t>(config.subscribers))
            duplicates += got - static_cast<std::uint32_t>(config.subscribers);
    }

    stop_all();
    std::vector<std::string> node_end;
    for (auto& n : nodes)
        node_end.push_back(n->stop(std::chrono::seconds(10)));
    const std::string redis_end = redis.stop(std::chrono::seconds(5));

    LatencyHistogram local, cross;
    std::uint64_t delivered_local = 0, delivered_cross = 0, out_of_order = 0, unexpected = 0,
                  lost = 0;
    std::int64_t last_delivery = 0;
    for (const auto& s : stats) {
        local.merge(s.local);
        cross.merge(s.cross);
        delivered_local += s.delivered_local;
        delivered_cross += s.delivered_cross;
        out_of_order += s.out_of_order;
        unexpected += s.unexpected;
        lost += s.lost;
        last_delivery = std::max(last_delivery, s.last_delivery_ns);
    }
    const std::uint64_t delivered = delivered_local + delivered_cross;
    const int on_n1 = (config.subscribers + config.nodes - 1) / config.nodes;

    std::printf("cluster_fanout\n");
    std::printf(
        "  cluster            %d x %s --threads 1 --no-presence --no-rate-limits, "
        "redis-server %s (%s)\n",
        config.nodes, config.server.c_str(), config.redis_server.c_str(), url.c_str());
    std::printf(
        "  subscribers        %d joined room:lobby (%d on n1, %d on the other nodes), "
        "raw epoll driver, %d client thread%s; opened in %.1f s, joined in %.1f s\n",
        config.subscribers, on_n1, config.subscribers - on_n1, config.client_threads,
        config.client_threads == 1 ? "" : "s", open_seconds, join_seconds);
    std::printf(
        "  meshed             %d probe%s from n1, every node reached in %.3f s; "
        "PUBSUB NUMSUB plume:t:room:lobby = %" PRId64 "\n",
        probes, probes == 1 ? "" : "s", mesh_seconds, static_cast<std::int64_t>(topic_subscribers));
    char pace[96];
    if (config.rate > 0)
        std::snprintf(pace, sizeof pace, "%g/s (timer tick >= %g ms)", config.rate, config.tick_ms);
    else
        std::snprintf(pace, sizeof pace,
                      "as fast as they are delivered (%d not yet received by everyone at most)",
                      config.window);
    std::printf("  fan-out            %d new_msg of %zu-byte bodies from a publisher on n1, %s\n",
                config.messages, config.size, pace);
    const double push_seconds = static_cast<double>(last_push - first_push) / 1e9;
    const double echo_seconds = static_cast<double>(last_echo - first_push) / 1e9;
    const double span = static_cast<double>(last_delivery - first_push) / 1e9;
    std::printf("  pushes             %u sent in %.2f s (%.0f/s)\n", pushed, push_seconds,
                push_seconds > 0 ? pushed / push_seconds : 0);
    std::printf(
        "  accepted by n1     %u broadcasts came back to the publisher in %.2f s: %.0f "
        "broadcasts/s\n",
        echoed, echo_seconds, echo_seconds > 0 ? echoed / echo_seconds : 0);
    std::printf("  deliveries         %" PRIu64 " of %" PRIu64
                " in %.2f s from first push to last "
                "delivery%s\n",
                delivered, expected, span,
                complete ? "" : " (INCOMPLETE: timed out or a connection was lost)");
    std::printf("  deliveries/s       %.0f (%.0f broadcasts/s to all %d)\n",
                span > 0 ? static_cast<double>(delivered) / span : 0,
                span > 0 ? static_cast<double>(delivered) / span / config.subscribers : 0,
                config.subscribers);
    const auto ms = [](const LatencyHistogram& h, double q) {
        return static_cast<double>(h.quantile(q)) / 1e6;
    };
    std::printf("  latency ms local   p50 %.2f  p99 %.2f  max %.2f  (n1's subscribers, %" PRIu64
                " deliveries)\n",
                ms(local, 0.5), ms(local, 0.99), static_cast<double>(local.max()) / 1e6,
                delivered_local);
    std::printf(
        "  latency ms cross   p50 %.2f  p99 %.2f  max %.2f  (other nodes', through Redis, "
        "%" PRIu64 " deliveries)\n",
        ms(cross, 0.5), ms(cross, 0.99), static_cast<double>(cross.max()) / 1e6, delivered_cross);
    std::printf("  lost               %" PRIu64 " deliveries, %" PRIu64 " out of order, %" PRIu64
                " duplicated, %" PRIu64 " unexpected frames, %d connections\n",
                lost, out_of_order, duplicates, unexpected, lost_connections);
    const double window = std::chrono::duration<double>(fanout_end - fanout_start).count();
    double nodes_total = 0;
    std::printf("  CPU s              ");
    for (std::size_t k = 0; k < node_cpu.size(); ++k) {
        nodes_total += node_cpu[k];
        std::printf("n%zu %.2f, ", k + 1, node_cpu[k]);
    }
    std::printf(
        "redis-server %.2f, this program %.2f (publisher %.2f, subscribers %.2f), in "
        "%.2f s\n",
        redis_cpu, client_cpu, publisher_cpu, subscriber_threads_cpu, window);
    std::printf("  per delivery       nodes %.2f us, redis-server %.2f us, this program %.2f us\n",
                delivered ? 1e6 * nodes_total / delivered : 0,
                delivered ? 1e6 * redis_cpu / delivered : 0,
                delivered ? 1e6 * client_cpu / delivered : 0);
    const double others =
        machine_after.busy - machine_before.busy - client_cpu - redis_cpu - nodes_total;
    std::printf(
        "  other load         %.0f%% of one core by other processes, %.0f%% stolen by the "
        "hypervisor\n",
        std::max(0.0, 100.0 * others / window),
        100.0 * (machine_after.steal - machine_before.steal) / window);
    const double publishes = counters_after.publish_calls - counters_before.publish_calls;
    const double reads = counters_after.reads - counters_before.reads;
    std::printf(
        "  redis counters     %.0f PUBLISH (%.0f beyond the broadcasts: the nodes' Tracker "
        "heartbeats; %.2f us each in Redis), %.0f reads processed (%.1f PUBLISH per read), %.0f "
        "writes processed, %.1f MB in, %.1f MB out\n",
        publishes, publishes - pushed,
        publishes > 0 ? (counters_after.publish_usec - counters_before.publish_usec) / publishes
                      : 0,
        reads, reads > 0 ? publishes / reads : 0, counters_after.writes - counters_before.writes,
        (counters_after.net_in - counters_before.net_in) / 1e6,
        (counters_after.net_out - counters_before.net_out) / 1e6);
    for (std::size_t k = 0; k < nodes.size(); ++k)
        std::printf("  n%zu stop            %s (%" PRIu64 " bytes of stderr)\n", k + 1,
                    node_end[k].c_str(), logs[k]->bytes);
    std::printf("  redis-server stop  %s\n", redis_end.c_str());
    return complete && lost == 0 && lost_connections == 0 && unexpected == 0 && duplicates == 0 ? 0
                                                                                                : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        CliArgs args(argc, argv, {"server-output", "help"});
        if (args.flag("help")) return print_usage(), 0;
        Config config;
        config.server = args.get("server", config.server);
        config.server_args = args.passthrough();
        config.redis_server = find_redis_server(args.get("redis-server", ""));
        config.nodes = static_cast<int>(args.number("nodes", 3));
        config.subscribers = static_cast<int>(args.number("subscribers", 3000));
        config.messages = static_cast<int>(args.number("messages", 1000));
        config.rate = args.number("rate", 0);
        config.window = static_cast<int>(args.number("window", 8));
        config.size = static_cast<std::size_t>(args.number("size", 128));
        config.client_threads = static_cast<int>(args.number("client-threads", 1));
        config.concurrency = static_cast<int>(args.number("concurrency", 200));
        config.open_timeout = args.number("open-timeout", 60);
        config.join_timeout = args.number("join-timeout", 60);
        config.mesh_timeout = args.number("mesh-timeout", 10);
        config.timeout = args.number("timeout", 120);
        config.heartbeat = args.number("heartbeat", 30);
        config.tick_ms = args.number("tick-ms", 0);
        config.history = static_cast<int>(args.number("history", 0));
        config.show_server_output = args.flag("server-output");
        args.finish();
        if (config.nodes < 2 || config.nodes > 250 || config.subscribers < config.nodes ||
            config.messages < 1 || config.rate < 0 || config.window < 1 ||
            config.client_threads < 1 || config.client_threads > config.subscribers ||
            config.concurrency < 1 || config.timeout <= 0 || config.heartbeat <= 0 ||
            config.tick_ms < 0 || config.size < 48 || config.size > 4000)
            throw std::runtime_error(
                "--nodes >= 2, at least one subscriber per node, counts positive, --rate >= 0, "
                "48 <= --size <= 4000 (room for the stamp; the chat's limit)");
        if (access(config.server.c_str(), X_OK) != 0)
            throw std::runtime_error("no chat binary at " + config.server +
                                     " (build the chat target, or --server PATH)");
        return run(config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cluster_fanout: %s\n", e.what());
        return 1;
    }
}
