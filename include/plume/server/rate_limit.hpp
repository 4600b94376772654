// plume/server/rate_limit.hpp — token buckets: how often a peer may do
// something, and what it is told when it does it too often.
//
//   plume::server::RateLimit limit{.per_second = 5, .burst = 10};
//   plume::server::TokenBucket bucket;               // starts full
//   if (!bucket.take(limit, std::chrono::steady_clock::now())) refuse();
//
// A bucket holds up to `burst` tokens and gains `per_second` tokens a second;
// each action takes one. A RateLimit with per_second == 0 is off. A bucket is
// 8 bytes (a float and a millisecond clock), so one per connection is cheap.
// AddressLimiter keeps one bucket per client address (IPv4 address, or IPv6
// /64 prefix: one host usually owns a whole /64), bounded in memory.
#pragma once

#include <asio.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace plume::server {

struct RateLimit {
    /// Sustained rate; 0 turns the limit off.
    double per_second = 0;
    /// How many may happen at once after a quiet period.
    double burst = 0;

    bool enabled() const noexcept { return per_second > 0; }
};

class TokenBucket {
  public:
    using clock = std::chrono::steady_clock;

    /// Takes one token if there is one. An off limit always admits.
    bool take(const RateLimit& limit, clock::time_point now) noexcept {
        if (!limit.enabled()) return true;
        refill(limit, now);
        if (tokens_ < 1.0f) return false;
        tokens_ -= 1.0f;
        return true;
    }

    /// Seconds until take() would succeed (0 if it would now); at least 1
    /// when not 0, as HTTP's Retry-After counts whole seconds.
    unsigned retry_after(const RateLimit& limit, clock::time_point now) noexcept {
        if (!limit.enabled()) return 0;
        refill(limit, now);
        if (tokens_ >= 1.0f) return 0;
        auto s = std::ceil((1.0 - static_cast<double>(tokens_)) / limit.per_second);
        return static_cast<unsigned>(std::max(1.0, s));
    }

    /// True once the bucket has refilled completely: it remembers nothing.
    bool full(const RateLimit& limit, clock::time_point now) noexcept {
        refill(limit, now);
        return static_cast<double>(tokens_) >= std::max(1.0, limit.burst);
    }

  private:
    static std::uint32_t ms(clock::time_point t) noexcept {
        return static_cast<std::uint32_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
    }

    void refill(const RateLimit& limit, clock::time_point now) noexcept {
        double cap = std::max(1.0, limit.burst);
        auto t = ms(now);
        if (tokens_ < 0) {  // first use: full
            tokens_ = static_cast<float>(cap);
            last_ms_ = t;
            return;
        }
        // Unsigned difference: correct across the 49-day wrap of the clock.
        std::uint32_t elapsed = t - last_ms_;
        if (elapsed == 0) return;
        last_ms_ = t;
        double next = static_cast<double>(tokens_) + elapsed * limit.per_second / 1000.0;
        tokens_ = static_cast<float>(std::min(cap, next));
    }

    float tokens_ = -1;  // negative: never used yet
    std::uint32_t last_ms_ = 0;
};

/// One bucket per client address, shared by every thread of an endpoint.
class AddressLimiter {
  public:
    using clock = TokenBucket::clock;

    /// At most this many addresses are remembered; beyond it, addresses whose
    /// bucket has refilled are forgotten, and if none has, new addresses are
    /// admitted untracked (failing open rather than refusing strangers).
    static constexpr std::size_t max_tracked = 1 << 16;

    /// 0 when `peer` may connect now, else the seconds to wait (Retry-After).
    unsigned admit(const RateLimit& limit, const asio::ip::address& peer, clock::time_point now) {
        if (!limit.enabled()) return 0;
        Key key = key_of(peer);
        std::lock_guard lock(mutex_);
        auto it = buckets_.find(key);
        if (it == buckets_.end()) {
            if (buckets_.size() >= max_tracked) {
                for (auto i = buckets_.begin(); i != buckets_.end();)
                    i = i->second.full(limit, now) ? buckets_.erase(i) : std::next(i);
                if (buckets_.size() >= max_tracked) return 0;
            }
            it = buckets_.emplace(key, TokenBucket{}).first;
        }
        if (it->second.take(limit, now)) return 0;
        return it->second.retry_after(limit, now);
    }

    std::size_t tracked() const {
        std::lock_guard lock(mutex_);
        return buckets_.size();
    }

  private:
    using Key = std::array<unsigned char, 9>;  // family byte + 8 address bytes
    struct KeyHash {
        std::size_t operator()(const Key& k) const noexcept {
            std::uint64_t h = 1469598103934665603ull;
            for (auto b : k)
                h = (h ^ b) * 1099511628211ull;
            return static_cast<std::size_t>(h);
        }
    };

    static Key key_of(const asio::ip::address& a) {
        Key k{};
        if (a.is_v6() && a.to_v6().is_v4_mapped())
            return key_of(asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()));
        if (a.is_v4()) {
            k[0] = 4;
            auto b = a.to_v4().to_bytes();
            std::copy(b.begin(), b.end(), k.begin() + 1);
        } else {
            k[0] = 6;
            auto b = a.to_v6().to_bytes();
            std::copy(b.begin(), b.begin() + 8, k.begin() + 1);  // the /64
        }
        return k;
    }

    mutable std::mutex mutex_;
    std::unordered_map<Key, TokenBucket, KeyHash> buckets_;
};

}  // namespace plume::server
