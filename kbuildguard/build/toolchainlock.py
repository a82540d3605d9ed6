"""The per-kernel toolchain lock for DKMS (``kbuildguard detect --toolchain-lock DIR``).

An unmodified ``dkms.conf`` builds with ``make -C $kernel_source_dir M=...`` and whatever the
environment gives kbuild. kbuild ignores an exported ``CC``: the top Makefile assigns
``CC = $(CROSS_COMPILE)gcc`` (Makefile, "Make variables (CC, etc...)"; Debian's headers
``CC = $(CROSS_COMPILE)gcc-12`` in .kernelvariables), and a makefile assignment beats the
environment. What takes effect is the program those names resolve to on ``PATH`` -- which is how
gcc-toolset's ``enable`` script works -- and ``LLVM=``/``LLVM_IAS=``, which the Makefile only
tests (``ifneq ($(LLVM),)``), so an exported value is read.

So the lock is, per kernel release, a folder::

    DIR/RELEASE/bin/   symlinks: the names kbuild calls (gcc, gcc-12, ld, pahole, rustc ...) to
                       the programs kbuildguard selected and found, resolved when the lock was written
    DIR/RELEASE/env    shell: PATH with that bin first, LLVM=/LLVM_IAS= exported for a clang kernel,
                       and kbuildguard_lock_* naming each tool (shell variables, for humans and logs)
    DIR/build_environment   shell: sources DIR/$kernelver/env -- what DKMS 3.3's build_environment is
                       pointed at (DKMS sets $kernelver before every build)

The check after the build is not here: data/hooks/dkms-post-build, dkms.conf's POST_BUILD.
"""

import os
import re
import shlex
import shutil
import stat
import tempfile
from typing import List, Mapping, NamedTuple, Optional, Tuple

from kbuildguard.console import printable
from kbuildguard.errors import BadInput, CannotWrite
from kbuildguard.identity import Family
from kbuildguard.target.kernel import KernelTarget, tool_records
from kbuildguard.toolchain import Compiler, linker_program, llvm_settings, toolset_env

# A release names a folder: a kernel release is "6.1.0-57-amd64", "5.14.0-427.el9.x86_64",
# "6.6.0+" -- never a path, never "." or "..".
_RELEASE = re.compile(r"\A[A-Za-z0-9_+~][A-Za-z0-9._+~-]*\Z")


class LockedTool(NamedTuple):
    name: str  # the bare name kbuild calls: gcc, gcc-12, clang-16, ld, ld.lld-16, pahole, rustc
    path: str  # the absolute path it resolved to when the lock was written (not followed: ccache, rustup dispatch by name)
    role: str  # "compiler", "linker", "pahole", "rustc"


class ToolchainLock(NamedTuple):
    release: str
    compiler: Compiler
    make_vars: Tuple[str, ...]  # ("LLVM=-16", "LLVM_IAS=1") for a clang kernel, () for gcc
    tools: Tuple[LockedTool, ...]
    # what toolset_env puts first on PATH for a build with this compiler (a toolset's bin, clang's
    # LLVM folder for LLVM=1's unversioned ld.lld, llvm-ar ...), after the lock's own bin
    path_prefix: Tuple[str, ...]
    ld_library_path: str  # a Red Hat toolset's libraries (its enable script sets them too), or ""


def plan(target: KernelTarget, compiler: Compiler, env: Mapping[str, str]) -> ToolchainLock:
    """What the lock for TARGET holds: COMPILER (kbuildguard's selection) under every name kbuild
    may call it by, and the linker, pahole and rustc the same PATH finds."""
    if not _RELEASE.match(target.release):
        raise BadInput("kernel release %r cannot name a lock folder" % target.release)
    build_env = toolset_env(compiler, env)  # a toolset's or clang's own bin folder first, as make gets it
    path = build_env.get("PATH", os.defpath)
    names = [compiler.program]
    llvm = llvm_settings(target, compiler, tool_records(target.tree_config).assembler)
    if compiler.family is Family.CLANG:
        names.append("clang")
    else:
        # Makefile: CC = $(CROSS_COMPILE)gcc; Debian's .kernelvariables: gcc-N (the program's own name)
        names += ["gcc", "cc"]
    tools = []  # type: List[LockedTool]
    for name in _unique(names):
        tools.append(LockedTool(name, compiler.path, "compiler"))
    for name, role in ((linker_program(compiler, llvm, env), "linker"), ("pahole", "pahole"), ("rustc", "rustc")):
        found = shutil.which(name, path=path)
        if found is not None:
            tools.append(LockedTool(name, found, role))
    before = env.get("PATH", os.defpath).split(os.pathsep)
    prefix = tuple(d for d in path.split(os.pathsep) if d and d not in before)
    libs = build_env.get("LD_LIBRARY_PATH", "") if compiler.toolset else ""
    return ToolchainLock(release=target.release, compiler=compiler, make_vars=llvm.make_vars, tools=tuple(tools), path_prefix=prefix, ld_library_path=libs)


