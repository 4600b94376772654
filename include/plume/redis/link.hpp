// plume/redis/link.hpp — one TCP connection to Redis that keeps itself up:
// resolve, connect (with a timeout), AUTH and SELECT, then read replies and
// write whatever was queued in one write per turn (pipelining). A fault
// (connect failure, reset, protocol error, a reply that does not come within
// the command timeout) closes the socket and reconnects after a jittered
// exponential backoff. An idle link sends PING every ping_interval, so a
// connection that is open but wedged is found and replaced.
//
// Client (commands) and Subscriber (SUBSCRIBE mode) are built on it; the
// hooks run on the link's strand.
#pragma once

#include <asio.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "plume/redis/error.hpp"
#include "plume/redis/resp.hpp"
#include "plume/redis/url.hpp"

namespace plume::redis {

struct Options {
    Url url;
    /// TCP connect plus AUTH/SELECT.
    std::chrono::milliseconds connect_timeout{2'000};
    /// A request waiting this long with nothing received fails with
    /// error::timeout and the connection is replaced.
    std::chrono::milliseconds command_timeout{2'000};
    /// An idle connection sends PING this often (the liveness probe).
    std::chrono::milliseconds ping_interval{1'000};
    /// Reconnect backoff: from min, doubling to max, each wait jittered
    /// uniformly in [50%, 100%]. The max bounds how long publishing stays
    /// down after Redis is back (an attempt costs one TCP connect).
    std::chrono::milliseconds reconnect_min{100};
    std::chrono::milliseconds reconnect_max{1'000};
    /// Bytes of commands waiting to be written beyond which new ones are
    /// refused (error::queue_full).
    std::size_t max_queued_bytes = std::size_t{64} << 20;
    ParserLimits limits{};
    /// Commands sent on every new connection after AUTH/SELECT and before
    /// any other (e.g. SCRIPT LOAD, so EVALSHA finds its script after a
    /// Redis restart); an error reply fails the connection attempt.
    std::vector<std::vector<std::string>> setup;
    /// Told when the link comes up (ec empty) or goes down (ec says why).
    /// Runs on the link's strand; must not block.
    std::function<void(std::error_code)> on_state;
};

struct LinkStats {
    std::uint64_t connects = 0;  // connections established (AUTH/SELECT done)
    std::uint64_t faults = 0;    // connections lost or refused
    std::uint64_t writes = 0;    // socket writes (each carries every queued command)
    std::uint64_t timeouts = 0;  // connections replaced because a reply did not come
    std::uint64_t bytes_out = 0;
    std::uint64_t bytes_in = 0;
};

namespace detail {

class Link : public std::enable_shared_from_this<Link> {
  public:
    using Clock = std::chrono::steady_clock;

    Link(asio::any_io_executor ex, Options options)
        : options_(std::move(options)),
          strand_(asio::make_strand(ex)),
          socket_(strand_),
          resolver_(strand_),
          retry_timer_(strand_),
          watchdog_(strand_),
          parser_(options_.limits),
          rng_(std::random_device{}()) {}
    virtual ~Link() = default;
    Link(const Link&) = delete;
    Link& operator=(const Link&) = delete;

    const Options& options() const noexcept { return options_; }
    asio::strand<asio::any_io_executor>& strand() noexcept { return strand_; }
    /// True while connected and past AUTH/SELECT.
    bool up() const noexcept { return up_.load(std::memory_order_acquire); }
    LinkStats link_stats() const {
        std::lock_guard lock(stats_mutex_);
        return stats_;
    }

  protected:
    /// Starts connecting (call once, from the owner's start()).
    void open(std::shared_ptr<Link> self) {
        self_ = self;
        asio::dispatch(strand_, [this, self] {
            if (stopped_) return;
            connect();
            arm_watchdog();
        });
    }
    /// Closes the connection for good; on_down(stopped) runs (later, on the
    /// strand, never inside the caller).
    void close(std::shared_ptr<Link> self) {
        asio::post(strand_, [this, self] {
            if (stopped_) return;
            stopped_ = true;
            fault(error::stopped);
            std::error_code ignored;
            retry_timer_.cancel();
            watchdog_.cancel();
            resolver_.cancel();
            self_.reset();
        });
    }

    // Hooks, on the strand.
    virtual void on_up() = 0;                                // ready for commands
    virtual void on_value(Value&& v) = 0;                    // one reply
    virtual void on_down(std::error_code why) = 0;           // everything in flight failed
    virtual void on_idle() { send_request({"PING"}); }       // the liveness probe
    virtual std::size_t takes_queued(std::string& out) = 0;  // moves queued bytes to out

    /// Queues a command that expects one reply (on the strand).
    template <class Range>
    void send_request(const Range& args) {
        append_command(out_, args);
        expect(1);
        flush();
    }
    void send_request(std::initializer_list<std::string_view> args) {
        send_request<std::initializer_list<std::string_view>>(args);
    }
    /// `n` more replies are awaited (the watchdog times them).
    void expect(std::size_t n) {
        if (outstanding_ == 0 && n > 0) since_ = Clock::now();
        outstanding_ += n;
    }
    /// A reply awaited arrived.
    void answered(std::size_t n = 1) { outstanding_ -= std::min(n, outstanding_); }

    /// Flushes at the end of this turn of the strand, so that every change
    /// made in the turn leaves in one write.
    void schedule_flush() {
        if (flush_scheduled_) return;
        flush_scheduled_ = true;
        asio::post(strand_, [this, self = self_] {
            flush_scheduled_ = false;
            flush();
        });
    }

    /// Writes what is queued (out_ plus what takes_queued gives) unless a
    /// write is in flight; its completion writes what came meanwhile.
    void flush() {
        if (writing_ || !connected_) return;
        takes_queued(out_);
        if (out_.empty()) return;
        writing_ = true;
        wire_.swap(out_);
        out_.clear();
        {
            std::lock_guard lock(stats_mutex_);
            ++stats_.writes;
            stats_.bytes_out += wire_.size();
        }
        asio::async_write(socket_, asio::buffer(wire_),
                          [this, self = self_, gen = generation_](std::error_code ec, std::size_t) {
                              if (gen != generation_) return;
                              writing_ = false;
                              wire_.clear();
                              if (ec) return fault(error::connection_lost);
                              flush();
                          });
    }

    /// Drops the connection: everything awaited fails with `why`, and a
    /// reconnect follows unless the link is stopped.
    void fault(std::error_code why) {
        const bool was_up = up_.exchange(false, std::memory_order_acq_rel);
        if (connected_ || handshaking_ || was_up) {
            std::lock_guard lock(stats_mutex_);
            ++stats_.faults;
            if (why == error::timeout) ++stats_.timeouts;
        }
        ++generation_;  // completions of the old socket are ignored
        connected_ = handshaking_ = writing_ = false;
        std::error_code ignored;
        socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
        out_.clear();
        wire_.clear();
        parser_.reset();
        outstanding_ = 0;
        on_down(why);
        // Reported: going down, stopping, and the first failed connect of a
        // streak (not every retry of an outage).
        const bool first_failure = why == error::connect_failed && attempts_ == 0;
        if (options_.on_state && (was_up || first_failure || why == error::stopped))
            options_.on_state(why);
        if (!stopped_) schedule_reconnect();
    }

  private:
    void connect() {
        const auto gen = ++generation_;
        handshaking_ = true;
        auto deadline = std::make_shared<asio::steady_timer>(strand_, options_.connect_timeout);
        deadline->async_wait([this, self = self_, gen](std::error_code ec) {
            if (!ec && gen == generation_ && handshaking_) fault(error::connect_failed);
        });
        resolver_.async_resolve(
            options_.url.host, std::to_string(options_.url.port),
            [this, self = self_, gen, deadline](std::error_code ec,
                                                asio::ip::tcp::resolver::results_type r) {
                if (gen != generation_) return;
                if (ec) return fail_connect(deadline);
                asio::async_connect(socket_, r,
                                    [this, self, gen, deadline](std::error_code ec,
                                                                const asio::ip::tcp::endpoint&) {
                                        if (gen != generation_) return;
                                        if (ec) return fail_connect(deadline);
                                        std::error_code ignored;
                                        socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
                                        connected_ = true;
                                        handshake(deadline);
                                    });
            });
    }

    void fail_connect(const std::shared_ptr<asio::steady_timer>& deadline) {
        deadline->cancel();
        fault(error::connect_failed);
    }

    void handshake(std::shared_ptr<asio::steady_timer> deadline) {
        handshake_replies_ = 0;
        const auto& u = options_.url;
        if (!u.password.empty()) {
            if (u.username.empty())
                append_command(out_, {"AUTH", u.password});
            else
                append_command(out_, {"AUTH", u.username, u.password});
            ++handshake_replies_;
        }
        if (u.db != 0) {
            append_command(out_, {"SELECT", std::to_string(u.db)});
            ++handshake_replies_;
        }
        for (const auto& command : options_.setup) {
            append_command(out_, command);
            ++handshake_replies_;
        }
        handshake_deadline_ = std::move(deadline);
        read();
        if (handshake_replies_ == 0) return ready();
        // Write the handshake alone: queued commands wait until it succeeded.
        writing_ = true;
        wire_.swap(out_);
        out_.clear();
        asio::async_write(socket_, asio::buffer(wire_),
                          [this, self = self_, gen = generation_](std::error_code ec, std::size_t) {
                              if (gen != generation_) return;
                              writing_ = false;
                              wire_.clear();
                              if (ec) return fault(error::connect_failed);
                          });
    }

    void ready() {
        handshaking_ = false;
        if (handshake_deadline_) handshake_deadline_->cancel();
        handshake_deadline_.reset();
        attempts_ = 0;
        last_rx_ = Clock::now();
        {
            std::lock_guard lock(stats_mutex_);
            ++stats_.connects;
        }
        up_.store(true, std::memory_order_release);
        if (options_.on_state) options_.on_state({});
        on_up();
        flush();
    }

    void read() {
        char* p = parser_.prepare(16 * 1024);
        socket_.async_read_some(asio::buffer(p, 16 * 1024), [this, self = self_, gen = generation_](
                                                                std::error_code ec, std::size_t n) {
            if (gen != generation_) return;
            parser_.commit(n);
            if (ec) return fault(handshaking_ ? error::connect_failed : error::connection_lost);
            last_rx_ = Clock::now();
            {
                std::lock_guard lock(stats_mutex_);
                stats_.bytes_in += n;
            }
            for (;;) {
                auto r = parser_.next();
                if (!r) return fault(r.error());
                if (!*r) break;
                if (handshaking_) {
                    if ((*r)->is_error()) return fault(error::connect_failed);
                    if (--handshake_replies_ == 0) ready();
                    if (gen != generation_) return;
                    continue;
                }
                on_value(std::move(**r));
                if (gen != generation_) return;  // on_value faulted or stopped the link
            }
            read();
        });
    }

    void schedule_reconnect() {
        auto base = std::min<std::int64_t>(options_.reconnect_max.count(),
                                           options_.reconnect_min.count()
                                               << std::min<unsigned>(attempts_, 16));
        ++attempts_;
        std::uniform_int_distribution<std::int64_t> jitter(base / 2,
                                                           std::max<std::int64_t>(base, 1));
        retry_timer_.expires_after(std::chrono::milliseconds(jitter(rng_)));
        retry_timer_.async_wait([this, self = self_](std::error_code ec) {
            if (!ec && !stopped_) connect();
        });
    }

    void arm_watchdog() {
        auto tick = std::max(std::chrono::milliseconds(10),
                             std::min(options_.command_timeout, options_.ping_interval) / 4);
        watchdog_.expires_after(tick);
        watchdog_.async_wait([this, self = self_](std::error_code ec) {
            if (ec || stopped_) return;
            if (up()) {
                auto now = Clock::now();
                if (outstanding_ > 0 &&
                    now - std::max(since_, last_rx_) > options_.command_timeout) {
                    fault(error::timeout);
                } else if (outstanding_ == 0 && now - last_rx_ >= options_.ping_interval &&
                           !writing_) {
                    on_idle();
                }
            }
            arm_watchdog();
        });
    }

    Options options_;
    asio::strand<asio::any_io_executor> strand_;
    asio::ip::tcp::socket socket_;
    asio::ip::tcp::resolver resolver_;
    asio::steady_timer retry_timer_;
    asio::steady_timer watchdog_;
    std::shared_ptr<asio::steady_timer> handshake_deadline_;
    Parser parser_;
    std::mt19937_64 rng_;
    std::shared_ptr<Link> self_;  // kept alive while open
    std::string out_;             // commands for the next write
    std::string wire_;            // the write in flight
    std::uint64_t generation_ = 0;
    unsigned attempts_ = 0;
    std::size_t handshake_replies_ = 0;
    std::size_t outstanding_ = 0;
    Clock::time_point since_{};
    Clock::time_point last_rx_{};
    bool connected_ = false;
    bool handshaking_ = false;
    bool writing_ = false;
    bool flush_scheduled_ = false;
    bool stopped_ = false;
    std::atomic<bool> up_{false};
    mutable std::mutex stats_mutex_;
    LinkStats stats_;
};

}  // namespace detail
}  // namespace plume::redis
