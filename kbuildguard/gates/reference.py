"""The kernel's own struct module layout, the reference a module's is compared with: from the kernel's
BTF (the running kernel's /sys/kernel/btf/vmlinux, a given or found vmlinuz), else from one of its
own in-tree modules. Reading a vmlinuz takes ~0.5 s, so the answer is remembered per image file."""

import hashlib
import json
import os
from typing import NamedTuple, Optional, Tuple

from kbuildguard import bounded
from kbuildguard.errors import BadInput
from kbuildguard.formats.module import Layout, find_modules, read_module
from kbuildguard.target.drift import Drift
from kbuildguard.target.kernel import KernelTarget


class ReferenceLayout(NamedTuple):
    layout: Layout
    source: str
    cause: str = ""  # what a differing module most likely went through (drift between tree and kernel)
    members: Tuple[Tuple[str, int], ...] = ()  # the kernel's struct module members and byte offsets (BTF only)

    def member_at(self, offset: int) -> str:
        """The kernel's member that holds byte ``offset`` ("" when unknown)."""
        found = ""
        for name, start in self.members:
            if start <= offset:
                found = name
        return found


# Members of struct module the loader has written (non-zero) before apply_relocations() in 6.1's
# load_module(): add_unformed_module (state, list), module_unload_init (source_list, target_list,
# refcnt), init_param_lock (param_lock), layout_and_allocate/move_module (core_layout, init_layout,
# mem in 6.4+). x86_64's apply_relocate_add() refuses a relocation whose target is not zero ("Skipping
# invalid relocation target, existing value is nonzero"), so a module whose init or exit lands on one
# of them is rejected at load; elsewhere it loads (and cannot be unloaded). Seen in qemu on Debian's
# 6.1: exit on target_list is refused, exit on static_call_sites loads and never unloads.
WRITTEN_BEFORE_RELOCATION = frozenset({"state", "list", "source_list", "target_list", "refcnt", "param_lock",
                                       "core_layout", "init_layout", "mem", "name"})


def _cache_file(path: str, cache_dir: Optional[str]) -> Optional[str]:
    """Where the layout read from a kernel image is remembered: decompressing a vmlinuz takes ~0.5 s.
    Keyed by the image's path, size and time; ``cache_dir`` None: not remembered."""
    if cache_dir is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = hashlib.sha256(("%s|%d|%d" % (os.path.abspath(path), st.st_size, int(st.st_mtime))).encode()).hexdigest()[:24]
    return os.path.join(cache_dir, "layout-%s.json" % key)


def _btf_reference(path: str, what: str, cache_dir: Optional[str]) -> Optional[ReferenceLayout]:
    from kbuildguard.formats.btf import module_layout_from_file

    source = "%s BTF (%s)" % (what, path)
    cache = _cache_file(path, cache_dir) if not path.startswith("/sys/") else None
    if cache:
        try:
            size, init, exit_, members = json.loads(bounded.read_text(cache, bounded.STATE))
            return ReferenceLayout(Layout(size, init, exit_), source, members=tuple((str(n), int(o)) for n, o in members))
        except (OSError, ValueError, TypeError, BadInput):
            pass
    found = module_layout_from_file(path)
    if found is None:
        return None
    layout = Layout(found.size, found.members.get("init"), found.members.get("exit"))
    members = tuple(sorted(found.members.items(), key=lambda m: m[1]))
    if cache:
        try:  # a cache that cannot be written is no error
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            with open(cache, "w", encoding="utf-8") as f:
                json.dump(list(layout) + [members], f)
        except OSError:
            pass
    return ReferenceLayout(layout, source, members=members)


GENERIC_CAUSE = ("likely cause: a compiler with other features (they decide #ifdefs inside struct module), or a build "
                 "tree configured differently from the kernel (kbuildguard make compares the two before building)")


def with_cause(found: ReferenceLayout, drift: Optional[Drift]) -> ReferenceLayout:
    """Attach what a differing module most likely went through, from the drift computed before building."""
    if drift is not None and drift.abi:
        return found._replace(cause="likely cause: the build tree differs from the kernel's configuration (%s): %s" % (
            drift.kernel_config, drift.describe()))
    return found._replace(cause=GENERIC_CAUSE)


def find_reference(target: KernelTarget, vmlinux: Optional[str] = None, limit: int = 50,
                   cache_dir: Optional[str] = None) -> Tuple[Optional[ReferenceLayout], str]:
    """The kernel's own struct module layout, from the best source available (first wins), or why there is none:

    1. ``--vmlinux FILE``: raw BTF, a vmlinux, or a compressed vmlinuz
    2. the running kernel's /sys/kernel/btf/vmlinux (only when the target is the running kernel)
    3. the target's /boot/vmlinuz-R (under the sysroot): its vmlinux's .BTF section
    4. a module the kernel shipped (/lib/modules/R/kernel): its .gnu.linkonce.this_module and relocations

    None when none is there (a headers-only machine for a kernel it does not run). ``cache_dir``: where
    a layout read from an image is remembered (probecache.cache_home of the run's environment).
    """
    if vmlinux:
        found = _btf_reference(vmlinux, "the given kernel image's", cache_dir)
        return found, "" if found else "%s has no struct module in its BTF" % vmlinux
    found = _image_reference(target, cache_dir) or _in_tree_reference(target, limit)
    if found is not None:
        return found, ""
    root = target.sysroot if target.sysroot != "/" else ""
    return None, ("no reference for kernel %s: %sno %s/boot/vmlinuz-%s, no in-tree modules under %s/lib/modules/%s/kernel; "
                  "give the kernel image with --vmlinux" % (
                      target.release, "" if target.running else "not the running kernel, ", root, target.release,
                      root, target.release))


def _image_reference(target: KernelTarget, cache_dir: Optional[str]) -> Optional[ReferenceLayout]:
    """From BTF: the running kernel's own, else the target's /boot/vmlinuz-R (under the sysroot), else
    the vmlinux of the tree it was built in."""
    root = target.sysroot if target.sysroot != "/" else ""
    images = [("/sys/kernel/btf/vmlinux", "the running kernel's")] if target.running else []
    images += [(os.path.join(root + "/boot", name % target.release), "the kernel image's")
               for name in ("vmlinuz-%s", "vmlinux-%s")]
    if target.build_dir:  # a tree the kernel was built in (not a headers package) holds the kernel itself
        images.append((os.path.join(target.build_dir, "vmlinux"), "the build tree's vmlinux"))
    for path, what in images:
        if os.path.isfile(path):
            try:
                found = _btf_reference(path, what, cache_dir)
            except BadInput:
                continue
            if found:
                return found
    return None


def _in_tree_reference(target: KernelTarget, limit: int) -> Optional[ReferenceLayout]:
    """From a module the kernel shipped: its .gnu.linkonce.this_module and relocations."""
    if not target.modules_dir or not os.path.isdir(os.path.join(target.modules_dir, "kernel")):
        return None
    for tried, path in enumerate(find_modules([os.path.join(target.modules_dir, "kernel")])):
        if tried >= limit:
            break
        try:
            info = read_module(path)
        except BadInput:
            continue
        if info.layout and info.layout.init_offset is not None and info.layout.exit_offset is not None:
            return ReferenceLayout(info.layout, "in-tree module %s" % os.path.relpath(path, target.modules_dir))
    return None
