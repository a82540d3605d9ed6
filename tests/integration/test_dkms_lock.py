"""Issue 19 part 2, DKMS: the per-kernel toolchain lock (`detect --toolchain-lock`) and the
one-line POST_BUILD check (kbuildguard/data/hooks/dkms-post-build), with Debian 12's real dkms
3.0.10 in a private --dkmstree/--sourcetree, and an unmodified dkms.conf (no MAKE: DKMS's own
`make -C $kernel_source_dir M=...`).

The host here has the wrong compiler first on PATH under the kernel's compiler's names (`gcc-12`,
`gcc`: gcc 11, less the one flag it lacks) -- what an unlocked DKMS build picks up. dkms 3.0.10
has no build_environment (DKMS 3.3 sources one; not available here: Debian 12 ships 3.0.10, 13
3.2.2, and the newest upstream source reachable, 3.2.2, has none), so the lock reaches it the
way build_environment would give it: sourced by the shell that runs dkms, with $kernelver set."""

import glob
import os
import shutil
import subprocess
import sys

import pytest

from conftest import require
from integration.conftest import EXAMPLES, kbuildguard
from kbuildguard.formats.module import read_module

pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="runs in the Python 3.13 pass")

HOOK = os.path.join(os.path.dirname(EXAMPLES), "kbuildguard", "data", "hooks", "dkms-post-build")
# as an installed package's dkms.conf names /usr/lib/kbuildguard/dkms-post-build: a climb to / from
# DKMS's build folder, then the absolute path (here the checkout's copy)
POST_BUILD = "../" * 16 + HOOK.lstrip("/") + " $kernelver $arch"

WRONG_GCC = """#!/bin/sh
# another gcc under the kernel's compiler's name: gcc 11, less the one flag it lacks
for a in "$@"; do shift; [ "$a" = "-ftrivial-auto-var-init=zero" ] || set -- "$@" "$a"; done
exec /usr/bin/gcc-11 "$@"
"""


@pytest.fixture
def host(tmp_path):
    require(shutil.which("dkms") is not None and os.geteuid() == 0, "dkms, root")
    require(os.access("/usr/bin/gcc-11", os.X_OK), "gcc-11")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "gcc-12").write_text(WRONG_GCC)
    (shim / "gcc-12").chmod(0o755)
    (shim / "gcc").symlink_to("gcc-12")
    src = tmp_path / "src" / "kdemo-1.0"
    src.mkdir(parents=True)
    shutil.copy(os.path.join(EXAMPLES, "kdemo", "kdemo.c"), str(src))
    (src / "Kbuild").write_text("obj-m := kdemo.o\n")
    # unmodified but for the one line: no MAKE[0], DKMS's own make
    (src / "dkms.conf").write_text('PACKAGE_NAME="kdemo"\nPACKAGE_VERSION="1.0"\nBUILT_MODULE_NAME[0]="kdemo"\n'
                                   'DEST_MODULE_LOCATION[0]="/updates/dkms"\nPOST_BUILD="%s"\n' % POST_BUILD)
    (tmp_path / "tree").mkdir()
    return tmp_path


