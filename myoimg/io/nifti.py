"""NIfTI read/write. The only place where LPS (memory) and RAS (NIfTI file) meet.

In memory every image is in DICOM LPS patient space (+x toward the patient's Left,
+y Posterior, +z Superior); NIfTI affines are RAS (+x Right, +y Anterior,
+z Superior), so RAS x = -LPS x and RAS y = -LPS y. :func:`lps_to_ras_affine` and
its inverse :func:`ras_to_lps_affine` are the single conversion point. NumPy
arrays from SimpleITK are (k, j, i); nibabel arrays are (i, j, k).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from myoimg.errors import MyoimgError
from myoimg.io.atomic import atomic_path
from myoimg.io.volume import index_to_lps_affine

__all__ = ["lps_to_ras_affine", "ras_to_lps_affine", "read_nifti", "write_nifti", "is_nifti"]

_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])  # LPS <-> RAS (its own inverse)


def lps_to_ras_affine(affine: np.ndarray) -> np.ndarray:
    """4x4 voxel->LPS affine to the voxel->RAS affine stored in NIfTI files."""
    return _FLIP @ np.asarray(affine, dtype=float)


def ras_to_lps_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of :func:`lps_to_ras_affine` (the flip is its own inverse)."""
    return _FLIP @ np.asarray(affine, dtype=float)


def is_nifti(path: str | Path) -> bool:
    """True for a ``.nii`` or ``.nii.gz`` file name."""
    name = str(path).lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def _orthonormal(m: np.ndarray, tol: float = 1e-4) -> bool:
    spacing = np.linalg.norm(m, axis=0)
    if np.any(spacing <= 0):
        return False
    d = m / spacing
    return bool(np.allclose(d.T @ d, np.eye(3), atol=tol))


def _best_affine(img: nib.Nifti1Image, path: Path) -> np.ndarray:
    """sform if set and free of shear, else qform, else nibabel's default (RAS)."""
    hdr = img.header
    candidates = []
    sform, scode = hdr.get_sform(coded=True)
    qform, qcode = hdr.get_qform(coded=True)
    if scode:
        candidates.append(sform)
    if qcode:
        candidates.append(qform)
    candidates.append(img.affine)
    for affine in candidates:
        if affine is not None and _orthonormal(np.asarray(affine)[:3, :3]):
            return np.asarray(affine, dtype=float)
    raise MyoimgError(f"NIfTI file {path.name} has a sheared or singular affine (sform/qform)")


def read_nifti(path: str | Path) -> sitk.Image:
    """Read a 3-D NIfTI file as a SimpleITK image in LPS.

    The affine is the sform when its code is non-zero and it has no shear, else the
    qform; it is converted RAS -> LPS. Integer data (labels) keep their type; data
    with a scale factor or float data become float32. Trailing singleton
    dimensions (x, y, z, 1) are dropped.

    Raises
    ------
    MyoimgError
        Unreadable file, or not 3-D.
    """
    path = Path(path)
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises several types for bad files
        raise MyoimgError(f"cannot read NIfTI file {path.name}: {exc}") from exc
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise MyoimgError(
            f"NIfTI file {path.name} has shape {data.shape}; a 3-D volume is required"
        )
    if data.dtype.kind == "f" or data.dtype == np.float64:
        data = data.astype(np.float32, copy=False)
    elif data.dtype == np.int64 or data.dtype == np.uint64:
        data = data.astype(np.int32)
    affine = ras_to_lps_affine(_best_affine(img, path))
    m = affine[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    direction = m / spacing
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
    image.SetSpacing(tuple(float(v) for v in spacing))
    image.SetOrigin(tuple(float(v) for v in affine[:3, 3]))
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    return image


def _default_dtype(array: np.ndarray) -> np.dtype:
    if array.dtype.kind == "f":
        return np.dtype(np.float32)
    if array.dtype.kind == "b":
        return np.dtype(np.uint8)
    lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
    if lo >= 0 and hi <= 255:
        return np.dtype(np.uint8)
    if lo >= -32768 and hi <= 32767:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


def write_nifti(image: sitk.Image, path: str | Path, *, dtype=None) -> Path:
    """Write a 3-D SimpleITK image (LPS) to a NIfTI file (RAS), atomically.

    Parameters
    ----------
    image : SimpleITK.Image
        Scalar 3-D image.
    path : path
        ``.nii`` or ``.nii.gz``.
    dtype : numpy dtype, optional
        Stored type. Default: float32 for float images; uint8 for integer images
        with values in 0-255 (label maps), else int16 (or int32 if needed).

    Returns
    -------
    Path
        ``path``. qform and sform are both the RAS affine with code 1 (scanner).
    """
    path = Path(path)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise MyoimgError("write_nifti needs a scalar 3-D image")
    array = sitk.GetArrayViewFromImage(image)
    out_dtype = np.dtype(dtype) if dtype is not None else _default_dtype(array)
    data = np.transpose(array, (2, 1, 0)).astype(out_dtype)
    ras = lps_to_ras_affine(index_to_lps_affine(image))
    nii = nib.Nifti1Image(data, ras)
    nii.header.set_data_dtype(out_dtype)
    nii.set_qform(ras, code=1)
    nii.set_sform(ras, code=1)
    nii.header.set_xyzt_units("mm", "sec")
    with atomic_path(path) as tmp:
        nib.save(nii, str(tmp))
    return path
