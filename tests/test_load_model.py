"""Issue 18: load_module() as a whole -- what the kernel refuses must never be "ok".

Each test names the numbered case of the issue it proves; each failed on c3031e8 (the module was "ok").
"""

import bz2
import gzip
import lzma
import os
import struct

import pytest
from fuzzbudget import examples  # noqa: E402

from conftest import make_tree
from elfbuild import EM_AARCH64, build_module
from kbuildguard.errors import BadInput
from kbuildguard.formats.elf import Elf
from kbuildguard.formats.module import read_module
from kbuildguard.gates import loader
from kbuildguard.gates.layout import layout_effect
from kbuildguard.gates.model import Check, Effect, Gate
from kbuildguard.gates.verify import Expectation, ModuleReport, Verdict, headline, verify_path
from kbuildguard.target import kmod
from kbuildguard.target.kernel import Selector, resolve
from kbuildguard.toolchain import MatchLevel

# field offsets in an Elf64_Shdr
FIELDS = {"name": (0, "I"), "type": (4, "I"), "flags": (8, "Q"), "addr": (16, "Q"), "offset": (24, "Q"),
          "size": (32, "Q"), "link": (40, "I"), "info": (44, "I")}


def _index(data: bytes, name: str) -> int:
    sec = Elf(data, "m.ko").section(name)
    assert sec is not None
    return sec.number


def _set(data: bytes, index: int, field: str, value: int) -> bytes:
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    at, fmt = FIELDS[field]
    out = bytearray(data)
    struct.pack_into("<" + fmt, out, shoff + 64 * index + at, value)
    return bytes(out)


def _get(data: bytes, index: int, field: str) -> int:
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    at, fmt = FIELDS[field]
    return struct.unpack_from("<" + fmt, data, shoff + 64 * index + at)[0]


def _target(tmp_path, extra_config=(), symvers=True, **kw):
    tree = make_tree(tmp_path / "tree", **kw)
    if extra_config:
        with open(tree + "/include/config/auto.conf", "a") as f:
            f.write("\n".join(extra_config) + "\n")
    if not symvers:
        os.unlink(os.path.join(tree, "Module.symvers"))
    return resolve(Selector(kernel_dir=tree))


def _report(tmp_path, data: bytes, name="m.ko", target=None, facts=None, **kw) -> ModuleReport:
    os.makedirs(str(tmp_path), exist_ok=True)
    target = target or _target(tmp_path, **kw)
    facts = facts or loader.gather(target)
    path = tmp_path / name
    path.write_bytes(data)
    return verify_path(str(path), Expectation(target=target, level=MatchLevel.VERSION, reference=None, not_compared="", loader=facts))


def _gate(report: ModuleReport, gate: Gate) -> Check:
    return [c for c in report.checks if c.name is gate][0]


# -- case 3: elf_validity_check() -------------------------------------------------------------

def test_a_section_past_the_end_of_the_file_is_rejected(tmp_path):
    data = build_module()
    index = _index(data, ".comment")
    rep = _report(tmp_path, _set(data, index, "size", len(data)))
    c = _gate(rep, Gate.ELF)
    assert c.effect is Effect.REJECTED and not c.ok
    assert "Invalid ELF section in module (section %d type 1)" % index in c.message
    assert headline(rep).startswith("will be rejected at load: the kernel refuses")


def test_a_section_whose_end_overflows_is_rejected_though_kbuildguard_cannot_read_it(tmp_path):
    """offset + size wraps around 64 bits: validate_section_offset()'s "secend < sh_offset"."""
    data = build_module()
    index = _index(data, ".comment")
    rep = _report(tmp_path, _set(_set(data, index, "offset", (1 << 64) - 8), index, "size", 16))
    assert rep.verdict is Verdict.MISMATCH and rep.effect is Effect.REJECTED
    assert "Invalid ELF section in module" in _gate(rep, Gate.ELF).message


@pytest.mark.parametrize("mutate,line", [
    (lambda d: _set(d, 0, "type", 1), "section 0 type(1)!=SH_NULL"),
    (lambda d: _set(d, 0, "size", 4), "section 0 type(0)!=SH_NULL or non-zero len"),
    (lambda d: _set(d, _index(d, ".modinfo"), "name", 0xFFFF), "Invalid ELF section in module"),
    (lambda d: _set(d, _index(d, ".symtab"), "link", 0), "Invalid ELF sh_link!=SHN_UNDEF(0)"),
    (lambda d: struct.pack("<H", 0).join((d[:0x3E], d[0x40:])), "Invalid ELF section name index: 0"),
])
def test_what_elf_validity_check_refuses(tmp_path, mutate, line):
    rep = _report(tmp_path, mutate(build_module()))
    assert rep.effect is Effect.REJECTED
    assert line in (_gate(rep, Gate.ELF).message if rep.checks[0].name is not Gate.ELF else rep.checks[0].message)


def test_a_section_name_table_without_its_terminating_nul(tmp_path):
    data = build_module()
    names = _index(data, ".shstrtab")
    end = _get(data, names, "offset") + _get(data, names, "size") - 1
    rep = _report(tmp_path, data[:end] + b"x" + data[end + 1:])
    assert rep.effect is Effect.REJECTED
    assert "section name table isn't null terminated" in [c for c in rep.checks if c.name is Gate.ELF][0].message


