"""Console short, log complete: one line per step on the terminal, every detail in the log file."""

import collections
import contextlib
import os
import re
import stat
import sys
import time
from typing import IO, Any, Deque, Iterator, List, Mapping, Optional

from kbuildguard import bounded
from kbuildguard.errors import BadInput, UsageError

LOG_HEADER = "# kbuildguard log"
# gcc's and clang's diagnostic line, "FILE:LINE:COLUMN: error: TEXT" (gcc's diagnostic-format "text",
# the column absent with -fno-show-column); "fatal error:" for a missing header
COMPILER_ERROR = re.compile(r"^(?P<path>[^\s:][^:]*):(?P<line>\d+):(?:(?P<column>\d+):)? (?:fatal )?error: (?P<text>.*)$")
# modpost's error line (scripts/mod/modpost.c: error() prints "ERROR: modpost: " and the message, as
# 'ERROR: modpost: "no_such_fn" [/stage/kdemo.ko] undefined!'): a failed link of the module, which the
# CI reports carry as they carry the compiler's errors
MODPOST_ERROR = re.compile(r"^ERROR: modpost: (?P<text>.*)$")


def is_log_or_absent(path: str) -> bool:
    """May --log-file PATH be written over: absent, empty, or a log of ours. Anything but a regular
    file (/dev/null, a terminal, a pipe such as /dev/stderr under CI) is written to, never read: a
    read would wait on a terminal or on a pipe whose writer is kbuildguard itself."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return True
        head = bounded.read_head(path, len(LOG_HEADER), "a kbuildguard log")
    except BadInput:
        return True  # a device put in its place since: written to, as above
    except OSError:
        return True  # absent, or unreadable: opening it for writing will fail and say so
    return head in (b"", LOG_HEADER.encode())


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A file name that is not valid in the file system's encoding (caf\xe9 on a UTF-8 system, anything
# non-ASCII under LC_ALL=C on Python 3.6) reaches us as lone surrogates (PEP 383).
_SURROGATE = re.compile("[\udc80-\udcff]")


def printable(text: str) -> str:
    """Escape control characters in strings read from files (.comment, /proc/version, config), and
    undecodable bytes of file names, so that any stream can print them.

    A crafted .ko or /proc/version must not be able to move the cursor or recolour the terminal.
    """
    text = _SURROGATE.sub(lambda m: "\\x%02x" % (ord(m.group()) - 0xDC00), text)
    return _CONTROL.sub(lambda m: "\\x%02x" % ord(m.group()), text)


def for_json(data: Any) -> Any:
    """DATA with every string in the one documented form of JSON output (docs/reference.md): a
    file name's bytes read as UTF-8, each byte that is not UTF-8 written as the four characters
    ``\\xNN``. Python hands a name it could not decode as lone surrogates (surrogateescape: every
    non-ASCII byte on 3.6 under LC_ALL=C, a non-UTF-8 byte everywhere), which json.dumps would
    print as ``\\udcc3`` escapes that no JSON reader turns back into the name."""
    if isinstance(data, str):
        if not _SURROGATE.search(data):
            return data
        try:
            return data.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate that is not an escaped byte: not a file name's
            return printable(data)
    if isinstance(data, dict):
        return {for_json(k): for_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [for_json(v) for v in data]
    return data


def one_line(text: str) -> str:
    """printable(), and a line break or tab escaped too: for what one line of output holds per module
    (a path, a headline). A file named "x.ko\\nkdemo.ko: ok" must not print a second, forged line."""
    return printable(text).replace("\n", "\\n").replace("\t", "\\t")


def wants_color(env: Mapping[str, str], stream: IO[str]) -> bool:
    """Colour only on a terminal that can show it: not with NO_COLOR set (no-color.org), not for
    TERM=dumb (Emacs' shell buffers, some CI log viewers: the escapes arrive as text), not when
    TERM is unset (a bare `env -i`), not into a pipe or file."""
    term = env.get("TERM", "")
    return "NO_COLOR" not in env and term not in ("", "dumb") and hasattr(stream, "isatty") and stream.isatty()


class Console:
    """Where messages go. Built once in cli.main and passed down; there is no module-level console."""

    def __init__(self, stream: IO[str] = sys.stderr, verbosity: int = 0, color: Optional[bool] = None,
                 log_path: Optional[str] = None):
        self.stream = stream
        self.verbosity = verbosity
        if color is None:
            color = wants_color(os.environ, stream)
        self.color = color
        self.log_path: Optional[str] = None
        self._tail: Deque[str] = collections.deque(maxlen=30)
        # the compiler's error lines ("kdemo.c:12:11: error: ..."), kept at every verbosity: the CI
        # reports name the first ones and locate a failed build at the first (cireport.py)
        self._errors: Deque[str] = collections.deque()
        self._log: Optional[IO[str]] = None
        if log_path:
            self.open_log(log_path)

    def open_log(self, path: str) -> None:
        """Start (or move) the detailed log. Failing to log never fails the build, but is said; a file
        that is not a kbuildguard log (``--log-file kdemo.c``) is never overwritten."""
        self.close()
        if not is_log_or_absent(path):
            raise UsageError("log file %s exists and is not a kbuildguard log: not overwriting it" % printable(path),
                             hint="name a new file, or one kbuildguard wrote before")
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._log = open(path, "w", encoding="utf-8", errors="backslashreplace")
            self._log.write(LOG_HEADER + "\n")
            self.log_path = path
        except OSError as exc:
            self._log = None
            self.log_path = None
            self.warn("cannot write the log %s: %s; going on without it" % (printable(path), exc.strerror or exc))

    def child_output(self, chunk: bytes) -> None:
        """make's and the compiler's own output: to the terminal as it is (with -q only its last lines,
        when it fails: see tail), and complete into the log."""
        if self._log is not None:
            self._log.write(chunk.decode("utf-8", errors="replace"))
            self._log.flush()
        text = chunk.decode("utf-8", errors="replace")
        if "error:" in text or "ERROR: modpost:" in text:
            for line in text.splitlines():
                if len(self._errors) < 10 and (COMPILER_ERROR.match(line) or MODPOST_ERROR.match(line)):
                    self._errors.append(line)
        if self.verbosity < 0:
            self._tail.extend(text.splitlines())
            return
        buffer = getattr(self.stream, "buffer", None)
        if buffer is not None:
            self.stream.flush()
            buffer.write(chunk)
            buffer.flush()
        else:
            self._emit(chunk.decode("utf-8", errors="replace"))

    def tail(self) -> List[str]:
        """The last lines of a child's output that -q kept off the terminal (for a failure's message)."""
        lines = list(self._tail)
        self._tail.clear()
        return lines

    def compiler_errors(self) -> List[str]:
        """The first error lines the compiler printed since the last call (at most 10)."""
        lines = list(self._errors)
        self._errors.clear()
        return lines

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _emit(self, text: str) -> None:
        """Write to the terminal; a text the stream cannot encode (LC_ALL=C, a non-UTF-8 file name) is
        escaped rather than allowed to end the run."""
        try:
            self.stream.write(text)
        except UnicodeEncodeError:
            text = _SURROGATE.sub(lambda m: "\\x%02x" % (ord(m.group()) - 0xDC00), text)
            self.stream.write(text.encode("ascii", "backslashreplace").decode("ascii"))

    def _paint(self, text: str, code: str) -> str:
        return "\x1b[%sm%s\x1b[0m" % (code, text) if self.color else text

    def log(self, text: str) -> None:
        if self._log is not None:
            self._log.write(text.rstrip("\n") + "\n")
            self._log.flush()

    def debug(self, text: str) -> None:
        """Probe detail: log file always, terminal only with -v."""
        self.log(text)
        if self.verbosity >= 1:
            self._emit(text.rstrip("\n") + "\n")

    def info(self, text: str) -> None:
        self.log(text)
        if self.verbosity >= 0:
            self._emit(text.rstrip("\n") + "\n")

    def warn(self, text: str) -> None:
        self.log("warning: " + text)
        self._emit(self._paint("warning:", "33;1") + " " + text + "\n")

    def error(self, title: str, text: str) -> None:
        self.log("%s: %s" % (title, text))
        self._emit(self._paint(title + ":", "31;1") + " " + text + "\n")

    def fail(self, title: str, message: str, details: List[str], hint: Optional[str]) -> None:
        """The error footer: what, the per-item detail, the fix, and where the full log is (meson)."""
        self.error(title, message)
        for line in details:
            self.log("  - " + line)
            self._emit("  - " + line + "\n")
        if hint:
            self.log("hint: " + hint)
            self._emit(self._paint("hint:", "36;1") + " " + hint + "\n")
        if self.log_path:
            # a path as any other line prints it: Python 3.6 under LC_ALL=C decodes a non-ASCII folder
            # name to surrogates, which its stderr printed as "\udcc3" (issue 22)
            self._emit("full log: %s\n" % printable(self.log_path))

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A line per step with its duration (mkosi's complete_step)."""
        start = time.monotonic()
        self.log("== " + name)
        try:
            yield
        finally:
            elapsed = time.monotonic() - start
            self.log("== %s (%.2fs)" % (name, elapsed))
            if self.verbosity >= 0:
                self._emit("%s %s %s\n" % (self._paint("::", "34;1"), name, "(%.1fs)" % elapsed))
