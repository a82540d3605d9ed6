"""Issue 22: what a new user and a support engineer met first -- each promise with its test."""

import os

from conftest import GCC11_MACROS, GCC12_MACROS, FakeRunner, compiler_outputs, make_exe, make_tree
from kbuildguard.cli import main

EL8_LINE = ("Linux version 4.18.0-513.11.1.lve.el8.x86_64 (mockbuild@build.cloudlinux.com) (gcc version 8.5.0 20210514 "
            "(Red Hat 8.5.0-20) (GCC)) #1 SMP Thu Jan 4 10:00:00 EST 2024\n")


def run(capsys, *argv, env=None, runner=None, cwd=None):
    code = main(list(argv), env=env if env is not None else {"PATH": "/nonexistent"},
                runner=(lambda console: runner) if runner is not None else None, cwd=cwd)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def _compilers(tmp_path):
    bindir = tmp_path / "bin"
    runner = FakeRunner()
    for name, macros, banner in [("gcc-11", GCC11_MACROS, "gcc-11 (Debian 11.3.0-12) 11.3.0"),
                                 ("gcc-12", GCC12_MACROS, "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0")]:
        path = make_exe(bindir / name)
        runner.outputs.update(compiler_outputs(path, macros, banner))
    return str(bindir), runner


# --- point 4: detect's hint is setup's plan ------------------------------------------------------------

def test_detect_hint_of_an_el8_kernel_line_is_setups_plan(capsys, tmp_path):
    f = tmp_path / "el8.txt"
    f.write_text(EL8_LINE)
    code, _, err = run(capsys, "detect", "--proc-version-file", str(f))
    assert code == 5
    hint = err[err.index("hint:"):]
    assert "apt-get" not in hint and "gcc-8" not in hint
    assert "dnf install -y gcc kernel-devel-4.18.0-513.11.1.lve.el8.x86_64" in hint
    assert "Enterprise Linux 8" in hint and "to be run on that machine" in hint


def test_detect_cc_excluding_a_matching_compiler_says_so(capsys, tmp_path):
    bindir, runner = _compilers(tmp_path)
    tree = make_tree(tmp_path / "tree")
    code, _, err = run(capsys, "detect", "--kernel-dir", tree, "--cc", "gcc-11", env={"PATH": bindir}, runner=runner)
    assert code == 5
    hint = err[err.index("hint:"):]
    assert "gcc-12 matches the kernel's compiler: drop --cc" in hint
    assert "install" not in hint


# --- explain MODULE --root R: the root's BTF and configuration ------------------------------------------

def test_explain_root_uses_its_btf_and_boot_config(tmp_path):
    import json

    from test_btf import _btf
    from test_explain import RELEASE, captured, explain

    root = captured(tmp_path, "kdemo 16384 0 [permanent], Live 0xffffffffc0000000 (O)")
    with open(os.path.join(root, "boot", "config-" + RELEASE), "a") as f:
        f.write("CONFIG_X86_64=y\nCONFIG_MODULES=y\nCONFIG_MODULE_SIG=y\n# CONFIG_MODULE_SIG_FORCE is not set\n")
    os.makedirs(os.path.join(root, "sys/kernel/btf"))
    with open(os.path.join(root, "sys/kernel/btf/vmlinux"), "wb") as f:
        f.write(_btf([("init", 0x138), ("exit", 0x350)]))
    code, out, _ = explain(root, "--json")
    assert code == 0
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    text = json.dumps(checks)
    assert "not the running kernel" not in text and "layout not compared" not in text
    assert "CONFIG_MODULE_SIG is unknown" not in text
    assert checks["layout"]["ok"] and "sys/kernel/btf/vmlinux" in checks["layout"]["expected"]
    assert "CONFIG_MODULE_SIG_FORCE is not set" in checks["signature"]["expected"]


# --- --kernel-config must be a kernel configuration ---------------------------------------------------

def _module(tmp_path):
    from elfbuild import build_module

    ko = tmp_path / "good.ko"
    ko.write_bytes(build_module())
    return str(ko)


