"""Automatic segmentation on an analytic two-thigh phantom, fat-suppressed and T1-like.

The phantom is drawn here from a textbook layout (polar sectors around the femur,
1.5 mm fat septa between muscles, a subcutaneous fat ring), so the truth is exact and
independent of the method's marker model. Geometry: identity direction (LPS), the
patient's right leg at x = -90 mm.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import SimpleITK as sitk

from myoimg.labels import BY_NAME
from myoimg.segment import fascia, septa
from myoimg.segment.auto import segment_thigh

SPACING = (1.0, 1.0, 8.0)  # mm (i, j, k)
FEMUR_R, SKIN_R, FASCIA_R = 13.0, 72.0, 63.0
# (group, theta range deg from anterior toward lateral, radius range mm)
SECTORS = [
    ("VI", (-40.0, 110.0), (FEMUR_R, 30.0)),
    ("RF", (-25.0, 40.0), (30.0, FASCIA_R)),
    ("VL", (40.0, 150.0), (30.0, FASCIA_R)),
    ("VL", (110.0, 150.0), (FEMUR_R, 30.0)),
    ("VM", (-100.0, -25.0), (30.0, 52.0)),
    ("VM", (-65.0, -25.0), (52.0, FASCIA_R)),
    ("VM", (-100.0, -40.0), (FEMUR_R, 30.0)),
    ("SAR", (-100.0, -65.0), (52.0, FASCIA_R)),
    ("GRA", (-135.0, -100.0), (52.0, FASCIA_R)),
    ("ADD", (-160.0, -100.0), (FEMUR_R, 52.0)),
    ("ADD", (-160.0, -135.0), (52.0, FASCIA_R)),
    ("HAM", (150.0, 200.0), (FEMUR_R, FASCIA_R)),
]


def make_phantom(fat_bright: bool, nz: int = 6, turn_deg: float = 0.0):
    """``turn_deg``: the right leg's muscles turned about its femur (+ = external, the
    front of the thigh toward the patient's right)."""
    ny, nx = 200, 380
    jj, ii = np.mgrid[0:ny, 0:nx].astype(float)
    x = -190.0 + ii * SPACING[0]
    y = -100.0 + jj * SPACING[1]
    muscle, fat, cortex, marrow = (
        (300.0, 900.0, 10.0, 850.0) if fat_bright else (500.0, 80.0, 10.0, 60.0)
    )
    sl = np.zeros((ny, nx), np.float32)
    truth = np.zeros((ny, nx), np.uint8)
    for side, cx in (("R", -90.0), ("L", 90.0)):
        dx, dy = x - cx, y - 0.0
        r = np.hypot(dx, dy)
        lat = -dx if side == "R" else dx
        th = np.degrees(np.arctan2(lat, -dy))
        if side == "R":
            th = (th - turn_deg + 180.0) % 360.0 - 180.0
        sl[r <= SKIN_R] = fat
        for group, (t0, t1), (r0, r1) in SECTORS:
            in_t = (th >= t0) & (th < t1) if t1 <= 180 else (th >= t0) | (th < t1 - 360)
            m = in_t & (r >= r0) & (r < r1)
            truth[m] = BY_NAME[f"{side}_{group}"].id
        sl[(truth > 0) & (r <= FASCIA_R)] = muscle
        # 1.5 mm fat septa on every border between two muscles.
        t = truth.copy()
        border = np.zeros_like(t, bool)
        for sh in ((0, 1), (1, 0)):
            diff = (np.roll(t, sh, axis=(0, 1)) != t) & (t > 0) & (np.roll(t, sh, axis=(0, 1)) > 0)
            border |= diff
        border = (
            (border | np.roll(border, 1, 0) | np.roll(border, 1, 1))
            & (r > FEMUR_R + 1)
            & (r <= FASCIA_R)
        )
        sl[border & (np.abs(x - cx) < SKIN_R + 1)] = fat
        truth[border & (np.abs(x - cx) < SKIN_R + 1)] = 0
        sl[r <= FEMUR_R] = cortex
        sl[r <= FEMUR_R - 4.0] = marrow
    if not fat_bright:
        # Oedema: a bright patch inside the right VL (as in active myositis).
        sl[(truth == BY_NAME["R_VL"].id) & (np.hypot(x + 90 + 45, y - 5) < 15)] = 900.0
    rng = np.random.default_rng(0)
    arr = np.repeat(sl[None], nz, axis=0) + rng.normal(0, 8.0, (nz, ny, nx)).astype(np.float32)
    img = sitk.GetImageFromArray(np.clip(arr, 0, None).astype(np.float32))
    img.SetSpacing(SPACING)
    img.SetOrigin((-190.0, -100.0, 0.0))
    return img, np.repeat(truth[None], nz, axis=0)


def dice(a, b):
    s = a.sum() + b.sum()
    return 2.0 * (a & b).sum() / s if s else 1.0


@pytest.mark.parametrize("fat_bright", [False, True], ids=["fatsup", "t1"])
def test_analytic_phantom(fat_bright):
    img, truth = make_phantom(fat_bright)
    res = segment_thigh(img)
    assert res.contrast == ("t1" if fat_bright else "fatsup"), res.contrast_reason
    assert res.sides == ("R", "L")
    lab = sitk.GetArrayFromImage(res.labels)
    scores = {
        f"{s}_{g}": dice(lab == BY_NAME[f"{s}_{g}"].id, truth == BY_NAME[f"{s}_{g}"].id)
        for s in "RL"
        for g in ("VL", "VM", "VI", "RF")
    }
    assert min(scores.values()) >= 0.85, scores
    assert np.mean(list(scores.values())) >= 0.93, scores


def test_fat_replaced_rectus_stays_inside_fascia():
    """A fat-replaced RF (fat-dark on a fat-suppressed image) is muscle, not fat.

    Both RF sectors get the subcutaneous-fat intensity: only the anatomy (the fat layer in
    front is about as thick as over the flanks) can put them inside the fascia.
    """
    img, truth = make_phantom(False)
    arr = sitk.GetArrayFromImage(img)
    rf = np.isin(truth, [BY_NAME["R_RF"].id, BY_NAME["L_RF"].id])
    arr[rf] = 80.0  # the phantom's fat level
    fat_rf = sitk.GetImageFromArray(arr)
    fat_rf.CopyInformation(img)
    res = segment_thigh(fat_rf)
    muscle = sitk.GetArrayFromImage(res.steps["muscle"]) > 0
    assert muscle[rf].mean() >= 0.8, muscle[rf].mean()
    lab = sitk.GetArrayFromImage(res.labels)
    for side in "RL":
        lid = BY_NAME[f"{side}_RF"].id
        assert dice(lab == lid, truth == lid) >= 0.5


