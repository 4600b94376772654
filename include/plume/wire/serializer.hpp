// plume/wire/serializer.hpp — what a serializer policy provides, and frames.
//
// A serializer turns Messages, Replies and Broadcasts into WebSocket frames
// (text or binary) and frames back into Messages, like Phoenix's
// Phoenix.Socket.Serializer behaviour. It is a class of static functions chosen
// at compile time (plume::wire::V1Json, plume::wire::V2Json), so a server
// template can be checked with one readable error: `requires Serializer<S>`.
//
// The plain names are the server's view (Phoenix's encode!/fastlane!/decode!):
// decode() reads what a client sent, encode() writes what a server sends. A
// ClientSerializer also has the client's view (phoenix.js's serializer):
// encode_for_server() and decode_from_server(). The two views differ only for
// V2 binary frames, whose kind-0 layout depends on the direction.
//
// Nothing here throws on bad input: decode returns the reason as an error_code
// (plume::wire::error), and so does encode for values the wire cannot carry
// (a 255+-byte topic in a binary frame, invalid UTF-8 in JSON).
//
//   template <plume::wire::Serializer S>
//   void on_frame(plume::wire::FrameView frame) {
//       auto msg = S::decode(frame);
//       if (!msg) return log(msg.error().message());
//       plume::Result<plume::wire::Frame> out = S::encode(plume::wire::reply_ok(*msg));
//   }
#pragma once

#include <concepts>
#include <string>
#include <string_view>
#include <type_traits>

#include "plume/result.hpp"
#include "plume/wire/error.hpp"
#include "plume/wire/message.hpp"

namespace plume::wire {

// Serializer results read as wire::Result inside this namespace.
using plume::Result;

/// An encoded frame: its WebSocket opcode (text or binary) and its bytes.
struct Frame {
    bool is_binary = false;
    std::string bytes;

    static Frame text(std::string bytes) { return {false, std::move(bytes)}; }
    static Frame binary(std::string bytes) { return {true, std::move(bytes)}; }

    friend bool operator==(const Frame&, const Frame&) = default;
};

/// A received frame that decode() reads without copying.
struct FrameView {
    bool is_binary = false;
    std::string_view bytes;

    constexpr FrameView() = default;
    constexpr FrameView(bool is_binary, std::string_view bytes) noexcept
        : is_binary(is_binary), bytes(bytes) {}
    FrameView(const Frame& frame) noexcept : is_binary(frame.is_binary), bytes(frame.bytes) {}

    static constexpr FrameView text(std::string_view bytes) noexcept { return {false, bytes}; }
    static constexpr FrameView binary(std::string_view bytes) noexcept { return {true, bytes}; }
};

/// What a server needs from a serializer policy.
template <class S>
concept Serializer = requires(FrameView frame, const Message& message, const Reply& reply,
                              const Broadcast& broadcast) {
    // The version this serializer speaks, as in the client's ?vsn= parameter.
    requires std::same_as<std::remove_cvref_t<decltype(S::vsn)>, std::string_view>;
    // A frame a client sent → the Message in it, or why not.
    { S::decode(frame) } -> std::same_as<Result<Message>>;
    // A server push (join_ref set, ref null), a reply, a broadcast → a frame.
    { S::encode(message) } -> std::same_as<Result<Frame>>;
    { S::encode(reply) } -> std::same_as<Result<Frame>>;
    { S::encode(broadcast) } -> std::same_as<Result<Frame>>;
};

/// A serializer a C++ client can also use to talk to a server.
template <class S>
concept ClientSerializer = Serializer<S> && requires(FrameView frame, const Message& message) {
    { S::encode_for_server(message) } -> std::same_as<Result<Frame>>;
    { S::decode_from_server(frame) } -> std::same_as<Result<ServerMessage>>;
};

}  // namespace plume::wire
