"""`explain MODULE.ko` / `explain --dmesg FILE`: the kernel's loader lines mapped to gate, cause and fix.

Every log line below is the kernel's own wording (6.1 unless said: kernel/module/main.c, version.c,
signing.c, security/lockdown/lockdown.c, arch/x86/kernel/module.c, kernel/bpf/btf.c), in the forms
users paste: dmesg, dmesg -T, journalctl -k, rsyslog, with and without timestamps.
"""

import io
import json

import pytest

from conftest import FakeRunner, make_tree
from elfbuild import build_module
from kbuildguard.cli import main
from kbuildguard.explain.loadlog import find
from kbuildguard.gates.model import Effect, Gate

RELEASE = "6.1.0-56-amd64"
MAGIC = RELEASE + " SMP preempt mod_unload modversions "

# One real-looking boot: other modules' lines around ours, kernel noise between them.
DMESG = """\
[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1 (2025-11-09)
[    2.104512] usbcore: registered new interface driver usbhid
[   41.517209] vboxdrv: loading out-of-tree module taints kernel.
[   41.517380] vboxdrv: module verification failed: signature and/or required key missing - tainting kernel
[   63.118071] kdemo: disagrees about version of symbol _printk
[   63.118077] kdemo: Unknown symbol _printk (err -22)
[   63.118102] kdemo: disagrees about version of symbol module_layout
[   70.200000] e1000e 0000:00:19.0 eno1: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx
[   88.881913] kdemo: disagrees about version of symbol _printk
[   88.881920] kdemo: Unknown symbol _printk (err -22)
[   90.000001] otherdrv: Unknown symbol foo_register (err -2)
"""


def kinds(hits):
    return [h.message.kind for h in hits]


@pytest.mark.parametrize("line, kind, gate, effect", [
    ("kdemo: disagrees about version of symbol _printk", "symbol_version", Gate.SYMBOL_VERSIONS, Effect.REJECTED),
    ("kdemo: Unknown symbol my_helper (err -2)", "unknown_symbol", Gate.SYMBOLS, Effect.REJECTED),
    ("kdemo: version magic '6.1.0-9-amd64 SMP mod_unload modversions ' should be "
     "'6.1.0-56-amd64 SMP preempt mod_unload modversions '", "vermagic", Gate.VERMAGIC, Effect.REJECTED),
    ("kdemo: module license 'Proprietary' taints kernel.", "license", Gate.LICENSE, Effect.TAINTS),
    ("kdemo: module verification failed: signature and/or required key missing - tainting kernel", "signature_taint",
     Gate.SIGNATURE, Effect.TAINTS),
    ("kdemo: module uses symbol (dma_buf_export) from namespace DMA_BUF, but does not import it.", "namespace",
     Gate.SYMBOLS, Effect.REJECTED),
    ("kdemo: please compile with -fno-common", "common_symbol", Gate.SYMBOLS, Effect.REJECTED),
    ("module kdemo: .gnu.linkonce.this_module section size must match the kernel's built struct module size at run "
     "time", "this_module_size", Gate.LAYOUT, Effect.REJECTED),
    ("kdemo: loading out-of-tree module taints kernel.", "out_of_tree", None, Effect.TAINTS),
    ("failed to validate module [kdemo] BTF: -22", "btf", Gate.BTF, Effect.REJECTED),
    ("kdemo: module_layout: kernel tainted.", "forced", Gate.SYMBOL_VERSIONS, Effect.TAINTS),
    ("kdemo: bad vermagic: kernel tainted.", "forced", Gate.VERMAGIC, Effect.TAINTS),
    ("kdemo: exports duplicate symbol kdemo_hook (owned by kernel)", "duplicate_export", Gate.SYMBOLS, Effect.REJECTED),
    ("Module kdemo is blacklisted", "blacklisted", None, Effect.REJECTED),
    ("insmod: ERROR: could not insert module kdemo.ko: Key was rejected by service", "insmod", Gate.SIGNATURE,
     Effect.REJECTED),
    ("modprobe: ERROR: could not insert 'kdemo': Invalid module format", "insmod", None, Effect.REJECTED),
    ("systemd-modules-load[450]: Failed to insert module 'kdemo': Key was rejected by service", "modules_load",
     Gate.SIGNATURE, Effect.REJECTED),
    ("kdemo: no symbol version for _printk", "no_symbol_version", Gate.SYMBOL_VERSIONS, Effect.OK),
    # what Debian's 6.1 printed in qemu for issue 18's ELF variants (tests/integration/test_load_model.py)
    ("Invalid ELF section in module (section 37 type 1)", "elf_invalid", Gate.ELF, Effect.REJECTED),
    ("Invalid ELF section name in module (section 11 type 1)", "elf_invalid", Gate.ELF, Effect.REJECTED),
    ("ELF Spec violation: section 0 type(1)!=SH_NULL or non-zero len or addr", "elf_invalid", Gate.ELF, Effect.REJECTED),
    ("ELF Spec violation: section name table isn't null terminated", "elf_invalid", Gate.ELF, Effect.REJECTED),
    ("Module has invalid ELF structures", "elf_invalid", Gate.ELF, Effect.REJECTED),
    ("Lockdown: modprobe: unsigned module loading is restricted; see man kernel_lockdown.7", "lockdown",
     Gate.SIGNATURE, Effect.REJECTED),
    ("Loading of module with unavailable key is rejected", "signature_rejected", Gate.SIGNATURE, Effect.REJECTED),
    ("overflow in relocation type 11 val ffffffffc0a01010", "relocation_overflow", Gate.RELOCATIONS, Effect.REJECTED),
    ("module: overflow in relocation type 10 val ffffffffc0367060", "relocation_overflow", Gate.RELOCATIONS,
     Effect.REJECTED),  # what Debian's 6.1 printed in qemu (tests/integration/test_load_model.py)
    ("module kdemo: overflow in relocation type 283 val ffff800009a3c000", "relocation_overflow", Gate.RELOCATIONS,
     Effect.REJECTED),
    ("`kdemo' likely not compiled with -mcmodel=kernel", "mcmodel", Gate.RELOCATIONS, Effect.REJECTED),
    ("Kernel module BTF mismatch detected, BTF debug info may be unavailable for some modules", "btf_dropped",
     Gate.BTF, Effect.OK),
    ("kdemo: module has no symbols (stripped?)", "no_symbols", Gate.THIS_MODULE, Effect.REJECTED),
    ("kdemo: No module found in object", "no_this_module", Gate.THIS_MODULE, Effect.REJECTED),
    ("Invalid architecture in ELF header: 183", "machine", Gate.MACHINE, Effect.REJECTED),
])
def test_each_message_maps_to_its_gate(line, kind, gate, effect):
    for form in (line, "[   63.118071] " + line, "Dec 02 01:23:45 debian kernel: " + line,
                 "Dec  2 01:23:45 debian kernel: [   63.118071] " + line, "[Wed Dec  2 01:23:45 2026] " + line,
                 "<4>[   63.118071] " + line):
        hits, _ = find(form, "kdemo")
        assert kinds(hits) == [kind], form
        assert hits[0].gate == gate
        assert hits[0].message.effect is effect
        assert hits[0].module in ("kdemo", None)


