"""Automatic quadriceps segmentation: real dev case, sides, refusals, contrast, QC picture."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from myoimg.errors import SegmentationError
from myoimg.labels import BY_NAME, QUADRICEPS
from myoimg.segment.auto import ROLL_NOISE_DEG, SegmentationResult, segment_thigh
from myoimg.segment.contrast import detect_contrast
from myoimg.segment.qc import save_qc_png
from myoimg.segment.thigh import from_lps_storage, to_lps_storage

# Floors set a little below what the method reaches on this case (see the final report
# / scripts/eval_segmentation.py); the reference is an nnU-Net output, not a tracing.
DICE_FLOOR_MEAN = 0.72  # measured 0.751 (session 15; turned 10 deg: 0.741)
DICE_FLOOR_VL = 0.78  # measured 0.81-0.84
DICE_FLOOR_VM = 0.73  # measured 0.762 (both legs averaged)
DICE_FLOOR_RF = 0.64  # measured 0.69 (0.67 with the lateral sides cut off)
# The same case shaded x0.5 (patient right) to x2 (left) across the field of view:
DICE_FLOOR_SHADED = 0.70  # measured 0.723 with N4 first and per-ray fat (0.592 without N4)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2.0 * (a & b).sum() / s) if s else 1.0


@pytest.fixture(scope="module")
def huashan(test_data):
    d = test_data / "huashan-001"
    return sitk.ReadImage(str(d / "image.nii.gz")), sitk.ReadImage(str(d / "labels.nii.gz"))


@pytest.fixture(scope="module")
def huashan_result(huashan) -> SegmentationResult:
    return segment_thigh(huashan[0])


def test_dev_case_dice_and_grid(huashan, huashan_result):
    image, ref_img = huashan
    res = huashan_result
    # The scan runs past the hip end of the shaft (pelvis on the top slices): the level
    # along the thigh is measured from there.
    assert any("from the proximal end of the femoral shaft" in m for m in res.messages)
    lab = res.labels
    assert lab.GetSize() == image.GetSize()
    assert lab.GetPixelID() == sitk.sitkUInt8
    assert np.allclose(lab.GetOrigin(), image.GetOrigin())
    assert np.allclose(lab.GetDirection(), image.GetDirection())
    assert res.sides == ("R", "L")
    assert res.warnings == []  # both thighs lie inside the field of view
    assert res.contrast == "fatsup"  # Dixon water: fat dark
    a = sitk.GetArrayFromImage(lab)
    ref = sitk.GetArrayFromImage(ref_img)
    scores = {m.name: dice(a == m.id, ref == m.id) for m in QUADRICEPS}
    assert np.mean(list(scores.values())) >= DICE_FLOOR_MEAN, scores
    assert min(scores["R_VL"], scores["L_VL"]) >= DICE_FLOOR_VL, scores
    assert (scores["R_VM"] + scores["L_VM"]) / 2 >= DICE_FLOOR_VM, scores
    assert (scores["R_RF"] + scores["L_RF"]) / 2 >= DICE_FLOOR_RF, scores
    for key in ("thigh", "femur", "muscle", "compartments"):
        assert res.steps[key].GetSize() == image.GetSize()


def test_dev_case_with_coil_shading(huashan):
    """Surface-coil shading across the field of view costs little: the segmentation
    divides by the N4 field (fitted inside the body outline) before it sets the fat and
    muscle levels of each leg and outlines the body again."""
    image, ref_img = huashan
    arr = sitk.GetArrayFromImage(image).astype(np.float32)
    n = arr.shape[2]
    shaded = sitk.GetImageFromArray(arr * np.exp(np.log(2.0) * (np.arange(n) - n / 2) / (n / 2)))
    shaded.CopyInformation(image)
    res = segment_thigh(shaded)
    assert any("N4" in m for m in res.messages)
    a = sitk.GetArrayFromImage(res.labels)
    ref = sitk.GetArrayFromImage(ref_img)
    scores = [dice(a == m.id, ref == m.id) for m in QUADRICEPS]
    assert np.mean(scores) >= DICE_FLOOR_SHADED, scores


def test_dev_case_right_labels_on_patient_right(huashan, huashan_result):
    """Right-side labels lie at -x (patient right in LPS), left ones at +x, per slice."""
    from myoimg.segment.thigh import slice_grid_lps

    image = huashan[0]
    a = sitk.GetArrayFromImage(huashan_result.labels)
    right = np.isin(a, [m.id for m in QUADRICEPS if m.side == "R"])
    left = np.isin(a, [m.id for m in QUADRICEPS if m.side == "L"])
    n_checked = 0
    for k in range(a.shape[0]):
        if not (right[k].any() and left[k].any()):
            continue
        x, _ = slice_grid_lps(image, k)
        # This subject lies with the body midline near x = 0 (femurs at about -100 and
        # +110 mm); the quadriceps are far lateral of it.
        assert np.mean(x[right[k]] < 0) > 0.95
        assert np.mean(x[left[k]] > 0) > 0.95
        n_checked += 1
    assert n_checked >= 10


def test_mirrored_copy_swaps_sides(huashan, huashan_result):
    image = huashan[0]
    flipped = sitk.GetImageFromArray(sitk.GetArrayFromImage(image)[:, :, ::-1].copy())
    flipped.CopyInformation(image)
    res = segment_thigh(flipped)
    a = sitk.GetArrayFromImage(huashan_result.labels)
    b = sitk.GetArrayFromImage(res.labels)[:, :, ::-1]
    # What was the right VL (id 1) in the original is now on the -x side... of the
    # mirrored image's left leg: it must be labelled L_VL (5), and vice versa.
    for side_a, side_b in (("R", "L"), ("L", "R")):
        ma = a == BY_NAME[f"{side_a}_VL"].id
        mb = b == BY_NAME[f"{side_b}_VL"].id
        assert dice(ma, mb) > 0.7


def test_one_leg_crop_keeps_side(huashan, huashan_result):
    image = huashan[0]
    size = image.GetSize()
    # Columns run toward +x (patient left): the first half is the patient's right leg.
    right_half = image[: size[0] // 2, :, :]
    res = segment_thigh(right_half)
    assert res.sides == ("R",)
    a = sitk.GetArrayFromImage(res.labels)
    assert set(np.unique(a)) <= {0, 1, 2, 3, 4, 11, 12, 13, 14}
    assert (a == 1).sum() > 0
    assert any("one leg" in m for m in res.messages)
    left_half = image[size[0] // 2 :, :, :]
    res_l = segment_thigh(left_half)
    assert res_l.sides == ("L",)


def test_a_leg_whose_shaft_end_is_missed_takes_the_other_legs_levels(huashan):
    """Slices 7-12 of the development case: the right femur's proximal end is in the
    stack, the left one's is found on the last slice, so its level would be the mid-thigh
    guess (0.5 at the middle, actually ~0.8): the seeds of the left vastus medialis then
    sat where it lies distally (L_VM .17; with the right leg's levels .60)."""
    image, ref = (x[:, :, 7:13] for x in huashan)
    res = segment_thigh(image)
    assert any("left leg's from the other leg's" in m for m in res.messages), res.messages
    lab, truth = sitk.GetArrayFromImage(res.labels), sitk.GetArrayFromImage(ref)
    vm = BY_NAME["L_VM"].id
    assert dice(lab == vm, truth == vm) > 0.45


def test_field_of_view_cutting_the_lateral_thighs(huashan):
    """Both thighs cut 26 mm at their lateral sides: the front fascia must not take the
    cut sides (no skin, no fat seen) as its fat reference (RF was .55/.51 without that)."""
    image, ref_img = huashan
    i0, i1 = 44, image.GetSize()[0] - 48
    res = segment_thigh(image[i0:i1, :, :])
    ref = sitk.GetArrayFromImage(ref_img)[:, :, i0:i1]
    lab = sitk.GetArrayFromImage(res.labels)
    rf = [dice(lab == BY_NAME[n].id, ref == BY_NAME[n].id) for n in ("R_RF", "L_RF")]
    assert np.mean(rf) >= DICE_FLOOR_RF, rf
    assert any("edge of the field of view" in w for w in res.warnings)


def test_patient_roll_turns_the_model(huashan, huashan_result):
    """The case turned 10 deg in plane (a patient rolled on the table): the line between
    the femurs gives the roll and the seed model turns with it (mean Dice .683 without,
    .726 with); the unturned case (femur line -0.7 deg) is left as it is."""
    image, ref_img = huashan
    centre = image.TransformContinuousIndexToPhysicalPoint([s / 2.0 for s in image.GetSize()])
    turn = sitk.Euler3DTransform(centre, 0.0, 0.0, float(np.radians(-10.0)))
    res = segment_thigh(sitk.Resample(image, image, turn, sitk.sitkLinear, 0.0))
    ref = sitk.GetArrayFromImage(sitk.Resample(ref_img, image, turn, sitk.sitkNearestNeighbor, 0))
    # Resample maps output points through the transform: the content turns by +10 deg.
    # The femur line tilts 10 - 0.7 deg; the model turns by the tilt beyond ROLL_NOISE_DEG.
    assert res.roll_deg == pytest.approx(10.0 - 0.7 - ROLL_NOISE_DEG, abs=1.0)
    assert any("patient roll" in m for m in res.messages)
    lab = sitk.GetArrayFromImage(res.labels)
    scores = [dice(lab == m.id, ref == m.id) for m in QUADRICEPS]
    assert np.mean(scores) >= DICE_FLOOR_MEAN, scores
    assert huashan_result.roll_deg == 0.0


def test_roll_from_the_femur_line():
    from types import SimpleNamespace

    from myoimg.segment.auto import _roll

    def femurs(tilt_deg: float, n: int = 5) -> list:
        t = np.radians(tilt_deg)
        right = [SimpleNamespace(centre_xy=(-90.0 * np.cos(t), -90.0 * np.sin(t)))] * n
        left = [SimpleNamespace(centre_xy=(90.0 * np.cos(t), 90.0 * np.sin(t)))] * n
        return [right, left]

    # The tilt beyond ROLL_NOISE_DEG (left-right asymmetry of the femurs in their legs).
    assert np.degrees(_roll(femurs(8.0))) == pytest.approx(8.0 - ROLL_NOISE_DEG)
    assert np.degrees(_roll(femurs(-12.0))) == pytest.approx(-12.0 + ROLL_NOISE_DEG)
    assert _roll(femurs(ROLL_NOISE_DEG - 0.5)) == 0.0
    assert _roll(femurs(8.0)[:1]) == 0.0  # one leg: no line
    missing = femurs(8.0)
    missing[1] = [None] * 5
    assert _roll(missing) == 0.0


def test_threads_give_the_serial_result(huashan, huashan_result, monkeypatch):
    """Slices are split on several threads; one thread must give the same labels."""
    import myoimg.segment.threads as threads

    monkeypatch.setattr(threads, "n_threads", lambda: 1)
    serial = segment_thigh(huashan[0])
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(serial.labels), sitk.GetArrayFromImage(huashan_result.labels)
    )
    assert serial.messages == huashan_result.messages


