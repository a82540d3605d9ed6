"""One exception type per kind of failure, each with its own exit code.

Only ``cli.main`` catches these. The table below is the single source of the exit codes; docs/reference.md
and ``kbuildguard --help`` print it from here.
"""

import signal
from typing import List, Optional, Tuple


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
    # the compiler's first error lines, paths relative to the module folder (the CI reports' text and
    # location; set by kbuild.run_make)
    compiler_errors: Tuple[str, ...] = ()


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


class CannotWrite(KbgError):
    """A folder kbuildguard must write to (the module folder, its state or staging folder) is not writable."""

    exit_code = 14
    title = "cannot write"


class PackageUnavailable(KbgError):
    """A package the plan needs is not offered by the repositories of the system it is for."""

    exit_code = 15
    title = "package unavailable"


class ToolchainUnfit(KbgError):
    """The toolchain preflight found a tool kbuild will run that does not fit the kernel (linker, objtool,
    modpost, gcc plugins, pahole, LLVM binutils, rustc): stopped before the first compile."""

    exit_code = 16
    title = "toolchain preflight"


class NoBtfBase(KbgError):
    """``--btf`` was asked for, but no BTF of the target kernel is at hand to split module BTF against."""

    exit_code = 17
    title = "no BTF base"


class SigningFailed(KbgError):
    """``make --sign`` cannot sign: no key named and no machine-owner key found, the target tree has no
    runnable scripts/sign-file, or sign-file failed. Nothing was placed."""

    exit_code = 18
    title = "signing failed"


class FetchFailed(PackageUnavailable):
    """``--fetch``: a kernel's packages could not be downloaded or unpacked (offline, a mirror gone);
    the message names the files and the cache folder to put them in by hand. Exit 15, as a package
    the repositories do not offer: to the caller both mean "that kernel's packages are not at hand"."""

    title = "fetch failed"


class Interrupted(KbgError):
    """A signal ended the run (Ctrl-C, a CI timeout's SIGTERM, a closed ssh session's SIGHUP).

    The exit code is the shell's convention, 128 + the signal number, so that a wrapper script sees
    the same status as if make itself had been killed.
    """

    exit_code = 130
    title = "interrupted"

    def __init__(self, message: str, signum: int = signal.SIGINT, hint: Optional[str] = None,
                 details: Optional[List[str]] = None):
        super().__init__(message, hint=hint, details=details)
        self.signum = signum
        self.exit_code = 128 + int(signum)


class Stopped(BaseException):
    """Raised by kbuildguard's handler for SIGTERM, SIGHUP and SIGQUIT, as Python raises KeyboardInterrupt
    for SIGINT: a BaseException, so that no ``except Exception`` swallows it on the way to the build's cleanup."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# The signals that end a build: each stops make's whole process group and exits 128 + N.
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


EXIT_CODES: Tuple[Tuple[int, str], ...] = (
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
    (CannotWrite.exit_code, "a folder kbuildguard must write to (module folder, .kbuildguard/, staging) is not writable"),
    (PackageUnavailable.exit_code, "a package the install plan needs is not in the system's repositories (the plan says where it is)"),
    (ToolchainUnfit.exit_code, "toolchain preflight: a tool kbuild runs (linker, objtool, plugins, pahole ...) does not fit the kernel"),
    (NoBtfBase.exit_code, "--btf: no BTF of the target kernel to build module BTF against"),
    (SigningFailed.exit_code, "make --sign: no signing key, no runnable scripts/sign-file in the tree, or sign-file failed"),
    (128 + signal.SIGHUP, "SIGHUP (a closed terminal or ssh session): make stopped, nothing unverified placed"),
    (130, "SIGINT (Ctrl-C): make stopped, nothing unverified placed"),
    (128 + signal.SIGQUIT, "SIGQUIT: make stopped, nothing unverified placed"),
    (128 + signal.SIGTERM, "SIGTERM (a CI timeout, kill): make stopped, nothing unverified placed"),
)


def exit_code_table() -> str:
    return "\n".join("  %3d  %s" % row for row in EXIT_CODES)
