"""CI reports of one kernel x module x gate matrix: JUnit XML, SARIF 2.1.0 and a Markdown summary.

All three are rendered from the same records (``KernelResult``: the ``ModuleReport`` of each module
the gates verified, as ``check --json`` and report.json print them through report.py), so they
cannot disagree with the JSON. The shapes are checked in tests against the schemas the readers use:
tests/data/schemas/junit-10.xsd (Jenkins xunit-plugin's JUnit schema, which GitLab's reader also
accepts) and tests/data/schemas/sarif-schema-2.1.0.json (OASIS). docs/packagers.md#ci-reports says
what a CI user gets.
"""

import json
import os
import re
import tempfile
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple
from urllib.parse import quote

from kbuildguard import __version__
from kbuildguard.console import COMPILER_ERROR
from kbuildguard.errors import CannotWrite, UsageError
from kbuildguard.formats.module import MODULE_SUFFIXES
from kbuildguard.gates.model import Check, Effect, Gate
from kbuildguard.gates.verify import ModuleReport, Verdict, headline

# Where each rule is explained: docs/gates.md, one anchor per gate (GitHub's heading anchors). SARIF's
# helpUri must be absolute, and the project records no public home (pyproject.toml has no
# [project.urls]): an invented address would be a dead link in every code-scanning alert, so the rule
# carries the page and anchor as its help text instead (SARIF 2.1.0 §3.49.12 "help"), relative to the
# documentation that ships with kbuildguard (the packages install docs/ under %doc).
DOCS = "docs/"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
# The pseudo-gate of a kernel whose run ended before any module was verified (make failed, no
# matching compiler, no build tree): CI must see that kernel fail, not vanish from the matrix.
BUILD = "build"


class ModuleResult(NamedTuple):
    path: str  # where the module is now: placed, quarantined, or the file checked
    report: ModuleReport
    # files of the module repository that kbuild linked in and the compiler gate blames (a vendor's
    # blob.o_shipped, a prebuilt .o): SARIF locates the compiler result there first
    sources: Tuple[str, ...] = ()


class KernelResult(NamedTuple):
    """One kernel's row of the matrix: its modules as verified, or why none was."""

    kernel: str
    modules: Tuple[ModuleResult, ...]
    error: str = ""  # "build failed: make exited with 2": the run ended before verification
    exit_code: int = 0
    folder: str = ""  # the module folder built (a failed build is located there)
    # the compiler's first error lines, paths relative to the folder ("kdemo.c:12:11: error: ...")
    compiler_errors: Tuple[str, ...] = ()
    # the folder's files kbuildguard generated from kbuildguard.toml ("Kbuild", "Makefile"): a failed
    # build is not located there (a CI reader would be shown a file the repository does not hold)
    generated: Tuple[str, ...] = ()


class ReportPaths(NamedTuple):
    junit: Optional[str] = None
    sarif: Optional[str] = None
    markdown: Optional[str] = None

    def wanted(self) -> bool:
        return any(self)


# XML 1.0 allows only #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
# (https://www.w3.org/TR/xml/#charsets): anything else, and an undecodable byte of a file name
# (a lone surrogate from surrogateescape), is written as \\xNN so that nothing is lost or invalid.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\udc80-\udcff]")


def clean(text: str) -> str:
    """Text any of the three formats can hold: undecodable bytes and control characters escaped."""
    text = _SURROGATE.sub(lambda m: "\\x%02x" % (ord(m.group()) - 0xDC00), text)
    text = re.sub("[\ud800-\udfff]", "\ufffd", text)  # other lone surrogates: not encodable at all
    return _NOT_XML.sub(lambda m: "\\x%02x" % ord(m.group()), text)


def _line(text: str) -> str:
    """One line: a kernel log's or a crafted .modinfo's newlines and tabs become \\n, \\t."""
    return clean(text).replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def module_name(path: str) -> str:
    """kdemo for /x/kdemo.ko.xz: the name the kernel knows it by (scripts/Makefile.modpost: the file
    name without .ko); dots turned to _ because CI readers split classname at its last dot."""
    base = os.path.basename(path)
    for suffix in (".xz", ".gz", ".zst", ".bz2"):
        if base.endswith(suffix):
            base = base[:-len(suffix)]
    if base.endswith(".ko"):
        base = base[:-3]
    return _line(base or "module").replace(".", "_")


def _failed(c: Check) -> bool:
    return not c.ok or c.effect in (Effect.REJECTED, Effect.CANNOT_UNLOAD)


