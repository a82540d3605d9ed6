"""The ELF gate: what kernel/module/main.c elf_validity_check() and setup_load_info() refuse before
anything else of the module is read (after the signature check, which strips the signature first).

6.1 (kernel/module/main.c 1644-1796, Debian's linux-source-6.1 6.1.192): validate_section_offset()
and elf_validity_check() check, in this order, and each failure is -ENOEXEC ("Exec format error",
insmod: "Invalid module format"):

1. the file holds an ELF header ("Invalid ELF header len %lu"), its magic ("Invalid ELF header
   magic: != \\177ELF"), e_type ET_REL ("Invalid ELF header type: %u != 1"), the machine (the machine
   gate), e_shentsize == sizeof(Elf_Shdr) ("Invalid ELF section header size");
2. the section table inside the file: e_shoff < len, e_shnum * sizeof(Elf_Shdr) <= len - e_shoff
   ("Invalid ELF section header overflow");
3. e_shstrndx neither 0 nor >= e_shnum ("Invalid ELF section name index: ..."), the name table inside
   the file ("Invalid ELF section hdr(type %u)"), not empty ("empty section name table"), its last byte
   NUL ("ELF Spec violation: section name table isn't null terminated");
4. section 0 is SHT_NULL with size 0 and address 0 ("ELF Spec violation: section 0 type(%d)!=SH_NULL
   or non-zero len or addr");
5. every section from 1 that is neither SHT_NULL nor SHT_NOBITS lies inside the file, offset + size
   not overflowing ("Invalid ELF section in module (section %u type %u)"); a SHT_SYMTAB's sh_link is
   neither 0 nor >= e_shnum ("Invalid ELF sh_link!=SHN_UNDEF(%d) or ..."); an SHF_ALLOC section's
   sh_name lies inside the name table ("Invalid ELF section name in module (section %u type %u)").

Then setup_load_info() (main.c 1916-1966): no SHT_SYMTAB is "module has no symbols (stripped?)";
no allocated .gnu.linkonce.this_module (find_sec() skips sections without SHF_ALLOC) is "No module
found in object" -- the this_module gate says that one.

5.10 (Debian 11's 5.10.223, kernel/module.c 2971-3080): the same checks, silent but for the two
"Invalid ELF section ..." lines, then "Module has invalid ELF structures"; no empty-name-table check
(it reads the byte before the table). They came with "module: harden ELF info handling" (upstream
in 5.14 to our knowledge, not verified here; Debian's 5.10.223 has them, seen in its source); older
kernels (RHEL 8's 4.18 unless Red Hat backported it) check the header, the table and, in
rewrite_section_headers(), each section's end ("Module len %lu truncated"):
kbuildguard says not-checked for the rest there.

6.12 (kernel/module/main.c 1689-2127, elf_validity_cache_copy()): the same, reordered (section 0
and every section's bounds before the name table), plus: the name table is SHT_STRTAB ("Invalid ELF
section name table type: %u"), *every* non-null section's sh_name lies inside it, at most one
.modinfo ("Only one .modinfo section must exist."), exactly one .gnu.linkonce.this_module, not
SHT_NOBITS, allocated, of the kernel's struct module size (the layout gate: since 6.4), exactly one
SHT_SYMTAB, whose sh_link is a SHT_STRTAB ("Invalid ELF symbol string table type: %u"). Those
additions are applied from 6.12; between 6.4 and 6.11 they are not-checked (kbuildguard has not read
those sources).
"""

from typing import List, Optional, Tuple

from kbuildguard.arch import Arch
from kbuildguard.formats.elf import ET_REL, SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS, SHT_NULL, SHT_STRTAB, SHT_SYMTAB, ElfShape
from kbuildguard.formats.module import ModuleInfo
from kbuildguard.gates.model import Check, Effect, Gate
from kbuildguard.versions import release_tuple

# sizeof(Elf_Ehdr) / sizeof(Elf_Shdr) of the kernel, by its word size
EHDR_SIZE = {64: 64, 32: 52}
SHDR_SIZE = {64: 64, 32: 40}
THIRTY_TWO_BIT = frozenset({Arch.I686, Arch.ARM})

