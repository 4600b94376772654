// plume/server/token.hpp — signed, expiring tokens in the style of Phoenix.Token.
//
// A server hands a client a token (typically the user id, rendered into the
// page) and later verifies it in Socket::connect: the token proves the server
// minted it, for that purpose (the salt), not too long ago (max_age). Tokens
// are signed, not encrypted: anyone can read the data inside.
//
// The envelope is Phoenix's (Plug.Crypto.MessageVerifier, HS256):
//   key   = PBKDF2-HMAC-SHA256(secret_key_base, salt, 1000 iterations, 32 bytes)
//   token = "SFMyNTY." + base64url(message) + "." + base64url(HMAC-SHA256(key, first two parts))
// (base64url without padding; "SFMyNTY" is base64("HS256")). The message,
// however, is JSON — {"data": <json>, "max_age": <seconds>, "signed": <unix ms>} —
// where Phoenix uses Erlang's term_to_binary. So plume tokens and Elixir-minted
// tokens are NOT interchangeable, even with the same secret and salt.
//
// verify() never throws on a bad token; it returns token_error::missing (empty
// token), ::invalid (malformed, wrong salt or secret, tampered, signed in the
// future) or ::expired. Keys are derived once per salt and cached (thread-safe).
// All cryptography is OpenSSL's.
//
//   // secret_key_base: >= 32 bytes, e.g. from `openssl rand -base64 48`
//   plume::server::TokenSigner tokens{secret_key_base};
//   std::string t = tokens.sign("user socket", {{"user_id", 42}});
//   auto data = tokens.verify("user socket", t, {.max_age = std::chrono::hours(24 * 14)});
//   if (!data) return refuse(data.error().message());   // "token expired", ...
//   int user_id = (*data)["user_id"];
#pragma once

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <climits>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "plume/detail/base64.hpp"
#include "plume/result.hpp"

namespace plume::server {

/// Why a token was refused (Phoenix.Token's :missing, :invalid, :expired).
enum class token_error {
    missing = 1,  // no token at all
    invalid,      // not a token we signed for this salt, or signed in the future
    expired,      // older than max_age
};

namespace detail {

class TokenCategory final : public std::error_category {
  public:
    const char* name() const noexcept override { return "plume.token"; }
    std::string message(int code) const override {
        switch (static_cast<token_error>(code)) {
            case token_error::missing:
                return "token missing";
            case token_error::invalid:
                return "token invalid";
            case token_error::expired:
                return "token expired";
        }
        return "unknown plume.token error";
    }
};

}  // namespace detail

inline const std::error_category& token_category() noexcept {
    static const detail::TokenCategory category;
    return category;
}

inline std::error_code make_error_code(token_error e) noexcept {
    return {static_cast<int>(e), token_category()};
}

}  // namespace plume::server

// Declared before any Result<…> is built from a token_error.
template <>
struct std::is_error_code_enum<plume::server::token_error> : std::true_type {};

