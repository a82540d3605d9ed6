"""The install catalogue is parsed once into typed records; a broken one is one bad-input line.

plan() is tested here on a small catalogue of our own, one distribution per case of choose_compiler:
the distribution's own gcc, a package per major (with a repository to enable first), one clang for
every kernel, and nothing that provides it.
"""

import copy
import json
import pkgutil

import pytest

from conftest import make_tree
from kbuildguard.errors import BadInput, NoMatchingCompiler
from kbuildguard.provision.plan import (
    Catalogue,
    CompilerChoice,
    Distro,
    Legacy,
    ManagerArgv,
    Package,
    Role,
    ToolPackages,
    distribution_for,
    load_catalogue,
    packaged_catalogue,
    parse_catalogue,
    plan,
    read_catalogue,
)
from kbuildguard.target.kernel import Selector, resolve

SMALL = {
    "distributions": [
        {"name": "Old EL", "match": {"ids": ["rhel", "centos"], "versions": ["7"]}, "manager": "yum",
         "system_gcc": {"major": 4, "packages": ["gcc"], "path": "/usr/bin/gcc"},
         "gcc": {"range": [7, 11], "packages": ["devtoolset-{N}-gcc"], "path": "/opt/rh/devtoolset-{N}/root/usr/bin/gcc",
                 "repo_setup": {"centos": [["yum", "install", "-y", "centos-release-scl"]]},
                 "notes": {"centos": "vault for {N}", "fedora": "never for centos"}},
         "clang": {"range": [], "packages": [], "path": ""},
         "tree": ["kernel-devel-{release}"], "tree_uek": ["kernel-uek-devel-{release}"],
         "elsewhere": {"compiler": {"*": "{package} is in the SCL"}}},
        {"name": "One clang", "match": {"ids": ["fedora"], "versions": []}, "manager": "dnf",
         "gcc": {"range": [], "packages": [], "path": ""},
         "clang": {"range": [], "packages": ["clang", "lld"], "path": "/usr/bin/clang"},
         "tree": ["kernel-devel-{release}"]},
        {"name": "Debianish", "match": {"ids": ["debian"], "versions": []}, "manager": "apt-get",
         "gcc": {"range": [3, 99], "packages": ["gcc-{N}"], "path": "/usr/bin/gcc-{N}",
                 "legacy": {"below": 5, "packages": ["gcc-{N}.{M}"], "path": "/usr/bin/gcc-{N}.{M}"}},
         "clang": {"range": [7, 99], "packages": ["clang-{N}"], "path": "/usr/bin/clang-{N}"},
         "tree": ["linux-headers-{release}"]},
    ],
    "managers": {"yum": {"update": None, "install": ["yum", "install", "-y"]},
                 "dnf": {"update": None, "install": ["dnf", "install", "-y"]},
                 "apt-get": {"update": ["apt-get", "update"], "install": ["apt-get", "install", "-y"]}},
}

CENTOS7 = Distro("centos", ("rhel", "fedora"), "7.9", "CentOS 7", "x86_64")
FEDORA = Distro("fedora", (), "40", "Fedora 40", "x86_64")
DEBIAN = Distro("debian", (), "12", "Debian 12", "x86_64")


def _target(tmp_path, text, release="6.1.0-56-amd64"):
    return resolve(Selector(kernel_dir=make_tree(tmp_path / "t", release=release, cc_text=text, gcc_version=None)))


def test_the_packaged_catalogue_parses():
    catalogue = read_catalogue()
    raw = load_catalogue()
    assert len(catalogue.distributions) == len(raw["distributions"])
    debian = distribution_for(DEBIAN, catalogue)
    assert debian is not None and debian.manager == "apt-get"
    assert debian.gcc.legacy == Legacy(5, ("gcc-{N}.{M}",), "/usr/bin/gcc-{N}.{M}")
    assert catalogue.manager("apt-get").update == ("apt-get", "update")
    assert catalogue.manager("yum") == ManagerArgv((), ("yum", "install", "-y"))
    el7 = distribution_for(CENTOS7, catalogue)
    assert el7 is not None and el7.system_gcc is not None and el7.system_gcc.major == 4
    assert dict(el7.gcc.repo_setup)["centos"] == (("yum", "install", "-y", "centos-release-scl"),)


