#!/usr/bin/env python
"""Benchmark the pipeline: per-stage wall time, peak memory, and ratios to a reference.

The reference, measured in the same run, is SimpleITK's ImageSeriesReader reading the
same T2-FS series (the cheapest thing any tool must do with the data), so the printed
ratios are comparable across machines of different speed.

Usage::

    python scripts/bench_pipeline.py [BASELINE_DIR FOLLOWUP_DIR] [--real NIFTI ...]

Without folders it runs on ``sample_data/``. It times ``myoimg compare`` stage by stage,
``segment_thigh`` on the baseline T2-FS and on each ``--real`` volume (default: the
512x512x16 development case in tests/data/huashan-001, when present), and each
registration of the issues' speed targets on its own: follow-up T2-FS onto baseline
T2-FS (rigid, and rigid + B-spline: ``--labels-from propagate``) and the baseline T2-FS
onto its CT (rigid, mutual information: labels onto the PET grid).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]


def _peak_rss_mb() -> tuple[float, float]:
    """Peak resident memory (MB) of this process and of its largest worker process.

    ``compare`` analyses the visits in two forked processes (and draws half of the
    report in another); ``RUSAGE_CHILDREN`` gives only the largest of them, so the
    bound printed is this process plus twice that. ru_maxrss is in kilobytes on Linux.
    """
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return own, child


def _sitk_read_seconds(folder: Path) -> float:
    from myoimg.io import scan, select_series

    info = select_series(scan(folder), "t2fs")
    t0 = time.perf_counter()
    reader = sitk.ImageSeriesReader()
    # Sorted by the reader itself (GDCM), the reference behaviour.
    names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), info.series_uid)
    reader.SetFileNames(names)
    reader.Execute()
    return time.perf_counter() - t0


def bench_compare(baseline: Path, followup: Path) -> float:
    """Time ``myoimg compare``; returns the reference read time (s) measured with it."""
    from myoimg.pipeline import PipelineOptions, run_compare
    from myoimg.progress import Progress

    ref = min(_sitk_read_seconds(baseline) for _ in range(3))
    progress = Progress(quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_compare(baseline, followup, Path(tmp) / "out", PipelineOptions(quiet=True), progress)
        total = time.perf_counter() - t0
    print(f"myoimg compare {baseline.name} {followup.name}")
    print("  (the two visits are analysed in two processes: their stages overlap in time,")
    print("   so the stage seconds add up to more than the total)")
    print(f"  {'stage':55s} {'seconds':>8s}")
    for stage, seconds in progress.timings.items():
        print(f"  {stage:55s} {seconds:8.2f}")
    print(f"  {'total':55s} {total:8.2f}   (target <= 60 s on 2 cores)")
    print(f"  reference: SimpleITK ImageSeriesReader of the baseline T2-FS: {ref:.3f} s")
    print(f"  ratio total / reference read: {total / ref:.0f}x")
    own, child = _peak_rss_mb()
    print(f"  peak resident memory: {own:.0f} MB here, {child:.0f} MB the largest worker "
          f"process; at most {own + 2 * child:.0f} MB together   (target <= 2048 MB)")
    return ref


def bench_segment(path: Path) -> None:
    from myoimg.io import load_image
    from myoimg.segment.auto import segment_thigh

    t0 = time.perf_counter()
    volume = load_image(path, role="t2fs")
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    segment_thigh(volume.image)
    seg = time.perf_counter() - t0
    size = "x".join(str(s) for s in volume.image.GetSize())
    print(f"segment_thigh on {path.name} ({size}): {seg:.2f} s (target <= 20 s); "
          f"load {load:.2f} s; ratio {seg / max(load, 1e-9):.0f}x load")


def bench_registration(baseline: Path, followup: Path, ref: float) -> None:
    """Time each registration on its own; ``ref``: the reference read time (s)."""
    from myoimg.errors import SeriesSelectionError
    from myoimg.io import load_image
    from myoimg.segment.register import register_rigid_affine

    base = load_image(baseline, role="t2fs").image
    follow = load_image(followup, role="t2fs").image
    jobs = [("follow-up T2-FS -> baseline T2-FS, rigid", base, follow, False),
            ("follow-up T2-FS -> baseline T2-FS, rigid + B-spline", base, follow, True)]
    try:
        ct = load_image(baseline, role="ct").image
        jobs.append(("baseline T2-FS -> its CT, rigid (mutual information)", ct, base, False))
    except SeriesSelectionError as exc:  # no CT in the folder: nothing to time
        print(f"  (no CT registration timed: {exc})")
    print("registrations (each on its own; target <= 30 s on 2 cores)")
    for name, fixed, moving, deformable in jobs:
        t0 = time.perf_counter()
        reg = register_rigid_affine(fixed, moving, deformable=deformable)
        dt = time.perf_counter() - t0
        print(f"  {name:55s} {dt:6.2f} s  ({dt / ref:.0f}x the reference read; "
              f"quality check {'passed' if reg.ok else 'FAILED'})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--real", type=Path, action="append", default=[],
                        help="NIfTI volume(s) to segment and time (default: the development "
                        "case tests/data/huashan-001/image.nii.gz, when present)")
    args = parser.parse_args(argv)
    if args.folders and len(args.folders) != 2:
        parser.error("give BASELINE_DIR and FOLLOWUP_DIR, or nothing for sample_data/")
    baseline, followup = args.folders or (ROOT / "sample_data/baseline", ROOT / "sample_data/followup")
    ref = bench_compare(baseline, followup)
    bench_registration(baseline, followup, ref)
    bench_segment(baseline)
    default_real = ROOT / "tests/data/huashan-001/image.nii.gz"
    for path in args.real or ([default_real] if default_real.exists() else []):
        bench_segment(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
