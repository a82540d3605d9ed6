"""Installing a plan, with consent, and checking afterwards that the new compiler matches.

Nothing is installed without consent: ``--yes``, or a "y" typed on a terminal. kbuildguard never
runs sudo: a non-root user is given the exact commands to run as root.
"""

import os

from kbuildguard.context import Context
from kbuildguard.errors import ConsentRequired, InstallFailed, NoMatchingCompiler, PackageUnavailable
from kbuildguard.provision.lock import run_waiting
from kbuildguard.provision.plan import InstallPlan, plan
from kbuildguard.provision.system import check, cross_plan, system_for
from kbuildguard.run import CommandFailed, quote
from kbuildguard.target.kernel import KernelTarget
from kbuildguard.toolchain import MatchLevel, Selection, host_arch, select


def _ask(ctx: Context, prompt: str) -> bool:
    ctx.console.stream.write(prompt)
    ctx.console.stream.flush()
    answer = ctx.stdin.readline(1024).strip().lower()  # a line of "yes" or "no", not a whole stream
    return answer in ("y", "yes")


def print_plan(ctx: Context, p: InstallPlan) -> None:
    ctx.console.info("install plan for %s, %s (%s):" % (p.system, p.distro.name, p.manager))
    for cmd in p.commands:
        ctx.console.info("  " + quote(cmd))
    if p.unverified:
        ctx.console.info("  unverified: " + p.unverified)
    for note in p.notes:
        ctx.console.info("  note: " + note)


def execute(ctx: Context, p: InstallPlan, yes: bool, dry_run: bool) -> bool:
    """Run the plan with consent. True if it ran; False for a dry run."""
    if dry_run or not p.commands:
        return False
    print_plan(ctx, p)
    commands = "; ".join(quote(c) for c in p.commands)
    if ctx.euid != 0:
        raise ConsentRequired("installing needs root, and kbuildguard never runs sudo by itself",
                              hint="run as root: %s" % commands)
    if not yes:
        if not ctx.interactive:
            raise ConsentRequired("an install is needed, but there is no terminal to ask and no --yes: nothing was installed",
                                  hint="review the plan above, then run again with --yes, or run: %s" % commands)
        if not _ask(ctx, "install these packages? [y/N] "):
            raise ConsentRequired("install declined: nothing was installed", hint="run: %s" % commands)
    for cmd in p.commands:
        try:
            run_waiting(ctx, cmd, p.manager)
        except CommandFailed as exc:
            raise InstallFailed("%s failed with status %d: %s may not be installed" % (
                quote(cmd), exc.returncode, ", ".join(p.packages)),
                hint="check the repositories of %s (network, mirrors, subscriptions); nothing else was changed by kbuildguard"
                     % p.distro.name)
    return True


def install_and_reselect(ctx: Context, target: KernelTarget, level: MatchLevel, yes: bool, dry_run: bool,
                         scl_root: str) -> Selection:
    """``make --install``: plan, install with consent, then detect again; the new compiler must match."""
    machine = system_for(target, None, None)
    # a kernel of another machine: its cross compiler, not this machine's gcc-N (issue 22)
    p = cross_plan(plan(target, machine.distro, scl_root=scl_root), target, host_arch())
    p = check(ctx.runner, p._replace(system=machine.describe), machine, ctx.env)
    missing = [pkg for pkg in p.checked if pkg.available is False]
    if missing:
        print_plan(ctx, p)
        raise PackageUnavailable("no local compiler matches %s, and %s says %s not in the repositories" % (
            target.compiler.describe(), p.asked, ", ".join(m.name for m in missing)),
            details=["%s: %s" % (m.name, m.elsewhere) for m in missing if m.elsewhere],
            hint="add the repository that has %s, then run again" % " and ".join(m.name for m in missing))
    if dry_run:
        print_plan(ctx, p)
        raise NoMatchingCompiler("no local compiler matches %s; --dry-run: nothing installed" % target.compiler.describe(),
                                 hint="run again without --dry-run to install: %s" % "; ".join(quote(c) for c in p.commands))
    execute(ctx, p, yes, dry_run)
    return reselect(ctx, target, level, p, scl_root)


def reselect(ctx: Context, target: KernelTarget, level: MatchLevel, p: InstallPlan, scl_root: str,
             root: str = "/") -> Selection:
    """After an install: detect again; the new compiler must resolve and match the kernel's.
    In a build root, its bin folders are searched first (SUSE's gcc12 lands in ROOT/usr/bin/gcc-12)."""
    env = dict(ctx.env)
    if root != "/":
        env["PATH"] = os.pathsep.join([os.path.join(root, "usr/bin"), os.path.join(root, "bin"), env.get("PATH", os.defpath)])
    selection = select(ctx.runner, target, level, env, opt_root=scl_root)
    if selection.selected is None:
        raise InstallFailed("installed %s, but still no compiler matches the kernel's %s" % (
            ", ".join(p.packages), target.compiler.describe()),
            details=["%s: %s" % (c.path, c.reason) for c in selection.candidates],
            hint="the repository's %s may be another release than the kernel's; see --match" % target.compiler.family)
    return selection
