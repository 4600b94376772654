// Test material for the TLS tests: a self-signed certificate for
// DNS:localhost only (no IP address), valid until 2126, and its key. Never
// used anywhere else.
#pragma once

#include <string>

namespace plume::test {

inline const std::string localhost_cert_pem = R"(-----BEGIN CERTIFICATE-----
MIIBlTCCATugAwIBAgIUMGFYLwuueoaeaMPriHbENXlwwFAwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwNTEzMDkzMloYDzIxMjYxMTEx
MTMwOTMyWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATjpbvIUK9YRPJUb4np1yFL7Cd9AH2m2yc4y4oez0b7HZCkYkXoEdvJ
oCBBFaThclTQl/F/QeyzpBaVLf0m+PVho2kwZzAdBgNVHQ4EFgQUplb+p6iZbB27
zsUYIc9ckaXMt9MwHwYDVR0jBBgwFoAUplb+p6iZbB27zsUYIc9ckaXMt9MwDwYD
VR0TAQH/BAUwAwEB/zAUBgNVHREEDTALgglsb2NhbGhvc3QwCgYIKoZIzj0EAwID
SAAwRQIgX+DrcdBR233fpBQqFbCdJRTfnHlEQUx4IREVBTPfO0cCIQDr5SDE9X+r
U3EXn5X0X7Zn/7GaZIVqmtGL2WvlDF2/pw==
-----END CERTIFICATE-----
)";
inline const std::string localhost_key_pem = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgCyp0MKCiwz1eD0wd
rrew2+X6GntUq8eDUZq4WTz3W0ahRANCAATjpbvIUK9YRPJUb4np1yFL7Cd9AH2m
2yc4y4oez0b7HZCkYkXoEdvJoCBBFaThclTQl/F/QeyzpBaVLf0m+PVh
-----END PRIVATE KEY-----
)";

}  // namespace plume::test
