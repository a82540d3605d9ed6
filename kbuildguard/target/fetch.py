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

import fnmatch
import functools
import hashlib
import json
import os
import re
import shutil
import tarfile
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from kbuildguard.errors import BadInput, FetchFailed, PackageUnavailable, UsageError
from kbuildguard.probecache import cache_home
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


def sources_list(entries: Sequence[Tuple[str, str, str]], suite: str) -> str:
    """One-line entries for ``suite`` on the system's archive (signed by the same keyring)."""
    lines = []
    for options, uri, components in entries:
        lines.append(" ".join(x for x in ("deb", options, uri, suite, components) if x))
    return "\n".join(lines) + "\n"


def cache_root(env: Mapping[str, str], euid: int) -> str:
    """Root without its own XDG_CACHE_HOME: /var/cache/kbuildguard/kernels (shared, survives HOME-less
    units); everyone else: $XDG_CACHE_HOME/kbuildguard/kernels (~/.cache/kbuildguard/kernels)."""
    if euid == 0 and not env.get("XDG_CACHE_HOME"):
        return "/var/cache/kbuildguard/kernels"
    return os.path.join(cache_home(env), "kernels")


def cache_key(packages: Sequence[Package]) -> str:
    text = "\n".join("%s %s %s" % (p.name, p.version, p.sha256) for p in sorted(packages))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Fetched(NamedTuple):
    release: str
    root: str  # give it to kernel.resolve() as the sysroot
    source: Source
    packages: Tuple[Package, ...]
    cached: bool  # found in the cache, nothing downloaded

    def as_json(self) -> Dict[str, object]:
        return {"release": self.release, "root": self.root, "from": self.source.describe(), "cached": self.cached,
                "packages": [{"name": p.name, "version": p.version, "sha256": p.sha256} for p in self.packages]}


class Apt(NamedTuple):
    """apt-get / apt-cache, the system's state or a private one (``-o Dir::...`` options)."""

    runner: Runner
    options: Tuple[str, ...]
    describe: str  # "the system's apt", "a private apt state for bullseye (DIR)"

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


