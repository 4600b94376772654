// A rejoin with history (server/session.hpp, Session::Lane): the missed
// broadcasts follow the join reply; live broadcasts that come while the
// history is read are held, then sent but for those at or below the
// recovery's position; and after it, broadcasts at or below the position
// (stragglers: with Redis the recovery's answer and the pub/sub messages
// travel on two connections) are dropped until the first one past it
// arrives. A real Endpoint on 127.0.0.1 and a raw V2 client; the stragglers
// are put into the topic's subscribers with PubSub::local_broadcast, with a
// hand-set Message::offset, as the Redis adapter delivers what Redis sends.
// The history is in memory (pubsub::Local), or, to hold broadcasts for as
// long as the test needs, kept by a test adapter that answers the join's
// read of it when the test says so.
#include <catch2/catch.hpp>

#include <plume/server.hpp>
#include <plume/transport.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "support/raw_v2_client.hpp"
#include "support/run_until.hpp"

namespace ps = plume::server;
namespace pubsub = plume::pubsub;
namespace ws = plume::transport;
using nlohmann::json;
using plume::test::Frames;
using plume::test::RawClient;
using plume::test::run_until;
using plume::test::send;

namespace {

constexpr std::string_view topic = "room:h";

class Room;

struct HistorySocket {
    ps::ConnectResult connect(const ps::Params&, const ps::ConnectInfo&) {
        return ps::ConnectResult::accept();
    }
    static void channels(ps::Router<HistorySocket>& r) { r.channel<Room>("room:*"); }
};

class Room : public ps::Channel<HistorySocket> {
  public:
    JoinResult join(std::string_view, const Payload&) override { return ok(json::object()); }
};

// A PubSub adapter that keeps the history itself (pubsub::KeepsHistory), as
// pubsub::Redis does, and whose answer to a join's read of it is on its way
// until the test calls answer(): the read is done when the join asks, as
// Redis runs it, and meanwhile the join's Lane holds live broadcasts. Its
// epoch is "e1".
class ManualHistory {
  public:
    std::string_view node_name() const noexcept { return "manual"; }
    void start(std::function<void(pubsub::MessagePtr)>) {}
    void publish(const pubsub::MessagePtr&) {}
    void publish_to(std::string_view, const pubsub::MessagePtr&) {}
    void stop() {}

    void publish_history(const pubsub::MessagePtr& m, const pubsub::HistoryOptions& o,
                         std::function<void(pubsub::MessagePtr)> local) {
        auto s = std::make_shared<pubsub::Message>();
        s->topic = m->topic;
        s->event = m->event;
        s->payload = m->payload;
        s->offset = ++last_;
        s->payload[o.offset_key] = s->offset;
        kept_.push_back(s);
        if (local) local(s);
    }
    // Reads everything after the requested offset, and where the topic is.
    void recover_history(std::string_view, const pubsub::HistoryRequest& request,
                         const pubsub::HistoryOptions&,
                         std::function<void(pubsub::HistoryRecovery)> done) {
        read_ = {};
        read_.position = {last_, "e1"};
        if (request.valid && request.epoch == "e1" && request.offset <= last_) {
            read_.recovered = true;
            for (auto off = request.offset; off < last_; ++off)
                read_.missed.push_back(kept_[static_cast<std::size_t>(off)]);
        }
        pending_ = std::move(done);
    }

    bool pending() const { return static_cast<bool>(pending_); }
    void answer() {
        auto done = std::move(pending_);
        pending_ = nullptr;
        done(std::move(read_));
    }

