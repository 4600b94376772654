// lanes — priority lanes under pressure (issue 15): a room of --clients
// subscribers, --slow-fraction of them reading slowly, gets a mix of
// critical, normal and low events at a rate above what the slow readers take.
// Per lane and per group (fast, slow) it prints the delivery ratio and the
// latency percentiles, the connections the server closed, and from the
// server's /metrics what batching and coalescing of the low lane saved.
//
// Spawns benchmarks/lanes_server (--port 0, with --max-send-queue 64 KiB so
// a 10 s run reaches pressure and --notsent-lowat 16 KiB so the backlog waits
// in plume's queue, not the kernel's; 0 gives the server's defaults), opens
// --clients Phoenix V2 sockets (?vsn=2.0.0) from 127.0.0.2, 127.0.0.3, ...
// and joins them all to lanes:bench; the slow ones set SO_RCVBUF to
// --slow-rcvbuf before connecting and then read at most --slow-rate bytes/s
// (a --slow-tick-ms timer), so their backlog waits on the server. One more
// socket, the driver, pushes --rate "fire" events per second for --seconds on
// an absolute schedule, the lanes interleaved evenly in the proportions of
// --mix CRIT,NORM,LOW (smooth weighted round robin, so every run and pass
// fires the same sequence), each carrying its sequence number and its
// steady-clock send time (one clock: the same machine). The server
// broadcasts each to every subscriber but the driver, in the lane it names;
// low events carry a coalesce key out of --low-keys. Then the program waits
// until every fast reader has every critical and normal event and the last
// low one, every slow reader has every critical and normal event, and each has
// read nothing for --quiet seconds (or has been closed), bounded by --grace;
// closes everything, scrapes /metrics once the server has seen every close,
// and stops the server by PID.
//
// A baseline pass follows (skipped with --no-baseline): the same schedule
// with the low events left out (critical and normal at the same times), so
// the report can say whether the low-lane volume changes the critical p99.
// Each pass also gives a "settled" p99, of the events fired after --settle
// seconds: the slow readers fall behind in the first second (their receive
// buffers and the server's kernel send buffer fill before the server can
// tell they are slow), and that backlog takes a while to drain.
// --runs N repeats the pair and prints the medians.
//
//   lanes                                   # 1,000 clients, 200 events/s for 10 s
//   lanes --runs 3
//   lanes --low-keys 0                      # low events without a coalesce key
//   lanes --notsent-lowat 0                 # the kernel takes the backlog first
//   lanes --no-baseline -- --all-normal     # the server without lanes
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
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/bench_support.hpp"
#include "support/ws_load_client.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace plume_bench;

constexpr std::string_view topic = "lanes:bench";
constexpr std::string_view join_frame = R"(["1","1","lanes:bench","phx_join",{}])";
constexpr std::string_view join_reply_prefix = R"(["1","1","lanes:bench","phx_reply",)";
// An event as plume's V2 serializer writes it: [null,null,"lanes:bench","crit",{...}]
// (object keys sorted: "pad", "seq", "t").
constexpr std::string_view event_prefix = R"([null,null,"lanes:bench",")";

enum Lane : std::size_t { crit, norm, low, lane_count };
constexpr std::array<std::string_view, lane_count> lane_names = {"crit", "norm", "low"};
enum Group : std::size_t { fast, slow, group_count };
constexpr std::array<std::string_view, group_count> group_names = {"fast", "slow"};

struct Config {
    std::string server;  // default: lanes_server next to this program
    std::vector<std::string> server_args;
    int clients = 1000;
    double slow_fraction = 0.10;
    double rate = 200;  // events/s, all lanes together
    double seconds = 10;
    std::array<int, lane_count> mix = {1, 20, 79};
    std::size_t pad = 100;  // padding bytes in every event's payload
    int low_keys = 50;
    double slow_rate = 12288;  // bytes/s a slow reader takes
    int slow_rcvbuf = 4096;
    int slow_tick_ms = 10;
    std::size_t max_send_queue = 64 * 1024;  // passed to the server; 0: its default (4 MiB)
    std::size_t low_lane_limit = 0;          // 0: the server's default (half the queue)
    int low_window_ms = 100;
    std::size_t notsent_lowat = 16384;  // passed to the server; 0: the kernel's setting
    double grace = 15;
    double quiet = 0.5;  // a reader with what it waits for, silent this long, is done
    double settle = 2;   // the "settled" p99 counts events fired after this many seconds
    int runs = 1;
    bool baseline = true;
    int server_threads = 1;
    int client_threads = 1;
    int per_source = 10000;
    int concurrency = 200;
    double open_timeout = 60;
    bool show_server_output = false;
};

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

