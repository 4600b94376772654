// plume/server/channel.hpp — Phoenix.Channel for C++: subclass it.
//
//   class RoomChannel : public plume::server::Channel<UserSocket> {
//   public:
//       JoinResult join(std::string_view topic, const Payload& params) override {
//           if (topic == "room:lobby") return ok();
//           return error({{"reason", "unauthorized"}});
//       }
//       InResult handle_in(std::string_view event, const Payload& payload) override {
//           if (event == "new_msg") {
//               // A payload may be any JSON value (or Binary): check before reading fields.
//               if (!payload.is_json() || !payload.json().is_object())
//                   return reply_error({{"reason", "expected an object"}});
//               broadcast("new_msg", nlohmann::json{{"body", payload.json().value("body", "")}});
//               return noreply();
//           }
//           if (event == "ping") return reply_ok(payload);  // echoes any payload
//           return reply_error({{"reason", "unknown event"}});
//       }
//   };
//
// Every handler of one channel runs serially on its connection's strand, so a
// channel needs no locks. A handler that throws ends only that channel: the
// client gets phx_error (and phoenix.js rejoins), terminate() runs, the socket
// and its other channels carry on. self() is a handle other threads may use
// to reach the channel (post_info → handle_info).
#pragma once

#include <nlohmann/json.hpp>

#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plume/presence/presence.hpp"
#include "plume/server/rate_limit.hpp"
#include "plume/transport/priority.hpp"
#include "plume/wire/message.hpp"

namespace plume::server {

using transport::Priority;
using wire::Payload;

/// How an event is sent: its priority lane (transport/priority.hpp) and, for
/// a low-priority one, the key under which a newer event replaces one still
/// waiting in a connection's queue ("typing:" + user).
///   broadcast("typing", {{"user", u}}, {Priority::low, "typing:" + u});
///   push("kicked", {}, Priority::critical);
struct SendOptions {
    Priority priority = Priority::normal;
    std::string coalesce_key;

    SendOptions() = default;
    SendOptions(Priority p, std::string key = {})  // NOLINT: implicit from a Priority
        : priority(p), coalesce_key(std::move(key)) {}

    /// The key as a connection's queue takes it: null unless low with a key.
    transport::CoalesceKey key() const {
        if (priority != Priority::low || coalesce_key.empty()) return nullptr;
        return transport::coalesce_key(coalesce_key);
    }
};

/// join()'s answer: ok (with an optional reply payload) or error.
struct JoinResult {
    bool ok = true;
    Payload response;
};

/// handle_in()'s answer: no reply, a reply with a status, or stop the
/// channel (after an optional reply) — Phoenix's {:noreply}, {:reply},
/// {:stop}.
struct InResult {
    enum class kind { noreply, reply, stop };
    kind what = kind::noreply;
    std::string status;
    Payload response;
    std::string stop_reason;
};

namespace detail {

// What a channel needs from the connection that hosts it. Implemented by the
// endpoint's session; kept abstract so Channel does not depend on it.
class ChannelHost {
  public:
    virtual ~ChannelHost() = default;
    virtual void host_push(const std::string& topic, const std::optional<wire::Ref>& join_ref,
                           std::string_view event, Payload payload, const SendOptions& how) = 0;
    virtual void host_reply(const std::string& topic, const std::optional<wire::Ref>& join_ref,
                            const std::optional<wire::Ref>& ref, std::string_view status,
                            Payload response) = 0;
    virtual void host_broadcast(const std::string& topic, std::string_view event, Payload payload,
                                bool exclude_self, const SendOptions& how) = 0;
    // Thread-safe: runs handle_info on the channel's strand if that channel
    // incarnation (a number unique per join on the connection) still exists.
    virtual void host_post_info(const std::string& topic, std::uint64_t incarnation,
                                nlohmann::json message) = 0;
    virtual presence::Presence& host_presence() = 0;
    // A push whose payload is already encoded JSON text (an object), shared by
    // many pushes; a host that cannot splice it parses it back.
    virtual void host_push_text(const std::string& topic, const std::optional<wire::Ref>& join_ref,
                                std::string_view event,
                                std::shared_ptr<const std::string> payload_json) {
        host_push(topic, join_ref, event, Payload(nlohmann::json::parse(*payload_json)), {});
    }
};

}  // namespace detail

/// A thread-safe handle on a joined channel (Phoenix's `self()` pid).
class ChannelRef {
  public:
    ChannelRef() = default;
    ChannelRef(std::weak_ptr<detail::ChannelHost> host, std::string topic,
               std::uint64_t incarnation)
        : host_(std::move(host)), topic_(std::move(topic)), incarnation_(incarnation) {}

