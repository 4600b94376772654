// plume/pubsub/message.hpp — what travels through PubSub: a topic, an event
// and a payload, immutable once published and shared by every subscriber.
//
// It also carries the encode-once cache: the first subscriber that needs the
// message as a frame of some serializer encodes it, every other subscriber of
// that serializer reuses the same bytes.
//
//   auto m = plume::pubsub::make_message("room:lobby", "new_msg", {{"body", "hi"}});
//   auto frame = m->frame(slot, [&] { return encode_somehow(*m); });   // once per slot
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "plume/transport/frame.hpp"
#include "plume/transport/priority.hpp"

namespace plume::pubsub {

struct Message {
    std::string topic;
    std::string event;
    nlohmann::json payload;
    /// Set instead of `payload` for binary broadcasts.
    std::optional<std::string> binary;
    /// Its place in the topic's history (pubsub/history.hpp); 0: none.
    std::uint64_t offset = 0;
    /// The lane every receiving connection queues it in, and for a low one
    /// the key that coalesces it (transport/priority.hpp).
    transport::Priority priority = transport::Priority::normal;
    transport::CoalesceKey coalesce_key;

    /// Serializer slots for the encode-once cache (one per wire format in use).
    static constexpr std::size_t frame_slots = 4;

    /// The frame for `slot`, built by `encode()` the first time it is asked
    /// for. Thread-safe: concurrent callers wait for the one encoding.
    template <class Encode>
    transport::SharedFrame frame(std::size_t slot, Encode&& encode) const {
        std::call_once(cache_[slot].once, [&] { cache_[slot].frame = encode(); });
        return cache_[slot].frame;
    }

  private:
    struct Slot {
        std::once_flag once;
        transport::SharedFrame frame;
    };
    mutable std::array<Slot, frame_slots> cache_{};
};

using MessagePtr = std::shared_ptr<const Message>;

inline MessagePtr make_message(std::string topic, std::string event, nlohmann::json payload) {
    auto m = std::make_shared<Message>();
    m->topic = std::move(topic);
    m->event = std::move(event);
    m->payload = std::move(payload);
    return m;
}

inline MessagePtr make_binary_message(std::string topic, std::string event, std::string data) {
    auto m = std::make_shared<Message>();
    m->topic = std::move(topic);
    m->event = std::move(event);
    m->binary = std::move(data);
    return m;
}

}  // namespace plume::pubsub
