"""Femur detection on one synthetic axial slice (identity geometry, 1 mm pixels)."""

from __future__ import annotations

import numpy as np
import pytest

from myoimg.segment.femur import CORTEX_EDGE_LEVEL, CORTEX_EDGE_MM, find_femurs

MUSCLE = 300.0


def _grid():
    """LPS x, y (mm) of a 200 x 200 slice of 1 mm pixels centred on the femur, and the
    radius from its centre."""
    jj, ii = np.mgrid[0:200, 0:200].astype(float)
    x, y = ii - 100.0, jj - 100.0
    return x, y, np.hypot(x, y)


def _slice(rim_level: float):
    """A 160 mm thigh disc of muscle with a femur: marrow r < 8 mm, void cortex 8-12 mm,
    and over the front half (y < 0) a 2 mm partial-volume rim (12-14 mm) at
    ``rim_level`` x muscle, as a thick oblique slice gives. Returns the slice, body mask,
    LPS x/y (mm) and the radius map."""
    x, y, r = _grid()
    sl = np.where(r <= 80.0, MUSCLE, 0.0)
    sl[(r < 14.0) & (y < 0)] = rim_level * MUSCLE
    sl[r < 12.0] = 5.0  # cortex: signal void
    sl[r < 8.0] = 900.0  # marrow (bright, as on T1)
    return sl.astype(np.float32), r <= 80.0, x, y, r


@pytest.mark.parametrize("rim_level", [0.3, 0.4])
def test_partial_volume_rim_is_bone(rim_level, monkeypatch):
    """A rim darker than half the muscle signal (the half-way edge) belongs to the bone.

    The best-shaped void blob leaves part of the lopsided rim out; the edge rule adds
    it (the 0.7 mm pre-smoothing moves the half-way level a few tenths of a mm inward,
    hence 12.9 mm), and nothing behind the bone, where there is no rim.
    """
    assert rim_level < CORTEX_EDGE_LEVEL and CORTEX_EDGE_MM >= 2.0
    sl, body, x, y, r = _slice(rim_level)
    rim = (r < 12.9) & (y < -1.0)
    (fem,) = find_femurs(sl, body, (1.0, 1.0), x, y)
    assert fem.mask[rim].all()
    assert not fem.mask[(r > 12.8) & (y > 1.0)].any()
    monkeypatch.setattr("myoimg.segment.femur.CORTEX_EDGE_MM", 0.0)
    (core,) = find_femurs(sl, body, (1.0, 1.0), x, y)
    assert not core.mask[rim].all()  # the rule is what adds it
    assert fem.radius_mm > core.radius_mm


def test_muscle_next_to_the_bone_stays_muscle():
    """A rim brighter than the half-way level is muscle: the mask ends at the void cortex."""
    sl, body, x, y, r = _slice(0.7)
    (fem,) = find_femurs(sl, body, (1.0, 1.0), x, y)
    assert not fem.mask[r > 12.8].any()
    assert fem.radius_mm == pytest.approx(12.0, abs=0.3)


def test_fat_dominant_image_finds_the_bone_from_its_marrow():
    """A Dixon-fat-like slice: subcutaneous fat and marrow bright, muscle and cortex both
    at the noise floor (the cortex cannot be told from muscle, so the void search finds
    nothing). The bone is found from its marrow and widened to the shaft: a 14 mm outer
    radius with a 7.7 mm canal (canal/shaft 0.55, mid adult range) comes back as 14 mm."""
    from myoimg.segment.femur import FAT_DOMINANT_RATIO

    x, y, r = _grid()
    fat = 900.0
    sl = np.where(r <= 80.0, fat, 0.0)  # subcutaneous fat 70-80 mm
    sl[r <= 70.0] = 8.0  # muscle
    sl[r < 14.0] = 5.0  # cortex
    sl[r < 7.7] = fat  # marrow
    sl = sl + np.random.default_rng(0).normal(0.0, 4.0, sl.shape)
    assert np.median(sl[r <= 60.0]) < FAT_DOMINANT_RATIO * fat
    (fem,) = find_femurs(sl.astype(np.float32), r <= 80.0, (1.0, 1.0), x, y)
    assert fem.radius_mm == pytest.approx(14.0, rel=0.12)
    assert np.hypot(*fem.centre_xy) < 1.0
    assert fem.mask[r < 7.0].all()  # the marrow is bone
    assert not fem.mask[r > 16.0].any()  # no muscle beyond the shaft