def _detail(c: Check) -> str:
    lines = [c.message]
    if not c.ok or c.expected or c.found:
        lines += ["expected: %s" % c.expected, "found:    %s" % c.found]
    if c.fix:
        lines.append("fix:      %s" % c.fix)
    return "\n".join(clean(x) for x in lines)


def names(k: KernelResult) -> List[str]:
    """Each module's name in this kernel's rows, unique: GitLab keeps only the first of two test
    cases with the same classname and name, so a second kdemo.ko (another folder) is kdemo~2."""
    seen: Dict[str, int] = {}
    out = []
    for m in k.modules:
        base = module_name(m.report.path)
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else "%s~%d" % (base, seen[base]))
    return out


def failure_text(k: KernelResult) -> str:
    """A kernel with no verified module: why, and the compiler's first error lines."""
    text = k.error or "no module was verified"
    if k.compiler_errors:
        text += "\ncompiler errors (and modpost's; paths in the module folder):\n" + "\n".join(k.compiler_errors[:5])
    return text


# What a result with no module is located at, when the compiler named no file of the module folder:
# the file that tells kbuild what to build, else the declaration.
FOLDER_FILES = ("Kbuild", "Makefile", "kbuildguard.toml")


def build_location(k: KernelResult, base: str) -> Dict[str, Any]:
    """Every SARIF result needs a location (GitHub's upload-sarif rejects the whole file for one
    without): the compiler's first error in the module folder, with its line and column; else the
    folder's Kbuild, Makefile or kbuildguard.toml."""
    folder = k.folder or base
    for line in k.compiler_errors:
        m = COMPILER_ERROR.match(line)
        if m is None or os.path.isabs(m.group("path")) or m.group("path").startswith(".." + os.sep):
            continue  # a kernel header's error: not a file of the repository CI scans
        region: Dict[str, int] = {"startLine": max(1, int(m.group("line")))}
        if m.group("column"):
            region["startColumn"] = max(1, int(m.group("column")))
        return {"physicalLocation": {"artifactLocation": artifact_uri(os.path.join(folder, m.group("path")), base),
                                     "region": region}}
    # a Kbuild or Makefile kbuildguard generated is not the repository's: kbuildguard.toml, its source
    name = next((f for f in FOLDER_FILES if f not in k.generated and os.path.isfile(os.path.join(folder, f))), FOLDER_FILES[1])
    return {"physicalLocation": {"artifactLocation": artifact_uri(os.path.join(folder, name), base)}}


def _cells(results: Sequence[KernelResult]) -> Iterator[Tuple[KernelResult, Optional[ModuleResult], Optional[Check]]]:
    for k in results:
        if not k.modules:
            yield k, None, None
        for m in k.modules:
            for c in m.report.checks:
                yield k, m, c


def junit(results: Sequence[KernelResult]) -> str:
    """One testsuite per kernel, one testcase per module x gate: classname KERNEL.MODULE (Jenkins
    splits a classname at its last dot into package and class: the kernel, then the module; GitLab
    lists suite, classname and name), name the gate. A failure for a refused gate or one the kernel
    would load and never unload, with the module's headline; skipped for a gate not checked."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>']
    suites = []
    totals = [0, 0, 0]
    for k in results:
        cases = []
        tests = failures = skipped = 0
        if not k.modules:
            tests, failures = 1, 1
            text = failure_text(k)
            cases.append('    <testcase classname=%s name="%s">\n      <failure message=%s type="exit %d">%s</failure>\n'
                         '    </testcase>' % (quoteattr(clean(k.kernel) + ".(build)"), BUILD, quoteattr(_line(k.error or "no module was verified")),
                                              k.exit_code, escape(clean(text))))
        for m, name in zip(k.modules, names(k)):
            head = _line(headline(m.report))
            classname = quoteattr("%s.%s" % (clean(k.kernel), name))
            for c in m.report.checks:
                tests += 1
                # GitLab shows the element's text, not its message attribute: the headline leads both
                body = "%s\nmodule: %s" % (_detail(c), clean(m.path))
                if _failed(c):
                    body = head + "\n" + body
                if _failed(c):
                    failures += 1
                    inner = '<failure message=%s type=%s>%s</failure>' % (
                        quoteattr(head), quoteattr(str(c.effect)), escape(body))
                elif c.effect is Effect.NOT_CHECKED:
                    skipped += 1
                    inner = '<skipped message=%s/>' % quoteattr(_line(c.message))
                else:
                    inner = '<system-out>%s</system-out>' % escape(body)
                cases.append('    <testcase classname=%s name=%s>\n      %s\n    </testcase>' % (
                    classname, quoteattr(str(c.name)), inner))
        totals[0] += tests
        totals[1] += failures
        totals[2] += skipped
        suites.append('  <testsuite name=%s tests="%d" failures="%d" errors="0" skipped="%d">\n%s\n  </testsuite>' % (
            quoteattr(clean(k.kernel)), tests, failures, skipped, "\n".join(cases)) if cases else
            '  <testsuite name=%s tests="0" failures="0" errors="0" skipped="0"/>' % quoteattr(clean(k.kernel)))
    out.append('<testsuites name="kbuildguard" tests="%d" failures="%d" errors="0">' % (totals[0], totals[1]))
    out.extend(suites)
    out.append("</testsuites>")
    return "\n".join(out) + "\n"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading (as tests/test_docs.py computes it)."""
    text = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower())
    return text.replace(" ", "-")


