"""The bytes of a module signature: the trailer kernel/module/signing.c reads, the PKCS#7 message,
the X.509 certificates that may have signed it, and whether the signature verifies.

kernel/module/signing.c (6.1) module_sig_check(): a module ends in ``~Module signature appended~\\n``
preceded by ``struct module_signature`` (12 bytes, sig_len big-endian) and a PKCS#7 blob;
kernel/module_signature.c mod_check_sig() refuses a trailer whose length leaves no room or whose
PKCS#7 form names anything else (-EBADMSG). The structures are read by der.py and checked as
crypto/asymmetric_keys/pkcs7_parser.c and pkcs7_verify.c check them; the RSA arithmetic is rsa.py's.
What the kernel makes of the outcome (which keys it trusts, enforced or not) is gates/signature.py's.
"""

import base64
import hashlib
import re
import struct
from typing import Dict, List, NamedTuple, Optional, Tuple

from kbuildguard.errors import BadInput
from kbuildguard.formats import der, rsa

MAGIC = b"~Module signature appended~\n"
TRAILER = struct.Struct(">BBBBB3xI")  # algo, hash, id_type, signer_len, key_id_len, pad, sig_len
PKEY_ID_PKCS7 = 2
MAX_SIGNATURE_BYTES = 64 * 1024  # a module's PKCS#7 message is well under 2 KiB; a certificate too

OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_DATA = "1.2.840.113549.1.7.1"
OID_CN = "2.5.4.3"
OID_O = "2.5.4.10"
OID_EMAIL = "1.2.840.113549.1.9.1"
OID_SKI = "2.5.29.14"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_RSA = "1.2.840.113549.1.1.1"
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
DIGESTS = {
    "1.3.14.3.2.26": "sha1", "2.16.840.1.101.3.4.2.4": "sha224", "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384", "2.16.840.1.101.3.4.2.3": "sha512", "2.16.840.1.101.3.4.2.8": "sha3-256",
    "2.16.840.1.101.3.4.2.9": "sha3-384", "2.16.840.1.101.3.4.2.10": "sha3-512", "1.2.156.10197.1.401": "sm3",
    "1.2.840.113549.2.4": "md4", "1.2.840.113549.2.5": "md5", "1.2.643.7.1.1.2.2": "streebog256",
    "1.2.643.7.1.1.2.3": "streebog512",
}
# crypto/asymmetric_keys/pkcs7_parser.c pkcs7_sig_note_digest_algo() (6.1): any other digest is -ENOPKG
KERNEL_DIGESTS = frozenset({"md4", "md5", "sha1", "sha256", "sha384", "sha512", "sha224", "sm3", "streebog256",
                            "streebog512"})
# pkcs7_sig_note_pkey_algo() (6.1): the signature algorithms a SignerInfo may name; any other is -ENOPKG.
# Note rsaEncryption only: sha256WithRSAEncryption there is -ENOPKG.
SIGNATURE_ALGORITHMS = {
    OID_RSA: "rsa",
    "1.2.840.10045.4.1": "ecdsa", "1.2.840.10045.4.3.1": "ecdsa", "1.2.840.10045.4.3.2": "ecdsa",
    "1.2.840.10045.4.3.3": "ecdsa", "1.2.840.10045.4.3.4": "ecdsa",
    "1.2.156.10197.1.501": "sm2", "1.2.643.7.1.1.1.1": "gost2012", "1.2.643.7.1.1.1.2": "gost2012",
}

class ModuleSignature(NamedTuple):
    signed_length: int  # the bytes the signature covers (the module without signature and trailer)
    id_type: int
    blob: bytes  # the PKCS#7 message
    malformed: str = ""  # why kernel/module_signature.c mod_check_sig() returns -EBADMSG, fatal enforced or not
    # the digest of the signed bytes with the message's digest algorithm (b"": the message does not
    # parse, or names a digest hashlib lacks): made where the module's bytes are, so the gate needs
    # only this record (it runs in worker processes that do not keep the bytes)
    digest: bytes = b""
    # the digest of the signed bytes by every algorithm the message's SignerInfos name (a message may
    # carry more than one signer, each with its own digest algorithm: pkcs7_verify.c digests per signer)
    digests: Tuple[Tuple[str, bytes], ...] = ()

    def digest_by(self, name: str) -> bytes:
        """The digest of the signed bytes with ``name`` (sha256, ...); b"" when not made (a record
        made with ``digest`` alone holds the first signer's)."""
        if not self.digests:
            return self.digest
        return next((d for n, d in self.digests if n == name), b"")


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


