// plume/presence/detail/tracker_core.hpp — the machinery behind Tracker
// (tracker.hpp): validation of local operations, the CRDT state per shard
// (shard.hpp), replication (replication.hpp) and the outbox that runs diffs
// and broadcasts without locks. Users go through Tracker.
#pragma once

#include <asio.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "plume/detail/utf8.hpp"
#include "plume/presence/detail/replication.hpp"
#include "plume/presence/detail/shard.hpp"
#include "plume/presence/detail/state.hpp"
#include "plume/presence/entry.hpp"
#include "plume/presence/error.hpp"
#include "plume/presence/tracker_options.hpp"
#include "plume/pubsub/pubsub.hpp"
#include "plume/result.hpp"

namespace plume::presence::detail {

class TrackerCore;

class TrackerSubscriber final : public pubsub::Subscriber {
  public:
    TrackerSubscriber(std::weak_ptr<TrackerCore> core, std::size_t shard)
        : core_(std::move(core)), shard_(shard) {}
    inline void deliver(const pubsub::MessagePtr& m) override;

  private:
    std::weak_ptr<TrackerCore> core_;
    std::size_t shard_;
};

class TrackerCore : public std::enable_shared_from_this<TrackerCore> {
  public:
    TrackerCore(Transport transport, TrackerOptions options)
        : transport_(std::move(transport)), opt_(std::move(options)) {
        using std::chrono::milliseconds;
        if (opt_.shards == 0) throw std::invalid_argument("presence: shards must be at least 1");
        if (opt_.broadcast_period <= milliseconds(0))
            throw std::invalid_argument("presence: broadcast_period must be positive");
        if (opt_.max_silent_periods == 0)
            throw std::invalid_argument("presence: max_silent_periods must be at least 1");
        if (opt_.down_period == milliseconds(0))
            opt_.down_period = opt_.broadcast_period * opt_.max_silent_periods * 2;
        if (opt_.down_period < opt_.broadcast_period * 2 ||
            opt_.down_period <= opt_.broadcast_period * opt_.max_silent_periods)
            throw std::invalid_argument(
                "presence: down_period must be at least 2 broadcast periods and longer than "
                "broadcast_period * max_silent_periods");
        if (opt_.permdown_period <= opt_.down_period)
            throw std::invalid_argument("presence: permdown_period must exceed down_period");
        if (opt_.diff_window < milliseconds(0))
            throw std::invalid_argument("presence: diff_window must not be negative");
        if (opt_.name.empty()) opt_.name = transport_.node;
        if (opt_.incarnation == 0) {
            auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
            opt_.incarnation = ns > 0 ? static_cast<std::uint64_t>(ns) : 1;
        }
        if (!opt_.clock) opt_.clock = [] { return std::chrono::steady_clock::now(); };
        self_ = ReplicaId{opt_.name, opt_.incarnation};
        shards_.reserve(opt_.shards);
        for (std::size_t i = 0; i < opt_.shards; ++i) {
            auto s = std::make_unique<Shard>(i);
            s->topic = "phx_tracker:" + opt_.tracker_name + ":" + std::to_string(i);
            s->salt = ref_salt(self_, i);
            shards_.push_back(std::move(s));
        }
    }

    TrackerCore(const TrackerCore&) = delete;
    TrackerCore& operator=(const TrackerCore&) = delete;

    /// Subscribes to the replication topics (needs shared_from_this).
    void open() {
        for (auto& s : shards_) {
            s->subscriber = std::make_shared<TrackerSubscriber>(weak_from_this(), s->index);
            transport_.subscribe(s->topic, s->subscriber);
        }
    }

    const ReplicaId& self() const noexcept { return self_; }
    const TrackerOptions& options() const noexcept { return opt_; }
    std::size_t shard_count() const noexcept { return shards_.size(); }
    std::size_t shard_of(std::string_view topic) const noexcept {
        return static_cast<std::size_t>(fnv1a(topic) % shards_.size());
    }
    std::size_t handler_errors() const noexcept { return handler_errors_; }

    // --- local operations -------------------------------------------------

