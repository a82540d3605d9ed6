"""Which signers the target kernel trusts, gathered for the signature gate (signature.py).

Sources, each named in the messages:

* the keyrings that count for module signatures, per distribution (target/keyrings.py): the
  certificates built into the kernel image, and where they count and can be seen the UEFI db and
  MOK keys (the running machine's firmware, a sosreport's mokutil output);
* certificates given with ``--trusted-cert FILE`` (PEM or DER, repeatable): the user says the kernel
  trusts them (its MOK list, a .platform key, a vendor key built in);
* the signers of the target kernel's own in-tree modules (a few are read): trusted by construction,
  the kernel's build key is in its .builtin_trusted_keys -- but only a certificate verifies;
* for the running kernel, /proc/keys where readable (root, usually): asymmetric keys are described
  "CN: SKIhex" (crypto/asymmetric_keys/x509_public_key.c x509_key_preparse()), so a signer named by
  key id, or one whose certificate is at hand, is found there. A signer named by issuer and serial
  (sign-file's default) cannot be matched against /proc/keys without its certificate.

``confirm`` verifies a signature with a certificate the gate did not have (make --sign's own), in
pure Python like the gate (formats/pkcs7.py): that catches a module changed after signing.
"""

import os
import re
from typing import List, Mapping, Optional, Sequence, Tuple

from kbuildguard import bounded
from kbuildguard.errors import BadInput
from kbuildguard.formats import pkcs7
from kbuildguard.formats.module import ModuleInfo, is_module_path, read_module
from kbuildguard.formats.pkcs7 import Certificate, SignerId
from kbuildguard.gates import signature
from kbuildguard.gates.model import Check, Gate
from kbuildguard.gates.signature import KeyringKey, Trust
from kbuildguard.run import Runner
from kbuildguard.target import keyrings
from kbuildguard.target.kernel import KernelTarget

MAX_CERT_BYTES = 1024 * 1024
KEYRING_LINE = re.compile(r"^(.*): ([0-9a-f]{8,}): X509\.")


def load_certificates(paths: Sequence[str]) -> Tuple[Certificate, ...]:
    out: List[Certificate] = []
    for path in paths:
        try:
            data = bounded.read_file(path, MAX_CERT_BYTES, "a certificate file")
        except OSError as exc:
            raise BadInput("%s: cannot read the certificate: %s" % (path, exc.strerror or exc))
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
        lines = bounded.read_head(path, 4 * 1024 * 1024, "a key list").decode("utf-8", errors="replace").splitlines()
    except (OSError, BadInput):
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


def gather(target: KernelTarget, config: Mapping[str, str], live: bool, cert_paths: Sequence[str] = (),
           image: Optional[str] = None, keys_path: str = "/proc/keys", mokutil: Sequence[str] = (),
           env: Optional[Mapping[str, str]] = None) -> Trust:
    """ENV: the Context's environment, whose cache folder remembers the certificates read from an
    image (keyrings.builtin_certificates); None: nothing remembered."""
    certs = load_certificates(cert_paths)
    keys = keyrings.gather(target, config, live, image, env=env, mokutil=mokutil)
    sources = ["keyrings that count for modules on %s kernels: %s" % (keys.distribution, ", ".join(keys.counted))]
    sources += list(keys.sources)
    sources += ["--trusted-cert %s" % c.describe() for c in certs]
    in_tree = in_tree_signers(target.modules_dir)
    if in_tree:
        sources.append("the kernel's own modules' signer%s (%s)" % ("s" if len(in_tree) > 1 else "",
                                                                    ", ".join(s.describe() for s in in_tree)))
    keyring = read_keyring(keys_path) if live else None
    if keyring is not None:
        sources.append("%d asymmetric key(s) in %s" % (len(keyring), keys_path))
    elif live:
        sources.append("%s shows no keys to this user" % keys_path)
    return Trust(certs=certs,
                 in_tree=in_tree,
                 keyring=keyring or (),
                 keyring_read=keyring is not None,
                 known=(),
                 sources=tuple(sources),
                 kernel_keys=keys.certificates,
                 listed=keys.listed,
                 builtin_missing=keys.builtin_missing,
                 unseen=keys.unseen,
                 keyring_counts=keys.distribution is keyrings.Distribution.DEBIAN)


def confirm(runner: Runner, info: ModuleInfo, found: Check, trust: Trust, env: Optional[Mapping[str, str]] = None) -> Check:
    """The signature gate's answer, with the signature verified by a certificate of ``trust.known``
    (make --sign's own) when the gate had no certificate of the signer; unchanged otherwise. Pure:
    ``runner`` and ``env`` stay for the callers' sake (openssl did this before)."""
    sig = info.signature
    if found.name is not Gate.SIGNATURE or sig is None or sig.id_type != pkcs7.PKEY_ID_PKCS7 or not trust.known:
        return found
    try:
        message = pkcs7.parse_message(sig.blob)
    except BadInput:
        return found
    held = signature.find_key(message.signer.id, trust._replace(known=()))
    if held.cert is not None:  # the gate verified with it already
        return found
    cert = next((c for c in trust.known if c.matches(message.signer.id)), None)
    if cert is None:
        return found
    why = pkcs7.verify(message, sig.digest, cert) if message.algorithm == "rsa" else "not an RSA signature"
    if why and (why.startswith("kbuildguard does not verify") or message.algorithm != "rsa" or cert.key is None):
        return signature.with_verification(found, None, cert, why)
    return signature.with_verification(found, not why, cert, why)

