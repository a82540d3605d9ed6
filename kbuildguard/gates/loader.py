"""What the target kernel's module loader will do with a module, gate by gate (beside the struct
module layout and compiler, which gates/layout.py owns; gates/verify.py runs them all).

Read from kernel/module/main.c, version.c (6.1, and 6.13 for extended modversions):

* vermagic -- check_modinfo(): ``same_magic(modmagic, vermagic, info->index.vers)``; when the module
  carries symbol versions the first word (the release) is skipped, the rest (SMP, preempt,
  mod_unload, modversions, arch words) must be equal. No vermagic at all goes through
  try_to_force_load(): a taint where CONFIG_MODULE_FORCE_LOAD=y, -ENOEXEC elsewhere.
* symbol_versions -- check_version() for every symbol resolved: the module's CRC must equal the
  exporter's ("disagrees about version of symbol X", -EINVAL); a resolved symbol without a version
  entry only warns upstream, and is refused by Debian's kernels (their patch "module: Disable
  matching missing version CRC"); a module without __versions goes through try_to_force_load().
* symbols -- simplify_symbols() -> resolve_symbol(): an undefined, non-weak symbol nobody exports is
  "Unknown symbol X (err -2)"; a symbol from a namespace the module does not import (MODULE_IMPORT_NS)
  is refused (verify_namespace_is_imported(), an error in 6.1); SHN_COMMON symbols are refused.
* license -- set_license(): a licence that is not GPL-compatible taints (P); find_symbol() hides
  EXPORT_SYMBOL_GPL symbols from such a module, so using one is "Unknown symbol X (err -2)".
* btf -- btf_module_notify() (CONFIG_DEBUG_INFO_BTF_MODULES): module BTF that does not parse against
  the kernel's own is "failed to validate module [M] BTF", fatal unless CONFIG_MODULE_ALLOW_BTF_MISMATCH.
"""

import os
from typing import AbstractSet, Dict, FrozenSet, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import bounded
from kbuildguard.arch import Arch
from kbuildguard.errors import BadInput
from kbuildguard.formats import btf
from kbuildguard.formats.module import ModuleInfo, VersionsFormat, is_module_path, read_btf, read_module
from kbuildguard.formats.symvers import Exports
from kbuildguard.gates import builtin, signature, trust
from kbuildguard.gates.model import Check, Effect, Gate
from kbuildguard.gates.signature import SigningFacts
from kbuildguard.target import exports as kernel_exports
from kbuildguard.target import kconfig
from kbuildguard.target import kmod as kmods
from kbuildguard.target.kernel import KernelTarget

# include/linux/license.h license_is_gpl_compatible()
GPL_COMPATIBLE = frozenset({"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL"})
# kernel/module/main.c ignore_undef_symbol(): undefined symbols the loader lets pass
# (arch/x86 and arch/powerpc). Keyed by Arch, the one spelling of each machine (arch.py: "i686", not "i386").
IGNORED_UNDEFINED: Mapping[Arch, FrozenSet[str]] = {
    Arch.X86_64: frozenset({"_GLOBAL_OFFSET_TABLE_"}), Arch.I686: frozenset({"_GLOBAL_OFFSET_TABLE_"}),
    Arch.PPC64: frozenset({".TOC."}), Arch.PPC64LE: frozenset({".TOC."})}
# arch/*/include/asm/vermagic.h MODULE_ARCH_VERMAGIC, for the architectures we build for: arm64's is
# "aarch64" with no space after it (Debian's arm64 modules: "6.1.0-57-arm64 SMP mod_unload modversions
# aarch64"); the kernel compares the text (same_magic()), so the spacing is part of the rule
ARCH_VERMAGIC = {"x86_64": "", "aarch64": "aarch64"}


class _Read:
    """What VmlinuxBtf read (a plain object: answers.facts_digest() has no canonical form for it, so
    facts read before a digest give no answers rather than a key that names the contents)."""

    def __init__(self, base: Optional[btf.BtfBase], why: str) -> None:
        self.base = base
        self.why = why
        self.memo: Dict[int, bool] = {}  # btf.check_split()'s memo: what the base's strings are


class VmlinuxBtf(NamedTuple):
    """The kernel's own BTF, read from its file the first time a module's BTF is held to it: a vmlinuz
    takes ~2 s to decompress, and most runs hold no module with .BTF (Debian's headers have no vmlinux,
    so out-of-tree modules get none). One per run (in LoaderFacts), never shared between runs. The
    remembered answers (gates/answers.py) are keyed by ``stamp``, as a module file is: another
    vmlinuz, another book."""

    path: str
    what: str  # "the kernel image's", "the running kernel's"
    stamp: Tuple[int, ...]  # (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns) when found
    cell: List[_Read]  # empty until read

    def load(self) -> _Read:
        if not self.cell:
            try:
                self.cell.append(_Read(btf.btf_base(btf.raw_btf(self.path), self.path), ""))
            except BadInput as exc:
                self.cell.append(_Read(None, str(exc)))
        return self.cell[0]


