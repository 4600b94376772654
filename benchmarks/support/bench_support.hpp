// benchmarks/support/bench_support.hpp — what the benchmark programs share:
// flag parsing, spawning and stopping the server under test by PID, reading
// its memory and CPU figures from /proc, and a latency histogram.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace plume_bench {

/// `--name value`, `--name=value` and bare `--flag`s; everything after `--` is
/// passed through to the server. Unknown flags are an error, reported by finish().
class CliArgs {
  public:
    CliArgs(int argc, char** argv, std::set<std::string> bool_flags) {
        for (int i = 1; i < argc; ++i) {
            std::string arg = argv[i];
            if (arg == "--") {
                passthrough_.assign(argv + i + 1, argv + argc);
                break;
            }
            if (!arg.starts_with("--")) throw std::runtime_error("unexpected argument: " + arg);
            arg.erase(0, 2);
            if (const auto eq = arg.find('='); eq != std::string::npos) {
                values_[arg.substr(0, eq)] = arg.substr(eq + 1);
            } else if (bool_flags.contains(arg)) {
                values_[arg] = "1";
            } else if (i + 1 < argc) {
                values_[arg] = argv[++i];
            } else {
                throw std::runtime_error("--" + arg + " needs a value");
            }
        }
    }

    std::string get(const std::string& name, std::string fallback) {
        used_.insert(name);
        const auto it = values_.find(name);
        return it == values_.end() ? fallback : it->second;
    }
    bool flag(const std::string& name) { return get(name, "") == "1"; }
    double number(const std::string& name, double fallback) {
        const std::string text = get(name, "");
        if (text.empty()) return fallback;
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (end == text.c_str() || *end != '\0')
            throw std::runtime_error("--" + name + " wants a number, got " + text);
        return v;
    }
    const std::vector<std::string>& passthrough() const { return passthrough_; }

    /// Throws on any flag nobody asked for (a typo would otherwise be ignored).
    void finish() const {
        for (const auto& [name, value] : values_)
            if (!used_.contains(name)) throw std::runtime_error("unknown flag --" + name);
    }

  private:
    std::map<std::string, std::string> values_;
    std::set<std::string> used_;
    std::vector<std::string> passthrough_;
};

/// Raises the soft RLIMIT_NOFILE to the hard limit; the spawned server inherits it.
inline rlim_t raise_fd_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
    return limit.rlim_cur;
}

/// raise_fd_limit(), and an error unless `connections` (plus some spare) fit in it.
inline void require_fd_limit(int connections) {
    const rlim_t fd_limit = raise_fd_limit();
    if (fd_limit < static_cast<rlim_t>(connections) + 64)
        throw std::runtime_error("RLIMIT_NOFILE hard limit " + std::to_string(fd_limit) +
                                 " is too low for " + std::to_string(connections) + " connections");
}

