"""Which system a plan is for, whether kbuildguard may install there, and what its repositories offer.

- this machine (no --sysroot): its package manager installs, and answers the queries;
- a build root (--sysroot DIR that is a mock root, chroot or image): its manager installs *into* it
  (``dnf --installroot DIR``, ``zypper --root DIR``, ``chroot DIR apt-get``) from the repositories
  configured *in* it, and the same repositories answer the queries;
- a captured system (--sysroot of a sosreport or supportconfig) or a kernel line
  (--proc-version-file): planned for, never installed into; its repositories are not reachable
  from here, so its plan is unverified.
"""

import re
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

from kbuildguard import arch as arches
from kbuildguard.errors import NoMatchingCompiler, ToolNotFound
from kbuildguard.identity import Family
from kbuildguard.provision.apt import Apt
from kbuildguard.provision.dnf import Dnf, Yum
from kbuildguard.provision.manager import Manager
from kbuildguard.provision.plan import Distro, InstallPlan, Package, Role, detect_distro, plan
from kbuildguard.provision.zypper import Zypper
from kbuildguard.run import Runner, quote
from kbuildguard.strenum import StrEnum
from kbuildguard.target import sysroot as sysroots
from kbuildguard.target.kernel import KernelTarget
from kbuildguard.toolchain import host_arch, runs_here

MANAGERS: Dict[str, Manager] = {m.name: m for m in (Apt(), Dnf(), Yum(), Zypper())}


class Kind(StrEnum):
    MACHINE = "this machine"
    BUILD_ROOT = "build root"
    CAPTURED = "captured system"
    KERNEL_LINE = "kernel line"


class System(NamedTuple):
    kind: Kind
    root: str  # "/" for this machine; the folder otherwise ("" for a kernel line)
    distro: Distro
    describe: str  # for messages: "this machine", "the build root /x", "the sosreport /y"

    @property
    def installable(self) -> bool:
        return self.kind in (Kind.MACHINE, Kind.BUILD_ROOT)


def system_for(target: KernelTarget, sysroot: Optional[str], proc_version_file: Optional[str],
               proc_version_data: Optional[bytes] = None) -> System:
    arch = str(target.arch or "")
    if sysroot:
        layout = sysroots.layout_of(target.sysroot)
        kind = Kind.CAPTURED if layout.captured else Kind.BUILD_ROOT
        return System(kind, target.sysroot, detect_distro(target.sysroot, arch), "the %s %s" % (layout, sysroot))
    if proc_version_file:
        source = "stdin" if proc_version_data is not None else proc_version_file
        from kbuildguard.errors import BadInput
        from kbuildguard.target.kernel import read_proc_version

        try:  # the builder (user@host) is not kept in the target: read again, bounded, already parsed once
            builder = read_proc_version(proc_version_file, proc_version_data).builder
        except BadInput:
            builder = ""
        distro = distro_of_kernel(target, builder)
        if distro is None:
            raise NoMatchingCompiler(
                "cannot tell which distribution built kernel %s (%s): no plan for it" % (target.release, source),
                hint="plan from a captured system instead: --sysroot SOSREPORT or SUPPORTCONFIG (its os-release says)")
        return System(Kind.KERNEL_LINE, "", distro, "the machine of %s" % source)
    return System(Kind.MACHINE, "/", detect_distro("/", arch), "this machine")


