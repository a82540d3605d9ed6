"""Test harness: unit tests cannot touch the host; integration tests must find what .ci/run installed.

- Every test runs in a scrubbed environment (no KBUILDGUARD_*, CC, CROSS_COMPILE, ARCH, and a
  temporary HOME), as kas's monkeykas does.
- Unless a test is marked ``integration``, starting a process raises (cibuildwheel's
  mock_protection): unit tests use FakeRunner, which maps argv to canned output.
- A plain `pytest` in a checkout runs the unit suite only. tests/integration/ is collected with
  KBG_TEST_INTEGRATION=1 (set by scripts/test, so by CI), where a missing prerequisite is a failure,
  not a skip -- CI must not go green by skipping -- or with KBG_TEST_INTEGRATION=local, where it skips.
"""

import itertools
import os
import re
import shutil
import subprocess
import sys
from typing import Dict, Mapping, Optional, Sequence, Tuple

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from kbuildguard.console import Console  # noqa: E402
from kbuildguard.errors import ToolNotFound  # noqa: E402
from kbuildguard.run import CommandFailed, Completed  # noqa: E402

INTEGRATION = os.environ.get("KBG_TEST_INTEGRATION") == "1"
collect_ignore = [] if os.environ.get("KBG_TEST_INTEGRATION") in ("1", "local") else ["integration"]
SCRUB = ("CC", "CROSS_COMPILE", "ARCH", "KERNELRELEASE", "LLVM", "MAKEFLAGS", "NO_COLOR")


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory):
    """One numbered folder per session that holds every test's tmp_path and HOME."""
    return tmp_path_factory.mktemp("run", numbered=True)


_SERIAL = itertools.count()


def _fresh_folder(root, prefix: str):
    path = root / ("%s-%d" % (prefix, next(_SERIAL)))
    path.mkdir()
    return path


@pytest.fixture
def tmp_path(request, tmp_root):
    """An empty folder per test, as pytest's own tmp_path, made in constant time: pytest's lists its
    whole base folder to number each new one (pytest/pathlib.py make_numbered_dir), which over 1,900
    tests was a quarter of the unit suite's time on Python 3.6 (issue 21)."""
    return _fresh_folder(tmp_root, re.sub(r"\W", "_", request.node.name)[:30])


@pytest.fixture(autouse=True)
def scrubbed_env(request, monkeypatch, tmp_root):
    for key in list(os.environ):
        if key.startswith("KBUILDGUARD_") or key in SCRUB:
            monkeypatch.delenv(key, raising=False)
    # a HOME of its own for each test, made by whatever writes there first (os.makedirs, as the
    # caches do): the three tests in four that never write there cost no folder. An integration test
    # gets it made: the real programs it runs (rpmbuild, dkms, apt) may expect it to exist.
    home = tmp_root / ("home-%d" % next(_SERIAL))
    monkeypatch.setenv("HOME", str(home))
    if request.node.get_closest_marker("integration"):
        home.mkdir()
        return
    # messages in the C locale: argparse asks gettext for a catalogue for each of its strings, and
    # gettext.find() stops looking at once for C (Lib/gettext.py: find), a tenth of the suite's time
    # on 3.6 in the ~1,000 parsers the tests build; it changes no message (the package has no
    # catalogue). Unit tests only: an integration test's programs keep the environment they had.
    monkeypatch.setenv("LANGUAGE", "C")


@pytest.fixture(scope="session", autouse=True)
def one_parser():
    """cli.main builds its argparse parser on every call: 7 ms on Python 3.6, nothing for one run of
    kbuildguard, 4.5 s over the suite's 650 calls (issue 21). The suite builds it once: parse_args
    reads a parser and never changes it (Lib/argparse.py: parse_known_args; an append action copies
    its default), so a test still sees exactly the parser a run of kbuildguard builds."""
    from kbuildguard import cli

    built = cli.build_parser()
    patch = pytest.MonkeyPatch()
    patch.setattr(cli, "build_parser", lambda: built)
    yield built
    patch.undo()


