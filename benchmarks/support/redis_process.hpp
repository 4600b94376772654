// benchmarks/support/redis_process.hpp — what the Redis benchmarks share: a
// redis-server of their own on a free 127.0.0.1 port (Debian's, found on
// PATH), started and stopped by its PID, and a blocking way to ask it
// something (INFO, PUBSUB) through plume's own redis::Client.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <plume/redis.hpp>

#include "bench_support.hpp"

namespace plume_bench {

/// The redis-server to run: `explicit_path` if given, else $PLUME_REDIS_SERVER,
/// else the first redis-server on PATH. Throws with a clear message if none.
inline std::string find_redis_server(const std::string& explicit_path = {}) {
    const auto executable = [](const std::string& p) {
        struct stat st {};
        return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(p.c_str(), X_OK) == 0;
    };
    std::string candidate = explicit_path;
    if (candidate.empty())
        if (const char* env = std::getenv("PLUME_REDIS_SERVER")) candidate = env;
    if (!candidate.empty()) {
        if (!executable(candidate))
            throw std::runtime_error("redis-server \"" + candidate +
                                     "\" is not an executable file");
        return candidate;
    }
    const char* path = std::getenv("PATH");
    std::string_view dirs = path ? path : "";
    while (!dirs.empty()) {
        const auto colon = dirs.find(':');
        const std::string dir(dirs.substr(0, colon));
        dirs.remove_prefix(colon == std::string_view::npos ? dirs.size() : colon + 1);
        if (!dir.empty() && executable(dir + "/redis-server")) return dir + "/redis-server";
    }
    throw std::runtime_error(
        "redis-server not found on PATH (Debian's redis-server package; scripts/setup.sh "
        "installs it; --redis-server PATH or PLUME_REDIS_SERVER overrides)");
}

/// A 127.0.0.1 port nobody listens on right now (bind port 0, close).
inline std::uint16_t free_local_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket() failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("could not find a free port");
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

/// True if 127.0.0.1:`port` accepts a TCP connection now.
inline bool port_accepts(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

/// redis-server on 127.0.0.1 (no persistence: every start is empty), spawned
/// by us and stopped by its PID.
class RedisProcess {
  public:
    using Clock = std::chrono::steady_clock;

    explicit RedisProcess(std::string binary, std::vector<std::string> extra = {})
        : binary_(std::move(binary)), extra_(std::move(extra)), port_(free_local_port()) {}
    ~RedisProcess() { stop(std::chrono::seconds(5)); }
    RedisProcess(const RedisProcess&) = delete;
    RedisProcess& operator=(const RedisProcess&) = delete;

    std::uint16_t port() const { return port_; }
    pid_t pid() const { return pid_; }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

    /// Starts it (again, after kill9() or stop(), on the same port) and polls
    /// the port every `poll` until it accepts (bounded by `timeout`). Returns
    /// the moment the first poll found it accepting.
    Clock::time_point start(std::chrono::microseconds poll = std::chrono::microseconds(500),
                            std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        if (pid_ > 0) throw std::runtime_error("redis-server is already running");
        std::vector<std::string> args = {
            binary_,        "--port", std::to_string(port_), "--bind", "127.0.0.1",  "--save", "",
            "--appendonly", "no",     "--daemonize",         "no",     "--loglevel", "warning"};
        args.insert(args.end(), extra_.begin(), extra_.end());
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        const pid_t parent = getpid();
        const pid_t child = fork();
        if (child < 0) throw std::runtime_error("fork failed");
        if (child == 0) {
            // If the benchmark dies, Redis must not outlive it.
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(127);
            const int null = open("/dev/null", O_WRONLY);
            dup2(null, STDOUT_FILENO);
            if (!std::getenv("PLUME_BENCH_REDIS_VERBOSE")) dup2(null, STDERR_FILENO);
            execv(argv[0], argv.data());
            _exit(127);
        }
        pid_ = child;
        const auto deadline = Clock::now() + timeout;
        for (;;) {
            if (port_accepts(port_)) return Clock::now();
            int status = 0;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("redis-server exited at start (port " +
                                         std::to_string(port_) + " taken?)");
            }
            if (Clock::now() > deadline) {
                stop(std::chrono::seconds(2));
                throw std::runtime_error("redis-server did not accept connections in time");
            }
            std::this_thread::sleep_for(poll);
        }
    }

    /// SIGKILL (kill -9), and waits for the process.
    void kill9() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        int status = 0;
        waitpid(pid_, &status, 0);
        pid_ = -1;
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`. Says how it ended.
    std::string stop(std::chrono::milliseconds grace) {
        if (pid_ <= 0) return "not running";
        std::string how = terminate_process(pid_, grace);
        pid_ = -1;
        return how;
    }

  private:
    std::string binary_;
    std::vector<std::string> extra_;
    std::uint16_t port_;
    pid_t pid_ = -1;
};

/// A plume::redis::Client on its own io thread, asked one command at a time
/// and waited for (the benchmarks' INFO and PUBSUB questions).
class SyncRedis {
  public:
    explicit SyncRedis(plume::redis::Options options)
        : guard_(asio::make_work_guard(io_)),
          client_(plume::redis::Client::create(io_.get_executor(), std::move(options))) {
        client_->start();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~SyncRedis() {
        client_->stop();
        guard_.reset();
        // stop() closes once what was accepted is answered (bounded by the
        // command timeout); the io thread ends when nothing is left.
        if (thread_.joinable()) thread_.join();
    }
    SyncRedis(const SyncRedis&) = delete;
    SyncRedis& operator=(const SyncRedis&) = delete;

    plume::redis::Client& client() { return *client_; }

    /// Sends `args` once the link is up (retrying a refused command until
    /// `timeout`), and waits for the reply. Throws on an error or a timeout.
    plume::redis::Value call(std::vector<std::string> args,
                             std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            auto promise =
                std::make_shared<std::promise<std::pair<std::error_code, plume::redis::Value>>>();
            auto future = promise->get_future();
            client_->command(args, [promise](std::error_code ec, plume::redis::Value v) {
                promise->set_value({ec, std::move(v)});
            });
            const auto left = deadline - std::chrono::steady_clock::now();
            if (future.wait_for(std::max(left, decltype(left){0})) != std::future_status::ready)
                throw std::runtime_error("Redis did not answer " + args[0] + " in time");
            auto [ec, value] = future.get();
            if (!ec) return value;
            const bool retry = ec == plume::redis::error::not_connected ||
                               ec == plume::redis::error::connection_lost;
            if (!retry || std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error(args[0] + " failed: " + ec.message() +
                                         (value.text().empty() ? "" : " (" + value.text() + ")"));
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }

  private:
    asio::io_context io_{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    std::shared_ptr<plume::redis::Client> client_;
    std::thread thread_;
};

/// A "name:value" line of an INFO reply.
inline std::optional<std::string> info_field(std::string_view info, std::string_view name) {
    for (std::size_t pos = 0; pos < info.size();) {
        auto eol = info.find('\n', pos);
        if (eol == std::string_view::npos) eol = info.size();
        std::string_view line = info.substr(pos, eol - pos);
        pos = eol + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() > name.size() && line.starts_with(name) && line[name.size()] == ':')
            return std::string(line.substr(name.size() + 1));
    }
    return std::nullopt;
}

/// A number from an INFO line ("total_reads_processed:123"), or from one
/// key of a "cmdstat_publish:calls=1,usec=2,..." line when `key` is given.
inline double info_number(std::string_view info, std::string_view name, std::string_view key = {}) {
    auto value = info_field(info, name);
    if (!value) return 0;
    std::string_view v = *value;
    if (!key.empty()) {
        const std::string needle = std::string(key) + "=";
        std::size_t at = 0;
        for (;;) {
            at = v.find(needle, at);
            if (at == std::string_view::npos) return 0;
            if (at == 0 || v[at - 1] == ',') break;
            ++at;
        }
        v.remove_prefix(at + needle.size());
        v = v.substr(0, v.find(','));
    }
    return std::strtod(std::string(v).c_str(), nullptr);
}

}  // namespace plume_bench
