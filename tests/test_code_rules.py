"""Linters as tests: one subprocess module, no shell strings, Python 3.6 syntax."""

import ast
import functools
import os
import re

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kbuildguard")


@functools.lru_cache(maxsize=None)
def _sources(top=PACKAGE):
    """(path relative to ``top``, text) of every Python file below it: the package, or the tests.
    Read once per run: some twenty rules walk the same files (the unit suite's time on 3.6)."""
    found = []
    for root, _, files in os.walk(top):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as f:
                    found.append((os.path.relpath(path, top), f.read()))
    return tuple(found)


@functools.lru_cache(maxsize=None)
def _parse(text):
    return ast.parse(text)


@functools.lru_cache(maxsize=None)
def _nodes(text):
    """Every node of a source's tree, parsed and walked once per run (the rules only read them)."""
    return tuple(ast.walk(_parse(text)))


# issue 21: the one door for processes (run.py) was checked by `import subprocess` only; os.system,
# os.exec*, os.spawn*, os.posix_spawn*, os.popen, asyncio's subprocesses and pty.spawn went around it.
PROCESS_MODULES = ("subprocess", "pty", "commands", "asyncio", "multiprocessing", "concurrent")
PROCESS_DOORS = {
    "run.py": PROCESS_MODULES,  # the door
    # the process pool that verifies many modules (fork, ProcessPoolExecutor): forks kbuildguard
    # itself, runs no program; docs/architecture.md's Conventions names it
    os.path.join("gates", "pool.py"): ("multiprocessing", "concurrent"),
}
OS_PROCESS_CALLS = re.compile(r"^(system|popen|fork|forkpty|exec\w*|spawn\w*|posix_spawn\w*)$")


@functools.lru_cache(maxsize=None)
def _aliases(text):
    """name -> module of every `import M`, `import M as N` and `from P import M as N` of a source (issue 21:
    `import os as o; o.environ` went around rules that looked for the name `os`). A name bound to
    anything else (`from kbuildguard import run`) maps to its own dotted path, which no rule names."""
    found = {}
    for node in _nodes(text):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    found[a.asname] = a.name
                else:
                    found[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            for a in node.names:
                found[a.asname or a.name] = node.module + "." + a.name
    return found


def _module_of(node, text):
    """The module an expression names: `os` for os, o (import os as o), sys.modules["os"],
    importlib.import_module("os"), __import__("os"); a name's own dotted path or None otherwise."""
    if isinstance(node, ast.Name):
        return _aliases(text).get(node.id, node.id)  # an unbound name is read as the module it names (a test's form)
    key = _constant(node.slice.value if isinstance(node, ast.Subscript) and type(node.slice).__name__ == "Index"
                    else node.slice) if isinstance(node, ast.Subscript) else None
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "modules" and \
            _module_of(node.value.value, text) == "sys":
        return key
    if isinstance(node, ast.Call) and node.args and (
            isinstance(node.func, ast.Name) and node.func.id == "__import__" or
            isinstance(node.func, ast.Attribute) and node.func.attr in ("import_module", "__import__")):
        return _constant(node.args[0])
    return None


def _constant(node):
    """The value of a string constant (ast.Str on 3.6 and 3.7, ast.Constant from 3.8); None otherwise."""
    kind = type(node).__name__
    value = node.value if kind == "Constant" else node.s if kind == "Str" else None
    return value if isinstance(value, str) else None


@functools.lru_cache(maxsize=None)
def module_attributes(text):
    """(node, module, attribute) of every way a source names a module's attribute: os.environ, o.environ
    (an alias), getattr(os, "environ"), vars(os)["environ"], os.__dict__["environ"],
    sys.modules["os"].environ; `from os import environ as e` and `from os import *` (attribute "*").
    A getattr or subscript whose name is not a constant gives the attribute "?"."""
    found = []
    for node in _nodes(text):
        if isinstance(node, ast.Attribute):
            module = _module_of(node.value, text)
            if module is not None and node.attr != "__dict__":
                found.append((node, module, node.attr))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr") \
                and len(node.args) >= 2:
            module = _module_of(node.args[0], text)
            if module is not None:
                found.append((node, module, _constant(node.args[1]) or "?"))
        elif isinstance(node, ast.Subscript):
            inner = node.value
            module = None
            if isinstance(inner, ast.Attribute) and inner.attr == "__dict__":
                module = _module_of(inner.value, text)
            elif isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id == "vars" and inner.args:
                module = _module_of(inner.args[0], text)
            if module is not None:
                index = node.slice.value if type(node.slice).__name__ == "Index" else node.slice
                found.append((node, module, _constant(index) or "?"))
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            for a in node.names:
                found.append((node, node.module, a.name))
    return tuple(found)


def process_doors(sources=None):
    """Modules that start a process (or could) outside run.py: an import of subprocess, pty,
    asyncio, multiprocessing or concurrent (by name, or sys.modules["subprocess"],
    importlib.import_module("subprocess")), an os.system/exec*/spawn*/posix_spawn*/popen/fork
    however os is named (module_attributes)."""
    offenders = []
    for rel, text in (sources if sources is not None else _sources()):
        allowed = PROCESS_DOORS.get(rel, ())
        for node in _nodes(text):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            elif isinstance(node, (ast.Subscript, ast.Call)):
                names = [_module_of(node, text) or ""]
            for name in names:
                if name.split(".")[0] in PROCESS_MODULES and name.split(".")[0] not in allowed:
                    offenders.append("%s:%d: %s" % (rel, node.lineno, name))
        if rel != "run.py":
            for node, module, attr in module_attributes(text):
                if module == "os" and (OS_PROCESS_CALLS.match(attr) or attr in ("*", "?")):
                    offenders.append("%s:%d: os.%s" % (rel, node.lineno, attr))
    return offenders


def test_only_run_starts_processes():
    assert process_doors() == []


def test_the_process_rule_sees_every_door():
    doors = ["import subprocess", "os.system(c)", "os.execvp(a, b)", "os.execl(a, b)", "os.spawnlp(m, a)",
             "os.posix_spawn(a, b, e)", "os.posix_spawnp(a, b, e)", "os.popen(c)", "import asyncio",
             "from asyncio import create_subprocess_exec", "from asyncio.subprocess import PIPE", "import pty",
             "from pty import spawn", "from os import system", "from os import execv as e", "import multiprocessing",
             "from concurrent.futures import ProcessPoolExecutor", "os.fork()",
             # the re-test's bypasses (issue 21): aliases, getattr, the module table, importlib
             "import os as o\no.system(c)", "import os as o\ngetattr(o, 'execv')(a, b)", "getattr(os, 'system')(c)",
             "sys.modules['subprocess'].run(a)", "import sys as s\ns.modules['subprocess']", "importlib.import_module('pty')",
             "__import__('subprocess')", "from os import *", "vars(os)['system'](c)", "os.__dict__['popen'](c)",
             "getattr(os, name)(c)", "sys.modules['os'].system(c)"]
    found = process_doors([("m%d.py" % i, door + "\n") for i, door in enumerate(doors)])
    assert sorted({f.split(":")[0] for f in found}) == sorted("m%d.py" % i for i in range(len(doors)))
    assert process_doors([("run.py", "import subprocess\nos.execvp(a, b)\n"),
                          (os.path.join("gates", "pool.py"), "import multiprocessing\n"),
                          ("ok.py", "os.path.join(a)\nfrom os import path\n")]) == []
    assert process_doors([(os.path.join("gates", "pool.py"), "import subprocess\n")]) != []


# issue 21: an import by name (importlib.import_module, __import__, sys.modules[...]) hides an edge
# from the layer rule and the one-door rule; none is used.
def dynamic_imports(sources=None):
    offenders = []
    for rel, text in (sources if sources is not None else _sources()):
        for node in _nodes(text):
            if isinstance(node, ast.Name) and node.id == "__import__" or \
                    isinstance(node, ast.Attribute) and node.attr in ("import_module", "__import__") or \
                    isinstance(node, ast.Attribute) and node.attr == "modules" and _module_of(node.value, text) == "sys" or \
                    isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                        (getattr(node, "module", None) or a.name).split(".")[0] == "importlib" for a in node.names):
                offenders.append("%s:%d" % (rel, node.lineno))
    return offenders


