"""Kernels on demand: a release that is not installed, fetched from its distribution and unpacked.

``fetch()`` resolves a release to the distribution's packages, downloads them *without installing*
(no maintainer script runs, the package database is not touched), unpacks them into a cache folder
keyed by the release and the packages' checksums, and returns that folder: a root laid out as if the
packages were installed (``lib/modules/R/build``, ``usr/src/...``, ``boot/config-R``,
``boot/vmlinuz-R``), which kernel.resolve() takes as a ``--sysroot`` (target/sysroot.py: a build root).

Which packages, per distribution (``PACKAGES``, data):

- Debian: ``linux-headers-R`` (the flavour's tree: .config, Module.symvers, the Makefile that
  includes the common tree), the ``linux-headers-ABI-common`` and ``linux-kbuild-X.Y`` it depends on
  (read from its Depends: trixie spells them ``-6.12.48+deb13-common`` and ``linux-kbuild-6.12.48+deb13``),
  and ``linux-image-R-unsigned``. The unsigned image, not the signed ``linux-image-R``: both carry the
  same /boot/config-R and the same vmlinuz contents (BTF, and the built-in trusted keys, which
  certs/system_keyring.c compiles into vmlinux); the signed one adds only the EFI signature on vmlinuz
  and signatures on the in-tree modules, which no gate reads from a target it has never booted.
- Ubuntu: ``linux-headers-R`` plus the base headers package it depends on (``linux-headers-6.8.0-45``:
  Ubuntu has no linux-kbuild, its scripts are in the headers), ``linux-image-R`` (vmlinuz) and
  ``linux-modules-R`` (/boot/config-R and the modules).
- EL and Fedora (dnf): ``kernel-devel-R`` and ``kernel-core-R`` (vmlinuz and config under
  /lib/modules/R/, copied to /boot by its %posttrans: done here as links).
- SUSE (zypper): ``kernel-FLAVOUR-devel``, ``kernel-devel`` (the common source tree) and
  ``kernel-FLAVOUR`` of the version. kernel-syms is a meta package over every flavour's -devel: not
  needed for one flavour.

Another Debian suite (bullseye's 5.10 from a bookworm host) is fetched through a private apt state
(its own sources.list, lists and cache under the cache folder), made from the system's own sources
with the suite replaced: the system's apt configuration is never changed.

Nothing here needs root: the cache is the user's (XDG), /var/cache/kbuildguard/kernels for root.
"""

import contextlib
import fnmatch
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
import time
from typing import Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import bounded
from kbuildguard.errors import BadInput, CannotWrite, FetchFailed, PackageUnavailable, UsageError
from kbuildguard.run import CommandFailed, Runner
from kbuildguard.strenum import StrEnum
from kbuildguard.versions import compare


class Family(StrEnum):
    DEBIAN = "debian"
    UBUNTU = "ubuntu"
    DNF = "dnf"  # RHEL, CentOS Stream, Rocky, Alma, Fedora
    ZYPPER = "zypper"  # SUSE, openSUSE

    @property
    def rpm(self) -> bool:
        return self in (Family.DNF, Family.ZYPPER)


class Naming(NamedTuple):
    """One distribution's kernel packages: asked for by name ({release} {version} {flavour} filled in),
    and the prefixes of the headers package's dependencies that are fetched with it."""

    asked: Tuple[str, ...]
    followed: Tuple[str, ...]  # Depends of the first package whose name starts with one of these


PACKAGES: Mapping[Family, Naming] = {
    Family.DEBIAN: Naming(("linux-headers-{release}", "linux-image-{release}-unsigned"),
                          ("linux-headers-", "linux-kbuild-")),
    Family.UBUNTU: Naming(("linux-headers-{release}", "linux-image-{release}", "linux-modules-{release}"),
                          ("linux-headers-",)),
    Family.DNF: Naming(("kernel-devel-{release}", "kernel-core-{release}"), ()),
    Family.ZYPPER: Naming(("kernel-{flavour}-devel-{version}", "kernel-devel-{version}", "kernel-{flavour}-{version}"), ()),
}

# Debian's kernel series and the suite that serves it: --fetch-from debian picks the suite from the
# release when the system's own lists do not have it.
DEBIAN_SUITES = (("4.19", "buster"), ("5.10", "bullseye"), ("6.1", "bookworm"), ("6.12", "trixie"))

LOCK_WAIT = 600.0  # seconds: a fetch of one Debian kernel takes about a minute on a slow line

CACHE_HINT = ("the kernel cache is $XDG_CACHE_HOME/kbuildguard/kernels (~/.cache/... without it; "
              "/var/cache/kbuildguard/kernels for root): set XDG_CACHE_HOME to an absolute folder you can write")


class Source(NamedTuple):
    """Where a kernel's packages come from (``--fetch-from``)."""

    family: Family
    suite: str = ""  # Debian/Ubuntu: another suite, through a private apt state; "" = the system's apt
    root: str = ""  # dnf --installroot / zypper --root: a build root's repositories
    releasever: str = ""  # dnf --releasever

    def describe(self) -> str:
        where = ":" + (self.suite or self.root) if (self.suite or self.root) else ""
        return "%s%s" % (self.family, where)


def parse_source(text: str) -> Source:
    """``debian``, ``debian:bullseye``, ``ubuntu``, ``dnf``, ``dnf:/var/lib/mock/root[:9]``, ``zypper[:ROOT]``."""
    family_text, _, rest = text.partition(":")
    try:
        family = Family(family_text)
    except ValueError:
        raise UsageError("--fetch-from %s: not one of %s (with :SUITE for Debian/Ubuntu, :ROOT for dnf/zypper)"
                         % (text, ", ".join(str(f) for f in Family)))
    if not family.rpm:
        if rest and not re.match(r"^[a-z][a-z0-9-]*$", rest):
            raise UsageError("--fetch-from %s: %r is not a suite name" % (text, rest))
        return Source(family, suite=rest)
    root, _, releasever = rest.partition(":") if rest.startswith("/") else (rest, "", "")
    if root and not root.startswith("/"):
        raise UsageError("--fetch-from %s: the build root must be an absolute path" % text)
    return Source(family, root=root, releasever=releasever)


