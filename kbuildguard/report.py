"""JSON forms of our records: the contract that CI and other tools read (documented in docs/reference.md)."""

import json
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from kbuildguard.console import for_json
from kbuildguard.formats.module import ModuleInfo
from kbuildguard.formats.symvers import Export
from kbuildguard.gates.model import Check, Effect, Gate, Stage, stage
from kbuildguard.gates.reference import ReferenceLayout
from kbuildguard.gates.verify import Expectation, ModuleReport, Verdict
from kbuildguard.identity import CompilerId, Linker
from kbuildguard.target.kernel import KernelTarget
from kbuildguard.toolchain import Selection
from kbuildguard.versions import release_tuple

if TYPE_CHECKING:  # explain is imported only by the command that explains, provision by setup (its
    # package imports every package manager's code: a third of make's imports, for a type name)
    from kbuildguard.explain.load import LoadExplanation
    from kbuildguard.explain.unload import Explanation
    from kbuildguard.provision.plan import InstallPlan


def compiler_json(cid: CompilerId, source: str = "") -> Dict[str, Any]:
    out = {"family": str(cid.family), "version": cid.version, "vendor": cid.vendor, "text": cid.text}
    if source:
        out["source"] = source
    return out


def linker_json(linker: Optional[Linker]) -> Optional[Dict[str, str]]:
    return None if linker is None else {"name": linker.name, "version": linker.version}


def kernel_json(target: KernelTarget) -> Dict[str, Any]:
    return {
        "release": target.release,
        "build_dir": target.build_dir,
        "arch": str(target.arch) if target.arch else None,
        "running": target.running,
        "compiler": compiler_json(target.compiler, target.compiler_source),
        "linker": linker_json(target.linker),
        "sources": [{"source": f.source, "compiler": compiler_json(f.compiler)} for f in target.facts],
        "notes": list(target.notes),
    }


def selection_json(selection: Selection) -> Dict[str, Any]:
    return {
        "match": str(selection.level),
        "candidates": [
            {
                "path": c.path,
                "origin": c.origin,
                "family": str(c.compiler.family) if c.compiler else None,
                "version": c.compiler.version if c.compiler else None,
                "vendor": c.compiler.vendor if c.compiler else None,
                "verdict": str(c.verdict),
                "reason": c.reason,
            }
            for c in selection.candidates
        ],
        "selected": selection.selected.path if selection.selected else None,
    }


def check_json(c: Check) -> Dict[str, Any]:
    out = dict(zip(Check._fields, c))  # _asdict() is 3x slower, and check --json writes 40,000 of these
    out["checked"] = c.checked
    return out


def module_json(report: ModuleReport, quarantined_to: Optional[str] = None) -> Dict[str, Any]:
    out: Dict[str, Any] = {
        "path": report.path,
        "verdict": str(report.verdict),
        "effect": str(report.effect),
        "checks": [check_json(c) for c in report.checks],
    }
    if quarantined_to:
        out["quarantined_to"] = quarantined_to
    return out


def modules_json(reports: Sequence[ModuleReport]) -> List[Dict[str, Any]]:
    return [module_json(r) for r in reports]


def reference_json(reference: Optional[ReferenceLayout]) -> Optional[Dict[str, Any]]:
    if reference is None:
        return None
    return {"size": reference.layout.size, "init_offset": reference.layout.init_offset,
            "exit_offset": reference.layout.exit_offset, "source": reference.source}


def expectation_json(expect: Expectation) -> Dict[str, Any]:
    """What the modules were checked against: `check --json` and every make report carry it."""
    signing = expect.loader.signing if expect.loader is not None else None
    return {"kernel": kernel_json(expect.target), "match": str(expect.level),
            "reference_layout": reference_json(expect.reference),
            "layout_not_compared": expect.not_compared or None,
            "signing": {"module_sig": signing.module_sig, "enforced": signing.enforced, "why": signing.why,
                        "hash": signing.hash or None, "trusted": list(signing.trust.sources),
                        "keys_not_seen": signing.trust.not_seen() or None} if signing else None}