std::span<const std::uint8_t> bytes_of(std::string_view text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

/// The lane of every event, in firing order: smooth weighted round robin
/// (nginx's), so the lanes interleave evenly and each --mix period holds
/// exactly its shares.
std::vector<Lane> make_schedule(const Config& config) {
    const auto total = static_cast<std::size_t>(config.rate * config.seconds + 0.5);
    std::vector<Lane> out;
    out.reserve(total);
    std::array<long, lane_count> current{};
    long weight_sum = 0;
    for (int w : config.mix)
        weight_sum += w;
    for (std::size_t i = 0; i < total; ++i) {
        std::size_t best = 0;
        for (std::size_t l = 0; l < lane_count; ++l) {
            current[l] += config.mix[l];
            if (current[l] > current[best]) best = l;
        }
        current[best] -= weight_sum;
        out.push_back(static_cast<Lane>(best));
    }
    return out;
}

/// What one pass fires: the schedule, with or without its low events.
struct Plan {
    std::vector<Lane> schedule;  // lane of seq i
    bool with_low = true;
    std::array<std::uint64_t, lane_count> sent{};  // events fired per lane
    std::int64_t last_low_seq = -1;
    std::vector<std::int64_t> last_seq_of_key;  // last low seq per coalesce key (K > 0)

    Plan(std::vector<Lane> s, bool fire_low, int keys)
        : schedule(std::move(s)), with_low(fire_low) {
        if (keys > 0) last_seq_of_key.assign(static_cast<std::size_t>(keys), -1);
        for (std::size_t i = 0; i < schedule.size(); ++i) {
            if (!fires(i)) continue;
            ++sent[schedule[i]];
            if (schedule[i] != low) continue;
            last_low_seq = static_cast<std::int64_t>(i);
            if (keys > 0)
                last_seq_of_key[i % static_cast<std::size_t>(keys)] = static_cast<std::int64_t>(i);
        }
    }
    bool fires(std::size_t seq) const { return with_low || schedule[seq] != low; }
};

enum class Phase : int { open, join, fire, close, abort };

struct Shared {
    std::atomic<Phase> phase{Phase::open};
    std::atomic<int> opened{0};
    std::atomic<int> open_failed{0};
    std::atomic<int> threads_ready{0};  // connections detached, loop running
    std::atomic<int> joined{0};
    std::atomic<int> join_failed{0};
    std::atomic<int> done{0};        // clients that have what they will get
    std::atomic<bool> fired{false};  // the driver sent its last event
    std::atomic<std::int64_t> fire_start_ns{0};
    std::atomic<std::int64_t> fire_end_ns{0};
    std::atomic<bool> first_error_reported{false};

    void report(const std::string& what) {
        if (!first_error_reported.exchange(true)) std::fprintf(stderr, "lanes: %s\n", what.c_str());
    }
};

/// Figures of one group of clients (one thread's share, merged later).
struct GroupStats {
    std::array<LatencyHistogram, lane_count> latency;
    std::array<LatencyHistogram, lane_count> settled;  // events fired after --settle seconds
    std::array<std::uint64_t, lane_count> delivered{};
    std::array<std::uint64_t, lane_count> out_of_order{};  // within a lane, seq went back
    std::uint64_t closed_by_server = 0;  // the server closed or cut it before the end
    std::uint64_t closed_1008 = 0;       // ... with a close frame of code 1008
    std::uint64_t final_keys = 0;        // keys whose last low event arrived
    std::uint64_t bytes = 0;
    std::uint64_t bytes_while_firing = 0;  // read before the driver's last event
    std::uint64_t unexpected = 0;

    void merge(const GroupStats& o) {
        for (std::size_t l = 0; l < lane_count; ++l) {
            latency[l].merge(o.latency[l]);
            settled[l].merge(o.settled[l]);
            delivered[l] += o.delivered[l];
            out_of_order[l] += o.out_of_order[l];
        }
        closed_by_server += o.closed_by_server;
        closed_1008 += o.closed_1008;
        final_keys += o.final_keys;
        bytes += o.bytes;
        bytes_while_firing += o.bytes_while_firing;
        unexpected += o.unexpected;
    }
};

/// One client thread: opens its share of the subscribers with Asio, takes
/// their sockets over, joins them, then reads the fast ones as fast as they
/// come (epoll) and the slow ones on a timer, a byte budget at a time.
class ClientThread {
  public:
    ClientThread(const Config& config, const Plan& plan, Shared& shared, int first, int count)
        : config_(config), plan_(plan), shared_(shared), first_(first), count_(count) {}

    std::array<GroupStats, group_count> stats;

    void run(const asio::ip::tcp::endpoint& server, const std::string& host_header, int sources) {
        epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
        open_all(server, host_header, sources);
        shared_.threads_ready.fetch_add(1);
        loop();
        for (auto& c : conns_)
            finish(c, false);
        ::close(epoll_fd_);
    }

  private:
    struct Conn {
        int fd = -1;
        Group group = fast;
        FrameReader reader;
        FastRng rng{1};
        std::array<std::int64_t, lane_count> last_seq{-1, -1, -1};
        std::array<std::uint64_t, lane_count> received{};
        std::vector<std::int64_t> last_seq_of_key;  // last low seq received per key
        std::int64_t last_read_ns = 0;
        double budget = 0;  // slow readers: bytes they may read now
        bool joined = false;
        bool done = false;    // counted in Shared::done
        bool closed = false;  // fd closed
        bool close_sent = false;
        bool we_closed = false;  // we started the close (the end of the pass)
        std::uint16_t close_code = 0;
    };

    static bool is_slow(const Config& config, int index) {
        // Every 1/fraction-th client, so slow ones spread over threads and sources.
        if (config.slow_fraction <= 0) return false;
        const double step = 1.0 / config.slow_fraction;
        const auto k = static_cast<long>(index / step);
        return static_cast<long>(k * step) == index;
    }

    void open_all(const asio::ip::tcp::endpoint& server, const std::string& host_header,
                  int sources) {
        asio::io_context io{1};
        std::vector<std::shared_ptr<LoadConnection>> opening;
        std::vector<Group> groups;
        opening.reserve(static_cast<std::size_t>(count_));
        int next = first_, in_flight = 0, settled = 0;
        const int concurrency = std::max(1, config_.concurrency / config_.client_threads);
        std::function<void()> open_more = [&] {
            while (in_flight < concurrency && next < first_ + count_ &&
                   shared_.phase.load() != Phase::abort) {
                const int index = next++;
                const Group group = is_slow(config_, index) ? slow : fast;
                LoadConnection::Options options;
                options.host_header = host_header;
                options.path = "/socket/websocket?vsn=2.0.0";
                options.read_buffer = 16384;
                if (group == slow) options.receive_buffer = config_.slow_rcvbuf;
                auto connection = LoadConnection::create(io, options, random_seed());
                const auto source =
                    asio::ip::address_v4((127u << 24) | static_cast<unsigned>(2 + index % sources));
                ++in_flight;
                connection->async_open(server, asio::ip::address(source),
                                       [&](std::error_code ec, std::string_view why) {
                                           --in_flight;
                                           ++settled;
                                           if (ec) {
                                               shared_.open_failed.fetch_add(1);
                                               shared_.report("open failed: " + ec.message() +
                                                              " (" + std::string(why) + ")");
                                           } else {
                                               shared_.opened.fetch_add(1);
                                           }
                                           open_more();
                                       });
                opening.push_back(std::move(connection));
                groups.push_back(group);
            }
        };
        open_more();
        const auto deadline = Clock::now() + std::chrono::milliseconds(
                                                 static_cast<long>(config_.open_timeout * 1000));
        while (settled < static_cast<int>(opening.size()) || next < first_ + count_) {
            if (Clock::now() > deadline || shared_.phase.load() == Phase::abort) break;
            io.run_one_for(std::chrono::milliseconds(50));
        }
        conns_.reserve(opening.size());
        for (std::size_t i = 0; i < opening.size(); ++i) {
            if (!opening[i]->is_open()) continue;
            auto detached = opening[i]->detach();
            if (detached.fd < 0) continue;
            Conn c;
            c.fd = detached.fd;
            c.group = groups[i];
            c.reader = std::move(detached.reader);
            c.rng = FastRng(random_seed());
            if (!plan_.last_seq_of_key.empty())
                c.last_seq_of_key.assign(plan_.last_seq_of_key.size(), -1);
            conns_.push_back(std::move(c));
        }
        for (auto& c : opening)
            c->abort();  // those that did not open in time
        io.restart();
        io.run();  // the detached sockets' cancelled reads complete here
        for (std::size_t i = 0; i < conns_.size(); ++i) {
            if (conns_[i].group != fast) continue;
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u64 = i;
            epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, conns_[i].fd, &ev);
        }
    }

    void loop() {
        std::array<epoll_event, 256> events{};
        bool joins_sent = false;
        std::optional<Clock::time_point> close_deadline;
        const auto tick = std::chrono::milliseconds(std::max(1, config_.slow_tick_ms));
        auto next_tick = Clock::now() + tick;
        const double per_tick = config_.slow_rate * static_cast<double>(tick.count()) / 1000.0;
        for (;;) {
            const auto wait =
                std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - Clock::now());
            const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                                     static_cast<int>(std::clamp<long>(wait.count(), 0, 20)));
            for (int i = 0; i < n; ++i) {
                Conn& c = conns_[events[static_cast<std::size_t>(i)].data.u64];
                if (!c.closed) read(c, SIZE_MAX);
            }
            if (Clock::now() >= next_tick) {
                // The slow readers' rate: a budget per tick, at most two ticks' worth
                // saved up, so a slow reader never catches up in a burst.
                next_tick += tick;
                for (auto& c : conns_) {
                    if (c.group != slow || c.closed) continue;
                    c.budget = std::min(c.budget + per_tick, 2 * per_tick);
                    while (!c.closed && c.budget >= 1) {
                        const std::size_t got = read(c, static_cast<std::size_t>(c.budget));
                        if (got == 0) break;
                        c.budget -= static_cast<double>(got);
                    }
                }
            }
            const Phase phase = shared_.phase.load(std::memory_order_relaxed);
            if (phase == Phase::abort) break;
            if (phase != Phase::open && !joins_sent) {
                joins_sent = true;
                for (auto& c : conns_)
                    send(c, Opcode::text, bytes_of(join_frame));
            }
            if (phase == Phase::fire || phase == Phase::close) check_done();
            if (phase == Phase::close && !close_deadline) {
                close_deadline = Clock::now() + std::chrono::seconds(3);
                for (auto& c : conns_) {
                    if (c.closed) continue;
                    if (c.group == slow) {
                        finish(c, false);  // its backlog would hold the close back
                        continue;
                    }
                    static constexpr std::array<std::uint8_t, 2> normal{0x03, 0xE8};  // 1000
                    c.we_closed = c.close_sent = true;
                    send(c, Opcode::close, normal);
                }
            }
            if (close_deadline &&
                (Clock::now() > *close_deadline ||
                 std::all_of(conns_.begin(), conns_.end(), [](auto& c) { return c.closed; })))
                break;
        }
    }

    // Done: has every critical and normal event and (fast) the last low one,
    // and has read nothing for --quiet seconds (the server has nothing more
    // for it); or is closed.
    void check_done() {
        if (!shared_.fired.load(std::memory_order_acquire)) return;
        if (!fired_seen_) {
            fired_seen_ = true;
            for (auto& g : stats)
                g.bytes_while_firing = g.bytes;
        }
        const std::int64_t now = now_ns();
        for (auto& c : conns_) {
            if (c.done) continue;
            bool complete = c.closed;
            if (!complete) {
                const bool essentials =
                    c.received[crit] == plan_.sent[crit] && c.received[norm] == plan_.sent[norm];
                const bool last_low =
                    plan_.last_low_seq < 0 || c.last_seq[low] == plan_.last_low_seq;
                const bool quiet =
                    now - c.last_read_ns > static_cast<std::int64_t>(config_.quiet * 1e9);
                // A coalesced low event takes an earlier one's place, so the
                // last one can arrive before others: done once quiet too.
                complete = essentials && quiet && (last_low || c.group == slow);
            }
            if (complete) {
                c.done = true;
                shared_.done.fetch_add(1);
            }
        }
    }

    struct Sink {
        ClientThread& t;
        Conn& c;
        std::int64_t now;
        bool stopped() const { return c.closed; }
        void on_message(Opcode op, std::span<const std::uint8_t> data) {
            const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
            GroupStats& g = t.stats[c.group];
            if (op == Opcode::text && text.starts_with(event_prefix)) {
                const std::string_view rest = text.substr(event_prefix.size());
                const auto quote = rest.find('"');
                std::size_t lane = lane_count;
                for (std::size_t l = 0; l < lane_count; ++l)
                    if (rest.substr(0, quote) == lane_names[l]) lane = l;
                std::int64_t seq = -1, sent = 0;
                const auto s = text.rfind(R"("seq":)");
                const auto ts = text.rfind(R"("t":)");
                if (lane == lane_count || s == std::string_view::npos ||
                    ts == std::string_view::npos ||
                    std::from_chars(text.data() + s + 6, text.data() + text.size(), seq).ec !=
                        std::errc{} ||
                    std::from_chars(text.data() + ts + 4, text.data() + text.size(), sent).ec !=
                        std::errc{})
                    return t.unexpected(c, text);
                // A coalesced low event takes the place of the one it replaces,
                // ahead of other keys' events: with keys, order holds per key.
                const bool keyed = lane == low && !c.last_seq_of_key.empty();
                const std::int64_t previous =
                    keyed ? c.last_seq_of_key[static_cast<std::size_t>(seq) %
                                              c.last_seq_of_key.size()]
                          : c.last_seq[lane];
                if (seq <= previous) ++g.out_of_order[lane];
                c.last_seq[lane] = std::max(c.last_seq[lane], seq);
                ++c.received[lane];
                ++g.delivered[lane];
                const auto latency =
                    static_cast<std::uint64_t>(std::max<std::int64_t>(0, now - sent));
                g.latency[lane].record(latency);
                if (sent >= t.shared_.fire_start_ns.load(std::memory_order_relaxed) +
                                static_cast<std::int64_t>(t.config_.settle * 1e9))
                    g.settled[lane].record(latency);
                if (lane == low && !c.last_seq_of_key.empty()) {
                    auto& k =
                        c.last_seq_of_key[static_cast<std::size_t>(seq) % c.last_seq_of_key.size()];
                    k = std::max(k, seq);
                }
            } else if (op == Opcode::text && text.starts_with(join_reply_prefix)) {
                if (c.joined) return t.unexpected(c, text);
                c.joined = true;
                if (text.find(R"("status":"ok")") != std::string_view::npos) {
                    t.shared_.joined.fetch_add(1);
                } else {
                    t.shared_.join_failed.fetch_add(1);
                    t.shared_.report("join refused: " + std::string(text));
                }
            } else {
                t.unexpected(c, text);
            }
        }
        void on_ping(std::span<const std::uint8_t> payload) { t.send(c, Opcode::pong, payload); }
        void on_close(std::span<const std::uint8_t> payload) {
            c.close_code = payload.size() >= 2
                               ? static_cast<std::uint16_t>((payload[0] << 8) | payload[1])
                               : std::uint16_t{1005};
            if (!c.close_sent) {
                c.close_sent = true;
                t.send(c, Opcode::close, payload.first(std::min<std::size_t>(2, payload.size())));
            }
        }
    };

    void unexpected(Conn& c, std::string_view text) {
        ++stats[c.group].unexpected;
        shared_.report("unexpected frame: " + std::string(text.substr(0, 200)));
    }

    // One recv() of at most `limit` bytes; the bytes read (0: nothing came,
    // or the connection ended).
    std::size_t read(Conn& c, std::size_t limit) {
        auto space = c.reader.space();
        const ssize_t n = ::recv(c.fd, space.data(), std::min(limit, space.size()), MSG_DONTWAIT);
        if (n > 0) {
            const auto got = static_cast<std::size_t>(n);
            c.reader.commit(got);
            stats[c.group].bytes += got;
            c.last_read_ns = now_ns();
            Sink sink{*this, c, c.last_read_ns};
            if (const char* error = c.reader.drain(sink)) {
                shared_.report(std::string("protocol error: ") + error);
                finish(c, true);
            }
            return got;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) finish(c, true);
        return 0;
    }

    void send(Conn& c, Opcode op, std::span<const std::uint8_t> payload) {
        if (c.closed) return;
        std::vector<std::uint8_t> out;
        append_masked(out, c.rng, op, payload);
        // Small frames into a socket we barely write to: the kernel takes them whole.
        const ssize_t n = ::send(c.fd, out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n != static_cast<ssize_t>(out.size())) {
            shared_.report("a client could not send a frame");
            finish(c, true);
        }
    }

    // `by_peer`: the server closed or cut the connection (or it failed) before
    // we closed it ourselves.
    void finish(Conn& c, bool by_peer) {
        if (c.closed) return;
        c.closed = true;
        ::close(c.fd);  // also leaves the epoll set
        GroupStats& g = stats[c.group];
        if (by_peer && !c.we_closed) {
            ++g.closed_by_server;
            if (c.close_code == 1008) ++g.closed_1008;
        }
        for (std::size_t k = 0; k < c.last_seq_of_key.size(); ++k)
            if (plan_.last_seq_of_key[k] >= 0 && c.last_seq_of_key[k] == plan_.last_seq_of_key[k])
                ++g.final_keys;
    }

    const Config& config_;
    const Plan& plan_;
    Shared& shared_;
    int first_, count_;
    int epoll_fd_ = -1;
    std::vector<Conn> conns_;
    bool fired_seen_ = false;
};

}  // namespace

