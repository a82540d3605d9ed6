"""Kernels on demand (target/fetch.py) and the forecast's rows (report.forecast_row), without the network.

The apt-cache answers are Debian's own, captured on bookworm (2026-12) for linux-headers-6.1.0-56-amd64.
"""

import io
import json
import os

import pytest

from conftest import FakeRunner
from kbuildguard import cli
from kbuildguard.errors import CannotWrite, FetchFailed, PackageUnavailable, UsageError
from kbuildguard.formats.module import ModuleInfo
from kbuildguard.formats.symvers import Export
from kbuildguard.gates.model import Check, Effect, Gate
from kbuildguard.gates.verify import ModuleReport, Verdict
from kbuildguard.report import forecast_json, forecast_row
from kbuildguard.run import CommandFailed
from kbuildguard.target import fetch
from kbuildguard.target.fetch import Dependency, Family, Source

HEADERS_56 = """Package: linux-headers-6.1.0-56-amd64
Source: linux
Version: 6.1.192-2
Installed-Size: 8040
Depends: linux-headers-6.1.0-56-common (= 6.1.192-2), linux-kbuild-6.1 (>= 6.1.192-2), linux-compiler-gcc-12-x86
Filename: pool/updates/main/l/linux/linux-headers-6.1.0-56-amd64_6.1.192-2_amd64.deb
SHA256: 796a7b4584d7a57f97913e34e80a2fcce96b6c5016fa9d4fc2212a93e4868677

"""
REST_56 = """Package: linux-headers-6.1.0-56-common
Version: 6.1.192-2
Filename: pool/updates/main/l/linux/linux-headers-6.1.0-56-common_6.1.192-2_all.deb
SHA256: 509e776de8353799a53f4b14d29e87863aac2b7ee9264544bc2821461a853930

Package: linux-kbuild-6.1
Version: 6.1.192-3
Filename: pool/updates/main/l/linux/linux-kbuild-6.1_6.1.192-3_amd64.deb
SHA256: 98a1baa42a21088e25bcc91c4d8e8134cf1e9d6e978b8c4584f6c7d05e6cc9d6

Package: linux-image-6.1.0-56-amd64-unsigned
Version: 6.1.192-2
Filename: pool/updates/main/l/linux/linux-image-6.1.0-56-amd64-unsigned_6.1.192-2_amd64.deb
SHA256: 530631662c9ad84758eca2d7609cf40623309afd4bccbeb563f33e9c7f220bdf

"""
SHOW = ("apt-cache", "show", "--no-all-versions")
REST_SPECS = ("linux-headers-6.1.0-56-common=6.1.192-2", "linux-kbuild-6.1", "linux-image-6.1.0-56-amd64-unsigned=6.1.192-2")


def test_package_names_per_distribution():
    """Debian fetches the unsigned image (same config, vmlinuz contents and built-in keys as the signed one);
    Ubuntu splits vmlinuz (linux-image) from config and modules (linux-modules) and has no linux-kbuild."""
    assert fetch.asked_packages(Family.DEBIAN, "6.1.0-56-amd64") == ("linux-headers-6.1.0-56-amd64",
                                                                    "linux-image-6.1.0-56-amd64-unsigned")
    assert fetch.asked_packages(Family.UBUNTU, "6.8.0-45-generic") == (
        "linux-headers-6.8.0-45-generic", "linux-image-6.8.0-45-generic", "linux-modules-6.8.0-45-generic")
    assert fetch.asked_packages(Family.DNF, "5.14.0-503.11.1.el9_5.x86_64") == (
        "kernel-devel-5.14.0-503.11.1.el9_5.x86_64", "kernel-core-5.14.0-503.11.1.el9_5.x86_64")
    assert fetch.asked_packages(Family.ZYPPER, "5.14.21-150500.55.39-default") == (
        "kernel-default-devel-5.14.21-150500.55.39", "kernel-devel-5.14.21-150500.55.39", "kernel-default-5.14.21-150500.55.39")


def test_dependencies_followed_debian_and_ubuntu():
    depends = "linux-headers-6.1.0-56-common (= 6.1.192-2), linux-kbuild-6.1 (>= 6.1.192-2), linux-compiler-gcc-12-x86"
    assert fetch.followed_dependencies(Family.DEBIAN, depends) == [
        Dependency("linux-headers-6.1.0-56-common", "6.1.192-2"), Dependency("linux-kbuild-6.1", "")]
    trixie = ("linux-headers-6.12.117+deb13-common (= 6.12.117-1), linux-kbuild-6.12.117+deb13 (= 6.12.117-1), "
              "linux-compiler-gcc-14-x86")
    assert [d.name for d in fetch.followed_dependencies(Family.DEBIAN, trixie)] == [
        "linux-headers-6.12.117+deb13-common", "linux-kbuild-6.12.117+deb13"]
    ubuntu = "linux-headers-6.8.0-45, libc6 (>= 2.34), libelf1t64 (>= 0.144), libssl3t64 (>= 3.0.0), zlib1g (>= 1:1.2.3.3)"
    assert fetch.followed_dependencies(Family.UBUNTU, ubuntu) == [Dependency("linux-headers-6.8.0-45", "")]


@pytest.mark.parametrize("text,expected", [
    ("debian", Source(Family.DEBIAN)),
    ("debian:bullseye", Source(Family.DEBIAN, suite="bullseye")),
    ("ubuntu:noble", Source(Family.UBUNTU, suite="noble")),
    ("dnf", Source(Family.DNF)),
    ("dnf:/var/lib/mock/root:9", Source(Family.DNF, root="/var/lib/mock/root", releasever="9")),
    ("zypper:/srv/root", Source(Family.ZYPPER, root="/srv/root")),
])
def test_parse_source(text, expected):
    assert fetch.parse_source(text) == expected


@pytest.mark.parametrize("text", ["arch", "debian:../x", "dnf:relative/root", ""])
def test_parse_source_refuses(text):
    with pytest.raises(UsageError):
        fetch.parse_source(text)


