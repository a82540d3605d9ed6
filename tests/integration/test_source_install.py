"""The wheel Python 3.6 builds from the source checkout is the wheel Python 3.13 builds (issue 13).

On 3.6 setuptools 59 builds from setup.py's translation of pyproject.toml; on 3.13 setuptools reads
pyproject.toml itself. scripts/test builds both (check_source_install, build_wheel) and names them in
KBG_TEST_WHEEL_PY36 and KBG_TEST_WHEEL_PY313. Only the metadata format may differ (Metadata-Version
2.1 against 2.4, "jinja2 (<3.1,>=2.11) ; ..." against "jinja2<3.1,>=2.11; ...").
"""

import configparser
import email.parser
import os
import zipfile

import pytest
from packaging.requirements import Requirement

from conftest import require

# Headers setuptools 59 writes and newer ones leave out when empty.
_OLD_FILLERS = {("Home-page", "UNKNOWN"), ("Platform", "UNKNOWN")}
_FORMAT = {"Metadata-Version"}


@pytest.fixture(scope="module")
def wheels():
    found = {}
    for minor, var in (("3.6", "KBG_TEST_WHEEL_PY36"), ("3.13", "KBG_TEST_WHEEL_PY313")):
        path = os.environ.get(var, "")
        require(bool(path) and os.path.isfile(path), "the wheel built on Python %s ($%s, set by scripts/test)" % (minor, var))
        found[minor] = zipfile.ZipFile(path)
    yield found
    for z in found.values():
        z.close()


def _dist_info(z, name):
    paths = [p for p in z.namelist() if p.endswith(".dist-info/" + name)]
    assert len(paths) == 1, z.namelist()
    return z.read(paths[0]).decode("utf-8")


def _metadata(z):
    msg = email.parser.Parser().parsestr(_dist_info(z, "METADATA"))
    headers = sorted((k, v) for k, v in msg.items() if (k, v) not in _OLD_FILLERS and k not in _FORMAT and k != "Requires-Dist")
    requires = sorted(str(Requirement(r)) for r in msg.get_all("Requires-Dist") or [])
    body = msg.get_payload() or msg.get("Description", "")
    return headers, requires, body.strip()


def test_same_requires_dist(wheels):
    _, old, _ = _metadata(wheels["3.6"])
    _, new, _ = _metadata(wheels["3.13"])
    assert old == new
    assert any("python_version < \"3.7\"" in r for r in new)  # the 3.6 pins are there


def test_same_metadata_and_description(wheels):
    assert _metadata(wheels["3.6"]) == _metadata(wheels["3.13"])


def test_same_entry_points(wheels):
    def parse(z):
        cp = configparser.ConfigParser()
        cp.read_string(_dist_info(z, "entry_points.txt"))
        return {s: dict(cp[s]) for s in cp.sections()}
    assert parse(wheels["3.6"]) == parse(wheels["3.13"]) == {"console_scripts": {"kbuildguard": "kbuildguard.cli:main"}}


def test_same_files_same_bytes(wheels):
    old, new = wheels["3.6"], wheels["3.13"]
    assert sorted(old.namelist()) == sorted(new.namelist())
    payload = [p for p in new.namelist() if ".dist-info/" not in p]
    for path in payload:
        assert old.read(path) == new.read(path), path
    # package data through the kbuildguard/templates link, and kbuildguard/data
    for needed in ("kbuildguard/templates/Kbuild.j2", "kbuildguard/templates/kbuildguard.toml.j2",
                   "kbuildguard/data/catalogue.json", "kbuildguard/data/macros.kbuildguard", "kbuildguard/provision/__init__.py"):
        assert needed in payload
