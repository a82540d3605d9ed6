"""The verdict on a module: does everything in it match the target kernel?

Why it matters, for the messages: the kernel decides some #ifdefs from the compiler's features
(asm goto -> CONFIG_JUMP_LABEL, ...), and those change ``struct module``. A module built by another
compiler, or against a build tree configured differently, can put ``exit`` where the kernel does not
look. kernel/module/main.c: delete_module() returns -EBUSY when ``mod->init && !mod->exit``, so
such a module loads and then cannot be unloaded; v6.4+ rejects a differently sized
.gnu.linkonce.this_module, x86_64 refuses some relocations, but a shift hidden by padding passes both.
"""

import hashlib
import json
import os
import sys
from typing import Callable, FrozenSet, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import bounded
from kbuildguard.arch import same_machine
from kbuildguard.errors import BadInput
from kbuildguard.formats.elf import Needed
from kbuildguard.formats.module import Layout, ModuleInfo, find_modules, module_name, read_module, read_raw_shape
from kbuildguard.formats.symvers import complete_exports
from kbuildguard.gates import decompress, elfcheck, loader, relocations, signature
from kbuildguard.gates.loader import LoaderFacts
from kbuildguard.gates.model import Check, Effect, Gate, effect_words, worst
from kbuildguard.identity import CompilerId
from kbuildguard.probecache import cache_home
from kbuildguard.strenum import StrEnum
from kbuildguard.target.drift import Drift
from kbuildguard.target.kernel import KernelTarget
from kbuildguard.toolchain import MatchLevel, mismatch_reason
from kbuildguard.versions import release_tuple

WHY = ("a module built by another compiler can see a different struct module layout than the kernel: "
       "it may be refused at load, or load and then never unload (rmmod: Device or resource busy)")
WHY_SENTENCE = WHY[0].upper() + WHY[1:] + "."
LAYOUT_SENTENCE = ("The module's struct module differs from the kernel's although its compiler matches: it was built "
                   "against another configuration or build tree than the kernel's own.")


