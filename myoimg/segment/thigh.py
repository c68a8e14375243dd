"""Body and leg masks of axial thigh slices.

Arrays are (k, j, i) = (slice, row, column) as SimpleITK returns them; physical sizes
come from the pixel spacing (mm). Every threshold is relative to the image's own
intensities, so the functions work on any MR contrast and scaling.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from skimage import filters, measure, morphology

from .morph import fill_holes, open_mm
from .threads import thread_map

__all__ = [
    "axial_order",
    "body_mask",
    "from_axial_order",
    "from_lps_storage",
    "slice_grid_lps",
    "to_lps_storage",
]

# Depths under the skin (mm) whose signal stands for the subcutaneous fat: below the
# blurred skin edge, within the fat layer of all but the leanest thighs.
SUBCUT_RING_MM = (3.0, 7.0)
# Smallest cross-section kept as a limb (mm^2): a very thin adult distal thigh is still
# ~60 cm^2 (radius ~45 mm); 15 cm^2 keeps children's thighs and drops arms' edges,
# coils, cables and noise specks.
MIN_LIMB_AREA_MM2 = 1500.0


# Opening radius (mm) of the body outline: phase-encoding ghosts of vessels and other
# thin bright streaks outside the skin touch it and would join the body as spikes (3-6 mm
# wide on the real development case), which the fascia model then reads as skin. The
# thigh's outline curves with a radius of several cm, so an 8 mm disc leaves it whole.
OPEN_MM = 8.0
# In-plane Gaussian (mm) before the air/tissue threshold.
BODY_SMOOTH_MM = 1.0


def _background_threshold(arr: np.ndarray) -> float:
    """Intensity separating air from tissue for the whole volume.

    Otsu on all voxels separates air from the bright tissue, but fat-suppressed fat can be
    darker than that split; a fraction of the Otsu level (fat on STIR is still several
    times the noise floor) keeps it inside the body while excluding noise.
    """
    finite = arr[np.isfinite(arr)]
    sample = finite[:: max(1, finite.size // 2_000_000)]
    t_otsu = float(filters.threshold_otsu(sample))
    below = sample[sample < t_otsu]
    # Noise floor: robust upper bound of the air voxels, from the lower half of the voxels
    # below Otsu only (mostly air; a large dark fat area lifts the upper quartile into the
    # fat): 4x (median - lower quartile) above the median, ~2.7 SD of Gaussian noise and
    # the 99.6th percentile of Rayleigh noise.
    noise = (
        float(np.percentile(below, 50) + 4.0 * (np.percentile(below, 50) - np.percentile(below, 25)))
        if below.size
        else 0.0
    )
    return max(0.2 * t_otsu, min(noise, 0.5 * t_otsu))


def body_mask(arr: np.ndarray, spacing_ij: tuple[float, float]) -> np.ndarray:
    """Boolean (k, j, i) mask of the body (both thighs), holes filled, per slice.

    Parameters
    ----------
    arr : ndarray, shape (k, j, i)
        Image intensities.
    spacing_ij : (float, float)
        Column and row spacing (mm).
    """
    si, sj = spacing_ij
    sigma = (BODY_SMOOTH_MM / sj, BODY_SMOOTH_MM / si)
    sms = np.stack(list(thread_map(
        lambda a: ndi.gaussian_filter(a.astype(np.float32), sigma=sigma), arr)))
    # The threshold comes from the smoothed image it is applied to: the air's noise spread
    # shrinks there, while fat-suppressed fat (on STIR barely above the noise floor of a
    # noisy scan) keeps its mean, so the fat layer stays inside the body.
    thr = _background_threshold(sms)
    px_area = si * sj
    rad = max(1, int(round(2.0 / min(si, sj))))

    def one_slice(sm: np.ndarray) -> np.ndarray:
        m = sm > thr
        # Close small gaps in the skin line (chemical-shift dropouts), then fill the inside.
        m = ndi.binary_closing(np.pad(m, rad), morphology.disk(rad))[rad:-rad, rad:-rad]
        m = fill_holes(m)
        m = open_mm(m, OPEN_MM, (sj, si))
        lab = measure.label(m)
        if lab.max() == 0:
            return np.zeros(m.shape, dtype=bool)
        areas = np.bincount(lab.ravel())
        areas[0] = 0
        keep = np.nonzero(areas * px_area >= MIN_LIMB_AREA_MM2)[0]
        return np.isin(lab, keep)

    out = np.zeros(arr.shape, dtype=bool)
    for k, mask in enumerate(thread_map(one_slice, sms)):
        out[k] = mask
    return out


def axial_order(image) -> list[int] | None:
    """Axis order that makes ``image`` a stack of axial slices, or None.

    The slice axis is the image axis closest to LPS z (the body's long axis) if within
    ~37 deg of it (|cos| >= 0.8); of the other two, the one closer to LPS x comes first
    (columns), the other second (rows). ``[0, 1, 2]`` for a volume stored as axial slices
    of rows and columns; use with :func:`SimpleITK.PermuteAxes`, which keeps every voxel's
    physical position.
    """
    d = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    axis = int(np.argmax(np.abs(d[2, :])))
    if abs(d[2, axis]) < 0.8:
        return None
    rest = sorted((a for a in range(3) if a != axis), key=lambda a: -abs(d[0, a]))
    return [*rest, axis]


def from_axial_order(image: sitk.Image, order: list[int]) -> sitk.Image:
    """Undo ``sitk.PermuteAxes(original, order)``: ``image`` back on the original grid."""
    return sitk.PermuteAxes(image, [order.index(a) for a in range(3)])


def to_lps_storage(image: sitk.Image) -> tuple[sitk.Image, list[int], list[bool]] | None:
    """The same voxels stored as axial slices in LPS order, or None (no axis along the body).

    Columns run toward the patient's left (+x), rows toward the back (+y), slices toward
    the head (+z): :func:`axial_order`'s permutation, then each axis that runs the other
    way reversed (:func:`SimpleITK.Flip`, which keeps every voxel's physical position).
    No resampling. A scan stored any other way (a converter's RAS NIfTI, slices written
    head to foot) then gives the segmenter the very same array, so the same labels.

    Returns
    -------
    (image, order, flips) or None
        The re-stored image, the axis order applied and the axes reversed after it
        (for :func:`from_lps_storage`).
    """
    order = axial_order(image)
    if order is None:
        return None
    out = sitk.PermuteAxes(image, order) if order != [0, 1, 2] else image
    d = np.asarray(out.GetDirection(), dtype=float).reshape(3, 3)
    flips = [bool(d[a, a] < 0) for a in range(3)]
    if any(flips):
        out = sitk.Flip(out, flips)
    return out, order, flips


def from_lps_storage(
    image: sitk.Image, order: list[int], flips: list[bool], like: sitk.Image
) -> sitk.Image:
    """Undo :func:`to_lps_storage`: ``image`` (on the re-stored grid) back on ``like``'s grid."""
    out = sitk.Flip(image, flips) if any(flips) else image
    if order != [0, 1, 2]:
        out = from_axial_order(out, order)
    if out.GetSize() != like.GetSize():
        raise ValueError("from_lps_storage: the image is not on the re-stored grid of `like`")
    out.CopyInformation(like)  # the same grid; drop floating-point residue of the round trip
    return out


def slice_grid_lps(image, k: int) -> tuple[np.ndarray, np.ndarray]:
    """LPS x and y (mm) of every pixel of slice ``k``, each shaped (j, i)."""
    size_i, size_j = image.GetSize()[:2]
    d = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    sp = np.asarray(image.GetSpacing(), dtype=float)
    o = np.asarray(image.GetOrigin(), dtype=float)
    jj, ii = np.mgrid[0:size_j, 0:size_i].astype(float)
    x = o[0] + d[0, 0] * sp[0] * ii + d[0, 1] * sp[1] * jj + d[0, 2] * sp[2] * k
    y = o[1] + d[1, 0] * sp[0] * ii + d[1, 1] * sp[1] * jj + d[1, 2] * sp[2] * k
    return x, y
