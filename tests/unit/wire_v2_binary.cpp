// V2 binary frames (phoenix-protocol.md section 2.3): the client push (kind 0,
// four size bytes), the server push (kind 0, three), reply (kind 1) and
// broadcast (kind 2); truncation, bad sizes, bad UTF-8 and over-long fields.
#include <catch2/catch.hpp>

#include <plume/wire.hpp>

#include <initializer_list>
#include <string>
#include <variant>

using namespace plume::wire;
using nlohmann::json;

namespace {

// Bytes from small integers, so headers with NULs read clearly.
std::string bytes(std::initializer_list<int> values) {
    std::string out;
    for (int v : values)
        out += static_cast<char>(v);
    return out;
}

// A payload with every awkward byte: NUL, high bytes, invalid UTF-8.
const std::string payload = bytes({0, 1, 2, 0xff, 0xfe, 0x80, 'x'});

Result<Message> server_decode(const std::string& frame) {
    return V2Json::decode(FrameView::binary(frame));
}

Result<ServerMessage> client_decode(const std::string& frame) {
    return V2Json::decode_from_server(FrameView::binary(frame));
}

}  // namespace

TEST_CASE("v2 binary: a server decodes a client push (kind 0, four sizes)", "[wire][v2][binary]") {
    std::string frame = bytes({0, 2, 3, 5, 5}) + "12" + "123" + "topic" + "event" + payload;
    auto m = server_decode(frame);
    REQUIRE(m);
    CHECK(m->join_ref == "12");
    CHECK(m->ref == "123");
    CHECK(m->topic == "topic");
    CHECK(m->event == "event");
    REQUIRE(m->payload.is_binary());
    CHECK(m->payload.bytes() == payload);

    SECTION("empty refs mean none; an empty payload is fine") {
        auto e = server_decode(bytes({0, 0, 0, 1, 1}) + "t" + "e");
        REQUIRE(e);
        CHECK_FALSE(e->join_ref);
        CHECK_FALSE(e->ref);
        CHECK(e->payload == Payload(Binary{}));
    }
    SECTION("non-ASCII header strings (phoenix.js >= 1.8.7 writes UTF-8 bytes)") {
        std::string topic = "room:caf\xc3\xa9";
        std::string event = "\xf0\x9f\x90\xa6";
        auto u = server_decode(
            bytes({0, 1, 1, static_cast<int>(topic.size()), static_cast<int>(event.size())}) + "1" +
            "2" + topic + event + "p");
        REQUIRE(u);
        CHECK(u->topic == topic);
        CHECK(u->event == event);
    }
}

TEST_CASE("v2 binary: malformed client frames give a clear error", "[wire][v2][binary]") {
    SECTION("truncated") {
        CHECK(server_decode("").error() == error::truncated_frame);
        CHECK(server_decode(bytes({0})).error() == error::truncated_frame);
        CHECK(server_decode(bytes({0, 1, 1, 1})).error() == error::truncated_frame);
    }
    SECTION("sizes pointing past the end") {
        CHECK(server_decode(bytes({0, 1, 0, 0, 0})).error() == error::truncated_frame);
        CHECK(server_decode(bytes({0, 0, 2, 0, 0}) + "1").error() == error::truncated_frame);
        CHECK(server_decode(bytes({0, 0, 0, 5, 0}) + "topi").error() == error::truncated_frame);
        CHECK(server_decode(bytes({0, 0, 0, 5, 5}) + "topic" + "even").error() ==
              error::truncated_frame);
        CHECK(server_decode(bytes({0, 255, 255, 255, 255}) + std::string(1019, 'x')).error() ==
              error::truncated_frame);
        // Exactly enough is not truncated.
        CHECK(server_decode(bytes({0, 255, 255, 255, 255}) + std::string(1020, 'x')));
    }
    SECTION("kinds a client never sends") {
        CHECK(server_decode(bytes({1, 0, 0, 1, 1}) + "t" + "e").error() == error::unexpected_kind);
        CHECK(server_decode(bytes({2, 1, 1}) + "t" + "e").error() == error::unexpected_kind);
        CHECK(server_decode(bytes({3, 0, 0, 0, 0})).error() == error::unexpected_kind);
        CHECK(server_decode(bytes({255})).error() == error::unexpected_kind);
    }
    SECTION("header strings that are not UTF-8") {
        CHECK(server_decode(bytes({0, 1, 0, 1, 1}) + "\xff" + "t" + "e").error() ==
              error::invalid_utf8);
        CHECK(server_decode(bytes({0, 0, 1, 1, 1}) + "\x80" + "t" + "e").error() ==
              error::invalid_utf8);
        CHECK(server_decode(bytes({0, 0, 0, 2, 1}) + "\xc0\xaf" + "e").error() ==
              error::invalid_utf8);  // overlong '/'
        CHECK(server_decode(bytes({0, 0, 0, 1, 3}) + "t" + "\xed\xa0\x80").error() ==
              error::invalid_utf8);  // a surrogate
        CHECK(server_decode(bytes({0, 0, 0, 1, 2}) + "t" + "\xc3").error() ==
              error::truncated_frame);  // size says 2, one byte there
        CHECK(server_decode(bytes({0, 0, 0, 1, 1}) + "t" + "\xc3" + "\xa9").error() ==
              error::invalid_utf8);  // a code point cut by the size byte
        // The payload is bytes, not text: anything goes there.
        CHECK(server_decode(bytes({0, 0, 0, 1, 1}) + "t" + "e" + "\xff\xc3"));
    }
    SECTION("no exception for any short frame") {
        for (int kind = 0; kind < 4; ++kind)
            for (int len = 0; len < 8; ++len) {
                std::string frame(static_cast<std::size_t>(len), '\x03');
                if (len > 0) frame[0] = static_cast<char>(kind);
                CHECK_NOTHROW((void)server_decode(frame));
                CHECK_NOTHROW((void)client_decode(frame));
            }
    }
}