def test_a_section_reaching_into_the_signature_is_outside_the_module(tmp_path):
    """module_sig_check() strips the signature before elf_validity_check() measures the file."""
    blob = b"\x30" * 16
    trailer = blob + struct.pack(">BBBBB3xI", 0, 0, 2, 0, 0, len(blob)) + b"~Module signature appended~\n"
    data = build_module(trailer=trailer)
    index = _index(data, ".comment")
    reaching = _set(data, index, "size", len(data) - 30 - _get(data, index, "offset"))
    rep = _report(tmp_path, reaching)
    assert _gate(rep, Gate.ELF).effect is Effect.REJECTED
    assert _gate(_report(tmp_path, data, name="fine.ko"), Gate.ELF).ok


def test_a_non_allocated_section_name_out_of_range_by_kernel_version(tmp_path):
    """6.1's elf_validity_check() checks the names of SHF_ALLOC sections only, but find_any_sec() then
    strcmp()s every section's name: out of bounds, an oops (the independent tester's qemu run: insmod
    killed, taint D). 6.12 refuses every non-null section's in elf_validity_check()."""
    data = build_module()
    mutated = _set(data, _index(data, ".comment"), "name", 0xFFFF)
    c = _gate(_report(tmp_path, mutated), Gate.ELF)
    assert c.effect is Effect.REJECTED and "find_any_sec()" in c.message
    newer = _report(tmp_path / "x", mutated, target=_target(tmp_path / "new", release="6.12.57+deb13-amd64"))
    assert _gate(newer, Gate.ELF).effect is Effect.REJECTED
    between = _report(tmp_path / "y", mutated, target=_target(tmp_path / "mid", release="6.8.0-40-generic"))
    assert _gate(between, Gate.ELF).effect is Effect.REJECTED


def test_a_writable_and_executable_section_is_refused(tmp_path):
    """module_enforce_rwx_sections() (CONFIG_STRICT_MODULE_RWX, forced on x86_64 and arm64): "section
    .kdemo_wx (index 19) has invalid WRITE|EXEC flags" -- the tester's false ok, seen in qemu."""
    data = build_module()
    mutated = _set(data, _index(data, ".comment"), "flags", 0x1 | 0x4)
    c = _gate(_report(tmp_path, mutated), Gate.ELF)
    assert c.effect is Effect.REJECTED and "invalid WRITE|EXEC flags" in c.message


def test_a_relocation_section_for_a_section_that_does_not_exist_is_not_checked(tmp_path):
    """apply_relocations() skips it; what it should have patched runs unrelocated: the tester's oops,
    and in Debian's 6.1 (docs/differential.md, seed 18) ten such variants that loaded -- the loader does
    not refuse it, so never ok, and not "rejected" either."""
    data = build_module(text_relocations=[(2, "_printk")])
    mutated = _set(data, _index(data, ".rela.text"), "info", 500)
    c = _gate(_report(tmp_path, mutated), Gate.RELOCATIONS)
    assert c.effect is Effect.NOT_CHECKED and "does not exist" in c.message


def test_what_apply_relocate_add_does_not_check_is_not_checked(tmp_path):
    """arch/x86/kernel/module.c __apply_relocate_add() (6.1) loops sh_size / sizeof(Elf64_Rela) times
    and trusts r_offset and the symbol index: a partial entry is dropped, nothing is refused. Debian's
    6.1 loaded 33 such variants of the differential run and oopsed on others: never ok, not rejected."""
    data = build_module(text_relocations=[(2, "_printk")])
    mutated = _set(data, _index(data, ".rela.text"), "size", 23)
    c = _gate(_report(tmp_path, mutated), Gate.RELOCATIONS)
    assert c.effect is Effect.NOT_CHECKED and "not a whole number of 24-byte entries" in c.message, c


def test_a_relocation_running_past_its_section_is_not_checked(tmp_path):
    """__write_relocate_add() compares the bytes in the module's memory with zero: past the section's
    end those are padding or the next section's, not the file's (seed 18's v00718 and v01872 loaded)."""
    data = build_module(text_relocations=[(1, "_printk", 0, 8)])
    mutated = _set(data, _index(data, ".text"), "size", 12)
    c = _gate(_report(tmp_path, mutated), Gate.RELOCATIONS)
    assert c.effect is Effect.NOT_CHECKED and "runs past the section's end" in c.message, c


def test_a_section_name_past_the_table_but_inside_the_file_is_not_checked(tmp_path):
    """load_module() reads names from its copy of the whole file: a name just past .shstrtab is other
    bytes of the file, no oops (seed 18's v00546, v00653, v01895 loaded in Debian's 6.1)."""
    data = build_module()
    past = _get(data, _index(data, ".shstrtab"), "size") + 1
    c = _gate(_report(tmp_path, _set(data, _index(data, ".comment"), "name", past)), Gate.ELF)
    assert c.effect is Effect.NOT_CHECKED and "other bytes of the file" in c.message, c


def test_versions_of_type_nobits_are_read_where_the_kernel_reads_them(tmp_path):
    """rewrite_section_headers() (6.1) points every section at its offset in the copy of the file,
    whatever its type: __versions made SHT_NOBITS keeps its entries (seed 18's v01535 loaded)."""
    data = build_module()
    path = tmp_path / "nobits.ko"
    path.write_bytes(_set(data, _index(data, "__versions"), "type", 8))
    assert read_module(str(path)).version_names == ("module_layout", "_printk")


