"""A real clang-built kernel (issue 14): Debian's linux-source-6.1 built with `make LLVM=-16` (clang-16,
ld.lld-16, LLVM binutils; tinyconfig + tests/data/clang-kernel.config) by scripts/lib.sh clang_kernel,
booted in qemu-system-x86_64.

On its build tree kbuildguard must find clang 16 and LLD in the tree's records, choose clang-16 over
every gcc, pass LLVM=-16 LLVM_IAS=1, refuse --cc gcc-12 before building, and verify the .ko against
the kernel's BTF; the guest must agree with every verdict.
"""

import glob
import json
import os
import shutil
import subprocess

import pytest

from conftest import require
from integration.conftest import TOOLS, kbuildguard, named_kdemo
from integration.qemu import INSMOD_RMMOD, boot, have_qemu, initramfs, parse_report


def _tree():
    given = os.environ.get("KBG_TEST_CLANG_KERNEL")
    if given:
        return given
    found = sorted(glob.glob("/var/cache/kbuildguard-ci/clang-kernel-*/.done"))
    return os.path.join(os.path.dirname(found[-1]), "linux") if found else ""


@pytest.fixture(scope="module")
def tree():
    path = _tree()
    require(bool(path) and os.path.isfile(os.path.join(path, "vmlinux")),
            "the clang-built kernel tree (scripts/lib.sh clang_kernel, KBG_TEST_CLANG_KERNEL)")
    for tool in ("clang-16", "ld.lld-16", "llvm-objcopy-16", "gcc-12"):
        require(shutil.which(tool) is not None, tool)
    return path


def _listing(path):
    """What a build may not touch in the tree: its top level and the entries' mtimes."""
    return sorted((name, os.lstat(os.path.join(path, name)).st_mtime) for name in os.listdir(path))


def _has_section(ko, name):
    from kbuildguard.formats.elf import Elf

    with open(ko, "rb") as f:
        return Elf(f.read(), ko).section(name) is not None


def test_detect_reads_clang_and_lld_from_the_tree(tree):
    res = kbuildguard("detect", "--kernel-dir", tree, "--json")
    assert res.code == 0, res
    data = json.loads(res.out)
    compiler = data["kernel"]["compiler"]
    assert (compiler["family"], compiler["version"]) == ("clang", "16.0.6")
    assert data["kernel"]["linker"] == {"name": "LLD", "version": "16.0.6"}
    sources = [s["source"] for s in data["kernel"]["sources"]]
    assert any("compile.h" in s for s in sources) and any("CONFIG_CC_VERSION_TEXT" in s for s in sources)
    assert os.path.basename(data["selected"]) == "clang-16"  # over gcc, gcc-11, gcc-12


