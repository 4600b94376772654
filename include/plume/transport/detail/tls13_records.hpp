// plume/transport/detail/tls13_records.hpp — the TLS 1.3 record layer
// (RFC 8446 §5), for a server stream that took over from OpenSSL once its
// handshake was done: the traffic secrets, the keys derived from them
// (§7.1, §7.3), sealing and opening records with the AEAD (§5.2, §5.3), and
// KeyUpdate (§4.6.3, §7.2).
//
// A connection keeps only its two secrets, keys, IVs and sequence numbers
// (about 200 bytes); the AEAD contexts are per thread and keyed again for
// each record. OpenSSL's SSL object, ~15 KB per connection even while idle,
// is freed after the handshake.
#pragma once

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

namespace plume::transport::detail {

/// The TLS 1.3 cipher suites plume runs itself.
enum class Aead : std::uint8_t { aes_128_gcm, aes_256_gcm, chacha20_poly1305 };

inline constexpr std::size_t tls_header = 5;
inline constexpr std::size_t tls_tag = 16;
inline constexpr std::size_t tls_max_plain = 16 * 1024;
/// The largest record body a peer may send (§5.2: 2^14 + 256).
inline constexpr std::size_t tls_max_body = tls_max_plain + 256;
/// Record content types (§5.1).
inline constexpr std::uint8_t tls_alert = 21, tls_handshake = 22, tls_application_data = 23;
/// Records sealed under one AES-GCM key before plume updates it (§5.5 allows
/// 2^24.5 full records).
inline constexpr std::uint64_t tls_gcm_records_per_key = std::uint64_t{1} << 24;

/// The AEAD of a negotiated cipher suite, if plume runs it.
inline bool tls_aead_of(const SSL_CIPHER* cipher, Aead& out) {
    if (!cipher) return false;
    switch (SSL_CIPHER_get_id(cipher) & 0xffff) {
        case 0x1301:
            out = Aead::aes_128_gcm;
            return true;
        case 0x1302:
            out = Aead::aes_256_gcm;
            return true;
        case 0x1303:
            out = Aead::chacha20_poly1305;
            return true;
        default:
            return false;
    }
}

inline const EVP_MD* tls_hash(Aead a) {
    return a == Aead::aes_256_gcm ? EVP_sha384() : EVP_sha256();
}
inline std::size_t tls_hash_size(Aead a) {
    return a == Aead::aes_256_gcm ? 48 : 32;
}
inline std::size_t tls_key_size(Aead a) {
    return a == Aead::aes_128_gcm ? 16 : 32;
}

/// HKDF-Expand-Label(secret, label, "", length) (§7.1), for lengths up to
/// the hash's size (one HMAC block).
inline bool tls_expand_label(Aead a, const unsigned char* secret, std::string_view label,
                             unsigned char* out, std::size_t length) {
    unsigned char info[2 + 1 + 6 + 32 + 1 + 1];
    std::size_t n = 0;
    info[n++] = static_cast<unsigned char>(length >> 8);
    info[n++] = static_cast<unsigned char>(length);
    info[n++] = static_cast<unsigned char>(6 + label.size());
    std::memcpy(info + n, "tls13 ", 6);
    std::memcpy(info + n + 6, label.data(), label.size());
    n += 6 + label.size();
    info[n++] = 0;  // empty context
    info[n++] = 1;  // T(1)
    unsigned char block[EVP_MAX_MD_SIZE];
    unsigned int got = 0;
    const int size = static_cast<int>(tls_hash_size(a));
    if (!HMAC(tls_hash(a), secret, size, info, n, block, &got) || got < length) return false;
    std::memcpy(out, block, length);
    OPENSSL_cleanse(block, sizeof block);
    return true;
}

/// One direction's traffic: its secret, and the key and IV derived from it.
struct TrafficKeys {
    std::array<unsigned char, 48> secret{};
    std::uint8_t secret_size = 0;
    std::array<unsigned char, 32> key{};
    std::array<unsigned char, 12> iv{};
    std::uint64_t seq = 0;

    bool derive(Aead a) {
        seq = 0;
        return tls_expand_label(a, secret.data(), "key", key.data(), tls_key_size(a)) &&
               tls_expand_label(a, secret.data(), "iv", iv.data(), iv.size());
    }
    /// The next generation of the secret (§7.2), and its keys.
    bool update(Aead a) {
        std::array<unsigned char, 48> next{};
        if (!tls_expand_label(a, secret.data(), "traffic upd", next.data(), tls_hash_size(a)))
            return false;
        secret = next;
        OPENSSL_cleanse(next.data(), next.size());
        return derive(a);
    }
    /// The nonce of the next record: the IV XOR the sequence number (§5.3).
    std::array<unsigned char, 12> nonce() const {
        auto n = iv;
        for (int i = 0; i < 8; ++i)
            n[11 - i] ^= static_cast<unsigned char>(seq >> (8 * i));
        return n;
    }
    void wipe() {
        OPENSSL_cleanse(secret.data(), secret.size());
        OPENSSL_cleanse(key.data(), key.size());
        OPENSSL_cleanse(iv.data(), iv.size());
    }
};

/// A thread's AEAD context for one cipher and direction, made on first use
/// and keyed again for each record.
inline EVP_CIPHER_CTX* tls_cipher_context(Aead a, bool seal) {
    struct Free {
        void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
    };
    thread_local std::array<std::unique_ptr<EVP_CIPHER_CTX, Free>, 6> contexts;
    auto& c = contexts[static_cast<std::size_t>(a) * 2 + (seal ? 1 : 0)];
    if (!c) {
        const EVP_CIPHER* cipher = a == Aead::aes_128_gcm   ? EVP_aes_128_gcm()
                                   : a == Aead::aes_256_gcm ? EVP_aes_256_gcm()
                                                            : EVP_chacha20_poly1305();
        std::unique_ptr<EVP_CIPHER_CTX, Free> made(EVP_CIPHER_CTX_new());
        if (!made || EVP_CipherInit_ex(made.get(), cipher, nullptr, nullptr, nullptr, seal) != 1)
            return nullptr;
        c = std::move(made);
    }
    return c.get();
}

/// The record layer of a connection whose handshake is done: what it reads
/// with (the peer's traffic) and what it writes with (its own).
struct Tls13Records {
    Aead aead{};
    TrafficKeys read, write;

