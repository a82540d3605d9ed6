"""The one table of architectures: how the kernel's config, its release name, a compiler's macros and
an ELF header each spell the same machine.

Every other module asks this one; before, seven tables (kernel twice, toolchain, identity, elf,
verify) could disagree about what "arm64", "aarch64" and EM_AARCH64 have in common.
"""

from typing import Mapping, NamedTuple, Optional, Tuple

from kbuildguard.strenum import StrEnum


class Endian(StrEnum):
    LITTLE = "little-endian"
    BIG = "big-endian"



class _Traits(NamedTuple):
    kconfig: str  # the CONFIG_ symbol that selects it
    elf_machine: int  # e_machine of its modules
    macro: str  # what its compilers predefine
    release_suffixes: Tuple[str, ...]  # how distributions end a kernel release for it
    endian: Optional[Endian]  # None where the architecture allows both
    kbuild: str  # kbuild's ARCH= (the arch/ folder): "arm64", "x86", "powerpc"
    triplet: str  # the GNU triplet of Debian's and Fedora's cross compilers ("" when there is none to name)
    qemu: str  # qemu-user's name for it: its binfmt_misc handler is /proc/sys/fs/binfmt_misc/qemu-NAME


class Arch(StrEnum):
    """A kernel architecture, named as ``uname -m`` names it (a str too: JSON and comparisons read the name)."""

    X86_64 = "x86_64"
    I686 = "i686"
    AARCH64 = "aarch64"
    ARM = "armv7l"
    PPC64LE = "ppc64le"
    PPC64 = "ppc64"
    S390X = "s390x"
    RISCV64 = "riscv64"
    LOONGARCH64 = "loongarch64"
    MIPS = "mips"


    @property
    def traits(self) -> _Traits:
        return _TRAITS[self]

    @property
    def endian(self) -> Optional[Endian]:
        return _TRAITS[self].endian


# Order matters where one CONFIG symbol or macro serves two members: PPC64LE before PPC64 (the
# endianness decides), X86_64 before I686 (CONFIG_X86_64 kernels also set CONFIG_X86).
# kbuild: the arch/ folder ARCH= names (Makefile: "SRCARCH := $(ARCH)", i386 and x86_64 mapped to x86).
# triplet: Debian's cross compilers are <triplet>-gcc-N in gcc-N-<triplet with - for _> (gcc-12-aarch64-linux-gnu),
# Fedora's <triplet>-gcc in gcc-<triplet> (kernel builds only); the same triplets name clang's
# --target in 6.1's scripts/Makefile.clang (CLANG_TARGET_FLAGS_arm64 := aarch64-linux-gnu), except
# arm, which Debian builds as armhf (arm-linux-gnueabihf).
_TRAITS: Mapping[Arch, _Traits] = {
    Arch.X86_64: _Traits(kconfig="CONFIG_X86_64", elf_machine=62, macro="__x86_64__", release_suffixes=(".x86_64", "-amd64"), endian=Endian.LITTLE,
                         kbuild="x86", triplet="x86_64-linux-gnu", qemu="x86_64"),
    Arch.AARCH64: _Traits(kconfig="CONFIG_ARM64", elf_machine=183, macro="__aarch64__", release_suffixes=(".aarch64", "-arm64"), endian=None,
                          kbuild="arm64", triplet="aarch64-linux-gnu", qemu="aarch64"),
    Arch.PPC64LE: _Traits(kconfig="CONFIG_PPC64", elf_machine=21, macro="__powerpc64__", release_suffixes=(".ppc64le", "-ppc64el"), endian=Endian.LITTLE,
                          kbuild="powerpc", triplet="powerpc64le-linux-gnu", qemu="ppc64le"),
    Arch.PPC64: _Traits(kconfig="CONFIG_PPC64", elf_machine=21, macro="__powerpc64__", release_suffixes=(".ppc64", "-powerpc64"), endian=Endian.BIG,
                        kbuild="powerpc", triplet="powerpc64-linux-gnu", qemu="ppc64"),
    Arch.S390X: _Traits(kconfig="CONFIG_S390", elf_machine=22, macro="__s390x__", release_suffixes=(".s390x", "-s390x"), endian=Endian.BIG, kbuild="s390",
                        triplet="s390x-linux-gnu", qemu="s390x"),
    Arch.RISCV64: _Traits(kconfig="CONFIG_RISCV", elf_machine=243, macro="__riscv", release_suffixes=(".riscv64", "-riscv64"), endian=Endian.LITTLE,
                          kbuild="riscv", triplet="riscv64-linux-gnu", qemu="riscv64"),
    Arch.LOONGARCH64: _Traits(kconfig="CONFIG_LOONGARCH", elf_machine=258, macro="__loongarch__", release_suffixes=(".loongarch64", "-loong64"),
                              endian=Endian.LITTLE,
                              kbuild="loongarch", triplet="loongarch64-linux-gnu", qemu="loongarch64"),
    Arch.I686: _Traits(kconfig="CONFIG_X86_32", elf_machine=3, macro="__i386__", release_suffixes=(".i686", "-686", "-686-pae"), endian=Endian.LITTLE,
                       kbuild="x86", triplet="i686-linux-gnu", qemu="i386"),
    Arch.ARM: _Traits(kconfig="CONFIG_ARM", elf_machine=40, macro="__arm__", release_suffixes=(".armv7hl", "-armmp", "-armmp-lpae"), endian=None,
                      kbuild="arm", triplet="arm-linux-gnueabihf", qemu="arm"),
    Arch.MIPS: _Traits(kconfig="CONFIG_MIPS", elf_machine=8, macro="__mips__", release_suffixes=(), endian=None, kbuild="mips", triplet="", qemu="mips"),
}

