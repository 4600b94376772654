// Fuzzes the V2 serializer's binary frames (kind 0 push, 1 reply, 2
// broadcast): decode and decode_from_server, then the round trips of
// wire_roundtrip.hpp. A decoded binary frame's header strings are valid UTF-8
// of at most 255 bytes, so re-encoding it must always succeed.
#include <cstdint>
#include <string_view>

#include "plume/wire/v2_json.hpp"
#include "v2_drop.hpp"
#include "wire_roundtrip.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace plume::wire;
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    plume_fuzz::check_roundtrips<V2Json>(FrameView::binary(bytes), plume_fuzz::V2Drop{});
    return 0;
}
