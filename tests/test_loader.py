"""The loader's gates beside layout and compiler, each against what kernel/module/*.c does."""

import gzip
import struct
from types import SimpleNamespace

import pytest

from conftest import make_tree
from elfbuild import build_module
from kbuildguard.errors import BadInput
from kbuildguard.formats import module as inspect
from kbuildguard.formats import symvers
from kbuildguard.formats.module import VersionsFormat, read_module
from kbuildguard.gates import loader
from kbuildguard.gates.model import Effect, Gate
from kbuildguard.gates.pool import verify_paths
from kbuildguard.gates.verify import Expectation, headline, verify_info
from kbuildguard.target import exports as kernel_exports
from kbuildguard.target.kernel import Selector, resolve
from kbuildguard.toolchain import MatchLevel

KERNEL_MAGIC = "6.1.0-56-amd64 SMP preempt mod_unload modversions "


def _target(tmp_path, extra_config=()):
    tree = make_tree(tmp_path / "tree")
    if extra_config:
        with open(tree + "/include/config/auto.conf", "a") as f:
            f.write("\n".join(extra_config) + "\n")
    return resolve(Selector(kernel_dir=tree))


def _info(tmp_path, name="m.ko", **kw):
    path = tmp_path / name
    path.write_bytes(build_module(**kw))
    return read_module(str(path))


def _check(tmp_path, gate, extra_config=(), symvers_files=(), **kw):
    target = _target(tmp_path, extra_config)
    facts = loader.gather(target, symvers_files)
    report = verify_info(_info(tmp_path, **kw), Expectation(target=target, level=MatchLevel.VERSION, reference=None, not_compared="", loader=facts))
    return [c for c in report.checks if c.name is gate][0], report


def test_every_gate_in_the_loaders_order(tmp_path):
    _, report = _check(tmp_path, Gate.SYMBOLS)
    assert [str(c.name) for c in report.checks] == [
        "signature", "elf", "machine", "this_module", "layout", "vermagic", "symbol_versions", "symbols", "license",
        "relocations", "btf", "name", "unload", "compiler"]
    assert report.effect is Effect.NOT_CHECKED and headline(report).startswith("not fully checked: layout")


def test_the_kernels_vermagic_from_its_configuration(tmp_path):
    target = _target(tmp_path)
    assert loader.kernel_vermagic(target, target.tree_config)[0] == KERNEL_MAGIC
    arm = resolve(Selector(kernel_dir=make_tree(tmp_path / "arm", arch_config="CONFIG_ARM64")))
    assert loader.kernel_vermagic(arm, arm.tree_config)[0] == KERNEL_MAGIC + "aarch64"


def test_vermagic_release_word_is_skipped_with_symbol_versions(tmp_path):
    c, _ = _check(tmp_path, Gate.VERMAGIC, vermagic="6.1.0-9-amd64 SMP preempt mod_unload modversions ")
    assert c.ok and c.effect is Effect.OK and "does not compare" in c.message


def test_vermagic_release_word_counts_without_symbol_versions(tmp_path):
    c, _ = _check(tmp_path, Gate.VERMAGIC, vermagic="6.1.0-9-amd64 SMP preempt mod_unload modversions ", versions=None)
    assert not c.ok and c.effect is Effect.REJECTED and "release 6.1.0-9-amd64" in c.message


def test_vermagic_names_the_flag_that_differs(tmp_path):
    c, report = _check(tmp_path, Gate.VERMAGIC, vermagic="6.1.0-56-amd64 SMP mod_unload modversions ")
    assert not c.ok and c.effect is Effect.REJECTED
    assert "'preempt' in the kernel, not in the module" in c.message
    assert c.message.startswith("version magic '6.1.0-56-amd64 SMP mod_unload modversions' should be")
    assert headline(report).startswith("will be rejected at load: version magic")


@pytest.mark.parametrize("force,effect", [(False, Effect.REJECTED), (True, Effect.TAINTS)])
def test_no_vermagic_goes_through_try_to_force_load(tmp_path, force, effect):
    c, _ = _check(tmp_path, Gate.VERMAGIC, extra_config=["CONFIG_MODULE_FORCE_LOAD=y"] if force else (), vermagic=None)
    assert c.effect is effect and c.ok is force


