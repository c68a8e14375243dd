"""myoimg.segment.morph against SciPy."""

import numpy as np
from scipy import ndimage

from myoimg.segment.morph import fill_holes


def _random_masks(seed: int, n: int = 60):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        shape = (int(rng.integers(1, 48)), int(rng.integers(1, 48)))
        # smoothed noise: blobs, thin bridges and holes of many sizes, touching the edges
        field = ndimage.gaussian_filter(rng.random(shape), float(rng.uniform(0.5, 3.0)))
        yield field > np.quantile(field, rng.uniform(0.2, 0.8))


def test_fill_holes_matches_scipy():
    for b in _random_masks(5):
        np.testing.assert_array_equal(fill_holes(b), ndimage.binary_fill_holes(b))
    ring = np.zeros((9, 9), bool)
    ring[2:7, 2:7] = True
    ring[4, 4] = False  # a hole
    assert fill_holes(ring)[4, 4] and fill_holes(ring).sum() == 25
    edge_notch = ring.copy()
    edge_notch[0:5, 4] = False  # opened to the edge: no longer a hole
    assert not fill_holes(edge_notch)[4, 4]
