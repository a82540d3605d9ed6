"""The loader's gates and what one check says about one of them (every gate module speaks these)."""

import enum
from typing import Iterable, Mapping, NamedTuple, Optional, Tuple

from kbuildguard.strenum import StrEnum


class Gate(StrEnum):
    """What one check compares (a str too: JSON and text output read the name), in the order the
    target meets them: kmod (or the kernel) decompresses the file, then kernel/module/main.c
    load_module(): module_sig_check, elf_validity_check (the ELF gate, then the machine),
    setup_load_info (this_module), check_modstruct_version and check_modinfo (vermagic), simplify_symbols
    -> resolve_symbol (versions, exports, GPL-only), apply_relocations, the BTF notifier at
    MODULE_STATE_COMING, mod_sysfs_setup() (a built-in module's name), and delete_module() at unload. The struct module layout shows at relocation
    and unload; the compiler comes last: the loader never looks at it."""

    READ = "read"
    COMPRESSION = "compression"
    SIGNATURE = "signature"
    ELF = "elf"
    MACHINE = "machine"
    THIS_MODULE = "this_module"
    LAYOUT = "layout"
    VERMAGIC = "vermagic"
    SYMBOL_VERSIONS = "symbol_versions"
    SYMBOLS = "symbols"
    LICENSE = "license"
    RELOCATIONS = "relocations"
    BTF = "btf"
    NAME = "name"
    UNLOAD = "unload"
    COMPILER = "compiler"


class Stage(enum.IntEnum):
    """Where load_module() (kernel/module/main.c) meets a gate. A refusal stops the loader there, so
    a gate of a later stage is never reached and never logged: this is the one table of that order."""

    DECOMPRESS = 0  # kmod (or 6.1+ module_decompress() in finit_module()) unpacks .ko.xz/.gz/.zst first
    SIGNATURE = 1  # module_sig_check()
    ELF_VALIDITY = 2  # elf_validity_check(): the ELF's own shape, then elf_check_arch() ("Invalid architecture")
    THIS_MODULE = 3  # 6.1 setup_load_info(), 6.4 elf_validity_check(): "No module found in object"
    STRUCT_SIZE = 4  # 6.4+ elf_validity_check(), right after: sh_size != sizeof(struct module)
    MODINFO = 5  # check_modinfo(): vermagic (and check_modstruct_version())
    SYMBOLS = 6  # simplify_symbols() -> resolve_symbol(): CRCs, exports, namespaces, GPL-only; all reported
    RELOCATIONS = 7  # apply_relocations(): where init/exit land (x86_64), -mcmodel=kernel overflows
    COMING = 8  # prepare_coming_module() -> MODULE_STATE_COMING notifiers: btf_module_notify()
    SYSFS = 9  # mod_sysfs_setup() -> mod_sysfs_init(): a built-in's /sys/module/NAME, "module is already loaded"
    UNLOAD = 10  # delete_module(): init && !exit -> -EBUSY (loaded, never unloaded)
    NEVER = 11  # the loader never reads it: an unreadable file, what no gate owns


# Every stage at which the loader can refuse a module because of a gate, earliest first. The layout
# is met twice: 6.4+ compares the section's size early, and every kernel relocates init/exit late.
# The compiler is never read by the loader; a foreign compiler shows where its layout does.
GATE_STAGES: Mapping[Gate, Tuple[Stage, ...]] = {
    Gate.READ: (Stage.NEVER,),
    Gate.COMPRESSION: (Stage.DECOMPRESS,),
    Gate.SIGNATURE: (Stage.SIGNATURE,),
    Gate.ELF: (Stage.ELF_VALIDITY,),
    Gate.MACHINE: (Stage.ELF_VALIDITY,),
    Gate.THIS_MODULE: (Stage.THIS_MODULE,),
    Gate.LAYOUT: (Stage.STRUCT_SIZE, Stage.RELOCATIONS),
    Gate.VERMAGIC: (Stage.MODINFO,),
    Gate.SYMBOL_VERSIONS: (Stage.SYMBOLS,),
    Gate.SYMBOLS: (Stage.SYMBOLS,),
    Gate.LICENSE: (Stage.SYMBOLS,),
    Gate.RELOCATIONS: (Stage.RELOCATIONS,),
    Gate.BTF: (Stage.COMING,),
    Gate.NAME: (Stage.SYSFS,),  # modprobe refuses it before any of these: kmod sees the built-in first
    Gate.UNLOAD: (Stage.UNLOAD,),
    Gate.COMPILER: (Stage.RELOCATIONS,),
}


def stage(gate: Optional[Gate], size_check: bool = False) -> Stage:
    """Where the loader refuses a module for ``gate``; ``size_check``: a layout refused for its size (6.4+)."""
    if gate is None:
        return Stage.NEVER
    stages = GATE_STAGES[gate]
    return stages[0] if size_check or len(stages) == 1 else stages[-1]


class Effect(StrEnum):
    """What the target kernel will do with the module because of one check; worst last."""

    OK = "ok"
    NOT_CHECKED = "not-checked"  # kbuildguard cannot tell; the check's message says why
    TAINTS = "taints"  # loads, and taints the kernel (unsigned, proprietary, forced)
    CANNOT_UNLOAD = "cannot-unload"  # loads, and rmmod answers EBUSY (the original incident)
    REJECTED = "rejected-at-load"  # insmod/modprobe fail


# A gate that was not checked may refuse the module: a module's effect is not-checked rather than a
# confident "loads (and taints / never unloads)" unless a gate refuses it for certain (issue 18: ok,
# taints and cannot-unload all claim the kernel loads it).
EFFECT_ORDER = (Effect.OK, Effect.TAINTS, Effect.CANNOT_UNLOAD, Effect.NOT_CHECKED, Effect.REJECTED)


def worst(effects: Iterable[Effect]) -> Effect:
    return max(effects, key=EFFECT_ORDER.index, default=Effect.OK)


def effect_words(effect: Effect) -> str:
    """How the text output says it ("will be rejected at load")."""
    return {Effect.OK: "will load", Effect.NOT_CHECKED: "not fully checked",
            Effect.TAINTS: "will load and taint the kernel", Effect.CANNOT_UNLOAD: "will load and never unload",
            Effect.REJECTED: "will be rejected at load"}[effect]


class Check(NamedTuple):
    """One gate's answer. ``ok`` is kbuildguard's decision (False: the module is refused); ``effect``
    is what the kernel will do. They differ on purpose: an unsigned module on a kernel that does not
    enforce signatures is ok and taints; a module built by another compiler is refused even where
    its struct module happens to match (other structures follow the compiler's features too)."""

    name: Gate
    ok: bool
    expected: str
    found: str
    message: str
    fix: str = ""  # what to do about this check in particular (a vermagic mismatch is not a compiler's fault)
    effect: Effect = Effect.OK

    @property
    def checked(self) -> bool:
        return self.effect is not Effect.NOT_CHECKED