namespace plume::server {

/// Phoenix.Token's default max_age: one day.
inline constexpr std::chrono::seconds default_token_max_age{86'400};
/// A max_age that never expires (Phoenix's :infinity).
inline constexpr std::chrono::seconds token_never_expires = std::chrono::seconds::max();

struct SignOptions {
    /// Embedded in the token; verify() uses it unless it is given its own.
    std::chrono::seconds max_age = default_token_max_age;
    /// When the token counts as signed; the clock's now() if unset.
    std::optional<std::chrono::system_clock::time_point> signed_at = std::nullopt;
};

struct VerifyOptions {
    /// Overrides the max_age embedded in the token when set.
    std::optional<std::chrono::seconds> max_age = std::nullopt;
};

/// Signs and verifies tokens with one secret_key_base.
class TokenSigner {
  public:
    using Clock = std::function<std::chrono::system_clock::time_point()>;

    /// Throws std::invalid_argument for a secret under 32 bytes: a weak secret
    /// makes every token forgeable, so refuse it at start-up. `clock` lets
    /// tests fix "now"; it defaults to std::chrono::system_clock::now.
    explicit TokenSigner(std::string secret_key_base, Clock clock = {})
        : secret_(std::move(secret_key_base)), clock_(std::move(clock)) {
        if (secret_.size() < 32)
            throw std::invalid_argument("plume: secret_key_base must be at least 32 bytes");
        if (secret_.size() > static_cast<std::size_t>(INT_MAX))
            throw std::invalid_argument("plume: secret_key_base is too long");
        if (!clock_) clock_ = [] { return std::chrono::system_clock::now(); };
    }

    TokenSigner(const TokenSigner&) = delete;
    TokenSigner& operator=(const TokenSigner&) = delete;

    ~TokenSigner() {
        // Leave no key material in freed memory.
        OPENSSL_cleanse(secret_.data(), secret_.size());
        for (auto& [salt, key] : keys_)
            OPENSSL_cleanse(key.data(), key.size());
    }

    /// Signs `data` for `salt`. Throws nlohmann::json::type_error if a string
    /// in `data` is not valid UTF-8 (data is the caller's, not the network's).
    std::string sign(std::string_view salt, const nlohmann::json& data,
                     const SignOptions& options = {}) const {
        nlohmann::json message = {
            {"data", data},
            {"signed", unix_ms(options.signed_at.value_or(clock_()))},
        };
        if (options.max_age == token_never_expires)
            message["max_age"] = "infinity";
        else
            message["max_age"] = options.max_age.count();

        std::string token(protected_header);
        token += '.';
        token += plume::detail::base64url_encode_unpadded(message.dump());
        auto mac = hmac(key_for(salt), token);
        token += '.';
        token += plume::detail::base64url_encode_unpadded(
            std::string_view(reinterpret_cast<const char*>(mac.data()), mac.size()));
        return token;
    }

    /// The data inside `token` if it was signed with this secret for `salt`
    /// and has not expired; otherwise the reason.
    Result<nlohmann::json> verify(std::string_view salt, std::string_view token,
                                  const VerifyOptions& options = {}) const {
        if (token.empty()) return token_error::missing;

        // "SFMyNTY" "." message "." signature — exactly three parts.
        auto dot1 = token.find('.');
        if (dot1 == token.npos) return token_error::invalid;
        auto dot2 = token.find('.', dot1 + 1);
        if (dot2 == token.npos || token.find('.', dot2 + 1) != token.npos)
            return token_error::invalid;
        if (token.substr(0, dot1) != protected_header) return token_error::invalid;

        // Check the signature before looking at the message at all.
        auto signature = plume::detail::base64url_decode_unpadded(token.substr(dot2 + 1));
        if (!signature || signature->size() != mac_size) return token_error::invalid;
        auto expected = hmac(key_for(salt), token.substr(0, dot2));
        if (CRYPTO_memcmp(expected.data(), signature->data(), mac_size) != 0)
            return token_error::invalid;

        auto raw =
            plume::detail::base64url_decode_unpadded(token.substr(dot1 + 1, dot2 - dot1 - 1));
        if (!raw) return token_error::invalid;
        auto message = nlohmann::json::parse(*raw, nullptr, /*allow_exceptions=*/false);
        if (!message.is_object()) return token_error::invalid;  // also true when discarded
        auto data = message.find("data");
        auto signed_at = message.find("signed");
        auto embedded_max_age = message.find("max_age");
        if (data == message.end() || signed_at == message.end() ||
            embedded_max_age == message.end() || !signed_at->is_number_integer())
            return token_error::invalid;

        std::chrono::seconds max_age;
        if (options.max_age) {
            max_age = *options.max_age;
        } else if (embedded_max_age->is_number_integer()) {
            max_age = std::chrono::seconds(embedded_max_age->get<std::int64_t>());
        } else if (*embedded_max_age == "infinity") {
            max_age = token_never_expires;
        } else {
            return token_error::invalid;
        }

        const std::int64_t signed_ms = signed_at->get<std::int64_t>();
        const std::int64_t now_ms = unix_ms(clock_());
        // A token from the future was not minted by an honest clock.
        if (signed_ms > now_ms) return token_error::invalid;
        if (expired(signed_ms, max_age, now_ms)) return token_error::expired;
        return std::move(*data);
    }

    /// verify() with a max_age that overrides the token's own.
    Result<nlohmann::json> verify(std::string_view salt, std::string_view token,
                                  std::chrono::seconds max_age) const {
        return verify(salt, token, VerifyOptions{max_age});
    }

  private:
    static constexpr std::string_view protected_header = "SFMyNTY";  // base64("HS256")
    static constexpr int key_iterations = 1000;
    static constexpr std::size_t key_size = 32;
    static constexpr std::size_t mac_size = 32;
    using Key = std::array<unsigned char, key_size>;
    using Mac = std::array<unsigned char, mac_size>;

    static std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    }

    // Phoenix: max_age <= 0 is always expired; otherwise expired when
    // signed + max_age < now (so a token exactly max_age old still passes).
    static bool expired(std::int64_t signed_ms, std::chrono::seconds max_age, std::int64_t now_ms) {
        if (max_age == token_never_expires) return false;
        if (max_age.count() <= 0) return true;
        const std::int64_t limit = std::numeric_limits<std::int64_t>::max();
        if (max_age.count() > (limit - signed_ms) / 1000) return false;  // beyond any clock
        return signed_ms + max_age.count() * 1000 < now_ms;
    }

    Key key_for(std::string_view salt) const {
        std::lock_guard lock(mutex_);
        if (auto it = keys_.find(salt); it != keys_.end()) return it->second;
        if (salt.size() > static_cast<std::size_t>(INT_MAX))
            throw std::invalid_argument("plume: token salt is too long");
        Key key;
        if (PKCS5_PBKDF2_HMAC(secret_.data(), static_cast<int>(secret_.size()),
                              reinterpret_cast<const unsigned char*>(salt.data()),
                              static_cast<int>(salt.size()), key_iterations, EVP_sha256(),
                              static_cast<int>(key.size()), key.data()) != 1)
            throw std::runtime_error("plume: PBKDF2 key derivation failed");
        keys_.emplace(std::string(salt), key);
        return key;
    }

    static Mac hmac(const Key& key, std::string_view data) {
        Mac mac;
        unsigned int size = 0;
        if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                  reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(),
                  &size) ||
            size != mac.size())
            throw std::runtime_error("plume: HMAC-SHA256 failed");
        return mac;
    }

    std::string secret_;
    Clock clock_;
    mutable std::mutex mutex_;
    mutable std::map<std::string, Key, std::less<>> keys_;
};

}  // namespace plume::server
