"""The one settings cascade: command line > KBUILDGUARD_* > kbuildguard.toml > default, with origins."""

import pytest

from kbuildguard.errors import ConfigError, UsageError
from kbuildguard.project import parse_config
from kbuildguard.settings import ENVIRONMENT, CommandLine, FileSettings, Layer, resolve


def test_precedence_cli_env_file_default():
    proj = FileSettings(match="minor")
    assert resolve(CommandLine(), {}).match.value == "version"
    assert resolve(CommandLine(), {}, proj).match.value == "minor"
    assert resolve(CommandLine(), {"KBUILDGUARD_MATCH": "exact"}, proj).match.value == "exact"
    s = resolve(CommandLine(match="major"), {"KBUILDGUARD_MATCH": "exact"}, proj)
    assert s.match.value == "major" and s.match.origin == "--match" and s.match.layer is Layer.COMMAND_LINE
    assert resolve(CommandLine(), {}, proj).match.origin == "kbuildguard.toml [kbuildguard] match"


def test_unknown_environment_setting_is_an_error():
    with pytest.raises(ConfigError):
        resolve(CommandLine(), {"KBUILDGUARD_MATHC": "exact"})


def test_target_comes_whole_from_the_highest_layer():
    """--kernel R never combines with a KBUILDGUARD_KERNEL_DIR naming another tree (issue 10, row 4)."""
    s = resolve(CommandLine(kernel="6.1.0-57-cloud-amd64"), {"KBUILDGUARD_KERNEL_DIR": "/usr/src/linux-headers-6.1.0-57-amd64"})
    assert s.kernel.value == "6.1.0-57-cloud-amd64" and s.kernel_dir.value is None
    s = resolve(CommandLine(), {"KBUILDGUARD_KERNEL_DIR": "/nonexistent"}, FileSettings(kernel="6.1.0-57-amd64"))
    assert s.kernel.value is None and s.kernel_dir.describe() == "KBUILDGUARD_KERNEL_DIR=/nonexistent"
    s = resolve(CommandLine(kernel="R", kernel_dir="/tree"), {})
    assert (s.kernel.value, s.kernel_dir.value) == ("R", "/tree")  # one layer naming both: the tree must be R


@pytest.mark.parametrize("cli, env, expected", [
    (CommandLine(cc="gcc-12", make_args=("CC=gcc-12",)), {"CC": "clang"}, ("gcc-12", "--cc")),
    (CommandLine(make_args=("-j4", "CC=gcc-11")), {"KBUILDGUARD_CC": "gcc-10", "CC": "clang"}, ("gcc-11", "CC= make argument")),
    (CommandLine(), {"KBUILDGUARD_CC": "gcc-10", "CC": "clang"}, ("gcc-10", "KBUILDGUARD_CC")),
    (CommandLine(), {"CC": "clang"}, ("clang", "CC environment variable")),
    (CommandLine(), {}, (None, "default")),
])
def test_compiler_precedence(cli, env, expected):
    cc = resolve(cli, env).cc
    assert (cc.value, cc.origin) == expected


@pytest.mark.parametrize("key", ["cc", "kernel_dir"])
def test_a_repository_cannot_choose_programs(key):
    with pytest.raises(ConfigError) as exc:
        parse_config('[kbuildguard]\n%s = "/tmp/evil"\n' % key, "kbuildguard.toml")
    assert "not allowed" in exc.value.message


def test_bad_values_are_one_line_errors():
    with pytest.raises(ConfigError):
        resolve(CommandLine(), {"KBUILDGUARD_MATCH": "sloppy"})
    with pytest.raises(ConfigError):
        resolve(CommandLine(), {"KBUILDGUARD_KERNEL": "../../etc"})
    for name in ENVIRONMENT:  # issue 22: empty is an error, never "unset" (the running kernel, any compiler)
        for blank in ("", " "):
            with pytest.raises(ConfigError, match="%s is set but empty" % name):
                resolve(CommandLine(), {name: blank})


def test_as_json_names_every_origin():
    data = resolve(CommandLine(kernel="R"), {"KBUILDGUARD_LOG": "/tmp/l"}).as_json()
    assert data["kernel"] == {"value": "R", "origin": "--kernel"}
    assert data["log"] == {"value": "/tmp/l", "origin": "KBUILDGUARD_LOG"}
    assert data["scl_root"] == {"value": "/opt/rh", "origin": "default"}


@pytest.mark.parametrize("make_args,message", [
    (("CC=gcc-12", "CC=gcc-11"), "CC= is given 2 times after -- (CC=gcc-12, CC=gcc-11): GNU make would use the last"),
    (("CC=",), "CC= after -- was given an empty value"),
    (("CC= ",), "CC= after -- was given an empty value"),
    (("CC=ccache gcc-12",), "CC=ccache gcc-12 after -- is a command with arguments, not a compiler"),
])
def test_a_cc_after_the_dashes_that_cannot_be_taken_is_refused(make_args, message):
    """issue 22 (tester): `make -- CC=gcc-12 CC=gcc-11` said gcc-11 and built with gcc-12 (make takes the
    last); an empty CC= and 'CC=ccache gcc-12' were taken as they stood."""
    with pytest.raises(UsageError) as exc:
        resolve(CommandLine(make_args=make_args), {})
    assert message in exc.value.message and exc.value.exit_code == 2
