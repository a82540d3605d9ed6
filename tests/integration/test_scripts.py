"""scripts/demo and scripts/test as a new user meets them (issue 22).

- On a stock Debian 12 (no pyenv, no python3.13 on PATH) the demo runs with the system's python3.
- scripts/test names the Pythons it needs and how to get them before it installs anything.
Both run in a copy of the checkout (the demo builds examples/kdemo in place) with `env -i`.
"""

import os
import shutil
import subprocess

from conftest import require

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# build/ and dist/ only at the top (kbuildguard/build/ is a package)
TOP_IGNORE = {".git", ".venvs", "build", "dist"}
ANY_IGNORE = shutil.ignore_patterns("*.egg-info", "__pycache__", ".hypothesis",
                                     ".mypy_cache", ".ruff_cache", ".kbuildguard", "*.o", "*.ko", "*.mod", "*.mod.c",
                                     "*.cmd", "modules.order", "Module.symvers")


def copy_ignore(folder, names):
    skip = set(ANY_IGNORE(folder, names))
    if os.path.abspath(folder) == REPO:
        skip |= TOP_IGNORE & set(names)
    return skip


def checkout_copy(tmp_path):
    dest = str(tmp_path / "checkout")
    shutil.copytree(REPO, dest, ignore=copy_ignore)
    return dest


def run_script(checkout, name, home, timeout):
    env = {"PATH": SYSTEM_PATH, "HOME": str(home), "KBG_DEV_STATE": os.path.join(str(home), "state")}
    proc = subprocess.run(["bash", os.path.join(checkout, "scripts", name)], cwd=checkout, env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


def test_demo_runs_with_the_system_python3(tmp_path):
    require(os.path.exists("/usr/bin/python3"), "Debian's /usr/bin/python3")
    require(bool([d for d in os.listdir("/usr/src") if d.startswith("linux-headers-") and d.endswith("-amd64")]),
            "Debian's linux-headers-amd64")
    home = tmp_path / "h"
    home.mkdir()
    checkout = checkout_copy(tmp_path)
    code, out = run_script(checkout, "demo", home, timeout=900)
    assert code == 0, out[-4000:]
    assert "Python: /usr/bin/python3" in out, out[-4000:]
    assert os.path.isfile(os.path.join(checkout, "examples", "kdemo", "kdemo.ko")), out[-4000:]
    assert "built and verified" in out


def test_scripts_test_names_the_pythons_it_needs_first(tmp_path):
    home = tmp_path / "h"
    home.mkdir()
    checkout = checkout_copy(tmp_path)
    # with pyenv off PATH and an empty HOME, neither 3.6 nor 3.13 is found
    code, out = run_script(checkout, "test", home, timeout=120)
    assert code == 1, out[-4000:]
    assert "needs Python 3.6 3.13" in out, out
    assert "pyenv install 3.6.15" in out and "pyenv install 3.13" in out, out
    # said before anything is installed or fetched
    assert "==" not in out and "apt-get" not in out.replace("apt-get install build-essential", ""), out
