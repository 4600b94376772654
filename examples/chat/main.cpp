// examples/chat — the RoomChannel of the Phoenix guides, in C++, with a
// browser page that uses the official phoenix.js client.
//
//   chat [--host 127.0.0.1] [--port 4000] [--require-token] [--secret KEY]
//        [--static DIR] [--phoenix-js FILE] [--origin URL]... [--deflate]
//        [--history 100] [--redis redis://127.0.0.1:6379 --node NAME]
//        [--tls-cert CERT.pem --tls-key KEY.pem] [--no-longpoll] [--longpoll-window-ms N]
//        [--no-metrics]
//
// Pages whose network blocks WebSockets fall back to long-poll
// (/socket/longpoll, on unless --no-longpoll) after 2.5 s; ?transport=longpoll
// in the page's URL uses it at once.
// Rooms keep their last --history messages (0: none); the page rejoins with
// the offset of the last message it saw and gets what it missed.
// With --tls-cert/--tls-key it serves https:// and wss:// only
// (scripts/make-cert.sh makes a self-signed pair for 127.0.0.1 and localhost).
// With --redis, several chat processes (on different ports) are one cluster:
// broadcasts and presence go through Redis (scripts/cluster.sh starts three).
// Open http://127.0.0.1:4000/ in two browser tabs. The page asks the server
// for a signed token (GET /token?user=NAME; GET or POST /token/NAME work too)
// and connects with it. For local trials and load tests a plain `user_id`
// connect param is accepted unless --require-token is given.
// GET /metrics answers the endpoint's metrics in Prometheus's text format
// (--no-metrics turns them off: the route then answers 404).
#include <plume/metrics/prometheus.hpp>
#include <plume/pubsub/redis.hpp>
#include <plume/server.hpp>
#include <plume/server/token.hpp>

#include <openssl/rand.h>

#include <charconv>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace ps = plume::server;
using nlohmann::json;

namespace {

// Demo-wide settings the socket and channels read (set once in main).
struct Settings {
    bool require_token = false;
    // --no-presence: joins are not tracked, so a join costs O(1) instead of a
    // presence_diff to every subscriber (benchmarks/channel_fanout measures
    // the plain broadcast path with it).
    bool presence = true;
    std::unique_ptr<ps::TokenSigner> tokens;
} settings;

constexpr std::string_view token_salt = "user socket";

bool valid_user_id(std::string_view id) {
    if (id.empty() || id.size() > 32) return false;
    for (char c : id)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
    return true;
}

// {"user_id", "token"} for a valid user name, else 400 with {"error"}.
plume::transport::http::Response token_response(std::optional<std::string_view> user) {
    plume::transport::http::Response r;
    r.set("Content-Type", "application/json").set("Cache-Control", "no-store");
    if (!user || !valid_user_id(*user)) {
        r.status = 400;
        r.body = json{{"error", "user must be 1-32 letters, digits, _ or -"}}.dump();
        return r;
    }
    r.body =
        json{{"user_id", *user}, {"token", settings.tokens->sign(token_salt, {{"user_id", *user}})}}
            .dump();
    return r;
}

}  // namespace

class RoomChannel;

// The socket: who is connecting (typed assigns), and where its topics go.
struct UserSocket {
    std::string user_id;

    ps::ConnectResult connect(const ps::Params& params, const ps::ConnectInfo& info) {
        // A token from phoenix.js's authToken option, or a ?token= param.
        std::optional<std::string> token = info.auth_token;
        if (!token && params.contains("token")) token = params["token"].get<std::string>();
        if (token) {
            auto data =
                settings.tokens->verify(token_salt, *token, {.max_age = std::chrono::hours(24)});
            if (!data) return ps::ConnectResult::refuse(data.error().message());
            user_id = (*data)["user_id"].get<std::string>();
            return ps::ConnectResult::accept();
        }
        if (settings.require_token) return ps::ConnectResult::refuse("token required");
        if (!params.contains("user_id") || !valid_user_id(params["user_id"].get<std::string>()))
            return ps::ConnectResult::refuse("user_id required");
        user_id = params["user_id"].get<std::string>();
        return ps::ConnectResult::accept();
    }

    std::optional<std::string> id() const { return "user_socket:" + user_id; }