def _dkms(host, release, action, lock=None, extra=()):
    common = ["-m", "kdemo", "-v", "1.0", "--sourcetree", str(host / "src"), "--dkmstree", str(host / "tree")] + list(extra)
    env = dict(os.environ, PATH=os.pathsep.join([str(host / "shim"), os.path.dirname(sys.executable), os.environ["PATH"]]))
    # DKMS 3.3's build_environment, by the same shell logic: sourced with $kernelver set
    prefix = "kernelver=%s; . %s/build_environment; " % (release, lock) if lock else ""
    proc = subprocess.run(["bash", "-c", prefix + 'exec dkms "$@"', "dkms", action] + common + (["-k", release] if action != "add" else []),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc.returncode, proc.stdout.decode(errors="replace")


def _built(host, release):
    return glob.glob(str(host / "tree" / "kdemo" / "1.0" / release / "*" / "module" / "kdemo.ko*"))


def test_without_the_lock_dkms_builds_with_paths_gcc_and_post_build_refuses_loudly(host, debian_release, compilers):
    assert _dkms(host, debian_release, "add")[0] == 0
    code, out = _dkms(host, debian_release, "build")
    # dkms 3.0.10 ignores POST_BUILD's status: the build "succeeds" -- why the hook removes what it built
    assert code == 0, out[-3000:]
    assert "BAD  compiler [cannot-unload]: built (at least in part) by gcc 11.3.0" in out, out[-3000:]
    assert "kbuildguard: REFUSED the module(s) DKMS built for kernel %s (kbuildguard check exit 8, above)" % debian_release in out
    assert _built(host, debian_release) == []
    status = _dkms(host, debian_release, "status")[1]
    assert "built" not in status and "kdemo/1.0: added" in status, status


def test_with_the_lock_an_unmodified_dkms_conf_builds_with_the_locked_compiler(host, debian_release, compilers):
    lock = host / "lock"
    res = kbuildguard("detect", "--kernel", debian_release, "--toolchain-lock", str(lock))
    assert res.code == 0, res
    assert os.readlink(str(lock / debian_release / "bin" / "gcc-12")) == "/usr/bin/gcc-12"
    assert _dkms(host, debian_release, "add")[0] == 0
    code, out = _dkms(host, debian_release, "build", lock=str(lock))
    assert code == 0 and "REFUSED" not in out, out[-3000:]
    built = _built(host, debian_release)
    assert len(built) == 1, out[-3000:]
    assert {c.describe() for c in read_module(built[0]).compilers} == {"gcc 12.2.0 (Debian 12.2.0-14+deb12u1)"}
    assert "%s, x86_64: built" % debian_release in _dkms(host, debian_release, "status")[1]


def test_a_kernel_without_a_lock_is_said_and_still_checked(host, debian_release, compilers, tmp_path):
    lock = host / "lock"
    assert kbuildguard("detect", "--kernel", debian_release, "--toolchain-lock", str(lock)).code == 0
    shutil.rmtree(str(lock / debian_release))
    assert _dkms(host, debian_release, "add")[0] == 0
    code, out = _dkms(host, debian_release, "build", lock=str(lock))
    assert "kbuildguard: no toolchain lock for kernel %s" % debian_release in out
    assert "REFUSED" in out and _built(host, debian_release) == []


def test_the_hook_refuses_bad_arguments_and_a_missing_kbuildguard(tmp_path):
    for argv in (["../x", "x86_64"], ["6.1.0", "a/b"], ["", ""], ["..", "x"]):
        proc = subprocess.run(["sh", HOOK] + argv, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.returncode == 2 and b"bad arguments" in proc.stdout, (argv, proc.stdout)
    build = tmp_path / "build"
    (tmp_path / "6.1.0-57-amd64" / "x86_64" / "module").mkdir(parents=True)
    build.mkdir()
    proc = subprocess.run(["/bin/sh", HOOK, "6.1.0-57-amd64", "x86_64"], cwd=str(build), env={"PATH": "/nonexistent"},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.returncode == 11 and b"kbuildguard is not on PATH=/nonexistent: not checked" in proc.stdout
    assert not (tmp_path / "6.1.0-57-amd64" / "x86_64").exists()


# -- DKMS 3.0.10: what fails closed (issue 19's tester) --------------------------------------------

def _make_conf(host):
    """The one line for DKMS 3.0.x: kbuildguard builds, so a refusal is make's failure."""
    (host / "src" / "kdemo-1.0" / "dkms.conf").write_text(
        'PACKAGE_NAME="kdemo"\nPACKAGE_VERSION="1.0"\nMAKE[0]="kbuildguard make --kernel ${kernelver}"\n'
        'BUILT_MODULE_NAME[0]="kdemo"\nDEST_MODULE_LOCATION[0]="/updates/dkms"\n')


def test_dkms_3_0_make_line_fails_the_build_and_a_later_install_then_recovers(host, debian_release, compilers):
    """Debian 12's dkms 3.0.10 exports CC from the headers' .kernelvariables (gcc-12), which PATH
    resolves to the wrong gcc: kbuildguard refuses it (exit 6), make fails, `dkms build` exits
    non-zero; `dkms install` after it fails too and records nothing; with PATH fixed, `dkms build`
    builds with the kernel's compiler, no --force needed."""
    require(shutil.which("kbuildguard", path=os.path.dirname(sys.executable)) is not None,
            "kbuildguard beside the test's Python (the installed wheel)")
    _make_conf(host)
    assert _dkms(host, debian_release, "add")[0] == 0
    code, out = _dkms(host, debian_release, "build")
    assert code != 0 and "Bad return status for module build" in out, out[-3000:]
    assert _built(host, debian_release) == []
    code, out = _dkms(host, debian_release, "install")
    assert code != 0 and "Bad return status for module build" in out, out[-3000:]
    status = _dkms(host, debian_release, "status")[1]
    assert "installed" not in status and "built" not in status and "kdemo/1.0: added" in status, status
    shutil.rmtree(str(host / "shim"))
    (host / "shim").mkdir()
    code, out = _dkms(host, debian_release, "build")
    assert code == 0, out[-3000:]
    built = _built(host, debian_release)
    assert len(built) == 1 and {c.describe() for c in read_module(built[0]).compilers} == {"gcc 12.2.0 (Debian 12.2.0-14+deb12u1)"}


def test_dkms_3_0_post_build_refusal_then_install_is_pinned(host, debian_release, compilers):
    """Why the docs give DKMS 3.0.x the MAKE[0] line: POST_BUILD's status is ignored, and after the
    hook's refusal `dkms install` (into a private install tree, no depmod) still exits 0 having
    installed nothing (pinned: the tester's `cp: cannot stat ''`)."""
    assert _dkms(host, debian_release, "add")[0] == 0
    code, out = _dkms(host, debian_release, "build")
    assert code == 0 and "REFUSED" in out, out[-3000:]
    assert 'DKMS before 3.2 ignores this exit status' in out and 'MAKE[0]="kbuildguard make --kernel ${kernelver}"' in out
    assert _built(host, debian_release) == []
    inst = host / "inst"
    (inst / debian_release).mkdir(parents=True)
    code, out = _dkms(host, debian_release, "install", extra=["--installtree", str(inst), "--no-depmod", "--no-initrd"])
    # install builds again (nothing is built), the hook refuses again, and dkms 3.0.10 goes on: cp
    # of an empty name, exit 0 -- nothing installed, but no failure either
    assert code == 0 and "REFUSED" in out and "cp: cannot stat ''" in out, out[-3000:]
    assert [f for _, _, fs in os.walk(str(inst)) for f in fs] == []


# -- issue 19's re-test: a refused *rebuild* of an installed module, DKMS 3.0.10 and 3.2 ------------

def _dkms_binaries():
    found = [("3.0", "/usr/sbin/dkms")]
    trixie = os.environ.get("KBG_TEST_DKMS_TRIXIE", "/var/cache/kbuildguard-ci/dkms-trixie/root/usr/sbin/dkms")
    found.append(("3.2", trixie))
    return found


def _run_dkms(binary, host, release, action, wrong=True, extra=()):
    inst = host / "inst"
    common = ["-m", "kdemo", "-v", "1.0", "--sourcetree", str(host / "src"), "--dkmstree", str(host / "tree"),
              "--installtree", str(inst), "--no-depmod", "--no-initrd"] + list(extra)
    path = ([str(host / "shim")] if wrong else []) + [os.path.dirname(sys.executable), os.environ["PATH"]]
    proc = subprocess.run(["bash", binary, action] + common + ["-k", release], env=dict(os.environ, PATH=os.pathsep.join(path)),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc.returncode, proc.stdout.decode(errors="replace")


def _installed(host, release):
    return [f for f in glob.glob(str(host / "inst" / release / "updates" / "dkms" / "kdemo.ko*")) if os.path.isfile(f)]


@pytest.mark.parametrize("version,binary", _dkms_binaries())
def test_a_refused_rebuild_of_an_installed_module_and_the_documented_recovery(host, debian_release, compilers, version, binary):
    """Install a good module; rebuild it (--force) with the wrong compiler: refused, nothing of it
    installable, the installed module untouched, and the state docs/packagers.md names; then the
    recovery it gives (`dkms build`, `dkms install --force`, with the compiler right) installs a
    module built by the kernel's compiler and DKMS's record is whole again."""
    require(os.access(binary, os.X_OK), "dkms %s (scripts/test unpacks Debian 13's into /var/cache/kbuildguard-ci)" % version)
    (host / "inst" / debian_release).mkdir(parents=True)
    # dkms 3.2 finds the headers through the install tree (INSTALLTREE/R/build), as /lib/modules/R/build
    os.symlink(os.path.realpath("/lib/modules/%s/build" % debian_release), str(host / "inst" / debian_release / "build"))
    code, out = _run_dkms(binary, host, debian_release, "install", wrong=False)
    assert code == 0, out[-3000:]
    good = _installed(host, debian_release)
    assert len(good) == 1, out[-3000:]
    before = open(good[0], "rb").read()
    code, out = _run_dkms(binary, host, debian_release, "build", extra=["--force"])
    if version == "3.2":  # 3.2 runs POST_BUILD with its output into make.log, and names that file
        log = str(host / "tree" / "kdemo" / "1.0" / "build" / "make.log")
        assert "Running the post_build script...(bad exit status: 8)" in out and "Consult %s" % log in out, out[-3000:]
        out = open(log, errors="replace").read()
    assert "kbuildguard: REFUSED the module(s) DKMS built for kernel %s" % debian_release in out, out[-3000:]
    assert code == (0 if version == "3.0" else 8), out[-3000:]
    # what the hook says: DKMS's install record stays, pointing at no build, until a good build
    assert "DKMS still records kdemo/1.0 as installed for kernel %s" % debian_release in out, out[-3000:]
    assert _built(host, debian_release) == []
    assert open(good[0], "rb").read() == before  # the installed module is the one installed before
    status = _run_dkms(binary, host, debian_release, "status")[1]
    assert "installed" not in status and "built" not in status, status
    # closed: with the wrong compiler still first, an install installs nothing new
    code, out = _run_dkms(binary, host, debian_release, "install", extra=["--force"])
    assert open(good[0], "rb").read() == before, out[-3000:]
    # the recovery, with the compiler right
    code, out = _run_dkms(binary, host, debian_release, "build", wrong=False)
    assert code == 0 and "REFUSED" not in out, out[-3000:]
    code, out = _run_dkms(binary, host, debian_release, "install", wrong=False, extra=["--force"])
    assert code == 0, out[-3000:]
    status = _run_dkms(binary, host, debian_release, "status")[1]
    assert "installed" in status, status
    now = _installed(host, debian_release)
    assert len(now) == 1 and {c.describe() for c in read_module(now[0]).compilers} == {"gcc 12.2.0 (Debian 12.2.0-14+deb12u1)"}
    # and DKMS can remove it again: nothing dangling
    code, out = _run_dkms(binary, host, debian_release, "remove", wrong=False)
    assert code == 0 and _installed(host, debian_release) == [], out[-3000:]


def test_examples_dkms_conf_cleans_whatever_the_compiler_and_still_refuses_the_build(host, debian_release, compilers):
    """issue 19's re-test, finding 7: with a wrong gcc-12 first on PATH, DKMS printed "Cleaning build
    area...(bad exit status: 6)" -- CLEAN is `kbuildguard make clean`, which compiles nothing."""
    require(shutil.which("kbuildguard", path=os.path.dirname(sys.executable)) is not None,
            "kbuildguard beside the test's Python (the installed wheel)")
    shutil.copy(os.path.join(EXAMPLES, "dkms", "dkms.conf"), str(host / "src" / "kdemo-1.0" / "dkms.conf"))
    shutil.copy(os.path.join(EXAMPLES, "kdemo", "kbuildguard.toml"), str(host / "src" / "kdemo-1.0"))
    (host / "src" / "kdemo-1.0" / "Kbuild").unlink()  # kbuildguard generates it from kbuildguard.toml
    assert _dkms(host, debian_release, "add")[0] == 0
    code, out = _dkms(host, debian_release, "build")
    assert code != 0 and "Bad return status for module build" in out, out[-3000:]
    assert "Cleaning build area..." in out and "Cleaning build area...(bad exit status" not in out, out[-3000:]
