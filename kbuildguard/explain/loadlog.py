"""The kernel's own words when it refuses (or taints itself with) a module, mapped to our gates.

Every pattern below is the format string of one printk in the 6.1 sources (Debian 12's kernel),
quoted next to it with its function; where a later kernel changed the wording, both forms are
accepted and the comment says which kernel prints which. Most lines start with the module's name
(``mod->name`` / ``info->name``: KBUILD_MODNAME, '-' written as '_'); the ones that do not
(signature enforcement, lockdown, x86 relocations, BTF's "BPF:" detail) are attributed to the
module by their neighbours (:func:`find`). Pure functions, no I/O: the caller reads the log.
"""

import re
from typing import Dict, List, NamedTuple, Optional, Pattern, Sequence, Tuple

from kbuildguard.errors import BadInput
from kbuildguard.gates.model import Effect, Gate
from kbuildguard.strenum import StrEnum
from kbuildguard.target.pasted import strip_log_prefixes

# A module name where the kernel prints one: not inside a longer word.
_MOD = r"(?<![\w-])(?P<mod>[\w-]+)"

# The fixes, in the words the corresponding gate check uses (loader.py, verify.py, signature.py),
# so that `check` and `explain` tell the user the same thing. When the .ko is given and its own
# check fails, that check's fix (naming the release, the symvers file) is used instead.
FIX_SIGN = "sign it: kbuildguard make --sign (or your packaging's signing step) with a key the kernel trusts"
FIX_VERMAGIC = ("rebuild it against the build tree of %(release)s (its kernel-devel / linux-headers package); the "
                "compiler is not the problem here")
FIX_SYMVERS = ("rebuild against the kernel's own Module.symvers (its kernel-devel / linux-headers package), and the "
               "current Module.symvers of every module it uses")
FIX_NO_VERSIONS = "rebuild it with kbuild against the kernel's build tree (modpost writes __versions)"
FIX_UNKNOWN = ("name the module that exports it (--symvers ITS/Module.symvers, or KBUILD_EXTRA_SYMBOLS), or stop using "
               "it: it may be gone from this kernel")
FIX_LICENSE = "MODULE_LICENSE(\"GPL\") (or a dual licence) if the code allows"
FIX_LAYOUT = ("rebuild it against a build tree configured exactly like the running kernel (its own kernel-devel / "
              "linux-headers package) and with the kernel's compiler: `kbuildguard make` does both")
FIX_BTF = "rebuild with kbuildguard make --btf (the target's own BTF as base)"
FIX_KBUILD = "build it with kbuild against the kernel's build tree (make -C /lib/modules/$(uname -r)/build M=$PWD)"


class Kind(StrEnum):
    """Every loader message kbuildguard recognises; the value is the stable name in `explain --json`."""

    SIGNATURE_REJECTED = "signature_rejected"
    LOCKDOWN = "lockdown"
    SIGNATURE_TAINT = "signature_taint"
    VERMAGIC = "vermagic"
    FORCED = "forced"
    SYMBOL_VERSION = "symbol_version"
    NO_SYMBOL_VERSION = "no_symbol_version"
    NAMESPACE = "namespace"
    UNKNOWN_SYMBOL = "unknown_symbol"
    COMMON_SYMBOL = "common_symbol"
    DUPLICATE_EXPORT = "duplicate_export"
    LICENSE = "license"
    OUT_OF_TREE = "out_of_tree"
    THIS_MODULE_SIZE = "this_module_size"
    RELOCATION_TARGET = "relocation_target"
    RELOCATION_OVERFLOW = "relocation_overflow"
    MCMODEL = "mcmodel"
    BTF = "btf"
    BTF_DROPPED = "btf_dropped"
    BLACKLISTED = "blacklisted"
    NO_SYMBOLS = "no_symbols"
    NO_THIS_MODULE = "no_this_module"
    ELF_INVALID = "elf_invalid"
    MACHINE = "machine"
    INSMOD = "insmod"
    MODULES_LOAD = "modules_load"


# What user space prints about a refusal (insmod's, systemd-modules-load's errno): the kernel's own
# line, when there is one, says more.
USER_SPACE = frozenset({Kind.INSMOD, Kind.MODULES_LOAD})


