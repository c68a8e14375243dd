"""Import label maps made elsewhere (NIfTI/NRRD, DICOM SEG, DICOM RTSTRUCT) onto a reference grid.

Coordinate convention: everything is compared in DICOM patient space (LPS, mm).
SimpleITK reads NIfTI and NRRD into LPS; DICOM SEG positions and RTSTRUCT contour points
are LPS already. The result always lies on exactly the ``reference`` image grid
(origin, spacing, direction, size) with myoimg label ids (:mod:`myoimg.labels`).

Source labels that the chosen mapping does not know are never dropped silently: they
are counted in :attr:`ImportedLabels.unknown` (voxel counts on the source's own grid)
and described in :attr:`ImportedLabels.messages`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk

from ..errors import DicomInputError, MyoimgError
from ..io.volume import index_to_lps_affine
from .mappings import map_label, resolve_mapping

__all__ = ["ImportedLabels", "import_labels", "lps_bounds", "check_overlap"]

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
_IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")

#: Minimum fraction of the smaller bounding box that must lie inside the other one.
MIN_OVERLAP_FRACTION = 0.5


@dataclass
class ImportedLabels:
    """Result of :func:`import_labels`.

    Attributes
    ----------
    labels : SimpleITK.Image
        uint8 label map on exactly the reference grid, myoimg label ids, 0 = background.
    mapping_used : dict
        {source label (int value or name as found): myoimg id} for every source label
        that was present and mapped.
    unknown : dict
        {source label: voxel count on the source grid} for labels present but not mapped.
    messages : list of str
        Human-readable notes (unknown labels, merged labels, voxels outside the grid...).
    """

    labels: sitk.Image
    mapping_used: dict[str | int, int] = field(default_factory=dict)
    unknown: dict[str | int, int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- geometry


def lps_bounds(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned LPS bounding box (min, max corners, mm) of an image's voxel *edges*."""
    size = np.asarray(image.GetSize(), dtype=float)
    affine = index_to_lps_affine(image)
    corners = np.array(
        [[a, b, c, 1.0] for a in (-0.5, size[0] - 0.5) for b in (-0.5, size[1] - 0.5)
         for c in (-0.5, size[2] - 0.5)]
    )  # fmt: skip
    pts = (affine @ corners.T).T[:, :3]
    return pts.min(axis=0), pts.max(axis=0)


def _fmt_box(box: tuple[np.ndarray, np.ndarray]) -> str:
    lo, hi = box
    return "[" + ", ".join(f"{a:.1f}..{b:.1f}" for a, b in zip(lo, hi, strict=True)) + "] mm (LPS)"


def check_overlap(
    box_a: tuple[np.ndarray, np.ndarray],
    box_b: tuple[np.ndarray, np.ndarray],
    *,
    what: str = "label map",
    min_fraction: float = MIN_OVERLAP_FRACTION,
) -> float:
    """Fraction of the smaller box inside the other; raise MyoimgError if below ``min_fraction``.

    Boxes are (min, max) LPS corners in mm, e.g. from :func:`lps_bounds`. Flat boxes (a
    single slice) are given 1 mm thickness so a 2-D overlap still counts.
    """
    lo = np.maximum(box_a[0], box_b[0])
    hi = np.minimum(box_a[1], box_b[1])

    def vol(lo_: np.ndarray, hi_: np.ndarray) -> float:
        return float(np.prod(np.maximum(hi_ - lo_, 1.0)))

    inter = vol(lo, hi) if np.all(hi > lo) else 0.0
    smaller = min(vol(*box_a), vol(*box_b))
    frac = inter / smaller if smaller > 0 else 0.0
    if frac < min_fraction:
        raise MyoimgError(
            f"{what} does not overlap the reference image in patient space: "
            f"{what} extent {_fmt_box(box_a)}, reference extent {_fmt_box(box_b)} "
            f"(overlap {frac:.0%} of the smaller box, need {min_fraction:.0%})"
        )
    return frac


def _resample_nn(image: sitk.Image, reference: sitk.Image) -> sitk.Image:
    return sitk.Resample(
        image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, image.GetPixelID()
    )


def _blank_like(reference: sitk.Image) -> np.ndarray:
    return np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.uint8)


