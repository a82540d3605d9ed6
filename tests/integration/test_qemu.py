"""End to end on a real kernel (issue 5): Debian's 6.1 amd64 kernel booted in qemu-system-x86_64
(software emulation) with a busybox initramfs loads and unloads every module variant we build, and
kbuildguard's layout verdict must agree with what the kernel did.

One boot serves every variant (about 5 s here). What the guest printed about /proc/modules and
/sys/module is laid out as a captured root, and `kbuildguard explain --root` reads it on the host.
"""

import json
import os
import re
import shutil

import pytest

from conftest import require
from integration.conftest import COPY_SOURCES, drifted_tree, image_root, kbuildguard, named_kdemo, plain_make
from integration.qemu import INSMOD_RMMOD, boot, have_qemu, initramfs, parse_report

HERE = os.path.dirname(os.path.abspath(__file__))
DRIFTED = {
    "kdemo_kallsyms": {"CONFIG_KALLSYMS": None},
    "kdemo_jumplabel": {"CONFIG_JUMP_LABEL": None},
    "kdemo_kprobes": {"CONFIG_KPROBES": None},
    "kdemo_printkidx": {"CONFIG_PRINTK_INDEX": "y"},
}
SINGLE = ["kdemo_ok", "kdemo_gcc11", "kdemo_clang16"] + sorted(DRIFTED) + ["kbg_noexit"]

SCRIPT = INSMOD_RMMOD + """
insmod /modules/kbg_provider.ko; insmod /modules/kbg_user.ko; echo "KBG-INSMOD kbg_user $?"
rmmod kbg_provider 2>/tmp/err; echo "KBG-RMMOD kbg_provider $? $(tr '\\n' ' ' </tmp/err)"
sed 's/^/KBG-PROC /' /proc/modules
for m in $(cut -d' ' -f1 /proc/modules); do
  echo "KBG-SYS $m refcnt $(cat /sys/module/$m/refcnt 2>/dev/null)"
  echo "KBG-SYS $m initstate $(cat /sys/module/$m/initstate 2>/dev/null)"
  echo "KBG-SYS $m holders $(ls /sys/module/$m/holders 2>/dev/null | tr '\\n' ' ')"
done
dmesg | grep -i -E "invalid|relocation|kdemo|kbg_" | sed 's/^/KBG-DMESG /'
"""


def _variant(tmp, name, release, cc="gcc-12", tree=None):
    repo = named_kdemo(tmp, name, kbuildguard_toml=False)
    plain_make(repo, release, cc, kernel_dir=tree)
    return os.path.join(repo, name + ".ko")


@pytest.fixture(scope="module")
def guest(debian_release, compilers, tmp_path_factory):
    require(have_qemu(), "qemu-system-x86 and busybox-static")
    image = image_root(debian_release)
    vmlinuz = os.path.join(image, "boot", "vmlinuz-" + debian_release)
    require(os.path.isfile(vmlinuz), "the unpacked linux-image-%s-unsigned" % debian_release)
    tmp = str(tmp_path_factory.mktemp("qemu"))
    kos = {}
    # built by kbuildguard itself
    repo = named_kdemo(tmp, "kdemo_ok")
    assert kbuildguard("make", "--kernel", debian_release, cwd=repo).code == 0
    kos["kdemo_ok"] = os.path.join(repo, "kdemo_ok.ko")
    mods = os.path.join(tmp, "modules")
    shutil.copytree(os.path.join(HERE, "modules"), mods, ignore=COPY_SOURCES)
    assert kbuildguard("make", "--kernel", debian_release, cwd=mods).code == 0
    for m in ("kbg_noexit", "kbg_provider", "kbg_user"):
        kos[m] = os.path.join(mods, m + ".ko")
    # built elsewhere: other compilers, drifted trees
    kos["kdemo_gcc11"] = _variant(tmp, "kdemo_gcc11", debian_release, "gcc-11")
    kos["kdemo_clang16"] = _variant(tmp, "kdemo_clang16", debian_release, "clang-16")
    for name, changes in DRIFTED.items():
        tree = drifted_tree(os.path.join(tmp, "tree-" + name), debian_release, changes)
        kos[name] = _variant(tmp, name, debian_release, "gcc-12", tree)
    # kbuildguard's verdicts, before the kernel is asked
    res = kbuildguard("check", "--kernel", debian_release, "--sysroot", image, "--json", *sorted(kos.values()))
    verdicts = {}
    for m in json.loads(res.out)["modules"]:
        name = os.path.basename(m["path"])[:-3]
        verdicts[name] = {c["name"]: c for c in m["checks"]}
    # the kernel's
    cpio = initramfs(os.path.join(tmp, "initramfs.cpio"), SCRIPT % " ".join(SINGLE),
                     {"modules/%s.ko" % n: p for n, p in kos.items()})
    out = boot(vmlinuz, cpio)
    with open(os.path.join(tmp, "serial.log"), "w") as f:
        f.write(out)
    assert "KBG-DONE" in out, out[-3000:]
    report = parse_report(out)
    insmod, rmmod, proc = report["insmod"], report["rmmod"], report["proc"]
    sysattrs = [line.split(" ", 3)[1:] for line in out.splitlines() if line.startswith("KBG-SYS ")]
    return {"kos": kos, "verdicts": verdicts, "insmod": insmod, "rmmod": rmmod, "proc": proc, "sys": sysattrs,
            "out": out, "tmp": tmp, "image": image, "release": debian_release}


