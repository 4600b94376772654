// channel_fanout — what a joined subscriber costs the chat server, at rest and
// when a topic's broadcasts fan out to every one of them.
//
// Spawns examples/chat (--port 0 --threads N), opens and joins one publisher
// (which also warms the join path up), then:
//   1. memory: samples the server's VmRSS, opens --connections Phoenix V2
//      sockets (?vsn=2.0.0&user_id=uK, from 127.0.0.2, 127.0.0.3, ...), samples
//      again, joins every one to room:lobby, waits for every join reply and
//      samples again: bytes per open socket, per join, and per joined idle
//      connection (the two together).
//   2. fan-out: the publisher pushes --messages new_msg, each body carrying a
//      sequence number and its send time, at --rate per second (0: as fast as
//      the publisher receives its own pushes back, --window of them under way
//      at most); every client stamps each broadcast on receipt. Prints deliveries/s,
//      push-to-delivery latency percentiles over all deliveries, messages lost, and the server's
//      CPU per delivery from /proc/PID/stat.
// Two load generators (--driver):
//   plume  every client, publisher included, is a plume::client::Socket with a
//          Channel: join(), on("new_msg", ...), push(); each client thread runs
//          one io_context for its share of the sockets, which heartbeat themselves.
//   epoll  Asio opens the sockets and does the HTTP upgrade; then each client
//          thread drives its share with a level-triggered epoll loop (one recv()
//          per wake-up), sending staggered Phoenix heartbeats so the server's 60 s
//          timeout never fires. Cheapest per delivery; independent of plume's client.
//
//   channel_fanout                                  # 10,000 clients, 200 messages at 20/s
//   channel_fanout --connections 1000 --rate 0 --server-threads 2 --client-threads 2
//   channel_fanout --driver epoll
//   channel_fanout --compare-metrics 5 --connections 1000 --rate 0   # metrics on vs off
//
// --compare-metrics N runs it 2N times, the chat's metrics on and off
// (--no-metrics) alternately, and prints the medians and what metrics cost.
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
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <plume/client.hpp>

#include "support/bench_support.hpp"
#include "support/ws_load_client.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace plume_bench;

constexpr std::string_view topic = "room:lobby";
// The frames this program expects, as plume's V2 serializer writes them
// (compact JSON; object keys sorted, so "body" leads the broadcast payload).
constexpr std::string_view join_frame = R"(["1","1","room:lobby","phx_join",{}])";
constexpr std::string_view join_reply_prefix = R"(["1","1","room:lobby","phx_reply",)";
constexpr std::string_view broadcast_prefix = R"([null,null,"room:lobby","new_msg",{"body":")";
constexpr std::string_view heartbeat_reply_marker = R"(,"phoenix","phx_reply",)";

struct Config {
    std::string server = "build/release/examples/chat/chat";
    std::vector<std::string> server_args;
    std::string driver = "plume";
    int connections = 10000;
    int messages = 200;
    double rate = 20;
    std::size_t size = 64;
    int client_threads = 1;
    int server_threads = 1;
    int per_source = 10000;
    int concurrency = 200;
    double open_timeout = 120;
    double join_timeout = 60;
    double settle = 2;
    double timeout = 120;
    double heartbeat = 30;
    int window = 1;  // --rate 0: pushes that may be on their way back at once
    bool show_server_output = false;
};

/// The body a push carries: "SEQ NANOS" (steady clock), padded to --size.
std::string stamp_body(std::uint32_t seq, std::int64_t nanos, std::size_t size) {
    std::string body = std::to_string(seq) + ' ' + std::to_string(nanos);
    if (body.size() < size) body.append(size - body.size(), 'x');
    return body;
}

/// Parses "SEQ NANOS..." at the start of a body.
bool parse_stamp(std::string_view body, std::uint32_t& seq, std::int64_t& nanos) {
    const char* end = body.data() + body.size();
    auto r = std::from_chars(body.data(), end, seq);
    if (r.ec != std::errc{} || r.ptr == end || *r.ptr != ' ') return false;
    return std::from_chars(r.ptr + 1, end, nanos).ec == std::errc{};
}

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

