// plume/server/endpoint.hpp — Phoenix.Endpoint for C++: listens, serves one
// Socket type at one or more paths, routes its topics to channels, and owns
// the PubSub that broadcasts go through.
//
//   asio::io_context io;
//   plume::server::Endpoint<UserSocket> endpoint(io, {.port = 4000});
//   endpoint.start();                                    // ws://127.0.0.1:4000/socket/websocket
//   endpoint.broadcast("room:lobby", "new_msg", nlohmann::json{{"body", "hi"}});  // any thread
//   endpoint.disconnect("users_socket:42");              // every socket with that id, 1001
//   io.run();
//
// Refusals follow Phoenix: a refused connect(), a disallowed Origin, an
// unsupported ?vsn= or subprotocol are answered with HTTP 403 (the body says
// which; EndpointConfig::require_phoenix_subprotocol = false accepts other
// subprotocols as Phoenix does); a path that is neither a socket path nor a
// route (route.hpp) with 404. With EndpointConfig::longpoll.enabled the same
// sockets are also served over long-poll at <path>/longpoll (longpoll.hpp),
// for clients whose network blocks WebSockets.
#pragma once

#include <asio.hpp>

#include <openssl/rand.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "plume/detail/base64.hpp"
#include "plume/presence/presence.hpp"
#include "plume/pubsub/history.hpp"
#include "plume/pubsub/pubsub.hpp"
#include "plume/server/channel.hpp"
#include "plume/server/limits.hpp"
#include "plume/server/log.hpp"
#include "plume/server/longpoll.hpp"
#include "plume/server/origin.hpp"
#include "plume/server/route.hpp"
#include "plume/server/session.hpp"
#include "plume/server/socket.hpp"
#include "plume/server/telemetry.hpp"
#include "plume/server/token.hpp"
#include "plume/transport/server.hpp"
#include "plume/transport/tls.hpp"
#include "plume/wire/vsn.hpp"

