"""The verdict on a module: does everything in it match the target kernel? One module's report
(verify_info, verify_path), its headline and the fix to print. The reference layout is reference.py's,
the layout, machine, this_module, unload and compiler gates layout.py's, many modules at once pool.py's.

Why it matters, for the messages: the kernel decides some #ifdefs from the compiler's features
(asm goto -> CONFIG_JUMP_LABEL, ...), and those change ``struct module``. A module built by another
compiler, or against a build tree configured differently, can put ``exit`` where the kernel does not
look. kernel/module/main.c: delete_module() returns -EBUSY when ``mod->init && !mod->exit``, so
such a module loads and then cannot be unloaded; v6.4+ rejects a differently sized
.gnu.linkonce.this_module, x86_64 refuses some relocations, but a shift hidden by padding passes both.
"""

import re
from typing import Callable, FrozenSet, List, NamedTuple, Optional, Sequence, Tuple

from kbuildguard.errors import BadInput
from kbuildguard.formats.module import ModuleInfo, module_name, read_module, read_raw_shape
from kbuildguard.gates import builtin, decompress, elfcheck, loader, relocations, signature
from kbuildguard.gates.layout import check_compilers, check_layout, check_machine, check_this_module, check_unload, with_compiler_effect
from kbuildguard.gates.loader import LoaderFacts
from kbuildguard.gates.model import Check, Effect, Gate, effect_words, worst
from kbuildguard.gates.reference import ReferenceLayout
from kbuildguard.strenum import StrEnum
from kbuildguard.target.kernel import KernelTarget
from kbuildguard.toolchain import MatchLevel

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
              relocations.check(info, target.arch), loader.check_btf(info, facts), builtin.check(info, facts.builtin_names),
              check_unload(info, facts.config or target.tree_config), with_compiler_effect(compiler, layout)]
    checks = [c for c in found if c is not None]
    verdict = Verdict.OK if all(c.ok for c in checks) else Verdict.MISMATCH
    return ModuleReport(path=info.path, verdict=verdict, checks=tuple(checks), info=info)


# The letter each gate's taint shows in /proc/sys/kernel/tainted and "Tainted:" lines (kernel/panic.c
# taint_flags): module_sig_check() TAINT_UNSIGNED_MODULE (E); try_to_force_load() TAINT_FORCED_MODULE
# (F: no vermagic, no __versions); set_license() TAINT_PROPRIETARY_MODULE (P). check_modinfo()'s
# staging=Y (C) and livepatch=Y (K) share the licence gate: its message names them, read below.
TAINT_LETTERS = {Gate.SIGNATURE: "E", Gate.VERMAGIC: "F", Gate.SYMBOL_VERSIONS: "F", Gate.LICENSE: "P"}
_LETTERS_SAID = re.compile(r"taints itself \(([A-Z](?:, [A-Z])*)\)")


def taint_letters(checks: Sequence[Check]) -> List[str]:
    """Every taint letter the checks that taint will set, in the loader's order, each once."""
    letters: List[str] = []
    for c in checks:
        if c.effect is not Effect.TAINTS:
            continue
        said = _LETTERS_SAID.search(c.message)
        for letter in said.group(1).split(", ") if said else [TAINT_LETTERS.get(c.name, "?")]:
            if letter not in letters:
                letters.append(letter)
    return letters


def _besides(rep: ModuleReport) -> str:
    """What the checked gates say about a module that loads: every taint (each gate's reason) and a
    missing unload, "" when none. All of them: naming only the first hides the others (issue 18)."""
    tainting = [c for c in rep.checks if c.effect is Effect.TAINTS]
    stuck = [c for c in rep.checks if c.effect is Effect.CANNOT_UNLOAD]
    parts = []
    if tainting:
        parts.append("taint the kernel (%s): %s" % (", ".join(taint_letters(tainting)),
                                                    "; ".join("%s: %s" % (c.name, c.message) for c in tainting)))
    if stuck:
        parts.append("never unload: %s" % "; ".join(c.message for c in stuck))
    return " and ".join(parts)


def _unchecked_note(rep: ModuleReport) -> str:
    unchecked = [str(c.name) for c in rep.checks if c.effect is Effect.NOT_CHECKED]
    return "not fully checked: %s" % ", ".join(unchecked) if unchecked else ""


def _deciding(rep: ModuleReport, effect: Effect) -> Check:
    """The gate that decides: the first (loader order) with the worst effect; refused gates first."""
    deciding = [c for c in rep.checks if not c.ok and c.effect is effect] or [c for c in rep.checks if not c.ok] or \
        [c for c in rep.checks if c.effect is effect]
    return deciding[0]


def _not_checked_headline(rep: ModuleReport, c: Check) -> str:
    text = "%s (%s)" % (_unchecked_note(rep), c.message)
    # what the checked gates say besides: an unchecked gate may still refuse it, so this is no promise
    # that it loads, but where it loads it taints or never unloads (and the user should know)
    besides = _besides(rep)
    if besides:
        text += "; if it loads, it will %s" % besides
    if rep.verdict is Verdict.OK:
        return text
    return "refused, and %s%s" % (text, ": " + c.fix if c.fix else "")


def _loads_headline(rep: ModuleReport) -> str:
    """A module kbuildguard lets through that loads: ok, or ok but it taints / never unloads."""
    return "ok, but will load and %s" % _besides(rep)  # taints and cannot-unload rank below not-checked


def headline(rep: ModuleReport) -> str:
    """The one line a user needs about a module: what the kernel will do, why, and the fix.

    "ok" leads only when every gate that can refuse was checked; any gate not checked is named
    ("not fully checked: symbols, btf"), whatever else the module does; every taint is named."""
    if rep.verdict is Verdict.ERROR:
        return "cannot be checked: %s" % rep.checks[0].message
    effect = rep.effect
    if rep.verdict is Verdict.OK and effect is Effect.OK:
        return "ok"
    c = _deciding(rep, effect)
    if effect is Effect.NOT_CHECKED:
        return _not_checked_headline(rep, c)
    if rep.verdict is Verdict.OK and effect in (Effect.TAINTS, Effect.CANNOT_UNLOAD):
        return _loads_headline(rep)
    note = _unchecked_note(rep)
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
            return ModuleReport(path=path, verdict=Verdict.MISMATCH, checks=(refused,), info=None)
        unreadable = Check(name=Gate.READ, ok=False, expected="a readable kernel module", found="unreadable",
                           message=exc.message, fix="give the .ko itself (plain, .xz, .gz, .zst or .bz2)",
                           effect=Effect.NOT_CHECKED)
        return ModuleReport(path=path, verdict=Verdict.ERROR, checks=(unreadable,), info=None)
    return verify_info(info, expect)
