"""Oedema-fraction accuracy of the MRI quantification on phantom studies, with TRUE labels.

For each study folder (made by ``myoimg.phantom.generate_study``) and visit, this runs the
MRI part of the pipeline as ``myoimg/pipeline.py`` does -- T2-FS series selection and
loading, N4 inside the labelled muscles with :func:`myoimg.quantify.mri.n4_levels`
levels, automatic healthy reference, :func:`myoimg.quantify.mri.oedema_metrics` -- but
on the truth label map (``truth/<visit>/labels_mr.nii.gz``), so only the quantification
is judged. It prints, per visit and quadriceps head, the measured oedema fraction
against ``truth/truth.json`` (visits.<visit>.muscles.<name>.oedema_fraction) and the
worst absolute error per visit, for each healthy-level rule asked for.

N4 is run once per visit (slow part) and the corrected image is then quantified with
``bias_correct=False``; this is the same computation as ``oedema_metrics(image, labels)``
with its default N4 (mask = the labelled muscles, holes filled), just shared between the rules compared.

Usage::

    python scripts/eval_oedema.py STUDY [STUDY ...] \
        --method per-muscle/mean+2sd/nearest/3/binary --method per-muscle/mean+2sd/nearest/3/pv

Targets (issue #5): |error| <= 0.05 for every head at baseline, <= 0.03 at follow-up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from myoimg.io import load_series, read_nifti, scan, select_series
from myoimg.labels import QUADRICEPS
from myoimg.quantify.mri import (
    DEFAULT_OEDEMA_THRESHOLD,
    MIN_OEDEMA_CLUSTER_VOXELS,
    muscle_envelope,
    n4_iterations,
    oedema_metrics,
)
from myoimg.segment.bias import n4_correct

TARGET = {"baseline": 0.05, "followup": 0.03}


def corrected_visit(study: Path, visit: str) -> tuple[sitk.Image, sitk.Image]:
    """N4-corrected T2-FS image and truth labels of one visit (as the pipeline does N4)."""
    t2 = load_series(select_series(scan(study / visit), "t2fs", None))
    labels = read_nifti(study / "truth" / visit / "labels_mr.nii.gz")
    labels = sitk.Cast(labels, sitk.sitkUInt8)
    # NIfTI round trip: copy the exact DICOM geometry (float tolerance) for the grid check.
    labels.CopyInformation(t2.image)
    mask = muscle_envelope(labels)
    return n4_correct(t2.image, mask, iterations=n4_iterations(t2.image)), labels


def evaluate(studies: list[Path], methods: list[tuple[str, ...]], erode: int) -> dict:
    """Print measured vs true oedema fractions; ``methods`` = (healthy_level, threshold, rim,
    min_cluster, count) with count "pv" (partial-volume weighted edges) or "binary"."""
    rules = ["/".join(m) for m in methods]
    worst: dict = {}
    for study in studies:
        truth = json.loads((study / "truth" / "truth.json").read_text())
        for visit in ("baseline", "followup"):
            t0 = time.perf_counter()
            image, labels = corrected_visit(study, visit)
            t_n4 = time.perf_counter() - t0
            tm = truth["visits"][visit]["muscles"]
            results = {}
            for rule, (level, threshold, rim, min_cluster, count) in zip(
                rules, methods, strict=True
            ):
                results[rule] = oedema_metrics(
                    image, labels, threshold=threshold, healthy_level=level, rim=rim,
                    erode_inplane=erode, bias_correct=False, min_cluster=int(min_cluster),
                    partial_volume=count != "binary",
                )
            print(f"\n{study.name} {visit} (variant {truth['variant']}, N4 {t_n4:.0f} s)")
            print("  " + "; ".join(f"[{n}] {r}" for n, r in enumerate(rules)))
            head = f"  {'muscle':6s} {'truth':>6s}" + "".join(f" {f'[{n}]':>7s}" for n in
                                                            range(len(rules)))
            print(head + "   errors")
            for m in QUADRICEPS:
                t = tm[m.name]["oedema_fraction"]
                row = f"  {m.name:6s} {t:6.3f}"
                errs = ""
                for rule in rules:
                    f = results[rule].muscles[m.name]["oedema_fraction"]
                    row += f" {f:7.3f}"
                    errs += f" {f - t:+.3f}"
                    key = (rule, visit)
                    w = worst.setdefault(key, (0.0, ""))
                    if abs(f - t) > abs(w[0]):
                        worst[key] = (f - t, f"{study.name}/{m.name}")
                print(row + "  " + errs)
            for rule in rules:
                errs = [results[rule].muscles[m.name]["oedema_fraction"]
                        - tm[m.name]["oedema_fraction"] for m in QUADRICEPS]
                print(f"  {rule:>22s}: worst |err| {np.max(np.abs(errs)):.3f}, "
                      f"mean err {np.mean(errs):+.3f}, ref SD/mean "
                      f"{results[rule].reference.sd / results[rule].reference.mean:.3f}")
            sys.stdout.flush()
    print(f"\nWorst error per method and visit, erode_inplane={erode} "
          "(target baseline 0.05, follow-up 0.03):")
    ok = True
    for (rule, visit), (err, where) in sorted(worst.items()):
        good = abs(err) <= TARGET[visit]
        ok &= good
        print(f"  {rule:>22s} {visit:9s} {err:+.3f} at {where}  {'ok' if good else 'MISSED'}")
    return {"worst": worst, "ok": ok}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("studies", nargs="+", type=Path, help="phantom study folders")
    p.add_argument("--method", action="append", default=None,
                   metavar="LEVEL/THRESHOLD/RIM/MINCLUSTER/COUNT",
                   help="healthy_level/threshold/rim/min_cluster/count of oedema_metrics "
                        "(count: pv = cluster edges weighted by their oedema content, or "
                        "binary), e.g. per-muscle/mean+3sd/nearest, "
                        "per-muscle/mean+2sd/nearest/3/binary, or "
                        "reference/mean+2sd/excluded/0/binary (the rule before issue #5's "
                        "fix); repeatable; a missing part takes the function's default. "
                        "Default: the default rule, binary and partial-volume weighted")
    p.add_argument("--erode", type=int, default=1,
                   help="erode_inplane of oedema_metrics (the pipeline's default is 1)")
    args = p.parse_args(argv)
    specs = args.method or [f"per-muscle/{DEFAULT_OEDEMA_THRESHOLD}/nearest//binary",
                            f"per-muscle/{DEFAULT_OEDEMA_THRESHOLD}/nearest//pv"]
    methods = []
    for spec in specs:
        parts = (spec.split("/") + ["", "", "", "", ""])[:5]
        if parts[4] not in ("", "pv", "binary"):
            p.error(f"count must be pv or binary, not {parts[4]!r}")
        methods.append((parts[0] or "per-muscle", parts[1] or DEFAULT_OEDEMA_THRESHOLD,
                        parts[2] or "nearest", parts[3] or str(MIN_OEDEMA_CLUSTER_VOXELS),
                        parts[4] or "pv"))
    res = evaluate(args.studies, methods, args.erode)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