std::string text_of(std::span<const std::uint8_t> bytes) {
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::span<const std::uint8_t> bytes_of(std::string_view text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

/// What main tells the client threads to do next.
enum class Phase : int { open, join, close, abort };

struct Shared {
    std::atomic<Phase> phase{Phase::open};
    std::atomic<int> opened{0};
    std::atomic<int> open_failed{0};
    std::atomic<int> threads_running{0};  // epoll loops started
    std::atomic<int> joined{0};
    std::atomic<int> join_failed{0};
    std::atomic<std::uint64_t> delivered{0};
    std::atomic<int> lost{0};  // connections that ended before the close phase
    std::atomic<int> closed{0};
    std::atomic<bool> first_error_reported{false};
    // Steady-clock ns of the first phx_join sent and of the last ok reply: joins/s.
    std::atomic<std::int64_t> first_join_sent_ns{std::numeric_limits<std::int64_t>::max()};
    std::atomic<std::int64_t> last_join_reply_ns{0};

    void join_sent(std::int64_t ns) {
        auto seen = first_join_sent_ns.load();
        while (ns < seen && !first_join_sent_ns.compare_exchange_weak(seen, ns)) {
        }
    }
    void join_replied(std::int64_t ns) {
        auto seen = last_join_reply_ns.load();
        while (ns > seen && !last_join_reply_ns.compare_exchange_weak(seen, ns)) {
        }
    }

    void report(const std::string& what) {
        if (!first_error_reported.exchange(true))
            std::fprintf(stderr, "channel_fanout: %s\n", what.c_str());
    }
};

/// Figures owned by one client thread; main reads them after join.
struct ThreadStats {
    LatencyHistogram latency;
    std::uint64_t delivered = 0;
    std::uint64_t out_of_order = 0;  // a sequence number other than the next expected
    std::uint64_t unexpected = 0;    // frames this program has no use for
    std::int64_t last_delivery_ns = 0;
    std::uint64_t lost = 0;  // filled in at the end: messages - received, per connection
};

// --------------------------------------------------------- epoll driver --

/// One client thread's sockets after the upgrade: joins them when told, stamps
/// broadcasts, heartbeats, closes them when told.
class FanoutDriver {
  public:
    FanoutDriver(const Config& config, Shared& shared, ThreadStats& stats)
        : config_(config),
          shared_(shared),
          stats_(stats),
          epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {}
    ~FanoutDriver() {
        for (auto& c : conns_)
            if (!c.done) ::close(c.fd);
        ::close(epoll_fd_);
    }

    void reserve(std::size_t n) { conns_.reserve(n); }

    void adopt(LoadConnection::Detached detached) {
        if (detached.fd < 0) {
            shared_.report("could not take a socket from Asio");
            shared_.lost.fetch_add(1);
            return;
        }
        conns_.push_back(Conn{detached.fd, std::move(detached.reader), FastRng(random_seed())});
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
        std::optional<Clock::time_point> give_up;
        while (closed_ < conns_.size()) {
            const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 20);
            for (int i = 0; i < n; ++i) {
                const auto& e = events[static_cast<std::size_t>(i)];
                Conn& c = conns_[e.data.u64];
                if (!c.done && (e.events & (EPOLLIN | EPOLLHUP | EPOLLERR))) read(c);
                if (!c.done && (e.events & EPOLLOUT)) flush(c);
            }
            const Phase phase = shared_.phase.load(std::memory_order_relaxed);
            if (phase == Phase::abort) break;
            if (phase == Phase::join && !joins_sent) {
                joins_sent = true;
                shared_.join_sent(now_ns());
                for (auto& c : conns_)
                    if (!c.done) send(c, Opcode::text, bytes_of(join_frame));
            }
            if (phase == Phase::close && !give_up) {
                give_up = Clock::now() + std::chrono::seconds(10);
                for (auto& c : conns_) {
                    if (c.done || c.close_sent) continue;
                    queue_close(c, {});
                    flush(c);
                }
            }
            if (give_up && Clock::now() > *give_up) break;
            // Heartbeats, spread evenly: each connection sends one per interval.
            const auto now = Clock::now();
            heartbeat_credit += static_cast<double>(conns_.size()) *
                                std::chrono::duration<double>(now - last_tick).count() /
                                config_.heartbeat;
            last_tick = now;
            for (; heartbeat_credit >= 1 && !give_up; heartbeat_credit -= 1) {
                Conn& c = conns_[heartbeat_cursor++ % conns_.size()];
                if (c.done || c.close_sent) continue;
                const std::string hb = R"([null,")" + std::to_string(++heartbeat_ref_) +
                                       R"(","phoenix","heartbeat",{}])";
                send(c, Opcode::text, bytes_of(hb));
            }
        }
        for (auto& c : conns_) {
            if (c.received < static_cast<std::uint32_t>(config_.messages))
                stats_.lost += static_cast<std::uint32_t>(config_.messages) - c.received;
            finish(c, nullptr);
        }
    }

  private:
    struct Conn {
        int fd;
        FrameReader reader;
        FastRng rng;
        std::vector<std::uint8_t> out{};  // frames the kernel has not taken yet
        std::size_t out_sent = 0;
        std::uint32_t received = 0;
        std::uint32_t next_seq = 0;
        bool joined = false;
        bool want_write = false;  // EPOLLOUT armed
        bool close_sent = false;
        bool close_received = false;
        bool done = false;
        bool lost = false;  // counted in Shared::lost
    };

    struct Sink {
        FanoutDriver& d;
        Conn& c;
        std::int64_t now;
        std::uint64_t& delivered;
        bool stopped() const { return c.done; }
        void on_message(Opcode op, std::span<const std::uint8_t> data) {
            if (c.close_sent) return;
            const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
            if (op == Opcode::text && text.starts_with(broadcast_prefix)) {
                std::uint32_t seq = 0;
                std::int64_t sent = 0;
                if (!parse_stamp(text.substr(broadcast_prefix.size()), seq, sent))
                    return d.unexpected(text);
                if (seq != c.next_seq) ++d.stats_.out_of_order;
                c.next_seq = seq + 1;
                ++c.received;
                ++delivered;
                d.stats_.latency.record(
                    static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - sent)));
                d.stats_.last_delivery_ns = std::max(d.stats_.last_delivery_ns, now);
            } else if (op == Opcode::text && text.starts_with(join_reply_prefix)) {
                if (c.joined) return d.unexpected(text);
                c.joined = true;
                if (text.find(R"("status":"ok")") != std::string_view::npos) {
                    d.shared_.joined.fetch_add(1);
                    d.shared_.join_replied(now);
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
            if (!c.close_sent) append_masked(c.out, c.rng, Opcode::pong, payload);
        }
        void on_close(std::span<const std::uint8_t> payload) {
            c.close_received = true;
            if (c.close_sent) return;
            // The server closed first (idle timeout? send queue overflow?): the
            // connection is lost unless we are closing them all anyway.
            if (d.shared_.phase.load() != Phase::close) {
                const int code = payload.size() >= 2 ? (payload[0] << 8 | payload[1]) : 1005;
                d.shared_.report("server closed a client: " + std::to_string(code) + " " +
                                 (payload.size() > 2 ? text_of(payload.subspan(2)) : ""));
                d.lost(c);
            }
            d.queue_close(c, payload.first(std::min<std::size_t>(2, payload.size())));
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
            if (delivered) {
                stats_.delivered += delivered;
                shared_.delivered.fetch_add(delivered, std::memory_order_relaxed);
            }
            if (error) return finish(c, error);
            if (!c.out.empty()) flush(c);
        } else if (n == 0) {
            finish(c, c.close_sent ? nullptr : "server closed the connection");
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            finish(c, std::strerror(errno));
        }
    }

    void send(Conn& c, Opcode op, std::span<const std::uint8_t> payload) {
        append_masked(c.out, c.rng, op, payload);
        flush(c);
    }

    void queue_close(Conn& c, std::span<const std::uint8_t> body) {
        static constexpr std::array<std::uint8_t, 2> normal{0x03, 0xE8};  // 1000
        append_masked(c.out, c.rng, Opcode::close,
                      body.empty() ? std::span<const std::uint8_t>(normal) : body);
        c.close_sent = true;
    }

    void flush(Conn& c) {
        if (!flush_epoll(epoll_fd_, c.fd, static_cast<std::uint64_t>(&c - conns_.data()), c.out,
                         c.out_sent, c.want_write))
            finish(c, std::strerror(errno));
    }

    void finish(Conn& c, const char* error) {
        if (c.done) return;
        c.done = true;
        ::close(c.fd);  // also leaves the epoll set
        ++closed_;
        shared_.closed.fetch_add(1);
        const Phase phase = shared_.phase.load();
        if (phase != Phase::close && phase != Phase::abort) {
            shared_.report(std::string("connection lost: ") + (error ? error : "closed"));
            lost(c);
        }
    }

    void lost(Conn& c) {
        if (c.lost) return;
        c.lost = true;
        shared_.lost.fetch_add(1);
    }

    const Config& config_;
    Shared& shared_;
    ThreadStats& stats_;
    int epoll_fd_;
    std::vector<Conn> conns_;  // reserved up front: epoll data holds indexes
    std::size_t closed_ = 0;
    std::uint64_t heartbeat_ref_ = 0;
};

