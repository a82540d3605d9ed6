"""The forecast against the oracle: each fetched kernel boots in qemu and is asked to load the module
built for 6.1.0-56; what it does and prints must be what `check --kernel R1,R2,...` forecast.

Measured here (2026-12, all four booted): 6.1.0-57 loads it (one Module.symvers with -56); 6.1.0-54
and 5.10.0-32 refuse it with the single line "kdemo: disagrees about version of symbol module_layout";
6.12.117+deb13 with "module kdemo: .gnu.linkonce.this_module section size must match the kernel's
built struct module size at run time" (checked before module_layout from 6.4); busybox's insmod says
"invalid module format" each time."""

import json
import os

import pytest

from conftest import require
from integration.conftest import kbuildguard, named_kdemo
from integration.qemu import boot, have_qemu, initramfs, parse_report
from integration.test_forecast import BUILT, BULLSEYE, ENV, OTHER, SAME, TRIXIE, kernels  # noqa: F401 - the fixture

SCRIPT = """insmod /modules/kdemo.ko 2>/tmp/err; echo "KBG-INSMOD kdemo $? $(tr '\\n' ' ' </tmp/err)"
dmesg | grep -E "kdemo|module_layout|this_module" | sed 's/^/KBG-DMESG /'
"""


@pytest.fixture(scope="module")
def forecast(kernels, tmp_path_factory):  # noqa: F811 - kernels is the fixture
    require(have_qemu(), "qemu-system-x86 and busybox-static")
    repo = named_kdemo(tmp_path_factory.mktemp("qforecast"), "kdemo")
    res = kbuildguard("make", "--fetch", "--kernel", BUILT, cwd=repo, env=ENV)
    assert res.code == 0, res
    ko = os.path.join(repo, "kdemo.ko")
    res = kbuildguard("check", ko, "--fetch", "--json", "--kernel", ",".join([SAME, OTHER, BULLSEYE, TRIXIE]), env=ENV)
    rows = {r["kernel"]: r for r in json.loads(res.out)["forecast"]}
    cpio = initramfs(str(tmp_path_factory.mktemp("qcpio") / "initramfs.cpio"), SCRIPT, {"modules/kdemo.ko": ko})
    return {"rows": rows, "cpio": cpio, "kernels": kernels}


# 5.10 refuses it as 6.1.0-54 does (measured): three boots, one per outcome, keep the pass short
@pytest.mark.parametrize("release", [SAME, OTHER, TRIXIE])
def test_the_kernel_does_what_the_forecast_says(forecast, release):
    root = forecast["kernels"][release]["root"]
    out = boot(os.path.join(root, "boot", "vmlinuz-" + release), forecast["cpio"])
    assert "KBG-DONE" in out, out[-3000:]
    status, message = parse_report(out)["insmod"]["kdemo"]
    dmesg = "\n".join(line for line in out.splitlines() if "KBG-DMESG" in line)
    row = forecast["rows"][release]
    if row["effect"] == "rejected-at-load":
        assert status != 0 and "invalid module format" in message.lower(), (row, message, dmesg)  # busybox: lower case
        assert row["kernel_prints"] in dmesg, (row["kernel_prints"], dmesg)
    else:
        assert status == 0, (row, message, dmesg)
