#!/usr/bin/env python
"""Anatomical plausibility of the digital reference study's muscle layout.

Usage::

    python scripts/phantom_anatomy.py [--seeds 1 2 3 4] [--visit baseline] [--step 10]

Classifies axial cross-sections of the continuous model (``myoimg.phantom.anatomy``) on a
0.7 mm grid every ``--step`` mm from z = -80 to +80 mm, per leg, and prints per muscle
group: its mean cross-sectional area (cm^2) and the share of leg-slices on which it lies
in more than one piece (pieces beyond the largest holding over 5 % of its area). Every
muscle of a thigh is one piece in an axial section; a muscle in two with another muscle
between them is a defect of the generator, and an automatic segmenter cannot learn from
it. Adult mid-thigh areas for comparison (MRI studies; they vary with body size): vastus
medialis 15-25, sartorius 3-5, gracilis 2-4 cm^2.

The femoral vessels' position is reported too: the share of the vastus medialis lying
more than 3 mm beyond them, seen from the femur (the vessels run in the adductor canal,
between vastus medialis, adductors and sartorius; the vastus medialis does not wrap
round them).
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage as ndi

from myoimg.labels import BY_NAME
from myoimg.phantom import anatomy as A

GROUPS = ("VL", "VM", "VI", "RF", "SAR", "GRA", "ADD", "HAM")
PIXEL_MM = 0.7


def leg_slices(seed: int, visit: str, zs: np.ndarray):
    """Yield (side, tissue codes of that leg's half of the section, x, y) per z."""
    anat = A.make_anatomy(seed, visit)
    lo, hi = anat.bounding_box(float(zs.min()), float(zs.max()))
    xs = np.arange(lo[0], hi[0], PIXEL_MM)
    ys = np.arange(lo[1], hi[1], PIXEL_MM)
    x, y = np.meshgrid(xs, ys)
    for z in zs:
        codes = A.classify(anat, np.stack([x, y, np.full_like(x, z)], axis=-1))
        for side in anat.legs:
            half = x < 0 if side == "R" else x >= 0  # LPS: patient right is -x
            yield side, np.where(half, codes, 0), x, y


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--visit", default="baseline", choices=("baseline", "followup"))
    ap.add_argument("--step", type=float, default=10.0, help="mm between sections")
    args = ap.parse_args(argv)
    zs = np.arange(-80.0, 80.0 + 1e-6, args.step)
    area = {g: [] for g in GROUPS}
    split = {g: 0 for g in GROUPS}
    beyond, n = [], 0
    px_cm2 = PIXEL_MM * PIXEL_MM / 100.0
    for seed in args.seeds:
        for side, codes, x, y in leg_slices(seed, args.visit, zs):
            n += 1
            for g in GROUPS:
                m = codes == BY_NAME[f"{side}_{g}"].id
                area[g].append(m.sum() * px_cm2)
                lab, k = ndi.label(m)
                if k > 1:
                    sizes = np.bincount(lab.ravel())[1:]
                    split[g] += (sizes.sum() - sizes.max()) > 0.05 * sizes.sum()
            marrow = codes == A.MARROW
            vm = codes == BY_NAME[f"{side}_VM"].id
            vess, k = ndi.label(codes == A.VESSEL)
            if not marrow.any() or not vm.any() or k == 0:
                continue
            fx, fy = x[marrow].mean(), y[marrow].mean()
            # the femoral vessels: the vessel blob nearest the femur (the great saphenous
            # vein lies in the subcutaneous fat)
            blobs = [(x[vess == i].mean(), y[vess == i].mean()) for i in range(1, k + 1)]
            vx, vy = min(blobs, key=lambda b: np.hypot(b[0] - fx, b[1] - fy))
            d = np.array([vx - fx, vy - fy])
            d /= np.linalg.norm(d)
            beyond.append(float((((x[vm] - vx) * d[0] + (y[vm] - vy) * d[1]) > 3.0).mean()))
    print(f"seeds {args.seeds}, {args.visit}, {n} leg-slices (z -80..80 mm every {args.step:g} mm)")
    print(f"{'group':6} {'area cm^2':>10} {'in pieces':>10}")
    for g in GROUPS:
        print(f"{g:6} {np.mean(area[g]):10.1f} {split[g] / n:10.0%}")
    if beyond:
        b = np.asarray(beyond)
        print(
            f"vastus medialis beyond the femoral vessels (seen from the femur): "
            f"{b.mean():.0%} of its area on average; over 5 % on {np.mean(b > 0.05):.0%} "
            "of leg-slices"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
