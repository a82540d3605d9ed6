"""The toolchain preflight: every tool kbuild will run for an external module, checked before the first compile.

A compiler that matches is not enough. kbuild also runs the tree's host programs (fixdep on every
object, modpost on the module, objtool where the kernel validates stacks), loads the kernel's gcc
plugins into every compile, links with $(LD), and with module BTF runs pahole against the kernel's
BTF. Each of those fails halfway through a build, or worse at load, when it does not fit: objtool
missing from a headers package, "incompatible gcc/plugin versions", a pahole newer than the one the
kernel's BTF was made with. Each is visible before make starts, so `make` stops here (exit 16) and
`kbuildguard doctor` lists them, one line each, with the package that fixes it (catalogue.json "tools").

Checks, in order:

  linker        the kernel's linker (compile.h, CONFIG_LD_VERSION / CONFIG_LLD_VERSION) vs the one
                $(LD) will be: family (GNU ld, LLD), and X.Y: older stops, newer is a warning
  llvm-tools    clang builds: ld.lld, llvm-objcopy, llvm-strip of the selected clang's LLVM major
  host-program  scripts/basic/fixdep, scripts/mod/modpost, tools/objtool/objtool (CONFIG_OBJTOOL /
                CONFIG_STACK_VALIDATION): present and runnable on this machine
  gcc-plugin    scripts/gcc-plugins/*.so (CONFIG_GCC_PLUGINS): loaded by the selected gcc (a trial compile)
  pahole        CONFIG_PAHOLE_VERSION, when module BTF will be generated (CONFIG_DEBUG_INFO_BTF_MODULES
                and a base: the tree's vmlinux, or --btf)
  rustc         CONFIG_RUSTC_VERSION_TEXT where the kernel has Rust (fatal for a module with .rs sources)
  module-btf    a note: what kbuild will do about module BTF
"""

import glob
import os
import re
from typing import List, Mapping, NamedTuple, Optional, Tuple

from kbuildguard import bounded
from kbuildguard.arch import Arch
from kbuildguard.build.modbtf import BtfBase, choose_base
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.errors import BadInput, ToolchainUnfit, ToolNotFound
from kbuildguard.formats.elf import Elf
from kbuildguard.identity import Family, Linker
from kbuildguard.run import CommandFailed, Runner, quote
from kbuildguard.strenum import StrEnum
from kbuildguard.target.kernel import KernelTarget, ToolRecords, tool_records
from kbuildguard.toolchain import (
    BINFMT_DIR,
    Compiler,
    LlvmSettings,
    host_arch,
    identify_linker,
    linker_program,
    llvm_settings,
    runs_here,
    toolset_env,
)
from kbuildguard.versions import release_tuple


class Check(StrEnum):
    LINKER = "linker"
    LLVM_TOOLS = "llvm-tools"
    HOST_PROGRAM = "host-program"
    GCC_PLUGIN = "gcc-plugin"
    PAHOLE = "pahole"
    RUSTC = "rustc"
    MODULE_BTF = "module-btf"


class Status(StrEnum):
    OK = "ok"
    FAIL = "fail"  # stops make
    WARN = "warn"  # said, does not stop make
    NOTE = "note"


class Finding(NamedTuple):
    check: Check
    subject: str  # "objtool", "ld.lld-16", "scripts/gcc-plugins/stackleak_plugin.so"
    status: Status
    message: str  # one line: expected / found / why
    packages: Tuple[str, ...]  # what fixes it here, from the catalogue ("" when unknown or not needed)

    def line(self) -> str:
        fix = " (fix: install %s)" % " ".join(self.packages) if self.packages and self.status is Status.FAIL else ""
        return "%s: %s%s" % (self.subject, self.message, fix)


class Preflight(NamedTuple):
    target: KernelTarget
    compiler: Compiler
    records: ToolRecords
    llvm: LlvmSettings
    btf_base: Optional[BtfBase]  # module BTF's base when --btf asked for it (or the tree's own vmlinux)
    findings: Tuple[Finding, ...]

    def failures(self) -> List[Finding]:
        return [f for f in self.findings if f.status is Status.FAIL]


# A program that starts at all: the shell's 126 (cannot execute) and 127 (not found; also the
# dynamic loader's "error while loading shared libraries") are the only statuses that say it does not.
# objtool and fixdep answer no arguments with usage and 129 / 1.
STARTED = tuple(c for c in range(256) if c not in (126, 127))


