import os

import pytest

from kbuildguard.build.render import MARKER, render, scaffold, write
from kbuildguard.errors import ConfigError
from kbuildguard.project import load

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")

MULTI = """
[[module]]
name = "multi"
sources = ["main.c", "util.c"]
include_dirs = ["include"]
defines = { DEBUG = "1" }
ccflags = ["-Wall"]

[[module]]
name = "blobby"
sources = ["blobby_main.c"]
objects = ["blob.o"]
"""


def _repo(tmp_path, config):
    (tmp_path / "kbuildguard.toml").write_text(config)
    return load(str(tmp_path))


@pytest.mark.parametrize("name", ["Kbuild", "Makefile"])
def test_golden(tmp_path, name):
    files = {f.name: f for f in render(_repo(tmp_path, MULTI))}
    with open(os.path.join(GOLDEN, "multi." + name), encoding="utf-8") as f:
        assert files[name].text == f.read()
    assert files[name].text.splitlines()[0] == MARKER


def test_write_then_unchanged(tmp_path):
    proj = _repo(tmp_path, MULTI)
    write(render(proj))
    assert [f.action for f in render(proj)] == ["unchanged", "unchanged"]


def test_hand_written_makefile_is_never_touched(tmp_path):
    proj = _repo(tmp_path, MULTI)
    (tmp_path / "Makefile").write_text("obj-m += mine.o\n")
    files = render(proj)
    assert {f.name: f.action.split(" ")[0] for f in files} == {"Kbuild": "not", "Makefile": "kept"}
    write(files)
    assert (tmp_path / "Makefile").read_text() == "obj-m += mine.o\n"
    assert not (tmp_path / "Kbuild").exists()


def test_scaffold_never_overwrites(tmp_path):
    written = scaffold(str(tmp_path), "kdemo")
    assert sorted(n for n, _ in written) == ["kbuildguard.toml", "kdemo.c"]
    text = (tmp_path / "kdemo.c").read_text()
    assert "module_exit(kdemo_exit);" in text
    with pytest.raises(ConfigError):
        scaffold(str(tmp_path), "kdemo")


@pytest.mark.parametrize("config,message", [
    ("[[module]]\nname = 1\n", "name must be"),
    ("[[module]]\nname = \"a\"\nsource = [\"a.c\"]\n", "unknown key"),
    ("[[module]]\nname = \"a\"\nsources = [\"../a.c\"]\n", "relative path"),
    ("[[module]]\nname = \"a\"\nsources = [\"a.cpp\"]\n", ".c or .S"),
    ("[[module]]\nname = \"a\"\nobjects = [\"blob.a\"]\n", ".o file"),
    ("[[module]]\nname = \"a\"\n[[module]]\nname = \"a\"\n", "unique"),
    ("[kbuildguard]\nmatchh = \"exact\"\n", "unknown key"),
    ("[other]\n", "unknown table"),
    ("[[module]]\nname = \"a\"\nsources = [\"a.c\", \"b.c\"]\n", "rename a.c"),
    ("[[module]\n", "invalid TOML"),
])
def test_config_errors(tmp_path, config, message):
    with pytest.raises(ConfigError) as exc:
        _repo(tmp_path, config)
    assert message in exc.value.message


def test_generated_files_are_not_rendered_again_while_current(tmp_path, monkeypatch):
    proj = _repo(tmp_path, MULTI)
    write(render(proj))
    monkeypatch.setattr("kbuildguard.build.render._template", lambda name: (_ for _ in ()).throw(AssertionError("rendered")))
    assert [f.action for f in render(proj)] == ["unchanged", "unchanged"]


def test_an_edited_generated_file_is_rewritten(tmp_path):
    proj = _repo(tmp_path, MULTI)
    write(render(proj))
    with open(str(tmp_path / "Kbuild"), "a") as f:
        f.write("ccflags-y += -DHAND_EDIT\n")
    assert [f.action for f in render(proj)] == ["update", "unchanged"]
    (tmp_path / "kbuildguard.toml").write_text(MULTI + "\n# a comment\n")
    assert [f.action for f in render(load(str(tmp_path)))] == ["update", "update"]