def test_kernel_config_that_is_not_one_is_refused(capsys, tmp_path):
    tree = make_tree(tmp_path / "tree")
    ko = _module(tmp_path)
    for text, why in [("CONFIG_FOO=y\n", "no CONFIG_MODULES=y (absent) and no architecture symbol"),
                      ("CONFIG_X86_64=y\n# CONFIG_MODULES is not set\n", "no CONFIG_MODULES=y (set to n)"),
                      ("CONFIG_MODULES=y\nCONFIG_MODULE_SIG=y\n", "no architecture symbol")]:
        cfg = tmp_path / "config"
        cfg.write_text(text)
        code, _, err = run(capsys, "check", ko, "--kernel-dir", tree, "--kernel-config", str(cfg))
        assert code == 3 and "is not a kernel configuration that loads modules" in err and why in err, err
        code, _, err = run(capsys, "make", "-C", str(tmp_path), "--kernel-dir", tree, "--kernel-config", str(cfg))
        assert code == 3 and "is not a kernel configuration" in err, err
    cfg.write_text("CONFIG_X86_64=y\nCONFIG_MODULES=y\nCONFIG_MODULE_UNLOAD=y\nCONFIG_SMP=y\nCONFIG_PREEMPT_BUILD=y\n"
                   "CONFIG_MODVERSIONS=y\n")
    code, _, err = run(capsys, "check", ko, "--kernel-dir", tree, "--kernel-config", str(cfg))
    assert "is not a kernel configuration" not in err


# --- check and the current folder's kbuildguard.toml ------------------------------------------------------

def test_check_ignores_the_current_folders_toml(capsys, tmp_path):
    tree = make_tree(tmp_path / "tree")
    ko = _module(tmp_path)
    repo = tmp_path / "cloned"
    repo.mkdir()
    (repo / "kbuildguard.toml").write_text("[kbuildguard]\nmatch = \"major\"\n")
    code, out, err = run(capsys, "check", ko, "--kernel-dir", tree, "--json", cwd=str(repo))
    assert code == 0, err
    import json

    assert json.loads(out)["match"] == "version"  # not the file's "major"
    assert "kbuildguard.toml is not read" in err
    (repo / "kbuildguard.toml").write_text("[kbuildguard\nmatch = \n")  # broken: not check's business
    code, _, err = run(capsys, "check", ko, "--kernel-dir", tree, cwd=str(repo))
    assert code == 0, err


def test_settings_from_a_file_say_so(capsys, tmp_path):
    tree = make_tree(tmp_path / "tree")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "kbuildguard.toml").write_text("[kbuildguard]\nmatch = \"minor\"\n")
    code, _, err = run(capsys, "setup", "--kernel-dir", tree, "--dry-run", cwd=str(repo))
    assert "settings from %s: match = 'minor'" % (repo / "kbuildguard.toml") in err


# --- colour -----------------------------------------------------------------------------------------------

class _Terminal:
    """A stderr that says it is a terminal."""

    def __init__(self):
        import io

        self.buf = io.StringIO()

    def write(self, text):
        return self.buf.write(text)

    def flush(self):
        pass

    def isatty(self):
        return True


def test_colour_only_where_the_terminal_shows_it():
    def stderr_of(env):
        import io

        term = _Terminal()
        main(["detect", "--kernel-dir", "/nonexistent"], env=dict(env, PATH="/nonexistent"), stdout=io.StringIO(), stderr=term)
        return term.buf.getvalue()

    assert "\x1b[" in stderr_of({"TERM": "xterm-256color"})
    assert "\x1b[" not in stderr_of({"TERM": "dumb"})
    assert "\x1b[" not in stderr_of({"TERM": "xterm", "NO_COLOR": "1"})  # from the given environment, not os.environ
    assert "\x1b[" not in stderr_of({})


# --- make: an empty kbuildguard.toml, one beside a hand-written Makefile, two compilers ----------------------

from test_build import machine  # noqa: E402,F401  (the fixture)
from test_build import run as build_run  # noqa: E402


def test_empty_toml_is_empty_not_missing(machine):  # noqa: F811
    os.unlink(os.path.join(machine["repo"], "kdemo.c"))
    with open(os.path.join(machine["repo"], "kbuildguard.toml"), "w"):
        pass
    code, _, err, _ = build_run(machine, "make", "--kernel-dir", machine["tree"], "--dry-run")
    assert code == 12 and "declares no module" in err and "has no kbuildguard.toml" not in err, err


