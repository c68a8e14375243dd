"""Registration (follow-up -> baseline MR, MR -> CT) and label propagation.

Transform convention (SimpleITK/ITK): :attr:`RegistrationResult.transform` maps a point
of the FIXED image's physical space (LPS, mm) to the corresponding point of the MOVING
image's physical space. That is exactly what :func:`SimpleITK.Resample` needs to bring
the moving image (or a label map on the moving grid) onto the fixed grid.

Pipeline of :func:`register_rigid_affine` (same for MR -> MR and MR <-> CT; rigid only,
as the thigh moves rigidly between sessions):

1. Body and filled-femur masks of both images (:func:`body_and_femur`; CT bone above
   :data:`CT_BONE_HU`, MR femur = cortex signal void with marrow filled).
2. Starts: rough z offset from the body cross-section profiles, and that offset +-15 mm;
   in-plane, the femur centres (bodies if no femur) over the overlapping z slab.
3. Euler3D, Mattes mutual information (CT clamped to a soft-tissue window), metric
   restricted to the fixed body eroded by 8 mm (the skin outline of a fat-suppressed MR
   and of a CT differ by a few mm); three resolution levels (in-plane shrink 4, 2, 1 by
   block averaging; z shrunk only while it stays finer than the in-plane spacing); each
   start runs the coarsest level, the best one the finer levels.
4. Optionally a coarse B-spline, kept only if it clearly improves the metric.

Why: the former moments-centred rigid + affine registration with an unmasked metric
left the MR 6-57 mm off along z on the dev phantoms (the thighs are near-cylinders and
the CT outline is a few % larger than the MR one), unnoticed by the thigh Dice. Now
(``scripts/eval_registration.py``, 10 dev studies, 20 visits): MR -> CT target
registration error over the muscles 0.3-1.7 mm mean, <= 2.1 mm max; follow-up ->
baseline MR 0.4-1.1 mm mean. About 5-15 s per registration on 2 busy cores.

Quality (:func:`check_registration`): thigh-mask Dice (gross failures), femur Dice
(in-plane shifts and rotations about z) and a fat-structure probe (z shifts and tilts).
A failing result has ``ok=False``; callers must then call :func:`require_ok` (raises
:class:`~myoimg.errors.RegistrationError`) and never report numbers from it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import RegistrationError
from .morph import fill_holes
from .threads import thread_map

__all__ = [
    "DICE_THRESHOLD",
    "FEMUR_DICE_THRESHOLD",
    "STRUCTURE_GAIN_THRESHOLD",
    "body_and_femur",
    "RegistrationResult",
    "thigh_mask",
    "register_rigid_affine",
    "check_registration",
    "require_ok",
    "propagate_labels",
    "resample_labels_majority",
    "labels_to_pet",
]

#: Minimum Dice of the thigh masks after mapping for a registration to be usable.
DICE_THRESHOLD = 0.85
#: Minimum Dice of the femur masks after mapping (see :func:`check_registration`).
FEMUR_DICE_THRESHOLD = 0.82
#: Largest fat-structure Dice gain of a perturbed transform (see :func:`check_registration`).
STRUCTURE_GAIN_THRESHOLD = 0.005
#: Metric samples per resolution level (random sampling keeps each stage fast).
_SAMPLES_PER_LEVEL = 40_000
_SHRINK = (4, 2, 1)
#: Relative metric gain required to keep the B-spline stage.
_BSPLINE_MIN_GAIN = 0.005
#: CT bone threshold (HU): cortical bone is 700-1800 HU, muscle and fat below 100.
CT_BONE_HU = 250.0
#: MR <-> CT: craniocaudal spacing of the extra starts around the profile estimate (mm).
_Z_START_MM = 15.0
#: MR <-> CT: MI is evaluated inside the fixed body eroded in-plane by this much (mm).
_METRIC_ERODE_MM = 8.0
#: MR <-> CT: metric samples per level, coarse to fine (more than same-modality: MI is
#: noisier). The finest level sets the result: against the true transforms of 24
#: generated visits, 100k samples there left 0.90 mm RMS target error on average (mostly
#: craniocaudal), which moved a rectus femoris' SUVmean by up to 4.3 % with the true MR
#: labels; 300k: 0.73 mm, 3.5 % (300k at every level: 0.75 mm, at twice the time).
_MR_CT_SAMPLES = (100_000, 100_000, 300_000)
#: Last step of the rigid stage: the answer is moved along the craniocaudal axis (LPS z of
#: the fixed image) by up to _Z_SEARCH_MM, in 1 mm steps and then half a step either side
#: of the best, and the position with the best metric on one fixed sample set is kept.
#: The gradient descent stops in the shallow craniocaudal valley of these nearly
#: cylindrical limbs, short of the metric's
#: optimum (generated studies: MI over every voxel better at the true transform than at
#: the answer, -0.762 against -0.748); a regular-step refinement from there moved further
#: off. Against the true transforms of 24 generated MR -> CT visits: 0.73 mm RMS target
#: error on average (worst 2.2 mm) -> 0.43 mm (worst 1.1 mm) with every 0.5 mm tried; 0.25 mm
#: steps: 0.44 mm. Coarse to fine: 9 metric evaluations (about 2 s in all). MR <-> CT
#: only: between two MR series of one protocol (the same slice grid) linear interpolation
#: favours grid-aligned shifts, and a 5 mm test phantom moved 1.3 -> 2.3 mm off (12
#: generated follow-up -> baseline pairs gained, 0.98 -> 0.74 mm, but were left as they are).
_Z_SEARCH_MM = 3.0
#: Structure probe of :func:`check_registration`: perturbations (mm, degrees).
_PROBE_SHIFT_MM = 5.0
_PROBE_ANGLE_DEG = 2.0


@dataclass
class RegistrationResult:
    """Outcome of a registration.

    Attributes
    ----------
    transform : SimpleITK.Transform
        Maps FIXED physical points (LPS mm) to MOVING physical points (ITK convention).
    metric : float
        Final metric value of the last stage (correlation: -1 best; Mattes MI: more
        negative is better).
    quality : dict
        ``dice`` (thigh masks after mapping), ``femur_dice``, ``structure_dice``,
        ``structure_gain`` (see :func:`check_registration`), ``metric``, ``threshold``,
        and from :func:`register_rigid_affine` ``iterations`` and ``seconds`` per stage
        and ``z_starts_mm``.
    ok : bool
        True when all checks of :func:`check_registration` pass and the metric is finite.
    messages : list of str
    """

    transform: sitk.Transform
    metric: float
    quality: dict[str, Any] = field(default_factory=dict)
    ok: bool = False
    messages: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- masks


def thigh_mask(image: sitk.Image) -> sitk.Image:
    """Body/thigh mask: threshold near the noise floor, per-slice largest components, holes filled.

    The threshold lies 12 % of the way from the background level to the tissue level
    (levels = medians of the two Otsu classes of the in-plane smoothed image), so that
    dim fat (fat-suppressed MR) and the whole body outline (CT, air at -1000 HU) are both
    included. In every slice, 2-D components smaller than 10 % of the largest one are
    dropped (at most three kept: two thighs plus, e.g., a calibration tube would be the
    third) and holes are filled.

    Parameters
    ----------
    image : SimpleITK.Image
        3-D scalar image (any modality where the body is brighter than air).

    Returns
    -------
    SimpleITK.Image
        uint8 mask (1 = thigh/body) on the image grid.
    """
    from skimage.filters import threshold_otsu

    arr = sitk.GetArrayFromImage(image).astype(np.float32)
    smooth = ndimage.gaussian_filter(arr, sigma=(0, 1.0, 1.0))
    sub = smooth[:, ::2, ::2]
    if float(sub.max()) == float(sub.min()):
        out = np.zeros(arr.shape, np.uint8)
    else:
        t = threshold_otsu(sub)
        lo = float(np.median(sub[sub <= t]))
        hi = float(np.median(sub[sub > t]))
        binary = smooth > lo + 0.12 * (hi - lo)
        out = np.zeros(arr.shape, np.uint8)
        for k in range(arr.shape[0]):
            lab, n = ndimage.label(binary[k])
            if n == 0:
                continue
            sizes = ndimage.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))
            order = np.argsort(sizes)[::-1][:3]
            keep = [i + 1 for i in order if sizes[i] >= 0.1 * sizes[order[0]]]
            out[k] = fill_holes(np.isin(lab, keep))
    mask = sitk.GetImageFromArray(out)
    mask.CopyInformation(image)
    return mask


def _dilate(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    radius = [max(1, int(round(radius_mm / s))) for s in mask.GetSpacing()]
    radius[2] = min(radius[2], 1)
    return sitk.BinaryDilate(mask, radius, sitk.sitkBall, 0, 1)


def _same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize() == b.GetSize() and a.GetOrigin() == b.GetOrigin()
            and a.GetSpacing() == b.GetSpacing() and a.GetDirection() == b.GetDirection())


def _mapped_masks(
    masks: Sequence[sitk.Image], reference: sitk.Image, transform: sitk.Transform
) -> list[np.ndarray]:
    """Boolean arrays of ``masks`` (> 0 = in) resampled onto ``reference`` through
    ``transform`` (nearest neighbour, 0 outside the mask's grid).

    Masks on one grid travel as the bits of one uint8 image: nearest neighbour picks the
    same source voxel whatever its value, so one resample gives what one per mask gave
    (each costs ~30 ms for a CT grid).
    """
    if len(masks) > 8 or not all(_same_grid(m, masks[0]) for m in masks[1:]):
        return [_mapped_masks([m], reference, transform)[0] for m in masks]
    packed = np.zeros(sitk.GetArrayViewFromImage(masks[0]).shape, np.uint8)
    for bit, mask in enumerate(masks):
        packed |= (sitk.GetArrayViewFromImage(mask) > 0).astype(np.uint8) << bit
    img = sitk.GetImageFromArray(packed)
    img.CopyInformation(masks[0])
    out = sitk.Resample(img, reference, transform, sitk.sitkNearestNeighbor, 0)
    bits = sitk.GetArrayViewFromImage(out)
    return [(bits & (1 << bit)) != 0 for bit in range(len(masks))]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(bool)
    b = b.astype(bool)
    denom = a.sum() + b.sum()
    return float(2.0 * np.logical_and(a, b).sum() / denom) if denom else 0.0


# --------------------------------------------------------------------------- registration


def _shrink_factors(image: sitk.Image, level_shrink: int) -> list[int]:
    """Per-axis shrink: ``level_shrink`` in-plane; along z only while z stays the finest axis.

    Thigh series have thick slices (e.g. 0.8 x 0.8 x 5 mm): shrinking z as much as the
    rows and columns would leave a handful of 20 mm slices and lose the craniocaudal
    information, so z is shrunk only down to the in-plane spacing of the level.
    """
    sx, sy, sz = image.GetSpacing()
    z = max(1, int(level_shrink * min(sx, sy) // sz))
    return [level_shrink, level_shrink, min(z, level_shrink)]


def _method(
    fixed: sitk.Image,
    multimodal: bool,
    fixed_mask: sitk.Image | None,
    iterations: int,
    bspline: bool = False,
) -> sitk.ImageRegistrationMethod:
    """One single-resolution registration method (the pyramid is built by the caller)."""
    reg = sitk.ImageRegistrationMethod()
    if multimodal:
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    else:
        reg.SetMetricAsCorrelation()
    n = float(np.prod(fixed.GetSize()))
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    samples = _SAMPLES_PER_LEVEL // 4 if bspline else _SAMPLES_PER_LEVEL  # B-spline: costly
    reg.SetMetricSamplingPercentage(min(1.0, samples / n), 12345)  # fixed seed: reproducible
    if fixed_mask is not None:
        reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetShrinkFactorsPerLevel([1])
    reg.SetSmoothingSigmasPerLevel([0])
    if bspline:
        # Thousands of parameters, already in mm (control-point displacements): unit scales
        # (physical-shift estimation is slow there) and a bounded step, so that the
        # deformation refines the affine result instead of running away on noise.
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=0.5,
            minStep=0.05,
            numberOfIterations=iterations,
            relaxationFactor=0.5,
            gradientMagnitudeTolerance=1e-8,
        )
        return reg
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,  # mm, via the physical-shift scales
        minStep=0.01,
        numberOfIterations=iterations,
        relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-8,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    return reg


def _pyramid(image: sitk.Image, mask: sitk.Image | None) -> list[tuple[sitk.Image, Any]]:
    """(image, mask) per level, coarse to fine; BinShrink averages (anti-aliased)."""
    levels = []
    for s in _SHRINK:
        if s == 1:
            levels.append((image, mask))
            continue
        small = sitk.BinShrink(image, _shrink_factors(image, s))
        small_mask = None
        if mask is not None:
            small_mask = sitk.Resample(mask, small, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        levels.append((small, small_mask))
    return levels


def _soft_tissue_window(image: sitk.Image) -> sitk.Image:
    """Clamp a CT (values in HU, air about -1000) to [-250, 250] HU; other images unchanged.

    Air and cortical bone otherwise dominate the joint histogram of mutual information and
    the thighs' craniocaudal alignment was found to drift by several mm on test phantoms;
    the fat/muscle contrast that MR also shows lies inside this window.
    """
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(image)
    if stats.GetMinimum() < -500.0:
        return sitk.Clamp(image, sitk.sitkFloat32, -250.0, 250.0)
    return image


def _area_profile(mask: sitk.Image, step: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(z positions, cross-section area in mm^2) on a regular z grid; None if not axial."""
    direction = np.asarray(mask.GetDirection()).reshape(3, 3)
    if abs(abs(direction[2, 2]) - 1.0) > 1e-3:
        return None
    sx, sy, sz = mask.GetSpacing()
    area = sitk.GetArrayViewFromImage(mask).reshape(mask.GetSize()[2], -1).sum(axis=1) * sx * sy
    z = mask.GetOrigin()[2] + direction[2, 2] * sz * np.arange(mask.GetSize()[2])
    order = np.argsort(z)
    grid = np.arange(z[order][0], z[order][-1] + 1e-6, step)
    return grid, np.interp(grid, z[order], area[order].astype(float))


def _matching_slab(fmask: sitk.Image, mmask: sitk.Image, step: float = 2.5) -> sitk.Image | None:
    """Fixed mask restricted to the z slab that matches the moving mask, or None.

    Used when the fixed image is more than 1.3 times longer (z) than the moving one.
    The per-slice thigh cross-section area (mm^2) of the moving image is slid along the
    fixed one; the offset with the smallest mean squared area difference wins.
    """
    fp, mp = _area_profile(fmask, step), _area_profile(mmask, step)
    if fp is None or mp is None:
        return None
    (fz, fa), (mz, ma) = fp, mp
    if len(fz) < 1.3 * len(mz) or len(mz) < 3:
        return None
    costs = [np.mean((fa[i : i + len(ma)] - ma) ** 2) for i in range(len(fa) - len(ma) + 1)]
    start = int(np.argmin(costs))
    zmin, zmax = fz[start] - step, fz[start + len(ma) - 1] + step
    direction = np.asarray(fmask.GetDirection()).reshape(3, 3)
    z = fmask.GetOrigin()[2] + direction[2, 2] * fmask.GetSpacing()[2] * np.arange(
        fmask.GetSize()[2]
    )
    arr = sitk.GetArrayFromImage(fmask)
    arr[(z < zmin) | (z > zmax)] = 0
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(fmask)
    return out


def _evaluate(
    fixed: sitk.Image,
    moving: sitk.Image,
    mask: sitk.Image,
    multimodal: bool,
    transform: sitk.Transform,
) -> float:
    """Metric of ``transform`` at full resolution on a fixed random sample set."""
    reg = _method(fixed, multimodal, mask, 1)
    reg.SetInitialTransform(transform)
    return float(reg.MetricEvaluate(fixed, moving))


# --------------------------------------------------------------------------- MR <-> CT


def _is_ct(image: sitk.Image) -> bool:
    """CT in Hounsfield units: air is about -1000 (no MR magnitude is negative)."""
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(image)
    return stats.GetMinimum() < -500.0


def _slice_grid(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """LPS x and y (mm) of the pixels of an axial slice, each shaped (j, i)."""
    nx, ny = image.GetSize()[:2]
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    sp, o = np.asarray(image.GetSpacing()), np.asarray(image.GetOrigin())
    j, i = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    x = o[0] + d[0, 0] * sp[0] * i + d[0, 1] * sp[1] * j
    y = o[1] + d[1, 0] * sp[0] * i + d[1, 1] * sp[1] * j
    return x, y


def body_and_femur(
    image: sitk.Image, *, thigh: sitk.Image | None = None
) -> tuple[sitk.Image, sitk.Image]:
    """Body (thighs) and filled-femur masks of an axial CT or MR thigh image.

    CT (detected by air near -1000 HU): body = :func:`thigh_mask`; femur = voxels above
    :data:`CT_BONE_HU` inside the body, holes (marrow) filled per slice, 2-D components of
    at least 10 mm equivalent diameter. MR (any contrast): body from
    :func:`myoimg.segment.thigh.body_mask`, femur from
    :func:`myoimg.segment.femur.find_femurs` per slice (cortex is a signal void on every
    sequence; holes filled). Both femur masks thus describe the same object, the whole
    bone cross-section, which is rigid and does not change between sessions.

    Parameters
    ----------
    image : SimpleITK.Image
        Axial CT (HU) or MR thigh image.
    thigh : SimpleITK.Image, optional
        :func:`thigh_mask` of ``image`` when the caller has it already: a CT's body is
        that mask (not computed twice); unused for MR.

    Returns
    -------
    body, femur : SimpleITK.Image
        uint8 masks on the image grid.
    """
    from .femur import find_femurs
    from .thigh import body_mask

    arr = sitk.GetArrayFromImage(image).astype(np.float32)
    sx, sy = image.GetSpacing()[:2]
    femur = np.zeros(arr.shape, bool)
    if _is_ct(image):
        body = sitk.GetArrayFromImage(thigh if thigh is not None else thigh_mask(image)) > 0
        min_px = np.pi * 5.0**2 / (sx * sy)
        for k in range(arr.shape[0]):
            bone = fill_holes((arr[k] > CT_BONE_HU) & body[k])
            lab, n = ndimage.label(bone)
            if n:
                sizes = np.bincount(lab.ravel())
                sizes[0] = 0
                femur[k] = (sizes >= min_px)[lab]
    else:
        body = body_mask(arr, (sx, sy))
        x, y = _slice_grid(image)
        def femur_slice(k: int) -> list:
            return find_femurs(arr[k], body[k], (sx, sy), x, y)

        for k, cands in enumerate(thread_map(femur_slice, range(arr.shape[0]))):
            for cand in cands:
                femur[k] |= cand.mask
    out = []
    for a in (body, femur):
        img = sitk.GetImageFromArray(a.astype(np.uint8))
        img.CopyInformation(image)
        out.append(img)
    return out[0], out[1]


def _slice_profile(mask: sitk.Image, step: float) -> tuple[np.ndarray, np.ndarray]:
    """(z grid, mask area per slice in mm^2): area against the LPS z of each slice centre.

    Works for oblique slices too (the in-plane area is not projected: a few-degree
    obliquity changes it by well under 1 %).
    """
    sx, sy, _ = mask.GetSpacing()
    nx, ny, nz = mask.GetSize()
    area = sitk.GetArrayViewFromImage(mask).reshape(nz, -1).sum(axis=1) * sx * sy
    z = np.array(
        [mask.TransformContinuousIndexToPhysicalPoint(((nx - 1) / 2, (ny - 1) / 2, k))[2]
         for k in range(nz)]
    )  # fmt: skip
    order = np.argsort(z)
    grid = np.arange(z[order][0], z[order][-1] + 1e-6, step)
    return grid, np.interp(grid, z[order], area[order].astype(float))


def _z_offset(fixed_body: sitk.Image, moving_body: sitk.Image, step: float = 2.0) -> float:
    """Rough z offset (fixed z - moving z, mm) by sliding the body cross-section profiles.

    The moving profile slides along the fixed one (at least 60 % of the shorter one
    overlapping); the offset with the smallest mean squared area difference wins. Only a
    starting point: MR and CT body outlines differ by a few % in area, which on a tapering
    thigh biases this by 10-20 mm, hence the multi-start intensity refinement after it.
    """
    (fz, fa), (mz, ma) = _slice_profile(fixed_body, step), _slice_profile(moving_body, step)
    nf, nm = len(fz), len(mz)
    min_overlap = max(1, int(0.6 * min(nf, nm)))
    best, best_cost = 0.0, np.inf
    for s in range(-(nm - min_overlap), nf - min_overlap + 1):  # moving index 0 at fixed s
        lo, hi = max(0, s), min(nf, s + nm)
        cost = float(np.mean((fa[lo:hi] - ma[lo - s : hi - s]) ** 2))
        if cost < best_cost:
            best, best_cost = float(fz[0] + s * step - mz[0]), cost
    return best


def _z_range(image: sitk.Image) -> tuple[float, float]:
    nx, ny, nz = image.GetSize()
    z = [image.TransformContinuousIndexToPhysicalPoint(((nx - 1) / 2, (ny - 1) / 2, k))[2]
         for k in (0, nz - 1)]  # fmt: skip
    return min(z), max(z)


def _centroid(mask: sitk.Image, zmin: float | None = None, zmax: float | None = None):
    """Centre of mass (LPS mm) of a mask, optionally within a z slab; None if empty."""
    arr = sitk.GetArrayFromImage(mask).astype(bool)
    if zmin is not None:
        nx, ny, nz = mask.GetSize()
        z = np.array(
            [mask.TransformContinuousIndexToPhysicalPoint(((nx - 1) / 2, (ny - 1) / 2, k))[2]
             for k in range(nz)]
        )  # fmt: skip
        arr[(z < zmin) | (z > zmax)] = False
    if not arr.any():
        return None
    kji = np.argwhere(arr).mean(axis=0)
    return np.asarray(
        mask.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in kji[::-1]))
    )