def family_of(os_id: str, like: Sequence[str]) -> Optional[Family]:
    """This machine's way of fetching, from its os-release ID and ID_LIKE."""
    names = [os_id] + list(like)
    for name, family in (("ubuntu", Family.UBUNTU), ("debian", Family.DEBIAN), ("suse", Family.ZYPPER),
                         ("opensuse", Family.ZYPPER), ("sles", Family.ZYPPER), ("fedora", Family.DNF),
                         ("rhel", Family.DNF), ("centos", Family.DNF)):
        if name in names:
            return family
    return None


DEBIAN_NUMBERS = {"10": "buster", "11": "bullseye", "12": "bookworm", "13": "trixie", "14": "forky"}


def debian_suite_of(release: str) -> Optional[str]:
    """bullseye for 5.10.0-35-amd64; trixie for 6.12.48+deb13-amd64 (since 6.12 the ABI names the
    release it was built for: bookworm-security's 6.12 is 6.12.x+deb12)."""
    numbered = re.search(r"\+deb(\d+)", release)
    if numbered:
        return DEBIAN_NUMBERS.get(numbered.group(1))
    m = re.match(r"^(\d+)\.(\d+)", release)
    if not m:
        return None
    series = "%s.%s" % (m.group(1), m.group(2))
    return dict(DEBIAN_SUITES).get(series)


def split_flavour(release: str) -> Tuple[str, str]:
    """SUSE's 5.14.21-150500.55.39-default is version 5.14.21-150500.55.39, flavour default."""
    version, _, flavour = release.rpartition("-")
    if not version or not flavour:
        raise UsageError("%r: not a SUSE kernel release (VERSION-FLAVOUR, e.g. 5.14.21-150500.55.39-default)" % release)
    return version, flavour


def asked_packages(family: Family, release: str) -> Tuple[str, ...]:
    """The packages named from the release alone (pure: the unit tests hold it to each distribution)."""
    version, flavour = split_flavour(release) if family is Family.ZYPPER else (release, "")
    return tuple(p.format(release=release, version=version, flavour=flavour) for p in PACKAGES[family].asked)


class Dependency(NamedTuple):
    name: str
    version: str  # "" = the candidate (a >= constraint, or none)


def followed_dependencies(family: Family, depends: str) -> List[Dependency]:
    """The dependencies of the headers package that belong to its tree: Debian's -common and
    linux-kbuild-X.Y, Ubuntu's base headers. ``linux-headers-6.1.0-56-common (= 6.1.192-2)`` is fetched
    at that version; ``linux-kbuild-6.1 (>= 6.1.192-2)`` at the candidate (one kbuild package serves
    every ABI of a series, and apt keeps only its newest)."""
    out: List[Dependency] = []
    for alternative in depends.split(","):
        first = alternative.split("|")[0].strip()
        m = re.match(r"^([a-z0-9][a-z0-9+.-]*)(?::\w+)?\s*(?:\(\s*(<<|<=|=|>=|>>)\s*([^)\s]+)\s*\))?$", first)
        if not m:
            continue
        name, op, version = m.group(1), m.group(2), m.group(3)
        if any(name.startswith(prefix) for prefix in PACKAGES[family].followed):
            out.append(Dependency(name, version if op == "=" else ""))
    return out


class Package(NamedTuple):
    name: str
    version: str
    sha256: str
    filename: str  # in the archive: pool/main/l/linux/linux-headers-..._amd64.deb

    @property
    def deb(self) -> str:
        return os.path.basename(self.filename)


def parse_stanza(text: str) -> Dict[str, str]:
    """The first stanza of ``apt-cache show``: field -> value (continuation lines joined)."""
    fields: Dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t" and last:
            fields[last] += "\n" + line.strip()
            continue
        key, sep, value = line.partition(":")
        if sep:
            last = key.strip()
            fields[last] = value.strip()
    return fields


def parse_sources(text: str, deb822: bool) -> List[Tuple[str, str, str]]:
    """The system's Debian sources as (options, uri, components) of its first non-security entry
    (debian.sources in deb822, else sources.list): the archive a private apt state reuses."""
    if deb822:
        for block in re.split(r"\n\s*\n", text):
            fields = parse_stanza(block)
            uri = fields.get("URIs", "").split()
            if not uri or "security" in uri[0] or "deb" not in fields.get("Types", "deb").split():
                continue
            signed = fields.get("Signed-By", "")
            options = "[signed-by=%s]" % signed if signed and "\n" not in signed else ""
            return [(options, uri[0], fields.get("Components", "main"))]
        return []
    for line in text.splitlines():
        m = re.match(r"^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$", line.strip())
        if m and "security" not in m.group(2):
            return [((m.group(1) or "").strip(), m.group(2), m.group(4).strip())]
    return []


def parse_security(text: str, deb822: bool) -> str:
    """The URI of the system's Debian security archive (deb.debian.org/debian-security), or ""."""
    if deb822:
        for block in re.split(r"\n\s*\n", text):
            uri = parse_stanza(block).get("URIs", "").split()
            if uri and "security" in uri[0]:
                return uri[0]
        return ""
    for line in text.splitlines():
        m = re.match(r"^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+", line.strip())
        if m and "security" in m.group(2):
            return m.group(2)
    return ""


DEBIAN_SECURITY = "http://deb.debian.org/debian-security"


