// tests/support/redis_server.hpp — a real redis-server (Debian's, installed by
// scripts/setup.sh) started on a free 127.0.0.1 port for one test, stopped by
// its PID. No persistence, so every start is empty.
#pragma once

#include <asio.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace plume::test {

class RedisServer {
  public:
    /// Starts redis-server (PLUME_REDIS_SERVER, else redis-server on PATH)
    /// with `extra` arguments, e.g. {"--requirepass", "s3cret"}.
    explicit RedisServer(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
        port_ = free_port();
        start();
    }
    ~RedisServer() { stop(); }
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    std::uint16_t port() const noexcept { return port_; }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
    pid_t pid() const noexcept { return pid_; }

    /// Starts it again on the same port (after stop() or kill()).
    void start() {
        if (pid_ > 0) return;
        const char* bin = std::getenv("PLUME_REDIS_SERVER");
        std::vector<std::string> args = {bin ? bin : "redis-server",
                                         "--port",
                                         std::to_string(port_),
                                         "--bind",
                                         "127.0.0.1",
                                         "--save",
                                         "",
                                         "--appendonly",
                                         "no",
                                         "--daemonize",
                                         "no",
                                         "--loglevel",
                                         "warning"};
        args.insert(args.end(), extra_.begin(), extra_.end());
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        const pid_t child = fork();
        if (child < 0) throw std::runtime_error("fork failed");
        if (child == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (!std::getenv("PLUME_TEST_VERBOSE")) {  // Redis's warnings are not ours
                int null = open("/dev/null", O_WRONLY);
                dup2(null, 1);
                dup2(null, 2);
            }
            execvp(argv[0], argv.data());
            _exit(127);
        }
        pid_ = child;
        wait_accepting();
    }

    /// SIGTERM, and waits for the process.
    void stop() { signal_and_wait(SIGTERM); }
    /// SIGKILL, and waits for the process.
    void kill() { signal_and_wait(SIGKILL); }
    /// SIGSTOP / SIGCONT: the TCP connections stay open but nothing flows.
    void pause() { ::kill(pid_, SIGSTOP); }
    void resume() { ::kill(pid_, SIGCONT); }

  private:
    static std::uint16_t free_port() {
        asio::io_context io;
        asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
        return a.local_endpoint().port();
    }

    // Polls until the port accepts (bounded); throws if the process died.
    void wait_accepting() {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (;;) {
            asio::io_context io;
            asio::ip::tcp::socket s(io);
            std::error_code ec;
            s.connect({asio::ip::make_address("127.0.0.1"), port_}, ec);
            if (!ec) return;
            int status = 0;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error(
                    "redis-server did not start (is it installed? scripts/setup.sh installs it)");
            }
            if (std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error("redis-server did not accept within 10 s");
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }

    void signal_and_wait(int sig) {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGCONT);
        ::kill(pid_, sig);
        int status = 0;
        waitpid(pid_, &status, 0);
        pid_ = -1;
    }

    std::vector<std::string> extra_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
};

}  // namespace plume::test
