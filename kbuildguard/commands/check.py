"""``kbuildguard check``: verify modules built elsewhere against the target kernel."""

from typing import Dict, List, NamedTuple, Optional, Tuple

from kbuildguard import cireport, report
from kbuildguard.cireport import KernelResult, ModuleResult, ReportPaths
from kbuildguard.commands.common import FetchOptions, absolute, kernel_selectors, level_of, settings_for
from kbuildguard.console import one_line, printable
from kbuildguard.context import Context
from kbuildguard.errors import BadInput, CannotWrite, ModuleRejected, UsageError
from kbuildguard.formats.module import ModuleInfo, find_modules, read_module
from kbuildguard.gates import loader, trust
from kbuildguard.gates.answers import answers_at
from kbuildguard.gates.expectation import expect as build_expectation
from kbuildguard.gates.model import Effect
from kbuildguard.gates.pool import verify_paths
from kbuildguard.gates.verify import Expectation, ModuleReport, Verdict, fix_hint, headline, with_confirmed_signatures
from kbuildguard.probecache import cache_home
from kbuildguard.report import ForecastRow, forecast_row
from kbuildguard.settings import Common
from kbuildguard.target import kconfig, kernel
from kbuildguard.target.drift import compare
from kbuildguard.target.kernel import KernelTarget, Selector
from kbuildguard.toolchain import MatchLevel


class CheckOptions(NamedTuple):
    common: Common
    paths: Tuple[str, ...]
    vmlinux: Optional[str] = None
    kernel_config: Optional[str] = None
    symvers: Tuple[str, ...] = ()
    trusted_certs: Tuple[str, ...] = ()  # --trusted-cert: certificates the kernel trusts
    sig_enforce: Optional[bool] = None  # --sig-enforce yes|no: the target's enforcement, stated
    mokutil: Tuple[str, ...] = ()  # --mokutil: the target's mokutil output (Secure Boot, MOK and db keys)
    fetch: FetchOptions = FetchOptions()
    reports: ReportPaths = ReportPaths()  # --junit, --sarif, --markdown
    no_cache: bool = False  # --no-cache (or KBUILDGUARD_NO_CACHE=1): no remembered answers (gates/answers.py)


def expectation(ctx: Context, target: KernelTarget, level: MatchLevel, opts: CheckOptions) -> Expectation:
    config_file = ctx.path(opts.kernel_config) if opts.kernel_config else None
    if config_file:
        kconfig.read_named(config_file, target.arch, target.release)  # refused here: the reads below fall back to the tree's quietly
    try:
        config = kconfig.read_kernel(target.release, target.sysroot, target.running, config_file)
    except BadInput:  # the loader's gates read it again and say what they could not see
        config = None
    facts = loader.gather(target, [ctx.path(p) for p in opts.symvers], sig_enforce=opts.sig_enforce,
                          trusted_certs=[ctx.path(c) for c in opts.trusted_certs], config_file=config_file,
                          read=config.values if config is not None else None,
                          image=ctx.path(opts.vmlinux) if opts.vmlinux else None,
                          mokutil=[ctx.path(m) for m in opts.mokutil], env=ctx.env)
    return build_expectation(target, level, facts, vmlinux=ctx.path(opts.vmlinux) if opts.vmlinux else None,
                             cache_dir=cache_home(ctx.env), drift=compare(config, target.tree_config))


def print_reports(ctx: Context, expect: Expectation, reports: List[ModuleReport]) -> None:
    target = expect.target
    quiet = ctx.console.verbosity < 0  # -q: one line per module that is not plainly ok, and the result
    if not quiet:
        ctx.out("kernel %s, built by %s (%s)" % (target.release, one_line(target.compiler.describe()), target.compiler_source))
        if expect.reference is None:
            ctx.out("  layout not compared: %s" % expect.not_compared)
    for rep in reports:
        line = headline(rep)
        if quiet:
            if line != "ok":
                ctx.out("%s: %s" % (one_line(rep.path), one_line(line)))
            continue
        ctx.out("%s: %s" % (one_line(rep.path), one_line(line)))
        for c in rep.checks:
            if c.ok and c.effect is Effect.OK and ctx.console.verbosity <= 0:
                continue
            mark = "BAD " if not c.ok else "ok  " if c.effect is Effect.OK else "note"
            ctx.out("  %s %s [%s]: %s" % (mark, c.name, c.effect, one_line(c.message)))
            if not c.ok:
                ctx.out("      expected: %s" % one_line(c.expected))
                ctx.out("      found:    %s" % one_line(c.found))
                if c.fix:
                    ctx.out("      fix:      %s" % one_line(c.fix))


def verdict(target: KernelTarget, reports: List[ModuleReport]) -> int:
    """0, or the error for the worst module: a mismatch (8) before an unreadable file (3)."""
    bad = [r for r in reports if r.verdict is Verdict.MISMATCH]
    if bad:
        raise ModuleRejected("%d of %d module(s) do not match kernel %s" % (len(bad), len(reports), target.release),
                             hint=fix_hint([c for r in bad for c in r.failed()]))
    errors = [r for r in reports if r.verdict is Verdict.ERROR]
    if errors:
        raise BadInput("%d of %d module(s) could not be read" % (len(errors), len(reports)),
                       details=[r.checks[0].message for r in errors])
    return 0


