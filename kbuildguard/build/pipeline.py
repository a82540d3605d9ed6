"""``kbuildguard make``: the guarded build, for one kernel or many, as named stages.

    prepare   resolve the target kernel, compare its tree's configuration (drift), choose the
              compiler (or install it), find the kernel's struct module layout -- each once
    plan      render Kbuild/Makefile, the staging folder, the make command (all a dry run prints)
    build     mirror the sources into staging, run kbuild there
    verify    hold every produced .ko to the Expectation
    settle    place verified modules in the folder, quarantine the rest, write the report

For ``--kernel all`` (or R1,R2) each kernel is built on its own, with its own compiler and staging
folder; verified modules go to ``MODULE_DIR/kbuildguard-out/RELEASE/``; one failing kernel does not
stop the others, a signal does; a summary table closes the run.
"""

import datetime
import os
import re
import threading
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import __version__, report, toolchain
from kbuildguard.build import kbuild, modsign, outputs, preflight, render
from kbuildguard.cireport import KernelResult, ModuleResult
from kbuildguard.console import one_line, printable
from kbuildguard.context import Context
from kbuildguard.errors import (
    BadInput,
    BuildFailed,
    CannotWrite,
    ConfigError,
    ForcedCompilerMismatch,
    HeaderDrift,
    Interrupted,
    KbgError,
    ModuleRejected,
    NoMatchingCompiler,
    Stopped,
    UsageError,
)
from kbuildguard.formats.module import read_module
from kbuildguard.gates import loader
from kbuildguard.gates.expectation import expect as build_expectation
from kbuildguard.gates.model import Gate
from kbuildguard.gates.pool import verify_paths
from kbuildguard.gates.verify import Expectation, ModuleReport, Verdict, fix_hint, headline
from kbuildguard.probecache import cache_home
from kbuildguard.project import Project
from kbuildguard.settings import Settings
from kbuildguard.target import exports, kconfig, kernel
from kbuildguard.target.drift import Drift, compare
from kbuildguard.target.kernel import KernelTarget, Selector
from kbuildguard.toolchain import Forced, MatchLevel, Selection

# make arguments after -- that would send kbuild's outputs somewhere kbuildguard does not watch.
OUTPUT_REDIRECTS = ("M=", "KBUILD_EXTMOD=", "MO=", "KBUILD_EXTMOD_OUTPUT=", "O=", "KBUILD_OUTPUT=", "SUBDIRS=")
# make options that only change how make schedules and prints: anything else (-n, -t, -q, -W, -o,
# -f, -C, -e, --eval ...) could leave a .ko that this run did not build, or build something else.
MAKE_OPTIONS = re.compile(r"^(-j\d*|--jobs(=\d+)?|-l[\d.]*|--load-average(=[\d.]+)?|-k|--keep-going|-s|--silent|--quiet|"
                          r"-w|--print-directory|--no-print-directory|-O\w*|--output-sync(=\w+)?)$")


# Variables that are make's own: assigned after -- in any form (MAKEFLAGS=-n, MAKEFLAGS+=n,
# MAKEFLAGS:=-sn, GNUMAKEFLAGS=--just-print), make re-reads its options from them after parsing
# the makefiles (GNU make 4.3 main.c: decode_env_switches on MAKEFLAGS/GNUMAKEFLAGS) and hands
# them to every sub-make; MAKE= and MAKEOVERRIDES= reach the sub-makes too ("MAKE=make -n"). Under
# -n/-t/-q kbuild's "+" recipes still link a .ko from the previous run's objects (scripts/
# Makefile.modfinal), so the module would not be this source's. MFLAGS is ignored on input by
# GNU make, refused all the same: nothing after -- needs it. MAKEFILES names makefiles read before
# kbuild's own (one may say MAKEFLAGS += n), and kbuild decides what to do by MAKECMDGOALS.
MAKE_OWN_VARIABLES = ("MAKEFLAGS", "GNUMAKEFLAGS", "MFLAGS", "MAKEOVERRIDES", "MAKE", "MAKEFILES", "MAKECMDGOALS")
# make's assignment operators (=, :=, ::=, :::= since 4.4, +=, ?=, !=): the name is what precedes them
_ASSIGNMENT = re.compile(r"^(?P<name>[^=]*?)\s*(:::=|::=|:=|\+=|\?=|!=|=)")
# A plain variable name; make expands a name ("MAKE$(E)FLAGS=-n" assigns MAKEFLAGS) and a command
# line "override X=" is not a directive but a goal named so: neither is a variable kbuildguard can check.
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def assigned_variable(arg: str) -> Optional[str]:
    """The variable a make argument assigns (``MAKEFLAGS+=-n`` -> ``MAKEFLAGS``), None for no assignment."""
    m = _ASSIGNMENT.match(arg)
    return m.group("name").strip() if m else None


class Request(NamedTuple):
    module_dir: str
    goal: str  # modules, clean, modules_install
    make_args: Tuple[str, ...]
    level: MatchLevel
    forced: Optional[Forced]
    install: bool
    yes: bool
    dry_run: bool
    allow_mismatch: bool
    vmlinux: Optional[str]
    kernel_config: Optional[str]
    scl_root: str
    settings: Settings  # every value with its origin, for the plan and the report
    log_path: str  # the complete log: kbuildguard's steps, make's and the compiler's output
    btf: bool = False  # --btf: module BTF against the target's own BTF (modbtf.py)
    sign: bool = False  # --sign: sign the verified modules (modsign.py), then verify them again
    sig_enforce: Optional[bool] = None  # --sig-enforce: the target's signature enforcement, stated
    trusted_certs: Tuple[str, ...] = ()  # --trusted-cert: certificates the kernel trusts (an enrolled MOK)


