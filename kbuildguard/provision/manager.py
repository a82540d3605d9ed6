"""What every package-manager strategy answers (one module per manager: apt, dnf, zypper).

A strategy knows three things about its manager: how to point a command at a build root
(``dnf --installroot``, ``zypper --root``, ``chroot ROOT apt-get``), how to ask whether packages
exist in the repositories that machine or root is configured with, and how to read the answer.
Queries go through ``Runner.probe``; none changes the machine or the build root (their caches and
logs go to a temporary folder).
"""

import os
import shutil
import tempfile
from typing import Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from kbuildguard.run import Runner


class Answer(NamedTuple):
    """What the manager said: per package True/False, or why it could not be asked."""

    available: Dict[str, bool]
    asked: str  # the query, for messages: "apt-cache policy", "dnf repoquery (the build root's repositories)"
    unverified: str  # "" when the manager answered; else why nothing is known


class Manager:
    """The strategy interface; ``name`` is the catalogue's key ("apt-get", "dnf", "yum", "zypper")."""

    name = ""
    query_program = ""  # what answers the question: "apt-cache", "dnf", "zypper"
    query_words = ""  # the question, for messages: "apt-cache policy"
    root_words = "the build root's repositories"

    def in_root(self, argv: Sequence[str], root: str, release: str) -> Tuple[str, ...]:
        """The command as it must run to act on the build root ``root`` instead of this machine."""
        raise NotImplementedError

    def query(self, runner: Runner, packages: Sequence[str], root: str, release: str,
              env: Mapping[str, str]) -> Answer:
        """Which of ``packages`` the repositories of this machine (root "/") or of ``root`` offer."""
        asked = self.query_words + ("" if root == "/" else " (%s)" % self.root_words)
        program = find_program(runner, [self.query_program], env)
        if program is None:
            return Answer({}, asked, "%s is not on PATH here%s" % (self.query_program, self.missing_note()))
        return self.ask(runner, program, packages, root, release, env, asked)

    def missing_note(self) -> str:
        return ""

    def ask(self, runner: Runner, program: str, packages: Sequence[str], root: str, release: str,
            env: Mapping[str, str], asked: str) -> Answer:
        """The manager's own query, with its program found."""
        raise NotImplementedError


def insert_after_program(argv: Sequence[str], *options: str) -> Tuple[str, ...]:
    return (argv[0],) + tuple(options) + tuple(argv[1:])


def find_program(runner: Runner, names: Sequence[str], env: Mapping[str, str]) -> Optional[str]:
    from kbuildguard.errors import ToolNotFound

    for name in names:
        try:
            return runner.which(name, env)
        except ToolNotFound:
            continue
    return None


class Scratch:
    """A temporary folder for a query's cache and logs, removed afterwards: a dry run leaves nothing."""

    def __enter__(self) -> str:
        self.path = tempfile.mkdtemp(prefix="kbuildguard-query-")
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def existing(root: str, paths: Sequence[str]) -> List[str]:
    return [os.path.join(root, p.lstrip("/")) for p in paths if os.path.exists(os.path.join(root, p.lstrip("/")))]


def lines(text: str) -> Iterator[str]:
    for line in text.splitlines():
        line = line.strip()
        if line:
            yield line
