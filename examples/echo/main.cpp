// examples/echo — a WebSocket echo server: every text or binary message comes
// back with the same opcode. It is what RFC 6455 conformance runs and the
// benchmarks talk to, and the smallest complete plume transport program.
//
//   echo_server [--host 127.0.0.1] [--port 9001] [--threads 1]
//               [--max-message BYTES] [--max-send-queue BYTES] [--deflate]
//               [--idle-timeout S] [--handshake-timeout S]
//               [--tls-cert CERT.pem --tls-key KEY.pem]     (wss://)
#include <plume/transport.hpp>
#include <plume/transport/tls.hpp>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace ws = plume::transport;

// The per-connection handler: plume keeps one inside each connection.
struct Echo {
    void on_message(auto& conn, ws::opcode op, std::string_view data) {
        if (op == ws::opcode::text)
            conn.send_text(data);
        else
            conn.send_binary(data);
    }
    void on_close(auto&, std::uint16_t, std::string_view) {}
};

namespace {

[[noreturn]] void usage(const char* why) {
    std::cerr << "echo_server: " << why << "\n"
              << "usage: echo_server [--host H] [--port N] [--threads N] [--max-message BYTES]\n"
                 "                   [--max-send-queue BYTES] [--deflate] [--idle-timeout S]\n"
                 "                   [--handshake-timeout S] [--tls-cert F --tls-key F]\n";
    std::exit(2);
}

std::uint64_t number(std::string_view flag, const char* value) {
    if (!value) usage("missing value");
    std::uint64_t n = 0;
    std::string_view v(value);
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc{} || p != v.data() + v.size())
        usage((std::string("bad number for ") + std::string(flag)).c_str());
    return n;
}

}  // namespace

// Listens, runs the io threads until SIGINT/SIGTERM.
template <class Server>
int serve(asio::io_context& io, Server& server, const std::string& host, std::uint16_t port,
          unsigned threads, const char* scheme) {
    try {
        server.listen(host, port);
    } catch (const std::exception& e) {
        std::cerr << "echo_server: cannot listen on " << host << ":" << port << ": " << e.what()
                  << "\n";
        return 1;
    }
    // SIGINT/SIGTERM: close every connection with 1001, let the closing
    // handshakes finish (bounded by close_timeout), then return from run().
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code ec, int) {
        if (!ec) server.stop();
    });
    // The handler is installed before the URL is printed: whoever waits for
    // that line may signal at once.
    auto ep = server.local_endpoint();
    std::cout << "echo_server listening on " << scheme << "://" << ep.address().to_string() << ":"
              << ep.port() << "/" << std::endl;

    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i)
        pool.emplace_back([&] { io.run(); });
    io.run();
    for (auto& t : pool)
        t.join();
    return 0;
}

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    std::uint16_t port = 9001;
    unsigned threads = 1;
    std::string tls_cert, tls_key;
    ws::Options options;
    options.max_message_size = 16 << 20;  // Autobahn's 9.x cases go up to 16 MiB
    options.max_send_queue = 32 << 20;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        const char* next = i + 1 < argc ? argv[i + 1] : nullptr;
        if (arg == "--host" && next) {
            host = argv[++i];
        } else if (arg == "--port") {
            port = static_cast<std::uint16_t>(number(arg, next)), ++i;
        } else if (arg == "--threads") {
            threads = static_cast<unsigned>(std::max<std::uint64_t>(1, number(arg, next))), ++i;
        } else if (arg == "--max-message") {
            options.max_message_size = number(arg, next), ++i;
        } else if (arg == "--max-send-queue") {
            options.max_send_queue = number(arg, next), ++i;
        } else if (arg == "--idle-timeout") {
            options.idle_timeout = std::chrono::seconds(number(arg, next)), ++i;
        } else if (arg == "--handshake-timeout") {
            options.handshake_timeout = std::chrono::seconds(number(arg, next)), ++i;
        } else if (arg == "--tls-cert" && next) {
            tls_cert = argv[++i];
        } else if (arg == "--tls-key" && next) {
            tls_key = argv[++i];
        } else if (arg == "--deflate") {
            options.deflate.enabled = true;
        } else if (arg == "--help" || arg == "-h") {
            usage("help");
        } else {
            usage(("unknown option " + std::string(arg)).c_str());
        }
    }

    // Concurrency hint 1 tells Asio (and plume) that one thread runs it:
    // connections then need no strand of their own.
    asio::io_context io{threads == 1 ? 1 : static_cast<int>(threads)};
    if (tls_cert.empty() != tls_key.empty()) usage("--tls-cert and --tls-key go together");
    if (tls_cert.empty()) {
        ws::Server<Echo> server(io, options);
        return serve(io, server, host, port, threads, "ws");
    }
    std::shared_ptr<asio::ssl::context> tls;
    try {
        tls = ws::server_tls_context(tls_cert, tls_key);
    } catch (const std::exception& e) {
        std::cerr << "echo_server: " << e.what() << "\n";
        return 2;
    }
    ws::Server<Echo, ws::TlsSocket> server(io, options, [] { return Echo{}; }, {tls});
    return serve(io, server, host, port, threads, "wss");
}
