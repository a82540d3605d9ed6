"""The signature gate: what the target kernel demands of a module's signature, and its verdict.

kernel/module/signing.c (6.1) module_sig_check(): a module ends in ``~Module signature appended~\\n``
preceded by ``struct module_signature`` (12 bytes, sig_len big-endian) and a PKCS#7 blob.
mod_verify_sig() errors -ENODATA (unsigned), -ENOPKG (unsupported crypto, or not PKCS#7) and -ENOKEY
(signer not in the kernel's keyrings) are fatal only where signatures are enforced: with
``module.sig_enforce=1`` or CONFIG_MODULE_SIG_FORCE "Loading of unsigned module is rejected" /
"... of module with unavailable key is rejected" (-EKEYREJECTED, insmod: "Key was rejected by
service"); under lockdown (integrity or confidentiality) security_locked_down() returns -EPERM.
Elsewhere the module loads and kernel/module/main.c taints ("module verification failed: signature
and/or required key missing - tainting kernel"). Every other error -- a signature that does not
verify, because the module changed after signing, or a malformed blob -- is fatal even where
nothing is enforced.

How kbuildguard decides (the gate below; trust.py gathers the trust, openssl checks the signature):

* unsigned: rejected where enforced (refused, unless make signs it later), else taints;
* signed by a key kbuildguard knows the kernel trusts -- a certificate given with ``--trusted-cert``,
  the signer of the kernel's own in-tree modules, or a key in the running kernel's keyrings
  (/proc/keys) -- ok;
* signed by anyone else: rejected where enforced (refused), else taints;
* whenever the signer's certificate is at hand (``--trusted-cert``, or the certificate make --sign
  used), openssl verifies the signature over the module: a mismatch is rejected even unenforced.

The PKCS#7 and X.509 structures are read by der.py; only names, serials, key ids and the digest
algorithm are taken from them.
"""

import re
from typing import List, Mapping, NamedTuple, Optional, Tuple

from kbuildguard.errors import BadInput
from kbuildguard.formats.pkcs7 import PKEY_ID_PKCS7, Certificate, ModuleSignature, SignerId, parse_signer
from kbuildguard.gates.model import Check, Effect, Gate

# what insmod and the log say (kernel/module/signing.c, security/lockdown/lockdown.c)
ENFORCED_REFUSAL = "\"Loading of unsigned module is rejected\" (Key was rejected by service)"
LOCKDOWN_REFUSAL = ("\"Lockdown: insmod: unsigned module loading is restricted; see man kernel_lockdown.7\" "
                    "(Operation not permitted)")
UNSIGNED_TAINT = "\"module verification failed: signature and/or required key missing - tainting kernel\""


class KeyringKey(NamedTuple):
    """An asymmetric key in the kernel's keyrings, as /proc/keys describes it ("CN: SKIhex")."""

    name: str
    skid: bytes


class Trust(NamedTuple):
    """What kbuildguard knows the target kernel trusts (trust.gather)."""

    certs: Tuple[Certificate, ...] = ()  # --trusted-cert
    in_tree: Tuple[SignerId, ...] = ()  # signers of the kernel's own modules
    keyring: Tuple[KeyringKey, ...] = ()  # the running kernel's keyrings, when readable
    keyring_read: bool = False
    known: Tuple[Certificate, ...] = ()  # certificates that verify a signature without being trusted (make --sign's)
    sources: Tuple[str, ...] = ()  # what was consulted, for messages

    def describe(self) -> str:
        return "; ".join(self.sources) if self.sources else "no trusted certificate or keyring at hand"


class SigningFacts(NamedTuple):
    """What the target kernel demands of signatures."""

    module_sig: Optional[bool]  # CONFIG_MODULE_SIG; None: unknown
    enforced: Optional[bool]
    why: str  # where ``enforced`` was read
    hash: str = ""  # CONFIG_MODULE_SIG_HASH
    trust: Trust = Trust()

    @property
    def by_lockdown(self) -> bool:
        """Enforced by lockdown alone (enforcement() names it so): the kernel then answers -EPERM
        (security_locked_down(LOCKDOWN_MODULE_SIGNATURE)), not -EKEYREJECTED."""
        return bool(self.enforced) and "lockdown" in self.why and "sig_enforce" not in self.why \
            and "MODULE_SIG_FORCE=y" not in self.why


