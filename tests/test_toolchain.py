import os

import pytest

from conftest import CLANG16_MACROS, GCC11_MACROS, GCC12_MACROS, FakeRunner, compiler_outputs, make_exe, make_tree
from kbuildguard.arch import Arch
from kbuildguard.errors import ToolNotFound
from kbuildguard.identity import CompilerId, Family, parse_compiler
from kbuildguard.target.kernel import Selector, resolve
from kbuildguard.toolchain import MatchLevel, discover, mismatch_reason, select, toolset_env


def cid(text):
    return parse_compiler(text)


KERNEL = cid("gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0")


@pytest.mark.parametrize("other,level,ok", [
    ("gcc (Debian 12.2.0-14+deb12u1) 12.2.0", MatchLevel.EXACT, True),
    ("x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0", MatchLevel.EXACT, True),  # program name alone
    ("gcc-12 (Debian 12.2.0-14) 12.2.0", MatchLevel.EXACT, False),
    ("gcc-12 (Debian 12.2.0-14) 12.2.0", MatchLevel.VERSION, True),
    ("gcc-12 (Debian 12.3.0-1) 12.3.0", MatchLevel.VERSION, False),
    ("gcc-12 (Debian 12.3.0-1) 12.3.0", MatchLevel.MINOR, False),
    ("gcc-12 (Debian 12.2.1-1) 12.2.1", MatchLevel.MINOR, True),
    ("gcc-12 (Debian 12.3.0-1) 12.3.0", MatchLevel.MAJOR, True),
    ("gcc-11 (Debian 11.3.0-12) 11.3.0", MatchLevel.MAJOR, False),
    ("Debian clang version 12.2.0 (1)", MatchLevel.MAJOR, False),  # family differs even at the same number
])
def test_match_levels(other, level, ok):
    assert (mismatch_reason(KERNEL, cid(other), level) is None) == ok


def test_reason_names_both_versions():
    reason = mismatch_reason(KERNEL, cid("gcc-11 (Debian 11.3.0-12) 11.3.0"), MatchLevel.VERSION)
    assert "11.3.0" in reason and "12.2.0" in reason


def _machine(tmp_path):
    bindir = tmp_path / "bin"
    for name in ("gcc-12", "gcc-11", "clang-16"):
        make_exe(bindir / name)
    os.symlink("gcc-12", str(bindir / "gcc"))
    os.symlink("gcc-12", str(bindir / "cc"))
    outputs = {}
    outputs.update(compiler_outputs(str(bindir / "gcc-12"), GCC12_MACROS, "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"))
    outputs.update(compiler_outputs(str(bindir / "gcc-11"), GCC11_MACROS, "gcc-11 (Debian 11.3.0-12) 11.3.0"))
    outputs.update(compiler_outputs(str(bindir / "clang-16"), CLANG16_MACROS, "Debian clang version 16.0.6 (15~deb12u1)"))
    tree = make_tree(tmp_path / "tree", compile_h="gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40")
    return str(bindir), FakeRunner(outputs), resolve(Selector(kernel_dir=tree))


def test_selects_gcc12_by_name_over_gcc_and_cc(tmp_path):
    bindir, runner, target = _machine(tmp_path)
    env = {"PATH": bindir}
    sel = select(runner, target, MatchLevel.VERSION, env, opt_root=str(tmp_path / "opt"))
    assert sel.selected.path == os.path.join(bindir, "gcc-12")
    verdicts = {os.path.basename(c.path): c.verdict for c in sel.candidates}
    assert verdicts == {"gcc-12": "match", "gcc-11": "mismatch", "clang-16": "mismatch"}
    # gcc, cc and gcc-12 are one binary: probed once
    assert sum(1 for call in runner.calls if call[1] == "--version") == 3


def test_no_match_explains_every_candidate(tmp_path):
    bindir, runner, target = _machine(tmp_path)
    os.unlink(os.path.join(bindir, "gcc"))
    os.unlink(os.path.join(bindir, "cc"))
    os.unlink(os.path.join(bindir, "gcc-12"))
    sel = select(runner, target, MatchLevel.VERSION, {"PATH": bindir}, opt_root=str(tmp_path / "opt"))
    assert sel.selected is None
    assert {c.verdict for c in sel.candidates} == {"mismatch"}
    assert all(c.reason for c in sel.candidates)