def _unique(names: List[str]) -> List[str]:
    seen = []  # type: List[str]
    for n in names:
        if n and n not in seen:
            seen.append(n)
    return seen


def render_env(lock: ToolchainLock, bindir: str) -> str:
    """The shell a DKMS build sources for this kernel (POSIX sh; DKMS runs bash)."""
    q = shlex.quote
    lines = ["# kbuildguard toolchain lock for kernel %s: source it before make (DKMS's build_environment)." % lock.release,
             "# kbuild ignores an exported CC; the names it calls resolve in %s first." % bindir,
             # what was locked, for a reader and DKMS's log: shell variables, not exported, and not
             # KBUILDGUARD_* (kbuildguard refuses an environment setting it does not know)
             "kbuildguard_lock_kernel=%s" % q(lock.release),
             "kbuildguard_lock_cc=%s" % q(lock.compiler.path),
             "kbuildguard_lock_cc_identity=%s" % q(lock.compiler.identity.describe())]
    for tool in lock.tools:
        if tool.role != "compiler":
            lines.append("kbuildguard_lock_%s=%s" % (tool.role, q(tool.path)))
    lines.append("PATH=%s:\"${PATH:-/usr/sbin:/usr/bin:/sbin:/bin}\"" % ":".join(q(d) for d in (bindir,) + lock.path_prefix))
    lines.append("export PATH")
    if lock.ld_library_path:
        lines.append("LD_LIBRARY_PATH=%s\nexport LD_LIBRARY_PATH" % q(lock.ld_library_path))
    for var in lock.make_vars:  # LLVM=-16 LLVM_IAS=1: the Makefile reads them from the environment
        name, _, value = var.partition("=")
        lines.append("%s=%s" % (name, q(value)))
        lines.append("export %s" % name)
    return "\n".join(lines) + "\n"


def render_dispatcher(root: str) -> str:
    """DIR/build_environment: the lock of the kernel DKMS builds for ($kernelver), or a warning."""
    q = shlex.quote(root)
    return ("# kbuildguard toolchain locks (kbuildguard detect --kernel RELEASE --toolchain-lock %s).\n"
            "# Sourced with $kernelver set, as DKMS does before a build.\n"
            "if [ -n \"${kernelver:-}\" ] && [ -f %s/\"$kernelver\"/env ]; then\n"
            "    . %s/\"$kernelver\"/env\n"
            "else\n"
            "    echo \"kbuildguard: no toolchain lock for kernel ${kernelver:-(kernelver unset)} in \"%s\":"
            " the build uses PATH's compiler; POST_BUILD still checks it\" >&2\n"
            "fi\n") % (q, q, q, q)


