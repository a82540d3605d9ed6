"""Fail closed, on every path of issue 10's table: no unverified .ko where a packager looks, whatever happens.

Each test names its row. All of them run the real CLI (on the Python running the suite: CI runs it
on 3.13 and 3.6) against Debian's real headers, real gcc-11/gcc-12 and real kbuild.
"""

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import require
from integration.conftest import COPY_SOURCES, EXAMPLES, kbuildguard, reaped, spawn
from kbuildguard.console import for_json
from kbuildguard.formats.module import read_module


def modules_outside_state(folder):
    """What `find FOLDER -name '*.ko'` would hand a packager, except our own state folder."""
    found = subprocess.run([b"find", os.fsencode(folder), b"-path", b"*/.kbuildguard", b"-prune", b"-o", b"-name", b"*.ko",
                            b"-print"], stdout=subprocess.PIPE, check=True).stdout
    return found.split()


def copy_example(name, dest):
    shutil.copytree(os.path.join(EXAMPLES, name), dest, ignore=COPY_SOURCES)
    return dest


def blob_repo(dest):
    repo = copy_example("prebuilt-blob", dest)
    subprocess.run([os.path.join(os.fsdecode(repo), "make-blob.sh")], check=True)
    return repo


def slow_gcc12(tmp_path, seconds=6):
    """A gcc-12 first on PATH that sleeps before each compile: a build long enough to be interrupted.
    It is gcc-12 itself (kbuildguard identifies it by its macros), so it is selected."""
    bindir = tmp_path / "slowbin"
    bindir.mkdir()
    wrapper = bindir / "gcc-12"
    wrapper.write_text('#!/bin/sh\ncase " $* " in *" -c "*) sleep %d;; esac\nexec /usr/bin/gcc-12 "$@"\n' % seconds)
    wrapper.chmod(0o755)
    return {"PATH": "%s:%s" % (bindir, os.environ["PATH"])}


def wait_for_make(repo, timeout=60):
    """Until kbuildguard has started make (its log says so), so that a signal lands mid-build."""
    log = os.path.join(repo, ".kbuildguard", "build.log")
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(log, encoding="utf-8", errors="replace") as f:
                if "+ make " in f.read():
                    time.sleep(1.0)  # into the sleeping compile
                    return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail("make never started")


def lock_is_free(repo):
    with open(os.path.join(repo, ".kbuildguard", "lock"), "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False


# rows 1 and 2: bytes, not text, for paths --------------------------------------------------------

def test_row1_non_ascii_folder_under_c_locale(debian_release, compilers, tmp_path):
    repo = blob_repo(str(tmp_path / "blöb"))
    res = kbuildguard("make", "--kernel", debian_release, cwd=repo, env={"LC_ALL": "C", "LANG": "C"})
    assert res.code == 8, res  # the gcc-11 blob: refused, not a traceback (exit 1) and not ok
    assert modules_outside_state(repo) == []
    assert os.listdir(os.path.join(repo, ".kbuildguard", "rejected")) != []


def test_row2_folder_name_that_is_not_utf8(debian_release, compilers, tmp_path):
    repo = os.fsdecode(os.path.join(os.fsencode(str(tmp_path)), b"caf\xe9"))  # the name as Python hands it out
    copy_example("kdemo", repo)
    res = kbuildguard("make", "--kernel", debian_release, cwd=repo)
    assert res.code == 0, res
    ko = os.path.join(repo, "kdemo.ko")
    assert read_module(ko).vermagic.startswith(debian_release + " ")
    report = json.load(open(os.path.join(repo, ".kbuildguard", "report.json"), encoding="utf-8"))
    assert len(report["modules"]) == 1 and report["modules"][0]["verdict"] == "ok"
    # JSON carries a name's non-UTF-8 byte as the four characters \xNN (docs/reference.md)
    assert report["modules"][0]["path"] == for_json(ko) and report["modules"][0]["path"].endswith("caf\\xe9/kdemo.ko")
    assert b"caf\xe9" in os.fsencode(ko)
    blob = blob_repo(os.fsdecode(os.path.join(os.fsencode(str(tmp_path)), b"bl\xf6b")))
    res = kbuildguard("make", "--kernel", debian_release, cwd=blob)
    assert res.code == 8, res
    assert modules_outside_state(blob) == []


# row 3: signals, and SIGKILL with make going on ---------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT])
def test_row3_signal_stops_make_and_places_nothing(debian_release, compilers, tmp_path, sig):
    repo = blob_repo(str(tmp_path / "blob"))
    shutil.copy(os.path.join(EXAMPLES, "kdemo", "kdemo.c"), repo)  # a module that would pass, too
    with reaped(spawn(["make", "--kernel", debian_release], repo, slow_gcc12(tmp_path))) as proc:
        wait_for_make(repo)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=90)
    assert b"Traceback" not in err
    assert proc.returncode == 128 + sig, err.decode()[-2000:]
    assert b"interrupted" in err
    assert lock_is_free(repo), "make (which holds the folder's lock) is still running"
    assert modules_outside_state(repo) == []


