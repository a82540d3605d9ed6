"""The toolchain preflight (issue 14) without this host: fake trees laid out as kernels lay them out,
FakeRunner answers with what real tools print (captured on Debian 12: binutils 2.40, LLD 16.0.6,
pahole v1.24, gcc-12 refusing a gcc-11 plugin)."""

import os

import pytest

from conftest import FakeRunner, context, make_exe, make_tree, tree_outputs
from kbuildguard.arch import Arch
from kbuildguard.build.modbtf import choose_base, materialize, objtree_for
from kbuildguard.build.preflight import Check, Status, enforce, run
from kbuildguard.errors import NoBtfBase, ToolchainUnfit, ToolNotFound
from kbuildguard.identity import Family
from kbuildguard.run import CommandFailed
from kbuildguard.target.kernel import Selector, config_linker, decode_ld_version, resolve, tool_records
from kbuildguard.toolchain import Compiler

RELEASE = "6.1.0-57-amd64"
GCC12 = Compiler(path="/usr/bin/gcc-12", family=Family.GCC, version="12.2.0", vendor="Debian 12.2.0-14+deb12u1", banner="", arch=Arch.X86_64, program="gcc-12", toolset="")
CLANG16 = Compiler(path="/usr/bin/clang-16", family=Family.CLANG, version="16.0.6", vendor="Debian 15~deb12u1", banner="", arch=Arch.X86_64, program="clang-16", toolset="")
GNU_LD = "GNU ld (GNU Binutils for Debian) 2.40\nCopyright (C) 2023 Free Software Foundation, Inc.\n"
LLD16 = "Debian LLD 16.0.6 (compatible with GNU linkers)\n"
LLVM16_TOOL = "llvm-objcopy, compatible with GNU objcopy\nDebian LLVM version 16.0.6\n  Optimized build.\n"
# an x86 BTF header with no types: enough for the raw-BTF path
RAW_BTF = b"\x9f\xeb\x01\x00\x18\x00\x00\x00" + b"\x00" * 16


@pytest.mark.parametrize("value, expected", [
    ("24000", (2, 40, 0)), ("23800", (2, 38, 0)), ("160006", (16, 0, 6)), ("235000000", (2, 35, 0)),
    ("0", None), ("", None), ("x", None)])
def test_ld_version_encodings(value, expected):
    assert decode_ld_version(value) == expected


def test_config_linker_reads_kconfig_records():
    bfd, source = config_linker({"CONFIG_LD_IS_BFD": "y", "CONFIG_LD_VERSION": "24000", "CONFIG_LLD_VERSION": "0"})
    assert (bfd.name, bfd.version) == ("GNU ld", "2.40") and source.endswith("CONFIG_LD_VERSION")
    lld, _ = config_linker({"CONFIG_LD_IS_LLD": "y", "CONFIG_LD_VERSION": "0", "CONFIG_LLD_VERSION": "160006"})
    assert (lld.name, lld.version) == ("LLD", "16.0.6")
    assert config_linker({})[0] is None


