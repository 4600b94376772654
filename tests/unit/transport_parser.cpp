// Unit tests for plume/transport/parser.hpp: the RFC 6455 receive state
// machine, in both roles. Every input is also fed split at every byte
// position (or a dense sample of them for big inputs), byte by byte, and in
// random chunks, and must give exactly the same events and failure.
//
// The header under test is included first on purpose: it must compile on its own.
#include <plume/transport/parser.hpp>

#include <catch2/catch.hpp>

#include <plume/transport/deflate.hpp>
#include <plume/transport/frame.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace ws = plume::transport;

namespace {

// ------------------------------------------------------------- recording --

struct Recorder {
    std::vector<std::string> events;
    const char* first_data = nullptr;  // where the last message's bytes lived

    void on_message(ws::opcode op, std::string_view payload) {
        first_data = payload.data();
        const char* kind = op == ws::opcode::text     ? "text:"
                           : op == ws::opcode::binary ? "binary:"
                                                      : "other:";
        events.push_back(kind + std::string(payload));
    }
    void on_ping(std::string_view payload) { events.push_back("ping:" + std::string(payload)); }
    void on_pong(std::string_view payload) { events.push_back("pong:" + std::string(payload)); }
    void on_close(std::uint16_t code, std::string_view reason) {
        events.push_back("close:" + std::to_string(code) + ":" + std::string(reason));
    }
};
static_assert(ws::ParserEvents<Recorder>);

struct Outcome {
    std::vector<std::string> events;
    std::uint16_t code = 0;  // the failure's close code, 0 when none
    bool close_received = false;
    bool mid_message = false;
    bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
    os << "{code " << o.code << ", close_received " << o.close_received << ", mid_message "
       << o.mid_message << ", events [";
    for (auto& e : o.events) {
        if (e.size() > 60)
            os << '"' << e.substr(0, 60) << "...\" (" << e.size() << " bytes), ";
        else
            os << '"' << e << "\", ";
    }
    return os << "]}";
}

Outcome expect(std::vector<std::string> events, std::uint16_t code = 0, bool close = false,
               bool mid = false) {
    return {std::move(events), code, close, mid};
}

struct Setup {
    ws::role role;
    std::size_t max_message;
    std::optional<ws::DeflateParams> deflate;  // each run gets a fresh session

    explicit Setup(ws::role r, std::size_t max = 1 << 20,
                   std::optional<ws::DeflateParams> d = std::nullopt)
        : role(r), max_message(max), deflate(d) {}
};

// Feeds `input` to a fresh parser, cut at `cuts` (increasing offsets). Each
// piece is copied into its own heap block so a read past a piece's end is
// caught by the sanitizers. Stops feeding at the first failure.
Outcome run(const Setup& s, std::string_view input, const std::vector<std::size_t>& cuts) {
    ws::Parser parser(s.role, s.max_message);
    std::unique_ptr<ws::DeflateSession> session;
    if (s.deflate) {
        ws::DeflateOptions opt;
        opt.enabled = true;
        session = std::make_unique<ws::DeflateSession>(*s.deflate, opt, s.role == ws::role::server);
        parser.set_deflate(session.get());
    }
    Recorder rec;
    Outcome out;
    std::size_t pos = 0;
    auto feed = [&](std::size_t end) {
        if (out.code != 0 || end < pos) return;
        auto piece = std::make_unique<char[]>(end - pos + 1);
        std::copy(input.begin() + static_cast<std::ptrdiff_t>(pos),
                  input.begin() + static_cast<std::ptrdiff_t>(end), piece.get());
        auto f = parser.consume(piece.get(), end - pos, rec);
        pos = end;
        if (f) {
            out.code = f.code;
            CHECK_FALSE(f.reason.empty());
        }
    };
    for (auto c : cuts)
        feed(c);
    feed(input.size());
    out.events = std::move(rec.events);
    out.close_received = parser.close_received();
    out.mid_message = out.code == 0 && parser.mid_message();
    return out;
}

// Split points worth trying: all of them for small inputs; for big ones every
// point near the frame-dense start and end, and a stride in between.
std::vector<std::size_t> split_points(std::size_t size) {
    std::vector<std::size_t> points;
    for (std::size_t k = 0; k <= size; ++k) {
        if (size <= 3000 || k < 200 || size - k < 200 || k % 499 == 0) points.push_back(k);
    }
    return points;
}

// Runs `input` whole, split in two at every point, byte by byte and in random
// chunks; all must equal `expected`.
void check_all_splits(const Setup& s, std::string_view input, const Outcome& expected) {
    const Outcome whole = run(s, input, {});
    REQUIRE(whole == expected);
    std::size_t mismatches = 0;
    for (std::size_t k : split_points(input.size())) {
        Outcome o = run(s, input, {k});
        if (!(o == whole) && mismatches++ < 3) {
            INFO("split at byte " << k << " of " << input.size());
            CHECK(o == whole);
        }
    }
    std::vector<std::size_t> every;
    for (std::size_t k = 1; k < input.size(); ++k)
        every.push_back(k);
    Outcome bytewise = run(s, input, every);
    if (!(bytewise == whole)) {
        INFO("byte by byte");
        CHECK(bytewise == whole);
        ++mismatches;
    }
    std::mt19937 rng(static_cast<unsigned>(input.size()));
    for (int trial = 0; trial < 10; ++trial) {
        std::vector<std::size_t> cuts;
        for (std::size_t k = 0; k < input.size(); k += 1 + rng() % 23)
            cuts.push_back(k);
        Outcome o = run(s, input, cuts);
        if (!(o == whole)) {
            INFO("random chunks, trial " << trial);
            CHECK(o == whole);
            ++mismatches;
        }
    }
    CHECK(mismatches == 0);
}

// ------------------------------------------------------------ frame making --

// Builds frames as the peer of `receiver` would: masked toward a server,
// unmasked toward a client, with a different mask key per frame.
struct Wire {
    ws::role receiver;
    unsigned counter = 0;

