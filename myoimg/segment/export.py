"""Export a myoimg label map as a DICOM Segmentation (SEG) referencing its source series.

The label map and the source headers must describe the same grid: ``labels`` slice k
(SimpleITK index k, NumPy axis 0) is the image of ``source_headers[k]``. One binary
segment is written per label present, numbered 1..n in increasing label id, with the label
table's full name as SegmentLabel and the short name ("R_VL") as TrackingID, so that
:func:`myoimg.segment.masks.import_labels` reads it back with ``mapping=None``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from .. import __version__ as _version
from ..errors import MyoimgError, OutputExistsError
from ..io.atomic import atomic_path
from ..labels import BY_ID

__all__ = ["write_seg"]


def _check_grid(labels: sitk.Image, headers: Sequence[pydicom.Dataset]) -> None:
    size = labels.GetSize()
    if len(headers) != size[2]:
        raise MyoimgError(
            f"label map has {size[2]} slices but {len(headers)} source headers were given"
        )
    first = headers[0]
    if (int(first.Rows), int(first.Columns)) != (size[1], size[0]):
        raise MyoimgError(
            f"label map is {size[0]}x{size[1]} (columns x rows) but the source images are "
            f"{first.Columns}x{first.Rows}"
        )
    origin = np.asarray(labels.GetOrigin())
    ipp = np.asarray([float(v) for v in first.ImagePositionPatient])
    if not np.allclose(origin, ipp, atol=1e-2):
        raise MyoimgError(
            f"label map origin {origin.round(2).tolist()} mm differs from the first source "
            f"slice position {ipp.round(2).tolist()} mm (LPS): not the same grid"
        )


# Type 2 attributes highdicom copies from the source (empty is valid; absent is not).
_TYPE2 = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber",
)  # fmt: skip


def _complete(headers: Sequence[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """Copies with missing Type 2 patient/study attributes present but empty.

    Anonymised series often drop them; the caller's datasets are not modified.
    """
    out = []
    for ds in headers:
        missing = [kw for kw in _TYPE2 if kw not in ds]
        if missing:
            ds = copy.deepcopy(ds)  # header-only: small; shallow copies share elements
            for kw in missing:
                setattr(ds, kw, "")
        out.append(ds)
    return out


# Patient-module attributes that identify a person (PS3.15 Table E.1-1 basic profile).
_IDENTIFYING = ("PatientBirthDate", "PatientBirthTime", "OtherPatientIDs", "OtherPatientNames",
                "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName",
                "ReferringPhysicianName", "AccessionNumber", "InstitutionName")


def _pseudonymised(ds: pydicom.Dataset, patient_id: str) -> pydicom.Dataset:
    out = copy.deepcopy(ds)
    out.PatientName = f"{patient_id}^"  # PN: the pseudonym as family name (PS3.5 6.2)
    out.PatientID = patient_id
    for kw in _IDENTIFYING:
        if kw in out:
            setattr(out, kw, "")
    return out


def write_seg(
    labels: sitk.Image,
    source_headers: Sequence[pydicom.Dataset],
    path: str | Path,
    *,
    series_description: str = "myoimg quadriceps",
    algorithm_type: str = "AUTOMATIC",
    overwrite: bool = False,
    patient_id: str | None = None,
) -> Path:
    """Write ``labels`` as a DICOM SEG (binary segments) referencing ``source_headers``.

    Parameters
    ----------
    labels : SimpleITK.Image
        Integer label map with myoimg ids, on the grid of the source series.
    source_headers : sequence of pydicom.Dataset
        Header-only datasets of the source series, in slice order (index k of ``labels``).
    path : path
        Output file; written atomically (temporary file, then rename).
    series_description : str
        SeriesDescription of the new SEG series.
    algorithm_type : {"AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"}
        SegmentAlgorithmType of every segment.
    overwrite : bool
        Replace an existing file (otherwise :class:`OutputExistsError`).
    patient_id : str, optional
        A pseudonym for the SEG's patient module (``--anonymize``): PatientName and
        PatientID become it and the other identifying patient attributes are emptied
        (highdicom copies the patient module from the source images otherwise). The
        referenced study/series UIDs stay, as the SEG must point at its source series.

    Returns
    -------
    Path
        The written file.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output exists: {path} (pass overwrite=True to replace it)")
    headers = _complete(source_headers)
    if not headers:
        raise MyoimgError("write_seg needs the source series headers")
    if patient_id is not None:
        headers = [_pseudonymised(ds, patient_id) for ds in headers]
    _check_grid(labels, headers)
    arr = sitk.GetArrayViewFromImage(labels)  # (k, j, i) = frames, rows, cols
    if arr.dtype.kind not in "ui":
        arr = arr.astype(np.int64)
    present = [int(v) for v in np.unique(arr) if v != 0]
    unknown = [v for v in present if v not in BY_ID]
    if unknown:
        raise MyoimgError(f"label map holds ids that are not in the label table: {unknown}")
    if not present:
        raise MyoimgError("label map is empty: nothing to export as DICOM SEG")
    algo_type = hd.seg.SegmentAlgorithmTypeValues[algorithm_type.upper()]
    algo_id = None
    if algo_type != hd.seg.SegmentAlgorithmTypeValues.MANUAL:
        algo_id = hd.AlgorithmIdentificationSequence(
            name="myoimg", family=codes.cid7162.ArtificialIntelligence, version=_version
        )
    descriptions = []
    # Label id -> segment number by table lookup (one pass, not one per label); every
    # id is a known one (checked above), so none is negative.
    numbers = np.zeros(max(present) + 1, dtype=np.uint8)
    for number, label in enumerate(present, start=1):
        muscle = BY_ID[label]
        numbers[label] = number
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=muscle.full_name,
                segmented_property_category=codes.SCT.Tissue,
                segmented_property_type=codes.SCT.SkeletalMuscle,
                algorithm_type=algo_type,
                algorithm_identification=algo_id,
                tracking_uid=hd.UID(),
                tracking_id=muscle.name,
                display_color=hd.color.CIELabColor.from_rgb(*muscle.colour),
            )
        )
    seg = hd.seg.Segmentation(
        source_images=headers,
        pixel_array=numbers[arr],  # label-style array: value n = segment n
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=int(getattr(headers[0], "SeriesNumber", 0) or 0) + 900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="myoimg",
        manufacturer_model_name="myoimg",
        software_versions=_version,
        device_serial_number="0",
        series_description=series_description,
    )
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    return path