def test_no_dynamic_imports():
    assert dynamic_imports() == []


def test_the_dynamic_import_rule_sees_every_form():
    forms = ["importlib.import_module(n)", "__import__(n)", "sys.modules[n]", "sys.modules.get(n)",
             "import importlib", "from importlib import import_module", "builtins.__import__(n)",
             "import sys as s\ns.modules[n]", "import importlib as il\nil.import_module(n)"]
    found = dynamic_imports([("m%d.py" % i, form + "\n") for i, form in enumerate(forms)])
    assert sorted({f.split(":")[0] for f in found}) == sorted("m%d.py" % i for i in range(len(forms)))
    assert dynamic_imports([("ok.py", "import os\nfrom kbuildguard import run\n")]) == []


def test_no_shell_true():
    for rel, text in _sources():
        assert not re.search(r"shell\s*=\s*True", text), rel


def test_no_sys_exit_in_library_code():
    for rel, text in _sources():
        if rel not in ("cli.py", "__main__.py", "clidoc.py"):  # the entry points (clidoc: python3 -m at package build)
            assert "sys.exit(" not in text, rel


def test_no_syntax_newer_than_3_6():
    """3.6 cannot parse these; the suite also runs on a real 3.6, this names the line faster."""
    for rel, text in _sources():
        for node in _nodes(text):
            assert not type(node).__name__ == "NamedExpr", "%s: walrus needs 3.8" % rel
        assert "from __future__ import annotations" not in text, rel
        assert not re.search(r"^\s*def .*\(.*\b/\s*[,)]", text, re.M), "%s: positional-only parameters need 3.8" % rel


def _module_name(rel):
    """kbuildguard.formats.der for formats/der.py; kbuildguard.formats for formats/__init__.py."""
    return "kbuildguard." + rel[:-3].replace(os.sep, ".").replace("/", ".").replace(".__init__", "")


def _absolute(rel, node):
    """The absolute module an ImportFrom names: `from ..gates.model import Gate` in formats/der.py is
    kbuildguard.gates.model (level 1 is the importer's own package, each level more one package up)."""
    if not node.level:
        return node.module or ""
    package = _module_name(rel).split(".")
    if not rel.endswith("__init__.py"):
        package = package[:-1]
    base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join(base + ([node.module] if node.module else []))


def _imports(sources=None):
    """(importer, imported module, names) for every kbuildguard import, module-level or inside
    functions; relative imports are resolved to the absolute module they name."""
    return _tree_imports() if sources is None else list(_read_imports(sources))


@functools.lru_cache(maxsize=None)
def _tree_imports():
    return list(_read_imports(_sources()))