    std::string frame(int b0, std::string_view payload, std::optional<bool> masked = {}) {
        bool m = masked.value_or(receiver == ws::role::server);
        ++counter;
        const unsigned char key[4] = {static_cast<unsigned char>(counter * 37 + 1),
                                      static_cast<unsigned char>(counter * 91 + 7),
                                      static_cast<unsigned char>(counter * 13 + 200),
                                      static_cast<unsigned char>(counter * 5 + 99)};
        unsigned char header[ws::max_header_size];
        std::size_t n = ws::write_header(header, ws::opcode::binary, payload.size(), true, false,
                                         m ? key : nullptr);
        header[0] = static_cast<unsigned char>(b0);
        std::string f(reinterpret_cast<const char*>(header), n);
        std::string body(payload);
        if (m) ws::apply_mask(body.data(), body.size(), {key[0], key[1], key[2], key[3]});
        return f + body;
    }
    // Only the header of a frame announcing `length` payload bytes.
    std::string header_only(int b0, std::uint64_t length) {
        bool m = receiver == ws::role::server;
        const unsigned char key[4] = {1, 2, 3, 4};
        unsigned char header[ws::max_header_size];
        std::size_t n =
            ws::write_header(header, ws::opcode::binary, length, true, false, m ? key : nullptr);
        header[0] = static_cast<unsigned char>(b0);
        return std::string(reinterpret_cast<const char*>(header), n);
    }
    std::string text(std::string_view p, bool fin = true) { return frame(fin ? 0x81 : 0x01, p); }
    std::string binary(std::string_view p, bool fin = true) { return frame(fin ? 0x82 : 0x02, p); }
    std::string cont(std::string_view p, bool fin = true) { return frame(fin ? 0x80 : 0x00, p); }
    std::string ping(std::string_view p) { return frame(0x89, p); }
    std::string pong(std::string_view p) { return frame(0x8A, p); }
    std::string close(std::uint16_t code, std::string_view reason = "") {
        return frame(0x88, ws::close_payload(code, reason));
    }
    std::string close_raw(std::string_view payload) { return frame(0x88, payload); }
};

std::string role_name(ws::role r) {
    return r == ws::role::server ? "server" : "client";
}

const std::string kosme = "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5";

// Valid UTF-8 text of exactly n bytes (mixed widths).
std::string utf8_text(std::size_t n) {
    std::string s;
    while (s.size() + kosme.size() + 1 <= n)
        s += kosme + " ";
    s.append(n - s.size(), 'x');
    return s;
}

// Valid UTF-8 that compresses poorly: random letters and some κόσμε.
std::string random_text(std::size_t n) {
    std::mt19937 rng(static_cast<unsigned>(n) + 1);
    std::string s;
    while (s.size() < n) {
        if (rng() % 16 == 0)
            s += kosme;
        else
            s.push_back(static_cast<char>('a' + rng() % 26));
    }
    while (!plume::transport::is_valid_utf8(s))
        s.pop_back();
    return s;
}

std::string binary_data(std::size_t n) {
    std::mt19937 rng(static_cast<unsigned>(n));
    std::string s(n, '\0');
    for (auto& c : s)
        c = static_cast<char>(rng() & 0xFF);
    return s;
}

}  // namespace

// -------------------------------------------------------------- data frames --

TEST_CASE("parser: single frames of every size class", "[transport][parser]") {
    const auto role = GENERATE(ws::role::server, ws::role::client);
    const std::size_t size =
        GENERATE(as<std::size_t>{}, 0, 1, 125, 126, 127, 1000, 65535, 65536, 70000);
    CAPTURE(role_name(role), size);
    Setup s{role};
    Wire w{role};
    const std::string t = utf8_text(size);
    check_all_splits(s, w.text(t), expect({"text:" + t}));
    const std::string b = binary_data(size);
    check_all_splits(s, w.binary(b), expect({"binary:" + b}));
}

