// plume/transport/impl/connection_write.hpp — Connection's send
// queue: frames queued by lane (control and critical first, then high,
// normal, low), the low lane's window and coalescing, the bound and the
// slow-reader policy (overflow, 1008), the cross-thread mailbox, and the
// gathered writes.
// Included by websocket.hpp, after the class.
#pragma once

#include "plume/transport/websocket.hpp"

namespace plume::transport {

template <class Handler, class NextLayer>
SharedFrame Connection<Handler, NextLayer>::control_frame(opcode op, std::string_view payload) {
    if (role_ == role::client) {
        unsigned char mask[4];
        detail::random_mask(mask);
        return std::make_shared<const std::string>(make_frame(op, payload, true, false, mask));
    }
    return std::make_shared<const std::string>(make_frame(op, payload));
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::send_message(opcode op, std::string_view payload, Priority p,
                                                  const CoalesceKey& key) {
    if (state_ != state::open) return;
    bool compress = deflate_ && deflate_->should_compress(payload.size());
    if (compress) {
        thread_local std::string packed;
        packed.clear();
        deflate_->compress(payload, packed);
        payload = packed;
    }
    unsigned char mask[4];
    if (role_ == role::client) detail::random_mask(mask);
    auto frame = std::make_shared<const std::string>(
        make_frame(op, payload, true, compress, role_ == role::client ? mask : nullptr));
    enqueue_in_lane(std::move(frame), p, key);
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::queue_pong(std::string_view payload) {
    if (close_queued_) return;
    auto frame = control_frame(opcode::pong, payload);
    if (pong_slot_ != no_pong) {
        auto& waiting = queue_[pong_slot_];
        queued_bytes_ = queued_bytes_ - waiting->size() + frame->size();
        waiting = std::move(frame);
        return;
    }
    pong_slot_ = control_front_;
    enqueue(std::move(frame), true);
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::enqueue(SharedFrame frame, bool control, bool is_close) {
    if (state_ == state::closed || close_queued_) return;
    std::size_t size = frame->size();
    if (!control && !is_close && !make_room(size, options_->max_send_queue)) return overflow();
    if (is_close && lanes_) fold_lanes();  // the close frame goes last
    if (control)
        queue_.insert(queue_.begin() + static_cast<std::ptrdiff_t>(control_front_++),
                      std::move(frame));
    else
        queue_.push_back(std::move(frame));
    queued_bytes_ += size;
    if (!in_read_) flush();
}

template <class Handler, class NextLayer>
std::size_t Connection<Handler, NextLayer>::low_lane_limit() const noexcept {
    return options_->low_lane_limit ? options_->low_lane_limit : options_->max_send_queue / 2;
}

template <class Handler, class NextLayer>
std::size_t Connection<Handler, NextLayer>::lane_limit(Priority p) const noexcept {
    const std::size_t max = options_->max_send_queue;
    return p == Priority::critical ? max + max / 4 : max;
}

template <class Handler, class NextLayer>
bool Connection<Handler, NextLayer>::make_room(std::size_t size, std::size_t limit) {
    if (queued_bytes_ == 0 || queued_bytes_ + size <= limit) return true;
    if (!lanes_ || lanes_->low.empty()) return false;
    lanes_->stats.low_dropped += lanes_->low.size();
    queued_bytes_ -= lanes_->low_bytes;
    lanes_->low.clear();
    lanes_->low_bytes = 0;
    return queued_bytes_ == 0 || queued_bytes_ + size <= limit;
}

template <class Handler, class NextLayer>
typename Connection<Handler, NextLayer>::Lanes& Connection<Handler, NextLayer>::lanes() {
    if (!lanes_) {
        lanes_ = std::make_unique<Lanes>();
        limit_kernel_backlog();
    }
    return *lanes_;
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::enqueue_in_lane(SharedFrame frame, Priority p,
                                                     const CoalesceKey& key) {
    if (p == Priority::normal) return enqueue(std::move(frame), false);
    if (state_ == state::closed || close_queued_) return;
    const std::size_t size = frame->size();
    auto& l = lanes();
    switch (p) {
        case Priority::critical:
            if (!make_room(size, lane_limit(p))) return overflow(p);
            queue_.insert(queue_.begin() + static_cast<std::ptrdiff_t>(control_front_++),
                          std::move(frame));
            break;
        case Priority::high:
            if (!make_room(size, lane_limit(p))) return overflow(p);
            l.high.push_back(std::move(frame));
            break;
        default: {  // low
            if (key) {
                for (auto& w : l.low) {
                    if (w.key && *w.key == *key) {
                        queued_bytes_ = queued_bytes_ - w.frame->size() + size;
                        l.low_bytes = l.low_bytes - w.frame->size() + size;
                        w.frame = std::move(frame);
                        ++l.stats.low_coalesced;
                        return;
                    }
                }
            }
            if (queued_bytes_ > 0 && queued_bytes_ + size > low_lane_limit()) {
                ++l.stats.low_dropped;  // the waiting ones keep their place
                return;
            }
            l.low.push_back({std::move(frame), key});
            l.low_bytes += size;
            queued_bytes_ += size;
            return schedule_low();
        }
    }
    queued_bytes_ += size;
    if (!in_read_) flush();
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::schedule_low() {
    auto& l = *lanes_;
    if (l.tick_pending) return;
    if (!l.low_due && options_->low_lane_window.count() > 0 && start_low_tick()) return;
    l.low_due = true;
    if (!in_read_) flush();
}

template <class Handler, class NextLayer>
bool Connection<Handler, NextLayer>::start_low_tick() {
    auto& l = *lanes_;
    if (l.tick_pending) return true;
    l.tick_pending =
        detail::LaneTicker::of(get_executor())
            .schedule(options_->low_lane_window, get_executor(), this->shared_from_this(),
                      [](const std::shared_ptr<void>& owner) {
                          auto self = std::static_pointer_cast<Connection>(owner);
                          asio::dispatch(self->get_executor(),
                                         [self] { self->low_window_ended(); });
                      });
    return l.tick_pending;
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::low_window_ended() {
    if (!lanes_) return;
    auto& l = *lanes_;
    l.tick_pending = false;
    if (l.low.empty() || state_ == state::closed) return;
    if (l.behind && !pace_low()) {
        start_low_tick();  // the next window tries again
        return;
    }
    l.low_due = true;
    if (!in_read_) flush();
}

template <class Handler, class NextLayer>
bool Connection<Handler, NextLayer>::pace_low() {
    auto& l = *lanes_;
    const auto b = detail::tcp_backlog(layer_.lowest_layer());
    // The widest window of late: it decays, so one wide advertisement (or a
    // buffer the peer shrank since) cannot close the gate for good.
    l.widest_window = std::max(b.peer_window, l.widest_window - l.widest_window / 16);
    // Everything sent, and the peer's receive buffer (nearly) drained.
    const bool clear =
        !b.known || (b.unsent == 0 && b.peer_window >= l.widest_window - l.widest_window / 8);
    if (clear && queued_bytes_ <= options_->behind_write_bytes) {
        l.behind = false;  // caught up: everything queued fits one write
        return true;
    }
    if (clear) {
        l.quota = std::min<std::uint32_t>(l.quota + 1, Lanes::max_quota);
        l.allowance = l.quota;
    } else {
        l.quota = std::max<std::uint32_t>(1, l.quota / 2);
        l.allowance = 0;
    }
    return clear;
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::fold_lanes() {
    auto& l = *lanes_;
    queue_.insert(queue_.begin() + static_cast<std::ptrdiff_t>(control_front_),
                  std::make_move_iterator(l.high.begin()), std::make_move_iterator(l.high.end()));
    l.high.clear();
    for (auto& w : l.low)
        queue_.push_back(std::move(w.frame));
    l.stats.low_sent += l.low.size();
    l.low.clear();
    l.low_bytes = 0;
}

template <class Handler, class NextLayer>
bool Connection<Handler, NextLayer>::write_ready() const noexcept {
    if (!queue_.empty()) return true;
    if (!lanes_) return false;
    const auto& l = *lanes_;
    return !l.high.empty() || (l.low_due && !l.low.empty() && (!l.behind || l.allowance > 0));
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::take_queue() {
    if (lanes_ && lanes_->behind) return take_bounded(options_->behind_write_bytes);
    if (!lanes_ || (lanes_->high.empty() && lanes_->low.empty())) {
        std::swap(queue_, inflight_);
    } else {
        auto& l = *lanes_;
        inflight_.reserve(queue_.size() + l.high.size() + l.low.size());
        auto normal = queue_.begin() + static_cast<std::ptrdiff_t>(control_front_);
        std::move(queue_.begin(), normal, std::back_inserter(inflight_));
        std::move(l.high.begin(), l.high.end(), std::back_inserter(inflight_));
        std::move(normal, queue_.end(), std::back_inserter(inflight_));
        queue_.clear();
        l.high.clear();
        if (!l.low.empty()) {
            for (auto& w : l.low)
                inflight_.push_back(std::move(w.frame));
            l.stats.low_sent += l.low.size();
            ++l.stats.low_batches;
            l.low.clear();
            l.low_bytes = 0;
        }
        l.low_due = false;
    }
    control_front_ = 0;
    pong_slot_ = no_pong;
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::take_bounded(std::size_t cap) {
    auto& l = *lanes_;
    std::size_t taken = 0;
    // Moves frames from the front of [first, last) while under the cap (one
    // at least); returns how many.
    auto take = [&](auto first, auto last) {
        std::size_t n = 0;
        for (auto it = first; it != last && (inflight_.empty() || taken < cap); ++it, ++n) {
            taken += (*it)->size();
            inflight_.push_back(std::move(*it));
        }
        return n;
    };
    const auto front = static_cast<std::ptrdiff_t>(control_front_);
    const std::size_t control = take(queue_.begin(), queue_.begin() + front);
    std::size_t high = 0, normal = 0;
    if (control == control_front_) high = take(l.high.begin(), l.high.end());
    if (high == l.high.size()) normal = take(queue_.begin() + front, queue_.end());
    // Low frames within the window's allowance: a quarter of it (one at
    // least) on their own when the window has just ended, then one with
    // each write of the other lanes, so they spread over the window instead
    // of leaving in one burst that a critical frame would wait behind.
    std::size_t low = 0;
    if (control_front_ + normal == queue_.size() && l.allowance > 0 &&
        (l.low_due || !inflight_.empty())) {
        const std::size_t most = std::min<std::size_t>(
            {l.low_due ? std::max<std::uint32_t>(1, l.quota / 4) : 1, l.allowance, l.low.size()});
        for (; low < most && (inflight_.empty() || taken < cap); ++low) {
            taken += l.low[low].frame->size();
            l.low_bytes -= l.low[low].frame->size();
            inflight_.push_back(std::move(l.low[low].frame));
        }
    }

    queue_.erase(queue_.begin() + front,
                 queue_.begin() + front + static_cast<std::ptrdiff_t>(normal));
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(control));
    control_front_ -= control;
    if (pong_slot_ != no_pong) pong_slot_ = pong_slot_ < control ? no_pong : pong_slot_ - control;
    l.high.erase(l.high.begin(), l.high.begin() + static_cast<std::ptrdiff_t>(high));
    if (low == 0) return;
    l.low.erase(l.low.begin(), l.low.begin() + static_cast<std::ptrdiff_t>(low));
    l.stats.low_sent += low;
    ++l.stats.low_batches;
    l.allowance -= static_cast<std::uint32_t>(low);
    l.low_due = false;
    if (!l.low.empty()) start_low_tick();
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::limit_kernel_backlog() {
    const std::size_t bound = options_->behind_write_bytes;
    const std::size_t configured = options_->tcp_notsent_lowat;
    if (bound == 0 || (configured > 0 && configured <= bound)) return;
    detail::limit_unsent(layer_.lowest_layer(), bound);
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::fell_behind() {
    if (!lanes_ || options_->behind_write_bytes == 0 || options_->low_lane_window.count() == 0)
        return;
    auto& l = *lanes_;
    if (l.behind) return;
    l.behind = true;
    ++l.stats.fell_behind;
    l.quota = 1;
    l.allowance = 0;
    l.low_due = false;  // low frames wait for the next window, and go a few at a time
    if (!l.low.empty()) start_low_tick();
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::drain_mailbox(bool admitted) {
    if (!admitted && !admit_drain()) return;  // resumed by a later turn
    std::vector<SharedFrame> frames;
    std::vector<Tagged> tagged;
    std::uint64_t dropped = 0, coalesced = 0;
    bool overflowed;
    Priority overflow_lane;
    {
        std::lock_guard lock(mailbox_mutex_);
        frames.swap(mailbox_);
        mailbox_bytes_ = 0;
        if (tagged_) {
            tagged.swap(tagged_->frames);
            tagged_->bytes = 0;
            dropped = std::exchange(tagged_->dropped, 0);
            coalesced = std::exchange(tagged_->coalesced, 0);
        }
        drain_posted_ = false;
        overflowed = mailbox_overflow_;
        overflow_lane = std::exchange(mailbox_overflow_lane_, Priority::normal);
        mailbox_overflow_ = false;
    }
    if (dropped || coalesced) {
        lanes().stats.low_dropped += dropped;
        lanes().stats.low_coalesced += coalesced;
    }
    if (state_ != state::open) return;
    if (overflowed) return overflow(overflow_lane);
    bool corked = in_read_;
    in_read_ = true;  // queue them all, then one gathered write
    for (auto& f : frames)
        enqueue(std::move(f), false);
    for (auto& t : tagged)
        enqueue_in_lane(std::move(t.frame), t.priority, t.key);
    in_read_ = corked;
    if (!corked) flush();
}

template <class Handler, class NextLayer>
bool Connection<Handler, NextLayer>::admit_drain() {
    const std::size_t budget = options_->max_broadcast_bytes_per_turn;
    if (budget == 0 || state_ != state::open) return true;
    std::size_t bytes;
    {
        std::lock_guard lock(mailbox_mutex_);
        bytes = mailbox_bytes_ + (tagged_ ? tagged_->bytes : 0);
    }
    auto ex = get_executor();
    return detail::DrainTurns::of(ex).admit(
        bytes, budget, ex, this->shared_from_this(), [](const std::shared_ptr<void>& owner) {
            auto self = std::static_pointer_cast<Connection>(owner);
            asio::dispatch(self->get_executor(), [self] { self->drain_mailbox(true); });
        });
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::overflow(Priority lane) {
    if (lane != Priority::normal) lanes().stats.overflow_lane = lane;
    if (lanes_) {
        lanes_->stats.low_dropped += lanes_->low.size();
        lanes_->high.clear();
        lanes_->low.clear();
        lanes_->low_bytes = 0;
    }
    std::size_t kept = 0;
    for (std::size_t i = 0; i < control_front_; ++i)
        kept += queue_[i]->size();
    queue_.resize(control_front_);
    std::size_t inflight = 0;  // what the current write still has to send
    for (std::size_t i = inflight_pos_; i < inflight_.size(); ++i)
        inflight += inflight_[i]->size();
    queued_bytes_ = kept + inflight - (inflight_.empty() ? 0 : inflight_offset_);
    fail(to_int(close_code::policy_violation), "send queue overflow", true);
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::flush() {
    while (!writing_ && write_ready() && state_ != state::closed) {
        take_queue();
        inflight_pos_ = 0;
        inflight_offset_ = 0;
        if constexpr (traits::speculative) {
            // Usually everything fits in the socket's buffer: then no
            // asynchronous operation (and no completion handler) is needed.
            std::error_code ec;
            std::size_t n;
            do {
                n = write_some_inflight(ec);
                if (ec && ec != asio::error::would_block && ec != asio::error::try_again)
                    return transport_failed();
                advance_written(n);
            } while (!ec && n > 0 && inflight_pos_ < inflight_.size());
            if (inflight_pos_ == inflight_.size()) {
                write_done();
                continue;
            }
            fell_behind();
        }
        writing_ = true;
        asio::async_write(layer_, detail::FrameBuffers{&inflight_, inflight_pos_, inflight_offset_},
                          [self = this->shared_from_this()](std::error_code ec, std::size_t n) {
                              self->on_written(ec, n);
                          });
    }
    // Everything written, nothing waiting: it caught up (even without low frames to pace).
    if (lanes_ && lanes_->behind && !writing_ && queued_bytes_ == 0) lanes_->behind = false;
    maybe_shutdown();
}

// Asio hands the kernel at most 64 buffers per system call, and a burst of
// broadcasts gives a subscriber hundreds of frames of ~100 bytes: written
// from their own buffers, that is a sendmsg per 64 frames, and the kernel
// walks one segment per frame. On a plain stream, a run of small frames is
// copied into one per-thread buffer (up to cork_bytes) and leaves with one
// system call, as uWebSockets' cork buffer does. The copy lives only for the
// call: what the socket does not take stays in inflight_, as before. A TLS
// stream gathers its writes into one record itself.
template <class Handler, class NextLayer>
std::size_t Connection<Handler, NextLayer>::write_some_inflight(std::error_code& ec) {
    constexpr std::size_t cork_bytes = 64 * 1024;  // what one call copies at most
    constexpr std::size_t small_frame = 1024;      // larger ones are not copied
    const std::size_t pending = inflight_.size() - inflight_pos_;
    std::string_view first = std::string_view(*inflight_[inflight_pos_]).substr(inflight_offset_);
    std::size_t n;
    if (pending == 1) {  // one buffer: send(), not sendmsg() with an iovec
        n = layer_.write_some(asio::buffer(first), ec);
        return ec ? 0 : n;
    }
    if constexpr (!traits::is_tls) {
        if (first.size() <= small_frame && inflight_[inflight_pos_ + 1]->size() <= small_frame) {
            thread_local std::string cork;
            cork.assign(first);
            std::size_t i = inflight_pos_ + 1;
            while (i < inflight_.size() && inflight_[i]->size() <= small_frame &&
                   cork.size() + inflight_[i]->size() <= cork_bytes)
                cork.append(*inflight_[i++]);
            n = layer_.write_some(asio::buffer(cork), ec);
            return ec ? 0 : n;
        }
    }
    n = layer_.write_some(detail::FrameBuffers{&inflight_, inflight_pos_, inflight_offset_}, ec);
    return ec ? 0 : n;
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::advance_written(std::size_t n) {
    queued_bytes_ -= std::min(n, queued_bytes_);
    while (n > 0 && inflight_pos_ < inflight_.size()) {
        std::size_t left = inflight_[inflight_pos_]->size() - inflight_offset_;
        if (n < left) {
            inflight_offset_ += n;
            return;
        }
        n -= left;
        ++inflight_pos_;
        inflight_offset_ = 0;
    }
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::write_done() {
    inflight_.clear();
    if (inflight_.capacity() > 64) std::vector<SharedFrame>().swap(inflight_);
}

template <class Handler, class NextLayer>
void Connection<Handler, NextLayer>::on_written(std::error_code ec, std::size_t n) {
    writing_ = false;
    if (state_ == state::closed) return close_if_idle();
    if (ec) return transport_failed();
    advance_written(n);
    write_done();
    flush();
}

}  // namespace plume::transport