def test_thread_map_keeps_order_and_raises():
    from myoimg.segment.threads import thread_map

    assert list(thread_map(lambda v: v * v, range(7))) == [v * v for v in range(7)]

    def bad(v):
        if v == 3:
            raise ValueError("slice 3")
        return v

    with pytest.raises(ValueError, match="slice 3"):
        list(thread_map(bad, range(6)))


def test_head_is_refused():
    head = sitk.ReadImage(get_testdata_file("MR_small.dcm"))
    with pytest.raises(SegmentationError, match="does not look like a thigh"):
        segment_thigh(head)


def test_brain_like_blob_is_refused():
    # An ellipsoid "head" with two dark ventricles and no bone ring around: no femur.
    kk, jj, ii = np.mgrid[0:12, 0:160, 0:160]
    head = (((jj - 80) / 70.0) ** 2 + ((ii - 80) / 58.0) ** 2) <= 1.0
    arr = np.where(head, 600.0, 5.0).astype(np.float32)
    for ci in (66, 94):
        vent = (((jj - 75) / 18.0) ** 2 + ((ii - ci) / 6.0) ** 2) <= 1.0
        arr[vent] = 60.0
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((1.0, 1.0, 5.0))
    with pytest.raises(SegmentationError, match="femur") as err:
        segment_thigh(img)
    # The contrast came from the image (the femur search depends on it): the refusal
    # says which family was taken and how to give the other; not when the user chose it.
    assert "contrast was taken as" in str(err.value) and "--contrast" in str(err.value)
    with pytest.raises(SegmentationError, match="femur") as err:
        segment_thigh(img, contrast="t2fs")
    assert "--contrast" not in str(err.value)


