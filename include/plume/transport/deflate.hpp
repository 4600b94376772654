// plume/transport/deflate.hpp — permessage-deflate (RFC 7692) with zlib.
//
// Off by default. When on, the server accepts the first acceptable offer in
// Sec-WebSocket-Extensions and answers with the parameters it will honour.
// Memory: a 15-bit deflate context costs ~256 KiB, so by default the server
// asks for no context takeover in both directions; then compressors are per
// thread, shared by every connection, and an idle connection holds none.
//
//   plume::transport::DeflateOptions opt{.enabled = true};
//   auto agreed = plume::transport::negotiate_deflate(request_extensions_header, opt);
//   if (agreed) response.set("Sec-WebSocket-Extensions", agreed->response_header());
#pragma once

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plume/transport/http.hpp"

namespace plume::transport {

struct DeflateOptions {
    bool enabled = false;
    /// Window we compress with (8 is raised to 9: zlib cannot deflate with 8).
    int server_max_window_bits = 15;
    /// Ask clients to reset their compressor after each message, so we can
    /// inflate with a shared per-thread stream.
    bool request_client_no_context_takeover = true;
    /// Reset our compressor after each message (shared per-thread stream).
    bool server_no_context_takeover = true;
    int compression_level = 6;  // zlib level 1..9; 1 is fastest
    int mem_level = 8;          // zlib memLevel 1..9
    /// Messages shorter than this go uncompressed (RSV1 clear).
    std::size_t min_compress_size = 32;
};

/// The parameters both sides agreed on for one connection.
struct DeflateParams {
    bool server_no_context_takeover = false;
    bool client_no_context_takeover = false;
    int server_max_window_bits = 15;
    int client_max_window_bits = 15;
    bool client_max_window_bits_sent = false;  // whether to put it in the response
    bool server_max_window_bits_sent = false;  // the offer named it: answer it (7.1.2.1)

    std::string response_header() const {
        std::string h = "permessage-deflate";
        if (server_no_context_takeover) h += "; server_no_context_takeover";
        if (client_no_context_takeover) h += "; client_no_context_takeover";
        if (server_max_window_bits != 15 || server_max_window_bits_sent)
            h += "; server_max_window_bits=" + std::to_string(server_max_window_bits);
        if (client_max_window_bits_sent)
            h += "; client_max_window_bits=" + std::to_string(client_max_window_bits);
        return h;
    }
};

namespace detail {

struct ExtensionParam {
    std::string_view name;
    std::optional<std::string_view> value;
};

struct ExtensionOffer {
    std::string_view name;
    std::vector<ExtensionParam> params;
};

// Splits "a; x=1; y, b" into offers. Quoted values ("10") are unquoted.
inline std::vector<ExtensionOffer> parse_extensions(std::string_view header) {
    std::vector<ExtensionOffer> offers;
    http::for_each_token(header, [&](std::string_view element) {
        ExtensionOffer offer;
        bool first = true;
        while (true) {
            auto semi = element.find(';');
            auto part = http::trim(element.substr(0, semi));
            if (first) {
                offer.name = part;
                first = false;
            } else if (!part.empty()) {
                ExtensionParam p;
                auto eq = part.find('=');
                p.name = http::trim(part.substr(0, eq));
                if (eq != std::string_view::npos) {
                    auto v = http::trim(part.substr(eq + 1));
                    if (v.size() >= 2 && v.front() == '"' && v.back() == '"')
                        v = v.substr(1, v.size() - 2);
                    p.value = v;
                }
                offer.params.push_back(p);
            }
            if (semi == std::string_view::npos) break;
            element.remove_prefix(semi + 1);
        }
        offers.push_back(std::move(offer));
    });
    return offers;
}

inline std::optional<int> parse_window_bits(std::string_view v) {
    int bits = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), bits);
    if (ec != std::errc{} || p != v.data() + v.size() || bits < 8 || bits > 15 ||
        (v.size() > 1 && v.front() == '0'))
        return std::nullopt;
    return bits;
}

}  // namespace detail

