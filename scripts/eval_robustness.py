#!/usr/bin/env python
"""Segment a labelled real case as other sites and patients would present it.

Usage::

    python scripts/eval_robustness.py [--case tests/data/huashan-001] [--only NAME ...] \
        [--jobs 2]

The case folder holds ``image.nii.gz`` and ``labels.nii.gz`` (quadriceps ids 1-8). Each
variant below changes the image (and, where the grid changes, the labels with it:
nearest neighbour, physical space), segments it with ``segment_thigh`` and scores the
eight quadriceps heads (Dice). Variants are deterministic (fixed random seed), so two
runs of the same code print the same table. A variant's drop from ``as-is`` says how
much that difference between scans costs; nothing here is tuned on them.

Variants (intensities relative to the image's 99th percentile P99):

- ``as-is``: the case itself.
- ``noise4``, ``noise8``: Gaussian noise of SD 4 % / 8 % of P99 (lower field, faster scan).
- ``shadeAP``, ``shadeLR``: intensity x0.6 -> x1.4 from front to back / right to left
  (coil shading left by the scanner's own correction).
- ``pix0.8``, ``pix1.0``, ``pix1.1``: in-plane pixels resampled to 0.8 / 1.0 / 1.1 mm
  (linear; other protocols' matrices).
- ``rot+10``, ``rot-10``: image turned 10 degrees in-plane about its centre (a patient
  lying turned, the legs rotated with the pelvis).
- ``shift``: the field of view moved 40 mm right and 30 mm back, so that it cuts the
  patient's right thigh laterally.
- ``every2``: every second slice only (twice the gap).
- ``middle``: the middle 40 % of the slices only (a mid-thigh protocol: neither end of
  the femoral shaft in the stack).
- ``fatVL``: the right vastus lateralis fat-replaced, to 30 % of its contrast above the
  subcutaneous fat of its slice (a dystrophy or inclusion body myositis pattern; the
  reference labels stay).
- ``fatQ``: all eight quadriceps heads fat-replaced to 35 % of their contrast (the
  quadriceps-dominant pattern of inclusion body myositis and some dystrophies).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from eval_segmentation import dice  # this folder is on sys.path when run as a script
from scipy import ndimage as ndi

from myoimg.labels import QUADRICEPS

VARIANTS = (
    "as-is", "noise4", "noise8", "shadeAP", "shadeLR", "pix0.8", "pix1.0", "pix1.1",
    "rot+10", "rot-10", "shift", "every2", "middle", "fatVL", "fatQ",
)  # fmt: skip


def _on_grid(img: sitk.Image, ref: sitk.Image, grid: sitk.Image, tx=None):
    """Image (linear) and labels (nearest neighbour) resampled onto ``grid``."""
    tx = tx or sitk.Transform()
    return (
        sitk.Resample(img, grid, tx, sitk.sitkLinear, 0.0, sitk.sitkFloat32),
        sitk.Resample(ref, grid, tx, sitk.sitkNearestNeighbor, 0, ref.GetPixelID()),
    )


def make_variant(name: str, img: sitk.Image, ref: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    """The variant ``name`` (see the module docstring) of image and labels."""
    a = sitk.GetArrayFromImage(img).astype(np.float32)
    p99 = float(np.percentile(a, 99))
    rng = np.random.default_rng(0)

    def with_array(arr: np.ndarray) -> sitk.Image:
        out = sitk.GetImageFromArray(arr.astype(np.float32))
        out.CopyInformation(img)
        return out

    if name == "as-is":
        return img, ref
    if name.startswith("noise"):
        return with_array(a + rng.normal(0.0, float(name[5:]) / 100 * p99, a.shape)), ref
    if name in ("shadeAP", "shadeLR"):
        jj, ii = np.mgrid[0 : a.shape[1], 0 : a.shape[2]]
        g = jj / a.shape[1] if name == "shadeAP" else ii / a.shape[2]
        return with_array(a * (0.6 + 0.8 * g)[None]), ref
    if name.startswith("pix"):
        s = float(name[3:])
        sp = img.GetSpacing()
        size = [int(round(img.GetSize()[i] * sp[i] / s)) for i in range(2)] + [img.GetSize()[2]]
        grid = sitk.Image(size, sitk.sitkFloat32)
        grid.SetSpacing((s, s, sp[2]))
        grid.SetOrigin(img.GetOrigin())
        grid.SetDirection(img.GetDirection())
        return _on_grid(img, ref, grid)
    if name.startswith("rot"):
        centre = img.TransformContinuousIndexToPhysicalPoint([s / 2.0 for s in img.GetSize()])
        tx = sitk.Euler3DTransform(centre, 0.0, 0.0, float(np.radians(float(name[3:]))))
        return _on_grid(img, ref, img, tx)
    if name == "shift":
        # Output point p shows input p + t: the anatomy moves by -t (LPS mm).
        return _on_grid(img, ref, img, sitk.TranslationTransform(3, (40.0, -30.0, 0.0)))
    if name == "every2":
        return img[:, :, ::2], ref[:, :, ::2]
    if name == "middle":
        nz = img.GetSize()[2]
        k0, k1 = int(round(0.3 * nz)), int(round(0.7 * nz))
        return img[:, :, k0:k1], ref[:, :, k0:k1]
    if name in ("fatVL", "fatQ"):
        from myoimg.segment.thigh import SUBCUT_RING_MM, body_mask

        ids, keep = ((1,), 0.3) if name == "fatVL" else (tuple(range(1, 9)), 0.35)
        sp = img.GetSpacing()
        body = body_mask(a, (sp[0], sp[1]))
        lab = sitk.GetArrayFromImage(ref)
        for k in range(a.shape[0]):
            # Each slice's own subcutaneous fat: its signal drifts along the stack.
            depth = ndi.distance_transform_edt(body[k], sampling=(sp[1], sp[0]))
            ring = body[k] & (depth >= SUBCUT_RING_MM[0]) & (depth <= SUBCUT_RING_MM[1])
            m = np.isin(lab[k], ids)
            if ring.any() and m.any():
                fat = float(np.median(a[k][ring]))
                a[k][m] = fat + keep * (a[k][m] - fat)
        return with_array(a), ref
    raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")


def run_variant(args: tuple[str, Path]) -> tuple[str, list[float], float]:
    """Segment one variant; returns its name, Dice per head and seconds."""
    from myoimg.segment.auto import segment_thigh

    name, case = args
    img = sitk.ReadImage(str(case / "image.nii.gz"), sitk.sitkFloat32)
    ref = sitk.ReadImage(str(case / "labels.nii.gz"))
    img, ref = make_variant(name, img, ref)
    t0 = time.perf_counter()
    res = segment_thigh(img)
    dt = time.perf_counter() - t0
    lab, r = sitk.GetArrayFromImage(res.labels), sitk.GetArrayFromImage(ref)
    return name, [dice(lab == m.id, r == m.id) for m in QUADRICEPS], dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--case", type=Path, default=Path("tests/data/huashan-001"))
    ap.add_argument("--only", nargs="*", default=None, help="variants to run (default: all)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    names = args.only or list(VARIANTS)
    for n in names:
        if n not in VARIANTS:
            ap.error(f"unknown variant {n!r}; known: {', '.join(VARIANTS)}")
    print(f"case {args.case}: Dice per quadriceps head")
    print(f"{'variant':8s} {'mean':>6s} " + " ".join(f"{m.name:>6s}" for m in QUADRICEPS))
    means = []
    with ProcessPoolExecutor(max(1, args.jobs)) as ex:
        for name, d, dt in ex.map(run_variant, [(n, args.case) for n in names]):
            means.append(float(np.nanmean(d)))
            print(
                f"{name:8s} {means[-1]:6.3f} " + " ".join(f"{x:6.3f}" for x in d) + f"  {dt:5.1f} s",
                flush=True,
            )
    others = [m for n, m in zip(names, means, strict=True) if n != "as-is"]
    if others:
        print(f"mean over {len(others)} variant(s) (as-is left out): {np.mean(others):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
