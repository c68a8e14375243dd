"""Load one DICOM series (single-frame files or one enhanced multi-frame object).

Geometry convention (DICOM LPS patient space, mm): slices are ordered by the
projection of ImagePositionPatient on the slice normal n = row cosine x column
cosine (ascending), never by InstanceNumber or file name. The SimpleITK image has
origin = IPP of the first slice, direction columns = (row cosine, column cosine, n)
and spacing = (PixelSpacing[1], PixelSpacing[0], slice spacing), i.e. the index
i runs along a row (across columns), j down the columns, k along n.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from myoimg.errors import DicomInputError, GeometryError, MissingAttributeError
from myoimg.io.scan import SeriesInfo
from myoimg.io.volume import Volume

__all__ = ["load_series", "load_files"]

TAG_IPP = "(0020,0032) ImagePositionPatient"
TAG_IOP = "(0020,0037) ImageOrientationPatient"
TAG_PS = "(0028,0030) PixelSpacing"
TAG_PPS = "(0020,9113) PlanePositionSequence"
TAG_TILT = "(0018,1120) GantryDetectorTilt"

_IOP_TOL = 1e-4  # max difference between direction cosines of one stack
_DUP_TOL = 1e-3  # mm: two slices closer than this along the normal are duplicates
_UNIFORM_REL = 0.01  # slice gaps within 1% (or 0.01 mm) of the median are uniform
_TILT_TOL = 0.01  # mm of in-plane drift of IPP per mm along the normal (~0.6 deg)


@dataclass
class _Slice:
    """Geometry and rescale of one 2-D image (a file or a frame)."""

    name: str  # file name (and frame number) for messages
    path: Path
    iop: np.ndarray  # (6,)
    ipp: np.ndarray  # (3,)
    spacing: tuple[float, float]  # DICOM order (row, column) mm
    slope: float
    intercept: float
    frame: int = 0


def _floats(value, n: int) -> np.ndarray | None:
    try:
        arr = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    return arr if arr.size == n and np.all(np.isfinite(arr)) else None


def _rescale(item, name: str, path: Path) -> tuple[float, float]:
    try:
        slope = float(item.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(item.get("RescaleIntercept", 0.0) or 0.0)
    except (TypeError, ValueError) as exc:
        raise MissingAttributeError(
            f"invalid rescale value in {name}", path=path, tag="(0028,1053) RescaleSlope"
        ) from exc
    return slope, intercept


def _read(path: Path, *, header_only: bool = False) -> pydicom.Dataset:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=header_only)
    except Exception as exc:  # any parse failure means an unusable input file
        raise DicomInputError(f"cannot read DICOM file: {exc}", path=path) from exc
    if not header_only and "PixelData" not in ds:
        raise DicomInputError("file has no pixel data (truncated?)", path=path, tag="(7FE0,0010)")
    return ds


def _check_pixel_format(ds: pydicom.Dataset, path: Path) -> None:
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if spp != 1:
        raise DicomInputError(
            f"colour images are not supported (SamplesPerPixel {spp})",
            path=path,
            tag="(0028,0002) SamplesPerPixel",
        )
    mod = str(ds.get("Modality", "")).upper()
    tilt = ds.get("GantryDetectorTilt")
    if mod == "CT" and tilt not in (None, ""):
        try:
            angle = float(tilt)
        except (TypeError, ValueError):
            angle = 0.0
        if abs(angle) > 1e-3:
            raise GeometryError(
                f"CT acquired with gantry tilt {angle:g} deg: slices are not orthogonal to "
                "the table axis; reconstruct without tilt or resample before loading",
                path=path,
                tag=TAG_TILT,
            )


def _single_frame_slice(ds: pydicom.Dataset, path: Path) -> _Slice:
    name = path.name
    if "ImagePositionPatient" not in ds:
        raise MissingAttributeError("missing image position", path=path, tag=TAG_IPP)
    ipp = _floats(ds.ImagePositionPatient, 3)
    if ipp is None:
        raise MissingAttributeError("invalid image position", path=path, tag=TAG_IPP)
    iop = _floats(ds.get("ImageOrientationPatient", ()), 6)
    if iop is None:
        raise MissingAttributeError("missing or invalid image orientation", path=path, tag=TAG_IOP)
    ps = _floats(ds.get("PixelSpacing", ()), 2)
    if ps is None or np.any(ps <= 0):
        raise MissingAttributeError("missing or invalid pixel spacing", path=path, tag=TAG_PS)
    slope, intercept = _rescale(ds, name, path)
    return _Slice(name, path, iop, ipp, (ps[0], ps[1]), slope, intercept)


def _group(ds: pydicom.Dataset, frame_item, group: str):
    """Item of a functional group macro for one frame: per-frame, else shared."""
    for item in (frame_item, _shared(ds)):
        if item is not None:
            seq = item.get(group)
            if seq:
                return seq[0]
    return None


def _shared(ds: pydicom.Dataset):
    seq = ds.get("SharedFunctionalGroupsSequence")
    return seq[0] if seq else None


def _multi_frame_slices(ds: pydicom.Dataset, path: Path, n_frames: int) -> list[_Slice]:
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame or len(per_frame) != n_frames:
        raise MissingAttributeError(
            f"multi-frame object without per-frame geometry for its {n_frames} frames",
            path=path,
            tag="(5200,9230) PerFrameFunctionalGroupsSequence",
        )
    slices = []
    for f, item in enumerate(per_frame):
        name = f"{path.name} frame {f + 1}"
        pos = _group(ds, item, "PlanePositionSequence")
        ipp = _floats(pos.get("ImagePositionPatient", ()), 3) if pos is not None else None
        if ipp is None:
            raise MissingAttributeError(
                f"frame {f + 1} has no image position", path=path, tag=TAG_PPS
            )
        ori = _group(ds, item, "PlaneOrientationSequence")
        iop = _floats(ori.get("ImageOrientationPatient", ()), 6) if ori is not None else None
        if iop is None:
            raise MissingAttributeError(
                f"frame {f + 1} has no image orientation",
                path=path,
                tag="(0020,9116) PlaneOrientationSequence",
            )
        meas = _group(ds, item, "PixelMeasuresSequence")
        ps = _floats(meas.get("PixelSpacing", ()), 2) if meas is not None else None
        if ps is None or np.any(ps <= 0):
            raise MissingAttributeError(
                f"frame {f + 1} has no pixel spacing",
                path=path,
                tag="(0028,9110) PixelMeasuresSequence",
            )
        pvt = _group(ds, item, "PixelValueTransformationSequence")
        slope, intercept = _rescale(pvt if pvt is not None else ds, name, path)
        slices.append(_Slice(name, path, iop, ipp, (ps[0], ps[1]), slope, intercept, f))
    return slices


def _geometry(
    slices: list[_Slice], resample_nonuniform: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Sort and validate slices.

    Returns
    -------
    order : (n,) int array, slice indices in ascending position along the normal
    proj : (n,) float array, sorted positions along the normal (mm)
    target : (m,) float array or empty, uniform positions to resample onto
    warnings : list of str
    """
    ref = slices[0]
    for s in slices[1:]:
        if np.max(np.abs(s.iop - ref.iop)) > _IOP_TOL:
            raise GeometryError(
                f"image orientation differs from {ref.name} (mixed orientations in one series)",
                path=s.path,
                tag=TAG_IOP,
            )
        if max(abs(s.spacing[0] - ref.spacing[0]), abs(s.spacing[1] - ref.spacing[1])) > 1e-4:
            raise GeometryError(
                f"pixel spacing differs from {ref.name}", path=s.path, tag=TAG_PS
            )
    row, col = ref.iop[:3], ref.iop[3:]
    normal = np.cross(row, col)
    if abs(np.linalg.norm(normal) - 1.0) > 1e-3 or abs(row @ col) > 1e-3:
        raise GeometryError(
            "row and column direction cosines are not orthonormal", path=ref.path, tag=TAG_IOP
        )
    normal /= np.linalg.norm(normal)
    proj_all = np.array([s.ipp @ normal for s in slices])
    order = np.argsort(proj_all, kind="stable")
    proj = proj_all[order]
    n = len(slices)
    if n < 2:
        return order, proj, np.empty(0), []
    gaps = np.diff(proj)
    for a in range(n - 1):
        if gaps[a] < _DUP_TOL:
            first, second = slices[order[a]], slices[order[a + 1]]
            raise GeometryError(
                f"duplicate slice position {proj[a]:.3f} mm along the normal "
                f"(also in {first.name}); two stacks or repeated images in one series",
                path=second.path,
                tag=TAG_IPP,
            )
    # Gantry tilt (or shear): IPPs must lie on one line along the normal.
    p0 = slices[order[0]].ipp
    for a in range(1, n):
        s = slices[order[a]]
        offset = s.ipp - p0 - (proj[a] - proj[0]) * normal
        if np.linalg.norm(offset) > _TILT_TOL * (proj[a] - proj[0]) + 1e-3:
            angle = np.degrees(np.arctan2(np.linalg.norm(offset), proj[a] - proj[0]))
            raise GeometryError(
                f"slice positions are not along the slice normal (tilted by {angle:.2f} deg; "
                "gantry tilt or sheared volume): refusing to load",
                path=s.path,
                tag=TAG_IPP,
            )
    median = float(np.median(gaps))
    tol = max(0.01, _UNIFORM_REL * median)
    if np.all(np.abs(gaps - median) <= tol):
        return order, proj, np.empty(0), []
    step = float(np.min(gaps))
    ratio = gaps / step
    missing = np.all(np.abs(ratio - np.round(ratio)) * step <= tol) and np.any(
        np.round(ratio) >= 2
    )
    worst = int(np.argmax(np.abs(gaps - median)))
    before, after = slices[order[worst]], slices[order[worst + 1]]
    if missing:
        k = int(np.round(gaps[worst] / step))
        what = (
            f"missing slice(s): gap of {gaps[worst]:.3f} mm between {before.name} and "
            f"{after.name} is {k} x the {step:.3f} mm slice spacing"
        )
    else:
        what = (
            f"non-uniform slice spacing: gaps from {gaps.min():.3f} to {gaps.max():.3f} mm "
            f"(e.g. {gaps[worst]:.3f} mm between {before.name} and {after.name})"
        )
    if not resample_nonuniform:
        raise GeometryError(
            what + "; use resample_nonuniform=True (--resample-nonuniform) to interpolate "
            "onto a uniform grid",
            path=after.path,
            tag=TAG_IPP,
        )
    m = int(np.round((proj[-1] - proj[0]) / step)) + 1
    target = np.linspace(proj[0], proj[-1], m)
    warning = (
        f"{what}; resampled {n} slices onto {m} uniform slices of "
        f"{(proj[-1] - proj[0]) / (m - 1):.3f} mm by linear interpolation"
    )
    return order, proj, target, [warning]


