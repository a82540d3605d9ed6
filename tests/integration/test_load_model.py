"""Issue 18 on real modules: what Debian's 6.1 loader refuses, kbuildguard must not call ok.

Variants of examples/kdemo built against Debian's headers (plain kbuild, as a vendor would) or
mutated after linking, each predicted by `kbuildguard check --json` against the real kernel (the
image's vmlinuz, Debian's headers), then insmod-ed in Debian's 6.1 kernel in qemu (one boot), as
tests/integration/test_qemu_gates.py does. The kernel's own lines are recorded in KERNEL_SAID.

* kbg_small: ``ccflags-y += -mcmodel=small`` -- R_X86_64_32 against .rodata.str1.1 (case 4)
* kbg_nosymvers: built in a copy of the headers without Module.symvers (what `make modules_prepare`
  leaves): modpost warns, __versions is empty (case 5)
* kbg_noversions: __versions renamed away (objcopy): try_to_force_load(), taint F (CONFIG_MODULE_FORCE_LOAD=y)
* kbg_sec0, kbg_pastend, kbg_noname, kbg_nonul: one elf_validity_check() violation each (case 3)
"""

import json
import os
import shutil
import struct
import subprocess

import pytest

from conftest import require
from integration.conftest import drifted_tree, image_root, kbuildguard, named_kdemo, plain_make
from integration.qemu import boot, have_qemu, initramfs
from integration.test_qemu_gates import SCRIPT, observed_effect, parse, predictions

FIELDS = {"name": (0, "I"), "type": (4, "I"), "size": (32, "Q")}

# What Debian's 6.1.0-57-amd64 did in qemu (2026-12-07), from the serial log: effect, the start of
# insmod's message, and the start of a kernel line (time stamps removed). The overflow value depends on
# where the module landed, so only the line's start is kept.
KERNEL_SAID = {
    "kbg_small": ("rejected-at-load", "invalid module format", [
        "module: overflow in relocation type 10 val ffffffff",  # ffffffffc0367060: .rodata.str1.1 where it landed
        "module: `kbg_small' likely not compiled with -mcmodel=kernel"]),
    "kbg_nosymvers": ("rejected-at-load", "invalid module format", ["kbg_nosymvers: no symbol version for module_layout"]),
    "kbg_noversions": ("taints", "", ["kbg_noversions: module_layout: kernel tainted."]),  # taint FOE
    "kbg_sec0": ("rejected-at-load", "invalid module format", [
        "ELF Spec violation: section 0 type(1)!=SH_NULL or non-zero len or addr"]),
    # seen: "(section 37 type 1)" (.comment), "(section 11 type 1)" (.modinfo); the numbers follow the build
    "kbg_pastend": ("rejected-at-load", "invalid module format", ["Invalid ELF section in module (section "]),
    "kbg_noname": ("rejected-at-load", "invalid module format", ["Invalid ELF section name in module (section "]),
    "kbg_nonul": ("rejected-at-load", "invalid module format", [
        "ELF Spec violation: section name table isn't null terminated"]),
}
# the gate each variant is refused (or tainted) by in kbuildguard's prediction
GATE = {"kbg_small": "relocations", "kbg_nosymvers": "symbol_versions", "kbg_noversions": "symbol_versions",
        "kbg_sec0": "elf", "kbg_pastend": "elf", "kbg_noname": "elf", "kbg_nonul": "elf"}


def _sections(data):
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
    names_off, names_size = struct.unpack_from("<QQ", data, shoff + 64 * shstrndx + 24)
    names = data[names_off:names_off + names_size]
    out = {}
    for i in range(shnum):
        name_off, = struct.unpack_from("<I", data, shoff + 64 * i)
        out[names[name_off:names.index(b"\0", name_off)].decode()] = i
    return shoff, out, names_off + names_size - 1


def _mutated(good, dest, field, section, value):
    data = bytearray(open(good, "rb").read())
    shoff, index, _ = _sections(bytes(data))
    at, fmt = FIELDS[field]
    struct.pack_into("<" + fmt, data, shoff + 64 * (index[section] if section else 0) + at, value(len(data)))
    with open(dest, "wb") as f:
        f.write(bytes(data))
    return dest


def _build(tmp, name, release, tree=None, kbuild_extra=""):
    repo = named_kdemo(tmp, name, kbuildguard_toml=False)
    if kbuild_extra:
        with open(os.path.join(repo, "Kbuild"), "a") as f:
            f.write(kbuild_extra)
    plain_make(repo, release, "gcc-12", kernel_dir=tree)
    return os.path.join(repo, name + ".ko")


@pytest.fixture(scope="module")
def variants(debian_release, compilers, tmp_path_factory):
    release = debian_release
    tmp = str(tmp_path_factory.mktemp("loadmodel"))
    kos = {"kbg_small": _build(tmp, "kbg_small", release, kbuild_extra="ccflags-y += -mcmodel=small\n")}
    bare = drifted_tree(os.path.join(tmp, "tree-nosymvers"), release, {})
    os.unlink(os.path.join(bare, "Module.symvers"))
    kos["kbg_nosymvers"] = _build(tmp, "kbg_nosymvers", release, tree=bare)
    good = _build(tmp, "kbg_noversions", release)
    subprocess.run(["objcopy", "--rename-section", "__versions=.kbg_versions", good], check=True, stdin=subprocess.DEVNULL)
    kos["kbg_noversions"] = good
    for name, field, section, value in (("kbg_sec0", "type", None, lambda n: 1),
                                        ("kbg_pastend", "size", ".comment", lambda n: n),
                                        ("kbg_noname", "name", ".modinfo", lambda n: 0xFFFFFF)):
        kos[name] = _mutated(_build(tmp, name, release), os.path.join(tmp, name + ".ko"), field, section, value)
    nonul = _build(tmp, "kbg_nonul", release)
    data = bytearray(open(nonul, "rb").read())
    data[_sections(bytes(data))[2]] = ord("x")
    with open(nonul, "wb") as f:
        f.write(bytes(data))
    kos["kbg_nonul"] = nonul
    return {"release": release, "kos": kos, "tmp": tmp}