FIX = ("rebuild it with kbuild and install the file kbuild wrote: this one is corrupt, truncated, or was changed "
       "after linking (strip, objcopy, a copy cut short)")


def kernel_bits(arch: Optional[Arch], module_class: int) -> int:
    if arch is None:
        return module_class
    return 32 if arch in THIRTY_TWO_BIT else 64


Finding = Tuple[str, str]  # the kernel's line, the rule set that has it ("all", "hardened", "6.1", "6.12", "doubt")


def findings(shape: ElfShape, bits: int) -> List[Finding]:
    """Every refusal of the kernel's ELF checks, in its order, each with the rule set that has it;
    the first one is what the kernel says."""
    first = _header_refusal(shape, bits) or _name_table_refusal(shape) or _section_refusal(shape)
    if first:
        return [first]
    return _later_refusals(shape) + _placement_doubts(shape) + _overlap_doubts(shape) + _v6_12_refusals(shape)


def _header_refusal(shape: ElfShape, bits: int) -> Optional[Finding]:
    """elf_validity_check()'s header checks, each ending the load (6.1: main.c 1644-1700)."""
    if not shape.header_complete or shape.length < EHDR_SIZE[bits]:
        return ("Invalid ELF header len %d" % shape.length, "all")
    if not shape.magic:
        return ("Invalid ELF header magic: != \\177ELF", "all")
    if shape.e_type != ET_REL:
        return ("Invalid ELF header type: %d != %d" % (shape.e_type, ET_REL), "all")
    if shape.shentsize != SHDR_SIZE[bits]:
        return ("Invalid ELF section header size (%d, the kernel's is %d)" % (shape.shentsize, SHDR_SIZE[bits]), "all")
    if shape.shoff >= shape.length or shape.shnum * SHDR_SIZE[bits] > shape.length - shape.shoff:
        return ("Invalid ELF section header overflow (%d section headers at offset %d, %d bytes%s)" % (
            shape.shnum, shape.shoff, shape.length, " before the signature" if shape.length else ""), "all")
    if not shape.table:  # the header fields agree with the kernel's sizes, read in another ELF class than its own
        return ("Invalid ELF header: class %d, the kernel reads %d-bit headers" % (shape.elf_class, bits), "all")
    return None


def _name_table_refusal(shape: ElfShape) -> Optional[Finding]:
    """5.10 and 6.1 check the section name table first, then section 0."""
    if shape.shstrndx == 0 or shape.shstrndx >= shape.shnum:
        return ("Invalid ELF section name index: %d || e_shstrndx (%d) >= e_shnum (%d)" % (
            shape.shstrndx, shape.shstrndx, shape.shnum), "hardened")
    strhdr = shape.section(shape.shstrndx)
    if _outside(strhdr.offset, strhdr.size, shape.length):
        return ("Invalid ELF section hdr(type %d): the section name table lies outside the file" % strhdr.type,
                "hardened")
    if strhdr.size == 0:
        return ("empty section name table", "6.1")  # 5.10 reads the byte before the table instead
    if not shape.names or shape.names[-1] != 0:
        return ("ELF Spec violation: section name table isn't null terminated", "hardened")
    zero = shape.section(0)
    if zero.type != SHT_NULL or zero.size != 0 or zero.addr != 0:
        return ("ELF Spec violation: section 0 type(%d)!=SH_NULL or non-zero len or addr" % zero.type, "hardened")
    return None