@pytest.mark.parametrize("level", [0.0, 0.5, 0.85])
def test_vm_stays_in_front_of_medial_septum(level):
    """VM does not wrap behind the femur where a septum cuts the adductors off it.

    One right-leg slice (femur at the origin, identity geometry): uniform muscle, a fat
    septum between adductors and hamstrings (170 deg) and a septum 25 mm from the femur
    centre that separates a deep postero-medial strip from the adductor seeds. Without
    the medial-septum limit the VM flood fills that strip down to 180 deg.
    """
    from myoimg.segment import compartments as comp

    def septa(r, th):
        return ((np.abs(th - 170.0) < 1.5) & (r < 63) & (r > 13)) | (
            (np.abs(r - 25.0) < 1.0) & ((th < -100.0) | (th > 170.0))
        )

    sl, x, y, r, th = _right_leg_slice(0, septa)
    res = _split_right_leg(sl, x, y, r, level)
    vm = res.groups == comp.GROUPS.index("VM") + 1
    assert vm.sum() > 300
    # res.theta: the frame's own angles (measured from near the femur centre)
    limit = comp.vm_posterior_limit(level)
    assert res.theta[vm].min() >= limit
    assert th[vm].min() >= limit - 5.0
    # The strip behind the limit went to the adductors instead.
    strip = (r > 14) & (r < 24) & (th < -130.0) & (th > -160.0)
    add = res.groups == comp.GROUPS.index("ADD") + 1
    assert add[strip].mean() > 0.5


def test_streaky_fat_replaced_rf_and_vm_stay_inside_fascia():
    """Fat-replaced RF and superficial VM with residual fibres are muscle, not fat.

    Both sectors get the subcutaneous-fat level crossed by 2 mm bright fibre bands every
    4 mm (streaky, as fat-replaced muscle with residual fibres). Together they make a
    ~105-degree notch in the first-muscle depth, wider than the front sector that the
    anatomical front-fat check covers: only their texture puts them inside the fascia.
    """
    img, truth = make_phantom(False)
    arr = sitk.GetArrayFromImage(img)
    nz, ny, nx = arr.shape
    x = -190.0 + np.arange(nx)[None, :] * SPACING[0]
    y = -100.0 + np.arange(ny)[:, None] * SPACING[1]
    rad = np.minimum(np.hypot(x + 90.0, y), np.hypot(x - 90.0, y))[None].repeat(nz, 0)
    rf = np.isin(truth, [BY_NAME["R_RF"].id, BY_NAME["L_RF"].id])
    vm = np.isin(truth, [BY_NAME["R_VM"].id, BY_NAME["L_VM"].id]) & (rad >= 52.0)
    replaced = rf | vm
    fibres = np.broadcast_to(((np.round(y) % 4) < 2), arr.shape)
    arr[replaced] = 80.0 + np.random.default_rng(1).normal(0, 8.0, replaced.sum())
    arr[replaced & fibres] = 300.0
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    res = segment_thigh(out)
    muscle = sitk.GetArrayFromImage(res.steps["muscle"]) > 0
    # Before the fascia contour: 0.78 (RF) and 0.35 (VM) inside.
    assert muscle[rf].mean() >= 0.85, muscle[rf].mean()
    assert muscle[vm].mean() >= 0.7, muscle[vm].mean()
    # The smooth subcutaneous fat (fascia at 63 mm, skin at 72 mm) stays outside.
    subcut = (rad > FASCIA_R + 1.0) & (rad < SKIN_R)
    assert muscle[subcut].mean() <= 0.1, muscle[subcut].mean()


def _fascia_profiles(fat_mm=10.0, n_d=60):
    """Polar profiles with a uniform fat layer: (first_muscle, musclelike, fatlike, line)."""

    d = np.arange(n_d, dtype=float)  # 1 mm depth grid
    first = np.full(fascia.N_BINS, fat_mm)
    musclelike = np.broadcast_to(d >= fat_mm, (fascia.N_BINS, n_d)).astype(float)
    fatlike = 1.0 - musclelike
    return first, musclelike, fatlike, np.zeros_like(fatlike)


def test_fascia_depth_follows_uniform_fat():

    first, ml, fl, line = _fascia_profiles()
    depth = fascia.fascia_depth(first, ml, fl, line, 1.0)
    np.testing.assert_array_equal(depth, 10.0)


def test_fascia_depth_crosses_streaky_notch_not_smooth_thickening():
    """Streaky (fat-replaced) notch: crossed; smooth fat thickening: followed.

    Costs by hand (defaults): following a 20 mm deep notch costs two 20 mm bends,
    2 * 20 * FASCIA_BEND = 80. Crossing a 40-bin notch of streaky tissue (fatlike 0)
    costs nothing; crossing a 90-bin smooth-fat thickening costs FASCIA_CAP_MM per bin,
    90 * 5 = 450.
    """

    assert 2 * 20 * fascia.FASCIA_BEND < 90 * fascia.FASCIA_CAP_MM * fascia.FASCIA_PULL
    first, ml, fl, line = _fascia_profiles()
    notch = slice(80, 120)  # 80 degrees wide, centred on anterior
    first[notch] = 30.0
    ml[notch, :30] = 0.0
    fl[notch, :] = 0.0  # streaky below 10 mm...
    fl[notch, :10] = 1.0  # ...under the smooth subcutaneous fat
    depth = fascia.fascia_depth(first, ml, fl, line, 1.0)
    np.testing.assert_array_equal(depth, 10.0)

    first, ml, fl, line = _fascia_profiles()
    thick = slice(45, 135)
    first[thick] = 30.0
    ml[thick, :30] = 0.0
    fl[thick, :30] = 1.0
    depth = fascia.fascia_depth(first, ml, fl, line, 1.0)
    assert np.all(depth[55:125] == 30.0), depth[45:135]
    assert np.all(depth[:40] == 10.0) and np.all(depth[140:] == 10.0)


