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
// route (route.hpp) with 404.
#pragma once

#include <asio.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "plume/detail/base64.hpp"
#include "plume/presence/presence.hpp"
#include "plume/pubsub/history.hpp"
#include "plume/pubsub/pubsub.hpp"
#include "plume/server/channel.hpp"
#include "plume/server/limits.hpp"
#include "plume/server/log.hpp"
#include "plume/server/origin.hpp"
#include "plume/server/route.hpp"
#include "plume/server/session.hpp"
#include "plume/server/socket.hpp"
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
    transport::Options websocket{};
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
        bool empty() const noexcept {
            return !context && cert_chain_file.empty() && private_key_file.empty();
        }
    } tls;
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

// (A defaults to pubsub::Local and NextLayer to plain TCP; see the
// declaration in session.hpp. NextLayer = transport::TlsSocket serves wss://
// and https:// with EndpointConfig::tls.)
template <SocketHandler SocketT, pubsub::Adapter A, class NextLayer>
class Endpoint {
  public:
    using session_type = Session<SocketT, A, NextLayer>;
    using HttpHandler = std::function<transport::http::Response(const transport::http::Request&)>;
    using RouteHandler = server::RouteHandler;

    Endpoint(asio::io_context& io, EndpointConfig config, A adapter = A{})
        : config_(std::move(config)),
          io_(io),
          log_(config_.log),
          pubsub_(std::move(adapter)),
          presence_(pubsub_, presence_options()),
          history_(config_.history),
          server_(
              io, config_.websocket, [this] { return session_type(this); },
              stream_context(config_.tls)) {
        if constexpr (pubsub::RoutesTopics<A> && !pubsub::KeepsHistory<A>) {
            if (!config_.history.topics.empty())
                throw std::invalid_argument(
                    "EndpointConfig::history: this multi-node PubSub adapter does not keep "
                    "history, and one node's memory would not do");
        }
        SocketT::channels(router_);
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
    /// Sockets that completed the WebSocket handshake and are still open.
    std::size_t connection_count() const noexcept { return open_.load(); }

    /// Broadcasts to every channel joined to `topic`, on every node. Safe
    /// from any thread; encoded once per serializer in use.
    void broadcast(std::string topic, std::string_view event, Payload payload) {
        publish(detail::to_pubsub(std::move(topic), event, std::move(payload)), nullptr);
    }

    /// Broadcasts `m` (except to `from` on this node), through the topic's
    /// history when it has one.
    void publish(const pubsub::MessagePtr& m, std::shared_ptr<const pubsub::Subscriber> from) {
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
    void local_broadcast(std::string topic, std::string_view event, Payload payload) {
        pubsub_.local_broadcast(detail::to_pubsub(std::move(topic), event, std::move(payload)));
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
    /// The same for another method ("POST", ...). Request bodies are not
    /// read: a request with one gets 413, so parameters go in the path or
    /// the query.
    template <RouteHandlerFn F>
    void route(std::string method, std::string path, F handler) {
        routes_.add(std::move(method), std::move(path), make_route_handler(std::move(handler)));
    }

    /// The endpoint's log (sanitised, rate-limited; see log.hpp). Usable by
    /// the application too: log()(LogLevel::info, "user banned", {{"id", id}}).
    Log& log() noexcept { return log_; }

    // ------------------------------------------------ used by Session --

    void authorize_upgrade(const transport::UpgradeRequest& req, transport::UpgradeResponse& res,
                           SocketT& socket, wire::Vsn& vsn) {
        if (!is_socket_path(req.path(), "/websocket")) return res.reject(404, "no socket here");
        if (auto wait = connections_.admit(config_.limits.connections_per_address,
                                           req.peer.address(), std::chrono::steady_clock::now())) {
            log_(LogLevel::warning, "connection rate limited",
                 {{"peer", req.peer.address().to_string()}});
            res.headers.push_back({"Retry-After", std::to_string(wait)});
            return res.reject(429, "too many connections from this address; retry later");
        }
        auto origin = req.header("origin");
        if (!config_.check_origin.allows(origin, req.header("host"))) {
            log_(LogLevel::warning, "refused origin",
                 {{"origin", origin}, {"target", redact_query(req.http.target)}});
            return res.reject(403, "origin not allowed");
        }
        auto asked = req.query("vsn").value_or(wire::vsn_when_absent);
        auto chosen = wire::serializer_for_vsn(asked);
        if (!chosen)
            return res.reject(403, "unsupported vsn \"" + std::string(asked) +
                                       "\" (plume speaks 1.0.0 and 2.0.0)");
        vsn = *chosen;

        ConnectInfo info;
        info.peer = req.peer;
        info.request = &req.http;
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
                if (!token) return res.reject(400, "malformed authToken subprotocol");
                info.auth_token = std::move(*token);
            }
        }
        if (!req.subprotocols.empty() && !offers_phoenix && config_.require_phoenix_subprotocol)
            return res.reject(403, "unsupported subprotocol (expected \"phoenix\")");

        Params params = Params::object();
        for (auto& [k, v] : req.http.query)
            if (k != "vsn") params[k] = v;
        ConnectResult result;
        try {
            result = socket.connect(params, info);
        } catch (const std::exception& e) {
            log_(LogLevel::error, "connect raised", {{"what", e.what()}});
            return res.reject(500, "connect failed");
        }
        if (!result.accepted) return res.reject(result.status, result.reason);
        res.accept(offers_phoenix ? "phoenix" : "");
    }

    transport::http::Response serve_http(const transport::http::Request& req,
                                         const asio::ip::tcp::endpoint&) {
        using transport::http::error_response;
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
        if (is_socket_path(req.path, "/longpoll"))
            return error_response(404, "the long-poll transport is not enabled");
        switch (found.status) {
            case RouteTable::Status::none:
                break;
            case RouteTable::Status::bad_request:
                return error_response(400, "bad path encoding");
            case RouteTable::Status::method_not_allowed:
                return error_response(405, "this path answers " + found.allow)
                    .set("Allow", found.allow);
            case RouteTable::Status::matched:
                if (!get && has_body(req))
                    return error_response(413,
                                          "request bodies are not read; send parameters "
                                          "in the path or the query");
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

    presence::OwnerId next_owner_id() noexcept { return ++owners_; }
    void connection_opened() noexcept { ++open_; }
    void connection_closed() noexcept { --open_; }

  private:
    // What the transport needs to wrap accepted sockets (TLS: the context).
    static typename transport::StreamTraits<NextLayer>::Context stream_context(
        const EndpointConfig::Tls& tls) {
        if constexpr (transport::StreamTraits<NextLayer>::is_tls) {
            if (tls.context) return {tls.context};
            if (tls.cert_chain_file.empty() || tls.private_key_file.empty())
                throw std::invalid_argument(
                    "EndpointConfig::tls: a TLS Endpoint needs cert_chain_file and "
                    "private_key_file, or a context");
            return {transport::server_tls_context(tls.cert_chain_file, tls.private_key_file)};
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
            if (user) user(topic, diff);
        };
        return opts;
    }

    // The transport reads request heads only; a body would go unread.
    static bool has_body(const transport::http::Request& req) {
        auto length = req.header("content-length");
        return req.has_header("transfer-encoding") || (!length.empty() && length != "0");
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
        r.set("Cache-Control", "no-cache").set("Connection", "close");
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
    AddressLimiter connections_;
    pubsub::PubSub<A> pubsub_;
    presence::Presence presence_;
    pubsub::History history_;
    std::atomic<presence::OwnerId> owners_{0};
    Router<SocketT> router_;
    RouteTable routes_;
    std::atomic<std::size_t> open_{0};
    transport::Server<session_type, NextLayer> server_;
};

}  // namespace plume::server
