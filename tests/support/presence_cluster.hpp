// Test support: several presence Tracker replicas in one process, joined by a
// MemoryBus, on a manual clock. Time only moves when a test calls step().
//
//   plume::test::PresenceCluster c(3, options);
//   c.tracker(0).track(1, "room:1", "u1", {{"v", 1}});
//   c.run(20);                    // 20 steps of one broadcast period
//   CHECK(c.list(1, "room:1") == c.list(0, "room:1"));
//
// Every diff a node's tracker delivers is recorded, as the presence_diff
// payload phoenix.js would receive, so tests can replay them.
#pragma once

#include <plume/presence.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "support/memory_bus.hpp"

namespace plume::test {

struct ManualClock {
    std::chrono::steady_clock::time_point now{std::chrono::hours(1)};
    void advance(std::chrono::milliseconds d) { now += d; }
    std::function<std::chrono::steady_clock::time_point()> fn() {
        return [this] { return now; };
    }
};

struct RecordedDiff {
    std::string topic;
    nlohmann::json payload;  // {"joins": ..., "leaves": ...}
};

class PresenceCluster {
  public:
    using PubSub = pubsub::PubSub<MemoryBus::Adapter>;

    struct Node {
        std::string name;
        std::unique_ptr<PubSub> pubsub;
        std::unique_ptr<presence::Tracker> tracker;
        std::uint64_t incarnation = 0;
        std::vector<RecordedDiff> diffs;  // of the current incarnation
    };

    PresenceCluster(std::size_t nodes, presence::TrackerOptions options, std::uint64_t seed = 1,
                    MemoryBus::Faults faults = MemoryBus::Faults())
        : bus(seed, faults), options_(std::move(options)) {
        bus.set_clock(clock.fn());
        nodes_.reserve(nodes);
        for (std::size_t i = 0; i < nodes; ++i) {
            auto& n = nodes_.emplace_back();
            n.name = "node" + std::to_string(i);
            n.pubsub = std::make_unique<PubSub>(bus.adapter(n.name), 4);
            start(i);
        }
    }

    ~PresenceCluster() {
        for (auto& n : nodes_)
            n.tracker.reset();
    }

    std::size_t size() const { return nodes_.size(); }
    Node& node(std::size_t i) { return nodes_.at(i); }
    presence::Tracker& tracker(std::size_t i) { return *nodes_.at(i).tracker; }

    /// A new incarnation of node i (its previous tracker must be gone).
    void start(std::size_t i) {
        auto& n = nodes_.at(i);
        auto o = options_;
        o.clock = clock.fn();
        o.incarnation = ++n.incarnation;
        n.diffs.clear();
        o.on_diff = [&n](const std::string& topic, const std::vector<presence::EntryPtr>& joins,
                         const std::vector<presence::EntryPtr>& leaves) {
            n.diffs.push_back(RecordedDiff{
                topic,
                presence::diff_payload(presence::to_json(joins), presence::to_json(leaves))});
        };
        n.tracker = std::make_unique<presence::Tracker>(*n.pubsub, o);
    }

    /// The process dies: no permdown, its presences die with it.
    void crash(std::size_t i) {
        nodes_.at(i).tracker->stop(false);
        nodes_.at(i).tracker.reset();
    }
    /// Orderly shutdown: permdown is broadcast.
    void shutdown(std::size_t i) {
        nodes_.at(i).tracker->stop(true);
        nodes_.at(i).tracker.reset();
    }
    void restart(std::size_t i, bool graceful) {
        graceful ? shutdown(i) : crash(i);
        start(i);
    }

    /// Advances the clock, delivers what is due, ticks every live tracker.
    void step(std::chrono::milliseconds d) {
        clock.advance(d);
        bus.deliver_due(clock.now);
        for (auto& n : nodes_)
            if (n.tracker) n.tracker->tick();
    }
    void run(int steps, std::chrono::milliseconds d = std::chrono::milliseconds(0)) {
        if (d.count() == 0) d = options_.broadcast_period;
        for (int i = 0; i < steps; ++i)
            step(d);
    }

    nlohmann::json list(std::size_t i, std::string_view topic) {
        return presence::to_json(tracker(i).list(topic));
    }

    ManualClock clock;
    MemoryBus bus;

  private:
    presence::TrackerOptions options_;
    std::vector<Node> nodes_;
};

}  // namespace plume::test