@pytest.mark.parametrize("release,suite", [
    ("5.10.0-32-amd64", "bullseye"), ("6.1.0-57-amd64", "bookworm"), ("6.12.117+deb13-amd64", "trixie"),
    ("6.12.113+deb12-amd64", "bookworm"), ("4.19.0-27-amd64", "buster"), ("3.16.0-6-amd64", None)])
def test_debian_suite_of(release, suite):
    assert fetch.debian_suite_of(release) == suite


def test_system_sources_to_a_private_suite():
    deb822 = ("Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
              "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\n"
              "URIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n")
    entries = fetch.parse_sources(deb822, deb822=True)
    security = fetch.parse_security(deb822, deb822=True)
    signed = "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    # bookworm-security serves new ABIs before the point release: a private state reads it too
    assert fetch.sources_list(entries, "bullseye", Family.DEBIAN, security) == (
        signed + "http://deb.debian.org/debian bullseye main\n" +
        signed + "http://deb.debian.org/debian bullseye-updates main\n" +
        signed + "http://deb.debian.org/debian-security bullseye-security main\n")
    assert fetch.sources_list(entries, "buster", Family.DEBIAN, "").splitlines()[2] == (
        signed + "http://deb.debian.org/debian-security buster/updates main")
    ubuntu = [("", "http://archive.ubuntu.com/ubuntu", "main")]
    assert fetch.sources_list(ubuntu, "noble", Family.UBUNTU).splitlines()[2] == (
        "deb http://archive.ubuntu.com/ubuntu noble-security main")
    one_line = "deb http://security.debian.org/ bookworm-security main\ndeb http://ftp.de.debian.org/debian bookworm main contrib\n"
    assert fetch.parse_sources(one_line, deb822=False) == [("", "http://ftp.de.debian.org/debian", "main contrib")]
    assert fetch.parse_security(one_line, deb822=False) == "http://security.debian.org/"


def test_cache_root_is_the_users_or_var_cache_for_root():
    assert fetch.cache_root({"HOME": "/home/u"}, 1000) == "/home/u/.cache/kbuildguard/kernels"
    assert fetch.cache_root({"HOME": "/root"}, 0) == "/var/cache/kbuildguard/kernels"
    assert fetch.cache_root({"HOME": "/root", "XDG_CACHE_HOME": "/ci"}, 0) == "/ci/kbuildguard/kernels"
    # a relative or empty XDG_CACHE_HOME is ignored (XDG Base Directory specification)
    assert fetch.cache_root({"HOME": "/home/u", "XDG_CACHE_HOME": "rel/cache"}, 1000) == "/home/u/.cache/kbuildguard/kernels"
    assert fetch.cache_root({"HOME": "/home/u", "XDG_CACHE_HOME": ""}, 1000) == "/home/u/.cache/kbuildguard/kernels"
    assert fetch.cache_root({"XDG_CACHE_HOME": "rel"}, 0) == "/var/cache/kbuildguard/kernels"


@pytest.mark.parametrize("env", [{}, {"HOME": ""}, {"HOME": "relative"}, {"HOME": "x", "XDG_CACHE_HOME": "y"}])
def test_no_cache_folder_is_one_line(env):
    with pytest.raises(CannotWrite) as err:
        fetch.cache_root(env, 1000)
    assert err.value.exit_code == 14 and "no folder for the kernel cache" in err.value.message


def _cli(tmp_path, argv, env, runner=None, euid=1000):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, env=env, stdout=out, stderr=err, runner=lambda c: runner or FakeRunner(), euid=euid,
                    cwd=str(tmp_path))
    return code, out.getvalue(), err.getvalue()


def test_an_unwritable_cache_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    """HOME where no folder can be made (HOME=/nonexistent for a system unit's user; here a file), and a
    cache folder the user cannot write (made by root: PermissionError)."""
    (tmp_path / "file").write_text("")
    code, _, err = _cli(tmp_path, ["fetch", "--fetch-from", "debian", "6.1.0-56-amd64"], {"HOME": str(tmp_path / "file")})
    assert code == 14 and "cannot make the folder" in err and "Traceback" not in err, err
    cache = tmp_path / "c" / "kbuildguard" / "kernels"
    cache.mkdir(parents=True)
    real = open

    def root_owned(path, *args, **kwargs):
        if str(path).startswith(str(cache)):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", root_owned)
    code, _, err = _cli(tmp_path, ["fetch", "--fetch-from", "debian", "6.1.0-56-amd64"], {"XDG_CACHE_HOME": str(tmp_path / "c")})
    assert code == 14 and "cannot write %s/.lock: Permission denied" % cache in err and "Traceback" not in err, err


