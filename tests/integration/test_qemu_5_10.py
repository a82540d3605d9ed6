"""The original incident on Debian 11's 5.10 kernel (no size check in its loader): a module built by
the kernel's own gcc-10 against headers with CONFIG_KALLSYMS turned off loads, and then cannot be
unloaded. kbuildguard refuses the tree before building and the module in `check`."""

import glob
import json
import os

import pytest

from conftest import require
from integration.conftest import drifted_tree, kbuildguard, named_kdemo, plain_make
from integration.qemu import INSMOD_RMMOD, boot, have_qemu, initramfs, parse_report
from kbuildguard.formats.module import read_module


@pytest.fixture(scope="module")
def bullseye():
    root = os.environ.get("KBG_TEST_BULLSEYE_ROOT", "/var/cache/kbuildguard-ci/bullseye/root")
    trees = sorted(glob.glob(os.path.join(root, "usr/src/linux-headers-5.10.0-*-amd64")))
    require(bool(trees), "Debian 11's 5.10 headers unpacked under KBG_TEST_BULLSEYE_ROOT (scripts/test fetches them)")
    tree = trees[-1]
    release = os.path.basename(tree)[len("linux-headers-"):]
    return {"root": root, "tree": tree, "release": release, "vmlinuz": os.path.join(root, "boot", "vmlinuz-" + release),
            "gcc10": os.path.join(root, "usr/bin/gcc-10"),
            "env": {"PATH": os.path.join(root, "usr/bin") + os.pathsep + os.environ.get("PATH", "")}}


@pytest.fixture(scope="module")
def guest510(bullseye, tmp_path_factory):
    require(have_qemu(), "qemu-system-x86 and busybox-static")
    tmp = tmp_path_factory.mktemp("q510")
    ok = named_kdemo(tmp, "kdemo_ok")
    res = kbuildguard("make", "--kernel-dir", bullseye["tree"], cwd=ok, env=bullseye["env"])
    assert res.code == 0, res
    report = json.load(open(os.path.join(ok, ".kbuildguard", "report.json")))
    drifted = drifted_tree(str(tmp / "tree"), bullseye["release"], {"CONFIG_KALLSYMS": None}, src=bullseye["tree"])
    bad = named_kdemo(tmp, "kdemo_kallsyms", kbuildguard_toml=False)
    plain_make(bad, bullseye["release"], bullseye["gcc10"], kernel_dir=drifted)
    kos = {"kdemo_ok": os.path.join(ok, "kdemo_ok.ko"), "kdemo_kallsyms": os.path.join(bad, "kdemo_kallsyms.ko")}
    script = INSMOD_RMMOD % "kdemo_ok kdemo_kallsyms" + "sed 's/^/KBG-PROC /' /proc/modules\n"
    out = boot(bullseye["vmlinuz"], initramfs(str(tmp / "initramfs.cpio"), script, {"modules/%s.ko" % n: p for n, p in kos.items()}))
    assert "KBG-DONE" in out, out[-3000:]
    return dict(parse_report(out), kos=kos, report=report, drifted=drifted, out=out, ok_repo=ok)


def test_kbuildguard_picks_the_kernels_gcc10(bullseye, guest510):
    assert guest510["report"]["toolchain"]["selected"] == bullseye["gcc10"]
    assert guest510["report"]["kernel"]["compiler"]["text"] == "gcc-10 (Debian 10.2.1-6) 10.2.1 20210110"


def test_good_module_loads_and_unloads_on_5_10(guest510):
    assert guest510["insmod"]["kdemo_ok"][0] == 0 and guest510["rmmod"]["kdemo_ok"][0] == 0


def test_incident_reproduced_on_5_10(guest510):
    assert guest510["insmod"]["kdemo_kallsyms"][0] == 0
    code, message = guest510["rmmod"]["kdemo_kallsyms"]
    assert code != 0 and "busy" in message.lower()
    assert [line for line in guest510["proc"] if line.startswith("kdemo_kallsyms ") and "[permanent]" in line]


def test_kbuildguard_refused_it_beforehand(bullseye, guest510):
    layout = read_module(guest510["kos"]["kdemo_kallsyms"]).layout
    assert (layout.size, layout.exit_offset) == (0x380, 0x348)
    res = kbuildguard("check", "--kernel-dir", bullseye["tree"], "--vmlinux", bullseye["vmlinuz"], "--json",
                      guest510["kos"]["kdemo_kallsyms"], guest510["kos"]["kdemo_ok"])
    assert res.code == 8, res
    by_name = {os.path.basename(m["path"]): {c["name"]: c for c in m["checks"]} for m in json.loads(res.out)["modules"]}
    bad = by_name["kdemo_kallsyms.ko"]
    assert bad["compiler"]["ok"] and not bad["layout"]["ok"]
    assert "size 0x380, kernel expects 0x3c0" in bad["layout"]["message"]
    assert "exit at 0x348, kernel expects 0x380" in bad["layout"]["message"]
    assert all(c["ok"] for c in by_name["kdemo_ok.ko"].values())
    # and the drifted tree itself, before any build
    res = kbuildguard("make", "--kernel-dir", guest510["drifted"], "--kernel-config", os.path.join(bullseye["tree"], ".config"),
                      cwd=guest510["ok_repo"], env=bullseye["env"])
    assert res.code == 13 and "CONFIG_KALLSYMS" in res.err, res
