#!/usr/bin/env python3
"""kbuildguard's benchmarks: ratios measured side by side in one run, never timed tests.

    python3 bench/run.py [--rounds N]        (after scripts/test, which makes .venvs/ and fetches the kernel image)

1. wrapper overhead: `kbuildguard make` vs bare `make -C TREE M=DIR CC=gcc-12 modules` on examples/kdemo,
   each after a clean, alternating (goal <= 1.10x)
2. `kbuildguard check` with every gate over every in-tree module of Debian's kernel vs
   `depmod -b ROOT -e -E Module.symvers RELEASE` (issue 20: the same symbol and CRC work, goal <= 1.00x), plain
   `depmod -b` and a `modinfo` loop; cold (`--no-cache`: every module read) and warm (the answers remembered
   by a first run, in a throwaway cache folder)
3. start-up: `kbuildguard --version` and `kbuildguard detect` on Python 3.6 and 3.13 (goal: detect < 0.3 s)

Prints one line per measurement and the ratios; docs/performance.md records a run.
"""

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(argv, cwd=REPO, env=None, quiet=True):
    """Wall time of one run. cwd=REPO: `python -m kbuildguard` then runs this checkout's code."""
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.DEVNULL if quiet else None)
    return time.perf_counter() - start


def median_of(rounds, argv, env=None):
    return statistics.median(timed(argv, env=env) for _ in range(rounds))


def venv_python(minor):
    path = os.path.join(REPO, ".venvs", "py" + minor, "bin", "python")
    if not os.path.exists(path):
        sys.exit("no %s: run scripts/test first (it builds the venvs)" % path)
    return path


def debian_release():
    found = sorted(d[len("linux-headers-"):] for d in os.listdir("/usr/src")
                   if d.startswith("linux-headers-") and d.endswith("-amd64") and "cloud" not in d and "-rt-" not in d)
    if not found:
        sys.exit("no Debian linux-headers-*-amd64: run scripts/test first")
    return found[-1]