class Message(NamedTuple):
    """A module's PKCS#7 SignedData message, as pkcs7_parser.c reads it: its first SignerInfo in these
    fields, every further one in ``more`` (each a Message of that SignerInfo with the same certificates
    and content). sign-file writes one; a message with two is as valid to the kernel (pkcs7_verify.c)."""

    signer: Signer
    algorithm: str  # the SignerInfo's signature algorithm: rsa, ecdsa, sm2, gost2012, or the OID
    signature: bytes  # the signature value
    signed_attrs: bytes  # b"", or the DER of the SET OF attributes the signature is over (tag 0x31)
    message_digest: Optional[bytes]  # the messageDigest attribute, when there are attributes
    certificates: Tuple[bytes, ...]  # certificates the message carries (sign-file writes none)
    has_content: bool  # the message carries its content (a module signature is detached)
    more: Tuple["Message", ...] = ()  # the second and further SignerInfos, in the message's order

    def signers(self) -> Tuple["Message", ...]:
        """Every SignerInfo, in order, each as a Message of its own."""
        return (self._replace(more=()),) + self.more


class Certificate(NamedTuple):
    subject_cn: str
    issuer_cn: str
    issuer: bytes  # DER of the issuer Name
    serial: bytes
    skid: bytes  # b"" when the certificate has no subjectKeyIdentifier
    der: bytes
    source: str  # the file it came from
    key_algorithm: str = ""  # rsa, ec, or the OID of another SubjectPublicKeyInfo algorithm
    key: Optional[rsa.PublicKey] = None  # the RSA public key

    def describe(self) -> str:
        return "%s (%s)" % (self.subject_cn or "unnamed", self.source)

    def matches(self, signer: SignerId) -> bool:
        """As the kernel finds a key (asymmetric_key_generate_id(): the raw serial and issuer bytes,
        or the key id), byte for byte: a serial with another leading zero is another key."""
        if signer.skid:
            return signer.skid == self.skid
        return signer.issuer == self.issuer and signer.serial == self.serial


def read_signature(data) -> Optional[ModuleSignature]:
    """The appended signature of a module image (bytes or mmap), or None when unsigned."""
    size = len(data)
    if size < len(MAGIC) + TRAILER.size or data[size - len(MAGIC):] != MAGIC:
        return None
    end = size - len(MAGIC)
    algo, hash_, id_type, signer_len, key_id_len, sig_len = TRAILER.unpack_from(data, end - TRAILER.size)
    # mod_check_sig(): the length must leave room in the file, and a PKCS#7 trailer names nothing else
    if sig_len >= end - TRAILER.size:
        return ModuleSignature(signed_length=0, id_type=id_type, blob=b"", malformed="its length field (%d bytes) is longer than the module" % sig_len)
    if id_type == PKEY_ID_PKCS7 and (algo or hash_ or signer_len or key_id_len or bytes(data[end - 7:end - 4]) != b"\0\0\0"):
        return ModuleSignature(signed_length=end - TRAILER.size - sig_len, id_type=id_type, blob=b"",
                               malformed="its trailer has unexpected non-zero fields (\"PKCS#7 signature info has unexpected "
                               "non-zero params\")")
    start = end - TRAILER.size - sig_len
    blob = bytes(data[start:end - TRAILER.size])
    digests = content_digests(blob, data, start)
    return ModuleSignature(signed_length=start, id_type=id_type, blob=blob, malformed="", digest=digests[0][1] if digests else b"", digests=digests)


def content_digest(blob: bytes, data, length: int) -> bytes:
    """The digest of data[:length] with the algorithm the message's first signer names; b"" when it
    does not parse."""
    digests = content_digests(blob, data, length)
    return digests[0][1] if digests else b""


def content_digests(blob: bytes, data, length: int) -> Tuple[Tuple[str, bytes], ...]:
    """The digest of data[:length] by each algorithm the message's signers name, first signer's first;
    () when the message does not parse. An algorithm hashlib lacks is left out (digest_by() gives b"")."""
    try:
        names = []
        for one in parse_message(blob).signers():
            if one.signer.digest not in names:
                names.append(one.signer.digest)
    except BadInput:
        return ()
    out = []
    for name in names:
        try:
            hasher = hashlib.new(name)
        except ValueError:
            continue
        with memoryview(data) as view:  # bytes or mmap; no copy of the module
            hasher.update(view[:length])
        out.append((name, hasher.digest()))
    return tuple(out)


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


