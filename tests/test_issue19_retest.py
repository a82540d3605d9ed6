"""Issue 19, the independent re-test: each finding pinned (the rpmbuild and dkms halves are in
tests/integration/test_rpm_hooks.py and test_dkms_lock.py)."""

import os

import pytest
from test_build import machine  # noqa: F401 - the fixture
from test_first_impressions import run
from test_toolchainlock import GCC, _target

from kbuildguard.build import outputs, toolchainlock
from kbuildguard.cli import build_parser, command_parsers
from kbuildguard.errors import BadInput

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kbuildguard", "data")


# --- 1: rpm-macros gives every file the packages install ---------------------------------------

def test_rpm_macros_prints_each_file_the_packages_install(capsys):
    for word, name in (("macros", "macros.kbuildguard"), ("kmodtool", "macros.zz-kbuildguard-kmodtool"),
                       ("etc", "macros.zz-kbuildguard")):
        code, out, _ = run(capsys, "rpm-macros", "--file", word)
        assert code == 0 and out == open(os.path.join(DATA, name)).read(), word
    code, out, _ = run(capsys, "rpm-macros")
    assert out == open(os.path.join(DATA, "macros.kbuildguard")).read()


def test_rpm_macros_install_writes_all_three_where_rpm_reads_them(capsys, tmp_path):
    code, out, _ = run(capsys, "rpm-macros", "--install", "--root", str(tmp_path))
    assert code == 0, out
    for rel, name in (("usr/lib/rpm/macros.d/macros.kbuildguard", "macros.kbuildguard"),
                      ("usr/lib/rpm/macros.d/macros.zz-kbuildguard-kmodtool", "macros.zz-kbuildguard-kmodtool"),
                      ("etc/rpm/macros.zz-kbuildguard", "macros.zz-kbuildguard")):
        path = tmp_path / rel
        assert path.read_text() == open(os.path.join(DATA, name)).read()
        assert path.stat().st_mode & 0o777 == 0o644
    # again: ours, replaced
    assert run(capsys, "rpm-macros", "--install", "--root", str(tmp_path))[0] == 0


def test_rpm_macros_install_refuses_a_file_that_is_not_ours_and_writes_nothing(capsys, tmp_path):
    etc = tmp_path / "etc" / "rpm"
    etc.mkdir(parents=True)
    (etc / "macros.zz-kbuildguard").write_text("%_my_site_macro 1\n")
    code, _, err = run(capsys, "rpm-macros", "--install", "--root", str(tmp_path))
    assert code == 14 and "is not kbuildguard's: not overwritten" in err, err
    assert (etc / "macros.zz-kbuildguard").read_text() == "%_my_site_macro 1\n"
    assert not (tmp_path / "usr").exists()
    # a symlink is not ours either
    (etc / "macros.zz-kbuildguard").unlink()
    os.symlink("/dev/null", str(etc / "macros.zz-kbuildguard"))
    assert run(capsys, "rpm-macros", "--install", "--root", str(tmp_path))[0] == 14


def test_rpm_macros_usage_errors(capsys, tmp_path):
    assert run(capsys, "rpm-macros", "--root", str(tmp_path))[0] == 2
    assert run(capsys, "rpm-macros", "--install", "--file", "etc", "--root", str(tmp_path))[0] == 2


# --- 7: rpm-macros --help --------------------------------------------------------------------

def test_rpm_macros_help_has_no_doubled_percent_and_no_check_exit_table():
    text = command_parsers(build_parser())["rpm-macros"].format_help()
    assert "%%" not in text and "%kbuildguard_make" in text
    assert "a module does not match the kernel" not in text and "14  --install" in text


# --- 4: the shared staging folder under the temporary folder ------------------------------------

def _tmpdir(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)  # as /tmp
    return tmp


def _no_home(tmp_path):
    """A HOME no one can make a cache in, root included (sbuild's /sbuild-nonexistent; root could mkdir that)."""
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    return str(home)