class Outcome(NamedTuple):
    release: str
    compiler: str  # the chosen compiler, described, or ""
    modules: Tuple[str, ...]  # where the verified modules are
    exit_code: int
    message: str  # "ok", or the error's one line


class Prepared(NamedTuple):
    target: KernelTarget
    drift: Optional[Drift]
    selection: Selection
    expect: Expectation
    checked: Optional[preflight.Preflight] = None  # the toolchain preflight (issue 14)


class Plan(NamedTuple):
    files: Tuple[render.RenderedFile, ...]
    stage: str
    command: kbuild.MakeCommand


def check_make_args(make_args: Sequence[str]) -> None:
    """After --: variables (V=1, INSTALL_MOD_PATH=, KCFLAGS=) and make's scheduling options; never a
    goal (modules_install would install before verification) nor an output folder."""
    for arg in make_args:
        name = assigned_variable(arg) if not arg.startswith("-") else None
        if name is not None and not _PLAIN_NAME.match(name):
            raise UsageError("%s after --: not a plain variable assignment (make would expand or misread the name %s); "
                             "write NAME=VALUE" % (printable(arg), printable(name or "(empty)")))
        if name in MAKE_OWN_VARIABLES:
            raise UsageError("%s= after --: %s is make's own; options in it (-n, -t, -q ...) would let make link a "
                             "module from the previous run's objects. Give make options after -- as options (-j4, -k)"
                             % (name, name))
        if arg.startswith(OUTPUT_REDIRECTS):
            raise UsageError("%s= after --: kbuildguard decides where kbuild builds (its staging folder), so that no "
                             "unverified module can land where a packager looks" % arg.split("=", 1)[0])
        if arg.startswith("-") and not MAKE_OPTIONS.match(arg):
            raise UsageError("%s after --: only make's -j, -l, -k, -s, -w and -O options are passed on; others could leave "
                             "a module this run did not build" % arg)
        if not arg.startswith("-") and "=" not in arg:
            raise UsageError("%r after --: make goals go before -- (kbuildguard make %s), so that nothing is installed "
                             "before it is verified" % (arg, arg))


def check_install_strip(req: Request, env: Mapping[str, str]) -> None:
    """--sign with INSTALL_MOD_STRIP: refused before anything starts. kbuild strips each module after
    copying it (scripts/Makefile.modinst: install, strip, then its own sign), and strip drops the
    signature appended after the ELF: the installed copy would be unsigned, refused by an enforcing kernel."""
    if not (req.sign and req.goal == "modules_install"):
        return
    value = kbuild.make_variable("INSTALL_MOD_STRIP", req.make_args, env)
    if value:
        where = "after --" if any(kbuild.assigns(a, "INSTALL_MOD_STRIP") for a in req.make_args) else "in the environment"
        raise UsageError("INSTALL_MOD_STRIP=%s %s with --sign: kbuild strips the installed copies after kbuildguard signed "
                         "them, which removes the signature; install without INSTALL_MOD_STRIP, or strip and install "
                         "without --sign, then sign the installed files with `kbuildguard sign`" % (printable(value), where))


# -- prepare ----------------------------------------------------------------------------------

def resolve_target(ctx: Context, selector: Selector) -> KernelTarget:
    with ctx.console.step("resolve target kernel"):
        target = kernel.resolve(selector)
    if target.build_dir is None:
        raise kernel.missing_tree_error(target.release, target.sysroot, target.running)
    for note in target.notes:
        ctx.console.warn(printable(note))
    return target


def kernel_config(target: KernelTarget, req: Request) -> Optional[kconfig.KernelConfig]:
    """The kernel's own configuration, read once: compared with the tree (check_drift) and given to
    the loader's gates. One that cannot be read stops make where there is a tree to compare it with;
    without one the loader's gates fall back to what they can see."""
    return kconfig.read_kernel(target.release, target.sysroot, target.running, req.kernel_config) if target.tree_config else None


def check_drift(ctx: Context, target: KernelTarget, req: Request, config: Optional[kconfig.KernelConfig]) -> Optional[Drift]:
    if req.kernel_config:
        kconfig.read_named(req.kernel_config, target.arch, target.release)  # another architecture's: refused (issue 22)
    found = compare(config, target.tree_config)
    if found is not None and found.abi:
        message = "the build tree %s is configured differently from kernel %s in options that change struct module: %s" % (
            target.build_dir, target.release, found.describe())
        if not req.allow_mismatch:
            raise HeaderDrift(message, hint="rebuild or reinstall the build tree from the kernel's own configuration (%s); "
                                            "a module built against it would not match the kernel" % found.kernel_config,
                              details=["%d other option(s) differ too" % found.other] if found.other else [])
        ctx.console.warn(message)
    elif found is not None and found.other:
        ctx.console.warn("the build tree's .config differs from %s in %d option(s), none of them in struct module"
                         % (found.kernel_config, found.other))
    return found


def _install_hint(target: KernelTarget) -> str:
    from kbuildguard.provision import install_hint  # the catalogue is read only on this error path

    return install_hint(target)


