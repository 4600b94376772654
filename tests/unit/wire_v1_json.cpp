// V1 JSON (vsn 1.0.0): objects in text frames; encode drops join_ref exactly
// as Phoenix's V1.JSONSerializer, with Phoenix's (sorted) key order.
#include <catch2/catch.hpp>

#include <plume/wire.hpp>

#include <string>
#include <string_view>
#include <variant>

using namespace plume::wire;
using nlohmann::json;

namespace {

Result<Message> decode_text(std::string_view text) {
    return V1Json::decode(FrameView::text(text));
}

std::error_code decode_error(std::string_view text) {
    return decode_text(text).error();
}

template <class T>
std::string server_text(const T& value) {
    auto frame = V1Json::encode(value);
    REQUIRE(frame);
    CHECK_FALSE(frame->is_binary);
    return frame->bytes;
}

}  // namespace

static_assert(ClientSerializer<V1Json>);
static_assert(V1Json::vsn == "1.0.0");

TEST_CASE("v1 json: decodes message objects", "[wire][v1]") {
    SECTION("with join_ref") {
        auto m = decode_text(
            R"({"topic":"room:lobby","event":"phx_join","payload":{"t":1},"ref":"1","join_ref":"1"})");
        REQUIRE(m);
        CHECK(*m == Message{"1", "1", "room:lobby", "phx_join", json{{"t", 1}}});
    }
    SECTION("join_ref is optional; ref may be null; key order is free") {
        auto m = decode_text(R"({"ref":null,"payload":{},"event":"heartbeat","topic":"phoenix"})");
        REQUIRE(m);
        CHECK(*m == Message{std::nullopt, std::nullopt, "phoenix", "heartbeat", {}});
    }
    SECTION("unknown keys are ignored") {
        auto m = decode_text(R"({"topic":"t","event":"e","payload":{},"ref":"2","extra":[1]})");
        REQUIRE(m);
        CHECK(m->ref == "2");
    }
}

TEST_CASE("v1 json: malformed frames give a clear error", "[wire][v1]") {
    CHECK(decode_error("") == error::invalid_json);
    CHECK(decode_error("{") == error::invalid_json);
    CHECK(decode_error(R"(["1","1","t","e",{}])") == error::not_an_object);  // a V2 frame
    CHECK(decode_error("42") == error::not_an_object);
    CHECK(decode_error("null") == error::not_an_object);

    // ref is required even though it may be null (Phoenix: Map.fetch!).
    CHECK(decode_error(R"({"topic":"t","event":"e","payload":{}})") == error::missing_field);
    CHECK(decode_error(R"({"event":"e","payload":{},"ref":"1"})") == error::missing_field);
    CHECK(decode_error(R"({"topic":"t","payload":{},"ref":"1"})") == error::missing_field);
    CHECK(decode_error(R"({"topic":"t","event":"e","ref":"1"})") == error::missing_field);

    CHECK(decode_error(R"({"topic":1,"event":"e","payload":{},"ref":"1"})") ==
          error::invalid_topic);
    CHECK(decode_error(R"({"topic":"t","event":false,"payload":{},"ref":"1"})") ==
          error::invalid_event);
    CHECK(decode_error(R"({"topic":"t","event":"e","payload":{},"ref":true})") ==
          error::invalid_ref);
    CHECK(decode_error(R"({"topic":"t","event":"e","payload":{},"ref":"1","join_ref":[2]})") ==
          error::invalid_join_ref);

    // A binary frame is read as text, so it fails the way text would.
    CHECK(V1Json::decode(FrameView::binary(std::string_view("\0", 1))).error() ==
          error::invalid_json);
    CHECK(V1Json::decode_from_server(FrameView::binary("x")).error() == error::invalid_json);
    CHECK(V1Json::decode(FrameView::binary(R"(["1","1","t","e",{}])")).error() ==
          error::not_an_object);
}

TEST_CASE("v1 json: a binary frame is decoded as JSON text, as Phoenix's V1 does", "[wire][v1]") {
    const std::string text = R"({"topic":"room:x","event":"ping","payload":{"a":1},"ref":"7"})";
    auto m = V1Json::decode(FrameView::binary(text));
    REQUIRE(m);
    CHECK(*m == Message{std::nullopt, "7", "room:x", "ping", json{{"a", 1}}});
    CHECK(*m == *V1Json::decode(FrameView::text(text)));
    // Its bytes must be UTF-8, as a text frame's are (checked by the
    // transport there, here by the serializer); invalid UTF-8 even outside
    // any JSON string is reported as such.
    const std::string bad =
        "{\"topic\":\"room:\xff\",\"event\":\"e\",\"payload\":{},\"ref\":\"1\"}";
    CHECK(V1Json::decode(FrameView::binary(bad)).error() == error::invalid_utf8);
    CHECK(V1Json::decode(FrameView::binary("\xc3")).error() == error::invalid_utf8);
    // The client view reads a server's binary frame the same way.
    auto r = V1Json::decode_from_server(FrameView::binary(
        R"({"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"7","topic":"t"})"));
    REQUIRE(r);
    CHECK(std::get<Reply>(*r).status == "ok");
}