def explanation_json(found: "Explanation") -> Dict[str, Any]:
    return {"module": found.module._asdict(), "ko": found.ko, "findings": [f._asdict() for f in found.findings],
            "checks": [check_json(c) for c in found.checks] if found.checks else None, "not_seen": list(found.not_seen)}


def load_explanation_json(found: "LoadExplanation") -> Dict[str, Any]:
    """`explain MODULE.ko --json` / `explain --dmesg FILE --json` (docs/reference.md: "explain for load failures")."""
    return {
        "mode": "load",
        "module": found.module,
        "ko": found.ko,
        "log": {"source": found.log_source, "lines": found.log_lines, "repairs": list(found.repairs)},
        "effect": str(found.effect),
        "findings": [{"kind": f.kind, "gate": str(f.gate) if f.gate is not None else None, "effect": str(f.effect),
                      "summary": f.summary, "cause": f.cause, "fix": f.fix or None, "source": f.source,
                      "lines": list(f.lines), "text": f.text, "names_module": f.names_module,
                      "context": list(f.context), "symbol": f.symbol, "file": f.file, "file_says": f.file_says or None}
                     for f in found.findings],
        "predicted_not_logged": [dict(check_json(p.check), why=p.why) for p in found.predicted],
        "checks": [check_json(c) for c in found.checks] if found.checks is not None else None,
        "not_seen": list(found.not_seen),
    }


def kernel_summary_json(target: KernelTarget) -> Dict[str, Any]:
    """The short form of a kernel, for plans (setup, make --dry-run)."""
    return {"release": target.release, "build_dir": target.build_dir, "compiler": target.compiler.describe(),
            "source": target.compiler_source}


def plan_json(p: "InstallPlan") -> Dict[str, Any]:
    return {
        "distribution": {"id": p.distro.id, "version_id": p.distro.version_id, "name": p.distro.name,
                         "arch": p.distro.arch},
        "manager": p.manager,
        "system": p.system,
        "packages": [{"name": pkg.name, "role": str(pkg.role), "available": pkg.available,
                      "elsewhere": pkg.elsewhere if pkg.available is not True else None} for pkg in p.checked],
        "unavailable": list(p.unavailable),
        "verified_by": p.asked if not p.unverified else None,
        "unverified": p.unverified or None,
        "commands": [list(c) for c in p.commands],
        "notes": list(p.notes),
        "compiler_path": p.compiler_path or None,
    }


def dumps(data: Any) -> str:
    return json.dumps(for_json(data), indent=2, sort_keys=False)


class CrcDifference(NamedTuple):
    symbol: str
    module_crc: int
    kernel_crc: Optional[int]  # None: the kernel does not export it at all


class ForecastRow(NamedTuple):
    """One kernel x one module: what that kernel will do with it, the gate that decides, and why a
    rebuild is needed (empty when it loads)."""

    kernel: str
    module: str
    verdict: Verdict
    effect: Effect
    gate: Optional[Gate]  # the gate that decides (None: every gate passes)
    reason: str  # "rebuild needed because ...", or what the kernel does when it loads
    weak_modules: bool  # RHEL's weak-modules / SUSE's weak-modules2 would link it (depmod -e -E: symbols and CRCs)
    crc_differences: Tuple[CrcDifference, ...]
    crcs_compared: int
    kernel_prints: str  # the kernel's one log line for the refusal, when kbuildguard knows it


def crc_differences(info: Optional[ModuleInfo], symbols: Optional[Mapping[str, Export]]) -> Tuple[Tuple[CrcDifference, ...], int]:
    """Every __versions entry whose CRC the kernel's exports give differently (or not at all)."""
    if info is None or symbols is None:
        return (), 0
    out = []
    compared = 0
    for name, crc in zip(info.version_names, info.version_crcs):
        export = symbols.get(name)
        if export is None or export.crc is None:
            if export is None and name == "module_layout":
                out.append(CrcDifference(name, crc, None))
            continue
        compared += 1
        if export.crc != crc:
            out.append(CrcDifference(name, crc, export.crc))
    return tuple(out), compared


