"""Issue 19 part 2: the kmod hooks of kernel-srpm-macros (RHEL 9's macros.kmp) verify a module
package with no kbuildguard line in its spec: tests/data/rpm/kmod-kmp-shape.spec, built with the
real rpmbuild and the macros `kbuildguard rpm-macros` prints. A mismatched module fails the build
and no RPM is written; a good one builds; a build system's own %__brp_kmod_post_sign_process
(loaded before ours, as AlmaLinux's) still runs -- here it signs -- and the check runs after it."""

import glob
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from conftest import require
from integration.conftest import COPY_SOURCES, EXAMPLES, kbuildguard, plain_make
from integration.test_signing import key  # noqa: F401 - the fixture
from kbuildguard.formats.module import read_module

# Once per CI run, in the Python 3.13 pass (as the qemu guests): rpmbuild and the macros file do not depend on the Python running pytest.
pytestmark = pytest.mark.skipif(sys.version_info < (3, 7), reason="runs in the Python 3.13 pass")

SPEC = os.path.join(os.path.dirname(EXAMPLES), "tests", "data", "rpm", "kmod-kmp-shape.spec")


def _prebuilt(tmp_path, release, cc):
    src = tmp_path / "kdemo-1.0"
    shutil.copytree(os.path.join(EXAMPLES, "kdemo"), str(src), ignore=COPY_SOURCES)
    (src / "Kbuild").write_text("obj-m := kdemo.o\n")
    plain_make(str(src), release, cc)
    top = tmp_path / "rpmbuild"
    (top / "SOURCES").mkdir(parents=True)
    with tarfile.open(str(top / "SOURCES" / "kdemo-1.0.tar.gz"), "w:gz") as tar:
        tar.add(str(src / "kdemo.ko"), arcname="kdemo-1.0/kdemo.ko")
    return top


