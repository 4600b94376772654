// tests/fuzz/wire_roundtrip.hpp — the property the serializer fuzz targets
// check: whatever decodes re-encodes, and decodes back to the same value
// (less what the wire format drops, e.g. V1's server output has no join_ref).
#pragma once

#include <string_view>
#include <variant>

#include "fuzz_check.hpp"
#include "plume/wire/message.hpp"
#include "plume/wire/serializer.hpp"

namespace plume_fuzz {

/// `Drop` says what a server-to-client frame loses: drop(Message&) and
/// drop(Reply&) turn a value into what decode_from_server(encode(value)) gives.
template <plume::wire::ClientSerializer S, class Drop>
void check_roundtrips(plume::wire::FrameView frame, Drop drop) {
    using namespace plume::wire;

    // Server view: what a client sent.
    if (auto m = S::decode(frame)) {
        auto pushed = S::encode_for_server(*m);  // as a client would send it again
        FUZZ_CHECK(pushed);
        auto again = S::decode(*pushed);
        FUZZ_CHECK(again && *again == *m);

        auto out = S::encode(*m);  // the server echoing it as a push
        FUZZ_CHECK(out);
        // A text "phx_reply" is a Reply (or invalid) to a client; anything else a Message.
        if (out->is_binary || m->event != event::reply) {
            auto seen = S::decode_from_server(*out);
            FUZZ_CHECK(seen && std::holds_alternative<Message>(*seen));
            Message expected = *m;
            drop(expected, out->is_binary);
            FUZZ_CHECK(std::get<Message>(*seen) == expected);
        }
    }

    // Client view: what a server sent.
    if (auto sm = S::decode_from_server(frame)) {
        if (auto* m = std::get_if<Message>(&*sm)) {
            auto out = S::encode(*m);
            FUZZ_CHECK(out);
            auto again = S::decode_from_server(*out);
            FUZZ_CHECK(again && std::holds_alternative<Message>(*again));
            Message expected = *m;
            drop(expected, out->is_binary);
            FUZZ_CHECK(std::get<Message>(*again) == expected);

            if (!m->join_ref && !m->ref) {  // a broadcast
                auto b = S::encode(Broadcast{m->topic, m->event, m->payload});
                FUZZ_CHECK(b);
                auto bm = S::decode_from_server(*b);
                FUZZ_CHECK(bm && std::holds_alternative<Message>(*bm) &&
                           std::get<Message>(*bm) == *m);
            }

            auto pushed = S::encode_for_server(*m);
            FUZZ_CHECK(pushed);
            auto back = S::decode(*pushed);
            FUZZ_CHECK(back && *back == *m);
        } else {
            const auto& r = std::get<Reply>(*sm);
            auto out = S::encode(r);
            FUZZ_CHECK(out);
            auto again = S::decode_from_server(*out);
            FUZZ_CHECK(again && std::holds_alternative<Reply>(*again));
            Reply expected = r;
            drop(expected, out->is_binary);
            FUZZ_CHECK(std::get<Reply>(*again) == expected);
        }
    }
}

}  // namespace plume_fuzz
