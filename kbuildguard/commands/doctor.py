"""``kbuildguard doctor``: the toolchain preflight on its own, every check shown (preflight.py).

The target kernel and the compiler are resolved as `detect` and `make` resolve them; then every tool
kbuild will run is checked. Exit 0 when all fit, 16 (toolchain preflight) when one does not, one
line each with the package that fixes it.
"""

from typing import NamedTuple, Optional

from kbuildguard import report, toolchain
from kbuildguard.build import preflight
from kbuildguard.build.pipeline import no_match_error, refuse_forced
from kbuildguard.commands.common import FetchOptions, fetch_hint, forced_of, kernel_selectors, level_of, settings_for
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.errors import KernelNotFound
from kbuildguard.settings import Common
from kbuildguard.target import kernel
from kbuildguard.toolchain import MatchLevel


class DoctorOptions(NamedTuple):
    common: Common
    btf: bool = False
    vmlinux: Optional[str] = None
    fetch: FetchOptions = FetchOptions()


MARKS = {preflight.Status.OK: "ok  ", preflight.Status.FAIL: "FAIL", preflight.Status.WARN: "warn",
         preflight.Status.NOTE: "note"}


def run(ctx: Context, opts: DoctorOptions) -> int:
    settings = settings_for(ctx, opts.common.cli, "doctor")
    selectors, _ = kernel_selectors(ctx, settings, opts.fetch, "doctor", many=False,
                                    proc_version_file=opts.common.proc_version_file,
                                    proc_version_data=opts.common.proc_version_data)
    try:
        target = kernel.resolve(selectors[0])
        if target.build_dir is None:
            raise kernel.missing_tree_error(target.release, target.sysroot, target.running)
    except KernelNotFound as exc:
        release = settings.kernel.value
        if opts.fetch.enabled or not release or release == "all" or "," in release:
            raise
        hint = fetch_hint(ctx, "doctor", release, selectors[0].sysroot)
        raise KernelNotFound(exc.message, hint="%s; or %s" % (exc.hint, hint) if exc.hint else hint, details=exc.details)
    level = level_of(settings)
    forced = forced_of(settings)
    selection = toolchain.select(ctx.runner, target, level, ctx.env, forced=forced,
                                 opt_root=settings.scl_root.value or "/opt/rh", first_match=True)
    for reason in toolchain.unanswered(selection):
        ctx.console.warn("compiler not considered: %s" % reason)
    if selection.selected is None:
        raise refuse_forced(target, selection) if forced is not None else no_match_error(target, selection)
    result = preflight.run(ctx, target, selection.selected, btf=opts.btf,
                           vmlinux=ctx.path(opts.vmlinux) if opts.vmlinux else None, module_dir=ctx.cwd,
                           parts=1 if level is MatchLevel.MAJOR else 2)
    if ctx.json:
        ctx.out_json(dict(preflight.as_json(result), kernel=report.kernel_json(target),
                          compiler=selection.selected.path, settings=settings.as_json(),
                          ok=not result.failures()))
    else:
        ctx.out("kernel %s: %s, linked by %s" % (target.release, printable(target.compiler.describe()),
                                                 printable(target.linker.describe()) if target.linker else "an unrecorded linker"))
        ctx.out("compiler: %s%s" % (printable(selection.selected.describe()),
                                    "  (make: %s)" % " ".join(result.llvm.make_vars) if result.llvm.make_vars else ""))
        for f in result.findings:
            ctx.out("  %s %-13s %s" % (MARKS[f.status], f.check, printable(f.line())))
    preflight.enforce(result)
    return 0
