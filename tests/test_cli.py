"""The command line's contract: one clean line per error, the documented exit code, never a traceback."""

import json

import pytest

from conftest import make_tree
from elfbuild import build_module
from kbuildguard.cli import main
from kbuildguard.errors import EXIT_CODES


def run(capsys, *argv, env=None):
    code = main(list(argv), env=env if env is not None else {"PATH": "/nonexistent"})
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_version_and_help(capsys):
    assert run(capsys, "--version")[0] == 0
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for number, _ in EXIT_CODES:
        assert "%3d  " % number in out
    code, out, _ = run(capsys, "make", "--help")
    assert code == 0 and "examples:" in out


def test_usage_errors(capsys):
    assert run(capsys)[0] == 2
    assert run(capsys, "frobnicate")[0] == 2
    assert run(capsys, "detect", "--match", "sloppy")[0] == 2
    assert run(capsys, "check", "x.ko", "--", "CC=gcc")[0] == 2


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02\x03binary", b"Linux version", b"Linux version 6.1 (a@b) #1 SMP\n"])
def test_detect_bad_proc_version_file(capsys, tmp_path, content):
    f = tmp_path / "pv"
    f.write_bytes(content)
    code, _, err = run(capsys, "detect", "--proc-version-file", str(f))
    assert code == 3
    assert err.count("bad input:") == 1


def test_detect_missing_kernel(capsys, tmp_path):
    code, _, err = run(capsys, "detect", "--kernel-dir", str(tmp_path / "nope"))
    assert code == 4 and "no such directory" in err


def _target(tmp_path):
    return make_tree(tmp_path / "tree")


def test_check_passes_and_fails(capsys, tmp_path):
    tree = _target(tmp_path)
    good = tmp_path / "good.ko"
    good.write_bytes(build_module())
    assert run(capsys, "check", str(good), "--kernel-dir", tree)[0] == 0
    bad = tmp_path / "bad.ko"
    bad.write_bytes(build_module(comment=["GCC: (Debian 11.3.0-12) 11.3.0"]))
    code, out, err = run(capsys, "check", str(good), str(bad), "--kernel-dir", tree)
    assert code == 8
    assert "gcc 11.3.0 (Debian 11.3.0-12)" in out and "module rejected" in err


def test_check_json_contract(capsys, tmp_path):
    tree = _target(tmp_path)
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "a.ko").write_bytes(build_module())
    (mods / "b.ko").write_bytes(build_module(vermagic="6.1.0-9-amd64 SMP "))
    (mods / "c.ko").write_bytes(b"junk")
    code, out, _ = run(capsys, "check", str(mods), "--kernel-dir", tree, "--json")
    data = json.loads(out)
    assert code == 8
    verdicts = {m["path"].rsplit("/", 1)[1]: m["verdict"] for m in data["modules"]}
    assert verdicts == {"a.ko": "ok", "b.ko": "mismatch", "c.ko": "error"}
    check = [c for c in data["modules"][1]["checks"] if c["name"] == "vermagic"][0]
    assert {"name", "ok", "expected", "found", "message", "fix", "effect", "checked"} == set(check)
    assert check["effect"] == "rejected-at-load" and data["modules"][1]["effect"] == "rejected-at-load"


def test_check_only_unreadable_is_bad_input(capsys, tmp_path):
    tree = _target(tmp_path)
    junk = tmp_path / "junk.ko"
    junk.write_bytes(b"\x7fELF" + b"\x00" * 10)
    assert run(capsys, "check", str(junk), "--kernel-dir", tree)[0] == 3


def test_check_escapes_terminal_sequences(capsys, tmp_path):
    tree = _target(tmp_path)
    evil = tmp_path / "evil.ko"
    evil.write_bytes(build_module(comment=["GCC: (\x1b[2J\x1b]0;pwned\x07Evil 11.1.0-1) 11.1.0"]))
    code, out, err = run(capsys, "check", str(evil), "--kernel-dir", tree)
    assert code == 8
    assert "\x1b" not in out + err and "\\x1b[2J" in out


