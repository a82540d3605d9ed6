"""kbuildguard's own ELF reader against pyelftools, on the real modules of Debian's kernel."""

import os

from conftest import require
from kbuildguard.formats.module import find_modules, read_module


def test_same_answers_as_pyelftools(debian_release):
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    image = os.environ.get("KBG_TEST_IMAGE_ROOT", "/var/cache/kbuildguard-ci/image-%s" % debian_release)
    kernel_dir = os.path.join(image, "lib/modules", debian_release, "kernel")
    require(os.path.isdir(kernel_dir), "the extracted linux-image-%s-unsigned package" % debian_release)
    modules = find_modules([kernel_dir])[::10]  # every tenth: ~400 modules from every subsystem
    assert len(modules) > 300
    for path in modules:
        ours = read_module(path)
        with open(path, "rb") as f:
            elf = ELFFile(f)
            comment = [s for s in elf.get_section_by_name(".comment").data().split(b"\x00") if s]
            modinfo = dict(e.decode().split("=", 1) for e in elf.get_section_by_name(".modinfo").data().split(b"\x00") if b"=" in e)
            this = elf.get_section_by_name(".gnu.linkonce.this_module")
            offsets = {}
            for rel in elf.iter_sections():
                if isinstance(rel, RelocationSection) and rel.name == ".rela.gnu.linkonce.this_module":
                    symtab = elf.get_section(rel["sh_link"])
                    for r in rel.iter_relocations():
                        offsets[symtab.get_symbol(r["r_info_sym"]).name] = r["r_offset"]
        assert list(ours.comment) == [s.decode() for s in comment], path
        assert ours.vermagic == modinfo["vermagic"], path
        assert ours.layout.size == this["sh_size"], path
        assert ours.layout.init_offset == offsets.get("init_module"), path
        assert ours.layout.exit_offset == offsets.get("cleanup_module"), path