def no_match_error(target: KernelTarget, selection: Selection) -> NoMatchingCompiler:
    details = ["%s: %s" % (c.path, c.reason) for c in selection.candidates]
    return NoMatchingCompiler(
        "no local compiler matches the kernel's %s (%s, match level %s)" % (
            target.compiler.describe(), target.compiler_source, selection.level),
        hint=_install_hint(target), details=details or ["no gcc or clang found on PATH or under /opt/rh"])


def refuse_forced(target: KernelTarget, selection: Selection) -> ForcedCompilerMismatch:
    c = selection.candidates[0]
    found = c.compiler.identity.describe() if c.compiler else "unidentified"
    return ForcedCompilerMismatch(
        "%s (%s) is %s, but kernel %s was built by %s: refused before building" % (
            c.path, c.origin, found, target.release, target.compiler.describe()),
        hint="drop %s and let kbuildguard choose, or use a compiler that is %s" % (c.origin, target.compiler.describe()),
        details=[c.reason])


def choose_compiler(ctx: Context, target: KernelTarget, req: Request) -> Selection:
    with ctx.console.step("select compiler for %s" % target.compiler.describe()):
        selection = toolchain.select(ctx.runner, target, req.level, ctx.env, forced=req.forced, opt_root=req.scl_root,
                                     first_match=True)
    for reason in toolchain.unanswered(selection):
        ctx.console.warn("compiler not considered: %s" % reason)
    if selection.selected is not None:
        return selection
    if req.goal == "clean":
        # `make clean` compiles nothing (kbuild's clean reads scripts/Makefile.clean; the top
        # Makefile sets need-compiler only for build goals), so it runs whatever the compiler:
        # DKMS runs MAKE[0]'s clean before and after every build ("Cleaning build area...") and
        # would otherwise report a failed clean for a compiler a build would refuse
        found = [c.compiler for c in selection.candidates if c.compiler is not None]
        if found:
            ctx.console.info("note: clean compiles nothing: run with %s, which does not match the kernel's %s (a build would "
                             "be refused)" % (found[0].describe(), target.compiler.describe()))
            return selection._replace(selected=found[0])
    if req.forced is None:
        if req.install:
            from kbuildguard.provision import install_and_reselect  # only when installing

            return install_and_reselect(ctx, target, req.level, yes=req.yes, dry_run=req.dry_run, scl_root=req.scl_root)
        error = no_match_error(target, selection)
        from kbuildguard.provision import cross_hint, detect_distro  # only on this error path

        # a kernel of another machine: the cross compiler, not the catalogue's native gcc-N (issue 22)
        error.hint = cross_hint(ctx.runner, target, toolchain.host_arch(), detect_distro("/"), ctx.env) or error.hint
        raise error
    if not req.allow_mismatch:
        raise refuse_forced(target, selection)
    c = selection.candidates[0]
    if c.compiler is None:
        raise ForcedCompilerMismatch("%s: %s" % (c.path, c.reason))
    ctx.console.warn("--allow-mismatch: building with %s although the kernel was built by %s" % (
        c.compiler.describe(), target.compiler.describe()))
    return selection._replace(selected=c.compiler)


def expectation(ctx: Context, target: KernelTarget, req: Request, drift: Optional[Drift],
                config: Optional[kconfig.KernelConfig]) -> Expectation:
    """What the modules will be held to. Says nothing: it may run beside make (build_one); the caller
    warns when the layout cannot be compared (warn_not_compared)."""
    facts = loader.gather(target, exports.extra_from_make_args(req.make_args, ctx.env), sig_enforce=req.sig_enforce,
                          trusted_certs=req.trusted_certs, config_file=req.kernel_config,
                          read=config.values if config is not None else None, env=ctx.env)
    if req.btf:  # modbtf gives kbuild's pahole the target's own BTF as base: what the kernel validates against
        facts = facts._replace(btf=facts.btf._replace(same_base=True))
    # sign_later: unsigned modules pass this first verification; with --sign the signed copies are
    # held to the signature gate afterwards (_sign)
    return build_expectation(target, req.level, facts, vmlinux=req.vmlinux, cache_dir=cache_home(ctx.env),
                             drift=drift, sign_later=True)


def warn_not_compared(ctx: Context, expect: Expectation) -> Expectation:
    if expect.reference is None:
        ctx.console.warn("layout not compared: %s" % expect.not_compared)
    return expect


class Started(NamedTuple):
    """What prepare() knows before the Expectation: enough to plan and run make."""
    target: KernelTarget
    drift: Optional[Drift]
    selection: Selection
    checked: Optional[preflight.Preflight]
    config: Optional[kconfig.KernelConfig]


def start(ctx: Context, req: Request, selector: Selector) -> Started:
    target = resolve_target(ctx, selector)
    config = kernel_config(target, req)
    drift = check_drift(ctx, target, req, config)
    selection = choose_compiler(ctx, target, req)
    # -- issue 14: the toolchain preflight, once the compiler is chosen and before the first compile
    # (kbuild's clean runs none of the tools it checks)
    assert selection.selected is not None
    checked = None
    if req.goal != "clean":
        with ctx.console.step("toolchain preflight"):
            checked = preflight.run(ctx, target, selection.selected, btf=req.btf, vmlinux=req.vmlinux,
                                    module_dir=req.module_dir, parts=1 if req.level is MatchLevel.MAJOR else 2)
        preflight.say(ctx, checked)
        preflight.enforce(checked)
    # -- end of issue 14
    return Started(target, drift, selection, checked, config)