def test_check_a_file_name_cannot_forge_a_line(capsys, tmp_path):
    """issue 18: one module per line; a name with a line break must not print a fake "ok" line."""
    tree = _target(tmp_path)
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "x.ko\nkdemo.ko: ok").write_bytes(build_module(vermagic="6.1.0-9-amd64 SMP "))
    (mods / "y.ko\tz\rw.ko").write_bytes(build_module(vermagic="6.1.0-9-amd64 SMP "))
    for quiet in ((), ("-q",)):
        code, out, _ = run(capsys, "check", str(mods / "x.ko\nkdemo.ko: ok"), str(mods / "y.ko\tz\rw.ko"),
                           "--kernel-dir", tree, *quiet)
        assert code == 8
        module_lines = [line for line in out.splitlines() if line.startswith(str(mods))]
        assert len(module_lines) == 2, out
        assert not any(line.startswith("kdemo.ko") for line in out.splitlines())
        assert "x.ko\\nkdemo.ko: ok: will be rejected" in out and "y.ko\\tz\\x0dw.ko" in out


def test_check_no_modules(capsys, tmp_path):
    tree = _target(tmp_path)
    assert run(capsys, "check", str(tmp_path / "tree"), "--kernel-dir", tree)[0] == 2


def _sysroot_with_in_tree_module(tmp_path):
    """A sysroot whose kernel shipped one module: the layout's reference. Returns (root, release)."""
    root = tmp_path / "root"
    release = "6.1.0-56-amd64"
    make_tree(root / ("usr/src/linux-headers-" + release))
    kdir = root / ("lib/modules/%s/kernel/fs" % release)
    kdir.mkdir(parents=True)
    (kdir / "intree.ko").write_bytes(build_module())
    (root / ("lib/modules/%s/modules.builtin" % release)).write_text("kernel/net/unix/unix.ko\n")
    return root, release


def test_check_layout_against_in_tree_reference(capsys, tmp_path):
    root, release = _sysroot_with_in_tree_module(tmp_path)
    drifted = tmp_path / "drifted.ko"
    drifted.write_bytes(build_module(exit_offset=0x340))
    code, out, _ = run(capsys, "check", str(drifted), "--sysroot", str(root), "--kernel", release)
    assert code == 8
    assert "exit at 0x340, kernel expects 0x350" in out


def test_check_no_exit_function_loads_and_never_unloads(capsys, tmp_path):
    """Not refused (a permanent module can be meant), but the effect says what rmmod will answer."""
    root, release = _sysroot_with_in_tree_module(tmp_path)
    permanent = tmp_path / "permanent.ko"
    permanent.write_bytes(build_module(exit_offset=None))
    code, out, _ = run(capsys, "check", "--json", str(permanent), "--sysroot", str(root), "--kernel", release)
    assert code == 0
    checks = {c["name"]: c for c in json.loads(out)["modules"][0]["checks"]}
    assert checks["layout"]["ok"] and checks["layout"]["effect"] == "ok"
    unload = checks["unload"]
    assert unload["ok"] and unload["effect"] == "cannot-unload" and "no module_exit()" in unload["message"]
    assert json.loads(out)["modules"][0]["effect"] == "cannot-unload"


def test_check_no_exit_function_never_unloads_against_headers_alone(capsys, tmp_path):
    """Issue 18 case 9: the file shows init without exit; no reference layout is needed to say so,
    and the gates that could not be checked are named beside it."""
    tree = make_tree(tmp_path / "tree")
    permanent = tmp_path / "permanent.ko"
    permanent.write_bytes(build_module(exit_offset=None))
    code, out, _ = run(capsys, "check", str(permanent), "--kernel-dir", tree)
    assert code == 0
    assert "if it loads, it will never unload: no module_exit()" in out and "not fully checked: layout" in out
    assert ": ok" not in out


def test_init_refuses_to_overwrite(capsys, tmp_path):
    assert run(capsys, "init", "-C", str(tmp_path))[0] == 0
    code, _, err = run(capsys, "init", "-C", str(tmp_path))
    assert code == 12 and "not overwriting" in err


