"""The Debian kernel hook, fired by real dpkg installing a kernel package (issue 20, part 3).

A root holds a DKMS-built module (kdemo, built for 6.1.0-56) under lib/modules/R/updates/dkms and
kbuildguard's hook in etc/kernel/postinst.d; a package for kernel R (6.1.0-54's fetched files) whose
postinst runs `run-parts --exit-on-error --arg=R --arg=IMAGE etc/kernel/postinst.d`, as Debian's
linux-image postinst does, is installed with real dpkg. The root is installed into with --instdir and
scripts run chrootless (--force-script-chrootless: the root has no shell of its own), so the postinst
prefixes the folder with $DPKG_ROOT where Debian's, running in the system itself, does not.
"""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import require
from integration.conftest import kbuildguard, named_kdemo
from integration.test_forecast import BUILT, ENV, OTHER, kernels  # noqa: F401 - the fixture

POSTINST = """#!/bin/sh
set -e
version=%s
if [ "$1" = configure ] && [ -d "$DPKG_ROOT/etc/kernel/postinst.d" ]; then
    run-parts --report --exit-on-error --arg="$version" --arg="/boot/vmlinuz-$version" "$DPKG_ROOT/etc/kernel/postinst.d"
fi
"""


@pytest.fixture(scope="module")
def dkms_module(kernels, tmp_path_factory):  # noqa: F811 - kernels is the fixture
    require(shutil.which("dpkg") is not None and shutil.which("run-parts") is not None, "dpkg and run-parts (Debian)")
    repo = named_kdemo(tmp_path_factory.mktemp("hook"), "kdemo")
    res = kbuildguard("make", "--fetch", "--kernel", BUILT, cwd=repo, env=ENV)
    assert res.code == 0, res
    return os.path.join(repo, "kdemo.ko")


def _root(tmp_path, kernel, ko):
    root = tmp_path / "root"
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc/kernel/postinst.d", "usr/src", "boot",
              "lib/modules/%s/updates/dkms" % OTHER):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    hook = root / "etc/kernel/postinst.d/zz-kbuildguard"
    res = kbuildguard("reboot-check", "--print-hook", "postinst")
    hook.write_text(res.out)
    hook.chmod(0o755)
    fetched = kernel["root"]
    os.symlink(os.path.join(fetched, "usr/src/linux-headers-" + OTHER), str(root / "usr/src" / ("linux-headers-" + OTHER)))
    for name in ("config-", "vmlinuz-"):
        os.symlink(os.path.join(fetched, "boot", name + OTHER), str(root / "boot" / (name + OTHER)))
    shutil.copy(ko, str(root / "lib/modules" / OTHER / "updates/dkms/kdemo.ko"))
    return root


def _package(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "lib/modules" / OTHER).mkdir(parents=True)
    (pkg / "lib/modules" / OTHER / "modules.order").write_text("")
    (pkg / "DEBIAN/control").write_text("Package: linux-image-kbgtest\nVersion: 1\nArchitecture: all\n"
                                        "Maintainer: kbuildguard tests <t@example.org>\nDescription: test kernel %s\n" % OTHER)
    (pkg / "DEBIAN/postinst").write_text(POSTINST % OTHER)
    (pkg / "DEBIAN/postinst").chmod(0o755)
    deb = str(tmp_path / "linux-image-kbgtest.deb")
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(pkg), deb], check=True, stdout=subprocess.DEVNULL)
    return deb


def _dpkg(root, tmp_path, *args):
    """Real dpkg into the root; kbuildguard on PATH as the installed command would be."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "kbuildguard"
    wrapper.write_text("#!/bin/sh\nexec %s -m kbuildguard \"$@\"\n" % sys.executable)
    wrapper.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")), **ENV)
    env.pop("KBUILDGUARD_HOOK", None)
    proc = subprocess.run(["dpkg", "--force-not-root", "--force-script-chrootless", "--instdir=%s" % root,
                           "--admindir=%s/var/lib/dpkg" % root, "--log=/dev/null"] + list(args),
                          env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


def _status(root):
    return subprocess.run(["dpkg-query", "--admindir=%s/var/lib/dpkg" % root, "-W", "-f", "${Status}", "linux-image-kbgtest"],
                          stdout=subprocess.PIPE, universal_newlines=True).stdout


def test_installing_a_kernel_names_the_module_it_will_refuse(kernels, dkms_module, tmp_path):  # noqa: F811
    root = _root(tmp_path, kernels[OTHER], dkms_module)
    code, out = _dpkg(root, tmp_path, "-i", _package(tmp_path))
    assert code == 0, out  # non-blocking by default: the kernel package is configured
    assert _status(root) == "install ok installed"
    assert "before rebooting into %s: 1 of 1 out-of-tree module(s) will not load: updates/dkms/kdemo.ko" % OTHER in out, out
    assert "rebuild needed because the CRC of module_layout changed" in out, out
    assert "disagrees about version of symbol module_layout" in out


def test_blocking_leaves_the_kernel_package_unconfigured(kernels, dkms_module, tmp_path):  # noqa: F811
    root = _root(tmp_path, kernels[OTHER], dkms_module)
    (root / "etc/default").mkdir(parents=True)
    (root / "etc/default/kbuildguard").write_text("KBUILDGUARD_HOOK=block\n")
    code, out = _dpkg(root, tmp_path, "-i", _package(tmp_path))
    assert code != 0, out
    assert "module rejected: before rebooting into %s" % OTHER in out, out
    assert "zz-kbuildguard exited with return code 8" in out, out  # run-parts --exit-on-error
    assert _status(root) == "install ok half-configured"
    # the module rebuilt (here: removed), dpkg --configure -a finishes the kernel's installation
    os.unlink(str(root / "lib/modules" / OTHER / "updates/dkms/kdemo.ko"))
    code, out = _dpkg(root, tmp_path, "--configure", "-a")
    assert code == 0 and _status(root) == "install ok installed", out