def test_doctor_on_the_clang_tree(tree):
    res = kbuildguard("doctor", "--kernel-dir", tree, "--json")
    assert res.code == 0, res
    data = json.loads(res.out)
    assert data["llvm"] == ["LLVM=-16", "LLVM_IAS=1"]
    checks = {c["subject"]: c for c in data["checks"]}
    linker = [c for c in data["checks"] if c["check"] == "linker"][0]
    assert linker["subject"] == "ld.lld-16" and linker["status"] == "ok", linker
    assert linker["message"] == "LLD 16.0.6, as the kernel's LLD 16.0.6"
    for name in ("llvm-objcopy-16", "llvm-strip-16", "objtool", "modpost", "fixdep", "pahole"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "own vmlinux" in checks["module BTF"]["message"]


def test_forced_gcc_is_refused_before_building(tree, tmp_path):
    repo = named_kdemo(tmp_path, "kdemo_gcc_forced")
    res = kbuildguard("make", "--kernel-dir", tree, "--cc", "gcc-12", cwd=repo)
    assert res.code == 6, res
    assert "refused before building" in res.err
    assert not glob.glob(os.path.join(repo, "*.ko"))


@pytest.fixture(scope="module")
def built(tree, tmp_path_factory):
    """kdemo built by kbuildguard (plain, and --btf with the image given), and by gcc-12 outside it."""
    tmp = str(tmp_path_factory.mktemp("clang-kernel"))
    before = _listing(tree)
    out = {}
    repo = named_kdemo(tmp, "kdemo_clang")
    res = kbuildguard("make", "--kernel-dir", tree, "--vmlinux", os.path.join(tree, "vmlinux"), cwd=repo)
    assert res.code == 0, res
    with open(os.path.join(repo, ".kbuildguard", "report.json")) as f:
        out["report"] = json.load(f)
    out["kdemo_clang"] = os.path.join(repo, "kdemo_clang.ko")
    # --btf with the base named: make runs in a private objtree, never in the tree
    repo = named_kdemo(tmp, "kdemo_btf")
    res = kbuildguard("make", "--kernel-dir", tree, "--btf", "--vmlinux", os.path.join(tree, "vmlinux"), cwd=repo)
    assert res.code == 0, res
    with open(os.path.join(repo, ".kbuildguard", "report.json")) as f:
        out["btf_report"] = json.load(f)
    out["kdemo_btf"] = os.path.join(repo, "kdemo_btf.ko")
    # gcc-12 against the clang tree, with plain make as a vendor would. kbuild only warns ("the compiler
    # differs"), but passes the clang kernel's flags (-Qunused-arguments, --target=...), which gcc rejects:
    # tests/tools/ccfilter.py drops those, as a vendor's build script would
    repo = named_kdemo(tmp, "kdemo_gcc", kbuildguard_toml=False)
    proc = subprocess.run(["make", "-C", tree, "M=" + repo, "CC=" + os.path.join(TOOLS, "ccfilter.py"), "modules"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, KBG_REAL_CC="gcc-12"))
    out["gcc_make"] = (proc.returncode, proc.stdout.decode("utf-8", "replace"))
    gcc_ko = os.path.join(repo, "kdemo_gcc.ko")
    if proc.returncode == 0 and os.path.isfile(gcc_ko):
        out["kdemo_gcc"] = gcc_ko
    out["tree_untouched"] = _listing(tree) == before
    out["tmp"] = tmp
    return out


def test_clang_build_uses_the_kernels_llvm(built):
    argv = built["report"]["make"]
    assert "LLVM=-16" in argv and "LLVM_IAS=1" in argv and any(a.endswith("clang-16") for a in argv if a.startswith("CC="))
    mod = built["report"]["modules"][0]
    checks = {c["name"]: c for c in mod["checks"]}
    assert checks["compiler"]["ok"] and checks["layout"]["ok"] and checks["layout"].get("checked", True)
    assert _has_section(built["kdemo_clang"], ".BTF")  # the tree's own vmlinux: kbuild made module BTF itself


def test_btf_uses_a_private_objtree(built, tree):
    argv = built["btf_report"]["make"]
    objtree = argv[argv.index("-C") + 1]
    assert objtree != tree and objtree.endswith(".objtree")
    assert os.path.realpath(os.path.join(objtree, "Makefile")) == os.path.realpath(os.path.join(tree, "Makefile"))
    assert _has_section(built["kdemo_btf"], ".BTF")
    assert built["tree_untouched"]


def test_gcc_module_is_refused_by_check(built, tree):
    code, log = built["gcc_make"]
    assert "kdemo_gcc" in built, "gcc-12 did not build against the clang tree (exit %d): %s" % (code, log[-400:])
    assert "the compiler differs from the one used to build the kernel" in log  # kbuild's only word
    res = kbuildguard("check", "--kernel-dir", tree, "--vmlinux", os.path.join(tree, "vmlinux"), "--json", built["kdemo_gcc"])
    assert res.code == 8, res
    checks = {c["name"]: c for c in json.loads(res.out)["modules"][0]["checks"]}
    assert not checks["compiler"]["ok"]


@pytest.fixture(scope="module")
def guest(built, tree):
    require(have_qemu(), "qemu-system-x86 and busybox-static")
    kos = {n: built[n] for n in ("kdemo_clang", "kdemo_btf", "kdemo_gcc") if n in built}
    res = kbuildguard("check", "--kernel-dir", tree, "--vmlinux", os.path.join(tree, "vmlinux"), "--json", *kos.values())
    verdicts = {os.path.basename(m["path"])[:-3]: {c["name"]: c for c in m["checks"]} for m in json.loads(res.out)["modules"]}
    # The kernel has no ACPI (tinyconfig): poweroff only halts it, so the script ends the boot with
    # reboot, which qemu's -no-reboot turns into an exit.
    script = INSMOD_RMMOD % " ".join(sorted(kos)) + '\ndmesg | grep -i -E "kdemo|btf" | sed "s/^/KBG-DMESG /"\n' \
        + "echo KBG-DONE\nreboot -f\n"
    cpio = initramfs(os.path.join(built["tmp"], "initramfs.cpio"), script, {"modules/%s.ko" % n: p for n, p in kos.items()})
    out = boot(os.path.join(tree, "arch/x86/boot/bzImage"), cpio)
    with open(os.path.join(built["tmp"], "serial.log"), "w") as f:
        f.write(out)
    assert "KBG-DONE" in out, out[-3000:]
    report = parse_report(out)
    return {"insmod": report["insmod"], "rmmod": report["rmmod"], "verdicts": verdicts, "out": out}


@pytest.mark.parametrize("name", ["kdemo_clang", "kdemo_btf"])
def test_clang_module_loads_and_unloads_in_the_clang_kernel(guest, name):
    assert guest["insmod"][name][0] == 0, guest["out"][-2000:]
    assert guest["rmmod"][name][0] == 0, guest["out"][-2000:]
    assert "failed to validate module" not in guest["out"]


def test_layout_verdicts_agree_with_the_guest(guest):
    for name, checks in guest["verdicts"].items():
        loaded_and_unloaded = guest["insmod"][name][0] == 0 and guest["rmmod"][name][0] == 0
        assert checks["layout"]["ok"] == loaded_and_unloaded, (name, checks["layout"], guest["out"][-2000:])


def test_gcc_module_same_layout_loads_but_is_refused(guest):
    """gcc-12's kdemo for the clang kernel: struct module has the same layout (the kernel says so by
    loading and unloading it), and kbuildguard still refuses it, for its compiler alone."""
    assert guest["insmod"]["kdemo_gcc"][0] == 0 and guest["rmmod"]["kdemo_gcc"][0] == 0
    checks = guest["verdicts"]["kdemo_gcc"]
    assert checks["layout"]["ok"] and not checks["compiler"]["ok"]
