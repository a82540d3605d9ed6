"""A small BTF reader: the size of ``struct module`` and the offsets of its ``init`` and ``exit``.

BTF is the kernel's own description of its types (Documentation/bpf/btf.rst): a header, a type
section and a string section. The running kernel exposes it at /sys/kernel/btf/vmlinux; a vmlinux
file carries it in its .BTF section, and a compressed vmlinuz holds such a vmlinux. The kernel's
layout is the reference a module's .gnu.linkonce.this_module must agree with.
"""

import struct
from typing import Dict, NamedTuple, Optional

from kbuildguard import bounded
from kbuildguard.errors import BadInput
from kbuildguard.formats import compression

BTF_MAGIC = 0xEB9F
KIND_STRUCT = 4

# Bytes that follow the 12-byte btf_type for each kind (vlen = number of members/params/values).
_FIXED = {1: 4, 3: 12, 14: 4, 17: 4}  # INT, ARRAY, VAR, DECL_TAG
_PER_VLEN = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}  # STRUCT, UNION, ENUM, FUNC_PROTO, DATASEC, ENUM64


class StructLayout(NamedTuple):
    name: str
    size: int
    members: Dict[str, int]  # member -> byte offset


def struct_layout(data: bytes, name: str, source: str = "BTF") -> Optional[StructLayout]:
    """Find ``struct NAME`` in raw BTF; None if the BTF has no such struct."""
    if len(data) < 24:
        raise BadInput("%s: too short for BTF" % source)
    for order in ("<", ">"):
        magic, version, flags, hdr_len = struct.unpack_from(order + "HBBI", data, 0)
        if magic == BTF_MAGIC:
            break
    else:
        raise BadInput("%s: not BTF (no 0xeB9F magic)" % source)
    type_off, type_len, str_off, str_len = struct.unpack_from(order + "IIII", data, 8)
    types_start = hdr_len + type_off
    strings_start = hdr_len + str_off
    if types_start + type_len > len(data) or strings_start + str_len > len(data):
        raise BadInput("%s: BTF sections lie beyond its end" % source)
    strings = data[strings_start:strings_start + str_len]
    wanted = name.encode()

    def string(off: int) -> bytes:
        end = strings.find(b"\x00", off)
        return strings[off:end if end >= 0 else len(strings)]

    pos = types_start
    end = types_start + type_len
    while pos + 12 <= end:
        name_off, info, size = struct.unpack_from(order + "III", data, pos)
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kind_flag = info >> 31
        pos += 12
        if kind == KIND_STRUCT and string(name_off) == wanted:
            # kernel/bpf/btf.c btf_struct_check_meta(): "meta_left < meta_needed" (vlen members of
            # 12 bytes past the type section's end) is -EINVAL; found by tests/test_fuzz.py
            if pos + 12 * vlen > end:
                raise BadInput("%s: struct %s claims %d members, more than its BTF holds" % (source, name, vlen))
            members = {}
            for i in range(vlen):
                m_name, _m_type, m_offset = struct.unpack_from(order + "III", data, pos + 12 * i)
                bits = m_offset & 0xFFFFFF if kind_flag else m_offset
                members[string(m_name).decode("utf-8", "replace")] = bits // 8
            return StructLayout(name, size, members)
        pos += _FIXED.get(kind, 0) + _PER_VLEN.get(kind, 0) * vlen
        if kind > 19:
            raise BadInput("%s: unknown BTF kind %d" % (source, kind))
    return None


def btf_from_vmlinux(data, source: str) -> bytes:
    """The .BTF section of an uncompressed vmlinux (ELF)."""
    from kbuildguard.formats.elf import Elf

    elf = Elf(data, source)
    sec = elf.section(".BTF")
    if sec is None:
        raise BadInput("%s: no .BTF section (kernel built without CONFIG_DEBUG_INFO_BTF)" % source)
    return elf.section_data(sec)


# A vmlinux larger than this is no kernel image we know: distribution kernels with BTF are ~60 MiB.
MAX_VMLINUX_BYTES = 1 << 30


def vmlinux_from_vmlinuz(data: bytes, source: str) -> bytes:
    """The vmlinux inside a compressed kernel image (bzImage, arm64 Image.gz), as extract-vmlinux finds it."""
    for magic in (compression.XZ_MAGIC, compression.GZIP_MAGIC + b"\x08", compression.ZSTD_MAGIC):
        start = data.find(magic)
        while start >= 0:
            out = compression.decompress_prefix(data[start:], MAX_VMLINUX_BYTES)
            if out and out[:4] == b"\x7fELF":
                return out
            start = data.find(magic, start + 1)
    if data[:4] == b"\x7fELF":
        return data
    raise BadInput("%s: no compressed vmlinux found (xz, gzip and zstd tried)" % source)


def raw_btf(path: str) -> bytes:
    """The raw BTF in a file: /sys/kernel/btf/vmlinux as it is, a vmlinux's or vmlinuz's .BTF section."""
    try:
        data = bounded.read_file(path, MAX_VMLINUX_BYTES, "a vmlinux, vmlinuz or BTF file")
    except OSError as exc:
        raise BadInput("%s: cannot read: %s" % (path, exc.strerror or exc))
    if data[:2] in (b"\x9f\xeb", b"\xeb\x9f"):
        return data
    return btf_from_vmlinux(vmlinux_from_vmlinuz(data, path), path)


def module_layout_from_file(path: str) -> Optional[StructLayout]:
    """``struct module`` from raw BTF (/sys/kernel/btf/vmlinux), a vmlinux, or a vmlinuz."""
    return struct_layout(raw_btf(path), "module", path)
