// Unit tests for plume/transport/handshake.hpp: the RFC 6455 opening
// handshake in both roles.
//
// The header under test is included first on purpose: it must compile on its own.
#include <plume/transport/handshake.hpp>

#include <catch2/catch.hpp>

#include <plume/transport/http.hpp>

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace ws = plume::transport;
namespace http = plume::transport::http;

namespace {

const std::string rfc_key = "dGhlIHNhbXBsZSBub25jZQ==";

// A valid upgrade request head with `extra` header lines inserted, and the
// given replacements for the standard lines (empty string: omit that line).
struct Head {
    std::string request_line = "GET /chat HTTP/1.1";
    std::string host = "Host: server.example.com";
    std::string upgrade = "Upgrade: websocket";
    std::string connection = "Connection: Upgrade";
    std::string key = "Sec-WebSocket-Key: " + rfc_key;
    std::string version = "Sec-WebSocket-Version: 13";
    std::string extra;

    std::string str() const {
        std::string s = request_line + "\r\n";
        for (auto* line : {&host, &upgrade, &connection, &key, &version})
            if (!line->empty()) s += *line + "\r\n";
        s += extra;
        s += "\r\n";
        return s;
    }
};

http::Request parse(const Head& h) {
    http::Request req;
    REQUIRE(http::parse_request(h.str(), req) == 0);
    return req;
}

int verdict(const Head& h) {
    return ws::check_upgrade(parse(h)).status;
}

}  // namespace