# -- enforcement ------------------------------------------------------------------------------

def _truthy(value: str) -> bool:
    return value.strip() in ("1", "Y", "y")


def _read(root: str, rel: str) -> Optional[str]:
    try:
        with open(root + rel, encoding="utf-8", errors="replace") as f:
            return f.read(4096)
    except OSError:
        return None


def enforcement(config: Mapping[str, str], sig_enforce: Optional[bool], root: str, live: bool) -> Tuple[bool, str]:
    """Whether the kernel refuses modules without a trusted signature, and where that was read.

    ``root``: "" for the running kernel, the sysroot's path for a captured system, None-like ("-")
    when kbuildguard sees neither (``live`` False and no sysroot): then only the configuration."""
    if sig_enforce is not None:
        return sig_enforce, "--sig-enforce %s" % ("yes" if sig_enforce else "no")
    if config.get("CONFIG_MODULE_SIG_FORCE") == "y":
        return True, "CONFIG_MODULE_SIG_FORCE=y"
    for option in ("CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY", "CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY"):
        if config.get(option) == "y":
            return True, "%s=y (lockdown: unsigned modules get -EPERM)" % option
    read: List[str] = ["CONFIG_MODULE_SIG_FORCE is not set"]
    if live or root:
        param = _read(root, "/sys/module/module/parameters/sig_enforce")
        if param is not None:
            if _truthy(param):
                return True, "%s/sys/module/module/parameters/sig_enforce = Y" % root
            read.append("sig_enforce = N")
        lockdown = _read(root, "/sys/kernel/security/lockdown")
        if lockdown is not None:
            mode = re.search(r"\[(\w+)\]", lockdown)
            if mode and mode.group(1) in ("integrity", "confidentiality"):
                return True, "%s/sys/kernel/security/lockdown is [%s] (unsigned modules get -EPERM)" % (root, mode.group(1))
            read.append("lockdown [%s]" % (mode.group(1) if mode else "?"))
        cmdline = _read(root, "/proc/cmdline")
        if cmdline is not None:
            words = cmdline.split()
            for word in words:
                if word.startswith("module.sig_enforce=") and _truthy(word.split("=", 1)[1]):
                    return True, "%s/proc/cmdline has %s" % (root, word)
                if word in ("lockdown=integrity", "lockdown=confidentiality"):
                    return True, "%s/proc/cmdline has %s (unsigned modules get -EPERM)" % (root, word)
            read.append("no module.sig_enforce=1 in %s/proc/cmdline" % root)
    if len(read) == 1:
        secure_boot = (" (and CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT=y locks it down under Secure Boot)"
                       if config.get("CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT") == "y" else "")
        read.append("the target's command line and lockdown are not visible here%s: "
                    "--sig-enforce yes says it enforces" % secure_boot)
    return False, "; ".join(read)


def gather(config: Mapping[str, str], sig_enforce: Optional[bool] = None, root: str = "", live: bool = False,
           trust: Trust = Trust()) -> SigningFacts:
    """What the kernel demands: ``live`` for the running kernel (root ""), ``root`` for a sysroot."""
    module_sig = config.get("CONFIG_MODULE_SIG") == "y" if config else None
    if not config and sig_enforce is None:
        return SigningFacts(None, None, "the kernel's configuration is unknown", "", trust)
    enforced, why = enforcement(config, sig_enforce, root, live)
    if module_sig is None:  # no configuration, but --sig-enforce said it
        module_sig = bool(enforced)
    return SigningFacts(module_sig, enforced, why, config.get("CONFIG_MODULE_SIG_HASH", ""), trust)


# -- the gate ---------------------------------------------------------------------------------

