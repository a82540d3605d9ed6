"""A minimal ELF reader: section headers, section data, relocations, symbol names.

Why our own and not pyelftools (which the first version used): ``kbuildguard check`` over the 4023
in-tree modules of Debian's 6.1 kernel took 8.3 s with pyelftools, 5 ms a module, most of it in
construct parsing every section header, against 0.46 s for ``depmod -b`` on the same tree. A .ko
needs only the section table and four small sections; struct.unpack_from over an mmap does that
in tens of microseconds. pyelftools stays as the test oracle: tests/integration compares both
readers on every in-tree module.

Every offset and size read from the file is checked against the file's length before use: a
truncated or hostile file raises BadInput, never IndexError or a huge allocation.
"""

import array
import itertools
import operator
import struct
import sys
from typing import AbstractSet, Dict, List, NamedTuple, Optional, Tuple

from kbuildguard import arch
from kbuildguard.errors import BadInput
from kbuildguard.strenum import StrEnum

SHT_NULL = 0
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_RELA = 4
SHT_NOBITS = 8
SHT_REL = 9
ET_REL = 1
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHF_RELA_LIVEPATCH = 0x00100000
SHN_UNDEF = 0
SHN_LORESERVE = 0xFF00
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2
SHN_LIVEPATCH = 0xFF20  # include/uapi/linux/elf.h: resolved by livepatch, never by simplify_symbols()
STT_SECTION = 3
STB_WEAK = 2
R_X86_64_32 = 10  # arch/x86/include/asm/elf.h



class Section(NamedTuple):
    number: int  # not `index`: that would hide tuple.index
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int


class Relocation(NamedTuple):
    offset: int
    symbol: int
    type: int


class Needed(NamedTuple):
    """What a module's symbol table leaves to others, by name (columns, not a record per symbol:
    `check` meets 400,000 of them in a kernel's modules)."""

    strong: Tuple[str, ...]  # undefined: the loader must resolve each
    weak: Tuple[str, ...]  # undefined and weak: unresolved is fine
    common: Tuple[str, ...]  # SHN_COMMON: the loader refuses them ("please compile with -fno-common")


class SymbolKind(StrEnum):
    """Where a relocation's symbol lies, which decides the value the loader computes for it
    (kernel/module/main.c simplify_symbols())."""

    DEFINED = "defined"  # in one of the module's own sections: st_value + that section's address
    PERCPU = "percpu"  # in its .data..percpu: an offset into the per-cpu area
    ABSOLUTE = "absolute"  # SHN_ABS: st_value itself
    UNDEFINED = "undefined"  # resolved to an exporter's address
    WEAK_UNDEFINED = "weak-undefined"  # resolved, or 0 when nobody exports it


class TypedRelocation(NamedTuple):
    """One relocation of a type a gate asked about, with what decides its value."""

    section: str  # the section it patches
    offset: int
    symbol: str
    kind: SymbolKind
    value: int  # st_value (the final value for ABSOLUTE)
    addend: int


class RelocationFacts(NamedTuple):
    """The relocations kernel/module/main.c apply_relocations() applies: those whose target section
    is allocated (the loader skips the rest) and is not one whose SHF_ALLOC it cleared first
    (.modinfo and __versions in rewrite_section_headers(), .data..percpu in layout_and_allocate())."""

    rel_sections: Tuple[str, ...]  # SHT_REL sections applied (x86_64 and arm64 take RELA only)
    types: Tuple[int, ...]  # the distinct RELA types applied, sorted
    picked: Tuple[TypedRelocation, ...]  # each applied relocation of the types asked for
    problem: str = ""  # why the loader refuses them (-ENOEXEC)
    doubt: str = ""  # why kbuildguard cannot tell what applying them does (the effect is not-checked, never ok)


# What x86_64's __write_relocate_add() writes per type (R_X86_64_64, PC32, PLT32, 32, 32S, PC64).
_X86_64_WIDTH = {1: 8, 2: 4, 4: 4, 10: 4, 11: 4, 24: 8}
_X86_64_WIDE = frozenset({1, 24})
# |addend| of a PC-relative relocation above which its value cannot be what a compiler meant: real ones
# are a few bytes (-4, or an offset into the same section); none of Debian 6.1's 4023 modules has one
# above 2**24
_ADDEND_LIMIT = 1 << 24
# Sections whose entries the x86_64 kernel reads as self-relative s32 offsets (the address is the
# entry's own address plus its value), so only PC-relative relocations can fill them (6.1:
# arch/x86/kernel/alternative.c apply_retpolines()/apply_returns() `(void *)s + *s`, apply_alternatives()
# instr_offset; arch/x86/kernel/unwind_orc.c orc_ip(); include/linux/static_call_types.h
# static_call_addr(); arch/x86/include/asm/extable.h and lib/extable.c ex_to_insn(); include/linux/
# jump_label.h jump_entry_code() (its `long key` is R_X86_64_PC64); lib/bug.c bug_addr() with
# CONFIG_GENERIC_BUG_RELATIVE_POINTERS). An absolute type there makes the kernel patch or unwind at a
# wild address (the tester's oopses in apply_retpolines()).
_SELF_RELATIVE = frozenset({b".retpoline_sites", b".return_sites", b".call_sites", b".orc_unwind_ip",
                            b".static_call_sites", b".altinstructions", b"__ex_table", b"__jump_table",
                            b"__bug_table", b".ibt_endbr_seal"})
_X86_64_PC_TYPES = frozenset({2, 4, 24})  # PC32, PLT32, PC64
_MINUS_FOUR = (1 << 64) - 4  # r_addend -4 read as an unsigned word
# the first byte of what __static_call_validate() accepts: call, jmp, ret, Jcc (0x0f 0x8x), the 5-byte
# nop (0x0f 0x1f ...) and xor5rax (0x2e ...)
_STATIC_CALL_OPCODES = frozenset({0xE8, 0xE9, 0xC3, 0x0F, 0x2E})