def size_differs(c: Check) -> bool:
    """The layout check found another struct module size ("size 0x380, ..." against "size 0x500, ...")."""
    return c.name is Gate.LAYOUT and not c.ok and c.expected.split(",")[0] != c.found.split(",")[0]


def deciding_gate(rep: ModuleReport, layout_crc_differs: bool, kernel_6_4: bool = False) -> Optional[Check]:
    """The check the kernel stops at: refused gates in the kernel's order (module_layout's CRC first
    of all, check_modstruct_version()); for a module that loads, the worst effect's first check.

    From 6.4 elf_validity_check() compares the size of .gnu.linkonce.this_module with sizeof(struct
    module) before check_modstruct_version() runs (kernel/module/main.c, "section size must match the
    kernel's built struct module size at run time"): a size that differs decides there."""
    failed = [c for c in rep.checks if not c.ok]
    if not failed:
        effect = rep.effect
        if effect is Effect.OK:
            return None
        return next((c for c in rep.checks if c.effect is effect), None)

    def rank(c: Check) -> Tuple[int, float]:
        # the stage load_module() meets the gate at (gates/model.py GATE_STAGES, the one table of
        # that order); module_layout's CRC is check_modstruct_version(), in early_mod_check() after
        # elf_validity_check() (and 6.4's size check) and before check_modinfo()'s vermagic
        refused = 0 if c.effect is Effect.REJECTED else 1
        if layout_crc_differs and c.name is Gate.SYMBOL_VERSIONS:
            return refused, Stage.STRUCT_SIZE + 0.5
        return refused, stage(c.name, size_check=kernel_6_4 and size_differs(c))

    return sorted(failed, key=rank)[0]


def _crc_list(diffs: Sequence[CrcDifference], limit: int = 3) -> str:
    shown = ["%s (module 0x%08x, kernel %s)" % (d.symbol, d.module_crc, "0x%08x" % d.kernel_crc if d.kernel_crc is not None
                                                else "does not export it") for d in diffs[:limit]]
    more = " and %d more" % (len(diffs) - limit) if len(diffs) > limit else ""
    return ", ".join(shown) + more


def rebuild_reason(c: Check, diffs: Sequence[CrcDifference], compared: int, kernel_6_4: bool) -> Tuple[str, str]:
    """("rebuild needed because ...", the line the kernel prints) for the deciding check."""
    layout = [d for d in diffs if d.symbol == "module_layout"]
    if size_differs(c) and kernel_6_4:
        prints = ".gnu.linkonce.this_module section size must match the kernel's built struct module size at run time"
        more = (" (module_layout's CRC differs too, %d of %d CRCs: the size check comes first)" % (len(diffs), compared)
                if layout else "")
        return ("rebuild needed because struct module size differs: %s; from 6.4 the kernel prints \"%s\" (-ENOEXEC, insmod: "
                "Invalid module format) before it compares any CRC%s" % (c.found.split(",")[0] + " vs " + c.expected.split(",")[0],
                                                                prints, more), prints)
    if c.name is Gate.SYMBOL_VERSIONS and layout:
        d = layout[0]
        prints = ("disagrees about version of symbol module_layout" if d.kernel_crc is not None
                  else "no symbol version for module_layout")
        return ("rebuild needed because the CRC of module_layout changed (module 0x%08x, kernel %s): the kernel prints "
                "only \"%s\" (insmod: Invalid module format), because check_modstruct_version() runs before every "
                "other check of the symbols, however many differ (%d of %d CRCs differ here: %s)" % (
                    d.module_crc, "0x%08x" % d.kernel_crc if d.kernel_crc is not None else "has none",
                    prints, len(diffs), compared, _crc_list(diffs)), prints)
    if c.name is Gate.SYMBOL_VERSIONS and diffs:
        return ("rebuild needed because the CRC of %s changed (%d of %d CRCs differ): the kernel prints "
                "\"disagrees about version of symbol %s\"" % (_crc_list(diffs), len(diffs), compared, diffs[0].symbol),
                "disagrees about version of symbol %s" % diffs[0].symbol)
    because = {
        Gate.SIGNATURE: "the signer is not trusted there",
        Gate.LAYOUT: "struct module differs",
        Gate.COMPILER: "the compiler differs",
        Gate.VERMAGIC: "the vermagic differs",
        Gate.SYMBOLS: "a symbol it uses is not exported there",
        Gate.MACHINE: "it is for another machine",
        Gate.BTF: "its BTF does not fit that kernel's",
    }.get(c.name, "the %s gate refuses it" % c.name)
    return "rebuild needed because %s: %s" % (because, c.message), ""


