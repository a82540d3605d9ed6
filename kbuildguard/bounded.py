"""Every read of a file or of stdin, bounded: one size limit per kind of file, one line when it is exceeded.

A path on the command line may name anything: ``/dev/zero``, ``/dev/urandom``, ``/dev/kmsg``, a FIFO
whose writer never stops, a 40 GiB file. Reading it "whole" would hold it all in memory (24 GB
before the OOM killer, in issue 18). So:

- a regular file larger than its limit is refused before a byte is read (its size at open);
- a pipe, FIFO or socket (``--dmesg <(dmesg)``, ``--dmesg -``) is read up to limit + 1 bytes and
  refused past the limit: a writer that keeps writing cannot keep kbuildguard reading;
- a character or block device is refused at once: it has no end (``/dev/zero``), or blocks
  waiting for more (``/dev/kmsg``, a terminal), and none of the files kbuildguard reads is one.

Every open() for reading in the package is here (a code rule, tests/test_code_rules.py): a file is
opened with O_NONBLOCK (a FIFO then waits for its writer, bounded), so a device whose open() waits (a serial line) cannot
hang the open() itself, then checked with fstat before a byte is read.

The limit is part of the message: ``FILE: larger than 64 MiB, not a kernel log`` (BadInput, exit 3).
Parsers of untrusted bytes keep their own limits beside them (formats/: MAX_MODULE_BYTES,
MAX_VMLINUX_BYTES, MAX_SYMVERS_BYTES ...) and read through this module too.
"""

import contextlib
import fcntl
import hashlib
import io
import os
import select
import stat
from typing import IO, Iterator, List, NamedTuple

from kbuildguard.errors import BadInput

MIB = 1024 * 1024
_CHUNK = 1 * MIB
# How long a named FIFO may wait for its writer (``mkfifo log; dmesg > log &`` starts it at once).
FIFO_WRITER_WAIT = 30.0


class Limit(NamedTuple):
    size: int  # bytes
    what: str  # what the file should be: "FILE: larger than N MiB, not <what>"


# The limits of the files read outside formats/ (which keeps its own beside each parser).
KERNEL_LOG = Limit(64 * MIB, "a kernel log")  # dmesg's buffer is at most 32 MiB (CONFIG_LOG_BUF_SHIFT=25); a journal more
TEXT = Limit(16 * MIB, "a text file of the kernel's")  # /proc/modules, sysfs attributes, utsrelease.h, a tree's Makefile
MODULES_DEP = Limit(64 * MIB, "a modules.dep")  # ~600 KiB for Debian's 4000 modules
PROJECT = Limit(1 * MIB, "a kbuildguard.toml")
STATE = Limit(64 * MIB, "a kbuildguard state file")  # our own JSON: placed.json, caches


