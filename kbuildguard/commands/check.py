"""``kbuildguard check``: verify modules built elsewhere against the target kernel."""

from typing import List, NamedTuple, Optional, Tuple

from kbuildguard import report
from kbuildguard.commands.common import level_of, target_and_modules
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.errors import BadInput, ModuleRejected
from kbuildguard.gates import loader, trust
from kbuildguard.gates.model import Effect
from kbuildguard.gates.verify import (
    Expectation,
    ModuleReport,
    Verdict,
    find_reference,
    fix_hint,
    headline,
    verify_paths,
    with_cause,
    with_confirmed_signatures,
)
from kbuildguard.settings import Common
from kbuildguard.target import kconfig
from kbuildguard.target.drift import compare
from kbuildguard.target.kernel import KernelTarget
from kbuildguard.toolchain import MatchLevel


class CheckOptions(NamedTuple):
    common: Common
    paths: Tuple[str, ...]
    vmlinux: Optional[str] = None
    kernel_config: Optional[str] = None
    symvers: Tuple[str, ...] = ()
    trusted_certs: Tuple[str, ...] = ()  # --trusted-cert: certificates the kernel trusts
    sig_enforce: Optional[bool] = None  # --sig-enforce yes|no: the target's enforcement, stated


def expectation(ctx: Context, target: KernelTarget, level: MatchLevel, opts: CheckOptions) -> Expectation:
    reference, not_compared = find_reference(target, ctx.path(opts.vmlinux) if opts.vmlinux else None)
    config_file = ctx.path(opts.kernel_config) if opts.kernel_config else None
    if config_file:
        kconfig.read_named(config_file)  # refused here: the reads below fall back to the tree's quietly
    try:
        drift = compare(target, config_file)
    except BadInput:  # the loader's gates read it again and say what they could not see
        drift = None
    if reference is not None:
        reference = with_cause(reference, drift)
    facts = loader.gather(target, [ctx.path(p) for p in opts.symvers], sig_enforce=opts.sig_enforce,
                          trusted_certs=[ctx.path(c) for c in opts.trusted_certs], config_file=config_file,
                          read=drift.kernel if drift is not None else None)
    return Expectation(target, level, reference, not_compared, facts)


def print_reports(ctx: Context, expect: Expectation, reports: List[ModuleReport]) -> None:
    target = expect.target
    quiet = ctx.console.verbosity < 0  # -q: one line per module that is not plainly ok, and the result
    if not quiet:
        ctx.out("kernel %s, built by %s (%s)" % (target.release, printable(target.compiler.describe()), target.compiler_source))
        if expect.reference is None:
            ctx.out("  layout not compared: %s" % expect.not_compared)
    for rep in reports:
        line = headline(rep)
        if quiet:
            if line != "ok":
                ctx.out("%s: %s" % (printable(rep.path), printable(line)))
            continue
        ctx.out("%s: %s" % (printable(rep.path), printable(line)))
        for c in rep.checks:
            if c.ok and c.effect is Effect.OK and ctx.console.verbosity <= 0:
                continue
            mark = "BAD " if not c.ok else "ok  " if c.effect is Effect.OK else "note"
            ctx.out("  %s %s [%s]: %s" % (mark, c.name, c.effect, printable(c.message)))
            if not c.ok:
                ctx.out("      expected: %s" % printable(c.expected))
                ctx.out("      found:    %s" % printable(c.found))
                if c.fix:
                    ctx.out("      fix:      %s" % printable(c.fix))


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


def run(ctx: Context, opts: CheckOptions) -> int:
    settings, target, paths = target_and_modules(ctx, opts.common, opts.paths, "check")
    expect = expectation(ctx, target, level_of(settings), opts)
    reports = verify_paths(paths, expect)
    assert expect.loader is not None
    known = expect.loader.signing.trust
    reports = with_confirmed_signatures(reports, lambda info, found: trust.confirm(ctx.runner, info, found, known, ctx.env))
    if ctx.json:
        ctx.out_json(dict(report.expectation_json(expect), settings=settings.as_json(), modules=report.modules_json(reports)))
    else:
        print_reports(ctx, expect, reports)
    return verdict(target, reports)
