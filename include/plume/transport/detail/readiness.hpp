// plume/transport/detail/readiness.hpp — readability of the plain sockets of
// an io_context that one thread runs, without a system call per wait.
//
// A socket's async_wait makes Asio re-arm the descriptor in its epoll set
// (epoll_ctl) on every call: in a request/response exchange that is a third
// system call per message, beside the recv and the send. Here the sockets of
// one io_context also sit in an epoll set of their own, edge-triggered and
// added once. That set's descriptor is waited on through Asio, one wait per
// batch of ready sockets. A socket that turns readable while its connection
// is busy is remembered until the connection waits again, and a connection
// waits only once it has read its socket dry (edges announce new bytes, not
// bytes left behind).
//
// Single-threaded by contract: everything but release() runs on the
// io_context's one thread (concurrency hint 1); the connections of an
// io_context that several threads run use async_wait.
#pragma once

#include <asio.hpp>

#include "plume/transport/detail/slots.hpp"
#include "plume/transport/executor.hpp"

#if defined(__linux__) && !defined(ASIO_DISABLE_EPOLL) && !defined(PLUME_NO_READINESS_SET)
#define PLUME_HAS_READINESS_SET 1
#include <sys/epoll.h>
#include <unistd.h>
#endif

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace plume::transport::detail {

#ifdef PLUME_HAS_READINESS_SET

class ReadinessSet : public asio::execution_context::service {
  public:
    using key_type = ReadinessSet;
    static inline asio::execution_context::id id;
    static constexpr std::uint32_t none = ~std::uint32_t{0};
    /// Called with the waiting owner (the connection) when its socket is ready.
    using Callback = void (*)(void* owner);

    explicit ReadinessSet(asio::io_context& io)
        : asio::execution_context::service(io), io_(io), set_(io) {
        int fd = ::epoll_create1(EPOLL_CLOEXEC);
        if (fd < 0) return;
        std::error_code ec;
        set_.assign(fd, ec);
        if (ec) ::close(fd);
    }
    ReadinessSet(const ReadinessSet&) = delete;
    ReadinessSet& operator=(const ReadinessSet&) = delete;

    /// The set of `io` when one thread runs it (else nullptr: use async_wait).
    static ReadinessSet* of(const asio::any_io_executor& ex) {
        auto* io = one_thread_context(ex);
        if (!io) return nullptr;
        auto& set = asio::use_service<ReadinessSet>(*io);
        return set.set_.is_open() ? &set : nullptr;
    }

    /// Adds a socket; `on_ready(owner)` runs when it turns readable while
    /// waited for (wait's owner). Returns the slot, or `none` if the kernel refused it.
    std::uint32_t add(int fd, Callback on_ready) {
        auto slot = slots_.take();
        Slot& s = slots_[slot];
        s.on_ready = on_ready;
        s.ready = false;
        s.waiting = false;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
        ev.data.u64 = (std::uint64_t{s.generation} << 32) | slot;
        if (::epoll_ctl(set_.native_handle(), EPOLL_CTL_ADD, fd, &ev) != 0) {
            free_slot(slot);
            return none;
        }
        ++added_;
        return slot;
    }

    /// Waits for the socket of `slot`, holding `owner` until it is ready.
    /// False when it turned readable since its connection last read it: read now.
    bool wait(std::uint32_t slot, std::shared_ptr<void> owner) {
        Slot& s = slots_[slot];
        if (s.ready) {
            s.ready = false;
            return false;
        }
        s.waiting = true;
        s.owner = std::move(owner);
        ++waiting_;
        arm();
        return true;
    }

    /// Takes the socket of `slot` out of the set, before it closes; from any
    /// thread (a connection may end where its last owner lets go of it).
    void release(std::uint32_t slot, int fd) {
        if (shut_down_) return;
        epoll_event ev{};
        ::epoll_ctl(set_.native_handle(), EPOLL_CTL_DEL, fd, &ev);
        if (io_.get_executor().running_in_this_thread()) return free_slot(slot);
        asio::post(io_, [this, slot] { free_slot(slot); });
    }

    /// Sockets in the set (for tests).
    std::size_t size() const noexcept { return slots_.taken(); }
    /// Sockets ever added (for tests).
    std::uint64_t added() const noexcept { return added_; }
    /// Asio waits pending on the set's descriptor: 0 or 1 (for tests).
    std::size_t waits_pending() const noexcept { return wait_pending_; }
    /// Sockets that turned readable while nobody waited (for tests).
    std::size_t marked_ready() const noexcept {
        std::size_t n = 0;
        for (const auto& s : slots_.all())
            n += s.ready;
        return n;
    }

  private:
    struct Slot {
        Callback on_ready = nullptr;
        std::shared_ptr<void> owner;  // held while waiting, as a pending handler would
        std::uint32_t generation = 0;
        bool waiting = false;
        bool ready = false;  // an edge came while nobody waited
    };

    void free_slot(std::uint32_t slot) {
        if (shut_down_ || slot >= slots_.all().size()) return;
        Slot& s = slots_[slot];
        ++s.generation;
        s.ready = false;
        if (s.waiting) {  // not on the normal path: a waiting connection is owned here
            s.waiting = false;
            --waiting_;
            asio::post(io_, [owner = std::move(s.owner)] {});
            if (waiting_ == 0 && wait_pending_) set_.cancel();
        }
        slots_.give(slot);
    }

    // One Asio wait on the set's descriptor while any socket is waited for:
    // a pending operation keeps run() going, as each socket's wait would.
    // Never two: a wait is started only when none is pending and no drain is
    // posted (which arms again when it ends), so the last socket's release
    // can cancel the one wait and let run() run out of work.
    void arm() {
        if (wait_pending_ || drain_posted_ || waiting_ == 0) return;
        wait_pending_ = true;
        set_.async_wait(asio::posix::descriptor_base::wait_read, [this](std::error_code ec) {
            wait_pending_ = false;
            if (shut_down_) return;
            if (ec) return arm();  // cancelled when nobody waited: maybe someone does now
            drain();
        });
    }

    void drain() {
        constexpr int batch = 64;
        epoll_event events[batch];
        int n = ::epoll_wait(set_.native_handle(), events, batch, 0);
        for (int i = 0; i < n; ++i) {
            auto slot = static_cast<std::uint32_t>(events[i].data.u64);
            auto generation = static_cast<std::uint32_t>(events[i].data.u64 >> 32);
            if (slot >= slots_.all().size() || slots_[slot].generation != generation) continue;
            Slot& s = slots_[slot];
            if (!s.waiting) {
                s.ready = true;
                continue;
            }
            s.waiting = false;
            --waiting_;
            auto owner = std::move(s.owner);  // kept alive through the call
            s.on_ready(owner.get());          // may add slots and wait: `s` is not used after
        }
        // A full batch may have more behind it: the rest after the handlers
        // already queued on this thread.
        if (n == batch) {
            drain_posted_ = true;
            asio::post(io_, [this] {
                drain_posted_ = false;
                if (!shut_down_) drain();
            });
            return;
        }
        arm();
    }

    void shutdown() override {
        shut_down_ = true;
        auto owners = slots_.take_owners();
        waiting_ = 0;
        owners.clear();  // connections end here, as the handlers of their waits would
        std::error_code ec;
        set_.close(ec);
    }

    asio::io_context& io_;
    asio::posix::stream_descriptor set_;
    Slots<Slot> slots_;
    std::size_t waiting_ = 0;
    std::uint64_t added_ = 0;
    bool wait_pending_ = false;  // an async_wait on set_
    bool drain_posted_ = false;  // a drain() posted after a full batch
    bool shut_down_ = false;
};

#else

// Without epoll (io_uring backend, other systems): sockets use async_wait.
class ReadinessSet {
  public:
    static constexpr std::uint32_t none = ~std::uint32_t{0};
    using Callback = void (*)(void* owner);
    static ReadinessSet* of(const asio::any_io_executor&) { return nullptr; }
    std::uint32_t add(int, Callback) { return none; }
    bool wait(std::uint32_t, std::shared_ptr<void>) { return true; }
    void release(std::uint32_t, int) {}
};

#endif

}  // namespace plume::transport::detail