/// The server under test, spawned by us and stopped by its PID.
/// SIGTERM to `pid`, then SIGKILL if it has not exited within `grace`;
/// waits for it and says how it ended.
inline std::string terminate_process(pid_t pid, std::chrono::milliseconds grace) {
    kill(pid, SIGTERM);
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + grace;
    pid_t r = 0;
    while ((r = waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return "did not exit within the grace period after SIGTERM; killed";
    }
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
    return {};
}

class ServerProcess {
  public:
    ServerProcess() = default;
    ServerProcess(const ServerProcess&) = delete;
    ServerProcess& operator=(const ServerProcess&) = delete;
    ~ServerProcess() { stop(std::chrono::seconds(5)); }

    pid_t pid() const { return pid_; }
    const std::string& host() const { return host_; }

    /// Before start(): the server's stderr goes through a pipe to `handler`
    /// (called on a drain thread, chunk by chunk) instead of to ours, so the
    /// bytes it logs can be counted without it ever blocking on a full pipe.
    void capture_stderr(std::function<void(std::string_view)> handler) {
        on_stderr_ = std::move(handler);
    }
    std::uint16_t port() const { return port_; }

    /// fork/exec `path args...` and waits (bounded) for its stdout line
    /// "... listening on ws://HOST:PORT/" (or "... listening on http://HOST:PORT/",
    /// as the chat example prints). Later stdout is drained so the server
    /// never blocks on a full pipe; it is echoed to stderr when `show_output`.
    void start(const std::string& path, const std::vector<std::string>& args,
               std::chrono::milliseconds timeout, bool show_output) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
        int err_fds[2] = {-1, -1};
        if (on_stderr_ && pipe2(err_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
        // A deep pipe, so a burst of log lines does not wait for the drain thread.
        if (err_fds[0] >= 0) fcntl(err_fds[0], F_SETPIPE_SZ, 1 << 20);
        const pid_t parent = getpid();
        const pid_t child = fork();
        if (child < 0) throw std::runtime_error("fork failed");
        if (child == 0) {
            // If the benchmark dies, the server must not outlive it.
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent) _exit(127);
            dup2(fds[1], STDOUT_FILENO);
            if (err_fds[1] >= 0) dup2(err_fds[1], STDERR_FILENO);
            std::vector<char*> argv;
            argv.push_back(const_cast<char*>(path.c_str()));
            for (const auto& a : args)
                argv.push_back(const_cast<char*>(a.c_str()));
            argv.push_back(nullptr);
            execv(path.c_str(), argv.data());
            std::perror(("exec " + path).c_str());
            _exit(127);
        }
        close(fds[1]);
        pid_ = child;
        out_fd_ = fds[0];
        if (err_fds[1] >= 0) {
            close(err_fds[1]);
            err_drain_ = std::thread([fd = err_fds[0], handler = on_stderr_] {
                char chunk[65536];
                for (ssize_t n; (n = read(fd, chunk, sizeof chunk)) > 0;)
                    handler(std::string_view(chunk, static_cast<std::size_t>(n)));
                close(fd);
            });
        }

        std::string pending;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (port_ == 0) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            pollfd p{out_fd_, POLLIN, 0};
            if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) {
                stop(std::chrono::seconds(2));
                throw std::runtime_error(
                    "server printed no 'listening on ws://' (or http://) line in time");
            }
            char chunk[4096];
            const ssize_t n = read(out_fd_, chunk, sizeof chunk);
            if (n <= 0) {
                stop(std::chrono::seconds(2));
                throw std::runtime_error("server exited before listening");
            }
            pending.append(chunk, static_cast<std::size_t>(n));
            for (std::size_t eol; port_ == 0 && (eol = pending.find('\n')) != std::string::npos;) {
                const std::string line = pending.substr(0, eol);
                pending.erase(0, eol + 1);
                if (show_output) std::fprintf(stderr, "[server] %s\n", line.c_str());
                parse_listening_line(line);
            }
        }
        drain_ = std::thread([fd = out_fd_, show_output] {
            char chunk[4096];
            for (ssize_t n; (n = read(fd, chunk, sizeof chunk)) > 0;)
                if (show_output) std::fwrite(chunk, 1, static_cast<std::size_t>(n), stderr);
        });
    }

    /// SIGTERM, then waits up to `grace` before SIGKILL. Says how it ended.
    std::string stop(std::chrono::milliseconds grace) {
        std::string how = "not running";
        if (pid_ > 0) {
            how = terminate_process(pid_, grace);
            pid_ = -1;
        }
        if (drain_.joinable()) drain_.join();  // EOF once the server is gone
        if (err_drain_.joinable()) err_drain_.join();
        if (out_fd_ >= 0) close(out_fd_), out_fd_ = -1;
        return how;
    }

  private:
    void parse_listening_line(const std::string& line) {
        std::string rest;
        for (const std::string_view marker : {"listening on ws://", "listening on http://",
                                              "listening on wss://", "listening on https://"}) {
            if (const auto at = line.find(marker); at != std::string::npos) {
                rest = line.substr(at + marker.size());
                break;
            }
        }
        if (rest.empty()) return;
        rest = rest.substr(0, rest.find('/'));
        const auto colon = rest.rfind(':');
        if (colon == std::string::npos) return;
        unsigned port = 0;
        const auto* first = rest.data() + colon + 1;
        if (std::from_chars(first, rest.data() + rest.size(), port).ec != std::errc{} ||
            port == 0 || port > 65535)
            return;
        host_ = rest.substr(0, colon);
        if (host_.size() > 2 && host_.front() == '[') host_ = host_.substr(1, host_.size() - 2);
        port_ = static_cast<std::uint16_t>(port);
    }

    pid_t pid_ = -1;
    int out_fd_ = -1;
    std::thread drain_;
    std::thread err_drain_;
    std::function<void(std::string_view)> on_stderr_;
    std::string host_;
    std::uint16_t port_ = 0;
};

