// A consumer program: proves that plume::plume brings the include path, C++20
// and every dependency (Asio, OpenSSL, zlib, nlohmann_json) to its users.
#include <plume/transport.hpp>

#include <cstdio>

int main() {
    namespace ws = plume::transport;
    // RFC 6455 section 1.3's example key and answer (needs OpenSSL's SHA-1).
    if (ws::accept_key("dGhlIHNhbXBsZSBub25jZQ==") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") return 1;
    // A deflate round trip (needs zlib).
    ws::Deflater deflater(15, 6, 8);
    ws::Inflater inflater;
    std::string packed, plain;
    deflater.compress("plume plume plume plume", packed, true);
    if (inflater.decompress(packed, plain, 1 << 20, true) != ws::Inflater::result::ok) return 2;
    if (plain != "plume plume plume plume") return 3;
    // Asio is usable (an io_context with nothing to do returns at once).
    asio::io_context io;
    io.run();
    std::puts("consumer ok");
    return 0;
}
