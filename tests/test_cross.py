"""Issue 22: a kernel of another machine than this host (Debian's arm64 kernel on amd64) -- the
target's cross compilers are candidates, make gets ARCH= and CROSS_COMPILE=, a user's own wins, a
contradicting ARCH= is refused, and host programs of another machine are said before make."""

import json
import os
import struct

import pytest
from test_build import machine  # noqa: F401 (a fixture)

from conftest import CLANG16_MACROS, GCC12_MACROS, FakeRunner, compiler_outputs, make_exe, make_tree
from kbuildguard import arch as arches
from kbuildguard.arch import Arch
from kbuildguard.build import preflight
from kbuildguard.build.kbuild import make_command
from kbuildguard.errors import UsageError
from kbuildguard.identity import Family
from kbuildguard.target.kernel import Selector, resolve, tool_records
from kbuildguard.toolchain import (
    Compiler,
    MatchLevel,
    cross_prefix,
    cross_settings,
    discover,
    linker_program,
    llvm_settings,
    runs_here,
    select,
)

ARM64_GCC12_MACROS = GCC12_MACROS.replace("__x86_64__", "__aarch64__")
ARM64_BANNER = "aarch64-linux-gnu-gcc-12 (Debian 12.2.0-14) 12.2.0"
HOST = Arch.X86_64


def _arm64_tree(tmp_path, cc_text=ARM64_BANNER, gcc_version="120200"):
    return make_tree(tmp_path / "tree", cc_text=cc_text, release="6.1.0-13-arm64", arch_config="CONFIG_ARM64",
                     gcc_version=gcc_version)


def _machine(tmp_path):
    """This amd64 host: gcc-12 (x86_64), clang-16, and Debian's gcc-12-aarch64-linux-gnu."""
    bindir = tmp_path / "bin"
    for name in ("gcc-12", "clang-16", "aarch64-linux-gnu-gcc-12"):
        make_exe(bindir / name)
    outputs = {}
    outputs.update(compiler_outputs(str(bindir / "gcc-12"), GCC12_MACROS, "gcc-12 (Debian 12.2.0-14) 12.2.0"))
    outputs.update(compiler_outputs(str(bindir / "clang-16"), CLANG16_MACROS, "Debian clang version 16.0.6 (15~deb12u1)"))
    outputs.update(compiler_outputs(str(bindir / "aarch64-linux-gnu-gcc-12"), ARM64_GCC12_MACROS, ARM64_BANNER))
    return str(bindir), FakeRunner(outputs)


def test_one_table_names_kbuild_arch_triplet_and_qemu():
    assert (Arch.AARCH64.traits.kbuild, Arch.AARCH64.traits.triplet) == ("arm64", "aarch64-linux-gnu")
    assert Arch.PPC64LE.traits.triplet == "powerpc64le-linux-gnu" and Arch.ARM.traits.triplet == "arm-linux-gnueabihf"
    assert Arch.I686.traits.qemu == "i386" and Arch.S390X.traits.kbuild == "s390"
    assert arches.srcarch("x86_64") == "x86" and arches.srcarch("i386") == "x86" and arches.srcarch("arm64") == "arm64"
    assert arches.foreign(Arch.AARCH64, HOST) and not arches.foreign(Arch.X86_64, HOST) and not arches.foreign(None, HOST)


def test_cross_prefix_only_for_a_foreign_kernel(tmp_path):
    target = resolve(Selector(kernel_dir=_arm64_tree(tmp_path)))
    assert cross_prefix(target, {}, HOST) == "aarch64-linux-gnu-"
    assert cross_prefix(target, {}, Arch.AARCH64) == ""  # native
    assert cross_prefix(target, {"CROSS_COMPILE": "/opt/x/bin/aarch64-none-linux-gnu-"}, HOST) == "/opt/x/bin/aarch64-none-linux-gnu-"
    bindir = tmp_path / "bin"
    make_exe(bindir / "aarch64-linux-gnu-gcc-12")
    make_exe(bindir / "aarch64-linux-gnu-gcc")
    found = [os.path.basename(p) for p, _ in discover({"PATH": str(bindir)}, str(tmp_path), "aarch64-linux-gnu-")]
    assert found == ["aarch64-linux-gnu-gcc", "aarch64-linux-gnu-gcc-12"]
    assert discover({"PATH": str(bindir)}, str(tmp_path)) == []  # without a prefix: not candidates


