"""``kbuildguard init``: kbuildguard.toml and a module source from the templates; never overwrites."""

from kbuildguard.build import render
from kbuildguard.console import printable
from kbuildguard.context import Context


def run(ctx: Context, directory: str, name: str) -> int:
    written = render.scaffold(ctx.path(directory), name)
    if ctx.json:  # docs/reference.md, "init --json"
        ctx.out_json({"created": [path for _, path in written], "next": ["kbuildguard", "make", "-C", directory]})
        return 0
    for _, path in written:
        ctx.out("created %s" % printable(path))
    ctx.out("next: kbuildguard make -C %s" % printable(directory))
    return 0