TEST_CASE("parser: several messages in one read", "[transport][parser]") {
    const auto role = GENERATE(ws::role::server, ws::role::client);
    CAPTURE(role_name(role));
    Wire w{role};
    std::string input = w.text("one") + w.binary(std::string("\x00\xFF", 2)) + w.text("") +
                        w.ping("are you there") + w.text(kosme) + w.pong("") +
                        w.binary(binary_data(300));
    check_all_splits(
        Setup{role}, input,
        expect({"text:one", "binary:" + std::string("\x00\xFF", 2), "text:", "ping:are you there",
                "text:" + kosme, "pong:", "binary:" + binary_data(300)}));
}

TEST_CASE("parser: a whole message in one read is handed out without a copy",
          "[transport][parser]") {
    Wire w{ws::role::server};
    std::string input = w.text("zero copy please");
    ws::Parser parser(ws::role::server, 1 << 20);
    Recorder rec;
    REQUIRE_FALSE(parser.consume(input.data(), input.size(), rec));
    REQUIRE(rec.events == std::vector<std::string>{"text:zero copy please"});
    CHECK(rec.first_data >= input.data());
    CHECK(rec.first_data < input.data() + input.size());
    // The payload was unmasked in place.
    CHECK(input.substr(input.size() - 16) == "zero copy please");
}

TEST_CASE("parser: fragmented messages with interleaved control frames", "[transport][parser]") {
    const auto role = GENERATE(ws::role::server, ws::role::client);
    CAPTURE(role_name(role));
    Wire w{role};
    SECTION("text in three fragments with a ping and a pong between them") {
        std::string input = w.text("Hel", false) + w.ping("p1") + w.cont("lo, ", false) +
                            w.pong("") + w.cont("world");
        check_all_splits(Setup{role}, input, expect({"ping:p1", "pong:", "text:Hello, world"}));
    }
    SECTION("binary with empty fragments") {
        std::string input = w.binary("", false) + w.cont("", false) + w.cont("abc", false) +
                            w.ping("") + w.cont("");
        check_all_splits(Setup{role}, input, expect({"ping:", "binary:abc"}));
    }
    SECTION("UTF-8 code points split across fragments") {
        // κόσμε cut inside every multi-byte sequence.
        std::string input;
        for (std::size_t i = 0; i < kosme.size(); ++i)
            input += i == 0 ? w.text(kosme.substr(0, 1), false)
                            : w.cont(kosme.substr(i, 1), i + 1 == kosme.size());
        check_all_splits(Setup{role}, input, expect({"text:" + kosme}));
    }
    SECTION("a big fragmented message, then another message") {
        std::string a = utf8_text(70000), b = utf8_text(200);
        std::string input = w.text(a.substr(0, 30000), false) + w.ping("x") +
                            w.cont(a.substr(30000, 40000), false) + w.cont(a.substr(70000)) +
                            w.text(b);
        check_all_splits(Setup{role}, input, expect({"ping:x", "text:" + a, "text:" + b}));
    }
    SECTION("a fragment in progress keeps the parser mid-message") {
        check_all_splits(Setup{role}, w.text("abc", false), expect({}, 0, false, true));
        check_all_splits(Setup{role}, w.text("abc", false) + w.ping("p"),
                         expect({"ping:p"}, 0, false, true));
        // Half a header, too.
        check_all_splits(Setup{role}, w.text("abc").substr(0, 1), expect({}, 0, false, true));
    }
}

// ------------------------------------------------------ protocol violations --

TEST_CASE("parser: masking rules depend on the role", "[transport][parser]") {
    SECTION("a server requires masked frames") {
        Wire w{ws::role::server};
        check_all_splits(Setup{ws::role::server}, w.frame(0x81, "hi", false), expect({}, 1002));
        check_all_splits(Setup{ws::role::server}, w.frame(0x89, "", false), expect({}, 1002));
        // After a good message, the unmasked frame still fails.
        check_all_splits(Setup{ws::role::server}, w.text("ok") + w.frame(0x82, "x", false),
                         expect({"text:ok"}, 1002));
    }
    SECTION("a client forbids masked frames") {
        Wire w{ws::role::client};
        check_all_splits(Setup{ws::role::client}, w.frame(0x81, "hi", true), expect({}, 1002));
        check_all_splits(Setup{ws::role::client}, w.frame(0x8A, "", true), expect({}, 1002));
    }
}

TEST_CASE("parser: reserved bits", "[transport][parser]") {
    const auto role = GENERATE(ws::role::server, ws::role::client);
    CAPTURE(role_name(role));
    Wire w{role};
    for (int bits : {0x10, 0x20, 0x30, 0x40, 0x70}) {
        for (int op : {0x1, 0x2, 0x8, 0x9, 0xA}) {
            CAPTURE(bits, op);
            // RSV1 without a negotiated extension is as bad as RSV2/RSV3.
            check_all_splits(Setup{role}, w.frame(0x80 | bits | op, "payload"), expect({}, 1002));
        }
        // On a continuation frame.
        CAPTURE(bits);
        check_all_splits(Setup{role}, w.text("a", false) + w.frame(0x80 | bits, "b"),
                         expect({}, 1002));
    }
}

