"""Asking package managers what exists (parsers on captured output, strategies on a fake runner), and
plans for captured systems (sosreport, supportconfig) and kernel lines. Real managers: integration/."""

import json
import os

import pytest

from conftest import FakeRunner, make_tree
from kbuildguard.cli import main
from kbuildguard.provision import Distro, check, for_system, plan, system_for
from kbuildguard.provision.apt import Apt, parse_policy
from kbuildguard.provision.dnf import Dnf, parse_repoquery, spec_matches
from kbuildguard.provision.system import Kind, System, distro_of_kernel
from kbuildguard.provision.zypper import Zypper, parse_search
from kbuildguard.run import Completed
from kbuildguard.target import sysroot as sysroots
from kbuildguard.target.kernel import Selector, resolve

CAPTURED = os.path.join(os.path.dirname(__file__), "data", "captured")

# `apt-cache policy gcc-12 gcc-15 gcc-4.9` on Debian 12 (2026-12): gcc-15 is unknown, and gcc-4.9 is
# taken as a pattern that matches only cross compilers without a candidate.
APT_POLICY = """gcc-12:
  Installed: 12.2.0-14+deb12u1
  Candidate: 12.2.0-14+deb12u1
  Version table:
 *** 12.2.0-14+deb12u1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
        100 /var/lib/dpkg/status
gcc-4.9-arm-linux-gnueabi:
  Installed: (none)
  Candidate: (none)
  Version table:
"""

# `zypper --xmlout ... search --match-exact --type package gcc-toolset-12-gcc gcc-toolset-99-gcc` (zypper 1.14)
ZYPPER_XML = """<?xml version='1.0'?>
<stream>
<progress id="raw-refresh" name="Retrieving repository &apos;kbg local&apos; metadata" done="1"/>
<message type="info">Loading repository data...</message>

<search-result version="0.0">
<solvable-list>
<solvable status="not-installed" name="gcc-toolset-12-gcc" summary="test toolset" kind="package"/>
</solvable-list>
</search-result>
</stream>
"""


def test_apt_policy():
    assert parse_policy(APT_POLICY) == {"gcc-12": True, "gcc-4.9-arm-linux-gnueabi": False}


def test_dnf_specs():
    assert spec_matches("kernel-devel-4.18.0-477.10.1.el8_8.x86_64", "kernel-devel", "4.18.0-477.10.1.el8_8.x86_64")
    assert spec_matches("gcc-toolset-12-gcc", "gcc-toolset-12-gcc", "12.2.1-7.el8.x86_64")
    assert not spec_matches("kernel-devel-4.18.0-513.el8.x86_64", "kernel-devel", "4.18.0-477.10.1.el8_8.x86_64")
    out = "gcc-toolset-12-gcc 12.2.0-1.x86_64\nkernel-devel 4.18.0-477.10.1.el8_8.x86_64\n"
    assert parse_repoquery(out, ["gcc-toolset-12-gcc", "kernel-devel-4.18.0-477.10.1.el8_8.x86_64", "gcc-toolset-13-gcc"]) == {
        "gcc-toolset-12-gcc": True, "kernel-devel-4.18.0-477.10.1.el8_8.x86_64": True, "gcc-toolset-13-gcc": False}


def test_zypper_search():
    assert parse_search(ZYPPER_XML, ["gcc-toolset-12-gcc", "gcc-toolset-99-gcc"]) == {
        "gcc-toolset-12-gcc": True, "gcc-toolset-99-gcc": False}
    assert parse_search("<?xml version='1.0'?>\n<stream>\n<message type=\"info\">No matching items found.</message>\n</stream>",
                        ["gcc12"]) == {"gcc12": False}


class QueryRunner(FakeRunner):
    """Answers one query, whatever temporary folders its argv names, and records it."""

    def __init__(self, answer, returncode=0):
        super().__init__(paths={"apt-cache": "/usr/bin/apt-cache", "dnf": "/usr/bin/dnf", "zypper": "/usr/bin/zypper"})
        self.answer, self.returncode = answer, returncode

    def probe(self, argv, cwd=None, env=None, ok_returncodes=(0,), timeout=None):
        self.calls.append(list(argv))
        return Completed(list(argv), self.returncode, self.answer, "")


