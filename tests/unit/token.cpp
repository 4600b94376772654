// Phoenix.Token-style signed tokens: the envelope, round trips, and every way
// a token is refused (missing, invalid, expired), with an injected clock.
#include <catch2/catch.hpp>

#include <plume/detail/base64.hpp>
#include <plume/server/token.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using nlohmann::json;
using plume::server::SignOptions;
using plume::server::token_error;
using plume::server::TokenSigner;
using plume::server::VerifyOptions;
using namespace std::chrono_literals;

namespace {

const std::string secret = "plume-test-secret-key-base-0123456789-abcdefghijklmnopqrstuvwxyz";

// A clock the test moves by hand.
struct FakeClock {
    std::chrono::system_clock::time_point now =
        std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'123));
    TokenSigner::Clock fn() {
        return [this] { return now; };
    }
};

std::vector<std::string> split(const std::string& token) {
    std::vector<std::string> parts{""};
    for (char c : token) {
        if (c == '.')
            parts.emplace_back();
        else
            parts.back() += c;
    }
    return parts;
}

// The signature the envelope specifies, computed independently of TokenSigner.
std::string reference_signature(const std::string& salt, const std::string& signed_part) {
    std::array<unsigned char, 32> key{};
    REQUIRE(PKCS5_PBKDF2_HMAC(secret.data(), static_cast<int>(secret.size()),
                              reinterpret_cast<const unsigned char*>(salt.data()),
                              static_cast<int>(salt.size()), 1000, EVP_sha256(), 32,
                              key.data()) == 1);
    unsigned char mac[32];
    unsigned int size = 0;
    REQUIRE(HMAC(EVP_sha256(), key.data(), 32,
                 reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(),
                 mac, &size));
    return plume::detail::base64url_encode_unpadded(
        std::string(reinterpret_cast<const char*>(mac), size));
}

// A correctly signed token around an arbitrary message text.
std::string forge_with_key(const std::string& salt, const std::string& message) {
    std::string signed_part = "SFMyNTY." + plume::detail::base64url_encode_unpadded(message);
    return signed_part + "." + reference_signature(salt, signed_part);
}

}  // namespace

TEST_CASE("token: sign then verify returns the data", "[token]") {
    FakeClock clock;
    TokenSigner tokens(secret, clock.fn());
    for (const json& data :
         {json{{"user_id", 42}}, json("a string"), json(7), json::array({1, "two", nullptr}),
          json(nullptr), json{{"nested", {{"deep", {1.5, true}}}}, {"u", "caf\xc3\xa9"}}}) {
        INFO(data.dump());
        auto t = tokens.sign("user socket", data);
        auto back = tokens.verify("user socket", t);
        REQUIRE(back);
        CHECK(*back == data);
    }
}