TEST_CASE("parser: unknown opcodes", "[transport][parser]") {
    const auto role = GENERATE(ws::role::server, ws::role::client);
    CAPTURE(role_name(role));
    Wire w{role};
    for (int op : {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
        CAPTURE(op);
        check_all_splits(Setup{role}, w.frame(0x80 | op, ""), expect({}, 1002));
        check_all_splits(Setup{role}, w.frame(0x80 | op, "payload"), expect({}, 1002));
        // Also in the middle of a fragmented message, after a good message.
        check_all_splits(Setup{role}, w.text("ok") + w.text("a", false) + w.frame(0x80 | op, "x"),
                         expect({"text:ok"}, 1002));
    }
}

TEST_CASE("parser: control frame rules", "[transport][parser]") {
    const auto role = GENERATE(ws::role::server, ws::role::client);
    CAPTURE(role_name(role));
    Wire w{role};
    const std::string p125 = std::string(125, 'p');
    // 125 bytes is the most a control frame may carry.
    check_all_splits(Setup{role}, w.ping(p125), expect({"ping:" + p125}));
    check_all_splits(Setup{role}, w.pong(p125), expect({"pong:" + p125}));
    // 126 and more: 1002, detected from the header alone.
    for (int op : {0x88, 0x89, 0x8A}) {
        CAPTURE(op);
        check_all_splits(Setup{role}, w.frame(op, std::string(126, 'p')), expect({}, 1002));
        check_all_splits(Setup{role}, w.header_only(op, 126), expect({}, 1002));
        check_all_splits(Setup{role}, w.header_only(op, 70000), expect({}, 1002));
    }
    // Fragmented control frames.
    for (int op : {0x08, 0x09, 0x0A}) {
        CAPTURE(op);
        check_all_splits(Setup{role}, w.frame(op, "x"), expect({}, 1002));
        check_all_splits(Setup{role}, w.text("a", false) + w.frame(op, ""), expect({}, 1002));
    }
}

TEST_CASE("parser: fragmentation rules", "[transport][parser]") {
    const auto role = GENERATE(ws::role::server, ws::role::client);
    CAPTURE(role_name(role));
    Wire w{role};
    SECTION("continuation without a start") {
        check_all_splits(Setup{role}, w.cont("x"), expect({}, 1002));
        check_all_splits(Setup{role}, w.cont("x", false), expect({}, 1002));
        check_all_splits(Setup{role}, w.text("done") + w.cont("x"), expect({"text:done"}, 1002));
    }
    SECTION("a new data frame while a message is fragmented") {
        check_all_splits(Setup{role}, w.text("a", false) + w.text("b"), expect({}, 1002));
        check_all_splits(Setup{role}, w.binary("a", false) + w.ping("") + w.binary("b", false),
                         expect({"ping:"}, 1002));
        check_all_splits(Setup{role}, w.text("a", false) + w.cont("b", false) + w.binary("c"),
                         expect({}, 1002));
    }
    SECTION("after a fragmented message ends, a new one may start") {
        check_all_splits(Setup{role},
                         w.text("a", false) + w.cont("b") + w.binary("c", false) + w.cont("d"),
                         expect({"text:ab", "binary:cd"}));
    }
}

TEST_CASE("parser: payload lengths must use the minimal encoding", "[transport][parser]") {
    const auto role = GENERATE(ws::role::server, ws::role::client);
    CAPTURE(role_name(role));
    const bool masked = role == ws::role::server;
    const std::string key = masked ? std::string("\x00\x00\x00\x00", 4) : "";
    const char m = masked ? '\x80' : '\x00';
    // 5 bytes in the 16-bit form, 5 and 300 bytes in the 64-bit form.
    std::string len16 =
        std::string("\x82") + static_cast<char>(m | 126) + std::string("\x00\x05", 2);
    std::string len64 = std::string("\x82") + static_cast<char>(m | 127) +
                        std::string("\x00\x00\x00\x00\x00\x00\x00\x05", 8);
    std::string len64b = std::string("\x82") + static_cast<char>(m | 127) +
                         std::string("\x00\x00\x00\x00\x00\x00\x01\x2C", 8);
    check_all_splits(Setup{role}, len16 + key + "hello", expect({}, 1002));
    check_all_splits(Setup{role}, len64 + key + "hello", expect({}, 1002));
    check_all_splits(Setup{role}, len64b + key + std::string(300, 'x'), expect({}, 1002));
    // The most significant bit of a 64-bit length must be 0.
    std::string huge = std::string("\x82") + static_cast<char>(m | 127) +
                       std::string("\x80\x00\x00\x00\x00\x00\x00\x00", 8);
    Setup unlimited{role, std::numeric_limits<std::size_t>::max()};
    check_all_splits(unlimited, huge + key, expect({}, 1002));
}

// ---------------------------------------------------------- size and UTF-8 --

TEST_CASE("parser: max message size", "[transport][parser]") {
    const auto role = GENERATE(ws::role::server, ws::role::client);
    CAPTURE(role_name(role));
    Wire w{role};
    const Setup s{role, 100};
    SECTION("exactly the limit is fine, also twice") {
        std::string p(100, 'a');
        check_all_splits(s, w.binary(p) + w.text(p), expect({"binary:" + p, "text:" + p}));
        check_all_splits(s, w.text(p.substr(0, 50), false) + w.cont(p.substr(50)),
                         expect({"text:" + p}));
    }
    SECTION("a single frame over the limit fails before its payload arrives") {
        check_all_splits(s, w.header_only(0x82, 101), expect({}, 1009));
        check_all_splits(s, w.header_only(0x81, 1u << 30), expect({}, 1009));
        check_all_splits(s, w.header_only(0x82, (std::uint64_t{1} << 62)), expect({}, 1009));
        check_all_splits(s, w.binary(std::string(101, 'a')), expect({}, 1009));
    }
    SECTION("fragments adding up past the limit fail at the header of the one too many") {
        check_all_splits(s, w.binary(std::string(60, 'a'), false) + w.header_only(0x80, 41),
                         expect({}, 1009));
        check_all_splits(s,
                         w.text(std::string(40, 'a'), false) + w.ping("") +
                             w.cont(std::string(40, 'b'), false) + w.header_only(0x00, 21),
                         expect({"ping:"}, 1009));
        check_all_splits(s, w.text(std::string(99, 'a'), false) + w.cont("bb"), expect({}, 1009));
    }
    SECTION("control frames do not count toward the message") {
        check_all_splits(s,
                         w.text(std::string(60, 'a'), false) + w.ping(std::string(100, 'p')) +
                             w.cont(std::string(40, 'b')),
                         expect({"ping:" + std::string(100, 'p'),
                                 "text:" + std::string(60, 'a') + std::string(40, 'b')}));
    }
    SECTION("a zero limit still allows empty messages") {
        check_all_splits(Setup{role, 0}, w.text("") + w.binary("", false) + w.cont(""),
                         expect({"text:", "binary:"}));
        check_all_splits(Setup{role, 0}, w.text("x"), expect({}, 1009));
    }
}

TEST_CASE("parser: invalid UTF-8 in text messages", "[transport][parser]") {
    const auto role = GENERATE(ws::role::server, ws::role::client);
    CAPTURE(role_name(role));
    Wire w{role};
    const Setup s{role};
    SECTION("in a single frame") {
        for (std::string bad : {std::string("\xC0\x80"), std::string("ab\xED\xA0\x80"),
                                std::string("\xF4\x90\x80\x80"), std::string("\xFF"),
                                kosme + "\xED\xA0\x80" + "edited"}) {
            CAPTURE(bad);
            check_all_splits(s, w.text(bad), expect({}, 1007));
        }
    }
    SECTION("a truncated sequence at the end of the message") {
        check_all_splits(s, w.text("abc\xCE"), expect({}, 1007));
        check_all_splits(s, w.text("abc", false) + w.cont("\xF0\x9F\x98"), expect({}, 1007));
        check_all_splits(s, w.text("\xE2\x82", false) + w.cont(""), expect({}, 1007));
    }
    SECTION("fail fast: at the first bad fragment, before the final one arrives") {
        // Autobahn 6.4.1: the final fragment is never sent.
        std::string first = w.text(kosme, false);
        std::string bad = w.cont("\xF4\x90\x80\x80", false);
        check_all_splits(s, first + bad, expect({}, 1007));
        // Nothing of a later fragment is needed.
        check_all_splits(s, w.text(kosme + "\xED\xA0\x80", false), expect({}, 1007));
    }
    SECTION("fail fast inside one frame, before the rest of its payload arrives") {
        std::string payload = "ok\xC0\x80" + std::string(5000, 'x');
        std::string f = w.text(payload);
        // Header (4 bytes, plus 4 of mask toward a server) and the first 10 payload bytes.
        std::size_t header = role == ws::role::server ? 8 : 4;
        check_all_splits(s, f.substr(0, header + 10), expect({}, 1007));
    }
    SECTION("invalid sequences split across fragments") {
        // F4 | 90 80 80: the F4 is a valid prefix; 90 makes it > U+10FFFF.
        check_all_splits(s, w.text(kosme + "\xF4", false) + w.cont("\x90\x80\x80", false),
                         expect({}, 1007));
        // ED | A0 80: a surrogate.
        check_all_splits(s, w.text("a\xED", false) + w.ping("") + w.cont("\xA0\x80"),
                         expect({"ping:"}, 1007));
        // A lead byte followed by ASCII in the next fragment.
        check_all_splits(s, w.text("\xC3", false) + w.cont("A"), expect({}, 1007));
    }
    SECTION("binary messages are not validated") {
        std::string junk("\xC0\x80\xFF\xED\xA0\x80", 6);
        check_all_splits(s, w.binary(junk), expect({"binary:" + junk}));
    }
    SECTION("a new text message starts with a fresh validator") {
        check_all_splits(s, w.binary("\xE2", false) + w.cont("") + w.text("\x82\xAC"),
                         expect({"binary:\xE2"}, 1007));
        check_all_splits(s, w.text("\xE2\x82\xAC") + w.text("ok"),
                         expect({"text:\xE2\x82\xAC", "text:ok"}));
    }
}

// ------------------------------------------------------------ close frames --

TEST_CASE("parser: close frames", "[transport][parser]") {
    const auto role = GENERATE(ws::role::server, ws::role::client);
    CAPTURE(role_name(role));
    Wire w{role};
    const Setup s{role};
    SECTION("empty: no status (1005)") {
        check_all_splits(s, w.close_raw(""), expect({"close:1005:"}, 0, true));
    }
    SECTION("one byte of payload is a protocol error") {
        check_all_splits(s, w.close_raw("\x03"), expect({}, 1002, true));
    }
    SECTION("invalid codes") {
        for (std::uint16_t code :
             {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
            CAPTURE(code);
            check_all_splits(s, w.close(code), expect({}, 1002, true));
            check_all_splits(s, w.close(code, "reason"), expect({}, 1002, true));
        }
    }
    SECTION("valid codes are delivered with their reason") {
        for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
                                   1014, 3000, 3999, 4000, 4999}) {
            CAPTURE(code);
            check_all_splits(s, w.close(code),
                             expect({"close:" + std::to_string(code) + ":"}, 0, true));
            check_all_splits(s, w.close(code, "bye " + kosme),
                             expect({"close:" + std::to_string(code) + ":bye " + kosme}, 0, true));
        }
    }
    SECTION("a reason of the maximum length") {
        std::string reason(123, 'r');
        check_all_splits(s, w.close(1000, reason), expect({"close:1000:" + reason}, 0, true));
    }
    SECTION("invalid UTF-8 in the reason") {
        check_all_splits(s, w.close_raw(std::string("\x03\xE8\xC0\x80", 4)),
                         expect({}, 1007, true));
        check_all_splits(s,
                         w.close_raw(std::string("\x03\xE8"
                                                 "ab\xCE",
                                                 5)),
                         expect({}, 1007, true));
    }
    SECTION("bytes after the close are ignored") {
        std::string input = w.text("before") + w.close(1000, "done") + w.text("after") +
                            w.frame(0x83, "garbage opcode") + "\xFF\xFF\xFF";
        check_all_splits(s, input, expect({"text:before", "close:1000:done"}, 0, true));
        // A later consume call delivers nothing either.
        ws::Parser p(role, 1 << 20);
        Recorder rec;
        std::string c = w.close(1001);
        REQUIRE_FALSE(p.consume(c.data(), c.size(), rec));
        REQUIRE(p.close_received());
        std::string more = w.text("late");
        CHECK_FALSE(p.consume(more.data(), more.size(), rec));
        CHECK(rec.events == std::vector<std::string>{"close:1001:"});
    }
    SECTION("a close in the middle of a fragmented message") {
        // The unfinished message is never delivered (and still counts as held).
        check_all_splits(s, w.text("par", false) + w.close(1000) + w.cont("t"),
                         expect({"close:1000:"}, 0, true, true));
    }
}

