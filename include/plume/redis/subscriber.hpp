// plume/redis/subscriber.hpp — a dedicated Redis connection in SUBSCRIBE mode.
//
// subscribe()/unsubscribe() may be called from any thread. Channel changes
// made within one turn leave together, at most `batch` channels per
// SUBSCRIBE or UNSUBSCRIBE command. subscribe()'s callback runs once Redis
// has confirmed the subscription (so a message published after it is
// received), or with error::not_connected while the link is down (the
// channel stays wanted and is subscribed when the link is back). After a
// reconnect every wanted channel is subscribed again, in batches. Messages
// arrive through `on_message` on the subscriber's strand.
//
//   auto sub = plume::redis::Subscriber::create(io.get_executor(), {.url = *url},
//       [](std::string_view channel, std::string_view payload) { ... });
//   sub->start();
//   sub->subscribe("plume:t:room:lobby", [](std::error_code ec) { /* confirmed */ });
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "plume/redis/link.hpp"

namespace plume::redis {

class Subscriber final : public detail::Link {
    struct Private {};

  public:
    using OnMessage = std::function<void(std::string_view channel, std::string_view payload)>;
    using Confirmed = std::function<void(std::error_code)>;
    /// Most channels named in one SUBSCRIBE or UNSUBSCRIBE.
    static constexpr std::size_t batch = 512;

    struct Stats {
        LinkStats link;
        std::uint64_t messages = 0;            // messages received
        std::uint64_t subscribe_commands = 0;  // SUBSCRIBE/UNSUBSCRIBE commands sent
        std::size_t channels = 0;              // channels wanted now
        std::size_t confirmed = 0;             // of which Redis confirmed the subscription
    };

    Subscriber(Private, asio::any_io_executor ex, Options options, OnMessage on_message)
        : Link(ex, std::move(options)), on_message_(std::move(on_message)) {}

    static std::shared_ptr<Subscriber> create(asio::any_io_executor ex, Options options,
                                              OnMessage on_message) {
        return std::make_shared<Subscriber>(Private{}, std::move(ex), std::move(options),
                                            std::move(on_message));
    }

    void start() { open(shared_from_this()); }
    void stop() { close(shared_from_this()); }

    void subscribe(std::string channel, Confirmed done = {}) {
        // Posted: `done` never runs inside the caller.
        asio::post(strand(),
                   [self = self(), channel = std::move(channel), done = std::move(done)]() mutable {
                       self->do_subscribe(std::move(channel), std::move(done));
                   });
    }
    void unsubscribe(std::string channel) {
        asio::post(strand(), [self = self(), channel = std::move(channel)]() mutable {
            self->do_unsubscribe(std::move(channel));
        });
    }

    Stats stats() const {
        std::lock_guard lock(stats_mutex_);
        Stats s = stats_;
        s.link = link_stats();
        return s;
    }

  private:
    struct Channel {
        bool confirmed = false;
        std::vector<Confirmed> waiting;
    };

    std::shared_ptr<Subscriber> self() {
        return std::static_pointer_cast<Subscriber>(shared_from_this());
    }

    void do_subscribe(std::string channel, Confirmed done) {
        auto [it, fresh] = channels_.try_emplace(channel);
        if (it->second.confirmed) {
            if (done) done({});
            return;
        }
        if (!up()) {
            if (done) done(error::not_connected);
        } else if (done) {
            it->second.waiting.push_back(std::move(done));
        }
        if (fresh) {
            to_unsubscribe_.erase(channel);
            to_subscribe_.insert(std::move(channel));
        }
        count();
        schedule_flush();
    }

    void do_unsubscribe(std::string channel) {
        auto it = channels_.find(channel);
        if (it == channels_.end()) return;
        auto waiting = std::move(it->second.waiting);
        confirmed_ -= it->second.confirmed;
        channels_.erase(it);
        // UNSUBSCRIBE even when its SUBSCRIBE is still queued: an earlier one
        // may have been sent (Redis answers an UNSUBSCRIBE of a channel it
        // does not have too). When down, the reconnect does not subscribe it.
        to_subscribe_.erase(channel);
        if (up()) to_unsubscribe_.insert(std::move(channel));
        count();
        for (auto& w : waiting)
            w(error::stopped);
        schedule_flush();
    }

