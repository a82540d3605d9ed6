"""Command line: argparse, output, and the one place where errors become exit codes."""

import argparse
import json
import os
import sys
import traceback
from typing import Dict, List, Optional, Sequence, Tuple

from kbuildguard import __version__
from kbuildguard.console import Console, printable
from kbuildguard.errors import (
    ConfigError,
    KbgError,
    ModuleRejected,
    UsageError,
    exit_code_table,
)

EPILOG_EXIT = "exit codes:\n" + exit_code_table()

EXAMPLES = {
    "detect": """examples:
  kbuildguard detect                              the running kernel
  kbuildguard detect --kernel 6.1.0-56-amd64      an installed build tree
  kbuildguard detect --proc-version-file v.txt    plan for a machine you only have /proc/version from
  kbuildguard detect --kernel 6.1.0-56-amd64 --json""",
    "make": """examples:
  kbuildguard make                                in a module repository, for the running kernel
  kbuildguard make --kernel 6.1.0-56-amd64        for another installed kernel
  kbuildguard make -C src/driver clean
  kbuildguard make modules_install -- INSTALL_MOD_PATH=/tmp/root -j4
  kbuildguard make --install --yes                install the kernel's compiler first if missing""",
    "check": """examples:
  kbuildguard check vendor/driver.ko --kernel 6.1.0-56-amd64
  kbuildguard check /lib/modules/6.1.0-56-amd64/extra --json""",
    "init": """examples:
  kbuildguard init                                kbuildguard.toml and kdemo.c in this folder
  kbuildguard init -C mydriver --name mydriver""",
    "setup": """examples:
  kbuildguard setup --dry-run                     what it would install for the running kernel
  kbuildguard setup --kernel 6.1.0-56-amd64 --yes
  kbuildguard setup --sysroot /var/lib/mock/root --dry-run --json""",
}


def _add_kernel_options(p: argparse.ArgumentParser, proc_version: bool = False, layout: bool = False) -> None:
    g = p.add_argument_group("target kernel (default: the running kernel)")
    g.add_argument("--kernel", metavar="RELEASE",
                   help="an installed kernel release (/lib/modules/R/build, /usr/src/kernels/R, /usr/src/linux-headers-R); "
                        "for make also `all` or R1,R2: one build per kernel")
    g.add_argument("--kernel-dir", metavar="DIR", help="a kernel build tree")
    g.add_argument("--sysroot", metavar="DIR", help="a chroot, image or build root whose kernel is the target (never trusts this machine's /proc/version)")
    if proc_version:
        g.add_argument("--proc-version-file", metavar="FILE", help="a file holding the target's /proc/version line")
    if layout:
        g.add_argument("--vmlinux", metavar="FILE", help="the kernel's BTF, vmlinux or vmlinuz: the struct module layout to compare with")
        g.add_argument("--kernel-config", metavar="FILE", help="the kernel's own .config (default: /boot/config-R, /proc/config.gz)")
    p.add_argument("--match", choices=["exact", "version", "minor", "major"],
                   help="how closely the compiler must match the kernel's (default: version = family and X.Y.Z)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kbuildguard",
        description="Build out-of-tree Linux kernel modules with the compiler that built the kernel, "
                    "and refuse any module that does not match it.",
        epilog=EPILOG_EXIT, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version="kbuildguard " + __version__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, help="show probe commands and detail")
    common.add_argument("-q", "--quiet", action="store_true", help="only errors and the result")
    common.add_argument("--debug", action="store_true", help="show a traceback for every error")
    common.add_argument("--log-file", metavar="FILE", help="write the detailed log here")
    common.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text,
                              epilog=EXAMPLES.get(name, "") + "\n\n" + EPILOG_EXIT,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("detect", "show the kernel's compiler, where each fact came from, and the local compiler that matches")
    _add_kernel_options(p, proc_version=True)
    p.add_argument("--cc", metavar="PATH", help="judge only this compiler")

    p = add("make", "build the module with the kernel's compiler and refuse any .ko that does not match")
    p.add_argument("-C", dest="directory", default=".", metavar="MODULE_DIR", help="the module repository (default: .)")
    _add_kernel_options(p, layout=True)
    p.add_argument("--cc", metavar="PATH", help="use this compiler (refused if it does not match the kernel's)")
    p.add_argument("--install", action="store_true", help="install the matching compiler if none is found (asks first)")
    p.add_argument("--yes", action="store_true", help="consent to installs without asking (RPM %%build, CI)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (compiler, generated files, make command) and exit")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="EMERGENCY ONLY: keep mismatched modules instead of quarantining them; recorded in the report")
    p.add_argument("targets", nargs="*", metavar="TARGET", help="modules (default), clean or modules_install; make arguments go after --")

    p = add("check", "verify modules built elsewhere against the target kernel")
    p.add_argument("paths", nargs="+", metavar="FILE.ko|DIR")
    _add_kernel_options(p, layout=True)

    p = add("init", "scaffold kbuildguard.toml and a module source from the templates")
    p.add_argument("-C", dest="directory", default=".", metavar="DIR")
    p.add_argument("--name", default="kdemo", help="module name (default: kdemo, the module from the original incident)")

    p = add("explain", "say why a loaded module will not unload (rmmod: Device or resource busy), branch by branch of delete_module()")
    p.add_argument("module", metavar="MODULE")
    p.add_argument("--ko", metavar="FILE", help="the module's .ko (default: found through modules.dep)")
    p.add_argument("--root", default="/", metavar="DIR", help="read proc/, sys/, lib/modules and boot/ under DIR (a captured system)")
    p.add_argument("--kernel", metavar="RELEASE", help="the loaded kernel's release (default: the running kernel's)")
    p.add_argument("--match", choices=["exact", "version", "minor", "major"], help=argparse.SUPPRESS)

    add("rpm-macros", "print the RPM macros (%%kbuildguard_make) for /usr/lib/rpm/macros.d/macros.kbuildguard")

    p = add("setup", "install the target kernel's build tree and matching compiler (asks first)")
    _add_kernel_options(p, proc_version=True)
    p.add_argument("--yes", action="store_true", help="consent without asking")
    p.add_argument("--dry-run", action="store_true", help="print the exact commands and exit")
    return parser


