"""Console short, log complete: one line per step on the terminal, every detail in the log file."""

import contextlib
import os
import re
import sys
import time
from typing import IO, Iterator, List, Optional

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Escape control characters in strings read from files (.comment, /proc/version, config).

    A crafted .ko or /proc/version must not be able to move the cursor or recolour the terminal.
    """
    return _CONTROL.sub(lambda m: "\\x%02x" % ord(m.group()), text)


class Console:
    """Where messages go. Built once in cli.main and passed down; there is no module-level console."""

    def __init__(self, stream: IO[str] = sys.stderr, verbosity: int = 0, color: Optional[bool] = None,
                 log_path: Optional[str] = None):
        self.stream = stream
        self.verbosity = verbosity
        if color is None:
            color = "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()
        self.color = color
        self.log_path = None  # type: Optional[str]
        self._log = None  # type: Optional[IO[str]]
        if log_path:
            self.open_log(log_path)

    def open_log(self, path: str) -> None:
        """Start (or move) the detailed log. Failing to log never fails the build."""
        self.close()
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._log = open(path, "w", encoding="utf-8", errors="replace")
            self.log_path = path
        except OSError:
            self._log = None
            self.log_path = None

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

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
            self.stream.write(text.rstrip("\n") + "\n")

    def info(self, text: str) -> None:
        self.log(text)
        if self.verbosity >= 0:
            self.stream.write(text.rstrip("\n") + "\n")

    def warn(self, text: str) -> None:
        self.log("warning: " + text)
        self.stream.write(self._paint("warning:", "33;1") + " " + text + "\n")

    def error(self, title: str, text: str) -> None:
        self.log("%s: %s" % (title, text))
        self.stream.write(self._paint(title + ":", "31;1") + " " + text + "\n")

    def fail(self, title: str, message: str, details: List[str], hint: Optional[str]) -> None:
        """The error footer: what, the per-item detail, the fix, and where the full log is (meson)."""
        self.error(title, message)
        for line in details:
            self.log("  - " + line)
            self.stream.write("  - " + line + "\n")
        if hint:
            self.log("hint: " + hint)
            self.stream.write(self._paint("hint:", "36;1") + " " + hint + "\n")
        if self.log_path:
            self.stream.write("full log: %s\n" % self.log_path)

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
                self.stream.write("%s %s %s\n" % (self._paint("::", "34;1"), name, "(%.1fs)" % elapsed))
