// plume/server/socket.hpp — what a Phoenix-style Socket type provides.
//
// A Socket decides whether a client may connect, keeps typed assigns for the
// connection's lifetime, may name itself with an id (so endpoint.disconnect(id)
// closes every connection of, say, one user), and routes topics to channels:
//
//   struct UserSocket {
//       std::string user_id;                                     // typed assigns
//       plume::server::ConnectResult connect(const plume::server::Params& params,
//                                            const plume::server::ConnectInfo& info) {
//           if (!params.contains("user_id")) return plume::server::ConnectResult::refuse();
//           user_id = params["user_id"];
//           return plume::server::ConnectResult::accept();
//       }
//       std::optional<std::string> id() const { return "users_socket:" + user_id; }
//       static void channels(plume::server::Router<UserSocket>& r) {
//           r.channel<RoomChannel>("room:*");
//       }
//   };
#pragma once

#include <asio.hpp>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "plume/transport/http.hpp"

namespace plume::server {

/// Connect params: the query parameters of the socket URL as a JSON object of
/// strings (as Phoenix passes them), without "vsn".
using Params = nlohmann::json;

/// What connect() may look at besides params (Phoenix's connect_info).
struct ConnectInfo {
    asio::ip::tcp::endpoint peer;
    /// The token from phoenix.js's `authToken` option (Sec-WebSocket-Protocol
    /// "base64url.bearer.phx.<base64>"), decoded; empty when none was sent.
    std::optional<std::string> auth_token;
    const transport::http::Request* request = nullptr;  // valid during connect() only

    std::string_view header(std::string_view name) const noexcept {
        return request ? request->header(name) : std::string_view{};
    }
    std::string_view uri_path() const noexcept {
        return request ? std::string_view(request->path) : std::string_view{};
    }
};

/// connect()'s answer: accept, or refuse with an HTTP status (403 by default,
/// as Phoenix; 429 suits rate limits) and a reason for the response body.
struct ConnectResult {
    bool accepted = true;
    int status = 403;
    std::string reason;

    static ConnectResult accept() { return {}; }
    static ConnectResult refuse(std::string reason = "forbidden", int status = 403) {
        return {false, status, std::move(reason)};
    }
};

template <class S>
class Router;

namespace detail {
template <class S>
concept HasId = requires(const S& s) {
    { s.id() } -> std::convertible_to<std::optional<std::string>>;
};
}  // namespace detail

/// What an Endpoint needs from the application's Socket type.
template <class S>
concept SocketHandler = std::default_initializable<S> &&
    requires(S& s, const Params& p, const ConnectInfo& info, Router<S>& router) {
    { s.connect(p, info) } -> std::same_as<ConnectResult>;
    S::channels(router);
};

}  // namespace plume::server