def test_finds_only_this_modules_lines_in_a_boot_log():
    hits, repairs = find(DMESG, "kdemo")
    assert kinds(hits) == ["symbol_version", "unknown_symbol", "symbol_version", "symbol_version", "unknown_symbol"]
    assert [h.number for h in hits] == [5, 6, 7, 9, 10]
    assert hits[0].value("sym") == "_printk" and hits[2].value("sym") == "module_layout"
    assert repairs == ["removed a dmesg timestamp"]
    assert kinds(find(DMESG, "vboxdrv")[0]) == ["out_of_tree", "signature_taint"]
    assert find(DMESG, "nosuch")[0] == []


def test_a_dash_in_the_file_name_is_an_underscore_in_the_log():
    hits, _ = find("[ 1.0] my_drv: Unknown symbol foo (err -2)\n", "my-drv.ko")
    assert kinds(hits) == ["unknown_symbol"]


def test_unnamed_lines_belong_to_the_nearest_named_module():
    # signing.c: "Loading of %s is rejected" and lockdown name no module; insmod names the file
    ours = ("[  101.000001] Lockdown: insmod: unsigned module loading is restricted; see man kernel_lockdown.7\n"
            "[  101.000002] Loading of unsigned module is rejected\n"
            "insmod: ERROR: could not insert module ./kdemo.ko: Key was rejected by service\n")
    hits, _ = find(ours, "kdemo")
    assert kinds(hits) == ["lockdown", "signature_rejected", "insmod"]
    assert [h.module for h in hits] == [None, None, "kdemo"]
    theirs = ("[  101.000002] Loading of unsigned module is rejected\n"
              "[  101.000003] nvidia: module verification failed: signature and/or required key missing - tainting kernel\n")
    assert find(theirs, "kdemo")[0] == []
    alone = "[  101.000002] Loading of unsigned module is rejected\n"
    assert kinds(find(alone, "kdemo")[0]) == ["signature_rejected"]


