// plume's client Socket driven by a test: commands as JSON lines on stdin,
// events as JSON lines on stdout. Used by tests/node/client_vs_ws_server.test.mjs
// against an independent Node server. Not an example to copy;
// examples/cli_client is.
//
//   client_driver --url ws://127.0.0.1:4000/socket [--param k=v]... [--token T]
//                 [--vsn 2.0.0] [--reconnect-ms N] [--rejoin-ms N]
//                 [--timeout-ms N] [--heartbeat-ms N] [--heartbeat-timeout-ms N]
//
// Commands: {"cmd":"connect"} {"cmd":"disconnect","code":1000}
//           {"cmd":"join","topic":T,"params":{...}}
//           {"cmd":"push","topic":T,"event":E,"payload":{...},"id":ID,"timeout_ms":N}
//           {"cmd":"leave","topic":T} {"cmd":"state","topic":T} {"cmd":"exit"}
// Events:   {"ev":"ready"} {"ev":"open"} {"ev":"close","code","reason"}
//           {"ev":"error","code","detail"} {"ev":"join","topic","status","response","join_ref"}
//           {"ev":"reply","id","status","response"}
//           {"ev":"message","topic","event","payload","join_ref"}
//           {"ev":"state","topic","state","join_ref"} {"ev":"bye"}
//
// The commands are called from a reader thread: the client's API is
// thread-safe (each call is posted to the socket's strand), which this
// program exercises on purpose. Output happens on the strand only.
#include <plume/client.hpp>

#include <charconv>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace pc = plume::client;
using nlohmann::json;

namespace {

std::mutex out_mutex;

void emit(const json& event) {
    std::lock_guard lock(out_mutex);
    std::cout << event.dump() << std::endl;
}

const char* error_name(std::error_code ec) {
    if (ec.category() != pc::client_category()) return "other";
    switch (static_cast<pc::error>(ec.value())) {
        case pc::error::connect_failed:
            return "connect_failed";
        case pc::error::connection_lost:
            return "connection_lost";
        case pc::error::protocol_error:
            return "protocol_error";
        case pc::error::message_too_big:
            return "message_too_big";
        case pc::error::heartbeat_timeout:
            return "heartbeat_timeout";
        case pc::error::malformed_frame:
            return "malformed_frame";
        case pc::error::unknown_topic:
            return "unknown_topic";
        case pc::error::unhandled_event:
            return "unhandled_event";
        case pc::error::unexpected_reply:
            return "unexpected_reply";
        case pc::error::send_buffer_full:
            return "send_buffer_full";
        case pc::error::invalid_payload:
            return "invalid_payload";
        default:
            return "other";
    }
}

json as_json(const plume::wire::Payload& p) {
    return p.is_json() ? p.json() : json{{"binary_size", p.bytes().size()}};
}

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "client_driver: " << why << "\n";
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    pc::SocketOptions options;
    auto ms = [](const char* v) {
        std::string_view s(v);
        long n = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        if (ec != std::errc{} || p != s.data() + s.size() || n < 0)
            usage("bad number " + std::string(s));
        return std::chrono::milliseconds(n);
    };
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (i + 1 >= argc) usage("missing value for " + std::string(a));
        const char* v = argv[++i];
        if (a == "--url") {
            options.url = v;
        } else if (a == "--param") {
            std::string_view kv(v);
            auto eq = kv.find('=');
            if (eq == std::string_view::npos) usage("--param wants k=v");
            options.params[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
        } else if (a == "--token") {
            options.auth_token = v;
        } else if (a == "--vsn") {
            options.vsn = v;
        } else if (a == "--reconnect-ms") {
            options.reconnect_after = [d = ms(v)](unsigned) { return d; };
        } else if (a == "--rejoin-ms") {
            options.rejoin_after = [d = ms(v)](unsigned) { return d; };
        } else if (a == "--timeout-ms") {
            options.timeout = ms(v);
        } else if (a == "--heartbeat-ms") {
            options.heartbeat_interval = ms(v);
        } else if (a == "--heartbeat-timeout-ms") {
            options.heartbeat_timeout = ms(v);
        } else {
            usage("unknown option " + std::string(a));
        }
    }
    if (options.url.empty()) usage("--url is required");

    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::optional<pc::Socket> socket;
    try {
        socket.emplace(io, options);
    } catch (const std::exception& e) {
        usage(e.what());
    }
    socket->on_open([] { emit({{"ev", "open"}}); });
    socket->on_close([](std::uint16_t code, const std::string& reason) {
        emit({{"ev", "close"}, {"code", code}, {"reason", reason}});
    });
    socket->on_error([](std::error_code ec, const std::string& detail) {
        emit({{"ev", "error"}, {"code", error_name(ec)}, {"detail", detail}});
    });
    socket->on_message([](const pc::Event& e) {
        if (e.event == "phx_reply") return;
        emit({{"ev", "message"},
              {"topic", e.topic},
              {"event", e.event},
              {"payload", as_json(e.payload)},
              {"join_ref", e.join_ref ? json(*e.join_ref) : json()}});
    });
    emit({{"ev", "ready"}, {"url", socket->endpoint_url()}});

