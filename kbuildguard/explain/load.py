"""``kbuildguard explain MODULE.ko`` / ``--dmesg FILE``: why a module would not load, from the
kernel's own log lines (loadlog), each held against the file's own gate check when the .ko is given."""

import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from kbuildguard.errors import BadInput
from kbuildguard.explain import loadlog
from kbuildguard.explain.loadlog import Hit
from kbuildguard.gates.model import Effect, Gate, worst
from kbuildguard.gates.verify import Check, Expectation, verify_path


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
_RANK = {Gate.COMPRESSION: 0, Gate.SIGNATURE: 0, Gate.ELF: 1, Gate.MACHINE: 1, Gate.THIS_MODULE: 2, Gate.VERMAGIC: 4,
         Gate.SYMBOL_VERSIONS: 5, Gate.SYMBOLS: 5, Gate.LICENSE: 5, Gate.LAYOUT: 6, Gate.RELOCATIONS: 6, Gate.COMPILER: 6,
         Gate.BTF: 7, Gate.UNLOAD: 8}


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
