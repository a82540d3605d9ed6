"""The whole `make` pipeline without this host: cli.main with a fake runner that plays kbuild.

The fake `make` writes what kbuild would (a .ko built by tests/elfbuild.py, modules.order,
Module.symvers) into the folder kbuildguard told it to use (M=), so placement, quarantine, the
report, --kernel all, provisioning and signals are all exercised for real, only faster.
"""

import io
import json
import os
import signal
import time

import pytest

from conftest import GCC11_MACROS, GCC12_MACROS, FakeRunner, compiler_outputs, make_exe, make_tree, tree_outputs
from elfbuild import build_module
from kbuildguard.cli import main
from kbuildguard.errors import Stopped

RELEASE = "6.1.0-56-amd64"
GCC12_BANNER = "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"
GCC11_COMMENT = "GCC: (Debian 11.3.0-12) 11.3.0"


class KbuildRunner(FakeRunner):
    """FakeRunner whose `make` acts like kbuild in M=; `ko` says what the module is made of."""

    def __init__(self, outputs, comment="GCC: (Debian 12.2.0-14+deb12u1) 12.2.0", returncode=0, on_make=None):
        super().__init__(outputs)
        self.comment = comment
        self.returncode = returncode
        self.on_make = on_make
        self.makes = []

    def action(self, argv, cwd=None, env=None, ok_returncodes=(0,), pass_fds=()):
        if argv[0] != "make":
            return super().action(argv, cwd, env, ok_returncodes, pass_fds)
        self.makes.append(list(argv))
        stage = [a for a in argv if a.startswith("M=")][0][2:]
        tree = argv[argv.index("-C") + 1]
        release = open(os.path.join(tree, "include/generated/utsrelease.h")).read().split('"')[1]
        if self.on_make:
            self.on_make(stage)
        if argv[-1] == "modules" and self.returncode == 0:
            with open(os.path.join(stage, "kdemo.ko"), "wb") as f:
                f.write(build_module(comment=(self.comment,), vermagic=release + " SMP preempt mod_unload modversions "))
            with open(os.path.join(stage, "modules.order"), "w") as f:
                f.write("kdemo.ko\n")
            with open(os.path.join(stage, "Module.symvers"), "w") as f:
                f.write("")
        if self.returncode not in ok_returncodes:
            from kbuildguard.run import CommandFailed

            raise CommandFailed(argv, cwd, self.returncode)
        return self.returncode


