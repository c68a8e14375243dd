"""Progress reporting across threads, and compare's two-visit concurrency."""

from __future__ import annotations

import io
import threading
import time

import pytest

from myoimg.pipeline import PipelineOptions, _analyze_both
from myoimg.progress import Cancelled, Progress


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


def test_cancel_stops_at_the_next_stage():
    progress = Progress(quiet=True)
    progress.stage("baseline: one")
    progress.cancel()
    with pytest.raises(Cancelled, match="two"):
        progress.stage("baseline: two")
    assert "baseline: one" in progress.timings


def _fake_visits(monkeypatch, fail: str | None = None):
    """Replace analyze_visit by a stand-in recording its thread; ``fail`` raises there."""
    import myoimg.pipeline as pipeline

    seen: dict[str, object] = {}

    def fake(folder, out_dir, visit, options, progress=None, baseline=None):
        seen[visit] = (threading.current_thread(), baseline)
        for step in range(40):
            progress.stage(f"{visit}: step {step}")
            if visit == fail and step == 2:
                raise ValueError(f"{visit} broke")
            time.sleep(0.02)
        progress.done()
        return {"_mr_image": "image", "_mr_labels": "labels", "visit": visit}

    monkeypatch.setattr(pipeline, "analyze_visit", fake)
    monkeypatch.setattr("myoimg.segment.threads.n_threads", lambda: 2)
    return seen


def test_compare_analyses_the_visits_on_two_threads(monkeypatch, tmp_path):
    seen = _fake_visits(monkeypatch)
    base, follow = _analyze_both("b", "f", tmp_path, PipelineOptions(quiet=True), Progress(quiet=True))
    assert (base["visit"], follow["visit"]) == ("baseline", "followup")
    assert seen["baseline"][0] is not seen["followup"][0]
    assert seen["followup"][1] is None


def test_propagated_labels_keep_the_visits_in_order(monkeypatch, tmp_path):
    seen = _fake_visits(monkeypatch)
    options = PipelineOptions(quiet=True, labels_from="propagate")
    _analyze_both("b", "f", tmp_path, options, Progress(quiet=True))
    assert seen["baseline"][0] is seen["followup"][0] is threading.current_thread()
    assert seen["followup"][1] == {"image": "image", "labels": "labels"}


def test_a_failing_visit_stops_the_other(monkeypatch, tmp_path):
    _fake_visits(monkeypatch, fail="followup")
    progress = Progress(quiet=True)
    with pytest.raises(ValueError, match="followup broke"):
        _analyze_both("b", "f", tmp_path, PipelineOptions(quiet=True), progress)
    # The baseline (40 steps of 20 ms) was stopped at a stage boundary, not finished.
    assert "baseline: step 39" not in progress.timings
