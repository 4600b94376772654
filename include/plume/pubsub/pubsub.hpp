// plume/pubsub/pubsub.hpp — Phoenix.PubSub for C++: topic-based publish and
// subscribe, usable on its own or under Channels, local or multi-node through
// an Adapter policy.
//
//   plume::pubsub::PubSub<> pubsub;                       // Local adapter
//   auto sub = pubsub.subscribe("room:lobby", strand, [](const plume::pubsub::Message& m) {
//       std::cout << m.event << " " << m.payload << "\n";  // runs on `strand`
//   });
//   pubsub.broadcast("room:lobby", "new_msg", {{"body", "hi"}});   // from any thread
//   pubsub.unsubscribe("room:lobby", sub);
//
// The registry is sharded by topic, so work on different topics does not
// contend; publishers of one topic share a reader lock. A message is built
// once and shared (refcounted) by every subscriber.
#pragma once

#include <asio.hpp>

#include <algorithm>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "plume/pubsub/local.hpp"
#include "plume/pubsub/message.hpp"

namespace plume::pubsub {

/// Receives messages. deliver() runs on the publisher's thread and must not
/// block: implementations hand the message to their own executor.
class Subscriber {
  public:
    virtual ~Subscriber() = default;
    virtual void deliver(const MessagePtr& message) = 0;
};

using SubscriberPtr = std::shared_ptr<Subscriber>;

namespace detail {

template <class Executor, class F>
class CallbackSubscriber final
    : public Subscriber,
      public std::enable_shared_from_this<CallbackSubscriber<Executor, F>> {
  public:
    CallbackSubscriber(Executor ex, F f) : ex_(std::move(ex)), f_(std::move(f)) {}
    void deliver(const MessagePtr& m) override {
        asio::post(ex_, [self = this->shared_from_this(), m] { self->f_(*m); });
    }

  private:
    Executor ex_;
    F f_;
};

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

}  // namespace detail

template <Adapter A = Local>
class PubSub {
  public:
    explicit PubSub(A adapter = A{}, std::size_t shard_count = 16)
        : adapter_(std::move(adapter)), shards_(std::max<std::size_t>(1, shard_count)) {
        adapter_.start([this](MessagePtr m) { dispatch(m, nullptr); });
    }
    ~PubSub() { adapter_.stop(); }
    PubSub(const PubSub&) = delete;
    PubSub& operator=(const PubSub&) = delete;

    std::string_view node_name() const noexcept { return adapter_.node_name(); }
    A& adapter() noexcept { return adapter_; }

    void subscribe(std::string_view topic, SubscriberPtr subscriber) {
        auto& shard = shard_for(topic);
        std::unique_lock lock(shard.mutex);
        entry(shard, topic).subs.push_back(std::move(subscriber));
    }

    /// Makes sure the topic's broadcasts from other nodes reach this node,
    /// then runs `ready` (any thread; at once for an adapter that does not
    /// route topics, after the adapter confirmed otherwise, or with the
    /// adapter's error). The topic stays routed until release(topic), so a
    /// subscriber added in between misses nothing published after `ready`.
    void prepare(std::string_view topic, std::function<void(std::error_code)> ready) {
        if constexpr (RoutesTopics<A>) {
            auto& shard = shard_for(topic);
            {
                std::unique_lock lock(shard.mutex);
                ++entry(shard, topic).holds;  // routed until release()
            }
            // Outside the lock: an adapter may call `ready` at once.
            adapter_.subscribe_topic(topic, std::move(ready));
        } else {
            ready({});
        }
    }
    void release(std::string_view topic) {
        if constexpr (RoutesTopics<A>) {
            auto& shard = shard_for(topic);
            std::unique_lock lock(shard.mutex);
            auto it = shard.topics.find(topic);
            if (it == shard.topics.end() || it->second.holds == 0) return;
            --it->second.holds;
            erase_if_unused(shard, it);
        }
    }

