"""Scan a folder of DICOM files (headers only) and group them into series/stacks.

A "series" here is one geometrically consistent stack: files sharing a
SeriesInstanceUID are split further when they differ in orientation, matrix size,
echo number or temporal position, and by AcquisitionNumber when the acquisitions
overlap in space (two stacks at the same positions). Geometry is DICOM LPS, mm.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.tag import Tag
from pydicom.uid import MediaStorageDirectoryStorage

from myoimg.errors import DicomInputError

__all__ = ["SeriesInfo", "ScanResult", "scan", "plane_from_iop"]

# Tags read by scan(): everything SeriesInfo and role selection need, nothing else.
_SCAN_KEYWORDS = [
    "SOPClassUID", "Modality", "ImageType", "StudyInstanceUID", "SeriesInstanceUID",
    "FrameOfReferenceUID", "SeriesDescription", "ProtocolName", "SeriesNumber",
    "AcquisitionNumber", "EchoNumbers", "TemporalPositionIdentifier", "Rows", "Columns",
    "PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient", "StudyDate",
    "SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime", "AcquisitionDateTime",
    "ScanningSequence", "ScanOptions", "SequenceName", "NumberOfFrames",
    "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence",
    "DirectoryRecordSequence",
]  # fmt: skip
# As Tag objects once: dcmread converts keywords for every file otherwise.
_SCAN_TAGS = [Tag(keyword) for keyword in _SCAN_KEYWORDS]

# Largest component of the slice normal above this -> that plane; else oblique (~30 deg).
_PLANE_COS = float(np.cos(np.deg2rad(30.0)))


@dataclass(frozen=True)
class SeriesInfo:
    """Header summary of one stack of images (one future :class:`Volume`).

    ``pixel_spacing`` is DICOM order (row spacing, column spacing) in mm;
    ``slice_spacing`` (mm) is the median distance between neighbouring slice
    positions along the normal (None for fewer than two positions) and ``slice_range``
    the first and last of those positions (mm along the normal of ImageOrientationPatient:
    the cross product of its row and column directions). ``index`` is
    the 1-based number shown by :func:`format_series_table`; ``stack`` numbers the
    stacks of one SeriesInstanceUID (0 if the UID holds one stack).
    """

    index: int
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    modality: str
    description: str
    protocol: str
    series_number: int | None
    n_instances: int
    plane: str
    rows: int
    columns: int
    pixel_spacing: tuple[float, float] | None
    slice_spacing: float | None
    study_date: str
    series_date: str
    series_time: str
    acquisition_date: str
    acquisition_time: str
    files: tuple[Path, ...]
    scanning_sequence: tuple[str, ...] = ()
    scan_options: tuple[str, ...] = ()
    sequence_name: str = ""
    image_type: tuple[str, ...] = ()
    sop_class_uid: str = ""
    number_of_frames: int = 1
    orientation: tuple[float, ...] | None = None
    stack: int = 0
    slice_range: tuple[float, float] | None = None

    @property
    def normal(self) -> np.ndarray | None:
        """Slice normal: cross product of ImageOrientationPatient's row and column
        directions (LPS, unit length for a valid IOP); None without an orientation."""
        return None if self.orientation is None else _slice_normal(self.orientation)

    @property
    def n_slices(self) -> int:
        """Number of 2-D images (frames of a multi-frame object, else files)."""
        return self.number_of_frames if self.n_instances == 1 else self.n_instances

    @property
    def is_localizer(self) -> bool:
        """ImageType LOCALIZER (PS3.3 C.8.16.1 value 3) or 1-3 images.

        A coronal or sagittal series is not a localizer by its plane alone: a 3-D
        acquisition may be the only volume of a study (selection prefers axial series,
        see :func:`myoimg.io.select.select_series`).
        """
        return "LOCALIZER" in self.image_type or self.n_slices <= 3


@dataclass(frozen=True)
class ScanResult:
    """Result of :func:`scan`: series sorted by study date then series number."""

    folder: Path
    series: list[SeriesInfo]
    n_files: int
    n_skipped: int
    #: Files with the DICOM signature whose header could not be parsed (truncated, corrupt).
    unreadable: tuple[Path, ...] = ()

    def unreadable_note(self) -> str | None:
        """One sentence naming the unreadable DICOM files, or None."""
        if not self.unreadable:
            return None
        names = ", ".join(p.name for p in self.unreadable[:5])
        more = f" and {len(self.unreadable) - 5} more" if len(self.unreadable) > 5 else ""
        return (f"{len(self.unreadable)} file(s) look like DICOM but could not be read "
                f"(truncated or corrupt): {names}{more}")


def _slice_normal(iop: Iterable[float]) -> np.ndarray:
    """Cross product of an ImageOrientationPatient's row and column directions."""
    v = np.asarray(list(iop), dtype=float)
    return np.cross(v[:3], v[3:])