class Elf:
    """A parsed ELF image over ``data`` (bytes or an mmap); ``path`` only names it in errors."""

    def __init__(self, data, path: str):
        self.data = data
        self.path = path
        shoff, shentsize, shnum, shstrndx = self._read_header()
        if shnum == 0 or shstrndx == 0xFFFF:  # extended numbering: the real values live in section 0
            first = self._raw_header(shoff, 0, shentsize)
            shnum = shnum or first[5]
            shstrndx = first[6] if shstrndx == 0xFFFF else shstrndx
        if shoff + shnum * shentsize > len(data):
            raise BadInput("%s: truncated: the section table lies beyond the end of the file" % path)
        # one iter_unpack over the whole table: `check` reads ~180,000 section headers per kernel
        raw = list(struct.iter_unpack(self._shdr, data[shoff:shoff + shnum * shentsize]))
        if shstrndx >= shnum:
            raise BadInput("%s: corrupt ELF: section name table index %d of %d" % (path, shstrndx, shnum))
        names_hdr = raw[shstrndx]
        self._names = self._slice(names_hdr[4], names_hdr[5], "the section name table")
        self._raw = raw
        self._entries: Dict[int, "array.array[int]"] = {}  # RELA words during relocation_facts()
        self._index_names()

    def _read_header(self) -> Tuple[int, int, int, int]:
        """The ELF header's identity and the section table's place: (shoff, shentsize, shnum, shstrndx)."""
        data, path = self.data, self.path
        if len(data) < 16 or data[:4] != b"\x7fELF":
            raise BadInput("%s: not an ELF file" % path)
        elf_class, endian = ident(data)
        if elf_class not in (1, 2):
            raise BadInput("%s: unknown ELF class %d" % (path, elf_class))
        if endian not in (1, 2):
            raise BadInput("%s: unknown ELF byte order %d" % (path, endian))
        self.bits = 64 if elf_class == 2 else 32
        self.big_endian = endian == 2
        e = ">" if self.big_endian else "<"
        header = e + ("HHIQQQIHHHHHH" if self.bits == 64 else "HHIIIIIHHHHHH")
        if len(data) < 16 + struct.calcsize(header):
            raise BadInput("%s: truncated: shorter than an ELF header" % path)
        (self.type, machine, _, _, _, shoff, _, _, _, _, shentsize, shnum, shstrndx) = struct.unpack_from(header, data, 16)
        self.arch = arch.from_elf(machine, self.big_endian)
        self.machine = str(self.arch) if self.arch else "EM_%d" % machine
        self._e = e
        self._shdr = e + ("IIQQQQIIQQ" if self.bits == 64 else "IIIIIIIIII")
        if shoff == 0:
            raise BadInput("%s: no section table" % path)
        if shentsize != struct.calcsize(self._shdr):
            raise BadInput("%s: corrupt ELF: section header size %d" % (path, shentsize))
        return shoff, shentsize, shnum, shstrndx

    def _index_names(self) -> None:
        """name -> index, on undecoded bytes; Section records are made only for what is looked up."""
        self._index: Dict[bytes, int] = {}
        self._alloc_index: Dict[bytes, int] = {}  # what the kernel's find_sec() finds: allocated sections only
        self._keys: List[bytes] = []  # every section's name, undecoded
        names = self._names
        for i, entry in enumerate(self._raw):
            name_off = entry[0]
            end = names.find(b"\x00", name_off)
            key = names[name_off:end] if end >= 0 else names[name_off:]
            self._keys.append(key)
            self._index.setdefault(key, i)
            if i and entry[2] & SHF_ALLOC:
                self._alloc_index.setdefault(key, i)

    def section_at(self, index: int) -> Section:
        if index >= len(self._raw):
            raise BadInput("%s: corrupt ELF: section index %d of %d" % (self.path, index, len(self._raw)))
        name_off, typ, flags, _addr, offset, size, link, info, _align, entsize = self._raw[index]
        return Section(number=index, name=_cstring(self._names, name_off), type=typ, flags=flags, offset=offset, size=size, link=link, info=info,
                       entsize=entsize)

    def _raw_header(self, shoff: int, index: int, shentsize: int) -> Tuple[int, ...]:
        start = shoff + index * shentsize
        if start + shentsize > len(self.data):
            raise BadInput("%s: truncated: section header %d lies beyond the end of the file" % (self.path, index))
        # the same field order in both classes: name, type, flags, addr, offset, size, link, info, addralign, entsize
        return struct.unpack_from(self._shdr, self.data, start)

    def _slice(self, offset: int, size: int, what: str) -> bytes:
        if offset + size > len(self.data):
            raise BadInput("%s: %s lies beyond the end of the file (truncated or corrupt)" % (self.path, what))
        return bytes(self.data[offset:offset + size])

    def section(self, name: str) -> Optional[Section]:
        index = self._index.get(name.encode())
        return None if index is None else self.section_at(index)

    def section_data(self, sec: Section) -> bytes:
        if sec.type == SHT_NOBITS:
            return b""
        return self._slice(sec.offset, sec.size, "section " + sec.name)

    def section_prefix(self, sec: Section, size: int) -> bytes:
        """The first ``size`` bytes of a section (a header), without copying the rest."""
        if sec.type == SHT_NOBITS:
            return b""
        return self._slice(sec.offset, min(size, sec.size), "section " + sec.name)

    def relocations(self, sec: Section) -> List[Relocation]:
        if sec.type == SHT_RELA:
            fmt = self._e + ("QQq" if self.bits == 64 else "IIi")
        elif sec.type == SHT_REL:
            fmt = self._e + ("QQ" if self.bits == 64 else "II")
        else:
            raise BadInput("%s: %s is not a relocation section" % (self.path, sec.name))
        step = struct.calcsize(fmt)
        data = self.section_data(sec)
        out = []
        for start in range(0, len(data) - step + 1, step):
            values = struct.unpack_from(fmt, data, start)
            info = values[1]
            if self.bits == 64:
                out.append(Relocation(values[0], info >> 32, info & 0xFFFFFFFF))
            else:
                out.append(Relocation(values[0], info >> 8, info & 0xFF))
        return out

    def undefined_symbols(self) -> "Needed":
        """Every symbol the module needs from elsewhere, and its common symbols: what the loader's
        simplify_symbols() resolves (and refuses: SHN_COMMON).

        A module's symbol table holds thousands of entries and tens of undefined ones; `check` reads
        4000 modules. So the st_shndx column is taken as two strided byte strings (C speed) and only
        entries whose index is SHN_UNDEF (0) or SHN_COMMON (0xfff2) are unpacked."""
        sec = self.section(".symtab")
        if sec is None or sec.type != SHT_SYMTAB:
            return Needed((), (), ())
        data = self.section_data(sec)
        if sec.link >= len(self._raw):
            raise BadInput("%s: corrupt ELF: string table index %d" % (self.path, sec.link))
        # names as the loader reads them: from the string table's file offset on, whatever its size
        strtab = self.section_at(sec.link)
        strings = bytes(self.data[strtab.offset:max(strtab.offset + strtab.size, len(self.data))]).decode("latin-1") \
            if strtab.type != SHT_NOBITS else ""
        step, shndx_at, info_at = (24, 6, 4) if self.bits == 64 else (16, 14, 12)
        usable = len(data) - len(data) % step
        first, second = data[shndx_at:usable:step], data[shndx_at + 1:usable:step]
        low, high = (second, first) if self.big_endian else (first, second)
        strong: List[str] = []
        weak: List[str] = []
        common: List[str] = []
        for wanted_low, wanted_high, is_common in ((0, 0, False), (0xF2, 0xFF, True)):
            marker = bytes((wanted_low,))
            at = low.find(marker, 1)  # symbol 0 is the null symbol
            while at >= 0:
                if high[at] == wanted_high:
                    start = at * step
                    name_off = struct.unpack_from(self._e + "I", data, start)[0]
                    end = strings.find("\x00", name_off)
                    name = strings[name_off:end if end >= 0 else len(strings)]
                    if is_common:
                        # simplify_symbols() (6.1: kernel/module/main.c 1301-1314) spares only names
                        # starting "__gnu_lto"; a nameless one is refused too (seed 23's v00581)
                        common.append(name or "(symbol %d, no name)" % at)
                    elif name:
                        if data[start + info_at] >> 4 == 2:  # STB_WEAK
                            weak.append(name)
                        else:
                            strong.append(name)
                at = low.find(marker, at + 1)
        return Needed(tuple(strong), tuple(weak), tuple(common))

    def relocation_facts(self, pick: AbstractSet[int] = frozenset()) -> RelocationFacts:
        """What apply_relocations() would apply; ``pick``: the types whose every relocation is
        returned with its symbol (R_X86_64_32 on x86_64), the others are only counted by type.

        `check` meets millions of relocations in a kernel's modules (129 MiB in Debian's 6.1), of five
        types: the applied sections are joined once and their types taken as strided byte columns,
        at C speed, never an int per relocation."""
        rel, applied, missing = self._applied_sections()
        raw = self._raw
        step = 24 if self.bits == 64 else 12
        data = self.data
        joined = b"".join(data[raw[i][4]:raw[i][4] + raw[i][5] - raw[i][5] % step] for i in applied)
        types = self._types(joined, step)
        picked: List[TypedRelocation] = []
        if pick & set(types):
            for i in applied:
                picked.extend(self._picked(self.section_at(i), pick))
        self._entries = {}
        found = [self._relocation_problem(i) for i in applied]
        problem = next((text for refused, text in found if text and refused), "")
        # what the loader does not check (a skipped section, a write or a symbol read out of bounds)
        # makes it load, oops or meet a refusal further on, depending on bytes kbuildguard does not
        # model: not-checked, never ok (issue 18: 33 such variants of seed 18 loaded in Debian's 6.1)
        unchecked = missing or next((text for refused, text in found if text and not refused), "")
        doubt = "" if problem else (unchecked or self._relocation_doubt(applied))
        self._entries = {}
        return RelocationFacts(tuple(rel), types, tuple(picked), problem, doubt)

    def _applied_sections(self) -> Tuple[List[str], List[int], str]:
        """kernel/module/main.c apply_relocations(): the SHT_REL sections and the RELA sections it
        applies (target in range, allocated, not cleared, not livepatch), and a relocation section whose
        target does not exist (skipped: what it should have patched runs unrelocated)."""
        raw = self._raw
        count = len(raw)
        cleared = {self.find_alloc(n) for n in (".modinfo", "__versions", ".data..percpu")}
        rel: List[str] = []
        applied: List[int] = []
        missing = ""
        for i in range(1, count):
            typ, flags, offset, size, target = raw[i][1], raw[i][2], raw[i][4], raw[i][5], raw[i][7]
            if flags & SHF_RELA_LIVEPATCH and target < count and raw[target][2] & SHF_ALLOC and not missing:
                # apply_relocations() (6.1: kernel/module/main.c 1383-1388) hands any section with this
                # flag to klp_apply_section_relocs(), whatever its type: with CONFIG_LIVEPATCH a name other
                # than ".klp.rela.OBJ.SECTION" is "section %s has an incorrectly formatted name"
                # (-EINVAL; seed 23's v00606), a well-formed one is resolved against OBJ and applied
                missing = "%s carries SHF_RELA_LIVEPATCH: the loader hands it to livepatch, which refuses it (a name " \
                          "not .klp.rela.OBJ.SECTION, with CONFIG_LIVEPATCH) or applies it to another object" % (
                              self.section_at(i).name)
            if typ in (SHT_REL, SHT_RELA) and target >= count and not missing:
                # apply_relocations() skips it ("infosec >= e_shnum"): code it should have patched runs
                # unrelocated (the tester's oops in apply_returns())
                missing = "%s relocates section %d, which does not exist: the loader skips it" % (
                    self.section_at(i).name, target)
            if typ not in (SHT_REL, SHT_RELA) or target >= count or target in cleared:
                continue
            if not raw[target][2] & SHF_ALLOC or flags & SHF_RELA_LIVEPATCH:
                continue
            if offset + size > len(self.data):
                raise BadInput("%s: section %s lies beyond the end of the file (truncated or corrupt)" % (
                    self.path, self.section_at(i).name))
            if typ == SHT_REL:
                rel.append(self.section_at(i).name)
            else:
                applied.append(i)
        return rel, applied, missing

    def _rela_entries(self, i: int) -> "array.array[int]":
        """RELA section ``i``'s 64-bit words (offset, info, addend per entry), read once for the two
        passes over it (_relocation_problem(), _relocation_doubt())."""
        entries = self._entries.get(i)
        if entries is None:
            start, size = self._raw[i][4], self._raw[i][5]
            entries = array.array("Q", bytes(self.data[start:start + size - size % 24]))
            if sys.byteorder != "little":  # pragma: no cover - the hosts we run on are little-endian
                entries.byteswap()
            self._entries[i] = entries
        return entries

    def _relocation_problem(self, i: int) -> Tuple[bool, str]:
        """What applying RELA section ``i`` does wrong, from the file alone (64-bit little-endian
        only: x86_64 and arm64), or "": (whether the loader refuses it, why). Only the non-zero target
        is a refusal; the rest the loader does not check, and then loads, oopses or runs broken code.

        kernel/module/main.c apply_relocations() hands each section to apply_relocate_add(), which
        trusts the file: it loops sh_size / sizeof(Elf_Rela) times (a size that is not a whole number of
        entries drops the last relocation: the code then runs unrelocated), writes at sh_addr + r_offset
        with no bound (an offset past the target section writes outside the module: an oops, or memory
        of someone else), and reads symbol ELF_R_SYM(r_info) with no bound. x86_64's
        __write_relocate_add() (6.1: arch/x86/kernel/module.c 145-153) also refuses a relocation whose
        target bytes are not zero, as the assembler leaves them ("x86/modules: Skipping invalid
        relocation target, existing value is nonzero for type %d", -ENOEXEC)."""
        if self.bits != 64 or self.big_endian:
            return False, ""
        raw = self._raw
        size, target = raw[i][5], raw[i][7]
        name = self.section_at(i).name
        if size % 24:
            return False, "%s is %d bytes, not a whole number of 24-byte entries: the loader drops its last relocation" % (
                name, size)
        if not size:
            return False, ""
        entries = self._rela_entries(i)
        offsets, infos = entries[0::3], entries[1::3]
        target_size = raw[target][5]
        widest = max(offsets)
        if widest >= target_size:
            return False, "%s patches offset 0x%x of %s, which is 0x%x bytes: the loader writes outside the section" % (
                name, widest, self.section_at(target).name, target_size)
        # the loader reads its one symbol table (info->index.sym), whatever sh_link says
        symtab = next((k for k in range(1, len(raw)) if raw[k][1] == SHT_SYMTAB), 0)
        symbols = raw[symtab][5] // 24 if symtab else 0
        highest = max(infos) >> 32
        if highest >= symbols:
            return False, "%s names symbol %d of %d: the loader reads past the symbol table" % (name, highest, symbols)
        if self.machine != "x86_64":
            return False, ""
        unchecked = self._x86_64_symbol_problem(name, entries) or self._x86_64_addend_problem(name, entries)
        if unchecked:
            return False, unchecked
        return self._x86_64_nonzero_target(name, entries, target)

    def _x86_64_symbol_problem(self, name: str, entries: "array.array[int]") -> str:
        """A relocation against a symbol that has no address in the module, or the null symbol."""
        words = array.array("I", entries.tobytes())
        types, syms = words[2::6], words[3::6]
        outside = self._symbol_outside(set(syms))
        if outside:
            return "%s relocates against %s" % (name, outside)
        if syms.count(0) and any(s == 0 and ty != 0 for s, ty in zip(syms, types)):
            # the null symbol: the loader adds address 0 (simplify_symbols() leaves it), and the code
            # then jumps or points there; no compiler relocates against it (none of Debian 6.1's 4023 modules)
            return "%s relocates against the null symbol (index 0): the module would use address 0" % name
        return ""

    def _x86_64_addend_problem(self, name: str, entries: "array.array[int]") -> str:
        """A PC32/PLT32 addend beyond what any compiler writes (|addend| >= 2^24)."""
        addends = array.array("q", entries.tobytes())[2::3]
        if max(addends) < _ADDEND_LIMIT and min(addends) > -_ADDEND_LIMIT:
            return ""
        types = array.array("I", entries.tobytes())[2::6]
        for ty, addend, offset in zip(types, addends, entries[0::3]):
            if ty in (2, 4) and not -_ADDEND_LIMIT < addend < _ADDEND_LIMIT:
                # __write_relocate_add() does not check R_X86_64_PC32/PLT32 for overflow (6.1: the check
                # is #if 0): a value that does not fit 32 bits is written truncated
                return ("%s: R_X86_64_%s at 0x%x with addend %d: no compiler writes such an addend, the value "
                        "does not fit 32 bits and the loader writes it truncated (no overflow check for "
                        "PC32/PLT32): the module crashes" % (name, "PC32" if ty == 2 else "PLT32", offset, addend))
        return ""

    def _x86_64_nonzero_target(self, name: str, entries: "array.array[int]", target: int) -> Tuple[bool, str]:
        """__write_relocate_add() (6.1: arch/x86/kernel/module.c 164-199) refuses a target whose bytes
        are not zero, as the assembler leaves them: (True, why) for a target inside its section whose
        file bytes are not zero. A target that runs past its section's end meets whatever the kernel
        placed next (zero padding or the next section's bytes: seed 18's v00718 loaded): (False, why),
        not-checked."""
        raw = self._raw
        if raw[target][1] == SHT_NOBITS:
            return False, ""
        start, target_size = raw[target][4], raw[target][5]
        data = self.data
        if self._x86_64_targets_zero(entries, start, target_size):
            return False, ""
        overhang = ""
        for offset, info in zip(entries[0::3], entries[1::3]):  # only to name the first culprit
            width = _X86_64_WIDTH.get(info & 0xFFFFFFFF, 0)
            if width and offset + width > target_size:
                overhang = overhang or ("%s: relocation type %d at %s+0x%x runs past the section's end (0x%x bytes)"
                                        % (name, info & 0xFFFFFFFF, self.section_at(target).name, offset, target_size))
            elif width and data[start + offset:start + offset + width].strip(b"\x00"):
                return True, ("%s: relocation type %d at %s+0x%x lands on bytes that are not zero: "
                              "\"x86/modules: Skipping invalid relocation target, existing value is nonzero for type %d\""
                              % (name, info & 0xFFFFFFFF, self.section_at(target).name, offset, info & 0xFFFFFFFF))
        return False, overhang

    def _relocation_doubt(self, applied: List[int]) -> str:
        """Why kbuildguard cannot tell what applying these RELA sections does, or "": a file that the
        loader takes but whose relocations no linker writes (64-bit little-endian only). The kernel
        refuses some of these and crashes on others, depending on bytes kbuildguard does not model, so
        the effect is not-checked: never ok. None of these fires on Debian 6.1's own modules."""
        if self.bits != 64 or self.big_endian:
            return ""
        doubt = self._misnamed_relocations()
        if doubt or self.machine != "x86_64":
            return doubt
        writes: Dict[int, List["array.array[int]"]] = {}
        used: List[int] = []
        calls: Tuple[List[int], List[int]] = ([], [])
        for i in applied:
            doubt = self._x86_64_section_doubt(i, writes, used, calls)
            if doubt:
                return doubt
        return (self._unrelocated_self_relative(applied) or self._overlapping_writes(writes)
                or self._symbol_doubt(set(used), set(calls[0]), set(calls[1])))

    def _unrelocated_self_relative(self, applied: List[int]) -> str:
        """A non-empty section the kernel reads as self-relative offsets (_SELF_RELATIVE) that no
        relocation fills: its entries stay whatever the file holds (another section renamed to one)."""
        raw, keys = self._raw, self._keys
        relocated = {raw[i][7] for i in applied}
        for number in range(1, len(raw)):
            if keys[number] in _SELF_RELATIVE and raw[number][2] & SHF_ALLOC and raw[number][5] and number not in relocated:
                return "%s (section %d) is read as offsets to patch, and no relocation fills it" % (
                    _text(keys[number]), number)
        return ""

    def _static_call_doubt(self, name: str, entries: "array.array[int]") -> str:
        """struct static_call_site {s32 addr; s32 key;}: at load, static_call_add_module() patches
        the instruction at each `addr` and first checks its opcode (6.1: arch/x86/kernel/static_call.c
        __static_call_validate(): a call, jmp, ret, Jcc, or one of two 5-byte nops), else "unexpected
        static_call insn opcode" and BUG(). The file holds those opcodes (the relocations patch the
        four bytes after them); an addend that points elsewhere meets another byte."""
        table = self._symtab_data()
        if table is None:
            return ""
        raw = self._raw
        for k in range(0, len(entries) - 2, 3):
            offset, info, addend = entries[k], entries[k + 1], entries[k + 2]
            if offset % 8:
                continue  # the key field
            begin = (info >> 32) * 24
            if begin + 24 > len(table):
                continue
            shndx, value = struct.unpack_from(self._e + "HQ", table, begin + 6)
            if not 0 < shndx < len(raw) or not raw[shndx][2] & SHF_EXECINSTR or raw[shndx][1] == SHT_NOBITS:
                continue
            addend -= (addend >> 63) << 64  # r_addend is signed
            at = value + addend
            if 0 <= at < raw[shndx][5] and raw[shndx][4] + at < len(self.data) \
                    and self.data[raw[shndx][4] + at] not in _STATIC_CALL_OPCODES:
                return ("%s: a static call site at %s+0x%x holds byte 0x%02x, no call or jump: \"unexpected static_call "
                        "insn opcode\" and BUG()" % (name, _text(self._keys[shndx]), at, self.data[raw[shndx][4] + at]))
        return ""

    def _x86_64_pc_doubt(self, name: str, target: int, kinds: AbstractSet[int], types: "array.array[int]",
                         entries: "array.array[int]",
                         syms: "array.array[int]", calls: Tuple[List[int], List[int]]) -> str:
        """PC-relative relocations where no compiler writes them: R_X86_64_PLT32 is what GCC and clang
        write for call and jmp rel32 (addend -4: the end of the instruction) and nothing else; a
        PC-relative value in writable data is no pointer (4 bytes of an 8-byte slot). ``calls``: the
        symbols PLT32 relocations jump to, and (second list) those called from code that outlives init."""
        flags = self._raw[target][2]
        if (2 in kinds or 4 in kinds) and flags & SHF_WRITE and not flags & SHF_EXECINSTR \
                and self._keys[target] not in _SELF_RELATIVE:
            return "%s writes PC-relative values into writable data (%s), where pointers are absolute" % (
                name, _text(self._keys[target]))
        if 4 not in kinds or not flags & SHF_EXECINSTR:
            # in data a PLT32 is computed as a PC32 (__apply_relocate_add(): the same case)
            return ""
        plt = list(map((4).__eq__, types))
        addends = list(itertools.compress(entries[2::3], plt))
        if addends.count(_MINUS_FOUR) != len(addends):
            return "%s has an R_X86_64_PLT32 (a call or jump) whose addend is not -4: it lands inside an instruction" % name
        callees = list(itertools.compress(syms, plt))
        calls[0].extend(callees)
        if not self._keys[target].startswith(b".init."):
            calls[1].extend(callees)  # from code that outlives init
        return ""

    def _misnamed_relocations(self) -> str:
        """The linker names a RELA section ".rela" + its target's name; one that is not SHT_RELA any
        more is skipped by apply_relocations() (main.c: it dispatches on sh_type), one whose sh_info
        names another section relocates that one instead: either way the section the name promises
        runs unrelocated (the tester's oopses, "missing return thunk")."""
        raw, keys = self._raw, self._keys
        for i in range(1, len(raw)):
            key = keys[i]
            if not key.startswith(b".rela") or raw[i][2] & SHF_RELA_LIVEPATCH:
                continue
            promised = key[5:]
            target = raw[i][7]
            promised_alloc = promised in self._alloc_index
            if raw[i][1] != SHT_RELA:
                if promised_alloc and raw[i][1] != SHT_REL:
                    return "%s is of type %d, not SHT_RELA: the loader skips it and %s runs unrelocated" % (
                        _text(key), raw[i][1], _text(promised))
                continue
            if target < len(raw) and keys[target] != promised and (promised_alloc or raw[target][2] & SHF_ALLOC):
                return "%s relocates section %d (%s), not %s as its name says: one of them runs unrelocated" % (
                    _text(key), target, _text(keys[target]) or "unnamed", _text(promised))
        return ""

    def _x86_64_section_doubt(self, i: int, writes: Dict[int, List["array.array[int]"]], used: List[int],
                              calls: Tuple[List[int], List[int]]) -> str:
        """One applied RELA section's relocations of a kind no compiler writes there; records the bytes
        each writes (``writes``, by target section) and the symbols used."""
        raw = self._raw
        size, target = raw[i][5], raw[i][7]
        if not size:
            # the linker writes no empty .rela section: one emptied leaves its section unrelocated (seed
            # 23's v00274: .init.text's return thunks stayed "e9 00 00 00 00", an oops in apply_returns())
            return "%s is empty: %s runs unrelocated" % (_text(self._keys[i]), _text(self._keys[target]))
        entries = self._rela_entries(i)
        words = array.array("I", entries.tobytes())
        types, syms, offsets = words[2::6], words[3::6], entries[0::3]
        name, target_name = _text(self._keys[i]), self._keys[target]
        # the distinct types at C speed (types above 255 are the gate's "Unknown rela relocation")
        kinds = frozenset(_distinct(entries.tobytes()[8::24]))
        if 0 in kinds and not (target_name == b".text" or target_name.startswith(b".text.")):
            # R_X86_64_NONE: __apply_relocate_add() writes nothing, the bytes keep the zeros the
            # assembler left; Debian 6.1's modules carry them in .text only (against .text.unlikely:
            # markers, not patches)
            return "%s holds R_X86_64_NONE relocations: the bytes they stand for stay zero" % name
        if target_name in _SELF_RELATIVE and not _X86_64_PC_TYPES.issuperset(kinds):
            return ("%s puts absolute relocation types into %s, whose entries the kernel reads as offsets from "
                    "themselves" % (name, _text(target_name)))
        if target_name in _SELF_RELATIVE:
            doubt = self._self_relative_range(name, entries, syms)
            if doubt:
                return doubt
        if target_name == b".gnu.linkonce.this_module":
            addends = entries[2::3]
            if kinds != {1} or addends.count(0) != len(addends):
                # modpost's init_module/cleanup_module pointers are R_X86_64_64 with addend 0
                return "%s points struct module's init or exit elsewhere than at a function's start" % name
        if target_name == b".static_call_sites":
            doubt = self._static_call_doubt(name, entries)
            if doubt:
                return doubt
        if 1 in kinds and not raw[target][2] & SHF_EXECINSTR:
            doubt = self._data_pointer_range(name, types, syms, entries)
            if doubt:
                return doubt
        doubt = self._x86_64_pc_doubt(name, target, kinds, types, entries, syms, calls)
        if doubt:
            return doubt
        spans = writes.setdefault(target, [array.array("Q"), array.array("Q")])
        spans[0].extend(offsets)
        if 1 in kinds or 24 in kinds:
            spans[1].extend(itertools.compress(offsets, map(_X86_64_WIDE.__contains__, types)))
        used.extend(syms)
        return ""

    def _symtab_data(self) -> Optional[bytes]:
        """The bytes of the section named .symtab when it is an SHT_SYMTAB, else None: what the
        relocation doubts read symbols from."""
        sec = self.section(".symtab")
        return self.section_data(sec) if sec is not None and sec.type == SHT_SYMTAB else None

    def _self_relative_range(self, name: str, entries: "array.array[int]", syms: "array.array[int]") -> str:
        """An entry of a table the kernel reads as offsets to patch (.return_sites, .orc_unwind_ip,
        __jump_table, ...) that points outside the section of its symbol: the compiler writes
        offsets inside a function's section; alternatives, ORC or static keys then read or patch
        other memory (seed 23's v00306, a .return_sites addend moved by 900 KiB: an oops in
        apply_returns(), inside load_module())."""
        table = self._symtab_data()
        if table is None:
            return ""
        raw = self._raw
        addends = array.array("q", entries.tobytes())[2::3]
        for sym, addend in zip(syms, addends):
            begin = sym * 24
            if begin + 24 > len(table):
                continue
            home, value = struct.unpack_from(self._e + "HQ", table, begin + 6)
            if 0 < home < len(raw) and not 0 <= value + addend <= raw[home][5]:
                return "%s points an entry at 0x%x of section %d, which is 0x%x bytes" % (
                    name, value + addend, home, raw[home][5])
        return ""

    def _data_pointer_range(self, name: str, types: "array.array[int]", syms: "array.array[int]",
                            entries: "array.array[int]") -> str:
        """A pointer in data (R_X86_64_64) that no compiler writes: a section symbol plus an addend
        outside that section, an object or function plus an addend outside its st_size, an undefined
        symbol minus something. The compiler points at an object or a member of it; none of Debian
        6.1's 4,023 modules has such a pointer in data (3 negative section addends in code). Seed 18's
        v01965 (a __param ops pointer's addend 0 -> -4) loaded and oopsed on rmmod through it."""
        table = self._symtab_data()
        if table is None:
            return ""
        raw = self._raw
        addends = array.array("q", entries.tobytes())[2::3]
        for ty, sym, addend in zip(types, syms, addends):
            begin = sym * 24
            if ty != 1 or begin + 24 > len(table):
                continue
            kind = table[begin + 4] & 0xF
            home, value, size = struct.unpack_from(self._e + "HQQ", table, begin + 6)
            if home == 0 and addend < 0:
                return "%s points a pointer %d bytes before undefined symbol %d" % (name, -addend, sym)
            if kind in (1, 2) and 0 < home < len(raw) and not 0 <= addend <= size:
                return "%s points a pointer at %+d of symbol %d, an object of %d bytes" % (name, addend, sym, size)
            if kind == STT_SECTION and 0 < home < len(raw) and not 0 <= value + addend <= raw[home][5]:
                return "%s points a pointer at 0x%x of section %d, which is 0x%x bytes" % (
                    name, value + addend, home, raw[home][5])
        return ""

    def _overlapping_writes(self, writes: Dict[int, List["array.array[int]"]]) -> str:
        """Two relocations writing the same bytes: the second meets what the first wrote, non-zero
        unless the value happens to have zero bytes there ("x86/modules: Skipping invalid relocation
        target, existing value is nonzero", -ENOEXEC, or the bytes are patched twice)."""
        for target, (offsets, wide) in writes.items():
            if len(offsets) < 2:
                continue
            # sorted offsets at C speed: a kernel's modules carry millions of relocations, nearly all
            # four or eight bytes apart; only a gap below eight needs the widths
            ordered = sorted(offsets)
            gap = min(map(operator.sub, ordered[1:], ordered[:-1]))
            if gap >= 8:
                continue
            spread = set(ordered)
            if gap < 4 or any(w + k in spread for w in wide for k in range(1, 8)):
                return "two relocations write the same bytes of %s: the second finds them already written" % (
                    _text(self._keys[target]))
        return ""

    def _symbol_doubt(self, used: AbstractSet[int], calls: AbstractSet[int], late: AbstractSet[int]) -> str:
        """Symbols relocations use whose values no assembler writes: a section symbol is its section's
        start (st_value 0), and an absolute symbol the x86_64 loader takes as it is
        (simplify_symbols(): SHN_ABS "Don't need to do anything") is no address inside the kernel; a
        call (``calls``) must go to code, and one from code that outlives init (``late``) not into an
        .init section, which do_init_module() frees once init returns (6.1: kernel/module/main.c).
        Column-wise over the table: a module has thousands of symbols."""
        data = self._symtab_data()
        if data is None:
            return ""
        usable = len(data) - len(data) % 24
        words = array.array("Q", bytes(data[:usable]))
        halves = array.array("H", words.tobytes())
        if sys.byteorder != "little":  # pragma: no cover
            words.byteswap()
            halves.byteswap()
        values, shndx, info = words[1::3], halves[3::12], data[4:usable:24]
        count = len(values)
        at = info.find(STT_SECTION, 1)  # LOCAL section symbols: st_info 0x03
        while at >= 0:
            if values[at] and at in used:
                return "section symbol %d has value 0x%x: a section symbol is its section's start" % (at, values[at])
            at = info.find(STT_SECTION, at + 1)
        if shndx.count(SHN_ABS):
            for index in used:
                if index < count and shndx[index] == SHN_ABS and values[index] < 0xFFFF800000000000:
                    return "symbol %d is absolute at 0x%x, no address in the kernel, and relocations use it" % (
                        index, values[index])
        raw, keys = self._raw, self._keys
        for index in calls:
            home = shndx[index] if index < count else 0
            if not 0 < home < len(raw):
                continue
            if not raw[home][2] & SHF_EXECINSTR:
                return "a call or jump goes to symbol %d, defined in section %d, which is not code (no SHF_EXECINSTR)" % (
                    index, home)
            if index in late and keys[home].startswith(b".init."):
                return "code that runs after init calls symbol %d in %s, which the kernel frees once init returns" % (
                    index, _text(keys[home]))
        return ""

    def _x86_64_targets_zero(self, entries: "array.array[int]", start: int, size: int) -> bool:
        """Whether every relocation of a RELA section (``entries``: its 64-bit words) writes onto zero
        bytes inside its target section, at C speed: a kernel's modules carry millions of relocations,
        so the target bytes are gathered by map() over slices and tested at once, never by a Python
        loop per relocation. False also when the answer needs the exact walk (a NONE relocation)."""
        offsets = entries[0::3]
        types = array.array("I", entries.tobytes())[2::6]  # ELF64_R_TYPE: r_info's low word
        if types.count(0) or max(offsets) + 4 > size:
            return False
        data = self.data
        first = b"".join(map(data.__getitem__, map(slice, map(operator.add, offsets, itertools.repeat(start)),
                                                    map(operator.add, offsets, itertools.repeat(start + 4)))))
        if len(first) != 4 * len(offsets) or first.strip(b"\x00"):
            return False
        if not (types.count(1) or types.count(24)):
            return True
        wide = array.array("Q", itertools.compress(offsets, map(_X86_64_WIDE.__contains__, types)))
        if max(wide) + 8 > size:
            return False
        upper = b"".join(map(data.__getitem__, map(slice, map(operator.add, wide, itertools.repeat(start + 4)),
                                                    map(operator.add, wide, itertools.repeat(start + 8)))))
        return len(upper) == 4 * len(wide) and not upper.strip(b"\x00")

    def symbol_problem(self) -> str:
        """A symbol table the loader would misread, or "": simplify_symbols() indexes the section
        headers with st_shndx and the string table with st_name, unchecked (kernel/module/main.c)."""
        sec = self.section(".symtab")
        if sec is None or sec.type != SHT_SYMTAB or self.bits != 64 or self.big_endian:
            return ""
        data = self.section_data(sec)
        usable = len(data) - len(data) % 24
        if not usable:
            return ""
        words = array.array("I", bytes(data[:usable]))
        halves = array.array("H", bytes(data[:usable]))
        if sys.byteorder != "little":  # pragma: no cover
            words.byteswap()
            halves.byteswap()
        strtab = self._raw[sec.link][5] if sec.link < len(self._raw) else 0
        shndx = halves[3::12]
        # resolve_symbol() reads an undefined symbol's name, and add_kallsyms() copies the others' from
        # the string table: a name outside it is garbage, or an oops where the read leaves mapped memory
        names = words[0::6]
        undefined = [n for n, s in zip(names, shndx) if s == 0] if halves.count(0) else []
        strtab_at = self._raw[sec.link][4] if sec.link < len(self._raw) else 0
        if undefined and strtab_at + max(undefined) >= len(self.data):
            return "an undefined symbol's name lies at 0x%x of a 0x%x-byte string table, past the end of the module: " \
                   "the loader looks up garbage" % (max(undefined), strtab)
        if names and strtab_at + max(names) >= len(self.data):
            return "a symbol's name lies at 0x%x of a 0x%x-byte string table, past the end of the module: " \
                   "add_kallsyms() reads it out of bounds" % (max(names), strtab)
        raw = self._raw
        count = len(raw)
        # simplify_symbols() (6.1: kernel/module/main.c 1346-1351): every st_shndx but SHN_UNDEF,
        # SHN_COMMON, SHN_ABS and SHN_LIVEPATCH must be < e_shnum, the reserved range included: "Symbol
        # %s has an invalid section index %u (max %u)", -ENOEXEC
        bad = sorted(s for s in set(shndx) if s >= count and s not in (SHN_COMMON, SHN_ABS, SHN_LIVEPATCH))
        if bad:
            return "a symbol names section %d of %d (st_shndx): \"has an invalid section index\"" % (bad[0], count)
        return self._nameless_undefined(data, shndx, names, sec.link)

    def _nameless_undefined(self, data: bytes, shndx: "array.array[int]", names: "array.array[int]", link: int) -> str:
        """An undefined symbol that is not weak and whose name is empty: simplify_symbols() asks
        resolve_symbol() for "", nobody exports it: "Unknown symbol  (err -2)" (a symbol table whose
        sh_link names another string table, as the tester made)."""
        raw = self._raw
        if not shndx.count(0) or link >= len(raw):
            return ""
        at = raw[link][4]
        # the name is read at the string table's offset plus st_name, past its size too (other bytes of
        # the file: seed 18's sym.st_name variants pointing just past .strtab met a NUL and were refused)
        for k in itertools.compress(range(len(shndx)), map(operator.not_, shndx)):
            if k and data[k * 24 + 4] >> 4 != STB_WEAK and at + names[k] < len(self.data) \
                    and self.data[at + names[k]] == 0:
                return "undefined symbol %d has an empty name: the loader looks up \"\" (\"Unknown symbol\")" % k
        return ""

    def this_module_oddity(self) -> str:
        """x86_64: .gnu.linkonce.this_module as modpost writes it is struct module with only .name set
        (init and exit are relocations onto zeros; MODULE_ARCH_INIT is {} on x86). A byte set anywhere
        else is a field the kernel finds set: most it overwrites before use (state, list, the kobject),
        some it uses as it finds them (mkobj.drivers_dir: an oops) -- kbuildguard does not model which."""
        if self.machine != "x86_64":
            return ""
        index = self.find_alloc(".gnu.linkonce.this_module")
        if not index:
            return ""
        data = bytes(self.section_data(self.section_at(index)))
        if (data[:24] + data[24 + 56:]).strip(b"\x00"):  # name: offset 24, MODULE_NAME_LEN 56 on 64-bit
            at = next(i for i, b in enumerate(data) if b and not 24 <= i < 80)
            return "byte 0x%02x at 0x%x of .gnu.linkonce.this_module, where modpost writes zero" % (data[at], at)
        return ""

    def _symbol_outside(self, used: AbstractSet[int]) -> str:
        """A symbol a relocation uses whose st_value lies past the end of its section: the loader adds
        the section's address, so the module would point into someone else's memory (none of Debian
        6.1's modules has one; a symbol no relocation uses is harmless there)."""
        data = self._symtab_data()
        if data is None:
            return ""
        raw = self._raw
        count = len(raw)
        for index in used:
            start = index * 24
            if start + 24 > len(data):
                continue  # past the table: the relocation check names it
            shndx, value = struct.unpack_from(self._e + "HQ", data, start + 6)
            if 0 < shndx < count and raw[shndx][1] != SHT_NOBITS and value > raw[shndx][5]:
                return "symbol %d lies at 0x%x of section %d, which is 0x%x bytes" % (index, value, shndx, raw[shndx][5])
            if 0 < shndx < count and not raw[shndx][2] & SHF_ALLOC:
                # layout_sections() gives only allocated sections an address in the module
                return "symbol %d, defined in section %d, which is not loaded (no SHF_ALLOC): it has no address" % (
                    index, shndx)
        return ""
        index = self.find_alloc(".gnu.linkonce.this_module")
        if not index:
            return ""
        sec = self.section_at(index)
        data = self.section_data(sec)
        rest = bytes(data[:24]) + bytes(data[24 + 56:])  # name: offset 24, MODULE_NAME_LEN 56 on 64-bit
        if rest.strip(b"\x00"):
            at = next(i for i, b in enumerate(bytes(data)) if b and not 24 <= i < 80)
            return ".gnu.linkonce.this_module has byte 0x%02x at 0x%x, where modpost writes zero" % (data[at], at)
        return ""

    def find_alloc(self, name: str) -> int:
        """kernel/module/main.c find_sec(): the first allocated section of that name (0: none)."""
        return self._alloc_index.get(name.encode(), 0)

    def _types(self, entries: bytes, step: int) -> Tuple[int, ...]:
        """The distinct ELF64_R_TYPE (r_info's low word: entry bytes 8..11, 12..15 big-endian) or
        ELF32_R_TYPE (r_info's low byte: entry byte 4, 7 big-endian) of a run of RELA entries."""
        at = (12 if self.big_endian else 8) if self.bits == 64 else (7 if self.big_endian else 4)
        low = entries[at::step]
        if self.bits == 64:
            high = b"".join(entries[at + k::step] for k in ((-1, -2, -3) if self.big_endian else (1, 2, 3)))
            if high.strip(b"\x00"):  # a type above 255 (arm64's are 256..1027)
                return tuple(sorted(set(struct.unpack_from(self._e + "I", entries, k + at)[0]
                                        for k in range(0, len(entries), step))))
        return _distinct(low)

    def _picked(self, sec: Section, pick: AbstractSet[int]) -> List[TypedRelocation]:
        target = self.section_at(sec.info)
        symtab = next((i for i in range(1, len(self._raw)) if self._raw[i][1] == SHT_SYMTAB), 0)
        percpu = self.find_alloc(".data..percpu")
        out: List[TypedRelocation] = []
        fmt = self._e + ("QQq" if self.bits == 64 else "IIi")
        step = struct.calcsize(fmt)
        data = self.section_data(sec)
        sym_fmt = self._e + ("IBBHQQ" if self.bits == 64 else "IIIBBH")
        for start in range(0, len(data) - step + 1, step):
            r_offset, info, addend = struct.unpack_from(fmt, data, start)
            typ, index = (info & 0xFFFFFFFF, info >> 32) if self.bits == 64 else (info & 0xFF, info >> 8)
            if typ not in pick:
                continue
            if not symtab:
                raise BadInput("%s: relocations in %s but no symbol table" % (self.path, sec.name))
            table = self.section_at(symtab)
            entsize = struct.calcsize(sym_fmt)
            if index * entsize + entsize > table.size:
                raise BadInput("%s: corrupt ELF: symbol %d outside %s" % (self.path, index, table.name))
            entry = self._slice(table.offset + index * entsize, entsize, "a symbol of " + table.name)
            if self.bits == 64:
                _n, st_info, _o, shndx, value, _s = struct.unpack(sym_fmt, entry)
            else:
                _n, value, _s, st_info, _o, shndx = struct.unpack(sym_fmt, entry)
            if shndx == SHN_UNDEF:
                kind = SymbolKind.WEAK_UNDEFINED if st_info >> 4 == STB_WEAK else SymbolKind.UNDEFINED
            elif shndx == SHN_ABS:
                kind = SymbolKind.ABSOLUTE
            elif percpu and shndx == percpu:
                kind = SymbolKind.PERCPU
            else:
                kind = SymbolKind.DEFINED
            name = self.symbol_name(symtab, index) if index else ""
            if not name and kind is SymbolKind.DEFINED and shndx < len(self._raw):
                name = self.section_at(shndx).name  # a section symbol: the assembler's .rodata.str1.1+N
            out.append(TypedRelocation(section=target.name, offset=r_offset, symbol=name, kind=kind, value=value, addend=addend))
        return out

    def loader_symtab(self) -> int:
        """The symbol table the loader uses (setup_load_info(): the first SHT_SYMTAB, info->index.sym),
        whatever a relocation section's sh_link says; 0 if there is none."""
        return next((k for k in range(1, len(self._raw)) if self._raw[k][1] == SHT_SYMTAB), 0)

    def symbol_count(self, symtab_index: int) -> int:
        return self._raw[symtab_index][5] // (24 if self.bits == 64 else 16) if 0 < symtab_index < len(self._raw) else 0

    def symbol_name(self, symtab_index: int, symbol: int) -> str:
        """The name of symbol number ``symbol`` in the symbol table at section ``symtab_index``."""
        if symtab_index >= len(self._raw):
            raise BadInput("%s: corrupt ELF: symbol table index %d" % (self.path, symtab_index))
        symtab = self.section_at(symtab_index)
        entsize = 24 if self.bits == 64 else 16
        start = symtab.offset + symbol * entsize
        if symtab.type != SHT_SYMTAB or symbol * entsize + entsize > symtab.size:
            raise BadInput("%s: corrupt ELF: symbol %d outside %s" % (self.path, symbol, symtab.name))
        entry = self._slice(start, entsize, "a symbol of " + symtab.name)
        name_off = struct.unpack_from(self._e + "I", entry, 0)[0]
        if symtab.link >= len(self._raw):
            raise BadInput("%s: corrupt ELF: string table index %d" % (self.path, symtab.link))
        strtab = self.section_at(symtab.link)
        # the loader reads names at the string table's file offset plus st_name, unbounded by its size
        # (setup_load_info(): info->strtab; seed 23's v00675, .strtab's sh_size 0, loaded): past the
        # file's end is past the loader's copy of it
        at = strtab.offset + name_off
        if at >= len(self.data):
            raise BadInput("%s: corrupt ELF: symbol name offset %d" % (self.path, name_off))
        # read up to 256 bytes of the name rather than the whole string table
        chunk = self._slice(at, min(256, len(self.data) - at), "a symbol name")
        return _cstring(chunk, 0)