/// One client thread: opens connections [first, first + count) with Asio (at
/// most `concurrency` handshakes at a time), then drives them with epoll.
void client_thread(const Config& config, const asio::ip::tcp::endpoint& server,
                   const std::string& host_header, int first, int count, int sources,
                   int concurrency, Shared& shared, ThreadStats& stats) {
    asio::io_context io{1};
    std::vector<std::shared_ptr<LoadConnection>> connections;
    connections.reserve(static_cast<std::size_t>(count));
    int next = first, in_flight = 0, settled = 0;
    std::function<void()> open_more = [&] {
        while (in_flight < concurrency && next < first + count &&
               shared.phase.load() != Phase::abort) {
            const int index = next++;
            LoadConnection::Options options;
            options.host_header = host_header;
            options.path = "/socket/websocket?vsn=2.0.0&user_id=u" + std::to_string(index);
            options.read_buffer = 2048;
            auto connection = LoadConnection::create(io, options, random_seed());
            const auto source =
                asio::ip::address_v4((127u << 24) | static_cast<unsigned>(2 + index % sources));
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
            connections.push_back(std::move(connection));
        }
    };
    open_more();
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(static_cast<long>(config.open_timeout * 1000));
    while (settled < static_cast<int>(connections.size()) || next < first + count) {
        if (Clock::now() > deadline || shared.phase.load() == Phase::abort) break;
        io.run_one_for(std::chrono::milliseconds(50));
    }

    FanoutDriver driver(config, shared, stats);
    driver.reserve(connections.size());
    for (auto& c : connections)
        if (c->is_open()) driver.adopt(c->detach());
    for (auto& c : connections)
        c->abort();  // those that did not open in time
    io.restart();
    io.run();  // the detached sockets' cancelled reads complete here
    connections.clear();
    shared.threads_running.fetch_add(1);
    driver.run();
}

// --------------------------------------------------------- plume driver --

/// What every plume::client::Socket of the benchmark is told: no reconnect
/// and no rejoin within a run (a connection or a join lost is a figure, not
/// something to repair), heartbeats every `heartbeat` seconds, and timeouts
/// no shorter than the run's own bounds.
plume::client::SocketOptions plume_options(const Config& config, const std::string& url,
                                           std::string user_id, std::string local_address,
                                           double heartbeat) {
    using std::chrono::milliseconds;
    const auto seconds = [](double s) { return milliseconds(static_cast<long>(s * 1000)); };
    plume::client::SocketOptions o;
    o.url = url;
    o.params = {{"user_id", std::move(user_id)}};
    o.local_address = std::move(local_address);
    const auto never = [](unsigned) { return milliseconds(std::chrono::hours(24)); };
    o.reconnect_after = never;
    o.rejoin_after = never;
    o.heartbeat_interval = seconds(heartbeat);
    // A saturated server answers heartbeats seconds late: not a reason to
    // drop the connection in a benchmark.
    o.heartbeat_timeout = std::chrono::minutes(10);
    o.timeout = seconds(config.join_timeout);
    o.connect_timeout = seconds(config.open_timeout);
    return o;
}

/// --driver plume: one client thread's subscribers, each a
/// plume::client::Socket with one Channel joined to room:lobby, all on one
/// io_context run by this thread. Broadcasts arrive through
/// channel.on("new_msg"); heartbeats are the Socket's own.
class PlumeDriver {
  public:
    PlumeDriver(const Config& config, Shared& shared, ThreadStats& stats, std::string url,
                int first, int count, int sources, int concurrency)
        : config_(config),
          shared_(shared),
          stats_(stats),
          url_(std::move(url)),
          first_(first),
          count_(count),
          sources_(sources),
          concurrency_(concurrency) {}

    void run() {
        clients_.reserve(static_cast<std::size_t>(count_));
        open_more();
        const auto deadline = Clock::now() + std::chrono::milliseconds(
                                                 static_cast<long>(config_.open_timeout * 1000));
        while (settled_ < count_ && Clock::now() < deadline && shared_.phase.load() != Phase::abort)
            step();
        shared_.threads_running.fetch_add(1);

        bool joins_sent = false;
        std::optional<Clock::time_point> give_up;
        for (;;) {
            step();
            const Phase phase = shared_.phase.load(std::memory_order_relaxed);
            if (phase == Phase::abort) break;
            if (phase == Phase::join && !joins_sent) {
                joins_sent = true;
                shared_.join_sent(now_ns());
                for (auto& c : clients_)
                    if (c->opened && !c->lost) join(*c);
            }
            if (phase == Phase::close && !give_up) {
                give_up = Clock::now() + std::chrono::seconds(10);
                for (auto& c : clients_)
                    c->socket.disconnect(1000);
            }
            if (give_up && (closed_ + lost_ >= opened_ || Clock::now() > *give_up)) break;
        }
        for (auto& c : clients_)
            if (c->received < static_cast<std::uint32_t>(config_.messages))
                stats_.lost += static_cast<std::uint32_t>(config_.messages) - c->received;
        // Let the closing handshakes finish (bounded), then release the sockets
        // here, while no other thread runs their handlers.
        const auto drain_until = Clock::now() + std::chrono::seconds(5);
        while (!io_.stopped() && Clock::now() < drain_until)
            io_.run_for(std::chrono::milliseconds(50));
        clients_.clear();
        io_.restart();
        io_.run_for(std::chrono::seconds(5));
    }

