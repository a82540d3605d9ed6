"""The keys the target kernel checks a module signature against: which keyrings count (per
distribution, from each one's kernel sources), and what kbuildguard can see of each.

Which keyrings count, read from the sources:

* upstream 6.1 kernel/module/signing.c mod_verify_sig(): ``verify_pkcs7_signature(...,
  VERIFY_USE_SECONDARY_KEYRING, ...)``; certs/system_keyring.c: with CONFIG_SECONDARY_TRUSTED_KEYRING
  that is .secondary_trusted_keys, which links .builtin_trusted_keys and, with
  CONFIG_INTEGRITY_MACHINE_KEYRING, .machine; without it .builtin_trusted_keys alone. .machine holds
  the MOK keys only when shim set MokListTrustedRT (security/integrity/platform_certs/
  machine_keyring.c trust_moklist()), else they go to .platform, which modules never use upstream.
* Debian 6.1 (linux-source-6.1 6.1.192-3, Debian's patches applied): mod_verify_sig() tries
  VERIFY_USE_PLATFORM_KEYRING when the first answer is -ENOKEY (patch "KEYS: Make use of platform
  keyring for module signature verify"), so the UEFI db keys count; trust_moklist() returns true
  unconditionally, so every MOK key goes to .machine. security/integrity/platform_certs/load_uefi.c
  load_uefi_certs(): "the MOK/MOKx can not be trusted when secure boot is disabled" -- MOK keys are
  loaded only under Secure Boot; db whenever the firmware has it (an EFI machine).
* Ubuntu, Fedora/RHEL, Amazon Linux, SUSE carry their own keyring patches, not confirmed here: for
  them kbuildguard knows the built-in keys only and says a signer it does not find is not checked.

What can be seen: the built-in keys are in the kernel image (formats/certlist.py); on the running
machine the UEFI variables under /sys/firmware/efi hold db and MokListRT, and the SecureBoot state;
a sosreport holds ``mokutil --sb-state`` and ``mokutil --list-enrolled`` output. Keys an
administrator adds at run time to .secondary_trusted_keys (keyctl, signed by a built-in key) are
assumed absent unless /proc/keys shows them.
"""

import hashlib
import json
import os
import re
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import bounded
from kbuildguard.errors import BadInput
from kbuildguard.formats import certlist
from kbuildguard.formats.certlist import CertList
from kbuildguard.formats.pkcs7 import Certificate, SignerId, parse_certificate, read_certificates
from kbuildguard.formats.rsa import PublicKey
from kbuildguard.probecache import cache_home
from kbuildguard.strenum import StrEnum
from kbuildguard.target.kernel import KernelTarget

MAX_IMAGE_BYTES = 256 * 1024 * 1024  # a compressed kernel image; vmlinux files with debug info are larger
MAX_TEXT_BYTES = 4 * 1024 * 1024
EFI = "/sys/firmware/efi"
GLOBAL_GUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"  # EFI_GLOBAL_VARIABLE: SecureBoot
DB_GUID = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"  # EFI_IMAGE_SECURITY_DATABASE_GUID: db
SHIM_LOCK_GUID = "605dab50-e046-4300-abb6-3dd810dd8b23"  # EFI_SHIM_LOCK_GUID: MokListRT
SOS_BOOT = "sos_commands/boot"


class Distribution(StrEnum):
    UPSTREAM = "upstream"
    DEBIAN = "Debian"
    VENDOR = "a distribution whose keyring patches kbuildguard does not model"


class Keyring(StrEnum):
    BUILTIN = ".builtin_trusted_keys"
    SECONDARY = ".secondary_trusted_keys"
    MACHINE = ".machine"
    PLATFORM = ".platform"


