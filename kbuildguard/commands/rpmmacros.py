"""``kbuildguard rpm-macros``: the RPM macro files the kbuildguard RPM and .deb install, for a
system without the package -- printed one at a time (``--file``), or all written where rpm reads
them (``--install [--root DIR]``).

The three files are one set (issue 19, the re-test): macros.kbuildguard alone in macros.d is
hidden by a build system's /etc/rpm/macros.* (AlmaLinux's macros.modsign) and by kmodtool's
macros.kmodtool, both loaded after it, and a mismatched module is signed and packaged with no check.
"""

import os
import pkgutil
from typing import List, NamedTuple, Optional

from kbuildguard.bounded import read_head
from kbuildguard.build import toolchainlock
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.errors import CannotWrite, UsageError


class MacroFile(NamedTuple):
    name: str  # the --file word
    path: str  # where the packages install it, relative to the root
    data: str  # the file in kbuildguard/data/


# In the order rpm loads them (`rpm --showrc`, "Macro path": macros.d/macros.* by name, then /etc/rpm/macros.*).
MACRO_FILES = (
    MacroFile("macros", "usr/lib/rpm/macros.d/macros.kbuildguard", "data/macros.kbuildguard"),
    MacroFile("kmodtool", "usr/lib/rpm/macros.d/macros.zz-kbuildguard-kmodtool", "data/macros.zz-kbuildguard-kmodtool"),
    MacroFile("etc", "etc/rpm/macros.zz-kbuildguard", "data/macros.zz-kbuildguard"),
)
FILE_NAMES = tuple(f.name for f in MACRO_FILES)


def text(macro: MacroFile) -> str:
    data = pkgutil.get_data("kbuildguard", macro.data)
    assert data is not None
    return data.decode("utf-8")


def _ours(path: str) -> bool:
    """A file we may replace: absent, or a regular file whose first line is a kbuildguard macros
    header (every one of the three says "kbuildguard" on its first line). A symlink is not ours:
    replacing it would leave whatever it pointed at in effect elsewhere, and it may be a packager's."""
    if not os.path.lexists(path):
        return True
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    try:
        head = read_head(path, 4096, "an RPM macros file").decode("utf-8", "replace")
    except OSError:
        return False
    first = head.split("\n", 1)[0]
    return first.startswith("#") and "kbuildguard" in first


def _write(path: str, content: str) -> None:
    """A new file renamed over PATH (never written through a name that is there): the lock's writer."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    toolchainlock.write_text(path, content)


def install(ctx: Context, root: str) -> List[str]:
    """Write the three files under ROOT; refuse (exit 14, nothing written) if any of them exists
    and is not kbuildguard's."""
    root = ctx.path(root)
    targets = [(os.path.join(root, f.path), f) for f in MACRO_FILES]
    foreign = [path for path, _ in targets if not _ours(path)]
    if foreign:
        raise CannotWrite("rpm-macros --install: %s exists and is not kbuildguard's: not overwritten, nothing written"
                          % ", ".join(printable(p) for p in foreign),
                          hint="move it aside, or print each file with `kbuildguard rpm-macros --file NAME` and merge by hand")
    written = []
    for path, macro in targets:
        try:
            _write(path, text(macro))
        except OSError as exc:
            raise CannotWrite("rpm-macros --install: cannot write %s: %s" % (printable(path), exc.strerror or exc),
                              hint="run as root, or give --root DIR (a build root, an image)")
        written.append(path)
    return written


def run(ctx: Context, file: Optional[str], do_install: bool, root: Optional[str]) -> int:
    if root is not None and not do_install:
        raise UsageError("rpm-macros: --root is for --install")
    if do_install and file is not None:
        raise UsageError("rpm-macros: --file prints one file; --install writes all three: not both")
    if not do_install:
        ctx.stdout.write(text(MACRO_FILES[FILE_NAMES.index(file or "macros")]))
        return 0
    written = install(ctx, root or "/")
    if ctx.json:
        ctx.out_json({"installed": written})
    else:
        for path in written:
            ctx.out("installed %s" % printable(path))
    return 0