# docs/gates.md's heading of each gate ("### `vermagic` — `check_modinfo()`, `same_magic()`");
# tests/test_cireport.py holds this table to the page, so a renamed heading fails there.
GATE_HEADINGS = {
    Gate.READ: "The headline",
    Gate.COMPRESSION: "`compression` — kmod or `kernel/module/decompress.c`",
    Gate.SIGNATURE: "`signature` — `module_sig_check()`",
    Gate.ELF: "`elf` — `elf_validity_check()`, `setup_load_info()`",
    Gate.MACHINE: "`machine` — `elf_check_arch()`",
    Gate.THIS_MODULE: "`this_module` — `setup_load_info()`",
    Gate.LAYOUT: "`layout` — `struct module`, met at relocation and at unload",
    Gate.VERMAGIC: "`vermagic` — `check_modinfo()`, `same_magic()`",
    Gate.SYMBOL_VERSIONS: "`symbol_versions` — `check_modstruct_version()`, `check_version()`",
    Gate.SYMBOLS: "`symbols` — `simplify_symbols()`, `resolve_symbol()`",
    Gate.LICENSE: "`license` — `set_license()`",
    Gate.RELOCATIONS: "`relocations` — `apply_relocations()`, the architecture's `apply_relocate_add()`",
    Gate.BTF: "`btf` — `btf_module_notify()` at `MODULE_STATE_COMING`",
    Gate.NAME: "`name` — a built-in module of the same name (kmod; `mod_sysfs_init()`)",
    Gate.UNLOAD: "`unload` — `delete_module()`",
    Gate.COMPILER: "`compiler`",
}

_LEVEL = {Effect.REJECTED: "error", Effect.CANNOT_UNLOAD: "error", Effect.NOT_CHECKED: "note",
          Effect.TAINTS: "warning", Effect.OK: "note"}


def rule_id(gate: str) -> str:
    """Stable: the gate's name as check --json prints it, under kbuildguard's prefix."""
    return "kbuildguard/" + gate


def _rules() -> List[Dict[str, Any]]:
    rules = [{"id": rule_id(str(g)), "name": str(g),
              "shortDescription": {"text": "the %s gate of the kernel's module loader" % g},
              "help": {"text": "See kbuildguard's " + DOCS + "gates.md#" + _slug(GATE_HEADINGS[g])}} for g in Gate]
    rules.append({"id": rule_id(BUILD), "name": BUILD,
                  "shortDescription": {"text": "the build or check of one kernel ended before any module was verified"},
                  "help": {"text": "See kbuildguard's " + DOCS + "reference.md#exit-codes"}})
    return rules


def artifact_uri(path: str, base: str) -> Dict[str, str]:
    """A path under ``base`` (the checkout CI scans) as a relative URI code scanning can place;
    anything else as an absolute file: URI. The name's real bytes are percent-encoded (a \x01 in a
    file name is %01, an undecodable byte its own %NN), not its escaped display text: the URI must
    name the file that exists."""
    rel = os.path.relpath(path, base) if os.path.isabs(path) else path
    if not rel.startswith(".." + os.sep) and rel != "..":
        return {"uri": _uri_escape(rel)}
    return {"uri": "file://" + _uri_escape(os.path.abspath(path))}


def escape(text: str) -> str:
    """XML character data. Not xml.sax.saxutils': importing it imports urllib.request, http.client,
    email and ssl, ~30 ms of every `kbuildguard make` (issue 20's wrapper row) for three replaces."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quoteattr(text: str) -> str:
    """An XML attribute value with its double quotes; white space other than the space kept as
    references, since an attribute's value is normalized (XML 1.0, 3.3.3)."""
    return '"%s"' % escape(text).replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")