namespace {

/// The driver: one more socket, joined to the topic, that fires the plan's
/// events on an absolute schedule (a late event does not delay the next ones).
class Driver {
  public:
    Driver(const Config& config, const Plan& plan, Shared& shared)
        : config_(config), plan_(plan), shared_(shared) {}

    std::atomic<bool> ready{false};
    std::atomic<bool> failed{false};

    void run(const asio::ip::tcp::endpoint& server, const std::string& host_header) {
        asio::io_context io{1};
        LoadConnection::Options options;
        options.host_header = host_header;
        options.path = "/socket/websocket?vsn=2.0.0";
        auto conn = LoadConnection::create(io, options, random_seed());
        conn->on_message([&](Opcode, std::span<const std::uint8_t> data) {
            const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
            if (text.starts_with(join_reply_prefix) &&
                text.find(R"("status":"ok")") != std::string_view::npos)
                ready = true;
            else
                shared_.report("driver got: " + std::string(text.substr(0, 200)));
        });
        conn->on_closed([&](std::error_code, std::string_view why) {
            if (shared_.phase.load() != Phase::close) {
                shared_.report("the driver's connection closed: " + std::string(why));
                failed = true;
            }
        });
        conn->async_open(server, std::nullopt, [&](std::error_code ec, std::string_view why) {
            if (ec) {
                shared_.report("driver: open failed: " + ec.message() + " " + std::string(why));
                failed = true;
                return;
            }
            conn->send(Opcode::text, bytes_of(join_frame));
        });
        while (!ready && !failed && shared_.phase.load() != Phase::abort)
            io.run_one_for(std::chrono::milliseconds(20));
        while (!failed &&
               (shared_.phase.load() == Phase::open || shared_.phase.load() == Phase::join))
            io.run_one_for(std::chrono::milliseconds(5));
        if (!failed && shared_.phase.load() == Phase::fire) fire(io, *conn);
        shared_.fire_end_ns = now_ns();
        shared_.fired.store(true, std::memory_order_release);
        while (shared_.phase.load() == Phase::fire)
            io.run_one_for(std::chrono::milliseconds(20));
        conn->close(1000);
        const auto until = Clock::now() + std::chrono::seconds(3);
        while (!io.stopped() && Clock::now() < until)
            io.run_one_for(std::chrono::milliseconds(20));
        conn->abort();
        io.restart();
        io.poll();
    }

