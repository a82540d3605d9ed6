"""``kbuildguard reboot-check RELEASE``: before a host reboots into a new kernel, which of the modules
that are not that kernel's own will it refuse, and why.

Called by the kernel hooks in kbuildguard/data/hooks/ (Debian's /etc/kernel/postinst.d, systemd's
kernel-install plugins) once the new kernel's files are in place. The modules are those under
/lib/modules/RELEASE/{extra,updates,weak-updates}: what DKMS builds (updates/dkms), vendor packages
install (extra/) and RHEL's / SUSE's weak-modules links (weak-updates/, symlinks into another
kernel's folder). Each is held to every gate of the new kernel, one row each, as `check` forecasts.

Exit 0 unless ``--blocking`` and a module will not load (8): a hook's failure has consequences
there -- run-parts --exit-on-error leaves the kernel package unconfigured, kernel-install stops the
plugins after it -- so blocking is the administrator's choice, never the default. A module some gate
could not check (its effect ``not-checked``: the signer's trust without the kernel's keyrings, say) is
neither "will load" nor "will not load": the summary names it "not fully checked", and it does not
block (exit 0 with --blocking too) -- a kernel upgrade is not stopped on what cannot be known.

With ``--root ROOT`` every path is resolved inside ROOT as a chroot would (kernel-install and dpkg
--root run the hook for a system mounted there): an absolute symlink -- a merged-/usr ``lib ->
/usr/lib``, a weak-updates link ``-> /lib/modules/OTHER/extra/m.ko`` -- names a file of ROOT, never
the host's, and ``..`` stops at ROOT (fs/namei.c: LOOKUP_IN_ROOT, what openat2(RESOLVE_IN_ROOT) does).
"""

import os
from typing import Dict, List, NamedTuple, Optional

from kbuildguard import cireport, report
from kbuildguard.cireport import ReportPaths
from kbuildguard.commands.check import CheckOptions, checked, ci_result, print_forecast, read_infos, write_reports
from kbuildguard.commands.common import level_of, selector_for, settings_for
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.errors import BadInput, KernelNotFound, ModuleRejected, UsageError
from kbuildguard.formats.module import find_modules
from kbuildguard.gates.model import Effect
from kbuildguard.gates.verify import Verdict
from kbuildguard.settings import Common
from kbuildguard.target import kernel

OUT_OF_TREE = ("extra", "updates", "weak-updates")
MAX_LINKS = 40  # as the kernel's MAXSYMLINKS (include/linux/namei.h): ELOOP past it