def test_modpost_left_an_empty_versions_section(variants):
    """What the case is about: modpost wrote __versions, with nothing in it."""
    from kbuildguard.formats.module import read_module

    info = read_module(variants["kos"]["kbg_nosymvers"])
    assert info.versions_format.name == "FIXED_64" and info.version_names == ()
    assert str(read_module(variants["kos"]["kbg_noversions"]).versions_format) == "none"


@pytest.mark.parametrize("name", sorted(GATE))
def test_check_refuses_what_the_kernel_refuses(variants, name):
    """Against Debian's headers alone (no image): never ok."""
    res = kbuildguard("check", "--kernel", variants["release"], "--json", variants["kos"][name])
    module = json.loads(res.out)["modules"][0]
    gate = [c for c in module["checks"] if c["name"] == GATE[name]][0]
    assert gate["effect"] == KERNEL_SAID[name][0], gate
    # a module's effect: a gate not checked (headers alone: the layout) outranks taints and cannot-unload
    # (it may still refuse), never a certain refusal (gates.md)
    unchecked = any(c["effect"] == "not-checked" for c in module["checks"])
    want = "not-checked" if unchecked and KERNEL_SAID[name][0] in ("taints", "cannot-unload", "ok") else KERNEL_SAID[name][0]
    assert module["effect"] == want, module
    if KERNEL_SAID[name][0] == "rejected-at-load":
        assert res.code == 8


def test_make_refuses_mcmodel_small(debian_release, compilers, tmp_path):
    repo = named_kdemo(tmp_path, "kdemo")
    res = kbuildguard("make", "--kernel", debian_release, "--", "ccflags-y=-mcmodel=small", cwd=repo)
    assert res.code == 8 and "overflow in relocation type 10" in res.err and "-mcmodel" in res.err, res
    assert not os.path.exists(os.path.join(repo, "kdemo.ko"))


@pytest.fixture(scope="module")
def guest(variants):
    require(have_qemu(), "qemu-system-x86 and busybox-static")
    release = variants["release"]
    image = image_root(release)
    vmlinuz = os.path.join(image, "boot", "vmlinuz-" + release)
    require(os.path.isfile(vmlinuz), "the unpacked linux-image-%s-unsigned" % release)
    kos = variants["kos"]
    names = sorted(kos)
    predicted = predictions(image, release, kos)
    cpio = initramfs(os.path.join(variants["tmp"], "initramfs.cpio"), SCRIPT % " ".join(names),
                     {"modules/%s.ko" % n: kos[n] for n in names})
    out = boot(vmlinuz, cpio)
    with open(os.path.join(variants["tmp"], "serial.log"), "w") as f:
        f.write(out)
    assert "KBG-DONE" in out, out[-3000:]
    return {"predicted": predicted, "seen": parse(out)}


@pytest.mark.parametrize("name", sorted(KERNEL_SAID))
def test_the_kernel_said_what_is_recorded(guest, name):
    seen = guest["seen"][name]
    effect, insmod_says, lines = KERNEL_SAID[name]
    did = observed_effect(seen["insmod"][0], seen["rmmod"][0], seen["taint"])
    assert did == effect, seen
    assert insmod_says in seen["insmod"][1].lower(), seen
    for line in lines:
        assert [got for got in seen["dmesg"] if got.startswith(line)], seen["dmesg"]


@pytest.mark.parametrize("name", sorted(KERNEL_SAID))
def test_prediction_is_what_the_kernel_did(guest, name):
    predicted = guest["predicted"]
    assert isinstance(predicted, dict), predicted
    effect, checks = predicted[name]
    seen = guest["seen"][name]
    assert effect == observed_effect(seen["insmod"][0], seen["rmmod"][0], seen["taint"]), (
        seen, {n: (c["effect"], c["message"]) for n, c in checks.items()})



def test_a_zstd_module_is_read_with_the_system_zstd(debian_release, compilers, tmp_path):
    """Issue 18 case 6: Debian 12's kmod loads .ko.zst; on a Python without a zstd library kbuildguard
    reads it with the system's zstd program instead of calling it unreadable."""
    require(shutil.which("zstd") is not None, "zstd")
    ko = _build(str(tmp_path), "kbg_zst", debian_release)
    subprocess.run(["zstd", "-q", "--rm", ko], check=True, stdin=subprocess.DEVNULL)
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    res = kbuildguard("check", "--kernel", debian_release, "--json", ko + ".zst", env=env)
    module = json.loads(res.out)["modules"][0]
    assert module["verdict"] != "error", module
    assert [c for c in module["checks"] if c["name"] == "compression"], module