@pytest.mark.parametrize("line", [
    # 6.1 arch/x86/kernel/module.c __apply_relocate_add()
    "[  153.041027] module: x86/modules: Skipping invalid relocation target, existing value is nonzero for type 1, "
    "loc 000000001419dd79, val ffffffffc0c2301d",
    # 6.3+ __write_relocate_add()
    "[   12.000000] x86/modules: Invalid relocation target, existing value is nonzero for type 1, loc "
    "00000000a3c0f2d1, val ffffffffc0a01010",
    # 6.12+: with the section and index
    "[   12.000000] module: x86/modules: Invalid relocation target, existing value is nonzero for sec 69, idx 1, "
    "type 1, loc ffffffffc2b6a258, val ffffffffc26a0b20",
])
def test_x86_relocation_refusal_in_each_kernels_words(line):
    log = "[   12.000000] kdemo: loading out-of-tree module taints kernel.\n" + line + "\n"
    hits, _ = find(log, "kdemo")
    assert kinds(hits) == ["out_of_tree", "relocation_target"]
    assert hits[1].gate is Gate.LAYOUT and hits[1].module is None


def test_btf_failure_keeps_the_verifier_lines_before_it():
    log = ("[    5.100000] BPF:[103] STRUCT kdemo_ops\n"
           "[    5.100001] BPF:size=48 vlen=3\n"
           "[    5.100002] BPF:\n"
           "[    5.100003] BPF:Invalid name\n"
           "[    5.100004] BPF:\n"
           "[    5.100005] failed to validate module [kdemo] BTF: -22\n")
    [hit], _ = find(log, "kdemo")
    assert hit.message.kind == "btf" and hit.value("err") == "-22"
    assert hit.context[0] == "BPF:[103] STRUCT kdemo_ops" and "BPF:Invalid name" in hit.context


# --- with the .ko: the file's own check ------------------------------------------------------


def setup_files(tmp_path, log, **module):
    tree = make_tree(tmp_path / "tree", release=RELEASE)
    ko = tmp_path / "kdemo.ko"
    ko.write_bytes(build_module(**module))
    (tmp_path / "dmesg.txt").write_text(log)
    return tree, str(ko), str(tmp_path / "dmesg.txt")


def run(tmp_path, argv, stdin="", runner=None):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env={"PATH": "/nonexistent"}, stdout=out, stderr=err, stdin=io.StringIO(stdin),
                runner=(lambda console: runner) if runner else None, cwd=str(tmp_path))
    assert "Traceback" not in err.getvalue()
    return code, out.getvalue(), err.getvalue()


def test_cli_text_leads_with_one_line_per_failure_and_the_file_confirms_the_crc(tmp_path):
    tree, ko, log = setup_files(tmp_path, DMESG, versions=(("module_layout", 0x9060323F), ("_printk", 0x12345678)))
    code, out, _ = run(tmp_path, ["explain", "kdemo.ko", "--dmesg", "dmesg.txt", "--kernel-dir", tree])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("rejected at load: disagrees about version of symbol _printk: ")
    assert "fix: rebuild against the kernel's own Module.symvers (%s/Module.symvers)" % tree in lines[0]
    assert lines[1].startswith("rejected at load: disagrees about version of symbol module_layout: ")
    assert "line 5, 6, 9, 10 [symbol_versions]: kdemo: disagrees about version of symbol _printk" in out
    assert "the file: confirmed: disagrees about version of symbol _printk (module 0x12345678, kernel 0x92997ed8)" in out
    # module_layout's CRC in the file is the kernel's: the log is about another build
    assert "line 7 [symbol_versions]" in out and "the file: contradicted" in out


def test_cli_json_and_predicted_failures_the_log_does_not_show(tmp_path):
    log = ("[   63.000000] kdemo: version magic '6.1.0-56-amd64 SMP mod_unload modversions ' should be "
           "'6.1.0-56-amd64 SMP preempt mod_unload modversions '\n")
    tree, ko, path = setup_files(tmp_path, log, vermagic=RELEASE + " SMP mod_unload modversions ",
                                 license="Proprietary", undefined=("_printk", "init_uts_ns"))
    code, out, _ = run(tmp_path, ["explain", ko, "--dmesg", path, "--kernel-dir", tree, "--json"])
    assert code == 0
    data = json.loads(out)
    assert data["mode"] == "load" and data["module"] == "kdemo" and data["ko"] == ko
    assert data["log"] == {"source": path, "lines": 1, "repairs": ["removed a dmesg timestamp"]}
    assert data["effect"] == "rejected-at-load"
    [f] = data["findings"]
    assert f["kind"] == "vermagic" and f["gate"] == "vermagic" and f["effect"] == "rejected-at-load"
    assert f["file"] == "confirmed" and "'preempt' in the kernel, not in the module" in f["file_says"]
    assert f["fix"].startswith("rebuild it against the build tree of 6.1.0-56-amd64")
    assert f["lines"] == [1] and f["names_module"] is True and f["source"] == "kernel/module/main.c check_modinfo()"
    predicted = {p["name"]: p for p in data["predicted_not_logged"]}
    assert predicted["license"]["effect"] == "rejected-at-load"
    assert predicted["license"]["why"] == "not reached: the kernel stopped at an earlier gate"
    assert "vermagic" not in predicted
    assert data["checks"] and data["settings"]


