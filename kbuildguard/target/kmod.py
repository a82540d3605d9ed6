"""Which compressed modules the target's kmod (modprobe, insmod) can read.

kmod decompresses a module itself when it was built with that library (libkmod-file.c matches the
file's magic against the formats compiled in; a file whose format is not compiled in is handed to
finit_module() as it is, and the kernel refuses it: "Invalid ELF header magic"). ``kmod --version``
prints what it was built with, as one line compiled into the binary: "+ZSTD +XZ -ZLIB +LIBCRYPTO
-EXPERIMENTAL" (Debian 12's kmod 30). That line is read from the binary itself, not by running it:
the target's kmod may be another architecture's (a sysroot), and reading needs no subprocess.

kmod 31 and newer also hand a compressed module to the kernel (MODULE_INIT_COMPRESSED_FILE) when
/sys/module/compression names its format (CONFIG_MODULE_DECOMPRESS); the version is not in that line.
"""

import os
import re
from typing import NamedTuple, Optional

from kbuildguard import bounded
from kbuildguard.errors import BadInput
from kbuildguard.target.kernel import KernelTarget

# a kmod binary is ~200 KB; a file this large is not one
MAX_KMOD_BYTES = 16 * 1024 * 1024
FEATURES = re.compile(rb"(?:[+-](?:ZSTD|XZ|ZLIB|LIBCRYPTO|OPENSSL|EXPERIMENTAL)\s){2,}[+-][A-Z]+")
PLACES = ("usr/bin/kmod", "bin/kmod", "usr/sbin/kmod", "sbin/kmod")


class KmodFeatures(NamedTuple):
    path: str
    line: str  # as `kmod --version` prints it
    zstd: bool
    xz: bool
    zlib: bool

    def reads(self, compression: str) -> bool:
        return {"zstd": self.zstd, "xz": self.xz, "gzip": self.zlib}.get(compression, False)


def parse(path: str, blob: bytes) -> Optional[KmodFeatures]:
    found = FEATURES.search(blob)
    if found is None:
        return None
    line = found.group(0).decode("ascii")
    words = set(line.split())
    return KmodFeatures(path, line, "+ZSTD" in words, "+XZ" in words, "+ZLIB" in words)


def read(path: str) -> Optional[KmodFeatures]:
    try:
        blob = bounded.read_head(path, MAX_KMOD_BYTES, "a kmod program")
    except (OSError, BadInput):
        return None
    return parse(path, blob)


def gather(target: KernelTarget):
    """The kmod that will load modules into the target, and what it reads; or why it is not known.
    Returns (KmodFeatures or None, reason)."""
    root = target.sysroot if target.sysroot not in ("", "/") else ""
    if not root and not target.running and not (target.modules_dir and os.path.isdir(target.modules_dir)):
        return None, ("the target kernel %s is neither this machine's nor installed here, and no --sysroot gives "
                      "its system: whose kmod will load the module is not known" % target.release)
    for rel in PLACES:
        path = os.path.join(root or "/", rel)
        if os.path.isfile(path):
            found = read(path)
            if found is not None:
                return found, ""
            return None, "%s names no compression features" % path
    return None, "no kmod in %s (busybox's insmod/modprobe are not modelled)" % (root or "/")
