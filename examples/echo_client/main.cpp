// examples/echo_client — plume's WebSocket client role as an Autobahn|Testsuite
// testee: it asks a fuzzing server how many cases there are, then connects
// once per case and echoes every text or binary message with the same opcode
// until the server closes, and finally asks the server to write its reports.
// It works against Autobahn's `wstest -m fuzzingserver` and against
// tests/node/conformance/fuzzing_server.mjs.
//
//   echo_client --url ws://127.0.0.1:9001 [--agent plume] [--case N]
//               [--max-message BYTES] [--deflate]
//   echo_client --url wss://127.0.0.1:9001 [--ca-file ca.pem] ...
//
// A wss:// URL runs every connection over TLS; the server's certificate is
// checked against --ca-file (a PEM file of CAs to trust) or, without it, the
// system CA store, and against the URL's host.
//
// One line per case goes to stdout ("case 3/517: closed 1000 normal"). Each
// connection ends through plume's own closing handshake or its timeouts, so
// the program always finishes; it exits 0 once the report was requested.
#include <plume/transport.hpp>
#include <plume/transport/tls.hpp>

#include <charconv>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

namespace ws = plume::transport;

namespace {

// What one connection ended with.
struct Outcome {
    std::string first_text;  // getCaseCount: the count
    std::uint16_t close_code = 0;
    std::string close_reason;
    std::string handshake_error;
    std::size_t messages = 0;
};

// The per-connection handler: echo everything, remember how it ended.
struct Testee {
    Outcome* out;
    void on_message(auto& conn, ws::opcode op, std::string_view data) {
        if (out->messages++ == 0 && op == ws::opcode::text) out->first_text = data;
        if (op == ws::opcode::text)
            conn.send_text(data);
        else
            conn.send_binary(data);
    }
    void on_close(auto&, std::uint16_t code, std::string_view reason) {
        out->close_code = code;
        out->close_reason = reason;
    }
    void on_handshake_error(auto&, std::string_view what) { out->handshake_error = what; }
};

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "echo_client: " << why << "\n"
              << "usage: echo_client --url ws[s]://HOST:PORT [--agent NAME] [--case N]\n"
                 "                   [--max-message BYTES] [--deflate] [--ca-file PEM]\n";
    std::exit(2);
}

std::uint64_t number(std::string_view flag, const char* value) {
    if (!value) usage("missing value for " + std::string(flag));
    std::uint64_t n = 0;
    std::string_view v(value);
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc{} || p != v.data() + v.size()) usage("bad number for " + std::string(flag));
    return n;
}

// Percent-encodes a query parameter value.
std::string query_escape(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// Runs one connection to its very end: io.run() returns only when the socket
// is closed and no timer is left, whoever ended it. A TLS context means wss://.
Outcome run_one(asio::io_context& io, const std::string& url, const ws::Options& options,
                const std::shared_ptr<asio::ssl::context>& tls) {
    Outcome out;
    if (tls)
        ws::connect<Testee, ws::TlsSocket>(io, url, options, Testee{&out}, {}, {tls});
    else
        ws::connect<Testee>(io, url, options, Testee{&out});
    io.restart();
    io.run();
    return out;
}

std::string describe(const Outcome& o) {
    if (!o.handshake_error.empty()) return "handshake failed: " + o.handshake_error;
    std::string s = "closed " + std::to_string(o.close_code) + " " +
                    std::string(ws::close_code_name(o.close_code));
    if (!o.close_reason.empty()) s += " (" + o.close_reason + ")";
    return s + ", " + std::to_string(o.messages) + " message(s) echoed";
}

}  // namespace

int main(int argc, char** argv) {
    std::string base;
    std::string agent = "plume";
    std::uint64_t only_case = 0;
    std::string ca_file;
    ws::Options options;
    options.max_message_size = 16 << 20;  // Autobahn's 9.x cases go up to 16 MiB
    options.max_send_queue = 32 << 20;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        const char* next = i + 1 < argc ? argv[i + 1] : nullptr;
        if (arg == "--url" && next) {
            base = argv[++i];
        } else if (arg == "--agent" && next) {
            agent = argv[++i];
        } else if (arg == "--case") {
            only_case = number(arg, next), ++i;
        } else if (arg == "--max-message") {
            options.max_message_size = number(arg, next), ++i;
        } else if (arg == "--deflate") {
            options.deflate.enabled = true;
        } else if (arg == "--ca-file" && next) {
            ca_file = argv[++i];
        } else if (arg == "--help" || arg == "-h") {
            usage("help");
        } else {
            usage("unknown option " + std::string(arg));
        }
    }
    if (base.empty()) usage("--url is required");
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    auto url = ws::parse_url(base);
    if (!url) usage("not a ws:// or wss:// URL: " + base);
    std::shared_ptr<asio::ssl::context> tls;
    if (url->scheme == "wss") {
        ws::ClientTlsOptions tls_options;
        tls_options.ca_file = ca_file;  // empty: the system CA store
        tls = ws::client_tls_context(tls_options);
    }

    asio::io_context io;
    auto count_result = run_one(io, base + "/getCaseCount", options, tls);
    std::uint64_t count = 0;
    std::string_view text = count_result.first_text;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
    if (count_result.messages == 0 || ec != std::errc{} || end != text.data() + text.size()) {
        std::cerr << "echo_client: no case count from " << base << ": " << describe(count_result)
                  << "\n";
        return 1;
    }
    std::cout << "echo_client: " << count << " cases at " << base << std::endl;

    std::uint64_t first = only_case ? only_case : 1;
    std::uint64_t last = only_case ? only_case : count;
    for (std::uint64_t i = first; i <= last; ++i) {
        auto r = run_one(
            io, base + "/runCase?case=" + std::to_string(i) + "&agent=" + query_escape(agent),
            options, tls);
        std::cout << "case " << i << "/" << count << ": " << describe(r) << std::endl;
    }
    auto report = run_one(io, base + "/updateReports?agent=" + query_escape(agent), options, tls);
    std::cout << "echo_client: reports updated (" << describe(report) << ")" << std::endl;
    return 0;
}
