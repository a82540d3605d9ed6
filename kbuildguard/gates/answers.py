"""Answers remembered between runs: each module's checks from every gate, for `check` over a
kernel's module set (issue 20: fast enough for a package manager's hook). A stale "ok" is a wrong
"ok", so an answer is served only while nothing it was computed from can have changed:

* the module file: (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns) and its path. A user can set
  mtime (touch -d, utime()) but not ctime: the kernel stamps ctime with the current time on every
  write, truncate, rename over and utime() (fs/attr.c notify_change(), fs/inode.c file_update_time()),
  so a file changed after it was read has another ctime -- unless its change falls within the clock
  tick of the read, the case git calls "racy" (Documentation/technical/racy-git.txt: an entry whose
  timestamp is not older than the index file is compared by content). Here such an answer is simply
  not stored: a file whose mtime or ctime lies within RACY_NS of the moment its reading began is
  checked afresh next time. The file is stat()ed before and after it is read; an answer is stored
  only when both agree.
* the kernel's facts: a digest of the whole Expectation every gate reads (target, match level,
  reference layout, Module.symvers, config, vermagic, signing facts with certificates and keyrings,
  BTF facts, kmod) in a canonical form (sets and mappings sorted), and of kbuildguard's version and
  its own code (every .py file of the package): another kernel, another setting or another
  kbuildguard is another book of answers.

What is stored is a module's checks as its worker sends them back (pool._lean), never the module's
contents; only for a module whose symbols gate passed (its siblings cannot change it) and whose
signature needs no second look (trust.confirm). A book that is unreadable, not ours (another owner),
too large or malformed in any way is ignored whole: never trusted, rewritten. Opt out with
`check --no-cache` or KBUILDGUARD_NO_CACHE=1 (docs/performance.md).
"""

import hashlib
import json
import os
import stat
import time
from enum import Enum
from typing import Any, Dict, FrozenSet, List, Mapping, NamedTuple, Optional, Tuple

import kbuildguard
from kbuildguard import bounded
from kbuildguard.errors import BadInput
from kbuildguard.formats.symvers import Table
from kbuildguard.gates.model import Check, Effect, Gate
from kbuildguard.gates.verify import Expectation, ModuleReport, Verdict

VERSION = 1
# An answer is not stored when the file's mtime or ctime is this close to the start of its reading:
# ext4/xfs/btrfs stamp with the kernel's coarse clock (current_time(): up to a jiffy behind), FAT and
# some network filesystems in whole or two seconds. Two seconds covers them all; such files are rare
# in /lib/modules, where a package manager wrote them long before.
RACY_NS = 2 * 1000 * 1000 * 1000
MAX_BOOK_BYTES = 64 * 1024 * 1024  # 4,000 modules take ~3 MB; larger is not ours
MAX_ENTRIES = 50000  # modules in one book (one kernel's facts): ten kernels' worth
MAX_BOOKS = 8  # kernels' books kept; the least recently written goes first
ENV_OFF = "KBUILDGUARD_NO_CACHE"


class FileId(NamedTuple):
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


