"""Differential testing against the real loader (issue 18).

Real modules -- Debian 6.1's own (from the unpacked linux-image-R-unsigned) and examples/kdemo built
by `kbuildguard make` against /usr/src/linux-headers-R -- are mutated into a seeded, reproducible
corpus; `kbuildguard check --json` predicts every variant; Debian's own kernel in qemu (TCG) loads
every variant with Debian 12's kmod (a normal guest and one booted with module.sig_enforce=1); the
two answers are compared and counted by mutation kind.

Why the corpus looks like this (kernel/module/main.c of Debian's linux-source-6.1 unless said):
- load_module() runs module_sig_check() before elf_validity_check(), and a signature whose digest
  does not match is -EKEYREJECTED whether or not it is enforced (signing.c module_sig_check():
  only -ENODATA/-ENOPKG/-ENOKEY fall through to "not enforced: load and taint"). A renamed signed
  module therefore fails at the signature and never reaches the check a mutation aims at: every
  mutation other than the "signature" and "compression" kinds starts from the module with its
  signature removed (unsigned: taint E in a normal guest, refused under enforcement).
- Every variant gets its own module name, so that one boot loads hundreds: the name lives in
  .gnu.linkonce.this_module (struct module.name, at offset 24 on x86_64: enum module_state, then a
  list_head, include/linux/module.h) -- the name the module is registered and removed under -- and in
  .modinfo "name=" (setup_load_info(): the name used in log lines and for the blacklist). Signature
  variants keep the original name (a rename would break the signature); the guest loads a variant
  only when no module of its name is loaded, and the host puts it into the next boot otherwise.
- A variant whose relocations, init or exit oops the kernel is recorded as "crash" (the guest greps
  the kernel log for the oops) and blocks its family; when the oops left module_mutex held (a read
  of /proc/modules does not finish in 8 s: an oops in resolve_symbol(), say) the boot ends there. A
  variant that panics or hangs the guest (no output for 90 s) ends the boot too and is recorded as
  "crash"; the next boot goes on after it -- unless another variant had oopsed earlier in that boot:
  then it is tried again first, in a clean boot, before it is blamed.
- Compressed modules: Debian 12's 6.1 has no in-kernel decompression (CONFIG_MODULE_DECOMPRESS is
  not set), so what loads a .ko.xz is userspace: the guest runs Debian 12's own kmod (the host's
  /usr/bin/kmod and its libraries, copied into the initramfs), which decompresses xz and zstd and
  hands the kernel init_module(); it has no zlib and no bzip2, and passes such files on unchanged.
"""

import bz2
import gzip
import hashlib
import json
import lzma
import os
import random
import re
import select
import shutil
import stat
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from integration.qemu import newc  # the newc cpio entry the other qemu suites write

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get("KBG_DIFFTEST_CACHE", "/var/cache/kbuildguard-ci/difftest")
# Bump when the guest script or what a result records changes: it keys the cache of kernel answers.
GUEST_VERSION = "6"
# Bump when the mutation engine changes what a seed produces.
ENGINE_VERSION = "2"

SIG_MARKER = b"~Module signature appended~\n"
THIS_MODULE_NAME_OFFSET = 24  # struct module.name on x86_64 (state, pad, list_head)
MODULE_NAME_LEN = 56  # MODULE_NAME_LEN = 64 - sizeof(unsigned long)

# Debian's own modules the corpus starts from: no dependencies (busybox insmod and kmod's insmod
# load none), an init that registers something and returns, and (but crc7) a module_exit.
# (lib/crc7.ko, a library without init or exit, stays loaded for ever and its exports block every
# other copy: it is not a base.)
DEBIAN_BASES = ("drivers/block/brd.ko", "lib/ts_kmp.ko", "lib/ts_bm.ko", "lib/ts_fsm.ko",
                "drivers/net/dummy.ko", "crypto/michael_mic.ko", "fs/minix/minix.ko")
# The signed originals the signature variants start from (each has a module_exit: it can be removed)
SIGNED_BASES = ("brd", "ts_kmp", "dummy", "michael_mic")

NORMAL, ENFORCING = "normal", "sig_enforce"
GUESTS = (NORMAL, ENFORCING)
CMDLINE = {NORMAL: (), ENFORCING: ("module.sig_enforce=1",)}
# What check is told about each guest: the facts it cannot read from the kernel's files.
CHECK_ARGS = {NORMAL: (), ENFORCING: ("--sig-enforce", "yes")}


# ---------------------------------------------------------------------------------------------
# ELF64 little-endian editing: an editor of our own (not kbuildguard's parser: it is under test)

EH = {"e_type": (16, "<H"), "e_machine": (18, "<H"), "e_version": (20, "<I"), "e_entry": (24, "<Q"),
      "e_phoff": (32, "<Q"), "e_shoff": (40, "<Q"), "e_flags": (48, "<I"), "e_ehsize": (52, "<H"),
      "e_phentsize": (54, "<H"), "e_phnum": (56, "<H"), "e_shentsize": (58, "<H"), "e_shnum": (60, "<H"),
      "e_shstrndx": (62, "<H")}
SH = {"sh_name": (0, "<I"), "sh_type": (4, "<I"), "sh_flags": (8, "<Q"), "sh_addr": (16, "<Q"),
      "sh_offset": (24, "<Q"), "sh_size": (32, "<Q"), "sh_link": (40, "<I"), "sh_info": (44, "<I"),
      "sh_addralign": (48, "<Q"), "sh_entsize": (56, "<Q")}
SHT_SYMTAB, SHT_RELA, SHT_NOBITS = 2, 4, 8
SHF_ALLOC = 2


class Elf:
    def __init__(self, data: bytes) -> None:
        self.b = bytearray(data)
        assert self.b[:4] == b"\x7fELF" and self.b[4] == 2 and self.b[5] == 1, "ELF64 LE only"
        # the original geometry, kept while the header is mutated
        self.shoff = self.eh("e_shoff")
        self.shnum = self.eh("e_shnum")
        self.shstrndx = self.eh("e_shstrndx")

    def eh(self, field: str) -> int:
        off, fmt = EH[field]
        return struct.unpack_from(fmt, self.b, off)[0]

    def set_eh(self, field: str, value: int) -> None:
        off, fmt = EH[field]
        struct.pack_into(fmt, self.b, off, value & ((1 << (8 * struct.calcsize(fmt))) - 1))

    def sh(self, i: int, field: str) -> int:
        off, fmt = SH[field]
        return struct.unpack_from(fmt, self.b, self.shoff + 64 * i + off)[0]

    def set_sh(self, i: int, field: str, value: int) -> None:
        off, fmt = SH[field]
        struct.pack_into(fmt, self.b, self.shoff + 64 * i + off, value & ((1 << (8 * struct.calcsize(fmt))) - 1))

    def content(self, i: int) -> bytes:
        off, size = self.sh(i, "sh_offset"), self.sh(i, "sh_size")
        return bytes(self.b[off:off + size])

    def name(self, i: int) -> str:
        strtab = self.sh(self.shstrndx, "sh_offset")
        start = strtab + self.sh(i, "sh_name")
        return bytes(self.b[start:self.b.index(b"\0", start)]).decode("latin-1")

    def find(self, name: str) -> Optional[int]:
        for i in range(1, self.shnum):
            if self.name(i) == name:
                return i
        return None

    def sections(self, pred: Callable[[int], bool]) -> List[int]:
        return [i for i in range(1, self.shnum) if pred(i)]

    def replace(self, i: int, data: bytes) -> None:
        """Give section I new contents, appended at the end of the file (the old bytes stay unused)."""
        align = max(8, min(self.sh(i, "sh_addralign"), 64))
        self.b += b"\0" * ((-len(self.b)) % align)
        self.set_sh(i, "sh_offset", len(self.b))
        self.set_sh(i, "sh_size", len(data))
        self.b += data

    # .modinfo: NUL-separated key=value strings (include/linux/moduleparam.h __MODULE_INFO)
    def modinfo(self) -> List[bytes]:
        i = self.find(".modinfo")
        return [] if i is None else [s for s in self.content(i).split(b"\0") if s]

    def set_modinfo(self, entries: List[bytes]) -> None:
        i = self.find(".modinfo")
        assert i is not None
        self.replace(i, b"".join(e + b"\0" for e in entries))

    def rename(self, new: str) -> None:
        i = self.find(".gnu.linkonce.this_module")
        assert i is not None and len(new) < MODULE_NAME_LEN
        off = self.sh(i, "sh_offset") + THIS_MODULE_NAME_OFFSET
        self.b[off:off + MODULE_NAME_LEN] = new.encode().ljust(MODULE_NAME_LEN, b"\0")
        self.set_modinfo([b"name=" + new.encode() if e.startswith(b"name=") else e for e in self.modinfo()])

    def symtab(self) -> Optional[int]:
        found = self.sections(lambda i: self.sh(i, "sh_type") == SHT_SYMTAB)
        return found[0] if found else None


def strip_signature(data: bytes) -> bytes:
    """The module without its appended signature (scripts/sign-file's layout: PKCS#7, struct
    module_signature of 12 bytes ending in the big-endian length, the marker)."""
    if not data.endswith(SIG_MARKER):
        return data
    sig_len = struct.unpack(">I", data[-len(SIG_MARKER) - 4:-len(SIG_MARKER)])[0]
    return data[:len(data) - len(SIG_MARKER) - 12 - sig_len]


# ---------------------------------------------------------------------------------------------
# Bases and variants

class Base(NamedTuple):
    key: str  # brd, kdemo, brd.signed ...
    data: bytes
    signed: bool
    origin: str  # where it came from (path)


class Variant(NamedTuple):
    vid: str  # stable id: v00042, or reg-<case>
    name: str  # the module name it loads under
    base: str
    group: str  # elf-header, section-header, modinfo, this-module, versions, comment, relocation, symbol, signature, compression, control
    kind: str  # group.field (the table's rows)
    detail: str
    file: str  # file name in the corpus folder
    sha256: str


