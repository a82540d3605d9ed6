"""struct module layout (issue 5): the kernel's BTF, drifted build trees refused before building,
and modules built against them refused by `check` with the offsets named."""

import json
import os

import pytest

from conftest import require
from integration.conftest import COPY_SOURCES, EXAMPLES, drifted_tree, image_root, kbuildguard, plain_make
from kbuildguard.formats.btf import module_layout_from_file
from kbuildguard.formats.module import read_module

DRIFTS = {
    "kallsyms-off": {"CONFIG_KALLSYMS": None},
    "jump-label-off": {"CONFIG_JUMP_LABEL": None},
    "kprobes-off": {"CONFIG_KPROBES": None},
    "printk-index-on": {"CONFIG_PRINTK_INDEX": "y"},
}


def _image(release):
    root = image_root(release)
    require(os.path.isfile(os.path.join(root, "boot", "vmlinuz-" + release)), "the unpacked linux-image-%s-unsigned" % release)
    return root


def test_btf_of_debian_kernel(debian_release):
    layout = module_layout_from_file(os.path.join(_image(debian_release), "boot", "vmlinuz-" + debian_release))
    # the figures measured on this kernel booted in qemu (issue 5)
    assert (layout.size, layout.members["init"], layout.members["exit"]) == (0x380, 0x138, 0x350)


def test_drifted_tree_is_refused_before_building(debian_release, compilers, tmp_path):
    image = _image(debian_release)
    tree = drifted_tree(str(tmp_path / "tree"), debian_release, DRIFTS["kallsyms-off"])
    repo = str(tmp_path / "kdemo")
    import shutil

    shutil.copytree(os.path.join(EXAMPLES, "kdemo"), repo, ignore=COPY_SOURCES)
    res = kbuildguard("make", "--kernel-dir", tree, "--sysroot", image, cwd=repo)
    assert res.code == 13, res
    assert "CONFIG_KALLSYMS y in the kernel, unset in the tree" in res.err
    assert not [f for f in os.listdir(repo) if f.endswith((".o", ".ko"))]


@pytest.mark.parametrize("name", sorted(DRIFTS))
def test_check_refuses_modules_built_against_drifted_headers(name, debian_release, compilers, tmp_path):
    import shutil

    image = _image(debian_release)
    tree = drifted_tree(str(tmp_path / "tree"), debian_release, DRIFTS[name])
    repo = str(tmp_path / "kdemo")
    shutil.copytree(os.path.join(EXAMPLES, "kdemo"), repo, ignore=COPY_SOURCES)
    with open(os.path.join(repo, "Kbuild"), "w") as f:
        f.write("obj-m += kdemo.o\n")
    plain_make(repo, debian_release, "gcc-12", kernel_dir=tree)
    ko = os.path.join(repo, "kdemo.ko")
    layout = read_module(ko).layout
    assert (layout.size, layout.exit_offset) != (0x380, 0x350)
    res = kbuildguard("check", "--kernel", debian_release, "--sysroot", image, ko, "--json")
    assert res.code == 8, res
    data = json.loads(res.out)
    assert "BTF" in data["reference_layout"]["source"]
    checks = {c["name"]: c for c in data["modules"][0]["checks"]}
    assert checks["compiler"]["ok"]  # the right compiler: only the layout gives it away
    assert not checks["layout"]["ok"]
    message = checks["layout"]["message"]
    if layout.exit_offset != 0x350:
        assert "exit at 0x%x, kernel expects 0x350" % layout.exit_offset in message
    if layout.size != 0x380:
        assert "size 0x%x, kernel expects 0x380" % layout.size in message


def test_check_names_the_differing_options_when_both_configs_are_at_hand(debian_release, compilers, tmp_path):
    import shutil

    image = _image(debian_release)
    tree = drifted_tree(str(tmp_path / "tree"), debian_release, DRIFTS["kallsyms-off"])
    repo = str(tmp_path / "kdemo")
    shutil.copytree(os.path.join(EXAMPLES, "kdemo"), repo, ignore=COPY_SOURCES)
    with open(os.path.join(repo, "Kbuild"), "w") as f:
        f.write("obj-m += kdemo.o\n")
    plain_make(repo, debian_release, "gcc-12", kernel_dir=tree)
    # the packager's situation: the module was checked against the (drifted) tree it was built with
    res = kbuildguard("check", "--kernel-dir", tree, "--sysroot", image, os.path.join(repo, "kdemo.ko"), "--json")
    assert res.code == 8, res
    layout = {c["name"]: c for c in json.loads(res.out)["modules"][0]["checks"]}["layout"]
    assert "CONFIG_KALLSYMS y in the kernel, unset in the tree" in layout["message"]
    assert "exit at 0x318, kernel expects 0x350" in layout["message"]