@pytest.fixture
def machine(tmp_path):
    """A module repository, a build tree recording gcc-12, and a PATH with gcc-12 and gcc-11."""
    bindir = tmp_path / "bin"
    gcc12 = make_exe(bindir / "gcc-12")
    gcc11 = make_exe(bindir / "gcc-11")
    outputs = dict(compiler_outputs(gcc12, GCC12_MACROS, GCC12_BANNER))
    outputs.update(compiler_outputs(gcc11, GCC11_MACROS, "gcc-11 (Debian 11.3.0-12) 11.3.0"))
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "kbuildguard.toml").write_text('[[module]]\nname = "kdemo"\n')
    (repo / "kdemo.c").write_text("/* module */\n")
    tree = make_tree(tmp_path / "tree", release=RELEASE)
    outputs.update(tree_outputs(tree))
    env = {"PATH": str(bindir), "HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    return {"repo": str(repo), "tree": tree, "env": env, "outputs": outputs, "tmp": tmp_path, "bindir": str(bindir)}


def run(m, *argv, runner=None, env=None, euid=0):
    out, err = io.StringIO(), io.StringIO()
    runner = runner or KbuildRunner(m["outputs"])
    code = main(list(argv), env=dict(m["env"], **(env or {})), stdout=out, stderr=err, runner=lambda console: runner,
                euid=euid, cwd=m["repo"], stdin=io.StringIO())
    assert "Traceback" not in err.getvalue()
    return code, out.getvalue(), err.getvalue(), runner


def listing(folder):
    return sorted(os.path.relpath(os.path.join(r, f), folder) for r, _, fs in os.walk(folder) for f in fs)


def test_dry_run_prints_the_plan_and_writes_nothing(machine):
    code, out, err, runner = run(machine, "make", "--kernel-dir", machine["tree"], "--dry-run", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["compiler"].endswith("/gcc-12")
    assert plan["settings"]["kernel_dir"]["origin"] == "--kernel-dir"
    assert plan["make"][:3] == ["make", "-C", machine["tree"]] and plan["make"][-1] == "modules"
    assert plan["layout_not_compared"]
    assert runner.makes == [] and listing(machine["repo"]) == ["kbuildguard.toml", "kdemo.c"]


def test_verified_module_is_placed_with_its_report(machine):
    code, out, err, runner = run(machine, "make", "--kernel-dir", machine["tree"], "--", "-j4")
    assert code == 0, err
    stage = [a for a in runner.makes[0] if a.startswith("M=")][0][2:]
    assert not stage.startswith(machine["repo"])  # kbuild never writes in the module folder
    assert "-j4" in runner.makes[0]
    files = listing(machine["repo"])
    assert "kdemo.ko" in files and "Module.symvers" in files
    report = json.load(open(os.path.join(machine["repo"], ".kbuildguard", "report.json")))
    assert report["modules"][0]["verdict"] == "ok" and report["modules"][0]["path"].endswith("/repo/kdemo.ko")
    assert report["settings"]["kernel_dir"]["origin"] == "--kernel-dir"
    assert report["layout_not_compared"] and "layout not compared:" in err
    # issue 18 case 9: "ok" only when every gate was checked; the layout was not
    assert "kdemo.ko: not fully checked: layout" in out and "kdemo.ko: ok" not in out


def test_mismatched_module_is_quarantined_and_nothing_placed(machine):
    runner = KbuildRunner(machine["outputs"], comment=GCC11_COMMENT)
    code, out, err, _ = run(machine, "make", "--kernel-dir", machine["tree"], runner=runner)
    assert code == 8, err
    files = listing(machine["repo"])
    assert not [f for f in files if f.endswith(".ko")]
    assert ".kbuildguard/rejected/kdemo.ko-rejected" in files and ".kbuildguard/rejected/kdemo.report.json" in files
    assert "rmmod" in err and "gcc 12.2.0" in err  # why, and the fix


def test_a_second_build_withdraws_the_first_and_sets_strays_aside(machine):
    assert run(machine, "make", "--kernel-dir", machine["tree"])[0] == 0
    with open(os.path.join(machine["repo"], "other.ko"), "wb") as f:
        f.write(b"not ours")
    runner = KbuildRunner(machine["outputs"], returncode=2)  # this time the compile fails
    code, _, err, _ = run(machine, "make", "--kernel-dir", machine["tree"], runner=runner)
    assert code == 7, err
    assert "kbuildguard chose" in err and "gcc-12" in err
    files = listing(machine["repo"])
    assert not [f for f in files if f.endswith(".ko")]  # the earlier verified module is no longer offered
    assert ".kbuildguard/unverified/other.ko-unverified" in files


def test_a_changed_placed_module_is_left_alone(machine):
    assert run(machine, "make", "--kernel-dir", machine["tree"])[0] == 0
    with open(os.path.join(machine["repo"], "kdemo.ko"), "ab") as f:
        f.write(b"edited")
    code, _, err, _ = run(machine, "make", "--kernel-dir", machine["tree"])
    assert code == 0 and "changed since kbuildguard placed it" in err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_make_places_nothing(machine, signum):
    def interrupted(stage):
        raise Stopped(signum)

    runner = KbuildRunner(machine["outputs"], on_make=interrupted)
    code, _, err, _ = run(machine, "make", "--kernel-dir", machine["tree"], runner=runner)
    assert code == 128 + signum and "interrupted" in err
    assert not [f for f in listing(machine["repo"]) if f.endswith(".ko")]


def test_clean_keeps_the_quarantine(machine):
    runner = KbuildRunner(machine["outputs"], comment=GCC11_COMMENT)
    assert run(machine, "make", "--kernel-dir", machine["tree"], runner=runner)[0] == 8
    code, _, err, runner = run(machine, "make", "--kernel-dir", machine["tree"], "clean")
    assert code == 0, err
    assert runner.makes[0][-1] == "clean"
    assert ".kbuildguard/rejected/kdemo.ko-rejected" in listing(machine["repo"])


def test_kernel_all_builds_each_kernel_apart(machine):
    root = machine["tmp"] / "sysroot"
    for release in ("6.1.0-56-amd64", "6.1.0-57-amd64"):
        machine["outputs"].update(tree_outputs(make_tree(root / "usr/src" / ("linux-headers-" + release), release=release)))
    code, out, err, runner = run(machine, "make", "--sysroot", str(root), "--kernel", "all", "--json")
    assert code == 0, err
    kernels = {k["release"]: k for k in json.loads(out)["kernels"]}
    assert set(kernels) == {"6.1.0-56-amd64", "6.1.0-57-amd64"}
    for release, k in kernels.items():
        assert k["modules"] == [os.path.join(machine["repo"], "kbuildguard-out", release, "kdemo.ko")]
    stages = {[a for a in argv if a.startswith("M=")][0] for argv in runner.makes}
    assert len(stages) == 2  # one staging folder per kernel: never the other's stale objects
    code, out, err, _ = run(machine, "make", "--sysroot", str(root), "--kernel", "6.1.0-56-amd64,9.9.9-missing")
    assert code == 4 and "9.9.9-missing" in out


def test_forced_compiler_origins_are_named(machine):
    code, _, err, runner = run(machine, "make", "--kernel-dir", machine["tree"], env={"KBUILDGUARD_CC": "gcc-11"})
    assert code == 6 and "drop KBUILDGUARD_CC" in err and runner.makes == []
    code, _, err, _ = run(machine, "make", "--kernel-dir", machine["tree"], "--", "CC=gcc-11")
    assert code == 6 and "drop CC= make argument" in err


def test_output_redirects_after_dashes_are_refused(machine):
    code, _, err, runner = run(machine, "make", "--kernel-dir", machine["tree"], "--", "M=/tmp/elsewhere")
    assert code == 2 and "M=" in err and runner.makes == []


def test_make_install_provisions_then_builds(machine):
    """make --install --yes: the plan from the sysroot's os-release, apt-get run, the new gcc-12 found and used."""
    root = machine["tmp"] / "deb"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    machine["outputs"].update(tree_outputs(make_tree(root / "usr/src" / ("linux-headers-" + RELEASE), release=RELEASE)))
    os.unlink(os.path.join(machine["bindir"], "gcc-12"))
    runner = KbuildRunner(machine["outputs"])
    gcc12 = os.path.join(machine["bindir"], "gcc-12")

    def apt_get(argv):
        if argv[1] == "install":
            make_exe(gcc12)
        return 0

    runner.outputs[("apt-get", "update")] = 0
    runner.outputs[("apt-get", "install", "-y", "--no-install-recommends", "gcc-12")] = 0
    original = runner.action

    def action(argv, cwd=None, env=None, ok_returncodes=(0,), pass_fds=()):
        if argv[0] == "apt-get":
            runner.calls.append(list(argv))
            return apt_get(argv)
        return original(argv, cwd, env, ok_returncodes, pass_fds)

    runner.action = action
    code, _, err, _ = run(machine, "make", "--sysroot", str(root), "--install", "--yes", runner=runner)
    assert code == 0, err
    assert ["apt-get", "install", "-y", "--no-install-recommends", "gcc-12"] in runner.calls
    assert "kdemo.ko" in listing(machine["repo"])
    os.unlink(gcc12)
    code, _, err, _ = run(machine, "make", "--sysroot", str(root), "--install", runner=KbuildRunner(machine["outputs"]))
    assert code == 9  # no terminal and no --yes: nothing installed


def test_unwritable_state_is_one_line(machine):
    with open(os.path.join(machine["repo"], ".kbuildguard"), "w") as f:  # where the state folder must go
        f.write("a file of the user's")
    code, _, err, _ = run(machine, "make", "--kernel-dir", machine["tree"])
    assert code == 14 and err.count("cannot write:") == 1


@pytest.mark.parametrize("args", [["--", "modules_install"], ["--", "-n"], ["--", "-t"], ["--", "--eval=CC=gcc-11"],
                                  ["--", "-f", "Other.mk"]])
def test_goals_and_options_that_skip_or_redirect_the_build_are_refused(machine, args):
    code, _, err, runner = run(machine, "make", "--kernel-dir", machine["tree"], *args)
    assert code == 2 and runner.makes == [], err


def test_a_module_left_in_staging_is_never_placed_again(machine):
    """make -n in MAKEFLAGS, a touched file: only what this make links is verified."""
    assert run(machine, "make", "--kernel-dir", machine["tree"])[0] == 0
    stale = KbuildRunner(machine["outputs"], on_make=lambda stage: None)
    stale.returncode = 0

    def dry_make(argv, cwd=None, env=None, ok_returncodes=(0,), pass_fds=()):
        stale.makes.append(list(argv))  # make -n: runs, builds nothing
        return 0

    stale.action = dry_make
    code, _, err, _ = run(machine, "make", "--kernel-dir", machine["tree"], runner=stale)
    assert code == 7 and "produced no module" in err
    assert not [f for f in listing(machine["repo"]) if f.endswith(".ko")]


def test_set_aside_files_never_overwrite_each_other(machine):
    repo = machine["repo"]
    for content in (b"first", b"second"):
        with open(os.path.join(repo, "other.ko"), "wb") as f:
            f.write(content)
        assert run(machine, "make", "--kernel-dir", machine["tree"])[0] == 0
    folder = os.path.join(repo, ".kbuildguard", "unverified")
    assert sorted(open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)) == [b"first", b"second"]


def test_a_nested_project_is_left_alone(machine):
    inner = os.path.join(machine["repo"], "inner")
    os.makedirs(os.path.join(inner, ".kbuildguard"))
    with open(os.path.join(inner, "kdemo.ko"), "wb") as f:
        f.write(b"the inner project's verified module")
    assert run(machine, "make", "--kernel-dir", machine["tree"])[0] == 0
    assert os.path.exists(os.path.join(inner, "kdemo.ko"))


def test_a_failed_run_replaces_the_report(machine):
    assert run(machine, "make", "--kernel-dir", machine["tree"])[0] == 0
    code, _, _, _ = run(machine, "make", "--kernel-dir", machine["tree"], env={"KBUILDGUARD_CC": "gcc-11"})
    assert code == 6
    report = json.load(open(os.path.join(machine["repo"], ".kbuildguard", "report.json")))
    assert report["modules"] == [] and report["result"]["exit_code"] == 6


def test_a_full_disk_while_placing_leaves_no_partial_file(machine, monkeypatch):
    import shutil

    def full(src, dst):
        with open(dst, "wb") as f:
            f.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full)
    code, _, err, _ = run(machine, "make", "--kernel-dir", machine["tree"])
    assert code == 14 and "No space left on device" in err and "kdemo.ko" in err
    assert [f for f in listing(machine["repo"]) if "partial" in f or f.endswith(".ko")] == []


