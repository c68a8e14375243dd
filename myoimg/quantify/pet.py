"""PET uptake statistics per muscle on an SUV image (already converted, see suv.py).

Conventions: SUV images are SimpleITK images in LPS (dimensionless SUV, g/mL); NumPy
arrays are (k, j, i) = (slice, row, column); volumes in mL; TLA in SUV x mL.

Definitions
-----------
SUVpeak
    Mean SUV inside a sphere of ``peak_volume_ml`` (default 1 mL: radius
    (3 / (4 pi))^(1/3) x 10 mm = 6.20 mm) centred on a voxel centre inside the muscle,
    at the position where that mean is highest (the sphere itself may extend beyond
    the muscle, as in PERCIST). Each voxel is weighted by the fraction of its volume
    inside the sphere (5 x 5 x 5 sub-voxel supersampling), weights normalised to 1.
    Near the image border only the part of the sphere inside the image is averaged.
Avid volume
    Voxels of the muscle with SUV above the avidity threshold. Default "ref+2sd":
    reference SUVmean + 2 SD, i.e. uptake beyond the spread of healthy (reference)
    muscle; this adapts to the tracer and scanner, whereas an absolute FAPI cut-off
    for myositis is not established. A number is an absolute SUV threshold.
TLA
    Total lesion activity = SUVmean of the avid voxels x avid volume (mL).
TBR
    Target-to-background ratio = muscle SUVmean / reference SUVmean.
Reference
    User labels, else hamstrings + adductors (13, 14, 17, 18) when present (plain mean
    and SD of their voxels), else automatic: the healthy mode of all labelled voxels
    (see :func:`myoimg.quantify.stats.healthy_mode_sd`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage, signal

from ..errors import MyoimgError, SegmentationError
from ..labels import BY_ID, QUADRICEPS, REFERENCE_GROUPS
from .stats import (
    as_array,
    check_same_grid,
    healthy_mode_sd,
    label_array,
    muscle_label_ids,
    present_label_ids,
)

__all__ = [
    "PetQuantification",
    "PET_METRICS",
    "DEFAULT_AVID_THRESHOLD",
    "sphere_kernel",
    "peak_filter",
    "pet_reference",
    "parse_avid_threshold",
    "uptake_metrics",
]

#: Per-muscle keys written by :func:`uptake_metrics` (results.json schema).
PET_METRICS: tuple[str, ...] = (
    "suv_mean",
    "suv_sd",
    "suv_median",
    "suv_max",
    "suv_peak",
    "avid_volume_ml",
    "tla",
    "tbr",
)

#: Default avidity threshold: reference SUVmean + 2 SD of the reference region.
DEFAULT_AVID_THRESHOLD = "ref+2sd"

_SUPERSAMPLE = 5


@dataclass(eq=False)
class PetQuantification:
    """Result of :func:`uptake_metrics`.

    Attributes
    ----------
    muscles : dict
        Label name -> {suv_mean, suv_sd, suv_median, suv_max, suv_peak, avid_volume_ml,
        tla, tbr}; quadriceps 1-8 always present (None values when absent).
    reference : dict
        {"suv_mean", "suv_sd", "region"} of the healthy reference.
    avid_threshold_suv : float
        Avidity threshold actually applied (SUV).
    parameters : dict
        JSON-serialisable settings and definitions.
    warnings : list of str
    """

    muscles: dict[str, dict[str, Any]]
    reference: dict[str, Any]
    avid_threshold_suv: float
    parameters: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def sphere_kernel(spacing: Sequence[float], volume_ml: float = 1.0) -> np.ndarray:
    """Normalised (k, j, i) weights of a sphere of ``volume_ml`` on a voxel grid.

    Parameters
    ----------
    spacing : sequence of float
        Voxel size (di, dj, dk) in mm (SimpleITK order).
    volume_ml : float
        Sphere volume in mL (radius = (3 V / (4 pi))^(1/3), V in mm^3).

    Returns
    -------
    ndarray
        Odd-sized, symmetric float64 array summing to 1; each weight is the fraction of
        the voxel inside the sphere (5^3 sub-voxel samples).
    """
    if volume_ml <= 0:
        raise MyoimgError(f"peak volume must be positive, got {volume_ml} mL")
    radius = (3.0 * volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    d_kji = np.asarray(spacing, dtype=float)[::-1]
    half = np.ceil(radius / d_kji - 0.5).astype(int)  # voxels that can touch the sphere
    sub = (np.arange(_SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - 0.5  # sub-voxel offsets
    axes = [
        (np.arange(-h, h + 1)[:, None] + sub[None, :]).ravel() * d
        for h, d in zip(half, d_kji, strict=True)
    ]
    kk, jj, ii = np.meshgrid(*axes, indexing="ij")
    inside = (kk**2 + jj**2 + ii**2) <= radius**2
    shape = tuple(int(2 * h + 1) for h in half)
    w = inside.reshape(shape[0], _SUPERSAMPLE, shape[1], _SUPERSAMPLE, shape[2], _SUPERSAMPLE)
    w = w.mean(axis=(1, 3, 5))
    return w / w.sum()


def peak_filter(suv: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Weighted mean of ``suv`` in ``kernel`` around every voxel (same shape).

    Outside the array and non-finite voxels count as missing: the result is
    renormalised by the kernel weight of the valid voxels. Uses FFT convolution (the
    kernel is symmetric, so convolution = correlation).
    """
    suv = np.asarray(suv, dtype=np.float64)
    valid = np.isfinite(suv)
    num = signal.fftconvolve(np.where(valid, suv, 0.0), kernel, mode="same")
    den = signal.fftconvolve(valid.astype(np.float64), kernel, mode="same")
    out = num / np.maximum(den, 1e-12)
    out[den < 1e-6] = np.nan  # no valid voxel under the sphere
    return out