class ListedKey(NamedTuple):
    """A certificate as ``mokutil --list-enrolled`` / ``--db`` prints it (X509_print text)."""

    issuer_cn: str
    serial: bytes
    skid: bytes
    key: Optional[PublicKey]
    source: str

    def describe(self) -> str:
        return "%s, serial %s (%s)" % (self.issuer_cn or "unnamed", self.serial.hex(), self.source)

    def matches(self, signer: SignerId) -> bool:
        """By key id, or by issuer CN and serial: the text has no issuer DER, so this is looser than
        the kernel's match; the signature check decides."""
        if signer.skid:
            return signer.skid == self.skid
        return signer.issuer_cn == self.issuer_cn and signer.serial.lstrip(b"\0") == self.serial.lstrip(b"\0")


class Keys(NamedTuple):
    """What kbuildguard sees of the keyrings that count for the target's module signatures."""

    distribution: Distribution
    counted: Tuple[Keyring, ...]
    certificates: Tuple[Certificate, ...]  # with their key: the image's list, db, MokListRT
    listed: Tuple[ListedKey, ...]  # mokutil's text
    builtin_missing: str  # why the built-in list is not known ("" when it is)
    unseen: Tuple[str, ...]  # keyrings that count and whose keys kbuildguard cannot see, with why
    sources: Tuple[str, ...]


def distribution(target: KernelTarget) -> Distribution:
    """Whose patches the kernel carries: its compiler's vendor string names the distribution
    ("Debian 12.2.0-14"); releases name theirs (.el9, .fc40, -generic, .amzn2)."""
    vendor = target.compiler.vendor
    # Debian's ABI-numbered releases ("6.1.0-57-amd64"): a kernel someone built with Debian's
    # compiler is no Debian kernel
    if vendor.startswith("Debian") and re.match(r"\d+\.\d+\.\d+-\d+(\+bpo)?-[a-z]", target.release):
        return Distribution.DEBIAN
    if vendor.startswith(("Ubuntu", "Red Hat", "SUSE", "Amazon")) or \
            re.search(r"\.(el|fc|amzn)\d|-(generic|aws|azure|gcp|kvm|lowlatency|oracle)$|-default$", target.release):
        return Distribution.VENDOR
    return Distribution.UPSTREAM


def counted_keyrings(dist: Distribution, config: Mapping[str, str]) -> Tuple[Keyring, ...]:
    """The keyrings whose keys mod_verify_sig() accepts (see the module docstring)."""
    out = [Keyring.BUILTIN]
    if config.get("CONFIG_SECONDARY_TRUSTED_KEYRING") == "y":
        out.append(Keyring.SECONDARY)
        if config.get("CONFIG_INTEGRITY_MACHINE_KEYRING") == "y":
            out.append(Keyring.MACHINE)
    if dist is Distribution.DEBIAN and config.get("CONFIG_INTEGRITY_PLATFORM_KEYRING") == "y":
        out.append(Keyring.PLATFORM)
    return tuple(out)


# -- the built-in keys ------------------------------------------------------------------------

def image_candidates(target: KernelTarget, explicit: Optional[str]) -> List[str]:
    if explicit:
        return [explicit]
    root = target.sysroot.rstrip("/") if target.sysroot not in ("", "/") else ""
    found = [os.path.join(root + "/boot", name % target.release) for name in ("vmlinuz-%s", "vmlinux-%s", "Image-%s")]
    if target.build_dir:  # a tree the kernel was built in holds the kernel itself
        found += [os.path.join(target.build_dir, "vmlinux")]
    return [p for p in found if os.path.isfile(p)]


def _cache_file(path: str, env: Optional[Mapping[str, str]]) -> Optional[str]:
    """Where the list read from PATH is remembered, in the cache folder ENV names; None: not remembered
    (no environment given: never os.environ's, issue 21)."""
    if env is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = hashlib.sha256(("%s|%d|%d" % (os.path.abspath(path), st.st_size, int(st.st_mtime))).encode()).hexdigest()[:24]
    return os.path.join(cache_home(env), "certs-%s.json" % key)