def test_struct_module_relocations_use_the_loaders_symbol_table(tmp_path):
    """The loader relocates against its one symbol table (info->index.sym), not sh_link: a changed
    sh_link leaves init and exit where they were (seed 18's v00129 and v00271 loaded); a symbol index
    past the table is the relocations gate's not-checked, not an unreadable file."""
    data = build_module()
    rela = _index(data, ".rela.gnu.linkonce.this_module")
    path = tmp_path / "link.ko"
    path.write_bytes(_set(data, rela, "link", 0))
    layout = read_module(str(path)).layout
    assert layout is not None and (layout.init_offset, layout.exit_offset) == (0x138, 0x350)


def test_a_common_symbol_is_refused(tmp_path):
    """simplify_symbols() (6.1): SHN_COMMON other than __gnu_lto* is "please compile with
    -fno-common", -ENOEXEC -- a nameless one too (seed 23's v00581: a section symbol made common)."""
    data = bytearray(build_module())
    sym = Elf(bytes(data), "m.ko").section(".symtab")
    struct.pack_into("<I", data, sym.offset + 24, 0)  # symbol 1's st_name: none
    struct.pack_into("<H", data, sym.offset + 24 + 6, 0xFFF2)  # its st_shndx: SHN_COMMON
    c = _gate(_report(tmp_path, bytes(data)), Gate.SYMBOLS)
    assert c.effect is Effect.REJECTED and "please compile with -fno-common" in c.message, c


def test_relocations_the_linker_never_writes_are_not_checked(tmp_path):
    """A relocation section flagged SHF_RELA_LIVEPATCH goes to livepatch (seed 23's v00606: "section
    .rela.data has an incorrectly formatted name"); an emptied one leaves its section unrelocated
    (v00274: an oops in apply_returns()); a .return_sites entry outside its function's section sends
    apply_returns() elsewhere (v00306)."""
    data = build_module(text_relocations=[(2, "_printk")])
    rela = _index(data, ".rela.text")
    live = _gate(_report(tmp_path / "a", _set(data, rela, "flags", 0x40 | 0x00100000)), Gate.RELOCATIONS)
    assert live.effect is Effect.NOT_CHECKED and "SHF_RELA_LIVEPATCH" in live.message, live
    empty = _gate(_report(tmp_path / "b", _set(data, rela, "size", 0)), Gate.RELOCATIONS)
    assert empty.effect is Effect.NOT_CHECKED and "is empty" in empty.message, empty
    far = build_module(text_relocations=[(2, "init_module", 0x100000)], text_name=".return_sites")
    c = _gate(_report(tmp_path / "c", far), Gate.RELOCATIONS)
    assert c.effect is Effect.NOT_CHECKED and "points an entry at 0x100000" in c.message, c
    near = build_module(text_relocations=[(2, "init_module", 8)], text_name=".return_sites")
    assert "points an entry" not in _gate(_report(tmp_path / "d", near), Gate.RELOCATIONS).message


def test_names_are_read_where_the_loader_reads_them_not_within_strtabs_size(tmp_path):
    """info->strtab is the string table's file offset; st_name is added unbounded (seed 23's v00675,
    .strtab's sh_size made 0, loaded in Debian's 6.1): the names are still there."""
    data = build_module()
    path = tmp_path / "strtab.ko"
    path.write_bytes(_set(data, _index(data, ".strtab"), "size", 0))
    info = read_module(str(path))
    assert info.needed.strong == ("_printk",) and info.layout is not None and info.layout.init_offset == 0x138


