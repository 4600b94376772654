// plume/transport/executor.hpp — which executor a connection's handlers run on.
//
// Every handler of one connection runs serially. On an io_context that
// several threads run, that takes a strand per connection; on one made for a
// single thread (concurrency hint 1: `asio::io_context io{1}`, Asio's own
// promise that one thread calls run()) every handler is serial already, and
// a strand would cost ~100 bytes per connection and a hop per handler.
#pragma once

#include <asio.hpp>

namespace plume::transport::detail {

/// Whether `io` was made for one thread (concurrency hint 1).
inline bool runs_on_one_thread(asio::io_context& io) {
    return asio::use_service<asio::detail::scheduler>(io).concurrency_hint() == 1;
}

/// The io_context behind `ex` if `ex` is that context's own executor and
/// the context was made for one thread; else nullptr.
inline asio::io_context* one_thread_context(const asio::any_io_executor& ex) {
    auto* plain = ex.target<asio::io_context::executor_type>();
    if (!plain) return nullptr;
    auto& io = plain->context();
    return runs_on_one_thread(io) ? &io : nullptr;
}

/// The executor for a new connection on `io`: the io_context's own when one
/// thread runs it, else a strand of its own.
inline asio::any_io_executor connection_executor(asio::io_context& io) {
    if (runs_on_one_thread(io)) return io.get_executor();
    return asio::make_strand(io);
}

}  // namespace plume::transport::detail