  private:
    struct Client {
        Client(asio::io_context& io, plume::client::SocketOptions options)
            : socket(io, std::move(options)) {}
        plume::client::Socket socket;
        plume::client::Channel channel;
        std::uint32_t received = 0;
        std::uint32_t next_seq = 0;
        bool opened = false;
        bool failed = false;  // never opened
        bool joined = false;  // the join was answered (ok or not)
        bool lost = false;
        bool closed = false;
    };

    // Runs the handlers that are ready (and waits up to 20 ms for some).
    void step() {
        if (io_.stopped()) io_.restart();
        io_.run_for(std::chrono::milliseconds(20));
    }

    void open_more() {
        while (in_flight_ < concurrency_ && next_ < first_ + count_ &&
               shared_.phase.load() != Phase::abort) {
            const int index = next_++;
            const auto source =
                asio::ip::address_v4((127u << 24) | static_cast<unsigned>(2 + index % sources_));
            // Intervals a little apart, so that the heartbeats spread out over
            // time (as the epoll driver's do) instead of coming in one burst.
            const double heartbeat = config_.heartbeat * (0.75 + 0.5 * (index % 1000) / 1000.0);
            auto owned = std::make_unique<Client>(
                io_, plume_options(config_, url_, "u" + std::to_string(index), source.to_string(),
                                   heartbeat));
            Client* c = owned.get();
            clients_.push_back(std::move(owned));
            ++in_flight_;
            c->channel = c->socket.channel(std::string(topic));
            c->channel.on("new_msg",
                          [this, c](const nlohmann::json& payload) { on_broadcast(*c, payload); });
            c->socket.on_open([this, c] {
                if (c->opened || c->failed) return;
                c->opened = true;
                ++opened_;
                shared_.opened.fetch_add(1);
                settle_one();
            });
            c->socket.on_error([this, c](std::error_code ec, const std::string& detail) {
                on_error(*c, ec, detail);
            });
            c->socket.on_close([this, c](std::uint16_t code, const std::string& why) {
                if (!c->opened || c->closed || c->lost) return;
                const Phase phase = shared_.phase.load();
                if (phase == Phase::close || phase == Phase::abort) {
                    c->closed = true;
                    ++closed_;
                    shared_.closed.fetch_add(1);
                    return;
                }
                shared_.report("server closed a client: " + std::to_string(code) + " " + why);
                lose(*c);
            });
            c->socket.connect();
        }
    }

    void settle_one() {
        --in_flight_;
        ++settled_;
        open_more();
    }

    void on_error(Client& c, std::error_code ec, const std::string& detail) {
        namespace pe = plume::client;
        if (!c.opened) {
            if (c.failed || ec != pe::error::connect_failed) return;
            c.failed = true;
            shared_.open_failed.fetch_add(1);
            shared_.report("open failed: " + detail);
            c.socket.disconnect();
            return settle_one();
        }
        const Phase phase = shared_.phase.load();
        if (phase == Phase::close || phase == Phase::abort) return;
        // Messages the benchmark has no use for (on_close counts lost connections).
        if (ec == pe::error::unknown_topic || ec == pe::error::unhandled_event ||
            ec == pe::error::unexpected_reply || ec == pe::error::malformed_frame)
            ++stats_.unexpected;
        shared_.report(ec.message() + ": " + detail.substr(0, 200));
    }

    void join(Client& c) {
        c.channel.join()
            .receive("ok",
                     [this, &c] {
                         if (std::exchange(c.joined, true)) return;
                         shared_.joined.fetch_add(1);
                         shared_.join_replied(now_ns());
                     })
            .receive("error",
                     [this, &c](const nlohmann::json& reason) {
                         if (std::exchange(c.joined, true)) return;
                         shared_.join_failed.fetch_add(1);
                         shared_.report("join refused: " + reason.dump());
                     })
            .receive("timeout", [this, &c] {
                if (std::exchange(c.joined, true)) return;
                shared_.join_failed.fetch_add(1);
                shared_.report("join timed out");
            });
    }

    void on_broadcast(Client& c, const nlohmann::json& payload) {
        const std::int64_t now = now_ns();
        const auto body = payload.find("body");
        std::uint32_t seq = 0;
        std::int64_t sent = 0;
        if (body == payload.end() || !body->is_string() ||
            !parse_stamp(body->get_ref<const std::string&>(), seq, sent)) {
            ++stats_.unexpected;
            shared_.report("unexpected new_msg: " + payload.dump().substr(0, 200));
            return;
        }
        if (seq != c.next_seq) ++stats_.out_of_order;
        c.next_seq = seq + 1;
        ++c.received;
        ++stats_.delivered;
        shared_.delivered.fetch_add(1, std::memory_order_relaxed);
        stats_.latency.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - sent)));
        stats_.last_delivery_ns = std::max(stats_.last_delivery_ns, now);
    }

    void lose(Client& c) {
        if (std::exchange(c.lost, true)) return;
        ++lost_;
        shared_.lost.fetch_add(1);
    }

    const Config& config_;
    Shared& shared_;
    ThreadStats& stats_;
    const std::string url_;
    const int first_, count_, sources_, concurrency_;
    asio::io_context io_{1};  // one thread: Asio may skip its locking
    std::vector<std::unique_ptr<Client>> clients_;
    int next_ = first_;
    int in_flight_ = 0;
    int settled_ = 0;
    int opened_ = 0;
    int closed_ = 0;
    int lost_ = 0;
};

void plume_client_thread(const Config& config, const std::string& url, int first, int count,
                         int sources, int concurrency, Shared& shared, ThreadStats& stats) {
    PlumeDriver(config, shared, stats, url, first, count, sources, concurrency).run();
}

// -------------------------------------------------------------- publisher --

