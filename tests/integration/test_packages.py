"""kbuildguard's own packages (issue 19), as scripts/build-packages built them into dist/
(KBG_TEST_PACKAGES): the RPM's Requires/Provides/files and its payload run; the .deb's Depends and
files; then, as sbuild does, the .deb installed by apt into a clean Debian 12 chroot
(KBG_TEST_BOOKWORM_CHROOT, made by scripts/lib.sh's bookworm_chroot) with Debian's own libraries,
and a module package built there with the network cut, which fails on a mismatching compiler."""

import glob
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import require
from integration.conftest import EXAMPLES
from kbuildguard import __version__
from kbuildguard.formats.module import read_module

# Once per CI run, in the Python 3.13 pass (as the qemu guests): they test the files in dist/, not the Python running pytest.
pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="runs in the Python 3.13 pass")

REPO = os.path.dirname(EXAMPLES)
SPEC = os.path.join(REPO, "packaging", "rpm", "kbuildguard.spec")
# scripts/build-packages builds the main RPM in EL9's layout (Python 3.9), not Debian's dist-packages
SITELIB = "/usr/lib/python3.9/site-packages"
RPM = "kbuildguard-%s-1.el9.noarch.rpm" % __version__
EL7_RPM = "kbuildguard-%s-1.el7.noarch.rpm" % __version__


def _out(argv, **kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)
    assert proc.returncode == 0, "%s: %s" % (argv, proc.stdout.decode()[-3000:])
    return proc.stdout.decode()


@pytest.fixture(scope="module")
def dist():
    where = os.environ.get("KBG_TEST_PACKAGES", "")
    require(bool(where) and os.path.isdir(where), "KBG_TEST_PACKAGES: dist/ from scripts/build-packages")
    return where


def _one(dist, pattern):
    found = glob.glob(os.path.join(dist, pattern))
    assert len(found) == 1, (pattern, found)
    return found[0]


def test_rpm_requires_only_distribution_packages(dist):
    rpm = _one(dist, RPM)
    requires = sorted(_out(["rpm", "-qp", "--requires", rpm]).splitlines())
    # the Python dependency generator's ranges (rich dependencies: EL9's rpm 4.16 reads them) from the
    # egg-info, for Python 3.9 -- the path says which Python
    generated = [r for r in requires if r.startswith("(") or "dist(" in r]
    assert "(python3.9dist(jinja2) < 4 with python3.9dist(jinja2) >= 2.10.1)" in generated, generated
    ours = [r for r in requires if not r.startswith("rpmlib(") and r not in generated]
    # /bin/sh: the reboot hooks (kbuildguard/data/hooks: kernel's postinst.d, kernel-install) are shell
    # scripts; every distribution's base system provides it. python3-tomli: EL9's Python 3.9 has no tomllib.
    # config(kbuildguard): rpm's own requirement for a package with a %config file (/etc/rpm/macros.zz-kbuildguard)
    assert ours == ["/bin/sh", "/usr/bin/python3", "config(kbuildguard) = %s-1.el9" % __version__, "make", "python(abi) = 3.9", "python3-distro >= 1.4.0",
                    "python3-jinja2 >= 2.10.1", "python3-packaging >= 16.8", "python3-tomli"]
    provides = _out(["rpm", "-qp", "--provides", rpm]).splitlines()
    assert "kbuildguard = %s-1.el9" % __version__ in provides
    assert "kbuildguard-rpm-macros = %s-1.el9" % __version__ in provides
    assert "rpm_macro(kbuildguard_make)" in provides and "rpm_macro(kbuildguard_check)" in provides
    files = set(_out(["rpm", "-qlp", rpm]).splitlines())
    for path in ("/usr/bin/kbuildguard", "/usr/lib/rpm/macros.d/macros.kbuildguard", "/usr/share/man/man1/kbuildguard.1",
                 "/usr/lib/rpm/macros.d/macros.zz-kbuildguard-kmodtool", "/usr/lib/kbuildguard/dkms-post-build", SITELIB + "/kbuildguard/data/macros.zz-kbuildguard-kmodtool",
                 "/usr/share/bash-completion/completions/kbuildguard", SITELIB + "/kbuildguard/cli.py",
                 SITELIB + "/kbuildguard/templates/Kbuild.j2", SITELIB + "/kbuildguard/data/catalogue.json",
                 "/usr/share/doc/kbuildguard-%s/examples/rpm/kmod-kdemo.spec" % __version__,
                 "/usr/share/doc/kbuildguard-%s/examples/debian-module/debian/rules" % __version__):
        assert path in files, path
    # the chain again after a build system's /etc/rpm/macros.* (AlmaLinux's macros.modsign): %config
    assert "/etc/rpm/macros.zz-kbuildguard" in _out(["rpm", "-qcp", rpm]).splitlines()
    assert not [f for f in files if f.endswith(".o_shipped")]
    # EL9's layout only: nothing in Debian's dist-packages, no byte code of the build host's Python
    assert not [f for f in files if "dist-packages" in f or "cpython-311" in f]


