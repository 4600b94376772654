// Unit tests for plume/transport/deflate.hpp: permessage-deflate (RFC 7692)
// negotiation in both roles, and the zlib compressor/decompressor.
//
// The header under test is included first on purpose: it must compile on its own.
#include <plume/transport/deflate.hpp>

#include <catch2/catch.hpp>

#include <zlib.h>

#include <cstddef>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace ws = plume::transport;

namespace {

ws::DeflateOptions enabled_options() {
    ws::DeflateOptions opt;
    opt.enabled = true;
    return opt;
}

// Options that add nothing of their own to a response, so the response
// reflects only the offer.
ws::DeflateOptions neutral_options() {
    ws::DeflateOptions opt;
    opt.enabled = true;
    opt.request_client_no_context_takeover = false;
    opt.server_no_context_takeover = false;
    return opt;
}

std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s)
        c = static_cast<char>(rng() & 0xFF);
    return s;
}

// Compressible text: JSON-ish lines with some variation.
std::string compressible(std::size_t n) {
    std::string s;
    s.reserve(n + 64);
    for (unsigned i = 0; s.size() < n; ++i)
        s += "[\"1\",\"" + std::to_string(i % 97) +
             "\",\"room:lobby\",\"new_msg\",{\"body\":\"hi\"}]\n";
    s.resize(n);
    return s;
}

std::string bytes(std::initializer_list<int> values) {
    std::string s;
    for (int v : values)
        s.push_back(static_cast<char>(v));
    return s;
}

