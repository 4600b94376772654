// Test support: drive an io_context until a condition holds, with a bound.
#pragma once

#include <asio.hpp>

#include <chrono>

namespace plume::test {

/// Runs handlers until pred() is true or `limit` passes; returns pred().
template <class Pred>
bool run_until(asio::io_context& io, Pred pred,
               std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred() && std::chrono::steady_clock::now() < deadline) {
        if (io.stopped()) io.restart();
        io.run_one_for(std::chrono::milliseconds(20));
    }
    return pred();
}

/// Runs the io_context until it has no work left (true), or `limit` passes
/// (false): no operation, timer or posted handler was left behind.
inline bool runs_out_of_work(asio::io_context& io,
                             std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    io.restart();
    io.run_for(limit);
    return io.stopped();
}

}  // namespace plume::test