TEST_CASE("handshake: accept_key matches RFC 6455", "[transport][handshake]") {
    CHECK(ws::accept_key(rfc_key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK(ws::accept_key("x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    CHECK(ws::accept_key("").size() == 28);  // base64 of a 20-byte SHA-1
}

TEST_CASE("handshake: is_valid_client_key wants padded base64 of 16 bytes",
          "[transport][handshake]") {
    CHECK(ws::is_valid_client_key(rfc_key));
    CHECK(ws::is_valid_client_key("MDEyMzQ1Njc4OWFiY2RlZg=="));
    CHECK(ws::is_valid_client_key("+/+/QUFBQUFBQUFBQUFBQQ=="));
    for (std::string_view bad : {
             "",
             "MDEyMzQ1Njc4OWFiY2Rl",          // 15 bytes
             "MDEyMzQ1Njc4OWFiY2RlZmc=",      // 17 bytes
             "dGhlIHNhbXBsZSBub25jZQ",        // unpadded
             "dGhlIHNhbXBsZSBub25jZQ=",       // half padded
             "dGhlIHNhbXBsZSBub25jZQ===",     // over padded
             "-_-_QUFBQUFBQUFBQUFBQQ==",      // base64url alphabet
             "dGhlIHNh bXBsZSBub25jZQ==",     // inner space
             "dGhlIHNhbXBsZSBub25jZQ==\r\n",  // line end
             "=GhlIHNhbXBsZSBub25jZQ==",      // padding first
             "not base64 at all!!!!",
         }) {
        CAPTURE(bad);
        CHECK_FALSE(ws::is_valid_client_key(bad));
    }
}

TEST_CASE("handshake: make_client_key is 16 random bytes in base64", "[transport][handshake]") {
    std::set<std::string> keys;
    for (int i = 0; i < 20; ++i) {
        auto key = ws::make_client_key();
        CHECK(key.size() == 24);
        CHECK(ws::is_valid_client_key(key));
        keys.insert(key);
    }
    CHECK(keys.size() == 20);
}

TEST_CASE("handshake: check_upgrade accepts valid requests", "[transport][handshake]") {
    Head h;
    auto req = parse(h);
    auto v = ws::check_upgrade(req);
    CHECK(v.ok());
    CHECK(v.status == 101);
    CHECK(ws::is_upgrade_request(req));

    // Tolerated variations.
    Head lists;
    lists.connection = "Connection: keep-alive, Upgrade";
    lists.upgrade = "upgrade: WebSocket";
    CHECK(verdict(lists) == 101);
    Head split_connection;
    split_connection.connection = "Connection: keep-alive";
    split_connection.extra = "connection: upgrade\r\n";
    CHECK(verdict(split_connection) == 101);
    Head padded;
    padded.version = "Sec-WebSocket-Version:   13  ";
    padded.key = "sec-websocket-key:  " + rfc_key + " ";
    CHECK(verdict(padded) == 101);
    Head upgrade_list;
    upgrade_list.upgrade = "Upgrade: h2c, websocket";
    CHECK(verdict(upgrade_list) == 101);
}

TEST_CASE("handshake: check_upgrade refusals and their statuses", "[transport][handshake]") {
    SECTION("missing key") {
        Head h;
        h.key.clear();
        CHECK(verdict(h) == 400);
    }
    SECTION("key that is not base64") {
        Head h;
        h.key = "Sec-WebSocket-Key: not base64 at all!!!!";
        CHECK(verdict(h) == 400);
    }
    SECTION("key of 15 bytes") {
        Head h;
        h.key = "Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2Rl";
        CHECK(verdict(h) == 400);
    }
    SECTION("key of 17 bytes") {
        Head h;
        h.key = "Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZmc=";
        CHECK(verdict(h) == 400);
    }
    SECTION("empty key") {
        Head h;
        h.key = "Sec-WebSocket-Key:";
        CHECK(verdict(h) == 400);
    }
    SECTION("duplicate key") {
        Head h;
        h.extra = "Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n";
        CHECK(verdict(h) == 400);
    }
    SECTION("wrong version, and the refusal names version 13") {
        for (std::string version : {"Sec-WebSocket-Version: 8", "Sec-WebSocket-Version: 14",
                                    "Sec-WebSocket-Version: 13, 8", "Sec-WebSocket-Version:", ""}) {
            Head h;
            h.version = version;
            auto v = ws::check_upgrade(parse(h));
            CAPTURE(version);
            CHECK(v.status == 426);
            auto res = ws::refuse_upgrade(v);
            CHECK(res.status == 426);
            auto text = res.to_string();
            CHECK(text.rfind("HTTP/1.1 426 Upgrade Required\r\n", 0) == 0);
            CHECK(text.find("\r\nSec-WebSocket-Version: 13\r\n") != std::string::npos);
            CHECK(text.find("\r\nUpgrade: websocket\r\n") != std::string::npos);
            CHECK(text.find("\r\nConnection: close\r\n") != std::string::npos);
        }
    }
    SECTION("duplicate version") {
        Head h;
        h.extra = "Sec-WebSocket-Version: 13\r\n";
        CHECK(verdict(h) == 426);
    }
    SECTION("no Upgrade header: this endpoint speaks WebSocket only") {
        Head h;
        h.upgrade.clear();
        auto req = parse(h);
        CHECK_FALSE(ws::is_upgrade_request(req));
        CHECK(ws::check_upgrade(req).status == 426);
    }
    SECTION("Upgrade to something else") {
        Head h;
        h.upgrade = "Upgrade: h2c";
        CHECK(verdict(h) == 426);
    }
    SECTION("missing Connection: Upgrade") {
        Head h;
        h.connection = "Connection: keep-alive";
        CHECK(verdict(h) == 400);
        Head none;
        none.connection.clear();
        CHECK(verdict(none) == 400);
    }
    SECTION("non-GET") {
        for (std::string method : {"POST", "PUT", "HEAD", "get"}) {
            Head h;
            h.request_line = method + " /chat HTTP/1.1";
            CAPTURE(method);
            CHECK(verdict(h) == 400);
        }
    }
    SECTION("HTTP/1.0") {
        Head h;
        h.request_line = "GET /chat HTTP/1.0";
        CHECK(verdict(h) == 400);
    }
    SECTION("a refusal other than 426 does not advertise a version") {
        Head h;
        h.key.clear();
        auto res = ws::refuse_upgrade(ws::check_upgrade(parse(h)));
        CHECK(res.status == 400);
        CHECK(res.to_string().find("Sec-WebSocket-Version") == std::string::npos);
        CHECK(res.to_string().find("Connection: close") != std::string::npos);
    }
}

TEST_CASE("handshake: offered_subprotocols across repeated headers", "[transport][handshake]") {
    Head h;
    h.extra =
        "Sec-WebSocket-Protocol: phoenix, chat.v2\r\n"
        "X-Other: 1\r\n"
        "sec-websocket-protocol:  mqtt ,, soap\r\n";
    auto protocols = ws::offered_subprotocols(parse(h));
    CHECK(protocols == std::vector<std::string>{"phoenix", "chat.v2", "mqtt", "soap"});
    CHECK(ws::offered_subprotocols(parse(Head{})).empty());
}

TEST_CASE("handshake: switching_protocols builds the 101", "[transport][handshake]") {
    auto req = parse(Head{});
    auto res = ws::switching_protocols(req, "phoenix", "permessage-deflate");
    CHECK(res.status == 101);
    CHECK(res.to_string() ==
          "HTTP/1.1 101 Switching Protocols\r\n"
          "Upgrade: websocket\r\n"
          "Connection: Upgrade\r\n"
          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
          "Sec-WebSocket-Protocol: phoenix\r\n"
          "Sec-WebSocket-Extensions: permessage-deflate\r\n"
          "\r\n");
    auto plain = ws::switching_protocols(req, "", "").to_string();
    CHECK(plain.find("Sec-WebSocket-Protocol") == std::string::npos);
    CHECK(plain.find("Sec-WebSocket-Extensions") == std::string::npos);
    CHECK(plain.find("Content-Length") == std::string::npos);
}

TEST_CASE("handshake: client_request is a valid upgrade request", "[transport][handshake]") {
    ws::ClientRequest cr;
    cr.host = "localhost:4000";
    cr.target = "/socket/websocket?vsn=2.0.0";
    cr.subprotocols = {"phoenix", "v2"};
    cr.extensions = "permessage-deflate; client_max_window_bits";
    cr.headers = {{"Origin", "http://localhost"}, {"Authorization", "Bearer t"}};
    const std::string key = ws::make_client_key();
    std::string text = ws::client_request(cr, key);

    CHECK(text.rfind("GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\n", 0) == 0);
    CHECK(http::find_head_end(text) == text.size());
    http::Request req;
    REQUIRE(http::parse_request(text, req) == 0);
    CHECK(ws::check_upgrade(req).ok());
    CHECK(req.header("host") == "localhost:4000");
    CHECK(req.header("sec-websocket-key") == key);
    CHECK(req.header("sec-websocket-version") == "13");
    CHECK(ws::offered_subprotocols(req) == cr.subprotocols);
    CHECK(req.header("sec-websocket-extensions") == cr.extensions);
    CHECK(req.header("origin") == "http://localhost");
    CHECK(req.header("authorization") == "Bearer t");
    CHECK(req.query_param("vsn") == std::optional<std::string_view>("2.0.0"));

    // Without subprotocols or extensions, those headers are absent.
    ws::ClientRequest bare;
    bare.host = "h";
    http::Request r2;
    REQUIRE(http::parse_request(ws::client_request(bare, key), r2) == 0);
    CHECK(r2.path == "/");
    CHECK_FALSE(r2.has_header("sec-websocket-protocol"));
    CHECK_FALSE(r2.has_header("sec-websocket-extensions"));
}

TEST_CASE("handshake: parse_response", "[transport][handshake]") {
    ws::ServerResponse res;
    REQUIRE(
        ws::parse_response("HTTP/1.1 101 Switching Protocols\r\n"
                           "Upgrade: websocket\r\n"
                           "connection:Upgrade\r\n"
                           "Sec-WebSocket-Accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n"
                           "\r\n",
                           res));
    CHECK(res.status == 101);
    CHECK(res.headers.size() == 3);
    CHECK(res.header("CONNECTION") == "Upgrade");
    CHECK(res.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK(res.header("absent").empty());

    ws::ServerResponse r404;
    REQUIRE(ws::parse_response("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", r404));
    CHECK(r404.status == 404);
    ws::ServerResponse no_reason;
    REQUIRE(ws::parse_response("HTTP/1.0 200 \r\n\r\n", no_reason));
    CHECK(no_reason.status == 200);

    for (std::string bad :
         {"", "HTTP/1.1 101 Switching Protocols", "HTTP/1.1 1O1 Switching Protocols\r\n\r\n",
          "HTTP/1.1 1012 Odd\r\n\r\n", "HTTP/2.0 101 Switching Protocols\r\n\r\n",
          "HTTP/1.1  101 Switching Protocols\r\n\r\n", "ICY 200 OK\r\n\r\n",
          "HTTP/1.1 101 Switching Protocols\r\nNoColon\r\n\r\n",
          "HTTP/1.1 101 Switching Protocols\r\nBad Name: x\r\n\r\n",
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket"}) {
        ws::ServerResponse r;
        CAPTURE(bad);
        CHECK_FALSE(ws::parse_response(bad, r));
    }
}

TEST_CASE("handshake: check_server_response, client side", "[transport][handshake]") {
    const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
    const std::string good_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    ws::ClientRequest cr;
    cr.host = "h";
    cr.subprotocols = {"phoenix", "v2"};

    auto response = [&](std::string status_line, std::string extra) {
        ws::ServerResponse res;
        REQUIRE(ws::parse_response(status_line + "\r\n" + extra + "\r\n", res));
        return res;
    };
    const std::string std_headers =
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + good_accept +
        "\r\n";
    const std::string ok_line = "HTTP/1.1 101 Switching Protocols";

    SECTION("a correct 101 is accepted, with or without a subprotocol") {
        CHECK(ws::check_server_response(response(ok_line, std_headers), key, cr).empty());
        CHECK(ws::check_server_response(
                  response(ok_line, std_headers + "Sec-WebSocket-Protocol: v2\r\n"), key, cr)
                  .empty());
        CHECK(ws::check_server_response(
                  response(ok_line,
                           "upgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n"
                           "sec-websocket-accept: " +
                               good_accept + "\r\n"),
                  key, cr)
                  .empty());
    }
    SECTION("the server's own 101 passes the client's check") {
        http::Request req;
        REQUIRE(http::parse_request(ws::client_request(cr, key), req) == 0);
        auto text = ws::switching_protocols(req, "phoenix", "").to_string();
        ws::ServerResponse res;
        REQUIRE(ws::parse_response(text, res));
        CHECK(ws::check_server_response(res, key, cr).empty());
    }
    SECTION("wrong status") {
        auto problem = ws::check_server_response(response("HTTP/1.1 200 OK", std_headers), key, cr);
        CHECK(problem == "server answered HTTP 200");
        CHECK_FALSE(
            ws::check_server_response(response("HTTP/1.1 403 Forbidden", ""), key, cr).empty());
    }
    SECTION("bad accept key") {
        auto res = response(ok_line,
                            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n");
        CHECK(ws::check_server_response(res, key, cr) == "bad Sec-WebSocket-Accept");
        // The accept key of a different nonce.
        CHECK(ws::check_server_response(response(ok_line, std_headers), "x3JJHMbDL1EzLkh9GBhXDw==",
                                        cr) == "bad Sec-WebSocket-Accept");
        auto missing = response(ok_line, "Upgrade: websocket\r\nConnection: Upgrade\r\n");
        CHECK(ws::check_server_response(missing, key, cr) == "bad Sec-WebSocket-Accept");
    }
    SECTION("missing Upgrade or Connection") {
        CHECK_FALSE(ws::check_server_response(
                        response(ok_line, "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
                                              good_accept + "\r\n"),
                        key, cr)
                        .empty());
        CHECK_FALSE(ws::check_server_response(
                        response(ok_line, "Upgrade: websocket\r\nSec-WebSocket-Accept: " +
                                              good_accept + "\r\n"),
                        key, cr)
                        .empty());
        CHECK_FALSE(ws::check_server_response(response(ok_line,
                                                       "Upgrade: h2c\r\nConnection: Upgrade\r\n"
                                                       "Sec-WebSocket-Accept: " +
                                                           good_accept + "\r\n"),
                                              key, cr)
                        .empty());
    }
    SECTION("unoffered subprotocol") {
        auto res = response(ok_line, std_headers + "Sec-WebSocket-Protocol: mqtt\r\n");
        CHECK(ws::check_server_response(res, key, cr) ==
              "server chose a subprotocol we did not offer");
        ws::ClientRequest none;
        none.host = "h";
        auto res2 = response(ok_line, std_headers + "Sec-WebSocket-Protocol: phoenix\r\n");
        CHECK_FALSE(ws::check_server_response(res2, key, none).empty());
        // Both, as a list, is not a choice of one.
        auto res3 = response(ok_line, std_headers + "Sec-WebSocket-Protocol: phoenix, v2\r\n");
        CHECK_FALSE(ws::check_server_response(res3, key, cr).empty());
    }
    SECTION("unoffered extension") {
        auto res =
            response(ok_line, std_headers + "Sec-WebSocket-Extensions: permessage-deflate\r\n");
        CHECK(ws::check_server_response(res, key, cr) ==
              "server chose an extension we did not offer");
        ws::ClientRequest offered = cr;
        offered.extensions = "permessage-deflate; client_max_window_bits";
        CHECK(ws::check_server_response(res, key, offered).empty());
    }
}
