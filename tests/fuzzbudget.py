"""How many examples each property test draws, in one place.

A plain ``pytest`` is the quick unit gate a developer runs after each change: it must stay well under
30 s on Python 3.6 (issue 21), so it draws a quarter of the full budget. ``scripts/test`` (and so
CI) sets ``KBG_FUZZ_SCALE=1`` and draws every example; ``bench/fuzz.py`` runs long. The properties
and their strategies are the same at every scale: a smaller budget explores less, never skips a test.
"""

import os


def scale() -> float:
    try:
        value = float(os.environ.get("KBG_FUZZ_SCALE", "0.25"))
    except ValueError:
        return 0.25
    return value if value > 0 else 0.25


def examples(full: int) -> int:
    """The number of examples for a property whose full budget is ``full`` (at least 10)."""
    return max(10, int(full * scale()))


def stride() -> int:
    """For an exhaustive sweep: look at every stride()-th case (every case under scripts/test, every
    4th in a plain pytest; CI covers what a quick run skips)."""
    return max(1, int(round(1 / scale())))