def test_lock_is_waited_for_within_a_bound_and_said(tmp_path):
    import fcntl

    cache = str(tmp_path / "kernels")
    os.makedirs(cache)
    runner = FakeRunner()
    with open(os.path.join(cache, ".lock"), "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(FetchFailed) as err:
            fetch.fetch(runner, "6.1.0-56-amd64", Source(Family.DEBIAN), cache, wait=0.1)
    assert "another kbuildguard still holds" in err.value.message
    assert runner.calls == []


def test_a_private_apt_state_is_locked(tmp_path, monkeypatch):
    """Two runs updating one private apt state (bullseye) collided in apt's own lists lock: the second waits."""
    import fcntl

    monkeypatch.setattr(fetch, "read_system_sources", lambda: ([("", "http://deb.debian.org/debian", "main")], ""))
    cache = str(tmp_path / "kernels")
    folder = tmp_path / "apt" / "bullseye"
    folder.mkdir(parents=True)
    runner = FakeRunner()
    with open(str(folder / "lock"), "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(FetchFailed) as err:
            fetch.available(runner, "5.10.0-*-amd64", Source(Family.DEBIAN, suite="bullseye"), cache, wait=0.1)
    assert "apt state for bullseye: another kbuildguard still holds" in err.value.message
    assert runner.calls == []


def test_an_old_private_sources_list_is_updated_again(tmp_path, monkeypatch):
    """A state written without -security is read again once (its lists lack the newest ABIs)."""
    monkeypatch.setattr(fetch, "read_system_sources", lambda: ([("", "http://deb.debian.org/debian", "main")], ""))
    folder = tmp_path / "apt" / "bullseye"
    (folder / "lists").mkdir(parents=True)
    (folder / "lists" / "x_Packages").write_text("")
    (folder / "sources.list").write_text("deb http://deb.debian.org/debian bullseye main\n")
    apt = fetch.private_apt(FakeRunner(), str(tmp_path / "kernels"), "bullseye", fetch.read_system_sources())
    assert apt.stale and "bullseye-security" in (folder / "sources.list").read_text()
    again = fetch.private_apt(FakeRunner(), str(tmp_path / "kernels"), "bullseye", fetch.read_system_sources())
    assert not again.stale


def test_family_of_os_release():
    assert fetch.family_of("rocky", ("rhel", "centos", "fedora")) is Family.DNF
    assert fetch.family_of("linuxmint", ("ubuntu", "debian")) is Family.UBUNTU
    assert fetch.family_of("opensuse-leap", ("suse", "opensuse")) is Family.ZYPPER
    assert fetch.family_of("alpine", ()) is None


class DebRunner(FakeRunner):
    """apt-get download writes the .deb files; dpkg-deb -x unpacks a Debian-like headers tree."""

    def __init__(self, outputs, download_code=0):
        super().__init__(outputs)
        self.download_code = download_code

    def action(self, argv, cwd=None, env=None, ok_returncodes=(0,), pass_fds=()):
        self.calls.append(list(argv))
        if argv[:2] == ["apt-get", "download"] or "download" in argv:
            if self.download_code:
                raise CommandFailed(argv, cwd, self.download_code)
            for spec in argv[3:]:
                name = spec.split("=")[0]
                with open(os.path.join(cwd, fake_deb(name)), "wb") as f:
                    f.write(b"deb")
            return 0
        return super().action(argv, cwd, env, ok_returncodes, pass_fds)

    def probe(self, argv, cwd=None, env=None, ok_returncodes=(0,), timeout=None, remember=False):
        if argv[:2] == ["dpkg-deb", "-x"]:
            self.calls.append(list(argv))
            root = argv[3]
            if "amd64_" in argv[2] and "headers" in argv[2]:
                tree = os.path.join(root, "usr/src/linux-headers-6.1.0-56-amd64")
                os.makedirs(tree, exist_ok=True)
                with open(os.path.join(tree, "Makefile"), "w") as f:
                    f.write("include /usr/src/linux-headers-6.1.0-56-common/Makefile\n")
            return super().probe(["true"]) if ("true",) in self.outputs else _done(argv)
        return super().probe(argv, cwd, env, ok_returncodes, timeout, remember)


def _done(argv):
    from kbuildguard.run import Completed

    return Completed(list(argv), 0, "", "")


def fake_deb(name):
    return {"linux-headers-6.1.0-56-amd64": "linux-headers-6.1.0-56-amd64_6.1.192-2_amd64.deb",
            "linux-headers-6.1.0-56-common": "linux-headers-6.1.0-56-common_6.1.192-2_all.deb",
            "linux-kbuild-6.1": "linux-kbuild-6.1_6.1.192-3_amd64.deb",
            "linux-image-6.1.0-56-amd64-unsigned": "linux-image-6.1.0-56-amd64-unsigned_6.1.192-2_amd64.deb"}[name]


def _outputs():
    return {SHOW + ("linux-headers-6.1.0-56-amd64",): HEADERS_56, SHOW + REST_SPECS: REST_56}


def test_offline_download_names_the_files_and_the_folder(tmp_path):
    runner = DebRunner(_outputs(), download_code=100)
    with pytest.raises(FetchFailed) as err:
        fetch.fetch(runner, "6.1.0-56-amd64", Source(Family.DEBIAN), str(tmp_path / "kernels"))
    assert err.value.exit_code == 15
    assert "linux-image-6.1.0-56-amd64-unsigned_6.1.192-2_amd64.deb" in err.value.message
    assert "put these files into %s" % (tmp_path / "kernels" / "debs") in err.value.hint
    assert "pool/updates/main/l/linux/linux-kbuild-6.1_6.1.192-3_amd64.deb" in err.value.hint


def test_a_downloaded_file_must_have_the_archives_checksum(tmp_path):
    """apt-get download verifies; a file put there by hand is held to the same SHA256 (here: b'deb' is not it)."""
    runner = DebRunner(_outputs())
    with pytest.raises(FetchFailed) as err:
        fetch.fetch(runner, "6.1.0-56-amd64", Source(Family.DEBIAN), str(tmp_path / "kernels"))
    assert "left no file with SHA256" in err.value.message


def test_unpacked_root_is_fixed_and_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "_has_file", lambda path, sha: os.path.isfile(path))
    cache = str(tmp_path / "kernels")
    runner = DebRunner(_outputs())
    got = fetch.fetch(runner, "6.1.0-56-amd64", Source(Family.DEBIAN), cache)
    assert not got.cached and got.root.startswith(os.path.join(cache, "6.1.0-56-amd64-"))
    with open(os.path.join(got.root, "usr/src/linux-headers-6.1.0-56-amd64/Makefile")) as f:
        assert f.read() == "include %s/usr/src/linux-headers-6.1.0-56-common/Makefile\n" % got.root
    assert [c[:2] for c in runner.calls].count(["dpkg-deb", "-x"]) == 4
    assert os.listdir(os.path.join(cache, "debs")) == []  # the root is kept, the .debs are not
    again = DebRunner(_outputs())
    second = fetch.fetch(again, "6.1.0-56-amd64", Source(Family.DEBIAN), cache)
    assert second.cached and second.root == got.root
    assert not any("download" in c for c in again.calls)


def test_a_changed_package_is_another_cache_folder(tmp_path, monkeypatch):
    """The key is the packages' checksums: a rebuilt kbuild package (a stale ok is a wrong ok) is fetched again."""
    monkeypatch.setattr(fetch, "_has_file", lambda path, sha: os.path.isfile(path))
    cache = str(tmp_path / "kernels")
    first = fetch.fetch(DebRunner(_outputs()), "6.1.0-56-amd64", Source(Family.DEBIAN), cache)
    outputs = _outputs()
    outputs[SHOW + REST_SPECS] = REST_56.replace("98a1baa4", "00000000")
    second = fetch.fetch(DebRunner(outputs), "6.1.0-56-amd64", Source(Family.DEBIAN), cache)
    assert not second.cached and second.root != first.root


def test_unknown_release_says_where_to_look(tmp_path):
    runner = FakeRunner({SHOW + ("linux-headers-9.9.9-1-amd64",): (100, "E: No packages found")})
    with pytest.raises(PackageUnavailable) as err:
        fetch.fetch(runner, "9.9.9-1-amd64", Source(Family.DEBIAN), str(tmp_path))
    assert "the system's apt does not offer linux-headers-9.9.9-1-amd64" in err.value.message
    assert "available:9.9.9-*-amd64" in err.value.hint


def test_bad_release_is_refused_before_any_command(tmp_path):
    with pytest.raises(Exception) as err:
        fetch.fetch(FakeRunner(), "../etc", Source(Family.DEBIAN), str(tmp_path))
    assert "not a kernel release" in str(err.value)


def test_available_globs_the_headers_packages(tmp_path):
    search = ("linux-headers-6.1.0-54-amd64 - Header files\nlinux-headers-6.1.0-57-amd64 - Header files\n"
              "linux-headers-6.1.0-57-cloud-amd64 - Header files\nlinux-headers-6.1.0-57-common - Common\n"
              "linux-headers-6.1.0-57-common-rt - Common\nlinux-headers-6.1.0-57-all-amd64 - All\n"
              "linux-headers-amd64 - meta\n")
    runner = FakeRunner({("apt-cache", "search", "--names-only", "^linux\\-headers\\-"): search})
    assert fetch.available(runner, "6.1.0-*-amd64", Source(Family.DEBIAN), str(tmp_path)) == [
        "6.1.0-57-cloud-amd64", "6.1.0-57-amd64", "6.1.0-54-amd64"]
    assert fetch.available(runner, "6.1.0-[0-9][0-9]-amd64", Source(Family.DEBIAN), str(tmp_path)) == [
        "6.1.0-57-amd64", "6.1.0-54-amd64"]
    # the -common trees (and -all metas) are not kernels (issue 20: `available:6.1.0-57-*` listed them)
    assert fetch.available(runner, "6.1.0-57-*", Source(Family.DEBIAN), str(tmp_path)) == [
        "6.1.0-57-cloud-amd64", "6.1.0-57-amd64"]


def test_ubuntu_base_headers_are_not_kernels(tmp_path):
    search = "linux-headers-6.8.0-45 - base\nlinux-headers-6.8.0-45-generic - flavour\n"
    runner = FakeRunner({("apt-cache", "search", "--names-only", "^linux\\-headers\\-"): search})
    assert fetch.available(runner, "6.8.0-45*", Source(Family.UBUNTU), str(tmp_path)) == ["6.8.0-45-generic"]


def test_zypper_search_finding_nothing_is_an_empty_list_and_other_failures_one_line(tmp_path):
    argv = ("zypper", "--non-interactive", "search", "-s", "--match-exact", "kernel-default-devel")
    code, _, err = _cli(tmp_path, ["fetch", "--list", "--fetch-from", "zypper", "available:*"], {"HOME": str(tmp_path)},
                        FakeRunner({argv: (104, "")}))
    assert code == 15 and "no kernel offered by zypper matches" in err and "Traceback" not in err, err
    code, _, err = _cli(tmp_path, ["fetch", "--list", "--fetch-from", "zypper", "available:*"], {"HOME": str(tmp_path)},
                        FakeRunner({argv: (7, "")}))
    assert code == 15 and "zypper search kernel-default-devel failed (exit 7)" in err and "Traceback" not in err, err
    dnf = ("dnf", "repoquery", "-q", "--qf", "%{version}-%{release}.%{arch}", "kernel-devel")
    code, _, err = _cli(tmp_path, ["fetch", "--list", "--fetch-from", "dnf", "available:*"], {"HOME": str(tmp_path)},
                        FakeRunner({dnf: (1, "")}))
    assert code == 15 and "dnf repoquery kernel-devel failed (exit 1)" in err, err


def test_dnf_asks_repoquery_where_the_packages_are(tmp_path):
    runner = FakeRunner({("dnf", "--installroot", "/r", "--releasever", "9", "repoquery", "-q", "--location",
                          "kernel-devel-5.14.0-503.el9.x86_64", "kernel-core-5.14.0-503.el9.x86_64"):
                         "file:///repo/kernel-devel-5.14.0-503.el9.x86_64.rpm\n"})
    with pytest.raises(FetchFailed) as err:
        fetch.fetch(runner, "5.14.0-503.el9.x86_64", Source(Family.DNF, root="/r", releasever="9"), str(tmp_path))
    assert "dnf knows 1 of them (kernel-devel-5.14.0-503.el9.x86_64.rpm)" in err.value.message
    assert "createrepo_c" in err.value.hint


def test_zypper_download_argv(tmp_path):
    runner = FakeRunner({("zypper", "--non-interactive", "--pkg-cache-dir",
                          str(tmp_path / "5.14.21-150500.55.39-default-download.partial" / "rpms"), "--root", "/r",
                          "download", "kernel-default-devel-5.14.21-150500.55.39", "kernel-devel-5.14.21-150500.55.39",
                          "kernel-default-5.14.21-150500.55.39"): 104})
    with pytest.raises(FetchFailed) as err:
        fetch.fetch(runner, "5.14.21-150500.55.39-default", Source(Family.ZYPPER, root="/r"), str(tmp_path))
    assert "with zypper (exit 104)" in err.value.message


def test_download_url_refuses_other_schemes(tmp_path):
    with pytest.raises(FetchFailed):
        fetch.download_url("ftp://x/y.rpm", str(tmp_path / "y.rpm"), "")


def test_available_without_fetch_is_a_usage_error(tmp_path):
    err = io.StringIO()
    code = cli.main(["check", str(tmp_path), "--kernel", "available:6.1.0-*-amd64"], env={"HOME": str(tmp_path)},
                    stdout=io.StringIO(), stderr=err, runner=lambda c: FakeRunner(), euid=1000, cwd=str(tmp_path))
    assert code == 2 and "add --fetch" in err.getvalue()


def test_fetch_is_not_combined_with_a_sysroot(tmp_path):
    err = io.StringIO()
    code = cli.main(["detect", "--fetch", "--kernel", "6.1.0-57-amd64", "--sysroot", str(tmp_path)],
                    env={"HOME": str(tmp_path)}, stdout=io.StringIO(), stderr=err, runner=lambda c: FakeRunner(),
                    euid=1000, cwd=str(tmp_path))
    assert code == 2 and "not combined with --sysroot" in err.getvalue()


def test_fetch_list_prints_the_matching_releases(tmp_path):
    out = io.StringIO()
    search = "linux-headers-6.1.0-54-amd64 - x\nlinux-headers-6.1.0-57-amd64 - x\n"
    runner = FakeRunner({("apt-cache", "search", "--names-only", "^linux\\-headers\\-"): search})
    code = cli.main(["fetch", "--list", "--json", "--fetch-from", "debian", "available:6.1.0-*-amd64"],
                    env={"HOME": str(tmp_path)}, stdout=out, stderr=io.StringIO(), runner=lambda c: runner,
                    euid=1000, cwd=str(tmp_path))
    assert code == 0 and json.loads(out.getvalue()) == {"from": "debian", "releases": ["6.1.0-57-amd64", "6.1.0-54-amd64"]}


# --- the forecast's rows -----------------------------------------------------------------------------

def _info(crcs, vermagic="6.1.0-56-amd64 SMP preempt mod_unload modversions "):
    return ModuleInfo(path="/m/kdemo.ko", machine="x86_64", arch=None, elf_class=64, big_endian=False, compilers=(), linkers=(), comment=(), modinfo=(("vermagic", vermagic),), layout=None,
                      version_names=tuple(n for n, _ in crcs), version_crcs=tuple(c for _, c in crcs))


def _exports(crcs):
    return {n: Export(c, "vmlinux", False, "", "/k/Module.symvers") for n, c in crcs}


def _report(*failed):
    checks = [Check(name=Gate.SIGNATURE, ok=True, expected="", found="", message="signed by a trusted key")]
    checks += list(failed) or [Check(name=Gate.SYMBOL_VERSIONS, ok=True, expected="", found="", message="every symbol version matches")]
    checks += [Check(name=Gate.SYMBOLS, ok=True, expected="", found="", message="every undefined symbol is exported")]
    return ModuleReport(path="/m/kdemo.ko", verdict=Verdict.MISMATCH if failed else Verdict.OK, checks=tuple(checks), info=None)


MODULE_CRCS = [("module_layout", 0x9060323F), ("_printk", 0x92997ED8), ("__fentry__", 0xBDFB6DBB)]


def test_same_module_symvers_loads_across_abis():
    row = forecast_row("6.1.0-57-amd64", _report(), _info(MODULE_CRCS), _exports(MODULE_CRCS))
    assert row.effect is Effect.OK and row.gate is None and row.weak_modules
    assert "built for 6.1.0-56-amd64, and all 3 of its symbol CRCs are equal here" in row.reason
    assert "6.1.0-55, -56 and -57" in row.reason


def test_cross_abi_refusal_is_module_layout_first():
    kernel = [("module_layout", 0xBCE1A965), ("_printk", 0x11111111), ("__fentry__", 0xBDFB6DBB)]
    bad = Check(name=Gate.SYMBOL_VERSIONS, ok=False, expected="", found="", message="disagrees about version of symbol module_layout", fix="rebuild",
                effect=Effect.REJECTED)
    vermagic = Check(name=Gate.VERMAGIC, ok=False, expected="", found="", message="vermagic flags differ", fix="rebuild", effect=Effect.REJECTED)
    row = forecast_row("6.1.0-54-amd64", _report(vermagic, bad), _info(MODULE_CRCS), _exports(kernel))
    assert row.gate is Gate.SYMBOL_VERSIONS  # check_modstruct_version() comes before check_modinfo()'s vermagic
    assert row.kernel_prints == "disagrees about version of symbol module_layout"
    assert "rebuild needed because the CRC of module_layout changed (module 0x9060323f, kernel 0xbce1a965)" in row.reason
    assert "2 of 3 CRCs differ" in row.reason and not row.weak_modules
    data = forecast_json([row])[0]
    assert data["gate"] == "symbol_versions" and data["rebuild_needed"] and len(data["crc_differences"]) == 2


def test_from_6_4_the_size_check_decides_before_module_layout():
    size = Check(name=Gate.LAYOUT, ok=False, expected="size 0x500, init 0x138, exit 0x4b0 (BTF)", found="size 0x380, init 0x138, exit 0x350",
                 message="struct module layout differs: this kernel (>= 6.4) rejects it", fix="rebuild", effect=Effect.REJECTED)
    bad = Check(name=Gate.SYMBOL_VERSIONS, ok=False, expected="", found="", message="disagrees", fix="rebuild", effect=Effect.REJECTED)
    kernel = [("module_layout", 0x2F9B2B9A), ("_printk", 0x92997ED8), ("__fentry__", 0xBDFB6DBB)]
    row = forecast_row("6.12.117+deb13-amd64", _report(size, bad), _info(MODULE_CRCS), _exports(kernel))
    assert row.gate is Gate.LAYOUT
    assert "section size must match" in row.kernel_prints and "size 0x380 vs size 0x500" in row.reason
    older = forecast_row("6.1.0-54-amd64", _report(size, bad), _info(MODULE_CRCS), _exports(kernel))
    assert older.gate is Gate.SYMBOL_VERSIONS


def test_weak_modules_would_link_what_the_kernel_refuses():
    """Every symbol resolves with an equal CRC (depmod -e -E is silent, weak-modules links it), and the
    kernel refuses it for a gate weak-modules never looks at."""
    unsigned = Check(name=Gate.SIGNATURE, ok=False, expected="signed by a trusted key", found="unsigned",
                     message="unsigned: the kernel enforces signatures (module.sig_enforce=1)", fix="sign it", effect=Effect.REJECTED)
    rep = _report()._replace(verdict=Verdict.MISMATCH, checks=(unsigned,) + _report().checks[1:])
    row = forecast_row("6.1.0-57-amd64", rep, _info(MODULE_CRCS), _exports(MODULE_CRCS))
    assert row.weak_modules and row.gate is Gate.SIGNATURE
    assert row.reason.startswith("rebuild needed because the signer is not trusted there")
    assert "weak-modules (depmod -e -E: every symbol resolves, every CRC equal) would link it" in row.reason
    assert forecast_json([row])[0]["weak_modules_would_link"] is True


def test_check_forecast_over_installed_kernels_with_all(tmp_path):
    """`check --kernel all` is a forecast now (it used to be refused): with no kernel installed, exit 4."""
    err = io.StringIO()
    code = cli.main(["check", str(tmp_path), "--kernel", "all", "--sysroot", str(tmp_path)], env={"HOME": str(tmp_path)},
                    stdout=io.StringIO(), stderr=err, runner=lambda c: FakeRunner(), euid=1000, cwd=str(tmp_path))
    assert code == 4 and "no build tree for kernel (any)" in err.getvalue(), err.getvalue()


def test_reboot_check_without_out_of_tree_modules_says_so(tmp_path):
    (tmp_path / "lib" / "modules" / "6.1.0-57-amd64" / "kernel").mkdir(parents=True)
    err, out = io.StringIO(), io.StringIO()
    code = cli.main(["reboot-check", "6.1.0-57-amd64", "--root", str(tmp_path)], env={"HOME": str(tmp_path)},
                    stdout=out, stderr=err, runner=lambda c: FakeRunner(), euid=0, cwd=str(tmp_path))
    assert code == 0 and "nothing to check" in err.getvalue()


def test_reboot_check_of_a_release_not_installed_is_an_error(tmp_path):
    """issue 22: `reboot-check --blocking 9.9.9-typo` had said "nothing to check" and exited 0."""
    (tmp_path / "lib" / "modules" / "6.1.0-57-amd64").mkdir(parents=True)
    err = io.StringIO()
    code = cli.main(["reboot-check", "--blocking", "9.9.9-typo", "--root", str(tmp_path)], env={"HOME": str(tmp_path)},
                    stdout=io.StringIO(), stderr=err, runner=lambda c: FakeRunner(), euid=0, cwd=str(tmp_path))
    assert code == 4 and "kernel 9.9.9-typo is not installed" in err.getvalue(), err.getvalue()
    assert "nothing to check" not in err.getvalue()


@pytest.mark.parametrize("value", [",", ", ", " , 6.1.0-57-amd64", "6.1.0-57-amd64,"])
def test_an_empty_item_in_a_kernel_list_is_an_error(tmp_path, value):
    """issue 22: `check X.ko --kernel ,` had exited 0 with an empty table; KBUILDGUARD_KERNEL=, too."""
    for argv, env, want in ((["--kernel", value], {}, 2), ([], {"KBUILDGUARD_KERNEL": value}, 12)):
        err = io.StringIO()
        code = cli.main(["check", str(tmp_path / "x.ko")] + argv, env=dict(env, HOME=str(tmp_path)),
                        stdout=io.StringIO(), stderr=err, runner=lambda c: FakeRunner(), euid=1000, cwd=str(tmp_path))
        assert code == want and "has an empty item" in err.getvalue(), (value, env, err.getvalue())
        assert len(err.getvalue().strip().splitlines()) <= 2, err.getvalue()


@pytest.mark.parametrize("hook,first", [("postinst", "run-parts --exit-on-error"), ("kernel-install", "40-dkms.install")])
def test_reboot_check_prints_its_hooks(hook, first):
    out = io.StringIO()
    assert cli.main(["reboot-check", "--print-hook", hook], env={}, stdout=out, stderr=io.StringIO(),
                    runner=lambda c: FakeRunner(), euid=0, cwd="/") == 0
    text = out.getvalue()
    assert text.startswith("#!/bin/sh") and first in text and "unset KBUILDGUARD_HOOK" in text


def test_forecast_refuses_one_vmlinux_for_several_kernels(tmp_path):
    from conftest import make_tree

    make_tree(str(tmp_path / "usr/src/linux-headers-6.1.0-56-amd64"))
    (tmp_path / "m.ko").write_bytes(b"\x7fELF")
    err = io.StringIO()
    code = cli.main(["check", str(tmp_path / "m.ko"), "--sysroot", str(tmp_path), "--kernel", "6.1.0-56-amd64,6.1.0-57-amd64",
                     "--vmlinux", "/boot/vmlinuz"], env={"HOME": str(tmp_path)}, stdout=io.StringIO(), stderr=err,
                    runner=lambda c: FakeRunner(), euid=1000, cwd=str(tmp_path))
    assert code == 2 and "name one kernel's files" in err.getvalue(), err.getvalue()


# --- issue 20 (tester): a damaged cache entry is never used ----------------------------------------

def _fetched(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "_has_file", lambda path, sha: os.path.isfile(path))
    cache = str(tmp_path / "kernels")
    got = fetch.fetch(DebRunner(_outputs()), "6.1.0-56-amd64", Source(Family.DEBIAN), cache)
    return cache, got


def _again(cache):
    runner = DebRunner(_outputs())
    return runner, fetch.fetch(runner, "6.1.0-56-amd64", Source(Family.DEBIAN), cache)


def _same_size_edit(path):
    """Another byte at the same size, the mtime set back: only ctime tells (and then the SHA256)."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(b"X" if first != b"X" else b"Y")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("damage", ["truncate", "same-size", "delete", "extra", "marker", "manifest", "symlink"])
def test_a_damaged_cache_entry_is_fetched_again(tmp_path, monkeypatch, damage):
    cache, got = _fetched(tmp_path, monkeypatch)
    folder = os.path.dirname(got.root)
    makefile = os.path.join(got.root, "usr/src/linux-headers-6.1.0-56-amd64/Makefile")
    if damage == "truncate":
        open(makefile, "w").close()
    elif damage == "same-size":
        _same_size_edit(makefile)
    elif damage == "delete":
        os.unlink(makefile)
    elif damage == "extra":
        with open(os.path.join(got.root, "usr/src/linux-headers-6.1.0-56-amd64/.config"), "w") as f:
            f.write("CONFIG_MODVERSIONS=n\n")
    elif damage == "marker":
        os.unlink(os.path.join(folder, fetch.COMPLETE))
    elif damage == "manifest":
        with open(os.path.join(folder, fetch.FILES), "a") as f:
            f.write(" ")
    else:
        os.symlink("/etc", os.path.join(got.root, "usr/src/linux-headers-6.1.0-56-amd64/scripts"))
    assert fetch.damage(folder) is not None
    runner, second = _again(cache)
    assert not second.cached and "was damaged" in second.note, second
    assert second.as_json()["note"] == second.note
    assert any("download" in c for c in runner.calls)
    assert fetch.damage(folder) is None  # fetched again, whole


def test_an_intact_entry_is_used_and_a_touched_file_is_hashed_once(tmp_path, monkeypatch):
    cache, got = _fetched(tmp_path, monkeypatch)
    folder = os.path.dirname(got.root)
    runner, second = _again(cache)
    assert second.cached and second.note == "" and not any("download" in c for c in runner.calls)
    makefile = os.path.join(got.root, "usr/src/linux-headers-6.1.0-56-amd64/Makefile")
    os.utime(makefile, None)  # stat differs, contents do not: hashed, accepted, stat recorded again
    hashed = []
    real = fetch._sha256_file
    monkeypatch.setattr(fetch, "_sha256_file", lambda p: hashed.append(p) or real(p))
    assert fetch.damage(folder) is None and makefile in hashed
    hashed[:] = []
    assert fetch.damage(folder) is None and makefile not in hashed


def test_a_damaged_entry_that_cannot_be_removed_is_refused(tmp_path, monkeypatch):
    cache, got = _fetched(tmp_path, monkeypatch)
    os.unlink(os.path.join(os.path.dirname(got.root), fetch.COMPLETE))

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fetch.shutil, "rmtree", refuse)
    with pytest.raises(FetchFailed) as err:
        _again(cache)
    assert "is damaged: incomplete" in err.value.message and "cannot be removed" in err.value.message


def test_fetch_list_of_a_plain_release_asks_the_archive(tmp_path, monkeypatch):
    """`fetch --list R` printed R back whether or not the archive has it."""
    monkeypatch.setattr(fetch, "read_system_sources", lambda: ([("", "http://deb.debian.org/debian", "main")], ""))
    search = "linux-headers-6.1.0-54-amd64 - x\nlinux-headers-6.1.0-57-amd64 - x\n"
    runner = FakeRunner({("apt-cache", "search", "--names-only", "^linux\\-headers\\-"): search})
    code, out, _ = _cli(tmp_path, ["fetch", "--list", "--fetch-from", "debian", "6.1.0-57-amd64"], {"HOME": str(tmp_path)}, runner)
    assert code == 0 and out == "6.1.0-57-amd64\n"
    code, out, err = _cli(tmp_path, ["fetch", "--list", "--fetch-from", "debian:bookworm", "6.1.0-99-amd64"],
                          {"HOME": str(tmp_path)}, _NoListsRunner(search))
    assert code == 15 and out == "" and "no kernel offered by debian:bookworm matches '6.1.0-99-amd64'" in err, err


class _NoListsRunner(FakeRunner):
    """A private suite whose lists are there already (no apt-get update)."""

    def __init__(self, search):
        super().__init__()
        self.search = search

    def probe(self, argv, cwd=None, env=None, ok_returncodes=(0,), timeout=None, remember=False):
        from kbuildguard.run import Completed

        self.calls.append(list(argv))
        assert argv[0] == "apt-cache" and "search" in argv, argv
        return Completed(list(argv), 0, self.search, "")

    def action(self, argv, cwd=None, env=None, ok_returncodes=(0,), pass_fds=(), stall=None):
        lists = [a.split("=", 1)[1] for a in argv if a.startswith("Dir::State::Lists=")][0]
        open(os.path.join(lists, "deb_Packages"), "w").close()
        return 0


def test_doctor_names_fetch_from_when_the_sysroots_distribution_cannot_be_told(tmp_path):
    sysroot = tmp_path / "sr"
    (sysroot / "lib/modules").mkdir(parents=True)
    code, _, err = _cli(tmp_path, ["doctor", "--sysroot", str(sysroot), "--kernel", "6.1.0-57-amd64"], {"HOME": str(tmp_path)})
    assert code == 4, err
    assert ("kbuildguard doctor --fetch --kernel 6.1.0-57-amd64 --fetch-from debian|ubuntu|dnf|zypper (in place of "
            "--sysroot; the distribution of %s cannot be told: it has no etc/os-release)" % sysroot) in err, err
    (sysroot / "etc").mkdir()
    (sysroot / "etc/os-release").write_text("ID=debian\nVERSION_ID=12\n")
    code, _, err = _cli(tmp_path, ["doctor", "--sysroot", str(sysroot), "--kernel", "6.1.0-57-amd64"], {"HOME": str(tmp_path)})
    assert code == 4 and "--fetch --kernel 6.1.0-57-amd64 --fetch-from debian (in place of --sysroot)" in err, err


# --- reboot-check (issue 20, tester): not-checked gates shown; a root resolved as a chroot would -------

def test_a_not_checked_gate_is_not_called_loads():
    trust = Check(name=Gate.BTF, ok=True, expected="", found="", message="no BTF of the kernel to check the module BTF against "
                  "(no vmlinux)", effect=Effect.NOT_CHECKED)
    row = forecast_row("6.1.0-57-amd64", _report(trust), _info(MODULE_CRCS), _exports(MODULE_CRCS))
    assert row.effect is Effect.NOT_CHECKED and row.gate is Gate.BTF
    assert row.reason.startswith("not fully checked: no BTF of the kernel") and "loads" not in row.reason.split(";")[0]


def _link(path, target):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    os.symlink(target, str(path))


def test_in_root_resolves_absolute_links_inside_the_root(tmp_path):
    from kbuildguard.commands.rebootcheck import in_root

    root = tmp_path / "root"
    (root / "usr/lib/modules/R/extra").mkdir(parents=True)
    _link(root / "lib", "/usr/lib")  # merged /usr, an absolute link: the host's /usr/lib is not the root's
    assert in_root(str(root), "/lib/modules/R/extra") == str(root / "usr/lib/modules/R/extra")
    _link(root / "usr/lib/modules/R/escape", "../../../../../../../etc")  # '..' stops at the root
    assert in_root(str(root), "/lib/modules/R/escape") == str(root / "etc")
    _link(root / "loop", "/loop")
    with pytest.raises(Exception) as err:
        in_root(str(root), "/loop/x")
    assert "a loop" in str(err.value)
    assert in_root("/", "/lib/modules") == "/lib/modules"


def test_reboot_check_modules_are_the_roots_never_the_hosts(tmp_path):
    """weak-updates links are absolute (-> /lib/modules/OTHER/extra/m.ko): inside --root they name the
    root's file; a link to a module the root does not have is reported, not read from the host."""
    from kbuildguard.commands.rebootcheck import module_paths

    root = tmp_path / "root"
    (root / "usr/lib/modules/OTHER/extra").mkdir(parents=True)
    (root / "usr/lib/modules/OTHER/extra/m.ko").write_bytes(b"\x7fELF")
    (root / "usr/lib/modules/R/updates/dkms").mkdir(parents=True)
    (root / "usr/lib/modules/R/updates/dkms/d.ko").write_bytes(b"\x7fELF")
    _link(root / "lib", "/usr/lib")
    _link(root / "usr/lib/modules/R/weak-updates/m.ko", "/lib/modules/OTHER/extra/m.ko")
    host = "/lib/modules/%s/kernel" % os.uname().release  # exists on the host, not in the root
    _link(root / "usr/lib/modules/R/weak-updates/host.ko", host)
    found = module_paths(str(root), "R")
    assert found.paths == [str(root / "usr/lib/modules/R/updates/dkms/d.ko"), str(root / "usr/lib/modules/OTHER/extra/m.ko")]
    assert found.names[str(root / "usr/lib/modules/OTHER/extra/m.ko")] == "weak-updates/m.ko"
    assert found.dangling == ["weak-updates/host.ko"]
    assert all(p.startswith(str(root)) for p in found.paths)


def test_fetch_says_a_damaged_entry_was_fetched_again(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "_has_file", lambda path, sha: os.path.isfile(path))
    env = {"XDG_CACHE_HOME": str(tmp_path / "c")}
    argv = ["fetch", "--fetch-from", "debian", "6.1.0-56-amd64"]
    code, out, _ = _cli(tmp_path, argv, env, DebRunner(_outputs()))
    root = out.split()[1]
    assert code == 0 and os.path.isdir(root)
    os.unlink(os.path.join(root, "usr/src/linux-headers-6.1.0-56-amd64/Makefile"))
    code, out, err = _cli(tmp_path, argv, env, DebRunner(_outputs()))
    assert code == 0 and "(cached)" not in out
    assert "warning: the cached kernel %s was damaged (1 file(s) missing (usr/src/linux-headers-6.1.0-56-amd64/Makefile))" % (
        os.path.dirname(root)) in err, err


def test_untar_keeps_every_member_inside_the_root(tmp_path):
    """An rpm2archive tarball is a downloaded package: "../x" (which str.lstrip("./") once made "x"),
    an absolute name, "a/../../x", a hard link out, and a file written through a symlink it made
    itself never land outside the root; the kernel's absolute build symlink is kept."""
    import tarfile

    def add(t, name, kind=None, link=""):
        info = tarfile.TarInfo(name)
        if kind:
            info.type, info.linkname = kind, link
            t.addfile(info)
        else:
            info.size = 3
            t.addfile(info, io.BytesIO(b"x\n\n"))

    out = tmp_path / "out"
    out.mkdir()
    archive = str(tmp_path / "a.tgz")
    with tarfile.open(archive, "w:gz") as t:
        add(t, "./usr/src/x/Makefile")
        add(t, "../evil")
        add(t, "/abs-evil")
        add(t, "a/../../evil2")
        add(t, "./lib/modules/R/build", tarfile.SYMTYPE, "/usr/src/x")
        add(t, "./esc", tarfile.SYMTYPE, str(out))
        add(t, "./esc/pwn")
        add(t, "./hl", tarfile.LNKTYPE, "../../etc/passwd")
    root = tmp_path / "root"
    root.mkdir()
    fetch._untar(archive, str(root))
    assert not [n for n in os.listdir(str(tmp_path)) if "evil" in n] and os.listdir(str(out)) == []
    assert not os.path.lexists("/abs-evil")
    assert (root / "usr/src/x/Makefile").read_bytes() == b"x\n\n"
    assert os.readlink(str(root / "lib/modules/R/build")) == "/usr/src/x"
    assert not os.path.lexists(str(root / "hl"))


@pytest.mark.parametrize("value", ["6.1.0-57-amd64 ", " 6.1.0-57-amd64", "6.1.0-57-amd64\t", "6.1.0 -57-amd64",
                                   "6.1.0-57-amd64, 6.1.0 -56-amd64"])
def test_a_blank_in_a_kernel_release_is_an_error(tmp_path, value):
    """issue 22: `--kernel '6.1.0-57-amd64 '` had looked in /lib/modules/6.1.0-57-amd64 /build."""
    for argv, env, want in ((["--kernel", value], {}, 2), ([], {"KBUILDGUARD_KERNEL": value}, 12)):
        err = io.StringIO()
        code = cli.main(["check", str(tmp_path / "x.ko")] + argv, env=dict(env, HOME=str(tmp_path)),
                        stdout=io.StringIO(), stderr=err, runner=lambda c: FakeRunner(), euid=1000, cwd=str(tmp_path))
        assert code == want and "has a blank in it; a kernel release has none" in err.getvalue(), (value, err.getvalue())
        assert len(err.getvalue().strip().splitlines()) <= 2, err.getvalue()