/// Server side: picks the first acceptable permessage-deflate offer, or
/// nothing (then the connection runs uncompressed). Offers with unknown or
/// duplicated parameters, or invalid values, are declined as RFC 7692 asks.
inline std::optional<DeflateParams> negotiate_deflate(std::string_view extensions_header,
                                                      const DeflateOptions& opt) {
    if (!opt.enabled) return std::nullopt;
    for (auto& offer : detail::parse_extensions(extensions_header)) {
        if (offer.name != "permessage-deflate") continue;
        DeflateParams agreed;
        agreed.server_no_context_takeover = opt.server_no_context_takeover;
        agreed.server_max_window_bits = std::max(9, std::min(opt.server_max_window_bits, 15));
        bool ok = true, seen_snct = false, seen_cnct = false, seen_smwb = false, seen_cmwb = false;
        bool client_accepts_cmwb = false;
        for (auto& p : offer.params) {
            if (p.name == "server_no_context_takeover") {
                ok = ok && !seen_snct && !p.value;
                seen_snct = true;
                agreed.server_no_context_takeover = true;
            } else if (p.name == "client_no_context_takeover") {
                ok = ok && !seen_cnct && !p.value;
                seen_cnct = true;
            } else if (p.name == "server_max_window_bits") {
                auto bits = p.value ? detail::parse_window_bits(*p.value) : std::nullopt;
                ok = ok && !seen_smwb && bits;
                seen_smwb = true;
                agreed.server_max_window_bits_sent = true;
                if (bits) {
                    // zlib cannot compress with an 8-bit window; decline that offer.
                    if (*bits == 8) ok = false;
                    agreed.server_max_window_bits = std::min(agreed.server_max_window_bits, *bits);
                }
            } else if (p.name == "client_max_window_bits") {
                ok = ok && !seen_cmwb;
                seen_cmwb = true;
                client_accepts_cmwb = true;
                if (p.value) {
                    auto bits = detail::parse_window_bits(*p.value);
                    ok = ok && bits;
                    if (bits) agreed.client_max_window_bits = *bits;
                }
            } else {
                ok = false;  // unknown parameter: decline this offer
            }
        }
        if (!ok) continue;
        // client_no_context_takeover may always be put in the response.
        agreed.client_no_context_takeover = seen_cnct || opt.request_client_no_context_takeover;
        // A server may only send client_max_window_bits if the client offered it.
        agreed.client_max_window_bits_sent =
            client_accepts_cmwb && agreed.client_max_window_bits != 15;
        return agreed;
    }
    return std::nullopt;
}

/// Client side: the offer a client sends.
inline std::string deflate_offer(const DeflateOptions& opt) {
    std::string h = "permessage-deflate; client_max_window_bits";
    if (opt.request_client_no_context_takeover) h += "; server_no_context_takeover";
    return h;
}

/// Client side: validates the server's answer to deflate_offer(). Returns the
/// agreed params, or nullopt if the answer is not one the offer allowed (then
/// the client must fail the connection).
inline std::optional<DeflateParams> accept_deflate_response(std::string_view header) {
    auto offers = detail::parse_extensions(header);
    if (offers.size() != 1 || offers[0].name != "permessage-deflate") return std::nullopt;
    DeflateParams agreed;
    bool seen[4] = {};
    for (auto& p : offers[0].params) {
        if (p.name == "server_no_context_takeover" && !p.value && !seen[0]) {
            seen[0] = agreed.server_no_context_takeover = true;
        } else if (p.name == "client_no_context_takeover" && !p.value && !seen[1]) {
            seen[1] = agreed.client_no_context_takeover = true;
        } else if (p.name == "server_max_window_bits" && p.value && !seen[2]) {
            auto bits = detail::parse_window_bits(*p.value);
            if (!bits) return std::nullopt;
            seen[2] = true;
            agreed.server_max_window_bits = *bits;
        } else if (p.name == "client_max_window_bits" && p.value && !seen[3]) {
            auto bits = detail::parse_window_bits(*p.value);
            if (!bits) return std::nullopt;
            seen[3] = true;
            agreed.client_max_window_bits = std::max(9, *bits);
        } else {
            return std::nullopt;
        }
    }
    return agreed;
}

