"""Read what a .ko says about how it was built: .comment, .modinfo, and the struct module layout.

pyelftools does the ELF parsing (sections, symbols, REL/RELA for every class and byte order): it is
pure Python, runs on 3.6 (0.29) and 3.13, and a hand-rolled reader would have to re-learn its
corner cases. We add only what is kernel-specific.
"""

import bz2
import gzip
import io
import lzma
import os
import struct
from typing import BinaryIO, List, NamedTuple, Optional, Sequence, Tuple

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection

from kbuildguard.errors import BadInput
from kbuildguard.identity import CompilerId, Linker, parse_comment

# A decompressed module larger than this is refused rather than read: the largest in-tree module of
# a distribution kernel (amdgpu with debug info) is well below it, a decompression bomb is not.
MAX_MODULE_BYTES = 512 * 1024 * 1024

MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst", ".ko.bz2")

_MACHINES = {
    "EM_X86_64": "x86_64",
    "EM_AARCH64": "aarch64",
    "EM_386": "i386",
    "EM_ARM": "arm",
    "EM_PPC64": "ppc64",
    "EM_PPC": "ppc",
    "EM_S390": "s390x",
    "EM_RISCV": "riscv",
    "EM_LOONGARCH": "loongarch",
    "EM_MIPS": "mips",
}

_PARSE_ERRORS = (ELFError, struct.error, ValueError, IndexError, KeyError, TypeError, AssertionError,
                 EOFError, OverflowError, UnicodeDecodeError, AttributeError)


class Layout(NamedTuple):
    """Where this module's struct module puts things (.gnu.linkonce.this_module and its relocations)."""

    size: int
    init_offset: Optional[int]
    exit_offset: Optional[int]


class ModuleInfo(NamedTuple):
    path: str
    machine: str
    elf_class: int
    big_endian: bool
    compilers: Tuple[CompilerId, ...]
    linkers: Tuple[Linker, ...]
    comment: Tuple[str, ...]
    modinfo: Tuple[Tuple[str, str], ...]
    layout: Optional[Layout]

    def info(self, key: str) -> str:
        for k, v in self.modinfo:
            if k == key:
                return v
        return ""

    @property
    def vermagic(self) -> str:
        return self.info("vermagic")

    @property
    def name(self) -> str:
        return self.info("name") or module_name(self.path)


def is_module_path(path: str) -> bool:
    return path.endswith(MODULE_SUFFIXES)


def module_name(path: str) -> str:
    base = os.path.basename(path)
    for suffix in sorted(MODULE_SUFFIXES, key=len, reverse=True):
        if base.endswith(suffix):
            return base[: -len(suffix)].replace("-", "_")
    return base


def _bounded_read(stream: BinaryIO, path: str) -> bytes:
    data = stream.read(MAX_MODULE_BYTES + 1)
    if len(data) > MAX_MODULE_BYTES:
        raise BadInput("%s: decompresses to more than %d MiB; refusing to read it" % (path, MAX_MODULE_BYTES >> 20))
    return data


def _zstd_decompress(raw: bytes, path: str) -> bytes:
    try:
        import zstandard  # type: ignore  # optional: Python < 3.14 has no zstd in the standard library
    except ImportError:
        zstandard = None
    if zstandard is not None:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw))
        return _bounded_read(reader, path)
    try:
        from compression import zstd  # type: ignore  # Python 3.14+
    except ImportError:
        raise BadInput("%s: zstd-compressed, and neither Python 3.14's compression.zstd nor the "
                       "'zstandard' package is available" % path,
                       hint="pip install zstandard, or decompress it first: zstd -d %s" % path)
    return _bounded_read(zstd.ZstdFile(io.BytesIO(raw)), path)  # pragma: no cover - 3.14 only


def load_bytes(path: str) -> bytes:
    """The ELF bytes of a module, decompressed by content (not by name) and bounded."""
    try:
        with open(path, "rb") as f:
            raw = _bounded_read(f, path)
    except IsADirectoryError:
        raise BadInput("%s: is a directory, not a module" % path)
    except OSError as exc:
        raise BadInput("%s: cannot read: %s" % (path, exc.strerror or exc))
    try:
        if raw[:6] == b"\xfd7zXZ\x00":
            return _bounded_read(lzma.LZMAFile(io.BytesIO(raw)), path)
        if raw[:2] == b"\x1f\x8b":
            return _bounded_read(gzip.GzipFile(fileobj=io.BytesIO(raw)), path)
        if raw[:4] == b"\x28\xb5\x2f\xfd":
            return _zstd_decompress(raw, path)
        if raw[:3] == b"BZh":
            return _bounded_read(bz2.BZ2File(io.BytesIO(raw)), path)
    except (lzma.LZMAError, OSError, EOFError, ValueError) as exc:
        raise BadInput("%s: corrupt compressed module: %s" % (path, exc))
    return raw