def _vmlinux(path: str, what: str) -> VmlinuxBtf:
    try:
        st = os.stat(path)
        stamp: Tuple[int, ...] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except OSError:
        stamp = ()
    return VmlinuxBtf(path, what, stamp, [])


class BtfFacts(NamedTuple):
    validates: Optional[bool]  # CONFIG_DEBUG_INFO_BTF_MODULES
    allow_mismatch: bool  # CONFIG_MODULE_ALLOW_BTF_MISMATCH
    base: Optional[str]  # the file holding the kernel's own BTF, when at hand
    same_base: Optional[bool]  # the build tree's vmlinux BTF is the kernel's own (None: unknown)
    vmlinux: Optional[VmlinuxBtf] = None  # that BTF, read when a module's BTF needs it


def vmlinux_btf(target: KernelTarget, image: Optional[str] = None) -> Optional[VmlinuxBtf]:
    """Where the kernel's own BTF is (first wins): --vmlinux, the running kernel's /sys/kernel/btf/vmlinux,
    the target's /boot/vmlinuz-R or vmlinux-R (under its sysroot: a fetched kernel's, reboot-check's
    ROOT), the vmlinux of the tree it was built in."""
    if image:
        return _vmlinux(image, "the given kernel image's")
    root = target.sysroot.rstrip("/") if target.sysroot not in ("", "/") else ""
    if target.running and not root and os.path.isfile("/sys/kernel/btf/vmlinux"):
        return _vmlinux("/sys/kernel/btf/vmlinux", "the running kernel's")
    for name in ("vmlinuz-%s", "vmlinux-%s"):
        path = "%s/boot/%s" % (root, name % target.release)
        if os.path.isfile(path):
            return _vmlinux(path, "the kernel image's")
    # a tree the kernel was built in (not a headers package) holds the kernel itself, as
    # gates/reference.py reads it for struct module
    if target.build_dir and os.path.isfile(os.path.join(target.build_dir, "vmlinux")):
        return _vmlinux(os.path.join(target.build_dir, "vmlinux"), "the build tree's vmlinux")
    return None


class LoaderFacts(NamedTuple):
    """Everything about the target kernel the gates need, read once per run."""

    config: Mapping[str, str]
    vermagic: Optional[str]  # the kernel's own, as its modules carry it
    vermagic_source: str
    exports: Optional[Exports]
    exports_missing: str  # why there are none
    signing: SigningFacts
    btf: BtfFacts
    in_tree: str  # the kernel's own module folder: its modules were built with it
    # Debian's kernels carry "module: Disable matching missing version CRC": a resolved symbol the
    # module lists no CRC for is refused ("no symbol version for S"); upstream warns once and loads.
    refuses_missing_versions: bool = False
    # the target's kmod and what it decompresses, or (None, why it is not known)
    kmod: Tuple[Optional[kmods.KmodFeatures], str] = (None, "the target's kmod was not looked for")
    builtin_names: builtin.BuiltinNames = builtin.BuiltinNames(None)  # the names of its built-in modules

    @property
    def modversions(self) -> Optional[bool]:
        return self.config.get("CONFIG_MODVERSIONS") == "y" if self.config else None

    @property
    def force_load(self) -> bool:
        return self.config.get("CONFIG_MODULE_FORCE_LOAD") == "y"


def kernel_vermagic(target: KernelTarget, config: Mapping[str, str]) -> Tuple[Optional[str], str]:
    """include/linux/vermagic.h's VERMAGIC_STRING for this kernel, from its configuration."""
    if not config:
        return None, "no configuration for %s" % target.release
    arch = str(target.arch) if target.arch else ""
    if arch not in ARCH_VERMAGIC:
        return None, "the arch words of %s vermagic are not known to kbuildguard" % (arch or "this")
    words = [target.release + " "]
    if config.get("CONFIG_SMP") == "y":
        words.append("SMP ")
    if config.get("CONFIG_PREEMPT_BUILD") == "y" or (config.get("CONFIG_PREEMPT") == "y" and
                                                     "CONFIG_PREEMPT_BUILD" not in config):
        words.append("preempt ")
    elif config.get("CONFIG_PREEMPT_RT") == "y":
        words.append("preempt_rt ")
    if config.get("CONFIG_MODULE_UNLOAD") == "y":
        words.append("mod_unload ")
    if config.get("CONFIG_MODVERSIONS") == "y":
        words.append("modversions ")
    # include/linux/vermagic.h: ... MODULE_VERMAGIC_MODVERSIONS MODULE_ARCH_VERMAGIC MODULE_RANDSTRUCT
    words.append(ARCH_VERMAGIC[arch])
    randstruct = _randstruct_seed(target)
    if randstruct:
        words.append("RANDSTRUCT_%s" % randstruct)
    return "".join(words), "computed from the configuration of %s" % target.release


