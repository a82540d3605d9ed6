"""What to install for a kernel's compiler (and build tree): a pure plan from the catalogue.

Which package provides which compiler is data (kbuildguard/data/catalogue.json), not code; a plan
is the exact argv lists, computed without running anything, so that tests can assert them.
"""

import json
import os
import pkgutil
import tempfile
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from kbuildguard.errors import NoMatchingCompiler
from kbuildguard.identity import Family
from kbuildguard.run import quote
from kbuildguard.strenum import StrEnum
from kbuildguard.target import sysroot as sysroots
from kbuildguard.target.kernel import KernelTarget


class Distro(NamedTuple):
    id: str
    like: Tuple[str, ...]
    version_id: str
    name: str
    arch: str

    @property
    def major(self) -> str:
        return self.version_id.split(".")[0]


class Role(StrEnum):
    COMPILER = "compiler"
    TREE = "tree"


class Package(NamedTuple):
    """One package of a plan, and what the package manager said of it."""

    name: str
    role: Role
    available: Optional[bool] = None  # None: not asked (or could not be asked)
    elsewhere: str = ""  # where to find it when this system's repositories do not offer it


class InstallPlan(NamedTuple):
    distro: Distro
    manager: str
    packages: Tuple[str, ...]
    commands: Tuple[Tuple[str, ...], ...]
    notes: Tuple[str, ...]
    compiler_path: str  # where the planned compiler lands (informational: re-detection decides)
    checked: Tuple[Package, ...] = ()  # the packages again, with availability (provision.availability)
    system: str = "this machine"  # what the plan is for: "the build root /x", "the sosreport /y"
    asked: str = ""  # the query that answered ("apt-cache policy"), "" when none did
    unverified: str = ""  # why the packages were not checked; "" when they were

    @property
    def unavailable(self) -> Tuple[str, ...]:
        return tuple(p.name for p in self.checked if p.available is False)


def load_catalogue() -> Dict[str, Any]:
    data = pkgutil.get_data("kbuildguard", "data/catalogue.json")
    assert data is not None
    return json.loads(data.decode("utf-8"))


def detect_distro(sysroot: str = "/", arch: str = "") -> Distro:
    """The distribution of this machine, or of a sysroot (its etc/os-release, never ours), or of a
    captured system (a supportconfig keeps os-release inside basic-environment.txt)."""
    root = sysroot if sysroot else "/"
    layout = sysroots.layout_of(root) if root != "/" else sysroots.Layout.BUILD_ROOT
    if layout is sysroots.Layout.SUPPORTCONFIG:
        with tempfile.TemporaryDirectory(prefix="kbuildguard-os-release-") as tmp:
            path = os.path.join(tmp, "os-release")
            with open(path, "w", encoding="utf-8") as f:
                f.write(sysroots.os_release_text(root, layout) or "")
            return _read_distro(path, tmp, arch)
    os_release = os.path.join(root, "etc/os-release")
    if not os.path.isfile(os_release):
        os_release = os.path.join(root, "usr/lib/os-release")
    return _read_distro(os_release, root, arch)


def _read_distro(os_release: str, root: str, arch: str) -> Distro:
    """distro reads the files we name; lsb_release and uname are turned off because they would
    describe the host, not the sysroot (and would start processes)."""
    import distro as distro_lib

    class _NoUname(distro_lib.LinuxDistribution):  # type: ignore[misc,valid-type]
        # distro 1.4 and 1.5 (EL8's python36 module, Debian 11: the floors in pyproject.toml) take
        # include_uname but ignore it: version() runs `uname -rs` -- the host's, not the sysroot's,
        # and a process outside run.py. This class attribute shadows the cached property in every
        # distro release, so no release runs it.
        _uname_info: Dict[str, str] = {}

    kwargs: Dict[str, Any] = {"include_lsb": False, "os_release_file": os_release,
              "distro_release_file": os.path.join(root, "etc/nonexistent-release")}
    try:
        info = _NoUname(include_uname=False, **kwargs)
    except TypeError:  # distro < 1.4 has no include_uname
        info = _NoUname(**kwargs)
    return Distro(info.id().lower(), tuple(info.like().lower().split()), info.version(),
                  info.name(pretty=True) or info.id() or "unknown", arch or os.uname().machine)


def plan_for(target: KernelTarget, need_compiler: bool = True, need_tree: bool = False,
             scl_root: str = "/opt/rh") -> InstallPlan:
    """The plan for the target's own distribution (its sysroot's os-release, or this machine's)."""
    return plan(target, detect_distro(target.sysroot, str(target.arch or "")), need_compiler, need_tree, scl_root)


