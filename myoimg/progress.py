"""Progress reporting for long work: stage lines with timings on stderr.

Library functions take an optional ``progress`` callable and never print; the
CLI passes a :class:`Progress` so that a terminal user sees each stage. Messages
carry no patient identifiers.
"""

from __future__ import annotations

import logging
import sys
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
        self._stage: str | None = None
        self._stage_t0 = 0.0
        self.timings: dict[str, float] = {}

    def _print(self, text: str, end: str = "\n") -> None:
        if not self.quiet:
            print(text, end=end, file=self.stream, flush=True)

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
        self.timings[self._stage] = self.timings.get(self._stage, 0.0) + dt
        log.info("stage done: %s (%.2f s)", self._stage, dt)
        self._stage = None

    def info(self, text: str) -> None:
        """A one-line message under the current stage."""
        log.info(text)
        self._print(f"         {text}")

    def warn(self, text: str) -> None:
        """A warning the user must see (also in results).

        Logged at INFO with a prefix: the terminal handler shows WARNING records,
        and this line is already printed here.
        """
        log.info("warning: %s", text)
        self._print(f"         warning: {text}")

    def items(self, label: str) -> ProgressCallback:
        """A (done, total) callback that updates one terminal line."""
        interactive = not self.quiet and getattr(self.stream, "isatty", lambda: False)()

        def callback(done: int, total: int) -> None:
            if interactive:
                end = "\n" if done >= total else "\r"
                self._print(f"         {label}: {done}/{total}", end=end)

        return callback