def test_2d_and_4d_inputs_are_refused():
    with pytest.raises(SegmentationError, match="3-D"):
        segment_thigh(sitk.Image(64, 64, sitk.sitkFloat32))
    with pytest.raises(SegmentationError, match="3-D"):
        segment_thigh(sitk.Image([16, 16, 4, 2], sitk.sitkFloat32))


@pytest.mark.parametrize("order", [(0, 2, 1), (2, 1, 0)])
def test_volume_stored_along_another_axis_is_restacked(huashan, huashan_result, tmp_path, order):
    """The same voxels stored as coronal-like (0, 2, 1) or column-major (2, 1, 0) volumes
    (as 3-D coronal acquisitions and some converters write them): segmented as axial
    slices, labels on the input grid and equal voxel for voxel to the axial result."""
    image = sitk.PermuteAxes(huashan[0], list(order))
    res = segment_thigh(image)
    assert res.labels.GetSize() == image.GetSize()
    assert np.allclose(res.labels.GetDirection(), image.GetDirection())
    assert res.steps["femur"].GetSize() == image.GetSize()
    assert "re-stacked into axial slices" in res.messages[0]
    back = sitk.Resample(res.labels, huashan[0], sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(huashan_result.labels)
    )
    # The QC picture shows axial slices of it too (the same picture as the axial volume's).
    a = save_qc_png(image, res.labels, tmp_path / "restacked.png", n_slices=2)
    b = save_qc_png(huashan[0], huashan_result.labels, tmp_path / "axial.png", n_slices=2)
    assert a.read_bytes() == b.read_bytes()


