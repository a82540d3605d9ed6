"""`explain` on a captured root: /proc/modules, /sys/module, modules.dep and the .ko, no live kernel needed."""

import io
import json

from conftest import make_tree
from elfbuild import build_module
from kbuildguard.cli import main

RELEASE = "6.1.0-56-amd64"


def captured(tmp_path, line, refcnt="0", exit_offset=0x350, osrelease=True, config=True):
    root = tmp_path / "root"
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/modules").write_text(line + "\n")
    if osrelease:
        (root / "proc/sys/kernel/osrelease").write_text(RELEASE + "\n")
    (root / "proc/version").write_text("Linux version %s (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) "
                                       "12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC\n" % RELEASE)
    sysdir = root / "sys/module/kdemo"
    (sysdir / "holders").mkdir(parents=True)
    (sysdir / "refcnt").write_text(refcnt + "\n")
    (sysdir / "initstate").write_text("live\n")
    mods = root / "lib/modules" / RELEASE
    (mods / "extra").mkdir(parents=True)
    (mods / "extra/kdemo.ko").write_bytes(build_module(vermagic=RELEASE + " SMP mod_unload ", exit_offset=exit_offset))
    (mods / "modules.dep").write_text("extra/kdemo.ko:\n")
    make_tree(root / "usr/src" / ("linux-headers-" + RELEASE), release=RELEASE)
    if config:
        (root / "boot").mkdir()
        (root / "boot" / ("config-" + RELEASE)).write_text("CONFIG_MODULE_UNLOAD=y\n# CONFIG_MODULE_FORCE_UNLOAD is not set\n")
    return str(root)


def explain(root, *extra):
    out, err = io.StringIO(), io.StringIO()
    code = main(["explain", "kdemo", "--root", root] + list(extra), env={"PATH": "/nonexistent"}, stdout=out, stderr=err)
    assert "Traceback" not in err.getvalue()
    return code, out.getvalue(), err.getvalue()


def test_permanent_module_whose_ko_has_an_exit(tmp_path):
    root = captured(tmp_path, "kdemo 16384 0 [permanent], Live 0xffffffffc0000000 (O)")
    code, out, _ = explain(root, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["ko"].endswith("extra/kdemo.ko")
    [finding] = data["findings"]
    assert finding["errno"] == "EBUSY" and "has an exit function, yet the kernel sees none" in finding["text"]
    assert "not even `rmmod -f`" in finding["text"]
    assert data["not_seen"] == []


def test_permanent_module_without_exit(tmp_path):
    root = captured(tmp_path, "kdemo 16384 0 [permanent], Live 0xffffffffc0000000 (O)", exit_offset=None)
    code, out, _ = explain(root)
    assert code == 0 and "no module_exit()" in out


def test_in_use_and_referenced(tmp_path):
    root = captured(tmp_path, "kdemo 16384 2 other, Live 0xffffffffc0000000 (O)", refcnt="2")
    code, out, _ = explain(root)
    assert code == 0 and "in use by other" in out


def test_unloadable_module_and_what_was_not_seen(tmp_path):
    root = captured(tmp_path, "kdemo 16384 0 - Live 0xffffffffc0000000 (O)", config=False, osrelease=False)
    code, out, _ = explain(root)
    assert code == 0
    assert "rmmod kdemo should work" in out
    assert "could not see: the kernel's configuration" in out  # release read from ROOT/proc/version
    # the places looked in are ROOT's, not this machine's (issue 22)
    line = next(ln for ln in out.splitlines() if "could not see: the kernel's configuration" in ln)
    assert "(%s/boot/config-" % root in line and "/proc/config.gz" not in line, line


def test_not_loaded_is_a_usage_error(tmp_path):
    root = captured(tmp_path, "other 16384 0 - Live 0xffffffffc0000000")
    code, _, err = explain(root)
    assert code == 2 and "not loaded" in err


def test_a_ko_path_with_a_line_break_prints_on_one_line(tmp_path):
    """issue 18 (tester): a path with a line break cannot print a line of its own."""
    root = captured(tmp_path, "kdemo 16384 0 [permanent], Live 0xffffffffc0000000 (O)")
    ko = tmp_path / "x.ko\nkdemo.ko: ok"
    ko.write_bytes(build_module(exit_offset=None))
    code, out, _ = explain(root, "--ko", str(ko))
    assert "x.ko\\nkdemo.ko: ok" in out and not any(line.startswith("kdemo.ko") for line in out.splitlines()), out


def test_hostile_numbers_in_a_captured_root_are_read_as_unknown(tmp_path):
    """A sosreport is hostile text: '--5' as refcnt, '²³' as size (str.isdigit() takes it, int()
    refused it: a traceback, exit 1)."""
    root = captured(tmp_path, "kdemo \u00b2\u00b3 \u00b2 - Live 0xffffffffc0000000 (O)", refcnt="--5")
    code, out, err = explain(root)
    assert code == 0, err


def test_a_fifo_in_a_captured_root_is_refused_not_waited_for(tmp_path):
    import os

    root = captured(tmp_path, "kdemo 16384 0 - Live 0xffffffffc0000000 (O)")
    os.unlink(os.path.join(root, "proc/modules"))
    os.mkfifo(os.path.join(root, "proc/modules"))
    code, out, err = explain(root)
    assert code == 3 and "not a regular file" in err, (code, err)
