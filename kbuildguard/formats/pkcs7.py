"""The bytes of a module signature: the trailer kernel/module/signing.c reads, the PKCS#7 message
and the X.509 certificates that may have signed it.

kernel/module/signing.c (6.1) module_sig_check(): a module ends in ``~Module signature appended~\\n``
preceded by ``struct module_signature`` (12 bytes, sig_len big-endian) and a PKCS#7 blob;
kernel/module_signature.c mod_check_sig() refuses a trailer whose length leaves no room or whose
PKCS#7 form names anything else (-EBADMSG). The structures are read by der.py; only names, serials,
key ids and the digest algorithm are taken from them. What the kernel makes of them is
gates/signature.py's.
"""

import base64
import re
import struct
from typing import Dict, List, NamedTuple, Optional

from kbuildguard.errors import BadInput
from kbuildguard.formats import der

MAGIC = b"~Module signature appended~\n"
TRAILER = struct.Struct(">BBBBB3xI")  # algo, hash, id_type, signer_len, key_id_len, pad, sig_len
PKEY_ID_PKCS7 = 2
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