def plane_from_iop(iop: Iterable[float] | None) -> str:
    """Plane name of an ImageOrientationPatient from its normal.

    LPS: normal along z -> "axial", along y -> "coronal", along x -> "sagittal";
    "oblique" when no axis is within ~30 degrees of the normal, "unknown" without IOP.
    """
    if iop is None:
        return "unknown"
    v = np.asarray(list(iop), dtype=float)
    if v.size != 6:
        return "unknown"
    normal = _slice_normal(v)
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        return "unknown"
    normal = np.abs(normal / norm)
    axis = int(np.argmax(normal))
    if normal[axis] < _PLANE_COS:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _multi(ds, keyword: str) -> tuple[str, ...]:
    value = ds.get(keyword)
    if value is None or value == "":
        return ()
    if isinstance(value, (str, bytes)):
        return tuple(s.strip().upper() for s in str(value).split("\\") if s.strip())
    return tuple(str(s).strip().upper() for s in value)


def _int_or_none(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _floats(value) -> tuple[float, ...] | None:
    try:
        return tuple(float(v) for v in value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _frame_attr(ds, group: str, keyword: str):
    """Attribute from the shared functional groups, else the first per-frame group."""
    for seq_name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(seq_name)
        if seq:
            grp = seq[0].get(group)
            if grp:
                value = grp[0].get(keyword)
                if value is not None:
                    return value
    return None


@dataclass
class _Header:
    path: Path
    key: tuple
    acq: int | None
    iop: tuple[float, ...] | None
    ipp: tuple[float, ...] | None
    ds: pydicom.Dataset


class _Unreadable(Exception):
    """A file with the DICOM Part 10 signature whose header cannot be parsed."""


def _has_dicom_signature(path: Path) -> bool:
    # PS3.10 7.1: 128-byte preamble followed by the four bytes "DICM".
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _is_dicomdir(ds: pydicom.Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    return str(getattr(meta, "MediaStorageSOPClassUID", "")) == MediaStorageDirectoryStorage


def _read_header(path: Path) -> pydicom.Dataset | None:
    """Header of a DICOM image file, or None for a non-DICOM file or a DICOMDIR.

    Raises :class:`_Unreadable` for a file that claims to be DICOM (Part 10
    signature) but cannot be parsed, e.g. a truncated copy: such files are reported,
    not silently counted with the non-DICOM files.
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_SCAN_TAGS)
    except Exception as exc:  # pydicom raises assorted errors on garbage
        if _has_dicom_signature(path):
            raise _Unreadable(str(exc)) from exc
        return None
    if "DirectoryRecordSequence" in ds or _is_dicomdir(ds):
        return None
    if "SeriesInstanceUID" not in ds:
        # Type 1 in every composite IOD: a Part 10 file without it was cut short
        # (pydicom returns what it read up to the end of a truncated file).
        if _has_dicom_signature(path):
            raise _Unreadable("no (0020,000E) SeriesInstanceUID")
        return None
    if "Rows" not in ds:
        return None  # structured reports, RT plans, presentation states ...
    return ds


def _summarise(ds: pydicom.Dataset, path: Path) -> _Header:
    iop = _floats(ds.get("ImageOrientationPatient"))
    ipp = _floats(ds.get("ImagePositionPatient"))
    nframes = _int_or_none(ds.get("NumberOfFrames")) or 1
    if iop is None and nframes > 1:
        iop = _floats(_frame_attr(ds, "PlaneOrientationSequence", "ImageOrientationPatient"))
    iop_key = tuple(round(v, 3) for v in iop) if iop and len(iop) == 6 else None
    key = (
        _text(ds, "SeriesInstanceUID"),
        iop_key,
        int(ds.get("Rows", 0) or 0),
        int(ds.get("Columns", 0) or 0),
        _text(ds, "EchoNumbers"),
        _text(ds, "TemporalPositionIdentifier"),
    )
    return _Header(path, key, _int_or_none(ds.get("AcquisitionNumber")), iop, ipp, ds)


def _walk(folder: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            files.append(Path(root) / name)
    return files


def _has_duplicate_positions(headers: list[_Header]) -> bool:
    positions = [h.ipp for h in headers if h.ipp is not None]
    rounded = {tuple(round(v, 2) for v in p) for p in positions}
    return len(rounded) < len(positions)


def _split_acquisitions(headers: list[_Header]) -> list[list[_Header]]:
    # Split by AcquisitionNumber only when the stack is not one volume otherwise:
    # some scanners number each slice (or each concatenation) separately.
    if len({h.acq for h in headers}) > 1 and _has_duplicate_positions(headers):
        by_acq: dict = defaultdict(list)
        for h in headers:
            by_acq[h.acq].append(h)
        return [by_acq[a] for a in sorted(by_acq, key=lambda a: (a is None, a or 0))]
    return [headers]


def _slice_positions(headers: list[_Header], iop) -> list[float]:
    """Sorted distinct slice positions along the normal of ``iop`` (mm)."""
    if iop is None or len(iop) != 6:
        return []
    normal = _slice_normal(iop)
    return sorted({round(float(np.dot(h.ipp, normal)), 4) for h in headers if h.ipp})


def _multiframe_positions(ds) -> list[float]:
    """Sorted distinct frame positions along the normal of a multi-frame object (mm)."""
    seq = ds.get("PerFrameFunctionalGroupsSequence")
    iop = _floats(_frame_attr(ds, "PlaneOrientationSequence", "ImageOrientationPatient"))
    if not seq or iop is None:
        return []
    normal = _slice_normal(iop)
    proj = []
    for item in seq:
        pps = item.get("PlanePositionSequence")
        if pps and "ImagePositionPatient" in pps[0]:
            proj.append(round(float(np.dot(_floats(pps[0].ImagePositionPatient), normal)), 4))
    return sorted(set(proj))


def _info(stack: list[_Header], stack_no: int) -> SeriesInfo:
    ds = stack[0].ds
    nframes = _int_or_none(ds.get("NumberOfFrames")) or 1
    iop = stack[0].iop
    spacing = _floats(ds.get("PixelSpacing"))
    if spacing is None and nframes > 1:
        spacing = _floats(_frame_attr(ds, "PixelMeasuresSequence", "PixelSpacing"))
    if len(stack) == 1 and nframes > 1:
        positions = _multiframe_positions(ds)
    else:
        positions = _slice_positions(stack, iop)
    slice_spacing = float(np.median(np.diff(positions))) if len(positions) > 1 else None
    acq_dt = _text(ds, "AcquisitionDateTime")
    return SeriesInfo(
        index=0,
        series_uid=_text(ds, "SeriesInstanceUID"),
        study_uid=_text(ds, "StudyInstanceUID"),
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
        modality=_text(ds, "Modality").upper(),
        description=_text(ds, "SeriesDescription"),
        protocol=_text(ds, "ProtocolName"),
        series_number=_int_or_none(ds.get("SeriesNumber")),
        n_instances=len(stack),
        plane=plane_from_iop(iop),
        rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0),
        pixel_spacing=(spacing[0], spacing[1]) if spacing and len(spacing) == 2 else None,
        slice_spacing=slice_spacing,
        slice_range=(positions[0], positions[-1]) if positions else None,
        study_date=_text(ds, "StudyDate"),
        series_date=_text(ds, "SeriesDate"),
        series_time=_text(ds, "SeriesTime"),
        acquisition_date=_text(ds, "AcquisitionDate") or acq_dt[:8],
        acquisition_time=_text(ds, "AcquisitionTime") or acq_dt[8:],
        files=tuple(h.path for h in stack),
        scanning_sequence=_multi(ds, "ScanningSequence"),
        scan_options=_multi(ds, "ScanOptions"),
        sequence_name=_text(ds, "SequenceName"),
        image_type=_multi(ds, "ImageType"),
        sop_class_uid=_text(ds, "SOPClassUID"),
        number_of_frames=nframes,
        orientation=iop,
        stack=stack_no,
    )


def scan(
    folder: str | Path, *, progress: Callable[[int, int], None] | None = None
) -> ScanResult:
    """Find the DICOM image series under ``folder`` (recursively) from headers only.

    Parameters
    ----------
    folder : path
        Folder to walk; any file names. Non-DICOM files and DICOMDIR are skipped
        and counted in ``n_skipped``.
    progress : callable, optional
        Called as ``progress(done, total)`` while reading headers.

    Returns
    -------
    ScanResult
        ``series`` sorted by (study date, series number, series time), each with
        its 1-based ``index``.

    Raises
    ------
    DicomInputError
        If ``folder`` is not an existing folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DicomInputError("not a folder", path=folder)
    paths = _walk(folder)
    groups: dict[tuple, list[_Header]] = defaultdict(list)
    skipped = 0
    unreadable: list[Path] = []
    for n, path in enumerate(paths, 1):
        try:
            ds = _read_header(path)
        except _Unreadable:
            unreadable.append(path)
            continue
        if ds is None:
            skipped += 1
        else:
            header = _summarise(ds, path)
            groups[header.key].append(header)
        if progress is not None:
            progress(n, len(paths))

    by_uid: dict[str, list[list[_Header]]] = defaultdict(list)
    for key in groups:
        by_uid[key[0]].extend(_split_acquisitions(groups[key]))
    infos = []
    for stacks in by_uid.values():
        for no, stack in enumerate(stacks, 1):
            infos.append(_info(stack, no if len(stacks) > 1 else 0))

    def order(s: SeriesInfo):
        return (
            s.study_date,
            s.series_number if s.series_number is not None else 10**9,
            s.series_date + s.series_time,
            s.series_uid,
            s.stack,
        )

    infos.sort(key=order)
    numbered = [replace(s, index=i) for i, s in enumerate(infos, 1)]
    return ScanResult(folder=folder, series=numbered, n_files=len(paths), n_skipped=skipped,
                      unreadable=tuple(unreadable))

