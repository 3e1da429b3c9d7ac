"""How many workers a stage may use: one rule for every pool, bounded by ``--jobs``.

Downloads, repodata, shards, registry transfers, compression and byte-compilation each used to size their own pool;
they now ask here, so ``--jobs`` bounds them all and a small task list never starts idle threads.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import heapq
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
        if n > 1:
            # a forking pool starts all its workers at its first submit: do it now, before the caller starts threads
            # (downloads, the LargestFirst dispatcher), so no worker is forked while another thread holds a lock
            pool.submit(os.getpid)
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


class LargestFirst:
    """Tasks that become ready over time (from other threads) run on ``pool`` with at most ``slots`` in flight, the
    largest waiting one first whenever a slot frees.

    A pool's own queue is first come, first served: packages are streamed as their downloads finish, and the biggest
    download finishes late, so it was streamed last and alone on one core (0.9 s of a 7 s cold build of the large
    environment of issue 16). Longest-first keeps both cores busy to the end. One dispatcher thread submits; the
    pool's completion callbacks only free a slot (a callback that submitted could deadlock some pools)."""

    def __init__(self, pool: Executor, slots: int):
        self._pool = pool
        self._slots = max(1, slots)
        self._cond = threading.Condition()
        self._waiting: list[tuple[int, int, Callable[[], Any], concurrent.futures.Future[Any]]] = []
        self._running = 0
        self._closed = False
        self._count = 0
        self._thread = threading.Thread(target=self._dispatch, name="largest-first", daemon=True)
        self._thread.start()

    def submit(self, size: int, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Queue ``fn(*args)`` (``size``: how much work it is); its future."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("submit after close")
            self._count += 1
            heapq.heappush(self._waiting, (-size, self._count, functools.partial(fn, *args), fut))
            self._cond.notify_all()
        return fut

    def close(self, *, cancel: bool = False) -> None:
        """No more tasks: the dispatcher leaves once every queued one is submitted (``cancel``: the queued ones are
        cancelled instead). Returns when the dispatcher is gone."""
        with self._cond:
            self._closed = True
            if cancel:
                for *_, fut in self._waiting:
                    fut.cancel()
                self._waiting.clear()
            self._cond.notify_all()
        self._thread.join()

    def _done(self, _fut: concurrent.futures.Future[Any]) -> None:
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                while not (self._waiting and self._running < self._slots) and not (self._closed and not self._waiting):
                    self._cond.wait()
                if not self._waiting:
                    return
                *_, task, fut = heapq.heappop(self._waiting)
                if not fut.set_running_or_notify_cancel():
                    continue
                self._running += 1
            try:
                inner = self._pool.submit(task)
            except BaseException as exc:  # a pool shut down or broken: the caller sees it on this task
                fut.set_exception(exc)
                self._done(fut)
                continue
            inner.add_done_callback(functools.partial(_chain, fut))
            inner.add_done_callback(self._done)


def _chain(outer: concurrent.futures.Future[Any], inner: concurrent.futures.Future[Any]) -> None:
    if inner.cancelled():
        outer.set_exception(concurrent.futures.CancelledError())
    elif (exc := inner.exception()) is not None:
        outer.set_exception(exc)
    else:
        outer.set_result(inner.result())


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