def bench_wrapper(rounds, release, py):
    work = tempfile.mkdtemp()
    try:
        for name in ("kdemo.c", "kbuildguard.toml"):
            shutil.copy(os.path.join(REPO, "examples", "kdemo", name), work)
        tree = "/lib/modules/%s/build" % release
        kbg = [py, "-m", "kbuildguard", "make", "-C", work, "--kernel", release, "-q"]
        subprocess.run(kbg, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # generates Kbuild
        clean = ["make", "-C", tree, "M=" + work, "clean"]
        # kbuildguard builds in its own staging folder: its clean is the one that empties that
        kbg_clean = kbg[:-1] + ["clean", "-q"]
        bare = ["make", "-C", tree, "M=" + work, "CC=gcc-12", "modules"]
        bare_t, kbg_t = [], []
        for _ in range(rounds):
            timed(clean)
            bare_t.append(timed(bare))
            timed(kbg_clean)
            kbg_t.append(timed(kbg))
        b, k = statistics.median(bare_t), statistics.median(kbg_t)
        print("wrapper   bare make %.3f s   kbuildguard make %.3f s   ratio %.2fx   (goal <= 1.10x)" % (b, k, k / b))
        return k / b
    finally:
        shutil.rmtree(work)


def bench_check(rounds, release, py):
    image = "/var/cache/kbuildguard-ci/image-%s" % release
    kernel_dir = os.path.join(image, "lib/modules", release, "kernel")
    if not os.path.isdir(kernel_dir):
        sys.exit("no %s: run scripts/test first (it unpacks linux-image-%s-unsigned)" % (kernel_dir, release))
    modules = glob.glob(os.path.join(kernel_dir, "**", "*.ko*"), recursive=True)
    # every gate: the headers' Module.symvers (symbol versions, symbols, licence), the image's
    # config (vermagic, signatures, BTF) and its vmlinuz (struct module layout)
    full = [py, "-m", "kbuildguard", "check", "--kernel", release,
            "--kernel-config", os.path.join(image, "boot", "config-" + release),
            "--vmlinux", os.path.join(image, "boot", "vmlinuz-" + release), kernel_dir]
    symvers = "/usr/src/linux-headers-%s/Module.symvers" % release
    depmod = ["depmod", "-b", image, release]
    depmod_e = ["depmod", "-b", image, "-e", "-E", symvers, release]
    cache = tempfile.mkdtemp()
    warm_env = dict(os.environ, XDG_CACHE_HOME=cache)
    try:
        timed(full + ["-q"], env=warm_env)  # the first run remembers the answers
        # interleaved, so that the machine's load moves every leg alike
        legs = {"cold": full + ["-q", "--no-cache"], "cold_json": full + ["--json", "--no-cache"],
                "warm": full + ["-q"], "warm_json": full + ["--json"], "depmod_e": depmod_e, "depmod": depmod}
        times = {name: [] for name in legs}
        for _ in range(rounds):
            for name, argv in legs.items():
                # one cache folder for every leg: --no-cache turns off the answers only (the image's
                # layout stays remembered, as in every user's second run)
                times[name].append(timed(argv, env=warm_env))
    finally:
        shutil.rmtree(cache)
    m = {name: statistics.median(t) for name, t in times.items()}
    start = time.perf_counter()
    for mod in modules:
        subprocess.run(["modinfo", "-F", "vermagic", mod], stdout=subprocess.DEVNULL, check=True)
    loop = time.perf_counter() - start
    print("check     %d modules, every gate: cold -q %.3f s   cold --json %.3f s   warm -q %.3f s   warm --json %.3f s"
          % (len(modules), m["cold"], m["cold_json"], m["warm"], m["warm_json"]))
    print("          depmod -b -e -E %.3f s   depmod -b %.3f s   modinfo loop %.3f s"
          % (m["depmod_e"], m["depmod"], loop))
    d = m["depmod_e"]
    print("          vs depmod -e -E (goal <= 1.00x): cold -q %.2fx   cold --json %.2fx   warm -q %.2fx   warm --json %.2fx"
          % (m["cold"] / d, m["cold_json"] / d, m["warm"] / d, m["warm_json"] / d))
    print("          cold -q/depmod -b %.2fx   cold -q/modinfo-loop %.3fx" % (m["cold"] / m["depmod"], m["cold"] / loop))
    return m["warm"] / d


def bench_startup(rounds, release):
    results = {}
    for minor in ("3.6", "3.13"):
        py = venv_python(minor)
        v = median_of(rounds, [py, "-m", "kbuildguard", "--version"])
        det = median_of(rounds, [py, "-m", "kbuildguard", "detect", "--kernel", release])
        bare = median_of(rounds, [py, "-c", "pass"])
        print("startup   Python %-4s  python -c pass %.3f s   --version %.3f s   detect %.3f s   (goal: detect < 0.3 s)"
              % (minor, bare, v, det))
        results[minor] = det
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--python", metavar="PATH", help="the interpreter of the wrapper and check legs "
                        "(default .venvs/py3.13's)")
    parser.add_argument("--only", choices=["wrapper", "check", "startup"], help="run one of the three benches")
    args = parser.parse_args()
    release = debian_release()
    py = args.python or venv_python("3.13")
    # As installed: pip compiles a wheel's modules at install time, so a user's run reads bytecode.
    # With PYTHONDONTWRITEBYTECODE set (as in some CI shells) every run compiled ~80 modules from
    # source, 0.25 s -- most of the wrapper's measured overhead -- which no installed copy pays.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    for interpreter in {py, venv_python("3.6"), venv_python("3.13")}:
        subprocess.run([interpreter, "-m", "compileall", "-q", os.path.join(REPO, "kbuildguard")], check=True,
                       stdout=subprocess.DEVNULL)
    print("kernel %s, %d rounds each, medians; %s" % (release, args.rounds, time.strftime("%Y-%m-%d")))
    if args.only in (None, "wrapper"):
        bench_wrapper(args.rounds, release, py)
    if args.only in (None, "check"):
        bench_check(args.rounds, release, py)
    if args.only in (None, "startup"):
        bench_startup(args.rounds, release)


if __name__ == "__main__":
    main()
