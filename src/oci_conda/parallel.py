"""How many workers a stage may use: one rule for every pool, bounded by ``--jobs``.

Downloads, repodata, shards, registry transfers, compression and byte-compilation each used to size their own pool;
they now ask here, so ``--jobs`` bounds them all and a small task list never starts idle threads.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

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


def run_forked(tasks: Sequence[Callable[[], Any]]) -> list[Any]:
    """Each task run in a forked child, its pickled result read back through a pipe; None for a task that failed.
    For one-shot work on memory the parent already holds (a mapped document: the children see it copy-on-write, no
    pickling of the input); a pool (:func:`process_pool`) is for streams of tasks.
    Children ignore Ctrl-C (the parent has it), keep no other descriptor (the mapped document needs none) and leave
    by ``os._exit`` (no handler or buffer of the parent runs)."""
    kids: list[tuple[int, int]] = []  # (pid, read end or -1 once closed)
    try:
        for task in tasks:
            r, w = os.pipe()
            try:
                pid = os.fork()
            except OSError:
                os.close(r)
                os.close(w)
                raise
            if pid == 0:  # pragma: no cover - the child
                code = 1
                try:
                    _close_all_but(w)
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                    data = pickle.dumps(task(), protocol=pickle.HIGHEST_PROTOCOL)
                    with open(w, "wb") as f:
                        f.write(data)
                    code = 0
                finally:
                    os._exit(code)
            os.close(w)
            kids.append((pid, r))
        out: list[Any] = []
        while kids:
            pid, r = kids[0]
            kids[0] = (pid, -1)
            with open(r, "rb") as f:
                data = f.read()
            kids.pop(0)
            _, status = os.waitpid(pid, 0)
            try:
                out.append(pickle.loads(data) if status == 0 and data else None)
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError):
                out.append(None)
        return out
    except OSError:
        return [None] * len(tasks)  # no fork (no memory, no process left): the caller takes the one pass
    finally:
        for pid, r in kids:  # interrupted: the children still running are ended
            if r >= 0:
                with contextlib.suppress(OSError):
                    os.close(r)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)


def _close_all_but(keep: int) -> None:
    """In a forked worker: close every descriptor but stdio and ``keep`` (a pipe of another worker, forked by
    another thread, held open here would keep that one's reader waiting for this one)."""
    try:
        fds: Iterable[int] = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        fds = range(3, min(os.sysconf("SC_OPEN_MAX"), 1 << 16))
    for fd in fds:
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):
                os.close(fd)
