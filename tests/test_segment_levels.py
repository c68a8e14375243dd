"""Level of each slice along the femoral shaft (tracks.shaft_levels): the arithmetic of the
level model and the two 'hips at one height' rules, on hand-made slice positions."""

from __future__ import annotations

import numpy as np
import pytest

from myoimg.segment.tracks import END_MARGIN_MM, PAIRED_EXTRAPOLATE_MM, SHAFT_MM, shaft_levels

DZ = 24.0
ZS = np.arange(16) * DZ  # 16 slices 24 mm apart, z grows toward the head


def test_both_ends_in_the_stack_run_linearly_from_0_to_1():
    messages: list[str] = []
    ends, levels, _ = shaft_levels(ZS, [list(range(2, 13))], ["right"], messages)
    assert ends == [(2 * DZ, 12 * DZ)]
    np.testing.assert_allclose(levels[0][2:13], np.arange(11) / 10.0)
    assert levels[0][0] == 0.0 and levels[0][15] == 1.0  # clipped beyond the ends
    assert "both ends of the femoral shaft are in the stack" in messages[-1]


def test_one_end_measures_shaft_mm_from_it():
    # The femur reaches the stack's bottom edge: only the proximal end is seen.
    _, levels, _ = shaft_levels(ZS, [list(range(0, 11))], ["right"], m := [])
    np.testing.assert_allclose(levels[0][10], 1.0)
    np.testing.assert_allclose(levels[0][10 - 5], 1.0 - 5 * DZ / SHAFT_MM)
    assert "proximal end" in m[-1]


def test_no_end_is_centred_at_mid_thigh():
    _, levels, guessed = shaft_levels(ZS[:7], [list(range(7))], ["right"], m := [])
    assert guessed == [True]
    np.testing.assert_allclose(levels[0][3], 0.5)
    np.testing.assert_allclose(np.diff(levels[0]), DZ / SHAFT_MM)
    assert "assumed centred at mid-thigh" in m[-1]


def test_shafts_ending_far_apart_at_the_hip_share_the_higher_end():
    # Right femur lost two slices (48 mm > PAIRED_EXTRAPOLATE_MM) below the left one.
    assert 2 * DZ > PAIRED_EXTRAPOLATE_MM
    ends, levels, _ = shaft_levels(ZS, [list(range(2, 10)), list(range(2, 12))], ["right", "left"],
                                 m := [])  # fmt: skip
    assert ends == [(2 * DZ, 11 * DZ), (2 * DZ, 11 * DZ)]
    np.testing.assert_array_equal(levels[0], levels[1])
    assert any("48 mm apart at the hip" in x and "higher end" in x for x in m)


def test_a_one_slice_difference_is_left_alone():
    assert DZ <= PAIRED_EXTRAPOLATE_MM
    ends, levels, _ = shaft_levels(ZS, [list(range(2, 11)), list(range(2, 12))], ["right", "left"],
                                 m := [])  # fmt: skip
    assert ends == [(2 * DZ, 10 * DZ), (2 * DZ, 11 * DZ)]
    assert not np.array_equal(levels[0], levels[1])
    assert not any("apart at the" in x for x in m)


def test_a_leg_without_a_seen_end_takes_the_other_legs_levels():
    # Left femur detected to both stack edges (no end seen), right one ends in the stack.
    assert 3 * DZ >= END_MARGIN_MM
    ends, levels, guessed = shaft_levels(ZS, [list(range(0, 12)), list(range(0, 16))],
                                          ["right", "left"], m := [])  # fmt: skip
    assert guessed == [False, False]
    # Its own extent stays the femur's fill range; its levels are the right leg's.
    assert ends[1] == (0.0, 15 * DZ)
    np.testing.assert_array_equal(levels[1], levels[0])
    assert "the left leg's from the other leg's (the hips are at one height)" in m[-1]
    assert "mid-thigh" not in m[-1]


@pytest.mark.parametrize("names", [["right", "left"], ["left", "right"]])
def test_the_message_names_the_leg_that_borrowed(names):
    shaft_levels(ZS, [list(range(0, 16)), list(range(0, 12))], names, m := [])
    assert f"the {names[0]} leg's from the other leg's" in m[-1]
