// idle_connections — the server's resident memory per open, idle WebSocket.
//
// Spawns the server (--port 0, plus any arguments after `--`), samples its
// VmRSS, opens --connections WebSockets (handshake completed, then silent; the
// client still answers pings so an idle timeout based on pings is honoured),
// lets the server settle, samples VmRSS again until it is stable, and prints
// (after - before) / N. The client connections come from 127.0.0.2, 127.0.0.3,
// ... so no single source address runs out of ephemeral ports. They are
// plume::transport::connect() connections (--driver plume, the default; they
// also show what one client connection costs the client process) or the
// benchmarks' own minimal client (--driver raw).
//
//   idle_connections --server build/release/examples/echo/echo_server
//   idle_connections --server ./echo_server --connections 15000 -- --threads 1
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <plume/transport.hpp>

#include "support/bench_support.hpp"
#include "support/ws_load_client.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace plume_bench;

struct Config {
    std::string server;
    std::vector<std::string> server_args;
    std::string driver = "plume";
    int connections = 15000;
    int per_source = 10000;
    int concurrency = 200;
    double open_timeout = 120;
    double settle = 2;
    bool show_server_output = false;
};

struct Counters {
    std::atomic<int> opened{0};
    std::atomic<int> failed{0};
    std::atomic<int> closed{0};
    std::atomic<bool> first_error_reported{false};
};

/// Opens the connections from the io thread, at most `concurrency` handshakes
/// at a time: a burst of 15,000 SYNs would overflow the listen backlog and turn
/// the measurement into a test of SYN retries. Every member runs on the io
/// thread. Connections come round-robin from 127.0.0.2, 127.0.0.3, ..., which
/// keeps each source address well below its range of ephemeral ports.
class Opener {
  public:
    Opener(const Config& config, Counters& counters)
        : config_(config),
          counters_(counters),
          sources_((config.connections + config.per_source - 1) / config.per_source) {}
    virtual ~Opener() = default;

    int sources() const { return sources_; }

    void start() {
        for (int i = 0; i < config_.concurrency; ++i)
            open_next();
    }

    /// Starts the close handshake on every open connection.
    virtual void close_all() = 0;
    /// Drops every connection that has not closed yet.
    virtual void abort_all() = 0;
    virtual void release() = 0;
    /// After close_all(): connections whose TCP connection is still open.
    virtual std::size_t unfinished() const { return 0; }

  protected:
    virtual void open(int index, const asio::ip::address& source) = 0;

    void open_next() {
        if (stopping_ || next_ >= config_.connections) return;
        const int index = next_++;
        open(index,
             asio::ip::address_v4((127u << 24) | static_cast<unsigned>(2 + index % sources_)));
    }

    void report(const char* what, std::error_code ec, std::string_view why) {
        if (!counters_.first_error_reported.exchange(true))
            std::fprintf(stderr, "idle_connections: %s: %s (%.*s)\n", what, ec.message().c_str(),
                         static_cast<int>(why.size()), why.data());
    }

    const Config& config_;
    Counters& counters_;
    int sources_;
    int next_ = 0;
    bool stopping_ = false;
};

/// --driver raw: the benchmarks' own minimal client (support/ws_load_client.hpp).
class RawOpener final : public Opener, public std::enable_shared_from_this<RawOpener> {
  public:
    RawOpener(asio::io_context& io, const Config& config, asio::ip::tcp::endpoint server,
              std::string host_header, Counters& counters)
        : Opener(config, counters), io_(io), server_(server), host_header_(std::move(host_header)) {
        connections_.reserve(static_cast<std::size_t>(config.connections));
    }

    void close_all() override {
        stopping_ = true;
        for (auto& c : connections_)
            c->close(1000);
    }
    void abort_all() override {
        stopping_ = true;
        for (auto& c : connections_)
            c->abort();
    }
    void release() override { connections_.clear(); }