def test_lps_storage_round_trip_keeps_every_voxel_in_place():
    """to_lps_storage re-stores (permutes and reverses axes) without moving any voxel in
    physical space, and from_lps_storage restores the input grid exactly."""
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.random((6, 40, 36)).astype(np.float32))
    image.SetSpacing((0.8, 0.9, 5.0))
    image.SetOrigin((10.0, -20.0, 30.0))
    # columns toward -y (anterior), rows toward -x (right), slices toward -z (feet)
    image.SetDirection([0, -1, 0, -1, 0, 0, 0, 0, -1])
    lps, order, flips = to_lps_storage(image)
    assert order == [1, 0, 2] and flips == [True, True, True]
    assert np.allclose(lps.GetDirection(), np.eye(3).ravel())
    assert lps.GetSpacing() == (0.9, 0.8, 5.0)
    for idx in ((0, 0, 0), (35, 39, 5), (7, 21, 3)):
        p = image.TransformIndexToPhysicalPoint(idx)
        assert lps[lps.TransformPhysicalPointToIndex(p)] == image[idx]
    back = from_lps_storage(lps, order, flips, image)
    assert back.GetDirection() == image.GetDirection() and back.GetOrigin() == image.GetOrigin()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert to_lps_storage(lps)[0] is lps  # already in LPS order: returned as it is


def test_a_scan_stored_the_other_way_round_gets_the_same_labels(huashan, huashan_result):
    """The real case with columns, rows and slices all reversed (as a RAS NIfTI written by
    a converter, slices head to foot): the same labels voxel for voxel in physical space,
    not merely similar ones (before the re-storing: 99.8 % of voxels, Dice .7553 / .7606)."""
    flipped = sitk.Flip(huashan[0], [True, True, True])
    res = segment_thigh(flipped)
    assert res.labels.GetDirection() == flipped.GetDirection()
    assert "columns, rows and slices running opposite to LPS" in res.messages[0]
    back = sitk.Resample(res.labels, huashan[0], sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(huashan_result.labels)
    )


