// plume/transport/tls_stream.hpp — TLS over a TCP socket, with OpenSSL
// reading and writing the socket itself (no intermediate buffers).
//
//   plume::transport::TlsStream tls(asio::ip::tcp::socket(io), *server_tls_context(cert, key));
//
// asio::ssl::stream keeps two 17 KiB buffers per stream and a BIO pair with
// two more, for the life of the connection (~67 KiB per idle connection),
// and writes one record per buffer of a gather write. TlsStream lets OpenSSL
// do non-blocking recv/send on the socket and waits for readiness with
// async_wait: an idle connection holds only OpenSSL's session state (its
// record buffers are released while idle, SSL_MODE_RELEASE_BUFFERS), a
// gather write leaves as one record of up to 16 KiB, and reads and writes may
// be tried speculatively (read_some/write_some report would_block), as on a
// plain socket.
//
// Like asio::ssl::stream, one read and one write may be pending at a time,
// and all operations run on the socket's executor (a strand when the
// io_context has several threads). Configuration (certificates, verify mode,
// CAs) stays with asio::ssl::context.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <asio.hpp>
#include <asio/ssl.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

namespace plume::transport {

namespace detail {

// A BIO on a socket's descriptor that sends with MSG_NOSIGNAL (OpenSSL's
// socket BIO uses write(), which raises SIGPIPE on a reset connection). Its
// data is the descriptor, shifted left by one, and in the low bit whether
// the last receive emptied the socket (it returned fewer bytes than asked,
// or none were there): only then may a read wait for readability first, as
// the socket's readiness is edge-triggered.
inline int tls_fd(BIO* b) {
    return static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(b)) >> 1);
}

inline bool tls_drained(BIO* b) {
    return (reinterpret_cast<std::intptr_t>(BIO_get_data(b)) & 1) != 0;
}

inline void tls_set_bio_data(BIO* b, int fd, bool drained) {
    BIO_set_data(b, reinterpret_cast<void*>((static_cast<std::intptr_t>(fd) << 1) |
                                            static_cast<std::intptr_t>(drained)));
}

inline int tls_bio_write(BIO* b, const char* data, int len) {
    BIO_clear_retry_flags(b);
    ssize_t n = ::send(tls_fd(b), data, static_cast<std::size_t>(len), MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return static_cast<int>(n);
}

inline int tls_bio_read(BIO* b, char* data, int len) {
    BIO_clear_retry_flags(b);
    const int fd = tls_fd(b);
    ssize_t n = ::recv(fd, data, static_cast<std::size_t>(len), 0);
    const bool again = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    if (again || (n < 0 && errno == EINTR)) BIO_set_retry_read(b);
    tls_set_bio_data(b, fd, again || (n > 0 && n < len));
    return static_cast<int>(n);
}

inline long tls_bio_ctrl(BIO*, int cmd, long, void*) {
    return cmd == BIO_CTRL_FLUSH || cmd == BIO_CTRL_DUP ? 1 : 0;
}

inline int tls_bio_create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
}

inline const BIO_METHOD* tls_bio_method() {
    static const BIO_METHOD* method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "plume socket");
        BIO_meth_set_write(m, tls_bio_write);
        BIO_meth_set_read(m, tls_bio_read);
        BIO_meth_set_ctrl(m, tls_bio_ctrl);
        BIO_meth_set_create(m, tls_bio_create);
        return m;
    }();
    return method;
}

struct SslFree {
    void operator()(SSL* s) const noexcept { SSL_free(s); }
};

// SSL_get_error reads the thread's error queue, so it must be empty before
// a call. ERR_clear_error wipes all of its slots every time (a sixth of the
// CPU of a TLS echo); the queue is almost always empty already.
inline void clear_tls_errors() {
    if (ERR_peek_error() != 0) ERR_clear_error();
}

// What one attempt of an OpenSSL call came to.
enum class tls_want { done, read, write };

}  // namespace detail

class TlsStream {
  public:
    using next_layer_type = asio::ip::tcp::socket;
    using lowest_layer_type = asio::ip::tcp::socket;
    using executor_type = next_layer_type::executor_type;