def in_tree_vermagic(target: KernelTarget, tries: int = 5) -> Tuple[Optional[str], str]:
    """The vermagic the kernel's own modules carry (/lib/modules/R/kernel: live, a sysroot, an image
    root): VERMAGIC_STRING as the kernel's build wrote it, which is what same_magic() compares against
    (kernel/module/version.c; the kernel's own copy is vermagic[] in kernel/module/main.c, built from
    the same header). Only a module naming the target release counts."""
    kernel_dir = os.path.join(target.modules_dir, "kernel") if target.modules_dir else ""
    if not kernel_dir or not os.path.isdir(kernel_dir):
        return None, "no in-tree module of %s at hand" % target.release
    tried = 0
    for root, dirs, files in os.walk(kernel_dir):
        dirs.sort()
        for name in sorted(files):
            if not is_module_path(name):
                continue
            tried += 1
            path = os.path.join(root, name)
            try:
                found = read_module(path).vermagic
            except BadInput:
                found = ""
            if found.split(" ", 1)[0] == target.release:
                return found, "the kernel's own module %s" % os.path.relpath(path, target.modules_dir)
            if tried >= tries:
                return None, "none of %d in-tree modules of %s names that release" % (tried, target.release)
    return None, "no readable in-tree module of %s" % target.release


def target_vermagic(target: KernelTarget, config: Mapping[str, str]) -> Tuple[Optional[str], str]:
    """The kernel's vermagic: read from one of its own modules where they are at hand, else modelled
    from its configuration (include/linux/vermagic.h). Where both are known and differ, the module's
    string wins and the source says so (the model misses a word: a distribution's patch, a new option)."""
    model, model_source = kernel_vermagic(target, config)
    own, own_source = in_tree_vermagic(target)
    if own is None:
        return model, model_source
    if model is not None and model != own:
        return own, "read from %s; the model from the configuration says %r, the module's string is used" % (
            own_source, model)
    return own, "read from %s" % own_source


def _randstruct_seed(target: KernelTarget) -> str:
    if not target.build_dir:
        return ""
    for rel in ("include/generated/randstruct_hash.h", "include/generated/randomize_layout_hash.h"):
        try:
            lines = bounded.read_text(os.path.join(target.build_dir, rel), bounded.TEXT).splitlines()
        except OSError:
            continue
        for line in lines:
            if "HASHED_SEED" in line and '"' in line:
                return line.split('"')[1]
    return ""


def kernel_config(target: KernelTarget, explicit: Optional[str] = None) -> Mapping[str, str]:
    """The configuration the kernel itself was built with (its behaviour is what the gates predict):
    given, /boot/config-R, /proc/config.gz; else its build tree's (the drift check holds them equal
    where it matters for struct module)."""
    path = kconfig.kernel_config_path(target.release, target.sysroot, target.running, explicit)
    if path:
        try:
            return kconfig.read(path)
        except BadInput:
            pass
    return target.tree_config


def gather(target: KernelTarget, extra_symvers: Sequence[str] = (), sig_enforce: Optional[bool] = None,
           config_file: Optional[str] = None, trusted_certs: Sequence[str] = (),
           read: Optional[Mapping[str, str]] = None, image: Optional[str] = None,
           mokutil: Sequence[str] = (), env: Optional[Mapping[str, str]] = None) -> LoaderFacts:
    """``read``: the kernel's configuration when the caller has read it already (kconfig.read_kernel, for
    the drift comparison: one read serves both);
    ``image``: the kernel image given (--vmlinux), whose built-in keys the signature gate trusts;
    ``mokutil``: files of the target's mokutil output (check --mokutil)."""
    config = read if read else kernel_config(target, config_file)
    vermagic, vermagic_source = target_vermagic(target, config)
    exports, missing = kernel_exports.gather(target, extra_symvers)
    validates = None if not config else config.get("CONFIG_DEBUG_INFO_BTF_MODULES") == "y"
    own = vmlinux_btf(target, image) if validates else None
    btf_facts = BtfFacts(validates, config.get("CONFIG_MODULE_ALLOW_BTF_MISMATCH") == "y", own.path if own else None,
                         None, own)
    return LoaderFacts(config=config,
                       vermagic=vermagic,
                       vermagic_source=vermagic_source,
                       exports=exports,
                       exports_missing=missing,
                       signing=signing_facts(target, config, sig_enforce, trusted_certs, image, mokutil, env),
                       btf=btf_facts,
                       in_tree=target.modules_dir or "",
                       refuses_missing_versions=debian_kernel(target),
                       kmod=kmods.gather(target),
                       builtin_names=builtin.gather(target))


def debian_kernel(target: KernelTarget) -> bool:
    """Built by Debian (its compiler's vendor string says so: "Debian 12.2.0-14+deb12u1")."""
    return target.compiler.vendor.startswith("Debian")