TEST_CASE("v1 json: any JSON payload, numeric refs echoed as numbers", "[wire][v1]") {
    auto m = decode_text(R"({"topic":"room:x","event":"ping","payload":"str","ref":2})");
    REQUIRE(m);
    CHECK(m->payload.json() == "str");
    CHECK(*m->ref == Ref::number("2"));
    CHECK(
        server_text(reply_ok(*m, m->payload)) ==
        R"({"event":"phx_reply","payload":{"response":"str","status":"ok"},"ref":2,"topic":"room:x"})");
    for (const char* payload : {"42", "null", "[1,2]", "1.5", "false"}) {
        INFO(payload);
        auto p = decode_text(std::string(R"({"topic":"t","event":"e","ref":null,"payload":)") +
                             payload + "}");
        REQUIRE(p);
        CHECK(server_text(Message{std::nullopt, std::nullopt, "t", "e", p->payload}) ==
              std::string(R"({"event":"e","payload":)") + payload + R"(,"ref":null,"topic":"t"})");
    }
    // A V1 join has no join_ref: its phx_close and phx_error carry ref null.
    auto join = decode_text(R"({"topic":"room:x","event":"phx_join","payload":{},"ref":"3"})");
    REQUIRE(join);
    CHECK_FALSE(join->join_ref);
    CHECK(server_text(phx_close("room:x", join->join_ref)) ==
          R"({"event":"phx_close","payload":{},"ref":null,"topic":"room:x"})");
    CHECK(
        server_text(phx_error("room:x", join->join_ref)) ==
        R"({"event":"phx_error","payload":{"reason":"channel_crash"},"ref":null,"topic":"room:x"})");
    // A numeric join_ref is kept, and echoed as a number where V1 writes it.
    auto numeric =
        decode_text(R"({"topic":"t","event":"phx_join","payload":{},"ref":4,"join_ref":4})");
    REQUIRE(numeric);
    CHECK(server_text(phx_close("t", numeric->join_ref)) ==
          R"({"event":"phx_close","payload":{},"ref":4,"topic":"t"})");
}

TEST_CASE("v1 json: byte-exact output, join_ref dropped", "[wire][v1]") {
    Message push{"1", "5", "room:lobby", "new_msg", json{{"body", "hi"}}};
    CHECK(server_text(push) ==
          R"({"event":"new_msg","payload":{"body":"hi"},"ref":"5","topic":"room:lobby"})");
    CHECK(
        server_text(reply_ok(push)) ==
        R"({"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"5","topic":"room:lobby"})");
    CHECK(server_text(Broadcast{"room:lobby", "shout", json{{"a", 1}}}) ==
          R"({"event":"shout","payload":{"a":1},"ref":null,"topic":"room:lobby"})");
    CHECK(server_text(Message{"1", std::nullopt, "room:lobby", "presence_state", json::object()}) ==
          R"({"event":"presence_state","payload":{},"ref":null,"topic":"room:lobby"})");
    CHECK(
        server_text(heartbeat_reply(heartbeat("9"))) ==
        R"({"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"9","topic":"phoenix"})");
    CHECK(
        server_text(unmatched_topic_reply(Message{"3", "4", "room:nope", "phx_join", {}})) ==
        R"({"event":"phx_reply","payload":{"response":{"reason":"unmatched topic"},"status":"error"},"ref":"4","topic":"room:nope"})");
    CHECK(
        server_text(phx_error("room:lobby", "1")) ==
        R"({"event":"phx_error","payload":{"reason":"channel_crash"},"ref":"1","topic":"room:lobby"})");
    CHECK(server_text(phx_close("room:lobby", "1")) ==
          R"({"event":"phx_close","payload":{},"ref":"1","topic":"room:lobby"})");
}

TEST_CASE("v1 json: a client's frames carry join_ref", "[wire][v1]") {
    auto f = V1Json::encode_for_server(phx_join("room:lobby", "1", json{{"t", 1}}));
    REQUIRE(f);
    CHECK(
        f->bytes ==
        R"({"event":"phx_join","join_ref":"1","payload":{"t":1},"ref":"1","topic":"room:lobby"})");
    auto hb = V1Json::encode_for_server(heartbeat("2"));
    REQUIRE(hb);
    CHECK(hb->bytes ==
          R"({"event":"heartbeat","join_ref":null,"payload":{},"ref":"2","topic":"phoenix"})");
}

TEST_CASE("v1 json: binary payloads and bad values are refused on encode", "[wire][v1]") {
    CHECK(V1Json::encode(Message{"1", "1", "t", "e", Binary{"x"}}).error() ==
          error::binary_unsupported);
    CHECK(V1Json::encode(Reply{"1", "1", "t", "ok", Binary{"x"}}).error() ==
          error::binary_unsupported);
    CHECK(V1Json::encode(Broadcast{"t", "e", Binary{"x"}}).error() == error::binary_unsupported);
    CHECK(V1Json::encode_for_server(Message{"1", "1", "t", "e", Binary{"x"}}).error() ==
          error::binary_unsupported);
    CHECK(V1Json::encode(Message{"1", "1", "t\xff", "e", {}}).error() == error::invalid_utf8);
}

TEST_CASE("v1 json: round trips", "[wire][v1]") {
    Message m{"1", "5", "room:lobby", "new_msg", json{{"body", "hi \"there\"\n"}}};
    auto up = V1Json::encode_for_server(m);
    REQUIRE(up);
    auto got = V1Json::decode(*up);
    REQUIRE(got);
    CHECK(*got == m);

    // Server output loses join_ref by design.
    auto down = V1Json::encode(m);
    REQUIRE(down);
    auto received = V1Json::decode_from_server(*down);
    REQUIRE(received);
    Message without_join_ref = m;
    without_join_ref.join_ref.reset();
    CHECK(std::get<Message>(*received) == without_join_ref);

    Reply r{"1", "5", "room:lobby", "error", json{{"reason", "x"}}};
    auto reply_frame = V1Json::encode(r);
    REQUIRE(reply_frame);
    auto reply_back = V1Json::decode_from_server(*reply_frame);
    REQUIRE(reply_back);
    CHECK(std::get<Reply>(*reply_back) ==
          Reply{std::nullopt, "5", "room:lobby", "error", json{{"reason", "x"}}});
}
