"""The deep fascia round one leg on one axial slice.

The muscle compartment is the soft tissue inside the deep fascia (fascia lata), which
lies under the subcutaneous fat. Along rays from the femur centre (N_BINS angular bins,
bin 0 at -180 deg from anterior) the fat under the skin is measured, and a smooth closed
contour is found by dynamic programming that follows the first muscle under the fat but
crosses over fat-replaced muscle and superficial veins (:func:`fascia_depth`).
Arrays are (j, i) = (row, column) slices; distances and depths are in mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage import morphology

__all__ = [
    "Fascia",
    "N_BINS",
    "fascia_depth",
    "find_fascia",
    "first_muscle_depth",
    "local_fat_likeness",
    "ray_samples",
]

N_BINS = 180
R_CAP_FACTOR = 1.4
RUN_MM = 5.0  # a muscle belly is >5 mm thick; superficial veins/skin are thinner
# Anterior fat thickness check: the front sector (|theta| < 35 deg, where the rectus
# femoris lies straight in front of the femur) against the flanks at +-45 deg (over the
# VL/VI and VM sides of the anterior compartment).
FRONT_DEG = 35.0
FLANK_DEG = 45.0
ANTERIOR_FAT_TOL_MM = 6.0  # real fat thickness differences between front and flanks
LATERAL_FAT_TOL_MM = 10.0  # ...and between front and the lateral side (60-120 deg)
# Fascia contour (dynamic programming over angular bins x depth, costs in mm-equivalents).
FASCIA_STEP_MM = 1.0  # depth grid
SKIN_MM = 3.0  # the blurred skin edge: the fascia lies deeper
FASCIA_PULL = 1.0  # cost per mm of smooth fat left inside the fascia...
FASCIA_CAP_MM = RUN_MM  # ...up to a thin muscle's thickness: deeper is a fat-replaced muscle
TEXTURE_MM = 3.0  # texture window: a few residual muscle fibres across
TEXTURE_FAT = 0.04  # local SD / fat-muscle contrast of smooth fat (noise only)...
TEXTURE_MUSCLE = 0.10  # ...and of streaky fat-replaced muscle (fibres in fat)
# Subcutaneous fat reference per ray: the fat from SKIN_MM down to LOCAL_FAT_MM deeper
# (or to 1 mm above the first muscle); a sample looks like that fat up to LOCAL_FAT_TOL[0]
# of the fat-muscle contrast away from it and not at all beyond LOCAL_FAT_TOL[1].
LOCAL_FAT_MM = 10.0
LOCAL_FAT_TOL = (0.05, 0.15)
FASCIA_BEND = 2.0  # cost per mm of depth change between neighbouring (2-degree) bins
FASCIA_EXCL = 2.0  # cost per mm of muscle-like tissue left outside the fascia
# A partly fat-replaced muscle (between fat and muscle in signal, so neither muscle-like
# nor fat-like) under the subcutaneous fat costs nothing on either side of the fascia, and
# a streak of fat inside it (a fascia-like dark line) drew the contour through its middle
# (real case: the upper rectus femoris cut in half on six slices). Tissue unlike the fat
# above it on its own ray is inside the deep fascia, so leaving it out costs FASCIA_KEEP
# per mm: a muscle's thickness outside outweighs a line, a vein's few mm do not. Only
# below >= KEEP_BELOW_FAT_MM of fat-like tissue on the ray: where no fat layer shows
# (over the hip, a thin or noisy layer) there is nothing to be "below".
FASCIA_KEEP = 0.15
KEEP_BELOW_FAT_MM = 3.0
FASCIA_LINE = 1.5  # reward for sitting on a fascia line (dark ridge, 0-1)


def ray_samples(
    image: np.ndarray,
    centre_xy: tuple[float, float],
    x: np.ndarray,
    y: np.ndarray,
    lat_sign: float,
    r_skin: np.ndarray,
    depths: np.ndarray,
    order: int = 0,
) -> np.ndarray:
    """Sample ``image`` (j, i) along each angular bin's ray at ``depths`` (mm) below the skin.

    Returns an array (N_BINS, len(depths)); samples outside the slice are 0.
    """
    # 2-D affine of the slice: (x, y) = o + A @ (i, j); rays are sampled in pixels.
    a = np.array([[x[0, 1] - x[0, 0], x[1, 0] - x[0, 0]], [y[0, 1] - y[0, 0], y[1, 0] - y[0, 0]]])
    a_inv = np.linalg.inv(a)
    o = np.array([x[0, 0], y[0, 0]])
    theta = np.radians((np.arange(N_BINS) + 0.5) * 360.0 / N_BINS - 180.0)
    d_xy = np.stack([lat_sign * np.sin(theta), -np.cos(theta)], axis=1)  # (bins, 2)
    rr = r_skin[:, None] - depths[None, :]  # radius of each sample (bins, steps)
    px_xy = np.asarray(centre_xy)[None, None, :] + rr[..., None] * d_xy[:, None, :]
    ij = np.einsum("ab,nsb->nsa", a_inv, px_xy - o)
    return ndi.map_coordinates(
        image.astype(np.float32), [ij[..., 1], ij[..., 0]], order=order, cval=0.0
    )


def first_muscle_depth(
    muscle_like: np.ndarray,
    centre_xy: tuple[float, float],
    x: np.ndarray,
    y: np.ndarray,
    lat_sign: float,
    r_skin: np.ndarray,
    r_fem: np.ndarray,
    step: float = 0.5,
) -> np.ndarray:
    """Depth (mm) below the skin of the first muscle run along each angular bin's ray."""
    max_depth = float(r_skin.max())
    depths = np.arange(0.0, max_depth + step, step)
    samples = ray_samples(muscle_like, centre_xy, x, y, lat_sign, r_skin, depths)
    rr = r_skin[:, None] - depths[None, :]
    # Reaching the femur ends the search: count it as muscle there.
    samples[rr <= r_fem[:, None]] = 1.0
    n_run = max(1, int(round(RUN_MM / step)))
    c = np.concatenate([np.zeros((N_BINS, 1)), np.cumsum(samples, axis=1)], axis=1)
    run_mean = np.full(samples.shape, 0.0)
    m = samples.shape[1] - n_run + 1
    if m > 0:
        run_mean[:, :m] = (c[:, n_run:] - c[:, :-n_run]) / n_run
    run_mean[:, max(m, 0) :] = 1.0
    start = np.argmax(run_mean >= 0.8, axis=1)
    return depths[start]


