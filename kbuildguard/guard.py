"""The guarded build, one kernel or many: resolve, select (or install), render, make, verify.

``cli`` turns arguments into a Request; this module runs it. For ``--kernel all`` (or a list)
each kernel is built on its own, with its own matching compiler; verified modules are moved to
``MODULE_DIR/kbuildguard-out/RELEASE/`` so that the next kernel's build cannot overwrite them,
one failing kernel does not stop the others, and a summary table closes the run.
"""

import json
import os
import shutil
from typing import List, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import drift, kbuild, kernel, provision, render, toolchain
from kbuildguard.console import printable
from kbuildguard.errors import ConfigError, ForcedCompilerMismatch, HeaderDrift, KbgError, ModuleRejected, NoMatchingCompiler
from kbuildguard.kernel import KernelTarget, Selector
from kbuildguard.project import Project
from kbuildguard.toolchain import MatchLevel, Selection
from kbuildguard.verify import WHY, reference_layout, verify_path

WHY_SENTENCE = WHY[0].upper() + WHY[1:] + "."
OUT_DIR = "kbuildguard-out"


class Request(NamedTuple):
    module_dir: str
    goal: str
    make_args: Tuple[str, ...]
    level: MatchLevel
    cc: Optional[str]
    install: bool
    yes: bool
    dry_run: bool
    allow_mismatch: bool
    json: bool
    scl_root: str
    vmlinux: Optional[str] = None
    kernel_config: Optional[str] = None


class Outcome(NamedTuple):
    release: str
    compiler: str  # the chosen compiler, described, or ""
    modules: Tuple[str, ...]  # where the verified modules are
    exit_code: int
    message: str  # "ok", or the error's one line


def kernel_list(kernel_setting: Optional[str], sysroot: Optional[str]) -> Optional[List[str]]:
    """None for a single kernel; the releases for ``all`` or a comma-separated list."""
    if not kernel_setting or (kernel_setting != "all" and "," not in kernel_setting):
        return None
    if kernel_setting == "all":
        return kernel.installed_releases(os.path.abspath(sysroot) if sysroot else "/")
    return [r.strip() for r in kernel_setting.split(",") if r.strip()]


def no_match_error(target: KernelTarget, selection: Selection) -> NoMatchingCompiler:
    details = ["%s: %s" % (c.path, c.reason) for c in selection.candidates]
    return NoMatchingCompiler(
        "no local compiler matches the kernel's %s (%s, match level %s)" % (
            target.compiler.describe(), target.compiler_source, selection.level),
        hint=provision.install_hint(target), details=details or ["no gcc or clang found on PATH or under /opt/rh"])


def refuse_forced(target: KernelTarget, selection: Selection) -> ForcedCompilerMismatch:
    c = selection.candidates[0]
    found = c.compiler.identity.describe() if c.compiler else "unidentified"
    return ForcedCompilerMismatch(
        "%s (%s) is %s, but kernel %s was built by %s: refused before building" % (
            c.path, c.origin, found, target.release, target.compiler.describe()),
        hint="drop %s and let kbuildguard choose, or use a compiler that is %s" % (c.origin, target.compiler.describe()),
        details=[c.reason])


def _select(ctx, target: KernelTarget, req: Request) -> Selection:
    forced = toolchain.forced_compiler(req.cc, ctx.env, req.make_args)
    with ctx.console.step("select compiler for %s" % target.compiler.describe()):
        selection = toolchain.select(ctx.runner, target, req.level, ctx.env, forced=forced, opt_root=req.scl_root,
                                     first_match=True)
    if selection.selected is not None:
        return selection
    if forced is None:
        if req.install:
            return provision.install_and_reselect(ctx, target, req.level, yes=req.yes, dry_run=req.dry_run)
        raise no_match_error(target, selection)
    if not req.allow_mismatch:
        raise refuse_forced(target, selection)
    c = selection.candidates[0]
    if c.compiler is None:
        raise ForcedCompilerMismatch("%s: %s" % (c.path, c.reason))
    ctx.console.warn("--allow-mismatch: building with %s although the kernel was built by %s" % (
        c.compiler.describe(), target.compiler.describe()))
    return selection._replace(selected=c.compiler)