class Message(NamedTuple):
    """One kind of loader message: how to recognise it and what it means."""

    kind: Kind
    pattern: Pattern[str]
    gate: Optional[Gate]  # None: a message no single gate owns (out-of-tree taint, insmod's errno)
    effect: Effect
    summary: str  # the failure in one phrase, %-formatted with the pattern's groups
    cause: str
    fix: str
    source: str  # where the kernel prints it (6.1 unless said)


def _m(kind: Kind, pattern: str, gate: Optional[Gate], effect: Effect, summary: str, cause: str, fix: str,
       source: str) -> Message:
    return Message(kind=kind, pattern=re.compile(pattern), gate=gate, effect=effect, summary=summary, cause=cause, fix=fix, source=source)


MESSAGES: Tuple[Message, ...] = (
    # kernel/module/signing.c module_sig_check(): pr_notice("Loading of %s is rejected\n", reason)
    _m(Kind.SIGNATURE_REJECTED, r"Loading of (?P<what>unsigned module|module with unsupported crypto|module with "
       r"unavailable key) is rejected$", Gate.SIGNATURE, Effect.REJECTED,
       "Loading of %(what)s is rejected",
       "the kernel enforces module signatures (module.sig_enforce=1 or CONFIG_MODULE_SIG_FORCE) and the module carries "
       "no signature it can check (insmod: \"Key was rejected by service\", EKEYREJECTED)", FIX_SIGN,
       "kernel/module/signing.c module_sig_check()"),
    # security/lockdown/lockdown.c lockdown_is_locked_down(): "Lockdown: %s: %s is restricted; see man
    # kernel_lockdown.7\n", current->comm, lockdown_reasons[LOCKDOWN_MODULE_SIGNATURE] = "unsigned module loading"
    _m(Kind.LOCKDOWN, r"Lockdown: (?P<comm>[^:]+): unsigned module loading is restricted(?:; see man kernel_lockdown\.7)?$",
       Gate.SIGNATURE, Effect.REJECTED, "Lockdown: unsigned module loading is restricted",
       "the kernel is locked down (Secure Boot) and the module is not signed by a key it trusts (insmod: \"Operation "
       "not permitted\", EPERM)", FIX_SIGN + "; enrol that key (mokutil --import KEY.der) if it is your own",
       "security/lockdown/lockdown.c lockdown_is_locked_down(), from module_sig_check()"),
    # kernel/module/main.c load_module(): pr_notice_once("%s: module verification failed: signature and/or
    # required key missing - tainting kernel\n", mod->name) -- once per boot: its absence proves nothing
    _m(Kind.SIGNATURE_TAINT, _MOD + r": module verification failed: signature and/or required key missing - tainting "
       r"kernel$", Gate.SIGNATURE, Effect.TAINTS, "module verification failed: signature and/or required key missing",
       "the module is unsigned or signed by a key the kernel does not have; signatures are not enforced, so it loads "
       "and taints the kernel (E)", "sign it: kbuildguard make --sign", "kernel/module/main.c load_module()"),
    # kernel/module/main.c check_modinfo(): pr_err("%s: version magic '%s' should be '%s'\n", info->name, modmagic, vermagic)
    _m(Kind.VERMAGIC, _MOD + r": version magic '(?P<mine>[^']*)' should be '(?P<want>[^']*)'$", Gate.VERMAGIC,
       Effect.REJECTED, "version magic '%(mine)s' should be '%(want)s'",
       "the module was built for another kernel release or configuration (SMP, preempt, mod_unload, modversions)",
       FIX_VERMAGIC, "kernel/module/main.c check_modinfo()"),
    # kernel/module/main.c try_to_force_load() (CONFIG_MODULE_FORCE_LOAD): pr_warn("%s: %s: kernel tainted.\n",
    # mod->name, reason); reason is "bad vermagic", "no versions for exported symbols", or the symbol whose version
    # could not be checked (version.c check_version(): the module has no __versions)
    _m(Kind.FORCED, _MOD + r": (?P<reason>[^:]+): kernel tainted\.$", Gate.SYMBOL_VERSIONS, Effect.TAINTS,
       "%(reason)s: kernel tainted",
       "loaded by force (CONFIG_MODULE_FORCE_LOAD, modprobe --force): the kernel could not check the module's version "
       "magic or symbol versions, and tainted itself (F)", FIX_NO_VERSIONS, "kernel/module/main.c try_to_force_load()"),
    # kernel/module/version.c check_version(): pr_warn("%s: disagrees about version of symbol %s\n", info->name, symname)
    _m(Kind.SYMBOL_VERSION, _MOD + r": disagrees about version of symbol (?P<sym>\S+)$", Gate.SYMBOL_VERSIONS,
       Effect.REJECTED, "disagrees about version of symbol %(sym)s",
       "the module was built against another CRC of %(sym)s than the kernel exports: another kernel's (or another "
       "build's) Module.symvers", FIX_SYMVERS, "kernel/module/version.c check_version()"),
    # kernel/module/version.c check_version(): pr_warn_once("%s: no symbol version for %s\n", info->name, symname);
    # upstream lets it load, Debian's "module: Disable matching missing version CRC" refuses it (then an
    # "Unknown symbol %s (err -22)" follows)
    _m(Kind.NO_SYMBOL_VERSION, _MOD + r": no symbol version for (?P<sym>\S+)$", Gate.SYMBOL_VERSIONS, Effect.OK,
       "no symbol version for %(sym)s",
       "the module's __versions has no CRC for %(sym)s (modpost did not see the symbol's export: a missing "
       "KBUILD_EXTRA_SYMBOLS, or a broken toolchain)", FIX_SYMVERS, "kernel/module/version.c check_version()"),
    # kernel/module/main.c verify_namespace_is_imported(): pr_err("%s: module uses symbol (%s) from namespace %s,
    # but does not import it.\n", mod->name, kernel_symbol_name(sym), namespace) -- pr_warn and no refusal with
    # CONFIG_MODULE_ALLOW_MISSING_NAMESPACE_IMPORTS; the parentheses are 6.1's, accepted without too
    _m(Kind.NAMESPACE, _MOD + r": module uses symbol \(?(?P<sym>[^()\s]+)\)? from namespace (?P<ns>\S+?),? but does not "
       r"import it\.?$", Gate.SYMBOLS, Effect.REJECTED,
       "uses symbol %(sym)s from namespace %(ns)s without importing it",
       "%(sym)s is exported into namespace %(ns)s and the module has no MODULE_IMPORT_NS(%(ns)s)",
       "add MODULE_IMPORT_NS(%(ns)s) to the module's source", "kernel/module/main.c verify_namespace_is_imported()"),
    # kernel/module/main.c simplify_symbols(): pr_warn("%s: Unknown symbol %s (err %d)\n", mod->name, name, ret)
    _m(Kind.UNKNOWN_SYMBOL, _MOD + r": Unknown symbol (?P<sym>\S+) \(err (?P<err>-?\d+)\)$", Gate.SYMBOLS,
       Effect.REJECTED, "Unknown symbol %(sym)s (err %(err)s)",
       "nothing loaded exports %(sym)s to this module: not exported by this kernel, exported by a module not loaded "
       "first, or EXPORT_SYMBOL_GPL hidden from a module whose licence is not GPL-compatible", FIX_UNKNOWN,
       "kernel/module/main.c simplify_symbols()"),
    # kernel/module/main.c simplify_symbols(): pr_warn("%s: please compile with -fno-common\n", mod->name)
    _m(Kind.COMMON_SYMBOL, _MOD + r": please compile with -fno-common$", Gate.SYMBOLS, Effect.REJECTED,
       "please compile with -fno-common", "the module has common (SHN_COMMON) symbols: it was not compiled by kbuild",
       "compile with -fno-common (kbuild does), or define them once", "kernel/module/main.c simplify_symbols()"),
    # kernel/module/main.c verify_exported_symbols(): pr_err("%s: exports duplicate symbol %s (owned by %s)\n", ...)
    _m(Kind.DUPLICATE_EXPORT, _MOD + r": exports duplicate symbol (?P<sym>\S+) \(owned by (?P<owner>[^)]+)\)$",
       Gate.SYMBOLS, Effect.REJECTED, "exports duplicate symbol %(sym)s (owned by %(owner)s)",
       "%(owner)s already exports %(sym)s", "rename the module's export, or do not load it beside %(owner)s",
       "kernel/module/main.c verify_exported_symbols()"),
    # kernel/module/main.c set_license(): pr_warn("%s: module license '%s' taints kernel.\n", mod->name, license)
    # -- only while the kernel is not yet tainted P: its absence proves nothing
    _m(Kind.LICENSE, _MOD + r": module license '(?P<lic>[^']*)' taints kernel\.$", Gate.LICENSE, Effect.TAINTS,
       "module license '%(lic)s' taints kernel",
       "licence '%(lic)s' is not GPL-compatible: the kernel loads it, taints itself (P) and hides EXPORT_SYMBOL_GPL "
       "symbols from it", FIX_LICENSE, "kernel/module/main.c set_license()"),
    # kernel/module/main.c check_modinfo(): pr_warn("%s: loading out-of-tree module taints kernel.\n", mod->name)
    _m(Kind.OUT_OF_TREE, _MOD + r": loading out-of-tree module taints kernel\.$", None, Effect.TAINTS,
       "loading out-of-tree module taints kernel",
       "every module built outside the kernel's tree taints it (O): expected, nothing is wrong", "",
       "kernel/module/main.c check_modinfo()"),
    # v6.4+ kernel/module/main.c elf_validity_cache_index_mod(): pr_err("module %s: .gnu.linkonce.this_module
    # section size must match the kernel's built struct module size at run time\n", info->name ?: "...")
    # (its first form, in setup_load_info(), had no "module %s: ")
    _m(Kind.THIS_MODULE_SIZE, r"(?:module " + _MOD + r": )?\.gnu\.linkonce\.this_module section size must match the "
       r"kernel's built struct module size at run time$", Gate.LAYOUT, Effect.REJECTED,
       ".gnu.linkonce.this_module section size must match the kernel's built struct module size",
       "the module's struct module has another size than the kernel's: built against a build tree configured "
       "differently, or by a compiler with other features", FIX_LAYOUT,
       "kernel/module/main.c elf_validity_cache_index_mod() (6.4+)"),
    # arch/x86/kernel/module.c __apply_relocate_add(), 6.1: pr_err("x86/modules: Skipping invalid relocation target,
    # existing value is nonzero for type %d, loc %p, val %Lx\n"); 6.3+ __write_relocate_add(): "x86/modules:
    # Invalid relocation target, existing value is nonzero for type %d, ..." (6.12+: "for sec %u, idx %u, type %d")
    _m(Kind.RELOCATION_TARGET, r"(?:module: )?(?:x86/modules: )?(?:Skipping invalid|Invalid) relocation target, "
       r"existing value is nonzero for (?:sec \d+, idx \d+, )?type (?P<type>\d+), loc (?P<loc>\S+), val "
       r"(?P<val>[0-9a-fA-F]+)$", Gate.LAYOUT, Effect.REJECTED,
       "invalid relocation target, existing value is nonzero (type %(type)s)",
       "a relocation points where the loaded module already holds data: in .gnu.linkonce.this_module that means "
       "init/exit sit at other offsets of struct module than the kernel's (built against another configuration or "
       "by another compiler)", FIX_LAYOUT, "arch/x86/kernel/module.c __apply_relocate_add()"),
    # arch/x86/kernel/module.c: pr_err("overflow in relocation type %d val %Lx\n") then pr_err("`%s' likely not
    # compiled with -mcmodel=kernel\n", me->name) (pasted.py may take its backquote for Markdown); arm64
    # module.c: pr_err("module %s: overflow in relocation type %d val %Lx\n", me->name, ...)
    _m(Kind.RELOCATION_OVERFLOW, r"(?:module " + _MOD + r": )?overflow in relocation type (?P<type>\d+) val "
       r"(?P<val>[0-9a-fA-F]+)(?: sec \d+ idx \d+)?$", Gate.RELOCATIONS, Effect.REJECTED,
       "overflow in relocation type %(type)s",
       "the module's code does not fit the kernel's code model (-mcmodel=kernel): it was not compiled with the "
       "kernel's flags", FIX_KBUILD, "arch/x86/kernel/module.c __apply_relocate_add(), arch/arm64/kernel/module.c"),
    _m(Kind.MCMODEL, r"`?" + _MOD + r"' likely not compiled with -mcmodel=kernel$", Gate.RELOCATIONS, Effect.REJECTED,
       "likely not compiled with -mcmodel=kernel",
       "the module's code does not fit the kernel's code model: it was not compiled with the kernel's flags",
       FIX_KBUILD, "arch/x86/kernel/module.c __apply_relocate_add()"),
    # kernel/bpf/btf.c btf_module_notify(): pr_warn("failed to validate module [%s] BTF: %ld\n", mod->name, ...);
    # btf_verifier_log() prints the reason before it, as "BPF: ..." lines
    _m(Kind.BTF, r"failed to validate module \[(?P<mod>[^\]]+)\] BTF: (?P<err>-?\d+)$", Gate.BTF, Effect.REJECTED,
       "failed to validate module BTF (%(err)s)",
       "the module's .BTF was split against another kernel's BTF (CONFIG_DEBUG_INFO_BTF_MODULES, no "
       "CONFIG_MODULE_ALLOW_BTF_MISMATCH)", FIX_BTF, "kernel/bpf/btf.c btf_module_notify()"),
    # 6.2+ kernel/bpf/btf.c btf_module_notify() with CONFIG_MODULE_ALLOW_BTF_MISMATCH: pr_warn_once(...)
    _m(Kind.BTF_DROPPED, r"Kernel module BTF mismatch detected, BTF debug info may be unavailable for some modules$",
       Gate.BTF, Effect.OK, "Kernel module BTF mismatch detected",
       "a module's .BTF does not match the kernel's; CONFIG_MODULE_ALLOW_BTF_MISMATCH=y: it loads without its BTF",
       FIX_BTF, "kernel/bpf/btf.c btf_module_notify() (6.2+)"),
    # kernel/module/main.c load_module(): pr_err("Module %s is blacklisted\n", info->name)
    _m(Kind.BLACKLISTED, r"Module " + _MOD + r" is blacklisted$", None, Effect.REJECTED, "Module %(mod)s is blacklisted",
       "the kernel command line has module_blacklist=%(mod)s", "remove %(mod)s from module_blacklist= on the kernel "
       "command line", "kernel/module/main.c load_module()"),
    # kernel/module/main.c setup_load_info(): pr_warn("%s: module has no symbols (stripped?)\n") and
    # pr_warn("%s: No module found in object\n")
    _m(Kind.NO_SYMBOLS, _MOD + r": module has no symbols \(stripped\?\)$", Gate.THIS_MODULE, Effect.REJECTED,
       "module has no symbols (stripped?)", "the module's symbol table was stripped (strip --strip-all)",
       "install it with kbuild's modules_install (strip --strip-debug at most)", "kernel/module/main.c setup_load_info()"),
    _m(Kind.NO_THIS_MODULE, _MOD + r": No module found in object$", Gate.THIS_MODULE, Effect.REJECTED,
       "No module found in object", "the file has no .gnu.linkonce.this_module: it is an object, not a module",
       "build it as a module with kbuild (obj-m), not as a plain object", "kernel/module/main.c setup_load_info()"),
    # kernel/module/main.c elf_validity_check() (6.1; 6.12: elf_validity_cache_*(); 5.10 adds "Module has invalid
    # ELF structures"): the file is malformed before anything of it is read (gates/elfcheck.py has each rule)
    _m(Kind.ELF_INVALID, r"(?:Invalid ELF (?:header len \d+|header magic: .*|header type: \d+ != 1|section header size|"
       r"section header overflow|section name index: .*|section hdr\(type \d+\)|section (?:name )?in module "
       r"\(section \d+ type \d+\)|sh_link!=.*|section name table type: \d+|symbol string table type: \d+)|"
       r"ELF Spec violation: .*|empty section name table|Module has invalid ELF structures)$", Gate.ELF, Effect.REJECTED,
       "the kernel's ELF checks refused the file",
       "the .ko is corrupt, truncated, or was changed after linking (strip, objcopy, a copy cut short)",
       "rebuild it with kbuild and install the file kbuild wrote", "kernel/module/main.c elf_validity_check()"),
    # kernel/module/main.c elf_validity_check(): pr_err("Invalid architecture in ELF header: %u\n", e_machine)
    _m(Kind.MACHINE, r"Invalid architecture in ELF header: (?P<machine>\d+)$", Gate.MACHINE, Effect.REJECTED,
       "Invalid architecture in ELF header: %(machine)s", "the module is built for another architecture",
       "build it for the kernel's architecture: kbuild with ARCH= and CROSS_COMPILE= for it",
       "kernel/module/main.c elf_validity_check()"),
    # kmod's insmod/modprobe and systemd-modules-load: what user space says (strerror of the errno)
    _m(Kind.INSMOD, r"(?:insmod|modprobe)(?:\[\d+\])?: (?:ERROR: )?(?:could not|can't) insert (?:module )?'?"
       r"(?P<file>[^':]+?)'?: (?P<err>[A-Z][^:]+)$", None, Effect.REJECTED, "%(err)s",
       "%(errno_cause)s", "", "kmod insmod/modprobe (user space)"),
    _m(Kind.MODULES_LOAD, r"Failed to insert module '(?P<file>[^']+)': (?P<err>[A-Z][^:]+)$", None, Effect.REJECTED,
       "%(err)s", "%(errno_cause)s", "", "systemd-modules-load (user space)"),
)

