// plume/wire/message.hpp — the Phoenix Channels protocol as plain values.
//
// A Message is what travels in either direction: {join_ref, ref, topic, event,
// payload}. A Reply answers the message with the same ref and goes on the wire
// as event "phx_reply" with payload {"status", "response"}. A Broadcast is a
// message for every subscriber of a topic and carries no refs. These types know
// nothing about sockets; serializers (v1_json.hpp, v2_json.hpp) turn them into
// frames and back.
//
// A Payload is either a JSON value — any JSON value: Phoenix accepts
// push("ev", "str"), numbers, null and arrays as well as objects — or Binary
// bytes: phoenix.js sends a binary frame when the payload is an ArrayBuffer,
// and a reply may carry binary data back. join_ref and ref are Refs (ref.hpp):
// strings or numbers, echoed in the kind the client used.
//
//   using namespace plume::wire;
//   Message join = phx_join("room:lobby", "1", nlohmann::json{{"token", "…"}});
//   Reply ok = reply_ok(join);                       // ["1","1","room:lobby","phx_reply",…]
//   Message crash = phx_error("room:lobby", "1");    // payload {"reason":"channel_crash"}
//   Broadcast b{"room:lobby", "new_msg", nlohmann::json{{"body", "hi"}}};
//   Message bin{"1", "5", "room:lobby", "upload", Binary{std::string(bytes, size)}};
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "plume/wire/ref.hpp"

namespace plume::wire {

/// Event names with a meaning in the protocol, spelled as Phoenix sends them.
namespace event {
inline constexpr std::string_view join = "phx_join";
inline constexpr std::string_view leave = "phx_leave";
inline constexpr std::string_view reply = "phx_reply";
inline constexpr std::string_view error = "phx_error";
inline constexpr std::string_view close = "phx_close";
inline constexpr std::string_view heartbeat = "heartbeat";
}  // namespace event

/// The topic of socket-level messages (heartbeats and their replies).
inline constexpr std::string_view phoenix_topic = "phoenix";

/// Reply statuses phoenix.js reacts to (receive("ok"), receive("error")); any
/// other string is legal and reaches the matching receive(status) hook.
namespace status {
inline constexpr std::string_view ok = "ok";
inline constexpr std::string_view error = "error";
}  // namespace status

/// The "reason" strings Phoenix puts in error payloads.
namespace reason {
inline constexpr std::string_view unmatched_topic = "unmatched topic";
inline constexpr std::string_view join_crashed = "join crashed";
inline constexpr std::string_view channel_crash = "channel_crash";
inline constexpr std::string_view too_many_channels = "too many channels joined";
// plume's limits (server/limits.hpp); Phoenix has none built in.
inline constexpr std::string_view rate_limited = "rate_limited";
inline constexpr std::string_view topic_too_long = "topic too long";
inline constexpr std::string_view event_too_long = "event too long";
inline constexpr std::string_view join_too_large = "join payload too large";
}  // namespace reason

/// Raw bytes of a binary payload (a V2 binary frame's tail).
struct Binary {
    std::string bytes;

    friend bool operator==(const Binary&, const Binary&) = default;
};

/// A message payload: a JSON value (of any kind) or binary bytes.
///
/// Default-constructed it is the empty object {}, the payload of phx_leave,
/// phx_close and heartbeats. It converts implicitly from nlohmann::json and
/// from Binary, so `msg.payload = nlohmann::json{{"body", "hi"}}` and
/// `msg.payload = Binary{bytes}` both read naturally.
class Payload {
  public:
    Payload() : value_(nlohmann::json::object()) {}
    Payload(nlohmann::json json) : value_(std::move(json)) {}
    Payload(Binary binary) : value_(std::move(binary)) {}

    bool is_json() const noexcept { return value_.index() == 0; }
    bool is_binary() const noexcept { return value_.index() == 1; }

    /// The JSON value. Precondition: is_json() (else std::bad_variant_access).
    const nlohmann::json& json() const& { return std::get<0>(value_); }
    nlohmann::json& json() & { return std::get<0>(value_); }
    nlohmann::json&& json() && { return std::get<0>(std::move(value_)); }

    /// The binary bytes. Precondition: is_binary() (else std::bad_variant_access).
    const std::string& bytes() const& { return std::get<1>(value_).bytes; }
    std::string& bytes() & { return std::get<1>(value_).bytes; }
    std::string&& bytes() && { return std::move(std::get<1>(value_).bytes); }

    friend bool operator==(const Payload& a, const Payload& b) {
        if (a.value_.index() != b.value_.index()) return false;
        return a.is_json() ? a.json() == b.json() : a.bytes() == b.bytes();
    }

  private:
    std::variant<nlohmann::json, Binary> value_;
};

/// One protocol message. join_ref and ref are null (std::nullopt) where
/// Phoenix sends null: broadcasts, server pushes (ref), heartbeats (join_ref).
struct Message {
    std::optional<Ref> join_ref;
    std::optional<Ref> ref;
    std::string topic;
    std::string event;
    Payload payload;

