"""Module BTF against the kernel's own, against the oracle (issue 20, part 3): Debian's 6.1.0-57 boots in
qemu and loads modules of 6.1.0-56 (one Module.symvers, modversions on: same_magic() skips the release,
so every other gate passes) and one of its own; what btf_module_notify() prints and whether
/sys/kernel/btf/M appears must be what `check --kernel 6.1.0-57-amd64` says in its btf gate.

Measured here (2026-12): -56's dummy, kyber-iosched and cpuid print "BPF: [100825] FUNC ... BPF: Invalid
name" then "failed to validate module [dummy] BTF: -22" and load without BTF (Debian 6.1 has
CONFIG_MODULE_ALLOW_BTF_MISMATCH=y); cast_common, tcp_bic (whose names all land on string starts of
-57's BTF) and nls_cp1255, keywrap (a name inside a string: parsed by chance) load with
/sys/kernel/btf/M; 847 of -56's 1,076 modules without dependencies fail, 229 parse."""

import json
import os

import pytest

from conftest import require
from integration.conftest import image_root, kbuildguard
from integration.qemu import boot, have_qemu, initramfs, parse_report
from integration.test_forecast import BUILT, ENV, SAME, kernels  # noqa: F401 - the fixture

# -56 modules without dependencies: three the kernel refuses the BTF of, four it parses
OLD = {"dummy": "drivers/net/dummy.ko", "kyber_iosched": "block/kyber-iosched.ko", "cpuid": "arch/x86/kernel/cpuid.ko",
       "cast_common": "crypto/cast_common.ko", "tcp_bic": "net/ipv4/tcp_bic.ko", "nls_cp1255": "fs/nls/nls_cp1255.ko",
       "keywrap": "crypto/keywrap.ko"}
OWN = ("mbcache", "fs/mbcache.ko")  # one of -57's own

SCRIPT = """for m in %s; do
  insmod /modules/$m.ko 2>/tmp/err; echo "KBG-INSMOD $m $? $(tr '\\n' ' ' </tmp/err)"
  test -e /sys/kernel/btf/$m && echo "KBG-SYSBTF $m yes" || echo "KBG-SYSBTF $m no"
done
dmesg | grep -E "BPF:|failed to validate" | sed 's/^/KBG-DMESG /'
"""


@pytest.fixture(scope="module")
def booted(kernels, tmp_path_factory):  # noqa: F811 - kernels is the fixture
    require(have_qemu(), "qemu-system-x86 and busybox-static")
    old = os.path.join(kernels[BUILT]["root"], "lib", "modules", BUILT, "kernel")
    new_root = kernels[SAME]["root"]
    files = {"modules/%s.ko" % m: os.path.join(old, p) for m, p in OLD.items()}
    files["modules/%s.ko" % OWN[0]] = os.path.join(new_root, "lib", "modules", SAME, "kernel", OWN[1])
    paths = [os.path.join(old, p) for p in OLD.values()] + [files["modules/%s.ko" % OWN[0]]]
    res = kbuildguard("check", "--fetch", "--json", "--kernel", SAME, *paths, env=ENV)
    btf = {}
    for rep in json.loads(res.out)["modules"]:
        name = os.path.basename(rep["path"])[:-3].replace("-", "_")
        btf[name] = [c for c in rep["checks"] if c["name"] == "btf"][0]
    cpio = initramfs(str(tmp_path_factory.mktemp("qbtf") / "initramfs.cpio"), SCRIPT % " ".join(list(OLD) + [OWN[0]]), files)
    out = boot(os.path.join(image_root(SAME), "boot", "vmlinuz-" + SAME), cpio)
    assert "KBG-DONE" in out, out[-3000:]
    return btf, out


@pytest.mark.parametrize("module", list(OLD) + [OWN[0]])
def test_the_btf_gate_says_what_the_kernel_does(booted, module):
    btf, out = booted
    check = btf[module]
    assert parse_report(out)["insmod"][module][0] == 0, out[-3000:]  # it loads (CONFIG_MODULE_ALLOW_BTF_MISMATCH=y)
    registered = "KBG-SYSBTF %s yes" % module in out
    refused = "failed to validate module [%s] BTF: -22" % module
    assert check["ok"] and check["effect"] == "ok", check
    if refused in check["message"]:
        assert refused in out and not registered, (check, out[-3000:])
    else:
        assert refused not in out and registered, (check, out[-3000:])
    expect_refused = module in ("dummy", "kyber_iosched", "cpuid")
    assert (refused in check["message"]) == expect_refused, check
    if module in ("nls_cp1255", "keywrap"):
        assert "split against another kernel's BTF (" in check["message"], check
    if module in ("cast_common", "tcp_bic", OWN[0]):
        assert "split against this kernel's BTF: validates" in check["message"], check


def test_the_verifier_line_is_the_one_predicted(booted):
    btf, out = booted
    # kbuildguard: "([100825] Invalid name)"; the kernel: "BPF: [100825] FUNC" ... "BPF: Invalid name"
    reason = btf["dummy"]["message"].split("(", 2)[-1].split(")")[0]
    type_id, words = reason.split("] ")
    assert "BPF: %s] " % type_id in out and "BPF: %s" % words in out, (reason, out[-3000:])
