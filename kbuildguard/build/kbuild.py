"""Invoking kbuild: the make command, running it, and reading what it says it made.

kbuild always works in kbuildguard's staging folder (outputs.py), never in the user's module
folder: this module does not decide what is kept, moved or reported.
"""

import os
import re
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import bounded
from kbuildguard.build.modbtf import BtfBase, materialize, objtree_for
from kbuildguard.console import MODPOST_ERROR
from kbuildguard.errors import BadInput, BuildFailed
from kbuildguard.formats.module import read_module
from kbuildguard.run import CommandFailed, Runner, quote
from kbuildguard.target.kernel import KernelTarget, tool_records
from kbuildguard.toolchain import Compiler, cross_settings, llvm_settings, toolchain_make_args, toolset_env

TARGETS = ("modules", "clean", "modules_install")


class MakeCommand(NamedTuple):
    argv: List[str]
    env: Mapping[str, str]
    cwd: str
    compiler: Compiler  # the compiler kbuildguard chose, for messages
    btf_base: Optional[BtfBase] = None  # module BTF's base, laid into a private objtree before make (modbtf.py)
    objtree: str = ""  # that private objtree (make -C), "" when make runs in the tree itself
    tree: str = ""  # the kernel's build tree
    scrubbed: Tuple[str, ...] = ()  # what scrub_make_env took out of the environment, for a warning
    notes: Tuple[str, ...] = ()  # what became of each toolchain variable after -- (toolchain_make_args)


def make_command(target: KernelTarget, compiler: Compiler, stage_dir: str, goal: str,
                 make_args: Sequence[str], env: Mapping[str, str], btf_base: Optional[BtfBase] = None) -> MakeCommand:
    """``make -C BUILD_DIR M=STAGE [LLVM=-16 LLVM_IAS=1] CC=<the matching compiler> ARGS GOAL``.

    CC on make's command line overrides the tree's own (Debian's headers hard-code ``CC = gcc-12``
    and set DEBIAN_KERNEL_NO_CC_VERSION_CHECK, so kbuild itself would not even warn). LLVM= and
    LLVM_IAS= are kbuildguard's too (toolchain.llvm_settings): a clang build needs ld.lld and the
    LLVM binutils of clang's release, and the kernel's assembler. With a module BTF base that is
    not the tree's own vmlinux, make runs in a private objtree (modbtf.py), never in the tree.
    """
    assert target.build_dir is not None
    objtree = objtree_for(stage_dir) if btf_base is not None and not btf_base.in_tree else ""
    argv = ["make", "-C", objtree or target.build_dir, "M=" + stage_dir]
    llvm = llvm_settings(target, compiler, tool_records(target.tree_config).assembler)
    # toolset_env also puts clang's own LLVM bin folder first on PATH, for LLVM=1 (none for gcc)
    argv.extend(llvm.make_vars)
    # a kernel of another machine than this one: ARCH= and CROSS_COMPILE= (toolchain.cross_settings)
    cross = cross_settings(target, compiler, make_args, env)
    argv.extend(cross.make_vars)
    argv.append("CC=" + compiler.path)
    given = toolchain_make_args([a for a in make_args if not a.startswith("M=")], compiler, llvm)
    argv.extend(given.passed)
    argv.append(goal)
    build_env = toolset_env(compiler, env)
    build_env["PWD"] = stage_dir  # $(PWD) in a hand-written Makefile means the folder kbuild builds in
    scrubbed = scrub_make_env(build_env)
    return MakeCommand(argv=argv, env=build_env, cwd=stage_dir, compiler=compiler, btf_base=btf_base, objtree=objtree, tree=target.build_dir, scrubbed=scrubbed,
                       notes=cross.notes + given.notes)


# The environment reaches make too, and every variable in it becomes a make variable: an outer
# make (DKMS, rpmbuild's make -j, a CI wrapper) exports MAKEFLAGS, and a shell may hold anything.
# Scrubbed, not refused: kbuildguard is often run from a recipe whose make the user did not start
# with these options in mind (an outer `make -n` or `make -k`), and its job server must go on working.
# GNU make 4.3 reads options from MAKEFLAGS and GNUMAKEFLAGS (main.c: decode_env_switches), and
# MFLAGS on input in older releases; MAKE, MAKEOVERRIDES and MAKECMDGOALS from the environment win
# over make's own defaults (tried: MAKE="make -n" makes every sub-make a dry run); MAKEFILES names
# makefiles read before kbuild's. KBUILD_OUTPUT moves kbuild's objtree as O= would (refused after --).
ENV_DROPPED = ("MAKE", "MAKEOVERRIDES", "MAKEFILES", "MAKECMDGOALS", "KBUILD_OUTPUT")


