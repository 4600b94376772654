// A Phoenix Channels server for the interop tests: every channel behaviour a
// test wants to provoke (crashes, deferred replies, intercepts, binary
// payloads, server-side disconnects) has an event here. Not an example to
// copy; examples/chat is.
//
//   channel_test_server [--host 127.0.0.1] [--port 4001] [--origin URL]...
//                       [--idle-timeout S] [--max-channels N]
//                       [--relaxed-subprotocols]
//
// --relaxed-subprotocols sets require_phoenix_subprotocol = false: upgrades
// offering subprotocols without "phoenix" get a 101 that names none.
#include <plume/server.hpp>

#include <charconv>
#include <iostream>
#include <string>
#include <vector>

namespace ps = plume::server;
using nlohmann::json;

class EchoChannel;

struct TestSocket {
    std::string user_id = "anon";

    ps::ConnectResult connect(const ps::Params& params, const ps::ConnectInfo& info) {
        if (params.value("reject", "") == "1") return ps::ConnectResult::refuse("rejected by test");
        if (params.value("reject", "") == "429")
            return ps::ConnectResult::refuse("rate limited", 429);
        if (info.auth_token) {
            if (*info.auth_token != "good-token") return ps::ConnectResult::refuse("bad token");
            user_id = "token-user";
        } else if (params.contains("user_id")) {
            user_id = params["user_id"].get<std::string>();
        }
        return ps::ConnectResult::accept();
    }
    std::optional<std::string> id() const { return "test_socket:" + user_id; }
    static void channels(ps::Router<TestSocket>& r) { r.channel<EchoChannel>("echo:*"); }
};

ps::Endpoint<TestSocket>* the_endpoint = nullptr;

class EchoChannel : public ps::Channel<TestSocket> {
  public:
    JoinResult join(std::string_view topic, const Payload& params) override {
        intercept({"filtered"});
        // Join params may be any JSON value (Phoenix passes them through).
        if (params.is_json() && params.json().is_object()) {
            auto& p = params.json();
            if (p.value("fail", false)) return error({{"reason", "join refused"}});
            if (p.value("crash", false)) throw std::runtime_error("join crash requested");
            if (p.value("after_join", false)) send_info({{"do", "after_join"}});
        }
        return ok({{"joined", topic}, {"user_id", socket().user_id}});
    }

    InResult handle_in(std::string_view event, const Payload& payload) override {
        if (event == "echo") return reply_ok(payload);
        if (event == "error") return reply_error({{"reason", "asked for an error"}});
        if (event == "noreply") return noreply();
        if (event == "crash") throw std::runtime_error("crash requested");
        if (event == "broadcast") {
            broadcast("broadcast", payload);
            return noreply();
        }
        if (event == "broadcast_from") {
            broadcast_from("broadcast_from", payload);
            return noreply();
        }
        if (event == "filtered") {
            broadcast("filtered", payload);
            return noreply();
        }
        if (event == "push") {
            push("pushed", payload);
            return reply_ok();
        }
        if (event == "defer") {
            deferred_ = socket_ref();
            send_info({{"do", "reply_later"}});
            return noreply();
        }
        if (event == "stop") return stop("requested");
        if (event == "disconnect_me") {
            the_endpoint->disconnect("test_socket:" + socket().user_id);
            return noreply();
        }
        return ps::Channel<TestSocket>::handle_in(event, payload);
    }

    void handle_info(const json& m) override {
        if (m["do"] == "after_join") push("after_join", {{"topic", topic()}});
        if (m["do"] == "reply_later") reply(deferred_, "ok", json{{"deferred", true}});
    }

    // Intercepted: drop when asked, otherwise tag with who saw it.
    void handle_out(std::string_view event, const Payload& payload) override {
        bool object = payload.is_json() && payload.json().is_object();
        if (object && payload.json().value("drop", false)) return;
        json out = json::object();
        if (object)
            out = payload.json();
        else if (payload.is_json())
            out["payload"] = payload.json();  // a string, number, array or null
        out["seen_by"] = socket().user_id;
        push(event, out);
    }

  private:
    ps::ReplyRef deferred_;
};

int main(int argc, char** argv) {
    ps::EndpointConfig config;
    config.port = 4001;
    std::vector<std::string> origins;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "missing value for " << a << "\n";
                std::exit(2);
            }
            return argv[++i];
        };
        auto number = [&] {
            auto v = value();
            unsigned long n = 0;
            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (ec != std::errc{} || p != v.data() + v.size()) {
                std::cerr << "bad number " << v << "\n";
                std::exit(2);
            }
            return n;
        };
        if (a == "--host")
            config.host = value();
        else if (a == "--port")
            config.port = static_cast<std::uint16_t>(number());
        else if (a == "--origin")
            origins.push_back(value());
        else if (a == "--idle-timeout")
            config.websocket.idle_timeout = std::chrono::seconds(number());
        else if (a == "--max-channels")
            config.max_channels_per_socket = number();
        else if (a == "--relaxed-subprotocols")
            config.require_phoenix_subprotocol = false;
        else {
            std::cerr << "unknown option " << a << "\n";
            return 2;
        }
    }
    if (!origins.empty()) config.check_origin = ps::OriginPolicy::allow_list(origins);

    asio::io_context io;
    ps::Endpoint<TestSocket> endpoint(io, config);
    the_endpoint = &endpoint;
    // Broadcasts from outside any channel ("from contexts"), over HTTP.
    endpoint.route("/broadcast", [&](const plume::transport::http::Request& req) {
        endpoint.broadcast(std::string(req.query_param("topic").value_or("")),
                           req.query_param("event").value_or("ping"),
                           json{{"body", req.query_param("body").value_or("")}});
        plume::transport::http::Response r;
        r.body = "ok";
        return r;
    });
    endpoint.route("/disconnect", [&](const plume::transport::http::Request& req) {
        endpoint.disconnect(std::string(req.query_param("id").value_or("")));
        plume::transport::http::Response r;
        r.body = "ok";
        return r;
    });
    try {
        endpoint.start();
    } catch (const std::exception& e) {
        std::cerr << "channel_test_server: " << e.what() << "\n";
        return 1;
    }
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code ec, int) {
        if (!ec) endpoint.stop();
    });
    auto ep = endpoint.local_endpoint();
    std::cout << "channel_test_server listening on ws://" << ep.address().to_string() << ":"
              << ep.port() << "/socket/websocket" << std::endl;
    io.run();
    return 0;
}
