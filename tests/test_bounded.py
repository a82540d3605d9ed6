"""Every read bounded (issue 18 case 11): devices, endless FIFOs, huge files and files truncated while
they are read end in one line and exit 3, never in a MemoryError, a hang or a SIGBUS."""

import errno
import io
import json
import os
import threading
import time

import pytest

from conftest import make_tree
from elfbuild import build_module
from kbuildguard import bounded
from kbuildguard.cli import main
from kbuildguard.errors import BadInput
from kbuildguard.formats import btf
from kbuildguard.formats.module import module_image, read_module, read_whole
from kbuildguard.target import kernel


def run(tmp_path, *argv, stdin=""):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env={"PATH": "/nonexistent"}, stdout=out, stderr=err, stdin=io.StringIO(stdin),
                cwd=str(tmp_path))
    assert "Traceback" not in err.getvalue()
    return code, out.getvalue(), err.getvalue()


class EndlessWriter:
    """A FIFO whose writer never stops: what `--dmesg <(yes)` or a stuck pipeline looks like."""

    def __init__(self, path):
        os.mkfifo(path)
        self.path = path
        self.written = 0
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.thread.start()

    def _write(self):
        fd = os.open(self.path, os.O_WRONLY)  # blocks until the reader opens it
        chunk = b"[    1.000000] kdemo: loading out-of-tree module taints kernel.\n" * 1024
        try:
            while True:
                self.written += os.write(fd, chunk)
        except OSError as exc:  # the reader closed it: EPIPE (SIGPIPE is ignored in Python)
            assert exc.errno == errno.EPIPE
        finally:
            os.close(fd)

    def join(self):
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the writer is still writing: the reader never stopped"


def test_a_regular_file_over_its_limit_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big"
    with open(str(big), "wb") as f:
        f.truncate(3 * bounded.MIB)  # sparse: nothing to read, the size alone refuses it
    with pytest.raises(BadInput) as exc:
        bounded.read_file(str(big), 2 * bounded.MIB, "a kernel log")
    assert exc.value.message == "%s: larger than 2 MiB, not a kernel log" % big
    assert bounded.read_file(str(big), 3 * bounded.MIB, "x") == b"\x00" * (3 * bounded.MIB)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_devices_are_refused_at_once(device):
    with pytest.raises(BadInput) as exc:
        bounded.read_file(device, 64 * bounded.MIB, "a kernel log")
    assert "a device, not a kernel log" in exc.value.message


def test_a_fifo_whose_writer_never_stops_ends_at_the_limit(tmp_path):
    writer = EndlessWriter(str(tmp_path / "fifo"))
    with pytest.raises(BadInput) as exc:
        bounded.read_file(writer.path, bounded.MIB, "a kernel log")
    assert "larger than 1 MiB, not a kernel log" in exc.value.message
    writer.join()
    assert writer.written <= bounded.MIB + 4 * 65536 + 65 * 1024  # what the pipe held, not more


def test_a_fifo_that_ends_is_read_whole(tmp_path):
    path = str(tmp_path / "fifo")
    os.mkfifo(path)

    def write():
        with open(path, "wb") as f:
            f.write(b"Linux version 6.1.0-57-amd64\n")

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    assert bounded.read_file(path, bounded.MIB, "x") == b"Linux version 6.1.0-57-amd64\n"
    thread.join(timeout=10)


def test_stdin_as_a_text_stream_is_bounded():
    with pytest.raises(BadInput):
        bounded.read_text_stream(io.StringIO("x" * 11), "stdin", bounded.Limit(10, "a kernel log"))
    assert bounded.read_text_stream(io.StringIO("x" * 10), "stdin", bounded.Limit(10, "a kernel log")) == "x" * 10


def test_explain_dmesg_dev_zero_is_one_line(tmp_path):
    code, _, err = run(tmp_path, "explain", "kdemo", "--dmesg", "/dev/zero")
    assert code == 3, err
    assert err.count("bad input:") == 1 and "/dev/zero: a device, not a kernel log" in err


