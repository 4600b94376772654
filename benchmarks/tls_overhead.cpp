// tls_overhead — what wss:// costs next to ws:// on the same server.
//
// Runs the echo example twice per round, plain and with --tls-cert/--tls-key
// (a self-signed pair made with openssl in a temporary folder), alternating
// for --runs rounds, and for each:
//   - memory: the server's VmRSS growth per open, idle connection
//     (--idle connections, plume's client, handshake done, then silent);
//   - echo: --connections connections each keeping --pipeline messages of
//     --size bytes in flight for --seconds; round trips per second and the
//     server's CPU per round trip (from /proc: the client's own cost, which
//     TLS also raises, does not count).
// With --chat, the chat example (--no-presence --no-rate-limits) is measured
// the same way, plain and TLS alternating, for fan-out:
//   - --subscribers connections join room:lobby (Phoenix V2 JSON), then the
//     first of them pushes --messages new_msg events of --size bytes at once;
//     the chat broadcasts each to every subscriber (the sender included).
//     Deliveries per second (first push to last delivery), the server's CPU
//     per delivery (/proc), and how many were lost (must be 0), bounded by
//     --fanout-seconds.
// Prints each run, the medians and the TLS / plain ratios (issue 13's target:
// ≤ 1.5× the plain figures). The client is plume's own (Asio) on one thread.
//
//   tls_overhead --server build/release/examples/echo/echo_server [--runs 3]
//   tls_overhead --chat build/release/examples/chat/chat [--subscribers 1000] [--messages 200]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <plume/transport.hpp>

#include "support/bench_support.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace plume_bench;
namespace pt = plume::transport;

struct Config {
    std::string server;
    std::string chat;
    int subscribers = 1000;
    int messages = 200;
    double fanout_seconds = 60;
    int runs = 3;
    int idle = 2000;
    int connections = 50;
    int pipeline = 4;
    std::size_t size = 64;
    double seconds = 4;
};

struct Figures {
    double bytes_per_idle = 0;
    double warmup_kib = 0;  // RSS growth from the 100 warm-up connections, once closed
    double round_trips_per_s = 0;
    double server_us_per_round_trip = 0;
};

struct FanoutFigures {
    double deliveries_per_s = 0;
    double server_us_per_delivery = 0;
    std::uint64_t lost = 0;
};

struct Counters {
    std::size_t opened = 0;
    std::size_t failed = 0;
    std::uint64_t echoes = 0;
    bool echoing = false;
};

struct Handler {
    Counters* counters;
    std::string message;
    void on_open(auto& conn) {
        ++counters->opened;
        (void)conn;
    }
    void on_message(auto& conn, pt::opcode, std::string_view) {
        if (!counters->echoing) return;
        ++counters->echoes;
        conn.send_text(message);
    }
    void on_close(auto&, std::uint16_t, std::string_view) {}
    void on_handshake_error(auto&, std::error_code ec, std::string_view detail) {
        if (counters->failed++ == 0)
            std::fprintf(stderr, "tls_overhead: open failed: %s %s\n", ec.message().c_str(),
                         std::string(detail).c_str());
    }
};

// Phoenix V2 JSON frames of the fan-out (the chat's room:lobby).
constexpr std::string_view join_frame = R"(["1","1","room:lobby","phx_join",{}])";
constexpr std::string_view join_reply_prefix = R"(["1","1","room:lobby","phx_reply",)";
constexpr std::string_view broadcast_prefix = R"([null,null,"room:lobby","new_msg",)";

struct FanoutCounters {
    std::size_t opened = 0;
    std::size_t failed = 0;
    std::size_t joined = 0;
    std::size_t join_errors = 0;
    std::size_t closed = 0;
    std::uint64_t delivered = 0;
};

