"""Binary morphology of 2-D slice masks where SciPy's generic routines are slow.

Hole filling labels the background once instead of growing the outside by repeated
dilation (SciPy's ``binary_fill_holes``; ~3x faster on thigh slices, same pixels). An
opening by a large disc uses two Euclidean distance transforms, whose cost does not grow
with the radius as a structuring element's does (for radii of a few pixels the element
is as fast). Arrays are (j, i) = (row, column).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["fill_holes", "hole_sizes", "open_mm"]


def hole_sizes(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Holes of ``m``: background components (4-connected, as ``binary_fill_holes``
    takes them) that do not touch the array's edge.

    Returns
    -------
    labels : ndarray of int (j, i)
        Background component of every pixel (0 on the mask).
    is_hole : ndarray of bool, shape (n + 1,)
        Per component label, True for a hole (index 0, the mask, is False).
    """
    lab, n = ndi.label(~m.astype(bool))
    is_hole = np.ones(n + 1, dtype=bool)
    is_hole[np.concatenate((lab[0], lab[-1], lab[:, 0], lab[:, -1]))] = False
    is_hole[0] = False
    return lab, is_hole


def fill_holes(m: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes(m)`` of a 2-D mask, by one labelling pass."""
    lab, is_hole = hole_sizes(m)
    return m.astype(bool) | is_hole[lab]


def open_mm(m: np.ndarray, radius_mm: float, sampling: tuple[float, float]) -> np.ndarray:
    """Morphological opening by a disc of ``radius_mm`` (mm, sampling = (row, column)
    spacing), from two Euclidean distance transforms."""
    pad = int(np.ceil(radius_mm / min(sampling))) + 1
    mp = np.pad(m, pad)
    core = ndi.distance_transform_edt(mp, sampling=sampling) > radius_mm
    out = ndi.distance_transform_edt(~core, sampling=sampling) <= radius_mm
    return out[pad:-pad, pad:-pad] & m