namespace plume::server {

struct EndpointConfig {
    std::string host = "127.0.0.1";
    std::uint16_t port = 4000;
    /// Socket mount points; the WebSocket lives at <path>/websocket, as
    /// phoenix.js expects (`new Socket("/socket")`).
    std::vector<std::string> socket_paths = {"/socket"};
    /// Which browser pages may connect (Phoenix's check_origin). Default: the
    /// page must come from the host it connects to. Requests without an
    /// Origin header (non-browser clients) are always allowed.
    OriginPolicy check_origin = OriginPolicy::same_host();
    /// WebSocket limits. idle_timeout is the heartbeat timeout: phoenix.js
    /// heartbeats every 30 s, a socket silent for 60 s is closed (1001).
    /// The HTTP ones (keep_alive_timeout, max_requests_per_connection,
    /// max_request_body) apply to plain requests and long-poll.
    transport::Options websocket{};
    /// The long-poll transport at <path>/longpoll (off by default, as in
    /// Phoenix): window, caps, token secret (see longpoll.hpp).
    LongPollOptions longpoll{};
    /// Phoenix's max_channels_per_transport.
    std::size_t max_channels_per_socket = 100;
    /// Serve files from this folder for GET requests (demos); empty: none.
    std::string static_dir;
    /// Sizes and rates a socket may use (see limits.hpp for the answers).
    SocketLimits limits{};
    /// The log: sink (default standard error), level, field truncation and
    /// per-message rate limit (see log.hpp).
    LogOptions log{};
    /// Presence (tracker periods, diff coalescing window, fetch and
    /// handle_metas hooks). Its on_diff runs after the endpoint has sent the
    /// diff to this node's subscribers as "presence_diff".
    presence::PresenceOptions presence{};
    /// A client that offers subprotocols none of which is "phoenix" (the
    /// authToken one does not count): true refuses it with 403; false
    /// accepts it with a 101 naming no subprotocol, as Phoenix does (RFC 6455
    /// lets the server pick none). Browsers and the `ws` npm client then fail
    /// the handshake themselves ("Server sent no subprotocol"), so relaxing
    /// helps only clients that tolerate it. "phoenix" is chosen when offered.
    bool require_phoenix_subprotocol = true;
    /// Topics whose recent broadcasts are kept, so a client that rejoins
    /// with {"offset": N, "epoch": E} gets what it missed (see
    /// pubsub/history.hpp). Kept in this node's memory, or by the adapter
    /// when it can (pubsub::Redis keeps it in Redis, for every node); a
    /// multi-node adapter that cannot makes the constructor throw
    /// std::invalid_argument.
    pubsub::HistoryOptions history{};
    /// TLS (wss:// and https://) for an Endpoint<..., transport::TlsSocket>:
    /// the certificate chain and key (PEM files), or a context the host
    /// built (which wins). A plain TCP Endpoint refuses a TLS config (the
    /// constructor throws std::invalid_argument) rather than serve ws://
    /// when wss:// was meant.
    struct Tls {
        std::string cert_chain_file;
        std::string private_key_file;
        std::shared_ptr<asio::ssl::context> context;
        /// After a TLS 1.3 handshake, plume runs the record layer itself and
        /// frees OpenSSL's connection state (~1.5 KB per idle connection
        /// instead of ~17 KB); no session tickets are sent then. False keeps
        /// OpenSSL's record layer (and its tickets) for every connection.
        bool own_record_layer = true;
        bool empty() const noexcept {
            return !context && cert_chain_file.empty() && private_key_file.empty();
        }
    } tls;
    /// Telemetry events (telemetry.hpp): set the functions you want; an
    /// empty one costs a null check.
    Telemetry telemetry{};
    /// The built-in metrics in Endpoint::metrics() (telemetry.hpp, README's
    /// table); false records none.
    bool metrics = true;
};

/// Replaces the values of sensitive query parameters before a URL is logged
/// (tokens in URLs end up in logs; see Phoenix issue #5778).
inline std::string redact_query(std::string_view target) {
    auto q = target.find('?');
    if (q == std::string_view::npos) return std::string(target);
    std::string out(target.substr(0, q + 1));
    auto qs = target.substr(q + 1);
    bool first = true;
    while (true) {
        auto amp = qs.find('&');
        auto part = qs.substr(0, amp);
        auto eq = part.find('=');
        auto key = part.substr(0, eq);
        if (!first) out += '&';
        first = false;
        if (eq != std::string_view::npos &&
            (key == "token" || key == "auth_token" || key == "password" || key == "secret"))
            out += std::string(key) + "=[FILTERED]";
        else
            out += part;
        if (amp == std::string_view::npos) break;
        qs.remove_prefix(amp + 1);
    }
    return out;
}

/// The prefix phoenix.js puts before the authToken subprotocol.
inline constexpr std::string_view auth_token_prefix = "base64url.bearer.phx.";

/// NextLayer = transport::TlsSocket serves wss:// and https:// with
/// EndpointConfig::tls.
template <SocketHandler SocketT, pubsub::Adapter A = pubsub::Local,
          class NextLayer = asio::ip::tcp::socket>
class Endpoint {
  public:
    using socket_type = SocketT;
    using adapter_type = A;
    /// The Phoenix socket over a WebSocket, and over long-poll.
    using session_type = Session<Endpoint, OverWebSocket<NextLayer>>;
    using longpoll_session_type = Session<Endpoint, OverLongPoll>;
    using HttpHandler = std::function<transport::http::Response(const transport::http::Request&)>;
    using RouteHandler = server::RouteHandler;