# What an init_module()/finit_module() errno means, as insmod prints it (strerror), and the gate it names.
ERRNO: Dict[str, Tuple[Optional[Gate], str]] = {
    "Key was rejected by service": (Gate.SIGNATURE, "EKEYREJECTED: signatures are enforced and the module has none "
                                                    "the kernel can check"),
    "Operation not permitted": (Gate.SIGNATURE, "EPERM: lockdown refuses unsigned modules (or the module is "
                                                "blacklisted, or the caller lacks CAP_SYS_MODULE)"),
    "Invalid module format": (None, "ENOEXEC: version magic, struct module size, a relocation, missing symbol "
                                    "versions or the ELF header: the kernel's own line says which"),
    "Exec format error": (None, "ENOEXEC: version magic, struct module size, a relocation, missing symbol versions "
                                "or the ELF header: the kernel's own line says which"),
    "Unknown symbol in module": (Gate.SYMBOLS, "ENOENT: a symbol nobody exports (the kernel names it: \"Unknown "
                                               "symbol\")"),
    "Invalid argument": (None, "EINVAL: a symbol version (CRC) or namespace refused: the kernel's own line says which"),
    "Invalid parameters": (None, "EINVAL: a symbol version (CRC) or namespace refused: the kernel's own line says which"),
}


