"""``kbuildguard make``: options to a build Request; the pipeline itself is build/pipeline.py."""

import os
from typing import List, NamedTuple, Optional, Tuple

from kbuildguard import cireport
from kbuildguard.build import kbuild
from kbuildguard.build import pipeline as build
from kbuildguard.cireport import KernelResult, ReportPaths
from kbuildguard.commands.common import (
    FetchOptions,
    fetched_releases,
    fetched_selector,
    forced_of,
    level_of,
    project_and_settings,
    selector_for,
)
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.errors import ConfigError, Interrupted, KbgError, UsageError
from kbuildguard.settings import Common
from kbuildguard.target import kconfig, kernel


class MakeOptions(NamedTuple):
    common: Common
    directory: str
    targets: Tuple[str, ...]
    install: bool = False
    yes: bool = False
    dry_run: bool = False
    allow_mismatch: bool = False
    vmlinux: Optional[str] = None
    kernel_config: Optional[str] = None
    btf: bool = False
    symvers: Tuple[str, ...] = ()  # --symvers: other modules' Module.symvers
    sign: bool = False
    sig_enforce: Optional[bool] = None
    trusted_certs: Tuple[str, ...] = ()
    fetch: FetchOptions = FetchOptions()
    reports: ReportPaths = ReportPaths()  # --junit, --sarif, --markdown


def with_extra_symbols(ctx: Context, make_args: Tuple[str, ...], symvers: Tuple[str, ...]) -> Tuple[str, ...]:
    """--symvers FILE joins KBUILD_EXTRA_SYMBOLS (kbuild's own list, space-separated: no spaces in a path)."""
    if not symvers:
        return make_args
    paths = [ctx.path(p) for p in symvers]
    for path in paths:
        if any(ch.isspace() for ch in path):
            raise UsageError("--symvers %s: kbuild's KBUILD_EXTRA_SYMBOLS cannot hold a path with spaces" % printable(path))
        if not os.path.isfile(path):
            raise UsageError("--symvers %s: no such file" % printable(path))
    given = [a.split("=", 1)[1] for a in make_args if a.startswith("KBUILD_EXTRA_SYMBOLS=")]
    rest = tuple(a for a in make_args if not a.startswith("KBUILD_EXTRA_SYMBOLS="))
    return rest + ("KBUILD_EXTRA_SYMBOLS=" + " ".join((given[-1].split() if given else []) + paths),)


def run(ctx: Context, opts: MakeOptions) -> int:
    """The build, then the CI reports of what was verified (also when a kernel failed: that is
    what CI must show); a report that cannot be written after a failed build is a warning, so the
    build's own exit code stands."""
    paths = cireport.check_paths(opts.reports, ctx.cwd)
    if not paths.wanted() or opts.dry_run:
        return build_all(ctx, opts, None)
    sink: List[KernelResult] = []
    try:
        code = build_all(ctx, opts, sink)
    except Interrupted:
        raise
    except KbgError:
        try:
            _write(ctx, paths, sink)
        except KbgError as exc:
            ctx.console.warn("%s: %s" % (exc.title, exc.message))
        raise
    _write(ctx, paths, sink)
    return code


def _write(ctx: Context, paths: ReportPaths, sink: List[KernelResult]) -> None:
    for path in cireport.write(paths, sink, ctx.cwd):
        ctx.console.info("report: %s" % printable(path))


def build_all(ctx: Context, opts: MakeOptions, sink: Optional[List[KernelResult]]) -> int:
    module_dir = ctx.path(opts.directory)
    if not os.path.isdir(module_dir):
        raise UsageError("-C %s: no such directory" % printable(opts.directory))
    goals = list(opts.targets) or ["modules"]
    if len(goals) != 1 or goals[0] not in kbuild.TARGETS:
        raise UsageError("target must be one of %s (got %s); make arguments go after --" % (
            ", ".join(kbuild.TARGETS), printable(" ".join(goals))))
    if opts.kernel_config:
        kconfig.read_named(ctx.path(opts.kernel_config))  # before anything is built
    loaded, settings = project_and_settings(ctx, opts.common.cli, "make", module_dir)
    assert loaded is not None  # settings.reads_project_file("make")
    proj = loaded
    log = settings.log.value
    req = build.Request(
        module_dir=module_dir, goal=goals[0],
        make_args=with_extra_symbols(ctx, tuple(opts.common.cli.make_args), opts.symvers), level=level_of(settings),
        forced=forced_of(settings), install=opts.install, yes=opts.yes, dry_run=opts.dry_run,
        allow_mismatch=opts.allow_mismatch, vmlinux=ctx.path(opts.vmlinux) if opts.vmlinux else None,
        kernel_config=ctx.path(opts.kernel_config) if opts.kernel_config else None,
        scl_root=settings.scl_root.value or "/opt/rh", settings=settings,
        log_path=ctx.path(log) if log else os.path.join(module_dir, ".kbuildguard", "build.log"), btf=opts.btf,
        sign=opts.sign, sig_enforce=opts.sig_enforce, trusted_certs=tuple(ctx.path(c) for c in opts.trusted_certs))
    if (opts.common.cli.sign_key or opts.common.cli.sign_cert) and not opts.sign:
        raise UsageError("--sign-key and --sign-cert are for --sign: add --sign")
    if opts.fetch.enabled:
        got = fetched_releases(ctx, settings, opts.fetch, many=True)
        many = len(got) > 1 or "," in (settings.kernel.value or "") or (settings.kernel.value or "").startswith("available:")
        return build.run(ctx, proj, req, [fetched_selector(settings, g) for g in got], many=many, sink=sink)
    releases = build.kernel_list(settings.kernel.value, settings.sysroot.value)
    if releases is None:
        return build.run(ctx, proj, req, [selector_for(settings)], many=False, sink=sink)
    if settings.kernel_dir.value:
        raise ConfigError("%s and %s name the target twice: give one" % (settings.kernel.describe(), settings.kernel_dir.describe()))
    if not releases:
        raise kernel.missing_tree_error("(any)", os.path.abspath(settings.sysroot.value or "/"), False)
    return build.run(ctx, proj, req, [selector_for(settings, kernel=r) for r in releases], many=True, sink=sink)
