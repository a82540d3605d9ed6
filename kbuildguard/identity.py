"""What a compiler *is*, parsed from every text that records it.

The same compiler is written many ways: ``gcc version 8.3.1 20190311 (Red Hat 8.3.1-3) (GCC)`` in an
old /proc/version, ``gcc (GCC) 8.3.1 20190311 (Red Hat 8.3.1-3)`` from ``gcc --version``,
``GCC: (GNU) 8.3.1 20190311 (Red Hat 8.3.1-3)`` in a .ko's .comment. All three parse to one
CompilerId, so that comparing them compares compilers, not spellings.
"""

import functools
import re
from typing import List, NamedTuple, Optional, Tuple

from kbuildguard.arch import Arch
from kbuildguard.arch import from_macros as arch_from_macros
from kbuildguard.errors import BadInput
from kbuildguard.strenum import StrEnum
from kbuildguard.versions import release_tuple


class Family(StrEnum):
    GCC = "gcc"
    CLANG = "clang"



class Linker(NamedTuple):
    name: str  # "GNU ld", "LLD", "GNU gold"
    version: str
    text: str = ""

    def describe(self) -> str:
        return "%s %s" % (self.name, self.version)


class CompilerId(NamedTuple):
    family: Family
    version: str  # X.Y.Z as the compiler reports it
    vendor: str = ""  # vendor release: "Red Hat 8.3.1-3", "Debian 12.2.0-14+deb12u1"; "" if none
    date: str = ""  # GCC's date stamp, "20190311"
    program: str = ""  # "gcc-12", "x86_64-linux-gnu-gcc-12", "clang" when the text names it
    text: str = ""  # the original text, for display only
    linker: Optional[Linker] = None

    def describe(self) -> str:
        out = "%s %s" % (self.family, self.version)
        if self.vendor:
            out += " (%s)" % self.vendor
        return out

    @property
    def version_tuple(self) -> Tuple[int, ...]:
        return release_tuple(self.version)


class ProcVersion(NamedTuple):
    release: str
    builder: str
    compiler: CompilerId
    build: str  # "#1 SMP Wed Apr 15 18:13:44 UTC 2020"; "" when the line was cut off before it
    text: str
    # What kbuildguard.target.pasted repaired to find this line in what a user pasted ("removed a dmesg
    # timestamp", ...); () for a clean line.
    repairs: Tuple[str, ...] = ()


# A version as compilers print it: 12.2.0, 4.8.5, 4.9.x (Android's old prebuilt), 7.5 (rare).
_VER = r"\d+\.\d+(?:\.(?:\d+|x))?"
_LINKER_SPLIT = re.compile(r",\s+(?=(?:GNU ld|GNU gold|[\w.\- ]*\bLLD\b|ld\.lld|ld\b|mold\b))")
_LINKER = re.compile(
    r"^(?P<name>GNU ld|GNU gold|[\w.\- ]*?\bLLD|ld\.lld|mold)\b"
    r"(?:\s+version)?(?:\s+\([^()]*\))?\s*(?P<version>\d+(?:\.\d+)+(?:-[\w.~+]+)?)?"
)
_CLANG = re.compile(r"^(?P<pre>.*?)\bclang version (?P<version>" + _VER + r")(?P<post>.*)$", re.IGNORECASE)
# ChromeOS's old toolchains print "gcc version 4.7.x-google 20130114 (prerelease) (...)": the
# "-google" tag belongs to the version word; the date after it is still the date.
_GCC_OLD = re.compile(r"\bgcc version (?P<version>" + _VER + r")(?:-[A-Za-z]\w*)?(?P<post>.*)$")
# "<program> (<paren>) X.Y.Z [date] [(<vendor>)]" -- gcc --version, CONFIG_CC_VERSION_TEXT,
# /proc/version since 5.8, and .comment ("GCC: (<paren>) X.Y.Z ...").
_GCC_NEW = re.compile(
    r"^(?P<program>\S+?)?:?\s*\((?P<paren>[^()]*(?:\([^()]*\)[^()]*)*)\)\s+(?P<version>" + _VER + r")\b(?P<post>.*)$"
)
_GCC_BARE = re.compile(r"^(?P<program>\S*(?:gcc|cc)\S*)\s+(?P<version>" + _VER + r")\b(?P<post>.*)$")
_DATE = re.compile(r"^\s*(?P<date>(?:19|20)\d{6})\b")
# "gcc 14": a compiler named by its major version only (seen in Arch Linux reports). The version is
# then "14", and a match can check no more than the major (toolchain.mismatch_reason compares as
# many parts as the kernel's version has).
_SHORT = re.compile(r"^(?P<family>gcc|clang)\s+(?:version\s+)?(?P<major>\d{1,3})$", re.IGNORECASE)
_PROC_START = re.compile(r"^Linux version:?\s+(?P<release>\S+)\s+(?P<rest>.*)$")
# The paren after "gcc" that only repeats the project name carries no vendor release.
_NO_VENDOR = {"GCC", "GNU", ""}