def test_arm64_kernel_on_amd64_selects_the_cross_gcc(tmp_path):
    bindir, runner = _machine(tmp_path)
    target = resolve(Selector(kernel_dir=_arm64_tree(tmp_path)))
    for first_match in (False, True):
        sel = select(runner, target, MatchLevel.EXACT, {"PATH": bindir}, opt_root=str(tmp_path / "opt"),
                     first_match=first_match, host=HOST)
        assert sel.selected is not None and sel.selected.program == "aarch64-linux-gnu-gcc-12", sel.candidates
    # detect's full list: the host's gcc-12 is the right release for the wrong machine, and says how to fix it
    sel = select(runner, target, MatchLevel.VERSION, {"PATH": bindir}, opt_root=str(tmp_path / "opt"), host=HOST)
    reasons = {os.path.basename(c.path): c.reason for c in sel.candidates}
    assert "targets x86_64, the kernel is aarch64 (install the cross compiler aarch64-linux-gnu-gcc-N" in reasons["gcc-12"]
    # on an arm64 host the same tree is native: the cross gcc is not even looked for
    sel = select(runner, target, MatchLevel.VERSION, {"PATH": bindir}, opt_root=str(tmp_path / "opt"), host=Arch.AARCH64)
    assert "aarch64-linux-gnu-gcc-12" not in [os.path.basename(c.path) for c in sel.candidates]


def test_without_the_cross_gcc_nothing_matches(tmp_path):
    bindir, runner = _machine(tmp_path)
    os.unlink(os.path.join(bindir, "aarch64-linux-gnu-gcc-12"))
    target = resolve(Selector(kernel_dir=_arm64_tree(tmp_path)))
    sel = select(runner, target, MatchLevel.VERSION, {"PATH": bindir}, opt_root=str(tmp_path / "opt"), host=HOST)
    assert sel.selected is None


def test_clang_kernel_of_another_machine_takes_the_host_clang(tmp_path):
    bindir, runner = _machine(tmp_path)
    target = resolve(Selector(kernel_dir=_arm64_tree(tmp_path, cc_text="Debian clang version 16.0.6 (15~deb12u1)",
                                                     gcc_version=None)))
    sel = select(runner, target, MatchLevel.VERSION, {"PATH": bindir}, opt_root=str(tmp_path / "opt"), host=HOST)
    assert sel.selected is not None and sel.selected.program == "clang-16"
    # ... but not a clang of a third machine
    clang = sel.selected._replace(arch=Arch.S390X)
    from kbuildguard.toolchain import machine_reason

    assert machine_reason(target, clang, HOST) is not None
    cross = cross_settings(target, sel.selected, [], {}, HOST)
    # 6.1's Makefile.clang takes --target from ARCH alone; older ones and LLVM_IAS=0 need CROSS_COMPILE
    assert cross.make_vars == ("ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-")


def _cross_gcc():
    return Compiler(path="/usr/bin/aarch64-linux-gnu-gcc-12", family=Family.GCC, version="12.2.0", vendor="Debian 12.2.0-14", banner=ARM64_BANNER,
                    arch=Arch.AARCH64, program="aarch64-linux-gnu-gcc-12", toolset="")


def test_make_gets_arch_and_cross_compile_with_a_note(tmp_path, monkeypatch):
    target = resolve(Selector(kernel_dir=_arm64_tree(tmp_path)))
    monkeypatch.setattr("kbuildguard.toolchain.host_arch", lambda: HOST)
    cmd = make_command(target, _cross_gcc(), "/s", "modules", [], {"PATH": "/usr/bin"})
    assert cmd.argv[4:7] == ["ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-", "CC=/usr/bin/aarch64-linux-gnu-gcc-12"]
    assert cmd.notes == ("kernel 6.1.0-13-arm64 is aarch64 and this machine x86_64: a cross build, make gets "
                         "ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-",)
    # $(LD) is the cross binutils' ld, which the preflight identifies
    assert linker_program(_cross_gcc(), llvm_settings(target, _cross_gcc(), ""), {}) == "aarch64-linux-gnu-ld"
    # a native build gets neither
    native = resolve(Selector(kernel_dir=make_tree(tmp_path / "native")))
    gcc = Compiler(path="/usr/bin/gcc-12", family=Family.GCC, version="12.2.0", vendor="Debian 12.2.0-14", banner="", arch=Arch.X86_64, program="gcc-12", toolset="")
    argv = make_command(native, gcc, "/s", "modules", [], {}).argv
    assert not [a for a in argv if a.startswith(("ARCH=", "CROSS_COMPILE="))]


