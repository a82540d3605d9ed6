"""The Debian hook in a real Debian 12 system, after DKMS's own (issue 20, part 3; the tester's case).

The Debian 12 chroot that scripts/test makes (KBG_TEST_BOOKWORM_CHROOT: debootstrap, gcc-12,
linux-headers-amd64) is the read-only lower layer of an overlay, in a mount namespace of its own
(`unshare -m`: nothing stays mounted, the chroot stays clean). Into it, with real dpkg in the chroot:
Debian's dkms and lsb-release, the python3 packages kbuildguard needs (from the chroot's apt cache),
kbuildguard itself under /opt, its hook as /etc/kernel/header_postinst.d/zz-kbuildguard and
/etc/kernel/postinst.d/zz-kbuildguard, a DKMS module (kdemo, `dkms add`) and a vendor module under
/lib/modules/6.1.0-54-amd64/extra built for 6.1.0-56 (other export CRCs). Then Debian's real
linux-headers-6.1.0-54-amd64 package is installed: its postinst runs `run-parts --report
--exit-on-error --arg=R /etc/kernel/header_postinst.d`, where `dkms` builds kdemo for R and
`zz-kbuildguard` runs after it and names the vendor module that R will refuse.
"""

import os
import shutil
import subprocess

import pytest

import kbuildguard as kbuildguard_package
from conftest import require
from integration.conftest import kbuildguard, named_kdemo
from integration.test_forecast import BUILT, ENV, OTHER

CHROOT = os.environ.get("KBG_TEST_BOOKWORM_CHROOT", "")

DKMS_CONF = """PACKAGE_NAME="kdemo"
PACKAGE_VERSION="1.0"
BUILT_MODULE_NAME[0]="kdemo"
DEST_MODULE_LOCATION[0]="/updates/dkms"
MAKE[0]="make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build modules"
CLEAN="true"
AUTOINSTALL="yes"
"""

# Inside the namespace: the overlay, /proc and /dev for dpkg and DKMS, then everything in the chroot.
SCRIPT = r"""
set -e
lower=$1 top=$2
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$top/upper,workdir=$top/work" "$top/merged"
r=$top/merged
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
cp -a "$top/in/." "$r/"
in_chroot() { chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"; }
echo "== setup"
in_chroot sh -c 'dpkg -i /var/cache/apt/archives/python3-markupsafe_*.deb /var/cache/apt/archives/python3-jinja2_*.deb \
    /var/cache/apt/archives/python3-distro_*.deb /var/cache/apt/archives/python3-packaging_*.deb \
    /tmp/debs/lsb-release_*.deb >/dev/null'
in_chroot sh -c 'dpkg -i /tmp/debs/dkms_*.deb >/dev/null'
in_chroot kbuildguard reboot-check --print-hook postinst > "$r/etc/kernel/header_postinst.d/zz-kbuildguard"
cp "$r/etc/kernel/header_postinst.d/zz-kbuildguard" "$r/etc/kernel/postinst.d/zz-kbuildguard"
chmod 755 "$r/etc/kernel/header_postinst.d/zz-kbuildguard" "$r/etc/kernel/postinst.d/zz-kbuildguard"
in_chroot dkms add -m kdemo -v 1.0 >/dev/null
echo "== order"
ls "$r/etc/kernel/header_postinst.d"
echo "== install"
status=0
in_chroot sh -c 'dpkg -i /tmp/debs/linux-headers-6.1.0-54-common_*.deb /tmp/debs/linux-headers-6.1.0-54-amd64_*.deb' 2>&1 ||
    status=$?
echo "== dpkg exit $status"
in_chroot dpkg-query -W -f '${Status}\n' linux-headers-6.1.0-54-amd64
ls "$r/lib/modules/6.1.0-54-amd64/updates/dkms" "$r/lib/modules/6.1.0-54-amd64/extra"
"""