// What another permessage-deflate implementation would send: zlib raw deflate
// with Z_SYNC_FLUSH per message and the 00 00 FF FF tail removed.
class ZlibSender {
  public:
    explicit ZlibSender(int window_bits = 15, int level = Z_DEFAULT_COMPRESSION) {
        REQUIRE(deflateInit2(&z_, level, Z_DEFLATED, -window_bits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    }
    ~ZlibSender() { deflateEnd(&z_); }
    ZlibSender(const ZlibSender&) = delete;
    ZlibSender& operator=(const ZlibSender&) = delete;

    std::string message(std::string_view in, bool strip_tail = true) {
        std::string out(in.size() + in.size() / 100 + 64, '\0');
        z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
        z_.avail_in = static_cast<uInt>(in.size());
        std::size_t used = 0;
        do {
            if (used == out.size()) out.resize(out.size() * 2);
            z_.next_out = reinterpret_cast<Bytef*>(out.data() + used);
            z_.avail_out = static_cast<uInt>(out.size() - used);
            REQUIRE(deflate(&z_, Z_SYNC_FLUSH) != Z_STREAM_ERROR);
            used = out.size() - z_.avail_out;
        } while (z_.avail_out == 0);
        out.resize(used);
        // zlib emits nothing for an empty message right after a flush; a
        // correct sender then sends the empty stored block itself.
        if (out.empty()) out.assign("\x00\x00\x00\xff\xff", 5);
        REQUIRE(out.size() >= 4);
        REQUIRE(out.substr(out.size() - 4) == std::string("\x00\x00\xff\xff", 4));
        if (strip_tail) out.resize(out.size() - 4);
        return out;
    }

  private:
    z_stream z_{};
};

// A whole DEFLATE stream ending with a BFINAL block (zlib Z_FINISH), raw,
// optionally primed with a dictionary (the window a sender kept).
std::string zlib_finish(std::string_view in, std::string_view dictionary = {}) {
    z_stream z{};
    REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    if (!dictionary.empty())
        REQUIRE(deflateSetDictionary(&z, reinterpret_cast<const Bytef*>(dictionary.data()),
                                     static_cast<uInt>(dictionary.size())) == Z_OK);
    std::string out(deflateBound(&z, static_cast<uLong>(in.size())) + 16, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
    out.resize(out.size() - z.avail_out);
    deflateEnd(&z);
    return out;
}

// What our Deflater produced, decoded independently by zlib (tail re-added).
std::string zlib_inflate(std::string_view compressed) {
    z_stream z{};
    REQUIRE(inflateInit2(&z, -15) == Z_OK);
    std::string in(compressed);
    in.append("\x00\x00\xff\xff", 4);
    std::string out;
    z.next_in = reinterpret_cast<Bytef*>(in.data());
    z.avail_in = static_cast<uInt>(in.size());
    int rc;
    do {
        std::size_t old = out.size();
        out.resize(old + 65536);
        z.next_out = reinterpret_cast<Bytef*>(out.data() + old);
        z.avail_out = 65536;
        rc = inflate(&z, Z_SYNC_FLUSH);
        out.resize(out.size() - z.avail_out);
    } while (rc == Z_OK && (z.avail_in > 0 || z.avail_out == 0));
    inflateEnd(&z);
    CHECK(z.avail_in == 0);
    return out;
}

}  // namespace

// ------------------------------------------------------------ negotiation --

TEST_CASE("deflate: negotiation is off unless enabled", "[transport][deflate]") {
    ws::DeflateOptions off;
    CHECK_FALSE(ws::negotiate_deflate("permessage-deflate", off).has_value());
    CHECK_FALSE(ws::negotiate_deflate("", enabled_options()).has_value());
    CHECK_FALSE(ws::negotiate_deflate("x-webkit-deflate-frame", enabled_options()).has_value());
    CHECK_FALSE(ws::negotiate_deflate("permessage-deflater", enabled_options()).has_value());
}

TEST_CASE("deflate: a plain offer", "[transport][deflate]") {
    SECTION("with the default options: no context takeover both ways") {
        auto p = ws::negotiate_deflate("permessage-deflate", enabled_options());
        REQUIRE(p);
        CHECK(p->server_no_context_takeover);
        CHECK(p->client_no_context_takeover);
        CHECK(p->server_max_window_bits == 15);
        CHECK(p->client_max_window_bits == 15);
        CHECK_FALSE(p->client_max_window_bits_sent);
        CHECK(p->response_header() ==
              "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    }
    SECTION("with neutral options the response is just the name") {
        auto p = ws::negotiate_deflate("permessage-deflate", neutral_options());
        REQUIRE(p);
        CHECK_FALSE(p->server_no_context_takeover);
        CHECK_FALSE(p->client_no_context_takeover);
        CHECK(p->response_header() == "permessage-deflate");
    }
    SECTION("after other extensions, with whitespace") {
        auto p = ws::negotiate_deflate("x-webkit-deflate-frame,  permessage-deflate  ;  ",
                                       neutral_options());
        REQUIRE(p);
        CHECK(p->response_header() == "permessage-deflate");
    }
    SECTION("a smaller server window from the options") {
        auto opt = neutral_options();
        opt.server_max_window_bits = 10;
        auto p = ws::negotiate_deflate("permessage-deflate", opt);
        REQUIRE(p);
        CHECK(p->server_max_window_bits == 10);
        CHECK(p->response_header() == "permessage-deflate; server_max_window_bits=10");
        opt.server_max_window_bits = 8;  // zlib cannot: raised to 9
        CHECK(ws::negotiate_deflate("permessage-deflate", opt)->server_max_window_bits == 9);
    }
}

TEST_CASE("deflate: context takeover parameters", "[transport][deflate]") {
    auto p =
        ws::negotiate_deflate("permessage-deflate; server_no_context_takeover", neutral_options());
    REQUIRE(p);
    CHECK(p->server_no_context_takeover);
    CHECK_FALSE(p->client_no_context_takeover);
    CHECK(p->response_header() == "permessage-deflate; server_no_context_takeover");

    p = ws::negotiate_deflate("permessage-deflate; client_no_context_takeover", neutral_options());
    REQUIRE(p);
    CHECK_FALSE(p->server_no_context_takeover);
    CHECK(p->client_no_context_takeover);
    CHECK(p->response_header() == "permessage-deflate; client_no_context_takeover");

    p = ws::negotiate_deflate(
        "permessage-deflate;client_no_context_takeover;server_no_context_takeover",
        neutral_options());
    REQUIRE(p);
    CHECK(p->response_header() ==
          "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
}

TEST_CASE("deflate: server_max_window_bits", "[transport][deflate]") {
    for (int bits = 9; bits <= 15; ++bits) {
        CAPTURE(bits);
        auto p = ws::negotiate_deflate(
            "permessage-deflate; server_max_window_bits=" + std::to_string(bits),
            neutral_options());
        REQUIRE(p);
        CHECK(p->server_max_window_bits == bits);
        // An offered server_max_window_bits is always answered, 15 included
        // (RFC 7692 7.1.2.1: accepted "by including" it with the same or a
        // smaller value); strict clients reject a response without it.
        CHECK(p->response_header() ==
              "permessage-deflate; server_max_window_bits=" + std::to_string(bits));
    }
    // Quoted values are allowed (RFC 7692 5.1 quoted-string form).
    auto quoted = ws::negotiate_deflate("permessage-deflate; server_max_window_bits=\"10\"",
                                        neutral_options());
    REQUIRE(quoted);
    CHECK(quoted->server_max_window_bits == 10);
    // The client's limit combines with our own: the smaller wins.
    auto opt = neutral_options();
    opt.server_max_window_bits = 11;
    CHECK(ws::negotiate_deflate("permessage-deflate; server_max_window_bits=13", opt)
              ->server_max_window_bits == 11);
    CHECK(ws::negotiate_deflate("permessage-deflate; server_max_window_bits=13", opt)
              ->response_header() == "permessage-deflate; server_max_window_bits=11");
    CHECK(ws::negotiate_deflate("permessage-deflate; server_max_window_bits=10", opt)
              ->server_max_window_bits == 10);
    // 8 is declined (zlib cannot compress with an 8-bit window), as is no value.
    CHECK_FALSE(
        ws::negotiate_deflate("permessage-deflate; server_max_window_bits=8", neutral_options()));
    CHECK_FALSE(
        ws::negotiate_deflate("permessage-deflate; server_max_window_bits", neutral_options()));
}

TEST_CASE("deflate: client_max_window_bits", "[transport][deflate]") {
    SECTION("without a value: accepted, nothing to say in the response") {
        auto p =
            ws::negotiate_deflate("permessage-deflate; client_max_window_bits", neutral_options());
        REQUIRE(p);
        CHECK(p->client_max_window_bits == 15);
        CHECK_FALSE(p->client_max_window_bits_sent);
        CHECK(p->response_header() == "permessage-deflate");
    }
    SECTION("with a value below 15: echoed") {
        for (int bits = 8; bits <= 14; ++bits) {
            CAPTURE(bits);
            auto p = ws::negotiate_deflate(
                "permessage-deflate; client_max_window_bits=" + std::to_string(bits),
                neutral_options());
            REQUIRE(p);
            CHECK(p->client_max_window_bits == bits);
            CHECK(p->client_max_window_bits_sent);
            CHECK(p->response_header() ==
                  "permessage-deflate; client_max_window_bits=" + std::to_string(bits));
        }
    }
    SECTION("with 15: nothing to say") {
        auto p = ws::negotiate_deflate("permessage-deflate; client_max_window_bits=15",
                                       neutral_options());
        REQUIRE(p);
        CHECK(p->response_header() == "permessage-deflate");
    }
    SECTION("everything at once, in the response order") {
        auto p = ws::negotiate_deflate(
            "permessage-deflate; client_max_window_bits=12; server_max_window_bits=10; "
            "client_no_context_takeover; server_no_context_takeover",
            neutral_options());
        REQUIRE(p);
        CHECK(p->response_header() ==
              "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
              "server_max_window_bits=10; client_max_window_bits=12");
    }
}

TEST_CASE("deflate: a bad offer is declined and the next one taken", "[transport][deflate]") {
    const std::string bad = GENERATE(as<std::string>{}, "permessage-deflate; unknown_param",
                                     "permessage-deflate; unknown=1",
                                     "permessage-deflate; server_no_context_takeover; "
                                     "server_no_context_takeover",
                                     "permessage-deflate; client_no_context_takeover; "
                                     "client_no_context_takeover",
                                     "permessage-deflate; server_max_window_bits=10; "
                                     "server_max_window_bits=10",
                                     "permessage-deflate; client_max_window_bits; "
                                     "client_max_window_bits=10",
                                     "permessage-deflate; server_no_context_takeover=1",
                                     "permessage-deflate; client_no_context_takeover=true",
                                     "permessage-deflate; server_max_window_bits=16",
                                     "permessage-deflate; server_max_window_bits=07",
                                     "permessage-deflate; server_max_window_bits=abc",
                                     "permessage-deflate; server_max_window_bits=",
                                     "permessage-deflate; server_max_window_bits=+9",
                                     "permessage-deflate; server_max_window_bits=9.0",
                                     "permessage-deflate; server_max_window_bits=7",
                                     "permessage-deflate; client_max_window_bits=16",
                                     "permessage-deflate; client_max_window_bits=07",
                                     "permessage-deflate; client_max_window_bits=abc",
                                     "permessage-deflate; client_max_window_bits=-15",
                                     "permessage-deflate; client_max_window_bits=\"\"",
                                     "permessage-deflate; client_max_window_bits=1O");
    CAPTURE(bad);
    CHECK_FALSE(ws::negotiate_deflate(bad, neutral_options()).has_value());
    // The next offer in the list is taken instead.
    auto p = ws::negotiate_deflate(bad + ", permessage-deflate; client_no_context_takeover",
                                   neutral_options());
    REQUIRE(p);
    CHECK(p->response_header() == "permessage-deflate; client_no_context_takeover");
    CHECK(p->server_max_window_bits == 15);
    CHECK(p->client_max_window_bits == 15);
    // The declined offer's parameters do not leak into the accepted one.
    CHECK_FALSE(p->server_no_context_takeover);
}

TEST_CASE("deflate: parse_window_bits", "[transport][deflate]") {
    using ws::detail::parse_window_bits;
    for (int b = 8; b <= 15; ++b)
        CHECK(parse_window_bits(std::to_string(b)) == std::optional<int>(b));
    for (std::string_view bad :
         {"", "7", "16", "08", "015", "abc", "9 ", " 9", "-9", "+9", "99999999999999999999"})
        CHECK_FALSE(parse_window_bits(bad).has_value());
}

TEST_CASE("deflate: the client offer and the server's answer", "[transport][deflate]") {
    CHECK(ws::deflate_offer(enabled_options()) ==
          "permessage-deflate; client_max_window_bits; server_no_context_takeover");
    CHECK(ws::deflate_offer(neutral_options()) == "permessage-deflate; client_max_window_bits");
    // Our own server accepts our own client's offer.
    for (auto opt : {enabled_options(), neutral_options()}) {
        auto server = ws::negotiate_deflate(ws::deflate_offer(opt), opt);
        REQUIRE(server);
        auto client = ws::accept_deflate_response(server->response_header());
        REQUIRE(client);
        CHECK(client->server_no_context_takeover == server->server_no_context_takeover);
        CHECK(client->client_no_context_takeover == server->client_no_context_takeover);
        CHECK(client->server_max_window_bits == server->server_max_window_bits);
    }
}

TEST_CASE("deflate: accept_deflate_response (client side)", "[transport][deflate]") {
    SECTION("valid answers") {
        auto p = ws::accept_deflate_response("permessage-deflate");
        REQUIRE(p);
        CHECK_FALSE(p->server_no_context_takeover);
        CHECK_FALSE(p->client_no_context_takeover);
        CHECK(p->server_max_window_bits == 15);
        CHECK(p->client_max_window_bits == 15);

        p = ws::accept_deflate_response(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=12");
        REQUIRE(p);
        CHECK(p->server_no_context_takeover);
        CHECK(p->client_no_context_takeover);
        CHECK(p->server_max_window_bits == 10);
        CHECK(p->client_max_window_bits == 12);

        // The client compresses with at least 9 bits (zlib's minimum).
        p = ws::accept_deflate_response("permessage-deflate; client_max_window_bits=8");
        REQUIRE(p);
        CHECK(p->client_max_window_bits == 9);
        p = ws::accept_deflate_response("permessage-deflate; server_max_window_bits=\"8\"");
        REQUIRE(p);
        CHECK(p->server_max_window_bits == 8);
    }
    SECTION("invalid answers fail the connection") {
        for (std::string_view bad :
             {"", "x-webkit-deflate-frame", "permessage-deflate, permessage-deflate",
              "permessage-deflate; unknown", "permessage-deflate; server_max_window_bits",
              "permessage-deflate; client_max_window_bits",
              "permessage-deflate; server_max_window_bits=16",
              "permessage-deflate; client_max_window_bits=07",
              "permessage-deflate; server_max_window_bits=abc",
              "permessage-deflate; server_no_context_takeover=1",
              "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
              "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
              "permessage-deflate; server_max_window_bits=10; server_max_window_bits=11",
              "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10"}) {
            CAPTURE(bad);
            CHECK_FALSE(ws::accept_deflate_response(bad).has_value());
        }
    }
}

// ------------------------------------------------------------ compression --

TEST_CASE("deflate: Deflater/Inflater round trips", "[transport][deflate]") {
    const std::vector<std::string> messages = {
        "",
        "Hello",
        std::string(1, '\0'),
        compressible(1 << 20),
        random_bytes(100000, 1),
        compressible(5000),
        random_bytes(17, 2),
        "",
        compressible(1 << 20),
    };
    const bool takeover = GENERATE(false, true);
    const int bits = GENERATE(9, 12, 15);
    CAPTURE(takeover, bits);
    ws::Deflater d(bits, 6, 8);
    ws::Inflater i;
    for (std::size_t k = 0; k < messages.size(); ++k) {
        CAPTURE(k, messages[k].size());
        std::string compressed = "prefix";  // compress() appends
        d.compress(messages[k], compressed, !takeover);
        REQUIRE(compressed.rfind("prefix", 0) == 0);
        compressed.erase(0, 6);
        // RFC 7692 7.2.1: the 00 00 FF FF tail is removed.
        if (compressed.size() >= 4)
            CHECK(compressed.substr(compressed.size() - 4) != std::string("\x00\x00\xff\xff", 4));
        if (messages[k].size() == (1u << 20)) CHECK(compressed.size() < messages[k].size() / 10);
        std::string out = "stale";
        REQUIRE(i.decompress(compressed, out, 1 << 21, !takeover) == ws::Inflater::result::ok);
        CHECK(out.size() == messages[k].size());
        CHECK(out == messages[k]);
        // Without context takeover, each message also decodes on its own.
        if (!takeover) CHECK(zlib_inflate(compressed) == messages[k]);
    }
}

TEST_CASE("deflate: an empty message compresses to the single byte 00", "[transport][deflate]") {
    ws::Deflater d(15, 6, 8);
    std::string out;
    d.compress("", out, true);
    CHECK(out == std::string(1, '\0'));  // RFC 7692 7.2.3.6
}

TEST_CASE("deflate: an empty message after a compressed one, with context takeover",
          "[transport][deflate]") {
    // zlib emits nothing at all for empty input on a just-flushed stream; the
    // payload must still be the 00 of an empty stored block (RFC 7692 7.2.3.6)
    // or the receiver's inflater desynchronizes.
    ws::Deflater d(15, 6, 8);
    ws::Inflater i;
    std::string out;
    for (std::string msg : {"Hello", "", "", "Hello again", "", "Hello"}) {
        CAPTURE(msg);
        std::string c;
        d.compress(msg, c, false);
        if (msg.empty()) CHECK(c == std::string(1, '\0'));
        REQUIRE(i.decompress(c, out, 1000, false) == ws::Inflater::result::ok);
        CHECK(out == msg);
    }
}

TEST_CASE("deflate: blocks with BFINAL set (RFC 7692 7.2.3.4)", "[transport][deflate]") {
    ws::Inflater i;
    std::string out;
    const std::string text = compressible(3000);
    SECTION("a later message refers back past the final block (context takeover)") {
        std::string m1 = zlib_finish(text) + std::string(1, '\0');  // RFC form: 00 follows
        REQUIRE(i.decompress(m1, out, 1 << 20, false) == ws::Inflater::result::ok);
        CHECK(out == text);
        std::string m2 = zlib_finish(text, text);
        REQUIRE(m2.size() < 40);  // all back-references
        REQUIRE(i.decompress(m2 + std::string(1, '\0'), out, 1 << 20, false) ==
                ws::Inflater::result::ok);
        CHECK(out == text);
    }
    SECTION("a sender that omits the trailing 00") {
        REQUIRE(i.decompress(zlib_finish("Hello"), out, 100, false) == ws::Inflater::result::ok);
        CHECK(out == "Hello");
        REQUIRE(i.decompress(bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), out, 100, false) ==
                ws::Inflater::result::ok);
        CHECK(out == "Hello");
    }
    SECTION("more blocks after a final block in the same message") {
        ZlibSender rest;
        std::string payload = zlib_finish("Hello") + rest.message(", world");
        REQUIRE(i.decompress(payload, out, 100, true) == ws::Inflater::result::ok);
        CHECK(out == "Hello, world");
    }
    SECTION("the limit still applies across final blocks") {
        std::string payload =
            zlib_finish(std::string(600, 'a')) + zlib_finish(std::string(600, 'b'));
        CHECK(i.decompress(payload, out, 1000, true) == ws::Inflater::result::too_big);
        CHECK(i.decompress(payload, out, 1200, true) == ws::Inflater::result::ok);
        CHECK(out == std::string(600, 'a') + std::string(600, 'b'));
    }
}

TEST_CASE("deflate: context takeover makes a repeated message smaller", "[transport][deflate]") {
    const std::string msg = compressible(2000) + random_bytes(300, 5);
    ws::Deflater with(15, 6, 8), without(15, 6, 8);
    std::string a1, a2, b1, b2;
    with.compress(msg, a1, false);
    with.compress(msg, a2, false);
    without.compress(msg, b1, true);
    without.compress(msg, b2, true);
    CHECK(a2.size() < a1.size() / 4);  // refers back to the first message
    CHECK(b1 == b2);                   // each from an empty window
    CHECK(a1 == b1);
    // A fresh inflater cannot decode the second message of a takeover stream.
    ws::Inflater fresh;
    std::string out;
    CHECK(fresh.decompress(a2, out, 1 << 20, true) != ws::Inflater::result::ok);
    // One that saw the first message can.
    ws::Inflater follower;
    REQUIRE(follower.decompress(a1, out, 1 << 20, false) == ws::Inflater::result::ok);
    REQUIRE(follower.decompress(a2, out, 1 << 20, false) == ws::Inflater::result::ok);
    CHECK(out == msg);
}

TEST_CASE("deflate: Inflater output limit (zip bomb)", "[transport][deflate]") {
    ws::Deflater d(15, 9, 9);
    std::string bomb;
    d.compress(std::string(10 << 20, 'A'), bomb, true);
    REQUIRE(bomb.size() < 20000);  // 10 MiB of 'A' is tiny compressed
    ws::Inflater i;
    std::string out;
    CHECK(i.decompress(bomb, out, 1 << 20, true) == ws::Inflater::result::too_big);
    CHECK(out.size() <= (1u << 20) + 1);  // it stopped near the limit
    // Exactly at the limit is fine; one byte under is too big.
    std::string exact;
    d.compress(std::string(5000, 'B'), exact, true);
    CHECK(i.decompress(exact, out, 5000, true) == ws::Inflater::result::ok);
    CHECK(out == std::string(5000, 'B'));
    CHECK(i.decompress(exact, out, 4999, true) == ws::Inflater::result::too_big);
    CHECK(i.decompress(exact, out, 0, true) == ws::Inflater::result::too_big);
    // After too_big the inflater is reset and usable again.
    std::string hello;
    d.compress("Hello", hello, true);
    REQUIRE(i.decompress(hello, out, 100, false) == ws::Inflater::result::ok);
    CHECK(out == "Hello");
}

TEST_CASE("deflate: an unlimited Inflater limit works", "[transport][deflate]") {
    // Options::max_message_size may be set to the largest size_t to mean
    // "no limit"; the output room computation must not overflow.
    ws::Deflater d(15, 6, 8);
    std::string c;
    d.compress("Hello, unlimited", c, true);
    ws::Inflater i;
    std::string out;
    CHECK(i.decompress(c, out, std::numeric_limits<std::size_t>::max(), true) ==
          ws::Inflater::result::ok);
    CHECK(out == "Hello, unlimited");
}

TEST_CASE("deflate: corrupt data is reported, and the inflater recovers", "[transport][deflate]") {
    ws::Inflater i;
    std::string out;
    for (std::string bad : {bytes({0x07}),                          // BTYPE 11 is reserved
                            bytes({0x06, 0x00}),                    // the same, not final
                            bytes({0x00, 0x05, 0x00, 0x00, 0x00}),  // stored: NLEN != ~LEN
                            bytes({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}),
                            // 7.2.3.2's second message: a distance before the start
                            // of a fresh window.
                            bytes({0xF2, 0x00, 0x11, 0x00, 0x00})}) {
        CAPTURE(bad);
        CHECK(i.decompress(bad, out, 1 << 20, false) == ws::Inflater::result::corrupt);
        // The stream was reset: a valid message decodes next.
        std::string ok = bytes({0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00});
        REQUIRE(i.decompress(ok, out, 1 << 20, true) == ws::Inflater::result::ok);
        CHECK(out == "Hello");
    }
}

TEST_CASE("deflate: RFC 7692 7.2.3 examples decode", "[transport][deflate]") {
    ws::Inflater i;
    std::string out;
    SECTION("7.2.3.1 a message compressed with one block") {
        REQUIRE(i.decompress(bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), out, 100, true) ==
                ws::Inflater::result::ok);
        CHECK(out == "Hello");
    }
    SECTION("7.2.3.2 sharing the LZ77 window") {
        REQUIRE(i.decompress(bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), out, 100, false) ==
                ws::Inflater::result::ok);
        CHECK(out == "Hello");
        REQUIRE(i.decompress(bytes({0xf2, 0x00, 0x11, 0x00, 0x00}), out, 100, false) ==
                ws::Inflater::result::ok);
        CHECK(out == "Hello");
    }
    SECTION("7.2.3.3 a stored (uncompressed) block") {
        REQUIRE(
            i.decompress(bytes({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}),
                         out, 100, true) == ws::Inflater::result::ok);
        CHECK(out == "Hello");
    }
    SECTION("7.2.3.4 a block with BFINAL set") {
        REQUIRE(i.decompress(bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}), out, 100,
                             false) == ws::Inflater::result::ok);
        CHECK(out == "Hello");
        // The sender starts a new DEFLATE stream for its next message.
        REQUIRE(i.decompress(bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), out, 100, false) ==
                ws::Inflater::result::ok);
        CHECK(out == "Hello");
    }
    SECTION("7.2.3.5 two DEFLATE blocks in one message") {
        REQUIRE(i.decompress(bytes({0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9,
                                    0xc9, 0x07, 0x00}),
                             out, 100, true) == ws::Inflater::result::ok);
        CHECK(out == "Hello");
    }
    SECTION("7.2.3.6 an empty message") {
        REQUIRE(i.decompress(bytes({0x00}), out, 100, true) == ws::Inflater::result::ok);
        CHECK(out.empty());
        REQUIRE(i.decompress(bytes({0x02, 0x00}), out, 100, true) == ws::Inflater::result::ok);
        CHECK(out.empty());
    }
}

