// inflate — what permessage-deflate decompression costs, per message shape.
//
// Inflates messages of a few shapes, ordinary and adversarial, with
// plume::transport::Inflater and prints input and output MB/s and the time per
// message; then times a 1 MiB frame of empty final blocks (03 00 repeated)
// end to end through a server-role Parser with a DeflateSession, as a server
// meets it. Prints figures; asserts nothing timed.
//
//   inflate                       # each shape for ~0.3 s
//   inflate --seconds 1
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <plume/transport.hpp>

#include "support/bench_support.hpp"

namespace {

namespace ws = plume::transport;
using Clock = std::chrono::steady_clock;

constexpr std::size_t max_message = 1 << 20;  // Options::max_message_size's default

const char* result_name(ws::Inflater::result r) {
    switch (r) {
        case ws::Inflater::result::ok:
            return "ok";
        case ws::Inflater::result::too_big:
            return "too_big";
        case ws::Inflater::result::corrupt:
            return "corrupt";
    }
    return "?";
}

std::string compress(std::string_view in, int level = 6) {
    ws::Deflater d(15, level, 8);
    std::string out;
    d.compress(in, out, true);
    return out;
}

// Runs inflating every message of `messages` until `seconds` pass.
void measure(const char* name, const std::vector<std::string>& messages, double seconds) {
    ws::Inflater inflater;
    std::string out;
    std::size_t in_bytes = 0, out_bytes = 0, count = 0;
    ws::Inflater::result last = ws::Inflater::result::ok;
    auto start = Clock::now();
    double elapsed = 0;
    do {
        for (auto& m : messages) {
            last = inflater.decompress(m, out, max_message, true);
            in_bytes += m.size();
            out_bytes += out.size();
            ++count;
        }
        elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    } while (elapsed < seconds);
    std::printf("%-34s %9.1f MB/s in %9.1f MB/s out %11.2f us/msg  (%zu B -> %zu B, %s)\n", name,
                in_bytes / elapsed / 1e6, out_bytes / elapsed / 1e6, elapsed / count * 1e6,
                in_bytes / count, out_bytes / count, result_name(last));
}

struct CountingEvents {
    std::size_t messages = 0, bytes = 0;
    void on_message(ws::opcode, std::string_view data) {
        ++messages;
        bytes += data.size();
    }
    void on_ping(std::string_view) {}
    void on_pong(std::string_view) {}
    void on_close(std::uint16_t, std::string_view) {}
};

// One masked, compressed frame through a server-role Parser, as a server sees it.
void through_parser(const char* name, const std::string& payload, bool takeover, double seconds) {
    ws::DeflateOptions opt;
    opt.enabled = true;
    ws::DeflateParams params;
    params.client_no_context_takeover = !takeover;
    params.server_no_context_takeover = !takeover;
    ws::DeflateSession session(params, opt, true);
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    const std::string frame = ws::make_frame(ws::opcode::binary, payload, true, true, mask);
    std::string copy;
    double total = 0, worst = 0;
    std::size_t runs = 0;
    CountingEvents events;
    std::uint16_t code = 0;
    do {
        copy = frame;  // the parser unmasks in place
        ws::Parser parser(ws::role::server, max_message);
        parser.set_deflate(&session);
        auto t0 = Clock::now();
        auto failure = parser.consume(copy.data(), copy.size(), events);
        double t = std::chrono::duration<double>(Clock::now() - t0).count();
        code = failure.code;
        total += t;
        worst = std::max(worst, t);
        ++runs;
    } while (total < seconds);
    std::printf("%-34s %9.3f ms/frame (worst %.3f ms, %zu runs; %zu B frame -> %s, %zu B)\n", name,
                total / runs * 1e3, worst * 1e3, runs, frame.size(),
                code ? "close code" : "message", code ? std::size_t(code) : events.bytes / runs);
}

}  // namespace

int main(int argc, char** argv) try {
    plume_bench::CliArgs args(argc, argv, {});
    const double seconds = args.number("seconds", 0.3);
    args.finish();

    // Ordinary: JSON chat messages as phoenix.js sends them, each compressed
    // on its own (no context takeover, the server's default).
    std::vector<std::string> chat;
    std::mt19937 rng(42);
    const char* words[] = {"hello", "world", "lobby", "room",  "message", "typing", "presence",
                           "ok",    "sure",  "when",  "later", "phoenix", "channel"};
    for (int i = 0; i < 200; ++i) {
        std::string body;
        for (int w = 0; w < 8 + int(rng() % 24); ++w)
            body += std::string(words[rng() % std::size(words)]) + " ";
        std::string json = "[\"3\",\"" + std::to_string(i) +
                           "\",\"room:lobby\",\"new_msg\",{\"user\":\"user" +
                           std::to_string(rng() % 1000) + "\",\"body\":\"" + body + "\"}]";
        chat.push_back(compress(json));
    }

    // Adversarial: 1 MiB of empty final fixed-Huffman blocks.
    std::string empty_final;
    for (std::size_t i = 0; i < 512 * 1024; ++i)
        empty_final += std::string("\x03\x00", 2);

    // Stored blocks of one byte each, not final and final, ~1 MiB of input.
    std::string stored, stored_final;
    for (std::size_t i = 0; stored.size() + 6 <= max_message; ++i) {
        char c = static_cast<char>('a' + i % 26);
        stored += std::string("\x00\x01\x00\xfe\xff", 5) + c;
        stored_final += std::string("\x01\x01\x00\xfe\xff", 5) + c;
    }
    stored += '\0';  // starts the empty stored block the 00 00 ff ff tail completes

    // Maximal back-references: inflates to exactly max_message from ~1 KiB.
    const std::string bomb = compress(std::string(max_message, 'A'), 9);

    // Incompressible: 256 KiB of random bytes (zlib falls back to stored blocks).
    std::string noise(256 * 1024, '\0');
    for (auto& c : noise)
        c = static_cast<char>(rng());
    const std::string random_msg = compress(noise);

    std::printf("Inflater::decompress (limit %zu B, no context takeover), ~%.1f s each:\n",
                max_message, seconds);
    measure("JSON chat messages", chat, seconds);
    measure("empty final blocks (03 00 x 512Ki)", {empty_final}, seconds);
    measure("stored blocks of 1 byte", {stored}, seconds);
    measure("final stored blocks of 1 byte", {stored_final}, seconds);
    measure("back-references to 1 MiB", {bomb}, seconds);
    measure("random 256 KiB", {random_msg}, seconds);

    std::printf("\nOne masked 1 MiB frame through Parser + DeflateSession:\n");
    through_parser("empty final blocks, shared inflater", empty_final, false, seconds);
    through_parser("empty final blocks, own inflater", empty_final, true, seconds);
    through_parser("final stored blocks, own inflater", stored_final, true, seconds);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "inflate: %s\n", e.what());
    return 1;
}
