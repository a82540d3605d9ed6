"""The signature gate: what the target kernel demands of a module's signature, and its verdict.

kernel/module/signing.c (6.1) module_sig_check(): a module ends in ``~Module signature appended~\\n``
preceded by ``struct module_signature`` (12 bytes, sig_len big-endian) and a PKCS#7 blob.
mod_verify_sig() errors -ENODATA (unsigned), -ENOPKG (unsupported crypto, or not PKCS#7) and -ENOKEY
(signer not in the keyrings that count) are fatal only where signatures are enforced: with
``module.sig_enforce=1`` or CONFIG_MODULE_SIG_FORCE "Loading of unsigned module is rejected" /
"... of module with unavailable key is rejected" (-EKEYREJECTED, insmod: "Key was rejected by
service"); under lockdown (integrity or confidentiality) security_locked_down() returns -EPERM.
Elsewhere the module loads and kernel/module/main.c taints ("module verification failed: signature
and/or required key missing - tainting kernel"). Every other error is fatal even where nothing is
enforced, and silent in the log: a malformed blob (-EBADMSG), and a signature the key it names does
not verify -- crypto/asymmetric_keys/pkcs7_trust.c pkcs7_validate_trust_one() finds the key by
issuer+serial (or key id) and returns -EKEYREJECTED when verify_signature() fails, so a key that
merely copies a trusted key's name is refused, and so is a module changed after signing.

How kbuildguard decides (the gate below; target/keyrings.py says which keys count and what is seen):

* unsigned: rejected where enforced (refused, unless make signs it later), else taints;
* malformed, or not SignedData over detached data: rejected, enforced or not;
* a digest or signature algorithm the kernel lacks (-ENOPKG): rejected where enforced, else taints;
* the signer names a key kbuildguard holds the certificate of -- built into the kernel image, the
  UEFI db or MOK list where they count, ``--trusted-cert`` -- the signature is verified (formats/
  pkcs7.py, rsa.py): ok, or rejected enforced or not; ECDSA and other key types: not checked;
* the signer names a key the kernel trusts without its certificate at hand (its own modules' signer,
  /proc/keys): not checked (the signature could not be verified);
* the signer is none of those: where every keyring that counts is seen, as -ENOKEY (rejected where
  enforced, else taints); otherwise not checked, naming what was not seen.
"""

import re
from typing import List, Mapping, NamedTuple, Optional, Tuple

from kbuildguard import bounded
from kbuildguard.errors import BadInput
from kbuildguard.formats import pkcs7
from kbuildguard.formats.pkcs7 import PKEY_ID_PKCS7, Certificate, Message, ModuleSignature, SignerId
from kbuildguard.gates.model import Check, Effect, Gate
from kbuildguard.target.keyrings import ListedKey

# what insmod and the log say (kernel/module/signing.c, security/lockdown/lockdown.c)
ENFORCED_REFUSAL = "\"Loading of unsigned module is rejected\" (Key was rejected by service)"
LOCKDOWN_REFUSAL = ("\"Lockdown: insmod: unsigned module loading is restricted; see man kernel_lockdown.7\" "
                    "(Operation not permitted)")