    static void channels(ps::Router<UserSocket>& r) { r.channel<RoomChannel>("room:*"); }
};

class RoomChannel : public ps::Channel<UserSocket> {
  public:
    JoinResult join(std::string_view topic, const Payload&) override {
        send_info("after_join");
        if (topic == "room:lobby") return ok();
        // Rooms named "room:private-<user>" admit only that user.
        constexpr std::string_view private_prefix = "room:private-";
        if (topic.substr(0, private_prefix.size()) == private_prefix &&
            topic.substr(private_prefix.size()) != socket().user_id)
            return error({{"reason", "unauthorized"}});
        return ok();
    }

    // Runs right after the join reply (Phoenix's send(self(), :after_join)).
    void handle_info(const json& message) override {
        if (message != "after_join" || !settings.presence) return;
        auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
        // Several tabs of one user each track a meta under the same key.
        auto tracked =
            track(socket().user_id, {{"online_at", std::to_string(now)}, {"typing", false}});
        if (!tracked) std::cerr << "chat: track failed: " << tracked.error().message() << "\n";
        // The state as of the topic's last presence_diff, encoded once for every
        // joiner until the next diff (a join storm would otherwise encode the
        // whole list once per joiner); our own join comes in the next diff.
        push_presence_state();
    }

    void set_typing(bool typing) {
        if (!settings.presence) return;
        auto updated = update_presence(socket().user_id, [typing](const json& meta) {
            auto next = meta;
            next["typing"] = typing;
            return next;
        });
        if (!updated) std::cerr << "chat: update failed: " << updated.error().message() << "\n";
    }

    InResult handle_in(std::string_view event, const Payload& payload) override {
        if (event == "new_msg") {
            // A payload may be any JSON value (a string, a number, null...):
            // check its shape before reading fields.
            if (!payload.is_json() || !payload.json().is_object() ||
                !payload.json().contains("body") || !payload.json()["body"].is_string())
                return reply_error({{"reason", "body must be a string"}});
            auto& body = payload.json()["body"];
            if (body.get_ref<const std::string&>().size() > 4000)
                return reply_error({{"reason", "body too long"}});
            broadcast("new_msg", json{{"body", body}, {"user_id", socket().user_id}});
            return noreply();
        }
        if (event == "typing") {
            // Low priority: batched, the first dropped for a slow reader, and
            // a user's newer indicator replaces one still waiting.
            broadcast_from("typing", json{{"user_id", socket().user_id}},
                           {ps::Priority::low, "typing:" + socket().user_id});
            return noreply();
        }
        if (event == "typing:start" || event == "typing:stop") {
            set_typing(event == "typing:start");
            return noreply();
        }
        if (event == "ping") return reply_ok(payload);
        return reply_error({{"reason", "unknown event"}});
    }
};

namespace {

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "chat: " << why << "\n"
              << "usage: chat [--host H] [--port N] [--require-token] [--secret KEY]\n"
                 "            [--static DIR] [--phoenix-js FILE] [--origin URL]... [--deflate]\n"
                 "            [--max-message BYTES] [--threads N] [--no-presence]\n"
                 "            [--no-rate-limits]\n"
                 "            [--history N] [--redis redis://HOST:PORT [--node NAME]]\n"
                 "            [--tracker-broadcast-ms N] [--tracker-down-ms N]\n"
                 "            [--tls-cert CERT.pem --tls-key KEY.pem]\n"
                 "            [--no-longpoll] [--longpoll-window-ms N] [--no-metrics]\n";
    std::exit(2);
}

