// plume::wire values: Payload, the control-message helpers, Result and the
// error category.
#include <catch2/catch.hpp>

#include <plume/wire.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

using namespace plume::wire;
using nlohmann::json;

TEST_CASE("wire: a default Payload is the empty object", "[wire]") {
    Payload p;
    CHECK(p.is_json());
    CHECK_FALSE(p.is_binary());
    CHECK(p.json() == json::object());
    CHECK(p.json().dump() == "{}");
}

TEST_CASE("wire: Payload holds JSON or Binary and compares by content", "[wire]") {
    Payload j = json{{"body", "hi"}};
    CHECK(j.is_json());
    CHECK(j.json()["body"] == "hi");

    Payload b = Binary{std::string("\x00\xff", 2)};
    CHECK(b.is_binary());
    CHECK(b.bytes() == std::string("\x00\xff", 2));
    CHECK_THROWS_AS(b.json(), std::bad_variant_access);
    CHECK_THROWS_AS(j.bytes(), std::bad_variant_access);

    CHECK(j == Payload(json{{"body", "hi"}}));
    CHECK_FALSE(j == Payload(json{{"body", "ho"}}));
    CHECK(b == Payload(Binary{std::string("\x00\xff", 2)}));
    // A JSON string with the same characters is not the same payload.
    CHECK_FALSE(Payload(json("ab")) == Payload(Binary{"ab"}));

    j.json()["n"] = 1;
    CHECK(j.json().size() == 2);
    std::string moved = std::move(b).bytes();
    CHECK(moved.size() == 2);
}

TEST_CASE("wire: a Payload holds any JSON value, not only objects", "[wire]") {
    for (const json& j : {json("str"), json(42), json(), json::array({1, "a"}), json(true)}) {
        Payload p = j;
        CHECK(p.is_json());
        CHECK(p.json() == j);
    }
    CHECK(Payload(json()) != Payload{});  // null is not the default {}
    Message m{"1", "2", "room:x", "ping", json("str")};
    CHECK(reply_ok(m, m.payload).response.json() == "str");
}

TEST_CASE("wire: a Ref is a string or a number, and reads as a std::string", "[wire]") {
    Ref s = "5";
    Ref n = Ref::number("5");
    CHECK_FALSE(s.is_number());
    CHECK(n.is_number());
    CHECK(s.str() == "5");
    CHECK(n.str() == "5");
    // Kinds differ: the number 5 is not the string "5" (Phoenix compares terms).
    CHECK(s != n);
    CHECK(s == Ref("5"));
    CHECK(n == Ref::number("5"));
    CHECK(s == "5");
    CHECK(s == std::string("5"));
    CHECK(n != "5");
    CHECK(std::string("5") == s);
    // Converts to std::string: by reference from an lvalue, by value from an rvalue.
    const std::string& view = s;
    CHECK(view == "5");
    std::optional<Ref> none;
    std::string fallback = none.value_or("none");
    CHECK(fallback == "none");
    std::optional<std::string> as_string = std::optional<Ref>(n);
    CHECK(as_string == "5");
    // Optional refs compare across std::string and Ref.
    std::optional<Ref> a = Ref("x");
    std::optional<std::string> b = "x";
    CHECK(a == b);
    CHECK_FALSE(std::optional<Ref>(Ref::number("1")) == std::optional<std::string>("1"));
}

