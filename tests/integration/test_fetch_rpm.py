"""`--fetch` with real dnf and zypper against local repositories (createrepo_c), as the provisioning
tests do: kernel packages laid out as EL's (kernel-devel, kernel-core) and SUSE's (kernel-default-devel,
kernel-devel, kernel-default) are located with `dnf repoquery --location` (and read from there) or
downloaded with `zypper download` into the cache,
unpacked (rpm2archive) and used as the target by `detect`."""

import json
import os
import shutil
import subprocess

import pytest

from conftest import require
from integration.conftest import kbuildguard

CC_TEXT = "gcc (GCC) 11.5.0 20240719 (Red Hat 11.5.0-2)"
EL_RELEASE = "5.14.0-503.el9.x86_64"
SUSE_VERSION = "5.14.21-150500.55.39"
SUSE_RELEASE = SUSE_VERSION + "-default"

SPEC = """Name: %{pkgname}
Version: %{pkgversion}
Release: %{pkgrelease}
Summary: kernel package laid out as %{pkgname}
License: GPLv2
AutoReqProv: no
%global debug_package %{nil}
%global __os_install_post %{nil}
%description
Test package of kbuildguard's integration suite.
%install
mkdir -p %{buildroot}
cp -a %{stage}/. %{buildroot}/
%files -f %{filelist}
"""


def _tree(stage, rel_dir, release):
    tree = os.path.join(stage, rel_dir)
    os.makedirs(os.path.join(tree, "include/config"))
    os.makedirs(os.path.join(tree, "include/generated"))
    config = 'CONFIG_CC_VERSION_TEXT="%s"\nCONFIG_GCC_VERSION=110500\nCONFIG_X86_64=y\nCONFIG_MODVERSIONS=y\n' % CC_TEXT
    for name, text in (("Makefile", "# kernel Makefile\n"), (".config", config), ("include/config/auto.conf", config),
                       ("include/generated/utsrelease.h", '#define UTS_RELEASE "%s"\n' % release),
                       ("Module.symvers", "0x12345678\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t\n")):
        with open(os.path.join(tree, name), "w") as f:
            f.write(text)


def _image(stage, mods):
    os.makedirs(os.path.join(stage, mods))
    with open(os.path.join(stage, mods, "config"), "w") as f:
        f.write('CONFIG_CC_VERSION_TEXT="%s"\n' % CC_TEXT)
    with open(os.path.join(stage, mods, "vmlinuz"), "wb") as f:
        f.write(b"not a real kernel image")


