"""The one builder of an :class:`~kbuildguard.gates.verify.Expectation`: what every module of a run is held to.

make (build.pipeline), check (commands.check) and explain (explain.unload) hold modules to the same
kernel in the same way: the kernel's struct module layout from the best reference at hand, the
likely cause attached from the drift computed before building, the loader's facts gathered by the
caller. Built here only, so a new field cannot be forgotten by one of them (a code rule:
tests/test_code_rules.py, test_one_expectation_builder).
"""

from typing import Optional

from kbuildguard.gates.loader import LoaderFacts
from kbuildguard.gates.reference import find_reference, with_cause
from kbuildguard.gates.verify import Expectation
from kbuildguard.target.drift import Drift
from kbuildguard.target.kernel import KernelTarget
from kbuildguard.toolchain import MatchLevel


def expect(target: KernelTarget, level: MatchLevel, facts: Optional[LoaderFacts], vmlinux: Optional[str] = None,
           cache_dir: Optional[str] = None, drift: Optional[Drift] = None, sign_later: bool = False) -> Expectation:
    """``vmlinux``: the image, BTF or vmlinux that gives the reference layout (reference.find_reference's
    order otherwise); ``cache_dir``: where a layout read from an image is remembered; ``drift``: the tree
    against the kernel, for the layout gate's likely cause; ``sign_later``: make without --sign, where
    an unsigned module is not refused (signing is packaging's step)."""
    reference, why_not = find_reference(target, vmlinux, cache_dir=cache_dir)
    if reference is None:
        return Expectation(target=target, level=level, reference=None, not_compared=why_not, loader=facts,
                           sign_later=sign_later)
    return Expectation(target=target, level=level, reference=with_cause(reference, drift), not_compared="",
                       loader=facts, sign_later=sign_later)