def finish(started: Started, expect: Expectation) -> Prepared:
    return Prepared(started.target, started.drift, started.selection, expect, started.checked)


def prepare(ctx: Context, req: Request, selector: Selector) -> Prepared:
    started = start(ctx, req, selector)
    return finish(started, warn_not_compared(ctx, expectation(ctx, started.target, req, started.drift, started.config)))


class Beside:
    """The Expectation gathered on a thread while make runs (issue 20's wrapper row: reading the
    kernel's Module.symvers, configuration, vermagic and layout is a fifth of kbuildguard's own time
    on a small module, and make leaves a core idle: kbuild's modules goal runs one job unless -j).
    Its result, or its exception, is taken in the calling thread after make; a daemon thread, so a
    signal that ends kbuildguard never waits for it. Nothing is placed before result() returned."""

    def __init__(self, ctx: Context, req: Request, started: Started):
        self._value: List[Expectation] = []
        self._failure: List[BaseException] = []

        def work() -> None:
            try:
                self._value.append(expectation(ctx, started.target, req, started.drift, started.config))
            except BaseException as exc:  # handed to the calling thread by result()
                self._failure.append(exc)

        self._thread = threading.Thread(target=work, daemon=True)
        self._thread.start()

    def result(self) -> Expectation:
        self._thread.join()
        if self._failure:
            raise self._failure[0]
        return self._value[0]


# -- plan -------------------------------------------------------------------------------------

def plan(ctx: Context, proj: Project, req: Request, prepared: Started) -> Plan:
    files = render.render(proj)
    missing = render.missing_sources(proj)
    if missing:
        raise ConfigError("%s names file(s) that do not exist: %s" % (proj.config_path, ", ".join(missing)))
    if not proj.modules and not any(os.path.exists(os.path.join(req.module_dir, n)) for n in ("Kbuild", "Makefile")):
        if proj.config_path:  # issue 22: an empty file is not a missing one
            raise ConfigError("%s declares no module (no [[module]] table) and %s has no Kbuild or Makefile: nothing "
                              "to build" % (printable(proj.config_path), printable(req.module_dir)),
                              hint="declare one: [[module]] name = \"NAME\" (sources default to NAME.c); "
                                   "`kbuildguard init` writes an example")
        raise ConfigError("%s has no kbuildguard.toml, Kbuild or Makefile: nothing to build" % printable(req.module_dir),
                          hint="run `kbuildguard init` to create kbuildguard.toml and a module source")
    hand = [f.name for f in files if f.action == "kept (hand-written)"]
    if proj.modules and hand:  # issue 22: the declarations would otherwise be dropped without a word
        ctx.console.warn("%s: its [[module]] declarations are ignored: the hand-written %s builds this folder as it is "
                         "(kbuildguard generates Kbuild and Makefile only where neither is hand-written)"
                         % (printable(proj.config_path or ""), " and ".join(hand)))
    target = prepared.target
    assert target.build_dir is not None and prepared.selection.selected is not None
    root = outputs.stage_root(ctx.env, ctx.euid) if not req.dry_run else "STAGE_ROOT"
    stage = (outputs.stage_dir(root, req.module_dir, target.release, target.build_dir) if not req.dry_run
             else os.path.join(root, "(per module folder and kernel)"))
    command = kbuild.make_command(target, prepared.selection.selected, stage, "clean" if req.goal == "clean" else "modules",
                                  req.make_args, ctx.env, btf_base=prepared.checked.btf_base if prepared.checked else None)
    for note in command.notes:
        ctx.console.info("note: " + printable(note))
    if command.scrubbed:
        ctx.console.warn("not passed on to make from the environment (only -j, -l, -k, -s, -w and the job server are): %s"
                         % printable("; ".join(command.scrubbed)))
    return Plan(tuple(files), stage, command)


def print_plan(ctx: Context, req: Request, prepared: Prepared, p: Plan, signer: Optional[modsign.Signer] = None) -> None:
    target, selection = prepared.target, prepared.selection
    assert selection.selected is not None
    data: Dict[str, Any] = {
        "kernel": report.kernel_summary_json(target),
        "compiler": selection.selected.path,
        "settings": req.settings.as_json(),
        "files": [{"path": f.path, "action": f.action} for f in p.files],
        "make": p.command.argv,
        "env": {k: v for k, v in p.command.env.items() if ctx.env.get(k) != v and k != "PWD"},
        "layout_not_compared": prepared.expect.not_compared or None,
        "sign": modsign.describe(signer) if signer is not None else None,
    }
    if ctx.json:
        ctx.out_json(data)
        return
    ctx.out("kernel:   %s (%s)" % (target.release, printable(target.compiler.describe())))
    ctx.out("compiler: %s" % printable(selection.selected.describe()))
    for name, value in zip(req.settings._fields, req.settings):
        if value.value is not None and value.origin != "default":
            ctx.out("setting:  %s = %s (from %s)" % (name, printable(value.value), value.origin))
    for f in p.files:
        ctx.out("file:     %s (%s)" % (printable(f.path), f.action))
    ctx.out("make:     %s" % printable(" ".join(p.command.argv)))
    for k, v in data["env"].items():
        ctx.out("env:      %s=%s" % (k, printable(v)))
    if prepared.expect.not_compared:
        ctx.out("layout:   not compared: %s" % prepared.expect.not_compared)
    if signer is not None:
        ctx.out("sign:     %s" % printable(modsign.describe(signer)))