    Result<std::string> track(OwnerId owner, std::string_view topic, std::string_view key,
                              nlohmann::json meta) {
        if (auto ec = check_topic_key(topic, key)) return ec;
        if (auto ec = check_meta(meta)) return ec;
        Shard& s = shard(topic);
        const auto now = this->now();
        std::string ref;
        {
            std::unique_lock lock(s.mutex);
            if (stopped_) return error::stopped;
            if (find_local(s, owner, topic, key)) return error::already_tracked;
            if (count_local(s, topic, key) >= opt_.max_metas_per_key) return error::too_many_metas;
            ref = add_local(s, owner, topic, key, std::move(meta), nullptr, now)->ref;
            after_change(s, now);
        }
        drain(s);
        return ref;
    }

    Result<std::string> update(OwnerId owner, std::string_view topic, std::string_view key,
                               nlohmann::json meta) {
        if (auto ec = check_topic_key(topic, key)) return ec;
        if (auto ec = check_meta(meta)) return ec;
        bool conflict = false;
        return replace(owner, topic, key, std::move(meta), nullptr, conflict);
    }

    template <class F>
    Result<std::string> update_with(OwnerId owner, std::string_view topic, std::string_view key,
                                    F&& fn) {
        if (auto ec = check_topic_key(topic, key)) return ec;
        Shard& s = shard(topic);
        for (;;) {
            EntryPtr old;
            {
                std::shared_lock lock(s.mutex);
                if (stopped_) return error::stopped;
                old = find_local(s, owner, topic, key);
            }
            if (!old) return error::not_tracked;
            // The user's function runs unlocked; if the entry changed meanwhile, run it again
            // on the new one (compare and swap).
            nlohmann::json meta = fn(static_cast<const nlohmann::json&>(old->meta));
            if (auto ec = check_meta(meta)) return ec;
            bool conflict = false;
            auto r = replace(owner, topic, key, std::move(meta), old.get(), conflict);
            if (!conflict) return r;
        }
    }

    std::error_code untrack(OwnerId owner, std::string_view topic, std::string_view key) {
        if (auto ec = check_topic_key(topic, key)) return ec;
        Shard& s = shard(topic);
        const auto now = this->now();
        {
            std::unique_lock lock(s.mutex);
            if (stopped_) return error::stopped;
            auto old = find_local(s, owner, topic, key);
            if (!old) return error::not_tracked;
            remove_local(s, old, now, true);
            after_change(s, now);
        }
        drain(s);
        return {};
    }

    std::size_t untrack_all(OwnerId owner) {
        std::size_t removed = 0;
        const auto now = this->now();
        for (auto& sp : shards_) {
            Shard& s = *sp;
            {
                std::unique_lock lock(s.mutex);
                if (stopped_) return removed;
                auto it = s.by_owner.find(owner);
                if (it == s.by_owner.end()) continue;
                auto entries = std::move(it->second);
                s.by_owner.erase(it);
                for (auto& e : entries)
                    remove_local(s, e, now, false);
                removed += entries.size();
                after_change(s, now);
            }
            drain(s);
        }
        return removed;
    }

    // --- reads --------------------------------------------------------------

    std::vector<EntryPtr> list(std::string_view topic) const {
        const Shard& s = shard(topic);
        std::vector<EntryPtr> out;
        std::shared_lock lock(s.mutex);
        auto t = s.topics.find(topic);
        if (t == s.topics.end()) return out;
        for (const auto& [key, metas] : t->second)
            out.insert(out.end(), metas.begin(), metas.end());
        return out;
    }

    std::vector<EntryPtr> get_by_key(std::string_view topic, std::string_view key) const {
        const Shard& s = shard(topic);
        std::shared_lock lock(s.mutex);
        auto t = s.topics.find(topic);
        if (t == s.topics.end()) return {};
        auto k = t->second.find(key);
        if (k == t->second.end()) return {};
        return k->second;
    }

    std::vector<std::string> topics() const {
        std::vector<std::string> out;
        for (auto& s : shards_) {
            std::shared_lock lock(s->mutex);
            for (const auto& [topic, index] : s->topics)
                out.push_back(topic);
        }
        std::sort(out.begin(), out.end());
        return out;
    }

    std::vector<ReplicaInfo> replicas(std::size_t shard_index) const {
        const Shard& s = *shards_.at(shard_index);
        std::vector<ReplicaInfo> out;
        std::shared_lock lock(s.mutex);
        for (const auto& [name, r] : s.remotes)
            out.push_back(ReplicaInfo{name, r.incarnation, r.visible, r.state.version,
                                      r.state.entries.size()});
        return out;
    }

    // --- time and replication ---------------------------------------------

