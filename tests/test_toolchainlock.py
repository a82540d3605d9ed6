"""The DKMS toolchain lock (kbuildguard/build/toolchainlock.py): what it holds, the shell it
writes, and what it refuses. The lock sourced by a shell and used by a real make and the real
dkms: tests/integration/test_dkms_lock.py."""

import os

import pytest

from kbuildguard.arch import Arch
from kbuildguard.build import toolchainlock
from kbuildguard.errors import BadInput, CannotWrite
from kbuildguard.identity import CompilerId, Family
from kbuildguard.target.kernel import KernelTarget
from kbuildguard.toolchain import Compiler


def _target(release="6.1.0-57-amd64", family=Family.GCC, config=None):
    return KernelTarget(release=release, build_dir="/lib/modules/%s/build" % release, arch=None,
                        compiler=CompilerId(family=family, version="12.2.0", vendor="Debian 12.2.0-14+deb12u1"), compiler_source="test", linker=None,
                        facts=(), notes=(), config_path=None, modules_dir=None, sysroot="/", running=False, program_hint="",
                        tree_config=config or {})


def _bin(tmp_path, *names):
    d = tmp_path / "usr" / "bin"
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        (d / n).write_text("#!/bin/sh\n")
        (d / n).chmod(0o755)
    return d


GCC = Compiler(path="/usr/bin/gcc-12", family=Family.GCC, version="12.2.0", vendor="Debian 12.2.0-14+deb12u1", banner="", arch=Arch.X86_64, program="gcc-12", toolset="")


def test_a_gcc_lock_names_the_compiler_under_every_name_kbuild_calls_and_the_tools_path_finds(tmp_path):
    d = _bin(tmp_path, "ld", "pahole")
    lock = toolchainlock.plan(_target(), GCC, {"PATH": str(d)})
    assert lock.make_vars == ()
    assert [(t.name, t.path, t.role) for t in lock.tools] == [
        ("gcc-12", "/usr/bin/gcc-12", "compiler"), ("gcc", "/usr/bin/gcc-12", "compiler"), ("cc", "/usr/bin/gcc-12", "compiler"),
        ("ld", str(d / "ld"), "linker"), ("pahole", str(d / "pahole"), "pahole")]  # no rustc on this PATH: none locked


def test_a_clang_lock_exports_llvm_and_the_kernels_assembler(tmp_path):
    d = _bin(tmp_path, "clang-16", "ld.lld-16")
    clang = Compiler(path=str(d / "clang-16"), family=Family.CLANG, version="16.0.6", vendor="Debian 15~deb12u1", banner="", arch=Arch.X86_64, program="clang-16", toolset="")
    lock = toolchainlock.plan(_target(family=Family.CLANG, config={"CONFIG_AS_IS_LLVM": "y"}), clang, {"PATH": str(d)})
    assert lock.make_vars == ("LLVM=-16", "LLVM_IAS=1")
    assert ("ld.lld-16", str(d / "ld.lld-16"), "linker") in [(t.name, t.path, t.role) for t in lock.tools]
    env = toolchainlock.render_env(lock, "/L/6.1.0-57-amd64/bin")
    assert "LLVM=-16\nexport LLVM\nLLVM_IAS=1\nexport LLVM_IAS\n" in env


def test_env_and_dispatcher_are_quoted_shell(tmp_path):
    lock = toolchainlock.plan(_target(), GCC, {"PATH": ""})
    env = toolchainlock.render_env(lock, "/var/lib/kbg lock/6.1.0-57-amd64/bin")
    assert "PATH='/var/lib/kbg lock/6.1.0-57-amd64/bin':\"${PATH:-/usr/sbin:/usr/bin:/sbin:/bin}\"\nexport PATH\n" in env
    assert "kbuildguard_lock_cc=/usr/bin/gcc-12\n" in env
    assert "kbuildguard_lock_cc_identity='gcc 12.2.0 (Debian 12.2.0-14+deb12u1)'\n" in env
    # nothing exported under KBUILDGUARD_: kbuildguard refuses environment settings it does not know
    assert "KBUILDGUARD_" not in env
    disp = toolchainlock.render_dispatcher("/var/lib/kbg lock")
    assert "[ -f '/var/lib/kbg lock'/\"$kernelver\"/env ]" in disp and ". '/var/lib/kbg lock'/\"$kernelver\"/env" in disp


def test_write_makes_the_folder_and_replaces_a_previous_lock_whole(tmp_path):
    root = tmp_path / "locks"
    lock = toolchainlock.plan(_target(), GCC, {"PATH": ""})
    env, bindir, disp = toolchainlock.write(lock, str(root))
    assert env == str(root / "6.1.0-57-amd64" / "env") and os.path.isfile(disp)
    assert sorted(os.listdir(bindir)) == ["cc", "gcc", "gcc-12"]
    assert os.readlink(os.path.join(bindir, "gcc")) == "/usr/bin/gcc-12"
    (root / "6.1.0-57-amd64" / "bin" / "stale").symlink_to("/nowhere")
    toolchainlock.write(lock, str(root))
    assert sorted(os.listdir(bindir)) == ["cc", "gcc", "gcc-12"]
    assert sorted(os.listdir(str(root))) == ["6.1.0-57-amd64", "build_environment"]  # no staging leftovers