def distro_of_kernel(target: KernelTarget, builder: str = "") -> Optional[Distro]:
    """The distribution a kernel line names by its release suffix or its compiler's vendor, and for an
    Enterprise Linux kernel, its builder: CentOS builds its kernels on *.centos.org hosts
    (mockbuild@kbuilder.bsys.centos.org, mockbuild@aarch64-01.bsys.centos.org for AltArch), and CentOS
    plans differently from RHEL (centos-release-scl, the vault) -- RHEL's repository names do not
    exist there (issue 22)."""
    release, vendor, arch = target.release, target.compiler.vendor, str(target.arch or "")
    guessed = "(guessed from kernel %s)" % release
    m = re.search(r"\.el(\d+)", release)
    host = builder.rpartition("@")[2].strip().lower()
    if m and (host == "centos.org" or host.endswith(".centos.org")):
        return Distro("centos", ("rhel", "fedora"), m.group(1), "CentOS %s (guessed from kernel %s, built on %s)" % (
            m.group(1), release, host), arch)
    if m:
        return Distro("rhel", ("rhel", "fedora"), m.group(1), "Enterprise Linux %s %s" % (m.group(1), guessed), arch)
    m = re.search(r"\.amzn(2023|2)\b", release)
    if m:
        return Distro("amzn", ("fedora",), m.group(1), "Amazon Linux %s %s" % (m.group(1), guessed), arch)
    m = re.search(r"\.fc(\d+)\b", release)
    if m:
        return Distro("fedora", (), m.group(1), "Fedora %s %s" % (m.group(1), guessed), arch)
    if "SUSE" in vendor or "SUSE" in target.compiler.text:
        return Distro("sles", ("suse",), "", "SUSE %s" % guessed, arch)
    for word, distro_id in (("Ubuntu", "ubuntu"), ("Debian", "debian")):
        if word in vendor:
            return Distro(distro_id, (), "", "%s %s" % (word, guessed), arch)
    return None


def for_system(p: InstallPlan, system: System) -> InstallPlan:
    """The plan's commands as they must run for ``system``: pointed into a build root, unchanged
    otherwise (a captured system's are to be run on that machine)."""
    if system.kind is not Kind.BUILD_ROOT or not p.commands:
        return p._replace(system=system.describe)
    manager = MANAGERS[p.manager]
    release = p.distro.major
    return p._replace(commands=tuple(manager.in_root(c, system.root, release) for c in p.commands), system=system.describe)


def check(runner: Runner, p: InstallPlan, system: System, env: Mapping[str, str]) -> InstallPlan:
    """Ask the system's package manager which of the plan's packages it can install."""
    if not p.checked:
        return p
    if not system.installable:
        why = "%s cannot be asked from here: check that its repositories offer %s" % (
            system.describe, ", ".join(p.packages))
        return p._replace(unverified=why)
    answer = MANAGERS[p.manager].query(runner, p.packages, system.root, p.distro.major, env)
    if answer.unverified:
        return p._replace(unverified="%s: %s" % (answer.asked, answer.unverified), asked=answer.asked)
    checked = tuple(pkg._replace(available=answer.available.get(pkg.name, False)) for pkg in p.checked)
    return p._replace(checked=checked, asked=answer.asked)


def setup_hint(runner: Runner, target: KernelTarget, sysroot: Optional[str], proc_version_file: Optional[str],
               env: Mapping[str, str], scl_root: str = "/opt/rh", proc_version_data: Optional[bytes] = None) -> str:
    """What ``kbuildguard setup`` with the same inputs would do, as a hint for "no matching compiler":
    the same system, the same plan, checked the same way (issue 22: detect of an EL8 kernel line on
    Debian hinted `apt-get install gcc-8`, which Debian 12 does not have, while setup planned dnf)."""
    try:
        system = system_for(target, sysroot, proc_version_file, proc_version_data)
    except NoMatchingCompiler as exc:
        return exc.message + ("; " + exc.hint if exc.hint else "")
    # a tree of another machine (or a build root of one) is built from here with a cross compiler: the
    # root's own gcc-12 serves only that machine (issue 22)
    cross = cross_hint(runner, target, host_arch(), detect_distro("/"), env) if system.installable else ""
    try:
        p = plan(target, system.distro, need_compiler=True, need_tree=target.build_dir is None, scl_root=scl_root)
    except NoMatchingCompiler as exc:
        return cross or exc.message + ("; " + exc.hint if exc.hint else "")
    p = check(runner, for_system(p, system), system, env)
    if cross:
        # its build tree still comes from the root's own packages
        return cross + ("; the build tree: %s" % _plan_hint(p, system) if target.build_dir is None and p.commands else "")
    return _plan_hint(p, system)