@pytest.mark.parametrize("args,env,where", [
    (["ARCH=arm64", "CROSS_COMPILE=/opt/x/bin/aarch64-none-linux-gnu-"], {}, "after --"),
    ([], {"ARCH": "arm64", "CROSS_COMPILE": "/opt/x/bin/aarch64-none-linux-gnu-"}, "in the environment"),
])
def test_the_users_own_arch_and_cross_compile_win(tmp_path, args, env, where):
    target = resolve(Selector(kernel_dir=_arm64_tree(tmp_path)))
    cross = cross_settings(target, _cross_gcc(), args, env, HOST)
    assert cross.make_vars == ()
    assert cross.notes == ("ARCH=arm64 %s: kept" % where, "CROSS_COMPILE=/opt/x/bin/aarch64-none-linux-gnu- %s: kept" % where)


def test_only_cross_compile_given_still_gets_arch(tmp_path):
    target = resolve(Selector(kernel_dir=_arm64_tree(tmp_path)))
    cross = cross_settings(target, _cross_gcc(), [], {"CROSS_COMPILE": "aarch64-linux-gnu-"}, HOST)
    assert cross.make_vars == ("ARCH=arm64",)


@pytest.mark.parametrize("args,env", [(["ARCH=x86"], {}), ([], {"ARCH": "x86_64"}), (["ARCH:=powerpc"], {}),
                                      (["ARCH="], {})])
def test_a_contradicting_arch_is_refused(tmp_path, args, env):
    target = resolve(Selector(kernel_dir=_arm64_tree(tmp_path)))
    with pytest.raises(UsageError, match="kernel 6.1.0-13-arm64 is aarch64, which kbuild builds with ARCH=arm64"):
        cross_settings(target, _cross_gcc(), args, env, HOST)
    # the same check for a native kernel: ARCH=arm64 for an amd64 kernel on amd64
    native = resolve(Selector(kernel_dir=make_tree(tmp_path / "native")))
    gcc = Compiler(path="/usr/bin/gcc-12", family=Family.GCC, version="12.2.0", vendor="", banner="", arch=Arch.X86_64, program="gcc-12", toolset="")
    with pytest.raises(UsageError, match="ARCH=arm64"):
        cross_settings(native, gcc, ["ARCH=arm64"], {}, HOST)
    assert cross_settings(native, gcc, ["ARCH=x86_64"], {}, HOST).make_vars == ()


def _elf(e_machine: int) -> bytes:
    """A minimal ELF64 executable header with a section table (null + .shstrtab)."""
    names = b"\x00.shstrtab\x00"
    header = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + struct.pack("<HHIQQQIHHHHHH", 3, e_machine, 1, 0, 0, 64, 0, 64, 0, 0, 64, 2, 1)
    null = b"\x00" * 64
    strtab = struct.pack("<IIQQQQIIQQ", 1, 3, 0, 0, 192, len(names), 0, 0, 1, 0)
    return header + null + strtab + names


def test_host_programs_of_another_machine_are_said_before_make(tmp_path):
    target = resolve(Selector(kernel_dir=_arm64_tree(tmp_path)))
    for rel in ("scripts/basic/fixdep", "scripts/mod/modpost"):
        with open(os.path.join(target.build_dir, rel), "wb") as f:
            f.write(_elf(183))
    binfmt = str(tmp_path / "binfmt")
    os.makedirs(binfmt)
    runner = FakeRunner({})
    found = preflight.check_host_programs(runner, target, tool_records(target.tree_config), False, HOST, binfmt)
    assert [f.status for f in found] == ["fail", "fail"] and runner.calls == []  # nothing run: it would not start
    assert "fixdep is a program for aarch64 and this machine is x86_64, with no binfmt_misc handler for aarch64" in found[0].line()
    assert "install qemu-user-static and binfmt-support, or use a build tree prepared for x86_64" in found[0].line()
    # with qemu-user registered and enabled, they are run as before
    for name in ("status", "qemu-aarch64"):
        with open(os.path.join(binfmt, name), "w") as f:
            f.write("enabled\n")
    runner = FakeRunner({(os.path.join(target.build_dir, p),): (1, "usage") for p in ("scripts/basic/fixdep", "scripts/mod/modpost")})
    found = preflight.check_host_programs(runner, target, tool_records(target.tree_config), False, HOST, binfmt)
    assert [f.status for f in found] == ["ok", "ok"]


