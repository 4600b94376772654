// plume/transport/handshake.hpp — the RFC 6455 opening handshake, both roles.
//
// Server: check_upgrade() says whether a parsed request is a valid WebSocket
// upgrade (and which HTTP status refuses it if not); accept_key() computes
// Sec-WebSocket-Accept with OpenSSL's SHA-1. Client: make_client_key(),
// client_request() and check_server_response().
//
//   auto verdict = plume::transport::check_upgrade(request);
//   if (verdict.status != 101) send(http::error_response(verdict.status, verdict.detail));
#pragma once

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <asio/ip/address.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "plume/detail/base64.hpp"
#include "plume/transport/http.hpp"

namespace plume::transport {

inline constexpr std::string_view websocket_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A Sec-WebSocket-Key must be padded standard base64 of 16 bytes (RFC 6455 4.1).
inline bool is_valid_client_key(std::string_view key) {
    auto raw = plume::detail::base64_decode(key);
    return raw && raw->size() == 16;
}

/// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)).
inline std::string accept_key(std::string_view key) {
    std::string input(key);
    input += websocket_guid;
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
    return plume::detail::base64_encode(digest, sizeof digest);
}

/// The outcome of checking an upgrade request: 101 when it is acceptable,
/// otherwise the HTTP status to refuse it with and why.
struct UpgradeVerdict {
    int status = 101;
    std::string_view detail;
    bool ok() const noexcept { return status == 101; }
};

/// True when a request asks for a WebSocket at all (Upgrade: websocket).
inline bool is_upgrade_request(const http::Request& req) {
    return http::has_token(req.header_list("upgrade"), "websocket");
}

/// Validates a WebSocket upgrade request (RFC 6455 4.2.1).
inline UpgradeVerdict check_upgrade(const http::Request& req) {
    if (req.method != "GET") return {400, "WebSocket upgrade must use GET"};
    if (req.version_minor < 1) return {400, "WebSocket upgrade needs HTTP/1.1"};
    if (!is_upgrade_request(req)) return {426, "this endpoint speaks WebSocket only"};
    if (!http::has_token(req.header_list("connection"), "upgrade"))
        return {400, "missing Connection: Upgrade"};
    if (req.header_count("sec-websocket-version") != 1 ||
        http::trim(req.header("sec-websocket-version")) != "13")
        return {426, "unsupported Sec-WebSocket-Version (13 is supported)"};
    if (req.header_count("sec-websocket-key") != 1 ||
        !is_valid_client_key(req.header("sec-websocket-key")))
        return {400, "Sec-WebSocket-Key must be base64 of 16 bytes"};
    return {};
}

/// Subprotocols the client offered, in its order of preference.
inline std::vector<std::string> offered_subprotocols(const http::Request& req) {
    std::vector<std::string> out;
    http::for_each_token(req.header_list("sec-websocket-protocol"),
                         [&](std::string_view t) { out.emplace_back(t); });
    return out;
}

/// The 101 response for an accepted upgrade.
inline http::Response switching_protocols(const http::Request& req, std::string_view subprotocol,
                                          std::string_view extensions) {
    http::Response r;
    r.status = 101;
    r.set("Upgrade", "websocket").set("Connection", "Upgrade");
    r.set("Sec-WebSocket-Accept", accept_key(req.header("sec-websocket-key")));
    if (!subprotocol.empty()) r.set("Sec-WebSocket-Protocol", std::string(subprotocol));
    if (!extensions.empty()) r.set("Sec-WebSocket-Extensions", std::string(extensions));
    return r;
}

/// A refusal; 426 also names the version we speak, as RFC 6455 4.4 asks.
inline http::Response refuse_upgrade(const UpgradeVerdict& v) {
    auto r = http::error_response(v.status, v.detail);
    if (v.status == 426) r.set("Sec-WebSocket-Version", "13").set("Upgrade", "websocket");
    return r;
}

// ---------------------------------------------------------------- client --

/// A fresh random Sec-WebSocket-Key.
inline std::string make_client_key() {
    unsigned char nonce[16];
    if (RAND_bytes(nonce, sizeof nonce) != 1) throw std::runtime_error("RAND_bytes failed");
    return plume::detail::base64_encode(nonce, sizeof nonce);
}

struct ClientRequest {
    std::string host;  // Host header value (host[:port])
    std::string target = "/";
    std::vector<std::string> subprotocols;
    std::string extensions;  // Sec-WebSocket-Extensions offer, if any
    http::Fields headers;    // extra headers (Origin, Authorization, ...)
    /// Not part of the HTTP request: the source address connect() binds the
    /// TCP socket to (port chosen by the kernel), e.g. 127.0.0.2, 127.0.0.3,
    /// ... to open more connections to one server than one address has
    /// ephemeral ports. Unset: the OS picks the source address.
    std::optional<asio::ip::address> local_address;
};

inline std::string client_request(const ClientRequest& r, std::string_view key) {
    std::string out = "GET " + r.target + " HTTP/1.1\r\nHost: " + r.host +
                      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ";
    out += key;
    out += "\r\nSec-WebSocket-Version: 13\r\n";
    if (!r.subprotocols.empty()) {
        out += "Sec-WebSocket-Protocol: ";
        for (std::size_t i = 0; i < r.subprotocols.size(); ++i)
            out += (i ? ", " : "") + r.subprotocols[i];
        out += "\r\n";
    }
    if (!r.extensions.empty()) out += "Sec-WebSocket-Extensions: " + r.extensions + "\r\n";
    for (auto& [k, v] : r.headers)
        out += k + ": " + v + "\r\n";
    out += "\r\n";
    return out;
}

struct ServerResponse {
    int status = 0;
    http::Fields headers;
    std::string_view header(std::string_view name) const noexcept {
        for (auto& [k, v] : headers)
            if (http::iequals(k, name)) return v;
        return {};
    }
};

/// Parses a response head (through the blank line). Returns false if malformed.
inline bool parse_response(std::string_view head, ServerResponse& res) {
    auto eol = head.find("\r\n");
    if (eol == std::string_view::npos) return false;
    auto line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ' ||
        (line.size() > 12 && line[12] != ' '))  // exactly three digits, then SP reason
        return false;
    auto code = line.substr(9, 3);
    for (char c : code)
        if (c < '0' || c > '9') return false;
    res.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
    while (!head.empty()) {
        eol = head.find("\r\n");
        if (eol == std::string_view::npos) return false;
        line = head.substr(0, eol);
        head.remove_prefix(eol + 2);
        if (line.empty()) break;
        auto colon = line.find(':');
        if (colon == std::string_view::npos || !http::is_token(line.substr(0, colon))) return false;
        res.headers.emplace_back(std::string(line.substr(0, colon)),
                                 std::string(http::trim(line.substr(colon + 1))));
    }
    return true;
}

/// Checks a server's answer to our upgrade (RFC 6455 4.2.2 from the client's
/// side). Returns an empty string when acceptable, else what is wrong.
inline std::string check_server_response(const ServerResponse& res, std::string_view key,
                                         const ClientRequest& req) {
    if (res.status != 101) return "server answered HTTP " + std::to_string(res.status);
    if (!http::iequals(http::trim(res.header("upgrade")), "websocket"))
        return "missing Upgrade: websocket";
    if (!http::has_token(res.header("connection"), "upgrade")) return "missing Connection: Upgrade";
    if (res.header("sec-websocket-accept") != accept_key(key)) return "bad Sec-WebSocket-Accept";
    auto proto = res.header("sec-websocket-protocol");
    if (!proto.empty()) {
        bool offered = false;
        for (auto& p : req.subprotocols)
            offered = offered || p == proto;
        if (!offered) return "server chose a subprotocol we did not offer";
    }
    // No subprotocol chosen is legal (RFC 6455 4.1), though browsers refuse it.
    if (!res.header("sec-websocket-extensions").empty() && req.extensions.empty())
        return "server chose an extension we did not offer";
    return {};
}

}  // namespace plume::transport
