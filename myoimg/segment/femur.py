"""Femoral shaft detection on axial thigh slices.

The femoral cortex is a signal void on every MR sequence; the marrow is dark on
fat-suppressed images and bright on T1-like ones. Hence the femur is found as a dark,
round, compact region (marrow holes filled) lying well inside a limb, with a plausible
size. On fat-dominant images (Dixon fat, fat fraction), where muscle is as dark as the
cortex, the bright marrow is searched instead and widened to the shaft's outline.
Arrays are (j, i) = (row, column) slices; sizes are in mm from the spacing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage import measure, morphology

from .morph import hole_sizes
from .thigh import SUBCUT_RING_MM

__all__ = ["FemurCandidate", "find_femurs"]

# Adult femoral shaft diameter is 22-35 mm; the metaphyses near knee and hip are wider.
# Accept 12-60 mm of equivalent diameter (children, atrophy, trochanter level).
FEMUR_DIAMETER_MM = (12.0, 60.0)
# The shaft is covered by the vasti and subcutaneous tissue: its centre lies at least
# ~15 mm from the skin even in a very thin thigh.
MIN_DEPTH_MM = 15.0
# Two femurs are at least ~8 cm apart (pelvic width); closer dark blobs are one leg.
MIN_FEMUR_SEPARATION_MM = 80.0
# Shape score (solidity x roundness) a second void must reach, relative to a candidate, to
# make both ambiguous.
RIVAL_SCORE = 0.75
# The cortex edge: the chosen void blob grows by up to CORTEX_EDGE_MM into pixels darker
# than CORTEX_EDGE_LEVEL x the deep-thigh (muscle) median, i.e. the half-way level between
# void and muscle that defines an edge blurred by partial volume.
CORTEX_EDGE_MM = 3.0
CORTEX_EDGE_LEVEL = 0.5
# Deep-thigh (muscle) signal below this fraction of the subcutaneous fat's: a fat-dominant
# image (Dixon fat, fat fraction) where muscle and cortex are both near black and only the
# marrow, which is fat, shows the bone; the search then looks for the marrow.
FAT_DOMINANT_RATIO = 0.2
# On fat-bright images the marrow is fat: a cortex void holds at least MARROW_CORE_MIN of
# its area above MARROW_LEVEL x the subcutaneous fat's signal (canal/shaft area ratio
# 0.55^2 = 0.3; thick slices and partial volume take some of it).
MARROW_LEVEL = 0.5
MARROW_CORE_MIN = 0.1
# Medullary canal over outer diameter of the femoral shaft: 0.4-0.7 in adults (thicker
# cortex when young, thinner with age and osteoporosis), 0.55 taken: the bone's outline
# from its marrow where the cortex cannot be told from muscle.
CANAL_TO_SHAFT = 0.55
# On fat-suppressed images a void round a core brighter than BRIGHT_CORE_LEVEL x the
# deep-thigh median (muscle) on at least BRIGHT_CORE_MIN of its area is fat round blood:
# the femoral artery and vein in the adductor canal (about a third of the canal's fat pad),
# not marrow, which is dark there (fatty) or at most muscle-grey (red marrow).
BRIGHT_CORE_LEVEL = 1.5
BRIGHT_CORE_MIN = 0.05


@dataclass
class FemurCandidate:
    """A femur found on one slice: mask and centre in pixel and LPS coordinates."""

    mask: np.ndarray  # bool (j, i)
    centre_ji: tuple[float, float]
    centre_xy: tuple[float, float]  # LPS mm
    radius_mm: float
    score: float
    from_marrow: bool = False  # found as its bright marrow (fat-bright images)
    fat_core: bool = False  # a void holding fat (marrow) inside, on fat-bright images
    bright_core: bool = False  # a void round something brighter than muscle (fat-suppressed)


def _dark_threshold(sm: np.ndarray, body: np.ndarray, depth: np.ndarray) -> float:
    """Intensity below which a pixel counts as 'signal void' (cortex-like)."""
    deep = sm[body & (depth > 15.0)]
    if deep.size < 100:
        deep = sm[body]
    # The deep thigh is mostly muscle on every contrast; cortex/marrow on fat-suppressed
    # images are far below a third of it, and the T1 cortex is near zero.
    return 0.3 * float(np.median(deep))


def _dist(a: FemurCandidate, b: FemurCandidate) -> float:
    return float(np.hypot(a.centre_xy[0] - b.centre_xy[0], a.centre_xy[1] - b.centre_xy[1]))


def _fill_small_holes(mask: np.ndarray, max_px: float) -> np.ndarray:
    """Fill holes up to ``max_px`` pixels (marrow inside a cortex ring, not a whole limb)."""
    lab, is_hole = hole_sizes(mask)
    sizes = np.bincount(lab.ravel(), minlength=is_hole.size)
    return mask | (is_hole & (sizes <= max_px))[lab]


def find_femurs(
    sl: np.ndarray,
    body: np.ndarray,
    spacing_ij: tuple[float, float],
    x: np.ndarray,
    y: np.ndarray,
    fat_bright: bool = False,
) -> list[FemurCandidate]:
    """Return 0, 1 or 2 femur candidates on one slice, best first.

    Parameters
    ----------
    sl : ndarray (j, i)
        Slice intensities.
    body : ndarray of bool (j, i)
        Body mask of the slice.
    spacing_ij : (float, float)
        Column and row spacing in mm.
    x, y : ndarray (j, i)
        LPS coordinates (mm) of each pixel.
    fat_bright : bool
        The image is fat-bright (T1, Dixon fat or in-phase). Cortex voids with fatty
        marrow inside are preferred to voids without (on a Dixon fat image near-black
        muscle bellies are as round and dark as the cortex), and where no void is found
        the bright marrow is searched instead (the void merges with near-black muscle
        round it, while the marrow stays an island of fat in its cortex ring).
    """
    if not body.any():
        return []
    si, sj = spacing_ij
    sm = ndi.gaussian_filter(sl.astype(np.float32), sigma=(0.7 / sj, 0.7 / si))
    depth = ndi.distance_transform_edt(body, sampling=(sj, si))
    ref = _dark_threshold(sm, body, depth) / 0.3
    ring = body & (depth >= SUBCUT_RING_MM[0]) & (depth <= SUBCUT_RING_MM[1])
    fat = float(np.median(sm[ring])) if ring.sum() > 20 else 0.0
    marrow_only = fat > 0.0 and ref < FAT_DOMINANT_RATIO * fat
    cands: list[FemurCandidate] = []
    if not marrow_only:
        core = MARROW_LEVEL * fat if fat_bright else None
        cands = _void_candidates(sm, body, depth, ref, (si, sj), x, y, marrow=False,
                                 core_level=core,
                                 bright_level=None if fat_bright else BRIGHT_CORE_LEVEL * ref)  # fmt: skip
        # On fat-suppressed images the marrow is dark: a ring of fat round bright blood
        # (the femoral vessels in the adductor canal's fat) is no bone, and no rival
        # either. Where every void is such (marrow oedema), all stay.
        cands = [c for c in cands if not c.bright_core] or cands
        # Voids with fatty marrow inside are bone; voids without (near-black muscle
        # bellies on a fat image) neither compete with them nor count as rivals. Where
        # none holds fat (red marrow, as dark as muscle on T1), all stay.
        cands = [c for c in cands if c.fat_core] or cands
    if marrow_only or (fat_bright and fat > 0.0 and not cands):
        # Fat (and marrow) dark, muscle and cortex bright: the void search finds the marrow.
        inv = np.maximum(fat - sm, 0.0)
        cands = _void_candidates(inv, body, depth, _dark_threshold(inv, body, depth) / 0.3,
                                 (si, sj), x, y, marrow=True)  # fmt: skip
    cands.sort(key=lambda c: -c.score)
    return _finish(cands, body, sm, ref, (si, sj))


def _void_candidates(
    sm: np.ndarray,
    body: np.ndarray,
    depth: np.ndarray,
    ref: float,
    spacing_ij: tuple[float, float],
    x: np.ndarray,
    y: np.ndarray,
    marrow: bool,
    core_level: float | None = None,
    bright_level: float | None = None,
) -> list[FemurCandidate]:
    """Round, deep, shaft-sized dark blobs of ``sm`` at a few void levels (fractions of
    ``ref``); ``marrow``: the blobs are the medullary canal (their diameter is turned into
    the shaft's); ``core_level``: a blob with MARROW_CORE_MIN of its pixels above it holds
    fat inside (``fat_core``: the marrow inside the cortex ring, on fat-bright images; a
    near-black muscle belly on a Dixon fat image is as round and dark as the cortex, but
    holds none); ``bright_level``: a blob with BRIGHT_CORE_MIN of its pixels above it holds
    something brighter than muscle (``bright_core``: blood in the adductor canal's fat, on
    fat-suppressed images, where marrow is dark)."""
    si, sj = spacing_ij
    px = min(si, sj)
    to_shaft = 1.0 / CANAL_TO_SHAFT if marrow else 1.0  # blob diameter -> shaft's
    cands: list[FemurCandidate] = []
    # Cortex contrast varies along the shaft and between sequences: try a few void levels
    # (fractions of the deep-thigh median) and keep the best-shaped blob.
    for frac in (0.15, 0.25, 0.35, 0.5):
        dark = (sm < frac * ref) & body
        # The cortex is a ring around marrow of any signal: close small gaps, fill.
        r_close = max(1, int(round(2.0 / px)))
        dark = ndi.binary_closing(np.pad(dark, r_close), morphology.disk(r_close))[
            r_close:-r_close, r_close:-r_close
        ]
        dark = _fill_small_holes(dark, np.pi * (FEMUR_DIAMETER_MM[1] / 2.0) ** 2 / (si * sj))
        # Detach the femur from thin dark septa and vessels touching it.
        r_open = max(1, int(round(2.0 / px)))
        dark = ndi.binary_opening(dark, morphology.disk(r_open))
        lab = measure.label(dark)
        for reg in measure.regionprops(lab):
            area_mm2 = reg.area * si * sj
            diam = to_shaft * 2.0 * np.sqrt(area_mm2 / np.pi)  # the shaft's outer diameter
            if not FEMUR_DIAMETER_MM[0] <= diam <= FEMUR_DIAMETER_MM[1]:
                continue
            cj, ci = reg.centroid
            d_centre = float(depth[int(round(cj)), int(round(ci))])
            if d_centre < MIN_DEPTH_MM or d_centre < 0.6 * diam:
                continue
            # The shaft section is near-circular (the linea aspera and the metaphyses make
            # it at most moderately oval); elongated dark blobs are vessels, septa, tendons.
            if reg.solidity < 0.8 or reg.eccentricity > 0.9:
                continue
            # Prefer round (eccentricity low), solid, shaft-sized blobs.
            size_pen = 1.0 if 18.0 <= diam <= 42.0 else 0.6
            score = reg.solidity * (1.0 - 0.5 * reg.eccentricity) * size_pen
            m = lab == reg.label
            cored = core_level is not None and (sm[m] > core_level).mean() >= MARROW_CORE_MIN
            bright = bright_level is not None and (sm[m] > bright_level).mean() >= BRIGHT_CORE_MIN
            cands.append(
                FemurCandidate(
                    mask=m,
                    centre_ji=(float(cj), float(ci)),
                    centre_xy=(float(x[m].mean()), float(y[m].mean())),
                    radius_mm=diam / 2.0,
                    score=float(score),
                    from_marrow=marrow,
                    fat_core=cored,
                    bright_core=bright,
                )
            )
    return cands


def _finish(
    cands: list[FemurCandidate],
    body: np.ndarray,
    sm: np.ndarray,
    ref: float,
    spacing_ij: tuple[float, float],
) -> list[FemurCandidate]:
    """One candidate per bone, no rival voids, at most two femurs, masks to the shaft's
    outline."""
    si, sj = spacing_ij
    px = min(si, sj)
    # The same bone found at several void levels: keep its best version only.
    unique: list[FemurCandidate] = []
    for c in cands:
        if all(_dist(c, o) > max(c.radius_mm, o.radius_mm) for o in unique):
            unique.append(c)
    # One femur per leg: two comparable round voids in the same limb, closer than two
    # femurs can be, are something else (lower-leg bones, brain ventricles): none counts.
    # "Comparable" is size and shape: a fat pad with its vessels filled in (the adductor
    # canal) can be femur-sized but is less round than the cortical tube; it yields.
    lab_body = measure.label(body)
    comp = {id(c): lab_body[int(round(c.centre_ji[0])), int(round(c.centre_ji[1]))] for c in unique}
    rivals = set()
    for a in unique:
        for b in unique:
            if a is b or comp[id(a)] != comp[id(b)]:
                continue
            if (
                _dist(a, b) < MIN_FEMUR_SEPARATION_MM
                and b.radius_mm > 0.7 * a.radius_mm
                and b.score >= RIVAL_SCORE * a.score
            ):
                rivals.add(id(a))
    cands = [c for c in unique if id(c) not in rivals]
    chosen: list[FemurCandidate] = []
    for c in cands:
        if all(abs(c.centre_xy[0] - o.centre_xy[0]) >= MIN_FEMUR_SEPARATION_MM for o in chosen):
            chosen.append(c)
        if len(chosen) == 2:
            break
    # The best-shaped blob is often the darkest core of the cortex (the lowest void
    # level); its partial-volume rim is bone too. Left outside, it is a dark ring of
    # "muscle" round the shaft that walls the vastus intermedius in (thick T1 slices).
    r_edge = max(1, int(round(CORTEX_EDGE_MM / px)))
    for c in chosen:
        if c.from_marrow:
            # The cortex is as dark as muscle here: the bone is its marrow widened to the
            # shaft's outer radius (the candidate's radius already is that radius).
            r_canal = float(np.sqrt(c.mask.sum() * si * sj / np.pi))
            grow = max(1, int(round((c.radius_mm - r_canal) / px)))
            c.mask = ndi.binary_dilation(c.mask, morphology.disk(grow)) & body
            continue
        rim = ndi.binary_dilation(c.mask, morphology.disk(r_edge)) & body
        rim &= sm < CORTEX_EDGE_LEVEL * ref
        lab_g, _ = ndi.label(c.mask | rim)
        c.mask = lab_g == lab_g[c.mask].max()
        c.radius_mm = float(np.sqrt(c.mask.sum() * si * sj / np.pi))
    return chosen