/// One raw-deflate compressor. Compresses whole messages and strips the final
/// 00 00 FF FF as RFC 7692 7.2.1 requires.
class Deflater {
  public:
    Deflater(int window_bits, int level, int mem_level) {
        if (deflateInit2(&z_, level, Z_DEFLATED, -std::max(9, window_bits), mem_level,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            throw std::bad_alloc();
    }
    ~Deflater() { deflateEnd(&z_); }
    Deflater(const Deflater&) = delete;
    Deflater& operator=(const Deflater&) = delete;

    /// Appends the compressed form of `in` to `out`. With `reset`, the next
    /// message starts from an empty window (no context takeover).
    void compress(std::string_view in, std::string& out, bool reset) {
        z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
        z_.avail_in = static_cast<uInt>(in.size());
        std::size_t start = out.size();
        do {
            std::size_t old = out.size();
            out.resize(old + std::max<std::size_t>(in.size() / 2 + 64, 1024));
            z_.next_out = reinterpret_cast<Bytef*>(out.data() + old);
            z_.avail_out = static_cast<uInt>(out.size() - old);
            deflate(&z_, Z_SYNC_FLUSH);
            out.resize(out.size() - z_.avail_out);
        } while (z_.avail_out == 0);
        // Z_SYNC_FLUSH ends with an empty stored block 00 00 FF FF.
        if (out.size() - start >= 4 && out.compare(out.size() - 4, 4, "\x00\x00\xff\xff", 4) == 0)
            out.resize(out.size() - 4);
        // An empty message on a stream that was just flushed makes zlib emit
        // nothing; the payload must still be 00 (RFC 7692 7.2.3.6), or the
        // peer's appended 00 00 FF FF desynchronizes its inflater.
        if (out.size() == start) out.push_back('\0');
        if (reset) deflateReset(&z_);
    }

  private:
    z_stream z_{};
};

/// One raw-inflate decompressor with an output limit, so a small compressed
/// message cannot expand past max_message_size ("zip bomb").
///
/// Cost is linear in input plus output whatever the block structure: the
/// output grows geometrically, and a block with BFINAL set restarts the
/// stream in O(1), keeping its window in place.
class Inflater {
  public:
    Inflater() {
        // Always a 15-bit window: it can read any smaller window the peer used.
        if (inflateInit2(&z_, -15) != Z_OK) throw std::bad_alloc();
    }
    ~Inflater() { inflateEnd(&z_); }
    Inflater(const Inflater&) = delete;
    Inflater& operator=(const Inflater&) = delete;

    enum class result { ok, too_big, corrupt };

    /// Inflates one whole message into `out` (cleared first).
    result decompress(std::string_view in, std::string& out, std::size_t limit, bool reset) {
        static constexpr unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
        out.clear();
        std::size_t used = 0;
        ended_ = false;
        result r = feed(in, out, used, limit);
        // No tail after a payload that ended with a BFINAL block (it would
        // start a stored block that never completes).
        if (r == result::ok && !ended_)
            r = feed(std::string_view(reinterpret_cast<const char*>(tail), 4), out, used, limit);
        out.resize(std::min(used, out.size()));
        if (reset || r != result::ok) inflateReset(&z_);
        return r;
    }

  private:
    // Inflates `in` into out[used...], growing `out` as needed; `used` is
    // how much of `out` holds output.
    result feed(std::string_view in, std::string& out, std::size_t& used, std::size_t limit) {
        z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
        z_.avail_in = static_cast<uInt>(in.size());
        while (true) {
            if (used == out.size() && !grow(out, in.size(), limit)) return result::too_big;
            std::size_t room = std::min<std::size_t>(out.size() - used, UINT_MAX);
            z_.next_out = reinterpret_cast<Bytef*>(out.data() + used);
            z_.avail_out = static_cast<uInt>(room);
            int rc = inflate(&z_, Z_SYNC_FLUSH);
            used += room - z_.avail_out;
            if (used > limit) return result::too_big;
            if (rc == Z_STREAM_END) {
                // A block with BFINAL set (RFC 7692 7.2.3.4). More blocks may
                // follow, in this message or the next, using the same window:
                // restart the stream, keeping the window where it is (O(1),
                // where copying it out and back would cost 64 KiB per block).
                if (inflateResetKeep(&z_) != Z_OK) return result::corrupt;
                skip_empty_final_blocks();
                ended_ = z_.avail_in == 0;
                if (ended_) return result::ok;
                continue;
            }
            ended_ = false;
            if (rc == Z_BUF_ERROR) {
                if (z_.avail_in == 0) return result::ok;  // all consumed
                if (z_.avail_out == 0) continue;          // needs more room
                return result::corrupt;
            }
            if (rc != Z_OK) return result::corrupt;
            if (z_.avail_in == 0 && z_.avail_out != 0) return result::ok;
        }
    }

    // At a byte-aligned block start, 03 x0 (x: bits 0-1 clear) is an empty
    // final fixed-Huffman block: header, end-of-block code, padding. It
    // changes neither output nor window, so a run of them is skipped without
    // a zlib call each (the cheapest block there is, and the dearest per byte).
    void skip_empty_final_blocks() noexcept {
        while (z_.avail_in >= 2 && z_.next_in[0] == 0x03 && (z_.next_in[1] & 0x03) == 0) {
            z_.next_in += 2;
            z_.avail_in -= 2;
        }
    }

    // Doubles the output (at least 4 KiB or the input's size), never past
    // limit + 1 bytes: one byte over is enough to tell "too big". Growing
    // geometrically keeps the zero-filling amortised O(1) per output byte.
    static bool grow(std::string& out, std::size_t in_size, std::size_t limit) {
        std::size_t size = out.size();
        if (size > limit) return false;
        std::size_t want = std::max<std::size_t>({size, in_size, 4096});
        if (want > limit - size) want = limit - size + 1;  // size <= limit: no overflow
        out.resize(size + want);
        return true;
    }

    z_stream z_{};
    bool ended_ = false;  // the last input byte ended a BFINAL block
};

namespace detail {

// Per-thread streams for connections without context takeover: no context
// survives a message, so one stream per thread serves every such connection.
inline Deflater& shared_deflater(int window_bits, int level, int mem_level) {
    thread_local std::unique_ptr<Deflater> pool[16][10][10];
    window_bits = std::max(9, std::min(window_bits, 15));
    level = std::max(0, std::min(level, 9));
    mem_level = std::max(1, std::min(mem_level, 9));
    auto& slot = pool[window_bits][level][mem_level];
    if (!slot) slot = std::make_unique<Deflater>(window_bits, level, mem_level);
    return *slot;
}

inline Inflater& shared_inflater() {
    thread_local Inflater inflater;
    return inflater;
}

}  // namespace detail

/// The compression state of one connection: shared per-thread streams where
/// no context is taken over, own streams (allocated on first use) otherwise.
class DeflateSession {
  public:
    DeflateSession(DeflateParams params, const DeflateOptions& opt, bool server_role)
        : params_(params),
          level_(opt.compression_level),
          mem_level_(opt.mem_level),
          min_size_(opt.min_compress_size),
          server_(server_role) {}

    bool should_compress(std::size_t size) const noexcept { return size >= min_size_; }

    void compress(std::string_view in, std::string& out) {
        bool reset =
            server_ ? params_.server_no_context_takeover : params_.client_no_context_takeover;
        int bits = server_ ? params_.server_max_window_bits : params_.client_max_window_bits;
        if (reset) {
            detail::shared_deflater(bits, level_, mem_level_).compress(in, out, true);
            return;
        }
        if (!own_deflater_) own_deflater_ = std::make_unique<Deflater>(bits, level_, mem_level_);
        own_deflater_->compress(in, out, false);
    }

    Inflater::result decompress(std::string_view in, std::string& out, std::size_t limit) {
        bool reset =
            server_ ? params_.client_no_context_takeover : params_.server_no_context_takeover;
        if (reset) return detail::shared_inflater().decompress(in, out, limit, true);
        if (!own_inflater_) own_inflater_ = std::make_unique<Inflater>();
        return own_inflater_->decompress(in, out, limit, false);
    }

    const DeflateParams& params() const noexcept { return params_; }

  private:
    DeflateParams params_;
    int level_, mem_level_;
    std::size_t min_size_;
    bool server_;
    std::unique_ptr<Deflater> own_deflater_;
    std::unique_ptr<Inflater> own_inflater_;
};

}  // namespace plume::transport