def test_row3_sigkill_leaves_nothing_unverified(debian_release, compilers, tmp_path):
    repo = copy_example("kdemo", str(tmp_path / "kdemo"))
    with reaped(spawn(["make", "--kernel", debian_release], repo, slow_gcc12(tmp_path, seconds=4))) as proc:
        wait_for_make(repo)
        proc.kill()
        proc.communicate(timeout=30)
    deadline = time.time() + 120
    while not lock_is_free(repo):  # make inherited the lock: free once it and its compilers are gone
        assert time.time() < deadline, "make never ended"
        time.sleep(0.2)
    assert modules_outside_state(repo) == []
    res = kbuildguard("make", "--kernel", debian_release, cwd=repo)  # and the next build is whole
    assert res.code == 0, res
    assert modules_outside_state(repo) == [os.fsencode(os.path.join(repo, "kdemo.ko"))]


# rows 4, 5, 6: one settings resolution ------------------------------------------------------------

def test_row4_the_kernel_asked_for_is_the_kernel_built_for(debian_release, compilers, tmp_path):
    cloud = debian_release.replace("-amd64", "-cloud-amd64")
    require(os.path.isdir("/usr/src/linux-headers-" + cloud), "linux-headers-%s" % cloud)
    amd64_tree = "/usr/src/linux-headers-" + debian_release
    repo = copy_example("kdemo", str(tmp_path / "kdemo"))
    res = kbuildguard("make", "--kernel", cloud, cwd=repo, env={"KBUILDGUARD_KERNEL_DIR": amd64_tree})
    assert res.code == 0, res
    assert read_module(os.path.join(repo, "kdemo.ko")).vermagic.startswith(cloud + " ")
    res = kbuildguard("make", "--kernel", cloud, "--kernel-dir", amd64_tree, cwd=repo)
    assert res.code == 4, res
    assert cloud in res.err and debian_release in res.err and "utsrelease" in res.err
    assert modules_outside_state(repo) == []  # the earlier verified module was withdrawn, nothing replaced it
    res = kbuildguard("make", cwd=repo, env={"KBUILDGUARD_KERNEL_DIR": "/nonexistent"})
    assert res.code == 4 and "KBUILDGUARD_KERNEL_DIR=/nonexistent" in res.err and "--kernel-dir" not in res.err, res
    with open(os.path.join(repo, "kbuildguard.toml"), "w") as f:
        f.write('[kbuildguard]\nkernel_dir = "%s"\n\n[[module]]\nname = "kdemo"\n' % amd64_tree)
    res = kbuildguard("make", "--kernel", cloud, cwd=repo)
    assert res.code == 12 and "kernel_dir is not allowed" in res.err, res