def test_apt_strategy(tmp_path):
    lists = tmp_path / "var/lib/apt/lists"
    lists.mkdir(parents=True)
    (lists / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages").write_text("")
    runner = QueryRunner(APT_POLICY)
    answer = Apt().query(runner, ["gcc-12", "gcc-15"], str(tmp_path), "12", {})
    assert answer.available == {"gcc-12": True, "gcc-15": False} and not answer.unverified
    assert runner.calls[0][:2] == ["/usr/bin/apt-cache", "-o"] and "Dir=%s" % tmp_path in runner.calls[0]
    assert runner.calls[0][-3:] == ["policy", "gcc-12", "gcc-15"]


def test_apt_without_lists_is_unverified_not_unavailable(tmp_path):
    runner = QueryRunner(APT_POLICY)
    answer = Apt().query(runner, ["gcc-12"], str(tmp_path), "12", {})
    assert answer.available == {} and "apt-get update" in answer.unverified and runner.calls == []


def test_dnf_strategy_reads_the_roots_repositories_and_writes_nothing_there(tmp_path):
    (tmp_path / "etc/yum.repos.d").mkdir(parents=True)
    runner = QueryRunner("gcc-toolset-12-gcc 12.2.0-1.x86_64\n")
    answer = Dnf().query(runner, ["gcc-toolset-12-gcc", "gcc-toolset-13-gcc"], str(tmp_path), "8", {})
    assert answer.available == {"gcc-toolset-12-gcc": True, "gcc-toolset-13-gcc": False}
    argv = runner.calls[0]
    assert "--installroot" not in argv and "--setopt=reposdir=%s/etc/yum.repos.d" % tmp_path in argv
    assert argv[argv.index("--releasever") + 1] == "8"
    assert sorted(os.listdir(str(tmp_path / "etc"))) == ["yum.repos.d"] and not (tmp_path / "var").exists()


def test_dnf_strategy_without_repositories(tmp_path):
    answer = Dnf().query(QueryRunner(""), ["gcc"], str(tmp_path), "8", {})
    assert "no repository configuration" in answer.unverified


def test_zypper_strategy(tmp_path):
    (tmp_path / "etc/zypp/repos.d").mkdir(parents=True)
    runner = QueryRunner(ZYPPER_XML)
    answer = Zypper().query(runner, ["gcc-toolset-12-gcc", "gcc12"], str(tmp_path), "15", {})
    assert answer.available == {"gcc-toolset-12-gcc": True, "gcc12": False}
    assert runner.calls[0][runner.calls[0].index("--reposd-dir") + 1] == str(tmp_path / "etc/zypp/repos.d")


def test_missing_manager_is_unverified(tmp_path):
    answer = Dnf().query(FakeRunner(), ["gcc"], str(tmp_path), "8", {"PATH": "/nonexistent"})
    assert answer.unverified == "dnf is not on PATH here"


@pytest.mark.parametrize("argv, root, expected", [
    (("dnf", "install", "-y", "gcc"), "/r", ("dnf", "--installroot", "/r", "--releasever", "8", "install", "-y", "gcc")),
    (("yum-config-manager", "--enable", "x"), "/r", ("yum-config-manager", "--installroot", "/r", "--enable", "x")),
    (("zypper", "--non-interactive", "install", "gcc12"), "/r", ("zypper", "--root", "/r", "--non-interactive", "install", "gcc12")),
    (("apt-get", "update"), "/r", ("chroot", "/r", "apt-get", "update")),
])
def test_commands_into_a_build_root(argv, root, expected):
    manager = {"dnf": Dnf(), "yum-config-manager": Dnf(), "zypper": Zypper(), "apt-get": Apt()}[argv[0]]
    assert manager.in_root(argv, root, "8") == expected


def _target(tmp_path, text, release=None):
    if release:
        return resolve(Selector(kernel=release, kernel_dir=make_tree(tmp_path / "t", cc_text=text, gcc_version=None, release=release)))
    return resolve(Selector(kernel_dir=make_tree(tmp_path / "t", cc_text=text, gcc_version=None)))


def test_gcc4_kernel_plans_gcc_4_9_never_gcc_4(tmp_path):
    target = _target(tmp_path, "gcc-4.9 (Debian 4.9.2-10+deb8u1) 4.9.2")
    assert plan(target, Distro("debian", (), "12", "Debian 12", "x86_64")).packages[0] == "gcc-4.9"
    assert plan(target, Distro("sles", ("suse",), "12.5", "SLES 12", "x86_64")).packages[0] == "gcc49"


def test_unavailable_package_names_where_it_is(tmp_path):
    target = _target(tmp_path, "gcc-15 (Debian 15.2.0-4) 15.2.0")
    lists = tmp_path / "var/lib/apt/lists"
    lists.mkdir(parents=True)
    (lists / "x_Packages").write_text("")
    distro = Distro("debian", (), "12", "Debian 12", "x86_64")
    system = System(Kind.BUILD_ROOT, str(tmp_path), distro, "the build root %s" % tmp_path)
    p = check(QueryRunner(APT_POLICY), for_system(plan(target, distro), system), system, {})
    assert p.unavailable == ("gcc-15",) and p.asked.startswith("apt-cache policy")
    assert "https://packages.debian.org/search?keywords=gcc-15" in p.checked[0].elsewhere
    assert p.commands[-1][:3] == ("chroot", str(tmp_path), "apt-get")


def test_distribution_of_a_kernel_line(tmp_path):
    def distro(text, release):
        return distro_of_kernel(_target(tmp_path / release, text, release))

    assert distro("gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-20)", "4.18.0-513.11.1.lve.el8.x86_64")[:3] == ("rhel", ("rhel", "fedora"), "8")
    assert distro("gcc10-gcc (GCC) 10.3.1 20210422 (Red Hat 10.3.1-1)", "5.10.147-133.644.amzn2.x86_64")[0:3:2] == ("amzn", "2")
    assert distro("gcc-12 (Debian 12.2.0-14) 12.2.0", "6.1.0-9-amd64")[0] == "debian"
    assert distro("gcc (SUSE Linux) 7.5.0", "5.14.21-150500.55.39-default")[0] == "sles"
    assert distro("gcc (GCC) 14.1.1", "6.9.7-arch1-1") is None


def _setup_json(capsys, *argv):
    code = main(["setup", "--dry-run", "--json"] + list(argv), env={"PATH": "/nonexistent"})
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out else None), err


