"""Linters as tests: one subprocess module, no shell strings, Python 3.6 syntax."""

import ast
import os
import re

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kbuildguard")


def _sources():
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as f:
                    yield os.path.relpath(path, PACKAGE), f.read()


def test_only_run_imports_subprocess():
    offenders = []
    for rel, text in _sources():
        tree = ast.parse(text)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n.split(".")[0] in ("subprocess", "pty", "commands") for n in names) and rel != "run.py":
                offenders.append(rel)
            if isinstance(node, ast.Attribute) and node.attr in ("system", "popen", "spawnl", "execvp") and \
                    isinstance(node.value, ast.Name) and node.value.id == "os":
                offenders.append(rel + ": os." + node.attr)
    assert offenders == []


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
        tree = ast.parse(text)
        for node in ast.walk(tree):
            assert not type(node).__name__ == "NamedExpr", "%s: walrus needs 3.8" % rel
        assert "from __future__ import annotations" not in text, rel
        assert not re.search(r"^\s*def .*\(.*\b/\s*[,)]", text, re.M), "%s: positional-only parameters need 3.8" % rel


def _imports():
    """(importer, imported module, names) for every kbuildguard import, module-level or inside functions."""
    for rel, text in _sources():
        me = "kbuildguard." + rel[:-3].replace(os.sep, ".").replace(".__init__", "")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kbuildguard"):
                yield me, node.module, [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("kbuildguard"):
                        yield me, a.name, []


def test_no_module_imports_another_modules_private_names():
    offenders = [(me, mod, n) for me, mod, names in _imports() for n in names
                 if n.startswith("_") and not n.endswith("__") and mod != me]
    assert offenders == []


def test_import_graph_has_no_cycle():
    """Data flows one way: settings -> kernel -> toolchain/provision -> render -> kbuild -> verify -> report/outputs."""
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
    ("errors", "strenum", "versions", "probecache"),
    ("arch", "bounded", "console", "settings"),
    ("identity", "run", "project"),
    ("context",),
    ("formats",),  # every parser of untrusted bytes: the security boundary
    ("target",),  # what the target kernel is
    ("toolchain",),  # which compiler matches it
    ("gates", "provision"),  # the loader model; installing a compiler
    ("explain",),
    ("report",),
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


def test_lower_layers_never_import_higher_ones():
    rank = {u: i for i, layer in enumerate(LAYERS) for u in layer}
    offenders = []
    for me, mod, names in _imports():
        targets = [mod + "." + n for n in names] if mod == "kbuildguard" else [mod]
        for target in targets:
            a, b = _unit(me), _unit(target)
            if b in ("__version__",):
                continue
            if a != b and rank[b] >= rank[a]:
                offenders.append("%s imports %s" % (me, target))
    assert offenders == []


def test_layers_are_what_the_readme_map_shows():
    """docs/architecture.md lists every module of the tree, and no module that is not there."""
    root = os.path.dirname(PACKAGE)
    with open(os.path.join(root, "docs", "architecture.md"), encoding="utf-8") as f:
        text = f.read()
    shown = set(re.findall(r"`(kbuildguard/[\w/]+\.py)`", text))
    tree = {"kbuildguard/" + rel.replace(os.sep, "/") for rel, _ in _sources()}
    assert sorted(tree - shown) == [] and sorted(shown - tree) == []


def _test_sources():
    tests = os.path.dirname(os.path.abspath(__file__))
    for root, _, files in os.walk(tests):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as f:
                    yield os.path.relpath(path, tests), f.read()


def test_no_assert_hides_a_condition_in_its_message():
    """``assert code == 0, err and x == y``: the second condition is the message and can never fail."""
    offenders = []
    for rel, text in _test_sources():
        for node in ast.walk(ast.parse(text)):
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
        for node in ast.walk(ast.parse(text)):
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
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                if name in ("read", "readlines", "readline", "read_text", "read_bytes") and not node.args and not node.keywords:
                    offenders.append("%s:%d: .%s() without a size" % (rel, node.lineno, name))
                if name == "load" and isinstance(node.func.value, ast.Name) and node.func.value.id == "json":
                    offenders.append("%s:%d: json.load() reads a whole file: json.loads(bounded.read_text(...))" % (rel, node.lineno))
            if isinstance(node, ast.For) and isinstance(node.iter, ast.Name) and node.iter.id in ("f", "fh", "handle", "stream"):
                offenders.append("%s:%d: for ... in %s reads lines of any length" % (rel, node.lineno, node.iter.id))
    assert offenders == []
