"""Issue 19, the independent re-test: each finding pinned (the rpmbuild and dkms halves are in
tests/integration/test_rpm_hooks.py and test_dkms_lock.py)."""

import os

from test_first_impressions import run

from kbuildguard.cli import build_parser, command_parsers

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