def test_a_crc_that_differs_is_named_with_both_values(tmp_path):
    c, report = _check(tmp_path, Gate.SYMBOL_VERSIONS, versions=[("module_layout", 0x9060323F), ("_printk", 0x1234ABCD)])
    assert not c.ok and c.effect is Effect.REJECTED
    assert "disagrees about version of symbol _printk (module 0x1234abcd, kernel 0x92997ed8)" in c.message
    assert "Module.symvers" in c.fix
    assert headline(report).startswith("will be rejected at load: disagrees about version of symbol _printk")


def test_extended_modversions_are_read_and_compared(tmp_path):
    info = _info(tmp_path, versions=None, ext_versions=[("module_layout", 0x9060323F), ("_printk", 0x92997ED8)])
    assert info.versions_format is VersionsFormat.EXTENDED and [v.name for v in info.versions] == ["module_layout", "_printk"]
    c, _ = _check(tmp_path, Gate.SYMBOL_VERSIONS, versions=None, ext_versions=[("module_layout", 0x9060323F),
                                                                              ("_printk", 0x1)])
    assert c.effect is Effect.REJECTED and "_printk (module 0x00000001" in c.message


def test_fixed_entries_of_a_32_bit_kernel():
    import struct

    data = struct.pack(">I60s", 0xDEADBEEF, b"_printk") + struct.pack(">I60s", 0x1, b"module_layout")
    sec = SimpleNamespace(size=len(data), type=1, offset=0)  # SHT_PROGBITS
    fake = SimpleNamespace(bits=32, big_endian=True, section=lambda n: None,
                           find_alloc=lambda n: 7 if n == "__versions" else 0, section_at=lambda i: sec,
                           section_data=lambda s: data)
    names, crcs, fmt = inspect._versions(fake)  # noqa: SLF001 - the reader itself, without a 32-bit ELF writer
    assert fmt is VersionsFormat.FIXED_32 and names == ("_printk", "module_layout") and crcs == (0xDEADBEEF, 1)


@pytest.mark.parametrize("force,effect", [(False, Effect.REJECTED), (True, Effect.TAINTS)])
def test_no_versions_at_all(tmp_path, force, effect):
    c, _ = _check(tmp_path, Gate.SYMBOL_VERSIONS, extra_config=["CONFIG_MODULE_FORCE_LOAD=y"] if force else (),
                  versions=None)
    assert c.effect is effect


def test_an_unknown_symbol_and_a_named_module_that_exports_it(tmp_path):
    c, _ = _check(tmp_path, Gate.SYMBOLS, undefined=["_printk", "kbg_nowhere"])
    assert not c.ok and c.effect is Effect.REJECTED and c.message.startswith("Unknown symbol kbg_nowhere")
    other = tmp_path / "other.symvers"
    other.write_text("0x11111111\tkbg_nowhere\t/src/provider/kbg_provider\tEXPORT_SYMBOL\t\n")
    c, _ = _check(tmp_path, Gate.SYMBOLS, symvers_files=[str(other)], undefined=["_printk", "kbg_nowhere"])
    assert c.ok and c.effect is Effect.OK


def test_a_sibling_checked_with_it_exports_the_symbol(tmp_path):
    target = _target(tmp_path)
    (tmp_path / "user.ko").write_bytes(build_module(name="user", undefined=["_printk", "kbg_provided"]))
    (tmp_path / "provider.ko").write_bytes(build_module(name="provider", exports=["kbg_provided"]))
    expect = Expectation(target=target, level=MatchLevel.VERSION, reference=None, not_compared="", loader=loader.gather(target))
    reports = verify_paths([str(tmp_path / "user.ko"), str(tmp_path / "provider.ko")], expect)
    assert all(c.ok for r in reports for c in r.checks if c.name is Gate.SYMBOLS)
    alone = verify_paths([str(tmp_path / "user.ko")], expect)
    assert not [c for c in alone[0].checks if c.name is Gate.SYMBOLS][0].ok


def test_weak_and_ignored_undefined_symbols_pass(tmp_path):
    c, _ = _check(tmp_path, Gate.SYMBOLS, undefined=["_printk", "_GLOBAL_OFFSET_TABLE_"])
    assert c.ok


