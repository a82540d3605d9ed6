"""One exception type per kind of failure, each with its own exit code.

Only ``cli.main`` catches these. The table below is the single source of the exit codes; the README
and ``kbuildguard --help`` print it from here.
"""

from typing import List, Optional


class KbgError(Exception):
    """A problem of the user's input or environment: printed as one clean message, no traceback."""

    exit_code = 1
    title = "error"

    def __init__(self, message: str, hint: Optional[str] = None, details: Optional[List[str]] = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = list(details or [])


class UsageError(KbgError):
    exit_code = 2
    title = "usage error"


class BadInput(KbgError):
    """A file we were asked to read is missing, unreadable, truncated, or not what it claims."""

    exit_code = 3
    title = "bad input"


class KernelNotFound(KbgError):
    """No build tree (or no compiler record) for the target kernel."""

    exit_code = 4
    title = "kernel not found"


class NoMatchingCompiler(KbgError):
    exit_code = 5
    title = "no matching compiler"


class ForcedCompilerMismatch(KbgError):
    """The user forced a compiler (--cc, CC=) that does not match the kernel's: refused before building."""

    exit_code = 6
    title = "compiler refused"


class BuildFailed(KbgError):
    exit_code = 7
    title = "build failed"


class ModuleRejected(KbgError):
    """A produced or checked .ko does not match the kernel; it was quarantined or failed the check."""

    exit_code = 8
    title = "module rejected"


class ConsentRequired(KbgError):
    """An install is needed, but there was neither a terminal to ask on nor --yes."""

    exit_code = 9
    title = "consent required"


class InstallFailed(KbgError):
    exit_code = 10
    title = "install failed"


class ToolNotFound(KbgError):
    exit_code = 11
    title = "tool not found"


class ConfigError(KbgError):
    """kbuildguard.toml or KBUILDGUARD_* settings are invalid."""

    exit_code = 12
    title = "configuration error"


class HeaderDrift(KbgError):
    """The build tree's configuration differs from the target kernel's in options that change the ABI."""

    exit_code = 13
    title = "header drift"


class Interrupted(KbgError):
    exit_code = 130
    title = "interrupted"


EXIT_CODES = (
    (0, "success: every module matches the kernel"),
    (1, "internal error (a bug: please report it with the traceback)"),
    (UsageError.exit_code, "usage error: bad command line"),
    (BadInput.exit_code, "bad input: a file is missing, unreadable, truncated or malformed"),
    (KernelNotFound.exit_code, "target kernel or its build tree not found"),
    (NoMatchingCompiler.exit_code, "no local compiler matches the kernel's compiler"),
    (ForcedCompilerMismatch.exit_code, "a compiler forced with --cc/CC does not match: refused before building"),
    (BuildFailed.exit_code, "make failed"),
    (ModuleRejected.exit_code, "a module does not match the kernel (quarantined, or failed `check`)"),
    (ConsentRequired.exit_code, "an install is needed: no terminal to ask and no --yes (plan printed)"),
    (InstallFailed.exit_code, "the package manager failed, or the installed compiler still does not match"),
    (ToolNotFound.exit_code, "a required program (make, a package manager, ...) is not on PATH"),
    (ConfigError.exit_code, "invalid kbuildguard.toml or KBUILDGUARD_* setting"),
    (HeaderDrift.exit_code, "the build tree's config differs from the target kernel's in ABI options"),
    (Interrupted.exit_code, "interrupted (Ctrl-C): unverified modules moved aside"),
)  # type: Tuple[Tuple[int, str], ...]


def exit_code_table() -> str:
    return "\n".join("  %3d  %s" % row for row in EXIT_CODES)