def test_the_packaged_tools_are_typed():
    tools = read_catalogue().tools
    assert tools.packages("pahole", ("debian",), "apt-get") == ("dwarves",)
    assert tools.packages("host_programs", ("debian",), "apt-get") == ("linux-kbuild-{series}",)  # by_id wins
    assert tools.packages("host_programs", ("ubuntu", "debian"), "apt-get") == ("linux-kbuild-{series}",)
    assert tools.packages("resolve_btfids", ("debian",), "apt-get") == ()
    assert tools.packages("lld", ("fedora",), "dnf") == ("lld",)
    assert tools.packages("pahole", ("haiku",), "") == ()


def test_the_packaged_catalogue_is_read_once(monkeypatch):
    packaged_catalogue.cache_clear()
    reads = []
    real = pkgutil.get_data
    monkeypatch.setattr(pkgutil, "get_data", lambda package, name: reads.append(name) or real(package, name))
    first = packaged_catalogue()
    assert packaged_catalogue() is first and reads == ["data/catalogue.json"]
    packaged_catalogue.cache_clear()


def test_matching_by_own_id_before_like():
    catalogue = parse_catalogue(SMALL)
    # centos 7 is like fedora, but its own ID names an entry first
    entry = distribution_for(CENTOS7, catalogue)
    assert entry is not None and entry.name == "Old EL"
    # a version outside the entry's list does not match by that entry
    entry = distribution_for(Distro("centos", ("fedora",), "8", "CentOS 8", "x86_64"), catalogue)
    assert entry is not None and entry.name == "One clang"


def test_case_system_gcc(tmp_path):
    p = plan(_target(tmp_path, "gcc version 4.8.5 20150623 (Red Hat 4.8.5-44) (GCC)"), CENTOS7, need_tree=True,
             catalogue=parse_catalogue(SMALL))
    assert p.commands == (("yum", "install", "-y", "gcc", "kernel-devel-6.1.0-56-amd64"),)
    assert p.compiler_path == "/usr/bin/gcc" and "vault for 4" in p.notes


def test_case_a_package_per_major_with_repository_setup(tmp_path):
    p = plan(_target(tmp_path, "gcc (GCC) 8.3.1 20190311 (Red Hat 8.3.1-3)"), CENTOS7, need_tree=True,
             scl_root="/x/opt/rh", catalogue=parse_catalogue(SMALL))
    assert p.commands == (("yum", "install", "-y", "centos-release-scl"),
                          ("yum", "install", "-y", "devtoolset-8-gcc", "kernel-devel-6.1.0-56-amd64"))
    assert p.compiler_path == "/x/opt/rh/devtoolset-8/root/usr/bin/gcc"
    assert p.checked == (Package("devtoolset-8-gcc", Role.COMPILER, None, "devtoolset-8-gcc is in the SCL"),
                         Package("kernel-devel-6.1.0-56-amd64", Role.TREE, None, ""))
    assert p.notes[0] == "vault for 8" and "Red Hat 8.3.1-3" in p.notes[-1]
    assert "never for centos" in p.notes  # the note keyed by an ID centos is like (fedora)


def test_case_legacy_series_and_update_first(tmp_path):
    p = plan(_target(tmp_path, "gcc-4.9 (Debian 4.9.2-10) 4.9.2"), DEBIAN, catalogue=parse_catalogue(SMALL))
    assert p.commands == (("apt-get", "update"), ("apt-get", "install", "-y", "gcc-4.9"))
    assert p.compiler_path == "/usr/bin/gcc-4.9"


def test_case_one_clang_for_every_kernel(tmp_path):
    p = plan(_target(tmp_path, "clang version 17.0.6 (Fedora 17.0.6-2.fc40)"), FEDORA, catalogue=parse_catalogue(SMALL))
    assert p.packages == ("clang", "lld")
    assert p.notes[0] == "One clang ships one clang; the kernel needs clang 17.0.6"


def test_case_nothing_provides_it(tmp_path):
    with pytest.raises(NoMatchingCompiler) as exc:
        plan(_target(tmp_path, "gcc (GCC) 13.2.1 20231205 (Red Hat 13.2.1-6)"), CENTOS7, catalogue=parse_catalogue(SMALL))
    assert "no package of Old EL provides gcc 13" in exc.value.message
    assert exc.value.details == ["vault for 13", "never for centos"]
    with pytest.raises(NoMatchingCompiler):  # gcc has no single-package case
        plan(_target(tmp_path, "gcc (GCC) 14.1.1"), FEDORA, catalogue=parse_catalogue(SMALL))


