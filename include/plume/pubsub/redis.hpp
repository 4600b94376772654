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
// History (EndpointConfig::history): kept in Redis, shared by every node
// (streams with offsets and an epoch, one script per broadcast; see
// publish_script below). Broadcasts of a topic with history reach this
// node's subscribers from their echo, in offset order with everyone else's.
//
// Faults: while Redis is unreachable, publishes fail at once and are counted
// (stats().publish_failed), local delivery goes on (without an offset for a
// topic with history), and the links reconnect with jittered backoff; every
// topic is subscribed again on reconnect, in batches. Messages published
// during an outage are lost to the other nodes; a join asking for a recovery
// is answered "recovered": false.
#pragma once

#include <asio.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <deque>
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

#include <openssl/sha.h>
#include <unistd.h>

#include "plume/pubsub/history.hpp"
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
    /// state transfers, in parts of TrackerOptions::transfer_chunk_entries
    /// entries, each with metas of up to max_meta_bytes). Keep it under
    /// Redis's pubsub output buffer limit (32 MB by default).
    std::size_t max_direct_message_bytes = std::size_t{16} << 20;
    /// Timeouts, backoff and limits of the two Redis connections (its url is
    /// replaced by `url`; its on_state by `on_state`).
    redis::Options link{};
    /// Told when a connection to Redis comes up (empty code) or goes down
    /// (the reason); `which` is "publish" or "subscribe". Any thread.
    std::function<void(std::string_view which, std::error_code)> on_state;
};

struct RedisStats {
    std::uint64_t published = 0;        // broadcasts sent to Redis
    std::uint64_t publish_failed = 0;   // refused (down, too large) or not answered
    std::uint64_t too_large = 0;        // of which refused for their size
    std::uint64_t received = 0;         // envelopes from other nodes delivered locally
    std::uint64_t own = 0;              // own broadcasts echoed by Redis, skipped
    std::uint64_t malformed = 0;        // envelopes that could not be decoded, dropped
    std::uint64_t recoveries = 0;       // history reads for joins
    std::uint64_t recovery_failed = 0;  // of which Redis did not answer (joined unrecovered)
    std::size_t topics = 0;             // Redis channels subscribed now (topics + the node's)
    redis::Client::Stats client;
    redis::Subscriber::Stats subscriber;
};

namespace detail {

// The envelope: version, flags, then length-prefixed origin, topic, event,
// and the payload (JSON text, or the bytes of a binary broadcast) to the end.
// A broadcast with history (flag 2) has three more fields before the payload:
// the origin's sequence number, the payload key of the offset, and the offset
// itself, which the publish script of Redis fills in. A broadcast in another
// lane than normal (flag 4) has its priority (one byte) and coalesce key (a
// field) right after the event.
inline constexpr unsigned char envelope_version = 1;
inline constexpr char envelope_binary = 1;
inline constexpr char envelope_history = 2;
inline constexpr char envelope_lane = 4;

inline void put_field(std::string& out, std::string_view s) {
    const auto n = static_cast<std::uint32_t>(s.size());
    for (int i = 0; i < 4; ++i)
        out += static_cast<char>((n >> (8 * i)) & 0xff);
    out += s;
}

inline char lane_flag(const Message& m) {
    return m.priority != transport::Priority::normal ? envelope_lane : char{0};
}

inline void put_lane(std::string& out, const Message& m) {
    if (!lane_flag(m)) return;
    out += static_cast<char>(m.priority);
    put_field(out, m.coalesce_key ? std::string_view(*m.coalesce_key) : std::string_view());
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
    out += static_cast<char>((m.binary ? envelope_binary : char{0}) | lane_flag(m));
    put_field(out, origin);
    put_field(out, m.topic);
    put_field(out, m.event);
    put_lane(out, m);
    out += body;
    return out;
}

/// The head of a broadcast with history, up to the offset (which the publish
/// script appends, followed by the payload).
inline std::string encode_history_head(std::string_view origin, const Message& m, std::uint64_t seq,
                                       std::string_view offset_key) {
    std::string out;
    out += static_cast<char>(envelope_version);
    out += static_cast<char>(envelope_history | lane_flag(m));
    put_field(out, origin);
    put_field(out, m.topic);
    put_field(out, m.event);
    put_lane(out, m);
    put_field(out, std::to_string(seq));
    put_field(out, offset_key);
    return out;
}

inline bool parse_number(std::string_view s, std::uint64_t& out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

struct Envelope {
    std::string_view origin;
    MessagePtr message;
    std::uint64_t seq = 0;  // of a broadcast with history
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
    const bool binary = in[1] & envelope_binary;
    const bool history = in[1] & envelope_history;
    const bool lane = in[1] & envelope_lane;
    in.remove_prefix(2);
    Envelope e;
    std::string_view topic, event, seq, key, offset, coalesce;
    if (!get_field(in, e.origin) || !get_field(in, topic) || !get_field(in, event)) return {};
    auto priority = transport::Priority::normal;
    if (lane) {
        if (in.empty() || static_cast<unsigned char>(in[0]) > 3) return {};
        priority = static_cast<transport::Priority>(in[0]);
        in.remove_prefix(1);
        if (!get_field(in, coalesce)) return {};
    }
    auto set_lane = [&](Message& m) {
        m.priority = priority;
        if (!coalesce.empty()) m.coalesce_key = transport::coalesce_key(std::string(coalesce));
    };
    if (binary) {
        if (history) return {};
        auto m = std::make_shared<Message>();
        m->topic = std::string(topic);
        m->event = std::string(event);
        m->binary = std::string(in);
        set_lane(*m);
        e.message = std::move(m);
        return e;
    }
    std::uint64_t at = 0;
    if (history && (!get_field(in, seq) || !get_field(in, key) || !get_field(in, offset) ||
                    !parse_number(seq, e.seq) || !parse_number(offset, at) || at == 0))
        return {};
    auto payload = nlohmann::json::parse(in, nullptr, false);
    if (payload.is_discarded() || (history && !payload.is_object())) return {};
    auto m = std::make_shared<Message>();
    m->topic = std::string(topic);
    m->event = std::string(event);
    m->payload = std::move(payload);
    set_lane(*m);
    if (history) {
        m->payload[std::string(key)] = at;
        m->offset = at;
    }
    e.message = std::move(m);
    return e;
}

inline std::string default_node_name() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) host[0] = 0;
    return std::string(host[0] ? host : "node") + "-" + std::to_string(getpid());
}