TEST_CASE("deflate: messages compressed by zlib directly decode", "[transport][deflate]") {
    const int bits = GENERATE(9, 10, 13, 15);
    const int level = GENERATE(0, 1, 6, 9);
    const bool takeover = GENERATE(false, true);
    CAPTURE(bits, level, takeover);
    ZlibSender sender(bits, level);
    ws::Inflater i;
    const std::vector<std::string> messages = {"Hello", compressible(70000), "",
                                               random_bytes(3000, 3), compressible(70000)};
    for (auto& m : messages) {
        CAPTURE(m.size());
        std::string out;
        if (!takeover) {
            // A sender without context takeover resets after each message.
            ZlibSender fresh(bits, level);
            REQUIRE(i.decompress(fresh.message(m), out, 1 << 20, true) == ws::Inflater::result::ok);
        } else {
            REQUIRE(i.decompress(sender.message(m), out, 1 << 20, false) ==
                    ws::Inflater::result::ok);
        }
        CHECK(out == m);
    }
    // A peer that leaves the 00 00 FF FF tail on is decoded too.
    ZlibSender sloppy(bits, level);
    std::string out;
    REQUIRE(i.decompress(sloppy.message("tail kept", false), out, 100, true) ==
            ws::Inflater::result::ok);
    CHECK(out == "tail kept");
}

