"""``kbuildguard detect``: the kernel's compiler, where each fact came from, and the local compiler that matches."""

from typing import List, Optional

from kbuildguard import report, toolchain
from kbuildguard.build.pipeline import no_match_error
from kbuildguard.commands.common import FetchOptions, forced_of, kernel_selectors, level_of, settings_for
from kbuildguard.console import one_line, printable
from kbuildguard.context import Context
from kbuildguard.errors import NoMatchingCompiler
from kbuildguard.settings import Common, Settings
from kbuildguard.target import kernel
from kbuildguard.target.kernel import KernelTarget
from kbuildguard.toolchain import Selection, Verdict


def describe_kernel(ctx: Context, target: KernelTarget) -> None:
    ctx.out("kernel %s (%s)%s" % (target.release, target.arch or "arch unknown", " - the running kernel" if target.running else ""))
    ctx.out("  build tree: %s" % printable(target.build_dir or "none"))
    ctx.out("  compiler:   %s" % printable(target.compiler.describe()))
    ctx.out("      text:   %s" % printable(target.compiler.text))
    ctx.out("      from:   %s" % printable(target.compiler_source))
    for fact in target.facts[1:]:
        ctx.out("      also:   %s: %s" % (printable(fact.source), printable(fact.compiler.describe())))
    if target.linker:
        ctx.out("  linker:     %s" % printable(target.linker.describe()))
    for note in target.notes:
        ctx.console.warn(printable(note))


def describe_selection(ctx: Context, selection: Selection) -> None:
    ctx.out("local compilers (match level %s):" % selection.level)
    if not selection.candidates:
        ctx.out("  none found on PATH or under /opt/rh")
    marks = {Verdict.MATCH: "ok  ", Verdict.MISMATCH: "no  ", Verdict.ERROR: "err "}
    for c in selection.candidates:
        what = printable(c.compiler.identity.describe()) if c.compiler else "?"
        ctx.out("  %s %-28s %-40s %s" % (marks[c.verdict], one_line(c.path), what, printable(c.reason)))
    ctx.out("selected: %s" % (printable(selection.selected.path) if selection.selected else "none"))


def run(ctx: Context, common: Common, fetch: FetchOptions = FetchOptions(), lock_dir: Optional[str] = None) -> int:
    settings = settings_for(ctx, common.cli, "detect")
    selectors, _ = kernel_selectors(ctx, settings, fetch, "detect", many=False, proc_version_file=common.proc_version_file,
                                    proc_version_data=common.proc_version_data)
    target = kernel.resolve(selectors[0])
    if target.build_dir is None and not (common.proc_version_file or settings.sysroot.value):
        raise kernel.missing_tree_error(target.release, target.sysroot, target.running,
                                        " (built by %s, says %s)" % (target.compiler.describe(), target.compiler_source))
    selection = toolchain.select(ctx.runner, target, level_of(settings), ctx.env, forced=forced_of(settings),
                                 opt_root=settings.scl_root.value or "/opt/rh")
    lock = None
    written: List[str] = []
    if lock_dir is not None and selection.selected is not None:
        from kbuildguard.build import toolchainlock

        lock = toolchainlock.plan(target, selection.selected, ctx.env)
        written = toolchainlock.write(lock, lock_dir)
    if ctx.json:
        result = {"kernel": report.kernel_json(target), "settings": settings.as_json(), **report.selection_json(selection)}
        if lock is not None:
            result["toolchain_lock"] = {"env": written[0], "bin": written[1], "build_environment": written[2],
                                        "make_vars": list(lock.make_vars),
                                        "tools": [{"name": t.name, "path": t.path, "role": t.role} for t in lock.tools]}
        ctx.out_json(result)
    else:
        describe_kernel(ctx, target)
        describe_selection(ctx, selection)
        if lock is not None:
            ctx.out("toolchain lock: %s" % printable(written[0]))
            for tool in lock.tools:
                ctx.out("  %-8s %-12s -> %s" % (tool.role, printable(tool.name), printable(tool.path)))
            ctx.out("  DKMS sources %s (build_environment) with $kernelver set" % printable(written[2]))
    if selection.selected is None:
        raise with_setup_hint(ctx, target, selection, settings, common)
    return 0


def with_setup_hint(ctx: Context, target: KernelTarget, selection: Selection, settings: Settings,
                    common: Common) -> NoMatchingCompiler:
    """The no-match error, its hint from the plan `kbuildguard setup` makes with the same inputs (the
    same system, checked the same way), or, when --cc/CC= excluded a compiler that matches, that one."""
    error = no_match_error(target, selection)
    scl = settings.scl_root.value or "/opt/rh"
    if forced_of(settings) is not None:
        others = toolchain.select(ctx.runner, target, level_of(settings), ctx.env, opt_root=scl)
        if others.selected is not None:
            error.hint = "%s matches the kernel's compiler: drop %s (or name it instead)" % (
                printable(others.selected.path), selection.candidates[0].origin if selection.candidates else "--cc")
            return error
    from kbuildguard.provision import setup_hint  # the catalogue is read only on this error path

    error.hint = setup_hint(ctx.runner, target, settings.sysroot.value, common.proc_version_file, ctx.env, scl,
                            proc_version_data=common.proc_version_data)
    return error
