// redis_pipeline — plume's Redis client against a real redis-server: what
// pipelining buys, and how fast a Subscriber with many channels recovers
// from a Redis restart. Uses plume::redis directly (no chat, no PubSub).
//
// Starts its own redis-server (Debian's, on PATH, or --redis-server PATH) on
// a free 127.0.0.1 port and stops it by PID at the end (SIGTERM, SIGKILL
// after a bounded wait). Then:
//   1. pipelining: PUBLISH of --size byte payloads to a channel nobody
//      subscribes to, --count per run, with at most W commands outstanding
//      for each W of --windows (1 = one command per round trip: the next is
//      sent only after the previous reply); the windows alternate, --runs
//      rounds. Prints the median commands/s, socket writes
//      (Client::stats().link.writes), redis-server CPU (/proc/PID/stat) and
//      this program's CPU per window, and each window's ratio to W = 1.
//   2. mass resubscribe: a redis::Subscriber wants --channels channels
//      (t:0 .. t:N-1); redis-server is killed with SIGKILL and started again
//      on the same port; measured from the moment the new server accepts TCP
//      connections to Subscriber::stats().confirmed == N, with the SUBSCRIBE
//      commands it took; checked with PUBSUB CHANNELS t:* and PUBSUB NUMSUB.
//      --resubscribe-runs restarts, median printed. The links reconnect with
//      a short backoff (--backoff-min-ms / --backoff-max-ms), so what is
//      measured is the resubscribe, not the wait for the next attempt.
//
//   redis_pipeline
//   redis_pipeline --count 100000 --windows 1,100,1000,10000 --runs 3
//   redis_pipeline --skip-pipeline --channels 200000
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <plume/pubsub.hpp>
#include <plume/pubsub/redis.hpp>
#include <plume/redis.hpp>

#include "support/bench_support.hpp"
#include "support/redis_process.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace plume_bench;
namespace redis = plume::redis;

struct Config {
    std::string redis_server;
    std::uint64_t count = 200000;
    std::vector<std::uint64_t> windows{1, 1000, 10000};
    int runs = 5;
    std::size_t size = 256;
    double run_timeout = 60;
    std::size_t channels = 100000;
    int resubscribe_runs = 5;
    int backoff_min_ms = 2;
    int backoff_max_ms = 10;
    double resubscribe_timeout = 30;
    bool skip_pipeline = false;
    bool skip_resubscribe = false;
    bool skip_nodes = false;
    std::uint64_t node_window = 1000;
};

double seconds_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

