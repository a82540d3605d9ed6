"""``kbuildguard setup``: the kernel's build tree and matching compiler for a workstation or build root."""

from kbuildguard import kernel, report, toolchain
from kbuildguard.commands.common import Common, level_of, selector_for, settings_for, single_kernel
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.provision import detect_distro, execute, plan, reselect
from kbuildguard.run import quote


def run(ctx: Context, common: Common, yes: bool, dry_run: bool) -> int:
    settings = settings_for(ctx, common.cli)
    single_kernel(settings, "setup")
    selector = selector_for(settings, common.proc_version_file)
    target = kernel.resolve(selector)
    level = level_of(settings)
    scl = settings.scl_root.value or "/opt/rh"
    sysroot = settings.sysroot.value
    # In a sysroot the compilers that count are the sysroot's own, which we cannot run from here:
    # plan the compiler, and check what the package manager installed afterwards.
    selection = None if sysroot else toolchain.select(ctx.runner, target, level, ctx.env, opt_root=scl)
    need_compiler = selection is None or selection.selected is None
    distro = detect_distro(target.sysroot, str(target.arch or ""))
    p = plan(target, distro, need_compiler=need_compiler, need_tree=target.build_dir is None, scl_root=scl)
    if sysroot:
        p = p._replace(notes=p.notes + ("run these inside the sysroot (chroot %s, or your build root's shell)" % sysroot,))
    if ctx.json:
        ctx.out_json(dict(report.plan_json(p), kernel=report.kernel_summary_json(target), settings=settings.as_json()))
    elif dry_run or not p.commands:
        ctx.out("kernel %s, built by %s (%s)" % (target.release, printable(target.compiler.describe()), target.compiler_source))
        ctx.out("distribution: %s (%s)" % (distro.name, p.manager))
        for cmd in p.commands:
            ctx.out("  " + quote(cmd))
        for note in p.notes:
            ctx.out("  note: " + note)
        if not p.commands:
            ctx.out("nothing to install: %s" % (selection.selected.describe() if selection and selection.selected else "build tree present"))
    if dry_run or not p.commands:
        return 0
    execute(ctx, p, yes, False)
    target = kernel.resolve(selector)  # the build tree may be new
    selection = reselect(ctx, target, level, p, scl)
    assert selection.selected is not None
    ctx.console.info("ready: %s matches %s" % (selection.selected.describe(), target.compiler.describe()))
    return 0
