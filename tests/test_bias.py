import numpy as np
import SimpleITK as sitk

from myoimg.segment.bias import n4_correct


def test_n4_removes_known_smooth_bias():
    # A uniform "muscle" cylinder (value 100) multiplied by a known smooth +/-30% field.
    k, j, i = np.mgrid[0:6, 0:96, 0:96].astype(float)
    inside = (i - 48) ** 2 + (j - 48) ** 2 < 40**2
    truth = np.where(inside, 100.0, 0.0)
    bias = 1.0 + 0.3 * np.sin(np.pi * i / 95.0 - np.pi / 2)  # 0.7 .. 1.3 across the field
    img = sitk.GetImageFromArray((truth * bias).astype(np.float32))
    img.SetSpacing((2.0, 2.0, 5.0))
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(img)
    out = sitk.GetArrayFromImage(n4_correct(img, mask, shrink=2))
    before = (truth * bias)[inside]
    after = out[inside]
    cv_before = before.std() / before.mean()
    cv_after = after.std() / after.mean()
    assert cv_before > 0.15
    assert cv_after < 0.35 * cv_before


def test_n4_accepts_float_rounded_mask_geometry_but_not_another_grid():
    import pytest

    img = sitk.GetImageFromArray(np.full((4, 32, 32), 100.0, np.float32))
    img.SetOrigin((-100.123456, -50.0, 20.0))
    mask = sitk.GetImageFromArray(np.ones((4, 32, 32), np.uint8))
    mask.SetOrigin((-100.12346, -50.00001, 20.0))  # float32 rounding of a NIfTI affine
    out = n4_correct(img, mask, shrink=2, iterations=(5,))
    assert out.GetOrigin() == img.GetOrigin()
    mask.SetOrigin((-90.0, -50.0, 20.0))
    with pytest.raises(ValueError, match="not on the image grid"):
        n4_correct(img, mask, shrink=2, iterations=(5,))