def _debian(tmp_path, extra=(), compile_h=None, cc_text="gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0", gcc_version="120200"):
    """A Debian 12 sysroot with a headers tree for RELEASE whose auto.conf carries ``extra`` lines."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    tree = make_tree(root / "usr/src" / ("linux-headers-" + RELEASE), release=RELEASE, cc_text=cc_text,
                     gcc_version=gcc_version, compile_h=compile_h)
    with open(os.path.join(tree, "include/config/auto.conf"), "a") as f:
        f.write("".join(line + "\n" for line in extra))
    return str(root), tree


GNU_TREE = ("CONFIG_LD_IS_BFD=y", "CONFIG_LD_VERSION=24000", "CONFIG_LLD_VERSION=0", "CONFIG_OBJTOOL=y")


def _run(tmp_path, root, tree, compiler=GCC12, outputs=None, **kwargs):
    canned = tree_outputs(tree)
    canned.update(outputs or {})
    runner = FakeRunner(canned)
    target = resolve(Selector(kernel=RELEASE, sysroot=root))
    return run(context(runner, env={"PATH": "/usr/bin"}), target, compiler, **kwargs), runner


def by_subject(result):
    return {f.subject: f for f in result.findings}


def test_a_sound_gcc_toolchain_passes(tmp_path):
    root, tree = _debian(tmp_path, GNU_TREE)
    objtool = make_exe(os.path.join(tree, "tools/objtool/objtool"))
    result, runner = _run(tmp_path, root, tree, outputs={("ld", "--version"): GNU_LD, (objtool,): (129, "usage")})
    assert not result.failures(), result.findings
    assert by_subject(result)["ld"].message == "GNU ld 2.40, as the kernel's GNU ld 2.40"
    assert [objtool] in runner.calls
    enforce(result)


def test_objtool_missing_names_the_package(tmp_path):
    root, tree = _debian(tmp_path, GNU_TREE)
    result, _ = _run(tmp_path, root, tree, outputs={("ld", "--version"): GNU_LD})
    f = by_subject(result)["objtool"]
    assert f.status is Status.FAIL and f.packages == ("linux-kbuild-6.1",)
    assert "is missing (the kernel has CONFIG_OBJTOOL" in f.message
    with pytest.raises(ToolchainUnfit) as exc:
        enforce(result)
    assert exc.value.exit_code == 16 and "objtool" in exc.value.message and "linux-kbuild-6.1" in exc.value.hint
    assert "\n" not in exc.value.message


@pytest.mark.parametrize("tools, says", [
    ([], "tools: list, not dict"),
    ({"by_id": {"debian": {"host_programs": "linux-kbuild-{series}"}}}, "tools.by_id.debian.host_programs: not a list"),
    ({"by_manager": {"apt-get": {"host_programs": ["linux-kbuild-{X}"]}}}, "names {X}"),
])
def test_a_broken_tools_catalogue_is_bad_input(tmp_path, monkeypatch, tools, says):
    """The preflight reads the catalogue's typed tools: never an AttributeError, never the characters of a string."""
    import json
    import pkgutil

    from kbuildguard.errors import BadInput
    from kbuildguard.provision.plan import load_catalogue, packaged_catalogue

    raw = dict(load_catalogue(), tools=tools)
    monkeypatch.setattr(pkgutil, "get_data", lambda package, name: json.dumps(raw).encode())
    packaged_catalogue.cache_clear()
    root, tree = _debian(tmp_path, GNU_TREE)
    try:
        with pytest.raises(BadInput) as exc:
            _run(tmp_path, root, tree, outputs={("ld", "--version"): GNU_LD})
    finally:
        packaged_catalogue.cache_clear()
    assert says in exc.value.message


def test_a_host_program_that_cannot_start(tmp_path):
    root, tree = _debian(tmp_path, GNU_TREE)
    objtool = make_exe(os.path.join(tree, "tools/objtool/objtool"))
    broken = CommandFailed([objtool], None, 127, "objtool: error while loading shared libraries: libelf.so.1: cannot open")
    result, _ = _run(tmp_path, root, tree, outputs={("ld", "--version"): GNU_LD, (objtool,): broken})
    f = by_subject(result)["objtool"]
    assert f.status is Status.FAIL and "libelf.so.1" in f.message


def test_linker_family_and_version(tmp_path):
    lld_tree = ("CONFIG_LD_IS_LLD=y", "CONFIG_LLD_VERSION=160006", "CONFIG_LD_VERSION=0")
    root, tree = _debian(tmp_path, lld_tree)
    result, _ = _run(tmp_path, root, tree, outputs={("ld", "--version"): GNU_LD})
    f = by_subject(result)["ld"]
    assert f.status is Status.FAIL and "is GNU ld 2.40, but the kernel was linked by LLD 16.0.6" in f.message
    assert f.packages == ("lld-16",)  # the kernel's LLVM
    old = ("CONFIG_LD_IS_BFD=y", "CONFIG_LD_VERSION=23800")
    root2, tree2 = _debian(tmp_path / "b", old)
    result, _ = _run(tmp_path, root2, tree2, outputs={("ld", "--version"): GNU_LD})
    f = by_subject(result)["ld"]  # a newer binutils than the kernel's: said, not a stop
    assert f.status is Status.WARN and "is GNU ld 2.40, the kernel was linked by GNU ld 2.38" in f.message
    result, _ = _run(tmp_path, root2, tree2, outputs={("ld", "--version"): GNU_LD.replace("2.40", "2.36")})
    f = by_subject(result)["ld"]  # an older one: stop
    assert f.status is Status.FAIL and "an older X.Y" in f.message and f.packages == ("binutils",)
    result, _ = _run(tmp_path, root2, tree2, outputs={("ld", "--version"): GNU_LD.replace("2.40", "2.36")}, parts=1)
    assert by_subject(result)["ld"].status is Status.OK  # --match major


