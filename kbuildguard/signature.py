"""Module signatures: what a .ko carries, what the target kernel demands, and the signature gate.

kernel/module/signing.c (6.1) module_sig_check(): a module ends in ``~Module signature appended~\\n``
preceded by ``struct module_signature`` (12 bytes, sig_len big-endian) and a PKCS#7 blob. -ENODATA
(unsigned), -ENOPKG (unsupported crypto) and -ENOKEY (signer not in the kernel's keyrings) are
fatal only where signatures are enforced (``module.sig_enforce=1``, CONFIG_MODULE_SIG_FORCE, or
lockdown); elsewhere they taint ("module verification failed: signature and/or required key
missing - tainting kernel"). Every other error (a signature that does not verify: the module was
changed after signing) is fatal even where nothing is enforced.
"""

import struct
from typing import Mapping, NamedTuple, Optional

from kbuildguard.gates import Check, Effect, Gate

MAGIC = b"~Module signature appended~\n"
TRAILER = struct.Struct(">BBBBB3xI")  # algo, hash, id_type, signer_len, key_id_len, pad, sig_len
PKEY_ID_PKCS7 = 2


class ModuleSignature(NamedTuple):
    signed_length: int  # the bytes the signature covers (the module without signature and trailer)
    id_type: int
    blob: bytes  # the PKCS#7 message


class SigningFacts(NamedTuple):
    """What the target kernel demands of signatures."""

    module_sig: Optional[bool]  # CONFIG_MODULE_SIG; None: unknown
    enforced: Optional[bool]
    why: str  # where ``enforced`` was read


def read_signature(data) -> Optional[ModuleSignature]:
    """The appended signature of a module image (bytes or mmap), or None when unsigned."""
    size = len(data)
    if size < len(MAGIC) + TRAILER.size or data[size - len(MAGIC):] != MAGIC:
        return None
    end = size - len(MAGIC)
    _algo, _hash, id_type, signer_len, key_id_len, sig_len = TRAILER.unpack_from(data, end - TRAILER.size)
    start = end - TRAILER.size - sig_len - signer_len - key_id_len
    if start < 0:
        return None
    blob = bytes(data[end - TRAILER.size - sig_len:end - TRAILER.size])
    return ModuleSignature(start, id_type, blob)


def gather(config: Mapping[str, str], sig_enforce: Optional[bool] = None) -> SigningFacts:
    module_sig = config.get("CONFIG_MODULE_SIG") == "y" if config else None
    if sig_enforce is not None:
        return SigningFacts(module_sig, sig_enforce, "--sig-enforce")
    if config.get("CONFIG_MODULE_SIG_FORCE") == "y":
        return SigningFacts(module_sig, True, "CONFIG_MODULE_SIG_FORCE=y")
    return SigningFacts(module_sig, None if module_sig else False, "the kernel's configuration")


def check(sig: Optional[ModuleSignature], facts: Optional[SigningFacts], sign_later: bool = False) -> Check:
    """The signature gate. ``sign_later``: make without --sign, where signing is packaging's step
    (DKMS, rpm): an unsigned module is then not refused, only said."""
    if facts is None or facts.module_sig is None:
        return Check(Gate.SIGNATURE, True, "what the kernel demands", "signed" if sig else "unsigned",
                     "the kernel's CONFIG_MODULE_SIG is unknown: signatures not checked", "", Effect.NOT_CHECKED)
    if not facts.module_sig:
        return Check(Gate.SIGNATURE, True, "nothing (CONFIG_MODULE_SIG is not set)", "signed" if sig else "unsigned",
                     "the kernel does not check module signatures")
    if sig is None:
        if facts.enforced:
            return Check(Gate.SIGNATURE, sign_later, "a signature by a key the kernel trusts (enforced: %s)" % facts.why,
                         "unsigned", "unsigned, and the kernel enforces signatures (%s): \"Loading of unsigned module is "
                         "rejected\" (Key was rejected by service)" % facts.why,
                         "sign it: kbuildguard make --sign (or your packaging's signing step) with a key the kernel trusts",
                         Effect.REJECTED)
        return Check(Gate.SIGNATURE, True, "a signature (not enforced: %s)" % facts.why, "unsigned",
                     "unsigned: the kernel loads it and taints itself (\"module verification failed: signature and/or "
                     "required key missing - tainting kernel\")", "sign it: kbuildguard make --sign", Effect.TAINTS)
    return Check(Gate.SIGNATURE, True, "a signature by a key the kernel trusts", "signed",
                 "signed; whether the kernel trusts the signer is not checked yet", "", Effect.NOT_CHECKED)
