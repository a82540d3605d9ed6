"""setup.py: the Python 3.6 build's translation of pyproject.toml (issue 13, item 3).

The wheels themselves are compared in tests/integration/test_source_install.py; this checks the
translation against pyproject.toml without building, on both Pythons of the suite.
"""

import glob
import importlib.util
import os
import shutil

import pytest

import kbuildguard

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup_module():
    spec = importlib.util.spec_from_file_location("kbuildguard_setup", os.path.join(REPO, "setup.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore
    return module


SETUP = _setup_module()


def _pyproject():
    return SETUP._load_toml(os.path.join(REPO, "pyproject.toml"))


def test_translation_carries_pyproject():
    args = SETUP.setup_arguments(REPO)
    project = _pyproject()["project"]
    assert args["name"] == project["name"] == "kbuildguard"
    assert args["version"] == kbuildguard.__version__
    assert args["install_requires"] == project["dependencies"]
    assert args["python_requires"] == project["requires-python"]
    assert args["entry_points"] == {"console_scripts": ["kbuildguard = kbuildguard.cli:main"]}
    assert args["long_description"] == open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    assert args["long_description_content_type"] == "text/markdown"
    assert args["license"] == "GPL-2.0-only"


def test_every_package_and_data_glob_exists():
    args = SETUP.setup_arguments(REPO)
    on_disk = sorted(os.path.relpath(os.path.dirname(p), REPO).replace(os.sep, ".")
                     for p in glob.glob(os.path.join(REPO, "kbuildguard", "**", "__init__.py"), recursive=True))
    assert sorted(args["packages"]) == on_disk
    for package, globs in args["package_data"].items():
        for pattern in globs:
            assert glob.glob(os.path.join(REPO, *package.split("."), pattern)), (package, pattern)


def test_build_requirements_pin_python_3_6():
    requires = _pyproject()["build-system"]["requires"]
    assert "setuptools>=40.8,<59.7; python_version < '3.7'" in requires
    assert any(r.startswith("tomli") and "< '3.7'" in r for r in requires)  # setup.py reads pyproject.toml with it


@pytest.mark.parametrize("extra,named", [
    ('authors = [{ name = "x" }]\n', "authors"),
    ("[tool.setuptools.exclude-package-data]\nkbuildguard = ['*.txt']\n", "tool.setuptools.exclude-package-data"),
])
def test_an_untranslated_key_is_an_error(tmp_path, extra, named):
    """A field added to pyproject.toml must not go missing from the 3.6 build without notice."""
    text = open(os.path.join(REPO, "pyproject.toml"), encoding="utf-8").read()
    if extra.startswith("["):
        text += "\n" + extra
    else:
        text = text.replace("[project]\n", "[project]\n" + extra, 1)
    (tmp_path / "pyproject.toml").write_text(text)
    shutil.copy(os.path.join(REPO, "README.md"), str(tmp_path / "README.md"))
    with pytest.raises(ValueError) as exc:
        SETUP.setup_arguments(str(tmp_path))
    assert named in str(exc.value)