def checked(ctx: Context, target: KernelTarget, level: MatchLevel, opts: CheckOptions,
            paths: List[str]) -> Tuple[Expectation, List[ModuleReport]]:
    """Every gate for every module against one kernel, signatures confirmed with openssl."""
    expect = expectation(ctx, target, level, opts)
    reports = verify_paths(paths, expect, answers=answers_at(cache_home(ctx.env), ctx.env, off=opts.no_cache))
    assert expect.loader is not None
    known = expect.loader.signing.trust
    return expect, with_confirmed_signatures(
        reports, lambda info, found: trust.confirm(ctx.runner, info, found, known, ctx.env))


def ci_result(release: str, reports: List[ModuleReport]) -> KernelResult:
    return KernelResult(kernel=release, modules=tuple(ModuleResult(r.path, r) for r in reports))


def write_reports(ctx: Context, paths: ReportPaths, results: List[KernelResult]) -> None:
    """--junit/--sarif/--markdown, written before the verdict: a refusal is what CI most needs to see.
    A report that cannot be written is exit 14 when all passed, a warning when the verdict fails
    (its exit code, 8 or 3, is the one that must stand), as for make."""
    try:
        for path in cireport.write(paths, results, ctx.cwd):
            ctx.console.info("report: %s" % printable(path))
    except CannotWrite as exc:
        if all(m.report.verdict is Verdict.OK for k in results for m in k.modules):
            raise
        ctx.console.warn("%s: %s" % (exc.title, exc.message))


def run(ctx: Context, opts: CheckOptions) -> int:
    opts = opts._replace(reports=cireport.check_paths(opts.reports, ctx.cwd))
    settings = settings_for(ctx, opts.common.cli, "check")
    selectors, many = kernel_selectors(ctx, settings, opts.fetch, "check", many=True)
    paths = find_modules(absolute(ctx, opts.paths))
    if not paths:
        raise UsageError("no .ko, .ko.xz, .ko.gz, .ko.zst or .ko.bz2 files under %s" % printable(" ".join(opts.paths)))
    if many:
        return forecast(ctx, opts, level_of(settings), selectors, paths)
    target = kernel.resolve(selectors[0])
    expect, reports = checked(ctx, target, level_of(settings), opts, paths)
    write_reports(ctx, opts.reports, [ci_result(target.release, reports)])
    if ctx.json:
        ctx.out_json(dict(report.expectation_json(expect), settings=settings.as_json(), modules=report.modules_json(reports)))
    else:
        print_reports(ctx, expect, reports)
    return verdict(target, reports)


def read_infos(paths: List[str]) -> Dict[str, Optional[ModuleInfo]]:
    """Each module read once, for the forecast's CRC comparison (the gates read their own copy)."""
    infos: Dict[str, Optional[ModuleInfo]] = {}
    for path in paths:
        try:
            infos[path] = read_module(path)
        except BadInput:
            infos[path] = None
    return infos


def forecast(ctx: Context, opts: CheckOptions, level: MatchLevel, selectors: List[Selector], paths: List[str]) -> int:
    """One row per kernel x module: the effect, the deciding gate, and why a rebuild is needed."""
    if opts.vmlinux or opts.kernel_config:
        # one file cannot be every kernel's: each kernel's own /boot/vmlinuz-R and config-R are read
        raise UsageError("--vmlinux and --kernel-config name one kernel's files: give them with one --kernel, not %d"
                         % len(selectors))
    infos = read_infos(paths)
    rows: List[ForecastRow] = []
    kernels = []
    results: List[KernelResult] = []
    for selector in selectors:
        target = kernel.resolve(selector)
        expect, reports = checked(ctx, target, level, opts, paths)
        assert expect.loader is not None
        exports = expect.loader.exports
        kernels.append(dict(report.kernel_summary_json(target), root=target.sysroot,
                            module_symvers=list(exports.sources) if exports else []))
        results.append(ci_result(target.release, reports))
        for rep in reports:
            rows.append(forecast_row(target.release, rep, infos.get(rep.path), exports.symbols if exports else None))
    write_reports(ctx, opts.reports, results)
    if ctx.json:
        ctx.out_json({"kernels": kernels, "forecast": report.forecast_json(rows)})
    else:
        print_forecast(ctx, rows)
    refused = [r for r in rows if r.verdict is not Verdict.OK]
    if refused:
        raise ModuleRejected("%d of %d kernel x module pair(s) need a rebuild: %s" % (
            len(refused), len(rows), ", ".join(sorted({r.kernel for r in refused}, key=lambda k: [x.kernel for x in rows].index(k)))))
    return 0


def print_forecast(ctx: Context, rows: List[ForecastRow]) -> None:
    width = max([len(r.kernel) for r in rows] + [6])
    names = {r.module: r.module.rsplit("/", 1)[-1] for r in rows}
    mwidth = max([len(n) for n in names.values()] + [6])
    ctx.out("%-*s  %-*s  %-16s  %-15s  %s" % (width, "KERNEL", mwidth, "MODULE", "EFFECT", "GATE", "WHY"))
    for r in rows:
        ctx.out("%-*s  %-*s  %-16s  %-15s  %s" % (width, one_line(r.kernel), mwidth, one_line(names[r.module]),
                                                 r.effect, r.gate or "-", one_line(r.reason)))