/// A subscriber: joins room:lobby once open, counts the broadcasts it gets.
struct FanoutHandler {
    FanoutCounters* counters;
    void on_open(auto& conn) {
        ++counters->opened;
        conn.send_text(join_frame);
    }
    void on_message(auto&, pt::opcode, std::string_view data) {
        if (data.starts_with(broadcast_prefix)) {
            ++counters->delivered;
        } else if (data.starts_with(join_reply_prefix)) {
            if (data.find(R"("status":"ok")") != std::string_view::npos)
                ++counters->joined;
            else if (counters->join_errors++ == 0)
                std::fprintf(stderr, "tls_overhead: join refused: %.*s\n",
                             static_cast<int>(data.size()), data.data());
        }
    }
    void on_close(auto&, std::uint16_t, std::string_view) { ++counters->closed; }
    void on_handshake_error(auto&, std::error_code ec, std::string_view detail) {
        if (counters->failed++ == 0)
            std::fprintf(stderr, "tls_overhead: open failed: %s %s\n", ec.message().c_str(),
                         std::string(detail).c_str());
    }
};

template <class Pred>
bool run_until(asio::io_context& io, Pred done, std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    while (!done() && Clock::now() < deadline) {
        if (io.stopped()) io.restart();
        io.run_one_for(std::chrono::milliseconds(20));
    }
    return done();
}

/// Opens `n` connections, the i-th to `url(i)` with handler `make_handler(i)`,
/// a few handshakes at a time (a burst would measure SYN retries); `settled()`
/// counts those that opened or failed, `failed()` those that failed.
template <class Handler, class NextLayer, class Url, class Make, class Settled, class Failed>
void open_connections(asio::io_context& io, Url url,
                      const std::shared_ptr<const pt::Options>& options,
                      const typename pt::StreamTraits<NextLayer>::Context& ctx, std::size_t n,
                      Make make_handler, Settled settled, Failed failed,
                      std::vector<std::shared_ptr<pt::Connection<Handler, NextLayer>>>& out) {
    const std::size_t target = settled() + n;
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(pt::connect<Handler, NextLayer>(io, *pt::parse_url(url(i)), options,
                                                      make_handler(i), {}, ctx));
        if (i % 50 == 49)
            run_until(
                io, [&] { return settled() >= target - n + i; }, std::chrono::seconds(30));
    }
    if (!run_until(
            io, [&] { return settled() >= target; }, std::chrono::seconds(60)) ||
        failed())
        throw std::runtime_error("not every connection opened");
}

template <class NextLayer>
Figures measure(const Config& config, const std::vector<std::string>& server_args,
                const std::string& scheme, typename pt::StreamTraits<NextLayer>::Context ctx) {
    ServerProcess server;
    std::vector<std::string> args{"--port", "0", "--idle-timeout", "0"};
    args.insert(args.end(), server_args.begin(), server_args.end());
    server.start(config.server, args, std::chrono::seconds(15), false);
    const std::string url = scheme + "://127.0.0.1:" + std::to_string(server.port()) + "/";
    auto options = std::make_shared<const pt::Options>([] {
        pt::Options o;
        o.idle_timeout = std::chrono::milliseconds(0);
        return o;
    }());
    asio::io_context io{1};
    Counters counters;
    using Conn = pt::Connection<Handler, NextLayer>;
    auto open = [&](std::size_t n, std::vector<std::shared_ptr<Conn>>& out) {
        open_connections<Handler, NextLayer>(
            io, [&](std::size_t) { return url; }, options, ctx, n,
            [&](std::size_t) {
                return Handler{&counters, std::string(config.size, 'x')};
            },
            [&] { return counters.opened + counters.failed; }, [&] { return counters.failed; },
            out);
    };
    auto close_all = [&](std::vector<std::shared_ptr<Conn>>& conns) {
        for (auto& c : conns)
            asio::post(c->get_executor(), [c] { c->close(1000); });
        run_until(
            io, [] { return false; }, std::chrono::seconds(1));
        conns.clear();
    };

    Figures f;
    {  // memory per idle connection, after a warm-up of 100 connections
        // opened and closed the same way (two batches of concurrent
        // handshakes): what concurrent TLS handshakes leave in the heap is
        // a one-time cost, reported apart, not a per-connection one.
        const long start = stable_rss_kib(server.pid());
        std::vector<std::shared_ptr<Conn>> warm;
        open(100, warm);
        close_all(warm);
        const long before = stable_rss_kib(server.pid());
        f.warmup_kib = static_cast<double>(before - start);
        std::vector<std::shared_ptr<Conn>> idle;
        open(static_cast<std::size_t>(config.idle), idle);
        run_until(
            io, [] { return false; }, std::chrono::seconds(1));
        const long after = stable_rss_kib(server.pid());
        f.bytes_per_idle = static_cast<double>(after - before) * 1024.0 / config.idle;
        close_all(idle);
    }
    {  // echo
        std::vector<std::shared_ptr<Conn>> conns;
        open(static_cast<std::size_t>(config.connections), conns);
        counters.echoing = true;
        const std::string message(config.size, 'x');
        for (auto& c : conns)
            for (int i = 0; i < config.pipeline; ++i)
                asio::post(c->get_executor(), [c, message] { c->send_text(message); });
        run_until(
            io, [] { return false; }, std::chrono::seconds(1));  // warm-up
        const auto cpu0 = proc_cpu_seconds(server.pid()).value_or(0);
        const auto n0 = counters.echoes;
        const auto t0 = Clock::now();
        run_until(
            io, [] { return false; }, std::chrono::seconds(static_cast<long>(config.seconds)));
        const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
        const auto n = counters.echoes - n0;
        const auto cpu = proc_cpu_seconds(server.pid()).value_or(0) - cpu0;
        counters.echoing = false;
        f.round_trips_per_s = static_cast<double>(n) / elapsed;
        f.server_us_per_round_trip = n ? cpu * 1e6 / static_cast<double>(n) : 0;
        close_all(conns);
    }
    server.stop(std::chrono::seconds(10));
    return f;
}