/// A "Name:   123 kB" field of /proc/PID/status in KiB ("self" works too).
inline std::optional<long> proc_status_kib(const std::string& pid, std::string_view field) {
    std::ifstream in("/proc/" + pid + "/status");
    for (std::string line; std::getline(in, line);) {
        if (line.size() > field.size() && line.starts_with(field) && line[field.size()] == ':')
            return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
    }
    return std::nullopt;
}

/// utime + stime of a whole process (all threads), in seconds.
inline std::optional<double> proc_cpu_seconds(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // comm may hold spaces; fields resume after its closing parenthesis.
    const auto paren = all.rfind(')');
    if (paren == std::string::npos) return std::nullopt;
    std::istringstream fields(all.substr(paren + 2));
    std::string skip;
    for (int i = 3; i < 14; ++i)
        fields >> skip;  // state .. cmajflt
    unsigned long long utime = 0, stime = 0;
    if (!(fields >> utime >> stime)) return std::nullopt;
    return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// This process's own CPU time (all threads), in seconds.
inline double self_cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const auto secs = [](timeval t) { return t.tv_sec + t.tv_usec / 1e6; };
    return secs(usage.ru_utime) + secs(usage.ru_stime);
}

/// Machine-wide CPU time from the "cpu" line of /proc/stat, in seconds: time
/// spent running anything, and time the hypervisor gave to other guests. With
/// our own processes' CPU subtracted, `busy` tells whether something else ran
/// during a measurement and so how far to trust its rate.
struct MachineCpu {
    double busy = 0;
    double steal = 0;
};

inline MachineCpu machine_cpu() {
    std::ifstream in("/proc/stat");
    std::string label;
    unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                       steal = 0;
    in >> label >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    return {static_cast<double>(user + nice + system + irq + softirq) / tick,
            static_cast<double>(steal) / tick};
}

/// Resident memory of `pid` grouped by mapping kind from /proc/PID/smaps, in
/// KiB: tells the main heap from other anonymous memory (arenas of other
/// threads, large mmap'd buffers, stacks) and from file-backed pages.
struct RssBreakdown {
    long heap = 0;
    long anon_other = 0;
    long stack = 0;
    long file = 0;
    long total() const { return heap + anon_other + stack + file; }
};

