// Priority lanes of a connection's send queue (transport/priority.hpp): the
// order frames leave in, coalescing by key, the low lane's batching, and
// what is dropped first when a reader is slow. A real server connection on
// 127.0.0.1 with small socket buffers, and a raw client that reads only when
// the test says so: while it does not read, what the server sends waits in
// its queue, where the lanes apply. And how the queue is written: a burst
// of small frames leaves through one per-thread buffer, in one system call.
#include <catch2/catch.hpp>

#include <netinet/tcp.h>
#include <plume/transport.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "support/raw_websocket.hpp"
#include "support/run_until.hpp"

namespace ws = plume::transport;
using plume::test::run_until;
using ws::Priority;

namespace {

// Keeps the server side of the one connection, with tiny socket buffers so
// that a few KiB fill them.
struct Keep {
    inline static std::shared_ptr<void> conn;
    inline static bool small_send_buffer = true;  // false: the kernel's autotuned one
    void on_open(auto& c) {
        if (small_send_buffer) c.next_layer().set_option(asio::socket_base::send_buffer_size(4096));
        conn = c.shared_from_this();
    }
    void on_message(auto&, ws::opcode, std::string_view) {}
    void on_close(auto&, std::uint16_t, std::string_view) {}
};
using Server = ws::Server<Keep>;
using Conn = Server::connection_type;

// A client that handshakes by hand and reads only in read_frames().
struct Reader {
    asio::ip::tcp::socket sock;
    std::string bytes;
    bool upgraded = false;
    struct Sink {
        std::vector<std::string> messages;
        int close_code = 0;
        void on_message(ws::opcode, std::string_view d) { messages.emplace_back(d); }
        void on_ping(std::string_view) {}
        void on_pong(std::string_view) {}
        void on_close(std::uint16_t code, std::string_view) { close_code = code; }
    } sink;
    ws::Parser parser{ws::role::client, 1 << 24};

    Reader(asio::io_context& io, std::uint16_t port) : sock(io) {
        sock.open(asio::ip::tcp::v4());
        sock.set_option(asio::socket_base::receive_buffer_size(4096));
        sock.connect({asio::ip::make_address("127.0.0.1"), port});
        asio::write(sock, asio::buffer(plume::test::upgrade_request));
        sock.non_blocking(true);
    }
    void read_now() {
        char buf[64 * 1024];
        std::error_code ec;
        while (true) {
            std::size_t n = sock.read_some(asio::buffer(buf), ec);
            if (ec) return;
            bytes.append(buf, n);
        }
    }
    bool handshake_done() {
        if (upgraded) return true;
        read_now();
        auto end = bytes.find("\r\n\r\n");
        if (end == std::string::npos) return false;
        REQUIRE(bytes.starts_with("HTTP/1.1 101"));
        bytes.erase(0, end + 4);
        return upgraded = true;
    }
    // Reads and parses what is there; the messages so far.
    const std::vector<std::string>& read_frames() {
        read_now();
        REQUIRE_FALSE(parser.consume(bytes.data(), bytes.size(), sink));
        bytes.clear();
        return sink.messages;
    }
};

struct Fixture {
    asio::io_context io{1};
    Server server;
    std::unique_ptr<Reader> reader;
    Conn* conn = nullptr;

