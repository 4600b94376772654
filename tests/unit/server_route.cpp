// HTTP route patterns and the route table (plume/server/route.hpp): pure
// functions, no sockets. The endpoint over real sockets is in server_endpoint.cpp.
#include <catch2/catch.hpp>

#include <plume/server/route.hpp>

#include <stdexcept>

namespace ps = plume::server;
using ps::MatchStatus;

namespace {

MatchStatus match(std::string_view pattern, std::string_view path, ps::RouteParams& params) {
    return ps::RoutePattern(std::string(pattern)).match(path, params);
}

plume::transport::http::Response text(std::string body) {
    plume::transport::http::Response r;
    r.body = std::move(body);
    return r;
}

std::string call(const ps::RouteTable::Lookup& l) {
    plume::transport::http::Request req;
    return (*l.handler)(req, l.params).body;
}

}  // namespace

TEST_CASE("route pattern: :name segments capture one decoded segment", "[server][route]") {
    ps::RouteParams p;
    CHECK(match("/api/token/:user_id", "/api/token/alice", p) == MatchStatus::matched);
    CHECK(p["user_id"] == "alice");
    CHECK(p.size() == 1);

    CHECK(match("/api/token/:user_id", "/api/token/al%20ice", p) == MatchStatus::matched);
    CHECK(p["user_id"] == "al ice");
    // '+' is literal in a path; an encoded '/' stays inside its segment.
    CHECK(match("/api/token/:user_id", "/api/token/a+b%2Fc", p) == MatchStatus::matched);
    CHECK(p["user_id"] == "a+b/c");
    CHECK(match("/api/token/:user_id", "/api/token/%C3%A9", p) == MatchStatus::matched);
    CHECK(p["user_id"] == "\xC3\xA9");

    CHECK(match("/rooms/:room/messages/:id", "/rooms/lobby/messages/42", p) ==
          MatchStatus::matched);
    CHECK(p["room"] == "lobby");
    CHECK(p["id"] == "42");
    CHECK(p["missing"].empty());
    CHECK(p.find("missing") == nullptr);
    CHECK(p.contains("room"));
}

TEST_CASE("route pattern: segment counts, literals and empty segments", "[server][route]") {
    ps::RouteParams p;
    CHECK(match("/api/token/:user_id", "/api/token", p) == MatchStatus::no_match);
    CHECK(match("/api/token/:user_id", "/api/token/", p) == MatchStatus::no_match);
    CHECK(match("/api/token/:user_id", "/api/token/a/b", p) == MatchStatus::no_match);
    CHECK(match("/api/token/:user_id", "/api/token//", p) == MatchStatus::no_match);
    CHECK(match("/api/token/:user_id", "/api/tokens/a", p) == MatchStatus::no_match);
    CHECK(match("/api/token/:user_id", "/API/token/a", p) == MatchStatus::no_match);
    CHECK(match("/api/token/:user_id", "api/token/a", p) == MatchStatus::no_match);
    CHECK(match("/api/token/:user_id", "", p) == MatchStatus::no_match);
    // Literal segments compare decoded, as exact routes do.
    CHECK(match("/api/token/:user_id", "/api/%74oken/a", p) == MatchStatus::matched);
    CHECK(p["user_id"] == "a");
    // A parameter in the middle of a segment is not one: literal.
    CHECK(match("/files/a:b", "/files/a:b", p) == MatchStatus::matched);
    CHECK(p.empty());
}

TEST_CASE("route pattern: bad encodings and NUL are bad requests", "[server][route]") {
    ps::RouteParams p;
    CHECK(match("/api/token/:user_id", "/api/token/%zz", p) == MatchStatus::bad_request);
    CHECK(match("/api/token/:user_id", "/api/token/%4", p) == MatchStatus::bad_request);
    CHECK(match("/api/token/:user_id", "/api/token/a%", p) == MatchStatus::bad_request);
    CHECK(match("/api/token/:user_id", "/api/token/a%00b", p) == MatchStatus::bad_request);
    CHECK(match("/files/*path", "/files/a/%00", p) == MatchStatus::bad_request);
    CHECK(p.empty());
    // A path that is not the route's is no_match, bad escapes elsewhere or not.
    CHECK(match("/api/token/:user_id", "/other/x/%zz", p) == MatchStatus::no_match);
}

TEST_CASE("route pattern: a trailing *glob takes the rest of the path", "[server][route]") {
    ps::RouteParams p;
    CHECK(match("/files/*path", "/files/a/b%20c/d.txt", p) == MatchStatus::matched);
    CHECK(p["path"] == "a/b c/d.txt");
    CHECK(match("/files/*path", "/files/x", p) == MatchStatus::matched);
    CHECK(p["path"] == "x");
    CHECK(match("/files/*path", "/files", p) == MatchStatus::matched);
    CHECK(p["path"] == "");
    CHECK(match("/files/*path", "/filesx", p) == MatchStatus::no_match);
    CHECK(match("/u/:id/*rest", "/u/7/a/b", p) == MatchStatus::matched);
    CHECK(p["id"] == "7");
    CHECK(p["rest"] == "a/b");
    CHECK(match("/u/:id/*rest", "/u", p) == MatchStatus::no_match);
}

