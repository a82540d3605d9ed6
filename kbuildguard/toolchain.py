"""Local compilers: find them, identify them by what they are, and decide which matches the kernel.

A compiler is identified by its predefined macros (``cc -E -dM -``: __GNUC__, __clang_major__ ...),
as meson does; the ``--version`` banner only supplies the vendor release and the display text.
gcc 4.8.5 (CentOS 7) has no ``-dumpfullversion``, and banners are translated in other locales.
"""

import functools
import glob
import os
import re
import threading
import time
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import arch as arches
from kbuildguard import bounded
from kbuildguard.arch import Arch, same_machine
from kbuildguard.errors import BadInput, ToolNotFound, UsageError
from kbuildguard.identity import CompilerId, Family, Linker, from_macros, parse_compiler, parse_linker
from kbuildguard.run import CommandFailed, Runner
from kbuildguard.strenum import StrEnum
from kbuildguard.target.kernel import KernelTarget


class MatchLevel(StrEnum):
    """How closely a module's compiler must match the kernel's."""

    EXACT = "exact"  # family, X.Y.Z and the vendor release ("Red Hat 8.3.1-3")
    VERSION = "version"  # family and X.Y.Z (default)
    MINOR = "minor"  # family and X.Y
    MAJOR = "major"  # family and X



_PARTS = {MatchLevel.EXACT: 3, MatchLevel.VERSION: 3, MatchLevel.MINOR: 2, MatchLevel.MAJOR: 1}

class Verdict(StrEnum):
    """What became of one candidate compiler (a str too, so that JSON and tests read it as the word)."""

    MATCH = "match"
    MISMATCH = "mismatch"
    ERROR = "error"  # it could not be run or identified



class Forced(NamedTuple):
    """A compiler the user named (--cc, CC=, KBUILDGUARD_CC, $CC): the only candidate, refused if it does not match."""

    name: str  # a path or a program name on PATH
    origin: str  # how it was named, for messages: "--cc", "KBUILDGUARD_CC", "CC environment variable"


class Compiler(NamedTuple):
    path: str
    family: Family
    version: str
    vendor: str
    banner: str
    arch: Optional[Arch]
    program: str  # the name it was found under (basename of path)
    toolset: str  # "devtoolset-8", "gcc-toolset-12", or ""

    @property
    def identity(self) -> CompilerId:
        return CompilerId(family=self.family, version=self.version, vendor=self.vendor, date="", program=self.program, text=self.banner)

    def describe(self) -> str:
        return "%s (%s)" % (self.path, self.identity.describe())


class Candidate(NamedTuple):
    path: str
    origin: str  # "PATH", "/opt/rh", "--cc", "CC environment", "CC= make argument"
    compiler: Optional[Compiler]
    verdict: Verdict
    reason: str


class Selection(NamedTuple):
    selected: Optional[Compiler]
    candidates: Tuple[Candidate, ...]
    level: MatchLevel


@functools.lru_cache(maxsize=64)  # a pure answer; `check` asks it for the same few pairs 30,000 times
def mismatch_reason(kernel: CompilerId, other: CompilerId, level: MatchLevel) -> Optional[str]:
    """None when ``other`` matches the kernel's compiler under ``level``; otherwise why not.

    A program-name difference alone (x86_64-linux-gnu-gcc-12 vs gcc-12, cc vs gcc) is no mismatch:
    only what the compiler is counts.
    """
    if other.family != kernel.family:
        return "is %s, the kernel was built by %s" % (other.family, kernel.family)
    kv, ov = kernel.version_tuple, other.version_tuple
    n = min(_PARTS[level], len(kv))
    if kv[:n] != ov[:n]:
        return "is %s %s, the kernel needs %s %s (match level %s)" % (
            other.family, other.version, kernel.family, ".".join(str(p) for p in kv[:n]), level)
    if level is MatchLevel.EXACT and kernel.vendor != other.vendor:
        return "vendor release %r differs from the kernel's %r (match level exact)" % (
            other.vendor or "none", kernel.vendor or "none")
    return None