def across_abi(kernel: str, info: Optional[ModuleInfo], diffs: Sequence[CrcDifference], compared: int) -> str:
    """A module built for another release that loads: say why (the ABI number is not the distance)."""
    built_for = info.vermagic.split(" ", 1)[0] if info is not None and info.vermagic else ""
    if not built_for or built_for == kernel or diffs or not compared:
        return ""
    return ("; built for %s, and all %d of its symbol CRCs are equal here (kernels that share one Module.symvers, as "
            "Debian's 6.1.0-55, -56 and -57 do, load each other's modules: the vermagic release is not compared when "
            "a module has symbol versions)" % (built_for, compared))


def forecast_row(kernel: str, rep: ModuleReport, info: Optional[ModuleInfo], symbols: Optional[Mapping[str, Export]]) -> ForecastRow:
    diffs, compared = crc_differences(info, symbols)
    kernel_6_4 = release_tuple(kernel.split("-")[0]) >= (6, 4)
    c = deciding_gate(rep, any(d.symbol == "module_layout" for d in diffs), kernel_6_4)
    passed = {x.name for x in rep.checks if x.ok}
    weak = Gate.SYMBOLS in passed and Gate.SYMBOL_VERSIONS in passed and rep.verdict is not Verdict.ERROR
    across = across_abi(kernel, info, diffs, compared)
    if c is None:
        return ForecastRow(kernel=kernel, module=rep.path, verdict=rep.verdict, effect=rep.effect, gate=None, reason="loads: every gate passes" + across,
                           weak_modules=weak, crc_differences=diffs,
                           crcs_compared=compared, kernel_prints="")
    if c.ok and c.effect is Effect.NOT_CHECKED:  # not "loads": a gate that was not checked may refuse it
        return ForecastRow(kernel=kernel, module=rep.path, verdict=rep.verdict, effect=rep.effect, gate=c.name,
                           reason="not fully checked: %s%s" % (c.message, across),
                           weak_modules=weak, crc_differences=diffs, crcs_compared=compared, kernel_prints="")
    if c.ok:
        return ForecastRow(kernel=kernel, module=rep.path, verdict=rep.verdict, effect=rep.effect, gate=c.name, reason="loads; %s%s" % (c.message, across),
                           weak_modules=weak, crc_differences=diffs,
                           crcs_compared=compared, kernel_prints="")
    reason, prints = rebuild_reason(c, diffs, compared, kernel_6_4)
    if weak:
        reason += ("; weak-modules (depmod -e -E: every symbol resolves, every CRC equal) would link it into this "
                   "kernel, which refuses it")
    return ForecastRow(kernel=kernel, module=rep.path, verdict=rep.verdict, effect=rep.effect, gate=c.name, reason=reason, weak_modules=weak,
                       crc_differences=diffs, crcs_compared=compared, kernel_prints=prints)


def forecast_json(rows: Sequence[ForecastRow]) -> List[Dict[str, Any]]:
    return [{"kernel": r.kernel, "module": r.module, "verdict": str(r.verdict), "effect": str(r.effect),
             "gate": str(r.gate) if r.gate else None, "reason": r.reason, "rebuild_needed": r.verdict is Verdict.MISMATCH,
             "weak_modules_would_link": r.weak_modules, "crcs_compared": r.crcs_compared,
             "crc_differences": [{"symbol": d.symbol, "module": d.module_crc, "kernel": d.kernel_crc} for d in r.crc_differences],
             "kernel_prints": r.kernel_prints or None} for r in rows]
