"""reboot-check R holds R's own modules' BTF to R's vmlinuz (issue 20, part 3), with Debian's real files:
a root whose /lib/modules/R/kernel holds a 6.1.0-56 module beside R=6.1.0-57's real vmlinuz and config
names it (Debian 6.1: CONFIG_MODULE_ALLOW_BTF_MISMATCH=y, so it loads without its BTF, as qemu shows
in test_qemu_btf.py); and the whole of -57's own module tree (4,023 modules, all with .BTF) validates,
timed."""

import json
import os
import shutil

from conftest import require
from integration.conftest import image_root, kbuildguard
from integration.test_forecast import BUILT, ENV, SAME, kernels  # noqa: F401 - the fixture


def test_an_own_module_of_another_build_is_named(kernels, tmp_path):  # noqa: F811 - kernels is the fixture
    image = image_root(SAME)
    require(os.path.isfile(os.path.join(image, "boot", "vmlinuz-" + SAME)), "Debian's %s image in %s" % (SAME, image))
    boot = tmp_path / "boot"
    boot.mkdir()
    for name in ("vmlinuz-", "config-"):
        shutil.copy(os.path.join(image, "boot", name + SAME), str(boot / (name + SAME)))
    folder = tmp_path / "lib" / "modules" / SAME / "kernel" / "drivers" / "net"
    folder.mkdir(parents=True)
    shutil.copy(os.path.join(kernels[BUILT]["root"], "lib", "modules", BUILT, "kernel", "drivers", "net", "dummy.ko"),
                str(folder / "dummy.ko"))
    res = kbuildguard("reboot-check", SAME, "--root", str(tmp_path), "--json", env=ENV)
    assert res.code == 0, res
    own = json.loads(res.out)["own_modules"]
    assert own["checked"] == 1 and own["will_not_load"] is False, own
    [row] = own["forecast"]
    assert row["module"] == "kernel/drivers/net/dummy.ko" and row["effect"] == "ok" and row["gate"] == "btf", row
    assert row["kernel_prints"] == "failed to validate module [dummy] BTF: -22", row  # what qemu printed
    assert "1 of its own modules load without their BTF" in res.err and "dummy.ko" in res.err, res
    res = kbuildguard("reboot-check", SAME, "--root", str(tmp_path), "--blocking", env=ENV)
    assert res.code == 0 and "dummy.ko" in res.out, res  # it loads: not a reason to block


def test_a_whole_kernel_of_one_build_validates(tmp_path):
    image = image_root(SAME)
    require(os.path.isdir(os.path.join(image, "lib", "modules", SAME, "kernel")), "Debian's %s image in %s" % (SAME, image))
    res = kbuildguard("reboot-check", SAME, "--root", image, "--json", env=ENV)
    assert res.code == 0, res
    own = json.loads(res.out)["own_modules"]
    assert own["checked"] == 4023 and own["forecast"] == [] and own["skipped"] is None, own
    assert "the BTF of all 4023 of its own modules with .BTF validates" in res.err, res
