// V2 JSON text frames: [join_ref, ref, topic, event, payload]. Byte-exact
// output for every control event (phoenix-protocol.md sections 2 and 3), round
// trips, and a clear error for every malformed input.
#include <catch2/catch.hpp>

#include <plume/wire.hpp>

#include <cstddef>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

using namespace plume::wire;
using nlohmann::json;

namespace {

Result<Message> decode_text(std::string_view text) {
    return V2Json::decode(FrameView::text(text));
}

std::error_code decode_error(std::string_view text) {
    return decode_text(text).error();
}

// The text frame a server sends for `value`, checked to be a text frame.
template <class T>
std::string server_text(const T& value) {
    auto frame = V2Json::encode(value);
    REQUIRE(frame);
    CHECK_FALSE(frame->is_binary);
    return frame->bytes;
}

std::string client_text(const Message& m) {
    auto frame = V2Json::encode_for_server(m);
    REQUIRE(frame);
    CHECK_FALSE(frame->is_binary);
    return frame->bytes;
}

}  // namespace

static_assert(Serializer<V2Json>);
static_assert(ClientSerializer<V2Json>);
static_assert(V2Json::vsn == "2.0.0");

// A policy missing one encode overload is not a Serializer.
struct NotASerializer {
    static constexpr std::string_view vsn = "0.0.1";
    static Result<Message> decode(FrameView);
    static Result<Frame> encode(const Message&);
};
static_assert(!Serializer<NotASerializer>);

TEST_CASE("v2 json: decodes the client frames of phoenix.js", "[wire][v2]") {
    SECTION("join") {
        auto m = decode_text(R"(["1","1","room:lobby","phx_join",{"token":"abc"}])");
        REQUIRE(m);
        CHECK(m->join_ref == "1");
        CHECK(m->ref == "1");
        CHECK(m->topic == "room:lobby");
        CHECK(m->event == event::join);
        CHECK(m->payload.json() == json{{"token", "abc"}});
    }
    SECTION("push") {
        auto m = decode_text(R"(["1","5","room:lobby","new_msg",{"body":"hi"}])");
        REQUIRE(m);
        CHECK(*m == Message{"1", "5", "room:lobby", "new_msg", json{{"body", "hi"}}});
    }
    SECTION("leave") {
        auto m = decode_text(R"(["1","7","room:lobby","phx_leave",{}])");
        REQUIRE(m);
        CHECK(*m == phx_leave("room:lobby", "1", "7"));
    }
    SECTION("heartbeat") {
        auto m = decode_text(R"([null,"9","phoenix","heartbeat",{}])");
        REQUIRE(m);
        CHECK(*m == heartbeat("9"));
        CHECK(is_heartbeat(*m));
    }
    SECTION("null refs, whitespace, unicode and escapes") {
        auto m = decode_text(
            " [ null , null , \"room:\\u00e9\\n\" , \"caf\xc3\xa9\" , {\"k\" : [1, 2.5, true]} ] ");
        REQUIRE(m);
        CHECK_FALSE(m->join_ref);
        CHECK_FALSE(m->ref);
        CHECK(m->topic == "room:\xc3\xa9\n");
        CHECK(m->event == "caf\xc3\xa9");
        CHECK(m->payload.json()["k"][1] == 2.5);
    }
    SECTION("elements after the fifth are ignored, as Phoenix does") {
        auto m = decode_text(R"(["1","5","room:lobby","new_msg",{"a":1},"extra",{"b":2},[3]])");
        REQUIRE(m);
        CHECK(*m == Message{"1", "5", "room:lobby", "new_msg", json{{"a", 1}}});
    }
}

