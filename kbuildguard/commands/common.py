"""What every command does first: resolve the settings once, and name the target kernel from them."""

import os
from typing import TYPE_CHECKING, List, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import project
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.errors import ConfigError, PackageUnavailable, UsageError
from kbuildguard.formats.module import find_modules
from kbuildguard.settings import CommandLine, Common, Layer, Settings, reads_project_file, resolve
from kbuildguard.target import kernel
from kbuildguard.target.kernel import KernelTarget, Selector
from kbuildguard.toolchain import Forced, MatchLevel

if TYPE_CHECKING:  # target/fetch.py is imported only with --fetch: every make and check paid for it
    from kbuildguard.target import fetch


def project_and_settings(ctx: Context, cli: CommandLine, command: str,
                         folder: Optional[str] = None) -> Tuple[Optional[project.Project], Settings]:
    """The cascade for this invocation. Only a command that settings.reads_project_file() names reads
    kbuildguard.toml (of the module folder, make -C, or of the folder kbuildguard was started in) and
    says which settings it took; every other command notes that a file there is not read, and gets
    no project (None)."""
    where = folder or ctx.cwd
    if not reads_project_file(command):
        settings = resolve(cli, ctx.env)
        path = os.path.join(where, project.CONFIG_NAME)
        if os.path.isfile(path):
            ctx.console.info("note: %s is not read: %s takes its settings from the command line and KBUILDGUARD_* "
                             "only (a repository's file must not loosen a verdict: --match, --kernel)"
                             % (printable(path), command))
        return None, settings
    proj = project.load(where)
    settings = resolve(cli, ctx.env, proj.settings)
    say_file_settings(ctx, settings, proj.config_path)
    return proj, settings


def settings_for(ctx: Context, cli: CommandLine, command: str, folder: Optional[str] = None) -> Settings:
    return project_and_settings(ctx, cli, command, folder)[1]


def say_file_settings(ctx: Context, settings: Settings, path: Optional[str]) -> None:
    """Settings a kbuildguard.toml decided, said with the file's path: a cloned repository's file
    changes what kbuildguard does, and the user should see it did."""
    from_file = ["%s = %r" % (name, v.value) for name, v in zip(settings._fields, settings) if v.layer is Layer.FILE]
    if from_file and path:
        ctx.console.info("settings from %s: %s" % (printable(path), ", ".join(from_file)))


def selector_for(settings: Settings, proc_version_file: Optional[str] = None, kernel: Optional[str] = None,
                 proc_version_data: Optional[bytes] = None) -> Selector:
    return Selector(kernel=kernel if kernel is not None else settings.kernel.value,
                    kernel_dir=settings.kernel_dir.value, sysroot=settings.sysroot.value,
                    proc_version_file=proc_version_file, proc_version_data=proc_version_data, kernel_named_by=settings.kernel.describe(),
                    kernel_dir_named_by=settings.kernel_dir.describe(), sysroot_named_by=settings.sysroot.describe())


def level_of(settings: Settings) -> MatchLevel:
    try:
        return MatchLevel(settings.match.value or "version")
    except ValueError:  # settings.resolve checks it; a bug if we get here
        raise ConfigError("match level %r is not one of exact, version, minor, major" % settings.match.value)


def forced_of(settings: Settings) -> Optional[Forced]:
    return Forced(settings.cc.value, settings.cc.origin) if settings.cc.value else None


def single_kernel(settings: Settings, what: str) -> None:
    value = settings.kernel.value
    if value and (value == "all" or "," in value):
        raise ConfigError("%s: %s builds for one kernel; `all` and lists are for make" % (settings.kernel.describe(), what))


def absolute(ctx: Context, paths: Sequence[str]) -> Sequence[str]:
    return [os.path.join(ctx.cwd, p) for p in paths]


def target_and_modules(ctx: Context, common: Common, paths: Sequence[str], verb: str) -> Tuple[Settings, KernelTarget, List[str]]:
    """What `sign` starts from (`check`, which takes several kernels, uses kernel_selectors): the
    settings, the one target kernel, the module files. sign, the RPM build's step inside the module's
    own repository, reads no kbuildguard.toml (settings.reads_project_file): its key is named with
    --sign-key/--sign-cert or KBUILDGUARD_SIGN_*, else DKMS's or akmods'."""
    settings = settings_for(ctx, common.cli, verb)
    single_kernel(settings, verb)
    target = kernel.resolve(selector_for(settings))
    found = find_modules(absolute(ctx, paths))
    if not found:
        raise UsageError("no .ko, .ko.xz, .ko.gz, .ko.zst or .ko.bz2 files under %s" % printable(" ".join(paths)))
    return settings, target, found


class FetchOptions(NamedTuple):
    """``--fetch``, ``--fetch-from SOURCE``, ``--refresh``: kernels that are not installed, downloaded
    into the cache (target/fetch.py). The flag is the consent: nothing is installed, no root needed."""

    enabled: bool = False
    source: Optional[str] = None
    refresh: bool = False


AVAILABLE = "available:"


def fetch_source(ctx: Context, opts: FetchOptions) -> "fetch.Source":
    """--fetch-from, else this machine's distribution (its os-release)."""
    from kbuildguard.target import fetch

    if opts.source:
        return fetch.parse_source(opts.source)
    from kbuildguard.provision.plan import detect_distro

    found = detect_distro("/")
    family = fetch.family_of(found.id, found.like)
    if family is None:
        what = ("%s (os-release ID %s)" % (printable(found.name or found.id), printable(found.id)) if has_os_release("/")
                else "this machine (no /etc/os-release or /usr/lib/os-release)")
        raise UsageError("cannot tell how to fetch kernels on %s: name it with --fetch-from %s" % (what, families()))
    return fetch.Source(family)