def test_volume_without_an_axis_along_the_body_is_refused():
    image = sitk.Image(64, 64, 16, sitk.sitkFloat32)
    t = np.radians(50.0)  # every axis more than 37 deg off the body axis
    image.SetDirection([1, 0, 0, 0, np.cos(t), -np.sin(t), 0, np.sin(t), np.cos(t)])
    with pytest.raises(SegmentationError, match="no image axis runs along the body"):
        segment_thigh(image)


def test_unknown_contrast_name_is_refused(huashan):
    with pytest.raises(SegmentationError, match="unknown contrast"):
        segment_thigh(huashan[0], contrast="pd-weighted-xyz")


@pytest.mark.parametrize(
    ("attrs", "family"),
    [
        ({"ScanOptions": ["IR"], "SeriesDescription": "ax thigh"}, "fatsup"),
        ({"ScanOptions": "FS", "SeriesDescription": "t2 tse"}, "fatsup"),
        ({"SeriesDescription": "t2_tirm_tra"}, "fatsup"),
        ({"SeriesDescription": "AX STIR THIGHS"}, "fatsup"),
        ({"SeriesDescription": "t2_spair_tra"}, "fatsup"),
        ({"SeriesDescription": "Dixon_W"}, "fatsup"),
        ({"SeriesDescription": "T1 TSE AX"}, "t1"),
        ({"SeriesDescription": "Dixon_in_phase"}, "t1"),
        ({"SeriesDescription": "t1_vibe_dixon_F"}, "t1"),
        ({"SeriesDescription": "t2_tse_dixon_tra_IN"}, "t1"),
        ({"SeriesDescription": "mDIXON IP"}, "t1"),
        ({"SeriesDescription": "T1W fat sat"}, "fatsup"),
    ],
)
def test_detect_contrast_from_header(attrs, family):
    ds = Dataset()
    for k, v in attrs.items():
        setattr(ds, k, v)
    got, reason = detect_contrast(sitk.Image(8, 8, 2, sitk.sitkFloat32), ds)
    assert got == family, reason
    assert reason


def test_detect_contrast_from_image(huashan):
    image = huashan[0]
    fam, reason = detect_contrast(image)
    assert fam == "fatsup" and "image" in reason
    # Make a fat-bright copy: raise the subcutaneous ring above muscle by replacing the
    # outer 3-8 mm with a bright value (as fat on T1).
    a = sitk.GetArrayFromImage(image).astype(np.float32)
    from scipy import ndimage as ndi

    from myoimg.segment.thigh import body_mask

    sp = image.GetSpacing()
    body = body_mask(a, (sp[0], sp[1]))
    for k in range(a.shape[0]):
        depth = ndi.distance_transform_edt(body[k], sampling=(sp[1], sp[0]))
        a[k][(depth > 0) & (depth < 10)] = 4000.0
    t1 = sitk.GetImageFromArray(a)
    t1.CopyInformation(image)
    assert detect_contrast(t1)[0] == "t1"


def test_detect_contrast_t1_of_fat_replaced_muscle(huashan):
    """A T1-like copy of the real case (a dystrophy: many muscles fat-replaced): fat
    signal as the water image's complement inside the body, muscle at 0.3 of fat. Its
    subcutaneous fat is only 1.10 x the deep thigh's median (under FAT_OVER_MUSCLE: the
    first rule alone calls it fat-suppressed), but nothing deep is much brighter than the
    fat: fat-bright. The water image itself stays fat-suppressed (95th percentile 2.9 x)."""
    from myoimg.segment import contrast
    from myoimg.segment.thigh import body_mask

    image = huashan[0]
    a = sitk.GetArrayFromImage(image).astype(np.float32)
    sp = image.GetSpacing()
    body = body_mask(a, (sp[0], sp[1]))
    hi = float(np.percentile(a[body], 99))
    fatness = np.clip(1.0 - a / (0.7 * hi), 0.0, 1.0)
    t1 = sitk.GetImageFromArray(np.where(body, hi * (0.3 + 0.7 * fatness), 0.0).astype(np.float32))
    t1.CopyInformation(image)
    fam, reason = detect_contrast(t1)
    assert fam == "t1" and "fat-replaced" in reason
    ring_ratio = float(reason.split("ratio ")[1].split(")")[0])
    assert 1.0 < ring_ratio < contrast.FAT_OVER_MUSCLE  # the first rule alone would miss it
    assert detect_contrast(image)[0] == "fatsup"


