"""Read what a .ko says about how it was built: .comment, .modinfo, and the struct module layout.

ELF parsing is kbuildguard.formats.elf (see there why not pyelftools). Modules are read into memory,
not mapped: a mapped file truncated by another process (a package upgrade, a rebuild) kills the
reader with SIGBUS on its next touch, with no report (issue 18). Reading costs a copy from the page
cache (docs/performance.md measures it on `check` over a kernel's 4000 modules).
"""

import contextlib
import functools
import os
import stat
import struct
from typing import IO, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import bounded
from kbuildguard.arch import Arch
from kbuildguard.errors import BadInput
from kbuildguard.formats import compression
from kbuildguard.formats.elf import ET_REL, R_X86_64_32, Elf, ElfShape, Needed, RelocationFacts, read_shape
from kbuildguard.formats.pkcs7 import ModuleSignature, read_signature
from kbuildguard.identity import CompilerId, Linker, parse_comment
from kbuildguard.strenum import StrEnum

# A decompressed module larger than this is refused rather than read: the largest in-tree module of
# a distribution kernel (amdgpu with debug info) is well below it, a decompression bomb is not.
MAX_MODULE_BYTES = 512 * 1024 * 1024

MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst", ".ko.bz2")


class Layout(NamedTuple):
    """Where this module's struct module puts things (.gnu.linkonce.this_module and its relocations)."""

    size: int
    init_offset: Optional[int]
    exit_offset: Optional[int]


class SymbolVersion(NamedTuple):
    name: str
    crc: int


class VersionsFormat(StrEnum):
    """How the module carries the CRCs of the symbols it uses (what modpost wrote)."""

    NONE = "none"
    FIXED_64 = "__versions: 64-byte entries, 8-byte CRC"  # struct modversion_info on 64-bit kernels
    FIXED_32 = "__versions: 64-byte entries, 4-byte CRC"  # 32-bit kernels
    EXTENDED = "__version_ext_crcs/__version_ext_names"  # CONFIG_EXTENDED_MODVERSIONS (6.13+): any name length


class ModuleInfo(NamedTuple):
    path: str
    machine: str  # as the ELF header names it, for display ("x86_64", "EM_99")
    arch: Optional[Arch]
    elf_class: int
    big_endian: bool
    compilers: Tuple[CompilerId, ...]
    linkers: Tuple[Linker, ...]
    comment: Tuple[str, ...]
    modinfo: Tuple[Tuple[str, str], ...]
    layout: Optional[Layout]
    version_names: Tuple[str, ...] = ()  # __versions, as two columns
    version_crcs: Tuple[int, ...] = ()
    versions_format: VersionsFormat = VersionsFormat.NONE
    needed: Needed = Needed((), (), ())  # undefined (and common) symbols
    exports: Tuple[str, ...] = ()  # the names it exports itself (__ksymtab_strings)
    btf_size: int = 0  # its .BTF section, 0 when it has none
    signature: Optional[ModuleSignature] = None
    btf_problem: str = ""  # why the kernel's btf_parse_hdr() would refuse its .BTF ("" when it would not)
    shape: Optional[ElfShape] = None  # the raw header and section table, for the kernel's elf_validity_check()
    relocations: Optional[RelocationFacts] = None  # what apply_relocations() applies
    compression: str = ""  # the file's compression ("xz", "gzip", "zstd", "bzip2"; "" for a plain .ko)
    symbol_problem: str = ""  # a symbol table the loader would misread (Elf.symbol_problem)
    this_module_oddity: str = ""  # a struct module field set where modpost writes zero (Elf.this_module_oddity)

    def info(self, key: str) -> str:
        for k, v in self.modinfo:
            if k == key:
                return v
        return ""

    @property
    def versions(self) -> List[SymbolVersion]:
        return [SymbolVersion(n, c) for n, c in zip(self.version_names, self.version_crcs)]

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


def _decompress(raw, path: str) -> Optional[bytes]:
    return compression.decompress(raw, path, MAX_MODULE_BYTES)


def read_whole(f: IO[bytes], path: str) -> bytes:
    """A regular file's bytes, as long as it was when opened: a file that shrinks or grows while it
    is read (another process writing it) is refused, not half-read."""
    size = os.fstat(f.fileno()).st_size
    if size > MAX_MODULE_BYTES:
        raise BadInput("%s: larger than %d MiB, not a module" % (path, MAX_MODULE_BYTES >> 20))
    data = f.read(size + 1)
    after = os.fstat(f.fileno()).st_size
    if len(data) != size or after != size:
        raise BadInput("%s: changed while being read (%d bytes when opened, %d read, %d now): "
                       "is it being written? check it again once it is complete" % (path, size, len(data), after))
    return data