def _packages(target: KernelTarget, tool: str, major: str = "") -> Tuple[str, ...]:
    """The package(s) that provide ``tool`` on the target's distribution, from catalogue.json "tools"."""
    from kbuildguard.provision.plan import Distro, detect_distro, distribution_for, packaged_catalogue

    try:
        distro: Distro = detect_distro(target.sysroot)
    except Exception:  # noqa: BLE001 - a missing or odd os-release only costs the package name
        return ()
    catalogue = packaged_catalogue()
    entry = distribution_for(distro, catalogue)
    names = catalogue.tools.packages(tool, (distro.id,) + distro.like, entry.manager if entry is not None else "")
    series = ".".join(target.release.split(".")[:2])
    return tuple(n.format(N=major, release=target.release, series=series) for n in names if major or "{N}" not in n)


def _same(expected: str, found: str, parts: int) -> bool:
    a, b = list(release_tuple(expected)), list(release_tuple(found))
    a += [0] * (parts - len(a))
    b += [0] * (parts - len(b))
    return a[:parts] == b[:parts]


def _linker_family(linker: Linker) -> str:
    return "LLD" if "LLD" in linker.name or linker.name == "ld.lld" else linker.name


def check_linker(runner: Runner, target: KernelTarget, compiler: Compiler, llvm: LlvmSettings,
                 env: Mapping[str, str], parts: int) -> List[Finding]:
    program = linker_program(compiler, llvm, env)
    expected = target.linker
    tool = "lld" if program.startswith("ld.lld") else "gnu_ld"
    major = compiler.version.split(".")[0] if tool == "lld" else ""
    if expected is None:
        return [Finding(Check.LINKER, program, Status.NOTE, "the kernel records no linker (no compile.h, no "
                        "CONFIG_LD_VERSION): not compared", ())]
    try:
        found = identify_linker(runner, program, env)
    except (ToolNotFound, BadInput) as exc:
        return [Finding(Check.LINKER, program, Status.FAIL, "kbuild links with %s, which %s; the kernel was linked by %s"
                        % (program, "is not on PATH" if isinstance(exc, ToolNotFound) else "does not work (%s)" % exc.message,
                           expected.describe()), _packages(target, tool, major))]
    if _linker_family(found) != _linker_family(expected):
        return [Finding(Check.LINKER, program, Status.FAIL, "is %s, but the kernel was linked by %s: build with the "
                        "kernel's toolchain (%s)" % (found.describe(), expected.describe(),
                                                     "clang and LLVM=" if _linker_family(expected) == "LLD" else "gcc and GNU ld"),
                        _packages(target, "lld" if _linker_family(expected) == "LLD" else "gnu_ld",
                                  expected.version.split(".")[0]))]
    if not _same(expected.version, found.version, parts):
        # An older linker may lack what the kernel's module.lds and flags rely on: stop. A newer GNU ld
        # links what an older one did (Debian 11's 5.10 with bookworm's binutils 2.40): say it, go on.
        # LLD is clang's own: another major is another LLVM, which the LLVM tools check refuses anyway.
        older = release_tuple(found.version) < release_tuple(expected.version)
        same_major = _same(expected.version, found.version, 1)
        status = Status.WARN if not older and (tool == "gnu_ld" or same_major) else Status.FAIL
        return [Finding(Check.LINKER, program, status, "is %s, the kernel was linked by %s (%s X.Y%s)" % (
            found.describe(), expected.describe(), "an older" if older else "a newer",
            "" if status is Status.FAIL else ": a newer linker links what the older did"), _packages(target, tool, major))]
    return [Finding(Check.LINKER, program, Status.OK, "%s, as the kernel's %s" % (found.describe(), expected.describe()), ())]


_LLVM_VERSION = re.compile(r"(?:LLVM version|LLD)\s+(\d+)\.")


