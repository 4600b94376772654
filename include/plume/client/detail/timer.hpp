// plume/client/detail/timer.hpp — restartable one-shot timers on a strand,
// and phoenix.js's backoff Timer (tries, scheduleTimeout, reset).
#pragma once

#include <asio.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <utility>

namespace plume::client::detail {

using Strand = asio::strand<asio::any_io_executor>;

/// A timer whose start() replaces any pending expiry. A cancelled or
/// replaced expiry never runs, even when Asio had already queued it.
///
/// Lifetime rule: the callback passed to start() must keep the Timer's owner
/// alive (capture its shared_ptr); the handler touches the Timer only when
/// the wait completed without error, i.e. while the owner still exists.
class Timer {
  public:
    explicit Timer(const Strand& strand) : timer_(strand) {}

    template <class F>
    void start(std::chrono::milliseconds delay, F callback) {
        ++generation_;
        active_ = true;
        timer_.expires_after(delay);
        timer_.async_wait(
            [this, g = generation_, cb = std::move(callback)](std::error_code ec) mutable {
                if (ec || g != generation_) return;
                active_ = false;
                cb();
            });
    }

    void cancel() {
        if (!active_) return;
        ++generation_;
        active_ = false;
        timer_.cancel();
    }

    bool active() const noexcept { return active_; }

  private:
    asio::steady_timer timer_;
    std::uint64_t generation_ = 0;
    bool active_ = false;
};

/// phoenix.js's Timer: schedule() waits calc(tries + 1), then counts the try
/// and calls back; reset() forgets the tries and cancels.
class BackoffTimer {
  public:
    BackoffTimer(const Strand& strand, std::function<std::chrono::milliseconds(unsigned)> calc)
        : timer_(strand), calc_(std::move(calc)) {}

    template <class F>
    void schedule(F callback) {
        timer_.start(calc_(tries_ + 1), [this, cb = std::move(callback)]() mutable {
            ++tries_;
            cb();
        });
    }
    void reset() {
        tries_ = 0;
        timer_.cancel();
    }
    /// Cancels a pending attempt but keeps the count (phoenix.js's
    /// clearTimeout(reconnectTimer.timer) when connecting again).
    void cancel() { timer_.cancel(); }
    unsigned tries() const noexcept { return tries_; }

  private:
    Timer timer_;
    std::function<std::chrono::milliseconds(unsigned)> calc_;
    unsigned tries_ = 0;
};

}  // namespace plume::client::detail
