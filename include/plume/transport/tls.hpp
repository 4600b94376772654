// plume/transport/tls.hpp — TLS contexts for wss:// (OpenSSL through
// asio::ssl), for the server and the client.
//
//   auto server = plume::transport::server_tls_context("cert.pem", "key.pem");
//   plume::transport::Server<Echo, plume::transport::TlsSocket> s(io, options, factory,
//                                                                 {server});
//
//   auto client = plume::transport::client_tls_context();          // system CA store
//   auto test = plume::transport::client_tls_context({.ca_file = "ca.pem"});
//
// Both speak TLS 1.2 and 1.3 only. A host that needs more (client
// certificates, ciphers, session tickets) builds its own asio::ssl::context
// and hands it over the same way.
#pragma once

#include <asio.hpp>
#include <asio/ssl.hpp>

#include <memory>
#include <string>
#include <system_error>

namespace plume::transport {

namespace detail {

inline std::shared_ptr<asio::ssl::context> tls_context(asio::ssl::context::method method) {
    auto ctx = std::make_shared<asio::ssl::context>(method);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
    // OpenSSL's own record buffers (~34 KiB) are freed while a connection is
    // idle, and taken again when it talks.
    SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

}  // namespace detail

/// A server context with the certificate chain and private key of these PEM
/// files. Throws std::system_error naming the file it could not use.
inline std::shared_ptr<asio::ssl::context> server_tls_context(const std::string& cert_chain_file,
                                                              const std::string& private_key_file) {
    auto ctx = detail::tls_context(asio::ssl::context::tls_server);
    std::error_code ec;
    ctx->use_certificate_chain_file(cert_chain_file, ec);
    if (ec) throw std::system_error(ec, "TLS certificate chain \"" + cert_chain_file + "\"");
    ctx->use_private_key_file(private_key_file, asio::ssl::context::pem, ec);
    if (ec) throw std::system_error(ec, "TLS private key \"" + private_key_file + "\"");
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
        throw std::system_error(
            std::make_error_code(std::errc::invalid_argument),
            "TLS private key \"" + private_key_file + "\" does not match the certificate");
    return ctx;
}

struct ClientTlsOptions {
    /// Check the server's certificate chain and name (on by default).
    bool verify = true;
    /// PEM file of CAs to trust instead of the system store.
    std::string ca_file;
    /// Or the PEM text of one CA certificate to trust (instead of the store).
    std::string ca_pem;
};

/// A client context. Throws std::system_error for a CA file it cannot read.
inline std::shared_ptr<asio::ssl::context> client_tls_context(ClientTlsOptions o = {}) {
    auto ctx = detail::tls_context(asio::ssl::context::tls_client);
    if (o.verify) {
        std::error_code ec;
        if (!o.ca_pem.empty()) {
            ctx->add_certificate_authority(asio::buffer(o.ca_pem), ec);
            if (ec) throw std::system_error(ec, "TLS CA certificate (PEM text)");
        } else if (o.ca_file.empty()) {
            ctx->set_default_verify_paths(ec);
        } else {
            ctx->load_verify_file(o.ca_file, ec);
        }
        if (ec) throw std::system_error(ec, "TLS CA file \"" + o.ca_file + "\"");
        ctx->set_verify_mode(asio::ssl::verify_peer);
    } else {
        ctx->set_verify_mode(asio::ssl::verify_none);
    }
    return ctx;
}

}  // namespace plume::transport
