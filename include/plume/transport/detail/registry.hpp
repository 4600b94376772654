// plume/transport/detail/registry.hpp — a Server's list of its live
// connections, to close them on shutdown and tell when the last one is gone.
#pragma once

#include <asio.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>

namespace plume::transport::detail {

// Where a connection sits in its Registry: a link of its own, so joining
// allocates nothing (a std::list node of a weak_ptr took 48 bytes).
template <class Conn>
struct RegistryHook {
    Conn* prev = nullptr;
    Conn* next = nullptr;
};

// Lets a Server find its live connections to close them on shutdown, and
// tell when the last one is gone. Every member is used with `mutex` held.
// A connection leaves in its destructor, under the mutex: one met while
// walking the list is whole, if maybe already expiring (weak_from_this()
// then gives nothing).
template <class Conn>
struct Registry {
    std::mutex mutex;
    Conn* first = nullptr;  // linked through Conn::registry_hook_
    std::size_t live = 0;
    bool stopping = false;
    bool acceptor_closed = false;
    std::function<void()> on_stopped;  // posted once stopped: no listener, no connection
    asio::any_io_executor executor;    // where on_stopped runs

    void insert(Conn& c) {
        c.registry_hook_ = {nullptr, first};
        if (first) first->registry_hook_.prev = &c;
        first = &c;
        ++live;
    }

    void erase(Conn& c) {
        auto [prev, next] = c.registry_hook_;
        (prev ? prev->registry_hook_.next : first) = next;
        if (next) next->registry_hook_.prev = prev;
        --live;
    }

    template <class F>
    void for_each(F f) {
        for (Conn* c = first; c; c = c->registry_hook_.next)
            f(*c);
    }

    void notify_if_stopped() {
        if (!stopping || !acceptor_closed || live != 0 || !on_stopped) return;
        asio::post(executor, std::move(on_stopped));
        on_stopped = nullptr;
    }
};

}  // namespace plume::transport::detail
