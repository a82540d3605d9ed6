"""What to install for a kernel's compiler (and build tree): a pure plan from the catalogue.

Which package provides which compiler is data (kbuildguard/data/catalogue.json), not code; a plan
is the exact argv lists, computed without running anything, so that tests can assert them.
"""

import functools
import json
import os
import pkgutil
import string
import tempfile
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from kbuildguard.errors import BadInput, NoMatchingCompiler, PackageUnavailable
from kbuildguard.identity import CompilerId, Family
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


class Legacy(NamedTuple):
    """Before gcc 5 (clang 7) a release series was X.Y: Debian's gcc-4.9, SUSE's gcc48, never gcc-4."""

    below: int
    packages: Tuple[str, ...]
    path: str


class CompilerRule(NamedTuple):
    """How a distribution packages one compiler family, versioned by major ({N}, {M}: minor)."""

    range: Optional[Tuple[int, int]]  # the majors that have a package; None: one unversioned package, or none
    packages: Tuple[str, ...]
    path: str
    repo_setup: Tuple[Tuple[str, Tuple[Tuple[str, ...], ...]], ...]  # (os-release ID, commands before installing)
    notes: Tuple[Tuple[str, str], ...]  # (os-release ID, note), in the catalogue's order
    legacy: Optional[Legacy]


class SystemGcc(NamedTuple):
    """The distribution's own gcc, when it is the one major a kernel of that release was built with."""

    major: int
    packages: Tuple[str, ...]
    path: str


class Distribution(NamedTuple):
    """One entry of the catalogue: which systems it covers and what they install."""

    name: str
    ids: Tuple[str, ...]
    versions: Tuple[str, ...]  # os-release majors; (): every release
    manager: str
    system_gcc: Optional[SystemGcc]
    gcc: CompilerRule
    clang: CompilerRule
    tree: Tuple[str, ...]
    tree_uek: Tuple[str, ...]
    elsewhere: Tuple[Tuple[Role, Tuple[Tuple[str, str], ...]], ...]  # (role, ((ID or "*", text), ...))
    scl_vault: Optional["SclVault"] = None

    def covers(self, ids: Tuple[str, ...], major: str) -> bool:
        return any(i in self.ids for i in ids) and (not self.versions or major in self.versions)


class SclVault(NamedTuple):
    """Where a distribution's archived Software Collections are, per yum $basearch ({scl_vault} in its
    notes and elsewhere texts): CentOS 7 keeps x86_64's under /7.9.2009/ and AltArch's (aarch64,
    ppc64le) under /altarch/7.9.2009/ on vault.centos.org."""

    urls: Tuple[Tuple[str, str], ...]  # (basearch, the sclo/ folder's URL)
    found: str  # a sentence with {url}
    missing: str  # a sentence with {arch}: the architecture has no Software Collections

    def sentence(self, basearch: str) -> str:
        url = dict(self.urls).get(basearch)
        return self.found.format(url=url) if url else self.missing.format(arch=basearch)


class ManagerArgv(NamedTuple):
    update: Tuple[str, ...]  # (): this manager refreshes by itself
    install: Tuple[str, ...]


class ToolPackages(NamedTuple):
    """Which packages fix a tool the toolchain preflight finds missing ("tools" of the catalogue):
    per package manager, with overrides per os-release ID; {N}, {release}, {series} are filled in."""

    by_manager: Tuple[Tuple[str, Tuple[Tuple[str, Tuple[str, ...]], ...]], ...] = ()
    by_id: Tuple[Tuple[str, Tuple[Tuple[str, Tuple[str, ...]], ...]], ...] = ()

    def packages(self, tool: str, ids: Tuple[str, ...], manager: str) -> Tuple[str, ...]:
        """The first os-release ID (own ID, then ID_LIKE) that names ``tool`` wins; else the manager's entry."""
        by_id = dict(self.by_id)
        for ident in ids:
            names = dict(by_id.get(ident, ())).get(tool)
            if names is not None:
                return names
        return dict(dict(self.by_manager).get(manager, ())).get(tool, ())


class Catalogue(NamedTuple):
    distributions: Tuple[Distribution, ...]
    managers: Tuple[Tuple[str, ManagerArgv], ...]
    tools: ToolPackages = ToolPackages()

    def manager(self, name: str) -> ManagerArgv:
        return dict(self.managers)[name]


CATALOGUE = "kbuildguard/data/catalogue.json"