class Hit(NamedTuple):
    """One log line the loader wrote about a module."""

    number: int  # 1-based line number in the log as read
    text: str  # the kernel's own text (prefixes removed, control characters kept out by the caller)
    message: Message
    module: Optional[str]  # as the line names it ('-' as '_'); None: the line names no module
    values: Tuple[Tuple[str, str], ...]  # the pattern's groups
    context: Tuple[str, ...]  # lines that belong to it ("BPF: ..." before a BTF failure)

    def value(self, key: str) -> str:
        for k, v in self.values:
            if k == key:
                return v
        return ""

    def words(self) -> Dict[str, str]:
        """The values to fill a message's summary, cause and fix with."""
        out = dict(self.values)
        out.setdefault("mod", self.module or "")
        want = self.value("want")
        out["release"] = want.split(" ", 1)[0] if want else "the running kernel"
        err = self.value("err")
        out["errno_cause"] = ERRNO.get(err, (None, err))[1]
        return out

    @property
    def gate(self) -> Optional[Gate]:
        if self.message.kind in USER_SPACE:
            return ERRNO.get(self.value("err"), (None, ""))[0]
        if self.message.kind is Kind.FORCED and self.value("reason") == "bad vermagic":
            return Gate.VERMAGIC
        if self.message.kind is Kind.UNKNOWN_SYMBOL and self.value("err") == "-22":
            return Gate.SYMBOL_VERSIONS  # resolve_symbol(): check_version() or the namespace refused it
        return self.message.gate

    def fill(self, template: str) -> str:
        try:
            return template % self.words()
        except (KeyError, ValueError, TypeError):  # a template naming a group its pattern lacks: a bug, shown as is
            return template