def test_compile_h_names_the_linker_when_kconfig_does_not(tmp_path):
    root, tree = _debian(tmp_path, compile_h="gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40")
    result, _ = _run(tmp_path, root, tree, outputs={("ld", "--version"): GNU_LD})
    assert by_subject(result)["ld"].status is Status.OK


CLANG_TREE = ("CONFIG_CC_IS_CLANG=y", "CONFIG_CLANG_VERSION=160006", "CONFIG_LD_IS_LLD=y", "CONFIG_LLD_VERSION=160006",
              "CONFIG_AS_IS_LLVM=y")


def test_clang_tree_wants_ld_lld_and_llvm_binutils_of_clangs_major(tmp_path):
    root, tree = _debian(tmp_path, CLANG_TREE, cc_text="Debian clang version 16.0.6 (15~deb12u1)", gcc_version=None)
    outputs = {("ld.lld-16", "--version"): LLD16, ("llvm-objcopy-16", "--version"): LLVM16_TOOL,
               ("llvm-strip-16", "--version"): LLVM16_TOOL.replace("15", "14").replace("16.0.6", "15.0.6")}
    result, _ = _run(tmp_path, root, tree, compiler=CLANG16, outputs=outputs)
    assert result.llvm.make_vars == ("LLVM=-16", "LLVM_IAS=1")
    found = by_subject(result)
    assert found["ld.lld-16"].status is Status.OK
    assert found["llvm-objcopy-16"].status is Status.OK
    assert found["llvm-strip-16"].status is Status.FAIL and found["llvm-strip-16"].packages == ("llvm-16",)


def test_a_missing_ld_lld_names_lld_n(tmp_path):
    root, tree = _debian(tmp_path, CLANG_TREE, cc_text="Debian clang version 16.0.6 (15~deb12u1)", gcc_version=None)
    outputs = {("llvm-objcopy-16", "--version"): LLVM16_TOOL, ("llvm-strip-16", "--version"): LLVM16_TOOL,
               ("ld.lld-16", "--version"): ToolNotFound("ld.lld-16 not found on PATH")}
    result, _ = _run(tmp_path, root, tree, compiler=CLANG16, outputs=outputs)
    fails = [f for f in result.failures() if f.check is Check.LINKER]
    assert fails and fails[0].packages == ("lld-16",) and "not on PATH" in fails[0].message


def test_gcc_plugin_built_by_another_gcc(tmp_path):
    root, tree = _debian(tmp_path, GNU_TREE[:3] + ("CONFIG_GCC_PLUGINS=y",))
    plugin = make_exe(os.path.join(tree, "scripts/gcc-plugins/stackleak_plugin.so"))
    argv = ("/usr/bin/gcc-12", "-fplugin=" + plugin, "-x", "c", "-c", "-o", os.devnull, os.devnull)
    refused = CommandFailed(list(argv), None, 1, "cc1: error: incompatible gcc/plugin versions\n"
                                                 "cc1: error: fail to initialize plugin %s\n" % plugin)
    result, _ = _run(tmp_path, root, tree, outputs={("ld", "--version"): GNU_LD, argv: refused})
    f = by_subject(result)["scripts/gcc-plugins/stackleak_plugin.so"]
    assert f.status is Status.FAIL and "incompatible gcc/plugin versions" in f.message
    assert f.packages == ("gcc-12-plugin-dev",)
    result, _ = _run(tmp_path, root, tree, outputs={("ld", "--version"): GNU_LD, argv: ""})
    assert not result.failures()


BTF_TREE = GNU_TREE[:3] + ("CONFIG_DEBUG_INFO_BTF=y", "CONFIG_DEBUG_INFO_BTF_MODULES=y", "CONFIG_PAHOLE_VERSION=124")


