"""make --sign's key: the named pair, else DKMS's, else akmods'; [sign] in kbuildguard.toml is data."""

import os

import pytest

from kbuildguard.build import modsign
from kbuildguard.errors import ConfigError, SigningFailed, UsageError
from kbuildguard.project import parse_config
from kbuildguard.settings import CommandLine, FileSettings, resolve


def touch(root, rel):
    path = os.path.join(str(root), rel.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("x")
    return path


def test_conventional_keys_in_order(tmp_path):
    settings = resolve(CommandLine(), {})
    with pytest.raises(SigningFailed) as exc:
        modsign.choose_key(settings, str(tmp_path))
    assert exc.value.exit_code == 18 and "no machine-owner key" in exc.value.message
    touch(tmp_path, "/etc/pki/akmods/private/private_key.priv")
    touch(tmp_path, "/etc/pki/akmods/certs/public_key.der")
    assert modsign.choose_key(settings, str(tmp_path)).origin == "akmods' key"
    touch(tmp_path, "/var/lib/dkms/mok.key")
    touch(tmp_path, "/var/lib/dkms/mok.pub")
    found = modsign.choose_key(settings, str(tmp_path))
    assert found.origin == "DKMS's machine-owner key" and found.key.endswith("/var/lib/dkms/mok.key")


def test_named_key_wins_and_must_exist(tmp_path):
    key, cert = touch(tmp_path, "k.pem"), touch(tmp_path, "c.der")
    settings = resolve(CommandLine(), {"KBUILDGUARD_SIGN_KEY": key, "KBUILDGUARD_SIGN_CERT": cert})
    assert modsign.choose_key(settings, str(tmp_path)).origin == "KBUILDGUARD_SIGN_KEY"
    settings = resolve(CommandLine(sign_key="missing.pem", sign_cert=cert), {})
    with pytest.raises(SigningFailed):
        modsign.choose_key(settings, str(tmp_path), cwd=str(tmp_path))


def test_key_and_cert_come_from_one_layer():
    with pytest.raises(UsageError):  # the half on the command line: a usage error (exit 2)
        resolve(CommandLine(sign_key="/k"), {"KBUILDGUARD_SIGN_CERT": "/c"})
    with pytest.raises(ConfigError):  # the half in the environment: a setting's error (exit 12)
        resolve(CommandLine(), {"KBUILDGUARD_SIGN_CERT": "/c"})
    s = resolve(CommandLine(), {"KBUILDGUARD_SIGN_KEY": "/k", "KBUILDGUARD_SIGN_CERT": "/c"},
                FileSettings(sign_key="/repo/k", sign_cert="/repo/c"))
    assert (s.sign_key.value, s.sign_cert.origin) == ("/k", "KBUILDGUARD_SIGN_CERT")


def test_sign_table_holds_paths_only(tmp_path):
    path = str(tmp_path / "kbuildguard.toml")
    _, settings = parse_config('[sign]\nkey = "keys/mok.key"\ncert = "keys/mok.der"\n', path)
    assert settings.sign_key == str(tmp_path / "keys" / "mok.key")
    for bad in ('[sign]\nprogram = "/bin/sh"\n', '[sign]\nkey = "pkcs11:token=x"\ncert = "c"\n', '[sign]\nkey = 1\n',
                '[kbuildguard]\nsign_key = "k"\n'):
        with pytest.raises(ConfigError):
            parse_config(bad, path)
