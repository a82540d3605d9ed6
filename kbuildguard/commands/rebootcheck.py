"""``kbuildguard reboot-check RELEASE``: before a host reboots into a new kernel, which of the modules
that are not that kernel's own will it refuse, and why; and whether its own modules' BTF validates
against its vmlinuz's (own_modules_btf(): a kernel package whose modules and image come from
different builds).

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
import time
from typing import Callable, Dict, List, NamedTuple, Optional

from kbuildguard import cireport, report
from kbuildguard.cireport import ReportPaths
from kbuildguard.commands.check import CheckOptions, checked, ci_result, print_forecast, read_infos, write_reports
from kbuildguard.commands.common import level_of, selector_for, settings_for
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.errors import BadInput, KernelNotFound, ModuleRejected, UsageError
from kbuildguard.formats import btf
from kbuildguard.formats.module import find_modules, read_btf
from kbuildguard.gates.model import Effect, Gate
from kbuildguard.gates.verify import Verdict
from kbuildguard.settings import Common
from kbuildguard.target import kconfig, kernel

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


class OwnBtf(NamedTuple):
    """The new kernel's own modules (/lib/modules/R/kernel) held to its own BTF: btf_module_notify() parses
    each one's .BTF against the vmlinux BTF of the kernel that boots (kernel/bpf/btf.c btf_parse_module()),
    so modules and vmlinuz from different builds fail there (pop-os/pop#3961: 29 modules, "failed to
    validate module [M] BTF: -22", emergency mode). The other gates are the kernel build's own business."""

    checked: int  # modules with .BTF held to the kernel's BTF
    rows: List[report.ForecastRow]  # one per module whose BTF does not validate
    refuses: bool  # the kernel refuses those modules (no CONFIG_MODULE_ALLOW_BTF_MISMATCH): they will not load
    skipped: str  # why they were not checked ("" when they were)
    seconds: float


def _kbuild_name(path: str) -> str:
    """The module's name as the kernel prints it (KBUILD_MODNAME: the file's, "-" as "_")."""
    name = os.path.basename(path)
    return name[:name.index(".ko")].replace("-", "_") if ".ko" in name else name


def own_modules_btf(root: str, release: str, clock: Callable[[], float]) -> OwnBtf:
    """OwnBtf of kernel ``release`` in ``root`` (every path resolved inside it)."""
    started = clock()
    config_path = in_root(root, "/boot/config-%s" % release)
    if not os.path.isfile(config_path):
        return OwnBtf(0, [], False, "no /boot/config-%s: whether it reads module BTF is unknown" % release, 0.0)
    try:
        config = kconfig.read(config_path)
    except BadInput as exc:
        return OwnBtf(0, [], False, "its configuration cannot be read: %s" % exc, 0.0)
    if config.get("CONFIG_DEBUG_INFO_BTF_MODULES") != "y":
        return OwnBtf(0, [], False, "it does not read module BTF (no CONFIG_DEBUG_INFO_BTF_MODULES)", 0.0)
    image = in_root(root, "/boot/vmlinuz-%s" % release)
    if not os.path.isfile(image):  # a FIFO or device would block the read
        return OwnBtf(0, [], False, "no /boot/vmlinuz-%s: its BTF is not at hand" % release, 0.0)
    try:
        base = btf.btf_base(btf.raw_btf(image), image)
    except BadInput as exc:
        return OwnBtf(0, [], False, "its BTF cannot be read: %s" % exc, 0.0)
    allow = config.get("CONFIG_MODULE_ALLOW_BTF_MISMATCH") == "y"
    folder = in_root(root, "/lib/modules/%s/kernel" % release)
    memo: Dict[int, bool] = {}
    rows: List[report.ForecastRow] = []
    checked = 0
    for listed in find_modules([folder]) if os.path.isdir(folder) else []:
        name = "kernel/" + os.path.relpath(listed, folder)
        # a symlink names a file of ROOT, never the host's (as module_paths() resolves them)
        path = in_root(root, "/lib/modules/%s/%s" % (release, name)) if os.path.islink(listed) else listed
        if not os.path.isfile(path):
            continue
        try:
            data = read_btf(path)
        except BadInput:
            continue  # not a module the loader could read either: the kernel build's business
        if not data:
            continue
        checked += 1
        result = btf.check_split(data, base, memo)
        if result.error:
            rows.append(_own_row(release, name, result, allow))
    return OwnBtf(checked, rows, not allow, "", clock() - started)


def _own_row(release: str, name: str, result: btf.SplitCheck, allow: bool) -> report.ForecastRow:
    prints = "failed to validate module [%s] BTF: -%d" % (_kbuild_name(name), result.error)
    if allow:
        verdict, effect, reason = Verdict.OK, Effect.OK, (
            "loads without its BTF: \"%s\" (%s) against the vmlinuz's BTF; CONFIG_MODULE_ALLOW_BTF_MISMATCH=y drops it"
            % (prints, result.reason))
    else:
        verdict, effect, reason = Verdict.MISMATCH, Effect.REJECTED, (
            "its BTF was split against another build's vmlinux: \"%s\" (%s); the kernel package's modules and vmlinuz "
            "come from different builds" % (prints, result.reason))
    return report.ForecastRow(kernel=release, module=name, verdict=verdict, effect=effect, gate=Gate.BTF, reason=reason,
                              weak_modules=False, crc_differences=(), crcs_compared=0, kernel_prints=prints)


def _own_json(own: OwnBtf) -> Dict[str, object]:
    return {"checked": own.checked, "skipped": own.skipped or None, "will_not_load": own.refuses and bool(own.rows),
            "forecast": report.forecast_json(own.rows)}


def _say_own(ctx: Context, release: str, own: OwnBtf) -> None:
    if own.skipped:
        ctx.console.info("kernel %s: its own modules' BTF not checked: %s" % (release, own.skipped))
    elif not own.rows:
        ctx.console.info("kernel %s: the BTF of all %d of its own modules with .BTF validates against its vmlinuz (%.1f s)"
                         % (release, own.checked, own.seconds))
    elif not own.refuses:
        ctx.console.warn("kernel %s: %d of its own modules load without their BTF: it does not validate against its "
                         "vmlinuz's (CONFIG_MODULE_ALLOW_BTF_MISMATCH=y drops it with a warning): %s"
                         % (release, len(own.rows), _names(own.rows)))


def _names(rows: List[report.ForecastRow], limit: int = 10) -> str:
    names = [printable(r.module.rsplit("/", 1)[-1]) for r in rows]
    return ", ".join(names[:limit]) + (" and %d more" % (len(names) - limit) if len(names) > limit else "")


def _own_refusal(release: str, own: OwnBtf) -> str:
    """The summary for own modules the kernel will refuse ("" when none)."""
    if not own.refuses or not own.rows:
        return ""
    return "kernel %s: %d of its own modules will not load: BTF split against another build's vmlinux (%s)" % (
        release, len(own.rows), _names(own.rows))


def _target_selector(ctx: Context, common: Common, release: str, root: Optional[str]):
    if not release or "/" in release:
        raise UsageError("reboot-check needs the release of the new kernel (the hook's first argument)")
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
    return sysroot, settings, selector


class Forecast(NamedTuple):
    rows: List[report.ForecastRow]  # the out-of-tree modules
    bad: List[report.ForecastRow]
    unsure_names: List[str]  # not fully checked (dangling links too)


def _forecast(ctx: Context, common: Common, release: str, found: Found, settings, selector,
              report_paths: ReportPaths) -> Forecast:
    """Every gate of the new kernel for each out-of-tree module."""
    paths = found.paths
    target = kernel.resolve(selector)
    expect, reports = checked(ctx, target, level_of(settings), CheckOptions(common=common,
                                                                            paths=tuple(paths)), paths)
    assert expect.loader is not None
    exports = expect.loader.exports
    infos = read_infos(paths)
    rows = [report.forecast_row(release, r, infos.get(r.path), exports.symbols if exports else None) for r in reports]
    write_reports(ctx, report_paths, [ci_result(release, reports)])
    bad = [r for r in rows if r.verdict is not Verdict.OK]
    unsure = [r for r in rows if r.verdict is Verdict.OK and r.effect is Effect.NOT_CHECKED]
    return Forecast(rows, bad, sorted([found.names.get(r.module, r.module) for r in unsure] + found.dangling))


def run(ctx: Context, common: Common, release: str, root: Optional[str], blocking: bool,
        report_paths: ReportPaths = ReportPaths()) -> int:
    sysroot, settings, selector = _target_selector(ctx, common, release, root)
    report_paths = cireport.check_paths(report_paths, ctx.cwd)
    own = own_modules_btf(sysroot or "/", release, time.monotonic)
    found = module_paths(sysroot or "/", release)
    where = "%s/lib/modules/%s/{%s}" % (sysroot or "", release, ",".join(OUT_OF_TREE))
    for name in found.dangling:
        ctx.console.warn("kernel %s: %s is a symlink to no file%s: not checked (modprobe will not find it)"
                         % (release, printable(name), " inside %s" % sysroot if sysroot else ""))
    if found.paths:
        forecast = _forecast(ctx, common, release, found, settings, selector, report_paths)
    else:
        ctx.console.info("kernel %s: no modules under %s: nothing to check" % (release, where))
        write_reports(ctx, report_paths, [])  # no kernel row: nothing was there to verify
        forecast = Forecast([], [], sorted(found.dangling))
    if ctx.json:
        ctx.out_json({"kernel": release, "forecast": report.forecast_json(forecast.rows),
                      "not_fully_checked": forecast.unsure_names, "own_modules": _own_json(own)})
    elif forecast.rows or own.rows:
        print_forecast(ctx, forecast.rows + own.rows)
    _say_own(ctx, release, own)
    return _conclude(ctx, release, forecast, found, own, blocking)


def _conclude(ctx: Context, release: str, forecast: Forecast, found: Found, own: OwnBtf, blocking: bool) -> int:
    rows, bad, unsure_names = forecast
    total = len(rows) + len(found.dangling)
    if unsure_names:
        ctx.console.warn("kernel %s: %d of %d out-of-tree module(s) not fully checked: %s (what was not checked: "
                         "the GATE and WHY columns)" % (release, len(unsure_names), total,
                                                       ", ".join(printable(n) for n in unsure_names)))
    refusal = _own_refusal(release, own)
    if not bad and not refusal:
        if rows and not unsure_names:
            ctx.console.info("kernel %s: all %d out-of-tree module(s) will load" % (release, len(rows)))
        elif rows:
            ctx.console.info("kernel %s: %d of %d out-of-tree module(s) will load, %d not fully checked"
                             % (release, len(rows) - len(unsure_names) + len(found.dangling), total, len(unsure_names)))
        return 0
    parts = [refusal] if refusal else []
    if bad:
        parts.append("%d of %d out-of-tree module(s) will not load: %s%s" % (
            len(bad), total, ", ".join(printable(found.names.get(r.module, r.module)) for r in bad),
            "; %d not fully checked" % len(unsure_names) if unsure_names else ""))
    message = "before rebooting into %s: %s" % (release, "; ".join(parts))
    if blocking:
        raise ModuleRejected(message, hint="rebuild them for %s (dkms autoinstall, kbuildguard make --kernel %s) or "
                                           "remove them; for the kernel's own modules, reinstall its package (its "
                                           "modules and vmlinuz must come from one build); KBUILDGUARD_HOOK=warn in "
                                           "/etc/default/kbuildguard makes the hook only warn" % (release, release))
    ctx.console.warn(message)
    return 0
