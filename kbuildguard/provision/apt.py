"""apt (Debian, Ubuntu): ``apt-cache policy`` answers from the package lists of the machine or root.

A build root is installed into through ``chroot ROOT apt-get``: apt-get has no option that installs
into another root with that root's dpkg. The query needs no chroot: ``apt-cache -o Dir=ROOT`` reads
the root's sources and lists, with the binary caches turned off so that nothing is written.
"""

import glob
import os
import re
from typing import Dict, Mapping, Sequence, Tuple

from kbuildguard.provision.manager import Answer, Manager
from kbuildguard.run import CommandFailed, Runner


def parse_policy(text: str) -> Dict[str, bool]:
    """``apt-cache policy A B``: a block per known name; "Candidate: (none)" means none installable.
    A name apt has never heard of gets no block at all."""
    out: Dict[str, bool] = {}
    name = ""
    for line in text.splitlines():
        head = re.match(r"^(\S+):\s*$", line)
        if head:
            name = head.group(1)
            out.setdefault(name, False)
            continue
        cand = re.match(r"^\s+Candidate:\s*(\S+)", line)
        if cand and name:
            out[name] = cand.group(1) != "(none)"
    return out


class Apt(Manager):
    name = "apt-get"
    query_program = "apt-cache"
    query_words = "apt-cache policy"
    root_words = "the build root's lists"

    def in_root(self, argv: Sequence[str], root: str, release: str) -> Tuple[str, ...]:
        return ("chroot", root) + tuple(argv)

    def ask(self, runner: Runner, program: str, packages: Sequence[str], root: str, release: str,
            env: Mapping[str, str], asked: str) -> Answer:
        lists = os.path.join(root, "var/lib/apt/lists")
        if not glob.glob(os.path.join(lists, "*_Packages*")):
            return Answer({}, asked, "%s holds no package lists (apt-get update has not run)" % lists)
        argv = [program]
        if root != "/":
            argv += ["-o", "Dir=%s" % root, "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache="]
        try:
            out = runner.probe(argv + ["policy"] + list(packages), env=env).stdout
        except CommandFailed as exc:
            return Answer({}, asked, "apt-cache failed: %s" % exc)
        known = parse_policy(out)
        return Answer({p: known.get(p, False) for p in packages}, asked, "")
