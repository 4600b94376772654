// plume/transport/server.hpp — accepts TCP connections and runs a WebSocket
// Connection with a fresh Handler on each, one strand per connection, over
// the stream policy NextLayer (plain TCP by default; TlsSocket for wss://).
//
//   asio::io_context io;
//   plume::transport::Server<Echo> server(io, options);       // Echo: see websocket.hpp
//   plume::transport::Server<Echo, plume::transport::TlsSocket> tls(io, options, factory,
//                                                                   {ssl_context});
//   server.listen("127.0.0.1", 9001);                           // throws on failure
//   server.stop();   // closes every connection with 1001 and stops accepting
//   server.stop(1012, "restart", [] { /* listener and every connection closed */ });
//
// The io_context may be run by any number of threads: each connection's
// handlers run serially on its own strand. Or each thread runs an io_context
// of its own, made for one thread, and the server spreads its connections
// over them (spread_over): no strands then, and no handler queue shared
// between threads.
//
//   asio::io_context main{1}, second{1};
//   server.spread_over({&main, &second});  // before listen(); run each in a thread
#pragma once

#include <sys/socket.h>
#include <asio.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "plume/transport/executor.hpp"
#include "plume/transport/websocket.hpp"

namespace plume::transport {

/// The close reason Server::stop() sends unless given another.
inline constexpr std::string_view default_stop_reason = "server shutting down";

template <class Handler, class NextLayer = asio::ip::tcp::socket>
class Server {
  public:
    using connection_type = Connection<Handler, NextLayer>;
    using Factory = std::function<Handler()>;
    /// What the stream needs to wrap an accepted socket (TLS: the ssl::context).
    using StreamContext = typename StreamTraits<NextLayer>::Context;

    Server(
        asio::io_context& io, Options options, Factory factory = [] { return Handler{}; },
        StreamContext stream = {})
        : io_(io),
          stream_(std::move(stream)),
          acceptor_(asio::make_strand(io)),
          retry_timer_(acceptor_.get_executor()),
          options_(std::make_shared<const Options>(std::move(options))),
          factory_(std::move(factory)),
          registry_(std::make_shared<typename connection_type::registry_type>()) {
        registry_->executor = io.get_executor();
        if constexpr (requires { StreamTraits<NextLayer>::prepare_server(stream_); })
            StreamTraits<NextLayer>::prepare_server(stream_);
    }

    /// Binds and listens; port 0 picks a free port (see local_endpoint()).
    void listen(std::string_view host, std::uint16_t port) {
        asio::ip::tcp::endpoint ep(asio::ip::make_address(std::string(host)), port);
        acceptor_.open(ep.protocol());
        acceptor_.set_option(asio::socket_base::reuse_address(true));
        acceptor_.bind(ep);
        acceptor_.listen(asio::socket_base::max_listen_connections);
        acceptor_.non_blocking(true);  // accept() below must not block
        asio::dispatch(acceptor_.get_executor(), [this] { accept(); });
    }

    /// Places the connections accepted from now on over these io_contexts,
    /// one after another, instead of on the server's own. Each should be made
    /// for one thread (`asio::io_context{1}`) and run by its own thread: then a
    /// connection needs no strand. The listener, stop() and its callback stay
    /// on the server's io_context, which may be one of them. The contexts must
    /// outlive the connections; keep each running (a work guard) until stop()
    /// has finished. Call before listen().
    void spread_over(std::vector<asio::io_context*> contexts) { contexts_ = std::move(contexts); }

    asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
    const Options& options() const noexcept { return *options_; }

    /// Number of connections alive (handshaking, open or closing).
    std::size_t connection_count() const {
        std::lock_guard lock(registry_->mutex);
        return registry_->live;
    }

    /// Calls f(shared_ptr<connection_type>) on each live connection's own
    /// executor; safe from any thread.
    template <class F>
    void for_each_connection(F f) const {
        std::lock_guard lock(registry_->mutex);
        registry_->for_each([&](connection_type& conn) {
            if (auto c = conn.weak_from_this().lock())
                asio::post(c->get_executor(), [c, f] { f(c); });
        });
    }

