"""Install plans per distribution (exact argv), and consent. Stand-in execution is in integration/."""

import io
import json
import os

import pytest

from conftest import FakeRunner, context, make_tree
from kbuildguard.cli import main
from kbuildguard.console import Console
from kbuildguard.errors import ConsentRequired, InstallFailed, NoMatchingCompiler
from kbuildguard.provision import Distro, detect_distro, execute, plan
from kbuildguard.run import CommandFailed
from kbuildguard.target.kernel import Selector, resolve

SYSROOTS = os.path.join(os.path.dirname(__file__), "data", "sysroots")

# What `setup --sysroot ROOT` runs: into the build root, from the repositories configured in it.
PLANS = {
    "centos-7.8-aarch64": [["yum", "--installroot", "ROOT", "--releasever", "7", "install", "-y", "centos-release-scl"],
                           ["yum", "--installroot", "ROOT", "--releasever", "7", "install", "-y", "devtoolset-8-gcc",
                            "kernel-devel-4.18.0-147.8.1.el7.aarch64"]],
    "centos-7.9-x86_64": [["yum", "--installroot", "ROOT", "--releasever", "7", "install", "-y", "gcc",
                           "kernel-devel-3.10.0-1160.el7.x86_64"]],
    "rocky-8": [["dnf", "--installroot", "ROOT", "--releasever", "8", "install", "-y", "gcc",
                 "kernel-devel-4.18.0-477.10.1.el8_8.x86_64"]],
    "rhel-9": [["dnf", "--installroot", "ROOT", "--releasever", "9", "install", "-y", "gcc",
                "kernel-devel-5.14.0-162.6.1.el9_1.x86_64"]],
    "oracle-8-uek7": [["dnf", "--installroot", "ROOT", "--releasever", "8", "install", "-y", "gcc-toolset-11-gcc",
                       "kernel-uek-devel-5.15.0-206.153.7.1.el8uek.x86_64"]],
    "amazon-2-5.10": [["yum", "--installroot", "ROOT", "--releasever", "2", "install", "-y", "gcc10",
                       "kernel-devel-5.10.147-133.644.amzn2.x86_64"]],
    "ubuntu-22.04-hwe": [["chroot", "ROOT", "apt-get", "update"],
                         ["chroot", "ROOT", "apt-get", "install", "-y", "--no-install-recommends", "gcc-12",
                          "linux-headers-6.5.0-35-generic"]],
    "debian-11": [["chroot", "ROOT", "apt-get", "update"],
                  ["chroot", "ROOT", "apt-get", "install", "-y", "--no-install-recommends", "gcc-10",
                   "linux-headers-5.10.0-19-amd64"]],
    "opensuse-leap-15": [["zypper", "--root", "ROOT", "--non-interactive", "refresh"],
                         ["zypper", "--root", "ROOT", "--non-interactive", "install", "gcc7", "kernel-default-devel"]],
}


def plan_in(name, root=None):
    """PLANS[name] with ROOT replaced by the sysroot's path."""
    root = root or os.path.join(SYSROOTS, name)
    return [[root if a == "ROOT" else a for a in cmd] for cmd in PLANS[name]]


@pytest.mark.parametrize("name", sorted(PLANS))
def test_setup_dry_run_json_plans(name, capsys):
    code = main(["setup", "--dry-run", "--json", "--sysroot", os.path.join(SYSROOTS, name)], env={"PATH": "/nonexistent"})
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["commands"] == plan_in(name)
    names = [p["name"] for p in data["packages"]]
    assert names == PLANS[name][-1][len(PLANS[name][-1]) - len(names):]
    # no package manager on PATH: nothing could be asked, and the plan says so
    assert all(p["available"] is None for p in data["packages"]) and data["unavailable"] == []
    assert data["unverified"] and data["verified_by"] is None
    assert all(isinstance(n, str) for n in data["notes"])


def test_centos7_notes_vault_and_vendor_release(capsys):
    main(["setup", "--dry-run", "--json", "--sysroot", os.path.join(SYSROOTS, "centos-7.8-aarch64")], env={"PATH": ""})
    data = json.loads(capsys.readouterr()[0])
    notes = " ".join(data["notes"])
    assert "vault.centos.org" in notes and "Red Hat 8.3.1-3" in notes
    assert data["distribution"]["arch"] == "aarch64"