def test_an_undefined_name_just_past_strtab_is_the_empty_name_the_loader_reads(tmp_path):
    """Seed 18's sym.st_name variants: st_name = .strtab's size reads the next byte of the file, a NUL:
    simplify_symbols() looks up "", "Unknown symbol  (err -2)"."""
    data = bytearray(build_module())
    elf = Elf(bytes(data), "m.ko")
    sym, strtab = elf.section(".symtab"), elf.section(".strtab")
    k = next(i for i in range(1, sym.size // 24) if struct.unpack_from("<H", data, sym.offset + 24 * i + 6)[0] == 0)
    struct.pack_into("<I", data, sym.offset + 24 * k, strtab.size)
    data[strtab.offset + strtab.size] = 0
    c = _gate(_report(tmp_path, bytes(data)), Gate.SYMBOLS)
    assert c.effect is Effect.REJECTED and "empty name" in c.message, c


@pytest.mark.parametrize("addend,effect", [(-4, Effect.NOT_CHECKED), (0, Effect.OK), (8, Effect.OK)])
def test_a_data_pointer_before_an_undefined_symbol_is_not_checked(tmp_path, addend, effect):
    """Seed 18's v01965: a __param ops pointer's addend 0 -> -4, loaded, then rmmod called through it
    (an oops). No compiler writes a pointer in data before an undefined symbol (none of Debian 6.1's
    4,023 modules does); a member's offset after one is common."""
    data = build_module(text_relocations=[(1, "_printk", addend)], text_name=".data")
    data = _set(data, _index(data, ".data"), "flags", 0x3)  # SHF_WRITE | SHF_ALLOC: data, not code
    c = _gate(_report(tmp_path, data), Gate.RELOCATIONS)
    assert c.effect is effect, c


def test_an_old_kernel_checks_truncation_but_maybe_not_the_rest(tmp_path):
    old = _target(tmp_path / "old", release="4.18.0-553.el8_10.x86_64")
    data = build_module()
    hardened = _report(tmp_path, _set(data, 0, "type", 1), target=old)
    assert _gate(hardened, Gate.ELF).effect is Effect.NOT_CHECKED
    truncated = _report(tmp_path, _set(data, _index(data, ".comment"), "size", len(data)), target=old, name="t.ko")
    assert _gate(truncated, Gate.ELF).effect is Effect.REJECTED


def test_this_module_without_shf_alloc_is_not_found(tmp_path):
    data = build_module()
    rep = _report(tmp_path, _set(data, _index(data, ".gnu.linkonce.this_module"), "flags", 0))
    c = _gate(rep, Gate.THIS_MODULE)
    assert c.effect is Effect.REJECTED and "No module found in object" in c.message


def test_modinfo_without_shf_alloc_is_ignored_by_the_loader(tmp_path):
    """find_sec() skips it: no vermagic, as far as the kernel is concerned."""
    data = build_module()
    info_path = tmp_path / "m.ko"
    info_path.write_bytes(_set(data, _index(data, ".modinfo"), "flags", 0))
    assert read_module(str(info_path)).vermagic == ""


# -- case 4: apply_relocations() --------------------------------------------------------------

def test_r_x86_64_32_against_the_modules_own_symbol_is_an_overflow(tmp_path):
    """What -mcmodel=small leaves in .text: the kernel says "overflow in relocation type 10"."""
    rep = _report(tmp_path, build_module(text_relocations=[(10, "init_module"), (2, "_printk")]))
    c = _gate(rep, Gate.RELOCATIONS)
    assert c.effect is Effect.REJECTED and "overflow in relocation type 10" in c.message
    assert "-mcmodel=kernel" in c.message and "-mcmodel" in c.fix


def test_r_x86_64_32_against_an_exported_symbol_is_judged_by_the_worse(tmp_path):
    c = _gate(_report(tmp_path, build_module(text_relocations=[(10, "_printk")])), Gate.RELOCATIONS)
    assert c.effect is Effect.REJECTED and "per-cpu" in c.message


def test_the_types_x86_64_applies_are_accepted(tmp_path):
    rep = _report(tmp_path, build_module(text_relocations=[(t, "_printk") for t in (1, 2, 4, 11, 24)]))
    assert _gate(rep, Gate.RELOCATIONS).ok and _gate(rep, Gate.RELOCATIONS).effect is Effect.OK


def test_an_unknown_x86_64_relocation_type(tmp_path):
    c = _gate(_report(tmp_path, build_module(text_relocations=[(3, "_printk")])), Gate.RELOCATIONS)
    assert c.effect is Effect.REJECTED and "Unknown rela relocation: 3" in c.message


def test_a_type_above_255_is_read_whole(tmp_path):
    """ELF64_R_TYPE is 32 bits: 0x10002 is not R_X86_64_PC32 to the kernel."""
    c = _gate(_report(tmp_path, build_module(text_relocations=[(0x10002, "_printk")])), Gate.RELOCATIONS)
    assert c.effect is Effect.REJECTED and "Unknown rela relocation: 65538" in c.message


def test_rel_sections_are_unsupported_on_x86_64(tmp_path):
    c = _gate(_report(tmp_path, build_module(text_relocations=[(2, "_printk")], rel_text=True)), Gate.RELOCATIONS)
    assert c.effect is Effect.REJECTED and "REL relocation unsupported" in c.message


def test_relocations_of_a_section_that_is_not_allocated_are_skipped(tmp_path):
    data = build_module(text_relocations=[(3, "_printk")])
    rep = _report(tmp_path, _set(data, _index(data, ".text"), "flags", 0))
    assert _gate(rep, Gate.RELOCATIONS).ok


@pytest.mark.parametrize("typ,ok", [(283, True), (275, True), (299, True), (281, False), (1027, False)])
def test_arm64_relocation_types(tmp_path, typ, ok):
    target = _target(tmp_path, arch_config="CONFIG_ARM64", release="6.1.0-57-arm64")
    rep = _report(tmp_path, build_module(machine=EM_AARCH64, text_relocations=[(typ, "_printk")],
                                         vermagic="6.1.0-57-arm64 SMP preempt mod_unload modversions aarch64"),
                  target=target)
    c = _gate(rep, Gate.RELOCATIONS)
    assert c.ok is ok
    if not ok:
        assert "unsupported RELA relocation: %d" % typ in c.message


# -- case 5: symbol versions ------------------------------------------------------------------

def test_an_empty_versions_section_is_refused_by_debian_without_module_symvers(tmp_path):
    target = _target(tmp_path, symvers=False)
    rep = _report(tmp_path, build_module(versions=[]), target=target)
    c = _gate(rep, Gate.SYMBOL_VERSIONS)
    assert c.effect is Effect.REJECTED and "no symbol version for module_layout" in c.message
    assert "Module.symvers" in c.fix


def test_an_empty_versions_section_upstream_only_warns(tmp_path):
    target = _target(tmp_path, symvers=False, cc_text="gcc (GCC) 12.2.0")
    c = _gate(_report(tmp_path, build_module(versions=[], comment=("GCC: (GCC) 12.2.0",)), target=target),
              Gate.SYMBOL_VERSIONS)
    assert c.effect is not Effect.REJECTED


@pytest.mark.parametrize("force,effect", [(True, Effect.TAINTS), (False, Effect.REJECTED)])
def test_no_versions_section_at_all_goes_through_try_to_force_load(tmp_path, force, effect):
    extra = ["CONFIG_MODULE_FORCE_LOAD=y"] if force else []
    c = _gate(_report(tmp_path, build_module(versions=None), extra_config=extra, symvers=False), Gate.SYMBOL_VERSIONS)
    assert c.effect is effect


# -- case 6: compression ----------------------------------------------------------------------

DEBIAN_KMOD = kmod.KmodFeatures("/usr/bin/kmod", "+ZSTD +XZ -ZLIB +LIBCRYPTO -EXPERIMENTAL", True, True, False)


def _compressed(tmp_path, fmt, features, extra_config=()):
    target = _target(tmp_path, extra_config=extra_config)
    facts = loader.gather(target)._replace(kmod=(features, "" if features else "not known here"))
    pack = {"gz": gzip.compress, "xz": lzma.compress, "bz2": bz2.compress}[fmt]
    return _gate(_report(tmp_path, pack(build_module()), name="m.ko." + fmt, target=target, facts=facts),
                 Gate.COMPRESSION)


def test_bzip2_is_never_loadable(tmp_path):
    c = _compressed(tmp_path, "bz2", DEBIAN_KMOD)
    assert c.effect is Effect.REJECTED and "bzip2" in c.message


def test_gzip_on_debian_12_is_refused_and_xz_loads(tmp_path):
    gz = _compressed(tmp_path / "g", "gz", DEBIAN_KMOD)
    assert gz.effect is Effect.REJECTED and "Invalid ELF header magic" in gz.message and "-ZLIB" in gz.message
    assert _compressed(tmp_path / "x", "xz", DEBIAN_KMOD).effect is Effect.OK


def test_gzip_the_kernel_decompresses_itself_needs_kmod_31(tmp_path):
    c = _compressed(tmp_path, "gz", DEBIAN_KMOD, ["CONFIG_MODULE_DECOMPRESS=y", "CONFIG_MODULE_COMPRESS_GZIP=y"])
    assert c.effect is Effect.REJECTED and "kmod 31" in c.message


def test_compression_with_an_unknown_kmod_is_not_checked(tmp_path):
    c = _compressed(tmp_path, "xz", None)
    assert c.effect is Effect.NOT_CHECKED and "not known here" in c.message


def test_kmod_features_read_from_the_binary_of_a_sysroot(tmp_path):
    blob = b"\x00\x7fELF junk\x00kmod version %s\x00+ZSTD +XZ -ZLIB +LIBCRYPTO -EXPERIMENTAL\x00more"
    assert kmod.parse("k", blob) == DEBIAN_KMOD._replace(path="k")
    assert kmod.parse("k", b"no features here") is None
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/kmod").write_bytes(blob)
    target = _target(tmp_path)._replace(sysroot=str(tmp_path))
    found, why = kmod.gather(target)
    assert found is not None and found.path == str(tmp_path / "usr/bin/kmod") and not found.zlib and why == ""


# -- case 9 and 10: the headline, and two possible outcomes -------------------------------------

def _rep(*checks: Check) -> ModuleReport:
    return ModuleReport(path="m.ko", verdict=Verdict.OK if all(c.ok for c in checks) else Verdict.MISMATCH, checks=checks, info=None)


def test_the_headline_names_gates_not_checked_beside_a_taint():
    rep = _rep(Check(name=Gate.SIGNATURE, ok=True, expected="", found="", message="unsigned: the kernel taints", fix="", effect=Effect.TAINTS),
               Check(name=Gate.SYMBOL_VERSIONS, ok=True, expected="", found="", message="not compared", fix="", effect=Effect.NOT_CHECKED))
    line = headline(rep)
    # an unchecked gate may refuse it: no promise that it loads leads the line, the taint follows
    assert line.startswith("not fully checked: symbol_versions") and "if it loads, it will taint the kernel" in line
    assert not line.startswith("ok")


def test_ok_only_when_every_gate_was_checked():
    assert headline(_rep(Check(name=Gate.SYMBOLS, ok=True, expected="", found="", message="fine"))) == "ok"
    line = headline(_rep(Check(name=Gate.SYMBOLS, ok=True, expected="", found="", message="fine"), Check(name=Gate.BTF, ok=True, expected="", found="", message="?", fix="", effect=Effect.NOT_CHECKED)))
    assert line.startswith("not fully checked: btf")


def test_a_layout_that_differs_without_btf_on_x86_64_is_judged_rejected(tmp_path):
    effect, why = layout_effect(_target(tmp_path), False, ())
    assert effect is Effect.REJECTED and "or else loads and cannot be unloaded" in why


# -- case 12 (loader half) --------------------------------------------------------------------

def test_global_offset_table_is_ignored_on_i686_as_the_kernel_does(tmp_path):
    target = _target(tmp_path)
    info_path = tmp_path / "m32.ko"
    info_path.write_bytes(build_module(machine=3, undefined=["_printk", "_GLOBAL_OFFSET_TABLE_"]))
    info = read_module(str(info_path))
    assert str(info.arch) == "i686"
    c = loader.check_symbols(info, loader.gather(target), frozenset())
    assert c.ok, c.message


# -- case 6, the other way round: a .ko.zst without a zstd library --------------------------------

def test_zstd_without_a_library_is_read_with_the_system_zstd(tmp_path, monkeypatch):
    """Python < 3.14 without `zstandard`: the system's zstd program, through run.py, decompresses it."""
    import sys

    from kbuildguard import run

    monkeypatch.setitem(sys.modules, "zstandard", None)
    plain = build_module()
    asked = []

    def fake(program, path, limit, timeout=120):
        asked.append((list(program), open(path, "rb").read()))
        return plain

    monkeypatch.setattr(run, "decompress_file", fake)
    frame = b"\x28\xb5\x2f\xfd" + b"compressed"
    (tmp_path / "m.ko.zst").write_bytes(frame)
    info = read_module(str(tmp_path / "m.ko.zst"))
    assert info.compression == "zstd" and info.vermagic.startswith("6.1.0-56-amd64")
    assert asked == [(["zstd", "-d", "-c", "-q"], frame)]
    monkeypatch.setattr(run, "decompress_file", lambda *a, **k: None)
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: "/usr/bin/zstd")
    with pytest.raises(BadInput) as err:  # the program is there and fails: the data is corrupt (junk appended)
        read_module(str(tmp_path / "m.ko.zst"))
    assert "corrupt compressed data" in str(err.value)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(BadInput) as err:
        read_module(str(tmp_path / "m.ko.zst"))
    assert "zstd program" in str(err.value)


# -- every gate on mutated files: a verdict or BadInput, never a traceback ------------------------

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is in tests/requirements*.txt
    given = None

if given is not None:
    SEED = build_module(text_relocations=[(10, "init_module"), (2, "_printk")])
    FUZZ_TARGET: list = []  # one tree for every example (a session's tmp_path_factory outlives them)

    @settings(max_examples=examples(200), deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)), min_size=1, max_size=8))
    def test_mutated_modules_get_a_verdict(tmp_path_factory, edits):
        data = bytearray(SEED)
        for at, value in edits:
            data[at] = value
        if not FUZZ_TARGET:
            FUZZ_TARGET.append(_target(tmp_path_factory.mktemp("fuzz-tree")))
        target = FUZZ_TARGET[0]
        tmp = tmp_path_factory.getbasetemp()
        (tmp / "m.ko").write_bytes(bytes(data))
        rep = verify_path(str(tmp / "m.ko"), Expectation(target=target, level=MatchLevel.VERSION, reference=None, not_compared="", loader=loader.bare(target)))
        assert rep.checks and (rep.verdict is not Verdict.OK or rep.effect is not Effect.REJECTED)