# -- build, verify, settle ----------------------------------------------------------------------

def _log_hint(ctx: Context) -> str:
    return " and complete in %s" % printable(ctx.console.log_path) if ctx.console.log_path else ""


def _verify(ctx: Context, p: Plan, expect: Expectation) -> List[ModuleReport]:
    listed = kbuild.ordered_modules(p.stage) or []
    produced = [path for path in listed if os.path.exists(path)]
    if not produced:
        raise BuildFailed("make succeeded but produced no module (modules.order lists %d, none exists)" % len(listed),
                          hint="does the Kbuild/Makefile declare obj-m? nothing was placed in the folder")
    with ctx.console.step("verify modules against %s %s" % (expect.target.release, expect.target.compiler.describe())):
        return verify_paths(produced, expect)


def _signer(ctx: Context, req: Request, prepared: Prepared) -> Optional[modsign.Signer]:
    """make --sign's key, sign-file and hash, found before building: a missing key fails fast."""
    if not req.sign or req.goal == "clean":
        return None
    target = prepared.target
    root = target.sysroot.rstrip("/") if target.sysroot not in ("", "/") else ""
    config = prepared.expect.loader.config if prepared.expect.loader else target.tree_config
    signer = modsign.prepare(target, config, req.settings, root, ctx.cwd)
    if prepared.expect.loader is not None and prepared.expect.loader.signing.module_sig is False:
        ctx.console.warn("kernel %s does not check module signatures (CONFIG_MODULE_SIG is not set): signing anyway"
                         % target.release)
    ctx.console.info("signing with %s" % printable(modsign.describe(signer)))
    return signer


def _sign(ctx: Context, signer: modsign.Signer, expect: Expectation, reports: List[ModuleReport]) -> List[ModuleReport]:
    """Sign the staged copies of the verified modules (only those), then verify them again: the
    signature gate must now find the signature and its signer, and openssl that it verifies."""
    verified = [r.path for r in reports if r.verdict is Verdict.OK]
    if not verified:
        return reports
    with ctx.console.step("sign %d module(s) with %s" % (len(verified), signer.hash)):
        modsign.sign(ctx.runner, signer, verified, ctx.env)
    with ctx.console.step("verify the signed modules"):
        again = modsign.verify_signed(ctx.runner, signer, verified, expect, ctx.env)
    by_path = {r.path: r for r in again}
    return [by_path.get(r.path, r) for r in reports]


def _destination(req: Request, p: Plan, staged: str, release: str, multi: bool) -> str:
    if multi:
        return os.path.join(req.module_dir, outputs.OUT_DIR, release, os.path.basename(staged))
    return os.path.join(req.module_dir, os.path.relpath(staged, p.stage))


def _settle(ctx: Context, req: Request, p: Plan, reports: List[ModuleReport], release: str,
            multi: bool) -> Tuple[List[Dict[str, Any]], List[str], List[str]]:
    """Place what passed, quarantine what did not. Returns (report entries, placed, quarantined)."""
    entries: List[Dict[str, Any]] = []
    placed: List[str] = []
    rejected: List[str] = []
    folder = os.path.join("rejected", release) if multi else "rejected"
    for rep in reports:
        entry = report.module_json(rep)
        if rep.verdict is Verdict.OK or req.allow_mismatch:
            dest = outputs.place(rep.path, _destination(req, p, rep.path, release, multi), release, req.module_dir)
            entry["path"] = dest
            entry["staged"] = rep.path
            placed.append(dest)
        else:
            dest = outputs.quarantine(rep.path, req.module_dir, folder, entry)
            entry["quarantined_to"] = dest
            rejected.append(dest)
        entries.append(entry)
    symvers = os.path.join(p.stage, "Module.symvers")
    if placed and not rejected and not multi and os.path.isfile(symvers):
        # other out-of-tree modules link against these exports (KBUILD_EXTRA_SYMBOLS)
        outputs.place(symvers, os.path.join(req.module_dir, "Module.symvers"), release, req.module_dir)
    return entries, placed, rejected


def _rejected(prepared: Prepared, reports: List[ModuleReport], quarantined: List[str]) -> ModuleRejected:
    target = prepared.target
    details: List[str] = []
    for rep, dest in zip([r for r in reports if r.failed()], quarantined):
        details.extend("%s: %s: %s" % (printable(os.path.basename(rep.path)), c.name, printable(c.message))
                       for c in rep.failed())
        details.append("moved to %s (report beside it)" % printable(dest))
    return ModuleRejected(
        "%d module(s) do not match kernel %s (built by %s)" % (len(quarantined), target.release, target.compiler.describe()),
        hint=fix_hint([c for r in reports for c in r.failed()]), details=details)


def _offenders(prepared: Prepared, reports: List[ModuleReport]) -> List[str]:
    """Name the objects that brought a foreign compiler in (a vendor's *.o_shipped), read before quarantine."""
    target, level = prepared.target, prepared.expect.level

    def foreign(compilers) -> str:
        return ", ".join(sorted({c.describe() for c in compilers if toolchain.mismatch_reason(target.compiler, c, level)}))

    lines: List[str] = []
    for rep in reports:
        if any(c.name is Gate.COMPILER for c in rep.failed()):
            lines.extend("%s: offending object %s" % (printable(os.path.basename(rep.path)), printable(line))
                         for line in kbuild.offending_objects(rep.path, foreign))
    return lines


