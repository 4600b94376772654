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
// A server stream on a context prepared with use_own_record_layer() goes
// further: once a TLS 1.3 handshake is done (AES-GCM or ChaCha20-Poly1305),
// it takes the traffic secrets, frees the SSL object (~15 KB even while
// idle) and runs the record layer itself (detail/tls13_records.hpp): an idle
// connection then holds ~200 bytes of keys. Such streams send no session
// tickets (no resumption); TLS 1.2 and other suites stay with OpenSSL.
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
#include <vector>

#include "plume/transport/detail/tls13_records.hpp"

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

/// Lets the server streams on `ctx` run the TLS 1.3 record layer themselves
/// once their handshake is done (see above): installs plume's keylog
/// callback, which keeps the traffic secrets of those streams only and logs
/// nothing. A context with a keylog callback of the host's keeps it, and its
/// streams stay with OpenSSL; returns whether the context is plume's. Call
/// it before the context serves (Server's constructor does, unless
/// StreamTraits<TlsStream>::Context::own_record_layer is false).
inline bool use_own_record_layer(asio::ssl::context& ctx) {
    SSL_CTX* c = ctx.native_handle();
    if (!SSL_CTX_get_keylog_callback(c)) SSL_CTX_set_keylog_callback(c, detail::tls_keylog);
    return SSL_CTX_get_keylog_callback(c) == &detail::tls_keylog;
}

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
    /// OpenSSL's connection; null once the stream runs the records itself.
    SSL* native_handle() noexcept { return ssl_.get(); }
    /// Whether the stream runs the TLS 1.3 record layer itself (a server
    /// stream after its handshake, on a context of use_own_record_layer()).
    bool own_record_layer() const noexcept { return records_ != nullptr; }

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
        return run<void(std::error_code, std::size_t)>(
            [this, b](std::error_code& ec) { return try_read(b.data(), b.size(), ec); },
            std::forward<Handler>(handler), drained());
    }

    /// Whether a read would find nothing but the socket, and the socket
    /// empty: the stream holds no bytes of the peer's (records or content)
    /// and its last receive emptied the socket. A reader may then wait until
    /// the socket is readable (edge-triggered readiness) with no buffer.
    bool drained() const noexcept {
        if (deferred_) return false;
        if (records_) return drained_ && !peer_closed_ && !broken_ && !held_readable();
        return SSL_is_init_finished(ssl_.get()) && !SSL_has_pending(ssl_.get()) &&
               detail::tls_drained(SSL_get_rbio(ssl_.get()));
    }

    /// Completes when a read_some would not block (bytes, or an error to
    /// report), without a buffer: waits for the socket when drained(), and
    /// for whatever OpenSSL needs first (a write, while it sends something
    /// of its own) otherwise.
    template <class Handler>
    auto async_wait_readable(Handler&& handler) {
        return run<void(std::error_code)>(
            [this](std::error_code&) -> Try {
                if (records_ || deferred_) return {detail::tls_want::done, 0};
                detail::clear_tls_errors();
                char c;
                int r = SSL_peek(ssl_.get(), &c, 1);
                if (r > 0) return {detail::tls_want::done, 0};
                std::error_code later;  // read_some reports it
                auto t = failed(r, later);
                if (t.want == detail::tls_want::done) deferred_ = later;
                return t;
            },
            std::forward<Handler>(handler), drained());
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
                if (r != 1) return failed(r, ec);
                take_records();
                return Try{detail::tls_want::done, 0};
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
                if (records_) {
                    if (!std::exchange(sent, true)) queue_alert(1, 0);  // close_notify
                    if (!flush(ec))
                        return {ec ? detail::tls_want::done : detail::tls_want::write, 0};
                } else if (!sent) {  // until our close_notify is out
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
        if (type == asio::ssl::stream_base::server &&
            SSL_CTX_get_keylog_callback(SSL_get_SSL_CTX(ssl_.get())) == &detail::tls_keylog) {
            // Made now, not after the handshake, so it does not land among
            // the handshake's freed memory (which it would keep resident).
            pending_ = std::make_unique<detail::Tls13Records>();
            SSL_set_ex_data(ssl_.get(), detail::tls_secrets_index(), pending_.get());
            // The handshake's last record is the end of what OpenSSL reads
            // (what follows is the records' own), and no ticket follows it.
            SSL_set_num_tickets(ssl_.get(), 0);
            SSL_set_read_ahead(ssl_.get(), 0);
        }
    }

    // After a server handshake: takes the traffic secrets and frees the SSL
    // object when plume can run the records (TLS 1.3, a suite it knows,
    // nothing read past the handshake); otherwise OpenSSL goes on.
    void take_records() {
        auto records = std::move(pending_);
        if (!records) return;
        SSL* ssl = ssl_.get();
        SSL_set_ex_data(ssl, detail::tls_secrets_index(), nullptr);
        const bool can = SSL_version(ssl) == TLS1_3_VERSION &&
                         detail::tls_aead_of(SSL_get_current_cipher(ssl), records->aead) &&
                         !SSL_has_pending(ssl) &&
                         records->read.secret_size == detail::tls_hash_size(records->aead) &&
                         records->write.secret_size == records->read.secret_size;
        if (!can || !records->read.derive(records->aead) || !records->write.derive(records->aead)) {
            SSL_set_read_ahead(ssl, 1);
            return;
        }
        drained_ = detail::tls_drained(SSL_get_rbio(ssl));
        records_ = std::move(records);
        ssl_.reset();
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
        if (records_) return own_read(static_cast<unsigned char*>(data), size, ec);
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

    // Copies up to max_record bytes of `buffers` to `out`.
    template <class Buffers>
    static std::size_t gather(const Buffers& buffers, void* out) {
        std::size_t size = 0;
        for (auto it = asio::buffer_sequence_begin(buffers);
             it != asio::buffer_sequence_end(buffers) && size < max_record; ++it) {
            asio::const_buffer b(*it);
            std::size_t take = std::min(b.size(), max_record - size);
            if (take > 0) std::memcpy(static_cast<char*>(out) + size, b.data(), take);
            size += take;
        }
        return size;
    }

    template <class Buffers>
    Try try_write(const Buffers& buffers, std::error_code& ec) {
        ec = {};
        if (records_) return own_write(buffers, ec);
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
            data = block.data();
            size = gather(buffers, block.data());
        }
        if (size == 0) return {detail::tls_want::done, 0};
        detail::clear_tls_errors();
        int r = SSL_write(ssl_.get(), data, static_cast<int>(size));
        if (r > 0) return {detail::tls_want::done, static_cast<std::size_t>(r)};
        return failed(r, ec);
    }

    // ------------------------------------ the records, once plume runs them --

    // What a stream holds between calls, made only while it holds something:
    // record bytes read but not yet opened, content opened but not yet read
    // (the reader's buffer was full), and record bytes not yet sent.
    struct Held {
        std::vector<unsigned char> in;
        std::vector<unsigned char> plain;
        std::size_t plain_at = 0;
        std::vector<unsigned char> out;
        std::size_t owed = 0;  // content bytes of a record in `out`, reported once it is sent
        bool empty() const noexcept { return in.empty() && plain.empty() && out.empty() && !owed; }
    };

    Held& held() {
        if (!held_) held_ = std::make_unique<Held>();
        return *held_;
    }
    void release_held() {
        if (held_ && held_->empty()) held_.reset();
    }
    // Whether a read has something without the socket: content, or a whole record.
    bool held_readable() const noexcept {
        if (!held_) return false;
        if (!held_->plain.empty()) return true;
        const auto& in = held_->in;
        return in.size() >= detail::tls_header &&
               in.size() >= detail::tls_header + (std::size_t{in[3]} << 8 | in[4]);
    }

    // A fatal error of the peer's making: the read fails with `reason`
    // (as OpenSSL would report it), and the peer is told with `alert`
    // unless a record of ours is half sent.
    void fatal(std::uint8_t alert, int reason, std::error_code& fail) {
        fail = std::error_code(detail::tls_error(reason), asio::error::get_ssl_category());
        if (!held_ || held_->out.empty()) {
            const unsigned char content[2] = {2, alert};
            unsigned char record[detail::Tls13Records::sealed_size(2)];
            if (std::size_t n = records_->seal(detail::tls_alert, content, 2, record))
                (void)::send(socket_.native_handle(), record, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        broken_ = true;
    }

    // Seals a record for `out` after whatever is there.
    bool queue(std::uint8_t type, const unsigned char* content, std::size_t size) {
        auto& out = held().out;
        const std::size_t at = out.size();
        out.resize(at + detail::Tls13Records::sealed_size(size));
        out.resize(at + records_->seal(type, content, size, out.data() + at));
        return out.size() > at;
    }
    void queue_alert(std::uint8_t level, std::uint8_t description) {
        const unsigned char content[2] = {level, description};
        queue(detail::tls_alert, content, 2);
    }
    // Our KeyUpdate (§4.6.3), then new write keys.
    bool queue_key_update() {
        const unsigned char message[5] = {24, 0, 0, 1, 0};  // update_not_requested
        return queue(detail::tls_handshake, message, sizeof message) &&
               records_->write.update(records_->aead);
    }

    // Sends what `out` holds; true once it is all sent.
    bool flush(std::error_code& ec) {
        if (!held_) return true;
        auto& out = held_->out;
        std::size_t sent = 0;
        while (sent < out.size()) {
            ssize_t n =
                ::send(socket_.native_handle(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
            if (n > 0) {
                sent += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                ec = std::error_code(errno, std::system_category());
                broken_ = true;
            }
            break;
        }
        out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(sent));
        return out.empty();
    }

    // A post-handshake handshake message of the client's: only KeyUpdate
    // (one message, alone in its record) is expected.
    bool key_update(const unsigned char* m, std::size_t size) {
        if (size != 5 || m[0] != 24 || m[1] != 0 || m[2] != 0 || m[3] != 1 || m[4] > 1)
            return false;
        if (!records_->read.update(records_->aead)) return false;
        if (m[4] == 1) {  // update_requested: ours goes out before our next data
            if (!queue_key_update()) return false;
            std::error_code ignored;  // a write reports it
            flush(ignored);
            release_held();
        }
        return true;
    }

    // Opens records into `out`: what is held first, then what the socket
    // has, until something was read (as try_read with OpenSSL).
    Try own_read(unsigned char* out, std::size_t size, std::error_code& ec) {
        if (peer_closed_ || broken_) {
            ec = peer_closed_ ? std::error_code(asio::error::eof)
                              : std::error_code(asio::error::shut_down);
            return {detail::tls_want::done, 0};
        }
        std::size_t got = 0;
        if (held_ && !held_->plain.empty()) {
            auto& plain = held_->plain;
            got = std::min(size, plain.size() - held_->plain_at);
            if (got > 0) std::memcpy(out, plain.data() + held_->plain_at, got);
            held_->plain_at += got;
            if (held_->plain_at == plain.size()) plain.clear(), held_->plain_at = 0;
        }
        // Room for what is held (less than this) and one more whole record.
        constexpr std::size_t room = 4 * (detail::tls_header + detail::tls_max_body);
        thread_local std::unique_ptr<unsigned char[]> scratch(new unsigned char[room]);
        unsigned char* buf = scratch.get();
        std::size_t have = 0, at = 0;
        if (held_ && !held_->in.empty()) {
            have = held_->in.size();
            std::memcpy(buf, held_->in.data(), have);
            held_->in.clear();
        }
        std::error_code fail;
        bool full = got == size;  // the reader's buffer is full
        const int fd = socket_.native_handle();
        while (!full && !fail && !peer_closed_) {
            while (!full && !fail && !peer_closed_ && have - at >= detail::tls_header) {
                unsigned char* record = buf + at;
                const std::size_t body = std::size_t{record[3]} << 8 | record[4];
                if (record[0] != detail::tls_application_data || record[1] != 3 || record[2] != 3) {
                    fatal(10, SSL_R_UNEXPECTED_RECORD, fail);  // unexpected_message
                    break;
                }
                if (body > detail::tls_max_body) {
                    fatal(22, SSL_R_ENCRYPTED_LENGTH_TOO_LONG, fail);  // record_overflow
                    break;
                }
                if (have - at < detail::tls_header + body) break;
                std::uint8_t type = 0;
                const long n = records_->open(record, body, type);
                if (n < 0) {
                    fatal(20, SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC, fail);  // bad_record_mac
                    break;
                }
                at += detail::tls_header + body;
                const unsigned char* content = record + detail::tls_header;
                const auto length = static_cast<std::size_t>(n);
                if (type == detail::tls_application_data) {
                    const std::size_t take = std::min(length, size - got);
                    if (take > 0) std::memcpy(out + got, content, take);
                    got += take;
                    if (take < length) held().plain.assign(content + take, content + length);
                    full = got == size;
                } else if (type == detail::tls_alert && length == 2) {
                    if (content[1] == 0)  // close_notify
                        peer_closed_ = true;
                    else if (content[1] != 90) {  // user_canceled is a warning
                        fail = std::error_code(detail::tls_error(SSL_AD_REASON_OFFSET + content[1]),
                                               asio::error::get_ssl_category());
                        broken_ = true;
                    }
                } else if (type != detail::tls_handshake || !key_update(content, length)) {
                    fatal(10, SSL_R_UNEXPECTED_MESSAGE, fail);
                }
            }
            if (full || fail || peer_closed_ || got > 0) break;
            if (at > 0) {
                std::memmove(buf, buf + at, have - at);
                have -= at;
                at = 0;
            }
            ssize_t n = ::recv(fd, buf + have, room - have, 0);
            if (n > 0) {
                drained_ = static_cast<std::size_t>(n) < room - have;
                have += static_cast<std::size_t>(n);
            } else if (n == 0) {
                fail = asio::ssl::error::stream_truncated;  // EOF without close_notify
                broken_ = true;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                drained_ = true;
                break;
            } else if (errno != EINTR) {
                fail = std::error_code(errno, std::system_category());
                broken_ = true;
            }
        }
        if (have > at && !broken_) held().in.assign(buf + at, buf + have);
        release_held();
        if (peer_closed_ && !fail) fail = asio::error::eof;
        if (fail) {
            if (got == 0)
                ec = fail;
            else
                deferred_ = fail;
            return {detail::tls_want::done, got};
        }
        if (got == 0 && !full) return {detail::tls_want::read, 0};
        return {detail::tls_want::done, got};
    }

    // Seals one record of up to max_record bytes of `buffers` and sends it;
    // a record the socket took only part of is finished by the next call,
    // which reports its bytes as written.
    template <class Buffers>
    Try own_write(const Buffers& buffers, std::error_code& ec) {
        if (broken_) {
            ec = asio::error::shut_down;
            return {detail::tls_want::done, 0};
        }
        if (held_ && (!held_->out.empty() || held_->owed)) {
            if (!flush(ec)) return {ec ? detail::tls_want::done : detail::tls_want::write, 0};
            const std::size_t owed = std::exchange(held_->owed, 0);
            release_held();
            if (owed > 0) return {detail::tls_want::done, owed};
        }
        // [our KeyUpdate, when the write key is due for one][the record],
        // the content gathered where the record's is sealed in place.
        constexpr std::size_t key_update = detail::Tls13Records::sealed_size(5);
        thread_local std::array<unsigned char,
                                key_update + detail::Tls13Records::sealed_size(max_record)>
            sealed;
        unsigned char* record = sealed.data() + key_update;
        const std::size_t size = gather(buffers, record + detail::tls_header);
        if (size == 0) return {detail::tls_want::done, 0};
        unsigned char* start = record;
        bool ok = true;
        if (records_->aead != detail::Aead::chacha20_poly1305 &&
            records_->write.seq >= detail::tls_gcm_records_per_key) {
            const unsigned char message[5] = {24, 0, 0, 1, 0};  // update_not_requested
            start = sealed.data();
            ok = records_->seal(detail::tls_handshake, message, sizeof message, start) ==
                     key_update &&
                 records_->write.update(records_->aead);
        }
        const std::size_t n = ok ? records_->seal(detail::tls_application_data,
                                                  record + detail::tls_header, size, record)
                                 : 0;
        if (n == 0) {
            ec = std::error_code(detail::tls_error(ERR_R_INTERNAL_ERROR),
                                 asio::error::get_ssl_category());
            broken_ = true;
            return {detail::tls_want::done, 0};
        }
        const auto total = static_cast<std::size_t>(record + n - start);
        ssize_t sent = ::send(socket_.native_handle(), start, total, MSG_NOSIGNAL);
        if (sent == static_cast<ssize_t>(total)) return {detail::tls_want::done, size};
        if (sent < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                ec = std::error_code(errno, std::system_category());
                broken_ = true;
                return {detail::tls_want::done, 0};
            }
            sent = 0;
        }
        auto& h = held();
        h.out.assign(start + sent, start + total);
        h.owed = size;
        return {detail::tls_want::write, 0};
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
    std::unique_ptr<detail::Tls13Records> pending_;  // during a server handshake
    std::unique_ptr<detail::Tls13Records> records_;  // once plume runs the records
    std::unique_ptr<Held> held_;
    bool broken_ = false;       // a fatal error: no close_notify
    bool drained_ = false;      // the last recv emptied the socket (records_ only)
    bool peer_closed_ = false;  // the peer's close_notify was read (records_ only)
    std::error_code deferred_;  // a read's failure after bytes it returned
};

}  // namespace plume::transport