def test_fascia_depth_ignores_superficial_vein_and_takes_fascia_line():
    """A 4 mm muscle-like spot 5 mm under the skin (vein) over 2 bins stays outside:
    2 bins * 4 mm * FASCIA_EXCL = 16 < two 5 mm bends, 2 * 5 * FASCIA_BEND = 20.
    Within streaky tissue the contour sits on a fascia line."""

    assert 2 * 4 * fascia.FASCIA_EXCL < 2 * 5 * fascia.FASCIA_BEND
    first, ml, fl, line = _fascia_profiles()
    first[20:22] = 5.0
    ml[20:22, 5:9] = 1.0
    fl[20:22, 5:9] = 0.0
    depth = fascia.fascia_depth(first, ml, fl, line, 1.0)
    np.testing.assert_array_equal(depth, 10.0)

    # Streaky tissue from 4 mm down everywhere, a fascia line at 7 mm: the contour
    # leaves the 10 mm first muscle for the line (3 mm of streaky tissue costs nothing).
    first, ml, fl, line = _fascia_profiles()
    fl[:, 4:] = 0.0
    line[:, 7] = 1.0
    depth = fascia.fascia_depth(first, ml, fl, line, 1.0)
    np.testing.assert_array_equal(depth, 7.0)


def test_fascia_depth_keeps_partly_fat_replaced_muscle_under_the_fat():
    """A 12 mm layer between fat and muscle in signal (neither fat- nor muscle-like) under
    10 mm of fat over 40 bins, with a fat streak (line) 8 mm into it. Without ``notfat``
    the contour drops to the streak (40 bins * FASCIA_LINE = 60 > two 8 mm bends, 32);
    with it, leaving 8 mm of such tissue outside costs 40 * 8 * FASCIA_KEEP = 48 more
    and the contour stays on top of the layer."""

    assert 40 * fascia.FASCIA_LINE > 2 * 8 * fascia.FASCIA_BEND
    assert 40 * 8 * fascia.FASCIA_KEEP + 2 * 8 * fascia.FASCIA_BEND > 40 * fascia.FASCIA_LINE
    first, ml, fl, line = _fascia_profiles()
    layer = slice(80, 120)
    first[layer] = 22.0
    ml[layer, :22] = 0.0
    fl[layer, 10:] = 0.0
    line[layer, 18] = 1.0
    notfat = 1.0 - fl
    notfat[:, :10] = 0.0
    np.testing.assert_array_equal(fascia.fascia_depth(first, ml, fl, line, 1.0)[layer], 18.0)
    depth = fascia.fascia_depth(first, ml, fl, line, 1.0, notfat)
    np.testing.assert_array_equal(depth, 10.0)


def test_fat_elevation_is_graded_between_fat_and_muscle():
    """Fat is a full W_FAT border, muscle none, and tissue 40 % of the way from fat to
    muscle (a partly fat-replaced muscle) half of it, on fat-suppressed (fat 80, muscle
    500) and fat-bright (fat 900, muscle 300) contrasts alike."""
    from myoimg.segment import compartments as comp

    w = comp.W_FAT
    lo, hi = comp.FAT_RAMP
    for fat, mus in ((80.0, 500.0), (900.0, 300.0)):
        levels = fat + np.array([0.0, lo, 0.5 * (lo + hi), hi, 1.0, 1.5]) * (mus - fat)
        np.testing.assert_allclose(
            comp._fat_elevation(levels, fat, mus), [w, w, w / 2, 0.0, 0.0, 0.0], atol=1e-6
        )
    assert 0.5 * (lo + hi) == pytest.approx(0.4)  # centred on the muscle-like cut


def test_canal_vessels_only_at_the_vm_adductor_sartorius_junction():
    """A bright blob where VM, adductors and sartorius meet is a vessel (taken out); an
    equally bright blob inside VM away from that junction is oedema (kept). On T1 the same
    with a dark flow void."""
    from myoimg.segment import compartments as comp

    g = {name: comp.GROUPS.index(name) + 1 for name in ("VM", "ADD", "SAR", "HAM")}
    groups = np.zeros((100, 100), dtype=np.int32)
    groups[10:50, 10:90] = g["VM"]  # anterior half
    groups[50:90, 10:50] = g["ADD"]
    groups[50:90, 50:90] = g["SAR"]
    groups[90:98, 10:90] = g["HAM"]
    sm = np.full(groups.shape, 100.0)
    jj, ii = np.mgrid[0:100, 0:100]
    vessel = np.hypot(jj - 50, ii - 50) <= 4  # 4-px radius at the junction (50, 50)
    oedema = np.hypot(jj - 25, ii - 25) <= 4  # same size and brightness inside VM
    sm[vessel | oedema] = 250.0
    cut = comp._canal_vessels(sm, groups, (1.0, 1.0))
    assert cut[vessel].all()
    assert not cut[oedema].any()
    # Not bright enough (1.3 x muscle < VESSEL_RATIO): nothing is taken out.
    sm[vessel] = 130.0
    assert not comp._canal_vessels(sm, groups, (1.0, 1.0)).any()
    # T1-like images: flowing blood is a signal void. A dark blob at the junction goes, an
    # equally dark one inside VM away from it stays (not a vessel by place), and muscle's
    # own level is no void.
    sm = np.full(groups.shape, 100.0)
    sm[vessel | oedema] = 30.0
    cut = comp._canal_vessels(sm, groups, (1.0, 1.0), fat_bright=True)
    assert cut[vessel].all()
    assert not cut[oedema].any()
    # ... unless fat lies all round it (a vessel in its sheath away from the junction; a
    # tendon or aponeurosis, as dark, lies in muscle)
    ring = (np.hypot(jj - 25, ii - 25) > 4) & (np.hypot(jj - 25, ii - 25) <= 6)
    sm[ring] = 300.0
    cut = comp._canal_vessels(sm, groups, (1.0, 1.0), fat_bright=True)
    assert cut[oedema].all() and cut[vessel].all()
    sm[ring & (jj < 25)] = 100.0  # fat on one half only: a void at a septum's edge, kept
    assert not comp._canal_vessels(sm, groups, (1.0, 1.0), fat_bright=True)[oedema].any()
    sm[ring] = 100.0
    sm[vessel] = 70.0  # 0.7 x muscle: above VESSEL_VOID_RATIO
    assert not comp._canal_vessels(sm, groups, (1.0, 1.0), fat_bright=True).any()
    # Fat-replaced (bright) adductors and hamstrings do not raise the level muscle is
    # judged by: the void is still found, and normal muscle is not taken for one.
    sm[np.isin(groups, [g["ADD"], g["HAM"]])] = 400.0
    sm[vessel] = 30.0
    cut = comp._canal_vessels(sm, groups, (1.0, 1.0), fat_bright=True)
    assert cut[vessel].all() and cut.sum() == vessel.sum()