def test_namespace_must_be_imported(tmp_path):
    tree = make_tree(tmp_path / "tree")
    with open(tree + "/Module.symvers", "a") as f:
        f.write("0x22222222\tcxl_thing\tvmlinux\tEXPORT_SYMBOL_GPL\tCXL\n")
    target = resolve(Selector(kernel_dir=tree))
    expect = Expectation(target=target, level=MatchLevel.VERSION, reference=None, not_compared="", loader=loader.gather(target))
    c = [c for c in verify_info(_info(tmp_path, undefined=["cxl_thing"]), expect).checks if c.name is Gate.SYMBOLS][0]
    assert c.effect is Effect.REJECTED and "namespace CXL" in c.message
    ok = verify_info(_info(tmp_path, "n.ko", undefined=["cxl_thing"], import_ns=["CXL"]), expect)
    assert [c for c in ok.checks if c.name is Gate.SYMBOLS][0].ok


@pytest.mark.parametrize("licence,undefined,effect,ok", [
    ("GPL", ["_printk", "init_uts_ns"], Effect.OK, True),
    ("Dual MIT/GPL", ["init_uts_ns"], Effect.OK, True),
    ("Proprietary", ["_printk"], Effect.TAINTS, True),
    (None, ["_printk"], Effect.TAINTS, True),
    ("Proprietary", ["_printk", "init_uts_ns"], Effect.REJECTED, False),
])
def test_licence_and_gpl_only_exports(tmp_path, licence, undefined, effect, ok):
    c, _ = _check(tmp_path, Gate.LICENSE, license=licence, undefined=undefined)
    assert (c.effect, c.ok) == (effect, ok)
    if not ok:
        assert "init_uts_ns" in c.message and "err -2" in c.message


GOOD_BTF = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 0, 0, 1) + b"\x00"
VALIDATES = ["CONFIG_DEBUG_INFO_BTF_MODULES=y"]


@pytest.mark.parametrize("config,btf,effect", [
    ((), b"", Effect.OK),
    (VALIDATES, b"", Effect.OK),
    ((), GOOD_BTF, Effect.OK),  # the kernel does not read module BTF
    (VALIDATES + ["CONFIG_MODULE_ALLOW_BTF_MISMATCH=y"], GOOD_BTF, Effect.OK),
    (VALIDATES, GOOD_BTF, Effect.NOT_CHECKED),
    (VALIDATES, struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 0, 0, 0), Effect.NOT_CHECKED),  # split: no strings of its own
    (VALIDATES + ["CONFIG_MODULE_ALLOW_BTF_MISMATCH=y"], b"\x9f\xeb\x01\x00", Effect.OK),  # dropped, loads
])
def test_btf(tmp_path, config, btf, effect):
    c, _ = _check(tmp_path, Gate.BTF, extra_config=config, btf=btf)
    assert c.effect is effect and c.ok


@pytest.mark.parametrize("btf,why", [
    (b"\x9f\xeb\x01\x00", "shorter than a BTF header"),
    (b"random bytes, no magic at all...", "no BTF magic"),
    (struct.pack("<HBBIIIII", 0xEB9F, 2, 0, 24, 0, 0, 0, 1) + b"\x00", "version 2"),
    (struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 4096, 0, 1) + b"\x00", "outside"),
    # btf_parse_str_sec(): the strings end the BTF, in a NUL
    (struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 0, 0, 1) + b"\x00\x00", "not at its end"),
    (struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 0, 0, 2) + b"\x00a", "does not end in a NUL"),
])
def test_btf_the_kernel_cannot_parse_is_refused(tmp_path, btf, why):
    c, _ = _check(tmp_path, Gate.BTF, extra_config=VALIDATES, btf=btf)
    assert c.effect is Effect.REJECTED and not c.ok and why in c.message and "failed to validate module" in c.message


# issue 20: module BTF against the kernel's own BTF (kernel/bpf/btf.c btf_parse_module()), where it is at hand
def _btf_facts(tmp_path, base, allow=False, module_btf=b"", name="m.ko", in_tree=""):
    from test_btf import _split  # noqa: F401 - the builder of split BTF

    own = tmp_path / "vmlinux.btf"
    own.write_bytes(base)
    target = _target(tmp_path, VALIDATES)
    facts = loader.gather(target)
    facts = facts._replace(btf=loader.BtfFacts(True, allow, str(own), None, loader._vmlinux(str(own), "the test's")),
                           in_tree=in_tree)
    info = _info(tmp_path, name=name, btf=module_btf)
    return loader.check_btf(info, facts)


