"""Issue 22: --kernel-config knows every architecture of 6.1's arch/*/Kconfig, and refuses another
architecture's configuration than the target kernel's."""

import pytest
from test_first_impressions import _module, run

from conftest import make_tree
from kbuildguard import arch
from kbuildguard.arch import Arch
from kbuildguard.errors import BadInput
from kbuildguard.target import kconfig

# the arch/ folders of Linux 6.1 (ls arch/ of linux-source-6.1): each has its symbol in the table
ARCH_FOLDERS = ("alpha", "arc", "arm", "arm64", "csky", "hexagon", "ia64", "loongarch", "m68k", "microblaze", "mips",
                "nios2", "openrisc", "parisc", "powerpc", "riscv", "s390", "sh", "sparc", "um", "x86", "xtensa")


def test_every_6_1_architecture_folder_has_a_symbol():
    named = {v.split(" ")[0] for v in arch.KCONFIG_ARCHES.values()}
    assert {f for f in ARCH_FOLDERS if not any(n.startswith(f) for n in named)} == set()
    for modelled in Arch:  # and every architecture kbuildguard models is among them
        assert modelled.traits.kconfig in arch.KCONFIG_ARCHES


@pytest.mark.parametrize("symbol", sorted(arch.KCONFIG_ARCHES))
def test_a_configuration_of_any_architecture_is_one(tmp_path, symbol):
    path = tmp_path / "config"
    path.write_text("%s=y\nCONFIG_MODULES=y\n" % symbol)
    assert kconfig.read_named(str(path))[symbol] == "y"


@pytest.mark.parametrize("target,text", [
    (Arch.X86_64, "CONFIG_ARM64=y\n"),
    (Arch.AARCH64, "CONFIG_X86_64=y\nCONFIG_X86=y\n"),
    (Arch.PPC64LE, "CONFIG_PPC32=y\nCONFIG_PPC=y\n"),
    (Arch.PPC64LE, "CONFIG_PPC64=y\nCONFIG_CPU_BIG_ENDIAN=y\n"),  # the other byte order
    (Arch.PPC64, "CONFIG_PPC64=y\nCONFIG_CPU_LITTLE_ENDIAN=y\n"),
    (Arch.X86_64, "CONFIG_SPARC64=y\n"),
    (Arch.I686, "CONFIG_X86_64=y\n"),
])
def test_another_architectures_configuration_is_refused(tmp_path, target, text):
    path = tmp_path / "config"
    path.write_text(text + "CONFIG_MODULES=y\n")
    with pytest.raises(BadInput, match="is the configuration of another architecture"):
        kconfig.read_named(str(path), target)


def test_the_targets_own_configuration_passes(tmp_path):
    path = tmp_path / "config"
    path.write_text("CONFIG_PPC64=y\nCONFIG_CPU_LITTLE_ENDIAN=y\nCONFIG_MODULES=y\n")
    assert kconfig.read_named(str(path), Arch.PPC64LE)


@pytest.mark.parametrize("verb", ["check", "make"])
def test_an_arm64_configuration_for_an_x86_64_kernel_is_one_line_exit_3(capsys, tmp_path, verb):
    tree = make_tree(tmp_path / "tree")
    cfg = tmp_path / "arm64.config"
    cfg.write_text("CONFIG_ARM64=y\nCONFIG_64BIT=y\nCONFIG_MODULES=y\nCONFIG_MODVERSIONS=y\n")
    (tmp_path / "kbuildguard.toml").write_text('[[module]]\nname = "kdemo"\n')
    (tmp_path / "kdemo.c").write_text("/* module */\n")
    argv = ([verb, _module(tmp_path)] if verb == "check" else [verb, "-C", str(tmp_path), "--dry-run"])
    code, _, err = run(capsys, *argv + ["--kernel-dir", tree, "--kernel-config", str(cfg)])
    assert code == 3, err
    assert "is the configuration of another architecture: it sets CONFIG_ARM64=y (arm64), the target kernel is x86_64" in err