// ------------------------------------------------------- permessage-deflate --

namespace {

// The peer's compressor: the other role of the same agreement.
struct Compressor {
    ws::DeflateOptions opt;
    ws::DeflateSession session;
    Compressor(const ws::DeflateParams& p, ws::role receiver)
        : opt(), session(p, opt, receiver != ws::role::server) {}
    std::string operator()(std::string_view message) {
        std::string out;
        session.compress(message, out);
        return out;
    }
};

ws::DeflateParams no_takeover() {
    ws::DeflateParams p;
    p.server_no_context_takeover = true;
    p.client_no_context_takeover = true;
    return p;
}

}  // namespace

TEST_CASE("parser: compressed messages", "[transport][parser]") {
    const auto role = GENERATE(ws::role::server, ws::role::client);
    const bool takeover = GENERATE(false, true);
    CAPTURE(role_name(role), takeover);
    const ws::DeflateParams params = takeover ? ws::DeflateParams{} : no_takeover();
    Setup s{role, 1 << 20, params};
    Wire w{role};
    // With context takeover each input must be one compressor's whole
    // output, so every input below starts from a fresh compressor.
    Compressor z(params, role);

    SECTION("single frames with RSV1, mixed with uncompressed messages") {
        const std::string big = utf8_text(50000);
        // One statement per message: with context takeover the order of
        // compression matters, and operands of + are unsequenced.
        std::string input = w.frame(0xC1, z("Hello"));
        input += w.text("plain");
        input += w.frame(0xC2, z(binary_data(3000)));
        input += w.frame(0xC1, z(big));
        input += w.frame(0xC1, z(big));
        input += w.frame(0xC1, z(""));
        check_all_splits(s, input,
                         expect({"text:Hello", "text:plain", "binary:" + binary_data(3000),
                                 "text:" + big, "text:" + big, "text:"}));
    }
    SECTION("fragmented: RSV1 on the first frame only, control frames between") {
        const std::string text = random_text(5000);
        std::string c = z(text);
        REQUIRE(c.size() > 1000);
        std::string input = w.frame(0x41, c.substr(0, 10)) + w.ping("p") +
                            w.cont(c.substr(10, 100), false) + w.cont("", false) +
                            w.cont(c.substr(110));
        check_all_splits(s, input, expect({"ping:p", "text:" + text}));
    }
    SECTION("RSV1 on a continuation frame") {
        std::string c = z("Hello, compressed world");
        REQUIRE(c.size() > 5);
        check_all_splits(s, w.frame(0x41, c.substr(0, 5)) + w.frame(0xC0, c.substr(5)),
                         expect({}, 1002));
        check_all_splits(s, w.text("plain", false) + w.frame(0xC0, "x"), expect({}, 1002));
    }
    SECTION("RSV1 on a control frame") {
        check_all_splits(s, w.frame(0xC9, ""), expect({}, 1002));
        check_all_splits(s, w.frame(0xC8, ws::close_payload(1000, "")), expect({}, 1002));
    }
    SECTION("RSV2 and RSV3 are still reserved") {
        check_all_splits(s, w.frame(0xE1, z("x")), expect({}, 1002));
        check_all_splits(s, w.frame(0xD1, Compressor(params, role)("x")), expect({}, 1002));
    }
    SECTION("corrupt deflate data") {
        check_all_splits(s, w.frame(0xC2, "\x07\x07\x07"), expect({}, 1007));
        check_all_splits(s, w.frame(0xC1, "\xFF"), expect({}, 1007));
    }
    SECTION("invalid UTF-8 after inflating a text message") {
        check_all_splits(s, w.frame(0xC1, z("ok\xED\xA0\x80")), expect({}, 1007));
        check_all_splits(s, w.frame(0xC1, Compressor(params, role)("ends mid-sequence \xE2\x82")),
                         expect({}, 1007));
        // Binary is not validated.
        check_all_splits(s, w.frame(0xC2, Compressor(params, role)("\xED\xA0\x80")),
                         expect({"binary:\xED\xA0\x80"}));
    }
    SECTION("a zip bomb fails with 1009") {
        Setup small{role, 100000, params};
        std::string bomb = z(std::string(4 << 20, 'A'));
        REQUIRE(bomb.size() < 10000);
        check_all_splits(small, w.frame(0xC2, bomb), expect({}, 1009));
        // Just under the limit is fine.
        Compressor z2(params, role);
        std::string fits(100000, 'B');
        check_all_splits(small, w.frame(0xC2, z2(fits)), expect({"binary:" + fits}));
    }
    SECTION("the compressed size counts toward the limit too") {
        Setup tiny{role, 10, params};
        std::string c = z(binary_data(100));
        REQUIRE(c.size() > 10);
        check_all_splits(tiny, w.frame(0xC2, c), expect({}, 1009));
    }
}