def _blamed_sources(req: Request, p: Plan, prepared: Prepared, reports: List[ModuleReport]) -> Dict[str, Tuple[str, ...]]:
    """For the CI reports: the files of the module repository behind each object that brought a
    foreign compiler in (kbuild copies blob.o_shipped to blob.o, scripts/Makefile.lib's cmd_shipped),
    by module; read from staging before the module is quarantined."""
    target, level = prepared.target, prepared.expect.level
    out: Dict[str, Tuple[str, ...]] = {}
    for rep in reports:
        if not any(c.name is Gate.COMPILER for c in rep.failed()):
            continue
        files = []
        for obj in kbuild.module_objects(rep.path):
            try:
                compilers = read_module(obj).compilers
            except BadInput:
                continue
            rel = os.path.relpath(obj, p.stage)
            if rel.startswith(os.pardir) or not any(toolchain.mismatch_reason(target.compiler, c, level) for c in compilers):
                continue
            files.extend([src for src in (os.path.join(req.module_dir, rel + "_shipped"), os.path.join(req.module_dir, rel))
                          if os.path.isfile(src)][:1])
        out[rep.path] = tuple(files)
    return out


def _report_data(req: Request, prepared: Prepared, p: Plan, entries: List[Dict[str, Any]],
                 signer: Optional[modsign.Signer] = None) -> Dict[str, Any]:
    return {
        "kbuildguard": __version__,
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "settings": req.settings.as_json(),
        "kernel": report.kernel_json(prepared.target),
        "toolchain": dict(report.selection_json(prepared.selection),
                          why="matches the kernel's compiler at level %s" % prepared.selection.level),
        "make": p.command.argv,
        "staging": p.stage,
        "generated_files": [{"path": f.path, "action": f.action} for f in p.files],
        "override": {"allow_mismatch": req.allow_mismatch},
        "reference_layout": report.reference_json(prepared.expect.reference),
        "layout_not_compared": prepared.expect.not_compared or None,
        "signed_with": modsign.describe(signer) if signer is not None else None,
        "result": {"exit_code": ModuleRejected.exit_code if any("quarantined_to" in e for e in entries) else 0},
        "modules": entries,
    }


def _failure_report(req: Request, exc: KbgError) -> None:
    """A run that ended before verification says so in report.json: no module, and why."""
    outputs.write_json(os.path.join(outputs.state_dir(req.module_dir), "report.json"), {
        "kbuildguard": __version__,
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "settings": req.settings.as_json(),
        "result": {"exit_code": exc.exit_code, "error": exc.title, "message": exc.message},
        "modules": [],
    })


def build_one(ctx: Context, proj: Project, req: Request, selector: Selector, lock_fd: int, multi: bool = False,
              sink: Optional[List[KernelResult]] = None) -> Outcome:
    """One kernel. Raises KbgError on failure (build_many catches it per kernel). ``sink`` receives
    the kernel's verified modules for the CI reports (--junit, --sarif, --markdown)."""
    started = start(ctx, req, selector)
    target, compiler = started.target, started.selection.selected
    assert compiler is not None
    if req.dry_run or req.goal == "clean" or req.sign:  # the Expectation is needed before make
        prepared = finish(started, warn_not_compared(ctx, expectation(ctx, target, req, started.drift, started.config)))
        p = plan(ctx, proj, req, started)
        signer = _signer(ctx, req, prepared)
        if req.dry_run:
            print_plan(ctx, req, prepared, p, signer)
            return Outcome(target.release, compiler.describe(), (), 0, "dry run")
        _generate(ctx, p)
        outputs.mirror(req.module_dir, p.stage)
        if req.goal == "clean":
            kbuild.run_make(ctx.runner, p.command, _log_hint(ctx), pass_fds=(lock_fd,))
            return Outcome(target.release, compiler.describe(), (), 0, "cleaned")
        _make_modules(ctx, req, p, compiler.describe(), lock_fd)
    else:
        beside = Beside(ctx, req, started)
        p = plan(ctx, proj, req, started)
        signer = None
        _generate(ctx, p)
        outputs.mirror(req.module_dir, p.stage)
        _make_modules(ctx, req, p, compiler.describe(), lock_fd)
        prepared = finish(started, warn_not_compared(ctx, beside.result()))
    reports = _verify(ctx, p, prepared.expect)
    if signer is not None:
        reports = _sign(ctx, signer, prepared.expect, reports)
    offenders = _offenders(prepared, reports)
    blamed = _blamed_sources(req, p, prepared, reports) if sink is not None else {}
    entries, placed, rejected = _settle(ctx, req, p, reports, target.release, multi)
    report_path = os.path.join(outputs.state_dir(req.module_dir), "report-%s.json" % target.release if multi else "report.json")
    data = _report_data(req, prepared, p, entries, signer)
    outputs.write_json(report_path, data)
    if sink is not None:
        sink.append(KernelResult(kernel=target.release, modules=tuple(
            ModuleResult(e.get("quarantined_to") or e["path"], rep, blamed.get(rep.path, ()))
            for e, rep in zip(entries, reports))))
    _show(ctx, req, entries, reports, data, bool(rejected), multi)
    if rejected:
        exc = _rejected(prepared, reports, rejected)
        exc.details[:0] = offenders
        raise exc
    ctx.console.info("report: %s" % printable(report_path))
    if req.goal == "modules_install":
        _install(ctx, req, p, prepared, signer, [r.path for r in reports], (report_path, data), lock_fd, multi, sink)
    return Outcome(target.release, compiler.describe(), tuple(placed), 0, "ok")


