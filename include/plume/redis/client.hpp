// plume/redis/client.hpp — a pipelined Redis command connection.
//
// command() may be called from any thread. Commands queued while a write is
// in flight leave together in the next write, so a burst of publishes costs
// one system call, not one round trip each. Replies come back in order; each
// callback runs on the client's strand and must not block. When the link is
// down a command fails at once with error::not_connected (it is never queued
// for later: a publish is either sent now or reported lost).
//
//   auto redis = plume::redis::Client::create(io.get_executor(), {.url = *url});
//   redis->start();
//   redis->command({"PUBLISH", "room", "hi"}, [](std::error_code ec, plume::redis::Value v) {
//       if (!ec) std::cout << v.integer << " receivers\n";
//   });
//   ...
//   redis->stop();
#pragma once

#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "plume/redis/link.hpp"

namespace plume::redis {

class Client final : public detail::Link {
    struct Private {};

  public:
    using Callback = std::function<void(std::error_code, Value)>;

    struct Stats {
        LinkStats link;
        std::uint64_t commands = 0;  // accepted and written
        std::uint64_t refused = 0;   // failed at once: not connected, queue full, stopped
        std::uint64_t failed = 0;    // written, then the connection went (or timed out)
    };

    Client(Private, asio::any_io_executor ex, Options options) : Link(ex, std::move(options)) {}

    static std::shared_ptr<Client> create(asio::any_io_executor ex, Options options) {
        return std::make_shared<Client>(Private{}, std::move(ex), std::move(options));
    }

    void start() { open(self()); }
    /// Refuses new commands; the ones accepted before are still written and
    /// answered (bounded by the command timeout), then the link closes.
    void stop() {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) return;
            stopping_ = true;
            if (up()) {
                // Replies come in order: when this one is in, so is every other.
                append_command(queued_, {"PING"});
                queued_callbacks_.push_back(
                    [self = self()](std::error_code, Value) { self->close(self); });
                if (!flush_posted_) {
                    flush_posted_ = true;
                    asio::post(strand(), [self = self()] { self->flush_now(); });
                }
                return;
            }
        }
        close(self());
    }

    /// Sends a command (any thread). `done` runs on the strand with the
    /// reply, error::server_error plus the reply for "-ERR ...", or the
    /// reason it was not answered.
    template <class Range>
    void command(const Range& args, Callback done) {
        std::error_code refused;
        {
            std::lock_guard lock(mutex_);
            if (stopping_)
                refused = error::stopped;
            else if (!up())
                refused = error::not_connected;
            else if (queued_.size() > options().max_queued_bytes)
                refused = error::queue_full;
            else {
                append_command(queued_, args);
                queued_callbacks_.push_back(std::move(done));
                if (!flush_posted_) {
                    flush_posted_ = true;
                    asio::post(strand(), [self = self()] { self->flush_now(); });
                }
                return;
            }
            ++refused_;
        }
        if (done)
            asio::post(strand(), [done = std::move(done), refused] { done(refused, Value{}); });
    }
    void command(std::initializer_list<std::string_view> args, Callback done) {
        command<std::initializer_list<std::string_view>>(args, std::move(done));
    }

    Stats stats() const {
        Stats s;
        s.link = link_stats();
        std::lock_guard lock(mutex_);
        s.commands = commands_;
        s.refused = refused_;
        s.failed = failed_;
        return s;
    }

  private:
    std::shared_ptr<Client> self() { return std::static_pointer_cast<Client>(shared_from_this()); }

    void flush_now() {
        {
            std::lock_guard lock(mutex_);
            flush_posted_ = false;
        }
        flush();
    }

    std::size_t takes_queued(std::string& out) override {
        std::lock_guard lock(mutex_);
        const std::size_t n = queued_callbacks_.size();
        if (n == 0) return 0;
        if (out.empty())
            out.swap(queued_);
        else
            out += queued_;
        queued_.clear();
        for (auto& cb : queued_callbacks_)
            awaiting_.push_back(std::move(cb));
        queued_callbacks_.clear();
        commands_ += n;
        expect(n);
        return n;
    }

    void on_up() override {}

    void on_idle() override {
        awaiting_.push_back(nullptr);  // the probe's reply has no callback
        send_request({"PING"});
    }

    void on_value(Value&& v) override {
        if (awaiting_.empty()) return fault(error::protocol_error);  // a reply nobody asked for
        auto cb = std::move(awaiting_.front());
        awaiting_.pop_front();
        answered();
        if (cb)
            cb(v.is_error() ? make_error_code(error::server_error) : std::error_code{},
               std::move(v));
    }

    void on_down(std::error_code why) override {
        std::deque<Callback> lost;
        lost.swap(awaiting_);
        std::vector<Callback> queued;
        {
            std::lock_guard lock(mutex_);
            queued.swap(queued_callbacks_);
            queued_.clear();
            for (auto& cb : lost)
                failed_ += cb != nullptr;
            failed_ += queued.size();
        }
        const auto code = why == error::timeout || why == error::stopped
                              ? why
                              : make_error_code(error::connection_lost);
        for (auto& cb : lost)
            if (cb) cb(code, Value{});
        for (auto& cb : queued)
            if (cb) cb(code, Value{});
    }

    mutable std::mutex mutex_;  // guards the queue: command() runs on any thread
    std::string queued_;
    std::vector<Callback> queued_callbacks_;
    bool flush_posted_ = false;
    bool stopping_ = false;
    std::uint64_t commands_ = 0, refused_ = 0, failed_ = 0;
    std::deque<Callback> awaiting_;  // written, reply not read yet (strand only)
};

}  // namespace plume::redis
