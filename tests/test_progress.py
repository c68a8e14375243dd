"""Progress reporting across threads and worker processes, and compare's two visits at once."""

from __future__ import annotations

import io
import os
import threading
import time

import pytest

from myoimg.pipeline import PipelineOptions, _analyze_both
from myoimg.progress import Progress


def test_stages_on_two_threads_are_timed_and_named_separately():
    stream = io.StringIO()
    progress = Progress(stream=stream)
    barrier = threading.Barrier(2)

    def visit(name: str, seconds: float) -> None:
        progress.stage(f"{name}: work")
        barrier.wait()  # both stages open at once
        time.sleep(seconds)
        progress.info("a note")
        progress.done()
        progress.warn("after the stage")

    threads = [threading.Thread(target=visit, args=a) for a in (("baseline", 0.05), ("followup", 0.3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # A shared current stage would have closed one visit's stage when the other opened.
    assert 0.04 < progress.timings["baseline: work"] < 0.25
    assert progress.timings["followup: work"] >= 0.3
    lines = stream.getvalue().splitlines()
    assert "         baseline: a note" in lines and "         followup: a note" in lines
    assert "         followup: warning: after the stage" in lines


def test_a_worker_progress_keeps_the_clock_and_its_own_timings_without_item_lines():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    progress = Progress(stream=stream)
    progress.stage("baseline: before")
    progress.done()
    worker = progress.for_worker()
    assert worker._t0 == progress._t0 and worker.stream is stream
    worker.stage("baseline: in the worker")
    worker.done()
    assert list(worker.timings) == ["baseline: in the worker"]
    before = stream.getvalue()
    worker.items("files")(3, 10)  # another process may be rewriting the same line
    assert stream.getvalue() == before
    progress.items("files")(3, 10)
    assert stream.getvalue().endswith("files: 3/10\r")


def _fake_visits(monkeypatch, tmp_path, fail: str | None = None):
    """Replace analyze_visit by a stand-in that records its process (in the entry and
    in a file per finished visit); ``fail`` raises there."""
    import myoimg.pipeline as pipeline

    seen: dict[str, object] = {}

    def fake(folder, out_dir, visit, options, progress=None, baseline=None):
        seen[visit] = baseline
        for step in range(40):
            progress.stage(f"{visit}: step {step}")
            if visit == fail and step == 2:
                raise ValueError(f"{visit} broke")
            time.sleep(0.02)
        progress.done()
        (tmp_path / f"{visit}.finished").write_text("")
        return {"_mr_image": "image", "_mr_labels": "labels", "visit": visit, "pid": os.getpid()}

    monkeypatch.setattr(pipeline, "analyze_visit", fake)
    monkeypatch.setattr("myoimg.segment.threads.n_threads", lambda: 2)
    return seen


def test_compare_analyses_the_visits_in_two_processes(monkeypatch, tmp_path):
    _fake_visits(monkeypatch, tmp_path)
    progress = Progress(quiet=True)
    base, follow = _analyze_both("b", "f", tmp_path, PipelineOptions(quiet=True), progress)
    assert (base["visit"], follow["visit"]) == ("baseline", "followup")
    assert len({base["pid"], follow["pid"], os.getpid()}) == 3
    assert base["_mr_image"] is None  # not sent back: only propagation needs it
    # The workers' stage timings are the caller's.
    assert {"baseline: step 39", "followup: step 0"} <= set(progress.timings)


def test_propagated_labels_keep_the_visits_in_order(monkeypatch, tmp_path):
    seen = _fake_visits(monkeypatch, tmp_path)
    options = PipelineOptions(quiet=True, labels_from="propagate")
    base, follow = _analyze_both("b", "f", tmp_path, options, Progress(quiet=True))
    assert base["pid"] == follow["pid"] == os.getpid()
    assert seen["followup"] == {"image": "image", "labels": "labels"}


def test_a_failing_visit_stops_the_other(monkeypatch, tmp_path):
    _fake_visits(monkeypatch, tmp_path, fail="followup")
    with pytest.raises(ValueError, match="followup broke"):
        _analyze_both("b", "f", tmp_path, PipelineOptions(quiet=True), Progress(quiet=True))
    # The baseline (40 steps of 20 ms) was stopped, not finished, and it was stopped
    # before the error reached the caller (who then removes the output folder).
    time.sleep(0.9)
    assert not (tmp_path / "baseline.finished").exists()
