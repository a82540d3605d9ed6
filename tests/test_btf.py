import struct

import pytest

from kbuildguard.errors import BadInput
from kbuildguard.formats.btf import struct_layout, vmlinux_from_vmlinuz


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
