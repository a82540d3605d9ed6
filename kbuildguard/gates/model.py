"""The loader's gates and what one check says about one of them (every gate module speaks these)."""

from typing import Iterable, NamedTuple

from kbuildguard.strenum import StrEnum


class Gate(StrEnum):
    """What one check compares (a str too: JSON and text output read the name), in the order the
    target meets them: kmod (or the kernel) decompresses the file, then kernel/module/main.c
    load_module(): module_sig_check, elf_validity_check (the ELF gate, then the machine),
    setup_load_info (this_module), check_modstruct_version and check_modinfo (vermagic), simplify_symbols
    -> resolve_symbol (versions, exports, GPL-only), apply_relocations, the BTF notifier at
    MODULE_STATE_COMING, and delete_module() at unload. The struct module layout shows at relocation
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
    UNLOAD = "unload"
    COMPILER = "compiler"


class Effect(StrEnum):
    """What the target kernel will do with the module because of one check; worst last."""

    OK = "ok"
    NOT_CHECKED = "not-checked"  # kbuildguard cannot tell; the check's message says why
    TAINTS = "taints"  # loads, and taints the kernel (unsigned, proprietary, forced)
    CANNOT_UNLOAD = "cannot-unload"  # loads, and rmmod answers EBUSY (the original incident)
    REJECTED = "rejected-at-load"  # insmod/modprobe fail


EFFECT_ORDER = (Effect.OK, Effect.NOT_CHECKED, Effect.TAINTS, Effect.CANNOT_UNLOAD, Effect.REJECTED)


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
