"""Kernels on demand and the forecast, for real against Debian's archive (issue 20).

The kernels are fetched by kbuildguard itself (`--fetch`: apt-get download + dpkg-deb -x, another suite
through a private apt state) into KBG_TEST_FETCH_CACHE (scripts/test fills it once; a re-run finds
every kernel in the cache and downloads nothing). The ABIs are the ones Debian serves in 2026-12:
bookworm's 6.1.0-54 .. -57, bullseye's 5.10.0-32, trixie's 6.12.117+deb13; scripts/test names them.

Measured on these packages (test_module_symvers_facts says it again on every run): 6.1.0-55, -56
and -57 ship one Module.symvers byte for byte (module_layout 0x9060323f), while -54's differs in
module_layout (0xbce1a965) and in most of its 24,000 CRCs.
"""

import hashlib
import json
import os
import re
import shutil

import pytest

from conftest import require
from integration.conftest import kbuildguard, named_kdemo

CACHE = os.environ.get("KBG_TEST_FETCH_CACHE", "/var/cache/kbuildguard-ci/xdg")
BUILT = os.environ.get("KBG_TEST_FETCH_BUILT", "6.1.0-56-amd64")
SAME = os.environ.get("KBG_TEST_FETCH_SAME", "6.1.0-57-amd64")  # shares BUILT's Module.symvers
OTHER = os.environ.get("KBG_TEST_FETCH_OTHER", "6.1.0-54-amd64")  # the same series, another Module.symvers
BULLSEYE = os.environ.get("KBG_TEST_FETCH_BULLSEYE", "5.10.0-32-amd64")
TRIXIE = os.environ.get("KBG_TEST_FETCH_TRIXIE", "6.12.117+deb13-amd64")
ENV = {"XDG_CACHE_HOME": CACHE}


def _fetch_json(*releases, extra=()):
    res = kbuildguard("fetch", "--json", *(list(extra) + list(releases)), env=ENV)
    assert res.code == 0, res
    return {k["release"]: k for k in json.loads(res.out)["kernels"]}


_FETCHED = {}  # the qemu and hook tests import the fixture: asked once per run, not once per module


@pytest.fixture(scope="module")
def kernels():
    require(shutil.which("apt-get") is not None and shutil.which("dpkg-deb") is not None, "apt-get and dpkg-deb (Debian)")
    if not _FETCHED:
        _FETCHED.update(_fetch_json(BUILT, SAME, OTHER, BULLSEYE, TRIXIE))
    for k in _FETCHED.values():
        assert os.path.isdir(k["root"]), k
    return dict(_FETCHED)


@pytest.fixture(scope="module")
def kdemo(kernels, tmp_path_factory):
    """kdemo built by `kbuildguard make --fetch` against the fetched 6.1.0-56 headers (never installed)."""
    repo = named_kdemo(tmp_path_factory.mktemp("forecast"), "kdemo")
    res = kbuildguard("make", "--fetch", "--kernel", BUILT, cwd=repo, env=ENV)
    assert res.code == 0, res
    report = json.load(open(os.path.join(repo, ".kbuildguard", "report.json")))
    assert report["kernel"]["release"] == BUILT
    return os.path.join(repo, "kdemo.ko")


def _symvers(kernel):
    path = os.path.join(kernel["root"], "usr/src/linux-headers-%s/Module.symvers" % kernel["release"])
    with open(path, "rb") as f:
        data = f.read()
    crcs = {}
    for line in data.decode().splitlines():
        crc, name = line.split("\t")[:2]
        crcs[name] = crc
    return hashlib.sha256(data).hexdigest(), crcs


def test_fetched_kernel_is_the_packages_unpacked_and_fixed(kernels):
    k = kernels[BUILT]
    names = [p["name"] for p in k["packages"]]
    assert names == ["linux-headers-%s" % BUILT, "linux-headers-%s-common" % BUILT.rsplit("-", 1)[0], "linux-kbuild-6.1",
                     "linux-image-%s-unsigned" % BUILT]
    assert all(re.match(r"^[0-9a-f]{64}$", p["sha256"]) for p in k["packages"])
    assert os.path.basename(os.path.dirname(k["root"])).startswith(BUILT + "-")  # keyed by release and checksums
    with open(os.path.join(k["root"], "usr/src/linux-headers-%s/Makefile" % BUILT)) as f:
        assert f.read().startswith("include %s/usr/src/" % k["root"])
    for rel in ("boot/config-" + BUILT, "boot/vmlinuz-" + BUILT, "lib/modules/%s/kernel" % BUILT):
        assert os.path.exists(os.path.join(k["root"], rel)), rel
    # trixie ships usr/lib/modules (merged /usr): the root gets lib -> usr/lib, as an installed system has
    assert os.path.isdir(os.path.join(kernels[TRIXIE]["root"], "lib/modules", TRIXIE))
    # trixie names linux-kbuild after the ABI's release without its flavour (6.12.118+deb13-amd64 -> linux-kbuild-6.12.118+deb13)
    kbuild = "linux-kbuild-" + TRIXIE.rsplit("-", 1)[0]
    assert kernels[TRIXIE]["from"] == "debian" and kbuild in [p["name"] for p in kernels[TRIXIE]["packages"]]


def test_a_second_fetch_downloads_nothing(kernels):
    again = _fetch_json(BUILT)
    assert again[BUILT]["cached"] and again[BUILT]["root"] == kernels[BUILT]["root"]