UNSIGNED_TAINT = "\"module verification failed: signature and/or required key missing - tainting kernel\""
BAD_SIGNATURE = "insmod: Key was rejected by service (-EKEYREJECTED; the kernel logs nothing)"
UNAVAILABLE_KEY = "\"Loading of module with unavailable key is rejected\" (Key was rejected by service)"
UNSUPPORTED = "\"Loading of module with unsupported crypto is rejected\" (Key was rejected by service)"
# crypto/asymmetric_keys/pkcs7_parser.c pkcs7_sig_note_pkey_algo() (6.1): what a SignerInfo may use
KERNEL_SIGNATURE_ALGORITHMS = ("rsa", "ecdsa", "sm2", "gost2012")


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
    kernel_keys: Tuple[Certificate, ...] = ()  # the keyrings' certificates: built in, UEFI db, MokListRT
    listed: Tuple[ListedKey, ...] = ()  # keys mokutil listed (text, not DER)
    builtin_missing: str = "the kernel's built-in keys were not read"  # "" when they were
    unseen: Tuple[str, ...] = ()  # keyrings that count whose keys kbuildguard cannot see
    # every asymmetric key /proc/keys shows sits in a keyring that counts for modules (Debian: all
    # four system keyrings count); elsewhere a key there may be in .platform, which does not
    keyring_counts: bool = False

    def describe(self) -> str:
        return "; ".join(self.sources) if self.sources else "no trusted certificate or keyring at hand"

    @property
    def complete(self) -> bool:
        """Every key of every keyring that counts for modules is known to kbuildguard."""
        return not self.builtin_missing and not self.unseen

    def not_seen(self) -> str:
        return "; ".join(([self.builtin_missing] if self.builtin_missing else []) + ["not seen: %s" % u for u in self.unseen])


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
        return bounded.read_head(root + rel, 4096, "a sysfs attribute").decode("utf-8", errors="replace")
    except (OSError, BadInput):
        return None


Said = Optional[Tuple[bool, str]]  # enforced and where that was read; None: this source does not decide


def _enforced_by_config(config: Mapping[str, str]) -> Said:
    """kernel/module/signing.c: CONFIG_MODULE_SIG_FORCE sets sig_enforce at build time; a forced
    lockdown (security/lockdown/Kconfig) refuses unsigned modules with -EPERM."""
    if config.get("CONFIG_MODULE_SIG_FORCE") == "y":
        return True, "CONFIG_MODULE_SIG_FORCE=y"
    for option in ("CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY", "CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY"):
        if config.get(option) == "y":
            return True, "%s=y (lockdown: unsigned modules get -EPERM)" % option
    return None


def _enforced_by_parameter(root: str, read: List[str]) -> Said:
    param = _read(root, "/sys/module/module/parameters/sig_enforce")
    if param is None:
        return None
    if _truthy(param):
        return True, "%s/sys/module/module/parameters/sig_enforce = Y" % root
    read.append("sig_enforce = N")
    return None


def _enforced_by_lockdown(root: str, read: List[str]) -> Said:
    lockdown = _read(root, "/sys/kernel/security/lockdown")
    if lockdown is None:
        return None
    mode = re.search(r"\[(\w+)\]", lockdown)
    if mode and mode.group(1) in ("integrity", "confidentiality"):
        return True, "%s/sys/kernel/security/lockdown is [%s] (unsigned modules get -EPERM)" % (root, mode.group(1))
    read.append("lockdown [%s]" % (mode.group(1) if mode else "?"))
    return None


def _enforced_by_cmdline(root: str, read: List[str]) -> Said:
    cmdline = _read(root, "/proc/cmdline")
    if cmdline is None:
        return None
    for word in cmdline.split():
        if word.startswith("module.sig_enforce=") and _truthy(word.split("=", 1)[1]):
            return True, "%s/proc/cmdline has %s" % (root, word)
        if word in ("lockdown=integrity", "lockdown=confidentiality"):
            return True, "%s/proc/cmdline has %s (unsigned modules get -EPERM)" % (root, word)
    read.append("no module.sig_enforce=1 in %s/proc/cmdline" % root)
    return None


def enforcement(config: Mapping[str, str], sig_enforce: Optional[bool], root: str, live: bool) -> Tuple[bool, str]:
    """Whether the kernel refuses modules without a trusted signature, and where that was read.

    ``root``: "" for the running kernel, the sysroot's path for a captured system, None-like ("-")
    when kbuildguard sees neither (``live`` False and no sysroot): then only the configuration."""
    if sig_enforce is not None:
        return sig_enforce, "--sig-enforce %s" % ("yes" if sig_enforce else "no")
    said = _enforced_by_config(config)
    if said is not None:
        return said
    read: List[str] = ["CONFIG_MODULE_SIG_FORCE is not set"]
    if live or root:
        for source in (_enforced_by_parameter, _enforced_by_lockdown, _enforced_by_cmdline):
            said = source(root, read)
            if said is not None:
                return said
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