def _generate(ctx: Context, p: Plan) -> None:
    render.write(p.files)
    for f in p.files:
        if f.action in ("create", "update"):
            ctx.console.info("%s %s" % ("generated" if f.action == "create" else "regenerated", printable(f.path)))


def _make_modules(ctx: Context, req: Request, p: Plan, compiler: str, lock_fd: int) -> None:
    if req.allow_mismatch:
        ctx.console.warn("--allow-mismatch is set: mismatched modules will NOT be quarantined. Emergency use only; "
                         "it is recorded in the build report.")
    # Only what this make links can be verified and placed: a .ko left from an earlier run (make -n
    # in MAKEFLAGS, a touched file) must not pass for this run's. kbuild relinks from the objects.
    outputs.forget_modules(p.stage)
    with ctx.console.step("make modules with %s" % compiler):
        kbuild.run_make(ctx.runner, p.command, _log_hint(ctx), pass_fds=(lock_fd,))


def _show(ctx: Context, req: Request, entries: List[Dict[str, Any]], reports: List[ModuleReport], data: Dict[str, Any],
          rejected: bool, multi: bool) -> None:
    """One line per module; with --json the report itself (what report.json holds)."""
    if not ctx.json and not multi:
        for entry, rep in zip(entries, reports):
            status = headline(rep) if not rep.failed() else "%s: %s" % (
                "KEPT (--allow-mismatch)" if req.allow_mismatch else "REJECTED", headline(rep))
            ctx.out("%s: %s" % (one_line(entry.get("quarantined_to") or entry["path"]), one_line(status)))
    elif ctx.json and not multi and (rejected or req.goal != "modules_install"):
        ctx.out_json(data)


def _install(ctx: Context, req: Request, p: Plan, prepared: Prepared, signer: Optional[modsign.Signer],
             staged: List[str], written: Tuple[str, Dict[str, Any]], lock_fd: int, multi: bool,
             sink: Optional[List[KernelResult]] = None) -> None:
    """make modules_install, then the installed copies held to the same gates (``written``: the report
    file and its data, rewritten with what was installed)."""
    report_path, data = written
    install = p.command._replace(argv=p.command.argv[:-1] + ["modules_install"])
    kbuild.run_make(ctx.runner, install, _log_hint(ctx), pass_fds=(lock_fd,))
    data["installed"], refused = _verify_installed(ctx, req, p, prepared, signer, staged, multi, sink)
    if refused is not None:
        data["result"] = {"exit_code": refused.exit_code, "error": refused.title, "message": refused.message}
    outputs.write_json(report_path, data)
    if ctx.json and not multi:
        ctx.out_json(data)
    if refused is not None:
        raise refused


def _verify_installed(ctx: Context, req: Request, p: Plan, prepared: Prepared, signer: Optional[modsign.Signer],
                      staged: List[str], multi: bool, sink: Optional[List[KernelResult]] = None
                      ) -> Tuple[List[Dict[str, Any]], Optional[ModuleRejected]]:
    """Hold what modules_install installed to the same gates (the signature too, with --sign): kbuild
    copies, may strip (INSTALL_MOD_STRIP), sign with the tree's key (CONFIG_MODULE_SIG_ALL) or
    compress after kbuildguard verified the staged copy, and a packager takes the installed one.
    A copy that fails is moved to .kbuildguard/rejected/installed/ (exit 8): nothing unverified stays
    where it was installed."""
    target = prepared.target
    config = prepared.expect.loader.config if prepared.expect.loader else target.tree_config
    paths = kbuild.installed_modules(p.command, staged, p.stage, target.release, config, req.make_args, p.command.env)
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise BuildFailed("make modules_install did not leave %s where kbuild installs it: the installed modules were "
                          "not verified" % ", ".join(printable(m) for m in missing),
                          hint="an INSTALL_MOD_DIR, KERNELRELEASE or compression kbuildguard did not foresee; "
                               "check the installed files with `kbuildguard check`")
    with ctx.console.step("verify the %d installed module(s)" % len(paths)):
        if signer is not None:
            reports = modsign.verify_signed(ctx.runner, signer, paths, prepared.expect, ctx.env)
        else:
            reports = verify_paths(paths, prepared.expect)
    entries = []
    rejected = []
    folder = os.path.join("rejected", "installed", target.release) if multi else os.path.join("rejected", "installed")
    for rep in reports:
        entry = report.module_json(rep)
        if rep.failed() and not req.allow_mismatch:
            entry["quarantined_to"] = outputs.quarantine(rep.path, req.module_dir, folder, entry)
            rejected.append(entry["quarantined_to"])
        entries.append(entry)
        if not ctx.json and not multi:
            ctx.out("installed %s: %s" % (one_line(rep.path), one_line(headline(rep) if not rep.failed() else
                                                                            "REJECTED: " + headline(rep))))
    if sink is not None:  # the CI reports: the installed copies are the payload a package ships
        sink.append(KernelResult(kernel=target.release + " (installed)", modules=tuple(
            ModuleResult(e.get("quarantined_to") or rep.path, rep) for e, rep in zip(entries, reports))))
    if not rejected:
        return entries, None
    exc = _rejected(prepared, reports, rejected)
    exc.message = "%d installed module(s) are not what was verified: %s" % (len(rejected), exc.message)
    return entries, exc


