"""kbuildguard's own packages (issue 19): the RPM spec, debian/ and pyproject.toml agree on the
version and on the dependency floors. scripts/build-packages builds them for real;
tests/integration/test_packages.py checks what it built."""

import os
import re

from kbuildguard import __version__

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def _pyproject_floors():
    floors = {}
    for name, floor in re.findall(r'"([a-z0-9]+)>=([\d.]+)', _read("pyproject.toml").split("dependencies = [")[1].split("]")[0]):
        floors.setdefault(name, floor)
        assert floors[name] == floor, "%s: one floor for every Python" % name
    return floors


def test_versions_agree():
    assert re.search(r"^Version:\s+(\S+)$", _read("packaging", "rpm", "kbuildguard.spec"), re.M).group(1) == __version__
    assert re.match(r"kbuildguard \(([^)]+)\)", _read("debian", "changelog")).group(1) == __version__


def test_floors_are_the_oldest_the_distributions_ship():
    assert _pyproject_floors() == {"jinja2": "2.10.1", "markupsafe": "0.23", "packaging": "16.8", "pyparsing": "2.0.2",
                                   "distro": "1.4.0", "tomli": "1.1"}


def test_package_dependencies_use_the_same_floors():
    floors = _pyproject_floors()
    spec = _read("packaging", "rpm", "kbuildguard.spec")
    control = _read("debian", "control")
    for name in ("jinja2", "distro", "packaging"):
        assert "Requires:       python%%{python3_pkgversion}-%s >= %s\n" % (name, floors[name]) in spec
        assert "python3-%s (>= %s)," % (name, floors[name]) in control
