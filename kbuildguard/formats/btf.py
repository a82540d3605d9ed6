"""A small BTF reader: the size of ``struct module`` and the offsets of its ``init`` and ``exit``.

BTF is the kernel's own description of its types (Documentation/bpf/btf.rst): a header, a type
section and a string section. The running kernel exposes it at /sys/kernel/btf/vmlinux; a vmlinux
file carries it in its .BTF section, and a compressed vmlinuz holds such a vmlinux. The kernel's
layout is the reference a module's .gnu.linkonce.this_module must agree with.

check_split(): a module's .BTF is split BTF, its types and strings numbered after the kernel's own;
the kernel parses it against its own BTF when the module loads (btf_module_notify()). That parse,
over hostile bytes, as a verdict.
"""

import array
import re
import struct
import sys
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

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


# --- module BTF against a kernel's own: kernel/bpf/btf.c btf_parse_module() (6.1) -----------------
#
# btf_module_notify() parses a module's .BTF with btf_parse_module(): the vmlinux BTF is its base
# (btf->start_id = base nr_types, btf->start_str_off = base hdr.str_len), then btf_parse_hdr(),
# btf_parse_str_sec(), btf_check_all_metas() and btf_check_type_tags(). Nothing resolves the types
# (no btf_check_all_types()): a module split against another kernel's BTF fails only where its name
# offsets fall past the new base's strings plus its own, a name it points at in the base is no
# identifier, or a modifier chain leads to a type id that does not exist. Those are what this reads.

EINVAL, ENOTSUPP, E2BIG, ELOOP = 22, 524, 7, 40
BTF_MAX_TYPE = 0x000FFFFF  # include/uapi/linux/btf.h
BTF_MAX_NAME_OFFSET = 0x00FFFFFF
BTF_INFO_MASK = 0x9F00FFFF  # kernel/bpf/btf.c
BTF_INT_MASK = 0x0FFFFFFF
KSYM_NAME_LEN = 512  # include/linux/kallsyms.h (6.1)
KIND_MAX = 19  # BTF_KIND_ENUM64
MODIFIERS = frozenset({8, 9, 10, 11, 18})  # btf_type_is_modifier(): TYPEDEF VOLATILE CONST RESTRICT TYPE_TAG
KIND_TYPE_TAG = 18


