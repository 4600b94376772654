// plume/pubsub/redis.hpp — the multi-node PubSub adapter: nodes share
// broadcasts through a Redis server, one Redis channel per topic.
//
//   plume::pubsub::RedisOptions o;
//   o.url = "redis://127.0.0.1:6379";
//   o.node_name = "node1";
//   plume::pubsub::Redis redis(io.get_executor(), o);   // throws std::system_error on a bad URL
//   plume::server::Endpoint<UserSocket, plume::pubsub::Redis> endpoint(io, config,
//   std::move(redis));
//
// Routing: a node SUBSCRIBEs to `<prefix>:t:<topic>` only while it has local
// subscribers of the topic (PubSub counts them and calls subscribe_topic /
// unsubscribe_topic), and UNSUBSCRIBEs `unsubscribe_linger` after the last
// one left, so churn costs nothing; a node never receives a topic it does
// not serve. `<prefix>:n:<node>` carries direct_broadcast (the Tracker's
// transfers). A broadcast is published once, as an envelope carrying the
// origin node, the topic, the event and the payload's JSON text (encoded once
// at the origin); each receiving node decodes it once and frames it once per
// serializer for all its subscribers. A node skips its own broadcasts (it
// delivered them locally already).
//
// Faults: while Redis is unreachable, publishes fail at once and are counted
// (stats().publish_failed), local delivery goes on, and the links reconnect
// with jittered backoff; every topic is subscribed again on reconnect, in
// batches. Messages published during an outage are lost to the other nodes.
#pragma once

#include <asio.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include <unistd.h>

#include "plume/pubsub/message.hpp"
#include "plume/redis/client.hpp"
#include "plume/redis/subscriber.hpp"
#include "plume/redis/url.hpp"

namespace plume::pubsub {

struct RedisOptions {
    std::string url = "redis://127.0.0.1:6379";
    /// This node's name in the cluster (the Tracker's replica name); unique
    /// per running node. Empty: "<hostname>-<pid>".
    std::string node_name;
    /// Prefix of every Redis channel, so several apps can share one Redis.
    std::string prefix = "plume";
    /// How long a topic stays subscribed after its last local subscriber left.
    std::chrono::milliseconds unsubscribe_linger{5'000};
    /// Broadcasts larger than this (envelope included) are refused at the
    /// origin (counted in stats().too_large).
    std::size_t max_message_bytes = std::size_t{1} << 20;
    /// The same for messages to one node (direct_broadcast: the Tracker's
    /// state transfers, which grow with the presences of a shard and are not
    /// split into chunks yet). Keep it under Redis's pubsub output buffer
    /// limit (32 MB by default).
    std::size_t max_direct_message_bytes = std::size_t{16} << 20;
    /// Timeouts, backoff and limits of the two Redis connections (its url is
    /// replaced by `url`; its on_state by `on_state`).
    redis::Options link{};
    /// Told when a connection to Redis comes up (empty code) or goes down
    /// (the reason); `which` is "publish" or "subscribe". Any thread.
    std::function<void(std::string_view which, std::error_code)> on_state;
};

struct RedisStats {
    std::uint64_t published = 0;       // broadcasts sent to Redis
    std::uint64_t publish_failed = 0;  // refused (down, too large) or not answered
    std::uint64_t too_large = 0;       // of which refused for their size
    std::uint64_t received = 0;        // envelopes from other nodes delivered locally
    std::uint64_t own = 0;             // own broadcasts echoed by Redis, skipped
    std::uint64_t malformed = 0;       // envelopes that could not be decoded, dropped
    std::size_t topics = 0;            // Redis channels subscribed now (topics + the node's)
    redis::Client::Stats client;
    redis::Subscriber::Stats subscriber;
};

namespace detail {

// The envelope: version, flags, then length-prefixed origin, topic, event,
// and the payload (JSON text, or the bytes of a binary broadcast) to the end.
inline constexpr unsigned char envelope_version = 1;

inline void put_field(std::string& out, std::string_view s) {
    const auto n = static_cast<std::uint32_t>(s.size());
    for (int i = 0; i < 4; ++i)
        out += static_cast<char>((n >> (8 * i)) & 0xff);
    out += s;
}

inline bool get_field(std::string_view& in, std::string_view& out) {
    if (in.size() < 4) return false;
    std::uint32_t n = 0;
    for (int i = 0; i < 4; ++i)
        n |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[static_cast<std::size_t>(i)]))
             << (8 * i);
    in.remove_prefix(4);
    if (in.size() < n) return false;
    out = in.substr(0, n);
    in.remove_prefix(n);
    return true;
}

inline std::string encode_envelope(std::string_view origin, const Message& m) {
    std::string out;
    const std::string payload = m.binary ? std::string() : m.payload.dump();
    const std::string_view body = m.binary ? std::string_view(*m.binary) : payload;
    out.reserve(2 + 12 + origin.size() + m.topic.size() + m.event.size() + body.size());
    out += static_cast<char>(envelope_version);
    out += static_cast<char>(m.binary ? 1 : 0);
    put_field(out, origin);
    put_field(out, m.topic);
    put_field(out, m.event);
    out += body;
    return out;
}

struct Envelope {
    std::string_view origin;
    MessagePtr message;
};

/// The origin of an envelope without decoding the rest (empty if malformed):
/// a node's own echoes are dropped before their payload is parsed.
inline std::string_view envelope_origin(std::string_view in) {
    if (in.size() < 2 || static_cast<unsigned char>(in[0]) != envelope_version) return {};
    in.remove_prefix(2);
    std::string_view origin;
    return get_field(in, origin) ? origin : std::string_view{};
}

inline std::optional<Envelope> decode_envelope(std::string_view in) {
    if (in.size() < 2 || static_cast<unsigned char>(in[0]) != envelope_version) return {};
    const bool binary = in[1] & 1;
    in.remove_prefix(2);
    Envelope e;
    std::string_view topic, event;
    if (!get_field(in, e.origin) || !get_field(in, topic) || !get_field(in, event)) return {};
    if (binary) {
        e.message = make_binary_message(std::string(topic), std::string(event), std::string(in));
        return e;
    }
    auto payload = nlohmann::json::parse(in, nullptr, false);
    if (payload.is_discarded()) return {};
    e.message = make_message(std::string(topic), std::string(event), std::move(payload));
    return e;
}

inline std::string default_node_name() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) host[0] = 0;
    return std::string(host[0] ? host : "node") + "-" + std::to_string(getpid());
}