    explicit Fixture(ws::Options opt = {}) : server(io, opt) {
        Keep::conn.reset();
        server.listen("127.0.0.1", 0);
        reader = std::make_unique<Reader>(io, server.local_endpoint().port());
        REQUIRE(run_until(io, [&] { return reader->handshake_done() && Keep::conn; }));
        conn = static_cast<Conn*>(Keep::conn.get());
    }
    ~Fixture() {
        reader.reset();
        Keep::conn.reset();
    }
    // Sends `tag`-named 1 KiB normal frames until the socket refuses: from
    // then on what is sent waits in the queue. The names of those sent.
    std::vector<std::string> block() {
        std::vector<std::string> sent;
        for (int i = 0; conn->queued_bytes() == 0; ++i) {
            REQUIRE(i < 100'000);
            sent.push_back("fill" + std::to_string(i) + std::string(1024, '.'));
            conn->send_text(sent.back());
        }
        return sent;
    }
    // Reads until `n` messages are in; they are returned.
    std::vector<std::string> read(std::size_t n) {
        REQUIRE(run_until(io, [&] { return reader->read_frames().size() >= n; }));
        return reader->sink.messages;
    }
};

// Data segments the connection's socket has sent (TCP_INFO's
// tcpi_data_segs_out, Linux 4.6; read at its fixed offset, as tcp_queue.hpp
// does). With TCP_NODELAY on loopback, each write that fits the window is one.
std::uint32_t data_segments_sent(Conn& c) {
    constexpr std::size_t data_segs_out_at = 156;
    unsigned char info[256] = {};
    socklen_t len = sizeof info;
    REQUIRE(::getsockopt(c.next_layer().native_handle(), IPPROTO_TCP, TCP_INFO, info, &len) == 0);
    REQUIRE(len >= data_segs_out_at + 4);
    std::uint32_t n;
    std::memcpy(&n, info + data_segs_out_at, 4);
    return n;
}

std::vector<std::string> without_fill(std::vector<std::string> all) {
    std::erase_if(all, [](const std::string& s) { return s.starts_with("fill"); });
    return all;
}

}  // namespace

TEST_CASE("queued frames leave in lane order, in order within a lane", "[transport][lanes]") {
    Fixture f;
    auto fill = f.block();
    f.conn->send_text("n1");
    f.conn->send_text("l1", Priority::low);
    f.conn->send_text("h1", Priority::high);
    f.conn->send_text("c1", Priority::critical);
    f.conn->send_text("n2", Priority::normal);
    f.conn->send_text("h2", Priority::high);
    f.conn->send_text("l2", Priority::low);
    f.conn->send_text("c2", Priority::critical);
    auto got = f.read(fill.size() + 8);
    // The fill frame in the write goes first (a frame in a write is never
    // overtaken); then the queued ones by lane.
    std::vector<std::string> expected = {"c1", "c2", "h1", "h2", "n1", "n2", "l1", "l2"};
    CHECK(without_fill(got) == expected);
    auto stats = f.conn->lane_stats();
    CHECK(stats.low_sent == 2);
    CHECK(stats.low_dropped == 0);
}

TEST_CASE("a low frame replaces the waiting one with the same key", "[transport][lanes]") {
    Fixture f;
    auto fill = f.block();
    auto a = ws::coalesce_key("typing:a");
    auto b = ws::coalesce_key("typing:b");
    f.conn->send_text("a1", Priority::low, a);
    f.conn->send_text("b1", Priority::low, b);
    f.conn->send_text("x", Priority::low);                                 // no key: never replaced
    f.conn->send_text("a2", Priority::low, ws::coalesce_key("typing:a"));  // equal, not same
    f.conn->send_text("a3", Priority::low, a);
    f.conn->send_text("n", Priority::normal, a);  // keys coalesce low frames only
    auto got = f.read(fill.size() + 4);
    CHECK(without_fill(got) == std::vector<std::string>{"n", "a3", "b1", "x"});
    CHECK(f.conn->lane_stats().low_coalesced == 2);
}

TEST_CASE("low frames of one window leave in one write", "[transport][lanes]") {
    ws::Options opt;
    opt.low_lane_window = std::chrono::milliseconds(50);
    Fixture f(opt);
    for (int i = 0; i < 5; ++i)
        f.conn->send_text("low" + std::to_string(i), Priority::low);
    CHECK(f.conn->queued_bytes() > 0);  // held, not written
    auto got = f.read(5);
    CHECK(got == std::vector<std::string>{"low0", "low1", "low2", "low3", "low4"});
    auto stats = f.conn->lane_stats();
    CHECK(stats.low_sent == 5);
    CHECK(stats.low_batches == 1);
    CHECK(f.conn->queued_bytes() == 0);
}

TEST_CASE("with no window, low frames leave at once", "[transport][lanes]") {
    ws::Options opt;
    opt.low_lane_window = std::chrono::milliseconds(0);
    Fixture f(opt);
    f.conn->send_text("now", Priority::low);
    CHECK(f.conn->queued_bytes() == 0);  // written before send_text returned
    CHECK(f.read(1) == std::vector<std::string>{"now"});
}

TEST_CASE("under pressure low frames go first, normal ones wait, then 1008", "[transport][lanes]") {
    ws::Options opt;
    opt.max_send_queue = 64 * 1024;  // low lane limit: half of it
    Fixture f(opt);
    auto fill = f.block();
    const std::size_t base = f.conn->queued_bytes();
    REQUIRE(base < 16 * 1024);
    const std::string kib(1000, 'x');

    // Low frames are taken up to 32 KiB of queue, then refused (counted).
    for (int i = 0; i < 40; ++i)
        f.conn->send_text("low" + std::to_string(i) + kib, Priority::low);
    const auto refused = f.conn->lane_stats().low_dropped;
    CHECK(refused > 0);
    CHECK(refused < 40);  // the first ones were taken and wait
    CHECK(f.conn->queued_bytes() <= 32 * 1024);

    // Normal frames need the room: the waiting low ones are dropped for it,
    // and the connection stays open.
    std::vector<std::string> normal;
    auto send_normal = [&] {
        normal.push_back("norm" + std::to_string(normal.size()) + kib);
        f.conn->send_text(normal.back());
    };
    while (f.conn->lane_stats().low_dropped < 40) {
        REQUIRE(normal.size() < 64);
        send_normal();
    }
    CHECK(f.conn->is_open());
    while (f.conn->queued_bytes() + 2 * 1024 < 64 * 1024)
        send_normal();
    CHECK(f.conn->is_open());
    // More low: refused at once.
    f.conn->send_text("late-low", Priority::low);
    CHECK(f.conn->lane_stats().low_dropped == 41);
    // A critical one still fits (it may go a quarter beyond the bound).
    f.conn->send_text("crit" + kib, Priority::critical);
    CHECK(f.conn->is_open());
    // A normal one that does not fit closes with 1008; what waited is dropped.
    f.conn->send_text(std::string(4 * 1024, 'z'));
    CHECK_FALSE(f.conn->is_open());

    REQUIRE(run_until(f.io, [&] {
        f.reader->read_frames();
        return f.reader->sink.close_code != 0;
    }));
    CHECK(f.reader->sink.close_code == 1008);
    auto got = without_fill(f.reader->sink.messages);
    // The critical frame was kept through the overflow and left first.
    REQUIRE_FALSE(got.empty());
    CHECK(got.front().starts_with("crit"));
    for (auto& m : got)
        CHECK_FALSE(m.starts_with("low"));
}

TEST_CASE("post_send lanes: from the mailbox in lane order, coalesced by key",
          "[transport][lanes]") {
    Fixture f;
    auto fill = f.block();
    auto frame = [](std::string s) { return ws::make_shared_frame(ws::opcode::text, s); };
    auto key = ws::coalesce_key("k");
    f.conn->post_send(frame("n1"));
    f.conn->post_send(frame("l1"), Priority::low, key);
    f.conn->post_send(frame("h1"), Priority::high);
    f.conn->post_send(frame("l2"), Priority::low, key);  // replaces l1 in the mailbox
    f.conn->post_send(frame("c1"), Priority::critical);
    f.conn->post_send(frame("n2"));
    auto got = f.read(fill.size() + 5);
    CHECK(without_fill(got) == std::vector<std::string>{"c1", "h1", "n1", "n2", "l2"});
    CHECK(f.conn->lane_stats().low_coalesced == 1);
}

TEST_CASE("frames in lanes go before the close frame", "[transport][lanes]") {
    Fixture f;
    auto fill = f.block();
    f.conn->send_text("low", Priority::low);
    f.conn->send_text("high", Priority::high);
    f.conn->close(4000, "bye");
    REQUIRE(run_until(f.io, [&] {
        f.reader->read_frames();
        return f.reader->sink.close_code != 0;
    }));
    CHECK(f.reader->sink.close_code == 4000);
    CHECK(without_fill(f.reader->sink.messages) == std::vector<std::string>{"high", "low"});
}

#ifdef TCP_NOTSENT_LOWAT
// What benchmarks/lanes found: with the kernel's own send buffer (autotuned
// to megabytes on loopback) a reader that does not read had all of its
// backlog taken by the kernel, so the lanes never saw it. With
// tcp_notsent_lowat the kernel stops taking bytes after a few KiB.
TEST_CASE("tcp_notsent_lowat keeps a stalled reader's backlog in the send queue",
          "[transport][lanes]") {
    struct KernelBuffer {  // the server side keeps the kernel's send buffer
        KernelBuffer() { Keep::small_send_buffer = false; }
        ~KernelBuffer() { Keep::small_send_buffer = true; }
    } kernel_buffer;
    ws::Options opt;
    opt.tcp_notsent_lowat = 16 * 1024;
    Fixture f(opt);
    int lowat = 0;
    socklen_t len = sizeof lowat;
    REQUIRE(getsockopt(f.conn->next_layer().native_handle(), IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat,
                       &len) == 0);
    CHECK(lowat == 16 * 1024);
    // The kernel takes the unsent limit, the peer's small receive window and
    // at most a segment more; then frames wait in the queue.
    const auto fill = f.block();
    CHECK(fill.size() * 1024 < 256 * 1024);
    f.conn->send_text("crit", Priority::critical);
    f.conn->send_text("low", Priority::low);
    CHECK(f.conn->queued_bytes() > 0);
    auto got = without_fill(f.read(fill.size() + 2));
    CHECK(got == std::vector<std::string>{"crit", "low"});
}
#endif

// A slow reader's backlog, and what is ahead of a critical frame: once a
// connection that uses the lanes is behind, a write takes at most
// behind_write_bytes, so a critical frame queued while the backlog waits
// goes with the next write, not after all of it.
TEST_CASE("a connection that is behind writes its backlog a bounded batch at a time",
          "[transport][lanes]") {
    Fixture f;
    f.conn->send_text("hello", Priority::high);  // the connection uses the lanes
    REQUIRE(f.read(1).front() == "hello");
    CHECK_FALSE(f.conn->is_behind());
    const auto fill = f.block();
    CHECK(f.conn->is_behind());
    CHECK(f.conn->lane_stats().fell_behind == 1);
    const std::string kib(1024, '.');
    for (int i = 0; i < 200; ++i)
        f.conn->send_text("back" + std::to_string(i) + kib);
    // The reader takes what is there: the server writes on, a batch at a time.
    const auto waiting = f.conn->queued_bytes();
    REQUIRE(run_until(f.io, [&] {
        f.reader->read_frames();
        return f.conn->queued_bytes() < waiting;
    }));
    f.conn->send_text("crit", Priority::critical);
    const auto got = f.read(1 + fill.size() + 200 + 1);
    const auto crit = std::find(got.begin(), got.end(), "crit");
    REQUIRE(crit != got.end());
    const auto back_before = std::count_if(
        got.begin(), crit, [](const std::string& m) { return m.starts_with("back"); });
    // Ahead of it: the batch in flight, the few KiB the kernels hold (a
    // 4 KiB send buffer, the reader's 4 KiB receive buffer), what was read.
    // Taking the whole queue at once put all 200 ahead of it.
    CHECK(back_before < 40);
    // Order within the lane held.
    std::vector<std::string> backs;
    std::copy_if(got.begin(), got.end(), std::back_inserter(backs),
                 [](const std::string& m) { return m.starts_with("back"); });
    REQUIRE(backs.size() == 200);
    for (std::size_t i = 0; i < backs.size(); ++i)
        CHECK(backs[i].starts_with("back" + std::to_string(i) + "."));
    // Everything written, nothing waiting: it caught up.
    CHECK(f.conn->queued_bytes() == 0);
    CHECK_FALSE(f.conn->is_behind());
}

TEST_CASE("a connection that is behind gets its low frames paced by what its reader drains",
          "[transport][lanes]") {
    ws::Options opt;
    opt.low_lane_window = std::chrono::milliseconds(10);
    Fixture f(opt);
    f.conn->send_text("hello", Priority::high);
    REQUIRE(f.read(1).front() == "hello");
    const auto fill = f.block();
    REQUIRE(f.conn->is_behind());
    // 30 low frames, 6 KiB: more than one bounded write (2 KiB).
    const std::string pad(200, '.');
    for (int i = 0; i < 30; ++i)
        f.conn->send_text("low" + std::to_string(i) + pad, Priority::low);

    // While the reader reads nothing, windows end and no low frame goes: the
    // kernel still holds unsent bytes.
    f.io.run_for(std::chrono::milliseconds(100));
    CHECK(f.conn->lane_stats().low_sent == 0);

    // The reader drains: the first clear window sends one low frame, a
    // window's quota grows by one each clear window, and a quarter of it
    // leaves at the window's end (no other lane writes here).
    REQUIRE(run_until(f.io, [&] {
        f.reader->read_frames();
        return f.conn->lane_stats().low_sent > 0;
    }));
    CHECK(f.conn->lane_stats().low_sent == 1);
    CHECK(f.conn->is_behind());
    const auto got = without_fill(f.read(1 + fill.size() + 30));
    REQUIRE(got.size() == 31);
    for (int i = 0; i < 30; ++i)
        CHECK(got[static_cast<std::size_t>(i) + 1] == "low" + std::to_string(i) + pad);
    CHECK(f.conn->lane_stats().low_batches >= 5);  // paced, not in one write
    CHECK(f.conn->lane_stats().low_dropped == 0);
    // Once what waits fits one write at a clear window's end, it caught up.
    CHECK_FALSE(f.conn->is_behind());
    f.conn->send_text("after", Priority::low);
    REQUIRE(run_until(f.io, [&] { return f.reader->read_frames().back() == "after"; }));
    CHECK_FALSE(f.conn->is_behind());
}

TEST_CASE("a burst of small frames is written in one call, not 64 frames at a time",
          "[transport][write]") {
    Keep::small_send_buffer = false;
    Fixture f;
    Keep::small_send_buffer = true;
    // 200 frames of ~30 bytes: Asio writes at most 64 buffers per call, so
    // written from the frames' own buffers the drain would leave most of them
    // to an asynchronous write. Copied into one buffer, they fit the socket.
    const std::uint32_t segments_before = data_segments_sent(*f.conn);
    std::vector<std::string> sent;
    for (int i = 0; i < 200; ++i) {
        sent.push_back("burst" + std::to_string(i));
        f.conn->post_send(ws::make_shared_frame(ws::opcode::text, sent.back()));
    }
    REQUIRE(run_until(f.io, [&] { return f.conn->mailbox_bytes() == 0; }));
    CHECK(f.conn->queued_bytes() == 0);  // all in the socket when the drain returned
    CHECK(data_segments_sent(*f.conn) - segments_before == 1);  // in one write
    CHECK(f.read(200) == sent);
}

TEST_CASE("a burst of frames the socket takes in parts arrives whole and in order",
          "[transport][write]") {
    Fixture f;  // 4 KiB buffers at both ends: every write is partial
    // Sizes from 1 byte to 3 KiB, so writes end inside frames, inside the
    // copied run and inside frames too large to copy (over 1 KiB).
    std::vector<std::string> sent;
    for (int i = 0; i < 600; ++i) {
        const std::size_t size = (static_cast<std::size_t>(i) * 37) % 3000 + 1;
        std::string m = std::to_string(i) + ":";
        m.resize(std::max(size, m.size()), static_cast<char>('a' + i % 26));
        sent.push_back(std::move(m));
        f.conn->post_send(ws::make_shared_frame(ws::opcode::text, sent.back()));
    }
    REQUIRE(run_until(f.io, [&] { return f.conn->mailbox_bytes() == 0; }));
    CHECK(f.conn->queued_bytes() > 0);  // the socket took only part of it
    const auto got = f.read(sent.size());
    REQUIRE(got.size() == sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i)
        REQUIRE(got[i] == sent[i]);
    REQUIRE(run_until(f.io, [&] { return f.conn->queued_bytes() == 0; }));
}
