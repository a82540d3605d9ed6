"""The gates of struct module and the compiler: the machine a module is built for, its
.gnu.linkonce.this_module, its struct module layout against the reference, whether it can ever
unload, and its compiler against the kernel's (kernel/module/main.c, cited at each rule)."""

from typing import List, Mapping, Optional, Sequence, Tuple

from kbuildguard.arch import same_machine
from kbuildguard.formats.module import Layout, ModuleInfo
from kbuildguard.gates.model import Check, Effect, Gate
from kbuildguard.gates.reference import GENERIC_CAUSE, MAYBE_WRITTEN_BEFORE_RELOCATION, SET_FROM_SECTION, WRITTEN_BEFORE_RELOCATION, ReferenceLayout
from kbuildguard.identity import CompilerId
from kbuildguard.target.kernel import KernelTarget
from kbuildguard.toolchain import MatchLevel, mismatch_reason
from kbuildguard.versions import release_tuple


def _hex(value: Optional[int]) -> str:
    return "absent" if value is None else "0x%x" % value


def layout_effect(target: KernelTarget, size_differs: bool, landed: Sequence[str] = (),
                  also_written: Sequence[str] = (), init_only: bool = False) -> Tuple[Effect, str]:
    """What the target kernel will do with a module whose struct module layout differs; ``landed``:
    the kernel's members where the module's init/exit relocations land (from BTF), when known;
    ``also_written``: members under those writes the loader has (or may have) set for this module;
    ``init_only``: only init's relocation is misplaced (exit sits where the kernel has it, or is absent)."""
    release = release_tuple(target.release.split("-")[0])
    if size_differs and release >= (6, 4):
        return Effect.REJECTED, "this kernel (>= 6.4) rejects it at load: its .gnu.linkonce.this_module size differs"
    written = [m for m in landed if m in WRITTEN_BEFORE_RELOCATION]
    written += [m for m in also_written if m not in written]
    if target.arch == "x86_64" and written:
        return Effect.REJECTED, ("on x86_64 it is rejected at load: a relocation lands on %s, which the loader has "
                                 "(or may have) already set (\"Skipping invalid relocation target, existing value is nonzero\", "
                                 "insmod: Invalid module format)" % ", ".join(written))
    if landed:
        return _landed_effect(target, landed, init_only)
    if target.arch == "x86_64":
        # Without the kernel's struct module members (BTF) kbuildguard cannot tell where init/exit land:
        # on a field the loader has already set (refused, see WRITTEN_BEFORE_RELOCATION; five of Debian's
        # 6.1 drift modules were, in qemu) or on one still zero (loads, never unloads). Judged by the worse.
        return Effect.REJECTED, ("on x86_64 it is rejected at load if its init/exit relocation lands on a field the "
                                 "loader has already set (\"Skipping invalid relocation target, existing value is "
                                 "nonzero\", insmod: Invalid module format), or else loads and cannot be unloaded "
                                 "(rmmod: EBUSY), or worse; which one needs the kernel's BTF (--vmlinux): judged as "
                                 "rejected")
    return Effect.CANNOT_UNLOAD, "it loads, and then cannot be unloaded (rmmod: Device or resource busy), or worse"


def _landed_effect(target: KernelTarget, landed: Sequence[str], init_only: bool) -> Tuple[Effect, str]:
    """init/exit land on members still zero when relocated."""
    if init_only:
        # mod->init stays NULL, so delete_module()'s "init && !exit" does not hold: it loads and unloads
        # (seed 18's v01403 and v01894, seed 23's v00988: init on extable, loaded and removed), its init
        # never runs, and the member it landed on holds init's address: not modelled
        return Effect.NOT_CHECKED, ("it loads with its init never called (its relocation lands on %s, which then holds "
                                    "init's address); what the kernel does with that is not modelled" % ", ".join(landed))
    if target.arch == "x86_64":
        return Effect.CANNOT_UNLOAD, ("it loads (its init/exit land on %s, still zero when relocated), and then "
                                      "cannot be unloaded (rmmod: Device or resource busy), or worse" % ", ".join(landed))
    return Effect.CANNOT_UNLOAD, "it loads, and then cannot be unloaded (rmmod: Device or resource busy), or worse"


def check_compilers(info: ModuleInfo, kernel: CompilerId, level: MatchLevel) -> Check:
    fix = "rebuild it with %s: `kbuildguard make` selects it, `kbuildguard setup` installs it" % kernel.describe()
    if not info.compilers:
        return Check(name=Gate.COMPILER, ok=False, expected=kernel.describe(), found="no compiler entry in .comment",
                     message="the module's .comment names no compiler: cannot prove which compiler built it", fix=fix)
    bad: List[CompilerId] = []
    for cid in info.compilers:
        reason = mismatch_reason(kernel, cid, level)
        if reason is not None and cid.describe() not in [b.describe() for b in bad]:
            bad.append(cid)
    found = "; ".join(sorted({c.describe() for c in info.compilers}))
    if bad:
        return Check(name=Gate.COMPILER, ok=False, expected=kernel.describe(), found=found,
                     message="built (at least in part) by %s; the kernel was built by %s" % (
                         ", ".join(b.describe() for b in bad), kernel.describe()),
                     fix=fix + "; prebuilt objects (*.o_shipped) too")
    return Check(name=Gate.COMPILER, ok=True, expected=kernel.describe(), found=found, message="every .comment entry matches (level %s)" % level)