def local_fat_likeness(
    rays: np.ndarray,
    first_muscle: np.ndarray,
    depths: np.ndarray,
    contrast: float,
    fat_bright: bool,
) -> np.ndarray:
    """How close each ray sample is to the subcutaneous fat of its own ray (0-1).

    Parameters
    ----------
    rays : ndarray (N_BINS, n_depths)
        Smoothed intensities along each angular bin's ray at ``depths`` (mm) below the skin.
    first_muscle : ndarray (N_BINS,)
        Depth (mm) of the first muscle run per bin; the fat reference lies above it.
    depths : ndarray (n_depths,)
        Sample depths (mm).
    contrast : float
        Fat-muscle contrast of the leg (intensity units).
    fat_bright : bool
        True for T1-like contrasts.

    Returns
    -------
    ndarray (N_BINS, n_depths)
        1 within LOCAL_FAT_TOL[0] x contrast of the ray's fat (or darker on fat-suppressed
        images, brighter on fat-bright ones), falling to 0 at LOCAL_FAT_TOL[1]; all ones when
        no ray shows enough fat under the skin.
    """
    top = np.minimum(first_muscle - 1.0, SKIN_MM + LOCAL_FAT_MM)
    win = (depths[None, :] >= SKIN_MM) & (depths[None, :] < top[:, None])
    ok = win.sum(axis=1) >= 2
    if not ok.any():
        return np.ones_like(rays)
    loc = np.full(rays.shape[0], np.nan)
    loc[ok] = np.nanmedian(np.where(win, rays, np.nan)[ok], axis=1)
    loc[~ok] = np.median(loc[ok])  # thin or no fat under the skin: the leg's typical fat
    dev = (rays - loc[:, None]) / max(contrast, 1e-6)
    if fat_bright:
        dev = -dev
    lo, hi = LOCAL_FAT_TOL
    return np.clip((hi - dev) / (hi - lo), 0.0, 1.0)