std::string random_secret() {
    unsigned char bytes[48];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
    return plume::detail::base64_encode(bytes, sizeof bytes);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return {};
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

// Routes, listens and runs the io threads until SIGINT/SIGTERM.
template <class Endpoint>
int serve(asio::io_context& io, Endpoint& endpoint, const ps::EndpointConfig& config,
          const std::string& phoenix_js, unsigned threads) {
    // The page asks for a token for a user name (a real app would check a
    // password or a session first).
    endpoint.route("/token", [](const plume::transport::http::Request& req) {
        return token_response(req.query_param("user"));
    });
    // The same with the user in the path, as Phoenix routes `get "/token/:user"`
    // and `post "/token/:user"` would have it (the value arrives percent-decoded).
    for (std::string method : {"GET", "POST"})
        endpoint.route(method, "/token/:user",
                       [](const plume::transport::http::Request&, const ps::RouteParams& params) {
                           return token_response(params["user"]);
                       });
    // phoenix.js itself, from the npm package the tests install.
    endpoint.route("/phoenix.mjs", [phoenix_js](const plume::transport::http::Request&) {
        plume::transport::http::Response r;
        r.body = read_file(phoenix_js);
        if (r.body.empty())
            return plume::transport::http::error_response(
                404, "phoenix.mjs missing; run scripts/setup.sh");
        r.set("Content-Type", "text/javascript; charset=utf-8");
        return r;
    });

    // For Prometheus: scrape_configs: [{job_name: chat, static_configs:
    // [{targets: ["127.0.0.1:4000"]}]}] (metrics_path defaults to /metrics).
    if (config.metrics)
        endpoint.route("/metrics", [&endpoint](const plume::transport::http::Request&) {
            return plume::metrics::prometheus_response(endpoint.metrics().snapshot());
        });

    // --threads N: N io_contexts, each run by a thread of its own, and the
    // WebSocket connections spread over them (no strands, no handler queue
    // shared between threads). The first is `io`, which also runs the
    // listener, long-poll, presence and the PubSub adapter. Each keeps
    // running until every connection is closed.
    std::vector<std::unique_ptr<asio::io_context>> workers;
    std::vector<asio::io_context*> contexts{&io};
    for (unsigned i = 1; i < threads; ++i) {
        workers.push_back(std::make_unique<asio::io_context>(1));
        contexts.push_back(workers.back().get());
    }
    using WorkGuard = asio::executor_work_guard<asio::io_context::executor_type>;
    std::vector<WorkGuard> guards;
    if (threads > 1) {
        endpoint.spread_over(contexts);
        for (auto* c : contexts)
            guards.push_back(asio::make_work_guard(*c));
    }

    try {
        endpoint.start();
    } catch (const std::exception& e) {
        std::cerr << "chat: cannot listen on " << config.host << ":" << config.port << ": "
                  << e.what() << "\n";
        return 1;
    }
    // SIGINT/SIGTERM: close every connection with 1001, let the closing
    // handshakes finish (bounded by close_timeout), then return from run().
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code ec, int) {
        if (!ec)
            endpoint.stop(plume::transport::to_int(plume::transport::close_code::going_away),
                          [&guards] { guards.clear(); });
    });
    // The handler is installed before the URL is printed: whoever waits for
    // that line may signal at once.
    auto ep = endpoint.local_endpoint();
    const bool tls = !config.tls.empty();
    std::cout << "chat listening on " << (tls ? "https" : "http") << "://"
              << ep.address().to_string() << ":" << ep.port() << "/ (socket "
              << (tls ? "wss" : "ws") << "://" << ep.address().to_string() << ":" << ep.port()
              << "/socket/websocket)" << std::endl;

    std::vector<std::thread> pool;
    for (auto& w : workers)
        pool.emplace_back([&w] { w->run(); });
    io.run();
    for (auto& t : pool)
        t.join();
    return 0;
}

// One node, or several through Redis; over TCP, or TLS (--tls-cert/--tls-key).
template <class NextLayer>
int run(asio::io_context& io, const ps::EndpointConfig& config, plume::pubsub::RedisOptions redis,
        const std::string& phoenix_js, unsigned threads) {
    if (redis.url.empty()) {
        ps::Endpoint<UserSocket, plume::pubsub::Local, NextLayer> endpoint(io, config);
        return serve(io, endpoint, config, phoenix_js, threads);
    }
    // Several nodes sharing broadcasts and presence through Redis.
    redis.on_state = [](std::string_view which, std::error_code ec) {
        if (ec == plume::redis::error::stopped) return;  // shutting down
        if (ec)
            std::cerr << "chat: redis " << which << " connection: " << ec.message() << "\n";
        else
            std::cerr << "chat: redis " << which << " connection up\n";
    };
    std::optional<plume::pubsub::Redis> adapter;
    try {
        adapter.emplace(io.get_executor(), redis);
    } catch (const std::exception& e) {
        std::cerr << "chat: --redis: " << e.what() << "\n";
        return 2;
    }
    ps::Endpoint<UserSocket, plume::pubsub::Redis, NextLayer> endpoint(io, config,
                                                                       std::move(*adapter));
    return serve(io, endpoint, config, phoenix_js, threads);
}

