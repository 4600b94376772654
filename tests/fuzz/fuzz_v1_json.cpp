// Fuzzes the V1 serializer (vsn 1.0.0): decode and decode_from_server on a
// text frame, then the round trips of wire_roundtrip.hpp. V1's server output
// has no join_ref, so a server-to-client round trip loses it. Binary frames
// must decode exactly as the same bytes in a text frame.
#include <cstdint>
#include <string_view>

#include "plume/detail/utf8.hpp"
#include "plume/wire/v1_json.hpp"
#include "wire_roundtrip.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace plume::wire;
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    plume_fuzz::check_roundtrips<V1Json>(
        FrameView::text(bytes), [](auto& value, bool /*binary*/) { value.join_ref.reset(); });
    // A binary frame is read as the same JSON text (Phoenix's V1 serializer
    // does so), provided its bytes are UTF-8.
    // A text frame reaches decode only after the transport checked its
    // UTF-8; bytes that are not UTF-8 are refused as a binary frame.
    if (!plume::detail::is_valid_utf8(bytes)) {
        FUZZ_CHECK(!V1Json::decode(FrameView::binary(bytes)));
        return 0;
    }
    auto as_text = V1Json::decode(FrameView::text(bytes));
    auto as_binary = V1Json::decode(FrameView::binary(bytes));
    FUZZ_CHECK(bool(as_text) == bool(as_binary));
    if (as_text) FUZZ_CHECK(*as_text == *as_binary);
    auto from_server_text = V1Json::decode_from_server(FrameView::text(bytes));
    auto from_server_binary = V1Json::decode_from_server(FrameView::binary(bytes));
    FUZZ_CHECK(bool(from_server_text) == bool(from_server_binary));
    return 0;
}
