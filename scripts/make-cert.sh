#!/usr/bin/env bash
# Makes a self-signed TLS certificate for 127.0.0.1 and localhost, for the
# demo (chat --tls-cert DIR/cert.pem --tls-key DIR/key.pem) and the tests.
# Browsers warn about it (it is signed by nobody they trust); a client that
# should trust it is given DIR/cert.pem as its CA file.
#
#   scripts/make-cert.sh [DIR]        # default: build/certs
set -euo pipefail
dir=${1:-build/certs}
mkdir -p "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
chmod 600 "$dir/key.pem"
echo "$dir/cert.pem $dir/key.pem"
