// plume/pubsub/local.hpp — the default PubSub adapter: one node, in process.
//
//   plume::pubsub::PubSub<plume::pubsub::Local> pubsub;   // Local is the default
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <system_error>

#include "plume/pubsub/message.hpp"

namespace plume::pubsub {

/// What a PubSub adapter provides: a node name and delivery of messages to
/// other nodes. Messages from other nodes come back through the `deliver`
/// callback given to start().
template <class A>
concept Adapter = requires(A& a, const A& ca, MessagePtr m, std::string_view node,
                           std::function<void(MessagePtr)> deliver) {
    { ca.node_name() } -> std::convertible_to<std::string_view>;
    a.start(deliver);
    a.publish(m);           // to every other node
    a.publish_to(node, m);  // to one node (direct_broadcast)
    a.stop();
};

/// An adapter that routes per topic: PubSub tells it when a topic gets its
/// first local subscriber (subscribe_topic, whose callback runs once the
/// other nodes' broadcasts of the topic reach this node) and when the last
/// one left (unsubscribe_topic). pubsub::Redis is one; Local is not (it has
/// nothing to route).
template <class A>
concept RoutesTopics = Adapter<A> &&
    requires(A& a, std::string_view topic, std::function<void(std::error_code)> ready) {
    a.subscribe_topic(topic, ready);
    a.unsubscribe_topic(topic);
};

class Local {
  public:
    explicit Local(std::string node_name = "local") : node_(std::move(node_name)) {}
    std::string_view node_name() const noexcept { return node_; }
    void start(std::function<void(MessagePtr)>) {}
    void publish(const MessagePtr&) {}
    void publish_to(std::string_view, const MessagePtr&) {}
    void stop() {}

  private:
    std::string node_;
};

}  // namespace plume::pubsub
