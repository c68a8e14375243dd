"""Write synthetic series as DICOM files the way scanners do.

Everything is deterministic: UIDs come from :func:`make_uid` (hash of the seed and a
role string), dates and times come from the study plan (never the clock), and file
names from a seeded generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from myoimg.io.atomic import atomic_path
from myoimg.phantom.geometry import Grid

__all__ = [
    "make_uid",
    "MR_STORAGE",
    "PET_STORAGE",
    "CT_STORAGE",
    "base_dataset",
    "set_geometry",
    "set_pixels",
    "write_files",
    "ds_number",
]

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def make_uid(seed: int, *parts: object) -> str:
    """Deterministic UID from the seed and a role, e.g. ("baseline", "t2fs", "series")."""
    return generate_uid(entropy_srcs=["myoimg-dro", str(int(seed)), *(str(p) for p in parts)])


def ds_number(x: float, digits: int = 6) -> str:
    """A DS string (<= 16 characters) for a float."""
    s = f"{x:.{digits}g}"
    while len(s) > 16:
        digits -= 1
        s = f"{x:.{digits}g}"
    return s


def base_dataset(sop_class: str, sop_instance: str, common: dict) -> Dataset:
    """Dataset with file meta, SOP identity and the given common attributes."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = "MYOIMG_DRO_1"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    for key, value in common.items():
        setattr(ds, key, value)
    return ds


def set_geometry(ds: Dataset, grid: Grid, k: int, *, spacing_tag: bool = True) -> None:
    """ImagePositionPatient/Orientation, PixelSpacing, thickness of slice k of a grid."""
    d = grid.dir
    pos = grid.slice_position(k)
    ds.ImagePositionPatient = [ds_number(float(v), 10) for v in pos]
    ds.ImageOrientationPatient = [ds_number(float(v), 10) for v in (*d[:, 0], *d[:, 1])]
    # PixelSpacing is (row spacing = between rows, column spacing = between columns)
    ds.PixelSpacing = [ds_number(grid.spacing[1], 8), ds_number(grid.spacing[0], 8)]
    ds.SliceThickness = ds_number(grid.thickness, 6)
    if spacing_tag:
        ds.SpacingBetweenSlices = ds_number(grid.spacing[2], 6)
    ds.SliceLocation = ds_number(float(pos @ d[:, 2]), 10)
    ds.Rows, ds.Columns = grid.shape[1], grid.shape[2]


def set_pixels(
    ds: Dataset,
    stored: np.ndarray,
    *,
    bits_stored: int,
    signed: bool,
    slope: float = 1.0,
    intercept: float = 0.0,
    rle: bool = False,
) -> None:
    """Attach a 2-D integer slice with its rescale; optionally RLE Lossless compress."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleIntercept = ds_number(intercept, 10)
    ds.RescaleSlope = ds_number(slope, 10)
    arr = np.ascontiguousarray(stored.astype("<i2" if signed else "<u2"))
    ds.Rows, ds.Columns = arr.shape
    if rle:
        ds.compress(RLELossless, arr, generate_instance_uid=False)
    else:
        ds.PixelData = arr.tobytes()


def write_files(folder: Path, datasets: Sequence[Dataset], rng: np.random.Generator) -> list[Path]:
    """Write datasets under random (seeded) names, some with '.dcm', none naming the patient."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    order = rng.permutation(len(datasets))
    for i in order:
        name = rng.bytes(16).hex() + (".dcm" if rng.random() < 0.4 else "")
        path = folder / name
        with atomic_path(path, suffix=".part") as tmp:
            datasets[i].save_as(tmp, enforce_file_format=True)
        paths.append(path)
    return paths


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def sequence(*items: Dataset) -> DicomSequence:
    return DicomSequence(list(items))
