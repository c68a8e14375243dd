"""Plausibility warnings on quadriceps label maps (myoimg.segment.checks)."""

import numpy as np
import pytest
import SimpleITK as sitk

from myoimg.segment.checks import MAX_SIDE_RATIO, label_warnings


def _img(a: np.ndarray) -> sitk.Image:
    img = sitk.GetImageFromArray(a)
    img.SetSpacing((2.0, 2.0, 5.0))  # 0.02 mL voxels
    return img


def _balanced() -> np.ndarray:
    a = np.zeros((4, 40, 40), np.uint8)
    for k, lid in enumerate((1, 2, 3, 4)):
        a[:, 10 * k : 10 * k + 5, 0:10] = lid  # right heads, 200 voxels each
        a[:, 10 * k : 10 * k + 5, 20:30] = lid + 4  # left heads, the same
    return a


def test_balanced_map_and_one_leg_give_no_warning():
    assert label_warnings(_img(_balanced())) == []
    one_leg = _balanced()
    one_leg[one_leg >= 5] = 0  # a one-leg scan: nothing on the left at all
    assert label_warnings(_img(one_leg)) == []


def test_left_right_ratio_and_missing_head_are_flagged():
    a = _balanced()
    a[:, 0:5, 20:30] = 0
    a[:, 0:2, 20:25] = 5  # L_VL: 40 voxels (0.8 mL) vs R_VL 200 (4 mL): 5x
    a[a == 8] = 0  # L_RF missing while the left leg's other heads are there
    w = label_warnings(_img(a))
    assert len(w) == 2
    assert w[0].startswith("R_VL is 5.0x L_VL (4 vs 0.8 mL)")
    assert w[1].startswith("L_RF is not labelled while R_RF is")
    # just inside the limit: no warning
    b = _balanced()
    b[:, 0:5, 20:30] = 0
    b[:, 0:5, 20:25] = 5  # 100 voxels: 2.0x exactly
    assert MAX_SIDE_RATIO == 2.0 and label_warnings(_img(b)) == []
    assert len(label_warnings(_img(b), max_ratio=1.5)) == 1
    with pytest.raises(ValueError, match="max_ratio"):
        label_warnings(_img(b), max_ratio=1.0)
