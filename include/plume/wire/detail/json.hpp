// plume/wire/detail/json.hpp — JSON pieces shared by the V1 and V2 serializers:
// exception-free parsing with a depth bound, field validation, and writing
// messages straight into a string without building a temporary JSON tree.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "plume/detail/utf8.hpp"
#include "plume/result.hpp"
#include "plume/wire/error.hpp"
#include "plume/wire/message.hpp"

namespace plume::wire {

/// The deepest JSON nesting decode accepts. nlohmann parses iteratively, but
/// copying, comparing and dumping a value recurse, so an attacker's
/// "[[[[…" of a few megabytes would overflow the stack of whoever echoes it.
/// Real payloads stay far below this.
inline constexpr std::size_t max_json_depth = 512;

namespace detail {

/// True when `text` opens more than `limit` arrays/objects at once. A cheap
/// pre-scan: it only has to be right for text the parser would accept.
inline bool exceeds_depth(std::string_view text, std::size_t limit) noexcept {
    std::size_t depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                ++i;  // the escaped character cannot end the string
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return false;
}

/// Parses untrusted JSON text without throwing; `depth_limit` for a value
/// that sits inside another (a message's payload inside its array).
inline Result<nlohmann::json> parse_json(std::string_view text,
                                         std::size_t depth_limit = max_json_depth) {
    if (exceeds_depth(text, depth_limit)) return error::too_deep;
    try {
        auto json = nlohmann::json::parse(text.begin(), text.end(), nullptr,
                                          /*allow_exceptions=*/false);
        if (json.is_discarded()) return error::invalid_json;
        return json;
    } catch (const nlohmann::json::exception&) {
        return error::invalid_json;  // defensive: parse should not throw with the flag off
    }
}

/// Moves a ref (string, number or null) into `out`; false for any other kind.
/// A number keeps its kind and its JSON text, so it is echoed as a number.
inline bool take_optional_ref(nlohmann::json& j, std::optional<Ref>& out) {
    if (j.is_null()) {
        out.reset();
        return true;
    }
    if (j.is_string()) {
        out = Ref(std::move(j.get_ref<std::string&>()));
        return true;
    }
    if (j.is_number()) {
        out = Ref::number(j.dump());
        return true;
    }
    return false;
}

/// Builds a Message from its five decoded JSON fields, checking their types in
/// wire order so the first bad field is the one reported. The payload may be
/// any JSON value, as in Phoenix.
inline Result<Message> message_from_fields(nlohmann::json& join_ref, nlohmann::json& ref,
                                           nlohmann::json& topic, nlohmann::json& event,
                                           nlohmann::json& payload) {
    Message m;
    if (!take_optional_ref(join_ref, m.join_ref)) return error::invalid_join_ref;
    if (!take_optional_ref(ref, m.ref)) return error::invalid_ref;
    if (!topic.is_string()) return error::invalid_topic;
    m.topic = std::move(topic.get_ref<std::string&>());
    if (!event.is_string()) return error::invalid_event;
    m.event = std::move(event.get_ref<std::string&>());
    m.payload = std::move(payload);
    return m;
}

/// The client's view of a decoded text message: a phx_reply becomes a Reply.
inline Result<ServerMessage> classify_from_server(Message m) {
    if (m.event != event::reply) return ServerMessage(std::move(m));
    auto& payload = m.payload.json();
    if (!payload.is_object()) return error::invalid_reply;
    auto status = payload.find("status");
    auto response = payload.find("response");
    if (status == payload.end() || !status->is_string() || response == payload.end())
        return error::invalid_reply;
    return ServerMessage(Reply{std::move(m.join_ref), std::move(m.ref), std::move(m.topic),
                               std::move(status->get_ref<std::string&>()), std::move(*response)});
}

/// Appends `s` as a JSON string literal, escaped the way nlohmann::json (and
/// Jason) escape: \" \\ \b \f \n \r \t, other control characters as \u00XX,
/// everything else verbatim. False when `s` is not valid UTF-8.
inline bool append_json_string(std::string& out, std::string_view s) {
    if (!plume::detail::is_valid_utf8(s)) return false;
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 0xF];
                } else {
                    out += ch;
                }
        }
    }
    out += '"';
    return true;
}

/// True when `s` is a JSON number (RFC 8259 §6): -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
inline bool is_json_number(std::string_view s) noexcept {
    std::size_t i = 0, n = s.size();
    auto digits = [&] {
        std::size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            ++i;
        return i > start;
    };
    if (i < n && s[i] == '-') ++i;
    if (i < n && s[i] == '0')
        ++i;
    else if (!digits())
        return false;
    if (i < n && s[i] == '.' && (++i, !digits())) return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
        if (!digits()) return false;
    }
    return i == n;
}

/// Appends a ref — a string, or its number text for a numeric Ref — or `null`.
/// False for invalid UTF-8 or a "number" that is not one.
inline bool append_json_optional(std::string& out, const std::optional<Ref>& r) {
    if (!r) {
        out += "null";
        return true;
    }
    if (!r->is_number()) return append_json_string(out, r->str());
    if (!is_json_number(r->str())) return false;
    out += r->str();
    return true;
}

/// Appends a JSON value compactly (no spaces, object keys sorted — the same
/// bytes Jason writes for the small maps Phoenix sends). False when a string
/// inside is not valid UTF-8.
inline bool append_json_value(std::string& out, const nlohmann::json& j) {
    try {
        out += j.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::strict);
        return true;
    } catch (const nlohmann::json::exception&) {
        return false;
    }
}

/// Appends {"response":…,"status":…}: a reply's payload. The keys are in the
/// order Phoenix writes them (Jason emits a small Elixir map's keys sorted).
inline bool append_reply_payload(std::string& out, const Reply& r) {
    out += "{\"response\":";
    if (!append_json_value(out, r.response.json())) return false;
    out += ",\"status\":";
    if (!append_json_string(out, r.status)) return false;
    out += '}';
    return true;
}

}  // namespace detail
}  // namespace plume::wire
