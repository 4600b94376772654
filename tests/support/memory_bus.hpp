// Test support: an in-memory network joining several PubSub nodes in one
// process, with faults chosen deterministically from a seed.
//
//   plume::test::MemoryBus bus(seed, {.drop = 0.1, .duplicate = 0.1, .max_delay = 150ms});
//   bus.set_clock([&] { return clock.now; });
//   plume::pubsub::PubSub<plume::test::MemoryBus::Adapter> a(bus.adapter("a")),
//   b(bus.adapter("b"));
//   ... a publishes ...
//   bus.deliver_due(clock.now);     // hands over every message whose delay has passed
//
// Each message sent to each node gets its own random delay in
// [min_delay, max_delay] (so messages overtake each other), may be dropped or
// duplicated (the copy gets another delay), and is lost if the two nodes are
// in different partitions when it is sent or when it is due. In immediate
// mode messages are handed over inside publish(), which multi-threaded tests
// use. Thread-safe.
#pragma once

#include <plume/pubsub/local.hpp>
#include <plume/pubsub/message.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace plume::test {

/// SplitMix64: tiny, fast, and the same sequence on every platform.
class Rng {
  public:
    explicit Rng(std::uint64_t seed) : state_(seed) {}
    std::uint64_t next() {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    /// Uniform in [0, n); n > 0.
    std::uint64_t below(std::uint64_t n) { return next() % n; }
    /// Uniform in [lo, hi].
    std::int64_t between(std::int64_t lo, std::int64_t hi) {
        return lo + static_cast<std::int64_t>(below(static_cast<std::uint64_t>(hi - lo + 1)));
    }
    bool chance(double p) { return p > 0 && static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }

  private:
    std::uint64_t state_;
};

class MemoryBus {
  public:
    using TimePoint = std::chrono::steady_clock::time_point;

    struct Faults {
        double drop = 0;
        double duplicate = 0;
        std::chrono::milliseconds min_delay{0};
        std::chrono::milliseconds max_delay{0};
    };

    struct Stats {
        std::size_t sent = 0;
        std::size_t delivered = 0;
        std::size_t dropped = 0;
        std::size_t duplicated = 0;
        std::size_t cut = 0;  // lost to a partition
        // Sent, by event name ("+entries" appended when the payload carries them: a full
        // transfer of presence state).
        std::map<std::string, std::size_t> events;
    };

    /// The PubSub adapter policy of one node of this bus.
    class Adapter {
      public:
        Adapter(MemoryBus& bus, std::string name) : bus_(&bus), name_(std::move(name)) {}
        std::string_view node_name() const noexcept { return name_; }
        void start(std::function<void(pubsub::MessagePtr)> deliver) {
            bus_->attach(name_, std::move(deliver));
        }
        void publish(const pubsub::MessagePtr& m) { bus_->send(name_, nullptr, m); }
        void publish_to(std::string_view node, const pubsub::MessagePtr& m) {
            const std::string target(node);
            bus_->send(name_, &target, m);
        }
        void stop() { bus_->detach(name_); }

      private:
        MemoryBus* bus_;
        std::string name_;
    };

    explicit MemoryBus(std::uint64_t seed = 1) : rng_(seed) {}
    MemoryBus(std::uint64_t seed, Faults faults) : rng_(seed), faults_(faults) {}
    MemoryBus(const MemoryBus&) = delete;
    MemoryBus& operator=(const MemoryBus&) = delete;

    Adapter adapter(std::string name) { return Adapter(*this, std::move(name)); }

    void set_clock(std::function<TimePoint()> clock) {
        std::lock_guard lock(mutex_);
        clock_ = std::move(clock);
    }
    void set_faults(Faults f) {
        std::lock_guard lock(mutex_);
        faults_ = f;
    }
    void set_immediate(bool on) {
        std::lock_guard lock(mutex_);
        immediate_ = on;
    }

    /// Nodes in different groups cannot talk; nodes in no group form one more group.
    void partition(const std::vector<std::vector<std::string>>& groups) {
        std::lock_guard lock(mutex_);
        group_.clear();
        for (std::size_t g = 0; g < groups.size(); ++g)
            for (const auto& n : groups[g])
                group_[n] = static_cast<int>(g);
    }
    void heal() {
        std::lock_guard lock(mutex_);
        group_.clear();
    }
    /// Cuts one node off from every other (or reconnects it).
    void isolate(const std::string& node) {
        std::lock_guard lock(mutex_);
        group_[node] = -2 - static_cast<int>(group_.size());
    }