def load_catalogue() -> Dict[str, Any]:
    """The catalogue as JSON; `read_catalogue` is the typed form."""
    data = pkgutil.get_data("kbuildguard", "data/catalogue.json")
    if data is None:
        raise BadInput("%s: not found in the installed package" % CATALOGUE)
    try:
        raw = json.loads(data.decode("utf-8"))
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise BadInput("%s: not JSON: %s" % (CATALOGUE, exc))
    return raw if isinstance(raw, dict) else {}


def read_catalogue() -> Catalogue:
    return parse_catalogue(load_catalogue())


@functools.lru_cache(maxsize=1)
def packaged_catalogue() -> Catalogue:
    """The packaged catalogue, read and parsed once per process: it is read-only data of the installed
    package, so the memo is the one cache of the kind (docs/architecture.md, Conventions). A broken
    catalogue raises BadInput every time (an exception is not memoised)."""
    return read_catalogue()


class _Broken(Exception):
    """Where and why an item of the catalogue does not have its shape (turned into one BadInput)."""


def _field(obj: Any, key: str, kind: type, where: str, default: Any = None) -> Any:
    if not isinstance(obj, dict):
        raise _Broken("%s: not an object" % where)
    if key not in obj:
        if default is not None:
            return default
        raise _Broken("%s: no %r" % (where, key))
    value = obj[key]
    # bool is an int in Python: a major version of `true` is no version.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Broken("%s.%s: %s, not %s" % (where, key, type(value).__name__, kind.__name__))
    return value


def _strings(value: Any, where: str) -> Tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Broken("%s: not a list of strings" % where)
    return tuple(value)


