// plume/wire/error.hpp — why a frame could not be decoded or encoded.
//
// Every serializer reports failures as std::error_code values of this category
// instead of throwing, because decode runs on bytes from the network. The
// enumerators are fine-grained so the server can pick its answer per case
// (e.g. close 1007 for text that is not JSON, a logged drop for a bad shape).
//
//   auto r = plume::wire::V2Json::decode(frame);
//   if (r.error() == plume::wire::error::invalid_topic) ...
//   std::cerr << r.error().message();   // "topic must be a string"
#pragma once

#include <string>
#include <system_error>
#include <type_traits>

namespace plume::wire {

enum class error {
    // Text frames (V1 and V2 JSON).
    invalid_json = 1,  // not parseable as JSON (this includes invalid UTF-8)
    too_deep,          // JSON nested deeper than max_json_depth
    not_an_array,      // V2 text message is not [join_ref, ref, topic, event, payload]
    not_an_object,     // V1 text message is not {"topic":…, …}
    too_few_elements,  // V2 array with fewer than 5 elements (extra ones are ignored)
    missing_field,     // V1 object without one of topic, event, payload, ref
    invalid_join_ref,  // join_ref neither a string, a number nor null
    invalid_ref,       // ref neither a string, a number nor null
    invalid_topic,     // topic not a string
    invalid_event,     // event not a string
    invalid_payload,   // no longer reported: a payload may be any JSON value
    invalid_reply,     // phx_reply payload is not {"status": string, "response": …}
    // Binary frames (V2).
    truncated_frame,     // shorter than its header, or size bytes point past the end
    unexpected_kind,     // kind byte not valid for this direction
    invalid_utf8,        // a header string (or, on encode, any string) is not UTF-8
    field_too_long,      // encode: join_ref/ref/topic/event/status over 255 bytes
    binary_unsupported,  // V1 cannot carry a binary payload
    // Serializer selection.
    unsupported_vsn,  // vsn matches neither ~> 1.0.0 nor ~> 2.0.0
};

namespace detail {

class WireCategory final : public std::error_category {
  public:
    const char* name() const noexcept override { return "plume.wire"; }
    std::string message(int code) const override {
        switch (static_cast<error>(code)) {
            case error::invalid_json:
                return "frame is not valid JSON";
            case error::too_deep:
                return "JSON is nested too deeply";
            case error::not_an_array:
                return "message must be a JSON array [join_ref, ref, topic, event, payload]";
            case error::not_an_object:
                return "message must be a JSON object {topic, event, payload, ref}";
            case error::too_few_elements:
                return "message array has fewer than 5 elements";
            case error::missing_field:
                return "message object lacks one of topic, event, payload, ref";
            case error::invalid_join_ref:
                return "join_ref must be a string, a number or null";
            case error::invalid_ref:
                return "ref must be a string, a number or null";
            case error::invalid_topic:
                return "topic must be a string";
            case error::invalid_event:
                return "event must be a string";
            case error::invalid_payload:
                return "invalid payload";
            case error::invalid_reply:
                return "phx_reply payload must be {\"status\": string, \"response\": ...}";
            case error::truncated_frame:
                return "binary frame is shorter than its header says";
            case error::unexpected_kind:
                return "binary frame has a kind byte not valid in this direction";
            case error::invalid_utf8:
                return "string is not valid UTF-8";
            case error::field_too_long:
                return "join_ref, ref, topic, event and status must be at most 255 bytes "
                       "in a binary frame";
            case error::binary_unsupported:
                return "the V1 JSON serializer cannot carry binary payloads";
            case error::unsupported_vsn:
                return "unsupported vsn (plume speaks ~> 1.0.0 and ~> 2.0.0)";
        }
        return "unknown plume.wire error";
    }
};

}  // namespace detail

inline const std::error_category& wire_category() noexcept {
    static const detail::WireCategory category;
    return category;
}

inline std::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), wire_category()};
}

}  // namespace plume::wire

template <>
struct std::is_error_code_enum<plume::wire::error> : std::true_type {};