def _read_imports(sources):
    for rel, text in sources:
        me = _module_name(rel)
        for node in _nodes(text):
            if isinstance(node, ast.ImportFrom):
                module = _absolute(rel, node)
                if module.startswith("kbuildguard"):
                    yield me, module, [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("kbuildguard"):
                        yield me, a.name, []


def test_relative_imports_are_resolved():
    der = ("formats/der.py", "from ..gates.model import Gate\nfrom . import elf\nfrom .elf import Elf\n")
    init = ("formats/__init__.py", "from .der import read\nfrom .. import errors\n")
    assert list(_imports([der, init])) == [
        ("kbuildguard.formats.der", "kbuildguard.gates.model", ["Gate"]),
        ("kbuildguard.formats.der", "kbuildguard.formats", ["elf"]),
        ("kbuildguard.formats.der", "kbuildguard.formats.elf", ["Elf"]),
        ("kbuildguard.formats", "kbuildguard.formats.der", ["read"]),
        ("kbuildguard.formats", "kbuildguard", ["errors"]),
    ]


def test_no_relative_imports():
    """Every import names its module in full: the layer rule below reads them as they are written."""
    offenders = [rel for rel, text in _sources() for node in _nodes(text)
                 if isinstance(node, ast.ImportFrom) and node.level]
    assert offenders == []


def test_no_module_imports_another_modules_private_names():
    offenders = [(me, mod, n) for me, mod, names in _imports() for n in names
                 if n.startswith("_") and not n.endswith("__") and mod != me]
    assert offenders == []


def test_import_graph_has_no_cycle():
    """No module imports one that imports it back, through any chain (the layer rule above holds across
    units; this holds inside a unit too: formats/module -> formats/elf, never back). Data flows one
    way: settings -> target -> toolchain/provision -> gates -> explain -> report -> build (render,
    kbuild, outputs) -> commands."""
    modules = {me for me, _, _ in _imports()}
    graph = {}
    for me, mod, names in _imports():
        targets = {mod + "." + n for n in names if mod + "." + n in modules} or {mod}
        graph.setdefault(me, set()).update(t for t in targets if t != me and t in modules | {mod})
    state = {}

    def visit(node, path):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", "import cycle: " + " -> ".join(path + [node])
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, path + [node])
        state[node] = "done"

    for node in sorted(graph):
        visit(node, [])


