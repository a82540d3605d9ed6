"""The only module that starts processes.

Every command is an argv list (never a shell string), resolved with shutil.which, logged as
``+ <shlex-quoted argv>`` with its cwd, and run with stdin from /dev/null. Probes capture output
under LC_ALL=C; actions stream to the terminal.
"""

import os
import select
import shlex
import shutil
import signal
import subprocess
import time
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Pattern, Sequence

from kbuildguard.console import Console
from kbuildguard.errors import Stopped, ToolNotFound
from kbuildguard.probecache import ProbeCache


class Completed(NamedTuple):
    argv: List[str]
    returncode: int
    stdout: str
    stderr: str


class Stall(NamedTuple):
    """When to stop an action that waits without end: every line it printed for ``seconds`` matched
    ``pattern`` (dnf 4's "Waiting for process with pid N to finish." each second, yum's "Another app
    is currently holding the yum lock" and its status lines), or it printed nothing more after one.
    Then it is stopped and CommandFailed says ``stalled``; any other line resets the clock."""

    pattern: "Pattern[bytes]"
    seconds: float


_TAIL = 16 * 1024  # what an action keeps of its output for its caller (the log file keeps it all)


class CommandFailed(Exception):
    """A command exited with a status outside ok_returncodes.

    Not a KbgError: the caller knows what the failure means (build failed, install failed) and
    converts it; an unconverted one is a bug and gets a traceback.
    """

    def __init__(self, argv: Sequence[str], cwd: Optional[str], returncode: int, stderr: str = "", output: str = "",
                 stalled: bool = False, timed_out: bool = False):
        self.argv = list(argv)
        self.cwd = cwd
        self.returncode = returncode
        self.stderr = stderr
        self.output = output  # an action's last output (stdout and stderr), for callers that read why it failed
        self.stalled = stalled  # an action stopped by its Stall rule
        self.timed_out = timed_out  # a probe stopped at its timeout
        where = " in %s" % cwd if cwd else ""
        msg = "command %s%s exited with status %d" % (quote(argv), where, returncode)
        if stderr.strip():
            msg += ": " + stderr.strip().splitlines()[-1]
        super().__init__(msg)


