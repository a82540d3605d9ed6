import gzip
import lzma
import os

import pytest

from elfbuild import EM_AARCH64, build_module
from kbuildguard.errors import BadInput
from kbuildguard.formats.module import find_modules, read_module


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_reads_layout_comment_vermagic(tmp_path):
    info = read_module(_write(tmp_path, "kdemo.ko", build_module()))
    assert info.machine == "x86_64"
    assert info.vermagic.startswith("6.1.0-56-amd64 ")
    assert (info.layout.size, info.layout.init_offset, info.layout.exit_offset) == (0x380, 0x138, 0x350)
    assert info.compilers[0].vendor == "Debian 12.2.0-14+deb12u1"


def test_big_endian_aarch64(tmp_path):
    info = read_module(_write(tmp_path, "be.ko", build_module(machine=EM_AARCH64, big_endian=True, exit_offset=0x338)))
    assert info.machine == "aarch64" and info.big_endian
    assert info.layout.exit_offset == 0x338


@pytest.mark.parametrize("suffix,compress", [(".ko.xz", lzma.compress), (".ko.gz", gzip.compress)])
def test_compressed(tmp_path, suffix, compress):
    info = read_module(_write(tmp_path, "kdemo" + suffix, compress(build_module())))
    assert info.name == "kdemo" and info.layout.size == 0x380


def test_no_this_module(tmp_path):
    assert read_module(_write(tmp_path, "x.ko", build_module(this_module_size=None))).layout is None


@pytest.mark.parametrize("data,message", [
    (b"", "not an ELF"),
    (b"hello world, not a module", "not an ELF"),
    (build_module()[:40], "truncated"),
    (build_module()[:900], "truncated"),
    (build_module(e_type=2), "ET_REL"),
    (lzma.compress(build_module())[:50], "corrupt compressed"),
    (b"\x7fELF" + b"\xff" * 60, "unknown ELF class"),
    (b"\x7fELF\x02\x07" + b"\x00" * 60, "unknown ELF byte order"),
])
def test_bad_input(tmp_path, data, message):
    with pytest.raises(BadInput) as exc:
        read_module(_write(tmp_path, "bad.ko", data))
    assert message in exc.value.message


def test_unreadable_and_directory(tmp_path):
    with pytest.raises(BadInput):
        read_module(str(tmp_path))
    with pytest.raises(BadInput):
        read_module(str(tmp_path / "missing.ko"))


def test_decompression_bomb_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr("kbuildguard.formats.module.MAX_MODULE_BYTES", 1 << 16)
    bomb = _write(tmp_path, "bomb.ko.xz", lzma.compress(b"\x00" * (1 << 20)))
    with pytest.raises(BadInput) as exc:
        read_module(bomb)
    assert "more than" in exc.value.message


def test_find_modules_survives_symlink_loops(tmp_path):
    (tmp_path / "a").mkdir()
    os.symlink(str(tmp_path), str(tmp_path / "a" / "loop"))
    _write(tmp_path / "a", "m.ko", build_module())
    _write(tmp_path, "readme.txt", b"x")
    assert [os.path.basename(p) for p in find_modules([str(tmp_path)])] == ["m.ko"]


def _patched(**fields):
    """build_module() with header or section-header fields overwritten (64-bit little-endian layout)."""
    import struct

    data = bytearray(build_module(versions=None))  # the section numbers below are those without __versions
    shoff = struct.unpack_from("<Q", data, 40)[0]
    for key, value in fields.items():
        if key == "e_shoff":
            struct.pack_into("<Q", data, 40, value)
        elif key == "e_shstrndx":
            struct.pack_into("<H", data, 62, value)
        elif key.startswith("sh_size_"):
            struct.pack_into("<Q", data, shoff + 64 * int(key[8:]) + 32, value)
        elif key == "symtab_link":
            struct.pack_into("<I", data, shoff + 64 * 6 + 40, value)
        elif key == "reloc_symbol":
            rela_off = struct.unpack_from("<Q", data, shoff + 64 * 6 + 24)[0]
            struct.pack_into("<Q", data, rela_off + 8, (value << 32) | 1)
    return bytes(data)


@pytest.mark.parametrize("fields,message", [
    ({"e_shoff": 1 << 40}, "section table lies beyond"),
    ({"e_shoff": 0}, "no section table"),
    ({"e_shstrndx": 200}, "section name table index"),
    ({"sh_size_1": 1 << 40}, "section .comment lies beyond"),
    ({"sh_size_3": 1 << 40}, "more than the file"),
])
def test_absurd_sizes_and_offsets(tmp_path, fields, message):
    with pytest.raises(BadInput) as exc:
        read_module(_write(tmp_path, "absurd.ko", _patched(**fields)))
    assert message in exc.value.message


@pytest.mark.parametrize("fields", [{"symtab_link": 99}, {"reloc_symbol": 999}])
def test_what_the_loader_reads_past_is_for_the_gates_not_unreadable(tmp_path, fields):
    """struct module's relocations: the loader uses its one symbol table whatever sh_link says, and
    reads a symbol index past it without a check -- Debian's 6.1 loaded such files (seed 18 of the
    differential test): the file is read, and the relocations gate says not-checked where it must."""
    info = read_module(_write(tmp_path, "absurd.ko", _patched(**fields)))
    assert info.layout is not None


def test_missing_sections_are_a_verdict_not_a_crash(tmp_path):
    info = read_module(_write(tmp_path, "bare.ko", build_module(comment=[], vermagic=None, this_module_size=None)))
    assert info.compilers == () and info.vermagic == "" and info.layout is None


def test_fifo_is_refused_not_waited_on(tmp_path):
    fifo = str(tmp_path / "pipe.ko")
    os.mkfifo(fifo)
    with pytest.raises(BadInput) as exc:
        read_module(fifo)
    assert "not a regular file" in exc.value.message


def test_permission_denied_is_one_line(tmp_path, monkeypatch):
    path = _write(tmp_path, "secret.ko", build_module())
    real_open = os.open  # every read opens through bounded.open_file, with os.open

    def deny(p, *a, **kw):
        if str(p) == path:
            raise PermissionError(13, "Permission denied", p)
        return real_open(p, *a, **kw)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(BadInput) as exc:
        read_module(path)
    assert exc.value.message.endswith("cannot read: Permission denied")


def test_wrong_elf_class_is_a_clean_error_or_verdict(tmp_path):
    data = bytearray(build_module())
    data[4] = 1  # claims ELFCLASS32: every header field is now read at the wrong width
    try:
        info = read_module(_write(tmp_path, "class32.ko", bytes(data)))
    except BadInput:
        return
    assert info.elf_class == 32
