// examples/cli_client — a terminal chat client built on plume::client, the
// phoenix.js model in C++. Try it against examples/chat:
//
//   chat --port 4000 &
//   cli_client ws://127.0.0.1:4000/socket room:lobby --user alice
//
//   cli_client URL TOPIC [--user NAME] [--token TOKEN] [--timeout-ms N]
//
// Every line on stdin is pushed as new_msg {"body": line}; every new_msg that
// arrives is printed as "<user>: <body>", and presence joins/leaves as
// "* <user> joined/left" when the server sends presence events. Status lines
// (connected, reconnecting, joined) go to stderr. At the end of input the
// client waits until each of its messages was acknowledged — by a reply, or
// by seeing it come back from the server as its own new_msg — then leaves
// and exits (status 1 if a message was refused or timed out).
//
// The connection is resilient without any code here: the socket reconnects
// and the channel rejoins on its own; lines typed while offline are buffered
// and sent after the rejoin.
#include <plume/client.hpp>

#include <charconv>
#include <cstdlib>
#include <deque>
#include <functional>
#include <iostream>
#include <string>
#include <thread>

namespace pc = plume::client;
using nlohmann::json;

namespace {

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "cli_client: " << why << "\n"
              << "usage: cli_client ws://HOST:PORT/socket TOPIC [--user NAME] [--token TOKEN]\n"
                 "                  [--timeout-ms N]\n";
    std::exit(2);
}

// Who wrote a message: the chat example sends user_id; others often "user".
std::string author(const json& msg) {
    for (const char* key : {"user_id", "user", "name"})
        if (msg.contains(key) && msg[key].is_string()) return msg[key].get<std::string>();
    return "?";
}

// The client's state; everything in it runs on the socket's strand.
class Chat {
  public:
    Chat(pc::Socket& socket, pc::Channel room, std::string user, std::function<void()> on_done)
        : socket_(socket),
          room_(std::move(room)),
          user_(std::move(user)),
          on_done_(std::move(on_done)),
          presence_(room_) {
        socket_.on_open([] { std::cerr << "[connected]" << std::endl; });
        socket_.on_close([this](std::uint16_t code, const std::string& reason) {
            if (finishing_) return;
            std::cerr << "[connection closed (" << code << (reason.empty() ? "" : " " + reason)
                      << "), reconnecting...]" << std::endl;
        });
        socket_.on_error([](std::error_code ec, const std::string& detail) {
            // Events this client does not display are not worth a line.
            if (ec == pc::error::unhandled_event) return;
            std::cerr << "[" << ec.message() << ": " << detail << "]" << std::endl;
        });
        room_.on("new_msg", [this](const json& msg) { on_message(msg); });
        presence_.on_join(
            [](const std::string& who, const std::optional<json>& current, const json&) {
                if (!current) std::cout << "* " << who << " joined" << std::endl;
            });
        presence_.on_leave([](const std::string& who, const json& current, const json&) {
            if (current["metas"].empty()) std::cout << "* " << who << " left" << std::endl;
        });
        room_.join()
            .receive("ok", [this] { std::cerr << "[joined " << room_.topic() << "]" << std::endl; })
            .receive("error", [this](const json& reason) {
                std::cerr << "[join of " << room_.topic() << " refused: " << reason.dump()
                          << "; retrying]" << std::endl;
            });
    }

    // A line from stdin (posted to the strand by the reader thread).
    void send(std::string body) {
        auto id = next_id_++;
        outstanding_.push_back({id, body});
        room_.push("new_msg", {{"body", body}})
            .receive("ok", [this, id] { acknowledge(id); })
            .receive("error", [this, id](const json& reason) { failed(id, reason.dump()); })
            .receive("timeout", [this, id] { failed(id, "no answer in time"); });
    }

    void end_of_input() {
        input_done_ = true;
        maybe_finish();
    }

    int exit_status() const { return failures_ ? 1 : 0; }

  private:
    struct Pending {
        std::uint64_t id;
        std::string body;
    };