# parse_message's answers by the message without its trailing signature value: sign-file writes no
# signed attributes (CMS_NOATTR), so all of a kernel's modules signed by one key share that prefix and
# only the RSA value differs. `check` over 4000 signed modules then walks the DER once, not 4000 times.
_MESSAGES: Dict[bytes, "Message"] = {}


def _signature_split(blob: bytes) -> Tuple[Optional[bytes], int]:
    """The message up to its signature value when that value is an RSA one (256, 384, 512 bytes) last."""
    for size in (256, 384, 512):
        if len(blob) > size + 4 and blob[-size - 4:-size] == b"\x04\x82" + size.to_bytes(2, "big"):
            return blob[:-size], size
    return None, 0


def parse_message(blob: bytes) -> Message:
    """A module's PKCS#7 (or CMS) SignedData message: signer, digest, attributes, signature value."""
    key, size = _signature_split(blob)
    found = _MESSAGES.get(key) if key is not None else None
    if found is not None:
        return found._replace(signature=blob[-size:])
    found = _parse_message(blob)
    if key is not None and not found.more and found.signature == blob[-size:] and len(_MESSAGES) < 64:
        _MESSAGES[key] = found
    return found


def parse_signer(blob: bytes) -> Signer:
    """The digest algorithm and signer of a module's PKCS#7 (or CMS) SignedData message."""
    return parse_message(blob).signer


def _attributes(node: der.Node) -> Tuple[bytes, Optional[bytes]]:
    """The DER the signature is over (RFC 5652 5.4: the [0] IMPLICIT SET OF re-tagged as a SET OF)
    and the messageDigest attribute."""
    digest: Optional[bytes] = None
    types = set()  # pkcs7_sig_note_set_of_authattrs(): "Missing required AuthAttr" without these two
    for attr in node.children():
        parts = der.expect(attr, der.SEQUENCE, "signed attribute").children()
        if len(parts) != 2:
            raise BadInput("malformed signed attribute")
        name = der.oid(parts[0])
        values = der.expect(parts[1], der.SET, "signed attribute values").children()
        if name in types or len(values) != 1:  # pkcs7_sig_note_set_of_authattrs(): each once, one value
            raise BadInput("signed attribute %s given twice or with %d values" % (name, len(values)))
        types.add(name)
        if name == OID_MESSAGE_DIGEST:
            digest = der.expect(values[0], der.OCTET_STRING, "messageDigest").content
        elif name == OID_CONTENT_TYPE and der.oid(values[0]) != OID_DATA:
            raise BadInput("signed contentType is not data")
    if OID_CONTENT_TYPE not in types:
        raise BadInput("signed attributes without a contentType (\"Missing required AuthAttr\")")
    return b"\x31" + node.raw[1:], digest


def _signed_data(blob: bytes) -> Tuple[bytes, List[der.Node], bool, Tuple[bytes, ...], List[der.Node]]:
    """The SignedData's version, its fields, whether it carries content, its certificates, and its
    SignerInfos (pkcs7_parser.c, the order lib/asn1_decoder.c walks pkcs7.asn1)."""
    if len(blob) > MAX_SIGNATURE_BYTES:
        raise BadInput("signature of %d bytes: larger than any module signature" % len(blob))
    top = der.expect(der.read(blob), der.SEQUENCE, "PKCS#7 message")
    # bytes after the message are no error: lib/asn1_decoder.c stops at ASN1_OP_COMPLETE
    content_type, explicit = der.child(top, 0, "PKCS#7 message"), der.child(top, 1, "PKCS#7 message")
    if der.oid(content_type) != OID_SIGNED_DATA:
        raise BadInput("PKCS#7 message is not SignedData (%s)" % der.oid(content_type))
    signed = der.expect(der.child(der.expect(explicit, 0xA0, "PKCS#7 content"), 0, "PKCS#7 content"), der.SEQUENCE,
                        "SignedData")
    parts = signed.children()
    if len(parts) < 4:
        raise BadInput("malformed SignedData: %d fields" % len(parts))
    # pkcs7_parser.c pkcs7_note_signeddata_version(): one byte, 1 (PKCS#7) or 3 (CMS), else -EINVAL
    version = der.expect(parts[0], der.INTEGER, "SignedData version").content
    if version not in (b"\x01", b"\x03"):
        raise BadInput("Unsupported SignedData version")
    _digest_algorithms(parts[1])
    encap = der.expect(parts[2], der.SEQUENCE, "encapsulated content").children()
    if not encap or der.oid(encap[0]) != OID_DATA:
        raise BadInput("SignedData does not sign data")
    return version, parts, len(encap) > 1, _certificates(parts[3:-1]), _signer_infos(parts[-1])