TEST_CASE("wire: control messages carry the refs Phoenix gives them", "[wire]") {
    SECTION("phx_join: join_ref is the join's own ref") {
        auto m = phx_join("room:lobby", "3", json{{"token", "t"}});
        CHECK(m == Message{"3", "3", "room:lobby", "phx_join", json{{"token", "t"}}});
        CHECK(phx_join("room:lobby", "4").payload == Payload{});
    }
    SECTION("phx_leave") {
        CHECK(phx_leave("room:lobby", "3", "7") ==
              Message{"3", "7", "room:lobby", "phx_leave", Payload{}});
    }
    SECTION("heartbeat: topic phoenix, null join_ref") {
        auto m = heartbeat("9");
        CHECK(m == Message{std::nullopt, "9", "phoenix", "heartbeat", Payload{}});
        CHECK(is_heartbeat(m));
        CHECK_FALSE(is_heartbeat(Message{std::nullopt, "9", "room:1", "heartbeat", {}}));
        CHECK_FALSE(is_heartbeat(Message{std::nullopt, "9", "phoenix", "ping", {}}));
    }
    SECTION("phx_error and phx_close keep a numeric join_ref a number") {
        auto close = phx_close("room:x", Ref::number("1"));
        CHECK(close.join_ref == Ref::number("1"));
        CHECK(close.ref == Ref::number("1"));
    }
    SECTION("phx_error and phx_close: join_ref = ref = the channel's join_ref") {
        CHECK(phx_error("room:lobby", "3") ==
              Message{"3", "3", "room:lobby", "phx_error", json{{"reason", "channel_crash"}}});
        CHECK(phx_close("room:lobby", "3") ==
              Message{"3", "3", "room:lobby", "phx_close", Payload{}});
        CHECK(phx_close("room:lobby", std::nullopt) ==
              Message{std::nullopt, std::nullopt, "room:lobby", "phx_close", Payload{}});
    }
    SECTION("replies echo the request") {
        Message push{"3", "8", "room:lobby", "new_msg", json{{"body", "hi"}}};
        CHECK(reply_ok(push) == Reply{"3", "8", "room:lobby", "ok", Payload{}});
        CHECK(reply_error(push, reason_payload("nope")) ==
              Reply{"3", "8", "room:lobby", "error", json{{"reason", "nope"}}});
        CHECK(reply(push, "pending", json{{"n", 1}}).status == "pending");
    }
    SECTION("heartbeat_reply and unmatched_topic_reply drop the join_ref") {
        Message hb{"5", "9", "phoenix", "heartbeat", {}};
        CHECK(heartbeat_reply(hb) == Reply{std::nullopt, "9", "phoenix", "ok", Payload{}});
        Message stray{"5", "10", "room:gone", "new_msg", {}};
        CHECK(unmatched_topic_reply(stray) ==
              Reply{std::nullopt, "10", "room:gone", "error", json{{"reason", "unmatched topic"}}});
    }
    SECTION("a broadcast as a message has null refs") {
        CHECK(to_message(Broadcast{"room:lobby", "shout", json{{"a", 1}}}) ==
              Message{std::nullopt, std::nullopt, "room:lobby", "shout", json{{"a", 1}}});
    }
    SECTION("event and reason constants are Phoenix's spellings") {
        CHECK(event::join == "phx_join");
        CHECK(event::leave == "phx_leave");
        CHECK(event::reply == "phx_reply");
        CHECK(event::error == "phx_error");
        CHECK(event::close == "phx_close");
        CHECK(event::heartbeat == "heartbeat");
        CHECK(phoenix_topic == "phoenix");
        CHECK(reason::unmatched_topic == "unmatched topic");
        CHECK(reason::join_crashed == "join crashed");
        CHECK(reason::too_many_channels == "too many channels joined");
    }
}

TEST_CASE("wire: Result holds a value or an error_code", "[wire]") {
    plume::Result<int> good = 4;
    CHECK(good);
    CHECK(good.has_value());
    CHECK(*good == 4);
    CHECK_FALSE(good.error());
    CHECK(good.value_or(7) == 4);

    plume::Result<int> bad = error::invalid_topic;
    CHECK_FALSE(bad);
    CHECK(bad.error() == error::invalid_topic);
    CHECK(bad.value_or(7) == 7);
    CHECK_THROWS_AS(bad.value(), std::system_error);

    plume::Result<std::string> s = std::string("abc");
    CHECK(s->size() == 3);
    std::string taken = *std::move(s);
    CHECK(taken == "abc");
}

TEST_CASE("wire: errors have a category and readable messages", "[wire]") {
    std::error_code ec = error::invalid_ref;
    CHECK(std::string(ec.category().name()) == "plume.wire");
    CHECK(ec.message() == "ref must be a string, a number or null");
    for (int e = static_cast<int>(error::invalid_json);
         e <= static_cast<int>(error::unsupported_vsn); ++e) {
        INFO("error " << e);
        CHECK(make_error_code(static_cast<error>(e)).message().find("unknown") ==
              std::string::npos);
    }
}
