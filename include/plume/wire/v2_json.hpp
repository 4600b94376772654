// plume/wire/v2_json.hpp — the V2 serializer (vsn "2.0.0"), what phoenix.js speaks.
//
// Text frames carry a JSON array [join_ref, ref, topic, event, payload];
// binary frames carry a binary payload behind a small header (Phoenix's
// V2.JSONSerializer and phoenix.js serializer.js):
//
//   kind 0 push, client→server:  0, len(join_ref), len(ref), len(topic), len(event),
//                                join_ref, ref, topic, event, payload
//   kind 0 push, server→client:  0, len(join_ref), len(topic), len(event),
//                                join_ref, topic, event, payload          (no ref)
//   kind 1 reply, server→client: 1, len(join_ref), len(ref), len(topic), len(status),
//                                join_ref, ref, topic, status, payload
//   kind 2 broadcast, s→c:       2, len(topic), len(event), topic, event, payload
//
// Each length is one byte, so every header string is at most 255 bytes of
// UTF-8; encode reports error::field_too_long rather than truncating. An absent
// join_ref/ref is written as the empty string, and an empty one decodes as
// absent (phoenix.js treats "" and null alike); a numeric ref is written as
// its digits. phoenix.js < 1.8.7 wrote
// non-ASCII header strings incorrectly, so binary pushes from those clients
// need ASCII topics, events and refs.
//
// Which frame a value becomes is decided by its payload: a JSON payload makes
// a text frame, a Binary payload (or Binary reply response) a binary frame.
//
//   using plume::wire::V2Json;
//   auto msg = V2Json::decode(plume::wire::FrameView::text(
//       R"(["1","1","room:lobby","phx_join",{}])"));
//   auto frame = V2Json::encode(plume::wire::reply_ok(*msg));
//   // frame->bytes == R"(["1","1","room:lobby","phx_reply",{"response":{},"status":"ok"}])"
#pragma once

#include <array>
#include <cstddef>
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

