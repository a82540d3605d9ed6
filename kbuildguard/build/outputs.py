"""The one owner of what a build leaves behind: staging, placement, quarantine, and the record of both.

Fail closed by construction. kbuild never writes into the module folder: it builds in a staging
folder outside it (a mirror of the sources made of symbolic links), so no unverified ``.ko`` can
appear where ``%files``, ``modules_install``, DKMS or ``find -name '*.ko'`` would pick it up --
not on an error, not on a signal, not even when kbuildguard is killed with SIGKILL while make goes
on. Only a module that passed verification for the kernel that was asked for is copied into the
module folder, under a name no glob matches, then renamed to ``NAME.ko`` in one step.

Layout of the module folder:

    NAME.ko                              verified, for the kernel of the last run (single kernel)
    kbuildguard-out/RELEASE/NAME.ko      verified, one folder per kernel (``--kernel all`` / R1,R2)
    .kbuildguard/report.json             the run's report (report-RELEASE.json per kernel)
    .kbuildguard/build.log               the complete log: kbuildguard's steps, make's and the compiler's output
    .kbuildguard/rejected[/RELEASE]/NAME.ko-rejected, NAME.report.json
    .kbuildguard/unverified/...          stray .ko files found in the folder, moved aside, never deleted
    .kbuildguard/placed.json             what kbuildguard put in the folder (withdrawn at the next build)

No name under .kbuildguard/ matches kbuild's ``make clean`` patterns (``*.ko``, ``*.ko.*``,
``*.[aios]`` ...): the quarantine survives a clean, kbuildguard's or kbuild's own.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from typing import IO, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import bounded
from kbuildguard.build import toolchainlock
from kbuildguard.console import Console, for_json, printable
from kbuildguard.errors import BadInput, CannotWrite
from kbuildguard.formats.module import is_module_path
from kbuildguard.probecache import cache_home

STATE_DIR = ".kbuildguard"
OUT_DIR = "kbuildguard-out"
PLACED = "placed.json"
PARTIAL = "-kbuildguard-partial"
# What the previous run reported: withdrawn with its modules, so that no report speaks of a module
# that is no longer there, or of a kernel other than the one last asked for.
REPORTS = re.compile(r"^(report(-.+)?|summary)\.json$")
# Never mirrored into staging: kbuild's own outputs (a plain in-place build leaves them behind) and ours.
_OUTPUT_NAMES = re.compile(r"^(?:.*\.ko|.*\.ko\..*|.*\.mod|.*\.mod\.[co]|\..*\.cmd|\..*\.d|\.tmp_.*|modules\.order|"
                           r"Module\.symvers|\.cache\.mk|.*\.o\.ur-safe)$")
_SKIP_DIRS = (STATE_DIR, OUT_DIR, ".git", ".hg", ".svn")
# What kbuild can take as M=: make splits at spaces and expands $, # and :.
_MAKE_SAFE = re.compile(r"^[A-Za-z0-9_./+-]+$")


class Placed(NamedTuple):
    path: str
    sha256: str
    release: str


def _sha256(path: str) -> str:
    return bounded.sha256_file(path, "a built module")


def state_dir(module_dir: str) -> str:
    return os.path.join(module_dir, STATE_DIR)


def ensure_writable(module_dir: str) -> str:
    """The state folder, created; CannotWrite (one line) when the module folder is read-only or not ours."""
    state = state_dir(module_dir)
    try:
        os.makedirs(state, exist_ok=True)
        probe = os.path.join(state, "write-probe-%d" % os.getpid())
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise CannotWrite("%s: cannot write in the module folder: %s" % (printable(module_dir), exc.strerror or exc),
                          hint="kbuildguard keeps its state in MODULE_DIR/.kbuildguard and places verified modules in the "
                               "folder: build in a writable copy (cp -r), or fix its permissions")
    return state


def stage_root(env: Mapping[str, str], uid: int) -> str:
    """Where staging folders live: the user's cache, else the temporary folder; a path make can take."""
    for base in (os.path.join(cache_home(env), "stage"),
                 os.path.join(env.get("TMPDIR") or "/tmp", "kbuildguard-%d" % uid, "stage"),
                 "/tmp/kbuildguard-%d/stage" % uid):
        if not _MAKE_SAFE.match(base):
            continue
        shared = not base.startswith(os.path.join(cache_home(env), ""))
        try:
            # each level 0700 (makedirs gives the levels above the leaf the umask's mode)
            os.makedirs(os.path.dirname(base), mode=0o700, exist_ok=True)
        except OSError:
            continue
        if shared:  # before anything is made inside it: another user's folder is refused, not skipped
            _check_shared_stage(os.path.dirname(base), uid)
        try:
            os.makedirs(base, mode=0o700, exist_ok=True)
        except OSError:
            continue
        if shared:
            _check_shared_stage(base, uid)
        if os.access(base, os.W_OK | os.X_OK):
            return base
    raise CannotWrite("no writable staging folder: tried $XDG_CACHE_HOME or ~/.cache, $TMPDIR and /tmp",
                      hint="set XDG_CACHE_HOME to a writable folder whose path has no spaces")