@pytest.fixture(scope="module")
def vendor_module(tmp_path_factory):
    repo = named_kdemo(tmp_path_factory.mktemp("vendor"), "kvendor")
    res = kbuildguard("make", "--fetch", "--kernel", BUILT, cwd=repo, env=ENV)
    assert res.code == 0, res
    return os.path.join(repo, "kvendor.ko")


def _download(folder):
    """Debian's own packages, from this machine's archive (bookworm): the headers of OTHER, dkms."""
    names = ["dkms", "lsb-release", "linux-headers-%s" % OTHER, "linux-headers-%s-common" % OTHER.rsplit("-", 1)[0]]
    subprocess.run(["apt-get", "download", "-q"] + names, cwd=str(folder), check=True, stdout=subprocess.DEVNULL)


def test_the_header_postinst_hook_runs_after_dkms_and_names_the_module_that_will_fail(vendor_module, tmp_path):
    require(bool(CHROOT) and os.path.isdir(CHROOT), "KBG_TEST_BOOKWORM_CHROOT (scripts/test makes it)")
    require(os.geteuid() == 0 and shutil.which("unshare") is not None, "root and unshare (an overlay mount)")
    require(OTHER == "6.1.0-54-amd64", "the script names 6.1.0-54-amd64")
    top = tmp_path / "top"
    for d in ("upper", "work", "merged", "in/tmp/debs", "in/opt/kbuildguard", "in/usr/local/bin", "in/usr/src/kdemo-1.0",
              "in/usr/lib/modules/%s/extra" % OTHER):
        (top / d).mkdir(parents=True)
    _download(top / "in/tmp/debs")
    shutil.copytree(os.path.dirname(kbuildguard_package.__file__), str(top / "in/opt/kbuildguard/kbuildguard"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    wrapper = top / "in/usr/local/bin/kbuildguard"
    wrapper.write_text("#!/bin/sh\nPYTHONPATH=/opt/kbuildguard exec python3 -m kbuildguard \"$@\"\n")
    wrapper.chmod(0o755)
    src = named_kdemo(tmp_path, "kdemo", kbuildguard_toml=False)
    for name in ("kdemo.c", "Kbuild"):
        shutil.copy(os.path.join(src, name), str(top / "in/usr/src/kdemo-1.0" / name))
    (top / "in/usr/src/kdemo-1.0/dkms.conf").write_text(DKMS_CONF)
    shutil.copy(vendor_module, str(top / "in/usr/lib/modules" / OTHER / "extra/kvendor.ko"))
    # `merged` is the lower layer's root with the upper's files on top: the cp -a of `in` happens
    # inside the namespace, after the overlay is mounted
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", SCRIPT, "sh", CHROOT, str(top)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=1800)
    out = proc.stdout.decode("utf-8", "replace")
    print(out)  # shown with -s, and by pytest on a failure
    assert proc.returncode == 0, out
    assert "== dpkg exit 0" in out, out  # non-blocking by default: the headers package is configured
    assert "install ok installed" in out, out
    order = out.split("== order\n", 1)[1].split("==", 1)[0].split()
    assert order.index("dkms") < order.index("zz-kbuildguard"), order  # run-parts' order: after DKMS's hook
    install = out.split("== install\n", 1)[1]
    # DKMS built kdemo for the new kernel first (its module is there), then the hook checked both
    assert "kdemo.ko" in out.split("== dpkg exit", 1)[1], out
    built = install.find("kdemo")
    verdict = install.find("before rebooting into %s: 1 of 2 out-of-tree module(s) will not load: extra/kvendor.ko" % OTHER)
    assert 0 <= built < verdict, install
    assert "rebuild needed because the CRC of module_layout changed" in install, install
    # DKMS's module, built for R from R's headers alone: a gate that needs R's image was not checked,
    # and the summary says so rather than "will load"
    assert "1 of 2 out-of-tree module(s) not fully checked: updates/dkms/kdemo.ko" in install, install
    assert "will not load: extra/kvendor.ko; 1 not fully checked" in install, install
    assert "disagrees about version of symbol module_layout" in install, install
