"""Intermuscular septa of one leg slice: closing their gaps and carrying on their ends.

Septa are the thin fat/fibrous sheets between muscles: ridges of a thin-line filter,
normalised so that SEPTUM_RIDGE marks one. Arrays are (j, i) slices; lengths in mm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import draw, measure, morphology

__all__ = ["EXTEND_ELEV", "LINK_ELEV", "SEPTUM_RIDGE", "septum_gap_links"]

SEPTUM_RIDGE = 0.5  # ridge strength (fraction of its 99th percentile) of a septum

# Broken septa. An intermuscular septum is a continuous sheet, but on one slice it can
# thin below the resolution over a stretch (partial volume, a thin septum, noise), and
# the watershed then leaks through the gap: the flood from the nearer seed takes the far
# muscle's tissue up to where the two floods meet (generated studies: the vastus
# intermedius through the lateral VI/VL septum, 8k voxels of a leg's VL). Two septum
# lines at least LINK_MIN_MM long whose ends lie up to LINK_GAP_MM apart and point at
# each other (each end's direction, over its last LINK_TANGENT_MM, within LINK_MAX_DEG of
# the line joining them) are joined by a straight line of septum elevation LINK_ELEV (a
# clear septum's ridge response, normalised to its 99th percentile). Ends meeting several
# candidates take the nearest; each end is joined once. Vessels are rings (no ends) and
# muscle fibres' fat streaks are short or not aligned end to end.
LINK_GAP_MM = 25.0
LINK_MIN_MM = 8.0
LINK_TANGENT_MM = 5.0
LINK_MAX_DEG = 35.0
LINK_ELEV = 1.0
# A septum can also fade out before it reaches the next septum, the femur or the fascia,
# with no second line end pointing back across the gap; the watershed then leaks round
# its loose end (generated studies: the rectus femoris round the end of the RF / VI
# septum into VI's healthy upper part, VI round the VI / VL septum into VL's oedema). A
# loose end (not joined above) of a septum line at least EXTEND_MIN_MM long is carried
# straight on, in its own direction within EXTEND_MAX_DEG, to the nearest other septum
# line or compartment border (fascia, femur) within EXTEND_MM. The extension is a
# just-detectable septum (EXTEND_ELEV, the septum threshold): it steers the floods at a
# gap but, lower than a link, does not cut seeds, and a clear border elsewhere outweighs
# it -- an aponeurosis or fat streak inside a muscle ends loose too, and carried on it
# would wall a piece of the muscle off (real case: at the link's height, RF took the
# front of L_VL behind such a wall; mean .761 -> .757).
EXTEND_MM = 20.0
EXTEND_MIN_MM = 10.0
EXTEND_MAX_DEG = 20.0
EXTEND_ELEV = SEPTUM_RIDGE


def septum_gap_links(
    ridge: np.ndarray, inside: np.ndarray, px: float
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
    """Straight links across the gaps of broken septum lines, and extensions of their
    loose ends.

    Parameters
    ----------
    ridge : ndarray (j, i)
        Septum ridge response, normalised so that SEPTUM_RIDGE marks a septum.
    inside : ndarray of bool (j, i)
        The muscle compartment (inside the fascia).
    px : float
        Pixel size (mm).

    Returns
    -------
    links : list of (jj, ii)
        Pixel rows and columns of each link (8-connected straight lines between the two
        ends, ends included).
    extensions : list of (jj, ii)
        The same for each loose end carried on to the line or border it points at.
    """
    skel = morphology.skeletonize((ridge > SEPTUM_RIDGE) & inside)
    lab = measure.label(skel, connectivity=2)
    sizes = np.bincount(lab.ravel())
    # Line ends: skeleton pixels with one skeleton neighbour, on lines long enough.
    nbrs = ndi.convolve(skel.astype(np.int32), np.ones((3, 3), np.int32), mode="constant") - 1
    ends = np.argwhere(skel & (nbrs == 1) & (sizes[lab] * px >= min(LINK_MIN_MM, EXTEND_MIN_MM)))
    if len(ends) == 0:
        return [], []
    comp = lab[ends[:, 0], ends[:, 1]]
    line_mm = sizes[comp] * px  # each end's line length
    # The direction an end points in: from the mean of its line's last LINK_TANGENT_MM.
    dirs = np.zeros((len(ends), 2))
    boxes = ndi.find_objects(lab)  # each line's pixels are looked up in its own box only
    for n, (e, c) in enumerate(zip(ends, comp, strict=True)):
        box = boxes[c - 1]
        q = np.argwhere(lab[box] == c) + (box[0].start, box[1].start)
        d = e - q[np.hypot(*(q - e).T) * px <= LINK_TANGENT_MM].mean(axis=0)
        dirs[n] = d / max(float(np.hypot(*d)), 1e-6)
    v = (ends[None, :, :] - ends[:, None, :]).astype(float)  # v[a, b]: from end a to end b
    dist = np.hypot(v[..., 0], v[..., 1])
    unit = v / np.maximum(dist, 1e-6)[..., None]
    cos_max = np.cos(np.radians(LINK_MAX_DEG))
    ok = (
        (comp[:, None] != comp[None, :])
        & (line_mm[:, None] >= LINK_MIN_MM)
        & (line_mm[None, :] >= LINK_MIN_MM)
        & (dist >= 1.0)
        & (dist * px <= LINK_GAP_MM)
        & ((unit * dirs[:, None, :]).sum(axis=-1) >= cos_max)  # a points at b
        & ((-unit * dirs[None, :, :]).sum(axis=-1) >= cos_max)  # b points at a
    )
    used: set[int] = set()
    out = []
    for a, b in sorted(zip(*np.nonzero(np.triu(ok)), strict=True), key=lambda ab: dist[ab]):
        if a in used or b in used:
            continue
        used |= {int(a), int(b)}
        out.append(draw.line(*ends[a], *ends[b]))
    # Loose ends: the nearest pixel of another line or of the compartment's border inside
    # the cone the end points into.
    border = inside & ~ndi.binary_erosion(inside)
    tgt = np.argwhere((lab > 0) | border)
    tgt_line, tgt_border = lab[tgt[:, 0], tgt[:, 1]], border[tgt[:, 0], tgt[:, 1]]
    cos_ext = np.cos(np.radians(EXTEND_MAX_DEG))
    ext = []
    for n, (e, c) in enumerate(zip(ends, comp, strict=True)):
        if n in used or line_mm[n] < EXTEND_MIN_MM:
            continue
        v = tgt - e
        d = np.hypot(v[:, 0], v[:, 1])
        hit = ((tgt_line > 0) & (tgt_line != c)) | tgt_border
        hit &= (d >= 1.0) & (d * px <= EXTEND_MM) & (v @ dirs[n] >= cos_ext * d)
        if hit.any():
            t = tgt[hit][np.argmin(d[hit])]
            ext.append(draw.line(*e, *t))
    return out, ext