def _disc(rx: int, ry: int) -> np.ndarray:
    """ITK's ``sitkBall`` structuring element of radius (rx, ry) pixels as a (j, i) array."""
    j, i = np.ogrid[-ry : ry + 1, -rx : rx + 1]
    return (i / (rx + 0.5)) ** 2 + (j / (ry + 0.5)) ** 2 <= 1.0


def _erode_inplane(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """Erode a 0/1 mask slice by slice with a disc of ``radius_mm`` (at least 1 pixel).

    The voxels of ``sitk.BinaryErode(mask, [rx, ry, 0], sitk.sitkBall, 0, 1)`` (outside
    the image counts as foreground there too), with SciPy: ITK's filter took ~0.35 s
    per call on a 256 x 256 x 47 CT body mask, SciPy ~0.05 s.
    """
    rx, ry = (max(1, int(round(radius_mm / s))) for s in mask.GetSpacing()[:2])
    arr = sitk.GetArrayViewFromImage(mask) == 1
    out = sitk.GetImageFromArray(
        ndimage.binary_erosion(arr, _disc(rx, ry)[None], border_value=1).astype(np.uint8)
    )
    out.CopyInformation(mask)
    return out


def _register_rigid_multistart(
    fixed: sitk.Image,
    moving: sitk.Image,
    fixed_parts: tuple[sitk.Image, sitk.Image],
    moving_parts: tuple[sitk.Image, sitk.Image],
    quality: dict[str, Any],
    messages: list[str],
) -> tuple[sitk.Euler3DTransform, float]:
    """Rigid registration (MR -> MR or MR <-> CT): femur-centred, multi-start Mattes MI.

    1. z: rough offset from the body cross-section profiles (:func:`_z_offset`);
       starts at that offset and +-:data:`_Z_START_MM` around it.
    2. In-plane: centre of the femurs (or bodies) over the overlapping z slab.
    3. Each start runs the coarsest level of a Mattes-MI Euler3D registration
       (soft-tissue window on CT) with the metric restricted to the fixed body eroded by
       :data:`_METRIC_ERODE_MM` (the skin outline differs between a fat-suppressed MR and
       a CT by a few mm and pulled the old registration 6-57 mm off along z); the best
       start by metric value is refined on the two finer levels.
       Metric samples per level: :data:`_MR_CT_SAMPLES`.
    4. MR <-> CT only: a craniocaudal search round the answer (:func:`_craniocaudal_search`,
       see :data:`_Z_SEARCH_MM`).
    """
    t0 = time.perf_counter()
    f_win, m_win = _soft_tissue_window(fixed), _soft_tissue_window(moving)
    metric_mask = _erode_inplane(fixed_parts[0], _METRIC_ERODE_MM)
    if not np.any(sitk.GetArrayViewFromImage(metric_mask)):
        metric_mask = fixed_parts[0]
    fixed_levels = _pyramid(f_win, metric_mask)
    moving_levels = _pyramid(m_win, None)
    levels = list(zip(fixed_levels, moving_levels, strict=True))
    dz0 = _z_offset(fixed_parts[0], moving_parts[0])
    mz, fz = _z_range(moving), _z_range(fixed)
    its = 0

    def run_level(level: int, transform: sitk.Euler3DTransform) -> float:
        nonlocal its
        (f, fm), (m, _) = levels[level]
        reg = _method(f, True, fm, 150)
        n = float(np.prod(f.GetSize()))
        reg.SetMetricSamplingPercentage(min(1.0, _MR_CT_SAMPLES[level] / n), 12345)
        reg.SetInitialTransform(transform, inPlace=True)
        reg.Execute(f, m)
        its += int(reg.GetOptimizerIteration())
        return float(reg.GetMetricValue())

    starts = []
    for dz in (dz0, dz0 - _Z_START_MM, dz0 + _Z_START_MM):
        # Overlap of the two z ranges, in moving coordinates (fixed z = moving z + dz).
        lo, hi = max(mz[0], fz[0] - dz), min(mz[1], fz[1] - dz)
        fc, mc = _centroid(fixed_parts[1], lo + dz, hi + dz), _centroid(moving_parts[1], lo, hi)
        if fc is None or mc is None:  # no femur in view: centre on the bodies
            fc, mc = _centroid(fixed_parts[0], lo + dz, hi + dz), _centroid(moving_parts[0], lo, hi)
        if fc is None or mc is None:
            continue
        rigid = sitk.Euler3DTransform()
        rigid.SetCenter(tuple(float(v) for v in fc))
        rigid.SetTranslation((float(mc[0] - fc[0]), float(mc[1] - fc[1]), float(-dz)))
        try:
            value = run_level(0, rigid)
        except RuntimeError:  # e.g. too few samples inside the moving image
            continue
        starts.append((value, dz, rigid))
    if not starts:
        raise RegistrationError("MR <-> CT registration impossible: the images do not overlap")
    starts.sort(key=lambda s: s[0])
    value, dz, rigid = starts[0]
    for level in range(1, len(levels)):
        value = run_level(level, rigid)
    search = ""
    if _is_ct(fixed) or _is_ct(moving):
        (f, fm), (m, _) = levels[-1]
        shift, value = _craniocaudal_search(f, m, fm, rigid, _MR_CT_SAMPLES[-1])
        quality["z_search_mm"] = shift
        search = f"; craniocaudal search {shift:+.1f} mm"
    quality["iterations"]["rigid"] = its
    quality["seconds"]["rigid"] = round(time.perf_counter() - t0, 2)
    quality["z_starts_mm"] = [round(s[1], 1) for s in starts]
    messages.append(
        f"rigid Mattes MI from {len(starts)} craniocaudal starts "
        f"(best {dz:+.0f} mm), femur-centred{search}"
    )
    return rigid, value


def _craniocaudal_search(
    fixed: sitk.Image, moving: sitk.Image, mask: sitk.Image, rigid: sitk.Euler3DTransform,
    samples: int,
) -> tuple[float, float]:
    """Move ``rigid`` (in place) along the fixed image's LPS z to the best Mattes MI.

    Shifts of -_Z_SEARCH_MM..+_Z_SEARCH_MM in 1 mm steps, then 0.5 mm either side of the
    best, each scored on the same random sample set (``samples`` points of the fixed image,
    those inside ``mask``), so that the scores differ by the shift only; no shift wins
    ties. Returns the shift (mm) and its metric value.
    """
    rot = np.asarray(rigid.GetMatrix()).reshape(3, 3)
    t0 = np.asarray(rigid.GetTranslation())
    reg = _method(fixed, True, mask, 1)  # the rigid stage's metric, on ``samples`` points
    reg.SetMetricSamplingPercentage(min(1.0, samples / float(np.prod(fixed.GetSize()))), 12345)
    # Values only: the gradient images the metric would build of both images on every
    # evaluation are not needed (0.7 -> 0.2 s per evaluation, same value).
    reg.SetMetricUseFixedImageGradientFilter(False)
    reg.SetMetricUseMovingImageGradientFilter(False)

    def score(dz: float) -> float:
        # T(p + d) = R (p + d - c) + c + t: a shift d of the fixed point adds R d to t.
        trial = sitk.Euler3DTransform(rigid)
        trial.SetTranslation(tuple(float(v) for v in t0 + rot @ (0.0, 0.0, dz)))
        reg.SetInitialTransform(trial)
        return float(reg.MetricEvaluate(fixed, moving))

    best = (0.0, score(0.0))

    def consider(dz: float) -> None:
        nonlocal best
        value = score(dz)
        if value < best[1]:
            best = (dz, value)

    n = int(_Z_SEARCH_MM)
    for dz in range(-n, n + 1):
        if dz:
            consider(float(dz))
    centre = best[0]
    for dz in (centre - 0.5, centre + 0.5):  # half a step either side of the best
        consider(dz)
    rigid.SetTranslation(tuple(float(v) for v in t0 + rot @ (0.0, 0.0, best[0])))
    return best[0], best[1]


def _structure(
    image: sitk.Image, body: sitk.Image, femur: sitk.Image
) -> tuple[np.ndarray, np.ndarray]:
    """(domain, dark structure) boolean arrays: fat planes inside the thigh.

    Domain: body eroded in-plane by 5 mm (no skin edge) minus the femur. Structure: fat,
    i.e. below -30 HU on CT, below half the domain median on MR (fat-suppressed: the
    intermuscular and subcutaneous fat are dark, muscle is the bulk of the domain).
    """
    domain = sitk.GetArrayFromImage(_erode_inplane(body, 5.0)).astype(bool)
    domain &= ~sitk.GetArrayViewFromImage(femur).astype(bool)
    arr = sitk.GetArrayViewFromImage(image)
    if not domain.any():
        return domain, domain.copy()
    level = -30.0 if _is_ct(image) else 0.5 * float(np.median(arr[domain]))
    return domain, (arr < level) & domain


def _structure_probe(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: sitk.Transform,
    fixed_parts: tuple[sitk.Image, sitk.Image],
    moving_parts: tuple[sitk.Image, sitk.Image],
) -> tuple[float, float]:
    """(fat-structure Dice at ``transform``, best gain of a nearby perturbed transform).

    The fat planes between the muscles change along the thigh, so unlike the outlines
    they pin down z and the tilts. The absolute Dice depends on the images (MR fat
    suppression, noise), so the check is relative: the transform is perturbed by
    +-:data:`_PROBE_SHIFT_MM` along z and +-:data:`_PROBE_ANGLE_DEG` about x and y
    (about the centre of the fixed body) and the largest Dice increase is returned; a
    correct registration sits at the optimum (gain < 0), a misregistered one does not.
    """
    fdom, fstr = _structure(fixed, *fixed_parts)
    mdom, mstr = _structure(moving, *moving_parts)
    if fstr.sum() < 100 or mstr.sum() < 100:
        return float("nan"), float("nan")

    def to_img(a: np.ndarray) -> sitk.Image:
        img = sitk.GetImageFromArray(a.astype(np.uint8))
        img.CopyInformation(moving)
        return img

    moving_masks = [to_img(mdom), to_img(mstr)]
    centre = _centroid(fixed_parts[0])
    centre = tuple(float(v) for v in (centre if centre is not None else (0.0, 0.0, 0.0)))

    def dice(t: sitk.Transform) -> float:
        d, s = _mapped_masks(moving_masks, fixed, t)
        d &= fdom
        return _dice(fstr & d, s & d)

    base = dice(transform)
    gains = []
    a = math.radians(_PROBE_ANGLE_DEG)
    for shift, angles in (
        ((0, 0, _PROBE_SHIFT_MM), (0, 0, 0)), ((0, 0, -_PROBE_SHIFT_MM), (0, 0, 0)),
        ((0, 0, 0), (a, 0, 0)), ((0, 0, 0), (-a, 0, 0)),
        ((0, 0, 0), (0, a, 0)), ((0, 0, 0), (0, -a, 0)),
    ):  # fmt: skip
        p = sitk.Euler3DTransform()
        p.SetCenter(centre)
        p.SetRotation(*angles)
        p.SetTranslation(shift)
        gains.append(dice(sitk.CompositeTransform([transform, p])) - base)
    return base, max(gains)


def register_rigid_affine(
    fixed: sitk.Image,
    moving: sitk.Image,
    *,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
    deformable: bool = False,
    multimodal: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RegistrationResult:
    """Register ``moving`` to ``fixed``: rigid (multi-start MI), then optional B-spline.

    The name is historical: there is no affine stage any more (see the module docstring:
    a free scaling traded against the craniocaudal offset).

    Parameters
    ----------
    fixed, moving : SimpleITK.Image
        3-D scalar images in LPS (e.g. baseline and follow-up T2-FS; or CT and MR). A CT
        is recognised by air near -1000 HU.
    fixed_mask, moving_mask : SimpleITK.Image, optional
        Masks of the thighs; default :func:`thigh_mask` of each image. Used by the quality
        check and for the B-spline metric (fixed mask dilated by 10 mm).
    deformable : bool
        Add a B-spline stage (control grid about every 100 mm in-plane, one span in z;
        20 bounded steps per level on the two finest levels): a gentle correction only.
    multimodal : bool
        B-spline stage metric: Mattes MI (True) or correlation. The rigid stage always
        uses Mattes MI (insensitive to gain changes and to the modality).
    progress : callable, optional
        Called with a short stage description ("rigid", "bspline", "quality check").

    Returns
    -------
    RegistrationResult
        With the quality check of :func:`check_registration` already applied; use
        :func:`require_ok` before using the transform for any number.

    Raises
    ------
    RegistrationError
        Empty thigh mask, or the images do not overlap from any start.
    """
    fixed = sitk.Cast(fixed, sitk.sitkFloat32)
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    say = progress or (lambda _msg: None)
    fthigh = thigh_mask(fixed) if fixed_mask is None else None
    mthigh = thigh_mask(moving) if moving_mask is None else None
    fmask = sitk.Cast((fixed_mask if fthigh is None else fthigh) > 0, sitk.sitkUInt8)
    mmask = sitk.Cast((moving_mask if mthigh is None else mthigh) > 0, sitk.sitkUInt8)
    if not np.any(sitk.GetArrayViewFromImage(fmask)) or not np.any(
        sitk.GetArrayViewFromImage(mmask)
    ):
        raise RegistrationError("registration impossible: an image has an empty thigh mask")
    quality: dict[str, Any] = {"iterations": {}, "seconds": {}}
    messages: list[str] = []
    # A fixed image much longer than the moving one (whole-body PET/CT vs thigh MR): find
    # the matching slab first, so that centring and metric use the overlapping part only.
    full_fmask = fmask
    slab = _matching_slab(fmask, mmask)
    if slab is not None:
        fmask = slab
        messages.append("fixed image longer than moving: matched by thigh cross-section profile")

    # Rigid only, for both MR -> MR and MR <-> CT: the thigh moves rigidly between
    # sessions, and an affine stage was found to trade a few % of scaling against the
    # craniocaudal offset on these nearly cylindrical limbs.
    fparts = body_and_femur(fixed, thigh=fthigh)
    mparts = body_and_femur(moving, thigh=mthigh)
    say("rigid")
    rigid, metric = _register_rigid_multistart(fixed, moving, fparts, mparts, quality, messages)
    final: sitk.Transform = rigid
    fixed_raw, moving_raw = fixed, moving
    if deformable:
        # The B-spline stage's images, mask and pyramids (the rigid stage builds its own).
        if multimodal:
            fixed, moving = _soft_tissue_window(fixed), _soft_tissue_window(moving)
        metric_mask = _dilate(fmask, 10.0)
        fixed_levels = _pyramid(fixed, metric_mask)
        moving_levels = _pyramid(moving, None)
        size_mm = np.asarray(fixed.GetSize()) * np.asarray(fixed.GetSpacing())
        mesh = [max(1, int(size_mm[0] // 100)), max(1, int(size_mm[1] // 100)), 1]
        bspline = sitk.BSplineTransformInitializer(fixed, mesh)
        say("bspline")
        t0 = time.perf_counter()
        its = 0
        # The two finest levels: the rigid stage already did the coarse alignment.
        for (f, fm), (m, _) in list(zip(fixed_levels, moving_levels, strict=True))[-2:]:
            reg = _method(f, multimodal, fm, 20, bspline=True)
            reg.SetMovingInitialTransform(rigid)
            reg.SetInitialTransform(bspline, inPlace=True)
            reg.Execute(f, m)
            its += int(reg.GetOptimizerIteration())
        quality["iterations"]["bspline"] = its
        quality["seconds"]["bspline"] = round(time.perf_counter() - t0, 2)
        composite = sitk.CompositeTransform(3)
        composite.AddTransform(rigid)  # applied second
        composite.AddTransform(bspline)  # applied first (fixed point -> bspline -> rigid)
        # Keep the deformation only if it clearly improves the metric (same samples, full
        # resolution); otherwise it mostly fits noise and moves landmarks (rigid phantoms).
        rigid_metric = _evaluate(fixed, moving, metric_mask, multimodal, rigid)
        bspline_metric = _evaluate(fixed, moving, metric_mask, multimodal, composite)
        quality["bspline_used"] = bool(
            rigid_metric - bspline_metric > _BSPLINE_MIN_GAIN * abs(rigid_metric)
        )
        if quality["bspline_used"]:
            metric = bspline_metric
            final = composite
        else:
            messages.append(
                "B-spline stage did not improve the metric by "
                f"{_BSPLINE_MIN_GAIN:.1%}; rigid result kept"
            )
    say("quality check")
    result = check_registration(
        fixed_raw, moving_raw, final, fixed_mask=full_fmask, moving_mask=mmask, metric=metric,
        fixed_parts=fparts, moving_parts=mparts,
    )  # fmt: skip
    result.quality.update(quality)
    result.messages = messages + result.messages
    return result


def check_registration(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: sitk.Transform,
    *,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
    metric: float = float("nan"),
    threshold: float = DICE_THRESHOLD,
    fixed_parts: tuple[sitk.Image, sitk.Image] | None = None,
    moving_parts: tuple[sitk.Image, sitk.Image] | None = None,
) -> RegistrationResult:
    """Quality of a fixed->moving transform: thigh outline, femur overlap, fat structure.

    Three checks, all on masks mapped from the moving onto the fixed grid through
    ``transform`` (nearest neighbour) and compared only where the moving image has data
    (its field of view mapped the same way):

    1. ``dice``: thigh masks (:func:`thigh_mask`), must be >= ``threshold`` (default
       :data:`DICE_THRESHOLD` = 0.85). Catches gross failures only: on the analytic test
       phantom a pure shift lowers it to 0.96 / 0.92 / 0.84 at 5 / 10 / 20 mm in-plane
       and 0.98 / 0.97 / 0.94 along z; correct MR -> CT results on the dev phantoms give
       0.88-0.98 (fat-suppressed skin edge vs CT body).
    2. ``femur_dice``: filled femur masks (:func:`body_and_femur`), must be >=
       :data:`FEMUR_DICE_THRESHOLD` = 0.82. The bone is rigid and sharp on MR and CT.
       Measured on the 10 dev phantom studies (20 visits, MR -> CT) at the TRUE transform:
       0.89-0.92; shifted by 5 mm in x or y: 0.75-0.78; rotated 3 deg about z:
       0.70-0.74; tilted 3 deg about x or y: 0.85-0.88 (not caught: see 3); shifted
       along z: unchanged (the shaft is a near-cylinder). NaN (check skipped, message)
       when either image shows no femur.
    3. ``structure_gain``: the fat planes between muscles (:func:`_structure_probe`) pin
       down z and the tilts. The Dice of the fat masks is compared with that of the
       transform perturbed by +-5 mm along z and +-2 deg about x and y; the best gain
       must be <= :data:`STRUCTURE_GAIN_THRESHOLD` = 0.005 (a correct registration is at
       the optimum). Dev phantoms at the TRUE transform: -0.086..-0.008; off by 3 mm in
       z: -0.003..+0.013; by 5 mm in z: +0.012..+0.111; by 10 mm: +0.018..+0.151;
       tilted 3 deg: +0.038..+0.217. NaN (skipped) when either image has hardly any fat
       structure.

    ``ok`` requires all three (NaN checks count as passed) and a finite ``metric`` (NaN =
    not given). ``fixed_parts``/``moving_parts`` are ``(body, femur)`` masks from
    :func:`body_and_femur` (computed when not given).
    """
    fmask = fixed_mask if fixed_mask is not None else thigh_mask(fixed)
    mmask = moving_mask if moving_mask is not None else thigh_mask(moving)
    fparts = fixed_parts if fixed_parts is not None else body_and_femur(fixed)
    mparts = moving_parts if moving_parts is not None else body_and_femur(moving)

    # Compare only where the moving image has data (its field of view mapped onto the
    # fixed grid): a whole-body CT must not be penalised for the legs the MR never saw.
    ones = sitk.Image(mmask.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(mmask)
    domain, mthigh, mfem = _mapped_masks([ones, mmask, mparts[1]], fmask, transform)
    fixed_in = sitk.GetArrayViewFromImage(fmask).astype(bool) & domain
    dice = _dice(fixed_in, mthigh)
    ffem = sitk.GetArrayFromImage(fparts[1]).astype(bool) & domain
    fem_dice = _dice(ffem, mfem) if ffem.any() and mfem.any() else float("nan")
    base, gain = _structure_probe(fixed, moving, transform, fparts, mparts)
    finite = not math.isinf(float(metric))  # NaN = metric not given
    messages = []
    if dice < threshold:
        messages.append(
            f"registration failed its quality check: thigh-mask Dice {dice:.3f} < {threshold:.2f}"
        )
    if fem_dice < FEMUR_DICE_THRESHOLD:
        messages.append(
            "registration failed its quality check: femur Dice "
            f"{fem_dice:.3f} < {FEMUR_DICE_THRESHOLD:.2f}"
        )
    elif math.isnan(fem_dice):
        messages.append("no femur found in both images: femur overlap not checked")
    if gain > STRUCTURE_GAIN_THRESHOLD:
        messages.append(
            "registration failed its quality check: a 5 mm / 2 deg perturbation improves "
            f"the fat-structure Dice by {gain:.3f} (> {STRUCTURE_GAIN_THRESHOLD}); "
            "not at the optimum"
        )
    elif math.isnan(gain):
        messages.append("too little fat structure: craniocaudal alignment not checked")
    if not finite:
        messages.append("registration metric is not finite")
    ok = (
        dice >= threshold
        and not fem_dice < FEMUR_DICE_THRESHOLD
        and not gain > STRUCTURE_GAIN_THRESHOLD
        and finite
    )
    return RegistrationResult(
        transform=transform,
        metric=float(metric),
        quality={
            "dice": dice, "femur_dice": fem_dice, "structure_dice": base,
            "structure_gain": gain, "metric": float(metric), "threshold": threshold,
        },  # fmt: skip
        ok=bool(ok),
        messages=messages,
    )


def require_ok(result: RegistrationResult) -> RegistrationResult:
    """Return ``result`` if it passed its quality check, else raise RegistrationError."""
    if not result.ok:
        detail = "; ".join(result.messages) or "quality check failed"
        raise RegistrationError(f"registration not usable: {detail}")
    return result


# --------------------------------------------------------------------------- labels


def propagate_labels(
    labels: sitk.Image, transform: sitk.Transform, reference: sitk.Image
) -> sitk.Image:
    """Nearest-neighbour resample of a label map from the moving grid onto ``reference``.

    ``transform`` maps reference (fixed) points to moving points, as returned by
    :func:`register_rigid_affine`. Voxels mapped outside the label map become 0.
    """
    return sitk.Resample(labels, reference, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def resample_labels_majority(
    labels: sitk.Image, reference: sitk.Image, transform: sitk.Transform | None = None
) -> sitk.Image:
    """Resample a fine label map onto a coarser grid by per-label majority (fraction argmax).

    Each label's indicator (and the background's) is low-pass filtered with a Gaussian
    whose FWHM per axis is sqrt(t^2 - s^2) (t: reference spacing, s: label spacing, axes
    assumed roughly aligned), approximating the fraction of each coarse voxel occupied by
    the label; the fractions are linearly resampled onto ``reference`` and the label with
    the largest fraction wins (background included). Unlike nearest neighbour, a coarse
    voxel is labelled only when the label fills most of it, which limits partial-volume
    spill (e.g. 1 mm MR labels onto 4 mm PET voxels).
    """
    transform = transform if transform is not None else sitk.Transform()
    arr = sitk.GetArrayFromImage(labels)
    ids = [int(v) for v in np.unique(arr) if v != 0]
    src = np.asarray(labels.GetSpacing())
    dst = np.asarray(reference.GetSpacing())
    fwhm = np.sqrt(np.maximum(dst**2 - src**2, 0.0))
    sigma_vox = (fwhm / 2.3548 / src)[::-1]  # (k, j, i) order
    # Each label is filtered and resampled on its own bounding box, padded by the
    # filter's reach (scipy truncates the kernel at 4 sigma): outside that box its
    # fraction is exactly 0, which is also what resampling the box gives there.
    pad = np.ceil(4.0 * sigma_vox).astype(int) + 1
    boxes = ndimage.find_objects(arr.astype(np.int64)) if ids else []
    best = None
    best_id = None
    for label in [0, *ids]:
        if label == 0:
            box: tuple[slice, ...] = tuple(slice(0, n) for n in arr.shape)
        else:
            box = tuple(
                slice(max(sl.start - p, 0), min(sl.stop + p, n))
                for sl, p, n in zip(boxes[label - 1], pad, arr.shape, strict=True)
            )
        ind = ndimage.gaussian_filter((arr[box] == label).astype(np.float32), sigma=sigma_vox)
        img = sitk.GetImageFromArray(ind)
        img.SetSpacing(labels.GetSpacing())
        img.SetDirection(labels.GetDirection())
        img.SetOrigin(labels.TransformIndexToPhysicalPoint([int(sl.start) for sl in box[::-1]]))
        default = 1.0 if label == 0 else 0.0  # outside the label map: background
        frac = sitk.GetArrayFromImage(
            sitk.Resample(img, reference, transform, sitk.sitkLinear, default, sitk.sitkFloat32)
        )
        if best is None:
            best, best_id = frac, np.zeros(frac.shape, np.uint8)
        else:
            win = frac > best
            best = np.where(win, frac, best)
            best_id[win] = label
    out = sitk.GetImageFromArray(best_id)
    out.CopyInformation(reference)
    return out


def labels_to_pet(
    labels_mr: sitk.Image,
    mr_image: sitk.Image,
    pet_image: sitk.Image,
    *,
    ct_image: sitk.Image | None = None,
    same_frame: bool | None = None,
) -> tuple[sitk.Image, RegistrationResult | None]:
    """Bring MR labels onto the PET grid.

    When MR and PET share a FrameOfReferenceUID (``same_frame=True``, decided by the
    caller from the headers) the labels are resampled directly; otherwise the MR is
    registered to the CT of the PET/CT (fixed = CT, moving = MR, femur-centred multi-start
    rigid Mattes MI, see :func:`register_rigid_affine`) and the labels are mapped through
    that transform. In both cases the
    resampling is :func:`resample_labels_majority` (per-label fraction argmax), not
    nearest neighbour, because PET voxels (about 4 mm) are much coarser than MR labels.

    Returns
    -------
    labels_pet : SimpleITK.Image
        uint8 labels on the PET grid.
    result : RegistrationResult or None
        None when no registration was needed.

    Raises
    ------
    RegistrationError
        The MR -> CT registration failed its quality check (labels would be wrong), or
        the frames of reference differ and no CT was given to register to.
    """
    if same_frame:
        return resample_labels_majority(labels_mr, pet_image), None
    if ct_image is None:
        raise RegistrationError(
            "MR and PET are not known to share a frame of reference (same_frame is not True) "
            "and no CT was given to register the MR to"
        )
    result = register_rigid_affine(ct_image, mr_image, multimodal=True)
    require_ok(result)
    return resample_labels_majority(labels_mr, pet_image, result.transform), result
