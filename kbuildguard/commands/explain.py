"""``kbuildguard explain``: why a loaded module will not unload (explain/unload.py), or, given a .ko or
``--dmesg FILE``, why a module would not load (explain/load.py)."""

import os
from typing import NamedTuple, Optional, Tuple

from kbuildguard import bounded, report
from kbuildguard.commands.check import CheckOptions, expectation
from kbuildguard.commands.common import level_of, selector_for, settings_for
from kbuildguard.console import one_line, printable
from kbuildguard.context import Context
from kbuildguard.errors import BadInput, KbgError, ToolNotFound
from kbuildguard.explain import load, unload
from kbuildguard.explain.loadlog import decode, module_name, text_of
from kbuildguard.gates.model import EFFECT_ORDER, Effect
from kbuildguard.gates.verify import Expectation
from kbuildguard.run import CommandFailed
from kbuildguard.settings import Common, Settings
from kbuildguard.target import kernel

KO_SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst", ".ko.bz2")


class ExplainOptions(NamedTuple):
    common: Common
    module: str
    root: str = "/"
    ko: Optional[str] = None
    dmesg: Optional[str] = None  # a file holding the kernel log, "-" for stdin


def is_module_file(ctx: Context, name: str) -> bool:
    """MODULE names a file (load-failure mode), not a loaded module."""
    return name.endswith(KO_SUFFIXES) or os.path.isfile(ctx.path(name))


def run(ctx: Context, opts: ExplainOptions) -> int:
    if opts.dmesg is not None or is_module_file(ctx, opts.module):
        return run_load(ctx, opts)
    settings = settings_for(ctx, opts.common.cli, "explain")
    root = ctx.path(opts.root)
    found = unload.gather(root, opts.module, settings.kernel.value, ctx.path(opts.ko) if opts.ko else None,
                           level_of(settings), env=ctx.env)
    mod = found.module
    if ctx.json:
        ctx.out_json(dict(report.explanation_json(found), settings=settings.as_json()))
        return 0
    ctx.out("%s: %s, refcnt %s, %s%s" % (one_line(mod.name), mod.state, "?" if mod.refcnt is None else mod.refcnt,
                                        "used by " + ", ".join(mod.users) if mod.users else "no users",
                                        ", [permanent]" if mod.permanent else ""))
    if found.ko:
        ctx.out("file: %s" % one_line(found.ko))
    for f in found.findings:
        ctx.out("  %s (%s): %s" % (f.errno, f.branch, printable(f.text)))
    if not found.findings:
        ctx.out("  nothing in delete_module() stops it: rmmod %s should work" % one_line(mod.name))
    for u in found.not_seen:
        ctx.out("  could not see: %s" % printable(u))
    return 0


def read_log(ctx: Context, dmesg: Optional[str]) -> Tuple[str, str]:
    """(text, where it came from): the file, stdin, or the running kernel's buffer through `dmesg`."""
    if dmesg == "-":
        return text_of(bounded.read_text_stream(ctx.stdin, "stdin", bounded.KERNEL_LOG), "stdin"), "stdin"
    if dmesg is not None:
        path = ctx.path(dmesg)
        try:
            data = bounded.read_file(path, bounded.KERNEL_LOG.size, bounded.KERNEL_LOG.what)
        except OSError as exc:
            raise BadInput("cannot read %s: %s" % (path, exc.strerror or exc),
                           hint="give a file holding dmesg or journalctl -k output, or '-' for stdin")
        return decode(data, path), path
    try:
        done = ctx.runner.probe(["dmesg"])
    except CommandFailed as exc:
        said = exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else "exit status %d" % exc.returncode
        raise BadInput("cannot read the kernel log: %s" % said,
                       hint="run as root, or give the log: --dmesg FILE (sudo dmesg > FILE, or journalctl -k > FILE; "
                            "'-' reads stdin)")
    except ToolNotFound as exc:
        raise ToolNotFound(exc.message, hint="give the log: --dmesg FILE (journalctl -k > FILE; '-' reads stdin)")
    return done.stdout, "dmesg"


def target_expectation(ctx: Context, settings: Settings, opts: ExplainOptions) -> Tuple[Optional[Expectation], str]:
    """What `check` holds the file to, for the target kernel (--kernel, --kernel-dir, --sysroot, or the
    running kernel); None and why when that kernel's build records cannot be found."""
    try:
        target = kernel.resolve(selector_for(settings))
        return expectation(ctx, target, level_of(settings), CheckOptions(common=opts.common, paths=())), ""
    except KbgError as exc:
        return None, "the file's own check: no target kernel (%s); give --kernel, --kernel-dir or --sysroot" % exc.message