@pytest.mark.parametrize("fat_bright", [False, True], ids=["fatsup", "t1"])
def test_vastus_intermedius_reaches_its_septa(fat_bright):
    """The femur is not a septum: VI fills its sector out to the fat septa.

    On T1-like images the step from the void cortex up to muscle makes a bright-ridge
    filter answer on the muscle side; unless the bone is filled in first, that ring
    walls VI in (Dice 0.89 on the right leg before the fix).
    """
    img, truth = make_phantom(fat_bright)
    lab = sitk.GetArrayFromImage(segment_thigh(img).labels)
    for side in "RL":
        lid = BY_NAME[f"{side}_VI"].id
        assert dice(lab == lid, truth == lid) >= 0.95, side


def test_fat_replaced_front_of_thigh_stays_inside_fascia():
    """RF, VM and the front of VL all fat-replaced (as in a dystrophy): the flanks of the
    rectus are as deep as its front, so only the lateral fat thickness (VL's bulk, 9 mm
    here) bounds the front fascia: at most LATERAL_FAT_TOL_MM deeper. RF deeper than
    that must be inside the fascia (before this rule: 0.4 % of RF was).
    """
    from myoimg.segment.fascia import LATERAL_FAT_TOL_MM

    img, truth = make_phantom(False)
    arr = sitk.GetArrayFromImage(img)
    jj, ii = np.mgrid[0 : arr.shape[1], 0 : arr.shape[2]].astype(float)
    x, y = -190.0 + ii * SPACING[0], -100.0 + jj * SPACING[1]
    fat = np.zeros(truth.shape[1:], bool)
    deep_front_rf = np.zeros(truth.shape[1:], bool)
    for side, cx in (("R", -90.0), ("L", 90.0)):
        lat = -(x - cx) if side == "R" else x - cx
        th = np.degrees(np.arctan2(lat, -y))
        r = np.hypot(x - cx, y)
        t = truth[0]
        rf = t == BY_NAME[f"{side}_RF"].id
        fat |= rf | (t == BY_NAME[f"{side}_VM"].id)
        fat |= (t == BY_NAME[f"{side}_VL"].id) & (th < 70.0)
        depth_mm = SKIN_R - r
        deep_front_rf |= rf & (np.abs(th) < 25.0) & (depth_mm > 9.0 + LATERAL_FAT_TOL_MM + 2.0)
    arr[:, fat] = 80.0  # the phantom's fat level
    img2 = sitk.GetImageFromArray(arr)
    img2.CopyInformation(img)
    muscle = sitk.GetArrayFromImage(segment_thigh(img2).steps["muscle"]) > 0
    inside = muscle[:, deep_front_rf].mean()
    assert inside >= 0.95, inside


def test_rotated_leg_is_found_from_its_septa(monkeypatch):
    """The right leg turned 30 deg outward: the seed model turns with it (the septa then
    lie on the group borders) and the heads stay right; the neutral model alone puts
    seeds in the wrong sectors. (This textbook layout itself fits the model best turned
    -10 deg, so the expected turn of the right leg is about +20 deg.)"""
    img, truth = make_phantom(False, turn_deg=30.0)

    def scores():
        res = segment_thigh(img)
        lab = sitk.GetArrayFromImage(res.labels)
        out = {
            g: dice(lab == BY_NAME[f"R_{g}"].id, truth == BY_NAME[f"R_{g}"].id)
            for g in ("VL", "VM", "VI", "RF")
        }
        return res, out

    res, turned = scores()
    note = next(m for m in res.messages if m.startswith("leg rotation"))
    assert re.search(r"R \+(10|20) deg", note), note
    assert min(turned.values()) >= 0.8, turned
    monkeypatch.setattr("myoimg.segment.auto.ROTATION_CANDIDATES_DEG", (0.0,))
    _, neutral = scores()
    assert np.mean(list(neutral.values())) < np.mean(list(turned.values())) - 0.03, neutral


