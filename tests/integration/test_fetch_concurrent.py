"""Two kbuildguard runs that update one private apt state at once (issue 20, the tester's case).

Both ask for bullseye's kernels with --refresh into one fresh cache, started together: apt-get
update takes an fcntl lock on the lists folder and fails at once (exit 100) for the second caller,
which is what collided. kbuildguard locks the state itself: the second run says it waits, then lists
the same kernels from the lists the first one fetched.
"""

import os
import shutil
import subprocess
import sys

from conftest import require
from integration.conftest import NEUTRAL_CWD


def test_two_runs_share_a_private_apt_state(tmp_path):
    require(shutil.which("apt-get") is not None, "apt-get (Debian)")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    argv = [sys.executable, "-m", "kbuildguard", "fetch", "--list", "--refresh", "--fetch-from", "debian:bullseye",
            "available:5.10.0-*-amd64"]
    runs = [subprocess.Popen(argv, cwd=NEUTRAL_CWD, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL) for _ in range(2)]
    results = [(p.wait(timeout=900), p.stdout.read().decode(), p.stderr.read().decode()) for p in runs]
    for code, out, err in results:
        assert code == 0 and "Traceback" not in err, (code, out, err)
        assert "5.10.0-32-amd64" in out.split(), out
    assert results[0][1] == results[1][1]
    said = [err for _, _, err in results if "waiting for another kbuildguard that holds" in err]
    assert len(said) == 1 and "apt state for bullseye" in said[0], results