def check_llvm_tools(runner: Runner, target: KernelTarget, compiler: Compiler, llvm: LlvmSettings,
                     env: Mapping[str, str]) -> List[Finding]:
    """ld.lld and the LLVM binutils kbuild's LLVM= names must be the selected clang's release:
    a module objcopy'd or stripped by another LLVM is what dkms #417 reports for LTO kernels."""
    if compiler.family is not Family.CLANG:
        return []
    major = compiler.version.split(".")[0]
    out: List[Finding] = []
    for base, tool in (("ld.lld", "lld"), ("llvm-objcopy", "llvm_binutils"), ("llvm-strip", "llvm_binutils")):
        program = base + llvm.suffix
        try:
            text = runner.probe([program, "--version"], env=env, remember=True).stdout
        except ToolNotFound:
            out.append(Finding(Check.LLVM_TOOLS, program, Status.FAIL, "not on PATH: kbuild's LLVM= calls it for clang %s"
                               % compiler.version, _packages(target, tool, major)))
            continue
        except CommandFailed as exc:
            out.append(Finding(Check.LLVM_TOOLS, program, Status.FAIL, "does not run: %s" % exc, _packages(target, tool, major)))
            continue
        m = _LLVM_VERSION.search(text)
        if m is None or m.group(1) != major:
            out.append(Finding(Check.LLVM_TOOLS, program, Status.FAIL, "is LLVM %s, clang is %s: use one LLVM release" % (
                m.group(1) if m else "unknown", compiler.version), _packages(target, tool, major)))
        else:
            out.append(Finding(Check.LLVM_TOOLS, program, Status.OK, "LLVM %s, as clang %s" % (m.group(1), compiler.version), ()))
    return out


RESOLVE_BTFIDS = "tools/bpf/resolve_btfids/resolve_btfids"


def host_programs(records: ToolRecords, module_btf: bool) -> List[str]:
    """The tree's programs kbuild runs for an external module (relative to the tree)."""
    progs = ["scripts/basic/fixdep", "scripts/mod/modpost"]
    if records.objtool:
        progs.append("tools/objtool/objtool")
    if module_btf:  # scripts/Makefile.modfinal: $(RESOLVE_BTFIDS) -b vmlinux $@, after pahole
        progs.append(RESOLVE_BTFIDS)
    return progs


# fixdep is ~20 KiB, modpost ~200 KiB, objtool ~3 MiB (with debug info more): bounds a hostile tree
HOST_PROGRAM_BYTES = 64 * 1024 * 1024


def program_machine(path: str) -> Optional[Arch]:
    """The machine an ELF program is for (formats/elf.py reads its e_machine); None when it is not
    an ELF file we can read (a script, a wrapper): then running it is what tells."""
    try:
        return Elf(bounded.read_file(path, HOST_PROGRAM_BYTES, "a host program"), path).arch
    except (OSError, BadInput):
        return None


def check_host_programs(runner: Runner, target: KernelTarget, records: ToolRecords, module_btf: bool,
                        host: Optional[Arch] = None, binfmt: str = BINFMT_DIR) -> List[Finding]:
    assert target.build_dir is not None
    host = host if host is not None else host_arch()
    out: List[Finding] = []
    for rel in host_programs(records, module_btf):
        path = os.path.join(target.build_dir, rel)
        name = os.path.basename(rel)
        tool = "resolve_btfids" if rel == RESOLVE_BTFIDS else "host_programs"
        why = {"objtool": " (the kernel has CONFIG_OBJTOOL: kbuild runs it on every object)",
               "resolve_btfids": " (kbuild runs it on every module after pahole for module BTF; a tree without it "
                                 "cannot make module BTF: build without --btf, 'Skipping BTF generation' is harmless)",
               }.get(name, "")
        if not os.path.isfile(path):
            out.append(Finding(Check.HOST_PROGRAM, name, Status.FAIL, "%s is missing%s" % (path, why),
                               _packages(target, tool)))
            continue
        machine = program_machine(path)
        if not runs_here(machine, host, binfmt):
            # issue 22: an arm64 root's own linux-kbuild on an amd64 host; make would stop at the first
            # object with "fixdep: cannot execute binary file: Exec format error"
            out.append(Finding(Check.HOST_PROGRAM, name, Status.FAIL, "%s is a program for %s and this machine is %s, with no "
                               "binfmt_misc handler for %s in %s: kbuild runs it for every module; install "
                               "qemu-user-static and binfmt-support, or use a build tree prepared for %s (its "
                               "linux-kbuild package of this machine)" % (path, machine, host, machine, binfmt, host), ()))
            continue
        try:
            runner.probe([path], ok_returncodes=STARTED, timeout=30, remember=True)
        except (ToolNotFound, CommandFailed) as exc:
            detail = exc.message if isinstance(exc, ToolNotFound) else (
                exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else "status %d" % exc.returncode)
            out.append(Finding(Check.HOST_PROGRAM, name, Status.FAIL, "%s does not run on this machine: %s" % (path, detail),
                               _packages(target, tool)))
            continue
        out.append(Finding(Check.HOST_PROGRAM, name, Status.OK, "%s runs" % path, ()))
    return out


