"""Installing the kernel's compiler (and build tree) through the distribution's package manager.

Which package provides which compiler is data (kbuildguard/data/catalogue.json), not code. Nothing
is installed without consent: ``--yes``, or a "y" typed on a terminal. kbuildguard never runs sudo:
a non-root user is given the exact commands to run as root.
"""

import json
import os
import pkgutil
import sys
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from kbuildguard.errors import ConsentRequired, InstallFailed, NoMatchingCompiler
from kbuildguard.identity import Family
from kbuildguard.kernel import KernelTarget
from kbuildguard.run import CommandFailed, quote


class Distro(NamedTuple):
    id: str
    like: Tuple[str, ...]
    version_id: str
    name: str
    arch: str

    @property
    def major(self) -> str:
        return self.version_id.split(".")[0]


class InstallPlan(NamedTuple):
    distro: Distro
    manager: str
    packages: Tuple[str, ...]
    commands: Tuple[Tuple[str, ...], ...]
    notes: Tuple[str, ...]
    compiler_path: str  # where the planned compiler lands (informational: re-detection decides)

    def as_json(self) -> Dict[str, Any]:
        return {
            "distribution": {"id": self.distro.id, "version_id": self.distro.version_id, "name": self.distro.name,
                             "arch": self.distro.arch},
            "manager": self.manager,
            "packages": list(self.packages),
            "commands": [list(c) for c in self.commands],
            "notes": list(self.notes),
            "compiler_path": self.compiler_path or None,
        }


def load_catalogue() -> Dict[str, Any]:
    data = pkgutil.get_data("kbuildguard", "data/catalogue.json")
    assert data is not None
    return json.loads(data.decode("utf-8"))


def detect_distro(sysroot: str = "/", arch: str = "") -> Distro:
    """The distribution of this machine, or of a sysroot (its etc/os-release, never ours).

    distro reads the files we name; lsb_release and uname are turned off because they would
    describe the host, not the sysroot (and would start processes).
    """
    import distro as distro_lib

    root = sysroot if sysroot else "/"
    os_release = os.path.join(root, "etc/os-release")
    if not os.path.isfile(os_release):
        os_release = os.path.join(root, "usr/lib/os-release")
    kwargs = {"include_lsb": False, "os_release_file": os_release,
              "distro_release_file": os.path.join(root, "etc/nonexistent-release")}
    try:
        info = distro_lib.LinuxDistribution(include_uname=False, **kwargs)
    except TypeError:  # distro < 1.6 (Python 3.6 pins) has no include_uname and never runs uname
        info = distro_lib.LinuxDistribution(**kwargs)
    return Distro(info.id().lower(), tuple(info.like().lower().split()), info.version(),
                  info.name(pretty=True) or info.id() or "unknown", arch or os.uname().machine)