TEST_CASE("deflate: DeflateSession in both roles", "[transport][deflate]") {
    const bool snct = GENERATE(false, true);
    const bool cnct = GENERATE(false, true);
    const int smwb = GENERATE(9, 15);
    const int cmwb = GENERATE(10, 15);
    CAPTURE(snct, cnct, smwb, cmwb);
    ws::DeflateParams params;
    params.server_no_context_takeover = snct;
    params.client_no_context_takeover = cnct;
    params.server_max_window_bits = smwb;
    params.client_max_window_bits = cmwb;
    ws::DeflateOptions opt = enabled_options();
    ws::DeflateSession server(params, opt, true);
    ws::DeflateSession client(params, opt, false);
    CHECK(server.params().server_max_window_bits == smwb);
    CHECK(server.should_compress(opt.min_compress_size));
    CHECK_FALSE(server.should_compress(opt.min_compress_size - 1));

    const std::vector<std::string> messages = {
        compressible(3000),    "Hello", compressible(3000),
        random_bytes(5000, 9), "",      compressible(1 << 20)};
    for (std::size_t k = 0; k < messages.size(); ++k) {
        CAPTURE(k);
        std::string c2s, s2c, out;
        client.compress(messages[k], c2s);
        server.compress(messages[k], s2c);
        REQUIRE(server.decompress(c2s, out, 2 << 20) == ws::Inflater::result::ok);
        CHECK(out == messages[k]);
        REQUIRE(client.decompress(s2c, out, 2 << 20) == ws::Inflater::result::ok);
        CHECK(out == messages[k]);
        // Without takeover, the sender's message is independent of the others.
        if (cnct) CHECK(zlib_inflate(c2s) == messages[k]);
        if (snct) CHECK(zlib_inflate(s2c) == messages[k]);
    }
    // The session enforces the limit it is given.
    std::string big, out;
    client.compress(std::string(100000, 'z'), big);
    CHECK(server.decompress(big, out, 99999) == ws::Inflater::result::too_big);
}