def signing_facts(target: KernelTarget, config: Mapping[str, str], sig_enforce: Optional[bool],
                  trusted_certs: Sequence[str] = (), image: Optional[str] = None,
                  mokutil: Sequence[str] = (), env: Optional[Mapping[str, str]] = None) -> SigningFacts:
    """Enforcement read from the running kernel (/sys, /proc) or the sysroot's captured files, and the trust."""
    root = target.sysroot.rstrip("/") if target.sysroot not in ("", "/") else ""
    live = target.running and not root
    return signature.gather(config, sig_enforce, root, live, trust.gather(target, config, live, trusted_certs, image,
                                                                    mokutil=mokutil, env=env))


def bare(target: KernelTarget) -> LoaderFacts:
    """The facts from the build tree's configuration alone (no file read): for callers that hold a
    module to a kernel without a full run (a test, an explain of a foreign tree)."""
    config = target.tree_config
    vermagic, source = kernel_vermagic(target, config)
    return LoaderFacts(config=config,
                       vermagic=vermagic,
                       vermagic_source=source,
                       exports=None,
                       exports_missing="the kernel's exports were not read",
                       signing=signature.gather(config),
                       btf=BtfFacts(None, False, None, None),
                       in_tree=target.modules_dir or "",
                       refuses_missing_versions=debian_kernel(target))


def check_vermagic(info: ModuleInfo, facts: LoaderFacts, release: str) -> Check:
    has_crcs = info.versions_format is not VersionsFormat.NONE
    mine = info.vermagic
    # check_modinfo() (6.1: kernel/module/main.c): a vermagic= that is present but empty is no missing
    # vermagic (that is force-loaded with taint F) but one same_magic() does not match: -ENOEXEC
    present = any(key == "vermagic" for key, _ in info.modinfo)
    fix = ("rebuild it against the build tree of %s (its kernel-devel / linux-headers package); the compiler is not "
           "the problem here" % release)
    if not mine:
        effect = Effect.TAINTS if facts.force_load and not present else Effect.REJECTED
        return Check(name=Gate.VERMAGIC, ok=effect is not Effect.REJECTED, expected=facts.vermagic or release, found="absent",
                     message="no vermagic: %s" % ("loaded by force and the kernel tainted (CONFIG_MODULE_FORCE_LOAD=y)"
                                          if effect is Effect.TAINTS else "\"Exec format error\" (%s)" % (
                                              "an empty version magic" if present else "no version magic")),
                     fix=fix, effect=effect)
    if facts.vermagic is None:
        ok = mine.split(" ", 1)[0] == release
        return Check(name=Gate.VERMAGIC, ok=ok, expected=release, found=mine.strip(),
                     message="vermagic names the target release (flags not compared: %s)" % facts.vermagic_source if ok else
                     "vermagic is for %s, not %s" % (mine.split(" ", 1)[0], release), fix="" if ok else fix,
                     effect=Effect.NOT_CHECKED if ok else Effect.REJECTED)
    want = facts.vermagic
    m_release, _, m_flags = mine.partition(" ")
    k_release, _, k_flags = want.partition(" ")
    differs = _vermagic_differences(m_flags, k_flags)
    release_note = ""
    if m_release != k_release:
        if has_crcs:
            release_note = ("; release %s is not %s, which the kernel does not compare when the module has symbol "
                            "versions: symbol_versions decides" % (m_release, k_release))
        else:
            differs.insert(0, "release %s, the kernel is %s (compared: the module has no symbol versions)" % (m_release, k_release))
    if differs:
        return Check(name=Gate.VERMAGIC, ok=False, expected=want.strip(), found=mine.strip(),
                     message="version magic '%s' should be '%s': %s (the kernel's vermagic %s)" % (
                         mine.strip(), want.strip(), "; ".join(differs), facts.vermagic_source),
                     fix=fix, effect=Effect.REJECTED)
    return Check(name=Gate.VERMAGIC, ok=True, expected=want.strip(), found=mine.strip(),
                 message="vermagic matches (the kernel's same_magic() rule; the kernel's vermagic %s)%s" % (
                     facts.vermagic_source, release_note))


def _vermagic_differences(m_flags: str, k_flags: str) -> List[str]:
    """What same_magic() finds between the module's and the kernel's words after the release, said
    word by word where it can be."""
    differs: List[str] = []
    mine_words, want_words = m_flags.split(), k_flags.split()
    for word in mine_words:
        if word not in want_words:
            differs.append("'%s' in the module, not in the kernel" % word)
    for word in want_words:
        if word not in mine_words:
            differs.append("'%s' in the kernel, not in the module" % word)
    if not differs and mine_words != want_words:
        differs.append("the same words in another order (%s)" % m_flags.strip())
    # kernel/module/version.c same_magic(): strcmp() of what follows the release word (of the whole
    # string without symbol versions): a doubled or a missing space refuses the module as surely as a word
    if not differs and m_flags != k_flags:
        differs.append("the same words, spaced differently (%r, the kernel %r): the kernel compares the text, "
                       "not the words" % (m_flags, k_flags))
    return differs