def _interpolate(stack: np.ndarray, proj: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Linear interpolation of (n, r, c) ``stack`` at positions ``target`` along axis 0."""
    idx = np.clip(np.searchsorted(proj, target, side="right") - 1, 0, len(proj) - 2)
    w = ((target - proj[idx]) / (proj[idx + 1] - proj[idx])).astype(np.float32)
    w = np.clip(w, 0.0, 1.0)[:, None, None]
    return (1.0 - w) * stack[idx] + w * stack[idx + 1]


def _to_image(array: np.ndarray, first: _Slice, slice_spacing: float) -> sitk.Image:
    image = sitk.GetImageFromArray(array, isVector=False)
    image.SetOrigin(tuple(float(v) for v in first.ipp))
    image.SetSpacing((float(first.spacing[1]), float(first.spacing[0]), float(slice_spacing)))
    # Gram-Schmidt: DS values are rounded, ITK wants an orthonormal direction.
    row = first.iop[:3] / np.linalg.norm(first.iop[:3])
    col = first.iop[3:] - (first.iop[3:] @ row) * row
    col /= np.linalg.norm(col)
    direction = np.column_stack([row, col, np.cross(row, col)])
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    return image


_NATIVE_LE = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}


def _native_pixels(ds: pydicom.Dataset) -> np.ndarray | None:
    """Stored values of an uncompressed little-endian single-frame image, or None.

    Skips pydicom's generic decoder bookkeeping (about half the load time of a
    plain MR file); mirrors its masking to BitsStored (unsigned) and sign extension
    (signed). Anything unusual returns None and goes through ``ds.pixel_array``.
    """
    meta = getattr(ds, "file_meta", None)
    if meta is None or meta.get("TransferSyntaxUID") not in _NATIVE_LE:
        return None
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        alloc, stored = int(ds.BitsAllocated), int(ds.BitsStored)
        signed = int(ds.PixelRepresentation) == 1
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    if frames != 1 or alloc not in (8, 16, 32) or not 0 < stored <= alloc:
        return None
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        return None
    dtype = np.dtype(f"<{'i' if signed else 'u'}{alloc // 8}")
    data = ds.PixelData
    if not isinstance(data, bytes) or len(data) < rows * cols * dtype.itemsize:
        return None
    raw = np.frombuffer(data, dtype=dtype, count=rows * cols).reshape(rows, cols)
    if stored < alloc:
        if signed:
            shift = alloc - stored
            raw = (raw << shift) >> shift  # arithmetic shift restores the sign
        else:
            raw = raw & dtype.type((1 << stored) - 1)
    return raw


def _pixels(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    fast = _native_pixels(ds)
    if fast is not None:
        return fast
    try:
        return ds.pixel_array
    except Exception as exc:  # truncated data, unsupported/corrupt compression
        raise DicomInputError(f"cannot decode pixel data: {exc}", path=path, tag="(7FE0,0010)") from exc


def _strip(ds: pydicom.Dataset) -> pydicom.Dataset:
    """Drop the pixel data (and pydicom's decoded cache) to keep a header-only dataset."""
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in ds:
            delattr(ds, keyword)
    return ds


def _fallback_spacing(ds: pydicom.Dataset) -> float:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            value = float(ds.get(keyword) or 0)
        except (TypeError, ValueError):
            value = 0
        if value > 0:
            return value
    return 1.0


def load_files(
    files: Sequence[str | Path],
    *,
    progress: Callable[[int, int], None] | None = None,
    resample_nonuniform: bool = False,
    info: SeriesInfo | None = None,
) -> Volume:
    """Load DICOM files forming one volume; see :func:`load_series`."""
    paths = [Path(p) for p in files]
    if not paths:
        raise DicomInputError("no files to load")
    datasets = []
    for n, path in enumerate(paths, 1):
        ds = _read(path)
        _check_pixel_format(ds, path)
        datasets.append(ds)
        if progress is not None:
            progress(n, len(paths))
    n_frames = int(datasets[0].get("NumberOfFrames", 1) or 1)
    if len(datasets) == 1 and n_frames > 1:
        return _load_multiframe(datasets[0], paths[0], n_frames, resample_nonuniform, info)
    for ds, path in zip(datasets, paths, strict=True):
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise DicomInputError(
                "multi-frame file mixed with other files in one series",
                path=path,
                tag="(0028,0008) NumberOfFrames",
            )
    slices = [_single_frame_slice(ds, p) for ds, p in zip(datasets, paths, strict=True)]
    rows, cols = int(datasets[0].Rows), int(datasets[0].Columns)
    for ds, path in zip(datasets, paths, strict=True):
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise GeometryError(
                f"image size {ds.Columns}x{ds.Rows} differs from {cols}x{rows} of {paths[0].name}",
                path=path,
                tag="(0028,0010) Rows",
            )
    order, proj, target, warnings = _geometry(slices, resample_nonuniform)
    # One preallocated float32 stack filled in slice order; each file decoded once.
    stack = np.empty((len(slices), rows, cols), dtype=np.float32)
    for k, idx in enumerate(order):
        ds = datasets[idx]
        s = slices[idx]
        raw = _pixels(ds, s.path)
        if raw.shape != (rows, cols):
            raise DicomInputError(
                f"pixel data shape {raw.shape} does not match Rows/Columns",
                path=s.path,
                tag="(7FE0,0010)",
            )
        np.multiply(raw, np.float32(s.slope), out=stack[k], casting="unsafe")
        if s.intercept != 0.0:
            stack[k] += np.float32(s.intercept)
        _strip(ds)
    return _finish(
        stack, slices, order, proj, target, warnings, datasets[0],
        headers=tuple(datasets[i] for i in order),
        files=tuple(paths[i] for i in order),
        info=info,
    )  # fmt: skip


def _finish(stack, slices, order, proj, target, warnings, ref_ds, *, headers, files, info):
    first = slices[order[0]]
    if target.size:
        stack = _interpolate(stack, proj, target).astype(np.float32, copy=False)
        dz = float(target[1] - target[0])
    elif len(proj) > 1:
        dz = float((proj[-1] - proj[0]) / (len(proj) - 1))
    else:
        dz = _fallback_spacing(ref_ds)
    image = _to_image(stack, first, dz)
    source = str(files[0].parent) if files else ""
    return Volume(
        image=image, headers=headers, files=files, info=info, source=source,
        warnings=list(warnings),
    )  # fmt: skip


def _load_multiframe(ds, path, n_frames, resample_nonuniform, info) -> Volume:
    slices = _multi_frame_slices(ds, path, n_frames)
    order, proj, target, warnings = _geometry(slices, resample_nonuniform)
    frames = _pixels(ds, path)
    if frames.ndim == 2:
        frames = frames[np.newaxis]
    if frames.ndim != 3 or frames.shape[0] != n_frames:
        raise DicomInputError(
            f"pixel data shape {frames.shape} does not match {n_frames} frames",
            path=path,
            tag="(7FE0,0010)",
        )
    stack = np.empty(frames.shape, dtype=np.float32)
    for k, idx in enumerate(order):
        s = slices[idx]
        np.multiply(frames[idx], np.float32(s.slope), out=stack[k], casting="unsafe")
        if s.intercept != 0.0:
            stack[k] += np.float32(s.intercept)
    del frames
    header = _strip(ds)
    return _finish(
        stack, slices, order, proj, target, warnings, header,
        headers=(header,), files=(path,), info=info,
    )  # fmt: skip


def load_series(
    info: SeriesInfo,
    *,
    progress: Callable[[int, int], None] | None = None,
    resample_nonuniform: bool = False,
) -> Volume:
    """Load a scanned series as a float32 volume in LPS with rescale applied.

    Parameters
    ----------
    info : SeriesInfo
        From :func:`myoimg.io.scan` / :func:`myoimg.io.select_series`.
    progress : callable, optional
        ``progress(done, total)`` after each file read.
    resample_nonuniform : bool
        Interpolate (linearly, along the normal) series with non-uniform slice
        spacing or missing slices onto a uniform grid instead of refusing; a
        warning is stored in ``Volume.warnings``.

    Returns
    -------
    Volume
        ``image`` float32 (values = stored * RescaleSlope + RescaleIntercept, per
        slice or per frame), ``headers``/``files`` in slice order, ``info``.

    Raises
    ------
    DicomInputError
        Unreadable, truncated or corrupt file (named in the message).
    MissingAttributeError
        Missing position, orientation or pixel spacing (file and tag named).
    GeometryError
        Mixed orientation, duplicate positions, missing slices, non-uniform
        spacing (unless ``resample_nonuniform``), gantry tilt.
    """
    return load_files(
        info.files, progress=progress, resample_nonuniform=resample_nonuniform, info=info
    )
