"""Invoking kbuild with the kernel's compiler, then holding every produced .ko to the verdict.

Nothing that fails verification stays where a packager (``find -name '*.ko'``, ``%files``, DKMS)
would pick it up: it is moved to ``.kbuildguard/rejected/`` with a report beside it.
"""

import contextlib
import datetime
import fcntl
import json
import os
import shutil
import time
from typing import Iterator, List, Mapping, NamedTuple, Optional, Sequence

from kbuildguard import __version__
from kbuildguard.console import Console
from kbuildguard.errors import BadInput, BuildFailed, Interrupted
from kbuildguard.identity import Family
from kbuildguard.inspect import find_modules, read_module
from kbuildguard.kernel import KernelTarget
from kbuildguard.report import kernel_json, module_json, selection_json
from kbuildguard.run import CommandFailed, Runner, quote
from kbuildguard.toolchain import Compiler, Selection, toolset_env
from kbuildguard.verify import ModuleReport, Verdict

STATE_DIR = ".kbuildguard"
TARGETS = ("modules", "clean", "modules_install")


class MakeCommand(NamedTuple):
    argv: List[str]
    env: Mapping[str, str]
    cwd: str


class BuildResult(NamedTuple):
    reports: List[ModuleReport]
    rejected: List[str]  # where rejected modules were moved
    report_path: str


def make_command(target: KernelTarget, compiler: Compiler, module_dir: str, goal: str,
                 make_args: Sequence[str], env: Mapping[str, str]) -> MakeCommand:
    """``make -C BUILD_DIR M=MODULE_DIR CC=<the matching compiler> [LLVM=1] ARGS GOAL``.

    CC on make's command line overrides the tree's own (Debian's headers hard-code ``CC = gcc-12``
    and set DEBIAN_KERNEL_NO_CC_VERSION_CHECK, so kbuild itself would not even warn).
    """
    assert target.build_dir is not None
    argv = ["make", "-C", target.build_dir, "M=" + module_dir]
    if compiler.family is Family.CLANG:
        # LLVM=1 makes kbuild use clang's flags and ld.lld/llvm-ar; toolset_env puts the matching
        # LLVM bin folder first on PATH so that the unversioned tools are the same release as clang.
        argv.append("LLVM=1")
    argv.append("CC=" + compiler.path)
    argv.extend(a for a in make_args if not a.startswith("CC="))
    argv.append(goal)
    return MakeCommand(argv, toolset_env(compiler, env), module_dir)


def _ordered_modules(module_dir: str) -> Optional[List[str]]:
    """The .ko paths kbuild lists in modules.order (.o before 5.16, .ko after); None without one."""
    try:
        with open(os.path.join(module_dir, "modules.order"), encoding="utf-8", errors="replace") as f:
            entries = [line.strip() for line in f if line.strip()]
    except OSError:
        return None
    paths = []
    for entry in entries:
        if entry.startswith("kernel/"):
            entry = entry[len("kernel/"):]
        if entry.endswith(".o"):
            entry = entry[:-2] + ".ko"
        paths.append(entry if os.path.isabs(entry) else os.path.join(module_dir, entry))
    return paths


def produced_modules(module_dir: str) -> List[str]:
    """The .ko files this build made."""
    listed = _ordered_modules(module_dir)
    if listed is None:
        return find_modules([module_dir])
    return [p for p in listed if os.path.exists(p)]


@contextlib.contextmanager
def build_lock(module_dir: str, console: Console) -> Iterator[None]:
    """One kbuildguard build per module folder at a time: kbuild shares .o files between them."""
    state = os.path.join(module_dir, STATE_DIR)
    os.makedirs(state, exist_ok=True)
    handle = open(os.path.join(state, "lock"), "w")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            console.info("another kbuildguard build is running in %s; waiting for it" % module_dir)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()