def check_symbol_versions(info: ModuleInfo, facts: LoaderFacts, release: str) -> Check:
    expected = "CRCs of %s" % (", ".join(facts.exports.sources) if facts.exports else "the kernel's Module.symvers")
    early = _versions_not_compared(info, facts, expected) or _module_layout_unversioned(info, facts, expected)
    if early is not None:
        return early
    if facts.exports is None:
        return Check(name=Gate.SYMBOL_VERSIONS, ok=True, expected=expected, found="%d versions (%s)" % (len(info.version_names), info.versions_format),
                     message="not compared: %s" % facts.exports_missing, fix="", effect=Effect.NOT_CHECKED)
    found = "%d versions (%s)" % (len(info.version_names), info.versions_format)
    bad, kernel_differs, others = _crc_mismatches(info, facts.exports)
    if bad:
        return Check(name=Gate.SYMBOL_VERSIONS, ok=False, expected=expected, found=found,
                     message="disagrees about version of symbol %s" % ", ".join(bad),
                     fix=_crc_fix(info, release, facts.exports.sources[0], kernel_differs, others), effect=Effect.REJECTED)
    return _unlisted_versions(info, facts, facts.exports, expected, found)


def _versions_not_compared(info: ModuleInfo, facts: LoaderFacts, expected: str) -> Optional[Check]:
    """The kernel's configuration decides before any CRC: unknown, CONFIG_MODVERSIONS unset, or a
    module without __versions at all."""
    if facts.modversions is None:
        return Check(name=Gate.SYMBOL_VERSIONS, ok=True, expected=expected, found=str(info.versions_format),
                     message="not compared: the kernel's configuration is unknown (is CONFIG_MODVERSIONS set?)", fix="",
                     effect=Effect.NOT_CHECKED)
    if not facts.modversions:
        return Check(name=Gate.SYMBOL_VERSIONS, ok=True, expected="nothing (CONFIG_MODVERSIONS is not set)", found=str(info.versions_format),
                     message="the kernel does not compare symbol versions")
    if info.versions_format is VersionsFormat.NONE:
        effect = Effect.TAINTS if facts.force_load else Effect.REJECTED
        return Check(name=Gate.SYMBOL_VERSIONS, ok=effect is Effect.TAINTS, expected=expected, found="no __versions",
                     message="the module carries no symbol versions: %s" % (
                         "loaded by force, kernel tainted (\"M: module_layout: kernel tainted.\", CONFIG_MODULE_FORCE_LOAD=y)"
                         if facts.force_load else "refused without a log line (insmod: Exec format error): "
                         "check_modstruct_version() fails"),
                     fix="rebuild it with kbuild against the kernel's build tree (modpost writes __versions)", effect=effect)
    return None


def _module_layout_unversioned(info: ModuleInfo, facts: LoaderFacts, expected: str) -> Optional[Check]:
    if "module_layout" in info.version_names or not facts.refuses_missing_versions:
        return None
    # check_modstruct_version() (kernel/module/version.c; main.c load_module() calls it right after
    # setup_load_info()) looks module_layout up in __versions; vmlinux always exports it with a CRC,
    # so no Module.symvers is needed to decide. An empty __versions is what modpost writes when the
    # tree has no Module.symvers (`make modules_prepare`: "WARNING: Module.symvers is missing").
    # Debian's patch "module: Disable matching missing version CRC" makes check_version() return 0
    # there (upstream warns once and loads).
    empty = not info.version_names
    return Check(name=Gate.SYMBOL_VERSIONS, ok=False, expected=expected,
                 found="an empty __versions" if empty else "%d versions, none for module_layout" % len(info.version_names),
                 message="no symbol version for module_layout%s: this (Debian) kernel refuses it in "
                 "check_modstruct_version() (\"%s: no symbol version for module_layout\", insmod: Exec format "
                 "error)" % (" (__versions is empty: the build tree had no Module.symvers)" if empty else "",
                             info.name),
                 fix="build against a tree that has the kernel's Module.symvers (the linux-headers / kernel-devel "
                 "package has it; a tree after `make modules_prepare` does not)", effect=Effect.REJECTED)


def _crc_mismatches(info: ModuleInfo, exports: Exports) -> Tuple[List[str], bool, List[str]]:
    """(each symbol whose CRC differs from its exporter's, whether the kernel's own Module.symvers is
    among them, the other modules' Module.symvers whose CRCs differ): kernel/module/version.c
    check_version()'s comparison."""
    kernel_file = exports.sources[0]
    bad: List[str] = []
    kernel_differs = False
    others: List[str] = []
    for name, crc in zip(info.version_names, info.version_crcs):
        export = exports.symbols.get(name)
        if export is not None and export.crc is not None and export.crc != crc:
            from_kernel = export.source == kernel_file
            kernel_differs = kernel_differs or from_kernel
            # another module's Module.symvers names it by where modpost built it: its file name says enough
            who = "kernel" if from_kernel else os.path.basename(export.module)
            bad.append("%s (module 0x%08x, %s 0x%08x)" % (name, crc, who, export.crc))
            if not from_kernel and export.source not in others:
                others.append(export.source)
    return bad, kernel_differs, others