    Endpoint(asio::io_context& io, EndpointConfig config, A adapter = A{})
        : config_(std::move(config)),
          io_(io),
          log_(config_.log),
          instruments_(config_.telemetry, config_.metrics ? &metrics_ : nullptr),
          pubsub_(std::move(adapter)),
          presence_(pubsub_, presence_options()),
          history_(config_.history),
          server_(
              io, config_.websocket, [this] { return session_type(this); },
              stream_context(config_.tls)),
          longpoll_tokens_(longpoll_secret(config_.longpoll)) {
        if constexpr (pubsub::RoutesTopics<A> && !pubsub::KeepsHistory<A>) {
            if (!config_.history.topics.empty())
                throw std::invalid_argument(
                    "EndpointConfig::history: this multi-node PubSub adapter does not keep "
                    "history, and one node's memory would not do");
        }
        SocketT::channels(router_);
        if (config_.metrics) collect_metrics();
    }

    /// Spreads the WebSocket connections over these io_contexts, one thread
    /// each (see transport::Server::spread_over); long-poll sessions, presence
    /// and stop() stay on the Endpoint's io_context. Call before start().
    void spread_over(std::vector<asio::io_context*> contexts) {
        server_.spread_over(std::move(contexts));
    }

    /// Listens on config().host:port (port 0 picks one). Throws on failure.
    void start() {
        server_.listen(config_.host, config_.port);
        presence_.start(io_.get_executor());
    }

    /// Stops accepting and closes every connection (1001 by default; 1012
    /// tells clients it is a restart). Safe from any thread. `on_stopped`
    /// runs on the io_context once the listener and every connection are
    /// closed (see transport::Server::stop).
    void stop(std::uint16_t code = transport::to_int(transport::close_code::going_away),
              std::function<void()> on_stopped = nullptr) {
        server_.stop(code, std::string(transport::default_stop_reason), std::move(on_stopped));
        {
            std::lock_guard lock(longpoll_mutex_);
            longpoll_stopping_ = true;
            for (auto& [id, s] : longpoll_)
                s->post_close(code, std::string(transport::default_stop_reason));
        }
        // Tells the other nodes at once that this node's presences are gone,
        // then lets the adapter go (pubsub::Redis still sends what was
        // published before, then closes its connections).
        asio::post(io_, [this] {
            presence_.stop();
            pubsub_.adapter().stop();
        });
    }

    asio::ip::tcp::endpoint local_endpoint() const { return server_.local_endpoint(); }
    const EndpointConfig& config() const noexcept { return config_; }
    const Router<SocketT>& router() const noexcept { return router_; }
    pubsub::PubSub<A>& pubsub() noexcept { return pubsub_; }
    /// The endpoint's Presence (channels use it through Channel::track).
    presence::Presence& presence() noexcept { return presence_; }
    /// Sockets open: WebSockets that completed the handshake, and long-poll
    /// sessions.
    std::size_t connection_count() const noexcept { return open_.load(); }
    /// Long-poll sessions open.
    std::size_t longpoll_session_count() const {
        std::lock_guard lock(longpoll_mutex_);
        return longpoll_.size();
    }

    /// Broadcasts to every channel joined to `topic`, on every node. Safe
    /// from any thread; encoded once per serializer in use. `how`: the
    /// priority lane every receiving connection queues it in (channel.hpp).
    void broadcast(std::string topic, std::string_view event, Payload payload,
                   const SendOptions& how = {}) {
        publish(detail::to_pubsub(std::move(topic), event, std::move(payload), how), nullptr);
    }

    /// Broadcasts `m` (except to `from` on this node), through the topic's
    /// history when it has one.
    void publish(const pubsub::MessagePtr& m, std::shared_ptr<const pubsub::Subscriber> from) {
        instruments_.broadcast(*m, [&] { return pubsub_.subscriber_count(m->topic); });
        if constexpr (pubsub::KeepsHistory<A>) {
            if (config_.history.keeps(*m)) {
                // Kept by the adapter, delivered here in offset order with
                // every other node's broadcasts (when anyone here listens).
                std::function<void(pubsub::MessagePtr)> local;
                if (pubsub_.subscriber_count(m->topic) > 0)
                    local = [this, weak = std::weak_ptr<const pubsub::Subscriber>(from)](
                                pubsub::MessagePtr stamped) {
                        auto except = weak.lock();
                        pubsub_.local_broadcast_from(except.get(), std::move(stamped));
                    };
                return pubsub_.adapter().publish_history(m, config_.history, std::move(local));
            }
        }
        history_.record(m, [&](const pubsub::MessagePtr& stamped) {
            if (from)
                pubsub_.broadcast_from(from.get(), stamped);
            else
                pubsub_.broadcast(stamped);
        });
    }