  private:
    void open(int, const asio::ip::address& source) override {
        LoadConnection::Options options;
        options.host_header = host_header_;
        options.read_buffer = 512;  // idle: keep the client's own footprint small
        auto connection = LoadConnection::create(io_, options, random_seed());
        connection->on_closed([this](std::error_code ec, std::string_view why) {
            // Any close before we start closing spoils the figure (an idle timeout?).
            if (!stopping_) report("server closed an idle connection", ec, why);
            counters_.closed.fetch_add(1);
        });
        connections_.push_back(connection);
        connection->async_open(
            server_, source, [self = shared_from_this()](std::error_code ec, std::string_view why) {
                if (ec) {
                    self->report("open failed", ec, why);
                    self->counters_.failed.fetch_add(1);
                } else {
                    self->counters_.opened.fetch_add(1);
                }
                self->open_next();
            });
    }

    asio::io_context& io_;
    asio::ip::tcp::endpoint server_;
    std::string host_header_;
    std::vector<std::shared_ptr<LoadConnection>> connections_;
};

/// --driver plume: plume::transport::connect(), bound to each source address
/// with ClientRequest::local_address. The transport answers pings itself.
class PlumeOpener final : public Opener {
  public:
    PlumeOpener(asio::io_context& io, const Config& config, std::string url, Counters& counters)
        : Opener(config, counters),
          io_(io),
          url_(*plume::transport::parse_url(url)),
          options_(std::make_shared<const plume::transport::Options>(idle_client_options())) {
        connections_.reserve(static_cast<std::size_t>(config.connections));
    }

    void close_all() override {
        stopping_ = true;
        for (auto& c : connections_)
            c->post_close(1000);
        // Each connection object goes once its closing handshake is over.
        for (auto& c : connections_)
            closing_.push_back(c);
        connections_.clear();
    }
    void abort_all() override {
        stopping_ = true;
        for (auto& weak : closing_)
            if (auto c = weak.lock()) asio::post(c->get_executor(), [c] { c->abort(); });
    }
    void release() override { closing_.clear(); }

    std::size_t unfinished() const override {
        std::size_t n = 0;
        for (auto& weak : closing_)
            n += !weak.expired();
        return n;
    }

  private:
    struct Handler {
        PlumeOpener* opener;
        bool opened = false;
        void on_open(auto&) {
            opened = true;
            opener->counters_.opened.fetch_add(1);
            opener->open_next();
        }
        void on_message(auto&, plume::transport::opcode, std::string_view) {}
        void on_close(auto&, std::uint16_t code, std::string_view why) {
            // Any close before we start closing spoils the figure (an idle timeout?).
            if (!opener->stopping_)
                opener->report("server closed an idle connection",
                               std::make_error_code(std::errc::connection_reset),
                               std::to_string(code) + " " + std::string(why));
            opener->counters_.closed.fetch_add(1);
        }
        void on_handshake_error(auto&, std::string_view what) {
            if (opened) return;
            opener->report("open failed", std::make_error_code(std::errc::connection_refused),
                           what);
            opener->counters_.failed.fetch_add(1);
            opener->open_next();
        }
    };
    using Connection = plume::transport::Connection<Handler>;

    static plume::transport::Options idle_client_options() {
        plume::transport::Options o;
        o.idle_timeout = std::chrono::milliseconds(0);  // idle is the point
        return o;
    }

    void open(int, const asio::ip::address& source) override {
        plume::transport::ClientRequest request;
        request.local_address = source;
        connections_.push_back(
            plume::transport::connect<Handler>(io_, url_, options_, Handler{this}, request));
    }

    asio::io_context& io_;
    plume::transport::Url url_;
    std::shared_ptr<const plume::transport::Options> options_;
    std::vector<std::shared_ptr<Connection>> connections_;
    std::vector<std::weak_ptr<Connection>> closing_;
};

