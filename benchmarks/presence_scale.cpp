// presence_scale — what presence costs for one big topic.
//
// --users presences join one topic, one per channel (owner), spread evenly
// over --join-ms of simulated time (a manual clock: the figures do not depend
// on how fast this machine sleeps). It prints:
//   * the time to track them all (wall clock, per track);
//   * the diffs produced (count and bytes of the presence_diff payloads, and
//     the frames a broadcast to every one of the users would send) with
//     coalescing off and with a --window ms window, for the joins and then for
//     everyone leaving;
//   * the heap bytes per tracked presence (a counting operator new), and the
//     RSS growth per presence;
//   * replication: the size of the heartbeat that carries all of them and the
//     time a second replica takes to apply it; list() and presence_state times.
//
//   presence_scale                          # 10,000 users, 50 ms window
//   presence_scale --users 50000 --window 100 --join-ms 10000
#include <unistd.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <new>
#include <string>

#include <plume/presence.hpp>

#include "support/bench_support.hpp"

// --- a counting allocator: live heap bytes ---------------------------------

namespace {
std::atomic<long long> g_live{0};
std::atomic<long long> g_allocs{0};
constexpr std::size_t header = alignof(std::max_align_t);
}  // namespace

void* operator new(std::size_t n) {
    auto* p = static_cast<char*>(std::malloc(n + header));
    if (!p) throw std::bad_alloc();
    *reinterpret_cast<std::size_t*>(p) = n;
    g_live += static_cast<long long>(n);
    ++g_allocs;
    return p + header;
}
void operator delete(void* p) noexcept {
    if (!p) return;
    auto* base = static_cast<char*>(p) - header;
    g_live -= static_cast<long long>(*reinterpret_cast<std::size_t*>(base));
    std::free(base);
}
void operator delete(void* p, std::size_t) noexcept {
    operator delete(p);
}
void* operator new[](std::size_t n) {
    return operator new(n);
}
void operator delete[](void* p) noexcept {
    operator delete(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    operator delete(p);
}

namespace {

using Clock = std::chrono::steady_clock;
namespace presence = plume::presence;

long rss_kib() {
    std::ifstream in("/proc/self/statm");
    long size = 0, resident = 0;
    in >> size >> resident;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

/// Two nodes in one process: what one publishes, the other receives at once.
struct Wire {
    std::function<void(plume::pubsub::MessagePtr)> to[2];
    std::size_t bytes = 0;
    std::size_t messages = 0;
};

class PairAdapter {
  public:
    PairAdapter(Wire& w, int side) : w_(&w), side_(side) {}
    std::string_view node_name() const noexcept { return side_ == 0 ? "a" : "b"; }
    void start(std::function<void(plume::pubsub::MessagePtr)> d) { w_->to[side_] = std::move(d); }
    void publish(const plume::pubsub::MessagePtr& m) { send(m); }
    void publish_to(std::string_view, const plume::pubsub::MessagePtr& m) { send(m); }
    void stop() { w_->to[side_] = nullptr; }

  private:
    void send(const plume::pubsub::MessagePtr& m) {
        w_->bytes += m->payload.dump().size();
        ++w_->messages;
        if (auto& peer = w_->to[1 - side_]) peer(m);
    }
    Wire* w_;
    int side_;
};

struct DiffCount {
    std::size_t diffs = 0;
    std::size_t bytes = 0;
};

struct Run {
    double track_ms = 0;
    DiffCount joins, leaves;
};

/// Tracks `users` presences over `join_ms` of simulated time, then untracks them
/// all over the same span; counts the presence_diff payloads.
Run run_diffs(int users, std::chrono::milliseconds window, int join_ms) {
    struct ManualClock {
        Clock::time_point now{std::chrono::hours(1)};
    } clock;
    plume::pubsub::PubSub<> ps;
    presence::PresenceOptions o;
    o.tracker.clock = [&] { return clock.now; };
    o.tracker.diff_window = window;
    DiffCount* counting = nullptr;
    o.on_diff = [&](const std::string&, const nlohmann::json& payload) {
        ++counting->diffs;
        counting->bytes += payload.dump().size();
    };
    Run run;
    presence::Presence p(ps, o);
    const auto step = std::chrono::microseconds(join_ms * 1000LL / users);
    auto phase = [&](DiffCount& into, bool join) {
        counting = &into;
        for (int i = 0; i < users; ++i) {
            const auto owner = static_cast<presence::OwnerId>(i + 1);
            if (join)
                (void)p.track(owner, "room:lobby", std::to_string(owner),
                              {{"online_at", "1700000000"}, {"device", "browser"}});
            else
                (void)p.untrack_all(owner);
            clock.now += step;
            if (window.count() > 0 && i % 16 == 0) p.tick();  // a timer would, every few ms
        }
        clock.now += window;
        p.tick();
        p.flush();
    };
    const auto t0 = Clock::now();
    phase(run.joins, true);
    run.track_ms = ms_since(t0);
    phase(run.leaves, false);
    return run;
}

}  // namespace

int main(int argc, char** argv) try {
    plume_bench::CliArgs args(argc, argv, {});
    const int users = static_cast<int>(args.number("users", 10000));
    const auto window = std::chrono::milliseconds(static_cast<long>(args.number("window", 50)));
    const int join_ms = static_cast<int>(args.number("join-ms", 5000));
    args.finish();

    std::printf("presence_scale: %d users on one topic, joining over %d ms (simulated)\n\n", users,
                join_ms);

    // --- memory per presence, and replication --------------------------------
    {
        Wire wire;
        plume::pubsub::PubSub<PairAdapter> pa(PairAdapter(wire, 0)), pb(PairAdapter(wire, 1));
        Clock::time_point now{std::chrono::hours(1)};
        presence::TrackerOptions o;
        o.clock = [&] { return now; };
        o.diff_window = std::chrono::milliseconds(0);  // no diffs held back while measuring
        presence::Tracker a(pa, o);
        presence::Tracker b(pb, o);
        a.tick();  // announce both, so the big heartbeat below is a plain delta
        b.tick();
        b.poll();
        a.poll();
        now += o.broadcast_period;

        const long long heap0 = g_live;
        const long long allocs0 = g_allocs;
        const long rss0 = rss_kib();
        auto t0 = Clock::now();
        for (int i = 0; i < users; ++i) {
            const auto owner = static_cast<presence::OwnerId>(i + 1);
            (void)a.track(owner, "room:lobby", std::to_string(owner),
                          {{"online_at", "1700000000"}, {"device", "browser"}});
        }
        const double track_ms = ms_since(t0);
        const long long heap1 = g_live;
        const long long allocs1 = g_allocs;
        const long rss1 = rss_kib();

        const std::size_t bytes_before = wire.bytes;
        t0 = Clock::now();
        a.tick();  // one heartbeat with every presence
        const double encode_ms = ms_since(t0);
        const std::size_t heartbeat_bytes = wire.bytes - bytes_before;
        t0 = Clock::now();
        b.poll();
        const double apply_ms = ms_since(t0);

        t0 = Clock::now();
        auto l = b.list("room:lobby");
        const double list_ms = ms_since(t0);
        t0 = Clock::now();
        const auto state = presence::to_json(l).dump();
        const double state_ms = ms_since(t0);

        std::printf("\nmemory (tracking replica, %d presences, diffs off)\n", users);
        std::printf(
            "  live heap per presence:       %8.0f bytes  (%.1f allocations per track, incl. the "
            "meta)\n",
            static_cast<double>(heap1 - heap0) / users,
            static_cast<double>(allocs1 - allocs0) / users);
        std::printf("  RSS growth per presence:      %8.0f bytes\n",
                    (rss1 - rss0) * 1024.0 / users);
        std::printf("  track them all (no handler):  %8.1f ms  (%.2f us per track)\n", track_ms,
                    track_ms * 1000 / users);
        std::printf("\nreplication to a second replica\n");
        std::printf(
            "  heartbeat with all of them:   %8zu bytes  (%.0f per presence), built+serialized in "
            "%.1f ms\n",
            heartbeat_bytes, static_cast<double>(heartbeat_bytes) / users, encode_ms);
        std::printf("  applied by the other replica: %8.1f ms, which then lists %zu\n", apply_ms,
                    l.size());
        std::printf(
            "  list() on it:                 %8.2f ms;  presence_state JSON: %zu bytes in "
            "%.1f ms\n",
            list_ms, state.size(), state_ms);
    }

    // --- diffs, coalescing off and on ---------------------------------------
    const Run off = run_diffs(users, std::chrono::milliseconds(0), join_ms);
    const Run on = run_diffs(users, window, join_ms);
    std::printf("\ndiffs (\"to all\": if each diff is broadcast to all %d users)\n", users);
    std::printf("track %d presences, building and serializing every diff: %.1f ms (%.2f us each)\n",
                users, off.track_ms, off.track_ms * 1000 / users);
    std::printf("%-28s %8s %12s %16s %16s\n", "presence_diff payloads", "diffs", "bytes",
                "frames to all", "bytes to all");
    auto row = [&](const char* what, const DiffCount& d) {
        std::printf("%-28s %8zu %12zu %16.0f %16.0f\n", what, d.diffs, d.bytes,
                    static_cast<double>(d.diffs) * users, static_cast<double>(d.bytes) * users);
    };
    row("joins, coalescing off", off.joins);
    char label[64];
    std::snprintf(label, sizeof label, "joins, %ld ms window", static_cast<long>(window.count()));
    row(label, on.joins);
    row("leaves, coalescing off", off.leaves);
    std::snprintf(label, sizeof label, "leaves, %ld ms window", static_cast<long>(window.count()));
    row(label, on.leaves);

    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "presence_scale: %s\n", e.what());
    return 1;
}
