"""The one reader of kernel configurations: ``.config``, ``include/config/auto.conf``, ``/boot/config-R``
and ``/proc/config.gz``.

Strings are unquoted (auto.conf quotes them before 5.17, not after); ``# CONFIG_X is not set`` reads
as ``n``. A file that cannot be read or decompressed is BadInput, one line, never a codec traceback.
"""

import gzip
import os
import re
import zlib
from typing import Dict, Mapping, NamedTuple, Optional, Sequence, Tuple

from kbuildguard import arch, bounded
from kbuildguard.errors import BadInput

# /proc/config.gz of a distribution kernel is ~60 KiB compressed, ~250 KiB plain.
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def _text(path: str) -> str:
    try:
        if path.endswith(".gz"):
            with bounded.open_file(path, "a kernel configuration") as plain, gzip.GzipFile(fileobj=plain) as f:
                raw = bounded.read_upto(f, MAX_CONFIG_BYTES + 1)  # type: ignore[arg-type]
        else:
            raw = bounded.read_file(path, MAX_CONFIG_BYTES, "a kernel configuration")
    except (OSError, EOFError, zlib.error) as exc:
        # gzip's BadGzipFile is an OSError (3.8+); 3.6 raises OSError("Not a gzipped file") too
        raise BadInput("%s: cannot read: %s" % (path, getattr(exc, "strerror", None) or exc))
    if len(raw) > MAX_CONFIG_BYTES:
        raise BadInput("%s: larger than %d MiB: not a kernel configuration" % (path, MAX_CONFIG_BYTES >> 20))
    if b"\x00" in raw:
        raise BadInput("%s: binary data, not a kernel configuration" % path)
    return raw.decode("utf-8", errors="replace")


def read(path: str) -> Dict[str, str]:
    """CONFIG_ values of a kernel configuration file."""
    return _values(_text(path))


def _values(text: str) -> Dict[str, str]:
    values: Dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
                value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            values[key] = value
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            values[line[2:-len(" is not set")]] = "n"
    return values


def read_keys(path: str, keys: Sequence[str]) -> Dict[str, str]:
    """Only KEYS of a configuration file, found without parsing every line."""
    text = _text(path)
    values: Dict[str, str] = {}
    for key in keys:
        m = re.search(r"^%s=(.*)$" % re.escape(key), text, re.M)
        if m:
            value = m.group(1)
            if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
                value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            values[key] = value
    return values


def compiler_header(path: str) -> Optional[str]:
    """The ``# Compiler: gcc (GCC) 8.3.1 ...`` line that 4.19-5.7 wrote at the top of .config."""
    try:
        head = bounded.read_head(path, 64 * 1024, "a kernel configuration")  # ten lines, not "ten lines" of a file without a newline
    except (OSError, BadInput):
        return None
    for line in head.decode("utf-8", errors="replace").splitlines()[:10]:
        if line.startswith("# Compiler:"):
            return line[len("# Compiler:"):].strip()
    return None


# scripts/kconfig/confdata.c conf_write() puts the root menu's prompt on the fourth line; Kconfig's
# `mainmenu "Linux/$(ARCH) $(KERNELVERSION) Kernel Configuration"` makes it "Linux/x86 6.1.192 ...".
_HEADER = re.compile(r"^# Linux/(?P<arch>\S+) (?P<version>\d+\.\d+)(?:\.\S*)? Kernel Configuration\s*$")
_RELEASE_VERSION = re.compile(r"^(\d+\.\d+)(?:\.|-|\+|$)")
# arch/x86/um/Kconfig defines X86_32/X86_64 for User-mode Linux on x86: those two may stand beside UML.
_BESIDE_UML = ("CONFIG_X86_32", "CONFIG_X86_64")


def config_header(path: str) -> Optional[Tuple[str, str]]:
    """The ARCH and MAJOR.MINOR of the ``# Linux/ARCH VERSION Kernel Configuration`` header, or None."""
    try:
        lines = _text(path).splitlines()[:10]
    except BadInput:
        return None
    for line in lines:
        m = _HEADER.match(line)
        if m:
            return m.group("arch"), m.group("version")
    return None


def _refuse_foreign_release(path: str, values: Mapping[str, str], release: str) -> None:
    """A configuration whose header or CONFIG_LOCALVERSION names another kernel than ``release``.

    KERNELRELEASE is KERNELVERSION, then the localversion* files, CONFIG_LOCALVERSION and LOCALVERSION
    (scripts/setlocalversion), so the release starts with the header's MAJOR.MINOR and holds a
    non-empty CONFIG_LOCALVERSION. Debian's 6.1.0-57-amd64 says "6.1.192" in its header: only
    MAJOR.MINOR is compared."""
    want = _RELEASE_VERSION.match(release)
    header = config_header(path)
    if want is not None and header is not None and header[1] != want.group(1):
        raise BadInput("%s is the configuration of Linux %s (its header: Linux/%s %s), the target kernel is %s" % (
            path, header[1], header[0], header[1], release),
            hint="give the target kernel's own configuration (/boot/config-%s)" % release)
    local = values.get("CONFIG_LOCALVERSION", "")
    if local and local not in release:
        raise BadInput("%s is the configuration of another kernel: CONFIG_LOCALVERSION=%r is not part of the "
                       "target release %s" % (path, local, release),
                       hint="give the target kernel's own configuration (/boot/config-%s)" % release)