TEST_CASE("parser: RSV1 is refused when no deflate session is set", "[transport][parser]") {
    const auto role = GENERATE(ws::role::server, ws::role::client);
    Wire w{role};
    Compressor z(no_takeover(), role);
    check_all_splits(Setup{role}, w.frame(0xC1, z("Hello")), expect({}, 1002));
}

// ------------------------------------------------------------------ state --

TEST_CASE("parser: state accessors", "[transport][parser]") {
    Wire w{ws::role::server};
    ws::Parser p(ws::role::server, 1 << 20);
    Recorder rec;
    CHECK_FALSE(p.mid_message());
    CHECK_FALSE(p.close_received());
    std::string f = w.text("hello", false);
    REQUIRE_FALSE(p.consume(f.data(), 1, rec));
    CHECK(p.mid_message());  // half a header
    REQUIRE_FALSE(p.consume(f.data() + 1, f.size() - 1, rec));
    CHECK(p.mid_message());  // a message in progress
    std::string big = w.cont(std::string(100000, 'x'));
    REQUIRE_FALSE(p.consume(big.data(), 5000, rec));
    CHECK(p.mid_message());  // inside a frame
    CHECK(p.buffered() >= 4000);
    REQUIRE_FALSE(p.consume(big.data() + 5000, big.size() - 5000, rec));
    CHECK_FALSE(p.mid_message());
    CHECK(rec.events.size() == 1);
    // A big message's buffer is given back once delivered.
    CHECK(p.buffered() <= 8192);
    // Empty input is a no-op.
    CHECK_FALSE(p.consume(big.data(), 0, rec));
    CHECK(rec.events.size() == 1);
}