def test_distro_from_sysroot_not_host():
    d = detect_distro(os.path.join(SYSROOTS, "oracle-8-uek7"))
    assert (d.id, d.major, d.like) == ("oracle", "8", ("fedora",))  # distro normalises ol


def _target(tmp_path, text):
    return resolve(Selector(kernel_dir=make_tree(tmp_path / "t", cc_text=text, gcc_version=None)))


def test_no_package_provides_it(tmp_path):
    target = _target(tmp_path, "gcc (GCC) 13.2.1 20231205 (Red Hat 13.2.1-6)")
    with pytest.raises(NoMatchingCompiler):
        plan(target, Distro("centos", ("rhel",), "7", "CentOS 7", "x86_64"))


def test_unknown_distribution(tmp_path):
    with pytest.raises(NoMatchingCompiler):
        plan(_target(tmp_path, "gcc-12 (Debian 12.2.0-14) 12.2.0"), Distro("haiku", (), "1", "Haiku", "x86_64"))


def test_clang_kernel_on_debian(tmp_path):
    p = plan(_target(tmp_path, "Debian clang version 16.0.6 (15~deb12u1)"), Distro("debian", (), "12", "Debian 12", "x86_64"))
    assert p.packages == ("clang-16", "lld-16")


def _plan(tmp_path):
    return plan(_target(tmp_path, "gcc-11 (Debian 11.3.0-12) 11.3.0"), Distro("debian", (), "12", "Debian 12", "x86_64"))


def test_no_terminal_and_no_yes_installs_nothing(tmp_path, monkeypatch):
    runner = FakeRunner()
    with pytest.raises(ConsentRequired) as exc:
        execute(context(runner, euid=0, interactive=False), _plan(tmp_path), yes=False, dry_run=False)
    assert runner.calls == []
    assert "apt-get install -y --no-install-recommends gcc-11" in exc.value.hint


def test_non_root_gets_the_command_never_sudo(tmp_path, monkeypatch):
    runner = FakeRunner()
    with pytest.raises(ConsentRequired) as exc:
        execute(context(runner, euid=1000), _plan(tmp_path), yes=True, dry_run=False)
    assert runner.calls == [] and "run as root" in exc.value.hint and "sudo" not in exc.value.hint


def test_failing_package_manager_claims_nothing(tmp_path, monkeypatch):
    p = _plan(tmp_path)
    runner = FakeRunner({tuple(p.commands[0]): CommandFailed(list(p.commands[0]), None, 100, "E: Could not resolve host")})
    with pytest.raises(InstallFailed) as exc:
        execute(context(runner, euid=0), p, yes=True, dry_run=False)
    assert "may not be installed" in exc.value.message
    assert len(runner.calls) == 1  # stopped at the first failure


def test_consent_asked_on_a_terminal(tmp_path):
    p = _plan(tmp_path)
    declined = FakeRunner()
    with pytest.raises(ConsentRequired) as exc:
        execute(context(declined, euid=0, interactive=True, stdin_text="n\n"), p, yes=False, dry_run=False)
    assert "declined" in exc.value.message and declined.calls == []
    accepted = FakeRunner({tuple(c): 0 for c in p.commands})
    assert execute(context(accepted, euid=0, interactive=True, stdin_text="y\n"), p, yes=False, dry_run=False)
    assert accepted.calls == [list(c) for c in p.commands]
    assert execute(context(FakeRunner(), euid=0), p, yes=True, dry_run=True) is False  # a dry run runs nothing


def test_install_that_still_does_not_match(tmp_path):
    from kbuildguard.errors import InstallFailed as Failed
    from kbuildguard.provision import reselect
    from kbuildguard.toolchain import MatchLevel

    target = _target(tmp_path, "gcc-11 (Debian 11.3.0-12) 11.3.0")
    with pytest.raises(Failed) as exc:
        reselect(context(FakeRunner(), env={"PATH": "/nonexistent"}), target, MatchLevel.VERSION, _plan(tmp_path),
                 str(tmp_path / "opt"), root=str(tmp_path / "root"))
    assert "still no compiler matches" in exc.value.message


