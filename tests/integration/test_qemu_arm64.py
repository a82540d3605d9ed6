"""The original incident on its own architecture and cause: Debian's 6.1 arm64 kernel in
qemu-system-aarch64 (-M virt -cpu cortex-a57). arm64's relocation code has no non-zero check and
6.1 has no size check: kdemo cross-built with the kernel's gcc-12 against the arm64 headers with
CONFIG_JUMP_LABEL turned off (the option behind the CentOS 7.8 aarch64 incident) loads, shows
[permanent], and rmmod answers busy. kbuildguard refused it beforehand."""

import glob
import json
import os
import shutil

import pytest

from conftest import require
from integration.conftest import drifted_tree, kbuildguard, named_kdemo
from integration.qemu import INSMOD_RMMOD, boot, initramfs, parse_report
from kbuildguard.formats.module import read_module

CROSS = {"ARCH": "arm64", "CROSS_COMPILE": "aarch64-linux-gnu-"}


@pytest.fixture(scope="module")
def arm64():
    root = os.environ.get("KBG_TEST_ARM64_ROOT") or (sorted(glob.glob("/var/cache/kbuildguard-ci/arm64-*/root")) or [""])[-1]
    trees = sorted(glob.glob(os.path.join(root, "usr/src/linux-headers-*-arm64")))
    require(bool(trees), "Debian's arm64 kernel and headers unpacked under KBG_TEST_ARM64_ROOT (scripts/test fetches them)")
    require(shutil.which("aarch64-linux-gnu-gcc-12") is not None, "gcc-12-aarch64-linux-gnu")
    require(shutil.which("qemu-system-aarch64") is not None, "qemu-system-arm")
    tree = trees[-1]
    release = os.path.basename(tree)[len("linux-headers-"):]
    return {"root": root, "tree": tree, "release": release, "vmlinuz": os.path.join(root, "boot", "vmlinuz-" + release),
            "busybox": os.path.join(root, "bin", "busybox")}


@pytest.fixture(scope="module")
def guest_arm64(arm64, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("arm64")
    ok = named_kdemo(tmp, "kdemo_ok")
    # issue 22: no ARCH=/CROSS_COMPILE= from the user: kbuildguard finds aarch64-linux-gnu-gcc-12 and says so
    res = kbuildguard("make", "--kernel-dir", arm64["tree"], "--sysroot", arm64["root"], cwd=ok)
    assert res.code == 0, res
    # the user's own (exported, as this test did before issue 22) is kept, with a note
    own = named_kdemo(tmp / "own", "kdemo_own")
    user = kbuildguard("make", "--kernel-dir", arm64["tree"], "--sysroot", arm64["root"], cwd=own, env=CROSS)
    drifted = drifted_tree(str(tmp / "tree"), arm64["release"], {"CONFIG_JUMP_LABEL": None}, src=arm64["tree"])
    refused = kbuildguard("make", "--kernel-dir", drifted, "--sysroot", arm64["root"], "--kernel-config",
                          os.path.join(arm64["tree"], ".config"), cwd=named_kdemo(tmp / "refused", "kdemo_jumplabel"))
    # the vendor's way: build it anyway, without kbuildguard
    bad = named_kdemo(tmp, "kdemo_jumplabel", kbuildguard_toml=False)
    import subprocess

    subprocess.run(["make", "-C", drifted, "M=" + bad, "ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-",
                    "CC=aarch64-linux-gnu-gcc-12", "modules"], check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    kos = {"kdemo_ok": os.path.join(ok, "kdemo_ok.ko"), "kdemo_jumplabel": os.path.join(bad, "kdemo_jumplabel.ko")}
    check = kbuildguard("check", "--kernel-dir", arm64["tree"], "--sysroot", arm64["root"], "--json", *kos.values())
    script = INSMOD_RMMOD % "kdemo_ok kdemo_jumplabel" + "sed 's/^/KBG-PROC /' /proc/modules\n"
    cpio = initramfs(str(tmp / "initramfs.cpio"), script, {"modules/%s.ko" % n: p for n, p in kos.items()}, busybox=arm64["busybox"])
    out = boot(arm64["vmlinuz"], cpio, arch="aarch64")
    with open(str(tmp / "serial.log"), "w") as f:
        f.write(out)
    assert "KBG-DONE" in out, out[-3000:]
    return dict(parse_report(out), kos=kos, refused=refused, check=check, out=out, made=res, user=user,
                user_ko=os.path.join(own, "kdemo_own.ko"))


def test_cross_built_module_loads_and_unloads_on_arm64(guest_arm64):
    assert read_module(guest_arm64["kos"]["kdemo_ok"]).machine == "aarch64"
    assert guest_arm64["insmod"]["kdemo_ok"][0] == 0 and guest_arm64["rmmod"]["kdemo_ok"][0] == 0


def test_jump_label_drift_loads_then_cannot_be_unloaded_on_arm64(guest_arm64):
    assert guest_arm64["insmod"]["kdemo_jumplabel"][0] == 0
    code, message = guest_arm64["rmmod"]["kdemo_jumplabel"]
    assert code != 0 and "busy" in message.lower()
    assert [line for line in guest_arm64["proc"] if line.startswith("kdemo_jumplabel ") and "[permanent]" in line]


def test_kbuildguard_refused_it_beforehand(guest_arm64):
    assert guest_arm64["refused"].code == 13 and "CONFIG_JUMP_LABEL" in guest_arm64["refused"].err
    layout = read_module(guest_arm64["kos"]["kdemo_jumplabel"]).layout
    assert (layout.size, layout.exit_offset) == (0x380, 0x338)
    assert guest_arm64["check"].code == 8
    by_name = {os.path.basename(m["path"]): {c["name"]: c for c in m["checks"]} for m in json.loads(guest_arm64["check"].out)["modules"]}
    assert "exit at 0x338, kernel expects 0x340" in by_name["kdemo_jumplabel.ko"]["layout"]["message"]
    assert "loads, and then cannot be unloaded" in by_name["kdemo_jumplabel.ko"]["layout"]["message"]
    assert all(c["ok"] for c in by_name["kdemo_ok.ko"].values())


def test_cross_compiler_found_without_the_users_cross_compile(guest_arm64):
    made = guest_arm64["made"]
    assert "note: kernel 6.1.0-" in made.err and "make gets ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-" in made.err, made


def test_the_users_own_arch_and_cross_compile_are_kept(guest_arm64):
    user = guest_arm64["user"]
    assert user.code == 0, user
    assert "ARCH=arm64 in the environment: kept" in user.err and "CROSS_COMPILE=aarch64-linux-gnu- in the environment: kept" in user.err
    assert read_module(guest_arm64["user_ko"]).machine == "aarch64"


def test_a_contradicting_arch_is_refused_before_building(arm64, tmp_path):
    res = kbuildguard("make", "--kernel-dir", arm64["tree"], "--sysroot", arm64["root"], "--dry-run", "--", "ARCH=x86",
                      cwd=named_kdemo(tmp_path, "kdemo_x86"))
    assert res.code == 2 and "ARCH=x86 after --: kernel %s is aarch64, which kbuild builds with ARCH=arm64" % arm64["release"] in res.err