def test_log_file_never_overwrites_a_users_file(machine):
    source = os.path.join(machine["repo"], "kdemo.c")
    code, _, err, _ = run(machine, "make", "--kernel-dir", machine["tree"], "--log-file", source)
    assert code == 2 and "not a kbuildguard log" in err
    assert open(source).read() == "/* module */\n"
    log = os.path.join(machine["repo"], "my.log")
    assert run(machine, "make", "--kernel-dir", machine["tree"], "--log-file", log)[0] == 0
    assert run(machine, "make", "--kernel-dir", machine["tree"], "--log-file", log)[0] == 0  # our own: rewritten


def test_symlinked_folders_are_mirrored_as_folders(machine):
    repo = machine["repo"]
    os.makedirs(os.path.join(repo, "realsub"))
    with open(os.path.join(repo, "realsub", "part.c"), "w") as f:
        f.write("/* part */\n")
    os.symlink("realsub", os.path.join(repo, "sub"))
    seen = {}

    def look(stage):
        seen["sub_is_link"] = os.path.islink(os.path.join(stage, "sub"))
        seen["part"] = os.path.islink(os.path.join(stage, "sub", "part.c"))

    runner = KbuildRunner(machine["outputs"], on_make=look)
    assert run(machine, "make", "--kernel-dir", machine["tree"], runner=runner)[0] == 0
    assert seen == {"sub_is_link": False, "part": True}  # kbuild's objects for sub/ land in staging, not in realsub/