def test_toml_beside_a_hand_written_makefile_is_said_to_be_ignored(machine):  # noqa: F811
    with open(os.path.join(machine["repo"], "Makefile"), "w") as f:
        f.write("obj-m := kdemo.o\n")
    code, _, err, _ = build_run(machine, "make", "--kernel-dir", machine["tree"], "--dry-run")
    assert code == 0, err
    assert "its [[module]] declarations are ignored: the hand-written Makefile builds this folder" in err


def test_two_compilers_are_a_usage_error(machine):  # noqa: F811
    code, _, err, runner = build_run(machine, "make", "--kernel-dir", machine["tree"], "--cc", "gcc-12", "--", "CC=gcc-11")
    assert code == 2 and "--cc gcc-12 and CC=gcc-11 after -- name two compilers" in err and runner.makes == []
    code, _, err, _ = build_run(machine, "make", "--kernel-dir", machine["tree"], "--cc", "gcc-12", "--dry-run", "--",
                                "CC=gcc-12")
    assert code == 0 and "two compilers" not in err, err


def test_empty_option_values_are_usage_errors(capsys, tmp_path):
    for option in ("--kernel", "--kernel-dir", "--sysroot", "--cc"):
        code, _, err = run(capsys, "detect", option, "")
        assert code == 2 and "%s was given an empty value" % option in err, (option, err)
    code, _, err = run(capsys, "make", "-C", str(tmp_path), "--kernel", " ")
    assert code == 2 and "--kernel was given an empty value" in err


def test_a_cc_wrapper_that_hangs_is_a_clear_error(capsys, tmp_path):
    from kbuildguard.run import CommandFailed

    wrapper = make_exe(tmp_path / "bin" / "gcc-wrapper")
    runner = FakeRunner({(wrapper, "-E", "-dM", "-x", "c", "-"): CommandFailed([wrapper], None, -9, "timed out after 30s",
                                                                               timed_out=True)})
    tree = make_tree(tmp_path / "tree")
    code, _, err = run(capsys, "detect", "--kernel-dir", tree, "--cc", wrapper, env={"PATH": str(tmp_path / "bin")},
                       runner=runner)
    assert code == 5
    assert "did not answer `-E -dM` within 30 s (a wrapper that hangs?): stopped" in err, err


# --- module names -----------------------------------------------------------------------------------------

def test_module_names_longer_than_the_kernel_takes_are_refused(tmp_path):
    import pytest

    from kbuildguard.errors import ConfigError
    from kbuildguard.project import parse_config

    ok = "m" * 55
    assert parse_config('[[module]]\nname = "%s"\n' % ok, "k.toml")[0][0].name == ok
    with pytest.raises(ConfigError) as exc:
        parse_config('[[module]]\nname = "%s"\n' % ("m" * 56), "k.toml")
    assert "56 characters: a module name has at most 55" in exc.value.message


def test_init_takes_a_dash_as_kbuild_does(capsys, tmp_path):
    code, _, err = run(capsys, "init", "-C", str(tmp_path / "mod"), "--name", "foo-bar")
    assert code == 0, err
    source = (tmp_path / "mod" / "foo-bar.c").read_text()
    assert "foo_bar_init(void)" in source and "module_init(foo_bar_init)" in source and "foo-bar_" not in source
    assert 'name = "foo-bar"' in (tmp_path / "mod" / "kbuildguard.toml").read_text()
    code, _, err = run(capsys, "init", "-C", str(tmp_path / "long"), "--name", "x" * 56)
    assert code == 2 and "at most 55" in err


def test_layout_mismatch_under_the_right_compiler_blames_no_compiler():
    from kbuildguard.gates.model import Check, Effect, Gate
    from kbuildguard.gates.verify import fix_hint

    layout = Check(name=Gate.LAYOUT, ok=False, expected="size 0x380", found="size 0x3c0", message="struct module layout differs",
                   fix="rebuild against the kernel's own build tree", effect=Effect.REJECTED)
    compiler = Check(name=Gate.COMPILER, ok=False, expected="gcc 12.2.0", found="gcc 11.3.0", message="built by gcc 11.3.0", fix="rebuild with gcc-12",
                     effect=Effect.REJECTED)
    assert "another compiler" not in fix_hint([layout]) and "although its compiler matches" in fix_hint([layout])
    assert "another compiler" in fix_hint([layout, compiler])


# --- setup --sysroot of another architecture -------------------------------------------------------------