    /// Subscribes a callback that runs on `executor` for every message.
    template <class Executor, class F>
    SubscriberPtr subscribe(std::string_view topic, Executor executor, F callback) {
        auto s = std::make_shared<detail::CallbackSubscriber<Executor, F>>(std::move(executor),
                                                                           std::move(callback));
        subscribe(topic, s);
        return s;
    }

    void unsubscribe(std::string_view topic, const Subscriber* subscriber) {
        auto& shard = shard_for(topic);
        std::unique_lock lock(shard.mutex);
        auto it = shard.topics.find(topic);
        if (it == shard.topics.end()) return;
        auto& subs = it->second.subs;
        auto pos = std::find_if(subs.begin(), subs.end(),
                                [&](const SubscriberPtr& s) { return s.get() == subscriber; });
        if (pos != subs.end()) {
            *pos = std::move(subs.back());
            subs.pop_back();
        }
        erase_if_unused(shard, it);
    }
    void unsubscribe(std::string_view topic, const SubscriberPtr& s) {
        unsubscribe(topic, s.get());
    }

    /// To every subscriber of the topic on every node.
    void broadcast(MessagePtr m) {
        adapter_.publish(m);
        dispatch(m, nullptr);
    }
    void broadcast(std::string topic, std::string event, nlohmann::json payload) {
        broadcast(make_message(std::move(topic), std::move(event), std::move(payload)));
    }

    /// Like broadcast, but not to `from` (on this node).
    void broadcast_from(const Subscriber* from, MessagePtr m) {
        adapter_.publish(m);
        dispatch(m, from);
    }

    /// Only to subscribers on this node.
    void local_broadcast(MessagePtr m) { dispatch(m, nullptr); }
    void local_broadcast_from(const Subscriber* from, MessagePtr m) { dispatch(m, from); }

    /// Only to subscribers on the node called `node`.
    void direct_broadcast(std::string_view node, MessagePtr m) {
        if (node == adapter_.node_name())
            dispatch(m, nullptr);
        else
            adapter_.publish_to(node, m);
    }

    std::size_t subscriber_count(std::string_view topic) const {
        auto& shard = shard_for(topic);
        std::shared_lock lock(shard.mutex);
        auto it = shard.topics.find(topic);
        return it == shard.topics.end() ? 0 : it->second.subs.size();
    }

  private:
    using Subs = std::vector<SubscriberPtr>;
    struct Topic {
        Subs subs;
        std::size_t holds = 0;  // prepare() calls not released yet
    };
    using Topics = std::unordered_map<std::string, Topic, detail::StringHash, std::equal_to<>>;
    struct Shard {
        mutable std::shared_mutex mutex;
        Topics topics;
    };

    // The topic's entry, created (and routed) on first use; shard locked.
    Topic& entry(Shard& shard, std::string_view topic) {
        auto it = shard.topics.find(topic);
        if (it != shard.topics.end()) return it->second;
        it = shard.topics.emplace(std::string(topic), Topic{}).first;
        if constexpr (RoutesTopics<A>) adapter_.subscribe_topic(topic, nullptr);
        return it->second;
    }
    void erase_if_unused(Shard& shard, typename Topics::iterator it) {
        if (!it->second.subs.empty() || it->second.holds > 0) return;
        if constexpr (RoutesTopics<A>) adapter_.unsubscribe_topic(it->first);
        shard.topics.erase(it);
    }

    Shard& shard_for(std::string_view topic) const {
        return const_cast<Shard&>(shards_[detail::StringHash{}(topic) % shards_.size()]);
    }

    // deliver() only posts, so holding the reader lock while it runs is cheap
    // and keeps unsubscribe() a clean cut-off: after it returns, no delivery starts.
    void dispatch(const MessagePtr& m, const Subscriber* except) {
        auto& shard = shard_for(m->topic);
        std::shared_lock lock(shard.mutex);
        auto it = shard.topics.find(m->topic);
        if (it == shard.topics.end()) return;
        for (auto& s : it->second.subs)
            if (s.get() != except) s->deliver(m);
    }

    A adapter_;
    std::vector<Shard> shards_;
};

}  // namespace plume::pubsub