def test_detect_contrast_lean_fat_suppressed_thigh():
    """A lean patient's fat-suppressed image without oedema: the 3-8 mm ring under the skin
    is mostly muscle, so nothing deep outshines it (95th percentile < BRIGHTEST_OVER_FAT x
    the ring), but neither is the ring brighter than the deep thigh's darker quarter: it
    stays fat-suppressed (without FAT_OVER_DARK_QUARTER it would be taken for T1)."""
    from myoimg.segment import contrast

    kk, jj, ii = np.mgrid[0:4, 0:200, 0:200]
    r = np.hypot(jj - 100.0, ii - 100.0)
    rng = np.random.default_rng(0)
    arr = np.where(r <= 80.0, 1000.0 + rng.normal(0.0, 60.0, r.shape), 0.0)  # muscle
    arr[(r > 77.0) & (r <= 80.0)] = 150.0  # a 2-3 mm layer of suppressed fat
    arr[r < 12.0] = 30.0  # femur
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    img.SetSpacing((1.0, 1.0, 5.0))
    fam, reason = detect_contrast(img)
    over = float(reason.split("95th percentile ")[1].split(" x")[0])
    assert fam == "fatsup" and over < contrast.BRIGHTEST_OVER_FAT, reason


def test_detect_contrast_header_missing_falls_back_to_image(huashan):
    ds = pydicom.Dataset()
    ds.SeriesDescription = "thigh axial"
    fam, reason = detect_contrast(huashan[0], ds)
    assert fam == "fatsup" and "image" in reason


def test_save_qc_png(tmp_path, huashan, huashan_result):
    out = save_qc_png(huashan[0], huashan_result.labels, tmp_path / "qc" / "seg.png", n_slices=3)
    assert out.is_file()
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.parent.iterdir() if p.name != "seg.png"]  # no temp left


def test_save_steps_png_draws_every_step(tmp_path, huashan, huashan_result):
    import matplotlib.image as mpimg

    from myoimg.segment.qc import _MASK_COLOURS, save_steps_png

    prepared = huashan_result.steps["prepared"]
    assert prepared.GetSize() == huashan[0].GetSize()
    assert prepared.GetOrigin() == huashan[0].GetOrigin()
    # N4 ran: the image the steps used is not the input.
    assert not np.allclose(sitk.GetArrayFromImage(prepared), sitk.GetArrayFromImage(huashan[0]))
    out = save_steps_png(huashan[0], huashan_result, tmp_path / "steps.png")
    assert [p.name for p in tmp_path.iterdir()] == ["steps.png"]  # no temp file left
    rgb = mpimg.imread(out)[..., :3]
    # Each mask's outline colour is drawn on the slices (its legend swatch alone is ~170
    # pixels; the outlines of the development case give 1-5k).
    for name, colour in _MASK_COLOURS.items():
        hit = np.all(np.abs(rgb - np.asarray(colour)) < 0.02, axis=-1).sum()
        assert hit > 500, name
    with pytest.raises(ValueError, match="steps"):
        save_steps_png(huashan[0], SegmentationResult(labels=huashan_result.labels, contrast="fatsup",
                       contrast_name="", contrast_reason="", sides=("R", "L")), tmp_path / "x.png")


def test_qc_display_is_radiological():
    """A slice stored right-to-left / bottom-to-top is flipped back for display."""
    from myoimg.segment.qc import _display_slice

    a = np.arange(12).reshape(3, 4)
    assert np.array_equal(_display_slice(a, np.eye(3).ravel()), a)
    # i toward -x (patient right), j toward -y (anterior): both axes flipped.
    flipped = np.diag([-1.0, -1.0, 1.0]).ravel()
    assert np.array_equal(_display_slice(a[::-1, ::-1], flipped), a)
    # i along +y, j along +x: transposed storage.
    swapped = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]]).ravel()
    assert np.array_equal(_display_slice(a.T, swapped), a)