def private_apt(runner: Runner, cache: str, suite: str, system_sources: Sequence[Tuple[str, str, str]]) -> Apt:
    """An apt state of its own for ``suite`` under the cache (DIR/sources.list, lists, archives): the
    system's sources, lists and status are never written. Updated once; run `kbuildguard fetch
    --refresh` (or remove DIR) to read the archive again."""
    folder = os.path.join(os.path.dirname(cache), "apt", suite)
    if not system_sources:
        raise FetchFailed("cannot make an apt state for %s: no Debian archive in /etc/apt/sources.list(.d)" % suite,
                          hint="write %s/sources.list yourself (deb URI %s main) and run again" % (folder, suite))
    for sub in ("lists/partial", "cache/archives/partial"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    with open(os.path.join(folder, "sources.list"), "w", encoding="utf-8") as f:
        f.write(sources_list(system_sources, suite))
    options = ("-o", "Dir::Etc::SourceList=%s/sources.list" % folder, "-o", "Dir::Etc::SourceParts=/dev/null",
               "-o", "Dir::State::Lists=%s/lists" % folder, "-o", "Dir::Cache=%s/cache" % folder)
    return Apt(runner, options, "a private apt state for %s (%s)" % (suite, folder))


def _has_lists(lists: str) -> bool:
    return any("_Packages" in n for n in os.listdir(lists))


def update_private(apt: Apt, refresh: bool = False) -> None:
    """apt-get update of a private state: once, or again with --refresh. apt-get update exits 0 when
    it could not reach the archive (it only warns): the lists it left decide."""
    lists = [o.split("=", 1)[1] for o in apt.options if o.startswith("Dir::State::Lists=")][0]
    if not refresh and _has_lists(lists):
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


def read_system_sources() -> List[Tuple[str, str, str]]:
    for path, deb822 in (("/etc/apt/sources.list.d/debian.sources", True), ("/etc/apt/sources.list", False)):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                found = parse_sources(f.read(1024 * 1024), deb822)
        except OSError:
            continue
        if found:
            return found
    return []


class Request(NamedTuple):
    releases: Tuple[str, ...]
    source: Source
    cache: str  # cache_root()
    refresh: bool = False


def resolved_debian(runner: Runner, source: Source, cache: str, release: str, refresh: bool) -> Tuple[Apt, List[Package]]:
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
    apt = private_apt(runner, cache, suite, read_system_sources())
    update_private(apt, refresh)
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
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest() == sha256


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
            with open(path, encoding="utf-8") as f:
                text = f.read(64 * 1024)
        except (OSError, UnicodeDecodeError):
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


def _untar(archive: str, root: str) -> None:
    """Members stay inside the root: no absolute names, no '..', no device files."""
    with tarfile.open(archive) as tar:
        members = []
        for m in tar.getmembers():
            name = os.path.normpath(m.name.lstrip("./").lstrip("/"))
            if name.startswith("..") or not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                continue
            if m.islnk() and os.path.normpath(m.linkname.lstrip("./").lstrip("/")).startswith(".."):
                continue
            members.append(m)
        if hasattr(tarfile, "tar_filter"):  # 3.12+ (and security updates of older ones); 3.14 defaults to "data",
            # which refuses the absolute symlinks kernel packages ship (lib/modules/R/build -> /usr/src/...)
            tar.extractall(root, members=members, filter="tar")  # noqa: S202 - members filtered above
        else:
            tar.extractall(root, members=members)  # noqa: S202 - members filtered above


def finish(staging: str, final: str, release: str, family: Family, packages: Sequence[Package], source: Source) -> None:
    root = os.path.join(staging, "root")
    fix_absolute_includes(root, os.path.join(final, "root"))
    merge_usr(root)
    link_boot_files(root, release)
    with open(os.path.join(staging, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump({"release": release, "from": source.describe(),
                   "packages": [p._asdict() for p in packages]}, f, indent=1)
    if os.path.isdir(final):
        shutil.rmtree(final)
    os.rename(staging, final)


def fetch_debian(runner: Runner, release: str, source: Source, cache: str, refresh: bool = False) -> Fetched:
    apt, packages = resolved_debian(runner, source, cache, release, refresh)
    folder = os.path.join(cache, "%s-%s" % (release, cache_key(packages)))
    done = os.path.join(folder, "root")
    if os.path.isdir(done) and os.path.isfile(os.path.join(folder, "manifest.json")):
        return Fetched(release, done, source, tuple(packages), True)
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
    return Fetched(release, done, source, tuple(packages), False)


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
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        packages.append(Package(os.path.basename(path)[:-4], "", h.hexdigest(), os.path.basename(path)))
    if len(files) < len(names):
        shutil.rmtree(staging, ignore_errors=True)
        raise PackageUnavailable("kernel %s: %s downloaded %d file(s) for %s" % (release, argv[0], len(files), ", ".join(names)))
    folder = os.path.join(cache, "%s-%s" % (release, cache_key(packages)))
    if os.path.isdir(os.path.join(folder, "root")):
        shutil.rmtree(staging, ignore_errors=True)
        return Fetched(release, os.path.join(folder, "root"), source, tuple(packages), True)
    os.makedirs(os.path.join(staging, "root"))
    unpack(runner, files, os.path.join(staging, "root"), source.family)
    shutil.rmtree(rpms)
    finish(staging, folder, release, source.family, packages, source)
    return Fetched(release, os.path.join(folder, "root"), source, tuple(packages), False)


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


def fetch(runner: Runner, release: str, source: Source, cache: str, refresh: bool = False) -> Fetched:
    if "/" in release or not release or release.startswith("-") or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$", release):
        raise BadInput("%r: not a kernel release" % release)
    os.makedirs(cache, exist_ok=True)
    # one fetch at a time per cache: a hook and a user's check may fetch the same release at once,
    # and they share the staging folders and the downloaded files
    import fcntl

    with open(os.path.join(cache, ".lock"), "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if source.family.rpm:
            return fetch_rpm(runner, release, source, cache)
        return fetch_debian(runner, release, source, cache, refresh)


def available(runner: Runner, pattern: str, source: Source, cache: str, refresh: bool = False) -> List[str]:
    """Every release the distribution offers whose name matches the glob (``6.1.0-*-amd64``), newest first:
    apt-cache search over the headers packages (the system's lists, else the suite of the pattern's
    series through a private apt state); dnf repoquery / zypper search over the -devel package."""
    if source.family is Family.DNF:
        argv = ["dnf"] + rpm_options(source) + ["repoquery", "-q", "--qf", "%{version}-%{release}.%{arch}", "kernel-devel"]
        names = [line.strip() for line in runner.probe(argv, timeout=600).stdout.splitlines() if line.strip()]
    elif source.family is Family.ZYPPER:
        out = runner.probe(["zypper", "--non-interactive"] + rpm_options(source) +
                           ["search", "-s", "--match-exact", "kernel-default-devel"], timeout=600).stdout
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
            apt = private_apt(runner, cache, suite, read_system_sources())
            update_private(apt, refresh)
            names = _headers_releases(apt)
    return sorted({n for n in names if fnmatch.fnmatchcase(n, pattern)}, key=functools.cmp_to_key(compare), reverse=True)


def _headers_releases(apt: Apt) -> List[str]:
    prefix = "linux-headers-"
    return [n[len(prefix):] for n in apt.search("^" + re.escape(prefix)) if n.startswith(prefix)]
