"""``kbuildguard fetch R...``: kernels that are not installed, downloaded into the cache and unpacked.

What `check`, `make`, `detect` and `doctor` do with ``--fetch`` before they start, on its own: for CI
that fills the cache once, and for a user who wants the folder (``--sysroot`` of any command).
"""

from typing import List, Sequence

from kbuildguard.commands.common import AVAILABLE, FetchOptions, fetch_source
from kbuildguard.console import printable
from kbuildguard.context import Context
from kbuildguard.errors import PackageUnavailable
from kbuildguard.target import fetch


def releases_of(ctx: Context, names: Sequence[str], source: fetch.Source, cache: str, refresh: bool,
                list_only: bool = False) -> List[str]:
    """The releases named; ``available:GLOB`` asks the archive. With --list a plain release is asked
    for too (a glob without wildcards): the list says what the archive has, never echoes the name."""
    releases: List[str] = []
    for name in names:
        if name.startswith(AVAILABLE) or list_only:
            pattern = name[len(AVAILABLE):] if name.startswith(AVAILABLE) else name
            found = fetch.available(ctx.runner, pattern, source, cache, refresh)
            if not found:
                raise PackageUnavailable("no kernel offered by %s matches %r" % (source.describe(), pattern),
                                         hint="list what it offers: kbuildguard fetch --list 'available:*'")
            releases.extend(r for r in found if r not in releases)
        elif name not in releases:
            releases.append(name)
    return releases


def run(ctx: Context, names: Sequence[str], opts: FetchOptions, list_only: bool = False) -> int:
    source = fetch_source(ctx, opts)
    cache = fetch.cache_root(ctx.env, ctx.euid)
    releases = releases_of(ctx, names, source, cache, opts.refresh, list_only)
    if list_only:
        if ctx.json:
            ctx.out_json({"from": source.describe(), "releases": releases})
        else:
            for r in releases:
                ctx.out(printable(r))
        return 0
    got = []
    for release in releases:
        with ctx.console.step("fetch kernel %s from %s" % (release, source.describe())):
            got.append(fetch.fetch(ctx.runner, release, source, cache, opts.refresh))
        if got[-1].note:
            ctx.console.warn(got[-1].note)
    if ctx.json:
        ctx.out_json({"cache": cache, "kernels": [g.as_json() for g in got]})
    else:
        for g in got:
            ctx.out("%s  %s%s" % (printable(g.release), printable(g.root), "  (cached)" if g.cached else ""))
    return 0
