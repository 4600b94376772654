// plume/transport/lane_ticker.hpp — the clock of the low-priority lane: one
// timer per execution context, not one per connection.
//
// A connection that holds low-priority frames registers once; every
// Options::low_lane_window the ticker tells each registered connection to
// send what it holds (on the connection's own executor). A frame is so held
// between 0 and one window, and the frames of a window leave in one write.
// An idle connection costs nothing here: it is registered only while it
// holds low frames.
#pragma once

#include <asio.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace plume::transport::detail {

class LaneTicker final : public asio::execution_context::service {
  public:
    using key_type = LaneTicker;
    inline static asio::execution_context::id id;
    using Tick = void (*)(const std::shared_ptr<void>& owner);

    explicit LaneTicker(asio::execution_context& context) : service(context) {}

    static LaneTicker& of(const asio::any_io_executor& ex) {
        return asio::use_service<LaneTicker>(asio::query(ex, asio::execution::context));
    }

    /// Calls `tick(owner)` within `window`, from a handler on `ex` (the first
    /// caller's executor: every tick dispatches to its owner's own). False:
    /// the context is shutting down; the caller sends at once.
    bool schedule(std::chrono::milliseconds window, const asio::any_io_executor& ex,
                  std::shared_ptr<void> owner, Tick tick) {
        std::lock_guard lock(mutex_);
        if (shut_) return false;
        if (!timer_) timer_.emplace(ex);
        waiting_.push_back({std::move(owner), tick});
        if (!armed_) {
            armed_ = true;
            timer_->expires_after(window);
            timer_->async_wait([this](std::error_code ec) {
                if (!ec) fire();
            });
        }
        return true;
    }

  private:
    struct Waiting {
        std::shared_ptr<void> owner;
        Tick tick;
    };

    void fire() {
        std::vector<Waiting> due;
        {
            std::lock_guard lock(mutex_);
            armed_ = false;
            due.swap(waiting_);
        }
        for (auto& w : due)
            w.tick(w.owner);
    }

    // Owners (connections) and the timer go before the services they use
    // (created before this one) are shut down and destroyed.
    void shutdown() override {
        std::vector<Waiting> gone;
        std::lock_guard lock(mutex_);
        shut_ = true;
        gone.swap(waiting_);
        timer_.reset();
    }

    std::optional<asio::steady_timer> timer_;
    std::mutex mutex_;
    std::vector<Waiting> waiting_;
    bool armed_ = false;
    bool shut_ = false;
};

}  // namespace plume::transport::detail
