"""Helper processes for work that holds the GIL (libigl's winding numbers, marching cubes and
mesh writing), so that the caller's other threads (the studio's window) keep running.

``run_apart(fn, jobs)`` maps a picklable top-level function over jobs in a pool of two processes,
started on first use and reused (``forkserver`` where there is one: children start clean, without
the caller's threads). Where processes cannot start (a sandbox), the same work runs in-process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from engine.progress import Progress, ProgressGen

log = logging.getLogger(__name__)

_POOL: ProcessPoolExecutor | None = None


def make_pool(workers: int, preload: Sequence[str] = ()) -> ProcessPoolExecutor:
    """A process pool that starts clean children (``forkserver`` where there is one, with
    ``preload`` imported once in the server, else ``spawn``)."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver" and preload:
        context.set_forkserver_preload(list(preload))
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def _pool() -> ProcessPoolExecutor:
    global _POOL
    if _POOL is None:  # children start with the engine's heavy modules imported
        _POOL = make_pool(max(1, min(2, os.cpu_count() or 1)), ["engine.fit.meshes", "engine.decode", "engine.export"])
    return _POOL


def run_apart(fn: Callable, jobs: Sequence, stage: str = "work") -> ProgressGen[list]:
    """``[fn(job) for job in jobs]`` in helper processes, in order; one event per finished job.
    Closing the generator drops the jobs that have not started."""
    global _POOL
    if not jobs:
        return []
    try:
        futures = [_pool().submit(fn, job) for job in jobs]
    except (OSError, RuntimeError) as e:  # no processes here: the same work in-process
        log.warning("running %s in-process (%s)", stage, str(e).strip().splitlines()[0])
        out = []
        for i, job in enumerate(jobs):
            out.append(fn(job))
            yield Progress(stage, i + 1, len(jobs))
        return out
    out = []
    try:
        for i, f in enumerate(futures):
            out.append(f.result())
            yield Progress(stage, i + 1, len(jobs))
    except BrokenProcessPool:
        _POOL = None  # a child died (out of memory?): start afresh next time
        raise
    finally:
        for f in futures:
            f.cancel()
    return out
