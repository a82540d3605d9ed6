"""dnf and yum (RHEL, CentOS, Rocky, Alma, Oracle, Fedora, Amazon): ``dnf repoquery``.

A build root is installed into with ``--installroot ROOT --releasever N``: dnf then reads the root's
own /etc/yum.repos.d (and its dnf.conf), as ``chroot ROOT dnf`` would. ``--releasever`` is given
because a root that is still being set up has no system-release package to tell it.

The query reads the same repository files without ``--installroot``, with its cache, logs and state
in a temporary folder: the root is not touched (``--installroot`` would create its rpm database and
cache). yum (EL7, Amazon Linux 2) has no repoquery of its own; dnf reads the same .repo files, so it
answers for yum where it is installed, and the plan is unverified where it is not.
"""

import os
from typing import Dict, Mapping, Sequence, Tuple

from kbuildguard.provision.manager import Answer, Manager, Scratch, existing, insert_after_program, lines
from kbuildguard.run import CommandFailed, Runner

REPO_DIRS = ("/etc/yum.repos.d", "/etc/yum/repos.d", "/etc/distro.repos.d")
QUERY_FORMAT = "%{name} %{version}-%{release}.%{arch}"


def spec_matches(spec: str, name: str, vra: str) -> bool:
    """``kernel-devel-4.18.0-477.10.1.el8_8.x86_64`` names kernel-devel at version-release.arch."""
    version_release = vra.rsplit(".", 1)[0]
    return spec in (name, "%s-%s" % (name, vra), "%s-%s" % (name, version_release),
                    "%s-%s" % (name, version_release.split("-")[0]))


def parse_repoquery(text: str, packages: Sequence[str]) -> Dict[str, bool]:
    found = [tuple(line.split(" ", 1)) for line in lines(text) if " " in line]
    return {p: any(spec_matches(p, n, v) for n, v in found) for p in packages}


class Dnf(Manager):
    name = "dnf"
    query_program = "dnf"  # EL7's yum too: yum itself has no repoquery
    query_words = "dnf repoquery"

    def in_root(self, argv: Sequence[str], root: str, release: str) -> Tuple[str, ...]:
        if argv[0] in ("dnf", "yum") and release:
            return insert_after_program(argv, "--installroot", root, "--releasever", release)
        return insert_after_program(argv, "--installroot", root)  # yum-config-manager

    def missing_note(self) -> str:
        return " (yum has no repoquery)" if self.name == "yum" else ""

    def ask(self, runner: Runner, program: str, packages: Sequence[str], root: str, release: str,
            env: Mapping[str, str], asked: str) -> Answer:
        with Scratch() as scratch:
            argv = [program, "-q", "-y", "--setopt=cachedir=%s" % os.path.join(scratch, "cache"),
                    "--setopt=logdir=%s" % scratch, "--setopt=persistdir=%s" % os.path.join(scratch, "persist")]
            if root != "/":
                repo_dirs = existing(root, REPO_DIRS)
                if not repo_dirs:
                    return Answer({}, asked, "%s has no repository configuration (%s)" % (root, ", ".join(REPO_DIRS)))
                conf = existing(root, ["/etc/dnf/dnf.conf", "/etc/yum.conf"])
                if not conf:  # not this machine's: a root without one gets dnf's defaults
                    conf = [os.path.join(scratch, "dnf.conf")]
                    with open(conf[0], "w") as f:
                        f.write("[main]\n")
                argv += ["--config", conf[0], "--setopt=reposdir=%s" % ",".join(repo_dirs),
                         "--setopt=varsdir=%s" % ",".join(existing(root, ["/etc/dnf/vars", "/etc/yum/vars"]) or [scratch])]
                if release:
                    argv += ["--releasever", release]
            argv += ["repoquery", "--available", "--queryformat", QUERY_FORMAT] + list(packages)
            try:
                out = runner.probe(argv, env=env, timeout=600).stdout
            except CommandFailed as exc:
                return Answer({}, asked, "dnf could not read the repositories: %s" % exc)
        return Answer(parse_repoquery(out, packages), asked, "")


class Yum(Dnf):
    name = "yum"