    Tls13Records() = default;
    Tls13Records(const Tls13Records&) = delete;
    Tls13Records& operator=(const Tls13Records&) = delete;
    ~Tls13Records() {
        read.wipe();
        write.wipe();
    }

    /// Seals `size` bytes of content `type` as one record at `out`, which
    /// has room for sealed_size(size). Returns the record's size, 0 on failure.
    static constexpr std::size_t sealed_size(std::size_t size) {
        return tls_header + size + 1 + tls_tag;
    }
    std::size_t seal(std::uint8_t type, const void* data, std::size_t size, unsigned char* out) {
        const std::size_t body = size + 1 + tls_tag;
        out[0] = tls_application_data;
        out[1] = 0x03;
        out[2] = 0x03;
        out[3] = static_cast<unsigned char>(body >> 8);
        out[4] = static_cast<unsigned char>(body);
        unsigned char* text = out + tls_header;
        if (size > 0) std::memmove(text, data, size);
        text[size] = type;
        EVP_CIPHER_CTX* c = tls_cipher_context(aead, true);
        const auto nonce = write.nonce();
        int n = 0;
        if (!c || EVP_EncryptInit_ex(c, nullptr, nullptr, write.key.data(), nonce.data()) != 1 ||
            EVP_EncryptUpdate(c, nullptr, &n, out, tls_header) != 1 ||
            EVP_EncryptUpdate(c, text, &n, text, static_cast<int>(size + 1)) != 1 ||
            EVP_EncryptFinal_ex(c, text + size + 1, &n) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, tls_tag, text + size + 1) != 1)
            return 0;
        ++write.seq;
        return tls_header + body;
    }

    /// Opens the record at `record` (header and `body` bytes) in place: its
    /// content starts at record + tls_header. Returns the content's size and
    /// sets `type`, or -1 when the record does not authenticate (or holds
    /// no content type, or too much content).
    long open(unsigned char* record, std::size_t body, std::uint8_t& type) {
        if (body < tls_tag + 1) return -1;
        unsigned char* text = record + tls_header;
        const std::size_t size = body - tls_tag;
        EVP_CIPHER_CTX* c = tls_cipher_context(aead, false);
        const auto nonce = read.nonce();
        int n = 0;
        if (!c || EVP_DecryptInit_ex(c, nullptr, nullptr, read.key.data(), nonce.data()) != 1 ||
            EVP_DecryptUpdate(c, nullptr, &n, record, tls_header) != 1 ||
            EVP_DecryptUpdate(c, text, &n, text, static_cast<int>(size)) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, tls_tag, text + size) != 1 ||
            EVP_DecryptFinal_ex(c, text + size, &n) != 1)
            return -1;
        ++read.seq;
        // TLSInnerPlaintext: content, the type, then zero padding (§5.2).
        std::size_t end = size;
        while (end > 0 && text[end - 1] == 0)
            --end;
        if (end == 0 || end - 1 > tls_max_plain) return -1;
        type = text[end - 1];
        return static_cast<long>(end - 1);
    }
};

/// An OpenSSL error code for a TLS failure plume found itself, so it reads
/// like the ones OpenSSL reports (asio::error::get_ssl_category()).
inline int tls_error(int reason) {
    return static_cast<int>(ERR_PACK(ERR_LIB_SSL, 0, reason));
}

// ------------------------------------------------- taking the secrets --

inline int tls_secrets_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

inline bool tls_unhex(std::string_view hex, std::array<unsigned char, 48>& out,
                      std::uint8_t& size) {
    if (hex.size() % 2 != 0 || hex.size() / 2 > out.size()) return false;
    auto digit = [](char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        int hi = digit(hex[i]), lo = digit(hex[i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i / 2] = static_cast<unsigned char>(hi * 16 + lo);
    }
    size = static_cast<std::uint8_t>(hex.size() / 2);
    return true;
}

/// The keylog callback: "LABEL <client random> <secret>" in hex (NSS's key
/// log format). Only the application traffic secrets of server streams that
/// asked for them are kept, in their records (the client's is what the
/// server reads with); nothing is logged.
inline void tls_keylog(const SSL* ssl, const char* line) {
    auto* s = static_cast<Tls13Records*>(SSL_get_ex_data(ssl, tls_secrets_index()));
    if (!s) return;
    std::string_view l(line);
    const bool client = l.starts_with("CLIENT_TRAFFIC_SECRET_0 ");
    if (!client && !l.starts_with("SERVER_TRAFFIC_SECRET_0 ")) return;
    l.remove_prefix(l.find(' ') + 1);
    const auto space = l.find(' ');
    if (space == std::string_view::npos) return;
    l.remove_prefix(space + 1);
    auto& keys = client ? s->read : s->write;
    tls_unhex(l, keys.secret, keys.secret_size);
}

}  // namespace plume::transport::detail