def _texts(value: Any, where: str, allowed: Tuple[str, ...] = ()) -> Tuple[Tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _Broken("%s: not an object of strings" % where)
    for key, text in value.items():
        _template(text, allowed, "%s.%s" % (where, key))
    return tuple(value.items())


# The placeholders each kind of template may name; str.format() fills exactly these.
COMPILER_FIELDS = ("N", "M")  # the compiler's major and minor version
NOTE_FIELDS = ("N", "scl_vault")  # a note is filled with the major and the SCL vault's sentence
TREE_FIELDS = ("release",)  # the kernel release
ELSEWHERE_FIELDS = ("package", "release", "N", "scl_vault", "basearch", "contentdir")
TOOL_FIELDS = ("N", "release", "series")  # series: the release's X.Y


def _template(text: str, allowed: Tuple[str, ...], where: str) -> str:
    """``text`` when str.format() with ``allowed`` keywords fills it; a plan must never meet the
    KeyError, IndexError or ValueError of a template out of shape ("{X}", "{0}", "{N")."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise _Broken("%s: %r is not a template: %s" % (where, text, exc))
    for field in fields:
        if field not in allowed:
            raise _Broken("%s: %r names {%s}; allowed: %s" % (
                where, text, field, ", ".join("{%s}" % a for a in allowed) or "none"))
    return text


def _templates(value: Any, where: str, allowed: Tuple[str, ...]) -> Tuple[str, ...]:
    items = _strings(value, where)
    for i, text in enumerate(items):
        _template(text, allowed, "%s[%d]" % (where, i))
    return items


def _rule(obj: Any, where: str) -> CompilerRule:
    bounds = _field(obj, "range", list, where)
    if bounds and (len(bounds) != 2 or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)):
        raise _Broken("%s.range: not [lowest, highest]" % where)
    setup = _field(obj, "repo_setup", dict, where, {})
    legacy = obj.get("legacy")
    return CompilerRule(
        range=(bounds[0], bounds[1]) if bounds else None,
        packages=_templates(_field(obj, "packages", list, where), where + ".packages", COMPILER_FIELDS),
        path=_template(_field(obj, "path", str, where), COMPILER_FIELDS, where + ".path"),
        repo_setup=tuple((ident, tuple(_strings(c, "%s.repo_setup.%s" % (where, ident)) for c in _field(setup, ident, list, where)))
              for ident in setup),
        notes=_texts(_field(obj, "notes", dict, where, {}), where + ".notes", NOTE_FIELDS),
        legacy=None if legacy is None else Legacy(_field(legacy, "below", int, where + ".legacy"),
                                           _templates(_field(legacy, "packages", list, where + ".legacy"),
                                                      where + ".legacy.packages", COMPILER_FIELDS),
                                           _template(_field(legacy, "path", str, where + ".legacy"),
                                                     COMPILER_FIELDS, where + ".legacy.path")))


def _distribution(obj: Any, where: str) -> Distribution:
    match = _field(obj, "match", dict, where)
    system = obj.get("system_gcc") if isinstance(obj, dict) else None
    elsewhere = _field(obj, "elsewhere", dict, where, {})
    name = _field(obj, "name", str, where)
    where = "%s (%s)" % (where, name)
    return Distribution(
        name=name,
        ids=_strings(_field(match, "ids", list, where + ".match"), where + ".match.ids"),
        versions=_strings(_field(match, "versions", list, where + ".match"), where + ".match.versions"),
        manager=_field(obj, "manager", str, where),
        system_gcc=None if system is None else SystemGcc(_field(system, "major", int, where + ".system_gcc"),
                                              _strings(_field(system, "packages", list, where + ".system_gcc"),
                                                       where + ".system_gcc.packages"),
                                              _field(system, "path", str, where + ".system_gcc")),
        gcc=_rule(_field(obj, "gcc", dict, where), where + ".gcc"),
        clang=_rule(_field(obj, "clang", dict, where), where + ".clang"),
        tree=_templates(_field(obj, "tree", list, where), where + ".tree", TREE_FIELDS),
        tree_uek=_templates(_field(obj, "tree_uek", list, where, []), where + ".tree_uek", TREE_FIELDS),
        elsewhere=tuple((role, _texts(_field(elsewhere, str(role), dict, where + ".elsewhere", {}),
                            "%s.elsewhere.%s" % (where, role), ELSEWHERE_FIELDS))
              for role in Role),
        scl_vault=_scl_vault(obj.get("scl_vault"), where + ".scl_vault"))


def _scl_vault(obj: Any, where: str) -> Optional[SclVault]:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise _Broken("%s: not an object" % where)
    urls = tuple((arch, _template(_field(obj, arch, str, where), (), "%s.%s" % (where, arch)))
                 for arch in obj if arch not in ("_comment", "found", "missing"))
    return SclVault(urls, _template(_field(obj, "found", str, where), ("url",), where + ".found"),
                    _template(_field(obj, "missing", str, where), ("arch",), where + ".missing"))


def _tool_table(obj: Any, where: str) -> Tuple[Tuple[str, Tuple[Tuple[str, Tuple[str, ...]], ...]], ...]:
    """{key: {tool: [package template, ...]}}; keys starting with "_" are comments."""
    if not isinstance(obj, dict):
        raise _Broken("%s: not an object" % where)
    table = []
    for key, tools in obj.items():
        if key.startswith("_"):
            continue
        if not isinstance(tools, dict):
            raise _Broken("%s.%s: not an object" % (where, key))
        table.append((key, tuple((tool, _templates(names, "%s.%s.%s" % (where, key, tool), TOOL_FIELDS))
                                 for tool, names in tools.items() if not tool.startswith("_"))))
    return tuple(table)


def _tools(raw: Any) -> ToolPackages:
    tools = _field(raw, "tools", dict, "catalogue", {})
    return ToolPackages(_tool_table(_field(tools, "by_manager", dict, "tools", {}), "tools.by_manager"),
                        _tool_table(_field(tools, "by_id", dict, "tools", {}), "tools.by_id"))


def _manager(name: str, argv: Any) -> ManagerArgv:
    where = "managers." + name
    if not isinstance(argv, dict):
        raise _Broken("%s: %s, not an object" % (where, type(argv).__name__))
    if "update" not in argv:
        raise _Broken("%s: no 'update' (null when the manager refreshes by itself)" % where)
    return ManagerArgv(_strings(argv["update"] or [], where + ".update"),
                       _strings(_field(argv, "install", list, where), where + ".install"))


def parse_catalogue(raw: Any) -> Catalogue:
    """The catalogue's JSON as typed records, or BadInput naming the first item out of shape.

    Every manager a distribution names must be in "managers": a plan must never meet a KeyError.
    """
    try:
        distributions = tuple(_distribution(d, "distributions[%d]" % i)
                              for i, d in enumerate(_field(raw, "distributions", list, "catalogue")))
        managers = tuple((name, _manager(name, argv)) for name, argv in _field(raw, "managers", dict, "catalogue").items())
        tools = _tools(raw)
        for d in distributions:
            if d.manager not in dict(managers):
                raise _Broken("%s: manager %r is not in managers" % (d.name, d.manager))
    except _Broken as exc:
        raise BadInput("%s: %s" % (CATALOGUE, exc), hint="the installed kbuildguard is damaged: reinstall it")
    except (KeyError, TypeError) as exc:
        raise BadInput("%s: out of shape: %r" % (CATALOGUE, exc), hint="the installed kbuildguard is damaged: reinstall it")
    return Catalogue(distributions, managers, tools)


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


def distribution_for(distro: Distro, catalogue: Catalogue) -> Optional[Distribution]:
    """The entry for ``distro``: by its own ID first, then by an ID it is like (ID_LIKE)."""
    for ids in ((distro.id,), distro.like):
        for entry in catalogue.distributions:
            if entry.covers(ids, distro.major):
                return entry
    return None


def _fmt(items: Tuple[str, ...], **values: Any) -> List[str]:
    return [i.format(**values) for i in items]


def _legacy(rule: CompilerRule, major: int) -> CompilerRule:
    if rule.legacy is not None and major < rule.legacy.below:
        return rule._replace(packages=rule.legacy.packages, path=rule.legacy.path)
    return rule


def elsewhere(entry: Distribution, distro: Distro, role: Role, **values: Any) -> str:
    """Where a package this system's repositories do not offer can be found (the catalogue says)."""
    texts = dict(dict(entry.elsewhere).get(role, ()))
    for key in (distro.id,) + distro.like + ("*",):
        if key in texts:
            return texts[key].format(**values)
    return ""


class CompilerChoice(NamedTuple):
    """The packages that provide the kernel's compiler, where it lands, and what must run first."""

    packages: Tuple[str, ...]
    path: str
    setup: Tuple[Tuple[str, ...], ...] = ()  # commands before installing (enable a repository)
    notes: Tuple[str, ...] = ()


def _system_compiler(system: SystemGcc) -> CompilerChoice:
    """The distribution's own gcc is the kernel's major (RHEL 7's 4.8.5, EL8's 8)."""
    return CompilerChoice(system.packages, system.path)


def _versioned_compiler(rule: CompilerRule, distro: Distro, major: int, minor: int, scl_root: str) -> CompilerChoice:
    """A package per major (gcc-12, devtoolset-8-gcc, clang16); a toolset lands under the SCL root."""
    return CompilerChoice(tuple(_fmt(rule.packages, N=major, M=minor)),
                          rule.path.format(N=major, M=minor).replace("/opt/rh", scl_root, 1),
                          dict(rule.repo_setup).get(distro.id, ()))


def _single_clang(entry: Distribution, rule: CompilerRule, kernel: CompilerId) -> CompilerChoice:
    """EL and Fedora ship one clang: offered, and said, since re-detection decides whether it matches."""
    return CompilerChoice(rule.packages, rule.path,
                          notes=("%s ships one clang; the kernel needs clang %s" % (entry.name, kernel.version),))


def _no_package(entry: Distribution, rule: CompilerRule, kernel: CompilerId, major: int, vault: str) -> NoMatchingCompiler:
    notes = [text.format(N=major, scl_vault=vault) for _, text in rule.notes]
    return NoMatchingCompiler(
        "no package of %s provides %s %d (the kernel's %s)" % (entry.name, kernel.family, major, kernel.describe()),
        hint=" ".join(notes) or "build on a machine of the distribution that built the kernel", details=notes)


def choose_compiler(entry: Distribution, distro: Distro, kernel: CompilerId, scl_root: str, vault: str = "",
                    no_scl: bool = False) -> CompilerChoice:
    """Which of the four cases the kernel's compiler is, on ``entry``; NoMatchingCompiler for the fourth.
    ``vault``: the SCL vault's sentence for the machine's architecture (scl_vault()); ``no_scl``: that
    architecture has no Software Collections, so a toolset under /opt/rh is no plan (issue 22)."""
    major = kernel.version_tuple[0] if kernel.version_tuple else 0
    minor = kernel.version_tuple[1] if len(kernel.version_tuple) > 1 else 0
    gcc = kernel.family is Family.GCC
    rule = _legacy(entry.gcc if gcc else entry.clang, major)
    if gcc and entry.system_gcc is not None and entry.system_gcc.major == major:
        choice = _system_compiler(entry.system_gcc)
    elif rule.range is not None and rule.range[0] <= major <= rule.range[1]:
        choice = _versioned_compiler(rule, distro, major, minor, scl_root)
        if no_scl and rule.path.startswith("/opt/rh"):
            notes = [text.format(N=major, scl_vault=vault) for key, text in rule.notes if key == distro.id or key in distro.like]
            raise PackageUnavailable(
                "%s: no such package for %s on %s: it is a Software Collection, and that architecture has none"
                % (", ".join(choice.packages), entry.name, _BASEARCH.get(distro.arch, distro.arch)),
                hint=" ".join(notes) or "build on a machine of the distribution that built the kernel")
    elif rule.packages and rule.range is None and not gcc:
        choice = _single_clang(entry, rule, kernel)
    else:
        raise _no_package(entry, rule, kernel, major, vault)
    return choice._replace(notes=choice.notes + _notes(rule, distro, kernel, major, choice.packages, vault))


def _notes(rule: CompilerRule, distro: Distro, kernel: CompilerId, major: int, packages: Tuple[str, ...],
           vault: str) -> Tuple[str, ...]:
    """The catalogue's notes for this system, and that a vendor's exact build may not be what installs."""
    notes = [text.format(N=major, scl_vault=vault) for key, text in rule.notes if key == distro.id or key in distro.like]
    if kernel.vendor:
        notes.append("the kernel was built by %s; %s installs the repository's current build of %s %d, whose exact "
                     "release may differ: kbuildguard checks it again after installing (match level decides)"
                     % (kernel.describe(), " ".join(packages), kernel.family, major))
    return tuple(notes)


# yum's $basearch where it differs from uname -m (CentOS 7 AltArch: i386 for i686, armhfp for armv7l).
# AltArch content (every architecture but x86_64) lives under /altarch/ on vault.centos.org: CentOS
# sets the yum variable $contentdir to "altarch" there (/etc/yum/vars/contentdir).
_BASEARCH = {"i686": "i386", "armv7l": "armhfp"}


def scl_vault(entry: Distribution, arch: str) -> str:
    """Where the entry's archived Software Collections for ``arch`` are, as a sentence ({scl_vault} in its
    texts); "" when the entry has none. CentOS 7 AltArch keeps them under /altarch/, not /centos/."""
    if entry.scl_vault is None:
        return ""
    return entry.scl_vault.sentence(_BASEARCH.get(arch, arch or "x86_64"))


def plan(target: KernelTarget, distro: Distro, need_compiler: bool = True, need_tree: bool = False,
         scl_root: str = "/opt/rh", catalogue: Optional[Catalogue] = None) -> InstallPlan:
    """What to install on ``distro`` for ``target``; raises NoMatchingCompiler when nothing provides it."""
    catalogue = catalogue if catalogue is not None else packaged_catalogue()
    entry = distribution_for(distro, catalogue)
    if entry is None:
        raise NoMatchingCompiler("kbuildguard does not know how to install compilers on %s (ID=%s)" % (distro.name, distro.id),
                                 hint="install %s yourself and run kbuildguard again" % target.compiler.describe())
    kernel = target.compiler
    basearch = _BASEARCH.get(distro.arch or str(target.arch or ""), distro.arch or str(target.arch or "") or "x86_64")
    vault = scl_vault(entry, basearch)
    # CentOS 7 armhfp, i386, ppc64: no SCL content on the mirrors or the vault (SclVault.urls lists the
    # architectures that have it), so no devtoolset plan: one cannot install what does not exist.
    no_scl = entry.scl_vault is not None and basearch not in dict(entry.scl_vault.urls)
    choice = choose_compiler(entry, distro, kernel, scl_root, vault, no_scl) if need_compiler else CompilerChoice((), "")
    tree: Tuple[str, ...] = ()
    if need_tree:
        tree = tuple(_fmt(entry.tree_uek if "uek" in target.release and entry.tree_uek else entry.tree,
                          release=target.release))
    packages = choice.packages + tree
    if not packages:
        return InstallPlan(distro=distro, manager=entry.manager, packages=(), commands=(), notes=choice.notes, compiler_path=choice.path)
    major = kernel.version_tuple[0] if kernel.version_tuple else 0
    checked = tuple(Package(name, role, None, elsewhere(entry, distro, role, package=name, release=target.release, N=major,
                                                        scl_vault=vault, basearch=basearch,
                                                        contentdir="" if basearch == "x86_64" else "altarch/"))
                    for role, names in ((Role.COMPILER, choice.packages), (Role.TREE, tree)) for name in names)
    argv = catalogue.manager(entry.manager)
    commands = ((argv.update,) if argv.update else ()) + choice.setup + (argv.install + packages,)
    return InstallPlan(distro=distro, manager=entry.manager, packages=packages, commands=commands, notes=choice.notes, compiler_path=choice.path,
                       checked=checked)


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