    /// Delivers `message` to the channel's handle_info, on its strand; a no-op
    /// once that channel incarnation is gone. Callable from any thread.
    void post_info(nlohmann::json message) const {
        if (auto h = host_.lock()) h->host_post_info(topic_, incarnation_, std::move(message));
    }
    const std::string& topic() const noexcept { return topic_; }

  private:
    std::weak_ptr<detail::ChannelHost> host_;
    std::string topic_;
    std::uint64_t incarnation_ = 0;
};

/// A reply to send later (Phoenix's socket_ref + reply/2).
struct ReplyRef {
    std::string topic;
    std::optional<wire::Ref> join_ref, ref;
};

template <class SocketT>
class Channel {
  public:
    using socket_type = SocketT;
    using Payload = wire::Payload;
    using JoinResult = server::JoinResult;
    using InResult = server::InResult;

    virtual ~Channel() = default;

    /// Decides the join. Runs before the channel is subscribed to its topic.
    virtual JoinResult join(std::string_view topic, const Payload& params) = 0;

    /// A client event. The default refuses it with {"reason":"unhandled event"}.
    virtual InResult handle_in(std::string_view event, const Payload&) {
        return reply_error({{"reason", "unhandled event"}, {"event", event}});
    }

    /// A message posted with send_info()/self().post_info().
    virtual void handle_info(const nlohmann::json&) {}

    /// An intercepted broadcast (see intercept()); the default pushes it on.
    virtual void handle_out(std::string_view event, const Payload& payload) {
        push(event, payload);
    }

    /// The channel ends: left, duplicate join, crashed, or connection closed.
    virtual void terminate(std::string_view /*reason*/) {}

    // ------------------------------------------------------------ helpers --

    const std::string& topic() const noexcept { return topic_; }
    /// The join_ref of this channel's pushes and replies: the phx_join's
    /// join_ref, or its ref when that was null (Phoenix's `join_ref || ref`).
    const std::optional<wire::Ref>& join_ref() const noexcept { return join_ref_; }
    SocketT& socket() noexcept { return *socket_; }
    const SocketT& socket() const noexcept { return *socket_; }

    // JSON overloads let brace lists through: push("e", {{"k", 1}}).
    void push(std::string_view event, nlohmann::json payload) {
        push<Payload>(event, Payload(std::move(payload)), priority_of(event));
    }
    void push(std::string_view event, nlohmann::json payload, const SendOptions& how) {
        push<Payload>(event, Payload(std::move(payload)), how);
    }
    void broadcast(std::string_view event, nlohmann::json payload) {
        broadcast<Payload>(event, Payload(std::move(payload)), priority_of(event));
    }
    void broadcast(std::string_view event, nlohmann::json payload, const SendOptions& how) {
        broadcast<Payload>(event, Payload(std::move(payload)), how);
    }
    void broadcast_from(std::string_view event, nlohmann::json payload) {
        broadcast_from<Payload>(event, Payload(std::move(payload)), priority_of(event));
    }
    void broadcast_from(std::string_view event, nlohmann::json payload, const SendOptions& how) {
        broadcast_from<Payload>(event, Payload(std::move(payload)), how);
    }