def check_gcc_plugins(runner: Runner, target: KernelTarget, compiler: Compiler, records: ToolRecords,
                      env: Mapping[str, str]) -> List[Finding]:
    """Each plugin in a trial compile of an empty file: gcc refuses a plugin built for another gcc
    ("incompatible gcc/plugin versions", plugin_default_version_check) before compiling anything."""
    if not records.gcc_plugins or compiler.family is not Family.GCC:
        return []
    assert target.build_dir is not None
    major = compiler.version.split(".")[0]
    plugins = sorted(glob.glob(os.path.join(target.build_dir, "scripts/gcc-plugins/*.so")))
    if not plugins:
        return [Finding(Check.GCC_PLUGIN, "scripts/gcc-plugins", Status.FAIL, "the kernel has CONFIG_GCC_PLUGINS, but %s "
                        "holds no plugin (*.so): kbuild passes -fplugin= to every compile"
                        % os.path.join(target.build_dir, "scripts/gcc-plugins"), _packages(target, "host_programs"))]
    out: List[Finding] = []
    for plugin in plugins:
        name = "scripts/gcc-plugins/" + os.path.basename(plugin)
        argv = [compiler.path, "-fplugin=" + plugin, "-x", "c", "-c", "-o", os.devnull, os.devnull]
        try:
            runner.probe(argv, env=env, timeout=60)
        except (ToolNotFound, CommandFailed) as exc:
            lines = (exc.stderr if isinstance(exc, CommandFailed) else exc.message).strip().splitlines()
            detail = next((line for line in lines if "incompatible" in line), lines[0] if lines else "failed")
            out.append(Finding(Check.GCC_PLUGIN, name, Status.FAIL, "%s cannot load it: %s (built for another gcc: "
                               "use the kernel's compiler, or rebuild the tree's plugins with %s)" % (
                                   compiler.program, detail.strip(), quote(["make", "-C", target.build_dir, "scripts_gcc_plugins"])),
                               _packages(target, "gcc_plugins", major)))
            continue
        out.append(Finding(Check.GCC_PLUGIN, name, Status.OK, "%s loads it" % compiler.program, ()))
    return out


def check_pahole(runner: Runner, target: KernelTarget, records: ToolRecords, btf_base: Optional[BtfBase],
                 env: Mapping[str, str]) -> List[Finding]:
    if not records.module_btf or btf_base is None:
        return []
    packages = _packages(target, "pahole")
    try:
        text = runner.probe(["pahole", "--version"], env=env, remember=True).stdout.strip()
    except ToolNotFound:
        return [Finding(Check.PAHOLE, "pahole", Status.FAIL, "not on PATH: kbuild runs it on every module for module BTF "
                        "(CONFIG_DEBUG_INFO_BTF_MODULES, base %s)" % btf_base.source, packages)]
    except CommandFailed as exc:
        return [Finding(Check.PAHOLE, "pahole", Status.FAIL, "does not run: %s" % exc, packages)]
    m = re.search(r"v?(\d+)\.(\d+)", text)
    if m is None:
        return [Finding(Check.PAHOLE, "pahole", Status.FAIL, "pahole --version printed %r" % text[:60], packages)]
    found = (int(m.group(1)), int(m.group(2)))
    if records.pahole is None:
        return [Finding(Check.PAHOLE, "pahole", Status.WARN, "%d.%d; the kernel records no CONFIG_PAHOLE_VERSION: "
                        "not compared" % found, ())]
    if found != records.pahole:
        return [Finding(Check.PAHOLE, "pahole", Status.FAIL, "is %d.%d, the kernel's BTF was made by pahole %d.%d "
                        "(CONFIG_PAHOLE_VERSION=%d%02d): module BTF from another pahole may not load" % (
                            found + records.pahole + records.pahole), packages)]
    return [Finding(Check.PAHOLE, "pahole", Status.OK, "%d.%d, as CONFIG_PAHOLE_VERSION" % found, ())]


def check_rustc(runner: Runner, target: KernelTarget, records: ToolRecords, env: Mapping[str, str],
                rust_sources: bool) -> List[Finding]:
    if not records.rustc_text:
        return []
    want = re.search(r"(\d+\.\d+\.\d+)", records.rustc_text)
    bad = Status.FAIL if rust_sources else Status.WARN
    packages = _packages(target, "rustc")
    try:
        text = runner.probe(["rustc", "--version"], env=env).stdout.strip()
    except (ToolNotFound, CommandFailed):
        return [Finding(Check.RUSTC, "rustc", bad, "not found; the kernel was built with Rust by %s%s" % (
            records.rustc_text, "" if rust_sources else " (only a module with .rs sources needs it)"), packages)]
    got = re.search(r"(\d+\.\d+\.\d+)", text)
    if want and got and want.group(1) != got.group(1):
        return [Finding(Check.RUSTC, "rustc", bad, "is %s, the kernel's Rust was built by %s (CONFIG_RUSTC_VERSION_TEXT)" % (
            got.group(1), records.rustc_text), packages)]
    return [Finding(Check.RUSTC, "rustc", Status.OK, "%s, as CONFIG_RUSTC_VERSION_TEXT" % text, ())]