def test_the_stage_fallback_is_private_and_made_0700(tmp_path):
    tmp = _tmpdir(tmp_path)
    env = {"HOME": _no_home(tmp_path), "TMPDIR": str(tmp)}
    root = outputs.stage_root(env, os.geteuid())
    assert root == str(tmp / ("kbuildguard-%d" % os.geteuid()) / "stage")
    for folder in (root, os.path.dirname(root)):
        assert os.stat(folder).st_mode & 0o777 == 0o700
    assert outputs.stage_root(env, os.geteuid()) == root  # again: ours


def test_a_stage_fallback_others_may_write_is_refused(tmp_path):
    """The tester: another user's 0777 /tmp/kbuildguard-UID/stage was built in (exit 0)."""
    tmp = _tmpdir(tmp_path)
    planted = tmp / ("kbuildguard-%d" % os.geteuid())
    (planted / "stage").mkdir(parents=True)
    for folder in (planted, planted / "stage"):
        folder.chmod(0o777)
        with pytest.raises(BadInput, match="is writable by group or others"):
            outputs.stage_root({"HOME": _no_home(tmp_path), "TMPDIR": str(tmp)}, os.geteuid())
        folder.chmod(0o700)
    outputs.stage_root({"HOME": _no_home(tmp_path), "TMPDIR": str(tmp)}, os.geteuid())


def test_a_stage_fallback_another_user_owns_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    tmp = _tmpdir(tmp_path)
    uid = 65534
    planted = tmp / ("kbuildguard-%d" % uid)
    planted.mkdir(mode=0o755)
    os.chown(str(planted), 1, 1)  # daemon's, made before nobody's first build
    with pytest.raises(BadInput, match="belongs to uid 1, not to you or root"):
        outputs.stage_root({"HOME": _no_home(tmp_path), "TMPDIR": str(tmp)}, uid)


# --- 5: a toolchain lock path with ':' -------------------------------------------------------

def test_a_toolchain_lock_path_with_a_colon_is_refused(tmp_path):
    lock = toolchainlock.plan(_target(), GCC, {"PATH": ""})
    with pytest.raises(BadInput, match="contains ':', which splits PATH"):
        toolchainlock.write(lock, str(tmp_path / "co:lon" / "lock"))
    assert not (tmp_path / "co:lon").exists()


# --- 7: make clean whatever the compiler; a control character in KBUILDGUARD_CC --------------

def test_make_clean_runs_with_a_compiler_a_build_would_refuse(machine):  # noqa: F811
    """DKMS's MAKE[0]="kbuildguard make ..." runs clean around every build with CC=gcc-12 exported;
    a wrong gcc-12 on PATH made it print "Cleaning build area...(bad exit status: 6)"."""
    from test_build import run as build_run

    code, _, err, runner = build_run(machine, "make", "--kernel-dir", machine["tree"], "clean",
                                     env={"KBUILDGUARD_CC": os.path.join(machine["bindir"], "gcc-11")})
    assert code == 0, err
    assert runner.makes[0][-1] == "clean" and "note: clean compiles nothing" in err, err
    # a build with it is still refused before building
    code, _, err, runner = build_run(machine, "make", "--kernel-dir", machine["tree"],
                                     env={"KBUILDGUARD_CC": os.path.join(machine["bindir"], "gcc-11")})
    assert code == 6 and runner.makes == [], err


@pytest.mark.parametrize("argv,env,code", [(["detect"], {"KBUILDGUARD_CC": "gcc-12\n"}, 12),
                                           (["detect"], {"CC": "gcc-12\x1b[2J"}, 12),
                                           (["detect", "--cc", "gcc-12\n"], {}, 2)])
def test_a_compiler_name_with_a_control_character_is_one_escaped_line(capsys, tmp_path, argv, env, code):
    got, _, err = run(capsys, *argv, env=dict(env, HOME=str(tmp_path), PATH="/nonexistent"), cwd=str(tmp_path))
    assert got == code and "contains control characters: not a compiler name" in err, err
    first = err.splitlines()[0]
    assert "\x1b" not in err and first.endswith("not a compiler name"), err
