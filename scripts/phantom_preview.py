"""Render mid slices of a generated digital reference study with truth outlines (PNG).

Usage: python scripts/phantom_preview.py STUDY_DIR [VISIT] [OUT_PNG]
Reads the DICOM back with pydicom/SimpleITK (as a user would) and overlays the truth
NIfTI label maps, to check anatomy, contrast and alignment by eye.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import matplotlib
import nibabel as nib
import numpy as np
import pydicom
import SimpleITK as sitk

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _series(folder: Path) -> dict:
    out = defaultdict(list)
    for f in folder.iterdir():
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out[(ds.Modality, str(ds.SeriesDescription))].append(f)
    return out


def _load(files: list[Path]) -> sitk.Image:
    ds = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    iop = np.array(ds[0].ImageOrientationPatient, float)
    n = np.cross(iop[:3], iop[3:])
    pos = [float(n @ np.array(d.ImagePositionPatient, float)) for d in ds]
    r = sitk.ImageSeriesReader()
    r.SetFileNames([str(f) for _, f in sorted(zip(pos, files, strict=True))])
    return r.Execute()


def _truth(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj).transpose(2, 1, 0)


def main(argv: list[str]) -> None:
    root = Path(argv[0])
    visit = argv[1] if len(argv) > 1 else "baseline"
    out = argv[2] if len(argv) > 2 else f"/tmp/phantom_preview_{visit}.png"
    ser = _series(root / visit)
    pick = {m: next(k for k in ser if k[0] == m[0] and m[1] in k[1]) for m in
            [("MR", "t2_tirm"), ("MR", "t1_tse"), ("PT", "PET"), ("CT", "CT")]}  # fmt: skip
    t2 = sitk.GetArrayFromImage(_load(ser[pick[("MR", "t2_tirm")]]))
    t1 = sitk.GetArrayFromImage(_load(ser[pick[("MR", "t1_tse")]]))
    pt = sitk.GetArrayFromImage(_load(ser[pick[("PT", "PET")]]))
    ct = sitk.GetArrayFromImage(_load(ser[pick[("CT", "CT")]]))
    lab = _truth(root / "truth" / visit / "labels_mr.nii.gz")
    oed = _truth(root / "truth" / visit / "oedema_mr.nii.gz")
    labp = _truth(root / "truth" / visit / "labels_pet.nii.gz")
    k, kp = t2.shape[0] // 2, pt.shape[0] // 2
    fig, ax = plt.subplots(2, 3, figsize=(21, 11))
    vmax = np.percentile(t2[k], 99.5)
    ax[0, 0].imshow(t2[k], cmap="gray", vmax=vmax)
    ax[0, 0].contour(lab[k], levels=np.arange(0.5, 19), colors="y", linewidths=0.5)
    ax[0, 0].contour(oed[k], levels=[0.5], colors="r", linewidths=0.6)
    ax[0, 0].set_title("T2-FS + truth labels (yellow) and oedema (red)")
    ax[0, 1].imshow(t2[k], cmap="gray", vmax=vmax)
    ax[0, 1].set_title("T2-FS")
    ax[0, 2].imshow(t1[min(k, t1.shape[0] - 1)], cmap="gray")
    ax[0, 2].set_title("T1 TSE")
    ax[1, 0].imshow(pt[kp], cmap="hot")
    ax[1, 0].contour(labp[kp], levels=np.arange(0.5, 19), colors="c", linewidths=0.5)
    ax[1, 0].set_title("PET (Bq/mL or CNTS) + truth labels")
    ax[1, 1].imshow(ct[ct.shape[0] // 2], cmap="gray", vmin=-200, vmax=300)
    ax[1, 1].set_title("CT (HU)")
    ax[1, 2].imshow(lab[k], cmap="tab20", interpolation="nearest")
    ax[1, 2].set_title("truth labels (MR grid)")
    fig.tight_layout()
    fig.savefig(out, dpi=45)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1:])