TEST_CASE("v2 binary: byte-exact server frames", "[wire][v2][binary]") {
    SECTION("push: kind 0, three sizes, no ref") {
        auto f = V2Json::encode(Message{"12", "ignored", "topic", "event", Binary{payload}});
        REQUIRE(f);
        CHECK(f->is_binary);
        CHECK(f->bytes == bytes({0, 2, 5, 5}) + "12" + "topic" + "event" + payload);
    }
    SECTION("push without join_ref") {
        auto f = V2Json::encode(Message{std::nullopt, std::nullopt, "t", "e", Binary{"p"}});
        REQUIRE(f);
        CHECK(f->bytes == bytes({0, 0, 1, 1}) + "t" + "e" + "p");
    }
    SECTION("reply: kind 1") {
        auto f = V2Json::encode(Reply{"12", "123", "topic", "ok", Binary{payload}});
        REQUIRE(f);
        CHECK(f->is_binary);
        CHECK(f->bytes == bytes({1, 2, 3, 5, 2}) + "12" + "123" + "topic" + "ok" + payload);
    }
    SECTION("reply with a JSON response stays text") {
        auto f = V2Json::encode(Reply{"12", "123", "topic", "ok", json{{"a", 1}}});
        REQUIRE(f);
        CHECK_FALSE(f->is_binary);
    }
    SECTION("broadcast: kind 2") {
        auto f = V2Json::encode(Broadcast{"topic", "event", Binary{payload}});
        REQUIRE(f);
        CHECK(f->is_binary);
        CHECK(f->bytes == bytes({2, 5, 5}) + "topic" + "event" + payload);
    }
}

TEST_CASE("v2 binary: byte-exact client push", "[wire][v2][binary]") {
    auto f = V2Json::encode_for_server(Message{"12", "123", "topic", "event", Binary{payload}});
    REQUIRE(f);
    CHECK(f->is_binary);
    CHECK(f->bytes == bytes({0, 2, 3, 5, 5}) + "12" + "123" + "topic" + "event" + payload);
}