def _toolset_of(path: str) -> str:
    m = re.match(r"^/opt/rh/([^/]+)/root/usr/bin/", path)
    return m.group(1) if m else ""


def toolset_env(compiler: Compiler, env: Mapping[str, str]) -> Dict[str, str]:
    """The environment a build with this compiler needs, without an ``scl enable`` shell.

    Red Hat's toolsets put gcc, as and ld under /opt/rh/NAME/root/usr/bin; kbuild calls $(LD) and
    $(AS) by bare name, so the toolset's bin must come first on PATH, as its ``enable`` script does.
    Other compilers' own folder goes first too, so that a clang-N finds its lld and llvm-ar.
    """
    out = dict(env)
    bindir = os.path.dirname(compiler.path)
    if compiler.family is Family.CLANG:
        real = os.path.dirname(os.path.realpath(compiler.path))
        if real != bindir and os.path.isfile(os.path.join(real, "ld.lld")):
            bindir = real
    path = out.get("PATH", os.defpath)
    if bindir and bindir not in ("/usr/bin", "/bin") and bindir not in path.split(os.pathsep)[:1]:
        out["PATH"] = bindir + os.pathsep + path
    if compiler.toolset:
        root = "/opt/rh/%s/root" % compiler.toolset
        libs = [root + "/usr/lib64", root + "/usr/lib"]
        if out.get("LD_LIBRARY_PATH"):
            libs.append(out["LD_LIBRARY_PATH"])
        out["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
        pkg = [root + "/usr/lib64/pkgconfig"]
        if out.get("PKG_CONFIG_PATH"):
            pkg.append(out["PKG_CONFIG_PATH"])
        out["PKG_CONFIG_PATH"] = os.pathsep.join(pkg)
    return out


def host_arch() -> Optional[Arch]:
    """This machine, as ``uname -m`` names it."""
    return arches.parse(os.uname().machine)


def cross_prefix(target: KernelTarget, env: Mapping[str, str], host: Optional[Arch]) -> str:
    """The CROSS_COMPILE compilers are looked for under: the user's own (environment), else, for a
    kernel of another machine than this one, the target's triplet (aarch64-linux-gnu-) -- Debian's
    gcc-12-aarch64-linux-gnu installs aarch64-linux-gnu-gcc-12 (issue 22); "" for a native build."""
    given = env.get("CROSS_COMPILE", "")
    if given:  # empty: none
        return given
    if arches.foreign(target.arch, host) and target.arch is not None and target.arch.traits.triplet:
        return target.arch.traits.triplet + "-"
    return ""


def discover(env: Mapping[str, str], opt_root: str = "/opt/rh", cross: str = "") -> List[Tuple[str, str]]:
    """Every compiler path worth probing, in preference order, with where it was found; ``cross``
    (a CROSS_COMPILE prefix) adds PREFIXgcc and PREFIXgcc-N, as CROSS_COMPILE in the environment does."""
    names = ["gcc", "cc", "clang"]
    cross = cross or env.get("CROSS_COMPILE", "")
    if cross:
        names = [cross + "gcc", cross + "cc"] + names
    found: List[Tuple[str, str]] = []
    for directory in env.get("PATH", os.defpath).split(os.pathsep):
        if not directory or not os.path.isdir(directory):
            continue
        paths = [os.path.join(directory, n) for n in names]
        for pattern in ("gcc-[0-9]*", "clang-[0-9]*") + ((cross + "gcc-[0-9]*",) if cross else ()):
            paths.extend(sorted(p for p in glob.glob(os.path.join(directory, pattern))
                                if re.search(r"-\d+(\.\d+)*$", p)))
        # Amazon Linux's parallel compilers: gcc10-gcc, gcc14-gcc
        paths.extend(sorted(glob.glob(os.path.join(directory, "gcc[0-9]*-gcc"))))
        for path in paths:
            if os.path.isfile(path) and os.access(path, os.X_OK):
                found.append((path, "PATH"))
    for kind in ("gcc-toolset", "devtoolset"):
        for root in sorted(glob.glob(os.path.join(opt_root, kind + "-*")), reverse=True):
            path = os.path.join(root, "root/usr/bin/gcc")
            if os.path.isfile(path) and os.access(path, os.X_OK):
                found.append((path, opt_root))
    return found


# A compiler answers -E -dM and --version in well under a second; 30 s bounds a wrapper (ccache,
# distcc, a site script) that hangs, even on a loaded machine.
PROBE_SECONDS = 30


def identify(runner: Runner, path: str, env: Optional[Mapping[str, str]] = None) -> Compiler:
    """What the compiler at ``path`` is; raises BadInput if it does not behave like gcc or clang."""
    try:
        macros = runner.probe([path, "-E", "-dM", "-x", "c", "-"], env=env, remember=True, timeout=PROBE_SECONDS).stdout
    except CommandFailed as exc:
        if exc.timed_out:
            raise BadInput("%s did not answer `-E -dM` within %d s (a wrapper that hangs?): stopped" % (path, PROBE_SECONDS))
        raise BadInput("%s does not work as a C compiler: %s" % (path, exc))
    ident = from_macros(macros)
    if ident is None:
        raise BadInput("%s predefines neither __GNUC__ nor __clang__: not gcc or clang" % path)
    family, version, arch = ident
    banner = ""
    vendor = ""
    try:
        banner = runner.probe([path, "--version"], env=env, remember=True, timeout=PROBE_SECONDS).stdout.strip().splitlines()[0]
    except (CommandFailed, IndexError):
        pass
    parsed = parse_compiler(banner) if banner else None
    if parsed is not None and parsed.family is family and parsed.version_tuple[:2] == tuple(
            int(p) for p in version.split(".")[:2]):
        vendor = parsed.vendor
    return Compiler(path=path, family=family, version=version, vendor=vendor, banner=banner, arch=arch, program=os.path.basename(path),
                    toolset=_toolset_of(path))


# Candidates are probed at once, one thread each around the one subprocess door (run.py): a hung
# wrapper (ccache, distcc, a site script) costs its own timeout, not one after another (issue 22).
# identify() runs two probes of PROBE_SECONDS each; past PROBE_TOTAL_SECONDS kbuildguard stops
# waiting for all of them and says which did not answer.
PROBE_TOTAL_SECONDS = 2 * PROBE_SECONDS + 5


def identify_all(runner: Runner, paths: Sequence[str], env: Optional[Mapping[str, str]] = None,
                 total: float = PROBE_TOTAL_SECONDS) -> Dict[str, Tuple[Optional[Compiler], str]]:
    """identify() of every path at once: path -> (the compiler, "") or (None, why not). An error
    other than BadInput/ToolNotFound (a bug, a signal) is raised here, in the calling thread."""
    results: Dict[str, Tuple[Optional[Compiler], str]] = {}
    failures: List[BaseException] = []

    def one(path: str) -> None:
        try:
            results[path] = (identify(runner, path, env), "")
        except (BadInput, ToolNotFound) as exc:
            results[path] = (None, exc.message)
        except BaseException as exc:  # handed to the calling thread below
            failures.append(exc)

    if len(paths) == 1:  # nothing to wait for at once: no thread
        one(paths[0])
    else:
        # daemon threads: a probe still waiting for its timeout never holds up kbuildguard's exit
        threads = [threading.Thread(target=one, args=(path,), daemon=True) for path in paths]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + total
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
    if failures:
        raise failures[0]
    answered = dict(results)  # a copy: a thread that answers late writes into results, not here
    for path in paths:
        if path not in answered:
            answered[path] = (None, "%s did not answer within %g s (a wrapper that hangs?): not waited for any longer"
                              % (path, total))
    return answered


def machine_reason(target: KernelTarget, compiler: Compiler, host: Optional[Arch]) -> Optional[str]:
    """None when ``compiler`` builds for the kernel's machine; otherwise why not.

    clang is every target at once: for a kernel of another machine than this host kbuild gives it
    --target itself, from ARCH= (6.1 scripts/Makefile.clang: with CROSS_COMPILE empty,
    ``CLANG_FLAGS += --target=$(CLANG_TARGET_FLAGS_$(SRCARCH))``), so a clang that targets this
    host by default serves an arm64 kernel with LLVM=1 ARCH=arm64.
    """
    if same_machine(target.arch, compiler.arch):
        return None
    if compiler.family is Family.CLANG and arches.foreign(target.arch, host) and same_machine(compiler.arch, host):
        return None
    triplet = target.arch.traits.triplet if target.arch is not None else ""
    fix = ("install the cross compiler %s-gcc-N, or give its prefix as CROSS_COMPILE" % triplet if triplet
           else "set ARCH and CROSS_COMPILE for a cross build")
    return "targets %s, the kernel is %s (%s)" % (compiler.arch, target.arch, fix)


def select(runner: Runner, target: KernelTarget, level: MatchLevel, env: Mapping[str, str],
           forced: Optional[Forced] = None, opt_root: str = "/opt/rh", first_match: bool = False,
           host: Optional[Arch] = None) -> Selection:
    """Choose the local compiler that matches the kernel's; explain every candidate.

    ``forced`` is set when the user named a compiler: then it is the only
    candidate, and the caller refuses a mismatch before anything is built. ``first_match`` (make,
    doctor) adds the program the kernel's tree names (where PATH has it) to the candidates and ranks
    it first; every candidate is probed at once, within one bound. (A toolset's gcc 12.2.0 "Red Hat
    12.2.1-7" beats the distribution's plain 12.2.0 even when the tree's Makefile names "gcc".)
    ``host`` is this machine (uname -m when None): for a kernel of another machine the target's
    cross compilers (aarch64-linux-gnu-gcc-12) are candidates too (cross_prefix).
    """
    host = host if host is not None else host_arch()
    cross = cross_prefix(target, env, host)
    prefer, native = _preferred_programs(target, cross)
    if forced is not None:
        pairs = [_forced_pair(runner, forced, env)]
    else:
        pairs = discover(env, opt_root, cross)
        if first_match and prefer:
            # the program the kernel's tree names, where PATH has it, is probed with the rest (never
            # alone first: a hung one would cost its own timeout before the others start, issue 22)
            try:
                pairs.insert(0, (runner.which(prefer, env), "PATH"))
            except ToolNotFound:
                pass
    chosen = _one_per_binary(pairs, prefer, native, first_match)
    # Every candidate of one selection is probed at once, within one bound in all (identify_all): make
    # had probed the tree's own program alone first, so each hung wrapper cost PROBE_SECONDS in turn
    # and nothing named it (issue 22). The probes are remembered (probecache): a second run is quick.
    found = identify_all(runner, [path for path, _ in chosen], env)
    candidates: List[Candidate] = []
    matches: List[Tuple[Tuple[int, int, int], Compiler]] = []
    for index, (path, origin) in enumerate(chosen):
        compiler, error = found[path]
        candidate = _judge(target, level, host, path, origin, compiler, error)
        candidates.append(candidate)
        if candidate.verdict is Verdict.MATCH and compiler is not None:
            rank = (0 if compiler.vendor == target.compiler.vendor else 1, 0 if compiler.program == prefer else 1, index)
            matches.append((rank, compiler))
    selected = min(matches, key=lambda m: m[0])[1] if matches else None
    return Selection(selected, tuple(candidates), level)


def _preferred_programs(target: KernelTarget, cross: str) -> Tuple[str, str]:
    """(the program name to prefer, the kernel's own program name): the tree's program, with the cross
    prefix when the tree names a bare gcc-12 for a cross build."""
    prefer = native = target.program_hint or target.compiler.program
    if cross and os.sep not in cross and prefer and not prefer.startswith((cross, "clang")):
        prefer = cross + prefer  # Debian's arm64 headers name $(CROSS_COMPILE)gcc-12: aarch64-linux-gnu-gcc-12 here
    return prefer, native


def _forced_pair(runner: Runner, forced: Forced, env: Mapping[str, str]) -> Tuple[str, str]:
    """(path, origin) of the compiler the user named: the only candidate."""
    name, origin = forced
    try:
        path = name if os.sep in name else runner.which(name, env)
    except ToolNotFound:
        raise ToolNotFound("the compiler %s (%s) is not on PATH" % (name, origin))
    return path, origin


def _one_per_binary(pairs: List[Tuple[str, str]], prefer: str, native: str, first_match: bool) -> List[Tuple[str, str]]:
    """One (path, origin) per real binary: /usr/bin/gcc, cc and gcc-12 are often the same file. Keep
    the name the kernel's build used (gcc-12) when it is among them; with ``first_match`` the binary
    that has the preferred name comes first."""
    groups: Dict[str, List[Tuple[str, str]]] = {}
    order: List[str] = []
    for path, origin in pairs:
        real = os.path.realpath(path)
        if real not in groups:
            groups[real] = []
            order.append(real)
        groups[real].append((path, origin))
    if first_match:
        order.sort(key=lambda real: 0 if any(os.path.basename(p) == prefer for p, _ in groups[real]) else 1)
    chosen = []
    for real in order:
        members = groups[real]
        chosen.append(next((m for m in members if os.path.basename(m[0]) == prefer),
                           next((m for m in members if os.path.basename(m[0]) == native), members[0])))
    return chosen


def _judge(target: KernelTarget, level: MatchLevel, host: Optional[Arch], path: str, origin: str,
           compiler: Optional[Compiler], error: str) -> Candidate:
    """One probed candidate's verdict: no answer, a mismatch (version, vendor or machine), or a match."""
    if compiler is None:
        return Candidate(path, origin, None, Verdict.ERROR, error)
    reason = mismatch_reason(target.compiler, compiler.identity, level)
    if reason is None:
        reason = machine_reason(target, compiler, host)
    if reason is None:
        return Candidate(path, origin, compiler, Verdict.MATCH, "matches %s" % target.compiler.describe())
    return Candidate(path, origin, compiler, Verdict.MISMATCH, reason)


def unanswered(selection: Selection) -> List[str]:
    """Why each candidate that did not answer its probes in time was left out: said even when another
    compiler was selected, so a hung wrapper on PATH is named rather than silently skipped."""
    return [c.reason for c in selection.candidates
            if c.verdict is Verdict.ERROR and ("did not answer" in c.reason)]


# Kernels that take LLVM=-N (a suffix) and LLVM=DIR/ (a prefix): Makefile since 5.18
# (Documentation/kbuild/llvm.rst: "make LLVM=-14"); before, only LLVM=1 with the tools on PATH.
LLVM_SUFFIX_SINCE = (5, 18)


class LlvmSettings(NamedTuple):
    """What kbuild must be told to build with an LLVM toolchain the way the kernel was built."""

    make_vars: Tuple[str, ...]  # ("LLVM=-16", "LLVM_IAS=1"), or () for a gcc build
    suffix: str  # "-16" when kbuild will call ld.lld-16, llvm-objcopy-16 ...; "" for unversioned names
    why: str


def _kernel_version(release: str) -> Tuple[int, ...]:
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else ()


def llvm_settings(target: KernelTarget, compiler: Compiler, assembler: str) -> LlvmSettings:
    """LLVM= and LLVM_IAS= for a clang build of an external module.

    kbuild keeps no record of the LLVM= a tree was configured with (its auto.conf.cmd lists the
    programs Kconfig ran, e.g. `ifneq "$(LD)" "ld.lld-16"`, and only in full trees): what matters is
    that the module's ld.lld, llvm-objcopy and llvm-ar are the selected clang's release. A versioned
    program (clang-16) gets LLVM=-16 where kbuild knows suffixes (5.18+), so the tools are named
    exactly; otherwise LLVM=1 with that clang's own bin folder first on PATH (toolset_env).
    LLVM_IAS follows the kernel's assembler record (CONFIG_AS_IS_LLVM / CONFIG_AS_IS_GNU, 5.13+):
    its default flipped from 0 to 1 in 5.15, so it is always spelled out when the tree says.
    """
    if compiler.family is not Family.CLANG:
        return LlvmSettings((), "", "gcc build: kbuild's GNU binutils")
    m = re.match(r"^clang(-\d+)$", compiler.program)
    version = _kernel_version(target.release)
    if m and version and version >= LLVM_SUFFIX_SINCE:
        make_vars = ["LLVM=" + m.group(1)]
        suffix = m.group(1)
        why = "%s: kbuild calls ld.lld%s, llvm-objcopy%s ... (LLVM=-N, kernel 5.18+)" % (compiler.program, suffix, suffix)
    else:
        make_vars = ["LLVM=1"]
        suffix = ""
        why = "LLVM=1 with %s's folder first on PATH" % compiler.program
    if assembler == "llvm":
        make_vars.append("LLVM_IAS=1")
    elif assembler == "gnu":
        make_vars.append("LLVM_IAS=0")
    return LlvmSettings(tuple(make_vars), suffix, why)


def linker_program(compiler: Compiler, llvm: LlvmSettings, env: Mapping[str, str]) -> str:
    """The program kbuild's $(LD) will be: ld.lld[-N] for LLVM=, else $(CROSS_COMPILE)ld."""
    if llvm.make_vars:
        return "ld.lld" + llvm.suffix
    if env.get("CROSS_COMPILE"):
        return env["CROSS_COMPILE"] + "ld"
    # a cross gcc without CROSS_COMPILE in the environment: kbuildguard gives make its own prefix
    # (cross_settings), so $(LD) is aarch64-linux-gnu-ld, not this machine's ld
    m = re.match(r"^(.+-)(?:gcc|cc)(?:-[\d.]+)?$", compiler.program)
    if m and not same_machine(compiler.arch, host_arch()):
        return m.group(1) + "ld"
    return "ld"


def identify_linker(runner: Runner, program: str, env: Optional[Mapping[str, str]] = None) -> Linker:
    """What a linker is, from the first line of ``--version`` (GNU ld and LLD print their name and release)."""
    try:
        out = runner.probe([program, "--version"], env=env, remember=True).stdout
    except CommandFailed as exc:
        raise BadInput("%s --version failed: %s" % (program, exc))
    first = out.strip().splitlines()[0] if out.strip() else ""
    found = parse_linker(first)
    if found is None:
        raise BadInput("%s --version printed %r: neither GNU ld nor LLD" % (program, first[:80]))
    return found


# Toolchain variables after `make --` (issue 22: none is dropped without a word). kbuild reads each
# from make's command line, which overrides the Makefile's own assignment (GNU make "Overriding
# Variables"): the 6.1 top Makefile sets CC, LD, AR, NM, OBJCOPY ... from $(CROSS_COMPILE) and
# $(LLVM) (Makefile: "ifneq ($(LLVM),)"), HOSTCC/HOSTCXX for the host programs of scripts/.
# CC and LLVM/LLVM_IAS are kbuildguard's own (make_command writes them); the others are passed on
# as given, with a note that they are not checked against the kernel's record.
PASSED_TOOL_VARIABLES = {
    "LD": "the linker of every .ko: not checked against the kernel's linker record (kbuildguard doctor judges the tree's own)",
    "AR": "not checked against the kernel's toolchain", "NM": "not checked against the kernel's toolchain",
    "AS": "not checked against the kernel's toolchain", "OBJCOPY": "not checked against the kernel's toolchain",
    "OBJDUMP": "not checked against the kernel's toolchain", "STRIP": "not checked against the kernel's toolchain",
    "READELF": "not checked against the kernel's toolchain",
    "HOSTCC": "builds host programs only (scripts/), nothing that goes into the module",
    "HOSTCXX": "builds host programs only (scripts/), nothing that goes into the module",
    "HOSTLD": "links host programs only (scripts/), nothing that goes into the module",
    "CROSS_COMPILE": "the prefix of gcc's binutils for a cross build (the compiler itself is kbuildguard's CC=)",
    "ARCH": "kbuild's target architecture; the built module's machine is still checked against the kernel's",
}


class MakeArgs(NamedTuple):
    """make arguments after -- as kbuild gets them, and what was said about each toolchain variable."""

    passed: Tuple[str, ...]
    notes: Tuple[str, ...]


def toolchain_make_args(make_args: Sequence[str], compiler: Compiler, llvm: LlvmSettings) -> MakeArgs:
    """Each CC=, LLVM=, LLVM_IAS= after -- taken, replaced or refused, and each other toolchain
    variable passed with a note; never one dropped without a word. Raises UsageError."""
    passed = []
    notes = []
    for arg in make_args:
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(:::=|::=|:=|\+=|\?=|!=|=)(.*)$", arg)
        if m is None or arg.startswith("-"):
            passed.append(arg)
            continue
        name, op, value = m.group(1), m.group(2), m.group(3)
        if name in ("CC", "LLVM", "LLVM_IAS") and (op != "=" or arg[len(name)] != "="):
            raise UsageError("%s after --: write %s=VALUE (kbuildguard reads only that form of %s)" % (arg, name, name))
        if name == "CC":
            # settings.resolve took it as the compiler (as --cc); make_command writes CC= itself
            notes.append("%s after --: taken as the compiler (as --cc); make gets CC=%s" % (arg, compiler.path))
        elif name in ("LLVM", "LLVM_IAS") and compiler.family is Family.CLANG:
            own = " ".join(llvm.make_vars) or "none"
            notes.append("%s after --: replaced by kbuildguard's %s (%s, from the kernel's compiler and assembler "
                         "records)" % (arg, own, llvm.why))
        elif name == "LLVM" and value:
            raise UsageError("%s after --: the kernel was built with %s, not clang: LLVM= would make kbuild build with "
                             "clang and LLVM's tools (Makefile: ifneq ($(LLVM),)). For a clang-built kernel "
                             "kbuildguard sets LLVM= itself" % (arg, compiler.describe()))
        elif name in ("LLVM", "LLVM_IAS"):
            notes.append("%s after --: not passed: it has no effect on a %s build" % (arg, compiler.program))
        elif name in PASSED_TOOL_VARIABLES:
            passed.append(arg)
            notes.append("%s after --: passed to kbuild as given: %s" % (arg, PASSED_TOOL_VARIABLES[name]))
        else:
            passed.append(arg)
    return MakeArgs(tuple(passed), tuple(notes))


class CrossSettings(NamedTuple):
    """ARCH= and CROSS_COMPILE= kbuildguard puts on make's command line, and what it says about them."""

    make_vars: Tuple[str, ...]  # ("ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-"), () for a native build
    notes: Tuple[str, ...]


def _given(name: str, make_args: Sequence[str], env: Mapping[str, str]) -> Tuple[Optional[str], str]:
    """The user's own value of a make variable and where it came from: the last NAME=/NAME:= after --
    (make's command line beats the environment), else the environment; (None, "") when neither."""
    value: Optional[str] = None
    where = ""
    for arg in make_args:
        m = re.match(r"^\s*(?:override\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*(?:::=|:=|=)(.*)$", arg)
        if m is not None and m.group(1) == name:
            value, where = m.group(2).strip(), "after --"
    if value is None and env.get(name):  # an empty one (`export ARCH=`) is as good as none: make's command line overrides it
        value, where = env[name], "in the environment"
    return value, where


def cross_settings(target: KernelTarget, compiler: Compiler, make_args: Sequence[str], env: Mapping[str, str],
                   host: Optional[Arch] = None) -> CrossSettings:
    """What kbuild must be told to build for a kernel of another machine than this host (issue 22).

    kbuild takes the architecture from ARCH= (default: this host's, Makefile "ARCH ?= $(SUBARCH)")
    and gcc's binutils from $(CROSS_COMPILE)ld, $(CROSS_COMPILE)objcopy ...; the compiler itself is
    kbuildguard's CC=. For clang, LLVM= names LLVM's own binutils whatever CROSS_COMPILE says; the
    triplet still goes to CROSS_COMPILE, from which every Makefile.clang takes --target. A user's ARCH=/CROSS_COMPILE= (after
    -- or in the environment) wins; an ARCH= of another architecture than the kernel's is refused
    (UsageError): kbuild would build for it, and every module would be refused afterwards.
    """
    host = host if host is not None else host_arch()
    notes: List[str] = []
    user_arch, arch_where = _given("ARCH", make_args, env)
    want = target.arch.traits.kbuild if target.arch is not None else ""
    if user_arch is not None and want and arches.srcarch(user_arch) != want:
        raise UsageError("ARCH=%s %s: kernel %s is %s, which kbuild builds with ARCH=%s: a module built for %s "
                         "would not load there; drop it (kbuildguard sets ARCH= itself) or name another kernel"
                         % (user_arch, arch_where, target.release, target.arch, want, user_arch or "the host"))
    if target.arch is None or not arches.foreign(target.arch, host) or not want:
        return CrossSettings((), ())
    triplet = target.arch.traits.triplet
    make_vars: List[str] = []
    if user_arch is None:
        make_vars.append("ARCH=" + want)
    else:
        notes.append("ARCH=%s %s: kept" % (user_arch, arch_where))
    user_cross, cross_where = _given("CROSS_COMPILE", make_args, env)
    if user_cross == "" and compiler.family is Family.GCC:
        raise UsageError("CROSS_COMPILE= (empty) %s: kernel %s is %s and this machine %s, so kbuild would link and "
                         "strip with this machine's ld and objcopy; drop it (kbuildguard sets CROSS_COMPILE=%s) "
                         "or name the cross binutils' prefix" % (cross_where, target.release, target.arch, host,
                                                                 compiler.program.rsplit("gcc", 1)[0] or "TRIPLET-"))
    if user_cross is not None:
        notes.append("CROSS_COMPILE=%s %s: kept" % (user_cross, cross_where))
    elif compiler.family is Family.CLANG:
        # 6.1's scripts/Makefile.clang would take --target from ARCH alone (CLANG_TARGET_FLAGS_$(SRCARCH));
        # before that table it read --target only from CROSS_COMPILE ("ifneq ($(CROSS_COMPILE),)"), and
        # under LLVM_IAS=0 clang finds GNU as by $(CROSS_COMPILE) (--prefix=): the triplet serves all
        if triplet:
            make_vars.append("CROSS_COMPILE=%s-" % triplet)
    else:
        # the selected gcc's own prefix (aarch64-linux-gnu-gcc-12 -> aarch64-linux-gnu-): its binutils
        # sit beside it, and toolset_env puts its folder first on PATH when that is not /usr/bin
        m = re.match(r"^(.+-)(?:gcc|cc)(?:-[\d.]+)?$", compiler.program)
        prefix = m.group(1) if m else (triplet + "-" if triplet else "")
        if prefix:
            make_vars.append("CROSS_COMPILE=" + prefix)
    if make_vars:
        notes.append("kernel %s is %s and this machine %s: a cross build, make gets %s" % (
            target.release, target.arch, host, " ".join(make_vars)))
    return CrossSettings(tuple(make_vars), tuple(notes))


# binfmt_misc (Documentation/admin-guide/binfmt-misc.rst): each registered handler is a file
# /proc/sys/fs/binfmt_misc/NAME whose first line is "enabled" or "disabled", and the file "status"
# says whether the mechanism as a whole is; qemu-user-static/binfmt-support register qemu-NAME.
BINFMT_DIR = "/proc/sys/fs/binfmt_misc"


def runs_here(machine: Optional[Arch], host: Optional[Arch], binfmt: str = BINFMT_DIR) -> bool:
    """Whether a program of ``machine`` can run on this ``host``: the same machine, 32-bit x86 on
    64-bit x86, or an enabled qemu-user handler registered in binfmt_misc."""
    if machine is None or host is None or same_machine(machine, host):
        return True
    if machine is Arch.I686 and host is Arch.X86_64:
        return True
    for name in ("status", "qemu-" + machine.traits.qemu):
        try:
            data = bounded.read_file(os.path.join(binfmt, name), 64 * 1024, "a binfmt_misc entry")
            first = data.decode("ascii", errors="replace").split("\n", 1)[0].strip()
        except (OSError, BadInput):
            return False
        if first != "enabled":
            return False
    return True
