"""The target kernel: its release, build tree, architecture, and the compiler that built it.

``resolve()`` runs four stages a reader can follow top-down: ``resolve_release`` (which kernel was
asked for), ``find_tree`` (its build tree, which must *be* that release), ``read_records`` (what the
tree and the kernel's own files say) and ``choose`` (which record of the compiler wins).

Where the compiler comes from, first source wins (every source found is kept and compared):

  1. the build tree's ``include/config/auto.conf``  CONFIG_CC_VERSION_TEXT   (kernels >= 5.8)
  2. the build tree's ``.config``                    CONFIG_CC_VERSION_TEXT / ``# Compiler:`` header
  3. the build tree's ``include/generated/compile.h`` LINUX_COMPILER (also names the linker)
  4. the in-tree modules shipped for that release    their ELF .comment (RHEL 7 trees record nothing)
  5. ``/proc/version`` of the running kernel          only when the target *is* the running kernel
                                                      and no sysroot is given (a chroot or mock
                                                      build root runs another kernel)
  6. the build tree's CONFIG_GCC_VERSION / CONFIG_CLANG_VERSION integer (version only, no vendor)

A ``--proc-version-file`` replaces 5 for planning against a machine you only have that line from.
"""

import functools
import os
import re
from typing import List, Mapping, NamedTuple, Optional, Tuple

from kbuildguard import arch as arches
from kbuildguard import bounded
from kbuildguard.arch import Arch
from kbuildguard.errors import BadInput, KernelNotFound
from kbuildguard.identity import (
    CompilerId,
    Family,
    Linker,
    ProcVersion,
    parse_compiler,
    parse_proc_version,
    parse_version_integer,
)
from kbuildguard.target import kconfig
from kbuildguard.target import sysroot as sysroots
from kbuildguard.versions import compare


class Fact(NamedTuple):
    """One record of the kernel's compiler, and where it was read."""

    source: str
    compiler: CompilerId


class Selector(NamedTuple):
    """How the user named the target kernel (settings.py decides which layer names it)."""

    kernel: Optional[str] = None
    kernel_dir: Optional[str] = None
    sysroot: Optional[str] = None
    proc_version_file: Optional[str] = None
    proc_version_data: Optional[bytes] = None  # stdin's bytes when proc_version_file is "-"
    # How each was named, for messages ("KBUILDGUARD_KERNEL_DIR=/x"); "" means the option itself.
    kernel_named_by: str = ""
    kernel_dir_named_by: str = ""
    sysroot_named_by: str = ""

    def named(self, field: str) -> str:
        given = getattr(self, field + "_named_by")
        return given or "--%s %s" % (field.replace("_", "-"), getattr(self, field))


class KernelTarget(NamedTuple):
    release: str
    build_dir: Optional[str]
    arch: Optional[Arch]
    compiler: CompilerId
    compiler_source: str
    linker: Optional[Linker]
    facts: Tuple[Fact, ...]
    notes: Tuple[str, ...]
    config_path: Optional[str]
    modules_dir: Optional[str]  # /lib/modules/R (under the sysroot), if it exists
    sysroot: str
    running: bool  # the target is the kernel this machine runs
    program_hint: str  # the compiler program the tree's Makefile names (Debian: gcc-12)
    tree_config: Mapping[str, str]  # the build tree's configuration, read once (auto.conf, else .config)


class ToolRecords(NamedTuple):
    """What a tree's configuration records about the tools beside the compiler (kernels >= 5.x),
    for the toolchain preflight (preflight.py)."""

    linker: Optional[Linker]  # CONFIG_LD_IS_BFD + CONFIG_LD_VERSION, CONFIG_LD_IS_LLD + CONFIG_LLD_VERSION
    linker_source: str
    assembler: str  # "llvm" (CONFIG_AS_IS_LLVM: clang's integrated assembler), "gnu" (CONFIG_AS_IS_GNU), "" unrecorded
    pahole: Optional[Tuple[int, int]]  # CONFIG_PAHOLE_VERSION=124 -> (1, 24); None when unrecorded or 0 (none found)
    rustc_text: str  # CONFIG_RUSTC_VERSION_TEXT ("rustc 1.62.0 (a8314ef7d 2022-06-27)") when CONFIG_RUST=y
    objtool: bool  # CONFIG_OBJTOOL (6.0+) or CONFIG_STACK_VALIDATION (older): kbuild runs tools/objtool/objtool
    gcc_plugins: bool  # CONFIG_GCC_PLUGINS: kbuild passes -fplugin=scripts/gcc-plugins/*.so to every compile
    module_btf: bool  # CONFIG_DEBUG_INFO_BTF_MODULES: kbuild runs pahole on each .ko when vmlinux is in the tree