_PAREN = re.compile(r"[()]")


def _scan_parens(text: str) -> Tuple[List[str], int]:
    """Top-level balanced parenthesised groups of text (without the outer parentheses), and where the
    first top-level "(" that is never closed starts its content (-1 when every one is closed)."""
    groups = []
    depth = 0
    start = 0
    for m in _PAREN.finditer(text):  # only the parentheses: a banner is mostly other characters
        i, ch = m.start(), m.group()
        if ch == "(":
            if depth == 0:
                start = i + 1
            depth += 1
        elif ch == ")" and depth > 0:
            depth -= 1
            if depth == 0:
                groups.append(text[start:i])
    return groups, start if depth > 0 else -1


def _parens(text: str) -> List[str]:
    return _scan_parens(text)[0]


def _vendor_from_post(post: str) -> Tuple[str, str]:
    """From what follows a GCC version ("20190311 (Red Hat 8.3.1-3) (GCC)"), the date and vendor."""
    date = ""
    m = _DATE.match(post)
    if m:
        date = m.group("date")
        post = post[m.end():]
    vendor = ""
    for group in _parens(post):
        group = group.strip()
        if group in _NO_VENDOR or group in ("prerelease", "experimental"):
            continue
        vendor = group
        break
    return date, vendor


def split_linker(text: str) -> Tuple[str, Optional[Linker]]:
    """Split "gcc (GCC) 12.2.1 ..., GNU ld version 2.38-25.el9" into the compiler text and the linker."""
    parts = _LINKER_SPLIT.split(text, maxsplit=1)
    if len(parts) == 1:
        return text.strip(), None
    linker = parse_linker(parts[1])
    return parts[0].strip(), linker


def parse_linker(text: str) -> Optional[Linker]:
    text = text.strip()
    m = _LINKER.match(text)
    if not m:
        return None
    name = m.group("name").strip()
    if "LLD" in name:
        name = "LLD"
    version = m.group("version") or ""
    if not version:
        nums = re.findall(r"\d+\.\d+(?:\.\d+)?(?:[-.\w~+]*)?", text)
        version = nums[-1] if nums else ""
    return Linker(name, version, text)


@functools.lru_cache(maxsize=512)
def parse_compiler(text: str) -> Optional[CompilerId]:
    """Parse one compiler text; None when it names no compiler we know.

    Accepts ``cc --version`` first lines, CONFIG_CC_VERSION_TEXT, LINUX_COMPILER, the compiler part
    of /proc/version (both formats) and .comment entries.
    """
    raw = text.strip().strip('"').strip()
    if not raw:
        return None
    body, linker = split_linker(raw)
    if body.startswith("GCC:"):
        body = body[4:].strip()
    m = _CLANG.match(body)
    if m:
        pre = m.group("pre").strip()
        post = m.group("post")
        groups = _parens(post)
        vendor_parts = [pre] if pre else []
        # Ubuntu's clang until 18 prints its package release glued to the version
        # ("Ubuntu clang version 14.0.0-1ubuntu1.1"): that suffix is the vendor release, as the
        # parenthesised "(15~deb12u1)" is for Debian's.
        suffix = re.match(r"-(\S+)", post)
        if suffix and pre:
            vendor_parts.append(m.group("version") + "-" + suffix.group(1).rstrip(","))
        elif groups and not groups[0].strip().startswith(("http", "git@", "/")):
            vendor_parts.append(groups[0].strip())
        program = ""
        return CompilerId(family=Family.CLANG, version=m.group("version"), vendor=" ".join(vendor_parts), date="", program=program, text=raw, linker=linker)
    m = _GCC_OLD.search(body)
    if m:
        date, vendor = _vendor_from_post(m.group("post"))
        return CompilerId(family=Family.GCC, version=m.group("version"), vendor=vendor, date=date, program="", text=raw, linker=linker)
    m = _GCC_NEW.match(body)
    if m:
        program = (m.group("program") or "").rstrip(":")
        if program and not re.search(r"gcc|cc", program, re.IGNORECASE):
            return None  # "tool (something) 1.2.3" is not a compiler: refuse rather than guess
        paren = m.group("paren").strip()
        date, vendor = _vendor_from_post(m.group("post"))
        if paren not in _NO_VENDOR:
            vendor = paren
        if program.upper() == "GCC":
            program = ""
        return CompilerId(family=Family.GCC, version=m.group("version"), vendor=vendor, date=date, program=program, text=raw, linker=linker)
    m = _GCC_BARE.match(body)
    if m:
        date, vendor = _vendor_from_post(m.group("post"))
        return CompilerId(family=Family.GCC, version=m.group("version"), vendor=vendor, date=date, program=m.group("program"), text=raw, linker=linker)
    return None


