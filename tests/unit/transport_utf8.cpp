// Unit tests for plume/transport/utf8.hpp: the incremental UTF-8 validator
// that text messages and close reasons go through.
#include <catch2/catch.hpp>

#include <plume/transport/utf8.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ws = plume::transport;

namespace {

// Bytes from a list of values, so test vectors read like the RFCs write them.
std::string bytes(std::initializer_list<int> values) {
    std::string s;
    for (int v : values)
        s.push_back(static_cast<char>(v));
    return s;
}

// The verdict of one validator fed `s` in the given pieces (a prefix verdict
// and whether it ends on a code point boundary).
struct Verdict {
    bool fed_ok;
    bool complete;
    bool operator==(const Verdict&) const = default;
};

Verdict feed_whole(std::string_view s) {
    ws::Utf8Validator v;
    bool ok = v.feed(s);
    return {ok, ok && v.complete()};
}

Verdict feed_split(std::string_view s, std::size_t at) {
    ws::Utf8Validator v;
    bool ok = v.feed(s.substr(0, at)) && v.feed(s.substr(at));
    return {ok, ok && v.complete()};
}

Verdict feed_bytewise(std::string_view s) {
    ws::Utf8Validator v;
    bool ok = true;
    for (std::size_t i = 0; i < s.size() && ok; ++i)
        ok = v.feed(s.substr(i, 1));
    return {ok, ok && v.complete()};
}

// Index of the first byte after which the validator reports failure, or npos.
std::size_t first_failing_byte(std::string_view s) {
    ws::Utf8Validator v;
    for (std::size_t i = 0; i < s.size(); ++i)
        if (!v.feed(s.substr(i, 1))) return i;
    return std::string_view::npos;
}

const std::string kosme = "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5";  // κόσμε

}  // namespace

TEST_CASE("UTF-8: valid strings are accepted", "[transport][utf8]") {
    auto valid =
        GENERATE(as<std::string>{}, "", "hello, world", std::string(1, '\0'),
                 "\x7F",                                          // highest ASCII
                 "\xC2\x80",                                      // U+0080, lowest 2-byte
                 "\xDF\xBF",                                      // U+07FF, highest 2-byte
                 "\xE0\xA0\x80",                                  // U+0800, lowest 3-byte
                 "\xED\x9F\xBF",                                  // U+D7FF, below surrogates
                 "\xEE\x80\x80",                                  // U+E000, above surrogates
                 "\xEF\xBF\xBD",                                  // U+FFFD
                 "\xEF\xBF\xBF",                                  // U+FFFF (non-character, valid)
                 "\xF0\x90\x80\x80",                              // U+10000, lowest 4-byte
                 "\xF4\x8F\xBF\xBF",                              // U+10FFFF, the maximum
                 "\xF0\x9F\x98\x80",                              // an emoji
                 "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5",  // Autobahn 6.2.x
                 "Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!");
    CAPTURE(valid);
    CHECK(ws::is_valid_utf8(valid));
    ws::Utf8Validator v;
    CHECK(v.feed(valid));
    CHECK(v.complete());
}

TEST_CASE("UTF-8: long ASCII runs take the fast path at every alignment", "[transport][utf8]") {
    std::string ascii(67, 'a');
    for (std::size_t start = 0; start < 9; ++start) {
        CAPTURE(start);
        CHECK(ws::is_valid_utf8(std::string_view(ascii).substr(start)));
        // A single high byte anywhere in a long ASCII run must not be skipped
        // by the 8-byte fast path.
        for (std::size_t bad = start; bad < ascii.size(); ++bad) {
            std::string s = ascii;
            s[bad] = '\x80';
            CAPTURE(bad);
            CHECK_FALSE(ws::is_valid_utf8(std::string_view(s).substr(start)));
        }
    }
    // A valid multi-byte sequence after a long ASCII run.
    CHECK(ws::is_valid_utf8(std::string(40, 'x') + kosme + std::string(17, 'y')));
}

