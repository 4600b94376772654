// plume/transport/detail/registry.hpp — a Server's list of its live
// connections, to close them on shutdown and tell when the last one is gone.
#pragma once

#include <asio.hpp>

#include <functional>
#include <list>
#include <memory>
#include <mutex>

namespace plume::transport::detail {

// Lets a Server find its live connections to close them on shutdown, and
// tell when the last one is gone.
template <class Conn>
struct Registry {
    std::mutex mutex;
    std::list<std::weak_ptr<Conn>> live;
    bool stopping = false;
    bool acceptor_closed = false;
    std::function<void()> on_stopped;  // posted once stopped: no listener, no connection
    asio::any_io_executor executor;    // where on_stopped runs

    // Call with `mutex` held.
    void notify_if_stopped() {
        if (!stopping || !acceptor_closed || !live.empty() || !on_stopped) return;
        asio::post(executor, std::move(on_stopped));
        on_stopped = nullptr;
    }
};

}  // namespace plume::transport::detail