def test_centos7_altarch_scl_vault_path(capsys):
    """Issue 22: the seed's CentOS 7 aarch64 machine gets the AltArch vault (/altarch/), not /centos/."""
    main(["setup", "--dry-run", "--json", "--sysroot", os.path.join(SYSROOTS, "centos-7.8-aarch64")], env={"PATH": ""})
    notes = " ".join(json.loads(capsys.readouterr()[0])["notes"])
    assert "baseurl=https://vault.centos.org/altarch/7.9.2009/sclo/aarch64/rh/" in notes
    assert "/centos/7/sclo" not in notes and "$basearch" not in notes


@pytest.mark.parametrize("arch,expected", [
    ("x86_64", "baseurl=https://vault.centos.org/7.9.2009/sclo/x86_64/rh/"),
    ("aarch64", "baseurl=https://vault.centos.org/altarch/7.9.2009/sclo/aarch64/rh/"),
    ("ppc64le", "baseurl=https://vault.centos.org/altarch/7.9.2009/sclo/ppc64le/rh/"),
])
def test_centos7_scl_vault_per_arch(tmp_path, arch, expected):
    target = _target(tmp_path, "gcc (GCC) 8.3.1 20190311 (Red Hat 8.3.1-3)")
    p = plan(target, Distro("centos", ("rhel",), "7", "CentOS 7", arch))
    notes = " ".join(p.notes)
    assert expected in notes
    # the package's "elsewhere" (said when the repositories do not offer it) names the same place
    assert expected in p.checked[0].elsewhere


@pytest.mark.parametrize("arch,basearch", [("ppc64", "ppc64"), ("i686", "i386"), ("armv7l", "armhfp")])
def test_centos7_altarch_without_scl_gets_no_devtoolset_plan(tmp_path, arch, basearch):
    """Issue 22: setup --dry-run planned devtoolset-8 where its own note said there is none (exit 15)."""
    from kbuildguard.errors import PackageUnavailable

    target = _target(tmp_path, "gcc (GCC) 8.3.1 20190311 (Red Hat 8.3.1-3)")
    with pytest.raises(PackageUnavailable) as exc:
        plan(target, Distro("centos", ("rhel",), "7", "CentOS 7", arch))
    assert exc.value.message == ("devtoolset-8-gcc: no such package for RHEL/CentOS 7 on %s: it is a Software "
                                 "Collection, and that architecture has none" % basearch)
    assert "AltArch %s has no Software Collections" % basearch in exc.value.hint
    assert PackageUnavailable.exit_code == 15


def test_centos7_system_gcc_is_still_planned_without_scl(tmp_path):
    """gcc 4.8.5 (CentOS 7's own) needs no Software Collection: planned on armhfp too."""
    target = _target(tmp_path, "gcc version 4.8.5 20150623 (Red Hat 4.8.5-44) (GCC)")
    assert "gcc" in plan(target, Distro("centos", ("rhel",), "7", "CentOS 7", "armv7l")).packages


def test_centos7_tree_vault_per_arch(tmp_path):
    target = _target(tmp_path, "gcc (GCC) 8.3.1 20190311 (Red Hat 8.3.1-3)")
    for arch, where in [("x86_64", "https://vault.centos.org/7.9.2009/updates/x86_64/Packages/"),
                        ("aarch64", "https://vault.centos.org/altarch/7.9.2009/updates/aarch64/Packages/")]:
        p = plan(target, Distro("centos", ("rhel",), "7", "CentOS 7", arch), need_tree=True)
        assert where in p.checked[-1].elsewhere


# --- another package manager holds the lock (issue 22) ---------------------------------------------

APT_LISTS_LOCKED = CommandFailed(["apt-get", "update"], None, 100, output=(
    "Reading package lists...\nE: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)\n"
    "E: Unable to lock directory /var/lib/apt/lists/\n"))


def _lock_plan(tmp_path):
    return _plan(tmp_path)


class _Clock:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds

    def __call__(self):
        return self.now