def test_cli_is_only_argparse_dispatch_and_exit_codes():
    with open(os.path.join(PACKAGE, "cli.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    domain = ("kbuildguard.formats", "kbuildguard.target", "kbuildguard.gates", "kbuildguard.build", "kbuildguard.explain",
              "kbuildguard.provision", "kbuildguard.toolchain", "kbuildguard.report")
    assert [m for m in imported if m.startswith(domain)] == []


def test_nothing_below_the_cli_reads_kbuildguard_environment():
    for rel, text in _sources():
        if rel != "settings.py":
            assert not re.search(r"""(\.get\(|\[)\s*["']KBUILDGUARD_[A-Z]""", text), rel


# The architecture, lowest layer first. A module imports from its own unit (a top-level module, or a
# folder) and from lower layers only; units that share a layer do not import each other. A new module
# must be placed here, so the table cannot fall behind the tree.
LAYERS = (
    ("errors", "strenum", "versions"),
    ("bounded",),  # every open() for reading (test_every_open_for_reading_is_bounded)
    ("arch", "console", "settings", "probecache"),
    ("identity", "run", "project"),
    ("context",),
    ("formats",),  # every parser of untrusted bytes: the security boundary
    ("target",),  # what the target kernel is
    ("toolchain",),  # which compiler matches it
    ("gates", "provision"),  # the loader model; installing a compiler
    ("explain",),
    ("report", "cireport"),  # JSON; JUnit, SARIF and Markdown of the same records
    ("build",),  # the guarded make
    ("commands",),  # one module per verb
    ("cli", "__init__"),
    ("__main__", "clidoc"),  # clidoc: the man page and completion, from cli's parser
)


def _unit(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_has_a_layer():
    placed = {u for layer in LAYERS for u in layer}
    units = {_unit("kbuildguard." + rel[:-3].replace(os.sep, ".")) for rel, _ in _sources()}
    assert units - placed == set(), "add the new module or folder to LAYERS"


def _layer_offenders(sources=None):
    rank = {u: i for i, layer in enumerate(LAYERS) for u in layer}
    offenders = []
    for me, mod, names in _imports(sources):
        targets = [mod + "." + n for n in names] if mod == "kbuildguard" else [mod]
        for target in targets:
            a, b = _unit(me), _unit(target)
            if b in ("__version__",):
                continue
            if a != b and rank[b] >= rank[a]:
                offenders.append("%s imports %s" % (me, target))
    return offenders


def test_lower_layers_never_import_higher_ones():
    assert _layer_offenders() == []


def test_the_layer_rule_sees_relative_imports():
    assert _layer_offenders([("formats/der.py", "from ..gates.model import Gate\n")]) == [
        "kbuildguard.formats.der imports kbuildguard.gates.model"]
    assert _layer_offenders([("formats/der.py", "from .. import cli\n")]) == ["kbuildguard.formats.der imports kbuildguard.cli"]
    assert _layer_offenders([("gates/trust.py", "from ..formats import der\n")]) == []


ROOT = os.path.dirname(PACKAGE)
FRAME = "(top level)"


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def _folders():
    return sorted(d for d in os.listdir(PACKAGE) if os.path.isfile(os.path.join(PACKAGE, d, "__init__.py")))


def _unit_name(unit):
    return unit + "/" if unit in _folders() else unit


def _sections(text):
    """(heading, body) of each `## ` section of a page."""
    return [(part.split("\n", 1)[0], part.split("\n", 1)[1] if "\n" in part else "")
            for part in re.split(r"^## ", text, flags=re.M)[1:]]


def _section_unit(heading):
    """The folder a section of docs/architecture.md is about (`formats/` in its heading), FRAME for
    the frame's section, None for the others (layers, conventions)."""
    folder = re.search(r"`(\w+)/`", heading)
    return folder.group(1) if folder else FRAME if heading.startswith("The frame") else None


def architecture_problems(text, modules):
    """Where docs/architecture.md differs from the tree (``modules``: paths relative to kbuildguard/)."""
    problems = []
    layers = dict(_sections(text)).get("Layers", "")
    rows = [(int(n), [u.strip("`") for u in units.split(", ")])
            for n, units in re.findall(r"^\| (\d+) \| (.+) \|$", layers, re.M)]
    expected = [(i + 1, [_unit_name(u) for u in layer]) for i, layer in enumerate(LAYERS)]
    if rows != expected:
        problems.append("the Layers table is not LAYERS: %s" % rows)
    rank = {u: i for i, layer in enumerate(LAYERS) for u in layer}
    order = []
    placed = {}
    for heading, body in _sections(text):
        unit = _section_unit(heading)
        names = re.findall(r"^\| `kbuildguard/([\w/]+\.py)` \|", body, re.M)
        if unit is None:
            problems += ["%s: a module row outside its folder's section (%s)" % (n, heading) for n in names]
            continue
        order.append(unit)
        for name in names:
            home = name.split("/")[0] if "/" in name else FRAME
            if home != unit:
                problems.append("%s: its row is in the section of %s" % (name, unit))
            if name in placed:
                problems.append("%s: two rows" % name)
            placed[name] = unit
        if unit == FRAME:
            framed = [n[:-3] for n in names]
            if framed != sorted(framed, key=lambda n: rank.get(n, -1)):
                problems.append("the frame's rows are not in layer order: %s" % framed)
            for n, layer in re.findall(r"^\| `kbuildguard/(\w+)\.py` \| (\d+) \|", body, re.M):
                if n in rank and int(layer) != rank[n] + 1:
                    problems.append("%s: shown in layer %s, LAYERS has it in %d" % (n, layer, rank[n] + 1))
    folders_in_order = [FRAME] + [u for layer in LAYERS for u in layer if u in _folders()]
    if order != folders_in_order:
        problems.append("sections are %s, LAYERS orders them %s" % (order, folders_in_order))
    problems += ["%s: no row" % m for m in sorted(set(modules) - set(placed))]
    problems += ["%s: a row, but no such module" % m for m in sorted(set(placed) - set(modules))]
    return problems


def _tree():
    return sorted(rel.replace(os.sep, "/") for rel, _ in _sources())


def test_architecture_page_is_the_tree():
    assert architecture_problems(_read("docs", "architecture.md"), _tree()) == []


def test_architecture_check_sees_a_missing_or_misplaced_row():
    text = _read("docs", "architecture.md")
    row = [line for line in text.splitlines() if line.startswith("| `kbuildguard/gates/trust.py` |")][0]
    # the row gone, though prose still names the module
    gone = text.replace(row + "\n", "") + "\nprose: `kbuildguard/gates/trust.py`\n"
    assert architecture_problems(gone, _tree()) == ["gates/trust.py: no row"]
    # the row moved into the build/ section
    moved = text.replace(row + "\n", "").replace("| `kbuildguard/build/kbuild.py` |", row + "\n| `kbuildguard/build/kbuild.py` |")
    assert architecture_problems(moved, _tree()) == ["gates/trust.py: its row is in the section of build"]
    # two folder sections swapped
    starts = [m.start() for m in re.finditer(r"^## ", text, re.M)] + [len(text)]
    sections = [text[:starts[0]]] + [text[a:b] for a, b in zip(starts, starts[1:])]  # 3.6 splits on no empty match
    i, j = [k for k, part in enumerate(sections) if part.startswith(("## `target/`", "## `gates/`"))]
    sections[i], sections[j] = sections[j], sections[i]
    assert any(p.startswith("sections are") for p in architecture_problems("".join(sections), _tree()))
    # the layer table differs from LAYERS
    assert any(p.startswith("the Layers table") for p in architecture_problems(text.replace("| 8 | `toolchain` |", ""), _tree()))
    # a frame module shown at the wrong layer
    assert architecture_problems(text.replace("| `kbuildguard/report.py` | 11 |", "| `kbuildguard/report.py` | 4 |"), _tree()) \
        == ["report: shown in layer 4, LAYERS has it in 11"]


def readme_layout_folders(text):
    """The package folders the README's Layout section names (`formats/`, ...; `kbuildguard/` itself
    aside), in the order it first names them."""
    section = dict(_sections(text)).get("Layout", "")
    named = [f for f in re.findall(r"`(\w+)/`", section) if f != "kbuildguard"]
    return [f for i, f in enumerate(named) if f not in named[:i]]


def _folders_in_layer_order():
    return [u for layer in LAYERS for u in layer if u in _folders()]


def test_readme_layout_names_every_folder_in_layer_order():
    assert readme_layout_folders(_read("README.md")) == _folders_in_layer_order()


def test_readme_layout_check_sees_a_missing_folder():
    text = _read("README.md")
    assert readme_layout_folders(text.replace("`explain/`", "explain")) == [
        f for f in _folders_in_layer_order() if f != "explain"]


def _test_sources():
    return _sources(os.path.dirname(os.path.abspath(__file__)))


def test_no_assert_hides_a_condition_in_its_message():
    """``assert code == 0, err and x == y``: the second condition is the message and can never fail."""
    offenders = []
    for rel, text in _test_sources():
        for node in _nodes(text):
            if isinstance(node, ast.Assert) and node.msg is not None:
                msg = node.msg
                if isinstance(msg, ast.BoolOp) and any(isinstance(v, ast.Compare) for v in msg.values):
                    msg = next(v for v in msg.values if isinstance(v, ast.Compare))
                if isinstance(msg, ast.Compare):
                    offenders.append("%s:%d" % (rel, node.lineno))
    assert offenders == []


def test_no_shift_by_unparenthesized_arithmetic():
    """``1 << 64 - 1`` is ``1 << 63``: a shift whose right side is + or - arithmetic must say so with parentheses."""
    offenders = []
    for rel, text in list(_test_sources()) + list(_sources()):
        lines = text.splitlines()
        for node in _nodes(text):
            if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.LShift, ast.RShift)) and \
                    isinstance(node.right, ast.BinOp) and isinstance(node.right.op, (ast.Add, ast.Sub)):
                line = lines[node.lineno - 1]
                if not re.search(r"<<\s*\(|>>\s*\(", line):
                    offenders.append("%s:%d" % (rel, node.lineno))
    assert offenders == []


