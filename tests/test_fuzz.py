"""Property-based fuzzing of every parser and of the ELF reader (hypothesis).

Each parser either returns its record or raises the one exception its callers turn into a clean
message (BadInput, ConfigError) - never IndexError, struct.error, UnicodeDecodeError or a hang.
scripts/test (CI) runs 200 examples each (KBG_FUZZ_SCALE=1; KBG_FUZZ_EXAMPLES overrides), a plain pytest a quarter
(tests/fuzzbudget.py); bench/fuzz.py runs long.
"""

import os
import struct

import pytest

hypothesis = pytest.importorskip("hypothesis")
from fuzzbudget import examples  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_btf import BASE, _btf, _split, _t  # noqa: E402

from elfbuild import EM_AARCH64, build_module  # noqa: E402
from kbuildguard.errors import BadInput, ConfigError  # noqa: E402
from kbuildguard.formats import btf, symvers  # noqa: E402
from kbuildguard.formats.elf import Elf  # noqa: E402
from kbuildguard.formats.module import read_module  # noqa: E402
from kbuildguard.identity import parse_comment, parse_compiler, parse_proc_version  # noqa: E402
from kbuildguard.project import parse_config  # noqa: E402
from kbuildguard.target.pasted import find_kernel_line  # noqa: E402
from kbuildguard.versions import compare  # noqa: E402

EXAMPLES = int(os.environ.get("KBG_FUZZ_EXAMPLES") or examples(200))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize="CI" in os.environ)

# Texts near the real thing: fragments of real lines, recombined and mutated.
FRAGMENTS = ["Linux version ", "6.1.0-13-amd64 ", "(mockbuild@x86-01) ", "(gcc version ", "8.3.1 ", "20190311 ",
             "(Red Hat 8.3.1-3) ", "(GCC)) ", "gcc-12 (Debian 12.2.0-14) 12.2.0", ", GNU ld version 2.38-25.el9)",
             "clang version 14.0.7 (", "Android (8508608, based on r450784e) ", "LLD 14.0.7)", "#1 SMP", "(", ")",
             "GCC: ", "[gcc-4_3-branch revision 152973]", "\x1b[2J", "\x00", "\u00e9", " "]
near_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=14).map("".join)


@FUZZ
@given(near_text)
def test_proc_version_parser(text):
    try:
        pv = parse_proc_version(text)
    except BadInput:
        return
    assert pv.release and pv.compiler.version


# What surrounds a kernel line when it is pasted: log prefixes, quotes, wraps, quoted-printable.
PASTE_FRAGMENTS = ["[    0.000000] ", "Dec  1 10:00:00 host kernel: ", "> ", ">> ", "\n", "\n> ", "=\n", "=3D", "`",
                   "...", "\u2026", "\u00a0", "\x1b[32m", "\x1b[0m", "\r\n", "kern  :notice: ", "<5>", "proc/version:",
                   "#1 SMP Tue Nov 14 13:30:08 UTC 2023", "Linux version: ", "(gcc 14)", "Linux host 5.1 #1 SMP x GNU/Linux"]
pasted_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS + PASTE_FRAGMENTS), st.text(max_size=12)), max_size=24).map("".join)


@FUZZ
@given(pasted_text)
def test_pasted_finder(text):
    """BadInput or a line that parses; never another exception."""
    try:
        found = find_kernel_line(text)
    except BadInput as exc:
        assert "\n" not in exc.message
        return
    assert parse_proc_version(found.line).release


@FUZZ
@given(near_text)
def test_pasted_finder_keeps_what_parses_today(text):
    """A one-line text parse_proc_version accepts comes back as it is, with no repair (unless it holds
    what never belongs to a kernel banner: colour codes, non-breaking spaces, a trailing backquote)."""
    if "\x00" in text or len(text.strip().splitlines()) != 1 or "\u00a0" in text or "\x1b[" in text \
            or text.strip().endswith("`") or "=" in text:
        return
    try:
        expected = parse_proc_version(text)
    except BadInput:
        return
    found = find_kernel_line(text)
    # the line comes back as it is (one cut off inside its compiler's parenthesis no longer parses: issue 22)
    assert found.line == expected.text and not found.repairs


@FUZZ
@given(near_text)
def test_compiler_parser(text):
    cid = parse_compiler(text)
    assert cid is None or cid.version[0].isdigit()


@FUZZ
@given(st.binary(max_size=300))
def test_comment_parser(data):
    compilers, linkers, strings = parse_comment(data)
    assert len(compilers) <= len(strings)


@FUZZ
@given(st.text(max_size=40), st.text(max_size=40))
def test_version_compare_is_antisymmetric(a, b):
    assert compare(a, b) == -compare(b, a)


@FUZZ
@given(st.text(max_size=300))
def test_config_parser(text):
    try:
        parse_config(text, "kbuildguard.toml")
    except ConfigError:
        pass