/// The extra client that pushes new_msg, on its own thread and io_context.
/// It joins too, so it also receives every broadcast: with --rate 0 that copy
/// is its cue for the next push (--window pushes may be under way at once).
/// The pacing is here; RawPublisher and PlumePublisher send.
class Publisher {
  public:
    explicit Publisher(const Config& config)
        : config_(config), push_timer_(io_), guard_(asio::make_work_guard(io_)) {}
    virtual ~Publisher() = default;  // the derived class stops the thread

    std::atomic<bool> ready{false};
    std::atomic<bool> failed{false};
    std::atomic<bool> done_pushing{false};
    std::atomic<std::uint32_t> pushed{0};
    std::atomic<std::uint32_t> echoed{0};
    std::atomic<std::int64_t> first_push_ns{0};
    std::atomic<std::int64_t> last_push_ns{0};

    void start() {
        asio::post(io_, [this] {
            start_ = Clock::now();
            push(0);
            while (config_.rate <= 0 && pushed < static_cast<std::uint32_t>(config_.messages) &&
                   pushed < static_cast<std::uint32_t>(config_.window))
                push(pushed);
        });
    }
    void close() {
        asio::post(io_, [this] {
            closing_ = true;
            push_timer_.cancel();
            disconnect();
        });
    }

  protected:
    /// Sends new_msg number `seq` with `body` (io thread).
    virtual void send_new_msg(std::uint32_t seq, const std::string& body) = 0;
    /// Closes the connection politely (io thread).
    virtual void disconnect() = 0;

    void run_thread() {
        thread_ = std::thread([this] { io_.run(); });
    }
    /// Runs `teardown` on the io thread, then waits for the thread to end.
    template <class F>
    void stop_thread(F teardown) {
        asio::post(io_, [this, teardown]() mutable {
            push_timer_.cancel();
            teardown();
        });
        guard_.reset();
        if (thread_.joinable()) thread_.join();
    }

    /// One of our broadcasts came back (io thread).
    void on_echo(std::string_view body) {
        std::uint32_t seq = 0;
        std::int64_t sent = 0;
        if (!parse_stamp(body, seq, sent)) return;
        const std::uint32_t back = echoed.fetch_add(1) + 1;
        // --rate 0: keep --window pushes on their way.
        if (config_.rate <= 0 && pushed < static_cast<std::uint32_t>(config_.messages) &&
            pushed - back < static_cast<std::uint32_t>(config_.window))
            push(pushed);
    }

    const Config& config_;
    asio::io_context io_{1};
    bool closing_ = false;

  private:
    void push(std::uint32_t seq) {
        const std::int64_t now = now_ns();
        if (seq == 0) first_push_ns = now;
        last_push_ns = now;
        pushed = seq + 1;
        send_new_msg(seq, stamp_body(seq, now, config_.size));
        if (seq + 1 >= static_cast<std::uint32_t>(config_.messages)) {
            done_pushing = true;
            return;
        }
        if (config_.rate <= 0) return;  // the echoes pace the pushes
        // On an absolute schedule: a late push does not delay the ones after it.
        push_timer_.expires_at(start_ +
                               std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>((seq + 1) / config_.rate)));
        push_timer_.async_wait([this, seq](std::error_code ec) {
            if (!ec) push(seq + 1);
        });
    }

    asio::steady_timer push_timer_;
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    Clock::time_point start_{};
    std::thread thread_;
};

/// --driver epoll: the publisher speaks raw frames over a LoadConnection.
class RawPublisher final : public Publisher {
  public:
    RawPublisher(const Config& config, asio::ip::tcp::endpoint server, std::string host_header)
        : Publisher(config),
          server_(server),
          host_header_(std::move(host_header)),
          heartbeat_timer_(io_) {
        asio::post(io_, [this] { open(); });
        run_thread();
    }
    ~RawPublisher() override {
        stop_thread([this] {
            heartbeat_timer_.cancel();
            if (connection_) connection_->abort();
        });
    }

  private:
    void send_new_msg(std::uint32_t seq, const std::string& body) override {
        const std::string frame = R"(["1",")" + std::to_string(seq + 2) + R"(","room:lobby",)" +
                                  R"("new_msg",{"body":")" + body + R"("}])";
        connection_->send(Opcode::text, bytes_of(frame));
    }
    void disconnect() override {
        heartbeat_timer_.cancel();
        if (connection_) connection_->close(1000);
    }

    void open() {
        LoadConnection::Options options;
        options.host_header = host_header_;
        options.path = "/socket/websocket?vsn=2.0.0&user_id=publisher";
        connection_ = LoadConnection::create(io_, options, random_seed());
        connection_->on_message([this](Opcode, std::span<const std::uint8_t> data) {
            const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
            if (text.starts_with(join_reply_prefix)) {
                if (text.find(R"("status":"ok")") == std::string_view::npos) {
                    std::fprintf(stderr, "channel_fanout: publisher's join refused: %s\n",
                                 std::string(text).c_str());
                    failed = true;
                    return;
                }
                ready = true;
                heartbeat();
            } else if (text.starts_with(broadcast_prefix)) {
                on_echo(text.substr(broadcast_prefix.size()));
            }
        });
        connection_->on_closed([this](std::error_code ec, std::string_view why) {
            if (ec && !closing_)
                std::fprintf(stderr, "channel_fanout: publisher lost: %s (%.*s)\n",
                             ec.message().c_str(), static_cast<int>(why.size()), why.data());
        });
        connection_->async_open(
            server_, std::nullopt, [this](std::error_code ec, std::string_view why) {
                if (ec) {
                    std::fprintf(stderr,
                                 "channel_fanout: publisher open failed: %s "
                                 "(%.*s)\n",
                                 ec.message().c_str(), static_cast<int>(why.size()), why.data());
                    failed = true;
                    return;
                }
                connection_->send(Opcode::text, bytes_of(join_frame));
            });
    }

