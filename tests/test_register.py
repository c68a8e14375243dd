"""Registration and label propagation against known transforms (analytic thigh phantom).

Convention under test: ``result.transform`` maps FIXED physical points (LPS mm) to MOVING
physical points. The moving images are made by evaluating the phantom at T_true^-1(y), so
the correct answer is T_true itself and the target registration error (TRE) at a point x
is |T_est(x) - T_true(x)|.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from myoimg.errors import RegistrationError
from myoimg.segment.register import (
    DICE_THRESHOLD,
    FEMUR_DICE_THRESHOLD,
    STRUCTURE_GAIN_THRESHOLD,
    body_and_femur,
    check_registration,
    labels_to_pet,
    propagate_labels,
    register_rigid_affine,
    require_ok,
    resample_labels_majority,
    thigh_mask,
)

MR = dict(air=0.0, fat=30.0, muscle=100.0, ring=40.0, bone=15.0)  # T2-FS-like
CT = dict(air=-1000.0, fat=-100.0, muscle=50.0, ring=-60.0, bone=900.0)  # HU
SIZE, SPACING, ORIGIN = (128, 96, 40), (2.5, 2.5, 2.5), (-160.0, -120.0, -50.0)
# Points inside both thighs at several levels (LPS mm).
POINTS = [(-85.0, 5.0, -30.0), (85.0, 5.0, 30.0), (-60.0, -30.0, 0.0), (110.0, 30.0, 10.0)]


def _grid_points(size, spacing, origin):
    nx, ny, nz = size
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    return np.stack(
        [origin[0] + i * spacing[0], origin[1] + j * spacing[1], origin[2] + k * spacing[2]], -1
    )


def _thighs(p, v):
    """Two tapered elliptical thighs: fat layer, muscle, an off-centre dark ring, a femur
    drifting with z and a fat plane starting at z = -10 mm (craniocaudal landmarks)."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    out = np.full(x.shape, v["air"], np.float32)
    for side, cx in ((-1, -85.0), (1, 85.0)):
        a, b, cy = 68.0 + 0.25 * z, 58.0 + 0.15 * z, 5.0
        out[((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0] = v["fat"]
        ri = ((x - cx) / (a - 10)) ** 2 + ((y - cy) / (b - 10)) ** 2
        out[ri <= 1.0] = v["muscle"]
        rr = ((x - cx - side * 8) / (0.55 * a)) ** 2 + ((y - cy + 6) / (0.5 * b)) ** 2
        out[(rr > 0.85) & (rr <= 1.0)] = v["ring"]
        out[(np.abs(y - cy + 25 - 0.3 * z) < 3.0) & (ri <= 0.8) & (z > -10.0)] = v["fat"]
        fx, fy = cx - side * (10 + 0.2 * z), cy + 10 - 0.1 * z
        out[(x - fx) ** 2 + (y - fy) ** 2 <= 13.0**2] = v["bone"]
    return out


def make_image(values, transform=None, noise=3.0, seed=0, size=SIZE, spacing=SPACING,
               origin=ORIGIN):  # fmt: skip
    """Phantom image; with ``transform`` T the phantom moved by T: I(y) = f(T^-1 y)."""
    p = _grid_points(size, spacing, origin)
    if transform is not None:
        inv = transform.GetInverse()
        m = np.asarray(inv.GetMatrix()).reshape(3, 3)
        c, t = np.asarray(inv.GetCenter()), np.asarray(inv.GetTranslation())
        p = ((p.reshape(-1, 3) - c) @ m.T + c + t).reshape(p.shape)
    arr = ndimage.gaussian_filter(_thighs(p, values), (0, 0.7, 0.7))
    arr = arr + np.random.default_rng(seed).normal(0, noise, arr.shape).astype(np.float32)
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img


def euler(shift=(8.0, -5.0, 3.0), angles_deg=(1.0, 2.0, 4.0)):
    t = sitk.Euler3DTransform()
    t.SetCenter((0.0, 0.0, 0.0))
    t.SetRotation(*np.deg2rad(angles_deg))
    t.SetTranslation(shift)
    return t


def tre(result_transform, true_transform):
    return [
        float(np.linalg.norm(np.subtract(result_transform.TransformPoint(p),
                                         true_transform.TransformPoint(p))))
        for p in POINTS
    ]  # fmt: skip


@pytest.fixture(scope="module")
def fixed_mr():
    return make_image(MR)


def test_rigid_same_modality_recovered(fixed_mr):
    true = euler()
    moving = make_image(MR, transform=true, seed=1)
    # A gain change between sessions must not matter (correlation metric).
    moving = sitk.ShiftScale(moving, 0.0, 1.3)
    stages = []
    result = register_rigid_affine(fixed_mr, moving, progress=stages.append)
    assert result.ok, result.messages
    assert max(tre(result.transform, true)) < 1.0
    assert result.quality["dice"] >= DICE_THRESHOLD
    assert stages == ["rigid", "quality check"]
    assert isinstance(result.transform, sitk.Euler3DTransform)  # rigid: no scaling
    # The identity is clearly wrong (sanity: the test could fail).
    assert min(tre(sitk.Transform(), true)) > 5.0
    assert require_ok(result) is result


def test_mr_to_ct_multimodal_recovered(fixed_mr):
    true = euler(shift=(-6.0, 4.0, -2.0), angles_deg=(0.0, 0.0, -4.0))
    moving_ct = make_image(CT, transform=true, seed=2)
    result = register_rigid_affine(fixed_mr, moving_ct, multimodal=True)
    assert result.ok, result.messages
    # The gradient descent alone stops 0.6 mm off along z; the craniocaudal search of the
    # rigid stage (MR <-> CT only) brings it to 0.4 mm.
    assert "z_search_mm" in result.quality
    assert max(tre(result.transform, true)) < 0.5
    # MR <-> CT is rigid only: an affine stage could scale the wrong way.
    assert isinstance(result.transform, sitk.Euler3DTransform)
    assert "affine" not in result.quality["iterations"]


def test_deformable_stage_keeps_rigid_answer():
    # Coarse grid keeps this fast; a rigid motion must stay (nearly) rigid after the B-spline.
    small = dict(size=(64, 48, 20), spacing=(5.0, 5.0, 5.0), origin=(-160.0, -120.0, -50.0))
    true = euler()
    result = register_rigid_affine(
        make_image(MR, **small), make_image(MR, transform=true, seed=6, **small), deformable=True
    )
    assert result.ok
    assert "bspline" in result.quality["iterations"]
    # Nothing to deform: the B-spline gains nothing and is discarded (affine kept).
    assert result.quality["bspline_used"] is False
    assert not isinstance(result.transform, sitk.CompositeTransform)
    assert any("B-spline" in m for m in result.messages)
    assert max(tre(result.transform, true)) < 1.5  # 5 mm voxels: < 0.3 voxel


def test_failed_registration_is_flagged():
    # Unrelated image: only one thigh. No transform makes it match two thighs.
    small = dict(size=(64, 48, 20), spacing=(5.0, 5.0, 5.0), origin=(-160.0, -120.0, -50.0))
    fixed_mr = make_image(MR, **small)
    one = make_image(MR, transform=euler(), seed=3, **small)
    arr = sitk.GetArrayFromImage(one)
    arr[..., : arr.shape[2] // 2] = 0.0
    bad = sitk.GetImageFromArray(arr)
    bad.CopyInformation(one)
    result = register_rigid_affine(fixed_mr, bad)
    assert not result.ok
    assert result.quality["dice"] < DICE_THRESHOLD
    with pytest.raises(RegistrationError, match="Dice"):
        require_ok(result)


def test_check_registration_known_transforms(fixed_mr):
    true = euler()
    moving = make_image(MR, transform=true, seed=4)
    good = check_registration(fixed_mr, moving, true)
    assert good.ok and good.quality["dice"] > 0.95
    far = sitk.TranslationTransform(3, (60.0, 0.0, 0.0))  # 6 cm off: thighs half overlap
    assert not check_registration(fixed_mr, moving, far).ok


def test_thigh_mask_area_matches_ellipses():
    img = make_image(MR, size=(128, 96, 3), origin=(-160.0, -120.0, 0.0))
    mask = sitk.GetArrayFromImage(thigh_mask(img))
    a, b = 68.0, 58.0  # outer ellipse semi-axes at z = 0 (mm)
    expected = 2 * np.pi * a * b / (2.5 * 2.5)  # voxels per slice, both thighs
    assert mask[1].sum() == pytest.approx(expected, rel=0.05)
    lab, n = ndimage.label(mask[1])
    assert n == 2  # two thighs, holes (dark femur) filled
    assert ndimage.binary_fill_holes(mask[1]).sum() == mask[1].sum()


def test_propagate_labels_known_shift():
    labels = np.zeros((4, 20, 30), np.uint8)
    labels[1:3, 5:10, 10:20] = 1
    labels[1:3, 12:15, 3:8] = 8
    img = sitk.GetImageFromArray(labels)
    img.SetSpacing((2.5, 2.5, 5.0))
    img.SetOrigin((10.0, -20.0, 40.0))
    # Fixed point x corresponds to moving point x + 5 mm (2 voxels) along +x (patient left).
    shift = sitk.TranslationTransform(3, (5.0, 0.0, 0.0))
    out = sitk.GetArrayFromImage(propagate_labels(img, shift, img))
    expected = np.zeros_like(labels)
    expected[..., :-2] = labels[..., 2:]
    np.testing.assert_array_equal(out, expected)


def _pet_case():
    mr = np.zeros((8, 40, 40), np.uint8)  # 1 mm voxels, centres at 0..39 mm
    mr[:, :, 8:16] = 1  # exactly PET voxels 2 and 3 along x
    mr[:, :, 24:27] = 2  # 3/4 of PET voxel 6 (mm 23.5..27.5)
    mr[:, :, 32] = 5  # a 1 mm sheet: 1/4 of PET voxel 8
    labels = sitk.GetImageFromArray(mr)
    pet = sitk.Image(10, 10, 2, sitk.sitkFloat32)
    pet.SetSpacing((4.0, 4.0, 4.0))
    pet.SetOrigin((1.5, 1.5, 1.5))  # PET voxel m covers mm [4m - 0.5, 4m + 3.5]
    return labels, pet


def test_labels_to_pet_majority_same_frame():
    labels, pet = _pet_case()
    out, reg = labels_to_pet(labels, sitk.Cast(labels, sitk.sitkFloat32), pet, same_frame=True)
    assert reg is None
    arr = sitk.GetArrayFromImage(out)
    assert out.GetSize() == pet.GetSize() and out.GetSpacing() == pet.GetSpacing()
    expected_row = np.array([0, 0, 1, 1, 0, 0, 2, 0, 0, 0], np.uint8)
    assert (arr == expected_row[np.newaxis, np.newaxis, :]).all()
    # Same result from the lower-level function.
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(resample_labels_majority(labels, pet)), arr
    )


def test_labels_to_pet_needs_ct_when_frames_differ():
    labels, pet = _pet_case()
    with pytest.raises(RegistrationError, match="CT"):
        labels_to_pet(labels, sitk.Cast(labels, sitk.sitkFloat32), pet, same_frame=False)


def test_labels_to_pet_through_ct_registration(fixed_mr):
    true = euler(shift=(5.0, -3.0, 2.0), angles_deg=(0.0, 0.0, 3.0))
    # The PET/CT covers three times the MR's length, mostly above it (z -60..237.5 mm vs
    # -50..47.5 mm): centring on the whole CT would start about 100 mm off.
    ct = make_image(CT, transform=true, seed=5, size=(128, 96, 120), origin=(-160.0, -120.0, -60.0))
    # Labels on the MR grid: everything inside the right thigh's outline (x < 0) = R_VL.
    mask = sitk.GetArrayFromImage(thigh_mask(fixed_mr))
    xs = ORIGIN[0] + SPACING[0] * np.arange(SIZE[0])
    labels_arr = np.where(mask.astype(bool) & (xs < 0)[np.newaxis, np.newaxis, :], 1, 0)
    labels = sitk.GetImageFromArray(labels_arr.astype(np.uint8))
    labels.CopyInformation(fixed_mr)
    pet = sitk.Image(64, 48, 20, sitk.sitkFloat32)
    pet.SetSpacing((5.0, 5.0, 5.0))
    pet.SetOrigin((-157.5, -117.5, -47.5))
    out, reg = labels_to_pet(labels, fixed_mr, pet, ct_image=ct)
    assert reg is not None and reg.ok
    assert any("profile" in m for m in reg.messages)  # the z slab search was used
    assert max(tre(reg.transform, true.GetInverse())) < 1.5
    # Expected: the right-thigh labels moved by the true transform onto the PET grid.
    moved = sitk.Resample(labels, pet, true.GetInverse(), sitk.sitkNearestNeighbor, 0)
    a, b = sitk.GetArrayFromImage(out) == 1, sitk.GetArrayFromImage(moved) == 1
    dice = 2 * (a & b).sum() / (a.sum() + b.sum())
    assert dice > 0.95


def test_body_and_femur_masks_match_phantom():
    # Femur of the phantom: radius 13 mm, centre (-/+(75 + 0.2 z), 15 - 0.1 z) mm (LPS).
    small = dict(size=(128, 96, 6), origin=(-160.0, -120.0, -5.0))
    for values in (MR, CT):
        _, femur = body_and_femur(make_image(values, **small))
        arr = sitk.GetArrayFromImage(femur).astype(bool)
        xs = small["origin"][0] + SPACING[0] * np.arange(SIZE[0])
        ys = small["origin"][1] + SPACING[1] * np.arange(SIZE[1])
        for k in range(arr.shape[0]):
            z = small["origin"][2] + SPACING[2] * k
            for side, sel in ((-1, xs < 0), (1, xs > 0)):
                m = arr[k] & sel[np.newaxis, :]
                assert m.any(), (values is CT, k, side)
                j, i = np.nonzero(m)
                assert xs[i].mean() == pytest.approx(side * (75.0 - 0.2 * z), abs=2.0)
                assert ys[j].mean() == pytest.approx(15.0 - 0.1 * z, abs=2.0)
        if values is CT:  # cortex above 250 HU, marrow filled: the whole disc
            expected = 2 * np.pi * 13.0**2 / SPACING[0] ** 2 * arr.shape[0]
            assert arr.sum() == pytest.approx(expected, rel=0.15)


@pytest.fixture(scope="module")
def mr_ct_pair(fixed_mr):
    true = euler(shift=(-6.0, 4.0, -2.0), angles_deg=(0.0, 0.0, -4.0))
    return fixed_mr, make_image(CT, transform=true, seed=2), true


def test_check_passes_true_transform(mr_ct_pair):
    fixed, ct, true = mr_ct_pair
    good = check_registration(fixed, ct, true)
    assert good.ok, good.messages
    assert good.quality["femur_dice"] >= FEMUR_DICE_THRESHOLD
    assert good.quality["structure_gain"] < 0.0  # the true transform is the optimum


def test_check_flags_8mm_inplane_shift(mr_ct_pair):
    fixed, ct, true = mr_ct_pair
    shifted = sitk.CompositeTransform([true, sitk.TranslationTransform(3, (8.0, 0.0, 0.0))])
    bad = check_registration(fixed, ct, shifted)
    assert not bad.ok
    # The thigh outline alone would have let it through; the femur overlap does not.
    assert bad.quality["dice"] >= DICE_THRESHOLD
    assert bad.quality["femur_dice"] < FEMUR_DICE_THRESHOLD
    with pytest.raises(RegistrationError, match="femur Dice"):
        require_ok(bad)


@pytest.mark.parametrize("dz", [8.0, -8.0])
def test_check_flags_8mm_craniocaudal_shift(mr_ct_pair, dz):
    fixed, ct, true = mr_ct_pair
    shifted = sitk.CompositeTransform([true, sitk.TranslationTransform(3, (0.0, 0.0, dz))])
    bad = check_registration(fixed, ct, shifted)
    assert not bad.ok
    # Outline and femur (a near-cylinder) do not see a z shift; the fat planes do.
    assert bad.quality["dice"] >= DICE_THRESHOLD
    assert bad.quality["femur_dice"] >= FEMUR_DICE_THRESHOLD
    assert bad.quality["structure_gain"] > STRUCTURE_GAIN_THRESHOLD
    assert any("fat-structure" in m for m in bad.messages)


def test_erode_inplane_matches_itk_binary_erode():
    """The SciPy erosion gives ITK's BinaryErode (ball, z radius 0) voxel for voxel."""
    from myoimg.segment.register import _erode_inplane

    rng = np.random.default_rng(3)
    cases = (((1.95, 1.95, 4.0), 8.0), ((0.7, 1.3, 5.0), 5.0), ((1.0, 1.0, 2.0), 0.2))
    for spacing, radius_mm in cases:
        a = ndimage.binary_opening(rng.random((6, 50, 64)) > 0.25)
        a[:, :4, :] = True  # touching the image edge: outside counts as foreground
        mask = sitk.GetImageFromArray(a.astype(np.uint8))
        mask.SetSpacing(spacing)
        radius = [max(1, int(round(radius_mm / s))) for s in spacing]
        radius[2] = 0
        itk = sitk.BinaryErode(mask, radius, sitk.sitkBall, 0, 1)
        out = _erode_inplane(mask, radius_mm)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(itk))
        assert out.GetSpacing() == mask.GetSpacing()


def test_mapped_masks_equal_one_resample_per_mask():
    """Masks packed as bits of one image map exactly as resampled one by one."""
    from myoimg.segment.register import _mapped_masks

    rng = np.random.default_rng(4)
    moving = sitk.Image(40, 30, 8, sitk.sitkUInt8)
    moving.SetSpacing((1.1, 0.9, 4.0))
    moving.SetOrigin((-20.0, -15.0, -10.0))
    masks = []
    for _ in range(3):
        m = sitk.GetImageFromArray((rng.random((8, 30, 40)) > 0.5).astype(np.uint8))
        m.CopyInformation(moving)
        masks.append(m)
    reference = sitk.Image(33, 37, 11, sitk.sitkFloat32)
    reference.SetSpacing((1.3, 1.0, 3.0))
    reference.SetOrigin((-22.0, -14.0, -12.0))
    transform = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.02, -0.03, 0.1, (0.7, -1.2, 2.5))
    other = sitk.Image(masks[2])
    other.SetOrigin((-19.0, -15.0, -10.0))  # another grid: mapped on its own
    for group in (masks, [masks[0], other]):
        for got, mask in zip(_mapped_masks(group, reference, transform), group, strict=True):
            want = sitk.Resample(mask, reference, transform, sitk.sitkNearestNeighbor, 0)
            np.testing.assert_array_equal(got, sitk.GetArrayFromImage(want) > 0)
