"""Module BTF on purpose (``make --btf``): the right base for kbuild's pahole, never written into a system tree.

With CONFIG_DEBUG_INFO_BTF_MODULES, kbuild gives each .ko a .BTF section split against the kernel's
own BTF. scripts/Makefile.modfinal (6.1) hard-codes where that base is::

    if [ ! -f vmlinux ]; then printf "Skipping BTF generation for %s due to unavailability of vmlinux\\n" ...
    else LLVM_OBJCOPY="$(OBJCOPY)" $(PAHOLE) -J $(PAHOLE_FLAGS) --btf_base vmlinux $@; $(RESOLVE_BTFIDS) -b vmlinux $@;

``vmlinux`` relative to make's working directory, the tree's objtree: no variable moves it. Header
packages ship no vmlinux, so kbuild skips module BTF there, which is harmless (the module loads; it
has no BTF for bpftool and BPF programs). Users copy the running kernel's /sys/kernel/btf/vmlinux
into the tree, which is wrong whenever the target is another kernel (the kernel refuses module BTF
split against another base), and writes into a tree the package manager owns.

kbuildguard instead gives make a private objtree: a folder beside its staging folder holding a
symbolic link to every entry of the build tree, plus ``vmlinux``, the target's raw BTF. kbuild then
reads everything from the real tree (the top Makefile finds its srctree from its own real path) and
the base from the overlay. pahole and resolve_btfids read raw BTF as well as an ELF vmlinux (libbpf's
btf__parse).
"""

import hashlib
import os
from typing import NamedTuple, Optional

from kbuildguard.errors import NoBtfBase
from kbuildguard.formats.btf import raw_btf
from kbuildguard.target.kernel import KernelTarget

SYS_BTF = "/sys/kernel/btf/vmlinux"


class BtfBase(NamedTuple):
    """Where module BTF's base comes from."""

    path: str  # the file holding it: raw BTF, a vmlinux or a vmlinuz
    source: str  # for messages: "the running kernel's /sys/kernel/btf/vmlinux"
    in_tree: bool  # the tree's own vmlinux: kbuild finds it itself, no overlay is needed


def choose_base(target: KernelTarget, vmlinux: Optional[str], sys_btf: str = SYS_BTF) -> BtfBase:
    """The target kernel's own BTF, first found wins:

    1. ``--vmlinux FILE`` (raw BTF, vmlinux or vmlinuz): the user named the target's image
    2. the running kernel's /sys/kernel/btf/vmlinux, only when the target *is* the running kernel
    3. the build tree's own vmlinux (a full build tree: the kernel built from it)
    4. the target's /boot/vmlinuz-R or /boot/vmlinux-R (under the sysroot): its .BTF section
    """
    if vmlinux:
        return BtfBase(vmlinux, "--vmlinux %s" % vmlinux, False)
    if target.running and os.path.isfile(sys_btf):
        return BtfBase(sys_btf, "the running kernel's %s (the target is the running kernel)" % sys_btf, False)
    assert target.build_dir is not None
    own = os.path.join(target.build_dir, "vmlinux")
    if os.path.isfile(own):
        return BtfBase(own, "the build tree's own vmlinux", True)
    root = target.sysroot if target.sysroot != "/" else ""
    for name in ("vmlinuz-%s", "vmlinux-%s"):
        path = os.path.join(root + "/boot", name % target.release)
        if os.path.isfile(path):
            return BtfBase(path, "kernel %s's image %s" % (target.release, path), False)
    raise NoBtfBase(
        "--btf: no BTF of kernel %s: %snot the running kernel, no vmlinux in %s, no %s/boot/vmlinuz-%s" % (
            target.release, "" if not target.running else "no %s, " % sys_btf, target.build_dir, root, target.release),
        hint="give the target's image with --vmlinux FILE (vmlinuz, vmlinux or raw BTF), or build without --btf: "
             "kbuild's 'Skipping BTF generation' is harmless, the module loads without BTF")


def objtree_for(stage_dir: str) -> str:
    """The private objtree of one staging folder (per module folder and kernel, under its lock)."""
    return stage_dir.rstrip(os.sep) + ".objtree"


def materialize(base: BtfBase, build_dir: str, objtree: str) -> str:
    """Lay out the private objtree: links to the build tree's entries, and ``vmlinux`` = the base's raw BTF.

    Rebuilt every time (a few dozen links and one file of a few MiB): a tree upgraded in place or
    another base must never be served stale. Nothing is written into ``build_dir``.
    """
    data = raw_btf(base.path)
    os.makedirs(objtree, exist_ok=True)
    for name in os.listdir(objtree):
        path = os.path.join(objtree, name)
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
    for name in sorted(os.listdir(build_dir)):
        if name == "vmlinux":
            continue
        os.symlink(os.path.join(build_dir, name), os.path.join(objtree, name))
    tmp = os.path.join(objtree, ".vmlinux.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(objtree, "vmlinux"))
    return hashlib.sha256(data).hexdigest()[:12]
