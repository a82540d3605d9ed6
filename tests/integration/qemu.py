"""Boot a real Debian kernel in qemu-system-x86_64 (software emulation) with a busybox initramfs,
run a shell script there, and return what it printed on the serial console."""

import os
import re
import stat
import subprocess

BUSYBOX = "/bin/busybox"  # Debian's busybox-static


def newc(name, mode, data=b""):
    """One entry of a newc cpio archive (what the kernel unpacks as initramfs)."""
    name_b = name.encode() + b"\x00"
    fields = [0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0]
    head = b"070701" + b"".join(b"%08x" % f for f in fields)
    out = head + name_b
    out += b"\x00" * ((4 - len(out) % 4) % 4)
    out += data
    out += b"\x00" * ((4 - len(data) % 4) % 4)
    return out


def initramfs(path, script, files, busybox=BUSYBOX):
    """A cpio with busybox, /init running ``script``, and ``files`` ({path in guest: host path})."""
    archive = b""
    for d in ("bin", "dev", "proc", "sys", "modules", "tmp"):
        archive += newc(d, stat.S_IFDIR | 0o755)
    with open(busybox, "rb") as f:
        archive += newc("bin/busybox", stat.S_IFREG | 0o755, f.read())
    init = "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nmount -t proc proc /proc\nmount -t sysfs sys /sys\n" + script
    init += "\necho KBG-DONE\npoweroff -f\n"
    archive += newc("init", stat.S_IFREG | 0o755, init.encode())
    for guest, host in sorted(files.items()):
        with open(host, "rb") as f:
            archive += newc(guest.lstrip("/"), stat.S_IFREG | 0o644, f.read())
    archive += newc("TRAILER!!!", 0)
    with open(path, "wb") as f:
        f.write(archive)
    return path


def boot(kernel, initrd, timeout=300, arch="x86_64", cmdline=()):
    """Serial output of one boot; the guest powers itself off when the script ends. CMDLINE: more
    kernel parameters (module.sig_enforce=1)."""
    if arch == "aarch64":
        machine = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57"]
        console = "ttyAMA0"
    else:
        machine = ["qemu-system-x86_64"]
        console = "ttyS0"
    argv = machine + ["-m", "512", "-smp", "1", "-nographic", "-no-reboot", "-monitor", "none",
                      "-kernel", kernel, "-initrd", initrd, "-append", " ".join(["console=%s panic=-1 loglevel=4" % console] + list(cmdline))]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return proc.stdout.decode("utf-8", "replace").replace("\r", "")


def have_qemu(arch="x86_64"):
    import shutil

    return bool(os.path.exists(BUSYBOX) and shutil.which("qemu-system-" + arch))


# The guest script's report lines, as every qemu test prints them
INSMOD_RMMOD = """
for m in %s; do
  insmod /modules/$m.ko 2>/tmp/err; echo "KBG-INSMOD $m $? $(tr '\\n' ' ' </tmp/err)"
  rmmod $m 2>/tmp/err; echo "KBG-RMMOD $m $? $(tr '\\n' ' ' </tmp/err)"
done
"""


def parse_report(out):
    """{"insmod": {m: (status, message)}, "rmmod": {...}, "proc": [/proc/modules lines]} from the serial output.
    (No ^ anchors: the console may put escape sequences before the first line.)"""
    def results(tag):
        return {m.group(1): (int(m.group(2)), m.group(3)) for m in re.finditer(r"KBG-%s (\S+) (\d+) ?(.*)$" % tag, out, re.M)}

    return {"insmod": results("INSMOD"), "rmmod": results("RMMOD"),
            "proc": [line[len("KBG-PROC "):] for line in out.splitlines() if line.startswith("KBG-PROC ")]}