def _section_refusal(shape: ElfShape) -> Optional[Finding]:
    """Every section from 1: inside the file, a symbol table's sh_link in range, an allocated
    section's name inside the name table."""
    table = shape.table
    # raw Elf_Shdr fields: name, type, flags, addr, offset, size, link, info, addralign, entsize
    length, shnum, names_size = shape.length, shape.shnum, shape.section(shape.shstrndx).size
    for i in range(1, len(table)):
        name_off, typ, flags, _addr, offset, size, link = table[i][:7]
        if typ in (SHT_NULL, SHT_NOBITS):
            continue
        if typ == SHT_SYMTAB and (link == 0 or link >= shnum):
            return ("Invalid ELF sh_link!=SHN_UNDEF(%d) or (sh_link(%d) >= hdr->e_shnum(%d)" % (link, link, shnum),
                    "hardened")
        if _outside(offset, size, length):
            # the one check old kernels make too (rewrite_section_headers(): "Module len %lu truncated")
            return ("Invalid ELF section in module (section %d type %d): %s ends at %d, the module at %d" % (
                i, typ, shape.name(shape.section(i)) or "it", offset + size, length), "all")
        if flags & SHF_ALLOC and name_off >= names_size:
            return ("Invalid ELF section in module (section %d type %d): its name lies outside the section "
                    "name table" % (i, typ), "hardened")
    return None


# The longest section name 6.1's loader looks up with find_sec()/find_any_sec() is
# ".gnu.linkonce.this_module" (25 bytes and its NUL); a strcmp() against it reads no further than that.
_LONGEST_NAME_READ = 64


def _later_refusals(shape: ElfShape) -> List[Finding]:
    """6.1, later in load_module(): find_any_sec() (main.c 213, for ".BTF" and others) strcmp()s every
    section's name, so a name outside the table is read out of bounds -- the tester saw an oops in
    strcmp (insmod killed, taint D) for a non-allocated section's; layout_and_allocate() ->
    module_enforce_rwx_sections() (strict_rwx.c: CONFIG_STRICT_MODULE_RWX, which x86_64 and arm64
    cannot turn off) refuses any section both writable and executable, allocated or not."""
    out: List[Finding] = []
    strhdr = shape.section(shape.shstrndx)
    table, names_size = shape.table, strhdr.size
    for i in range(1, len(table)):
        name_off, typ = table[i][:2]
        if typ != SHT_NULL and name_off >= names_size:
            if strhdr.offset + name_off + _LONGEST_NAME_READ <= shape.length:
                # load_module() works on its copy of the whole file (info->hdr, info->len), so a name
                # that starts inside the file is read from other bytes of it: strcmp() stops within
                # the longest name it compares -- no oops. Debian's 6.1 loaded three such variants of
                # seed 18 (docs/differential.md); what such a name matches is not modelled
                out.append(("section %d's name lies outside the section name table, on other bytes of the file "
                            "the loader reads as its name" % i, "doubt"))
            else:
                out.append(("section %d's name lies outside the section name table: find_any_sec() reads it out of "
                            "bounds (an oops)" % i, "6.1"))
            break
    for i in range(1, len(table)):
        if table[i][2] & (SHF_WRITE | SHF_EXECINSTR) == SHF_WRITE | SHF_EXECINSTR:
            out.append(("section %s (index %d) has invalid WRITE|EXEC flags" % (shape.name(shape.section(i)) or "?", i),
                        "6.1"))
            break
    return out


def _v6_12_refusals(shape: ElfShape) -> List[Finding]:
    """6.12's additions (elf_validity_cache_secstrings(), _index_info(), _index_mod(), _index_sym(),
    _index_str()), and setup_load_info()'s "no symbols" of every version."""
    out: List[Finding] = []
    table = shape.table
    strhdr = shape.section(shape.shstrndx)
    if strhdr.type != SHT_STRTAB:
        out.append(("Invalid ELF section name table type: %d" % strhdr.type, "6.12"))
    for i, entry in enumerate(table):
        if entry[1] != SHT_NULL and entry[0] >= strhdr.size:
            out.append(("Invalid ELF section name in module (section %d type %d)" % (i, entry[1]), "6.12"))
            break
    if len(shape.numbers_named(".modinfo")) > 1:
        out.append(("Only one .modinfo section must exist.", "6.12"))
    mods = shape.numbers_named(".gnu.linkonce.this_module")
    if len(mods) > 1:
        out.append(("Exactly one .gnu.linkonce.this_module section must exist.", "6.12"))
    elif mods and table[mods[0]][1] == SHT_NOBITS:
        out.append((".gnu.linkonce.this_module section must have a size set", "6.12"))
    symtabs = [i for i in range(1, len(table)) if table[i][1] == SHT_SYMTAB]
    if not symtabs:
        # setup_load_info() in every version
        out.append(("module has no symbols (stripped?)", "all"))
    elif len(symtabs) > 1:
        out.append(("module has no symbols (stripped?): %d symbol tables" % len(symtabs), "6.12"))
    else:
        link = table[symtabs[0]][6]
        if link < shape.shnum and table[link][1] != SHT_STRTAB:
            out.append(("Invalid ELF symbol string table type: %d" % table[link][1], "6.12"))
    return out