def _image(path: str) -> Tuple[bytes, str]:
    """The module's ELF image (the bytes of a plain file, or the decompressed bytes) and the file's
    compression ("" for a plain file)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            # a FIFO or device would block open() or read forever
            raise BadInput("%s: not a regular file" % path)
        with bounded.open_file(path, "a module") as f:
            data = read_whole(f, path)
    except IsADirectoryError:
        raise BadInput("%s: is a directory, not a module" % path)
    except OSError as exc:
        raise BadInput("%s: cannot read: %s" % (path, exc.strerror or exc))
    unpacked = _decompress(data, path)
    if unpacked is None:
        return data, ""
    return unpacked, compression.format_of(data[:6])


@contextlib.contextmanager
def module_image(path: str) -> Iterator[bytes]:
    """The module's ELF image: the bytes of a plain file, or the decompressed bytes."""
    yield _image(path)[0]


def _section_data(elf: Elf, name: str) -> Optional[bytes]:
    sec = elf.section(name)
    return None if sec is None else elf.section_data(sec)


def _loader_section(elf: Elf, name: str) -> Optional[bytes]:
    """A section as kernel/module/main.c find_sec() finds it (6.1): the first *allocated* one of that
    name; the loader ignores a .modinfo or __versions without SHF_ALLOC."""
    index = elf.find_alloc(name)
    if not index:
        return None
    sec = elf.section_at(index)
    if sec.type == 8 and sec.offset + sec.size <= len(elf.data):
        # SHT_NOBITS: the kernel reads these two where rewrite_section_headers() (6.1 main.c 1890-1898)
        # pointed every section, its file offset in the copy of the file, whatever the type says (seed
        # 18's v01535: __versions made SHT_NOBITS still held its entries, and loaded)
        return bytes(elf.data[sec.offset:sec.offset + sec.size])
    return elf.section_data(sec)


def _layout(elf: Elf) -> Optional[Layout]:
    sec = elf.section(".gnu.linkonce.this_module")
    if sec is None:
        return None
    if sec.type != 8 and sec.offset + sec.size > len(elf.data):
        raise BadInput("%s: .gnu.linkonce.this_module claims %d bytes, more than the file" % (elf.path, sec.size))
    init = exit_ = None
    # the loader relocates against its one symbol table whatever sh_link says (seed 18's v00129 and
    # v00271, sh_link changed, loaded); a symbol index past it is the relocations gate's to judge
    symtab = elf.loader_symtab()
    count = elf.symbol_count(symtab)
    for name in (".rela.gnu.linkonce.this_module", ".rel.gnu.linkonce.this_module"):
        rel = elf.section(name)
        if rel is None:
            continue
        for reloc in elf.relocations(rel):
            if reloc.symbol >= count:
                continue
            # The kernel's module_init()/module_exit() macros alias the functions to init_module and
            # cleanup_module; the loader finds them through these relocations into struct module.
            symbol = elf.symbol_name(symtab, reloc.symbol)
            if symbol == "init_module":
                init = reloc.offset
            elif symbol == "cleanup_module":
                exit_ = reloc.offset
    return Layout(sec.size, init, exit_)


@functools.lru_cache(maxsize=256)
def _comment(data: bytes) -> Tuple[Tuple[CompilerId, ...], Tuple[Linker, ...], Tuple[str, ...]]:
    """A kernel's 4000 modules carry a handful of distinct .comment sections: parse each once."""
    compilers, linkers, strings = parse_comment(data)
    return tuple(compilers), tuple(linkers), tuple(strings)