def test_tree_only_plan_and_empty_plan(tmp_path):
    target = _target(tmp_path, "gcc-12 (Debian 12.2.0-14) 12.2.0")
    p = plan(target, DEBIAN, need_compiler=False, need_tree=True, catalogue=parse_catalogue(SMALL))
    assert p.commands == (("apt-get", "update"), ("apt-get", "install", "-y", "linux-headers-6.1.0-56-amd64"))
    empty = plan(target, DEBIAN, need_compiler=False, catalogue=parse_catalogue(SMALL))
    assert empty.commands == () and empty.packages == ()


def test_uek_kernel_gets_the_uek_tree(tmp_path):
    target = _target(tmp_path, "gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-10.0.1)", release="5.15.0-206.el7uek.x86_64")
    p = plan(target, CENTOS7, need_tree=True, catalogue=parse_catalogue(SMALL))
    assert p.packages[-1] == "kernel-uek-devel-5.15.0-206.el7uek.x86_64"


def _broken(change):
    raw = copy.deepcopy(SMALL)
    change(raw)
    with pytest.raises(BadInput) as exc:
        parse_catalogue(raw)
    assert exc.value.message.startswith("kbuildguard/data/catalogue.json: ")
    return exc.value.message


def test_broken_catalogues_are_bad_input():
    assert "no 'distributions'" in _broken(lambda r: r.pop("distributions"))
    assert "gcc.packages: str, not list" in _broken(lambda r: r["distributions"][0]["gcc"].update(packages="gcc"))
    assert "tree: not a list of strings" in _broken(lambda r: r["distributions"][0].update(tree=["a", 2]))
    assert "not [lowest, highest]" in _broken(lambda r: r["distributions"][0]["gcc"].update(range=[7, 8, 9]))
    assert "not [lowest, highest]" in _broken(lambda r: r["distributions"][0]["gcc"].update(range=["7", 8]))
    assert "major: bool, not int" in _broken(lambda r: r["distributions"][0]["system_gcc"].update(major=True))
    assert "manager 'pacman' is not in managers" in _broken(lambda r: r["distributions"][1].update(manager="pacman"))
    assert "notes: not an object of strings" in _broken(lambda r: r["distributions"][0]["gcc"].update(notes={"x": 1}))
    assert "(Debianish).gcc.legacy: no 'below'" in _broken(lambda r: r["distributions"][2]["gcc"]["legacy"].pop("below"))
    assert "not an object" in _broken(lambda r: r["distributions"].append([]))
    assert "managers.dnf.install" in _broken(lambda r: r["managers"]["dnf"].update(install="dnf"))
    assert "repo_setup.centos" in _broken(lambda r: r["distributions"][0]["gcc"]["repo_setup"].update(centos=[["yum", 1]]))
    assert "managers.dnf: no 'update'" in _broken(lambda r: r["managers"]["dnf"].pop("update"))
    assert "managers.dnf: list, not an object" in _broken(lambda r: r["managers"].update(dnf=["dnf", "install"]))


def test_templates_are_checked_when_parsed():
    d0 = lambda r: r["distributions"][0]  # noqa: E731
    assert "(Old EL).gcc.packages[0]: 'gcc-{X}' names {X}; allowed: {N}, {M}" in _broken(
        lambda r: d0(r)["gcc"].update(packages=["gcc-{X}"]))
    assert "gcc.packages[0]: 'gcc-{N' is not a template" in _broken(lambda r: d0(r)["gcc"].update(packages=["gcc-{N"]))
    assert "gcc.path: '/usr/bin/gcc-{0}' names {0}" in _broken(lambda r: d0(r)["gcc"].update(path="/usr/bin/gcc-{0}"))
    assert "gcc.path: '/usr/bin/gcc-{}' names {}" in _broken(lambda r: d0(r)["gcc"].update(path="/usr/bin/gcc-{}"))
    assert "tree[0]: 'linux-headers-{rel}' names {rel}; allowed: {release}" in _broken(
        lambda r: d0(r).update(tree=["linux-headers-{rel}"]))
    assert "tree_uek[0]: 'x-{N}'" in _broken(lambda r: d0(r).update(tree_uek=["x-{N}"]))
    assert "gcc.notes.centos: 'vault {N.real}'" in _broken(lambda r: d0(r)["gcc"]["notes"].update(centos="vault {N.real}"))
    assert "gcc.notes.centos: 'gcc {N}.{M}' names {M}; allowed: {N}" in _broken(
        lambda r: d0(r)["gcc"]["notes"].update(centos="gcc {N}.{M}"))  # notes are filled with the major only
    assert "gcc.legacy.path" in _broken(lambda r: r["distributions"][2]["gcc"]["legacy"].update(path="/gcc-{N}}"))
    assert "elsewhere.compiler.*: '{pkg} is in the SCL' names {pkg}" in _broken(
        lambda r: d0(r)["elsewhere"]["compiler"].update({"*": "{pkg} is in the SCL"}))
    # what str.format() fills is accepted, and a literal brace is written doubled
    fine = copy.deepcopy(SMALL)
    fine["distributions"][0]["gcc"]["notes"]["centos"] = "{{literal}} {N}"
    assert parse_catalogue(fine).distributions[0].gcc.notes[0] == ("centos", "{{literal}} {N}")