class Mutant(NamedTuple):
    kind: str
    detail: str
    data: bytes
    suffix: str = ".ko"


Mutation = Callable[[Elf, random.Random], Optional[Tuple[str, str]]]


def _choice(rng: random.Random, values):
    return values[rng.randrange(len(values))]


# ELF header ------------------------------------------------------------------------------------

def m_ident(e: Elf, rng: random.Random):
    i = rng.randrange(16)
    new = (e.b[i] + rng.randrange(1, 256)) & 0xFF
    old, e.b[i] = e.b[i], new
    part = "magic" if i < 4 else {4: "class", 5: "data", 6: "version", 7: "osabi", 8: "abiversion"}.get(i, "pad")
    return "e_ident." + part, "e_ident[%d] 0x%02x -> 0x%02x" % (i, old, new)


def m_eh(field: str, choices: Callable[[Elf, random.Random], List[int]]) -> Mutation:
    def mutate(e: Elf, rng: random.Random):
        old = e.eh(field)
        new = _choice(rng, [v for v in choices(e, rng) if v != old] or [old ^ 1])
        e.set_eh(field, new)
        return field, "%#x -> %#x" % (old, new)
    return mutate


EH_MUTATIONS = [
    m_ident,
    m_eh("e_type", lambda e, r: [0, 2, 3, 4, 0xFF00, r.randrange(0x10000)]),
    m_eh("e_machine", lambda e, r: [0, 3, 40, 183, 62 + 1, r.randrange(0x10000)]),
    m_eh("e_version", lambda e, r: [0, 2, r.randrange(1 << 32)]),
    m_eh("e_entry", lambda e, r: [r.randrange(1 << 64)]),
    m_eh("e_phoff", lambda e, r: [64, r.randrange(1 << 64)]),
    m_eh("e_flags", lambda e, r: [r.randrange(1 << 32)]),
    m_eh("e_ehsize", lambda e, r: [0, 52, 65, r.randrange(1 << 16)]),
    m_eh("e_phentsize", lambda e, r: [56, r.randrange(1 << 16)]),
    m_eh("e_phnum", lambda e, r: [1, r.randrange(1 << 16)]),
    m_eh("e_shoff", lambda e, r: [e.shoff + 1, e.shoff - 64, e.shoff + 64, len(e.b), len(e.b) - 10, 0, 1 << 63,
                                  r.randrange(len(e.b))]),
    m_eh("e_shnum", lambda e, r: [e.shnum + 1, e.shnum - 1, 0, 1, 0xFFFF, e.shnum + r.randrange(2, 50)]),
    m_eh("e_shstrndx", lambda e, r: [0, e.shnum, e.shnum - 1, 0xFFFF, r.randrange(1, e.shnum)]),
    m_eh("e_shentsize", lambda e, r: [0, 40, 63, 65, 128, r.randrange(1 << 16)]),
]


# Section headers -------------------------------------------------------------------------------

def _section(e: Elf, rng: random.Random) -> int:
    return rng.randrange(1, e.shnum)


def m_sh(field: str, choices: Callable[[Elf, int, random.Random], List[int]]) -> Mutation:
    def mutate(e: Elf, rng: random.Random):
        i = _section(e, rng)
        old = e.sh(i, field)
        name, size, flags = e.name(i), e.sh(i, "sh_size"), e.sh(i, "sh_flags")
        new = _choice(rng, [v for v in choices(e, i, rng) if v != old] or [old ^ 1])
        e.set_sh(i, field, new)
        where = "%s%s" % (name, " (alloc)" if flags & SHF_ALLOC else "")
        return field, "%s [%d]: %#x -> %#x (size %#x)" % (where, i, old, new, size)
    return mutate


def _offsets(e: Elf, i: int, r: random.Random) -> List[int]:
    off, size = e.sh(i, "sh_offset"), e.sh(i, "sh_size")
    n = len(e.b)
    return [n - size + 1, n + 1, n, off + 1, 1 << 62, (1 << 64) - size // 2 - 1, e.sh(r.randrange(1, e.shnum), "sh_offset"),
            r.randrange(n)]


def _sizes(e: Elf, i: int, r: random.Random) -> List[int]:
    size = e.sh(i, "sh_size")
    return [size + 1, max(size - 1, 0), 0, len(e.b), size * 2 + 8, 1 << 63, (1 << 64) - 1, r.randrange(len(e.b))]


def _names(e: Elf, i: int, r: random.Random) -> List[int]:
    strsize = e.sh(e.shstrndx, "sh_size")
    return [strsize, strsize - 1, strsize + 100, 1 << 31, r.randrange(strsize), e.sh(r.randrange(1, e.shnum), "sh_name")]


SH_MUTATIONS = [
    m_sh("sh_offset", _offsets),
    m_sh("sh_size", _sizes),
    m_sh("sh_type", lambda e, i, r: [0, 1, 2, 3, 4, 8, 9, 11, 0x6FFFFFFF, r.randrange(1 << 32)]),
    m_sh("sh_flags", lambda e, i, r: [e.sh(i, "sh_flags") ^ SHF_ALLOC, e.sh(i, "sh_flags") ^ 1, e.sh(i, "sh_flags") ^ 4,
                                      e.sh(i, "sh_flags") ^ 0x40, r.randrange(1 << 64)]),
    m_sh("sh_name", _names),
    m_sh("sh_link", lambda e, i, r: [0, e.shnum, e.shnum + 5, r.randrange(e.shnum), 0xFFFFFFFF]),
    m_sh("sh_info", lambda e, i, r: [0, e.shnum, e.shnum + 5, r.randrange(e.shnum), 0xFFFFFFFF]),
    m_sh("sh_addralign", lambda e, i, r: [0, 3, 1 << 20, 1 << 40, r.randrange(1 << 16)]),
    m_sh("sh_entsize", lambda e, i, r: [0, 1, 23, 25, 48, r.randrange(256)]),
    m_sh("sh_addr", lambda e, i, r: [r.randrange(1 << 64), 0x1000]),
]


def m_section0(e: Elf, rng: random.Random):
    field = _choice(rng, sorted(SH))
    new = _choice(rng, [1, 8, rng.randrange(1, 1 << 32)])
    e.set_sh(0, field, new)
    return "section0." + field, "section 0 %s = %#x" % (field, new)


def m_rela_link(e: Elf, rng: random.Random):
    """A relocation section's sh_link (its symbol table) or sh_info (the section it applies to)."""
    relas = e.sections(lambda i: e.sh(i, "sh_type") == SHT_RELA)
    if not relas:
        return None
    i = _choice(rng, relas)
    field = _choice(rng, ["sh_link", "sh_info"])
    old = e.sh(i, field)
    new = _choice(rng, [0, e.shnum, e.shnum + 3, rng.randrange(1, e.shnum), 0xFFFFFFFF])
    if new == old:
        new = old + 1
    e.set_sh(i, field, new)
    return "rela." + field, "%s: %d -> %d" % (e.name(i), old, new)


def m_symtab_link(e: Elf, rng: random.Random):
    i = e.symtab()
    if i is None:
        return None
    field = _choice(rng, ["sh_link", "sh_info", "sh_entsize"])
    old = e.sh(i, field)
    new = _choice(rng, [0, old + 1, max(old - 1, 0), e.shnum, rng.randrange(e.shnum), 0xFFFF])
    e.set_sh(i, field, new)
    return "symtab." + field, "%d -> %d" % (old, new)


def m_shstrtab_unterminated(e: Elf, rng: random.Random):
    i = e.shstrndx
    end = e.sh(i, "sh_offset") + e.sh(i, "sh_size") - 1
    e.b[end] = _choice(rng, [ord("x"), 0xFF])
    return "shstrtab.unterminated", "last byte of .shstrtab = %#x" % e.b[end]


# Section contents ------------------------------------------------------------------------------

def _modinfo_edit(e: Elf, key: bytes, fn: Callable[[Optional[bytes]], Optional[bytes]]) -> Tuple[Optional[bytes], Optional[bytes]]:
    entries = e.modinfo()
    old = next((x[len(key) + 1:] for x in entries if x.startswith(key + b"=")), None)
    new = fn(old)
    out = [x for x in entries if not x.startswith(key + b"=")]
    if new is not None:
        out.insert(0, key + b"=" + new)
    e.set_modinfo(out)
    return old, new


def _text(v: Optional[bytes]) -> str:
    return "(none)" if v is None else repr(v.decode("latin-1"))


def m_modinfo(key: str, choices: Callable[[Optional[bytes], random.Random], List[Optional[bytes]]]) -> Mutation:
    def mutate(e: Elf, rng: random.Random):
        if e.find(".modinfo") is None:
            return None
        pick = {}

        def fn(old):
            pick["v"] = _choice(rng, [v for v in choices(old, rng) if v != old] or [None])
            return pick["v"]
        old, new = _modinfo_edit(e, key.encode(), fn)
        return "modinfo." + key, "%s -> %s" % (_text(old), _text(new))
    return mutate


def _vermagics(old, rng):
    old = old or b"6.1.0-57-amd64 SMP preempt mod_unload modversions "
    release, _, rest = old.partition(b" ")
    flipped = bytearray(old)
    j = rng.randrange(len(flipped))
    flipped[j] = (flipped[j] + 1) & 0x7F or 0x41
    return [None, b"", bytes(flipped), old.replace(b"modversions ", b""), old.replace(b"mod_unload ", b""),
            old.replace(b"preempt ", b""), old.replace(b"SMP ", b""), release + b" " + rest.replace(b" ", b"  ", 1),
            release.replace(b"57", b"58") + b" " + rest, release.replace(b"-57-", b"-56-") + b" " + rest,
            release.replace(b"6.1.0", b"6.1.1") + b" " + rest, old.rstrip(b" "), old + b"extra "]


