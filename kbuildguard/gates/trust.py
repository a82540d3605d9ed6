"""Which signers the target kernel trusts, and whether a signature really verifies.

Three sources, each named in the messages (signature.py's gate reads them):

* certificates given with ``--trusted-cert FILE`` (PEM or DER, repeatable): the user says the kernel
  trusts them (its MOK list, a .platform key, a vendor key built in);
* the signers of the target kernel's own in-tree modules (a few are read): trusted by construction,
  the kernel's build key is in its .builtin_trusted_keys;
* for the running kernel, /proc/keys where readable (root, usually): asymmetric keys are described
  "CN: SKIhex" (crypto/asymmetric_keys/x509_public_key.c x509_key_preparse()), so a signer named by
  key id, or one whose certificate is at hand, is found there. A signer named by issuer and serial
  (sign-file's default) cannot be matched against /proc/keys without its certificate.

When the signer's certificate is at hand, ``confirm`` has openssl verify the PKCS#7 signature over
the module's bytes (through run.py's runner): that catches a module changed after signing.
"""

import base64
import os
import re
import tempfile
from typing import List, Mapping, Optional, Sequence, Tuple, cast

from kbuildguard.errors import BadInput, ToolNotFound
from kbuildguard.formats import pkcs7
from kbuildguard.formats.module import ModuleInfo, is_module_path, module_image, read_module
from kbuildguard.formats.pkcs7 import Certificate, SignerId
from kbuildguard.gates import signature
from kbuildguard.gates.model import Check, Gate
from kbuildguard.gates.signature import KeyringKey, Trust
from kbuildguard.run import CommandFailed, Runner

MAX_CERT_BYTES = 1024 * 1024
KEYRING_LINE = re.compile(r"^(.*): ([0-9a-f]{8,}): X509\.")


def load_certificates(paths: Sequence[str]) -> Tuple[Certificate, ...]:
    out: List[Certificate] = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_CERT_BYTES + 1)
        except OSError as exc:
            raise BadInput("%s: cannot read the certificate: %s" % (path, exc.strerror or exc))
        if len(data) > MAX_CERT_BYTES:
            raise BadInput("%s: larger than any certificate file" % path)
        try:
            out.extend(pkcs7.read_certificates(data, path))
        except BadInput as exc:
            raise BadInput("%s: not an X.509 certificate (PEM or DER): %s" % (path, exc.message))
    return tuple(out)


def in_tree_signers(modules_dir: Optional[str], wanted: int = 3, tries: int = 40) -> Tuple[SignerId, ...]:
    """The signers of a few of the kernel's own modules (distributions sign them all with one key)."""
    if not modules_dir or not os.path.isdir(os.path.join(modules_dir, "kernel")):
        return ()
    found: List[SignerId] = []
    tried = 0
    for root, dirs, files in os.walk(os.path.join(modules_dir, "kernel")):
        dirs.sort()
        for name in sorted(files):
            if not is_module_path(name):
                continue
            tried += 1
            try:
                sig = read_module(os.path.join(root, name)).signature
                signer = pkcs7.parse_signer(sig.blob).id if sig is not None else None
            except BadInput:
                signer = None
            if signer is not None and signer not in found:
                found.append(signer)
            if len(found) >= wanted or tried >= tries or (tried >= 5 and len(found) == 1):
                return tuple(found)
    return tuple(found)


def read_keyring(path: str = "/proc/keys") -> Optional[Tuple[KeyringKey, ...]]:
    """The asymmetric keys /proc/keys shows this user; None when it shows none (not root, no keys)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read(4 * 1024 * 1024).splitlines()
    except OSError:
        return None
    keys: List[KeyringKey] = []
    for line in lines:
        fields = line.split(None, 8)
        if len(fields) < 9 or not fields[7].startswith("asymmetri"):
            continue
        m = KEYRING_LINE.match(fields[8])
        if m and len(m.group(2)) % 2 == 0:
            keys.append(KeyringKey(m.group(1), bytes.fromhex(m.group(2))))
    return tuple(keys) or None


def gather(modules_dir: Optional[str], live: bool, cert_paths: Sequence[str] = (),
           keys_path: str = "/proc/keys") -> Trust:
    certs = load_certificates(cert_paths)
    sources = ["--trusted-cert %s" % c.describe() for c in certs]
    in_tree = in_tree_signers(modules_dir)
    if in_tree:
        sources.append("the kernel's own modules' signer%s (%s)" % ("s" if len(in_tree) > 1 else "",
                                                                    ", ".join(s.describe() for s in in_tree)))
    keyring = read_keyring(keys_path) if live else None
    if keyring is not None:
        sources.append("%d asymmetric key(s) in %s" % (len(keyring), keys_path))
    elif live:
        sources.append("%s shows no keys to this user" % keys_path)
    return Trust(certs, in_tree, keyring or (), keyring is not None, (), tuple(sources))


def confirm(runner: Runner, info: ModuleInfo, found: Check, trust: Trust, env: Optional[Mapping[str, str]] = None) -> Check:
    """The signature gate's answer, with openssl's verdict on the signature when the signer's
    certificate is at hand; unchanged otherwise."""
    sig = info.signature
    if found.name is not Gate.SIGNATURE or sig is None or sig.id_type != pkcs7.PKEY_ID_PKCS7:
        return found
    if not trust.certs and not trust.known:  # no certificate to verify with: nothing to parse again
        return found
    try:
        signer = pkcs7.parse_signer(sig.blob)
    except BadInput:
        return found
    _why, cert = signature.trusted_by(signer.id, trust)
    if cert is None:
        return found
    verified, why_not = verify_with_openssl(runner, info.path, sig, cert, env)
    return signature.with_verification(found, verified, cert, why_not)


def pem_of(der: bytes) -> bytes:
    body = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % "\n".join(lines)).encode("ascii")


def verify_with_openssl(runner: Runner, path: str, sig: pkcs7.ModuleSignature, cert: Certificate,
                        env: Optional[Mapping[str, str]] = None) -> Tuple[Optional[bool], str]:
    """openssl cms -verify over the signed bytes: True, False, or None with why it could not."""
    try:
        openssl = runner.which("openssl", env)
    except ToolNotFound:
        return None, "openssl not found on PATH"
    with tempfile.TemporaryDirectory(prefix="kbuildguard-sig-") as tmp:
        content, blob, pem = (os.path.join(tmp, n) for n in ("module", "signature.p7", "signer.pem"))
        try:
            with module_image(path) as data, open(content, "wb") as f:
                f.write(cast(bytes, data)[:sig.signed_length])  # bytes or mmap: both slice
        except BadInput as exc:
            return None, exc.message
        with open(blob, "wb") as f:
            f.write(sig.blob)
        with open(pem, "wb") as f:
            f.write(pem_of(cert.der))
        # -noverify: the certificate is trusted (or known) by the user's word; only the signature
        # over these bytes is in question. -nointern: verify with this certificate, no other.
        argv = [openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", blob, "-content", content,
                "-certfile", pem, "-nointern", "-noverify", "-out", os.devnull]
        try:
            runner.probe(argv, env=env)
        except CommandFailed as exc:
            if exc.returncode == 4:  # openssl cms: "an error occurred verifying the signature"
                return False, ""
            return None, "openssl cms failed: %s" % (exc.stderr.strip().splitlines() or ["?"])[-1]
        except ToolNotFound as exc:
            return None, exc.message
        return True, ""