def builtin_certificates(path: str, env: Optional[Mapping[str, str]]) -> CertList:
    """The image's system certificate list; remembered by path, size and time (decompressing a
    vmlinuz takes seconds) in ENV's cache folder (the Context's environment); ENV None: not remembered."""
    cache = _cache_file(path, env)
    if cache:
        try:
            ders, found = json.loads(bounded.read_text(cache, bounded.STATE))
            return CertList(tuple(parse_certificate(bytes.fromhex(d), "built into %s" % path) for d in ders), str(found))
        except (OSError, ValueError, TypeError, BadInput):
            pass
    try:
        data = bounded.read_file(path, MAX_IMAGE_BYTES, "a kernel image")
    except OSError as exc:
        return CertList((), "%s: cannot read: %s" % (path, exc.strerror or exc))
    except BadInput as exc:  # a device, or larger than any kernel image
        return CertList((), "%s: not read" % exc.message)
    try:
        found = certlist.system_certificates(data, path)
    except BadInput as exc:
        return CertList((), exc.message)
    found = found._replace(certificates=tuple(c._replace(source="built into %s" % path) for c in found.certificates))
    if cache:
        try:  # a cache that cannot be written is no error
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            with open(cache, "w", encoding="utf-8") as f:
                json.dump([[c.der.hex() for c in found.certificates], found.found], f)
        except OSError:
            pass
    return found


# -- Secure Boot and MOK ----------------------------------------------------------------------

def _read_bytes(path: str, limit: int = MAX_TEXT_BYTES) -> Optional[bytes]:
    try:
        return bounded.read_head(path, limit, "a text file of the kernel's")
    except (OSError, BadInput):
        return None


def parse_sb_state(text: str) -> Optional[bool]:
    """``mokutil --sb-state`` (mokutil 0.6.0 print_sb_state()): "SecureBoot enabled", "SecureBoot
    disabled", "This system doesn't support Secure Boot"; "SecureBoot validation is disabled in
    shim" follows "enabled" when shim does not check. None: none of these."""
    if "SecureBoot enabled" in text:
        return True
    if "SecureBoot disabled" in text or "doesn't support Secure Boot" in text:
        return False
    return None


_HEX_BYTES = re.compile(r"^\s*((?:[0-9a-fA-F]{2}:)*[0-9a-fA-F]{2}):?\s*$")


def parse_mokutil_list(text: str, source: str) -> Tuple[ListedKey, ...]:
    """``mokutil --list-enrolled`` or ``--db``: "[key N]", "SHA1 Fingerprint: ..", then OpenSSL's
    X509_print() of the certificate ("Serial Number:", "Issuer: CN = ..", "Modulus:", "Exponent:",
    "X509v3 Subject Key Identifier:"). Keys listed as hashes only are skipped."""
    keys: List[ListedKey] = []
    for block in re.split(r"^\[key \d+\]\s*$", text, flags=re.M)[1:]:
        lines = block.splitlines()
        serial, skid, modulus = b"", b"", b""
        issuer_cn, exponent = "", 0
        for i, line in enumerate(lines):
            stripped = line.strip()
            if stripped.startswith("Serial Number:"):
                rest = stripped[len("Serial Number:"):].strip()
                m = re.match(r"(\d+) \(0x([0-9a-f]+)\)", rest)
                if m:
                    value = int(m.group(2), 16)
                    serial = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
                elif i + 1 < len(lines) and _HEX_BYTES.match(lines[i + 1]):
                    serial = bytes.fromhex(lines[i + 1].strip().rstrip(":").replace(":", ""))
            elif stripped.startswith("Issuer:"):
                m = re.search(r"CN ?= ?([^,/]+)", stripped)
                issuer_cn = m.group(1).strip() if m else ""
            elif stripped.startswith("Modulus:"):
                hexes = []
                for more in lines[i + 1:]:
                    if not _HEX_BYTES.match(more):
                        break
                    hexes.append(more.strip().rstrip(":").replace(":", ""))
                modulus = bytes.fromhex("".join(hexes))
            elif stripped.startswith("Exponent:"):
                m = re.match(r"Exponent: (\d+)", stripped)
                exponent = int(m.group(1)) if m else 0
            elif stripped.startswith("X509v3 Subject Key Identifier") and i + 1 < len(lines) and \
                    _HEX_BYTES.match(lines[i + 1]):
                skid = bytes.fromhex(lines[i + 1].strip().rstrip(":").replace(":", ""))
        if serial or skid:
            key = PublicKey(int.from_bytes(modulus, "big"), exponent) if modulus and exponent else None
            keys.append(ListedKey(issuer_cn, serial, skid, key, source))
    return tuple(keys)