def _split_btf(**kw):
    from test_btf import _split

    return _split(**kw)


def test_btf_split_against_this_kernels_validates(tmp_path):
    from test_btf import BASE

    c = _btf_facts(tmp_path, BASE, module_btf=_split_btf())
    assert c.ok and c.effect is Effect.OK and "split against this kernel's BTF: validates" in c.message


@pytest.mark.parametrize("allow", [False, True])
def test_btf_split_against_another_kernels_is_what_the_kernel_says(tmp_path, allow):
    from test_btf import BASE, BASE_STRINGS

    c = _btf_facts(tmp_path, BASE, allow, module_btf=_split_btf(base_len=len(BASE_STRINGS) + 40))
    assert 'failed to validate module [kdemo] BTF: -22' in c.message and "Invalid name_offset" in c.message
    assert (c.ok, c.effect) == ((True, Effect.OK) if allow else (False, Effect.REJECTED))


def test_btf_the_kernels_own_module_from_another_build_is_refused(tmp_path):
    # pop-os/pop#3961: a kernel package whose modules and vmlinuz come from different builds
    from test_btf import BASE, BASE_STRINGS

    (tmp_path / "kernel").mkdir()
    c = _btf_facts(tmp_path, BASE, module_btf=_split_btf(base_len=len(BASE_STRINGS) + 40), name="kernel/m.ko",
                   in_tree=str(tmp_path))
    assert c.effect is Effect.REJECTED and not c.ok


def test_btf_that_parses_by_chance_loads_and_says_so(tmp_path):
    # measured in qemu (tests/integration/test_qemu_btf.py): the kernel registers such BTF
    from test_btf import BASE, BASE_OFF, _t

    c = _btf_facts(tmp_path, BASE, module_btf=_split_btf(extra=_t(BASE_OFF["int"] + 1, 7)))
    assert c.effect is Effect.OK and c.ok and "split against another kernel's BTF (1 of its names" in c.message


def test_btf_an_unreadable_kernel_btf_leaves_the_old_rules(tmp_path):
    c = _btf_facts(tmp_path, b"not BTF at all, not an image either", module_btf=_split_btf())
    assert c.effect is Effect.NOT_CHECKED and "not at hand" in c.message


def test_answers_are_keyed_by_the_kernels_own_btf_file(tmp_path):
    """A remembered answer of the btf gate depends on the vmlinuz: another file, another book; and
    facts whose BTF was read already give no book at all rather than a wrong one."""
    import os

    from kbuildguard.gates import answers

    target = _target(tmp_path, VALIDATES)
    image = tmp_path / "vmlinuz"
    image.write_bytes(b"one")

    def digest():
        facts = loader.gather(target, image=str(image))
        return facts, answers.facts_digest(Expectation(target=target, level=MatchLevel.VERSION, reference=None,
                                                       not_compared="", loader=facts))

    facts, first = digest()
    assert first is not None and facts.btf.vmlinux.stamp and digest()[1] == first
    image.write_bytes(b"two!")
    os.utime(str(image), ns=(1, 1))
    assert digest()[1] not in (None, first)
    facts, _ = digest()
    facts.btf.vmlinux.load()
    assert answers.facts_digest(Expectation(target=target, level=MatchLevel.VERSION, reference=None, not_compared="",
                                            loader=facts)) is None


def test_the_kernels_own_btf_is_found_in_its_sysroot(tmp_path):
    target = _target(tmp_path, VALIDATES)
    assert loader.vmlinux_btf(target._replace(sysroot=str(tmp_path), running=False)) is None
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / ("vmlinuz-" + target.release)).write_bytes(b"x")
    found = loader.vmlinux_btf(target._replace(sysroot=str(tmp_path), running=False))
    assert found is not None and found.path == str(tmp_path / "boot" / ("vmlinuz-" + target.release))
    assert loader.vmlinux_btf(target, image="/given").path == "/given"
    (tmp_path / "tree" / "vmlinux").write_bytes(b"x")  # a tree the kernel was built in: last
    assert loader.vmlinux_btf(target._replace(running=False)).path == str(tmp_path / "tree" / "vmlinux")