class RedisCore : public std::enable_shared_from_this<RedisCore> {
  public:
    RedisCore(asio::any_io_executor ex, RedisOptions o)
        : options_(std::move(o)), strand_(asio::make_strand(ex)), sweep_(strand_) {
        auto url = redis::parse_url(options_.url);
        if (!url)
            throw std::system_error(url.error(),
                                    "pubsub::Redis: \"" + options_.url +
                                        "\" is not redis://[[user]:password@]host[:port][/db]");
        if (options_.node_name.empty()) options_.node_name = default_node_name();
        std::random_device rd;
        origin_ = options_.node_name + "#" + std::to_string(rd()) + std::to_string(rd());
        link_ = options_.link;
        link_.url = *url;
        executor_ = ex;
    }

    // The links call back through weak pointers: the core may go first.
    void init() {
        std::weak_ptr<RedisCore> weak = shared_from_this();
        auto report = [weak](const char* which) {
            return [weak, which](std::error_code ec) {
                if (auto self = weak.lock(); self && self->options_.on_state)
                    self->options_.on_state(which, ec);
            };
        };
        auto link = link_;
        link.on_state = report("publish");
        client_ = redis::Client::create(executor_, link);
        link.on_state = report("subscribe");
        subscriber_ = redis::Subscriber::create(
            executor_, link, [weak](std::string_view channel, std::string_view payload) {
                if (auto self = weak.lock()) self->on_message(channel, payload);
            });
    }

    const std::string& node_name() const noexcept { return options_.node_name; }

    void start(std::function<void(MessagePtr)> deliver) {
        {
            std::lock_guard lock(deliver_mutex_);
            deliver_ = std::move(deliver);
        }
        client_->start();
        subscriber_->start();
        subscriber_->subscribe(node_channel(options_.node_name));
        arm_sweep();
    }

    void stop() {
        if (stopped_.exchange(true)) return;
        {
            std::lock_guard lock(deliver_mutex_);  // nothing is delivered after stop()
            deliver_ = nullptr;
        }
        // Broadcasts queued before stop (a graceful permdown) still go out:
        // the client stops once they are answered.
        client_->stop();
        subscriber_->stop();
        asio::dispatch(strand_, [self = shared_from_this()] { self->sweep_.cancel(); });
    }

    void publish(const MessagePtr& m) {
        send(topic_channel(m->topic), *m, options_.max_message_bytes);
    }
    void publish_to(std::string_view node, const MessagePtr& m) {
        send(node_channel(node), *m, options_.max_direct_message_bytes);
    }

    void subscribe_topic(std::string_view topic, std::function<void(std::error_code)> ready) {
        // Under the lock, so that a sweep that took the topic off the lingering
        // list has already queued its UNSUBSCRIBE: this SUBSCRIBE follows it.
        std::lock_guard lock(mutex_);
        lingering_.erase(std::string(topic));
        subscriber_->subscribe(topic_channel(topic), std::move(ready));
    }

