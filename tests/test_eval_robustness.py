"""The image variants of scripts/eval_robustness.py keep labels and image together."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from eval_robustness import VARIANTS, make_variant  # noqa: E402


def _case():
    """10 slices of 120 x 160 pixels (1 x 1 x 5 mm, identity direction): a body (200) at x
    20-139, y 20-99 mm (LPS) holding a bright block (1000) labelled 1 (R_VL) at x 60-69,
    y 40-49 and a dim one (500) labelled 5 at x 100-109, y 50-59."""
    a = np.zeros((10, 120, 160), np.float32)
    lab = np.zeros(a.shape, np.uint8)
    a[:, 20:100, 20:140] = 200.0
    a[:, 40:50, 60:70], lab[:, 40:50, 60:70] = 1000.0, 1
    a[:, 50:60, 100:110], lab[:, 50:60, 100:110] = 500.0, 5
    img, ref = sitk.GetImageFromArray(a), sitk.GetImageFromArray(lab)
    for im in (img, ref):
        im.SetSpacing((1.0, 1.0, 5.0))
    return img, ref


def _centroid_xy(ref: sitk.Image, label: int) -> np.ndarray:
    kji = np.argwhere(sitk.GetArrayFromImage(ref) == label).mean(axis=0)
    return np.array(ref.TransformContinuousIndexToPhysicalPoint(kji[::-1].tolist()))[:2]


def test_every_variant_keeps_labels_on_the_image():
    img, ref = _case()
    for name in VARIANTS:
        im, rf = make_variant(name, img, ref)
        assert im.GetSize() == rf.GetSize(), name
        assert np.allclose(im.GetOrigin(), rf.GetOrigin()) and im.GetSpacing() == rf.GetSpacing()
        a, lab = sitk.GetArrayFromImage(im), sitk.GetArrayFromImage(rf)
        if name in ("as-is", "every2", "middle", "shift") or name.startswith("rot"):
            # the bright block still lies under its label (linear interpolation at its edge)
            assert np.median(a[lab == 1]) > 900.0, name


def test_shift_moves_anatomy_and_labels_together():
    img, ref = _case()
    im, rf = make_variant("shift", img, ref)
    # Output point p shows input p + (40, -30) mm: the anatomy moves by (-40, +30).
    for label in (1, 5):
        np.testing.assert_allclose(_centroid_xy(rf, label), _centroid_xy(ref, label) + [-40, 30])
    assert np.median(sitk.GetArrayFromImage(im)[sitk.GetArrayFromImage(rf) == 5]) == 500.0


def test_pixel_size_and_slice_subsets():
    img, ref = _case()
    im, rf = make_variant("pix1.1", img, ref)
    assert im.GetSpacing()[:2] == (1.1, 1.1) and im.GetSize()[:2] == (145, 109)
    np.testing.assert_allclose(_centroid_xy(rf, 1), _centroid_xy(ref, 1), atol=0.6)
    assert make_variant("every2", img, ref)[0].GetSize()[2] == 5
    im, _ = make_variant("middle", img, ref)
    assert im.GetSize()[2] == 4 and im.GetOrigin()[2] == pytest.approx(15.0)  # slices 3-6


def test_fat_replaced_vl_only_changes_r_vl():
    img, ref = _case()
    im, _ = make_variant("fatVL", img, ref)
    a0, a1 = sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(im)
    lab = sitk.GetArrayFromImage(ref)
    assert np.array_equal(a0[lab != 1], a1[lab != 1])
    assert (a1[lab == 1] < a0[lab == 1]).all()
    with pytest.raises(ValueError, match="unknown variant"):
        make_variant("blur", img, ref)