def module_name(name: str) -> str:
    """How the kernel names a module in its messages: KBUILD_MODNAME, '-' written as '_'."""
    for suffix in (".ko.xz", ".ko.gz", ".ko.zst", ".ko.bz2", ".ko"):
        if name.endswith(suffix):
            name = name[:-len(suffix)]
            break
    return name.rsplit("/", 1)[-1].replace("-", "_")


def decode(data: bytes, what: str) -> str:
    """Log bytes as text; BadInput for what is not a log (NUL bytes: a binary file, a .ko given as --dmesg)."""
    return text_of(data.decode("utf-8", errors="replace"), what)


def text_of(text: str, what: str) -> str:
    if "\x00" in text:
        raise BadInput("%s is binary data (NUL bytes), not a kernel log" % what,
                       hint="give the text dmesg or journalctl -k prints: --dmesg FILE")
    return text


# A fragment of every message above (and the "BPF:" detail lines): a line without one is not
# cleaned or matched at all -- a months-long journal is mostly other lines.
_WORTH = re.compile(r"symbol|version magic|taints kernel|tainting kernel|kernel tainted|is rejected|is restricted|relocation|"
                    r"validate module|BTF mismatch|BPF:|this_module|fno-common|blacklisted|ELF header|No module found|"
                    r"insert|mcmodel|Invalid ELF|ELF Spec violation|section name table|invalid ELF structures")


