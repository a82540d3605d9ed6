import struct

import pytest

from kbuildguard.errors import BadInput
from kbuildguard.formats.btf import SplitCheck, btf_base, check_split, struct_layout, vmlinux_from_vmlinuz


def _btf(members, kind_flag=False, order="<"):
    """Raw BTF with an int, a pointer-sized struct `module` and its members (name, byte offset)."""
    strings = b"\x00int\x00module\x00" + b"".join(m.encode() + b"\x00" for m, _ in members)
    offs = {}
    pos = 1
    for s in strings[1:].split(b"\x00")[:-1]:
        offs[s.decode()] = pos
        pos += len(s) + 1
    types = struct.pack(order + "III", offs["int"], 1 << 24, 4) + struct.pack(order + "I", 32)  # INT
    info = (4 << 24) | len(members) | ((1 << 31) if kind_flag else 0)
    types += struct.pack(order + "III", offs["module"], info, 0x380)
    for name, offset in members:
        bits = offset * 8
        types += struct.pack(order + "III", offs[name], 1, bits if not kind_flag else (bits & 0xFFFFFF))
    header = struct.pack(order + "HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


@pytest.mark.parametrize("kind_flag", [False, True])
@pytest.mark.parametrize("order", ["<", ">"])
def test_struct_module_layout(kind_flag, order):
    layout = struct_layout(_btf([("init", 0x138), ("exit", 0x350)], kind_flag, order), "module")
    assert (layout.size, layout.members) == (0x380, {"init": 0x138, "exit": 0x350})


def test_no_struct_module():
    assert struct_layout(_btf([]), "task_struct") is None


@pytest.mark.parametrize("data", [b"", b"\x00" * 30, _btf([("exit", 1)])[:30]])
def test_bad_btf(data):
    with pytest.raises(BadInput):
        struct_layout(data, "module")


def test_vmlinuz_without_payload():
    with pytest.raises(BadInput):
        vmlinux_from_vmlinuz(b"MZ" + b"\x00" * 200, "vmlinuz")


def test_a_struct_with_more_members_than_the_btf_holds_is_bad_input():
    """Found by tests/test_fuzz.py's test_btf_reader: a struct's vlen past the type section was a struct.error."""
    data = bytearray(_btf([("init", 0x138), ("exit", 0x350)]))
    data[45] = 1  # the struct's vlen: 2 -> 258 members
    with pytest.raises(BadInput) as exc:
        struct_layout(bytes(data), "module")
    assert "claims 258 members" in exc.value.message


# --- module BTF against a kernel's own (kernel/bpf/btf.c btf_parse_module(), 6.1) -------------------

def _strings(*names):
    """A string section and each name's offset in it."""
    data, offs = b"", {}
    for name in names:
        offs[name] = len(data)
        data += name.encode() + b"\x00"
    return data, offs


def _raw(types, strings, hdr_len=24, order="<"):
    header = struct.pack(order + "HBBIIIII", 0xEB9F, 1, 0, hdr_len, 0, len(types), len(types), len(strings))
    return header + b"\x00" * (hdr_len - 24) + types + strings


def _t(name_off, kind, vlen=0, size=0, kflag=0):
    return struct.pack("<III", name_off, (kind << 24) | vlen | (kflag << 31), size)


BASE_STRINGS, BASE_OFF = _strings("", "int", "module", "next")
# vmlinux: [1] int, [2] struct module { int next; }: nr_types 3 (void is [0])
BASE = _raw(_t(BASE_OFF["int"], 1, size=4) + struct.pack("<I", 32)
            + _t(BASE_OFF["module"], 4, 1, 8) + struct.pack("<III", BASE_OFF["next"], 1, 0), BASE_STRINGS)


def _split(base_len=len(BASE_STRINGS), extra=b"", own=("mymod", "u"), member="next"):
    """A module's BTF split against a base of ``base_len`` string bytes and 3 types: [3] struct mymod
    { int next; }, [4] typedef int u -> [3], then ``extra`` types."""
    strings, offs = _strings(*own)
    member_off = BASE_OFF[member] if member in BASE_OFF else base_len + offs[member]
    types = (_t(base_len + offs[own[0]], 4, 1, 4) + struct.pack("<III", member_off, 1, 0)
             + _t(base_len + offs["u"], 8, size=3) + extra)
    return _raw(types, strings)


def test_btf_base_counts_void():
    base = btf_base(BASE)
    assert (base.nr_types, base.strings, base.kinds) == (3, BASE_STRINGS, b"\x00\x01\x04")
    assert base.names == {0: False, 1: True, 5: True, 12: True}


def test_split_btf_against_its_own_base_parses():
    assert check_split(_split(), btf_base(BASE)) == SplitCheck(0, "", 0)


def test_split_btf_against_a_base_with_fewer_strings_is_refused():
    # its own names lie past the new base's strings plus its own: btf_name_offset_valid() is false
    result = check_split(_split(base_len=len(BASE_STRINGS) + 40), btf_base(BASE))
    assert result.error == 22 and result.reason == "[3] Invalid name_offset:%d" % (len(BASE_STRINGS) + 40)


def test_split_btf_naming_no_identifier_in_the_new_base_is_refused():
    # the Debian 6.1.0-56 module on 6.1.0-57 (measured in qemu: "BPF: [100825] FUNC ... BPF: Invalid name")
    other_strings, _ = _strings("", "int", "mod-le", "next")
    other = _raw(_t(1, 1, size=4) + struct.pack("<I", 32) + _t(5, 4, 1, 8) + struct.pack("<III", 12, 1, 0), other_strings)
    extra = _t(BASE_OFF["module"], 7)  # a FWD naming "module" (in the old base), "mod-le" in the new one
    assert check_split(_split(extra=extra), btf_base(BASE)).error == 0
    assert check_split(_split(extra=extra), btf_base(other)) == SplitCheck(22, "[5] Invalid name", 0)


def test_split_btf_that_parses_by_chance_says_so():
    # "int" at offset 1 of the old base is "nt" inside "xint" of this one: an identifier, so the kernel
    # parses it, but it was split against another base
    shifted_strings, _ = _strings("", "xint", "modul", "next")
    shifted = _raw(_t(1, 1, size=4) + struct.pack("<I", 32) + _t(6, 4, 1, 8) + struct.pack("<III", 12, 1, 0), shifted_strings)
    extra = _t(BASE_OFF["int"] + 1, 7)  # FWD "nt": inside "int" in both bases
    assert check_split(_split(extra=extra), btf_base(BASE)).foreign_names == 1
    assert check_split(_split(extra=extra), btf_base(shifted)).error == 0


@pytest.mark.parametrize("extra,error,reason", [
    (_t(BASE_OFF["next"], 8, size=9), 22, "no such type"),  # typedef -> [9]: btf_type_by_id() is NULL
    (_t(len(BASE_STRINGS), 9, size=6), 22, "Invalid name"),  # a named volatile
    (_t(0, 9, size=6) + _t(0, 10, size=5), 40, "Max chain length"),  # [5] volatile -> [6] const -> [5]
    (_t(0, 9, size=7) + _t(0, 18, size=1), 22, "Invalid name"),  # a type tag needs a value
    (_t(0, 0), 22, "Invalid kind:0"),
    (_t(0, 20), 22, "Invalid kind:20"),
    (struct.pack("<III", 0, (9 << 24) | (1 << 16), 1), 22, "Invalid btf_info"),
    (_t(0, 4, vlen=2, size=8), 22, "meta_left"),
    (_t(0, 1, size=4) + struct.pack("<I", 9 << 24 | 8), 524, "Unsupported encoding"),
    (_t(0, 16, size=3), 22, "Invalid type_size"),
    (_t(0, 6, vlen=1, size=3) + struct.pack("<Ii", BASE_OFF["next"], 0), 22, "Unexpected size"),
    (_t(0, 6, vlen=1, size=4) + struct.pack("<Ii", 0, 0), 22, "Invalid name"),  # an unnamed enum value
    (_t(0, 3, size=0) + struct.pack("<III", 0, 1, 1), 22, "Invalid elem"),
    (_t(BASE_OFF["next"], 14, size=1) + struct.pack("<I", 3), 22, "Linkage"),
    (_t(BASE_OFF["next"], 15, 1, 4) + struct.pack("<III", 1, 2, 4), 22, "Invalid offset"),
    (_t(0, 17, size=1) + struct.pack("<i", -2), 22, "Invalid value"),
    (_t(BASE_OFF["next"], 12, vlen=3, size=1), 22, "Invalid func linkage"),
    (_t(BASE_OFF["next"], 13), 22, "Invalid name"),
])
def test_split_btf_rules_of_check_meta(extra, error, reason):
    result = check_split(_split(extra=extra), btf_base(BASE))
    assert result.error == error and reason in result.reason, result


@pytest.mark.parametrize("mutate,error,reason", [
    (lambda d: d[:6], 22, "hdr_len not found"),
    (lambda d: d[:4] + struct.pack("<I", 4096) + d[8:], 22, "btf_header not found"),
    (lambda d: _raw(d[24:24 + 40], d[64:], hdr_len=28)[:24] + b"\x01\x00\x00\x00" + d[24:], 7, "Unsupported btf_header"),
    (lambda d: b"\x9e" + d[1:], 22, "Invalid magic"),
    (lambda d: d[:2] + b"\x02" + d[3:], 524, "Unsupported version"),
    (lambda d: d + b"\x00", 22, "Unsupported section"),
    (lambda d: d[:-1] + b"x", 22, "Invalid string section"),
])
def test_split_btf_header_rules(mutate, error, reason):
    result = check_split(mutate(_split()), btf_base(BASE))
    assert result.error == error and reason in result.reason, result


def test_split_btf_names_may_be_latin1_letters_as_the_kernel_reads_them():
    # lib/ctype.c: 0xe9 is a letter (isalpha), 0xd7 (multiplication sign) is not
    good = _split(own=("mymxd", "u")).replace(b"mymxd", b"mym\xe9d")
    bad = _split(own=("mymxd", "u")).replace(b"mymxd", b"mym\xd7d")
    assert check_split(good, btf_base(BASE)).error == 0
    assert check_split(bad, btf_base(BASE)) == SplitCheck(22, "[3] Invalid name", 0)


def test_a_malformed_vmlinux_btf_is_bad_input():
    with pytest.raises(BadInput):
        btf_base(BASE[:-len(BASE_STRINGS) - 4] + BASE_STRINGS)
    with pytest.raises(BadInput):
        btf_base(_raw(_t(0, 25), b"\x00"))