    /// What a client joining `topic` with `params` missed (see
    /// pubsub/history.hpp); `done` runs at once (history in memory) or on
    /// the adapter's thread (history in Redis).
    void recover(const std::string& topic, const nlohmann::json& params,
                 std::function<void(pubsub::HistoryRecovery)> done) {
        auto request = pubsub::HistoryRequest::from(params);
        if constexpr (pubsub::KeepsHistory<A>)
            pubsub_.adapter().recover_history(topic, request, config_.history, std::move(done));
        else
            done(history_.read(topic, request));
    }

    /// This node's history (unused when the adapter keeps it).
    pubsub::History& history() noexcept { return history_; }
    /// Only to channels on this node.
    void local_broadcast(std::string topic, std::string_view event, Payload payload,
                         const SendOptions& how = {}) {
        pubsub_.local_broadcast(
            detail::to_pubsub(std::move(topic), event, std::move(payload), how));
    }

    /// Closes every socket whose id() is `socket_id`, on every node, with
    /// 1001 so that clients reconnect (and re-authenticate).
    void disconnect(std::string socket_id) {
        pubsub_.broadcast(pubsub::make_message(std::move(socket_id), "disconnect", {}));
    }

    /// Answers GET (and HEAD) requests for `path`: an exact path, or one
    /// with `:name` segments and a trailing `*name` glob whose decoded values
    /// the handler reads from its RouteParams (see route.hpp):
    ///   endpoint.route("/api/token/:user_id",
    ///                  [](const Request& req, const RouteParams& p) { ... p["user_id"] ... });
    /// Register routes before start(). Throws std::invalid_argument for a
    /// malformed pattern.
    template <RouteHandlerFn F>
    void route(std::string path, F handler) {
        route("GET", std::move(path), std::move(handler));
    }
    /// The same for another method ("POST", ...). The handler finds the
    /// body in req.body (Content-Length bodies up to
    /// EndpointConfig::websocket.max_request_body; bigger → 413).
    template <RouteHandlerFn F>
    void route(std::string method, std::string path, F handler) {
        routes_.add(std::move(method), std::move(path), make_route_handler(std::move(handler)));
    }

    /// The endpoint's log (sanitised, rate-limited; see log.hpp). Usable by
    /// the application too: log()(LogLevel::info, "user banned", {{"id", id}}).
    Log& log() noexcept { return log_; }

    /// The endpoint's metrics: snapshot() from C++, or
    /// metrics::prometheus_response(metrics().snapshot()) for a /metrics
    /// route. An application may declare its own families here before
    /// start(). Empty when EndpointConfig::metrics is false.
    metrics::Registry& metrics() noexcept { return metrics_; }

  private:
    template <class, class>
    friend class Session;
    using LongPoll = LongPollSession<longpoll_session_type>;

    // ------------------------------------------------ used by Session --

    // The checks every new socket passes, whatever its transport: the
    // connection rate of its address, its Origin, its ?vsn=.
    std::variant<wire::Vsn, Refusal> check_connect(const transport::http::Request& req,
                                                   const asio::ip::tcp::endpoint& peer) {
        if (auto wait = connections_.admit(config_.limits.connections_per_address, peer.address(),
                                           std::chrono::steady_clock::now())) {
            log_(LogLevel::warning, "connection rate limited",
                 {{"peer", peer.address().to_string()}});
            instruments_.rate_limited(detail::Scope::connection);
            return Refusal{429,
                           "too many connections from this address; retry later",
                           {{"Retry-After", std::to_string(wait)}}};
        }
        auto origin = req.header("origin");
        if (!config_.check_origin.allows(origin, req.header("host"))) {
            log_(LogLevel::warning, "refused origin",
                 {{"origin", origin}, {"target", redact_query(req.target)}});
            return Refusal{403, "origin not allowed", {}};
        }
        auto asked = req.query_param("vsn").value_or(wire::vsn_when_absent);
        auto chosen = wire::serializer_for_vsn(asked);
        if (!chosen)
            return Refusal{
                403,
                "unsupported vsn \"" + std::string(asked) + "\" (plume speaks 1.0.0 and 2.0.0)",
                {}};
        return *chosen;
    }

