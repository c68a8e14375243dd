"""A small synthetic OUT folder (results.json + NIfTI volumes) for the report tests.

Geometry (LPS, arrays [k, j, i]): MRI 64 x 48 x 10 voxels of 4 x 4 x 8 mm, PET 24 x 20 x 8
voxels of 11 x 10 x 10 mm covering the same field of view. Patient right thigh at low i
(-x), left thigh mirrored. The follow-up MRI is stored with its x axis reversed
(direction -1) to check that the report re-orients volumes before display.

The metric values in results.json are computed here from the volumes with plain NumPy,
so the tests compare the report with numbers known independently of myoimg.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from myoimg.quantify.pet import PET_METRICS

MR_SIZE = (64, 48, 10)  # (i, j, k)
MR_SPACING = (4.0, 4.0, 8.0)
MR_ORIGIN = (-126.0, -94.0, -36.0)
PET_SIZE = (24, 20, 8)
PET_SPACING = (11.0, 10.0, 10.0)
PET_ORIGIN = (-126.5, -95.0, -35.0)

# Right-thigh blocks as (i0, i1, j0, j1) inclusive; the left thigh is the mirror i -> 63 - i.
RIGHT_BLOCKS = {
    "VL": (4, 11, 14, 29),
    "RF": (14, 21, 6, 13),
    "VI": (14, 21, 16, 25),
    "VM": (22, 28, 18, 29),
    "HAM": (8, 26, 32, 41),
}
IDS = {("R", "VL"): 1, ("R", "VM"): 2, ("R", "VI"): 3, ("R", "RF"): 4,
       ("L", "VL"): 5, ("L", "VM"): 6, ("L", "VI"): 7, ("L", "RF"): 8,
       ("R", "HAM"): 14, ("L", "HAM"): 18}  # fmt: skip
QUAD = ["R_VL", "R_VM", "R_VI", "R_RF", "L_VL", "L_VM", "L_VI", "L_RF"]
R_VL_PEAK_SLICE = 6  # R_VL is widened on this slice only: its largest-area slice
REF_SD = 0.08
THRESHOLD = 1.16
DISCLAIMER = (
    "Imaging response criteria for myositis are not validated; these numbers support, "
    "never replace, clinical judgement."
)


def _blocks(ni: int, i0: int, i1: int) -> tuple[int, int]:
    return ni - 1 - i1, ni - 1 - i0


def mr_arrays(visit: str) -> dict[str, np.ndarray]:
    """labels, body, femur, t2fs (physical), t2fs_norm, oedema on the MRI grid, [k, j, i]."""
    ni, nj, nk = MR_SIZE
    labels = np.zeros((nk, nj, ni), np.uint8)
    body = np.zeros_like(labels, dtype=bool)
    femur = np.zeros_like(body)
    for k in range(1, nk - 1):
        trim = 2 if k in (1, nk - 2) else 0  # thinner muscles at both ends
        for side in ("R", "L"):

            def box(i0, i1, j0, j1, side=side):
                if side == "L":
                    i0, i1 = _blocks(ni, i0, i1)
                return slice(j0, j1 + 1), slice(i0, i1 + 1)

            body[(k, *box(2, 30, 4, 44))] = True
            for group, (i0, i1, j0, j1) in RIGHT_BLOCKS.items():
                if group == "VL" and k == R_VL_PEAK_SLICE:
                    i0 = 2  # wider only here
                labels[(k, *box(i0, i1, j0, j1 - trim))] = IDS[(side, group)]
            femur[(k, *box(16, 19, 26, 29))] = True
    t2 = np.where(body, 60.0, 0.0)
    t2[labels > 0] = 300.0
    t2[femur] = 20.0
    rvl = labels == 1
    lrf = labels == 8
    oed = np.zeros_like(body)
    jj = np.arange(nj)[None, :, None]
    kk = np.arange(nk)[:, None, None]
    if visit == "baseline":
        oed |= rvl & (jj <= 21) & (kk >= 3) & (kk <= 7)
        oed |= lrf & (jj <= 9)
    else:
        oed |= rvl & (jj <= 17) & (kk >= 4) & (kk <= 5)
    t2[oed] = 450.0
    raw_ref = 300.0 if visit == "baseline" else 330.0  # other receiver gain at follow-up
    t2 = t2 * (raw_ref / 300.0)
    norm = t2 / raw_ref
    oedema = ((labels > 0) & (norm > THRESHOLD)).astype(np.uint8)
    return {
        "labels": labels,
        "body": body,
        "femur": femur,
        "t2fs": t2.astype(np.float32),
        "t2fs_norm": norm.astype(np.float32),
        "oedema": oedema,
        "raw_ref": np.float64(raw_ref),
    }


def _mr_image(arr: np.ndarray, flip_x: bool) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(MR_SPACING)
    img.SetOrigin(MR_ORIGIN)
    if flip_x:  # same physical content, stored with i toward patient right
        img = sitk.Flip(img, [True, False, False], False)
    return img


def _pet_ref() -> sitk.Image:
    ref = sitk.Image(PET_SIZE, sitk.sitkFloat32)
    ref.SetSpacing(PET_SPACING)
    ref.SetOrigin(PET_ORIGIN)
    return ref


def _to_pet(arr: np.ndarray) -> np.ndarray:
    img = _mr_image(arr, False)
    res = sitk.Resample(img, _pet_ref(), sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(res)


def pet_arrays(visit: str, mr: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    labels = _to_pet(mr["labels"]).astype(np.uint8)
    body = _to_pet(mr["body"].astype(np.uint8)) > 0
    femur = _to_pet(mr["femur"].astype(np.uint8)) > 0
    suv = np.where(body, 0.8, 0.05)
    suv[labels > 0] = 1.0
    suv[labels == 1] = 3.0 if visit == "baseline" else 1.5
    suv[labels == 8] = 2.0 if visit == "baseline" else 1.0
    suv[labels == 6] = 1.0 if visit == "baseline" else 1.5  # L_VM worse at follow-up
    ct = np.where(body, -100.0, -1000.0)
    ct[labels > 0] = 50.0
    ct[femur] = 700.0
    return {"labels": labels, "suv": suv.astype(np.float32), "ct": ct.astype(np.float32)}


def _muscle_metrics(mr: dict, pet: dict | None) -> dict[str, dict]:
    vox_mr = np.prod(MR_SPACING) / 1000.0
    vox_pet = np.prod(PET_SPACING) / 1000.0
    out = {}
    for (side, group), lid in IDS.items():
        mask = mr["labels"] == lid
        n = int(mask.sum())
        norm = mr["t2fs_norm"][mask].astype(np.float64)
        frac = float(mr["oedema"][mask].mean())
        m = {
            "volume_ml": n * vox_mr,
            "oedema_fraction": frac,
            "oedema_volume_ml": frac * n * vox_mr,
            "t2fs_norm_mean": float(norm.mean()),
            "t2fs_norm_median": float(np.median(norm)),
            "t2fs_z": (float(norm.mean()) - 1.0) / REF_SD,
        }
        if pet is not None and (pet["labels"] == lid).any():
            s = pet["suv"][pet["labels"] == lid].astype(np.float64)
            avid = float((s > 1.5).sum() * vox_pet)
            m.update(
                suv_mean=float(s.mean()),
                suv_sd=float(s.std()),
                suv_median=float(np.median(s)),
                suv_max=float(s.max()),
                suv_peak=float(s.max()) * 0.9,
                avid_volume_ml=avid,
                tla=float(s.mean()) * avid,
                tbr=float(s.mean()) / 0.9,
            )
        else:
            m.update(dict.fromkeys(PET_METRICS))
        out[f"{side}_{group}"] = m
    out["L_VI"]["t2fs_z"] = None  # a null value must print as n/a
    return out


def _verdict(metric: str, b: float | None, f: float | None):
    if b is None or f is None:
        return None, None, "not measurable"
    d = f - b
    rel = d / b if b else None
    if metric == "oedema_fraction":
        v = "improved" if d <= -0.10 else "worse" if d >= 0.10 else "stable"
    elif metric in ("suv_mean", "suv_peak"):
        v = (
            "improved"
            if rel is not None and rel <= -0.2
            else ("worse" if rel is not None and rel >= 0.2 else "stable")
        )
    else:
        v = "stable"
    return d, rel, v


def make_out(
    root: Path,
    *,
    visits: tuple[str, ...] = ("baseline", "followup"),
    pet: tuple[str, ...] | None = None,
    ct: bool = True,
    patient_id: str = "PAT001",
) -> Path:
    """Write a synthetic OUT folder under ``root`` and return its path.

    visits : names of the visits; two visits make a compare folder (with "changes").
    pet : visits that have PET (default: all).
    ct : whether PET visits have a CT (else PET is fused on the MRI).
    """
    out = Path(root) / "OUT"
    out.mkdir(parents=True)
    pet = visits if pet is None else pet
    res_visits = {}
    dates = {"baseline": "2026-01-10", "followup": "2026-06-09"}
    for n, v in enumerate(visits):
        mr = mr_arrays("baseline" if n == 0 else "followup")
        has_pet = v in pet
        pa = pet_arrays("baseline" if n == 0 else "followup", mr) if has_pet else None
        d = out / v
        d.mkdir()
        flip = n == 1
        files = {}
        for key, arr in (
            ("t2fs", mr["t2fs"]),
            ("t2fs_norm", mr["t2fs_norm"]),
            ("labels_mr", mr["labels"]),
            ("oedema_mr", mr["oedema"]),
        ):
            sitk.WriteImage(_mr_image(arr, flip), str(d / f"{key}.nii.gz"))
            files[key] = f"{v}/{key}.nii.gz"
        if pa is not None:
            items = [("suv", pa["suv"]), ("labels_pet", pa["labels"])] + (
                [("ct_on_pet", pa["ct"])] if ct else []
            )
            for key, arr in items:
                img = sitk.GetImageFromArray(arr)
                img.SetSpacing(PET_SPACING)
                img.SetOrigin(PET_ORIGIN)
                sitk.WriteImage(img, str(d / f"{key}.nii.gz"))
                files[key] = f"{v}/{key}.nii.gz"
        for key in ("suv", "labels_pet", "ct_on_pet", "seg_mr"):
            files.setdefault(key, None)
        series = {
            "t2fs": {
                "series_uid": f"1.2.3.{n}.1",
                "description": "COR STIR thigh" if n else "AX T2 STIR FS",
                "series_number": 5,
                "modality": "MR",
            },
            "pet": {
                "series_uid": f"1.2.3.{n}.2",
                "description": "PET FAPI AC",
                "series_number": 3,
                "modality": "PT",
            }
            if has_pet
            else None,
            "ct": {
                "series_uid": f"1.2.3.{n}.3",
                "description": "CT low dose",
                "series_number": 2,
                "modality": "CT",
            }
            if has_pet and ct
            else None,
        }
        res_visits[v] = {
            "date": dates.get(v, "2026-03-01"),
            "source": f"/data/incoming/{v}",
            "series": series,
            "suv": {
                "kind": "bw",
                "factor": 1.23e-4 * (n + 1),
                "derivation": {
                    "weight_kg": 70.0,
                    "injected_activity_bq": 1.8e8,
                    "decay_corrected_to": "SeriesTime",
                    "half_life_s": 6586.2,
                },
            }
            if has_pet
            else None,
            "mri_reference": {
                "mean": 1.0,
                "sd": REF_SD,
                "method": "HAM+ADD median",
                "raw_value": float(mr["raw_ref"]),
            },
            "oedema_threshold_norm": THRESHOLD,
            "pet_reference": {"suv_mean": 0.9, "suv_sd": 0.2, "region": "hamstrings"}
            if has_pet
            else None,
            "registration": {
                "followup_to_baseline": {
                    "metric": "mattes_mi",
                    "final_value": -0.61,
                    "dice_labels": 0.93,
                }
                if n
                else None,
                "mr_to_pet": {"method": "rigid", "dice_body": 0.95} if has_pet else None,
            },
            "segmentation": {
                "method": "automatic" if n == 0 else "propagated",
                "contrast": "t2fs",
                "messages": [f"segmentation quality check passed ({v})"],
            },
            "warnings": [f"synthetic warning for {v}: PixelSpacing rounded"],
            "files": files,
            "muscles": _muscle_metrics(mr, pa),
        }
    results = {
        "myoimg_version": "0.1.0",
        "created": "2026-11-25T15:00:00+00:00",
        "disclaimer": DISCLAIMER,
        "parameters": {
            "oedema": {"threshold_sd": 2.0, "min_volume_ml": 0.5},
            "pet": {"avid_threshold": 1.5},
            "compare": {"oedema_delta": 0.10},
            "segmentation": {"method": "atlas"},
        },
        "patient": {"id": patient_id, "sex": "F", "anonymized": False},
        "visits": res_visits,
    }
    if len(visits) >= 2:
        results["days_between"] = 150
        changes = {}
        b, f = visits[0], visits[1]
        for m in QUAD:
            changes[m] = {}
            for metric in ("oedema_fraction", "suv_mean", "suv_peak", "volume_ml"):
                vb = res_visits[b]["muscles"][m][metric]
                vf = res_visits[f]["muscles"][m][metric]
                d, rel, verdict = _verdict(metric, vb, vf)
                changes[m][metric] = {
                    "baseline": vb,
                    "followup": vf,
                    "abs_change": d,
                    "rel_change": rel,
                    "verdict": verdict,
                }
        results["changes"] = changes
        results["verdict_rules"] = {
            "oedema_fraction": "improved if decrease >= 0.10, worsened if "
            "increase >= 0.10, else stable"
        }
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return out