def split_make_args(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Everything after the first ``--`` goes to make untouched."""
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


class Context:
    """What every command needs; built once in main(), never global."""

    def __init__(self, args: argparse.Namespace, env: Dict[str, str], make_args: Sequence[str] = (), stdout=None):
        from kbuildguard.run import Runner

        verbosity = -1 if getattr(args, "quiet", False) else getattr(args, "verbose", 0)
        log = getattr(args, "log_file", None) or env.get("KBUILDGUARD_LOG")
        self.console = Console(sys.stderr, verbosity=verbosity, log_path=log)
        self.runner = Runner(self.console)
        self.env = env
        self.args = args
        self.make_args = list(make_args)  # everything after --, for make
        self.stdout = stdout or sys.stdout

    def out(self, text: str) -> None:
        self.stdout.write(text + "\n")

    def out_json(self, data) -> None:
        self.stdout.write(json.dumps(data, indent=2) + "\n")


def scl_root(env) -> str:
    """Where Software Collections (devtoolset, gcc-toolset) live: /opt/rh unless KBUILDGUARD_SCL_ROOT says otherwise."""
    return env.get("KBUILDGUARD_SCL_ROOT") or "/opt/rh"


def _selector(args: argparse.Namespace, settings=None):
    from kbuildguard.kernel import Selector

    kernel = getattr(args, "kernel", None) or (settings.kernel if settings else None)
    kernel_dir = getattr(args, "kernel_dir", None) or (settings.kernel_dir if settings else None)
    if args.kernel and args.kernel_dir:
        raise UsageError("--kernel and --kernel-dir name the target twice: give one")
    return Selector(kernel=kernel, kernel_dir=kernel_dir, sysroot=getattr(args, "sysroot", None),
                    proc_version_file=getattr(args, "proc_version_file", None))


def _match_level(ctx: "Context"):
    """The match level outside a module repository: --match > KBUILDGUARD_MATCH > default, resolved by
    project.settings like make's (which also reads kbuildguard.toml), unknown KBUILDGUARD_* included."""
    from kbuildguard import project

    empty = project.Project(os.getcwd(), None, (), project.Settings())
    return _level(project.settings({"match": getattr(ctx.args, "match", None)}, ctx.env, empty).match)


def _level(name: Optional[str]):
    from kbuildguard.toolchain import MatchLevel

    try:
        return MatchLevel(name or "version")
    except ValueError:
        raise ConfigError("match level %r is not one of exact, version, minor, major" % name)


def _describe_kernel(ctx: Context, target) -> None:
    ctx.out("kernel %s (%s)%s" % (target.release, target.arch or "arch unknown", " - the running kernel" if target.running else ""))
    ctx.out("  build tree: %s" % (target.build_dir or "none"))
    ctx.out("  compiler:   %s" % printable(target.compiler.describe()))
    ctx.out("      text:   %s" % printable(target.compiler.text))
    ctx.out("      from:   %s" % target.compiler_source)
    for fact in target.facts[1:]:
        ctx.out("      also:   %s: %s" % (fact.source, printable(fact.compiler.describe())))
    if target.linker:
        ctx.out("  linker:     %s" % printable(target.linker.describe()))
    for note in target.notes:
        ctx.console.warn(printable(note))


def _describe_selection(ctx: Context, selection) -> None:
    ctx.out("local compilers (match level %s):" % selection.level)
    if not selection.candidates:
        ctx.out("  none found on PATH or under /opt/rh")
    for c in selection.candidates:
        mark = {"match": "ok  ", "mismatch": "no  ", "error": "err "}[c.verdict]
        what = printable(c.compiler.identity.describe()) if c.compiler else "?"
        ctx.out("  %s %-28s %-40s %s" % (mark, c.path, what, printable(c.reason)))
    ctx.out("selected: %s" % (selection.selected.path if selection.selected else "none"))


def cmd_detect(ctx: Context) -> int:
    from kbuildguard import kernel, report, toolchain

    args = ctx.args
    target = kernel.resolve(_selector(args))
    if target.build_dir is None and not (args.proc_version_file or args.sysroot):
        raise kernel.missing_tree_error(target.release, target.sysroot, target.running,
                                        " (built by %s, says %s)" % (target.compiler.describe(), target.compiler_source))
    level = _match_level(ctx)
    forced = (args.cc, "--cc") if args.cc else None
    selection = toolchain.select(ctx.runner, target, level, ctx.env, forced=forced, opt_root=scl_root(ctx.env))
    if args.json:
        ctx.out_json({"kernel": report.kernel_json(target), **report.selection_json(selection)})
    else:
        _describe_kernel(ctx, target)
        _describe_selection(ctx, selection)
    if selection.selected is None:
        from kbuildguard.guard import no_match_error

        raise no_match_error(target, selection)
    return 0


def cmd_make(ctx: Context) -> int:
    from kbuildguard import guard, kbuild, kernel, project

    args = ctx.args
    module_dir = os.path.abspath(args.directory)
    if not os.path.isdir(module_dir):
        raise UsageError("-C %s: no such directory" % args.directory)
    goals = args.targets or ["modules"]
    if len(goals) != 1 or goals[0] not in kbuild.TARGETS:
        raise UsageError("target must be one of %s (got %s); make arguments go after --" % (", ".join(kbuild.TARGETS), " ".join(goals)))
    proj = project.load(module_dir)
    settings = project.settings({"match": args.match, "cc": args.cc, "kernel": args.kernel, "kernel_dir": args.kernel_dir},
                                ctx.env, proj)
    request = guard.Request(module_dir=module_dir, goal=goals[0], make_args=tuple(ctx.make_args), level=_level(settings.match),
                            cc=settings.cc, install=args.install, yes=args.yes, dry_run=args.dry_run,
                            allow_mismatch=args.allow_mismatch, json=args.json, scl_root=scl_root(ctx.env),
                            vmlinux=args.vmlinux, kernel_config=args.kernel_config)
    if not args.log_file and not ctx.env.get("KBUILDGUARD_LOG") and not args.dry_run:
        ctx.console.open_log(os.path.join(module_dir, kbuild.STATE_DIR, "build.log"))
    releases = guard.kernel_list(settings.kernel, args.sysroot)
    if releases is None:
        return guard.build_one(ctx, proj, request, _selector(args, settings)).exit_code
    if settings.kernel_dir:
        raise UsageError("--kernel all/LIST and --kernel-dir name the target twice: give one")
    if not releases:
        raise kernel.missing_tree_error("(any)", os.path.abspath(args.sysroot or "/"), False)
    return guard.build_many(ctx, proj, request, [_selector(args, settings)._replace(kernel=r) for r in releases])


def cmd_check(ctx: Context) -> int:
    from kbuildguard import kernel, report
    from kbuildguard.guard import WHY_SENTENCE
    from kbuildguard.inspect import find_modules
    from kbuildguard.verify import Verdict, reference_layout, verify_paths

    args = ctx.args
    level = _match_level(ctx)
    target = kernel.resolve(_selector(args))
    paths = find_modules(args.paths)
    if not paths:
        raise UsageError("no .ko, .ko.xz, .ko.gz or .ko.zst files under %s" % " ".join(args.paths))
    reference = reference_layout(target, args.vmlinux, kernel_config=args.kernel_config)
    reports = verify_paths(paths, target, level, reference)
    if args.json:
        ctx.out_json({"kernel": report.kernel_json(target),
                      "reference_layout": None if reference is None else {
                          "size": reference.layout.size, "init_offset": reference.layout.init_offset,
                          "exit_offset": reference.layout.exit_offset, "source": reference.source},
                      "modules": report.modules_json(reports)})
    else:
        ctx.out("kernel %s, built by %s (%s)" % (target.release, printable(target.compiler.describe()), target.compiler_source))
        if reference is None:
            ctx.out("  struct module layout: no reference (no in-tree modules installed for %s); layout not compared" % target.release)
        for rep in reports:
            ctx.out("%s: %s" % (rep.path, rep.verdict))
            for c in rep.checks:
                if not c.ok or ctx.console.verbosity > 0:
                    ctx.out("  %s %s: %s" % ("ok " if c.ok else "BAD", c.name, printable(c.message)))
                    if not c.ok:
                        ctx.out("      expected: %s" % printable(c.expected))
                        ctx.out("      found:    %s" % printable(c.found))
    bad = [r for r in reports if r.verdict is Verdict.MISMATCH]
    errors = [r for r in reports if r.verdict is Verdict.ERROR]
    if bad:
        failed = {c.name for r in bad for c in r.failed()}
        if failed == {"layout"}:
            fix = ("Their compiler is right, their struct module is not: rebuild them against a build tree configured "
                   "exactly like kernel %s (its kernel-devel/linux-headers package)" % target.release)
        else:
            fix = WHY_SENTENCE + " Rebuild them with %s" % target.compiler.describe()
        raise ModuleRejected("%d of %d module(s) do not match kernel %s" % (len(bad), len(reports), target.release), hint=fix)
    if errors:
        from kbuildguard.errors import BadInput

        raise BadInput("%d of %d module(s) could not be read" % (len(errors), len(reports)),
                       details=[r.checks[0].message for r in errors])
    return 0


def cmd_init(ctx: Context) -> int:
    from kbuildguard import render

    written = render.scaffold(os.path.abspath(ctx.args.directory), ctx.args.name)
    for _, path in written:
        ctx.out("created %s" % path)
    ctx.out("next: kbuildguard make -C %s" % ctx.args.directory)
    return 0


def cmd_setup(ctx: Context) -> int:
    from kbuildguard import provision

    return provision.cmd_setup(ctx)


def cmd_explain(ctx: Context) -> int:
    from kbuildguard import drift, explain, kernel
    from kbuildguard.verify import reference_layout, verify_path

    args = ctx.args
    root = os.path.abspath(args.root)
    mod = explain.read_loaded(root, args.module)
    if mod is None:
        raise UsageError("module %s is not loaded (no line in %s/proc/modules)" % (args.module, root.rstrip("/")))
    release = args.kernel
    if not release:
        try:
            with open(os.path.join(root, "proc/sys/kernel/osrelease"), encoding="utf-8") as f:
                release = f.read().strip()
        except OSError:
            release = os.uname().release
    unseen = []  # what we could not see, said plainly
    config = None
    target = None
    try:
        target = kernel.resolve(kernel.Selector(kernel=release, sysroot=root if root != "/" else None))
    except KbgError as exc:
        unseen.append("the kernel's build records (%s)" % exc.message)
    if target is not None:
        path = drift.kernel_config_path(target)
        if path:
            config = drift.read_config(path)
    if config is None:
        unseen.append("the kernel's configuration (/boot/config-%s, /proc/config.gz)" % release)
    module_unload = None if config is None else config.get("CONFIG_MODULE_UNLOAD") == "y"
    if module_unload is None and mod.refcnt is not None:
        module_unload = True  # /sys/module/M/refcnt exists only with CONFIG_MODULE_UNLOAD
    force = None if config is None else config.get("CONFIG_MODULE_FORCE_UNLOAD") == "y"
    ko = args.ko or explain.find_ko(root, release, mod.name)
    has_exit = None
    layout_problem = None
    report = None
    if ko and target is not None:
        report = verify_path(ko, target, _match_level(ctx), reference_layout(target))
        if report.info is not None and report.info.layout is not None:
            has_exit = report.info.layout.exit_offset is not None
        for c in report.checks:
            if not c.ok and c.name in ("layout", "compiler"):
                layout_problem = (layout_problem + "; " if layout_problem else "") + c.message
    elif not ko:
        unseen.append("the module's .ko (not in modules.dep; give --ko FILE)")
    findings = explain.diagnose(mod, module_unload, force, has_exit, layout_problem)
    if args.json:
        ctx.out_json({"module": mod._asdict(), "ko": ko, "findings": [f._asdict() for f in findings],
                      "checks": [c._asdict() for c in report.checks] if report else None, "not_seen": unseen})
    else:
        ctx.out("%s: %s, refcnt %s, %s%s" % (mod.name, mod.state, "?" if mod.refcnt is None else mod.refcnt,
                                            "used by " + ", ".join(mod.users) if mod.users else "no users",
                                            ", [permanent]" if mod.permanent else ""))
        if ko:
            ctx.out("file: %s" % ko)
        for f in findings:
            ctx.out("  %s (%s): %s" % (f.errno, f.branch, printable(f.text)))
        if not findings:
            ctx.out("  nothing in delete_module() stops it: rmmod %s should work" % mod.name)
        for u in unseen:
            ctx.out("  could not see: %s" % u)
    return 0


def cmd_rpm_macros(ctx: Context) -> int:
    import pkgutil

    data = pkgutil.get_data("kbuildguard", "data/macros.kbuildguard")
    ctx.stdout.write(data.decode("utf-8"))
    return 0


COMMANDS = {"detect": cmd_detect, "make": cmd_make, "check": cmd_check, "init": cmd_init, "setup": cmd_setup,
            "rpm-macros": cmd_rpm_macros, "explain": cmd_explain}


def main(argv: Optional[Sequence[str]] = None, env: Optional[Dict[str, str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if env is None else env)
    own, make_args = split_make_args(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(own)
    except SystemExit as exc:  # argparse: --help/--version exit 0, bad usage exits 2
        return int(exc.code or 0)
    if not args.command:
        parser.print_help(sys.stderr)
        return UsageError.exit_code
    if make_args and args.command != "make":
        sys.stderr.write("kbuildguard: usage error: only `make` takes arguments after --\n")
        return UsageError.exit_code
    ctx = Context(args, env, make_args)
    try:
        return COMMANDS[args.command](ctx)
    except KbgError as exc:
        if args.debug:
            traceback.print_exc()
        ctx.console.fail(exc.title, printable(exc.message), [printable(d) for d in exc.details],
                         printable(exc.hint) if exc.hint else None)
        return exc.exit_code
    except KeyboardInterrupt:
        ctx.console.error("interrupted", "stopped by Ctrl-C")
        return 130
    except BrokenPipeError:
        # `kbuildguard detect | head`: the reader left; say nothing more, and keep Python's own
        # flush at exit from raising again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        ctx.console.close()