TEST_CASE("v2 json: malformed text frames give a clear error", "[wire][v2]") {
    SECTION("not JSON") {
        CHECK(decode_error("") == error::invalid_json);
        CHECK(decode_error("hello") == error::invalid_json);
        CHECK(decode_error(R"(["1","1","t","e",{})") == error::invalid_json);
        CHECK(decode_error(R"(["1","1","t","e",{}]])") == error::invalid_json);
        CHECK(decode_error(R"(["1","1","t","e",{},])") == error::invalid_json);
        CHECK(decode_error("[\"1\",\"1\",\"t\xff\",\"e\",{}]") ==
              error::invalid_json);  // bad UTF-8
        CHECK(decode_error(R"(["1","1","t","e",{}] // comment)") == error::invalid_json);
    }
    SECTION("not an array") {
        CHECK(decode_error(R"({"topic":"t","event":"e","payload":{},"ref":"1"})") ==
              error::not_an_array);
        CHECK(decode_error(R"("string")") == error::not_an_array);
        CHECK(decode_error("42") == error::not_an_array);
        CHECK(decode_error("null") == error::not_an_array);
        CHECK(decode_error("true") == error::not_an_array);
    }
    SECTION("fewer than five elements") {
        CHECK(decode_error("[]") == error::too_few_elements);
        CHECK(decode_error(R"(["1"])") == error::too_few_elements);
        CHECK(decode_error(R"(["1","1","room:lobby","phx_join"])") == error::too_few_elements);
    }
    SECTION("refs must be strings, numbers or null") {
        CHECK(decode_error(R"([{},"1","t","e",{}])") == error::invalid_join_ref);
        CHECK(decode_error(R"([[],"1","t","e",{}])") == error::invalid_join_ref);
        CHECK(decode_error(R"([false,"1","t","e",{}])") == error::invalid_join_ref);
        CHECK(decode_error(R"(["1",true,"t","e",{}])") == error::invalid_ref);
        CHECK(decode_error(R"(["1",{"a":1},"t","e",{}])") == error::invalid_ref);
    }
    SECTION("topic and event must be strings") {
        CHECK(decode_error(R"(["1","1",null,"e",{}])") == error::invalid_topic);
        CHECK(decode_error(R"(["1","1",42,"e",{}])") == error::invalid_topic);
        CHECK(decode_error(R"(["1","1",{"a":1},"e",{}])") == error::invalid_topic);
        CHECK(decode_error(R"(["1","1","t",null,{}])") == error::invalid_event);
        CHECK(decode_error(R"(["1","1","t",["e"],{}])") == error::invalid_event);
    }
    SECTION("the first bad field is the one reported") {
        CHECK(decode_error(R"([true,2,3,4,5])") == error::invalid_join_ref);
        CHECK(decode_error(R"([1,2,3,4,5])") == error::invalid_topic);
        CHECK(decode_error(R"([null,null,3,4,5])") == error::invalid_topic);
    }
    SECTION("the error names the problem") {
        CHECK(decode_error("[]").message() == "message array has fewer than 5 elements");
        CHECK(decode_error(R"(["1","1",7,"e",{}])").message() == "topic must be a string");
    }
}

TEST_CASE("v2 json: a payload may be any JSON value, as in Phoenix", "[wire][v2]") {
    // Phoenix accepts push("ev", "str"), numbers, null and arrays, and a
    // channel echoes them in replies.
    for (const char* payload : {R"("str")", "42", "-1.5", "null", "true", "[]", R"([1,"a"])"}) {
        INFO(payload);
        auto text = std::string(R"(["1","2","room:x","ping",)") + payload + "]";
        auto m = decode_text(text);
        REQUIRE(m);
        CHECK(m->payload.json() == json::parse(payload));
        CHECK(client_text(*m) == text);
        CHECK(server_text(reply_ok(*m, m->payload)) ==
              std::string(R"(["1","2","room:x","phx_reply",{"response":)") + payload +
                  R"(,"status":"ok"}])");
    }
    // Pushes and broadcasts too: Phoenix's V2 encode! raises on a non-map
    // push, plume writes it (phoenix.js reads any value).
    CHECK(server_text(Message{"1", std::nullopt, "t", "e", json("hi")}) ==
          R"(["1",null,"t","e","hi"])");
    CHECK(server_text(Broadcast{"t", "e", json::array({1, 2})}) == R"([null,null,"t","e",[1,2]])");
    // A client reads them back.
    auto received = V2Json::decode_from_server(FrameView::text(R"([null,null,"t","e",7])"));
    REQUIRE(received);
    CHECK(std::get<Message>(*received).payload.json() == 7);
    auto reply = V2Json::decode_from_server(
        FrameView::text(R"(["1","2","t","phx_reply",{"response":"pong","status":"ok"}])"));
    REQUIRE(reply);
    CHECK(std::get<Reply>(*reply).response.json() == "pong");
}

