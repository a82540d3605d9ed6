"""`kbuildguard sign` and make --sign's signing (build/modsign.py), with no process started.

sign-file is played by a fake runner that writes elfbuild's default module as the real sign-file
signed it with the fixture key (tests/data/signing/fixture-sha512.ko, made by make-fixtures.sh): the
signature is real, and kbuildguard verifies it in Python (formats/rsa.py) with the certificate
make --sign names (fixture-key.der), as it does after a real sign-file. ``impostor`` writes the one
signed by another key that copies the fixture key's names: the verification must refuse it. The real
sign-file is exercised by the integration suite (tests/integration/test_sign*.py, the qemu gates).
"""

import json
import lzma
import os
import struct

import pytest

from conftest import make_exe, make_tree
from elfbuild import build_module
from kbuildguard.build import modsign
from kbuildguard.cli import main
from kbuildguard.errors import SigningFailed
from kbuildguard.formats.module import read_module
from kbuildguard.formats.pkcs7 import MAGIC
from kbuildguard.run import CommandFailed, Completed
from kbuildguard.settings import CommandLine, resolve
from kbuildguard.target.kernel import Selector
from kbuildguard.target.kernel import resolve as resolve_kernel

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "signing")
CERT = os.path.join(DATA, "fixture-key.der")


def signature_blob() -> bytes:
    with open(os.path.join(DATA, "issuer-serial-sha256.p7"), "rb") as f:
        sig = f.read()
    # struct module_signature (include/linux/module_signature.h): algo, hash, id_type=PKEY_ID_PKCS7 (2),
    # signer_len, key_id_len, pad[3], sig_len (big endian); then the magic string
    return sig + struct.pack(">BBBBB3xI", 0, 0, 2, 0, 0, len(sig)) + MAGIC


class SignRunner:
    """scripts/sign-file leaves a really signed module (by the fixture key, or an impostor's)."""

    def __init__(self, sign_status=0, impostor=False):
        self.sign_status = sign_status
        self.impostor = impostor
        self.calls = []

    def which(self, program, env=None):
        return "/usr/bin/" + program

    def close(self):
        pass

    def probe(self, argv, cwd=None, env=None, ok_returncodes=(0,), timeout=None, remember=False):
        self.calls.append(list(argv))
        if argv[0].endswith("sign-file"):
            if self.sign_status:
                raise CommandFailed(argv, cwd, self.sign_status, "sign-file: error reading private key")
            signed = "fixture-impostor-sha256.ko" if self.impostor else "fixture-sha512.ko"
            with open(os.path.join(DATA, signed), "rb") as src, open(argv[-1], "wb") as f:
                f.write(src.read())
            return Completed(list(argv), 0, "", "")
        raise AssertionError("kbuildguard started %r: signatures are verified in Python" % (argv,))

    def signed(self):
        return [c for c in self.calls if c[0].endswith("sign-file")]


def tree(tmp_path, sig_hash="sha512", sign_file=True, release="6.1.0-56-amd64"):
    root = make_tree(tmp_path / "tree", release=release)
    with open(os.path.join(root, "include/config/auto.conf"), "a") as f:
        f.write("CONFIG_MODULE_SIG=y\n" + ('CONFIG_MODULE_SIG_HASH="%s"\n' % sig_hash if sig_hash else ""))
    if sign_file:
        make_exe(os.path.join(root, "scripts/sign-file"))
    return root


def module(tmp_path, name="kdemo.ko", **kw):
    folder = tmp_path / "mods"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(build_module(**kw))
    return str(path)


def key(tmp_path):
    path = tmp_path / "signing.key"
    path.write_text("not read by the fake sign-file\n")
    return str(path)


