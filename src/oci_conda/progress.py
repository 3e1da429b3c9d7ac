"""Progress and phase timings for long work.

On a TTY: one self-overwriting status line per phase. Elsewhere (CI, pipes): a line when a phase starts and ends,
nothing in between. ``quiet``: only warnings and errors. ``json``: nothing on stderr but warnings; the caller prints
the summary as JSON on stdout.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Iterator, Literal, TextIO

Mode = Literal["tty", "plain", "quiet", "json"]


def choose_mode(quiet: bool, as_json: bool, stream: TextIO = sys.stderr) -> Mode:
    if as_json:
        return "json"
    if quiet:
        return "quiet"
    if stream.isatty() and os.environ.get("TERM") != "dumb" and not os.environ.get("CI"):
        return "tty"
    return "plain"


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Reporter:
    """Thread-safe: downloads report from worker threads."""

    def __init__(self, mode: Mode = "plain", stream: TextIO = sys.stderr):
        self.mode = mode
        self.stream = stream
        self.timings: dict[str, float] = {}
        self._lock = threading.Lock()
        self._label = ""
        self._done = 0
        self._total = 0
        self._last_draw = 0.0
        self.warnings: list[str] = []

    def _write(self, text: str) -> None:
        with self._lock:
            self.stream.write(text)
            self.stream.flush()

    @contextlib.contextmanager
    def phase(self, name: str, detail: str = "") -> Iterator[None]:
        """Time a phase (``solve``, ``fetch``...): the summary shows these figures."""
        if self.mode in ("tty", "plain"):
            self._write(f"==> {name}{': ' + detail if detail else ''}\n")
        t0 = time.perf_counter()
        self._label, self._done, self._total = name, 0, 0
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            self.timings[name] = self.timings.get(name, 0.0) + dt
            if self.mode == "tty" and self._total:
                self._write("\r\033[K")

    def start(self, total: int, label: str = "") -> None:
        with self._lock:
            self._total, self._done = total, 0
            if label:
                self._label = label

    def advance(self, n: int = 1) -> None:
        """Add ``n`` units of work done (bytes or items) and redraw at most 10 times a second."""
        if self.mode != "tty":
            return
        with self._lock:
            self._done += n
            now = time.monotonic()
            if now - self._last_draw < 0.1 and self._done < self._total:
                return
            self._last_draw = now
            total = max(self._total, 1)
            frac = min(self._done / total, 1.0)
            bar = "#" * int(frac * 30)
            self.stream.write(f"\r\033[K    {self._label} [{bar:<30}] {frac * 100:5.1f}%")
            self.stream.flush()

    def info(self, msg: str) -> None:
        if self.mode in ("tty", "plain"):
            self._write(f"    {msg}\n")

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        if self.mode != "json":
            self._write(f"warning: {msg}\n")
