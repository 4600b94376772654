// plume/transport/detail/io_buffers.hpp — what a Connection reads into and
// writes from: the per-thread receive buffer, client masks, and a gathered
// write over the queue of shared frames.
#pragma once

#include <openssl/rand.h>

#include <asio.hpp>

#include <cstddef>
#include <cstring>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <vector>

#include "plume/transport/frame.hpp"

namespace plume::transport::detail {

// One receive buffer per thread, shared by all connections it serves.
inline constexpr std::size_t read_buffer_size = 64 * 1024;
inline char* thread_read_buffer() {
    thread_local std::unique_ptr<char[]> buf(new char[read_buffer_size]);
    return buf.get();
}

// Random masks for the client role, from OpenSSL, fetched in batches.
inline void random_mask(unsigned char out[4]) {
    thread_local unsigned char pool[256];
    thread_local std::size_t used = sizeof pool;
    if (used + 4 > sizeof pool) {
        if (RAND_bytes(pool, sizeof pool) != 1) throw std::runtime_error("RAND_bytes failed");
        used = 0;
    }
    std::memcpy(out, pool + used, 4);
    used += 4;
}

// A ConstBufferSequence over a vector of shared frames, from frame `first`
// and byte `offset` in it, so a gathered write needs no allocation of its own
// and a partly written queue resumes where the socket stopped.
struct FrameBuffers {
    const std::vector<SharedFrame>* frames;
    std::size_t first = 0;
    std::size_t offset = 0;
    struct iterator {
        using iterator_category = std::bidirectional_iterator_tag;
        using value_type = asio::const_buffer;
        using difference_type = std::ptrdiff_t;
        using pointer = const asio::const_buffer*;
        using reference = asio::const_buffer;
        const FrameBuffers* seq;
        std::size_t i;
        asio::const_buffer operator*() const {
            auto b = asio::buffer(*(*seq->frames)[i]);
            return i == seq->first ? b + seq->offset : b;
        }
        iterator& operator++() { return ++i, *this; }
        iterator operator++(int) {
            auto t = *this;
            ++i;
            return t;
        }
        iterator& operator--() { return --i, *this; }
        iterator operator--(int) {
            auto t = *this;
            --i;
            return t;
        }
        bool operator==(const iterator& o) const { return i == o.i; }
    };
    iterator begin() const { return {this, first}; }
    iterator end() const { return {this, frames->size()}; }
};

}  // namespace plume::transport::detail
