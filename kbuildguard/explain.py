"""``kbuildguard explain MODULE``: why a loaded module will not unload, in terms of delete_module().

kernel/module/main.c (6.1), SYSCALL_DEFINE2(delete_module):
  1. other modules use it (mod->source_list not empty)        -> -EWOULDBLOCK  "in use by ..."
  2. mod->state != MODULE_STATE_LIVE (loading or going)       -> -EBUSY
  3. mod->init && !mod->exit, and no forced unload            -> -EBUSY        /proc/modules: [permanent]
  4. try_stop_module(): reference count not zero              -> -EWOULDBLOCK  "in use"
Branch 3 is the original incident: the module *has* an exit function, but it was built against a
different struct module layout, so the kernel reads `exit` where the module did not put it.
Without CONFIG_MODULE_UNLOAD there is no unloading at all.
"""

import os
from typing import List, NamedTuple, Optional, Tuple

from kbuildguard.errors import BadInput


class LoadedModule(NamedTuple):
    name: str
    size: int
    refcnt: Optional[int]
    users: Tuple[str, ...]
    permanent: bool
    state: str  # Live, Loading, Unloading
    initstate: str
    taint: str


class Finding(NamedTuple):
    branch: str  # the delete_module() branch that answers
    errno: str
    text: str


def read_loaded(root: str, name: str) -> Optional[LoadedModule]:
    """The module's line in /proc/modules and its /sys/module entries (under ``root``)."""
    name = name.replace("-", "_")
    try:
        with open(os.path.join(root, "proc/modules"), encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise BadInput("cannot read %s: %s" % (os.path.join(root, "proc/modules"), exc.strerror or exc))
    for line in lines:
        fields = line.split()
        if len(fields) < 5 or fields[0] != name:
            continue
        deps = fields[3]
        users = tuple(d for d in deps.strip(",").split(",") if d and d not in ("-", "[permanent]", "[unsafe]"))
        sysdir = os.path.join(root, "sys/module", name)
        refcnt = _attr(sysdir, "refcnt")
        holders = tuple(sorted(os.listdir(os.path.join(sysdir, "holders")))) if os.path.isdir(os.path.join(sysdir, "holders")) else ()
        return LoadedModule(name, int(fields[1]) if fields[1].isdigit() else 0,
                            int(refcnt) if refcnt.lstrip("-").isdigit() else (int(fields[2]) if fields[2].isdigit() else None),
                            tuple(sorted(set(users) | set(holders))), "[permanent]" in deps, fields[4],
                            _attr(sysdir, "initstate"), _attr(sysdir, "taint"))
    return None


def _attr(sysdir: str, rel: str) -> str:
    try:
        with open(os.path.join(sysdir, rel), encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def find_ko(root: str, release: str, name: str) -> Optional[str]:
    """The module's file, through modules.dep of the release (under ``root``)."""
    base = os.path.join(root, "lib/modules", release)
    try:
        with open(os.path.join(base, "modules.dep"), encoding="utf-8", errors="replace") as f:
            for line in f:
                path = line.split(":", 1)[0]
                stem = os.path.basename(path).split(".ko")[0].replace("-", "_")
                if stem == name:
                    return os.path.join(base, path) if not os.path.isabs(path) else os.path.join(root, path.lstrip("/"))
    except OSError:
        return None
    return None


def diagnose(mod: LoadedModule, module_unload: Optional[bool], force_unload: Optional[bool],
             ko_has_exit: Optional[bool], layout_problem: Optional[str]) -> List[Finding]:
    """Every delete_module() branch that stops this module, first branch first."""
    out = []  # type: List[Finding]
    if module_unload is False:
        return [Finding("CONFIG_MODULE_UNLOAD", "ENOSYS", "this kernel is built without CONFIG_MODULE_UNLOAD: no module can be unloaded")]
    if mod.users:
        out.append(Finding("source_list", "EWOULDBLOCK", "in use by %s: unload them first (rmmod %s)" % (
            ", ".join(mod.users), " ".join(mod.users))))
    if mod.state != "Live":
        out.append(Finding("state", "EBUSY", "state is %s, not Live: it is still initialising or already going away" % mod.state))
    if mod.permanent:
        if ko_has_exit is False:
            why = "the module has no module_exit(): it was written to stay loaded"
        elif layout_problem:
            why = ("its .ko does have an exit function, but %s: the kernel reads `exit` where the module did not put it "
                   "(the original incident: a module built by another compiler or against another configuration)" % layout_problem)
        elif ko_has_exit:
            why = ("its .ko has an exit function, yet the kernel sees none: the loaded module does not match the file "
                   "(rebuilt since loading?) or was built against another struct module layout")
        else:
            why = "the kernel sees an init function but no exit function"
        force = ("; `rmmod -f` would force it (CONFIG_MODULE_FORCE_UNLOAD=y here) and taints the kernel"
                 if force_unload else "; CONFIG_MODULE_FORCE_UNLOAD is not set, so not even `rmmod -f` can" if force_unload is False else "")
        out.append(Finding("init && !exit", "EBUSY", "/proc/modules shows [permanent]: " + why + force))
    if mod.refcnt and not mod.users:
        out.append(Finding("try_stop_module", "EWOULDBLOCK", "reference count is %d: something holds it open "
                           "(a device node, a socket, a filesystem mount)" % mod.refcnt))
    return out