    void heartbeat() {
        heartbeat_timer_.expires_after(
            std::chrono::milliseconds(static_cast<long>(config_.heartbeat * 1000)));
        heartbeat_timer_.async_wait([this](std::error_code ec) {
            if (ec) return;
            const std::string hb = R"([null,"hb)" + std::to_string(++heartbeat_ref_) +
                                   R"(","phoenix","heartbeat",{}])";
            connection_->send(Opcode::text, bytes_of(hb));
            heartbeat();
        });
    }

    asio::ip::tcp::endpoint server_;
    std::string host_header_;
    asio::steady_timer heartbeat_timer_;
    std::shared_ptr<LoadConnection> connection_;
    std::uint64_t heartbeat_ref_ = 0;
};

/// --driver plume: the publisher is a plume::client::Socket too; it pushes
/// with channel.push("new_msg", {"body": ...}).
class PlumePublisher final : public Publisher {
  public:
    PlumePublisher(const Config& config, const std::string& url)
        : Publisher(config),
          socket_(std::make_unique<plume::client::Socket>(
              io_, plume_options(config, url, "publisher", "", config.heartbeat))) {
        channel_ = socket_->channel(std::string(topic));
        channel_.on("new_msg", [this](const nlohmann::json& payload) {
            const auto body = payload.find("body");
            if (body != payload.end() && body->is_string())
                on_echo(body->get_ref<const std::string&>());
        });
        socket_->on_error([this](std::error_code ec, const std::string& detail) {
            if (!closing_)
                std::fprintf(stderr, "channel_fanout: publisher: %s: %s\n", ec.message().c_str(),
                             detail.c_str());
        });
        channel_.join()
            .receive("ok", [this] { ready = true; })
            .receive("error", [this](const nlohmann::json& reason) {
                std::fprintf(stderr, "channel_fanout: publisher's join refused: %s\n",
                             reason.dump().c_str());
                failed = true;
            });
        socket_->connect();
        run_thread();
    }
    ~PlumePublisher() override {
        // Destroying the Socket stops its push timeouts (new_msg gets no reply).
        stop_thread([this] { socket_.reset(); });
    }

  private:
    void send_new_msg(std::uint32_t, const std::string& body) override {
        channel_.push("new_msg", {{"body", body}});
    }
    void disconnect() override { socket_->disconnect(1000); }

    std::unique_ptr<plume::client::Socket> socket_;
    plume::client::Channel channel_;
};

// ------------------------------------------------------------------ main --

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

double server_cpu(const ServerProcess& server) {
    return proc_cpu_seconds(server.pid()).value_or(-1);
}

void print_usage() {
    std::fputs(
        "usage: channel_fanout [--server build/release/examples/chat/chat] [--connections 10000]\n"
        "         [--messages 200] [--rate 20] [--size 64] [--server-threads 1]\n"
        "         [--client-threads 1] [--per-source 10000] [--concurrency 200]\n"
        "         [--open-timeout 120] [--join-timeout 60] [--settle 2] [--timeout 120]\n"
        "         [--window 1] [--heartbeat 30] [--driver plume|epoll] [--server-output]\n"
        "         [--compare-metrics RUNS] [-- SERVER ARGS...]\n",
        stderr);
}