def run(capsys, runner, *argv):
    code = main(["sign"] + list(argv), env={"PATH": "/nonexistent"}, runner=lambda console: runner)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_sign_signs_then_verifies(tmp_path, capsys):
    t, ko = tree(tmp_path), module(tmp_path)
    runner = SignRunner()
    code, out, err = run(capsys, runner, "--kernel-dir", t, "--sign-key", key(tmp_path), "--sign-cert", CERT, ko)
    assert code == 0, err
    (argv,) = runner.signed()
    assert argv == [os.path.join(t, "scripts/sign-file"), "sha512", key(tmp_path), CERT, ko]
    assert "with --sign-key (" in err and "sha512 (CONFIG_MODULE_SIG_HASH of 6.1.0-56-amd64)" in err
    info = read_module(ko)
    assert info.signature is not None
    # the signed copy was verified in Python with the certificate make --sign named (trust is not-checked:
    # the fake tree has no kernel image)
    assert "signature verified with kbuildguard fixture signing key" in out, out


def test_sign_json(tmp_path, capsys):
    t, ko = tree(tmp_path), module(tmp_path)
    code, out, err = run(capsys, SignRunner(), "--json", "--kernel-dir", t, "--sign-key", key(tmp_path), "--sign-cert", CERT, ko)
    assert code == 0, err
    data = json.loads(out)
    assert data["signed"] is True and data["kernel"]["release"] == "6.1.0-56-amd64"
    assert data["signer"] == {"program": os.path.join(t, "scripts/sign-file"), "hash": "sha512",
                              "hash_source": "CONFIG_MODULE_SIG_HASH of 6.1.0-56-amd64", "key": key(tmp_path),
                              "certificate": CERT, "key_origin": "--sign-key"}
    (mod,) = data["modules"]
    assert mod["path"] == ko and mod["verdict"] == "ok"
    assert {"match", "settings"} <= set(data)


def test_sign_json_when_another_gate_refuses(tmp_path, capsys):
    t = tree(tmp_path)
    ko = module(tmp_path, vermagic="5.10.0-19-amd64 SMP mod_unload modversions ")
    code, out, _ = run(capsys, SignRunner(), "--json", "--kernel-dir", t, "--sign-key", key(tmp_path), "--sign-cert", CERT, ko)
    data = json.loads(out)
    assert code == 8 and data["signed"] is False and data["modules"][0]["verdict"] == "mismatch"


def test_signing_twice_replaces_the_signature(tmp_path, capsys):
    t, ko = tree(tmp_path), module(tmp_path)
    argv = ["--kernel-dir", t, "--sign-key", key(tmp_path), "--sign-cert", CERT, ko]
    assert run(capsys, SignRunner(), *argv)[0] == 0
    once = os.path.getsize(ko)
    assert run(capsys, SignRunner(), *argv)[0] == 0
    assert os.path.getsize(ko) == once  # sign-file appends: the old signature was dropped first


def test_a_module_another_gate_refuses_is_never_signed(tmp_path, capsys):
    t = tree(tmp_path)
    ko = module(tmp_path, vermagic="5.10.0-19-amd64 SMP mod_unload modversions ")
    runner = SignRunner()
    code, out, _ = run(capsys, runner, "--kernel-dir", t, "--sign-key", key(tmp_path), "--sign-cert", CERT, ko)
    assert code == 8 and runner.signed() == []
    assert read_module(ko).signature is None


def test_sign_file_failing_is_exit_18(tmp_path, capsys):
    t, ko = tree(tmp_path), module(tmp_path)
    code, _, err = run(capsys, SignRunner(sign_status=1), "--kernel-dir", t, "--sign-key", key(tmp_path),
                       "--sign-cert", CERT, ko)
    assert code == 18 and "sign-file failed on kdemo.ko" in err


def test_a_signature_that_does_not_verify_is_a_mismatch(tmp_path, capsys):
    t, ko = tree(tmp_path), module(tmp_path)
    code, out, _ = run(capsys, SignRunner(impostor=True), "--kernel-dir", t, "--sign-key", key(tmp_path),
                       "--sign-cert", CERT, ko)
    assert code == 8


