"""``kbuildguard explain MODULE.ko`` / ``--dmesg FILE``: why a module would not load, from the
kernel's own log lines (loadlog), each held against the file's own gate check when the .ko is given."""

import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from kbuildguard.errors import BadInput
from kbuildguard.explain import loadlog
from kbuildguard.explain.loadlog import USER_SPACE, Hit, Kind
from kbuildguard.formats.module import ModuleInfo
from kbuildguard.gates.model import Check, Effect, Gate, stage, worst
from kbuildguard.gates.verify import Expectation, verify_path
from kbuildguard.strenum import StrEnum
from kbuildguard.versions import release_tuple


class FileSays(StrEnum):
    """What the file's own gate check says of one log line (the `file` field of `explain --json`)."""

    CONFIRMED = "confirmed"  # the file fails that gate too
    CONTRADICTED = "contradicted"  # the file passes it: the log is about another build or kernel
    NOT_CHECKED = "not-checked"  # the file's check could not tell
    NO_FILE = "no-file"  # no .ko was given
    NOT_APPLICABLE = "n/a"  # no gate owns the line (the out-of-tree taint, insmod's errno)


class LoadFinding(NamedTuple):
    """One kind of loader message about the module (repeated lines counted once), and what it means."""

    kind: Kind
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
    file: FileSays
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
_LEADS_TO_EINVAL = (Kind.SYMBOL_VERSION, Kind.NO_SYMBOL_VERSION, Kind.NAMESPACE)
# One finding per kind, whatever symbol or value each line names.
_ONE_PER_KIND = frozenset({Kind.RELOCATION_TARGET, Kind.RELOCATION_OVERFLOW, Kind.BTF, Kind.VERMAGIC}) | USER_SPACE


def size_refused(info: Optional[ModuleInfo], expect: Optional[Expectation]) -> bool:
    """Whether the target refuses the module's struct module for its size: from 6.4,
    kernel/module/main.c elf_validity_check() compares .gnu.linkonce.this_module's sh_size with
    sizeof(struct module) ("section size must match the kernel's built struct module size at run
    time", loadlog's this_module_size); earlier kernels only meet a layout difference when relocating."""
    if info is None or info.layout is None or expect is None or expect.reference is None:
        return False
    return (info.layout.size != expect.reference.layout.size
            and release_tuple(expect.target.release.split("-")[0]) >= (6, 4))


def _group(hits: Sequence[Hit]) -> List[Tuple[Hit, List[int]]]:
    """One entry per kind of message (and symbol), in log order; consequences folded into their cause."""
    causes = {(h.message.kind, h.value("sym")) for h in hits}
    kernel_refusal = any(h.message.effect is Effect.REJECTED and h.message.kind not in USER_SPACE for h in hits)
    groups: List[Tuple[Hit, List[int]]] = []
    index: Dict[Tuple[Kind, str], int] = {}
    for h in hits:
        kind, sym = h.message.kind, h.value("sym")
        key = (kind, sym)
        if kind is Kind.UNKNOWN_SYMBOL and h.value("err") == "-22":
            for lead in _LEADS_TO_EINVAL:
                if (lead, sym) in causes:
                    key = (lead, sym)
                    break
        elif kind is Kind.MCMODEL and any(k is Kind.RELOCATION_OVERFLOW for k, _ in causes):
            key = (Kind.RELOCATION_OVERFLOW, "")
        elif kind in USER_SPACE and kernel_refusal:
            continue  # user space's errno says less than the kernel's own line
        elif kind in _ONE_PER_KIND:
            key = (kind, "")
        if key in index:
            groups[index[key]][1].append(h.number)
        else:
            index[key] = len(groups)
            groups.append((h, [h.number]))
    return groups


def _mentions(check: Check, symbol: Optional[str]) -> bool:
    return bool(symbol) and re.search(r"(?<![\w.])%s(?![\w.])" % re.escape(symbol or ""), check.message) is not None


def _file_verdict(hit: Hit, checks: Optional[Sequence[Check]]) -> Tuple[FileSays, str, Optional[Check]]:
    """(what the file's check says of one log line, in its words, the check that confirms the line)."""
    if checks is None:
        return FileSays.NO_FILE, "", None
    gate = hit.gate
    if gate is None:
        return FileSays.NOT_APPLICABLE, "", None
    by_gate = {c.name: c for c in checks}
    if gate is Gate.SIGNATURE and gate in by_gate:
        return _signature_verdict(by_gate[gate])
    # "Unknown symbol" is also what a GPL-only export hidden from a non-GPL module looks like
    related = [gate] + ([Gate.LICENSE, Gate.SYMBOLS] if hit.message.kind is Kind.UNKNOWN_SYMBOL else [])
    return _gate_verdict([by_gate[g] for g in related if g in by_gate], hit.value("sym") or None)