def test_runs_here_reads_binfmt_misc(tmp_path):
    binfmt = str(tmp_path)
    assert runs_here(Arch.X86_64, HOST, binfmt) and runs_here(Arch.I686, HOST, binfmt) and runs_here(None, HOST, binfmt)
    assert not runs_here(Arch.AARCH64, HOST, binfmt)  # nothing registered (binfmt_misc not even mounted)
    with open(os.path.join(binfmt, "qemu-aarch64"), "w") as f:
        f.write("enabled\n")
    assert not runs_here(Arch.AARCH64, HOST, binfmt)  # no status: binfmt_misc as a whole unknown
    with open(os.path.join(binfmt, "status"), "w") as f:
        f.write("disabled\n")
    assert not runs_here(Arch.AARCH64, HOST, binfmt)
    with open(os.path.join(binfmt, "status"), "w") as f:
        f.write("enabled\n")
    assert runs_here(Arch.AARCH64, HOST, binfmt) and not runs_here(Arch.S390X, HOST, binfmt)
    os.makedirs(os.path.join(binfmt, "qemu-s390x"))  # odd: a folder
    assert not runs_here(Arch.S390X, HOST, binfmt)


def test_detect_and_setup_name_the_cross_compiler_package(tmp_path):
    from kbuildguard.provision import Distro
    from kbuildguard.provision.system import cross_hint

    target = resolve(Selector(kernel_dir=_arm64_tree(tmp_path)))
    debian = Distro("debian", (), "12", "Debian GNU/Linux 12 (bookworm)", "x86_64")
    fedora = Distro("fedora", (), "40", "Fedora Linux 40", "x86_64")
    hint = cross_hint(FakeRunner({}), target, HOST, debian, {"PATH": str(tmp_path / "none")})
    assert "a build from here needs the cross compiler aarch64-linux-gnu-gcc-12" in hint
    assert "not on PATH: apt-get install gcc-12-aarch64-linux-gnu" in hint
    assert "dnf install gcc-aarch64-linux-gnu" in cross_hint(FakeRunner({}), target, HOST, fedora, {"PATH": ""})
    bindir, runner = _machine(tmp_path)
    assert "aarch64-linux-gnu-gcc-12 is on PATH" in cross_hint(runner, target, HOST, debian, {"PATH": bindir})
    assert cross_hint(runner, target, Arch.AARCH64, debian, {"PATH": bindir}) == ""  # native
    # Debian's package names spell the triplet's _ as -: gcc-12-x86-64-linux-gnu installs x86_64-linux-gnu-gcc-12
    amd64 = resolve(Selector(kernel_dir=make_tree(tmp_path / "amd64")))
    assert "apt-get install gcc-12-x86-64-linux-gnu" in cross_hint(FakeRunner({}), amd64, Arch.AARCH64, debian, {"PATH": ""})


def test_empty_values_from_the_environment_are_none_and_an_empty_cross_compile_after_dashes_is_refused(tmp_path):
    target = resolve(Selector(kernel_dir=_arm64_tree(tmp_path)))
    cross = cross_settings(target, _cross_gcc(), [], {"ARCH": "", "CROSS_COMPILE": ""}, HOST)
    assert cross.make_vars == ("ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-")
    assert cross_prefix(target, {"CROSS_COMPILE": ""}, HOST) == "aarch64-linux-gnu-"
    assert linker_program(_cross_gcc(), llvm_settings(target, _cross_gcc(), ""), {"CROSS_COMPILE": ""}) == "aarch64-linux-gnu-ld"
    with pytest.raises(UsageError, match=r"CROSS_COMPILE= \(empty\) after --: .* drop it \(kbuildguard sets CROSS_COMPILE=aarch64-linux-gnu-\)"):
        cross_settings(target, _cross_gcc(), ["CROSS_COMPILE="], {}, HOST)


@pytest.fixture
def arm64_machine(machine, monkeypatch):  # noqa: F811
    """test_build's machine with Debian's arm64 tree and gcc-12-aarch64-linux-gnu, seen from an amd64 host."""
    from conftest import tree_outputs
    from kbuildguard.provision import Distro

    tree = make_tree(machine["tmp"] / "arm64tree", cc_text=ARM64_BANNER, release="6.1.0-13-arm64", arch_config="CONFIG_ARM64")
    cross = make_exe(os.path.join(machine["bindir"], "aarch64-linux-gnu-gcc-12"))
    machine["outputs"].update(compiler_outputs(cross, ARM64_GCC12_MACROS, ARM64_BANNER))
    machine["outputs"].update(tree_outputs(tree))
    machine["outputs"][("aarch64-linux-gnu-ld", "--version")] = (0, "GNU ld (GNU Binutils for Debian) 2.40\n")
    monkeypatch.setattr("kbuildguard.toolchain.host_arch", lambda: HOST)
    monkeypatch.setattr("kbuildguard.provision.system.host_arch", lambda: HOST)
    debian = Distro("debian", (), "12", "Debian GNU/Linux 12 (bookworm)", "x86_64")
    monkeypatch.setattr("kbuildguard.provision.system.detect_distro", lambda root="/", arch="": debian)
    return dict(machine, arm64=tree, cross=cross)


