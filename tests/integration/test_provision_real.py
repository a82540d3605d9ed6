"""kbuildguard's own plans against real package managers: real apt-cache on this machine, real dnf
(``--installroot``) and real zypper (``--root``) into build roots, from a local repository of RPMs
built here that carry a real compiler. No stand-in is involved: remove dnf or zypper and these fail.

The toolset RPMs hold a copy of Debian's gcc-12 (driver, cc1, its include folder) relocated under
/opt/rh/gcc-toolset-12/root/usr (gcc finds cc1 relative to itself: -print-prog-name=cc1 says where).
The copy's vendor string is rewritten in place, same length and NUL-padded, from
"(Debian 12.2.0-14+deb12u1) " to "(kbg toolset 12.2.0-1) ": a toolset's gcc identifies itself by
its own vendor release, and only so can a test tell, from the .ko's .comment alone, that the module
was built by the toolset and not by this machine's /usr/bin/gcc-12.
"""

import json
import os
import shutil
import subprocess

import pytest

from conftest import require
from integration.conftest import COPY_SOURCES, EXAMPLES, kbuildguard, renamed_compiler_tree
from kbuildguard.formats.module import read_module

GCC_DRIVER = "/usr/bin/x86_64-linux-gnu-gcc-12"
GCC_LIBDIR = "/usr/lib/gcc/x86_64-linux-gnu/12"
DEBIAN_VENDOR = b"(Debian 12.2.0-14+deb12u1) "
TOOLSET_VENDOR = b"(kbg toolset 12.2.0-1) "
TOOLSET_TEXT = "gcc (kbg toolset 12.2.0-1) 12.2.0"

SPEC = """Name: %{pkgname}
Version: 12.2.0
Release: 1
Summary: a copy of Debian's gcc-12 laid out as %{pkgname}
License: GPLv3+
# A relocated copy: no dependencies to resolve in an empty build root.
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

# package name -> (prefix of the relocated gcc, folder the package owns)
PACKAGES = {
    "gcc-toolset-12-gcc": ("/opt/rh/gcc-toolset-12/root/usr", "/opt/rh/gcc-toolset-12"),
    "devtoolset-8-gcc": ("/opt/rh/devtoolset-8/root/usr", "/opt/rh/devtoolset-8"),
    "gcc12": ("/usr", "/usr"),  # SUSE's layout: /usr/bin/gcc-12
}


def _stage(stage, prefix, driver_name):
    """The relocated compiler under stage/prefix, its vendor rewritten; returns the driver's path."""
    root = os.path.join(stage, prefix.lstrip("/"))
    libdir = os.path.join(root, "lib/gcc/x86_64-linux-gnu/12")
    os.makedirs(os.path.join(root, "bin"))
    os.makedirs(libdir)
    driver = os.path.join(root, "bin", driver_name)
    for src, dst in ((GCC_DRIVER, driver), (os.path.join(GCC_LIBDIR, "cc1"), os.path.join(libdir, "cc1"))):
        with open(src, "rb") as f:
            data = f.read()
        assert data.count(DEBIAN_VENDOR) == 1, src
        with open(dst, "wb") as f:
            f.write(data.replace(DEBIAN_VENDOR, TOOLSET_VENDOR + b"\0" * (len(DEBIAN_VENDOR) - len(TOOLSET_VENDOR))))
        shutil.copymode(src, dst)
    shutil.copytree(os.path.join(GCC_LIBDIR, "include"), os.path.join(libdir, "include"))
    for name in ("liblto_plugin.so", "collect2"):
        shutil.copy2(os.path.join(GCC_LIBDIR, name), libdir)
    return driver


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A local RPM repository (createrepo_c) holding the three packages."""
    for tool in ("rpmbuild", "createrepo_c", "dnf", "zypper", "rpm"):
        require(shutil.which(tool) is not None, "%s (scripts/test installs dnf, zypper, createrepo-c, rpm)" % tool)
    require(os.path.isfile(GCC_DRIVER) and os.path.isfile(os.path.join(GCC_LIBDIR, "cc1")), "Debian's gcc-12")
    base = tmp_path_factory.mktemp("rpms")
    spec = base / "toolset.spec"
    spec.write_text(SPEC)
    out = base / "repo"
    out.mkdir()
    for name, (prefix, owned) in PACKAGES.items():
        stage = str(base / ("stage-" + name))
        driver = _stage(stage, prefix, "gcc-12" if prefix == "/usr" else "gcc")
        # gcc finds cc1 relative to its own path: the copy runs from where it lies
        cc1 = subprocess.run([driver, "-print-prog-name=cc1"], stdout=subprocess.PIPE, check=True,
                             universal_newlines=True).stdout.strip()
        assert os.path.realpath(cc1).startswith(os.path.realpath(stage)), cc1
        filelist = base / ("files-" + name)
        filelist.write_text("%s/bin/gcc-12\n%s/lib/gcc\n" % (prefix, prefix) if prefix == "/usr" else owned + "\n")
        subprocess.run(["rpmbuild", "-bb", "--quiet", "--target", "x86_64", "--define", "_topdir %s" % (base / "top"),
                        "--define", "pkgname %s" % name, "--define", "stage %s" % stage, "--define", "filelist %s" % filelist,
                        "--define", "_binary_payload w1.gzdio", str(spec)], check=True, stdout=subprocess.DEVNULL)
    for rpm in (base / "top" / "RPMS" / "x86_64").iterdir():
        shutil.copy(str(rpm), str(out))
    subprocess.run(["createrepo_c", "-q", str(out)], check=True)
    return str(out)


def _root(tmp_path, os_release, repo_dir, repo_path, repo_text):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text(os_release)
    (root / repo_dir).mkdir(parents=True)
    (root / repo_dir / "kbg-local.repo").write_text(repo_text % repo_path)
    return str(root)


ROCKY = 'NAME="Rocky Linux"\nVERSION="8.9 (Green Obsidian)"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="8.9"\nPRETTY_NAME="Rocky Linux 8.9 (Green Obsidian)"\n'
CENTOS7 = 'NAME="CentOS Linux"\nVERSION="7 (Core)"\nID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="7"\nPRETTY_NAME="CentOS Linux 7 (Core)"\n'
LEAP = 'NAME="openSUSE Leap"\nVERSION="15.5"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\nVERSION_ID="15.5"\nPRETTY_NAME="openSUSE Leap 15.5"\n'
YUM_REPO = "[kbg-local]\nname=kbuildguard test toolsets\nbaseurl=file://%s\ngpgcheck=0\nenabled=1\n"
ZYPP_REPO = "[kbg-local]\nname=kbuildguard test toolsets\nbaseurl=file://%s\ngpgcheck=0\nenabled=1\nautorefresh=1\ntype=rpm-md\n"


def _tree(root, release, text=TOOLSET_TEXT, gcc_version="120200"):
    """A copy of Debian's headers at ROOT/usr/src/kernels/R whose records name ``text``."""
    return renamed_compiler_tree(os.path.join(root, "usr/src/kernels", release), release, text, gcc_version)


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, dirs, names in os.walk(root) for n in dirs + names)