def test_module_symvers_in_its_three_layouts(tmp_path):
    old = symvers.parse("0x1\ta\tvmlinux\tEXPORT_SYMBOL\n", "old")
    mid = symvers.parse("0x2\tb\tNS\tdrivers/x\tEXPORT_SYMBOL_GPL\n", "5.4")
    new = symvers.parse("0x3\tc\tvmlinux\tEXPORT_SYMBOL_GPL\tCXL\n", "5.9")
    assert old["a"].crc == 1 and not old["a"].gpl_only and old["a"].namespace == ""
    assert (mid["b"].module, mid["b"].namespace, mid["b"].gpl_only) == ("drivers/x", "NS", True)
    assert (new["c"].namespace, new["c"].gpl_only) == ("CXL", True)
    boot = tmp_path / "symvers-6.1.gz"
    with gzip.open(str(boot), "wb") as f:
        f.write(b"0x9\tz\tvmlinux\tEXPORT_SYMBOL\t\n")
    assert symvers.read(str(boot))["z"].crc == 9


@pytest.mark.parametrize("text", ["0x1\ta\n", "nothex\ta\tvmlinux\tEXPORT_SYMBOL\n", "0x1\ta\tb\tc\td\n"])
def test_a_broken_module_symvers_is_one_line_of_bad_input(text):
    with pytest.raises(BadInput) as exc:
        symvers.parse(text, "Module.symvers")
    assert exc.value.message.startswith("Module.symvers:1:")


def test_el_boot_symvers_when_the_tree_has_none(tmp_path):
    root = tmp_path / "root"
    tree = make_tree(root / "usr/src/kernels/6.1.0-56-amd64", release="6.1.0-56-amd64")
    import os

    os.remove(tree + "/Module.symvers")
    (root / "boot").mkdir()
    with gzip.open(str(root / "boot/symvers-6.1.0-56-amd64.gz"), "wb") as f:
        f.write(b"0x92997ed8\t_printk\tvmlinux\tEXPORT_SYMBOL\t\n")
    target = resolve(Selector(kernel="6.1.0-56-amd64", sysroot=str(root)))
    exports, _ = kernel_exports.gather(target, ())
    assert exports is not None and exports.sources[0].endswith("/boot/symvers-6.1.0-56-amd64.gz")


def test_x86_relocation_onto_a_field_the_loader_already_set_is_rejected(tmp_path):
    """Seen in qemu on Debian's 6.1 (test_qemu_gates.py): exit on target_list is refused at load, exit
    on static_call_sites (still zero when relocated) loads and never unloads."""
    from kbuildguard.formats.module import Layout
    from kbuildguard.gates.layout import check_layout
    from kbuildguard.gates.reference import ReferenceLayout

    target = _target(tmp_path)
    members = (("state", 0), ("list", 8), ("name", 24), ("static_call_sites", 0x330), ("target_list", 0x340),
               ("exit", 0x350), ("init", 0x138))
    ref = ReferenceLayout(Layout(0x380, 0x138, 0x350), "BTF", members=tuple(sorted(members, key=lambda m: m[1])))
    compiler_ok = verify_info(_info(tmp_path), Expectation(target=target, level=MatchLevel.VERSION, reference=None, not_compared="")).checks[-1]
    onto_list = _info(tmp_path, "a.ko", exit_offset=0x348)
    c = check_layout(onto_list, target, ref, "", compiler_ok)
    assert c.effect is Effect.REJECTED and "target_list" in c.message
    onto_zero = _info(tmp_path, "b.ko", exit_offset=0x338)
    c = check_layout(onto_zero, target, ref, "", compiler_ok)
    assert c.effect is Effect.CANNOT_UNLOAD and "static_call_sites" in c.message