def _check_shared_stage(folder: str, uid: int) -> None:
    """The fallback under the temporary folder (HOME not writable: sbuild's HOME=/sbuild-nonexistent)
    has a name anyone can create first: another user's folder, or one others may write, would let
    them change what make builds and what is placed. Refused by the toolchain lock's rule (one owner
    of it: build/toolchainlock.py), the folder itself and every parent up to / (sticky /tmp passes)."""
    why = toolchainlock.unsafe_folder(folder, uid, sticky_ok=False)
    if why is None:
        found = toolchainlock.unsafe_parent(folder, uid)
        if found is not None:
            folder, why = found
    if why is not None:
        raise BadInput("staging folder %s %s: another user could change what make builds" % (printable(folder), why),
                       hint="remove it, or set XDG_CACHE_HOME (or HOME) to a folder of yours")


def stage_dir(root: str, module_dir: str, release: str, build_dir: str) -> str:
    """One staging folder per module folder and kernel: builds for two kernels never share objects, so
    kbuild can never hand one kernel the other's stale NAME.mod.c (vermagic)."""
    key = hashlib.sha256(os.fsencode(os.path.realpath(module_dir)) + b"\0" + release.encode() + b"\0"
                         + os.fsencode(build_dir)).hexdigest()[:16]
    path = os.path.join(root, key)
    os.makedirs(path, exist_ok=True)
    return path


def _is_output(name: str, siblings: Sequence[str]) -> bool:
    if _OUTPUT_NAMES.match(name):
        return True
    if name.endswith(".o"):  # an object with its source beside it is an output; one without is a vendor's
        stem = name[:-2]
        return stem + ".c" in siblings or stem + ".S" in siblings
    return False


def _link(source: str, link: str) -> None:
    if os.path.islink(link) and os.readlink(link) == source:
        return
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(source, link)


def _mirror_folder(module_dir: str, root: str, dirs: List[str], files: List[str], stage_root: str) -> List[str]:
    """Mirror one folder of the walk; returns the links it wants, and leaves in ``dirs`` what to descend into."""
    dirs[:] = sorted(d for d in dirs if not (root == module_dir and d in _SKIP_DIRS) and d != ".git")
    os.makedirs(stage_root, exist_ok=True)
    wanted = []
    for name in files:
        if _is_output(name, files + dirs):
            continue
        link = os.path.join(stage_root, name)
        _link(os.path.join(root, name), link)
        wanted.append(link)
    return wanted


def _in_a_loop(module_dir: str, rel_root: str) -> bool:
    """True when ROOT is a folder it is already inside of (a link to an ancestor): walking on never ends."""
    if rel_root == ".":
        return False
    parts = rel_root.split(os.sep)
    real = os.path.realpath(os.path.join(module_dir, rel_root))
    ancestors = [os.path.realpath(os.path.join(module_dir, *parts[:i])) for i in range(len(parts))]
    return real in ancestors


def mirror(module_dir: str, stage: str) -> int:
    """Make STAGE a mirror of the module's sources: folders as real folders (also those reached
    through a symbolic link: kbuild writes its objects beside the sources, and must not write through a
    link into the module folder or anywhere else), files as symbolic links.

    kbuild's outputs are regular files in STAGE and stay between builds (incremental builds); links
    whose source is gone are removed. Returns the number of links."""
    wanted = set()
    for root, dirs, files in os.walk(module_dir, followlinks=True):
        rel_root = os.path.relpath(root, module_dir)
        if _in_a_loop(module_dir, rel_root):
            dirs[:] = []
            continue
        stage_root = stage if rel_root == "." else os.path.join(stage, rel_root)
        if os.path.islink(stage_root):  # an older kbuildguard mirrored linked folders as links
            os.unlink(stage_root)
        wanted.update(_mirror_folder(module_dir, root, dirs, files, stage_root))
    for root, dirs, files in os.walk(stage):
        for name in files + dirs:
            path = os.path.join(root, name)
            if os.path.islink(path) and path not in wanted:
                os.unlink(path)
    return len(wanted)


def forget_modules(stage: str) -> int:
    """Delete every module file in STAGE before make runs."""
    removed = 0
    for root, _dirs, files in os.walk(stage):
        for name in files:
            if is_module_path(name):
                os.unlink(os.path.join(root, name))
                removed += 1
    return removed