def quote(argv: Iterable[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def probe_env(env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """Environment for probes: C locale, so that we never parse a translated banner."""
    merged = dict(os.environ if env is None else env)
    merged["LC_ALL"] = "C"
    merged.pop("LANGUAGE", None)
    return merged


class Runner:
    """Runs commands on this host. Tests replace it with a fake that maps argv to canned output."""

    def __init__(self, console: Console, cache: Optional[ProbeCache] = None):
        self.console = console
        self.cache = cache

    def close(self) -> None:
        if self.cache is not None:
            self.cache.save()

    def which(self, program: str, env: Optional[Mapping[str, str]] = None) -> str:
        path = (env if env is not None else os.environ).get("PATH", os.defpath)
        found = shutil.which(program, path=path)
        if found is None:
            raise ToolNotFound(
                "%s not found on PATH" % program,
                hint="searched PATH=%s" % path,
            )
        return found

    def _resolve(self, argv: Sequence[str], env: Optional[Mapping[str, str]]) -> List[str]:
        if not argv:
            raise ValueError("empty argv")
        first = argv[0]
        resolved = first if os.sep in first else self.which(first, env)
        return [resolved] + list(argv[1:])

    def probe(self, argv: Sequence[str], cwd: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
              ok_returncodes: Sequence[int] = (0,), timeout: Optional[float] = 120, remember: bool = False) -> Completed:
        """Run a query command and capture its output (gcc -E -dM -, dpkg-query, rpm -q).

        ``remember``: the answer depends only on the program file (a compiler's macros, a tool's
        --version), so a successful one is kept in the probe cache for the next run."""
        full = self._resolve(argv, env)
        key = ProbeCache.key(full, cwd) if remember and self.cache is not None else None
        if key is not None and self.cache is not None:
            known = self.cache.get(key)
            if known is not None and known[0] in ok_returncodes:
                self.console.debug("+ %s  (remembered)" % quote(argv))
                return Completed(list(argv), known[0], known[1], known[2])
        self.console.debug("+ %s%s" % (quote(argv), "  (cwd %s)" % cwd if cwd else ""))
        # A session of its own: at the timeout the whole group is killed. Killing the child alone
        # left a wrapper's own children (`#!/bin/sh` + `exec`-less `sleep`) holding the pipes, and
        # communicate() then waited for them without end (issue 22: a --cc wrapper that hangs).
        try:
            proc = subprocess.Popen(full, cwd=cwd, env=probe_env(env), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise ToolNotFound("cannot run %s: %s" % (argv[0], exc.strerror or exc))
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            raise CommandFailed(argv, cwd, -9, "timed out after %ss" % timeout, timed_out=True)
        except (KeyboardInterrupt, Stopped):
            _kill_group(proc)  # in its own session, the terminal's Ctrl-C did not reach it
            proc.communicate()
            raise
        stdout = out.decode("utf-8", errors="replace")
        stderr = err.decode("utf-8", errors="replace")
        if stderr.strip():
            self.console.debug(stderr.rstrip())
        if proc.returncode not in ok_returncodes:
            raise CommandFailed(argv, cwd, proc.returncode, stderr)
        if key is not None and self.cache is not None:
            self.cache.put(key, proc.returncode, stdout, stderr)
        return Completed(list(argv), proc.returncode, stdout, stderr)

    def action(self, argv: Sequence[str], cwd: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
               ok_returncodes: Sequence[int] = (0,), pass_fds: Sequence[int] = (), stall: Optional[Stall] = None) -> int:
        """Run a command whose output the user should see (make, apt-get install).

        Its output (stdout and stderr, interleaved as the user would see them) goes to our stderr --
        stdout carries only results -- and, complete, into the log file. The child runs in a process
        group of its own, so that a signal that ends kbuildguard ends it and every compiler it
        started (``stop_group``); it also gets SIGTERM if kbuildguard dies without a word (SIGKILL).
        ``pass_fds`` lets it inherit a lock, which it then holds as long as it runs. ``stall`` stops it
        when it waits without end (see Stall). The last 16 KiB of its output go into CommandFailed.
        """
        full = self._resolve(argv, env)
        self.console.info("+ %s%s" % (quote(argv), "  (cwd %s)" % cwd if cwd else ""))
        try:
            proc = subprocess.Popen(full, cwd=cwd, env=dict(os.environ if env is None else env),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True, pass_fds=tuple(pass_fds), preexec_fn=_die_with_parent)
        except OSError as exc:
            raise ToolNotFound("cannot run %s: %s" % (argv[0], exc.strerror or exc))
        tail = b""
        since: Optional[float] = None
        stalled = False
        try:
            assert proc.stdout is not None
            fd = proc.stdout.fileno()
            while True:
                if stall is not None:
                    if since is not None and time.monotonic() - since >= stall.seconds:
                        stalled = True
                        stop_group(proc, signal.SIGTERM, grace=10)
                        break
                    if not select.select([fd], [], [], 1.0)[0]:
                        continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self.console.child_output(chunk)
                tail = (tail + chunk)[-_TAIL:]
                if stall is not None:
                    # waiting while every line it prints is a waiting line; any other output (the
                    # lock was freed: downloads, a transaction) is progress and ends the wait
                    waiting = all(stall.pattern.search(line) for line in chunk.splitlines() if line.strip())
                    since = (since or time.monotonic()) if waiting else None
            returncode = proc.wait()
        except (KeyboardInterrupt, Stopped) as exc:
            stop_group(proc, exc.signum if isinstance(exc, Stopped) else signal.SIGINT)
            raise
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
        if stalled or returncode not in ok_returncodes:
            raise CommandFailed(argv, cwd, returncode, output=tail.decode("utf-8", errors="replace"), stalled=stalled)
        return returncode


def decompress_file(program: Sequence[str], path: str, limit: int, timeout: float = 120) -> Optional[bytes]:
    """A decompressor program's output for ``path`` (``zstd -d -c -q FILE``), at most ``limit`` bytes:
    for formats the Python at hand has no library for. No console: the formats layer calls it, in
    worker processes too. None when the program is not installed or fails; raises ValueError when
    the output passes ``limit``."""
    found = shutil.which(program[0])
    if found is None:
        return None
    try:
        proc = subprocess.Popen([found] + list(program[1:]) + [path], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=probe_env())
    except OSError:
        return None
    assert proc.stdout is not None
    out = b""
    try:
        out = proc.stdout.read(limit + 1)
        if len(out) <= limit:  # it ended its output: let it end
            proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:  # past the limit, timed out, or interrupted
            proc.kill()
            proc.wait()
        proc.stdout.close()
    if len(out) > limit:
        raise ValueError("more than %d bytes" % limit)
    return out if proc.returncode == 0 else None


def _kill_group(proc: "subprocess.Popen[bytes]") -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Linux prctl(PR_SET_PDEATHSIG, SIGTERM): the child hears of our death even when it is a SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def stop_group(proc: "subprocess.Popen[bytes]", signum: int, grace: float = 30) -> None:
    """Pass the signal to the child's whole process group and wait for it: no compiler may be left
    writing while kbuildguard reports. SIGKILL after ``grace`` seconds. The child may already be
    gone (Python 3.6's send_signal does not check, and the group may be empty)."""
    for sig in (signum, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            pass
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()
