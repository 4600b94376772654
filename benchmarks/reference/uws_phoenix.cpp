// benchmarks/reference/uws_phoenix.cpp — a minimal Phoenix Channels (V2 JSON)
// server on uWebSockets, the reference that benchmarks/compare.sh measures
// examples/chat against. Not part of plume, its tests or its CMake build:
// benchmarks/reference/build_uws.sh compiles it against uWebSockets v20.79.0.
//
//   uws_phoenix [--port 0] [--threads N] [anything else is ignored]
//
// Listens on 127.0.0.1 only (port 0: the kernel picks one) and prints
// "uws_phoenix listening on http://127.0.0.1:PORT/". With --threads N it runs N
// uWS Apps, one per thread, all listening on that port (uSockets sets
// SO_REUSEPORT, so the kernel spreads connections over them); a broadcast is
// published on the pusher's App and handed to every other App through its
// Loop::defer, so subscribers on every thread get it.
//
// /socket/websocket?vsn=2.0.0&user_id=NAME speaks Phoenix V2 JSON
// ([join_ref, ref, topic, event, payload]) with what examples/chat's
// RoomChannel does without presence: heartbeat, phx_join (room:*),
// phx_leave, new_msg (broadcast {"body", "user_id"} to the topic, no reply)
// and ping (reply ok with the payload). Each frame is validated as JSON in one
// pass; the envelope's strings are decoded only when they hold escapes.
// /echo echoes every message with its opcode.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "App.h"

namespace {

// ------------------------------------------------------------------ JSON --

/// One pass over a JSON text: validates it and finds the pieces the server
/// needs, without building a tree.
class Json {
  public:
    Json(const char* p, const char* end) : p_(p), end_(end) {}

    const char* pos() const { return p_; }
    bool at_end() {
        ws();
        return p_ == end_;
    }
    void ws() {
        while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r'))
            ++p_;
    }
    bool eat(char c) {
        ws();
        if (p_ == end_ || *p_ != c) return false;
        ++p_;
        return true;
    }
    bool peek(char c) {
        ws();
        return p_ != end_ && *p_ == c;
    }

    /// A string token (quotes included in `raw`); `escaped` if it holds a backslash.
    bool string(std::string_view& raw, bool& escaped) {
        ws();
        if (p_ == end_ || *p_ != '"') return false;
        const char* start = p_++;
        escaped = false;
        while (p_ != end_) {
            const auto c = static_cast<unsigned char>(*p_);
            if (c == '"') {
                ++p_;
                raw = std::string_view(start, static_cast<std::size_t>(p_ - start));
                return true;
            }
            if (c < 0x20) return false;
            if (c == '\\') {
                escaped = true;
                if (++p_ == end_) return false;
                switch (*p_) {
                    case '"':
                    case '\\':
                    case '/':
                    case 'b':
                    case 'f':
                    case 'n':
                    case 'r':
                    case 't':
                        break;
                    case 'u':
                        for (int i = 0; i < 4; ++i) {
                            if (++p_ == end_ || !std::isxdigit(static_cast<unsigned char>(*p_)))
                                return false;
                        }
                        break;
                    default:
                        return false;
                }
            }
            ++p_;
        }
        return false;
    }

    /// Any value; `raw` is its text.
    bool value(std::string_view& raw, int depth = 0) {
        ws();
        if (p_ == end_ || depth > 64) return false;
        const char* start = p_;
        bool ok = false;
        switch (*p_) {
            case '"': {
                bool escaped = false;
                ok = string(raw, escaped);
                break;
            }
            case '{':
                ++p_;
                ok = true;
                if (!eat('}')) {
                    do {
                        std::string_view key, v;
                        bool escaped = false;
                        ok = string(key, escaped) && eat(':') && value(v, depth + 1);
                    } while (ok && eat(','));
                    ok = ok && eat('}');
                }
                break;
            case '[':
                ++p_;
                ok = true;
                if (!eat(']')) {
                    do {
                        std::string_view v;
                        ok = value(v, depth + 1);
                    } while (ok && eat(','));
                    ok = ok && eat(']');
                }
                break;
            case 't':
                ok = literal("true");
                break;
            case 'f':
                ok = literal("false");
                break;
            case 'n':
                ok = literal("null");
                break;
            default:
                ok = number();
        }
        if (ok) raw = std::string_view(start, static_cast<std::size_t>(p_ - start));
        return ok;
    }

