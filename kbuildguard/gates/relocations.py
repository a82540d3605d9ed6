"""The relocations gate: what the architecture's apply_relocate_add() refuses.

kernel/module/main.c apply_relocations() (6.1: 1366-1399) walks every section: a relocation section
whose target (sh_info) is out of range or not SHF_ALLOC is skipped (debug info is never relocated);
SHT_REL goes to apply_relocate(), SHT_RELA to apply_relocate_add(); the first error ends the load.
x86_64 and arm64 select MODULES_USE_ELF_RELA only, so an SHT_REL section there meets the stub in
include/linux/moduleloader.h: "module %s: REL relocation unsupported", -ENOEXEC.

x86_64 -- arch/x86/kernel/module.c __apply_relocate_add() (6.1: 132-221; the same set in 5.10 and
6.12): R_X86_64_NONE, _64, _32, _32S, _PC32, _PLT32, _PC64; any other type is "%s: Unknown rela
relocation: %llu". val = S + A. R_X86_64_32 must survive truncation to 32 bits zero-extended, _32S
sign-extended, else "overflow in relocation type %d val %Lx" and "`%s' likely not compiled with
-mcmodel=kernel". Modules live above 0xffffffff80000000 (MODULES_VADDR is the kernel map plus the
image size) and so does the kernel's text and data: S + A of a symbol defined in the module, or of
a section symbol (what -mcmodel=small makes for string literals and addresses of functions), never
fits zero-extended 32 bits -- a certain refusal. For an undefined symbol it fits only when the
exporter's address is small: one of the kernel's per-cpu variables (addressed as offsets into the
per-cpu area) or an absolute symbol, which Module.symvers does not say; a weak symbol nobody exports
resolves to 0. _32S of addresses above 0xffffffff80000000 fits, which is why -mcmodel=kernel uses it.

arm64 -- arch/arm64/kernel/module.c apply_relocate_add() (6.1: 261-477; the same set in 5.10 and
6.12): R_ARM_NONE, R_AARCH64_NONE and 37 more types; anything else is "module %s: unsupported RELA
relocation: %llu". Its overflow checks depend on where the module lands relative to its targets
(module PLTs absorb CALL26/JUMP26 overflows): kbuildguard does not model them.
"""

from typing import FrozenSet, Mapping, Optional

from kbuildguard.arch import Arch
from kbuildguard.formats.elf import R_X86_64_32, SymbolKind
from kbuildguard.formats.module import ModuleInfo
from kbuildguard.gates.model import Check, Effect, Gate

X86_64_TYPES = frozenset({0, 1, 2, 4, 10, 11, 24})  # NONE, 64, PC32, PLT32, 32, 32S, PC64
AARCH64_TYPES = frozenset({0} | set(range(256, 281)) | set(range(282, 294)) | {299})
ACCEPTED: Mapping[Arch, FrozenSet[int]] = {Arch.X86_64: X86_64_TYPES, Arch.AARCH64: AARCH64_TYPES}
UNKNOWN_LINE = {Arch.X86_64: "%s: Unknown rela relocation: %d", Arch.AARCH64: "module %s: unsupported RELA relocation: %d"}

MCMODEL_FIX = ("build it with kbuild's flags: remove -mcmodel=small (and any -mcmodel other than kernel) from "
               "ccflags-y / EXTRA_CFLAGS; kernel modules need -mcmodel=kernel, which kbuild passes")
OTHER_FIX = "rebuild it with kbuild and the kernel's own compiler flags; do not post-process the object"