namespace detail::v2 {

inline constexpr unsigned char kind_push = 0;
inline constexpr unsigned char kind_reply = 1;
inline constexpr unsigned char kind_broadcast = 2;
inline constexpr std::size_t max_field_size = 255;

/// The header strings and payload of a binary frame, viewing its bytes.
template <std::size_t N>
struct BinaryParts {
    std::array<std::string_view, N> fields;
    std::string_view payload;
};

/// Splits a binary frame with N one-byte sizes after its kind byte.
template <std::size_t N>
Result<BinaryParts<N>> read_binary(std::string_view bytes) {
    if (bytes.size() < 1 + N) return error::truncated_frame;
    BinaryParts<N> parts;
    std::size_t offset = 1 + N;
    for (std::size_t i = 0; i < N; ++i) {
        std::size_t size = static_cast<unsigned char>(bytes[1 + i]);
        if (bytes.size() - offset < size) return error::truncated_frame;
        parts.fields[i] = bytes.substr(offset, size);
        offset += size;
    }
    // Header strings become topics, events and refs that end up in JSON
    // replies and logs, so they must be text.
    for (auto field : parts.fields)
        if (!plume::detail::is_valid_utf8(field)) return error::invalid_utf8;
    parts.payload = bytes.substr(offset);
    return parts;
}

/// Builds a binary frame: kind, one size byte per field, fields, payload.
template <std::size_t N>
Result<Frame> write_binary(unsigned char kind, const std::array<std::string_view, N>& fields,
                           std::string_view payload) {
    std::size_t total = 1 + N + payload.size();
    for (auto field : fields) {
        if (field.size() > max_field_size) return error::field_too_long;
        total += field.size();
    }
    std::string out;
    out.reserve(total);
    out += static_cast<char>(kind);
    for (auto field : fields)
        out += static_cast<char>(field.size());
    for (auto field : fields)
        out += field;
    out += payload;
    return Frame::binary(std::move(out));
}

/// A ref's text in a binary header; a numeric ref is written as its digits
/// (where Phoenix raises, unable to put a number in a binary header).
inline std::string_view or_empty(const std::optional<Ref>& r) noexcept {
    return r ? std::string_view(r->str()) : std::string_view();
}

inline std::optional<Ref> empty_as_null(std::string_view s) {
    if (s.empty()) return std::nullopt;
    return Ref(s);
}

/// [join_ref, ref, topic, event, payload] as text. The payload is written by
/// `write_payload(out)`, which returns false on invalid UTF-8.
template <class WritePayload>
Result<Frame> write_array(const std::optional<Ref>& join_ref, const std::optional<Ref>& ref,
                          std::string_view topic, std::string_view event,
                          WritePayload&& write_payload) {
    std::string out;
    out += '[';
    if (!append_json_optional(out, join_ref)) return error::invalid_utf8;
    out += ',';
    if (!append_json_optional(out, ref)) return error::invalid_utf8;
    out += ',';
    if (!append_json_string(out, topic)) return error::invalid_utf8;
    out += ',';
    if (!append_json_string(out, event)) return error::invalid_utf8;
    out += ',';
    if (!write_payload(out)) return error::invalid_utf8;
    out += ']';
    return Frame::text(std::move(out));
}

/// Any JSON payload: Phoenix's V2 encode! raises on a non-map push or
/// broadcast payload (its replies take any value), plume writes what the app
/// gives, since phoenix.js and plume's decoders accept any JSON value.
inline Result<Frame> write_message_array(const std::optional<Ref>& join_ref,
                                         const std::optional<Ref>& ref, std::string_view topic,
                                         std::string_view event, const nlohmann::json& payload) {
    return write_array(join_ref, ref, topic, event,
                       [&](std::string& out) { return append_json_value(out, payload); });
}

inline bool is_json_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/// `text` without the JSON whitespace at its ends.
inline std::string_view trim_json_space(std::string_view text) noexcept {
    std::size_t b = 0, e = text.size();
    while (b < e && is_json_space(text[b]))
        ++b;
    while (e > b && is_json_space(text[e - 1]))
        --e;
    return text.substr(b, e - b);
}

/// The envelope read by hand, the payload alone parsed into a tree: what
/// every client sends, [join_ref, ref, "topic", "event", payload] with refs
/// that are strings or null and header strings without escapes. nullopt for
/// anything else (numbers, escapes, extra elements, errors), which the full
/// parse below decodes and reports; on the frames it takes this gives the
/// same Message (tests/unit/wire_v2_json.cpp compares the two on mutated
/// frames).
inline std::optional<Message> decode_envelope(std::string_view text) {
    text = trim_json_space(text);
    std::size_t i = 0;
    const std::size_t n = text.size();
    auto skip_space = [&] {
        while (i < n && is_json_space(text[i]))
            ++i;
    };
    // A string without escapes or control characters, or null (allowed for refs).
    auto field = [&](bool nullable, std::optional<std::string_view>& out) {
        skip_space();
        if (nullable && text.substr(i, 4) == "null") {
            i += 4;
            out.reset();
        } else {
            if (i >= n || text[i] != '"') return false;
            const std::size_t start = ++i;
            while (i < n && text[i] != '"') {
                if (text[i] == '\\' || static_cast<unsigned char>(text[i]) < 0x20) return false;
                ++i;
            }
            if (i >= n) return false;
            out = text.substr(start, i - start);
            ++i;
            if (!plume::detail::is_valid_utf8(*out)) return false;
        }
        skip_space();
        if (i >= n || text[i] != ',') return false;
        ++i;
        return true;
    };
    if (i >= n || text[i] != '[') return std::nullopt;
    ++i;
    std::optional<std::string_view> join_ref, ref, topic, event;
    if (!field(true, join_ref) || !field(true, ref) || !field(false, topic) || !field(false, event))
        return std::nullopt;
    if (n == i || text[n - 1] != ']') return std::nullopt;
    std::string_view payload_text = text.substr(i, n - 1 - i);
    Message m{join_ref ? std::optional<Ref>(Ref(*join_ref)) : std::nullopt,
              ref ? std::optional<Ref>(Ref(*ref)) : std::nullopt,
              std::string(*topic),
              std::string(*event),
              {}};
    if (trim_json_space(payload_text) == "{}") return m;  // Payload() is {}
    // One level less: the payload sits inside the message's array.
    auto payload = parse_json(payload_text, max_json_depth - 1);
    if (!payload) return std::nullopt;  // or extra elements after it
    m.payload = std::move(*payload);
    return m;
}

/// Decodes any text frame through one JSON tree of the whole array.
inline Result<Message> decode_tree(std::string_view text) {
    auto parsed = parse_json(text);
    if (!parsed) return parsed.error();
    auto& j = *parsed;
    if (!j.is_array()) return error::not_an_array;
    // Like Phoenix's [j, r, t, e, p | _]: extra elements are ignored.
    if (j.size() < 5) return error::too_few_elements;
    return message_from_fields(j[0], j[1], j[2], j[3], j[4]);
}

inline Result<Message> decode_text(std::string_view text) {
    if (auto m = decode_envelope(text)) return std::move(*m);
    return decode_tree(text);
}

}  // namespace detail::v2

/// The V2 serializer policy; see the header comment for the frame layouts.
struct V2Json {
    static constexpr std::string_view vsn = "2.0.0";

    // ---- server view --------------------------------------------------------