  private:
    bool literal(std::string_view word) {
        if (static_cast<std::size_t>(end_ - p_) < word.size() ||
            std::string_view(p_, word.size()) != word)
            return false;
        p_ += word.size();
        return true;
    }
    bool digits() {
        const char* start = p_;
        while (p_ != end_ && *p_ >= '0' && *p_ <= '9')
            ++p_;
        return p_ != start;
    }
    bool number() {
        if (p_ != end_ && *p_ == '-') ++p_;
        if (p_ != end_ && *p_ == '0')
            ++p_;
        else if (!digits())
            return false;
        if (p_ != end_ && *p_ == '.' && (++p_, !digits())) return false;
        if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
            ++p_;
            if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            if (!digits()) return false;
        }
        return true;
    }

    const char* p_;
    const char* end_;
};

void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

std::uint32_t hex4(const char* p) {
    std::uint32_t v = 0;
    std::from_chars(p, p + 4, v, 16);
    return v;
}

/// The text of a validated string token (quotes included); nullopt for a
/// lone surrogate, which JSON parsers that produce UTF-8 reject.
std::optional<std::string> decode(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    const char* p = raw.data() + 1;
    const char* end = raw.data() + raw.size() - 1;
    while (p < end) {
        if (*p != '\\') {
            out += *p++;
            continue;
        }
        const char e = p[1];
        p += 2;
        switch (e) {
            case 'b':
                out += '\b';
                break;
            case 'f':
                out += '\f';
                break;
            case 'n':
                out += '\n';
                break;
            case 'r':
                out += '\r';
                break;
            case 't':
                out += '\t';
                break;
            case 'u': {
                std::uint32_t cp = hex4(p);
                p += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF) return std::nullopt;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return std::nullopt;
                    const std::uint32_t low = hex4(p + 2);
                    if (low < 0xDC00 || low > 0xDFFF) return std::nullopt;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    p += 6;
                }
                append_utf8(out, cp);
                break;
            }
            default:  // " \ /
                out += e;
        }
    }
    return out;
}

/// `text` as a JSON string token, escaped as nlohmann::json::dump() does
/// (what examples/chat writes): " \ and control characters only.
void encode(std::string& out, std::string_view text) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else {
                    out += ch;
                }
        }
    }
    out += '"';
}

/// A string token's text: a view of the token when it has no escapes, else
/// decoded (empty and !ok for a lone surrogate).
struct Text {
    std::string_view token;
    std::string decoded;
    bool escaped = false;
    bool ok = true;

    void set(std::string_view raw, bool has_escapes) {
        token = raw;
        escaped = has_escapes;
        if (!escaped) return;
        auto text = decode(raw);
        ok = text.has_value();
        if (ok) decoded = std::move(*text);
    }
    std::string_view view() const {
        return escaped ? std::string_view(decoded) : token.substr(1, token.size() - 2);
    }
};

/// [join_ref, ref, topic, event, payload]: refs are strings or null (kept as
/// their JSON text, to echo back), topic and event strings, payload any JSON.
struct Envelope {
    std::string_view join_ref = "null";
    std::string_view ref = "null";
    Text topic;
    Text event;
    std::string_view payload;
};

bool parse_ref(Json& j, std::string_view& raw) {
    if (j.peek('n')) return j.value(raw) && raw == "null";
    bool escaped = false;
    return j.string(raw, escaped);
}