  private:
    void fire(asio::io_context& io, LoadConnection& conn) {
        const std::string pad(config_.pad, 'x');
        const auto start = Clock::now();
        shared_.fire_start_ns = now_ns();
        const double period_ns = 1e9 / config_.rate;
        asio::steady_timer timer(io);
        std::uint64_t ref = 1;
        std::string frame;
        for (std::size_t seq = 0; seq < plan_.schedule.size() && !failed;) {
            const auto due =
                start + std::chrono::nanoseconds(static_cast<long long>(seq * period_ns));
            if (Clock::now() < due) {
                // Wait for the next event's time (the pacing of the load, not
                // a synchronisation); handlers run meanwhile.
                timer.expires_at(due);
                timer.async_wait([](std::error_code) {});
                while (Clock::now() < due && !failed && shared_.phase.load() == Phase::fire)
                    io.run_one_for(std::chrono::milliseconds(20));
                if (shared_.phase.load() != Phase::fire) return;
                continue;
            }
            // Every event that is due, in one write.
            for (; seq < plan_.schedule.size() &&
                   start + std::chrono::nanoseconds(static_cast<long long>(seq * period_ns)) <=
                       Clock::now();
                 ++seq) {
                if (!plan_.fires(seq)) continue;
                frame.clear();
                frame += R"(["1",")";
                frame += std::to_string(++ref);
                frame += R"(","lanes:bench","fire",{"lane":")";
                frame += lane_names[plan_.schedule[seq]];
                frame += R"(","pad":")";
                frame += pad;
                frame += R"(","seq":)";
                frame += std::to_string(seq);
                frame += R"(,"t":)";
                frame += std::to_string(now_ns());
                frame += "}]";
                conn.send(Opcode::text, bytes_of(frame));
            }
            io.poll();
        }
        // Let the last write leave before the end is declared.
        const auto until = Clock::now() + std::chrono::seconds(2);
        while (Clock::now() < until && io.poll() > 0) {
        }
    }