TEST_CASE("v2 binary: fields over 255 bytes are refused on encode", "[wire][v2][binary]") {
    const std::string max(255, 'a'), over(256, 'a');
    SECTION("255 is the limit") {
        auto f = V2Json::encode_for_server(Message{max, max, max, max, Binary{"p"}});
        REQUIRE(f);
        CHECK(f->bytes.size() == 5 + 4 * 255 + 1);
        auto back = V2Json::decode(*f);
        REQUIRE(back);
        CHECK(back->topic == max);
        CHECK(V2Json::encode(Reply{max, max, max, max, Binary{}}));
    }
    SECTION("256 in any field") {
        CHECK(V2Json::encode(Message{over, "1", "t", "e", Binary{}}).error() ==
              error::field_too_long);
        CHECK(V2Json::encode(Message{"1", "1", over, "e", Binary{}}).error() ==
              error::field_too_long);
        CHECK(V2Json::encode(Message{"1", "1", "t", over, Binary{}}).error() ==
              error::field_too_long);
        CHECK(V2Json::encode(Reply{over, "1", "t", "ok", Binary{}}).error() ==
              error::field_too_long);
        CHECK(V2Json::encode(Reply{"1", over, "t", "ok", Binary{}}).error() ==
              error::field_too_long);
        CHECK(V2Json::encode(Reply{"1", "1", over, "ok", Binary{}}).error() ==
              error::field_too_long);
        CHECK(V2Json::encode(Reply{"1", "1", "t", over, Binary{}}).error() ==
              error::field_too_long);
        CHECK(V2Json::encode(Broadcast{over, "e", Binary{}}).error() == error::field_too_long);
        CHECK(V2Json::encode(Broadcast{"t", over, Binary{}}).error() == error::field_too_long);
        CHECK(V2Json::encode_for_server(Message{"1", over, "t", "e", Binary{}}).error() ==
              error::field_too_long);
    }
    SECTION("the ref is not written in a server push, so its length does not matter") {
        CHECK(V2Json::encode(Message{"1", over, "t", "e", Binary{}}));
    }
    SECTION("text frames have no such limit") {
        CHECK(V2Json::encode(Message{"1", "1", over, "e", json::object()}));
    }
}

TEST_CASE("v2 binary: a client decodes every server kind", "[wire][v2][binary]") {
    SECTION("push (kind 0, three sizes)") {
        auto r = client_decode(bytes({0, 2, 5, 5}) + "12" + "topic" + "event" + payload);
        REQUIRE(r);
        REQUIRE(std::holds_alternative<Message>(*r));
        CHECK(std::get<Message>(*r) ==
              Message{"12", std::nullopt, "topic", "event", Binary{payload}});
    }
    SECTION("reply (kind 1)") {
        auto r = client_decode(bytes({1, 2, 3, 5, 2}) + "12" + "123" + "topic" + "ok" + payload);
        REQUIRE(r);
        REQUIRE(std::holds_alternative<Reply>(*r));
        CHECK(std::get<Reply>(*r) == Reply{"12", "123", "topic", "ok", Binary{payload}});
    }
    SECTION("broadcast (kind 2)") {
        auto r = client_decode(bytes({2, 5, 5}) + "topic" + "event" + payload);
        REQUIRE(r);
        REQUIRE(std::holds_alternative<Message>(*r));
        CHECK(std::get<Message>(*r) ==
              Message{std::nullopt, std::nullopt, "topic", "event", Binary{payload}});
    }
    SECTION("errors") {
        CHECK(client_decode("").error() == error::truncated_frame);
        CHECK(client_decode(bytes({0, 1, 1})).error() == error::truncated_frame);
        CHECK(client_decode(bytes({1, 1, 1, 1})).error() == error::truncated_frame);
        CHECK(client_decode(bytes({2, 1})).error() == error::truncated_frame);
        CHECK(client_decode(bytes({2, 2, 1}) + "t" + "e").error() == error::truncated_frame);
        CHECK(client_decode(bytes({1, 0, 0, 1, 2}) + "t" + "\xff\xff").error() ==
              error::invalid_utf8);
        CHECK(client_decode(bytes({3, 0, 0})).error() == error::unexpected_kind);
    }
}

TEST_CASE("v2 binary: round trips in both directions", "[wire][v2][binary]") {
    Message push{"7", "8", "room:caf\xc3\xa9", "upload", Binary{payload}};
    auto up = V2Json::encode_for_server(push);
    REQUIRE(up);
    auto got = V2Json::decode(*up);
    REQUIRE(got);
    CHECK(*got == push);

    Reply reply{"7", "8", "room:lobby", "ok", Binary{payload}};
    auto down = V2Json::encode(reply);
    REQUIRE(down);
    auto received = V2Json::decode_from_server(*down);
    REQUIRE(received);
    CHECK(std::get<Reply>(*received) == reply);

    // A large payload passes through untouched.
    std::string big(1 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<char>(i * 31);
    auto big_frame = V2Json::encode(Broadcast{"t", "e", Binary{big}});
    REQUIRE(big_frame);
    auto big_back = V2Json::decode_from_server(*big_frame);
    REQUIRE(big_back);
    CHECK(std::get<Message>(*big_back).payload.bytes() == big);
}