def test_a_gpl_only_symbol_hidden_from_a_proprietary_module_gets_the_licence_fix(tmp_path):
    log = ("Dec  2 01:23:45 debian kernel: [   63.1] kdemo: module license 'Proprietary' taints kernel.\n"
           "Dec  2 01:23:45 debian kernel: [   63.1] kdemo: Unknown symbol init_uts_ns (err -2)\n")
    tree, ko, path = setup_files(tmp_path, log, license="Proprietary", undefined=("_printk", "init_uts_ns"))
    code, out, _ = run(tmp_path, ["explain", ko, "--dmesg", path, "--kernel-dir", tree, "--json"])
    found = {f["kind"]: f for f in json.loads(out)["findings"]}
    assert found["unknown_symbol"]["file"] == "confirmed"
    assert "GPL-only init_uts_ns" in found["unknown_symbol"]["file_says"]
    assert found["unknown_symbol"]["fix"].startswith("stop using the GPL-only symbols, or license the module")
    assert found["license"]["effect"] == "taints" and found["license"]["file"] == "confirmed"


def test_the_log_of_another_kernel_is_said(tmp_path):
    log = "[ 1.0] kdemo: version magic '%s' should be '6.1.0-99-amd64 SMP preempt mod_unload modversions '\n" % MAGIC
    tree, ko, path = setup_files(tmp_path, log)
    code, out, _ = run(tmp_path, ["explain", ko, "--dmesg", path, "--kernel-dir", tree])
    assert code == 0
    assert "the file: contradicted: the file passes this gate" in out
    assert "could not see: the log is from kernel 6.1.0-99-amd64, the file was checked against 6.1.0-56-amd64" in out


def test_the_log_is_read_from_stdin_in_journalctl_form(tmp_path):
    journal = ("Dec 02 01:20:00 debian kernel: kdemo: loading out-of-tree module taints kernel.\n"
               "Dec 02 01:20:00 debian kernel: kdemo: no symbol version for _printk\n"
               "Dec 02 01:20:00 debian kernel: kdemo: Unknown symbol _printk (err -22)\n")
    code, out, _ = run(tmp_path, ["explain", "kdemo", "--dmesg", "-", "--json"], stdin=journal)
    assert code == 0
    data = json.loads(out)
    # Debian's "Disable matching missing version CRC": the warning became a refusal (err -22 follows)
    assert [(f["kind"], f["effect"], f["lines"]) for f in data["findings"]] == [
        ("out_of_tree", "taints", [1]), ("no_symbol_version", "rejected-at-load", [2, 3])]
    assert data["ko"] is None and data["checks"] is None and data["findings"][1]["file"] == "no-file"


def test_without_dmesg_the_running_kernels_log_is_read(tmp_path):
    tree, ko, _ = setup_files(tmp_path, "")
    fake = FakeRunner({("dmesg",): "[ 1.0] kdemo: Unknown symbol my_helper (err -2)\n"})
    code, out, _ = run(tmp_path, ["explain", "kdemo.ko", "--kernel-dir", tree], runner=fake)
    assert code == 0 and out.startswith("rejected at load: Unknown symbol my_helper (err -2): ")
    assert fake.calls == [["dmesg"]]


def test_a_log_without_the_module_still_shows_what_the_file_predicts(tmp_path):
    tree, ko, log = setup_files(tmp_path, DMESG.replace("kdemo", "other"),
                                versions=(("module_layout", 0x9060323F), ("_printk", 0x12345678)))
    code, out, _ = run(tmp_path, ["explain", "kdemo.ko", "--dmesg", "dmesg.txt", "--kernel-dir", tree])
    assert code == 0 and out.startswith("the log has no loader message for kdemo (%s, 11 lines)" % log)
    assert "rejected at load (symbol_versions): disagrees about version of symbol _printk" in out
    assert "was it loaded while this log was recorded?" in out


