"""Module signatures: what a .ko carries, what the target kernel demands, and the signature gate.

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

import base64
import re
import struct
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

from kbuildguard import der
from kbuildguard.errors import BadInput
from kbuildguard.gates import Check, Effect, Gate

MAGIC = b"~Module signature appended~\n"
TRAILER = struct.Struct(">BBBBB3xI")  # algo, hash, id_type, signer_len, key_id_len, pad, sig_len
PKEY_ID_PKCS7 = 2
# what insmod and the log say (kernel/module/signing.c, security/lockdown/lockdown.c)
ENFORCED_REFUSAL = "\"Loading of unsigned module is rejected\" (Key was rejected by service)"
LOCKDOWN_REFUSAL = ("\"Lockdown: insmod: unsigned module loading is restricted; see man kernel_lockdown.7\" "
                    "(Operation not permitted)")
MAX_SIGNATURE_BYTES = 64 * 1024  # a module's PKCS#7 message is well under 2 KiB; a certificate too

OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_CN = "2.5.4.3"
OID_O = "2.5.4.10"
OID_EMAIL = "1.2.840.113549.1.9.1"
OID_SKI = "2.5.29.14"
DIGESTS = {
    "1.3.14.3.2.26": "sha1", "2.16.840.1.101.3.4.2.4": "sha224", "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384", "2.16.840.1.101.3.4.2.3": "sha512", "2.16.840.1.101.3.4.2.8": "sha3-256",
    "2.16.840.1.101.3.4.2.9": "sha3-384", "2.16.840.1.101.3.4.2.10": "sha3-512", "1.2.156.10197.1.401": "sm3",
}

UNSIGNED_TAINT = "\"module verification failed: signature and/or required key missing - tainting kernel\""


class ModuleSignature(NamedTuple):
    signed_length: int  # the bytes the signature covers (the module without signature and trailer)
    id_type: int
    blob: bytes  # the PKCS#7 message
    malformed: str = ""  # why kernel/module_signature.c mod_check_sig() returns -EBADMSG, fatal enforced or not


class SignerId(NamedTuple):
    """Who signed: issuer and serial (sign-file's default) or the subject key identifier (sign-file -k)."""

    issuer: bytes  # the issuer Name's DER, b"" when identified by key id
    issuer_cn: str
    serial: bytes  # the INTEGER's content bytes
    skid: bytes

    def describe(self) -> str:
        if self.skid:
            return "key id %s" % self.skid.hex()
        return "%s, serial %s" % (self.issuer_cn or "an unnamed issuer", self.serial.hex())


class Signer(NamedTuple):
    digest: str  # sha256, ...; the OID when kbuildguard does not know it
    id: SignerId


class Certificate(NamedTuple):
    subject_cn: str
    issuer_cn: str
    issuer: bytes  # DER of the issuer Name
    serial: bytes
    skid: bytes  # b"" when the certificate has no subjectKeyIdentifier
    der: bytes
    source: str  # the file it came from

    def describe(self) -> str:
        return "%s (%s)" % (self.subject_cn or "unnamed", self.source)

    def matches(self, signer: SignerId) -> bool:
        if signer.skid:
            return signer.skid == self.skid
        return signer.issuer == self.issuer and signer.serial.lstrip(b"\0") == self.serial.lstrip(b"\0")


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


def read_signature(data) -> Optional[ModuleSignature]:
    """The appended signature of a module image (bytes or mmap), or None when unsigned."""
    size = len(data)
    if size < len(MAGIC) + TRAILER.size or data[size - len(MAGIC):] != MAGIC:
        return None
    end = size - len(MAGIC)
    algo, hash_, id_type, signer_len, key_id_len, sig_len = TRAILER.unpack_from(data, end - TRAILER.size)
    # mod_check_sig(): the length must leave room in the file, and a PKCS#7 trailer names nothing else
    if sig_len >= end - TRAILER.size:
        return ModuleSignature(0, id_type, b"", "its length field (%d bytes) is longer than the module" % sig_len)
    if id_type == PKEY_ID_PKCS7 and (algo or hash_ or signer_len or key_id_len or bytes(data[end - 7:end - 4]) != b"\0\0\0"):
        return ModuleSignature(end - TRAILER.size - sig_len, id_type, b"",
                               "its trailer has unexpected non-zero fields (\"PKCS#7 signature info has unexpected "
                               "non-zero params\")")
    start = end - TRAILER.size - sig_len
    blob = bytes(data[start:end - TRAILER.size])
    return ModuleSignature(start, id_type, blob)


# -- PKCS#7 and X.509 -------------------------------------------------------------------------

def _name_cn(name: der.Node) -> str:
    """The name as the kernel's x509_fabricate_name() shows it: the CN, else the O, else the email."""
    found: Dict[str, str] = {}
    for rdn in der.expect(name, der.SEQUENCE, "name").children():
        for atv in der.expect(rdn, der.SET, "name").children():
            parts = der.expect(atv, der.SEQUENCE, "name").children()
            if len(parts) >= 2 and parts[0].tag == der.OID:
                found.setdefault(der.oid(parts[0]), der.text(parts[1]))
    return found.get(OID_CN) or found.get(OID_O) or found.get(OID_EMAIL) or ""


def _integer(node: der.Node, what: str) -> bytes:
    return der.expect(node, der.INTEGER, what).content


# parse_signer's answers by the message without its trailing signature value: sign-file writes no
# signed attributes (CMS_NOATTR), so all of a kernel's modules signed by one key share that prefix and
# only the RSA value differs. `check` over 4000 signed modules then walks the DER once, not 4000 times.
_SIGNERS: Dict[bytes, "Signer"] = {}


def _signer_key(blob: bytes) -> Optional[bytes]:
    """The message up to its signature value when that value is an RSA one (256, 384, 512 bytes) last."""
    for size in (256, 384, 512):
        if len(blob) > size + 4 and blob[-size - 4:-size] == b"\x04\x82" + size.to_bytes(2, "big"):
            return blob[:-size]
    return None


def parse_signer(blob: bytes) -> Signer:
    """The digest algorithm and signer of a module's PKCS#7 (or CMS) SignedData message."""
    key = _signer_key(blob)
    found = _SIGNERS.get(key) if key is not None else None
    if found is None:
        found = _parse_signer(blob)
        if key is not None and len(_SIGNERS) < 64:
            _SIGNERS[key] = found
    return found


def _parse_signer(blob: bytes) -> Signer:
    if len(blob) > MAX_SIGNATURE_BYTES:
        raise BadInput("signature of %d bytes: larger than any module signature" % len(blob))
    top = der.expect(der.read(blob), der.SEQUENCE, "PKCS#7 message")
    content_type, explicit = der.child(top, 0, "PKCS#7 message"), der.child(top, 1, "PKCS#7 message")
    if der.oid(content_type) != OID_SIGNED_DATA:
        raise BadInput("PKCS#7 message is not SignedData (%s)" % der.oid(content_type))
    signed = der.expect(der.child(der.expect(explicit, 0xA0, "PKCS#7 content"), 0, "PKCS#7 content"), der.SEQUENCE,
                        "SignedData")
    infos = der.expect(signed.children()[-1], der.SET, "SignedData signerInfos").children()
    if len(infos) != 1:
        raise BadInput("SignedData holds %d signers; a module signature has one" % len(infos))
    info = der.expect(infos[0], der.SEQUENCE, "SignerInfo")
    sid = der.child(info, 1, "SignerInfo")
    if sid.tag == der.SEQUENCE:  # IssuerAndSerialNumber
        issuer = der.expect(der.child(sid, 0, "issuerAndSerialNumber"), der.SEQUENCE, "issuer")
        signer_id = SignerId(issuer.raw, _name_cn(issuer), _integer(der.child(sid, 1, "issuerAndSerialNumber"), "serial"), b"")
    elif sid.tag == 0x80:  # [0] IMPLICIT SubjectKeyIdentifier
        signer_id = SignerId(b"", "", b"", sid.content)
    else:
        raise BadInput("SignerInfo identifies its signer by tag 0x%02x" % sid.tag)
    algorithm = der.expect(der.child(info, 2, "SignerInfo"), der.SEQUENCE, "digestAlgorithm")
    digest_oid = der.oid(der.child(algorithm, 0, "digestAlgorithm"))
    return Signer(DIGESTS.get(digest_oid, digest_oid), signer_id)


PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)