def _finite_max(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else None


def _region_name(ids: Sequence[int]) -> str:
    return "+".join(BY_ID[i].name if i in BY_ID else str(i) for i in ids)


def pet_reference(
    suv: np.ndarray,
    labels: np.ndarray,
    reference_labels: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Reference (healthy muscle) SUV statistics.

    Returns {"suv_mean", "suv_sd", "region", "method", "label_ids", "n_voxels"}.
    With labels (user's, or by default hamstrings + adductors when present): plain
    mean and SD (ddof=0) of their voxels. Otherwise the automatic healthy-mode estimate
    over all labelled voxels.
    """
    suv = np.asarray(suv, dtype=np.float64)
    present = present_label_ids(labels)
    if reference_labels is None:
        defaults = [m.id for m in BY_ID.values() if m.group in REFERENCE_GROUPS]
        chosen = [i for i in defaults if i in present]
        auto_default = True
    else:
        chosen = [int(i) for i in reference_labels if int(i) in present]
        auto_default = False
        if not chosen:
            raise SegmentationError(
                f"reference labels {list(reference_labels)} are absent from the PET label map"
            )
    if chosen:
        vals = suv[np.isin(labels, chosen)]
        vals = vals[np.isfinite(vals)]
        return {
            "suv_mean": float(vals.mean()),
            "suv_sd": float(vals.std()),
            "region": _region_name(chosen),
            "method": ("default hamstrings+adductors" if auto_default else "user labels")
            + ": mean and SD (ddof=0) of the voxels",
            "label_ids": chosen,
            "n_voxels": int(vals.size),
        }
    vals = suv[labels > 0]
    mode, sd = healthy_mode_sd(vals)
    return {
        "suv_mean": float(mode),
        "suv_sd": float(sd),
        "region": "automatic (healthy mode of all labelled muscle)",
        "method": "lowest significant mode of the smoothed SUV histogram of all labelled "
        "voxels; SD from the half below the mode",
        "label_ids": present,
        "n_voxels": int(vals.size),
    }


_AVID_RE = re.compile(r"^\s*ref\s*\+\s*(\d+(?:\.\d*)?)\s*sd\s*$", re.IGNORECASE)
_AVID_MULT_RE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*x\s*ref\s*$", re.IGNORECASE)


def parse_avid_threshold(threshold: str | float, reference: dict[str, Any]) -> float:
    """Avidity threshold in SUV.

    "ref+Nsd" -> reference SUVmean + N x SD (default "ref+2sd"); "Fxref" -> F x
    reference SUVmean (e.g. "1.5xref"); a number -> absolute SUV.
    """
    if isinstance(threshold, bool):
        raise MyoimgError(f"invalid avidity threshold {threshold!r}")
    if isinstance(threshold, (int, float, np.integer, np.floating)):
        value = float(threshold)
        if not np.isfinite(value) or value < 0:
            raise MyoimgError(f"avidity threshold must be a non-negative SUV, got {threshold!r}")
        return value
    text = str(threshold)
    m = _AVID_RE.match(text)
    if m:
        return reference["suv_mean"] + float(m.group(1)) * reference["suv_sd"]
    m = _AVID_MULT_RE.match(text)
    if m:
        return float(m.group(1)) * reference["suv_mean"]
    raise MyoimgError(
        f"invalid avidity threshold {threshold!r}: use 'ref+2sd', '1.5xref' or an SUV number"
    )


def uptake_metrics(
    suv: sitk.Image,
    labels: sitk.Image,
    *,
    avid_threshold: str | float = DEFAULT_AVID_THRESHOLD,
    reference_labels: Sequence[int] | None = None,
    peak_volume_ml: float = 1.0,
) -> PetQuantification:
    """Per-muscle SUV statistics (see the module docstring for the definitions).

    Parameters
    ----------
    suv : SimpleITK.Image
        3-D SUV image (dimensionless), LPS.
    labels : SimpleITK.Image
        Integer label map on the PET grid.
    avid_threshold : str or float
        "ref+Nsd" (default "ref+2sd"), "Fxref", or an absolute SUV.
    reference_labels : sequence of int, optional
        Healthy reference labels; default hamstrings + adductors when present, else
        automatic.
    peak_volume_ml : float
        SUVpeak sphere volume in mL.

    Returns
    -------
    PetQuantification
        suv_sd with ddof=0; volumes in mL; TLA in SUV x mL; TBR dimensionless.
    """
    check_same_grid(suv, labels, "PET label map")
    lab = label_array(labels)
    arr = as_array(suv).astype(np.float64)
    ids, warnings = muscle_label_ids(lab, "PET label map")
    lab = np.where(np.isin(lab, ids), lab, 0)

    ref_full = pet_reference(arr, lab, reference_labels)
    reference = {k: ref_full[k] for k in ("suv_mean", "suv_sd", "region")}
    thr = parse_avid_threshold(avid_threshold, reference)
    voxel_ml = float(np.prod(suv.GetSpacing())) / 1000.0
    kernel = sphere_kernel(suv.GetSpacing(), peak_volume_ml)

    # Peak filter on the bounding box of all labels plus the sphere radius (speed).
    objects = ndimage.find_objects(lab.astype(np.int32))
    lo = np.min([[s.start for s in o] for o in objects if o is not None], axis=0)
    hi = np.max([[s.stop for s in o] for o in objects if o is not None], axis=0)
    half = np.asarray(kernel.shape) // 2
    lo = np.maximum(lo - half, 0)
    hi = np.minimum(hi + half, lab.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    peak = peak_filter(arr[box], kernel)
    lab_box = lab[box]
    arr_box = arr[box]

    muscles: dict[str, dict[str, Any]] = {m.name: dict.fromkeys(PET_METRICS) for m in QUADRICEPS}
    for i in ids:
        sel = lab_box == i
        vals = arr_box[sel]
        finite = np.isfinite(vals)
        if not finite.all():
            warnings.append(
                f"{BY_ID[i].name}: {int((~finite).sum())} non-finite SUV voxels ignored"
            )
            vals = vals[finite]
        if vals.size == 0:
            muscles[BY_ID[i].name] = dict.fromkeys(PET_METRICS)
            continue
        avid = vals[vals > thr]
        avid_ml = float(avid.size) * voxel_ml
        mean = float(vals.mean())
        muscles[BY_ID[i].name] = {
            "suv_mean": mean,
            "suv_sd": float(vals.std()),
            "suv_median": float(np.median(vals)),
            "suv_max": float(vals.max()),
            "suv_peak": _finite_max(peak[sel]),
            "avid_volume_ml": avid_ml,
            "tla": float(avid.mean()) * avid_ml if avid.size else 0.0,
            "tbr": mean / reference["suv_mean"] if reference["suv_mean"] > 0 else None,
        }
    order = [m for m in BY_ID.values() if m.name in muscles]
    muscles = {m.name: muscles[m.name] for m in order}
    radius = (3.0 * peak_volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    parameters = {
        "avid_threshold": avid_threshold
        if isinstance(avid_threshold, str)
        else float(avid_threshold),
        "avid_threshold_suv": float(thr),
        "reference_labels": None
        if reference_labels is None
        else [int(x) for x in reference_labels],
        "reference_method": ref_full["method"],
        "reference_label_ids": [int(x) for x in ref_full["label_ids"]],
        "reference_n_voxels": ref_full["n_voxels"],
        "peak_volume_ml": float(peak_volume_ml),
        "peak_radius_mm": float(radius),
        "suv_peak": "max over voxel centres inside the muscle of the mean SUV in a sphere of "
        f"{peak_volume_ml:g} mL (r = {radius:.2f} mm), partial-voxel weights by 5^3 supersampling",
        "suv_sd": "population SD (ddof=0)",
        "tla": "SUVmean of avid voxels x avid volume (mL)",
        "tbr": "muscle SUVmean / reference SUVmean",
    }
    return PetQuantification(
        muscles=muscles,
        reference=reference,
        avid_threshold_suv=float(thr),
        parameters=parameters,
        warnings=warnings,
    )
