#!/usr/bin/env python
"""Evaluate the MR -> CT registration (label transfer to PET) against phantom truth.

Usage::

    python scripts/eval_registration.py [STUDY_DIR ...]
    # default: generate development studies (seeds 1-3 standard, seed 4 of each other
    # variant) into a temporary folder

Each STUDY_DIR holds ``baseline/``, ``followup/`` (DICOM) and ``truth/`` (``truth.json``,
``<visit>/labels_mr.nii.gz``, ``<visit>/labels_pet.nii.gz``), as written by
``myoimg.phantom.generate_study``. For every visit the T2-FS series is registered to the
CT of the PET/CT exactly as the pipeline does (:func:`labels_to_pet`, ``same_frame=False``)
and the TRUE MR labels are carried onto the PET grid. Printed per visit:

- ``dt``/``drot``: translation (mm, at the centroid of the labelled muscles) and rotation
  (degrees) of the residual transform T_est o T_true (MR -> MR; identity when perfect);
- ``TRE``: mean / max target registration error (mm) over all labelled MR voxels;
- ``thigh``/``femur``/``struct.gain``: the quality-check numbers and ``ok``;
- per quadriceps head: label Dice on the PET grid against ``labels_pet.nii.gz`` and the
  SUVmean error (%) against ``suv_mean_pet_truth_labels`` of ``truth.json``; ``ref``
  columns give the same numbers when the labels are mapped through the TRUE transform
  (the floor set by resampling 1 x 1 x 5 mm labels onto 4 mm PET voxels, and by the MR
  covering only part of the muscles the PET labels cover), and the error against the
  mean over the true PET labels restricted to the MR field of view (the fair target).

Convention: ``truth.json`` matrices map MR patient LPS (mm) to PET/CT patient LPS (mm);
the registration transform maps fixed (CT) points to moving (MR) points (ITK).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from myoimg.io import load_image, read_nifti
from myoimg.labels import QUADRICEPS
from myoimg.quantify.suv import compute_suv
from myoimg.segment.register import labels_to_pet, resample_labels_majority

VISIT_KEY = {
    "baseline": "baseline_mri_to_baseline_petct",
    "followup": "followup_mri_to_followup_petct",
}


def _lps_points(image: sitk.Image, mask: np.ndarray) -> np.ndarray:
    """(n, 3) LPS mm positions of the ``mask`` voxels (array order k, j, i)."""
    kji = np.argwhere(mask)
    ijk = kji[:, ::-1].astype(float)
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    sp = np.asarray(image.GetSpacing())
    return np.asarray(image.GetOrigin()) + (ijk * sp) @ d.T


def _affine_of(t: sitk.Transform, pts: np.ndarray) -> np.ndarray:
    return np.array([t.TransformPoint(tuple(map(float, p))) for p in pts])


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum() + b.sum())
    return 2.0 * float((a & b).sum()) / s if s else float("nan")


def evaluate_visit(study: Path, visit: str, truth: dict) -> dict:
    mr = load_image(study / visit, role="t2fs")
    pet = load_image(study / visit, role="pet")
    ct = load_image(study / visit, role="ct")
    suv = compute_suv(pet).image
    lab = read_nifti(study / "truth" / visit / "labels_mr.nii.gz")
    tl = sitk.GetArrayFromImage(read_nifti(study / "truth" / visit / "labels_pet.nii.gz"))
    m_true = np.asarray(truth["transforms"][VISIT_KEY[visit]]["matrix"], float)  # MR -> CT
    t0 = time.perf_counter()
    lp, reg = labels_to_pet(lab, mr.image, suv, ct_image=ct.image, same_frame=False)
    seconds = time.perf_counter() - t0
    # Residual MR -> MR: x -> T_est(M x), at every labelled MR voxel (subsampled).
    lab_arr = sitk.GetArrayFromImage(lab)
    pts = _lps_points(lab, lab_arr > 0)[::50]
    ct_pts = pts @ m_true[:3, :3].T + m_true[:3, 3]
    back = _affine_of(reg.transform, ct_pts)
    err = np.linalg.norm(back - pts, axis=1)
    centre = pts.mean(axis=0)
    # Rotation of the residual: least-squares linear fit of back vs pts, polar decomposition.
    a = np.c_[pts - centre, np.ones(len(pts))]
    lin = np.linalg.lstsq(a, back - centre, rcond=None)[0][:3].T
    u, _, vt = np.linalg.svd(lin)
    rot = u @ vt
    angle = float(np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1))))
    dt = float(np.linalg.norm(back.mean(axis=0) - centre))
    # Reference: labels mapped through the TRUE transform (CT point -> MR point = M^-1).
    inv = np.linalg.inv(m_true)
    t_true = sitk.AffineTransform(3)
    t_true.SetMatrix(inv[:3, :3].ravel().tolist())
    t_true.SetTranslation(inv[:3, 3].tolist())
    lp_ref = sitk.GetArrayFromImage(resample_labels_majority(lab, suv, t_true))
    # The true PET-grid labels cover the whole muscle in the PET/CT field of view; the MR
    # sees only its slab. The fair target for a registration is the true labels inside
    # the MR field of view (mapped through the true transform).
    ones = sitk.Image(lab.GetSize(), sitk.sitkFloat32) + 1.0
    ones.CopyInformation(lab)
    fov = sitk.GetArrayFromImage(sitk.Resample(ones, suv, t_true, sitk.sitkLinear, 0.0)) > 0.5
    a_suv = sitk.GetArrayFromImage(suv)
    lab_pet = sitk.GetArrayFromImage(lp)
    heads = {}
    for m in QUADRICEPS:
        tru = truth["visits"][visit]["muscles"][m.name]["suv_mean_pet_truth_labels"]
        heads[m.name] = dict(
            dice=_dice(lab_pet == m.id, tl == m.id),
            err=100 * (float(a_suv[lab_pet == m.id].mean()) / tru - 1),
            dice_ref=_dice(lp_ref == m.id, tl == m.id),
            err_ref=100 * (float(a_suv[lp_ref == m.id].mean()) / tru - 1),
            err_fov=100 * (float(a_suv[lab_pet == m.id].mean())
                           / float(a_suv[(tl == m.id) & fov].mean()) - 1),
        )  # fmt: skip
    return dict(
        dt=dt, drot=angle, tre_mean=float(err.mean()), tre_max=float(err.max()),
        quality=reg.quality, ok=reg.ok, seconds=seconds, heads=heads, messages=reg.messages,
    )  # fmt: skip


DEFAULT_STUDIES = (
    [(s, "standard") for s in (1, 2, 3)]
    + [(4, v) for v in ("philips_cnts", "midnight", "oblique", "thin")]
)


def main(argv: list[str]) -> int:
    if argv:
        return _run([Path(a) for a in argv])
    import tempfile

    from myoimg.phantom import generate_study

    with tempfile.TemporaryDirectory() as tmp:
        studies = [
            Path(generate_study(Path(tmp) / f"{v}_seed{s}", seed=s, variant=v))
            for s, v in DEFAULT_STUDIES
        ]
        return _run(studies)


def _run(studies: list[Path]) -> int:
    worst_err = worst_fov = 0.0
    for study in studies:
        truth = json.loads((study / "truth" / "truth.json").read_text())
        for visit in ("baseline", "followup"):
            r = evaluate_visit(study, visit, truth)
            q = r["quality"]
            print(
                f"{study.name:>20s} {visit:8s} dt {r['dt']:5.2f} mm  drot {r['drot']:4.2f} deg  "
                f"TRE {r['tre_mean']:5.2f}/{r['tre_max']:5.2f} mm  thigh {q['dice']:.3f}  "
                f"femur {q['femur_dice']:.3f}  struct.gain {q['structure_gain']:+.3f}  "
                f"ok {r['ok']}  "
                f"{r['seconds']:.1f} s"
            )
            for name, h in r["heads"].items():
                print(
                    f"{'':>30s}{name:6s} dice {h['dice']:.2f} (ref {h['dice_ref']:.2f})  "
                    f"SUVmean err {h['err']:+6.1f}% (ref {h['err_ref']:+5.1f}%)  "
                    f"vs true labels in MR FOV {h['err_fov']:+5.1f}%"
                )
                worst_err = max(worst_err, abs(h["err"]))
                worst_fov = max(worst_fov, abs(h["err_fov"]))
            for msg in r["messages"]:
                print(f"{'':>30s}note: {msg}")
            sys.stdout.flush()
    print(f"worst |SUVmean error| over all heads: {worst_err:.1f}% vs truth.json values, "
          f"{worst_fov:.1f}% vs true labels within the MR field of view")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