def _rpmbuild(tmp_path, top, release, before=None, extra=()):
    require(shutil.which("rpmbuild") is not None and shutil.which("xz") is not None, "rpmbuild, xz")
    macros = tmp_path / "macros.kbuildguard"
    macros.write_text(kbuildguard("rpm-macros").out)
    loads = []
    if before is not None:  # a build system's macros, loaded before ours (macros.d order, /usr/lib/rpm/macros)
        theirs = tmp_path / "macros.theirs"
        theirs.write_text(before)
        loads += ["--load", str(theirs)]
    loads += ["--load", str(macros)]
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(["rpmbuild", "-bb", "--nodeps", "--define", "_topdir %s" % top, "--define", "kversion %s" % release]
                          + loads + list(extra) + [SPEC], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc.returncode, proc.stdout.decode(errors="replace"), glob.glob(str(top / "RPMS" / "*" / "*.rpm"))


def _payload(tmp_path, rpm, release):
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run("rpm2cpio %s | cpio -idm --quiet" % rpm, shell=True, cwd=str(root), check=True)
    return str(root / "lib" / "modules" / release / "extra" / "kdemo.ko.xz")


def test_good_module_builds_and_both_hooks_check_it(debian_release, compilers, tmp_path):
    code, out, rpms = _rpmbuild(tmp_path, _prebuilt(tmp_path, debian_release, "gcc-12"), debian_release)
    assert code == 0, out[-3000:]
    # after signing: the plain .ko; after compression: the .ko.xz, the final payload
    checks = [line for line in out.splitlines() if line.startswith("+ kbuildguard check --kernel %s" % debian_release)]
    assert len(checks) == 2, out[-3000:]
    # each check names the module with its headline (headers alone: "not fully checked: layout ..."; the
    # build goes on because nothing is refused)
    assert out.index("kdemo.ko: ") < out.index("xz -f") < out.index("kdemo.ko.xz: ")
    assert len(rpms) == 1


def test_mismatched_module_fails_the_build_and_writes_no_rpm(debian_release, compilers, tmp_path):
    code, out, rpms = _rpmbuild(tmp_path, _prebuilt(tmp_path, debian_release, "gcc-11"), debian_release)
    assert code != 0
    # the first hook (after signing) refuses it; compression never runs
    assert "BAD  compiler [cannot-unload]: built (at least in part) by gcc 11" in out, out[-3000:]
    assert "module rejected: 1 of 1 module(s) do not match kernel %s" % debian_release in out
    assert "xz -f" not in out
    assert "Bad exit status" in out and "(%install)" in out
    assert rpms == []


def test_an_existing_signing_hook_still_signs_and_the_check_runs_after_it(debian_release, compilers, key, tmp_path):  # noqa: F811
    sign_file = "/usr/src/linux-headers-%s/scripts/sign-file" % debian_release
    require(os.access(sign_file, os.X_OK), "Debian's scripts/sign-file")
    # a build system's hook, in the shape of AlmaLinux's: signs every module of the buildroot
    theirs = ("%%__brp_kmod_post_sign_process echo THEIRS-SIGNS; find %%{buildroot}/lib/modules -name '*.ko' "
              "-exec %s sha256 %s %s {} \\\\;\n" % (sign_file, key[0], key[1]))
    code, out, rpms = _rpmbuild(tmp_path, _prebuilt(tmp_path, debian_release, "gcc-12"), debian_release, before=theirs,
                                extra=["--define", "kbuildguard_check_flags --trusted-cert %s" % key[1]])
    assert code == 0, out[-3000:]
    assert out.index("THEIRS-SIGNS") < out.index("+ kbuildguard check --kernel")
    assert len(rpms) == 1
    ko = _payload(tmp_path, rpms[0], debian_release)
    assert read_module(ko).signature is not None
    res = kbuildguard("check", "-v", "--kernel", debian_release, "--trusted-cert", key[1], ko)
    assert res.code == 0 and "trusted (--trusted-cert" in res.out and "signature verified" in res.out, res


def test_a_hook_defined_after_the_macros_replaces_ours(debian_release, compilers, tmp_path):
    """What the macros file cannot do, pinned: a later definition (a spec's %define, --define,
    ~/.rpmmacros) wins, and docs/packagers.md tells it to add %{kbuildguard_kmod_check}."""
    top = _prebuilt(tmp_path, debian_release, "gcc-11")
    code, out, rpms = _rpmbuild(tmp_path, top, debian_release,
                                extra=["--define", "__brp_kmod_post_sign_process echo LATER-HOOK %{kbuildguard_kmod_check}",
                                       "--define", "__brp_kmod_post_compress_process echo LATER-HOOK2"])
    assert "LATER-HOOK" in out and code != 0 and rpms == []


def test_hook_chaining_by_expansion_and_the_fallback_without_rpm_undefine(tmp_path):
    """rpm --eval, no build: theirs first then ours; with a Lua lacking rpm.undefine (older rpm),
    ours alone and a warning naming the one line to add."""
    require(shutil.which("rpm") is not None, "rpm")
    macros = tmp_path / "macros.kbuildguard"
    macros.write_text(kbuildguard("rpm-macros").out)
    theirs = tmp_path / "macros.theirs"
    theirs.write_text("%__brp_kmod_post_sign_process echo THEIRS\n")
    base = ["rpm", "--load", str(theirs), "--load", str(macros), "--define", "buildroot /BR"]
    hook = "%{?__brp_kmod_post_sign_process}"
    out = subprocess.run(base + ["--eval", hook], stdout=subprocess.PIPE, check=True).stdout.decode()
    assert out.index("echo THEIRS") < out.index("kbuildguard check --kernel")
    # no earlier definition: ours alone
    alone = subprocess.run(["rpm", "--load", str(macros), "--define", "buildroot /BR", "--eval", hook],
                           stdout=subprocess.PIPE, check=True).stdout.decode()
    assert "THEIRS" not in alone and "kbuildguard check --kernel" in alone
    proc = subprocess.run(base + ["--eval", "%{lua: rpm.undefine = nil}", "--eval", hook],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    assert "THEIRS" not in proc.stdout.decode() and "kbuildguard check --kernel" in proc.stdout.decode()
    assert "no rpm.undefine: an earlier %__brp_kmod_post_sign_process, if any, does not run; add %{kbuildguard_kmod_check}" \
        in proc.stderr.decode()


def test_every_expansion_runs_both_hooks(tmp_path):
    """The tester's finding: the Lua popped our definition for good, so a second expansion (a second
    spec in one rpmbuild) ran theirs only, or nothing. Each expansion now runs theirs, then ours; and
    a buildroot's /usr/lib/modules is checked as /lib/modules is."""
    require(shutil.which("rpm") is not None, "rpm")
    macros = tmp_path / "macros.kbuildguard"
    macros.write_text(kbuildguard("rpm-macros").out)
    theirs = tmp_path / "macros.theirs"
    theirs.write_text("%__brp_kmod_post_sign_process echo THEIRS\n")
    hook = "%{?__brp_kmod_post_sign_process}"
    for first in ([str(theirs)], []):
        argv = ["rpm"] + [a for f in first for a in ("--load", f)] + ["--load", str(macros), "--define", "buildroot /BR"]
        out = subprocess.run(argv + ["--eval", hook] * 3, stdout=subprocess.PIPE, check=True).stdout.decode()
        assert out.count("kbuildguard check --kernel") == 3, out
        assert out.count("echo THEIRS") == (3 if first else 0), out
        assert "/BR/usr/lib/modules/*/" in out


# -- RPM Fusion's kmodtool: its macros.kmodtool is loaded after macros.kbuildguard ----------------

KMODTOOL_SPEC = os.path.join(os.path.dirname(EXAMPLES), "tests", "data", "rpm", "kmod-kmodtool-shape.spec")
KMODTOOL_MACROS = os.path.join(os.path.dirname(EXAMPLES), "kbuildguard", "data", "macros.zz-kbuildguard-kmodtool")


def _kmodtool_build(tmp_path, top, release, theirs, ours_kmodtool=True, extra=()):
    """rpmbuild with a macros.d folder as the packages fill it -- macros.kbuildguard,
    macros.zz-kbuildguard-kmodtool and a stand-in for kmodtool's macros.kmodtool -- loaded by rpm's
    own glob (macros.d/macros.*, name order), not by --load in an order the test picks."""
    require(shutil.which("rpmbuild") is not None and shutil.which("xz") is not None, "rpmbuild, xz")
    macros_d = tmp_path / "macros.d"
    macros_d.mkdir()
    (macros_d / "macros.kbuildguard").write_text(kbuildguard("rpm-macros").out)
    (macros_d / "macros.kmodtool").write_text(theirs)
    if ours_kmodtool:
        shutil.copy(KMODTOOL_MACROS, str(macros_d))
    path = ":".join(["/usr/lib/rpm/macros", "/usr/lib/rpm/macros.d/macros.*", str(macros_d / "macros.*"),
                     "/usr/lib/rpm/platform/%{_target}/macros", "/usr/lib/rpm/fileattrs/*.attr", "/usr/lib/rpm/debian/macros"])
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(["rpmbuild", "-bb", "--nodeps", "--macros", path, "--define", "_topdir %s" % top,
                           "--define", "kversion %s" % release] + list(extra) + [KMODTOOL_SPEC],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc.returncode, proc.stdout.decode(errors="replace"), glob.glob(str(top / "RPMS" / "*" / "*.rpm"))


def _kmodtool_macros(sign_file, key_pair):
    """kmodtool's switches and steps, reduced: sign every .ko (its brp-kmodsign), then compress."""
    return ("%%__kmodtool_signmodules 1\n"
            "%%__kmodtool_modsign_install_post echo THEIRS-KMODTOOL-SIGNS; find %%{buildroot}/lib/modules -name '*.ko' "
            "-exec %s sha256 %s %s {} \\\\;\n"
            "%%__kmodtool_zipmodules 1\n"
            "%%__kmodtool_modzip_install_post echo THEIRS-KMODTOOL-ZIPS; find %%{buildroot}/lib/modules -name '*.ko' "
            "-exec xz -f --check=crc32 {} +\n") % (sign_file, key_pair[0], key_pair[1])


def test_kmodtool_signs_and_compresses_and_the_check_runs_after_each(debian_release, compilers, key, tmp_path):  # noqa: F811
    sign_file = "/usr/src/linux-headers-%s/scripts/sign-file" % debian_release
    require(os.access(sign_file, os.X_OK), "Debian's scripts/sign-file")
    code, out, rpms = _kmodtool_build(tmp_path, _prebuilt(tmp_path, debian_release, "gcc-12"), debian_release,
                                      _kmodtool_macros(sign_file, key),
                                      extra=["--define", "kbuildguard_check_flags --trusted-cert %s" % key[1]])
    assert code == 0, out[-3000:]
    checks = [i for i, line in enumerate(out.splitlines()) if line.startswith("+ kbuildguard check --kernel %s" % debian_release)]
    assert len(checks) == 2, out[-3000:]
    # theirs first, each time: signed, checked (the signed .ko), compressed, checked (the .ko.xz)
    assert out.index("THEIRS-KMODTOOL-SIGNS") < out.index("kdemo.ko: ") < out.index("THEIRS-KMODTOOL-ZIPS") < out.index("kdemo.ko.xz: ")
    assert len(rpms) == 1
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run("rpm2cpio %s | cpio -idm --quiet" % rpms[0], shell=True, cwd=str(root), check=True)
    ko = str(root / "lib" / "modules" / debian_release / "extra" / "kdemo" / "kdemo.ko.xz")
    assert read_module(ko).signature is not None
    res = kbuildguard("check", "--kernel", debian_release, "--trusted-cert", key[1], ko)
    assert res.code == 0, res


def test_kmodtool_mismatched_module_fails_and_without_our_second_file_it_would_pass(debian_release, compilers, key, tmp_path):  # noqa: F811
    sign_file = "/usr/src/linux-headers-%s/scripts/sign-file" % debian_release
    require(os.access(sign_file, os.X_OK), "Debian's scripts/sign-file")
    theirs = _kmodtool_macros(sign_file, key)
    code, out, rpms = _kmodtool_build(tmp_path, _prebuilt(tmp_path, debian_release, "gcc-11"), debian_release, theirs)
    assert code != 0 and rpms == []
    assert "THEIRS-KMODTOOL-SIGNS" in out and "BAD  compiler [cannot-unload]: built (at least in part) by gcc 11" in out, out[-3000:]
    assert "THEIRS-KMODTOOL-ZIPS" not in out
    # pinned: with macros.kbuildguard alone, kmodtool's later macros.kmodtool hides the chain and the
    # mismatched module is packaged -- why the packages install the second file
    other = tmp_path / "alone"
    other.mkdir()
    code, out, rpms = _kmodtool_build(other, _prebuilt(other, debian_release, "gcc-11"), debian_release, theirs, ours_kmodtool=False)
    assert code == 0 and len(rpms) == 1 and "kbuildguard check" not in out, out[-3000:]


# -- AlmaLinux's build node: /etc/rpm/macros.modsign, loaded after macros.d ----------------------

ETC_MACROS = os.path.join(os.path.dirname(EXAMPLES), "kbuildguard", "data", "macros.zz-kbuildguard")


def _alma_modsign(sign_file, key_pair):
    """A macros.modsign in the shape AlmaLinux's build node writes into the mock chroot: its own
    signer (a stand-in: the tree's sign-file), its own post-sign step and its own %__spec_install_post
    expanding the kmod hooks."""
    return ("%%__brp_kmod_sign echo ALMA-SIGNS; find %%{buildroot}/lib/modules -name '*.ko' "
            "-exec %s sha256 %s %s {} \\\\;\n"
            "%%__brp_kmod_post_sign_process echo ALMA-POST-SIGN\n"
            "%%__spec_install_post \\\n    %%{?__debug_package:%%{__debug_install_post}} \\\n    %%{__arch_install_post} \\\n"
            "    %%{__os_install_post} \\\n    %%{?__brp_kmod_pre_sign_process} \\\n    %%{?__brp_kmod_sign} \\\n"
            "    %%{?__brp_kmod_post_sign_process} \\\n%%{nil}\n") % (sign_file, key_pair[0], key_pair[1])


def _spec_without_install_post(tmp_path):
    """The kmp-shape spec less its own %__spec_install_post and compression: the build node's
    %__spec_install_post (macros.modsign) is the one in effect, and the payload is the signed .ko."""
    text = open(SPEC).read()
    start = text.index("%define __spec_install_post")
    end = text.index("%global debug_package")
    spec = tmp_path / "kmod-kdemo-alma.spec"
    spec.write_text(text[:start] + text[end:].replace("kdemo.ko.xz", "kdemo.ko"))
    return str(spec)


def _etc_build(tmp_path, top, release, modsign, ours_etc=True, extra=()):
    """rpmbuild with rpm's own macro path, a private macros.d and a private etc/ holding the
    build node's macros.modsign (and our macros.zz-kbuildguard), the etc glob AFTER macros.d as in
    `rpm --showrc`."""
    require(shutil.which("rpmbuild") is not None and shutil.which("xz") is not None, "rpmbuild, xz")
    macros_d = tmp_path / "macros.d"
    macros_d.mkdir()
    (macros_d / "macros.kbuildguard").write_text(kbuildguard("rpm-macros").out)
    etc = tmp_path / "etc"
    etc.mkdir()
    if modsign is not None:
        (etc / "macros.modsign").write_text(modsign)
    if ours_etc:
        shutil.copy(ETC_MACROS, str(etc))
    path = ":".join(["/usr/lib/rpm/macros", "/usr/lib/rpm/macros.d/macros.*", str(macros_d / "macros.*"),
                     "/usr/lib/rpm/platform/%{_target}/macros", "/usr/lib/rpm/fileattrs/*.attr", "/usr/lib/rpm/debian/macros",
                     str(etc / "macros.*")])
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(["rpmbuild", "-bb", "--nodeps", "--macros", path, "--define", "_topdir %s" % top,
                           "--define", "kversion %s" % release] + list(extra) + [_spec_without_install_post(tmp_path)],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc.returncode, proc.stdout.decode(errors="replace"), glob.glob(str(top / "RPMS" / "*" / "*.rpm"))


def test_almalinux_modsign_in_etc_signs_and_the_check_still_refuses(debian_release, compilers, key, tmp_path):  # noqa: F811
    sign_file = "/usr/src/linux-headers-%s/scripts/sign-file" % debian_release
    require(os.access(sign_file, os.X_OK), "Debian's scripts/sign-file")
    modsign = _alma_modsign(sign_file, key)
    code, out, rpms = _etc_build(tmp_path, _prebuilt(tmp_path, debian_release, "gcc-11"), debian_release, modsign)
    assert code != 0 and rpms == [], out[-3000:]
    # their signer still signs, their post-sign step runs, then ours refuses
    assert out.index("ALMA-SIGNS") < out.index("ALMA-POST-SIGN") < out.index("BAD  compiler [cannot-unload]: built (at least in part) by gcc 11")
    # pinned: without /etc/rpm/macros.zz-kbuildguard the build node's definition hides ours and
    # the gcc-11 module is signed and packaged unchecked (the tester's finding)
    other = tmp_path / "alone"
    other.mkdir()
    code, out, rpms = _etc_build(other, _prebuilt(other, debian_release, "gcc-11"), debian_release, modsign, ours_etc=False)
    assert code == 0 and len(rpms) == 1 and "ALMA-SIGNS" in out and "kbuildguard check" not in out, out[-3000:]


def test_almalinux_modsign_good_module_builds_signed_and_checked_once_per_hook(debian_release, compilers, key, tmp_path):  # noqa: F811
    sign_file = "/usr/src/linux-headers-%s/scripts/sign-file" % debian_release
    require(os.access(sign_file, os.X_OK), "Debian's scripts/sign-file")
    code, out, rpms = _etc_build(tmp_path, _prebuilt(tmp_path, debian_release, "gcc-12"), debian_release, _alma_modsign(sign_file, key),
                                 extra=["--define", "kbuildguard_check_flags --trusted-cert %s" % key[1]])
    assert code == 0 and len(rpms) == 1, out[-3000:]
    checks = [line for line in out.splitlines() if line.startswith("+ kbuildguard check --kernel %s" % debian_release)]
    assert len(checks) == 1, out[-3000:]
    assert out.index("ALMA-SIGNS") < out.index("ALMA-POST-SIGN") < out.index("kdemo.ko: ")
    ko = _payload(tmp_path, rpms[0], debian_release)[:-len(".xz")]
    assert read_module(ko).signature is not None
    res = kbuildguard("check", "--kernel", debian_release, "--trusted-cert", key[1], ko)
    assert res.code == 0, res


def test_both_copies_of_the_chain_without_a_build_system_check_once(tmp_path):
    """macros.d's chain and /etc's chain, nothing else defining the hook: the check runs once per
    expansion, not twice (the guard in %kbuildguard_chain)."""
    require(shutil.which("rpm") is not None, "rpm")
    macros = tmp_path / "macros.kbuildguard"
    macros.write_text(kbuildguard("rpm-macros").out)
    hook = "%{?__brp_kmod_post_sign_process}"
    for mid in ([], ["%__brp_kmod_post_sign_process echo THEIRS\n"]):
        loads = ["--load", str(macros)]
        if mid:
            theirs = tmp_path / "macros.theirs"
            theirs.write_text(mid[0])
            loads += ["--load", str(theirs)]
        loads += ["--load", ETC_MACROS]
        out = subprocess.run(["rpm"] + loads + ["--define", "buildroot /BR"] + ["--eval", hook] * 2,
                             stdout=subprocess.PIPE, check=True).stdout.decode()
        assert out.count("kbuildguard check --kernel") == 2, out
        assert out.count("echo THEIRS") == (2 if mid else 0), out


# -- issue 19's re-test: the documented install without the package, AlmaLinux's real text --------

ALMA_MODSIGN = os.path.join(os.path.dirname(EXAMPLES), "tests", "data", "rpm", "almalinux-macros.modsign")


def _alma_signer(tmp_path, sign_file, key_pair):
    """A stand-in for AlmaLinux's /usr/local/bin/modsign OS FILE; sign_file None: signs nothing (/bin/true's part)."""
    signer = tmp_path / "modsign"
    body = 'exec %s sha256 %s %s "$2"\n' % (sign_file, key_pair[0], key_pair[1]) if sign_file else "exit 0\n"
    signer.write_text('#!/bin/sh\necho "ALMA-MODSIGN $2" >&2\n' + body)
    signer.chmod(0o755)
    return str(signer)


def _documented_install_build(tmp_path, top, release, signer, extra=(), install=("rpm-macros", "--install", "--root")):
    """As docs/packagers.md says, without the package: `kbuildguard rpm-macros --install --root R`,
    then AlmaLinux's macros.modsign in R/etc/rpm, and rpm's own macro path (4.18's order) over R."""
    require(shutil.which("rpmbuild") is not None, "rpmbuild")
    root = tmp_path / "sysroot"
    res = kbuildguard(*(list(install) + [str(root)]))
    assert res.code == 0, res
    (root / "etc" / "rpm" / "macros.modsign").write_text(open(ALMA_MODSIGN).read().replace("@MODSIGN@", signer))
    path = ":".join(["/usr/lib/rpm/macros", "/usr/lib/rpm/macros.d/macros.*", str(root / "usr/lib/rpm/macros.d/macros.*"),
                     "/usr/lib/rpm/platform/%{_target}/macros", "/usr/lib/rpm/fileattrs/*.attr", "/usr/lib/rpm/debian/macros",
                     str(root / "etc/rpm/macros.*")])
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(["rpmbuild", "-bb", "--nodeps", "--macros", path, "--define", "_topdir %s" % top,
                           "--define", "kversion %s" % release, "--define", "modsign_os almalinux"] + list(extra)
                          + [_spec_without_install_post(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc.returncode, proc.stdout.decode(errors="replace"), glob.glob(str(top / "RPMS" / "*" / "*.rpm"))


def test_documented_install_without_the_package_keeps_almalinux_from_hiding_the_check(debian_release, compilers, key, tmp_path):  # noqa: F811
    """The tester's HIGH finding: `rpm-macros > macros.d/macros.kbuildguard` alone let AlmaLinux's
    macros.modsign sign and package a gcc-11 module with no check. `rpm-macros --install` writes
    the /etc/rpm file too."""
    sign_file = "/usr/src/linux-headers-%s/scripts/sign-file" % debian_release
    require(os.access(sign_file, os.X_OK), "Debian's scripts/sign-file")
    signer = _alma_signer(tmp_path, sign_file, key)
    code, out, rpms = _documented_install_build(tmp_path, _prebuilt(tmp_path, debian_release, "gcc-11"), debian_release, signer)
    assert code != 0 and rpms == [], out[-3000:]
    assert out.index("ALMA-MODSIGN") < out.index("BAD  compiler [cannot-unload]: built (at least in part) by gcc 11"), out[-3000:]
    # the good module: signed by their signer, checked once (signature enforced: it is signed), packaged
    good = tmp_path / "good"
    good.mkdir()
    code, out, rpms = _documented_install_build(good, _prebuilt(good, debian_release, "gcc-12"), debian_release, signer,
                                                extra=["--define", "kbuildguard_check_flags --trusted-cert %s" % key[1]])
    assert code == 0 and len(rpms) == 1, out[-3000:]
    assert len([line for line in out.splitlines() if line.startswith("+ kbuildguard check --kernel")]) == 1, out[-3000:]
    assert "--sig-enforce yes" in out


def test_documented_per_file_install_matches_install(debian_release, compilers, key, tmp_path):  # noqa: F811
    """The three `rpm-macros --file NAME > PATH` lines of docs/packagers.md give the same set."""
    res = kbuildguard("rpm-macros", "--install", "--root", str(tmp_path / "a"))
    assert res.code == 0, res
    for word, rel in (("macros", "usr/lib/rpm/macros.d/macros.kbuildguard"),
                      ("kmodtool", "usr/lib/rpm/macros.d/macros.zz-kbuildguard-kmodtool"),
                      ("etc", "etc/rpm/macros.zz-kbuildguard")):
        assert kbuildguard("rpm-macros", "--file", word).out == (tmp_path / "a" / rel).read_text()


def test_after_a_signing_step_an_unsigned_module_is_refused(debian_release, compilers, key, tmp_path):  # noqa: F811
    """The tester's second finding: a signer that signs nothing (/bin/true) and --trusted-cert in the
    flags packaged an unsigned module. After a signing step the check enforces signatures; the way
    out is documented and works."""
    signer = _alma_signer(tmp_path, None, key)
    flags = ["--define", "kbuildguard_check_flags --trusted-cert %s" % key[1]]
    code, out, rpms = _documented_install_build(tmp_path, _prebuilt(tmp_path, debian_release, "gcc-12"), debian_release, signer,
                                                extra=flags)
    assert code != 0 and rpms == [], out[-3000:]
    assert "ALMA-MODSIGN" in out and "--sig-enforce yes" in out and "signature" in out, out[-3000:]
    way_out = tmp_path / "way-out"
    way_out.mkdir()
    code, out, rpms = _documented_install_build(way_out, _prebuilt(way_out, debian_release, "gcc-12"), debian_release, signer,
                                                extra=flags + ["--define", "kbuildguard_signed_check_flags %{nil}"])
    assert code == 0 and len(rpms) == 1, out[-3000:]