int main(int argc, char** argv) {
    ps::EndpointConfig config;
    config.port = 4000;
    config.static_dir = PLUME_CHAT_STATIC_DIR;
    config.longpoll.enabled = true;  // for networks that block WebSockets
    std::string phoenix_js = PLUME_PHOENIX_JS;
    std::string secret =
        std::getenv("PLUME_SECRET_KEY_BASE") ? std::getenv("PLUME_SECRET_KEY_BASE") : "";
    std::vector<std::string> origins;
    unsigned threads = 1;
    plume::pubsub::RedisOptions redis;
    redis.url.clear();  // no --redis: one node, in process
    auto number = [&](int& i) -> std::uint64_t {
        if (i + 1 >= argc) usage(std::string("missing value for ") + argv[i]);
        std::string_view v(argv[++i]);
        std::uint64_t n = 0;
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (ec != std::errc{} || p != v.data() + v.size()) usage("bad number " + std::string(v));
        return n;
    };
    auto text = [&](int& i) -> std::string {
        if (i + 1 >= argc) usage(std::string("missing value for ") + argv[i]);
        return argv[++i];
    };
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--host")
            config.host = text(i);
        else if (a == "--port")
            config.port = static_cast<std::uint16_t>(number(i));
        else if (a == "--threads")
            threads = static_cast<unsigned>(std::max<std::uint64_t>(1, number(i)));
        else if (a == "--require-token")
            settings.require_token = true;
        else if (a == "--no-presence")
            settings.presence = false;
        else if (a == "--no-rate-limits")
            config.limits.messages = config.limits.joins =
                config.limits.connections_per_address = {};
        else if (a == "--secret")
            secret = text(i);
        else if (a == "--static")
            config.static_dir = text(i);
        else if (a == "--phoenix-js")
            phoenix_js = text(i);
        else if (a == "--origin")
            origins.push_back(text(i));
        else if (a == "--deflate")
            config.websocket.deflate.enabled = true;
        else if (a == "--max-message")
            config.websocket.max_message_size = number(i);
        else if (a == "--history")
            config.history.size = number(i);
        else if (a == "--redis")
            redis.url = text(i);
        else if (a == "--tls-cert")
            config.tls.cert_chain_file = text(i);
        else if (a == "--tls-key")
            config.tls.private_key_file = text(i);
        else if (a == "--node")
            redis.node_name = text(i);
        else if (a == "--tracker-broadcast-ms")
            config.presence.tracker.broadcast_period = std::chrono::milliseconds(number(i));
        else if (a == "--no-metrics")
            config.metrics = false;
        else if (a == "--no-longpoll")
            config.longpoll.enabled = false;
        else if (a == "--longpoll-window-ms")
            config.longpoll.window =
                std::chrono::milliseconds(std::max<std::uint64_t>(1, number(i)));
        else if (a == "--tracker-down-ms")
            config.presence.tracker.down_period = std::chrono::milliseconds(number(i));
        else
            usage("unknown option " + std::string(a));
    }
    if (!origins.empty()) config.check_origin = ps::OriginPolicy::allow_list(origins);
    // Without a configured secret, tokens are valid until the server restarts.
    settings.tokens =
        std::make_unique<ps::TokenSigner>(secret.size() >= 32 ? secret : random_secret());

    // The rooms keep their last messages (--history N, default 100; 0: none),
    // so a page that lost its connection gets what it missed: in this
    // process's memory, or in Redis with --redis (then a page may come back
    // through any node).
    config.history.topics = {"room:*"};
    config.history.events = {"new_msg"};  // not typing indicators

    // Concurrency hint 1 tells Asio (and plume) that one thread runs it:
    // connections then need no strand of their own. More threads get an
    // io_context each (serve()).
    asio::io_context io{1};
    try {
        if (config.tls.empty())
            return run<asio::ip::tcp::socket>(io, config, redis, phoenix_js, threads);
        return run<plume::transport::TlsSocket>(io, config, redis, phoenix_js, threads);
    } catch (const std::system_error& e) {  // a certificate or key it cannot use
        std::cerr << "chat: " << e.what() << "\n";
        return 2;
    }
}
