"""parallel.LargestFirst: tasks that arrive over time run largest first, never more than the slots at once."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from oci_conda.parallel import LargestFirst, process_pool


def _square(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


def _fail(msg: str) -> None:
    raise ValueError(msg)


def test_waiting_tasks_start_largest_first() -> None:
    gate = threading.Event()
    started = threading.Event()
    order: list[int] = []

    def hold() -> bool:
        started.set()
        return gate.wait(10)

    with ThreadPoolExecutor(max_workers=4) as pool:
        queue = LargestFirst(pool, 1)
        busy = queue.submit(1, hold)
        assert started.wait(5)
        futures = [queue.submit(size, order.append, size) for size in (5, 50, 10, 7, 50)]
        time.sleep(0.05)
        assert order == []  # the one slot is taken
        gate.set()
        queue.close()
        concurrent.futures.wait([busy, *futures])
    assert order == [50, 50, 10, 7, 5]
    assert busy.result() is True


def test_slots_bound_what_runs_at_once() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def task() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1

    with ThreadPoolExecutor(max_workers=8) as pool:
        queue = LargestFirst(pool, 2)
        futures = [queue.submit(i, task) for i in range(20)]
        queue.close()
        concurrent.futures.wait(futures)
    assert most == 2
    assert all(f.exception() is None for f in futures)


def test_errors_reach_the_caller_and_close_cancels_what_waits() -> None:
    gate = threading.Event()
    with ThreadPoolExecutor(max_workers=2) as pool:
        queue = LargestFirst(pool, 1)
        failing = queue.submit(100, _fail, "bad package")
        with pytest.raises(ValueError, match="bad package"):
            failing.result(timeout=5)
        started = threading.Event()

        def hold() -> bool:
            started.set()
            return gate.wait(10)

        busy = queue.submit(1, hold)
        assert started.wait(5)
        waiting = [queue.submit(9, _square, 3), queue.submit(8, _square, 4)]
        queue.close(cancel=True)  # returns at once: the running task is not waited for
        assert all(f.cancelled() for f in waiting)
        with pytest.raises(RuntimeError):
            queue.submit(1, _square, 1)
        gate.set()
        assert busy.result(timeout=5) is True


def test_runs_on_worker_processes() -> None:
    with process_pool(2, 4, "test") as pool:
        queue = LargestFirst(pool, 2)
        futures = [queue.submit(n, _square, n) for n in range(4)]
        queue.close()
        results = [f.result(timeout=30) for f in futures]
    assert [r[0] for r in results] == [0, 1, 4, 9]
    assert all(pid != os.getpid() for _, pid in results)


def test_workers_are_forked_when_the_pool_opens() -> None:
    """Before any task and before the caller starts a thread: a fork while another thread holds a lock (a download
    thread's) could leave that lock held forever in the worker."""
    before = {p.pid for p in multiprocessing.active_children()}
    with process_pool(2, 4, "test"):
        assert len({p.pid for p in multiprocessing.active_children()} - before) == 2