SEEDS = [build_module(), build_module(machine=EM_AARCH64, big_endian=True), build_module(comment=[], this_module_size=None)]


@FUZZ
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=12),
       st.integers(0, 2000))
def test_elf_reader_on_mutated_modules(seed, flips, cut):
    data = bytearray(seed)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    data = bytes(data[:cut] if cut < len(data) and cut % 3 == 0 else data)
    try:
        elf = Elf(data, "fuzz.ko")
        for name in (".comment", ".modinfo", ".gnu.linkonce.this_module", ".rela.gnu.linkonce.this_module"):
            sec = elf.section(name)
            if sec is not None:
                elf.section_data(sec)
                if name.startswith(".rela"):
                    for r in elf.relocations(sec):
                        elf.symbol_name(sec.link, r.symbol)
    except BadInput:
        pass


@FUZZ
@given(st.integers(0, 0xFFFF), st.integers(0, (1 << 64) - 1), st.integers(0, 0xFFFF))
def test_elf_reader_on_absurd_header_fields(shnum, shoff, shstrndx):
    data = bytearray(build_module())
    struct.pack_into("<Q", data, 40, shoff)
    struct.pack_into("<H", data, 60, shnum)
    struct.pack_into("<H", data, 62, shstrndx)
    try:
        Elf(bytes(data), "fuzz.ko")
    except BadInput:
        pass


# issue 21: formats/btf, formats/symvers and formats/module's .modinfo and __versions readers, fuzzed
# (docs/architecture.md's Hostile input table): BadInput or an answer, never another exception.
BTF_SEEDS = [_btf([("init", 0x138), ("exit", 0x350)]), _btf([("exit", 8)], True, ">"), _btf([])]


@FUZZ
@given(st.sampled_from(BTF_SEEDS), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=12),
       st.integers(0, 400))
def test_btf_reader(seed, flips, cut):
    data = bytearray(seed)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    data = bytes(data[:cut] if cut < len(data) and cut % 2 == 0 else data)
    for name in ("module", "task_struct"):
        try:
            btf.struct_layout(data, name, "fuzz")
        except BadInput:
            pass


# issue 20: a module's split BTF against a kernel's own (btf.check_split()): hostile bytes are a
# verdict (an errno and the verifier's words), never an exception; the base is parsed once.
SPLIT_SEEDS = [_split(), _split(extra=_t(0, 9, size=6) + _t(0, 10, size=5)), _split(base_len=3)]
FUZZ_BASE = btf.btf_base(BASE)


@FUZZ
@given(st.sampled_from(SPLIT_SEEDS), st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=12),
       st.integers(0, 120))
def test_split_btf_check(seed, flips, cut):
    data = bytearray(seed)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    result = btf.check_split(bytes(data[:cut] if cut < len(data) and cut % 2 == 0 else data), FUZZ_BASE)
    assert result.error in (0, btf.EINVAL, btf.ENOTSUPP, btf.E2BIG, btf.ELOOP) and (result.reason == "") == (result.error == 0)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=12))
def test_vmlinux_btf_base(flips):
    data = bytearray(BASE)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    try:
        btf.btf_base(bytes(data))
    except BadInput:
        pass


SYMVERS_PARTS = ["0x12345678", "0x", "0xzz", "\t", "\n", "_printk", "vmlinux", "drivers/x/y", "EXPORT_SYMBOL",
                 "EXPORT_SYMBOL_GPL", "SND_SOC", "", " ", "\x00", "\u00e9", "0x" + "f" * 20]


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(SYMVERS_PARTS), st.text(max_size=12)), max_size=40))
def test_symvers_parser(parts):
    try:
        table = symvers.parse("".join(parts), "fuzz")
    except BadInput:
        return
    assert all(isinstance(name, str) for name in table)


MODULE_SEED = build_module(versions=[("module_layout", 0x9060323F), ("_printk", 0x92997ED8), ("x" * 70, 1)])
MODULE_SECTIONS = [(sec.offset, sec.size) for sec in (Elf(MODULE_SEED, "seed").section(n) for n in (".modinfo", "__versions"))
                   if sec is not None and sec.size]


@FUZZ
@given(st.sampled_from(MODULE_SECTIONS), st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=16))
def test_modinfo_and_versions_readers(tmp_path, section, flips):
    """Bytes changed inside .modinfo and __versions only: the ELF around them stays valid, so the
    readers of these two sections get the hostile bytes."""
    offset, size = section
    data = bytearray(MODULE_SEED)
    for pos, value in flips:
        data[offset + pos % size] = value
    path = str(tmp_path / "fuzz.ko")
    with open(path, "wb") as f:
        f.write(bytes(data))
    try:
        info = read_module(path)
    except BadInput:
        return
    assert len(info.version_names) == len(info.version_crcs)
    info.vermagic, info.name, info.versions  # noqa: B018 - the readers of .modinfo's keys
