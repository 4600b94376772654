// join_storm — N users join one presence topic at once: how long until every
// join is answered, what the presence traffic costs, and whether a bystander
// stays responsive meanwhile.
//
// Spawns examples/chat (--port 0 --threads 1, plus any arguments after `--`),
// joins a bystander to room:lobby that pushes "ping" every --ping-ms and times
// each reply (on its own client thread), opens --users Phoenix V2 sockets
// (?vsn=2.0.0&user_id=uNNNN, from 127.0.0.2, 127.0.0.3, ...), then sends every
// one's phx_join for room:lobby in one go (or spread evenly over --over
// seconds, with each join's reply latency reported). Every client reads everything it
// receives (join reply, presence_state, presence_diffs), so no one is a slow
// reader. Every --check-every-th client (and the first, the last and the
// bystander) also rebuilds its presence list from presence_state and
// presence_diff exactly as phoenix.js's Presence does (diffs before the state
// are held back; syncState, then syncDiff by phx_ref); at the end each of
// those lists must hold the --users joiners plus the bystander, one meta
// each, and all must be equal. It prints the time to the last join reply, the
// joins replied, presence_state and presence_diff frames and bytes received
// in all, the bystander's ping latency (p50/p99/max) from the first join sent
// until the presence traffic ends, and the server's CPU seconds over the same
// span. Bounded by --timeout seconds; the server is stopped by its PID.
//
//   join_storm                                     # 5,000 users, presence on
//   join_storm --users 2000 -- --no-presence       # the same without presence
//   join_storm --users 10000 --over 10             # 1,000 joins a second for 10 s
//   join_storm --server /tmp/chat_before           # another build of the chat
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/bench_support.hpp"
#include "support/ws_load_client.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using namespace plume_bench;

struct Config {
    std::string server = "build/release/examples/chat/chat";
    std::vector<std::string> server_args;
    int users = 5000;
    int per_source = 1000;
    int concurrency = 500;
    int check_every = 100;
    double ping_ms = 100;
    double quiet = 1.0;
    double over = 0;  // seconds the joins are spread over (0: all at once)
    double timeout = 90;
    bool show_server_output = false;
};