def decode_ld_version(value: str) -> Optional[Tuple[int, int, int]]:
    """CONFIG_LD_VERSION / CONFIG_LLD_VERSION as (major, minor, patch); None for 0 or garbage.

    scripts/ld-version.sh prints 10000 * major + 100 * minor + patch since 5.12 (24000 = 2.40.0,
    160006 = 16.0.6); before, 100000000 * major + 1000000 * minor + 10000 * patch (235000000 = 2.35).
    """
    try:
        v = int(value)
    except ValueError:
        return None
    if v <= 0:
        return None
    if v >= 10 ** 7:
        return v // 10 ** 8, v // 10 ** 6 % 100, v // 10 ** 4 % 100
    return v // 10000, v // 100 % 100, v % 100


def config_linker(config: Mapping[str, str]) -> Tuple[Optional[Linker], str]:
    """The linker the kernel was configured with, from Kconfig's own records."""
    lld = config.get("CONFIG_LD_IS_LLD") == "y" or (
        config.get("CONFIG_LD_IS_BFD") != "y" and decode_ld_version(config.get("CONFIG_LLD_VERSION", "0")) is not None)
    key, name = ("CONFIG_LLD_VERSION", "LLD") if lld else ("CONFIG_LD_VERSION", "GNU ld")
    version = decode_ld_version(config.get(key, "0"))
    if version is None:
        return None, ""
    major, minor, patch = version
    text = "%d.%d.%d" % version if lld or patch else "%d.%d" % (major, minor)
    return Linker(name, text, "%s=%s" % (key, config[key])), "include/config/auto.conf: %s" % key