def _short_compiler(group: str) -> Optional[CompilerId]:
    """``gcc 14`` (optionally ``, GNU ld 2.43``): the family and the major version only."""
    body, linker = split_linker(group)
    m = _SHORT.match(body)
    if not m:
        return None
    return CompilerId(family=Family(m.group("family").lower()), version=m.group("major"), vendor="", date="", program="", text=group.strip(), linker=linker)


# A banner's rest is a few hundred characters (init/version.c: linux_banner); longer text is read
# every time, never kept (a hostile paste must not fill memory through the cache below).
_REMEMBERED_REST = 1024


def _proc_compiler(rest: str) -> Tuple[Optional[CompilerId], str]:
    """The compiler named in what follows the release of a /proc/version line, and the builder."""
    if len(rest) > _REMEMBERED_REST:
        return _read_proc_compiler(rest)
    return _remembered_proc_compiler(rest)


def _read_proc_compiler(rest: str) -> Tuple[Optional[CompilerId], str]:
    builder = ""
    groups = _parens(rest)
    # init/version.c: linux_banner is "Linux version " UTS_RELEASE " (" LINUX_COMPILE_BY "@"
    # LINUX_COMPILE_HOST ") (" LINUX_COMPILER ") " UTS_VERSION. The first balanced group holds the
    # "@" and is the builder, whatever it holds (KBUILD_BUILD_USER is free text: "gcc version 4.8.5
    # (Red Hat 4.8.5-44)@host" is a user name); the compiler is looked for only after it. A line whose
    # only compiler name is inside the builder group then names none and is refused.
    if groups and "@" in groups[0] and rest.lstrip().startswith("("):
        builder = groups[0]
        groups = groups[1:]
    for group in groups:
        candidate = parse_compiler(group) if re.search(r"gcc|clang|GCC", group) else None
        if candidate is not None:
            return candidate, builder
        if not builder and "@" in group:
            builder = group
    # A compiler in a parenthesis that is never closed is not read (issue 22): the line was cut off
    # inside LINUX_COMPILER, and a version cut there reads as a shorter one ("gcc (GCC) 11.3" of
    # 11.3.1, "GNU ld 2.4" of 2.40, "gcc version 12" of 12.2.0). Nothing in the text says where the
    # version ended, so the line is refused: a wrong compiler is worse than none.
    for group in groups:
        candidate = _short_compiler(group)
        if candidate is not None:
            return candidate, builder
    return None, builder


# A pure answer: kbuildguard.target.pasted reads each way of rejoining a wrapped line, and asks the
# same texts again and again (nine in ten of its calls, in its sweeps): at most 4096 x 1 KiB kept.
_remembered_proc_compiler = functools.lru_cache(maxsize=4096)(_read_proc_compiler)