@pytest.mark.parametrize("arg", [
    "MAKEFLAGS=-n", "MAKEFLAGS=n", "MAKEFLAGS=-sn", "MAKEFLAGS=ns", "MAKEFLAGS=--just-print", "MAKEFLAGS=--dry-run",
    "MAKEFLAGS=--recon", "MAKEFLAGS=-q", "MAKEFLAGS=-t", "MAKEFLAGS=--touch", "MAKEFLAGS=-j4", "MAKEFLAGS+=-n",
    "MAKEFLAGS:=-n", "MAKEFLAGS::=-n", "MAKEFLAGS?=-n", "MAKEFLAGS!=echo n", "MAKEFLAGS = -n", "GNUMAKEFLAGS=-n",
    "GNUMAKEFLAGS+=n", "MFLAGS=-n", "MAKE=make -n", "MAKEOVERRIDES=MAKEFLAGS=n", "MAKEFILES=evil.mk",
    "MAKECMDGOALS=modules_install", "override MAKEFLAGS=-n", "export MAKEFLAGS=-n", "MAKE$(E)FLAGS=-n",
    "${M}AKEFLAGS=n", "=-n",
])
def test_make_options_hidden_in_variables_are_refused(machine, arg):
    """Issue 18 case 7: make re-reads MAKEFLAGS (and its kin) assigned on its command line; under -n
    kbuild's "+" recipes link a .ko from the previous run's objects, which kbuildguard would place."""
    code, _, err, runner = run(machine, "make", "--kernel-dir", machine["tree"], "--", "V=1", arg)
    assert code == 2, err
    assert runner.makes == []
    assert len(err.strip().splitlines()) <= 2, err  # one line saying why (and the usage footer, if any)


