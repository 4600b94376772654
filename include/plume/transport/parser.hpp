// plume/transport/parser.hpp — the receiving half of RFC 6455 as a state
// machine over bytes (no I/O): frames in, whole messages and control events
// out, or the close code the connection must fail with.
//
// Bytes may arrive in any split. Payloads are unmasked in place and validated
// as they arrive, so invalid UTF-8 fails the connection at the first bad byte
// and an oversized message fails before it is buffered. A message that arrives
// whole in one read is handed out as a view of the read buffer, without a copy.
//
//   struct Events {
//       void on_message(opcode op, std::string_view payload);
//       void on_ping(std::string_view payload);
//       void on_pong(std::string_view payload);
//       void on_close(std::uint16_t code, std::string_view reason);  // 1005: no code
//   };
//   plume::transport::Parser parser(role::server, 1 << 20);
//   auto failure = parser.consume(buf, n, events);   // failure.code == 0 when fine
//
//   std::size_t budget = 64, used = 0;  // or stop after 64 events; the rest
//   parser.consume(buf, n, events, budget, used);  // (buf + used) goes in later
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "plume/transport/close_code.hpp"
#include "plume/transport/deflate.hpp"
#include "plume/transport/frame.hpp"
#include "plume/transport/utf8.hpp"

namespace plume::transport {

enum class role : std::uint8_t { server, client };

/// Why a connection must be failed: the close code to send and a short reason.
struct ParseFailure {
    std::uint16_t code = 0;  // 0: no failure
    std::string_view reason;
    explicit operator bool() const noexcept { return code != 0; }
};

template <class E>
concept ParserEvents = requires(E& e, opcode op, std::string_view s, std::uint16_t code) {
    e.on_message(op, s);
    e.on_ping(s);
    e.on_pong(s);
    e.on_close(code, s);
};

class Parser {
  public:
    Parser(role r, std::size_t max_message_size) noexcept
        : role_(r), max_message_(max_message_size) {}

    /// Enables permessage-deflate on received messages (RSV1 allowed on the
    /// first frame of a data message).
    void set_deflate(DeflateSession* session) noexcept { deflate_ = session; }

    /// True once a close frame was received; later bytes are ignored.
    bool close_received() const noexcept { return close_received_; }

    /// True while the parser holds part of a frame or message (the connection
    /// is not idle).
    bool mid_message() const noexcept { return hdr_len_ != 0 || in_frame_ || in_message_; }

    /// Bytes this parser holds for an unfinished message (for accounting).
    std::size_t buffered() const noexcept {
        return pieces_ ? sizeof(Pieces) + pieces_->message.capacity() + pieces_->control.capacity()
                       : 0;
    }

    /// Consumes `size` bytes at `data` (modified: payloads are unmasked in
    /// place). Stops at the first failure or after a close frame.
    template <ParserEvents Events>
    ParseFailure consume(char* data, std::size_t size, Events& events) {
        std::size_t budget = std::numeric_limits<std::size_t>::max(), used = 0;
        return consume(data, size, events, budget, used);
    }

    /// Like consume(), but also stops once `budget` events (messages and
    /// control frames) were delivered, counting it down, so a caller can
    /// share its time fairly. `used` tells how many bytes were consumed; the
    /// rest is untouched (still masked) and goes to a later call.
    template <ParserEvents Events>
    ParseFailure consume(char* data, std::size_t size, Events& events, std::size_t& budget,
                         std::size_t& used) {
        const char* start = data;
        budget_ = budget;
        auto f = run(data, size, events);
        used = static_cast<std::size_t>(data - start);
        budget = budget_;
        return f;
    }

    /// Ends the current consume() after the event being delivered (called
    /// from an event handler that wants no more events for now).
    void end_budget() noexcept { budget_ = 0; }

