"""``kbuildguard sign``: sign modules already built (an RPM's buildroot after rpm's strip step) as
make --sign does, then verify them as check does. rpm strips after %install, and a stripped module
loses its signature (rpm #1824): the RPM macros run this from %__spec_install_post."""

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from kbuildguard import report
from kbuildguard.build import modsign
from kbuildguard.commands import check
from kbuildguard.commands.common import level_of, target_and_modules
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.errors import ModuleRejected
from kbuildguard.gates.pool import verify_paths
from kbuildguard.gates.verify import Expectation, ModuleReport, fix_hint
from kbuildguard.settings import Common, Settings
from kbuildguard.target.kernel import KernelTarget


class SignOptions(NamedTuple):
    common: Common
    paths: Tuple[str, ...]
    sig_enforce: Optional[bool] = None
    trusted_certs: Tuple[str, ...] = ()


def run(ctx: Context, opts: SignOptions) -> int:
    settings, target, paths = target_and_modules(ctx, opts.common, opts.paths, "sign")
    root = target.sysroot.rstrip("/") if target.sysroot not in ("", "/") else ""
    signer = modsign.prepare(target, target.tree_config, settings, root, ctx.cwd)
    opts_check = check.CheckOptions(common=opts.common, paths=opts.paths, trusted_certs=opts.trusted_certs, sig_enforce=opts.sig_enforce)
    expect = check.expectation(ctx, target, level_of(settings), opts_check)
    # only what passes every other gate is signed (make --sign's rule): a module the kernel would
    # refuse anyway must not leave here carrying a good signature
    before = verify_paths(paths, expect._replace(sign_later=True))
    refused = [r for r in before if r.failed()]
    if refused:
        # every module is named, the ones that passed too: none of them was signed
        show(ctx, expect, settings, signer, before, signed=False)
        raise refusal(target, before, refused)
    ctx.console.info("signing with %s" % printable(modsign.describe(signer)))
    with ctx.console.step("sign %d module(s) with %s" % (len(paths), signer.hash)):
        modsign.sign(ctx.runner, signer, paths, ctx.env)
    reports = modsign.verify_signed(ctx.runner, signer, paths, expect, ctx.env)
    show(ctx, expect, settings, signer, reports, signed=True)
    return check.verdict(target, reports)


def show(ctx: Context, expect: Expectation, settings: Settings, signer: modsign.Signer,
         reports: List[ModuleReport], signed: bool) -> None:
    """check's text, or with --json check's document plus whether and by what they were signed
    (docs/reference.md, "sign --json")."""
    if ctx.json:
        ctx.out_json(dict(report.expectation_json(expect), settings=settings.as_json(), signed=signed,
                          signer=signer_json(signer), modules=report.modules_json(reports)))
    else:
        check.print_reports(ctx, expect, reports)


def refusal(target: KernelTarget, reports: List[ModuleReport], refused: List[ModuleReport]) -> ModuleRejected:
    """Nothing was signed: the modules that fail a gate, and those that pass but were held back with them."""
    passed = [r.path for r in reports if not r.failed()]
    return ModuleRejected(
        "%d of %d module(s) fail a gate for kernel %s (%s): nothing was signed%s" % (
            len(refused), len(reports), target.release, ", ".join(printable(r.path) for r in refused),
            "; %s passed and %s not signed either" % (", ".join(printable(p) for p in passed),
                                                      "was" if len(passed) == 1 else "were") if passed else ""),
        hint=fix_hint([c for r in refused for c in r.failed()]))


def signer_json(signer: modsign.Signer) -> Dict[str, Any]:
    return {"program": signer.program, "hash": signer.hash, "hash_source": signer.hash_source,
            "key": signer.key.key, "certificate": signer.key.cert, "key_origin": signer.key.origin}
