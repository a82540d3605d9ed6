"""Issue 22 (the tester's second round): which commands read kbuildguard.toml, and empty values.

Both rules are iterated over the parser's own commands and options, so that a command or an option
added later is covered without editing this file.
"""

import json

import pytest
from test_first_impressions import _module, run

from conftest import make_tree
from kbuildguard import cli, settings
from kbuildguard.cli import command_parsers

COMMANDS = sorted(command_parsers(cli.build_parser()))
READERS = {"make", "init", "setup"}  # the commands that work *on* a module repository


def test_the_parser_has_commands():
    assert {"make", "check", "sign", "detect", "explain", "doctor", "setup", "init"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_only_repository_commands_read_the_project_file(command):
    assert settings.reads_project_file(command) == (command in READERS)


def _positionals(command, ko):
    """The least each command takes: its required arguments, a module file for each."""
    values = []
    for action in command_parsers(cli.build_parser())[command]._actions:
        if not action.option_strings and action.nargs in (None, "+"):
            values.append(ko)
    return values


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in READERS])
def test_a_broken_or_loosening_project_file_changes_no_other_command(capsys, tmp_path, command):
    tree = make_tree(tmp_path / "tree")
    ko = _module(tmp_path)
    repo = tmp_path / "cloned"
    repo.mkdir()
    argv = [command] + _positionals(command, ko)
    if "--kernel-dir" in command_parsers(cli.build_parser())[command]._option_string_actions:
        argv += ["--kernel-dir", tree]
    if "--dmesg" in command_parsers(cli.build_parser())[command]._option_string_actions:
        (tmp_path / "dmesg.txt").write_text("")
        argv += ["--dmesg", str(tmp_path / "dmesg.txt")]  # a log given: no dmesg run (unit tests start no process)
    (repo / "kbuildguard.toml").write_text("[kbuildguard\nmatch = \n")  # broken
    code, _, err = run(capsys, *argv, cwd=str(repo))
    assert code != 12 and "kbuildguard.toml: " not in err and "settings from %s" % repo not in err, (code, err)
    (repo / "kbuildguard.toml").write_text("[kbuildguard]\nmatch = \"major\"\n")  # loosening
    code, _, err = run(capsys, *argv, cwd=str(repo))
    assert "settings from %s" % repo not in err and "match = 'major'" not in err, err


@pytest.mark.parametrize("command", ["detect", "sign", "doctor"])
def test_match_major_in_the_current_folder_is_not_taken(capsys, tmp_path, command):
    tree = make_tree(tmp_path / "tree")
    repo = tmp_path / "cloned"
    repo.mkdir()
    (repo / "kbuildguard.toml").write_text("[kbuildguard]\nmatch = \"major\"\n")
    argv = [command, "--kernel-dir", tree, "--json"] + ([_module(tmp_path)] if command == "sign" else [])
    code, out, err = run(capsys, *argv, cwd=str(repo))
    assert "kbuildguard.toml is not read: %s takes its settings" % command in err, err
    if out.strip():
        assert json.loads(out)["settings"]["match"] == {"value": "version", "origin": "default"}


def test_explain_does_not_read_the_current_folders_file(capsys, tmp_path):
    repo = tmp_path / "cloned"
    repo.mkdir()
    (repo / "kbuildguard.toml").write_text("[kbuildguard\n")
    (tmp_path / "dmesg.txt").write_text("")
    code, _, err = run(capsys, "explain", _module(tmp_path), "--kernel-dir", make_tree(tmp_path / "tree"),
                       "--dmesg", str(tmp_path / "dmesg.txt"), cwd=str(repo))
    assert code != 12 and "kbuildguard.toml is not read: explain" in err, err


# --- empty values: every option and argument of every command, every KBUILDGUARD_* --------------------

def _valued_options():
    for command, parser in sorted(command_parsers(cli.build_parser()).items()):
        for action in parser._actions:
            if action.option_strings and action.nargs != 0 and action.choices is None and action.dest != "help":
                yield command, action.option_strings[-1]


@pytest.mark.parametrize("command,option", list(_valued_options()))
@pytest.mark.parametrize("blank", ["", " "])
def test_an_empty_option_value_is_a_usage_error(capsys, tmp_path, command, option, blank):
    argv = [command] + _positionals(command, str(tmp_path / "x.ko")) + [option, blank]
    code, _, err = run(capsys, *argv)
    assert code == 2, (argv, code, err)
    assert "usage error: %s" % option in err and "was given an empty value" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, *(argv[:-2] + ["%s=%s" % (option, blank)])) if option.startswith("--") else (2, "", "")
    assert code == 2


@pytest.mark.parametrize("command", [c for c in COMMANDS if _positionals(c, "x")])
def test_an_empty_argument_is_a_usage_error(capsys, command):
    code, _, err = run(capsys, *[command] + _positionals(command, ""))
    assert code == 2 and "was given an empty value" in err, err


def test_kernel_empty_is_not_the_running_kernel(capsys):
    code, _, err = run(capsys, "detect", "--kernel", "")
    assert code == 2 and "--kernel was given an empty value" in err


@pytest.mark.parametrize("name", settings.ENVIRONMENT)
def test_an_empty_environment_setting_is_an_error(capsys, name):
    code, _, err = run(capsys, "detect", env={"PATH": "/nonexistent", name: ""})
    assert code == 12, err
    assert "%s is set but empty" % name in err and len(err.strip().splitlines()) <= 2  # the line and its hint


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("env,message", [({"KBUILDGUARD_KERNEL": ""}, "KBUILDGUARD_KERNEL is set but empty"),
                                         ({"KBUILDGUARD_KERNLE": "6.1"}, "unknown environment setting(s) KBUILDGUARD_KERNLE")])
def test_every_command_checks_the_environment_by_one_rule(capsys, tmp_path, command, env, message):
    """issue 22 (tester): `fetch` and `rpm-macros` took an empty or misspelt KBUILDGUARD_* silently."""
    argv = [command] + _positionals(command, str(tmp_path / "x.ko"))
    code, _, err = run(capsys, *argv, env=dict(env, HOME=str(tmp_path), PATH="/nonexistent"), cwd=str(tmp_path))
    assert code == 12 and message in err, (command, code, err)