def test_kbuildguard_built_module_loads_and_unloads(guest):
    assert guest["insmod"]["kdemo_ok"][0] == 0 and guest["rmmod"]["kdemo_ok"][0] == 0
    assert all(c["ok"] for c in guest["verdicts"]["kdemo_ok"].values())


@pytest.mark.parametrize("name", ["kdemo_gcc11", "kdemo_clang16"])
def test_other_compilers_same_layout_load_and_unload_but_are_refused(guest, name):
    assert guest["insmod"][name][0] == 0 and guest["rmmod"][name][0] == 0
    assert guest["verdicts"][name]["layout"]["ok"]
    assert not guest["verdicts"][name]["compiler"]["ok"]


@pytest.mark.parametrize("name", ["kdemo_jumplabel", "kdemo_kprobes"])
def test_drift_rejected_at_load_on_x86(guest, name):
    assert guest["insmod"][name][0] != 0
    assert not guest["verdicts"][name]["layout"]["ok"]
    assert "invalid module format" in guest["insmod"][name][1].lower()


@pytest.mark.parametrize("name", ["kdemo_kallsyms", "kdemo_printkidx"])
def test_the_original_incident_loads_then_cannot_be_unloaded(guest, name):
    """Same compiler, drifted headers: loads, /proc/modules says [permanent], rmmod EBUSY."""
    assert guest["insmod"][name][0] == 0
    assert guest["rmmod"][name][0] != 0
    assert [line for line in guest["proc"] if line.startswith(name + " ") and "[permanent]" in line]
    layout = guest["verdicts"][name]["layout"]
    assert not layout["ok"] and guest["verdicts"][name]["compiler"]["ok"]
    assert "kernel expects 0x350" in layout["message"]


def test_verdicts_agree_with_the_kernel(guest):
    for name in ["kdemo_ok", "kdemo_gcc11", "kdemo_clang16"] + sorted(DRIFTED):
        loaded_and_unloaded = guest["insmod"][name][0] == 0 and guest["rmmod"][name][0] == 0
        assert guest["verdicts"][name]["layout"]["ok"] == loaded_and_unloaded, name


def _captured_root(guest):
    """What the guest showed, laid out as a root for `explain --root`."""
    root = os.path.join(guest["tmp"], "captured-root")
    if os.path.isdir(root):
        return root
    release = guest["release"]
    os.makedirs(os.path.join(root, "proc/sys/kernel"))
    with open(os.path.join(root, "proc/modules"), "w") as f:
        f.write("\n".join(guest["proc"]) + "\n")
    with open(os.path.join(root, "proc/sys/kernel/osrelease"), "w") as f:
        f.write(release + "\n")
    for module, key, value in guest["sys"]:
        d = os.path.join(root, "sys/module", module)
        os.makedirs(os.path.join(d, "holders"), exist_ok=True)
        if key == "holders":
            for h in value.split():
                os.makedirs(os.path.join(d, "holders", h), exist_ok=True)
        elif value.strip():
            with open(os.path.join(d, key), "w") as f:
                f.write(value + "\n")
    extra = os.path.join(root, "lib/modules", release, "extra")
    os.makedirs(extra)
    with open(os.path.join(root, "lib/modules", release, "modules.dep"), "w") as f:
        for name, ko in guest["kos"].items():
            shutil.copy(ko, extra)
            f.write("extra/%s.ko:\n" % name)
    os.makedirs(os.path.join(root, "boot"))
    for name in ("config-" + release, "vmlinuz-" + release):
        os.symlink(os.path.join(guest["image"], "boot", name), os.path.join(root, "boot", name))
    os.makedirs(os.path.join(root, "usr/src"))
    os.symlink("/usr/src/linux-headers-" + release, os.path.join(root, "usr/src", "linux-headers-" + release))
    return root


def _explain(guest, module):
    res = kbuildguard("explain", module, "--root", _captured_root(guest), "--json")
    assert res.code == 0, res
    return json.loads(res.out)


def test_explain_no_exit_function(guest):
    data = _explain(guest, "kbg_noexit")
    assert data["module"]["permanent"]
    branch = [f for f in data["findings"] if f["branch"] == "init && !exit"]
    assert branch and "no module_exit()" in branch[0]["text"] and branch[0]["errno"] == "EBUSY"


