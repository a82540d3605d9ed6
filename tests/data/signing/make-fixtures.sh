#!/bin/sh
# Makes the fixture-* files of this folder once (see README.md); the private keys are thrown away.
# Needs openssl, python3 with the repository on PYTHONPATH, and Debian's scripts/sign-file
# (linux-kbuild-6.1). Run from the repository root: sh tests/data/signing/make-fixtures.sh
set -eu
out=tests/data/signing
sign_file=${SIGN_FILE:-/usr/lib/linux-kbuild-6.1/scripts/sign-file}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/x509.genkey" <<'GENKEY'
[ req ]
default_bits = 2048
distinguished_name = req_distinguished_name
prompt = no
string_mask = utf8only
x509_extensions = myexts
[ req_distinguished_name ]
O = kbuildguard fixture
CN = kbuildguard fixture signing key
[ myexts ]
basicConstraints=critical,CA:FALSE
keyUsage=digitalSignature
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
GENKEY
# the key, as certs/Makefile makes the build key
openssl req -new -nodes -utf8 -sha256 -days 36500 -batch -x509 -config "$tmp/x509.genkey" \
    -outform PEM -out "$tmp/key.pem" -keyout "$tmp/key.pem.key" 2>/dev/null
cat "$tmp/key.pem.key" "$tmp/key.pem" > "$tmp/signing_key.pem"
openssl x509 -in "$tmp/key.pem" -outform DER -out "$out/fixture-key.der"
serial=$(openssl x509 -in "$tmp/key.pem" -noout -serial | cut -d= -f2)
# an impostor: another key with the same subject, issuer and serial
openssl req -new -nodes -utf8 -sha256 -days 36500 -batch -x509 -config "$tmp/x509.genkey" -set_serial "0x$serial" \
    -outform PEM -out "$tmp/impostor.pem" -keyout "$tmp/impostor.key" 2>/dev/null
cat "$tmp/impostor.key" "$tmp/impostor.pem" > "$tmp/impostor_signing.pem"
# an ECDSA key
openssl req -new -nodes -utf8 -sha256 -days 36500 -batch -x509 -config "$tmp/x509.genkey" -newkey ec \
    -pkeyopt ec_paramgen_curve:prime256v1 -outform PEM -out "$tmp/ec.pem" -keyout "$tmp/ec.key" 2>/dev/null
cat "$tmp/ec.key" "$tmp/ec.pem" > "$tmp/ec_signing.pem"
openssl x509 -in "$tmp/ec.pem" -outform DER -out "$out/fixture-ec-key.der"
# the module: elfbuild's default
PYTHONPATH=tests python3 -c 'import sys, elfbuild; sys.stdout.buffer.write(elfbuild.build_module())' > "$tmp/kdemo.ko"
sign() {  # name, then sign-file's arguments before the module
    name=$1; shift
    cp "$tmp/kdemo.ko" "$tmp/$name.ko"
    "$sign_file" "$@" "$tmp/$name.ko"
    cp "$tmp/$name.ko" "$out/$name.ko"
}
for digest in sha1 sha224 sha256 sha384 sha512; do
    sign "fixture-$digest" "$digest" "$tmp/signing_key.pem" "$out/fixture-key.der"
done
sign fixture-keyid-sha256 -k sha256 "$tmp/signing_key.pem" "$out/fixture-key.der"
sign fixture-impostor-sha256 sha256 "$tmp/impostor_signing.pem" "$tmp/impostor.pem"
sign fixture-ecdsa-sha256 sha256 "$tmp/ec_signing.pem" "$tmp/ec.pem"
# with signed attributes (sign-file -a is not in 6.1's; openssl cms writes them by default)
openssl cms -sign -binary -nocerts -nosmimecap -md sha256 -in "$tmp/kdemo.ko" -signer "$tmp/key.pem" \
    -inkey "$tmp/key.pem.key" -outform DER -out "$tmp/attrs.p7"
python3 - "$tmp/kdemo.ko" "$tmp/attrs.p7" "$out/fixture-attrs-sha256.ko" <<'PY'
import struct, sys
module, sig = (open(p, "rb").read() for p in sys.argv[1:3])
open(sys.argv[3], "wb").write(module + sig + struct.pack(">BBBBB3xI", 0, 0, 2, 0, 0, len(sig)) + b"~Module signature appended~\n")
PY