inline RssBreakdown proc_rss_breakdown(pid_t pid) {
    RssBreakdown out;
    std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
    enum class Kind { heap, anon, stack, file } kind = Kind::anon;
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        // Mapping header lines start with a hex address range "lo-hi perms ...".
        const auto dash = line.find('-');
        if (dash != std::string::npos && dash > 0 &&
            line.find_first_not_of("0123456789abcdef") == dash) {
            std::istringstream header(line);
            std::string range, perms, offset, dev, inode, name;
            header >> range >> perms >> offset >> dev >> inode;
            std::getline(header, name);
            name.erase(0, name.find_first_not_of(' '));
            if (name == "[heap]")
                kind = Kind::heap;
            else if (name.starts_with("[stack"))
                kind = Kind::stack;
            else if (name.empty() || name.starts_with('['))
                kind = Kind::anon;
            else
                kind = Kind::file;
            continue;
        }
        if (line.starts_with("Rss:")) {
            const long kib = std::strtol(line.c_str() + 4, nullptr, 10);
            switch (kind) {
                case Kind::heap:
                    out.heap += kib;
                    break;
                case Kind::anon:
                    out.anon_other += kib;
                    break;
                case Kind::stack:
                    out.stack += kib;
                    break;
                case Kind::file:
                    out.file += kib;
                    break;
            }
        }
    }
    return out;
}

/// VmRSS of `pid` in KiB, -1 if it cannot be read.
inline long rss_kib(pid_t pid) {
    return proc_status_kib(std::to_string(pid), "VmRSS").value_or(-1);
}

/// Samples VmRSS once a second until two samples agree within 0.5% (or 10 tries):
/// allocators and the kernel may still be settling right after the last open.
inline long stable_rss_kib(pid_t pid) {
    long previous = rss_kib(pid);
    for (int i = 0; i < 10; ++i) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        const long now = rss_kib(pid);
        if (std::labs(now - previous) * 200 <= previous) return now;
        previous = now;
    }
    return previous;
}

/// The kernel's slab memory, machine-wide (/proc/meminfo). Socket structures live
/// there, not in any RSS; the delta is rough (other processes allocate too).
inline long kernel_slab_kib() {
    std::ifstream in("/proc/meminfo");
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("Slab:")) return std::strtol(line.c_str() + 5, nullptr, 10);
    return -1;
}

/// Log-linear histogram of nanoseconds (HdrHistogram's layout): 128 exact
/// buckets, then 64 sub-buckets per power of two, so any value is reported
/// within 1/64 (1.6%) in a fixed 29 KiB, whatever the run's length.
class LatencyHistogram {
  public:
    void record(std::uint64_t ns) {
        ++counts_[index_of(ns)];
        ++total_;
        max_ = std::max(max_, ns);
    }
    void merge(const LatencyHistogram& other) {
        for (std::size_t i = 0; i < counts_.size(); ++i)
            counts_[i] += other.counts_[i];
        total_ += other.total_;
        max_ = std::max(max_, other.max_);
    }
    std::uint64_t total() const { return total_; }
    std::uint64_t max() const { return max_; }

    /// The highest value equivalent to the q-quantile's bucket (never above max).
    std::uint64_t quantile(double q) const {
        if (total_ == 0) return 0;
        const auto rank = std::max<std::uint64_t>(
            1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_))));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < counts_.size(); ++i) {
            seen += counts_[i];
            if (seen >= rank) return std::min(highest_in(i), max_);
        }
        return max_;
    }

  private:
    static constexpr unsigned sub_bits = 7;
    static constexpr std::size_t exact = std::size_t{1} << sub_bits;  // 128
    static constexpr std::size_t half = exact / 2;                    // 64

    static std::size_t index_of(std::uint64_t v) {
        const auto width = static_cast<unsigned>(std::bit_width(v));
        if (width <= sub_bits) return static_cast<std::size_t>(v);
        const unsigned shift = width - sub_bits;  // v >> shift lies in [64, 128)
        return exact + (shift - 1) * half + static_cast<std::size_t>((v >> shift) - half);
    }
    static std::uint64_t highest_in(std::size_t index) {
        if (index < exact) return index;
        const std::size_t shift = (index - exact) / half + 1;
        const std::uint64_t low = ((index - exact) % half + half) << shift;
        return low + (std::uint64_t{1} << shift) - 1;
    }

    std::vector<std::uint64_t> counts_ = std::vector<std::uint64_t>(exact + (64 - sub_bits) * half);
    std::uint64_t total_ = 0;
    std::uint64_t max_ = 0;
};