_TEST_KEY = re.compile(r"^(?:CA of )?(.+?) is (already enrolled|already in db|not enrolled|blocked in \w+|"
                       r"already in the (?:MokX )?(?:enrollment|deletion) request)\s*$", re.M)


def parse_test_key(text: str) -> List[Tuple[str, str]]:
    """``mokutil --test-key FILE``: exit status 0 whether the key is enrolled, pending, in db or
    blocked, so the words decide (mokutil 0.6.0 test_key(); the strings of Debian's mokutil binary):
    "FILE is already enrolled" (MokList: "mok"), "FILE is already in db" ("db"); "FILE is not
    enrolled", "FILE is blocked in dbx" / "in MokListXRT", "FILE is already in the enrollment
    request" (pending until the next boot) are no enrolment (""). [(FILE, "mok" | "db" | "")]."""
    out: List[Tuple[str, str]] = []
    for m in _TEST_KEY.finditer(text):
        words = m.group(2)
        out.append((m.group(1), "mok" if words == "already enrolled" else "db" if words == "already in db" else ""))
    return out


def _efivar(efi: str, name: str, guid: str) -> Optional[bytes]:
    """A UEFI variable from efivarfs: 4 bytes of attributes, then the value."""
    data = _read_bytes(os.path.join(efi, "efivars", "%s-%s" % (name, guid)))
    return data[4:] if data is not None and len(data) >= 4 else None


class Firmware(NamedTuple):
    """What the machine's UEFI says (live) or what a sosreport captured."""

    secure_boot: Optional[bool]  # None: unknown
    secure_boot_source: str
    mok: Optional[Tuple[Certificate, ...]]  # MokListRT's certificates (live), None: not read
    mok_listed: Optional[Tuple[ListedKey, ...]]  # mokutil --list-enrolled (sosreport)
    db: Optional[Tuple[Certificate, ...]]
    db_listed: Optional[Tuple[ListedKey, ...]]
    efi: Optional[bool]  # an EFI machine (None: unknown)
    # upstream machine_keyring.c uefi_check_trust_mok_keys(): the MOKvar table holds
    # MokListTrustedRT (/sys/firmware/efi/mok-variables); None: unknown
    mok_trusted: Optional[bool] = None
    # keys mokutil --test-key says are enrolled (MOK) or in db: known present, the list not complete
    tested_mok: Tuple[Certificate, ...] = ()
    tested_db: Tuple[Certificate, ...] = ()


