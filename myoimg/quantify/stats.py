"""Shared statistics helpers for MRI and PET quantification.

All functions work on NumPy arrays; images are converted by the callers. Arrays from
SimpleITK are in (k, j, i) = (slice, row, column) order.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage, signal

from ..errors import GeometryError, SegmentationError
from ..labels import BY_ID

__all__ = [
    "MAD_TO_SD",
    "HALF_NORMAL_MEDIAN",
    "as_array",
    "check_same_grid",
    "robust_mean_sd",
    "healthy_mode_sd",
    "bounded_healthy_level",
    "present_label_ids",
    "label_array",
    "muscle_label_ids",
    "erode_inplane_mask",
    "INPLANE_8",
]

#: 1 / Phi^-1(0.75): scales the median absolute deviation to the SD of a normal.
MAD_TO_SD = 1.4826
#: Median of |X| for X ~ N(0, 1) (= Phi^-1(0.75)): a half-normal's median in SD units.
HALF_NORMAL_MEDIAN = 0.6745
#: Structuring element of a (k, j, i) array: the 8 in-plane neighbours, none through-plane
#: (thick axial slices lie several mm apart and their noise is independent).
INPLANE_8 = np.zeros((3, 3, 3), dtype=bool)
INPLANE_8[1] = True


def as_array(image: sitk.Image | np.ndarray) -> np.ndarray:
    """(k, j, i) NumPy array of a SimpleITK image (copy), or the array itself."""
    if isinstance(image, sitk.Image):
        return sitk.GetArrayFromImage(image)
    return np.asarray(image)


def check_same_grid(a: sitk.Image, b: sitk.Image, what: str) -> None:
    """Raise :class:`GeometryError` unless ``a`` and ``b`` share size, spacing, origin, direction."""
    if a.GetSize() != b.GetSize():
        raise GeometryError(f"{what}: grid size {b.GetSize()} differs from the image {a.GetSize()}")
    for name, x, y in (
        ("spacing", a.GetSpacing(), b.GetSpacing()),
        ("origin", a.GetOrigin(), b.GetOrigin()),
        ("direction", a.GetDirection(), b.GetDirection()),
    ):
        if not np.allclose(x, y, atol=1e-3):
            raise GeometryError(f"{what}: {name} {tuple(y)} differs from the image {tuple(x)}")


def present_label_ids(labels: np.ndarray) -> list[int]:
    """Sorted non-zero label ids present in an integer label array."""
    ids = np.unique(labels)
    return [int(i) for i in ids if i != 0]


def label_array(labels: sitk.Image | np.ndarray) -> np.ndarray:
    """Integer (k, j, i) label array (non-integer maps, e.g. resampled, rounded)."""
    arr = as_array(labels)
    if not np.issubdtype(arr.dtype, np.integer):
        arr = np.rint(arr).astype(np.int32)
    return arr


def muscle_label_ids(labels: np.ndarray, what: str) -> tuple[list[int], list[str]]:
    """Label ids of the myoimg table present in ``labels``, and warnings for unknown ids.

    Raises :class:`SegmentationError` naming ``what`` (e.g. "PET label map") when no
    known muscle label is present.
    """
    warnings: list[str] = []
    ids = present_label_ids(labels)
    unknown = [i for i in ids if i not in BY_ID]
    if unknown:
        warnings.append(f"label ids {unknown} are not in the myoimg label table: ignored")
        ids = [i for i in ids if i in BY_ID]
    if not ids:
        raise SegmentationError(f"the {what} contains no muscle labels")
    return ids, warnings


def robust_mean_sd(values: np.ndarray) -> tuple[float, float]:
    """Median and MAD-based SD (1.4826 x median absolute deviation) of ``values``.

    For normally distributed values these equal the mean and SD; a minority of outliers
    (partial volume at fascia, a few inflamed voxels) barely moves them.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise SegmentationError("no voxels to estimate a reference signal from")
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med)))
    return med, MAD_TO_SD * mad


def _smoothed_histogram_modes(
    v: np.ndarray, bandwidth: float, lo: float, hi: float, min_peak_fraction: float
) -> float:
    """Lowest significant peak of a Gaussian-smoothed histogram (a binned KDE)."""
    width = bandwidth / 4.0  # 4 bins per bandwidth: binning error << bandwidth
    nbins = int(np.clip(np.ceil((hi - lo) / width), 64, 4096))
    hist, edges = np.histogram(v, bins=nbins, range=(lo, hi))
    binw = edges[1] - edges[0]
    dens = ndimage.gaussian_filter1d(hist.astype(np.float64), bandwidth / binw, mode="constant")
    top = dens.max()
    peaks, _ = signal.find_peaks(
        dens, height=min_peak_fraction * top, prominence=0.5 * min_peak_fraction * top
    )
    p = int(peaks[0]) if peaks.size else int(np.argmax(dens))
    # Parabolic interpolation of the peak position (sub-bin accuracy).
    offset = 0.0
    if 0 < p < nbins - 1:
        y0, y1, y2 = dens[p - 1], dens[p], dens[p + 1]
        denom = y0 - 2 * y1 + y2
        if denom < 0:
            offset = float(np.clip(0.5 * (y0 - y2) / denom, -0.5, 0.5))
    return float(lo + (p + 0.5 + offset) * binw)