def _summary(ctx: Context, req: Request, outcomes: List[Outcome]) -> None:
    summary = [o._asdict() for o in outcomes]
    if not req.dry_run:
        outputs.write_json(os.path.join(outputs.state_dir(req.module_dir), "summary.json"), {"kernels": summary})
    if ctx.json:
        ctx.out_json({"kernels": summary})
        return
    width = max([len(o.release) for o in outcomes] + [6])
    ctx.out("%-*s  %-4s  %-48s  %s" % (width, "kernel", "exit", "compiler", "result"))
    for o in outcomes:
        where = ", ".join(os.path.relpath(m, req.module_dir) for m in o.modules)
        ctx.out("%-*s  %-4d  %-48s  %s" % (width, o.release, o.exit_code, printable(o.compiler) or "-",
                                         printable(o.message) + (" (%s)" % printable(where) if where else "")))


def _failed_kernel(sink: Optional[List[KernelResult]], before: int, kernel: str, exc: KbgError, folder: str) -> None:
    """A kernel that ended before its modules were verified is a failed row of the CI reports,
    located in the module folder (at the compiler's first error when make failed)."""
    if sink is not None and len(sink) == before:
        sink.append(KernelResult(kernel=kernel, modules=(), error="%s: %s" % (exc.title, exc.message),
                                 exit_code=exc.exit_code, folder=folder,
                                 compiler_errors=exc.compiler_errors if isinstance(exc, BuildFailed) else (),
                                 generated=tuple(n for n in render.GENERATED if render.is_generated(os.path.join(folder, n)))))


def build_many(ctx: Context, proj: Project, req: Request, selectors: Sequence[Selector], lock_fd: int,
               sink: Optional[List[KernelResult]] = None) -> int:
    """Every kernel in turn; a failure is recorded, not fatal (a signal is). Returns the first failure's exit code."""
    outcomes: List[Outcome] = []
    for selector in selectors:
        ctx.console.info("\n== kernel %s" % selector.kernel)
        try:
            before = len(sink) if sink is not None else 0
            outcomes.append(build_one(ctx, proj, req, selector, lock_fd, multi=True, sink=sink))
        except Interrupted:
            raise
        except KbgError as exc:
            _failed_kernel(sink, before, selector.kernel or "?", exc, req.module_dir)
            ctx.console.fail(exc.title, printable(exc.message), [printable(d) for d in exc.details],
                             printable(exc.hint) if exc.hint else None)
            outcomes.append(Outcome(selector.kernel or "?", "", (), exc.exit_code, "%s: %s" % (exc.title, exc.message)))
    _summary(ctx, req, outcomes)
    failed = [o for o in outcomes if o.exit_code != 0]
    return failed[0].exit_code if failed else 0


def run(ctx: Context, proj: Project, req: Request, selectors: Sequence[Selector], many: bool,
        sink: Optional[List[KernelResult]] = None) -> int:
    """The whole ``make``: lock the folder, take back what earlier runs placed, build each kernel."""
    check_make_args(req.make_args)
    check_install_strip(req, ctx.env)
    if req.dry_run:
        if many:
            return build_many(ctx, proj, req, selectors, -1)
        return build_one(ctx, proj, req, selectors[0], -1).exit_code
    outputs.ensure_writable(req.module_dir)
    ctx.console.open_log(req.log_path)
    try:
        with outputs.build_lock(req.module_dir, ctx.console) as lock:
            outputs.withdraw(req.module_dir, ctx.console)
            outputs.set_aside_strays(req.module_dir, ctx.console)
            if many:
                return build_many(ctx, proj, req, selectors, lock.fileno(), sink)
            try:
                return build_one(ctx, proj, req, selectors[0], lock.fileno(), sink=sink).exit_code
            except KbgError as exc:
                if not isinstance(exc, Interrupted):
                    _failed_kernel(sink, 0, selectors[0].kernel or "(target kernel)", exc, req.module_dir)
                if not isinstance(exc, ModuleRejected):  # a rejection wrote its full report already
                    _failure_report(req, exc)
                raise
    except (KeyboardInterrupt, Stopped) as exc:
        signum = exc.signum if isinstance(exc, Stopped) else 2
        # make and its compilers were stopped (run.stop_group) and only ever wrote to staging:
        # nothing unverified is in the folder, whatever moment the signal came at.
        raise Interrupted("build stopped by signal %d; make was stopped too, and nothing unverified was placed in %s"
                          % (signum, printable(req.module_dir)), signum=signum)
    except OSError as exc:
        raise CannotWrite("%s: %s" % (printable(getattr(exc, "filename", None) or req.module_dir), exc.strerror or exc),
                          hint="kbuildguard writes its state under MODULE_DIR/.kbuildguard, stages builds under "
                               "~/.cache/kbuildguard and places verified modules in MODULE_DIR")


def kernel_list(kernel_setting: Optional[str], sysroot: Optional[str]) -> Optional[List[str]]:
    """None for a single kernel; the releases for ``all`` or a comma-separated list."""
    if not kernel_setting or (kernel_setting != "all" and "," not in kernel_setting):
        return None
    if kernel_setting == "all":
        return kernel.installed_releases(os.path.abspath(sysroot) if sysroot else "/")
    return [r.strip() for r in kernel_setting.split(",") if r.strip()]