def _plan_hint(p: InstallPlan, system: System) -> str:
    cmds = " && ".join(quote(c) for c in p.commands)
    where = "%s (%s)" % (system.describe, system.distro.name)
    missing = [pkg.name for pkg in p.checked if pkg.available is False]
    if missing:
        found = [pkg.elsewhere for pkg in p.checked if pkg.available is False and pkg.elsewhere]
        return "%s: %s says %s not in its repositories%s" % (
            where, p.asked, " and ".join(missing), (": " + " ".join(found)) if found else "")
    if not system.installable:
        return "`kbuildguard setup` plans for %s: %s -- to be run on that machine (%s)" % (where, cmds, p.unverified)
    checked = "checked with %s" % p.asked if p.asked and not p.unverified else "unverified: %s" % p.unverified
    return "`kbuildguard setup` installs it on %s: %s (%s)" % (where, cmds, checked)


def foreign_root(system: System, target: KernelTarget, host: str, host_distro: Distro, manager: str = "apt-get",
                 binfmt: str = "/proc/sys/fs/binfmt_misc") -> str:
    """Why a build root of another architecture cannot be installed into from this machine, with the
    cross compiler to build for it from here instead; "" when it can (same machine, or qemu-user
    registered for it). ``chroot ROOT apt-get`` fails with "Exec format error" (setup refuses it);
    ``dnf --installroot``, ``yum --installroot`` and ``zypper --root`` run this machine's manager,
    which resolves $basearch from this machine unless told otherwise (a note)."""
    arch = str(target.arch or system.distro.arch or "")
    if system.kind is not Kind.BUILD_ROOT or not arch or not host or arch == host:
        return ""
    if host == "x86_64" and arch == "i686":  # a 64-bit x86 kernel runs 32-bit programs
        return ""
    machine = arches.parse(arch)
    if machine is not None and runs_here(machine, arches.parse(host), binfmt):
        return ""
    triplet = machine.traits.triplet if machine is not None and machine.traits.triplet else "%s-linux-gnu" % arch
    cross = cross_compiler_install(target, triplet, host_distro)
    if manager == "apt-get":
        why = ("a foreign-architecture chroot cannot run here (no qemu-user registered in %s): `chroot %s apt-get` "
               "would fail with 'Exec format error'" % (binfmt, system.root))
    else:
        why = ("%s runs this machine's %s, which resolves packages for %s, not %s (yum and dnf take the architecture from this machine; check what "
               "it plans before --yes)" % (manager, manager, host, arch))
    return ("%s is a %s root and this machine is %s: %s. Install into it on a %s machine, or build for it from here "
            "with a cross compiler: %s, then kbuildguard make --sysroot %s (it finds %s-gcc-N and gives make ARCH=%s "
            "CROSS_COMPILE=%s- itself)" % (system.root, arch, host, why, arch, cross, system.root, triplet,
                                             machine.traits.kbuild if machine is not None else arch, triplet))


def cross_compiler_install(target: KernelTarget, triplet: str, host_distro: Distro) -> str:
    """How to install on this machine the cross compiler of the kernel's gcc for ``triplet``:
    Debian's gcc-N-TRIPLET (a "_" in the triplet is "-" in package names: gcc-12-x86-64-linux-gnu,
    which installs x86_64-linux-gnu-gcc-12), Fedora's gcc-TRIPLET (kernel builds only)."""
    major = target.compiler.version.split(".")[0]
    if target.compiler.family is Family.CLANG:
        return "none needed: the kernel's clang %s builds for %s with ARCH= (kbuild sets --target)" % (major, triplet)
    package = cross_package(target, triplet, host_distro)
    if package.startswith("gcc-%s-" % major):
        return "apt-get install " + package
    if package:
        return "dnf install %s (Fedora's cross gcc, for kernel builds)" % package
    return "a cross compiler for %s (gcc %s)" % (triplet, major)


