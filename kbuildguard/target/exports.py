"""The kernel's exports: which Module.symvers is the target kernel's, and the extra ones a build names.

Where a kernel's list lives: its build tree's Module.symvers (Debian's linux-headers, EL's
kernel-devel), /boot/symvers-R.gz (EL's kernel package), and for other out-of-tree modules their
own Module.symvers (KBUILD_EXTRA_SYMBOLS, --symvers FILE). formats/symvers.py parses them.
"""

import os
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

from kbuildguard.formats import symvers
from kbuildguard.target.kernel import KernelTarget


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


def gather(target: KernelTarget, extra: Sequence[str]) -> Tuple[Optional[symvers.Exports], str]:
    """The kernel's exports plus the extra files' (later files do not replace the kernel's), or
    why there are none."""
    path = kernel_symvers(target)
    if path is None:
        return None, ("no Module.symvers for %s (not in its build tree, no /boot/symvers-%s.gz)"
                      % (target.release, target.release))
    table = {name: (row, path) for name, row in symvers.rows(symvers.text_of(path), path).items()}
    sources = [path]
    for more in extra:
        for name, row in symvers.rows(symvers.text_of(more), more).items():
            table.setdefault(name, (row, more))
        sources.append(more)
    return symvers.Exports(symvers.Table(table), tuple(sources)), ""