def test_srpm_build_requires(dist):
    srpm = _one(dist, "kbuildguard-%s-1.el9.src.rpm" % __version__)
    requires = _out(["rpm", "-qp", "--requires", srpm]).splitlines()
    for name in ("python3-devel", "python3-setuptools", "python3-jinja2", "python3-distro", "python3-packaging", "python3-tomli"):
        assert name in requires, name


def test_spec_el7_variant_names_epel_python36_packages():
    """EL7: python3_pkgversion 36 (EPEL 7); %python3_version_nodots as EPEL 7's macros give it."""
    require(shutil.which("rpmspec") is not None, "rpmspec (Debian package rpm)")
    requires = _out(["rpmspec", "-q", "--requires", "--define", "rhel 7", "--define", "python3_version_nodots 36", SPEC]).split("\n")
    assert {"python36-jinja2 >= 2.10.1", "python36-distro >= 1.4.0", "python36-packaging >= 16.8", "python36-tomli"} <= set(requires)
    assert not [r for r in requires if r.startswith("python3-")]
    build = _out(["rpmspec", "-q", "--buildrequires", "--define", "rhel 7", "--define", "python3_version_nodots 36", SPEC]).split("\n")
    assert "python36-devel" in build and "python36-tomli" in build
    # EL9 (Python 3.9): python3-*, and tomli, which 3.9 has no tomllib for
    el9 = _out(["rpmspec", "-q", "--requires", "--define", "rhel 9", "--define", "python3_version_nodots 39", SPEC]).split("\n")
    assert "python3-tomli" in el9 and "python3-jinja2 >= 2.10.1" in el9