def _section_data(elf: ELFFile, name: str, file_size: int, path: str) -> Optional[bytes]:
    sec = elf.get_section_by_name(name)
    if sec is None:
        return None
    if sec["sh_type"] == "SHT_NOBITS":
        return b""
    if sec["sh_offset"] + sec["sh_size"] > file_size:
        raise BadInput("%s: section %s lies beyond the end of the file (truncated or corrupt)" % (path, name))
    return sec.data()


def _layout(elf: ELFFile, file_size: int, path: str) -> Optional[Layout]:
    sec = elf.get_section_by_name(".gnu.linkonce.this_module")
    if sec is None:
        return None
    size = sec["sh_size"]
    if size > file_size and sec["sh_type"] != "SHT_NOBITS":
        raise BadInput("%s: .gnu.linkonce.this_module claims %d bytes, more than the file" % (path, size))
    init = exit_ = None
    for rel in elf.iter_sections():
        if not isinstance(rel, RelocationSection):
            continue
        if rel.name not in (".rela.gnu.linkonce.this_module", ".rel.gnu.linkonce.this_module"):
            continue
        if rel["sh_offset"] + rel["sh_size"] > file_size:
            raise BadInput("%s: %s lies beyond the end of the file" % (path, rel.name))
        symtab = elf.get_section(rel["sh_link"])
        for reloc in rel.iter_relocations():
            symbol = symtab.get_symbol(reloc["r_info_sym"])
            # The kernel's module_init()/module_exit() macros alias the functions to init_module and
            # cleanup_module; the loader finds them through these relocations into struct module.
            if symbol.name == "init_module":
                init = reloc["r_offset"]
            elif symbol.name == "cleanup_module":
                exit_ = reloc["r_offset"]
    return Layout(size, init, exit_)


def read_module(path: str) -> ModuleInfo:
    """Inspect one module; raises BadInput for anything that is not a readable relocatable ELF."""
    data = load_bytes(path)
    if len(data) < 16 or data[:4] != b"\x7fELF":
        raise BadInput("%s: not an ELF file" % path)
    if len(data) < (64 if data[4] == 2 else 52):
        raise BadInput("%s: truncated: shorter than an ELF header" % path)
    try:
        elf = ELFFile(io.BytesIO(data))
        if elf["e_type"] != "ET_REL":
            raise BadInput("%s: ELF type %s, but a kernel module is ET_REL (relocatable)" % (path, elf["e_type"]))
        if elf["e_shoff"] + elf["e_shnum"] * elf["e_shentsize"] > len(data):
            raise BadInput("%s: truncated: the section table lies beyond the end of the file" % path)
        machine = _MACHINES.get(elf["e_machine"], str(elf["e_machine"]))
        comment = _section_data(elf, ".comment", len(data), path) or b""
        compilers, linkers, strings = parse_comment(comment)
        modinfo_raw = _section_data(elf, ".modinfo", len(data), path) or b""
        modinfo = []  # type: List[Tuple[str, str]]
        for entry in modinfo_raw.split(b"\x00"):
            if b"=" in entry:
                key, _, value = entry.decode("utf-8", errors="replace").partition("=")
                modinfo.append((key, value))
        layout = _layout(elf, len(data), path)
        return ModuleInfo(path, machine, elf.elfclass, not elf.little_endian, tuple(compilers), tuple(linkers),
                          tuple(strings), tuple(modinfo), layout)
    except BadInput:
        raise
    except _PARSE_ERRORS as exc:
        raise BadInput("%s: corrupt ELF: %s" % (path, exc or type(exc).__name__))


def find_modules(paths: Sequence[str], skip_dirs: Sequence[str] = (".kbuildguard",)) -> List[str]:
    """Every module file under the given files and folders, sorted, without following symlink loops."""
    found = []  # type: List[str]
    for path in paths:
        if os.path.isdir(path):
            seen = set()
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs[:] = sorted(d for d in dirs if d not in skip_dirs)
                try:
                    key = os.stat(root).st_ino
                except OSError:
                    continue
                if key in seen:
                    continue
                seen.add(key)
                found.extend(os.path.join(root, f) for f in sorted(files) if is_module_path(f))
        elif os.path.exists(path) or os.path.islink(path):
            found.append(path)
        else:
            raise BadInput("%s: no such file or directory" % path)
    return found