TEST_CASE("v2 json: numeric refs are kept as numbers and echoed as numbers", "[wire][v2]") {
    auto m = decode_text(R"([1, 2, "room:x", "ping", {}])");
    REQUIRE(m);
    REQUIRE(m->join_ref);
    REQUIRE(m->ref);
    CHECK(m->join_ref->is_number());
    CHECK(m->join_ref->str() == "1");
    CHECK(*m->ref == Ref::number("2"));
    // The number 2 is not the string "2".
    CHECK_FALSE(*m->ref == Ref("2"));
    CHECK_FALSE(*m->ref == std::string("2"));
    CHECK(server_text(reply_ok(*m)) ==
          R"([1,2,"room:x","phx_reply",{"response":{},"status":"ok"}])");
    CHECK(server_text(phx_close("room:x", m->join_ref)) == R"([1,1,"room:x","phx_close",{}])");
    CHECK(server_text(phx_error("room:x", m->join_ref)) ==
          R"([1,1,"room:x","phx_error",{"reason":"channel_crash"}])");
    CHECK(
        server_text(unmatched_topic_reply(*m)) ==
        R"([null,2,"room:x","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}])");

    SECTION("any JSON number: negatives, fractions, exponents, big integers") {
        auto n = decode_text(R"([-7, 1.5, "t", "e", {}])");
        REQUIRE(n);
        CHECK(server_text(reply_ok(*n)) ==
              R"([-7,1.5,"t","phx_reply",{"response":{},"status":"ok"}])");
        // Fractions come back in their shortest round-trip form, as Jason
        // re-encodes them; integers byte for byte, up to 2^64 - 1.
        auto e = decode_text(R"([18446744073709551615, 1.50, "t", "e", {}])");
        REQUIRE(e);
        CHECK(server_text(reply_ok(*e)) ==
              R"([18446744073709551615,1.5,"t","phx_reply",{"response":{},"status":"ok"}])");
        auto x = decode_text(R"([null, 1E2, "t", "e", {}])");
        REQUIRE(x);
        CHECK(x->ref->str() == "100.0");
    }
    SECTION("a numeric ref in a binary frame is written as its digits") {
        auto frame =
            V2Json::encode(Reply{Ref::number("12"), Ref::number("3"), "t", "ok", Binary{"x"}});
        REQUIRE(frame);
        CHECK(frame->bytes == std::string("\x01\x02\x01\x01\x02"
                                          "123tokx",
                                          12));
    }
}