@pytest.mark.parametrize("release", ["..", ".", "a/b", "", "6.1\n", "-rf"])
def test_a_release_that_is_not_a_folder_name_is_refused(release):
    with pytest.raises(BadInput):
        toolchainlock.plan(_target(release=release), GCC, {"PATH": ""})


def test_a_toolsets_bin_and_libraries_follow_the_locks_bin(tmp_path):
    gts = Compiler(path="/opt/rh/gcc-toolset-13/root/usr/bin/gcc", family=Family.GCC, version="13.2.1", vendor="Red Hat 13.2.1-1", banner="", arch=Arch.X86_64, program="gcc",
                   toolset="gcc-toolset-13")
    lock = toolchainlock.plan(_target(), gts, {"PATH": "/usr/bin:/bin"})
    assert lock.path_prefix == ("/opt/rh/gcc-toolset-13/root/usr/bin",)
    env = toolchainlock.render_env(lock, "/L/R/bin")
    assert "PATH=/L/R/bin:/opt/rh/gcc-toolset-13/root/usr/bin:\"${PATH:-" in env
    assert "LD_LIBRARY_PATH=/opt/rh/gcc-toolset-13/root/usr/lib64:/opt/rh/gcc-toolset-13/root/usr/lib\nexport LD_LIBRARY_PATH\n" in env


def test_a_lock_folder_others_can_write_is_refused(tmp_path):
    """root's DKMS sources the lock: a group- or world-writable folder would run others' code."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    lock = toolchainlock.plan(_target(), GCC, {"PATH": ""})
    with pytest.raises(BadInput, match="writable by group or others"):
        toolchainlock.write(lock, str(shared))
    assert os.listdir(str(shared)) == []


def test_a_lock_folder_with_control_characters_or_unwritable_is_refused(tmp_path):
    lock = toolchainlock.plan(_target(), GCC, {"PATH": ""})
    with pytest.raises(BadInput):
        toolchainlock.write(lock, str(tmp_path / "a\nrm -rf /"))
    with pytest.raises(BadInput):
        toolchainlock.write(lock, "")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CannotWrite):
        toolchainlock.write(lock, str(blocker / "sub"))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_lock_folder_another_user_owns_is_refused(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(str(theirs), 4242, -1)
    lock = toolchainlock.plan(_target(), GCC, {"PATH": ""})
    with pytest.raises(BadInput, match="belongs to uid 4242"):
        toolchainlock.write(lock, str(theirs))


# -- issue 19 item 6: the parents of the lock folder; no temporary folder left behind --------------

def test_a_parent_others_can_write_is_refused_up_to_the_root(tmp_path):
    """As sudo's secure path: whoever may rename a parent can put their own lock (and code) there."""
    lock = toolchainlock.plan(_target(), GCC, {"PATH": ""})
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(BadInput, match="parent folder %s is writable by group or others" % shared):
        toolchainlock.write(lock, str(shared / "a" / "lock"))
    # two levels up too, and group-writable counts
    shared.chmod(0o775)
    (shared / "a").chmod(0o755)
    with pytest.raises(BadInput, match="parent folder %s is writable" % shared):
        toolchainlock.write(lock, str(shared / "a" / "lock"))
    # a sticky folder (as /tmp) is safe: others cannot rename what is not theirs
    shared.chmod(0o1777)
    toolchainlock.write(lock, str(shared / "a" / "lock"))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_parent_another_user_owns_is_refused(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(str(theirs), 4242, -1)
    lock = toolchainlock.plan(_target(), GCC, {"PATH": ""})
    with pytest.raises(BadInput, match="parent folder %s belongs to uid 4242" % theirs):
        toolchainlock.write(lock, str(theirs / "lock"))


def test_a_failure_midway_leaves_no_temporary_folder(tmp_path, monkeypatch):
    lock = toolchainlock.plan(_target(), GCC, {"PATH": ""})
    root = tmp_path / "lock"
    toolchainlock.write(lock, str(root))  # a previous lock, replaced below

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    for where in ("write_text", "rename"):
        with monkeypatch.context() as m:
            if where == "rename":
                m.setattr(toolchainlock.os, "rename", full)
            else:
                m.setattr(toolchainlock, "write_text", full)
            with pytest.raises(CannotWrite, match="No space left on device"):
                toolchainlock.write(lock, str(root))
        assert sorted(os.listdir(str(root))) == ["6.1.0-57-amd64", "build_environment"], where
