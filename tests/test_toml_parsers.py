"""Issue 19 item 4: a TOML parser is needed only where a kbuildguard.toml is read. project.py imported
tomli at the top, so every command -- detect, check -- failed with an ImportError on a Python
before 3.11 without python3-tomli; now the parser is imported when a file is read, falling back as
distributions allow (tomllib, tomli, toml, pip's vendored tomli), and a missing one is one line."""

import os
import sys
import types

import pytest

from kbuildguard import project
from kbuildguard.errors import ConfigError

BLOCKED = ("tomllib", "tomli", "toml", "pip._vendor.tomli")


def _block(monkeypatch, names=BLOCKED):
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError


def test_detect_runs_without_any_toml_parser(monkeypatch, tmp_path, capsys):
    _block(monkeypatch)
    # a fresh import of the whole package, as a process starting on Python 3.6 without tomli does
    for name in [n for n in sys.modules if n == "kbuildguard" or n.startswith("kbuildguard.")]:
        monkeypatch.delitem(sys.modules, name)
    # no kbuildguard.toml where it runs; the checkout stays importable ('' on sys.path is the cwd)
    monkeypatch.syspath_prepend(os.path.dirname(os.path.dirname(os.path.abspath(project.__file__))))
    monkeypatch.chdir(str(tmp_path))
    from kbuildguard.cli import main  # noqa: PLC0415 - the fresh import is the test
    pv = tmp_path / "pv"
    pv.write_text("Linux version 6.1.0-13-amd64 (x@y) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld 2.40) #1 SMP\n")
    code = main(["detect", "--proc-version-file", str(pv)], env={"PATH": "/nonexistent"})
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "tomli" not in err
    assert code == 5 and "gcc" in out + err  # no compiler on this PATH, but the kernel's was read and shown


def test_no_parser_is_one_line_when_a_toml_must_be_read(monkeypatch):
    _block(monkeypatch)
    with pytest.raises(ConfigError) as exc:
        project.parse_config('[[module]]\nname = "kdemo"\nsources = ["kdemo.c"]\n', "/m/kbuildguard.toml")
    message = str(exc.value)
    assert "\n" not in message and message.startswith("/m/kbuildguard.toml: no TOML parser") and "python3-tomli" in message


@pytest.mark.parametrize("available", ["tomllib", "tomli", "toml", "pip._vendor.tomli"])
def test_each_parser_in_turn(monkeypatch, available):
    """The first that imports is used: Debian 11's python3-toml, pip's vendored tomli included."""
    _block(monkeypatch, [n for n in BLOCKED if n != available])
    seen = []
    fake = types.ModuleType(available)

    def loads(text):
        seen.append(available)
        return {"module": [{"name": "kdemo", "sources": ["kdemo.c"]}]}
    fake.loads = loads  # type: ignore[attr-defined]
    if available.startswith("pip."):
        # a real import finds the parents first, and binds the leaf as their attribute (3.6 reads only that)
        monkeypatch.setattr(pytest.importorskip("pip._vendor"), "tomli", fake, raising=False)
    monkeypatch.setitem(sys.modules, available, fake)
    modules, _ = project.parse_config("ignored", "/m/kbuildguard.toml")
    assert seen == [available] and modules[0].name == "kdemo"


def test_a_parser_error_from_any_of_them_is_a_config_error(monkeypatch):
    _block(monkeypatch, ["tomllib", "tomli", "pip._vendor.tomli"])
    fake = types.ModuleType("toml")

    def loads(text):
        raise ValueError("Unbalanced quotes (line 1 column 9 char 8)")  # toml 0.10's TomlDecodeError is a ValueError
    fake.loads = loads  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "toml", fake)
    with pytest.raises(ConfigError, match="invalid TOML: Unbalanced quotes"):
        project.parse_config('name = "x', "/m/kbuildguard.toml")
