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
import re
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

from kbuildguard import bounded
from kbuildguard.errors import BadInput, KbgError, UsageError
from kbuildguard.gates import loader
from kbuildguard.gates.expectation import expect
from kbuildguard.gates.model import Check
from kbuildguard.gates.verify import STRUCT_MODULE_GATES, Expectation, verify_path
from kbuildguard.target import kconfig, kernel
from kbuildguard.target.kernel import KernelTarget
from kbuildguard.toolchain import MatchLevel


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
        lines = bounded.read_found_text(os.path.join(root, "proc/modules"), bounded.TEXT).splitlines()
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
        return LoadedModule(name=name, size=_number(fields[1]) or 0,
                            refcnt=_number(refcnt, signed=True) if _number(refcnt, signed=True) is not None else _number(fields[2]),
                            users=tuple(sorted(set(users) | set(holders))), permanent="[permanent]" in deps, state=fields[4],
                            initstate=_attr(sysdir, "initstate"), taint=_attr(sysdir, "taint"))
    return None


def _number(text: str, signed: bool = False) -> Optional[int]:
    """A decimal the kernel printed (ASCII digits, a leading '-' where signed), else None: a captured
    root is hostile text (str.isdigit() takes '²³', int() refuses it)."""
    if re.match(r"-?[0-9]{1,19}\Z" if signed else r"[0-9]{1,19}\Z", text):
        return int(text)
    return None


def _attr(sysdir: str, rel: str) -> str:
    try:
        return bounded.read_found_text(os.path.join(sysdir, rel), bounded.TEXT).strip()
    except OSError:
        return ""


def find_ko(root: str, release: str, name: str) -> Optional[str]:
    """The module's file, through modules.dep of the release (under ``root``)."""
    base = os.path.join(root, "lib/modules", release)
    try:
        lines = bounded.read_found_text(os.path.join(base, "modules.dep"), bounded.MODULES_DEP).splitlines()
    except OSError:
        return None
    for line in lines:
        path = line.split(":", 1)[0]
        stem = os.path.basename(path).split(".ko")[0].replace("-", "_")
        if stem == name:
            return os.path.join(base, path) if not os.path.isabs(path) else os.path.join(root, path.lstrip("/"))
    return None


def diagnose(mod: LoadedModule, module_unload: Optional[bool], force_unload: Optional[bool],
             ko_has_exit: Optional[bool], layout_problem: Optional[str]) -> List[Finding]:
    """Every delete_module() branch that stops this module, first branch first."""
    out: List[Finding] = []
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


class Explanation(NamedTuple):
    module: LoadedModule
    ko: Optional[str]
    findings: Tuple[Finding, ...]
    checks: Optional[Tuple[Check, ...]]
    not_seen: Tuple[str, ...]  # what could not be looked at, said plainly


def loaded_release(root: str, given: Optional[str]) -> str:
    """The release of the kernel the module is loaded in: given, ROOT/proc/sys/kernel/osrelease,
    ROOT/proc/version, or (only for the live root) this machine's."""
    if given:
        return given
    try:
        release = bounded.read_found_text(os.path.join(root, "proc/sys/kernel/osrelease"), bounded.TEXT).strip()
        if release:
            return release
    except OSError:
        pass
    if os.path.isfile(os.path.join(root, "proc/version")):
        from kbuildguard.target.kernel import read_proc_version

        return read_proc_version(os.path.join(root, "proc/version")).release
    if root == "/":
        return os.uname().release
    raise BadInput("%s: no proc/sys/kernel/osrelease or proc/version to tell the kernel release" % root,
                   hint="name it: --kernel RELEASE")


def _kernel(root: str, release: str, unseen: List[str]) -> Tuple[Optional[KernelTarget], Optional[Dict[str, str]]]:
    """The loaded kernel's build records and configuration, as far as ROOT shows them."""
    target, config = None, None
    try:
        target = kernel.resolve(kernel.Selector(kernel=release, sysroot=root if root != "/" else None))
    except KbgError as exc:
        unseen.append("the kernel's build records (%s)" % exc.message)
    # Without build records, ROOT's boot/config-R is still the kernel's configuration (issue 22):
    # read it for the facts it gives (CONFIG_MODULE_UNLOAD, CONFIG_MODULE_SIG ...).
    try:
        if target is not None:
            found = kconfig.read_kernel(target.release, target.sysroot, target.running)
        else:
            found = kconfig.read_kernel(release, root, root == "/")
        config = dict(found.values) if found is not None else None
    except BadInput as exc:
        unseen.append(exc.message)
    if config is None:
        # The places read_kernel looked, under ROOT (issue 22: "/boot/config-R" said of another root).
        places = [os.path.join(root, "boot/config-%s" % release)]
        if root == "/":
            places.append("/proc/config.gz")
        unseen.append("the kernel's configuration (%s)" % ", ".join(places))
    return target, config