def families() -> str:
    """The --fetch-from choices, as one word for a message."""
    from kbuildguard.target import fetch

    return "|".join(str(f) for f in fetch.Family)


def fetch_hint(ctx: Context, verb: str, release: str, sysroot: Optional[str]) -> str:
    """What to add to "no build tree for R": the command that fetches R, with --fetch-from when the
    distribution cannot be told from the sysroot's (or this machine's) os-release -- --fetch makes its
    own root, so the sysroot is only where the distribution is read from."""
    from kbuildguard.provision.plan import detect_distro
    from kbuildguard.target import fetch  # only here and with --fetch: see the TYPE_CHECKING import above

    root = sysroot or "/"
    family = None
    if has_os_release(root):
        found = detect_distro(root)
        family = fetch.family_of(found.id, found.like)
        unknown = "its os-release ID %s is none of them" % printable(found.id)
    else:
        unknown = "it has no etc/os-release"
    command = "kbuildguard %s --fetch --kernel %s" % (verb, release)
    if family is None:
        return "without installing it: %s --fetch-from %s (%s%s: %s)" % (
            command, families(), "in place of --sysroot; " if sysroot else "",
            "the distribution of %s cannot be told" % (sysroot or "this machine"), unknown)
    if sysroot:
        return "without installing it: %s --fetch-from %s (in place of --sysroot)" % (command, family)
    return "without installing it: %s" % command


def has_os_release(root: str) -> bool:
    return any(os.path.isfile(os.path.join(root, p)) for p in ("etc/os-release", "usr/lib/os-release"))


def fetched_releases(ctx: Context, settings: Settings, opts: FetchOptions, many: bool) -> List["fetch.Fetched"]:
    """The releases --kernel names (R, R1,R2, available:GLOB), each fetched (or found in the cache)."""
    from kbuildguard.target import fetch

    value = settings.kernel.value
    if settings.sysroot.value or settings.kernel_dir.value:
        raise UsageError("--fetch makes its own root: it is not combined with %s" % (
            settings.sysroot.describe() if settings.sysroot.value else settings.kernel_dir.describe()))
    if not value or value == "all":
        raise UsageError("--fetch needs the kernel named: --kernel RELEASE%s" % (
            ", R1,R2 or 'available:GLOB' (`all` means the installed kernels)" if many else ""))
    source = fetch_source(ctx, opts)
    cache = fetch.cache_root(ctx.env, ctx.euid)
    if value.startswith(AVAILABLE):
        pattern = value[len(AVAILABLE):]
        releases = fetch.available(ctx.runner, pattern, source, cache, opts.refresh)
        if not releases:
            raise PackageUnavailable("no kernel offered by %s matches %r" % (source.describe(), pattern),
                                           hint="the headers packages are named linux-headers-RELEASE (Debian, Ubuntu) "
                                                "or kernel-devel-RELEASE (dnf); try a wider glob")
    else:
        releases = [r.strip() for r in value.split(",") if r.strip()]
    if len(releases) > 1 and not many:
        raise ConfigError("%s: names %d kernels; this command works on one" % (settings.kernel.describe(), len(releases)))
    found = []
    for release in releases:
        with ctx.console.step("fetch kernel %s from %s" % (release, source.describe())):
            got = fetch.fetch(ctx.runner, release, source, cache, opts.refresh)
        if got.note:
            ctx.console.warn(got.note)
        ctx.console.info("kernel %s: %s%s" % (release, got.root, " (cached)" if got.cached else ""))
        found.append(got)
    return found


def fetched_selector(settings: Settings, got: "fetch.Fetched") -> Selector:
    return selector_for(settings, kernel=got.release)._replace(
        sysroot=got.root, sysroot_named_by="the fetched kernel %s (%s)" % (got.release, got.root), kernel_dir=None)


def kernel_selectors(ctx: Context, settings: Settings, opts: FetchOptions, verb: str, many: bool,
                     proc_version_file: Optional[str] = None,
                     proc_version_data: Optional[bytes] = None) -> Tuple[List[Selector], bool]:
    """The target kernel(s) of a command, and whether the user named several (a list, `all`, available:)."""
    value = settings.kernel.value or ""
    if opts.enabled:
        got = fetched_releases(ctx, settings, opts, many)
        return [fetched_selector(settings, g) for g in got], len(got) > 1 or "," in value or value.startswith(AVAILABLE)
    if value.startswith(AVAILABLE):
        raise UsageError("%s: kernels that are not installed are fetched: add --fetch" % settings.kernel.describe())
    if not many:
        single_kernel(settings, verb)
        return [selector_for(settings, proc_version_file, proc_version_data=proc_version_data)], False
    if value == "all" or "," in value:
        if settings.kernel_dir.value:
            raise ConfigError("%s and %s name the target twice: give one" % (settings.kernel.describe(), settings.kernel_dir.describe()))
        if value == "all":
            releases = kernel.installed_releases(os.path.abspath(settings.sysroot.value) if settings.sysroot.value else "/")
            if not releases:
                raise kernel.missing_tree_error("(any)", os.path.abspath(settings.sysroot.value or "/"), False)
        else:
            releases = [r.strip() for r in value.split(",") if r.strip()]
        return [selector_for(settings, kernel=r) for r in releases], True
    return [selector_for(settings, proc_version_file, proc_version_data=proc_version_data)], False