class Found(NamedTuple):
    """The key a signer names, among what kbuildguard knows the kernel trusts."""

    why: str  # why the kernel trusts it ("" when kbuildguard does not find it)
    cert: Optional[Certificate]  # its certificate, to verify with
    listed: Optional[ListedKey] = None  # or mokutil's text of it


def find_key(signer: SignerId, trust: Trust) -> Found:
    """pkcs7_trust.c looks the key up by the signer's issuer+serial (or key id) and nothing else."""
    for certs, why in ((trust.kernel_keys, "the kernel's keyrings hold it"), (trust.certs, "--trusted-cert")):
        cert = next((c for c in certs if c.matches(signer)), None)
        if cert is not None:
            return Found("%s: %s" % (why, cert.describe()), cert)
    listed = next((k for k in trust.listed if k.matches(signer)), None)
    if listed is not None:
        return Found("enrolled: %s" % listed.describe(), None, listed)
    known = next((c for c in trust.known if c.matches(signer)), None)
    if signer in trust.in_tree:
        return Found("the signer of the kernel's own modules", known)
    skid = signer.skid or (known.skid if known is not None else b"")
    key = next((k for k in trust.keyring if skid and k.skid == skid), None)
    if key is not None:
        why = "the kernel's keyring holds \"%s: %s\" (/proc/keys)" % (key.name, key.skid.hex())
        if not trust.keyring_counts:  # /proc/keys does not say which keyring: maybe one modules do not use
            return Found(why + ", in a keyring /proc/keys does not name (.platform does not count here)", None)
        return Found(why, known)
    return Found("", known)


def check(sig: Optional[ModuleSignature], facts: Optional[SigningFacts], sign_later: bool = False) -> Check:
    """The signature gate. ``sign_later``: make without --sign, where signing is packaging's step
    (DKMS, rpm): an unsigned module is then not refused, only said."""
    if facts is None or facts.module_sig is None:
        return Check(name=Gate.SIGNATURE, ok=True, expected="what the kernel demands", found="signed" if sig else "unsigned",
                     message="the kernel's CONFIG_MODULE_SIG is unknown: signatures not checked", fix="", effect=Effect.NOT_CHECKED)
    if not facts.module_sig:
        return Check(name=Gate.SIGNATURE, ok=True, expected="nothing (CONFIG_MODULE_SIG is not set)", found="signed" if sig else "unsigned",
                     message="the kernel does not check module signatures")
    if sig is None:
        if facts.enforced:
            return Check(name=Gate.SIGNATURE, ok=sign_later, expected="a signature by a key the kernel trusts (enforced: %s)" % facts.why,
                         found="unsigned", message="unsigned, and the kernel enforces signatures (%s): %s" % (facts.why, LOCKDOWN_REFUSAL
                                                                                         if facts.by_lockdown else
                                                                                         ENFORCED_REFUSAL),
                         fix="sign it: kbuildguard make --sign (or your packaging's signing step) with a key the kernel trusts",
                         effect=Effect.REJECTED)
        return Check(name=Gate.SIGNATURE, ok=True, expected="a signature (not enforced: %s)" % facts.why, found="unsigned",
                     message="unsigned: the kernel loads it and taints itself (%s)" % UNSIGNED_TAINT,
                     fix="sign it: kbuildguard make --sign", effect=Effect.TAINTS)
    return check_signed(sig, facts)


RESIGN = "sign it again: kbuildguard make --sign, or scripts/sign-file"
TRUSTED_FIX = ("sign it with a key the kernel trusts (its build key, an enrolled MOK key), or name the enrolled "
               "certificate with --trusted-cert CERT")


def _soft_failure(facts: SigningFacts, expected: str, found: str, what: str, refusal: str, fix: str) -> Check:
    """-ENODATA, -ENOPKG, -ENOKEY: refused where enforced, a taint elsewhere (module_sig_check())."""
    if facts.enforced:
        return Check(name=Gate.SIGNATURE, ok=False, expected=expected, found=found, message="%s; the kernel enforces signatures (%s): %s" % (
            what, facts.why, LOCKDOWN_REFUSAL if facts.by_lockdown else refusal), fix=fix, effect=Effect.REJECTED)
    return Check(name=Gate.SIGNATURE, ok=True, expected=expected, found=found, message="%s: the kernel loads it and taints itself (%s)" % (
        what, UNSIGNED_TAINT), fix=fix, effect=Effect.TAINTS)


