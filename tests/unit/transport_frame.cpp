// Unit tests for plume/transport/frame.hpp: frame header encoding/decoding,
// masking, and close payloads.
#include <catch2/catch.hpp>

#include <plume/transport/frame.hpp>

#include <plume/transport/utf8.hpp>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace ws = plume::transport;

namespace {

std::string_view as_view(const unsigned char* p, std::size_t n) {
    return {reinterpret_cast<const char*>(p), n};
}

std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s)
        c = static_cast<char>(rng() & 0xFF);
    return s;
}

// Reference masking: byte i is XORed with mask[(offset + i) % 4].
std::string reference_mask(std::string s, const std::array<unsigned char, 4>& m,
                           std::size_t offset) {
    for (std::size_t i = 0; i < s.size(); ++i)
        s[i] = static_cast<char>(static_cast<unsigned char>(s[i]) ^ m[(offset + i) % 4]);
    return s;
}

}  // namespace

TEST_CASE("frame: opcode classification", "[transport][frame]") {
    STATIC_REQUIRE(ws::is_control(ws::opcode::close));
    STATIC_REQUIRE(ws::is_control(ws::opcode::ping));
    STATIC_REQUIRE(ws::is_control(ws::opcode::pong));
    STATIC_REQUIRE_FALSE(ws::is_control(ws::opcode::text));
    STATIC_REQUIRE_FALSE(ws::is_control(ws::opcode::binary));
    STATIC_REQUIRE_FALSE(ws::is_control(ws::opcode::continuation));
    for (int op = 0; op < 16; ++op) {
        CAPTURE(op);
        bool known = op == 0 || op == 1 || op == 2 || op == 8 || op == 9 || op == 10;
        CHECK(ws::is_known_opcode(static_cast<std::uint8_t>(op)) == known);
    }
}

TEST_CASE("frame: write_header / parse_header round trip for every length class",
          "[transport][frame]") {
    const std::uint64_t length =
        GENERATE(as<std::uint64_t>{}, 0, 1, 125, 126, 127, 65535, 65536,
                 (std::uint64_t{1} << 32) + 1, (std::uint64_t{1} << 63) - 1);
    const bool masked = GENERATE(false, true);
    const bool fin = GENERATE(false, true);
    const bool rsv1 = GENERATE(false, true);
    const auto op =
        GENERATE(ws::opcode::text, ws::opcode::binary, ws::opcode::continuation, ws::opcode::ping);
    CAPTURE(length, masked, fin, rsv1, static_cast<int>(op));

    const unsigned char mask[4] = {0x37, 0xFA, 0x21, 0x3D};
    unsigned char buf[ws::max_header_size];
    std::size_t n = ws::write_header(buf, op, length, fin, rsv1, masked ? mask : nullptr);

    std::size_t expected_len = length < 126 ? 2 : length <= 0xFFFF ? 4 : 10;
    if (masked) expected_len += 4;
    REQUIRE(n == expected_len);

    ws::FrameHeader h;
    REQUIRE(ws::parse_header(as_view(buf, n), h) == ws::header_status::ok);
    CHECK(h.fin == fin);
    CHECK(h.rsv1 == rsv1);
    CHECK_FALSE(h.rsv2);
    CHECK_FALSE(h.rsv3);
    CHECK(h.opcode == static_cast<std::uint8_t>(op));
    CHECK(h.masked == masked);
    CHECK(h.payload_length == length);
    CHECK(h.header_length == n);
    if (masked) {
        CHECK(h.mask == std::array<unsigned char, 4>{0x37, 0xFA, 0x21, 0x3D});
    }
    CHECK(ws::uses_minimal_length(as_view(buf, n), h));

    // Trailing payload bytes do not change the parse.
    std::string with_payload(reinterpret_cast<const char*>(buf), n);
    with_payload += "payload bytes";
    ws::FrameHeader h2;
    REQUIRE(ws::parse_header(with_payload, h2) == ws::header_status::ok);
    CHECK(h2.header_length == n);
    CHECK(h2.payload_length == length);

    // Every strict prefix of the header needs more bytes.
    for (std::size_t k = 0; k < n; ++k) {
        CAPTURE(k);
        ws::FrameHeader p;
        CHECK(ws::parse_header(as_view(buf, k), p) == ws::header_status::need_more);
    }
}