def test_an_xz_module_with_junk_after_its_stream_is_refused_as_kmod_refuses_it(tmp_path):
    """The tester's false ok: Debian's signed brd.ko.xz with 100 bytes appended was "ok"; kmod 30
    ("could not get modinfo ... Invalid argument") refuses it. xz's zero padding is still read."""
    import lzma

    good = lzma.compress(build_module(), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    (tmp_path / "pad.ko.xz").write_bytes(good + b"\0" * 8)
    assert read_module(str(tmp_path / "pad.ko.xz")).compression == "xz"
    (tmp_path / "junk.ko.xz").write_bytes(good + b"junk" * 25)
    with pytest.raises(BadInput) as err:
        read_module(str(tmp_path / "junk.ko.xz"))
    assert "after the xz stream" in str(err.value)


def test_the_headline_names_every_taint(tmp_path):
    """issue 18 (tester): unsigned (E), a proprietary licence (P) and staging=Y (C) are three taints; the
    headline named the first only."""
    target = _target(tmp_path, extra_config=("CONFIG_MODULE_SIG=y",))
    ko = tmp_path / "kdemo.ko"
    ko.write_bytes(build_module(license="Proprietary\x00staging=Y"))
    rep = verify_path(str(ko), Expectation(target=target, level=MatchLevel.EXACT, reference=None, loader=loader.gather(target)))
    taints = [c for c in rep.checks if c.effect is Effect.TAINTS]
    assert {c.name for c in taints} == {Gate.SIGNATURE, Gate.LICENSE}, rep.checks
    line = headline(rep)
    assert "taint the kernel (E, P, C)" in line, line
    assert "module verification failed" in line and "not GPL-compatible" in line and "staging directory" in line


# -- the differential corpus's false ok (docs/differential.md): each rule fails without its fix ---

def _symbol(data: bytes, index: int, **fields) -> bytes:
    """Set fields (shndx, value, name, info) of symbol ``index`` in .symtab."""
    sec = Elf(data, "m.ko").section(".symtab")
    assert sec is not None
    out = bytearray(data)
    at = {"name": (0, "I"), "info": (4, "B"), "shndx": (6, "H"), "value": (8, "Q")}
    for field, value in fields.items():
        offset, fmt = at[field]
        struct.pack_into("<" + fmt, out, sec.offset + 24 * index + offset, value)
    return bytes(out)


def _rela(data: bytes, section: str, entry: int, addend: int) -> bytes:
    sec = Elf(data, "m.ko").section(section)
    assert sec is not None
    out = bytearray(data)
    struct.pack_into("<q", out, sec.offset + 24 * entry + 16, addend)
    return bytes(out)


@pytest.mark.parametrize("shndx", [0xFF00, 0xFF1F, 0xFFF0, 40])
def test_a_symbol_in_a_reserved_or_missing_section_is_refused(tmp_path, shndx):
    """simplify_symbols(): any st_shndx >= e_shnum but ABS, COMMON and LIVEPATCH, the reserved range
    included ("Symbol %s has an invalid section index 65280", v00220 and eight more)."""
    c = _gate(_report(tmp_path, _symbol(build_module(), 3, shndx=shndx)), Gate.SYMBOLS)
    assert c.effect is Effect.REJECTED and "invalid section index" in c.message


@pytest.mark.parametrize("shndx", [0xFF20, 0xFFF1])
def test_livepatch_and_absolute_symbols_keep_their_section_index(tmp_path, shndx):
    c = _gate(_report(tmp_path, _symbol(build_module(), 3, shndx=shndx, value=0xFFFFFFFF81000000)), Gate.SYMBOLS)
    assert "invalid section index" not in c.message


def test_an_undefined_symbol_with_an_empty_name_is_unknown(tmp_path):
    """v00369: the symbol table's sh_link moved to another string table: the kernel looks up ""."""
    data = build_module()
    c = _gate(_report(tmp_path, _symbol(data, 3, name=0)), Gate.SYMBOLS)
    assert c.effect is Effect.REJECTED and "empty name" in c.message
    weak = _symbol(data, 3, name=0, info=0x20)  # STB_WEAK: "Ok if weak"
    assert "empty name" not in _gate(_report(tmp_path / "weak", weak), Gate.SYMBOLS).message


def test_an_empty_vermagic_is_refused_even_where_force_load_would_taint(tmp_path):
    """v01468: check_modinfo() finds vermagic= and same_magic("") fails; only a missing one is forced."""
    target = _target(tmp_path, extra_config=["CONFIG_MODULE_FORCE_LOAD=y"])
    empty = _gate(_report(tmp_path / "empty", build_module(vermagic=""), target=target), Gate.VERMAGIC)
    assert empty.effect is Effect.REJECTED and "empty version magic" in empty.message
    missing = _gate(_report(tmp_path / "missing", build_module(vermagic=None), target=target), Gate.VERMAGIC)
    assert missing.effect is Effect.TAINTS


def _relocations(tmp_path, data: bytes) -> Check:
    return _gate(_report(tmp_path, data), Gate.RELOCATIONS)


def test_a_relocation_section_aimed_at_another_section_is_not_checked(tmp_path):
    """v00206, v01338, v01974: sh_info moved; the section the name promises runs unrelocated."""
    data = build_module(text_relocations=[(2, "_printk")])
    c = _relocations(tmp_path, _set(data, _index(data, ".rela.text"), "info", _index(data, ".init.text")))
    assert c.effect is Effect.NOT_CHECKED and "not .text as its name says" in c.message


@pytest.mark.parametrize("typ", [0, 1])  # SHT_NULL, SHT_PROGBITS
def test_a_relocation_section_that_lost_its_type_is_not_checked(tmp_path, typ):
    """v01154, v01677: the loader skips it and .text runs unrelocated ("missing return thunk")."""
    data = build_module(text_relocations=[(2, "_printk")])
    c = _relocations(tmp_path, _set(data, _index(data, ".rela.text"), "type", typ))
    assert c.effect is Effect.NOT_CHECKED and "not SHT_RELA" in c.message


def test_r_x86_64_none_outside_text_is_not_checked(tmp_path):
    """v00857: a NONE in .exit.text leaves the call's bytes zero; Debian's own NONE live in .text."""
    c = _relocations(tmp_path, build_module(text_relocations=[(0, "_printk")], text_name=".exit.text"))
    assert c.effect is Effect.NOT_CHECKED and "R_X86_64_NONE" in c.message
    assert _relocations(tmp_path / "text", build_module(text_relocations=[(0, "_printk")])).effect is Effect.OK


@pytest.mark.parametrize("typ,effect", [(11, Effect.NOT_CHECKED), (1, Effect.NOT_CHECKED), (2, Effect.OK)])
def test_absolute_types_in_a_self_relative_section(tmp_path, typ, effect):
    """v00401, v01142: .return_sites holds offsets from each entry; an R_X86_64_32S there oopses."""
    c = _relocations(tmp_path, build_module(text_relocations=[(typ, "_printk", 0)], text_name=".return_sites"))
    assert c.effect is effect


def test_struct_module_init_off_the_functions_start_is_not_checked(tmp_path):
    """v00571, v01632: init_module + 1 is jumped to by do_one_initcall()."""
    data = _rela(build_module(), ".rela.gnu.linkonce.this_module", 0, 1)
    c = _relocations(tmp_path, data)
    assert c.effect is Effect.NOT_CHECKED and "init or exit" in c.message


@pytest.mark.parametrize("relocations,overlap", [
    ([(1, "_printk", 0, 0), (2, "_printk", -4, 4)], True),  # an 8-byte write, then a 4-byte one inside it
    ([(2, "_printk", -4, 0), (2, "_printk", -4, 2)], True),
    ([(2, "_printk", -4, 0), (2, "_printk", -4, 4), (1, "_printk", 0, 8)], False),
])
def test_two_relocations_writing_the_same_bytes(tmp_path, relocations, overlap):
    """v00758, v01014, v01524, v01626: the second finds the first's value ("existing value is nonzero")."""
    c = _relocations(tmp_path, build_module(text_relocations=relocations, text_name=".data"))
    assert (c.effect is Effect.NOT_CHECKED and "same bytes" in c.message) is overlap


def test_a_relocation_against_an_absolute_symbol_at_a_low_address_is_not_checked(tmp_path):
    """v00260, v01606: an undefined symbol turned SHN_ABS with value 0: the call goes to address 0."""
    data = _symbol(build_module(text_relocations=[(4, "_printk")]), 3, shndx=0xFFF1)
    c = _relocations(tmp_path, data)
    assert c.effect is Effect.NOT_CHECKED and "absolute" in c.message


def test_a_section_symbol_with_a_value_is_not_checked(tmp_path):
    """v00458: a section symbol stands for its section's start."""
    data = build_module(text_relocations=[(1, "init_module")])
    c = _relocations(tmp_path, _symbol(data, 1, info=0x03, value=8))
    assert c.effect is Effect.NOT_CHECKED and "section symbol" in c.message


def test_a_plt32_whose_addend_is_not_minus_four_is_not_checked(tmp_path):
    """v00864, v01368, v01653: a call lands inside an instruction."""
    c = _relocations(tmp_path, build_module(text_relocations=[(4, "_printk", -8)]))
    assert c.effect is Effect.NOT_CHECKED and "not -4" in c.message


def test_pc_relative_values_in_writable_data_are_not_checked(tmp_path):
    """v01618: R_X86_64_64 turned PC32 in .data writes 4 bytes of an 8-byte pointer."""
    data = build_module(text_relocations=[(2, "_printk")], text_name=".data")
    c = _relocations(tmp_path, _set(data, _index(data, ".data"), "flags", 0x3))
    assert c.effect is Effect.NOT_CHECKED and "writable data" in c.message


def test_a_call_into_code_that_is_not_executable_or_freed_after_init(tmp_path):
    """v01819: an undefined callee moved into .init.text, which do_init_module() frees: the exit
    path calls freed memory."""
    c = _relocations(tmp_path, build_module(text_relocations=[(4, "init_module")], text_name=".exit.text"))
    assert c.effect is Effect.NOT_CHECKED and "frees once init returns" in c.message
    from_init = build_module(text_relocations=[(4, "init_module")], text_name=".init.text.x")
    assert _relocations(tmp_path / "init", from_init).effect is Effect.OK
    data = build_module(text_relocations=[(4, "init_module")])
    c = _relocations(tmp_path / "nx", _set(data, _index(data, ".init.text"), "flags", 0x2))
    assert c.effect is Effect.NOT_CHECKED and "not code" in c.message


@pytest.mark.parametrize("opcode,effect", [(b"\x00", Effect.NOT_CHECKED), (b"\xe8", Effect.OK), (b"\xe9", Effect.OK)])
def test_a_static_call_site_must_be_a_call(tmp_path, opcode, effect):
    """v01844: __static_call_validate() BUGs on any other opcode ("unexpected static_call insn opcode")."""
    data = build_module(text_relocations=[(2, "_printk", -4, 0), (2, "init_module", 0, 8)],
                        text_name=".static_call_sites")
    init = Elf(data, "m.ko").section(".init.text")
    assert init is not None
    data = data[:init.offset] + opcode + data[init.offset + 1:]
    assert _relocations(tmp_path, data).effect is effect


def test_a_self_relative_section_no_relocation_fills_is_not_checked(tmp_path):
    """v00523: another section renamed .static_call_sites: the kernel patches whatever it finds there."""
    data = build_module(text_relocations=[(2, "_printk")], text_name=".orc_unwind_ip")
    rela = _index(data, ".rela.orc_unwind_ip")
    data = _set(_set(data, rela, "info", 0), rela, "name", 1)  # skipped, and named as no .rela section
    assert Elf(data, "m.ko").relocation_facts().doubt.startswith(".orc_unwind_ip")


def _elf(tmp_path, data: bytes) -> Check:
    return _gate(_report(tmp_path, data), Gate.ELF)


def test_code_that_is_not_executable_is_not_checked(tmp_path):
    """v00662: .init.text without SHF_EXECINSTR: init runs in NX memory."""
    data = build_module()
    c = _elf(tmp_path, _set(data, _index(data, ".init.text"), "flags", 0x2))
    assert c.effect is Effect.NOT_CHECKED and "not executable" in c.message


def test_struct_module_that_is_not_writable_is_not_checked(tmp_path):
    """v01875: the loader writes mod->state into read-only memory."""
    data = build_module()
    c = _elf(tmp_path, _set(data, _index(data, ".gnu.linkonce.this_module"), "flags", 0x2))
    assert c.effect is Effect.NOT_CHECKED and "not writable" in c.message


@pytest.mark.parametrize("align,effect", [(1 << 40, Effect.NOT_CHECKED), (1 << 20, Effect.OK), (0xEDDA, Effect.OK)])
def test_an_alignment_that_wraps_the_layout(tmp_path, align, effect):
    """v00947: .strtab aligned to 2^40 wraps module_get_offset()'s unsigned int; 1 MiB loads (v00042)."""
    data = build_module()
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    out = bytearray(data)
    struct.pack_into("<Q", out, shoff + 64 * _index(data, ".strtab") + 48, align)
    assert _elf(tmp_path, bytes(out)).effect is effect


@pytest.mark.parametrize("at,value", [(4, 0), (4, 0x51), (5, 0x51), (5, 0)])
def test_the_kernel_ignores_the_class_and_data_bytes_of_e_ident(tmp_path, at, value):
    """v01077: EI_DATA 0x51 on brd.ko loaded (elf_check_arch() compares e_machine alone); kbuildguard
    called it unreadable."""
    data = bytearray(build_module())
    data[at] = value
    rep = _report(tmp_path, bytes(data))
    assert rep.verdict is not Verdict.ERROR
    assert _gate(rep, Gate.ELF).effect is Effect.OK


def test_an_allocated_section_on_another_sections_bytes_is_not_checked(tmp_path):
    """The differential corpus's v00711: .rodata.str1.1's sh_offset moved onto .symtab's bytes. The
    kernel copies those bytes in as the section's contents and init failed (-EINVAL); nothing in the
    file says what init will do with them: not-checked, never ok."""
    data = build_module()
    text, symtab = _index(data, ".init.text"), _index(data, ".symtab")
    rep = _report(tmp_path, _set(data, text, "offset", _get(data, symtab, "offset")))
    c = _gate(rep, Gate.ELF)
    assert c.effect is Effect.NOT_CHECKED and "lies on the same bytes of the file as section %d" % symtab in c.message, c
    assert headline(rep).startswith("not fully checked")
    untouched = _report(tmp_path / "good", data)
    assert _gate(untouched, Gate.ELF).effect is Effect.OK
