"""Automatic segmentation on an analytic two-thigh phantom, fat-suppressed and T1-like.

The phantom is drawn here from a textbook layout (polar sectors around the femur,
1.5 mm fat septa between muscles, a subcutaneous fat ring), so the truth is exact and
independent of the method's marker model. Geometry: identity direction (LPS), the
patient's right leg at x = -90 mm.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from myoimg.labels import BY_NAME
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


def make_phantom(fat_bright: bool, nz: int = 6):
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


@pytest.mark.parametrize("level", [0.0, 0.5])
def test_vm_stays_in_front_of_medial_septum(level):
    """VM does not wrap behind the femur where a septum cuts the adductors off it.

    One right-leg slice (femur at the origin, identity geometry): uniform muscle, a fat
    septum between adductors and hamstrings (170 deg) and a septum 25 mm from the femur
    centre that separates a deep postero-medial strip from the adductor seeds. Without
    the medial-septum limit the VM flood fills that strip down to 180 deg.
    """
    from myoimg.segment import compartments as comp

    jj, ii = np.mgrid[0:170, 0:170].astype(float)
    x, y = ii - 85.0, jj - 85.0
    r = np.hypot(x, y)
    th = np.degrees(np.arctan2(-x, -y))  # right leg: lateral is -x, anterior is -y
    sl = np.where(r <= 72, 80.0, 0.0).astype(np.float32)
    sl[r <= 63] = 500.0
    sl[(np.abs(th - 170.0) < 1.5) & (r < 63) & (r > 13)] = 80.0
    sl[(np.abs(r - 25.0) < 1.0) & ((th < -100.0) | (th > 170.0))] = 80.0
    sl[r <= 13] = 10.0
    sl += np.random.default_rng(0).normal(0, 8.0, sl.shape).astype(np.float32)
    res = comp.segment_leg_slice(
        sl, r <= 72, r <= 13, (0.0, 0.0), x, y, "R", (1.0, 1.0), False, level=level
    )
    vm = res.groups == comp.GROUPS.index("VM") + 1
    assert vm.sum() > 500
    # res.theta: the frame's own angles (measured from near the femur centre)
    assert res.theta[vm].min() >= comp.VM_POST_DEG
    assert th[vm].min() >= comp.VM_POST_DEG - 5.0
    # The strip behind the limit went to the adductors instead.
    strip = (r > 14) & (r < 24) & (th < -130.0) & (th > -160.0)
    add = res.groups == comp.GROUPS.index("ADD") + 1
    assert add[strip].mean() > 0.5
