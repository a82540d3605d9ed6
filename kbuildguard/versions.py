"""Compare RPM, Debian and kernel version strings.

packaging.Version cannot: ``4.8.5-44.el7`` is not PEP 440, and LegacyVersion is gone since
packaging 22, so Python 3.6 (packaging 21) and 3.13 would disagree. This is rpmvercmp's algorithm
with Debian's ``~`` (sorts before anything, even the end) added; tests pin it to a vector table.
"""

import re
from typing import Optional, Tuple

from packaging.version import InvalidVersion, Version

_SEGMENT = re.compile(r"~|\^|\d+|[A-Za-z]+")


def compare(a: str, b: str) -> int:
    """Return -1, 0 or 1 as a sorts before, with or after b."""
    if a == b:
        return 0
    sa = _SEGMENT.findall(a)
    sb = _SEGMENT.findall(b)
    for i in range(max(len(sa), len(sb))):
        order = _compare_segment(sa[i] if i < len(sa) else None, sb[i] if i < len(sb) else None)
        if order:
            return order
    return 0


def _compare_segment(xa: Optional[str], xb: Optional[str]) -> int:
    """-1, 0 or 1 for one pair of segments (None: that version has ended)."""
    if xa == "~" or xb == "~":
        # Debian: a tilde sorts before anything, even the end
        return 0 if xa == xb else -1 if xa == "~" else 1
    if xa == "^" or xb == "^":
        # rpm 4.15 (rpmio/rpmvercmp.c, rpmvercmp): a caret sorts after the end of the other version and
        # before anything else: 1.0 < 1.0^git1 < 1.0.1 (`rpm --eval '%{lua: print(rpm.vercmp(...))}'`)
        if xa == xb:
            return 0
        if xa is None:
            return -1
        if xb is None:
            return 1
        return -1 if xa == "^" else 1
    if xa is None:
        return -1
    if xb is None:
        return 1
    return _compare_word(xa, xb)


def _compare_word(xa: str, xb: str) -> int:
    """-1, 0 or 1 for two numeric or alphabetic segments."""
    if xa.isdigit() and xb.isdigit():
        na, nb = int(xa), int(xb)
        return 0 if na == nb else -1 if na < nb else 1
    if xa.isdigit() != xb.isdigit():
        # rpmvercmp: a numeric segment is newer than an alphabetic one
        return 1 if xa.isdigit() else -1
    return 0 if xa == xb else -1 if xa < xb else 1


def release_tuple(version: str) -> Tuple[int, ...]:
    """The X.Y.Z of a compiler version (``12.2.0``, ``16.0.6``) or a kernel's base version (``6.1.0``).

    These are plain releases, which is what packaging's Version is for; Android's ``4.9.x`` is not
    one, and falls back to the numeric prefix.
    """
    try:
        # base_version, not Version.release: packaging added .release in 17.1, and EPEL 7's
        # python36-packaging is 16.8. base_version drops pre/post/dev/local parts and keeps the epoch.
        base = Version(version).base_version
    except InvalidVersion:
        return numeric_tuple(version)
    return numeric_tuple(base.rpartition("!")[2])


def numeric_tuple(version: str) -> Tuple[int, ...]:
    """``12.2.0`` -> (12, 2, 0); stops at the first non-numeric part (``4.9.x`` -> (4, 9))."""
    parts = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)