  private:
    template <class Events>
    ParseFailure run(char*& data, std::size_t& size, Events& events) {
        while (size > 0 && !close_received_ && budget_ > 0) {
            if (!in_frame_) {
                std::size_t used = 0;
                if (auto f = read_header(data, size, used)) return f;
                data += used;
                size -= used;
                if (!in_frame_) return {};  // header still incomplete
                if (remaining_ == 0) {
                    if (auto f = finish_frame(events)) return f;
                }
                continue;
            }
            std::size_t n = remaining_ < size ? static_cast<std::size_t>(remaining_) : size;
            if (auto f = payload_piece(data, n, events)) return f;
            data += n;
            size -= n;
        }
        return {};
    }

    ParseFailure fail(close_code c, std::string_view why) noexcept { return {to_int(c), why}; }

    ParseFailure read_header(const char* data, std::size_t size, std::size_t& used) {
        FrameHeader h;
        std::string_view bytes;
        std::size_t old = hdr_len_;
        if (hdr_len_ == 0 && size >= max_header_size) {
            bytes = std::string_view(data, size);
        } else {
            std::size_t take = std::min(max_header_size - hdr_len_, size);
            std::memcpy(hdr_ + hdr_len_, data, take);
            hdr_len_ += take;
            bytes = std::string_view(hdr_, hdr_len_);
        }
        if (parse_header(bytes, h) == header_status::need_more) {
            used = size;  // everything went into hdr_
            return {};
        }
        used = h.header_length - old;
        hdr_len_ = 0;
        if (auto f = check_header(bytes, h)) return f;
        in_frame_ = true;
        frame_ = h;
        remaining_ = h.payload_length;
        mask_offset_ = 0;
        return {};
    }

    ParseFailure check_header(std::string_view bytes, const FrameHeader& h) {
        if (h.rsv2 || h.rsv3) return fail(close_code::protocol_error, "reserved bit set");
        if (!is_known_opcode(h.opcode)) return fail(close_code::protocol_error, "unknown opcode");
        if (role_ == role::server && !h.masked)
            return fail(close_code::protocol_error, "client frame not masked");
        if (role_ == role::client && h.masked)
            return fail(close_code::protocol_error, "server frame masked");
        if (!uses_minimal_length(bytes, h) || (h.payload_length >> 63) != 0)
            return fail(close_code::protocol_error, "bad payload length");
        auto op = static_cast<opcode>(h.opcode);
        if (is_control(op)) {
            if (!h.fin) return fail(close_code::protocol_error, "fragmented control frame");
            if (h.payload_length > max_control_payload)
                return fail(close_code::protocol_error, "control frame too long");
            if (h.rsv1) return fail(close_code::protocol_error, "reserved bit set");
            return {};
        }
        if (op == opcode::continuation) {
            if (!in_message_) return fail(close_code::protocol_error, "nothing to continue");
            if (h.rsv1) return fail(close_code::protocol_error, "reserved bit set");
        } else {
            if (in_message_) return fail(close_code::protocol_error, "expected continuation");
            if (h.rsv1 && !deflate_) return fail(close_code::protocol_error, "reserved bit set");
            in_message_ = true;
            message_op_ = op;
            compressed_ = h.rsv1;
            utf8_.reset();
            message_size_ = 0;
        }
        if (h.payload_length > max_message_ - message_size_)
            return fail(close_code::message_too_big, "message too big");
        message_size_ += h.payload_length;
        return {};
    }

    template <class Events>
    ParseFailure payload_piece(char* data, std::size_t n, Events& events) {
        if (frame_.masked) mask_offset_ = apply_mask(data, n, frame_.mask, mask_offset_);
        remaining_ -= n;
        std::string_view piece(data, n);
        auto op = static_cast<opcode>(frame_.opcode);
        if (is_control(op)) {
            pieces().control.append(piece);
        } else {
            if (message_op_ == opcode::text && !compressed_ && !utf8_.feed(piece))
                return fail(close_code::invalid_payload, "invalid UTF-8 in text message");
            // Zero-copy: a whole single-frame message inside this read.
            if (remaining_ == 0 && frame_.fin && message().empty() && !compressed_ &&
                n == frame_.payload_length) {
                in_frame_ = false;
                return deliver(piece, events);
            }
            pieces().message.append(piece);
        }
        if (remaining_ == 0) return finish_frame(events);
        return {};
    }