    const Config& config_;
    const Plan& plan_;
    Shared& shared_;
};

// ------------------------------------------------------------- /metrics --

/// GET http://host:port/path with Connection: close; the body, or empty.
/// Plain POSIX calls with 5 s send/receive timeouts, so a stuck server
/// cannot hold the benchmark.
std::string http_get(const std::string& host, std::uint16_t port, const std::string& path) {
    std::error_code ec;
    const auto address = asio::ip::make_address(host, ec);
    if (ec) return {};
    const asio::ip::tcp::endpoint endpoint(address, port);
    const int fd = ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return {};
    const timeval timeout{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    std::string response;
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + host + ":" +
                                std::to_string(port) + "\r\nConnection: close\r\n\r\n";
    if (::connect(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) == 0 &&
        ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size())) {
        char chunk[16384];
        for (ssize_t n; (n = ::recv(fd, chunk, sizeof chunk, 0)) > 0;)
            response.append(chunk, static_cast<std::size_t>(n));
    }
    ::close(fd);
    const auto body = response.find("\r\n\r\n");
    if (!response.starts_with("HTTP/1.1 200") || body == std::string::npos) return {};
    return response.substr(body + 4);
}

/// The samples of a Prometheus text exposition: name, labels, value.
struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};

std::vector<Sample> parse_exposition(std::string_view text) {
    std::vector<Sample> out;
    while (!text.empty()) {
        const auto eol = text.find('\n');
        std::string_view line = text.substr(0, eol);
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
        if (line.empty() || line.front() == '#') continue;
        Sample s;
        const auto name_end = line.find_first_of("{ ");
        if (name_end == std::string_view::npos) continue;
        s.name = std::string(line.substr(0, name_end));
        std::string_view rest = line.substr(name_end);
        if (rest.front() == '{') {
            // name="value" pairs; values escape \\, \" and \n.
            std::size_t i = 1;
            while (i < rest.size() && rest[i] != '}') {
                const auto eq = rest.find('=', i);
                if (eq == std::string_view::npos || eq + 1 >= rest.size() || rest[eq + 1] != '"')
                    break;
                std::string key(rest.substr(i, eq - i)), value;
                std::size_t j = eq + 2;
                for (; j < rest.size() && rest[j] != '"'; ++j) {
                    if (rest[j] == '\\' && j + 1 < rest.size()) ++j;
                    value += rest[j] == 'n' && rest[j - 1] == '\\' ? '\n' : rest[j];
                }
                s.labels[key] = value;
                i = j + 1;
                if (i < rest.size() && rest[i] == ',') ++i;
            }
            rest.remove_prefix(std::min(rest.size(), rest.find('}') + 1));
        }
        while (!rest.empty() && rest.front() == ' ')
            rest.remove_prefix(1);
        const std::string value(rest.substr(0, rest.find(' ')));
        char* end = nullptr;
        s.value = std::strtod(value.c_str(), &end);
        if (end != value.c_str()) out.push_back(std::move(s));
    }
    return out;
}

/// The sum of the samples of `name` whose labels include `want`; none if there is none.
std::optional<double> metric(const std::vector<Sample>& samples, std::string_view name,
                             const std::map<std::string, std::string>& want) {
    std::optional<double> sum;
    for (const auto& s : samples) {
        if (s.name != name) continue;
        bool match = true;
        for (const auto& [k, v] : want) {
            const auto it = s.labels.find(k);
            match = match && it != s.labels.end() && it->second == v;
        }
        if (match) sum = sum.value_or(0) + s.value;
    }
    return sum;
}

// ------------------------------------------------------------- one pass --

/// A pass's figures by name ("crit.fast.p99_ms", "low_frames", ...); a
/// figure that could not be had (a metric missing) is absent.
using Figures = std::map<std::string, double>;

std::string key(Lane l, Group g, std::string_view what) {
    return std::string(lane_names[l]) + "." + std::string(group_names[g]) + "." + std::string(what);
}

