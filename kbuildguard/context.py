"""What every command needs from the world, built once by ``cli.main`` from injectable parts.

Tests build one with a FakeRunner, a StringIO for stdout and stdin, and an explicit environment, so
that a whole command (``make --dry-run``, provisioning, ``--kernel all``) runs without this host.
"""

import json
import os
from typing import IO, Any, Mapping, NamedTuple

from kbuildguard.console import Console, for_json, printable
from kbuildguard.run import Runner


class Context(NamedTuple):
    runner: Runner
    console: Console
    stdout: IO[str]  # results only: --json, tables; progress and make's output go to stderr
    stdin: IO[str]
    interactive: bool  # stdin is a terminal: a consent question can be asked
    euid: int
    env: Mapping[str, str]  # the environment kbuildguard was started with; children get a copy
    cwd: str
    json: bool  # --json: stdout carries one JSON document

    def out(self, text: str) -> None:
        try:
            self.stdout.write(text + "\n")
        except UnicodeEncodeError:  # a non-UTF-8 file name on a strict stream: escaped, never a traceback
            self.stdout.write(printable(text).encode("ascii", "backslashreplace").decode("ascii") + "\n")

    def out_json(self, data: Any) -> None:
        self.stdout.write(json.dumps(for_json(data), indent=2) + "\n")

    def path(self, name: str) -> str:
        """A path the user gave, relative to the folder kbuildguard was started in (no os.chdir anywhere)."""
        return os.path.normpath(os.path.join(self.cwd, name))