def tool_records(config: Mapping[str, str]) -> ToolRecords:
    linker, source = config_linker(config)
    assembler = "llvm" if config.get("CONFIG_AS_IS_LLVM") == "y" else "gnu" if config.get("CONFIG_AS_IS_GNU") == "y" else ""
    pahole = None
    try:
        p = int(config.get("CONFIG_PAHOLE_VERSION", "0"))
    except ValueError:
        p = 0
    if p > 0:
        pahole = (p // 100, p % 100)
    return ToolRecords(
        linker=linker, linker_source=source, assembler=assembler, pahole=pahole,
        rustc_text=config.get("CONFIG_RUSTC_VERSION_TEXT", "") if config.get("CONFIG_RUST") == "y" else "",
        objtool=config.get("CONFIG_OBJTOOL") == "y" or config.get("CONFIG_STACK_VALIDATION") == "y",
        gcc_plugins=config.get("CONFIG_GCC_PLUGINS") == "y",
        module_btf=config.get("CONFIG_DEBUG_INFO_BTF_MODULES") == "y")


class TreeRecords(NamedTuple):
    """What a build tree says about itself, read once."""

    config: Mapping[str, str]
    config_path: Optional[str]
    facts: Tuple[Fact, ...]
    program_hint: str


def _c_define(path: str, name: str) -> Optional[str]:
    try:
        lines = bounded.read_text(path, bounded.TEXT).splitlines()
    except OSError:
        return None
    for line in lines:
        m = re.match(r'\s*#\s*define\s+%s\s+"(.*)"\s*$' % re.escape(name), line)
        if m:
            return m.group(1).replace('\\"', '"')
    return None


def debian_program_hint(build_dir: str) -> str:
    """Debian's header Makefile/.kernelvariables hard-code ``CC = ... $(CROSS_COMPILE)gcc-12``."""
    for name in (".kernelvariables", "Makefile"):
        try:
            lines = bounded.read_text(os.path.join(build_dir, name), bounded.TEXT).splitlines()
        except OSError:
            continue
        for line in lines:
            m = re.match(r"^\s*CC\s*[:?]?=.*?\)?\s*(?:\$\(CROSS_COMPILE\))?((?:gcc|clang)(?:-[\d.]+)?)\s*$", line)
            if m:
                return m.group(1)
    return ""


def tree_release(build_dir: str) -> Optional[str]:
    release = _c_define(os.path.join(build_dir, "include/generated/utsrelease.h"), "UTS_RELEASE")
    if release:
        return release
    release = _c_define(os.path.join(build_dir, "include/linux/utsrelease.h"), "UTS_RELEASE")  # < 2.6.33
    if release:
        return release
    try:
        return bounded.read_text(os.path.join(build_dir, "include/config/kernel.release"), bounded.TEXT).strip() or None
    except OSError:
        return None


def tree_facts(build_dir: str, config: Mapping[str, str], autoconf: Mapping[str, str]) -> List[Fact]:
    facts: List[Fact] = []
    text = autoconf.get("CONFIG_CC_VERSION_TEXT")
    if text:
        cid = parse_compiler(text)
        if cid:
            facts.append(Fact("include/config/auto.conf: CONFIG_CC_VERSION_TEXT", cid))
    text = config.get("CONFIG_CC_VERSION_TEXT")
    if text:
        cid = parse_compiler(text)
        if cid:
            facts.append(Fact(".config: CONFIG_CC_VERSION_TEXT", cid))
    header = kconfig.compiler_header(os.path.join(build_dir, ".config"))
    if header:
        cid = parse_compiler(header)
        if cid:
            facts.append(Fact(".config: '# Compiler:' header", cid))
    text = _c_define(os.path.join(build_dir, "include/generated/compile.h"), "LINUX_COMPILER")
    if text:
        cid = parse_compiler(text)
        if cid:
            facts.append(Fact("include/generated/compile.h: LINUX_COMPILER", cid))
    return facts


def tree_version_facts(autoconf: Mapping[str, str]) -> List[Fact]:
    facts = []
    for key, family in (("CONFIG_GCC_VERSION", Family.GCC), ("CONFIG_CLANG_VERSION", Family.CLANG)):
        version = parse_version_integer(autoconf.get(key, ""), family)
        if version:
            facts.append(Fact("include/config/auto.conf: %s (version only)" % key,
                              CompilerId(family=family, version=version, text="%s=%s" % (key, autoconf[key]))))
    return facts


def in_tree_module_facts(modules_dir: str, limit: int = 3) -> List[Fact]:
    """The .comment of a few modules shipped with the kernel: the kernel's own compiler wrote them."""
    from kbuildguard.formats.module import is_module_path, read_module

    kernel_dir = os.path.join(modules_dir, "kernel")
    facts: List[Fact] = []
    if not os.path.isdir(kernel_dir):
        return facts
    for root, dirs, files in os.walk(kernel_dir):
        dirs.sort()
        for name in sorted(files):
            if not is_module_path(name):
                continue
            path = os.path.join(root, name)
            try:
                info = read_module(path)
            except BadInput:
                continue
            if info.compilers:
                facts.append(Fact("in-tree module %s: .comment" % os.path.relpath(path, modules_dir), info.compilers[0]))
                if len(facts) >= limit:
                    return facts
    return facts


def _in_root(sysroot: str, path: str) -> str:
    return os.path.join(sysroot, path.lstrip("/")) if sysroot != "/" else path


def _resolve_in_root(sysroot: str, path: str) -> str:
    """Follow a symlink such as /lib/modules/R/build -> /usr/src/kernels/R inside the sysroot."""
    if sysroot == "/" or not os.path.islink(path):
        return path
    target = os.readlink(path)
    if os.path.isabs(target):
        return _in_root(sysroot, target)
    return os.path.normpath(os.path.join(os.path.dirname(path), target))


def build_dir_candidates(sysroot: str, release: str) -> List[str]:
    return [
        _resolve_in_root(sysroot, _in_root(sysroot, "/lib/modules/%s/build" % release)),
        _in_root(sysroot, "/usr/src/kernels/%s" % release),
        _in_root(sysroot, "/usr/src/linux-headers-%s" % release),
        _in_root(sysroot, "/usr/src/linux-%s" % release),
    ]


def installed_releases(sysroot: str = "/") -> List[str]:
    """Kernel releases that have a build tree under the sysroot, newest first."""
    releases = set()
    for parent in ("/lib/modules", "/usr/src/kernels"):
        try:
            names = os.listdir(_in_root(sysroot, parent))
        except OSError:
            continue
        releases.update(names)
    try:
        for name in os.listdir(_in_root(sysroot, "/usr/src")):
            if name.startswith("linux-headers-"):
                releases.add(name[len("linux-headers-"):])
    except OSError:
        pass
    with_tree = [r for r in releases if any(_is_build_tree(d) for d in build_dir_candidates(sysroot, r))]
    return sorted(with_tree, key=functools.cmp_to_key(compare), reverse=True)


def _is_build_tree(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "Makefile")) and (
        os.path.isfile(os.path.join(path, ".config")) or os.path.isfile(os.path.join(path, "include/config/auto.conf"))
    )