def test_every_read_is_bounded():
    """No ``f.read()``, ``readlines()``, ``readline()`` without a size, ``json.load(f)`` or ``for line in f``
    in kbuildguard: a path may name /dev/zero or an endless FIFO. Read through kbuildguard/bounded.py."""
    offenders = []
    for rel, text in _sources():
        for node in _nodes(text):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                if name in ("read", "readlines", "readline", "read_text", "read_bytes") and not node.args and not node.keywords:
                    offenders.append("%s:%d: .%s() without a size" % (rel, node.lineno, name))
                if name == "load" and isinstance(node.func.value, ast.Name) and node.func.value.id == "json":
                    offenders.append("%s:%d: json.load() reads a whole file: json.loads(bounded.read_text(...))" % (rel, node.lineno))
            if isinstance(node, ast.For) and isinstance(node.iter, ast.Name) and node.iter.id in ("f", "fh", "handle", "stream"):
                offenders.append("%s:%d: for ... in %s reads lines of any length" % (rel, node.lineno, node.iter.id))
    assert offenders == []


# issue 21: `check --trusted-cert /dev/kmsg` hung in trust.load_certificates' open()+read(N): a size
# bounds a read of a device, not its wait. Every open for reading goes through bounded.open_file
# (devices refused at once). Writing (mode w, a, x; os.open with O_WRONLY or O_RDWR) is free, and
# so is opening what is already open (tarfile.open(fileobj=...)).
OPENERS = ("io", "gzip", "tarfile", "lzma", "bz2", "codecs", "builtins", "zipfile")
# File classes that open a path themselves (with fileobj= they read what the caller opened)
FILE_CLASSES = {("io", "FileIO"), ("gzip", "GzipFile"), ("lzma", "LZMAFile"), ("bz2", "BZ2File"), ("zipfile", "ZipFile"),
                ("tarfile", "TarFile")}
# pathlib's readers: Path(p).open(), p.read_text(), p.read_bytes() read a path with no bound
PATH_READERS = ("read_text", "read_bytes")
# Modules that may open for reading, and why:
READ_OPEN_ALLOWED = frozenset({
    "bounded.py",  # the one bounded reader
})


def _open_mode(node):
    """The mode string of an open(...) call; None when it is not a constant."""
    mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
    if mode is None:
        return "r"
    kind = type(mode).__name__  # ast.Constant from 3.8, ast.Str on 3.6 and 3.7
    value = mode.value if kind == "Constant" else mode.s if kind == "Str" else None
    return value if isinstance(value, str) else None


def read_opens(sources=None):
    """Opens for reading outside bounded.py: builtin open(), io/gzip/tarfile/lzma/bz2/codecs.open()
    of a path, os.open() without O_WRONLY or O_RDWR."""
    offenders = []
    for rel, text in (sources if sources is not None else _sources()):
        if rel in READ_OPEN_ALLOWED:
            continue
        for node in _nodes(text):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id == "open" or isinstance(func, ast.Attribute) and \
                    func.attr == "open" and _module_of(func.value, text) in OPENERS:
                if any(k.arg == "fileobj" for k in node.keywords):
                    continue
                mode = _open_mode(node)
                # "r+" reads too: only a mode that cannot read ("w", "a", "x" without "+") is a write
                if mode is None or not set(mode) & set("wax") or "+" in mode:
                    offenders.append("%s:%d: open for reading: bounded.open_file/read_file/read_head" % (rel, node.lineno))
            elif isinstance(func, ast.Attribute) and (_module_of(func.value, text), func.attr) in FILE_CLASSES \
                    and not any(k.arg == "fileobj" for k in node.keywords):
                offenders.append("%s:%d: %s.%s of a path: bounded.open_file, then fileobj=" % (
                    rel, node.lineno, _module_of(func.value, text), func.attr))
            elif isinstance(func, ast.Attribute) and (func.attr in PATH_READERS or func.attr == "open"
                                                      and isinstance(func.value, ast.Call)) \
                    and not (isinstance(func.value, ast.Name) and func.value.id == "bounded"):
                offenders.append("%s:%d: a path's .%s(): bounded.read_file/read_text" % (rel, node.lineno, func.attr))
            elif isinstance(func, ast.Attribute) and func.attr == "open" and _module_of(func.value, text) == "os":
                flags = {n.attr for arg in node.args[1:2] for n in ast.walk(arg) if isinstance(n, ast.Attribute)}
                if not flags & {"O_WRONLY", "O_RDWR"}:
                    offenders.append("%s:%d: os.open for reading: bounded.open_file" % (rel, node.lineno))
        for node in _nodes(text):
            if isinstance(node, ast.ImportFrom) and node.module in OPENERS + ("pathlib",) and \
                    any(a.name in ("open", "Path", "PosixPath", "*") + tuple(c for _, c in FILE_CLASSES) for a in node.names):
                offenders.append("%s:%d: from %s import an opener: bounded.open_file" % (rel, node.lineno, node.module))
        offenders += _openers_passed_around(rel, text)
    return offenders