def _mib(size: int) -> str:
    return "%d MiB" % (size // MIB) if size >= MIB and size % MIB == 0 else "%d bytes" % size


def too_large(source: str, limit: int, what: str) -> BadInput:
    return BadInput("%s: larger than %s, not %s" % (source, _mib(limit), what))


def read_upto(stream: IO[bytes], count: int) -> bytes:
    """At most COUNT bytes, in chunks: one large read would allocate COUNT bytes up front."""
    chunks: List[bytes] = []
    total = 0
    while total < count:
        chunk = stream.read(min(count - total, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def read_stream(stream: IO[bytes], source: str, limit: int, what: str, terminal: bool = False) -> bytes:
    """The whole content of an open binary stream, at most LIMIT bytes (see the module's docstring).
    TERMINAL: a terminal is read too, to its end of file (stdin: a log pasted, then Ctrl-D)."""
    try:
        fd = stream.fileno()
        st = os.fstat(fd)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):  # io.BytesIO: no descriptor of its own
        st = None
    if st is not None and terminal and os.isatty(fd):
        st = None
    if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise _device(source, what)
    if st is not None and stat.S_ISREG(st.st_mode) and st.st_size > limit:
        raise too_large(source, limit, what)
    if st is not None and stat.S_ISREG(st.st_mode) and st.st_size:
        data = stream.read(st.st_size + 1)  # one allocation of the size it has (procfs and sysfs files say 0 or 4096)
        if len(data) > st.st_size:
            data += read_upto(stream, limit + 1 - len(data)) if len(data) <= limit else b""
    else:
        data = read_upto(stream, limit + 1)
    if len(data) > limit:
        raise too_large(source, limit, what)
    return data


def _device(source: str, what: str) -> BadInput:
    return BadInput("%s: a device, not %s (a device has no end: save what you need to a file first)" % (source, what))


@contextlib.contextmanager
def open_file(path: str, what: str) -> Iterator[IO[bytes]]:
    """PATH open for reading in binary; a character or block device refused at once (BadInput).
    Everything is opened with O_NONBLOCK (open(2): a device's open, a serial line's, does not
    wait for a carrier), cleared before reading. A named FIFO then waits for its writer
    (``mkfifo log; dmesg > log &``), FIFO_WRITER_WAIT seconds at most: reading at once would read
    it as empty when the writer comes second. OSError is left to the caller; a directory is
    IsADirectoryError, as open() says it."""
    try:
        fifo = stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        fifo = False  # os.open says why
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if fifo and not _anonymous_pipe(path):
            _wait_for_writer(fd, path, what)
        st = os.fstat(fd)
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            raise _device(path, what)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "Is a directory", path)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def _anonymous_pipe(path: str) -> bool:
    """``<(dmesg)``'s /dev/fd/63: a pipe its writer already holds, which may be slow to write (a long
    journal): never timed out. Its link reads "pipe:[INODE]" (fs/pipe.c pipefs_dname())."""
    try:
        return os.readlink(path).startswith("pipe:")
    except OSError:
        return False


def _wait_for_writer(fd: int, path: str, what: str) -> None:
    """A named FIFO opened without waiting: wait, at most FIFO_WRITER_WAIT seconds, until a writer
    has opened it (data or its end to read), so that a FIFO nobody writes to (issue 22:
    ``mkfifo f; --proc-version-file f``) is one line, not a wait for ever. Linux's pipe_poll()
    (fs/pipe.c) reports no POLLHUP to a reader until a writer has come, so the writer may come second."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    if not poller.poll(int(FIFO_WRITER_WAIT * 1000)):
        raise BadInput("%s: a FIFO nobody wrote to in %g s, not %s (write to it first, or give a file)"
                       % (path, FIFO_WRITER_WAIT, what))


def read_file(path: str, limit: int, what: str) -> bytes:
    """The whole content of PATH, at most LIMIT bytes. OSError is left to the caller, which names the
    file as its command does; a directory is an OSError (IsADirectoryError) there too."""
    with open_file(path, what) as f:
        return read_stream(f, path, limit, what)


def read_head(path: str, count: int, what: str) -> bytes:
    """The first COUNT bytes of PATH (or fewer): a header, a sysfs attribute, the strings of a
    program; a device refused as read_file does. OSError is left to the caller."""
    with open_file(path, what) as f:
        return read_upto(f, count)


def sha256_file(path: str, what: str) -> str:
    """The SHA-256 of a regular file, read in chunks (a module, a downloaded package: any size the
    disk holds). Anything else (a FIFO would be hashed forever) is BadInput; OSError is left to the caller."""
    with open_file(path, what) as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise BadInput("%s: not a regular file, not %s" % (path, what))
        h = hashlib.sha256()
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
        return h.hexdigest()


def read_text(path: str, limit: Limit) -> str:
    """read_file, decoded as UTF-8 with replacement (kernel text files are ASCII; a stray byte is not an error)."""
    return read_file(path, limit.size, limit.what).decode("utf-8", errors="replace")


def read_found_text(path: str, limit: Limit) -> str:
    """read_text() of a file kbuildguard found inside a tree or a captured root, not one the user
    named: only a regular file is read (a FIFO planted at ROOT/proc/modules would wait for ever; a
    device there is no kernel's text). /proc and /sys files are regular files."""
    if os.path.exists(path) and not os.path.isfile(path):
        raise BadInput("%s: not a regular file (a FIFO, device or folder where a kernel file belongs)" % path)
    return read_text(path, limit)


def read_text_stream(stream: IO[str], source: str, limit: Limit) -> str:
    """stdin, bounded as a file is (``< /dev/zero`` is a device; ``yes |`` ends at the limit); a
    terminal is read to its end of file. Its bytes, when it has them, decoded as UTF-8 with replacement."""
    binary = getattr(stream, "buffer", None)
    if binary is not None:
        return read_stream(binary, source, limit.size, limit.what, terminal=True).decode("utf-8", errors="replace")
    data = stream.read(limit.size + 1)  # a text stream of our caller's (tests: io.StringIO)
    if len(data) > limit.size:
        raise too_large(source, limit.size, limit.what)
    return data