def write(lock: ToolchainLock, root: str) -> List[str]:
    """Write DIR/RELEASE/{env,bin/} and DIR/build_environment, replacing a previous lock of that
    kernel whole (a new folder renamed over the old one). Returns the paths written."""
    if not root or any(ord(c) < 32 or ord(c) == 127 for c in root):
        # the folder is written into shell (a comment, a quoted word): one line, no control characters
        raise BadInput("--toolchain-lock %r: not a usable folder name (empty, or control characters)" % root)
    root = os.path.abspath(root)
    if os.pathsep in root:
        # the lock's bin goes into PATH, which splits at ':' (POSIX, "Environment Variables"):
        # /tmp/co:lon/lock would put /tmp/co and a relative lon/lock/... on PATH instead
        raise BadInput("--toolchain-lock %s: the path contains '%s', which splits PATH: the lock's bin would not be "
                       "on it (choose a folder without '%s')" % (printable(root), os.pathsep, os.pathsep))
    try:
        os.makedirs(root, mode=0o755, exist_ok=True)  # not group-writable under a umask of 002
        info = os.stat(root)
        mode = info.st_mode
        if info.st_uid not in (0, os.geteuid()):
            raise BadInput("--toolchain-lock %s: the folder belongs to uid %d, not to you or root: whatever sources "
                           "the lock would run their code" % (root, info.st_uid))
        if mode & 0o022:
            # root's DKMS sources what is in it: a folder others may write is their code run as root
            raise BadInput("--toolchain-lock %s: the folder is writable by group or others (mode %o): whatever sources "
                           "the lock would run their code" % (root, mode & 0o777))
        _check_parents(root)
        final = os.path.join(root, lock.release)
        bindir = os.path.join(final, "bin")
        staging = tempfile.mkdtemp(prefix=".%s." % lock.release, dir=root)
        try:
            os.mkdir(os.path.join(staging, "bin"))
            for tool in lock.tools:
                os.symlink(tool.path, os.path.join(staging, "bin", tool.name))
            write_text(os.path.join(staging, "env"), render_env(lock, bindir))
            os.chmod(staging, 0o755)
            if os.path.isdir(final) and not os.path.islink(final):
                old = tempfile.mkdtemp(prefix=".old.", dir=root)
                try:
                    os.rename(final, os.path.join(old, "lock"))
                    os.rename(staging, final)
                finally:
                    shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(staging, final)
        finally:
            # every failure (a full disk, a signal) leaves no temporary folder; after the rename
            # the staging name is gone and there is nothing to remove
            shutil.rmtree(staging, ignore_errors=True)
        dispatcher = os.path.join(root, "build_environment")
        write_text(dispatcher, render_dispatcher(root))
    except OSError as exc:
        raise CannotWrite("%s: cannot write the toolchain lock: %s" % (root, exc.strerror or exc),
                          hint="choose a folder you can write (--toolchain-lock DIR), e.g. as root /var/lib/kbuildguard/toolchain")
    return [os.path.join(final, "env"), bindir, dispatcher]


def unsafe_folder(path: str, uid: int, sticky_ok: bool = True) -> Optional[str]:
    """Why PATH may not hold what root sources or what make builds, or None: the one rule for the
    toolchain lock's parents and the shared staging folder (issue 19). As sudo's secure-path check
    (lib/util/secure_path.c): owned by root or by UID, and not writable by group or others. A sticky
    folder (/tmp, mode 1777) passes when STICKY_OK: no one but an entry's owner (or the folder's)
    can rename or remove that entry (the kernel's may_delete(), check_sticky())."""
    info = os.stat(path)
    if info.st_uid not in (0, uid):
        return "belongs to uid %d, not to you or root" % info.st_uid
    if info.st_mode & 0o022 and not (sticky_ok and info.st_mode & stat.S_ISVTX):
        return "is writable by group or others (mode %o)" % (info.st_mode & 0o7777)
    return None


def unsafe_parent(path: str, uid: int) -> Optional[Tuple[str, str]]:
    """The first folder above PATH, up to /, that unsafe_folder() refuses, with why; or None."""
    parent = os.path.dirname(path)
    while True:
        why = unsafe_folder(parent, uid)
        if why is not None:
            return parent, why
        if parent == os.path.dirname(parent):  # / : the walk stops here
            return None
        parent = os.path.dirname(parent)


def _check_parents(root: str) -> None:
    """Every folder above the lock up to / must be as safe as the lock folder itself: whoever may
    rename a parent can put another folder, and so their code, where root's DKMS sources the lock."""
    found = unsafe_parent(root, os.geteuid())
    if found is not None:
        raise BadInput("--toolchain-lock %s: its parent folder %s %s: they could replace the lock, and whatever sources "
                       "it would run their code" % (root, found[0], found[1]))


def write_text(path: str, text: str) -> None:
    """A new file renamed over PATH: never written through a name someone else may have planted."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp.", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
