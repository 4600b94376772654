// Unit tests for plume/transport/http.hpp: the strict-but-tolerant HTTP/1.1
// request parser, query decoding, and response serialization.
#include <catch2/catch.hpp>

#include <plume/transport/http.hpp>

#include <string>
#include <string_view>

namespace http = plume::transport::http;

namespace {

const std::string upgrade_head =
    "GET /socket/websocket?token=abc&vsn=2.0.0 HTTP/1.1\r\n"
    "Host: example.com:4000\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Origin: http://example.com\r\n"
    "\r\n";

// parse_request's status for a request line plus a Host header.
int status_of_line(const std::string& request_line) {
    http::Request req;
    return http::parse_request(request_line + "\r\nHost: h\r\n\r\n", req);
}

// parse_request's status for a valid request line plus the given header lines.
int status_of_headers(const std::string& header_lines) {
    http::Request req;
    return http::parse_request("GET / HTTP/1.1\r\n" + header_lines + "\r\n", req);
}

}  // namespace

TEST_CASE("http: a valid upgrade request parses completely", "[transport][http]") {
    http::Request req;
    REQUIRE(http::parse_request(upgrade_head, req) == 0);
    CHECK(req.method == "GET");
    CHECK(req.target == "/socket/websocket?token=abc&vsn=2.0.0");
    CHECK(req.path == "/socket/websocket");
    CHECK(req.query_string == "token=abc&vsn=2.0.0");
    CHECK(req.version_minor == 1);
    REQUIRE(req.headers.size() == 6);
    CHECK(req.headers[0].first == "Host");  // names kept as sent
    CHECK(req.headers[0].second == "example.com:4000");
    CHECK(req.header("host") == "example.com:4000");
    CHECK(req.header("upgrade") == "websocket");
    CHECK(req.header("sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ==");
    CHECK(req.header("origin") == "http://example.com");
    CHECK(req.header("missing").empty());
    CHECK(req.has_header("Connection"));
    CHECK_FALSE(req.has_header("Cookie"));
    REQUIRE(req.query.size() == 2);
    CHECK(req.query_param("token") == std::optional<std::string_view>("abc"));
    CHECK(req.query_param("vsn") == std::optional<std::string_view>("2.0.0"));
    CHECK_FALSE(req.query_param("nope").has_value());
}

TEST_CASE("http: header names are case-insensitive, values trimmed", "[transport][http]") {
    http::Request req;
    REQUIRE(http::parse_request("GET / HTTP/1.1\r\n"
                                "hOsT:    example.com \t\r\n"
                                "UPGRADE:websocket\r\n"
                                "x-empty:\r\n"
                                "X-Tabbed:\tinner  space\t\r\n"
                                "\r\n",
                                req) == 0);
    CHECK(req.header("Host") == "example.com");
    CHECK(req.header("HOST") == "example.com");
    CHECK(req.header("upgrade") == "websocket");
    CHECK(req.has_header("X-EMPTY"));
    CHECK(req.header("x-empty").empty());
    CHECK(req.header("x-tabbed") == "inner  space");  // inner whitespace is kept
}

TEST_CASE("http: repeated list headers combine; tokens are found case-insensitively",
          "[transport][http]") {
    http::Request req;
    REQUIRE(http::parse_request("GET / HTTP/1.1\r\nHost: h\r\n"
                                "Connection: keep-alive, Upgrade\r\n"
                                "Sec-WebSocket-Protocol: a, b\r\n"
                                "sec-websocket-protocol: c\r\n"
                                "\r\n",
                                req) == 0);
    CHECK(http::has_token(req.header_list("connection"), "upgrade"));
    CHECK(http::has_token(req.header_list("connection"), "KEEP-ALIVE"));
    CHECK_FALSE(http::has_token(req.header_list("connection"), "close"));
    CHECK(req.header_count("Sec-WebSocket-Protocol") == 2);
    CHECK(req.header("sec-websocket-protocol") == "a, b");  // the first one
    CHECK(req.header_list("sec-websocket-protocol") == "a, b, c");
    CHECK(req.header_list("absent").empty());
    CHECK(req.header_count("absent") == 0);
}

TEST_CASE("http: list token helpers", "[transport][http]") {
    std::vector<std::string> tokens;
    http::for_each_token(" a ,b,, \tc\t,  ,", [&](std::string_view t) { tokens.emplace_back(t); });
    CHECK(tokens == std::vector<std::string>{"a", "b", "c"});
    tokens.clear();
    http::for_each_token("", [&](std::string_view t) { tokens.emplace_back(t); });
    CHECK(tokens.empty());
    CHECK(http::has_token("keep-alive, Upgrade", "upgrade"));
    CHECK(http::has_token("Upgrade", "upgrade"));
    CHECK_FALSE(http::has_token("Upgraded, keep-alive", "upgrade"));  // whole tokens only
    CHECK_FALSE(http::has_token("", "upgrade"));
    CHECK(http::iequals("Sec-WebSocket-Key", "sec-websocket-key"));
    CHECK_FALSE(http::iequals("abc", "abd"));
    CHECK_FALSE(http::iequals("abc", "abcd"));
    CHECK(http::trim(" \t x y \t ") == "x y");
    CHECK(http::trim(" \t ").empty());
}

TEST_CASE("http: query decoding", "[transport][http]") {
    http::Request req;
    REQUIRE(http::parse_request("GET /p?a=1&b=two+words&c=%41%2b%2F&a=2&empty=&flag&&=v&k%20x=%7e "
                                "HTTP/1.1\r\nHost: h\r\n\r\n",
                                req) == 0);
    CHECK(req.query_string == "a=1&b=two+words&c=%41%2b%2F&a=2&empty=&flag&&=v&k%20x=%7e");
    http::Fields expected = {{"a", "1"},    {"b", "two words"}, {"c", "A+/"}, {"a", "2"},
                             {"empty", ""}, {"flag", ""},       {"", "v"},    {"k x", "~"}};
    CHECK(req.query == expected);
    CHECK(req.query_param("a") == std::optional<std::string_view>("1"));  // the first
    CHECK(req.query_param("empty") == std::optional<std::string_view>(""));
    CHECK(req.query_param("flag") == std::optional<std::string_view>(""));

    // A '?' with nothing after it, and no '?' at all.
    http::Request r2;
    REQUIRE(http::parse_request("GET /x? HTTP/1.1\r\nHost: h\r\n\r\n", r2) == 0);
    CHECK(r2.path == "/x");
    CHECK(r2.query.empty());
    http::Request r3;
    REQUIRE(http::parse_request("GET /x HTTP/1.1\r\nHost: h\r\n\r\n", r3) == 0);
    CHECK(r3.query_string.empty());
    CHECK(r3.query.empty());
}

TEST_CASE("http: bad escapes in query or path are refused with 400", "[transport][http]") {
    for (const char* target : {"/p?a=%", "/p?a=%4", "/p?a=%G1", "/p?a=%1G", "/p?%zz=1",
                               "/p?a=ok&b=%", "/bad%", "/bad%2", "/bad%XYpath"}) {
        CAPTURE(target);
        CHECK(status_of_line(std::string("GET ") + target + " HTTP/1.1") == 400);
    }
}

TEST_CASE("http: percent_decode", "[transport][http]") {
    CHECK(http::percent_decode("") == std::optional<std::string>(""));
    CHECK(http::percent_decode("a%20b") == std::optional<std::string>("a b"));
    CHECK(http::percent_decode("%41") == std::optional<std::string>("A"));
    CHECK(http::percent_decode("x%4a%4A") == std::optional<std::string>("xJJ"));
    CHECK(http::percent_decode("a+b") == std::optional<std::string>("a b"));
    CHECK(http::percent_decode("%00") == std::optional<std::string>(std::string(1, '\0')));
    CHECK(http::percent_decode("%FF") == std::optional<std::string>("\xFF"));
    CHECK_FALSE(http::percent_decode("%").has_value());
    CHECK_FALSE(http::percent_decode("ab%4").has_value());
    CHECK_FALSE(http::percent_decode("%-1").has_value());
}

TEST_CASE("http: the path is percent-decoded but '+' stays literal", "[transport][http]") {
    http::Request req;
    REQUIRE(http::parse_request("GET /a%20b/c+d?q=c+d HTTP/1.1\r\nHost: h\r\n\r\n", req) == 0);
    CHECK(req.path == "/a b/c+d");
    CHECK(req.query_param("q") == std::optional<std::string_view>("c d"));
    CHECK(req.target == "/a%20b/c+d?q=c+d");
}

TEST_CASE("http: absolute-form and asterisk targets", "[transport][http]") {
    http::Request req;
    REQUIRE(http::parse_request(
                "GET http://example.com:8080/socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: "
                "example.com\r\n\r\n",
                req) == 0);
    CHECK(req.target == "http://example.com:8080/socket/websocket?vsn=2.0.0");
    CHECK(req.path == "/socket/websocket");
    CHECK(req.query_param("vsn") == std::optional<std::string_view>("2.0.0"));

    http::Request bare;
    REQUIRE(http::parse_request("GET ws://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
                                bare) == 0);
    CHECK(bare.path == "/");

    http::Request star;
    CHECK(http::parse_request("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", star) == 0);
    CHECK(star.method == "OPTIONS");
    CHECK(star.target == "*");
    CHECK(star.path == "*");
    // The head after an asterisk target is parsed and checked like any other.
    CHECK(star.header("host") == "h");
    http::Request star_no_host;
    CHECK(http::parse_request("OPTIONS * HTTP/1.1\r\n\r\n", star_no_host) == 400);
    http::Request star_bad_header;
    CHECK(http::parse_request("OPTIONS * HTTP/1.1\r\nHost: h\r\nNo colon\r\n\r\n",
                              star_bad_header) == 400);

    CHECK(status_of_line("GET example.com/path HTTP/1.1") == 400);  // neither form
}

TEST_CASE("http: malformed request lines are refused", "[transport][http]") {
    CHECK(status_of_line("GET / HTTP/1.1") == 0);
    CHECK(status_of_line("GET / HTTP/1.0") == 0);
    CHECK(status_of_line("GET / HTTP/1.9") == 0);
    // Wrong number of spaces or parts.
    CHECK(status_of_line("GET") == 400);
    CHECK(status_of_line("GET /") == 400);
    CHECK(status_of_line("GET  / HTTP/1.1") == 400);
    CHECK(status_of_line("GET /  HTTP/1.1") == 400);
    CHECK(status_of_line("GET / HTTP/1.1 ") == 400);
    CHECK(status_of_line(" GET / HTTP/1.1") == 400);
    CHECK(status_of_line("GET / HTTP/1.1 extra") == 400);
    CHECK(status_of_line("GET\t/\tHTTP/1.1") == 400);
    CHECK(status_of_line("") == 400);
    // The method must be a token.
    CHECK(status_of_line("G(T / HTTP/1.1") == 400);
    CHECK(status_of_line("GE\x01T / HTTP/1.1") == 400);
    // Control characters or DEL in the target.
    CHECK(status_of_line("GET /a\x01z HTTP/1.1") == 400);
    CHECK(status_of_line("GET /a\x7Fz HTTP/1.1") == 400);
    CHECK(status_of_line("GET /a\tz HTTP/1.1") == 400);
    // No CRLF at all.
    http::Request req;
    CHECK(http::parse_request("GET / HTTP/1.1", req) == 400);
    CHECK(http::parse_request("GET / HTTP/1.1\nHost: h\n\n", req) == 400);
}

TEST_CASE("http: bad versions: 505 for other HTTP versions, 400 for garbage", "[transport][http]") {
    CHECK(status_of_line("GET / HTTP/2.0") == 505);
    CHECK(status_of_line("GET / HTTP/0.9") == 505);
    CHECK(status_of_line("GET / HTTP/3") == 505);
    CHECK(status_of_line("GET / http/1.1") == 400);
    CHECK(status_of_line("GET / HTTX/1.1") == 400);
    CHECK(status_of_line("GET / FOO") == 400);
}

TEST_CASE("http: malformed header lines are refused with 400", "[transport][http]") {
    CHECK(status_of_headers("Host: h\r\n") == 0);
    CHECK(status_of_headers("Host: h\r\nNoColonHere\r\n") == 400);
    CHECK(status_of_headers("Host: h\r\nName : value\r\n") == 400);           // space before colon
    CHECK(status_of_headers("Host: h\r\nName\t: value\r\n") == 400);          // tab before colon
    CHECK(status_of_headers("Host: h\r\n: value\r\n") == 400);                // empty name
    CHECK(status_of_headers("Host: h\r\nX-A: 1\r\n  continued\r\n") == 400);  // obs-fold
    CHECK(status_of_headers("Host: h\r\nX-A: 1\r\n\tcontinued\r\n") == 400);  // obs-fold
    CHECK(status_of_headers(" Host: h\r\n") == 400);                          // leading space
    CHECK(status_of_headers("Host: h\r\nX-A: a\x01z\r\n") == 400);            // control char
    CHECK(status_of_headers("Host: h\r\nX-A: a\x7Fz\r\n") == 400);            // DEL
    CHECK(status_of_headers("Host: h\r\nX-A: a\rz\r\n") == 400);              // bare CR
    CHECK(status_of_headers("Host: h\r\nX-A: a\nz\r\n") == 400);              // bare LF
    CHECK(status_of_headers("Host: h\r\nX(A): 1\r\n") == 400);                // not a token
    CHECK(status_of_headers("Host: h\r\nX-A: tab\there\r\n") == 0);           // HTAB is allowed
    CHECK(status_of_headers("Host: h\r\nX-A: caf\xC3\xA9\r\n") == 0);         // obs-text allowed
    CHECK(status_of_headers("Host: h\r\nX-A: a:b:c\r\n") == 0);               // colons in the value
    // A head cut before its blank line: a header line without CRLF.
    http::Request req;
    CHECK(http::parse_request("GET / HTTP/1.1\r\nHost: h", req) == 400);
}

TEST_CASE("http: Host is required on HTTP/1.1 only", "[transport][http]") {
    http::Request r11;
    CHECK(http::parse_request("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", r11) == 400);
    http::Request r10;
    CHECK(http::parse_request("GET / HTTP/1.0\r\n\r\n", r10) == 0);
    CHECK(r10.version_minor == 0);
    http::Request lower;
    CHECK(http::parse_request("GET / HTTP/1.1\r\nhost: x\r\n\r\n", lower) == 0);
}

TEST_CASE("http: find_head_end across every split point", "[transport][http]") {
    const std::string head = upgrade_head;
    const std::string buffer = head + "trailing frame bytes";
    CHECK(http::find_head_end(buffer) == head.size());
    CHECK(http::find_head_end(head.substr(0, head.size() - 1)) == std::string_view::npos);
    CHECK(http::find_head_end("") == std::string_view::npos);
    CHECK(http::find_head_end("\r\n\r\n") == 4);
    CHECK(http::find_head_end("a\r\n\r") == std::string_view::npos);
    CHECK(http::find_head_end("a\n\n") == std::string_view::npos);
    // Data arrives in two reads; the second search starts at the old end.
    for (std::size_t at = 0; at <= head.size(); ++at) {
        std::string_view first = std::string_view(buffer).substr(0, at);
        auto r1 = http::find_head_end(first);
        CAPTURE(at);
        if (at == head.size()) {
            CHECK(r1 == head.size());
            continue;
        }
        REQUIRE(r1 == std::string_view::npos);
        CHECK(http::find_head_end(buffer, at) == head.size());
    }
    // Byte by byte, searching from the previous size each time.
    std::size_t found = std::string_view::npos;
    for (std::size_t n = 1; n <= buffer.size() && found == std::string_view::npos; ++n)
        found = http::find_head_end(std::string_view(buffer).substr(0, n), n - 1);
    CHECK(found == head.size());
}

TEST_CASE("http: Response::to_string", "[transport][http]") {
    http::Response ok;
    ok.body = "hello";
    ok.set("Content-Type", "text/plain");
    CHECK(ok.to_string() ==
          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
          "Content-Length: 5\r\n\r\nhello");

    http::Response sw;
    sw.status = 101;
    sw.set("Upgrade", "websocket").set("Connection", "Upgrade");
    CHECK(sw.to_string() ==
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");

    http::Response empty;
    empty.status = 404;
    CHECK(empty.to_string() ==
          "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");

    http::Response odd;
    odd.status = 299;
    CHECK(odd.to_string() ==
          "HTTP/1.1 299 Unknown\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");

    auto err = http::error_response(400, "bad key");
    CHECK(err.status == 400);
    CHECK(err.body == "Bad Request: bad key\n");
    CHECK(err.to_string() ==
          "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
          "Connection: close\r\nContent-Length: 21\r\n\r\nBad Request: bad key\n");
}

TEST_CASE("http: reason phrases", "[transport][http]") {
    CHECK(http::reason_phrase(101) == "Switching Protocols");
    CHECK(http::reason_phrase(400) == "Bad Request");
    CHECK(http::reason_phrase(403) == "Forbidden");
    CHECK(http::reason_phrase(404) == "Not Found");
    CHECK(http::reason_phrase(426) == "Upgrade Required");
    CHECK(http::reason_phrase(431) == "Request Header Fields Too Large");
    CHECK(http::reason_phrase(505) == "HTTP Version Not Supported");
    CHECK(http::reason_phrase(999) == "Unknown");
}

TEST_CASE("http: token characters", "[transport][http]") {
    CHECK(http::is_token("Sec-WebSocket-Key"));
    CHECK(http::is_token("!#$%&'*+-.^_`|~09azAZ"));
    CHECK_FALSE(http::is_token(""));
    for (char c : std::string("()<>@,;:\\\"/[]?={} \t\x01\x7F"))
        CHECK_FALSE(http::is_tchar(c));
}