std::span<const std::uint8_t> as_bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string_view as_text(std::span<const std::uint8_t> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// A presence list as phoenix.js's Presence keeps it, reduced to what the check
/// needs: key -> the phx_refs of its metas. Diffs that arrive before the
/// state are held back and applied after it, as presence.js does.
class PresenceView {
  public:
    void on_state(const json& state) {
        // syncState: keys absent from the new state leave; for the others the
        // new refs join and the vanished ones leave; the result is the new state.
        std::map<std::string, std::vector<std::string>> next;
        for (const auto& [key, presence] : state.items())
            next[key] = refs_of(presence);
        list_ = std::move(next);
        synced_ = true;
        for (const auto& d : pending_)
            sync_diff(d);
        pending_.clear();
    }
    void on_diff(json diff) {
        if (!synced_) return pending_.push_back(std::move(diff));
        sync_diff(diff);
    }
    bool synced() const { return synced_; }
    std::size_t size() const { return list_.size(); }
    const std::map<std::string, std::vector<std::string>>& list() const { return list_; }

  private:
    static std::vector<std::string> refs_of(const json& presence) {
        std::vector<std::string> out;
        for (const auto& m : presence.at("metas"))
            out.push_back(m.at("phx_ref").get<std::string>());
        return out;
    }
    // syncDiff: joins first (the joined metas replace the key's entry, current
    // metas with other refs are kept in front), then leaves by phx_ref.
    void sync_diff(const json& diff) {
        for (const auto& [key, presence] : diff.at("joins").items()) {
            auto joined = refs_of(presence);
            std::vector<std::string> merged;
            if (auto it = list_.find(key); it != list_.end())
                for (auto& r : it->second)
                    if (std::find(joined.begin(), joined.end(), r) == joined.end())
                        merged.push_back(r);
            merged.insert(merged.end(), joined.begin(), joined.end());
            list_[key] = std::move(merged);
        }
        for (const auto& [key, presence] : diff.at("leaves").items()) {
            auto it = list_.find(key);
            if (it == list_.end()) continue;
            for (const auto& r : refs_of(presence))
                std::erase(it->second, r);
            if (it->second.empty()) list_.erase(it);
        }
    }

    std::map<std::string, std::vector<std::string>> list_;
    std::vector<json> pending_;
    bool synced_ = false;
};

/// What one client saw; only the checked ones keep a PresenceView.
struct Client {
    std::shared_ptr<LoadConnection> conn;
    bool opened = false;
    bool replied = false;
    Clock::time_point join_sent{};
    std::optional<PresenceView> view;
};

struct Totals {
    std::uint64_t state_frames = 0, state_bytes = 0;
    std::uint64_t diff_frames = 0, diff_bytes = 0;
    std::uint64_t other_frames = 0;
    int joins_replied = 0, joins_refused = 0;
    Clock::time_point last_reply{}, last_message{};
    LatencyHistogram join_latency;  // phx_join sent to its reply
    int closed = 0;
};

enum class Kind { reply, state, diff, other };

/// The event of a V2 frame ["join_ref","ref","topic","event",payload] without
/// parsing the payload: this topic and these events contain no commas or quotes.
Kind kind_of(std::string_view text) {
    const auto head = text.substr(0, 96);
    if (head.find(",\"presence_diff\",") != std::string_view::npos) return Kind::diff;
    if (head.find(",\"presence_state\",") != std::string_view::npos) return Kind::state;
    if (head.find(",\"phx_reply\",") != std::string_view::npos) return Kind::reply;
    return Kind::other;
}

/// The bystander: joined before the storm, pings on its own thread and io_context.
class Bystander {
  public:
    Bystander(const Config& config, const asio::ip::tcp::endpoint& server,
              const std::string& host_header)
        : config_(config), timer_(io_) {
        LoadConnection::Options o;
        o.host_header = host_header;
        o.path = "/socket/websocket?vsn=2.0.0&user_id=bystander";
        conn_ = LoadConnection::create(io_, o, random_seed());
        conn_->on_message([this](Opcode, std::span<const std::uint8_t> p) { on_message(p); });
        conn_->on_closed([this](std::error_code, std::string_view why) {
            if (stopping_) return;
            report("bystander closed: " + std::string(why));
            failed_ = true;
        });
        conn_->async_open(server, std::nullopt, [this](std::error_code ec, std::string_view why) {
            if (ec) {
                report("bystander open failed: " + ec.message() + " " + std::string(why));
                failed_ = true;
                return;
            }
            conn_->send(Opcode::text, as_bytes(R"(["1","1","room:lobby","phx_join",{}])"));
        });
        thread_ = std::thread([this] {
            auto guard = asio::make_work_guard(io_);
            io_.run();
        });
    }
    ~Bystander() { stop(); }

    void stop() {
        if (!thread_.joinable()) return;
        asio::post(io_, [this] {
            stopping_ = true;
            timer_.cancel();
            conn_->abort();
            io_.stop();
        });
        thread_.join();
    }

    std::atomic<bool> joined_{false}, failed_{false};

    /// Latencies recorded while `recording` (replies still missing count as now - sent).
    void set_recording(bool on) {
        std::lock_guard lock(mutex_);
        if (!on) {
            const auto now = Clock::now();
            for (const auto& [ref, sent] : outstanding_)
                hist_.record(static_cast<std::uint64_t>((now - sent).count()));
            unanswered_ += outstanding_.size();
            outstanding_.clear();
        }
        recording_ = on;
    }
    LatencyHistogram histogram() {
        std::lock_guard lock(mutex_);
        return hist_;
    }
    std::size_t unanswered() {
        std::lock_guard lock(mutex_);
        return unanswered_;
    }
    std::optional<PresenceView> view() {
        std::lock_guard lock(mutex_);
        return view_;
    }

  private:
    void report(const std::string& s) { std::fprintf(stderr, "join_storm: %s\n", s.c_str()); }

    void on_message(std::span<const std::uint8_t> payload) {
        json m;
        try {
            m = json::parse(as_text(payload));
        } catch (const std::exception&) {
            return report("bystander: unparsable frame");
        }
        if (!m.is_array() || m.size() < 5) return;
        const std::string event = m[3].get<std::string>();
        std::lock_guard lock(mutex_);
        if (event == "presence_state") return view_.on_state(m[4]);
        if (event == "presence_diff") return view_.on_diff(std::move(m[4]));
        if (event != "phx_reply" || !m[1].is_string()) return;
        const std::string ref = m[1].get<std::string>();
        if (ref == "1") {
            if (!joined_.exchange(true)) schedule_ping();
            return;
        }
        auto it = outstanding_.find(ref);
        if (it == outstanding_.end()) return;
        hist_.record(static_cast<std::uint64_t>((Clock::now() - it->second).count()));
        outstanding_.erase(it);
    }

    void schedule_ping() {
        timer_.expires_after(std::chrono::microseconds(static_cast<long>(config_.ping_ms * 1000)));
        timer_.async_wait([this](std::error_code ec) {
            if (ec) return;
            const std::string ref = std::to_string(++next_ref_);
            {
                std::lock_guard lock(mutex_);
                if (recording_) outstanding_[ref] = Clock::now();
            }
            const std::string frame = R"(["1",")" + ref + R"(","room:lobby","ping",{}])";
            conn_->send(Opcode::text, as_bytes(frame));
            // A heartbeat now and then keeps the server's idle timeout away.
            if (next_ref_ % 100 == 0)
                conn_->send(Opcode::text, as_bytes(R"([null,"hb","phoenix","heartbeat",{}])"));
            schedule_ping();
        });
    }

    const Config& config_;
    asio::io_context io_;
    asio::steady_timer timer_;
    std::shared_ptr<LoadConnection> conn_;
    std::thread thread_;
    std::uint64_t next_ref_ = 1;
    bool stopping_ = false;

    std::mutex mutex_;
    bool recording_ = false;
    std::map<std::string, Clock::time_point> outstanding_;
    LatencyHistogram hist_;
    std::size_t unanswered_ = 0;
    PresenceView view_;
};

void print_usage() {
    std::fputs(
        "usage: join_storm [--server build/release/examples/chat/chat] [--users 5000]\n"
        "         [--per-source 1000] [--concurrency 500] [--check-every 100]\n"
        "         [--ping-ms 100] [--quiet 1] [--over 0] [--timeout 90] [--server-output]\n"
        "         [-- SERVER ARGS...]\n",
        stderr);
}

std::string ms(double seconds) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f ms", seconds * 1000);
    return buf;
}

