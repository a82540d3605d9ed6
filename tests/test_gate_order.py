"""The loader's order is one table (gates.model.GATE_STAGES); the closed sets of `explain` are enums.

What these hold: the Gate enum (the order of `checks` in every report) follows the table; every
message kbuildguard recognises has one Kind and every Kind a message; and `explain` ranks a layout
refusal by whether the kernel refuses its size (6.4+), not by the words of its message.
"""

import pytest

from conftest import make_tree
from elfbuild import build_module
from kbuildguard.explain.load import FileSays, LoadFinding, predicted_not_logged, size_refused
from kbuildguard.explain.loadlog import MESSAGES, USER_SPACE, Kind
from kbuildguard.formats.module import Layout, read_module
from kbuildguard.gates import loader
from kbuildguard.gates.model import GATE_STAGES, Check, Effect, Gate, Stage, stage
from kbuildguard.gates.reference import ReferenceLayout
from kbuildguard.gates.verify import Expectation, verify_info
from kbuildguard.target.kernel import Selector, resolve
from kbuildguard.toolchain import MatchLevel


def test_every_gate_has_its_stages_earliest_first():
    assert set(GATE_STAGES) == set(Gate)
    assert all(list(s) == sorted(s) for s in GATE_STAGES.values())


def test_the_gate_enum_follows_the_loaders_stages():
    # READ is no gate of the loader's (an unreadable file) and COMPILER comes last on purpose: the
    # loader never reads .comment. Between them the enum is the loader's order.
    loader_gates = [g for g in Gate if g not in (Gate.READ, Gate.COMPILER)]
    earliest = [GATE_STAGES[g][0] for g in loader_gates]
    assert earliest == sorted(earliest)


def test_stage_of_a_layout_depends_on_the_size_check():
    assert stage(Gate.LAYOUT, size_check=True) is Stage.STRUCT_SIZE
    assert stage(Gate.LAYOUT) is Stage.RELOCATIONS
    assert stage(Gate.VERMAGIC, size_check=True) is Stage.MODINFO  # one stage: the flag changes nothing
    assert stage(None) is Stage.NEVER
    assert Stage.STRUCT_SIZE < Stage.MODINFO < Stage.RELOCATIONS


def test_reports_list_checks_in_the_gate_enums_order(tmp_path):
    target = resolve(Selector(kernel_dir=make_tree(tmp_path / "tree")))
    path = tmp_path / "m.ko"
    path.write_bytes(build_module())
    report = verify_info(read_module(str(path)), Expectation(target=target, level=MatchLevel.VERSION, reference=None, not_compared="", loader=loader.gather(target)))
    names = [c.name for c in report.checks]
    assert names == sorted(names, key=list(Gate).index)
    assert len(names) == len(Gate) - 2  # every gate but READ, and COMPRESSION (a plain .ko)


def test_every_message_has_one_kind_and_every_kind_a_message():
    kinds = [m.kind for m in MESSAGES]
    assert all(isinstance(k, Kind) for k in kinds)
    assert set(kinds) == set(Kind)
    assert USER_SPACE <= set(Kind)


def test_file_verdict_words_are_the_json_words():
    assert [str(v) for v in FileSays] == ["confirmed", "contradicted", "not-checked", "no-file", "n/a"]


def _finding(kind, gate, effect):
    return LoadFinding(kind=kind, gate=gate, effect=effect, summary="", cause="", fix="", source="", lines=(1,), text="", names_module=True, context=(), symbol=None, file=FileSays.NO_FILE, file_says="")


def _layout_refused():
    return Check(name=Gate.LAYOUT, ok=False, expected="size 0x380", found="size 0x3c0", message="struct module layout differs (size 0x3c0, kernel "
                 "expects 0x380): rejected at load", fix="rebuild", effect=Effect.REJECTED)


def test_a_size_refusal_comes_before_vermagic_so_the_log_should_show_it():
    vermagic = [_finding(Kind.VERMAGIC, Gate.VERMAGIC, Effect.REJECTED)]
    (early,) = predicted_not_logged(vermagic, [_layout_refused()], size_check=True)
    assert "not reached" not in early.why  # 6.4+: the size check runs before check_modinfo()
    (late,) = predicted_not_logged(vermagic, [_layout_refused()], size_check=False)
    assert late.why == "not reached: the kernel stopped at an earlier gate"  # relocations come after modinfo


def test_a_logged_size_refusal_stops_before_the_symbols():
    size = [_finding(Kind.THIS_MODULE_SIZE, Gate.LAYOUT, Effect.REJECTED)]
    crc = Check(name=Gate.SYMBOL_VERSIONS, ok=False, expected="0x1", found="0x2", message="disagrees about version of symbol _printk", fix="",
                effect=Effect.REJECTED)
    (p,) = predicted_not_logged(size, [crc], size_check=True)
    assert p.why == "not reached: the kernel stopped at an earlier gate"


def _expect(tmp_path, release, kernel_size=0x380):
    target = resolve(Selector(kernel_dir=make_tree(tmp_path / release, release=release)))
    return Expectation(target=target, level=MatchLevel.VERSION, reference=ReferenceLayout(Layout(kernel_size, 0x138, 0x350), "test"), not_compared="")


def test_size_refused_only_on_6_4_and_later_and_only_for_the_size(tmp_path):
    path = tmp_path / "m.ko"
    path.write_bytes(build_module(this_module_size=0x3c0))
    info = read_module(str(path))
    assert size_refused(info, _expect(tmp_path, "6.4.0-1-amd64"))
    assert not size_refused(info, _expect(tmp_path, "6.1.0-56-amd64"))
    assert not size_refused(info, _expect(tmp_path, "6.5.0-1-amd64", kernel_size=0x3c0))
    assert not size_refused(None, _expect(tmp_path, "6.6.0-1-amd64"))
    assert not size_refused(info, None)


@pytest.mark.parametrize("later", [Gate.VERMAGIC, Gate.SYMBOLS, Gate.LICENSE, Gate.RELOCATIONS, Gate.NAME])
def test_the_forecast_names_the_gate_the_loader_meets_first(later):
    """report.deciding_gate() ranks by GATE_STAGES (it had a second order table without elf,
    compression, relocations and name, which ranked them last: an ELF refusal was blamed on vermagic)."""
    from kbuildguard.gates.verify import ModuleReport, Verdict
    from kbuildguard.report import deciding_gate

    def refused(gate):
        return Check(name=gate, ok=False, expected="x", found="y", message="m", fix="", effect=Effect.REJECTED)

    for first in (Gate.ELF, Gate.COMPRESSION, Gate.SIGNATURE):
        rep = ModuleReport(path="/m.ko", verdict=Verdict.MISMATCH, checks=(refused(later), refused(first)), info=None)
        assert deciding_gate(rep, False).name is first
