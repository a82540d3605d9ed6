"""What probes answered, remembered between runs: a compiler's macros and banner, whether objtool
runs, ``ld --version``. Each answer is keyed by the exact argv and by the program file's identity
(real path, size, modification time), so a reinstalled or replaced program is probed again.

It is why a `make` after the first one starts no process but make itself: probes were a third of
kbuildguard's own time on a small module (bench/run.py). Losing the file costs only time.
"""

import json
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from kbuildguard import bounded
from kbuildguard.errors import BadInput

VERSION = 1

MAX_CACHE_BYTES = 16 * 1024 * 1024  # a few hundred probes of a few KiB: larger is not ours


def cache_home(env: Mapping[str, str]) -> str:
    """kbuildguard's folder in the user's cache: probe answers, layouts read from kernel images, staging."""
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or "/nonexistent", ".cache")
    return os.path.join(base, "kbuildguard")


class ProbeCache:
    def __init__(self, path: Optional[str]):
        self.path = path
        self._entries: Optional[Dict[str, List[object]]] = None
        self._dirty = False

    @classmethod
    def at(cls, env: Mapping[str, str]) -> "ProbeCache":
        return cls(os.path.join(cache_home(env), "probes-v%d.json" % VERSION))

    @staticmethod
    def key(argv: Sequence[str], cwd: Optional[str]) -> Optional[str]:
        try:
            real = os.path.realpath(argv[0])
            st = os.stat(real)
        except OSError:
            return None
        return json.dumps([list(argv), cwd, real, st.st_size, st.st_mtime_ns])

    def _load(self) -> Dict[str, List[object]]:
        if self._entries is None:
            self._entries = {}
            if self.path:
                try:
                    raw = bounded.read_file(self.path, MAX_CACHE_BYTES, "a probe cache")  # our own file, but bounded all the same
                    data = json.loads(raw.decode("utf-8"))
                    if isinstance(data, dict):
                        self._entries = data
                except (OSError, ValueError, BadInput):
                    pass
        return self._entries

    def get(self, key: str) -> Optional[Tuple[int, str, str]]:
        found = self._load().get(key)
        if isinstance(found, list) and len(found) == 3:
            return int(found[0]), str(found[1]), str(found[2])  # type: ignore[call-overload]
        return None

    def put(self, key: str, returncode: int, stdout: str, stderr: str) -> None:
        self._load()[key] = [returncode, stdout, stderr]
        self._dirty = True

    def save(self) -> None:
        """Write the answers back (atomically); a cache that cannot be written is no error."""
        if not self._dirty or not self.path or self._entries is None:
            return
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            tmp = "%s.%d.tmp" % (self.path, os.getpid())
            with open(tmp, "w", encoding="utf-8") as f:
                # a copy (one step under the GIL): a compiler probe still running in its thread
                # (toolchain.identify_all stops waiting, not probing) may put() meanwhile
                json.dump(dict(self._entries), f)
            os.replace(tmp, self.path)
        except OSError:
            pass
        self._dirty = False