@pytest.fixture(autouse=True)
def mock_protection(request, monkeypatch):
    if request.node.get_closest_marker("integration"):
        return

    def refuse(*args, **kwargs):
        raise AssertionError("unit test tried to start a process: %r" % (args[0] if args else kwargs.get("args"),))

    monkeypatch.setattr(subprocess, "Popen", refuse)


def require(condition: bool, what: str) -> None:
    """Skip an integration test whose prerequisite is missing, or fail under .ci/run."""
    if condition:
        return
    if INTEGRATION:
        pytest.fail("integration prerequisite missing: %s (.ci/run should have installed it)" % what)
    pytest.skip("needs %s (run .ci/run, or set KBG_TEST_INTEGRATION=1 on a prepared machine)" % what)


class FakeRunner:
    """Maps argv to canned output captured from real hosts; records every call."""

    def __init__(self, outputs: Optional[Mapping[Tuple[str, ...], object]] = None, paths: Optional[Dict[str, str]] = None):
        self.outputs = dict(outputs or {})
        self.paths = dict(paths or {})
        self.calls = []  # type: List[List[str]]
        self.console = Console(verbosity=-1)

    def which(self, program: str, env=None) -> str:
        if program in self.paths:
            return self.paths[program]
        if os.sep in program:
            return program
        found = shutil.which(program, path=(env or {}).get("PATH", ""))
        if found:
            return found
        raise ToolNotFound("%s not found on PATH" % program)

    def _lookup(self, argv: Sequence[str]):
        self.calls.append(list(argv))
        key = tuple(argv)
        if key not in self.outputs:
            raise AssertionError("FakeRunner has no output for %r" % (key,))
        out = self.outputs[key]
        if isinstance(out, Exception):
            raise out
        return out

    def close(self) -> None:
        pass

    def probe(self, argv, cwd=None, env=None, ok_returncodes=(0,), timeout=None, remember=False) -> Completed:
        out = self._lookup(argv)
        if isinstance(out, tuple):  # (returncode, stdout)
            code, text = out
            if code not in ok_returncodes:
                raise CommandFailed(argv, cwd, code, text)
            return Completed(list(argv), code, text, "")
        return Completed(list(argv), 0, out, "")

    def action(self, argv, cwd=None, env=None, ok_returncodes=(0,), pass_fds=(), stall=None) -> int:
        out = self._lookup(argv)
        if isinstance(out, list):  # one answer per call, in turn (a lock held, then released)
            out = out.pop(0) if len(out) > 1 else out[0]
            if isinstance(out, Exception):
                raise out
        code = out if isinstance(out, int) else 0
        if code not in ok_returncodes:
            raise CommandFailed(argv, cwd, code)
        return code


def context(runner=None, euid=0, interactive=False, stdin_text="", env=None, cwd="/", json=False):
    """A Context built from fakes, as cli.main builds the real one."""
    import io

    from kbuildguard.context import Context

    runner = runner or FakeRunner()
    return Context(runner=runner, console=runner.console, stdout=io.StringIO(), stdin=io.StringIO(stdin_text),
                   interactive=interactive, euid=euid, env=dict(env or {}), cwd=cwd, json=json)


GCC12_MACROS = "#define __GNUC__ 12\n#define __GNUC_MINOR__ 2\n#define __GNUC_PATCHLEVEL__ 0\n#define __x86_64__ 1\n#define __VERSION__ \"12.2.0\"\n"
GCC11_MACROS = "#define __GNUC__ 11\n#define __GNUC_MINOR__ 3\n#define __GNUC_PATCHLEVEL__ 0\n#define __x86_64__ 1\n"
CLANG16_MACROS = ("#define __GNUC__ 4\n#define __clang__ 1\n#define __clang_major__ 16\n#define __clang_minor__ 0\n"
                  "#define __clang_patchlevel__ 6\n#define __x86_64__ 1\n")