  private:
    std::uint64_t last_ = 0;
    std::vector<pubsub::MessagePtr> kept_;  // kept_[i] has offset i + 1
    pubsub::HistoryRecovery read_;
    std::function<void(pubsub::HistoryRecovery)> pending_;
};

ps::EndpointConfig history_config() {
    ps::EndpointConfig c;
    c.port = 0;
    c.log.sink = [](const ps::LogRecord&) {};
    c.history.topics = {"room:*"};
    c.history.events = {"new_msg"};  // "typing" is broadcast with offset 0
    return c;
}

template <class Adapter = pubsub::Local>
struct Fixture {
    asio::io_context io;
    ps::Endpoint<HistorySocket, Adapter> endpoint{io, history_config()};
    Fixture() { endpoint.start(); }
    auto connect(std::shared_ptr<Frames> rec) {
        return ws::connect<RawClient>(
            io,
            "ws://127.0.0.1:" + std::to_string(endpoint.local_endpoint().port()) +
                "/socket/websocket?vsn=2.0.0",
            ws::Options{}, RawClient{rec});
    }
    void broadcast(std::string_view event, std::string body) {
        endpoint.broadcast(std::string(topic), event, json{{"body", std::move(body)}});
    }
    // A broadcast of `topic` that reaches this node's subscribers with
    // `offset`, as the Redis adapter delivers one that Redis stamped.
    void deliver_with_offset(std::uint64_t offset, std::string body) {
        auto m = std::make_shared<pubsub::Message>();
        m->topic = std::string(topic);
        m->event = "new_msg";
        m->payload = {{"body", std::move(body)}, {"offset", offset}};
        m->offset = offset;
        endpoint.pubsub().local_broadcast(std::move(m));
    }
};

// "event body@offset" for a broadcast of the topic ("@offset" when it has one).
std::string describe(const json& f) {
    std::string s = f[3].get<std::string>() + " " + f[4].value("body", "");
    if (f[4].contains("offset")) s += "@" + std::to_string(f[4]["offset"].get<std::uint64_t>());
    return s;
}

// The topic's broadcasts the client got after the reply to `ref`.
std::vector<std::string> broadcasts_after_reply(Frames& rec, std::string_view ref) {
    std::lock_guard l(rec.mutex);
    auto reply = std::find_if(rec.frames.begin(), rec.frames.end(),
                              [&](const json& f) { return f[3] == "phx_reply" && f[1] == ref; });
    std::vector<std::string> out;
    if (reply == rec.frames.end()) return out;
    for (auto it = std::next(reply); it != rec.frames.end(); ++it)
        if ((*it)[1].is_null() && (*it)[2] == topic) out.push_back(describe(*it));
    return out;
}

bool got(Frames& rec, std::string_view what) {
    std::lock_guard l(rec.mutex);
    return std::any_of(rec.frames.begin(), rec.frames.end(), [&](const json& f) {
        return f[1].is_null() && f[2] == topic && describe(f) == what;
    });
}

}  // namespace

