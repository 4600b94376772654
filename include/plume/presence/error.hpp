// plume/presence/error.hpp — why a track, update or untrack was refused.
//
// The Tracker takes metas from application code that often got them from a
// client, so bad input is answered with a std::error_code of this category
// (never an exception) and leaves the presence state unchanged.
//
//   auto ref = tracker.track(owner, "room:lobby", "42", {{"status", "away"}});
//   if (ref.error() == plume::presence::error::already_tracked) ...
//   std::cerr << ref.error().message();   // "this owner already tracks that key on that topic"
#pragma once

#include <string>
#include <system_error>
#include <type_traits>

namespace plume::presence {

enum class error {
    invalid_topic = 1,  // empty, or not valid UTF-8
    invalid_key,        // not valid UTF-8
    invalid_meta,       // not a JSON object, or holds a string that is not UTF-8
    meta_too_large,     // serialized meta longer than TrackerOptions::max_meta_bytes
    too_many_metas,     // this node already has max_metas_per_key metas under that key
    already_tracked,    // the owner already tracks this (topic, key)
    not_tracked,        // update/untrack of a (topic, key) the owner does not track
    stopped,            // the tracker was stopped
};

namespace detail {

class PresenceCategory final : public std::error_category {
  public:
    const char* name() const noexcept override { return "plume.presence"; }
    std::string message(int code) const override {
        switch (static_cast<error>(code)) {
            case error::invalid_topic:
                return "topic must be a non-empty UTF-8 string";
            case error::invalid_key:
                return "presence key must be valid UTF-8";
            case error::invalid_meta:
                return "meta must be a JSON object whose strings are valid UTF-8";
            case error::meta_too_large:
                return "meta is larger than the configured max_meta_bytes";
            case error::too_many_metas:
                return "too many metas under one key on this node (max_metas_per_key)";
            case error::already_tracked:
                return "this owner already tracks that key on that topic";
            case error::not_tracked:
                return "this owner does not track that key on that topic";
            case error::stopped:
                return "the tracker is stopped";
        }
        return "unknown plume.presence error";
    }
};

}  // namespace detail

inline const std::error_category& presence_category() noexcept {
    static const detail::PresenceCategory category;
    return category;
}

inline std::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), presence_category()};
}

}  // namespace plume::presence

template <>
struct std::is_error_code_enum<plume::presence::error> : std::true_type {};