bool wait_until(const std::function<bool()>& done, double seconds) {
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(static_cast<long>(seconds * 1000));
    while (!done()) {
        if (Clock::now() >= deadline) return false;
        // Polling counters the other threads advance; nothing waits on this.
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

std::string default_server_path() {
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return "build/release/benchmarks/lanes_server";
    std::string path(self, static_cast<std::size_t>(n));
    return path.substr(0, path.rfind('/') + 1) + "lanes_server";
}

/// Starts a server, runs one pass of the plan, stops the server. Nothing on failure.
std::optional<Figures> run_pass(const Config& config, const Plan& plan) {
    ServerProcess server;
    std::vector<std::string> args{"--port",          "0",
                                  "--threads",       std::to_string(config.server_threads),
                                  "--low-keys",      std::to_string(config.low_keys),
                                  "--low-window-ms", std::to_string(config.low_window_ms)};
    if (config.max_send_queue)
        args.insert(args.end(), {"--max-send-queue", std::to_string(config.max_send_queue)});
    if (config.notsent_lowat)
        args.insert(args.end(), {"--notsent-lowat", std::to_string(config.notsent_lowat)});
    if (config.low_lane_limit)
        args.insert(args.end(), {"--low-lane-limit", std::to_string(config.low_lane_limit)});
    args.insert(args.end(), config.server_args.begin(), config.server_args.end());
    server.start(config.server, args, std::chrono::seconds(15), config.show_server_output);
    const std::string host = server.host().empty() ? "127.0.0.1" : server.host();
    const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(host), server.port());
    const std::string host_header = host + ":" + std::to_string(server.port());
    const int sources = (config.clients + config.per_source - 1) / config.per_source;

    Shared shared;
    const int threads = config.client_threads;
    std::vector<std::unique_ptr<ClientThread>> clients;
    std::vector<std::thread> pool;
    for (int t = 0, first = 0; t < threads; ++t) {
        const int count = config.clients / threads + (t < config.clients % threads);
        clients.push_back(std::make_unique<ClientThread>(config, plan, shared, first, count));
        pool.emplace_back(
            [&, c = clients.back().get()] { c->run(endpoint, host_header, sources); });
        first += count;
    }
    Driver driver(config, plan, shared);
    std::thread driver_thread([&] { driver.run(endpoint, host_header); });

    const auto give_up = [&](const std::string& why) -> std::optional<Figures> {
        shared.phase = Phase::abort;
        for (auto& t : pool)
            t.join();
        driver_thread.join();
        std::printf("  not measured: %s\n  server stop: %s\n", why.c_str(),
                    server.stop(std::chrono::seconds(10)).c_str());
        return std::nullopt;
    };
    wait_until([&] { return shared.threads_ready == threads; }, config.open_timeout + 10);
    if (shared.opened != config.clients)
        return give_up(std::to_string(shared.opened) + " of " + std::to_string(config.clients) +
                       " connections opened");
    shared.phase = Phase::join;
    wait_until(
        [&] {
            return (shared.joined + shared.join_failed >= config.clients && driver.ready) ||
                   driver.failed;
        },
        30);
    if (shared.joined != config.clients || !driver.ready)
        return give_up(std::to_string(shared.joined) + " of " + std::to_string(config.clients) +
                       " clients joined" + (driver.ready ? "" : ", the driver did not join"));

    const double cpu_before = proc_cpu_seconds(server.pid()).value_or(0);
    const auto fire_start = Clock::now();
    shared.phase = Phase::fire;
    const bool fired = wait_until([&] { return shared.fired.load(); }, config.seconds * 3 + 30);
    const auto fire_end = Clock::now();
    const bool complete =
        fired && wait_until([&] { return shared.done == config.clients; }, config.grace);
    const double drain_seconds = std::chrono::duration<double>(Clock::now() - fire_end).count();
    const double cpu_used = proc_cpu_seconds(server.pid()).value_or(0) - cpu_before;
    shared.phase = Phase::close;
    for (auto& t : pool)
        t.join();
    driver_thread.join();
    // The server counts a connection's lane figures when it ends: scrape once
    // it has seen every close (bounded; the last answer is used either way).
    std::string exposition;
    wait_until(
        [&] {
            exposition = http_get(host, server.port(), "/metrics");
            const auto open = metric(parse_exposition(exposition), "plume_connections_open",
                                     {{"transport", "websocket"}});
            return !open || *open <= 0;  // the scrape itself is plain HTTP, not a socket
        },
        5);
    const std::string server_end = server.stop(std::chrono::seconds(10));

    std::array<GroupStats, group_count> stats;
    for (auto& c : clients)
        for (std::size_t g = 0; g < group_count; ++g)
            stats[g].merge(c->stats[g]);
    int members[group_count] = {0, 0};
    for (int i = 0; i < config.clients; ++i) {
        const double step = config.slow_fraction > 0 ? 1.0 / config.slow_fraction : 0;
        const bool is_slow = step > 0 && static_cast<long>(static_cast<long>(i / step) * step) == i;
        ++members[is_slow ? slow : fast];
    }

    Figures f;
    f["complete"] = complete ? 1 : 0;
    f["fire_s"] = std::chrono::duration<double>(fire_end - fire_start).count();
    f["drain_s"] = drain_seconds;
    f["server_cpu_s"] = cpu_used;
    for (std::size_t g = 0; g < group_count; ++g) {
        const auto group = static_cast<Group>(g);
        f[std::string(group_names[g]) + ".clients"] = members[g];
        f[std::string(group_names[g]) + ".closed"] = static_cast<double>(stats[g].closed_by_server);
        f[std::string(group_names[g]) + ".closed_1008"] = static_cast<double>(stats[g].closed_1008);
        f[std::string(group_names[g]) + ".bytes_per_s"] =
            members[g] ? static_cast<double>(stats[g].bytes_while_firing) / members[g] / f["fire_s"]
                       : 0;
        f[std::string(group_names[g]) + ".unexpected"] = static_cast<double>(stats[g].unexpected);
        if (!plan.last_seq_of_key.empty() && plan.sent[low] > 0) {
            const auto keys =
                std::count_if(plan.last_seq_of_key.begin(), plan.last_seq_of_key.end(),
                              [](std::int64_t s) { return s >= 0; });
            f[std::string(group_names[g]) + ".final_keys"] =
                members[g] ? 100.0 * static_cast<double>(stats[g].final_keys) /
                                 static_cast<double>(keys * members[g])
                           : 0;
        }
        for (std::size_t l = 0; l < lane_count; ++l) {
            const auto lane = static_cast<Lane>(l);
            if (plan.sent[l] == 0) continue;
            const double expected = static_cast<double>(plan.sent[l]) * members[g];
            f[key(lane, group, "sent")] = static_cast<double>(plan.sent[l]);
            f[key(lane, group, "delivered")] = static_cast<double>(stats[g].delivered[l]);
            f[key(lane, group, "ratio")] =
                expected > 0 ? 100.0 * static_cast<double>(stats[g].delivered[l]) / expected : 0;
            f[key(lane, group, "out_of_order")] = static_cast<double>(stats[g].out_of_order[l]);
            const auto& h = stats[g].latency[l];
            if (h.total() == 0) continue;
            f[key(lane, group, "p50_ms")] = static_cast<double>(h.quantile(0.50)) / 1e6;
            f[key(lane, group, "p99_ms")] = static_cast<double>(h.quantile(0.99)) / 1e6;
            f[key(lane, group, "max_ms")] = static_cast<double>(h.max()) / 1e6;
            if (const auto& late = stats[g].settled[l]; late.total() > 0)
                f[key(lane, group, "settled_p99_ms")] =
                    static_cast<double>(late.quantile(0.99)) / 1e6;
        }
    }
    const auto samples = parse_exposition(exposition);
    const auto put = [&](const char* name, std::optional<double> v) {
        if (v) f[name] = *v;
    };
    put("low_frames", metric(samples, "plume_lane_frames_total", {{"lane", "low"}}));
    put("low_batches", metric(samples, "plume_lane_batches_total", {{"lane", "low"}}));
    put("low_dropped",
        metric(samples, "plume_dropped_total", {{"lane", "low"}, {"reason", "pressure"}}));
    put("low_coalesced", metric(samples, "plume_coalesced_total", {{"lane", "low"}}));
    put("fell_behind", metric(samples, "plume_fell_behind_total", {}));
    put("overflow_closes", metric(samples, "plume_dropped_total", {{"reason", "overflow"}}));
    put("broadcast_frames", metric(samples, "plume_broadcast_deliveries_total", {}));
    if (!server_end.starts_with("exited with status 0"))
        std::printf("  server stop: %s\n", server_end.c_str());
    if (exposition.empty()) std::printf("  /metrics: no answer\n");
    return f;
}

// -------------------------------------------------------------- report --

std::string fmt(const Figures& f, const std::string& name, const char* format = "%.1f") {
    const auto it = f.find(name);
    if (it == f.end()) return "-";
    char buf[64];
    std::snprintf(buf, sizeof buf, format, it->second);
    return buf;
}

std::string with_commas(double v) {
    std::string digits = std::to_string(static_cast<long long>(v + 0.5));
    for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3)
        digits.insert(static_cast<std::size_t>(i), ",");
    return digits;
}