TEST_CASE("token: the envelope is Phoenix's, the message is JSON", "[token]") {
    FakeClock clock;
    TokenSigner tokens(secret, clock.fn());
    auto t = tokens.sign("user socket", json{{"user_id", 42}});

    auto parts = split(t);
    REQUIRE(parts.size() == 3);
    CHECK(parts[0] == "SFMyNTY");
    CHECK(plume::detail::base64_decode(parts[0] + "=") == "HS256");
    for (const auto& part : parts)
        CHECK(part.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789-_") == std::string::npos);

    auto message = plume::detail::base64url_decode_unpadded(parts[1]);
    REQUIRE(message);
    CHECK(*message == R"({"data":{"user_id":42},"max_age":86400,"signed":1700000000123})");

    // HMAC-SHA256 with a PBKDF2-SHA256 (1000 iterations, 32 bytes) key.
    CHECK(parts[2] == reference_signature("user socket", parts[0] + "." + parts[1]));

    // Deterministic for the same inputs and time.
    CHECK(tokens.sign("user socket", json{{"user_id", 42}}) == t);
}

TEST_CASE("token: a token is bound to its salt and secret", "[token]") {
    FakeClock clock;
    TokenSigner tokens(secret, clock.fn());
    auto t = tokens.sign("user socket", json{{"user_id", 42}});

    CHECK(tokens.verify("user socket", t));
    CHECK(tokens.verify("other salt", t).error() == token_error::invalid);
    CHECK(tokens.verify("", t).error() == token_error::invalid);

    TokenSigner other(secret + "!", clock.fn());
    CHECK(other.verify("user socket", t).error() == token_error::invalid);
}

TEST_CASE("token: tampering is detected", "[token]") {
    FakeClock clock;
    TokenSigner tokens(secret, clock.fn());
    auto t = tokens.sign("user socket", json{{"user_id", 42}});
    auto parts = split(t);

    SECTION("a different message under the old signature") {
        auto forged_message = plume::detail::base64url_encode_unpadded(
            R"({"data":{"user_id":1},"max_age":86400,"signed":1700000000123})");
        CHECK(tokens.verify("user socket", parts[0] + "." + forged_message + "." + parts[2])
                  .error() == token_error::invalid);
    }
    SECTION("any changed character") {
        for (std::size_t i = 0; i < t.size(); ++i) {
            if (t[i] == '.') continue;
            std::string bad = t;
            bad[i] = bad[i] == 'A' ? 'B' : 'A';
            INFO("position " << i);
            CHECK(tokens.verify("user socket", bad).error() == token_error::invalid);
        }
    }
    SECTION("a truncated or extended signature") {
        CHECK(tokens.verify("user socket", t.substr(0, t.size() - 1)).error() ==
              token_error::invalid);
        CHECK(tokens.verify("user socket", t + "A").error() == token_error::invalid);
        CHECK(tokens.verify("user socket", parts[0] + "." + parts[1] + ".").error() ==
              token_error::invalid);
    }
    SECTION("another algorithm marker") {
        CHECK(tokens.verify("user socket", "SFMzODQ." + parts[1] + "." + parts[2]).error() ==
              token_error::invalid);
    }
}

TEST_CASE("token: expiry follows Phoenix's rules", "[token]") {
    FakeClock clock;
    TokenSigner tokens(secret, clock.fn());
    auto t = tokens.sign("s", json(1), {.max_age = 60s});

    SECTION("valid up to and including max_age, expired one millisecond later") {
        clock.now += 60s;
        CHECK(tokens.verify("s", t));
        clock.now += 1ms;
        CHECK(tokens.verify("s", t).error() == token_error::expired);
    }
    SECTION("verify's max_age overrides the embedded one") {
        clock.now += 11s;
        CHECK(tokens.verify("s", t, 10s).error() == token_error::expired);
        CHECK(tokens.verify("s", t, VerifyOptions{.max_age = 12s}));
        clock.now += 24h;
        CHECK(tokens.verify("s", t, {.max_age = std::chrono::hours(48)}));
        CHECK(tokens.verify("s", t, plume::server::token_never_expires));
    }
    SECTION("the default max_age is one day") {
        auto d = tokens.sign("s", json(1));
        clock.now += 24h;
        CHECK(tokens.verify("s", d));
        clock.now += 1ms;
        CHECK(tokens.verify("s", d).error() == token_error::expired);
    }
    SECTION("max_age zero or negative is always expired") {
        CHECK(tokens.verify("s", t, 0s).error() == token_error::expired);
        CHECK(tokens.verify("s", t, -5s).error() == token_error::expired);
        auto z = tokens.sign("s", json(1), {.max_age = 0s});
        CHECK(tokens.verify("s", z).error() == token_error::expired);
    }
    SECTION("a token that never expires") {
        auto forever = tokens.sign("s", json(1), {.max_age = plume::server::token_never_expires});
        auto message = plume::detail::base64url_decode_unpadded(split(forever)[1]);
        REQUIRE(message);
        CHECK(json::parse(*message)["max_age"] == "infinity");
        clock.now += std::chrono::hours(24 * 365 * 100);
        CHECK(tokens.verify("s", forever));
        CHECK(tokens.verify("s", forever, 60s).error() == token_error::expired);
    }
    SECTION("a huge max_age does not overflow") {
        auto huge = tokens.sign("s", json(1), {.max_age = std::chrono::seconds(INT64_MAX / 2)});
        clock.now += std::chrono::hours(24 * 365 * 100);
        CHECK(tokens.verify("s", huge));
    }
}

TEST_CASE("token: signed in the future is invalid", "[token]") {
    FakeClock clock;
    TokenSigner tokens(secret, clock.fn());
    auto future = tokens.sign("s", json(1), {.signed_at = clock.now + 1s});
    CHECK(tokens.verify("s", future).error() == token_error::invalid);
    clock.now += 1s;
    CHECK(tokens.verify("s", future));

    auto past = tokens.sign("s", json(1), {.signed_at = clock.now - 2h});
    CHECK(tokens.verify("s", past));
    CHECK(tokens.verify("s", past, 1h).error() == token_error::expired);
}

TEST_CASE("token: missing and garbage tokens", "[token]") {
    FakeClock clock;
    TokenSigner tokens(secret, clock.fn());
    CHECK(tokens.verify("s", "").error() == token_error::missing);
    for (const char* garbage :
         {"garbage", ".", "..", "...", "a.b.c", "SFMyNTY", "SFMyNTY.", "SFMyNTY..",
          "SFMyNTY.e30.e30", "SFMyNTY.e30.e30.e30", "SFMyNTY.!!!.xxx", " SFMyNTY.a.b",
          "SFMyNTY.a.b\n", "\xff\xfe.\x00\x01.zz"}) {
        INFO(garbage);
        CHECK(tokens.verify("s", garbage).error() == token_error::invalid);
    }
    auto t = tokens.sign("s", json(1));
    CHECK(tokens.verify("s", t + " ").error() == token_error::invalid);
    CHECK(tokens.verify("s", t + ".x").error() == token_error::invalid);
}

TEST_CASE("token: correctly signed but malformed messages are invalid", "[token]") {
    FakeClock clock;
    TokenSigner tokens(secret, clock.fn());
    // Sanity: the forging helper makes tokens TokenSigner accepts.
    CHECK(tokens.verify("s",
                        forge_with_key("s", R"({"data":5,"max_age":60,"signed":1700000000000})")));
    for (const char* message :
         {"not json", "[1,2,3]", "\"x\"", "{}", R"({"max_age":60,"signed":1700000000000})",
          R"({"data":5,"signed":1700000000000})", R"({"data":5,"max_age":60})",
          R"({"data":5,"max_age":60,"signed":"1700000000000"})",
          R"({"data":5,"max_age":60,"signed":1.7e12})",
          R"({"data":5,"max_age":"forever","signed":1700000000000})",
          R"({"data":5,"max_age":null,"signed":1700000000000})"}) {
        INFO(message);
        CHECK(tokens.verify("s", forge_with_key("s", message)).error() == token_error::invalid);
    }
}

TEST_CASE("token: errors have a category and readable messages", "[token]") {
    std::error_code ec = token_error::expired;
    CHECK(std::string(ec.category().name()) == "plume.token");
    CHECK(ec.message() == "token expired");
    CHECK(make_error_code(token_error::missing).message() == "token missing");
    CHECK(make_error_code(token_error::invalid).message() == "token invalid");
}

TEST_CASE("token: a weak secret is refused at construction", "[token]") {
    CHECK_THROWS_AS(TokenSigner(""), std::invalid_argument);
    CHECK_THROWS_AS(TokenSigner(std::string(31, 'k')), std::invalid_argument);
    CHECK_NOTHROW(TokenSigner(std::string(32, 'k')));
}

TEST_CASE("token: the real clock is the default", "[token]") {
    TokenSigner tokens(secret);
    auto t = tokens.sign("s", json{{"id", 1}});
    auto back = tokens.verify("s", t);
    REQUIRE(back);
    CHECK((*back)["id"] == 1);
}

TEST_CASE("token: concurrent verification shares the key cache safely", "[token]") {
    TokenSigner tokens(secret);
    std::vector<std::string> salts = {"a", "b", "c", "d"};
    std::vector<std::string> minted;
    for (const auto& salt : salts)
        minted.push_back(tokens.sign(salt, json(salt)));
    std::vector<std::thread> threads;
    std::array<int, 4> ok{};
    for (std::size_t i = 0; i < 4; ++i)
        threads.emplace_back([&, i] {
            for (int n = 0; n < 50; ++n) {
                auto r = tokens.verify(salts[i], minted[i]);
                if (r && *r == json(salts[i])) ++ok[i];
            }
        });
    for (auto& th : threads)
        th.join();
    for (int count : ok)
        CHECK(count == 50);
}
