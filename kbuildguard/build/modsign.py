"""``make --sign``: sign the verified modules (and only those) as the kernel's own build would.

The program is always the target tree's ``scripts/sign-file`` (Debian's linux-headers ship it, as
do kernel-devel packages): never one a setting names, so kbuildguard.toml, which may name the key
and certificate files, cannot make kbuildguard run a program of its choosing. The digest is the
kernel's CONFIG_MODULE_SIG_HASH. The key, in this order:

1. ``--sign-key KEY --sign-cert CERT``, ``KBUILDGUARD_SIGN_KEY``/``KBUILDGUARD_SIGN_CERT``, or
   ``[sign] key``/``cert`` in kbuildguard.toml (settings.py resolves the pair once);
2. DKMS's machine-owner key, ``/var/lib/dkms/mok.key`` + ``mok.pub`` (dkms >= 3 makes and enrolls it);
3. akmods' key, ``/etc/pki/akmods/private/private_key.priv`` + ``/etc/pki/akmods/certs/public_key.der``.

After signing, the signed copies are verified again: the signature gate must find the signature,
its signer, and (openssl) that it verifies over the module, before anything is placed.
"""

import os
from typing import List, Mapping, NamedTuple, Optional, Sequence

from kbuildguard import bounded
from kbuildguard.console import printable
from kbuildguard.errors import BadInput, SigningFailed, ToolNotFound
from kbuildguard.formats.module import MAX_MODULE_BYTES
from kbuildguard.formats.pkcs7 import read_signature
from kbuildguard.gates import trust
from kbuildguard.gates.pool import verify_paths
from kbuildguard.gates.verify import Expectation, ModuleReport, with_confirmed_signatures
from kbuildguard.run import CommandFailed, Runner
from kbuildguard.settings import Settings
from kbuildguard.target.kernel import KernelTarget

# (key, certificate, who made them): the conventional machine-owner keys, first found wins
CONVENTIONAL_KEYS = (
    ("/var/lib/dkms/mok.key", "/var/lib/dkms/mok.pub", "DKMS's machine-owner key"),
    ("/etc/pki/akmods/private/private_key.priv", "/etc/pki/akmods/certs/public_key.der", "akmods' key"),
)
DEFAULT_HASH = "sha256"


class SigningKey(NamedTuple):
    key: str
    cert: str
    origin: str  # "--sign-key", "KBUILDGUARD_SIGN_KEY", "kbuildguard.toml [sign] key", "DKMS's machine-owner key"

    def describe(self) -> str:
        return "%s (%s, certificate %s)" % (self.origin, self.key, self.cert)


class Signer(NamedTuple):
    program: str  # TREE/scripts/sign-file
    hash: str
    hash_source: str
    key: SigningKey


def _readable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.R_OK)


def choose_key(settings: Settings, root: str = "", cwd: str = "/") -> SigningKey:
    """The named key and certificate, else the conventional ones present under ``root``."""
    if settings.sign_key.value and settings.sign_cert.value:
        key, cert = settings.sign_key.value, settings.sign_cert.value
        if not key.startswith("pkcs11:"):  # sign-file takes a PKCS#11 URI too; a path becomes absolute: never an option
            key = os.path.join(cwd, key)
        cert = os.path.join(cwd, cert)
        for path, value in ((key, settings.sign_key), (cert, settings.sign_cert)):
            if not path.startswith("pkcs11:") and not _readable(path):
                raise SigningFailed("%s: no readable file %s" % (value.describe(), printable(path)),
                                    hint="name a key and its certificate that exist (sign-file reads both)")
        return SigningKey(key, cert, settings.sign_key.origin)
    tried = []
    for key, cert, who in CONVENTIONAL_KEYS:
        if _readable(root + key) and _readable(root + cert):
            return SigningKey(root + key, root + cert, who)
        tried.append("%s (%s + %s)" % (who, root + key, root + cert))
    raise SigningFailed("make --sign: no signing key named, and no machine-owner key found",
                        hint="name one: --sign-key KEY --sign-cert CERT (or KBUILDGUARD_SIGN_KEY/KBUILDGUARD_SIGN_CERT, or "
                             "[sign] key/cert in kbuildguard.toml); `dkms generate_mok` makes DKMS's",
                        details=["not found: %s" % t for t in tried])