def _refuse_cut_or_joined(path: str, text: str) -> None:
    """BadInput for a .config cut short or two joined (issue 22): each would decide the gates on what it
    lacks or on the other file's values.

    scripts/kconfig/confdata.c conf_write() writes every visible symbol ("# CONFIG_X is not set" too),
    menu by menu, and since v5.1 closes each menu with "# end of PROMPT" (commit 8e2442a5f86e, "kconfig:
    add 'end of menu' comments"). Since 4.18 the top Kconfig sources lib/Kconfig.debug, whose menu
    "Kernel hacking" every architecture shows: a file with "# end of" lines and no "# end of Kernel
    hacking" was cut off. (auto.conf and older files carry no such comment: not judged here.) Its
    header "# Linux/ARCH VERSION Kernel Configuration" is written once, on top: a second one is
    another file appended."""
    lines = text.splitlines()
    headers = [(n, m) for n, m in ((n, _HEADER.match(line)) for n, line in enumerate(lines, start=1)) if m]
    if len(headers) > 1:
        raise BadInput("%s holds %d configuration headers (%s): two configurations joined, not one kernel's" % (
            path, len(headers), ", ".join("line %d: Linux/%s %s" % (n, m.group("arch"), m.group("version"))
                                          for n, m in headers[:3])),
            hint="give the kernel's own configuration: /boot/config-RELEASE, or /proc/config.gz of the running kernel")
    if any(line.startswith("# end of ") for line in lines) and "# end of Kernel hacking" not in lines:
        last = next((line for line in reversed(lines) if line.strip()), "")
        raise BadInput("%s is cut off: it has no '# end of Kernel hacking', the last menu every kernel's .config "
                       "closes (%d lines; the last: %.60s)" % (path, len(lines), last),
                       hint="give the whole file: /boot/config-RELEASE, or /proc/config.gz of the running kernel")


def read_named(path: str, target_arch: Optional[arch.Arch] = None, release: Optional[str] = None) -> Dict[str, str]:
    """A kernel configuration the user named (--kernel-config): read, and refused when it is not one,
    or is one of another architecture than the target's (when that is known).

    Every gate is recomputed from it, so any text would silently decide the verdict: a file with only
    ``CONFIG_FOO=y`` is not a kernel's configuration. Every kernel's has its architecture's symbol
    (arch.KCONFIG_ARCHES: the `config ARCH` of each arch/*/Kconfig of 6.1, PPC32, SPARC64 ...), and
    one that loads modules has CONFIG_MODULES=y (init/Kconfig "menuconfig MODULES").
    """
    text = _text(path)
    _refuse_cut_or_joined(path, text)
    values = _values(text)
    missing = []
    if values.get("CONFIG_MODULES") != "y":
        missing.append("CONFIG_MODULES=y (%s)" % ("set to %s" % values["CONFIG_MODULES"] if "CONFIG_MODULES" in values
                                                  else "absent"))
    symbols = arch.kconfig_arches(values)
    if not symbols:
        missing.append("architecture symbol (CONFIG_X86_64, CONFIG_ARM64, CONFIG_PPC32, CONFIG_SPARC64 ... as "
                       "arch/*/Kconfig names them)")
    many = [sym for sym in symbols if not ("CONFIG_UML" in symbols and sym in _BESIDE_UML)]
    if len(many) > 1:
        # One arch/ folder is built at a time: two of its `config ARCH` symbols are never both set.
        raise BadInput("%s sets more than one architecture: %s: not one kernel's configuration" % (
            path, ", ".join("%s=y (%s)" % (sym, arch.KCONFIG_ARCHES[sym]) for sym in many)),
            hint="give the kernel's own configuration: /boot/config-RELEASE, or /proc/config.gz of the running kernel")
    if missing:
        raise BadInput("%s is not a kernel configuration that loads modules: it has no %s (%d CONFIG_ line(s) read)" % (
            path, " and no ".join(missing), len(values)),
            hint="give the kernel's own configuration: /boot/config-RELEASE, or /proc/config.gz of the running kernel")
    if target_arch is not None:
        own = target_arch.traits.kconfig
        modelled = arch.from_kconfig(values)
        if own not in symbols or (modelled is not None and modelled is not target_arch):
            named = ", ".join("%s=y (%s)" % (s, arch.KCONFIG_ARCHES[s]) for s in symbols)
            raise BadInput("%s is the configuration of another architecture: it sets %s, the target kernel is %s%s" % (
                path, named, target_arch, " (%s)" % modelled if modelled is not None and own in symbols else ""),
                hint="give the target kernel's own configuration (/boot/config-RELEASE of that machine)")
    if release:
        _refuse_foreign_release(path, values, release)
    return values


class KernelConfig(NamedTuple):
    """The configuration the target kernel itself was built with, and where it was read."""

    path: str
    values: Mapping[str, str]


def kernel_config_path(release: str, sysroot: str, running: bool, explicit: Optional[str] = None) -> Optional[str]:
    """The target kernel's own configuration: given, /boot/config-R (under the sysroot), or /proc/config.gz.

    /proc/config.gz is the running kernel's (kernel/configs.c, CONFIG_IKCONFIG_PROC): never another's.
    (The target's fields, not the KernelTarget: target.kernel imports this module.)"""
    if explicit:
        return explicit
    root = sysroot if sysroot != "/" else ""
    boot = root + "/boot/config-%s" % release
    if os.path.isfile(boot):
        return boot
    if running and os.path.isfile("/proc/config.gz"):
        return "/proc/config.gz"
    return None


def read_kernel(release: str, sysroot: str, running: bool, explicit: Optional[str] = None) -> Optional[KernelConfig]:
    """The kernel's own configuration, read once for the drift comparison and the loader's gates;
    None when none is at hand. A file that cannot be read is BadInput (the caller decides whether
    that stops the run)."""
    path = kernel_config_path(release, sysroot, running, explicit)
    return KernelConfig(path, read(path)) if path is not None else None
