"""fork_map: results in order, errors raised here, no child left running."""

from __future__ import annotations

import os
import threading

import pytest

from myoimg.segment.threads import fork_map, n_threads


def test_results_come_back_in_order_from_other_processes():
    assert fork_map(lambda x: (x * x, os.getpid()), [3, 4])[0][0] == 9
    pids = [pid for _, pid in fork_map(lambda x: (x, os.getpid()), [1, 2])]
    assert len({*pids, os.getpid()}) == 3


def test_an_error_in_a_child_is_raised_with_its_type_and_message():
    def fn(x: int) -> int:
        if x == 2:
            raise KeyError(f"no key {x}")
        return x

    with pytest.raises(KeyError, match="no key 2"):
        fork_map(fn, [1, 2])


def test_a_child_that_dies_is_an_error_not_a_missing_result():
    with pytest.raises(ChildProcessError, match="exit code 7"):
        fork_map(lambda x: os._exit(7), [1])


def test_an_error_that_cannot_be_pickled_still_reaches_the_caller():
    class Unpicklable(Exception):
        def __init__(self) -> None:
            super().__init__("the lock")
            self.lock = threading.Lock()

    def fn(x: int) -> int:
        raise Unpicklable()

    with pytest.raises(RuntimeError, match="could not be sent back.*the lock"):
        fork_map(fn, [1])


def test_each_worker_gets_its_share_of_the_cpus():
    shares = fork_map(lambda _: n_threads(), [1, 2])
    assert shares == [max(1, n_threads() // 2)] * 2
    assert n_threads() >= shares[0]  # unchanged here
