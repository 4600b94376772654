// Fuzzes the V1 serializer (vsn 1.0.0): decode and decode_from_server on a
// text frame, then the round trips of wire_roundtrip.hpp. V1's server output
// has no join_ref, so a server-to-client round trip loses it.
#include <cstdint>
#include <string_view>

#include "plume/wire/v1_json.hpp"
#include "wire_roundtrip.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace plume::wire;
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    plume_fuzz::check_roundtrips<V1Json>(
        FrameView::text(bytes), [](auto& value, bool /*binary*/) { value.join_ref.reset(); });
    // V1 has no binary frames at all.
    FUZZ_CHECK(V1Json::decode(FrameView::binary(bytes)).error() == error::binary_unsupported);
    FUZZ_CHECK(V1Json::decode_from_server(FrameView::binary(bytes)).error() ==
               error::binary_unsupported);
    return 0;
}
