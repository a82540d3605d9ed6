"""The X.509 certificates built into a kernel image: its system certificate list, found by structure.

scripts/extract-sys-certs.pl finds the list through the symbols ``__cert_list_start`` and
``system_certificate_list_size``; a distribution's vmlinuz holds a stripped vmlinux (x86) or no ELF
at all (arm64's Image), so kbuildguard finds the certificates by their shape instead. certs/
system_certificates.S (6.1) lays the list out as::

    system_certificate_list:          the build key (certs/signing_key.x509), then
                                      CONFIG_SYSTEM_TRUSTED_KEYS' certificates, back to back
    [CONFIG_SYSTEM_EXTRA_CERTIFICATE: zero fill, .int 0]
    .align 8
    system_certificate_list_size:     .quad (or .long on 32-bit) the list's length in bytes

certs/system_keyring.c load_system_certificate_list() loads each one into .builtin_trusted_keys.
So a run of DER certificates (SEQUENCE 30 82 len, tbsCertificate 30 82 len, version [0] v3) that
is followed, after at most the padding, by its own length, is that list. certs/
revocation_certificates.S (CONFIG_SYSTEM_REVOCATION_LIST) has the same shape; when two runs qualify
kbuildguard cannot tell them apart and says so rather than trusting a revoked key.

The scan looks at the decompressed payload only: the vmlinuz file itself carries the Secure Boot
signature's certificates (PE/Authenticode), which are no keys the kernel trusts.
"""

import re
import struct
from typing import List, NamedTuple, Sequence, Tuple

from kbuildguard.errors import BadInput
from kbuildguard.formats import compression
from kbuildguard.formats.pkcs7 import Certificate, parse_certificate

# A distribution vmlinux is ~60 MiB; arm64's Image ~40 MiB.
MAX_PAYLOAD_BYTES = 1 << 30
MAX_CANDIDATES = 4096  # DER-looking prefixes examined in one image
MAX_PADDING = 64 * 1024  # zero fill allowed between the list and its length (CONFIG_SYSTEM_EXTRA_CERTIFICATE_SIZE)

CERT_START = re.compile(rb"\x30\x82..\x30\x82..\xa0\x03\x02\x01\x02", re.S)
ARM64_IMAGE_MAGIC = b"ARM\x64"  # arch/arm64/kernel/head.S: at offset 56 of Image


class CertList(NamedTuple):
    certificates: Tuple[Certificate, ...]
    found: str  # "" when the list was found; else why not (ambiguous, none)


def payloads(data: bytes, source: str) -> List[bytes]:
    """The kernel inside an image: an ELF vmlinux or a raw arm64 Image as they are, else each stream
    a compressed image (bzImage, Image.gz, vmlinuz.efi) decompresses to."""
    if data[:4] == b"\x7fELF" or data[56:60] == ARM64_IMAGE_MAGIC:
        return [data]
    out: List[bytes] = []
    for magic in (compression.XZ_MAGIC, compression.GZIP_MAGIC + b"\x08", compression.ZSTD_MAGIC):
        start = data.find(magic)
        while start >= 0 and len(out) < 4:
            found = compression.decompress_prefix(data[start:], MAX_PAYLOAD_BYTES)
            if found and len(found) > 1024 * 1024:  # a kernel, not some firmware blob
                out.append(found)
                break
            start = data.find(magic, start + 1)
    if not out:
        raise BadInput("%s: neither a vmlinux, an arm64 Image nor a compressed kernel image (xz, gzip, zstd tried)"
                       % source)
    return out


def _certificates(data: bytes, source: str) -> List[Tuple[int, int, Certificate]]:
    found: List[Tuple[int, int, Certificate]] = []
    for tried, m in enumerate(CERT_START.finditer(data)):
        if tried >= MAX_CANDIDATES:
            break
        length = 4 + int.from_bytes(m.group(0)[2:4], "big")
        start = m.start()
        try:
            cert = parse_certificate(data[start:start + length], "%s (built in at byte %d)" % (source, start))
        except BadInput:
            continue
        if len(cert.der) == length:
            found.append((start, start + length, cert))
    return found


def _runs(found: Sequence[Tuple[int, int, Certificate]]) -> List[List[Tuple[int, int, Certificate]]]:
    runs: List[List[Tuple[int, int, Certificate]]] = []
    for item in found:
        if runs and runs[-1][-1][1] == item[0]:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def _length_follows(data: bytes, run: Sequence[Tuple[int, int, Certificate]]) -> int:
    """Where in ``run`` the list starts when its length follows it (index), or -1."""
    end = run[-1][1]
    tail = data[end:end + MAX_PADDING + 8]
    for at in range(0, len(tail) - 3):
        if at > 0 and tail[at - 1] != 0:  # between the list and its length only zero fill
            break
        for fmt in ("<Q", ">Q", "<I", ">I"):
            size = struct.calcsize(fmt)
            if at + size > len(tail):
                continue
            (value,) = struct.unpack_from(fmt, tail, at)
            for index, (start, _end, _cert) in enumerate(run):
                if value == end - start:
                    return index
    return -1


def system_certificates(image: bytes, source: str) -> CertList:
    """The certificates of a kernel image's system certificate list (.builtin_trusted_keys)."""
    lists: List[Tuple[Certificate, ...]] = []
    for payload in payloads(image, source):
        for run in _runs(_certificates(payload, source)):
            index = _length_follows(payload, run)
            if index >= 0:
                lists.append(tuple(cert for _s, _e, cert in run[index:]))
        if lists:
            break
    if len(lists) > 1:
        return CertList((), "%s holds %d certificate lists of the system list's shape (CONFIG_SYSTEM_REVOCATION_LIST?): "
                            "kbuildguard cannot tell which one is trusted" % (source, len(lists)))
    if not lists:
        return CertList((), "no system certificate list found in %s" % source)
    return CertList(lists[0], "")


# -- UEFI signature lists (db, MokListRT) -------------------------------------------------------

EFI_CERT_X509_GUID = bytes.fromhex("a159c0a5e494a74a87b5ab155c2bf072")  # a5c059a1-94e4-4aa7-87b5-ab155c2bf072, mixed-endian
ESL_HEADER = struct.Struct("<16sIII")  # SignatureType, SignatureListSize, SignatureHeaderSize, SignatureSize
MAX_ESL_BYTES = 4 * 1024 * 1024


def efi_signature_lists(data: bytes, source: str) -> Tuple[Certificate, ...]:
    """The X.509 certificates of UEFI EFI_SIGNATURE_LISTs (UEFI spec 32.4.1; the kernel's
    security/integrity/platform_certs/efi_parser.c parse_efi_signature_list() reads them the same
    way): a db variable's or MokListRT's contents. Hashes and other entry types are skipped."""
    out: List[Certificate] = []
    pos = 0
    while pos + ESL_HEADER.size <= min(len(data), MAX_ESL_BYTES):
        kind, list_size, header_size, sig_size = ESL_HEADER.unpack_from(data, pos)
        if list_size < ESL_HEADER.size + header_size or pos + list_size > len(data) or sig_size < 16 or \
                (list_size - ESL_HEADER.size - header_size) % sig_size:
            raise BadInput("%s: malformed EFI signature list at byte %d" % (source, pos))
        if kind == EFI_CERT_X509_GUID:
            at = pos + ESL_HEADER.size + header_size
            while at + sig_size <= pos + list_size:
                try:  # 16 bytes of owner GUID, then the DER certificate
                    out.append(parse_certificate(data[at + 16:at + sig_size], source))
                except BadInput:
                    pass
                at += sig_size
        pos += list_size
    return tuple(out)