# e_machine of the 64-bit little-endian kernels whose loader ignores e_ident[EI_CLASS] and [EI_DATA]
_LE64_MACHINES = frozenset({62, 183})  # EM_X86_64, EM_AARCH64


def ident(data) -> Tuple[int, int]:
    """e_ident[EI_CLASS] and [EI_DATA] as the loader takes them. The kernel checks only the magic
    and elf_check_arch(), which on x86_64 and arm64 compares e_machine alone (6.1:
    arch/x86/include/asm/elf.h, arch/arm64/include/asm/elf.h); it reads the header in its own word
    size and byte order, so a module for EM_X86_64 or EM_AARCH64 (read little-endian) with another
    class or data byte loads as a 64-bit little-endian one (the tester's v01077: EI_DATA 0x51, loaded)."""
    elf_class, endian = data[4], data[5]
    if (elf_class not in (1, 2) or endian not in (1, 2)) and len(data) >= 20 \
            and struct.unpack_from("<H", data, 18)[0] in _LE64_MACHINES:
        return 2, 1
    return elf_class, endian


def _distinct(column: bytes) -> Tuple[int, ...]:
    """The distinct byte values of a column: a handful of C-speed passes where set() would make an
    int per byte (a kernel's modules carry millions of relocations, of five types)."""
    found = []
    while column:
        found.append(column[0])
        column = column.replace(column[:1], b"")
    return tuple(sorted(found))