def test_a_relocation_onto_a_member_set_from_the_modules_own_sections_is_rejected(tmp_path):
    """find_module_sections() sets members from the module's sections before apply_relocations():
    btf_data when it has .BTF (seed 23's v00108 and v00519: init on using_gplonly_symbols, sig_ok,
    num_exentries, refused "existing value is nonzero"); without the section the member stays zero."""
    from kbuildguard.formats.module import Layout
    from kbuildguard.gates.layout import check_layout
    from kbuildguard.gates.reference import ReferenceLayout

    target = _target(tmp_path)
    members = (("init", 0x138), ("btf_data_size", 0x2a8), ("btf_data", 0x2b0), ("jump_entries", 0x2b8),
               ("using_gplonly_symbols", 0x328), ("sig_ok", 0x329), ("exit", 0x350))
    ref = ReferenceLayout(Layout(0x380, 0x138, 0x350), "BTF", members=members)
    compiler_ok = verify_info(_info(tmp_path), Expectation(target=target, level=MatchLevel.VERSION, reference=None, not_compared="")).checks[-1]
    plain = check_layout(_info(tmp_path, "p.ko", exit_offset=0x2b0), target, ref, "", compiler_ok)
    assert plain.effect is Effect.CANNOT_UNLOAD, plain
    with_btf = check_layout(_info(tmp_path, "b.ko", exit_offset=0x2b0, btf=b"\x9f\xeb\x01\x00" + b"\x00" * 20), target, ref, "",
                            compiler_ok)
    assert with_btf.effect is Effect.REJECTED and "btf_data" in with_btf.message, with_btf
    maybe = check_layout(_info(tmp_path, "g.ko", exit_offset=0x328), target, ref, "", compiler_ok)
    assert maybe.effect is Effect.REJECTED and "using_gplonly_symbols" in maybe.message, maybe
    # init alone misplaced onto a member still zero: mod->init stays NULL, exit is there -- it loads and
    # unloads (seed 18's v01403, v01894; seed 23's v00988), its init never runs: not cannot-unload
    init_only = check_layout(_info(tmp_path, "i.ko", init_offset=0x2b0), target, ref, "", compiler_ok)
    assert init_only.effect is Effect.NOT_CHECKED and "init never called" in init_only.message, init_only


def test_a_struct_module_of_another_size_alone_is_not_checked_before_6_4(tmp_path):
    """6.1 never compares .gnu.linkonce.this_module's size (6.4's elf_validity_check() does): with init
    and exit where the kernel has them, Debian's 6.1 loaded all 31 such variants of the differential
    run (docs/differential.md) -- not-checked, not rejected; 6.4 and later refuse it."""
    from kbuildguard.formats.module import Layout
    from kbuildguard.gates.layout import check_layout
    from kbuildguard.gates.reference import ReferenceLayout

    target = _target(tmp_path)
    ref = ReferenceLayout(Layout(0x380, 0x138, 0x350), "BTF", members=(("init", 0x138), ("exit", 0x350)))
    compiler_ok = verify_info(_info(tmp_path), Expectation(target=target, level=MatchLevel.VERSION, reference=None, not_compared="")).checks[-1]
    for size in (0x340, 0x378, 0x3c0):
        c = check_layout(_info(tmp_path, "s%x.ko" % size, this_module_size=size), target, ref, "", compiler_ok)
        assert c.effect is Effect.NOT_CHECKED and "does not check the size" in c.message, c
    moved = check_layout(_info(tmp_path, "m.ko", this_module_size=0x378, exit_offset=0x348), target, ref, "", compiler_ok)
    assert moved.effect is not Effect.NOT_CHECKED and not moved.ok
    newer = resolve(Selector(kernel_dir=make_tree(tmp_path / "new", release="6.12.57+deb13-amd64")))
    c = check_layout(_info(tmp_path, "n.ko", this_module_size=0x378), newer, ref, "", compiler_ok)
    assert c.effect is Effect.REJECTED and "6.4" in c.message


def test_a_crc_mismatch_of_a_module_built_for_another_release_says_so(tmp_path):
    c, _ = _check(tmp_path, Gate.SYMBOL_VERSIONS, vermagic="6.1.0-57-cloud-amd64 SMP preempt mod_unload modversions ",
                  versions=[("module_layout", 0xA351F379)])
    assert c.effect is Effect.REJECTED and "built for 6.1.0-57-cloud-amd64" in c.fix and "build tree of 6.1.0-56-amd64" in c.fix


def test_a_resolved_symbol_without_a_version_entry_is_refused_by_debian(tmp_path):
    """Debian's 6.1 kernel/module/version.c check_version() (its patch "module: Disable matching
    missing version CRC"): "no symbol version for S", return 0; upstream warns once and loads."""
    c, report = _check(tmp_path, Gate.SYMBOL_VERSIONS, versions=[("module_layout", 0x9060323F)])
    assert c.effect is Effect.REJECTED and c.message.startswith("no symbol version for _printk")
    assert "--symvers" in c.fix
    upstream = make_tree(tmp_path / "upstream", cc_text="gcc (GCC) 12.2.0")
    target = resolve(Selector(kernel_dir=upstream))
    info = _info(tmp_path, "up.ko", versions=[("module_layout", 0x9060323F)])
    c = [c for c in verify_info(info, Expectation(target=target, level=MatchLevel.VERSION, reference=None, not_compared="", loader=loader.gather(target))).checks
         if c.name is Gate.SYMBOL_VERSIONS][0]
    assert c.ok and c.effect is Effect.NOT_CHECKED and "warns once" in c.message