/// One figure of a run, for compare_metrics(): its name, value, unit, and
/// whether more is better (throughput) or worse (CPU per operation, latency).
struct RunFigure {
    std::string name;
    double value = 0;
    std::string unit;
    bool higher_is_better = true;
};
using RunFigures = std::vector<RunFigure>;

inline double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// --compare-metrics N: what the server's metrics cost. Runs `measure` 2N
/// times, alternating the server's metrics on and off (`--no-metrics`
/// appended to its arguments), on first, so drift in the machine's load
/// falls on both alike; then prints each figure's median with metrics on and
/// off and the cost of having them on, in percent (positive: slower with
/// metrics). `measure(extra_server_args)` runs once and returns its figures,
/// or nothing when the run failed (the comparison goes on without it).
/// Returns 0 when every run succeeded.
inline int compare_metrics(const char* program, int runs,
                           const std::function<std::optional<RunFigures>(
                               const std::vector<std::string>& extra_server_args)>& measure) {
    std::vector<RunFigures> on, off;
    int failed = 0;
    for (int i = 0; i < runs; ++i) {
        for (const bool metrics : {true, false}) {
            std::fprintf(stderr, "%s: run %d of %d, metrics %s\n", program, i + 1, runs,
                         metrics ? "on" : "off");
            auto figures = measure(metrics ? std::vector<std::string>{}
                                           : std::vector<std::string>{"--no-metrics"});
            if (!figures) {
                ++failed;
                continue;
            }
            (metrics ? on : off).push_back(std::move(*figures));
        }
    }
    if (on.empty() || off.empty()) {
        std::printf("%s --compare-metrics: not measured (%d failed runs)\n", program, failed);
        return 1;
    }
    const auto column = [](const std::vector<RunFigures>& all, std::size_t i) {
        std::vector<double> v;
        for (const auto& f : all)
            v.push_back(f[i].value);
        return v;
    };
    std::printf(
        "%s --compare-metrics: medians of %zu runs with metrics on, %zu off "
        "(alternating)%s\n",
        program, on.size(), off.size(), failed ? " (some runs FAILED)" : "");
    std::printf("  %-24s %14s %14s %10s\n", "figure", "metrics on", "metrics off", "cost");
    for (std::size_t i = 0; i < on.front().size(); ++i) {
        const auto& f = on.front()[i];
        const double m_on = median(column(on, i));
        const double m_off = median(column(off, i));
        // Positive: worse with metrics on.
        const double cost = f.higher_is_better ? (m_on > 0 ? m_off / m_on - 1 : 0)
                                               : (m_off > 0 ? m_on / m_off - 1 : 0);
        std::printf("  %-24s %14.2f %14.2f %+9.1f%%   (%s)\n", f.name.c_str(), m_on, m_off,
                    100 * cost, f.unit.c_str());
        const auto list = [](const std::vector<double>& v) {
            std::string out;
            char buf[32];
            for (double x : v) {
                std::snprintf(buf, sizeof buf, " %.2f", x);
                out += buf;
            }
            return out;
        };
        std::printf("    each run: on%s; off%s\n", list(column(on, i)).c_str(),
                    list(column(off, i)).c_str());
    }
    return failed ? 1 : 0;
}

/// compare_metrics for a benchmark whose `run(config, &figures)` starts the
/// server with `config.server_args`: each run gets a copy of `config` with
/// the extra arguments appended.
template <class Config, class Run>
int compare_metrics(const char* program, int runs, const Config& config, Run run) {
    return compare_metrics(
        program, runs, [&](const std::vector<std::string>& extra) -> std::optional<RunFigures> {
            Config c = config;
            c.server_args.insert(c.server_args.end(), extra.begin(), extra.end());
            RunFigures f;
            if (run(c, &f) != 0) return std::nullopt;
            return f;
        });
}

}  // namespace plume_bench