# Sections whose bytes the kernel runs: the linker never clears SHF_EXECINSTR on them
_CODE_PREFIXES = (b".text", b".init.text", b".exit.text", b".noinstr.text", b".sched.text", b".cpuidle.text",
                  b".ref.text")
# module_get_offset() (6.1: kernel/module/main.c) aligns the layout's `unsigned int size` with
# ALIGN(size, sh_addralign): an alignment of 2^32 or more wraps it (the tester's 2^40 on .strtab: the
# loader writes past what it allocated, an oops), one near a GiB exceeds the module area (x86_64's is
# 1.5 GiB, arm64's 2 GiB: module_alloc() fails). Smaller odd alignments load (1 MiB, 0xedda: seen in
# qemu); Debian 6.1's own modules align to a page at most.
_ALIGN_LIMIT = 1 << 30


def _placement_doubts(shape: ElfShape) -> List[Tuple[str, str]]:
    """Where layout_sections() and module_enforce_rwx_sections() (6.1: kernel/module/main.c,
    strict_rwx.c) put a section by its flags alone, and the code then expects otherwise: code without
    SHF_EXECINSTR lands in non-executable memory (init runs there: an NX oops), a struct module without
    SHF_WRITE in read-only memory (the loader writes mod->state: an oops); an alignment no linker writes
    of a GiB or more makes module_get_offset()'s ALIGN() exceed the module area or wrap the layout's
    unsigned int size. The kernel checks none of
    them: what happens depends on the memory it maps, so the rule is "doubt" (not-checked)."""
    out: List[Tuple[str, str]] = []
    names = shape.names
    for number in range(1, len(shape.table)):
        name_off, _typ, flags, _addr, _offset, size = shape.table[number][:6]
        if not flags & SHF_ALLOC:
            continue
        if not flags & SHF_EXECINSTR and size and names.startswith(_CODE_PREFIXES, name_off):
            out.append(("%s (section %d) holds code but is not executable (no SHF_EXECINSTR)" % (
                shape.name(shape.section(number)), number), "doubt"))
        if not flags & SHF_WRITE and names.startswith(b".gnu.linkonce.this_module\x00", name_off):
            out.append((".gnu.linkonce.this_module (section %d) is not writable (no SHF_WRITE): the loader writes "
                        "struct module" % number, "doubt"))
    for number, entry in enumerate(shape.table):
        align = entry[8]
        if number and (entry[2] & SHF_ALLOC or entry[1] in (SHT_SYMTAB, SHT_STRTAB)) and align >= _ALIGN_LIMIT:
            out.append(("section %d has sh_addralign 0x%x: layout_sections() aligns the module's size to it" % (
                number, align), "doubt"))
            break
    return out


