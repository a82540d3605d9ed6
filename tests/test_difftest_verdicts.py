"""The differential harness's verdicts (tests/integration/difftest.py, docs/differential.md): a crash
after the loader accepted the module is counted apart from a refusal. The kernel lines are the ones
the normal guest recorded for seed 18 (truth cache, Debian 6.1.0-57-amd64), cut to what matters."""

import pytest

from integration import difftest

INIT_OOPS = [  # v00753: a swapped relocation symbol in .init.text; init wrote through it
    "BUG: unable to handle page fault for address: ffffffffaa835ac0",
    "CPU: 0 PID: 179 Comm: insmod Tainted: GF           E      6.1.0-57-amd64 #1  Debian 6.1.192-3",
    "RIP: 0010:down_write+0x1c/0x70",
    "Call Trace:", "<TASK>", "? 0xffffffffc0214000",
    "dummy_init_module+0x18/0x1000 [kbgdt_v00753]",
    "do_one_initcall+0x59/0x220", "do_init_module+0x4a/0x1f0",
]
EXIT_OOPS = [  # v01965: a __param addend moved; rmmod freed a parameter through it
    "BUG: unable to handle page fault for address: 00000000ffffffff",
    "CPU: 0 PID: 112 Comm: rmmod Tainted: GF           E      6.1.0-57-amd64 #1  Debian 6.1.192-3",
    "Call Trace:", "<TASK>", "? module_destroy_params+0x2e/0x50", "? free_module+0x5f/0x160",
]
SELFTEST_OOPS = [  # v00219: michael_mic's init registered the algorithm, its self-test thread oopsed
    "[   14.352605] BUG: unable to handle page fault for address: ffffffffa0074940",
    "[   14.352700] CPU: 0 PID: 201 Comm: cryptomgr_test Tainted: G            E      6.1.0-57-amd64 #1",
    "[   14.352800] RIP: 0010:michael_update+0x118/0x143",
]
LOADER_OOPS = [  # v00108: module_finalize()'s alternatives decoding a relocated instruction, cut off
    "BUG: kernel NULL pointer dereference, address: 00000000000000e8",
    "CPU: 0 PID: 130 Comm: insmod Tainted: G            E      6.1.0-57-amd64 #1  Debian 6.1.192-3",
    "RIP: 0010:insn_get_prefixes+0x40/0x310",
    "Call Trace:", "<TASK>", "insn_get_opcode+0xc4/0x1c0", "insn_get_modrm+0x6d/0x110",
]
LOCKUP = ["[   24.963020] watchdog: BUG: soft lockup - CPU#0 stuck for 23s! [insmod:172]"]  # v01317


def seen(effect, dmesg, insmod="137 Killed"):
    return difftest.Seen(effect, insmod, "E", "8 8", dmesg)


@pytest.mark.parametrize("dmesg, stage", [(INIT_OOPS, "init"), (EXIT_OOPS, "exit"), (SELFTEST_OOPS, "init"),
                                          (LOADER_OOPS, "unknown"), (LOCKUP, "unknown"), ([], "unknown")])
def test_crash_stage_from_the_oops(dmesg, stage):
    assert difftest.crash_stage(seen("crash", dmesg)) == stage


def test_only_a_crash_has_a_stage():
    # a refusal whose log happens to mention do_init_module is still a refusal
    refused = seen("rejected-at-load", ["do_init_module+0x4a/0x1f0"], insmod="1 insmod: invalid module format")
    assert difftest.crash_stage(refused) == ""
    assert difftest.observed(refused) == "rejected-at-load"


@pytest.mark.parametrize("predicted", ["ok", "taints", "cannot-unload", "rejected-at-load", "unreadable"])
def test_a_crash_after_the_loader_accepted_is_counted_apart(predicted):
    assert difftest.judge(predicted, seen("crash", INIT_OOPS)) == difftest.MODULE_CRASH
    assert difftest.judge(predicted, seen("crash", EXIT_OOPS, insmod="0")) == difftest.MODULE_CRASH


@pytest.mark.parametrize("dmesg", [LOADER_OOPS, LOCKUP])
def test_a_crash_that_may_be_the_loader_is_a_refusal(dmesg):
    assert difftest.judge("taints", seen("crash", dmesg)) == "false-ok"
    assert difftest.judge("rejected-at-load", seen("crash", dmesg)) == "agree"


def test_not_checked_and_kbuildguard_crash_come_first():
    assert difftest.judge("not-checked", seen("crash", INIT_OOPS)) == "not-checked"
    assert difftest.judge("kbuildguard-crash", seen("crash", INIT_OOPS)) == "kbuildguard-crash"
    assert difftest.MODULE_CRASH in difftest.COLUMNS