def test_row5_compiler_from_the_environment_or_the_file(debian_release, compilers, tmp_path):
    repo = copy_example("kdemo", str(tmp_path / "kdemo"))
    res = kbuildguard("make", "--kernel", debian_release, cwd=repo, env={"KBUILDGUARD_CC": "gcc-11"})
    assert res.code == 6 and "drop KBUILDGUARD_CC" in res.err and "--cc" not in res.err, res
    res = kbuildguard("make", "--kernel", debian_release, "--", "CC=gcc-12", cwd=repo, env={"KBUILDGUARD_CC": "gcc-11"})
    assert res.code == 0, res  # the command line beats the environment
    res = kbuildguard("detect", "--kernel", debian_release, env={"KBUILDGUARD_CC": "/bin/false"})
    assert res.code == 5 and "/bin/false" in res.out, res  # detect no longer ignores it
    with open(os.path.join(repo, "kbuildguard.toml"), "w") as f:
        f.write('[kbuildguard]\ncc = "gcc-11"\n\n[[module]]\nname = "kdemo"\n')
    res = kbuildguard("make", "--kernel", debian_release, cwd=repo)
    assert res.code == 12 and "cc is not allowed" in res.err, res


def test_row6_every_command_reads_the_same_settings(debian_release, compilers, tmp_path):
    tree = "/usr/src/linux-headers-" + debian_release
    env = {"KBUILDGUARD_KERNEL_DIR": tree}
    res = kbuildguard("detect", "--json", env=env)  # the running kernel here has no tree: it must not be used
    assert res.code == 0, res
    data = json.loads(res.out)
    assert data["kernel"]["release"] == debian_release
    assert data["settings"]["kernel_dir"] == {"value": tree, "origin": "KBUILDGUARD_KERNEL_DIR"}
    repo = copy_example("kdemo", str(tmp_path / "kdemo"))
    assert kbuildguard("make", cwd=repo, env=env).code == 0
    res = kbuildguard("check", os.path.join(repo, "kdemo.ko"), "--json", env=env)
    assert res.code == 0 and json.loads(res.out)["kernel"]["release"] == debian_release, res
    res = kbuildguard("setup", "--dry-run", "--json", env=env)
    assert res.code == 0 and json.loads(res.out)["kernel"]["release"] == debian_release, res
    res = kbuildguard("make", "--kernel", debian_release, cwd=repo, env={"KBUILDGUARD_KERNL": "x"})
    assert res.code == 12 and "KBUILDGUARD_KERNL" in res.err, res  # a stray variable stops the build


# row 7: the quarantine survives every clean --------------------------------------------------------

def test_row7_quarantine_survives_clean(debian_release, compilers, tmp_path):
    repo = blob_repo(str(tmp_path / "blob"))
    assert kbuildguard("make", "--kernel", debian_release, cwd=repo).code == 8
    state = os.path.join(repo, ".kbuildguard")
    before = sorted(os.listdir(os.path.join(state, "rejected")))
    assert before == ["blobdrv.ko-rejected", "blobdrv.report.json"]
    subprocess.run(["make", "-C", "/lib/modules/%s/build" % debian_release, "M=" + repo, "clean"], check=True,
                   stdout=subprocess.DEVNULL)  # kbuild's own clean, run by hand in the folder
    assert sorted(os.listdir(os.path.join(state, "rejected"))) == before
    assert os.path.isfile(os.path.join(state, "report.json"))
    assert kbuildguard("make", "--kernel", debian_release, "clean", cwd=repo).code == 0
    assert sorted(os.listdir(os.path.join(state, "rejected"))) == before  # the run's report goes with its modules


# rows 8, 9: folders kbuild or we cannot use as they are -------------------------------------------

