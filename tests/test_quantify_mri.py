"""MRI oedema quantification on analytic images with hand-computed answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from myoimg.errors import GeometryError, MyoimgError, SegmentationError
from myoimg.labels import QUADRICEPS
from myoimg.quantify.mri import (
    DEFAULT_OEDEMA_THRESHOLD,
    HEALTHY_LEVEL_BOUND,
    MIN_OEDEMA_CLUSTER_VOXELS,
    MRI_METRICS,
    drop_small_clusters,
    muscle_envelope,
    n4_iterations,
    n4_levels,
    oedema_metrics,
    parse_threshold,
    reference_signal,
)
from myoimg.quantify.stats import (
    bounded_healthy_level,
    erode_inplane_mask,
    healthy_mode_sd,
    robust_mean_sd,
)

SPACING = (1.5, 1.5, 5.0)  # (di, dj, dk) mm -> 11.25 mm^3 per voxel
VOXEL_ML = 1.5 * 1.5 * 5.0 / 1000.0


def _images(img: np.ndarray, lab: np.ndarray, spacing=SPACING):
    image = sitk.GetImageFromArray(img.astype(np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin((-30.0, 12.0, -100.0))
    labels = sitk.GetImageFromArray(lab.astype(np.uint8))
    labels.CopyInformation(image)
    return image, labels


def _block_phantom():
    """R_VL 20x20 voxels x 4 slices at 100 with two bright (200) blocks; R_HAM a 90/110
    checkerboard (median 100, MAD 10 -> robust SD 14.826)."""
    lab = np.zeros((4, 30, 40), np.uint8)
    img = np.zeros(lab.shape)
    lab[:, 5:25, 5:25] = 1
    img[:, 5:25, 5:25] = 100.0
    img[:, 8:13, 10:16] = 200.0  # 5 x 6 = 30 voxels per slice, well inside
    img[:, 5:8, 20:25] = 200.0  # 3 x 5 = 15 voxels per slice at the muscle corner
    lab[:, 5:25, 28:38] = 14
    jj, ii = np.mgrid[0:30, 0:40]
    checker = np.where((jj + ii) % 2 == 0, 90.0, 110.0)
    img[:, 5:25, 28:38] = checker[5:25, 28:38]
    return _images(img, lab)


def test_block_oedema_fraction_without_erosion():
    image, labels = _block_phantom()
    q = oedema_metrics(
        image, labels, reference_labels=[14], threshold="mean+2sd", healthy_level="reference",
        erode_inplane=0, bias_correct=False,
    )
    assert q.reference.mean == pytest.approx(100.0)
    assert q.reference.sd == pytest.approx(14.826)
    assert q.threshold_norm == pytest.approx(1 + 2 * 0.14826)
    vl = q.muscles["R_VL"]
    assert set(vl) == set(MRI_METRICS)
    assert vl["volume_ml"] == pytest.approx(400 * 4 * VOXEL_ML)  # 18 mL
    assert vl["oedema_fraction"] == pytest.approx(45 / 400)
    assert vl["oedema_volume_ml"] == pytest.approx(45 / 400 * 18.0)
    assert vl["t2fs_norm_mean"] == pytest.approx((45 * 2.0 + 355 * 1.0) / 400)
    assert vl["t2fs_norm_median"] == pytest.approx(1.0)
    assert vl["t2fs_z"] == pytest.approx((45 / 400) / 0.14826)
    oed = sitk.GetArrayFromImage(q.oedema)
    assert q.oedema.GetPixelID() == sitk.sitkUInt8
    assert oed.sum() == 45 * 4
    assert q.normalised.GetPixelID() == sitk.sitkFloat32
    assert q.normalised.GetOrigin() == image.GetOrigin()


def test_block_oedema_fraction_with_inplane_erosion():
    image, labels = _block_phantom()
    q = oedema_metrics(
        image, labels, reference_labels=[14], threshold="mean+2sd", healthy_level="reference",
        erode_inplane=1, bias_correct=False, rim="excluded",
    )
    vl = q.muscles["R_VL"]
    # Eroded muscle: 18 x 18 = 324 per slice; the corner block keeps rows 6-7, cols 20-23.
    assert vl["oedema_fraction"] == pytest.approx((30 + 8) / 324)
    assert vl["volume_ml"] == pytest.approx(18.0)  # full label volume, not eroded
    assert vl["oedema_volume_ml"] == pytest.approx((30 + 8) / 324 * 18.0)
    assert sitk.GetArrayFromImage(q.oedema).sum() == 38 * 4
    # Reference from the eroded hamstring (18 x 8 voxels, still half 90 / half 110).
    assert q.reference.n_voxels == 144 * 4
    assert q.muscles["R_HAM"]["oedema_fraction"] == 0.0
    assert q.parameters["rim"] == "excluded"


def test_volume_stored_along_another_axis_is_eroded_in_the_axial_plane():
    """A 3-D coronal-like storage (the body axis second): the same voxels, the same
    hand-computed answer as the axial block phantom, and the mask back on the input grid
    (eroding across the 4 slices instead would keep 2 of them)."""
    image, labels = _block_phantom()
    order = [0, 2, 1]
    cor_image, cor_labels = (sitk.PermuteAxes(im, order) for im in (image, labels))
    assert cor_image.GetSize() == (40, 4, 30)
    kw = {"reference_labels": [14], "threshold": "mean+2sd", "healthy_level": "reference",
          "erode_inplane": 1, "bias_correct": False, "rim": "excluded"}
    q = oedema_metrics(cor_image, cor_labels, **kw)
    assert q.muscles["R_VL"]["oedema_fraction"] == pytest.approx((30 + 8) / 324)
    assert q.reference.n_voxels == 144 * 4
    assert q.oedema.GetSize() == cor_image.GetSize()
    assert q.oedema.GetDirection() == cor_image.GetDirection()
    axial = oedema_metrics(image, labels, **kw)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(q.oedema),
        sitk.GetArrayFromImage(sitk.PermuteAxes(axial.oedema, order)),
    )
    assert q.parameters["restacked_axis_order"] == order


def test_a_reversed_storage_gives_the_same_numbers_with_n4():
    """The block phantom stored with every axis reversed (a RAS NIfTI, slices head to
    foot): re-stored in LPS order before N4 (whose shrunken grid drops trailing voxels,
    so a reversed array would get another field), the same fractions and the same
    oedema voxels in physical space."""
    image, labels = _block_phantom()
    flips = [True, True, True]
    kw = {"reference_labels": [14], "threshold": "mean+2sd", "bias_correct": True}
    q = oedema_metrics(sitk.Flip(image, flips), sitk.Flip(labels, flips), **kw)
    axial = oedema_metrics(image, labels, **kw)
    for name in ("R_VL", "R_HAM"):
        assert q.muscles[name]["oedema_fraction"] == axial.muscles[name]["oedema_fraction"]
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(sitk.Flip(q.oedema, flips)), sitk.GetArrayFromImage(axial.oedema)
    )
    assert q.parameters["restacked_reversed_axes"] == [0, 1, 2]


def test_eroded_rim_takes_nearest_kept_class():
    image, labels = _block_phantom()
    q = oedema_metrics(
        image, labels, reference_labels=[14], threshold="mean+2sd", erode_inplane=1,
        bias_correct=False,
    )
    assert q.parameters["rim"] == "nearest"
    # Classes decided on the eroded muscle (both blocks found: 30 + 8 per slice) and
    # carried into the rim: the corner block's rim voxels (row 5, cols 20-24; col 24,
    # rows 6-7) each have an oedematous nearest kept voxel, its neighbours (row 5 col 19,
    # row 8 col 24) a healthy one -> exactly the 45 of 400 voxels per slice.
    assert q.muscles["R_VL"]["oedema_fraction"] == pytest.approx(45 / 400)
    assert q.muscles["R_VL"]["oedema_volume_ml"] == pytest.approx(45 / 400 * 18.0)
    oed = sitk.GetArrayFromImage(q.oedema)
    lab = sitk.GetArrayFromImage(labels)
    assert oed.sum() == 45 * 4
    assert oed[:, 5:8, 20:25].all() and oed[lab == 14].sum() == 0
    # t2fs_norm_* stay over the eroded muscle: 38 bright voxels of 324 per slice.
    assert q.muscles["R_VL"]["t2fs_norm_mean"] == pytest.approx((38 * 2.0 + 286) / 324)
    with pytest.raises(MyoimgError, match="rim"):
        oedema_metrics(image, labels, rim="ignore", bias_correct=False)


def test_fat_in_the_eroded_rim_is_never_oedema():
    """A label border that took in septum fat next to oedema: the rim rule would give the
    fat the oedematous class of its nearest kept voxel; fat (below FAT_BELOW_NORM x
    healthy muscle) is never oedema."""
    from myoimg.quantify.mri import FAT_BELOW_NORM

    image, labels = _block_phantom()
    arr = sitk.GetArrayFromImage(image)
    arr[:, 5, 20:25] = 20.0  # the corner block's top rim row: fat (0.2 x muscle)
    assert 20.0 / 100.0 < FAT_BELOW_NORM
    fatty = sitk.GetImageFromArray(arr)
    fatty.CopyInformation(image)
    q = oedema_metrics(
        fatty, labels, reference_labels=[14], threshold="mean+2sd", erode_inplane=1,
        bias_correct=False,
    )
    # 45 oedema voxels per slice as in the test above, minus the 5 fat rim voxels.
    assert q.muscles["R_VL"]["oedema_fraction"] == pytest.approx(40 / 400)
    oed = sitk.GetArrayFromImage(q.oedema)
    assert not oed[:, 5, 20:25].any() and oed[:, 6:8, 24].all()
    assert str(FAT_BELOW_NORM) in q.parameters["oedema_fraction"]


def test_absolute_and_3sd_thresholds():
    image, labels = _block_phantom()
    q = oedema_metrics(
        image, labels, reference_labels=[14], threshold=2.5, erode_inplane=0, bias_correct=False
    )
    assert q.threshold_norm == 2.5
    assert q.muscles["R_VL"]["oedema_fraction"] == 0.0  # 200/100 = 2 < 2.5
    q3 = oedema_metrics(
        image, labels, reference_labels=[14], threshold="mean+3sd", bias_correct=False
    )
    assert q3.threshold_norm == pytest.approx(1 + 3 * 0.14826)
    assert q3.parameters["threshold"] == "mean+3sd"


def test_parse_threshold_rejects_nonsense():
    ref = reference_signal(
        np.full((1, 4, 4), 50.0), np.ones((1, 4, 4), np.uint8), reference_labels=[1]
    )
    assert parse_threshold("mean+2.5sd", ref) == pytest.approx(1.0)  # sd = 0
    for bad in ("median+2sd", "2sd", -1.0, True):
        with pytest.raises(MyoimgError):
            parse_threshold(bad, ref)


def test_all_quadriceps_listed_with_none_when_absent():
    image, labels = _block_phantom()
    q = oedema_metrics(image, labels, bias_correct=False)
    for m in QUADRICEPS:
        assert m.name in q.muscles
    assert q.muscles["L_RF"] == dict.fromkeys(MRI_METRICS)
    assert list(q.muscles)[:8] == [m.name for m in QUADRICEPS]
    assert "R_HAM" in q.muscles


def test_automatic_reference_on_block_phantom():
    image, labels = _block_phantom()
    q = oedema_metrics(image, labels, erode_inplane=0, bias_correct=False)
    assert q.reference.mean == pytest.approx(100.0, rel=0.02)
    assert "automatic" in q.reference.method


@pytest.mark.parametrize("oedema_kind", ["graded", "uniform"])
def test_reference_found_when_70_percent_oedematous(oedema_kind):
    rng = np.random.default_rng(7)
    n = 40000
    healthy = rng.normal(100.0, 5.0, int(0.3 * n))
    if oedema_kind == "graded":
        sick = rng.uniform(115.0, 250.0, n - healthy.size) + rng.normal(0, 5.0, n - healthy.size)
    else:  # one bright level, more voxels than healthy: the dominant peak is oedema
        sick = rng.normal(170.0, 5.0, n - healthy.size)
    values = rng.permutation(np.concatenate([healthy, sick]))
    img = values.reshape(4, 100, 100)
    lab = np.ones(img.shape, np.uint8)
    ref = reference_signal(img, lab)
    assert ref.mean == pytest.approx(100.0, rel=0.03)
    assert ref.sd == pytest.approx(5.0, rel=0.2)
    assert ref.n_voxels == n
    # The whole pipeline then finds ~70% oedema (+2.3% one-sided noise above mean+2sd).
    # Voxels are shuffled one by one (no patches, so no partial volume): counted whole.
    image, labels = _images(img, lab)
    q = oedema_metrics(
        image, labels, threshold="mean+2sd", healthy_level="reference", erode_inplane=0,
        bias_correct=False, partial_volume=False,
    )
    # Threshold ~ 110: (nearly) every oedematous voxel (>= 115 before noise) is above it.
    expected = 0.7 + 0.3 * 0.0228
    assert q.muscles["R_VL"]["oedema_fraction"] == pytest.approx(expected, abs=0.02)


def test_healthy_mode_of_plain_gaussian():
    rng = np.random.default_rng(3)
    mode, sd = healthy_mode_sd(rng.normal(250.0, 20.0, 5000))
    assert mode == pytest.approx(250.0, rel=0.02)
    assert sd == pytest.approx(20.0, rel=0.1)
    with pytest.raises(SegmentationError):
        healthy_mode_sd(np.ones(3))


def test_robust_mean_sd_by_hand():
    med, sd = robust_mean_sd(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    assert med == 3.0
    assert sd == pytest.approx(1.4826 * 1.0)  # |dev| = 2,1,0,1,97 -> median 1


def test_inplane_erosion_is_per_slice_square():
    m = np.zeros((3, 7, 7), bool)
    m[:, 1:6, 1:6] = True
    e = erode_inplane_mask(m, 1)
    assert e.sum() == 3 * 9  # 3x3 core survives in every slice (no through-plane erosion)
    m2 = m.copy()
    m2[1, 1, 1] = False  # remove a corner: its diagonal neighbour (2, 2) must go
    e2 = erode_inplane_mask(m2, 1)
    assert not e2[1, 2, 2] and e2[0, 2, 2]


def test_thin_muscle_measured_uneroded_with_warning():
    lab = np.zeros((2, 10, 10), np.uint8)
    lab[:, 2:8, 4:5] = 2  # one voxel wide R_VM
    lab[:, 0:10, 6:10] = 14
    img = np.where(lab > 0, 100.0, 0.0)
    img[:, 2:4, 4] = 300.0
    image, labels = _images(img, lab)
    # (The 2-voxel bright run per slice is a cluster below the default minimum: count
    # every voxel here.)
    q = oedema_metrics(image, labels, reference_labels=[14], bias_correct=False, min_cluster=0)
    assert q.muscles["R_VM"]["oedema_fraction"] == pytest.approx(2 / 6)
    assert any("R_VM" in w for w in q.warnings)
    # 12 voxels: too few for an own healthy mode -> the reference level (1.0).
    assert q.parameters["healthy_modes_norm"]["R_VM"] is None
    assert q.parameters["healthy_levels_norm"]["R_VM"] == 1.0


def test_grid_mismatch_and_empty_labels_raise():
    image, labels = _block_phantom()
    other = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    other.SetSpacing((1.0, 1.0, 5.0))
    with pytest.raises(GeometryError):
        oedema_metrics(image, other, bias_correct=False)
    empty = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(image)
    with pytest.raises(SegmentationError):
        oedema_metrics(image, empty, bias_correct=False)
    with pytest.raises(SegmentationError):
        oedema_metrics(image, labels, reference_labels=[18], bias_correct=False)


def test_n4_restores_flat_muscle_and_oedema_fraction():
    # A uniform muscle disc (100, noise SD 5) with a bright block (180), multiplied by a
    # known smooth bias of +/-30% across the field of view.
    k, j, i = np.mgrid[0:6, 0:96, 0:96].astype(float)
    lab = np.zeros(k.shape, np.uint8)
    lab[(i - 48) ** 2 + (j - 48) ** 2 < 40**2] = 1
    truth = np.where(lab > 0, 100.0, 0.0)
    truth[:, 40:56, 40:56] = 180.0  # 16 x 16 block, far from the border
    noise = np.random.default_rng(1).normal(0.0, 5.0, truth.shape) * (lab > 0)
    bias = 1.0 + 0.3 * np.sin(np.pi * i / 95.0 - np.pi / 2)
    image, labels = _images((truth + noise) * bias, lab, spacing=(2.0, 2.0, 5.0))
    eroded_n = erode_inplane_mask(lab > 0, 1).sum()
    block = (16 * 16 * 6) / eroded_n
    # Healthy voxels above mean + 2 SD: the one-sided normal tail, 2.28% (every voxel
    # counted: min_cluster=0).
    expected = block + (1 - block) * 0.0228
    old = {"threshold": "mean+2sd", "healthy_level": "reference", "erode_inplane": 1,
           "rim": "excluded", "min_cluster": 0, "partial_volume": False}
    q_raw = oedema_metrics(image, labels, bias_correct=False, **old)
    q = oedema_metrics(image, labels, bias_correct=True, **old)
    norm = sitk.GetArrayFromImage(q.normalised)
    healthy = (lab > 0) & (truth == 100.0)
    assert norm[healthy].std() / norm[healthy].mean() < 0.06  # 0.05 = the noise alone
    assert q.reference.mean == pytest.approx(100.0, rel=0.02)
    assert q.muscles["R_VL"]["oedema_fraction"] == pytest.approx(expected, abs=0.01)
    # Without correction the bias alone makes the answer clearly wrong.
    assert abs(q_raw.muscles["R_VL"]["oedema_fraction"] - expected) > 0.1
    assert q.parameters["bias_correct"] is True


def test_reference_summary_and_parameters_are_json_safe():
    image, labels = _block_phantom()
    q = oedema_metrics(image, labels, reference_labels=[14], bias_correct=False)
    summary = q.reference_summary()
    assert summary["mean"] == 1.0
    assert summary["sd"] == pytest.approx(0.14826)
    assert summary["raw_value"] == pytest.approx(100.0)
    json.dumps({"m": q.muscles, "p": q.parameters, "r": summary}, allow_nan=False)


@pytest.mark.parametrize(
    ("size", "spacing", "levels"),
    [
        ((384, 288, 30), 1.1, 5),
        ((96, 96, 6), 2.0, 4),
        ((100, 100, 5), 1.0, 3),
        ((512, 512, 5), 2.0, 5),
    ],
)
def test_n4_levels_follow_field_of_view(size, spacing, levels):
    # 1 + round(log2(FOV / 25 mm)), clipped to 3-5: 422 mm -> 5, 192 mm -> 4, 100 mm -> 3.
    image = sitk.Image(size, sitk.sitkFloat32)
    image.SetSpacing((spacing, spacing, 5.0))
    assert n4_levels(image) == levels
    # The two coarsest levels only seed the finer ones (capped), the others run to 50.
    assert n4_iterations(image) == [10, 20] + [50] * (levels - 2)


# ---------------------------------------------------------------- per-muscle healthy level

SIGMA = 4.0  # noise SD of every muscle (reference 100 -> 0.04 normalised)


def _level_phantom():
    """Six 4 x 50 x 50 muscles (10 000 voxels each), Gaussian noise SD 4, seed fixed:
    R_HAM reference at 100; R_VL healthy at 106 (0 % oedema); R_VM half healthy 106,
    half oedema 200 (50 %); R_VI oedema 180 everywhere (100 %); R_RF healthy at 95;
    L_HAM healthy at 100."""
    rng = np.random.default_rng(11)
    lab = np.zeros((4, 100, 150), np.uint8)
    mean = np.zeros(lab.shape)
    blocks = {14: (0, 0, 100.0), 1: (0, 50, 106.0), 2: (0, 100, 106.0),
              3: (50, 0, 180.0), 4: (50, 50, 95.0), 18: (50, 100, 100.0)}  # fmt: skip
    for lid, (j, i, level) in blocks.items():
        lab[:, j:j + 50, i:i + 50] = lid
        mean[:, j:j + 50, i:i + 50] = level
    mean[:, 0:25, 100:150] = 200.0  # R_VM: top half of its block oedematous
    img = mean + rng.normal(0.0, SIGMA, lab.shape)
    return _images(img, lab), mean


def _sf(z):
    """Upper tail of the standard normal."""
    from scipy.stats import norm

    return float(norm.sf(z))


def test_per_muscle_level_0_50_100_percent_oedema():
    (image, labels), _ = _level_phantom()
    kw = {"reference_labels": [14], "erode_inplane": 0, "bias_correct": False,
          "threshold": "mean+3sd"}  # fmt: skip
    q = oedema_metrics(image, labels, **kw)  # default per-muscle levels
    ref_mean, ref_sd = q.reference.mean, q.reference.sd
    assert ref_mean == pytest.approx(100.0, abs=0.2)
    assert ref_sd == pytest.approx(SIGMA, rel=0.03)
    cv = ref_sd / ref_mean
    lv = q.parameters["healthy_levels_norm"]
    assert q.parameters["healthy_level"] == "per-muscle"
    # Own levels = own modes (within the +/-10 % bound) ...
    assert lv["R_VL"] == pytest.approx(1.06, abs=0.004)
    assert lv["R_RF"] == pytest.approx(0.95, abs=0.004)
    # ... except the fully oedematous R_VI (own mode 1.8): capped at 1 + 0.10, with a warning.
    assert q.parameters["healthy_modes_norm"]["R_VI"] == pytest.approx(1.8, abs=0.01)
    assert lv["R_VI"] == pytest.approx(1.0 + HEALTHY_LEVEL_BOUND)
    assert any(w.startswith("R_VI:") and "oedematous throughout" in w for w in q.warnings)
    assert q.parameters["thresholds_norm"]["R_VL"] == pytest.approx(lv["R_VL"] + 3 * cv)
    f = {m: q.muscles[m]["oedema_fraction"] for m in ("R_VL", "R_VM", "R_VI", "R_RF", "R_HAM")}
    tail3 = _sf(3.0)  # 0.00135: healthy voxels above their own level + 3 SD
    assert f["R_VL"] == pytest.approx(tail3, abs=0.002)
    assert f["R_RF"] == pytest.approx(tail3, abs=0.002)
    assert f["R_HAM"] == pytest.approx(tail3, abs=0.002)
    assert f["R_VM"] == pytest.approx(0.5 + 0.5 * tail3, abs=0.002)
    assert f["R_VI"] == 1.0  # 180 is 14 SD above the capped threshold 1.1 + 3 x 0.04
    # Normalisation stays relative to the one reference: R_VL's mean signal is 1.06.
    assert q.muscles["R_VL"]["t2fs_norm_mean"] == pytest.approx(1.06, abs=0.003)
    json.dumps(q.parameters, allow_nan=False)


def test_per_muscle_2sd_counts_own_tail_not_level_difference():
    (image, labels), _ = _level_phantom()
    kw = {"reference_labels": [14], "erode_inplane": 0, "bias_correct": False,
          "threshold": "mean+2sd", "min_cluster": 0}  # fmt: skip  (per-voxel tails)
    pm = oedema_metrics(image, labels, healthy_level="per-muscle", **kw)
    ref = oedema_metrics(image, labels, healthy_level="reference", **kw)
    # Per muscle: 2 SD above R_VL's own level 106 -> the one-sided normal tail, 2.28 %.
    assert pm.muscles["R_VL"]["oedema_fraction"] == pytest.approx(_sf(2.0), abs=0.006)
    # One global threshold 100 + 2 x 4 = 108 is only 0.5 SD above R_VL's 106: 31 % "oedema".
    sd = ref.reference.sd
    expected = _sf((ref.reference.mean + 2 * sd - 106.0) / SIGMA)
    assert expected == pytest.approx(_sf(0.5), abs=0.02)
    assert ref.muscles["R_VL"]["oedema_fraction"] == pytest.approx(expected, abs=0.01)
    # R_RF (95) sits below the reference: the global threshold is 3.25 SD above it.
    assert ref.muscles["R_RF"]["oedema_fraction"] == pytest.approx(
        _sf((ref.reference.mean + 2 * sd - 95.0) / SIGMA), abs=0.002)
    assert pm.muscles["R_RF"]["oedema_fraction"] == pytest.approx(_sf(2.0), abs=0.006)
    # The reference rule: one threshold for all muscles, no per-muscle levels.
    assert set(ref.parameters["thresholds_norm"].values()) == {ref.threshold_norm}
    assert set(ref.parameters["healthy_levels_norm"].values()) == {1.0}
    assert ref.parameters["healthy_modes_norm"] is None
    assert ref.parameters["healthy_level"] == "reference"
    assert pm.threshold_norm == ref.threshold_norm  # reported at the reference level
    # The oedema mask follows the per-muscle thresholds.
    assert sitk.GetArrayFromImage(pm.oedema)[sitk.GetArrayFromImage(labels) == 3].all()


def test_default_threshold_and_invalid_healthy_level():
    assert DEFAULT_OEDEMA_THRESHOLD == "mean+2sd"  # the published STIR rule (issue #5)
    image, labels = _block_phantom()
    q = oedema_metrics(image, labels, reference_labels=[14], bias_correct=False)
    assert q.parameters["threshold"] == "mean+2sd"
    assert q.threshold_norm == pytest.approx(1 + 2 * 0.14826)
    with pytest.raises(MyoimgError, match="healthy_level"):
        oedema_metrics(image, labels, healthy_level="own", bias_correct=False)
    # min_cluster: a whole number of voxels (the CLI's --oedema-min-cluster uses the same check)
    for bad in (-1, 2.5, True, "abc", None):
        with pytest.raises(MyoimgError, match="min_cluster"):
            oedema_metrics(image, labels, min_cluster=bad, bias_correct=False)
    q2 = oedema_metrics(image, labels, reference_labels=[14], bias_correct=False, min_cluster=3.0)
    assert q2.parameters["min_cluster_voxels"] == 3


def test_bounded_healthy_level():
    rng = np.random.default_rng(5)
    level, mode = bounded_healthy_level(rng.normal(53.0, 2.0, 5000), 50.0, bound=0.1)
    assert level == mode == pytest.approx(53.0, abs=0.2)
    level, mode = bounded_healthy_level(rng.normal(80.0, 2.0, 5000), 50.0, bound=0.1)
    assert mode == pytest.approx(80.0, abs=0.3)
    assert level == pytest.approx(55.0)
    level, mode = bounded_healthy_level(rng.normal(43.0, 1.0, 5000), 50.0, bound=0.1)
    assert mode == pytest.approx(43.0, abs=0.2)
    assert level == pytest.approx(45.0)
    # Everything darker than 50 x (1 - 2 x 0.1) = 40: no muscle voxel, reference level.
    assert bounded_healthy_level(rng.normal(30.0, 2.0, 5000), 50.0, bound=0.1) == (50.0, None)
    assert bounded_healthy_level(np.full(499, 80.0), 50.0, bound=0.1) == (50.0, None)
    # Fat inside the label (40 % of the voxels at 0.13 x reference, its own peak): values
    # below reference x (1 - 2 x 0.1) = 40 are not healthy muscle and are left out.
    fatty = np.concatenate([rng.normal(6.5, 1.0, 4000), rng.normal(51.5, 2.0, 6000)])
    level, mode = bounded_healthy_level(fatty, 50.0, bound=0.1)
    assert level == mode == pytest.approx(51.5, abs=0.2)
    assert healthy_mode_sd(fatty)[0] == pytest.approx(6.5, abs=0.3)  # what it would take
    # Only 300 voxels above 40: too few for an own mode.
    assert bounded_healthy_level(fatty[:4300], 50.0, bound=0.1) == (50.0, None)
    with pytest.raises(ValueError):
        bounded_healthy_level(np.ones(600), 1.0, bound=1.0)


# ---------------------------------------------------------------- noise clusters


def test_drop_small_clusters_in_plane_8_connected():
    m = np.zeros((2, 8, 8), bool)
    m[0, 1, 1] = True  # single voxel
    m[0, 1, 4] = m[0, 1, 5] = True  # pair
    m[0, 4, 1] = m[0, 5, 2] = m[0, 6, 3] = True  # diagonal chain of 3 (8-connected)
    m[0, 6, 6] = m[1, 6, 6] = m[1, 6, 7] = True  # 1 on slice 0 + 2 on slice 1 (not joined)
    kept = drop_small_clusters(m, 3)
    assert kept.sum() == 3 and kept[0, 4, 1] and kept[0, 5, 2] and kept[0, 6, 3]
    assert drop_small_clusters(m, 2).sum() == 3 + 2 + 2
    assert (drop_small_clusters(m, 0) == m).all() and (drop_small_clusters(m, 1) == m).all()


def test_min_cluster_removes_the_noise_tail_not_oedema():
    (image, labels), _ = _level_phantom()
    kw = {"reference_labels": [14], "erode_inplane": 0, "bias_correct": False,
          "threshold": "mean+2sd"}  # fmt: skip
    assert MIN_OEDEMA_CLUSTER_VOXELS == 3
    q = oedema_metrics(image, labels, **kw)  # default: clusters of >= 3 voxels
    every = oedema_metrics(image, labels, min_cluster=0, **kw)
    # Independent noise: a voxel above mean + 2 SD (p = 2.28 %) is in a cluster of >= 3
    # only if one of its 8 in-plane neighbours is above too (p <= 1 - 0.9772^8 = 17 %):
    # at most 0.39 % of healthy voxels stay, against the 2.28 % tail voxel by voxel.
    bound = _sf(2.0) * (1 - (1 - _sf(2.0)) ** 8)
    for m in ("R_VL", "R_RF", "R_HAM"):
        assert every.muscles[m]["oedema_fraction"] == pytest.approx(_sf(2.0), abs=0.006)
        assert q.muscles[m]["oedema_fraction"] < bound
    # The confluent oedema (a 25 x 50 block per slice) is kept whole.
    assert q.muscles["R_VM"]["oedema_fraction"] == pytest.approx(0.5, abs=0.004)
    assert q.muscles["R_VI"]["oedema_fraction"] == 1.0
    assert q.parameters["min_cluster_voxels"] == 3
    assert every.parameters["clusters"] == "every voxel above the threshold is oedema"
    with pytest.raises(MyoimgError, match="min_cluster"):
        oedema_metrics(image, labels, min_cluster=-1, **kw)
    with pytest.raises(MyoimgError, match="min_cluster"):
        oedema_metrics(image, labels, min_cluster=2.5, **kw)


def test_n4_mask_is_the_muscle_envelope_with_holes_filled():
    # A ring of muscle (label 1) round a femur-like hole, and a separate square (label 14):
    # the hole is filled, the gap between the two is not, each slice on its own.
    jj, ii = np.mgrid[0:40, 0:60]
    r = np.hypot(jj - 20, ii - 20)
    lab = np.zeros((2, 40, 60), np.uint8)
    lab[:, (r >= 5) & (r <= 12)] = 1
    lab[:, 10:30, 40:55] = 14
    lab[1, 20, 20] = 3  # slice 1: a labelled voxel inside the hole changes nothing
    _, labels = _images(np.zeros(lab.shape), lab)
    env = sitk.GetArrayFromImage(muscle_envelope(labels))
    expected = ((r <= 12) | ((jj >= 10) & (jj < 30) & (ii >= 40) & (ii < 55))).astype(np.uint8)
    assert (env == expected[None]).all()
    assert muscle_envelope(labels).GetOrigin() == labels.GetOrigin()


def test_without_fat_removes_voxels_the_mri_shows_as_fat():
    """Labelled voxels darker than half healthy muscle (septa, fascia) leave the labels."""
    from myoimg.errors import MyoimgError
    from myoimg.quantify.mri import FAT_BELOW_NORM, without_fat

    assert FAT_BELOW_NORM == 0.5
    lab = np.zeros((2, 4, 5), dtype=np.uint8)
    lab[:, 1:3, 1:4] = 3
    norm = np.ones(lab.shape, dtype=np.float32)
    norm[0, 1, 1] = 0.2  # fat in the label
    norm[0, 2, 3] = 0.49
    norm[1, 2, 2] = 0.5  # at the cut-off: kept
    norm[1, 0, 0] = 0.1  # fat outside the label: nothing to remove
    labels = sitk.GetImageFromArray(lab)
    labels.SetSpacing((0.8, 0.8, 4.0))
    labels.SetOrigin((10.0, -5.0, 3.0))
    normalised = sitk.GetImageFromArray(norm)
    normalised.CopyInformation(labels)
    out = without_fat(labels, normalised)
    assert out.GetSpacing() == labels.GetSpacing() and out.GetOrigin() == labels.GetOrigin()
    assert out.GetPixelID() == labels.GetPixelID()
    got = sitk.GetArrayFromImage(out)
    expect = lab.copy()
    expect[0, 1, 1] = expect[0, 2, 3] = 0
    np.testing.assert_array_equal(got, expect)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(without_fat(labels, normalised, 0.0)), lab)
    with pytest.raises(MyoimgError, match="fat cut-off"):
        without_fat(labels, normalised, 1.0)
    with pytest.raises(MyoimgError, match="same grid"):
        without_fat(labels, sitk.GetImageFromArray(norm[:1]))


def _patch_phantom(noise_sd: float, seed: int = 5):
    """R_VL: a 60 x 60 x 4 voxel muscle at 100 with a disc of oedema (200) of radius 14.3
    voxels whose edge falls anywhere inside voxels: each voxel's signal is 100 + 100 x its
    oedema content (the disc's area share in it, from 10 x 10 sub-samples), plus noise.
    R_HAM (reference) healthy. Returns the images and the true oedema fraction."""
    lab = np.zeros((4, 70, 140), np.uint8)
    lab[:, 5:65, 5:65] = 1
    lab[:, 5:65, 75:135] = 14
    sub = (np.arange(700) + 0.5) / 10.0  # sub-sample centres (voxel units)
    jj, ii = np.meshgrid(sub, sub[:700], indexing="ij")
    disc = ((jj - 35.2) ** 2 + (ii - 34.6) ** 2 <= 14.3**2).astype(float)
    content = disc.reshape(70, 10, 70, 10).mean(axis=(1, 3))
    img = np.where(lab > 0, 100.0, 0.0)
    img[:, :, :70] += 100.0 * content * (lab[0, :, :70] == 1)
    img += np.random.default_rng(seed).normal(0.0, noise_sd, img.shape) * (lab > 0)
    truth = float(content[5:65, 5:65].sum()) / 3600.0
    return _images(img, lab), truth


@pytest.mark.parametrize("noise_sd", [2.0, 5.0])
def test_patch_border_counts_by_its_oedema_content(noise_sd):
    """A patch whose border cuts through voxels: counted whole above "mean + 2 SD", its
    border voxels overstate the oedema fraction by ~0.01 here (a voxel holding 10-20 %
    oedema is already above the threshold); weighted by their content (the default) the
    fraction is the patch's true volume share."""
    (image, labels), truth = _patch_phantom(noise_sd)
    kw = {"reference_labels": [14], "bias_correct": False, "threshold": "mean+2sd"}
    binary = oedema_metrics(image, labels, partial_volume=False, **kw)
    pv = oedema_metrics(image, labels, **kw)
    f_bin = binary.muscles["R_VL"]["oedema_fraction"]
    f_pv = pv.muscles["R_VL"]["oedema_fraction"]
    assert f_bin - truth > 0.008  # the border's partial voxels counted whole
    assert f_pv == pytest.approx(truth, abs=0.003)
    assert pv.parameters["partial_volume"] is True
    assert binary.parameters["partial_volume"] is False
    # The oedema map is the same binary mask either way; the content map holds the weights.
    assert np.array_equal(sitk.GetArrayFromImage(pv.oedema), sitk.GetArrayFromImage(binary.oedema))
    lab = sitk.GetArrayFromImage(labels) == 1
    for q, f in ((pv, f_pv), (binary, f_bin)):
        assert float(sitk.GetArrayFromImage(q.oedema_content)[lab].mean()) == pytest.approx(f)
