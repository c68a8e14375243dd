#!/usr/bin/env python
"""Accuracy of the whole pipeline on generated reference studies (automatic segmentation).

For each study (generated with seeds never used while tuning, default 100 and 101, or
existing study folders given with --study), runs ``myoimg compare`` and prints, per
visit and quadriceps head, the oedema fraction and SUVmean against the truth:

- oedema fraction: truth ``oedema_fraction`` (targets: within 0.05 at baseline, 0.03 at
  follow-up);
- SUVmean: truth ``suv_mean_pet_truth_labels_mr_fov`` (noise-free SUV within the true PET
  labels, restricted to the MRI field of view; target within 5 %).

Usage::

    python scripts/eval_quantification.py [--seeds 100 101] [--study DIR ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from myoimg.labels import QUADRICEPS
from myoimg.phantom import generate_study
from myoimg.pipeline import PipelineOptions, run_compare


def evaluate(
    study: Path, work: Path, threshold: str = "mean+2sd", partial_volume: bool = True
) -> list[tuple]:
    out = work / f"out-{study.name}"
    options = PipelineOptions(quiet=True, report=False, oedema_threshold=threshold,
                              oedema_partial_volume=partial_volume)
    run_compare(study / "baseline", study / "followup", out, options)
    results = json.loads((out / "results.json").read_text())
    truth = json.loads((study / "truth" / "truth.json").read_text())
    rows = []
    for visit in ("baseline", "followup"):
        for m in QUADRICEPS:
            got = results["visits"][visit]["muscles"][m.name]
            want = truth["visits"][visit]["muscles"][m.name]
            suv_true = want.get("suv_mean_pet_truth_labels_mr_fov")
            suv_err = (got["suv_mean"] / suv_true - 1.0) if got["suv_mean"] and suv_true else None
            rows.append((study.name, visit, m.name, got["oedema_fraction"], want["oedema_fraction"],
                         got["suv_mean"], suv_true, suv_err))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[100, 101])
    parser.add_argument("--study", type=Path, action="append", default=[])
    parser.add_argument("--oedema-threshold", default="mean+2sd", help="e.g. mean+3sd")
    parser.add_argument("--oedema-binary", action="store_true",
                        help="count every oedema voxel whole (no partial-volume weighting)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        studies = list(args.study)
        for seed in ([] if args.study else args.seeds):
            studies.append(generate_study(work / f"seed{seed}", seed=seed))
        rows = [row for study in studies
                for row in evaluate(Path(study), work, args.oedema_threshold,
                                    not args.oedema_binary)]
    print(f"{'study':14s} {'visit':9s} {'muscle':6s} {'oedema':>7s} {'truth':>6s} {'err':>7s} "
          f"{'SUVmean':>8s} {'truth':>6s} {'err %':>7s}")
    worst = {"baseline": 0.0, "followup": 0.0}
    worst_suv = 0.0
    for study, visit, name, f, ft, s, st, se in rows:
        ferr = None if f is None else f - ft
        if ferr is not None:
            worst[visit] = max(worst[visit], abs(ferr))
        if se is not None:
            worst_suv = max(worst_suv, abs(se))
        fmt = lambda v, p: "n/a" if v is None else f"{v:{p}}"  # noqa: E731
        print(f"{study:14s} {visit:9s} {name:6s} {fmt(f, '.3f'):>7s} {ft:6.3f} "
              f"{fmt(ferr, '+.3f'):>7s} {fmt(s, '.3f'):>8s} {fmt(st, '.3f'):>6s} "
              f"{fmt(None if se is None else 100 * se, '+.1f'):>7s}")
    print(f"worst |oedema error|: baseline {worst['baseline']:.3f} (target 0.05), "
          f"follow-up {worst['followup']:.3f} (target 0.03); worst |SUVmean error| "
          f"{100 * worst_suv:.1f} % (target 5 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
