// plume/wire/encoded_payload.hpp — a server push whose JSON payload is
// already encoded text, spliced into the frame as is.
//
// One payload pushed to many clients (presence_state to every joiner of a
// topic) differs per client only by its join_ref: encoding the payload once
// and splicing its text into each frame saves re-encoding it per client.
//
//   auto text = std::make_shared<const std::string>(R"({"42":{"metas":[]}})");
//   auto frame = plume::wire::encode_push_with_payload_text(
//       plume::wire::Vsn::v2, "3", "room:lobby", "presence_state", *text);
//   // frame->bytes == R"(["3",null,"room:lobby","presence_state",{"42":{"metas":[]}}])"
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "plume/result.hpp"
#include "plume/wire/ref.hpp"
#include "plume/wire/serializer.hpp"
#include "plume/wire/vsn.hpp"

namespace plume::wire {

/// The frame of a push (no ref) from the server whose payload is
/// `payload_json`, the text of a JSON object the caller vouches for (it is
/// not parsed or checked). The same bytes as encoding the parsed payload.
inline Result<Frame> encode_push_with_payload_text(Vsn vsn, const std::optional<Ref>& join_ref,
                                                   std::string_view topic, std::string_view event,
                                                   std::string_view payload_json) {
    static const std::optional<Ref> no_ref;
    auto splice = [&](std::string& out) {
        out += payload_json;
        return true;
    };
    if (vsn == Vsn::v2) return detail::v2::write_array(join_ref, no_ref, topic, event, splice);
    // V1 drops join_ref, as its encode(Message) does.
    return detail::v1::write_object(nullptr, no_ref, topic, event, splice);
}

}  // namespace plume::wire
