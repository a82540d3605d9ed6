"""Issue 22: compilers are probed at once, within a bounded total time, and the one that hung is named."""

import threading
import time

import pytest

from conftest import GCC11_MACROS, GCC12_MACROS, FakeRunner, compiler_outputs, make_exe, make_tree
from kbuildguard.target.kernel import Selector, resolve
from kbuildguard.toolchain import MatchLevel, Verdict, identify_all, select


class SlowRunner(FakeRunner):
    """Each probe of a program in ``delays`` takes that long; records how many ran at once."""

    def __init__(self, outputs, delays):
        super().__init__(outputs)
        self.delays = delays
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()
        self.release = threading.Event()  # set: every probe still "hung" returns at once

    def probe(self, argv, cwd=None, env=None, ok_returncodes=(0,), timeout=None, remember=False):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.release.wait(self.delays.get(argv[0], 0))
            return super().probe(argv, cwd, env, ok_returncodes, timeout, remember)
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def slow():
    """SlowRunner's maker; the probes still hung when the test ends are released then, so that no
    thread outlives its test (a later test's fork warns of threads on 3.12+)."""
    made = []

    def make(outputs, delays):
        made.append(SlowRunner(outputs, delays))
        return made[-1]

    yield make
    for runner in made:
        runner.release.set()


def _compilers(tmp_path, names):
    outputs = {}
    paths = []
    for name in names:
        path = make_exe(tmp_path / "bin" / name)
        outputs.update(compiler_outputs(path, GCC12_MACROS if "12" in name else GCC11_MACROS,
                                        "%s (Debian 12.2.0-14+deb12u1) 12.2.0" % name if "12" in name
                                        else "%s (Debian 11.3.0-12) 11.3.0" % name))
        paths.append(path)
    return outputs, paths


def test_candidates_are_probed_at_once(tmp_path, slow):
    outputs, paths = _compilers(tmp_path, ["gcc-9", "gcc-10", "gcc-11", "gcc-12"])
    runner = slow(outputs, {p: 0.2 for p in paths})
    started = time.monotonic()
    found = identify_all(runner, paths, {})
    took = time.monotonic() - started
    assert all(c is not None for c, _ in found.values())
    assert runner.most == 4 and took < 4 * 2 * 0.2 / 2, took  # one after another would take 1.6 s


def test_a_hung_wrapper_is_named_and_not_waited_for(tmp_path, slow):
    outputs, paths = _compilers(tmp_path, ["gcc-11", "gcc-12"])
    hung = paths[0]
    runner = slow(outputs, {hung: 3})
    started = time.monotonic()
    found = identify_all(runner, paths, {}, total=0.25)
    assert time.monotonic() - started < 2
    assert found[hung][0] is None and "%s did not answer within 0.25 s (a wrapper that hangs?)" % hung in found[hung][1]
    assert found[paths[1]][0] is not None


def test_detect_selection_lists_the_hung_one_and_still_selects(tmp_path, slow, monkeypatch):
    from kbuildguard import toolchain

    outputs, paths = _compilers(tmp_path, ["gcc-11", "gcc-12"])
    monkeypatch.setattr(toolchain, "PROBE_TOTAL_SECONDS", 0.25)
    monkeypatch.setattr(toolchain.identify_all, "__defaults__", (None, 0.25))
    runner = slow(outputs, {paths[0]: 3})
    target = resolve(Selector(kernel_dir=make_tree(tmp_path / "tree")))
    sel = select(runner, target, MatchLevel.VERSION, {"PATH": str(tmp_path / "bin")})
    assert sel.selected is not None and sel.selected.path == paths[1]
    verdicts = {c.path: c for c in sel.candidates}
    assert verdicts[paths[0]].verdict is Verdict.ERROR and "did not answer" in verdicts[paths[0]].reason


def test_make_probes_the_trees_own_compiler_with_the_rest_in_one_bound(tmp_path, slow, monkeypatch):
    """issue 22 (tester): make probed the tree's gcc-12 alone first (a hung one cost 30 s, twice) and
    then the rest; now all at once within one bound, and the hung one is named."""
    from kbuildguard import toolchain

    outputs, paths = _compilers(tmp_path, ["gcc-12", "gcc-11"])
    monkeypatch.setattr(toolchain.identify_all, "__defaults__", (None, 0.25))
    runner = slow(outputs, {paths[0]: 1.5})
    target = resolve(Selector(kernel_dir=make_tree(tmp_path / "tree")))
    started = time.monotonic()
    sel = select(runner, target, MatchLevel.VERSION, {"PATH": str(tmp_path / "bin")}, first_match=True)
    assert time.monotonic() - started < 1.4, "probed one after another"
    assert runner.most == 2
    assert toolchain.unanswered(sel) == ["%s did not answer within 0.25 s (a wrapper that hangs?): not waited for any "
                                         "longer" % paths[0]]
