// A long-poll session's inbound batch (server/longpoll.hpp): handled in
// order, a turn's budget at a time, so one client's big POST cannot hold its
// io thread while other sessions and connections wait; the POST is answered
// once its last message is handled.
#include <catch2/catch.hpp>

#include <plume/server/longpoll.hpp>

#include <memory>
#include <optional>
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

}  // namespace

TEST_CASE("long-poll: a big POST is handled a turn's budget at a time, in order",
          "[server][longpoll]") {
    asio::io_context io{1};
    srv::LongPollOptions options;
    options.max_messages_per_turn = 100;
    auto session = std::make_shared<Session>(io, options, Recorder{});
    auto seen = session->handler().seen;
    session->start();
    io.poll();  // on_open ran: the strand is idle
    io.restart();

    int answered = 0;
    std::string answer;
    session->push(batch(250), plume::transport::http::Responder([&](auto response) {
                      ++answered;
                      answer = response.body;
                  }));
    // Work queued behind the push: it runs after the first 100 messages,
    // before the rest.
    std::vector<std::size_t> seen_by_others;
    for (int i = 0; i < 2; ++i)
        asio::post(io, [&] { seen_by_others.push_back(seen->size()); });

    REQUIRE(run_until(io, [&] { return answered == 1 && seen_by_others.size() == 2; }));
    CHECK(answer == R"({"status":200})");
    REQUIRE(seen->size() == 250);
    for (int i = 0; i < 250; ++i)
        CHECK((*seen)[static_cast<std::size_t>(i)] == "m" + std::to_string(i));
    CHECK(seen_by_others[0] == 100);
    CHECK(seen_by_others[1] <= 200);
    session->close();
    io.run_for(std::chrono::milliseconds(1));
}

TEST_CASE("long-poll: max_messages_per_turn 0 handles a batch in one turn", "[server][longpoll]") {
    asio::io_context io{1};
    srv::LongPollOptions options;
    options.max_messages_per_turn = 0;
    auto session = std::make_shared<Session>(io, options, Recorder{});
    auto seen = session->handler().seen;
    session->start();
    io.poll();  // on_open ran: the strand is idle
    io.restart();
    int answered = 0;
    session->push(batch(300), plume::transport::http::Responder([&](auto) { ++answered; }));
    std::optional<std::size_t> seen_by_other;
    asio::post(io, [&] { seen_by_other = seen->size(); });
    REQUIRE(run_until(io, [&] { return answered == 1 && seen_by_other; }));
    CHECK(*seen_by_other == 300);
    session->close();
    io.run_for(std::chrono::milliseconds(1));
}