def run_load(ctx: Context, opts: ExplainOptions) -> int:
    settings = settings_for(ctx, opts.common.cli, "explain")
    if opts.ko:
        ko: Optional[str] = ctx.path(opts.ko)
        name = module_name(opts.module)
    elif is_module_file(ctx, opts.module):
        ko = ctx.path(opts.module)
        name = module_name(opts.module)
    else:
        ko, name = None, opts.module
    if ko is not None and not os.path.isfile(ko):
        raise BadInput("%s: no such file" % ko, hint="give the module's .ko (plain, .xz, .gz, .zst or .bz2)")
    root = ctx.path(opts.root)
    if os.path.realpath(root) != "/":
        # --root R: R's kernel, never the host's (its dmesg, its /boot, its running kernel): the help
        # says "read proc/, sys/, lib/modules and boot/ under DIR" (issue 22)
        unseen = []
        if opts.dmesg is not None:
            text, source = read_log(ctx, opts.dmesg)
        else:
            text, source = unload.root_log(root)
            if not source:
                source = "no kernel log"
                unseen.append("a kernel log: %s has none of %s (give --dmesg FILE)" % (
                    root.rstrip("/"), ", ".join(unload.ROOT_LOGS)))
        expect = None
        if ko is not None:
            expect, lacks = unload.root_expectation(root, settings.kernel.value, level_of(settings), ctx.env)
            unseen.extend(lacks)
        found = load.gather_load(text, source, name, ko, expect, unseen)
    else:
        text, source = read_log(ctx, opts.dmesg)
        expect, why_not = target_expectation(ctx, settings, opts) if ko is not None else (None, "")
        found = load.gather_load(text, source, name, ko, expect, [why_not] if why_not else [])
    if ctx.json:
        ctx.out_json(dict(report.load_explanation_json(found), settings=settings.as_json()))
        return 0
    print_load(ctx, found)
    return 0


EFFECT_LABEL = {Effect.REJECTED: "rejected at load", Effect.TAINTS: "taints", Effect.CANNOT_UNLOAD: "cannot unload",
                Effect.OK: "warning", Effect.NOT_CHECKED: "note"}


def print_load(ctx: Context, found: "load.LoadExplanation") -> None:
    """One line per failure first (effect: the kernel's words: cause; fix), worst first, then the evidence."""
    if not found.findings:
        ctx.out("the log has no loader message for %s (%s, %d lines)" % (one_line(found.module), printable(found.log_source),
                                                                         found.log_lines))
    _print_failures(ctx, found)
    _print_evidence(ctx, found)
    _print_predicted(ctx, found)
    if found.checks is not None and not found.findings and not found.predicted:
        ctx.out("the file's own check finds nothing that stops it loading")
    for u in found.not_seen:
        ctx.out("could not see: %s" % printable(u))


def _print_failures(ctx: Context, found: "load.LoadExplanation") -> None:
    failures = [f for f in found.findings if f.fix or f.effect is Effect.REJECTED]  # not the expected out-of-tree taint
    for f in sorted(failures, key=lambda f: -EFFECT_ORDER.index(f.effect)):
        fix = "; fix: %s" % f.fix if f.fix else ""
        ctx.out(printable("%s: %s: %s%s" % (EFFECT_LABEL[f.effect], f.summary, f.cause, fix)))


def _print_evidence(ctx: Context, found: "load.LoadExplanation") -> None:
    """Each finding with its line numbers, the kernel's text, and what the file's check says of it."""
    if found.findings:
        ctx.out("")
        ctx.out("%s: %d loader message(s) in %s" % (one_line(found.module), sum(len(f.lines) for f in found.findings),
                                                   printable(found.log_source)))
    for f in found.findings:
        where = "line %s" % ", ".join(str(n) for n in f.lines[:6]) + (" ..." if len(f.lines) > 6 else "")
        ctx.out("  %s [%s%s]: %s" % (where, f.gate or "-", "" if f.names_module else ", names no module",
                                    printable(f.text)))
        for c in f.context:
            ctx.out("      %s" % printable(c))
        if f.file is not load.FileSays.NO_FILE:
            ctx.out("      the file: %s%s" % (f.file, ": " + printable(f.file_says) if f.file_says else ""))


def _print_predicted(ctx: Context, found: "load.LoadExplanation") -> None:
    if found.predicted:
        ctx.out("predicted by the file's check, not in the log:")
    for p in found.predicted:
        ctx.out("  %s (%s): %s" % (EFFECT_LABEL[p.check.effect], p.check.name, printable(p.check.message)))
        ctx.out("      why not logged: %s" % p.why)
        if p.check.fix:
            ctx.out("      fix: %s" % printable(p.check.fix))
