// A long-poll session's inbound batch (server/longpoll.hpp): handled in
// order, a turn's budget at a time, so one client's big POST cannot hold its
// io thread while other sessions and connections wait; the POST is answered
// once its last message is handled.
#include <catch2/catch.hpp>

#include <plume/server/longpoll.hpp>

#include <memory>
#include <string>
#include <vector>

#include "support/run_until.hpp"

namespace srv = plume::server;
using plume::test::run_until;

namespace {

struct Recorder {
    std::shared_ptr<std::vector<std::string>> seen = std::make_shared<std::vector<std::string>>();
    void on_open(auto&) {}
    void on_message(auto&, plume::transport::opcode, std::string_view data) {
        seen->emplace_back(data);
    }
    void on_close(auto&, std::uint16_t, std::string_view) {}
};
using Session = srv::LongPollSession<Recorder>;

std::vector<srv::LongPollMessage> batch(int n) {
    std::vector<srv::LongPollMessage> m;
    for (int i = 0; i < n; ++i)
        m.push_back({"m" + std::to_string(i)});
    return m;
}

// One open session on an idle strand; POSTs `n` messages, and queues a probe
// behind the POST that records how many were handled when it ran.
struct Run {
    asio::io_context io{1};
    srv::LongPollOptions options;
    std::shared_ptr<Session> session;
    std::shared_ptr<std::vector<std::string>> seen;
    int answered = 0;
    std::string answer;
    std::vector<std::size_t> seen_by_others;

    explicit Run(std::size_t per_turn) {
        options.max_messages_per_turn = per_turn;
        session = std::make_shared<Session>(io, options, Recorder{});
        seen = session->handler().seen;
        session->start();
        io.poll();  // on_open ran: the strand is idle
        io.restart();
    }
    ~Run() {
        session->close();
        io.run_for(std::chrono::milliseconds(1));
    }
    // Work queued behind the push runs after the push's first turn.
    void post(int n, int probes) {
        session->push(batch(n), plume::transport::http::Responder([this](auto response) {
                          ++answered;
                          answer = response.body;
                      }));
        for (int i = 0; i < probes; ++i)
            asio::post(io, [this] { seen_by_others.push_back(seen->size()); });
        REQUIRE(run_until(io, [&] {
            return answered == 1 && seen_by_others.size() == static_cast<std::size_t>(probes);
        }));
        CHECK(answer == R"({"status":200})");
    }
};

}  // namespace

TEST_CASE("long-poll: a big POST is handled a turn's budget at a time, in order",
          "[server][longpoll]") {
    Run r(100);
    r.post(250, 2);
    REQUIRE(r.seen->size() == 250);
    for (int i = 0; i < 250; ++i)
        CHECK((*r.seen)[static_cast<std::size_t>(i)] == "m" + std::to_string(i));
    // The work queued behind the POST ran after its first 100 messages.
    CHECK(r.seen_by_others[0] == 100);
    CHECK(r.seen_by_others[1] <= 200);
}

TEST_CASE("long-poll: max_messages_per_turn 0 handles a batch in one turn", "[server][longpoll]") {
    Run r(0);
    r.post(300, 1);
    CHECK(r.seen_by_others[0] == 300);
}