def sources_list(entries: Sequence[Tuple[str, str, str]], suite: str, family: Family = Family.DEBIAN,
                 security: str = "") -> str:
    """One-line entries for ``suite``, ``suite-updates`` and its security suite, on the system's archive
    (signed by the same keyring). The security suite is where a stable release's new kernel ABIs are
    published first (bookworm-security served 6.1.0-57 before the point release moved it to bookworm):
    without it a private state would not know the newest kernels. Debian's security archive is its own
    (the system's security entry, else deb.debian.org/debian-security) and names the suite
    ``buster/updates`` before bullseye; Ubuntu's archive serves ``SUITE-security`` itself."""
    lines = []
    for options, uri, components in entries:
        if family is Family.DEBIAN:
            secure = (security or DEBIAN_SECURITY, "buster/updates" if suite == "buster" else suite + "-security")
        else:
            secure = (uri, suite + "-security")
        for where, name in ((uri, suite), (uri, suite + "-updates"), secure):
            lines.append(" ".join(x for x in ("deb", options, where, name, components) if x))
    return "\n".join(lines) + "\n"


def cache_root(env: Mapping[str, str], euid: int) -> str:
    """Root without its own XDG_CACHE_HOME: /var/cache/kbuildguard/kernels (shared, survives HOME-less
    units); everyone else: $XDG_CACHE_HOME/kbuildguard/kernels (~/.cache/kbuildguard/kernels).
    A relative or empty XDG_CACHE_HOME is ignored, as the XDG Base Directory specification says
    ("If an implementation encounters a relative path in any of these variables it should consider
    the path invalid and ignore it"); with neither it nor an absolute HOME there is no cache (exit 14)."""
    xdg = env.get("XDG_CACHE_HOME") or ""
    xdg = xdg if os.path.isabs(xdg) else ""
    if euid == 0 and not xdg:
        return "/var/cache/kbuildguard/kernels"
    home = env.get("HOME") or ""
    if not xdg and not os.path.isabs(home):
        raise CannotWrite("no folder for the kernel cache: XDG_CACHE_HOME is %s and HOME is %s" % (
            repr(env["XDG_CACHE_HOME"]) + " (not absolute)" if env.get("XDG_CACHE_HOME") else "unset or empty",
            repr(home) + " (not absolute)" if home else "unset or empty"), hint=CACHE_HINT)
    return os.path.join(xdg or os.path.join(home, ".cache"), "kbuildguard", "kernels")


def cache_key(packages: Sequence[Package]) -> str:
    text = "\n".join("%s %s %s" % (p.name, p.version, p.sha256) for p in sorted(packages))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Fetched(NamedTuple):
    release: str
    root: str  # give it to kernel.resolve() as the sysroot
    source: Source
    packages: Tuple[Package, ...]
    cached: bool  # found in the cache, nothing downloaded
    note: str = ""  # a damaged cache entry that was removed and fetched again: said as a warning

    def as_json(self) -> Dict[str, object]:
        return {"release": self.release, "root": self.root, "from": self.source.describe(), "cached": self.cached,
                "note": self.note or None,
                "packages": [{"name": p.name, "version": p.version, "sha256": p.sha256} for p in self.packages]}


class Apt(NamedTuple):
    """apt-get / apt-cache, the system's state or a private one (``-o Dir::...`` options)."""

    runner: Runner
    options: Tuple[str, ...]
    describe: str  # "the system's apt", "a private apt state for bullseye (DIR)"
    stale: bool = False  # a private state whose sources.list was just (re)written: its lists are updated

    def show(self, specs: Sequence[str]) -> Dict[str, Tuple[Package, str]]:
        """``apt-cache show`` of NAME or NAME=VERSION, all in one call (each call costs seconds on a busy
        machine): name -> (package, its Depends). A name apt does not know is absent."""
        found: Dict[str, Tuple[Package, str]] = {}
        try:
            out = self.runner.probe(["apt-cache"] + list(self.options) + ["show", "--no-all-versions"] + list(specs)).stdout
        except CommandFailed:
            if len(specs) == 1:
                return found
            for spec in specs:
                found.update(self.show([spec]))
            return found
        for block in re.split(r"\n\s*\n", out):
            fields = parse_stanza(block)
            name = fields.get("Package", "")
            if name and fields.get("SHA256") and fields.get("Filename") and name not in found:
                found[name] = (Package(name, fields.get("Version", ""), fields["SHA256"], fields["Filename"]),
                               fields.get("Depends", ""))
        return found

    def search(self, pattern: str) -> List[str]:
        out = self.runner.probe(["apt-cache"] + list(self.options) + ["search", "--names-only", pattern]).stdout
        return [line.split(" ", 1)[0] for line in out.splitlines() if line.strip()]


def private_apt(runner: Runner, cache: str, suite: str, system: Tuple[Sequence[Tuple[str, str, str]], str],
                family: Family = Family.DEBIAN) -> Apt:
    """An apt state of its own for ``suite`` under the cache (DIR/sources.list, lists, archives): the
    system's sources, lists and status are never written. Updated once, and again when its
    sources.list changes (an older kbuildguard wrote it without -updates and -security); run
    `kbuildguard fetch --refresh` (or remove DIR) to read the archive again."""
    system_sources, security = system
    folder = os.path.join(os.path.dirname(cache), "apt", suite)
    if not system_sources:
        raise FetchFailed("cannot make an apt state for %s: no Debian archive in /etc/apt/sources.list(.d)" % suite,
                          hint="write %s/sources.list yourself (deb URI %s main) and run again" % (folder, suite))
    for sub in ("lists/partial", "cache/archives/partial"):
        make_dirs(os.path.join(folder, sub))
    wanted = sources_list(system_sources, suite, family, security)
    path = os.path.join(folder, "sources.list")
    try:
        stale = bounded.read_head(path, 64 * 1024, "a sources.list").decode("utf-8") != wanted
    except (OSError, UnicodeDecodeError, BadInput):
        stale = True
    if stale:
        try:
            _write_atomic(path, wanted)
        except OSError as exc:
            raise CannotWrite("cannot write %s: %s" % (path, exc.strerror or exc), hint=CACHE_HINT)
    options = ("-o", "Dir::Etc::SourceList=%s" % path, "-o", "Dir::Etc::SourceParts=/dev/null",
               "-o", "Dir::State::Lists=%s/lists" % folder, "-o", "Dir::Cache=%s/cache" % folder)
    return Apt(runner, options, "a private apt state for %s (%s)" % (suite, folder), stale)


