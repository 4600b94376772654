// Fuzzes the HTTP/1.1 side of the opening handshake: parse_request() on a
// request head, the upgrade checks of handshake.hpp on what it accepts, the
// permessage-deflate negotiation, and the client's parse_response().
// Properties: a parsed request prints back to a head that parses to the same
// request; an accepted upgrade gets a 101 that plume's own client accepts.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "plume/transport/deflate.hpp"
#include "plume/transport/handshake.hpp"
#include "plume/transport/http.hpp"

namespace {

namespace http = plume::transport::http;
namespace transport = plume::transport;

std::string print(const http::Request& req) {
    std::string head =
        req.method + " " + req.target + " HTTP/1." + std::to_string(req.version_minor) + "\r\n";
    for (auto& [k, v] : req.headers)
        head += k + ": " + v + "\r\n";
    return head + "\r\n";
}

void check_request(std::string_view head) {
    http::Request req;
    int status = http::parse_request(head, req);
    FUZZ_CHECK(status == 0 || status == 400 || status == 505);
    if (status != 0) return;

    http::Request again;
    FUZZ_CHECK(http::parse_request(print(req), again) == 0);
    FUZZ_CHECK(again.method == req.method && again.target == req.target && again.path == req.path &&
               again.query_string == req.query_string && again.query == req.query &&
               again.headers == req.headers && again.version_minor == req.version_minor);

    (void)transport::offered_subprotocols(req);
    auto verdict = transport::check_upgrade(req);
    FUZZ_CHECK(verdict.ok() || verdict.status == 400 || verdict.status == 426);
    if (!verdict.ok()) {
        (void)transport::refuse_upgrade(verdict).to_string();
        return;
    }
    FUZZ_CHECK(transport::is_upgrade_request(req));

    auto agreed = transport::negotiate_deflate(req.header_list("sec-websocket-extensions"),
                                               transport::DeflateOptions{.enabled = true});
    std::string extensions = agreed ? agreed->response_header() : std::string();
    auto protocols = transport::offered_subprotocols(req);
    std::string chosen = protocols.empty() ? std::string() : protocols.front();
    auto answer = transport::switching_protocols(req, chosen, extensions).to_string();

    // plume's client must accept what plume's server answers.
    transport::ServerResponse res;
    FUZZ_CHECK(transport::parse_response(answer, res));
    FUZZ_CHECK(res.status == 101);
    transport::ClientRequest client;
    client.subprotocols = protocols;
    client.extensions = extensions.empty() ? std::string() : transport::deflate_offer({});
    FUZZ_CHECK(
        transport::check_server_response(res, req.header("sec-websocket-key"), client).empty());
    if (agreed) FUZZ_CHECK(transport::accept_deflate_response(extensions));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);

    // As the server does: the head up to the blank line; also the raw input.
    auto end = http::find_head_end(input);
    if (end != std::string_view::npos) {
        FUZZ_CHECK(end >= 4 && end <= input.size() && input.substr(end - 4, 4) == "\r\n\r\n");
        check_request(input.substr(0, end));
    }
    check_request(input);

    // The same bytes as a server's answer, seen by a client.
    transport::ServerResponse res;
    if (transport::parse_response(input, res)) {
        FUZZ_CHECK(res.status >= 0 && res.status <= 999);
        (void)transport::accept_deflate_response(res.header("sec-websocket-extensions"));
        transport::ClientRequest client;
        client.subprotocols = {"phoenix"};
        (void)transport::check_server_response(res, "dGhlIHNhbXBsZSBub25jZQ==", client);
    }
    return 0;
}
