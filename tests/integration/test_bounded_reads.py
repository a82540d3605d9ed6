"""Reads that another process changes under kbuildguard (issue 18 case 11): a module truncated while
`check` reads it is one line and exit 3, never SIGBUS (exit 135, no report) as with a mapping."""

import os
import random
import shutil
import subprocess
import sys

from conftest import require
from integration.conftest import image_root, reaped, spawn

COPIES = 120
ROUNDS = 6
# Truncates every copy to a third of its size, one after another with a short pause, in random
# order: over `check`'s whole run some copy is always being cut while it is read.
TRUNCATOR = r"""
import os, random, sys, time
paths = sys.argv[1:]
random.shuffle(paths)
for p in paths:
    os.truncate(p, os.path.getsize(p) // 3)
    time.sleep(0.002)
"""


def test_check_survives_modules_truncated_while_it_reads_them(debian_release, tmp_path):
    source = os.path.join(image_root(debian_release), "lib/modules", debian_release, "kernel/net/netfilter/nf_tables.ko")
    require(os.path.isfile(source), "Debian's linux-image unpacked (%s)" % source)
    folder = tmp_path / "mods"
    outcomes = []
    for round_ in range(ROUNDS):
        if folder.exists():
            shutil.rmtree(str(folder))
        folder.mkdir()
        paths = [str(folder / ("m%03d.ko" % i)) for i in range(COPIES)]
        for p in paths:
            shutil.copyfile(source, p)
        with reaped(spawn(["check", "--kernel", debian_release, str(folder)], "/")) as check:
            truncator = subprocess.Popen([sys.executable, "-c", TRUNCATOR] + random.sample(paths, len(paths)),
                                         stdin=subprocess.DEVNULL)
            with reaped(truncator):
                out, err = check.communicate(timeout=300)
                truncator.wait(timeout=60)
        text = err.decode("utf-8", "replace")
        assert "Traceback" not in text, text[-3000:]
        assert check.returncode not in (-7, 128 + 7, 1), (round_, check.returncode, text[-3000:])  # SIGBUS is 7
        outcomes.append(check.returncode)
    assert set(outcomes) <= {0, 3, 8}, outcomes
