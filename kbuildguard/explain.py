"""``kbuildguard explain MODULE``: why a loaded module will not unload, in terms of delete_module();
``kbuildguard explain MODULE.ko`` / ``--dmesg FILE``: why a module would not load (at the end).

kernel/module/main.c (6.1), SYSCALL_DEFINE2(delete_module):
  1. other modules use it (mod->source_list not empty)        -> -EWOULDBLOCK  "in use by ..."
  2. mod->state != MODULE_STATE_LIVE (loading or going)       -> -EBUSY
  3. mod->init && !mod->exit, and no forced unload            -> -EBUSY        /proc/modules: [permanent]
  4. try_stop_module(): reference count not zero              -> -EWOULDBLOCK  "in use"
Branch 3 is the original incident: the module *has* an exit function, but it was built against a
different struct module layout, so the kernel reads `exit` where the module did not put it.
Without CONFIG_MODULE_UNLOAD there is no unloading at all.
"""

import os
import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import drift, kconfig, kernel, loadlog
from kbuildguard.errors import BadInput, KbgError, UsageError
from kbuildguard.gates import Effect, Gate, worst
from kbuildguard.kernel import KernelTarget
from kbuildguard.loadlog import Hit
from kbuildguard.toolchain import MatchLevel
from kbuildguard.verify import STRUCT_MODULE_GATES, Check, Expectation, find_reference, verify_path


class LoadedModule(NamedTuple):
    name: str
    size: int
    refcnt: Optional[int]
    users: Tuple[str, ...]
    permanent: bool
    state: str  # Live, Loading, Unloading
    initstate: str
    taint: str


class Finding(NamedTuple):
    branch: str  # the delete_module() branch that answers
    errno: str
    text: str


