"""RSA PKCS#1 v1.5 signature verification in pure Python, as the kernel does it for a module.

Not the ``cryptography`` package: it has no wheels for Python 3.6 here. Verification needs only
``pow(s, e, n)`` and a byte comparison, and every input is public (a certificate's key, a module's
signature), so a constant-time implementation buys nothing.

What the kernel accepts (crypto/rsa.c rsa_verify(), crypto/rsa-pkcs1pad.c pkcs1pad_verify() and
pkcs1pad_verify_complete(), 6.1): the signature is exactly as long as the modulus; 0 <= s < n
(_rsa_verify() -EINVAL); the encoded message is 00 01, at least 8 bytes FF, 00, the DigestInfo of
the digest algorithm *with* its NULL parameters, and the digest, nothing after it. Anything else is
an error; pkcs7_trust.c turns every one into -EKEYREJECTED ("Key was rejected by service").
"""

from typing import NamedTuple

# RFC 8017 section 9.2 note 1: DER of DigestInfo up to the digest (crypto/rsa-pkcs1pad.c rsa_asn1_templates)
DIGEST_INFO = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha224": bytes.fromhex("302d300d06096086480165030402040500041c"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}

# crypto/rsa.c rsa_check_key_length() (6.1): the kernel takes these modulus sizes only
KERNEL_KEY_BITS = (512, 1024, 1536, 2048, 3072, 4096)


class PublicKey(NamedTuple):
    n: int
    e: int

    @property
    def size(self) -> int:
        """The modulus length in bytes (the length of every signature it makes)."""
        return (self.n.bit_length() + 7) // 8


def verify(key: PublicKey, digest_name: str, digest: bytes, signature: bytes) -> str:
    """"" when ``signature`` is key's PKCS#1 v1.5 signature of ``digest``, else why it is not."""
    info = DIGEST_INFO.get(digest_name)
    if info is None:
        return "kbuildguard does not verify %s digests" % digest_name
    if key.n <= 0 or key.e <= 0:
        return "the certificate's RSA key is not usable"
    if len(signature) != key.size:
        return "the signature is %d bytes long, the key's modulus %d" % (len(signature), key.size)
    s = int.from_bytes(signature, "big")
    if s >= key.n:
        return "the signature is not smaller than the key's modulus"
    em = pow(s, key.e, key.n).to_bytes(key.size, "big")
    expected_tail = b"\x00" + info + digest
    pad = key.size - 2 - len(expected_tail)
    if pad < 8:
        return "the key is too short for a %s signature" % digest_name
    if em != b"\x00\x01" + b"\xff" * pad + expected_tail:
        if em[:2] != b"\x00\x01" or b"\x00" not in em[2:] or em[2:em.index(b"\x00", 2)].strip(b"\xff"):
            return "the signature was not made with this key (its PKCS#1 padding does not come out)"
        return "the digest signed is not the digest of these bytes"
    return ""