class Line(NamedTuple):
    number: int
    text: str
    repairs: Tuple[str, ...]


def clean_lines(text: str) -> List[Line]:
    out = []
    for i, raw in enumerate(text.splitlines(), start=1):
        if not _WORTH.search(raw):
            continue
        clean, repairs = strip_log_prefixes(raw)
        if clean:
            out.append(Line(i, clean, tuple(repairs)))
    return out


def match(line: Line) -> Optional[Hit]:
    for message in MESSAGES:
        m = message.pattern.search(line.text)
        if m is None:
            continue
        groups = {k: v for k, v in m.groupdict().items() if v is not None}
        mod = groups.get("mod") or (module_name(groups["file"]) if groups.get("file") else None)
        if mod:
            mod = mod.replace("-", "_")
        return Hit(number=line.number, text=line.text, message=message, module=mod, values=tuple(sorted(groups.items())), context=())
    return None


# An unnamed line belongs to the module named by the nearest named loader line this many log lines away.
NEIGHBOURHOOD = 6


def find(text: str, module: str) -> Tuple[List[Hit], List[str]]:
    """The loader's lines about ``module`` in a log (dmesg, journalctl -k, syslog, pasted), in log order,
    and the repairs made to read it. A line that names no module is kept unless its nearest named
    neighbour (within NEIGHBOURHOOD lines) is another module's."""
    want = module_name(module)
    lines = clean_lines(text)
    hits: List[Hit] = []
    repairs: List[str] = []
    for index, line in enumerate(lines):
        hit = match(line)
        if hit is None:
            continue
        if hit.message.kind is Kind.BTF:
            hit = hit._replace(context=_bpf_context(lines, index))
        hits.append(hit)
        repairs.extend(r for r in line.repairs if r not in repairs)
    out = []
    for hit in hits:
        owner = hit.module if hit.module is not None else _neighbour(hits, hit.number)
        if owner is None or owner == want:
            out.append(hit)
    return out, repairs


