// RESP2 encoding and incremental parsing, and Redis URLs.
#include <catch2/catch.hpp>

#include <plume/redis.hpp>

#include <string>
#include <vector>

namespace redis = plume::redis;

TEST_CASE("commands are arrays of bulk strings, binary-safe", "[redis][resp]") {
    std::string out;
    redis::append_command(out, {"SET", "k", std::string_view("a\r\nb\0c", 6)});
    CHECK(out == std::string("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\na\r\nb\0c\r\n", 32));
    std::vector<std::string> args = {"PING"};
    redis::append_command(out, args);
    CHECK(out.substr(32) == "*1\r\n$4\r\nPING\r\n");
}

TEST_CASE("every reply type parses, byte by byte as well as whole", "[redis][resp]") {
    const std::string wire = std::string("+OK\r\n-ERR wrong\r\n:-42\r\n$5\r\nhe\r\no\r\n$-1\r\n") +
                             "*-1\r\n*0\r\n$0\r\n\r\n" +
                             "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n*2\r\n:1\r\n+x\r\n";
    auto check = [](std::vector<redis::Value> v) {
        REQUIRE(v.size() == 9);
        CHECK((v[0].type == redis::Value::Type::simple && v[0].text() == "OK"));
        CHECK((v[1].is_error() && v[1].text() == "ERR wrong"));
        CHECK((v[2].type == redis::Value::Type::integer && v[2].integer == -42));
        CHECK((v[3].type == redis::Value::Type::bulk && v[3].text() == "he\r\no"));
        CHECK(v[4].is_nil());
        CHECK(v[5].is_nil());
        CHECK((v[6].is_array() && v[6].elements.empty()));
        CHECK((v[7].type == redis::Value::Type::bulk && v[7].text().empty()));
        REQUIRE(v[8].is_array());
        REQUIRE(v[8].elements.size() == 3);
        CHECK(v[8].elements[1].text() == "ch");
        CHECK(v[8].elements[2].elements[0].integer == 1);
        CHECK(v[8].elements[2].elements[1].text() == "x");
    };
    {
        redis::Parser p;
        p.feed(wire);
        std::vector<redis::Value> got;
        for (;;) {
            auto r = p.next();
            REQUIRE(r);
            if (!*r) break;
            got.push_back(std::move(**r));
        }
        check(std::move(got));
        CHECK(p.buffered() == 0);
    }
    {
        redis::Parser p;
        std::vector<redis::Value> got;
        for (char c : wire) {
            p.feed(std::string_view(&c, 1));
            for (;;) {
                auto r = p.next();
                REQUIRE(r);
                if (!*r) break;
                got.push_back(std::move(**r));
            }
        }
        check(std::move(got));
    }
}

TEST_CASE("bytes that are not RESP, or beyond the limits, are a protocol error", "[redis][resp]") {
    auto first = [](std::string bytes, redis::ParserLimits limits = {}) {
        redis::Parser p(limits);
        p.feed(bytes);
        return p.next();
    };
    for (const char* bad :
         {"?x\r\n", ":12a\r\n", ":\r\n", "$-2\r\n", "$3\r\nabcd\r\n", "*-5\r\n", "$x\r\n"}) {
        INFO(bad);
        auto r = first(bad);
        REQUIRE(!r);
        CHECK(r.error() == redis::error::protocol_error);
    }
    redis::ParserLimits small;
    small.max_bulk = 8;
    small.max_elements = 4;
    small.max_depth = 3;
    CHECK(!first("$9\r\n", small));                          // announced too large: refused at once
    CHECK(!first("*5\r\n", small));                          // too many elements
    CHECK(!first("*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", small));  // too deep
    CHECK(first("*1\r\n*1\r\n:1\r\n", small));
    // A line that never ends is refused once it is longer than any reply could be.
    auto r = first("+" + std::string(200, 'a'), small);
    CHECK(!r);
    // A huge announced array does not allocate what it announces.
    auto big = first("*1000000\r\n:1\r\n");
    REQUIRE(big);
    CHECK(!*big);  // needs more bytes, and reserved only what is there
}

TEST_CASE("Redis URLs", "[redis][url]") {
    auto u = redis::parse_url("redis://127.0.0.1:6380");
    REQUIRE(u);
    CHECK(u->host == "127.0.0.1");
    CHECK(u->port == 6380);
    CHECK(u->password.empty());
    CHECK(u->db == 0);

    u = redis::parse_url("redis://:s%40cret@redis.internal/3");
    REQUIRE(u);
    CHECK(u->host == "redis.internal");
    CHECK(u->port == 6379);
    CHECK(u->username.empty());
    CHECK(u->password == "s@cret");
    CHECK(u->db == 3);

    u = redis::parse_url("redis://app:pw@[::1]:7000/0");
    REQUIRE(u);
    CHECK(u->host == "::1");
    CHECK(u->port == 7000);
    CHECK(u->username == "app");
    CHECK(u->password == "pw");

    u = redis::parse_url("redis://localhost");
    REQUIRE(u);
    CHECK(u->host == "localhost");

    for (const char* bad : {"", "127.0.0.1:6379", "http://127.0.0.1", "rediss://h", "redis://",
                            "redis://:6379", "redis://h:", "redis://h:0", "redis://h:65536",
                            "redis://h:12x", "redis://h/x", "redis://h/-1", "redis://[::1",
                            "redis://[::1]x", "redis://a b", "redis://:%zz@h", "redis://:%4@h"}) {
        INFO(bad);
        auto r = redis::parse_url(bad);
        REQUIRE(!r);
        CHECK(r.error() == redis::error::bad_url);
        CHECK(r.error().message() == "bad Redis URL");
    }
}