def _crc_fix(info: ModuleInfo, release: str, kernel_file: str, kernel_differs: bool, others: List[str]) -> str:
    built_for = info.vermagic.split(" ", 1)[0]
    if built_for and built_for != release:
        # dkms #554: built against another kernel's tree; the CRCs are only the symptom
        return ("it was built for %s: rebuild it against the build tree of %s (its kernel-devel / linux-headers "
                "package)" % (built_for, release))
    if not kernel_differs:
        return "rebuild it against the current Module.symvers of %s (--symvers FILE, KBUILD_EXTRA_SYMBOLS)" % ", ".join(others)
    return "rebuild against the kernel's own Module.symvers (%s)%s" % (
        kernel_file, ", and the current Module.symvers of %s" % ", ".join(others) if others else "")


def _unlisted_versions(info: ModuleInfo, facts: LoaderFacts, exports: Exports, expected: str, found: str) -> Check:
    # check_version(): a resolved symbol whose exporter has a CRC but the module lists none
    symbols = exports.symbols
    listed = set(info.version_names)
    wanted = [n for n in ("module_layout",) + info.needed.strong + info.needed.weak
              if n not in listed and n in symbols and symbols[n].crc is not None
              and (n != "module_layout" or symbols[n].module == "vmlinux")]
    if not wanted:
        return Check(name=Gate.SYMBOL_VERSIONS, ok=True, expected=expected, found=found,
                     message="every symbol version matches the exporter's")
    if facts.refuses_missing_versions:
        return Check(name=Gate.SYMBOL_VERSIONS, ok=False, expected=expected, found=found,
                     message="no symbol version for %s: the module lists no CRC for it, and this (Debian) kernel refuses "
                     "that (\"no symbol version for %s\", then \"Unknown symbol %s (err -22)\")" % (
                         ", ".join(wanted), wanted[0], wanted[0]),
                     fix="rebuild it with the exporter's Module.symvers at hand (--symvers FILE / KBUILD_EXTRA_SYMBOLS), "
                     "so that modpost records the CRC", effect=Effect.REJECTED)
    return Check(name=Gate.SYMBOL_VERSIONS, ok=True, expected=expected, found=found,
                 message="no symbol version for %s: the kernel warns once and loads it, so its CRC is never compared "
                 "(Debian's kernels refuse it)" % ", ".join(wanted),
                 fix="rebuild it with the exporter's Module.symvers at hand (--symvers FILE / KBUILD_EXTRA_SYMBOLS)",
                 effect=Effect.NOT_CHECKED)


def check_symbols(info: ModuleInfo, facts: LoaderFacts, siblings: AbstractSet[str]) -> Check:
    ignored = IGNORED_UNDEFINED.get(info.arch, frozenset()) if info.arch is not None else frozenset()
    commons = [n for n in info.needed.common if not n.startswith("__gnu_lto")]
    needed = [n for n in info.needed.strong if n not in ignored]
    expected = "exported by %s" % (", ".join(facts.exports.sources) if facts.exports else "the kernel")
    if info.symbol_problem:
        return Check(name=Gate.SYMBOLS, ok=False, expected=expected, found="a corrupt symbol table",
                     message="%s: simplify_symbols() reads it unchecked; the kernel refuses the module or crashes "
                     "loading it" % info.symbol_problem,
                     fix="rebuild it with kbuild; do not post-process the object", effect=Effect.REJECTED)
    if commons:
        return Check(name=Gate.SYMBOLS, ok=False, expected=expected, found="common symbols %s" % ", ".join(commons),
                     message="common symbols %s: the kernel refuses them (\"please compile with -fno-common\")" % ", ".join(commons),
                     fix="compile with -fno-common (kbuild does), or define them once", effect=Effect.REJECTED)
    if facts.exports is None:
        return Check(name=Gate.SYMBOLS, ok=True, expected=expected, found="%d undefined" % len(needed), message="not compared: %s" % facts.exports_missing,
                     fix="", effect=Effect.NOT_CHECKED)
    unknown: List[str] = []
    not_imported: List[str] = []
    imported = {v for k, v in info.modinfo if k == "import_ns"}
    for name in needed:
        export = facts.exports.symbols.get(name)
        if export is None:
            if name not in siblings:
                unknown.append(name)
        elif export.namespace and export.namespace not in imported:
            not_imported.append("%s (namespace %s)" % (name, export.namespace))
    found = "%d undefined symbol(s)" % len(needed)
    if unknown:
        return Check(name=Gate.SYMBOLS, ok=False, expected=expected, found=found, message="Unknown symbol %s: nothing the kernel or a named module "
                     "exports" % ", ".join(unknown),
                     fix="name the module that exports it (--symvers ITS/Module.symvers, or KBUILD_EXTRA_SYMBOLS), or stop "
                     "using it: it may be gone from this kernel", effect=Effect.REJECTED)
    if not_imported:
        return Check(name=Gate.SYMBOLS, ok=False, expected=expected, found=found, message="uses %s without importing the namespace" % ", ".join(not_imported),
                     fix="add MODULE_IMPORT_NS(...) for each namespace named", effect=Effect.REJECTED)
    return Check(name=Gate.SYMBOLS, ok=True, expected=expected, found=found, message="every undefined symbol is exported")