def _entry_for(distro: Distro, catalogue: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    for ids in ((distro.id,), distro.like):
        for entry in catalogue["distributions"]:
            match = entry["match"]
            if any(i in match["ids"] for i in ids) and (not match["versions"] or distro.major in match["versions"]):
                return entry
    return None


def _fmt(items, **values) -> List[str]:
    return [i.format(**values) for i in items]


def _legacy(rule: Dict[str, Any], major: int) -> Dict[str, Any]:
    """Before gcc 5 (clang 7) a release series was X.Y: Debian's gcc-4.9, SUSE's gcc48, never gcc-4."""
    legacy = rule.get("legacy")
    if legacy and major < legacy["below"]:
        return dict(rule, packages=legacy["packages"], path=legacy["path"])
    return rule


def elsewhere(entry: Dict[str, Any], distro: Distro, role: Role, **values: Any) -> str:
    """Where a package this system's repositories do not offer can be found (the catalogue says)."""
    texts = entry.get("elsewhere", {}).get(str(role), {})
    for key in (distro.id,) + distro.like + ("*",):
        if key in texts:
            return texts[key].format(**values)
    return ""


# yum's $basearch where it differs from uname -m (CentOS 7 AltArch: i386 for i686, armhfp for armv7l).
# AltArch content (every architecture but x86_64) lives under /altarch/ on vault.centos.org: CentOS
# sets the yum variable $contentdir to "altarch" there (/etc/yum/vars/contentdir).
_BASEARCH = {"i686": "i386", "armv7l": "armhfp"}


def scl_vault(entry: Dict[str, Any], arch: str) -> str:
    """Where the entry's archived Software Collections for ``arch`` are, as a sentence ({scl_vault} in its
    texts); "" when the entry has none. CentOS 7 AltArch keeps them under /altarch/, not /centos/."""
    table = entry.get("scl_vault")
    if not table:
        return ""
    basearch = _BASEARCH.get(arch, arch or "x86_64")
    url = table.get(basearch) if basearch not in ("_comment", "found", "missing") else None
    if url:
        return str(table["found"]).format(url=url)
    return str(table["missing"]).format(arch=basearch)


def plan(target: KernelTarget, distro: Distro, need_compiler: bool = True, need_tree: bool = False,
         scl_root: str = "/opt/rh") -> InstallPlan:
    """What to install on ``distro`` for ``target``; raises NoMatchingCompiler when nothing provides it."""
    catalogue = load_catalogue()
    entry = _entry_for(distro, catalogue)
    if entry is None:
        raise NoMatchingCompiler("kbuildguard does not know how to install compilers on %s (ID=%s)" % (distro.name, distro.id),
                                 hint="install %s yourself and run kbuildguard again" % target.compiler.describe())
    manager = entry["manager"]
    kernel = target.compiler
    major = kernel.version_tuple[0] if kernel.version_tuple else 0
    minor = kernel.version_tuple[1] if len(kernel.version_tuple) > 1 else 0
    packages: List[str] = []
    pre: List[Tuple[str, ...]] = []
    notes: List[str] = []
    path = ""
    basearch = _BASEARCH.get(distro.arch or str(target.arch or ""), distro.arch or str(target.arch or "") or "x86_64")
    vault = scl_vault(entry, basearch)
    if need_compiler:
        rule = _legacy(entry["gcc"] if kernel.family is Family.GCC else entry["clang"], major)
        system = entry.get("system_gcc") if kernel.family is Family.GCC else None
        lo_hi = rule.get("range") or []
        if system and system["major"] == major:
            packages += system["packages"]
            path = system["path"]
        elif lo_hi and lo_hi[0] <= major <= lo_hi[1]:
            packages += _fmt(rule["packages"], N=major, M=minor)
            path = rule["path"].format(N=major, M=minor).replace("/opt/rh", scl_root, 1)
            for cmd in rule.get("repo_setup", {}).get(distro.id, []):
                pre.append(tuple(cmd))
        elif rule.get("packages") and not lo_hi and kernel.family is Family.CLANG:
            packages += rule["packages"]
            path = rule["path"]
            notes.append("%s ships one clang; the kernel needs clang %s" % (entry["name"], kernel.version))
        else:
            for text in rule.get("notes", {}).values():
                notes.append(text.format(N=major, scl_vault=vault))
            raise NoMatchingCompiler(
                "no package of %s provides %s %d (the kernel's %s)" % (entry["name"], kernel.family, major, kernel.describe()),
                hint=" ".join(notes) or "build on a machine of the distribution that built the kernel", details=notes)
        for key, text in rule.get("notes", {}).items():
            if key == distro.id or key in distro.like:
                notes.append(text.format(N=major, scl_vault=vault))
        if kernel.vendor:
            notes.append("the kernel was built by %s; %s installs the repository's current build of %s %d, whose exact "
                         "release may differ: kbuildguard checks it again after installing (match level decides)"
                         % (kernel.describe(), " ".join(packages), kernel.family, major))
    compilers = len(packages)
    if need_tree:
        tree = entry.get("tree_uek") if "uek" in target.release and entry.get("tree_uek") else entry["tree"]
        packages += _fmt(tree, release=target.release)
    checked = tuple(
        Package(name, role, None, elsewhere(entry, distro, role, package=name, release=target.release, N=major,
                                            scl_vault=vault, basearch=basearch,
                                            contentdir="" if basearch == "x86_64" else "altarch/"))
        for role, name in [(Role.COMPILER if i < compilers else Role.TREE, n) for i, n in enumerate(packages)])
    if not packages:
        return InstallPlan(distro, manager, (), (), tuple(notes), path)
    commands: List[Tuple[str, ...]] = []
    manager_argv = catalogue["managers"][manager]
    if manager_argv["update"]:
        commands.append(tuple(manager_argv["update"]))
    commands.extend(pre)
    commands.append(tuple(manager_argv["install"]) + tuple(packages))
    return InstallPlan(distro, manager, tuple(packages), tuple(commands), tuple(notes), path, checked)


def install_hint(target: KernelTarget, distro: Optional[Distro] = None) -> str:
    """One line for error messages: the command that installs the kernel's compiler here."""
    try:
        p = plan(target, distro or detect_distro(target.sysroot))
    except NoMatchingCompiler as exc:
        return "install %s (%s)" % (target.compiler.describe(), exc.message)
    cmds = " && ".join(quote(c) for c in p.commands)
    # An error path asks no package manager: the plan is named as the catalogue's, unchecked.
    return ("the catalogue's plan: %s -- not yet checked against the repositories: `kbuildguard setup --dry-run` "
            "asks them, `kbuildguard make --install` asks and then installs" % cmds)


def distribution_entry(distro: Distro, catalogue: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """The catalogue's entry for ``distro`` (its manager, packages), or None; for the toolchain preflight."""
    return _entry_for(distro, catalogue if catalogue is not None else load_catalogue())