GCC485_MACROS = "#define __GNUC__ 4\n#define __GNUC_MINOR__ 8\n#define __GNUC_PATCHLEVEL__ 5\n#define __aarch64__ 1\n"
GCC831_MACROS = "#define __GNUC__ 8\n#define __GNUC_MINOR__ 3\n#define __GNUC_PATCHLEVEL__ 1\n#define __aarch64__ 1\n"


def compiler_outputs(path: str, macros: str, banner: str) -> Dict[Tuple[str, ...], object]:
    return {
        (path, "-E", "-dM", "-x", "c", "-"): macros,
        (path, "--version"): banner + "\nCopyright (C) Free Software Foundation, Inc.\n",
    }


def make_exe(path) -> str:
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(path, 0o755)
    return path


def make_tree(root, cc_text: Optional[str] = "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0", release: str = "6.1.0-56-amd64",
              arch_config: str = "CONFIG_X86_64", gcc_version: Optional[str] = "120200", compile_h: Optional[str] = None,
              quote_autoconf: bool = False, config_header: Optional[str] = None) -> str:
    """A minimal configured kernel build tree, as the kernel's own files lay it out."""
    root = str(root)
    os.makedirs(os.path.join(root, "include/config"), exist_ok=True)
    os.makedirs(os.path.join(root, "include/generated"), exist_ok=True)
    with open(os.path.join(root, "Makefile"), "w") as f:
        f.write("# test tree\n")
    lines = []
    if cc_text is not None:
        lines.append('CONFIG_CC_VERSION_TEXT="%s"' % cc_text)
    if gcc_version is not None:
        lines.append("CONFIG_CC_IS_GCC=y")
        lines.append("CONFIG_GCC_VERSION=%s" % gcc_version)
    lines.append("%s=y" % arch_config)
    # what the vermagic of tests/elfbuild.py's modules says: SMP preempt mod_unload modversions
    lines += ["CONFIG_SMP=y", "CONFIG_PREEMPT_BUILD=y", "CONFIG_MODULE_UNLOAD=y", "CONFIG_MODVERSIONS=y"]
    with open(os.path.join(root, ".config"), "w") as f:
        if config_header:
            f.write("#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86 4.19 Kernel Configuration\n")
            f.write("# Compiler: %s\n#\n" % config_header)
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(root, "include/config/auto.conf"), "w") as f:
        for line in lines:
            if not quote_autoconf and line.startswith("CONFIG_CC_VERSION_TEXT="):
                line = line.replace('"', "")
            f.write(line + "\n")
    with open(os.path.join(root, "include/generated/utsrelease.h"), "w") as f:
        f.write('#define UTS_RELEASE "%s"\n' % release)
    with open(os.path.join(root, "Module.symvers"), "w") as f:  # the CRCs tests/elfbuild.py's modules carry
        f.write("0x9060323f\tmodule_layout\tvmlinux\tEXPORT_SYMBOL\t\n0x92997ed8\t_printk\tvmlinux\tEXPORT_SYMBOL\t\n"
                "0x039823de\tinit_uts_ns\tvmlinux\tEXPORT_SYMBOL_GPL\t\n")
    if compile_h is not None:
        with open(os.path.join(root, "include/generated/compile.h"), "w") as f:
            f.write('#define LINUX_COMPILER "%s"\n' % compile_h)
    for program in HOST_PROGRAMS:  # what the toolchain preflight asks of every tree
        make_exe(os.path.join(root, program))
    return root


HOST_PROGRAMS = ("scripts/basic/fixdep", "scripts/mod/modpost")


def tree_outputs(tree: str) -> Dict[Tuple[str, ...], object]:
    """The preflight's trial runs of a make_tree's host programs: usage and status 1, as fixdep answers."""
    return {(os.path.join(tree, p),): (1, "usage") for p in HOST_PROGRAMS}