    /// Sends an event to this client only. Without SendOptions, in the
    /// event's lane (set_priority; normal by default).
    template <std::same_as<Payload> P>
    void push(std::string_view event, P payload) {
        push<P>(event, std::move(payload), priority_of(event));
    }
    template <std::same_as<Payload> P>
    void push(std::string_view event, P payload, const SendOptions& how) {
        host_->host_push(topic_, join_ref_, event, std::move(payload), how);
    }
    /// Sends an event to every subscriber of this channel's topic, this
    /// client included; encoded once for all of them. Every receiving
    /// connection queues it in the lane given here (or the event's lane).
    template <std::same_as<Payload> P>
    void broadcast(std::string_view event, P payload) {
        broadcast<P>(event, std::move(payload), priority_of(event));
    }
    template <std::same_as<Payload> P>
    void broadcast(std::string_view event, P payload, const SendOptions& how) {
        host_->host_broadcast(topic_, event, std::move(payload), false, how);
    }
    /// Like broadcast, but not to this client.
    template <std::same_as<Payload> P>
    void broadcast_from(std::string_view event, P payload) {
        broadcast_from<P>(event, std::move(payload), priority_of(event));
    }
    template <std::same_as<Payload> P>
    void broadcast_from(std::string_view event, P payload, const SendOptions& how) {
        host_->host_broadcast(topic_, event, std::move(payload), true, how);
    }

    /// The lane of `event` when push/broadcast are not told one: e.g.
    /// set_priority("typing", Priority::low), set_priority("kick",
    /// Priority::critical). Events of one priority keep their order; an event
    /// of a higher lane may overtake queued ones of a lower lane.
    void set_priority(std::string event, Priority p) {
        for (auto& e : event_priorities_)
            if (e.first == event) return void(e.second = p);
        event_priorities_.emplace_back(std::move(event), p);
    }
    Priority priority_of(std::string_view event) const noexcept {
        for (auto& e : event_priorities_)
            if (e.first == event) return e.second;
        return Priority::normal;
    }
    /// Posts a message to this channel's own handle_info (Phoenix's
    /// `send(self(), msg)`), which runs after the current handler returns
    /// (after the join reply, when called from join).
    void send_info(nlohmann::json message) { self().post_info(std::move(message)); }
    ChannelRef self() const { return ChannelRef(host_weak_, topic_, incarnation_); }

    /// The ref of the event being handled, for replying later with reply().
    ReplyRef socket_ref() const { return {topic_, join_ref_, current_ref_}; }
    void reply(const ReplyRef& r, std::string_view status, Payload response) {
        host_->host_reply(r.topic, r.join_ref, r.ref, status, std::move(response));
    }

    // ------------------------------------------------------------ presence --
    // Phoenix.Presence for this channel's topic. Entries are owned by this
    // channel incarnation: they leave by themselves when it ends (leave, crash,
    // duplicate join, closed connection). Every change reaches the topic's
    // subscribers as "presence_diff"; push presence_state() after each join.

    /// Tracks `key` with `meta` (a JSON object); the new phx_ref, or an error
    /// (already_tracked, invalid_meta, meta_too_large, ...).
    Result<std::string> track(std::string_view key, nlohmann::json meta) {
        return host_->host_presence().track(presence_owner_, topic_, key, std::move(meta));
    }
    /// Replaces the meta of a tracked key (a new phx_ref, phx_ref_prev set).
    Result<std::string> update_presence(std::string_view key, nlohmann::json meta) {
        return host_->host_presence().update(presence_owner_, topic_, key, std::move(meta));
    }
    /// Updates the meta with a function of the old one.
    template <class F>
    requires std::is_invocable_r_v<nlohmann::json, F&, const nlohmann::json&> Result<std::string>
    update_presence(std::string_view key, F&& fn) {
        return host_->host_presence().update(presence_owner_, topic_, key, std::forward<F>(fn));
    }
    std::error_code untrack(std::string_view key) {
        return host_->host_presence().untrack(presence_owner_, topic_, key);
    }
    /// {"key": {"metas": [...]}}: the payload of "presence_state" — the topic's
    /// list as of its last presence_diff, so that it and the diffs that follow
    /// rebuild the list exactly on the client.
    nlohmann::json presence_state() const { return host_->host_presence().presence_state(topic_); }
    /// push("presence_state", presence_state()), with the payload encoded once
    /// per topic version and shared by every joiner (only the frame's join_ref
    /// differs): what a join storm on a big topic needs.
    void push_presence_state() {
        host_->host_push_text(topic_, join_ref_, "presence_state",
                              host_->host_presence().presence_state_text(topic_));
    }

    /// Broadcast events this channel wants to see in handle_out before they
    /// reach its client; others take the encode-once fast lane.
    void intercept(std::initializer_list<std::string_view> events) {
        for (auto e : events)
            intercepted_.emplace_back(e);
    }
    const std::vector<std::string>& intercepted() const noexcept { return intercepted_; }