    template <class Events>
    ParseFailure finish_frame(Events& events) {
        in_frame_ = false;
        auto op = static_cast<opcode>(frame_.opcode);
        if (is_control(op)) {
            auto f = control_frame(op, events);
            if (pieces_) release(pieces_->control);
            return f;
        }
        if (!frame_.fin) return {};
        if (compressed_) {
            thread_local std::string inflated;
            auto r = deflate_->decompress(message(), inflated, max_message_);
            if (pieces_) release(pieces_->message);
            if (r == Inflater::result::too_big)
                return fail(close_code::message_too_big, "message too big");
            if (r == Inflater::result::corrupt)
                return fail(close_code::invalid_payload, "invalid deflate data");
            if (message_op_ == opcode::text && !is_valid_utf8(inflated))
                return fail(close_code::invalid_payload, "invalid UTF-8 in text message");
            auto f = deliver(inflated, events);
            if (inflated.capacity() > (1u << 20)) std::string().swap(inflated);
            return f;
        }
        auto f = deliver(message(), events);
        if (pieces_) release(pieces_->message);
        return f;
    }

    template <class Events>
    ParseFailure deliver(std::string_view payload, Events& events) {
        in_message_ = false;
        if (message_op_ == opcode::text && !compressed_ && !utf8_.complete())
            return fail(close_code::invalid_payload, "invalid UTF-8 in text message");
        --budget_;
        events.on_message(message_op_, payload);
        return {};
    }

    template <class Events>
    ParseFailure control_frame(opcode op, Events& events) {
        --budget_;
        std::string_view control =
            pieces_ ? std::string_view(pieces_->control) : std::string_view();
        if (op == opcode::ping) {
            events.on_ping(control);
        } else if (op == opcode::pong) {
            events.on_pong(control);
        } else {
            close_received_ = true;
            if (control.size() == 1) return fail(close_code::protocol_error, "bad close payload");
            if (control.empty()) {
                events.on_close(to_int(close_code::no_status), {});
                return {};
            }
            auto code = static_cast<std::uint16_t>((static_cast<unsigned char>(control[0]) << 8) |
                                                   static_cast<unsigned char>(control[1]));
            auto reason = control.substr(2);
            if (!is_valid_received_close_code(code))
                return fail(close_code::protocol_error, "invalid close code");
            if (!is_valid_utf8(reason))
                return fail(close_code::invalid_payload, "invalid UTF-8 in close reason");
            events.on_close(code, reason);
        }
        return {};
    }

    // An idle connection should hold no message buffer: keep small ones for
    // reuse, give big ones back.
    static void release(std::string& s) {
        if (s.capacity() > 4096)
            std::string().swap(s);
        else
            s.clear();
    }

    role role_;
    bool in_frame_ = false;
    bool in_message_ = false;
    bool compressed_ = false;
    bool close_received_ = false;
    opcode message_op_ = opcode::text;
    std::uint8_t hdr_len_ = 0;
    std::uint8_t mask_offset_ = 0;
    char hdr_[max_header_size]{};
    std::size_t max_message_;
    std::uint64_t remaining_ = 0;
    std::uint64_t message_size_ = 0;
    std::size_t budget_ = 0;  // events consume() may still deliver
    FrameHeader frame_;
    Utf8Validator utf8_;
    // A message's frames gathered (unless it came whole in one read) and a
    // control frame's payload: made at the first such frame, so a connection
    // that never needed them holds 8 bytes, not 64.
    struct Pieces {
        std::string message;
        std::string control;
    };
    std::unique_ptr<Pieces> pieces_;
    Pieces& pieces() {
        if (!pieces_) pieces_ = std::make_unique<Pieces>();
        return *pieces_;
    }
    std::string_view message() const noexcept {
        return pieces_ ? std::string_view(pieces_->message) : std::string_view();
    }
    DeflateSession* deflate_ = nullptr;
};

}  // namespace plume::transport
