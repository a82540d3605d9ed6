"""formats/compression.py: real compressed bytes made here, every error path, the output bounds.

The zstd library (zstandard) is not installed for the unit suite: a stand-in module gives its two
paths (decompressing, and its ZstdError), and the zstd program is replaced (unit tests start no
process); the real program is exercised by the integration suite's .ko.zst modules.
"""

import bz2
import gzip
import io
import lzma
import sys
import types

import pytest

from kbuildguard import run
from kbuildguard.errors import BadInput
from kbuildguard.formats import compression

PLAIN = b"\x7fELF" + bytes(range(256)) * 64  # 16 KiB and a bit: long enough to be bounded below it
KIB = 1024


def zstd_frame(content):
    """A real zstd frame (RFC 8878): single segment, one raw block holding ``content`` (< 128 KiB)."""
    assert len(content) < 1 << 17
    header = b"\x28\xb5\x2f\xfd" + bytes([0xA0]) + len(content).to_bytes(4, "little")  # FCS: 4 bytes
    block = ((len(content) << 3) | 1).to_bytes(3, "little")  # last block, raw
    return header + block + content


class ZstdError(Exception):
    pass


def fake_zstandard(monkeypatch, result=PLAIN, error=None):
    """Stand-in for the zstandard package: its reader yields ``result`` or raises ``error``."""
    seen = []

    class Decompressor:
        def stream_reader(self, stream):
            seen.append(stream.read())
            if error is not None:
                raise error
            return io.BytesIO(result)

    module = types.ModuleType("zstandard")
    module.ZstdDecompressor = Decompressor
    module.ZstdError = ZstdError
    monkeypatch.setitem(sys.modules, "zstandard", module)
    return seen


def no_zstd_library(monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "compression", None)  # Python 3.14's compression.zstd too


@pytest.mark.parametrize("head, name", [
    (b"\xfd7zXZ\x00rest", "xz"), (b"\x1f\x8b\x08", "gzip"), (b"\x28\xb5\x2f\xfd\x00", "zstd"), (b"BZh9", "bzip2"),
    (b"\x7fELF\x02\x01", ""), (b"", ""), (b"\x1f", ""), (bytearray(b"BZh"), "bzip2"),
])
def test_format_of(head, name):
    assert compression.format_of(head) == name


def test_bounded_read_stops_one_byte_past_the_limit():
    class Counting(io.BytesIO):
        asked = []

        def read(self, n=-1):
            self.asked.append(n)
            return super().read(n)

    stream = Counting(b"x" * 10)
    assert compression.bounded_read(stream, "f", 10) == b"x" * 10
    assert stream.asked == [11]
    with pytest.raises(BadInput, match=r"^f: decompresses to more than 0 MiB"):
        compression.bounded_read(io.BytesIO(b"x" * 11), "f", 10)


def test_not_compressed_is_none():
    assert compression.decompress(PLAIN, "m.ko", 1 << 20) is None
    assert compression.decompress(b"", "m.ko", 1 << 20) is None
    assert compression.decompress_prefix(PLAIN, 1 << 20) is None


@pytest.mark.parametrize("pack", [gzip.compress, bz2.compress, lambda b: lzma.compress(b, check=lzma.CHECK_CRC32)],
                         ids=["gzip", "bzip2", "xz"])
def test_real_bytes_decompress_whole_and_within_the_limit(pack):
    raw = pack(PLAIN)
    assert compression.decompress(raw, "m.ko", len(PLAIN)) == PLAIN  # exactly at the limit: accepted
    assert compression.decompress(bytearray(raw), "m.ko", len(PLAIN)) == PLAIN
    with pytest.raises(BadInput, match="decompresses to more than"):
        compression.decompress(raw, "m.ko", len(PLAIN) - 1)


def test_a_bomb_is_refused_without_reading_it_all():
    bomb = lzma.compress(b"\x00" * (2 << 20), preset=0)  # 2 MiB of zeros in ~300 bytes
    assert len(bomb) < 4 * KIB
    with pytest.raises(BadInput, match=r"^bomb\.ko\.xz: decompresses to more than 1 MiB; refusing"):
        compression.decompress(bomb, "bomb.ko.xz", 1 << 20)
    with pytest.raises(BadInput, match="more than 1 MiB"):
        compression.decompress(gzip.compress(b"\x00" * (2 << 20), 1), "bomb.ko.gz", 1 << 20)