@contextlib.contextmanager
def private_state(runner: Runner, cache: str, suite: str, family: Family, refresh: bool, wait: float) -> Iterator[Apt]:
    """The private apt state for ``suite``, made, updated and read under its lock (DIR/lock; apt's own
    lock is DIR/lists/lock, an fcntl lock that makes a second `apt-get update` fail at once with exit
    100 rather than wait): two runs at once do not collide, the second waits at most ``wait`` seconds."""
    folder = os.path.join(os.path.dirname(cache), "apt", suite)
    make_dirs(folder)
    with locked(runner, os.path.join(folder, "lock"), "apt state for %s" % suite, wait):
        apt = private_apt(runner, cache, suite, read_system_sources(), family)
        update_private(apt, refresh)
        yield apt


def _lists_of(apt: Apt) -> str:
    return [o.split("=", 1)[1] for o in apt.options if o.startswith("Dir::State::Lists=")][0]


def _has_lists(lists: str) -> bool:
    return any("_Packages" in n for n in os.listdir(lists))


def update_private(apt: Apt, refresh: bool = False) -> None:
    """apt-get update of a private state: once, or again with --refresh. apt-get update exits 0 when
    it could not reach the archive (it only warns): the lists it left decide."""
    lists = _lists_of(apt)
    if not refresh and not apt.stale and _has_lists(lists):
        return
    hint = "run again when the archive is reachable, or copy the lists of a machine that reached it into %s" % lists
    try:
        apt.runner.action(["apt-get"] + list(apt.options) + ["update", "-q"])
    except CommandFailed as exc:
        raise FetchFailed("apt-get update for %s failed (exit %d): no network, or the archive is unreachable"
                          % (apt.describe, exc.returncode), hint=hint)
    if not _has_lists(lists):
        raise FetchFailed("apt-get update for %s fetched no package lists: no network, or the archive is unreachable"
                          % apt.describe, hint=hint)


def read_system_sources() -> Tuple[List[Tuple[str, str, str]], str]:
    """The system's archive entry and its security archive's URI (parse_sources, parse_security)."""
    for path, deb822 in (("/etc/apt/sources.list.d/debian.sources", True), ("/etc/apt/sources.list", False)):
        try:
            text = bounded.read_head(path, 1024 * 1024, "an apt sources file").decode("utf-8", errors="replace")
        except (OSError, BadInput):
            continue
        found = parse_sources(text, deb822)
        if found:
            return found, parse_security(text, deb822)
    return [], ""


class Request(NamedTuple):
    releases: Tuple[str, ...]
    source: Source
    cache: str  # cache_root()
    refresh: bool = False


def resolved_debian(runner: Runner, source: Source, cache: str, release: str, refresh: bool,
                    wait: float = LOCK_WAIT) -> Tuple[Apt, List[Package]]:
    """The packages, from the system's apt when it offers the release; else from the suite named, or
    the one DEBIAN_SUITES gives for the release, through a private apt state."""
    suite = source.suite
    if not suite:
        system = Apt(runner, (), "the system's apt")
        try:
            return system, resolve_debian(system, source.family, release)
        except PackageUnavailable:
            suite = debian_suite_of(release) or "" if source.family is Family.DEBIAN else ""
            if not suite:
                raise
    with private_state(runner, cache, suite, source.family, refresh, wait) as apt:
        return apt, resolve_debian(apt, source.family, release)


def resolve_debian(apt: Apt, family: Family, release: str) -> List[Package]:
    """The headers package first (its Depends name the rest), then the others in one apt-cache call."""
    names = asked_packages(family, release)
    shown = apt.show([names[0]])
    if names[0] not in shown:
        raise PackageUnavailable(
            "kernel %s: %s does not offer %s" % (release, apt.describe, names[0]),
            hint="list what it offers: kbuildguard fetch --list 'available:%s'; another suite: --fetch-from debian:SUITE "
                 "(%s); after an apt-get update" % (_glob_near(release), ", ".join(s for _, s in DEBIAN_SUITES)))
    headers, depends = shown[names[0]]
    deps = followed_dependencies(family, depends)
    wanted = [Dependency(d.name, d.version) for d in deps] + [Dependency(n, headers.version) for n in names[1:]]
    shown = apt.show(["%s=%s" % (d.name, d.version) if d.version else d.name for d in wanted])
    missing = [d for d in wanted if d.name not in shown]
    if missing:  # the image at the headers' version may be gone while the headers stay: the candidate then
        shown.update(apt.show([d.name for d in missing]))
    found = [headers]
    for d in wanted:
        if d.name not in shown:
            raise PackageUnavailable("kernel %s: %s does not offer %s%s (%s needs it)" % (
                release, apt.describe, d.name, " = " + d.version if d.version else "", headers.name))
        found.append(shown[d.name][0])
    return found


def _glob_near(release: str) -> str:
    return re.sub(r"^(\d+\.\d+\.\d+)-\d+-", r"\1-*-", release)