def _entry_for(distro: Distro, catalogue: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    for ids in ((distro.id,), distro.like):
        for entry in catalogue["distributions"]:
            match = entry["match"]
            if any(i in match["ids"] for i in ids) and (not match["versions"] or distro.major in match["versions"]):
                return entry
    return None


def _fmt(items, **values) -> List[str]:
    return [i.format(**values) for i in items]


def plan(target: KernelTarget, distro: Distro, need_compiler: bool = True, need_tree: bool = False,
         scl_root: str = "/opt/rh") -> InstallPlan:
    """What to install on ``distro`` for ``target``; raises NoMatchingCompiler when nothing provides it."""
    catalogue = load_catalogue()
    entry = _entry_for(distro, catalogue)
    if entry is None:
        raise NoMatchingCompiler("kbuildguard does not know how to install compilers on %s (ID=%s)" % (distro.name, distro.id),
                                 hint="install %s yourself and run kbuildguard again" % target.compiler.describe())
    manager = entry["manager"]
    kernel = target.compiler
    major = kernel.version_tuple[0] if kernel.version_tuple else 0
    packages = []  # type: List[str]
    pre = []  # type: List[Tuple[str, ...]]
    notes = []  # type: List[str]
    path = ""
    if need_compiler:
        rule = entry["gcc"] if kernel.family is Family.GCC else entry["clang"]
        system = entry.get("system_gcc") if kernel.family is Family.GCC else None
        lo_hi = rule.get("range") or []
        if system and system["major"] == major:
            packages += system["packages"]
            path = system["path"]
        elif lo_hi and lo_hi[0] <= major <= lo_hi[1]:
            packages += _fmt(rule["packages"], N=major)
            path = rule["path"].format(N=major).replace("/opt/rh", scl_root, 1)
            for cmd in rule.get("repo_setup", {}).get(distro.id, []):
                pre.append(tuple(cmd))
        elif rule.get("packages") and not lo_hi and kernel.family is Family.CLANG:
            packages += rule["packages"]
            path = rule["path"]
            notes.append("%s ships one clang; the kernel needs clang %s" % (entry["name"], kernel.version))
        else:
            for text in rule.get("notes", {}).values():
                notes.append(text.format(N=major))
            raise NoMatchingCompiler(
                "no package of %s provides %s %d (the kernel's %s)" % (entry["name"], kernel.family, major, kernel.describe()),
                hint=" ".join(notes) or "build on a machine of the distribution that built the kernel", details=notes)
        for key, text in rule.get("notes", {}).items():
            if key == distro.id or key in distro.like:
                notes.append(text.format(N=major))
        if kernel.vendor:
            notes.append("the kernel was built by %s; %s installs the repository's current build of %s %d, whose exact "
                         "release may differ: kbuildguard checks it again after installing (match level decides)"
                         % (kernel.describe(), " ".join(packages), kernel.family, major))
    if need_tree:
        tree = entry.get("tree_uek") if "uek" in target.release and entry.get("tree_uek") else entry["tree"]
        packages += _fmt(tree, release=target.release)
    if not packages:
        return InstallPlan(distro, manager, (), (), tuple(notes), path)
    commands = []  # type: List[Tuple[str, ...]]
    manager_argv = catalogue["managers"][manager]
    if manager_argv["update"]:
        commands.append(tuple(manager_argv["update"]))
    commands.extend(pre)
    commands.append(tuple(manager_argv["install"]) + tuple(packages))
    return InstallPlan(distro, manager, tuple(packages), tuple(commands), tuple(notes), path)


def install_hint(target: KernelTarget, distro: Optional[Distro] = None) -> str:
    """One line for error messages: the command that installs the kernel's compiler here."""
    try:
        p = plan(target, distro or detect_distro(target.sysroot))
    except NoMatchingCompiler as exc:
        return "install %s (%s)" % (target.compiler.describe(), exc.message)
    cmds = " && ".join(quote(c) for c in p.commands)
    return "install it: %s (or let kbuildguard do it: kbuildguard make --install)" % cmds


def _ask(prompt: str) -> bool:
    sys.stderr.write(prompt)
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _print_plan(ctx, p: InstallPlan) -> None:
    ctx.console.info("install plan for %s (%s):" % (p.distro.name, p.manager))
    for cmd in p.commands:
        ctx.console.info("  " + quote(cmd))
    for note in p.notes:
        ctx.console.info("  note: " + note)


def execute(ctx, p: InstallPlan, yes: bool, dry_run: bool) -> bool:
    """Run the plan with consent. True if it ran; False for a dry run."""
    if dry_run or not p.commands:
        return False
    _print_plan(ctx, p)
    commands = "; ".join(quote(c) for c in p.commands)
    if os.geteuid() != 0:
        raise ConsentRequired("installing needs root, and kbuildguard never runs sudo by itself",
                              hint="run as root: %s" % commands)
    if not yes:
        if not (sys.stdin is not None and sys.stdin.isatty()):
            raise ConsentRequired("an install is needed, but there is no terminal to ask and no --yes: nothing was installed",
                                  hint="review the plan above, then run again with --yes, or run: %s" % commands)
        if not _ask("install these packages? [y/N] "):
            raise ConsentRequired("install declined: nothing was installed", hint="run: %s" % commands)
    for cmd in p.commands:
        try:
            ctx.runner.action(list(cmd), env=ctx.env)
        except CommandFailed as exc:
            raise InstallFailed("%s failed with status %d: %s may not be installed" % (
                quote(cmd), exc.returncode, ", ".join(p.packages)),
                hint="check the repositories of %s (network, mirrors, subscriptions); nothing else was changed by kbuildguard"
                     % p.distro.name)
    return True


def install_and_reselect(ctx, target: KernelTarget, level, yes: bool, dry_run: bool):
    """``make --install``: plan, install with consent, then detect again; the new compiler must match."""
    from kbuildguard import cli

    p = plan(target, detect_distro(target.sysroot, target.arch), scl_root=cli.scl_root(ctx.env))
    if dry_run:
        _print_plan(ctx, p)
        raise NoMatchingCompiler("no local compiler matches %s; --dry-run: nothing installed" % target.compiler.describe(),
                                 hint="run again without --dry-run to install: %s" % "; ".join(quote(c) for c in p.commands))
    execute(ctx, p, yes, dry_run)
    return reselect(ctx, target, level, p)


def reselect(ctx, target: KernelTarget, level, p: InstallPlan):
    """After an install: detect again; the new compiler must resolve and match the kernel's."""
    from kbuildguard import cli, toolchain

    selection = toolchain.select(ctx.runner, target, level, ctx.env, opt_root=cli.scl_root(ctx.env))
    if selection.selected is None:
        raise InstallFailed("installed %s, but still no compiler matches the kernel's %s" % (
            ", ".join(p.packages), target.compiler.describe()),
            details=["%s: %s" % (c.path, c.reason) for c in selection.candidates],
            hint="the repository's %s may be another release than the kernel's; see --match" % target.compiler.family)
    return selection


def cmd_setup(ctx) -> int:
    """``kbuildguard setup``: the kernel's build tree and matching compiler for a workstation or build root."""
    from kbuildguard import cli, kernel, toolchain

    args = ctx.args
    target = kernel.resolve(cli._selector(args))
    level = cli._match_level(ctx)
    scl = cli.scl_root(ctx.env)
    # In a sysroot the compilers that count are the sysroot's own, which we cannot run from here:
    # plan the compiler, and check what the package manager installed afterwards.
    selection = None if args.sysroot else toolchain.select(ctx.runner, target, level, ctx.env, opt_root=scl)
    need_compiler = selection is None or selection.selected is None
    need_tree = target.build_dir is None
    distro = detect_distro(target.sysroot, target.arch)
    p = plan(target, distro, need_compiler=need_compiler, need_tree=need_tree, scl_root=scl)
    if args.sysroot:
        p = p._replace(notes=p.notes + ("run these inside the sysroot (chroot %s, or your build root's shell)" % args.sysroot,))
    if args.json:
        ctx.out_json(dict(p.as_json(), kernel={"release": target.release, "compiler": target.compiler.describe(),
                                               "source": target.compiler_source, "build_dir": target.build_dir}))
    elif args.dry_run or not p.commands:
        ctx.out("kernel %s, built by %s (%s)" % (target.release, target.compiler.describe(), target.compiler_source))
        ctx.out("distribution: %s (%s)" % (distro.name, p.manager))
        for cmd in p.commands:
            ctx.out("  " + quote(cmd))
        for note in p.notes:
            ctx.out("  note: " + note)
        if not p.commands:
            ctx.out("nothing to install: %s" % (selection.selected.describe() if selection and selection.selected else "build tree present"))
    if args.dry_run or not p.commands:
        return 0
    execute(ctx, p, args.yes, False)
    target = kernel.resolve(cli._selector(args))  # the build tree may be new
    selection = reselect(ctx, target, level, p)
    ctx.console.info("ready: %s matches %s" % (selection.selected.describe(), target.compiler.describe()))
    return 0