TEST_CASE("UTF-8: invalid sequences are rejected", "[transport][utf8]") {
    auto invalid = GENERATE(as<std::string>{},
                            "\x80",                      // stray continuation byte
                            "\xBF",                      // stray continuation byte
                            "a\x80z",                    // stray continuation after ASCII
                            "\xC2\x80\x80",              // one continuation too many
                            "\xC0\x80",                  // overlong NUL
                            "\xC1\xBF",                  // overlong U+007F
                            "\xE0\x80\x80",              // overlong 3-byte NUL
                            "\xE0\x9F\xBF",              // overlong U+07FF
                            "\xF0\x80\x80\x80",          // overlong 4-byte NUL
                            "\xF0\x8F\xBF\xBF",          // overlong U+FFFF
                            "\xED\xA0\x80",              // U+D800, first surrogate
                            "\xED\xAD\xBF",              // U+DB7F
                            "\xED\xB0\x80",              // U+DC00
                            "\xED\xBF\xBF",              // U+DFFF, last surrogate
                            "\xED\xA0\x80\xED\xB0\x80",  // a surrogate pair, CESU-8 style
                            "\xF4\x90\x80\x80",          // U+110000
                            "\xF7\xBF\xBF\xBF",          // U+1FFFFF
                            "\xF5\x80\x80\x80", "\xF8\x88\x80\x80\x80", "\xFC\x84\x80\x80\x80\x80",
                            "\xFE", "\xFF", "\xFE\xFE\xFF\xFF",
                            "\xC2\x41",              // lead byte, then ASCII
                            "\xE1\x80\x41",          // 3-byte cut by ASCII
                            "\xF1\x80\x80\xC2\x80",  // 4-byte cut by a lead byte
                            "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80"
                            "edited",
                            "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xF4\x90\x80\x80");
    CAPTURE(invalid);
    CHECK_FALSE(ws::is_valid_utf8(invalid));
    ws::Utf8Validator v;
    CHECK_FALSE(v.feed(invalid));
}

TEST_CASE("UTF-8: every lead byte C0, C1 and F5-FF is rejected on its own", "[transport][utf8]") {
    for (int b : {0xC0, 0xC1, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF}) {
        CAPTURE(b);
        ws::Utf8Validator v;
        CHECK_FALSE(v.feed(bytes({b})));
    }
    for (int b = 0x80; b <= 0xBF; ++b) {
        CAPTURE(b);
        ws::Utf8Validator v;
        CHECK_FALSE(v.feed(bytes({b})));
    }
}

TEST_CASE("UTF-8: exhaustive two-byte and boundary three/four-byte sequences",
          "[transport][utf8]") {
    // Every two-byte pair: valid exactly when lead C2..DF and trail 80..BF.
    for (int a = 0x80; a <= 0xFF; ++a) {
        for (int b = 0; b <= 0xFF; ++b) {
            bool expect = a >= 0xC2 && a <= 0xDF && b >= 0x80 && b <= 0xBF;
            if (ws::is_valid_utf8(bytes({a, b})) != expect) {
                CAPTURE(a, b);
                FAIL("two-byte verdict differs");
            }
        }
    }
    // Second byte of each three/four-byte lead: the narrowed ranges.
    struct Range {
        int lead, lo, hi;
    };
    for (auto r : {Range{0xE0, 0xA0, 0xBF}, Range{0xE1, 0x80, 0xBF}, Range{0xEC, 0x80, 0xBF},
                   Range{0xED, 0x80, 0x9F}, Range{0xEE, 0x80, 0xBF}, Range{0xEF, 0x80, 0xBF},
                   Range{0xF0, 0x90, 0xBF}, Range{0xF1, 0x80, 0xBF}, Range{0xF3, 0x80, 0xBF},
                   Range{0xF4, 0x80, 0x8F}}) {
        for (int b = 0; b <= 0xFF; ++b) {
            std::string s = bytes({r.lead, b, 0x80});
            if (r.lead >= 0xF0) s.push_back('\x80');
            bool expect = b >= r.lo && b <= r.hi;
            if (ws::is_valid_utf8(s) != expect) {
                CAPTURE(r.lead, b);
                FAIL("second-byte range wrong");
            }
        }
    }
    // Later continuation bytes are never narrowed: E0 A0 80 and F0 90 80 80
    // accept the full 80..BF range in the third/fourth position.
    for (int b = 0; b <= 0xFF; ++b) {
        bool expect = b >= 0x80 && b <= 0xBF;
        CAPTURE(b);
        CHECK(ws::is_valid_utf8(bytes({0xE0, 0xA0, b})) == expect);
        CHECK(ws::is_valid_utf8(bytes({0xED, 0x9F, b})) == expect);
        CHECK(ws::is_valid_utf8(bytes({0xF4, 0x8F, b, 0x80})) == expect);
        CHECK(ws::is_valid_utf8(bytes({0xF4, 0x8F, 0x80, b})) == expect);
    }
}

