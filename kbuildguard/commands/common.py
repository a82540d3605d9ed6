"""What every command does first: resolve the settings once, and name the target kernel from them."""

import os
from typing import List, Optional, Sequence, Tuple

from kbuildguard import project
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.errors import ConfigError, UsageError
from kbuildguard.formats.module import find_modules
from kbuildguard.settings import CommandLine, Common, Layer, Settings, resolve
from kbuildguard.target import kernel
from kbuildguard.target.kernel import KernelTarget, Selector
from kbuildguard.toolchain import Forced, MatchLevel


def settings_for(ctx: Context, cli: CommandLine, folder: Optional[str] = None, read_file: bool = True) -> Settings:
    """The cascade for this invocation; kbuildguard.toml of the module folder (make -C) or of the
    folder kbuildguard was started in -- not for ``read_file=False`` (check: see target_and_modules)."""
    if not read_file:
        settings = resolve(cli, ctx.env)
        path = os.path.join(folder or ctx.cwd, project.CONFIG_NAME)
        if os.path.isfile(path):
            ctx.console.info("note: %s is not read: check takes its settings from the command line and KBUILDGUARD_* "
                             "only (a repository's file must not loosen a verdict: --match, --kernel)" % printable(path))
        return settings
    proj = project.load(folder or ctx.cwd)
    settings = resolve(cli, ctx.env, proj.settings)
    say_file_settings(ctx, settings, proj.config_path)
    return settings


def say_file_settings(ctx: Context, settings: Settings, path: Optional[str]) -> None:
    """Settings a kbuildguard.toml decided, said with the file's path: a cloned repository's file
    changes what kbuildguard does, and the user should see it did."""
    from_file = ["%s = %r" % (name, v.value) for name, v in zip(settings._fields, settings) if v.layer is Layer.FILE]
    if from_file and path:
        ctx.console.info("settings from %s: %s" % (printable(path), ", ".join(from_file)))


def selector_for(settings: Settings, proc_version_file: Optional[str] = None, kernel: Optional[str] = None) -> Selector:
    return Selector(kernel=kernel if kernel is not None else settings.kernel.value,
                    kernel_dir=settings.kernel_dir.value, sysroot=settings.sysroot.value,
                    proc_version_file=proc_version_file, kernel_named_by=settings.kernel.describe(),
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
    """What `check` and `sign` start from: the settings, the one target kernel, the module files.

    check never reads the current folder's kbuildguard.toml (issue 22): `check some.ko` inside a
    cloned repository must not take its `match = "major"` (a looser verdict) or fail on its syntax.
    sign, the RPM build's step inside the module's own repository, reads it (its [sign] key), and
    says which settings it took."""
    settings = settings_for(ctx, common.cli, read_file=verb != "check")
    single_kernel(settings, verb)
    target = kernel.resolve(selector_for(settings))
    found = find_modules(absolute(ctx, paths))
    if not found:
        raise UsageError("no .ko, .ko.xz, .ko.gz, .ko.zst or .ko.bz2 files under %s" % printable(" ".join(paths)))
    return settings, target, found