    void on_message(const json& msg) {
        auto who = author(msg);
        // A payload may be any JSON value: show a non-object one as JSON.
        auto body = msg.is_object() && msg.contains("body") && msg["body"].is_string()
                        ? msg["body"].get<std::string>()
                        : msg.dump();
        std::cout << who << ": " << body << std::endl;
        // The chat server answers new_msg by broadcasting it to everyone,
        // the sender included: our own message coming back is its receipt.
        if (who != user_) return;
        for (auto& p : outstanding_)
            if (p.body == body) return acknowledge(p.id);
    }

    void acknowledge(std::uint64_t id) {
        std::erase_if(outstanding_, [id](const Pending& p) { return p.id == id; });
        maybe_finish();
    }

    void failed(std::uint64_t id, const std::string& why) {
        for (auto& p : outstanding_)
            if (p.id == id) {
                std::cerr << "[message not delivered (" << why << "): " << p.body << "]"
                          << std::endl;
                ++failures_;
            }
        acknowledge(id);
    }

    void maybe_finish() {
        if (!input_done_ || !outstanding_.empty() || finishing_) return;
        finishing_ = true;
        room_.leave();
        socket_.disconnect();  // once its closing handshake is over, run() returns
        on_done_();            // (the socket_ reference is not used after this)
    }

    pc::Socket& socket_;
    pc::Channel room_;
    std::string user_;
    std::function<void()> on_done_;
    pc::Presence presence_;
    std::deque<Pending> outstanding_;
    std::uint64_t next_id_ = 0;
    int failures_ = 0;
    bool input_done_ = false;
    bool finishing_ = false;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) usage("URL and TOPIC are required");
    pc::SocketOptions options;
    options.url = argv[1];
    std::string topic = argv[2];
    std::string user;
    for (int i = 3; i < argc; ++i) {
        std::string_view a = argv[i];
        if (i + 1 >= argc) usage("missing value for " + std::string(a));
        std::string value = argv[++i];
        if (a == "--user") {
            user = value;
            options.params["user_id"] = value;  // what examples/chat expects
        } else if (a == "--token") {
            options.auth_token = value;
        } else if (a == "--timeout-ms") {
            long ms = 0;
            auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
            if (ec != std::errc{} || p != value.data() + value.size() || ms <= 0)
                usage("bad --timeout-ms " + value);
            options.timeout = std::chrono::milliseconds(ms);
        } else {
            usage("unknown option " + std::string(a));
        }
    }

    asio::io_context io;
    std::optional<pc::Socket> socket;
    try {
        socket.emplace(io, options);
    } catch (const std::exception& e) {
        usage(e.what());
    }
    asio::signal_set signals(io, SIGINT, SIGTERM);
    // Keeps run() going until the chat is done, even while nothing is pending.
    auto work = asio::make_work_guard(io);
    Chat chat(*socket, socket->channel(topic), user, [&] {
        signals.cancel();
        work.reset();
        // Destroying the socket (on its strand) also stops what disconnect()
        // leaves running, like the timeout timers of pushes acknowledged by
        // their echo rather than a reply.
        asio::post(socket->get_executor(), [&socket] { socket.reset(); });
    });
    socket->connect();
    bool interrupted = false;
    signals.async_wait([&](std::error_code ec, int) {
        if (ec) return;
        interrupted = true;
        if (socket) socket->disconnect();
        io.stop();
    });

    // stdin is read on its own thread; each line hops onto the socket's strand.
    std::thread reader([&] {
        std::string line;
        while (std::getline(std::cin, line)) {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.empty()) continue;
            asio::post(socket->get_executor(), [&chat, line] { chat.send(line); });
        }
        asio::post(socket->get_executor(), [&chat] { chat.end_of_input(); });
    });
    io.run();
    if (interrupted) {
        // The reader may still be blocked on stdin: leave without unwinding.
        std::cout.flush();
        std::_Exit(130);
    }
    reader.join();
    return chat.exit_status();
}
