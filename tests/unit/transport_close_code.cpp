// Unit tests for plume/transport/close_code.hpp: which close codes a peer may
// send, and their names.
#include <catch2/catch.hpp>

#include <plume/transport/close_code.hpp>

#include <cstdint>
#include <string_view>

namespace ws = plume::transport;

TEST_CASE("close codes: the enum has the RFC 6455 / IANA values", "[transport][close_code]") {
    STATIC_REQUIRE(ws::to_int(ws::close_code::normal) == 1000);
    STATIC_REQUIRE(ws::to_int(ws::close_code::going_away) == 1001);
    STATIC_REQUIRE(ws::to_int(ws::close_code::protocol_error) == 1002);
    STATIC_REQUIRE(ws::to_int(ws::close_code::unsupported_data) == 1003);
    STATIC_REQUIRE(ws::to_int(ws::close_code::no_status) == 1005);
    STATIC_REQUIRE(ws::to_int(ws::close_code::abnormal) == 1006);
    STATIC_REQUIRE(ws::to_int(ws::close_code::invalid_payload) == 1007);
    STATIC_REQUIRE(ws::to_int(ws::close_code::policy_violation) == 1008);
    STATIC_REQUIRE(ws::to_int(ws::close_code::message_too_big) == 1009);
    STATIC_REQUIRE(ws::to_int(ws::close_code::mandatory_extension) == 1010);
    STATIC_REQUIRE(ws::to_int(ws::close_code::internal_error) == 1011);
    STATIC_REQUIRE(ws::to_int(ws::close_code::service_restart) == 1012);
    STATIC_REQUIRE(ws::to_int(ws::close_code::try_again_later) == 1013);
}

TEST_CASE("close codes: is_valid_received_close_code over the whole 16-bit range",
          "[transport][close_code]") {
    auto expected = [](unsigned code) {
        return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
               (code >= 3000 && code <= 4999);
    };
    for (unsigned code = 0; code <= 0xFFFF; ++code) {
        if (ws::is_valid_received_close_code(static_cast<std::uint16_t>(code)) != expected(code)) {
            CAPTURE(code);
            FAIL("verdict differs from RFC 6455 7.4 / IANA");
        }
    }
    // The ones the Autobahn 7.9.x / 7.13.x cases name explicitly.
    for (std::uint16_t bad : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535})
        CHECK_FALSE(ws::is_valid_received_close_code(bad));
    for (std::uint16_t good : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
                               1014, 3000, 3999, 4000, 4999})
        CHECK(ws::is_valid_received_close_code(good));
    STATIC_REQUIRE(ws::is_valid_received_close_code(1000));
    STATIC_REQUIRE_FALSE(ws::is_valid_received_close_code(1005));
}

TEST_CASE("close codes: names", "[transport][close_code]") {
    CHECK(ws::close_code_name(1000) == "normal");
    CHECK(ws::close_code_name(1001) == "going away");
    CHECK(ws::close_code_name(1002) == "protocol error");
    CHECK(ws::close_code_name(1005) == "no status");
    CHECK(ws::close_code_name(1006) == "abnormal closure");
    CHECK(ws::close_code_name(1007) == "invalid payload");
    CHECK(ws::close_code_name(1008) == "policy violation");
    CHECK(ws::close_code_name(1009) == "message too big");
    CHECK(ws::close_code_name(1011) == "internal error");
    CHECK(ws::close_code_name(1012) == "service restart");
    CHECK(ws::close_code_name(3000) == "application");
    CHECK(ws::close_code_name(4999) == "application");
    CHECK(ws::close_code_name(2999) == "unknown");
    CHECK(ws::close_code_name(5000) == "unknown");
    CHECK(ws::close_code_name(0) == "unknown");
}
