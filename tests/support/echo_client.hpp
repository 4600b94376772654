// Test support: a WebSocket client written by hand on a non-blocking socket,
// for tests that watch what the server does per socket (readiness, timeouts).
// It upgrades with upgrade_request, writes masked frames, and gathers the
// payloads of the server's frames (a close frame's code and reason too).
#pragma once

#include <catch2/catch.hpp>

#include <plume/transport.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "support/raw_websocket.hpp"
#include "support/run_until.hpp"

namespace plume::test {

struct EchoClient {
    asio::ip::tcp::socket sock;
    std::string in;
    bool upgraded = false;
    std::string echoed;  // payloads, concatenated
    bool eof = false;    // the server closed the TCP connection

    EchoClient(asio::io_context& io, std::uint16_t port) : sock(io) {
        sock.connect({asio::ip::make_address("127.0.0.1"), port});
        asio::write(sock, asio::buffer(upgrade_request));
        sock.non_blocking(true);
    }
    static std::string frame(std::string_view payload) {
        unsigned char header[transport::max_header_size];
        const unsigned char mask[4] = {0, 0, 0, 0};  // XOR with zeros: the payload as is
        std::size_t n = transport::write_header(header, transport::opcode::binary, payload.size(),
                                                true, false, mask);
        return std::string(reinterpret_cast<char*>(header), n) + std::string(payload);
    }
    void send(const std::string& bytes) {
        sock.non_blocking(false);
        asio::write(sock, asio::buffer(bytes));
        sock.non_blocking(true);
    }
    // Reads what is there; unmasked server frames, payload lengths < 64 KiB.
    void read() {
        char buf[64 * 1024];
        std::error_code ec;
        for (std::size_t n; (n = sock.read_some(asio::buffer(buf), ec)), !ec;)
            in.append(buf, n);
        if (ec == asio::error::eof) eof = true;
        if (!upgraded) {
            auto end = in.find("\r\n\r\n");
            if (end == std::string::npos) return;
            REQUIRE(in.starts_with("HTTP/1.1 101"));
            in.erase(0, end + 4);
            upgraded = true;
        }
        while (in.size() >= 2) {
            std::size_t len = static_cast<unsigned char>(in[1]) & 0x7f, head = 2;
            if (len == 126) {
                if (in.size() < 4) return;
                len = (std::size_t(static_cast<unsigned char>(in[2])) << 8) |
                      static_cast<unsigned char>(in[3]);
                head = 4;
            }
            if (in.size() < head + len) return;
            echoed.append(in, head, len);
            in.erase(0, head + len);
        }
    }
    bool open() {
        read();
        return upgraded;
    }
};

using EchoClients = std::vector<std::unique_ptr<EchoClient>>;

/// `n` clients of the server on `port`, once every one is upgraded.
inline EchoClients open_clients(asio::io_context& io, std::uint16_t port, int n) {
    EchoClients clients;
    for (int i = 0; i < n; ++i)
        clients.push_back(std::make_unique<EchoClient>(io, port));
    REQUIRE(run_until(io, [&] {
        for (auto& c : clients)
            if (!c->open()) return false;
        return true;
    }));
    return clients;
}

/// Every client sends `msg` to an echo server; returns once each has
/// `expected` bytes of echoes (false if not within run_until's bound).
inline bool echo_round(asio::io_context& io, EchoClients& clients, const std::string& msg,
                       std::size_t expected) {
    for (auto& c : clients)
        c->send(EchoClient::frame(msg));
    return run_until(io, [&] {
        for (auto& c : clients) {
            c->read();
            if (c->echoed.size() < expected) return false;
        }
        return true;
    });
}

}  // namespace plume::test