// History in Redis: per topic a stream `<prefix>:h:<topic>` (entry ID
// "<offset>-0", fields e = event, p = payload JSON) and a hash
// `<prefix>:hm:<topic>` (e = epoch, s = last offset), both expiring `ttl`
// after the last use. A missing hash is a new epoch (the stream of the old
// one is deleted), so a flushed or restarted Redis without persistence is
// never taken for the old history. Each broadcast is one script: offset,
// XADD (MAXLEN ~ size), and the PUBLISH that carries the offset, atomically,
// so every node gets the topic's broadcasts in offset order.
struct Script {
    std::string_view text;
    std::string sha;  // hex SHA-1 of text, as EVALSHA names it
};

inline std::string sha1_hex(std::string_view text) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : digest) {
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    return out;
}

inline Script make_script(std::string_view text) {
    return {text, sha1_hex(text)};
}

// KEYS: stream, meta. ARGV: channel, maxlen, ttl, new epoch, envelope head,
// event, payload. Returns {offset, epoch}.
inline const Script& publish_script() {
    static const Script s = make_script(R"lua(
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[4]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 's', 0)
end
local offset = redis.call('HINCRBY', KEYS[2], 's', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], offset .. '-0', 'e', ARGV[6], 'p', ARGV[7])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
local at = tostring(offset)
redis.call('PUBLISH', ARGV[1], ARGV[5] .. string.char(#at, 0, 0, 0) .. at .. ARGV[7])
return {offset, epoch}
)lua");
    return s;
}

// KEYS: stream, meta. ARGV: new epoch, offset asked (-1: none), epoch asked,
// most entries, ttl. Returns {last offset, epoch, entries after the offset
// asked (when the epoch is the same and at most `most` are missing)}.
inline const Script& recover_script() {
    static const Script s = make_script(R"lua(
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 's', 0)
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
local last = tonumber(redis.call('HGET', KEYS[2], 's'))
local from = tonumber(ARGV[2])
local entries = {}
if from >= 0 and ARGV[3] == epoch and from < last and last - from <= tonumber(ARGV[4]) then
  entries = redis.call('XRANGE', KEYS[1], (from + 1) .. '-0', '+', 'COUNT', last - from)
end
return {last, epoch, entries}
)lua");
    return s;
}