def fascia_depth(
    first_muscle: np.ndarray,
    musclelike: np.ndarray,
    fatlike: np.ndarray,
    line: np.ndarray,
    step: float,
    notfat: np.ndarray | None = None,
) -> np.ndarray:
    """Closed smooth fascia depth (mm below the skin) per angular bin, by dynamic programming.

    Parameters
    ----------
    first_muscle : ndarray (N_BINS,)
        Depth (mm) of the first muscle run under the skin per bin.
    musclelike : ndarray (N_BINS, n_depths)
        Muscle-like signal (0-1) at depths ``step * arange(n_depths)`` mm below the skin.
    fatlike : ndarray (N_BINS, n_depths)
        How much each sample looks like subcutaneous fat (0-1) at the same depths.
    line : ndarray (N_BINS, n_depths)
        Fascia-line evidence (0-1) at the same depths.
    step : float
        Depth grid spacing (mm).
    notfat : ndarray (N_BINS, n_depths), optional
        How unlike the ray's subcutaneous fat each sample is (0-1), where it lies under
        that fat; ``None``: not used.

    Returns
    -------
    ndarray (N_BINS,)
        Depth (mm) of the fascia. Costs (mm-equivalents) per bin: smooth fat left inside
        between the fascia and the first muscle (capped at FASCIA_CAP_MM), muscle-like
        tissue left outside (FASCIA_EXCL per mm), tissue unlike the fat above it left
        outside (FASCIA_KEEP per mm), minus FASCIA_LINE x the line evidence;
        plus FASCIA_BEND per mm of depth change between neighbouring bins, circularly.
        So the contour follows the first muscle, except that it crosses over a notch
        whose content does not look like subcutaneous fat (a fat-replaced muscle) or
        that is deep and narrow, and over thin muscle-like spots in the fat (veins).
    """
    n_b, n_d = fatlike.shape
    d = np.arange(n_d) * step
    above = first_muscle[:, None] - d[None, :]  # > 0: fascia above the first muscle
    # Cost: the fat-like tissue (mm) the fascia would leave inside, between its depth and
    # the first muscle, minus the fascia-line reward.
    f = np.where(above > 0, fatlike, 0.0) * step
    inside_fat = np.cumsum(f[:, ::-1], axis=1)[:, ::-1]
    # Tissue left outside, above the fascia: muscle-like tissue (a superficial vein costs
    # its few mm, a muscle belly much more) and tissue unlike the fat above it.
    per_mm = FASCIA_EXCL * musclelike
    if notfat is not None:
        per_mm = per_mm + FASCIA_KEEP * notfat
    o = np.where(d[None, :] >= SKIN_MM, per_mm, 0.0) * step
    outside = np.cumsum(o, axis=1) - o
    cost = FASCIA_PULL * np.minimum(inside_fat, FASCIA_CAP_MM) + outside - FASCIA_LINE * line
    cost[:, d < min(SKIN_MM, d[-1])] = np.inf  # the blurred skin edge
    # Circular: run over three turns and keep the middle one (the ends' start-up effects
    # die out within a turn).
    c3 = np.concatenate([cost, cost, cost], axis=0)
    trans = FASCIA_BEND * np.abs(d[:, None] - d[None, :])  # (from, to), per mm of bend
    acc = c3[0].copy()
    back = np.zeros(c3.shape, dtype=np.int32)
    for b in range(1, c3.shape[0]):
        tot = acc[:, None] + trans
        back[b] = np.argmin(tot, axis=0)
        acc = tot[back[b], np.arange(n_d)] + c3[b]
    path = np.zeros(c3.shape[0], dtype=np.int32)
    path[-1] = int(np.argmin(acc))
    for b in range(c3.shape[0] - 1, 0, -1):
        path[b - 1] = back[b, path[b]]
    return d[path[n_b : 2 * n_b]]


@dataclass
class Fascia:
    """The deep fascia of one leg on one slice (see :func:`find_fascia`)."""

    inside: np.ndarray  # bool (j, i): the leg's soft tissue inside the deep fascia
    r_fem: np.ndarray  # (N_BINS,) femur radius per angular bin (mm)
    r_fascia: np.ndarray  # (N_BINS,) fascia radius per angular bin (mm)
    leg: np.ndarray  # bool (j, i): the leg, capped where it runs on into the perineum
    soft: np.ndarray  # bool (j, i): ``leg`` without the femur


