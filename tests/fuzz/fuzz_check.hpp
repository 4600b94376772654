// tests/fuzz/fuzz_check.hpp — what the fuzz targets share: a property check
// that aborts (so libFuzzer records the input as a crash), and the byte splits
// a target feeds a stream parser with, derived from the input itself so a
// crash reproduces from its file alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

// A failed property is a crash: libFuzzer saves the input and stops.
#define FUZZ_CHECK(cond)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                    \
        }                                                                                    \
    } while (0)

namespace plume_fuzz {

/// Chunk sizes covering `size` bytes: a xorshift stream seeded by `seed`, with
/// sizes from 1 byte up to the whole rest, so both the one-read (zero-copy)
/// path and byte-at-a-time header reassembly are reached.
inline std::vector<std::size_t> splits(std::size_t size, std::uint32_t seed) {
    std::vector<std::size_t> out;
    std::uint32_t x = seed * 2654435761u + 1;
    while (size > 0) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        std::size_t n;
        switch (x & 3) {
            case 0:
                n = 1;
                break;
            case 1:
                n = 1 + (x >> 8) % 16;
                break;
            case 2:
                n = 1 + (x >> 8) % 256;
                break;
            default:
                n = size;
        }
        if (n > size) n = size;
        out.push_back(n);
        size -= n;
    }
    return out;
}

}  // namespace plume_fuzz