def download_debian(apt: Apt, packages: Sequence[Package], debs: str) -> None:
    """apt-get download what is not already in ``debs`` with its checksum (a folder filled by hand
    counts): apt verifies what it downloads against the lists it read."""
    os.makedirs(debs, exist_ok=True)
    missing = [p for p in packages if not _has_file(os.path.join(debs, p.deb), p.sha256)]
    if not missing:
        return
    try:
        apt.runner.action(["apt-get"] + list(apt.options) + ["download", "-q"] +
                          ["%s=%s" % (p.name, p.version) for p in missing], cwd=debs)
    except CommandFailed as exc:
        raise FetchFailed(
            "could not download %s through %s (exit %d)" % (", ".join(p.deb for p in missing), apt.describe, exc.returncode),
            hint="offline? put these files into %s by hand (from any mirror: %s) and run again" % (
                debs, ", ".join(p.filename for p in missing)))
    for p in missing:
        if not _has_file(os.path.join(debs, p.deb), p.sha256):
            raise FetchFailed("%s: apt-get download left no file with SHA256 %s" % (os.path.join(debs, p.deb), p.sha256))


def _has_file(path: str, sha256: str) -> bool:
    if not os.path.isfile(path):
        return False
    try:
        return bounded.sha256_file(path, "a downloaded package") == sha256
    except (OSError, BadInput):
        return False


def fix_absolute_includes(root: str, final_root: str) -> List[str]:
    """Debian's flavour headers say ``include /usr/src/linux-headers-ABI-common/Makefile``: an absolute
    path outside the root. Rewritten to the unpacked common tree (what scripts/test did for bullseye)
    at ``final_root``, where the root is renamed to once complete."""
    fixed: List[str] = []
    src = os.path.join(root, "usr/src")
    try:
        names = sorted(os.listdir(src))
    except OSError:
        return fixed
    for name in names:
        path = os.path.join(src, name, "Makefile")
        try:
            text = bounded.read_head(path, 64 * 1024, "a Makefile").decode("utf-8")
        except (OSError, UnicodeDecodeError, BadInput):
            continue
        if len(text) < 4096 and re.search(r"^include /usr/src/", text, re.M):
            with open(path, "w", encoding="utf-8") as f:
                f.write(re.sub(r"^include /usr/src/", "include %s/usr/src/" % final_root, text, flags=re.M))
            fixed.append(path)
    return fixed


def merge_usr(root: str) -> None:
    """trixie's packages ship usr/lib/modules (merged /usr): lib -> usr/lib, as on the installed system."""
    if os.path.isdir(os.path.join(root, "usr/lib/modules")) and not os.path.lexists(os.path.join(root, "lib")):
        os.symlink("usr/lib", os.path.join(root, "lib"))


def link_boot_files(root: str, release: str) -> None:
    """EL's kernel-core keeps vmlinuz and config in /lib/modules/R/ (its %posttrans copies them to
    /boot): link them where an installed kernel has them."""
    mods = os.path.join(root, "lib/modules", release)
    os.makedirs(os.path.join(root, "boot"), exist_ok=True)
    for name in ("vmlinuz", "config", "System.map"):
        src, dst = os.path.join(mods, name), os.path.join(root, "boot", "%s-%s" % (name, release))
        if os.path.isfile(src) and not os.path.lexists(dst):
            os.symlink(os.path.relpath(src, os.path.dirname(dst)), dst)


def unpack(runner: Runner, files: Sequence[str], root: str, family: Family) -> None:
    for path in files:
        try:
            if family.rpm:
                # rpm2archive writes FILE.tgz beside the rpm; tarfile unpacks it (no shell pipe to cpio)
                runner.probe(["rpm2archive", path])
                _untar(path + ".tgz", root)
                os.unlink(path + ".tgz")
            else:
                runner.probe(["dpkg-deb", "-x", path, root], timeout=600)
        except CommandFailed as exc:
            raise FetchFailed("cannot unpack %s: %s" % (path, exc))


def _inside(name: str) -> Optional[str]:
    """A member's name relative to the root, or None when it would leave it: absolute, or with a
    '..' that climbs out ("../x", "a/../../x"; str.lstrip("./") once turned "../x" into "x")."""
    if name.startswith("/"):
        return None
    norm = os.path.normpath(name)
    return None if norm == ".." or norm.startswith("../") else norm


def _untar(archive: str, root: str) -> None:
    """Members stay inside the root: no absolute names, no '..', no device files, nothing written
    through a symbolic link the archive made (``lib -> /etc``, then ``lib/passwd``): tarfile before
    3.12's filters would follow it."""
    with bounded.open_file(archive, "a package's data archive") as raw, tarfile.open(fileobj=raw) as tar:
        members = []
        links: List[str] = []
        for m in tar.getmembers():
            name = _inside(m.name)
            if name is None or not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                continue
            if m.islnk() and _inside(m.linkname) is None:
                continue
            if any(name.startswith(link + "/") for link in links):
                continue
            if m.issym():
                links.append(name)
            members.append(m)
        if hasattr(tarfile, "tar_filter"):  # 3.12+ (and security updates of older ones); 3.14 defaults to "data",
            # which refuses the absolute symlinks kernel packages ship (lib/modules/R/build -> /usr/src/...)
            tar.extractall(root, members=members, filter="tar")  # noqa: S202 - members filtered above
        else:
            tar.extractall(root, members=members)  # noqa: S202 - members filtered above


