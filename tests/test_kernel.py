import os

import pytest

from conftest import make_tree
from elfbuild import build_module
from kbuildguard.errors import BadInput, KernelNotFound
from kbuildguard.target.kconfig import read as read_kconfig
from kbuildguard.target.kernel import Selector, installed_releases, resolve


def test_tree_sources_in_priority_order(tmp_path):
    tree = make_tree(tmp_path / "t", compile_h="gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40")
    t = resolve(Selector(kernel_dir=tree))
    assert t.release == "6.1.0-56-amd64"
    assert t.arch == "x86_64"
    assert t.compiler.describe() == "gcc 12.2.0 (Debian 12.2.0-14+deb12u1)"
    assert t.compiler_source == "include/config/auto.conf: CONFIG_CC_VERSION_TEXT"
    assert [f.source.split(":")[0] for f in t.facts] == [
        "include/config/auto.conf", ".config", "include/generated/compile.h", "include/config/auto.conf"]
    assert (t.linker.name, t.linker.version) == ("GNU ld", "2.40")
    assert t.notes == ()


def test_quoted_and_unquoted_cc_version_text(tmp_path):
    for quoted in (True, False):
        tree = make_tree(tmp_path / str(quoted), quote_autoconf=quoted)
        assert resolve(Selector(kernel_dir=tree)).compiler.version == "12.2.0"


def test_config_compiler_header_of_4_19_5_7(tmp_path):
    tree = make_tree(tmp_path / "t", cc_text=None, gcc_version="80301", config_header="gcc (GCC) 8.3.1 20190311 (Red Hat 8.3.1-3)",
                     arch_config="CONFIG_ARM64")
    t = resolve(Selector(kernel_dir=tree))
    assert t.compiler_source == ".config: '# Compiler:' header"
    assert t.compiler.vendor == "Red Hat 8.3.1-3"
    assert t.arch == "aarch64"


def test_disagreement_is_reported(tmp_path):
    tree = make_tree(tmp_path / "t", compile_h="gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-4)")
    t = resolve(Selector(kernel_dir=tree))
    assert any("disagree" in n and "8.5.0" in n for n in t.notes)


def test_rhel7_tree_falls_back_to_in_tree_modules(tmp_path):
    root = tmp_path / "root"
    release = "3.10.0-1160.el7.x86_64"
    tree = make_tree(root / ("usr/src/kernels/" + release), cc_text=None, gcc_version=None, release=release)
    mod_dir = root / ("lib/modules/%s/kernel/fs/xfs" % release)
    mod_dir.mkdir(parents=True)
    (mod_dir / "xfs.ko").write_bytes(build_module(comment=["GCC: (GNU) 4.8.5 20150623 (Red Hat 4.8.5-44)"]))
    os.symlink("/usr/src/kernels/" + release, str(root / ("lib/modules/%s/build" % release)))
    t = resolve(Selector(sysroot=str(root)))
    assert t.release == release
    assert t.build_dir == tree
    assert t.compiler.describe() == "gcc 4.8.5 (Red Hat 4.8.5-44)"
    assert t.compiler_source.startswith("in-tree module kernel/fs/xfs/xfs.ko")


def test_sysroot_proc_version_and_no_tree(tmp_path):
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc/version").write_text("Linux version 4.18.0-147.8.1.el7.aarch64 (mockbuild@aarch64-02.bsys.centos.org) "
                                       "(gcc version 8.3.1 20190311 (Red Hat 8.3.1-3) (GCC)) #1 SMP Wed Apr 15 18:13:44 UTC 2020\n")
    t = resolve(Selector(sysroot=str(root)))
    assert t.build_dir is None
    assert t.release == "4.18.0-147.8.1.el7.aarch64"
    assert t.compiler.vendor == "Red Hat 8.3.1-3"
    assert not t.running


def test_running_kernel_without_tree_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr("kbuildguard.target.kernel.running_release", lambda: "9.9.9-test")
    with pytest.raises(KernelNotFound) as exc:
        resolve(Selector(sysroot=str(tmp_path), kernel="9.9.9-test"))
    assert "/lib/modules/9.9.9-test/build" in exc.value.message
    monkeypatch.setattr("kbuildguard.target.kernel.read_proc_version", lambda p: (_ for _ in ()).throw(BadInput("no")))
    with pytest.raises(KernelNotFound) as exc:
        resolve(Selector())
    assert "9.9.9-test" in exc.value.message and "/lib/modules/9.9.9-test/build" in exc.value.message
    assert "linux-headers-9.9.9-test" in exc.value.hint and "kernel-devel-9.9.9-test" in exc.value.hint


def test_proc_version_file_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("")
    binary = tmp_path / "bin"
    binary.write_bytes(b"\x7fELF\x00\x00\x01")
    for path in (str(empty), str(binary), str(tmp_path / "missing")):
        with pytest.raises(BadInput):
            resolve(Selector(proc_version_file=path))


def test_kernel_dir_that_is_not_a_tree(tmp_path):
    with pytest.raises(KernelNotFound):
        resolve(Selector(kernel_dir=str(tmp_path)))


def test_broken_build_symlink(tmp_path):
    root = tmp_path / "root"
    (root / "lib/modules/5.0.0").mkdir(parents=True)
    os.symlink("/nonexistent/tree", str(root / "lib/modules/5.0.0/build"))
    assert installed_releases(str(root)) == []
    with pytest.raises(KernelNotFound):
        resolve(Selector(sysroot=str(root), kernel="5.0.0"))


def test_kernel_release_must_not_be_a_path():
    with pytest.raises(BadInput):
        resolve(Selector(kernel="../../etc"))


def test_read_kconfig_not_set_and_quotes(tmp_path):
    p = tmp_path / ".config"
    p.write_text('CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="x \\"y\\""\n')
    assert read_kconfig(str(p)) == {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": 'x "y"'}


def test_build_root_never_uses_this_machines_proc_version(tmp_path, monkeypatch):
    """In mock/chroot/containers uname -r and /proc/version describe the host, not the target."""
    tree = make_tree(tmp_path / "t", release="4.18.0-477.10.1.el8_8.x86_64", cc_text="gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-18)")
    monkeypatch.setattr("kbuildguard.target.kernel.read_proc_version", lambda p: (_ for _ in ()).throw(AssertionError("read " + p)))
    t = resolve(Selector(kernel_dir=tree))
    assert not t.running
    assert all("proc/version" not in f.source for f in t.facts)