def check(info: ModuleInfo, arch: Optional[Arch]) -> Optional[Check]:
    facts = info.relocations
    if facts is None:
        return None
    expected = "relocations the %s loader applies" % (arch or "target's")
    if arch is None or arch not in ACCEPTED:
        return Check(name=Gate.RELOCATIONS, ok=True, expected=expected, found="%d relocation type(s)" % len(facts.types),
                     message="not checked: kbuildguard models the relocations of x86_64 and arm64 modules only", fix="",
                     effect=Effect.NOT_CHECKED)
    found = "types %s" % (", ".join(str(t) for t in facts.types) or "none")
    if facts.problem:
        return Check(name=Gate.RELOCATIONS, ok=False, expected=expected, found=found,
                     message="%s (-ENOEXEC)" % facts.problem,
                     fix=OTHER_FIX, effect=Effect.REJECTED)
    if facts.rel_sections:
        return Check(name=Gate.RELOCATIONS, ok=False, expected=expected, found="SHT_REL section %s" % facts.rel_sections[0],
                     message="the %s loader takes RELA relocations only: \"module %s: REL relocation unsupported\" (-ENOEXEC)" % (
                         arch, info.name), fix=OTHER_FIX, effect=Effect.REJECTED)
    unknown = [t for t in facts.types if t not in ACCEPTED[arch]]
    if unknown:
        line = UNKNOWN_LINE[arch] % (info.name, unknown[0])
        return Check(name=Gate.RELOCATIONS, ok=False, expected=expected, found=found,
                     message="relocation type %s in an allocated section: \"%s\" (-ENOEXEC)" % (
                         ", ".join(str(t) for t in unknown), line), fix=OTHER_FIX, effect=Effect.REJECTED)
    if arch is Arch.X86_64:
        return _doubted(_x86_64_abs32(info, expected, found), facts.doubt)
    return _doubted(Check(name=Gate.RELOCATIONS, ok=True, expected=expected, found=found,
                 message="every relocation type is one apply_relocate_add() knows (its range checks depend on where the "
                 "module lands and are not modelled)"), facts.doubt)


def _doubted(check: Check, doubt: str) -> Check:
    """A check that would pass, made not-checked when the relocations are of a kind no linker writes
    (RelocationFacts.doubt): the kernel refuses some such files and crashes on others, and which one
    depends on bytes kbuildguard does not model -- never ok."""
    if not doubt or not check.ok or check.effect is not Effect.OK:
        return check
    return Check(name=check.name, ok=True, expected=check.expected, found=check.found,
                 message="not checked: %s; whether the kernel refuses it, crashes or runs it is not known to "
                 "kbuildguard" % doubt, fix=OTHER_FIX, effect=Effect.NOT_CHECKED)


def _x86_64_abs32(info: ModuleInfo, expected: str, found: str) -> Check:
    assert info.relocations is not None
    certain = []
    maybe = []
    for r in info.relocations.picked:
        what = "%s+0x%x against %s" % (r.section, r.offset, r.symbol or "?")
        if r.kind in (SymbolKind.DEFINED,):
            certain.append(what)
        elif r.kind is SymbolKind.ABSOLUTE:
            if (r.value + r.addend) & ((1 << 64) - 1) > 0xFFFFFFFF:
                certain.append(what)
        elif r.kind is SymbolKind.UNDEFINED:
            maybe.append(what)
        # PERCPU: an offset into the per-cpu area, small; WEAK_UNDEFINED: 0 when nobody exports it
    if certain or maybe:
        line = ("module: overflow in relocation type %d val ffffffff...\", then \"module: `%s' likely not compiled with "
                "-mcmodel=kernel" % (R_X86_64_32, info.name))
        if certain:
            message = ("R_X86_64_32 at %s: the module's own addresses lie above 0xffffffff80000000 and do "
                       "not fit 32 bits zero-extended: \"%s\" (-ENOEXEC)" % (_few(certain), line))
        else:
            message = ("R_X86_64_32 at %s, a symbol the kernel or a module exports: it fits 32 bits only if "
                       "it is one of the kernel's per-cpu variables (Module.symvers does not say); any other address lies "
                       "above 0xffffffff80000000: \"%s\" (-ENOEXEC), judged by that" % (_few(maybe), line))
        return Check(name=Gate.RELOCATIONS, ok=False, expected=expected, found="%s; %d R_X86_64_32" % (found, len(certain) + len(maybe)),
                     message=message, fix=MCMODEL_FIX, effect=Effect.REJECTED)
    return Check(name=Gate.RELOCATIONS, ok=True, expected=expected, found=found,
                 message="every relocation is of a type __apply_relocate_add() knows, and none that can overflow")


def _few(items) -> str:
    shown = ", ".join(items[:3])
    return shown + (" and %d more" % (len(items) - 3) if len(items) > 3 else "")