MODINFO_MUTATIONS = [
    m_modinfo("vermagic", _vermagics),
    m_modinfo("license", lambda o, r: [None, b"", b"Proprietary", b"GPL v2", b"Dual BSD/GPL", b"Dual MIT/GPL",
                                       b"GPL and additional rights", b"gpl", b"Dual MPL/GPL", b"BSD", b"GPL\xff"]),
    m_modinfo("depends", lambda o, r: [b"kbgnosuchmod", b"crc7", b"", b",", b"brd,kbgnosuchmod"]),
    m_modinfo("intree", lambda o, r: [None, b"N", b"Y"]),
    m_modinfo("retpoline", lambda o, r: [None, b"N"]),
    m_modinfo("staging", lambda o, r: [b"Y"]),
    m_modinfo("livepatch", lambda o, r: [b"Y"]),
    m_modinfo("srcversion", lambda o, r: [None, b"0" * 23, b""]),
    m_modinfo("name", lambda o, r: [None, b"", b"kbg_other_name", (o or b"x") + b"_x"]),
]


def m_modinfo_bytes(e: Elf, rng: random.Random):
    i = e.find(".modinfo")
    if i is None or not e.sh(i, "sh_size"):
        return None
    choice = rng.randrange(3)
    off, size = e.sh(i, "sh_offset"), e.sh(i, "sh_size")
    if choice == 0:
        j = rng.randrange(size)
        e.b[off + j] ^= 1 << rng.randrange(8)
        return "modinfo.byte", "bit flip at .modinfo+%#x" % j
    if choice == 1:
        e.b[off + size - 1] = ord("x")
        return "modinfo.unterminated", "last byte of .modinfo = 'x'"
    e.set_modinfo([x for x in e.modinfo() if not x.startswith(b"name=")] + [b"license=Proprietary"])
    return "modinfo.license-twice", "a second license=Proprietary after the first"


def m_this_module(e: Elf, rng: random.Random):
    i = e.find(".gnu.linkonce.this_module")
    if i is None:
        return None
    off, size = e.sh(i, "sh_offset"), e.sh(i, "sh_size")
    choice = rng.randrange(4)
    if choice == 0:
        j = rng.randrange(size)
        old = e.b[off + j]
        e.b[off + j] = (old + rng.randrange(1, 256)) & 0xFF
        return "this_module.byte", "byte %#x: %#x -> %#x" % (j, old, e.b[off + j])
    if choice == 1:
        delta = _choice(rng, [-64, -8, 8, 64])
        e.set_sh(i, "sh_size", size + delta)
        return "this_module.size", "sh_size %#x -> %#x" % (size, size + delta)
    if choice == 2:
        e.b[off:off + 8] = struct.pack("<Q", _choice(rng, [1, 2, 3, rng.randrange(1 << 32)]))
        return "this_module.state", "state/padding = %#x" % struct.unpack_from("<Q", e.b, off)[0]
    # the init/exit pointers: their relocations in .rela.gnu.linkonce.this_module
    r = e.find(".rela.gnu.linkonce.this_module")
    if r is None or not e.sh(r, "sh_size"):
        return None
    n = e.sh(r, "sh_size") // 24
    k = rng.randrange(n)
    roff = e.sh(r, "sh_offset") + 24 * k
    old = struct.unpack_from("<Q", e.b, roff)[0]
    new = old + _choice(rng, [-16, -8, 8, 16, 0x40])
    struct.pack_into("<Q", e.b, roff, new & ((1 << 64) - 1))
    return "this_module.rela-offset", "relocation %d of %d: offset %#x -> %#x" % (k, n, old, new)


def m_versions(e: Elf, rng: random.Random):
    """__versions: struct modversion_info { unsigned long crc; char name[56]; } (64 bytes each)."""
    i = e.find("__versions")
    if i is None:
        return None
    off, size = e.sh(i, "sh_offset"), e.sh(i, "sh_size")
    n = size // 64
    choice = rng.randrange(7)
    if choice == 0 and n:
        k = rng.randrange(n)
        e.b[off + 64 * k + rng.randrange(4)] ^= 1 << rng.randrange(8)
        name = bytes(e.b[off + 64 * k + 8:off + 64 * k + 64]).split(b"\0")[0].decode()
        return "versions.crc", "CRC of %s changed" % name
    if choice == 1 and n:
        k = rng.randrange(n)
        start = off + 64 * k + 8
        name = bytes(e.b[start:start + 56]).split(b"\0")[0]
        j = rng.randrange(len(name))
        e.b[start + j] = ord("q") if name[j] != ord("q") else ord("z")
        return "versions.name", "%s -> %s" % (name.decode(), bytes(e.b[start:start + len(name)]).decode("latin-1"))
    if choice == 2:
        e.set_sh(i, "sh_size", 0)
        return "versions.empty", "__versions emptied (sh_size 0): a tree without Module.symvers"
    if choice == 3:
        _rename_section(e, i, "__versionz")
        return "versions.removed", "no __versions section (renamed __versionz)"
    if choice == 4 and n > 1:
        e.set_sh(i, "sh_size", 64)
        return "versions.first-only", "only the first of %d entries" % n
    if choice == 5:
        e.set_sh(i, "sh_size", size - _choice(rng, [1, 8, 32]))
        return "versions.partial", "sh_size %#x -> %#x (not a multiple of 64)" % (size, e.sh(i, "sh_size"))
    # module_layout's CRC (check_modstruct_version()) alone
    for k in range(n):
        if bytes(e.b[off + 64 * k + 8:off + 64 * k + 22]) == b"module_layout\0":
            e.b[off + 64 * k] ^= 0x55
            return "versions.module_layout", "module_layout CRC changed"
    return None


def _rename_section(e: Elf, i: int, new: str) -> None:
    """Point section I's sh_name at NEW, appended to .shstrtab (moved to the end of the file)."""
    strtab = e.content(e.shstrndx)
    e.set_sh(i, "sh_name", len(strtab))
    e.replace(e.shstrndx, strtab + new.encode() + b"\0")


def m_comment(e: Elf, rng: random.Random):
    i = e.find(".comment")
    if i is None:
        return None
    choice = rng.randrange(4)
    if choice == 3:
        _rename_section(e, i, ".commentx")
        return "comment.removed", "no .comment section"
    text = [b"GCC: (GNU) 11.3.0", b"Debian clang version 16.0.6 (15~deb12u1)", b""][choice]
    e.replace(i, b"\0" + text + b"\0" if text else b"")
    return "comment.text", repr(text.decode())


# Relocations and symbols --------------------------------------------------------------------------

def _relas(e: Elf) -> List[int]:
    return e.sections(lambda i: e.sh(i, "sh_type") == SHT_RELA and e.sh(i, "sh_size") >= 24
                      and not e.name(i).startswith(".rela.debug"))


def m_rela(e: Elf, rng: random.Random):
    relas = _relas(e)
    if not relas:
        return None
    i = _choice(rng, relas)
    n = e.sh(i, "sh_size") // 24
    k = rng.randrange(n)
    roff = e.sh(i, "sh_offset") + 24 * k
    r_offset, r_info, r_addend = struct.unpack_from("<QQq", e.b, roff)
    sym, typ = r_info >> 32, r_info & 0xFFFFFFFF
    target = e.sh(i, "sh_info")
    target_size = e.sh(target, "sh_size") if target < e.shnum else 0
    nsyms = e.sh(e.symtab(), "sh_size") // 24 if e.symtab() else 0
    field = _choice(rng, ["type", "type", "offset", "symbol", "addend"])
    if field == "type":
        new = _choice(rng, [0, 1, 2, 4, 9, 10, 11, 24, 37, 42, rng.randrange(64)])
        r_info = (sym << 32) | new
        detail = "type %d -> %d" % (typ, new)
    elif field == "offset":
        new = _choice(rng, [target_size, target_size - 1, target_size + 4096, 1 << 40, rng.randrange(max(target_size, 1))])
        detail = "offset %#x -> %#x (section size %#x)" % (r_offset, new, target_size)
        r_offset = new
    elif field == "symbol":
        new = _choice(rng, [0, nsyms, nsyms + 100, rng.randrange(max(nsyms, 1)), 0xFFFFFFFF])
        r_info = (new << 32) | typ
        detail = "symbol %d -> %d (of %d)" % (sym, new, nsyms)
    else:
        new = _choice(rng, [r_addend + 1, r_addend - 4, 1 << 31, -(1 << 31) - 8, 1 << 40, rng.randrange(-(1 << 20), 1 << 20)])
        detail = "addend %d -> %d" % (r_addend, new)
        r_addend = new
    struct.pack_into("<QQq", e.b, roff, r_offset & ((1 << 64) - 1), r_info & ((1 << 64) - 1), r_addend)
    return "rela." + field, "%s[%d]: %s" % (e.name(i), k, detail)