def module_btf_note(target: KernelTarget, records: ToolRecords, btf_base: Optional[BtfBase]) -> List[Finding]:
    if not records.module_btf:
        return []
    if btf_base is None:
        return [Finding(Check.MODULE_BTF, "module BTF", Status.NOTE, "not generated: kbuild will print 'Skipping BTF "
                        "generation ... due to unavailability of vmlinux', which is harmless (the module loads, without "
                        "BTF); --btf generates it against kernel %s's own BTF" % target.release, ())]
    return [Finding(Check.MODULE_BTF, "module BTF", Status.OK, "generated against %s" % btf_base.source, ())]


def _has_rust(folder: Optional[str]) -> bool:
    if not folder or not os.path.isdir(folder):
        return False
    for _root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(f.endswith(".rs") for f in files):
            return True
    return False


def run(ctx: Context, target: KernelTarget, compiler: Compiler, btf: bool = False, vmlinux: Optional[str] = None,
        module_dir: Optional[str] = None, parts: int = 2) -> Preflight:
    """Every check; nothing raised for a failed one (``enforce`` does): doctor shows them all.

    ``btf``: module BTF was asked for (--btf), so a base must be found (NoBtfBase otherwise). Without
    it the tree's own vmlinux, when there is one, is what kbuild uses anyway.
    """
    assert target.build_dir is not None
    records = tool_records(target.tree_config)
    llvm = llvm_settings(target, compiler, records.assembler)
    env = toolset_env(compiler, ctx.env)
    base: Optional[BtfBase] = None
    if records.module_btf:
        if btf:
            base = choose_base(target, vmlinux)
        elif os.path.isfile(os.path.join(target.build_dir, "vmlinux")):
            base = BtfBase(os.path.join(target.build_dir, "vmlinux"), "the build tree's own vmlinux", True)
    findings: List[Finding] = []
    findings += check_linker(ctx.runner, target, compiler, llvm, env, parts)
    findings += check_llvm_tools(ctx.runner, target, compiler, llvm, env)
    findings += check_host_programs(ctx.runner, target, records, records.module_btf and base is not None)
    findings += check_gcc_plugins(ctx.runner, target, compiler, records, env)
    findings += check_pahole(ctx.runner, target, records, base, env)
    findings += check_rustc(ctx.runner, target, records, env, _has_rust(module_dir))
    findings += module_btf_note(target, records, base)
    return Preflight(target=target, compiler=compiler, records=records, llvm=llvm, btf_base=base, findings=tuple(findings))


def enforce(result: Preflight) -> None:
    """Stop before make when a check failed: one line each, the packages that fix them in the hint."""
    failed = result.failures()
    if not failed:
        return
    packages: List[str] = []
    for f in failed:
        packages.extend(p for p in f.packages if p not in packages)
    first = printable(failed[0].line())
    message = first if len(failed) == 1 else "%d tools kbuild runs do not fit kernel %s (first: %s)" % (
        len(failed), result.target.release, first)
    hint = ("install %s, then run again; `kbuildguard doctor` lists every check" % " ".join(packages) if packages
            else "`kbuildguard doctor` lists every check")
    raise ToolchainUnfit(message, hint=hint, details=[f.line() for f in failed] if len(failed) > 1 else [])


def as_json(result: Preflight) -> dict:
    return {
        "llvm": list(result.llvm.make_vars),
        "btf_base": None if result.btf_base is None else {"path": result.btf_base.path, "source": result.btf_base.source},
        "checks": [{"check": str(f.check), "subject": f.subject, "status": str(f.status), "message": f.message,
                    "packages": list(f.packages)} for f in result.findings],
    }


def say(ctx: Context, result: Preflight) -> None:
    """make's console: warnings and notes (failures come as the error); every line in the log."""
    for f in result.findings:
        if f.status is Status.WARN:
            ctx.console.warn(printable(f.line()))
        elif f.status is Status.NOTE:
            ctx.console.info("note: " + printable(f.line()))
        else:
            ctx.console.debug("preflight %s: %s" % (f.status, printable(f.line())))
