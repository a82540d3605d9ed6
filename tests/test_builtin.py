"""The name gate (issue 18, the tester): a module named like a built-in module is never loaded."""

import json
import os

import pytest

from conftest import make_tree
from elfbuild import build_module
from kbuildguard.cli import main
from kbuildguard.formats.module import read_module
from kbuildguard.gates import builtin
from kbuildguard.gates.model import Effect, Gate
from kbuildguard.target.kernel import Selector, resolve

RELEASE = "6.1.0-56-amd64"
# what Debian 6.1's modules.builtin and modules.builtin.modinfo say (image package 6.1.0-57-amd64)
BUILTIN = "kernel/net/unix/unix.ko\nkernel/arch/x86/events/amd/amd-uncore.ko\n"
MODINFO = b"unix.license=GPL\0unix.file=net/unix/unix\0vt.parmtype=default_utf8:int\0vt.parm=default_utf8:...\0" \
          b"printk.license=GPL\0"


def sysroot(tmp_path, listed=True, modinfo=True):
    root = tmp_path / "root"
    make_tree(root / ("usr/src/linux-headers-" + RELEASE))
    mods = root / ("lib/modules/" + RELEASE)
    (mods / "kernel").mkdir(parents=True)
    if listed:
        (mods / "modules.builtin").write_text(BUILTIN)
    if modinfo:
        (mods / "modules.builtin.modinfo").write_bytes(MODINFO)
    return root


def module(tmp_path, name):
    path = tmp_path / (name + ".ko")
    path.write_bytes(build_module(name=name))
    return read_module(str(path))


@pytest.mark.parametrize("name, effect, words", [
    ("unix", Effect.REJECTED, "modprobe answers \"builtin\""),
    ("amd_uncore", Effect.REJECTED, "modules.builtin lists it"),  # amd-uncore.ko: '-' and '_' alike
    ("vt", Effect.REJECTED, "module is already loaded"),  # not in modules.builtin: bool, but /sys/module/vt
    ("printk", Effect.REJECTED, "the worse outcome"),
    ("kdemo", Effect.OK, "no built-in module is named kdemo"),
])
def test_a_built_in_name_is_rejected(tmp_path, name, effect, words):
    root = sysroot(tmp_path)
    target = resolve(Selector(kernel=RELEASE, sysroot=str(root)))
    c = builtin.check(module(tmp_path, name), builtin.gather(target))
    assert c.name is Gate.NAME and c.effect is effect and c.ok is (effect is Effect.OK) and words in c.message, c.message


def test_without_modules_builtin_the_name_is_not_checked_never_ok(tmp_path):
    target = resolve(Selector(kernel_dir=make_tree(tmp_path / "tree")))
    c = builtin.check(module(tmp_path, "unix"), builtin.gather(target))
    assert (c.ok, c.effect) == (True, Effect.NOT_CHECKED) and "headers package ships none" in c.message


def test_modules_builtin_without_its_modinfo_still_decides_what_it_lists(tmp_path):
    target = resolve(Selector(kernel=RELEASE, sysroot=str(sysroot(tmp_path, modinfo=False))))
    names = builtin.gather(target)
    assert builtin.check(module(tmp_path, "unix"), names).effect is Effect.REJECTED
    assert builtin.check(module(tmp_path, "vt"), names).effect is Effect.OK  # said: parameters not known
    assert "no modules.builtin.modinfo" in names.source


def test_check_command_refuses_a_built_in_name(capsys, tmp_path):
    root = sysroot(tmp_path)
    ko = tmp_path / "unix.ko"
    ko.write_bytes(build_module(name="unix"))
    code = main(["check", "--json", str(ko), "--sysroot", str(root), "--kernel", RELEASE], env={"PATH": "/nonexistent"})
    out, _ = capsys.readouterr()
    assert code == 8
    checks = {c["name"]: c for c in json.loads(out)["modules"][0]["checks"]}
    assert checks["name"]["effect"] == "rejected-at-load" and not checks["name"]["ok"]


IMAGE = os.environ.get("KBG_TEST_IMAGE_ROOT", "")


@pytest.mark.skipif(not IMAGE or not os.path.isdir(IMAGE), reason="needs KBG_TEST_IMAGE_ROOT (Debian's image unpacked)")
def test_debian_images_own_list(tmp_path):
    release = os.path.basename(IMAGE.rstrip("/")).split("image-", 1)[1]
    mods = os.path.join(IMAGE, "lib/modules", release)
    target = resolve(Selector(kernel_dir=make_tree(tmp_path / "tree")))._replace(modules_dir=mods)
    names = builtin.gather(target)
    assert names.listed is not None and "unix" in names.listed and "vt" in names.with_sysfs
    for name in ("unix", "vt"):
        assert builtin.check(module(tmp_path, name), names).effect is Effect.REJECTED


# -- vermagic read from the kernel's own modules (issue 18, the tester) ---------------------------

def test_vermagic_of_the_kernels_own_module_wins_over_the_model(tmp_path):
    from kbuildguard.gates import loader

    root = sysroot(tmp_path)
    own = "%s SMP mod_unload modversions " % RELEASE  # no "preempt": the model from the configuration says it
    kdir = root / ("lib/modules/%s/kernel/fs" % RELEASE)
    kdir.mkdir(parents=True)
    (kdir / "intree.ko").write_bytes(build_module(vermagic=own))
    target = resolve(Selector(kernel=RELEASE, sysroot=str(root)))
    facts = loader.gather(target)
    model, _ = loader.kernel_vermagic(target, facts.config)
    assert model is not None and "preempt" in model and facts.vermagic == own
    assert "intree.ko" in facts.vermagic_source and "the model from the configuration says" in facts.vermagic_source
    ok = loader.check_vermagic(read_module(str(kdir / "intree.ko")), facts, RELEASE)
    assert ok.ok and ok.effect is Effect.OK and "intree.ko" in ok.message
    built = tmp_path / "m.ko"
    built.write_bytes(build_module())  # vermagic as the model says: the kernel refuses it
    bad = loader.check_vermagic(read_module(str(built)), facts, RELEASE)
    assert bad.effect is Effect.REJECTED and "'preempt' in the module, not in the kernel" in bad.message
    assert "the model from the configuration says" in bad.message


def test_vermagic_falls_back_to_the_model_without_in_tree_modules(tmp_path):
    from kbuildguard.gates import loader

    target = resolve(Selector(kernel=RELEASE, sysroot=str(sysroot(tmp_path))))
    facts = loader.gather(target)
    assert facts.vermagic_source.startswith("computed from the configuration")
