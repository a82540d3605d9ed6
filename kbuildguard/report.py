"""JSON forms of our records: the contract that CI and other tools read (documented in docs/reference.md)."""

import json
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from kbuildguard.gates.verify import Check, Expectation, ModuleReport, ReferenceLayout
from kbuildguard.identity import CompilerId, Linker
from kbuildguard.provision.plan import InstallPlan
from kbuildguard.target.kernel import KernelTarget
from kbuildguard.toolchain import Selection

if TYPE_CHECKING:  # explain is imported only by the command that explains
    from kbuildguard.explain.load import LoadExplanation
    from kbuildguard.explain.unload import Explanation


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
                        "hash": signing.hash or None, "trusted": list(signing.trust.sources)} if signing else None}


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


def plan_json(p: InstallPlan) -> Dict[str, Any]:
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
    return json.dumps(data, indent=2, sort_keys=False)
