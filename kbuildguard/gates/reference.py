"""The kernel's own struct module layout, the reference a module's is compared with: from the kernel's
BTF (the running kernel's /sys/kernel/btf/vmlinux, a given or found vmlinuz), else from one of its
own in-tree modules. Reading a vmlinuz takes ~0.5 s, so the answer is remembered per image file."""

import hashlib
import json
import os
from typing import List, NamedTuple, Optional, Tuple

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

    def members_under(self, offset: int, width: int = 8) -> List[str]:
        """The kernel's members whose bytes a ``width``-byte write at ``offset`` covers (an init or
        exit relocation is an 8-byte R_X86_64_64 / R_AARCH64_ABS64)."""
        first = self.member_at(offset)
        return ([first] if first else []) + [name for name, start in self.members if offset < start < offset + width]

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
# Members find_module_sections() (6.1: kernel/module/main.c 2019-2130) and percpu_modalloc() set before
# apply_relocations() from a section of the module, when the module has it (section_objs(): find_sec(),
# an allocated section of that name; .BTF: any_section_objs(), any section). Seed 23's v00108 and v00519
# (init moved onto num_exentries, set from __ex_table) were refused "existing value is nonzero".
SET_FROM_SECTION = {
    "kp": "__param", "num_kp": "__param", "syms": "__ksymtab", "num_syms": "__ksymtab", "crcs": "__kcrctab",
    "gpl_syms": "__ksymtab_gpl", "num_gpl_syms": "__ksymtab_gpl", "gpl_crcs": "__kcrctab_gpl",
    "ctors": ".ctors", "num_ctors": ".ctors", "noinstr_text_start": ".noinstr.text", "noinstr_text_size": ".noinstr.text",
    "tracepoints_ptrs": "__tracepoints_ptrs", "num_tracepoints": "__tracepoints_ptrs",
    "srcu_struct_ptrs": "___srcu_struct_ptrs", "num_srcu_structs": "___srcu_struct_ptrs",
    "bpf_raw_events": "__bpf_raw_tp_map", "num_bpf_raw_events": "__bpf_raw_tp_map",
    "btf_data": ".BTF", "btf_data_size": ".BTF", "jump_entries": "__jump_table", "num_jump_entries": "__jump_table",
    "trace_events": "_ftrace_events", "num_trace_events": "_ftrace_events",
    "trace_evals": "_ftrace_eval_map", "num_trace_evals": "_ftrace_eval_map",
    "trace_bprintk_fmt_start": "__trace_printk_fmt", "num_trace_bprintk_fmt": "__trace_printk_fmt",
    "ftrace_callsites": "__mcount_loc", "num_ftrace_callsites": "__mcount_loc",
    "ei_funcs": "_error_injection_whitelist", "num_ei_funcs": "_error_injection_whitelist",
    "kprobes_text_start": ".kprobes.text", "kprobes_text_size": ".kprobes.text",
    "kprobe_blacklist": "_kprobe_blacklist", "num_kprobe_blacklist": "_kprobe_blacklist",
    "printk_index_start": ".printk_index", "printk_index_size": ".printk_index",
    "static_call_sites": ".static_call_sites", "num_static_call_sites": ".static_call_sites",
    "kunit_suites": ".kunit_test_suites", "num_kunit_suites": ".kunit_test_suites",
    "extable": "__ex_table", "num_exentries": "__ex_table", "percpu": ".data..percpu", "percpu_size": ".data..percpu",
}
# Members set before apply_relocations() depending on what kbuildguard does not read there: sig_ok and
# taints (module_sig_check(), add_taint_module(): every unsigned module), version and srcversion
# (setup_modinfo()), using_gplonly_symbols (simplify_symbols(): a GPL-only export used), klp
# (check_modinfo_livepatch()). A relocation onto one is judged refused, the worse outcome.
MAYBE_WRITTEN_BEFORE_RELOCATION = frozenset({"sig_ok", "taints", "version", "srcversion", "using_gplonly_symbols", "klp"})


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
