"""Write small relocatable ELF files shaped like kernel modules, for tests that must not need a compiler.

Only what kbuildguard reads: .comment, .modinfo, .gnu.linkonce.this_module with its RELA section
placing init_module and cleanup_module, .symtab/.strtab and .shstrtab.
"""

import struct
from typing import List, Optional, Sequence, Tuple

EM_X86_64 = 62
EM_AARCH64 = 183


def _strtab(names: Sequence[str]) -> Tuple[bytes, List[int]]:
    data = b"\x00"
    offsets = []
    for n in names:
        offsets.append(len(data))
        data += n.encode() + b"\x00"
    return data, offsets


def build_module(
    comment: Sequence[str] = ("GCC: (Debian 12.2.0-14+deb12u1) 12.2.0",),
    vermagic: str = "6.1.0-56-amd64 SMP preempt mod_unload modversions ",
    name: str = "kdemo",
    this_module_size: Optional[int] = 0x380,
    init_offset: Optional[int] = 0x138,
    exit_offset: Optional[int] = 0x350,
    machine: int = EM_X86_64,
    big_endian: bool = False,
    e_type: int = 1,
    versions: Optional[Sequence[Tuple[str, int]]] = (("module_layout", 0x9060323F), ("_printk", 0x92997ED8)),
    undefined: Sequence[str] = ("_printk",),
    license: Optional[str] = "GPL",
    exports: Sequence[str] = (),
    trailer: bytes = b"",
    ext_versions: Optional[Sequence[Tuple[str, int]]] = None,  # CONFIG_EXTENDED_MODVERSIONS's two sections
    import_ns: Sequence[str] = (),
    btf: bytes = b"",
    text_relocations: Sequence[tuple] = (),  # (type, symbol[, addend[, offset]]) in a .rela.text patching .text
    rel_text: bool = False,  # that section as SHT_REL instead
    text_name: str = ".text",  # the name of that section (its relocations: ".rela" + it)
    text: bytes = b"",  # its bytes (zeros by default)
) -> bytes:
    e = ">" if big_endian else "<"
    sections = []  # (name, type, flags, data, link, info, entsize, align)
    comment_data = b"\x00" + b"".join(c.encode() + b"\x00" for c in comment) if comment else b""
    sections.append((".comment", 1, 0x30, comment_data, 0, 0, 1, 1))
    modinfo = ("name=%s\x00" % name).encode()
    if vermagic is not None:
        modinfo += ("vermagic=%s\x00" % vermagic).encode()
    if license is not None:
        modinfo += ("license=%s\x00" % license).encode()
    for ns in import_ns:
        modinfo += ("import_ns=%s\x00" % ns).encode()
    sections.append((".modinfo", 1, 0x2, modinfo, 0, 0, 0, 1))
    if versions is not None:
        sections.append(("__versions", 1, 0x2, b"".join(struct.pack(e + "Q56s", crc, n.encode()) for n, crc in versions),
                         0, 0, 0, 8))
    if ext_versions is not None:
        sections.append(("__version_ext_crcs", 1, 0x2, b"".join(struct.pack(e + "I", crc) for _, crc in ext_versions),
                         0, 0, 0, 4))
        sections.append(("__version_ext_names", 1, 0x2, b"".join(n.encode() + b"\x00" for n, _ in ext_versions),
                         0, 0, 0, 1))
    if btf:
        sections.append((".BTF", 1, 0x2, btf, 0, 0, 0, 4))
    if exports:
        sections.append(("__ksymtab_strings", 1, 0x32, b"".join(n.encode() + b"\x00" for n in exports), 0, 0, 1, 1))
    text_index = 0
    if text_relocations:
        size = max([8 * len(text_relocations)] + [r[3] + 8 for r in text_relocations if len(r) > 3])
        sections.append((text_name, 1, 0x6, text.ljust(size, b"\x00"), 0, 0, 0, 16))
        text_index = len(sections)
    this_index = 0
    if this_module_size is not None:
        sections.append((".gnu.linkonce.this_module", 1, 0x3, b"\x00" * this_module_size, 0, 0, 0, 64))
        this_index = len(sections)
    # init_module and cleanup_module live in an allocated section, as in every real module (the loader
    # gives a symbol of an unallocated section an address in the file's temporary copy): an .init.text
    # appended last, so that the other sections keep their indices
    defined_in = len(sections) + 3 + (this_module_size is not None) + bool(text_relocations)
    symbol_names = ["init_module", "cleanup_module"] + list(undefined)
    strtab, stroffs = _strtab(symbol_names)
    symtab = b"\x00" * 24
    for i, off in enumerate(stroffs):
        symtab += struct.pack(e + "IBBHQQ", off, 0x12 if i < 2 else 0x10, 0, defined_in if i < 2 else 0, 0, 0)
    symtab_index = len(sections) + 1
    sections.append((".symtab", 2, 0, symtab, symtab_index + 1, 1, 24, 8))
    sections.append((".strtab", 3, 0, strtab, 0, 0, 0, 1))
    if this_module_size is not None:
        rela = b""
        for sym, off in ((1, init_offset), (2, exit_offset)):
            if off is not None:
                # R_X86_64_64, R_AARCH64_ABS64: what modpost's struct module initialiser gets
                rela += struct.pack(e + "QQq", off, (sym << 32) | (257 if machine == EM_AARCH64 else 1), 0)
        sections.append((".rela.gnu.linkonce.this_module", 4, 0x40, rela, symtab_index, this_index, 24, 8))
    if text_relocations:
        rela = b""
        for i, entry in enumerate(text_relocations):
            typ, sym = entry[:2]
            # a call's or a rip-relative reference's addend is -4 (the end of the instruction)
            addend = entry[2] if len(entry) > 2 else (-4 if typ in (2, 4) else 0)
            offset = entry[3] if len(entry) > 3 else 8 * i
            rela += struct.pack(e + "QQq", offset, ((symbol_names.index(sym) + 1) << 32) | typ, addend)[:16 if rel_text else 24]
        sections.append((".rel" + text_name if rel_text else ".rela" + text_name, 9 if rel_text else 4, 0x40, rela, symtab_index,
                         text_index, 16 if rel_text else 24, 8))
    assert len(sections) + 1 == defined_in
    sections.append((".init.text", 1, 0x6, b"\x00" * 16, 0, 0, 0, 16))
    names = [s[0] for s in sections] + [".shstrtab"]
    shstrtab, name_offs = _strtab(names)
    sections.append((".shstrtab", 3, 0, shstrtab, 0, 0, 0, 1))

    body = b""
    offsets = []
    pos = 64
    for s in sections:
        pad = (-pos) % 8
        body += b"\x00" * pad
        pos += pad
        offsets.append(pos)
        body += s[3]
        pos += len(s[3])
    pad = (-pos) % 8
    body += b"\x00" * pad
    pos += pad
    shoff = pos
    shdrs = b"\x00" * 64
    for i, s in enumerate(sections):
        shdrs += struct.pack(e + "IIQQQQIIQQ", name_offs[i], s[1], s[2], 0, offsets[i], len(s[3]), s[4], s[5], s[7], s[6])
    ident = b"\x7fELF" + bytes([2, 2 if big_endian else 1, 1, 0]) + b"\x00" * 8
    header = ident + struct.pack(e + "HHIQQQIHHHHHH", e_type, machine, 1, 0, 0, shoff, 0, 64, 0, 0, 64,
                                 len(sections) + 1, len(sections))
    return header + body + shdrs + trailer