def _text(name: bytes) -> str:
    return name.decode("utf-8", errors="replace")


def _cstring(table: bytes, offset: int) -> str:
    if offset >= len(table):
        return ""
    end = table.find(b"\x00", offset)
    return table[offset:end if end >= 0 else len(table)].decode("utf-8", errors="replace")


class RawSection(NamedTuple):
    """One section header as the kernel's loader reads it: raw, nothing validated."""

    number: int
    name_offset: int  # sh_name
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int


class ElfShape(NamedTuple):
    """What kernel/module/main.c elf_validity_check() and setup_load_info() read, raw, so that the
    gate can apply the kernel's rules (kbuildguard's own reader refuses less, or more, than it)."""

    length: int  # the bytes the kernel checks against: the file without its signature (module_sig_check())
    header_complete: bool  # len >= sizeof(Elf_Ehdr)
    magic: bool  # e_ident starts with \177ELF
    elf_class: int  # e_ident[EI_CLASS]
    e_type: int
    machine: int
    shentsize: int
    shoff: int
    shnum: int  # e_shnum as the kernel reads it (it knows no extended numbering)
    shstrndx: int
    table_inside: bool  # e_shoff < len and e_shnum headers of this class fit after it
    table: Tuple[Tuple[int, ...], ...]  # the raw section headers (empty when not inside the file)
    names: bytes  # the section name table (b"" when empty or outside the file)

    def section(self, index: int) -> RawSection:
        name_offset, kind, flags, addr, offset, size, link, info = self.table[index][:8]
        return RawSection(number=index, name_offset=name_offset, type=kind, flags=flags, addr=addr, offset=offset, size=size,
                          link=link, info=info)

    def sections(self) -> List[RawSection]:
        return [self.section(i) for i in range(len(self.table))]

    def name(self, section: RawSection) -> str:
        """Its name; "" when sh_name lies outside the name table."""
        return _cstring(self.names, section.name_offset)

    def numbers_named(self, name: str, allocated: bool = False) -> List[int]:
        """The sections (from 1) of that name, as strcmp() on the name table finds them; ``allocated``:
        SHF_ALLOC ones only (find_sec()). `check` asks this of every module: no record per section."""
        wanted = name.encode() + b"\x00"
        names = self.names
        return [i for i, entry in enumerate(self.table) if i and names.startswith(wanted, entry[0])
                and (not allocated or entry[2] & SHF_ALLOC)]

    def sections_named(self, name: str) -> List[RawSection]:
        return [self.section(i) for i in self.numbers_named(name)]

    def find_sec(self, name: str) -> Optional[RawSection]:
        """kernel/module/main.c find_sec(): the first section (from 1) with SHF_ALLOC and that name."""
        found = self.numbers_named(name, allocated=True)
        return self.section(found[0]) if found else None