def test_leg_missing_its_femur_on_some_slices_is_reported():
    """The left femur is invisible on the top slices (filled with muscle signal) while the
    right one is seen. Up to PAIRED_EXTRAPOLATE_MM past the track's end the left femur is
    put on its straight track (both shafts end at nearly one level) and the leg is
    segmented; further up it cannot be, and the result says so instead of silently
    leaving it out."""
    from myoimg.segment.tracks import PAIRED_EXTRAPOLATE_MM

    img, _ = make_phantom(False, nz=8)
    arr = sitk.GetArrayFromImage(img)
    jj, ii = np.mgrid[0 : arr.shape[1], 0 : arr.shape[2]]
    left_bone = np.hypot(-190.0 + ii - 90.0, -100.0 + jj) <= FEMUR_R
    arr[4:, left_bone] = 500.0  # muscle level of the fat-suppressed phantom
    hidden = sitk.GetImageFromArray(arr)
    hidden.CopyInformation(img)
    res = segment_thigh(hidden)
    n_paired = int(PAIRED_EXTRAPOLATE_MM // SPACING[2])
    assert n_paired == 3
    msg = [m for m in res.messages if m.startswith("left femur not found")]
    assert len(msg) == 1, res.messages
    missing = [int(k) for k in re.findall(r"\d+", msg[0].split("[")[1].split("]")[0])]
    assert missing == [7]
    assert not any(m.startswith("right femur not found") for m in res.messages)
    assert any(m.startswith("femur position interpolated") and "3 slice" in m for m in res.messages)
    lab = sitk.GetArrayFromImage(res.labels)
    left_ids = [BY_NAME[f"L_{g}"].id for g in ("VL", "VM", "VI", "RF")]
    for k in missing:
        assert not np.isin(lab[k], left_ids).any()
    for k in (0, 4, 6):  # seen, and put on the track
        assert np.isin(lab[k], left_ids).any()


def test_shaft_lost_early_takes_the_other_legs_end_for_its_levels():
    """Both shafts end inside the stack, but the right femur is lost 32 mm below the left
    one (more than PAIRED_EXTRAPOLATE_MM of real asymmetry): both legs' levels are
    measured from the left (higher) end, the result says so, and the right femur is put
    on its track up to that end, so that its leg is segmented there too."""
    from myoimg.segment.tracks import END_MARGIN_MM, PAIRED_EXTRAPOLATE_MM

    img, _ = make_phantom(False, nz=13)
    arr = sitk.GetArrayFromImage(img)
    jj, ii = np.mgrid[0 : arr.shape[1], 0 : arr.shape[2]]
    for cx, k0 in ((-90.0, 6), (90.0, 10)):  # right femur seen on 0-5, left on 0-9
        arr[k0:, np.hypot(-190.0 + ii - cx, -100.0 + jj) <= FEMUR_R] = 500.0
    hidden = sitk.GetImageFromArray(arr)
    hidden.CopyInformation(img)
    gap = (9 - 5) * SPACING[2]
    assert gap > PAIRED_EXTRAPOLATE_MM and (12 - 9) * SPACING[2] >= END_MARGIN_MM
    res = segment_thigh(hidden)
    msg = [m for m in res.messages if m.startswith("the two femoral shafts")]
    assert msg == [
        f"the two femoral shafts were followed to levels {gap:.0f} mm apart at the hip: "
        "both legs' levels are measured from the higher end"
    ], res.messages
    assert any("measured from the proximal end" in m for m in res.messages)
    # (slice 10: the left track's own EXTRAPOLATE_MM past its last detection)
    assert [m for m in res.messages if m.startswith("right femur not found")] == [
        "right femur not found on slice(s) [10] where the other one is: the right leg is "
        "not segmented there"
    ]
    lab = sitk.GetArrayFromImage(res.labels)
    right_ids = [BY_NAME[f"R_{g}"].id for g in ("VL", "VM", "VI", "RF")]
    assert np.isin(lab[9], right_ids).any()


def test_body_outline_drops_ghost_streak():
    """A thin bright streak touching the skin (phase-encoding ghost of a vessel) is not body.

    Disc of radius 70 mm (0.75 mm pixels) with a 4 mm wide, 30 mm long streak of tissue
    brightness leaving its front: before the 8 mm opening the streak joined the outline
    and the fascia model read its tip as skin.
    """
    from myoimg.segment.thigh import body_mask

    px = 0.75
    jj, ii = np.mgrid[0:300, 0:300].astype(float) * px
    r = np.hypot(ii - 112.5, jj - 112.5)
    sl = np.where(r <= 70.0, 300.0, 0.0)
    streak = (np.abs(ii - 112.5) <= 2.0) & (jj < 112.5) & (r > 69.0) & (r < 100.0)
    sl[streak] = 300.0
    body = body_mask(sl[None].astype(np.float32), (px, px))[0]
    assert not body[streak & (r > 78.0)].any()  # (a fillet where it meets the skin)
    disc = r <= 70.0
    assert (body & disc).sum() / disc.sum() > 0.99
    assert not (body & (r > 78.0)).any()



def test_body_outline_keeps_dark_fat_of_a_noisy_scan():
    """Fat-suppressed fat barely above the noise floor (STIR on a noisy scan) stays body.

    Disc: muscle (500) of radius 55 mm in a 15 mm fat layer (110), air around; Rician
    noise with sigma 40 (air mean ~50). The air/tissue threshold is found on the same
    smoothed image it is applied to, where the air's spread is small.
    """
    from myoimg.segment.thigh import body_mask

    px = 0.75
    jj, ii = np.mgrid[0:260, 0:260].astype(float) * px
    r = np.hypot(ii - 97.5, jj - 97.5)
    clean = np.where(r <= 55.0, 500.0, np.where(r <= 70.0, 110.0, 0.0))
    rng = np.random.default_rng(3)
    noisy = np.abs(clean + rng.normal(0, 40.0, clean.shape) + 1j * rng.normal(0, 40.0, clean.shape))
    body = body_mask(noisy[None].astype(np.float32), (px, px))[0]
    fat = (r > 57.0) & (r < 67.0)
    assert body[fat].mean() > 0.98, body[fat].mean()
    assert not body[r > 74.0].any()


def _right_leg_slice(seed: int, septa=None):
    """One right-leg slice, identity geometry, 1 mm pixels: 72 mm leg, 9 mm of fat, uniform
    muscle, 13 mm femur at the origin; ``septa(r, th)`` returns a mask painted with fat.
    Returns the slice and its x, y, r (mm) and th (deg; lateral is -x, anterior -y)."""
    jj, ii = np.mgrid[0:170, 0:170].astype(float)
    x, y = ii - 85.0, jj - 85.0
    r = np.hypot(x, y)
    th = np.degrees(np.arctan2(-x, -y))  # right leg: lateral is -x, anterior is -y
    sl = np.where(r <= 72, 80.0, 0.0).astype(np.float32)
    sl[r <= 63] = 500.0
    if septa is not None:
        sl[septa(r, th)] = 80.0
    sl[r <= 13] = 10.0
    sl += np.random.default_rng(seed).normal(0, 8.0, sl.shape).astype(np.float32)
    return sl, x, y, r, th


def _split_right_leg(sl, x, y, r, level: float):
    """``segment_leg_slice`` of a :func:`_right_leg_slice` (its leg and femur outlines)."""
    from myoimg.segment import compartments as comp

    return comp.segment_leg_slice(
        sl, r <= 72, r <= 13, (0.0, 0.0), x, y, "R", (1.0, 1.0), False, level=level
    )


def _uniform_right_leg_split(level: float, seed: int):
    """Groups of one right-leg slice of uniform muscle with no septa at all (the worst
    case for the watershed)."""
    sl, x, y, r, _ = _right_leg_slice(seed)
    return _split_right_leg(sl, x, y, r, level)


def test_vm_lies_deep_over_the_upper_thigh():
    """Over the upper thigh VM is a deep strip beside VI; above the knee it reaches the fascia;
    over the top tenth of the shaft (iliopsoas beside the femur) it is not labelled.

    One right-leg slice of uniform muscle (no septa at all, the worst case for the
    watershed): high up VM keeps within its depth limit and the superficial part of its
    sector goes to a neighbouring group; at the distal end it is not capped; at the top
    what its seed takes leaves the quadriceps.
    """
    from myoimg.segment import compartments as comp

    vm_id, gmax_id = comp.GROUPS.index("VM") + 1, comp.GROUPS.index("GMAX") + 1
    high = 0.85
    assert high < comp.VM_MAX_LEVEL
    out = {}
    for level in (0.0, high, 1.0):
        res = _uniform_right_leg_split(level, seed=1)
        out[level] = (res, res.groups == vm_id)
    res, vm = out[high]
    assert vm.sum() > 200
    assert comp.vm_depth_limit(high) < 1.0
    assert res.u[vm].max() <= comp.vm_depth_limit(high)
    # no hole: the capped part went to another group
    deep_sector = (res.theta > -50.0) & (res.theta < -35.0) & res.inside_fascia
    capped = deep_sector & (res.u > comp.vm_depth_limit(high) + 0.05) & (res.u < 0.9)
    assert capped.sum() > 50 and (res.groups[capped] > 0).all()
    res0, vm0 = out[0.0]
    assert vm0.sum() > 200
    assert comp.vm_depth_limit(0.0) > 1.5
    assert res0.u[vm0].max() > 0.9
    res1, vm1 = out[1.0]
    assert vm1.sum() == 0
    seed_place = (res1.theta > -48.0) & (res1.theta < -37.0) & (res1.u > 0.2) & (res1.u < 0.3)
    assert seed_place.sum() > 10 and (res1.groups[seed_place] == gmax_id).all()


def test_vl_is_covered_laterally_at_the_top_of_the_shaft():
    """Below the greater trochanter the TFL and gluteus maximus cover VL laterally.

    One right-leg slice of uniform muscle (no septa): at the proximal end VL keeps within
    its depth limit and what lies beyond leaves the quadriceps (gluteus maximus group);
    at mid-thigh VL reaches the fascia as before.
    """
    from myoimg.segment import compartments as comp

    vl_id, gmax_id = comp.GROUPS.index("VL") + 1, comp.GROUPS.index("GMAX") + 1
    out = {}
    for level in (0.5, 1.0):
        res = _uniform_right_leg_split(level, seed=2)
        vl = res.groups == vl_id
        assert vl.sum() > 200
        out[level] = (res, vl)
    res, vl = out[1.0]
    assert comp.vl_depth_limit(1.0) < 0.8
    assert res.u[vl].max() <= comp.vl_depth_limit(1.0)
    lateral_rim = (np.abs(res.theta - 90.0) < 15.0) & (res.u > 0.85) & (res.u < 0.95)
    assert lateral_rim.sum() > 50 and (res.groups[lateral_rim] == gmax_id).all()
    res0, vl0 = out[0.5]
    assert comp.vl_depth_limit(0.5) >= 1.5
    assert res0.u[vl0].max() > 0.9


def test_local_fat_likeness_follows_each_rays_own_fat():
    """Fat is judged against the fat under the skin on the same ray, whatever its level.

    Two rays (1 mm samples): fat at 100 on one, at 400 on the other (shading), first muscle
    at 20 mm; the fat-muscle contrast is 1000. Samples within 0.05 of the contrast from the
    ray's fat are fat (1), 0.15 and more above it are not (0), half-way gives 0.5.
    """

    assert fascia.LOCAL_FAT_TOL == (0.05, 0.15)
    depths = np.arange(0.0, 30.0, 1.0)
    rays = np.zeros((2, depths.size))
    rays[0], rays[1] = 100.0, 400.0
    rays[:, 15:18] += np.array([30.0, 100.0, 300.0])  # +0.03, +0.10, +0.30 of the contrast
    first = np.array([20.0, 20.0])
    like = fascia.local_fat_likeness(rays, first, depths, 1000.0, fat_bright=False)
    for r in (0, 1):
        assert like[r, 5] == pytest.approx(1.0)
        assert like[r, 15:18] == pytest.approx([1.0, 0.5, 0.0])
    # fat-bright contrasts: tissue darker than the ray's fat is not fat
    like_t1 = fascia.local_fat_likeness(-rays, first, depths, 1000.0, fat_bright=True)
    assert like_t1[0, 15:18] == pytest.approx([1.0, 0.5, 0.0])
    # no fat under the skin on any ray (first muscle right below it): no information
    none = fascia.local_fat_likeness(rays, np.array([3.0, 3.0]), depths, 1000.0, False)
    assert (none == 1.0).all()


def test_thigh_cut_by_the_field_of_view_is_reported():
    """A leg reaching the image edge (no skin there) gets a warning naming it and the slices."""
    from myoimg.segment.auto import _field_of_view_warnings

    thigh = np.zeros((4, 40, 60), dtype=np.uint8)
    thigh[:, 10:30, 5:25] = 1  # right leg well inside
    thigh[:, 10:30, 35:55] = 2
    assert _field_of_view_warnings(thigh, ("R", "L")) == []
    thigh[1:3, 12:28, 55:] = 2  # left leg runs off the lateral edge on slices 1 and 2
    (w,) = _field_of_view_warnings(thigh, ("R", "L"))
    assert "left thigh" in w and "2 of its 4 slice(s) [1, 2]" in w
    thigh[0, 0:5, 10:20] = 1  # right leg touches the front edge on slice 0
    assert len(_field_of_view_warnings(thigh, ("R", "L"))) == 2
    assert _field_of_view_warnings(thigh, ("L",)) == [w]


def test_septum_gap_links_join_aligned_line_ends_only():
    """Two collinear septum lines 15 mm apart are joined; a line at right angles to them,
    and collinear lines further apart than LINK_GAP_MM, are not."""

    ridge = np.zeros((120, 120))
    ridge[10:41, 50] = 1.0  # line A, lower end (40, 50)
    ridge[55:91, 50] = 1.0  # line B, upper end (55, 50): 15 px below A
    ridge[70, 60:91] = 1.0  # line C, at right angles, its end 10 px from B
    ridge[10:41, 15] = 1.0  # lines D and E: collinear, 30 px apart
    ridge[71:110, 15] = 1.0
    assert septa.LINK_GAP_MM < 30.0
    links, _ = septa.septum_gap_links(ridge, np.ones(ridge.shape, bool), 1.0)
    assert len(links) == 1
    jj, ii = links[0]
    assert set(ii.tolist()) == {50} and sorted(jj.tolist()) == list(range(40, 56))


def test_septum_loose_ends_are_carried_to_the_line_or_border_they_point_at():
    """A septum line that stops 15 mm short of another line is carried on to it, and to
    the compartment border 5 mm beyond its other end; ends pointing at nothing within
    EXTEND_MM, and lines shorter than EXTEND_MIN_MM, are left alone."""

    ridge = np.zeros((120, 120))
    inside = np.zeros(ridge.shape, bool)
    inside[5:111, 5:115] = True
    ridge[10:41, 50] = 1.0  # line A: ends (10, 50) and (40, 50), pointing up and down
    ridge[55, 30:71] = 1.0  # line C across A's way, 15 px below it; its ends point sideways
    ridge[90:96, 100] = 1.0  # line D: 6 px long, its end 15 px from the border
    assert septa.EXTEND_MIN_MM > 6.0 and septa.EXTEND_MM >= 15.0  # D too short to carry on
    links, ext = septa.septum_gap_links(ridge, inside, 1.0)
    assert links == []
    got = sorted((int(jj.min()), int(jj.max()), sorted(set(ii.tolist()))) for jj, ii in ext)
    assert got == [(5, 10, [50]), (40, 55, [50])]


def test_vastus_intermedius_does_not_leak_through_a_broken_septum(monkeypatch):
    """A ring septum round VI (22 mm from the femur centre), broken over 40 degrees
    (15 mm) laterally: without the gap link (nor the loose ends carried on) the VI flood
    leaks out through the gap into VL; with either VI stays inside the ring."""
    from myoimg.segment import compartments as comp

    def ring(r, th):
        return (np.abs(r - 22.0) < 1.0) & (th > -30.0) & (th < 120.0) & ~((th > 50.0) & (th < 90.0))

    sl, x, y, r, th = _right_leg_slice(3, ring)
    vi_id = comp.GROUPS.index("VI") + 1
    outside = {}
    link_mm, extend_mm = septa.LINK_GAP_MM, septa.EXTEND_MM
    for name, gap, ext in (("none", 0.0, 0.0), ("link", link_mm, 0.0), ("extend", 0.0, extend_mm)):
        monkeypatch.setattr(septa, "LINK_GAP_MM", gap)
        monkeypatch.setattr(septa, "EXTEND_MM", ext)
        res = _split_right_leg(sl, x, y, r, 0.5)
        outside[name] = int(((res.groups == vi_id) & (r > 24.0) & (th > 40) & (th < 100)).sum())
    assert outside["none"] > 100  # the leak the rules are for
    assert outside["link"] < 10
    # Either loose end carried on alone (no link) closes the gap as well.
    assert outside["extend"] < 10


def _partial_volume_disk(muscle: float, fat: float, radius_px: float = 15.0):
    """One 80x80 slice: a muscle disk in a fat-filled thigh; each pixel's signal is the
    area fraction of muscle in it (16x16 sub-samples) between the two levels."""
    n, sub = 80, 16
    c = (n - 1) / 2.0
    off = (np.arange(sub) + 0.5) / sub - 0.5
    yy, xx = np.mgrid[0:n, 0:n]
    frac = np.zeros((n, n))
    for dy in off:
        for dx in off:
            frac += np.hypot(yy + dy - c, xx + dx - c) <= radius_px
    frac /= sub * sub
    image = (fat + (muscle - fat) * frac)[None].astype(np.float32)
    thigh = (np.hypot(yy - c, xx - c) <= 35.0)[None]
    labels = (frac > 0).astype(np.uint8)[None]  # the watershed gives every touched voxel
    return image, thigh, labels, np.pi * radius_px**2


@pytest.mark.parametrize(("muscle", "fat", "fat_bright"), [(1.0, 0.12, False), (0.35, 1.0, True)])
def test_fat_rim_trim_leaves_the_true_muscle_area(muscle, fat, fat_bright):
    """Edge voxels more than half fat leave: the labelled area comes to the disk's own."""
    from myoimg.segment.auto import trim_fat_rim

    image, thigh, labels, area = _partial_volume_disk(muscle, fat)
    assert labels.sum() > 1.05 * area  # partial-volume rim: ~7 % too large untrimmed
    out, n = trim_fat_rim(labels, image, thigh, fat_bright, (1.0, 1.0))
    assert n == labels.sum() - out.sum() > 0
    assert abs(out.sum() - area) < 0.02 * area


def test_fat_rim_trim_judges_an_edge_voxel_against_the_muscle_next_to_it():
    """A muscle half oedematous (2x healthy signal) and half healthy: each edge voxel is
    judged against the muscle signal just inside it, not the muscle's median (which lies
    between the two halves), so both halves come to their own area; against the median
    one half kept voxels that are mostly fat and the other lost voxels mostly muscle."""
    from myoimg.segment.auto import trim_fat_rim

    fat = 0.12
    image, thigh, labels, area = _partial_volume_disk(1.0, fat)
    frac = (image - fat) / (1.0 - fat)
    right = np.zeros(image.shape, dtype=bool)
    right[..., 40:] = True
    image = np.where(right, fat + (2.0 - fat) * frac, image).astype(np.float32)
    out, _ = trim_fat_rim(labels, image, thigh, False, (1.0, 1.0))
    for half in (right, ~right):
        assert abs((out.astype(bool) & half).sum() - area / 2) < 0.025 * area / 2


def test_fat_rim_trim_needs_contrast_between_fat_and_muscle():
    """Fat at 0.86 of muscle (the real case's water image): the midpoint lies within the
    muscle's texture, so nothing is trimmed."""
    from myoimg.segment.auto import trim_fat_rim

    image, thigh, labels, _ = _partial_volume_disk(1.0, 0.86)
    out, n = trim_fat_rim(labels, image, thigh, False, (1.0, 1.0))
    assert n == 0 and np.array_equal(out, labels)


@pytest.mark.parametrize(("muscle", "fat", "fat_bright"), [(1.0, 0.12, False), (0.35, 1.0, True)])
def test_fat_rim_trim_takes_a_septum_out_of_both_muscles_beside_it(muscle, fat, fat_bright):
    """A 3-pixel fat septum splits the disk; the watershed gave each half of it to the
    muscle on its side. The trim peels it from both (it is no muscle's), down to the
    pixels more than half muscle; a thicker fat pad is peeled only RIM_DEPTH_MM deep."""
    from myoimg.segment.borders import RIM_DEPTH_MM, trim_fat_rim

    image, thigh, labels, _ = _partial_volume_disk(muscle, fat, radius_px=20.0)
    ii = np.arange(80)[None, None, :]
    disk = labels.astype(bool)
    for width in (3, 9):
        lo = 40 - width // 2
        band = disk & (ii >= lo) & (ii < lo + width)
        img = np.where(band, fat, image).astype(np.float32)
        two = np.where(disk, np.where(ii < 40, 1, 2), 0).astype(np.uint8)
        out, n = trim_fat_rim(two, img, thigh, fat_bright, (1.0, 1.0))
        # per row (away from the disk's rim): septum pixels still labelled
        kept = ((out != 0) & band)[0, 28:52].sum(axis=1)
        if width == 3:
            assert (kept == 0).all()  # the whole septum leaves, from both labels
        else:  # peeled RIM_DEPTH_MM (3 px at 1 mm) from the labels' meeting line each way
            assert (kept == width - 2 * int(RIM_DEPTH_MM)).all()
        # the muscle pixels along the septum stay
        beside = ~band & (np.abs(ii - 40) <= width // 2 + 2) & np.isclose(image, muscle)
        assert (out[0, 28:52][beside[0, 28:52]] != 0).all()
        assert n == int((two != 0).sum() - (out != 0).sum())


@pytest.mark.parametrize("fat_bright", [False, True])
def test_dark_line_inside_a_muscle_stays_in_its_label(fat_bright):
    """A thin fat line inside the left VL (its aponeurosis, or a streak of fat
    infiltration) is part of the muscle, as in every reference outline; the septa
    between two muscles, where the group borders run, still leave the labels."""
    img, truth = make_phantom(fat_bright, nz=3)
    arr = sitk.GetArrayFromImage(img)
    ny, nx = arr.shape[1:]
    jj, ii = np.mgrid[0:ny, 0:nx].astype(float)
    x = -190.0 + ii * SPACING[0]
    y = -100.0 + jj * SPACING[1]
    # Radial segment at 70 deg lateral of anterior, 36-56 mm from the left femur's centre.
    t = np.clip(((x - 90.0) * np.sin(np.radians(70)) - y * np.cos(np.radians(70))), 36, 56)
    px, py = 90.0 + t * np.sin(np.radians(70)), -t * np.cos(np.radians(70))
    line = np.hypot(x - px, y - py) <= 0.8
    assert (truth[0][line] == BY_NAME["L_VL"].id).all()
    fat = 900.0 if fat_bright else 80.0
    arr[:, line] = fat
    img2 = sitk.GetImageFromArray(arr)
    img2.CopyInformation(img)
    lab = sitk.GetArrayFromImage(segment_thigh(img2).labels)
    kept = (lab[:, line] == BY_NAME["L_VL"].id).mean()
    assert kept >= 0.9, kept
    r = np.hypot(x - 90.0, y)
    septa = (truth[0] == 0) & (r > FEMUR_R + 3) & (r < FASCIA_R - 3) & ~line
    septa &= np.abs(arr[0] - fat) < 40  # fat-level pixels (noise sd 8)
    left_out = (lab[:, septa] == 0).mean()
    assert left_out >= 0.7, left_out


def test_main_pieces_drops_small_pieces_cut_off_by_a_septum():
    """A seed cut by a septum keeps the pieces with >= min_share of its pixels; an uncut
    seed is returned whole."""
    from myoimg.segment import compartments as comp

    seed = np.zeros((10, 40), dtype=bool)
    seed[2:8, 0:40] = True
    septum = np.zeros_like(seed)
    assert comp._main_pieces(seed, septum, 0.1) is seed
    septum[:, 3] = True  # cuts off 3 of 40 columns (7.5 %)
    septum[:, 20] = True  # and splits the rest in two halves
    kept = comp._main_pieces(seed, septum, 0.1)
    assert not kept[:, :4].any()  # the small piece and the septum itself
    assert kept[2:8, 4:20].all() and kept[2:8, 21:].all()
    # The largest piece is kept even when every piece is below the share.
    assert comp._main_pieces(seed, septum, 0.9)[2:8, 21:].all()


def test_seed_sector_does_not_cross_a_septum(monkeypatch):
    """The vasti reach round to a septum at 173 deg, behind the start of the hamstrings'
    seed sector (170 deg): the 3-degree sliver of that sector in front of the septum is
    dropped, and the wedge up to the septum is no longer the hamstrings'."""
    from myoimg.segment import compartments as comp

    def septum(r, th):
        d = np.radians(th - 173.0)
        return (r > 14.0) & (r < 63.0) & (np.abs(r * np.sin(d)) < 1.0) & (np.cos(d) > 0)

    sl, x, y, r, th = _right_leg_slice(5, septum)
    wedge = (th > 170.5) & (th < 172.0) & (r > 30.0) & (r < 55.0)
    ham = comp.GROUPS.index("HAM") + 1
    share = {}
    for min_share in (0.0, comp.SEED_MIN_PIECE):
        monkeypatch.setattr(comp, "SEED_MIN_PIECE", min_share)
        res = _split_right_leg(sl, x, y, r, 0.5)
        share[min_share] = float((res.groups[wedge] == ham).mean())
        # Behind the septum the hamstrings keep their sector.
        assert (res.groups[(th > -180.0) & (th < -170.0) & (r > 30) & (r < 55)] == ham).mean() > 0.9
    assert share[0.0] > 0.9  # the sliver seeds the hamstrings in front of the septum
    assert share[comp.SEED_MIN_PIECE] == 0.0