    friend bool operator==(const Message&, const Message&) = default;
};

/// The answer to the message whose ref it carries; on the wire it is event
/// "phx_reply" with payload {"status": status, "response": response}, or a V2
/// binary reply frame (kind 1) when the response is Binary.
struct Reply {
    std::optional<Ref> join_ref;
    std::optional<Ref> ref;
    std::string topic;
    std::string status;
    Payload response;

    friend bool operator==(const Reply&, const Reply&) = default;
};

/// A message for every subscriber of a topic; encoded once, sent to many.
struct Broadcast {
    std::string topic;
    std::string event;
    Payload payload;

    friend bool operator==(const Broadcast&, const Broadcast&) = default;
};

/// What a client receives from a server: a reply to one of its pushes, or any
/// other message (server pushes and broadcasts alike; a broadcast decodes as a
/// Message whose join_ref and ref are null).
using ServerMessage = std::variant<Message, Reply>;

// ---------------------------------------------------------------------------
// Control messages, exactly as Phoenix and phoenix.js put them on the wire.

/// {"reason": why} — the payload shape of Phoenix's error replies and phx_error.
inline nlohmann::json reason_payload(std::string_view why) {
    return nlohmann::json{{"reason", why}};
}

/// Client join: ["<ref>","<ref>",topic,"phx_join",params]. A join's join_ref is
/// its own ref; every later push of that channel incarnation carries it.
inline Message phx_join(std::string topic, Ref ref, Payload params = {}) {
    return {ref, ref, std::move(topic), std::string(event::join), std::move(params)};
}

/// Client leave: [join_ref, ref, topic, "phx_leave", {}].
inline Message phx_leave(std::string topic, std::optional<Ref> join_ref, Ref ref) {
    return {std::move(join_ref), std::move(ref), std::move(topic), std::string(event::leave), {}};
}

/// Client heartbeat: [null, ref, "phoenix", "heartbeat", {}].
inline Message heartbeat(Ref ref) {
    return {std::nullopt,
            std::move(ref),
            std::string(phoenix_topic),
            std::string(event::heartbeat),
            {}};
}

/// True for a socket-level heartbeat (which the socket answers itself).
inline bool is_heartbeat(const Message& m) noexcept {
    return m.topic == phoenix_topic && m.event == event::heartbeat;
}

/// Channel crashed: [join_ref, join_ref, topic, "phx_error", {"reason":"channel_crash"}]
/// (the payload of Phoenix ≥ 1.8.10; earlier versions sent {}). join_ref is
/// the one the client's phx_join carried, null included.
inline Message phx_error(std::string topic, std::optional<Ref> join_ref) {
    auto ref = join_ref;
    return {std::move(join_ref), std::move(ref), std::move(topic), std::string(event::error),
            reason_payload(reason::channel_crash)};
}

/// Channel closed gracefully: [join_ref, join_ref, topic, "phx_close", {}],
/// with the join_ref of the client's phx_join (null included).
inline Message phx_close(std::string topic, std::optional<Ref> join_ref) {
    auto ref = join_ref;
    return {std::move(join_ref), std::move(ref), std::move(topic), std::string(event::close), {}};
}

/// A reply to `request` with any status: echoes its join_ref, ref and topic.
inline Reply reply(const Message& request, std::string status, Payload response = {}) {
    return {request.join_ref, request.ref, request.topic, std::move(status), std::move(response)};
}

/// {"status":"ok","response":response} to `request`.
inline Reply reply_ok(const Message& request, Payload response = {}) {
    return reply(request, std::string(status::ok), std::move(response));
}

/// {"status":"error","response":response} to `request`.
inline Reply reply_error(const Message& request, Payload response = {}) {
    return reply(request, std::string(status::error), std::move(response));
}

/// Heartbeat answer: [null, ref, "phoenix", "phx_reply", {"response":{},"status":"ok"}].
/// join_ref is always null, whatever the client sent.
inline Reply heartbeat_reply(const Message& heartbeat) {
    return {std::nullopt, heartbeat.ref, std::string(phoenix_topic), std::string(status::ok), {}};
}

/// Answer to a message for a topic with no channel (no route, not joined, or
/// channel gone): an error reply {"reason":"unmatched topic"} whose join_ref is
/// null even when the client sent one — Phoenix does it so, and phoenix.js
/// relies on null join_refs passing its membership filter.
inline Reply unmatched_topic_reply(const Message& request) {
    return {std::nullopt, request.ref, request.topic, std::string(status::error),
            reason_payload(reason::unmatched_topic)};
}

/// The Message form of a Broadcast: [null, null, topic, event, payload].
inline Message to_message(Broadcast b) {
    return {std::nullopt, std::nullopt, std::move(b.topic), std::move(b.event),
            std::move(b.payload)};
}

}  // namespace plume::wire
