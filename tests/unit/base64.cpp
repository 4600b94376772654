// plume::detail base64: RFC 4648 vectors, both alphabets, with and without
// padding, and strict rejection of everything that is not canonical base64.
#include <catch2/catch.hpp>

#include <plume/detail/base64.hpp>

#include <string>
#include <utility>
#include <vector>

using namespace plume::detail;

namespace {

std::string strip_padding(std::string s) {
    while (!s.empty() && s.back() == '=')
        s.pop_back();
    return s;
}

}  // namespace

TEST_CASE("base64: RFC 4648 section 10 test vectors", "[base64]") {
    const std::vector<std::pair<std::string, std::string>> vectors = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (const auto& [plain, encoded] : vectors) {
        INFO("plain: \"" << plain << "\"");
        CHECK(base64_encode(plain) == encoded);
        CHECK(base64url_encode(plain) == encoded);  // no + or / in these vectors
        CHECK(base64_encode_unpadded(plain) == strip_padding(encoded));
        CHECK(base64url_encode_unpadded(plain) == strip_padding(encoded));

        CHECK(base64_decode(encoded) == plain);
        CHECK(base64url_decode(encoded) == plain);
        CHECK(base64_decode_unpadded(strip_padding(encoded)) == plain);
        CHECK(base64url_decode_unpadded(strip_padding(encoded)) == plain);
    }
}

TEST_CASE("base64: the two alphabets differ only in characters 62 and 63", "[base64]") {
    const std::string bytes = "\xfb\xff\xbf";  // 111110 111111 111110 111111
    CHECK(base64_encode(bytes) == "+/+/");
    CHECK(base64url_encode(bytes) == "-_-_");
    CHECK(base64_decode("+/+/") == bytes);
    CHECK(base64url_decode("-_-_") == bytes);
    // Each alphabet refuses the other's characters.
    CHECK_FALSE(base64_decode("-_-_"));
    CHECK_FALSE(base64url_decode("+/+/"));

    CHECK(base64_encode(std::string("\xfb\xff")) == "+/8=");
    CHECK(base64url_encode_unpadded(std::string("\xfb\xff")) == "-_8");
}

TEST_CASE("base64: the pointer overload used for digests", "[base64]") {
    const unsigned char digest[] = {0x00, 0x01, 0xfe, 0xff};
    CHECK(base64_encode(digest, sizeof digest) == "AAH+/w==");
}

TEST_CASE("base64: every byte value and length round-trips in all four flavours", "[base64]") {
    std::string all;
    for (int i = 0; i < 256; ++i)
        all += static_cast<char>(i);
    for (std::size_t len = 0; len <= all.size(); len += (len < 16 ? 1 : 37)) {
        auto data = all.substr(all.size() - len);
        INFO("length " << len);
        CHECK(base64_decode(base64_encode(data)) == data);
        CHECK(base64_decode_unpadded(base64_encode_unpadded(data)) == data);
        CHECK(base64url_decode(base64url_encode(data)) == data);
        CHECK(base64url_decode_unpadded(base64url_encode_unpadded(data)) == data);
        CHECK(base64_encode(data).size() % 4 == 0);
        CHECK(base64url_encode_unpadded(data).find('=') == std::string::npos);
    }
}

TEST_CASE("base64: strict decoding rejects malformed input", "[base64]") {
    SECTION("padded forms need whole groups and well-placed padding") {
        CHECK_FALSE(base64_decode("Zg"));        // padding missing
        CHECK_FALSE(base64_decode("Zg="));       // length not a multiple of 4
        CHECK_FALSE(base64_decode("Zm9vY"));     // ditto
        CHECK_FALSE(base64_decode("===="));      // a group of padding only
        CHECK_FALSE(base64_decode("Z==="));      // one character cannot make a byte
        CHECK_FALSE(base64_decode("Zg==Zg=="));  // padding in the middle
        CHECK_FALSE(base64_decode("Z=g="));      // padding before data
        CHECK_FALSE(base64url_decode("Zg"));
    }
    SECTION("unpadded forms refuse '=' and impossible lengths") {
        CHECK_FALSE(base64_decode_unpadded("Zg=="));
        CHECK_FALSE(base64url_decode_unpadded("Zm8="));
        CHECK_FALSE(base64_decode_unpadded("Z"));  // 6 bits
        CHECK_FALSE(base64url_decode_unpadded("Zm9vY"));
    }
    SECTION("characters outside the alphabet, whitespace included") {
        CHECK_FALSE(base64_decode("Zm9v YmFy"));
        CHECK_FALSE(base64_decode("Zm9vYmFy\n"));
        CHECK_FALSE(base64_decode(" Zm9vYmFy"));
        CHECK_FALSE(base64_decode("Zm9v\rYmE="));
        CHECK_FALSE(base64_decode("Zm9*"));
        CHECK_FALSE(base64_decode(std::string("Zm9v\0\0\0\0", 8)));
        CHECK_FALSE(base64url_decode_unpadded("Zm9v.mFy"));
        CHECK_FALSE(base64_decode_unpadded("Zm9\xc3\xa9"));
    }
    SECTION("non-zero leftover bits are a second spelling of the same bytes") {
        CHECK(base64_decode("Zg==") == "f");
        CHECK_FALSE(base64_decode("Zh=="));  // 'h' sets bits that fall off the end
        CHECK(base64_decode("Zm8=") == "fo");
        CHECK_FALSE(base64_decode("Zm9="));
        CHECK_FALSE(base64url_decode_unpadded("Zh"));
    }
}

TEST_CASE("base64: phoenix.js authToken subprotocol is unpadded standard base64", "[base64]") {
    // btoa(token).replace(/=/g, "") — the server decodes it with the standard
    // alphabet and no padding.
    const std::string token = "SFMyNTY.g2gDYSpuBgBxQ-ZVjwFiAAFRgA.sig";
    auto wire = base64_encode_unpadded(token);
    CHECK(wire.find('=') == std::string::npos);
    CHECK(base64_decode_unpadded(wire) == token);
    // "?>" encodes with '/' and '+' in the standard alphabet.
    CHECK(base64_encode_unpadded("?\?>") == "Pz8+");
    CHECK(base64_encode_unpadded("?\?\?") == "Pz8/");
}
