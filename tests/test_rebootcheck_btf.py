"""reboot-check R holds R's own modules' BTF to R's vmlinuz BTF (issue 20, part 3): pop-os/pop#3961, a
kernel package whose modules and image came from different builds ("failed to validate module [M]
BTF: -22" for 29 modules, emergency mode)."""

import io
import json

import pytest
from test_btf import BASE, BASE_STRINGS, _split

from conftest import FakeRunner
from elfbuild import build_module
from kbuildguard import cli

R = "6.1.0-57-amd64"


def _root(tmp_path, config, modules):
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / ("config-" + R)).write_text("\n".join(config) + "\n")
    (boot / ("vmlinuz-" + R)).write_bytes(BASE)  # raw BTF is read as it is (btf.raw_btf)
    folder = tmp_path / "lib" / "modules" / R / "kernel" / "drivers"
    folder.mkdir(parents=True)
    for name, btf in modules.items():
        (folder / name).write_bytes(build_module(btf=btf))
    return tmp_path


def _run(root, *argv):
    err, out = io.StringIO(), io.StringIO()
    code = cli.main(["reboot-check", R, "--root", str(root)] + list(argv), env={"HOME": str(root)}, stdout=out, stderr=err,
                    runner=lambda c: FakeRunner(), euid=0, cwd=str(root))
    return code, out.getvalue(), err.getvalue()


VALIDATES = ["CONFIG_DEBUG_INFO_BTF_MODULES=y"]
OTHER_BUILD = _split(base_len=len(BASE_STRINGS) + 40)  # split against another build's vmlinux


def test_own_modules_from_another_build_will_not_load(tmp_path):
    root = _root(tmp_path, VALIDATES, {"good.ko": _split(), "bad-one.ko": OTHER_BUILD, "none.ko": b""})
    code, out, err = _run(root, "--json")
    own = json.loads(out)["own_modules"]
    assert code == 0 and own["checked"] == 2 and own["will_not_load"] is True and own["skipped"] is None
    [row] = own["forecast"]
    assert (row["module"], row["effect"], row["gate"]) == ("kernel/drivers/bad-one.ko", "rejected-at-load", "btf")
    assert row["kernel_prints"] == "failed to validate module [bad_one] BTF: -22"
    assert "kernel %s: 1 of its own modules will not load: BTF split against another build's vmlinux (bad-one.ko)" % R in err
    code, out, err = _run(root, "--blocking")
    assert code == 8 and "bad-one.ko" in out and "rejected-at-load" in out, (out, err)


def test_own_modules_with_btf_mismatch_allowed_load_without_it(tmp_path):
    root = _root(tmp_path, VALIDATES + ["CONFIG_MODULE_ALLOW_BTF_MISMATCH=y"], {"bad.ko": OTHER_BUILD})
    code, out, err = _run(root, "--blocking")
    assert code == 0 and "1 of its own modules load without their BTF" in err and "bad.ko" in out, (out, err)


def test_own_modules_of_one_build_pass(tmp_path):
    code, out, err = _run(_root(tmp_path, VALIDATES, {"good.ko": _split()}), "--blocking")
    assert code == 0 and "the BTF of all 1 of its own modules with .BTF validates" in err, err


@pytest.mark.parametrize("config,why", [
    ((), "no CONFIG_DEBUG_INFO_BTF_MODULES"),
    (None, "no /boot/config-%s" % R),
])
def test_own_modules_are_not_checked_where_the_kernel_reads_no_btf(tmp_path, config, why):
    root = _root(tmp_path, config or (), {"bad.ko": OTHER_BUILD})
    if config is None:
        (root / "boot" / ("config-" + R)).unlink()
    code, out, err = _run(root, "--blocking", "--json")
    assert code == 0 and json.loads(out)["own_modules"]["skipped"] and why in err, err


def test_an_unreadable_vmlinuz_is_said_not_a_crash(tmp_path):
    root = _root(tmp_path, VALIDATES, {"bad.ko": OTHER_BUILD})
    (root / "boot" / ("vmlinuz-" + R)).write_bytes(b"\x00" * 100)
    code, _out, err = _run(root, "--blocking")
    assert code == 0 and "its BTF cannot be read" in err, err


@pytest.mark.parametrize("make", ["missing", "fifo", "directory"])
def test_a_vmlinuz_that_is_no_file_is_said(tmp_path, make):
    import os

    root = _root(tmp_path, VALIDATES, {"bad.ko": OTHER_BUILD})
    vmlinuz = root / "boot" / ("vmlinuz-" + R)
    vmlinuz.unlink()
    if make == "fifo":
        os.mkfifo(str(vmlinuz))
    elif make == "directory":
        vmlinuz.mkdir()
    code, _out, err = _run(root, "--blocking")
    assert code == 0 and "no /boot/vmlinuz-%s: its BTF is not at hand" % R in err, err


def test_the_vmlinuz_is_the_roots_never_the_hosts(tmp_path):
    # an absolute symlink in ROOT names ROOT's file (in_root): /boot/vmlinuz-R -> /boot/real
    root = _root(tmp_path, VALIDATES, {"bad.ko": OTHER_BUILD})
    vmlinuz = root / "boot" / ("vmlinuz-" + R)
    (root / "boot" / "real").write_bytes(vmlinuz.read_bytes())
    vmlinuz.unlink()
    vmlinuz.symlink_to("/boot/real")
    code, _out, err = _run(root, "--blocking")
    assert code == 8 and "1 of its own modules will not load" in err, err


def test_an_own_module_symlink_names_the_roots_file(tmp_path):
    # kernel/drivers/link.ko -> /elsewhere/bad.ko: ROOT's /elsewhere, never the host's
    root = _root(tmp_path, VALIDATES, {})
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "bad.ko").write_bytes(build_module(btf=OTHER_BUILD))
    (root / "lib" / "modules" / R / "kernel" / "drivers" / "link.ko").symlink_to("/elsewhere/bad.ko")
    (root / "lib" / "modules" / R / "kernel" / "drivers" / "gone.ko").symlink_to("/nowhere/x.ko")
    code, out, err = _run(root, "--json")
    own = json.loads(out)["own_modules"]
    assert code == 0 and own["checked"] == 1 and [r["module"] for r in own["forecast"]] == ["kernel/drivers/link.ko"], own