def check_signed(sig: ModuleSignature, facts: SigningFacts) -> Check:
    expected = "a signature by a key the kernel trusts (%s)" % ("enforced: " + facts.why if facts.enforced else
                                                                 "not enforced: " + facts.why)
    if sig.malformed:
        return Check(name=Gate.SIGNATURE, ok=False, expected=expected, found="a malformed signature",
                     message="the appended signature is malformed: %s; the kernel refuses it (-EBADMSG), enforced or not"
                     % sig.malformed, fix=RESIGN, effect=Effect.REJECTED)
    if sig.id_type != PKEY_ID_PKCS7:  # kernel/module_signature.c mod_check_sig(): -ENOPKG
        return _soft_failure(facts, expected, "signature of id type %d" % sig.id_type,
                             "the signature is not a PKCS#7 message (id type %d: \"not signed with expected PKCS#7 "
                             "message\")" % sig.id_type, UNSUPPORTED, RESIGN)
    try:
        message = pkcs7.parse_message(sig.blob)
    except BadInput as exc:
        return Check(name=Gate.SIGNATURE, ok=False, expected=expected, found="a malformed signature",
                     message="the appended signature cannot be read (%s): the kernel refuses it (-EBADMSG), enforced or not"
                     % exc.message, fix=RESIGN, effect=Effect.REJECTED)
    signers = message.signers()
    found = _signed_by(signers)
    refused = _message_refusal(sig, message, facts, expected, found)
    if refused is not None:
        return refused
    if len(signers) > 1:
        return _several_signers(sig, signers, facts, expected, found)
    key = find_key(message.signer.id, facts.trust)
    if key.why:
        return _trusted(sig, message, key, facts, expected, found)
    return _untrusted(sig, message, key, facts, expected, found)


def _signed_by(signers: Tuple[Message, ...]) -> str:
    return "signed by %s" % " and by ".join("%s (%s)" % (m.signer.id.describe(), m.signer.digest) for m in signers)


def _message_refusal(sig: ModuleSignature, message: Message, facts: SigningFacts, expected: str, found: str) -> Optional[Check]:
    """What refuses the message before any key is looked up, whichever signer it concerns."""
    if message.has_content:  # pkcs7_supply_detached_data(): "Data already supplied", -EINVAL
        return Check(name=Gate.SIGNATURE, ok=False, expected=expected, found=found, message="%s, but the PKCS#7 message carries its own content "
                     "instead of signing the module: the kernel refuses it (-EINVAL), enforced or not" % found, fix=RESIGN,
                     effect=Effect.REJECTED)
    signers = message.signers()
    # pkcs7_parser.c pkcs7_sig_note_digest_algo()/pkcs7_sig_note_pkey_algo() fail the whole parse with
    # -ENOPKG for any SignerInfo naming an algorithm the kernel lacks
    unknown = next((m for m in signers if m.signer.digest not in pkcs7.KERNEL_DIGESTS or
                    m.algorithm not in KERNEL_SIGNATURE_ALGORITHMS), None)
    if unknown is not None:
        return _soft_failure(facts, expected, found, "%s, with %s, which this kernel's PKCS#7 parser does not know "
                             "(-ENOPKG)" % (found, unknown.signer.digest if unknown.signer.digest not in pkcs7.KERNEL_DIGESTS
                                            else "signature algorithm " + unknown.algorithm), UNSUPPORTED, RESIGN)
    for index, one in enumerate(signers):
        # pkcs7_verify.c pkcs7_verify() -> pkcs7_digest() for every SignerInfo, before any key is looked
        # up: a messageDigest that is not the module's is -EKEYREJECTED for the whole message
        digest = sig.digest_by(one.signer.digest)
        if one.signed_attrs and digest and one.message_digest != digest:
            return Check(name=Gate.SIGNATURE, ok=False, expected=expected, found=found, message="%s, but its messageDigest attribute is not the digest of "
                         "the module (\"PKCS7: Sig %d: Message digest doesn't match\"): the module changed after signing; "
                         "the kernel refuses it, enforced or not (%s)" % (found, index, BAD_SIGNATURE),
                         fix="sign it again after the last change", effect=Effect.REJECTED)
    return None


