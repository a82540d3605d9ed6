"""`kbuildguard doctor` on real trees with one piece removed or swapped each (issue 14): copies of
Debian's linux-headers (conftest.drifted_tree), the real gcc-11/gcc-12 and their plugin headers,
the real pahole. Each failure is one line naming the package that fixes it; the intact tree passes."""

import json
import os
import shutil
import subprocess

import pytest

from conftest import require
from integration.conftest import drifted_tree, image_root, kbuildguard, named_kdemo

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN_SRC = os.path.join(os.path.dirname(HERE), "data", "gcc-plugin", "kbg_plugin.c")


def _doctor(*argv, cwd=None):
    res = kbuildguard("doctor", "--json", *argv, cwd=cwd)
    data = json.loads(res.out)
    return res, {c["subject"]: c for c in data["checks"]}


def _fail_lines(res):
    return [line for line in res.err.splitlines() if line.startswith(("toolchain preflight:", "  - "))]


def test_intact_debian_headers_pass(debian_release, compilers):
    res, checks = _doctor("--kernel", debian_release)
    assert res.code == 0, res
    assert checks["objtool"]["status"] == "ok" and checks["ld"]["status"] == "ok"
    assert checks["module BTF"]["status"] == "note" and "harmless" in checks["module BTF"]["message"]


def _own_tools(dest, src_tools, drop=()):
    """Replace the copy's tools/ link by a folder of links to the real tools, less ``drop``."""
    os.unlink(os.path.join(dest, "tools"))
    os.makedirs(os.path.join(dest, "tools"))
    for name in os.listdir(src_tools):
        if name not in drop:
            os.symlink(os.path.join(src_tools, name), os.path.join(dest, "tools", name))


def test_objtool_deleted(debian_release, compilers, tmp_path):
    tree = drifted_tree(str(tmp_path / "tree"), debian_release, {})
    _own_tools(tree, os.path.realpath("/usr/src/linux-headers-%s/tools" % debian_release), drop=("objtool",))
    res, checks = _doctor("--kernel", debian_release, "--kernel-dir", tree)
    assert res.code == 16, res
    assert checks["objtool"]["status"] == "fail" and checks["objtool"]["packages"] == ["linux-kbuild-6.1"]
    assert "toolchain preflight: objtool: " in res.err and "linux-kbuild-6.1" in res.err
    # and make stops before the first compile, with the same line
    repo = named_kdemo(tmp_path, "kdemo_noobjtool")
    made = kbuildguard("make", "--kernel", debian_release, "--kernel-dir", tree, cwd=repo)
    assert made.code == 16, made
    assert "make -C" not in made.err and not os.path.exists(os.path.join(repo, "kdemo_noobjtool.ko"))


def _plugin(tmp_path, gcc):
    """tests/data/gcc-plugin/kbg_plugin.c built with ``gcc``'s plugin headers: by scripts/lib.sh gcc_plugins
    before the tests (the apt test removes gcc-11 and its plugin headers), else here."""
    prebuilt = os.path.join(os.environ.get("KBG_TEST_GCC_PLUGINS", "/nonexistent"), "kbg_plugin_%s.so" % gcc)
    if os.path.isfile(prebuilt):
        return prebuilt
    inc = subprocess.run([gcc, "-print-file-name=plugin"], stdout=subprocess.PIPE, check=True).stdout.decode().strip()
    require(os.path.isdir(inc + "/include") and shutil.which("g++-12") is not None,
            "%s-plugin-dev and g++-12 (scripts/lib.sh gcc_plugins)" % gcc)
    out = str(tmp_path / ("kbg_plugin_%s.so" % gcc))
    subprocess.run(["g++-12", "-shared", "-fPIC", "-fno-rtti", "-I" + inc + "/include", "-o", out, PLUGIN_SRC], check=True)
    return out