def test_row8_read_only_module_folder(debian_release, compilers, tmp_path):
    """The folder on a read-only file system (a read-only bind mount in a mount namespace of its own)."""
    require(shutil.which("unshare") is not None, "unshare (util-linux)")
    repo = copy_example("kdemo", str(tmp_path / "kdemo"))
    script = 'mount --bind -o ro "$0" "$0" && cd "$0" && exec "$@"'
    proc = subprocess.run(["unshare", "--mount", "sh", "-c", script, repo, sys.executable, "-m", "kbuildguard", "make",
                           "--kernel", debian_release], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = proc.stderr.decode()
    assert "Traceback" not in err
    assert proc.returncode == 14, err
    assert err.count("cannot write:") == 1 and "Read-only file system" in err
    assert modules_outside_state(repo) == []


def test_row9_folder_with_a_space(debian_release, compilers, tmp_path):
    repo = copy_example("kdemo", str(tmp_path / "my module"))
    res = kbuildguard("make", "--kernel", debian_release, cwd=repo)
    assert res.code == 0, res
    assert read_module(os.path.join(repo, "kdemo.ko")).vermagic.startswith(debian_release + " ")


# rows 10, 13: a failing compile: the log holds it, the hint names the compiler --------------------

def test_row10_row13_compile_error_log_and_hint(debian_release, compilers, tmp_path):
    repo = copy_example("kdemo", str(tmp_path / "kdemo"))
    with open(os.path.join(repo, "kdemo.c"), "a") as f:
        f.write("\nstatic int broken(void) { return undeclared_thing_xyz; }\n")
    res = kbuildguard("make", "--kernel", debian_release, "--", "-j4", cwd=repo)
    assert res.code == 7, res
    assert "kbuildguard chose /usr/bin/gcc-12" in res.err and "chose -j4" not in res.err
    with open(os.path.join(repo, ".kbuildguard", "build.log"), encoding="utf-8") as f:
        log = f.read()
    assert "undeclared_thing_xyz" in log and "error:" in log  # the compiler's own words
    assert modules_outside_state(repo) == []


# row 11: a corrupt configuration file --------------------------------------------------------------

def test_row11_corrupt_kernel_config(debian_release, compilers, tmp_path):
    repo = copy_example("kdemo", str(tmp_path / "kdemo"))
    bad = tmp_path / "config.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage, not gzip")
    res = kbuildguard("make", "--kernel", debian_release, "--kernel-config", str(bad), cwd=repo)
    assert res.code == 3, res
    assert res.err.count("bad input:") == 1


# row 12: the generator quotes ---------------------------------------------------------------------

def test_row12_defines_reach_the_compiler_as_written(debian_release, compilers, tmp_path):
    repo = str(tmp_path / "quoted")
    os.makedirs(repo)
    canary = tmp_path / "pwned"
    with open(os.path.join(repo, "kbuildguard.toml"), "w") as f:
        f.write('[[module]]\nname = "quoted"\nsources = ["quoted.c"]\n'
                "defines = { MSG = '\"hello world\"', NUM = \"4 + 1\", ON = true, OFF = false, "
                "EVIL = \"$(shell touch %s)\", HASH = '\"a#b\"' }\n" % canary)
    with open(os.path.join(repo, "quoted.c"), "w") as f:
        f.write('#include <linux/module.h>\n#include <linux/build_bug.h>\n'
                "static_assert(NUM == 5);\nstatic_assert(ON == 1 && OFF == 0);\n"
                "static int __init q_init(void) { return 0; }\nstatic void __exit q_exit(void) { }\n"
                'module_init(q_init);\nmodule_exit(q_exit);\nMODULE_LICENSE("GPL");\n'
                "MODULE_DESCRIPTION(MSG);\nMODULE_INFO(hash, HASH);\n")
    res = kbuildguard("make", "--kernel", debian_release, cwd=repo)
    assert res.code == 0, res
    info = read_module(os.path.join(repo, "quoted.ko"))
    assert info.info("description") == "hello world"
    assert info.info("hash") == "a#b"
    assert not canary.exists(), "a define ran a make function"


def test_row12_flags_that_run_programs_are_refused(debian_release, compilers, tmp_path):
    repo = copy_example("kdemo", str(tmp_path / "kdemo"))
    for flag in ("-wrapper", "-fplugin=/tmp/x.so", "-B/tmp", "@/tmp/opts", "$(shell id)", "-fdump-tree-original=/tmp/kbg-x",
                 "-fopt-info-all=evil.ko", "-include", "-I/etc", "-E", "-dumpdir"):
        with open(os.path.join(repo, "kbuildguard.toml"), "w") as f:
            f.write('[[module]]\nname = "kdemo"\nccflags = ["%s"]\n' % flag)
        res = kbuildguard("make", "--kernel", debian_release, cwd=repo)
        assert res.code == 12, (flag, res)


# row 14: what was not checked is said ------------------------------------------------------------

