"""Module.symvers: what a kernel (and the out-of-tree modules beside it) exports, with CRCs.

One line per export, tab-separated, in three layouts modpost has written:

    0xCRC  symbol  module  EXPORT_SYMBOL[_GPL]                  (< 5.4)
    0xCRC  symbol  namespace  module  EXPORT_SYMBOL[_GPL]       (5.4 - 5.8)
    0xCRC  symbol  module  EXPORT_SYMBOL[_GPL]  namespace       (5.9+)

Where a kernel's list lives: its build tree's Module.symvers (Debian's linux-headers, EL's
kernel-devel), /boot/symvers-R.gz (EL's kernel package), and for other out-of-tree modules their
own Module.symvers (KBUILD_EXTRA_SYMBOLS, --symvers FILE).
"""

import os
import re
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import compression
from kbuildguard.errors import BadInput
from kbuildguard.kernel import KernelTarget

MAX_SYMVERS_BYTES = 64 * 1024 * 1024  # an allmodconfig Module.symvers is ~3 MiB


class Export(NamedTuple):
    crc: Optional[int]  # None: the exporter records no CRC (kernel without CONFIG_MODVERSIONS)
    module: str  # "vmlinux", or the module that exports it
    gpl_only: bool
    namespace: str
    source: str  # the file it was read from


class Exports(NamedTuple):
    symbols: Dict[str, Export]
    sources: Tuple[str, ...]  # every file read, kernel's first


LINE = re.compile(r"^0x([0-9A-Fa-f]+)\t([^\t\n]+)\t([^\t\n]*)\t([^\t\n]*)(?:\t([^\t\n]*))?[ \t\r]*$", re.M)


def parse(text: str, source: str) -> Dict[str, Export]:
    """Every line, or BadInput naming the first that is not a Module.symvers line. One regex pass in
    C: a distribution kernel's list has 25,000 lines and `check` reads it on every run."""
    out: Dict[str, Export] = {}
    found = LINE.findall(text)
    if len(found) != sum(1 for line in text.splitlines() if line.strip()):
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip() and not LINE.match(line):
                raise BadInput("%s:%d: not a Module.symvers line (want 0xCRC, symbol, module, export type)" % (source, number))
    for number, (crc, name, third, fourth, fifth) in enumerate(found, 1):
        if fourth.startswith("EXPORT_"):
            module, kind, namespace = third, fourth, fifth
        elif fifth.startswith("EXPORT_"):
            namespace, module, kind = third, fourth, fifth
        else:
            raise BadInput("%s:%d: no EXPORT_SYMBOL type in this line" % (source, number))
        out[name] = Export(int(crc, 16), module, kind.endswith(("_GPL", "_GPL_FUTURE")), namespace.strip(), source)
    return out


def read(path: str) -> Dict[str, Export]:
    try:
        with open(path, "rb") as f:
            raw = compression.bounded_read(f, path, MAX_SYMVERS_BYTES)
    except OSError as exc:
        raise BadInput("%s: cannot read: %s" % (path, exc.strerror or exc))
    text = compression.decompress(raw, path, MAX_SYMVERS_BYTES) or raw
    if b"\x00" in text:
        raise BadInput("%s: binary data, not a Module.symvers" % path)
    return parse(text.decode("utf-8", errors="replace"), path)


def kernel_symvers(target: KernelTarget) -> Optional[str]:
    """The kernel's own list: its build tree's, else /boot/symvers-R.gz (under the sysroot)."""
    root = target.sysroot if target.sysroot != "/" else ""
    candidates: List[str] = []
    if target.build_dir:
        candidates.append(os.path.join(target.build_dir, "Module.symvers"))
    candidates += [root + "/boot/symvers-%s.gz" % target.release, root + "/boot/symvers-%s" % target.release]
    for path in candidates:
        if os.path.isfile(path) and os.path.getsize(path) > 0:
            return path
    return None


def extra_from_make_args(args: Iterable[str], env: Mapping[str, str]) -> List[str]:
    """The files KBUILD_EXTRA_SYMBOLS names (after --, else in the environment): kbuild takes a
    space-separated list."""
    value = env.get("KBUILD_EXTRA_SYMBOLS", "")
    for arg in args:
        if arg.startswith("KBUILD_EXTRA_SYMBOLS="):
            value = arg.split("=", 1)[1]
    return value.split()


def gather(target: KernelTarget, extra: Sequence[str]) -> Tuple[Optional[Exports], str]:
    """The kernel's exports plus the extra files' (later files do not replace the kernel's), or
    why there are none."""
    path = kernel_symvers(target)
    if path is None:
        return None, ("no Module.symvers for %s (not in its build tree, no /boot/symvers-%s.gz)"
                      % (target.release, target.release))
    symbols = read(path)
    sources = [path]
    for more in extra:
        for name, export in read(more).items():
            symbols.setdefault(name, export)
        sources.append(more)
    return Exports(symbols, tuple(sources)), ""