TEST_CASE("frame: header bytes match RFC 6455 5.7 examples", "[transport][frame]") {
    // A single-frame unmasked text message "Hello".
    CHECK(ws::make_frame(ws::opcode::text, "Hello") == std::string("\x81\x05Hello"));
    // A single-frame masked text message "Hello".
    const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    CHECK(ws::make_frame(ws::opcode::text, "Hello", true, false, mask) ==
          std::string("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"));
    // A fragmented unmasked text message: "Hel" then "lo".
    CHECK(ws::make_frame(ws::opcode::text, "Hel", false) == std::string("\x01\x03Hel"));
    CHECK(ws::make_frame(ws::opcode::continuation, "lo") == std::string("\x80\x02lo"));
    // Unmasked ping with "Hello".
    CHECK(ws::make_frame(ws::opcode::ping, "Hello") == std::string("\x89\x05Hello"));
    // 256 bytes binary message in a single unmasked frame.
    std::string big = ws::make_frame(ws::opcode::binary, std::string(256, 'x'));
    CHECK(big.substr(0, 4) == std::string("\x82\x7E\x01\x00", 4));
    CHECK(big.size() == 4 + 256);
    // 64KiB binary message in a single unmasked frame.
    std::string huge = ws::make_frame(ws::opcode::binary, std::string(65536, 'x'));
    CHECK(huge.substr(0, 10) == std::string("\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10));
    CHECK(huge.size() == 10 + 65536);
    // RSV1 marks a compressed message.
    CHECK(ws::make_frame(ws::opcode::text, "", true, true) == std::string("\xC1\x00", 2));
}

TEST_CASE("frame: parse_header reads all flag bits and raw opcodes", "[transport][frame]") {
    for (int b0 = 0; b0 < 256; ++b0) {
        std::string bytes = {static_cast<char>(b0), '\x00'};
        ws::FrameHeader h;
        REQUIRE(ws::parse_header(bytes, h) == ws::header_status::ok);
        CAPTURE(b0);
        CHECK(h.fin == ((b0 & 0x80) != 0));
        CHECK(h.rsv1 == ((b0 & 0x40) != 0));
        CHECK(h.rsv2 == ((b0 & 0x20) != 0));
        CHECK(h.rsv3 == ((b0 & 0x10) != 0));
        CHECK(h.opcode == (b0 & 0x0F));
        CHECK(h.payload_length == 0);
        CHECK(h.header_length == 2);
    }
}

TEST_CASE("frame: need_more for every truncated prefix of a whole frame", "[transport][frame]") {
    const unsigned char mask[4] = {1, 2, 3, 4};
    for (std::size_t payload : {0u, 5u, 200u, 70000u}) {
        for (bool masked : {false, true}) {
            std::string f = ws::make_frame(ws::opcode::binary, std::string(payload, 'p'), true,
                                           false, masked ? mask : nullptr);
            ws::FrameHeader full;
            REQUIRE(ws::parse_header(f, full) == ws::header_status::ok);
            for (std::size_t k = 0; k < f.size(); ++k) {
                ws::FrameHeader h;
                auto st = ws::parse_header(std::string_view(f).substr(0, k), h);
                CAPTURE(payload, masked, k);
                if (k < full.header_length) {
                    CHECK(st == ws::header_status::need_more);
                } else {
                    REQUIRE(st == ws::header_status::ok);
                    CHECK(h.payload_length == payload);
                    CHECK(h.header_length == full.header_length);
                }
            }
        }
    }
}

TEST_CASE("frame: uses_minimal_length rejects non-minimal encodings", "[transport][frame]") {
    auto check = [](std::string bytes, bool minimal) {
        ws::FrameHeader h;
        REQUIRE(ws::parse_header(bytes, h) == ws::header_status::ok);
        CAPTURE(h.payload_length);
        CHECK(ws::uses_minimal_length(bytes, h) == minimal);
    };
    // 16-bit form carrying lengths that fit in 7 bits.
    check(std::string("\x82\x7E\x00\x00", 4), false);
    check(std::string("\x82\x7E\x00\x7D", 4), false);
    check(std::string("\x82\x7E\x00\x7E", 4), true);  // 126: the smallest 16-bit length
    check(std::string("\x82\x7E\xFF\xFF", 4), true);
    // 64-bit form carrying lengths that fit in 16 bits or 7 bits.
    check(std::string("\x82\x7F\x00\x00\x00\x00\x00\x00\x00\x05", 10), false);
    check(std::string("\x82\x7F\x00\x00\x00\x00\x00\x00\xFF\xFF", 10), false);
    check(std::string("\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10), true);  // 65536
    check(std::string("\x82\x7F\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 10), true);
    // The most significant bit of a 64-bit length must be 0.
    check(std::string("\x82\x7F\x80\x00\x00\x00\x00\x00\x00\x00", 10), false);
    check(std::string("\x82\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 10), false);
    // Masked headers too.
    check(std::string("\x82\xFE\x00\x10"
                      "abcd",
                      8),
          false);
    check(std::string("\x82\x85"
                      "abcd",
                      6),
          true);
}

TEST_CASE("frame: apply_mask with every offset, piecewise equals whole", "[transport][frame]") {
    const std::array<unsigned char, 4> m{0xA1, 0x5B, 0x3C, 0xE7};
    for (std::size_t size : {0u, 1u, 3u, 7u, 8u, 9u, 15u, 16u, 17u, 64u, 101u}) {
        const std::string original = random_bytes(size, static_cast<unsigned>(size) + 7);
        for (std::size_t offset = 0; offset < 8; ++offset) {
            CAPTURE(size, offset);
            std::string s = original;
            std::size_t next = ws::apply_mask(s.data(), s.size(), m, offset);
            CHECK(s == reference_mask(original, m, offset));
            CHECK(next == (offset + size) % 4);
            // Masking twice restores the data.
            ws::apply_mask(s.data(), s.size(), m, offset);
            CHECK(s == original);
        }
        // Every split into two pieces, continuing from the returned offset.
        const std::string whole = reference_mask(original, m, 0);
        for (std::size_t at = 0; at <= size; ++at) {
            CAPTURE(size, at);
            std::string s = original;
            std::size_t off = ws::apply_mask(s.data(), at, m, 0);
            off = ws::apply_mask(s.data() + at, size - at, m, off);
            CHECK(s == whole);
            CHECK(off == size % 4);
        }
        // Byte by byte, and in uneven chunks.
        std::string s = original;
        std::size_t off = 0;
        for (std::size_t i = 0; i < size; ++i)
            off = ws::apply_mask(s.data() + i, 1, m, off);
        CHECK(s == whole);
        s = original;
        off = 0;
        for (std::size_t i = 0, step = 1; i < size; i += step, step = step % 11 + 2)
            off = ws::apply_mask(s.data() + i, std::min(step, size - i), m, off);
        CHECK(s == whole);
    }
}

TEST_CASE("frame: apply_mask works on unaligned buffers", "[transport][frame]") {
    const std::array<unsigned char, 4> m{0x01, 0x02, 0x04, 0x08};
    std::string buf = random_bytes(200, 99);
    for (std::size_t start = 0; start < 8; ++start) {
        std::string s = buf;
        ws::apply_mask(s.data() + start, 150, m, 0);
        CAPTURE(start);
        CHECK(s.substr(0, start) == buf.substr(0, start));
        CHECK(s.substr(start, 150) == reference_mask(buf.substr(start, 150), m, 0));
        CHECK(s.substr(start + 150) == buf.substr(start + 150));
    }
}

TEST_CASE("frame: make_frame, masked and unmasked, parses back", "[transport][frame]") {
    const unsigned char mask[4] = {0xDE, 0xAD, 0xBE, 0xEF};
    for (std::size_t size : {0u, 10u, 125u, 126u, 1000u, 65535u, 65536u, 70000u}) {
        const std::string payload = random_bytes(size, static_cast<unsigned>(size));
        for (bool masked : {false, true}) {
            CAPTURE(size, masked);
            std::string f =
                ws::make_frame(ws::opcode::binary, payload, true, false, masked ? mask : nullptr);
            ws::FrameHeader h;
            REQUIRE(ws::parse_header(f, h) == ws::header_status::ok);
            REQUIRE(h.payload_length == size);
            REQUIRE(f.size() == h.header_length + size);
            std::string body = f.substr(h.header_length);
            if (masked) {
                CHECK(body == reference_mask(payload, h.mask, 0));
                ws::apply_mask(body.data(), body.size(), h.mask);
            }
            CHECK(body == payload);
        }
    }
    auto shared = ws::make_shared_frame(ws::opcode::text, "hi");
    REQUIRE(shared);
    CHECK(*shared == std::string("\x81\x02hi"));
}

TEST_CASE("frame: close_payload encodes the code and a short reason", "[transport][frame]") {
    CHECK(ws::close_payload(1000, "") == std::string("\x03\xE8", 2));
    CHECK(ws::close_payload(1001, "bye") == std::string("\x03\xE9"
                                                        "bye",
                                                        5));
    CHECK(ws::close_payload(4999, "x") == std::string("\x13\x87x", 3));
    CHECK(ws::close_payload(0xABCD, "") == std::string("\xAB\xCD", 2));
    // A reason of exactly 123 bytes fits (2 + 123 = 125).
    std::string r123(123, 'r');
    CHECK(ws::close_payload(1000, r123).size() == 125);
    CHECK(ws::close_payload(1000, r123).substr(2) == r123);
}

TEST_CASE("frame: close_payload cuts long reasons at 125 bytes without splitting UTF-8",
          "[transport][frame]") {
    CHECK(ws::close_payload(1000, std::string(300, 'a')).size() == ws::max_control_payload);
    // Multi-byte characters of every width placed so that byte 123 of the
    // reason falls at every position inside a sequence.
    for (std::string ch :
         {std::string("\xC3\xA9"), std::string("\xE2\x82\xAC"), std::string("\xF0\x9F\x98\x80")}) {
        for (std::size_t pad = 0; pad < 8; ++pad) {
            std::string reason(pad, 'x');
            while (reason.size() < 200)
                reason += ch;
            std::string p = ws::close_payload(1002, reason);
            CAPTURE(ch.size(), pad, p.size());
            CHECK(p.size() <= ws::max_control_payload);
            CHECK(p.size() > ws::max_control_payload - ch.size());  // cut as late as possible
            CHECK(p.substr(0, 2) == std::string("\x03\xEA", 2));
            CHECK(ws::is_valid_utf8(p.substr(2)));
            CHECK(reason.compare(0, p.size() - 2, p, 2) == 0);  // a prefix of the reason
        }
    }
}