def test_a_compressed_module_is_refused(tmp_path, capsys):
    t = tree(tmp_path)
    path = tmp_path / "mods"
    path.mkdir()
    (path / "kdemo.ko.xz").write_bytes(lzma.compress(build_module(), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32))
    runner = SignRunner()
    code, _, err = run(capsys, runner, "--kernel-dir", t, "--sign-key", key(tmp_path), "--sign-cert", CERT, str(path))
    assert code == 18 and "only plain .ko files are signed" in err and runner.signed() == []


def test_a_certificate_that_is_no_certificate_is_exit_18(tmp_path, capsys):
    t, ko = tree(tmp_path), module(tmp_path)
    code, _, err = run(capsys, SignRunner(), "--kernel-dir", t, "--sign-key", key(tmp_path), "--sign-cert",
                       key(tmp_path), ko)
    assert code == 18 and "the signing certificate cannot be read" in err


def test_no_sign_file_in_the_tree_is_exit_18_before_anything(tmp_path, capsys):
    t, ko = tree(tmp_path, sign_file=False), module(tmp_path)
    runner = SignRunner()
    code, _, err = run(capsys, runner, "--kernel-dir", t, "--sign-key", key(tmp_path), "--sign-cert", CERT, ko)
    assert code == 18 and "has no scripts/sign-file" in err and runner.calls == []


def test_sign_file_not_executable(tmp_path):
    t = tree(tmp_path)
    os.chmod(os.path.join(t, "scripts/sign-file"), 0o644)
    with pytest.raises(SigningFailed) as exc:
        modsign.sign_file(resolve_kernel(Selector(kernel_dir=t)))
    assert "is not executable" in exc.value.message


def test_prepare_uses_the_kernels_hash_or_sha256(tmp_path):
    settings = resolve(CommandLine(sign_key=key(tmp_path), sign_cert=CERT), {})
    target = resolve_kernel(Selector(kernel_dir=tree(tmp_path, sig_hash="")))
    signer = modsign.prepare(target, target.tree_config, settings)
    assert signer.hash == "sha256" and "CONFIG_MODULE_SIG_HASH is unset" in signer.hash_source
    assert "sha256" in modsign.describe(signer) and modsign.describe(None) == "not signed"


def test_a_pkcs11_key_is_passed_as_it_is(tmp_path):
    settings = resolve(CommandLine(sign_key="pkcs11:token=mok;object=key", sign_cert=CERT), {})
    chosen = modsign.choose_key(settings, cwd=str(tmp_path))
    assert chosen.key == "pkcs11:token=mok;object=key" and chosen.cert == CERT


def test_a_relative_key_is_taken_from_the_working_folder(tmp_path):
    key(tmp_path)
    settings = resolve(CommandLine(sign_key="signing.key", sign_cert=CERT), {})
    assert modsign.choose_key(settings, cwd=str(tmp_path)).key == str(tmp_path / "signing.key")


def test_unsign_only_what_is_signed(tmp_path):
    ko = module(tmp_path)
    assert modsign.unsign(ko) is False
    plain = os.path.getsize(ko)
    with open(ko, "ab") as f:
        f.write(signature_blob())
    assert modsign.unsign(ko) is True and os.path.getsize(ko) == plain


def test_sign_in_a_sysroot_finds_its_machine_owner_key(tmp_path, capsys):
    root = tmp_path / "root"
    t = tree(root)
    for rel, src in (("var/lib/dkms/mok.key", None), ("var/lib/dkms/mok.pub", CERT)):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(open(src, "rb").read() if src else b"key")
    ko = module(tmp_path)
    runner = SignRunner()
    code, _, err = run(capsys, runner, "--sysroot", str(root), "--kernel-dir", t, ko)
    assert code == 0, err
    assert runner.signed()[0][2] == str(root / "var/lib/dkms/mok.key")
    assert "DKMS's machine-owner key" in err