std::string ms_ns(std::uint64_t ns) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(ns) / 1e6);
    return buf;
}

int run(const Config& config) {
    require_fd_limit(config.users + 16);
    const int sources = (config.users + config.per_source - 1) / config.per_source;
    if (sources > 253) throw std::runtime_error("too many source addresses; raise --per-source");

    ServerProcess server;
    // --no-rate-limits: the storm's users come from five loopback addresses,
    // where real users would each have their own (the per-address connection
    // limit would refuse most of them; benchmarks/abuse gives each its own).
    std::vector<std::string> args{"--port", "0", "--threads", "1", "--no-rate-limits"};
    args.insert(args.end(), config.server_args.begin(), config.server_args.end());
    server.start(config.server, args, std::chrono::seconds(15), config.show_server_output);
    const std::string host = server.host().empty() ? "127.0.0.1" : server.host();
    const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(host), server.port());
    const std::string host_header = host + ":" + std::to_string(server.port());
    const auto hard_deadline =
        Clock::now() + std::chrono::milliseconds(static_cast<long>(config.timeout * 1000));

    Bystander bystander(config, endpoint, host_header);
    while (!bystander.joined_ && !bystander.failed_ && Clock::now() < hard_deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (!bystander.joined_) {
        std::fprintf(stderr, "join_storm: the bystander did not join\n");
        return 1;
    }

    // Open every client (not joined yet), at most --concurrency handshakes at a time.
    asio::io_context io{1};
    std::vector<Client> clients(static_cast<std::size_t>(config.users));
    Totals totals;
    const auto checked = [&](int i) {
        return i == 0 || i == config.users - 1 ||
               (config.check_every > 0 && i % config.check_every == 0);
    };
    bool finished = false;
    int next = 0, in_flight = 0, opened = 0, open_failed = 0;
    std::function<void()> open_more = [&] {
        while (in_flight < config.concurrency && next < config.users) {
            const int i = next++;
            LoadConnection::Options o;
            o.host_header = host_header;
            o.path = "/socket/websocket?vsn=2.0.0&user_id=u" + std::to_string(i);
            o.read_buffer = 4096;
            auto& c = clients[static_cast<std::size_t>(i)];
            c.conn = LoadConnection::create(io, o, random_seed());
            if (checked(i)) c.view.emplace();
            c.conn->on_message([&, i](Opcode, std::span<const std::uint8_t> p) {
                auto& cl = clients[static_cast<std::size_t>(i)];
                const auto text = as_text(p);
                totals.last_message = Clock::now();
                const Kind k = kind_of(text);
                switch (k) {
                    case Kind::reply:
                        if (!cl.replied && text.starts_with(R"(["1","1",)")) {
                            cl.replied = true;
                            totals.last_reply = totals.last_message;
                            totals.join_latency.record(static_cast<std::uint64_t>(
                                std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    totals.last_reply - cl.join_sent)
                                    .count()));
                            if (text.find(R"("status":"ok")") != std::string_view::npos)
                                ++totals.joins_replied;
                            else
                                ++totals.joins_refused;
                        } else {
                            ++totals.other_frames;
                        }
                        break;
                    case Kind::state:
                        ++totals.state_frames;
                        totals.state_bytes += text.size();
                        break;
                    case Kind::diff:
                        ++totals.diff_frames;
                        totals.diff_bytes += text.size();
                        break;
                    case Kind::other:
                        ++totals.other_frames;
                        break;
                }
                if (cl.view && (k == Kind::state || k == Kind::diff)) {
                    auto m = json::parse(text);
                    if (k == Kind::state)
                        cl.view->on_state(m[4]);
                    else
                        cl.view->on_diff(std::move(m[4]));
                }
            });
            c.conn->on_closed([&, i](std::error_code ec, std::string_view why) {
                if (finished) return;
                ++totals.closed;
                if (totals.closed <= 5)
                    std::fprintf(stderr, "join_storm: client %d closed: %s (%s)\n", i,
                                 ec.message().c_str(), std::string(why).c_str());
            });
            const auto source =
                asio::ip::address_v4((127u << 24) | static_cast<unsigned>(2 + i % sources));
            ++in_flight;
            c.conn->async_open(endpoint, asio::ip::address(source),
                               [&, i](std::error_code ec, std::string_view why) {
                                   --in_flight;
                                   if (ec) {
                                       if (++open_failed <= 5)
                                           std::fprintf(stderr, "join_storm: open %d: %s (%s)\n", i,
                                                        ec.message().c_str(),
                                                        std::string(why).c_str());
                                   } else {
                                       clients[static_cast<std::size_t>(i)].opened = true;
                                       ++opened;
                                   }
                                   open_more();
                               });
        }
    };
    open_more();
    while (opened + open_failed < config.users && Clock::now() < hard_deadline)
        io.run_one_for(std::chrono::milliseconds(50));
    if (opened < config.users) {
        std::fprintf(stderr, "join_storm: only %d of %d sockets opened\n", opened, config.users);
        return 1;
    }
    std::fprintf(stderr, "join_storm: %d sockets open; the storm begins\n", opened);

    // The storm: every phx_join at once, or the i-th at i × --over / --users.
    const double cpu_before = proc_cpu_seconds(server.pid()).value_or(-1);
    const double self_before = self_cpu_seconds();
    const MachineCpu machine_before = machine_cpu();
    bystander.set_recording(true);
    const auto t0 = Clock::now();
    totals.last_message = t0;
    int joins_sent = 0;
    const auto send_joins_due = [&](Clock::time_point now) {
        const double due = config.over > 0 ? std::chrono::duration<double>(now - t0).count() /
                                                 config.over * config.users
                                           : config.users;
        for (; joins_sent < config.users && joins_sent <= due; ++joins_sent) {
            auto& c = clients[static_cast<std::size_t>(joins_sent)];
            c.join_sent = now;
            c.conn->send(Opcode::text, as_bytes(R"(["1","1","room:lobby","phx_join",{}])"));
        }
    };
    send_joins_due(t0);

    // Until every join is answered and the presence traffic has stopped for --quiet s.
    const auto quiet = std::chrono::milliseconds(static_cast<long>(config.quiet * 1000));
    auto last_heartbeat = t0;
    auto last_progress = t0;
    while (Clock::now() < hard_deadline) {
        io.run_one_for(std::chrono::milliseconds(joins_sent < config.users ? 2 : 20));
        for (int k = 0; k < 256 && io.poll_one(); ++k) {
        }
        const auto now = Clock::now();
        send_joins_due(now);
        const bool all_answered =
            totals.joins_replied + totals.joins_refused + totals.closed >= config.users;
        if (all_answered && now - totals.last_message >= quiet) break;
        if (now - last_heartbeat > std::chrono::seconds(25)) {
            last_heartbeat = now;
            for (auto& c : clients)
                c.conn->send(Opcode::text, as_bytes(R"([null,"hb","phoenix","heartbeat",{}])"));
        }
        if (now - last_progress > std::chrono::seconds(5)) {
            last_progress = now;
            std::fprintf(stderr, "join_storm: %.0f s: %d joins replied, %llu diff frames...\n",
                         std::chrono::duration<double>(now - t0).count(), totals.joins_replied,
                         static_cast<unsigned long long>(totals.diff_frames));
        }
    }
    const auto t_end = totals.last_message;
    const bool timed_out = Clock::now() >= hard_deadline;
    bystander.set_recording(false);
    const double cpu_after = proc_cpu_seconds(server.pid()).value_or(-1);
    const double self_cpu = self_cpu_seconds() - self_before;
    const MachineCpu machine_after = machine_cpu();
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();

    // The presence lists of the checked clients and the bystander.
    std::vector<std::pair<std::string, PresenceView>> views;
    for (int i = 0; i < config.users; ++i)
        if (auto& v = clients[static_cast<std::size_t>(i)].view)
            views.emplace_back("u" + std::to_string(i), *v);
    if (auto v = bystander.view()) views.emplace_back("bystander", *v);
    int good = 0;
    std::string first_bad;
    const auto& reference = views.front().second.list();
    for (const auto& [who, v] : views) {
        bool ok = v.synced() && v.size() == static_cast<std::size_t>(config.users) + 1 &&
                  v.list() == reference && v.list().contains("bystander");
        for (const auto& [key, refs] : v.list())
            ok = ok && refs.size() == 1;
        if (ok)
            ++good;
        else if (first_bad.empty())
            first_bad = who + " has " + std::to_string(v.size()) + " users" +
                        (v.synced() ? "" : " (no presence_state)");
    }

    const auto secs = [&](Clock::time_point t) {
        return std::chrono::duration<double>(t - t0).count();
    };
    const auto h = bystander.histogram();
    const std::string when =
        config.over > 0 ? "over " + std::to_string(config.over).substr(0, 4) + " s" : "at once";
    std::printf("join_storm: %d users join room:lobby %s (server %s%s)\n", config.users,
                when.c_str(), config.server.c_str(),
                config.server_args.empty() ? "" : ", with args");
    for (const auto& a : config.server_args)
        std::printf("  server arg: %s\n", a.c_str());
    std::printf("  joins replied               %d ok, %d refused, %d closed%s\n",
                totals.joins_replied, totals.joins_refused, totals.closed,
                timed_out ? "  (TIMED OUT)" : "");
    std::printf("  last join reply after       %s\n", ms(secs(totals.last_reply)).c_str());
    const auto& jl = totals.join_latency;
    std::printf("  join reply latency          p50 %s, p99 %s, max %s\n",
                ms_ns(jl.quantile(0.5)).c_str(), ms_ns(jl.quantile(0.99)).c_str(),
                ms_ns(jl.max()).c_str());
    std::printf("  presence traffic ended after %s\n", ms(secs(t_end)).c_str());
    std::printf("  presence_state received     %llu frames, %.1f MB\n",
                static_cast<unsigned long long>(totals.state_frames), totals.state_bytes / 1e6);
    std::printf("  presence_diff received      %llu frames, %.1f MB\n",
                static_cast<unsigned long long>(totals.diff_frames), totals.diff_bytes / 1e6);
    std::printf(
        "  bystander ping latency      p50 %s, p99 %s, max %s (%llu pings, %zu unanswered)\n",
        ms_ns(h.quantile(0.5)).c_str(), ms_ns(h.quantile(0.99)).c_str(), ms_ns(h.max()).c_str(),
        static_cast<unsigned long long>(h.total()), bystander.unanswered());
    std::printf("  server CPU                  %.2f s\n", cpu_after - cpu_before);
    // Other work on the machine slows everything down: say how much there was.
    const double others =
        machine_after.busy - machine_before.busy - (cpu_after - cpu_before) - self_cpu;
    std::printf(
        "  load generator CPU          %.2f s; other processes %.2f s; steal %.2f s "
        "(over %.1f s)\n",
        self_cpu, others, machine_after.steal - machine_before.steal, wall);
    const bool presence_on = totals.state_frames > 0;
    if (presence_on)
        std::printf(
            "  presence lists checked      %d of %zu complete and equal (%d users + "
            "bystander)%s%s\n",
            good, views.size(), config.users,
            first_bad.empty() ? "" : "; first bad: ", first_bad.c_str());
    else
        std::printf("  presence lists checked      none: no presence_state was received\n");
    finished = true;
    bystander.stop();
    for (auto& c : clients)
        c.conn->abort();
    io.poll();
    std::printf("  server stop                 %s\n", server.stop(std::chrono::seconds(5)).c_str());
    return (!presence_on || good == static_cast<int>(views.size())) && !timed_out ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        CliArgs args(argc, argv, {"server-output", "help"});
        if (args.flag("help")) return print_usage(), 0;
        Config config;
        config.server = args.get("server", config.server);
        config.server_args = args.passthrough();
        config.users = static_cast<int>(args.number("users", config.users));
        config.per_source = static_cast<int>(args.number("per-source", config.per_source));
        config.concurrency = static_cast<int>(args.number("concurrency", config.concurrency));
        config.check_every = static_cast<int>(args.number("check-every", config.check_every));
        config.ping_ms = args.number("ping-ms", config.ping_ms);
        config.quiet = args.number("quiet", config.quiet);
        config.over = args.number("over", config.over);
        config.timeout = args.number("timeout", config.timeout);
        config.show_server_output = args.flag("server-output");
        args.finish();
        if (config.users < 1 || config.per_source < 1 || config.concurrency < 1 ||
            config.check_every < 0 || config.ping_ms <= 0 || config.timeout <= 0 || config.over < 0)
            throw std::runtime_error("counts and times must be positive");
        return run(config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "join_storm: %s\n", e.what());
        print_usage();
        return 2;
    }
}