    // A WebSocket upgrade: the checks, the subprotocols (phoenix.js's
    // authToken travels in one), then the socket's connect().
    std::optional<Refusal> upgrade_socket(const transport::UpgradeRequest& req,
                                          transport::UpgradeResponse& res, session_type& session) {
        if (!is_socket_path(req.path(), "/websocket")) return Refusal{404, "no socket here", {}};
        auto vsn = check_connect(req.http, req.peer);
        if (auto* refused = std::get_if<Refusal>(&vsn)) return std::move(*refused);
        std::optional<std::string> auth_token;
        bool offers_phoenix = false;
        for (auto& p : req.subprotocols) {
            if (p == "phoenix") {
                offers_phoenix = true;
            } else if (p.rfind(auth_token_prefix, 0) == 0) {
                // phoenix.js sends standard base64 without padding despite the
                // "base64url" name; accept the url alphabet too.
                auto encoded = std::string_view(p).substr(auth_token_prefix.size());
                auto token = plume::detail::base64_decode_unpadded(encoded);
                if (!token) token = plume::detail::base64url_decode_unpadded(encoded);
                if (!token) return Refusal{400, "malformed authToken subprotocol", {}};
                auth_token = std::move(*token);
            }
        }
        if (!req.subprotocols.empty() && !offers_phoenix && config_.require_phoenix_subprotocol)
            return Refusal{403, "unsupported subprotocol (expected \"phoenix\")", {}};
        if (auto refused = session.connect_socket(std::get<wire::Vsn>(vsn), req.http, req.peer,
                                                  std::move(auth_token)))
            return refused;
        res.accept(offers_phoenix ? "phoenix" : "");
        return std::nullopt;
    }

    void serve_http(const transport::http::Request& req, const asio::ip::tcp::endpoint& peer,
                    transport::http::Responder responder) {
        if (config_.longpoll.enabled && is_socket_path(req.path, "/longpoll"))
            return serve_longpoll(req, peer, std::move(responder));
        responder.send(serve_plain(req));
    }

    presence::OwnerId next_owner_id() noexcept { return ++owners_; }
    const detail::Instruments& instruments() const noexcept { return instruments_; }
    void connection_opened() noexcept { ++open_; }
    void connection_closed() noexcept { --open_; }

    // -------------------------------------------------------- long-poll --

    static std::string longpoll_secret(const LongPollOptions& options) {
        if (!options.secret_key_base.empty()) return options.secret_key_base;
        unsigned char bytes[32];
        if (RAND_bytes(bytes, sizeof bytes) != 1)
            throw std::runtime_error("plume: no randomness for long-poll session tokens");
        return plume::detail::base64_encode(bytes, sizeof bytes);
    }
    static constexpr std::string_view longpoll_salt = "plume long-poll session";

    // The session a request names (X-Phoenix-Longpoll-Token, else a `token`
    // query parameter that verifies: a connect param may be named token
    // too). `signed_but_gone`: it named one that is closed or unknown.
    std::shared_ptr<LongPoll> find_longpoll(const transport::http::Request& req,
                                            bool& signed_but_gone) {
        signed_but_gone = false;
        auto lookup = [&](std::string_view token) -> std::shared_ptr<LongPoll> {
            auto data = longpoll_tokens_.verify(longpoll_salt, token);
            if (!data || !data->is_string()) return nullptr;
            signed_but_gone = true;
            std::lock_guard lock(longpoll_mutex_);
            auto it = longpoll_.find(data->template get<std::string>());
            return it == longpoll_.end() ? nullptr : it->second;
        };
        if (auto header = req.header("x-phoenix-longpoll-token"); !header.empty())
            if (auto s = lookup(header)) return s;
        for (auto it = req.query.rbegin(); it != req.query.rend(); ++it)
            if (it->first == "token")
                if (auto s = lookup(it->second)) return s;
        return nullptr;
    }