@pytest.mark.parametrize("pack", [gzip.compress, bz2.compress, lzma.compress], ids=["gzip", "bzip2", "xz"])
def test_truncated_streams_are_corrupt_bad_input(pack):
    raw = pack(PLAIN)
    with pytest.raises(BadInput, match=r"^m\.ko: corrupt compressed data"):
        compression.decompress(raw[:len(raw) // 2], "m.ko", 1 << 20)


@pytest.mark.parametrize("raw", [
    gzip.compress(PLAIN)[:10] + b"\xff" * 40,  # a gzip header, then garbage deflate
    b"BZh9" + b"\xff" * 40,  # bzip2's magic, not its block header
    compression.XZ_MAGIC + b"\xff" * 40,  # xz's magic, a broken stream header
])
def test_garbage_after_the_magic_is_corrupt_bad_input(raw):
    with pytest.raises(BadInput, match="corrupt compressed data"):
        compression.decompress(raw, "m.ko", 1 << 20)


def test_xz_zero_padding_is_allowed_and_junk_is_refused_as_kmod_does():
    raw = lzma.compress(PLAIN)
    assert compression.decompress(raw + b"\x00" * 8, "m.ko.xz", 1 << 20) == PLAIN  # stream padding
    with pytest.raises(BadInput, match=r"^m\.ko\.xz: 4 bytes after the xz stream: kmod refuses") as exc:
        compression.decompress(raw + b"junk", "m.ko.xz", 1 << 20)
    assert "xz --check=crc32" in exc.value.hint


def test_zstd_with_the_zstandard_package(monkeypatch):
    frame = zstd_frame(PLAIN)
    seen = fake_zstandard(monkeypatch)
    assert compression.decompress(frame, "m.ko.zst", len(PLAIN)) == PLAIN
    assert seen == [frame]
    with pytest.raises(BadInput, match="decompresses to more than"):
        compression.decompress(frame, "m.ko.zst", len(PLAIN) - 1)


def test_zstandards_own_error_is_bad_input_and_any_other_propagates(monkeypatch):
    fake_zstandard(monkeypatch, error=ZstdError("Unknown frame descriptor"))
    with pytest.raises(BadInput, match=r"^m\.ko\.zst: corrupt compressed data: Unknown frame descriptor"):
        compression.decompress(zstd_frame(b"x"), "m.ko.zst", 1 << 20)
    fake_zstandard(monkeypatch, error=RuntimeError("a bug, not bad input"))
    with pytest.raises(RuntimeError):
        compression.decompress(zstd_frame(b"x"), "m.ko.zst", 1 << 20)


def test_zstd_through_the_system_program(monkeypatch):
    """Without a zstd library the system's zstd reads a private copy of the bytes, bounded."""
    no_zstd_library(monkeypatch)
    frame = zstd_frame(PLAIN)
    calls = []

    def decompress_file(program, path, limit):
        with open(path, "rb") as f:
            calls.append((program, f.read(), limit))
        return PLAIN

    monkeypatch.setattr(run, "decompress_file", decompress_file)
    assert compression.decompress(frame, "m.ko.zst", 1 << 20) == PLAIN
    assert calls == [(["zstd", "-d", "-c", "-q"], frame, 1 << 20)]


def test_zstd_program_past_the_limit_corrupt_or_absent(monkeypatch):
    no_zstd_library(monkeypatch)
    frame = zstd_frame(b"x")

    def too_much(program, path, limit):
        raise ValueError("past the limit")

    monkeypatch.setattr(run, "decompress_file", too_much)
    with pytest.raises(BadInput, match=r"^m\.ko\.zst: decompresses to more than 1 MiB"):
        compression.decompress(frame, "m.ko.zst", 1 << 20)
    monkeypatch.setattr(run, "decompress_file", lambda program, path, limit: None)
    monkeypatch.setattr(compression.shutil, "which", lambda name: "/usr/bin/zstd")
    with pytest.raises(BadInput, match="the system's zstd could not decompress it"):
        compression.decompress(frame, "m.ko.zst", 1 << 20)
    monkeypatch.setattr(compression.shutil, "which", lambda name: None)
    with pytest.raises(BadInput, match="neither Python 3.14's compression.zstd, the 'zstandard' package nor") as exc:
        compression.decompress(frame, "m.ko.zst", 1 << 20)
    assert exc.value.hint == "pip install zstandard, or install zstd, or decompress it first: zstd -d m.ko.zst"


def test_prefix_decompresses_the_stream_before_trailing_bytes():
    """A vmlinuz's payload is followed by other data: the stream alone is decompressed."""
    trailer = b"\x00\x10\x00\x00" + b"trailing setup data"
    assert compression.decompress_prefix(lzma.compress(PLAIN) + trailer, 1 << 20) == PLAIN
    assert compression.decompress_prefix(gzip.compress(PLAIN) + trailer, 1 << 20) == PLAIN


def test_prefix_output_is_bounded_by_the_limit():
    assert compression.decompress_prefix(lzma.compress(PLAIN), 100) == PLAIN[:100]
    assert compression.decompress_prefix(gzip.compress(PLAIN), 100) == PLAIN[:100]


@pytest.mark.parametrize("blob", [
    compression.XZ_MAGIC + b"\xff" * 40, gzip.compress(PLAIN)[:10] + b"\xff" * 40, bz2.compress(PLAIN),
], ids=["xz", "gzip", "bzip2-unsupported"])
def test_prefix_that_does_not_decompress_is_none(blob):
    assert compression.decompress_prefix(blob, 1 << 20) is None


def test_prefix_zstd_needs_the_library(monkeypatch):
    no_zstd_library(monkeypatch)
    assert compression.decompress_prefix(zstd_frame(PLAIN), 1 << 20) is None
    fake_zstandard(monkeypatch)
    assert compression.decompress_prefix(zstd_frame(PLAIN), 1 << 20) == PLAIN
    assert compression.decompress_prefix(zstd_frame(PLAIN), 100) is None  # past the limit: no answer


def test_prefix_zstd_errors(monkeypatch):
    fake_zstandard(monkeypatch, error=ZstdError("bad"))
    assert compression.decompress_prefix(zstd_frame(b"x"), 1 << 20) is None
    fake_zstandard(monkeypatch, error=RuntimeError("a bug"))
    with pytest.raises(RuntimeError):
        compression.decompress_prefix(zstd_frame(b"x"), 1 << 20)