// -------------------------------------------------------------- budgets --

TEST_CASE("parser: a budget stops after that many events, and the rest resumes",
          "[transport][parser][budget]") {
    Wire w{ws::role::server};
    std::string input;
    std::vector<std::string> expected;
    for (int i = 0; i < 40; ++i) {
        input += w.text("m" + std::to_string(i));
        expected.push_back("text:m" + std::to_string(i));
        if (i % 7 == 0) {
            input += w.ping(std::to_string(i));
            expected.push_back("ping:" + std::to_string(i));
        }
        if (i % 9 == 0) {
            input += w.binary("frag", false) + w.pong("p") + w.cont("ment");
            expected.push_back("pong:p");
            expected.push_back("binary:fragment");
        }
    }
    input += w.close(1000, "bye") + w.text("after close");
    expected.push_back("close:1000:bye");

    const std::size_t budget_per_call = GENERATE(1, 2, 3, 7, 64);
    const std::size_t piece = GENERATE(std::size_t(5), std::size_t(64), std::size_t(1) << 20);
    CAPTURE(budget_per_call, piece);
    ws::Parser p(ws::role::server, 1 << 20);
    Recorder rec;
    std::string bytes = input;  // unmasked in place
    std::size_t pos = 0, calls = 0;
    while (pos < bytes.size() && !p.close_received()) {
        std::size_t end = std::min(bytes.size(), pos + piece);
        // Each read is consumed in as many budgeted calls as it takes.
        while (pos < end && !p.close_received()) {
            std::size_t budget = budget_per_call, used = 0;
            std::size_t before = rec.events.size();
            REQUIRE_FALSE(p.consume(bytes.data() + pos, end - pos, rec, budget, used));
            std::size_t delivered = rec.events.size() - before;
            CHECK(delivered <= budget_per_call);
            CHECK(budget == budget_per_call - delivered);
            // It stopped early only because the budget ran out (or a close came).
            if (used < end - pos && !p.close_received()) CHECK(budget == 0);
            pos += used;
            REQUIRE(++calls < 10000);
        }
    }
    CHECK(rec.events == expected);
}

