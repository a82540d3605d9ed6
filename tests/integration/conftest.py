import contextlib
import os
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import require

# What a booted kernel answers does not depend on the Python that ran kbuildguard on the host:
# scripts/test boots the guests in its Python 3.13 pass and sets KBG_TEST_GUESTS=0 for the 3.6 pass
# (which still builds, checks, signs and packages on 3.6), keeping CI under 30 minutes.
collect_ignore = ["test_qemu.py", "test_qemu_5_10.py", "test_qemu_arm64.py", "test_qemu_gates.py", "test_qemu_forecast.py",
                  "test_qemu_btf.py",
                  "test_differential.py"] \
    if os.environ.get("KBG_TEST_GUESTS") == "0" else []

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


NEUTRAL_CWD = "/"


def kbuildguard(*argv, cwd=None, env=None):
    """The real CLI in a real process, as a user or a spec file runs it.

    Never in the checkout: `python -m` puts the folder it starts in first on sys.path, and the suite
    must run the installed kbuildguard (the wheel, in CI), not the source tree beside it."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "kbuildguard"] + list(argv), cwd=cwd or NEUTRAL_CWD, env=full_env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    res = Result(proc)
    assert "Traceback" not in res.err, res
    return res


# The signals a test sends or relies on. A suite started with `&` from a script inherits SIGINT and
# SIGQUIT ignored, under `nohup` SIGHUP ignored; kbuildguard respects what its caller ignores, so a
# child that must hear them gets them back at their default, set in the child itself.
TEST_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM)


def default_signals(ignored=()):
    """A preexec_fn: SIG_DFL for TEST_SIGNALS, SIG_IGN for IGNORED (what `nohup` or `&` would have set)."""
    def preexec():  # pragma: no cover - runs in the child, between fork and exec
        for sig in TEST_SIGNALS:
            signal.signal(sig, signal.SIG_IGN if sig in ignored else signal.SIG_DFL)
    return preexec


def spawn(argv, cwd, env=None, ignored=(), new_session=False):
    """A kbuildguard process for a test that signals it: dispositions set in the child (default_signals),
    stdin closed, output piped. Use it in ``with reaped(proc):`` so that it never outlives the test."""
    full = dict(os.environ)
    full.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "kbuildguard"] + list(argv), cwd=cwd, env=full,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=default_signals(ignored), start_new_session=new_session)


@contextlib.contextmanager
def reaped(proc, group=False, grace=30):
    """However the test ends (a timeout, a failed assert), the child is gone afterwards: SIGTERM
    (kbuildguard then stops its make's group), SIGKILL after GRACE seconds; its whole process group
    when GROUP (the child was started in a session of its own)."""
    try:
        yield proc
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is not None:
                break
            try:
                if group:
                    os.killpg(proc.pid, sig)
                else:
                    proc.send_signal(sig)
            except OSError:
                pass
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
        if proc.poll() is None:
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


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


def plain_make(module_dir, release, real_cc, kernel_dir=None, variables=()):
    """Build without kbuildguard, as a vendor or another CI would, with another compiler or tree;
    VARIABLES: more make variables ("KBUILD_MODPOST_WARN=1")."""
    env = dict(os.environ, KBG_REAL_CC=real_cc)
    subprocess.run(["make", "-C", kernel_dir or "/lib/modules/%s/build" % release, "M=" + module_dir,
                    "CC=" + os.path.join(TOOLS, "ccfilter.py")] + list(variables) + ["modules"],
                   env=env, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def drifted_tree(dest, release, changes, src=None):
    """A copy of Debian's headers for RELEASE (or of the tree SRC) with CONFIG options changed
    ({"CONFIG_X": "y" or None}), consistently in .config, include/config/auto.conf and
    include/generated/autoconf.h: a build tree that no longer describes the kernel it claims to be."""
    src = src or "/usr/src/linux-headers-%s" % release
    shutil.copytree(src, dest, symlinks=True)
    for link in ("scripts", "tools"):
        target = os.path.realpath(os.path.join(src, link))
        os.unlink(os.path.join(dest, link))
        os.symlink(target, os.path.join(dest, link))
    for rel in (".config", "include/config/auto.conf"):
        path = os.path.join(dest, rel)
        lines = open(path).read().splitlines()
        for option, value in changes.items():
            lines = [line for line in lines if not (line.startswith(option + "=") or line == "# %s is not set" % option)]
            lines.append("%s=%s" % (option, value) if value else "# %s is not set" % option)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
    path = os.path.join(dest, "include/generated/autoconf.h")
    lines = open(path).read().splitlines()
    for option, value in changes.items():
        lines = [line for line in lines if not line.startswith("#define %s " % option)]
        if value:
            lines.append("#define %s 1" % option)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return dest


DEBIAN_CC_TEXT = "gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"


def renamed_compiler_tree(dest, release, text, gcc_version, extra=()):
    """A copy of Debian's headers whose records say the kernel was built by TEXT (CONFIG_GCC_VERSION
    GCC_VERSION), with compile.h removed so that no record disagrees; EXTRA: more (old, new) replacements."""
    src = "/usr/src/linux-headers-%s" % release
    shutil.copytree(src, dest, symlinks=True)
    for link in ("scripts", "tools"):  # relative links into linux-kbuild: point them at the real folders
        target = os.path.realpath(os.path.join(src, link))
        os.unlink(os.path.join(dest, link))
        os.symlink(target, os.path.join(dest, link))
    for rel in ("include/config/auto.conf", ".config"):
        path = os.path.join(dest, rel)
        with open(path) as f:
            content = f.read()
        assert DEBIAN_CC_TEXT in content
        content = content.replace(DEBIAN_CC_TEXT, text).replace("CONFIG_GCC_VERSION=120200", "CONFIG_GCC_VERSION=%s" % gcc_version)
        for old, new in extra:
            content = content.replace(old, new)
        with open(path, "w") as f:
            f.write(content)
    os.unlink(os.path.join(dest, "include/generated/compile.h"))
    return dest


def image_root(release):
    return os.environ.get("KBG_TEST_IMAGE_ROOT", "/var/cache/kbuildguard-ci/image-%s" % release)


def named_kdemo(parent, name, kbuildguard_toml=True):
    """examples/kdemo copied as module NAME: described by kbuildguard.toml, or by a bare Kbuild
    (for builds without kbuildguard)."""
    repo = os.path.join(str(parent), name)
    shutil.copytree(os.path.join(EXAMPLES, "kdemo"), repo, ignore=COPY_SOURCES)
    os.rename(os.path.join(repo, "kdemo.c"), os.path.join(repo, name + ".c"))
    os.unlink(os.path.join(repo, "kbuildguard.toml"))
    if kbuildguard_toml:
        with open(os.path.join(repo, "kbuildguard.toml"), "w") as f:
            f.write('[[module]]\nname = "%s"\n' % name)
    else:
        with open(os.path.join(repo, "Kbuild"), "w") as f:
            f.write("obj-m += %s.o\n" % name)
    return repo