def running_release() -> str:
    return os.uname().release  # not platform.release(): on 3.6 it runs `uname -p`


def read_proc_version(path: str, data: Optional[bytes] = None) -> ProcVersion:
    """The /proc/version line in a file: /proc/version itself, or whatever a user pasted (pasted.py);
    ``data``: what was read from stdin for the path "-"."""
    if data is not None:
        raw, path = data, "stdin"
    else:
        try:
            raw = bounded.read_file(path, bounded.KERNEL_LOG.size, "a /proc/version line or a kernel log")  # pasted.py finds the line
        except OSError as exc:
            raise BadInput("%s: cannot read: %s" % (path, exc.strerror or exc))
    try:
        from kbuildguard.target.pasted import decode_pasted, find_kernel_line  # compiled only where a line is read

        text, decoded = decode_pasted(raw)
        found = find_kernel_line(text)
        return parse_proc_version(found.line)._replace(repairs=decoded + found.repairs)
    except BadInput as exc:
        raise BadInput("%s: %s" % (path, exc.message), hint=exc.hint)


def missing_tree_error(release: str, sysroot: str, running: bool, built_by: str = "") -> KernelNotFound:
    return KernelNotFound(
        "no build tree for kernel %s%s%s: looked in %s" % (
            release, " (the running kernel)" if running else "", built_by,
            ", ".join(build_dir_candidates(sysroot, release))),
        hint=missing_tree_hint(release, sysroot))


def missing_tree_hint(release: str, sysroot: str) -> str:
    others = installed_releases(sysroot)
    lines = [
        "install the build tree for %s: Debian/Ubuntu: apt-get install linux-headers-%s; "
        "RHEL/CentOS/Rocky/Alma/Fedora: dnf install kernel-devel-%s (yum on EL7); "
        "SUSE: zypper install kernel-default-devel" % (release, release, release),
    ]
    if others:
        lines.append("or build for an installed tree: --kernel %s (installed: %s)" % (others[0], ", ".join(others)))
    lines.append("or point at a tree: --kernel-dir DIR; `kbuildguard setup` installs the tree and compiler")
    return "; ".join(lines)


def _proc_version(selector: Selector, sysroot: str) -> Tuple[Optional[ProcVersion], str]:
    """The target's /proc/version line when the user gave one, or the sysroot has one."""
    if selector.proc_version_file:
        source = "stdin" if selector.proc_version_data is not None else selector.proc_version_file
        return read_proc_version(selector.proc_version_file, selector.proc_version_data), source
    if not selector.sysroot:
        return None, ""
    from kbuildguard.target.pasted import find_kernel_line

    layout = sysroots.layout_of(sysroot)
    texts = sysroots.kernel_texts(sysroot, layout)
    for found in texts:
        try:
            line = find_kernel_line(found.text)
            return (parse_proc_version(line.line)._replace(repairs=line.repairs),
                    "%s/%s" % (selector.sysroot.rstrip("/"), found.source))
        except BadInput as exc:
            if layout is sysroots.Layout.BUILD_ROOT:  # its one file, proc/version, is unreadable: say so
                raise BadInput("%s/%s: %s" % (selector.sysroot.rstrip("/"), found.source, exc.message), hint=exc.hint)
    return None, ""


