"""`make modules_install`: what kbuild installs is verified again, signature included (issue 18 case 8)."""

import json
import os

from conftest import require
from integration.conftest import kbuildguard
from integration.test_signing import key  # noqa: F401  (a fixture)
from kbuildguard.formats.module import read_module


def test_sign_and_install_strip_is_refused_and_a_signed_install_is_verified(debian_release, compilers, example, key,  # noqa: F811
                                                                            tmp_path):
    require(os.access("/usr/src/linux-headers-%s/scripts/sign-file" % debian_release, os.X_OK), "Debian's scripts/sign-file")
    repo = example("kdemo")
    sign = ["--sign", "--sign-key", key[0], "--sign-cert", key[1]]
    root = tmp_path / "root"
    # kbuild would strip the installed copy after kbuildguard signed it: refused before anything starts
    res = kbuildguard("make", "modules_install", "-C", repo, "--kernel", debian_release, *sign, "--",
                      "INSTALL_MOD_PATH=%s" % root, "INSTALL_MOD_STRIP=1")
    assert res.code == 2, res
    assert "removes the signature" in res.err
    assert not root.exists()
    # signed and installed: the installed copy is what was verified, its signature checked by openssl
    res = kbuildguard("make", "modules_install", "-C", repo, "--kernel", debian_release, *sign, "--",
                      "INSTALL_MOD_PATH=%s" % root)
    assert res.code == 0, res
    installed = os.path.join(str(root), "lib/modules", debian_release, "extra", "kdemo.ko")
    assert "installed %s: " % installed in res.out, res
    assert read_module(installed).signature is not None
    report = json.load(open(os.path.join(repo, ".kbuildguard", "report.json")))
    [entry] = report["installed"]
    assert entry["path"] == installed and entry["verdict"] == "ok"
    signature = [c for c in entry["checks"] if c["name"] == "signature"][0]
    # the installed copy's signature was verified with the key make --sign used; whether the kernel
    # trusts that key is not-checked with the headers alone (no kernel image: docs/signing.md)
    assert "verified with" in signature["message"], signature


def test_a_stripped_install_without_sign_is_verified_too(debian_release, compilers, example, tmp_path):
    repo = example("kdemo")
    root = tmp_path / "root"
    res = kbuildguard("make", "modules_install", "-C", repo, "--kernel", debian_release, "--",
                      "INSTALL_MOD_PATH=%s" % root, "INSTALL_MOD_STRIP=1")
    assert res.code == 0, res
    installed = os.path.join(str(root), "lib/modules", debian_release, "extra", "kdemo.ko")
    assert "installed %s: " % installed in res.out
    assert os.path.getsize(installed) < os.path.getsize(os.path.join(repo, "kdemo.ko"))  # kbuild really stripped it