def file_id(path: str) -> Optional[FileId]:
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return None
    return FileId(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def disabled(env: Mapping[str, str]) -> bool:
    return env.get(ENV_OFF, "") not in ("", "0")


def now_ns() -> int:
    return int(time.time() * 1e9)  # time.time_ns() is Python 3.7+


def _canonical(value: Any, out: List[str]) -> None:
    """A text that is equal for equal facts in any process: sets and mappings sorted (str hashes
    are salted per process, so their order is not), records with their type's name."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        out.append(repr(value))
    elif isinstance(value, Enum):
        out.append("%s.%s" % (type(value).__name__, value.value))
    elif isinstance(value, tuple):
        _canonical_tuple(value, out)
    elif isinstance(value, list):
        _canonical_items(value, "[", "]", out)
    elif isinstance(value, Table):  # Module.symvers' rows as matched: Exports are made from these alone
        out.append("Table(%r)" % sorted(value.matched().items()))
    elif isinstance(value, dict) and all(type(k) is str and type(v) is str for k, v in value.items()):
        out.append("{%r}" % sorted(value.items()))  # a configuration: one repr of its sorted lines
    elif isinstance(value, Mapping):
        _canonical_mapping(value, out)
    elif isinstance(value, (set, frozenset)):
        out.append("{%s}" % ",".join(sorted(_one(v) for v in value)))
    else:  # an object we do not know how to compare: no answers at all rather than a wrong key
        raise TypeError("no canonical form for %s" % type(value).__name__)


def _one(value: Any) -> str:
    part: List[str] = []
    _canonical(value, part)
    return "".join(part)


def _canonical_items(values: Any, start: str, end: str, out: List[str]) -> None:
    out.append(start)
    for v in values:
        _canonical(v, out)
        out.append(",")
    out.append(end)


def _canonical_tuple(value: Tuple[Any, ...], out: List[str]) -> None:
    name = type(value).__name__ if hasattr(value, "_fields") else ""
    if all(v is None or isinstance(v, (bool, int, str, bytes)) for v in value):
        out.append("%s(%r)" % (name, tuple(value)))  # the common leaf (an Export): one repr
    else:
        _canonical_items(value, name + "(", ")", out)


def _canonical_mapping(value: Mapping[Any, Any], out: List[str]) -> None:
    out.append("{")
    for k in sorted(value, key=repr):
        _canonical(k, out)
        out.append(":")
        _canonical(value[k], out)
        out.append(",")
    out.append("}")


def _code_digest() -> str:
    """kbuildguard's version and every byte of its code: a changed gate is another book."""
    package = os.path.dirname(os.path.abspath(kbuildguard.__file__))
    h = hashlib.sha256(kbuildguard.__version__.encode())
    for folder, dirs, files in os.walk(package):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py") or name.endswith(".json"):
                path = os.path.join(folder, name)
                h.update(os.path.relpath(path, package).encode() + b"\0")
                h.update(bounded.read_file(path, 8 * 1024 * 1024, "kbuildguard's own code"))
    return h.hexdigest()


def facts_digest(expect: Expectation) -> Optional[str]:
    """The book's name: None when the facts have no canonical form (then nothing is remembered)."""
    out: List[str] = ["kbuildguard answers v%d\n" % VERSION]
    try:
        out.append(_code_digest())
        _canonical(expect, out)
    except (TypeError, OSError, BadInput):
        return None
    return hashlib.sha256("".join(out).encode("utf-8", "surrogateescape")).hexdigest()


class Entry(NamedTuple):
    ident: FileId
    verdict: Verdict
    checks: Tuple[Check, ...]
    exports: Tuple[str, ...]


def _check_row(c: Check) -> List[Any]:
    return [str(c.name), c.ok, c.expected, c.found, c.message, c.fix, str(c.effect)]


_GATES = {str(g): g for g in Gate}
_EFFECTS = {str(e): e for e in Effect}


def _check_of(row: Any) -> Check:
    """One stored check; ValueError for anything that is not exactly what _check_row wrote."""
    if type(row) is not list or len(row) != 7 or type(row[1]) is not bool \
            or {type(x) for x in row[2:6]} - {str} or row[0] not in _GATES or row[6] not in _EFFECTS:
        raise ValueError("not a check")
    return Check(name=_GATES[row[0]], ok=row[1], expected=row[2], found=row[3], message=row[4], fix=row[5],
                 effect=_EFFECTS[row[6]])


def _entries_of(data: Any, digest: str) -> Dict[str, Entry]:
    """The book's entries; ValueError when anything in it is not as written (then none is used)."""
    if not isinstance(data, dict) or data.get("version") != VERSION or data.get("facts") != digest:
        raise ValueError("another book")
    checks_raw, modules = data.get("checks"), data.get("modules")
    if not isinstance(checks_raw, list) or not isinstance(modules, dict) or len(modules) > MAX_ENTRIES:
        raise ValueError("malformed")
    table = [_check_of(row) for row in checks_raw]
    return {path: _entry_of(row, table) for path, row in modules.items()}


_VERDICTS = {str(v): v for v in Verdict}


def _entry_of(row: Any, table: List[Check]) -> Entry:
    """One module's stored answer; ValueError for anything that is not exactly what was written."""
    if type(row) is not list or len(row) != 8 or {type(x) for x in row[:5]} != {int} or min(row[:5]) < 0:
        raise ValueError("malformed entry")
    indexes, exports = row[6], row[7]
    if type(indexes) is not list or not indexes or {type(i) for i in indexes} != {int} \
            or min(indexes) < 0 or max(indexes) >= len(table):
        raise ValueError("malformed entry")
    if type(exports) is not list or {type(x) for x in exports} - {str} or row[5] not in _VERDICTS:
        raise ValueError("malformed entry")
    checks = tuple([table[i] for i in indexes])
    verdict = _VERDICTS[row[5]]
    if verdict is Verdict.ERROR or (verdict is Verdict.OK) != all(c.ok for c in checks):
        raise ValueError("inconsistent entry")
    return Entry(FileId(*row[:5]), verdict, checks, tuple(exports))


def _ours(path: str, folder: bool = False) -> bool:
    """Only a plain file (a folder) of ours that no one else may write is trusted with answers: not
    another user's, not a symbolic link, not a FIFO (whose read would wait for ever)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    kind = stat.S_ISDIR(st.st_mode) if folder else stat.S_ISREG(st.st_mode)
    return kind and st.st_uid == os.geteuid() and not (st.st_mode & 0o022)


class Book:
    """One kernel's facts' answers: read once, written back atomically after the run."""

    def __init__(self, folder: Optional[str], digest: Optional[str]):
        self.folder = folder
        self.digest = digest
        self.path = os.path.join(folder, "%s.json" % digest) if folder and digest else None
        self.entries: Dict[str, Entry] = {}
        self.fresh: Dict[str, Entry] = {}  # this run's answers, served or new: what save() keeps
        self.served: Dict[str, Entry] = {}  # the answers this run did not compute
        if self.path is not None and folder is not None and _ours(folder, folder=True) and _ours(self.path):
            try:
                raw = bounded.read_file(self.path, MAX_BOOK_BYTES, "kbuildguard's answers")
                self.entries = _entries_of(json.loads(raw.decode("utf-8")), digest or "")
            except (OSError, BadInput, ValueError, TypeError, UnicodeDecodeError, RecursionError):
                self.entries = {}  # never trusted: checked afresh, and the book rewritten

    def get(self, path: str, ident: Optional[FileId]) -> Optional[ModuleReport]:
        found = self.entries.get(path)
        if found is None or ident is None or found.ident != ident:
            return None
        self.fresh[path] = self.served[path] = found
        # info None: this run did not read the module (check's output reads only the checks)
        return ModuleReport(path=path, verdict=found.verdict, checks=found.checks, info=None)

    def put(self, report: ModuleReport, before: Optional[FileId], after: Optional[FileId], started_ns: int,
            confirmable: bool) -> None:
        """Remember a fresh report when it can be: see the module's docstring for when it cannot."""
        info = report.info
        if before is None or before != after or info is None or report.verdict is Verdict.ERROR:
            return
        if max(before.mtime_ns, before.ctime_ns) >= started_ns - RACY_NS:
            return  # racy: changed within the tick of its reading (racy-git)
        if any(c.name is Gate.SYMBOLS and not c.ok for c in report.checks):
            return  # siblings may resolve it: decided per run
        if confirmable and info.signature is not None:
            return  # trust.confirm looks at it again with the run's certificates
        self.fresh[report.path] = Entry(before, report.verdict, report.checks, tuple(info.exports))

    def save(self) -> None:
        """Write this run's answers (and the others' that still fit); a book that cannot be written is
        no error: the next run checks afresh."""
        if self.path is None or self.folder is None or not self.fresh:
            return
        kept = dict(self.entries)
        kept.update(self.fresh)
        if len(kept) > MAX_ENTRIES:
            kept = dict(self.fresh)
        if kept == self.entries:
            return
        table: Dict[Check, int] = {}
        modules: Dict[str, List[Any]] = {}
        for path, e in kept.items():
            modules[path] = list(e.ident) + [str(e.verdict), [table.setdefault(c, len(table)) for c in e.checks],
                                             list(e.exports)]
        text = json.dumps({"version": VERSION, "facts": self.digest, "checks": [_check_row(c) for c in table],
                           "modules": modules}, separators=(",", ":"))
        if len(text) > MAX_BOOK_BYTES:
            return
        tmp = "%s.%d.%d.tmp" % (self.path, os.getpid(), now_ns())
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            if not _ours(self.folder, folder=True):
                return
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, self.path)  # readers see the old book or the new, never half of one
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return
        _prune(self.folder, keep=self.path)