def test_pahole_only_when_module_btf_will_be_made(tmp_path):
    root, tree = _debian(tmp_path, BTF_TREE)
    result, runner = _run(tmp_path, root, tree, outputs={("ld", "--version"): GNU_LD})
    assert ["pahole", "--version"] not in runner.calls  # no vmlinux, no --btf: kbuild skips module BTF
    note = by_subject(result)["module BTF"]
    assert note.status is Status.NOTE and "Skipping BTF generation" in note.message and "harmless" in note.message


def test_pahole_version_mismatch_with_btf(tmp_path):
    root, tree = _debian(tmp_path, BTF_TREE[:-1] + ("CONFIG_PAHOLE_VERSION=125",))
    resolve_btfids = make_exe(os.path.join(tree, "tools/bpf/resolve_btfids/resolve_btfids"))
    os.makedirs(os.path.join(root, "boot"))
    with open(os.path.join(root, "boot/vmlinuz-" + RELEASE), "wb") as f:
        f.write(RAW_BTF)
    outputs = {("ld", "--version"): GNU_LD, ("pahole", "--version"): "v1.24\n", (resolve_btfids,): (255, "usage")}
    result, _ = _run(tmp_path, root, tree, outputs=outputs, btf=True)
    f = by_subject(result)["pahole"]
    assert f.status is Status.FAIL and "is 1.24, the kernel's BTF was made by pahole 1.25" in f.message
    assert f.packages == ("dwarves",)
    assert result.btf_base is not None and result.btf_base.path.endswith("boot/vmlinuz-" + RELEASE)


def test_resolve_btfids_missing_from_debian_headers(tmp_path):
    root, tree = _debian(tmp_path, BTF_TREE)
    vmlinux = tmp_path / "btf"
    vmlinux.write_bytes(RAW_BTF)
    result, _ = _run(tmp_path, root, tree, outputs={("ld", "--version"): GNU_LD, ("pahole", "--version"): "v1.24\n"},
                     btf=True, vmlinux=str(vmlinux))
    f = by_subject(result)["resolve_btfids"]
    assert f.status is Status.FAIL and f.packages == ()  # Debian ships it in no package


def test_rustc_against_the_kernels_rust(tmp_path):
    rust = GNU_TREE[:3] + ("CONFIG_RUST=y", "CONFIG_RUSTC_VERSION_TEXT=rustc 1.62.0 (a8314ef7d 2022-06-27)")
    root, tree = _debian(tmp_path, rust)
    outputs = {("ld", "--version"): GNU_LD, ("rustc", "--version"): "rustc 1.63.0\n"}
    result, _ = _run(tmp_path, root, tree, outputs=outputs)
    assert by_subject(result)["rustc"].status is Status.WARN  # a C module does not run rustc
    mod = tmp_path / "mod"
    mod.mkdir()
    (mod / "m.rs").write_text("")
    result, _ = _run(tmp_path, root, tree, outputs=outputs, module_dir=str(mod))
    f = by_subject(result)["rustc"]
    assert f.status is Status.FAIL and f.packages == ("rustc",) and "1.63.0" in f.message


# -- module BTF's base: the target's own BTF, never another kernel's

def _target(tmp_path, running, with_image=True):
    root, tree = _debian(tmp_path, BTF_TREE)
    if with_image:
        os.makedirs(os.path.join(root, "boot"), exist_ok=True)
        with open(os.path.join(root, "boot/vmlinuz-" + RELEASE), "wb") as f:
            f.write(RAW_BTF)
    return resolve(Selector(kernel=RELEASE, sysroot=root))._replace(running=running)


def test_btf_base_running_target_uses_sys_kernel_btf(tmp_path):
    sys_btf = tmp_path / "sys-btf"
    sys_btf.write_bytes(RAW_BTF)
    base = choose_base(_target(tmp_path, running=True), None, sys_btf=str(sys_btf))
    assert base.path == str(sys_btf) and "running kernel" in base.source


def test_btf_base_other_target_never_uses_the_running_kernels(tmp_path):
    sys_btf = tmp_path / "sys-btf"
    sys_btf.write_bytes(RAW_BTF)
    target = _target(tmp_path, running=False)
    base = choose_base(target, None, sys_btf=str(sys_btf))
    assert base.path.endswith("/boot/vmlinuz-" + RELEASE) and not base.in_tree
    assert choose_base(target, "/given/vmlinux", sys_btf=str(sys_btf)).path == "/given/vmlinux"
    with pytest.raises(NoBtfBase) as exc:
        choose_base(_target(tmp_path / "x", running=False, with_image=False), None, sys_btf=str(sys_btf))
    assert exc.value.exit_code == 17 and "harmless" in exc.value.hint