# the same sizes in 32-bit words: a type section is read as an array of words (btf_type and every
# record after it are made of u32s)
_FIXED_WORDS = {k: v // 4 for k, v in _FIXED.items()}
_PER_VLEN_WORDS = {k: v // 4 for k, v in _PER_VLEN.items()}
Words = Sequence[int]


def _words(section: bytes, order: str) -> Words:
    """The u32 words of a type section in ``order`` (a trailing partial word is left out: no type fits it)."""
    words = array.array("I")
    assert words.itemsize == 4  # every platform Python runs on has a 4-byte unsigned int
    words.frombytes(section[:len(section) - len(section) % 4])
    if (order == "<") != (sys.byteorder == "little"):
        words.byteswap()
    return words


class BtfBase(NamedTuple):
    """A kernel's own (vmlinux) BTF, as btf_parse_module() uses it for a module's."""

    order: str  # "<" or ">"
    nr_types: int  # btf->nr_types: its types plus void (id 0)
    strings: bytes  # its string section (hdr.str_len bytes: start_str_off of every module's)
    kinds: bytes  # the kind of each type id (0 for void)
    names: Dict[int, bool]  # name_table() of its strings


class SplitCheck(NamedTuple):
    """What btf_parse_module() returns for one module's BTF against one base."""

    error: int  # 0: parsed; else the errno it returns (22: "failed to validate module [M] BTF: -22")
    reason: str  # the verifier's words ("[31] Invalid name_offset:9")
    foreign_names: int  # name offsets into the base that land inside a string: split against another base


def _header(data: bytes, source: str):
    if len(data) < 24:
        raise BadInput("%s: too short for BTF" % source)
    for order in ("<", ">"):
        if struct.unpack_from(order + "H", data, 0)[0] == BTF_MAGIC:
            return order
    raise BadInput("%s: not BTF (no 0xeB9F magic)" % source)


def _walk(data: bytes, order: str, start: int, end: int):
    """(offset, name_off, info, size_or_type, length) of each btf_type in data[start:end]; the last may
    claim bytes past ``end`` (the caller decides)."""
    pos = start
    unpack = struct.Struct(order + "III").unpack_from
    while pos < end:
        if end - pos < 12:
            yield pos, 0, 0, 0, end - pos + 1  # shorter than a btf_type
            return
        name_off, info, size = unpack(data, pos)
        kind = (info >> 24) & 0x1F
        length = 12 + _FIXED.get(kind, 0) + _PER_VLEN.get(kind, 0) * (info & 0xFFFF)
        yield pos, name_off, info, size, length
        pos += length


def btf_base(data: bytes, source: str = "BTF") -> BtfBase:
    """The facts of a vmlinux BTF a module's is parsed against (kernel/bpf/btf.c btf_parse_vmlinux():
    types[0] is void, so nr_types counts one more than the type section holds)."""
    order = _header(data, source)
    _m, _v, _f, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(order + "HBBIIIII", data, 0)
    if hdr_len + type_off + type_len > len(data) or hdr_len + str_off + str_len > len(data):
        raise BadInput("%s: BTF sections lie beyond its end" % source)
    kinds = bytearray(b"\x00")
    start = hdr_len + type_off
    for _pos, _name, info, _size, length in _walk(data, order, start, start + type_len):
        kind = (info >> 24) & 0x1F
        if kind == 0 or kind > KIND_MAX or _pos + length > start + type_len:
            raise BadInput("%s: malformed vmlinux BTF at type %d" % (source, len(kinds)))
        kinds.append(kind)
    strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
    return BtfBase(order, len(kinds), strings, bytes(kinds), name_table(strings))


class _Split(NamedTuple):
    base: BtfBase
    strings: bytes  # the module's own
    order: str
    memo: Dict[int, bool]  # string offset inside a string -> names an identifier
    own: Dict[int, bool]  # name_table() of the module's own strings
    base_len: int  # len(base.strings): btf->start_str_off


def _string(split: _Split, off: int) -> Optional[bytes]:
    """btf_str_by_offset(): the NUL-terminated name at ``off``, None past both string sections."""
    base = split.base.strings
    if off < len(base):
        table, at = base, off
    elif off - len(base) < len(split.strings):
        table, at = split.strings, off - len(base)
    else:
        return None
    end = table.find(b"\x00", at, at + KSYM_NAME_LEN + 1)
    return table[at:end if end >= 0 else at + KSYM_NAME_LEN + 1]


def _offset_ok(split: _Split, off: int) -> bool:
    """btf_name_offset_valid()."""
    return off <= BTF_MAX_NAME_OFFSET and off < split.base_len + len(split.strings)


# lib/ctype.c: isalpha() is true for ASCII letters and Latin-1's (192-255 but 215 and 247); __btf_name_char_ok()
# adds "_" and "." (6.1: sections and variables share the rule)
_IDENTIFIER = re.compile(b"[A-Za-z_.\xc0-\xd6\xd8-\xf6\xf8-\xff][A-Za-z0-9_.\xc0-\xd6\xd8-\xf6\xf8-\xff]*\\Z")


def name_table(strings: bytes, first: int = 0) -> Dict[int, bool]:
    """For each string that starts in ``strings``: its offset (plus ``first``, btf->start_str_off) ->
    whether it is an identifier. One pass where the kernel reads each name where it is used."""
    table: Dict[int, bool] = {}
    words = strings.split(b"\x00")
    if strings.endswith(b"\x00"):
        words.pop()  # the piece after the last NUL is no string
    pos = first
    for word in words:
        table[pos] = len(word) < KSYM_NAME_LEN and _IDENTIFIER.match(word) is not None
        pos += len(word) + 1
    return table


def _identifier(split: _Split, off: int) -> bool:
    """__btf_name_valid() (``off`` already valid): an identifier shorter than KSYM_NAME_LEN. Offsets at
    a string's start are in the tables; one inside a string (split against another base) is read
    here and remembered in ``split.memo`` (one per base)."""
    known = (split.base.names if off < split.base_len else split.own).get(off)
    if known is None:
        known = split.memo.get(off)
    if known is None:
        name = _string(split, off) or b""
        known = split.memo[off] = len(name) < KSYM_NAME_LEN and _IDENTIFIER.match(name) is not None
    return known


def _name_required(split: _Split, off: int) -> str:
    return "" if off and _identifier(split, off) else "Invalid name"


def _name_optional(split: _Split, off: int) -> str:
    return "" if not off or _identifier(split, off) else "Invalid name"


def _no_name(split: _Split, off: int) -> str:
    return "Invalid name" if off else ""


def _value(split: _Split, off: int) -> str:
    return "" if _string(split, off) else "Invalid name"


def _ref(split: _Split, words: Words, at: int, name_off: int, info: int, size: int) -> str:
    """btf_ref_type_check_meta(): PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG."""
    if info & 0xFFFF or info >> 31:
        return "vlen != 0" if info & 0xFFFF else "Invalid btf_info kind_flag"
    if size > BTF_MAX_TYPE:
        return "Invalid type_id"
    kind = (info >> 24) & 0x1F
    return (_name_required if kind == 8 else _value if kind == KIND_TYPE_TAG else _no_name)(split, name_off)


def _int(split: _Split, words: Words, at: int, name_off: int, info: int, size: int) -> str:
    """btf_int_check_meta()."""
    if info & 0xFFFF or info >> 31:
        return "vlen != 0" if info & 0xFFFF else "Invalid btf_info kind_flag"
    bits = words[at + 3]
    nr_bits = (bits & 0xFF) + ((bits >> 16) & 0xFF)
    if bits & ~BTF_INT_MASK or nr_bits > 128 or (nr_bits + 7) // 8 > size:
        return "Invalid int_data:%x" % bits
    return "Unsupported encoding" if (bits >> 24) & 0xF not in (0, 1, 2, 4) else ""


def _struct(split: _Split, words: Words, at: int, name_off: int, info: int, size: int) -> str:
    """btf_struct_check_meta(): STRUCT, UNION."""
    problem = _name_optional(split, name_off)
    last = 0
    for i in range(info & 0xFFFF if not problem else 0):
        m_name, m_type, m_offset = words[at + 3 + 3 * i:at + 6 + 3 * i]
        if not _offset_ok(split, m_name):
            return "Invalid member name_offset:%d" % m_name
        if m_name and not _identifier(split, m_name):
            return "Invalid name"
        if not m_type or m_type > BTF_MAX_TYPE:
            return "Invalid type_id"
        offset = m_offset & 0xFFFFFF if info >> 31 else m_offset
        if ((info >> 24) & 0x1F == 5 and offset) or last > offset or (offset + 7) // 8 > size:
            return "Invalid member bits_offset"
        last = offset
    return problem


def _enum(split: _Split, words: Words, at: int, name_off: int, info: int, size: int) -> str:
    """btf_enum_check_meta(), btf_enum64_check_meta(): every value named."""
    if size > 8 or not size or size & (size - 1):
        return "Unexpected size"
    problem = _name_optional(split, name_off)
    stride = 2 if (info >> 24) & 0x1F == 6 else 3
    for i in range(info & 0xFFFF if not problem else 0):
        off = words[at + 3 + stride * i]
        if not _offset_ok(split, off):
            return "Invalid name_offset:%d" % off
        if not off or not _identifier(split, off):
            return "Invalid name"
    return problem


def _fwd(split: _Split, words: Words, at: int, name_off: int, info: int, size: int) -> str:
    """btf_fwd_check_meta()."""
    return "vlen != 0" if info & 0xFFFF else "type != 0" if size else _name_required(split, name_off)


def _array(split: _Split, words: Words, at: int, name_off: int, info: int, size: int) -> str:
    """btf_array_check_meta()."""
    elem, index = words[at + 3], words[at + 4]
    if name_off or info & 0xFFFF or info >> 31 or size:
        return "Invalid name" if name_off else "vlen != 0" if info & 0xFFFF else "size != 0"
    return "" if 0 < elem <= BTF_MAX_TYPE and 0 < index <= BTF_MAX_TYPE else "Invalid elem"


def _func_proto(split: _Split, words: Words, at: int, name_off: int, info: int, size: int) -> str:
    """btf_func_proto_check_meta() (the parameters are checked by btf_func_proto_check(), which
    btf_parse_module() does not run)."""
    return _no_name(split, name_off) or ("Invalid btf_info kind_flag" if info >> 31 else "")


def _func(split: _Split, words: Words, at: int, name_off: int, info: int, size: int) -> str:
    """btf_func_check_meta()."""
    problem = _name_required(split, name_off)
    return problem or ("Invalid func linkage" if info & 0xFFFF > 2 else "Invalid btf_info kind_flag" if info >> 31 else "")


def _var(split: _Split, words: Words, at: int, name_off: int, info: int, size: int) -> str:
    """btf_var_check_meta()."""
    linkage = words[at + 3]
    if info & 0xFFFF or info >> 31:
        return "vlen != 0" if info & 0xFFFF else "Invalid btf_info kind_flag"
    problem = _name_required(split, name_off)
    if problem or not 0 < size <= BTF_MAX_TYPE:
        return problem or "Invalid type_id"
    return "" if linkage in (0, 1) else "Linkage not supported"


def _datasec(split: _Split, words: Words, at: int, name_off: int, info: int, size: int) -> str:
    """btf_datasec_check_meta()."""
    if not size or info >> 31:
        return "size == 0" if not size else "Invalid btf_info kind_flag"
    problem = _name_required(split, name_off)
    last = total = 0
    for i in range(info & 0xFFFF if not problem else 0):
        v_type, v_offset, v_size = words[at + 3 + 3 * i:at + 6 + 3 * i]
        if not 0 < v_type <= BTF_MAX_TYPE:
            return "Invalid type_id"
        if v_offset < last or v_offset >= size or not 0 < v_size <= size or v_offset + v_size > size:
            return "Invalid offset"
        last = v_offset + v_size
        total += v_size
    return problem or ("Invalid btf_info size" if size < total else "")


def _float(split: _Split, words: Words, at: int, name_off: int, info: int, size: int) -> str:
    """btf_float_check_meta()."""
    if info & 0xFFFF or info >> 31:
        return "vlen != 0" if info & 0xFFFF else "Invalid btf_info kind_flag"
    return "" if size in (2, 4, 8, 12, 16) else "Invalid type_size"


def _decl_tag(split: _Split, words: Words, at: int, name_off: int, info: int, size: int) -> str:
    """btf_decl_tag_check_meta()."""
    component = words[at + 3] - (1 << 32 if words[at + 3] >> 31 else 0)  # an s32
    problem = "Invalid value" if _value(split, name_off) else ""
    if problem or info & 0xFFFF or info >> 31:
        return problem or ("vlen != 0" if info & 0xFFFF else "Invalid btf_info kind_flag")
    return "Invalid component_idx" if component < -1 else ""


# kernel/bpf/btf.c kind_ops[]: each kind's check_meta
_KIND_RULES: Dict[int, Callable[[_Split, Words, int, int, int, int], str]] = {
    1: _int, 2: _ref, 3: _array, 4: _struct, 5: _struct, 6: _enum, 7: _fwd, 8: _ref, 9: _ref, 10: _ref, 11: _ref,
    12: _func, 13: _func_proto, 14: _var, 15: _datasec, 16: _float, 17: _decl_tag, 18: _ref, 19: _enum}


def _check_type(split: _Split, words: Words, at: int, name_off: int, info: int, size: int) -> str:
    """btf_check_meta(): the rules every type meets, then its kind's."""
    if info & ~BTF_INFO_MASK:
        return "Invalid btf_info:%x" % info
    kind = (info >> 24) & 0x1F
    if kind == 0 or kind > KIND_MAX:
        return "Invalid kind:%d" % kind
    if not _offset_ok(split, name_off):
        return "Invalid name_offset:%d" % name_off
    return _KIND_RULES[kind](split, words, at, name_off, info, size)


def _check_header(data: bytes, order: str):
    """btf_parse_hdr(), btf_check_sec_info(), btf_parse_str_sec() for split BTF: (errno, words, fields)."""
    if len(data) < 8:
        return EINVAL, "hdr_len not found", ()
    hdr_len = struct.unpack_from(order + "I", data, 4)[0]
    if len(data) < hdr_len:
        return EINVAL, "btf_header not found", ()
    if hdr_len > 24 and any(data[24:hdr_len]):
        return E2BIG, "Unsupported btf_header", ()
    head = (data[:min(hdr_len, 24)] + bytes(24))[:24]
    magic, version, flags, _h, type_off, type_len, str_off, str_len = struct.unpack_from(order + "HBBIIIII", head)
    if magic != BTF_MAGIC:
        return EINVAL, "Invalid magic", ()
    if version != 1 or flags:
        return ENOTSUPP, "Unsupported version" if version != 1 else "Unsupported flags", ()
    total, expected = 0, len(data) - hdr_len
    for off, length in sorted([(type_off, type_len), (str_off, str_len)]):
        if expected < off or total != off or expected - total < length:
            return EINVAL, "Invalid section offset" if expected < off else "Unsupported section found", ()
        total += length
    if total != expected:
        return EINVAL, "Unsupported section found", ()
    if hdr_len + str_off + str_len != len(data):
        return EINVAL, "String section is not at the end", ()
    if str_len and (str_len - 1 > BTF_MAX_NAME_OFFSET or data[-1:] != b"\x00"):
        return EINVAL, "Invalid string section", ()
    return 0, "", (hdr_len + type_off, hdr_len + type_off + type_len, data[hdr_len + str_off:])


def _type_tags(split: _Split, own_kinds: List[int], own_refs: List[int]) -> SplitCheck:
    """btf_check_type_tags(): every modifier chain of the module's types ends at a type that exists
    (btf_type_by_id() is NULL past base + own types: -EINVAL), type tags before the other modifiers,
    at most 32 links."""
    start = split.base.nr_types
    total = start + len(own_kinds)

    def kind_of(tid: int) -> int:
        return split.base.kinds[tid] if tid < start else own_kinds[tid - start]

    good = start - 1
    for i in range(start, total):
        if kind_of(i) not in MODIFIERS:
            continue
        cur, limit, in_tags = i, 32, kind_of(i) == KIND_TYPE_TAG
        while kind_of(cur) in MODIFIERS:
            if not limit:
                return SplitCheck(ELOOP, "Max chain length or cycle detected", 0)
            limit -= 1
            if kind_of(cur) == KIND_TYPE_TAG and not in_tags:
                return SplitCheck(EINVAL, "Type tags don't precede modifiers", 0)
            in_tags = in_tags and kind_of(cur) == KIND_TYPE_TAG
            if cur <= good:
                break
            cur = own_refs[cur - start] if cur >= start else -1
            if not 0 <= cur < total:
                return SplitCheck(EINVAL, "[%d] type_id %d: no such type" % (i, cur), 0)
        good = i
    return SplitCheck(0, "", 0)


def check_split(data: bytes, base: BtfBase, memo: Optional[Dict[int, bool]] = None) -> SplitCheck:
    """What btf_parse_module() (kernel/bpf/btf.c, 6.1) says of a module's .BTF ``data`` with ``base``
    as the kernel's own: a pure function of the bytes, never an exception (hostile input is a verdict);
    linear in their size (the module reader bounds them).
    ``memo``: a dict kept across the modules held to one base (it only remembers what the base says)."""
    error, words, fields = _check_header(data, base.order)
    if error:
        return SplitCheck(error, words, 0)
    start, end, strings = fields
    split = _Split(base=base,
                   strings=strings,
                   order=base.order,
                   memo={} if memo is None else memo,
                   own=name_table(strings, len(base.strings)),
                   base_len=len(base.strings))
    words = _words(data[start:end], base.order)
    own_kinds: List[int] = []
    own_refs: List[int] = []
    foreign = 0
    at, count = 0, len(words)
    left = end - start  # meta_left, in bytes
    while left > 0:
        tid = base.nr_types + len(own_kinds)
        if left < 12:
            return SplitCheck(EINVAL, "[%d] meta_left:%d meta_needed:12" % (tid, left), 0)
        name_off, info, size = words[at], words[at + 1], words[at + 2]
        kind = (info >> 24) & 0x1F
        length = 3 + _FIXED_WORDS.get(kind, 0) + _PER_VLEN_WORDS.get(kind, 0) * (info & 0xFFFF)
        if 4 * length > left or at + length > count:
            return SplitCheck(EINVAL, "[%d] meta_left:%d meta_needed:%d" % (tid, left, 4 * length), 0)
        problem = _check_type(split, words, at, name_off, info, size)
        if problem:
            return SplitCheck(ENOTSUPP if problem.startswith("Unsupported") else EINVAL, "[%d] %s" % (tid, problem), 0)
        if 0 < name_off < split.base_len and base.strings[name_off - 1]:
            foreign += 1
        own_kinds.append(kind)
        own_refs.append(size)
        at += length
        left -= 4 * length
    tags = _type_tags(split, own_kinds, own_refs)
    return tags._replace(foreign_names=foreign) if not tags.error else tags