def test_el8_kernel_line_is_planned_for_el8_unverified(tmp_path, capsys):
    line = tmp_path / "v.txt"
    line.write_text("[    0.000000] Linux version 4.18.0-513.11.1.lve.el8.x86_64 (mockbuild@build.cloudlinux.com) "
                    "(gcc version 8.5.0 20210514 (Red Hat 8.5.0-20) (GCC)) #1 SMP Thu Jan 18 16:21:02 UTC 2024\n")
    code, data, err = _setup_json(capsys, "--proc-version-file", str(line))
    assert code == 0, err
    assert data["commands"] == [["dnf", "install", "-y", "gcc", "kernel-devel-4.18.0-513.11.1.lve.el8.x86_64"]]
    assert data["system"] == "the machine of %s" % line and data["unverified"]
    assert "CloudLinux" in data["packages"][1]["elsewhere"]


@pytest.mark.parametrize("host,distro,first", [
    ("aarch64-01.bsys.centos.org", "CentOS 7", ["yum", "install", "-y", "centos-release-scl"]),
    ("x86-vm-26.build.eng.bos.redhat.com", "Enterprise Linux 7", None),
])
def test_an_el7_kernel_built_on_centos_org_is_planned_as_centos(tmp_path, capsys, host, distro, first):
    """issue 22 (tester): a pasted CentOS 7 AltArch banner got RHEL's SCL plan (yum-config-manager
    --enable rhel-server-rhscl-7-rpms); CentOS builds on *.centos.org: centos-release-scl and the
    AltArch vault path, as the --sysroot path plans."""
    line = tmp_path / "v.txt"
    line.write_text("Linux version 4.18.0-348.20.1.el7.aarch64 (mockbuild@%s) (gcc version 8.3.1 20190311 "
                    "(Red Hat 8.3.1-3) (GCC)) #1 SMP Wed Apr 13 20:57:50 UTC 2022\n" % host)
    code, data, err = _setup_json(capsys, "--proc-version-file", str(line))
    assert code == 0, err
    assert data["distribution"]["name"].startswith(distro), data["distribution"]
    if first is not None:
        assert data["commands"][0] == first
        assert "https://vault.centos.org/altarch/7.9.2009/sclo/aarch64/rh/" in json.dumps(data["notes"])
    else:
        assert "rhscl" in json.dumps(data["commands"]) and "centos-release-scl" not in json.dumps(data)