def test_explain_dmesg_endless_fifo_is_one_line(tmp_path):
    writer = EndlessWriter(str(tmp_path / "log"))
    code, _, err = run(tmp_path, "explain", "kdemo", "--dmesg", "log")
    assert code == 3, err
    assert "larger than 64 MiB, not a kernel log" in err
    writer.join()


def test_check_vmlinux_dev_zero_is_one_line(tmp_path):
    tree = make_tree(tmp_path / "tree")
    ko = tmp_path / "kdemo.ko"
    ko.write_bytes(build_module())
    code, out, err = run(tmp_path, "check", str(ko), "--kernel-dir", tree, "--vmlinux", "/dev/zero")
    assert code == 3, out + err
    assert err.count("bad input:") == 1 and "/dev/zero: a device, not a vmlinux" in err


def test_vmlinux_and_proc_version_readers_refuse_what_has_no_end(tmp_path):
    with pytest.raises(BadInput):
        btf.raw_btf("/dev/zero")
    with pytest.raises(BadInput):
        kernel.read_proc_version("/dev/urandom")


def test_a_module_truncated_between_stat_and_read_is_refused(tmp_path):
    """Deterministic: the file shrinks after its size was taken, as another process's truncate would
    make it. With a mapping this was SIGBUS (exit 135, no report); read, it is one line."""
    ko = tmp_path / "kdemo.ko"
    data = build_module()
    ko.write_bytes(data)

    class TruncatedMidway(io.FileIO):
        def read(self, size=-1):
            os.truncate(str(ko), len(data) // 2)  # the other process
            return super().read(size)

    with TruncatedMidway(str(ko), "rb") as f:
        with pytest.raises(BadInput) as exc:
            read_whole(f, str(ko))
    assert "changed while being read (%d bytes when opened, %d read" % (len(data), len(data) // 2) in exc.value.message


def test_a_module_that_grows_while_read_is_refused(tmp_path):
    ko = tmp_path / "kdemo.ko"
    data = build_module()
    ko.write_bytes(data)

    class Appended(io.FileIO):
        def read(self, size=-1):
            with open(str(ko), "ab") as other:
                other.write(b"more")
            return super().read(size)

    with Appended(str(ko), "rb") as f:
        with pytest.raises(BadInput):
            read_whole(f, str(ko))


def test_modules_are_read_not_mapped(tmp_path):
    ko = tmp_path / "kdemo.ko"
    ko.write_bytes(build_module())
    with module_image(str(ko)) as image:
        assert type(image) is bytes
    assert read_module(str(ko)).vermagic


# -- decompression streams into a bounded buffer (issue 18, the tester: 1.1 GB for a 512 MiB limit) --

@pytest.mark.parametrize("fmt", ["xz", "gzip", "bzip2"])
def test_a_decompression_bomb_is_refused_holding_little(monkeypatch, fmt):
    import bz2
    import gzip
    import lzma
    import tracemalloc

    from kbuildguard.formats import compression

    pack = {"xz": lambda b: lzma.compress(b, format=lzma.FORMAT_XZ, preset=0), "gzip": lambda b: gzip.compress(b, 1),
            "bzip2": lambda b: bz2.compress(b, 1)}[fmt]
    bomb = pack(b"\0" * (20 << 20))
    monkeypatch.setattr(compression, "KEEP", 1 << 20, raising=False)
    tracemalloc.start()
    try:
        with pytest.raises(BadInput, match="decompresses to more than 16 MiB"):
            compression.decompress(bomb, "bomb.ko", 16 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 << 20, peak  # was the whole limit (and twice it for xz and bzip2)
    # an output past KEEP but within the limit is decompressed again, whole and exact
    data = bytes(range(256)) * (3 << 12)  # 3 MiB
    assert compression.decompress(pack(data), "big.ko", 16 << 20) == data


# issue 21: `check --trusted-cert /dev/kmsg` hung: every reader of a named file refuses a device at
# once (/dev/null stands for /dev/kmsg here: a device that exists everywhere and never blocks).
def test_a_certificate_that_is_a_device_is_refused_at_once():
    from kbuildguard.gates import trust
    with pytest.raises(BadInput) as exc:
        trust.load_certificates(["/dev/null"])
    assert "/dev/null: a device, not a certificate file" in exc.value.message


def test_the_kernel_side_readers_refuse_a_device():
    from kbuildguard.gates import signature, trust
    from kbuildguard.target import keyrings, kmod
    assert keyrings._read_bytes("/dev/null") is None
    assert keyrings.builtin_certificates("/dev/null", {}).found.startswith("/dev/null: a device")
    assert kmod.read("/dev/null") is None
    assert signature._read("/dev", "/null") is None
    assert trust.read_keyring("/dev/null") is None


def test_read_head_and_digest(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    assert bounded.read_head(str(path), 4, "x") == b"0123"
    assert bounded.sha256_file(str(path), "x") == "84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882"
    with pytest.raises(IsADirectoryError):
        bounded.read_head(str(tmp_path), 4, "x")
    with pytest.raises(BadInput):
        bounded.sha256_file("/dev/null", "x")


def test_a_log_file_that_is_not_a_regular_file_is_written_to_never_read(tmp_path):
    """--log-file /dev/null, a terminal, /dev/stderr as a pipe: reading its head would wait (a FIFO's
    writer being kbuildguard itself); a regular file is read to see whether it is a log of ours."""
    from kbuildguard.console import is_log_or_absent
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    assert is_log_or_absent("/dev/null") and is_log_or_absent(fifo)
    (tmp_path / "notes").write_text("my notes\n")
    assert not is_log_or_absent(str(tmp_path / "notes"))
    assert is_log_or_absent(str(tmp_path / "absent"))


def test_a_fifo_nobody_writes_to_is_refused_not_waited_for(tmp_path, monkeypatch):
    """Issue 22: `--proc-version-file FIFO` with no writer waited for ever."""
    path = str(tmp_path / "fifo")
    os.mkfifo(path)
    monkeypatch.setattr(bounded, "FIFO_WRITER_WAIT", 0.2)
    with pytest.raises(BadInput) as exc:
        bounded.read_file(path, bounded.MIB, "a /proc/version line")
    assert exc.value.message == "%s: a FIFO nobody wrote to in 0.2 s, not a /proc/version line (write to it first, " \
        "or give a file)" % path


def test_a_fifo_whose_writer_comes_second_is_read(tmp_path):
    path = str(tmp_path / "fifo")
    os.mkfifo(path)

    def write():
        time.sleep(0.3)
        with open(path, "wb") as f:
            f.write(b"Linux version 6.1.0-57-amd64\n")

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    assert bounded.read_file(path, bounded.MIB, "x") == b"Linux version 6.1.0-57-amd64\n"
    thread.join(timeout=10)


def test_an_anonymous_pipe_is_not_timed_out(tmp_path, monkeypatch):
    """`--dmesg <(journalctl -k)`: /dev/fd/N of a pipe whose writer is slow to start is waited for."""
    monkeypatch.setattr(bounded, "FIFO_WRITER_WAIT", 0.01)
    rfd, wfd = os.pipe()

    def write():
        time.sleep(0.3)
        os.write(wfd, b"slow\n")
        os.close(wfd)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        assert bounded.read_file("/dev/fd/%d" % rfd, bounded.MIB, "x") == b"slow\n"
    finally:
        os.close(rfd)
    thread.join(timeout=10)


def test_proc_version_file_dash_reads_stdin(tmp_path):
    """Issue 22: `--proc-version-file -` reads stdin, as `explain --dmesg -` does, named "stdin"."""
    line = ("Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, "
            "GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)\n")
    code, out, err = run(tmp_path, "detect", "--proc-version-file", "-", "--json", stdin="[    0.000000] " + line)
    assert json.loads(out)["kernel"]["release"] == "6.1.0-18-amd64", err
    code, out, err = run(tmp_path, "setup", "--proc-version-file", "-", "--dry-run", stdin=line)
    assert "plan for the machine of stdin: Debian" in out, (out, err)
    code, _, err = run(tmp_path, "detect", "--proc-version-file", "-", stdin="")
    assert code == 3 and "bad input: stdin: no kernel line: the text is empty" in err
