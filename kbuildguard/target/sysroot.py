"""What a ``--sysroot`` folder is: a build root to build and install in, or a captured system.

A support engineer plans for a customer's machine from what the customer sent:

- a **sosreport** (Red Hat, CentOS, Ubuntu: ``sos report``): the files it copied under their own
  paths (``etc/os-release``, ``proc/version`` when the kernel plugin copied it), command output under
  ``sos_commands/<plugin>/`` (``sos_commands/kernel/uname_-a``, ``sos_commands/kernel/dmesg``), and
  ``installed-rpms`` (``rpm -qa`` with install dates) at the top;
- a SUSE **supportconfig** (``scc_HOST_DATE/``): flat text files whose sections start with a
  ``#==[ Command ]==#`` or ``#==[ Configuration File ]==#`` banner followed by ``# /bin/uname -a`` or
  ``# /etc/os-release``; ``basic-environment.txt`` holds uname and os-release, ``boot.txt`` dmesg.

A captured system can be read and planned for, never installed into. Everything else is a build
root (a mock root, a chroot, an image): kbuildguard reads it and its package manager installs into
it. Pure functions over files; nothing here starts a process.
"""

import os
import re
from typing import Dict, List, NamedTuple, Optional

from kbuildguard import bounded
from kbuildguard.strenum import StrEnum


class Layout(StrEnum):
    BUILD_ROOT = "build root"
    SOSREPORT = "sosreport"
    SUPPORTCONFIG = "supportconfig"

    @property
    def captured(self) -> bool:
        return self is not Layout.BUILD_ROOT


class KernelText(NamedTuple):
    """Text that holds the target kernel's /proc/version line (or only its release), and its file."""

    text: str
    source: str  # relative to the sysroot: "proc/version", "sos_commands/kernel/dmesg"


_LIMIT = 16 * 1024 * 1024
_SECTION = re.compile(r"^#==\[ [^\]]+ \]=+#\s*$")


def layout_of(root: str) -> Layout:
    """sos_commands/ (or installed-rpms next to a uname) makes a sosreport; basic-environment.txt a supportconfig."""
    if os.path.isdir(os.path.join(root, "sos_commands")) or (
            os.path.isfile(os.path.join(root, "installed-rpms")) and os.path.exists(os.path.join(root, "uname"))):
        return Layout.SOSREPORT
    if os.path.isfile(os.path.join(root, "basic-environment.txt")):
        return Layout.SUPPORTCONFIG
    return Layout.BUILD_ROOT


def _read(root: str, rel: str) -> Optional[str]:
    try:
        raw = bounded.read_file(os.path.join(root, rel), _LIMIT, "a sysroot's or sosreport's text file")
    except OSError:
        return None
    if b"\x00" in raw:
        return None
    return raw.decode("utf-8", errors="replace")


def sections(text: str) -> Dict[str, str]:
    """A supportconfig file's sections by their command or file name (``/bin/uname -a``, ``/etc/os-release``)."""
    out: Dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if _SECTION.match(lines[i]) and i + 1 < len(lines) and lines[i + 1].startswith("# "):
            name = lines[i + 1][2:].strip()
            body: List[str] = []
            i += 2
            while i < len(lines) and not _SECTION.match(lines[i]):
                body.append(lines[i])
                i += 1
            out.setdefault(name, "\n".join(body).strip("\n") + "\n")
            continue
        i += 1
    return out


def _section(sects: Dict[str, str], command: str) -> Optional[str]:
    """The section of ``command`` whatever folder the program was run from (/bin/uname, /usr/bin/uname)."""
    for name, body in sects.items():
        if name == command or name.endswith("/" + command):
            return body
    return None


def kernel_texts(root: str, layout: Layout) -> List[KernelText]:
    """Where the kernel line may be, best first: the /proc/version copy, then dmesg (the boot line)."""
    found: List[KernelText] = []
    if layout is Layout.SUPPORTCONFIG:
        # the kernel line is in a dmesg section (boot.txt) or a /proc/version one: pasted.py finds it in the file
        for name in ("basic-environment.txt", "boot.txt"):
            text = _read(root, name)
            if text and "Linux version" in text:
                found.append(KernelText(text, name))
        return found
    candidates = ["proc/version"]
    if layout is Layout.SOSREPORT:
        candidates += ["sos_commands/kernel/dmesg", "sos_commands/logs/journalctl_--no-pager_--catalog_--boot_-k",
                       "var/log/dmesg"]
    for rel in candidates:
        text = _read(root, rel)
        if text and "Linux version" in text:
            found.append(KernelText(text, rel))
    return found


def uname_release(root: str, layout: Layout) -> Optional[KernelText]:
    """The release from ``uname -a`` output, when no kernel line was captured (it names no compiler)."""
    if layout is Layout.SOSREPORT:
        for rel in ("sos_commands/kernel/uname_-a", "uname"):
            text = _read(root, rel)
            if text:
                release = _release_of_uname(text)
                if release:
                    return KernelText(release, rel)
    elif layout is Layout.SUPPORTCONFIG:
        body = _section(sections(_read(root, "basic-environment.txt") or ""), "uname -a")
        if body:
            release = _release_of_uname(body)
            if release:
                return KernelText(release, "basic-environment.txt: uname -a")
    return None


def _release_of_uname(text: str) -> Optional[str]:
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "Linux" and re.match(r"^\d+\.\d+[\w.+~-]*$", words[2]):
            return words[2]
    return None


def os_release_text(root: str, layout: Layout) -> Optional[str]:
    """The captured or installed os-release, as text."""
    if layout is Layout.SUPPORTCONFIG:
        return _section(sections(_read(root, "basic-environment.txt") or ""), "/etc/os-release")
    for rel in ("etc/os-release", "usr/lib/os-release"):
        text = _read(root, rel)
        if text is not None:
            return text
    return None


def installed_packages(root: str, layout: Layout) -> Optional[List[str]]:
    """Package names the captured system has installed (sosreport installed-rpms, supportconfig rpm.txt)."""
    if layout is Layout.SOSREPORT:
        text = _read(root, "installed-rpms")
        if text is None:
            return None
        # "devtoolset-8-gcc-8.3.1-3.el7.x86_64    Tue 01 Sep 2020 ..." : the name is NVRA minus V-R.A
        return [m.group(1) for m in (re.match(r"^(\S+)-[^-\s]+-[^-\s]+\s", line + " ") for line in text.splitlines()) if m]
    if layout is Layout.SUPPORTCONFIG:
        text = _read(root, "rpm.txt")
        if text is None:
            return None
        names = []
        for line in text.splitlines():
            words = line.split()
            if words and not line.startswith("#") and words[0] != "NAME" and re.match(r"^[\w.+-]+$", words[0]):
                names.append(words[0])
        return names
    return None