TEST_CASE("deflate: sessions sharing per-thread streams do not disturb each other",
          "[transport][deflate]") {
    // Two connections without context takeover share this thread's streams;
    // a third with takeover has its own. Interleave their messages.
    ws::DeflateParams shared_params;
    shared_params.server_no_context_takeover = true;
    shared_params.client_no_context_takeover = true;
    ws::DeflateParams own_params;
    auto opt = enabled_options();
    ws::DeflateSession a_srv(shared_params, opt, true), a_cli(shared_params, opt, false);
    ws::DeflateSession b_srv(shared_params, opt, true), b_cli(shared_params, opt, false);
    ws::DeflateSession c_srv(own_params, opt, true), c_cli(own_params, opt, false);
    for (int round = 0; round < 5; ++round) {
        CAPTURE(round);
        for (auto [srv, cli, tag] :
             {std::tuple{&a_srv, &a_cli, "a"}, std::tuple{&b_srv, &b_cli, "b"},
              std::tuple{&c_srv, &c_cli, "c"}}) {
            std::string msg = compressible(500) + tag + std::to_string(round);
            std::string wire, out;
            srv->compress(msg, wire);
            REQUIRE(cli->decompress(wire, out, 1 << 20) == ws::Inflater::result::ok);
            CHECK(out == msg);
            wire.clear();
            cli->compress(msg, wire);
            REQUIRE(srv->decompress(wire, out, 1 << 20) == ws::Inflater::result::ok);
            CHECK(out == msg);
        }
    }
}

