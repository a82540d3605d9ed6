"""The name gate: a module named like a module built into the target kernel is never loaded.

Two doors, both closed to it (6.1, and every kernel kbuildguard models):

* modprobe (kmod, libkmod-module.c): kmod_module_get_initstate() answers KMOD_MODULE_BUILTIN for a
  name in modules.builtin (its .bin index) or one with a /sys/module/NAME directory and no initstate;
  kmod_module_probe_insert_module() then loads nothing and returns 0 (``--first-time``: "Module
  already in kernel", -EEXIST). modprobe finds the installed file first by modules.dep, but never
  inserts it.
* insmod: load_module() -> mod_sysfs_setup() -> mod_sysfs_init() (kernel/module/sysfs.c), after
  relocation and the COMING notifiers, before the module's init runs: ``kset_find_obj(module_kset,
  mod->name)`` finds the built-in module's
  /sys/module/NAME and refuses with "NAME: module is already loaded" (-EINVAL). A built-in has that
  directory when it has parameters (kernel/params.c param_sysfs_builtin()), a MODULE_VERSION
  (version_sysfs_builtin()) or a driver registered under its name (drivers/base/module.c
  module_add_driver()).

What kbuildguard reads: the target's modules.builtin (every tristate object built in; Debian ships
it with the image in /lib/modules/R) and modules.builtin.modinfo (every built-in object's
MODULE_* entries, "NAME.key=value": parameters show there too, as ``vt.parmtype=``). A name in
either is judged rejected: where only its licence or description is listed and no driver of that
name registers, insmod would load it, but modprobe of a name in modules.builtin never does and the
worse outcome is the one kbuildguard promises against. Without either file (a headers package
alone ships neither) the gate is not checked: any name could be a built-in one.
"""

import os
from typing import FrozenSet, NamedTuple, Optional, Set, Tuple

from kbuildguard import bounded
from kbuildguard.formats.module import ModuleInfo, module_name
from kbuildguard.gates.model import Check, Effect, Gate
from kbuildguard.target.kernel import KernelTarget

LIST = bounded.Limit(16 * bounded.MIB, "a modules.builtin")  # Debian 6.1: 186 lines, its .modinfo 60 KiB


class BuiltinNames(NamedTuple):
    """The names of the modules built into the target kernel, or None and why they are not known."""

    listed: Optional[FrozenSet[str]]  # modules.builtin: kmod's "builtin"
    with_sysfs: FrozenSet[str] = frozenset()  # modules.builtin.modinfo names with parameters or a version
    described: FrozenSet[str] = frozenset()  # every other name modules.builtin.modinfo lists
    source: str = "the target's modules.builtin was not looked for"


def _normal(name: str) -> str:
    # kmod and the kernel compare names with '-' and '_' alike (libkmod's modname_normalize())
    return name.replace("-", "_")


def _modinfo_names(text: str) -> Tuple[FrozenSet[str], FrozenSet[str]]:
    sysfs: Set[str] = set()
    other: Set[str] = set()
    for entry in text.split("\0"):
        name, dot, key = entry.partition(".")
        if not dot or not name:
            continue
        key = key.split("=", 1)[0]
        (sysfs if key in ("parm", "parmtype", "version") else other).add(_normal(name))
    return frozenset(sysfs), frozenset(other - sysfs)


def gather(target: KernelTarget) -> BuiltinNames:
    """modules.builtin and modules.builtin.modinfo of the target: its /lib/modules/R (live or in a
    sysroot or image root), else its build tree (a tree built from source has both)."""
    for folder in (target.modules_dir, target.build_dir):
        if not folder:
            continue
        path = os.path.join(folder, "modules.builtin")
        try:
            text = bounded.read_text(path, LIST)
        except OSError:
            continue
        listed = frozenset(module_name(line.strip()) for line in text.splitlines() if line.strip())
        try:
            sysfs, other = _modinfo_names(bounded.read_text(path + ".modinfo", LIST))
            source = "%s and its .modinfo" % path
        except OSError:
            sysfs, other = frozenset(), frozenset()
            source = "%s (no modules.builtin.modinfo beside it: built-in parameters not known)" % path
        return BuiltinNames(listed, sysfs, other, source)
    return BuiltinNames(None, source="no modules.builtin of %s at hand (%s): a headers package ships none" % (
        target.release, ", ".join(f for f in (target.modules_dir, target.build_dir) if f) or "no module folder"))


def check(info: ModuleInfo, names: BuiltinNames) -> Check:
    name = _normal(info.name)
    expected = "a name no built-in module of the kernel has"
    if names.listed is None:
        return Check(name=Gate.NAME, ok=True, expected=expected, found=name,
                     message="whether the kernel has a built-in module named %s is not known: %s" % (name, names.source),
                     fix="give the target's /lib/modules/R (--sysroot, or the kernel's image root) to compare against "
                     "its modules.builtin", effect=Effect.NOT_CHECKED)
    why = ("modules.builtin lists it: modprobe answers \"builtin\" and loads nothing (insmod of the file loads it "
           "where the built-in module has no /sys/module/%s, and is refused where it has one: judged by the worse "
           "outcome)" % name if name in names.listed else
           "the built-in module has parameters or a version, so /sys/module/%s exists: insmod gets \"%s: module is "
           "already loaded\" (-EINVAL) and modprobe loads nothing" % (name, name) if name in names.with_sysfs else
           "modules.builtin.modinfo names it: insmod is refused (\"module is already loaded\") where the built-in "
           "code registers a driver under that name, and kbuildguard judges by the worse outcome" if
           name in names.described else "")
    if why:
        return Check(name=Gate.NAME, ok=False, expected=expected, found=name,
                     message="the kernel has a built-in module named %s (%s): %s" % (name, names.source, why),
                     fix="rename the module (its obj-m name in the Kbuild file)", effect=Effect.REJECTED)
    return Check(name=Gate.NAME, ok=True, expected=expected, found=name,
                 message="no built-in module is named %s (%s)" % (name, names.source))
