"""Checking many modules at once: a whole kernel (4000 .ko) is spread over forked workers, and
modules checked together may resolve each other's symbols (siblings)."""

import os
import sys
from typing import FrozenSet, List, Optional, Sequence, Tuple

from kbuildguard.formats.elf import Needed
from kbuildguard.formats.symvers import complete_exports
from kbuildguard.gates import answers as remembered
from kbuildguard.gates.model import Gate
from kbuildguard.gates.verify import Expectation, ModuleReport, verify_info, verify_path

# Below this many modules a worker pool costs more than it saves.
PARALLEL_THRESHOLD = 256


def _verify_chunk(job: Tuple[Sequence[str], Expectation]) -> List[ModuleReport]:
    paths, expect = job
    return [verify_path(p, expect) for p in paths]


def _lean(report: ModuleReport, keep_signature: bool) -> ModuleReport:
    """What a worker sends back for a module that passed its symbols gate: what the parent still
    reads (exports, for siblings; layout; the signature only when a certificate may verify it). The
    rest -- symbol columns, .modinfo with its aliases -- was half of 13 MB pickled for a kernel."""
    info = report.info
    if info is None or any(c.name is Gate.SYMBOLS and not c.ok for c in report.checks):
        return report
    return report._replace(info=info._replace(needed=Needed((), (), ()), version_names=(), version_crcs=(), comment=(),
                                              modinfo=(), signature=info.signature if keep_signature else None,
                                              shape=None, relocations=None))


# The Expectation the forked workers inherit. Sent with each task it was pickled once per chunk
# (the kernel's 25,000 exports each time), which made the pool slower than one process. Set only
# by _verify_all around the pool's life; a forked worker reads its copy.
_INHERITED: List[Expectation] = []


def _verify_chunk_lean(paths: Sequence[str]) -> List[ModuleReport]:
    expect = _INHERITED[0]
    trust = expect.loader.signing.trust if expect.loader is not None else None
    keep = trust is not None and bool(trust.certs or trust.known)
    return [_lean(r, keep) for r in _verify_chunk((paths, expect))]


def with_siblings(reports: List[ModuleReport], expect: Expectation,
                  remembered_exports: FrozenSet[str] = frozenset()) -> List[ModuleReport]:
    """Modules checked together may use each other's exports (modprobe loads the exporter first):
    check the symbols again of a module that needs what a sibling exports. remembered_exports: what
    the modules whose answers were remembered (info None) export."""
    exported = remembered_exports | frozenset(name for r in reports if r.info is not None for name in r.info.exports)
    if not exported:
        return reports
    out = []
    for rep in reports:
        if rep.info is not None and any(c.name is Gate.SYMBOLS and not c.ok for c in rep.checks):
            rep = verify_info(rep.info, expect, exported)
        out.append(rep)
    return out


def verify_paths(paths: Sequence[str], expect: Expectation, workers: Optional[int] = None,
                 answers: Optional[remembered.Answers] = None) -> List[ModuleReport]:
    """Verify many modules; a whole kernel's worth (4000 .ko) is spread over the CPUs. With
    ``answers`` (check's), a module unchanged since an earlier run against the same facts is not read
    again (gates/answers.py says when an answer is served and when it is not stored)."""
    if answers is None or answers.folder is None:
        return with_siblings(_verify_all(paths, expect, workers), expect)
    book = answers.open(expect)  # before completing the exports: a warm run needs none of them made
    if book.path is None:
        return with_siblings(_verify_all(paths, expect, workers), expect)
    started = remembered.now_ns()  # before the first stat: racy-git's rule counts from here
    before = [remembered.file_id(p) for p in paths]
    served = [book.get(p, ident) for p, ident in zip(paths, before)]
    missing = [i for i, rep in enumerate(served) if rep is None]
    fresh = _verify_all([paths[i] for i in missing], expect, workers)
    trust = expect.loader.signing.trust if expect.loader is not None else None
    confirmable = trust is not None and bool(trust.known)
    reports: List[Optional[ModuleReport]] = list(served)
    for i, rep in zip(missing, fresh):
        book.put(rep, before[i], remembered.file_id(paths[i]), started, confirmable)
        reports[i] = rep
    book.save()
    return with_siblings([r for r in reports if r is not None], expect, remembered.exports_of(book))


def _completed(expect: Expectation, paths: Sequence[str]) -> Expectation:
    """Module.symvers' exports made once, before a kernel-wide check (shared by forked workers)."""
    if len(paths) >= PARALLEL_THRESHOLD and expect.loader is not None:
        return expect._replace(loader=expect.loader._replace(exports=complete_exports(expect.loader.exports)))
    return expect


def _worker_signals() -> None:
    """A worker dies quietly on the SIGTERM of Pool.terminate() and leaves Ctrl-C to the parent (it
    inherited the parent's handlers, which unwind with a traceback in a worker)."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _verify_all(paths: Sequence[str], expect: Expectation, workers: Optional[int]) -> List[ModuleReport]:
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    expect = _completed(expect, paths)  # made once here, shared by forked workers
    if workers < 2 or len(paths) < PARALLEL_THRESHOLD:
        return _verify_chunk((paths, expect))
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    size = max(64, len(paths) // (workers * 4))
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    # ProcessPoolExecutor, not multiprocessing.Pool: a worker that dies (OOM killer, a signal while it
    # holds the task queue's lock) hangs Pool.map for ever, where the executor says BrokenProcessPool.
    # fork: the workers need nothing but these records (Python 3.14 defaults to forkserver); the
    # executor takes a context and an initializer from Python 3.7 (3.6 forks by default on Linux).
    own_btf = expect.loader.btf if expect.loader is not None else None
    if own_btf is not None and own_btf.validates and own_btf.vmlinux is not None:
        # the kernel's own BTF read once here (a vmlinuz: ~2 s), not once per forked worker; after
        # answers.open() made its digest (a read VmlinuxBtf has none)
        own_btf.vmlinux.load()
    _INHERITED[:] = [expect]
    try:
        if sys.version_info >= (3, 7):
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_worker_signals)
        else:  # pragma: no cover - Python 3.6
            pool = ProcessPoolExecutor(workers)
        with pool:
            results = list(pool.map(_verify_chunk_lean, chunks))
    except (OSError, BrokenProcessPool):  # no fork here (seccomp, limits), or a worker died: do it here
        return _verify_chunk((paths, expect))
    finally:
        _INHERITED[:] = []
    return [report for chunk in results for report in chunk]