@pytest.mark.parametrize("name, layout, release, compiler, commands", [
    ("sosreport-db01-rhel8", sysroots.Layout.SOSREPORT, "4.18.0-513.11.1.el8_9.x86_64", "gcc 8.5.0 (Red Hat 8.5.0-20)",
     [["dnf", "install", "-y", "gcc", "kernel-devel-4.18.0-513.11.1.el8_9.x86_64"]]),
    ("sosreport-app02-rocky8", sysroots.Layout.SOSREPORT, "4.18.0-477.10.1.el8_8.x86_64", "gcc 8.5.0 (Red Hat 8.5.0-18)",
     [["dnf", "install", "-y", "gcc", "kernel-devel-4.18.0-477.10.1.el8_8.x86_64"]]),
    ("scc_sles01_240115_1000", sysroots.Layout.SUPPORTCONFIG, "5.14.21-150500.55.39-default", "gcc 7.5.0 (SUSE Linux)",
     [["zypper", "--non-interactive", "refresh"], ["zypper", "--non-interactive", "install", "gcc7", "kernel-default-devel"]]),
])
def test_plan_for_a_captured_system(name, layout, release, compiler, commands, capsys):
    root = os.path.join(CAPTURED, name)
    assert sysroots.layout_of(root) is layout
    code, data, err = _setup_json(capsys, "--sysroot", root)
    assert code == 0, err
    assert data["kernel"]["release"] == release and data["kernel"]["compiler"] == compiler
    assert data["commands"] == commands  # to run on that machine: nothing points into the capture
    assert data["system"] == "the %s %s" % (layout, root)
    assert all(p["available"] is None for p in data["packages"]) and "cannot be asked from here" in data["unverified"]


def test_captured_system_is_never_installed_into(capsys):
    code = main(["setup", "--yes", "--sysroot", os.path.join(CAPTURED, "sosreport-db01-rhel8")], env={"PATH": "/nonexistent"})
    assert code == 2
    assert "cannot install there" in capsys.readouterr()[1]


def test_sosreport_with_only_uname_names_the_release(capsys):
    code, data, err = _setup_json(capsys, "--sysroot", os.path.join(CAPTURED, "sosreport-web03-nokernelline"))
    assert code == 4 and "5.14.0-362.8.1.el9_3.x86_64" in err


def test_supportconfig_distribution_and_packages():
    root = os.path.join(CAPTURED, "scc_sles01_240115_1000")
    assert "/bin/uname -a" in sysroots.sections(open(os.path.join(root, "basic-environment.txt")).read())
    system = system_for(resolve(Selector(sysroot=root)), root, None)
    assert (system.kind, system.distro.id, system.distro.major) == (Kind.CAPTURED, "sles", "15")
    assert sysroots.installed_packages(os.path.join(CAPTURED, "sosreport-db01-rhel8"), sysroots.Layout.SOSREPORT) == [
        "bash", "gcc", "kernel", "kernel-core"]
