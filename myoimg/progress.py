"""Progress reporting for long work: stage lines with timings on stderr.

Library functions take an optional ``progress`` callable and never print; the
CLI passes a :class:`Progress` so that a terminal user sees each stage. Messages
carry no patient identifiers.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "ProgressCallback", "null_progress"]

#: Signature of the per-item callbacks used inside loops: (done, total).
ProgressCallback = Callable[[int, int], None]

log = logging.getLogger("myoimg")


def null_progress(done: int, total: int) -> None:  # noqa: ARG001 - signature fixed
    """A progress callback that does nothing."""


class Progress:
    """Print stage starts/ends with elapsed time; also log them.

    Thread-safe: each thread has its own current stage. Where several pieces of work
    print at once (``compare`` analyses the two visits in two processes, each with
    :meth:`for_worker`), stage names say which work they belong to (e.g. "baseline:
    ..."). ``timings`` sums the seconds per stage name.

    Parameters
    ----------
    quiet : bool
        Print nothing (the log still records the stages).
    stream : file-like
        Where to print (default: stderr, so that stdout stays parseable).
    """

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self._t0 = time.perf_counter()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._item_lines = True
        self.timings: dict[str, float] = {}

    @property
    def _stage(self) -> str | None:
        return getattr(self._local, "stage", None)

    @_stage.setter
    def _stage(self, name: str | None) -> None:
        self._local.stage = name

    @property
    def _stage_t0(self) -> float:
        return getattr(self._local, "t0", 0.0)

    @_stage_t0.setter
    def _stage_t0(self, t0: float) -> None:
        self._local.t0 = t0

    def _print(self, text: str, end: str = "\n") -> None:
        if not self.quiet:
            with self._lock:
                print(text, end=end, file=self.stream, flush=True)

    def for_worker(self) -> Progress:
        """A progress for work in a forked worker process that shares this terminal:
        same clock, stream and quietness, timings of its own (the caller adds them to
        its own), and no per-item line (two processes would rewrite the same line)."""
        worker = Progress(quiet=self.quiet, stream=self.stream)
        worker._t0 = self._t0  # perf_counter is system-wide: the same clock after fork
        worker._item_lines = False
        return worker

    def stage(self, name: str) -> None:
        """Close the current stage (if any) and start ``name``."""
        self.done()
        self._stage = name
        self._stage_t0 = time.perf_counter()
        log.info("stage start: %s", name)
        self._print(f"[{time.perf_counter() - self._t0:6.1f}s] {name} ...")

    def done(self) -> None:
        """Close the current stage."""
        if self._stage is None:
            return
        dt = time.perf_counter() - self._stage_t0
        with self._lock:
            self.timings[self._stage] = self.timings.get(self._stage, 0.0) + dt
        log.info("stage done: %s (%.2f s)", self._stage, dt)
        self._local.last = self._stage  # warnings printed after the last stage keep its owner
        self._stage = None

    def _whose(self) -> str:
        """"baseline: " when the current stage is "baseline: ..." (lines of two visits
        analysed at once interleave), else ""."""
        stage = self._stage or getattr(self._local, "last", None) or ""
        head, sep, _ = stage.partition(": ")
        return f"{head}: " if sep else ""

    def info(self, text: str) -> None:
        """A one-line message under the current stage."""
        log.info("%s%s", self._whose(), text)
        self._print(f"         {self._whose()}{text}")

    def warn(self, text: str) -> None:
        """A warning the user must see (also in results).

        Logged at INFO with a prefix: the terminal handler shows WARNING records,
        and this line is already printed here.
        """
        log.info("%swarning: %s", self._whose(), text)
        self._print(f"         {self._whose()}warning: {text}")

    def items(self, label: str) -> ProgressCallback:
        """A (done, total) callback that updates one terminal line.

        Only from the main thread, and not in a worker process (:meth:`for_worker`):
        two of them rewriting the same line would garble it.
        """
        interactive = (not self.quiet and self._item_lines
                       and getattr(self.stream, "isatty", lambda: False)()
                       and threading.current_thread() is threading.main_thread())

        def callback(done: int, total: int) -> None:
            if interactive:
                end = "\n" if done >= total else "\r"
                self._print(f"         {label}: {done}/{total}", end=end)

        return callback