def m_sym(e: Elf, rng: random.Random):
    """Elf64_Sym { st_name, st_info, st_other, st_shndx, st_value, st_size } (24 bytes)."""
    i = e.symtab()
    if i is None:
        return None
    n = e.sh(i, "sh_size") // 24
    if n < 2:
        return None
    k = rng.randrange(1, n)
    soff = e.sh(i, "sh_offset") + 24 * k
    st_name, st_info, st_other, st_shndx, st_value, st_size = struct.unpack_from("<IBBHQQ", e.b, soff)
    field = _choice(rng, ["st_shndx", "st_shndx", "st_info", "st_name", "st_value", "undefined-name"])
    if field == "st_shndx":
        new = _choice(rng, [0, 0xFFF1, 0xFFF2, e.shnum, e.shnum + 7, 0xFF00, rng.randrange(1, e.shnum)])
        detail, st_shndx = "st_shndx %#x -> %#x" % (st_shndx, new), new
    elif field == "st_info":
        new = _choice(rng, [0x10, 0x12, 0x11, 0x00, 0x03, 0x04, 0x20, rng.randrange(256)])
        detail, st_info = "st_info %#x -> %#x" % (st_info, new), new
    elif field == "st_name":
        strsize = e.sh(e.sh(i, "sh_link"), "sh_size") if e.sh(i, "sh_link") < e.shnum else 0
        new = _choice(rng, [strsize, strsize + 100, 1 << 31, rng.randrange(max(strsize, 1))])
        detail, st_name = "st_name %#x -> %#x (strtab %#x)" % (st_name, new, strsize), new
    elif field == "st_value":
        new = _choice(rng, [st_value + 8, 1 << 40, 0, rng.randrange(1 << 64)])
        detail, st_value = "st_value %#x -> %#x" % (st_value, new), new
    else:  # an undefined symbol renamed: it names nothing the kernel exports
        undefined = [j for j in range(1, n) if struct.unpack_from("<H", e.b, e.sh(i, "sh_offset") + 24 * j + 6)[0] == 0
                     and struct.unpack_from("<I", e.b, e.sh(i, "sh_offset") + 24 * j)[0]]
        if not undefined:
            return None
        j = _choice(rng, undefined)
        nameoff = e.sh(e.sh(i, "sh_link"), "sh_offset") + struct.unpack_from("<I", e.b, e.sh(i, "sh_offset") + 24 * j)[0]
        end = e.b.index(b"\0", nameoff)
        old = bytes(e.b[nameoff:end]).decode("latin-1")
        e.b[end - 1] = ord("q") if e.b[end - 1] != ord("q") else ord("z")
        return "sym.undefined-name", "%s -> %s" % (old, bytes(e.b[nameoff:end]).decode("latin-1"))
    struct.pack_into("<IBBHQQ", e.b, soff, st_name, st_info, st_other, st_shndx,
                     st_value & ((1 << 64) - 1), st_size)
    return "sym." + field, "symbol %d: %s" % (k, detail)


# group -> (weight, mutations)
GROUPS: "OrderedDict[str, Tuple[int, List[Mutation]]]" = OrderedDict([
    ("elf-header", (14, EH_MUTATIONS)),
    ("section-header", (22, SH_MUTATIONS + [m_section0, m_rela_link, m_symtab_link, m_shstrtab_unterminated])),
    ("modinfo", (14, MODINFO_MUTATIONS + [m_modinfo_bytes])),
    ("this-module", (6, [m_this_module])),
    ("versions", (8, [m_versions])),
    ("comment", (2, [m_comment])),
    ("relocation", (14, [m_rela])),
    ("symbol", (10, [m_sym])),
])


# Signature trailer (on the signed originals) ------------------------------------------------------