# check_modinfo(): .modinfo staging=Y taints C ("module is from the staging directory, the quality is
# unknown, you have been warned."), livepatch=Y taints K (kernel/module/main.c, 6.1); set_license()
# taints P for a licence that is not GPL-compatible. Each one is its own taint: all are named.
MODINFO_TAINTS = (("staging", "C", "\"module is from the staging directory, the quality is unknown, you have been warned.\""),
                  ("livepatch", "K", "a live patch"))


def _taint_words(letters: Sequence[str], reasons: Sequence[str]) -> str:
    """"taints itself (P, C): why; why": the letters in the form verify.taint_letters() reads."""
    return "taints itself (%s): %s" % (", ".join(letters), "; ".join(reasons))


def check_license(info: ModuleInfo, facts: LoaderFacts) -> Check:
    licence = info.info("license")
    shown = licence or "unspecified"
    marks = [(key, letter, why) for key, letter, why in MODINFO_TAINTS if info.info(key) == "Y"]
    letters = [letter for _, letter, _ in marks]
    reasons = ["%s=Y in .modinfo: %s" % (key, why) for key, _, why in marks]
    if licence in GPL_COMPATIBLE:
        if marks:
            return Check(name=Gate.LICENSE, ok=True, expected="any", found=licence,
                         message="GPL-compatible licence; the kernel loads it and %s" % _taint_words(letters, reasons),
                         effect=Effect.TAINTS)
        return Check(name=Gate.LICENSE, ok=True, expected="any", found=licence, message="GPL-compatible licence")
    if facts.exports is None:
        return Check(name=Gate.LICENSE, ok=True, expected="a GPL-compatible licence for GPL-only exports", found=licence or "none",
                     message="licence %r taints the kernel; GPL-only use not compared: %s" % (shown, facts.exports_missing),
                     fix="", effect=Effect.NOT_CHECKED)
    symbols = facts.exports.symbols
    gpl_only = sorted(n for n in info.needed.strong + info.needed.weak if n in symbols and symbols[n].gpl_only)
    if gpl_only:
        return Check(name=Gate.LICENSE, ok=False, expected="a GPL-compatible licence (it uses EXPORT_SYMBOL_GPL symbols)", found=licence or "none",
                     message="licence %r is not GPL-compatible and the module uses GPL-only %s: the kernel hides them from it "
                     "(\"Unknown symbol %s (err -2)\")" % (shown, ", ".join(gpl_only), gpl_only[0]),
                     fix="stop using the GPL-only symbols, or license the module GPL-compatibly (MODULE_LICENSE(\"GPL\"))",
                     effect=Effect.REJECTED)
    return Check(name=Gate.LICENSE, ok=True, expected="any", found=licence or "none",
                 message="licence %r is not GPL-compatible: the kernel loads it and %s" % (
                     shown, _taint_words(["P"] + letters, ["proprietary licence"] + reasons)),
                 fix="MODULE_LICENSE(\"GPL\") (or a dual licence) if the code allows", effect=Effect.TAINTS)


BTF_WANTED = "BTF split against the kernel's own"


def check_btf(info: ModuleInfo, facts: LoaderFacts) -> Check:
    """kernel/bpf/btf.c btf_module_notify() (6.1): a module's .BTF goes through btf_parse_module() with
    the kernel's own BTF as base; a failure is "failed to validate module [M] BTF: -E", fatal unless
    CONFIG_MODULE_ALLOW_BTF_MISMATCH=y (then the BTF is dropped and the module loads)."""
    own_btf = facts.btf
    found = "%d bytes of .BTF" % info.btf_size if info.btf_size else "no .BTF"
    if not info.btf_size:
        return Check(name=Gate.BTF, ok=True, expected="any", found=found, message="no module BTF: nothing for the kernel to validate")
    if own_btf.validates is None:
        return Check(name=Gate.BTF, ok=True, expected=BTF_WANTED, found=found,
                     message="not checked: the kernel's configuration is unknown", fix="", effect=Effect.NOT_CHECKED)
    if not own_btf.validates:
        return Check(name=Gate.BTF, ok=True, expected="any", found=found, message="the kernel does not read module BTF (no CONFIG_DEBUG_INFO_BTF_MODULES)")
    if info.btf_problem:
        if own_btf.allow_mismatch:
            return Check(name=Gate.BTF, ok=True, expected="BTF the kernel can parse", found=found,
                         message="its .BTF is malformed (%s): the kernel drops it with a warning and loads the module "
                         "(CONFIG_MODULE_ALLOW_BTF_MISMATCH=y)" % info.btf_problem)
        return Check(name=Gate.BTF, ok=False, expected="BTF the kernel can parse", found=found,
                     message="its .BTF is malformed (%s): \"failed to validate module [%s] BTF: -22\", refused" % (
                         info.btf_problem, info.name),
                     fix="rebuild it (kbuild's pahole writes module BTF; kbuildguard make --btf splits it against the "
                     "kernel's own)", effect=Effect.REJECTED)
    split = _split_check(info, own_btf, found) if own_btf.vmlinux is not None else None
    if split is not None:
        return split
    return _unsplit_check(info, facts, found)


