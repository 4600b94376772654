// lanes_server — the server the `lanes` benchmark spawns: a plume Endpoint
// with one channel, `lanes:*`, whose "fire" event broadcasts an event in the
// priority lane it names (issue 15's benchmark of the lanes).
//
//   lanes_server [--host 127.0.0.1] [--port 0] [--threads 1] [--low-keys 50]
//                [--max-send-queue BYTES] [--low-lane-limit BYTES]
//                [--low-window-ms 100] [--notsent-lowat BYTES] [--idle-timeout-ms 600000]
//                [--all-normal] [--no-metrics]
//
// A client pushes ["1",REF,"lanes:X","fire",{"lane":"crit","seq":7,"t":NANOS,...}];
// every other subscriber of lanes:X gets [null,null,"lanes:X","crit",{...}]
// with the payload as sent minus "lane" (so seq and the sender's steady-clock
// time arrive unchanged). "crit" goes in the critical lane, "norm" in the
// normal one, "low" in the low one with the coalesce key "low:<seq % K>" for
// --low-keys K (the way the chat keys `typing` per user; 0: no key).
// --all-normal sends every event in the normal lane (the server without
// lanes, for comparison). GET /metrics answers the endpoint's metrics in Prometheus's text format.
// Prints "lanes_server listening on ws://HOST:PORT/socket/websocket" once it
// listens; SIGINT/SIGTERM stop it.
#include <plume/metrics/prometheus.hpp>
#include <plume/server.hpp>

#include <charconv>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace ps = plume::server;
using nlohmann::json;

namespace {

struct Settings {
    std::uint64_t low_keys = 50;
    bool all_normal = false;
} settings;

}  // namespace

class LanesChannel;

// Anyone may connect: the benchmark is the only client.
struct BenchSocket {
    ps::ConnectResult connect(const ps::Params&, const ps::ConnectInfo&) {
        return ps::ConnectResult::accept();
    }
    static void channels(ps::Router<BenchSocket>& r) { r.channel<LanesChannel>("lanes:*"); }
};

class LanesChannel : public ps::Channel<BenchSocket> {
  public:
    JoinResult join(std::string_view, const Payload&) override { return ok(); }

    InResult handle_in(std::string_view event, const Payload& payload) override {
        if (event != "fire") return reply_error({{"reason", "unknown event"}});
        if (!payload.is_json() || !payload.json().is_object() || !payload.json().contains("lane") ||
            !payload.json()["lane"].is_string() || !payload.json().contains("seq") ||
            !payload.json()["seq"].is_number_unsigned())
            return reply_error({{"reason", "want {lane, seq, t}"}});
        json out = payload.json();
        const std::string lane = out["lane"].get<std::string>();
        const std::uint64_t seq = out["seq"].get<std::uint64_t>();
        out.erase("lane");
        if (settings.all_normal) {
            if (lane != "crit" && lane != "norm" && lane != "low")
                return reply_error({{"reason", "lane must be crit, norm or low"}});
            broadcast_from(lane, std::move(out), ps::Priority::normal);
            return noreply();
        }
        // The sender does not get its own events: it is the driver, not a reader.
        if (lane == "crit") {
            broadcast_from("crit", std::move(out), ps::Priority::critical);
        } else if (lane == "norm") {
            broadcast_from("norm", std::move(out), ps::Priority::normal);
        } else if (lane == "low") {
            std::string key;
            if (settings.low_keys > 0) key = "low:" + std::to_string(seq % settings.low_keys);
            broadcast_from("low", std::move(out), {ps::Priority::low, std::move(key)});
        } else {
            return reply_error({{"reason", "lane must be crit, norm or low"}});
        }
        return noreply();
    }
};

namespace {

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "lanes_server: " << why << "\n"
              << "usage: lanes_server [--host H] [--port N] [--threads N] [--low-keys K]\n"
                 "                    [--max-send-queue BYTES] [--low-lane-limit BYTES]\n"
                 "                    [--low-window-ms N] [--notsent-lowat BYTES]\n"
                 "                    [--behind-write-bytes BYTES]\n"
                 "                    [--idle-timeout-ms N] [--all-normal] [--no-metrics]\n";
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    ps::EndpointConfig config;
    config.host = "127.0.0.1";
    config.port = 0;
    // One benchmark process opens 1,000 sockets and pushes as fast as it is told.
    config.limits.messages = config.limits.joins = config.limits.connections_per_address = {};
    // Slow readers send nothing while they drain: no heartbeat timeout within a run.
    config.websocket.idle_timeout = std::chrono::minutes(10);
    unsigned threads = 1;
    auto number = [&](int& i) -> std::uint64_t {
        if (i + 1 >= argc) usage(std::string("missing value for ") + argv[i]);
        std::string_view v(argv[++i]);
        std::uint64_t n = 0;
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (ec != std::errc{} || p != v.data() + v.size()) usage("bad number " + std::string(v));
        return n;
    };
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--host" && i + 1 < argc)
            config.host = argv[++i];
        else if (a == "--port")
            config.port = static_cast<std::uint16_t>(number(i));
        else if (a == "--threads")
            threads = static_cast<unsigned>(std::max<std::uint64_t>(1, number(i)));
        else if (a == "--low-keys")
            settings.low_keys = number(i);
        else if (a == "--max-send-queue")
            config.websocket.max_send_queue = number(i);
        else if (a == "--low-lane-limit")
            config.websocket.low_lane_limit = number(i);
        else if (a == "--low-window-ms")
            config.websocket.low_lane_window = std::chrono::milliseconds(number(i));
        else if (a == "--notsent-lowat")
            config.websocket.tcp_notsent_lowat = number(i);
        else if (a == "--behind-write-bytes")
            config.websocket.behind_write_bytes = number(i);
        else if (a == "--idle-timeout-ms")
            config.websocket.idle_timeout = std::chrono::milliseconds(number(i));
        else if (a == "--all-normal")
            settings.all_normal = true;
        else if (a == "--no-metrics")
            config.metrics = false;
        else
            usage("unknown option " + std::string(a));
    }
    if (config.host != "127.0.0.1" && config.host != "::1" && config.host != "localhost")
        usage("a benchmark server listens on loopback only");

    asio::io_context io{threads == 1 ? 1 : static_cast<int>(threads)};
    ps::Endpoint<BenchSocket> endpoint(io, config);
    if (config.metrics)
        endpoint.route("/metrics", [&endpoint](const plume::transport::http::Request&) {
            return plume::metrics::prometheus_response(endpoint.metrics().snapshot());
        });
    try {
        endpoint.start();
    } catch (const std::exception& e) {
        std::cerr << "lanes_server: cannot listen on " << config.host << ":" << config.port << ": "
                  << e.what() << "\n";
        return 1;
    }
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code ec, int) {
        if (!ec) endpoint.stop();
    });
    // The handler is installed before the line is printed: whoever waits for
    // it may signal at once.
    const auto ep = endpoint.local_endpoint();
    std::cout << "lanes_server listening on ws://" << ep.address().to_string() << ":" << ep.port()
              << "/socket/websocket (low keys " << settings.low_keys << ", max send queue "
              << config.websocket.max_send_queue << ", notsent lowat "
              << config.websocket.tcp_notsent_lowat << ", behind write bytes "
              << config.websocket.behind_write_bytes << (settings.all_normal ? ", all normal" : "")
              << ")" << std::endl;

    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i)
        pool.emplace_back([&] { io.run(); });
    io.run();
    for (auto& t : pool)
        t.join();
    return 0;
}