// A reply of recover_script() as a HistoryRecovery.
inline HistoryRecovery read_recovery(const redis::Value& v, std::string_view topic,
                                     const HistoryRequest& request, const std::string& key) {
    HistoryRecovery r;
    if (!v.is_array() || v.elements.size() != 3 ||
        v.elements[0].type != redis::Value::Type::integer || v.elements[0].integer < 0 ||
        !v.elements[2].is_array()) {
        r.error = redis::error::protocol_error;
        return r;
    }
    const auto last = static_cast<std::uint64_t>(v.elements[0].integer);
    r.position = {last, v.elements[1].text()};
    if (!request.valid || request.epoch != r.position.epoch || request.offset > last) return r;
    const auto& entries = v.elements[2].elements;
    if (entries.size() != last - request.offset) return r;  // trimmed, expired, or too many
    std::uint64_t expect = request.offset + 1;
    for (const auto& entry : entries) {
        if (!entry.is_array() || entry.elements.size() != 2 || !entry.elements[1].is_array())
            return r;
        std::string_view id = entry.elements[0].text();
        std::uint64_t at = 0;
        if (!id.ends_with("-0") || !parse_number(id.substr(0, id.size() - 2), at) || at != expect)
            return r;
        std::string_view event, payload;
        const auto& fields = entry.elements[1].elements;
        for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
            if (fields[i].text() == "e") event = fields[i + 1].text();
            if (fields[i].text() == "p") payload = fields[i + 1].text();
        }
        Message m;
        m.topic = std::string(topic);
        m.event = std::string(event);
        m.payload = nlohmann::json::parse(payload, nullptr, false);
        if (!m.payload.is_object()) return r;
        r.missed.push_back(stamped(m, at, key));
        ++expect;
    }
    r.recovered = true;
    return r;
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
        // The history scripts are loaded on every connection before anything
        // else, so EVALSHA finds them after Redis restarted.
        for (const Script* script : {&publish_script(), &recover_script()})
            link.setup.push_back({"SCRIPT", "LOAD", std::string(script->text)});
        client_ = redis::Client::create(executor_, link);
        link.setup.clear();
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
        {
            std::lock_guard lock(pending_mutex_);
            pending_.clear();
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

    void publish_history(const MessagePtr& m, const HistoryOptions& h,
                         std::function<void(MessagePtr)> local) {
        if (stopped_) {
            ++publish_failed_;
            return;
        }
        std::string payload = m->payload.dump();
        const std::size_t envelope_bytes = 2 + 4 * 6 + origin_.size() + m->topic.size() +
                                           m->event.size() + 40 + h.offset_key.size() +
                                           payload.size();  // 40: sequence and offset digits
        if (envelope_bytes > options_.max_message_bytes) {
            ++publish_failed_;
            ++too_large_;
            if (local) local(m);  // this node's subscribers still get it, without offset
            return;
        }
        std::lock_guard lock(pending_mutex_);  // sequence numbers leave in order
        const std::uint64_t seq = ++seq_;
        std::string head = encode_history_head(origin_, *m, seq, h.offset_key);
        if (local) {
            if (pending_.size() >= max_pending) pending_.pop_front();  // gets it unfiltered
            pending_.push_back({seq, std::move(local)});
        }
        std::vector<std::string> args{"EVALSHA",
                                      publish_script().sha,
                                      "2",
                                      history_stream(m->topic),
                                      history_meta(m->topic),
                                      topic_channel(m->topic),
                                      std::to_string(h.size),
                                      std::to_string(std::max<std::int64_t>(1, h.ttl.count())),
                                      new_epoch(),
                                      std::move(head),
                                      m->event,
                                      std::move(payload)};
        eval(publish_script(), std::move(args),
             [self = shared_from_this(), seq, m, key = h.offset_key](std::error_code ec,
                                                                     redis::Value v) {
                 if (!ec && v.is_array() && v.elements.size() == 2 &&
                     v.elements[0].type == redis::Value::Type::integer &&
                     v.elements[0].integer > 0) {
                     ++self->published_;
                     // Its echo cannot come while the subscriber link is down.
                     if (!self->subscriber_->up())
                         self->deliver_pending(
                             seq,
                             stamped(*m, static_cast<std::uint64_t>(v.elements[0].integer), key));
                     return;
                 }
                 ++self->publish_failed_;
                 // Not sent at all: this node's subscribers still get it,
                 // without an offset. (Sent but not answered: its echo may
                 // still come, so nothing is delivered here.)
                 if (ec == redis::error::not_connected || ec == redis::error::queue_full)
                     self->deliver_pending(seq, m);
             });
    }

    void recover_history(std::string_view topic, const HistoryRequest& request,
                         const HistoryOptions& h, std::function<void(HistoryRecovery)> done) {
        std::vector<std::string> args{
            "EVALSHA",
            recover_script().sha,
            "2",
            history_stream(topic),
            history_meta(topic),
            new_epoch(),
            request.valid ? std::to_string(request.offset) : std::string("-1"),
            request.epoch,
            std::to_string(h.size),
            std::to_string(std::max<std::int64_t>(1, h.ttl.count()))};
        eval(recover_script(), std::move(args),
             [self = shared_from_this(), topic = std::string(topic), request, key = h.offset_key,
              done = std::move(done)](std::error_code ec, redis::Value v) {
                 HistoryRecovery r;
                 if (ec)
                     r.error = ec;
                 else
                     r = read_recovery(v, topic, request, key);
                 if (r.error)
                     ++self->recovery_failed_;
                 else
                     ++self->recoveries_;
                 done(std::move(r));
             });
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
        s.recoveries = recoveries_.load();
        s.recovery_failed = recovery_failed_.load();
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
    std::string history_stream(std::string_view topic) const {
        return options_.prefix + ":h:" + std::string(topic);
    }
    std::string history_meta(std::string_view topic) const {
        return options_.prefix + ":hm:" + std::string(topic);
    }

    std::string new_epoch() {
        std::lock_guard lock(rng_mutex_);
        return pubsub::detail::new_epoch(rng_);
    }

    // EVALSHA, and EVAL when Redis lost the script (SCRIPT FLUSH: the link
    // loads it again on every new connection).
    void eval(const Script& script, std::vector<std::string> args, redis::Client::Callback done) {
        // Kept (not copied) for the rare retry.
        auto kept = std::make_shared<std::vector<std::string>>(std::move(args));
        client_->command(*kept, [self = shared_from_this(), &script, kept, done = std::move(done)](
                                    std::error_code ec, redis::Value v) mutable {
            if (ec == redis::error::server_error && v.text().starts_with("NOSCRIPT")) {
                (*kept)[0] = "EVAL";
                (*kept)[1] = std::string(script.text);
                return self->client_->command(*kept, std::move(done));
            }
            done(ec, std::move(v));
        });
    }

    // Hands a broadcast with history to the local delivery its publisher
    // asked for (at most once: by its echo, or here).
    void deliver_pending(std::uint64_t seq, MessagePtr m) {
        std::function<void(MessagePtr)> local;
        {
            std::lock_guard lock(pending_mutex_);
            for (auto it = pending_.begin(); it != pending_.end(); ++it)
                if (it->seq == seq) {
                    local = std::move(it->local);
                    pending_.erase(it);
                    break;
                }
        }
        if (!local) return;
        std::lock_guard lock(deliver_mutex_);
        if (deliver_) local(std::move(m));
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
        // Own broadcasts were delivered here already, except those with
        // history: they are delivered in offset order, from their echo.
        const bool own = envelope_origin(payload) == origin_;
        if (own && !(payload[1] & envelope_history)) {
            ++own_;
            return;
        }
        auto e = decode_envelope(payload);
        if (!e) {
            ++malformed_;
            return;
        }
        std::function<void(MessagePtr)> local;
        if (own) {
            ++own_;
            // Echoes come in sequence order: older entries will get none.
            std::lock_guard lock(pending_mutex_);
            while (!pending_.empty() && pending_.front().seq < e->seq)
                pending_.pop_front();
            if (!pending_.empty() && pending_.front().seq == e->seq) {
                local = std::move(pending_.front().local);
                pending_.pop_front();
            }
        }
        std::lock_guard lock(deliver_mutex_);
        if (!deliver_) return;
        if (local) return local(std::move(e->message));
        if (!own) ++received_;
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
    // Own broadcasts with history waiting for their echo, by sequence number.
    struct Pending {
        std::uint64_t seq;
        std::function<void(MessagePtr)> local;
    };
    static constexpr std::size_t max_pending = 1 << 16;
    std::mutex pending_mutex_;
    std::uint64_t seq_ = 0;
    std::deque<Pending> pending_;
    std::mutex rng_mutex_;
    std::mt19937_64 rng_{std::random_device{}()};
    std::atomic<bool> stopped_{false};
    std::atomic<std::uint64_t> published_{0}, publish_failed_{0}, too_large_{0}, received_{0},
        own_{0}, malformed_{0}, recoveries_{0}, recovery_failed_{0};
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

    // History kept in Redis (EndpointConfig::history; see history.hpp).
    void publish_history(const MessagePtr& m, const HistoryOptions& h,
                         std::function<void(MessagePtr)> local) {
        core_->publish_history(m, h, std::move(local));
    }
    void recover_history(std::string_view topic, const HistoryRequest& request,
                         const HistoryOptions& h, std::function<void(HistoryRecovery)> done) {
        core_->recover_history(topic, request, h, std::move(done));
    }

    bool connected() const { return core_->connected(); }
    RedisStats stats() const { return core_->stats(); }

  private:
    std::shared_ptr<detail::RedisCore> core_;
};

}  // namespace plume::pubsub