def _rpm(base, name, version, release, top, fill):
    stage = str(base / ("stage-%s-%s" % (name, version)))
    os.makedirs(stage)
    fill(stage)
    filelist = str(base / ("files-%s-%s" % (name, version)))
    with open(filelist, "w") as f:
        f.write("".join("/%s\n" % t for t in top.split()))
    subprocess.run(["rpmbuild", "-bb", "--quiet", "--target", "x86_64", "--define", "_topdir %s" % (base / "top"),
                    "--define", "pkgname %s" % name, "--define", "pkgversion %s" % version,
                    "--define", "pkgrelease %s" % release, "--define", "stage %s" % stage, "--define", "filelist %s" % filelist,
                    "--define", "_binary_payload w1.gzdio", str(base / "kernel.spec")], check=True, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    for tool in ("rpmbuild", "createrepo_c", "dnf", "zypper", "rpm2archive"):
        require(shutil.which(tool) is not None, "%s (scripts/test installs dnf, zypper, createrepo-c, rpm)" % tool)
    base = tmp_path_factory.mktemp("kernel-rpms")
    (base / "kernel.spec").write_text(SPEC)
    version, release = EL_RELEASE[:-len(".x86_64")].split("-")
    _rpm(base, "kernel-devel", version, release, "usr/src/kernels",
         lambda s: _tree(s, "usr/src/kernels/" + EL_RELEASE, EL_RELEASE))
    _rpm(base, "kernel-core", version, release, "lib/modules", lambda s: _image(s, "lib/modules/" + EL_RELEASE))
    sv, sr = SUSE_VERSION.split("-")
    obj = "usr/src/linux-%s-obj/x86_64/default" % SUSE_VERSION
    _rpm(base, "kernel-default-devel", sv, sr, "usr/src/linux-%s-obj" % SUSE_VERSION, lambda s: _tree(s, obj, SUSE_RELEASE))
    _rpm(base, "kernel-devel", sv, sr, "usr/src/linux-%s" % SUSE_VERSION,
         lambda s: os.makedirs(os.path.join(s, "usr/src/linux-%s/include" % SUSE_VERSION)))

    def suse_image(s):
        os.makedirs(os.path.join(s, "boot"))
        with open(os.path.join(s, "boot/config-" + SUSE_RELEASE), "w") as f:
            f.write('CONFIG_CC_VERSION_TEXT="%s"\n' % CC_TEXT)
        os.makedirs(os.path.join(s, "lib/modules", SUSE_RELEASE))
        os.symlink("/" + obj, os.path.join(s, "lib/modules", SUSE_RELEASE, "build"))
    _rpm(base, "kernel-default", sv, sr, "lib/modules boot", suse_image)
    out = {}
    for family, names in (("el", ("kernel-devel-5", "kernel-core")), ("suse", ("kernel-default", "kernel-devel-5.14.21"))):
        repo = base / ("repo-" + family)
        repo.mkdir()
        for rpm in (base / "top" / "RPMS" / "x86_64").iterdir():
            if any(rpm.name.startswith(n) for n in names) and (family == "suse") == ("150500" in rpm.name):
                shutil.copy(str(rpm), str(repo))
        subprocess.run(["createrepo_c", "-q", str(repo)], check=True)
        out[family] = str(repo)
    return out


def _root(tmp_path, family, repo):
    root = tmp_path / ("root-" + family)
    folder = root / ("etc/yum.repos.d" if family == "el" else "etc/zypp/repos.d")
    folder.mkdir(parents=True)
    (folder / "kbg.repo").write_text("[kbg-kernels]\nname=kernels\nbaseurl=file://%s\ngpgcheck=0\nenabled=1\n%s" % (
        repo, "autorefresh=1\ntype=rpm-md\n" if family == "suse" else ""))
    return str(root)


def test_dnf_download_into_the_cache_and_detect(repos, tmp_path):
    root = _root(tmp_path, "el", repos["el"])
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    res = kbuildguard("fetch", "--json", "--fetch-from", "dnf:%s:9" % root, EL_RELEASE, env=env)
    assert res.code == 0, res
    kernel = json.loads(res.out)["kernels"][0]
    assert sorted(p["name"] for p in kernel["packages"]) == [
        "kernel-core-%s" % EL_RELEASE, "kernel-devel-%s" % EL_RELEASE]
    for rel in ("usr/src/kernels/%s/Makefile" % EL_RELEASE, "boot/config-" + EL_RELEASE, "boot/vmlinuz-" + EL_RELEASE):
        assert os.path.exists(os.path.join(kernel["root"], rel)), rel
    res = kbuildguard("detect", "--fetch", "--fetch-from", "dnf:%s:9" % root, "--kernel", EL_RELEASE, "--json", env=env)
    data = json.loads(res.out)
    assert data["kernel"]["compiler"]["text"] == CC_TEXT and data["kernel"]["build_dir"].startswith(kernel["root"]), res
    res = kbuildguard("fetch", "--list", "--fetch-from", "dnf:%s:9" % root, "available:5.14.0-*.el9.x86_64", env=env)
    assert res.code == 0 and res.out.split() == [EL_RELEASE], res


def test_zypper_download_into_the_cache(repos, tmp_path):
    root = _root(tmp_path, "suse", repos["suse"])
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    res = kbuildguard("fetch", "--json", "--fetch-from", "zypper:%s" % root, SUSE_RELEASE, env=env)
    assert res.code == 0, res
    kernel = json.loads(res.out)["kernels"][0]
    assert len(kernel["packages"]) == 3
    res = kbuildguard("detect", "--fetch", "--fetch-from", "zypper:%s" % root, "--kernel", SUSE_RELEASE, "--json", env=env)
    data = json.loads(res.out)
    assert data["kernel"]["compiler"]["text"] == CC_TEXT, res
    assert data["kernel"]["build_dir"] == os.path.join(kernel["root"], "usr/src/linux-%s-obj/x86_64/default" % SUSE_VERSION)


def test_dnf_without_the_package_fails_cleanly(repos, tmp_path):
    root = _root(tmp_path, "el", repos["el"])
    res = kbuildguard("fetch", "--fetch-from", "dnf:%s:9" % root, "5.14.0-999.el9.x86_64", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert res.code == 15 and "could not download kernel-devel-5.14.0-999.el9.x86_64" in res.err, res


def test_zypper_list_and_a_repository_without_kernels(repos, tmp_path):
    """`fetch --list` with real zypper: the release is listed; a repository that offers no
    kernel-default-devel makes `zypper search` exit 104, which is "nothing offered" (exit 15, one
    line), not a traceback (issue 20, the tester's case)."""
    root = _root(tmp_path, "suse", repos["suse"])
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    res = kbuildguard("fetch", "--list", "--fetch-from", "zypper:%s" % root, "available:5.14.21-*-default", env=env)
    assert res.code == 0 and res.out.split() == [SUSE_RELEASE], res
    empty = tmp_path / "empty-repo"
    empty.mkdir()
    subprocess.run(["createrepo_c", "-q", str(empty)], check=True)
    bare = _root(tmp_path / "bare", "suse", str(empty))
    res = kbuildguard("fetch", "--list", "--fetch-from", "zypper:%s" % bare, "available:*", env=env)
    assert res.code == 15 and "no kernel offered by zypper:%s matches '*'" % bare in res.err, res
    assert len(res.err.strip().splitlines()) <= 2, res  # the line and its hint