def live_firmware(efi: str = EFI) -> Firmware:
    """This machine's firmware: efivarfs (SecureBoot, db, MokListRT) and the MOKvar table
    (drivers/firmware/efi/mokvar-table.c: ``mok-variables/``, where shim leaves MokListRT and
    MokListTrustedRT)."""
    if not os.path.isdir(efi):
        return Firmware(secure_boot=False, secure_boot_source="no %s: not booted by UEFI" % efi, mok=(), mok_listed=None, db=(), db_listed=None, efi=False,
                        mok_trusted=False)
    value = _efivar(efi, "SecureBoot", GLOBAL_GUID)
    secure_boot = bool(value[0]) if value else None
    mok: Optional[Tuple[Certificate, ...]] = None
    db: Optional[Tuple[Certificate, ...]] = None
    raw = _read_bytes(os.path.join(efi, "mok-variables", "MokListRT"))
    if raw is None:
        raw = _efivar(efi, "MokListRT", SHIM_LOCK_GUID)
    try:
        mok = certlist.efi_signature_lists(raw, "MokListRT") if raw is not None else None
    except BadInput:
        pass
    raw = _efivar(efi, "db", DB_GUID)
    try:
        db = certlist.efi_signature_lists(raw, "UEFI db") if raw is not None else None
    except BadInput:
        pass
    return Firmware(secure_boot=secure_boot, secure_boot_source="%s/efivars/SecureBoot-%s" % (efi, GLOBAL_GUID) if value else
                    "SecureBoot variable not readable", mok=mok, mok_listed=None, db=db, db_listed=None, efi=True,
                    mok_trusted=os.path.exists(os.path.join(efi, "mok-variables", "MokListTrustedRT")))


def captured_firmware(root: str, files: Sequence[str] = ()) -> Firmware:
    """mokutil's output: a sosreport's sos_commands/boot/mokutil_--sb-state, mokutil_--list-enrolled
    and mokutil_--db (sos names a command's output file after the command, spaces as underscores),
    and the files given with ``check --mokutil`` (a name with "db" in it holds ``--db``'s list)."""
    texts: List[Tuple[str, str]] = []
    paths = [os.path.join(root, SOS_BOOT, name) for name in ("mokutil_--sb-state", "mokutil_--list-enrolled",
                                                              "mokutil_--db")] if root else []
    for path in paths:
        raw = _read_bytes(path)
        if raw is not None:
            texts.append((path, raw.decode("utf-8", "replace")))
    for path in files:  # named by the user: bounded as every input is (a device or an endless FIFO: one line, exit 3)
        try:
            given = bounded.read_file(path, MAX_TEXT_BYTES, "a mokutil output")
        except OSError as exc:
            raise BadInput("%s: cannot read the mokutil output: %s" % (path, exc.strerror or exc))
        texts.append((path, given.decode("utf-8", "replace")))
    return firmware_from_texts(texts)


def firmware_from_texts(texts: Sequence[Tuple[str, str]]) -> Firmware:
    secure_boot: Optional[bool] = None
    efi: Optional[bool] = None
    state_source = "not captured"
    mok: Optional[List[ListedKey]] = None
    db: Optional[List[ListedKey]] = None
    tested: Dict[str, List[Certificate]] = {"mok": [], "db": []}
    for path, text in texts:
        name = os.path.basename(path)
        for tested_file, where in parse_test_key(text):
            raw = _read_bytes(tested_file, 1024 * 1024) if where else None
            if raw is not None:  # the key file named, when it is here too (DKMS's /var/lib/dkms/mok.pub)
                try:
                    tested[where].extend(c._replace(source="%s (mokutil --test-key: %s)" % (tested_file, where))
                                         for c in read_certificates(raw, tested_file))
                except BadInput:
                    pass
        if "EFI variables are not supported on this system" in text:  # mokutil on a machine booted by BIOS
            secure_boot, efi, state_source = False, False, "%s: EFI variables are not supported" % path
            continue
        state = parse_sb_state(text)
        if state is not None:
            secure_boot, state_source = state, path
            efi = True
        if re.search(r"^\[key \d+\]", text, re.M) or "MokListRT is empty" in text or "is empty" in text:
            keys = list(parse_mokutil_list(text, "mokutil output %s" % path))
            if "db" in name.replace("dbx", ""):
                db = (db or []) + keys
            else:
                mok = (mok or []) + keys
            efi = True if efi is None else efi
    return Firmware(secure_boot=secure_boot, secure_boot_source=state_source, mok=None, mok_listed=tuple(mok) if mok is not None else None, db=None,
                    db_listed=tuple(db) if db is not None else None, efi=efi, mok_trusted=None, tested_mok=tuple(tested["mok"]), tested_db=tuple(tested["db"]))


