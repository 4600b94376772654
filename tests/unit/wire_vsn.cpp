// Serializer selection by ?vsn=, matching Phoenix's "~> 1.0.0" / "~> 2.0.0".
#include <catch2/catch.hpp>

#include <plume/wire.hpp>

#include <string>
#include <string_view>

using namespace plume::wire;

TEST_CASE("vsn: ~> 2.0.0 picks V2, ~> 1.0.0 picks V1", "[wire][vsn]") {
    for (std::string_view v : {"2.0.0", "2.0.1", "2.0.10", "2.0.0+build.7", "2.0.1-rc.1"}) {
        INFO(v);
        auto s = serializer_for_vsn(v);
        REQUIRE(s);
        CHECK(*s == Vsn::v2);
    }
    for (std::string_view v : {"1.0.0", "1.0.5", "1.0.99"}) {
        INFO(v);
        auto s = serializer_for_vsn(v);
        REQUIRE(s);
        CHECK(*s == Vsn::v1);
    }
    // No vsn parameter means V1.
    CHECK(*serializer_for_vsn(vsn_when_absent) == Vsn::v1);
}

TEST_CASE("vsn: anything else is refused", "[wire][vsn]") {
    for (std::string_view v :
         {"3.0.0",  "2.1.0",          "1.1.0",  "0.9.0",    "abc",      "2.0",        "2",
          "",       "2.0.0.0",        "02.0.0", "2.00.0",   "2.0.01",   " 2.0.0",     "2.0.0 ",
          "2.0.x",  "2.0.0-",         "2.0.0+", "2.0.0-rc", "2.0.1-01", "2.0.1-a..b", "v2.0.0",
          "2.0.-1", "99999999999.0.0"}) {
        INFO("'" << v << "'");
        CHECK(serializer_for_vsn(v).error() == error::unsupported_vsn);
    }
}

TEST_CASE("vsn: with_serializer dispatches to the policy type", "[wire][vsn]") {
    auto name = [](Vsn v) {
        return with_serializer(v, []<class S>(S) { return std::string(S::vsn); });
    };
    CHECK(name(Vsn::v1) == "1.0.0");
    CHECK(name(Vsn::v2) == "2.0.0");
    CHECK(to_string(Vsn::v1) == "1.0.0");
    CHECK(to_string(Vsn::v2) == "2.0.0");

    auto reply = reply_ok(plume::wire::Message{"1", "2", "t", "e", {}});
    auto v1 = with_serializer(Vsn::v1, [&]<class S>(S) { return S::encode(reply); });
    auto v2 = with_serializer(Vsn::v2, [&]<class S>(S) { return S::encode(reply); });
    REQUIRE(v1);
    REQUIRE(v2);
    CHECK(v1->bytes.front() == '{');
    CHECK(v2->bytes.front() == '[');
}