def test_a_signature_trailer_the_kernel_cannot_read_is_refused_enforced_or_not(tmp_path):
    from kbuildguard.formats import pkcs7
    from kbuildguard.gates import signature

    huge = b"\x00" * 8 + struct.pack(">I", 0xFFFFFFFF) + pkcs7.MAGIC
    params = b"\x01\x00\x02\x00\x00\x00\x00\x00" + struct.pack(">I", 4) + pkcs7.MAGIC
    for trailer, why in ((huge, "longer than the module"), (b"junk" + params, "non-zero")):
        info = _info(tmp_path, trailer=trailer)
        assert info.signature is not None and why in info.signature.malformed
        c = signature.check(info.signature, signature.SigningFacts(True, False, "test"))
        assert c.effect is Effect.REJECTED and not c.ok and "-EBADMSG" in c.message


def test_lockdown_alone_is_named_as_the_kernel_says_it(tmp_path):
    from kbuildguard.gates import signature

    facts = signature.SigningFacts(True, True, "/proc/cmdline has lockdown=integrity (unsigned modules get -EPERM)")
    c = signature.check(None, facts)
    assert c.effect is Effect.REJECTED and "Lockdown: insmod: unsigned module loading is restricted" in c.message
    c = signature.check(None, signature.SigningFacts(True, True, "/proc/cmdline has module.sig_enforce=1"))
    assert "Loading of unsigned module is rejected" in c.message


def test_an_unreadable_module_is_not_checked(tmp_path):
    from kbuildguard.gates.verify import verify_path

    (tmp_path / "junk.ko").write_bytes(b"junk")
    target = _target(tmp_path)
    report = verify_path(str(tmp_path / "junk.ko"), Expectation(target=target, level=MatchLevel.VERSION, reference=None, not_compared=""))
    assert report.checks[0].effect is Effect.NOT_CHECKED and not report.checks[0].checked


def _dies_in_a_worker(job):
    import os as _os

    _os._exit(9)  # as the OOM killer would end it


def test_many_modules_over_workers_and_a_worker_that_dies(tmp_path, monkeypatch):
    from kbuildguard.gates import pool

    target = _target(tmp_path)
    paths = []
    for i in range(8):
        path = tmp_path / ("m%d.ko" % i)
        path.write_bytes(build_module(name="m%d" % i, vermagic=None if i == 3 else KERNEL_MAGIC))
        paths.append(str(path))
    expect = Expectation(target=target, level=MatchLevel.VERSION, reference=None, not_compared="", loader=loader.gather(target))
    monkeypatch.setattr(pool, "PARALLEL_THRESHOLD", 2)
    serial = [(r.path, r.verdict, r.effect) for r in verify_paths(paths, expect, workers=1)]
    assert [(r.path, r.verdict, r.effect) for r in verify_paths(paths, expect, workers=2)] == serial
    assert serial[3][1] == "mismatch"
    # a worker that dies does not hang the run: BrokenProcessPool, and the work is done here instead
    monkeypatch.setattr(pool, "_verify_chunk_lean", _dies_in_a_worker)
    assert [(r.path, r.verdict, r.effect) for r in verify_paths(paths, expect, workers=2)] == serial


@pytest.mark.parametrize("key,letter", [("staging", "(C)"), ("livepatch", "(K)")])
def test_staging_and_livepatch_modules_taint(tmp_path, key, letter):
    """The tester's finding: a staging=Y or livepatch=Y module was plain `ok` although the kernel taints
    (check_modinfo(): C, K)."""
    from kbuildguard.gates.loader import check_license

    info = _info(tmp_path)
    info = info._replace(modinfo=info.modinfo + ((key, "Y"),))
    c = check_license(info, loader.bare(_target(tmp_path)))
    assert c.ok and c.effect is Effect.TAINTS and letter in c.message