TEST_CASE(
    "after a rejoin's recovery, broadcasts at or below its position are dropped until one "
    "past it arrives",
    "[server][history]") {
    Fixture<> f;
    auto rec = std::make_shared<Frames>();
    auto c = f.connect(rec);
    REQUIRE(run_until(f.io, [&] { return rec->open; }));

    // A first join learns the epoch, gets offsets 1 and 2 live, and leaves.
    send(c, {"1", "1", topic, "phx_join", json::object()});
    REQUIRE(run_until(f.io, [&] { return rec->reply_to("1").has_value(); }));
    const json first = (*rec->reply_to("1"))[4];
    REQUIRE(first["status"] == "ok");
    CHECK(first["response"]["offset"] == 0);
    REQUIRE(first["response"]["epoch"].is_string());
    const std::string epoch = first["response"]["epoch"];
    f.broadcast("new_msg", "m1");
    f.broadcast("new_msg", "m2");
    REQUIRE(run_until(f.io, [&] { return got(*rec, "new_msg m2@2"); }));
    CHECK(broadcasts_after_reply(*rec, "1") ==
          std::vector<std::string>{"new_msg m1@1", "new_msg m2@2"});
    send(c, {"1", "2", topic, "phx_leave", json::object()});
    REQUIRE(run_until(f.io, [&] { return !rec->matching("phx_close").empty(); }));

    // Missed while away: 3, 4, 5. The rejoin from offset 2 gets them after
    // its reply, which says where the topic is.
    f.broadcast("new_msg", "m3");
    f.broadcast("new_msg", "m4");
    f.broadcast("new_msg", "m5");
    send(c, {"3", "3", topic, "phx_join", {{"offset", 2}, {"epoch", epoch}}});
    REQUIRE(run_until(f.io, [&] { return got(*rec, "new_msg m5@5"); }));
    CHECK((*rec->reply_to("3"))[4] ==
          json{{"status", "ok"},
               {"response", {{"offset", 5}, {"epoch", epoch}, {"recovered", true}}}});
    CHECK(broadcasts_after_reply(*rec, "3") ==
          std::vector<std::string>{"new_msg m3@3", "new_msg m4@4", "new_msg m5@5"});

    // Stragglers at or below the position (5) come after the recovery: dropped.
    f.deliver_with_offset(5, "late5");
    f.deliver_with_offset(3, "late3");
    // A broadcast without history passes, and the floor stays.
    f.broadcast("typing", "t1");
    f.deliver_with_offset(4, "late4");
    // The first broadcast past the position passes and clears the floor:
    // one at or below it after that passes too.
    f.broadcast("new_msg", "m6");
    f.deliver_with_offset(2, "late2");
    f.broadcast("typing", "t2");
    REQUIRE(run_until(f.io, [&] { return got(*rec, "typing t2"); }));
    CHECK(broadcasts_after_reply(*rec, "3") ==
          std::vector<std::string>{"new_msg m3@3", "new_msg m4@4", "new_msg m5@5", "typing t1",
                                   "new_msg m6@6", "new_msg late2@2", "typing t2"});
}

TEST_CASE(
    "broadcasts held while a rejoin's history is read follow the missed ones, but those at "
    "or below its position; one past it leaves no floor",
    "[server][history]") {
    Fixture<ManualHistory> f;
    auto& history = f.endpoint.pubsub().adapter();
    for (const char* body : {"m1", "m2", "m3", "m4", "m5"})
        f.broadcast("new_msg", body);  // nobody listens yet: only kept

    auto rec = std::make_shared<Frames>();
    auto c = f.connect(rec);
    REQUIRE(run_until(f.io, [&] { return rec->open; }));
    send(c, {"1", "1", topic, "phx_join", {{"offset", 2}, {"epoch", "e1"}}});
    REQUIRE(run_until(f.io, [&] { return history.pending(); }));

    // While the read waits: one past the position (5), one at or below it,
    // and one without history.
    f.broadcast("new_msg", "m6");
    f.deliver_with_offset(4, "late4");
    f.broadcast("typing", "t1");
    history.answer();
    REQUIRE(run_until(f.io, [&] { return got(*rec, "typing t1"); }));
    CHECK((*rec->reply_to("1"))[4] ==
          json{{"status", "ok"},
               {"response", {{"offset", 5}, {"epoch", "e1"}, {"recovered", true}}}});
    CHECK(broadcasts_after_reply(*rec, "1") ==
          std::vector<std::string>{"new_msg m3@3", "new_msg m4@4", "new_msg m5@5", "new_msg m6@6",
                                   "typing t1"});

    // 6 went out with the held ones, so nothing is dropped after the release.
    f.deliver_with_offset(3, "late3");
    f.broadcast("typing", "t2");
    REQUIRE(run_until(f.io, [&] { return got(*rec, "typing t2"); }));
    CHECK(broadcasts_after_reply(*rec, "1") ==
          std::vector<std::string>{"new_msg m3@3", "new_msg m4@4", "new_msg m5@5", "new_msg m6@6",
                                   "typing t1", "new_msg late3@3", "typing t2"});
}