TEST_CASE("parser: a budget keeps the zero-copy path for whole messages",
          "[transport][parser][budget]") {
    Wire w{ws::role::server};
    std::string bytes = w.text("first") + w.text("second") + w.text("third");
    ws::Parser p(ws::role::server, 1 << 20);
    Recorder rec;
    std::size_t budget = 1, used = 0;
    REQUIRE_FALSE(p.consume(bytes.data(), bytes.size(), rec, budget, used));
    REQUIRE(rec.events == std::vector<std::string>{"text:first"});
    CHECK(used == w.text("first").size());
    CHECK(rec.first_data >= bytes.data());
    CHECK(rec.first_data < bytes.data() + used);  // a view of the input, not a copy
    CHECK_FALSE(p.mid_message());
    // The rest was not touched: still masked, and parses from where it stopped.
    budget = 0;
    REQUIRE_FALSE(p.consume(bytes.data() + used, bytes.size() - used, rec, budget, used));
    CHECK(used == 0);
    budget = 5;
    std::size_t first = w.text("first").size();
    REQUIRE_FALSE(p.consume(bytes.data() + first, bytes.size() - first, rec, budget, used));
    CHECK(used == bytes.size() - first);
    CHECK(budget == 3);
    CHECK(rec.events == std::vector<std::string>{"text:first", "text:second", "text:third"});
}

TEST_CASE("parser: a 1 MiB frame of empty final deflate blocks is an empty message",
          "[transport][parser][deflate]") {
    // Issue 11: 03 00 repeated (empty final fixed-Huffman blocks) used to take
    // seconds and end in 1007. Each block is a complete, empty DEFLATE stream;
    // RFC 7692 7.2.3.4 lets a sender end a message's blocks with BFINAL, so
    // the message is valid, and empty. (benchmarks/inflate prints its cost.)
    const bool takeover = GENERATE(false, true);
    CAPTURE(takeover);
    const ws::DeflateParams params = takeover ? ws::DeflateParams{} : no_takeover();
    Setup s{ws::role::server, 1 << 20, params};
    Wire w{ws::role::server};
    std::string payload;
    for (int i = 0; i < 512 * 1024; ++i)
        payload += std::string("\x03\x00", 2);
    const std::string input = w.frame(0xC2, payload) + w.frame(0xC1, payload) + w.text("after");
    const auto expected = expect({"binary:", "text:", "text:after"});
    CHECK(run(s, input, {}) == expected);
    CHECK(run(s, input, {1, 1000, 700001, (1u << 20) + 13}) == expected);
}
