"""N4 bias-field correction (Tustison et al., IEEE TMI 2010) through SimpleITK.

The field is estimated on a shrunken copy (it is smooth by construction, so a
coarse grid loses nothing and saves most of the time) and then evaluated at full
resolution with ``GetLogBiasFieldAsImage``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

__all__ = ["N4_SAMPLE_MM", "default_shrink", "n4_correct"]

#: In-plane sampling (mm) of the image N4 fits the field on. The field is smooth
#: over >= 25 mm (its finest B-spline mesh), so ~8 mm samples resolve it; measured on
#: the reference study, 8 mm gave the same oedema fractions as 4.4 mm in 1/5 the time.
N4_SAMPLE_MM = 8.0


def default_shrink(image: sitk.Image) -> int:
    """In-plane shrink factor giving ~N4_SAMPLE_MM samples, keeping >= 32 pixels across."""
    spacing = min(image.GetSpacing()[:2])
    size = min(image.GetSize()[:2])
    factor = max(1, int(round(N4_SAMPLE_MM / spacing)))
    return int(max(1, min(factor, size // 32)))


def n4_correct(
    image: sitk.Image,
    mask: sitk.Image | None = None,
    *,
    shrink: int | None = None,
    iterations: Sequence[int] = (50, 40, 30),
) -> sitk.Image:
    """Return ``image`` divided by its N4-estimated multiplicative bias field.

    Parameters
    ----------
    image : SimpleITK.Image
        3-D scalar image (any pixel type), values >= 0 expected (MR magnitude).
    mask : SimpleITK.Image, optional
        Region whose intensities drive the estimate (e.g. the thigh mask); any
        non-zero voxel counts. Default: the whole image above its Otsu threshold.
    shrink : int, optional
        In-plane shrink factor for the estimate (slices are not shrunk: thick
        axial slices would otherwise be averaged across anatomy). Default: the
        factor that brings the in-plane spacing to about :data:`N4_SAMPLE_MM`.
    iterations : sequence of int
        Maximum iterations per fitting level (one level per entry).

    Returns
    -------
    SimpleITK.Image
        float32 image on the same grid; the bias field is normalised so that its
        mean inside the mask is 1, i.e. intensities keep their scale.
    """
    img = sitk.Cast(image, sitk.sitkFloat32)
    if shrink is None:
        shrink = default_shrink(img)
    if mask is None:
        mask = sitk.OtsuThreshold(img, 0, 1, 200)
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    # A mask read back from NIfTI carries float32-rounded geometry (~1e-5 mm off),
    # which ITK's default tolerance refuses: adopt the image's exact geometry when the
    # grids agree to 1e-3 mm, refuse a genuinely different grid.
    same = (
        mask.GetSize() == img.GetSize()
        and np.allclose(mask.GetOrigin(), img.GetOrigin(), atol=1e-3)
        and np.allclose(mask.GetSpacing(), img.GetSpacing(), atol=1e-5)
        and np.allclose(mask.GetDirection(), img.GetDirection(), atol=1e-5)
    )
    if not same:
        raise ValueError("n4_correct: the mask is not on the image grid; resample it first")
    mask.CopyInformation(img)
    factors = [shrink, shrink, 1] if img.GetDimension() == 3 else [shrink] * img.GetDimension()
    small = sitk.Shrink(img, factors)
    small_mask = sitk.Shrink(mask, factors)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(i) for i in iterations])
    n4.Execute(small, small_mask)
    log_field = n4.GetLogBiasFieldAsImage(img)
    field = sitk.Exp(sitk.Cast(log_field, sitk.sitkFloat64))
    # Keep the intensity scale: normalise the field to mean 1 inside the mask.
    stats = sitk.LabelStatisticsImageFilter()
    stats.Execute(field, mask)
    mean_field = stats.GetMean(1) if stats.HasLabel(1) else 1.0
    # SimpleITK promotes image/float arithmetic to float64: compute there, cast once.
    corrected = sitk.Cast(img, sitk.sitkFloat64) / (field / mean_field)
    return sitk.Cast(corrected, sitk.sitkFloat32)