def find_fascia(
    sm: np.ndarray,
    leg: np.ndarray,
    femur: np.ndarray,
    muscle_like: np.ndarray,
    dark_lines: np.ndarray,
    femur_xy: tuple[float, float],
    x: np.ndarray,
    y: np.ndarray,
    lat_sign: float,
    r: np.ndarray,
    bins: np.ndarray,
    spacing_ij: tuple[float, float],
    contrast: float,
    fat_bright: bool,
) -> Fascia:
    """Find the deep fascia (the inner border of the subcutaneous fat) round one leg.

    Parameters
    ----------
    sm : ndarray (j, i)
        Smoothed slice intensities.
    leg, femur : ndarray of bool (j, i)
        The leg's cross-section and its femur.
    muscle_like : ndarray of bool (j, i)
        Soft tissue whose signal is nearer muscle's than fat's.
    dark_lines : ndarray (j, i)
        Thin-dark-line (ridge) response of the slice: fascia and septa are fibrous and
        dark on every contrast.
    femur_xy : (float, float)
        LPS centre of the femur (mm), the origin of the angular bins.
    x, y : ndarray (j, i)
        LPS coordinates of the pixels (mm).
    lat_sign : float
        -1 for the patient's right leg, +1 for the left (lateral is toward lat_sign x).
    r, bins : ndarray (j, i)
        Each pixel's distance from ``femur_xy`` (mm) and its angular bin (0..N_BINS-1,
        bin 0 at -180 deg from anterior).
    spacing_ij : (float, float)
        Column and row spacing (mm).
    contrast : float
        Fat-muscle contrast of the leg (intensity units).
    fat_bright : bool
        True for T1-like contrasts (fat bright).

    Returns
    -------
    Fascia
    """
    si, sj = spacing_ij
    px = min(si, sj)
    soft = leg & ~femur
    # Femur radius profile and skin radius profile per angular bin.
    r_fem = np.zeros(N_BINS)
    np.maximum.at(r_fem, bins[femur], r[femur])
    r_fem[r_fem == 0] = np.median(r_fem[r_fem > 0]) if (r_fem > 0).any() else 10.0
    r_skin = np.zeros(N_BINS)
    np.maximum.at(r_skin, bins[leg], r[leg])
    # Where the thighs meet the perineum (or each other) the "leg" runs on far medially.
    # The lateral thigh always has free skin; a thigh's medial reach from the femur is at
    # most ~1.4x its lateral radius (femur roughly central to slightly lateral), so cap
    # the leg there.
    lat_bins = (np.arange(N_BINS) + 0.5) * 360.0 / N_BINS - 180.0
    # Bins where the leg runs into the image's edge (field of view narrower than the
    # thighs): no skin there, so their fat thickness is no reference for the front's.
    rim = np.zeros(leg.shape, dtype=bool)
    rim[[0, -1], :] = True
    rim[:, [0, -1]] = True
    cut = np.zeros(N_BINS, dtype=bool)
    cut[bins[leg & rim]] = True
    cut |= np.roll(cut, 1) | np.roll(cut, -1)
    lateral = (lat_bins > 45.0) & (lat_bins < 135.0) & (r_skin > 0)
    if lateral.sum() >= 5:
        cap = R_CAP_FACTOR * float(np.median(r_skin[lateral]))
        leg = leg & (r <= cap)
        soft = soft & leg
        r_skin = np.minimum(r_skin, cap)
    # Subcutaneous thickness: walking inward from the skin along each angular bin, the
    # depth where a >= RUN_MM run of mostly muscle-like signal starts (a superficial vein
    # or the bright skin line is shorter than that).
    first_muscle = first_muscle_depth(muscle_like, femur_xy, x, y, lat_sign, r_skin, r_fem)
    # Subcutaneous fat thickness changes smoothly around the limb, while a fat-replaced
    # superficial muscle (fat-like on fat-suppressed images) makes the first muscle a
    # muscle's thickness deeper over a muscle's width; such muscle is often streaky
    # (residual fibres) where fat is smooth, and its epimysium and the deep fascia are
    # thin dark lines on every contrast (fibrous tissue). A closed contour that bends
    # little, leaves little smooth fat inside and little muscle-like tissue outside, and
    # runs on those lines crosses over such notches (see fascia_depth).
    line_img = dark_lines * soft
    ref_l = float(np.percentile(line_img[soft], 99)) if soft.any() else 0.0
    line_img = np.clip(line_img / max(ref_l, 1e-6), 0.0, 1.0)
    # Smooth fat vs streaky fat-replaced muscle (residual fibres): local standard
    # deviation over ~3 mm relative to the fat-muscle contrast.
    w = max(3, int(round(TEXTURE_MM / px)) | 1)
    m1 = ndi.uniform_filter(sm, w)
    sd = np.sqrt(np.maximum(ndi.uniform_filter(sm * sm, w) - m1 * m1, 0.0))
    texture = sd / max(contrast, 1e-6)
    fat_img = np.clip((TEXTURE_MUSCLE - texture) / (TEXTURE_MUSCLE - TEXTURE_FAT), 0.0, 1.0)
    d_grid = np.arange(0.0, float(r_skin.max()) + FASCIA_STEP_MM, FASCIA_STEP_MM)
    line = ray_samples(line_img, femur_xy, x, y, lat_sign, r_skin, d_grid, order=1)
    fatlike = ray_samples(fat_img, femur_xy, x, y, lat_sign, r_skin, d_grid, order=1)
    # Subcutaneous fat is one tissue, but its signal drifts around the limb (coil shading,
    # uneven fat suppression or water-fat separation), so "like fat" means like the fat
    # under the skin on the same ray, not like the leg's median fat: a smooth fat-replaced
    # muscle that keeps some water signal (brighter than the fat over it on fat-suppressed
    # images) is then no subcutaneous fat, and the fascia may cross over it.
    sm_rays = ray_samples(sm, femur_xy, x, y, lat_sign, r_skin, d_grid, order=1)
    local_fat = local_fat_likeness(sm_rays, first_muscle, d_grid, contrast, fat_bright)
    fatlike *= local_fat
    fat_above = np.cumsum(np.where(d_grid[None, :] >= SKIN_MM, local_fat, 0.0), axis=1)
    notfat = np.where(fat_above * FASCIA_STEP_MM >= KEEP_BELOW_FAT_MM, 1.0 - local_fat, 0.0)
    musclelike = ray_samples(muscle_like, femur_xy, x, y, lat_sign, r_skin, d_grid, order=1)
    rr = r_skin[:, None] - d_grid[None, :]
    musclelike[rr <= r_fem[:, None]] = 1.0
    thick = fascia_depth(first_muscle, musclelike, fatlike, line, FASCIA_STEP_MM, notfat)
    # Subcutaneous fat over the front of the thigh is about as thick as over its
    # antero-medial and antero-lateral flanks and its lateral side (thickness varies
    # smoothly around the limb); a much deeper first muscle in front is a fat-replaced
    # rectus femoris (dark like fat on fat-suppressed images), which is still inside the
    # fascia. So the front fascia lies at most ANTERIOR_FAT_TOL_MM deeper than over the
    # thinner flank, and at most LATERAL_FAT_TOL_MM deeper than over the lateral side
    # (further round the limb, so a wider margin). The flanks may both cover fat-replaced
    # muscle (VL's front, VM, sartorius); the lateral side is VL's bulk. A flank or side cut
    # off by the image's edge shows no fat and is left out (huashan cut 26 mm at each
    # lateral side: the front fascia was held 10 mm under the skin, inside the thick fat
    # over the hips, and RF took that fat: RF .55/.51 -> .65/.61, mean .695 -> .717).
    ang = lat_bins
    caps = [
        thick[b] + ANTERIOR_FAT_TOL_MM
        for b in (np.argmin(np.abs(ang + FLANK_DEG)), np.argmin(np.abs(ang - FLANK_DEG)))
        if not cut[b]
    ]
    side_bins = (ang > 60.0) & (ang < 120.0) & ~cut
    if side_bins.any():
        caps.append(float(np.median(thick[side_bins])) + LATERAL_FAT_TOL_MM)
    front = np.abs(ang) < FRONT_DEG
    if caps:
        thick[front] = np.minimum(thick[front], min(caps))
    r_fascia = np.maximum(r_skin - thick, r_fem + 2.0)

    inside = soft & (r <= r_fascia[bins])
    # The deep fascia wraps the muscles in a nearly convex envelope: a fat-replaced
    # superficial muscle (dark like fat on fat-suppressed images) between muscle-like
    # neighbours lies inside the convex hull of the muscle-like tissue.
    rad = max(1, int(round(1.5 / px)))
    core = ndi.binary_opening(muscle_like & inside, structure=np.ones((2 * rad + 1,) * 2))
    if core.sum() > 50:
        hull = morphology.convex_hull_image(core)
        inside |= soft & hull
        r_in = np.zeros(N_BINS)
        np.maximum.at(r_in, bins[inside], r[inside])
        r_fascia = np.maximum(r_fascia, r_in)
    return Fascia(inside=inside, r_fem=r_fem, r_fascia=r_fascia, leg=leg, soft=soft)
