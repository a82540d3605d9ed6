"""check's remembered answers on a real kernel's modules (gates/answers.py): a warm run says what a
cold one says, and a module changed in place (same inode, same size, its mtime put back) is checked
afresh."""

import json
import os
import shutil
import time

from conftest import require
from integration.conftest import image_root, kbuildguard


def _args(release, *paths):
    root = image_root(release)
    return ["check", "--json", "--kernel", release, "--kernel-config", os.path.join(root, "boot", "config-" + release),
            "--vmlinux", os.path.join(root, "boot", "vmlinuz-" + release)] + list(paths)


def test_a_warm_check_says_what_a_cold_one_says(tmp_path, debian_release):
    folder = os.path.join(image_root(debian_release), "lib/modules", debian_release, "kernel/drivers/net")
    require(os.path.isdir(folder), "the unpacked linux-image-%s-unsigned" % debian_release)
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    books = tmp_path / "xdg" / "kbuildguard" / "answers-v1"
    cold = kbuildguard(*(_args(debian_release, folder) + ["--no-cache"]), env=env)
    assert not books.exists()
    first = kbuildguard(*_args(debian_release, folder), env=env)
    assert len(os.listdir(str(books))) == 1
    warm = kbuildguard(*_args(debian_release, folder), env=env)
    assert len(json.loads(warm.out)["modules"]) > 256  # the forked workers' path, not one process
    assert (cold.code, cold.out) == (first.code, first.out) == (warm.code, warm.out), warm


def test_a_module_changed_in_place_is_checked_afresh(tmp_path, debian_release):
    source = os.path.join(image_root(debian_release), "lib/modules", debian_release,
                          "kernel/drivers/net/ethernet/intel/e1000/e1000.ko")
    require(os.path.isfile(source), "the unpacked linux-image-%s-unsigned" % debian_release)
    module = str(tmp_path / "e1000.ko")
    shutil.copy2(source, module)
    time.sleep(2.5)  # older than the racy window (answers.RACY_NS): its answer may be stored
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    first = kbuildguard(*_args(debian_release, module), env=env)
    assert first.code == 0, first
    assert os.listdir(str(tmp_path / "xdg" / "kbuildguard" / "answers-v1"))
    st = os.stat(module)
    with open(module, "r+b") as f:  # same inode, same size: only ctime tells
        f.seek(0)
        f.write(b"\0" * 64)  # the ELF header gone
    os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = kbuildguard(*_args(debian_release, module), env=env)
    assert again.code != 0, again
    assert json.loads(again.out)["modules"][0]["verdict"] != "ok"