    /// Processes received replication messages.
    void poll() {
        for (auto& sp : shards_) {
            Shard& s = *sp;
            {
                std::lock_guard repl(s.repl);
                poll_locked(s);
            }
            drain(s);
        }
    }

    /// Everything due now: received messages, heartbeats, down and permdown
    /// detection, coalesced diffs whose window has passed.
    void tick() {
        if (stopped_) return;
        for (auto& sp : shards_) {
            Shard& s = *sp;
            {
                std::lock_guard repl(s.repl);
                poll_locked(s);
                const auto now = this->now();
                {
                    std::unique_lock lock(s.mutex);
                    detect_downs(s, now);
                    flush_pending(s, now, false);
                }
                maybe_heartbeat(s, now);
            }
            drain(s);
        }
    }

    /// Delivers every pending coalesced diff now.
    void flush() {
        for (auto& sp : shards_) {
            Shard& s = *sp;
            const auto now = this->now();
            {
                std::unique_lock lock(s.mutex);
                flush_pending(s, now, true);
            }
            drain(s);
        }
    }

    void start(const asio::any_io_executor& ex) {
        std::lock_guard lock(exec_mutex_);
        if (strand_ || stopped_) return;
        strand_.emplace(asio::make_strand(ex));
        timer_.emplace(*strand_);
        asio::post(*strand_, [self = shared_from_this()] {
            if (self->stopped_) return;
            self->tick();
            self->arm_timer();
        });
    }

    void stop(bool permdown) {
        if (stopped_.exchange(true)) return;
        for (auto& s : shards_)
            transport_.unsubscribe(s->topic, s->subscriber.get());
        {
            std::lock_guard lock(exec_mutex_);
            if (strand_)
                asio::post(*strand_, [self = shared_from_this()] { self->timer_->cancel(); });
        }
        if (permdown) {
            for (auto& s : shards_) {
                nlohmann::json payload{{"from", encode_id(self_)}, {"shards", shards_.size()}};
                try {
                    transport_.broadcast_from(
                        s->subscriber.get(),
                        pubsub::make_message(s->topic, "permdown", std::move(payload)));
                } catch (...) {
                    ++handler_errors_;
                }
            }
        }
        // Wait for replication work and deliveries in progress on other threads,
        // so no callback starts after stop() returns.
        for (auto& s : shards_) {
            { std::lock_guard repl(s->repl); }
            std::unique_lock lock(s->out_mutex);
            s->out_cv.wait(
                lock, [&] { return !s->draining || s->drainer == std::this_thread::get_id(); });
            s->outbox.clear();
        }
    }

    bool stopped() const noexcept { return stopped_; }

    void enqueue(std::size_t shard_index, const pubsub::MessagePtr& m) {
        if (stopped_) return;
        {
            Shard& s = *shards_[shard_index];
            std::lock_guard lock(s.in_mutex);
            s.inbox.push_back(m);
        }
        std::lock_guard lock(exec_mutex_);
        if (strand_ && !poll_posted_.exchange(true)) {
            asio::post(*strand_, [self = shared_from_this()] {
                self->poll_posted_ = false;
                if (!self->stopped_) self->poll();
            });
        }
    }

  private:
    TimePoint now() const { return opt_.clock(); }

    Shard& shard(std::string_view topic) { return *shards_[shard_of(topic)]; }
    const Shard& shard(std::string_view topic) const { return *shards_[shard_of(topic)]; }

    static std::error_code check_topic_key(std::string_view topic, std::string_view key) {
        if (topic.empty() || !plume::detail::is_valid_utf8(topic)) return error::invalid_topic;
        if (!plume::detail::is_valid_utf8(key)) return error::invalid_key;
        return {};
    }

    std::error_code check_meta(const nlohmann::json& meta) const {
        if (!meta.is_object()) return error::invalid_meta;
        std::size_t size = 0;
        try {
            size = meta.dump().size();
        } catch (const nlohmann::json::exception&) {
            return error::invalid_meta;  // a string that is not UTF-8
        }
        if (size > opt_.max_meta_bytes) return error::meta_too_large;
        return {};
    }

    std::chrono::milliseconds tick_interval() const {
        if (opt_.diff_window.count() > 0) return std::min(opt_.broadcast_period, opt_.diff_window);
        return opt_.broadcast_period;
    }