namespace {

// The semantics Inflater must keep, spelled out the slow, obvious way: a
// message is a run of DEFLATE streams; each BFINAL block ends one and the
// next starts with the same window. Only for small inputs.
std::string reference_inflate(std::string_view payload, bool& ok) {
    z_stream z{};
    REQUIRE(inflateInit2(&z, -15) == Z_OK);
    std::string in(payload);
    in.append("\x00\x00\xff\xff", 4);
    z.next_in = reinterpret_cast<Bytef*>(in.data());
    z.avail_in = static_cast<uInt>(in.size());
    std::string out;
    ok = true;
    while (z.avail_in > 0) {
        char buf[4096];
        z.next_out = reinterpret_cast<Bytef*>(buf);
        z.avail_out = sizeof buf;
        int rc = inflate(&z, Z_SYNC_FLUSH);
        out.append(buf, sizeof buf - z.avail_out);
        if (rc == Z_STREAM_END) {
            if (z.avail_in == 4) break;  // the tail after a final block is not decoded
            std::string window(32768, '\0');
            uInt n = 0;
            REQUIRE(inflateGetDictionary(&z, reinterpret_cast<Bytef*>(window.data()), &n) == Z_OK);
            REQUIRE(inflateReset(&z) == Z_OK);
            REQUIRE(inflateSetDictionary(&z, reinterpret_cast<Bytef*>(window.data()), n) == Z_OK);
        } else if (rc != Z_OK && !(rc == Z_BUF_ERROR && z.avail_in == 0)) {
            ok = false;
            break;
        }
    }
    inflateEnd(&z);
    return out;
}

std::string repeat(std::string_view piece, std::size_t times) {
    std::string s;
    s.reserve(piece.size() * times);
    for (std::size_t i = 0; i < times; ++i)
        s += piece;
    return s;
}

// Stored blocks holding one byte each: 00 (or 01, final) 01 00 fe ff, byte.
// Non-final ones end with the 00 that starts the empty stored block the
// receiver's 00 00 ff ff completes, as a sender's flush would.
std::string one_byte_stored_blocks(std::string_view text, bool final_blocks) {
    std::string s;
    for (char c : text) {
        s += bytes({final_blocks ? 0x01 : 0x00, 0x01, 0x00, 0xfe, 0xff});
        s += c;
    }
    if (!final_blocks) s += '\0';
    return s;
}

}  // namespace

