// plume/transport/detail/deadlines.hpp — the timeouts of the connections of
// an io_context that one thread runs: one heap and one Asio timer for all.
//
// A connection keeps one deadline at a time (handshake, idle, close). An
// asio::steady_timer per connection costs ~120 bytes inside the object and
// ~140 more for its pending wait; here a connection holds a slot number, and
// the io_context a 32-byte slot and a 16-byte heap entry per armed deadline,
// and one timer set to the earliest. Moving a deadline later (the usual case:
// every new connection's idle deadline is the latest) touches no timer.
//
// Single-threaded by contract, as ReadinessSet: everything runs on the
// io_context's one thread (concurrency hint 1); the connections of an
// io_context that several threads run keep a steady_timer each.
#pragma once

#include <asio.hpp>

#include "plume/transport/detail/slots.hpp"
#include "plume/transport/executor.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace plume::transport::detail {

class Deadlines : public asio::execution_context::service {
  public:
    using key_type = Deadlines;
    static inline asio::execution_context::id id;
    using clock = std::chrono::steady_clock;
    static constexpr std::uint32_t none = ~std::uint32_t{0};
    /// Called with the owner whose deadline passed; its slot is free by then.
    using Callback = void (*)(void* owner);

    explicit Deadlines(asio::io_context& io)
        : asio::execution_context::service(io), io_(io), timer_(io) {}
    Deadlines(const Deadlines&) = delete;
    Deadlines& operator=(const Deadlines&) = delete;

    /// The deadlines of `ex`'s io_context when one thread runs it, else nullptr.
    static Deadlines* of(const asio::any_io_executor& ex) {
        auto* io = one_thread_context(ex);
        return io ? &asio::use_service<Deadlines>(*io) : nullptr;
    }

    /// A new deadline: `on_expiry(owner)` runs once `at` has passed, unless
    /// cancelled first. `owner` is held until then, as a pending wait's
    /// handler would hold it. Returns the slot.
    std::uint32_t add(clock::time_point at, Callback on_expiry, std::shared_ptr<void> owner) {
        if (shut_down_) return none;  // the io_context is going: nothing will run
        auto slot = slots_.take();
        Slot& s = slots_[slot];
        s.on_expiry = on_expiry;
        s.owner = std::move(owner);
        s.pos = static_cast<std::uint32_t>(heap_.size());
        heap_.push_back({at, slot});
        sift_up(s.pos);
        schedule();
        return slot;
    }

    /// Moves the deadline of `slot` (armed, not yet expired) to `at`.
    void move(std::uint32_t slot, clock::time_point at) {
        if (shut_down_) return;
        auto pos = slots_[slot].pos;
        bool earlier = at < heap_[pos].at;
        heap_[pos].at = at;
        if (earlier)
            sift_up(pos);
        else
            sift_down(pos);
        schedule();
    }

    /// Drops the deadline of `slot` (armed, not yet expired). Its owner is let
    /// go in a posted handler: the caller may be the owner, and the last
    /// reference to it this one.
    void cancel(std::uint32_t slot) {
        if (shut_down_) return;
        remove(slots_[slot].pos);
        auto owner = free_slot(slot);
        if (owner) asio::post(io_, [owner = std::move(owner)] {});
        schedule();
    }

    /// Deadlines armed (for tests).
    std::size_t size() const noexcept { return heap_.size(); }
    /// Asio waits pending on the shared timer: 0 or 1 (for tests).
    std::size_t waits_pending() const noexcept { return wait_pending_; }

  private:
    struct Slot {
        std::shared_ptr<void> owner;
        Callback on_expiry = nullptr;
        std::uint32_t pos = 0;  // in heap_
    };
    struct Entry {
        clock::time_point at;
        std::uint32_t slot;
    };

    std::shared_ptr<void> free_slot(std::uint32_t slot) {
        slots_.give(slot);
        return std::move(slots_[slot].owner);
    }

    void place(std::uint32_t pos, Entry e) {
        heap_[pos] = e;
        slots_[e.slot].pos = pos;
    }

    void sift_up(std::uint32_t pos) {
        Entry e = heap_[pos];
        while (pos > 0) {
            auto parent = (pos - 1) / 2;
            if (!(e.at < heap_[parent].at)) break;
            place(pos, heap_[parent]);
            pos = parent;
        }
        place(pos, e);
    }

    void sift_down(std::uint32_t pos) {
        Entry e = heap_[pos];
        auto n = static_cast<std::uint32_t>(heap_.size());
        for (;;) {
            auto child = 2 * pos + 1;
            if (child >= n) break;
            if (child + 1 < n && heap_[child + 1].at < heap_[child].at) ++child;
            if (!(heap_[child].at < e.at)) break;
            place(pos, heap_[child]);
            pos = child;
        }
        place(pos, e);
    }

    void remove(std::uint32_t pos) {
        Entry last = heap_.back();
        heap_.pop_back();
        if (pos == heap_.size()) return;
        bool earlier = last.at < heap_[pos].at;
        place(pos, last);
        if (earlier)
            sift_up(pos);
        else
            sift_down(pos);
    }

    // One Asio wait while any deadline is armed, for the earliest: a pending
    // operation keeps run() going, as each connection's wait would, and with
    // none armed nothing is pending, so run() can run out of work.
    void schedule() {
        if (shut_down_) return;
        if (heap_.empty()) {
            if (wait_pending_) {
                wait_pending_ = false;
                ++generation_;
                timer_.cancel();
            }
            return;
        }
        auto first = heap_.front().at;
        // A wait due no later wakes early enough: it finds nothing due, or
        // less than all, and waits again.
        if (wait_pending_ && timer_at_ <= first) return;
        timer_at_ = first;
        ++generation_;
        wait_pending_ = true;
        timer_.expires_at(first);  // a wait pending ends as superseded
        timer_.async_wait([this, generation = generation_](std::error_code ec) {
            if (generation != generation_) return;
            wait_pending_ = false;
            if (shut_down_ || ec) return;
            expire();
        });
    }

    void expire() {
        auto now = clock::now();
        while (!heap_.empty() && heap_.front().at <= now) {
            auto slot = heap_.front().slot;
            remove(0);
            auto on_expiry = slots_[slot].on_expiry;
            auto owner = free_slot(slot);  // kept alive through the call
            on_expiry(owner.get());        // may add, move or cancel deadlines
        }
        schedule();
    }

    void shutdown() override {
        shut_down_ = true;
        auto owners = slots_.take_owners();
        heap_.clear();
        owners.clear();  // connections end here, as the handlers of their waits would
        timer_.cancel();
    }

    asio::io_context& io_;
    asio::steady_timer timer_;
    Slots<Slot> slots_;
    std::vector<Entry> heap_;  // a binary min-heap on `at`
    clock::time_point timer_at_{};
    std::uint64_t generation_ = 0;  // of the wait that counts
    bool wait_pending_ = false;
    bool shut_down_ = false;
};

}  // namespace plume::transport::detail
