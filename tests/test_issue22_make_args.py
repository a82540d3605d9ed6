"""Issue 22: toolchain variables after `make --` are taken, replaced, passed or refused -- never
dropped without a word (LLVM=1, LLVM_IAS=, CC=, LD=, HOSTCC= ... in every assignment form)."""

import os

import pytest
from test_build import machine, run  # noqa: F401 (machine is a fixture)

from conftest import make_exe, make_tree
from kbuildguard.arch import Arch
from kbuildguard.build.kbuild import make_command
from kbuildguard.errors import UsageError
from kbuildguard.identity import Family
from kbuildguard.target.kernel import Selector, resolve
from kbuildguard.toolchain import PASSED_TOOL_VARIABLES, Compiler


def _gcc_target(tmp_path):
    target = resolve(Selector(kernel_dir=make_tree(tmp_path / "tree")))
    gcc = Compiler(path="/usr/bin/gcc-12", family=Family.GCC, version="12.2.0", vendor="Debian 12.2.0-14", banner="", arch=Arch.X86_64, program="gcc-12", toolset="")
    return target, gcc


def _clang_target(tmp_path):
    make_exe(tmp_path / "usr/lib/llvm-16/bin/clang")
    tree = make_tree(tmp_path / "tree", cc_text="Debian clang version 16.0.6 (15~deb12u1)", gcc_version=None)
    target = resolve(Selector(kernel_dir=tree))
    clang = Compiler(path=str(tmp_path / "usr/lib/llvm-16/bin/clang"), family=Family.CLANG, version="16.0.6", vendor="Debian 15~deb12u1", banner="",
                     arch=Arch.X86_64, program="clang-16", toolset="")
    return target, clang


@pytest.mark.parametrize("arg", ["LLVM=1", "LLVM=-16", "LLVM=/usr/lib/llvm-16/bin/", "LLVM=0"])
def test_llvm_for_a_gcc_kernel_is_refused_with_why(tmp_path, arg):
    target, gcc = _gcc_target(tmp_path)
    with pytest.raises(UsageError, match="not clang: LLVM= would make kbuild build with clang"):
        make_command(target, gcc, "/s", "modules", [arg], {})


@pytest.mark.parametrize("arg", ["LLVM=", "LLVM_IAS=1", "LLVM_IAS=0"])
def test_an_llvm_variable_without_effect_on_gcc_is_noted(tmp_path, arg):
    target, gcc = _gcc_target(tmp_path)
    cmd = make_command(target, gcc, "/s", "modules", [arg], {})
    assert arg not in cmd.argv and any(n.startswith(arg + " after --: not passed") for n in cmd.notes)


@pytest.mark.parametrize("arg", ["LLVM=1", "LLVM_IAS=0", "LLVM=-16"])
def test_llvm_for_a_clang_kernel_is_replaced_and_said(tmp_path, arg):
    target, clang = _clang_target(tmp_path)
    cmd = make_command(target, clang, "/s", "modules", [arg], {"PATH": "/usr/bin"})
    assert "LLVM=-16" in cmd.argv and arg not in cmd.argv[cmd.argv.index("CC=" + clang.path):]
    assert any("replaced by kbuildguard's LLVM=-16" in n for n in cmd.notes)


@pytest.mark.parametrize("arg", ["CC:=gcc-11", "CC+=-m32", "CC?=gcc-11", "CC =gcc-11", "LLVM:=1", "LLVM_IAS::=1"])
def test_other_assignment_forms_of_kbuildguards_variables_are_refused(tmp_path, arg):
    target, gcc = _gcc_target(tmp_path)
    with pytest.raises(UsageError, match="write (CC|LLVM|LLVM_IAS)=VALUE"):
        make_command(target, gcc, "/s", "modules", [arg], {})


def test_cc_after_dashes_is_noted_as_the_compiler(tmp_path):
    target, gcc = _gcc_target(tmp_path)
    cmd = make_command(target, gcc, "/s", "modules", ["CC=gcc-12"], {})
    assert cmd.argv.count("CC=/usr/bin/gcc-12") == 1 and "CC=gcc-12" not in cmd.argv
    assert cmd.notes == ("CC=gcc-12 after --: taken as the compiler (as --cc); make gets CC=/usr/bin/gcc-12",)


@pytest.mark.parametrize("name", sorted(PASSED_TOOL_VARIABLES))
def test_other_toolchain_variables_are_passed_and_noted(tmp_path, name):
    target, gcc = _gcc_target(tmp_path)
    arg = name + ("=x86" if name == "ARCH" else "=x")  # another ARCH than the kernel's is refused (test_cross)
    cmd = make_command(target, gcc, "/s", "modules", [arg, "V=1"], {})
    assert cmd.argv[-3:] == [arg, "V=1", "modules"]
    assert len(cmd.notes) == 1 and cmd.notes[0].startswith(arg + " after --: passed to kbuild as given")


def test_make_dash_dash_llvm_on_a_gcc_kernel_exits_2(machine):  # noqa: F811
    code, _, err, runner = run(machine, "make", "--kernel-dir", machine["tree"], "--dry-run", "--", "LLVM=1")
    assert code == 2 and "LLVM=1 after --" in err and runner.makes == []
    code, _, err, _ = run(machine, "make", "--kernel-dir", machine["tree"], "--dry-run", "--", "HOSTCC=gcc-11")
    assert code == 0 and "note: HOSTCC=gcc-11 after --: passed to kbuild as given" in err
    assert os.path.isdir(machine["tree"])