# -- all together -----------------------------------------------------------------------------

def gather(target: KernelTarget, config: Mapping[str, str], live: bool, image: Optional[str] = None,
           env: Optional[Mapping[str, str]] = None, mokutil: Sequence[str] = ()) -> Keys:
    dist = distribution(target)
    counted = counted_keyrings(dist, config)
    certificates: List[Certificate] = []
    sources: List[str] = []
    builtin_missing = ""
    paths = image_candidates(target, image)
    if not paths:
        builtin_missing = "no kernel image at hand (%s/boot/vmlinuz-%s; give it with --vmlinux)" % (
            target.sysroot.rstrip("/") if target.sysroot not in ("", "/") else "", target.release)
    for path in paths:
        found = builtin_certificates(path, env)
        if found.found:
            builtin_missing = found.found
            continue
        builtin_missing = ""
        certificates.extend(found.certificates)
        sources.append("%d built-in key(s) read from %s (%s)" % (len(found.certificates), path, ", ".join(
            c.subject_cn for c in found.certificates)))
        break
    root = target.sysroot.rstrip("/") if target.sysroot not in ("", "/") else ""
    firmware = live_firmware() if live and not mokutil else captured_firmware(root, mokutil) if root or mokutil else \
        Firmware(secure_boot=None, secure_boot_source="not visible here", mok=None, mok_listed=None, db=None, db_listed=None, efi=None)
    listed: List[ListedKey] = []
    unseen: List[str] = []
    if dist is Distribution.VENDOR:
        unseen.append("the keyrings %s's kernel patches add" % (target.compiler.vendor.split(" ")[0] or "its vendor"))
    if Keyring.MACHINE in counted:
        if firmware.secure_boot is False:
            sources.append("no MOK keys: Secure Boot is off (%s)" % firmware.secure_boot_source)
        elif dist is not Distribution.DEBIAN and firmware.mok_trusted is False:
            sources.append("no MOK keys in .machine: no MokListTrustedRT (they go to .platform)")
        elif dist is not Distribution.DEBIAN and firmware.mok_trusted is None:
            unseen.append(".machine (MOK keys, when shim sets MokListTrustedRT)")
        elif firmware.mok is not None:
            certificates.extend(firmware.mok)
            sources.append("%d MOK key(s) (MokListRT)" % len(firmware.mok))
        elif firmware.mok_listed is not None:
            listed.extend(firmware.mok_listed)
            sources.append("%d MOK key(s) (mokutil --list-enrolled)" % len(firmware.mok_listed))
        else:
            certificates.extend(firmware.tested_mok)
            sources.extend("enrolled MOK key %s" % c.describe() for c in firmware.tested_mok)
            unseen.append(".machine (MOK keys; Secure Boot %s)" % ("on" if firmware.secure_boot else "state unknown"))
    if Keyring.PLATFORM in counted:
        if firmware.efi is False:
            sources.append("no UEFI db: %s" % firmware.secure_boot_source)
        elif firmware.db is not None:
            certificates.extend(firmware.db)
            sources.append("%d UEFI db key(s)" % len(firmware.db))
        elif firmware.db_listed is not None:
            listed.extend(firmware.db_listed)
            sources.append("%d UEFI db key(s) (mokutil --db)" % len(firmware.db_listed))
        else:
            certificates.extend(firmware.tested_db)
            sources.extend("UEFI db key %s" % c.describe() for c in firmware.tested_db)
            unseen.append(".platform (UEFI db keys)")
    return Keys(distribution=dist, counted=counted, certificates=tuple(certificates), listed=tuple(listed), builtin_missing=builtin_missing,
                unseen=tuple(unseen), sources=tuple(sources))

