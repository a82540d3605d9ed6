"""Bounded waits with real processes (issue 22): a real apt-get waits, through kbuildguard, for another
process that holds apt's lists lock, then proceeds; a dnf-4 style endless wait and a hanging --cc
wrapper are stopped.

The lock is the one `apt-get update` takes on its lists folder (apt-pkg GetLock: an fcntl F_SETLK
lock on DIR/lock -- a flock(1) holder would not block apt, the two kinds of lock do not see each
other on Linux). The lists folder, sources and cache are a private one in tmp_path, so the
machine's apt state is neither locked nor changed (an `update` with no sources would also clean the
system's lists).
"""

import os
import shutil
import subprocess
import sys
import time

from conftest import require
from kbuildguard.console import Console
from kbuildguard.context import Context
from kbuildguard.errors import InstallFailed
from kbuildguard.provision.lock import run_waiting
from kbuildguard.run import Runner

HOLD = ("import fcntl, sys, time\n"
        "f = open(sys.argv[1], 'w')\n"
        "fcntl.lockf(f, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n")


def _private_apt(tmp_path):
    lists = tmp_path / "lists"
    (lists / "partial").mkdir(parents=True)
    (tmp_path / "cache" / "archives" / "partial").mkdir(parents=True)
    (tmp_path / "sources.list").write_text("")
    argv = ["apt-get", "-q", "-o", "Dir::Etc::SourceList=%s" % (tmp_path / "sources.list"),
            "-o", "Dir::Etc::SourceParts=/dev/null", "-o", "Dir::State::Lists=%s" % lists,
            "-o", "Dir::Cache=%s" % (tmp_path / "cache"), "update"]
    return argv, str(lists / "lock")


def _hold(lock, seconds):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, lock, str(seconds)], stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    return holder


def _context(stream):
    console = Console(stream=stream, color=False)
    return Context(runner=Runner(console), console=console, stdout=stream, stdin=stream, interactive=False, euid=0,
                   env=dict(os.environ), cwd="/", json=False)


def test_apt_waits_for_the_lists_lock_then_proceeds(tmp_path):
    require(shutil.which("apt-get") is not None, "apt-get")
    require(os.geteuid() == 0, "root (apt-get update takes its lock as root)")
    argv, lock = _private_apt(tmp_path)
    log = tmp_path / "console.txt"
    holder = _hold(lock, 8)
    try:
        start = time.monotonic()
        with open(str(log), "w") as stream:
            run_waiting(_context(stream), argv, "apt-get", wait=60, retry=3)
        took = time.monotonic() - start
    finally:
        holder.kill()
        holder.wait()
    said = log.read_text()
    assert "another package manager holds the lock (E: Could not get lock %s" % lock in said, said
    assert "up to 60 s" in said
    assert 6 <= took < 40, (took, said)


def test_apt_lock_held_past_the_bound_is_a_clear_error(tmp_path):
    require(shutil.which("apt-get") is not None, "apt-get")
    require(os.geteuid() == 0, "root (apt-get update takes its lock as root)")
    argv, lock = _private_apt(tmp_path)
    holder = _hold(lock, 60)
    try:
        with open(str(tmp_path / "console.txt"), "w") as stream:
            try:
                run_waiting(_context(stream), argv, "apt-get", wait=5, retry=2)
            except InstallFailed as exc:
                assert "still holds the lock" in exc.message and "nothing was installed" in exc.message
            else:
                raise AssertionError("apt-get ran while the lock was held")
    finally:
        holder.kill()
        holder.wait()


def test_an_endless_lock_wait_is_stopped(tmp_path):
    """dnf 4 waits for another dnf without limit, printing this line: kbuildguard stops it at its bound."""
    fake = tmp_path / "dnf"
    # dnf 4 says so every second (dnf/lock.py), so the output never goes quiet
    fake.write_text("#!/bin/sh\nwhile :; do echo 'Waiting for process with pid 4242 to finish.'; sleep 1; done\n")
    fake.chmod(0o755)
    with open(str(tmp_path / "console.txt"), "w") as stream:
        start = time.monotonic()
        try:
            run_waiting(_context(stream), [str(fake), "install", "-y", "gcc"], "dnf", wait=3, retry=1)
        except InstallFailed as exc:
            assert "still holds the lock" in exc.message
        else:
            raise AssertionError("the endless wait was not stopped")
    assert time.monotonic() - start < 30


def test_a_probe_that_hangs_is_stopped_with_its_children(tmp_path):
    """A --cc wrapper that hangs: its shell's child kept the pipes open, and the probe waited without end."""
    from kbuildguard.run import CommandFailed

    wrapper = tmp_path / "gcc-wrapper"
    wrapper.write_text("#!/bin/sh\nsleep 600\necho never\n")
    wrapper.chmod(0o755)
    start = time.monotonic()
    try:
        Runner(Console(stream=open(os.devnull, "w"))).probe([str(wrapper), "-E", "-dM", "-x", "c", "-"], timeout=2)
    except CommandFailed as exc:
        assert exc.timed_out and "timed out after 2s" in str(exc)
    else:
        raise AssertionError("the hanging wrapper answered")
    assert time.monotonic() - start < 20


def test_a_wait_that_ends_is_not_stopped(tmp_path):
    """dnf 4 waited, the other dnf finished, and it is now working: its progress resets the clock."""
    fake = tmp_path / "dnf"
    fake.write_text("#!/bin/sh\necho 'Waiting for process with pid 4242 to finish.'\nsleep 1\n"
                    "for i in 1 2 3 4 5; do echo \"Downloading package $i\"; sleep 1; done\n")
    fake.chmod(0o755)
    with open(str(tmp_path / "console.txt"), "w") as stream:
        run_waiting(_context(stream), [str(fake), "install", "-y", "gcc"], "dnf", wait=2, retry=1)