bool parse_envelope(std::string_view frame, Envelope& e) {
    Json j(frame.data(), frame.data() + frame.size());
    std::string_view topic, event;
    bool topic_escaped = false, event_escaped = false;
    if (!j.eat('[') || !parse_ref(j, e.join_ref) || !j.eat(',') || !parse_ref(j, e.ref) ||
        !j.eat(',') || !j.string(topic, topic_escaped) || !j.eat(',') ||
        !j.string(event, event_escaped) || !j.eat(',') || !j.value(e.payload) || !j.eat(']') ||
        !j.at_end())
        return false;
    e.topic.set(topic, topic_escaped);
    e.event.set(event, event_escaped);
    return e.topic.ok && e.event.ok;
}

/// The last "body" member of a payload object, if it is a string (its token).
std::optional<std::pair<std::string_view, bool>> find_body(std::string_view payload) {
    Json j(payload.data(), payload.data() + payload.size());
    if (!j.eat('{')) return std::nullopt;
    std::optional<std::pair<std::string_view, bool>> body;
    if (j.eat('}')) return body;
    do {
        std::string_view key, value;
        bool key_escaped = false;
        if (!j.string(key, key_escaped) || !j.eat(':')) return std::nullopt;
        Text name;
        name.set(key, key_escaped);
        const bool is_body = name.ok && name.view() == "body";
        if (is_body && j.peek('"')) {
            bool escaped = false;
            if (!j.string(value, escaped)) return std::nullopt;
            body.emplace(value, escaped);
        } else {
            if (!j.value(value)) return std::nullopt;
            if (is_body) body.reset();
        }
    } while (j.eat(','));
    return body;
}

// ---------------------------------------------------------------- server --

/// A joined channel: its topic and the join_ref its replies carry.
struct Joined {
    std::string topic;
    std::string join_ref;  // JSON text: "\"1\"" or null
};

struct UserData {
    std::string user_id;
    std::vector<Joined> channels;

    Joined* find(std::string_view topic) {
        for (auto& c : channels)
            if (c.topic == topic) return &c;
        return nullptr;
    }
};
struct EchoData {};

using App = uWS::App;
using PhoenixSocket = uWS::WebSocket<false, true, UserData>;

/// One thread's App and Loop; every thread publishes to every other one.
struct Worker {
    std::atomic<uWS::Loop*> loop{nullptr};
    std::atomic<App*> app{nullptr};
};
std::vector<std::unique_ptr<Worker>> workers;

bool valid_user_id(std::string_view id) {
    if (id.empty() || id.size() > 32) return false;
    return std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
}

/// [join_ref, ref, topic, "phx_reply", {"response": RESPONSE, "status": STATUS}]
/// (keys in nlohmann's order, as examples/chat writes them).
void reply(PhoenixSocket* ws, std::string_view join_ref, const Envelope& e, std::string_view status,
           std::string_view response) {
    std::string out;
    out.reserve(64 + e.topic.token.size() + response.size());
    out += '[';
    out += join_ref;
    out += ',';
    out += e.ref;
    out += ',';
    out += e.topic.token;
    out += R"(,"phx_reply",{"response":)";
    out += response;
    out += R"(,"status":")";
    out += status;
    out += R"("}])";
    ws->send(out, uWS::OpCode::TEXT);
}

void error_reply(PhoenixSocket* ws, std::string_view join_ref, const Envelope& e,
                 std::string_view reason) {
    std::string response = R"({"reason":")";
    response += reason;
    response += R"("})";
    reply(ws, join_ref, e, "error", response);
}

/// [join_ref, join_ref, topic, "phx_close", {}]: a duplicate join ended the old channel.
void phx_close(PhoenixSocket* ws, const Envelope& e, std::string_view join_ref) {
    std::string out = "[";
    out += join_ref;
    out += ',';
    out += join_ref;
    out += ',';
    out += e.topic.token;
    out += R"(,"phx_close",{}])";
    ws->send(out, uWS::OpCode::TEXT);
}

/// Publishes to the topic's subscribers on every thread: this App at once, the
/// others from their own loops.
void broadcast(Worker& self, std::string_view topic, std::string message) {
    for (const auto& w : workers) {
        if (w.get() == &self) continue;
        App* app = w->app.load(std::memory_order_acquire);
        w->loop.load(std::memory_order_acquire)->defer([app, topic = std::string(topic), message] {
            app->publish(topic, message, uWS::OpCode::TEXT);
        });
    }
    self.app.load(std::memory_order_relaxed)->publish(topic, message, uWS::OpCode::TEXT);
}