def in_root(root: str, path: str) -> str:
    """The host path of ``path`` (absolute, as seen inside ``root``), every symlink on the way
    resolved inside ``root``: an absolute target restarts at ``root``, ``..`` never climbs above it.
    The last component is resolved too. Dangling or not, the result is inside ``root``."""
    if os.path.abspath(root) == "/":
        return path
    root = os.path.abspath(root)
    pending = [p for p in path.split("/") if p]
    done: List[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        here = os.path.join(root, *(done + [part]))
        if os.path.islink(here):
            links += 1
            if links > MAX_LINKS:
                raise BadInput("%s: more than %d symlinks (a loop) inside %s" % (path, MAX_LINKS, root))
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            pending = [p for p in target.split("/") if p] + pending
            continue
        done.append(part)
    return os.path.join(root, *done)


class Found(NamedTuple):
    paths: List[str]  # host paths, resolved inside the root, to check
    names: Dict[str, str]  # host path -> its name under /lib/modules/R (weak-updates/m.ko, not the link's target)
    dangling: List[str]  # names whose link leads nowhere inside the root


def module_paths(root: str, release: str) -> Found:
    """The out-of-tree modules of ``release`` in ``root``, each resolved inside it."""
    inside = "/lib/modules/%s" % release
    paths: List[str] = []
    names: Dict[str, str] = {}
    dangling: List[str] = []
    for sub in OUT_OF_TREE:
        folder = in_root(root, "%s/%s" % (inside, sub))
        if not os.path.isdir(folder):
            continue
        for listed in find_modules([folder]):
            name = "%s/%s" % (sub, os.path.relpath(listed, folder))
            real = in_root(root, "%s/%s" % (inside, name)) if os.path.islink(listed) else listed
            if not os.path.isfile(real):
                dangling.append(name)
            elif real not in names:
                paths.append(real)
                names[real] = name
    return Found(paths, names, dangling)


def run(ctx: Context, common: Common, release: str, root: Optional[str], blocking: bool,
        report_paths: ReportPaths = ReportPaths()) -> int:
    if not release or "/" in release:
        raise UsageError("reboot-check needs the release of the new kernel (the hook's first argument)")
    report_paths = cireport.check_paths(report_paths, ctx.cwd)
    sysroot = ctx.path(root) if root and os.path.abspath(root) != "/" else None
    settings = settings_for(ctx, common.cli, "reboot-check")
    selector = selector_for(settings, kernel=release)._replace(sysroot=sysroot, kernel_dir=None,
                                                               sysroot_named_by="--root %s" % root if sysroot else "")
    if not os.path.isdir(in_root(sysroot or "/", "/lib/modules/%s" % release)):
        # issue 22: the hook got a release that is not installed (a typo, a removed kernel): saying
        # "nothing to check" with exit 0 would pass a kernel nobody looked at. The kernel's package
        # installs /lib/modules/R before its postinst.d hooks run.
        raise KernelNotFound("reboot-check: kernel %s is not installed: there is no %s/lib/modules/%s"
                             % (printable(release), sysroot or "", printable(release)),
                             hint="give the release of an installed kernel (ls /lib/modules)")
    found = module_paths(sysroot or "/", release)
    where = "%s/lib/modules/%s/{%s}" % (sysroot or "", release, ",".join(OUT_OF_TREE))
    for name in found.dangling:
        ctx.console.warn("kernel %s: %s is a symlink to no file%s: not checked (modprobe will not find it)"
                         % (release, printable(name), " inside %s" % sysroot if sysroot else ""))
    paths = found.paths
    if not paths:
        ctx.console.info("kernel %s: no modules under %s: nothing to check" % (release, where))
        if ctx.json:
            ctx.out_json({"kernel": release, "forecast": [], "not_fully_checked": sorted(found.dangling)})
        write_reports(ctx, report_paths, [])  # no kernel row: nothing was there to verify
        return 0
    target = kernel.resolve(selector)
    expect, reports = checked(ctx, target, level_of(settings), CheckOptions(common, tuple(paths)), paths)
    assert expect.loader is not None
    exports = expect.loader.exports
    infos = read_infos(paths)
    rows = [report.forecast_row(release, r, infos.get(r.path), exports.symbols if exports else None) for r in reports]
    write_reports(ctx, report_paths, [ci_result(release, reports)])
    bad = [r for r in rows if r.verdict is not Verdict.OK]
    unsure = [r for r in rows if r.verdict is Verdict.OK and r.effect is Effect.NOT_CHECKED]
    unsure_names = sorted([found.names.get(r.module, r.module) for r in unsure] + found.dangling)
    if ctx.json:
        ctx.out_json({"kernel": release, "forecast": report.forecast_json(rows), "not_fully_checked": unsure_names})
    else:
        print_forecast(ctx, rows)
    total = len(rows) + len(found.dangling)
    if unsure_names:
        ctx.console.warn("kernel %s: %d of %d out-of-tree module(s) not fully checked: %s (what was not checked: "
                         "the GATE and WHY columns)" % (release, len(unsure_names), total,
                                                       ", ".join(printable(n) for n in unsure_names)))
    if not bad:
        if not unsure_names:
            ctx.console.info("kernel %s: all %d out-of-tree module(s) will load" % (release, len(rows)))
        else:
            ctx.console.info("kernel %s: %d of %d out-of-tree module(s) will load, %d not fully checked"
                             % (release, len(rows) - len(unsure), total, len(unsure_names)))
        return 0
    message = "before rebooting into %s: %d of %d out-of-tree module(s) will not load: %s%s" % (
        release, len(bad), total, ", ".join(printable(found.names.get(r.module, r.module)) for r in bad),
        "; %d not fully checked" % len(unsure_names) if unsure_names else "")
    if blocking:
        raise ModuleRejected(message, hint="rebuild them for %s (dkms autoinstall, kbuildguard make --kernel %s) or "
                                           "remove them; KBUILDGUARD_HOOK=warn in /etc/default/kbuildguard makes the "
                                           "hook only warn" % (release, release))
    ctx.console.warn(message)
    return 0
