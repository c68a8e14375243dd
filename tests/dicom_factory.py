"""Synthetic DICOM series for tests (single-frame CT, MR and PET files).

Usage::

    from dicom_factory import write_series
    s = write_series(tmp_path / "t2", modality="MR", n_slices=6, description="t2_tirm_tra")
    s.files      # paths in true spatial order (ascending along the slice normal)
    s.values     # (n, rows, cols) float64 expected voxel values after rescale
    s.origin     # LPS position (mm) of the first voxel of the first slice

Files get random names (no extension) and shuffled InstanceNumbers, so a loader that
sorts by name or instance number fails. Geometry: ``iop`` is DICOM
ImageOrientationPatient (row cosine, column cosine), slices are stacked along their
cross product (the normal) at ``slice_spacing`` mm from ``origin``, unless explicit
``positions`` are given. Everything is in DICOM LPS patient space, mm.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    generate_uid,
)

__all__ = ["FactorySeries", "write_series"]

_SOP_CLASS = {
    "MR": MRImageStorage,
    "CT": CTImageStorage,
    "PT": PositronEmissionTomographyImageStorage,
}


@dataclass
class FactorySeries:
    """What :func:`write_series` wrote. Arrays are (slice, row, column) in spatial order."""

    files: list[Path]
    stored: np.ndarray  # stored integer pixel values
    slopes: np.ndarray  # (n,)
    intercepts: np.ndarray  # (n,)
    positions: np.ndarray  # (n, 3) ImagePositionPatient, LPS mm
    iop: tuple[float, ...]
    pixel_spacing: tuple[float, float]  # DICOM order: (row spacing, column spacing)
    series_uid: str

    @property
    def values(self) -> np.ndarray:
        """Expected voxel values after RescaleSlope/Intercept, float64."""
        return self.stored * self.slopes[:, None, None] + self.intercepts[:, None, None]

    @property
    def origin(self) -> np.ndarray:
        return self.positions[0]

    @property
    def normal(self) -> np.ndarray:
        row, col = np.asarray(self.iop[:3]), np.asarray(self.iop[3:])
        return np.cross(row, col)


def write_series(
    folder: str | Path,
    *,
    modality: str = "MR",
    n_slices: int = 5,
    rows: int = 12,
    cols: int = 10,
    iop: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    origin: tuple[float, float, float] = (-60.0, -40.0, 100.0),
    pixel_spacing: tuple[float, float] = (0.8, 0.7),
    slice_spacing: float = 5.0,
    positions: np.ndarray | None = None,
    stored: np.ndarray | None = None,
    slopes: np.ndarray | float | None = None,
    intercepts: np.ndarray | float | None = None,
    description: str = "t2_tirm_tra",
    protocol: str | None = None,
    series_number: int = 3,
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M", "ND"),
    extra: dict[str, Any] | None = None,
    per_slice: list[dict[str, Any]] | None = None,
    seed: int = 0,
    random_names: bool = True,
) -> FactorySeries:
    """Write a single-frame series; see the module docstring.

    Parameters
    ----------
    modality : {"MR", "CT", "PT"}
        CT defaults to intercept -1024 (HU), PT to random per-slice slopes.
    positions : (n, 3) array, optional
        Explicit ImagePositionPatient per slice (overrides origin/slice_spacing).
    stored : (n, rows, cols) integer array, optional
        Stored pixel values (default: a deterministic ramp + slice offset).
    extra : dict, optional
        Keyword -> value set on every file (e.g. ``{"ScanningSequence": "IR"}``).
    per_slice : list of dict, optional
        Keyword -> value set on slice k only (a value of None deletes the attribute);
        may be shorter than the series.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    iop = tuple(float(v) for v in iop)
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:])
    normal = np.cross(row, col)
    if positions is None:
        positions = (
            np.asarray(origin, float) + np.arange(n_slices)[:, None] * slice_spacing * normal
        )
    positions = np.asarray(positions, dtype=float)
    n_slices = len(positions)
    signed = modality in ("CT", "PT")
    if stored is None:
        k, j, i = np.mgrid[0:n_slices, 0:rows, 0:cols]
        stored = 7 * i + 3 * j + 100 * k + (0 if signed else 10)
        if signed:
            stored = stored - 50
    stored = np.asarray(stored).astype(np.int16 if signed else np.uint16)
    if slopes is None:
        slopes = rng.uniform(0.5, 4.0, n_slices) if modality == "PT" else 1.0
    if intercepts is None:
        intercepts = -1024.0 if modality == "CT" else 0.0
    slopes = np.broadcast_to(np.asarray(slopes, float), (n_slices,)).copy()
    intercepts = np.broadcast_to(np.asarray(intercepts, float), (n_slices,)).copy()
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    frame_of_reference_uid = frame_of_reference_uid or generate_uid()
    instance_numbers = rng.permutation(n_slices) + 1
    files = []
    for s in range(n_slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = _SOP_CLASS[modality]
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = modality
        ds.ImageType = list(image_type)
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = "20260102"
        ds.StudyTime = ds.SeriesTime = "101500"
        ds.AcquisitionTime = f"1016{s % 60:02d}"
        ds.PatientName = "Phantom^Test"
        ds.PatientID = "PHANTOM01"
        ds.SeriesDescription = description
        ds.ProtocolName = protocol if protocol is not None else description
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.SeriesNumber = series_number
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = int(instance_numbers[s])
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in positions[s]]
        ds.PixelSpacing = [f"{v:.4f}" for v in pixel_spacing]
        ds.SliceThickness = f"{slice_spacing:.3f}"
        ds.SliceLocation = f"{float(positions[s] @ normal):.4f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if signed else 0
        ds.RescaleSlope = f"{slopes[s]:.10g}"
        ds.RescaleIntercept = f"{intercepts[s]:.10g}"
        if modality == "PT":
            ds.Units = "BQML"
        if modality == "CT":
            ds.RescaleType = "HU"
        for key, value in (extra or {}).items():
            setattr(ds, key, value)
        for key, value in (per_slice[s] if per_slice and s < len(per_slice) else {}).items():
            if value is None:
                if key in ds:
                    delattr(ds, key)
            else:
                setattr(ds, key, value)
        ds.PixelData = np.ascontiguousarray(stored[s]).tobytes()
        name = uuid.UUID(int=int(rng.integers(0, 2**63))).hex if random_names else f"{s:04d}.dcm"
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    # Re-read the values exactly as written (DS strings are rounded).
    slopes = np.array([float(f"{v:.10g}") for v in slopes])
    intercepts = np.array([float(f"{v:.10g}") for v in intercepts])
    positions = np.array([[float(f"{v:.4f}") for v in p] for p in positions])
    return FactorySeries(
        files=files,
        stored=stored.astype(np.float64),
        slopes=slopes,
        intercepts=intercepts,
        positions=positions,
        iop=tuple(float(f"{v:.6f}") for v in iop),
        pixel_spacing=(float(f"{pixel_spacing[0]:.4f}"), float(f"{pixel_spacing[1]:.4f}")),
        series_uid=series_uid,
    )
