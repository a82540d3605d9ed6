"""The one bounded decompressor: modules (.ko.xz/.gz/.zst/.bz2) and kernel images (vmlinuz) alike.

A hostile or corrupt file must end in BadInput, never in an exception of the codec or an unbounded
allocation: every path stops reading past ``limit`` bytes of output.
"""

import bz2
import gzip
import io
import lzma
import shutil
import tempfile
import zlib
from typing import BinaryIO, Optional

from kbuildguard import run
from kbuildguard.errors import BadInput

XZ_MAGIC = b"\xfd7zXZ\x00"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"


def format_of(head: bytes) -> str:
    """The compression a file's first bytes name: "xz", "gzip", "zstd", "bzip2", or "" for none."""
    head = bytes(head[:6])
    if head == XZ_MAGIC:
        return "xz"
    if head[:2] == GZIP_MAGIC:
        return "gzip"
    if head[:4] == ZSTD_MAGIC:
        return "zstd"
    if head[:3] == BZIP2_MAGIC:
        return "bzip2"
    return ""


def bounded_read(stream: BinaryIO, source: str, limit: int) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise BadInput("%s: decompresses to more than %d MiB; refusing to read it" % (source, limit >> 20))
    return data


def _zstd_reader(raw: bytes, source: str, limit: int) -> BinaryIO:
    try:
        import zstandard  # type: ignore  # optional: Python < 3.14 has no zstd in the standard library
    except ImportError:
        zstandard = None
    if zstandard is not None:
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw))  # type: ignore[no-any-return]
    try:
        from compression import zstd  # type: ignore  # Python 3.14+
    except ImportError:
        return io.BytesIO(_zstd_program(raw, source, limit))
    return zstd.ZstdFile(io.BytesIO(raw))  # type: ignore[no-any-return]  # pragma: no cover - 3.14 only


def _zstd_program(raw: bytes, source: str, limit: int) -> bytes:
    """The system's zstd (Debian's kmod reads .ko.zst, and zstd comes with it): a .ko.zst the kernel
    loads is not "unreadable" on a Python without a zstd library. The bytes are written to a private
    temporary file first: the named file may change under us."""
    with tempfile.NamedTemporaryFile(prefix="kbuildguard-", suffix=".zst") as f:
        f.write(raw)
        f.flush()
        try:
            out = run.decompress_file(["zstd", "-d", "-c", "-q"], f.name, limit)
        except ValueError:
            raise BadInput("%s: decompresses to more than %d MiB; refusing to read it" % (source, limit >> 20))
    if out is None and shutil.which("zstd"):
        raise BadInput("%s: corrupt compressed data: the system's zstd could not decompress it" % source)
    if out is None:
        raise BadInput("%s: zstd-compressed, and neither Python 3.14's compression.zstd, the 'zstandard' package nor "
                       "a working zstd program is available" % source,
                       hint="pip install zstandard, or install zstd, or decompress it first: zstd -d %s" % source)
    return out


def _xz(raw: bytes, source: str, limit: int) -> bytes:
    """One xz stream, as kmod's liblzma decoder reads a .ko.xz: bytes after it (junk appended to the
    file) make kmod refuse the module ("could not get modinfo: Invalid argument", seen with kmod 30),
    where LZMAFile would silently stop at them."""
    decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    out = decoder.decompress(raw, max_length=limit + 1)
    if len(out) > limit:
        raise BadInput("%s: decompresses to more than %d MiB; refusing to read it" % (source, limit >> 20))
    if not decoder.eof:
        raise BadInput("%s: corrupt compressed data: the xz stream ends early" % source)
    if decoder.unused_data.strip(b"\x00"):  # xz pads streams with zeros; anything else is junk
        raise BadInput("%s: %d bytes after the xz stream: kmod refuses such a file" % (source, len(decoder.unused_data)),
                       hint="compress the module again: xz --check=crc32 --lzma2=dict=1MiB (as kbuild does)")
    return out


def decompress(raw: bytes, source: str, limit: int) -> Optional[bytes]:
    """The whole content of a compressed file (recognised by content, not by name), at most ``limit``
    bytes; None when ``raw`` is not compressed."""
    head = bytes(raw[:6])
    try:
        if head == XZ_MAGIC:
            return _xz(bytes(raw), source, limit)
        if head[:2] == GZIP_MAGIC:
            return bounded_read(gzip.GzipFile(fileobj=io.BytesIO(raw)), source, limit)  # type: ignore[arg-type]
        if head[:4] == ZSTD_MAGIC:
            return bounded_read(_zstd_reader(bytes(raw), source, limit), source, limit)
        if head[:3] == BZIP2_MAGIC:
            return bounded_read(bz2.BZ2File(io.BytesIO(raw)), source, limit)  # type: ignore[arg-type]
    except BadInput:
        raise
    except (lzma.LZMAError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise BadInput("%s: corrupt compressed data: %s" % (source, exc))
    except Exception as exc:  # zstandard.ZstdError derives from Exception only
        if type(exc).__name__ == "ZstdError":
            raise BadInput("%s: corrupt compressed data: %s" % (source, exc))
        raise
    return None


def decompress_prefix(blob: bytes, limit: int) -> Optional[bytes]:
    """Decompress the stream that starts ``blob`` and may be followed by other data (the payload of a
    vmlinuz sits between the boot code and trailing bytes); None when it does not decompress."""
    head = bytes(blob[:6])
    try:
        if head == XZ_MAGIC:
            return lzma.LZMADecompressor().decompress(blob, max_length=limit)
        if head[:2] == GZIP_MAGIC:
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob, limit)
        if head[:4] == ZSTD_MAGIC:
            try:
                import zstandard  # type: ignore
            except ImportError:
                return None
            return bounded_read(zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)), "vmlinuz", limit)
    except BadInput:
        return None
    except (lzma.LZMAError, zlib.error, EOFError, ValueError):
        return None
    except Exception as exc:  # zstandard.ZstdError
        if type(exc).__name__ == "ZstdError":
            return None
        raise
    return None
