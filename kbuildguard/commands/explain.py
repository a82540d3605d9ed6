"""``kbuildguard explain``: print why a loaded module will not unload (the evidence is explain.gather's)."""

from typing import NamedTuple, Optional

from kbuildguard import explain, report
from kbuildguard.commands.common import level_of, settings_for
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.settings import Common


class ExplainOptions(NamedTuple):
    common: Common
    module: str
    root: str = "/"
    ko: Optional[str] = None


def run(ctx: Context, opts: ExplainOptions) -> int:
    settings = settings_for(ctx, opts.common.cli)
    root = ctx.path(opts.root)
    found = explain.gather(root, opts.module, settings.kernel.value, ctx.path(opts.ko) if opts.ko else None,
                           level_of(settings))
    mod = found.module
    if ctx.json:
        ctx.out_json(dict(report.explanation_json(found), settings=settings.as_json()))
        return 0
    ctx.out("%s: %s, refcnt %s, %s%s" % (mod.name, mod.state, "?" if mod.refcnt is None else mod.refcnt,
                                        "used by " + ", ".join(mod.users) if mod.users else "no users",
                                        ", [permanent]" if mod.permanent else ""))
    if found.ko:
        ctx.out("file: %s" % printable(found.ko))
    for f in found.findings:
        ctx.out("  %s (%s): %s" % (f.errno, f.branch, printable(f.text)))
    if not found.findings:
        ctx.out("  nothing in delete_module() stops it: rmmod %s should work" % mod.name)
    for u in found.not_seen:
        ctx.out("  could not see: %s" % printable(u))
    return 0