def scrub_make_env(env: Dict[str, str]) -> Tuple[str, ...]:
    """Keep only scheduling options in MAKEFLAGS/MFLAGS/GNUMAKEFLAGS, drop ENV_DROPPED; in place.

    Returns what was dropped ("MAKEFLAGS: n" for the options, "MAKEFILES" for a variable), for a warning.
    """
    dropped = []
    for name in ("MAKEFLAGS", "MFLAGS", "GNUMAKEFLAGS"):
        if name in env:
            given = env[name]
            kept = scheduling_flags(given)
            lost = dropped_flags(given)
            if lost:
                dropped.append("%s: %s" % (name, lost))
            if kept:
                env[name] = kept
            else:
                del env[name]
    for name in ENV_DROPPED:
        if name in env:
            del env[name]
            dropped.append(name)
    return tuple(dropped)


# What an outer make (DKMS, rpmbuild's make -j, a CI wrapper) may hand kbuild through MAKEFLAGS: its
# job server and -j, -k, -s, -w. Not -n/-t/-q/-i (kbuild's "+" recipes still link a .ko from stale
# objects under -n; -i links after a failed compile), -W/-o, nor variables (CC=, M=) that would
# bypass what kbuildguard decided.
_KEEP_FLAG = re.compile(r"^(-j\d*|--jobs(=\d+)?|--jobserver-(auth|fds)=\S+|-l[\d.]*|--load-average(=[\d.]+)?)$")


def scheduling_flags(makeflags: str) -> str:
    words = makeflags.split()
    kept = []
    for i, word in enumerate(words):
        if word == "--":
            break  # variable definitions follow
        if i == 0 and not word.startswith("-") and "=" not in word:
            letters = "".join(c for c in word if c in "ksw")  # the first word: single-letter flags without a dash
            if letters:
                kept.append(letters)
        elif _KEEP_FLAG.match(word):
            kept.append(word)
        elif re.match(r"^-[a-zA-Z]+$", word) and not word.startswith("--"):
            letters = "".join(c for c in word[1:] if c in "ksw")
            if letters:
                kept.append("-" + letters)
    return " ".join(kept)


def dropped_flags(makeflags: str) -> str:
    """The options (and variable definitions) of a MAKEFLAGS value that scheduling_flags does not keep."""
    words = makeflags.split()
    kept = scheduling_flags(makeflags).split()
    lost = []
    for i, word in enumerate(words):
        if word == "--":
            if words[i + 1:]:
                lost.append(" ".join(words[i:]))
            break
        if i == 0 and not word.startswith("-") and "=" not in word:
            other = "".join(c for c in word if c not in "ksw")
            if other:
                lost.append(other)
        elif word not in kept:
            if re.match(r"^-[a-zA-Z]+$", word):
                other = "".join(c for c in word[1:] if c not in "ksw")
                if other:
                    lost.append("-" + other)
            else:
                lost.append(word)
    return " ".join(lost)


def run_make(runner: Runner, command: MakeCommand, log_hint: str = "", pass_fds: Sequence[int] = ()) -> None:
    if command.objtree and command.btf_base is not None:
        materialize(command.btf_base, command.tree, command.objtree)
    try:
        runner.action(command.argv, cwd=command.cwd, env=command.env, pass_fds=pass_fds)
    except CommandFailed as exc:
        tail = runner.console.tail()  # -q kept make's output off the terminal: its last lines, here
        failed = BuildFailed("make exited with status %d (command: %s, in %s)" % (exc.returncode, quote(command.argv), command.cwd),
                          hint="make's and the compiler's errors are %s%s; kbuildguard chose %s" % (
                              "the last lines above" if tail else "above", log_hint, command.compiler.describe()),
                          details=tail)
        failed.compiler_errors = tuple(relative_to_stage(line, command.cwd) for line in runner.console.compiler_errors())
        raise failed
    runner.console.compiler_errors()  # a warning's "error:" text of a build that passed is no one's


def relative_to_stage(line: str, stage_dir: str) -> str:
    """A compiler line's path in the staged copy (M=STAGE) made relative to it: the same path in the
    module folder, which is what a CI reader can show (the stage cache is gone after the build)."""
    prefix = stage_dir.rstrip(os.sep) + os.sep
    if prefix != os.sep and MODPOST_ERROR.match(line):  # modpost names the module inside: "[STAGE/kdemo.ko]"
        return line.replace(prefix, "")
    return line[len(prefix):] if prefix != os.sep and line.startswith(prefix) else line


# A variable assignment on make's command line, in every form GNU make takes there: NAME=V, NAME = V,
# NAME:=V, NAME::=V, NAME:::=V, NAME+=V, NAME?=V, NAME!=V, override NAME=V.
_ASSIGNED = re.compile(r"^\s*(?:override\s+)?(?P<name>[^\s=:+?!]+)\s*(?P<op>:::=|::=|:=|\+=|\?=|!=|=)(?P<value>.*)$", re.S)