    void unsubscribe_topic(std::string_view topic) {
        std::lock_guard lock(mutex_);
        if (options_.unsubscribe_linger.count() <= 0)
            return subscriber_->unsubscribe(topic_channel(topic));
        lingering_[std::string(topic)] =
            std::chrono::steady_clock::now() + options_.unsubscribe_linger;
    }

    bool connected() const { return client_->up() && subscriber_->up(); }

    RedisStats stats() const {
        RedisStats s;
        s.published = published_.load();
        s.publish_failed = publish_failed_.load();
        s.too_large = too_large_.load();
        s.received = received_.load();
        s.own = own_.load();
        s.malformed = malformed_.load();
        s.client = client_->stats();
        s.subscriber = subscriber_->stats();
        s.topics = s.subscriber.channels;
        return s;
    }

  private:
    std::string topic_channel(std::string_view topic) const {
        return options_.prefix + ":t:" + std::string(topic);
    }
    std::string node_channel(std::string_view node) const {
        return options_.prefix + ":n:" + std::string(node);
    }

    void send(std::string channel, const Message& m, std::size_t max_bytes) {
        if (stopped_) {
            ++publish_failed_;
            return;
        }
        auto envelope = encode_envelope(origin_, m);
        if (envelope.size() > max_bytes) {
            ++publish_failed_;
            ++too_large_;
            return;
        }
        client_->command(
            {std::string_view("PUBLISH"), std::string_view(channel), std::string_view(envelope)},
            [self = shared_from_this()](std::error_code ec, redis::Value) {
                if (ec)
                    ++self->publish_failed_;
                else
                    ++self->published_;
            });
    }

    void on_message(std::string_view, std::string_view payload) {
        if (envelope_origin(payload) == origin_) {
            ++own_;
            return;
        }
        auto e = decode_envelope(payload);
        if (!e) {
            ++malformed_;
            return;
        }
        std::lock_guard lock(deliver_mutex_);
        if (!deliver_) return;
        ++received_;
        deliver_(std::move(e->message));
    }

    // Topics whose linger ran out are unsubscribed, unless subscribed again.
    void arm_sweep() {
        auto tick = std::max(std::chrono::milliseconds(50), options_.unsubscribe_linger / 4);
        sweep_.expires_after(tick);
        sweep_.async_wait([self = shared_from_this()](std::error_code ec) {
            if (ec || self->stopped_) return;
            {
                std::lock_guard lock(self->mutex_);
                auto now = std::chrono::steady_clock::now();
                for (auto it = self->lingering_.begin(); it != self->lingering_.end();)
                    if (it->second <= now) {
                        self->subscriber_->unsubscribe(self->topic_channel(it->first));
                        it = self->lingering_.erase(it);
                    } else {
                        ++it;
                    }
            }
            self->arm_sweep();
        });
    }

    RedisOptions options_;
    asio::strand<asio::any_io_executor> strand_;
    asio::steady_timer sweep_;
    std::string origin_;  // node name + a random incarnation: skips own echoes
    std::shared_ptr<redis::Client> client_;
    std::shared_ptr<redis::Subscriber> subscriber_;
    redis::Options link_;
    asio::any_io_executor executor_;
    std::mutex deliver_mutex_;
    std::function<void(MessagePtr)> deliver_;
    std::mutex mutex_;
    std::unordered_map<std::string, std::chrono::steady_clock::time_point> lingering_;
    std::atomic<bool> stopped_{false};
    std::atomic<std::uint64_t> published_{0}, publish_failed_{0}, too_large_{0}, received_{0},
        own_{0}, malformed_{0};
};

}  // namespace detail

class Redis {
  public:
    /// Throws std::system_error (redis::error::bad_url) for a URL it cannot use.
    Redis(asio::any_io_executor ex, RedisOptions options)
        : core_(std::make_shared<detail::RedisCore>(std::move(ex), std::move(options))) {
        core_->init();
    }

    std::string_view node_name() const noexcept { return core_->node_name(); }
    void start(std::function<void(MessagePtr)> deliver) { core_->start(std::move(deliver)); }
    void publish(const MessagePtr& m) { core_->publish(m); }
    void publish_to(std::string_view node, const MessagePtr& m) { core_->publish_to(node, m); }
    /// Stops both connections once what was published is answered.
    void stop() { core_->stop(); }

    // Topic routing, called by PubSub on a topic's first local subscriber and
    // after its last.
    void subscribe_topic(std::string_view topic, std::function<void(std::error_code)> ready) {
        core_->subscribe_topic(topic, std::move(ready));
    }
    void unsubscribe_topic(std::string_view topic) { core_->unsubscribe_topic(topic); }

    bool connected() const { return core_->connected(); }
    RedisStats stats() const { return core_->stats(); }

  private:
    std::shared_ptr<detail::RedisCore> core_;
};

}  // namespace plume::pubsub