@pytest.mark.parametrize("arg", ["V=1", "KCFLAGS=-DX=1", "ccflags-y=-DDEBUG", "INSTALL_MOD_PATH=/tmp/x", "W=1"])
def test_plain_variables_after_dashes_pass(machine, arg):
    code, _, err, runner = run(machine, "make", "--kernel-dir", machine["tree"], "--", arg)
    assert code == 0, err
    assert arg in runner.makes[0]


def test_make_options_in_the_environment_are_scrubbed(machine):
    """An outer make's MAKEFLAGS keeps its job server and -j/-k/-s; -n, MAKE=, MAKEFILES= never reach kbuild."""
    seen = {}
    runner = KbuildRunner(machine["outputs"])
    original = runner.action

    def action(argv, cwd=None, env=None, ok_returncodes=(0,), pass_fds=()):
        if argv[0] == "make":
            seen.update(env)
        return original(argv, cwd, env, ok_returncodes, pass_fds)

    runner.action = action
    env = {"MAKEFLAGS": "ksn -j4 --jobserver-auth=3,4 --just-print -- CC=gcc-11", "GNUMAKEFLAGS": "-t", "MFLAGS": "-n",
           "MAKE": "make -n", "MAKEOVERRIDES": "MAKEFLAGS=n", "MAKEFILES": "/tmp/evil.mk", "MAKECMDGOALS": "x",
           "KBUILD_OUTPUT": "/tmp/out"}
    code, _, err, _ = run(machine, "make", "--kernel-dir", machine["tree"], runner=runner, env=env)
    assert code == 0, err
    assert seen["MAKEFLAGS"] == "ks -j4 --jobserver-auth=3,4"
    assert not {"GNUMAKEFLAGS", "MFLAGS", "MAKE", "MAKEOVERRIDES", "MAKEFILES", "MAKECMDGOALS", "KBUILD_OUTPUT"} & set(seen)
    assert "not passed on to make" in err and "--just-print" in err and "MAKEFILES" in err