std::string metric_text(const Figures& f, const char* name) {
    const auto it = f.find(name);
    return it == f.end() ? "n/a (metric missing)" : with_commas(it->second);
}

void print_pass(const Figures& f, const Plan& plan) {
    std::printf("  %-5s %-5s %11s %16s %9s %9s %9s %9s %9s %7s\n", "lane", "group", "sent/client",
                "delivered", "ratio", "p50 ms", "p99 ms", "max ms", "settled", "order");
    for (std::size_t l = 0; l < lane_count; ++l) {
        if (plan.sent[l] == 0) continue;
        for (std::size_t g = 0; g < group_count; ++g) {
            const auto lane = static_cast<Lane>(l);
            const auto group = static_cast<Group>(g);
            const double clients = f.at(std::string(group_names[g]) + ".clients");
            if (clients == 0) continue;
            const std::string delivered = with_commas(f.at(key(lane, group, "delivered"))) + "/" +
                                          with_commas(static_cast<double>(plan.sent[l]) * clients);
            std::printf("  %-5s %-5s %11s %16s %8s%% %9s %9s %9s %9s %7s\n", lane_names[l].data(),
                        group_names[g].data(),
                        with_commas(static_cast<double>(plan.sent[l])).c_str(), delivered.c_str(),
                        fmt(f, key(lane, group, "ratio"), "%.2f").c_str(),
                        fmt(f, key(lane, group, "p50_ms"), "%.2f").c_str(),
                        fmt(f, key(lane, group, "p99_ms"), "%.2f").c_str(),
                        fmt(f, key(lane, group, "max_ms"), "%.1f").c_str(),
                        fmt(f, key(lane, group, "settled_p99_ms"), "%.2f").c_str(),
                        fmt(f, key(lane, group, "out_of_order"), "%.0f").c_str());
        }
    }
    std::printf("  closed by the server   fast %s (1008: %s), slow %s (1008: %s)\n",
                fmt(f, "fast.closed", "%.0f").c_str(), fmt(f, "fast.closed_1008", "%.0f").c_str(),
                fmt(f, "slow.closed", "%.0f").c_str(), fmt(f, "slow.closed_1008", "%.0f").c_str());
    if (f.contains("fast.final_keys"))
        std::printf("  keys whose last low event arrived  fast %s%%, slow %s%%\n",
                    fmt(f, "fast.final_keys").c_str(), fmt(f, "slow.final_keys").c_str());
    std::printf("  bytes/s read per client while firing  fast %s, slow %s\n",
                with_commas(f.at("fast.bytes_per_s")).c_str(),
                with_commas(f.at("slow.bytes_per_s")).c_str());
    std::printf("  fired in %.1f s; everything in %.1f s later%s; server CPU %.2f s\n",
                f.at("fire_s"), f.at("drain_s"),
                f.at("complete") > 0 ? "" : " (grace ran out: not everyone had everything)",
                f.at("server_cpu_s"));
    if (plan.sent[low] > 0) {
        std::printf("  server: low frames sent %s, writes carrying low frames %s",
                    metric_text(f, "low_frames").c_str(), metric_text(f, "low_batches").c_str());
        if (f.contains("low_frames") && f.contains("low_batches") && f.at("low_batches") > 0)
            std::printf(" (%.1f low frames per write: %s fewer writes than one per frame)",
                        f.at("low_frames") / f.at("low_batches"),
                        with_commas(f.at("low_frames") - f.at("low_batches")).c_str());
        std::printf(
            "\n  server: low dropped under pressure %s, low coalesced %s, "
            "connections fell behind %s\n",
            metric_text(f, "low_dropped").c_str(), metric_text(f, "low_coalesced").c_str(),
            metric_text(f, "fell_behind").c_str());
    }
    std::printf("  server: broadcast frames queued %s, 1008 overflow closes %s\n",
                metric_text(f, "broadcast_frames").c_str(),
                metric_text(f, "overflow_closes").c_str());
}

/// The median of each figure present in every run.
Figures medians(const std::vector<Figures>& runs) {
    Figures out;
    if (runs.empty()) return out;
    for (const auto& [name, ignored] : runs.front()) {
        std::vector<double> v;
        for (const auto& r : runs)
            if (const auto it = r.find(name); it != r.end()) v.push_back(it->second);
        if (v.size() != runs.size()) continue;
        std::sort(v.begin(), v.end());
        out[name] = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
    }
    return out;
}

void print_comparison(const Figures& mix, const Figures& base) {
    std::printf(
        "\nlow-lane volume against none (baseline): p99 ms with / without (ratio); settled: "
        "of the events fired after --settle s\n");
    for (Lane lane : {crit, norm}) {
        for (std::size_t g = 0; g < group_count; ++g) {
            const auto group = static_cast<Group>(g);
            const auto name = key(lane, group, "p99_ms");
            if (!mix.contains(name) || !base.contains(name)) continue;
            const auto settled = key(lane, group, "settled_p99_ms");
            std::string late = "-";
            if (mix.contains(settled) && base.contains(settled) && base.at(settled) > 0) {
                char buf[96];
                std::snprintf(buf, sizeof buf, "%.2f / %.2f (%.2fx)", mix.at(settled),
                              base.at(settled), mix.at(settled) / base.at(settled));
                late = buf;
            }
            std::printf("  %-5s %-5s %9.2f / %-9.2f (%.2fx)   settled %s   delivered %s%% / %s%%\n",
                        lane_names[lane].data(), group_names[g].data(), mix.at(name), base.at(name),
                        base.at(name) > 0 ? mix.at(name) / base.at(name) : 0.0, late.c_str(),
                        fmt(mix, key(lane, group, "ratio"), "%.2f").c_str(),
                        fmt(base, key(lane, group, "ratio"), "%.2f").c_str());
        }
    }
}

