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

__all__ = ["Cancelled", "Progress", "ProgressCallback", "null_progress"]

#: Signature of the per-item callbacks used inside loops: (done, total).
ProgressCallback = Callable[[int, int], None]

log = logging.getLogger("myoimg")


class Cancelled(Exception):  # noqa: N818 - reads as "the work was cancelled"
    """Raised at a stage boundary after :meth:`Progress.cancel`."""


def null_progress(done: int, total: int) -> None:  # noqa: ARG001 - signature fixed
    """A progress callback that does nothing."""


class Progress:
    """Print stage starts/ends with elapsed time; also log them.

    Thread-safe: each thread has its own current stage (``compare`` analyses the two
    visits on two threads), and stage names should then say which work they belong to
    (e.g. "baseline: ..."). ``timings`` sums the seconds per stage name.

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
        self._cancelled = threading.Event()
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

    def cancel(self) -> None:
        """Make every later :meth:`stage` call raise :class:`Cancelled`: how work running
        on other threads is stopped at its next stage boundary (threads cannot be killed)."""
        self._cancelled.set()

    def stage(self, name: str) -> None:
        """Close the current stage (if any) and start ``name``.

        Raises
        ------
        Cancelled
            After :meth:`cancel`.
        """
        self.done()
        if self._cancelled.is_set():
            raise Cancelled(f"cancelled before {name!r}")
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
        analysed on two threads interleave), else ""."""
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

        Only from the main thread: two threads rewriting the same line would garble it.
        """
        interactive = (not self.quiet and getattr(self.stream, "isatty", lambda: False)()
                       and threading.current_thread() is threading.main_thread())

        def callback(done: int, total: int) -> None:
            if interactive:
                end = "\n" if done >= total else "\r"
                self._print(f"         {label}: {done}/{total}", end=end)

        return callback