    /// Stops accepting and closes every connection with `code` (1001 going
    /// away by default; 1012 for a restart). Safe from any thread. Once the
    /// listener and every connection are closed (closing handshakes
    /// finished, or cut off after close_timeout), `on_stopped` runs on the
    /// io_context, once; a later stop() replaces an earlier one's callback.
    void stop(std::uint16_t code = to_int(close_code::going_away),
              std::string reason = std::string(default_stop_reason),
              std::function<void()> on_stopped = nullptr) {
        // The acceptor is closed once no wait is pending on it: shutdown()
        // ends a pending wait (the socket stops listening and polls as hung
        // up), its handler closes. Never cancel() or close() under a pending
        // operation: see Connection::close_if_idle.
        asio::post(acceptor_.get_executor(), [this] {
            stopping_ = true;
            retry_timer_.cancel();
            if (accepting_)
                ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
            else
                close_acceptor();
        });
        {
            std::lock_guard lock(registry_->mutex);
            registry_->stopping = true;
            if (on_stopped) registry_->on_stopped = std::move(on_stopped);
            registry_->notify_if_stopped();
        }
        for_each_connection([code, reason](auto c) { c->close(code, reason); });
    }

  private:
    // Runs on the acceptor's strand, like every use of acceptor_ after
    // listen(). Waits until the listening socket is readable, then accepts
    // what is waiting without blocking (a burst of connections costs one
    // wake-up).
    void accept() {
        if (stopping_) return;
        accepting_ = true;
        acceptor_.async_wait(asio::socket_base::wait_read, [this](std::error_code ec) {
            accepting_ = false;
            if (stopping_) return close_acceptor();
            if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
            for (int i = 0; i < 64 && !ec; ++i) {
                asio::ip::tcp::socket socket =
                    acceptor_.accept(detail::connection_executor(next_context()), ec);
                if (ec == asio::error::would_block || ec == asio::error::try_again) return accept();
                if (ec) break;
                ++next_context_;  // only a socket taken moves the round on
                start_connection(std::move(socket));
            }
            if (ec && ec != asio::error::connection_aborted) {
                // Out of descriptors or memory: back off instead of spinning.
                retry_timer_.expires_after(std::chrono::milliseconds(50));
                retry_timer_.async_wait([this](std::error_code e) {
                    if (!e) accept();
                });
                return;
            }
            accept();
        });
    }

    // Round robin over spread_over's contexts (acceptor strand only): the
    // context of the next socket accepted. An accept that finds nothing
    // (would_block, the end of every burst) does not count, or with one
    // connection per wake-up every other context would get none.
    asio::io_context& next_context() {
        if (contexts_.empty()) return io_;
        return *contexts_[next_context_ % contexts_.size()];
    }

    void close_acceptor() {
        std::error_code ignored;
        acceptor_.close(ignored);
        std::lock_guard lock(registry_->mutex);
        registry_->acceptor_closed = true;
        registry_->notify_if_stopped();
    }

    void start_connection(asio::ip::tcp::socket socket) {
        auto conn = std::make_shared<connection_type>(
            StreamTraits<NextLayer>::make(std::move(socket), stream_), options_, role::server,
            factory_());
        {
            // Checked and joined under one lock: a stop() on another thread
            // either sees this connection or is seen by it.
            std::lock_guard lock(registry_->mutex);
            if (registry_->stopping) return;  // the socket closes with conn
            conn->attach(registry_);
        }
        asio::dispatch(conn->get_executor(), [conn] { conn->start_server(); });
    }

    asio::io_context& io_;
    StreamContext stream_;
    asio::ip::tcp::acceptor acceptor_;  // on its own strand
    asio::steady_timer retry_timer_;
    bool accepting_ = false;                   // an async_wait is pending (acceptor strand only)
    bool stopping_ = false;                    // stop() ran (acceptor strand only)
    std::vector<asio::io_context*> contexts_;  // spread_over's; empty: io_
    std::size_t next_context_ = 0;             // acceptor strand only
    std::shared_ptr<const Options> options_;
    Factory factory_;
    std::shared_ptr<typename connection_type::registry_type> registry_;
};

}  // namespace plume::transport