def _openers_passed_around(rel, text):
    """An opener named but not called where the rule reads its mode (issue 21's re-test): `o = open`,
    `f = io.open`, getattr(builtins, "open"), vars(io)["open"]; its calls are read by no rule."""
    called = {id(node.func) for node in _nodes(text) if isinstance(node, ast.Call)}
    offenders = []
    for node in _nodes(text):
        if isinstance(node, ast.Name) and node.id == "open" and isinstance(node.ctx, ast.Load) and id(node) not in called:
            offenders.append("%s:%d: open passed around: bounded.open_file" % (rel, node.lineno))
    for node, module, attr in module_attributes(text):
        if isinstance(node, ast.ImportFrom) or module not in OPENERS + ("os",):
            continue
        opener = attr in ("open", "?") or (module, attr) in FILE_CLASSES
        if opener and (not isinstance(node, ast.Attribute) or id(node) not in called):
            offenders.append("%s:%d: %s.%s named, not called: bounded.open_file" % (rel, node.lineno, module, attr))
    return offenders


def test_every_open_for_reading_is_bounded():
    assert read_opens() == []


def test_the_open_rule_sees_every_form():
    forms = [
        ("a.py", "open(p)\n"), ("b.py", "open(p, 'rb')\n"), ("c.py", "open(p, mode='r', encoding='utf-8')\n"),
        ("d.py", "gzip.open(p)\n"), ("e.py", "tarfile.open(p)\n"), ("f.py", "os.open(p, os.O_RDONLY)\n"),
        ("g.py", "io.open(p, 'rb')\n"), ("h.py", "open(p, m)\n"),
        ("ok.py", "open(p, 'w')\nopen(p, 'ab')\nopen(p, 'x')\nos.open(p, os.O_WRONLY | os.O_CREAT)\n"
                  "tarfile.open(fileobj=f)\nbook.open(e)\n"),
        ("bounded.py", "open(p, 'rb')\n"),
        # the re-test's bypasses (issue 21)
        ("i.py", "Path(p).open('rb')\n"), ("j.py", "q.read_text(encoding='utf-8')\n"), ("k.py", "q.read_bytes()\n"),
        ("l.py", "open(p, 'r+')\n"), ("m.py", "io.FileIO(p)\n"), ("n.py", "gzip.GzipFile(p)\n"),
        ("o.py", "lzma.LZMAFile(p)\n"), ("p.py", "zipfile.ZipFile(p)\n"), ("q.py", "builtins.open(p)\n"),
        ("r.py", "from io import open as o\n"), ("s.py", "from pathlib import Path\n"),
        ("ok2.py", "gzip.GzipFile(fileobj=f)\nbounded.read_text(p, L)\n"),
        # aliases, getattr, an opener passed around, the module table (issue 21's last re-test)
        ("t.py", "import io as i\ni.open(p, 'rb')\n"), ("u.py", "import gzip as g\ng.open(p)\n"),
        ("v.py", "getattr(builtins, 'open')(p)\n"), ("w.py", "o = open\no(p)\n"), ("x.py", "f = io.open\n"),
        ("y.py", "from io import *\n"), ("z.py", "sys.modules['builtins'].open(p)\n"), ("za.py", "vars(io)['open'](p)\n"),
        ("zb.py", "import os as o\no.open(p, o.O_RDONLY)\n"), ("zc.py", "import lzma as z\nz.LZMAFile(p)\n"),
        ("zd.py", "functools.partial(open, mode='rb')\n"),
        ("ok3.py", "import io as i\ni.open(p, 'w')\nimport os as o\no.open(p, o.O_WRONLY)\nself.open(x)\n"),
    ]
    assert [o.split(":")[0] for o in read_opens(forms)] == ["a.py", "b.py", "c.py", "d.py", "e.py", "f.py", "g.py", "h.py",
                                                              "i.py", "j.py", "k.py", "l.py", "m.py", "n.py", "o.py",
                                                              "p.py", "q.py", "r.py", "s.py", "t.py", "u.py", "v.py",
                                                              "w.py", "x.py", "y.py", "z.py", "za.py", "zb.py", "zc.py",
                                                              "zd.py"]


# Wide records built by position hid which value was which (issue 21: 50 Check(...) calls with four
# adjacent strings, ModuleInfo with 19 arguments, MakeOptions with 16, LoadFinding with 14): every
# NamedTuple of WIDE_RECORD fields or more, in kbuildguard/ or tests/, is built with keywords.
WIDE_RECORD = 6
# and these, whatever their width (issue 21's first list; ModuleReport has four fields)
KEYWORD_ONLY = ("Check", "ModuleInfo", "KernelTarget", "ModuleReport", "Expectation")
# Files that may still build a wide record by position, and why (each must still do so: not stale)
POSITIONAL_ALLOWED: dict = {}  # none left: every wide record is built with keywords


def _all_sources():
    """(path from the repository's root, text) of the package and the tests."""
    return [("kbuildguard/" + rel.replace(os.sep, "/"), text) for rel, text in _sources()] + \
        [("tests/" + rel.replace(os.sep, "/"), text) for rel, text in _test_sources()]


def record_widths(sources):
    """path -> {NamedTuple class name: number of fields} of every class-syntax NamedTuple."""
    widths = {}
    for rel, text in sources:
        for node in _nodes(text):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Name) and b.id == "NamedTuple" or isinstance(b, ast.Attribute) and b.attr == "NamedTuple"
                    for b in node.bases):
                widths.setdefault(rel, {})[node.name] = sum(1 for n in node.body if isinstance(n, ast.AnnAssign))
    return widths