def _overlap_doubts(shape: ElfShape) -> List[Tuple[str, str]]:
    """An allocated section whose bytes in the file are also another section's, the ELF header or the
    section header table. No linker writes that, and elf_validity_check() does not look: the loader
    copies those bytes into the module's memory as that section's contents (layout_and_allocate()'s
    memcpy), so code or strings are someone else's bytes and what init then does is not knowable
    from the file (the differential corpus's v00711: .rodata.str1.1 moved onto .symtab's bytes; init
    failed with -EINVAL). Not-checked, never ok. None of Debian 6.1's 4,023 amd64 or 3,685 arm64
    modules has one."""
    spans = []  # (start, end, section number; -1 for the ELF header, -2 for the section table)
    for number in range(1, len(shape.table)):
        typ, flags, offset, size = shape.table[number][1], shape.table[number][2], shape.table[number][4], shape.table[number][5]
        if typ not in (SHT_NULL, SHT_NOBITS) and size and not _outside(offset, size, shape.length):
            spans.append((offset, offset + size, number, bool(flags & SHF_ALLOC)))
    spans.append((0, 64 if shape.elf_class == 2 else 52, -1, False))
    if shape.table:
        spans.append((shape.shoff, shape.shoff + shape.shnum * shape.shentsize, -2, False))
    spans.sort()
    out: List[Tuple[str, str]] = []
    reach_end, reach = 0, None  # the furthest end so far and the span that reaches it
    for span in spans:
        if reach is not None and span[0] < reach_end and (span[3] or reach[3]):
            alloc, other = (span, reach) if span[3] else (reach, span)
            what = {-1: "the ELF header", -2: "the section header table"}.get(other[2]) or "section %d" % other[2]
            out.append(("%s (section %d) lies on the same bytes of the file as %s: its contents are not its own" % (
                shape.name(shape.section(alloc[2])), alloc[2], what), "doubt"))
            break
        if span[1] > reach_end:
            reach_end, reach = span[1], span
    return out


def _outside(offset: int, size: int, length: int) -> bool:
    """validate_section_offset(): offset + size overflowing 64 bits, or past the end."""
    end = offset + size
    return end >= 1 << 64 or end > length


def _applies(rule: str, release: Tuple[int, ...]) -> Optional[bool]:
    """Does a kernel of this release refuse by this rule set? None: kbuildguard does not know."""
    if rule == "all":
        return True
    if rule == "hardened":
        return True if release >= (5, 10) else None
    if rule == "doubt":
        return None
    if rule == "6.1":
        return True if release >= (6, 1) else None
    return True if release >= (6, 12) else (False if release < (6, 4) else None)


def check(info: ModuleInfo, release: str, arch: Optional[Arch]) -> Optional[Check]:
    if info.shape is None:
        return None
    return check_shape(info.shape, release, arch, info.name)


def check_shape(shape: ElfShape, release: str, arch: Optional[Arch], name: str) -> Check:
    version = release_tuple(release.split("-")[0]) if release else ()
    found = findings(shape, kernel_bits(arch, 64 if shape.elf_class == 2 else 32))
    expected = "an ELF file elf_validity_check() accepts"
    refused = [line for line, rule in found if _applies(rule, version)]
    unknown = [line for line, rule in found if _applies(rule, version) is None and rule != "doubt"]
    if refused:
        line = refused[0]
        suffix = "; then \"Module has invalid ELF structures\"" if (5, 10) <= version < (6, 1) else ""
        return Check(name=Gate.ELF, ok=False, expected=expected, found=line,
                     message="the kernel refuses %s before reading it: \"%s\"%s (-ENOEXEC, insmod: Invalid module format)" % (
                         name, line, suffix), fix=FIX, effect=Effect.REJECTED)
    doubts = [line for line, rule in found if rule == "doubt"]
    if doubts:
        return Check(name=Gate.ELF, ok=True, expected=expected, found=doubts[0],
                     message="not checked: %s; the kernel does not check it, and whether %s then runs, crashes or is "
                     "refused is not known to kbuildguard" % (doubts[0], name), fix=FIX, effect=Effect.NOT_CHECKED)
    if unknown:
        return Check(name=Gate.ELF, ok=False, expected=expected, found=unknown[0],
                     message="newer kernels refuse this file (\"%s\"); whether %s does is not known to kbuildguard" % (
                         unknown[0], release), fix=FIX, effect=Effect.NOT_CHECKED)
    return Check(name=Gate.ELF, ok=True, expected=expected, found="%d sections inside %d bytes" % (shape.shnum, shape.length),
                 message="the ELF header and every section pass elf_validity_check()")