def test_tools_are_typed_and_checked():
    assert parse_catalogue(SMALL).tools == ToolPackages()
    fine = dict(SMALL, tools={"_comment": "x", "by_manager": {"dnf": {"pahole": ["dwarves"]}},
                              "by_id": {"debian": {"host_programs": ["linux-kbuild-{series}"], "_why": "text"}}})
    tools = parse_catalogue(fine).tools
    assert tools.packages("pahole", ("rhel",), "dnf") == ("dwarves",)
    assert tools.packages("host_programs", ("debian",), "apt-get") == ("linux-kbuild-{series}",)
    assert "tools: list, not dict" in _broken(lambda r: r.update(tools=[]))
    assert "tools.by_manager.dnf.pahole: not a list of strings" in _broken(
        lambda r: r.update(tools={"by_manager": {"dnf": {"pahole": "dwarves"}}}))
    assert "tools.by_id.debian: not an object" in _broken(lambda r: r.update(tools={"by_id": {"debian": ["x"]}}))
    assert "tools.by_manager.dnf.lld[0]: 'lld{X}' names {X}; allowed: {N}, {release}, {series}" in _broken(
        lambda r: r.update(tools={"by_manager": {"dnf": {"lld": ["lld{X}"]}}}))


def test_a_catalogue_that_is_not_json_is_bad_input(monkeypatch):
    monkeypatch.setattr(pkgutil, "get_data", lambda package, name: b"{\"distributions\": [")
    with pytest.raises(BadInput) as exc:
        read_catalogue()
    assert "not JSON" in exc.value.message
    monkeypatch.setattr(pkgutil, "get_data", lambda package, name: None)
    with pytest.raises(BadInput):
        load_catalogue()
    monkeypatch.setattr(pkgutil, "get_data", lambda package, name: json.dumps([1]).encode())
    with pytest.raises(BadInput):
        read_catalogue()


def test_records_are_typed():
    catalogue = parse_catalogue(SMALL)
    assert isinstance(catalogue, Catalogue)
    assert all(isinstance(role, Role) for d in catalogue.distributions for role, _ in d.elsewhere)
    assert CompilerChoice((), "").setup == ()


@pytest.mark.parametrize("change", [
    lambda r: r["distributions"][0]["gcc"].update(packages=["gcc-{X}"]),
    lambda r: r["distributions"][0]["gcc"].update(packages=["gcc-{N"]),
    lambda r: r["distributions"][0]["gcc"].update(path="/usr/bin/gcc-{0}"),
    lambda r: r["distributions"][0].update(tree=["linux-headers-{rel}"]),
    lambda r: r["managers"].update(dnf=["dnf"]),
    lambda r: r.update(tools=[]),
], ids=["unknown", "unclosed", "positional", "tree", "manager-list", "tools-list"])
def test_setup_with_a_broken_catalogue_is_one_line(tmp_path, monkeypatch, capsys, change):
    from kbuildguard.cli import main

    raw = copy.deepcopy(SMALL)
    raw["distributions"][0]["match"]["ids"].append("debian")  # the tree below is Debian's; any entry will do
    change(raw)
    monkeypatch.setattr(pkgutil, "get_data", lambda package, name: json.dumps(raw).encode())
    packaged_catalogue.cache_clear()
    try:
        tree = make_tree(tmp_path / "t", release="6.1.0-56-amd64", cc_text="gcc-12 (Debian 12.2.0-14) 12.2.0")
        code = main(["setup", "--dry-run", "--kernel-dir", str(tree)], env={"PATH": "/nonexistent"})
    finally:
        packaged_catalogue.cache_clear()
    err = capsys.readouterr()[1]
    assert code == 3 and "Traceback" not in err and "kbuildguard/data/catalogue.json: " in err, err