def _digest_algorithms(node: der.Node) -> None:
    """pkcs7.asn1 DigestAlgorithmIdentifiers: a SET OF (or SEQUENCE OF) SEQUENCE { OBJECT IDENTIFIER,
    ANY OPTIONAL }. kbuildguard reads the digest from each SignerInfo, as the kernel does, but
    lib/asn1_decoder.c still walks this grammar: a wrong tag anywhere in it is -EBADMSG ("Bad
    message"), though the signature itself verifies (the differential corpus's v01479)."""
    if node.tag not in (der.SET, der.SEQUENCE):
        raise BadInput("malformed SignedData digestAlgorithms: tag 0x%02x" % node.tag)
    for algorithm in node.children():
        der.oid(der.child(der.expect(algorithm, der.SEQUENCE, "digestAlgorithm"), 0, "digestAlgorithm"))


def _certificates(extras: List[der.Node]) -> Tuple[bytes, ...]:
    """The optional certificates ([0] set or [2] sequence) and CRLs ([1] or [3]) between
    contentInfo and signerInfos; any other element is not in pkcs7.asn1: -EBADMSG."""
    certificates: List[bytes] = []
    for extra in extras:
        if extra.tag not in (0xA0, 0xA1, 0xA2, 0xA3):
            raise BadInput("malformed SignedData: an element of tag 0x%02x before signerInfos" % extra.tag)
        if extra.tag in (0xA0, 0xA2):  # [0] IMPLICIT certSet, [2] IMPLICIT certSequence
            certificates.extend(c.raw for c in extra.children())
    return tuple(certificates)


def _signer_infos(node: der.Node) -> List[der.Node]:
    infos = der.expect(node, der.SET, "SignedData signerInfos").children()
    # pkcs7_parser.c pkcs7_note_signed_info() appends each SignerInfo to the list pkcs7_verify() and
    # pkcs7_validate_trust() walk; none at all is refused (pkcs7_check_authattrs(): -EINVAL)
    if not infos:
        raise BadInput("SignedData holds no signer")
    return infos


def _signer_id(sid: der.Node, info_version: bytes) -> SignerId:
    """pkcs7_sig_note_issuer()/pkcs7_sig_note_serial() or pkcs7_sig_note_skid()."""
    if (sid.tag == der.SEQUENCE) != (info_version == b"\x01"):
        raise BadInput("SignerInfo version %d names its signer by %s" % (info_version[0], "issuer and serial" if
                                                                            sid.tag == der.SEQUENCE else "key id"))
    if sid.tag == der.SEQUENCE:  # IssuerAndSerialNumber
        issuer = der.expect(der.child(sid, 0, "issuerAndSerialNumber"), der.SEQUENCE, "issuer")
        return SignerId(issuer.raw, _name_cn(issuer), _integer(der.child(sid, 1, "issuerAndSerialNumber"), "serial"), b"")
    if sid.tag == 0x80:  # [0] IMPLICIT SubjectKeyIdentifier
        return SignerId(b"", "", b"", sid.content)
    raise BadInput("SignerInfo identifies its signer by tag 0x%02x" % sid.tag)


def _signer_info(node: der.Node, version: bytes, certificates: Tuple[bytes, ...], has_content: bool) -> Message:
    """One SignerInfo, as a Message of its own."""
    info = der.expect(node, der.SEQUENCE, "SignerInfo").children()
    if len(info) < 5:
        raise BadInput("malformed SignerInfo: %d fields" % len(info))
    # pkcs7_note_signerinfo_version(): 1 goes with SignedData 1 and an issuer+serial, 3 with
    # SignedData 3 and a key id (expect_skid); anything else is -EINVAL or -EBADMSG
    info_version = der.expect(info[0], der.INTEGER, "SignerInfo version").content
    if info_version not in (b"\x01", b"\x03"):
        raise BadInput("Unsupported SignerInfo version")
    if (info_version == b"\x01") != (version == b"\x01"):
        raise BadInput("SignedData-SignerInfo version mismatch")
    signer_id = _signer_id(info[1], info_version)
    algorithm = der.expect(info[2], der.SEQUENCE, "digestAlgorithm")
    digest_oid = der.oid(der.child(algorithm, 0, "digestAlgorithm"))
    at = 3
    signed_attrs, message_digest = b"", None
    if info[at].tag == 0xA0:  # [0] IMPLICIT signedAttrs
        signed_attrs, message_digest = _attributes(info[at])
        if message_digest is None:  # pkcs7_verify.c pkcs7_digest(): "Sig %u: No messageDigest"
            raise BadInput("signed attributes without a messageDigest")
        at += 1
    if at + 1 >= len(info):
        raise BadInput("malformed SignerInfo: no signature")
    sig_algorithm = der.oid(der.child(der.expect(info[at], der.SEQUENCE, "signatureAlgorithm"), 0, "signatureAlgorithm"))
    value = der.expect(info[at + 1], der.OCTET_STRING, "signature value").content
    return Message(signer=Signer(DIGESTS.get(digest_oid, digest_oid), signer_id),
                   algorithm=SIGNATURE_ALGORITHMS.get(sig_algorithm, sig_algorithm), signature=value, signed_attrs=signed_attrs, message_digest=message_digest,
                   certificates=certificates, has_content=has_content)


