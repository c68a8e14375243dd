"""PET uptake statistics on analytic SUV images with hand-computed answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from myoimg.errors import MyoimgError, SegmentationError
from myoimg.labels import QUADRICEPS
from myoimg.quantify.pet import (
    PET_METRICS,
    parse_avid_threshold,
    peak_filter,
    sphere_kernel,
    uptake_metrics,
)

R_1ML = (3.0 / (4.0 * np.pi)) ** (1.0 / 3.0) * 10.0  # 6.2035 mm


def _images(suv: np.ndarray, lab: np.ndarray, spacing=(2.0, 2.0, 2.0)):
    image = sitk.GetImageFromArray(suv.astype(np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin((-40.0, -20.0, 300.0))
    labels = sitk.GetImageFromArray(lab.astype(np.uint8))
    labels.CopyInformation(image)
    return image, labels


def _checker(shape):
    k, j, i = np.indices(shape)
    return np.where((k + j + i) % 2 == 0, 0.8, 1.2)  # mean 1.0, SD (ddof=0) 0.2


def _step_phantom():
    """R_VL (20^3 voxels of 2 mm, SUV 1) with a 10^3-voxel hot cube (SUV 5); R_HAM + L_ADD
    reference: checkerboard 0.8 / 1.2 (mean 1, SD 0.2)."""
    shape = (30, 30, 60)
    lab = np.zeros(shape, np.uint8)
    suv = np.zeros(shape)
    lab[5:25, 5:25, 5:25] = 1
    suv[5:25, 5:25, 5:25] = 1.0
    suv[10:20, 10:20, 10:20] = 5.0
    lab[5:25, 5:25, 30:40] = 14
    lab[5:25, 5:25, 42:52] = 17
    chk = _checker(shape)
    suv[lab == 14] = chk[lab == 14]
    suv[lab == 17] = chk[lab == 17]
    return _images(suv, lab)


def test_step_phantom_statistics_by_hand():
    image, labels = _step_phantom()
    q = uptake_metrics(image, labels)
    assert q.reference["suv_mean"] == pytest.approx(1.0)
    assert q.reference["suv_sd"] == pytest.approx(0.2)
    assert set(q.reference) == {"suv_mean", "suv_sd", "region"}
    assert q.avid_threshold_suv == pytest.approx(1.4)  # default ref + 2 SD
    vl = q.muscles["R_VL"]
    assert set(vl) == set(PET_METRICS)
    n_all, n_hot = 20**3, 10**3
    mean = (n_hot * 5.0 + (n_all - n_hot) * 1.0) / n_all  # 1.5
    assert vl["suv_mean"] == pytest.approx(mean)
    sd = np.sqrt((n_hot * (5 - mean) ** 2 + (n_all - n_hot) * (1 - mean) ** 2) / n_all)
    assert vl["suv_sd"] == pytest.approx(sd)
    assert vl["suv_median"] == pytest.approx(1.0)
    assert vl["suv_max"] == pytest.approx(5.0)
    assert vl["suv_peak"] == pytest.approx(5.0)  # a 6.2 mm sphere fits in the 20 mm cube
    assert vl["avid_volume_ml"] == pytest.approx(n_hot * 8.0 / 1000.0)  # 8 mL
    assert vl["tla"] == pytest.approx(5.0 * 8.0)
    assert vl["tbr"] == pytest.approx(mean / 1.0)
    assert q.muscles["R_HAM"]["tbr"] == pytest.approx(1.0)
    for m in QUADRICEPS[1:]:
        assert q.muscles[m.name] == dict.fromkeys(PET_METRICS)


def test_reference_region_names_default_groups():
    image, labels = _step_phantom()
    q = uptake_metrics(image, labels)
    assert q.reference["region"] == "R_HAM+L_ADD"
    assert q.parameters["reference_label_ids"] == [14, 17]


def test_user_reference_labels_and_absolute_threshold():
    image, labels = _step_phantom()
    q = uptake_metrics(image, labels, reference_labels=[14], avid_threshold=0.9)
    assert q.reference["region"] == "R_HAM"
    # Absolute SUV 0.9: every R_VL voxel (1 and 5) is avid.
    assert q.muscles["R_VL"]["avid_volume_ml"] == pytest.approx(20**3 * 8e-3)
    assert q.muscles["R_VL"]["tla"] == pytest.approx(1.5 * 64.0)
    # Half the checkerboard (1.2) is above 0.9 in the reference region itself.
    assert q.muscles["R_HAM"]["avid_volume_ml"] == pytest.approx(20 * 20 * 10 / 2 * 8e-3)
    with pytest.raises(SegmentationError):
        uptake_metrics(image, labels, reference_labels=[18])


def test_uniform_muscle_with_automatic_reference():
    shape = (20, 20, 20)
    lab = np.zeros(shape, np.uint8)
    lab[3:17, 3:17, 3:17] = 5
    suv = np.where(lab > 0, 2.0, 0.0)
    image, labels = _images(suv, lab)
    q = uptake_metrics(image, labels)
    lvl = q.muscles["L_VL"]
    assert (lvl["suv_mean"], lvl["suv_sd"], lvl["suv_median"]) == pytest.approx((2.0, 0.0, 2.0))
    assert lvl["suv_max"] == pytest.approx(2.0)
    assert lvl["suv_peak"] == pytest.approx(2.0)
    assert q.reference["suv_mean"] == pytest.approx(2.0)
    assert "automatic" in q.reference["region"]
    assert lvl["tbr"] == pytest.approx(1.0)
    assert lvl["avid_volume_ml"] == 0.0 and lvl["tla"] == 0.0


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (4.0, 4.0, 3.0), (2.7, 2.7, 2.0)])
def test_suv_peak_of_linear_gradient_is_value_at_sphere_centre(spacing):
    # SUV = 1 + 0.05 * x_mm (x along i): a symmetric kernel averages it to its centre value.
    shape = (24, 24, 40)
    k, j, i = np.indices(shape)
    suv = 1.0 + 0.05 * i * spacing[0]
    lab = np.zeros(shape, np.uint8)
    lab[6:18, 6:18, 8:30] = 1
    image, labels = _images(suv, lab, spacing)
    q = uptake_metrics(image, labels, avid_threshold=100.0)
    assert q.muscles["R_VL"]["suv_peak"] == pytest.approx(
        1.0 + 0.05 * 29 * spacing[0], rel=1e-6
    )  # float32 image
    assert q.muscles["R_VL"]["suv_max"] == pytest.approx(1.0 + 0.05 * 29 * spacing[0], rel=1e-6)


def test_sphere_kernel_geometry():
    k = sphere_kernel((1.0, 1.0, 1.0))
    assert k.shape == (13, 13, 13)  # voxels within 6.2 + 0.5 mm of the centre
    assert k.sum() == pytest.approx(1.0)
    assert np.allclose(k, k[::-1, ::-1, ::-1])
    c = k[6, 6]
    # Voxel at 6 mm ([5.5, 6.5] mm) is partly inside r = 6.20 mm; full voxels have the max.
    assert 0 < c[12] < c[6] and c[0] == c[12]
    assert c[6] == k.max()
    # The fully-inside weight times the (unnormalised) volume gives 1 mL.
    assert 1.0 / k.max() * 1e-3 == pytest.approx(1.0, rel=0.01)
    k4 = sphere_kernel((4.0, 4.0, 3.0), volume_ml=1.0)
    assert k4.shape == (5, 5, 5)  # ceil(6.2/4 - 0.5) = 2 ; ceil(6.2/3 - 0.5) = 2
    with pytest.raises(MyoimgError):
        sphere_kernel((1.0, 1.0, 1.0), volume_ml=0.0)


def test_peak_filter_half_space_step_gives_half():
    # At a voxel on the plane of a symmetric step (0 | 0.5 | 1), the sphere mean is 0.5.
    a = np.zeros((21, 21, 21))
    a[:, :, 11:] = 1.0
    a[:, :, 10] = 0.5
    out = peak_filter(a, sphere_kernel((1.0, 1.0, 1.0)))
    assert out[10, 10, 10] == pytest.approx(0.5)
    assert out[10, 10, 20] == pytest.approx(1.0)  # edge: only the in-image part is averaged


def test_parse_avid_threshold_forms():
    ref = {"suv_mean": 1.2, "suv_sd": 0.3, "region": "x"}
    assert parse_avid_threshold("ref+2sd", ref) == pytest.approx(1.8)
    assert parse_avid_threshold("ref+3sd", ref) == pytest.approx(2.1)
    assert parse_avid_threshold("1.5xref", ref) == pytest.approx(1.8)
    assert parse_avid_threshold(2.5, ref) == 2.5
    for bad in ("mean+2sd", "abc", -1.0, False):
        with pytest.raises(MyoimgError):
            parse_avid_threshold(bad, ref)


def test_nan_voxels_are_ignored_and_output_is_json_safe():
    image, labels = _step_phantom()
    arr = sitk.GetArrayFromImage(image)
    arr[15, 15, 15] = np.nan  # inside the hot cube
    bad = sitk.GetImageFromArray(arr)
    bad.CopyInformation(image)
    q = uptake_metrics(bad, labels)
    vl = q.muscles["R_VL"]
    assert vl["suv_max"] == pytest.approx(5.0)
    assert vl["suv_peak"] == pytest.approx(5.0)  # the missing voxel is renormalised away
    assert vl["suv_mean"] == pytest.approx((999 * 5.0 + 7000 * 1.0) / 7999)
    assert any("non-finite" in w for w in q.warnings)
    text = json.dumps({"m": q.muscles, "r": q.reference, "p": q.parameters}, allow_nan=False)
    assert "R_VL" in text