def parse_proc_version(text: str) -> ProcVersion:
    """Parse a /proc/version line; raises BadInput when it is not one or names no compiler.

    Also accepts ``Linux version: R ...`` and a line cut off after its compiler's closing parenthesis
    (never inside it: issue 22). Finding the line in
    dmesg, journal or mail text is kbuildguard.target.pasted's job.
    """
    line = text.strip()
    if "\x00" in line:
        raise BadInput("not a /proc/version line: it contains NUL bytes")
    if not line:
        raise BadInput("empty /proc/version text")
    line = line.splitlines()[0]
    m = _PROC_START.match(line)
    if not m and re.match(r"^Linux version:?\s+\S+$", line):
        raise BadInput("the /proc/version line names no compiler: it ends after the release: %.80s" % line)
    if not m:
        raise BadInput("not a /proc/version line (it must start with 'Linux version RELEASE'): %.60s" % line)
    rest = m.group("rest")
    compiler, builder = _proc_compiler(rest)
    if compiler is None:
        if _scan_parens(rest)[1] >= 0 and re.search(r"gcc|clang|GCC", rest):
            raise BadInput("the /proc/version line is cut off inside its compiler's parentheses (no ')' closes "
                           "them), so the compiler's version may be cut short too: %.80s" % line)
        raise BadInput("the /proc/version line names no compiler we recognise: %.80s" % line)
    _check_vendor_agrees(compiler, line)
    build = rest[rest.find("#"):] if "#" in rest else ""
    return ProcVersion(release=m.group("release"), builder=builder, compiler=compiler, build=build.strip(), text=line)


def _check_vendor_agrees(compiler: CompilerId, line: str) -> None:
    """BadInput when the vendor's parenthesis names a longer version than the compiler's ("(Debian
    12.2.0-14) 12.2", "(Red Hat 11.3.1-4)" with 11.3): the compiler's version was cut short (issue 22).
    The vendor's may be shorter (Linaro's "7.5.0 (Linaro GCC 7.5-2019.12)"), never longer."""
    inner = re.search(r"(?:^|\s)(\d+(?:\.\d+)+)", compiler.vendor)
    if inner and inner.group(1) != compiler.version and inner.group(1).startswith(compiler.version + "."):
        raise BadInput("the /proc/version line's compiler version %s is shorter than its vendor's (%s): it was "
                       "cut short: %.80s" % (compiler.version, compiler.vendor, line))


def parse_comment(data: bytes) -> Tuple[List[CompilerId], List[Linker], List[str]]:
    """Parse an ELF .comment section: every compiler entry, every ``Linker:`` entry, all strings."""
    strings = [s.decode("utf-8", errors="replace") for s in data.split(b"\x00")]
    strings = [s.strip() for s in strings if s.strip()]
    compilers: List[CompilerId] = []
    linkers: List[Linker] = []
    for s in strings:
        if s.startswith("Linker:"):
            linker = parse_linker(s[len("Linker:"):])
            if linker is not None:
                linkers.append(linker)
            continue
        cid = parse_compiler(s)
        if cid is not None:
            compilers.append(cid)
    return compilers, linkers, strings


def parse_version_integer(value: str, family: Family) -> Optional[str]:
    """CONFIG_GCC_VERSION=80301 / CONFIG_CLANG_VERSION=140007 -> "8.3.1" / "14.0.7"; 0 -> None."""
    try:
        n = int(value.strip().strip('"'))
    except ValueError:
        return None
    if n <= 0:
        return None
    major, rest = divmod(n, 10000)
    minor, patch = divmod(rest, 100)
    return "%d.%d.%d" % (major, minor, patch)


def from_macros(macros: str) -> Optional[Tuple[Family, str, Optional[Arch]]]:
    """Family, version and target arch from ``cc -E -dM -`` output (what the compiler *is*)."""
    defs = {}
    for line in macros.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0] == "#define":
            defs[parts[1]] = parts[2] if len(parts) == 3 else ""
    arch = arch_from_macros(defs)
    if "__clang__" in defs:
        try:
            version = "%d.%d.%d" % (int(defs["__clang_major__"]), int(defs["__clang_minor__"]),
                                    int(defs["__clang_patchlevel__"]))
        except (KeyError, ValueError):
            return None
        return Family.CLANG, version, arch
    if "__GNUC__" in defs:
        try:
            version = "%d.%d.%d" % (int(defs["__GNUC__"]), int(defs.get("__GNUC_MINOR__", "0")),
                                    int(defs.get("__GNUC_PATCHLEVEL__", "0")))
        except ValueError:
            return None
        return Family.GCC, version, arch
    return None
