"""Header drift (target/drift.py): which configuration is the kernel's, and what differs from the tree."""

import gzip
import os

from conftest import make_tree
from kbuildguard.target import drift
from kbuildguard.target.kernel import Selector, resolve


def target(tmp_path, release="6.1.0-56-amd64"):
    return resolve(Selector(kernel_dir=make_tree(tmp_path / "tree", release=release)))


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_the_kernels_config_given_wins(tmp_path):
    t = target(tmp_path)
    assert drift.kernel_config_path(t, "/given/config") == "/given/config"


def test_the_kernels_config_from_boot_under_the_sysroot(tmp_path):
    t = target(tmp_path)._replace(sysroot=str(tmp_path / "root"), running=False)
    assert drift.kernel_config_path(t) is None
    boot = write(tmp_path / "root" / "boot" / "config-6.1.0-56-amd64", "CONFIG_SMP=y\n")
    assert drift.kernel_config_path(t) == boot


def test_proc_config_only_for_the_running_kernel(tmp_path, monkeypatch):
    t = target(tmp_path)._replace(sysroot="/")
    seen = []

    def isfile(path):
        seen.append(path)
        return path == "/proc/config.gz"

    monkeypatch.setattr(os.path, "isfile", isfile)
    assert drift.kernel_config_path(t._replace(running=True)) == "/proc/config.gz"
    assert seen[0] == "/boot/config-6.1.0-56-amd64"  # /boot first, with no sysroot prefix
    assert drift.kernel_config_path(t._replace(running=False)) is None


def test_nothing_to_compare_with(tmp_path):
    t = target(tmp_path)._replace(sysroot=str(tmp_path / "empty-root"), running=False)
    assert drift.compare(t) is None
    assert drift.compare(t._replace(tree_config={}), write(tmp_path / "k.config", "CONFIG_SMP=y\n")) is None


def test_struct_module_options_are_named_and_others_counted(tmp_path):
    t = target(tmp_path)
    tree = dict(t.tree_config)
    tree.update({"CONFIG_KALLSYMS": "y", "CONFIG_PRINTK_INDEX": "n", "CONFIG_FOO": "y"})
    kernel_lines = ["%s=%s" % kv for kv in sorted(t.tree_config.items())
                    if not kv[0].startswith(("CONFIG_CC_VERSION_TEXT", "CONFIG_GCC_VERSION"))]
    kernel_lines += ["CONFIG_JUMP_LABEL=y", "CONFIG_BAR=m", 'CONFIG_CC_VERSION_TEXT="gcc-12 (other) 12.2.0"']
    kpath = write(tmp_path / "kernel.config", "\n".join(kernel_lines) + "\n")
    found = drift.compare(t._replace(tree_config=tree), kpath)
    assert found is not None and found.kernel_config == kpath
    # KALLSYMS: y in the tree only; JUMP_LABEL: y in the kernel only; PRINTK_INDEX=n is "unset" on both sides
    assert found.abi == (("CONFIG_JUMP_LABEL", "y", ""), ("CONFIG_KALLSYMS", "", "y"))
    # FOO and BAR differ; the compiler's own version texts never count
    assert found.other == 2
    assert found.describe() == ("CONFIG_JUMP_LABEL y in the kernel, unset in the tree, "
                                "CONFIG_KALLSYMS unset in the kernel, y in the tree")
    assert found.kernel["CONFIG_JUMP_LABEL"] == "y"


def test_the_same_configuration_does_not_drift(tmp_path):
    t = target(tmp_path)
    kpath = tmp_path / "config.gz"
    with gzip.open(str(kpath), "wt") as f:
        f.write("".join("%s=%s\n" % kv for kv in t.tree_config.items()))
    found = drift.compare(t, str(kpath))
    assert found is not None and found.abi == () and found.other == 0 and found.describe() == ""