def check_machine(info: ModuleInfo, target: KernelTarget) -> Check:
    want_endian = target.arch.endian if target.arch else None
    endian = "big-endian" if info.big_endian else "little-endian"
    # elf_validity_check() -> elf_check_arch(): e_machine must be the kernel's own; a machine no table
    # of ours knows is no machine the kernel runs ("Invalid architecture in ELF header: %u", -ENOEXEC)
    known = target.arch is None or info.arch is not None
    ok = known and same_machine(target.arch, info.arch) and (want_endian is None or str(want_endian) == endian)
    expected = "%s %s" % (target.arch or "any", want_endian or "")
    return Check(name=Gate.MACHINE, ok=ok, expected=expected.strip(), found="%s %s" % (info.machine, endian),
                 message="ELF machine matches" if ok else "the module is for %s %s, the kernel is %s" % (info.machine, endian, expected.strip()),
                 fix="" if ok else "build it for %s: kbuild with ARCH= and CROSS_COMPILE= for that architecture, against "
                               "the %s build tree" % (target.arch, target.release),
                 effect=Effect.OK if ok else Effect.REJECTED)


def check_layout(info: ModuleInfo, target: KernelTarget, reference: Optional[ReferenceLayout], not_compared: str,
                 compiler: Check) -> Optional[Check]:
    if info.layout is None:
        return None
    if reference is None:
        return Check(name=Gate.LAYOUT, ok=True, expected="the kernel's struct module", found="not compared", message="layout not compared: %s" % (
            not_compared or "no reference layout"), fix="", effect=Effect.NOT_CHECKED)
    ref, got = reference.layout, info.layout
    differences = []
    if got.size != ref.size:
        differences.append("size 0x%x, kernel expects 0x%x" % (got.size, ref.size))
    if got.init_offset is not None and got.init_offset != ref.init_offset:
        differences.append("init at %s, kernel expects %s" % (_hex(got.init_offset), _hex(ref.init_offset)))
    if got.exit_offset is not None and ref.exit_offset is not None and got.exit_offset != ref.exit_offset:
        differences.append("exit at %s, kernel expects %s" % (_hex(got.exit_offset), _hex(ref.exit_offset)))
    expected = "size 0x%x, init %s, exit %s (%s)" % (ref.size, _hex(ref.init_offset), _hex(ref.exit_offset), reference.source)
    found = "size 0x%x, init %s, exit %s" % (got.size, _hex(got.init_offset), _hex(got.exit_offset))
    if not differences:
        return Check(name=Gate.LAYOUT, ok=True, expected=expected, found=found, message="struct module layout matches the kernel's")
    size_alone = _size_alone(target, differences, compiler, expected, found)
    if size_alone is not None:
        return size_alone
    if not compiler.ok:
        cause = ("cause: built by %s, not the kernel's compiler; compiler features decide #ifdefs inside struct module"
                 % compiler.found)
        fix = compiler.fix
    else:
        cause = reference.cause or GENERIC_CAUSE
        fix = ("rebuild it against a build tree configured exactly like kernel %s (its own kernel-devel / linux-headers "
               "package, or a tree made from /boot/config-%s)" % (target.release, target.release))
    landed = [reference.member_at(off) for off in (got.init_offset, got.exit_offset)
              if off is not None and reference.members and off not in (ref.init_offset, ref.exit_offset)]
    effect, what = layout_effect(target, got.size != ref.size, [m for m in landed if m], _set_before(info, reference, ref),
                                 _exit_in_place(got, ref))
    return Check(name=Gate.LAYOUT, ok=False, expected=expected, found=found, message="struct module layout differs (%s): %s; %s" % (
        "; ".join(differences), what, cause), fix=fix, effect=effect)


def _exit_in_place(got: Layout, ref: Layout) -> bool:
    """exit's relocation where the kernel has it (or no exit): only init can be misplaced."""
    return got.exit_offset is None or got.exit_offset == ref.exit_offset


def _set_before(info: ModuleInfo, reference: ReferenceLayout, ref: Layout) -> List[str]:
    """The kernel's members under the module's misplaced init/exit writes (8 bytes each) that the loader
    sets before apply_relocations() for this module: from a section it has (SET_FROM_SECTION), or
    depending on what kbuildguard does not read (MAYBE_WRITTEN_BEFORE_RELOCATION, judged set)."""
    got = info.layout
    if got is None or not reference.members:
        return []
    shape = info.shape
    out = []
    for off in (got.init_offset, got.exit_offset):
        if off is None or off in (ref.init_offset, ref.exit_offset):
            continue
        for member in reference.members_under(off):
            section = SET_FROM_SECTION.get(member)
            if member in MAYBE_WRITTEN_BEFORE_RELOCATION or (
                    section and (shape is None or shape.numbers_named(section, allocated=section != ".BTF"))):
                out.append(member)
    return out


