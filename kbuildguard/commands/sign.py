"""``kbuildguard sign``: sign modules already built (an RPM's buildroot after rpm's strip step) as
make --sign does, then verify them as check does. rpm strips after %install, and a stripped module
loses its signature (rpm #1824): the RPM macros run this from %__spec_install_post."""

from typing import NamedTuple, Optional, Tuple

from kbuildguard.build import modsign
from kbuildguard.commands import check
from kbuildguard.commands.common import level_of, target_and_modules
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.gates.verify import verify_paths
from kbuildguard.settings import Common


class SignOptions(NamedTuple):
    common: Common
    paths: Tuple[str, ...]
    sig_enforce: Optional[bool] = None
    trusted_certs: Tuple[str, ...] = ()


def run(ctx: Context, opts: SignOptions) -> int:
    settings, target, paths = target_and_modules(ctx, opts.common, opts.paths, "sign")
    root = target.sysroot.rstrip("/") if target.sysroot not in ("", "/") else ""
    signer = modsign.prepare(target, target.tree_config, settings, root, ctx.cwd)
    opts_check = check.CheckOptions(opts.common, opts.paths, trusted_certs=opts.trusted_certs, sig_enforce=opts.sig_enforce)
    expect = check.expectation(ctx, target, level_of(settings), opts_check)
    # only what passes every other gate is signed (make --sign's rule): a module the kernel would
    # refuse anyway must not leave here carrying a good signature
    before = verify_paths(paths, expect._replace(sign_later=True))
    refused = [r for r in before if r.failed()]
    if refused:
        check.print_reports(ctx, expect, refused)
        check.verdict(target, refused)  # raises: nothing was signed
    ctx.console.info("signing with %s" % printable(modsign.describe(signer)))
    with ctx.console.step("sign %d module(s) with %s" % (len(paths), signer.hash)):
        modsign.sign(ctx.runner, signer, paths, ctx.env)
    reports = modsign.verify_signed(ctx.runner, signer, paths, expect, ctx.env)
    check.print_reports(ctx, expect, reports)
    return check.verdict(target, reports)