def test_dmesg_refused_is_one_line_and_points_at_dmesg_file(tmp_path):
    tree, ko, _ = setup_files(tmp_path, "")
    fake = FakeRunner({("dmesg",): (1, "dmesg: read kernel buffer failed: Operation not permitted")})
    code, out, err = run(tmp_path, ["explain", "kdemo.ko", "--kernel-dir", tree], runner=fake)
    assert code == 3 and out == ""
    assert "cannot read the kernel log: dmesg: read kernel buffer failed: Operation not permitted" in err
    assert "--dmesg FILE" in err and "journalctl -k" in err


def test_no_loader_message_is_said_and_is_no_error(tmp_path):
    code, out, _ = run(tmp_path, ["explain", "kdemo", "--dmesg", "-"], stdin=DMESG.replace("kdemo", "other"))
    assert code == 0 and out.startswith("the log has no loader message for kdemo")


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "cannot read"),
    (lambda p: p.write_bytes(b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 64), "binary data"),
    (lambda p: p.mkdir(), "cannot read"),
])
def test_bad_log_is_one_line_exit_3(tmp_path, make, message):
    make(tmp_path / "log")
    code, out, err = run(tmp_path, ["explain", "kdemo", "--dmesg", "log"])
    assert code == 3 and out == "" and message in err


def test_a_missing_ko_is_bad_input(tmp_path):
    code, _, err = run(tmp_path, ["explain", "gone.ko", "--dmesg", "-"], stdin="")
    assert code == 3 and "no such file" in err


def test_without_a_target_kernel_the_log_is_still_explained(tmp_path):
    ko = tmp_path / "kdemo.ko"
    ko.write_bytes(build_module())
    code, out, _ = run(tmp_path, ["explain", "kdemo.ko", "--dmesg", "-", "--kernel-dir", str(tmp_path / "nope")],
                       stdin="[ 1.0] kdemo: loading out-of-tree module taints kernel.\n"
                             "[ 1.0] kdemo: please compile with -fno-common\n")
    assert code == 0 and out.startswith("rejected at load: please compile with -fno-common")
    assert "taints: loading out-of-tree" not in out  # expected of every out-of-tree module: evidence, not a failure
    assert "line 1 [-]: kdemo: loading out-of-tree module taints kernel." in out
    assert "could not see: the file's own check: no target kernel" in out


def _root(tmp_path, tree=True, log=True):
    root = tmp_path / "R"
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text(RELEASE + "\n")
    (root / "boot").mkdir()
    (root / ("boot/config-%s" % RELEASE)).write_text("CONFIG_X86_64=y\nCONFIG_MODULES=y\nCONFIG_MODULE_SIG=y\n"
                                                   "CONFIG_MODVERSIONS=y\nCONFIG_MODULE_UNLOAD=y\n")
    if tree:
        make_tree(root / "lib/modules" / RELEASE / "build", release=RELEASE)
    if log:
        (root / "var/log").mkdir(parents=True)
        (root / "var/log/dmesg").write_text(DMESG)
    return str(root)


def test_with_root_the_roots_log_and_kernel_are_read_never_the_hosts(tmp_path):
    """issue 22 (tester): `explain MODULE.ko --root R` read the host's dmesg and kernel."""
    _, ko, _ = setup_files(tmp_path, "", versions=(("module_layout", 0x9060323F), ("_printk", 0x12345678)))
    root = _root(tmp_path)
    fake = FakeRunner({("dmesg",): "[ 1.0] kdemo: Unknown symbol host_only (err -2)\n"})
    code, out, err = run(tmp_path, ["explain", "kdemo.ko", "--root", root], runner=fake)
    assert code == 0, err
    assert fake.calls == []  # the host's dmesg is never run
    assert "host_only" not in out
    assert "line 5, 6, 9, 10 [symbol_versions]: kdemo: disagrees about version of symbol _printk" in out
    assert "the file: confirmed: disagrees about version of symbol _printk" in out  # R's tree's Module.symvers


def test_with_root_what_the_root_lacks_is_said(tmp_path):
    _, ko, _ = setup_files(tmp_path, "")
    root = _root(tmp_path, tree=False, log=False)
    fake = FakeRunner({})
    code, out, err = run(tmp_path, ["explain", "kdemo.ko", "--root", root], runner=fake)
    assert code == 0, err
    assert fake.calls == []
    assert "a kernel log: %s has none of sos_commands/kernel/dmesg, var/log/dmesg, var/log/kern.log" % root in out
    assert "its configuration says CONFIG_MODULE_SIG=y, CONFIG_MODULE_SIG_FORCE=n, CONFIG_MODVERSIONS=y" in out