def test_apt_lists_lock_is_waited_for_then_proceeds(tmp_path, capsys):
    from kbuildguard.provision import lock

    runner = FakeRunner({("apt-get", "update"): [APT_LISTS_LOCKED, APT_LISTS_LOCKED, 0],
                         ("apt-get", "install", "-y", "--no-install-recommends", "gcc-11"): 0})
    runner.console = Console(stream=io.StringIO(), color=False)
    ctx = context(runner, euid=0)
    clock = _Clock()
    for cmd in _lock_plan(tmp_path).commands:
        lock.run_waiting(ctx, cmd, "apt-get", wait=60, retry=10, sleep=clock.sleep, clock=clock)
    assert runner.calls == [["apt-get", "update"]] * 3 + [["apt-get", "install", "-y", "--no-install-recommends", "gcc-11"]]
    assert clock.slept == [10, 10]
    err = runner.console.stream.getvalue()
    assert "another package manager holds the lock (E: Could not get lock /var/lib/apt/lists/lock" in err
    assert "up to 60 s" in err


def test_lock_held_too_long_is_a_clear_error(tmp_path):
    from kbuildguard.provision import lock

    runner = FakeRunner({("apt-get", "update"): [APT_LISTS_LOCKED]})
    clock = _Clock()
    with pytest.raises(InstallFailed) as exc:
        lock.run_waiting(context(runner, euid=0), ("apt-get", "update"), "apt-get", wait=30, retry=10,
                         sleep=clock.sleep, clock=clock)
    assert "still holds the lock after 30 s" in exc.value.message and "nothing was installed" in exc.value.message
    assert len(runner.calls) == 4


def test_other_failures_are_not_waited_for():
    from kbuildguard.provision import lock

    broken = CommandFailed(["apt-get", "update"], None, 100, output="E: The repository 'http://x bookworm Release' does not have a Release file.\n")
    runner = FakeRunner({("apt-get", "update"): [broken]})
    with pytest.raises(CommandFailed):
        lock.run_waiting(context(runner, euid=0), ("apt-get", "update"), "apt-get", sleep=lambda s: None)
    assert len(runner.calls) == 1


@pytest.mark.parametrize("manager,status,output,locked", [
    ("apt-get", 100, "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 77 (unattended-upgr)", True),
    ("apt-get", 100, "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?", True),
    ("apt-get", 100, "E: Unable to locate package gcc-8", False),
    ("apt-get", 1, "E: Could not get lock /var/lib/apt/lists/lock", False),  # the status must say so too
    ("zypper", 7, "System management is locked by the application with pid 1234 (zypper).\nClose this application before trying again.", True),
    ("zypper", 104, "No provider of 'gcc99' found.", False),
    ("dnf", 1, "Failed to obtain rpm transaction lock. Another transaction is in progress.", True),  # dnf5
    ("dnf", 1, "Error: Unable to find a match: gcc-toolset-99-gcc", False),
    ("yum", 1, "No package devtoolset-99-gcc available.", False),
])
def test_lock_failures_are_told_by_status_and_text(manager, status, output, locked):
    from kbuildguard.provision.lock import is_lock_failure

    assert is_lock_failure(manager, CommandFailed([manager], None, status, output=output)) is locked


def test_dnf4_endless_wait_is_bounded_and_zypper_told_how_long():
    from kbuildguard.provision.lock import locked_env, run_waiting

    seen = []

    class Recording(FakeRunner):
        def action(self, argv, cwd=None, env=None, ok_returncodes=(0,), pass_fds=(), stall=None):
            seen.append((argv[0], stall, dict(env)))
            return 0

    run_waiting(context(Recording(), euid=0, env={"LANG": "de_DE.UTF-8"}), ("dnf", "install", "-y", "gcc"), "dnf", wait=120)
    name, stall, env = seen[0]
    assert stall is not None and 119 < stall.seconds <= 120 and stall.pattern.search(b"Waiting for process with pid 812 to finish.")
    assert env["LC_ALL"] == "C" and env["LANG"] == "de_DE.UTF-8"
    assert locked_env("zypper", {}, 95.5)["ZYPP_LOCK_TIMEOUT"] == "95"
    # a stalled dnf is a lock failure whatever its status
    from kbuildguard.provision.lock import is_lock_failure
    assert is_lock_failure("dnf", CommandFailed(["dnf"], None, -15, stalled=True))