def set_aside(path: str, module_dir: str, folder: str, report: Optional[dict]) -> str:
    """Move a .ko out of the build output into .kbuildguard/FOLDER/, with its report beside it.

    The file loses its .ko ending (NAME.ko.rejected): a packager's `find -name '*.ko'` or a %files
    glob must not pick it up, and kbuild's `make clean` (which deletes every *.ko below M=) must not
    delete the evidence.
    """
    dest_dir = os.path.join(module_dir, STATE_DIR, folder)
    os.makedirs(dest_dir, exist_ok=True)
    base = os.path.join(dest_dir, os.path.basename(path))
    dest = base + "." + folder.split(os.sep)[0]
    shutil.move(path, dest)
    if report is not None:
        with open(base + ".report.json", "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return dest


def module_objects(ko_path: str) -> List[str]:
    """The objects kbuild linked into a module: NAME.mod lists them (5.16+), else NAME.o's siblings."""
    base = ko_path[: -len(".ko")]
    try:
        with open(base + ".mod", encoding="utf-8", errors="replace") as f:
            objs = [w for w in f.read().split() if w.endswith(".o")]
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


def forget_outputs(module_dir: str) -> List[str]:
    """Delete what the previous build made (per modules.order and NAME.mod), so the next kernel's
    build starts from the sources.

    Not `make clean`: kbuild's clean deletes every *.ko below M=, including the previous kernels'
    verified modules under kbuildguard-out/. And not nothing: kbuild does not relink NAME.ko when
    only the kernel tree changed (NAME.mod.c keeps the old vermagic).
    """
    removed = []  # type: List[str]
    listed = _ordered_modules(module_dir)
    if listed is None:
        return removed
    paths = [os.path.join(module_dir, "Module.symvers"), os.path.join(module_dir, "modules.order")]
    for ko in listed:
        base = ko[: -len(".ko")]
        paths.extend(module_objects(ko))
        paths.extend(base + ext for ext in (".ko", ".mod", ".mod.c", ".mod.o", ".o"))
    for path in paths:
        if os.path.isfile(path) and not path.endswith("_shipped"):
            os.unlink(path)
            removed.append(path)
    return removed


def run_make(runner: Runner, command: MakeCommand) -> None:
    try:
        runner.action(command.argv, cwd=command.cwd, env=command.env)
    except CommandFailed as exc:
        raise BuildFailed("make exited with status %d (command: %s, in %s)" % (exc.returncode, quote(command.argv), command.cwd),
                          hint="the compiler's errors are above; kbuildguard itself chose %s" % command.argv[-2])


def build(runner: Runner, console: Console, target: KernelTarget, selection: Selection, module_dir: str,
          goal: str, make_args: Sequence[str], env: Mapping[str, str], verify,
          allow_mismatch: bool = False, rendered: Sequence[dict] = (), rejected_folder: str = "rejected",
          report_name: str = "report.json") -> BuildResult:
    """Run one goal; for modules and modules_install, verify and set aside what does not match.

    ``verify`` is a callable path -> ModuleReport (kept as a parameter so that this module does not
    decide policy).
    """
    compiler = selection.selected
    assert compiler is not None
    state = os.path.join(module_dir, STATE_DIR)
    report_path = os.path.join(state, report_name)
    if goal == "clean":
        run_make(runner, make_command(target, compiler, module_dir, "clean", make_args, env))
        return BuildResult([], [], "")
    command = make_command(target, compiler, module_dir, "modules", make_args, env)
    started = time.time()
    reports = []  # type: List[ModuleReport]
    rejected = []  # type: List[str]
    entries = []
    try:
        with console.step("make modules with %s" % compiler.describe()):
            run_make(runner, command)
        with console.step("verify modules against %s %s" % (target.release, target.compiler.describe())):
            for path in produced_modules(module_dir):
                rep = verify(path)
                reports.append(rep)
                entry = module_json(rep)
                if rep.verdict is not Verdict.OK and not allow_mismatch:
                    dest = set_aside(path, module_dir, rejected_folder, entry)
                    entry["quarantined_to"] = dest
                    rejected.append(dest)
                entries.append(entry)
    except KeyboardInterrupt:
        # Ctrl-C during make or during verification: nothing this run made may stay where a
        # packager looks, verified or not.
        moved = [set_aside(p, module_dir, "unverified", None) for p in produced_modules(module_dir)
                 if os.path.getmtime(p) >= started - 1]
        raise Interrupted("build interrupted; %d module(s) made by it were moved to %s/unverified/"
                          % (len(moved), state))
    data = {
        "kbuildguard": __version__,
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "kernel": kernel_json(target),
        "toolchain": dict(selection_json(selection), why="matches the kernel's compiler at level %s" % selection.level),
        "make": command.argv,
        "generated_files": list(rendered),
        "override": {"allow_mismatch": allow_mismatch},
        "modules": entries,
    }
    with open(report_path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    if goal == "modules_install" and not rejected:
        run_make(runner, make_command(target, compiler, module_dir, "modules_install", make_args, env))
    return BuildResult(reports, rejected, report_path)