def test_forced_mismatch_is_the_only_candidate(tmp_path):
    bindir, runner, target = _machine(tmp_path)
    sel = select(runner, target, MatchLevel.VERSION, {"PATH": bindir}, forced=("gcc-11", "--cc"))
    assert sel.selected is None
    assert [c.origin for c in sel.candidates] == ["--cc"]
    with pytest.raises(ToolNotFound):
        select(runner, target, MatchLevel.VERSION, {"PATH": bindir}, forced=("gcc-99", "--cc"))


def test_broken_compiler_is_an_error_candidate(tmp_path):
    bindir, runner, target = _machine(tmp_path)
    path = make_exe(os.path.join(bindir, "gcc-13"))
    runner.outputs[(path, "-E", "-dM", "-x", "c", "-")] = (1, "gcc-13: fatal error: cannot execute 'cc1'")
    sel = select(runner, target, MatchLevel.VERSION, {"PATH": bindir}, opt_root=str(tmp_path / "opt"))
    errors = [c for c in sel.candidates if c.verdict == "error"]
    assert [os.path.basename(c.path) for c in errors] == ["gcc-13"]
    assert sel.selected is not None


def test_wrong_architecture_is_rejected(tmp_path):
    bindir, runner, target = _machine(tmp_path)
    target = target._replace(arch=Arch.AARCH64)
    sel = select(runner, target, MatchLevel.VERSION, {"PATH": bindir}, opt_root=str(tmp_path / "opt"))
    assert sel.selected is None
    assert "CROSS_COMPILE" in [c for c in sel.candidates if c.path.endswith("gcc-12")][0].reason


def test_discovers_devtoolset_and_gcc_toolset(tmp_path):
    opt = tmp_path / "opt"
    make_exe(opt / "devtoolset-8/root/usr/bin/gcc")
    make_exe(opt / "gcc-toolset-12/root/usr/bin/gcc")
    found = discover({"PATH": ""}, opt_root=str(opt))
    assert [p for p, _ in found] == [str(opt / "gcc-toolset-12/root/usr/bin/gcc"), str(opt / "devtoolset-8/root/usr/bin/gcc")]


def test_cross_compile_prefix_is_searched(tmp_path):
    bindir = tmp_path / "bin"
    make_exe(bindir / "aarch64-linux-gnu-gcc-12")
    make_exe(bindir / "aarch64-linux-gnu-gcc")
    found = [os.path.basename(p) for p, _ in discover({"PATH": str(bindir), "CROSS_COMPILE": "aarch64-linux-gnu-"}, str(tmp_path))]
    assert found[:2] == ["aarch64-linux-gnu-gcc", "aarch64-linux-gnu-gcc-12"]


def test_toolset_env_without_scl_enable():
    from kbuildguard.toolchain import Compiler

    c = Compiler(path="/opt/rh/devtoolset-8/root/usr/bin/gcc", family=Family.GCC, version="8.3.1", vendor="Red Hat 8.3.1-3", banner="", arch=Arch.AARCH64, program="gcc", toolset="devtoolset-8")
    env = toolset_env(c, {"PATH": "/usr/bin:/bin"})
    assert env["PATH"].split(":")[0] == "/opt/rh/devtoolset-8/root/usr/bin"
    assert env["LD_LIBRARY_PATH"].startswith("/opt/rh/devtoolset-8/root/usr/lib64")


def test_identity_describe():
    assert CompilerId(family=Family.GCC, version="8.3.1", vendor="Red Hat 8.3.1-3").describe() == "gcc 8.3.1 (Red Hat 8.3.1-3)"