    // The reader thread owns this map; the Channel handles are thread-safe.
    std::map<std::string, pc::Channel> channels;
    std::thread reader([&] {
        std::string line;
        while (std::getline(std::cin, line)) {
            if (line.empty()) continue;
            auto cmd = json::parse(line, nullptr, false);
            if (!cmd.is_object()) {
                emit({{"ev", "bad_command"}, {"line", line}});
                continue;
            }
            auto name = cmd.value("cmd", "");
            auto topic = cmd.value("topic", "");
            if (name == "connect") {
                socket->connect();
            } else if (name == "disconnect") {
                socket->disconnect(static_cast<std::uint16_t>(cmd.value("code", 1000)));
            } else if (name == "join") {
                auto ch = socket->channel(topic, cmd.value("params", json::object()));
                channels[topic] = ch;
                auto report = [ch, topic](const char* status) {
                    return [ch, topic, status](const json& response) {
                        emit({{"ev", "join"},
                              {"topic", topic},
                              {"status", status},
                              {"response", response},
                              {"join_ref", ch.join_ref() ? json(*ch.join_ref()) : json()}});
                    };
                };
                ch.join()
                    .receive("ok", report("ok"))
                    .receive("error", report("error"))
                    .receive("timeout", report("timeout"));
            } else if (name == "push" || name == "leave") {
                auto it = channels.find(topic);
                if (it == channels.end()) {
                    emit({{"ev", "bad_command"}, {"line", line}});
                    continue;
                }
                auto id = cmd.value("id", json());
                std::optional<std::chrono::milliseconds> timeout;
                if (cmd.contains("timeout_ms"))
                    timeout = std::chrono::milliseconds(cmd["timeout_ms"].get<long>());
                auto push = name == "push"
                                ? it->second.push(cmd.value("event", ""),
                                                  cmd.value("payload", json::object()), timeout)
                                : it->second.leave(timeout);
                for (const char* status : {"ok", "error", "timeout"})
                    push.receive(status, [id, status](const json& response) {
                        emit({{"ev", "reply"},
                              {"id", id},
                              {"status", status},
                              {"response", response}});
                    });
            } else if (name == "state") {
                auto it = channels.find(topic);
                if (it == channels.end()) continue;
                asio::post(it->second.get_executor(), [ch = it->second, topic] {
                    emit({{"ev", "state"},
                          {"topic", topic},
                          {"state", pc::to_string(ch.state())},
                          {"join_ref", ch.join_ref() ? json(*ch.join_ref()) : json()}});
                });
            } else if (name == "exit") {
                break;
            } else {
                emit({{"ev", "bad_command"}, {"line", line}});
            }
        }
        // End of input or "exit": close and let run() return.
        socket->disconnect();
        asio::post(socket->get_executor(), [&] {
            emit({{"ev", "bye"}});
            work.reset();
            io.stop();
        });
    });
    io.run();
    reader.join();
    channels.clear();
    socket.reset();  // no thread runs the io_context any more
    return 0;
}