/// The chat with --subscribers joined to room:lobby; the first pushes
/// --messages new_msg at once and every subscriber counts the broadcasts.
template <class NextLayer>
FanoutFigures measure_fanout(const Config& config, const std::vector<std::string>& server_args,
                             const std::string& scheme,
                             typename pt::StreamTraits<NextLayer>::Context ctx) {
    ServerProcess server;
    std::vector<std::string> args{"--port", "0", "--no-presence", "--no-rate-limits"};
    args.insert(args.end(), server_args.begin(), server_args.end());
    server.start(config.chat, args, std::chrono::seconds(15), false);
    const std::string base = scheme + "://127.0.0.1:" + std::to_string(server.port()) +
                             "/socket/websocket?vsn=2.0.0&user_id=u";
    auto options = std::make_shared<const pt::Options>([] {
        pt::Options o;
        o.idle_timeout = std::chrono::milliseconds(0);
        return o;
    }());
    asio::io_context io{1};
    FanoutCounters counters;
    using Conn = pt::Connection<FanoutHandler, NextLayer>;
    std::vector<std::shared_ptr<Conn>> conns;
    const auto n = static_cast<std::size_t>(config.subscribers);
    open_connections<FanoutHandler, NextLayer>(
        io, [&](std::size_t i) { return base + std::to_string(i); }, options, ctx, n,
        [&](std::size_t) { return FanoutHandler{&counters}; },
        [&] { return counters.opened + counters.failed; }, [&] { return counters.failed; }, conns);
    if (!run_until(
            io, [&] { return counters.joined + counters.join_errors >= n; },
            std::chrono::seconds(60)) ||
        counters.join_errors)
        throw std::runtime_error("not every subscriber joined room:lobby");

    const std::uint64_t expected = static_cast<std::uint64_t>(n) * config.messages;
    const std::string body(config.size, 'x');
    const auto cpu0 = proc_cpu_seconds(server.pid()).value_or(0);
    const auto t0 = Clock::now();
    auto sender = conns.front();
    asio::post(sender->get_executor(), [sender, body, m = config.messages] {
        for (int i = 0; i < m; ++i)
            sender->send_text(R"(["1",")" + std::to_string(i + 2) +
                              R"(","room:lobby","new_msg",{"body":")" + body + R"("}])");
    });
    run_until(
        io, [&] { return counters.delivered >= expected || counters.closed > 0; },
        std::chrono::seconds(static_cast<long>(config.fanout_seconds)));
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    const auto cpu = proc_cpu_seconds(server.pid()).value_or(0) - cpu0;
    FanoutFigures f;
    const auto got = counters.delivered;
    f.lost = expected - std::min(expected, got);
    f.deliveries_per_s = static_cast<double>(got) / elapsed;
    f.server_us_per_delivery = got ? cpu * 1e6 / static_cast<double>(got) : 0;
    if (counters.closed)
        std::fprintf(stderr, "tls_overhead: %zu subscriber(s) closed during the fan-out\n",
                     counters.closed);
    for (auto& c : conns)
        asio::post(c->get_executor(), [c] { c->close(1000); });
    run_until(
        io, [] { return false; }, std::chrono::seconds(1));
    conns.clear();
    server.stop(std::chrono::seconds(10));
    return f;
}

