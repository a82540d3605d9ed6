"""Installing the kernel's compiler and build tree through the distribution's package manager."""

from kbuildguard.errors import NoMatchingCompiler


def install_hint(target) -> str:
    return "install %s, or run `kbuildguard make --install`" % target.compiler.describe()


def install_and_reselect(ctx, target, level, yes, dry_run):
    raise NoMatchingCompiler("installing is not implemented yet")


def cmd_setup(ctx) -> int:
    raise NoMatchingCompiler("setup is not implemented yet")