def test_make_dry_run_shows_arch_and_cross_compile(arm64_machine):
    from test_build import run

    m = arm64_machine
    code, out, err, runner = run(m, "make", "--kernel-dir", m["arm64"], "--dry-run", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["compiler"] == m["cross"]
    assert plan["make"][4:7] == ["ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-", "CC=" + m["cross"]]
    assert "note: kernel 6.1.0-13-arm64 is aarch64 and this machine x86_64: a cross build" in err and runner.makes == []
    code, out, err, _ = run(m, "make", "--kernel-dir", m["arm64"], "--dry-run", "--", "ARCH=x86")
    assert code == 2 and "ARCH=x86 after --: kernel 6.1.0-13-arm64 is aarch64" in err


def test_make_and_detect_without_the_cross_gcc_name_its_package(arm64_machine):
    from test_build import run

    m = arm64_machine
    os.unlink(m["cross"])
    for verb in ("make", "detect"):
        code, _, err, runner = run(m, verb, "--kernel-dir", m["arm64"])
        assert code == 5, err
        assert "targets x86_64, the kernel is aarch64" in err
        assert "hint: kernel 6.1.0-13-arm64 is aarch64 and this machine x86_64: a build from here needs the cross " \
               "compiler aarch64-linux-gnu-gcc-12; aarch64-linux-gnu-gcc-12 is not on PATH: apt-get install " \
               "gcc-12-aarch64-linux-gnu" in err, err


def test_setup_of_a_tree_of_another_machine_plans_the_cross_compiler(arm64_machine):
    from test_build import run

    m = arm64_machine
    os.unlink(m["cross"])
    code, out, err, runner = run(m, "setup", "--kernel-dir", m["arm64"], "--dry-run")
    assert code == 0, err
    assert "apt-get install -y --no-install-recommends gcc-12-aarch64-linux-gnu" in out, out
    assert "gcc-12-aarch64-linux-gnu (aarch64-linux-gnu-gcc-12) in place of gcc-12, which builds for this machine only" in out
    assert not [c for c in runner.calls if c[:2] == ["apt-get", "install"]]


def test_cross_plan_keeps_the_tree_and_leaves_native_plans_alone(tmp_path):
    from kbuildguard.provision import Distro, plan
    from kbuildguard.provision.system import cross_plan

    target = resolve(Selector(kernel_dir=_arm64_tree(tmp_path)))
    debian = Distro("debian", (), "12", "Debian GNU/Linux 12 (bookworm)", "aarch64")
    p = plan(target, debian, need_tree=True)
    crossed = cross_plan(p, target, HOST)
    assert "gcc-12-aarch64-linux-gnu" in crossed.packages and "gcc-12" not in crossed.packages
    assert [pkg for pkg in crossed.packages if pkg.startswith("linux-headers")] == [pkg for pkg in p.packages if pkg.startswith("linux-headers")]
    assert cross_plan(p, target, Arch.AARCH64) is p
    from kbuildguard.provision.system import cross_package

    assert cross_package(target, "aarch64-linux-gnu", Distro("fedora", (), "40", "Fedora Linux 40", "x86_64")) == "gcc-aarch64-linux-gnu"
    assert cross_package(target, "aarch64-linux-gnu", Distro("arch", (), "", "Arch Linux", "x86_64")) == ""


def test_make_install_dry_run_plans_the_cross_compiler(arm64_machine):
    from test_build import run

    m = arm64_machine
    os.unlink(m["cross"])
    code, out, err, runner = run(m, "make", "--kernel-dir", m["arm64"], "--install", "--dry-run")
    assert code == 5, err
    assert "gcc-12-aarch64-linux-gnu" in out + err and "--no-install-recommends gcc-12 " not in out + err + " "
    assert not [c for c in runner.calls if c[:2] == ["apt-get", "install"]] and runner.makes == []