# `uname -m` and package names that are the same machine under another name.
_ALIASES = {"amd64": Arch.X86_64, "arm64": Arch.AARCH64, "i386": Arch.I686, "i586": Arch.I686, "arm": Arch.ARM,
            "armv7hl": Arch.ARM, "ppc64el": Arch.PPC64LE, "riscv": Arch.RISCV64, "loongarch": Arch.LOONGARCH64}


def parse(name: str) -> Optional[Arch]:
    """``uname -m`` (or a package architecture) to Arch; None for one we do not know."""
    try:
        return Arch(name)
    except ValueError:
        return _ALIASES.get(name)


def from_kconfig(config: Mapping[str, str]) -> Optional[Arch]:
    for arch, traits in _TRAITS.items():
        if config.get(traits.kconfig) == "y":
            if traits.kconfig == "CONFIG_PPC64":
                big = config.get("CONFIG_CPU_BIG_ENDIAN") == "y"
                return Arch.PPC64 if big else Arch.PPC64LE
            return arch
    return None


# Every symbol of Linux 6.1 that says which architecture a configuration is for: the `config ARCH`
# at the top of each arch/*/Kconfig (arch/alpha/Kconfig "config ALPHA" ... arch/xtensa/Kconfig
# "config XTENSA"), and where one folder builds two word sizes, the symbol that selects each:
# arch/powerpc/platforms/Kconfig.cputype "config PPC32"/"config PPC64", arch/sparc/Kconfig
# "config SPARC32"/"config SPARC64", arch/x86/Kconfig "config X86_32"/"config X86_64". s390 is
# 64-bit only since 4.1 (arch/s390/Kconfig "config S390"); riscv and loongarch carry 32BIT/64BIT
# alongside. A configuration with none of these is not a kernel's; the value is the arch/ folder.
KCONFIG_ARCHES: Mapping[str, str] = {
    "CONFIG_ALPHA": "alpha", "CONFIG_ARC": "arc", "CONFIG_ARM": "arm", "CONFIG_ARM64": "arm64",
    "CONFIG_CSKY": "csky", "CONFIG_HEXAGON": "hexagon", "CONFIG_IA64": "ia64", "CONFIG_LOONGARCH": "loongarch",
    "CONFIG_M68K": "m68k", "CONFIG_MICROBLAZE": "microblaze", "CONFIG_MIPS": "mips", "CONFIG_NIOS2": "nios2",
    "CONFIG_OPENRISC": "openrisc", "CONFIG_PARISC": "parisc", "CONFIG_PPC32": "powerpc (32-bit)",
    "CONFIG_PPC64": "powerpc (64-bit)", "CONFIG_RISCV": "riscv", "CONFIG_S390": "s390", "CONFIG_SUPERH": "sh",
    "CONFIG_SPARC32": "sparc (32-bit)", "CONFIG_SPARC64": "sparc64", "CONFIG_UML": "um",
    "CONFIG_X86_32": "x86 (32-bit)", "CONFIG_X86_64": "x86_64", "CONFIG_XTENSA": "xtensa",
}


def kconfig_arches(config: Mapping[str, str]) -> Tuple[str, ...]:
    """The CONFIG_ symbols of KCONFIG_ARCHES a configuration sets (=y), in the table's order."""
    return tuple(symbol for symbol in KCONFIG_ARCHES if config.get(symbol) == "y")


def from_release(release: str) -> Optional[Arch]:
    """RPM kernels end their release with the architecture (4.18.0-147.el7.aarch64), Debian's with
    the flavour (6.1.0-13-amd64, 6.1.0-13-cloud-arm64)."""
    for arch, traits in _TRAITS.items():
        if release.endswith(traits.release_suffixes):
            return arch
    return None


def from_macros(defined: Mapping[str, str]) -> Optional[Arch]:
    """The machine a compiler targets, from its predefined macros (``cc -E -dM -``)."""
    for arch, traits in _TRAITS.items():
        if traits.macro in defined:
            if traits.macro == "__powerpc64__":
                return Arch.PPC64 if "__BIG_ENDIAN__" in defined else Arch.PPC64LE
            return arch
    return None


def from_elf(machine: int, big_endian: bool) -> Optional[Arch]:
    for arch, traits in _TRAITS.items():
        if traits.elf_machine == machine:
            if machine == 21:
                return Arch.PPC64 if big_endian else Arch.PPC64LE
            return arch
    return None


def same_machine(a: Optional[Arch], b: Optional[Arch]) -> bool:
    """True unless both are known and are different machines (ppc64 and ppc64le are one machine, two byte orders)."""
    return a is None or b is None or _TRAITS[a].elf_machine == _TRAITS[b].elf_machine


# ARCH= values the top Makefile maps to another arch/ folder (6.1 Makefile: "ifeq ($(ARCH),i386)
# SRCARCH := x86", x86_64 likewise, sparc32/sparc64 -> sparc, parisc64 -> parisc).
_SRCARCH = {"i386": "x86", "x86_64": "x86", "sparc32": "sparc", "sparc64": "sparc", "parisc64": "parisc"}


def srcarch(make_arch: str) -> str:
    """The arch/ folder kbuild builds for with ``ARCH=make_arch``."""
    return _SRCARCH.get(make_arch, make_arch)


def foreign(target: Optional[Arch], host: Optional[Arch]) -> bool:
    """True when a kernel of ``target`` needs a cross build on a ``host`` machine (both known, not one
    machine; an i686 kernel on x86_64 too: its compilers are i686-linux-gnu-gcc or gcc -m32)."""
    return target is not None and host is not None and not same_machine(target, host)
