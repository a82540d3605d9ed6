"""Issue 22 (tester): --kernel-config is refused when it is not one kernel's configuration (two
architecture symbols) or names another kernel than the target (its header, CONFIG_LOCALVERSION)."""

import pytest

from kbuildguard.arch import Arch
from kbuildguard.errors import BadInput
from kbuildguard.target import kconfig

HEADER = "#\n# Automatically generated file; DO NOT EDIT.\n# Linux/%s %s Kernel Configuration\n#\n"


def _config(tmp_path, text: str) -> str:
    path = tmp_path / "config"
    path.write_text(text + "CONFIG_MODULES=y\n")
    return str(path)


def test_two_architectures_are_refused_naming_both(tmp_path):
    path = _config(tmp_path, "CONFIG_X86_64=y\nCONFIG_ARM64=y\n")
    for target in (None, Arch.X86_64):
        with pytest.raises(BadInput) as exc:
            kconfig.read_named(path, target)
        assert "sets more than one architecture: CONFIG_ARM64=y (arm64), CONFIG_X86_64=y (x86_64)" in exc.value.message
        assert "\n" not in exc.value.message


def test_user_mode_linux_on_x86_64_is_one_architecture(tmp_path):
    # arch/x86/um/Kconfig: "config X86_64" beside arch/um/Kconfig's "config UML"
    assert kconfig.read_named(_config(tmp_path, "CONFIG_UML=y\nCONFIG_X86_64=y\n"))["CONFIG_UML"] == "y"


def test_a_header_of_another_version_is_refused_naming_both(tmp_path):
    path = _config(tmp_path, HEADER % ("x86", "5.10.223") + "CONFIG_X86_64=y\n")
    with pytest.raises(BadInput) as exc:
        kconfig.read_named(path, Arch.X86_64, "6.1.0-57-amd64")
    assert "is the configuration of Linux 5.10 (its header: Linux/x86 5.10), the target kernel is 6.1.0-57-amd64" \
        in exc.value.message


@pytest.mark.parametrize("release,version", [("6.1.0-57-amd64", "6.1.192"), ("4.18.0-348.el8.x86_64", "4.18.0"),
                                             ("6.6.7", "6.6.7"), ("6.8.0-rc1+", "6.8.0-rc1")])
def test_the_targets_own_header_passes(tmp_path, release, version):
    path = _config(tmp_path, HEADER % ("x86", version) + "CONFIG_X86_64=y\nCONFIG_LOCALVERSION=\"\"\n")
    assert kconfig.read_named(path, Arch.X86_64, release)["CONFIG_X86_64"] == "y"


def test_a_localversion_the_release_lacks_is_refused(tmp_path):
    path = _config(tmp_path, HEADER % ("arm64", "6.1.21") + "CONFIG_ARM64=y\nCONFIG_LOCALVERSION=\"-v8\"\n")
    assert kconfig.read_named(path, Arch.AARCH64, "6.1.21-v8+")
    with pytest.raises(BadInput, match="CONFIG_LOCALVERSION='-v8' is not part of the target release 6.1.21-rt"):
        kconfig.read_named(path, Arch.AARCH64, "6.1.21-rt")


WHOLE = (HEADER % ("x86", "6.1.192") + "CONFIG_X86_64=y\n\n#\n# General setup\n#\nCONFIG_MODULES=y\n"
         "# end of General setup\n\n#\n# Kernel hacking\n#\n# CONFIG_DEBUG_KERNEL is not set\n# end of Kernel hacking\n")


def test_a_whole_configuration_passes(tmp_path):
    path = tmp_path / "config"
    path.write_text(WHOLE)
    assert kconfig.read_named(str(path), Arch.X86_64, "6.1.0-57-amd64")["CONFIG_MODULES"] == "y"


def test_a_configuration_cut_off_is_refused(tmp_path):
    """Debian's config cut at line 897 (issue 22's re-test): CONFIG_MODULES is there, MODULE_SIG* are not,
    and the gates gave a false 'rejected'. conf_write() closes "Kernel hacking" last (v5.1+)."""
    path = tmp_path / "config"
    path.write_text(WHOLE[:WHOLE.index("\n#\n# Kernel hacking")] + "\n")
    with pytest.raises(BadInput) as exc:
        kconfig.read_named(str(path), Arch.X86_64)
    assert exc.value.message == ("%s is cut off: it has no '# end of Kernel hacking', the last menu every kernel's "
                                 ".config closes (12 lines; the last: # end of General setup)" % path)


def test_a_configuration_without_menu_comments_is_not_judged_cut(tmp_path):
    # auto.conf, and .config before v5.1, have no "# end of" lines
    path = tmp_path / "auto.conf"
    path.write_text(HEADER % ("x86", "6.1.192") + "CONFIG_X86_64=y\nCONFIG_MODULES=y\n")
    assert kconfig.read_named(str(path), Arch.X86_64)


def test_a_second_header_is_refused_naming_both(tmp_path):
    path = tmp_path / "config"
    path.write_text(WHOLE + "# Linux/arm64 6.1.0 Kernel Configuration\n")
    with pytest.raises(BadInput) as exc:
        kconfig.read_named(str(path), Arch.X86_64)
    assert "holds 2 configuration headers (line 3: Linux/x86 6.1, line 18: Linux/arm64 6.1): two configurations " \
        "joined" in exc.value.message