def test_module_symvers_facts(kernels):
    """ABI numbers say nothing about distance: -55/-56/-57 share one file, -54 differs in most CRCs."""
    built_sha, built = _symvers(kernels[BUILT])
    same_sha, same = _symvers(kernels[SAME])
    other_sha, other = _symvers(kernels[OTHER])
    assert built_sha == same_sha and built["module_layout"] == same["module_layout"] == "0x9060323f"
    assert other["module_layout"] != built["module_layout"]
    differ = sum(1 for n, c in other.items() if n in built and built[n] != c)
    assert differ > len(other) // 2, (differ, len(other))
    for release in (BULLSEYE, TRIXIE):  # both still export module_layout: check_modstruct_version() has it to compare
        assert _symvers(kernels[release])[1]["module_layout"] not in ("", built["module_layout"])


def test_forecast_across_fetched_kernels(kdemo):
    res = kbuildguard("check", kdemo, "--fetch", "--json", "--kernel", ",".join([SAME, OTHER, BULLSEYE, TRIXIE]), env=ENV)
    assert res.code == 8, res  # some kernel x module pairs need a rebuild
    data = json.loads(res.out)
    rows = {r["kernel"]: r for r in data["forecast"]}
    assert [k["release"] for k in data["kernels"]] == [SAME, OTHER, BULLSEYE, TRIXIE]
    same = rows[SAME]
    assert same["verdict"] == "ok" and same["effect"] == "taints" and same["gate"] == "signature"  # unsigned: taints
    assert same["crc_differences"] == [] and same["crcs_compared"] >= 3 and same["weak_modules_would_link"]
    assert "built for %s, and all %d of its symbol CRCs are equal here" % (BUILT, same["crcs_compared"]) in same["reason"]
    for release in (OTHER, BULLSEYE):
        row = rows[release]
        assert row["effect"] == "rejected-at-load" and row["gate"] == "symbol_versions", row
        assert row["kernel_prints"] == "disagrees about version of symbol module_layout"
        assert "check_modstruct_version() runs before every other check" in row["reason"]
        assert row["crc_differences"][0]["symbol"] == "module_layout" and not row["weak_modules_would_link"]
    six12 = rows[TRIXIE]
    # 6.4+: elf_validity_check() compares .gnu.linkonce.this_module's size before module_layout's CRC
    assert six12["effect"] == "rejected-at-load" and six12["gate"] == "layout", six12
    assert "section size must match" in six12["kernel_prints"]


def test_forecast_text_rows(kdemo):
    res = kbuildguard("check", kdemo, "--fetch", "--kernel", "%s,%s" % (SAME, OTHER), env=ENV)
    assert res.code == 8, res
    lines = res.out.splitlines()
    assert lines[0].split() == ["KERNEL", "MODULE", "EFFECT", "GATE", "WHY"]
    assert re.match(r"^%s\s+kdemo\.ko\s+taints\s+signature\s+loads; unsigned" % re.escape(SAME), lines[1]), lines
    assert re.match(r"^%s\s+kdemo\.ko\s+rejected-at-load\s+symbol_versions\s+rebuild needed because the CRC of "
                    r"module_layout changed" % re.escape(OTHER), lines[2]), lines
    assert "1 of 2 kernel x module pair(s) need a rebuild: %s" % OTHER in res.err


def test_weak_modules_would_link_it_and_the_kernel_refuses(kdemo):
    """What RHEL's weak-modules checks (depmod -e -E: symbols resolve, CRCs equal) passes; a kernel that
    enforces signatures refuses the unsigned module all the same."""
    res = kbuildguard("check", kdemo, "--fetch", "--json", "--sig-enforce", "yes", "--kernel", "%s,%s" % (BUILT, SAME),
                      env=ENV)
    assert res.code == 8, res
    for row in json.loads(res.out)["forecast"]:
        assert row["weak_modules_would_link"] and row["gate"] == "signature" and row["effect"] == "rejected-at-load", row
        assert row["crc_differences"] == []
        assert "rebuild needed because the signer is not trusted there" in row["reason"]
        assert "weak-modules (depmod -e -E: every symbol resolves, every CRC equal) would link it" in row["reason"]


def test_available_glob_expands_to_the_archives_kernels(kdemo):
    res = kbuildguard("check", kdemo, "--fetch", "--json", "--kernel", "available:%s" % SAME.replace("57", "5[67]"), env=ENV)
    assert res.code == 0, res
    rows = json.loads(res.out)["forecast"]
    assert sorted(r["kernel"] for r in rows) == sorted([BUILT, SAME]) and all(r["verdict"] == "ok" for r in rows)


def test_detect_and_doctor_on_fetched_kernels(kernels):
    res = kbuildguard("detect", "--fetch", "--json", "--kernel", BULLSEYE, env=ENV)
    # bullseye's kernel was built by gcc-10, which this bookworm host does not have: exit 5, but detected
    assert res.code == 5, res
    data = json.loads(res.out)
    assert data["kernel"]["release"] == BULLSEYE and data["kernel"]["compiler"]["text"].startswith("gcc-10 (Debian 10.")
    res = kbuildguard("doctor", "--fetch", "--kernel", SAME, env=ENV)
    assert res.code == 0, res
    assert "kernel %s: gcc 12" % SAME in res.out


def test_offline_names_what_could_not_be_fetched_and_where(tmp_path):
    """No network (a proxy that refuses): the system's lists still name the packages; the download fails
    and the error says which files, and the folder to put them in by hand."""
    env = dict(ENV, XDG_CACHE_HOME=str(tmp_path), http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    res = kbuildguard("fetch", OTHER, env=env)
    assert res.code == 15, res
    assert "fetch failed: could not download" in res.err and "linux-image-%s-unsigned_" % OTHER in res.err
    assert "put these files into %s/kbuildguard/kernels/debs by hand" % tmp_path in res.err
    res = kbuildguard("fetch", "--fetch-from", "debian:bullseye", BULLSEYE, env=env)
    assert res.code == 15 and "apt-get update for a private apt state for bullseye" in res.err, res