def test_btf_base_the_trees_own_vmlinux(tmp_path):
    target = _target(tmp_path, running=False, with_image=False)
    with open(os.path.join(target.build_dir, "vmlinux"), "wb") as f:
        f.write(b"\x7fELF")
    base = choose_base(target, None, sys_btf=str(tmp_path / "none"))
    assert base.in_tree


def test_private_objtree_leaves_the_tree_alone(tmp_path):
    target = _target(tmp_path, running=False)
    before = sorted(os.listdir(target.build_dir))
    base = choose_base(target, None, sys_btf=str(tmp_path / "none"))
    objtree = objtree_for(str(tmp_path / "stage" / "kdemo-key"))
    materialize(base, target.build_dir, objtree)
    materialize(base, target.build_dir, objtree)  # again: rebuilt, not stacked
    assert sorted(os.listdir(target.build_dir)) == before
    assert sorted(os.listdir(objtree)) == sorted(before + ["vmlinux"])
    assert os.path.realpath(os.path.join(objtree, "Makefile")) == os.path.join(target.build_dir, "Makefile")
    with open(os.path.join(objtree, "vmlinux"), "rb") as f:
        assert f.read() == RAW_BTF


def test_make_with_btf_runs_make_in_the_private_objtree(tmp_path):
    from kbuildguard.build.kbuild import make_command

    target = _target(tmp_path, running=False)
    base = choose_base(target, None, sys_btf=str(tmp_path / "none"))
    cmd = make_command(target, GCC12, "/stage/kdemo-1", "modules", [], {}, btf_base=base)
    assert cmd.argv[:4] == ["make", "-C", "/stage/kdemo-1.objtree", "M=/stage/kdemo-1"]
    assert make_command(target, GCC12, "/stage/kdemo-1", "modules", [], {}).argv[2] == target.build_dir


def test_tool_records():
    r = tool_records({"CONFIG_OBJTOOL": "y", "CONFIG_PAHOLE_VERSION": "124", "CONFIG_AS_IS_LLVM": "y",
                      "CONFIG_DEBUG_INFO_BTF_MODULES": "y", "CONFIG_GCC_PLUGINS": "y"})
    assert r.objtool and r.pahole == (1, 24) and r.assembler == "llvm" and r.module_btf and r.gcc_plugins
    assert tool_records({"CONFIG_STACK_VALIDATION": "y"}).objtool


def test_doctor_json_and_exit_code(tmp_path):
    import io
    import json

    from conftest import GCC12_MACROS, compiler_outputs
    from kbuildguard.cli import main

    root, tree = _debian(tmp_path, GNU_TREE)
    bindir = tmp_path / "bin"
    gcc12 = make_exe(bindir / "gcc-12")
    outputs = dict(compiler_outputs(gcc12, GCC12_MACROS, "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"))
    outputs.update(tree_outputs(tree))
    outputs[("ld", "--version")] = GNU_LD
    runner = FakeRunner(outputs)
    out, err = io.StringIO(), io.StringIO()
    code = main(["doctor", "--sysroot", root, "--kernel", RELEASE, "--json"], env={"PATH": str(bindir)}, stdout=out,
                stderr=err, runner=lambda console: runner, euid=0, cwd=str(tmp_path), stdin=io.StringIO())
    assert code == 16, err.getvalue()
    data = json.loads(out.getvalue())
    assert not data["ok"] and data["compiler"] == gcc12
    objtool = [c for c in data["checks"] if c["subject"] == "objtool"][0]
    assert objtool["status"] == "fail" and objtool["packages"] == ["linux-kbuild-6.1"]
    assert len([line for line in err.getvalue().splitlines() if line.startswith("toolchain preflight:")]) == 1


def test_kconfig_names_the_linker_when_compile_h_does_not(tmp_path):
    root, tree = _debian(tmp_path, CLANG_TREE, cc_text="Debian clang version 16.0.6 (15~deb12u1)", gcc_version=None)
    target = resolve(Selector(kernel=RELEASE, sysroot=root))
    assert (target.linker.name, target.linker.version) == ("LLD", "16.0.6")