def test_init_json(capsys, tmp_path):
    code, out, _ = run(capsys, "init", "--json", "-C", str(tmp_path), "--name", "mydrv")
    assert code == 0
    assert json.loads(out) == {"created": [str(tmp_path / "kbuildguard.toml"), str(tmp_path / "mydrv.c")],
                               "next": ["kbuildguard", "make", "-C", str(tmp_path)]}


def test_make_bad_directory_and_target(capsys, tmp_path):
    assert run(capsys, "make", "-C", str(tmp_path / "nope"))[0] == 2
    assert run(capsys, "make", "-C", str(tmp_path), "install")[0] == 2


def test_make_invalid_config(capsys, tmp_path):
    (tmp_path / "kbuildguard.toml").write_text("[[module]]\nname = 3\n")
    code, _, err = run(capsys, "make", "-C", str(tmp_path), "--kernel-dir", _target(tmp_path))
    assert code == 12 and "configuration error" in err


@pytest.mark.parametrize("kwargs,found", [
    ({"big_endian": True}, "x86_64 big-endian"),
    ({"machine": 183}, "aarch64 little-endian"),
])
def test_check_wrong_machine_or_byte_order(capsys, tmp_path, kwargs, found):
    tree = _target(tmp_path)
    ko = tmp_path / "odd.ko"
    ko.write_bytes(build_module(**kwargs))
    code, out, _ = run(capsys, "check", str(ko), "--kernel-dir", tree)
    assert code == 8 and found in out


def test_proc_version_with_terminal_escapes_is_printed_escaped(capsys, tmp_path):
    pv = tmp_path / "pv"
    pv.write_text("Linux version 6.1.0-13-amd64 (x@y) (gcc-12 (Debian\x1b]0;owned\x07 12.2.0-14) 12.2.0, GNU ld 2.40) #1 SMP\n")
    code, out, err = run(capsys, "detect", "--proc-version-file", str(pv))
    assert code == 5  # no compiler here (PATH is empty), but the kernel's was shown
    assert "\x1b" not in out + err and "\\x1b]0;owned\\x07" in out


def test_check_resolves_settings_like_make(capsys, tmp_path):
    tree = _target(tmp_path)
    good = tmp_path / "good.ko"
    good.write_bytes(build_module())
    code, _, err = run(capsys, "check", str(good), "--kernel-dir", tree, env={"PATH": "", "KBUILDGUARD_MATHC": "exact"})
    assert code == 12 and "KBUILDGUARD_MATHC" in err
    # exact: the module's vendor release must equal the kernel's (it does), via the environment
    assert run(capsys, "check", str(good), "--kernel-dir", tree, env={"PATH": "", "KBUILDGUARD_MATCH": "exact"})[0] == 0


def test_detect_says_when_it_repaired_pasted_text(capsys, tmp_path):
    f = tmp_path / "dmesg.txt"
    f.write_text("[    0.000000] Linux version 5.10.0-19-amd64 (debian-kernel@lists.debian.org) (gcc-10 (Debian 10.2.1-6) "
                 "10.2.1 20210110, GNU ld (GNU Binutils for Debian) 2.35.2) #1 SMP Debian 5.10.149-2 (2022-10-21)\n")
    code, out, err = run(capsys, "detect", "--proc-version-file", str(f))
    assert code == 5  # no gcc 10.2.1 here: but the line was read
    assert "kernel 5.10.0-19-amd64" in out and "read the kernel line after repairing it" in err


def test_explain_root_reads_the_release_from_its_proc_version(capsys, tmp_path):
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "proc/modules").write_text("kdemo 16384 0 - Live 0xffffffffc0000000 (O)\n")
    (root / "proc/version").write_text("Linux version 4.18.0-147.8.1.el7.aarch64 (mockbuild@aarch64-01.bsys.centos.org) "
                                       "(gcc version 8.3.1 20190311 (Red Hat 8.3.1-3) (GCC)) #1 SMP Thu Apr 9 13:49:54 UTC 2020\n")
    code, out, _ = run(capsys, "explain", "kdemo", "--root", str(root), "--json")
    assert code == 0
    assert any("4.18.0-147.8.1.el7.aarch64" in u for u in json.loads(out)["not_seen"])
