"""The compression gate: can the target read a .ko.xz / .ko.gz / .ko.zst / .ko.bz2 at all?

Two readers can decompress a module before load_module() sees it:

* kmod (modprobe, insmod), with the libraries it was built with (target/kmod.py); Debian 12's kmod 30
  reads xz and zstd, not gzip ("+ZSTD +XZ -ZLIB");
* the kernel, with CONFIG_MODULE_DECOMPRESS (5.17+): kernel/module/decompress.c decompresses the one
  format CONFIG_MODULE_COMPRESS_* names -- gzip or xz in 6.1 (kernel/module/Kconfig 223-234:
  "depends on MODULE_COMPRESS_GZIP || MODULE_COMPRESS_XZ"), zstd too from 6.2 (6.12's Kconfig 335-340,
  decompress.c 202: "#elif defined(CONFIG_MODULE_COMPRESS_ZSTD)")
  -- when kmod 31+ passes MODULE_INIT_COMPRESSED_FILE. Debian 12's 6.1 sets MODULE_COMPRESS_NONE: none.

A format neither reads is handed to finit_module() as it is: "Invalid ELF header magic: != \\177ELF",
insmod: Invalid module format. Nothing reads bzip2.
"""

from typing import Mapping, Optional, Tuple

from kbuildguard.formats.module import ModuleInfo
from kbuildguard.gates.model import Check, Effect, Gate
from kbuildguard.target.kmod import KmodFeatures
from kbuildguard.versions import release_tuple

CONFIG = {"gzip": "CONFIG_MODULE_COMPRESS_GZIP", "xz": "CONFIG_MODULE_COMPRESS_XZ", "zstd": "CONFIG_MODULE_COMPRESS_ZSTD"}
SUFFIX = {"gzip": ".ko.gz", "xz": ".ko.xz", "zstd": ".ko.zst", "bzip2": ".ko.bz2"}


def kernel_reads(config: Mapping[str, str], release: str, compression: str) -> Optional[bool]:
    if not config:
        return None
    if config.get("CONFIG_MODULE_DECOMPRESS") != "y" or compression not in CONFIG:
        return False
    if compression == "zstd" and release_tuple(release.split("-")[0]) < (6, 2):
        return False
    return config.get(CONFIG[compression]) == "y"


def check(info: ModuleInfo, config: Mapping[str, str], release: str,
          kmod: Tuple[Optional[KmodFeatures], str]) -> Optional[Check]:
    fmt = info.compression
    if not fmt:
        return None
    expected = "a format the target's kmod or kernel decompresses"
    found = "%s-compressed" % fmt
    line = "\"Invalid ELF header magic: != \\177ELF\" (insmod: Invalid module format)"
    fix = "install it uncompressed (.ko), or compressed as the target's kmod reads (%s)" % (
        kmod[0].line if kmod[0] is not None else "xz is the safest")
    if fmt == "bzip2":
        return Check(name=Gate.COMPRESSION, ok=False, expected=expected, found=found,
                     message="no kmod and no kernel decompresses bzip2: the kernel is handed the compressed bytes: %s" % line,
                     fix=fix, effect=Effect.REJECTED)
    features, missing = kmod
    in_kernel = kernel_reads(config, release, fmt)
    kernel_says = ("the kernel decompresses %s itself (CONFIG_MODULE_DECOMPRESS)" % fmt if in_kernel else
                   "the kernel does not decompress %s (%s)" % (fmt, "configuration unknown" if in_kernel is None else
                                                               "no CONFIG_MODULE_DECOMPRESS for it"))
    if features is not None and features.reads(fmt):
        return Check(name=Gate.COMPRESSION, ok=True, expected=expected, found=found, message="%s reads %s (%s)" % (features.path, fmt, features.line))
    if features is not None:
        if in_kernel:
            return Check(name=Gate.COMPRESSION, ok=False, expected=expected, found=found,
                         message="%s was built without %s (%s); %s, which kmod 31 and newer use: it loads with kmod 31+, "
                         "and is refused with an older kmod (%s), judged by that" % (
                             features.path, fmt, features.line, kernel_says, line), fix=fix, effect=Effect.REJECTED)
        return Check(name=Gate.COMPRESSION, ok=False, expected=expected, found=found,
                     message="%s was built without %s (%s) and %s: the kernel is handed the compressed bytes: %s" % (
                         features.path, fmt, features.line, kernel_says, line), fix=fix, effect=Effect.REJECTED)
    return Check(name=Gate.COMPRESSION, ok=True, expected=expected, found=found,
                 message="not checked: %s; %s" % (missing, kernel_says), fix="", effect=Effect.NOT_CHECKED)