def test_level_model_interpolates_between_anatomical_keypoints():
    from myoimg.segment.compartments import (
        GROUPS,
        LEVEL_MODEL,
        MARKER_MODEL,
        RF_MIN_LEVEL,
        marker_model,
    )

    assert marker_model(None) == MARKER_MODEL
    for g, keys in LEVEL_MODEL.items():
        for level, t, u in keys:
            model = dict((gg, (tt, uu)) for gg, tt, uu in marker_model(level))
            assert tuple(model) == GROUPS  # group order (label ids) never changes
            assert np.allclose(model[g], (t, u))
        # outside 0..1 the ends hold (no RF seed at all near the knee, below)
        if g != "RF":
            assert np.allclose(dict((gg, tt) for gg, tt, _ in marker_model(-0.5))[g], keys[0][1])
        assert np.allclose(dict((gg, tt) for gg, tt, _ in marker_model(2.0))[g], keys[-1][1])
    # Half-way between the 0.25 and 0.75 keypoints: their mean (VM seed's medial edge).
    vm = {lv: t for lv, t, _ in LEVEL_MODEL["VM"]}
    mid = dict((g, t) for g, t, _ in marker_model(0.5))["VM"]
    assert mid[0] == pytest.approx((vm[0.25][0] + vm[0.75][0]) / 2)
    # VM is bigger distally; the sartorius turns from antero-medial (hip) to postero-medial.
    assert vm[0.0][1] - vm[0.0][0] > vm[1.0][1] - vm[1.0][0]
    sar = {lv: t for lv, t, _ in LEVEL_MODEL["SAR"]}
    assert sar[0.0][1] < sar[1.0][0]
    # Below the greater trochanter the lateral shaft is VL's origin: VI's seed stays in front.
    vi = {lv: t for lv, t, _ in LEVEL_MODEL["VI"]}
    assert vi[1.0][1] < 45.0 < vi[0.0][1]
    # No rectus femoris seed near the knee (its tendon), one above.
    rf = {lv: dict((g, t) for g, t, _ in marker_model(lv))["RF"] for lv in (0.0, RF_MIN_LEVEL, 1.0)}
    assert rf[0.0][1] < rf[0.0][0] and rf[RF_MIN_LEVEL][1] > rf[RF_MIN_LEVEL][0]
    # At the top RF lies lateral of the sartorius crossing in front: its seed moves off it.
    assert rf[1.0][0] > rf[RF_MIN_LEVEL][0] and rf[1.0][0] > sar[1.0][1]


def test_gluteus_maximus_seeded_only_at_the_top_of_the_thigh_and_never_labelled(huashan_result):
    from myoimg.labels import BY_ID
    from myoimg.segment.compartments import GMAX_DEG, GMAX_LEVEL, marker_model

    def gmax(level):
        return dict((g, t) for g, t, _ in marker_model(level))["GMAX"]

    for level in (0.0, 0.5, GMAX_LEVEL - 0.01):
        t0, t1 = gmax(level)
        assert t1 < t0  # empty range: no seed below the hip end
    assert gmax(1.0) == GMAX_DEG and 90.0 < GMAX_DEG[0] < GMAX_DEG[1] < 180.0  # postero-lateral
    # The development case reaches the hip: seeded there, but only our label ids come out.
    ids = set(np.unique(sitk.GetArrayFromImage(huashan_result.labels)).tolist()) - {0}
    assert ids <= set(BY_ID)


def test_a_stack_that_shows_no_shaft_end_warns_that_its_level_is_guessed(huashan, huashan_result):
    """Slices 5-10 of the development case (a mid-thigh protocol): neither femoral shaft
    ends in the stack, the level model rests on the mid-thigh guess, and the result says
    so as a warning (shown next to the numbers); the whole stack, whose proximal ends are
    in it, gets no such warning."""
    image, _ = (x[:, :, 5:11] for x in huashan)
    res = segment_thigh(image)
    guessed = [w for w in res.warnings if "level along the thigh was assumed" in w]
    assert len(guessed) == 1, res.warnings
    assert any("assumed centred at mid-thigh" in m for m in res.messages)
    assert not any("level along the thigh was assumed" in w for w in huashan_result.warnings)