def _comment(ko):
    return {c.text for c in read_module(ko).compilers}


def _build(tmp_path, root, env=None):
    repo_dir = str(tmp_path / "kdemo")
    shutil.copytree(os.path.join(EXAMPLES, "kdemo"), repo_dir, ignore=COPY_SOURCES)
    # the default level: the vendor release decides between this machine's gcc-12 and the toolset's (both 12.2.0)
    res = kbuildguard("make", "--sysroot", root, cwd=repo_dir, env=env)
    assert res.code == 0, res
    report = json.load(open(os.path.join(repo_dir, ".kbuildguard", "report.json")))
    return res, report, os.path.join(repo_dir, "kdemo.ko")


def test_dnf_installroot_installs_the_toolset_and_kdemo_is_built_by_it(repo, debian_release, tmp_path):
    root = _root(tmp_path, ROCKY, "etc/yum.repos.d", repo, YUM_REPO)
    _tree(root, debian_release)
    before = _files(root)
    res = kbuildguard("setup", "--sysroot", root, "--dry-run", "--json")
    assert res.code == 0, res
    data = json.loads(res.out)
    assert data["packages"] == [{"name": "gcc-toolset-12-gcc", "role": "compiler", "available": True, "elsewhere": None}]
    assert data["verified_by"] == "dnf repoquery (the build root's repositories)" and data["unavailable"] == []
    assert data["commands"] == [["dnf", "--installroot", root, "--releasever", "8", "install", "-y", "gcc-toolset-12-gcc"]]
    assert _files(root) == before  # the query left the build root as it was

    res = kbuildguard("setup", "--sysroot", root, "--yes")
    assert res.code == 0, res
    gcc = os.path.join(root, "opt/rh/gcc-toolset-12/root/usr/bin/gcc")
    assert "ready: %s" % gcc in res.err
    assert "+ dnf --installroot %s --releasever 8 install -y gcc-toolset-12-gcc" % root in res.err
    cc1 = subprocess.run([gcc, "-print-prog-name=cc1"], stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    assert os.path.realpath(cc1) == os.path.join(root, "opt/rh/gcc-toolset-12/root/usr/lib/gcc/x86_64-linux-gnu/12/cc1")

    res, report, ko = _build(tmp_path, root)
    assert report["toolchain"]["selected"] == gcc
    assert report["modules"][0]["verdict"] == "ok"
    assert _comment(ko) == {TOOLSET_TEXT.replace("gcc (", "GCC: (")}


def test_zypper_root_installs_gcc12_and_kdemo_is_built_by_it(repo, debian_release, tmp_path):
    root = _root(tmp_path, LEAP, "etc/zypp/repos.d", repo, ZYPP_REPO)
    _tree(root, debian_release)
    before = _files(root)
    res = kbuildguard("setup", "--sysroot", root, "--dry-run", "--json")
    assert res.code == 0, res
    data = json.loads(res.out)
    assert [(p["name"], p["available"]) for p in data["packages"]] == [("gcc12", True)]
    assert data["verified_by"] == "zypper search (the build root's repositories)"
    assert _files(root) == before

    res = kbuildguard("setup", "--sysroot", root, "--yes")
    assert res.code == 0, res
    assert "+ zypper --root %s --non-interactive install gcc12" % root in res.err
    gcc = os.path.join(root, "usr/bin/gcc-12")
    assert "ready: %s" % gcc in res.err
    # make searches PATH and the SCL root: a chroot's shell would have ROOT/usr/bin on PATH
    res, report, ko = _build(tmp_path, root, env={"PATH": "%s:%s" % (os.path.join(root, "usr/bin"), os.environ["PATH"])})
    assert report["toolchain"]["selected"] == gcc
    assert _comment(ko) == {TOOLSET_TEXT.replace("gcc (", "GCC: (")}


def test_build_root_without_the_package_names_where_it_is(repo, debian_release, tmp_path):
    """gcc 13 needs gcc-toolset-13-gcc, which the root's repository does not have: exit 15, nothing installed."""
    root = _root(tmp_path, ROCKY, "etc/yum.repos.d", repo, YUM_REPO)
    _tree(root, debian_release, text="gcc (GCC) 13.2.1 20231205 (Red Hat 13.2.1-6)", gcc_version="130201")
    before = _files(root)
    res = kbuildguard("setup", "--sysroot", root, "--yes", "--json")
    assert res.code == 15, res
    data = json.loads(res.out)
    assert data["unavailable"] == ["gcc-toolset-13-gcc"]
    assert "AppStream" in data["packages"][0]["elsewhere"]
    assert "gcc-toolset-13-gcc" in res.err and "AppStream" in res.err
    assert _files(root) == before


def test_el7_root_is_checked_by_dnf_even_though_yum_installs(repo, tmp_path):
    """CentOS 7's yum cannot run here (its argv is covered by the stand-ins); dnf reads the same .repo files."""
    root = _root(tmp_path, CENTOS7, "etc/yum.repos.d", repo, YUM_REPO)
    os.makedirs(os.path.join(root, "proc"))
    with open(os.path.join(root, "proc/version"), "w") as f:
        f.write("Linux version 3.10.0-1160.el7.x86_64 (mockbuild@kbuilder.bsys.centos.org) (gcc version 8.3.1 "
                "20190311 (Red Hat 8.3.1-3) (GCC) ) #1 SMP Mon Oct 19 16:18:59 UTC 2020\n")
    res = kbuildguard("setup", "--sysroot", root, "--dry-run", "--json")
    assert res.code == 15, res
    data = json.loads(res.out)
    assert [(p["name"], p["available"]) for p in data["packages"]] == [
        ("devtoolset-8-gcc", True), ("kernel-devel-3.10.0-1160.el7.x86_64", False)]
    assert data["commands"][-1][:6] == ["yum", "--installroot", root, "--releasever", "7", "install"]
    assert "vault.centos.org" in data["packages"][1]["elsewhere"]


def test_running_kernel_plan_is_checked_with_apt(tmp_path):
    """This machine runs a kernel Debian does not ship: its compiler and headers are not in apt's lists."""
    require(shutil.which("apt-cache") is not None, "apt-cache")
    release = os.uname().release
    require(not os.path.isdir("/lib/modules/%s/build" % release), "a running kernel without a build tree")
    res = kbuildguard("setup", "--dry-run", "--json")
    assert res.code == 15, res
    data = json.loads(res.out)
    assert data["verified_by"] == "apt-cache policy"
    names = [p["name"] for p in data["packages"]]
    assert "linux-headers-%s" % release in names
    assert data["unavailable"] == names  # gcc-15 (the kernel's compiler) and the headers: neither exists here
    assert all("packages.debian.org" in p["elsewhere"] for p in data["packages"])


def test_el8_kernel_line_gets_an_unverified_dnf_plan_never_apt(tmp_path):
    line = tmp_path / "proc-version.txt"
    line.write_text("Linux version 4.18.0-513.11.1.lve.el8.x86_64 (mockbuild@build.cloudlinux.com) (gcc version 8.5.0 "
                    "20210514 (Red Hat 8.5.0-20) (GCC)) #1 SMP Thu Jan 18 16:21:02 UTC 2024\n")
    res = kbuildguard("setup", "--proc-version-file", str(line), "--dry-run", "--json")
    assert res.code == 0, res
    data = json.loads(res.out)
    assert data["manager"] == "dnf"
    assert not any(c[0] in ("apt-get", "chroot") for c in data["commands"])
    assert [p["available"] for p in data["packages"]] == [None, None]
    assert "cannot be asked from here" in data["unverified"]
    res = kbuildguard("setup", "--proc-version-file", str(line), "--yes")
    assert res.code == 2, res