def _several_signers(sig: ModuleSignature, signers: Tuple[Message, ...], facts: SigningFacts, expected: str,
                     found: str) -> Check:
    """A message with more than one SignerInfo, as crypto/asymmetric_keys/pkcs7_trust.c (6.1)
    pkcs7_validate_trust() walks them in order: a signer whose key a keyring that counts holds is
    verified with that key, and a failure returns -EKEYREJECTED at once, enforced or not; one that
    verifies makes the message trusted; a signer no keyring holds (-ENOKEY) is skipped. None trusted:
    -ENOKEY, as for one unknown signer. So one trusted, verified signer is enough, and every signer
    whose key the kernel holds must verify."""
    keys = [find_key(one.signer.id, facts.trust) for one in signers]
    answers = [(n, _trusted(sig, one, key, facts, expected, found)) for n, (one, key) in enumerate(zip(signers, keys)) if key.why]
    # the first signer the kernel would refuse, else the first it might (a trusted key kbuildguard
    # could not verify with: it may fail there too), decides; then one verified signer makes it ok
    for effect in (Effect.REJECTED, Effect.NOT_CHECKED):
        decided = next(((n, c) for n, c in answers if c.effect is effect), None)
        if decided is not None:
            return decided[1]._replace(found=found, message="signer %d of %d: %s" % (decided[0] + 1, len(signers), decided[1].message))
    if not answers:
        return _untrusted(sig, signers[0], keys[0], facts, expected, found)
    verified = answers[0]
    others = [n for n, key in enumerate(keys) if not key.why]
    doubtful = [n for n in others if not _intact(sig, signers[n], keys[n], facts.trust)]
    said = "signer %d of %d: %s" % (verified[0] + 1, len(signers), verified[1].message)
    if doubtful:
        return verified[1]._replace(found=found, effect=Effect.NOT_CHECKED, message="%s; but signer %s names a key kbuildguard does "
                                    "not find and cannot verify, and a keyring kbuildguard cannot see (%s) may hold it: the "
                                    "kernel then verifies that signature too and refuses the module if it fails" % (
                                        said, ", ".join(str(n + 1) for n in doubtful), facts.trust.not_seen()),
                                    fix=TRUSTED_FIX)
    skipped = "; signer %s: no keyring that counts holds its key, skipped (-ENOKEY)" % ", ".join(str(n + 1) for n in others) \
        if others else ""
    return verified[1]._replace(found=found, message=said + skipped)


def _intact(sig: ModuleSignature, message: Message, key: Found, trust: Trust) -> bool:
    """A signer whose key kbuildguard does not find cannot make the kernel refuse the module: every
    keyring that counts is seen (the kernel skips it, -ENOKEY), or its signature verifies with a
    certificate of it at hand (make --sign's), so whoever holds that key finds it intact."""
    if trust.complete:
        return True
    return key.cert is not None and _verify(sig, message, key.cert)[0] is True


def _verify(sig: ModuleSignature, message: Message, cert: Certificate) -> Tuple[Optional[bool], str]:
    """True, False, or None (and why) when kbuildguard cannot verify this kind of signature."""
    if message.algorithm != "rsa":
        return None, "a %s signature: kbuildguard verifies RSA signatures only" % message.algorithm.upper()
    if cert.key is None:
        return None, "the certificate's key is %s: kbuildguard verifies RSA keys only" % (cert.key_algorithm or "unknown")
    digest = sig.digest_by(message.signer.digest)
    if not digest:
        return None, "hashlib here cannot make a %s digest" % message.signer.digest
    why = pkcs7.verify(message, digest, cert)
    if why.startswith("kbuildguard does not verify"):
        return None, why
    return not why, why