def read_loaded(root: str, name: str) -> Optional[LoadedModule]:
    """The module's line in /proc/modules and its /sys/module entries (under ``root``)."""
    name = name.replace("-", "_")
    try:
        with open(os.path.join(root, "proc/modules"), encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise BadInput("cannot read %s: %s" % (os.path.join(root, "proc/modules"), exc.strerror or exc))
    for line in lines:
        fields = line.split()
        if len(fields) < 5 or fields[0] != name:
            continue
        deps = fields[3]
        users = tuple(d for d in deps.strip(",").split(",") if d and d not in ("-", "[permanent]", "[unsafe]"))
        sysdir = os.path.join(root, "sys/module", name)
        refcnt = _attr(sysdir, "refcnt")
        holders = tuple(sorted(os.listdir(os.path.join(sysdir, "holders")))) if os.path.isdir(os.path.join(sysdir, "holders")) else ()
        return LoadedModule(name, int(fields[1]) if fields[1].isdigit() else 0,
                            int(refcnt) if refcnt.lstrip("-").isdigit() else (int(fields[2]) if fields[2].isdigit() else None),
                            tuple(sorted(set(users) | set(holders))), "[permanent]" in deps, fields[4],
                            _attr(sysdir, "initstate"), _attr(sysdir, "taint"))
    return None


def _attr(sysdir: str, rel: str) -> str:
    try:
        with open(os.path.join(sysdir, rel), encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def find_ko(root: str, release: str, name: str) -> Optional[str]:
    """The module's file, through modules.dep of the release (under ``root``)."""
    base = os.path.join(root, "lib/modules", release)
    try:
        with open(os.path.join(base, "modules.dep"), encoding="utf-8", errors="replace") as f:
            for line in f:
                path = line.split(":", 1)[0]
                stem = os.path.basename(path).split(".ko")[0].replace("-", "_")
                if stem == name:
                    return os.path.join(base, path) if not os.path.isabs(path) else os.path.join(root, path.lstrip("/"))
    except OSError:
        return None
    return None


def diagnose(mod: LoadedModule, module_unload: Optional[bool], force_unload: Optional[bool],
             ko_has_exit: Optional[bool], layout_problem: Optional[str]) -> List[Finding]:
    """Every delete_module() branch that stops this module, first branch first."""
    out: List[Finding] = []
    if module_unload is False:
        return [Finding("CONFIG_MODULE_UNLOAD", "ENOSYS", "this kernel is built without CONFIG_MODULE_UNLOAD: no module can be unloaded")]
    if mod.users:
        out.append(Finding("source_list", "EWOULDBLOCK", "in use by %s: unload them first (rmmod %s)" % (
            ", ".join(mod.users), " ".join(mod.users))))
    if mod.state != "Live":
        out.append(Finding("state", "EBUSY", "state is %s, not Live: it is still initialising or already going away" % mod.state))
    if mod.permanent:
        if ko_has_exit is False:
            why = "the module has no module_exit(): it was written to stay loaded"
        elif layout_problem:
            why = ("its .ko does have an exit function, but %s: the kernel reads `exit` where the module did not put it "
                   "(the original incident: a module built by another compiler or against another configuration)" % layout_problem)
        elif ko_has_exit:
            why = ("its .ko has an exit function, yet the kernel sees none: the loaded module does not match the file "
                   "(rebuilt since loading?) or was built against another struct module layout")
        else:
            why = "the kernel sees an init function but no exit function"
        force = ("; `rmmod -f` would force it (CONFIG_MODULE_FORCE_UNLOAD=y here) and taints the kernel"
                 if force_unload else "; CONFIG_MODULE_FORCE_UNLOAD is not set, so not even `rmmod -f` can" if force_unload is False else "")
        out.append(Finding("init && !exit", "EBUSY", "/proc/modules shows [permanent]: " + why + force))
    if mod.refcnt and not mod.users:
        out.append(Finding("try_stop_module", "EWOULDBLOCK", "reference count is %d: something holds it open "
                           "(a device node, a socket, a filesystem mount)" % mod.refcnt))
    return out


class Explanation(NamedTuple):
    module: LoadedModule
    ko: Optional[str]
    findings: Tuple[Finding, ...]
    checks: Optional[Tuple[Check, ...]]
    not_seen: Tuple[str, ...]  # what could not be looked at, said plainly


def loaded_release(root: str, given: Optional[str]) -> str:
    """The release of the kernel the module is loaded in: given, ROOT/proc/sys/kernel/osrelease,
    ROOT/proc/version, or (only for the live root) this machine's."""
    if given:
        return given
    try:
        with open(os.path.join(root, "proc/sys/kernel/osrelease"), encoding="utf-8", errors="replace") as f:
            release = f.read().strip()
            if release:
                return release
    except OSError:
        pass
    if os.path.isfile(os.path.join(root, "proc/version")):
        from kbuildguard.kernel import read_proc_version

        return read_proc_version(os.path.join(root, "proc/version")).release
    if root == "/":
        return os.uname().release
    raise BadInput("%s: no proc/sys/kernel/osrelease or proc/version to tell the kernel release" % root,
                   hint="name it: --kernel RELEASE")


def _kernel(root: str, release: str, unseen: List[str]) -> Tuple[Optional[KernelTarget], Optional[Dict[str, str]]]:
    """The loaded kernel's build records and configuration, as far as ROOT shows them."""
    target, config = None, None
    try:
        target = kernel.resolve(kernel.Selector(kernel=release, sysroot=root if root != "/" else None))
    except KbgError as exc:
        unseen.append("the kernel's build records (%s)" % exc.message)
    path = drift.kernel_config_path(target) if target is not None else None
    if path:
        try:
            config = kconfig.read(path)
        except BadInput as exc:
            unseen.append(exc.message)
    if config is None:
        unseen.append("the kernel's configuration (/boot/config-%s, /proc/config.gz)" % release)
    return target, config


def _ko_evidence(ko: str, target: KernelTarget, level: MatchLevel) -> Tuple[Tuple[Check, ...], Optional[bool], Optional[str]]:
    """(checks, does the file have an exit function, what is wrong with its struct module) of the .ko on disk."""
    reference, why_not = find_reference(target)
    rep = verify_path(ko, Expectation(target, level, reference, why_not))
    has_exit = rep.info.layout.exit_offset is not None if rep.info is not None and rep.info.layout is not None else None
    problems = [c.message for c in rep.checks if not c.ok and c.name in STRUCT_MODULE_GATES]
    return rep.checks, has_exit, "; ".join(problems) or None


def gather(root: str, name: str, release: Optional[str], ko: Optional[str], level: MatchLevel) -> Explanation:
    """Everything explain looks at, read from ROOT (a captured system, or /)."""
    mod = read_loaded(root, name)
    if mod is None:
        raise UsageError("module %s is not loaded (no line in %s/proc/modules)" % (name, root.rstrip("/")))
    release = loaded_release(root, release)
    unseen: List[str] = []
    target, config = _kernel(root, release, unseen)
    module_unload = None if config is None else config.get("CONFIG_MODULE_UNLOAD") == "y"
    if module_unload is None and mod.refcnt is not None:
        module_unload = True  # /sys/module/M/refcnt exists only with CONFIG_MODULE_UNLOAD
    force = None if config is None else config.get("CONFIG_MODULE_FORCE_UNLOAD") == "y"
    ko = ko or find_ko(root, release, mod.name)
    checks, has_exit, layout_problem = None, None, None
    if ko and target is not None:
        checks, has_exit, layout_problem = _ko_evidence(ko, target, level)
    elif not ko:
        unseen.append("the module's .ko (not in modules.dep; give --ko FILE)")
    findings = diagnose(mod, module_unload, force, has_exit, layout_problem)
    return Explanation(mod, ko, tuple(findings), checks, tuple(unseen))


# ---------------------------------------------------------------------------------------------
# ``kbuildguard explain MODULE.ko`` / ``--dmesg FILE``: why a module would not load, from the
# kernel's own log lines (loadlog), each held against the file's own gate check when the .ko is given.

class LoadFinding(NamedTuple):
    """One kind of loader message about the module (repeated lines counted once), and what it means."""

    kind: str  # loadlog.Message.kind
    gate: Optional[Gate]
    effect: Effect  # what the kernel did, as the log tells
    summary: str  # the failure in one phrase, in the kernel's words
    cause: str
    fix: str
    source: str  # the kernel function that prints it
    lines: Tuple[int, ...]  # line numbers in the log
    text: str  # the first line, as the kernel wrote it
    names_module: bool  # False: the line names no module, attributed by its neighbours
    context: Tuple[str, ...]  # "BPF: ..." lines that give a BTF failure's reason
    symbol: Optional[str]
    file: str  # what the file's own check says: confirmed, contradicted, not-checked, no-file, n/a
    file_says: str  # that check's message


class Predicted(NamedTuple):
    """A failure the file's own check predicts and the log does not show, and the likely reason."""

    check: Check
    why: str


class LoadExplanation(NamedTuple):
    module: str  # as the kernel names it
    ko: Optional[str]
    log_source: str  # the file, "stdin", or "dmesg"
    log_lines: int
    repairs: Tuple[str, ...]  # what was removed from the pasted lines (timestamps, journal prefixes)
    findings: Tuple[LoadFinding, ...]
    checks: Optional[Tuple[Check, ...]]  # the file's own gate check, when the .ko is given
    predicted: Tuple[Predicted, ...]
    not_seen: Tuple[str, ...]

    @property
    def effect(self) -> Effect:
        return worst(f.effect for f in self.findings)


# Kinds whose refusal of a symbol ends in "Unknown symbol X (err -22)": that line is their consequence.
_LEADS_TO_EINVAL = ("symbol_version", "no_symbol_version", "namespace")
# Where in load_module() the kernel meets each gate: a refusal stops it, later gates are never reached.
# simplify_symbols() reports every symbol before failing, so versions, exports and GPL-only share a rank.
_RANK = {Gate.SIGNATURE: 0, Gate.MACHINE: 1, Gate.THIS_MODULE: 2, Gate.VERMAGIC: 4, Gate.SYMBOL_VERSIONS: 5,
         Gate.SYMBOLS: 5, Gate.LICENSE: 5, Gate.LAYOUT: 6, Gate.COMPILER: 6, Gate.BTF: 7}


def _rank(gate: Optional[Gate], kind: str = "") -> int:
    if gate is Gate.LAYOUT and kind in ("this_module_size", "size"):
        return 3  # 6.4+: the size check runs in elf_validity_check(), before check_modinfo()
    return _RANK.get(gate, 8) if gate is not None else 8


def _group(hits: Sequence[Hit]) -> List[Tuple[Hit, List[int]]]:
    """One entry per kind of message (and symbol), in log order; consequences folded into their cause."""
    causes = {(h.message.kind, h.value("sym")) for h in hits}
    kernel_refusal = any(h.message.effect is Effect.REJECTED and h.message.kind not in ("insmod", "modules_load")
                         for h in hits)
    groups: List[Tuple[Hit, List[int]]] = []
    index: Dict[Tuple[str, str], int] = {}
    for h in hits:
        kind, sym = h.message.kind, h.value("sym")
        key = (kind, sym)
        if kind == "unknown_symbol" and h.value("err") == "-22":
            for lead in _LEADS_TO_EINVAL:
                if (lead, sym) in causes:
                    key = (lead, sym)
                    break
        elif kind == "mcmodel" and any(k == "relocation_overflow" for k, _ in causes):
            key = ("relocation_overflow", "")
        elif kind in ("insmod", "modules_load") and kernel_refusal:
            continue  # user space's errno says less than the kernel's own line
        elif kind in ("relocation_target", "relocation_overflow", "btf", "vermagic", "insmod", "modules_load"):
            key = (kind, "")
        if key in index:
            groups[index[key]][1].append(h.number)
        else:
            index[key] = len(groups)
            groups.append((h, [h.number]))
    return groups


def _mentions(check: Check, symbol: Optional[str]) -> bool:
    return bool(symbol) and re.search(r"(?<![\w.])%s(?![\w.])" % re.escape(symbol or ""), check.message) is not None


def _file_verdict(hit: Hit, checks: Optional[Sequence[Check]]) -> Tuple[str, str, Optional[Check]]:
    """(confirmed | contradicted | not-checked | no-file | n/a, what the file's check says, the check that
    confirms the line) for one log line."""
    if checks is None:
        return "no-file", "", None
    gate = hit.gate
    if gate is None:
        return "n/a", "", None
    by_gate = {c.name: c for c in checks}
    if gate is Gate.SIGNATURE and gate in by_gate:
        c = by_gate[gate]
        if c.found == "unsigned":
            return "confirmed", "the file is unsigned; " + c.message, c
        return "not-checked", "the file is signed; whether the kernel trusts its signer is not checked", None
    # "Unknown symbol" is also what a GPL-only export hidden from a non-GPL module looks like
    related = [gate] + ([Gate.LICENSE, Gate.SYMBOLS] if hit.message.kind == "unknown_symbol" else [])
    candidates = [by_gate[g] for g in related if g in by_gate]
    symbol = hit.value("sym") or None
    failing = [c for c in candidates if not c.ok or c.effect in (Effect.TAINTS, Effect.REJECTED, Effect.CANNOT_UNLOAD)]
    for c in failing:
        if _mentions(c, symbol):
            return "confirmed", c.message, c
    if failing and not symbol:
        return "confirmed", failing[0].message, failing[0]
    if failing:
        return "contradicted", "the file's check fails here for other symbols: " + failing[0].message, None
    unchecked = [c for c in candidates if not c.checked]
    if unchecked:
        return "not-checked", unchecked[0].message, None
    if candidates:
        return "contradicted", "the file passes this gate (%s): the log is about another build of the module, or " \
                               "another kernel" % candidates[0].message, None
    return "n/a", "", None


def _finding(hit: Hit, numbers: List[int], hits: Sequence[Hit], checks: Optional[Sequence[Check]]) -> LoadFinding:
    msg = hit.message
    verdict, says, confirming = _file_verdict(hit, checks)
    fix = hit.fill(msg.fix)
    if confirming is not None and confirming.fix:
        fix = confirming.fix  # the check's own fix names the release, the symvers file, the GPL-only symbols
    return LoadFinding(msg.kind, hit.gate, loadlog.effect_of(hit, hits), hit.fill(msg.summary), hit.fill(msg.cause), fix,
                       msg.source, tuple(numbers), hit.text, hit.module is not None, hit.context,
                       hit.value("sym") or None, verdict, says)


def _predicted(findings: Sequence[LoadFinding], checks: Sequence[Check]) -> List[Predicted]:
    logged = {f.gate for f in findings if f.gate is not None}
    if any(f.kind == "unknown_symbol" for f in findings):
        logged.add(Gate.LICENSE)  # a GPL-only symbol hidden from a non-GPL module is "Unknown symbol"
    stops = [_rank(f.gate, f.kind) for f in findings if f.effect is Effect.REJECTED and f.gate is not None]
    stop = min(stops) if stops else None
    out = []
    for c in checks:
        if c.name in logged or c.effect not in (Effect.REJECTED, Effect.TAINTS, Effect.CANNOT_UNLOAD):
            continue
        rank = _rank(c.name, "size" if "6.4" in c.message else "")
        if c.effect is Effect.CANNOT_UNLOAD:
            why = ("no log line says so: such a module loads and then cannot be unloaded (`kbuildguard explain NAME` on "
                   "the loaded module shows [permanent])")
        elif stop is not None and rank > stop:
            why = "not reached: the kernel stopped at an earlier gate"
        elif c.effect is Effect.TAINTS:
            why = "the kernel says it once per boot (or not at all once tainted): an earlier module may have said it"
        elif not findings:
            why = "the log has no loader line for the module at all: was it loaded while this log was recorded?"
        elif stop is not None and rank == stop:
            why = "the kernel checks this in the same pass: it should be in the log"
        else:
            why = "the log shows no such refusal: it is from another kernel, or another build of the module"
        out.append(Predicted(c, why))
    return out


def gather_load(text: str, source: str, module: str, ko: Optional[str], expect: Optional[Expectation],
                not_seen: Sequence[str] = ()) -> LoadExplanation:
    """The log's loader lines about ``module``, and, with the .ko and the target kernel, the file's check."""
    unseen = list(not_seen)
    checks: Optional[Tuple[Check, ...]] = None
    if ko is not None and expect is not None:
        rep = verify_path(ko, expect)
        if rep.info is None:
            raise BadInput(rep.checks[0].message, hint=rep.checks[0].fix)
        checks = rep.checks
        own_name = rep.info.info("name")
        if own_name and loadlog.module_name(module) == loadlog.module_name(ko):
            module = own_name  # the name the kernel prints is KBUILD_MODNAME, not the file's
    hits, repairs = loadlog.find(text, module)
    findings = [_finding(h, numbers, hits, checks) for h, numbers in _group(hits)]
    predicted = _predicted(findings, checks) if checks is not None else []
    if expect is not None and checks is not None:
        for release in sorted({h.words()["release"] for h in hits if h.message.kind == "vermagic"}):
            if release != expect.target.release:
                unseen.append("the log is from kernel %s, the file was checked against %s (give --kernel %s)" % (
                    release, expect.target.release, release))
    return LoadExplanation(loadlog.module_name(module), ko, source, len(text.splitlines()), tuple(repairs),
                           tuple(findings), checks, tuple(predicted), tuple(unseen))