def resolve_release(selector: Selector, sysroot: str, proc: Optional[ProcVersion], notes: List[str]) -> str:
    """The release that was asked for: named, from a build tree named, from /proc/version, the
    sysroot's newest, or the running kernel's."""
    if selector.kernel:
        release = selector.kernel
    elif selector.kernel_dir:
        return ""  # the tree names it (find_tree)
    elif proc is not None:
        release = proc.release
    elif selector.sysroot and sysroots.uname_release(sysroot, sysroots.layout_of(sysroot)) is not None:
        # a captured system without its kernel line: uname names the release, not the compiler
        captured = sysroots.uname_release(sysroot, sysroots.layout_of(sysroot))
        assert captured is not None
        release = captured.text
        notes.append("%s/%s names kernel %s but not its compiler (no proc/version or dmesg captured)"
                     % (selector.sysroot.rstrip("/"), captured.source, release))
    elif selector.sysroot:
        found = installed_releases(sysroot)
        if not found:
            raise KernelNotFound("%s: no kernel build tree under lib/modules, usr/src/kernels or "
                                 "usr/src/linux-headers-*, and no proc/version" % selector.named("sysroot"),
                                 hint="name the kernel with --kernel RELEASE, or install kernel-devel/linux-headers in the sysroot")
        release = found[0]
        if len(found) > 1:
            notes.append("several kernels in the sysroot (%s); chose the newest, %s: use --kernel to pick" % (", ".join(found), release))
    else:
        release = running_release()
    if "/" in release or release in ("", ".", "..") or "\n" in release:
        raise BadInput("%r: not a kernel release" % release)
    return release


def find_tree(selector: Selector, sysroot: str, release: str) -> Tuple[str, Optional[str]]:
    """(release, build tree or None). A tree must be the release asked for: its utsrelease.h decides."""
    if selector.kernel_dir:
        build_dir = os.path.abspath(selector.kernel_dir)
        named = selector.named("kernel_dir")
        if not os.path.isdir(build_dir):
            raise KernelNotFound("%s: no such directory" % named)
        if not _is_build_tree(build_dir):
            raise KernelNotFound("%s: not a configured kernel build tree (no Makefile and .config)" % named,
                                 hint="a build tree has Makefile, .config and include/config/auto.conf")
        tree_rel = tree_release(build_dir)
        if not tree_rel and not release:
            raise KernelNotFound("%s: cannot tell the kernel release (no include/generated/utsrelease.h)" % named,
                                 hint="name the release too: --kernel RELEASE --kernel-dir DIR")
        _same_release(release, tree_rel, build_dir, named)
        return release or tree_rel or "", build_dir
    for candidate in build_dir_candidates(sysroot, release):
        if _is_build_tree(candidate):
            _same_release(release, tree_release(candidate), candidate, "the build tree")
            return release, candidate
    return release, None


def _same_release(asked: str, tree_rel: Optional[str], build_dir: str, named: str) -> None:
    if asked and tree_rel and tree_rel != asked:
        raise KernelNotFound(
            "%s %s is kernel %s (include/generated/utsrelease.h), but kernel %s was asked for" % (named, build_dir, tree_rel, asked),
            hint="build for the kernel the tree is (--kernel %s), or point at the tree of %s; a module built against "
                 "another release's tree would not be verified for %s" % (tree_rel, asked, asked))


def read_records(build_dir: str) -> TreeRecords:
    """The tree's configuration and every record of its compiler, read once."""
    config_path = os.path.join(build_dir, ".config")
    autoconf_path = os.path.join(build_dir, "include/config/auto.conf")
    autoconf = kconfig.read(autoconf_path) if os.path.isfile(autoconf_path) else {}
    if autoconf and os.path.isfile(config_path):
        # auto.conf holds every option that is set, which is all that drift, the architecture and
        # the preflight ask; of .config (five times longer) only its compiler record is read.
        config = kconfig.read_keys(config_path, ("CONFIG_CC_VERSION_TEXT",))
        merged: Mapping[str, str] = autoconf
    else:
        config = kconfig.read(config_path) if os.path.isfile(config_path) else {}
        merged = dict(config, **autoconf)
    facts = tree_facts(build_dir, config, autoconf)
    has_config = bool(config) or os.path.isfile(config_path)
    return TreeRecords(merged, config_path if has_config else None, tuple(facts), debian_program_hint(build_dir))


