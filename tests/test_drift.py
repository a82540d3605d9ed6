"""Header drift (target/drift.py): which configuration is the kernel's, and what differs from the tree."""

import gzip
import os

from conftest import make_tree
from kbuildguard.target import drift, kconfig
from kbuildguard.target.kernel import Selector, resolve


def target(tmp_path, release="6.1.0-56-amd64"):
    return resolve(Selector(kernel_dir=make_tree(tmp_path / "tree", release=release)))


def path_of(t, explicit=None):
    return kconfig.kernel_config_path(t.release, t.sysroot, t.running, explicit)


def read_of(t, explicit=None):
    return kconfig.read_kernel(t.release, t.sysroot, t.running, explicit)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_the_kernels_config_given_wins(tmp_path):
    t = target(tmp_path)
    assert path_of(t, "/given/config") == "/given/config"


def test_the_kernels_config_from_boot_under_the_sysroot(tmp_path):
    t = target(tmp_path)._replace(sysroot=str(tmp_path / "root"), running=False)
    assert path_of(t) is None
    boot = write(tmp_path / "root" / "boot" / "config-6.1.0-56-amd64", "CONFIG_SMP=y\n")
    assert path_of(t) == boot


def test_proc_config_only_for_the_running_kernel(tmp_path, monkeypatch):
    t = target(tmp_path)._replace(sysroot="/")
    seen = []

    def isfile(path):
        seen.append(path)
        return path == "/proc/config.gz"

    monkeypatch.setattr(os.path, "isfile", isfile)
    assert path_of(t._replace(running=True)) == "/proc/config.gz"
    assert seen[0] == "/boot/config-6.1.0-56-amd64"  # /boot first, with no sysroot prefix
    assert path_of(t._replace(running=False)) is None


def test_nothing_to_compare_with(tmp_path):
    t = target(tmp_path)._replace(sysroot=str(tmp_path / "empty-root"), running=False)
    assert read_of(t) is None and drift.compare(None, t.tree_config) is None
    given = read_of(t, write(tmp_path / "k.config", "CONFIG_SMP=y\n"))
    assert given is not None and given.values == {"CONFIG_SMP": "y"}
    assert drift.compare(given, {}) is None


def test_drift_is_pure_the_configuration_travels_apart(tmp_path):
    """issue 21: the kernel's configuration is not carried in the drift result (kconfig reads it,
    the caller hands it to the loader's gates)."""
    assert "kernel" not in drift.Drift._fields
    t = target(tmp_path)
    found = drift.compare(kconfig.KernelConfig("/k", dict(t.tree_config)), t.tree_config)
    assert found == drift.Drift("/k", (), 0)


def test_struct_module_options_are_named_and_others_counted(tmp_path):
    t = target(tmp_path)
    tree = dict(t.tree_config)
    tree.update({"CONFIG_KALLSYMS": "y", "CONFIG_PRINTK_INDEX": "n", "CONFIG_FOO": "y"})
    kernel_lines = ["%s=%s" % kv for kv in sorted(t.tree_config.items())
                    if not kv[0].startswith(("CONFIG_CC_VERSION_TEXT", "CONFIG_GCC_VERSION"))]
    kernel_lines += ["CONFIG_JUMP_LABEL=y", "CONFIG_BAR=m", 'CONFIG_CC_VERSION_TEXT="gcc-12 (other) 12.2.0"']
    kpath = write(tmp_path / "kernel.config", "\n".join(kernel_lines) + "\n")
    kernel = read_of(t, kpath)
    assert kernel is not None and kernel.values["CONFIG_JUMP_LABEL"] == "y"
    found = drift.compare(kernel, tree)
    assert found is not None and found.kernel_config == kpath
    # KALLSYMS: y in the tree only; JUMP_LABEL: y in the kernel only; PRINTK_INDEX=n is "unset" on both sides
    assert found.abi == (("CONFIG_JUMP_LABEL", "y", ""), ("CONFIG_KALLSYMS", "", "y"))
    # FOO and BAR differ; the compiler's own version texts never count
    assert found.other == 2
    assert found.describe() == ("CONFIG_JUMP_LABEL y in the kernel, unset in the tree, "
                                "CONFIG_KALLSYMS unset in the kernel, y in the tree")


def test_the_same_configuration_does_not_drift(tmp_path):
    t = target(tmp_path)
    kpath = tmp_path / "config.gz"
    with gzip.open(str(kpath), "wt") as f:
        f.write("".join("%s=%s\n" % kv for kv in t.tree_config.items()))
    found = drift.compare(read_of(t, str(kpath)), t.tree_config)
    assert found is not None and found.abi == () and found.other == 0 and found.describe() == ""