def test_row14_make_says_layout_not_compared(debian_release, compilers, tmp_path):
    repo = copy_example("kdemo", str(tmp_path / "kdemo"))
    res = kbuildguard("make", "--kernel", debian_release, cwd=repo)
    assert res.code == 0, res
    assert "layout not compared:" in res.err
    report = json.load(open(os.path.join(repo, ".kbuildguard", "report.json")))
    assert report["layout_not_compared"]
    layout = [c for c in report["modules"][0]["checks"] if c["name"] == "layout"][0]
    assert layout["checked"] is False and layout["message"].startswith("layout not compared:")
    check = kbuildguard("check", "--kernel", debian_release, os.path.join(repo, "kdemo.ko"))
    assert "layout not compared:" in check.out


def test_vermagic_only_mismatch_gets_its_own_fix(debian_release, compilers, tmp_path):
    """Item 6: a module for another release is not blamed on the compiler."""
    cloud = debian_release.replace("-amd64", "-cloud-amd64")
    require(os.path.isdir("/usr/src/linux-headers-" + cloud), "linux-headers-%s" % cloud)
    repo = copy_example("kdemo", str(tmp_path / "kdemo"))
    assert kbuildguard("make", "--kernel", cloud, cwd=repo).code == 0
    res = kbuildguard("check", "--kernel", debian_release, os.path.join(repo, "kdemo.ko"))
    assert res.code == 8, res
    assert "build tree of %s" % debian_release in res.err
    assert "another compiler" not in res.err and "rmmod" not in res.err


def test_stray_modules_are_set_aside_not_lost(debian_release, compilers, tmp_path):
    repo = copy_example("kdemo", str(tmp_path / "kdemo"))
    with open(os.path.join(repo, "Kbuild"), "w") as f:
        f.write("obj-m += kdemo.o\n")  # a plain in-place build, as a user might have done before
    subprocess.run(["make", "-C", "/lib/modules/%s/build" % debian_release, "M=" + repo, "modules"],
                   check=True, stdout=subprocess.DEVNULL)
    os.unlink(os.path.join(repo, "Kbuild"))
    res = kbuildguard("make", "--kernel", debian_release, cwd=repo)
    assert res.code == 0, res
    assert "was not built and verified by kbuildguard" in res.err
    assert read_module(os.path.join(repo, "kdemo.ko")).compilers[0].version == "12.2.0"
    assert os.listdir(os.path.join(repo, ".kbuildguard", "unverified")) == ["kdemo.ko-unverified"]


# found by the independent tester -----------------------------------------------------------------

def test_goals_after_dashes_never_install_before_verification(debian_release, compilers, tmp_path):
    repo = blob_repo(str(tmp_path / "blob"))
    root = tmp_path / "root"
    res = kbuildguard("make", "--kernel", debian_release, "--", "modules", "modules_install", "INSTALL_MOD_PATH=%s" % root, cwd=repo)
    assert res.code == 2, res
    assert not root.exists()


def test_makeflags_dry_run_places_no_stale_module(debian_release, compilers, tmp_path):
    repo = copy_example("kdemo", str(tmp_path / "kdemo"))
    assert kbuildguard("make", "--kernel", debian_release, cwd=repo).code == 0
    with open(os.path.join(repo, "kdemo.c"), "a") as f:
        f.write('\nMODULE_DESCRIPTION("changed");\n')
    for makeflags in ("-n", "n", "t", "-t"):  # dry run, touch: make itself decides whether the env form applies
        res = kbuildguard("make", "--kernel", debian_release, cwd=repo, env={"MAKEFLAGS": makeflags})
        if res.code == 0:  # then this run really built it: from the current sources
            assert read_module(os.path.join(repo, "kdemo.ko")).info("description") == "changed", makeflags
        else:
            assert res.code in (7, 8) and modules_outside_state(repo) == [], (makeflags, res)


def test_a_caller_that_ignores_sighup_keeps_the_build(debian_release, compilers, tmp_path):
    """nohup kbuildguard make &: a closed session must not end it."""
    repo = copy_example("kdemo", str(tmp_path / "kdemo"))
    with reaped(spawn(["make", "--kernel", debian_release], repo, slow_gcc12(tmp_path, seconds=3),
                      ignored=(signal.SIGHUP,))) as proc:
        wait_for_make(repo)
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert modules_outside_state(repo) == [os.fsencode(os.path.join(repo, "kdemo.ko"))]


