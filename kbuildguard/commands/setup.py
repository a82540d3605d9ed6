"""``kbuildguard setup``: the kernel's build tree and matching compiler for this machine or a build root.

Stages: resolve the target, decide which system the plan is for (this machine, a build root, a
captured system, a kernel line), plan from the catalogue, ask that system's package manager which
packages exist, show the plan; then -- only for this machine or a build root, with consent --
install, and check that the new compiler matches.
"""

import os

from kbuildguard import report, toolchain
from kbuildguard.commands.common import level_of, selector_for, settings_for, single_kernel
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.errors import PackageUnavailable, UsageError
from kbuildguard.provision import InstallPlan, Kind, System, check, detect_distro, execute, for_system, plan, reselect, system_for
from kbuildguard.provision.system import cross_hint, cross_plan, foreign_root
from kbuildguard.run import quote
from kbuildguard.settings import Common
from kbuildguard.target import kernel
from kbuildguard.target.kernel import KernelTarget


def run(ctx: Context, common: Common, yes: bool, dry_run: bool) -> int:
    settings = settings_for(ctx, common.cli, "setup")
    single_kernel(settings, "setup")
    selector = selector_for(settings, common.proc_version_file, proc_version_data=common.proc_version_data)
    target = kernel.resolve(selector)
    level = level_of(settings)
    scl = settings.scl_root.value or "/opt/rh"
    system = system_for(target, settings.sysroot.value, common.proc_version_file, common.proc_version_data)
    # Only this machine's compilers can be run from here; a build root's are checked after installing.
    selection = toolchain.select(ctx.runner, target, level, ctx.env, opt_root=scl) if system.kind is Kind.MACHINE else None
    need_compiler = selection is None or selection.selected is None
    p = plan(target, system.distro, need_compiler=need_compiler, need_tree=target.build_dir is None, scl_root=scl)
    crossed = cross_plan(p, target, toolchain.host_arch()) if system.kind is Kind.MACHINE else p
    told = crossed is not p  # a tree of another machine: its cross compiler, said in the plan (issue 22)
    p = crossed
    p = check(ctx.runner, for_system(p, system), system, ctx.env)
    foreign = foreign_root(system, target, os.uname().machine, detect_distro("/"), p.manager) if p.commands else ""
    if foreign:
        p = p._replace(notes=p.notes + (foreign,))
    elif system.installable and not told:  # issue 22: whether this machine has the cross compiler a build from here takes
        cross = cross_hint(ctx.runner, target, toolchain.host_arch(), detect_distro("/"), ctx.env)
        if cross:
            p = p._replace(notes=p.notes + (cross,))
    show(ctx, target, system, p, settings.as_json(), "nothing to install: %s" % (
        selection.selected.describe() if selection and selection.selected else "build tree present"))
    refuse_unavailable(p)
    if dry_run or not p.commands:
        return 0
    if foreign and p.manager == "apt-get":  # the chroot cannot run at all
        raise UsageError(foreign.split(". ")[0], hint=foreign.split(". ", 1)[1])
    if not system.installable:
        raise UsageError("%s is a %s: kbuildguard plans for it but cannot install there" % (system.describe, system.kind),
                         hint="run the plan's commands on that machine, or run kbuildguard setup there")
    execute(ctx, p, yes, False)
    target = kernel.resolve(selector)  # the build tree may be new
    selection = reselect(ctx, target, level, p, scl, root=system.root if system.kind is Kind.BUILD_ROOT else "/")
    assert selection.selected is not None
    ctx.console.info("ready: %s matches %s" % (selection.selected.describe(), target.compiler.describe()))
    return 0


def show(ctx: Context, target: KernelTarget, system: System, p: InstallPlan, settings_json: dict, nothing: str) -> None:
    if ctx.json:
        ctx.out_json(dict(report.plan_json(p), kernel=report.kernel_summary_json(target), settings=settings_json))
        return
    ctx.out("kernel %s, built by %s (%s)" % (target.release, printable(target.compiler.describe()), target.compiler_source))
    ctx.out("plan for %s: %s (%s)" % (system.describe, system.distro.name, p.manager))
    for cmd in p.commands:
        ctx.out("  " + quote(cmd))
    for pkg in p.checked:
        state = {True: "available", False: "NOT AVAILABLE", None: "not checked"}[pkg.available]
        ctx.out("  %s: %s%s" % (pkg.name, state, " (%s)" % p.asked if pkg.available is not None and p.asked else ""))
    if p.unverified:
        ctx.out("  unverified: " + p.unverified)
    for note in p.notes:
        ctx.out("  note: " + note)
    if not p.commands:
        ctx.out(nothing)


def refuse_unavailable(p: InstallPlan) -> None:
    missing = [pkg for pkg in p.checked if pkg.available is False]
    if missing:
        raise PackageUnavailable(
            "%s cannot install %s: %s says %s not in its repositories" % (
                p.system, ", ".join(m.name for m in missing), p.asked, "it is" if len(missing) == 1 else "they are"),
            details=["%s: %s" % (m.name, m.elsewhere) for m in missing if m.elsewhere],
            hint="add the repository that has %s to %s, then run kbuildguard setup again" % (
                " and ".join(m.name for m in missing), p.system))