def read_shape(data, length: int) -> ElfShape:
    """The raw header and section table of an ELF image (bytes or mmap), as far as they lie inside
    its first ``length`` bytes; never raises: what is outside is recorded as such."""
    length = min(length, len(data))
    elf_class, endian = ident(data) if length >= 20 else (data[4] if length > 4 else 0, data[5] if length > 5 else 0)
    bits64 = elf_class == 2
    big = endian == 2
    e = ">" if big else "<"
    header = e + ("HHIQQQIHHHHHH" if bits64 else "HHIIIIIHHHHHH")
    ehdr_size = 16 + struct.calcsize(header)
    magic = length >= 4 and bytes(data[:4]) == b"\x7fELF"
    if length < ehdr_size:
        return ElfShape(length=length, header_complete=False, magic=magic, elf_class=elf_class, e_type=0, machine=0, shentsize=0, shoff=0, shnum=0,
                        shstrndx=0, table_inside=False, table=(), names=b"")
    (e_type, machine, _, _, _, shoff, _, _, _, _, shentsize, shnum, shstrndx) = struct.unpack_from(header, data, 16)
    shdr = e + ("IIQQQQIIQQ" if bits64 else "IIIIIIIIII")
    step = struct.calcsize(shdr)
    inside = shoff < length and shnum * step <= length - shoff and shentsize == step
    raw: Tuple[Tuple[int, ...], ...] = ()
    names = b""
    if inside:
        raw = tuple(struct.iter_unpack(shdr, bytes(data[shoff:shoff + shnum * step])))
        if 0 < shstrndx < shnum:
            _, _, _, _, n_off, n_size, _, _, _, _ = raw[shstrndx]
            if n_off + n_size <= length:
                names = bytes(data[n_off:n_off + n_size])
    return ElfShape(length=length, header_complete=True, magic=magic, elf_class=elf_class, e_type=e_type, machine=machine, shentsize=shentsize, shoff=shoff,
                    shnum=shnum, shstrndx=shstrndx, table_inside=inside,
                    table=raw, names=names)
