"""How many workers a stage may use: one rule for every pool, bounded by ``--jobs``.

Downloads, repodata, shards, registry transfers, compression and byte-compilation each used to size their own pool;
they now ask here, so ``--jobs`` bounds them all and a small task list never starts idle threads.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor

#: ``--jobs`` when the user gives none: parallel I/O (downloads, registry blobs).
DEFAULT_JOBS = 8


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def workers(jobs: int, tasks: int, *, cpu_bound: bool = False) -> int:
    """Pool size for ``tasks`` pieces of work under a ``--jobs`` bound (at most the cores for CPU-bound work)."""
    n = max(1, min(jobs, tasks))
    return min(n, cpu_count()) if cpu_bound else n


def thread_pool(jobs: int, tasks: int, name: str, *, cpu_bound: bool = False) -> ThreadPoolExecutor:
    """A thread pool sized by :func:`workers`, its threads named for the stage (for py-spy and tracebacks)."""
    return ThreadPoolExecutor(max_workers=workers(jobs, tasks, cpu_bound=cpu_bound), thread_name_prefix=name)


@contextlib.contextmanager
def process_pool(jobs: int, tasks: int, name: str) -> Iterator[Executor]:
    """Worker processes for CPU-bound work that holds the GIL (tar parsing and file creation in Python: on 2 cores
    threads gave 1.0-1.3x, processes 1.7x), sized like a CPU-bound thread pool; one worker is a thread (no process).

    The workers are forked: no fork server or resource tracker outlives the build (the pool's queues are unnamed
    under fork). They ignore Ctrl-C, which the main process handles: it waits for the tasks they are running (a
    package being extracted is finished, never left half-written) and drops the ones not started. A worker whose
    build is gone (``kill -9``) exits within a fraction of a second: otherwise it would wait for work forever, since
    every worker holds the pool's queues open."""
    n = workers(jobs, tasks, cpu_bound=True)
    if n == 1:
        pool: Executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    else:
        # imported here: builds the layer memo answers never start a process (multiprocessing takes ~10 ms)
        import multiprocessing

        pool = concurrent.futures.ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("fork"),
                                                      initializer=_worker_start, initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


#: How often a worker process looks whether its build is still there.
ORPHAN_CHECK_SECONDS = 0.2


def _worker_start(build: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(build,), name="orphan-check", daemon=True).start()


def _exit_when_orphaned(build: int) -> None:
    while os.getppid() == build:
        time.sleep(ORPHAN_CHECK_SECONDS)
    os._exit(1)