@contextlib.contextmanager
def build_lock(module_dir: str, console: Console) -> Iterator[IO[str]]:
    """One kbuildguard build per module folder at a time. make inherits the lock (pass_fds), so a make
    left running by a killed kbuildguard still holds it: the next build waits for it to end."""
    handle = open(os.path.join(state_dir(module_dir), "lock"), "w")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            console.info("another kbuildguard build (or the make it left running) is using %s; waiting for it"
                         % printable(module_dir))
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield handle
    finally:
        handle.close()


def _read_placed(module_dir: str) -> List[Placed]:
    try:
        data = json.loads(bounded.read_text(os.path.join(state_dir(module_dir), PLACED), bounded.STATE))
        return [Placed(e["path"], e["sha256"], e["release"]) for e in data["placed"]]
    except (OSError, ValueError, KeyError, TypeError, BadInput):
        return []


def _write_placed(module_dir: str, placed: Sequence[Placed]) -> None:
    # json's ensure_ascii: any file name, UTF-8 or not, round-trips
    write_json(os.path.join(state_dir(module_dir), PLACED), {"placed": [p._asdict() for p in placed]})


def withdraw(module_dir: str, console: Console) -> List[str]:
    """Before a build or on clean: take back what kbuildguard placed in the folder earlier, so that the
    folder never offers a module verified for another kernel or another run. A file the user changed
    since is left, with a warning."""
    removed = []
    for p in _read_placed(module_dir):
        try:
            same = _sha256(p.path) == p.sha256
        except OSError:
            continue
        if same:
            os.unlink(p.path)
            removed.append(p.path)
        else:
            console.warn("%s changed since kbuildguard placed it: it is no longer the module kbuildguard verified"
                         % printable(p.path))
    _write_placed(module_dir, [])
    for name in os.listdir(state_dir(module_dir)):
        if REPORTS.match(name):
            os.unlink(os.path.join(state_dir(module_dir), name))
    out = os.path.join(module_dir, OUT_DIR)
    if os.path.isdir(out):
        for root, dirs, _files in os.walk(out, topdown=False):
            for d in dirs:
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(root, d))
    return removed


def _unused_name(path: str) -> str:
    """PATH, or PATH.1, PATH.2 ...: set-aside files never overwrite one another."""
    candidate, n = path, 0
    while os.path.lexists(candidate):
        n += 1
        candidate = "%s.%d" % (path, n)
    return candidate


def set_aside_strays(module_dir: str, console: Console) -> List[Tuple[str, str]]:
    """Modules in the folder that kbuildguard did not place (a plain in-place `make`, a copied file):
    unverified, so moved to .kbuildguard/unverified/ -- never deleted, never overwriting another --
    before a build. A nested folder with a .kbuildguard/ of its own is another project's: left alone.
    Half-copied files of an interrupted placement are removed."""
    moved = []
    for root, dirs, files in os.walk(module_dir):
        dirs[:] = sorted(d for d in dirs if d not in (STATE_DIR, ".git") and not os.path.isdir(os.path.join(root, d, STATE_DIR)))
        for name in sorted(files):
            path = os.path.join(root, name)
            if name.endswith(PARTIAL):
                os.unlink(path)
                continue
            if not is_module_path(name):
                continue
            rel = os.path.relpath(path, module_dir)
            dest = _unused_name(os.path.join(state_dir(module_dir), "unverified", rel.replace(os.sep, "__") + "-unverified"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.move(path, dest)
            moved.append((path, dest))
            console.warn("%s was not built and verified by kbuildguard: moved to %s" % (printable(rel), printable(dest)))
    return moved


def place(staged: str, dest: str, release: str, module_dir: str) -> str:
    """Copy a verified module into the folder: under a name no glob picks up, then renamed in one step."""
    partial = os.path.join(os.path.dirname(dest), "." + os.path.basename(dest) + PARTIAL)
    try:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(staged, partial)
        os.replace(partial, dest)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise CannotWrite("%s: cannot place the verified module: %s" % (printable(dest), exc.strerror or exc),
                          hint="free space or fix permissions in the module folder; nothing unverified was placed")
    placed = _read_placed(module_dir)
    placed = [p for p in placed if p.path != dest] + [Placed(dest, _sha256(dest), release)]
    _write_placed(module_dir, placed)
    return dest


def quarantine(staged: str, module_dir: str, folder: str, report: Optional[dict]) -> str:
    """Move a module that failed verification to .kbuildguard/FOLDER/NAME.ko-rejected, its report beside it."""
    dest_dir = os.path.join(state_dir(module_dir), folder)
    os.makedirs(dest_dir, exist_ok=True)
    base = os.path.basename(staged)
    dest = os.path.join(dest_dir, base + "-rejected")
    shutil.move(staged, dest)
    if report is not None:
        stem = base[: -len(".ko")] if base.endswith(".ko") else base
        write_json(os.path.join(dest_dir, stem + ".report.json"), report)
    return dest


def write_json(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(for_json(data), f, indent=2)
    os.replace(tmp, path)
