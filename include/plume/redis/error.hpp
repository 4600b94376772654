// plume/redis/error.hpp — what plume's Redis client reports: a command that
// could not be sent or answered, a URL it cannot use, a reply it cannot read.
//
//   client.command({"PUBLISH", "t", "x"}, [](std::error_code ec, plume::redis::Value v) {
//       if (ec == plume::redis::error::not_connected) ++failed_publishes;   // fast fail
//       else if (ec == plume::redis::error::server_error) log(v.text());    // "-ERR ..."
//   });
#pragma once

#include <string>
#include <system_error>
#include <type_traits>

namespace plume::redis {

enum class error {
    // URLs.
    bad_url = 1,  // not redis://[[user]:password@]host[:port][/db]
    // The connection.
    not_connected,    // no connection to Redis now (connecting, or reconnecting after a fault)
    connect_failed,   // TCP connect, AUTH or SELECT failed or timed out
    connection_lost,  // the connection closed with commands in flight
    timeout,          // no reply within the command timeout: the connection is replaced
    stopped,          // the client was stopped before the command was answered
    queue_full,       // more than max_queued_bytes waiting to be written: refused
    // Replies.
    protocol_error,  // bytes from Redis that are not RESP2 (or beyond the parser's limits)
    server_error,    // Redis answered with an error reply ("-ERR ..."): the value holds it
};

namespace detail {

class RedisCategory final : public std::error_category {
  public:
    const char* name() const noexcept override { return "plume.redis"; }
    std::string message(int code) const override {
        switch (static_cast<error>(code)) {
            case error::bad_url:
                return "bad Redis URL";
            case error::not_connected:
                return "not connected to Redis";
            case error::connect_failed:
                return "could not connect to Redis";
            case error::connection_lost:
                return "connection to Redis lost";
            case error::timeout:
                return "Redis did not answer in time";
            case error::stopped:
                return "Redis client stopped";
            case error::queue_full:
                return "Redis write queue full";
            case error::protocol_error:
                return "Redis protocol error";
            case error::server_error:
                return "Redis error reply";
        }
        return "unknown Redis error";
    }
};

}  // namespace detail

inline const std::error_category& redis_category() noexcept {
    static const detail::RedisCategory category;
    return category;
}

inline std::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), redis_category()};
}

}  // namespace plume::redis

template <>
struct std::is_error_code_enum<plume::redis::error> : std::true_type {};
