// plume/detail/spin_lock.hpp — a one-byte lock for the short critical
// sections that every connection carries (a std::mutex is 40 bytes, and a
// server holds one per connection and one per join).
//
// For sections of a few instructions and at most a small allocation: a
// waiter spins briefly, then yields its core to whoever holds the lock.
//
//   plume::detail::SpinLock lock;
//   { std::lock_guard guard(lock); queue.push_back(x); }
#pragma once

#include <atomic>
#include <thread>

namespace plume::detail {

class SpinLock {
  public:
    void lock() noexcept {
        unsigned spins = 0;
        while (locked_.exchange(true, std::memory_order_acquire)) {
            while (locked_.load(std::memory_order_relaxed)) {
                if (++spins < 64)
                    relax();
                else
                    std::this_thread::yield();
            }
        }
    }
    bool try_lock() noexcept {
        return !locked_.load(std::memory_order_relaxed) &&
               !locked_.exchange(true, std::memory_order_acquire);
    }
    void unlock() noexcept { locked_.store(false, std::memory_order_release); }

  private:
    static void relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }

    std::atomic<bool> locked_{false};
};

}  // namespace plume::detail