def test_explain_in_use(guest):
    assert guest["rmmod"]["kbg_provider"][0] != 0
    data = _explain(guest, "kbg_provider")
    assert data["module"]["users"] == ["kbg_user"]
    assert data["findings"][0]["branch"] == "source_list" and data["findings"][0]["errno"] == "EWOULDBLOCK"


def test_explain_names_the_cause_of_the_incident(guest):
    data = _explain(guest, "kdemo_kallsyms")
    branch = [f for f in data["findings"] if f["branch"] == "init && !exit"]
    assert branch, data
    text = branch[0]["text"]
    assert "does have an exit function" in text and "kernel expects 0x350" in text
    assert "CONFIG_MODULE_FORCE_UNLOAD" in text


# --- `kbuildguard explain` inside the guest: the host's root read-only over 9p, chroot, the real /proc and /sys

def _with_dependencies(kernel_dir, names):
    """Module files for NAMES and everything they depend on (.modinfo depends=), in load order."""
    from kbuildguard.formats.module import find_modules, module_name, read_module

    by_name = {module_name(p): p for p in find_modules([kernel_dir])}
    order = []

    def visit(name):
        if name in order:
            return
        for dep in filter(None, read_module(by_name[name]).info("depends").split(",")):
            visit(dep)
        order.append(name)

    for n in names:
        visit(n)
    return [(n, by_name[n]) for n in order]


def test_explain_runs_inside_the_guest(guest, tmp_path):
    import subprocess
    import sys

    release = guest["release"]
    kernel_dir = os.path.join(guest["image"], "lib/modules", release, "kernel")
    stack = _with_dependencies(kernel_dir, ["virtio_pci", "9pnet_virtio", "9p"])
    files = {"modules/%s.ko" % n: p for n, p in stack}
    files.update({"modules/%s.ko" % n: guest["kos"][n] for n in ("kdemo_kallsyms", "kbg_noexit", "kbg_provider", "kbg_user")})
    python = os.path.realpath(sys.executable)
    venv_python = sys.executable
    explain = "chroot /host /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LC_ALL=C %s -m kbuildguard explain" % venv_python
    lines = ["for m in %s; do insmod /modules/$m.ko || echo KBG-STACK-FAILED $m; done" % " ".join(n for n, _ in stack),
             "mkdir -p /host && mount -t 9p -o trans=virtio,version=9p2000.L,ro hostroot /host || echo KBG-MOUNT-FAILED",
             "mount -t proc proc /host/proc && mount -t sysfs sys /host/sys",
             "for m in kdemo_kallsyms kbg_noexit kbg_provider kbg_user; do insmod /modules/$m.ko; done"]
    for name in ("kdemo_kallsyms", "kbg_noexit", "kbg_provider"):
        lines.append("echo KBG-EXPLAIN-BEGIN %s; %s %s --ko %s --json; echo KBG-EXPLAIN-END %s $?"
                     % (name, explain, name, guest["kos"][name], name))
    cpio = initramfs(str(tmp_path / "initramfs.cpio"), "\n".join(lines), files)
    argv_extra = ["-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on"]
    vmlinuz = os.path.join(guest["image"], "boot", "vmlinuz-" + release)
    proc = subprocess.run(["qemu-system-x86_64", "-m", "1024", "-smp", "1", "-nographic", "-no-reboot", "-monitor", "none",
                           "-kernel", vmlinuz, "-initrd", cpio, "-append", "console=ttyS0 panic=-1 loglevel=4"] + argv_extra,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = proc.stdout.decode("utf-8", "replace").replace("\r", "")
    with open(str(tmp_path / "serial.log"), "w") as f:
        f.write(out)
    assert python and "KBG-DONE" in out and "FAILED" not in out, out[-3000:]
    results = {}
    for m in re.finditer(r"KBG-EXPLAIN-BEGIN (\S+)\n(.*?)KBG-EXPLAIN-END \S+ (\d+)", out, re.S):
        assert m.group(3) == "0", m.group(2)[-2000:]
        text = m.group(2)
        results[m.group(1)] = json.loads(text[text.index("{"):text.rindex("}") + 1])
    incident = [f for f in results["kdemo_kallsyms"]["findings"] if f["branch"] == "init && !exit"][0]
    assert "does have an exit function" in incident["text"] and "kernel expects 0x350" in incident["text"]
    assert "running kernel's BTF" in " ".join(c["expected"] for c in results["kdemo_kallsyms"]["checks"] if c["name"] == "layout")
    assert [f["branch"] for f in results["kbg_noexit"]["findings"]] == ["init && !exit"]
    assert results["kbg_provider"]["findings"][0]["branch"] == "source_list"