def test_rpm_payload_runs(dist, debian_release, tmp_path):
    """The payload, unpacked, run by the interpreter its script names (Debian's python3 stands in for
    EL9's: the package is pure Python) with Debian's own libraries."""
    require(shutil.which("rpm2cpio") is not None and shutil.which("cpio") is not None, "rpm2cpio, cpio")
    rpm = _one(dist, RPM)
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run("rpm2cpio %s | cpio -idm --quiet" % rpm, shell=True, cwd=str(root), check=True)
    script = str(root / "usr" / "bin" / "kbuildguard")
    interpreter = open(script).readline()[2:].strip()
    assert interpreter == "/usr/bin/python3"
    env = dict(os.environ, PYTHONPATH=str(root) + SITELIB, PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    # the package's own code, not the checkout's or the test venv's
    where = _out([interpreter, "-c", "import kbuildguard; print(kbuildguard.__file__)"], env=env, cwd="/")
    assert where.strip() == str(root) + SITELIB + "/kbuildguard/__init__.py"
    assert _out([interpreter, script, "--version"], env=env, cwd="/").strip() == "kbuildguard %s" % __version__
    detect = _out([interpreter, script, "detect", "--kernel", debian_release], env=env, cwd="/")
    assert "gcc 12.2.0" in detect
    # the macros file is the one `kbuildguard rpm-macros` prints
    macros = (root / "usr" / "lib" / "rpm" / "macros.d" / "macros.kbuildguard").read_text()
    assert _out([interpreter, script, "rpm-macros"], env=env, cwd="/") == macros
    # the completion loads in bash and registers itself; the man page renders
    completion = str(root / "usr" / "share" / "bash-completion" / "completions" / "kbuildguard")
    assert "complete -o filenames -F _kbuildguard kbuildguard" in _out(["bash", "-c", "source %s && complete -p kbuildguard" % completion])
    words = _out(["bash", "-c", 'source %s; COMP_WORDS=(kbuildguard make --mat); COMP_CWORD=2; _kbuildguard; echo "${COMPREPLY[@]}"' % completion])
    assert words.split() == ["--match"]
    if shutil.which("man"):
        page = _out(["man", "-l", "-P", "cat", str(root / "usr" / "share" / "man" / "man1" / "kbuildguard.1")],
                    env=dict(env, MANWIDTH="200"))
        assert "--allow-mismatch" in page and "EXIT STATUS" in page


def test_deb_depends_only_on_debian_packages(dist):
    deb = _one(dist, "kbuildguard_%s_all.deb" % __version__)
    depends = [d.strip() for d in _out(["dpkg-deb", "-f", deb, "Depends"]).strip().split(",")]
    assert sorted(depends) == sorted(["python3:any", "make", "python3-distro (>= 1.4.0)", "python3-jinja2 (>= 2.10.1)",
                                      "python3-packaging (>= 16.8)", "python3-tomli | python3 (>= 3.11)"])
    files = set(line.split()[-1] for line in _out(["dpkg-deb", "-c", deb]).splitlines())
    for path in ("./usr/bin/kbuildguard", "./usr/lib/rpm/macros.d/macros.kbuildguard", "./usr/share/man/man1/kbuildguard.1.gz",
                 "./usr/lib/rpm/macros.d/macros.zz-kbuildguard-kmodtool", "./usr/lib/kbuildguard/dkms-post-build",
                 "./usr/share/bash-completion/completions/kbuildguard", "./usr/lib/python3/dist-packages/kbuildguard/cli.py",
                 "./usr/share/doc/kbuildguard/examples/debian-module/debian/rules", "./etc/rpm/macros.zz-kbuildguard",
                 # docs/ kept a folder: the README's links (docs/packagers.md) resolve beside it
                 "./usr/share/doc/kbuildguard/docs/packagers.md"):
        assert path in files, path
    assert "/etc/rpm/macros.zz-kbuildguard" in _out(["dpkg-deb", "--info", deb, "conffiles"]).splitlines()


# -- as sbuild does: a clean Debian 12 chroot, no network -------------------------------------------

# Run in a private mount namespace with no network (unshare -m -n): the cached chroot is the
# read-only lower layer of an overlay whose upper layer is this test's, so the cache stays clean
# and nothing outlives the namespace.
CHROOT = r"""
set -e
root=$1 ov=$2; shift 2
mount -t overlay overlay -o "lowerdir=$root,upperdir=$ov/upper,workdir=$ov/work" "$ov/merged"
mount -t proc proc "$ov/merged/proc"
mount --rbind /dev "$ov/merged/dev"
exec chroot "$ov/merged" "$@"
"""


def _in_chroot(root, ov, *argv, **env):
    start = time.monotonic()
    proc = subprocess.run(["unshare", "-m", "-n", "bash", "-c", CHROOT, "chroot", root, ov,
                           "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C.UTF-8",
                           "DEBIAN_FRONTEND=noninteractive"] + ["%s=%s" % kv for kv in env.items()] + list(argv),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc.returncode, proc.stdout.decode(errors="replace"), time.monotonic() - start


def test_module_package_builds_in_a_clean_bookworm_chroot_offline(dist, tmp_path):
    root = os.environ.get("KBG_TEST_BOOKWORM_CHROOT", "")
    require(bool(root) and os.path.isdir(root), "KBG_TEST_BOOKWORM_CHROOT (scripts/lib.sh bookworm_chroot)")
    require(os.geteuid() == 0 and shutil.which("unshare") is not None, "root and unshare (mount and network namespaces)")
    deb = _one(dist, "kbuildguard_%s_all.deb" % __version__)
    ov = tmp_path / "ov"
    for d in ("upper/build", "work", "merged"):
        (ov / d).mkdir(parents=True)
    shutil.copy(deb, str(ov / "upper" / "build"))
    for name in ("good", "bad"):
        src = ov / "upper" / "build" / name / "kdemo-modules"
        shutil.copytree(os.path.join(EXAMPLES, "debian-module"), str(src))
        for f in ("kdemo.c", "kbuildguard.toml"):
            shutil.copy(os.path.join(EXAMPLES, "kdemo", f), str(src))
    times = {}

    # the network is cut: a ping-free check that nothing outside is reachable
    code, out, _ = _in_chroot(root, str(ov), "python3", "-c",
                              "import socket; socket.create_connection(('deb.debian.org', 80), timeout=3)")
    assert code != 0, out

    # apt installs the .deb and, through its Depends, Debian's own libraries (no pip)
    code, out, times["apt install"] = _in_chroot(root, str(ov), "apt-get", "install", "-y", "--no-install-recommends",
                                                 "/build/" + os.path.basename(deb))
    assert code == 0, out[-3000:]
    for lib in ("python3-jinja2", "python3-distro", "python3-packaging"):
        assert re.search(r"^Setting up %s \(" % lib, out, re.M), (lib, out[-3000:])
    code, out, _ = _in_chroot(root, str(ov), "python3", "-c",
                              "import jinja2, distro, packaging.version, kbuildguard; print(kbuildguard.__file__, jinja2.__file__)")
    assert code == 0 and out.split() == ["/usr/lib/python3/dist-packages/kbuildguard/__init__.py",
                                         "/usr/lib/python3/dist-packages/jinja2/__init__.py"], out

    # the module package: debian/rules calls kbuildguard make, then checks the payload
    code, out, times["good build"] = _in_chroot(root, str(ov), "sh", "-c", "cd /build/good/kdemo-modules && dpkg-buildpackage -us -uc -b")
    assert code == 0, out[-4000:]
    assert "kbuildguard make --kernel " in out and "kbuildguard check --kernel " in out
    built = glob.glob(str(ov / "upper" / "build" / "good" / "kdemo-modules_*_amd64.deb"))
    assert len(built) == 1
    unpacked = tmp_path / "unpacked"
    subprocess.run(["dpkg-deb", "-x", built[0], str(unpacked)], check=True)
    kos = glob.glob(str(unpacked / "lib" / "modules" / "*" / "updates" / "kdemo.ko"))
    assert len(kos) == 1
    assert {c.describe() for c in read_module(kos[0]).compilers} == {"gcc 12.2.0 (Debian 12.2.0-14+deb12u1)"}

    # a build environment that pins another compiler (gcc-11, installed in the chroot): the package
    # build fails before compiling, and no .deb is written
    code, out, times["mismatch build"] = _in_chroot(root, str(ov), "sh", "-c", "cd /build/bad/kdemo-modules && dpkg-buildpackage -us -uc -b",
                                                    KBUILDGUARD_CC="gcc-11")
    assert code != 0
    assert "compiler refused: /usr/bin/gcc-11 (KBUILDGUARD_CC) is gcc 11" in out, out[-3000:]
    assert "override_dh_auto_build" in out and "dpkg-buildpackage: error" in out
    assert glob.glob(str(ov / "upper" / "build" / "bad" / "*.deb")) == []
    print("bookworm chroot times: %s" % ", ".join("%s %.1f s" % kv for kv in times.items()))


def test_el7_rpm_built_by_python_3_6(dist, debian_release, tmp_path):
    """The EL7 variant scripts/build-packages built with --define "rhel 7", Python 3.6 and setuptools
    < 59.7 (setup.py's own translation of pyproject.toml): EPEL 7's names, EL7's /usr/bin/python3.6
    (not the build host's venv), Python 3.6's paths, no rich dependency (EL7's rpm 4.11 cannot read
    one), and a payload that runs on 3.6 with the oldest libraries."""
    rpm = _one(dist, EL7_RPM)
    requires = _out(["rpm", "-qp", "--requires", rpm]).splitlines()
    ours = sorted(r for r in requires if not r.startswith("rpmlib("))
    assert ours == ["/bin/sh", "/usr/bin/python3.6", "config(kbuildguard) = %s-1.el7" % __version__, "make", "python(abi) = 3.6", "python36-distro >= 1.4.0",
                    "python36-jinja2 >= 2.10.1", "python36-packaging >= 16.8", "python36-tomli"], ours
    # a rich dependency is a name in parentheses and makes rpm add rpmlib(RichDependencies) (rpm 4.13);
    # it has no flag of its own in REQUIREFLAGS: every flag here is one rpm 4.11 knows (< 1 << 28), or
    # RPMSENSE_CONFIG (1 << 28, rpmds.h since rpm 4.0: the config(kbuildguard) rpm adds for a %config file)
    assert "rpmlib(RichDependencies) <= 4.12.0-1" not in requires
    assert not [r for r in requires if r.startswith("(")]
    flags = _out(["rpm", "-qp", "--qf", "[%{REQUIREFLAGS}\\n]", rpm]).split()
    assert flags and all(int(f) & ~(1 << 28) < (1 << 28) for f in flags), flags
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run("rpm2cpio %s | cpio -idm --quiet" % rpm, shell=True, cwd=str(root), check=True)
    sitelib = root / "usr" / "lib" / "python3.6" / "site-packages"
    assert (sitelib / "kbuildguard" / "templates" / "Makefile.j2").is_file()
    script = str(root / "usr" / "bin" / "kbuildguard")
    assert open(script).readline() == "#!/usr/bin/python3.6\n"
    # EL7's /usr/bin/python3.6 stand-in: the Python 3.6 with the oldest libraries that built it
    interpreter = os.environ.get("KBG_TEST_EL7_PYTHON", "")
    require(bool(interpreter) and os.access(interpreter, os.X_OK), "KBG_TEST_EL7_PYTHON (scripts/test: the EL7 build's Python 3.6)")
    env = dict(os.environ, PYTHONPATH=str(sitelib), PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    versions = _out([interpreter, "-c", "import sys, jinja2, packaging; print(sys.version_info[:2], jinja2.__version__, packaging.__version__)"],
                    env=env)
    assert versions.split() == ["(3,", "6)", "2.10.1", "16.8"], versions
    assert _out([interpreter, script, "--version"], env=env, cwd="/").strip() == "kbuildguard %s" % __version__
    assert "gcc 12.2.0" in _out([interpreter, script, "detect", "--kernel", debian_release], env=env, cwd="/")


# -- installed for real: dnf --installroot, a local repository of stand-ins -----------------------

STANDINS_SPEC = os.path.join(REPO, "tests", "data", "rpm", "standins.spec")
EL9_PROVIDES = ["/bin/sh", "/usr/bin/python3", "make", "python(abi) = 3.9", "python3-jinja2 = 2.11.3", "python3-distro = 1.5.0",
                "python3-packaging = 20.9", "python3-tomli = 1.2.2", "python3.9dist(jinja2) = 2.11.3", "python3.9dist(distro) = 1.5",
                "python3.9dist(packaging) = 20.9", "python3.9dist(tomli) = 1.2.2"]
# EPEL 7's names and the issue's versions (jinja2 2.11.1, distro 1.5.0, packaging 16.8)
EL7_PROVIDES = ["/bin/sh", "/usr/bin/python3.6", "make", "python(abi) = 3.6", "python36-jinja2 = 2.11.1", "python36-distro = 1.5.0",
                "python36-packaging = 16.8", "python36-tomli = 1.2.2"]


def _dnf_install(tmp_path, rpm, provides, releasever):
    """dnf --installroot from a local repository holding one stand-in package (PROVIDES): the RPM's
    Requires resolve against a distribution's names, and rpm installs its files."""
    require(shutil.which("dnf") is not None and shutil.which("createrepo_c") is not None, "dnf, createrepo_c")
    top, repo, root = tmp_path / "top", tmp_path / "repo", tmp_path / "root"
    _out(["rpmbuild", "-bb", "--define", "_topdir %s" % top, "--define", "standin_name el%s-standins" % releasever,
          "--define", "standin_provides %s" % ";".join(provides), STANDINS_SPEC])
    repo.mkdir()
    for built in glob.glob(str(top / "RPMS" / "noarch" / "*.rpm")):
        shutil.copy(built, str(repo))
    _out(["createrepo_c", "-q", str(repo)])
    proc = subprocess.run(["dnf", "-y", "--installroot", str(root), "--releasever", releasever, "--repofrompath",
                           "standins,file://%s" % repo, "--repo", "standins", "--nogpgcheck", "--setopt=cachedir=%s" % (tmp_path / "cache"),
                           "--setopt=reposdir=/nonexistent", "--setopt=install_weak_deps=False", "install", rpm],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc.returncode, proc.stdout.decode(errors="replace"), root


@pytest.mark.parametrize("which", ["el9", "el7"])
def test_the_rpm_installs_with_dnf_against_the_distributions_names(dist, tmp_path, which):
    rpm = _one(dist, RPM if which == "el9" else EL7_RPM)
    provides = EL9_PROVIDES if which == "el9" else EL7_PROVIDES
    code, out, root = _dnf_install(tmp_path, rpm, provides, which[2:])
    assert code == 0, out[-3000:]
    assert _out(["rpm", "--root", str(root), "-q", "kbuildguard"]).startswith("kbuildguard-%s-1.%s" % (__version__, which))
    _out(["rpm", "--root", str(root), "-V", "kbuildguard"])  # every file as the package says
    sitelib = root / "usr" / "lib" / ("python3.9" if which == "el9" else "python3.6") / "site-packages"
    assert (sitelib / "kbuildguard" / "cli.py").is_file()
    assert (root / "usr" / "lib" / "kbuildguard" / "dkms-post-build").is_file()
    # the installed files run (Debian's python3 stands in for the target's: pure Python)
    env = dict(os.environ, PYTHONPATH=str(sitelib), PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    assert _out(["python3", str(root / "usr" / "bin" / "kbuildguard"), "--version"], env=env, cwd="/").strip() == "kbuildguard %s" % __version__


def test_dnf_refuses_the_el9_rpm_without_tomli(dist, tmp_path):
    """The control: a distribution without python3-tomli (Python 3.9 has no tomllib) cannot install it."""
    code, out, _ = _dnf_install(tmp_path, _one(dist, RPM), [p for p in EL9_PROVIDES if "tomli" not in p], "9")
    assert code != 0 and "python3-tomli" in out, out[-3000:]
