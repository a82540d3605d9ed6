"""``kbuildguard reboot-check RELEASE``: before a host reboots into a new kernel, which of the modules
that are not that kernel's own will it refuse, and why.

Called by the kernel hooks in kbuildguard/data/hooks/ (Debian's /etc/kernel/postinst.d, systemd's
kernel-install plugins) once the new kernel's files are in place. The modules are those under
/lib/modules/RELEASE/{extra,updates,weak-updates}: what DKMS builds (updates/dkms), vendor packages
install (extra/) and RHEL's / SUSE's weak-modules links (weak-updates/, symlinks into another
kernel's folder). Each is held to every gate of the new kernel, one row each, as `check` forecasts.

Exit 0 unless ``--blocking`` and a module will not load (8): a hook's failure has consequences
there -- run-parts --exit-on-error leaves the kernel package unconfigured, kernel-install stops the
plugins after it -- so blocking is the administrator's choice, never the default.
"""

import os
from typing import List, Optional

from kbuildguard import report
from kbuildguard.commands.check import CheckOptions, checked, print_forecast, read_infos
from kbuildguard.commands.common import level_of, selector_for, settings_for
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.errors import ModuleRejected, UsageError
from kbuildguard.formats.module import find_modules
from kbuildguard.gates.verify import Verdict
from kbuildguard.settings import Common
from kbuildguard.target import kernel

OUT_OF_TREE = ("extra", "updates", "weak-updates")


def module_paths(modules_dir: str) -> List[str]:
    return find_modules([os.path.join(modules_dir, d) for d in OUT_OF_TREE if os.path.isdir(os.path.join(modules_dir, d))])


def run(ctx: Context, common: Common, release: str, root: Optional[str], blocking: bool) -> int:
    if not release or "/" in release:
        raise UsageError("reboot-check needs the release of the new kernel (the hook's first argument)")
    sysroot = ctx.path(root) if root and os.path.abspath(root) != "/" else None
    settings = settings_for(ctx, common.cli, "reboot-check")
    selector = selector_for(settings, kernel=release)._replace(sysroot=sysroot, kernel_dir=None,
                                                               sysroot_named_by="--root %s" % root if sysroot else "")
    modules_dir = os.path.join(sysroot or "/", "lib/modules", release)
    paths = module_paths(modules_dir)
    if not paths:
        ctx.console.info("kernel %s: no modules under %s/{%s}: nothing to check" % (release, modules_dir, ",".join(OUT_OF_TREE)))
        if ctx.json:
            ctx.out_json({"kernel": release, "forecast": []})
        return 0
    target = kernel.resolve(selector)
    expect, reports = checked(ctx, target, level_of(settings), CheckOptions(common, tuple(paths)), paths)
    assert expect.loader is not None
    exports = expect.loader.exports
    infos = read_infos(paths)
    rows = [report.forecast_row(release, r, infos.get(r.path), exports.symbols if exports else None) for r in reports]
    if ctx.json:
        ctx.out_json({"kernel": release, "forecast": report.forecast_json(rows)})
    else:
        print_forecast(ctx, rows)
    bad = [r for r in rows if r.verdict is not Verdict.OK]
    if not bad:
        ctx.console.info("kernel %s: all %d out-of-tree module(s) will load" % (release, len(rows)))
        return 0
    message = "before rebooting into %s: %d of %d out-of-tree module(s) will not load: %s" % (
        release, len(bad), len(rows), ", ".join(printable(os.path.relpath(r.module, modules_dir)) for r in bad))
    if blocking:
        raise ModuleRejected(message, hint="rebuild them for %s (dkms autoinstall, kbuildguard make --kernel %s) or "
                                           "remove them; KBUILDGUARD_HOOK=warn in /etc/default/kbuildguard makes the "
                                           "hook only warn" % (release, release))
    ctx.console.warn(message)
    return 0
