"""The one door to processes, with a fake Popen: streaming into the log, failures, and signals."""

import os
import signal
import subprocess

import pytest

from kbuildguard import run as run_module
from kbuildguard.console import Console
from kbuildguard.errors import Stopped, ToolNotFound
from kbuildguard.run import CommandFailed, Runner


class FakeProc:
    """Popen's shape: a pipe with OUTPUT, a return code, and a record of the signals it got."""

    def __init__(self, output=b"", returncode=0, raise_in_read=None):
        r, w = os.pipe()
        os.write(w, output)
        os.close(w)
        self.stdout = os.fdopen(r, "rb")
        self.returncode = returncode
        self.pid = 424242
        self.raise_in_read = raise_in_read
        self.waited = 0

    def wait(self, timeout=None):
        self.waited += 1
        return self.returncode

    def communicate(self, timeout=None):
        return self.stdout.read(), b""


@pytest.fixture
def console(tmp_path):
    c = Console(open(os.devnull, "w"), verbosity=0, log_path=str(tmp_path / "build.log"))
    yield c
    c.close()


def test_action_streams_everything_into_the_log(monkeypatch, console, tmp_path):
    seen = {}

    def popen(argv, **kw):
        seen.update(kw, argv=argv)
        return FakeProc(b"  CC [M]  kdemo.o\nkdemo.c:3: error: 'x' undeclared\n")

    monkeypatch.setattr(subprocess, "Popen", popen)
    assert Runner(console).action(["/bin/make", "-C", "/t", "modules"], cwd=str(tmp_path), env={"PATH": "/bin"}, pass_fds=(7,)) == 0
    assert seen["start_new_session"] is True and seen["pass_fds"] == (7,) and seen["stderr"] == subprocess.STDOUT
    console.close()
    log = (tmp_path / "build.log").read_text()
    assert "+ /bin/make -C /t modules" in log and "error: 'x' undeclared" in log


def test_action_failure_names_the_status(monkeypatch, console):
    monkeypatch.setattr(subprocess, "Popen", lambda argv, **kw: FakeProc(b"", 2))
    with pytest.raises(CommandFailed) as exc:
        Runner(console).action(["/bin/make"])
    assert exc.value.returncode == 2


def test_a_signal_stops_the_whole_group(monkeypatch, console):
    proc = FakeProc(b"")
    killed = []

    def read(fd, n):
        raise Stopped(signal.SIGTERM)

    monkeypatch.setattr(subprocess, "Popen", lambda argv, **kw: proc)
    monkeypatch.setattr(run_module.os, "read", read)
    monkeypatch.setattr(run_module.os, "killpg", lambda pid, sig: killed.append((pid, sig)))
    with pytest.raises(Stopped):
        Runner(console).action(["/bin/make"])
    assert killed == [(424242, signal.SIGTERM)] and proc.waited


def test_missing_program_is_tool_not_found(console):
    with pytest.raises(ToolNotFound):
        Runner(console).action(["no-such-program-kbg"], env={"PATH": "/nonexistent"})


def test_probe_decodes_and_fails_with_stderr(monkeypatch, console):
    class P(FakeProc):
        def communicate(self, timeout=None):
            return b"ok \xff\n", b"oops\n"

    monkeypatch.setattr(subprocess, "Popen", lambda argv, **kw: P(returncode=1))
    with pytest.raises(CommandFailed) as exc:
        Runner(console).probe(["/bin/gcc", "--version"])
    assert "oops" in str(exc.value)
    monkeypatch.setattr(subprocess, "Popen", lambda argv, **kw: P(returncode=0))
    assert Runner(console).probe(["/bin/gcc", "--version"]).stdout == "ok \ufffd\n"


def test_quiet_keeps_makes_output_for_the_failure(monkeypatch, tmp_path):
    import io

    stream = io.StringIO()
    console = Console(stream, verbosity=-1)
    monkeypatch.setattr(subprocess, "Popen", lambda argv, **kw: FakeProc(b"line 1\nkdemo.c:3: error: boom\n", 2))
    with pytest.raises(CommandFailed):
        Runner(console).action(["/bin/make"])
    assert stream.getvalue() == ""
    assert console.tail() == ["line 1", "kdemo.c:3: error: boom"]


def test_probe_answers_are_remembered_per_program_file(monkeypatch, console, tmp_path):
    from kbuildguard.probecache import ProbeCache

    compiler = tmp_path / "gcc-12"
    compiler.write_text("#!/bin/sh\n")
    compiler.chmod(0o755)
    started = []

    def popen(argv, **kw):
        started.append(argv)
        return FakeProc(b"#define __GNUC__ 12\n")

    monkeypatch.setattr(subprocess, "Popen", popen)
    cache = ProbeCache(str(tmp_path / "probes.json"))
    argv = [str(compiler), "-E", "-dM", "-x", "c", "-"]
    assert Runner(console, cache).probe(argv, remember=True).stdout == "#define __GNUC__ 12\n"
    cache.save()
    again = Runner(console, ProbeCache(str(tmp_path / "probes.json")))
    assert again.probe(argv, remember=True).stdout == "#define __GNUC__ 12\n" and len(started) == 1
    os.utime(str(compiler), (1, 1))  # another file now: asked again
    again.probe(argv, remember=True)
    assert len(started) == 2
    Runner(console, cache).probe([str(compiler), "--version"])  # not remembered unless asked
    assert len(started) == 3
