// plume/transport/drain_turns.hpp — fairness for broadcast writes: a big
// fan-out is written a budget at a time, with the reactor in between.
//
// A broadcast reaches each connection through post_send(), which posts one
// drain of the connection's mailbox. Asio runs posted handlers before it
// polls for I/O again, so a fan-out of a 400 KB presence_diff to 3,500
// sockets (1.4 GB of copying) would run as one uninterrupted block of drains
// while every other connection's input waits. DrainTurns, one per execution
// context, hands out a budget of broadcast bytes (Options::
// max_broadcast_bytes_per_turn) per pass through the handler queue: drains go
// ahead while it lasts; after that they wait here in arrival order, and one
// posted turn at a time lets the next budget's worth of them go. Each turn is
// posted behind the reactor, so the reads and timers that became ready
// meanwhile run between two turns.
//
// A waiting drain leaves its frames in the connection's mailbox (still
// bounded by max_send_queue), so per-connection order is unchanged. Waiting
// costs no allocation beyond the queue's: an owner pointer and a function.
#pragma once

#include <asio.hpp>

#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <utility>

namespace plume::transport::detail {

class DrainTurns final : public asio::execution_context::service {
  public:
    using key_type = DrainTurns;
    inline static asio::execution_context::id id;
    /// What one drain costs besides its bytes: a system call, about as long
    /// as copying this many bytes.
    static constexpr std::size_t drain_overhead = 1024;
    using Resume = void (*)(const std::shared_ptr<void>& owner);

    explicit DrainTurns(asio::execution_context& context) : service(context) {}

    static DrainTurns& of(const asio::any_io_executor& ex) {
        return asio::use_service<DrainTurns>(asio::query(ex, asio::execution::context));
    }

    /// A drain about to write `bytes`. True: go ahead now (the budget is
    /// charged). False: `resume(owner)` runs later, from a turn posted on
    /// `ex`, in the order the drains were refused.
    bool admit(std::size_t bytes, std::size_t budget, const asio::any_io_executor& ex,
               std::shared_ptr<void> owner, Resume resume) {
        std::lock_guard lock(mutex_);
        budget_ = budget;
        if (waiting_.empty() && spent_ < budget) {
            spent_ += bytes + drain_overhead;
            // The budget is per pass through the handler queue: it is given
            // back by a handler posted behind the drains queued now.
            if (!refill_posted_) {
                refill_posted_ = true;
                asio::post(ex, [this] { refill(); });
            }
            return true;
        }
        waiting_.push_back({bytes + drain_overhead, std::move(owner), resume});
        if (!turn_posted_) {
            turn_posted_ = true;
            asio::post(ex, [this, ex] { turn(ex); });
        }
        return false;
    }

    /// Drains waiting for a turn (for tests and metrics).
    std::size_t waiting() const {
        std::lock_guard lock(mutex_);
        return waiting_.size();
    }

  private:
    struct Waiting {
        std::size_t cost;
        std::shared_ptr<void> owner;
        Resume resume;
    };

    void refill() {
        std::lock_guard lock(mutex_);
        refill_posted_ = false;
        if (waiting_.empty()) spent_ = 0;  // else the turns hand out the budget
    }

    void turn(const asio::any_io_executor& ex) {
        std::unique_lock lock(mutex_);
        spent_ = 0;
        while (!waiting_.empty()) {
            if (spent_ >= budget_) {
                asio::post(ex, [this, ex] { turn(ex); });  // behind what became ready
                return;
            }
            Waiting w = std::move(waiting_.front());
            waiting_.pop_front();
            spent_ += w.cost;
            lock.unlock();
            w.resume(w.owner);
            lock.lock();
        }
        turn_posted_ = false;
    }

    // The connections held by waiting drains go before the sockets' services
    // are destroyed (this service was created after them, so shuts down first).
    void shutdown() override {
        std::deque<Waiting> gone;
        std::lock_guard lock(mutex_);
        gone.swap(waiting_);
    }

    mutable std::mutex mutex_;
    std::deque<Waiting> waiting_;
    std::size_t spent_ = 0;
    std::size_t budget_ = 0;
    bool turn_posted_ = false;
    bool refill_posted_ = false;
};

}  // namespace plume::transport::detail