def gather_facts(records: TreeRecords, modules_dir: Optional[str], proc: Optional[ProcVersion], proc_source: str,
                 release: str, notes: List[str]) -> List[Fact]:
    """Every record of the compiler, in the order of the module docstring."""
    facts = list(records.facts)
    if modules_dir and not any(f.compiler.vendor or f.compiler.date for f in facts):
        facts.extend(in_tree_module_facts(modules_dir))
    if proc is not None and proc.release == release:
        facts.append(Fact(proc_source, proc.compiler))
    elif proc is not None:
        notes.append("%s is for kernel %s, not the target %s: not used" % (proc_source, proc.release, release))
    facts.extend(tree_version_facts(records.config))
    return facts


def target_arch(config: Mapping[str, str], release: str, running: bool) -> Optional[Arch]:
    """The tree's configuration says; else this machine, when it runs the target; else the release's suffix."""
    found = arches.from_kconfig(config)
    if found is None and running:
        found = arches.parse(os.uname().machine)
    return found or arches.from_release(release)


def choose(facts: List[Fact], notes: List[str]) -> Fact:
    """The first record wins; a later one that disagrees is reported, not hidden."""
    chosen = facts[0]
    for fact in facts[1:]:
        c = fact.compiler
        if c.family != chosen.compiler.family or c.version != chosen.compiler.version or (
                c.vendor and chosen.compiler.vendor and c.vendor != chosen.compiler.vendor):
            notes.append("sources disagree: %s says %s, but %s says %s" % (
                chosen.source, chosen.compiler.describe(), fact.source, c.describe()))
    return chosen


def _sysroot(selector: Selector) -> str:
    """The absolute --sysroot, or "/"; BadInput when it is not a folder."""
    sysroot = os.path.abspath(selector.sysroot) if selector.sysroot else "/"
    if selector.sysroot and not os.path.isdir(sysroot):
        raise BadInput("%s: not a directory" % selector.named("sysroot"))
    return sysroot


def _modules_dir(sysroot: str, release: str) -> Optional[str]:
    """/lib/modules/RELEASE under the sysroot, when it is a folder."""
    modules_dir: Optional[str] = _in_root(sysroot, "/lib/modules/%s" % release)
    return modules_dir if modules_dir and os.path.isdir(modules_dir) else None


def _no_facts(release: str, build_dir: Optional[str], sysroot: str, running: bool) -> KernelNotFound:
    """Why no record of the kernel's compiler was found: no tree at all, or a tree that records none."""
    if build_dir is None:
        return missing_tree_error(release, sysroot, running)
    return KernelNotFound(
        "no record of the compiler that built kernel %s: %s has no CONFIG_CC_VERSION_TEXT, compile.h or "
        "in-tree modules" % (release, build_dir),
        hint="give the kernel's /proc/version line with --proc-version-file, or install the kernel package "
             "whose modules record it")


def resolve(selector: Selector) -> KernelTarget:
    sysroot = _sysroot(selector)
    notes: List[str] = []
    proc, proc_source = _proc_version(selector, sysroot)
    if proc is not None and proc.repairs:
        notes.append("%s: read the kernel line after repairing it: %s" % (proc_source, "; ".join(proc.repairs)))
    release = resolve_release(selector, sysroot, proc, notes)
    release, build_dir = find_tree(selector, sysroot, release)
    running = not selector.sysroot and not selector.proc_version_file and release == running_release()
    if running and proc is None and os.path.isfile("/proc/version"):
        try:
            proc, proc_source = read_proc_version("/proc/version"), "/proc/version"
        except BadInput as exc:
            notes.append("could not use /proc/version: %s" % exc.message)
    modules_dir = _modules_dir(sysroot, release)
    records = read_records(build_dir) if build_dir else TreeRecords({}, None, (), "")
    facts = gather_facts(records, modules_dir, proc, proc_source, release, notes)
    if not facts:
        raise _no_facts(release, build_dir, sysroot, running)
    chosen = choose(facts, notes)
    # compile.h names the linker with its vendor text; Kconfig's LD_VERSION/LLD_VERSION (5.8+) otherwise
    linker = next((f.compiler.linker for f in facts if f.compiler.linker), None) or config_linker(records.config)[0]
    return KernelTarget(release=release, build_dir=build_dir, arch=target_arch(records.config, release, running),
                        compiler=chosen.compiler, compiler_source=chosen.source, linker=linker, facts=tuple(facts),
                        notes=tuple(notes), config_path=records.config_path, modules_dir=modules_dir, sysroot=sysroot,
                        running=running, program_hint=records.program_hint, tree_config=records.config)