def _parse_message(blob: bytes) -> Message:
    version, _, has_content, certificates, infos = _signed_data(blob)
    signers = [_signer_info(node, version, certificates, has_content) for node in infos]
    # pkcs7_parser.c pkcs7_check_authattrs() (6.1): every SignerInfo has signed attributes or none
    # does, else "Inconsistently supplied authAttrs" (-EINVAL; so is a message without any signer)
    if len({bool(m.signed_attrs) for m in signers}) > 1:
        raise BadInput("Inconsistently supplied authAttrs: some signers have signed attributes, some not")
    return signers[0]._replace(more=tuple(signers[1:]))


def verify(message: Message, content_digest_: bytes, cert: Certificate) -> str:
    """"" when ``cert``'s key made ``message``'s signature over content whose digest is given, else why
    not (pkcs7_verify.c pkcs7_digest() and public_key_verify_signature()). The caller knows the
    digest is the message's algorithm's (ModuleSignature.digest_by(message.signer.digest))."""
    digest_name = message.signer.digest
    if not content_digest_:
        return "the digest of the module could not be made (%s)" % digest_name
    digest = content_digest_
    if message.signed_attrs:
        if message.message_digest != digest:  # pkcs7_digest(): "Sig %u: Message digest doesn't match"
            return "its messageDigest attribute is not the digest of the module"
        digest = hashlib.new(digest_name, message.signed_attrs).digest()
    if cert.key is None:
        return "the certificate's key is %s, not RSA" % (cert.key_algorithm or "unknown")
    return rsa.verify(cert.key, digest_name, digest, message.signature)


def _public_key(spki: der.Node) -> Tuple[str, Optional[rsa.PublicKey]]:
    parts = der.expect(spki, der.SEQUENCE, "subjectPublicKeyInfo").children()
    if len(parts) != 2:
        raise BadInput("malformed subjectPublicKeyInfo")
    algorithm = der.oid(der.child(der.expect(parts[0], der.SEQUENCE, "key algorithm"), 0, "key algorithm"))
    if algorithm == OID_EC_PUBLIC_KEY:
        return "ec", None
    if algorithm != OID_RSA:
        return algorithm, None
    bits = der.expect(parts[1], der.BIT_STRING, "subjectPublicKey").content
    if not bits or bits[0] != 0:
        raise BadInput("malformed RSA public key")
    numbers = der.expect(der.read(bits, 1), der.SEQUENCE, "RSA public key").children()
    if len(numbers) != 2:
        raise BadInput("malformed RSA public key")
    n = int.from_bytes(_integer(numbers[0], "RSA modulus"), "big")
    e = int.from_bytes(_integer(numbers[1], "RSA exponent"), "big")
    return "rsa", rsa.PublicKey(n, e)


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
    key_algorithm, key = _public_key(tbs[5])
    skid = b""
    for extra in tbs[6:]:
        if extra.tag != 0xA3:  # [3] extensions
            continue
        for ext in der.expect(der.child(extra, 0, "extensions"), der.SEQUENCE, "extensions").children():
            parts = der.expect(ext, der.SEQUENCE, "extension").children()
            if parts and der.oid(parts[0]) == OID_SKI:
                value = der.expect(parts[-1], der.OCTET_STRING, "extension value")
                skid = der.expect(der.read(value.content), der.OCTET_STRING, "subjectKeyIdentifier").content
    return Certificate(subject_cn=_name_cn(subject), issuer_cn=_name_cn(issuer), issuer=issuer.raw, serial=serial, skid=skid, der=top.raw, source=source,
                       key_algorithm=key_algorithm, key=key)


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
