#!/usr/bin/env python3
"""Stand in for "a module built elsewhere with another compiler".

Debian's headers are configured for gcc-12: kbuild passes options that gcc-11 or clang-16 reject
(-ftrivial-auto-var-init=zero, -mrecord-mcount, ...). To produce the real gcc-11/clang-16 modules
that `kbuildguard check` must refuse, this wrapper drops those options and runs $KBG_REAL_CC.
"""
import os
import sys

DROP_GCC = {"-ftrivial-auto-var-init=zero"}
DROP_CLANG = DROP_GCC | {
    "-fconserve-stack", "-mrecord-mcount", "-fno-allow-store-data-races", "-mindirect-branch=thunk-extern",
    "-mindirect-branch-register", "-mfunction-return=thunk-extern", "-fno-ipa-sra", "-mskip-rax-setup",
    "-fno-var-tracking-assignments", "-mpreferred-stack-boundary=3",
}

# A clang-built kernel's flags that gcc rejects (issue 14: a gcc module for the clang-16 kernel)
DROP_FOR_GCC_PREFIXES = ("--target=", "-Qunused-arguments", "-fintegrated-as", "-Werror=unknown-warning-option",
                         "-Werror=ignored-optimization-argument", "-mstack-alignment=", "-fno-delete-null-pointer-checks=")

real = os.environ["KBG_REAL_CC"]
clang = "clang" in os.path.basename(real)
args = [a for a in sys.argv[1:] if a not in (DROP_CLANG if clang else DROP_GCC)]
if not clang:
    args = [a for a in args if not a.startswith(DROP_FOR_GCC_PREFIXES)]
if clang:
    args = [a for a in args if not a.startswith("-Werror")] + ["-Wno-unknown-warning-option"]
os.execvp(real, [real] + args)