# The options of init/Kconfig and kernel/module/Kconfig that decide whether a module loads without
# its own check: signatures (MODULE_SIG, MODULE_SIG_FORCE), CRCs (MODVERSIONS), unloading.
CONFIG_FACTS = ("CONFIG_MODULE_SIG", "CONFIG_MODULE_SIG_FORCE", "CONFIG_MODVERSIONS", "CONFIG_MODULE_UNLOAD",
                "CONFIG_MODULE_FORCE_LOAD")


# Where a captured or mounted root keeps a kernel log of its own (sos report, the boot's
# /var/log/dmesg that RHEL's and Debian's init write, rsyslog's kern.log): never the host's `dmesg`.
ROOT_LOGS = ("sos_commands/kernel/dmesg", "var/log/dmesg", "var/log/kern.log")


def root_log(root: str) -> Tuple[str, str]:
    """(text, path) of ROOT's own kernel log, or ("", "") when ROOT keeps none."""
    for rel in ROOT_LOGS:
        path = os.path.join(root, rel)
        if os.path.isfile(path):
            try:
                data = bounded.read_file(path, bounded.KERNEL_LOG.size, bounded.KERNEL_LOG.what)
            except OSError:
                continue
            return data.decode("utf-8", errors="replace"), path
    return "", ""


def root_expectation(root: str, release: Optional[str], level: MatchLevel,
                     env: Optional[Mapping[str, str]] = None) -> Tuple[Optional[Expectation], List[str]]:
    """What a .ko is held to for the kernel of ROOT (explain MODULE.ko --root ROOT), read from ROOT
    only: its osrelease, its build records and boot/config-R, its sys/kernel/btf/vmlinux for the
    layout -- never the host's kernel. With what ROOT lacks, said (issue 22)."""
    unseen: List[str] = []
    try:
        release = loaded_release(root, release)
    except BadInput as exc:
        return None, [exc.message]
    target, config = _kernel(root, release, unseen)
    if target is None:
        if config is not None:
            said = ", ".join("%s=%s" % (k, config.get(k, "n")) for k in CONFIG_FACTS)
            unseen.append("the file's own check (no build records of kernel %s under %s); its configuration says %s"
                          % (release, root.rstrip("/"), said))
        return None, unseen
    btf = os.path.join(root, "sys/kernel/btf/vmlinux")
    if not os.path.isfile(btf):
        unseen.append("%s (the kernel's own BTF, for the layout)" % btf)
    facts = loader.gather(target, read=config, env=env) if config else None
    return expect(target, level, facts, vmlinux=btf if os.path.isfile(btf) else None), unseen


def _ko_evidence(ko: str, target: KernelTarget, level: MatchLevel, root: str = "/",
                 config: Optional[Dict[str, str]] = None,
                 env: Optional[Mapping[str, str]] = None) -> Tuple[Tuple[Check, ...], Optional[bool], Optional[str]]:
    """(checks, does the file have an exit function, what is wrong with its struct module) of the .ko on disk.

    Of a captured root, what it holds of the loaded kernel counts as the running kernel's would: its
    sys/kernel/btf/vmlinux gives the layout, its boot/config-R the configuration the other gates read
    (issue 22: both were ignored, "layout not compared", "CONFIG_MODULE_SIG is unknown")."""
    btf = os.path.join(root, "sys/kernel/btf/vmlinux")
    facts = loader.gather(target, read=config, env=env) if config else None
    rep = verify_path(ko, expect(target, level, facts, vmlinux=btf if root != "/" and os.path.isfile(btf) else None))
    has_exit = rep.info.layout.exit_offset is not None if rep.info is not None and rep.info.layout is not None else None
    problems = [c.message for c in rep.checks if not c.ok and c.name in STRUCT_MODULE_GATES]
    return rep.checks, has_exit, "; ".join(problems) or None


def gather(root: str, name: str, release: Optional[str], ko: Optional[str], level: MatchLevel,
           env: Optional[Mapping[str, str]] = None) -> Explanation:
    """Everything explain looks at, read from ROOT (a captured system, or /). ENV: the Context's
    environment (its cache folder remembers an image's certificates)."""
    mod = read_loaded(root, name)
    if mod is None:
        raise UsageError("module %s is not loaded (no line in %s/proc/modules)" % (name, root.rstrip("/")))
    release = loaded_release(root, release)
    unseen: List[str] = []
    target, config = _kernel(root, release, unseen)
    module_unload = None if config is None else config.get("CONFIG_MODULE_UNLOAD") == "y"
    if module_unload is None and mod.refcnt is not None:
        module_unload = True  # /sys/module/M/refcnt exists only with CONFIG_MODULE_UNLOAD
    force = None if config is None else config.get("CONFIG_MODULE_FORCE_UNLOAD") == "y"
    ko = ko or find_ko(root, release, mod.name)
    checks, has_exit, layout_problem = None, None, None
    if ko and target is not None:
        checks, has_exit, layout_problem = _ko_evidence(ko, target, level, root, config, env)
    elif not ko:
        unseen.append("the module's .ko (not in modules.dep; give --ko FILE)")
    findings = diagnose(mod, module_unload, force, has_exit, layout_problem)
    return Explanation(mod, ko, tuple(findings), checks, tuple(unseen))
