// Fuzzes permessage-deflate decompression through Inflater's public API
// (decompress with a size limit), one message at a time, with or without
// context takeover. Input: [flags][limit] then messages, each as a 2-byte
// big-endian length and that many bytes (the last one takes what is left).
//   flags bit 0: context takeover (the window carries over to the next message)
//   limit: the output limit, 1 << (limit % 21) bytes
// Properties: an accepted message fits the limit, and what the Inflater
// produced comes back unchanged through a Deflater and a fresh Inflater with
// the same takeover mode.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "plume/transport/deflate.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using plume::transport::Deflater;
    using plume::transport::Inflater;
    if (size < 2) return 0;
    const bool takeover = data[0] & 1;
    const std::size_t limit = std::size_t{1} << (data[1] % 21);
    std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);

    std::vector<std::string_view> messages;
    while (!rest.empty() && messages.size() < 64) {
        std::size_t n = rest.size();
        if (rest.size() >= 2) {
            n = (std::size_t{static_cast<unsigned char>(rest[0])} << 8) |
                static_cast<unsigned char>(rest[1]);
            rest.remove_prefix(2);
            n = std::min(n, rest.size());
        }
        messages.push_back(rest.substr(0, n));
        rest.remove_prefix(n);
    }

    Inflater inflater;
    std::vector<std::string> accepted;
    for (auto m : messages) {
        std::string out = "stale";
        auto r = inflater.decompress(m, out, limit, !takeover);
        if (r != Inflater::result::ok) {
            // A connection is failed at its first bad message; without takeover
            // the next message starts afresh, so go on.
            if (takeover) break;
            continue;
        }
        FUZZ_CHECK(out.size() <= limit);
        accepted.push_back(std::move(out));
    }

    // Round trip what was accepted through plume's own compressor.
    Deflater deflater(15, 6, 8);
    Inflater again;
    for (auto& plain : accepted) {
        std::string compressed;
        deflater.compress(plain, compressed, !takeover);
        std::string out;
        FUZZ_CHECK(again.decompress(compressed, out, limit, !takeover) == Inflater::result::ok);
        FUZZ_CHECK(out == plain);
    }
    return 0;
}
