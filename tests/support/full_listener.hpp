// Test support: a listening socket whose accept queue is full, so the kernel
// drops every further SYN and a connect to it stays pending (SYN_SENT) — the
// state in which a client must be able to give up without leaving an
// operation or a socket behind.
#pragma once

#include <poll.h>
#include <asio.hpp>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace plume::test {

class FullListener {
  public:
    explicit FullListener(asio::io_context& io) : acceptor_(io), filler_(io) {
        const asio::ip::tcp::endpoint any(asio::ip::make_address("127.0.0.1"), 0);
        acceptor_.open(any.protocol());
        acceptor_.bind(any);
        acceptor_.listen(0);  // a queue of one, never accepted from
        filler_.connect(acceptor_.local_endpoint());
        // The queue is full once the filler is in it: the listener polls readable.
        pollfd readable{acceptor_.native_handle(), POLLIN, 0};
        if (::poll(&readable, 1, 5000) != 1)
            throw std::runtime_error("FullListener: the filler never reached the accept queue");
    }

    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    std::string url(const std::string& path = "/") const {
        return "ws://127.0.0.1:" + std::to_string(port()) + path;
    }

    /// Sockets of this machine in SYN_SENT towards this listener, from /proc/net/tcp.
    int connects_pending() const {
        std::ifstream table("/proc/net/tcp");
        std::string line;
        std::getline(table, line);  // the header
        int pending = 0;
        while (std::getline(table, line)) {
            std::istringstream fields(line);
            std::string slot, local, remote, state;
            fields >> slot >> local >> remote >> state;
            const auto colon = remote.find(':');
            if (colon == std::string::npos || state != "02") continue;
            if (std::stoul(remote.substr(colon + 1), nullptr, 16) == port()) ++pending;
        }
        return pending;
    }

  private:
    asio::ip::tcp::acceptor acceptor_;
    asio::ip::tcp::socket filler_;  // fills the queue
};

}  // namespace plume::test