void join(PhoenixSocket* ws, const Envelope& e) {
    UserData& user = *ws->getUserData();
    const std::string_view topic = e.topic.view();
    // A duplicate join ends the old channel first (its phx_close follows the new reply).
    std::optional<std::string> replaced;
    if (Joined* old = user.find(topic)) {
        replaced = std::move(old->join_ref);
        std::swap(*old, user.channels.back());
        user.channels.pop_back();
        ws->unsubscribe(topic);
    }
    constexpr std::string_view private_prefix = "room:private-";
    if (!topic.starts_with("room:")) {
        error_reply(ws, "null", e, "unmatched topic");
    } else if (topic.starts_with(private_prefix) &&
               topic.substr(private_prefix.size()) != user.user_id) {
        error_reply(ws, e.join_ref, e, "unauthorized");
    } else {
        // Reply before subscribing, as Phoenix does: the join's ok comes before
        // any broadcast.
        reply(ws, e.join_ref, e, "ok", "{}");
        user.channels.push_back({std::string(topic), std::string(e.join_ref)});
        ws->subscribe(topic);
    }
    if (replaced) phx_close(ws, e, *replaced);
}

void on_phoenix_message(Worker& self, PhoenixSocket* ws, std::string_view message, uWS::OpCode op) {
    if (op != uWS::OpCode::TEXT) return;  // V2 binary pushes: not used by the chat
    Envelope e;
    if (!parse_envelope(message, e)) return;  // not a V2 frame: ignored
    const std::string_view topic = e.topic.view(), event = e.event.view();
    if (topic == "phoenix" && event == "heartbeat") return reply(ws, "null", e, "ok", "{}");
    if (event == "phx_join") return join(ws, e);
    UserData& user = *ws->getUserData();
    Joined* channel = user.find(topic);
    if (event == "phx_leave") {
        if (!channel) return reply(ws, e.join_ref, e, "ok", "{}");
        if (e.join_ref != "null" && e.join_ref != channel->join_ref) return;  // raced a close
        // The reply, then the channel's phx_close, as Phoenix and plume send them.
        reply(ws, e.join_ref, e, "ok", "{}");
        phx_close(ws, e, channel->join_ref);
        std::swap(*channel, user.channels.back());
        user.channels.pop_back();
        ws->unsubscribe(topic);
        return;
    }
    if (!channel) return error_reply(ws, "null", e, "unmatched topic");
    // A push for an older incarnation of the channel is dropped.
    if (e.join_ref != "null" && e.join_ref != channel->join_ref) return;
    const std::string_view join_ref = channel->join_ref;  // replies carry the channel's
    if (event == "new_msg") {
        const auto body = find_body(e.payload);
        if (!body) return error_reply(ws, join_ref, e, "body must be a string");
        std::string out;
        out.reserve(64 + e.topic.token.size() + body->first.size());
        out += "[null,null,";
        out += e.topic.token;
        out += R"(,"new_msg",{"body":)";
        if (!body->second) {
            if (body->first.size() - 2 > 4000) return error_reply(ws, join_ref, e, "body too long");
            out += body->first;
        } else {
            const auto text = decode(body->first);
            if (!text) return error_reply(ws, join_ref, e, "body must be a string");
            if (text->size() > 4000) return error_reply(ws, join_ref, e, "body too long");
            encode(out, *text);
        }
        out += R"(,"user_id":")";
        out += user.user_id;
        out += R"("}])";
        return broadcast(self, topic, std::move(out));
    }
    if (event == "ping") return reply(ws, join_ref, e, "ok", e.payload);
    error_reply(ws, join_ref, e, "unknown event");
}