def test_clang_kernel_builds_with_llvm_suffix_and_the_matching_lld(tmp_path):
    from kbuildguard.build.kbuild import make_command
    from kbuildguard.toolchain import Compiler

    llvm = tmp_path / "usr/lib/llvm-16/bin"
    make_exe(llvm / "clang")
    make_exe(llvm / "ld.lld")
    os.makedirs(str(tmp_path / "usr/bin"))
    os.symlink(str(llvm / "clang"), str(tmp_path / "usr/bin/clang-16"))
    tree = make_tree(tmp_path / "tree", cc_text="Debian clang version 16.0.6 (15~deb12u1)", gcc_version=None)
    target = resolve(Selector(kernel_dir=tree))
    c = Compiler(path=str(tmp_path / "usr/bin/clang-16"), family=Family.CLANG, version="16.0.6", vendor="Debian 15~deb12u1", banner="", arch=Arch.X86_64, program="clang-16", toolset="")
    cmd = make_command(target, c, "/stage/mod", "modules", ["-j4", "CC=gcc", "LLVM=1"], {"PATH": "/usr/bin:/bin"})
    # 6.1 knows LLVM=-N (5.18+): kbuild calls ld.lld-16, llvm-objcopy-16 ... by name
    assert cmd.argv == ["make", "-C", tree, "M=/stage/mod", "LLVM=-16", "CC=" + c.path, "-j4", "modules"]
    assert cmd.env["PATH"].split(":")[0] == str(llvm)
    # the kernel's assembler record decides LLVM_IAS (its default flipped in 5.15)
    ias = target._replace(tree_config=dict(target.tree_config, CONFIG_AS_IS_LLVM="y"))
    assert make_command(ias, c, "/s", "modules", [], {}).argv[4:6] == ["LLVM=-16", "LLVM_IAS=1"]
    gnu_as = target._replace(tree_config=dict(target.tree_config, CONFIG_AS_IS_GNU="y"))
    assert make_command(gnu_as, c, "/s", "modules", [], {}).argv[4:6] == ["LLVM=-16", "LLVM_IAS=0"]
    # before 5.18 only LLVM=1, with clang's own folder first on PATH; so for an unversioned clang
    old = target._replace(release="5.15.0-1-amd64")
    assert make_command(old, c, "/s", "modules", [], {"PATH": "/usr/bin"}).argv[4] == "LLVM=1"
    plain = c._replace(program="clang")
    assert make_command(target, plain, "/s", "modules", [], {"PATH": "/usr/bin"}).argv[4] == "LLVM=1"


def test_make_takes_the_kernels_own_compiler_probing_all_at_once(tmp_path):
    """make ranks the tree's own program first but probes every candidate in the same bound (issue 22:
    probing it alone first made each hung wrapper cost its own timeout)."""
    bindir, runner, target = _machine(tmp_path)
    target = target._replace(program_hint="gcc-12")
    sel = select(runner, target, MatchLevel.VERSION, {"PATH": bindir}, opt_root=str(tmp_path / "opt"), first_match=True)
    assert sel.selected.path == os.path.join(bindir, "gcc-12")
    assert sel.candidates[0].path == os.path.join(bindir, "gcc-12") and len(sel.candidates) > 1


def test_make_keeps_looking_for_the_kernels_vendor_release(tmp_path):
    """first_match stops early only on a match of the kernel's own vendor release."""
    bindir, runner, target = _machine(tmp_path)
    target = target._replace(program_hint="gcc-12", compiler=target.compiler._replace(vendor="kbg toolset 12.2.0-1"))
    toolset = make_exe(tmp_path / "opt/gcc-toolset-12/root/usr/bin/gcc")
    runner.outputs.update(compiler_outputs(toolset, GCC12_MACROS, "gcc (kbg toolset 12.2.0-1) 12.2.0"))
    sel = select(runner, target, MatchLevel.VERSION, {"PATH": bindir}, opt_root=str(tmp_path / "opt"), first_match=True)
    assert sel.selected.path == toolset


@pytest.mark.parametrize("given, kept", [
    ("-n", ""), ("n", ""), ("ns", "s"), ("-ik", "-k"), ("--just-print", ""), ("-W foo.c", ""),
    ("-j4 --jobserver-auth=3,4", "-j4 --jobserver-auth=3,4"), ("w -- CC=gcc-11 M=/x", "w"),
])
def test_makeflags_keep_only_scheduling(given, kept):
    from kbuildguard.build.kbuild import scheduling_flags

    assert scheduling_flags(given) == kept