def _lower_half_sd(v: np.ndarray, mode: float) -> float:
    below = mode - v[v < mode]
    if below.size == 0:
        return 0.0
    return float(np.median(below)) / HALF_NORMAL_MEDIAN


def healthy_mode_sd(values: np.ndarray, *, min_peak_fraction: float = 0.2) -> tuple[float, float]:
    """Mode and SD of the healthy-muscle component of a voxel intensity sample.

    Method: a Gaussian-smoothed histogram (binned kernel density estimate) of the
    values; the *lowest-intensity* peak whose height is at least ``min_peak_fraction``
    of the highest peak is taken as the healthy level, because oedema (T2-FS) or
    inflammation (PET) only adds brighter voxels: healthy muscle stays the lowest
    populated mode even when it is a minority. Pass 1 uses Silverman's bandwidth;
    pass 2 re-estimates with a bandwidth of half the healthy SD from pass 1 so that a
    nearby bright component does not pull the peak. The SD comes from the half of the
    distribution below the mode only: median(mode - x | x < mode) / 0.6745 (the median
    of a half-normal), which the bright tail cannot inflate.

    Parameters
    ----------
    values : ndarray
        Voxel intensities (any shape; non-finite values ignored).
    min_peak_fraction : float
        Minimum relative height (0-1) of a peak to count as a tissue mode.

    Returns
    -------
    (mode, sd) : tuple of float
        In the units of ``values``.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size < 10:
        raise SegmentationError(
            f"only {v.size} muscle voxels: too few to estimate the healthy-muscle signal"
        )
    lo, hi = (float(x) for x in np.percentile(v, [0.1, 99.9]))
    if hi <= lo:
        return lo, 0.0
    v = v[(v >= lo) & (v <= hi)]
    q25, q75 = np.percentile(v, [25, 75])
    scale = min(float(v.std()), float(q75 - q25) / 1.349) or float(v.std())
    bw = 0.9 * scale * v.size ** (-0.2)
    if bw <= 0:
        bw = (hi - lo) / 256.0
    mode = _smoothed_histogram_modes(v, bw, lo, hi, min_peak_fraction)
    sd = _lower_half_sd(v, mode)
    if sd > 0:
        mode = _smoothed_histogram_modes(
            v, max(0.5 * sd, (hi - lo) / 4000), lo, hi, min_peak_fraction
        )
        sd = _lower_half_sd(v, mode)
    return mode, sd


def bounded_healthy_level(
    values: np.ndarray,
    reference: float,
    *,
    bound: float,
    min_voxels: int = 500,
) -> tuple[float, float | None]:
    """Healthy level of one muscle, kept within ``reference x (1 +/- bound)``.

    The level is the lowest significant histogram mode of the muscle's own voxels
    (:func:`healthy_mode_sd`), clipped to ``[reference x (1 - bound), reference x
    (1 + bound)]`` so that a muscle with no healthy mode (oedematous throughout) cannot
    raise its own baseline by more than ``bound``. Voxels darker than ``reference x
    (1 - 2 x bound)`` are left out of the mode search: no healthy muscle is that dark,
    so they are fat, fascia or background inside the label, whose own peak would
    otherwise be taken as the lowest mode. With fewer than ``min_voxels`` voxels left
    the mode is too noisy and ``reference`` is returned.

    Parameters
    ----------
    values : ndarray
        Voxel intensities of one muscle (any shape; non-finite values ignored).
    reference : float
        Healthy level of all muscles (same units as ``values``).
    bound : float
        Largest relative departure (0-1) of the muscle's level from ``reference``.
    min_voxels : int
        Fewest voxels for a muscle's own mode.

    Returns
    -------
    (level, mode) : tuple
        ``level`` (float, units of ``values``) to use; ``mode`` the muscle's own mode
        before clipping, or None when too few voxels.
    """
    if not 0.0 <= bound < 1.0:
        raise ValueError(f"bound must be in [0, 1), got {bound!r}")
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v) & (v >= reference * (1.0 - 2.0 * bound))]
    if v.size < max(int(min_voxels), 10):
        return float(reference), None
    mode, _ = healthy_mode_sd(v)
    level = float(np.clip(mode, reference * (1.0 - bound), reference * (1.0 + bound)))
    return level, float(mode)


def erode_inplane_mask(mask: np.ndarray, iterations: int) -> np.ndarray:
    """Erode a (k, j, i) boolean mask within each slice (2-D, 3x3 square element).

    A voxel survives one iteration only when all 8 in-plane neighbours are in the mask,
    so every voxel touching another label or the background (fascia, fat, partial
    volume) is removed. Slices are independent: thick axial slices are not eroded
    through-plane. Voxels on the array border count as touching the outside.
    """
    mask = np.asarray(mask, dtype=bool)
    if iterations <= 0:
        return mask.copy()
    return ndimage.binary_erosion(
        mask, structure=INPLANE_8, iterations=int(iterations), border_value=0
    )