std::string make_certificate() {
    auto dir =
        std::filesystem::temp_directory_path() / ("plume-tls-overhead-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    const std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
        "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -keyout " +
        (dir / "key.pem").string() + " -out " + (dir / "cert.pem").string() + " 2>/dev/null";
    if (std::system(cmd.c_str()) != 0)
        throw std::runtime_error("openssl could not make a certificate (apt-get install openssl)");
    return dir.string();
}

}  // namespace

int main(int argc, char** argv) {
    try {
        CliArgs args(argc, argv, {"help"});
        Config config;
        config.server = args.get("server", "");
        config.chat = args.get("chat", "");
        config.runs = static_cast<int>(args.number("runs", config.runs));
        config.idle = static_cast<int>(args.number("idle", config.idle));
        config.connections = static_cast<int>(args.number("connections", config.connections));
        config.pipeline = static_cast<int>(args.number("pipeline", config.pipeline));
        config.size = static_cast<std::size_t>(args.number("size", 64));
        config.seconds = args.number("seconds", config.seconds);
        config.subscribers = static_cast<int>(args.number("subscribers", config.subscribers));
        config.messages = static_cast<int>(args.number("messages", config.messages));
        config.fanout_seconds = args.number("fanout-seconds", config.fanout_seconds);
        const bool help = args.flag("help");
        args.finish();
        if (help || (config.server.empty() && config.chat.empty()) || config.subscribers < 1 ||
            config.messages < 1) {
            std::fputs(
                "usage: tls_overhead [--server PATH/echo_server] [--chat PATH/chat] [--runs 3]\n"
                "         echo:    [--idle 2000] [--connections 50] [--pipeline 4] [--size 64]\n"
                "                  [--seconds 4]\n"
                "         fan-out: [--subscribers 1000] [--messages 200] [--fanout-seconds 60]\n",
                stderr);
            return help ? 0 : 2;
        }
        require_fd_limit(std::max(config.server.empty() ? 0 : config.idle,
                                  config.chat.empty() ? 0 : config.subscribers) +
                         100);
        const auto dir = make_certificate();
        const std::vector<std::string> tls_args{"--tls-cert", dir + "/cert.pem", "--tls-key",
                                                dir + "/key.pem"};
        auto client_ctx = pt::client_tls_context(
            pt::ClientTlsOptions{.ca_file = dir + "/cert.pem", .ca_pem = {}});

        std::vector<Figures> plain, tls;
        std::vector<FanoutFigures> plain_fan, tls_fan;
        for (int r = 0; r < config.runs; ++r) {
            if (!config.server.empty()) {
                plain.push_back(measure<asio::ip::tcp::socket>(config, {}, "ws", {}));
                tls.push_back(measure<pt::TlsSocket>(config, tls_args, "wss", {client_ctx}));
                std::printf(
                    "run %d  plain: %6.0f B/idle conn  %8.0f round trips/s  %5.2f us server "
                    "CPU/rt   tls: %6.0f B  %8.0f rt/s  %5.2f us\n",
                    r + 1, plain.back().bytes_per_idle, plain.back().round_trips_per_s,
                    plain.back().server_us_per_round_trip, tls.back().bytes_per_idle,
                    tls.back().round_trips_per_s, tls.back().server_us_per_round_trip);
                std::fflush(stdout);
            }
            if (!config.chat.empty()) {
                plain_fan.push_back(measure_fanout<asio::ip::tcp::socket>(config, {}, "ws", {}));
                tls_fan.push_back(
                    measure_fanout<pt::TlsSocket>(config, tls_args, "wss", {client_ctx}));
                const auto& p = plain_fan.back();
                const auto& t = tls_fan.back();
                std::printf(
                    "run %d  fan-out plain: %8.0f deliveries/s  %5.2f us server CPU/delivery  "
                    "%llu lost   tls: %8.0f/s  %5.2f us  %llu lost\n",
                    r + 1, p.deliveries_per_s, p.server_us_per_delivery,
                    static_cast<unsigned long long>(p.lost), t.deliveries_per_s,
                    t.server_us_per_delivery, static_cast<unsigned long long>(t.lost));
                std::fflush(stdout);
            }
        }
        std::filesystem::remove_all(dir);
        if (!config.server.empty()) {
            auto med = [](const std::vector<Figures>& v, double Figures::*m) {
                std::vector<double> xs;
                for (auto& f : v)
                    xs.push_back(f.*m);
                return median(xs);
            };
            const double pm = med(plain, &Figures::bytes_per_idle);
            const double tm = med(tls, &Figures::bytes_per_idle);
            const double pr = med(plain, &Figures::round_trips_per_s);
            const double tr = med(tls, &Figures::round_trips_per_s);
            const double pc = med(plain, &Figures::server_us_per_round_trip);
            const double tc = med(tls, &Figures::server_us_per_round_trip);
            std::printf(
                "tls_overhead (medians of %d alternating runs; %d idle connections; echo %d "
                "connections x %d in flight x %zu B for %.0f s)\n",
                config.runs, config.idle, config.connections, config.pipeline, config.size,
                config.seconds);
            std::printf("  memory per idle connection  plain %.0f B   tls %.0f B   ratio %.2fx\n",
                        pm, tm, pm > 0 ? tm / pm : 0);
            std::printf(
                "  left by the 100 warm-up connections (once): plain %.0f KiB   tls %.0f KiB\n",
                med(plain, &Figures::warmup_kib), med(tls, &Figures::warmup_kib));
            std::printf("  echo round trips/s          plain %.0f   tls %.0f   ratio %.2fx\n", pr,
                        tr, pr > 0 ? tr / pr : 0);
            std::printf("  server CPU per round trip   plain %.2f us   tls %.2f us   ratio %.2fx\n",
                        pc, tc, pc > 0 ? tc / pc : 0);
        }
        std::uint64_t lost = 0;
        if (!config.chat.empty()) {
            auto med = [](const std::vector<FanoutFigures>& v, double FanoutFigures::*m) {
                std::vector<double> xs;
                for (auto& f : v)
                    xs.push_back(f.*m);
                return median(xs);
            };
            for (const auto* v : {&plain_fan, &tls_fan})
                for (const auto& f : *v)
                    lost += f.lost;
            const double pd = med(plain_fan, &FanoutFigures::deliveries_per_s);
            const double td = med(tls_fan, &FanoutFigures::deliveries_per_s);
            const double pc = med(plain_fan, &FanoutFigures::server_us_per_delivery);
            const double tc = med(tls_fan, &FanoutFigures::server_us_per_delivery);
            std::printf(
                "tls_overhead fan-out (medians of %d alternating runs; chat --no-presence, %d "
                "subscribers on room:lobby x %d messages of %zu B)\n",
                config.runs, config.subscribers, config.messages, config.size);
            std::printf("  deliveries/s                plain %.0f   tls %.0f   ratio %.2fx\n", pd,
                        td, pd > 0 ? td / pd : 0);
            std::printf("  server CPU per delivery     plain %.3f us   tls %.3f us   ratio %.2fx\n",
                        pc, tc, pc > 0 ? tc / pc : 0);
            std::printf("  lost deliveries             %llu (all runs)\n",
                        static_cast<unsigned long long>(lost));
        }
        return lost ? 1 : 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tls_overhead: %s\n", e.what());
        return 1;
    }
}