    void serve_longpoll(const transport::http::Request& req, const asio::ip::tcp::endpoint& peer,
                        transport::http::Responder responder) {
        auto json = [](int status) { return longpoll_response(longpoll_body(status)); };
        if (req.method == "OPTIONS") {
            // The CORS preflight of a cross-origin page (the Origin is still
            // checked when the session starts).
            auto r = longpoll_response({});
            r.set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
                .set("Access-Control-Max-Age", "3600");
            if (auto asked = req.header("access-control-request-headers"); !asked.empty())
                r.set("Access-Control-Allow-Headers", std::string(asked));
            return void(responder.send(std::move(r)));
        }
        bool get = req.method == "GET";
        if (!get && req.method != "POST")
            return void(responder.send(
                transport::http::error_response(405, "long-poll answers GET, POST and OPTIONS")
                    .set("Allow", "GET, POST, OPTIONS")));
        bool gone = false;
        auto session = find_longpoll(req, gone);
        if (!get) {
            if (!session) return void(responder.send(json(410)));
            std::vector<LongPollMessage> messages;
            auto type = req.header("content-type");
            bool ndjson = transport::http::iequals(
                transport::http::trim(type.substr(0, type.find(';'))), "application/x-ndjson");
            if (!split_longpoll_body(req.body, ndjson, messages)) {
                log_(LogLevel::info, "malformed long-poll message", {});
                return void(responder.send(json(400)));
            }
            if (messages.size() > config_.longpoll.max_batch_messages) {
                log_(LogLevel::warning, "long-poll batch too large",
                     {{"messages", std::to_string(messages.size())}});
                return void(responder.send(json(413)));
            }
            return session->push(std::move(messages), std::move(responder));
        }
        if (session) return session->poll(std::move(responder));
        if (gone) return void(responder.send(json(410)));
        open_longpoll(req, peer, std::move(responder));
    }

