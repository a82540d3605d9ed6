"""The one bounded decompressor: modules (.ko.xz/.gz/.zst/.bz2) and kernel images (vmlinuz) alike.

A hostile or corrupt file must end in BadInput, never in an exception of the codec or an unbounded
allocation: every path stops reading past ``limit`` bytes of output.
"""

import bz2
import io
import lzma
import shutil
import tempfile
import zlib
from typing import BinaryIO, Iterator, List, Optional

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


CHUNK = 1 << 20  # what one step of a decoder may produce
# Output kept while decompressing: past it, the stream is only counted (nothing kept) and, when it
# ends within ``limit``, decompressed once more into memory. A bomb costs this much, not ``limit``:
# real modules are far smaller (Debian 6.1's largest, amdgpu.ko, is 17 MiB), and a large one pays a
# second decompression instead of holding its output twice.
KEEP = 64 << 20


def _too_big(source: str, limit: int) -> BadInput:
    return BadInput("%s: decompresses to more than %d MiB; refusing to read it" % (source, limit >> 20))


def _xz_chunks(raw: bytes, source: str) -> Iterator[bytes]:
    """One xz stream, as kmod's liblzma decoder reads a .ko.xz: bytes after it (junk appended to the
    file) make kmod refuse the module ("could not get modinfo: Invalid argument", seen with kmod 30),
    where LZMAFile would silently stop at them."""
    decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    data = raw
    while not decoder.eof:
        out = decoder.decompress(data, max_length=CHUNK)
        data = b""
        if out:
            yield out
        elif decoder.needs_input:
            raise BadInput("%s: corrupt compressed data: the xz stream ends early" % source)
    if decoder.unused_data.strip(b"\x00"):  # xz pads streams with zeros; anything else is junk
        raise BadInput("%s: %d bytes after the xz stream: kmod refuses such a file" % (source, len(decoder.unused_data)),
                       hint="compress the module again: xz --check=crc32 --lzma2=dict=1MiB (as kbuild does)")


def _gzip_chunks(raw: bytes, source: str) -> Iterator[bytes]:
    """Every gzip member in turn, zero padding between them skipped, as GzipFile reads them."""
    data = raw
    while True:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while not decoder.eof:
            out = decoder.decompress(data, CHUNK)
            data = decoder.unconsumed_tail
            if out:
                yield out
            elif not data:
                raise BadInput("%s: corrupt compressed data: the gzip stream ends early" % source)
        data = decoder.unused_data.lstrip(b"\x00")
        if not data:
            return
        if data[:2] != GZIP_MAGIC:
            raise BadInput("%s: corrupt compressed data: junk after the gzip stream" % source)


def _bzip2_chunks(raw: bytes, source: str) -> Iterator[bytes]:
    data = raw
    while data:
        decoder = bz2.BZ2Decompressor()
        while not decoder.eof:
            out = decoder.decompress(data, max_length=CHUNK)
            data = b""
            if out:
                yield out
            elif decoder.needs_input:
                raise BadInput("%s: corrupt compressed data: the bzip2 stream ends early" % source)
        data = decoder.unused_data


def _reader_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while True:
        out = stream.read(CHUNK)
        if not out:
            return
        yield out


def _chunks(fmt: str, raw: bytes, source: str, limit: int) -> Iterator[bytes]:
    if fmt == "xz":
        return _xz_chunks(raw, source)
    if fmt == "gzip":
        return _gzip_chunks(raw, source)
    if fmt == "bzip2":
        return _bzip2_chunks(raw, source)
    return _reader_chunks(_zstd_reader(raw, source, limit))


def _collect(fmt: str, raw: bytes, source: str, limit: int) -> bytes:
    """The whole output, refused past ``limit`` while it streams: at most KEEP bytes (or, for an
    output that ends within ``limit``, that output once more while it is joined) are ever held."""
    kept: Optional[List[bytes]] = []
    total = 0
    for chunk in _chunks(fmt, raw, source, limit):
        total += len(chunk)
        if total > limit:
            raise _too_big(source, limit)
        if kept is not None:
            kept.append(chunk)
            if total > KEEP:
                kept = None  # count the rest, keep nothing: a bomb ends here at limit, holding nothing
    if kept is None:
        kept = list(_chunks(fmt, raw, source, limit))  # the size is known to be within limit now
    return b"".join(kept)


def decompress(raw: bytes, source: str, limit: int) -> Optional[bytes]:
    """The whole content of a compressed file (recognised by content, not by name), at most ``limit``
    bytes; None when ``raw`` is not compressed. Decompressed in chunks, refused as soon as the output
    passes ``limit`` (a bomb costs KEEP bytes of memory, not its output)."""
    fmt = format_of(bytes(raw[:6]))
    if not fmt:
        return None
    try:
        return _collect(fmt, bytes(raw), source, limit)
    except BadInput:
        raise
    except (lzma.LZMAError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise BadInput("%s: corrupt compressed data: %s" % (source, exc))
    except Exception as exc:  # zstandard.ZstdError derives from Exception only
        if type(exc).__name__ == "ZstdError":
            raise BadInput("%s: corrupt compressed data: %s" % (source, exc))
        raise


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