def test_foreign_architecture_root_names_the_cross_compiler(tmp_path):
    from kbuildguard.provision import Distro, Kind, System
    from kbuildguard.provision.system import foreign_root
    from kbuildguard.target.kernel import Selector, resolve

    target = resolve(Selector(kernel_dir=make_tree(tmp_path / "tree", arch_config="CONFIG_ARM64", release="6.1.0-13-arm64")))
    debian = Distro("debian", (), "12", "Debian GNU/Linux 12 (bookworm)", "aarch64")
    root = System(Kind.BUILD_ROOT, "/srv/arm64", debian, "the build root /srv/arm64")
    binfmt = str(tmp_path / "binfmt")
    os.makedirs(binfmt)
    note = foreign_root(root, target, "x86_64", debian._replace(arch="x86_64"), "apt-get", binfmt)
    assert "a foreign-architecture chroot cannot run here" in note
    assert "apt-get install gcc-12-aarch64-linux-gnu" in note and "ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-" in note
    assert "runs this machine's dnf, which resolves packages for x86_64, not aarch64" in foreign_root(
        root, target, "x86_64", debian, "dnf", binfmt)
    assert foreign_root(root, target, "aarch64", debian, "apt-get", binfmt) == ""  # the same machine
    with open(os.path.join(binfmt, "qemu-aarch64"), "w") as f:
        f.write("disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n")
    with open(os.path.join(binfmt, "status"), "w") as f:
        f.write("enabled\n")
    assert "cannot run here" in foreign_root(root, target, "x86_64", debian, "apt-get", binfmt)  # registered, disabled
    with open(os.path.join(binfmt, "qemu-aarch64"), "w") as f:
        f.write("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n")
    assert foreign_root(root, target, "x86_64", debian, "apt-get", binfmt) == ""  # qemu-user runs it
    assert foreign_root(root._replace(kind=Kind.MACHINE), target, "x86_64", debian, "apt-get", str(tmp_path / "none")) == ""


def test_setup_of_a_foreign_root_says_so_and_installs_nothing(capsys, tmp_path):
    if os.uname().machine == "aarch64" or os.path.exists("/proc/sys/fs/binfmt_misc/qemu-aarch64"):
        import pytest

        pytest.skip("this machine can run an aarch64 chroot")
    root = os.path.join(os.path.dirname(__file__), "data", "sysroots", "centos-7.8-aarch64")
    code, out, _ = run(capsys, "setup", "--dry-run", "--sysroot", root)
    assert code == 0 and "runs this machine's yum, which resolves packages for" in out  # a note for yum
    debian = make_debian_arm64_root(tmp_path)
    code, out, _ = run(capsys, "setup", "--dry-run", "--sysroot", debian)
    assert code == 0 and "a foreign-architecture chroot cannot run here" in out and "gcc-12-aarch64-linux-gnu" in out
    code, _, err = run(capsys, "setup", "--yes", "--sysroot", debian, env={"PATH": ""})
    assert code == 2 and "a foreign-architecture chroot cannot run here" in err, err


def make_debian_arm64_root(tmp_path):
    """A Debian 12 arm64 build root: os-release, and the arm64 headers with no compiler."""
    root = tmp_path / "arm64"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
                                             'VERSION_ID="12"\nID=debian\n')
    release = "6.1.0-13-arm64"
    make_tree(root / "usr" / "src" / ("linux-headers-" + release), arch_config="CONFIG_ARM64", release=release)
    (root / "lib" / "modules" / release).mkdir(parents=True)
    os.symlink("/usr/src/linux-headers-" + release, str(root / "lib" / "modules" / release / "build"))
    return str(root)


def test_full_log_line_prints_a_non_ascii_folder_as_other_lines_do():
    import io

    from kbuildguard.console import Console, printable

    stream = io.StringIO()
    console = Console(stream=stream, color=False)
    folder = "/tmp/m\udcc3\udcb6dule"  # how Python 3.6 under LC_ALL=C decodes "/tmp/mödule"
    console.log_path = folder + "/build.log"
    console.fail("build failed", "in %s" % printable(folder), [], None)
    out = stream.getvalue()
    assert "in /tmp/m\\xc3\\xb6dule" in out and "full log: /tmp/m\\xc3\\xb6dule/build.log" in out
    assert "\udcc3" not in out