def signature_mutant(data: bytes, rng: random.Random) -> Mutant:
    assert data.endswith(SIG_MARKER)
    n = len(data)
    sig_len = struct.unpack(">I", data[-len(SIG_MARKER) - 4:-len(SIG_MARKER)])[0]
    info_at = n - len(SIG_MARKER) - 12  # struct module_signature
    pkcs7_at = info_at - sig_len
    b = bytearray(data)
    choice = rng.randrange(10)
    if choice == 0:
        return Mutant("sig.none", "the signed original, unchanged", bytes(b))
    if choice == 1:
        e = Elf(data)
        text = e.find(".text") or e.find(".init.text")
        assert text is not None
        j = rng.randrange(e.sh(text, "sh_size"))
        b[e.sh(text, "sh_offset") + j] ^= 1 << rng.randrange(8)
        return Mutant("sig.text-byte", "bit flip at .text+%#x (signed content)" % j, bytes(b))
    if choice in (2, 3):
        j = rng.randrange(sig_len)
        b[pkcs7_at + j] ^= 1 << rng.randrange(8)
        return Mutant("sig.pkcs7-byte", "bit flip at PKCS#7+%#x of %#x" % (j, sig_len), bytes(b))
    if choice == 4:
        j = rng.randrange(12)
        old = b[info_at + j]
        b[info_at + j] = (old + rng.randrange(1, 256)) & 0xFF
        field = ["algo", "hash", "id_type", "signer_len", "key_id_len", "pad", "pad", "pad",
                 "sig_len", "sig_len", "sig_len", "sig_len"][j]
        return Mutant("sig.info-" + field, "module_signature byte %d (%s): %#x -> %#x" % (j, field, old, b[info_at + j]), bytes(b))
    if choice == 5:
        j = rng.randrange(len(SIG_MARKER))
        b[n - len(SIG_MARKER) + j] ^= 0x20
        return Mutant("sig.marker", "marker byte %d changed" % j, bytes(b))
    if choice == 6:
        cut = _choice(rng, [1, 12, len(SIG_MARKER) + 1, len(SIG_MARKER) + 12 + 1, len(SIG_MARKER) + 12 + sig_len // 2])
        return Mutant("sig.truncated", "last %d bytes cut" % cut, bytes(b[:n - cut]))
    if choice == 7:
        return Mutant("sig.trailing-junk", "bytes after the marker", bytes(b) + b"\0" * rng.randrange(1, 16))
    if choice == 8:
        e = Elf(data)
        i = e.find(".modinfo")
        assert i is not None
        j = rng.randrange(e.sh(i, "sh_size"))
        b[e.sh(i, "sh_offset") + j] ^= 1 << rng.randrange(8)
        return Mutant("sig.modinfo-byte", "bit flip at .modinfo+%#x (signed content)" % j, bytes(b))
    # the section header table (signed too)
    e = Elf(data)
    j = rng.randrange(e.shnum * 64)
    b[e.shoff + j] ^= 1 << rng.randrange(8)
    return Mutant("sig.shdr-byte", "bit flip in the section headers at +%#x (signed content)" % j, bytes(b))


# Compression ----------------------------------------------------------------------------------------

def compressed(data: bytes, fmt: str) -> bytes:
    if fmt == "xz":  # as kmod/depmod expect and Debian's scripts would: crc32 check
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    if fmt == "gz":
        return gzip.compress(data, mtime=0)
    if fmt == "bz2":
        return bz2.compress(data)
    proc = subprocess.run(["zstd", "-q", "-c", "-19"], input=data, stdout=subprocess.PIPE, check=True)
    return proc.stdout


def compression_mutant(data: bytes, rng: random.Random) -> Mutant:
    fmt = _choice(rng, ["xz", "gz", "zst", "bz2"])
    packed = bytearray(compressed(data, fmt))
    choice = rng.randrange(4)
    if choice <= 1:
        return Mutant("compress." + fmt, "a good module, compressed", bytes(packed), ".ko." + fmt)
    if choice == 2:
        j = rng.randrange(len(packed) // 4, len(packed))
        packed[j] ^= 1 << rng.randrange(8)
        return Mutant("compress.%s-corrupt" % fmt, "bit flip at +%#x of %#x" % (j, len(packed)), bytes(packed), ".ko." + fmt)
    cut = rng.randrange(1, len(packed) // 2)
    return Mutant("compress.%s-truncated" % fmt, "last %d of %d bytes cut" % (cut, len(packed)), bytes(packed[:-cut]), ".ko." + fmt)


# ---------------------------------------------------------------------------------------------
# Building the corpus

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def variant_name(vid: str) -> str:
    return "kbgdt_" + vid.replace("-", "_")


def mutate(base: Base, rng: random.Random, name: str) -> Mutant:
    """One mutant of BASE (renamed NAME, signature removed) from one draw of RNG."""
    groups = list(GROUPS)
    for _attempt in range(50):
        group = rng.choices(groups, weights=[GROUPS[g][0] for g in groups])[0]
        e = Elf(strip_signature(base.data))
        e.rename(name)
        e.shoff, e.shnum, e.shstrndx = e.eh("e_shoff"), e.eh("e_shnum"), e.eh("e_shstrndx")
        found = _choice(rng, GROUPS[group][1])(e, rng)
        if found is not None:
            return Mutant(group + ":" + found[0], found[1], bytes(e.b))
    raise AssertionError("no mutation applies to %s" % base.key)


def renamed(base: Base, name: str) -> bytes:
    e = Elf(strip_signature(base.data))
    e.rename(name)
    return bytes(e.b)


def generate(bases: Dict[str, Base], seed: int, count: int, folder: str) -> List[Variant]:
    """COUNT random variants (seeded: the same seed, bases and ENGINE_VERSION give the same files)."""
    os.makedirs(folder, exist_ok=True)
    unsigned = sorted(k for k, b in bases.items() if not b.signed)
    signed = sorted(k for k, b in bases.items() if b.signed)
    out = []
    for n in range(count):
        rng = random.Random("%s:%d:%d" % (ENGINE_VERSION, seed, n))
        vid = "v%05d" % n
        roll = rng.random()
        if roll < 0.10 and signed:  # the signature trailer of a signed original (keeps its name)
            base = bases[_choice(rng, signed)]
            m = signature_mutant(base.data, rng)
            group, name = "signature", base.key.split(".")[0]
        elif roll < 0.16:  # compression of a good module, renamed (some signed originals too)
            if signed and rng.random() < 0.25:
                base = bases[_choice(rng, signed)]
                m, name = compression_mutant(base.data, rng), base.key.split(".")[0]
            else:
                base = bases[_choice(rng, unsigned)]
                name = variant_name(vid)
                m = compression_mutant(renamed(base, name), rng)
            group = "compression"
        elif roll < 0.17:  # controls: the base itself, renamed
            base = bases[_choice(rng, unsigned)]
            name = variant_name(vid)
            m = Mutant("control", "unmutated (signature removed, renamed)", renamed(base, name))
            group = "control"
        else:
            base = bases[_choice(rng, unsigned)]
            name = variant_name(vid)
            m = mutate(base, rng, name)
            group, _, kind = m.kind.partition(":")
            m = m._replace(kind=kind)
        out.append(_write(folder, vid, name, base.key, group, m))
    return out


def _write(folder: str, vid: str, name: str, base: str, group: str, m: Mutant) -> Variant:
    fname = vid + m.suffix
    with open(os.path.join(folder, fname), "wb") as f:
        f.write(m.data)
    return Variant(vid=vid,
                   name=name,
                   base=base,
                   group=group,
                   kind=m.kind,
                   detail=m.detail,
                   file=fname,
                   sha256=_sha(m.data))


# The numbered cases, fixed (not drawn): each a Variant with a stable id.
def regressions(bases: Dict[str, Base], folder: str) -> List[Variant]:
    os.makedirs(folder, exist_ok=True)
    out = []

    def add(case: str, base_key: str, kind: str, detail: str, edit: Optional[Callable[[Elf], None]] = None,
            data: Optional[bytes] = None, suffix: str = ".ko", group: str = "regression", keep_name: bool = False) -> None:
        vid = "reg-" + case
        base = bases[base_key]
        name = base_key.split(".")[0] if keep_name else variant_name(vid)
        if data is None:
            e = Elf(strip_signature(base.data))
            e.rename(name)
            if edit is not None:
                edit(e)
            data = bytes(e.b)
        out.append(_write(folder, vid, name, base_key, group, Mutant(kind, detail, data, suffix)))

    def past_eof(section: str) -> Callable[[Elf], None]:
        def edit(e: Elf) -> None:
            i = e.find(section)
            assert i is not None, section
            e.set_sh(i, "sh_offset", len(e.b) - e.sh(i, "sh_size") // 2)
        return edit

    def section0(e: Elf) -> None:
        e.set_sh(0, "sh_type", 1)
        e.set_sh(0, "sh_size", 16)

    def alloc_name(e: Elf) -> None:
        i = e.sections(lambda j: bool(e.sh(j, "sh_flags") & SHF_ALLOC) and e.name(j) == ".text")[0]
        e.set_sh(i, "sh_name", e.sh(e.shstrndx, "sh_size") + 16)

    add("3-debug-str-past-eof", "kdemo_debug", "case3.section-past-eof", ".debug_str half past the end of the file",
        past_eof(".debug_str"))
    add("3-debug-frame-past-eof", "kdemo_debug", "case3.section-past-eof", ".debug_frame half past the end of the file",
        past_eof(".debug_frame"))
    add("3-comment-past-eof", "brd", "case3.section-past-eof", ".comment half past the end of the file", past_eof(".comment"))
    add("3-section0-not-null", "brd", "case3.section0", "section 0: sh_type PROGBITS, sh_size 16", section0)
    add("3-shstrtab-unterminated", "brd", "case3.shstrtab-unterminated", "last byte of .shstrtab = 'x'",
        lambda e: m_shstrtab_unterminated(e, random.Random(1)))
    add("3-alloc-name-out-of-range", "brd", "case3.alloc-name-range", ".text sh_name past .shstrtab", alloc_name)
    add("4-mcmodel-small", "kdemo_small", "case4.mcmodel-small", "built by kbuildguard with ccflags-y=-mcmodel=small")
    add("4-mcmodel-kernel", "kdemo", "case4.control", "the same module built normally")

    def versions(kind: str) -> Callable[[Elf], None]:
        def edit(e: Elf) -> None:
            i = e.find("__versions")
            assert i is not None
            if kind == "empty":
                e.set_sh(i, "sh_size", 0)
            else:
                _rename_section(e, i, "__versionz")
        return edit

    add("5-versions-empty-debian", "brd", "case5.versions-empty", "__versions with sh_size 0", versions("empty"))
    add("5-versions-none-debian", "brd", "case5.versions-none", "no __versions section", versions("none"))
    add("5-versions-empty-kdemo", "kdemo", "case5.versions-empty", "__versions with sh_size 0", versions("empty"))
    add("5-versions-none-kdemo", "kdemo", "case5.versions-none", "no __versions section", versions("none"))
    for fmt in ("bz2", "gz", "xz", "zst"):
        name = variant_name("reg-6-" + fmt)
        add("6-" + fmt, "kdemo", "case6." + fmt, "kdemo.ko." + fmt + " (renamed)",
            data=compressed(renamed(bases["kdemo"], name), fmt), suffix=".ko." + fmt)
    signed = bases["brd.signed"].data
    add("1-signed-control", "brd.signed", "case1.control", "Debian's signed brd.ko, unchanged", data=signed, keep_name=True)
    add("1-signed-xz", "brd.signed", "case1.signed-xz", "Debian's signed brd.ko as .ko.xz", data=compressed(signed, "xz"),
        suffix=".ko.xz", keep_name=True)
    e = Elf(signed)
    text = e.find(".text")
    assert text is not None
    b = bytearray(signed)
    b[e.sh(text, "sh_offset") + 0x10] ^= 0x01
    add("1-text-byte", "brd.signed", "case1.text-byte", "brd.ko .text+0x10 bit 0 flipped", data=bytes(b), keep_name=True)
    b = bytearray(signed)
    sig_len = struct.unpack(">I", signed[-len(SIG_MARKER) - 4:-len(SIG_MARKER)])[0]
    at = len(signed) - len(SIG_MARKER) - 12 - 0x20  # inside the RSA signature value, the PKCS#7's last field
    b[at] ^= 0x01
    add("1-pkcs7-byte", "brd.signed", "case1.pkcs7-byte", "brd.ko PKCS#7 byte %#x of %#x flipped (signature value)"
        % (sig_len - 0x20, sig_len), data=bytes(b), keep_name=True)
    if "brd.forged" in bases:
        add("1-forged-issuer", "brd.forged", "case1.forged-issuer",
            "brd.ko re-signed by a home-made key with the build key's issuer and serial", data=bases["brd.forged"].data,
            keep_name=True)
    return out


def forged_signature(data: bytes, release: str, cache: str) -> Optional[bytes]:
    """DATA (a signed module) re-signed by a key made here whose certificate copies the signer's
    issuer and serial: the kernel finds its own key by issuer+serial (pkcs7_trust.c/x509 lookup) and
    the RSA check fails (-EKEYREJECTED). The key is made once and kept (sign-file adds no signing
    time: the same key signs the same bytes the same way, and the kernel's answer stays cached)."""
    sign_file = "/usr/src/linux-headers-%s/scripts/sign-file" % release
    if not (shutil.which("openssl") and os.access(sign_file, os.X_OK)):
        return None
    n = len(data)
    sig_len = struct.unpack(">I", data[n - len(SIG_MARKER) - 4:n - len(SIG_MARKER)])[0]
    pkcs7 = data[n - len(SIG_MARKER) - 12 - sig_len:n - len(SIG_MARKER) - 12]
    folder = os.path.join(cache, "forged-" + _sha(pkcs7)[:16])
    key, cert = os.path.join(folder, "key.pem"), os.path.join(folder, "cert.der")
    if not os.path.exists(cert):
        os.makedirs(folder, exist_ok=True)
        printed = subprocess.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER"], input=pkcs7,
                                 stdout=subprocess.PIPE, check=True).stdout.decode()
        issuer = re.search(r"issuer: (.*)", printed).group(1).strip()  # type: ignore
        serial = re.search(r"serialNumber: (\S+)", printed).group(1)  # type: ignore
        subject = "/" + "/".join(part.strip() for part in issuer.split(","))
        _run(["openssl", "req", "-new", "-x509", "-newkey", "rsa:4096", "-nodes", "-days", "36500", "-subj", subject,
              "-set_serial", serial, "-keyout", key, "-outform", "DER", "-out", cert + ".tmp"],
             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.rename(cert + ".tmp", cert)
    work = os.path.join(folder, "module.ko")
    with open(work, "wb") as f:
        f.write(strip_signature(data))
    _run([sign_file, "sha256", key, cert, work])
    with open(work, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------------------------
# Inputs: Debian's modules and kdemo built by kbuildguard (cached by what they are made of)

def _run(argv: List[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, stdin=subprocess.DEVNULL, check=True, **kw)


def kbuildguard_argv() -> List[str]:
    """How to run kbuildguard: this Python's installed one (CI's wheel), from "/" so that no checkout
    is on sys.path -- or the checkout's, with KBG_DIFFTEST_SOURCE=1 (scripts/difftest)."""
    return [sys.executable, "-m", "kbuildguard"]


def kbuildguard_env() -> Dict[str, str]:
    env = dict(os.environ)
    if os.environ.get("KBG_DIFFTEST_SOURCE") == "1":
        env["PYTHONPATH"] = REPO
    return env


def build_kdemo(release: str, folder: str, ccflags: str = "") -> str:
    """examples/kdemo built by `kbuildguard make` (ccflags-y on make's command line), cached."""
    src = os.path.join(REPO, "examples", "kdemo", "kdemo.c")
    headers = "/usr/src/linux-headers-%s" % release
    with open(src, "rb") as f:
        key = _sha(f.read() + ccflags.encode() + release.encode() + str(os.stat(os.path.join(headers, "Module.symvers")).st_mtime).encode())[:16]
    dest = os.path.join(folder, "kdemo-%s.ko" % key)
    if os.path.exists(dest):
        return dest
    work = os.path.join(folder, "kdemo-build-" + key)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    shutil.copy(src, work)
    with open(os.path.join(work, "kbuildguard.toml"), "w") as f:
        f.write('[[module]]\nname = "kdemo"\n')
    argv = kbuildguard_argv() + ["make", "-q", "-C", work, "--kernel", release]
    if ccflags:
        argv += ["--", "ccflags-y=" + ccflags]
    _run(argv, cwd="/", env=kbuildguard_env(), stdout=subprocess.DEVNULL)
    shutil.copy(os.path.join(work, "kdemo.ko"), dest + ".tmp")
    os.rename(dest + ".tmp", dest)
    shutil.rmtree(work, ignore_errors=True)
    return dest


def load_bases(release: str, image: str, cache: str) -> Dict[str, Base]:
    kernel = os.path.join(image, "lib", "modules", release, "kernel")
    bases = {}
    for rel in DEBIAN_BASES:
        path = os.path.join(kernel, rel)
        with open(path, "rb") as f:
            data = f.read()
        key = os.path.basename(rel)[:-3].replace("-", "_")
        bases[key] = Base(key, strip_signature(data), False, path)
        if key in SIGNED_BASES:
            assert data.endswith(SIG_MARKER), path
            bases[key + ".signed"] = Base(key + ".signed", data, True, path)
    os.makedirs(cache, exist_ok=True)
    forged = forged_signature(bases["brd.signed"].data, release, cache)
    if forged is not None:
        bases["brd.forged"] = Base("brd.forged", forged, True, bases["brd.signed"].origin)
    for key, flags in (("kdemo", ""), ("kdemo_small", "-mcmodel=small")):
        path = build_kdemo(release, cache, flags)
        with open(path, "rb") as f:
            debug = f.read()
        stripped = os.path.join(cache, os.path.basename(path) + ".stripped")
        if not os.path.exists(stripped):  # as Debian installs its own (INSTALL_MOD_STRIP=1: --strip-debug)
            _run(["strip", "--strip-debug", "-o", stripped + ".tmp", path])
            os.rename(stripped + ".tmp", stripped)
        with open(stripped, "rb") as f:
            bases[key] = Base(key, f.read(), False, path)
        if key == "kdemo":
            bases["kdemo_debug"] = Base("kdemo_debug", debug, False, path)
    return bases


def corpus(release: str, image: str, seed: int, count: int, folder: str) -> List[Variant]:
    bases = load_bases(release, image, os.path.join(CACHE, "bases"))
    shutil.rmtree(folder, ignore_errors=True)
    random_bases = {k: b for k, b in bases.items() if k not in ("kdemo_debug", "kdemo_small", "brd.forged")}
    variants = regressions(bases, folder) + generate(random_bases, seed, count, folder)
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump([v._asdict() for v in variants], f, indent=1)
    return variants


# ---------------------------------------------------------------------------------------------
# Prediction: kbuildguard check --json, in chunks (a crash of kbuildguard on one file costs a chunk)

def predict(variants: List[Variant], folder: str, release: str, image: str, guest: str,
            chunk: int = 300) -> Dict[str, Tuple[str, str]]:
    """{vid: (effect or "unreadable" or "kbuildguard-crash", the failing checks' messages)}."""
    out = {}
    for start in range(0, len(variants), chunk):
        part = variants[start:start + chunk]
        out.update(_predict(part, folder, release, image, guest))
    return out


def debian_root(image: str, folder: str) -> str:
    """The guests' system as a --sysroot: the image's boot/ and lib/ with Debian 12's kmod in usr/bin
    -- the very kmod the guests load compressed variants with (host_kmod_files()) -- so that
    kbuildguard can read which formats that kmod decompresses, as it would on a real Debian 12 root.
    The image package alone holds no kmod (compression would be not-checked)."""
    root = os.path.join(folder, "debian-root")
    if not os.path.isdir(root):
        os.makedirs(os.path.join(root, "usr", "bin"))
        for part in ("boot", "lib"):
            os.symlink(os.path.join(image, part), os.path.join(root, part))
        shutil.copy2("/usr/bin/kmod", os.path.join(root, "usr", "bin", "kmod"))
    return root


def _predict(part: List[Variant], folder: str, release: str, image: str, guest: str) -> Dict[str, Tuple[str, str]]:
    argv = kbuildguard_argv() + ["check", "--json", "--kernel", release, "--sysroot", debian_root(image, folder),
                                 "--kernel-dir", "/usr/src/linux-headers-" + release] + list(CHECK_ARGS[guest])
    paths = {os.path.join(folder, v.file): v.vid for v in part}
    proc = subprocess.run(argv + sorted(paths), cwd="/", env=kbuildguard_env(), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        data = json.loads(proc.stdout.decode("utf-8", "replace"))
    except ValueError:
        if len(part) == 1:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            return {part[0].vid: ("kbuildguard-crash", "exit %d: %s" % (proc.returncode, err[-1] if err else ""))}
        half = len(part) // 2
        return dict(_predict(part[:half], folder, release, image, guest), **_predict(part[half:], folder, release, image, guest))
    out = {}
    for m in data["modules"]:
        vid = paths.get(m["path"])
        if vid is None:
            continue
        bad = [c for c in m["checks"] if c["effect"] != "ok" or not c["ok"]]
        why = "; ".join("%s %s: %s" % (c["name"], c["effect"], c["message"]) for c in bad)
        # the effect is what kbuildguard says the kernel will do; the verdict (a "mismatch" may be a
        # policy refusal of a module the kernel loads, e.g. another compiler) goes along in the text
        out[vid] = ("unreadable" if m["verdict"] == "error" else m["effect"], ("[%s] " % m["verdict"] + why)[:400])
    for vid in paths.values():
        out.setdefault(vid, ("missing", "not in check's output (exit %d)" % proc.returncode))
    return out


# ---------------------------------------------------------------------------------------------
# Truth: Debian's kernel in qemu, Debian's kmod in the guest

# Busybox sh builtins (read, echo, case) wherever possible: every process costs tens of milliseconds
# under TCG. A plain .ko is loaded by busybox insmod: finit_module(fd, "", 0), as kmod's insmod does
# (busybox tries init_module() after a refusal: the kernel's answer is the same, logged twice). A
# compressed one by Debian's kmod insmod, which decompresses xz/zstd itself (libkmod-file.c) and
# passes anything else on as it is. A module that stays loaded (no module_exit, or rmmod refused)
# blocks its "family" (copies of one driver register the same block major, fs type, algorithm,
# exported symbols): the rest of that family goes into the next boot.
GUEST_SCRIPT = r"""
export LD_LIBRARY_PATH=/kmod/lib
ln -s /kmod/kmod /kmod/insmod
dmesg -n 1
dmesg -c >/dev/null
known=" "
stuck=" "
# After an oops: the family is blocked; and if the oops left module_mutex held (reading
# /proc/modules does not finish within 8 s, e.g. an oops in resolve_symbol()), the boot ends.
oops() {
  dmesg -c >> /tmp/log
  if grep -q -e "BUG:" -e "Oops" -e "general protection fault" -e "kernel BUG" /tmp/log; then
    echo "KBG-OOPS $vid"
    stuck="$stuck$family "
    n=0
    while read -r l; do
      n=$((n+1)); [ $n -gt 25 ] && break
      echo "KBG-DMESG $vid $l"
    done < /tmp/log
    : > /tmp/log
    cat /proc/modules > /tmp/pm 2>/dev/null &
    p=$!
    i=0
    while [ -d /proc/$p ] && [ $i -lt 8 ]; do sleep 1; i=$((i+1)); done
    if [ -d /proc/$p ]; then
      echo "KBG-END $vid"
      echo KBG-REBOOT
      poweroff -f
      sleep 60
    fi
  fi
}
while read vid file name family; do
  echo "KBG-START $vid"
  case "$stuck" in *" $family "*) echo "KBG-BUSY $vid"; continue;; esac
  case "$known" in *" $name "*) echo "KBG-BUSY $vid"; continue;; esac
  read t0 < /proc/sys/kernel/tainted
  case "$file" in
    *.ko) insmod /modules/$file 2>/tmp/err; rc=$?;;
    *) /kmod/insmod /modules/$file 2>/tmp/err; rc=$?;;
  esac
  err=""; read -r err < /tmp/err
  echo "KBG-INSMOD $vid $rc $err"
  : > /tmp/log
  oops
  while read m rest; do
    case "$known" in *" $m "*) continue;; esac
    mt=""; read mt < /sys/module/$m/taint
    echo "KBG-LOADED $vid $m $mt"
    rmmod $m 2>/tmp/err; r=$?
    err=""; read -r err < /tmp/err
    echo "KBG-RMMOD $vid $m $r $err"
    [ $r -gt 1 ] && oops
    if [ $r != 0 ]; then known="$known$m "; stuck="$stuck$family "; fi
  done < /proc/modules
  read t1 < /proc/sys/kernel/tainted
  echo "KBG-TAINTED $vid $t0 $t1"
  oops
  n=0
  while read -r l; do
    n=$((n+1)); [ $n -gt 12 ] && break
    echo "KBG-DMESG $vid $l"
  done < /tmp/log
  echo "KBG-END $vid"
done < /modules/list
"""


def kmod_files() -> Dict[str, str]:
    """Debian 12's kmod and the libraries it links, from this (Debian 12) host: {guest path: host path}."""
    kmod = shutil.which("kmod") or "/usr/bin/kmod"
    files = {"kmod/kmod": kmod}
    ldd = subprocess.run(["ldd", kmod], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, check=True).stdout.decode()
    for line in ldd.splitlines():
        m = re.search(r"=> (/\S+)", line)
        if m:
            files["kmod/lib/" + os.path.basename(m.group(1))] = os.path.realpath(m.group(1))
        m = re.search(r"^\s*(/lib64/ld-linux\S+)", line)
        if m:
            files["lib64/" + os.path.basename(m.group(1))] = os.path.realpath(m.group(1))
    return files


def family(base: str) -> str:
    """Copies of one Debian driver conflict while one is loaded; kdemo's copies register nothing."""
    key = base.split(".")[0]
    return "-" if key.startswith("kdemo") else key


def guest_initramfs(path: str, folder: str, batch: List[Variant]) -> None:
    import integration.qemu as qemu  # its busybox

    archive = b""
    for d in ("bin", "dev", "proc", "sys", "modules", "tmp", "kmod", "kmod/lib", "lib64"):
        archive += newc(d, stat.S_IFDIR | 0o755)
    with open(qemu.BUSYBOX, "rb") as f:
        archive += newc("bin/busybox", stat.S_IFREG | 0o755, f.read())
    init = "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nmount -t proc proc /proc\nmount -t sysfs sys /sys\n"
    init += GUEST_SCRIPT + "\necho KBG-DONE\npoweroff -f\n"
    archive += newc("init", stat.S_IFREG | 0o755, init.encode())
    for guest, host in sorted(kmod_files().items()):
        with open(host, "rb") as f:
            archive += newc(guest, stat.S_IFREG | 0o755, f.read())
    listing = "".join("%s %s %s %s\n" % (v.vid, v.file, v.name, family(v.base)) for v in batch)
    archive += newc("modules/list", stat.S_IFREG | 0o644, listing.encode())
    for v in batch:
        with open(os.path.join(folder, v.file), "rb") as f:
            archive += newc("modules/" + v.file, stat.S_IFREG | 0o644, f.read())
    archive += newc("TRAILER!!!", 0)
    with open(path, "wb") as f:
        f.write(archive)


def boot_stream(kernel: str, initrd: str, cmdline: Tuple[str, ...], log: str, stall: float = 90.0,
                total: float = 3600.0) -> str:
    """Boot, stream the serial console into LOG, and kill qemu when the guest script has printed
    nothing for STALL seconds (a hung variant) or after TOTAL seconds. The serial output so far."""
    argv = ["qemu-system-x86_64", "-m", "1024", "-smp", "1", "-nographic", "-no-reboot", "-monitor", "none", "-net", "none",
            "-kernel", kernel, "-initrd", initrd, "-append",
            " ".join(["console=ttyS0", "panic=-1", "loglevel=1", "no_timer_check"] + list(cmdline))]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    chunks = []
    start = last = time.monotonic()
    started = False
    fd = proc.stdout.fileno()
    with open(log, "wb") as f:
        while True:
            ready, _, _ = select.select([fd], [], [], 5.0)
            now = time.monotonic()
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    break
                chunks.append(data)
                f.write(data)
                if b"KBG-" in data or not started:  # a soft lockup prints warnings for ever: not progress
                    last = now
            # the kernel prints nothing before the script starts (loglevel=1), and a loaded host
            # may take minutes to get there: the stall clock starts with the first variant
            started = any(b"KBG-START" in c for c in chunks[-4:]) or started
            if (started and now - last > stall) or now - last > 300 or now - start > total:
                proc.kill()
                chunks.append(b"\nKBG-HOST-KILLED after %d s (%d s silent)\n" % (now - start, now - last))
                break
    proc.wait()
    return b"".join(chunks).decode("utf-8", "replace").replace("\r", "")


class Seen(NamedTuple):
    effect: str  # ok, taints, cannot-unload, rejected-at-load, crash
    insmod: str  # exit status and message
    taint: str  # the module's own letters (/sys/module/M/taint), O removed
    tainted: str  # /proc/sys/kernel/tainted before -> after
    dmesg: List[str]


def parse_serial(out: str) -> Tuple[Dict[str, Seen], List[str], Optional[str], bool]:
    """({vid: Seen} for finished variants, [busy vids], the vid that started and never finished,
    whether an earlier variant of this boot oopsed)."""
    lines: Dict[str, Dict] = {}
    order = []
    busy = []
    for line in out.splitlines():
        m = re.search(r"KBG-(START|BUSY|INSMOD|LOADED|RMMOD|TAINTED|DMESG|OOPS|END) (\S+) ?(.*)$", line)
        if not m:
            continue
        tag, vid, rest = m.groups()
        entry = lines.setdefault(vid, {"loaded": [], "rmmod": [], "dmesg": []})
        if tag == "START":
            order.append(vid)
        elif tag == "BUSY":
            busy.append(vid)
            lines.pop(vid)
        elif tag == "INSMOD":
            entry["insmod"] = rest.strip()
        elif tag == "LOADED":
            entry["loaded"].append(rest.split())
        elif tag == "RMMOD":
            entry["rmmod"].append(rest.split(None, 2))
        elif tag == "TAINTED":
            entry["tainted"] = rest.strip()
        elif tag == "OOPS":
            entry["oops"] = True
        elif tag == "DMESG":
            entry["dmesg"].append(re.sub(r"^\[\s*[\d.]+\]\s*", "", rest).strip())
        else:
            entry["end"] = True
    done = {}
    for vid, e in lines.items():
        if not e.get("end"):
            continue
        rc = int(e.get("insmod", "1").split(" ", 1)[0] or 1)
        taint = "".join(sorted(set("".join(x[1] if len(x) > 1 else "" for x in e["loaded"]).replace("O", ""))))
        if e.get("oops"):  # the kernel oopsed loading, initialising or removing it
            effect = "crash"
        elif rc != 0:
            effect = "rejected-at-load"
        elif any(r[1] != "0" for r in e["rmmod"] if len(r) > 1):
            effect = "cannot-unload"
        elif taint:
            effect = "taints"
        else:
            effect = "ok"
        done[vid] = Seen(effect, e.get("insmod", ""), taint, e.get("tainted", ""), e["dmesg"])
    # a variant that started and never ended crashed the guest -- only if the guest did not finish
    # on its own (KBG-DONE, KBG-REBOOT): otherwise its lines were garbled and it is tried again
    finished = "KBG-DONE" in out or "KBG-REBOOT" in out
    unfinished = [] if finished else [v for v in order if v not in done and v not in busy]
    oopsed = any(d.effect == "crash" for d in done.values())
    return done, busy, unfinished[-1] if unfinished else None, oopsed


def say(text: str) -> None:
    print(text, flush=True)


def run_guest(variants: List[Variant], folder: str, vmlinuz: str, guest: str, work: str, batch_size: int = 200,
              log=say, shard: str = "") -> Dict[str, Seen]:
    """Every variant insmod-ed in GUEST, batch after batch; a crash ends a boot and the next boot goes
    on after the variant that crashed it. Answers are cached by the variant's bytes and the kernel."""
    with open(vmlinuz, "rb") as f:
        kernel_key = _sha(f.read())[:16]
    cache_file = os.path.join(CACHE, "truth-%s-%s-g%s.json" % (kernel_key, guest, GUEST_VERSION))
    cache = _load_cache(cache_file)

    def key(v: Variant) -> str:
        return v.sha256 + ":" + v.name

    def conflict(found: Seen) -> bool:
        """-EEXIST: something of an earlier copy of the driver is still registered (an init that
        failed half-way, an oops): not this variant's answer, unless it gets it in a clean boot too."""
        return "File exists" in found.insmod

    seen = {v.vid: Seen(*cache[key(v)]) for v in variants if key(v) in cache}
    # answers recorded before the conflict rule are asked again, first in a boot
    seen = {vid: found for vid, found in seen.items() if not conflict(found) or cache.get(key_of_vid(variants, vid) + ":clean")}
    todo = [v for v in variants if v.vid not in seen]
    todo.sort(key=lambda v: v.vid not in {x.vid for x in variants if key(x) in cache})  # re-asked ones first
    by_id = {v.vid: v for v in variants}
    boots = 0
    retried = set()
    failed_boots = 0
    while todo:
        batch = todo[:batch_size]
        boots += 1
        cpio = os.path.join(work, "initramfs-%s%s.cpio" % (guest, shard))
        guest_initramfs(cpio, folder, batch)
        serial_log = os.path.join(work, "serial-%s%s-%03d.log" % (guest, shard, boots))
        t0 = time.monotonic()
        out = boot_stream(vmlinuz, cpio, CMDLINE[guest], serial_log, total=120 + 3.0 * len(batch))
        done, busy, crashed, oopsed = parse_serial(out)
        retry = []
        first = batch[0].vid
        for vid in [vid for vid, found in done.items() if conflict(found)]:
            if vid == first or vid in retried:  # in a clean boot (it loaded first): the answer stands
                cache[key(by_id[vid]) + ":clean"] = [True]
            else:
                retried.add(vid)
                retry.append(vid)
                del done[vid]
        if crashed and oopsed and crashed not in retried:
            # it hung or panicked after another variant had oopsed in this boot: try it again first
            # in a clean boot before blaming it
            retried.add(crashed)
            retry, crashed = retry + [crashed], None
        log("  %s%s boot %d: %d variants in %.0f s%s%s" % (guest, shard, boots, len(done), time.monotonic() - t0,
                                                      ", crash at %s" % crashed if crashed else "",
                                                      ", %d to the next boot (name in use)" % len(busy) if busy else ""))
        if not done and not crashed and not retry:
            # a guest that never reached the script (TCG on a loaded host: "IO-APIC + timer
            # doesn't work!" before no_timer_check) is booted again, twice at most
            failed_boots += 1
            if failed_boots > 2:
                raise RuntimeError("the %s guest ran no variant: see %s" % (guest, serial_log))
            continue
        failed_boots = 0
        if crashed:
            tail = [x for x in out[out.find("KBG-START " + crashed):].splitlines() if x.strip()][1:40]
            done[crashed] = Seen("crash", "", "", "", [x[:300] for x in tail if "KBG-" not in x][:25])
        seen.update(done)
        for v in batch:
            if v.vid in done:
                cache[key(v)] = list(done[v.vid])
        by_vid = {v.vid: v for v in todo}
        todo = [by_vid[b] for b in retry + busy] + [v for v in todo if v.vid not in seen and v.vid not in busy + retry]
        _save_cache(cache_file, cache)
    return seen


CACHE_LOCK = threading.Lock()  # the shards of one guest share its cache file


def key_of_vid(variants: List[Variant], vid: str) -> str:
    v = next(x for x in variants if x.vid == vid)
    return v.sha256 + ":" + v.name


def _load_cache(path: str) -> Dict[str, List]:
    with CACHE_LOCK:
        if not os.path.exists(path):
            return {}
        with open(path) as f:
            return json.load(f)


def _save_cache(path: str, entries: Dict[str, List]) -> None:
    with CACHE_LOCK:
        merged = {}
        if os.path.exists(path):
            with open(path) as f:
                merged = json.load(f)
        merged.update(entries)
        os.makedirs(CACHE, exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(merged, f)
        os.rename(path + ".tmp", path)


# ---------------------------------------------------------------------------------------------
# Comparison

LOADS = ("ok", "taints", "cannot-unload")
REFUSES = ("rejected-at-load", "unreadable")

# Where an oops happened, read from the lines the guest recorded after it (the oops's "Comm:" task and
# the first lines of its call trace; kernel/module/main.c of Debian's 6.1 unless said):
# - load_module() ends with "return do_init_module(mod)" after every check, the relocations, the
#   alternatives and the COMING notifiers: an oops under do_init_module() (do_one_initcall() calls the
#   module's init) happened after the loader accepted the module, in the module's own code or what it
#   called.
# - "Comm: rmmod": insmod had returned 0 and the module sat in /proc/modules (the guest removes only
#   modules listed there): the loader accepted it; its exit or the removal of what init registered oopsed.
# - "Comm: cryptomgr_test": the self-test thread crypto_register_alg() starts for an algorithm
#   (crypto/algapi.c, crypto/algboss.c cryptomgr_schedule_test()); only the module's init registers
#   one, so init was running.
# Anything else -- an oops in apply_relocate_add(), module_finalize()'s alternatives, the static-call
# or sysfs setup, a hang or soft lockup without a trace, a trace cut off before its loader frames --
# stays "crash" and counts as a refusal: the guest records 25 lines of the log, and without a frame
# that proves init ran, the loader may have been the one that died.
AFTER_LOAD_FRAMES = ("do_init_module", "do_one_initcall")
AFTER_LOAD_TASKS = ("rmmod", "cryptomgr_test")
MODULE_CRASH = "module-crash"  # the loader accepted it; init, exit or what they registered oopsed


def crash_stage(seen: Seen) -> str:
    """For a crash: "init" (the loader had accepted the module and its init ran), "exit" (loaded,
    removing it oopsed) or "unknown" (the loader's own work, a hang, or a trace that does not say)."""
    if seen.effect != "crash":
        return ""
    task = ""
    for line in seen.dmesg:
        m = re.search(r"\bComm: (\S+)", line)
        if m:
            task = m.group(1)
            break
    if task == "rmmod":
        return "exit"
    if task == "cryptomgr_test" or any(re.search(r"\b(%s)\+0x" % "|".join(AFTER_LOAD_FRAMES), line) for line in seen.dmesg):
        return "init"
    return "unknown"


def observed(seen: Seen) -> str:
    """What the kernel did, as the verdict counts it: a crash after the loader accepted the module is
    MODULE_CRASH -- the module's own (relocated) code failed, which no static check of the file decides
    -- not a refusal."""
    return MODULE_CRASH if crash_stage(seen) in ("init", "exit") else seen.effect


class Outcome(NamedTuple):
    variant: Variant
    guest: str
    predicted: str
    why: str
    seen: Seen
    verdict: str  # agree, false-ok, false-alarm, wrong-effect, module-crash, not-checked, kbuildguard-crash


def judge(predicted: str, seen: Seen) -> str:
    did = observed(seen)
    if predicted in ("kbuildguard-crash", "missing"):
        return "kbuildguard-crash"
    if predicted == "not-checked":
        return "not-checked"
    if did == MODULE_CRASH:
        # neither a refusal nor a load that works, whatever was predicted: the loader accepted the
        # module (predicted refused: the rule was stricter than the loader) and its own code then
        # crashed (predicted to load: the file was what the loader wants, the code was not)
        return MODULE_CRASH
    if predicted in REFUSES:
        return "agree" if did in ("rejected-at-load", "crash") else "false-alarm"
    if did in ("rejected-at-load", "crash"):
        return "false-ok"
    return "agree" if predicted == did else "wrong-effect"


COLUMNS = ("agree", "false-ok", "false-alarm", "wrong-effect", MODULE_CRASH, "not-checked", "kbuildguard-crash")


def table(outcomes: List[Outcome], by: Callable[[Outcome], str]) -> str:
    rows: Dict[str, Dict[str, int]] = OrderedDict()
    for o in sorted(outcomes, key=by):
        row = rows.setdefault(by(o), dict.fromkeys(("variants",) + COLUMNS, 0))
        row["variants"] += 1
        row[o.verdict] += 1
    total = dict.fromkeys(("variants",) + COLUMNS, 0)
    for row in rows.values():
        for k in total:
            total[k] += row[k]
    rows["total"] = total
    head = "| kind | " + " | ".join(("variants",) + COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for name, row in rows.items():
        lines.append("| %s | " % name + " | ".join(str(row[k]) for k in ("variants",) + COLUMNS) + " |")
    return "\n".join(lines)


def describe(o: Outcome) -> str:
    v = o.variant
    kernel = o.seen.insmod or o.seen.effect
    lines = [x for x in o.seen.dmesg if x][:3]
    stage = crash_stage(o.seen)
    return "%s %s [%s] %s %s (base %s): kbuildguard %s; kernel %s%s: %s%s" % (
        o.guest, v.vid, v.group, v.kind, v.detail, v.base, o.predicted,
        o.seen.effect + (" (%s)" % {"init": "loaded, in init", "exit": "loaded, at removal"}.get(stage, "stage unknown")
                         if stage else ""),
        " taint " + o.seen.taint if o.seen.taint else "", kernel, (" | " + " | ".join(lines)) if lines else "")


def summary(outcomes: List[Outcome]) -> Dict[str, int]:
    counts = dict.fromkeys(COLUMNS, 0)
    for o in outcomes:
        counts[o.verdict] += 1
    counts["variants"] = len({o.variant.vid for o in outcomes})
    counts["loads"] = len(outcomes)
    return counts


def run(release: str, image: str, seed: int, count: int, work: str, guests=GUESTS, log=say, jobs: int = 1) -> List[Outcome]:
    """The whole differential run: corpus, predictions, guests, comparison."""
    vmlinuz = os.path.join(image, "boot", "vmlinuz-" + release)
    folder = os.path.join(work, "corpus")
    t0 = time.monotonic()
    variants = corpus(release, image, seed, count, folder)
    log("corpus: %d variants (seed %d) in %s (%.0f s)" % (len(variants), seed, folder, time.monotonic() - t0))
    predicted = {}
    for guest in guests:
        t0 = time.monotonic()
        predicted[guest] = predict(variants, folder, release, image, guest)
        log("kbuildguard check (%s): %.0f s" % (guest, time.monotonic() - t0))

    def truth(job: Tuple[str, int]) -> Tuple[str, Dict[str, Seen]]:
        guest, k = job
        t0 = time.monotonic()
        part = [v for n, v in enumerate(variants) if n % jobs == k]
        found = run_guest(part, folder, vmlinuz, guest, work, log=log, shard=".%d" % k if jobs > 1 else "")
        log("kernel (%s%s): %.0f s" % (guest, " shard %d" % k if jobs > 1 else "", time.monotonic() - t0))
        return guest, found
    # the guests boot side by side, JOBS qemu per guest, each with every JOBS-th variant (TCG runs a
    # guest on one host thread)
    seen: Dict[str, Dict[str, Seen]] = {g: {} for g in guests}
    with ThreadPoolExecutor(max_workers=len(guests) * jobs) as pool:
        for guest, found in pool.map(truth, [(g, k) for g in guests for k in range(jobs)]):
            seen[guest].update(found)
    outcomes = [o for o in compare_guests(variants, predicted, seen, guests)]
    with open(os.path.join(work, "outcomes.json"), "w") as f:
        json.dump([dict(o.variant._asdict(), guest=o.guest, predicted=o.predicted, why=o.why, seen=dict(o.seen._asdict(), stage=crash_stage(o.seen)),
                        verdict=o.verdict) for o in outcomes], f, indent=1)
    return outcomes


def compare_guests(variants, predicted, seen, guests) -> List[Outcome]:
    out = []
    for guest in guests:
        for v in variants:
            p, why = predicted[guest][v.vid]
            s = seen[guest][v.vid]
            out.append(Outcome(variant=v,
                               guest=guest,
                               predicted=p,
                               why=why,
                               seen=s,
                               verdict=judge(p, s)))
    return out


def main(argv: Optional[List[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="scripts/difftest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--count", type=int, default=2000, help="random variants (the regression cases come on top)")
    parser.add_argument("--release", help="the Debian kernel release (default: the newest /usr/src/linux-headers-*-amd64)")
    parser.add_argument("--image", help="the unpacked linux-image-R-unsigned (default: /var/cache/kbuildguard-ci/image-R)")
    parser.add_argument("--work", default="/var/tmp/kbuildguard-difftest", help="corpus, serial logs, outcomes.json")
    parser.add_argument("--guest", choices=GUESTS, action="append", help="only this guest (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="qemu processes per guest (default 1)")
    args = parser.parse_args(argv)
    release = args.release or sorted(d[len("linux-headers-"):] for d in os.listdir("/usr/src")
                                     if re.match(r"linux-headers-.*-amd64$", d) and "cloud" not in d and "-rt-" not in d)[-1]
    image = args.image or "/var/cache/kbuildguard-ci/image-" + release
    os.makedirs(args.work, exist_ok=True)
    outcomes = run(release, image, args.seed, args.count, args.work, guests=tuple(args.guest or GUESTS), jobs=args.jobs)
    print()
    print("kernel %s, seed %d, %d random variants + the regression cases" % (release, args.seed, args.count))
    print()
    print("By mutation group (both guests):")
    print(table(outcomes, lambda o: "%s/%s" % (o.guest, o.variant.group)))
    print()
    print("By mutation kind:")
    print(table(outcomes, lambda o: "%s/%s" % (o.variant.group, o.variant.kind)))
    print()
    for verdict in ("false-ok", "kbuildguard-crash", "false-alarm", "wrong-effect", MODULE_CRASH, "not-checked"):
        found = [o for o in outcomes if o.verdict == verdict]
        print("%s: %d" % (verdict, len(found)))
        for o in found:
            print("  " + describe(o))
    print()
    print("summary: %s" % json.dumps(summary(outcomes)))
    print("outcomes: %s" % os.path.join(args.work, "outcomes.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