    void arm_timer() {
        timer_->expires_after(tick_interval());
        timer_->async_wait([self = shared_from_this()](const std::error_code& ec) {
            if (ec || self->stopped_) return;
            self->tick();
            self->arm_timer();
        });
    }

    // --- the visible index and diffs (state lock held) ---------------------

    static EntryPtr find_local(const Shard& s, OwnerId owner, std::string_view topic,
                               std::string_view key) {
        auto t = s.topics.find(topic);
        if (t == s.topics.end()) return nullptr;
        auto k = t->second.find(key);
        if (k == t->second.end()) return nullptr;
        for (const auto& e : k->second)
            if (e->local && e->owner == owner) return e;
        return nullptr;
    }

    static std::size_t count_local(const Shard& s, std::string_view topic, std::string_view key) {
        auto t = s.topics.find(topic);
        if (t == s.topics.end()) return 0;
        auto k = t->second.find(key);
        if (k == t->second.end()) return 0;
        return static_cast<std::size_t>(
            std::count_if(k->second.begin(), k->second.end(), [](auto& e) { return e->local; }));
    }

    Pending& pending_for(Shard& s, const std::string& topic, TimePoint now) {
        auto it = s.pending.find(topic);
        if (it == s.pending.end()) {
            it = s.pending.emplace(topic, Pending{}).first;
            it->second.since = now;
        }
        return it->second;
    }

    void add_visible(Shard& s, const EntryPtr& e, TimePoint now) {
        auto t = s.topics.find(e->topic);
        if (t == s.topics.end()) t = s.topics.emplace(e->topic, TopicIndex{}).first;
        auto k = t->second.find(e->key);
        if (k == t->second.end()) k = t->second.emplace(e->key, std::vector<EntryPtr>{}).first;
        auto& metas = k->second;
        auto pos =
            std::lower_bound(metas.begin(), metas.end(), e->ref,
                             [](const EntryPtr& x, const std::string& r) { return x->ref < r; });
        if (pos != metas.end() && (*pos)->ref == e->ref) return;
        metas.insert(pos, e);
        Pending& p = pending_for(s, e->topic, now);
        if (!take(p.leaves, e->ref)) put(p.joins, e);
    }

    void remove_visible(Shard& s, const EntryPtr& e, TimePoint now) {
        auto t = s.topics.find(e->topic);
        if (t == s.topics.end()) return;
        auto k = t->second.find(e->key);
        if (k == t->second.end()) return;
        auto& metas = k->second;
        auto pos =
            std::lower_bound(metas.begin(), metas.end(), e->ref,
                             [](const EntryPtr& x, const std::string& r) { return x->ref < r; });
        if (pos == metas.end() || (*pos)->ref != e->ref) return;
        EntryPtr gone = std::move(*pos);
        metas.erase(pos);
        if (metas.empty()) t->second.erase(k);
        if (t->second.empty()) s.topics.erase(t);
        Pending& p = pending_for(s, gone->topic, now);
        if (!take(p.joins, gone->ref)) put(p.leaves, gone);
    }

    void show(Shard& s, Remote& r, TimePoint now) {
        for (const auto& [ref, e] : r.state.entries)
            add_visible(s, e, now);
        r.visible = true;
    }

    void hide(Shard& s, Remote& r, TimePoint now) {
        for (const auto& [ref, e] : r.state.entries)
            remove_visible(s, e, now);
        r.visible = false;
    }

    /// Moves pending diffs to the outbox: all of them, or (`all` false) those
    /// whose coalescing window has passed.
    void flush_pending(Shard& s, TimePoint now, bool all) {
        if (s.pending.empty()) return;
        const auto window = opt_.diff_window;
        std::vector<Action> out;
        for (auto it = s.pending.begin(); it != s.pending.end();) {
            if (!all && now - it->second.since < window) {
                ++it;
                continue;
            }
            Action a;
            a.kind = Action::Kind::diff;
            a.topic = it->first;
            auto collect = [](EntryMap& m, std::vector<EntryPtr>& v) {
                v.reserve(m.size());
                for (auto& [ref, e] : m)
                    v.push_back(e);
                std::sort(v.begin(), v.end(), [](const EntryPtr& x, const EntryPtr& y) {
                    return std::tie(x->key, x->ref) < std::tie(y->key, y->ref);
                });
            };
            collect(it->second.joins, a.joins);
            collect(it->second.leaves, a.leaves);
            if (!a.joins.empty() || !a.leaves.empty()) out.push_back(std::move(a));
            it = s.pending.erase(it);
        }
        if (out.empty()) return;
        std::lock_guard lock(s.out_mutex);
        for (auto& a : out)
            s.outbox.push_back(std::move(a));
    }