void print_usage() {
    std::fputs(
        "usage: lanes [--server PATH] [--clients 1000] [--slow-fraction 0.1] [--rate 200]\n"
        "             [--seconds 10] [--mix 1,20,79] [--pad 100] [--low-keys 50]\n"
        "             [--slow-rate 12288] [--slow-rcvbuf 4096] [--slow-tick-ms 10]\n"
        "             [--max-send-queue 65536] [--low-lane-limit 0] [--low-window-ms 100]\n"
        "             [--notsent-lowat 16384]\n"
        "             [--grace 15] [--quiet 0.5] [--settle 2] [--runs 1] [--no-baseline]\n"
        "             [--server-threads 1] [--client-threads 1] [--per-source 10000]\n"
        "             [--concurrency 200] [--open-timeout 60] [--server-output]\n"
        "             [-- SERVER ARGS...]\n",
        stderr);
}

std::array<int, lane_count> parse_mix(const std::string& text) {
    std::array<int, lane_count> out{};
    std::size_t at = 0;
    for (std::size_t l = 0; l < lane_count; ++l) {
        const auto comma = text.find(',', at);
        const std::string part = text.substr(at, comma - at);
        if (std::from_chars(part.data(), part.data() + part.size(), out[l]).ec != std::errc{} ||
            out[l] < 0 || (l + 1 < lane_count) != (comma != std::string::npos))
            throw std::runtime_error("--mix wants CRIT,NORM,LOW weights, got " + text);
        at = comma + 1;
    }
    if (out[crit] + out[norm] + out[low] == 0) throw std::runtime_error("--mix is all zero");
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    Config config;
    try {
        CliArgs args(argc, argv, {"no-baseline", "server-output", "help"});
        if (args.flag("help")) {
            print_usage();
            return 0;
        }
        config.server = args.get("server", default_server_path());
        config.server_args = args.passthrough();
        config.clients = static_cast<int>(args.number("clients", config.clients));
        config.slow_fraction = args.number("slow-fraction", config.slow_fraction);
        config.rate = args.number("rate", config.rate);
        config.seconds = args.number("seconds", config.seconds);
        config.mix = parse_mix(args.get("mix", "1,20,79"));
        config.pad = static_cast<std::size_t>(args.number("pad", static_cast<double>(config.pad)));
        config.low_keys = static_cast<int>(args.number("low-keys", config.low_keys));
        config.slow_rate = args.number("slow-rate", config.slow_rate);
        config.slow_rcvbuf = static_cast<int>(args.number("slow-rcvbuf", config.slow_rcvbuf));
        config.slow_tick_ms = static_cast<int>(args.number("slow-tick-ms", config.slow_tick_ms));
        config.max_send_queue = static_cast<std::size_t>(
            args.number("max-send-queue", static_cast<double>(config.max_send_queue)));
        config.low_lane_limit = static_cast<std::size_t>(
            args.number("low-lane-limit", static_cast<double>(config.low_lane_limit)));
        config.low_window_ms = static_cast<int>(args.number("low-window-ms", config.low_window_ms));
        config.notsent_lowat = static_cast<std::size_t>(
            args.number("notsent-lowat", static_cast<double>(config.notsent_lowat)));
        config.grace = args.number("grace", config.grace);
        config.quiet = args.number("quiet", config.quiet);
        config.settle = args.number("settle", config.settle);
        config.runs = std::max(1, static_cast<int>(args.number("runs", config.runs)));
        config.baseline = !args.flag("no-baseline");
        config.server_threads =
            std::max(1, static_cast<int>(args.number("server-threads", config.server_threads)));
        config.client_threads =
            std::max(1, static_cast<int>(args.number("client-threads", config.client_threads)));
        config.per_source =
            std::max(1, static_cast<int>(args.number("per-source", config.per_source)));
        config.concurrency =
            std::max(1, static_cast<int>(args.number("concurrency", config.concurrency)));
        config.open_timeout = args.number("open-timeout", config.open_timeout);
        config.show_server_output = args.flag("server-output");
        args.finish();
        if (config.clients < 1 || config.rate <= 0 || config.seconds <= 0 ||
            config.slow_fraction < 0 || config.slow_fraction > 1 || config.low_keys < 0 ||
            config.slow_rate <= 0)
            throw std::runtime_error(
                "--clients, --rate, --seconds, --slow-rate must be > 0, "
                "--slow-fraction in [0, 1], --low-keys >= 0");
        if ((config.clients + config.per_source - 1) / config.per_source > 253)
            throw std::runtime_error("too many source addresses needed; raise --per-source");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "lanes: %s\n", e.what());
        print_usage();
        return 2;
    }
    try {
        require_fd_limit(config.clients + 16);
        const auto schedule = make_schedule(config);
        const Plan mix_plan(schedule, true, config.low_keys);
        const Plan base_plan(schedule, false, config.low_keys);
        std::printf(
            "lanes: %d clients (%d%% slow: SO_RCVBUF %d, %s bytes/s), %s events/s for "
            "%.0f s, mix %d/%d/%d crit/norm/low, %zu pad bytes, low keys %d, "
            "max_send_queue %s, low window %d ms, tcp_notsent_lowat %s\n",
            config.clients, static_cast<int>(config.slow_fraction * 100 + 0.5), config.slow_rcvbuf,
            with_commas(config.slow_rate).c_str(), with_commas(config.rate).c_str(), config.seconds,
            config.mix[crit], config.mix[norm], config.mix[low], config.pad, config.low_keys,
            config.max_send_queue ? with_commas(static_cast<double>(config.max_send_queue)).c_str()
                                  : "server default",
            config.low_window_ms,
            config.notsent_lowat ? with_commas(static_cast<double>(config.notsent_lowat)).c_str()
                                 : "kernel default");
        std::vector<Figures> mixes, bases;
        for (int run = 1; run <= config.runs; ++run) {
            std::printf("\nrun %d: lanes (crit+norm+low)\n", run);
            std::fflush(stdout);
            if (auto f = run_pass(config, mix_plan)) {
                print_pass(*f, mix_plan);
                mixes.push_back(std::move(*f));
            }
            if (!config.baseline) continue;
            std::printf("\nrun %d: baseline (crit+norm only, same times)\n", run);
            std::fflush(stdout);
            if (auto f = run_pass(config, base_plan)) {
                print_pass(*f, base_plan);
                bases.push_back(std::move(*f));
            }
        }
        if (config.runs > 1 && !mixes.empty()) {
            std::printf("\nmedians of %zu runs: lanes\n", mixes.size());
            print_pass(medians(mixes), mix_plan);
            if (!bases.empty()) {
                std::printf("\nmedians of %zu runs: baseline\n", bases.size());
                print_pass(medians(bases), base_plan);
            }
        }
        if (!mixes.empty() && !bases.empty()) print_comparison(medians(mixes), medians(bases));
        return mixes.size() == static_cast<std::size_t>(config.runs) ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "lanes: %s\n", e.what());
        return 1;
    }
}