    /// Hands over every queued message due at or before `now`, earliest first.
    /// Returns how many were delivered.
    std::size_t deliver_due(TimePoint now) {
        std::size_t n = 0;
        for (;;) {
            std::function<void(pubsub::MessagePtr)> target;
            pubsub::MessagePtr m;
            {
                std::lock_guard lock(mutex_);
                auto it = queue_.begin();
                if (it == queue_.end() || std::get<0>(it->first) > now) return n;
                auto [due, seq, to] = it->first;
                m = it->second.second;
                const std::string from = it->second.first;
                queue_.erase(it);
                if (!connected(from, to)) {
                    ++stats_.cut;
                    continue;
                }
                auto ep = endpoints_.find(to);
                if (ep == endpoints_.end()) continue;
                target = ep->second;
                ++stats_.delivered;
            }
            target(m);
            ++n;
        }
    }

    /// Delivers everything queued, whatever its delay.
    std::size_t deliver_all() { return deliver_due(TimePoint::max()); }

    std::size_t queued() const {
        std::lock_guard lock(mutex_);
        return queue_.size();
    }
    Stats stats() const {
        std::lock_guard lock(mutex_);
        return stats_;
    }

  private:
    void attach(const std::string& name, std::function<void(pubsub::MessagePtr)> deliver) {
        std::lock_guard lock(mutex_);
        endpoints_[name] = std::move(deliver);
    }
    void detach(const std::string& name) {
        std::lock_guard lock(mutex_);
        endpoints_.erase(name);
    }

    bool connected(const std::string& a, const std::string& b) const {
        auto ga = group_.find(a);
        auto gb = group_.find(b);
        const int x = ga == group_.end() ? -1 : ga->second;
        const int y = gb == group_.end() ? -1 : gb->second;
        return x == y;
    }

    void send(const std::string& from, const std::string* to, const pubsub::MessagePtr& m) {
        std::vector<std::function<void(pubsub::MessagePtr)>> now_targets;
        {
            std::lock_guard lock(mutex_);
            std::vector<std::string> targets;
            if (to) {
                targets.push_back(*to);
            } else {
                for (const auto& [name, fn] : endpoints_)
                    if (name != from) targets.push_back(name);
            }
            for (const auto& t : targets) {
                ++stats_.sent;
                ++stats_.events[m->event + (m->payload.is_object() && m->payload.contains("entries")
                                                ? "+entries"
                                                : "")];
                if (!connected(from, t)) {
                    ++stats_.cut;
                    continue;
                }
                if (rng_.chance(faults_.drop)) {
                    ++stats_.dropped;
                    continue;
                }
                int copies = 1;
                if (rng_.chance(faults_.duplicate)) {
                    ++copies;
                    ++stats_.duplicated;
                }
                for (int c = 0; c < copies; ++c) {
                    if (immediate_) {
                        auto ep = endpoints_.find(t);
                        if (ep != endpoints_.end()) {
                            now_targets.push_back(ep->second);
                            ++stats_.delivered;
                        }
                        continue;
                    }
                    const auto delay = std::chrono::milliseconds(
                        rng_.between(faults_.min_delay.count(), faults_.max_delay.count()));
                    const TimePoint base = clock_ ? clock_() : TimePoint{};
                    queue_.emplace(std::make_tuple(base + delay, seq_++, t),
                                   std::make_pair(from, m));
                }
            }
        }
        for (auto& fn : now_targets)
            fn(m);
    }

    mutable std::mutex mutex_;
    Rng rng_;
    Faults faults_;
    bool immediate_ = false;
    std::function<TimePoint()> clock_;
    std::map<std::string, std::function<void(pubsub::MessagePtr)>> endpoints_;
    std::map<std::string, int> group_;
    // (due, sequence, to) → (from, message)
    std::map<std::tuple<TimePoint, std::uint64_t, std::string>,
             std::pair<std::string, pubsub::MessagePtr>>
        queue_;
    std::uint64_t seq_ = 0;
    Stats stats_;
};

}  // namespace plume::test