TEST_CASE("v2 json: nesting depth is bounded", "[wire][v2]") {
    auto nested = [](std::size_t depth) {
        return std::string(depth, '[') + std::string(depth, ']');
    };
    // The message array is one level; the payload may nest up to the limit.
    std::string ok = R"(["1","1","t","e",{"a":)" + nested(max_json_depth - 2) + "}]";
    CHECK(decode_text(ok));
    std::string deep = R"(["1","1","t","e",{"a":)" + nested(max_json_depth - 1) + "}]";
    CHECK(decode_error(deep) == error::too_deep);
    CHECK(decode_error(std::string(100'000, '[')) == error::too_deep);
    // Brackets inside strings (escaped quotes included) do not count.
    std::string in_string = R"(["1","1","t","e",{"s":"\")" + std::string(2000, '[') + "\"}]";
    CHECK(decode_text(in_string));
}

TEST_CASE("v2 json: byte-exact output for every control event", "[wire][v2]") {
    // Client → server (phoenix.js's encoding, which a plume client reproduces).
    CHECK(client_text(phx_join("room:lobby", "1", json{{"token", "abc"}})) ==
          R"(["1","1","room:lobby","phx_join",{"token":"abc"}])");
    CHECK(client_text(Message{"1", "5", "room:lobby", "new_msg", json{{"body", "hi"}}}) ==
          R"(["1","5","room:lobby","new_msg",{"body":"hi"}])");
    CHECK(client_text(phx_leave("room:lobby", "1", "7")) ==
          R"(["1","7","room:lobby","phx_leave",{}])");
    CHECK(client_text(heartbeat("9")) == R"([null,"9","phoenix","heartbeat",{}])");

    // Server → client. Reply payload keys come out as Phoenix writes them:
    // Jason emits the small map %{status:, response:} with sorted keys.
    Message push{"1", "5", "room:lobby", "new_msg", json{{"body", "hi"}}};
    CHECK(server_text(reply_ok(push)) ==
          R"(["1","5","room:lobby","phx_reply",{"response":{},"status":"ok"}])");
    CHECK(server_text(reply_ok(push, json{{"id", 12}})) ==
          R"(["1","5","room:lobby","phx_reply",{"response":{"id":12},"status":"ok"}])");
    CHECK(
        server_text(reply_error(push, reason_payload(reason::join_crashed))) ==
        R"(["1","5","room:lobby","phx_reply",{"response":{"reason":"join crashed"},"status":"error"}])");
    CHECK(server_text(Message{"1", std::nullopt, "room:lobby", "event", json{{"a", 1}}}) ==
          R"(["1",null,"room:lobby","event",{"a":1}])");
    CHECK(server_text(Broadcast{"room:lobby", "event", json{{"a", 1}}}) ==
          R"([null,null,"room:lobby","event",{"a":1}])");
    CHECK(server_text(heartbeat_reply(heartbeat("9"))) ==
          R"([null,"9","phoenix","phx_reply",{"response":{},"status":"ok"}])");
    CHECK(
        server_text(unmatched_topic_reply(Message{"3", "4", "room:nope", "phx_join", {}})) ==
        R"([null,"4","room:nope","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}])");
    CHECK(server_text(phx_error("room:lobby", "1")) ==
          R"(["1","1","room:lobby","phx_error",{"reason":"channel_crash"}])");
    CHECK(server_text(phx_close("room:lobby", "1")) == R"(["1","1","room:lobby","phx_close",{}])");
    // Duplicate join: phx_close goes out for the old join_ref.
    CHECK(server_text(phx_close("room:lobby", "old")) ==
          R"(["old","old","room:lobby","phx_close",{}])");
    CHECK(server_text(phx_error("room:lobby", std::nullopt)) ==
          R"([null,null,"room:lobby","phx_error",{"reason":"channel_crash"}])");
    CHECK(
        server_text(reply_error(push, reason_payload(reason::too_many_channels))) ==
        R"(["1","5","room:lobby","phx_reply",{"response":{"reason":"too many channels joined"},"status":"error"}])");
    // Leave for a topic never joined: ok reply echoing the client's join_ref.
    CHECK(server_text(reply_ok(phx_leave("room:x", "2", "3"))) ==
          R"(["2","3","room:x","phx_reply",{"response":{},"status":"ok"}])");
}

TEST_CASE("v2 json: strings are escaped exactly as nlohmann::json would", "[wire][v2]") {
    const std::string tricky = "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f caf\xc3\xa9 \xf0\x9f\x90\xa6";
    Message m{tricky, tricky, tricky, tricky, json{{tricky, tricky}}};
    json expected = json::array({tricky, tricky, tricky, tricky, json{{tricky, tricky}}});
    CHECK(server_text(m) == expected.dump());
    auto back = decode_text(server_text(m));
    REQUIRE(back);
    CHECK(*back == m);
}

TEST_CASE("v2 json: values the wire cannot carry are refused on encode", "[wire][v2]") {
    SECTION("invalid UTF-8 anywhere") {
        std::string bad = "bad\xc3";
        CHECK(V2Json::encode(Message{"1", "1", bad, "e", {}}).error() == error::invalid_utf8);
        CHECK(V2Json::encode(Message{"1", "1", "t", bad, {}}).error() == error::invalid_utf8);
        CHECK(V2Json::encode(Message{bad, "1", "t", "e", {}}).error() == error::invalid_utf8);
        CHECK(V2Json::encode(Message{"1", bad, "t", "e", {}}).error() == error::invalid_utf8);
        CHECK(V2Json::encode(Message{"1", "1", "t", "e", json{{"k", bad}}}).error() ==
              error::invalid_utf8);
        CHECK(V2Json::encode(Reply{"1", "1", "t", bad, {}}).error() == error::invalid_utf8);
        CHECK(V2Json::encode(Broadcast{"t", "e", json{{bad, 1}}}).error() == error::invalid_utf8);
    }
    SECTION("a numeric ref whose text is not a JSON number") {
        CHECK_FALSE(V2Json::encode(Message{Ref::number("1x"), "1", "t", "e", {}}));
        CHECK_FALSE(V2Json::encode(Reply{"1", Ref::number(""), "t", "ok", {}}));
    }
    SECTION("a reply response may be any JSON value") {
        CHECK(server_text(Reply{"1", "2", "t", "ok", json::array({1, 2})}) ==
              R"(["1","2","t","phx_reply",{"response":[1,2],"status":"ok"}])");
    }
}

TEST_CASE("v2 json: client and server views round-trip", "[wire][v2]") {
    const Message messages[] = {
        phx_join("room:lobby", "1", json{{"token", "abc"}, {"n", {1, 2, 3}}}),
        Message{"1", "5", "room:lobby", "new_msg", json{{"body", "hi"}, {"f", 1.5}}},
        heartbeat("9"),
        Message{std::nullopt, std::nullopt, "", "", json::object()},
    };
    for (const auto& m : messages) {
        // What a client sends, a server decodes unchanged.
        auto frame = V2Json::encode_for_server(m);
        REQUIRE(frame);
        auto back = V2Json::decode(*frame);
        REQUIRE(back);
        CHECK(*back == m);
        // What a server pushes, a client decodes unchanged.
        auto pushed = V2Json::encode(m);
        REQUIRE(pushed);
        auto received = V2Json::decode_from_server(*pushed);
        REQUIRE(received);
        REQUIRE(std::holds_alternative<Message>(*received));
        CHECK(std::get<Message>(*received) == m);
    }

    SECTION("a reply decodes as a Reply") {
        Reply r{"1", "5", "room:lobby", "ok", json{{"id", 1}}};
        auto received = V2Json::decode_from_server(*V2Json::encode(r));
        REQUIRE(received);
        REQUIRE(std::holds_alternative<Reply>(*received));
        CHECK(std::get<Reply>(*received) == r);
    }
    SECTION("a broadcast decodes as a Message with null refs") {
        Broadcast b{"room:lobby", "shout", json{{"a", 1}}};
        auto received = V2Json::decode_from_server(*V2Json::encode(b));
        REQUIRE(received);
        REQUIRE(std::holds_alternative<Message>(*received));
        CHECK(std::get<Message>(*received) == to_message(b));
    }
    SECTION("a phx_reply without status and response is refused") {
        auto bad = [](std::string_view text) {
            return V2Json::decode_from_server(FrameView::text(text)).error();
        };
        CHECK(bad(R"(["1","5","t","phx_reply",{}])") == error::invalid_reply);
        CHECK(bad(R"(["1","5","t","phx_reply",{"status":"ok"}])") == error::invalid_reply);
        CHECK(bad(R"(["1","5","t","phx_reply",{"status":1,"response":{}}])") ==
              error::invalid_reply);
        CHECK(bad(R"(["1","5","t","phx_reply",[]])") == error::invalid_reply);
        CHECK(bad(R"(["1","5","t","phx_reply","ok"])") == error::invalid_reply);
        CHECK(bad("nope") == error::invalid_json);
    }
}

TEST_CASE("v2 json: a server decodes an undecodable frame without throwing", "[wire][v2]") {
    // A handful of hostile inputs in one place; none may throw.
    const std::string inputs[] = {
        std::string("\0", 1),
        "[",
        "]",
        "{",
        "\"",
        "[\"\\",
        "[1e999999,1,1,1,{}]",
        "[\"1\",\"1\",\"t\",\"e\",{\"a\":1e400}]",
        std::string(1000, '{'),
        "\xef\xbb\xbf[]",
    };
    for (const auto& in : inputs)
        CHECK_NOTHROW((void)decode_text(in));
}

// The envelope read by hand (detail::v2::decode_envelope) must give what the
// whole-tree parse gives, or leave the frame to it: compared on frames mutated
// at random (fixed seed), errors included.
TEST_CASE("V2 text: the hand-read envelope decodes as the JSON tree does", "[wire][v2]") {
    namespace v2 = plume::wire::detail::v2;
    const std::vector<std::string> bases = {
        R"(["1","2","room:lobby","ping",{"seq":2}])",
        R"([null,"5","phoenix","heartbeat",{}])",
        R"(["1","1","room:lobby","phx_join",{"token":"abc","n":[1,2.5,-3e2,true,false,null]}])",
        " [ \"1\" , \"2\" ,\t\"t\" ,\n\"e\" , { } ] \r\n",
        "[\"1\",\"2\",\"r\xc3\xb6om\",\"ev\",{\"a\":\"\xc3\xbc\\u00fc\"}]",
        R"(["1","2","t","e",{},5])",
        R"([1,2.0,"t","e",{}])",
        R"(["1","2","t\"x","e",{"k":"v\n"}])",
        R"(["1","2","t","e","str"])",
        R"(["1","2","t","e",42])",
        R"(["","","t","e",[]])",
    };
    const std::string alphabet =
        "[]{}\",:\\ \t0123456789.-+eEnultrfasx\x01\x7f\xc3\xbc\xed\xa0\xff";
    std::mt19937 rng(20261207);
    auto pick = [&](std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
    };
    std::size_t by_hand = 0, frames = 0;
    auto compare = [&](const std::string& text) {
        ++frames;
        auto fast = v2::decode_envelope(text);
        auto tree = v2::decode_tree(text);
        if (fast) {
            ++by_hand;
            REQUIRE(tree);
            CHECK(*fast == *tree);
        }
        auto decoded = V2Json::decode(FrameView::text(text));
        REQUIRE(decoded.has_value() == tree.has_value());
        if (tree)
            CHECK(*decoded == *tree);
        else
            CHECK(decoded.error() == tree.error());
    };
    for (const auto& base : bases) {
        compare(base);
        for (int round = 0; round < 3000; ++round) {
            std::string text = base;
            for (std::size_t edits = 1 + pick(3); edits > 0 && !text.empty(); --edits) {
                const std::size_t at = pick(text.size());
                const char c = alphabet[pick(alphabet.size())];
                switch (pick(3)) {
                    case 0:
                        text[at] = c;
                        break;
                    case 1:
                        text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c);
                        break;
                    default:
                        text.erase(at, 1);
                }
            }
            compare(text);
        }
    }
    INFO(by_hand << " of " << frames << " frames read by hand");
    CHECK(by_hand > frames / 10);  // the comparison covers the hand-read path
}

TEST_CASE("V2 text: the depth bound counts the message's array", "[wire][v2]") {
    auto nested = [](std::size_t depth) {
        return std::string(depth, '[') + std::string(depth, ']');
    };
    // The payload at max_json_depth - 1 levels: the frame is max_json_depth deep.
    auto ok = decode_text(R"(["1","2","t","e",)" + nested(max_json_depth - 1) + "]");
    CHECK(ok.has_value());
    CHECK(decode_error(R"(["1","2","t","e",)" + nested(max_json_depth) + "]") == error::too_deep);
}