def _versions(elf: Elf) -> Tuple[Tuple[str, ...], Tuple[int, ...], VersionsFormat]:
    """__versions in the form the kernel reads: version.c check_version() (6.1) walks fixed
    ``struct modversion_info {unsigned long crc; char name[64 - sizeof(unsigned long)];}``; 6.13's
    extended modversions add parallel __version_ext_crcs (s32) and __version_ext_names (NUL-separated),
    which the kernel then prefers."""
    e = ">" if elf.big_endian else "<"
    ext_crcs, ext_names = elf.section("__version_ext_crcs"), elf.section("__version_ext_names")
    if ext_crcs is not None and ext_names is not None:
        values = struct.unpack_from(e + "I" * (ext_crcs.size // 4), elf.section_data(ext_crcs))
        names = elf.section_data(ext_names).decode("latin-1").split("\x00")[: len(values)]
        return tuple(names), values[: len(names)], VersionsFormat.EXTENDED
    data = _loader_section(elf, "__versions")
    if data is None:
        return (), (), VersionsFormat.NONE
    crc_size = 8 if elf.bits == 64 else 4
    count = len(data) // 64
    crcs = struct.unpack_from(e + ("Q56x" if crc_size == 8 else "I60x") * count, data)
    text = data.decode("latin-1")  # symbol names are ASCII; latin-1 cannot fail
    width = 64 - crc_size
    words = tuple(text[start:start + width].partition("\x00")[0] for start in range(crc_size, count * 64, 64))
    return words, crcs, VersionsFormat.FIXED_64 if crc_size == 8 else VersionsFormat.FIXED_32


BTF_HEADER = "HBBIIIII"  # magic, version, flags, hdr_len, type_off, type_len, str_off, str_len


def _btf_problem(elf: Elf, sec) -> str:
    """kernel/bpf/btf.c btf_parse_hdr() and btf_parse_str_sec(), for a module's split BTF: what makes the kernel refuse it
    ("failed to validate module [M] BTF: -22") before anything depends on which BTF it was split from."""
    head = elf.section_prefix(sec, 24)
    if len(head) < 24:
        return "shorter than a BTF header (%d bytes)" % len(head)
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        (">" if elf.big_endian else "<") + BTF_HEADER, head)
    if magic != 0xEB9F:
        return "no BTF magic (0x%04x)" % magic
    if version != 1 or flags:
        return "BTF version %d, flags %d (the kernel reads version 1, flags 0)" % (version, flags)
    data = sec.size - hdr_len
    if hdr_len < 24 or hdr_len > sec.size or type_off + type_len > data or str_off + str_len > data or type_off % 4:
        return "its header's sections lie outside it"
    # btf_parse_str_sec() (6.1), run by btf_parse_module() next: the string section ends the BTF; a
    # split BTF may have none, else its last byte is a NUL and it is at most BTF_MAX_NAME_OFFSET + 1
    # bytes ("String section is not at the end", "Invalid string section": -EINVAL)
    if hdr_len + str_off + str_len != sec.size:
        return "its string section is not at its end"
    if str_len and (str_len - 1 > 0xFFFFFF or elf.data[sec.offset + sec.size - 1:sec.offset + sec.size] != b"\x00"):
        return "its string section does not end in a NUL or is larger than the kernel reads"
    return ""


def _exports(elf: Elf) -> Tuple[str, ...]:
    data = _section_data(elf, "__ksymtab_strings")
    return tuple(w.decode("utf-8", "replace") for w in data.split(b"\x00") if w) if data else ()


def read_module(path: str) -> ModuleInfo:
    """Inspect one module; raises BadInput for anything that is not a readable relocatable ELF."""
    data, compressed = _image(path)
    signature = read_signature(data)
    # module_sig_check() strips a well-formed signature before elf_validity_check() measures the file
    length = signature.signed_length if signature is not None and not signature.malformed else len(data)
    shape = read_shape(data, length)
    elf = Elf(data, path)
    if elf.type != ET_REL:
        raise BadInput("%s: ELF type %d, but a kernel module is ET_REL (relocatable)" % (path, elf.type))
    compilers, linkers, strings = _comment(_section_data(elf, ".comment") or b"")
    text = (_loader_section(elf, ".modinfo") or b"").decode("utf-8", errors="replace")
    modinfo = [(key, value) for key, eq, value in (e.partition("=") for e in text.split("\x00")) if eq]
    layout = _layout(elf)
    version_names, version_crcs, versions_format = _versions(elf)
    btf = elf.section(".BTF")
    return ModuleInfo(path=path, machine=elf.machine, arch=elf.arch, elf_class=elf.bits, big_endian=elf.big_endian,
                      compilers=compilers, linkers=linkers, comment=strings, modinfo=tuple(modinfo), layout=layout,
                      version_names=version_names, version_crcs=version_crcs, versions_format=versions_format,
                      needed=elf.undefined_symbols(), exports=_exports(elf), btf_size=btf.size if btf is not None else 0,
                      signature=signature, btf_problem=_btf_problem(elf, btf) if btf is not None else "", shape=shape,
                      relocations=elf.relocation_facts({R_X86_64_32} if elf.machine == "x86_64" else frozenset()),
                      compression=compressed, symbol_problem=elf.symbol_problem(),
                      this_module_oddity=elf.this_module_oddity())


def read_raw_shape(path: str) -> Optional[ElfShape]:
    """The raw ELF shape of a file kbuildguard's reader refused (the kernel's own checks may name why
    the kernel refuses it too); None when even that cannot be read."""
    try:
        with module_image(path) as data:
            signature = read_signature(data)
            length = signature.signed_length if signature is not None and not signature.malformed else len(data)
            return read_shape(data, length)
    except BadInput:
        return None


def find_modules(paths: Sequence[str], skip_dirs: Sequence[str] = (".kbuildguard",)) -> List[str]:
    """Every module file under the given files and folders, sorted, without following symlink loops."""
    found: List[str] = []
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


def read_btf(path: str) -> bytes:
    """A module's .BTF section (b"" when it has none): what btf_module_notify() hands btf_parse_module()."""
    data, _compressed = _image(path)
    elf = Elf(data, path)
    sec = elf.section(".BTF")
    return elf.section_data(sec) if sec is not None else b""