def _size_alone(target: KernelTarget, differences: List[str], compiler: Check, expected: str, found: str) -> Optional[Check]:
    """Only the size differs: init and exit sit where the kernel's struct module has them. Before 6.4
    the loader never compares the size (6.1 kernel/module/main.c: setup_load_info() takes
    .gnu.linkonce.this_module as it is, layout_and_allocate() places it by its sh_size; the check came
    with 6.4's elf_validity_check()), so no refusal follows from it: a larger section holds the
    kernel's struct whole, a smaller one lets the kernel's last members lie on the next section's
    bytes. Seen in qemu on Debian's 6.1 (docs/differential.md, this_module.size: 31 of 31 such
    variants of seed 18 loaded). Which members the kernel then writes is not modelled: not-checked."""
    only_size = len(differences) == 1 and differences[0].startswith("size ")
    if not only_size or not compiler.ok or release_tuple(target.release.split("-")[0]) >= (6, 4):
        return None
    return Check(name=Gate.LAYOUT, ok=True, expected=expected, found=found,
                 message="not checked: struct module's size differs (%s) while init and exit sit where the kernel "
                 "expects them; kernel %s does not check the size (6.4 does), and what its members past the "
                 "module's section meet is not modelled" % (differences[0], target.release),
                 fix="rebuild it against the kernel's own build tree", effect=Effect.NOT_CHECKED)


def check_unload(info: ModuleInfo, config: Mapping[str, str]) -> Optional[Check]:
    """kernel/module/main.c delete_module() (6.1): "if (mod->init && !mod->exit)" -> -EBUSY unless
    forced, and /proc/modules shows it [permanent]. The module's own relocations into
    .gnu.linkonce.this_module say whether it has init and exit, whatever else was checked."""
    if info.layout is None:
        return None
    expected = "module_exit() beside module_init()"
    if config and config.get("CONFIG_MODULE_UNLOAD") != "y":
        return Check(name=Gate.UNLOAD, ok=True, expected="any", found="-", message="the kernel cannot unload any module (no CONFIG_MODULE_UNLOAD)")
    if info.layout.init_offset is not None and info.layout.exit_offset is None:
        return Check(name=Gate.UNLOAD, ok=True, expected=expected, found="module_init() without module_exit()",
                     message="no module_exit(): the kernel marks it [permanent] and rmmod answers EBUSY (delete_module())",
                     fix="add a module_exit() function if it should unload", effect=Effect.CANNOT_UNLOAD)
    return Check(name=Gate.UNLOAD, ok=True, expected=expected, found="init %s, exit %s" % (
        "present" if info.layout.init_offset is not None else "absent",
        "present" if info.layout.exit_offset is not None else "absent"), message="rmmod can unload it")


def with_compiler_effect(compiler: Check, layout: Optional[Check]) -> Check:
    """The loader never reads .comment: what a foreign compiler does is what the layout says, and
    where the layout could not be compared, the incident's outcome."""
    if compiler.ok:
        return compiler
    if layout is not None and layout.checked and layout.ok:
        return compiler._replace(message=compiler.message + "; the kernel would load it (struct module matches), but other "
                                 "structures follow the compiler's features too: refused")
    if layout is not None and not layout.ok:
        return compiler._replace(effect=layout.effect)
    return compiler._replace(effect=Effect.CANNOT_UNLOAD,
                             message=compiler.message + "; the layout could not be compared: it may load and never unload")


def check_this_module(info: ModuleInfo, present: bool, allocated: bool) -> Check:
    """setup_load_info(): find_sec(".gnu.linkonce.this_module") -- allocated sections only."""
    if present and allocated and info.this_module_oddity:
        return Check(name=Gate.THIS_MODULE, ok=True, expected="struct module as modpost writes it", found="another",
                     message="not checked: %s: the kernel overwrites most such fields before use and uses some as it "
                     "finds them (an oops); kbuildguard does not model which" % info.this_module_oddity,
                     fix="rebuild it with kbuild; do not edit the object", effect=Effect.NOT_CHECKED)
    if present and allocated:
        return Check(name=Gate.THIS_MODULE, ok=True, expected=".gnu.linkonce.this_module present", found="present",
                     message="struct module section present")
    why = ("no .gnu.linkonce.this_module" if not present else
           ".gnu.linkonce.this_module is not SHF_ALLOC, so find_sec() does not see it")
    return Check(name=Gate.THIS_MODULE, ok=False, expected=".gnu.linkonce.this_module present", found="absent" if not present else "not allocated",
                 message="%s: not a loadable module (\"%s: No module found in object\")" % (why, info.name),
                 fix="build it as a module with kbuild (obj-m), not as a plain object", effect=Effect.REJECTED)