def _own_narrow(name, own):
    """Whether the calling file defines its own narrow record of that name (build/pipeline's Outcome)."""
    return name not in KEYWORD_ONLY and own.get(name, WIDE_RECORD) < WIDE_RECORD


def positional_records(sources=None):
    """A call of a wide record's name (Name(...), module.Name(...)) with a positional or starred argument,
    and Name._make(...) (a tuple in field order). A name is wide when some NamedTuple of that name has
    WIDE_RECORD fields or more, unless the calling file defines a narrower one of its own."""
    sources = list(sources if sources is not None else _all_sources())
    widths = record_widths(sources)
    wide = {name for per in widths.values() for name, n in per.items() if n >= WIDE_RECORD} | set(KEYWORD_ONLY)
    offenders = []
    for rel, text in sources:
        own = widths.get(rel, {})
        for node in _nodes(text):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name == "_make" and isinstance(func, ast.Attribute):
                inner = func.value
                name = inner.id if isinstance(inner, ast.Name) else inner.attr if isinstance(inner, ast.Attribute) else None
                if name in wide and not _own_narrow(name, own):
                    offenders.append("%s:%d: %s._make builds by position" % (rel, node.lineno, name))
            elif name in wide and not _own_narrow(name, own) and node.args:
                offenders.append("%s:%d: %s(...) with %d positional argument(s)" % (rel, node.lineno, name, len(node.args)))
    return offenders


@functools.lru_cache(maxsize=None)
def _tree_positional_records():
    return positional_records()


def test_wide_records_are_built_with_keywords():
    assert [o for o in _tree_positional_records() if o.split(":")[0] not in POSITIONAL_ALLOWED] == []


def test_positional_allow_list_is_not_stale():
    assert sorted(set(POSITIONAL_ALLOWED) - {o.split(":")[0] for o in _tree_positional_records()}) == []


def test_the_keyword_rule_sees_every_wide_record():
    record = "class Wide(NamedTuple):\n" + "".join("    f%d: int\n" % i for i in range(WIDE_RECORD)) + \
        "class Narrow(typing.NamedTuple):\n    a: int\n    b: int\n"
    forms = ["Wide(a, b)", "model.Wide(a, f1=1)", "x.Wide(*fields)", "Wide._make(row)", "model.Wide._make(r)",
             "Check(a, b)", "verify.ModuleReport(p, v, c, i)"]
    sources = [("defs.py", record), ("check.py", "class Check(NamedTuple):\n" + "    a: int\n" * WIDE_RECORD)]
    found = positional_records(sources + [("m%d.py" % i, form + "\n") for i, form in enumerate(forms)])
    assert sorted({f.split(":")[0] for f in found}) == sorted("m%d.py" % i for i in range(len(forms)))
    ok = [("ok.py", "Wide(f0=g, f1=e)\nmodel.Wide(**kw)\nc._replace(f0=1)\nNarrow(1, 2)\n"),
          ("own.py", "class Wide(NamedTuple):\n    a: int\nWide(1)\n")]  # a file's own narrow record of that name
    assert positional_records(sources + ok) == []


def _constructions(name, sources=None):
    """Modules (relative paths) that call NAME(...) or x.NAME(...)."""
    found = set()
    for rel, text in sources if sources is not None else _sources():
        for node in _nodes(text):
            if isinstance(node, ast.Call) and (isinstance(node.func, ast.Name) and node.func.id == name or
                                               isinstance(node.func, ast.Attribute) and node.func.attr == name):
                found.add(rel)
    return found


def test_one_expectation_builder():
    """issue 21: make, check and explain built it three ways; gates/expectation.expect is the one builder."""
    assert _constructions("Expectation") == {os.path.join("gates", "expectation.py")}


def test_the_builder_rule_sees_attribute_calls():
    assert _constructions("Expectation", [("a.py", "verify.Expectation(target=t)\n"), ("b.py", "Expectation\n")]) == {"a.py"}


# issue 21: no function above radon's C (cyclomatic complexity > 20) in the layers that parse hostile
# bytes, decide the loader's verdict or run the build, and none above D (> 30) anywhere else: a stage
# a reader can name is a function. The allow-list names what is left, each with why; an entry must
# still be above its limit (test_complexity_allow_list_is_not_stale), so the list empties as it is split.
COMPLEXITY_FOLDERS = ("gates", "formats", "build")
MAX_COMPLEXITY = 20  # radon's rank C ends at 20 (radon.complexity.cc_rank: D from 21)
MAX_COMPLEXITY_ELSEWHERE = 30  # rank D ends at 30 (E from 31)
COMPLEXITY_ALLOWED: dict = {}  # none left (rebootcheck.run was split: E32 -> B10)


def _radon():
    import pytest

    return pytest.importorskip(
        "radon.complexity", reason="radon is not installed here: every tests/requirements*.txt lists it, so CI runs this "
        "rule on every leg; pip install radon to run it locally")


def too_complex(sources=None):
    """path:function -> complexity of every function above its limit (C in COMPLEXITY_FOLDERS, D elsewhere)."""
    complexity = _radon()
    found = {}
    for rel, text in (sources if sources is not None else _sources()):
        limit = MAX_COMPLEXITY if rel.split(os.sep)[0] in COMPLEXITY_FOLDERS else MAX_COMPLEXITY_ELSEWHERE
        for block in complexity.cc_visit_ast(_parse(text)):  # the tree the other rules parsed
            if block.complexity > limit:
                found["%s:%s" % (rel.replace(os.sep, "/"), block.fullname)] = block.complexity
    return found


