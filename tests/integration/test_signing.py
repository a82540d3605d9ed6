"""The signing round trip for real: a generated key, Debian's scripts/sign-file, openssl, rpmbuild."""

import glob
import json
import os
import shutil
import subprocess

import pytest

from conftest import require
from integration.conftest import image_root, kbuildguard
from integration.test_packagers import _rpmbuild
from kbuildguard.formats.module import read_module
from kbuildguard.formats.pkcs7 import parse_signer

GENKEY = """[ req ]
default_bits = 2048
distinguished_name = req_distinguished_name
prompt = no
string_mask = utf8only
x509_extensions = myexts
[ req_distinguished_name ]
O = kbuildguard integration
CN = kbuildguard integration signing key
[ myexts ]
basicConstraints=critical,CA:FALSE
keyUsage=digitalSignature
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
"""


@pytest.fixture
def key(tmp_path):
    """A key made as the kernel's certs/Makefile makes its build key."""
    require(shutil.which("openssl") is not None, "openssl")
    conf = tmp_path / "x509.genkey"
    conf.write_text(GENKEY)
    key, cert = str(tmp_path / "signing_key.pem"), str(tmp_path / "signing_key.x509")
    subprocess.run(["openssl", "req", "-new", "-nodes", "-utf8", "-sha256", "-days", "3650", "-batch", "-x509", "-config",
                    str(conf), "-outform", "DER", "-out", cert, "-keyout", key], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return key, cert


@pytest.fixture
def signed_kdemo(debian_release, compilers, example, key):
    require(os.access("/usr/src/linux-headers-%s/scripts/sign-file" % debian_release, os.X_OK), "Debian's scripts/sign-file")
    repo = example("kdemo")
    res = kbuildguard("make", "-C", repo, "--kernel", debian_release, "--sign", "--sign-key", key[0], "--sign-cert", key[1])
    assert res.code == 0, res
    assert "signing with" in res.err and "--sign-key" in res.err
    return os.path.join(repo, "kdemo.ko")


def test_make_sign_round_trip_and_check_reports_the_signer(debian_release, signed_kdemo, key):
    sig = read_module(signed_kdemo).signature
    assert sig is not None
    signer = parse_signer(sig.blob)
    assert signer.digest == "sha256" and signer.id.issuer_cn == "kbuildguard integration signing key"
    res = kbuildguard("check", "-v", "--kernel", debian_release, signed_kdemo)
    assert res.code == 0, res
    assert "signed by kbuildguard integration signing key" in res.out and "taints itself" in res.out
    res = kbuildguard("check", "-v", "--kernel", debian_release, "--trusted-cert", key[1], signed_kdemo)
    assert res.code == 0, res
    assert "trusted: --trusted-cert" in res.out and "signature verified with" in res.out


def test_tampered_module_is_rejected_even_unenforced(debian_release, signed_kdemo, key, tmp_path):
    data = bytearray(open(signed_kdemo, "rb").read())
    data[200] ^= 0xFF
    tampered = tmp_path / "kdemo.ko"
    tampered.write_bytes(bytes(data))
    res = kbuildguard("check", "-v", "--kernel", debian_release, "--trusted-cert", key[1], str(tampered))
    assert res.code == 8, res
    assert "does not verify" in res.out and "the kernel refuses it, enforced or not" in res.out


def test_enforced_target_rejects_an_unknown_signer_and_trusts_its_own(debian_release, signed_kdemo, key):
    root = image_root(debian_release)
    require(os.path.isdir(os.path.join(root, "lib", "modules", debian_release, "kernel")), "the kernel image root (.ci/run)")
    res = kbuildguard("check", "-v", "--sysroot", root, "--kernel", debian_release, "--sig-enforce", "yes", signed_kdemo)
    assert res.code == 8 and "unavailable key is rejected" in res.out, res
    own = sorted(glob.glob(os.path.join(root, "lib", "modules", debian_release, "kernel", "net", "key", "*.ko*")))[:1]
    require(bool(own), "an in-tree module in the image root")
    res = kbuildguard("check", "-v", "--sysroot", root, "--kernel", debian_release, "--sig-enforce", "yes", own[0])
    assert "trusted: the signer of the kernel's own modules" in res.out, res
    res = kbuildguard("check", "-v", "--sysroot", root, "--kernel", debian_release, "--sig-enforce", "yes",
                      "--trusted-cert", key[1], signed_kdemo)
    assert res.code == 0, res


def test_make_sign_with_a_missing_key_is_a_clear_error_and_builds_nothing(debian_release, compilers, example, key,
                                                                            tmp_path):
    repo = example("kdemo")
    res = kbuildguard("make", "-C", repo, "--kernel", debian_release, "--sign", "--sign-key", str(tmp_path / "nope.pem"),
                      "--sign-cert", key[1])
    assert res.code == 18 and "no readable file" in res.err, res
    assert not os.path.exists(os.path.join(repo, "kdemo.ko"))


def test_rpm_built_with_the_macros_carries_the_signature(debian_release, compilers, key, tmp_path):
    proc, rpms = _rpmbuild(tmp_path, debian_release, ["--define", "kbuildguard_sign 1", "--define",
                                                      "kbuildguard_sign_flags --sign-key %s --sign-cert %s" % key])
    out = proc.stdout.decode()
    assert proc.returncode == 0, out[-3000:]
    assert out.index("brp-strip") < out.index("kbuildguard sign"), "signing must come after rpm's strip step"
    require(shutil.which("cpio") is not None, "cpio")
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run("rpm2cpio %s | cpio -idm --quiet" % rpms[0], shell=True, cwd=str(root), check=True)
    ko = str(root / "lib" / "modules" / debian_release / "extra" / "kdemo.ko")
    assert read_module(ko).signature is not None
    res = kbuildguard("check", "-v", "--kernel", debian_release, "--trusted-cert", key[1], ko)
    assert res.code == 0 and "signature verified with" in res.out, res


def test_sign_command_signs_nothing_that_fails_a_gate(debian_release, compilers, example, key, tmp_path):
    """`kbuildguard sign DIR` (the RPM macros' step) holds every module to the other gates first: a
    module the kernel would refuse must not leave carrying a good signature (the tester's finding)."""
    repo = example("kdemo")
    assert kbuildguard("make", "-C", repo, "--kernel", debian_release).code == 0
    folder = tmp_path / "payload"
    folder.mkdir()
    good, bad = str(folder / "kdemo.ko"), str(folder / "other.ko")
    shutil.copy(os.path.join(repo, "kdemo.ko"), good)
    data = open(good, "rb").read()
    with open(bad, "wb") as f:  # the same module, its vermagic made to differ in a flag (same length)
        f.write(data.replace(b" preempt mod_unload", b" preemPT mod_unload", 1))
    before = {p: open(p, "rb").read() for p in (good, bad)}
    res = kbuildguard("sign", str(folder), "--kernel", debian_release, "--sign-key", key[0], "--sign-cert", key[1])
    assert res.code == 8 and "vermagic" in res.out + res.err, res
    assert {p: open(p, "rb").read() for p in (good, bad)} == before  # nothing signed, not even the good one
    # issue 22: both are named, the good one as held back with the bad one
    assert "1 of 2 module(s) fail a gate" in res.err and bad in res.err, res
    assert "%s passed and was not signed either" % good in res.err, res
    assert good + ":" in res.out and bad + ":" in res.out, res
    # --json: the reports as JSON on stdout, even when nothing was signed
    res = kbuildguard("sign", str(folder), "--kernel", debian_release, "--sign-key", key[0], "--sign-cert", key[1], "--json")
    assert res.code == 8, res
    data = json.loads(res.out)
    assert data["signed"] is False and sorted(m["path"] for m in data["modules"]) == sorted([good, bad])
    os.unlink(bad)
    res = kbuildguard("sign", str(folder), "--kernel", debian_release, "--sign-key", key[0], "--sign-cert", key[1], "--json")
    assert res.code == 0, res
    data = json.loads(res.out)
    assert data["signed"] is True and [m["path"] for m in data["modules"]] == [good]
    assert read_module(good).signature is not None
