"""smooth_borders: the in-plane vote that straightens zigzag borders between muscles."""

import numpy as np

from myoimg.segment.auto import smooth_borders


def _two_muscles_with_zigzag() -> np.ndarray:
    lab = np.zeros((1, 60, 60), np.uint8)
    lab[0, 5:55, 5:55] = 1
    for j in range(5, 55):
        lab[0, j, 30 + (j % 3 == 0) : 55] = 2  # a one-pixel notch on every third row
    return lab


def test_zigzag_border_becomes_straight_and_outline_stays():
    lab = _two_muscles_with_zigzag()
    out = smooth_borders(lab, (1.0, 1.0), sigma_mm=3.0)
    first_2 = [int(np.argmax(out[0, j] == 2)) for j in range(15, 45)]  # away from corners
    assert set(first_2) == {30}  # the majority position
    assert len({int(np.argmax(lab[0, j] == 2)) for j in range(15, 45)}) == 2  # was zigzag
    # the compartment's outline does not move: background stays, labelled stays labelled
    np.testing.assert_array_equal(out > 0, lab > 0)
    assert out.dtype == lab.dtype


def test_thin_strap_survives_and_single_label_is_unchanged():
    lab = np.zeros((1, 80, 80), np.uint8)
    lab[0, 5:75, 5:75] = 1
    lab[0, 5:75, 40:75] = 2
    lab[0, 5:75, 35:45] = 3  # a 10 mm strap (sartorius-like) between two large muscles
    out = smooth_borders(lab, (1.0, 1.0), sigma_mm=3.0)
    assert (out == 3).sum() >= 0.9 * (lab == 3).sum()
    one = np.zeros((2, 20, 20), np.uint8)
    one[:, 5:15, 5:15] = 7
    np.testing.assert_array_equal(smooth_borders(one, (1.0, 1.0)), one)
    np.testing.assert_array_equal(smooth_borders(lab, (1.0, 1.0), sigma_mm=0.0), lab)


def test_anisotropic_spacing_sets_the_kernel_in_mm():
    # 0.5 mm columns: a 1-pixel zigzag is 0.5 mm; the same vote straightens it
    lab = _two_muscles_with_zigzag()
    out = smooth_borders(lab, (0.5, 1.0), sigma_mm=3.0)
    assert len({int(np.argmax(out[0, j] == 2)) for j in range(15, 45)}) == 1
