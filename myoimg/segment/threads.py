"""Per-slice work on a few threads.

The per-slice steps (SciPy/scikit-image filters, distance transforms, watershed) release
the GIL and the slices are independent, so threads use the cores without copying the
volume into other processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

#: Most threads for the per-slice work: a container's affinity mask may list every CPU
#: of a large host while its quota allows a few, and a slice batch is 10-60 jobs.
MAX_THREADS = 8


def n_threads() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one), at most
    MAX_THREADS."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    return max(1, min(n, MAX_THREADS))


def thread_map(fn: Callable, items: Iterable, workers: int | None = None) -> Iterator:
    """``map(fn, items)`` on up to ``workers`` threads (default :func:`n_threads`),
    results in order; the output is the same as the serial loop's, and the first
    exception raised by ``fn`` propagates.
    """
    items = list(items)
    workers = min(n_threads() if workers is None else workers, len(items))
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(fn, items)