template <class T>
T median(std::vector<T> v) {
    if (v.empty()) return T{};
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

template <class T>
std::string spread(const std::vector<T>& v, const char* format) {
    if (v.empty()) return "-";
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    char buf[96];
    std::snprintf(buf, sizeof buf, format, static_cast<double>(*lo), static_cast<double>(*hi));
    return buf;
}

redis::Options link_options(const RedisProcess& server, const Config& config) {
    redis::Options o;
    o.url = *redis::parse_url(server.url());
    o.reconnect_min = std::chrono::milliseconds(config.backoff_min_ms);
    o.reconnect_max = std::chrono::milliseconds(config.backoff_max_ms);
    return o;
}

// ---------------------------------------------------------- pipelining --

struct PipelineRun {
    double seconds = 0;
    std::uint64_t done = 0;
    std::uint64_t errors = 0;
    std::uint64_t writes = 0;
    double redis_cpu = 0;
    double client_cpu = 0;
    double other = 0;  // other processes' CPU, seconds
    double steal = 0;
};

/// Publishes `count` payloads with at most `window` unanswered: the first
/// `window` leave at once, then each reply sends the next one. Everything
/// runs on the one io thread, so the replies read in one turn queue their
/// successors together and they leave in the next write.
class Pipeline {
  public:
    Pipeline(asio::io_context& io, redis::Client& client, std::string payload)
        : io_(io), client_(client), payload_(std::move(payload)) {}

    PipelineRun run(std::uint64_t count, std::uint64_t window, pid_t redis_pid, double timeout) {
        count_ = count;
        issued_ = answered_ = errors_ = 0;
        {
            std::lock_guard lock(mutex_);
            finished_ = false;
        }
        const auto writes_before = client_.stats().link.writes;
        const double redis_before = proc_cpu_seconds(redis_pid).value_or(0);
        const double self_before = self_cpu_seconds();
        const MachineCpu machine_before = machine_cpu();
        const auto start = Clock::now();
        asio::post(io_, [this, window] {
            for (std::uint64_t i = 0; i < window && issued_ < count_; ++i)
                issue();
        });
        const auto deadline = start + std::chrono::milliseconds(static_cast<long>(timeout * 1000));
        Clock::time_point end;
        {
            std::unique_lock lock(mutex_);
            if (!finished_cv_.wait_until(lock, deadline, [this] { return finished_; }))
                end_ = Clock::now();  // timed out: the rate counts what was answered
            end = end_;
        }
        PipelineRun r;
        r.seconds = seconds_between(start, end);
        r.redis_cpu = proc_cpu_seconds(redis_pid).value_or(0) - redis_before;
        r.client_cpu = self_cpu_seconds() - self_before;
        const MachineCpu machine_after = machine_cpu();
        r.other =
            std::max(0.0, machine_after.busy - machine_before.busy - r.redis_cpu - r.client_cpu);
        r.steal = machine_after.steal - machine_before.steal;
        r.writes = client_.stats().link.writes - writes_before;
        // Read on the io thread: the counters are its own.
        std::promise<void> read;
        asio::post(io_, [&] {
            r.done = answered_;
            r.errors = errors_;
            read.set_value();
        });
        read.get_future().wait();
        return r;
    }

  private:
    void issue() {
        ++issued_;
        client_.command({std::string_view("PUBLISH"), std::string_view("bench:nobody"),
                         std::string_view(payload_)},
                        [this](std::error_code ec, redis::Value) {
                            if (ec) ++errors_;
                            if (++answered_ == count_) {
                                {
                                    std::lock_guard lock(mutex_);
                                    end_ = Clock::now();
                                    finished_ = true;
                                }
                                finished_cv_.notify_all();
                                return;
                            }
                            if (issued_ < count_) issue();
                        });
    }

    asio::io_context& io_;
    redis::Client& client_;
    std::string payload_;
    std::uint64_t count_ = 0, issued_ = 0, answered_ = 0, errors_ = 0;  // io thread
    std::mutex mutex_;
    std::condition_variable finished_cv_;
    bool finished_ = false;
    Clock::time_point end_{};
};

int run_pipeline(const Config& config, RedisProcess& server) {
    asio::io_context io{1};
    auto guard = asio::make_work_guard(io);
    auto client = redis::Client::create(io.get_executor(), link_options(server, config));
    client->start();
    std::thread thread([&] { io.run(); });
    const auto up_deadline = Clock::now() + std::chrono::seconds(10);
    while (!client->up() && Clock::now() < up_deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!client->up()) throw std::runtime_error("the client did not connect to redis-server");

    std::string payload(config.size, 'x');
    Pipeline pipeline(io, *client, payload);
    // Warm-up: the connection, Redis's buffers, our allocator.
    pipeline.run(std::min<std::uint64_t>(config.count, 20000), 1000, server.pid(),
                 config.run_timeout);

    std::vector<std::vector<PipelineRun>> runs(config.windows.size());
    for (int round = 0; round < config.runs; ++round) {
        for (std::size_t w = 0; w < config.windows.size(); ++w) {
            auto r =
                pipeline.run(config.count, config.windows[w], server.pid(), config.run_timeout);
            std::fprintf(stderr,
                         "redis_pipeline: round %d, window %" PRIu64 ": %.0f commands/s, %" PRIu64
                         " writes, redis CPU %.2f s, other load %.0f%%\n",
                         round + 1, config.windows[w], r.done / r.seconds, r.writes, r.redis_cpu,
                         100 * r.other / r.seconds);
            runs[w].push_back(r);
        }
    }
    client->stop();
    guard.reset();
    thread.join();

    std::printf("redis_pipeline: pipelining\n");
    std::printf("  redis-server       %s (pid %d, 127.0.0.1:%u)\n", config.redis_server.c_str(),
                static_cast<int>(server.pid()), server.port());
    std::printf("  load               PUBLISH bench:nobody <%zu bytes> (no subscriber), %" PRIu64
                " per run, %d runs per window, windows alternating; medians (min-max)\n",
                config.size, config.count, config.runs);
    double serial_rate = 0;
    for (std::size_t w = 0; w < config.windows.size(); ++w)
        if (config.windows[w] == 1) {
            std::vector<double> rates;
            for (auto& r : runs[w])
                rates.push_back(r.done / r.seconds);
            serial_rate = median(rates);
        }
    bool ok = true;
    for (std::size_t w = 0; w < config.windows.size(); ++w) {
        std::vector<double> rates, writes, per_write, redis_cpu, redis_us, client_us, other, steal;
        std::uint64_t errors = 0, incomplete = 0;
        for (auto& r : runs[w]) {
            rates.push_back(r.done / r.seconds);
            writes.push_back(static_cast<double>(r.writes));
            per_write.push_back(r.writes ? static_cast<double>(r.done) / r.writes : 0);
            redis_cpu.push_back(r.redis_cpu);
            redis_us.push_back(r.done ? 1e6 * r.redis_cpu / r.done : 0);
            client_us.push_back(r.done ? 1e6 * r.client_cpu / r.done : 0);
            other.push_back(100 * r.other / r.seconds);
            steal.push_back(100 * r.steal / r.seconds);
            errors += r.errors;
            incomplete += r.done < config.count;
        }
        ok = ok && errors == 0 && incomplete == 0;
        const auto window = config.windows[w];
        std::printf("  window %-6" PRIu64 "%s\n", window,
                    window == 1 ? " (one command per round trip)" : " (coalesced)");
        std::printf("    commands/s       %.0f (%s)", median(rates),
                    spread(rates, "%.0f-%.0f").c_str());
        if (window != 1 && serial_rate > 0)
            std::printf("  = %.1fx one per round trip", median(rates) / serial_rate);
        std::printf("\n");
        std::printf("    socket writes    %.0f (%s), %.1f commands per write\n", median(writes),
                    spread(writes, "%.0f-%.0f").c_str(), median(per_write));
        std::printf("    redis CPU        %.2f s (%s), %.2f us per command\n", median(redis_cpu),
                    spread(redis_cpu, "%.2f-%.2f").c_str(), median(redis_us));
        std::printf("    client CPU       %.2f us per command (this program)\n", median(client_us));
        std::printf(
            "    other load       %.0f%% of one core (%s) by other processes, %.0f%% stolen "
            "by the hypervisor\n",
            median(other), spread(other, "%.0f-%.0f%%").c_str(), median(steal));
        if (errors || incomplete)
            std::printf("    FAILED           %" PRIu64 " errors, %" PRIu64 " runs incomplete\n",
                        errors, incomplete);
    }
    return ok ? 0 : 1;
}

// -------------------------------------------------------- node to node --

struct NodesRun {
    double seconds = 0;
    std::uint64_t received = 0;
    std::uint64_t failed = 0;
    std::uint64_t writes = 0;
    double redis_cpu = 0;
    double self_cpu = 0;
};

/// Broadcasts through the PubSub adapter, node to node: node A (its own io
/// thread) broadcasts `count` messages of a topic that only node B (another
/// io thread, another pair of Redis connections) subscribes to, keeping at
/// most `window` not yet received by B: B's subscriber asks A for the next
/// batch as it receives. What one node can push through Redis to another
/// (envelope encoding, PUBLISH, B's decoding and delivery), without sockets
/// to clients.
NodesRun run_nodes_once(const Config& config, RedisProcess& server, std::uint64_t window) {
    namespace ps = plume::pubsub;
    asio::io_context io_a{1}, io_b{1};
    auto guard_a = asio::make_work_guard(io_a);
    auto guard_b = asio::make_work_guard(io_b);
    auto options = [&](const char* name) {
        ps::RedisOptions o;
        o.url = server.url();
        o.node_name = name;
        return o;
    };
    ps::PubSub<ps::Redis> a(ps::Redis(io_a.get_executor(), options("a")));
    ps::PubSub<ps::Redis> b(ps::Redis(io_b.get_executor(), options("b")));
    std::thread ta([&] { io_a.run(); });
    std::thread tb([&] { io_b.run(); });
    const auto up_deadline = Clock::now() + std::chrono::seconds(10);
    while (!(a.adapter().connected() && b.adapter().connected()) && Clock::now() < up_deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!(a.adapter().connected() && b.adapter().connected()))
        throw std::runtime_error("the nodes did not connect to redis-server");

    const auto message =
        ps::make_message("bench:nodes", "new_msg", {{"body", std::string(config.size, 'x')}});
    const std::uint64_t count = config.count;
    const std::uint64_t batch = std::max<std::uint64_t>(1, window / 4);
    std::uint64_t sent = 0;  // io_a only
    auto send = [&](std::uint64_t n) {
        for (std::uint64_t i = 0; i < n && sent < count; ++i, ++sent)
            a.broadcast(message);
    };
    std::atomic<std::uint64_t> received{0};
    std::mutex mutex;
    std::condition_variable cv;
    Clock::time_point end{};
    bool done = false;
    auto sub = b.subscribe("bench:nodes", io_b.get_executor(), [&](const ps::Message&) {
        const auto r = received.fetch_add(1) + 1;
        if (window == 1 || r % batch == 0)
            asio::post(io_a, [&, n = window == 1 ? 1 : batch] { send(n); });
        if (r == count) {
            std::lock_guard lock(mutex);
            end = Clock::now();
            done = true;
            cv.notify_all();
        }
    });
    std::promise<void> ready;
    b.prepare("bench:nodes", [&](std::error_code) { ready.set_value(); });
    ready.get_future().wait();
    b.release("bench:nodes");

    const auto writes_before = a.adapter().stats().client.link.writes;
    const auto failed_before = a.adapter().stats().publish_failed;
    const double redis_before = proc_cpu_seconds(server.pid()).value_or(0);
    const double self_before = self_cpu_seconds();
    const auto start = Clock::now();
    asio::post(io_a, [&] { send(window); });
    {
        std::unique_lock lock(mutex);
        const auto deadline =
            start + std::chrono::milliseconds(static_cast<long>(config.run_timeout * 1000));
        if (!cv.wait_until(lock, deadline, [&] { return done; })) end = Clock::now();
    }
    NodesRun r;
    r.seconds = seconds_between(start, end);
    r.received = received.load();
    r.failed = a.adapter().stats().publish_failed - failed_before;
    r.writes = a.adapter().stats().client.link.writes - writes_before;
    r.redis_cpu = proc_cpu_seconds(server.pid()).value_or(0) - redis_before;
    r.self_cpu = self_cpu_seconds() - self_before;
    b.unsubscribe("bench:nodes", sub);
    a.adapter().stop();
    b.adapter().stop();
    guard_a.reset();
    guard_b.reset();
    ta.join();
    tb.join();
    return r;
}

int run_nodes(const Config& config, RedisProcess& server) {
    const std::vector<std::uint64_t> windows{1, config.node_window};
    std::vector<std::vector<NodesRun>> runs(windows.size());
    for (int round = 0; round < config.runs; ++round)
        for (std::size_t w = 0; w < windows.size(); ++w) {
            auto r = run_nodes_once(config, server, windows[w]);
            std::fprintf(stderr,
                         "redis_pipeline: nodes round %d, window %" PRIu64
                         ": %.0f broadcasts/s, %" PRIu64 " writes\n",
                         round + 1, windows[w], r.received / r.seconds, r.writes);
            runs[w].push_back(r);
        }
    std::printf("redis_pipeline: node to node through pubsub::Redis\n");
    std::printf(
        "  load               PubSub<Redis>::broadcast of one %zu-byte body on node A, "
        "received by a subscriber on node B (its own io thread and connections), %" PRIu64
        " per run, %d runs per window, alternating; medians (min-max)\n",
        config.size, config.count, config.runs);
    double serial = 0;
    bool ok = true;
    for (std::size_t w = 0; w < windows.size(); ++w) {
        std::vector<double> rates, per_write, redis_us, self_us;
        std::uint64_t lost = 0, failed = 0;
        for (auto& r : runs[w]) {
            rates.push_back(r.received / r.seconds);
            per_write.push_back(r.writes ? static_cast<double>(r.received) / r.writes : 0);
            redis_us.push_back(r.received ? 1e6 * r.redis_cpu / r.received : 0);
            self_us.push_back(r.received ? 1e6 * r.self_cpu / r.received : 0);
            lost += config.count - r.received;
            failed += r.failed;
        }
        if (windows[w] == 1) serial = median(rates);
        ok = ok && lost == 0 && failed == 0;
        std::printf(
            "  window %-6" PRIu64 "%s\n", windows[w],
            windows[w] == 1 ? " (the next broadcast after B received the last)" : " (coalesced)");
        std::printf("    broadcasts/s     %.0f (%s)", median(rates),
                    spread(rates, "%.0f-%.0f").c_str());
        if (windows[w] != 1 && serial > 0)
            std::printf("  = %.1fx window 1", median(rates) / serial);
        std::printf("\n    A's writes       %.1f broadcasts per PUBLISH write\n",
                    median(per_write));
        std::printf("    CPU              redis-server %.2f us, both nodes %.2f us per broadcast\n",
                    median(redis_us), median(self_us));
        std::printf("    lost             %" PRIu64 " (publish failures %" PRIu64 ")\n", lost,
                    failed);
    }
    return ok ? 0 : 1;
}

// ------------------------------------------------------ mass resubscribe --

struct ResubscribeRun {
    double accept_to_confirmed = -1;  // seconds; -1: never
    double accept_to_link_up = 0;     // the reconnect wait (backoff), seconds
    std::uint64_t commands = 0;       // SUBSCRIBE commands sent for it
    double redis_cpu = 0;             // the new redis-server's, until confirmed
    std::size_t confirmed = 0;
    std::size_t pubsub_channels = 0;  // PUBSUB CHANNELS t:* afterwards
    bool numsub_ok = false;
    bool delivered = false;  // a PUBLISH afterwards reached the subscriber
};

int run_resubscribe(const Config& config, RedisProcess& server) {
    asio::io_context io{1};
    auto guard = asio::make_work_guard(io);
    auto options = link_options(server, config);
    // When the link came up last (steady clock nanoseconds).
    std::atomic<std::int64_t> link_up_ns{0};
    options.on_state = [&](std::error_code ec) {
        if (!ec) link_up_ns = Clock::now().time_since_epoch().count();
    };
    std::atomic<std::uint64_t> messages{0};
    auto subscriber = redis::Subscriber::create(
        io.get_executor(), options,
        [&](std::string_view, std::string_view) { messages.fetch_add(1); });
    subscriber->start();
    std::thread thread([&] { io.run(); });
    auto verify_options = link_options(server, config);
    SyncRedis verify(verify_options);

    const std::size_t n = config.channels;
    const auto wait_confirmed = [&](double timeout) {
        const auto deadline =
            Clock::now() + std::chrono::milliseconds(static_cast<long>(timeout * 1000));
        while (subscriber->stats().confirmed < n) {
            if (Clock::now() > deadline) return false;
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        return true;
    };
    const auto check = [&](ResubscribeRun& r) {
        auto channels = verify.call({"PUBSUB", "CHANNELS", "t:*"});
        r.pubsub_channels = channels.elements.size();
        std::vector<std::string> numsub{"PUBSUB", "NUMSUB"};
        for (std::size_t i = 0; i < n; i += std::max<std::size_t>(1, n / 100))
            numsub.push_back("t:" + std::to_string(i));
        auto counts = verify.call(numsub);
        r.numsub_ok = counts.elements.size() == 2 * (numsub.size() - 2);
        for (std::size_t i = 1; i < counts.elements.size(); i += 2)
            r.numsub_ok = r.numsub_ok && counts.elements[i].integer == 1;
        // A message published now must arrive.
        const auto before = messages.load();
        verify.call({"PUBLISH", "t:" + std::to_string(n / 2), "after"});
        const auto deadline = Clock::now() + std::chrono::seconds(5);
        while (messages.load() == before && Clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        r.delivered = messages.load() > before;
    };

    // The first subscription, all channels asked for at once.
    while (!subscriber->up())
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto commands_before = subscriber->stats().subscribe_commands;
    const double cpu_before = proc_cpu_seconds(server.pid()).value_or(0);
    const auto first_start = Clock::now();
    for (std::size_t i = 0; i < n; ++i)
        subscriber->subscribe("t:" + std::to_string(i));
    const bool first_ok = wait_confirmed(config.resubscribe_timeout);
    const double first_seconds = seconds_between(first_start, Clock::now());
    const double first_cpu = proc_cpu_seconds(server.pid()).value_or(0) - cpu_before;
    const auto first_commands = subscriber->stats().subscribe_commands - commands_before;
    ResubscribeRun first;
    if (first_ok) check(first);
    std::fprintf(stderr,
                 "redis_pipeline: %zu channels subscribed in %.3f s with %" PRIu64
                 " SUBSCRIBE commands\n",
                 n, first_seconds, first_commands);

    std::vector<ResubscribeRun> runs;
    for (int i = 0; first_ok && i < config.resubscribe_runs; ++i) {
        ResubscribeRun r;
        const auto before = subscriber->stats();
        const auto killed = Clock::now();
        server.kill9();
        // The subscriber notices (EOF) and starts retrying; Redis comes back
        // a moment later, as a restarted service would.
        const auto down_deadline = Clock::now() + std::chrono::seconds(5);
        while (subscriber->up() && Clock::now() < down_deadline)
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        const auto probe_accepted = server.start();
        // The subscriber may have connected before our probe (every 0.5 ms)
        // saw the port open: the earlier of the two is when it accepted.
        const auto link_up = Clock::time_point(Clock::duration(link_up_ns.load()));
        const auto accepted =
            link_up > killed && link_up < probe_accepted ? link_up : probe_accepted;
        const bool ok = wait_confirmed(config.resubscribe_timeout);
        const auto confirmed_at = Clock::now();
        r.redis_cpu = proc_cpu_seconds(server.pid()).value_or(0);
        const auto after = subscriber->stats();
        r.confirmed = after.confirmed;
        r.commands = after.subscribe_commands - before.subscribe_commands;
        if (ok) r.accept_to_confirmed = seconds_between(accepted, confirmed_at);
        r.accept_to_link_up =
            seconds_between(accepted, Clock::time_point(Clock::duration(link_up_ns.load())));
        check(r);
        std::fprintf(stderr,
                     "redis_pipeline: restart %d: %zu of %zu confirmed %.3f s after the new "
                     "server accepted (link up after %.3f s), %" PRIu64 " SUBSCRIBE commands\n",
                     i + 1, r.confirmed, n, r.accept_to_confirmed, r.accept_to_link_up, r.commands);
        runs.push_back(r);
    }

    subscriber->stop();
    guard.reset();
    thread.join();

    std::printf("redis_pipeline: mass resubscribe\n");
    std::printf(
        "  subscriber         %zu channels t:0..t:%zu, at most %zu per SUBSCRIBE; "
        "reconnect backoff %d-%d ms (jittered)\n",
        n, n - 1, redis::Subscriber::batch, config.backoff_min_ms, config.backoff_max_ms);
    std::printf("  first subscribe    %s in %.3f s, %" PRIu64
                " SUBSCRIBE commands, redis CPU %.2f s; PUBSUB CHANNELS t:* %zu, NUMSUB sample "
                "%s, delivery %s\n",
                first_ok ? "all confirmed" : "NOT all confirmed", first_seconds, first_commands,
                first_cpu, first.pubsub_channels, first.numsub_ok ? "ok" : "WRONG",
                first.delivered ? "ok" : "MISSING");
    if (runs.empty()) return 1;
    std::vector<double> times, link_up, redis_cpu;
    std::vector<double> commands;
    bool all_ok = true;
    for (auto& r : runs) {
        times.push_back(r.accept_to_confirmed);
        link_up.push_back(r.accept_to_link_up);
        commands.push_back(static_cast<double>(r.commands));
        redis_cpu.push_back(r.redis_cpu);
        all_ok = all_ok && r.accept_to_confirmed >= 0 && r.confirmed == n &&
                 r.pubsub_channels == n && r.numsub_ok && r.delivered;
    }
    std::printf(
        "  restarts           %zu (kill -9, start again on the same port); medians "
        "(min-max)\n",
        runs.size());
    std::printf("  accept->confirmed  %.3f s (%s)  [target < 2 s: %s]\n", median(times),
                spread(times, "%.3f-%.3f").c_str(), median(times) < 2 ? "met" : "missed");
    std::printf(
        "    of it reconnect  %.3f s (%s): from the port accepting to the link up "
        "(backoff wait)\n",
        median(link_up), spread(link_up, "%.3f-%.3f").c_str());
    std::printf("  SUBSCRIBE commands %.0f (%s)  [target <= 200: %s]\n", median(commands),
                spread(commands, "%.0f-%.0f").c_str(), median(commands) <= 200 ? "met" : "missed");
    std::printf("  redis CPU          %.2f s (%s), from its start until all confirmed\n",
                median(redis_cpu), spread(redis_cpu, "%.2f-%.2f").c_str());
    std::printf(
        "  verified           %s (confirmed == %zu, PUBSUB CHANNELS t:* == %zu, NUMSUB "
        "of 100 channels == 1 each, a PUBLISH delivered, after every restart)\n",
        all_ok ? "yes" : "NO", n, n);
    return all_ok && first_ok ? 0 : 1;
}

void print_usage() {
    std::fputs(
        "usage: redis_pipeline [--redis-server PATH] [--count 200000] [--windows 1,1000,10000]\n"
        "         [--runs 5] [--size 256] [--run-timeout 60] [--channels 100000]\n"
        "         [--resubscribe-runs 5] [--backoff-min-ms 2] [--backoff-max-ms 10]\n"
        "         [--resubscribe-timeout 30] [--node-window 1000] [--skip-pipeline]\n"
        "         [--skip-nodes] [--skip-resubscribe]\n",
        stderr);
}

std::vector<std::uint64_t> parse_windows(const std::string& text) {
    std::vector<std::uint64_t> out;
    std::stringstream in(text);
    for (std::string item; std::getline(in, item, ',');) {
        const auto v = std::strtoull(item.c_str(), nullptr, 10);
        if (v == 0) throw std::runtime_error("--windows wants positive numbers, got " + text);
        out.push_back(v);
    }
    if (out.empty()) throw std::runtime_error("--windows is empty");
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        CliArgs args(argc, argv, {"skip-pipeline", "skip-nodes", "skip-resubscribe", "help"});
        if (args.flag("help")) return print_usage(), 0;
        Config config;
        config.redis_server = find_redis_server(args.get("redis-server", ""));
        config.count = static_cast<std::uint64_t>(args.number("count", 200000));
        config.windows = parse_windows(args.get("windows", "1,1000,10000"));
        config.runs = static_cast<int>(args.number("runs", 5));
        config.size = static_cast<std::size_t>(args.number("size", 256));
        config.run_timeout = args.number("run-timeout", 60);
        config.channels = static_cast<std::size_t>(args.number("channels", 100000));
        config.resubscribe_runs = static_cast<int>(args.number("resubscribe-runs", 5));
        config.backoff_min_ms = static_cast<int>(args.number("backoff-min-ms", 2));
        config.backoff_max_ms = static_cast<int>(args.number("backoff-max-ms", 10));
        config.resubscribe_timeout = args.number("resubscribe-timeout", 30);
        config.skip_pipeline = args.flag("skip-pipeline");
        config.skip_resubscribe = args.flag("skip-resubscribe");
        config.skip_nodes = args.flag("skip-nodes");
        config.node_window = static_cast<std::uint64_t>(args.number("node-window", 1000));
        args.finish();
        if (config.count < 1 || config.runs < 1 || config.channels < 1 ||
            config.resubscribe_runs < 1 || config.backoff_min_ms < 1 ||
            config.backoff_max_ms < config.backoff_min_ms || config.run_timeout <= 0)
            throw std::runtime_error("counts must be positive, backoff-max >= backoff-min >= 1");

        RedisProcess server(config.redis_server);
        server.start();
        int status = 0;
        if (!config.skip_pipeline) status |= run_pipeline(config, server);
        if (!config.skip_nodes) {
            if (!config.skip_pipeline) std::printf("\n");
            status |= run_nodes(config, server);
        }
        if (!config.skip_resubscribe) {
            if (!config.skip_pipeline || !config.skip_nodes) std::printf("\n");
            status |= run_resubscribe(config, server);
        }
        std::printf("  redis-server stop  %s\n", server.stop(std::chrono::seconds(5)).c_str());
        return status;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "redis_pipeline: %s\n", e.what());
        return 1;
    }
}