template <typename Predicate>
bool wait_until(Predicate done, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    while (!done()) {
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

/// Opens one connection and closes it, so the baseline already includes what
/// the first connection faults in once (handshake code pages, lazily built
/// tables, per-thread buffers), which is not a per-connection cost.
void warm_up(const asio::ip::tcp::endpoint& server, const std::string& host_header) {
    asio::io_context io{1};
    LoadConnection::Options options;
    options.host_header = host_header;
    auto connection = LoadConnection::create(io, options, random_seed());
    connection->async_open(server, std::nullopt, [&](std::error_code ec, std::string_view why) {
        if (ec) {
            std::fprintf(stderr, "idle_connections: warm-up connection failed: %s (%.*s)\n",
                         ec.message().c_str(), static_cast<int>(why.size()), why.data());
            return;
        }
        connection->close(1000);
    });
    io.run_for(std::chrono::seconds(5));
    connection->abort();
}

void print_usage() {
    std::fputs(
        "usage: idle_connections --server PATH [--connections 15000] [--per-source 10000]\n"
        "         [--concurrency 200] [--open-timeout 120] [--settle 2] [--driver plume|raw]\n"
        "         [--server-output] [-- SERVER ARGS...]\n",
        stderr);
}

int run(const Config& config) {
    require_fd_limit(config.connections);

    ServerProcess server;
    std::vector<std::string> args{"--port", "0"};
    args.insert(args.end(), config.server_args.begin(), config.server_args.end());
    server.start(config.server, args, std::chrono::seconds(15), config.show_server_output);
    const std::string host = server.host().empty() ? "127.0.0.1" : server.host();
    const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(host), server.port());

    const std::string host_header = host + ":" + std::to_string(server.port());
    warm_up(endpoint, host_header);
    const long rss_before = stable_rss_kib(server.pid());
    const RssBreakdown parts_before = proc_rss_breakdown(server.pid());
    const long kernel_before = kernel_slab_kib();
    const long client_rss_before = proc_status_kib("self", "VmRSS").value_or(-1);

    asio::io_context io{1};
    Counters counters;
    std::shared_ptr<Opener> opener;
    if (config.driver == "plume")
        opener = std::make_shared<PlumeOpener>(io, config, "ws://" + host_header + "/", counters);
    else
        opener = std::make_shared<RawOpener>(io, config, endpoint, host_header, counters);
    if (opener->sources() > 253)
        throw std::runtime_error("too many source addresses needed; raise --per-source");
    asio::post(io, [opener] { opener->start(); });
    auto guard = asio::make_work_guard(io);
    std::thread io_thread([&io] { io.run(); });

    const auto open_start = Clock::now();
    auto last_progress = open_start;
    const bool all_done = wait_until(
        [&] {
            if (Clock::now() - last_progress > std::chrono::seconds(5)) {
                last_progress = Clock::now();
                std::fprintf(stderr, "idle_connections: %d open, %d failed...\n",
                             counters.opened.load(), counters.failed.load());
            }
            return counters.opened + counters.failed == config.connections;
        },
        std::chrono::milliseconds(static_cast<long>(config.open_timeout * 1000)));
    const double open_seconds = std::chrono::duration<double>(Clock::now() - open_start).count();

    long rss_after = -1;
    RssBreakdown parts_after;
    long kernel_after = -1;
    long client_rss = -1;
    int idle = 0;
    if (all_done && counters.failed == 0) {
        std::this_thread::sleep_for(std::chrono::duration<double>(config.settle));
        rss_after = stable_rss_kib(server.pid());
        parts_after = proc_rss_breakdown(server.pid());
        kernel_after = kernel_slab_kib();
        client_rss = proc_status_kib("self", "VmRSS").value_or(-1);
        // Counted after the samples: a connection lost before then makes them invalid.
        idle = counters.opened - counters.closed;
    }
    const long server_threads =
        proc_status_kib(std::to_string(server.pid()), "Threads").value_or(-1);

    // Close politely, then drop whatever has not finished in time.
    asio::post(io, [opener] { opener->close_all(); });
    std::atomic<std::size_t> unfinished{1};
    const bool closed_cleanly = wait_until(
        [&] {
            asio::post(io, [&] { unfinished = opener->unfinished(); });
            return counters.closed == counters.opened && unfinished == 0;
        },
        std::chrono::seconds(15));
    asio::post(io, [opener] {
        opener->abort_all();
        opener->release();
    });
    guard.reset();
    io_thread.join();
    const std::string server_end = server.stop(std::chrono::seconds(10));

    std::printf("idle_connections\n");
    std::printf("  server             %s (%ld threads)\n", config.server.c_str(), server_threads);
    std::printf("  client             %s driver\n", config.driver == "plume"
                                                        ? "plume (plume::transport::connect)"
                                                        : "raw (support/ws_load_client.hpp)");
    std::printf("  url                ws://%s:%u/\n", host.c_str(), unsigned{server.port()});
    std::printf(
        "  connections        %d requested, %d opened, %d failed, in %.1f s from %d source "
        "address%s\n",
        config.connections, counters.opened.load(), counters.failed.load(), open_seconds,
        opener->sources(), opener->sources() == 1 ? "" : "es");
    if (rss_after < 0) {
        std::printf("  result             not measured: not every connection opened\n");
        std::printf("  server stop        %s\n", server_end.c_str());
        return 1;
    }
    const double n = config.connections;
    const auto per_conn = [&](long kib) { return static_cast<double>(kib) * 1024.0 / n; };
    std::printf("  still open         %d when sampled\n", idle);
    if (idle != config.connections) {
        std::printf(
            "  result             not valid: the server closed %d connections while they "
            "were idle (idle timeout?)\n",
            config.connections - idle);
        std::printf("  server stop        %s\n", server_end.c_str());
        return 1;
    }
    std::printf("  server RSS before  %ld KiB\n", rss_before);
    std::printf("  server RSS after   %ld KiB\n", rss_after);
    std::printf("  bytes per idle connection  %.0f\n", per_conn(rss_after - rss_before));
    std::printf("    of which heap %.0f, other anonymous %.0f, stack %.0f, file %.0f (smaps)\n",
                per_conn(parts_after.heap - parts_before.heap),
                per_conn(parts_after.anon_other - parts_before.anon_other),
                per_conn(parts_after.stack - parts_before.stack),
                per_conn(parts_after.file - parts_before.file));
    if (kernel_before >= 0 && kernel_after >= 0)
        std::printf(
            "  kernel slab        %+.0f bytes per connection, both ends, machine-wide "
            "(not in RSS; rough)\n",
            per_conn(kernel_after - kernel_before));
    std::printf(
        "  client RSS         %ld KiB (%.0f bytes per connection; %.0f above the client's "
        "baseline)\n",
        client_rss, per_conn(client_rss), per_conn(client_rss - client_rss_before));
    std::printf("  clean close        %s\n", closed_cleanly ? "yes" : "no (aborted the rest)");
    std::printf("  server stop        %s\n", server_end.c_str());
    std::printf("  target             <= 2048 bytes per idle connection: %s\n",
                per_conn(rss_after - rss_before) <= 2048 ? "met" : "NOT met");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        CliArgs args(argc, argv, {"server-output", "help"});
        if (args.flag("help")) return print_usage(), 0;
        Config config;
        config.server = args.get("server", "");
        config.server_args = args.passthrough();
        config.connections = static_cast<int>(args.number("connections", 15000));
        config.per_source = static_cast<int>(args.number("per-source", 10000));
        config.concurrency = static_cast<int>(args.number("concurrency", 200));
        config.open_timeout = args.number("open-timeout", 120);
        config.settle = args.number("settle", 2);
        config.driver = args.get("driver", config.driver);
        config.show_server_output = args.flag("server-output");
        args.finish();
        if (config.server.empty()) {
            print_usage();
            return 2;
        }
        if (config.connections < 1 || config.per_source < 1 || config.concurrency < 1)
            throw std::runtime_error("counts must be positive");
        if (config.driver != "plume" && config.driver != "raw")
            throw std::runtime_error("--driver is plume or raw");
        return run(config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "idle_connections: %s\n", e.what());
        return 1;
    }
}