    /// Decodes a frame a client sent: a text array, or a binary kind-0 push
    /// (4 size bytes) whose payload becomes Binary.
    static Result<Message> decode(FrameView frame) {
        if (!frame.is_binary) return detail::v2::decode_text(frame.bytes);
        if (frame.bytes.empty()) return error::truncated_frame;
        if (static_cast<unsigned char>(frame.bytes[0]) != detail::v2::kind_push)
            return error::unexpected_kind;
        auto parts = detail::v2::read_binary<4>(frame.bytes);
        if (!parts) return parts.error();
        auto& f = parts->fields;
        return Message{detail::v2::empty_as_null(f[0]), detail::v2::empty_as_null(f[1]),
                       std::string(f[2]), std::string(f[3]), Binary{std::string(parts->payload)}};
    }

    /// A server push: text [join_ref, ref, topic, event, payload], or binary
    /// kind 0 (join_ref, topic, event — the binary push layout has no ref).
    static Result<Frame> encode(const Message& m) {
        if (m.payload.is_binary())
            return detail::v2::write_binary<3>(detail::v2::kind_push,
                                               {detail::v2::or_empty(m.join_ref), m.topic, m.event},
                                               m.payload.bytes());
        return detail::v2::write_message_array(m.join_ref, m.ref, m.topic, m.event,
                                               m.payload.json());
    }

    /// A reply: text [join_ref, ref, topic, "phx_reply", {"response","status"}],
    /// or binary kind 1 when the response is Binary.
    static Result<Frame> encode(const Reply& r) {
        if (r.response.is_binary())
            return detail::v2::write_binary<4>(
                detail::v2::kind_reply,
                {detail::v2::or_empty(r.join_ref), detail::v2::or_empty(r.ref), r.topic, r.status},
                r.response.bytes());
        return detail::v2::write_array(
            r.join_ref, r.ref, r.topic, event::reply,
            [&](std::string& out) { return detail::append_reply_payload(out, r); });
    }

    /// A broadcast: text [null, null, topic, event, payload], or binary kind 2.
    static Result<Frame> encode(const Broadcast& b) {
        if (b.payload.is_binary())
            return detail::v2::write_binary<2>(detail::v2::kind_broadcast, {b.topic, b.event},
                                               b.payload.bytes());
        // A named empty ref, not std::nullopt temporaries: GCC 12 at -O3 warns
        // (falsely) that the temporaries' strings may be uninitialized.
        static const std::optional<Ref> no_ref;
        return detail::v2::write_message_array(no_ref, no_ref, b.topic, b.event, b.payload.json());
    }

    // ---- client view --------------------------------------------------------

    /// A client push: text as encode(), or binary kind 0 with 4 size bytes.
    static Result<Frame> encode_for_server(const Message& m) {
        if (m.payload.is_binary())
            return detail::v2::write_binary<4>(
                detail::v2::kind_push,
                {detail::v2::or_empty(m.join_ref), detail::v2::or_empty(m.ref), m.topic, m.event},
                m.payload.bytes());
        return detail::v2::write_message_array(m.join_ref, m.ref, m.topic, m.event,
                                               m.payload.json());
    }

    /// Decodes a frame a server sent: "phx_reply" texts and binary kind 1
    /// become a Reply; everything else (pushes, kind 0; broadcasts, kind 2)
    /// a Message.
    static Result<ServerMessage> decode_from_server(FrameView frame) {
        if (!frame.is_binary) {
            auto m = detail::v2::decode_text(frame.bytes);
            if (!m) return m.error();
            return detail::classify_from_server(std::move(*m));
        }
        if (frame.bytes.empty()) return error::truncated_frame;
        using detail::v2::empty_as_null;
        switch (static_cast<unsigned char>(frame.bytes[0])) {
            case detail::v2::kind_push: {
                auto parts = detail::v2::read_binary<3>(frame.bytes);
                if (!parts) return parts.error();
                auto& f = parts->fields;
                return ServerMessage(Message{empty_as_null(f[0]), std::nullopt, std::string(f[1]),
                                             std::string(f[2]),
                                             Binary{std::string(parts->payload)}});
            }
            case detail::v2::kind_reply: {
                auto parts = detail::v2::read_binary<4>(frame.bytes);
                if (!parts) return parts.error();
                auto& f = parts->fields;
                return ServerMessage(Reply{empty_as_null(f[0]), empty_as_null(f[1]),
                                           std::string(f[2]), std::string(f[3]),
                                           Binary{std::string(parts->payload)}});
            }
            case detail::v2::kind_broadcast: {
                auto parts = detail::v2::read_binary<2>(frame.bytes);
                if (!parts) return parts.error();
                auto& f = parts->fields;
                return ServerMessage(Message{std::nullopt, std::nullopt, std::string(f[0]),
                                             std::string(f[1]),
                                             Binary{std::string(parts->payload)}});
            }
            default:
                return error::unexpected_kind;
        }
    }
};

static_assert(ClientSerializer<V2Json>);

}  // namespace plume::wire