def cross_package(target: KernelTarget, triplet: str, host_distro: Distro) -> str:
    """The package of this machine's distribution that installs the kernel's gcc for ``triplet``, ""
    where we know none. Debian's gcc-N-TRIPLET (a "_" in the triplet is "-" in package names:
    gcc-12-x86-64-linux-gnu, which installs x86_64-linux-gnu-gcc-12); Fedora's gcc-TRIPLET, one
    release only (its own gcc's)."""
    major = target.compiler.version.split(".")[0]
    if host_distro.id in ("debian", "ubuntu") or "debian" in host_distro.like:
        return "gcc-%s-%s" % (major, triplet.replace("_", "-"))
    if host_distro.id == "fedora" or "fedora" in host_distro.like:
        return "gcc-%s" % triplet
    return ""


def cross_plan(p: InstallPlan, target: KernelTarget, host: Optional[arches.Arch]) -> InstallPlan:
    """A plan for this machine, for a gcc kernel of another machine: the cross compiler in place of
    the native gcc-N the catalogue names (issue 22: `setup --kernel-dir` of an arm64 tree on amd64
    planned `apt-get install gcc-12`, which builds nothing for arm64); unchanged otherwise."""
    machine = target.arch
    if machine is None or not arches.foreign(machine, host) or not machine.traits.triplet \
            or target.compiler.family is not Family.GCC:
        return p
    package = cross_package(target, machine.traits.triplet, p.distro)
    native = [pkg.name for pkg in p.checked if pkg.role is Role.COMPILER]
    if not package or not native:
        return p

    def swap(names: Tuple[str, ...]) -> Tuple[str, ...]:
        out: List[str] = []
        for name in names:
            name = package if name in native else name
            if name not in out:
                out.append(name)
        return tuple(out)

    checked: List[Package] = []
    for pkg in p.checked:
        pkg = pkg._replace(name=package, elsewhere="") if pkg.role is Role.COMPILER else pkg
        if pkg.name not in [c.name for c in checked]:
            checked.append(pkg)
    program = "%s-gcc-%s" % (machine.traits.triplet, target.compiler.version.split(".")[0])
    note = ("kernel %s is %s and this machine %s: %s (%s) in place of %s, which builds for this machine only; "
            "kbuildguard make gives make ARCH=%s CROSS_COMPILE=%s-" % (
                target.release, machine, host, package, program, " ".join(native), machine.traits.kbuild,
                machine.traits.triplet))
    return p._replace(packages=swap(p.packages), commands=tuple(swap(c) if set(native) & set(c) else c for c in p.commands),
                      checked=tuple(checked), notes=p.notes + (note,), compiler_path="/usr/bin/" + program)


def cross_hint(runner: Runner, target: KernelTarget, host: Optional[arches.Arch], host_distro: Distro,
               env: Mapping[str, str]) -> str:
    """For a kernel of another machine than this one: the cross compiler a build from here uses, and
    the package that installs it when it is not on PATH (issue 22: setup and detect of an arm64
    root on amd64 named only the root's own gcc-12); "" for a native kernel."""
    machine = target.arch
    if machine is None or not arches.foreign(machine, host) or not machine.traits.triplet:
        return ""
    triplet = machine.traits.triplet
    if target.compiler.family is Family.CLANG:
        return "kernel %s is %s and this machine %s: a build from here uses this machine's clang %s with ARCH=%s " \
               "(kbuild gives clang --target)" % (target.release, machine, host, target.compiler.version.split(".")[0],
                                                   machine.traits.kbuild)
    program = "%s-gcc-%s" % (triplet, target.compiler.version.split(".")[0])
    try:
        found = "%s is on PATH (%s)" % (program, runner.which(program, env))
    except ToolNotFound:
        found = "%s is not on PATH: %s" % (program, cross_compiler_install(target, triplet, host_distro))
    return ("kernel %s is %s and this machine %s: a build from here needs the cross compiler %s; %s "
            "(kbuildguard make finds it and gives make ARCH=%s CROSS_COMPILE=%s-)" % (
                target.release, machine, host, program, found, machine.traits.kbuild, triplet))