    /// The largest TLS record's payload: a gather write sends at most this.
    static constexpr std::size_t max_record = 16 * 1024;

    TlsStream(asio::ip::tcp::socket socket, asio::ssl::context& ctx)
        : socket_(std::move(socket)), ssl_(SSL_new(ctx.native_handle())) {
        if (!ssl_)
            throw std::system_error(static_cast<int>(ERR_get_error()),
                                    asio::error::get_ssl_category(), "SSL_new");
        SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE |
                                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                     SSL_MODE_RELEASE_BUFFERS);
        SSL_set_options(ssl_.get(), SSL_OP_NO_RENEGOTIATION);
        // A read takes whatever the socket holds (several records), not a
        // record header and then its body.
        SSL_set_read_ahead(ssl_.get(), 1);
    }

    executor_type get_executor() noexcept { return socket_.get_executor(); }
    next_layer_type& next_layer() noexcept { return socket_; }
    lowest_layer_type& lowest_layer() noexcept { return socket_; }
    SSL* native_handle() noexcept { return ssl_.get(); }

    /// Client side: `host` is sent as SNI (unless it is an address) and the
    /// server's certificate must name it (when the context verifies peers).
    void set_host(const std::string& host) {
        std::error_code ec;
        (void)asio::ip::make_address(host, ec);
        if (ec) {
            SSL_set_tlsext_host_name(ssl_.get(), host.c_str());
            SSL_set_hostflags(ssl_.get(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            SSL_set1_host(ssl_.get(), host.c_str());
        } else {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_.get()), host.c_str());
        }
    }

    // ------------------------------------------------ non-blocking tries --

    /// Reads what is there now; asio::error::would_block when nothing is.
    template <class MutableBuffers>
    std::size_t read_some(const MutableBuffers& buffers, std::error_code& ec) {
        auto b = first_buffer(buffers);
        auto [want, n] = try_read(b.data(), b.size(), ec);
        if (want != detail::tls_want::done) ec = asio::error::would_block;
        return n;
    }

    /// Writes one record of up to max_record bytes gathered from `buffers`;
    /// asio::error::would_block when the socket is full. After would_block
    /// the next write must offer at least the same bytes (a record may be
    /// half sent): a caller retries with the same buffers, as asio::async_write does.
    template <class ConstBuffers>
    std::size_t write_some(const ConstBuffers& buffers, std::error_code& ec) {
        auto [want, n] = try_write(buffers, ec);
        if (want != detail::tls_want::done) ec = asio::error::would_block;
        return n;
    }

    // ------------------------------------------------------- asynchronous --

    /// When OpenSSL holds no bytes of the peer's and its last receive
    /// emptied the socket, waits until the socket is readable before trying:
    /// in a request/response exchange a try would find the socket empty
    /// first (one failed recv per message).
    template <class MutableBuffers, class Handler>
    auto async_read_some(const MutableBuffers& buffers, Handler&& handler) {
        auto b = first_buffer(buffers);
        const bool wait_first = !deferred_ && SSL_is_init_finished(ssl_.get()) &&
                                !SSL_has_pending(ssl_.get()) &&
                                detail::tls_drained(SSL_get_rbio(ssl_.get()));
        return run<void(std::error_code, std::size_t)>(
            [this, b](std::error_code& ec) { return try_read(b.data(), b.size(), ec); },
            std::forward<Handler>(handler), wait_first);
    }

    template <class ConstBuffers, class Handler>
    auto async_write_some(const ConstBuffers& buffers, Handler&& handler) {
        return run<void(std::error_code, std::size_t)>(
            [this, buffers](std::error_code& ec) { return try_write(buffers, ec); },
            std::forward<Handler>(handler));
    }

    template <class Handler>
    auto async_handshake(asio::ssl::stream_base::handshake_type type, Handler&& handler) {
        bind(type);
        return run<void(std::error_code)>(
            [this](std::error_code& ec) {
                detail::clear_tls_errors();
                int r = SSL_do_handshake(ssl_.get());
                if (r == 1) return Try{detail::tls_want::done, 0};
                return failed(r, ec);
            },
            std::forward<Handler>(handler));
    }

    /// Sends close_notify and waits for the peer's (or its EOF). Bounded by
    /// the caller (Connection's close timer shuts the socket down).
    template <class Handler>
    auto async_shutdown(Handler&& handler) {
        return run<void(std::error_code)>(
            [this, sent = false](std::error_code& ec) mutable -> Try {
                if (broken_) {
                    ec = asio::error::shut_down;
                    return {detail::tls_want::done, 0};
                }
                if (!sent) {  // until our close_notify is out
                    detail::clear_tls_errors();
                    int r = SSL_shutdown(ssl_.get());
                    if (r == 1) return {detail::tls_want::done, 0};
                    if (r < 0) return failed(r, ec);
                    sent = true;
                }
                // Read (and drop) until the peer's close_notify or EOF.
                std::array<char, 512> sink;
                for (;;) {
                    auto [want, n] = try_read(sink.data(), sink.size(), ec);
                    if (want != detail::tls_want::done) return {want, 0};
                    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) ec = {};
                    if (ec || n == 0) return {detail::tls_want::done, 0};
                }
            },
            std::forward<Handler>(handler));
    }

  private:
    struct Try {
        detail::tls_want want;
        std::size_t n;
    };

    void bind(asio::ssl::stream_base::handshake_type type) {
        std::error_code ignored;
        socket_.non_blocking(true, ignored);
        BIO* bio = BIO_new(detail::tls_bio_method());
        detail::tls_set_bio_data(bio, socket_.native_handle(), false);
        SSL_set_bio(ssl_.get(), bio, bio);  // owned by the SSL object
        if (type == asio::ssl::stream_base::server)
            SSL_set_accept_state(ssl_.get());
        else
            SSL_set_connect_state(ssl_.get());
    }

    template <class Buffers>
    static asio::mutable_buffer first_buffer(const Buffers& buffers) {
        for (auto it = asio::buffer_sequence_begin(buffers);
             it != asio::buffer_sequence_end(buffers); ++it)
            if (asio::mutable_buffer b(*it); b.size() > 0) return b;
        return {};
    }

    // SSL_read yields one record at a time; a read takes every record that
    // is already there (OpenSSL's read-ahead holds what the socket had), as
    // a socket's recv takes every segment: a burst of small messages is one
    // read, not one handler each. A failure after some bytes waits for the
    // next read, which reports it before touching OpenSSL again.
    Try try_read(void* data, std::size_t size, std::error_code& ec) {
        ec = {};
        if (deferred_) {
            ec = std::exchange(deferred_, {});
            return {detail::tls_want::done, 0};
        }
        char* out = static_cast<char*>(data);
        std::size_t got = 0;
        while (got < size) {
            detail::clear_tls_errors();
            int r = SSL_read(ssl_.get(), out + got,
                             static_cast<int>(std::min<std::size_t>(size - got, INT_MAX)));
            if (r > 0) {
                got += static_cast<std::size_t>(r);
                if (!SSL_has_pending(ssl_.get())) break;  // the socket is not read again
                continue;
            }
            if (got == 0) return failed(r, ec);
            std::error_code later;
            if (failed(r, later).want == detail::tls_want::done) deferred_ = later;
            break;
        }
        return {detail::tls_want::done, got};
    }

    template <class Buffers>
    Try try_write(const Buffers& buffers, std::error_code& ec) {
        ec = {};
        // One record's worth: the first buffer when it is one already or
        // is alone, otherwise the buffers gathered into a per-thread block.
        // A retry gathers the same bytes again (the caller's buffers do not
        // change until the write completes).
        thread_local std::array<char, max_record> block;
        auto it = asio::buffer_sequence_begin(buffers);
        const auto end = asio::buffer_sequence_end(buffers);
        while (it != end && asio::const_buffer(*it).size() == 0)
            ++it;
        if (it == end) return {detail::tls_want::done, 0};
        asio::const_buffer first(*it);
        const char* data = static_cast<const char*>(first.data());
        std::size_t size = std::min(first.size(), max_record);
        auto rest = std::next(it);
        while (rest != end && asio::const_buffer(*rest).size() == 0)
            ++rest;
        if (size < max_record && rest != end) {
            std::memcpy(block.data(), data, size);
            data = block.data();
            for (; rest != end && size < max_record; ++rest) {
                asio::const_buffer b(*rest);
                std::size_t take = std::min(b.size(), max_record - size);
                std::memcpy(block.data() + size, b.data(), take);
                size += take;
            }
        }
        if (size == 0) return {detail::tls_want::done, 0};
        detail::clear_tls_errors();
        int r = SSL_write(ssl_.get(), data, static_cast<int>(size));
        if (r > 0) return {detail::tls_want::done, static_cast<std::size_t>(r)};
        return failed(r, ec);
    }

    // Why an OpenSSL call returned `r` <= 0: wait for the socket, or an error
    // in `ec` (the connection is then unusable for TLS).
    Try failed(int r, std::error_code& ec) {
        switch (SSL_get_error(ssl_.get(), r)) {
            case SSL_ERROR_WANT_READ:
                return {detail::tls_want::read, 0};
            case SSL_ERROR_WANT_WRITE:
                return {detail::tls_want::write, 0};
            case SSL_ERROR_ZERO_RETURN:
                ec = asio::error::eof;  // the peer's close_notify
                return {detail::tls_want::done, 0};
            case SSL_ERROR_SYSCALL:
                broken_ = true;
                if (unsigned long e = ERR_get_error(); e != 0)
                    ec = std::error_code(static_cast<int>(e), asio::error::get_ssl_category());
                else if (r == 0 || errno == 0)
                    ec = asio::ssl::error::stream_truncated;  // EOF without close_notify
                else
                    ec = std::error_code(errno, std::system_category());
                return {detail::tls_want::done, 0};
            default: {
                broken_ = true;
                unsigned long e = ERR_get_error();
                if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
                    ec = asio::ssl::error::stream_truncated;
                else
                    ec = std::error_code(static_cast<int>(e), asio::error::get_ssl_category());
                if (!ec) ec = asio::error::fault;
                return {detail::tls_want::done, 0};
            }
        }
    }

    // Tries `attempt` now; while it wants the socket, waits for it and tries
    // again. Completes through the executor, never inside the initiating call.
    // With `read_first`, waits until the socket is readable before the
    // first try.
    template <class Signature, class Attempt, class Handler>
    auto run(Attempt attempt, Handler&& handler, bool read_first = false) {
        return asio::async_compose<Handler, Signature>(
            [this, attempt = std::move(attempt), started = false, read_first](
                auto& self, std::error_code wait_ec = {}) mutable {
                std::error_code ec;
                Try t{detail::tls_want::done, 0};
                if (wait_ec)
                    ec = wait_ec;
                else if (std::exchange(read_first, false))
                    t.want = detail::tls_want::read;
                else
                    t = attempt(ec);
                if (t.want != detail::tls_want::done) {
                    started = true;
                    return socket_.async_wait(t.want == detail::tls_want::read
                                                  ? asio::socket_base::wait_read
                                                  : asio::socket_base::wait_write,
                                              std::move(self));
                }
                auto complete = [ec, n = t.n](auto& s) {
                    if constexpr (std::is_same_v<Signature, void(std::error_code)>)
                        s.complete(ec);
                    else
                        s.complete(ec, n);
                };
                if (started) return complete(self);
                asio::post(socket_.get_executor(),
                           [self = std::move(self), complete]() mutable { complete(self); });
            },
            handler, socket_);
    }

    asio::ip::tcp::socket socket_;
    std::unique_ptr<SSL, detail::SslFree> ssl_;
    bool broken_ = false;       // a fatal error: no close_notify
    std::error_code deferred_;  // a read's failure after bytes it returned
};

}  // namespace plume::transport