def test_kbuild_never_writes_through_a_linked_folder(debian_release, compilers, tmp_path):
    repo = str(tmp_path / "linked")
    blob_repo(os.path.join(repo, "realsub"))
    os.unlink(os.path.join(repo, "realsub", "kbuildguard.toml"))
    with open(os.path.join(repo, "realsub", "Kbuild"), "w") as f:
        f.write("obj-m += blobdrv.o\nblobdrv-y := blobdrv_main.o blob.o\n$(shell touch $(obj)/.blob.o.cmd)\n")
    os.symlink("realsub", os.path.join(repo, "sub"))
    with open(os.path.join(repo, "Kbuild"), "w") as f:
        f.write("obj-m += sub/\n")
    before = sorted(os.listdir(os.path.join(repo, "realsub")))
    res = kbuildguard("make", "--kernel", debian_release, cwd=repo)
    assert res.code == 8, res  # the gcc-11 blob, reached through the link, is refused
    assert sorted(os.listdir(os.path.join(repo, "realsub"))) == before  # and nothing was written there
    assert modules_outside_state(repo) == []


def test_make_options_in_variables_never_place_a_stale_module(debian_release, compilers, tmp_path):
    """Issue 18 case 7: `-- MAKEFLAGS=-n` after a source edit linked the .ko from the previous run's
    objects (kbuild's "+" recipes run under -n) and kbuildguard placed it, exit 0."""
    repo = copy_example("kdemo", str(tmp_path / "kdemo"))
    ko = os.path.join(repo, "kdemo.ko")
    assert kbuildguard("make", "--kernel", debian_release, cwd=repo).code == 0
    first = open(ko, "rb").read()
    with open(os.path.join(repo, "kdemo.c"), "a") as f:
        f.write('\nMODULE_DESCRIPTION("changed");\n')
    for arg in ("MAKEFLAGS=-n", "MAKEFLAGS+=n", "MAKEFLAGS:=-sn", "GNUMAKEFLAGS=--just-print", "MAKE=make -n",
                "MAKE$(E)FLAGS=n"):
        res = kbuildguard("make", "--kernel", debian_release, "--", arg, cwd=repo)
        assert res.code == 2, (arg, res)
        assert res.err.count("usage error") == 1, (arg, res)
        assert open(ko, "rb").read() == first, arg  # refused before anything started: the folder as it was
    # the environment: scrubbed, so the build is real and the module is this source's
    evil = tmp_path / "evil.mk"
    evil.write_text("MAKEFLAGS += n\n")
    res = kbuildguard("make", "--kernel", debian_release, cwd=repo,
                      env={"MAKEFLAGS": "sn", "MAKE": "make -n", "MAKEFILES": str(evil), "GNUMAKEFLAGS": "-t"})
    assert res.code == 0, res
    assert "not passed on to make" in res.err
    assert read_module(ko).info("description") == "changed"


def test_a_background_job_ignores_ctrl_c_and_still_fails_closed_on_sigterm(debian_release, compilers, tmp_path):
    """`kbuildguard make &` from a script: SIGINT and SIGQUIT arrive ignored. The terminal's Ctrl-C is
    not for a background job, so they stay ignored; SIGTERM (a CI timeout) still stops make's group,
    places nothing and exits 143."""
    repo = copy_example("kdemo", str(tmp_path / "kdemo"))
    with reaped(spawn(["make", "--kernel", debian_release], repo, slow_gcc12(tmp_path),
                      ignored=(signal.SIGINT, signal.SIGQUIT))) as proc:
        wait_for_make(repo)
        proc.send_signal(signal.SIGINT)
        time.sleep(1.0)
        assert proc.poll() is None, "an ignored SIGINT ended the build"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=90)
    assert b"Traceback" not in err
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-2000:]
    assert lock_is_free(repo), "make (which holds the folder's lock) is still running"
    assert modules_outside_state(repo) == []
