// Fuzzes the V2 serializer's text frames ([join_ref, ref, topic, event,
// payload]): decode and decode_from_server, then the round trips of
// wire_roundtrip.hpp.
#include <cstdint>
#include <string_view>

#include "plume/wire/v2_json.hpp"
#include "v2_drop.hpp"
#include "wire_roundtrip.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace plume::wire;
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    plume_fuzz::check_roundtrips<V2Json>(FrameView::text(bytes), plume_fuzz::V2Drop{});
    return 0;
}