def finish(staging: str, final: str, release: str, family: Family, packages: Sequence[Package], source: Source) -> None:
    """The root made usable, its manifest recorded, renamed into place, and the completion marker
    written last: a folder without the marker (a run killed while unpacking or renaming) is never used."""
    root = os.path.join(staging, "root")
    fix_absolute_includes(root, os.path.join(final, "root"))
    merge_usr(root)
    link_boot_files(root, release)
    with open(os.path.join(staging, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump({"release": release, "from": source.describe(),
                   "packages": [p._asdict() for p in packages]}, f, indent=1)
    files = record_files(root)
    _write_atomic(os.path.join(staging, FILES), json.dumps({"version": 1, "files": files}, sort_keys=True))
    if os.path.isdir(final):
        shutil.rmtree(final)
    os.rename(staging, final)
    # stat after the rename: the stat record is what makes the next use cheap
    _write_atomic(os.path.join(final, STATS), json.dumps(stat_record(os.path.join(final, "root"), files)))
    _write_atomic(os.path.join(final, COMPLETE), _sha256_file(os.path.join(final, FILES)) + "\n")


# The unpacked root's manifest (issue 20): a damaged cache entry -- a file truncated by a full disk,
# deleted by a cleaner, edited by hand, a run killed while unpacking -- would be read as the kernel's
# own facts and could give a wrong "ok". FILES holds every entry of the root (kind, size, SHA256 of a
# file, target of a symlink); COMPLETE, written last, holds the SHA256 of FILES; STATS holds each
# file's (size, mtime_ns, ctime_ns, inode) as last verified. A use compares the stat of every entry
# with STATS (1.2-1.5 s for a Debian kernel's 21,488 entries on a loaded 2-core machine; hashing them
# all is 9.5 s, done at unpacking) and hashes only the files whose stat differs: any write through
# the file system changes ctime (fs/inode.c file_update_time() on write, fs/utimes.c vfs_utimes()
# sets ATTR_CTIME whatever times it is given, fs/attr.c notify_change() on truncate and chmod; no
# system call sets ctime to a chosen value), so an equal stat means unchanged contents
# short of corruption below the file system. A file whose stat differs but whose SHA256 is the
# recorded one is accepted and its stat recorded again (a cache copied with cp -a).
FILES = "files.json"
STATS = "stats.json"
COMPLETE = "complete"
MAX_MANIFEST = 64 * 1024 * 1024


def _sha256_file(path: str) -> str:
    return bounded.sha256_file(path, "a downloaded file")


def _write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _entries(root: str) -> Dict[str, os.stat_result]:
    """Every entry under the root, by relative path, from lstat (symlinks are not followed). scandir
    and string slicing: os.walk with os.path.relpath spent 2 of its 3 s in relpath on 21,000 entries."""
    found: Dict[str, os.stat_result] = {}
    pending = [""]
    while pending:
        rel = pending.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            for entry in it:
                name = rel + "/" + entry.name if rel else entry.name
                st = entry.stat(follow_symlinks=False)
                found[name] = st
                if stat.S_ISDIR(st.st_mode):
                    pending.append(name)
    return found


def record_files(root: str) -> Dict[str, List[object]]:
    """rel -> ["d"], ["f", size, sha256] or ["l", target]; anything else in a package is refused."""
    files: Dict[str, List[object]] = {}
    for rel, st in sorted(_entries(root).items()):
        path = os.path.join(root, rel)
        if stat.S_ISDIR(st.st_mode):
            files[rel] = ["d"]
        elif stat.S_ISLNK(st.st_mode):
            files[rel] = ["l", os.readlink(path)]
        elif stat.S_ISREG(st.st_mode):
            files[rel] = ["f", st.st_size, _sha256_file(path)]
        else:
            raise FetchFailed("%s: neither a file, a folder nor a symlink in a kernel package" % path)
    return files


def _stat_key(st: os.stat_result) -> List[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def stat_record(root: str, files: Mapping[str, List[object]]) -> Dict[str, List[int]]:
    return {rel: _stat_key(os.lstat(os.path.join(root, rel))) for rel, kind in files.items() if kind[0] == "f"}


def _load_json(path: str) -> object:
    from kbuildguard import bounded

    return json.loads(bounded.read_text(path, bounded.Limit(MAX_MANIFEST, "a kbuildguard cache manifest")))


def damage(folder: str) -> Optional[str]:
    """Why the cache entry ``folder`` must not be used, or None when its root is what was unpacked."""
    root = os.path.join(folder, "root")
    try:
        marker = bounded.read_head(os.path.join(folder, COMPLETE), 100, "a completion marker").decode(
            "utf-8", errors="replace").strip()
    except (OSError, BadInput):
        return "incomplete (no completion marker: unpacking was interrupted, or made by an older kbuildguard)"
    try:
        if _sha256_file(os.path.join(folder, FILES)) != marker:
            return "its manifest %s does not match the completion marker" % FILES
        files = _load_json(os.path.join(folder, FILES))["files"]  # type: ignore[index]
        try:
            stats = _load_json(os.path.join(folder, STATS))
        except (OSError, ValueError, BadInput):
            stats = {}
        if not isinstance(files, dict) or not isinstance(stats, dict):
            return "its manifest is not readable"
        entries = _entries(root)
    except (OSError, ValueError, KeyError, TypeError, BadInput) as exc:
        return "its manifest is not readable (%s)" % exc
    if set(entries) != set(files):
        missing = sorted(set(files) - set(entries))
        extra = sorted(set(entries) - set(files))
        return "%s" % ("%d file(s) missing (%s)" % (len(missing), missing[0]) if missing else
                       "%d file(s) that were not unpacked (%s)" % (len(extra), extra[0]))
    rehashed = False
    for rel, kind in sorted(files.items()):
        st = entries[rel]
        path = os.path.join(root, rel)
        if kind[0] == "d":
            if not stat.S_ISDIR(st.st_mode):
                return "%s is no longer a folder" % rel
        elif kind[0] == "l":
            if not stat.S_ISLNK(st.st_mode) or os.readlink(path) != kind[1]:
                return "the symlink %s changed" % rel
        elif not stat.S_ISREG(st.st_mode) or st.st_size != kind[1]:
            return "%s changed (size %d, unpacked %s)" % (rel, st.st_size, kind[1])
        elif stats.get(rel) != _stat_key(st):
            try:
                if _sha256_file(path) != kind[2]:
                    return "%s changed (its SHA256 is not the unpacked file's)" % rel
            except OSError as exc:
                return "%s is not readable (%s)" % (rel, exc.strerror)
            rehashed = True
    if rehashed:
        try:
            _write_atomic(os.path.join(folder, STATS), json.dumps(stat_record(root, files)))
        except OSError:
            pass  # verified again next time
    return None


def usable(folder: str) -> Tuple[bool, str]:
    """(True, "") for an existing cache entry that verifies; a damaged one is removed, to be fetched
    again by the caller, with the reason to say (False, WHY); refused when it cannot be removed."""
    if not os.path.isdir(folder):
        return False, ""
    why = damage(folder)
    if why is None:
        return True, ""
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        raise FetchFailed("the cached kernel %s is damaged: %s; and it cannot be removed (%s)" % (folder, why, exc.strerror),
                          hint="remove %s by hand and run again" % folder)
    return False, "the cached kernel %s was damaged (%s): fetched again" % (folder, why)


def fetch_debian(runner: Runner, release: str, source: Source, cache: str, refresh: bool = False,
                 wait: float = LOCK_WAIT) -> Fetched:
    apt, packages = resolved_debian(runner, source, cache, release, refresh, wait)
    folder = os.path.join(cache, "%s-%s" % (release, cache_key(packages)))
    done = os.path.join(folder, "root")
    ok, note = usable(folder)
    if ok:
        return Fetched(release=release, root=done, source=source, packages=tuple(packages), cached=True)
    staging = folder + ".partial"
    debs = os.path.join(cache, "debs")
    download_debian(apt, packages, debs)
    if os.path.isdir(staging):
        shutil.rmtree(staging)
    os.makedirs(os.path.join(staging, "root"))
    unpack(runner, [os.path.join(debs, p.deb) for p in packages], os.path.join(staging, "root"), source.family)
    finish(staging, folder, release, source.family, packages, source)
    for p in packages:  # the unpacked root is what is kept; a refetch verifies again
        try:
            os.unlink(os.path.join(debs, p.deb))
        except OSError:
            pass
    return Fetched(release=release, root=done, source=source, packages=tuple(packages), cached=False, note=note)


def rpm_options(source: Source) -> List[str]:
    if source.family is Family.DNF:
        opts = ["--installroot", source.root] if source.root else []
        return opts + (["--releasever", source.releasever] if source.releasever else [])
    return ["--root", source.root] if source.root else []


def fetch_rpm(runner: Runner, release: str, source: Source, cache: str) -> Fetched:
    """dnf download / zypper download: the names, then the files' own checksums key the cache (the
    repositories' metadata is not read twice to learn them)."""
    names = asked_packages(source.family, release)
    staging = os.path.join(cache, "%s-download.partial" % release)
    if os.path.isdir(staging):
        shutil.rmtree(staging)
    rpms = os.path.join(staging, "rpms")
    os.makedirs(rpms)
    hint = ("offline, or the repositories do not offer them: put the .rpm files into a folder, `createrepo_c` it "
            "and pass a root whose repository points there with --fetch-from %s:ROOT" % source.family)
    if source.family is Family.DNF:
        # `dnf download` is a plugin (dnf-plugins-core; on Debian it Breaks zypper), and `dnf install
        # --downloadonly` needs root: dnf says where the packages are, and they are read from there.
        argv = ["dnf"] + rpm_options(source) + ["repoquery", "-q", "--location"] + list(names)
        try:
            urls = [u.strip() for u in runner.probe(argv, timeout=600).stdout.splitlines() if u.strip()]
        except CommandFailed as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise FetchFailed("dnf repoquery for %s failed (exit %d)" % (", ".join(names), exc.returncode), hint=hint)
        if len(urls) < len(names):
            shutil.rmtree(staging, ignore_errors=True)
            raise FetchFailed("could not download %s: dnf knows %d of them (%s)" % (
                ", ".join(names), len(urls), ", ".join(os.path.basename(u) for u in urls) or "none"), hint=hint)
        for url in urls:
            download_url(url, os.path.join(rpms, os.path.basename(url)), hint)
    else:
        # zypper download keeps its files in its package cache: --pkg-cache-dir points it at ours
        argv = ["zypper", "--non-interactive", "--pkg-cache-dir", rpms] + rpm_options(source) + ["download"] + list(names)
        try:
            runner.action(argv)
        except CommandFailed as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise FetchFailed("could not download %s with %s (exit %d)" % (", ".join(names), argv[0], exc.returncode),
                              hint=hint)
    files = sorted(os.path.join(d, n) for d, _, ns in os.walk(rpms) for n in ns if n.endswith(".rpm"))
    packages = []
    for path in files:
        packages.append(Package(os.path.basename(path)[:-4], "", _sha256_file(path), os.path.basename(path)))
    if len(files) < len(names):
        shutil.rmtree(staging, ignore_errors=True)
        raise PackageUnavailable("kernel %s: %s downloaded %d file(s) for %s" % (release, argv[0], len(files), ", ".join(names)))
    folder = os.path.join(cache, "%s-%s" % (release, cache_key(packages)))
    ok, note = usable(folder)
    if ok:
        shutil.rmtree(staging, ignore_errors=True)
        return Fetched(release=release, root=os.path.join(folder, "root"), source=source, packages=tuple(packages), cached=True)
    os.makedirs(os.path.join(staging, "root"))
    unpack(runner, files, os.path.join(staging, "root"), source.family)
    shutil.rmtree(rpms)
    finish(staging, folder, release, source.family, packages, source)
    return Fetched(release=release, root=os.path.join(folder, "root"), source=source, packages=tuple(packages), cached=False, note=note)


def download_url(url: str, dest: str, hint: str, limit: int = 2 << 30) -> None:
    """A package file from the URL its repository gives (http, https, file), bounded in size."""
    import urllib.request

    if not re.match(r"^(https?|file)://", url):
        raise FetchFailed("%s: not a package URL" % url, hint=hint)
    try:
        with urllib.request.urlopen(url, timeout=120) as response, open(dest, "wb") as out:  # noqa: S310 - scheme checked
            total = 0
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    raise FetchFailed("%s: larger than %d bytes" % (url, limit))
                out.write(chunk)
    except (OSError, ValueError) as exc:
        raise FetchFailed("could not download %s: %s" % (url, exc), hint=hint)


@contextlib.contextmanager
def locked(runner: Runner, path: str, what: str, wait: float = LOCK_WAIT) -> Iterator[None]:
    """An exclusive flock on ``path``, waited for at most ``wait`` seconds, saying so while it waits:
    a hook and a user's check may fetch at once, and they share staging folders, downloaded files
    and private apt states (two apt-get updates over one lists folder collide). The kernel releases
    a flock when its holder dies, so a lock never outlives a killed run."""
    import fcntl

    try:
        handle = open(path, "a")
    except OSError as exc:
        raise CannotWrite("cannot write %s: %s" % (path, exc.strerror or exc), hint=CACHE_HINT)
    with handle:
        deadline = time.monotonic() + wait
        said = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise FetchFailed("%s: another kbuildguard still holds %s after %d s" % (what, path, wait),
                                      hint="run again when it has finished (the lock goes with its process)")
                if not said:
                    runner.console.warn("%s: waiting for another kbuildguard that holds %s (at most %d s)"
                                        % (what, path, wait))
                    said = True
                time.sleep(0.2)
        yield


def make_dirs(path: str) -> None:
    """os.makedirs, a folder that cannot be made being one line (exit 14): a root-owned cache for a
    user, HOME=/nonexistent in a unit, a read-only file system."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise CannotWrite("cannot make the folder %s: %s" % (path, exc.strerror or exc), hint=CACHE_HINT)


def fetch(runner: Runner, release: str, source: Source, cache: str, refresh: bool = False,
          wait: float = LOCK_WAIT) -> Fetched:
    if "/" in release or not release or release.startswith("-") or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$", release):
        raise BadInput("%r: not a kernel release" % release)
    make_dirs(cache)
    # one fetch at a time per cache: they share the staging folders and the downloaded files
    with locked(runner, os.path.join(cache, ".lock"), "fetch kernel %s" % release, wait):
        try:
            if source.family.rpm:
                return fetch_rpm(runner, release, source, cache)
            return fetch_debian(runner, release, source, cache, refresh, wait)
        except PermissionError as exc:
            raise CannotWrite("fetch kernel %s: %s: %s" % (release, exc.filename or cache, exc.strerror), hint=CACHE_HINT)


ZYPPER_NOTHING_FOUND = 104  # ZYPPER_EXIT_INF_CAP_NOT_FOUND: `zypper search` matched nothing (zypper(8), EXIT CODES)


def available(runner: Runner, pattern: str, source: Source, cache: str, refresh: bool = False,
              wait: float = LOCK_WAIT) -> List[str]:
    """Every release the distribution offers whose name matches the glob (``6.1.0-*-amd64``, or one
    release with no wildcard), newest first: apt-cache search over the headers packages (the system's
    lists, else the suite of the pattern's series through a private apt state); dnf repoquery /
    zypper search over the -devel package. A failing package tool is one line (exit 15)."""
    if source.family is Family.DNF:
        argv = ["dnf"] + rpm_options(source) + ["repoquery", "-q", "--qf", "%{version}-%{release}.%{arch}", "kernel-devel"]
        names = [line.strip() for line in _listing(runner, argv, ()).splitlines() if line.strip()]
    elif source.family is Family.ZYPPER:
        out = _listing(runner, ["zypper", "--non-interactive"] + rpm_options(source) +
                       ["search", "-s", "--match-exact", "kernel-default-devel"], (ZYPPER_NOTHING_FOUND,))
        names = [cols[3].strip() + "-default" for cols in (line.split("|") for line in out.splitlines())
                 if len(cols) > 4 and cols[1].strip() == "kernel-default-devel"]
    else:
        names = []
        suite = source.suite
        if not suite:
            names = _headers_releases(Apt(runner, (), "the system's apt"))
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names) and source.family is Family.DEBIAN:
                suite = debian_suite_of(pattern) or ""
        if suite:
            make_dirs(cache)
            with private_state(runner, cache, suite, source.family, refresh, wait) as apt:
                names = _headers_releases(apt)
    return sorted({n for n in names if fnmatch.fnmatchcase(n, pattern)}, key=functools.cmp_to_key(compare), reverse=True)


def _listing(runner: Runner, argv: List[str], nothing: Tuple[int, ...]) -> str:
    """A package tool's listing; an exit code in ``nothing`` is an empty one."""
    try:
        return runner.probe(argv, timeout=600, ok_returncodes=(0,) + nothing).stdout
    except CommandFailed as exc:
        what = " ".join([argv[0]] + [a for a in argv if a in ("repoquery", "search")] + [argv[-1]])
        raise FetchFailed("%s failed (exit %d)%s" % (what, exc.returncode, ": " + _first_line(exc.stderr) if exc.stderr.strip() else ""),
                          hint="its repositories may be unreachable or unconfigured: run it by hand to see why")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:200]


# Headers packages that are not a kernel: Debian's common trees (linux-headers-6.1.0-56-common,
# -common-rt) and its meta packages over every flavour (linux-headers-6.1.0-56-all, -all-amd64);
# Ubuntu's base headers (linux-headers-6.8.0-45, the flavour packages depend on it); Debian's
# unversioned metas (linux-headers-amd64).
NOT_A_KERNEL = re.compile(r"-(common|common-rt|all|all-[a-z0-9]+)$|^\d+\.\d+(\.\d+)?-[\d.]+$|^\D")


def _headers_releases(apt: Apt) -> List[str]:
    prefix = "linux-headers-"
    try:
        found = apt.search("^" + re.escape(prefix))
    except CommandFailed as exc:
        raise FetchFailed("apt-cache search through %s failed (exit %d)" % (apt.describe, exc.returncode),
                          hint="run apt-get update (or --refresh for a private suite) and again")
    releases = [n[len(prefix):] for n in found if n.startswith(prefix)]
    return [r for r in releases if not NOT_A_KERNEL.search(r)]