    /// Limits how often this channel's client may send `event` ("*": every
    /// event, on top of the socket's own limits). Over the limit the push is
    /// answered {"reason":"rate_limited"} (dropped if it has no ref), counts
    /// toward the socket's close_after_refused, and handle_in does not run.
    /// Call from the constructor or join().
    ///   limit_event("new_msg", {.per_second = 5, .burst = 10});
    void limit_event(std::string event, RateLimit limit) {
        event_limits_.push_back({std::move(event), limit, {}});
    }

    // ------------------------------------------------- result constructors --

    static JoinResult ok() { return {true, Payload()}; }
    static JoinResult ok(nlohmann::json response) { return {true, std::move(response)}; }
    template <std::same_as<Payload> P>
    static JoinResult ok(P response) {
        return {true, std::move(response)};
    }
    template <std::same_as<Payload> P>
    static JoinResult error(P response) {
        return {false, std::move(response)};
    }
    static JoinResult error(nlohmann::json response) { return {false, std::move(response)}; }
    static InResult noreply() { return {}; }
    static InResult reply_ok() { return reply_ok<Payload>(Payload()); }
    template <std::same_as<Payload> P>
    static InResult reply_ok(P response) {
        return {InResult::kind::reply, "ok", std::move(response), {}};
    }
    static InResult reply_ok(nlohmann::json response) {
        return reply_ok<Payload>(Payload(std::move(response)));
    }
    template <std::same_as<Payload> P>
    static InResult reply_error(P response) {
        return {InResult::kind::reply, "error", std::move(response), {}};
    }
    static InResult reply_error(nlohmann::json response) {
        return reply_error<Payload>(Payload(std::move(response)));
    }
    static InResult reply(std::string status, Payload response) {
        return {InResult::kind::reply, std::move(status), std::move(response), {}};
    }
    /// Ends the channel gracefully (phx_close), optionally after a reply.
    static InResult stop(std::string reason = "normal") {
        return {InResult::kind::stop, {}, {}, std::move(reason)};
    }

  private:
    template <class, class>
    friend class Session;

    std::string topic_;
    std::optional<wire::Ref> join_ref_;
    std::uint64_t incarnation_ = 0;
    std::optional<wire::Ref> current_ref_;
    SocketT* socket_ = nullptr;
    presence::OwnerId presence_owner_ = 0;
    detail::ChannelHost* host_ = nullptr;
    std::weak_ptr<detail::ChannelHost> host_weak_;
    std::vector<std::string> intercepted_;
    std::vector<std::pair<std::string, Priority>> event_priorities_;
    struct EventLimit {
        std::string event;
        RateLimit limit;
        TokenBucket bucket;
    };
    std::vector<EventLimit> event_limits_;

    bool admit_event(std::string_view event, std::chrono::steady_clock::time_point now) {
        bool ok = true;
        for (auto& l : event_limits_)
            if (l.event == event || l.event == "*") ok = l.bucket.take(l.limit, now) && ok;
        return ok;
    }
};

/// Routes topics to channel types: exact topics or a prefix with "*".
template <class SocketT>
class Router {
  public:
    using Factory = std::unique_ptr<Channel<SocketT>> (*)();

    template <class C>
    void channel(std::string pattern) {
        static_assert(std::is_base_of_v<Channel<SocketT>, C>,
                      "a channel type must derive from plume::server::Channel<YourSocket>");
        routes_.push_back({std::move(pattern), [] {
                               return std::unique_ptr<Channel<SocketT>>(std::make_unique<C>());
                           }});
    }

    /// The factory for a topic, or null when no route matches.
    Factory match(std::string_view topic) const {
        for (auto& r : routes_) {
            std::string_view p = r.pattern;
            if (!p.empty() && p.back() == '*') {
                if (topic.substr(0, p.size() - 1) == p.substr(0, p.size() - 1)) return r.make;
            } else if (topic == p) {
                return r.make;
            }
        }
        return nullptr;
    }

  private:
    struct Route {
        std::string pattern;
        Factory make;
    };
    std::vector<Route> routes_;
};

}  // namespace plume::server
