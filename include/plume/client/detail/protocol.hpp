// plume/client/detail/protocol.hpp — what PushImpl, ChannelImpl and
// SocketImpl share: the Phoenix event names, the callback types, and the
// helpers that build an endpoint URL and describe replies. See core.hpp.
#pragma once

#include <asio.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "plume/client/detail/timer.hpp"
#include "plume/client/error.hpp"
#include "plume/client/options.hpp"
#include "plume/detail/base64.hpp"
#include "plume/transport/client.hpp"
#include "plume/wire/v1_json.hpp"
#include "plume/wire/v2_json.hpp"
#include "plume/wire/vsn.hpp"

namespace plume::client::detail {

using std::chrono::milliseconds;
using Json = nlohmann::json;

class SocketImpl;
class ChannelImpl;
class PushImpl;

using EventHandler = std::function<void(const Event&)>;
using ResponseHandler = std::function<void(const wire::Payload&)>;
using Waiter = std::function<void(std::error_code, const Reply&)>;

inline constexpr std::string_view join_event = "phx_join";
inline constexpr std::string_view leave_event = "phx_leave";
inline constexpr std::string_view reply_event = "phx_reply";
inline constexpr std::string_view close_event = "phx_close";
inline constexpr std::string_view error_event = "phx_error";

/// The completion code of Push::async_reply for a reply status.
inline std::error_code status_code(std::string_view status) {
    if (status == "ok") return {};
    if (status == "timeout") return error::timeout;
    return error::reply_error;
}

inline Json reason(std::string_view why) {
    return Json{{"reason", why}};
}

/// A short printable excerpt of a frame for error messages.
inline std::string preview(std::string_view data) {
    constexpr std::size_t max = 120;
    std::string out;
    for (char c : data.substr(0, max))
        out += (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) ? '?'
                                                                                              : c;
    if (data.size() > max) out += "...";
    return out;
}

// ------------------------------------------------------------------ URL --

/// encodeURIComponent: everything but A-Z a-z 0-9 - _ . ! ~ * ' ( ) is %XX.
inline std::string uri_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            std::string_view("-_.!~*'()").find(ch) != std::string_view::npos) {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xF];
        }
    }
    return out;
}

/// phoenix.js's Ajax.serialize: nested objects and arrays become a[b]=c and
/// a[0]=c; null values are skipped.
inline void append_query(std::string& out, const Json& value, const std::string& key) {
    if (value.is_object()) {
        for (auto& [k, v] : value.items())
            append_query(out, v, key.empty() ? k : key + "[" + k + "]");
        return;
    }
    if (value.is_array()) {
        for (std::size_t i = 0; i < value.size(); ++i)
            append_query(out, value[i], key + "[" + std::to_string(i) + "]");
        return;
    }
    if (value.is_null() || key.empty()) return;
    if (!out.empty()) out += '&';
    out += uri_encode(key);
    out += '=';
    out += uri_encode(value.is_string() ? value.get_ref<const std::string&>() : value.dump());
}

/// "<url>/websocket?<params>&vsn=<vsn>", keeping a query already in `url`.
inline std::string endpoint_url(std::string_view url, const Json& params, std::string_view vsn) {
    auto q = url.find('?');
    std::string out(url.substr(0, q));
    while (!out.empty() && out.back() == '/')
        out.pop_back();
    out += "/websocket";
    std::string query =
        q == std::string_view::npos ? std::string() : std::string(url.substr(q + 1));
    append_query(query, params, "");
    if (!query.empty()) query += '&';
    query += "vsn=" + uri_encode(vsn);
    return out + "?" + query;
}

}  // namespace plume::client::detail