def test_an_outer_makes_job_server_passes_without_a_warning(machine):
    code, _, err, _ = run(machine, "make", "--kernel-dir", machine["tree"], env={"MAKEFLAGS": " -j4 --jobserver-auth=3,4"})
    assert code == 0 and "not passed on" not in err


# -- issue 18 case 8: what modules_install installs is what was verified -----------------------------

class InstallingRunner(KbuildRunner):
    """kbuild's modules_install: copies staged modules to INSTALL_MOD_PATH/lib/modules/R/extra/,
    then runs ``alter`` on each installed copy (what INSTALL_MOD_STRIP or a re-sign would do)."""

    def __init__(self, outputs, alter=None, install=True):
        super().__init__(outputs)
        self.alter = alter
        self.install = install

    def action(self, argv, cwd=None, env=None, ok_returncodes=(0,), pass_fds=()):
        if argv[0] != "make" or argv[-1] != "modules_install":
            return super().action(argv, cwd, env, ok_returncodes, pass_fds)
        self.makes.append(list(argv))
        stage = [a for a in argv if a.startswith("M=")][0][2:]
        root = [a.split("=", 1)[1] for a in argv if a.startswith("INSTALL_MOD_PATH=")][-1]
        dst = os.path.join(root, "lib/modules", RELEASE, "extra")
        os.makedirs(dst, exist_ok=True)
        if self.install:
            with open(os.path.join(stage, "kdemo.ko"), "rb") as src, open(os.path.join(dst, "kdemo.ko"), "wb") as out:
                out.write(src.read())
            if self.alter:
                self.alter(os.path.join(dst, "kdemo.ko"))
        return 0


def test_install_strip_with_sign_is_refused_before_anything_starts(machine):
    root = str(machine["tmp"] / "root")
    code, _, err, runner = run(machine, "make", "modules_install", "--kernel-dir", machine["tree"], "--sign", "--",
                               "INSTALL_MOD_PATH=" + root, "INSTALL_MOD_STRIP=1")
    assert code == 2 and runner.makes == [], err
    assert "removes the signature" in err and "kbuildguard sign" in err
    code, _, err, runner = run(machine, "make", "modules_install", "--kernel-dir", machine["tree"], "--sign", "--",
                               "INSTALL_MOD_PATH=" + root, env={"INSTALL_MOD_STRIP": "--strip-unneeded"})
    assert code == 2 and "in the environment" in err and runner.makes == []


def test_installed_modules_are_verified_and_reported(machine):
    root = str(machine["tmp"] / "root")
    runner = InstallingRunner(machine["outputs"])
    code, out, err, _ = run(machine, "make", "modules_install", "--kernel-dir", machine["tree"], "--",
                            "INSTALL_MOD_PATH=" + root, "INSTALL_MOD_STRIP=1", runner=runner)
    assert code == 0, err
    installed = os.path.join(root, "lib/modules", RELEASE, "extra", "kdemo.ko")
    assert "installed %s: " % installed in out
    report = json.load(open(os.path.join(machine["repo"], ".kbuildguard", "report.json")))
    assert [e["path"] for e in report["installed"]] == [installed] and report["installed"][0]["verdict"] == "ok"


