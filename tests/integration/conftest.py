import os
import shutil
import subprocess
import sys

import pytest

from conftest import require

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples")
# Copy an example's sources only: a developer may have built it in place (scripts/demo does).
COPY_SOURCES = shutil.ignore_patterns("*.o", "*.ko", "*.mod", "*.mod.c", "*.cmd", "modules.order", "Module.symvers",
                                      ".kbuildguard", "Kbuild", "Makefile")
TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")


def pytest_collection_modifyitems(items):
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.integration)


class Result:
    def __init__(self, proc):
        self.code = proc.returncode
        self.out = proc.stdout.decode("utf-8", "replace")
        self.err = proc.stderr.decode("utf-8", "replace")

    def __repr__(self):
        return "exit %d\n--- stdout\n%s\n--- stderr\n%s" % (self.code, self.out[-3000:], self.err[-3000:])


def kbuildguard(*argv, cwd=None, env=None):
    """The real CLI in a real process, as a user or a spec file runs it."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "kbuildguard"] + list(argv), cwd=cwd, env=full_env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    res = Result(proc)
    assert "Traceback" not in res.err, res
    return res


@pytest.fixture(scope="session")
def debian_release():
    """The Debian kernel whose linux-headers .ci/run installed (linux-headers-amd64)."""
    found = sorted(d[len("linux-headers-"):] for d in os.listdir("/usr/src")
                   if d.startswith("linux-headers-") and d.endswith("-amd64") and not d.endswith(("cloud-amd64", "rt-amd64"))) \
        if os.path.isdir("/usr/src") else []
    require(bool(found), "Debian's linux-headers-amd64")
    return found[-1]


@pytest.fixture(scope="session")
def compilers():
    for cc in ("gcc-11", "gcc-12", "clang-16", "make"):
        require(shutil.which(cc) is not None, cc)


@pytest.fixture
def example(tmp_path):
    """A fresh copy of an example repository (never build inside the checkout)."""
    def copy(name):
        dest = tmp_path / name
        shutil.copytree(os.path.join(EXAMPLES, name), str(dest), ignore=COPY_SOURCES)
        return str(dest)
    return copy


def plain_make(module_dir, release, real_cc):
    """Build without kbuildguard, as a vendor or another CI would, with another compiler."""
    env = dict(os.environ, KBG_REAL_CC=real_cc)
    subprocess.run(["make", "-C", "/lib/modules/%s/build" % release, "M=" + module_dir,
                    "CC=" + os.path.join(TOOLS, "ccfilter.py"), "modules"],
                   env=env, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