// Shapes a hostile peer can pick to make inflating expensive (issue 11); their
// cost is printed by benchmarks/inflate. Here: each gives the right result.
TEST_CASE("deflate: adversarial block structures inflate correctly", "[transport][deflate]") {
    const bool takeover = GENERATE(false, true);
    CAPTURE(takeover);
    ws::Inflater i;
    std::string out;
    const bool reset = !takeover;

    SECTION("1 MiB of empty final fixed blocks (03 00) is an empty message") {
        const std::string payload = repeat(bytes({0x03, 0x00}), 512 * 1024);
        REQUIRE(i.decompress(payload, out, 1 << 20, reset) == ws::Inflater::result::ok);
        CHECK(out.empty());
        // The stream is usable afterwards, and with takeover still has its window.
        std::string text = compressible(3000);
        REQUIRE(i.decompress(zlib_finish(text), out, 1 << 20, reset) == ws::Inflater::result::ok);
        CHECK(out == text);
        if (takeover) {
            std::string refers_back = repeat(bytes({0x03, 0x00}), 1000) + zlib_finish(text, text);
            REQUIRE(i.decompress(refers_back, out, 1 << 20, false) == ws::Inflater::result::ok);
            CHECK(out == text);
        }
    }
    SECTION("empty final blocks between data keep the window") {
        const std::string text = compressible(3000);
        std::string payload = zlib_finish(text) + repeat(bytes({0x03, 0x00}), 10000) +
                              zlib_finish(text, text) + repeat(bytes({0x03, 0x00}), 3);
        REQUIRE(zlib_finish(text, text).size() < 40);  // only back-references
        REQUIRE(i.decompress(payload, out, 1 << 20, reset) == ws::Inflater::result::ok);
        CHECK(out == text + text);
    }
    SECTION("empty final blocks agree with zlib, padding bits and near misses included") {
        // 03 x0 with any padding is an empty final block; 03 01 and 03 02
        // are not (a length code with no window to copy from); 03 alone is
        // truncated.
        for (std::string payload :
             {repeat(bytes({0x03, 0x00}), 50) + bytes({0x03, 0xfc}) + bytes({0x03, 0x04}),
              repeat(bytes({0x03, 0x00}), 50) + bytes({0x03, 0x01}),
              repeat(bytes({0x03, 0x00}), 50) + bytes({0x03, 0x02, 0x00}),
              repeat(bytes({0x03, 0x00}), 50) + bytes({0x03}),
              zlib_finish("Hello") + repeat(bytes({0x03, 0x00}), 7) + bytes({0x00}),
              repeat(bytes({0x03, 0x00}), 7) + bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})}) {
            CAPTURE(payload.size(), payload.substr(payload.size() - 3));
            bool ok = false;
            std::string expected = reference_inflate(payload, ok);
            auto r = i.decompress(payload, out, 1 << 20, true);
            CHECK((r == ws::Inflater::result::ok) == ok);
            if (ok) CHECK(out == expected);
        }
    }
    SECTION("stored blocks of one byte each, not final and final") {
        const std::string text = compressible(174762);  // 6 bytes each: ~1 MiB
        for (bool final_blocks : {false, true}) {
            CAPTURE(final_blocks);
            std::string payload = one_byte_stored_blocks(text, final_blocks);
            REQUIRE(payload.size() > (1u << 20) - 100);
            REQUIRE(i.decompress(payload, out, 1 << 20, reset) == ws::Inflater::result::ok);
            CHECK(out == text);
            CHECK(i.decompress(payload, out, text.size() - 1, true) ==
                  ws::Inflater::result::too_big);
        }
    }
    SECTION("maximal back-references up to the limit exactly") {
        ws::Deflater d(15, 9, 9);
        std::string bomb;
        d.compress(std::string(1 << 20, 'A'), bomb, true);
        REQUIRE(bomb.size() < 2000);
        REQUIRE(i.decompress(bomb, out, 1 << 20, reset) == ws::Inflater::result::ok);
        CHECK(out == std::string(1 << 20, 'A'));
        CHECK(i.decompress(bomb, out, (1 << 20) - 1, true) == ws::Inflater::result::too_big);
    }
    SECTION("random incompressible data") {
        const std::string noise = random_bytes(300000, 11);
        ws::Deflater d(15, 6, 8);
        std::string c;
        d.compress(noise, c, true);
        REQUIRE(c.size() >= noise.size());
        REQUIRE(i.decompress(c, out, 1 << 20, reset) == ws::Inflater::result::ok);
        CHECK(out == noise);
    }
}
