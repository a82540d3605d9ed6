"""Where packagers live (issue 6): real rpmbuild, real dkms, and the single-file zipapp on 3.6 and 3.13."""

import glob
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from conftest import require
from integration.conftest import COPY_SOURCES, EXAMPLES, kbuildguard
from kbuildguard.formats.module import read_module

REPO = os.path.dirname(EXAMPLES)


def _env_with_kbuildguard():
    """PATH with this interpreter's bin first: the spec file and dkms.conf call `kbuildguard`."""
    return dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


def _rpmbuild(tmp_path, release, extra=()):
    require(shutil.which("rpmbuild") is not None, "rpmbuild (Debian package rpm)")
    top = tmp_path / "rpmbuild"
    (top / "SOURCES").mkdir(parents=True)
    with tarfile.open(str(top / "SOURCES" / "kdemo-1.0.tar.gz"), "w:gz") as tar:
        for name in ("kdemo.c", "kbuildguard.toml"):
            tar.add(os.path.join(EXAMPLES, "kdemo", name), arcname="kdemo-1.0/" + name)
    macros = tmp_path / "macros.kbuildguard"
    macros.write_text(kbuildguard("rpm-macros").out)
    argv = ["rpmbuild", "-bb", "--nodeps", "--define", "_topdir %s" % top, "--define", "kversion %s" % release,
            "--load", str(macros)] + list(extra) + [os.path.join(EXAMPLES, "rpm", "kmod-kdemo.spec")]
    proc = subprocess.run(argv, env=_env_with_kbuildguard(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, glob.glob(str(top / "RPMS" / "*" / "*.rpm"))


def test_rpmbuild_builds_the_verified_module(debian_release, compilers, tmp_path):
    proc, rpms = _rpmbuild(tmp_path, debian_release)
    assert proc.returncode == 0, proc.stdout.decode()[-3000:]
    assert len(rpms) == 1
    listing = subprocess.run(["rpm", "-qlp", rpms[0]], stdout=subprocess.PIPE, check=True).stdout.decode()
    assert "/lib/modules/%s/extra/kdemo.ko" % debian_release in listing
    require(shutil.which("cpio") is not None, "cpio")
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run("rpm2cpio %s | cpio -idm --quiet" % rpms[0], shell=True, cwd=str(root), check=True)
    ko = str(root / "lib" / "modules" / debian_release / "extra" / "kdemo.ko")
    assert {c.describe() for c in read_module(ko).compilers} == {"gcc 12.2.0 (Debian 12.2.0-14+deb12u1)"}
    assert kbuildguard("check", "--kernel", debian_release, ko).code == 0


def test_rpmbuild_fails_and_writes_no_rpm_with_a_mismatching_toolchain(debian_release, compilers, tmp_path):
    proc, rpms = _rpmbuild(tmp_path, debian_release, ["--define", "kbuildguard_make_flags --cc gcc-11"])
    out = proc.stdout.decode()
    assert proc.returncode != 0
    assert "compiler refused" in out and "Bad exit status" in out and "(%build)" in out
    assert rpms == []


def _dkms(tmp_path, release, conf_edit=None):
    require(shutil.which("dkms") is not None, "dkms")
    src = tmp_path / "src" / "kdemo-1.0"
    shutil.copytree(os.path.join(EXAMPLES, "kdemo"), str(src), ignore=COPY_SOURCES)
    conf = open(os.path.join(EXAMPLES, "dkms", "dkms.conf")).read()
    (src / "dkms.conf").write_text(conf_edit(conf) if conf_edit else conf)
    tree = tmp_path / "dkmstree"
    tree.mkdir()
    common = ["-m", "kdemo", "-v", "1.0", "--sourcetree", str(tmp_path / "src"), "--dkmstree", str(tree)]
    subprocess.run(["dkms", "add"] + common, env=_env_with_kbuildguard(), check=True, stdout=subprocess.DEVNULL)
    proc = subprocess.run(["dkms", "build"] + common + ["-k", release], env=_env_with_kbuildguard(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, glob.glob(str(tree / "kdemo" / "1.0" / release / "*" / "module" / "kdemo.ko*"))


def test_dkms_build_goes_through_kbuildguard(debian_release, compilers, tmp_path):
    proc, modules = _dkms(tmp_path, debian_release)
    assert proc.returncode == 0, proc.stdout.decode()[-3000:]
    assert "kbuildguard make --kernel %s" % debian_release in proc.stdout.decode()
    assert len(modules) == 1
    info = read_module(modules[0])
    assert info.vermagic.startswith(debian_release + " ")
    assert {c.describe() for c in info.compilers} == {"gcc 12.2.0 (Debian 12.2.0-14+deb12u1)"}


def test_dkms_build_fails_with_a_mismatching_toolchain(debian_release, compilers, tmp_path):
    proc, modules = _dkms(tmp_path, debian_release, lambda conf: conf.replace("--kernel ${kernelver}\"", "--kernel ${kernelver} --cc gcc-11\"", 1))
    assert proc.returncode != 0
    assert modules == []


def _pythons():
    root = subprocess.run(["pyenv", "root"], stdout=subprocess.PIPE).stdout.decode().strip() if shutil.which("pyenv") else ""
    found = {}
    for minor in ("3.6", "3.13"):
        hits = sorted(glob.glob(os.path.join(root or os.path.expanduser("~/.pyenv"), "versions", minor + ".*", "bin", "python")))
        found[minor] = hits[-1] if hits else None
    return found


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory):
    require(_pythons()["3.6"] is not None, "Python 3.6 (pyenv) to build the zipapp")
    out = str(tmp_path_factory.mktemp("zipapp") / "kbuildguard.pyz")
    subprocess.run(["bash", os.path.join(REPO, "scripts", "build-zipapp"), out], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


@pytest.mark.parametrize("minor", ["3.6", "3.13"])
def test_zipapp_smoke(minor, zipapp, debian_release, compilers, tmp_path):
    python = _pythons()[minor]
    require(python is not None, "Python %s (pyenv)" % minor)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)

    def run(*argv):
        return subprocess.run([python, zipapp] + list(argv), env=env, cwd=str(tmp_path),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    assert run("--version").stdout.decode().startswith("kbuildguard ")
    res = run("detect", "--kernel", debian_release, "--json")
    assert res.returncode == 0 and b'"selected": "/usr/bin/gcc-12"' in res.stdout, res.stderr.decode()
    repo = tmp_path / "kdemo"
    shutil.copytree(os.path.join(EXAMPLES, "kdemo"), str(repo), ignore=COPY_SOURCES)
    res = run("make", "-C", str(repo), "--kernel", debian_release)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    assert (repo / "kdemo.ko").exists()
    assert b"Traceback" not in res.stderr
