"""`kbuildguard setup` against recording stand-ins of yum, dnf and zypper (EL7 yum cannot run here; real dnf
and zypper are in test_provision_real.py),
and `kbuildguard make --install --yes` really installing gcc-11 with apt-get."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import require
from integration.conftest import COPY_SOURCES, EXAMPLES, TOOLS, kbuildguard, renamed_compiler_tree
from test_provision import SYSROOTS, plan_in

STANDIN = {
    # sysroot: (full version, banner, arch) of the compiler the stand-in installs
    "centos-7.8-aarch64": ("8.3.1", "gcc (GCC) 8.3.1 20190311 (Red Hat 8.3.1-3)", "aarch64"),
    "centos-7.9-x86_64": ("4.8.5", "gcc (GCC) 4.8.5 20150623 (Red Hat 4.8.5-44)", "x86_64"),
    "rocky-8": ("8.5.0", "gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-18)", "x86_64"),
    "rhel-9": ("11.3.1", "gcc (GCC) 11.3.1 20220421 (Red Hat 11.3.1-2)", "x86_64"),
    "oracle-8-uek7": ("11.4.1", "gcc (GCC) 11.4.1 20230605 (Red Hat 11.4.1-2.1.0.1)", "x86_64"),
    "amazon-2-5.10": ("10.3.1", "gcc10-gcc (GCC) 10.3.1 20210422 (Red Hat 10.3.1-1)", "x86_64"),
    "opensuse-leap-15": ("7.5.0", "gcc-7 (SUSE Linux) 7.5.0", "x86_64"),
}


def _standins(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("yum", "dnf", "zypper", "yum-config-manager"):
        p = bindir / tool
        p.write_text("#!/bin/sh\nexec %s %s %s \"$@\"\n" % (sys.executable, os.path.join(TOOLS, "standin_pm.py"), tool))
        p.chmod(0o755)
    return str(bindir)


@pytest.mark.parametrize("name", sorted(STANDIN))
def test_setup_runs_exactly_the_plan_and_finds_the_compiler(name, tmp_path):
    bindir = _standins(tmp_path)
    version, banner, arch = STANDIN[name]
    env = {"PATH": bindir, "STANDIN_LOG": str(tmp_path / "log"), "STANDIN_BIN": bindir, "STANDIN_VERSION": version,
           "STANDIN_BANNER": banner, "STANDIN_ARCH": arch, "KBUILDGUARD_SCL_ROOT": str(tmp_path / "opt-rh")}
    res = kbuildguard("setup", "--yes", "--sysroot", os.path.join(SYSROOTS, name), env=env)
    assert res.code == 0, res
    with open(str(tmp_path / "log")) as f:
        ran = [json.loads(line) for line in f]
    assert ran == plan_in(name)
    assert "ready:" in res.err


def test_unreachable_repository_is_a_clear_failure(tmp_path):
    bindir = _standins(tmp_path)
    env = {"PATH": bindir, "STANDIN_LOG": str(tmp_path / "log"), "STANDIN_BIN": bindir, "STANDIN_FAIL": "1",
           "STANDIN_VERSION": "8.5.0", "STANDIN_BANNER": "x", "KBUILDGUARD_SCL_ROOT": str(tmp_path / "opt-rh")}
    res = kbuildguard("setup", "--yes", "--sysroot", os.path.join(SYSROOTS, "rocky-8"), env=env)
    assert res.code == 10, res
    assert "may not be installed" in res.err
    assert not os.listdir(bindir) == []  # the stand-ins are still there; no compiler was created
    assert not os.path.exists(os.path.join(bindir, "gcc"))


def test_install_without_consent_installs_nothing(tmp_path):
    bindir = _standins(tmp_path)
    env = {"PATH": bindir, "STANDIN_LOG": str(tmp_path / "log"), "STANDIN_BIN": bindir,
           "STANDIN_VERSION": "8.5.0", "STANDIN_BANNER": "x", "KBUILDGUARD_SCL_ROOT": str(tmp_path / "opt-rh")}
    res = kbuildguard("setup", "--sysroot", os.path.join(SYSROOTS, "rocky-8"), env=env)
    assert res.code == 9, res
    assert not os.path.exists(str(tmp_path / "log"))


def _gcc11_tree(tmp_path, release):
    """A copy of Debian's headers whose records say the kernel was built by gcc-11."""
    # gcc-11 has no -ftrivial-auto-var-init=zero: a kernel built by gcc-11 would not have this on
    return renamed_compiler_tree(str(tmp_path / ("linux-headers-" + release)), release, "gcc-11 (Debian 11.3.0-12) 11.3.0",
                                 "110300", extra=[("CONFIG_INIT_STACK_ALL_ZERO=y", "# CONFIG_INIT_STACK_ALL_ZERO is not set")])


def test_make_install_yes_really_installs_gcc11_with_apt(debian_release, tmp_path):
    """Destructive: removes gcc-11 first. Runs only where .ci/run allows it (KBG_TEST_DESTRUCTIVE=1)."""
    flag = os.environ.get("KBG_TEST_DESTRUCTIVE")
    if flag == "0":
        pytest.skip("KBG_TEST_DESTRUCTIVE=0: not removing gcc-11")
    require(flag == "1", "KBG_TEST_DESTRUCTIVE=1 (this test removes and reinstalls gcc-11)")
    require(os.geteuid() == 0, "root")
    subprocess.run(["apt-get", "remove", "-y", "-q", "gcc-11"], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    assert shutil.which("gcc-11") is None
    tree = _gcc11_tree(tmp_path, debian_release)
    repo = str(tmp_path / "kdemo")
    shutil.copytree(os.path.join(EXAMPLES, "kdemo"), repo, ignore=COPY_SOURCES)
    res = kbuildguard("make", "--kernel-dir", tree, "--install", "--yes", cwd=repo,
                      env={"DEBIAN_FRONTEND": "noninteractive"})
    assert res.code == 0, res
    assert "apt-get install -y --no-install-recommends gcc-11" in res.out + res.err
    assert shutil.which("gcc-11") is not None
    report = json.load(open(os.path.join(repo, ".kbuildguard", "report.json")))
    assert report["toolchain"]["selected"] == "/usr/bin/gcc-11"
    assert report["modules"][0]["verdict"] == "ok"