def assigns(arg: str, name: str) -> bool:
    m = _ASSIGNED.match(arg)
    return m is not None and m.group("name") == name


def make_variable(name: str, make_args: Sequence[str], env: Mapping[str, str]) -> Optional[str]:
    """A variable's value as make sees it: a command-line assignment (any form) beats the
    environment; += appends, ?= sets only an unset variable (the case review found: `INSTALL_MOD_STRIP:=1`
    was read as no assignment at all)."""
    value = env.get(name)
    for arg in make_args:
        m = _ASSIGNED.match(arg)
        if m is None or m.group("name") != name:
            continue
        given = m.group("value").lstrip()  # make drops the blanks after the operator
        if m.group("op") == "+=":
            value = (value + " " + given) if value else given
        elif m.group("op") == "?=":
            value = value if value is not None else given
        else:
            value = given
    return value


def installed_modules(command: MakeCommand, staged: Sequence[str], stage_dir: str, release: str,
                      config: Mapping[str, str], make_args: Sequence[str], env: Mapping[str, str]) -> List[str]:
    """Where ``make modules_install`` put each staged module, computed as kbuild computes it.

    scripts/Makefile.modinst (6.1): ``dst := $(MODLIB)/$(INSTALL_MOD_DIR)`` (``extra`` for external
    modules), the module's path below M= kept, ``.gz``/``.xz``/``.zst`` appended under
    CONFIG_MODULE_COMPRESS_*; Makefile: ``MODLIB = $(INSTALL_MOD_PATH)/lib/modules/$(KERNELRELEASE)``,
    a relative INSTALL_MOD_PATH taken from make's -C folder (make changes into it first).
    """
    root = make_variable("INSTALL_MOD_PATH", make_args, env) or ""
    cdir = command.argv[command.argv.index("-C") + 1]
    if root and not os.path.isabs(root):
        root = os.path.join(cdir, root)
    folder = make_variable("INSTALL_MOD_DIR", make_args, env) or "extra"
    kernelrelease = make_variable("KERNELRELEASE", make_args, env) or release
    suffix = next((s for option, s in (("CONFIG_MODULE_COMPRESS_GZIP", ".gz"), ("CONFIG_MODULE_COMPRESS_XZ", ".xz"),
                                       ("CONFIG_MODULE_COMPRESS_ZSTD", ".zst")) if config.get(option) == "y"), "")
    dst = os.path.join(root + "/lib/modules", kernelrelease, folder) if root else os.path.join("/lib/modules", kernelrelease, folder)
    return [os.path.join(dst, os.path.relpath(path, stage_dir)) + suffix for path in staged]


def ordered_modules(stage_dir: str) -> Optional[List[str]]:
    """The .ko paths kbuild lists in modules.order (.o before 5.16, .ko after); None without one.

    Read as bytes and decoded as the OS decodes file names (surrogateescape): a folder named
    ``caf\\xe9`` or ``blöb`` under LC_ALL=C must name the file it names, on 3.6 as on 3.13.
    """
    try:
        raw_order = bounded.read_file(os.path.join(stage_dir, "modules.order"), bounded.TEXT.size, "a modules.order")
        entries = [line.strip() for line in raw_order.split(b"\n") if line.strip()]
    except OSError:
        return None
    paths = []
    for raw in entries:
        entry = os.fsdecode(raw)
        if entry.startswith("kernel/"):
            entry = entry[len("kernel/"):]
        if entry.endswith(".o"):
            entry = entry[:-2] + ".ko"
        paths.append(entry if os.path.isabs(entry) else os.path.join(stage_dir, entry))
    return paths


def module_objects(ko_path: str) -> List[str]:
    """The objects kbuild linked into a module: NAME.mod lists them (5.16+)."""
    base = ko_path[: -len(".ko")]
    try:
        objs = [os.fsdecode(w) for w in bounded.read_file(base + ".mod", bounded.TEXT.size, "a kbuild .mod file").split()
                if w.endswith(b".o")]
    except OSError:
        objs = []
    folder = os.path.dirname(ko_path)
    paths = [os.path.join(folder, o) for o in objs]  # join keeps an absolute o as it is
    return [p for p in paths if os.path.exists(p)]


def offending_objects(ko_path: str, describe_mismatch) -> List[str]:
    """Which of the module's objects carry a foreign compiler: "blob.o: gcc 11.3.0 (Debian 11.3.0-12)".

    ``describe_mismatch`` maps an object's CompilerIds to a text, or "" when they all match.
    """
    found = []
    for obj in module_objects(ko_path):
        try:
            info = read_module(obj)
        except BadInput:
            continue
        text = describe_mismatch(info.compilers)
        if text:
            shipped = " (from %s_shipped)" % os.path.basename(obj) if os.path.exists(obj + "_shipped") else ""
            found.append("%s%s: built by %s" % (os.path.basename(obj), shipped, text))
    return found
