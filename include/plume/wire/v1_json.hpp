// plume/wire/v1_json.hpp — the V1 serializer (vsn "1.0.0"), for old clients.
//
// V1 frames are JSON objects. Decoding requires "topic", "event", "payload"
// (any JSON value) and "ref" (a string, a number or null) and reads an
// optional "join_ref". Encoding writes only {"event","payload","ref","topic"}
// — it drops join_ref exactly as Phoenix's V1.JSONSerializer does, and orders
// the keys as Phoenix's Jason output does (sorted). V1 has no binary payloads
// (error::binary_unsupported), but a binary WebSocket frame is decoded as if
// it were text, as Phoenix's V1 serializer does (it ignores the opcode); its
// bytes must still be UTF-8 (error::invalid_utf8), as a text frame's are.
//
// A connection without a ?vsn= parameter speaks V1 (see vsn.hpp).
//
//   using plume::wire::V1Json;
//   auto msg = V1Json::decode(plume::wire::FrameView::text(
//       R"({"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1"})"));
//   auto frame = V1Json::encode(plume::wire::reply_ok(*msg));
//   // {"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"room:lobby"}
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "plume/detail/utf8.hpp"
#include "plume/result.hpp"
#include "plume/wire/detail/json.hpp"
#include "plume/wire/error.hpp"
#include "plume/wire/message.hpp"
#include "plume/wire/serializer.hpp"

namespace plume::wire {

namespace detail::v1 {

inline Result<Message> decode_text(std::string_view text) {
    auto parsed = parse_json(text);
    if (!parsed) return parsed.error();
    auto& j = *parsed;
    if (!j.is_object()) return error::not_an_object;
    auto topic = j.find("topic"), event = j.find("event"), payload = j.find("payload"),
         ref = j.find("ref");
    if (topic == j.end() || event == j.end() || payload == j.end() || ref == j.end())
        return error::missing_field;
    nlohmann::json null_join_ref;
    auto join_ref = j.find("join_ref");
    return message_from_fields(join_ref == j.end() ? null_join_ref : *join_ref, *ref, *topic,
                               *event, *payload);
}

/// Decodes a frame's bytes as JSON text, whatever its opcode: Phoenix's
/// V1.JSONSerializer.decode!/2 ignores the opcode. A binary frame has not been
/// through the transport's UTF-8 check, so it gets the same check here.
inline Result<Message> decode_frame(FrameView frame) {
    if (frame.is_binary && !plume::detail::is_valid_utf8(frame.bytes)) return error::invalid_utf8;
    return decode_text(frame.bytes);
}

/// {"event":…,["join_ref":…,]"payload":…,"ref":…,"topic":…} — keys sorted.
template <class WritePayload>
Result<Frame> write_object(const std::optional<Ref>* join_ref, const std::optional<Ref>& ref,
                           std::string_view topic, std::string_view event,
                           WritePayload&& write_payload) {
    std::string out;
    out += "{\"event\":";
    if (!append_json_string(out, event)) return error::invalid_utf8;
    if (join_ref) {
        out += ",\"join_ref\":";
        if (!append_json_optional(out, *join_ref)) return error::invalid_utf8;
    }
    out += ",\"payload\":";
    if (!write_payload(out)) return error::invalid_utf8;
    out += ",\"ref\":";
    if (!append_json_optional(out, ref)) return error::invalid_utf8;
    out += ",\"topic\":";
    if (!append_json_string(out, topic)) return error::invalid_utf8;
    out += '}';
    return Frame::text(std::move(out));
}

inline Result<Frame> write_message(const std::optional<Ref>* join_ref,
                                   const std::optional<Ref>& ref, std::string_view topic,
                                   std::string_view event, const Payload& payload) {
    if (payload.is_binary()) return error::binary_unsupported;
    return write_object(join_ref, ref, topic, event,
                        [&](std::string& out) { return append_json_value(out, payload.json()); });
}

}  // namespace detail::v1

/// The V1 serializer policy.
struct V1Json {
    static constexpr std::string_view vsn = "1.0.0";

    // ---- server view --------------------------------------------------------

    /// A text or binary frame holding a message object.
    static Result<Message> decode(FrameView frame) { return detail::v1::decode_frame(frame); }

    /// {"event","payload","ref","topic"}; join_ref is dropped as in Phoenix.
    static Result<Frame> encode(const Message& m) {
        return detail::v1::write_message(nullptr, m.ref, m.topic, m.event, m.payload);
    }

    static Result<Frame> encode(const Reply& r) {
        if (r.response.is_binary()) return error::binary_unsupported;
        return detail::v1::write_object(
            nullptr, r.ref, r.topic, event::reply,
            [&](std::string& out) { return detail::append_reply_payload(out, r); });
    }

    /// {"event","payload","ref":null,"topic"}.
    static Result<Frame> encode(const Broadcast& b) {
        return detail::v1::write_message(nullptr, std::nullopt, b.topic, b.event, b.payload);
    }

    // ---- client view --------------------------------------------------------

    /// A client push; unlike server output it carries "join_ref" (null if none),
    /// which Phoenix reads when present.
    static Result<Frame> encode_for_server(const Message& m) {
        return detail::v1::write_message(&m.join_ref, m.ref, m.topic, m.event, m.payload);
    }

    static Result<ServerMessage> decode_from_server(FrameView frame) {
        auto m = detail::v1::decode_frame(frame);
        if (!m) return m.error();
        return detail::classify_from_server(std::move(*m));
    }
};

static_assert(ClientSerializer<V1Json>);

}  // namespace plume::wire
