"""The femoral shafts along the stack: one straight track per femur, and each slice's level.

Per-slice femur candidates (:func:`myoimg.segment.femur.find_femurs`) are grouped into one
or two straight tracks (the shaft is straight over the thigh), misses inside a track and
a few mm past its ends are filled in, and each slice gets its level along the shaft (0 at
the distal end above the knee, 1 at the proximal end below the trochanters), which the
seed model of :mod:`.compartments` follows. Slice indices k; LPS z in mm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .femur import MIN_FEMUR_SEPARATION_MM, FemurCandidate

__all__ = [
    "END_MARGIN_MM",
    "PAIRED_EXTRAPOLATE_MM",
    "SHAFT_MM",
    "femur_tracks",
    "fill_track_gaps",
    "shaft_levels",
]

# The femoral shaft is nearly straight (anterior bow ~1 cm over its length): on every
# slice its centre lies within this distance (mm) of the straight line fitted through the
# detections (half a shaft diameter plus detection noise).
TRACK_TOLERANCE_MM = 15.0
# The shaft is continuous: detections separated from the main run by a gap of more than
# one empty slice and more than this many mm (e.g. femoral heads in the pelvis, 5-8 cm
# above the shaft's end) are dropped; shorter gaps are a few missed detections.
MAX_TRACK_GAP_MM = 15.0
# The shaft's outer diameter changes little along the diaphysis and widens toward the
# metaphyses (real development case: every detection within 0.96-1.45 of its track's
# median; generated studies 0.98-1.07). A blob on the track's line but narrower than
# this share of the median is something else: a pelvic bone or the femoral neck's edge
# (real case shifted 40 mm in the field of view and resampled: a 17 mm blob one slice
# above a 24 mm gap joined the left track of 27 mm blobs and moved that leg's shaft end,
# and with it every level, up by 48 mm: mean Dice .704; .757 with this rule, .761 unshifted).
MIN_SHAFT_DIAMETER_RATIO = 0.75
# A femur missed at the end of its track is assumed to continue this far (mm)...
EXTRAPOLATE_MM = 10.0
# ...and this far on slices where the other leg's femur is detected: the pelvis holds
# both hips at one height (tilt and leg-length differences of 1-3 cm), so the two shafts
# end at nearly the same level. The real development case's right shaft, its marrow grey
# near the trochanters, lost its dark core one 24 mm slice below the left one.
PAIRED_EXTRAPOLATE_MM = 30.0
# Level along the femoral shaft (0 distal end, 1 proximal end; the seed model follows it:
# VM grows distally, the sartorius turns medial, RF ends above the knee). Where the femur
# track stops inside the stack with at least this much stack (mm) beyond it, that end is
# the shaft's anatomical end (hip: neck and trochanters are not a round shaft; knee: the
# condyles); a femur missed on a slice or two at the stack's edge is not.
END_MARGIN_MM = 20.0
# Length (mm) of the round adult femoral shaft between those ends (femur ~45 cm long,
# of which roughly two thirds is shaft): sets the level of slices measured from one end,
# and of a stack that shows neither end (assumed centred at mid-thigh, as thigh
# protocols are).
SHAFT_MM = 300.0


def _fit_track(ks: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Robust straight line xy(k): least squares, then refit without outliers."""
    if len(ks) == 1:
        return np.array([[0.0, xy[0, 0]], [0.0, xy[0, 1]]])
    keep = np.ones(len(ks), dtype=bool)
    coef = None
    for _ in range(3):
        deg = 1 if keep.sum() >= 3 else 0
        coef = [np.polyfit(ks[keep], xy[keep, c], deg) for c in range(2)]
        coef = [np.pad(c, (2 - len(c), 0)) for c in coef]
        pred = np.stack([np.polyval(c, ks) for c in coef], axis=1)
        res = np.hypot(*(xy - pred).T)
        new_keep = res <= TRACK_TOLERANCE_MM
        # A track needs most detections; keep the better half at least.
        if new_keep.sum() < max(1, len(ks) // 2):
            new_keep = res <= np.median(res)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return np.asarray(coef)


def _main_run(chosen: list, dz: float) -> list:
    """Keep the longest run of slices with a femur (short gaps bridged, see
    MAX_TRACK_GAP_MM; ``dz`` is the slice spacing in mm)."""
    max_gap = max(1, int(MAX_TRACK_GAP_MM // max(dz, 1e-3)))
    ks = [k for k, c in enumerate(chosen) if c is not None]
    if not ks:
        return chosen
    runs, start = [], ks[0]
    for a, b in zip(ks[:-1], ks[1:], strict=True):
        if b - a - 1 > max_gap:
            runs.append((start, a))
            start = b
    runs.append((start, ks[-1]))
    lo, hi = max(runs, key=lambda r: sum(chosen[k] is not None for k in range(r[0], r[1] + 1)))
    return [c if lo <= k <= hi else None for k, c in enumerate(chosen)]


def femur_tracks(
    cands: list[list[FemurCandidate]], nz: int, dz: float
) -> tuple[list[np.ndarray], list[list[FemurCandidate | None]]]:
    """Group per-slice candidates into 1-2 straight femur tracks; pick one per slice.

    ``dz`` is the slice spacing (mm).
    """
    pts = [(k, c) for k, cs in enumerate(cands) for c in cs]
    if not pts:
        return [], []
    xs = np.array([c.centre_xy[0] for _, c in pts])
    # Two femurs when detections split into two x clusters >= 8 cm apart (1-D 2-means).
    centres = [xs.min(), xs.max()]
    for _ in range(10):
        assign = np.abs(xs - centres[0]) > np.abs(xs - centres[1])
        centres = [
            xs[~assign].mean() if (~assign).any() else centres[0],
            xs[assign].mean() if assign.any() else centres[1],
        ]
    clusters = [np.ones(len(xs), bool)]
    if abs(centres[1] - centres[0]) >= MIN_FEMUR_SEPARATION_MM:
        clusters = [~assign, assign]
        # A second femur must be seen on a fair share of slices: a few stray dark blobs on
        # one side (a cut limb at the image border, pelvis) are not a leg.
        n_slices = [len({pts[n][0] for n in np.nonzero(cl)[0]}) for cl in clusters]
        if min(n_slices) < 0.4 * max(n_slices):
            clusters = [clusters[int(np.argmax(n_slices))]]
    tracks, picks = [], []
    for cl in clusters:
        sel = [pts[n] for n in np.nonzero(cl)[0]]
        # best candidate per slice for the fit
        best: dict[int, FemurCandidate] = {}
        for k, c in sel:
            if k not in best or c.score > best[k].score:
                best[k] = c
        ks = np.array(sorted(best), dtype=float)
        xy = np.array([best[int(k)].centre_xy for k in ks])
        coef = _fit_track(ks, xy)
        chosen: list[FemurCandidate | None] = [None] * nz
        on_line = [
            (k, c)
            for k, c in sel
            if np.hypot(
                c.centre_xy[0] - np.polyval(coef[0], k), c.centre_xy[1] - np.polyval(coef[1], k)
            )
            <= TRACK_TOLERANCE_MM
        ]
        r_track = float(np.median([c.radius_mm for _, c in on_line])) if on_line else 0.0
        for k, c in on_line:
            if c.radius_mm < MIN_SHAFT_DIAMETER_RATIO * r_track:
                continue
            if chosen[k] is None or c.score > chosen[k].score:
                chosen[k] = c
        chosen = _main_run(chosen, dz)
        tracks.append(coef)
        picks.append(chosen)
    return tracks, picks


def shaft_levels(
    zs: np.ndarray, detected: list[list[int]], names: list[str], messages: list[str]
) -> tuple[list[tuple[float, float]], list[np.ndarray], list[bool]]:
    """Each femoral shaft's ends and the level of every slice along it.

    Parameters
    ----------
    zs : ndarray (nz,)
        LPS z (mm) of each slice.
    detected : list of list of int
        Per femur track, the slices where its femur was found (before any filling).
    names : list of str
        Per track, its leg's name for messages ("right", "left").
    messages : list of str
        Notes for the user; how the levels were found is added.

    Returns
    -------
    ends : list of (float, float)
        Per track, the distal and proximal end (LPS z, mm) its shaft is taken to reach
        (the femur is filled in up to them).
    levels : list of ndarray (nz,)
        Per track, each slice's level along the shaft (0 distal end, 1 proximal end;
        clipped), from the ends that lie inside the stack (END_MARGIN_MM, SHAFT_MM).
    guessed : list of bool
        Per track, True where no end of any shaft was in the stack, so that its levels
        are the mid-thigh guess.

    Notes
    -----
    The pelvis holds both hips at one height and the knees lie level, so one leg's shaft
    ends inform the other's, by two rules. (1) Where both shafts end inside the stack
    more than PAIRED_EXTRAPOLATE_MM apart, both take the further end (the higher at the
    hip, the lower at the knee). (2) Where one leg shows no end of its shaft and the
    other does, it takes the other leg's levels rather than the mid-thigh guess.
    """
    ends = [(float(zs[d].min()), float(zs[d].max())) for d in detected]

    def inside(z_lo: float, z_hi: float) -> tuple[bool, bool]:
        return z_lo - zs.min() >= END_MARGIN_MM, zs.max() - z_hi >= END_MARGIN_MM

    if len(ends) == 2:
        # Rule 1. Ends inside the stack differ by leg-length and tilt differences (1-3
        # cm, PAIRED_EXTRAPOLATE_MM) and by a missed detection or so. Further apart, one
        # femur was lost early (its marrow greys and its cortex thins toward the
        # trochanters) and the one followed further is the better measure: the real
        # development case resampled to 1 mm pixels lost its right femur two 24 mm
        # slices below the left one, which moved all its levels by 0.16 of the shaft
        # (R_VM .77 -> .66; mean .761 -> .716), and left its top slice out. With the
        # shared end (levels, and the femur put on its track up to it): .735; resampled
        # to 0.8 / 0.9 / 0.95 / 1.05 mm, .748 / .742 / .743 / .735 -> .752 / .747 /
        # .748 / .739 (the resampled copies all lost the right femur on the same slice).
        # A difference of one such slice is left alone: measured per leg, the real
        # case's top slices fit better (both legs on the higher end: R_VL .861 -> .829,
        # mean .7606 -> .7585).
        lo, hi = (list(v) for v in zip(*ends, strict=True))
        for name, zz, pick, end in (("hip", hi, max, 1), ("knee", lo, min, 0)):
            if all(inside(*e)[end] for e in ends) and max(zz) - min(zz) > PAIRED_EXTRAPOLATE_MM:
                messages.append(
                    f"the two femoral shafts were followed to levels {max(zz) - min(zz):.0f} "
                    f"mm apart at the {name}: both legs' levels are measured from the "
                    f"{'higher' if name == 'hip' else 'lower'} end"
                )
                zz[:] = [pick(zz)] * 2
        ends = list(zip(lo, hi, strict=True))
    level_ends = list(ends)
    how = set()
    blind = [n for n, e in enumerate(ends) if not any(inside(*e))]
    if len(ends) == 2 and len(blind) == 1:
        # Rule 2. One shaft's end is in the stack and the other's not (its femur found a
        # slice or two short of it). Real development case cut to slices 6-11 / 7-12,
        # where the left femur's end fell outside END_MARGIN_MM: mean Dice .662 -> .699
        # and .587 -> .654 (L_VM .32 -> .58, .17 -> .60).
        n = blind[0]
        level_ends[n] = ends[1 - n]
        how.add(f"the {names[n]} leg's from the other leg's (the hips are at one height)")
    levels, guessed = [], []
    for z_lo, z_hi in level_ends:
        dist, prox = inside(z_lo, z_hi)
        if prox and dist:
            lv = (zs - z_lo) / max(z_hi - z_lo, 1.0)
            how.add("both ends of the femoral shaft are in the stack")
        elif prox:
            lv = 1.0 - (z_hi - zs) / SHAFT_MM
            how.add("measured from the proximal end of the femoral shaft")
        elif dist:
            lv = (zs - z_lo) / SHAFT_MM
            how.add("measured from the distal end of the femoral shaft")
        else:
            lv = 0.5 + (zs - 0.5 * (z_lo + z_hi)) / SHAFT_MM
            how.add("neither end of the femoral shaft is in the stack: assumed centred at mid-thigh")
        levels.append(np.clip(lv, 0.0, 1.0))
        guessed.append(not (prox or dist))
    messages.append("level along the thigh for the muscle model: " + "; ".join(sorted(how)))
    return ends, levels, guessed


def fill_track_gaps(
    picks, tracks, body, grids, spacing_ij, dz: float, detected, shaft=None
) -> int:
    """Put a femur where a track misses one: inside its run, or a few mm past its ends.

    The shaft is straight, so the fitted line predicts its centre; its radius is the
    track's median. Past the ends only up to EXTRAPOLATE_MM (the shaft does not stop
    abruptly, but the knee and hip are not shaft), or up to PAIRED_EXTRAPOLATE_MM over
    slices where the other leg's femur is detected; only where the predicted centre is
    deep inside the body. ``detected`` lists, per track, the slices where its femur was
    found (before any filling); ``shaft``, per track, slices its shaft is taken to cover
    (see shaft_levels), filled as well.
    """
    n_filled = 0
    n_extra = int(EXTRAPOLATE_MM // max(dz, 1e-3))
    n_paired = int(PAIRED_EXTRAPOLATE_MM // max(dz, 1e-3))
    for n, (chosen, coef) in enumerate(zip(picks, tracks, strict=True)):
        ks = [k for k, c in enumerate(chosen) if c is not None]
        if len(ks) < 2:
            continue
        radius = float(np.median([chosen[k].radius_mm for k in ks]))
        lo, hi = max(0, ks[0] - n_extra), min(len(chosen) - 1, ks[-1] + n_extra)
        other = set().union(*(set(d) for m, d in enumerate(detected) if m != n))
        while lo - 1 in other and ks[0] - (lo - 1) <= n_paired:
            lo -= 1
        while hi + 1 in other and (hi + 1) - ks[-1] <= n_paired:
            hi += 1
        if shaft is not None and shaft[n]:
            lo, hi = min(lo, shaft[n][0]), max(hi, shaft[n][-1])
        for k in range(lo, hi + 1):
            if chosen[k] is not None:
                continue
            x, y = grids[k]
            cx, cy = (float(np.polyval(coef[c], k)) for c in range(2))
            d2 = (x - cx) ** 2 + (y - cy) ** 2
            j, i = np.unravel_index(np.argmin(d2), d2.shape)
            if not body[k][j, i]:
                continue
            depth = ndi.distance_transform_edt(body[k], sampling=spacing_ij[::-1])[j, i]
            if depth < 2.0 * radius:
                continue
            mask = (d2 <= radius**2) & body[k]
            chosen[k] = FemurCandidate(
                mask=mask,
                centre_ji=(float(j), float(i)),
                centre_xy=(cx, cy),
                radius_mm=radius,
                score=0.0,
            )
            n_filled += 1
    return n_filled
