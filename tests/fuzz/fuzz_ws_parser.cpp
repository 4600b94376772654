// Fuzzes the RFC 6455 receiver (plume::transport::Parser) in both roles, with
// and without a permessage-deflate session. Input: [flags][seed][limit] then
// the bytes from the wire.
//   flags bit 0: client role (else server)     bit 1: permessage-deflate on
//   flags bit 2: context takeover (own inflater, else the shared per-thread one)
//   seed: how the bytes are split into reads   limit: max message size 16 << (limit & 15)
// Property: the events and the failure do not depend on how the bytes are
// split into reads (one read vs. the input's own splits); a delivered message
// respects the size limit and a text message is valid UTF-8.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "plume/detail/utf8.hpp"
#include "plume/transport/parser.hpp"

namespace {

using plume::transport::opcode;

struct Recorder {
    std::size_t limit = 0;
    std::vector<std::string> log;

    void on_message(opcode op, std::string_view payload) {
        FUZZ_CHECK(payload.size() <= limit);
        FUZZ_CHECK(op == opcode::text || op == opcode::binary);
        if (op == opcode::text) FUZZ_CHECK(plume::detail::is_valid_utf8(payload));
        log.push_back((op == opcode::text ? "T" : "B") + std::string(payload));
    }
    void on_ping(std::string_view payload) {
        FUZZ_CHECK(payload.size() <= plume::transport::max_control_payload);
        log.push_back("i" + std::string(payload));
    }
    void on_pong(std::string_view payload) {
        FUZZ_CHECK(payload.size() <= plume::transport::max_control_payload);
        log.push_back("o" + std::string(payload));
    }
    void on_close(std::uint16_t code, std::string_view reason) {
        FUZZ_CHECK(plume::detail::is_valid_utf8(reason));
        log.push_back("c" + std::to_string(code) + ":" + std::string(reason));
    }
};

struct Run {
    std::vector<std::string> log;
    std::uint16_t failure = 0;
    std::string reason;
    bool close_received = false;
};

Run run(std::uint8_t flags, std::size_t limit, std::string bytes,
        const std::vector<std::size_t>& chunks) {
    using namespace plume::transport;
    const bool server = (flags & 1) == 0;
    std::optional<DeflateSession> deflate;
    if (flags & 2) {
        DeflateParams params;
        params.client_no_context_takeover = params.server_no_context_takeover = !(flags & 4);
        deflate.emplace(params, DeflateOptions{.enabled = true}, server);
    }
    Parser parser(server ? role::server : role::client, limit);
    if (deflate) parser.set_deflate(&*deflate);
    Recorder events{limit, {}};
    Run r;
    char* p = bytes.data();
    for (std::size_t n : chunks) {
        auto f = parser.consume(p, n, events);
        p += n;
        if (f) {
            r.failure = f.code;
            r.reason = std::string(f.reason);
            break;
        }
    }
    if (!r.failure && !parser.mid_message()) FUZZ_CHECK(parser.buffered() <= 2 * 4096);
    r.log = std::move(events.log);
    r.close_received = parser.close_received();
    return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    const std::uint8_t flags = data[0];
    const std::uint32_t seed = data[1];
    const std::size_t limit = std::size_t{16} << (data[2] & 15);
    std::string bytes(reinterpret_cast<const char*>(data) + 3, size - 3);

    Run whole = run(flags, limit, bytes, {bytes.size()});
    Run split = run(flags, limit, bytes, plume_fuzz::splits(bytes.size(), seed));
    FUZZ_CHECK(whole.log == split.log);
    FUZZ_CHECK(whole.failure == split.failure);
    FUZZ_CHECK(whole.reason == split.reason);
    FUZZ_CHECK(whole.close_received == split.close_received);
    return 0;
}