@functools.lru_cache(maxsize=None)
def _tree_too_complex():
    return too_complex()


def test_no_function_above_its_complexity_limit():
    assert {name: n for name, n in _tree_too_complex().items() if name not in COMPLEXITY_ALLOWED} == {}


def test_the_complexity_rule_has_two_limits():
    def branches(n):  # a function of complexity n + 1
        return "def f(x):\n" + "".join("    if x == %d:\n        return %d\n" % (i, i) for i in range(n)) + "    return -1\n"

    sources = [("toolchain.py", branches(29)), ("target/kernel.py", branches(30)), (os.path.join("gates", "trust.py"), branches(20)),
               (os.path.join("formats", "elf.py"), branches(19)), ("commands/make.py", branches(29))]
    assert too_complex(sources) == {"target/kernel.py:f": 31, "gates/trust.py:f": 21}


def test_every_requirements_file_installs_radon():
    """issue 21: the complexity rule was skipped in every CI leg, radon being in no requirements file."""
    folder = os.path.join(os.path.dirname(PACKAGE), "tests")
    missing = []
    for name in sorted(os.listdir(folder)):
        if name.startswith("requirements") and name.endswith(".txt"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                if not re.search(r"^radon\b", f.read(), re.M):
                    missing.append(name)
    assert missing == []


def test_complexity_allow_list_is_not_stale():
    """An entry whose function was split (or renamed) must leave the list."""
    assert sorted(set(COMPLEXITY_ALLOWED) - set(_tree_too_complex())) == []


def hostile_input_problems(text, modules):
    """docs/architecture.md's Hostile input table against the tree: every module it names exists,
    every module of formats/ is in it, every test file it cites exists (issue 21: formats/__init__
    claimed to be every parser of untrusted bytes while eight modules outside it parse hostile input)."""
    body = dict(_sections(text)).get("Hostile input", "")
    rows = re.findall(r"^\| `([\w/]+\.py)` \|(.*)\|$", body, re.M)
    named = [name for name, _ in rows]
    problems = ["%s: in the Hostile input table, no such module" % n for n in named if n not in modules]
    problems += ["%s: a parser of formats/ missing from the Hostile input table" % m for m in modules
                 if m.startswith("formats/") and not m.endswith("__init__.py") and m not in named]
    for name, rest in rows:
        for test in re.findall(r"`(tests/[\w/]+\.py)`", rest):
            if not os.path.isfile(os.path.join(ROOT, test)):
                problems.append("%s: cites %s, no such file" % (name, test))
        for test in re.findall(r"`(test_\w+)`", rest):
            if not any(re.search(r"^def %s\(" % test, t, re.M) for _, t in _sources(os.path.join(ROOT, "tests"))):
                problems.append("%s: cites %s, no such test" % (name, test))
    return problems


def test_hostile_input_table_is_the_tree():
    assert hostile_input_problems(_read("docs", "architecture.md"), _tree()) == []


def test_hostile_input_check_sees_a_missing_or_unknown_row():
    text = _read("docs", "architecture.md")
    row = [line for line in text.splitlines() if line.startswith("| `formats/btf.py` |")][0]
    assert hostile_input_problems(text.replace(row + "\n", ""), _tree()) == [
        "formats/btf.py: a parser of formats/ missing from the Hostile input table"]
    extra = text.replace(row, row + "\n| `target/nothing.py` | x | y | `tests/test_nothing.py`, `test_nowhere` |")
    assert hostile_input_problems(extra, _tree()) == ["target/nothing.py: in the Hostile input table, no such module",
                                                      "target/nothing.py: cites tests/test_nothing.py, no such file",
                                                      "target/nothing.py: cites test_nowhere, no such test"]


# docs/architecture.md's Conventions list these; everything else gets the Context's environment
# (issue 21: keyrings.gather fell back to os.environ for its cache folder).
OS_ENVIRON_ALLOWED = frozenset({"cli.py", "console.py", "run.py"})


ENVIRON_NAMES = ("environ", "environb", "getenv", "getenvb", "putenv", "unsetenv", "*", "?")


def environ_readers(sources=None):
    """Modules that name os.environ (or getenv, putenv) however os is named: module_attributes."""
    found = set()
    for rel, text in (sources if sources is not None else _sources()):
        if any(module == "os" and attr in ENVIRON_NAMES for _, module, attr in module_attributes(text)):
            found.add(rel)
    return found


def test_the_environ_rule_sees_every_form():
    forms = ["os.environ['A']", "os.getenv('A')", "import os as o\no.environ", "from os import environ as e",
             "getattr(os, 'environ')", "import os as o\ngetattr(o, 'getenv')('A')", "from os import *",
             "vars(os)['environ']", "os.__dict__['environ']", "sys.modules['os'].environ", "import sys as s\ns.modules['os'].getenv('A')",
             "importlib.import_module('os').environ", "__import__('os').environ", "getattr(os, name)", "from os import getenv"]
    found = environ_readers([("m%d.py" % i, form + "\n") for i, form in enumerate(forms)])
    assert sorted(found) == sorted("m%d.py" % i for i in range(len(forms)))
    assert environ_readers([("ok.py", "os.path.join(a)\nctx.env['A']\nfrom os import path\nimport os.path as p\np.join(a)\n"
                                      "getattr(ctx, 'environ')\n")]) == set()


def test_os_environ_only_where_listed():
    assert sorted(environ_readers() - OS_ENVIRON_ALLOWED) == []
    text = _read("docs", "architecture.md")
    assert all("`%s`" % name in text.split("## Conventions", 1)[1] for name in OS_ENVIRON_ALLOWED)