// One measurement; its main figures in `figures` when given.
int run(const Config& config, RunFigures* figures = nullptr) {
    require_fd_limit(config.connections);
    const int sources = (config.connections + config.per_source - 1) / config.per_source;
    if (sources > 253)
        throw std::runtime_error("too many source addresses needed; raise --per-source");

    ServerProcess server;
    // --no-presence: the chat tracks every joiner otherwise, and each join's
    // presence_diff to every subscriber would make joining N clients O(N^2).
    // --no-rate-limits: thousands of connections from a few addresses and a
    // publisher pushing as fast as it can are the point of this benchmark.
    std::vector<std::string> args{"--port",        "0",
                                  "--threads",     std::to_string(config.server_threads),
                                  "--no-presence", "--no-rate-limits"};
    args.insert(args.end(), config.server_args.begin(), config.server_args.end());
    server.start(config.server, args, std::chrono::seconds(15), config.show_server_output);
    const std::string host = server.host().empty() ? "127.0.0.1" : server.host();
    const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(host), server.port());
    const std::string host_header = host + ":" + std::to_string(server.port());
    const pid_t pid = server.pid();

    // The publisher first: its join also faults in what the first join needs
    // once (channel code, router, JSON), so the baseline holds that.
    const std::string socket_url = "ws://" + host_header + "/socket";
    std::unique_ptr<Publisher> publisher;
    if (config.driver == "plume")
        publisher = std::make_unique<PlumePublisher>(config, socket_url);
    else
        publisher = std::make_unique<RawPublisher>(config, endpoint, host_header);
    if (!wait_until([&] { return publisher->ready.load() || publisher->failed.load(); }, 15) ||
        !publisher->ready) {
        std::fprintf(stderr, "channel_fanout: the publisher did not join\n");
        return 1;
    }
    const long rss_base = stable_rss_kib(pid);
    const RssBreakdown parts_base = proc_rss_breakdown(pid);
    const long slab_base = kernel_slab_kib();
    const long client_rss_base = proc_status_kib("self", "VmRSS").value_or(-1);

    // Clients: open.
    Shared shared;
    const int threads = config.client_threads;
    std::vector<ThreadStats> stats(static_cast<std::size_t>(threads));
    std::vector<std::thread> pool;
    const auto open_start = Clock::now();
    for (int t = 0, first = 0; t < threads; ++t) {
        const int count = config.connections / threads + (t < config.connections % threads);
        const int concurrency = std::max(1, config.concurrency / threads);
        auto& thread_stats = stats[static_cast<std::size_t>(t)];
        if (config.driver == "plume")
            pool.emplace_back(plume_client_thread, std::cref(config), std::cref(socket_url), first,
                              count, sources, concurrency, std::ref(shared),
                              std::ref(thread_stats));
        else
            pool.emplace_back(client_thread, std::cref(config), std::cref(endpoint),
                              std::cref(host_header), first, count, sources, concurrency,
                              std::ref(shared), std::ref(thread_stats));
        first += count;
    }
    auto last_progress = Clock::now();
    const auto progress = [&](const char* what, int done, int failed) {
        if (Clock::now() - last_progress < std::chrono::seconds(5)) return;
        last_progress = Clock::now();
        std::fprintf(stderr, "channel_fanout: %d %s, %d failed...\n", done, what, failed);
    };
    wait_until(
        [&] {
            progress("open", shared.opened, shared.open_failed);
            return shared.threads_running == threads;
        },
        config.open_timeout + 10);
    const double open_seconds = std::chrono::duration<double>(Clock::now() - open_start).count();

    // Everything below needs every client; on any failure, stop and say so.
    const auto give_up = [&](const std::string& why) {
        shared.phase = Phase::abort;
        for (auto& t : pool)
            t.join();
        std::printf("channel_fanout\n  result             not measured: %s\n", why.c_str());
        std::printf("  server stop        %s\n", server.stop(std::chrono::seconds(10)).c_str());
        return 1;
    };
    if (shared.opened != config.connections)
        return give_up(std::to_string(shared.opened) + " of " + std::to_string(config.connections) +
                       " connections opened");
    std::this_thread::sleep_for(std::chrono::duration<double>(config.settle));
    const long rss_open = stable_rss_kib(pid);
    const RssBreakdown parts_open = proc_rss_breakdown(pid);

    // Join.
    const auto join_start = Clock::now();
    last_progress = join_start;
    shared.phase = Phase::join;
    wait_until(
        [&] {
            progress("joined", shared.joined, shared.join_failed);
            return shared.joined + shared.join_failed + shared.lost >= config.connections;
        },
        config.join_timeout);
    const double join_seconds = std::chrono::duration<double>(Clock::now() - join_start).count();
    if (shared.joined != config.connections)
        return give_up(std::to_string(shared.joined) + " of " + std::to_string(config.connections) +
                       " clients joined in time");
    std::this_thread::sleep_for(std::chrono::duration<double>(config.settle));
    const long rss_joined = stable_rss_kib(pid);
    const RssBreakdown parts_joined = proc_rss_breakdown(pid);
    const long slab_joined = kernel_slab_kib();
    const long hwm_joined = proc_status_kib(std::to_string(pid), "VmHWM").value_or(-1);
    const long client_rss_joined = proc_status_kib("self", "VmRSS").value_or(-1);
    if (shared.lost != 0)
        return give_up(std::to_string(shared.lost) + " connections ended while idle");

    // Fan-out.
    const std::uint64_t expected = static_cast<std::uint64_t>(config.connections) *
                                   static_cast<std::uint64_t>(config.messages);
    const double limit =
        std::max(config.timeout, config.rate > 0 ? config.messages / config.rate + 30 : 0.0);
    const double server_cpu_before = server_cpu(server);
    const double client_cpu_before = self_cpu_seconds();
    const MachineCpu machine_before = machine_cpu();
    const auto fanout_start = Clock::now();
    publisher->start();
    const bool complete = wait_until(
        [&] { return shared.delivered.load() >= expected || shared.lost.load() > 0; }, limit);
    const auto fanout_end = Clock::now();
    const double server_cpu_used = server_cpu(server) - server_cpu_before;
    const double client_cpu_used = self_cpu_seconds() - client_cpu_before;
    const MachineCpu machine_after = machine_cpu();
    const long rss_after = rss_kib(pid);
    const long hwm_after = proc_status_kib(std::to_string(pid), "VmHWM").value_or(-1);
    const long server_threads_seen = proc_status_kib(std::to_string(pid), "Threads").value_or(-1);
    const std::uint32_t pushed = publisher->pushed;
    const std::uint32_t echoed = publisher->echoed;
    const std::int64_t first_push = publisher->first_push_ns;
    const std::int64_t last_push = publisher->last_push_ns;
    const int lost_connections = shared.lost;

    // Close politely (bounded inside each thread), then stop the server.
    shared.phase = Phase::close;
    publisher->close();
    for (auto& t : pool)
        t.join();
    const bool closed_cleanly = shared.closed == config.connections && lost_connections == 0;
    publisher.reset();
    const std::string server_end = server.stop(std::chrono::seconds(10));

    LatencyHistogram latency;
    std::uint64_t delivered = 0, out_of_order = 0, unexpected = 0, lost = 0;
    std::int64_t last_delivery = 0;
    for (const auto& s : stats) {
        latency.merge(s.latency);
        delivered += s.delivered;
        out_of_order += s.out_of_order;
        unexpected += s.unexpected;
        lost += s.lost;
        last_delivery = std::max(last_delivery, s.last_delivery_ns);
    }

    const double n = config.connections;
    const auto per_conn = [&](long kib) { return static_cast<double>(kib) * 1024.0 / n; };
    std::printf("channel_fanout\n");
    std::printf("  server             %s --threads %d (%ld thread%s in the process)\n",
                config.server.c_str(), config.server_threads, server_threads_seen,
                server_threads_seen == 1 ? "" : "s");
    std::printf("  url                ws://%s/socket/websocket?vsn=2.0.0&user_id=uK\n",
                host_header.c_str());
    std::printf(
        "  clients            %d joined %.*s (+1 publisher); %s driver, %d client thread%s, %d "
        "source address%s; opened in %.1f s, joined in %.1f s\n",
        config.connections, static_cast<int>(topic.size()), topic.data(), config.driver.c_str(),
        threads, threads == 1 ? "" : "s", sources, sources == 1 ? "" : "es", open_seconds,
        join_seconds);
    const double join_span =
        static_cast<double>(shared.last_join_reply_ns - shared.first_join_sent_ns) / 1e9;
    std::printf(
        "  joins/s            %.0f (%d join replies in %.3f s, first join sent to last "
        "reply)\n",
        join_span > 0 ? n / join_span : 0, config.connections, join_span);
    std::printf("  server RSS         %ld KiB baseline, %ld KiB open, %ld KiB joined\n", rss_base,
                rss_open, rss_joined);
    std::printf("  bytes per joined idle connection  %.0f\n", per_conn(rss_joined - rss_base));
    std::printf("    open socket %.0f + join %.0f\n", per_conn(rss_open - rss_base),
                per_conn(rss_joined - rss_open));
    std::printf(
        "    heap %.0f + %.0f, other anonymous %.0f + %.0f, stack %.0f, file %.0f (smaps, open "
        "+ join)\n",
        per_conn(parts_open.heap - parts_base.heap), per_conn(parts_joined.heap - parts_open.heap),
        per_conn(parts_open.anon_other - parts_base.anon_other),
        per_conn(parts_joined.anon_other - parts_open.anon_other),
        per_conn(parts_joined.stack - parts_base.stack),
        per_conn(parts_joined.file - parts_base.file));
    if (slab_base >= 0 && slab_joined >= 0)
        std::printf(
            "  kernel slab        %+.0f bytes per connection, both ends, machine-wide (not in "
            "RSS; rough)\n",
            per_conn(slab_joined - slab_base));
    std::printf(
        "  client RSS         %ld KiB joined (%.0f bytes per joined connection, %s driver)\n",
        client_rss_joined, per_conn(client_rss_joined - client_rss_base), config.driver.c_str());

    char pace[96];
    if (config.rate > 0)
        std::snprintf(pace, sizeof pace, "%g/s", config.rate);
    else
        std::snprintf(pace, sizeof pace, "as fast as they come back (%d on the way at most)",
                      config.window);
    std::printf("  fan-out            %d new_msg of %zu-byte bodies, %s, to %d subscribers\n",
                config.messages, config.size, pace, config.connections);
    const double push_seconds = static_cast<double>(last_push - first_push) / 1e9;
    const double span = static_cast<double>(last_delivery - first_push) / 1e9;
    std::printf("  pushes             %u sent in %.2f s (%u came back to the publisher)\n", pushed,
                push_seconds, echoed);
    std::printf("  deliveries         %" PRIu64 " of %" PRIu64
                " in %.2f s from first push to last"
                " delivery%s\n",
                delivered, expected, span,
                complete ? "" : " (INCOMPLETE: timed out or a connection was lost)");
    std::printf("  deliveries/s       %.0f\n",
                span > 0 ? static_cast<double>(delivered) / span : 0);
    const auto us = [&](double q) { return static_cast<double>(latency.quantile(q)) / 1000.0; };
    std::printf("  latency us         p50 %.0f  p90 %.0f  p99 %.0f  max %.0f  (push to delivery)\n",
                us(0.50), us(0.90), us(0.99), static_cast<double>(latency.max()) / 1000.0);
    std::printf("  lost               %" PRIu64 " messages, %" PRIu64 " out of order, %" PRIu64
                " unexpected frames, %d connections\n",
                lost, out_of_order, unexpected, lost_connections);
    const double window = std::chrono::duration<double>(fanout_end - fanout_start).count();
    const double per_delivery = delivered ? 1e6 / static_cast<double>(delivered) : 0;
    std::printf(
        "  server CPU         %.2f s in %.2f s (%.0f%% of one core, %.2f us per delivery)\n",
        server_cpu_used, window, 100.0 * server_cpu_used / window, server_cpu_used * per_delivery);
    std::printf("  client CPU         %.2f s (%.0f%% of one core, %.2f us per delivery)\n",
                client_cpu_used, 100.0 * client_cpu_used / window, client_cpu_used * per_delivery);
    const double others =
        machine_after.busy - machine_before.busy - client_cpu_used - server_cpu_used;
    std::printf(
        "  other load         %.0f%% of one core by other processes, %.0f%% stolen by the "
        "hypervisor\n",
        std::max(0.0, 100.0 * others / window),
        100.0 * (machine_after.steal - machine_before.steal) / window);
    std::printf("  server RSS after   %ld KiB (peak %ld KiB; peak before the fan-out %ld KiB)\n",
                rss_after, hwm_after, hwm_joined);
    std::printf("  clean close        %s\n", closed_cleanly ? "yes" : "no");
    std::printf("  server stop        %s\n", server_end.c_str());
    if (figures)
        *figures = {{"deliveries/s", span > 0 ? static_cast<double>(delivered) / span : 0,
                     "per second", true},
                    {"server CPU per delivery", server_cpu_used * per_delivery, "us", false},
                    {"latency p50", us(0.50), "us", false},
                    {"latency p99", us(0.99), "us", false}};
    return complete && lost == 0 && lost_connections == 0 && unexpected == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        CliArgs args(argc, argv, {"server-output", "help"});
        if (args.flag("help")) return print_usage(), 0;
        Config config;
        config.server = args.get("server", config.server);
        config.server_args = args.passthrough();
        config.connections = static_cast<int>(args.number("connections", 10000));
        config.messages = static_cast<int>(args.number("messages", 200));
        config.rate = args.number("rate", 20);
        config.size = static_cast<std::size_t>(args.number("size", 64));
        config.client_threads = static_cast<int>(args.number("client-threads", 1));
        config.server_threads = static_cast<int>(args.number("server-threads", 1));
        config.per_source = static_cast<int>(args.number("per-source", 10000));
        config.concurrency = static_cast<int>(args.number("concurrency", 200));
        config.open_timeout = args.number("open-timeout", 120);
        config.join_timeout = args.number("join-timeout", 60);
        config.settle = args.number("settle", 2);
        config.timeout = args.number("timeout", 120);
        config.heartbeat = args.number("heartbeat", 30);
        config.window = static_cast<int>(args.number("window", 1));
        config.driver = args.get("driver", config.driver);
        config.show_server_output = args.flag("server-output");
        const int compare = static_cast<int>(args.number("compare-metrics", 0));
        args.finish();
        if (config.connections < 1 || config.messages < 1 || config.client_threads < 1 ||
            config.client_threads > config.connections || config.server_threads < 1 ||
            config.per_source < 1 || config.concurrency < 1 || config.rate < 0 ||
            config.heartbeat <= 0 || config.timeout <= 0 || config.size > 4000 || config.window < 1)
            throw std::runtime_error(
                "counts must be positive, --rate >= 0, --size <= 4000 (the chat's limit)");
        if (config.driver != "plume" && config.driver != "epoll")
            throw std::runtime_error("--driver is plume or epoll");
        if (compare < 0) throw std::runtime_error("--compare-metrics wants a count of runs");
        if (compare > 0) return compare_metrics("channel_fanout", compare, config, run);
        return run(config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "channel_fanout: %s\n", e.what());
        return 1;
    }
}
