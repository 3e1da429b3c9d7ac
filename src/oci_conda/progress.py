"""Progress and phase timings for long work, on stderr (stdout carries only the result).

Modes (chosen by :func:`choose_mode`):

* ``tty``: a ``rich`` live display per phase: each task shows items n/m, bytes done/total, rate, ETA; the final state
  stays on screen when the phase ends.
* ``plain`` (not a terminal, ``CI`` set, ``TERM=dumb``): a line when a phase starts and one per task when it ends
  (counts, bytes, time, rate); nothing in between, so logs stay short.
* ``quiet``: nothing but warnings.
* ``json``: JSON lines on stderr (``phase``, ``progress`` at most twice a second per task, ``task_end``,
  ``phase_end``); the caller prints the result object on stdout.

Counters are honest: a download reports each file's *running total*; :meth:`Task.file` turns it into increments
(never counting a byte twice, never going backwards), and a task's totals are the real sizes.

``rich`` (~40 ms to import) is loaded only for the ``tty`` mode.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Literal, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn, TaskID

Mode = Literal["tty", "plain", "quiet", "json"]


def choose_mode(quiet: bool, as_json: bool, stream: TextIO = sys.stderr) -> Mode:
    if as_json:
        return "json"
    if quiet:
        return "quiet"
    ci = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
    if stream.isatty() and os.environ.get("TERM") != "dumb" and not ci:
        return "tty"
    return "plain"


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def plural(n: int, word: str) -> str:
    """``1 package``, ``2 packages``: counts in phase details and summaries, spelled one way everywhere."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@functools.cache
def _counts_column() -> type[ProgressColumn]:
    """The rich column class below, defined on first use (its base class is rich's)."""
    from rich.progress import ProgressColumn
    from rich.progress import Task as RichTask
    from rich.text import Text

    class Counts(ProgressColumn):
        """``12/25 packages  3.4/10.2 MiB  1.2 MiB/s  ETA 0:00:05``: what the task counts, both units when it has
        both."""

        def render(self, task: RichTask) -> Text:
            f = task.fields
            parts = []
            if f.get("items_total"):
                parts.append(f"{f['items']}/{f['items_total']} {f['noun']}")
            if f.get("bytes_total"):
                parts.append(f"{human_size(task.completed)}/{human_size(task.total or 0)}")
            speed = task.finished_speed or task.speed
            if speed:
                parts.append(f"{human_size(speed)}/s" if f.get("bytes_total") else f"{speed:.1f} {f['noun']}/s")
            if not task.finished:
                parts.append(f"ETA {_duration(task.time_remaining)}")
            return Text("  ".join(parts))

    return Counts


def _console(stream: TextIO) -> Console:
    from rich.console import Console

    return Console(file=stream, force_terminal=True, highlight=False)