def _bpf_context(lines: Sequence[Line], index: int) -> Tuple[str, ...]:
    """btf_verifier_log()'s "BPF: ..." lines just before a BTF failure: the reason."""
    context: List[str] = []
    i = index - 1
    number = lines[index].number
    while i >= 0 and lines[i].number == number - 1 and lines[i].text.startswith("BPF:") and len(context) < 12:
        context.insert(0, lines[i].text)
        number = lines[i].number
        i -= 1
    return tuple(context)


def _neighbour(hits: Sequence[Hit], number: int) -> Optional[str]:
    best: Optional[Tuple[int, str]] = None
    for other in hits:
        if other.module is None:
            continue
        distance = abs(other.number - number)
        if distance <= NEIGHBOURHOOD and (best is None or distance < best[0]):
            best = (distance, other.module)
    return best[1] if best else None


def refused_symbols(hits: Sequence[Hit]) -> Dict[str, str]:
    """symbol -> err of every "Unknown symbol X (err N)": what a warning before it led to."""
    return {h.value("sym"): h.value("err") for h in hits if h.message.kind is Kind.UNKNOWN_SYMBOL}


def effect_of(hit: Hit, hits: Sequence[Hit]) -> Effect:
    """What the kernel did, as far as the log tells: a warning followed by the refusal of the same
    symbol is a refusal (Debian's missing-CRC patch, a namespace not imported)."""
    refused = refused_symbols(hits)
    if hit.message.kind is Kind.NO_SYMBOL_VERSION:
        return Effect.REJECTED if refused.get(hit.value("sym")) == "-22" else Effect.OK
    return hit.message.effect