    // Queued (UN)SUBSCRIBE, in batches; each names its channels' replies.
    std::size_t takes_queued(std::string& out) override {
        std::size_t commands = 0;
        auto emit = [&](const char* verb, std::unordered_set<std::string>& set) {
            std::vector<std::string_view> args;
            args.reserve(std::min(set.size(), batch) + 1);
            args.push_back(verb);
            const bool sub = verb[0] == 'S';
            for (auto& c : set) {
                if (sub) ++in_flight_[c];
                args.push_back(c);
                if (args.size() == batch + 1) {
                    append_command(out, args);
                    ++commands;
                    args.resize(1);
                }
            }
            if (args.size() > 1) {
                append_command(out, args);
                ++commands;
            }
            expect(set.size());  // one confirmation per channel
            set.clear();
        };
        if (!to_unsubscribe_.empty()) emit("UNSUBSCRIBE", to_unsubscribe_);
        if (!to_subscribe_.empty()) emit("SUBSCRIBE", to_subscribe_);
        if (commands) {
            std::lock_guard lock(stats_mutex_);
            stats_.subscribe_commands += commands;
        }
        return commands;
    }

    void on_up() override {
        to_unsubscribe_.clear();
        for (auto& [name, ch] : channels_)
            to_subscribe_.insert(name);
    }

    void on_value(Value&& v) override {
        // Subscribe mode: every reply is an array whose first element says what it is.
        if (!v.is_array() || v.elements.empty()) return fault(error::protocol_error);
        const auto& kind = v.elements[0].text();
        if (kind == "message" && v.elements.size() == 3) {
            {
                std::lock_guard lock(stats_mutex_);
                ++stats_.messages;
            }
            if (on_message_) on_message_(v.elements[1].text(), v.elements[2].text());
        } else if (kind == "subscribe" && v.elements.size() == 3) {
            answered();
            const auto& name = v.elements[1].text();
            auto f = in_flight_.find(name);
            if (f != in_flight_.end() && --f->second > 0) return;  // a later SUBSCRIBE follows
            if (f != in_flight_.end()) in_flight_.erase(f);
            auto it = channels_.find(name);
            if (it != channels_.end() && !it->second.confirmed) {
                it->second.confirmed = true;
                ++confirmed_;
                auto waiting = std::move(it->second.waiting);
                it->second.waiting.clear();
                count();
                for (auto& w : waiting)
                    w({});
            }
        } else if (kind == "unsubscribe" && v.elements.size() == 3) {
            answered();
        } else if (kind == "pong") {
            answered();
        } else {
            return fault(error::protocol_error);
        }
    }

    void on_down(std::error_code why) override {
        to_subscribe_.clear();
        to_unsubscribe_.clear();
        in_flight_.clear();
        confirmed_ = 0;
        const bool stopping = why == error::stopped;
        for (auto& [name, ch] : channels_) {
            ch.confirmed = false;
            if (stopping || !ch.waiting.empty()) {
                auto waiting = std::move(ch.waiting);
                ch.waiting.clear();
                for (auto& w : waiting)
                    w(stopping ? why : make_error_code(error::not_connected));
            }
        }
        if (stopping) channels_.clear();
        count();
    }

    void count() {
        std::lock_guard lock(stats_mutex_);
        stats_.channels = channels_.size();
        stats_.confirmed = confirmed_;
    }

    OnMessage on_message_;
    std::unordered_map<std::string, Channel> channels_;  // wanted (strand only)
    std::unordered_set<std::string> to_subscribe_, to_unsubscribe_;
    // SUBSCRIBEs sent and not confirmed, per channel: a channel unsubscribed
    // and subscribed again is confirmed by the reply to its last SUBSCRIBE.
    std::unordered_map<std::string, std::size_t> in_flight_;
    std::size_t confirmed_ = 0;
    mutable std::mutex stats_mutex_;
    Stats stats_;
};

}  // namespace plume::redis