def _to_image(arr: np.ndarray, reference: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(arr.astype(np.uint8, copy=False))
    out.CopyInformation(reference)
    return out


# --------------------------------------------------------------------------- relabelling


def _relabel(
    values: np.ndarray,
    keys: Mapping[int, str | int],
    table: Mapping[str | int, int],
    result: ImportedLabels,
    what: str,
) -> np.ndarray:
    """Map an integer source array to myoimg ids; record mapped and unknown labels.

    ``keys`` gives, for each integer value present, the source label it stands for (the
    value itself for label maps, the segment name for SEG).
    """
    present, counts = np.unique(values, return_counts=True)
    out = np.zeros(values.shape, dtype=np.uint8)
    for value, count in zip(present.tolist(), counts.tolist(), strict=True):
        if value == 0:
            continue
        source = keys.get(value, value)
        ours = map_label(source, table)
        if ours is None:
            result.unknown[source] = result.unknown.get(source, 0) + int(count)
            continue
        result.mapping_used[source] = ours
        out[values == value] = ours
    _report_unknown(result, what)
    return out


def _report_unknown(result: ImportedLabels, what: str) -> None:
    if result.unknown:
        listed = ", ".join(f"{k!r} ({v} voxels)" for k, v in result.unknown.items())
        result.messages.append(f"{what}: labels not mapped to myoimg ids and left out: {listed}")


# --------------------------------------------------------------------------- readers


def _import_image_file(
    path: Path, reference: sitk.Image, table: Mapping[str | int, int], result: ImportedLabels
) -> None:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise MyoimgError(f"cannot read label map {path.name}: {exc}") from exc
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise MyoimgError(f"label map {path.name} must be a 3-D scalar image")
    check_overlap(lps_bounds(image), lps_bounds(reference), what=f"label map {path.name}")
    arr = sitk.GetArrayFromImage(image)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.allclose(arr, np.round(arr)):
            raise MyoimgError(f"label map {path.name} holds non-integer values; not a label map")
        arr = np.round(arr)
    arr = arr.astype(np.int64)
    ours = _relabel(arr, {}, table, result, f"label map {path.name}")
    src = sitk.GetImageFromArray(ours)
    src.CopyInformation(image)
    _resample_onto(src, reference, result, path.name)


def _import_mask_folder(
    folder: Path, reference: sitk.Image, table: Mapping[str | int, int], result: ImportedLabels
) -> None:
    """One binary mask per file, named after the structure (TotalSegmentator's default
    output, e.g. ``sartorius_left.nii.gz``): the file name (without suffix) is the label."""
    files = sorted(p for p in folder.iterdir() if p.name.lower().endswith(_IMAGE_SUFFIXES))
    if not files:
        raise MyoimgError(f"no NIfTI/NRRD mask files in folder {folder}")
    out = _blank_like(reference)
    n_overlap = 0
    for f in files:
        name = f.name
        for suffix in _IMAGE_SUFFIXES:
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
        image = sitk.ReadImage(str(f))
        arr = sitk.GetArrayViewFromImage(image) > 0
        count = int(arr.sum())
        if count == 0:
            continue
        ours = map_label(name, table)
        if ours is None:
            result.unknown[name] = count
            continue
        check_overlap(lps_bounds(image), lps_bounds(reference), what=f"mask {f.name}")
        result.mapping_used[name] = ours
        mask = sitk.GetImageFromArray(arr.astype(np.uint8))
        mask.CopyInformation(image)
        on_ref = sitk.GetArrayFromImage(_resample_nn(mask, reference)) > 0
        n_overlap += int(np.count_nonzero(out[on_ref]))
        out[on_ref] = ours
    if n_overlap:
        result.messages.append(f"{n_overlap} voxels claimed by two mask files; the later kept")
    _report_unknown(result, f"mask folder {folder.name}")
    result.labels = _to_image(out, reference)


def _resample_onto(
    src: sitk.Image, reference: sitk.Image, result: ImportedLabels, name: str
) -> None:
    resampled = _resample_nn(src, reference)
    # Report labelled volume (mL) that falls outside the reference grid.
    src_ml = float(np.count_nonzero(sitk.GetArrayViewFromImage(src))) * np.prod(src.GetSpacing())
    out_ml = float(np.count_nonzero(sitk.GetArrayViewFromImage(resampled))) * np.prod(
        reference.GetSpacing()
    )
    if src_ml > 0 and out_ml < 0.95 * src_ml:
        result.messages.append(
            f"{name}: {(src_ml - out_ml) / 1000:.1f} mL of labelled volume lies outside the "
            "reference grid (or was lost by resampling)"
        )
    result.labels = resampled


def _check_frame(ds: Any, source_files: Sequence[Any] | None, path: Path) -> None:
    """Refuse a SEG/RTSTRUCT whose FrameOfReferenceUID differs from the source series."""
    if not source_files:
        return
    first = source_files[0]
    hdr = (
        first
        if isinstance(first, pydicom.Dataset)
        else pydicom.dcmread(first, stop_before_pixels=True)
    )
    ours = getattr(hdr, "FrameOfReferenceUID", None)
    theirs = getattr(ds, "FrameOfReferenceUID", None)
    if theirs is None and "ReferencedFrameOfReferenceSequence" in ds:
        theirs = ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID
    if ours and theirs and str(ours) != str(theirs):
        raise DicomInputError(
            "segmentation refers to another frame of reference than the image series",
            path,
            "(0020,0052) FrameOfReferenceUID",
        )


def _import_seg(
    path: Path,
    reference: sitk.Image,
    mapping: Any,
    table: Mapping[str | int, int],
    result: ImportedLabels,
    source_files: Sequence[Any] | None,
) -> None:
    import highdicom as hd

    try:
        seg = hd.seg.segread(path)
    except Exception as exc:  # highdicom raises several types for malformed objects
        raise DicomInputError(f"cannot read DICOM SEG: {exc}", path) from exc
    _check_frame(seg, source_files, path)
    keys: dict[int, str | int] = {}
    for number in seg.segment_numbers:
        desc = seg.get_segment_description(number)
        name = str(desc.segment_label) if desc.segment_label else number
        # Map by segment label; a user dict may also address segments by number.
        if map_label(name, table) is None and isinstance(mapping, Mapping):
            if map_label(number, table) is not None:
                name = number
        keys[number] = name
    try:
        if str(seg.SegmentationType) == "FRACTIONAL":
            # One channel per segment, fractions 0-1: a voxel gets the segment with the
            # largest fraction if that fraction is at least 0.5.
            vol = seg.get_volume(combine_segments=False, rescale_fractional=True)
            frac = np.asarray(vol.array, dtype=float)
            best = frac.argmax(axis=-1)
            numbers = np.asarray(seg.segment_numbers)
            arr = np.where(frac.max(axis=-1) >= 0.5, numbers[best], 0).astype(np.int32)
        else:
            vol = seg.get_volume(combine_segments=True, skip_overlap_checks=True, dtype=np.int32)
            arr = np.asarray(vol.array)  # axes (a0, a1, a2); vol.affine maps them to LPS
    except Exception as exc:
        raise DicomInputError(f"DICOM SEG frames do not form a volume: {exc}", path) from exc
    affine = np.asarray(vol.affine, dtype=float)
    ours = _relabel(arr, keys, table, result, f"DICOM SEG {path.name}")
    src = sitk.GetImageFromArray(np.ascontiguousarray(ours.transpose(2, 1, 0)))
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    src.SetSpacing(spacing.tolist())
    src.SetDirection((affine[:3, :3] / spacing).ravel().tolist())
    src.SetOrigin(affine[:3, 3].tolist())
    check_overlap(lps_bounds(src), lps_bounds(reference), what=f"DICOM SEG {path.name}")
    _resample_onto(src, reference, result, path.name)


def _import_rtstruct(
    path: Path,
    ds: pydicom.Dataset,
    reference: sitk.Image,
    table: Mapping[str | int, int],
    result: ImportedLabels,
    source_files: Sequence[Any] | None,
) -> None:
    from skimage.draw import polygon

    _check_frame(ds, source_files, path)
    if "StructureSetROISequence" not in ds or "ROIContourSequence" not in ds:
        raise _missing_rt(path)
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    shape = sitk.GetArrayViewFromImage(reference).shape  # (k, j, i)
    affine = index_to_lps_affine(reference)
    inv = np.linalg.inv(affine)
    out = _blank_like(reference)
    ref_box = lps_bounds(reference)
    all_points = []
    n_off_plane = 0
    n_overlap = 0
    for item in ds.ROIContourSequence:
        roi = int(item.ReferencedROINumber)
        name = names.get(roi, str(roi))
        mask = np.zeros(shape, dtype=bool)
        for contour in getattr(item, "ContourSequence", []):
            ctype = str(getattr(contour, "ContourGeometricType", "CLOSED_PLANAR"))
            if ctype != "CLOSED_PLANAR":
                continue
            pts = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            all_points.append(pts)
            idx = (inv @ np.c_[pts, np.ones(len(pts))].T).T[:, :3]  # (i, j, k) continuous
            k_values = idx[:, 2]
            k = int(np.round(k_values.mean()))
            if np.ptp(k_values) > 0.5 or abs(k_values.mean() - k) > 0.25:
                n_off_plane += 1  # not in one slice plane of the reference grid
                continue
            if not 0 <= k < shape[0]:
                continue
            rr, cc = polygon(idx[:, 1], idx[:, 0], shape=shape[1:])
            plane = np.zeros(shape[1:], dtype=bool)
            plane[rr, cc] = True
            mask[k] ^= plane  # even-odd rule: a contour inside another is a hole
        count = int(mask.sum())
        if count == 0:
            continue
        ours = map_label(name, table)
        if ours is None:
            result.unknown[name] = result.unknown.get(name, 0) + count
            continue
        result.mapping_used[name] = ours
        n_overlap += int(np.count_nonzero(out[mask]))
        out[mask] = ours
    if all_points:
        pts = np.concatenate(all_points)
        check_overlap(
            (pts.min(axis=0) - 0.5, pts.max(axis=0) + 0.5),
            ref_box,
            what=f"RTSTRUCT {path.name}",
        )
    else:
        result.messages.append(f"RTSTRUCT {path.name}: no closed planar contours found")
    if n_off_plane:
        result.messages.append(
            f"RTSTRUCT {path.name}: {n_off_plane} contour(s) not in a slice plane of the "
            "reference grid were skipped"
        )
    if n_overlap:
        result.messages.append(
            f"RTSTRUCT {path.name}: {n_overlap} voxels claimed by two ROIs; the later ROI kept"
        )
    _report_unknown(result, f"RTSTRUCT {path.name}")
    result.labels = _to_image(out, reference)


def _missing_rt(path: Path) -> DicomInputError:
    return DicomInputError(
        "RTSTRUCT without StructureSetROISequence/ROIContourSequence", path, "(3006,0020)"
    )


# --------------------------------------------------------------------------- public


def import_labels(
    path: str | Path,
    reference: sitk.Image,
    *,
    mapping: str | Mapping[str | int, str | int] | None = None,
    source_files: Sequence[Any] | None = None,
) -> ImportedLabels:
    """Read a label map made by another tool onto the ``reference`` grid with myoimg ids.

    Parameters
    ----------
    path : path
        NIfTI / NRRD / MHA label map (any grid: resampled nearest-neighbour onto
        ``reference``), a folder of one binary mask file per structure named after it
        (TotalSegmentator's default output), DICOM SEG (segments mapped by segment label) or DICOM RTSTRUCT
        (closed planar contours rasterised per reference slice; ROI names mapped).
    reference : SimpleITK.Image
        The image the labels belong to (LPS geometry); the result has its exact grid.
    mapping : None, str or dict
        How source labels translate to myoimg ids: None (myoimg ids / names already),
        ``"dafne"``, ``"musclemap"``, ``"totalsegmentator"`` or a dict
        {source name or id: myoimg name or id}. See :mod:`myoimg.segment.mappings`.
    source_files : sequence of path or pydicom.Dataset, optional
        Files (or headers) of the reference series. When given, a SEG/RTSTRUCT with another
        FrameOfReferenceUID is refused.

    Returns
    -------
    ImportedLabels

    Raises
    ------
    MyoimgError
        Unreadable input, or a label map whose extent does not overlap ``reference``
        (at least 50 % of the smaller bounding box); the message gives both extents.
    """
    path = Path(path)
    table, notes = resolve_mapping(mapping)
    result = ImportedLabels(labels=_to_image(_blank_like(reference), reference))
    result.messages.extend(notes)
    if path.is_dir():
        _import_mask_folder(path, reference, table, result)
        return result
    if not path.is_file():
        raise MyoimgError(f"label file not found: {path}")
    name = path.name.lower()
    if name.endswith(_IMAGE_SUFFIXES):
        _import_image_file(path, reference, table, result)
        return result
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:
        raise DicomInputError(f"not a label map nor a DICOM file: {exc}", path) from exc
    sop = str(getattr(ds, "SOPClassUID", ""))
    modality = str(getattr(ds, "Modality", ""))
    if sop == SEG_SOP_CLASS or modality == "SEG":
        _import_seg(path, reference, mapping, table, result, source_files)
    elif sop == RTSTRUCT_SOP_CLASS or modality == "RTSTRUCT":
        ds = pydicom.dcmread(path)
        _import_rtstruct(path, ds, reference, table, result, source_files)
    else:
        raise DicomInputError(
            f"DICOM object is neither SEG nor RTSTRUCT (Modality {modality or 'missing'})",
            path,
            "(0008,0016) SOPClassUID",
        )
    return result