    void after_change(Shard& s, TimePoint now) {
        if (opt_.diff_window.count() == 0) flush_pending(s, now, true);
    }

    void push_action(Shard& s, Action a) {
        std::lock_guard lock(s.out_mutex);
        s.outbox.push_back(std::move(a));
    }

    void push_message(Shard& s, const std::string& event, nlohmann::json payload,
                      const std::string* to_node = nullptr) {
        Action a;
        a.kind = to_node ? Action::Kind::direct : Action::Kind::broadcast;
        if (to_node) a.topic = *to_node;
        a.message = pubsub::make_message(s.topic, event, std::move(payload));
        push_action(s, std::move(a));
    }

    // --- this replica's entries (state lock held) --------------------------

    EntryPtr add_local(Shard& s, OwnerId owner, std::string_view topic, std::string_view key,
                       nlohmann::json meta, const Entry* prev, TimePoint now) {
        auto e = std::make_shared<Entry>();
        e->version = ++s.version;
        e->ref = make_ref(e->version, s.salt);
        meta["phx_ref"] = e->ref;
        if (prev)
            meta["phx_ref_prev"] = prev->ref;
        else
            meta.erase("phx_ref_prev");
        e->topic = std::string(topic);
        e->key = std::string(key);
        e->meta = std::move(meta);
        e->owner = owner;
        e->local = true;
        EntryPtr entry = std::move(e);
        s.log.push_back(Op{entry->version, entry, {}});
        put(s.own, entry);
        s.by_owner[owner].push_back(entry);
        add_visible(s, entry, now);
        return entry;
    }

    void remove_local(Shard& s, const EntryPtr& e, TimePoint now, bool owner_index) {
        take(s.own, e->ref);
        if (owner_index) {
            auto it = s.by_owner.find(e->owner);
            if (it != s.by_owner.end()) {
                std::erase(it->second, e);
                if (it->second.empty()) s.by_owner.erase(it);
            }
        }
        // The add no longer needs its meta on the wire: the remove follows it.
        if (e->version >= s.log_first) s.log[e->version - s.log_first].add.reset();
        ++s.version;
        s.log.push_back(Op{s.version, nullptr, e->ref});
        remove_visible(s, e, now);
    }

    Result<std::string> replace(OwnerId owner, std::string_view topic, std::string_view key,
                                nlohmann::json meta, const Entry* expected, bool& conflict) {
        Shard& s = shard(topic);
        const auto now = this->now();
        std::string ref;
        {
            std::unique_lock lock(s.mutex);
            if (stopped_) return error::stopped;
            auto old = find_local(s, owner, topic, key);
            if (!old) return error::not_tracked;
            if (expected && old.get() != expected) {
                conflict = true;
                return error::not_tracked;
            }
            remove_local(s, old, now, true);
            ref = add_local(s, owner, topic, key, std::move(meta), old.get(), now)->ref;
            after_change(s, now);
        }
        drain(s);
        return ref;
    }

    // --- outbox -------------------------------------------------------------

    /// Runs queued actions in order, with no lock held. One thread drains a
    /// shard at a time; a thread that finds another draining leaves its
    /// actions to it (so a callback that calls back into the tracker is fine).
    void drain(Shard& s) {
        std::unique_lock lock(s.out_mutex);
        if (s.draining) return;
        s.draining = true;
        s.drainer = std::this_thread::get_id();
        while (!s.outbox.empty() && !stopped_) {
            std::deque<Action> batch;
            batch.swap(s.outbox);
            lock.unlock();
            for (auto& a : batch) {
                if (stopped_) break;
                run(s, a);
            }
            lock.lock();
        }
        if (stopped_) s.outbox.clear();
        s.draining = false;
        s.drainer = {};
        s.out_cv.notify_all();
    }

    void run(Shard& s, Action& a) {
        // A throwing callback or adapter must not stop replication or later diffs.
        try {
            switch (a.kind) {
                case Action::Kind::diff:
                    if (opt_.on_diff) opt_.on_diff(a.topic, a.joins, a.leaves);
                    break;
                case Action::Kind::broadcast:
                    transport_.broadcast_from(s.subscriber.get(), std::move(a.message));
                    break;
                case Action::Kind::direct:
                    transport_.direct_broadcast(a.topic, std::move(a.message));
                    break;
            }
        } catch (...) {
            ++handler_errors_;
        }
    }