def _live_progress(console: Console | None) -> Progress:
    """A rich live display: description, bar, counts, elapsed time."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("    {task.description:<10}"), BarColumn(bar_width=30), _counts_column()(),
                    TimeElapsedColumn(), console=console, refresh_per_second=8)


class Task:
    """One counter of a phase: ``items`` done of ``items_total`` and, when sizes are known, bytes.

    Thread-safe: downloads report from worker threads.
    """

    def __init__(self, reporter: Reporter, label: str, items_total: int, noun: str,
                 sizes: Mapping[str, int | None] | None, bytes_total: int | None = None):
        self.reporter = reporter
        self.label = label
        self.noun = noun
        self.items_total = items_total
        self.items = 0
        self._expected: dict[str, int | None] = dict(sizes or {})
        self.bytes_total = bytes_total if bytes_total is not None else sum(v or 0 for v in self._expected.values())
        self.bytes = 0
        self._seen: dict[str, int] = {}
        self._finished_keys: set[str] = set()
        self._lock = threading.Lock()
        self.t0 = time.monotonic()
        self.t_end: float | None = None
        self._last_emit = 0.0
        self._rich_id: TaskID | None = None

    def file(self, key: str, done: int, total: int | None = None) -> None:
        """``done`` bytes of ``key`` so far (a running total): add the new bytes; the item is done at its size."""
        with self._lock:
            if total and not self._expected.get(key):
                self._expected[key] = total
                self.bytes_total += total
            new = done - self._seen.get(key, 0)
            if new > 0:
                self._seen[key] = done
                self.bytes += new
            size = self._expected.get(key)
            finished = size is not None and done >= size and key not in self._finished_keys
            if finished:
                self._finished_keys.add(key)
                self.items += 1
        self.reporter._update(self)

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        """``items`` more done (and ``nbytes`` more bytes)."""
        with self._lock:
            self.items += items
            self.bytes += nbytes
        self.reporter._update(self)

    def finish(self) -> None:
        """The work returned successfully: every item is done (a file without a known size was not counted yet)."""
        with self._lock:
            if self.t_end is not None:
                return
            self.items = max(self.items, self.items_total)
            self.bytes_total = max(self.bytes_total, self.bytes)
            self.t_end = time.monotonic()
        self.reporter._end(self)

    def to_json(self) -> dict[str, object]:
        elapsed = (self.t_end or time.monotonic()) - self.t0
        return {"task": self.label, "items": self.items, "items_total": self.items_total, "bytes": self.bytes,
                "bytes_total": self.bytes_total, "seconds": round(elapsed, 3)}

    def summary(self) -> str:
        elapsed = (self.t_end or time.monotonic()) - self.t0
        parts = [f"{self.items}/{self.items_total} {self.noun}"]
        if self.bytes_total:
            rate = f" ({human_size(self.bytes / elapsed)}/s)" if elapsed > 0 else ""
            parts.append(f"{human_size(self.bytes)}{rate}")
        return f"{self.label}: {', '.join(parts)} in {elapsed:.2f}s"


class Reporter:
    """Phases, tasks, info lines and warnings, rendered for the chosen :data:`Mode`."""

    def __init__(self, mode: Mode = "plain", stream: TextIO = sys.stderr):
        self.mode = mode
        self.stream = stream
        self.timings: dict[str, float] = {}
        self.warnings: list[str] = []
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._tasks: list[Task] = []
        self._current: Task | None = None  # for start()/advance()
        self._console = _console(stream) if mode == "tty" else None

    def _write(self, text: str) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.console.print(text, end="", markup=False, highlight=False)
            else:
                self.stream.write(text)
                self.stream.flush()

    def _event(self, doc: dict[str, object]) -> None:
        self._write(json.dumps(doc, sort_keys=True) + "\n")

    @contextlib.contextmanager
    def phase(self, name: str, detail: str = "") -> Iterator[None]:
        """Time a phase (``solve``, ``fetch``...): the summary shows these figures; tasks live inside one."""
        if self.mode in ("tty", "plain"):
            self._write(f"==> {name}{': ' + detail if detail else ''}\n")
        elif self.mode == "json":
            self._event({"event": "phase", "phase": name, "detail": detail})
        t0 = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            for task in list(self._tasks):
                if ok:
                    task.finish()
            self._tasks.clear()
            self._current = None
            if self._progress is not None:
                progress, self._progress = self._progress, None
                progress.stop()
            dt = time.perf_counter() - t0
            self.timings[name] = self.timings.get(name, 0.0) + dt
            if self.mode == "json":
                self._event({"event": "phase_end", "phase": name, "seconds": round(dt, 3), "ok": ok})

    def task(self, label: str, items: int, noun: str = "items", sizes: Mapping[str, int | None] | None = None,
             bytes_total: int | None = None) -> Task:
        """A counter shown until the phase ends: ``items`` things (``noun``) and, with ``sizes`` (key -> bytes) or
        ``bytes_total``, bytes."""
        task = Task(self, label, items, noun, sizes, bytes_total)
        with self._lock:
            self._tasks.append(task)
            self._current = task
        if self.mode == "tty":
            if self._progress is None:
                self._progress = _live_progress(self._console)
                self._progress.start()
            total = task.bytes_total or task.items_total
            task._rich_id = self._progress.add_task(label, total=max(total, 1), items=0,
                                                    items_total=task.items_total, noun=noun,
                                                    bytes_total=task.bytes_total)
        elif self.mode == "json":
            self._event({"event": "task", **task.to_json()})
        return task

    def _update(self, task: Task) -> None:
        if self.mode == "tty" and self._progress is not None and task._rich_id is not None:
            self._progress.update(task._rich_id, completed=task.bytes if task.bytes_total else task.items,
                                  total=max(task.bytes_total or task.items_total, 1), items=task.items,
                                  bytes_total=task.bytes_total)
        elif self.mode == "json":
            now = time.monotonic()
            if now - task._last_emit >= 0.5:
                task._last_emit = now
                self._event({"event": "progress", **task.to_json()})

    def _end(self, task: Task) -> None:
        if self.mode == "tty":
            self._update(task)
        elif self.mode == "plain":
            self._write(f"    {task.summary()}\n")
        elif self.mode == "json":
            self._event({"event": "task_end", **task.to_json()})

    def start(self, total: int, label: str = "") -> None:
        """A counter of ``total`` units (older interface: prefer :meth:`task`)."""
        self.task(label or "progress", total)

    def advance(self, n: int = 1) -> None:
        """``n`` more units of the counter :meth:`start` made."""
        if self._current is not None:
            self._current.advance(n)

    def info(self, msg: str) -> None:
        if self.mode in ("tty", "plain"):
            self._write(f"    {msg}\n")

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        if self.mode != "json":
            self._write(f"warning: {msg}\n")