def _split_check(info: ModuleInfo, own_btf: BtfFacts, found: str) -> Optional[Check]:
    """The module's BTF parsed as btf_parse_module() does against the kernel's own BTF; None when that
    BTF cannot be read (the rules without it decide)."""
    assert own_btf.vmlinux is not None
    read = own_btf.vmlinux.load()
    base = read.base
    if base is None:
        return None
    try:
        data = read_btf(info.path)
    except BadInput:
        return None
    result = btf.check_split(data, base, read.memo)
    against = "%s BTF (%s)" % (own_btf.vmlinux.what, own_btf.vmlinux.path)
    if result.error:
        # what the kernel prints: the verifier's line ("BPF: [100825] FUNC ... BPF: Invalid name"), then this
        words = "failed to validate module [%s] BTF: -%d" % (info.name, result.error)
        if own_btf.allow_mismatch:
            return Check(name=Gate.BTF, ok=True, expected=BTF_WANTED, found=found,
                         message="split against another kernel's BTF: with %s as its base the kernel says \"%s\" (%s), drops the module's "
                         "BTF and loads it (CONFIG_MODULE_ALLOW_BTF_MISMATCH=y)" % (against, words, result.reason))
        return Check(name=Gate.BTF, ok=False, expected=BTF_WANTED, found=found,
                     message="split against another kernel's BTF: with %s as its base the kernel says \"%s\" (%s), refused" % (
                         against, words, result.reason),
                     fix="rebuild it against this kernel (kbuildguard make --btf splits module BTF against its own); for a "
                     "kernel's own module, its package's modules and vmlinuz come from different builds",
                     effect=Effect.REJECTED)
    if result.foreign_names:
        # it parses, but names point inside this kernel's strings, not at their start: split against
        # another kernel's BTF, and parsed by chance. btf_parse_module() accepts it all the same
        # (measured in qemu: Debian 6.1.0-56's nls_cp1255 on -57 gets /sys/kernel/btf/nls_cp1255)
        return Check(name=Gate.BTF, ok=True, expected=BTF_WANTED, found=found,
                     message="split against another kernel's BTF (%d of its names point inside the strings of %s), but "
                     "it parses against it: the kernel loads it and registers BTF that describes other types"
                     % (result.foreign_names, against), fix="rebuild it against this kernel for BTF that describes it")
    return Check(name=Gate.BTF, ok=True, expected=BTF_WANTED, found=found,
                 message="split against this kernel's BTF: validates against %s" % against)


def _unsplit_check(info: ModuleInfo, facts: LoaderFacts, found: str) -> Check:
    """Without the kernel's own BTF at hand."""
    own_btf = facts.btf
    if facts.in_tree and info.path.startswith(facts.in_tree.rstrip("/") + "/"):
        return Check(name=Gate.BTF, ok=True, expected=BTF_WANTED, found=found, message="the kernel's own module")
    if own_btf.same_base is True:
        return Check(name=Gate.BTF, ok=True, expected=BTF_WANTED, found=found, message="generated against the kernel's own BTF")
    if own_btf.allow_mismatch:
        return Check(name=Gate.BTF, ok=True, expected=BTF_WANTED, found=found,
                     message="a mismatched .BTF would be dropped with a warning (CONFIG_MODULE_ALLOW_BTF_MISMATCH=y): it loads")
    if own_btf.same_base is False:
        return Check(name=Gate.BTF, ok=False, expected=BTF_WANTED, found=found,
                     message="generated against another kernel's BTF: \"failed to validate module BTF\", refused",
                     fix="rebuild with kbuildguard make --btf (the target's own BTF as base)", effect=Effect.REJECTED)
    return Check(name=Gate.BTF, ok=True, expected=BTF_WANTED, found=found,
                 message="not checked: the kernel's own BTF is not at hand (the running kernel's /sys/kernel/btf/vmlinux, "
                 "/boot/vmlinuz-R, or --vmlinux)", fix="", effect=Effect.NOT_CHECKED)
