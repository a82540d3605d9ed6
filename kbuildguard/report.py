"""JSON forms of our records: the contract that CI and other tools read (documented in the README)."""

import json
from typing import Any, Dict, List, Optional, Sequence

from kbuildguard.identity import CompilerId, Linker
from kbuildguard.kernel import KernelTarget
from kbuildguard.toolchain import Selection
from kbuildguard.verify import ModuleReport


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
        "arch": target.arch,
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
                "verdict": c.verdict,
                "reason": c.reason,
            }
            for c in selection.candidates
        ],
        "selected": selection.selected.path if selection.selected else None,
    }


def module_json(report: ModuleReport, quarantined_to: Optional[str] = None) -> Dict[str, Any]:
    out = {
        "path": report.path,
        "verdict": str(report.verdict),
        "checks": [c._asdict() for c in report.checks],
    }  # type: Dict[str, Any]
    if quarantined_to:
        out["quarantined_to"] = quarantined_to
    return out


def modules_json(reports: Sequence[ModuleReport]) -> List[Dict[str, Any]]:
    return [module_json(r) for r in reports]


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False)