    // A GET without a session: the checks and connect() as for a WebSocket;
    // refused → {"status":403} (phoenix.js gives up), rate limited →
    // {"status":500} (phoenix.js retries with backoff).
    void open_longpoll(const transport::http::Request& req, const asio::ip::tcp::endpoint& peer,
                       transport::http::Responder responder) {
        auto json = [](int status) { return longpoll_response(longpoll_body(status)); };
        const auto t0 = instruments_.start_connect();
        auto vsn = check_connect(req, peer);
        if (auto* refused = std::get_if<Refusal>(&vsn)) {
            instruments_.socket_refused(TransportKind::longpoll, t0, refused->status,
                                        refused->reason, peer);
            return void(responder.send(json(refused->status == 429 ? 500 : 403)));
        }
        std::optional<std::string> auth_token;
        if (auto t = req.header("x-phoenix-authtoken"); !t.empty()) auth_token = std::string(t);
        auto session =
            std::make_shared<LongPoll>(io_, config_.longpoll, longpoll_session_type(this));
        if (auto refused = session->handler().connect_socket(std::get<wire::Vsn>(vsn), req, peer,
                                                             std::move(auth_token))) {
            instruments_.socket_refused(TransportKind::longpoll, t0, refused->status,
                                        refused->reason, peer);
            return void(responder.send(json(403)));
        }
        instruments_.socket_connected(TransportKind::longpoll, t0, peer);
        unsigned char bytes[16];
        if (RAND_bytes(bytes, sizeof bytes) != 1) return void(responder.send(json(500)));
        auto id = plume::detail::base64url_encode_unpadded(
            std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
        // As Phoenix's: signed, good for 14 days (the session ends sooner).
        auto token =
            longpoll_tokens_.sign(longpoll_salt, id, {.max_age = std::chrono::seconds(1'209'600)});
        session->set_token(token);
        session->on_finished([this, id] {
            std::lock_guard lock(longpoll_mutex_);
            longpoll_.erase(id);
        });
        {
            std::lock_guard lock(longpoll_mutex_);
            if (longpoll_stopping_) return void(responder.send(json(410)));
            longpoll_.emplace(id, session);
        }
        session->start();
        responder.send(longpoll_response(
            "{\"status\":410,\"token\":" + nlohmann::json(token).dump() + ",\"messages\":[]}"));
    }

    // Routes, files and refusals: answered at once.
    transport::http::Response serve_plain(const transport::http::Request& req) {
        using transport::http::error_response;
        if (is_socket_path(req.path, "/longpoll"))
            return error_response(404, "the long-poll transport is not enabled");
        auto found = routes_.find(req.method, req.target, req.path);
        bool get = req.method == "GET" || req.method == "HEAD";
        if (!get && found.status == RouteTable::Status::none) {
            // 405 where the path exists for GET (a socket, a file), else 404.
            if (is_socket_path(req.path, "/websocket") ||
                (!config_.static_dir.empty() && serve_file(req.path).status == 200))
                return error_response(405, "only GET is served here").set("Allow", "GET, HEAD");
            return error_response(404, "not found");
        }
        if (is_socket_path(req.path, "/websocket"))
            return error_response(400, "expected a WebSocket upgrade");
        switch (found.status) {
            case RouteTable::Status::none:
                break;
            case RouteTable::Status::bad_request:
                return error_response(400, "bad path encoding");
            case RouteTable::Status::method_not_allowed:
                return error_response(405, "this path answers " + found.allow)
                    .set("Allow", found.allow);
            case RouteTable::Status::matched:
                try {
                    return (*found.handler)(req, found.params);
                } catch (const std::exception& e) {
                    log_(LogLevel::error, "route raised",
                         {{"route", *found.pattern}, {"what", e.what()}});
                    return error_response(500, "internal error");
                }
        }
        if (!config_.static_dir.empty()) return serve_file(req.path);
        return error_response(404, "not found");
    }

    // What the transport needs to wrap accepted sockets (TLS: the context).
    static typename transport::StreamTraits<NextLayer>::Context stream_context(
        const EndpointConfig::Tls& tls) {
        if constexpr (transport::StreamTraits<NextLayer>::is_tls) {
            if (tls.context) return {tls.context, tls.own_record_layer};
            if (tls.cert_chain_file.empty() || tls.private_key_file.empty())
                throw std::invalid_argument(
                    "EndpointConfig::tls: a TLS Endpoint needs cert_chain_file and "
                    "private_key_file, or a context");
            return {transport::server_tls_context(tls.cert_chain_file, tls.private_key_file),
                    tls.own_record_layer};
        } else {
            if (!tls.empty())
                throw std::invalid_argument(
                    "EndpointConfig::tls is set but this Endpoint serves plain TCP: use "
                    "Endpoint<SocketT, Adapter, plume::transport::TlsSocket>");
            return {};
        }
    }

    presence::PresenceOptions presence_options() {
        auto opts = config_.presence;
        auto user = std::move(opts.on_diff);
        // Every node computes its own diffs, so they go to local subscribers only.
        opts.on_diff = [this, user](const std::string& topic, const nlohmann::json& diff) {
            pubsub_.local_broadcast(pubsub::make_message(topic, "presence_diff", diff));
            instruments_.presence_diff(topic, diff);
            if (user) user(topic, diff);
        };
        return opts;
    }

    // What is cheaper to read at scrape time than to track: Presence's
    // tables, the adapter's own statistics.
    void collect_metrics() {
        metrics_.collect([this](metrics::Snapshot& s) {
            const auto& tracker = presence_.tracker();
            std::size_t entries = 0;
            auto topics = tracker.topics();
            for (const auto& t : topics)
                entries += tracker.list(t).size();
            s.gauge("plume_presence_entries", "Presences tracked, on every topic and node.")
                .add({}, static_cast<double>(entries));
            s.gauge("plume_presence_topics", "Topics with at least one presence.")
                .add({}, static_cast<double>(topics.size()));
            if constexpr (requires(const A& a) { a.stats().client.link.connects; }) {
                auto st = pubsub_.adapter().stats();
                const metrics::Labels redis = {{"adapter", "redis"}};
                auto with_kind = [](std::string kind) {
                    return metrics::Labels{{"adapter", "redis"}, {"kind", std::move(kind)}};
                };
                auto reconnects = [](const auto& link) {
                    return static_cast<double>(link.connects > 0 ? link.connects - 1 : 0);
                };
                s.counter("plume_pubsub_published_total", "Broadcasts sent to the adapter.")
                    .add(redis, static_cast<double>(st.published));
                s.counter("plume_pubsub_received_total",
                          "Broadcasts from other nodes delivered here.")
                    .add(redis, static_cast<double>(st.received));
                s.counter("plume_pubsub_errors_total",
                          "Adapter errors: publishes refused or unanswered, malformed "
                          "envelopes, failed history reads, lost connections.")
                    .add(with_kind("publish"), static_cast<double>(st.publish_failed))
                    .add(with_kind("malformed"), static_cast<double>(st.malformed))
                    .add(with_kind("history"), static_cast<double>(st.recovery_failed))
                    .add(with_kind("connection"),
                         static_cast<double>(st.client.link.faults + st.subscriber.link.faults));
                s.counter("plume_pubsub_reconnects_total",
                          "Connections to the adapter's server made again after the first.")
                    .add(redis, reconnects(st.client.link) + reconnects(st.subscriber.link));
            }
        });
    }

    bool is_socket_path(std::string_view path, std::string_view transport) const {
        for (auto& p : config_.socket_paths)
            if (path.size() == p.size() + transport.size() && path.substr(0, p.size()) == p &&
                path.substr(p.size()) == transport)
                return true;
        return false;
    }

    transport::http::Response serve_file(std::string path) const {
        namespace fs = std::filesystem;
        if (path.empty() || path.back() == '/') path += "index.html";
        if (path.find("..") != std::string::npos || path.find('\0') != std::string::npos)
            return transport::http::error_response(400, "bad path");
        fs::path file = fs::path(config_.static_dir) / fs::path(path).relative_path();
        std::ifstream in(file, std::ios::binary);
        if (!in || fs::is_directory(file)) return transport::http::error_response(404, "not found");
        std::ostringstream body;
        body << in.rdbuf();
        transport::http::Response r;
        r.body = body.str();
        r.set("Content-Type", content_type(file.extension().string()));
        r.set("Cache-Control", "no-cache");
        return r;
    }

    static std::string content_type(const std::string& ext) {
        if (ext == ".html") return "text/html; charset=utf-8";
        if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
        if (ext == ".css") return "text/css; charset=utf-8";
        if (ext == ".json") return "application/json";
        if (ext == ".svg") return "image/svg+xml";
        if (ext == ".png") return "image/png";
        return "application/octet-stream";
    }

    EndpointConfig config_;
    asio::io_context& io_;
    Log log_;
    metrics::Registry metrics_;
    detail::Instruments instruments_;
    AddressLimiter connections_;
    pubsub::PubSub<A> pubsub_;
    presence::Presence presence_;
    pubsub::History history_;
    std::atomic<presence::OwnerId> owners_{0};
    Router<SocketT> router_;
    RouteTable routes_;
    std::atomic<std::size_t> open_{0};
    transport::Server<session_type, NextLayer> server_;
    TokenSigner longpoll_tokens_;
    mutable std::mutex longpoll_mutex_;
    std::unordered_map<std::string, std::shared_ptr<LongPoll>> longpoll_;
    bool longpoll_stopping_ = false;
};

}  // namespace plume::server
