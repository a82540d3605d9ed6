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
        if rel not in ("cli.py", "__main__.py"):
            assert "sys.exit(" not in text, rel


def test_no_syntax_newer_than_3_6():
    """3.6 cannot parse these; the suite also runs on a real 3.6, this names the line faster."""
    for rel, text in _sources():
        tree = ast.parse(text)
        for node in ast.walk(tree):
            assert not type(node).__name__ == "NamedExpr", "%s: walrus needs 3.8" % rel
        assert "from __future__ import annotations" not in text, rel
        assert not re.search(r"^\s*def .*\(.*\b/\s*[,)]", text, re.M), "%s: positional-only parameters need 3.8" % rel