def _print_plan(ctx, target: KernelTarget, selection: Selection, files, command) -> None:
    plan = {
        "kernel": {"release": target.release, "build_dir": target.build_dir, "compiler": target.compiler.describe()},
        "compiler": selection.selected.path,
        "files": [{"path": f.path, "action": f.action} for f in files],
        "make": command.argv,
        "env": {k: v for k, v in command.env.items() if ctx.env.get(k) != v},
    }
    if ctx.args.json:
        ctx.out_json(plan)
        return
    ctx.out("kernel:   %s (%s)" % (target.release, printable(target.compiler.describe())))
    ctx.out("compiler: %s" % printable(selection.selected.describe()))
    for f in files:
        ctx.out("file:     %s (%s)" % (f.path, f.action))
    ctx.out("make:     %s" % " ".join(command.argv))
    for k, v in plan["env"].items():
        ctx.out("env:      %s=%s" % (k, v))


def _previous_release(module_dir: str) -> Optional[str]:
    """The kernel the last single-kernel build in this folder was for (from its report)."""
    try:
        with open(os.path.join(module_dir, kbuild.STATE_DIR, "report.json"), encoding="utf-8") as f:
            return json.load(f)["kernel"]["release"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def build_one(ctx, proj: Project, req: Request, selector: Selector, multi: bool = False) -> Outcome:
    """One kernel. Raises KbgError on failure (build_many catches it per kernel)."""
    with ctx.console.step("resolve target kernel"):
        target = kernel.resolve(selector)
    if target.build_dir is None:
        raise kernel.missing_tree_error(target.release, target.sysroot, target.running)
    for note in target.notes:
        ctx.console.warn(printable(note))
    found = drift.compare(target, req.kernel_config)
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
    selection = _select(ctx, target, req)
    files = render.render(proj)
    missing = render.missing_sources(proj)
    if missing:
        raise ConfigError("%s names file(s) that do not exist: %s" % (proj.config_path, ", ".join(missing)))
    if not proj.modules and not any(os.path.exists(os.path.join(req.module_dir, n)) for n in ("Kbuild", "Makefile")):
        raise ConfigError("%s has no kbuildguard.toml, Kbuild or Makefile: nothing to build" % req.module_dir,
                          hint="run `kbuildguard init` to create kbuildguard.toml and a module source")
    goal = req.goal
    command = kbuild.make_command(target, selection.selected, req.module_dir, "modules" if goal != "clean" else "clean",
                                  req.make_args, ctx.env)
    if req.dry_run:
        _print_plan(ctx, target, selection, files, command)
        return Outcome(target.release, selection.selected.describe(), (), 0, "dry run")
    if req.allow_mismatch:
        ctx.console.warn("--allow-mismatch is set: mismatched modules will NOT be quarantined. Emergency use only; "
                         "it is recorded in the build report.")
    suffix = os.sep + target.release if multi else ""
    with kbuild.build_lock(req.module_dir, ctx.console):
        render.write(files)
        for f in files:
            if f.action in ("create", "update"):
                ctx.console.info("%s %s" % ("generated" if f.action == "create" else "regenerated", f.path))
        if goal != "clean" and (multi or _previous_release(req.module_dir) not in (None, target.release)):
            kbuild.forget_outputs(req.module_dir)
        reference = reference_layout(target, req.vmlinux, kernel_config=req.kernel_config)
        result = kbuild.build(
            ctx.runner, ctx.console, target, selection, req.module_dir, goal, req.make_args, ctx.env,
            verify=lambda p: verify_path(p, target, req.level, reference),
            allow_mismatch=req.allow_mismatch, rendered=[{"path": f.path, "action": f.action} for f in files],
            rejected_folder="rejected" + suffix, report_name="report-%s.json" % target.release if multi else "report.json")
        kept = [rep.path for rep in result.reports if not rep.failed() or req.allow_mismatch]
        if multi and goal == "modules":
            out = os.path.join(req.module_dir, OUT_DIR, target.release)
            os.makedirs(out, exist_ok=True)
            moved = []
            for path in kept:
                dest = os.path.join(out, os.path.basename(path))
                shutil.move(path, dest)
                moved.append(dest)
            kept = moved
    if goal == "clean":
        return Outcome(target.release, selection.selected.describe(), (), 0, "cleaned")
    if req.json and not multi:
        with open(result.report_path, encoding="utf-8") as f:
            ctx.out(f.read())
    if not req.json and not multi:
        for rep in result.reports:
            status = "ok" if not rep.failed() else ("KEPT (--allow-mismatch)" if req.allow_mismatch else "REJECTED")
            ctx.out("%s: %s" % (rep.path if status != "REJECTED" else os.path.basename(rep.path), status))
    if not result.reports:
        ctx.console.warn("make produced no .ko (no modules.order entry)")
    if result.rejected:
        raise _rejected(target, selection, req.level, result)
    if not req.json:
        ctx.console.info("report: %s" % result.report_path)
    return Outcome(target.release, selection.selected.describe(), tuple(kept), 0, "ok")


def _rejected(target: KernelTarget, selection: Selection, level: MatchLevel, result: kbuild.BuildResult) -> ModuleRejected:
    def foreign(compilers) -> str:
        return ", ".join(sorted({c.describe() for c in compilers if toolchain.mismatch_reason(target.compiler, c, level)}))

    details = []  # type: List[str]
    for rep, dest in zip([r for r in result.reports if r.failed()], result.rejected):
        for c in rep.failed():
            details.append("%s: %s: %s" % (os.path.basename(rep.path), c.name, printable(c.message)))
        for line in kbuild.offending_objects(rep.path, foreign):
            details.append("offending object " + printable(line))
        details.append("moved to %s (report beside it)" % dest)
    return ModuleRejected(
        "%d module(s) do not match kernel %s (built by %s)" % (len(result.rejected), target.release, target.compiler.describe()),
        hint="%s Fix: build with %s (kbuildguard chose %s; check what else went into the module, "
             "e.g. prebuilt *.o_shipped objects, and rebuild them with that compiler)" % (
                 WHY_SENTENCE, target.compiler.describe(), selection.selected.path),
        details=details)


def build_many(ctx, proj: Project, req: Request, selectors: Sequence[Selector]) -> int:
    """Every kernel in turn; a failure is recorded, not fatal. Returns the first failure's exit code."""
    outcomes = []  # type: List[Outcome]
    for selector in selectors:
        ctx.console.info("\n== kernel %s" % selector.kernel)
        try:
            outcomes.append(build_one(ctx, proj, req, selector, multi=True))
        except KbgError as exc:
            ctx.console.fail(exc.title, printable(exc.message), [printable(d) for d in exc.details],
                             printable(exc.hint) if exc.hint else None)
            outcomes.append(Outcome(selector.kernel or "?", "", (), exc.exit_code, "%s: %s" % (exc.title, exc.message)))
    summary = [o._asdict() for o in outcomes]
    state = os.path.join(req.module_dir, kbuild.STATE_DIR)
    if not req.dry_run:
        os.makedirs(state, exist_ok=True)
        with open(os.path.join(state, "summary.json"), "w", encoding="utf-8") as f:
            json.dump({"kernels": summary}, f, indent=2)
    if req.json:
        ctx.out_json({"kernels": summary})
    else:
        width = max([len(o.release) for o in outcomes] + [6])
        ctx.out("%-*s  %-4s  %-48s  %s" % (width, "kernel", "exit", "compiler", "result"))
        for o in outcomes:
            where = ", ".join(os.path.relpath(m, req.module_dir) for m in o.modules)
            ctx.out("%-*s  %-4d  %-48s  %s" % (width, o.release, o.exit_code, printable(o.compiler) or "-",
                                             printable(o.message) + (" (%s)" % where if where else "")))
    failed = [o for o in outcomes if o.exit_code != 0]
    return failed[0].exit_code if failed else 0