def test_narrow_blob_past_a_gap_does_not_extend_the_shaft():
    """A pelvic blob on the shaft's line, 17 mm across above a one-slice gap, is not the
    27 mm shaft: the track (and with it the level of every slice) ends where the shaft's
    detections end. Shaft width varies by < 25 % along the diaphysis."""
    from myoimg.segment.femur import FemurCandidate
    from myoimg.segment.tracks import MIN_SHAFT_DIAMETER_RATIO, femur_tracks

    def cand(x: float, diameter: float) -> FemurCandidate:
        return FemurCandidate(np.zeros((2, 2), bool), (0.0, 0.0), (x, 0.0), diameter / 2, 0.7)

    cands = [[cand(-100.0, 27.0), cand(100.0, 27.0)] for _ in range(12)]
    cands += [[], [cand(100.0, 17.0)]]  # slice 12 empty, slice 13 a narrow blob (left)
    assert 17.0 < MIN_SHAFT_DIAMETER_RATIO * 27.0
    _, picks = femur_tracks(cands, len(cands), 24.0)
    assert [k for k, c in enumerate(picks[1]) if c is not None] == list(range(12))
    # the same blob as wide as the shaft is a missed slice bridged, as before
    cands[13] = [cand(100.0, 26.0)]
    _, picks = femur_tracks(cands, len(cands), 24.0)
    assert picks[1][13] is not None


def test_fat_image_prefers_the_void_with_marrow_inside():
    """A Dixon-fat-like slice of a partly fat-replaced thigh (deep thigh mostly fat-like,
    so not the fat-dominant case): spared muscle is near black, and a spared round belly
    45 mm behind the femur is as round and dark as the cortex. Two such voids in one limb
    cancel each other (neither counts as the femur); on a fat-bright image the one with
    fatty marrow inside is bone and the belly no rival."""
    x, y, r = _grid()
    fat = 900.0
    sl = np.where(r <= 80.0, fat, 0.0)  # subcutaneous fat 70-80 mm
    sl[r <= 70.0] = 650.0  # fat-replaced muscle
    sl[(r > 16.0) & (r < 30.0) & (y < 0)] = 8.0  # spared quadriceps in front
    sl[np.hypot(x, y - 45.0) < 12.0] = 8.0  # a spared round belly behind
    sl[r < 12.0] = 5.0  # cortex
    sl[r < 6.6] = fat  # marrow
    sl = (sl + np.random.default_rng(0).normal(0.0, 4.0, sl.shape)).astype(np.float32)
    body = r <= 80.0
    assert find_femurs(sl, body, (1.0, 1.0), x, y) == []  # the two voids cancel
    (fem,) = find_femurs(sl, body, (1.0, 1.0), x, y, fat_bright=True)
    assert np.hypot(*fem.centre_xy) < 1.0 and fem.fat_core
    assert fem.radius_mm == pytest.approx(12.0, abs=0.5)


def test_t1_with_red_marrow_keeps_the_void():
    """T1 with red marrow (reconverted after chemotherapy or lymphodepletion, or young):
    the marrow is about muscle's signal, not fat's, so no void holds fat; the cortex void
    is still the femur on a fat-bright image, as before the fatty-marrow preference."""
    x, y, r = _grid()
    fat = 900.0
    sl = np.where(r <= 80.0, fat, 0.0)  # subcutaneous fat 70-80 mm
    sl[r <= 70.0] = 0.35 * fat  # muscle on T1
    sl[r < 12.0] = 5.0  # cortex
    sl[r < 6.6] = 0.4 * fat  # red marrow: below MARROW_LEVEL x fat
    sl = (sl + np.random.default_rng(0).normal(0.0, 4.0, sl.shape)).astype(np.float32)
    body = r <= 80.0
    (plain,) = find_femurs(sl, body, (1.0, 1.0), x, y)
    (fem,) = find_femurs(sl, body, (1.0, 1.0), x, y, fat_bright=True)
    assert not fem.fat_core and not fem.from_marrow
    assert fem.centre_xy == pytest.approx(plain.centre_xy)
    assert fem.radius_mm == pytest.approx(plain.radius_mm)


def test_fat_ring_round_bright_vessels_is_no_rival():
    """Fat-suppressed slice: the femur (void cortex round dark fatty marrow) and, 45 mm
    medial of it, the adductor canal's round fat pad (dark) round the femoral vessels
    (brighter than muscle). Filled in, the pad is a round dark blob of a comparable size,
    and two such voids in one limb cancel; a void round something brighter than muscle is
    blood in fat, not bone (marrow is dark here), so the femur stays and the pad is no
    rival."""
    x, y, r = _grid()
    sl = np.where(r <= 80.0, MUSCLE, 0.0)
    sl[r > 72.0] = 0.15 * MUSCLE  # suppressed subcutaneous fat
    sl[r < 12.0] = 5.0  # cortex
    sl[r < 7.0] = 0.1 * MUSCLE  # fatty marrow, suppressed
    canal = np.hypot(x + 45.0, y)
    sl[canal < 10.0] = 0.12 * MUSCLE  # the canal's fat pad
    sl[np.hypot(x + 47.0, y - 2.0) < 3.5] = 2.5 * MUSCLE  # artery
    sl[np.hypot(x + 42.0, y + 2.5) < 4.0] = 2.5 * MUSCLE  # vein
    sl = (sl + np.random.default_rng(0).normal(0.0, 4.0, sl.shape)).astype(np.float32)
    body = r <= 80.0
    (fem,) = find_femurs(sl, body, (1.0, 1.0), x, y)
    assert np.hypot(*fem.centre_xy) < 1.0 and not fem.bright_core
    assert fem.radius_mm == pytest.approx(12.0, abs=1.0)
