// plume/client/detail/handlers.hpp — the callback shapes users may pass.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "plume/client/detail/core.hpp"

namespace plume::client::detail {

template <class>
inline constexpr bool always_false = false;

/// A payload as JSON; binary payloads become a JSON binary value.
inline nlohmann::json payload_json(const wire::Payload& p) {
    if (p.is_json()) return p.json();
    return nlohmann::json::binary(std::vector<std::uint8_t>(p.bytes().begin(), p.bytes().end()));
}

/// receive() callbacks: (const wire::Payload&), (const nlohmann::json&) or ().
template <class F>
ResponseHandler response_handler(F f) {
    if constexpr (std::is_invocable_v<F&, const wire::Payload&>) {
        return [f = std::move(f)](const wire::Payload& p) mutable { f(p); };
    } else if constexpr (std::is_invocable_v<F&, const nlohmann::json&>) {
        return [f = std::move(f)](const wire::Payload& p) mutable {
            if (p.is_json())
                f(p.json());
            else
                f(payload_json(p));
        };
    } else if constexpr (std::is_invocable_v<F&>) {
        return [f = std::move(f)](const wire::Payload&) mutable { f(); };
    } else {
        static_assert(always_false<F>,
                      "a receive() callback takes (const plume::wire::Payload&), "
                      "(const nlohmann::json&) or no argument");
    }
}

/// on() callbacks: (const client::Event&), (const wire::Payload&),
/// (const nlohmann::json&) or ().
template <class F>
EventHandler event_handler(F f) {
    if constexpr (std::is_invocable_v<F&, const Event&>) {
        return [f = std::move(f)](const Event& e) mutable { f(e); };
    } else if constexpr (std::is_invocable_v<F&, const wire::Payload&>) {
        return [f = std::move(f)](const Event& e) mutable { f(e.payload); };
    } else if constexpr (std::is_invocable_v<F&, const nlohmann::json&>) {
        return [f = std::move(f)](const Event& e) mutable {
            if (e.payload.is_json())
                f(e.payload.json());
            else
                f(payload_json(e.payload));
        };
    } else if constexpr (std::is_invocable_v<F&>) {
        return [f = std::move(f)](const Event&) mutable { f(); };
    } else {
        static_assert(always_false<F>,
                      "an on() callback takes (const plume::client::Event&), "
                      "(const plume::wire::Payload&), (const nlohmann::json&) or no argument");
    }
}

}  // namespace plume::client::detail