def parse_certificate(data: bytes, source: str) -> Certificate:
    top = der.expect(der.read(data), der.SEQUENCE, "certificate")
    tbs = der.expect(der.child(top, 0, "certificate"), der.SEQUENCE, "tbsCertificate").children()
    if tbs and tbs[0].tag == 0xA0:  # [0] version
        tbs = tbs[1:]
    if len(tbs) < 6:
        raise BadInput("%s: certificate lacks fields" % source)
    serial = _integer(tbs[0], "certificate serial")
    issuer, subject = der.expect(tbs[2], der.SEQUENCE, "issuer"), der.expect(tbs[4], der.SEQUENCE, "subject")
    skid = b""
    for extra in tbs[6:]:
        if extra.tag != 0xA3:  # [3] extensions
            continue
        for ext in der.expect(der.child(extra, 0, "extensions"), der.SEQUENCE, "extensions").children():
            parts = der.expect(ext, der.SEQUENCE, "extension").children()
            if parts and der.oid(parts[0]) == OID_SKI:
                value = der.expect(parts[-1], der.OCTET_STRING, "extension value")
                skid = der.expect(der.read(value.content), der.OCTET_STRING, "subjectKeyIdentifier").content
    return Certificate(_name_cn(subject), _name_cn(issuer), issuer.raw, serial, skid, top.raw, source)


def read_certificates(data: bytes, source: str) -> List[Certificate]:
    """Every certificate of a PEM file (one or more), or the one of a DER file."""
    if b"-----BEGIN" in data:
        blocks = PEM_CERT.findall(data)
        if not blocks:
            raise BadInput("%s: PEM without a CERTIFICATE block" % source)
        out = []
        for block in blocks:
            try:
                raw = base64.b64decode(b"".join(block.split()), validate=True)
            except ValueError:
                raise BadInput("%s: PEM certificate is not valid base64" % source)
            out.append(parse_certificate(raw, source))
        return out
    return [parse_certificate(data, source)]


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