def _uri_escape(path: str) -> str:
    # os.fsencode: the file system's bytes, an undecodable byte (a surrogateescape) as itself
    return quote(os.fsencode(path.replace(os.sep, "/")), safe="/-._~")


def sarif(results: Sequence[KernelResult], base: str) -> str:
    """SARIF 2.1.0: one rule per gate (plus ``build``), one result per kernel x module x gate that
    the kernel refuses (error), never unloads (error), taints with (warning) or that was not checked
    (note); located at the module's .ko."""
    index = {rule_id(str(g)): i for i, g in enumerate(Gate)}
    index[rule_id(BUILD)] = len(index)
    found: List[Dict[str, Any]] = []
    for k, m, c in _cells(results):
        if m is None or c is None:
            found.append({"ruleId": rule_id(BUILD), "ruleIndex": index[rule_id(BUILD)], "level": "error",
                          "message": {"text": "kernel %s: %s" % (_line(k.kernel), clean(failure_text(k)))},
                          "locations": [build_location(k, base)],
                          "properties": {"kernel": clean(k.kernel), "exit_code": k.exit_code}})
            continue
        if c.ok and c.effect is Effect.OK:
            continue
        level = "error" if not c.ok else _LEVEL[c.effect]
        text = "kernel %s: %s: %s %s" % (_line(k.kernel), module_name(m.report.path), c.name, _line(c.message))
        if c.fix:
            text += " (fix: %s)" % _line(c.fix)
        found.append({
            "ruleId": rule_id(str(c.name)), "ruleIndex": index[rule_id(str(c.name))], "level": level,
            "message": {"text": text},
            "locations": [{"physicalLocation": {"artifactLocation": artifact_uri(f, base)}}
                          for f in (m.sources if c.name is Gate.COMPILER else ()) + (m.path,)],
            "partialFingerprints": {"kbuildguard/v1": "%s:%s:%s" % (clean(k.kernel), module_name(m.report.path), c.name)},
            "properties": {"kernel": clean(k.kernel), "module": clean(m.path), "gate": str(c.name),
                           "effect": str(c.effect), "ok": c.ok, "expected": clean(c.expected), "found": clean(c.found)},
        })
    doc = {"$schema": SARIF_SCHEMA, "version": "2.1.0",
           "runs": [{"tool": {"driver": {"name": "kbuildguard", "version": __version__,
                                         "rules": _rules()}},
                     "results": found}]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# Shown as a table cell, beyond what XML forbids: DEL and the C1 controls (a terminal or a renderer may
# act on them) and the bidirectional embeddings, overrides and isolates (U+202A-U+202E,
# U+2066-U+2069: a name that reads as another, "Trojan Source", CVE-2021-42574).
_NOT_SHOWN = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def md(text: str) -> str:
    """A Markdown table cell: | splits cells, a newline ends the table, <, > and & would be HTML."""
    text = _NOT_SHOWN.sub(lambda m: "\\x%02x" % ord(m.group()) if ord(m.group()) < 0x100 else "\\u%04x" % ord(m.group()),
                          _line(text))
    for a, b in (("\\", "\\\\"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "\\`"),
                 ("*", "\\*"), ("_", "\\_"), ("[", "\\["), ("]", "\\]")):
        text = text.replace(a, b)
    return text


_MARK = {Effect.OK: "ok", Effect.TAINTS: "taints", Effect.NOT_CHECKED: "?", Effect.CANNOT_UNLOAD: "**no unload**",
         Effect.REJECTED: "**REJECTED**"}


def markdown(results: Sequence[KernelResult]) -> str:
    """A matrix for $GITHUB_STEP_SUMMARY (or a merge request note): a row per kernel x module, a
    column per gate, then each refused gate's message."""
    gates = [g for g in Gate if any(c.name is g for _, _, c in _cells(results) if c is not None)]

    def row(cells: List[str]) -> str:
        return "| " + " | ".join(cells) + " |"
    lines = ["## kbuildguard: %d kernel(s)" % len(results), "",
             row(["kernel", "module", "result"] + [md(str(g)) for g in gates]), row(["---"] * (3 + len(gates)))]
    problems: List[str] = []
    for k in results:
        if not k.modules:
            lines.append(row([md(k.kernel), "-", "**%s**" % md(k.error or "no module was verified")] + ["-"] * len(gates)))
            problems.extend("- %s: %s" % (md(k.kernel), md(e)) for e in k.compiler_errors[:5])
            continue
        for m, module in zip(k.modules, names(k)):
            rep = m.report
            by_gate = {c.name: c for c in rep.checks}
            marks = []
            for g in gates:
                c = by_gate.get(g)
                marks.append("-" if c is None else "**REFUSED**" if not c.ok else _MARK[c.effect])
            # a refused module says its verdict, not the effect of its last gate (which may be
            # not-checked): mismatch, or error for a file that could not be read
            if rep.verdict is not Verdict.OK:
                result = "**%s**" % md(str(rep.verdict))
            else:
                result = "ok" if rep.effect is Effect.OK else md(str(rep.effect))
            name = md(module)  # kdemo~2 for a second kdemo, as in JUnit
            lines.append(row([md(k.kernel), name, result] + marks))
            for c in rep.checks:
                if _failed(c):
                    problems.append("- %s, %s, %s: %s" % (md(k.kernel), name, md(str(c.name)), md(c.message)))
    if problems:
        lines += ["", "### Refused", ""] + problems
    return "\n".join(lines) + "\n"


def check_paths(paths: ReportPaths, cwd: str) -> ReportPaths:
    """Refuse a report path before any work (a 40-minute build must not end in "cannot write"):
    empty, the same file twice, a folder, or a folder that does not exist or is not writable."""
    given = [(flag, p) for flag, p in zip(("--junit", "--sarif", "--markdown"), paths) if p is not None]
    for flag, p in given:
        if not p.strip():
            raise UsageError("%s: the file name is empty" % flag)
        if p.endswith(MODULE_SUFFIXES):
            # a slip of the shell (--junit kdemo.ko) would replace the verified module with XML
            raise UsageError("%s %s: that is a module's name; name the report file (junit.xml, kbuildguard.sarif, "
                             "summary.md)" % (flag, _line(p)))
    # a symlink is followed: the report replaces the file it points to, not the link
    absolute = [os.path.realpath(os.path.join(cwd, p)) if p is not None else None for p in paths]
    real = [os.path.realpath(p) for p in absolute if p is not None]
    if len(set(real)) != len(real):
        raise UsageError("--junit, --sarif and --markdown name the same file: give each its own")
    for (flag, p), path in zip(given, [a for a in absolute if a is not None]):
        folder = os.path.dirname(path) or "."
        if os.path.isdir(path):
            raise CannotWrite("%s %s: is a folder, not a file" % (flag, _line(p)))
        if os.path.lexists(path) and not os.path.isfile(path):
            # the rename would replace a device node, a FIFO or a socket (as root: /dev/null itself)
            raise CannotWrite("%s %s: is not a regular file; kbuildguard replaces the report file, so name a file" % (
                flag, _line(p)))
        if not os.path.isdir(folder):
            raise CannotWrite("%s %s: the folder %s does not exist" % (flag, _line(p), _line(folder)))
        if not os.access(folder, os.W_OK | os.X_OK):
            raise CannotWrite("%s %s: the folder %s is not writable" % (flag, _line(p), _line(folder)))
        if path == "/proc" or path.startswith(("/proc/", "/sys/")):
            # /proc/version, or a process substitution: <(echo) is /dev/fd/63, a link to a pipe that
            # realpath resolves under /proc/PID/fd -- no file can be renamed there
            raise CannotWrite("%s %s: resolves to %s, under /proc or /sys (a process substitution, a kernel file); "
                              "name a regular file" % (flag, _line(p), _line(path)))
        _probe(flag, p, folder)
    return ReportPaths(*absolute)


def _probe(flag: str, given: str, folder: str) -> None:
    """Create (and remove) the temporary file write_atomic will make, now: a folder that takes no new
    file (a read-only or special file system) is refused before the build, not after it."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".kbuildguard-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise CannotWrite("%s %s: cannot create a file in %s: %s" % (flag, _line(given), _line(folder), exc.strerror or exc))
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError:
        pass


def write_atomic(path: str, text: str) -> None:
    """Temp file in the same folder, then rename: a reader (a CI uploader, a concurrent job) sees
    the old report or the new one, never half of one."""
    folder = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix=".kbuildguard-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise CannotWrite("%s: %s" % (_line(path), exc.strerror or exc))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the report from the CI uploader's user
        os.replace(tmp, path)
    except BaseException as exc:  # a signal too (run.Stopped): no temporary file is left behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise CannotWrite("%s: %s" % (_line(path), exc.strerror or exc))
        raise


def write(paths: ReportPaths, results: Sequence[KernelResult], base: str) -> List[str]:
    """Every report asked for; returns the paths written."""
    written = []
    for path, render in ((paths.junit, junit), (paths.sarif, lambda r: sarif(r, base)), (paths.markdown, markdown)):
        if path is not None:
            write_atomic(path, render(results))
            written.append(path)
    return written