def _signature_verdict(c: Check) -> Tuple[FileSays, str, Optional[Check]]:
    if c.found == "unsigned":
        return FileSays.CONFIRMED, "the file is unsigned; " + c.message, c
    return FileSays.NOT_CHECKED, "the file is signed; whether the kernel trusts its signer is not checked", None


def _gate_verdict(candidates: Sequence[Check], symbol: Optional[str]) -> Tuple[FileSays, str, Optional[Check]]:
    """What the file's checks of the line's gate(s) say: a failure naming the line's symbol confirms it."""
    failing = [c for c in candidates if not c.ok or c.effect in (Effect.TAINTS, Effect.REJECTED, Effect.CANNOT_UNLOAD)]
    for c in failing:
        if _mentions(c, symbol):
            return FileSays.CONFIRMED, c.message, c
    if failing and not symbol:
        return FileSays.CONFIRMED, failing[0].message, failing[0]
    if failing:
        return FileSays.CONTRADICTED, "the file's check fails here for other symbols: " + failing[0].message, None
    unchecked = [c for c in candidates if not c.checked]
    if unchecked:
        return FileSays.NOT_CHECKED, unchecked[0].message, None
    if candidates:
        return FileSays.CONTRADICTED, "the file passes this gate (%s): the log is about another build of the module, or " \
                                      "another kernel" % candidates[0].message, None
    return FileSays.NOT_APPLICABLE, "", None


def _finding(hit: Hit, numbers: List[int], hits: Sequence[Hit], checks: Optional[Sequence[Check]]) -> LoadFinding:
    msg = hit.message
    verdict, says, confirming = _file_verdict(hit, checks)
    fix = hit.fill(msg.fix)
    if confirming is not None and confirming.fix:
        fix = confirming.fix  # the check's own fix names the release, the symvers file, the GPL-only symbols
    return LoadFinding(kind=msg.kind, gate=hit.gate, effect=loadlog.effect_of(hit, hits), summary=hit.fill(msg.summary), cause=hit.fill(msg.cause), fix=fix,
                       source=msg.source, lines=tuple(numbers), text=hit.text, names_module=hit.module is not None, context=hit.context,
                       symbol=hit.value("sym") or None, file=verdict, file_says=says)


def predicted_not_logged(findings: Sequence[LoadFinding], checks: Sequence[Check], size_check: bool) -> List[Predicted]:
    """``size_check``: the file's layout is refused for its size (6.4+), early, not when relocating."""
    logged = {f.gate for f in findings if f.gate is not None}
    if any(f.kind is Kind.UNKNOWN_SYMBOL for f in findings):
        logged.add(Gate.LICENSE)  # a GPL-only symbol hidden from a non-GPL module is "Unknown symbol"
    stops = [stage(f.gate, f.kind is Kind.THIS_MODULE_SIZE) for f in findings
             if f.effect is Effect.REJECTED and f.gate is not None]
    stop = min(stops) if stops else None
    out = []
    for c in checks:
        if c.name in logged or c.effect not in (Effect.REJECTED, Effect.TAINTS, Effect.CANNOT_UNLOAD):
            continue
        rank = stage(c.name, size_check)
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
    info: Optional[ModuleInfo] = None
    if ko is not None and expect is not None:
        rep = verify_path(ko, expect)
        if rep.info is None:
            raise BadInput(rep.checks[0].message, hint=rep.checks[0].fix)
        checks, info = rep.checks, rep.info
        own_name = rep.info.info("name")
        if own_name and loadlog.module_name(module) == loadlog.module_name(ko):
            module = own_name  # the name the kernel prints is KBUILD_MODNAME, not the file's
    hits, repairs = loadlog.find(text, module)
    findings = [_finding(h, numbers, hits, checks) for h, numbers in _group(hits)]
    predicted = predicted_not_logged(findings, checks, size_refused(info, expect)) if checks is not None else []
    if expect is not None and checks is not None:
        for release in sorted({h.words()["release"] for h in hits if h.message.kind is Kind.VERMAGIC}):
            if release != expect.target.release:
                unseen.append("the log is from kernel %s, the file was checked against %s (give --kernel %s)" % (
                    release, expect.target.release, release))
    return LoadExplanation(module=loadlog.module_name(module), ko=ko, log_source=source, log_lines=len(text.splitlines()), repairs=tuple(repairs),
                           findings=tuple(findings), checks=checks, predicted=tuple(predicted), not_seen=tuple(unseen))
