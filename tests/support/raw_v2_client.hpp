// Test support: a raw V2 Phoenix client on plume's client-role WebSocket,
// recording every frame the server sends as JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <plume/transport.hpp>

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace plume::test {

// A raw V2 client: records every decoded frame.
struct Frames {
    std::mutex mutex;
    std::vector<nlohmann::json> frames;
    bool open = false;
    int close_code = 0;
    std::string handshake_error;
    std::size_t size() {
        std::lock_guard l(mutex);
        return frames.size();
    }
    std::vector<nlohmann::json> matching(std::string_view event) {
        std::lock_guard l(mutex);
        std::vector<nlohmann::json> out;
        for (auto& f : frames)
            if (f[3] == event) out.push_back(f);
        return out;
    }
    std::optional<nlohmann::json> reply_to(std::string_view ref) {
        std::lock_guard l(mutex);
        for (auto& f : frames)
            if (f[3] == "phx_reply" && f[1] == ref) return f;
        return std::nullopt;
    }
};

struct RawClient {
    std::shared_ptr<Frames> rec;
    void on_open(auto&) {
        std::lock_guard l(rec->mutex);
        rec->open = true;
    }
    void on_message(auto&, plume::transport::opcode, std::string_view data) {
        std::lock_guard l(rec->mutex);
        rec->frames.push_back(nlohmann::json::parse(data));
    }
    void on_close(auto&, std::uint16_t code, std::string_view) {
        std::lock_guard l(rec->mutex);
        rec->close_code = code;
    }
    void on_handshake_error(auto&, std::string_view what) {
        std::lock_guard l(rec->mutex);
        rec->handshake_error = what;
    }
};

/// Sends one V2 frame from any thread.
template <class Conn>
void send(Conn& c, const nlohmann::json& frame) {
    asio::post(c->get_executor(), [c, s = frame.dump()] { c->send_text(s); });
}

}  // namespace plume::test