    // --- replication (repl lock held) ---------------------------------------

    void maybe_heartbeat(Shard& s, TimePoint now) {
        if (s.last_period && now - *s.last_period < opt_.broadcast_period) return;
        s.last_period = now;
        nlohmann::json payload;
        std::uint64_t version = 0;
        {
            std::shared_lock lock(s.mutex);
            version = s.version;
            const bool silent_too_long =
                !s.last_sent ||
                now - *s.last_sent >= opt_.broadcast_period * opt_.max_silent_periods;
            if (version == s.sent_version && !silent_too_long) return;
            payload = nlohmann::json{{"from", encode_id(self_)},
                                     {"shards", shards_.size()},
                                     {"base", s.sent_version},
                                     {"version", version},
                                     {"ops", encode_ops(log_slice(s, s.sent_version, version))}};
        }
        std::unique_lock lock(s.mutex);
        s.sent_version = version;
        s.last_sent = now;
        while (s.log.size() > opt_.max_delta_ops && s.log_first <= s.sent_version) {
            s.log.pop_front();
            ++s.log_first;
        }
        push_message(s, "heartbeat", std::move(payload));
    }

    /// The log's operations with versions in (from, to]; from + 1 >= log_first.
    static OpSlice log_slice(const Shard& s, std::uint64_t from, std::uint64_t to) {
        if (to < from) to = from;
        const auto begin = static_cast<std::ptrdiff_t>(from + 1 - s.log_first);
        const auto end = static_cast<std::ptrdiff_t>(to + 1 - s.log_first);
        return {s.log.begin() + begin, s.log.begin() + end};
    }

    void detect_downs(Shard& s, TimePoint now) {
        for (auto it = s.remotes.begin(); it != s.remotes.end();) {
            Remote& r = it->second;
            const auto silent = now - r.last_heard;
            if (silent >= opt_.permdown_period) {
                if (r.visible) hide(s, r, now);
                it = s.remotes.erase(it);
                continue;
            }
            if (r.visible && silent >= opt_.down_period) hide(s, r, now);
            ++it;
        }
        std::erase_if(s.tombstones,
                      [&](const auto& t) { return now - t.second >= opt_.permdown_period; });
    }

    void poll_locked(Shard& s) {
        for (;;) {
            pubsub::MessagePtr m;
            {
                std::lock_guard lock(s.in_mutex);
                if (s.inbox.empty()) return;
                m = std::move(s.inbox.front());
                s.inbox.pop_front();
            }
            if (stopped_) continue;
            auto in = decode_replication(*m, shards_.size());
            if (in) handle(s, *in);
        }
    }

    void handle(Shard& s, Incoming& in) {
        if (in.from.name == self_.name) return;  // ourselves, or an older us
        if (in.to && *in.to != self_) return;
        const auto now = this->now();
        if (in.kind == Incoming::Kind::transfer_req) {
            answer_transfer(s, in);
            return;
        }
        std::unique_lock lock(s.mutex);
        const auto id = std::make_pair(in.from.name, in.from.incarnation);
        if (s.tombstones.contains(id)) return;
        auto it = s.remotes.find(in.from.name);
        if (it != s.remotes.end() && it->second.incarnation != in.from.incarnation) {
            if (!supersedes(in.from.incarnation, it->second.incarnation)) return;  // stale
            // The node restarted: its previous incarnation is gone for good.
            if (it->second.visible) hide(s, it->second, now);
            s.tombstones[{it->first, it->second.incarnation}] = now;
            s.remotes.erase(it);
            it = s.remotes.end();
        }
        if (in.kind == Incoming::Kind::permdown) {
            if (it != s.remotes.end()) {
                if (it->second.visible) hide(s, it->second, now);
                s.remotes.erase(it);
            }
            s.tombstones[id] = now;
            after_change(s, now);
            return;
        }
        if (it == s.remotes.end()) {
            it = s.remotes.emplace(in.from.name, Remote{}).first;
            it->second.incarnation = in.from.incarnation;
        }
        Remote& r = it->second;
        r.last_heard = now;
        if (in.full && in.parts > 1 && !assemble(r, in)) return;  // more parts to come
        Change change;
        bool in_sync = true;
        if (in.full) {
            if (!merge_full(r.state, in.version, std::move(in.entries), &change))
                in_sync = r.visible;  // an old transfer: nothing learnt
        } else if (!apply_delta(r.state, in.base, in.version, in.ops, &change)) {
            in_sync = false;
            request_transfer(s, it->first, r, now);
        }
        if (r.visible) {
            for (auto& e : change.leaves)
                remove_visible(s, e, now);
            for (auto& e : change.joins)
                add_visible(s, e, now);
        } else if (in_sync) {
            // Up again (or for the first time) and in sync: its presences join.
            show(s, r, now);
        }
        if (in_sync) r.transfer_requested.reset();
        after_change(s, now);
    }