class Verdict(StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"
    ERROR = "error"



# The gates whose failure means "another compiler or configuration": they get the WHY explanation.
STRUCT_MODULE_GATES = frozenset({Gate.COMPILER, Gate.LAYOUT})


class Expectation(NamedTuple):
    """What every module of one run is held to: the kernel, the match level, and its layout if known."""

    target: KernelTarget
    level: MatchLevel
    reference: Optional["ReferenceLayout"]
    not_compared: str = ""  # why there is no reference layout
    loader: Optional[LoaderFacts] = None  # the kernel's side of the other gates (loader.gather)
    sign_later: bool = False  # make without --sign: signing is packaging's step, an unsigned module is not refused


def fix_hint(failed: Sequence[Check]) -> str:
    """The hint for refused modules: each failing check's own fix, once, in order; the "another
    compiler" explanation only when the compiler or the layout is what failed."""
    fixes: List[str] = []
    for c in failed:
        if c.fix and c.fix not in fixes:
            fixes.append(c.fix)
    names = {c.name for c in failed}
    # the "another compiler" sentence only when the compiler is what differs: a layout mismatch
    # under the kernel's own compiler is the configuration's or the tree's doing (issue 22)
    why = WHY_SENTENCE + " " if Gate.COMPILER in names else LAYOUT_SENTENCE + " " if Gate.LAYOUT in names else ""
    return "%sFix: %s" % (why, "; ".join(fixes))


class ReferenceLayout(NamedTuple):
    layout: Layout
    source: str
    cause: str = ""  # what a differing module most likely went through (drift between tree and kernel)
    members: Tuple[Tuple[str, int], ...] = ()  # the kernel's struct module members and byte offsets (BTF only)

    def member_at(self, offset: int) -> str:
        """The kernel's member that holds byte ``offset`` ("" when unknown)."""
        found = ""
        for name, start in self.members:
            if start <= offset:
                found = name
        return found


# Members of struct module the loader has written (non-zero) before apply_relocations() in 6.1's
# load_module(): add_unformed_module (state, list), module_unload_init (source_list, target_list,
# refcnt), init_param_lock (param_lock), layout_and_allocate/move_module (core_layout, init_layout,
# mem in 6.4+). x86_64's apply_relocate_add() refuses a relocation whose target is not zero ("Skipping
# invalid relocation target, existing value is nonzero"), so a module whose init or exit lands on one
# of them is rejected at load; elsewhere it loads (and cannot be unloaded). Seen in qemu on Debian's
# 6.1: exit on target_list is refused, exit on static_call_sites loads and never unloads.
WRITTEN_BEFORE_RELOCATION = frozenset({"state", "list", "source_list", "target_list", "refcnt", "param_lock",
                                       "core_layout", "init_layout", "mem", "name"})


class ModuleReport(NamedTuple):
    path: str
    verdict: Verdict
    checks: Tuple[Check, ...]
    info: Optional[ModuleInfo]

    def failed(self) -> List[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def effect(self) -> Effect:
        """What the kernel will do with the module: the worst of its checks' effects."""
        if self.verdict is Verdict.ERROR:
            return Effect.NOT_CHECKED
        return worst(c.effect for c in self.checks)


def _cache_file(path: str) -> Optional[str]:
    """Where the layout read from a kernel image is remembered: decompressing a vmlinuz takes ~0.5 s."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = hashlib.sha256(("%s|%d|%d" % (os.path.abspath(path), st.st_size, int(st.st_mtime))).encode()).hexdigest()[:24]
    return os.path.join(cache_home(os.environ), "layout-%s.json" % key)


def _btf_reference(path: str, what: str) -> Optional[ReferenceLayout]:
    from kbuildguard.formats.btf import module_layout_from_file

    source = "%s BTF (%s)" % (what, path)
    cache = _cache_file(path) if not path.startswith("/sys/") else None
    if cache:
        try:
            size, init, exit_, members = json.loads(bounded.read_text(cache, bounded.STATE))
            return ReferenceLayout(Layout(size, init, exit_), source, members=tuple((str(n), int(o)) for n, o in members))
        except (OSError, ValueError, TypeError, BadInput):
            pass
    found = module_layout_from_file(path)
    if found is None:
        return None
    layout = Layout(found.size, found.members.get("init"), found.members.get("exit"))
    members = tuple(sorted(found.members.items(), key=lambda m: m[1]))
    if cache:
        try:  # a cache that cannot be written is no error
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            with open(cache, "w", encoding="utf-8") as f:
                json.dump(list(layout) + [members], f)
        except OSError:
            pass
    return ReferenceLayout(layout, source, members=members)


GENERIC_CAUSE = ("likely cause: a compiler with other features (they decide #ifdefs inside struct module), or a build "
                 "tree configured differently from the kernel (kbuildguard make compares the two before building)")


def with_cause(found: ReferenceLayout, drift: Optional[Drift]) -> ReferenceLayout:
    """Attach what a differing module most likely went through, from the drift computed before building."""
    if drift is not None and drift.abi:
        return found._replace(cause="likely cause: the build tree differs from the kernel's configuration (%s): %s" % (
            drift.kernel_config, drift.describe()))
    return found._replace(cause=GENERIC_CAUSE)


def find_reference(target: KernelTarget, vmlinux: Optional[str] = None, limit: int = 50) -> Tuple[Optional[ReferenceLayout], str]:
    """The kernel's own struct module layout, from the best source available (first wins), or why there is none:

    1. ``--vmlinux FILE``: raw BTF, a vmlinux, or a compressed vmlinuz
    2. the running kernel's /sys/kernel/btf/vmlinux (only when the target is the running kernel)
    3. the target's /boot/vmlinuz-R (under the sysroot): its vmlinux's .BTF section
    4. a module the kernel shipped (/lib/modules/R/kernel): its .gnu.linkonce.this_module and relocations

    None when none is there (a headers-only machine for a kernel it does not run).
    """
    if vmlinux:
        found = _btf_reference(vmlinux, "the given kernel image's")
        return found, "" if found else "%s has no struct module in its BTF" % vmlinux
    found = _image_reference(target) or _in_tree_reference(target, limit)
    if found is not None:
        return found, ""
    root = target.sysroot if target.sysroot != "/" else ""
    return None, ("no reference for kernel %s: %sno %s/boot/vmlinuz-%s, no in-tree modules under %s/lib/modules/%s/kernel; "
                  "give the kernel image with --vmlinux" % (
                      target.release, "" if target.running else "not the running kernel, ", root, target.release,
                      root, target.release))


def _image_reference(target: KernelTarget) -> Optional[ReferenceLayout]:
    """From BTF: the running kernel's own, else the target's /boot/vmlinuz-R (under the sysroot), else
    the vmlinux of the tree it was built in."""
    root = target.sysroot if target.sysroot != "/" else ""
    images = [("/sys/kernel/btf/vmlinux", "the running kernel's")] if target.running else []
    images += [(os.path.join(root + "/boot", name % target.release), "the kernel image's")
               for name in ("vmlinuz-%s", "vmlinux-%s")]
    if target.build_dir:  # a tree the kernel was built in (not a headers package) holds the kernel itself
        images.append((os.path.join(target.build_dir, "vmlinux"), "the build tree's vmlinux"))
    for path, what in images:
        if os.path.isfile(path):
            try:
                found = _btf_reference(path, what)
            except BadInput:
                continue
            if found:
                return found
    return None


def _in_tree_reference(target: KernelTarget, limit: int) -> Optional[ReferenceLayout]:
    """From a module the kernel shipped: its .gnu.linkonce.this_module and relocations."""
    if not target.modules_dir or not os.path.isdir(os.path.join(target.modules_dir, "kernel")):
        return None
    for tried, path in enumerate(find_modules([os.path.join(target.modules_dir, "kernel")])):
        if tried >= limit:
            break
        try:
            info = read_module(path)
        except BadInput:
            continue
        if info.layout and info.layout.init_offset is not None and info.layout.exit_offset is not None:
            return ReferenceLayout(info.layout, "in-tree module %s" % os.path.relpath(path, target.modules_dir))
    return None


def _hex(value: Optional[int]) -> str:
    return "absent" if value is None else "0x%x" % value


def layout_effect(target: KernelTarget, size_differs: bool, landed: Sequence[str] = ()) -> Tuple[Effect, str]:
    """What the target kernel will do with a module whose struct module layout differs; ``landed``:
    the kernel's members where the module's init/exit relocations land (from BTF), when known."""
    release = release_tuple(target.release.split("-")[0])
    if size_differs and release >= (6, 4):
        return Effect.REJECTED, "this kernel (>= 6.4) rejects it at load: its .gnu.linkonce.this_module size differs"
    written = [m for m in landed if m in WRITTEN_BEFORE_RELOCATION]
    if target.arch == "x86_64" and written:
        return Effect.REJECTED, ("on x86_64 it is rejected at load: a relocation lands on %s, which the loader has "
                                 "already set (\"Skipping invalid relocation target, existing value is nonzero\", "
                                 "insmod: Invalid module format)" % ", ".join(written))
    if target.arch == "x86_64" and landed:
        return Effect.CANNOT_UNLOAD, ("it loads (its init/exit land on %s, still zero when relocated), and then "
                                      "cannot be unloaded (rmmod: Device or resource busy), or worse" % ", ".join(landed))
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


def check_compilers(info: ModuleInfo, kernel: CompilerId, level: MatchLevel) -> Check:
    fix = "rebuild it with %s: `kbuildguard make` selects it, `kbuildguard setup` installs it" % kernel.describe()
    if not info.compilers:
        return Check(Gate.COMPILER, False, kernel.describe(), "no compiler entry in .comment",
                     "the module's .comment names no compiler: cannot prove which compiler built it", fix)
    bad: List[CompilerId] = []
    for cid in info.compilers:
        reason = mismatch_reason(kernel, cid, level)
        if reason is not None and cid.describe() not in [b.describe() for b in bad]:
            bad.append(cid)
    found = "; ".join(sorted({c.describe() for c in info.compilers}))
    if bad:
        return Check(Gate.COMPILER, False, kernel.describe(), found,
                     "built (at least in part) by %s; the kernel was built by %s" % (
                         ", ".join(b.describe() for b in bad), kernel.describe()),
                     fix + "; prebuilt objects (*.o_shipped) too")
    return Check(Gate.COMPILER, True, kernel.describe(), found, "every .comment entry matches (level %s)" % level)


def check_machine(info: ModuleInfo, target: KernelTarget) -> Check:
    want_endian = target.arch.endian if target.arch else None
    endian = "big-endian" if info.big_endian else "little-endian"
    ok = same_machine(target.arch, info.arch) and (want_endian is None or str(want_endian) == endian)
    expected = "%s %s" % (target.arch or "any", want_endian or "")
    return Check(Gate.MACHINE, ok, expected.strip(), "%s %s" % (info.machine, endian),
                 "ELF machine matches" if ok else "the module is for %s %s, the kernel is %s" % (info.machine, endian, expected.strip()),
                 "" if ok else "build it for %s: kbuild with ARCH= and CROSS_COMPILE= for that architecture, against "
                               "the %s build tree" % (target.arch, target.release),
                 Effect.OK if ok else Effect.REJECTED)


def check_layout(info: ModuleInfo, target: KernelTarget, reference: Optional[ReferenceLayout], not_compared: str,
                 compiler: Check) -> Optional[Check]:
    if info.layout is None:
        return None
    if reference is None:
        return Check(Gate.LAYOUT, True, "the kernel's struct module", "not compared", "layout not compared: %s" % (
            not_compared or "no reference layout"), "", Effect.NOT_CHECKED)
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
        return Check(Gate.LAYOUT, True, expected, found, "struct module layout matches the kernel's")
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
    effect, what = layout_effect(target, got.size != ref.size, [m for m in landed if m])
    return Check(Gate.LAYOUT, False, expected, found, "struct module layout differs (%s): %s; %s" % (
        "; ".join(differences), what, cause), fix, effect)


def check_unload(info: ModuleInfo, config: Mapping[str, str]) -> Optional[Check]:
    """kernel/module/main.c delete_module() (6.1): "if (mod->init && !mod->exit)" -> -EBUSY unless
    forced, and /proc/modules shows it [permanent]. The module's own relocations into
    .gnu.linkonce.this_module say whether it has init and exit, whatever else was checked."""
    if info.layout is None:
        return None
    expected = "module_exit() beside module_init()"
    if config and config.get("CONFIG_MODULE_UNLOAD") != "y":
        return Check(Gate.UNLOAD, True, "any", "-", "the kernel cannot unload any module (no CONFIG_MODULE_UNLOAD)")
    if info.layout.init_offset is not None and info.layout.exit_offset is None:
        return Check(Gate.UNLOAD, True, expected, "module_init() without module_exit()",
                     "no module_exit(): the kernel marks it [permanent] and rmmod answers EBUSY (delete_module())",
                     "add a module_exit() function if it should unload", Effect.CANNOT_UNLOAD)
    return Check(Gate.UNLOAD, True, expected, "init %s, exit %s" % (
        "present" if info.layout.init_offset is not None else "absent",
        "present" if info.layout.exit_offset is not None else "absent"), "rmmod can unload it")


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
    if present and allocated:
        return Check(Gate.THIS_MODULE, True, ".gnu.linkonce.this_module present", "present", "struct module section present")
    why = ("no .gnu.linkonce.this_module" if not present else
           ".gnu.linkonce.this_module is not SHF_ALLOC, so find_sec() does not see it")
    return Check(Gate.THIS_MODULE, False, ".gnu.linkonce.this_module present", "absent" if not present else "not allocated",
                 "%s: not a loadable module (\"%s: No module found in object\")" % (why, info.name),
                 "build it as a module with kbuild (obj-m), not as a plain object", Effect.REJECTED)


def verify_info(info: ModuleInfo, expect: Expectation, siblings: FrozenSet[str] = frozenset()) -> ModuleReport:
    """Every gate, in the loader's order; the verdict is kbuildguard's (refuse any failed gate), the
    effect what the kernel will do."""
    target = expect.target
    facts = expect.loader or loader.bare(target)
    has_this = info.layout is not None
    compiler = check_compilers(info, target.compiler, expect.level)
    layout = check_layout(info, target, expect.reference, expect.not_compared, compiler)
    this_alloc = info.shape is None or info.shape.find_sec(".gnu.linkonce.this_module") is not None
    found: List[Optional[Check]] = [decompress.check(info, facts.config, target.release, facts.kmod),
              signature.check(info.signature, facts.signing, expect.sign_later),
              elfcheck.check(info, target.release, target.arch),
              check_machine(info, target),
              check_this_module(info, has_this, this_alloc), layout,
              loader.check_vermagic(info, facts, target.release), loader.check_symbol_versions(info, facts, target.release),
              loader.check_symbols(info, facts, siblings), loader.check_license(info, facts),
              relocations.check(info, target.arch), loader.check_btf(info, facts),
              check_unload(info, facts.config or target.tree_config), with_compiler_effect(compiler, layout)]
    checks = [c for c in found if c is not None]
    verdict = Verdict.OK if all(c.ok for c in checks) else Verdict.MISMATCH
    return ModuleReport(info.path, verdict, tuple(checks), info)


def headline(rep: ModuleReport) -> str:
    """The one line a user needs about a module: what the kernel will do, why, and the fix.

    "ok" leads only when every gate that can refuse was checked; any gate not checked is named
    ("not fully checked: symbols, btf"), whatever else the module does."""
    if rep.verdict is Verdict.ERROR:
        return "cannot be checked: %s" % rep.checks[0].message
    effect = rep.effect
    unchecked = [str(c.name) for c in rep.checks if c.effect is Effect.NOT_CHECKED]
    note = "not fully checked: %s" % ", ".join(unchecked) if unchecked else ""
    if rep.verdict is Verdict.OK and effect is Effect.OK:
        return "ok"
    # the gate that decides: the first (loader order) with the worst effect; refused gates first
    deciding = [c for c in rep.checks if not c.ok and c.effect is effect] or [c for c in rep.checks if not c.ok] or \
               [c for c in rep.checks if c.effect is effect]
    c = deciding[0]
    if effect is Effect.NOT_CHECKED:
        text = "%s (%s)" % (note, c.message)
        if rep.verdict is Verdict.OK:
            return text
        return "refused, and %s%s" % (text, ": " + c.fix if c.fix else "")
    what = "%s: %s" % (effect_words(effect), c.message) if effect is not Effect.OK else "refused: %s" % c.message
    if rep.verdict is Verdict.OK:
        return "%s; %s" % (what, note) if note else "ok, but %s" % what
    return "%s%s%s" % (what, ": " + c.fix if c.fix else "", "; " + note if note else "")


def with_confirmed_signatures(reports: List[ModuleReport], confirm: Callable[[ModuleInfo, Check], Check]) -> List[ModuleReport]:
    """The signature gate once more, with what only a program can tell (openssl: does the signature
    verify?); run in the caller's process, after the pure gates, which may run in worker processes."""
    out = []
    for rep in reports:
        if rep.info is not None and rep.info.signature is not None:
            checks = tuple(confirm(rep.info, c) if c.name is Gate.SIGNATURE else c for c in rep.checks)
            if checks != rep.checks:
                rep = rep._replace(checks=checks, verdict=Verdict.OK if all(c.ok for c in checks) else Verdict.MISMATCH)
        out.append(rep)
    return out


def verify_path(path: str, expect: Expectation) -> ModuleReport:
    try:
        info = read_module(path)
    except BadInput as exc:
        # an ELF file kbuildguard cannot read, the kernel may refuse by its own checks: say so when it
        # does (a file that is not ELF at all, or shorter than its header, stays unreadable input)
        shape = read_raw_shape(path)
        target = expect.target
        refused = (elfcheck.check_shape(shape, target.release, target.arch, module_name(path))
                   if shape is not None and shape.magic and shape.header_complete else None)
        if refused is not None and refused.effect is Effect.REJECTED:
            return ModuleReport(path, Verdict.MISMATCH, (refused,), None)
        return ModuleReport(path, Verdict.ERROR, (Check(Gate.READ, False, "a readable kernel module", "unreadable", exc.message,
                                                        "give the .ko itself (plain, .xz, .gz, .zst or .bz2)",
                                                        Effect.NOT_CHECKED),), None)
    return verify_info(info, expect)


# Below this many modules a worker pool costs more than it saves.
PARALLEL_THRESHOLD = 256


def _verify_chunk(job: Tuple[Sequence[str], Expectation]) -> List[ModuleReport]:
    paths, expect = job
    return [verify_path(p, expect) for p in paths]


def _lean(report: ModuleReport, keep_signature: bool) -> ModuleReport:
    """What a worker sends back for a module that passed its symbols gate: what the parent still
    reads (exports, for siblings; layout; the signature only when a certificate may verify it). The
    rest -- symbol columns, .modinfo with its aliases -- was half of 13 MB pickled for a kernel."""
    info = report.info
    if info is None or any(c.name is Gate.SYMBOLS and not c.ok for c in report.checks):
        return report
    return report._replace(info=info._replace(needed=Needed((), (), ()), version_names=(), version_crcs=(), comment=(),
                                              modinfo=(), signature=info.signature if keep_signature else None,
                                              shape=None, relocations=None))


# The Expectation the forked workers inherit. Sent with each task it was pickled once per chunk
# (the kernel's 25,000 exports each time), which made the pool slower than one process. Set only
# by _verify_all around the pool's life; a forked worker reads its copy.
_INHERITED: List[Expectation] = []


def _verify_chunk_lean(paths: Sequence[str]) -> List[ModuleReport]:
    expect = _INHERITED[0]
    trust = expect.loader.signing.trust if expect.loader is not None else None
    keep = trust is not None and bool(trust.certs or trust.known)
    return [_lean(r, keep) for r in _verify_chunk((paths, expect))]


def with_siblings(reports: List[ModuleReport], expect: Expectation) -> List[ModuleReport]:
    """Modules checked together may use each other's exports (modprobe loads the exporter first):
    check the symbols again of a module that needs what a sibling exports."""
    exported = frozenset(name for r in reports if r.info is not None for name in r.info.exports)
    if not exported:
        return reports
    out = []
    for rep in reports:
        if rep.info is not None and any(c.name is Gate.SYMBOLS and not c.ok for c in rep.checks):
            rep = verify_info(rep.info, expect, exported)
        out.append(rep)
    return out


def verify_paths(paths: Sequence[str], expect: Expectation, workers: Optional[int] = None) -> List[ModuleReport]:
    """Verify many modules; a whole kernel's worth (4000 .ko) is spread over the CPUs."""
    return with_siblings(_verify_all(paths, expect, workers), expect)


def _worker_signals() -> None:
    """A worker dies quietly on the SIGTERM of Pool.terminate() and leaves Ctrl-C to the parent (it
    inherited the parent's handlers, which unwind with a traceback in a worker)."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _verify_all(paths: Sequence[str], expect: Expectation, workers: Optional[int]) -> List[ModuleReport]:
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if len(paths) >= PARALLEL_THRESHOLD and expect.loader is not None:  # made once here, shared by forked workers
        expect = expect._replace(loader=expect.loader._replace(exports=complete_exports(expect.loader.exports)))
    if workers < 2 or len(paths) < PARALLEL_THRESHOLD:
        return _verify_chunk((paths, expect))
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    size = max(64, len(paths) // (workers * 4))
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    # ProcessPoolExecutor, not multiprocessing.Pool: a worker that dies (OOM killer, a signal while it
    # holds the task queue's lock) hangs Pool.map for ever, where the executor says BrokenProcessPool.
    # fork: the workers need nothing but these records (Python 3.14 defaults to forkserver); the
    # executor takes a context and an initializer from Python 3.7 (3.6 forks by default on Linux).
    _INHERITED[:] = [expect]
    try:
        if sys.version_info >= (3, 7):
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_worker_signals)
        else:  # pragma: no cover - Python 3.6
            pool = ProcessPoolExecutor(workers)
        with pool:
            results = list(pool.map(_verify_chunk_lean, chunks))
    except (OSError, BrokenProcessPool):  # no fork here (seccomp, limits), or a worker died: do it here
        return _verify_chunk((paths, expect))
    finally:
        _INHERITED[:] = []
    return [report for chunk in results for report in chunk]