void run_worker(Worker& self, const std::string& host, int port, std::promise<int>& listening) {
    App app;
    app.ws<UserData>(
           "/socket/websocket",
           {
               .compression = uWS::DISABLED,
               .maxPayloadLength = 1024 * 1024,
               .idleTimeout = 120,
               .maxBackpressure = 16 * 1024 * 1024,
               .closeOnBackpressureLimit = false,
               .resetIdleTimeoutOnSend = false,
               .sendPingsAutomatically = false,  // Phoenix clients heartbeat themselves
               .upgrade =
                   [](auto* res, auto* req, auto* context) {
                       const std::string user_id(req->getQuery("user_id"));
                       if (!valid_user_id(user_id)) {
                           res->writeStatus("403 Forbidden")->end("user_id required");
                           return;
                       }
                       res->template upgrade<UserData>(
                           {user_id, {}}, req->getHeader("sec-websocket-key"),
                           req->getHeader("sec-websocket-protocol"),
                           req->getHeader("sec-websocket-extensions"), context);
                   },
               .message = [&self](auto* ws, std::string_view message,
                                  uWS::OpCode op) { on_phoenix_message(self, ws, message, op); },
           })
        .ws<EchoData>("/echo", {.compression = uWS::DISABLED,
                                .maxPayloadLength = 1024 * 1024,
                                .idleTimeout = 120,
                                .maxBackpressure = 16 * 1024 * 1024,
                                .sendPingsAutomatically = false,
                                .message = [](auto* ws, std::string_view message,
                                              uWS::OpCode op) { ws->send(message, op); }})
        .listen(host, port, [&](us_listen_socket_t* socket) {
            listening.set_value(
                socket ? us_socket_local_port(0, reinterpret_cast<us_socket_t*>(socket)) : -1);
        });
    self.app.store(&app, std::memory_order_release);
    self.loop.store(uWS::Loop::get(), std::memory_order_release);
    app.run();
}

/// A port the kernel says is free on 127.0.0.1. uSockets sets SO_REUSEPORT
/// only for a non-zero port, so --port 0 becomes this one for every App.
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = -1;
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
        port = ntohs(addr.sin_port);
    if (fd >= 0) ::close(fd);
    return port;
}

}  // namespace

int main(int argc, char** argv) {
    int port = 0;
    unsigned threads = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--port" && i + 1 < argc)
            port = std::atoi(argv[++i]);
        else if (a == "--threads" && i + 1 < argc)
            threads = static_cast<unsigned>(std::max(1, std::atoi(argv[++i])));
        // --no-presence, --no-rate-limits and anything else: ignored.
    }
    const std::string host = "127.0.0.1";
    signal(SIGPIPE, SIG_IGN);
    // Stopped by SIGTERM (the benchmarks stop their server by PID): exit at once.
    signal(SIGTERM, [](int) { std::_Exit(0); });
    signal(SIGINT, [](int) { std::_Exit(0); });
    if (port == 0) port = free_port();

    for (unsigned i = 0; i < threads; ++i)
        workers.push_back(std::make_unique<Worker>());
    // Every App listens on the port (SO_REUSEPORT: the kernel spreads the connections).
    std::vector<std::promise<int>> listening(threads);
    std::vector<std::thread> pool;
    for (unsigned i = 0; i < threads; ++i) {
        auto future = listening[i].get_future();
        pool.emplace_back([&, i, p = port] { run_worker(*workers[i], host, p, listening[i]); });
        const int got = future.get();
        if (got <= 0) {
            std::cerr << "uws_phoenix: cannot listen on " << host << ":" << port << "\n";
            std::_Exit(1);
        }
        // Wait until the App is published for the others' broadcasts.
        while (!workers[i]->loop.load(std::memory_order_acquire))
            std::this_thread::yield();
    }
    std::cout << "uws_phoenix listening on http://" << host << ":" << port << "/ (socket ws://"
              << host << ":" << port << "/socket/websocket, echo ws://" << host << ":" << port
              << "/echo), " << threads << " thread" << (threads == 1 ? "" : "s") << std::endl;
    for (auto& t : pool)
        t.join();
    return 0;
}