def sign_file(target: KernelTarget) -> str:
    """TREE/scripts/sign-file, runnable, or why not."""
    tree = target.build_dir or ""
    program = os.path.join(tree, "scripts", "sign-file")
    if not os.path.isfile(program):
        raise SigningFailed("the build tree %s has no scripts/sign-file: it cannot sign modules for %s" % (
            printable(tree), target.release),
            hint="install the tree's complete headers (Debian: linux-headers-%s; RPM: kernel-devel-%s), or build "
                 "scripts/sign-file with `make scripts` in a full tree" % (target.release, target.release))
    if not os.access(program, os.X_OK):
        raise SigningFailed("%s is not executable" % printable(program),
                            hint="it is built by `make scripts` for this machine; reinstall the headers package")
    return program


def prepare(target: KernelTarget, config: Mapping[str, str], settings: Settings, root: str = "", cwd: str = "/") -> Signer:
    """Everything signing needs, checked before the build starts (a missing key fails fast)."""
    program = sign_file(target)
    key = choose_key(settings, root, cwd)
    digest = config.get("CONFIG_MODULE_SIG_HASH") or ""
    source = "CONFIG_MODULE_SIG_HASH of %s" % target.release
    if not digest:
        digest, source = DEFAULT_HASH, "%s: CONFIG_MODULE_SIG_HASH is unset, %s is used" % (target.release, DEFAULT_HASH)
    return Signer(program, digest, source, key)


def unsign(path: str) -> bool:
    """Drop a signature the module carries already: sign-file would append a second one after it."""
    data = bounded.read_file(path, MAX_MODULE_BYTES, "a module")
    sig = read_signature(data)
    if sig is None:
        return False
    os.truncate(path, sig.signed_length)
    return True


def sign(runner: Runner, signer: Signer, paths: Sequence[str], env: Optional[Mapping[str, str]] = None) -> None:
    """sign-file HASH KEY CERT MODULE, in place, for each module (plain .ko: the kernel checks the
    signature of the decompressed image, so compressed modules are signed before compression)."""
    for path in paths:
        if not path.endswith(".ko"):
            raise SigningFailed("%s: only plain .ko files are signed (sign, then compress)" % printable(path))
        unsign(path)
        argv = [signer.program, signer.hash, signer.key.key, signer.key.cert, path]
        try:
            runner.probe(argv, env=env, timeout=60)
        except (CommandFailed, ToolNotFound) as exc:
            raise SigningFailed("sign-file failed on %s: %s" % (printable(os.path.basename(path)), exc),
                                hint="is %s the private key of %s? (sign-file needs both, and the OpenSSL it was built "
                                     "with)" % (signer.key.key, signer.key.cert))


def describe(signer: Optional[Signer]) -> str:
    if signer is None:
        return "not signed"
    return "%s with %s, %s (%s)" % (signer.program, signer.key.describe(), signer.hash, signer.hash_source)


def verify_signed(runner: Runner, signer: Signer, paths: Sequence[str], expect: Expectation,
                  env: Optional[Mapping[str, str]] = None) -> List[ModuleReport]:
    """The modules just signed, held to every gate again: the signature gate now requires their
    signature (sign_later off), knows the signing certificate (it verifies, without being trusted
    by the kernel for that), and openssl checks each signature with it."""
    try:
        known = trust.load_certificates([signer.key.cert]) if not signer.key.cert.startswith("pkcs11:") else ()
    except BadInput as exc:
        raise SigningFailed("the signing certificate cannot be read: %s" % exc.message)
    assert expect.loader is not None
    signing = expect.loader.signing
    trusted = signing.trust._replace(known=signing.trust.known + known)
    signed = expect._replace(sign_later=False, loader=expect.loader._replace(signing=signing._replace(trust=trusted)))
    return with_confirmed_signatures(verify_paths(paths, signed),
                                     lambda info, found: trust.confirm(runner, info, found, trusted, env))