TEST_CASE("UTF-8: truncated sequences are valid prefixes but not complete", "[transport][utf8]") {
    auto prefix = GENERATE(as<std::string>{}, "\xC2", "\xE0\xA0", "\xE1", "\xF0\x90\x80", "\xF4",
                           "\xF4\x8F\xBF", "abc\xCE", "\xCE\xBA\xE1\xBD");
    CAPTURE(prefix);
    ws::Utf8Validator v;
    CHECK(v.feed(prefix));
    CHECK_FALSE(v.complete());
    CHECK_FALSE(ws::is_valid_utf8(prefix));
}

TEST_CASE("UTF-8: reset() forgets a pending sequence", "[transport][utf8]") {
    ws::Utf8Validator v;
    REQUIRE(v.feed("\xF0\x90"));
    REQUIRE_FALSE(v.complete());
    v.reset();
    CHECK(v.complete());
    CHECK(v.feed("a"));  // a continuation byte would have been expected before reset
    CHECK(v.complete());
    // reset() also clears the narrowed range of the first continuation byte.
    REQUIRE(v.feed("\xED"));
    v.reset();
    CHECK(v.feed("\xE1\xA0\x80"));
    CHECK(v.complete());
}

TEST_CASE("UTF-8: any split into two feeds, or byte by byte, gives the whole's verdict",
          "[transport][utf8]") {
    auto s = GENERATE(as<std::string>{}, "plain ascii text that is long enough for the fast path",
                      "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5",
                      "\xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF \xE0\xA0\x80 \xC2\x80 end",
                      "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80"
                      "edited",
                      "0123456789abcdef\xF4\x90\x80\x80", "0123456789\xE0\x80\x80",
                      "0123456789\xF0\x80\x80\x80", "\xED\xBF\xBF", "\xC0\xAF", "abc\x80",
                      "\xF0\x9F\x98", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xF4");
    CAPTURE(s);
    const Verdict whole = feed_whole(s);
    for (std::size_t at = 0; at <= s.size(); ++at) {
        CAPTURE(at);
        CHECK(feed_split(s, at) == whole);
    }
    CHECK(feed_bytewise(s) == whole);
    CHECK(whole.complete == ws::is_valid_utf8(s));
}

TEST_CASE("UTF-8: feed fails fast at the first invalid byte", "[transport][utf8]") {
    struct Case {
        std::string s;
        std::size_t bad;  // index of the first byte that makes the prefix invalid
    };
    auto c = GENERATE(values<Case>({
        {kosme + "\xED\xA0\x80" + "more text", 12},  // ED A0: surrogate known at A0
        {kosme + "\xF4\x90\x80\x80", 12},            // F4 90: too large at 90
        {kosme + "\xF5" + "ok", 11},                 // F5 is never a lead byte
        {"abc\xE0\x80\x80xyz", 4},                   // E0 80: overlong at the 80
        {"abc\xF0\x80\x80\x80xyz", 4},
        {"ab\xC0\x80", 2},  // C0 fails at once
        {"ab\xC2" + std::string("z") + kosme, 3},
        {std::string(20, 'a') + "\x80" + std::string(20, 'b'), 20},
    }));
    CAPTURE(c.s);
    CHECK(first_failing_byte(c.s) == c.bad);
    // The prefix just before the bad byte is still a valid prefix...
    ws::Utf8Validator before;
    CHECK(before.feed(std::string_view(c.s).substr(0, c.bad)));
    // ...and feeding through the bad byte fails, although valid text follows.
    ws::Utf8Validator through;
    CHECK_FALSE(through.feed(std::string_view(c.s).substr(0, c.bad + 1)));
    ws::Utf8Validator whole;
    CHECK_FALSE(whole.feed(c.s));
}

TEST_CASE("UTF-8: Autobahn 6.4.x fail-fast fragments", "[transport][utf8]") {
    // 6.4.1: κόσμε, then F4 90 80 80 (fails at 90), then "edited".
    ws::Utf8Validator v;
    CHECK(v.feed(kosme));
    CHECK_FALSE(v.feed("\xF4\x90\x80\x80"));
    // 6.4.2: κόσμε F4 in the first fragment is a valid prefix; 90 fails.
    ws::Utf8Validator w;
    CHECK(w.feed(kosme + "\xF4"));
    CHECK_FALSE(w.complete());
    CHECK_FALSE(w.feed("\x90"));
}