def _prune(folder: str, keep: str) -> None:
    """At most MAX_BOOKS books: the least recently written go (and stray temporaries of killed runs)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    books = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if name.endswith(".tmp") and st.st_mtime < time.time() - 3600:
            _unlink(path)
        elif name.endswith(".json") and path != keep:
            books.append((st.st_mtime_ns, path))
    for _, path in sorted(books)[:max(0, len(books) - (MAX_BOOKS - 1))]:
        _unlink(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class Answers(NamedTuple):
    """Where the books are (cache_home()/answers-v1), or None: remember nothing."""

    folder: Optional[str]

    def open(self, expect: Expectation) -> Book:
        if self.folder is None:
            return Book(None, None)
        return Book(self.folder, facts_digest(expect))


def answers_at(cache_dir: str, env: Mapping[str, str], off: bool = False) -> Answers:
    """The answers' folder under CACHE_DIR (probecache.cache_home()); none without a HOME or an
    XDG_CACHE_HOME to put it in (root would otherwise create /nonexistent), or under a relative one
    (the XDG base directory spec: ignored), or when turned off."""
    if off or disabled(env) or not (env.get("XDG_CACHE_HOME") or env.get("HOME")) or not os.path.isabs(cache_dir):
        return Answers(None)
    return Answers(os.path.join(cache_dir, "answers-v%d" % VERSION))


def exports_of(book: Book) -> FrozenSet[str]:
    """What the remembered modules export, for their siblings (pool.with_siblings)."""
    return frozenset(name for e in book.served.values() for name in e.exports)
