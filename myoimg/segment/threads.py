"""Parallel work: per-slice work on a few threads, whole tasks in forked processes.

The per-slice steps (SciPy/scikit-image filters, distance transforms, watershed) release
the GIL and the slices are independent, so threads use the cores without copying the
volume into other processes (:func:`thread_map`). Whole visits, whose Python glue holds
the GIL much of the time, run in forked processes instead (:func:`fork_map`).
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Most threads for the per-slice work: a container's affinity mask may list every CPU
#: of a large host while its quota allows a few, and a slice batch is 10-60 jobs.
MAX_THREADS = 8


#: In a :func:`fork_map` worker: its share of the CPUs, the workers running at once.
_worker_share: int | None = None


def n_threads() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one), at most
    MAX_THREADS; in a :func:`fork_map` worker, its share of them."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    n = max(1, min(n, MAX_THREADS))
    return min(n, _worker_share) if _worker_share else n


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


def can_fork() -> bool:
    """Two or more CPUs for this process and the ``fork`` start method (Linux, macOS)."""
    return n_threads() >= 2 and "fork" in multiprocessing.get_all_start_methods()


def fork_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(item) for item in items]``, each call in a forked process of its own.

    For whole-visit work that holds Python's GIL much of the time (NumPy glue, pydicom,
    highdicom): separate processes keep both cores busy where threads queue for the GIL.
    The children inherit ``fn`` and ``items`` by ``fork`` (nothing of them is pickled);
    each result, or the exception raised, comes back pickled through a pipe.

    The first exception raised in a child is raised here, after every child has been
    stopped (``SIGTERM``) and reaped, so that nothing a child writes outlives the
    call; the same holds when the caller is interrupted (Ctrl-C).
    """
    ctx = multiprocessing.get_context("fork")
    # Each worker's thread_map gets its share of the CPUs: two visits with two per-slice
    # threads each on two cores queue for the GIL (sample_data/'s two visits: 51.1 s,
    # with one thread each 49.1 s, means of three runs; the same labels).
    share = max(1, n_threads() // max(len(items), 1))
    procs, conns = [], []
    try:
        for item in items:
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(fn, item, send, share), daemon=True)
            proc.start()
            send.close()  # the child holds the sending end: EOF here when it dies
            procs.append(proc)
            conns.append(recv)
        results: list = [None] * len(conns)
        pending = dict(enumerate(conns))
        while pending:
            for conn in wait(list(pending.values())):
                i = conns.index(conn)
                del pending[i]
                try:
                    ok, value = conn.recv()
                except EOFError:
                    procs[i].join()
                    raise ChildProcessError(
                        f"worker process {i + 1} of {len(conns)} ended without a result "
                        f"(exit code {procs[i].exitcode})") from None
                if not ok:
                    raise value
                results[i] = value
        return results
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()
        for conn in conns:
            conn.close()


def _child(fn: Callable, item: object, conn: Connection, share: int) -> None:
    """Run ``fn(item)`` in a forked child on ``share`` CPUs' worth of threads; send
    ``(True, result)`` or ``(False, exc)``."""
    global _worker_share
    _worker_share = share
    try:
        message = (True, fn(item))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
        message = (False, exc)
    try:
        conn.send(message)
    except Exception as exc:  # noqa: BLE001 - e.g. an exception that cannot be pickled
        detail = "".join(traceback.format_exception_only(message[1])) if not message[0] else ""
        conn.send((False, RuntimeError(
            f"worker process: its {'error' if detail else 'result'} could not be sent back "
            f"({exc}) {detail}".strip())))
    finally:
        conn.close()
