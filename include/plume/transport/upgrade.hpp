// plume/transport/upgrade.hpp — what a server-role handler sees of a
// WebSocket upgrade request (on_upgrade) and how it answers: accept, with a
// subprotocol, or refuse with an HTTP status.
#pragma once

#include <asio.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "plume/transport/http.hpp"

namespace plume::transport {

/// What the layer above sees of an upgrade request before accepting it.
struct UpgradeRequest {
    const http::Request& http;
    asio::ip::tcp::endpoint peer;
    std::vector<std::string> subprotocols;  // as offered, in order

    std::string_view path() const noexcept { return http.path; }
    std::optional<std::string_view> query(std::string_view name) const noexcept {
        return http.query_param(name);
    }
    std::string_view header(std::string_view name) const noexcept { return http.header(name); }
};

/// The layer above's answer to an upgrade: accept (optionally choosing a
/// subprotocol) or refuse with an HTTP status.
struct UpgradeResponse {
    int status = 101;
    std::string subprotocol;
    std::string body;      // for refusals
    http::Fields headers;  // extra response headers

    void accept(std::string chosen_subprotocol = {}) {
        status = 101;
        subprotocol = std::move(chosen_subprotocol);
    }
    void reject(int http_status, std::string reason) {
        status = http_status;
        body = std::move(reason);
    }
};

}  // namespace plume::transport