@pytest.mark.parametrize("built_by, ok", [("gcc-11", False), ("gcc-12", True)])
def test_gcc_plugin_built_by_another_gcc(debian_release, compilers, tmp_path, built_by, ok):
    """The kernel's gcc-12 must load the tree's plugins: one built with gcc-11's plugin headers is refused
    (`incompatible gcc/plugin versions`), one built with gcc-12's loads."""
    plugin = _plugin(tmp_path, built_by)
    tree = drifted_tree(str(tmp_path / "tree"), debian_release, {"CONFIG_GCC_PLUGINS": "y"})
    scripts = os.path.realpath("/usr/src/linux-headers-%s/scripts" % debian_release)
    os.unlink(os.path.join(tree, "scripts"))
    os.makedirs(os.path.join(tree, "scripts", "gcc-plugins"))
    for name in os.listdir(scripts):
        if name != "gcc-plugins":
            os.symlink(os.path.join(scripts, name), os.path.join(tree, "scripts", name))
    shutil.copy(plugin, os.path.join(tree, "scripts", "gcc-plugins", "kbg_plugin.so"))
    res, checks = _doctor("--kernel", debian_release, "--kernel-dir", tree)
    found = checks["scripts/gcc-plugins/kbg_plugin.so"]
    if ok:
        assert res.code == 0 and found["status"] == "ok", res
    else:
        assert res.code == 16 and found["status"] == "fail", res
        assert "incompatible gcc/plugin versions" in found["message"] and found["packages"] == ["gcc-12-plugin-dev"]
        assert len(_fail_lines(res)) == 1


def test_pahole_version_mismatch(debian_release, compilers, tmp_path):
    """CONFIG_PAHOLE_VERSION faked to 1.25 in a copy of the tree's config; pahole here is 1.24."""
    require(shutil.which("pahole") is not None, "pahole (dwarves)")
    image = os.path.join(image_root(debian_release), "boot", "vmlinuz-" + debian_release)
    require(os.path.isfile(image), "the unpacked linux-image-%s-unsigned" % debian_release)
    tree = drifted_tree(str(tmp_path / "tree"), debian_release, {"CONFIG_PAHOLE_VERSION": "125"})
    res, checks = _doctor("--kernel", debian_release, "--kernel-dir", tree, "--btf", "--vmlinux", image)
    assert res.code == 16, res
    assert checks["pahole"]["status"] == "fail" and checks["pahole"]["packages"] == ["dwarves"]
    assert "is 1.24, the kernel's BTF was made by pahole 1.25" in checks["pahole"]["message"]
    # Debian's headers ship no resolve_btfids: module BTF cannot be made from them at all
    assert checks["resolve_btfids"]["status"] == "fail"
    # the intact config: only resolve_btfids stands in the way
    res, checks = _doctor("--kernel", debian_release, "--btf", "--vmlinux", image)
    assert checks["pahole"]["status"] == "ok" and checks["resolve_btfids"]["status"] == "fail"
    assert checks["module BTF"]["message"].startswith("generated against --vmlinux")


def test_btf_base_for_a_target_that_is_not_running(debian_release, compilers, tmp_path):
    """Not the running kernel, no image given, none under /boot: no base, one line (exit 17) -- never
    this machine's /sys/kernel/btf/vmlinux."""
    res = kbuildguard("doctor", "--kernel", debian_release, "--btf")
    if os.path.isfile("/boot/vmlinuz-" + debian_release):
        pytest.skip("this machine has /boot/vmlinuz-%s" % debian_release)
    assert res.code == 17, res
    assert "/sys/kernel/btf/vmlinux" in res.err or "not the running kernel" in res.err


def test_btf_base_for_the_running_kernel(debian_release, compilers, tmp_path):
    """A tree that *is* the running kernel (a copy of the headers whose utsrelease.h says `uname -r`):
    module BTF's base is this machine's /sys/kernel/btf/vmlinux, laid into a private objtree."""
    from kbuildguard.build.modbtf import BtfBase, materialize

    require(os.path.isfile("/sys/kernel/btf/vmlinux"), "the running kernel's /sys/kernel/btf/vmlinux")
    running = os.uname().release
    tree = drifted_tree(str(tmp_path / "tree"), debian_release, {})
    with open(os.path.join(tree, "include/generated/utsrelease.h"), "w") as f:
        f.write('#define UTS_RELEASE "%s"\n' % running)
    res = kbuildguard("doctor", "--kernel", running, "--kernel-dir", tree, "--btf", "--json")
    data = json.loads(res.out)
    assert data["btf_base"]["path"] == "/sys/kernel/btf/vmlinux", res
    assert "the target is the running kernel" in data["btf_base"]["source"]
    objtree = str(tmp_path / "stage.objtree")
    materialize(BtfBase("/sys/kernel/btf/vmlinux", "", False), tree, objtree)
    with open(os.path.join(objtree, "vmlinux"), "rb") as f, open("/sys/kernel/btf/vmlinux", "rb") as g:
        assert f.read() == g.read()
    assert not os.path.exists(os.path.join(tree, "vmlinux"))