TEST_CASE("route pattern: exact patterns and malformed patterns", "[server][route]") {
    ps::RouteParams p;
    ps::RoutePattern exact("/token");
    CHECK(exact.is_exact());
    CHECK(exact.match("/token", p) == MatchStatus::matched);
    CHECK(exact.match("/tok%65n", p) == MatchStatus::matched);
    CHECK(exact.match("/token/", p) == MatchStatus::no_match);
    CHECK(exact.match("/tokens", p) == MatchStatus::no_match);
    CHECK_FALSE(ps::RoutePattern("/a/:b").is_exact());

    CHECK_THROWS_AS(ps::RoutePattern("/a/:"), std::invalid_argument);
    CHECK_THROWS_AS(ps::RoutePattern("/a/*"), std::invalid_argument);
    CHECK_THROWS_AS(ps::RoutePattern("/a/:b-c"), std::invalid_argument);
    CHECK_THROWS_AS(ps::RoutePattern("/a/:id/:id"), std::invalid_argument);
    CHECK_THROWS_AS(ps::RoutePattern("/a/*rest/b"), std::invalid_argument);
    CHECK_THROWS_AS(ps::RoutePattern("a/:id"), std::invalid_argument);
}

TEST_CASE("raw_path_of and decode_path_segment", "[server][route]") {
    CHECK(ps::raw_path_of("/a%2Fb?x=1") == "/a%2Fb");
    CHECK(ps::raw_path_of("/a") == "/a");
    CHECK(ps::raw_path_of("http://host:4000/a/b?q") == "/a/b");
    CHECK(ps::raw_path_of("http://host") == "/");
    CHECK(ps::raw_path_of("*").empty());
    CHECK(ps::decode_path_segment("a+b%41") == "a+bA");
    CHECK_FALSE(ps::decode_path_segment("%G0"));
    CHECK_FALSE(ps::decode_path_segment("%00"));
    CHECK_FALSE(ps::decode_path_segment(std::string_view("a\0b", 3)));
}

TEST_CASE("route table: exact routes win, then registration order; methods", "[server][route]") {
    ps::RouteTable t;
    t.add("GET", "/api/token/:user_id",
          [](const auto&, const ps::RouteParams& p) { return text("param " + p["user_id"]); });
    t.add("GET", "/api/token/new", [](const auto&, const auto&) { return text("exact"); });
    t.add("GET", "/api/:kind/:id", [](const auto&, const auto&) { return text("later"); });
    t.add("POST", "/api/token/:user_id", [](const auto&, const auto&) { return text("post"); });

    using S = ps::RouteTable::Status;
    auto l = t.find("GET", "/api/token/new", "/api/token/new");
    REQUIRE(l.status == S::matched);
    CHECK(call(l) == "exact");
    l = t.find("GET", "/api/token/bob?x=1", "/api/token/bob");
    REQUIRE(l.status == S::matched);
    CHECK(call(l) == "param bob");
    CHECK(*l.pattern == "/api/token/:user_id");
    l = t.find("HEAD", "/api/token/bob", "/api/token/bob");
    REQUIRE(l.status == S::matched);
    CHECK(call(l) == "param bob");
    l = t.find("GET", "/api/user/9", "/api/user/9");
    REQUIRE(l.status == S::matched);
    CHECK(call(l) == "later");
    // POST goes to the POST route even where an exact GET route has the path.
    l = t.find("POST", "/api/token/new", "/api/token/new");
    REQUIRE(l.status == S::matched);
    CHECK(call(l) == "post");

    l = t.find("DELETE", "/api/token/bob", "/api/token/bob");
    CHECK(l.status == S::method_not_allowed);
    CHECK(l.allow == "GET, HEAD, POST");
    l = t.find("POST", "/api/user/9", "/api/user/9");
    CHECK(l.status == S::method_not_allowed);
    CHECK(l.allow == "GET, HEAD");
    CHECK(t.find("GET", "/nothing", "/nothing").status == S::none);
    CHECK(t.find("POST", "/nothing", "/nothing").status == S::none);
    CHECK(t.find("GET", "/api/token/%zz", "/api/token/%zz").status == S::bad_request);

    // Re-adding the same method and pattern replaces the handler.
    t.add("GET", "/api/token/new", [](const auto&, const auto&) { return text("replaced"); });
    CHECK(call(t.find("GET", "/api/token/new", "/api/token/new")) == "replaced");
    CHECK_THROWS_AS(t.add("G T", "/x", [](const auto&, const auto&) { return text(""); }),
                    std::invalid_argument);
}

TEST_CASE("make_route_handler accepts one- and two-argument handlers", "[server][route]") {
    int calls = 0;
    auto one = ps::make_route_handler([&](const plume::transport::http::Request& r) mutable {
        ++calls;
        return text(r.path);
    });
    auto two = ps::make_route_handler([](const plume::transport::http::Request&,
                                         const ps::RouteParams& p) { return text(p["x"]); });
    plume::transport::http::Request req;
    req.path = "/p";
    ps::RouteParams params;
    params.set("x", "y");
    CHECK(one(req, params).body == "/p");
    CHECK(two(req, params).body == "y");
    CHECK(calls == 1);
    STATIC_REQUIRE_FALSE(ps::RouteHandlerFn<int>);
    STATIC_REQUIRE_FALSE(ps::RouteHandlerFn<void (*)(const plume::transport::http::Request&)>);
}
