// plume/transport/detail/tcp_queue.hpp — what the kernel knows about a TCP
// connection's backlog: the bytes written but not yet sent, and the window
// the peer last advertised (the room left in its receive buffer); and how
// much unsent data it may hold (TCP_NOTSENT_LOWAT).
#pragma once

#include <asio.hpp>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <system_error>

#if defined(__linux__)
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

namespace plume::transport::detail {

struct TcpBacklog {
    std::uint32_t unsent = 0;       // written, not yet sent
    std::uint32_t peer_window = 0;  // the peer's receive window; 0 if unknown
    bool known = false;             // false: the platform cannot tell
};

/// One getsockopt(TCP_INFO). Linux's struct tcp_info only grows, so the
/// fields are read at their fixed offsets (tcpi_notsent_bytes since 4.6,
/// tcpi_snd_wnd since 6.2), whatever the C library's header declares.
template <class Socket>
TcpBacklog tcp_backlog(Socket& socket) noexcept {
    TcpBacklog b;
#if defined(__linux__)
    constexpr std::size_t notsent_at = 144, snd_wnd_at = 228;
    unsigned char info[256] = {};
    socklen_t len = sizeof info;
    if (::getsockopt(socket.native_handle(), IPPROTO_TCP, TCP_INFO, info, &len) != 0) return b;
    if (len >= notsent_at + 4) {
        std::memcpy(&b.unsent, info + notsent_at, 4);
        b.known = true;
    }
    if (len >= snd_wnd_at + 4) std::memcpy(&b.peer_window, info + snd_wnd_at, 4);
#else
    (void)socket;
#endif
    return b;
}

/// Lets the kernel hold at most `bytes` written but unsent on the socket
/// (TCP_NOTSENT_LOWAT): the rest of a backlog waits in plume's send queue,
/// where the lanes order it. Ignored where the platform lacks the option.
template <class Socket>
void limit_unsent(Socket& socket, std::size_t bytes) noexcept {
#ifdef TCP_NOTSENT_LOWAT
    using notsent_lowat = asio::detail::socket_option::integer<IPPROTO_TCP, TCP_NOTSENT_LOWAT>;
    std::error_code ec;
    socket.set_option(notsent_lowat(static_cast<int>(std::min<std::size_t>(bytes, INT_MAX))), ec);
#else
    (void)socket;
    (void)bytes;
#endif
}

}  // namespace plume::transport::detail