    // Collects the parts of a whole-state transfer (they come in order, from
    // one sender on one channel); true once `in` holds all of them. A part
    // out of order drops what was collected: the gap is seen again and a new
    // transfer asked for.
    static bool assemble(Remote& r, Incoming& in) {
        auto& a = r.assembling;
        if (in.part == 0) a = Remote::Assembly{in.version, in.parts, 0, {}};
        if (!a || a->version != in.version || a->parts != in.parts || a->next != in.part) {
            a.reset();
            return false;
        }
        for (auto& [ref, e] : in.entries)
            a->entries.emplace(ref, std::move(e));
        if (++a->next < a->parts) return false;
        in.entries = std::move(a->entries);
        a.reset();
        return true;
    }

    void request_transfer(Shard& s, const std::string& name, Remote& r, TimePoint now) {
        // Ask again only if the answer is overdue: a round trip normally fits in a period.
        if (r.transfer_requested && now - *r.transfer_requested < 2 * opt_.broadcast_period) return;
        r.transfer_requested = now;
        nlohmann::json payload{{"from", encode_id(self_)},
                               {"to", encode_id(ReplicaId{name, r.incarnation})},
                               {"shards", shards_.size()},
                               {"have", r.state.version}};
        push_message(s, "transfer_req", std::move(payload), &name);
    }

    void answer_transfer(Shard& s, const Incoming& in) {
        nlohmann::json payload{
            {"from", encode_id(self_)}, {"to", encode_id(in.from)}, {"shards", shards_.size()}};
        std::vector<nlohmann::json> parts;
        {
            std::shared_lock lock(s.mutex);
            payload["version"] = s.version;
            // A delta from the log when it has the range and is not much longer than the
            // whole state would be; the whole state otherwise, in parts.
            if (in.have <= s.version && in.have + 1 >= s.log_first &&
                s.version - in.have <= s.own.size() + 64) {
                payload["base"] = in.have;
                payload["ops"] = encode_ops(log_slice(s, in.have, s.version));
            } else {
                const std::size_t chunk = opt_.transfer_chunk_entries == 0
                                              ? std::max<std::size_t>(1, s.own.size())
                                              : opt_.transfer_chunk_entries;
                auto part = nlohmann::json::array();
                for (const auto& [ref, e] : s.own) {
                    part.push_back(encode_entry(*e));
                    if (part.size() == chunk)
                        parts.push_back(std::exchange(part, nlohmann::json::array()));
                }
                if (!part.empty() || parts.empty()) parts.push_back(std::move(part));
            }
        }
        if (parts.size() <= 1) {
            if (!parts.empty()) payload["entries"] = std::move(parts[0]);
            return push_message(s, "transfer_ack", std::move(payload), &in.from.name);
        }
        for (std::size_t i = 0; i < parts.size(); ++i) {
            auto p = payload;
            p["part"] = i;
            p["parts"] = parts.size();
            p["entries"] = std::move(parts[i]);
            push_message(s, "transfer_ack", std::move(p), &in.from.name);
        }
    }

    Transport transport_;
    TrackerOptions opt_;
    ReplicaId self_;
    std::vector<std::unique_ptr<Shard>> shards_;
    std::atomic<bool> stopped_{false};
    std::atomic<std::size_t> handler_errors_{0};

    std::mutex exec_mutex_;
    std::optional<asio::strand<asio::any_io_executor>> strand_;
    std::optional<asio::steady_timer> timer_;
    std::atomic<bool> poll_posted_{false};
};

inline void TrackerSubscriber::deliver(const pubsub::MessagePtr& m) {
    if (auto core = core_.lock()) core->enqueue(shard_, m);
}

}  // namespace plume::presence::detail
