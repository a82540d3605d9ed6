"""A recording stand-in for yum, dnf and zypper, which cannot run on this Debian machine.

It appends its argv (as JSON) to $STANDIN_LOG and, for an install, "installs" each compiler
package by writing a small fake compiler where that package would put it, answering
`-E -dM -x c -` and `--version` as the real one does:
  devtoolset-N-gcc / gcc-toolset-N-gcc -> $KBUILDGUARD_SCL_ROOT/<name>/root/usr/bin/gcc
  gccN (zypper) -> $STANDIN_BIN/gcc-N      gcc10 (yum, Amazon) -> $STANDIN_BIN/gcc10-gcc
  gcc -> $STANDIN_BIN/gcc
The compiler's full version, vendor banner and target come from $STANDIN_VERSION,
$STANDIN_BANNER and $STANDIN_ARCH (x86_64 or aarch64). $STANDIN_FAIL=1 makes it fail like an
unreachable repository.
"""
import json
import os
import re
import sys

FAKE = """#!/bin/sh
case "$1" in
  --version) printf '%s\\n' '{banner}' ;;
  -E) printf '#define __GNUC__ {major}\\n#define __GNUC_MINOR__ {minor}\\n#define __GNUC_PATCHLEVEL__ {patch}\\n#define __{arch}__ 1\\n' ;;
  *) exit 1 ;;
esac
"""


def fake_compiler(path):
    major, minor, patch = os.environ["STANDIN_VERSION"].split(".")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(FAKE.format(banner=os.environ["STANDIN_BANNER"], major=major, minor=minor, patch=patch,
                            arch=os.environ.get("STANDIN_ARCH", "x86_64")))
    os.chmod(path, 0o755)


def main():
    tool, args = sys.argv[1], sys.argv[2:]
    with open(os.environ["STANDIN_LOG"], "a") as log:
        log.write(json.dumps([tool] + args) + "\n")
    if os.environ.get("STANDIN_FAIL") == "1":
        sys.stderr.write("%s: Cannot retrieve repository metadata (repomd.xml)\n" % tool)
        return 1
    if "install" not in args:
        return 0
    scl = os.environ.get("KBUILDGUARD_SCL_ROOT", "/opt/rh")
    bindir = os.environ["STANDIN_BIN"]
    for pkg in args[args.index("install") + 1:]:
        m = re.match(r"^(devtoolset|gcc-toolset)-(\d+)-gcc$", pkg)
        if m:
            fake_compiler(os.path.join(scl, "%s-%s" % (m.group(1), m.group(2)), "root/usr/bin/gcc"))
        elif re.match(r"^gcc10$", pkg) and tool == "yum":
            fake_compiler(os.path.join(bindir, "gcc10-gcc"))
        elif re.match(r"^gcc\d+$", pkg):
            fake_compiler(os.path.join(bindir, "gcc-" + pkg[3:]))
        elif pkg == "gcc":
            fake_compiler(os.path.join(bindir, "gcc"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