def _trusted(sig: ModuleSignature, message: Message, key: Found, facts: SigningFacts, expected: str,
             found: str) -> Check:
    cert = key.cert
    if cert is None and key.listed is not None and key.listed.key is not None:
        cert = Certificate(subject_cn="",
                           issuer_cn=key.listed.issuer_cn,
                           issuer=b"",
                           serial=key.listed.serial,
                           skid=key.listed.skid,
                           der=b"",
                           source=key.listed.source,
                           key_algorithm="rsa",
                           key=key.listed.key)
    if cert is None:
        return Check(name=Gate.SIGNATURE, ok=True, expected=expected, found=found,
                     message="%s, trusted (%s), but its certificate is not at hand, so the signature was not verified: a module "
                     "changed after signing would be refused" % (found, key.why),
                     fix="give the kernel image (--vmlinux) or the certificate (--trusted-cert) to verify it",
                     effect=Effect.NOT_CHECKED)
    verified, why = _verify(sig, message, cert)
    if verified is None:
        return Check(name=Gate.SIGNATURE, ok=True, expected=expected, found=found, message="%s, trusted (%s); signature not verified: %s" % (
            found, key.why, why), fix="", effect=Effect.NOT_CHECKED)
    if verified:
        return Check(name=Gate.SIGNATURE, ok=True, expected=expected, found=found, message="%s, trusted (%s); signature verified" % (found, key.why))
    if key.listed is not None and key.cert is None:  # matched by issuer CN and serial only: maybe another key
        return Check(name=Gate.SIGNATURE, ok=True, expected=expected, found=found, message="%s; the enrolled key of that name (%s) does not verify "
                     "it (%s): unless another key of the same issuer and serial is enrolled, the kernel refuses it" % (
                         found, key.why, why), fix=RESIGN, effect=Effect.NOT_CHECKED)
    return Check(name=Gate.SIGNATURE, ok=False, expected=expected, found=found,
                 message="%s, but the signature does not verify with the certificate of that key (%s): %s; the module changed "
                 "after signing, or was signed by another key under that key's name; the kernel refuses it, enforced or "
                 "not (%s)" % (found, key.why, why, BAD_SIGNATURE),
                 fix="sign it again after the last change with the real key (strip before signing: a stripped module loses "
                 "or breaks its signature)", effect=Effect.REJECTED)


def _untrusted(sig: ModuleSignature, message: Message, key: Found, facts: SigningFacts, expected: str,
               found: str) -> Check:
    """No key the kernel trusts has this signer's name: pkcs7_validate_trust() answers -ENOKEY, unless
    a keyring kbuildguard cannot see holds it."""
    trust = facts.trust
    note = ""
    if key.cert is not None:  # make --sign's own certificate: says whether the bytes are intact
        verified, why = _verify(sig, message, key.cert)
        note = ("; the signature is intact (verified with %s)" % key.cert.describe() if verified else
                "; it does not even verify with %s (%s)" % (key.cert.describe(), why) if verified is False else "")
    what = "%s, a key kbuildguard does not find among what the kernel trusts (%s)%s" % (found, trust.describe(), note)
    if not trust.complete:
        outcome = ("it is rejected (%s) unless a keyring kbuildguard cannot see holds that key" % UNAVAILABLE_KEY
                   if facts.enforced else "it loads and taints the kernel unless a keyring kbuildguard cannot see holds "
                   "that key")
        return Check(name=Gate.SIGNATURE, ok=True, expected=expected, found=found, message="%s; %s: not checked: %s" % (
            what, outcome, trust.not_seen()), fix=TRUSTED_FIX, effect=Effect.NOT_CHECKED)
    return _soft_failure(facts, expected, found, what, UNAVAILABLE_KEY, TRUSTED_FIX)


def with_verification(found: Check, verified: Optional[bool], cert: Certificate, why_not: str = "") -> Check:
    """The gate's answer once the signature has been checked against a certificate the gate did not
    have (make --sign's own)."""
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