def test_an_installed_copy_that_fails_is_taken_back(machine):
    """kbuild changed the copy after verification (here: another kernel's vermagic): exit 8, and the
    installed file is moved out of the install tree, not left for a packager."""
    root = str(machine["tmp"] / "root")

    def spoil(path):
        with open(path, "wb") as f:
            f.write(build_module(vermagic="5.10.0-99-amd64 SMP mod_unload modversions "))

    code, out, err, _ = run(machine, "make", "modules_install", "--kernel-dir", machine["tree"], "--",
                            "INSTALL_MOD_PATH=" + root, runner=InstallingRunner(machine["outputs"], alter=spoil))
    assert code == 8, err
    assert "installed module(s) are not what was verified" in err
    assert not os.path.exists(os.path.join(root, "lib/modules", RELEASE, "extra", "kdemo.ko"))
    assert ".kbuildguard/rejected/installed/kdemo.ko-rejected" in listing(machine["repo"])
    report = json.load(open(os.path.join(machine["repo"], ".kbuildguard", "report.json")))
    assert report["result"]["exit_code"] == 8 and report["installed"][0]["quarantined_to"]


def test_an_install_kbuildguard_cannot_find_is_not_called_verified(machine):
    root = str(machine["tmp"] / "root")
    code, _, err, _ = run(machine, "make", "modules_install", "--kernel-dir", machine["tree"], "--",
                          "INSTALL_MOD_PATH=" + root, runner=InstallingRunner(machine["outputs"], install=False))
    assert code == 7 and "were not verified" in err


@pytest.mark.parametrize("arg", ["INSTALL_MOD_STRIP=1", "INSTALL_MOD_STRIP:=1", "INSTALL_MOD_STRIP+=1",
                                 "INSTALL_MOD_STRIP =1", "INSTALL_MOD_STRIP ::= 1", "override INSTALL_MOD_STRIP=1"])
def test_install_mod_strip_in_any_assignment_form_is_seen(arg):
    """The tester's bypass of issue 18 case 8: `-- INSTALL_MOD_STRIP:=1` with --sign was not read as an
    assignment, and the installed copy was stripped of its signature."""
    from kbuildguard.build.kbuild import assigns, make_variable

    assert make_variable("INSTALL_MOD_STRIP", [arg], {}) == "1"
    assert assigns(arg, "INSTALL_MOD_STRIP")
    assert make_variable("INSTALL_MOD_STRIP", ["INSTALL_MOD_STRIP?=1"], {"INSTALL_MOD_STRIP": "2"}) == "2"
    assert make_variable("INSTALL_MOD_PATH", [arg], {}) is None


# -- issue 20's wrapper row: the Expectation is gathered beside make, and is still a gate ------------

def test_the_expectation_is_gathered_while_make_runs(machine, monkeypatch):
    """make starts before the kernel's facts are read (a thread reads them meanwhile), and the module
    is verified against them once both are done."""
    from kbuildguard.build import pipeline

    events = []
    real = pipeline.expectation

    def slow(*args, **kwargs):
        events.append("gather starts")
        time.sleep(0.1)  # make (the fake's) is started and done meanwhile
        events.append("gather done")
        return real(*args, **kwargs)
    monkeypatch.setattr(pipeline, "expectation", slow)
    runner = KbuildRunner(machine["outputs"], on_make=lambda stage: events.append("make"))
    code, out, err, _ = run(machine, "make", "--kernel-dir", machine["tree"], runner=runner)
    assert code == 0, err
    assert events.index("make") < events.index("gather done")
    assert "kdemo.ko" in listing(machine["repo"])


def test_a_kernel_fact_that_fails_beside_make_places_nothing(machine):
    """A Module.symvers kbuildguard cannot read (it is read beside make now): the build runs, the
    error is the run's (exit 3, one line), and no module is placed."""
    with open(os.path.join(machine["tree"], "Module.symvers"), "w") as f:
        f.write("this is not a Module.symvers line\n")
    code, out, err, runner = run(machine, "make", "--kernel-dir", machine["tree"])
    assert code == 3 and "not a Module.symvers line" in err, err
    assert runner.makes and not [f for f in listing(machine["repo"]) if f.endswith(".ko")]
