"""zypper (SLES, openSUSE): ``zypper search --match-exact`` in XML.

A build root is installed into with ``zypper --root ROOT``, which reads the root's own
/etc/zypp/repos.d. The query reads those files with ``--reposd-dir`` and keeps its caches, log and
lock in a temporary folder, without reading the installed packages: the root is not touched.
"""

import os
import xml.etree.ElementTree as ElementTree
from typing import Dict, Mapping, Sequence, Tuple

from kbuildguard.provision.manager import Answer, Manager, Scratch, insert_after_program
from kbuildguard.run import CommandFailed, Runner

NOT_FOUND = 104  # ZYPPER_EXIT_INF_CAP_NOT_FOUND: the search matched nothing


def parse_search(xml: str, packages: Sequence[str]) -> Dict[str, bool]:
    names = set()
    start = xml.find("<search-result")
    if start >= 0:
        end = xml.find("</search-result>", start)
        if end >= 0:
            tree = ElementTree.fromstring(xml[start:end + len("</search-result>")])
            names = {s.get("name") for s in tree.iter("solvable") if s.get("kind", "package") == "package"}
    return {p: p in names for p in packages}


class Zypper(Manager):
    name = "zypper"
    query_program = "zypper"
    query_words = "zypper search"

    def in_root(self, argv: Sequence[str], root: str, release: str) -> Tuple[str, ...]:
        return insert_after_program(argv, "--root", root)

    def ask(self, runner: Runner, program: str, packages: Sequence[str], root: str, release: str,
            env: Mapping[str, str], asked: str) -> Answer:
        repos = os.path.join(root, "etc/zypp/repos.d")
        if not os.path.isdir(repos):
            return Answer({}, asked, "%s does not exist" % repos)
        with Scratch() as scratch:
            query_env = dict(env)
            query_env.update(ZYPP_LOGFILE=os.path.join(scratch, "zypp.log"), ZYPP_LOCKFILE_ROOT=scratch)
            argv = [program, "--non-interactive", "--xmlout", "--reposd-dir", repos,
                    "--cache-dir", os.path.join(scratch, "cache"), "--disable-system-resolvables",
                    "search", "--match-exact", "--type", "package"] + list(packages)
            try:
                out = runner.probe(argv, env=query_env, ok_returncodes=(0, NOT_FOUND), timeout=600).stdout
            except CommandFailed as exc:
                return Answer({}, asked, "zypper could not read the repositories: %s" % exc)
        try:
            return Answer(parse_search(out, packages), asked, "")
        except ElementTree.ParseError as exc:
            return Answer({}, asked, "zypper's answer is not XML: %s" % exc)