def trusted_by(signer: SignerId, trust: Trust) -> Tuple[str, Optional[Certificate]]:
    """Why the kernel trusts this signer ("" when kbuildguard does not know that it does), and the
    certificate that can verify the signature, if one is at hand."""
    cert = next((c for c in trust.certs + trust.known if c.matches(signer)), None)
    if cert is not None and cert in trust.certs:
        return "--trusted-cert %s" % cert.source, cert
    if signer in trust.in_tree:
        return "the signer of the kernel's own modules", cert
    skid = signer.skid or (cert.skid if cert is not None else b"")
    key = next((k for k in trust.keyring if skid and k.skid == skid), None)
    if key is not None:
        return "the kernel's keyring holds \"%s: %s\" (/proc/keys)" % (key.name, key.skid.hex()), cert
    return "", cert


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
                         "unsigned", "unsigned, and the kernel enforces signatures (%s): %s" % (facts.why, LOCKDOWN_REFUSAL
                                                                                         if facts.by_lockdown else
                                                                                         ENFORCED_REFUSAL),
                         "sign it: kbuildguard make --sign (or your packaging's signing step) with a key the kernel trusts",
                         Effect.REJECTED)
        return Check(Gate.SIGNATURE, True, "a signature (not enforced: %s)" % facts.why, "unsigned",
                     "unsigned: the kernel loads it and taints itself (%s)" % UNSIGNED_TAINT,
                     "sign it: kbuildguard make --sign", Effect.TAINTS)
    return check_signed(sig, facts)


def check_signed(sig: ModuleSignature, facts: SigningFacts) -> Check:
    expected = "a signature by a key the kernel trusts (%s)" % ("enforced: " + facts.why if facts.enforced else
                                                                 "not enforced: " + facts.why)
    if sig.malformed:
        return Check(Gate.SIGNATURE, False, expected, "a malformed signature",
                     "the appended signature is malformed: %s; the kernel refuses it (-EBADMSG), enforced or not"
                     % sig.malformed, "sign it again: kbuildguard make --sign, or scripts/sign-file", Effect.REJECTED)
    if sig.id_type != PKEY_ID_PKCS7:
        found = "signature of id type %d" % sig.id_type
        signer = None
    else:
        try:
            signer = parse_signer(sig.blob)
        except BadInput as exc:
            return Check(Gate.SIGNATURE, False, expected, "a malformed signature",
                         "the appended signature cannot be read (%s): the kernel refuses it (-EBADMSG), enforced or not"
                         % exc.message, "sign it again: kbuildguard make --sign, or scripts/sign-file", Effect.REJECTED)
        found = "signed by %s (%s)" % (signer.id.describe(), signer.digest)
    if signer is not None:
        why, _cert = trusted_by(signer.id, facts.trust)
        if why:
            return Check(Gate.SIGNATURE, True, expected, found, "%s, trusted: %s" % (found, why))
    fix = ("sign it with a key the kernel trusts (its MOK or builtin keys), or name the enrolled certificate with "
           "--trusted-cert CERT")
    if facts.enforced:
        return Check(Gate.SIGNATURE, False, expected, found,
                     "%s, a key kbuildguard does not find among what the kernel trusts (%s); it enforces signatures: "
                     "\"Loading of module with unavailable key is rejected\" (Key was rejected by service)" % (
                         found, facts.trust.describe()), fix, Effect.REJECTED)
    return Check(Gate.SIGNATURE, True, expected, found,
                 "%s, a key kbuildguard does not find among what the kernel trusts (%s): unless its keyrings hold it, the "
                 "kernel loads it and taints itself (%s)" % (found, facts.trust.describe(), UNSIGNED_TAINT), fix,
                 Effect.TAINTS)


def with_verification(found: Check, verified: Optional[bool], cert: Certificate, why_not: str = "") -> Check:
    """The gate's answer once openssl has checked the signature against the signer's certificate."""
    if verified is None:
        return found._replace(message=found.message + "; signature not verified: %s" % why_not)
    if verified:
        return found._replace(message=found.message + "; signature verified with %s" % cert.describe())
    return found._replace(ok=False, effect=Effect.REJECTED,
                          message="%s, but the signature does not verify with %s: the module changed after signing; the "
                                  "kernel refuses it, enforced or not (Key was rejected by service)" % (
                                      found.found, cert.describe()),
                          fix="sign it again after the last change (strip before signing: a stripped module loses "
                              "or breaks its signature)")

