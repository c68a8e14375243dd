"""Muscle compartments of one leg on one axial slice: polar seed model and watershed.

The deep fascia comes from :mod:`.fascia`, the septa's gap links from :mod:`.septa`.

Geometry: a polar frame around the femur. ``theta`` (degrees) is measured, from a point
a quarter of the way from the femur centre to the muscle compartment's centroid
(:data:`FRAME_SHIFT`), from the leg's anterior direction (-y in LPS) toward its lateral direction (-x for the patient's
right leg, +x for the left), so 0 = anterior, +90 = lateral, 180 = posterior,
-90 = medial on both legs. ``u`` is a normalised depth: 0 at the femoral surface, 1 at
the muscle fascia (inner border of the subcutaneous fat).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage import filters, segmentation

from .fascia import N_BINS, find_fascia
from .septa import EXTEND_ELEV, LINK_ELEV, SEPTUM_RIDGE, septum_gap_links
from .thigh import SUBCUT_RING_MM

__all__ = [
    "LEVEL_MODEL",
    "LegSlice",
    "MARKER_MODEL",
    "marker_model",
    "segment_leg_slice",
    "segment_leg_slice_turned",
]

# Marker model: (group, theta range deg, u range). Seeds only: the watershed moves the
# borders to the fat septa. Anatomy at mid-thigh (any anatomy atlas, e.g. Gray's):
# VI lies on the anterior and lateral shaft (deepest layer); VL is the lateral bulk;
# RF is superficial and straight anterior; VM is antero-medial; the adductors are
# medial/postero-medial; the hamstrings posterior. Seeds sit in the middle of each
# muscle's sector, away from the expected borders, so that a few degrees of rotation or
# a shift of a border keeps every seed inside its own muscle.
MARKER_MODEL: tuple[tuple[str, tuple[float, float], tuple[float, float]], ...] = (
    ("VI", (-30.0, 110.0), (0.0, 0.1)),
    # VL's posterior border is the lateral intermuscular septum, which leaves the linea
    # aspera (posterior, 180 deg) and reaches the fascia postero-laterally (~120-135 deg,
    # where biceps femoris begins): the VL seed stays anterior of it.
    ("VL", (60.0, 115.0), (0.55, 0.85)),
    ("RF", (-12.0, 12.0), (0.75, 0.92)),
    ("VM", (-70.0, -40.0), (0.35, 0.75)),
    ("ADD", (-140.0, -105.0), (0.3, 0.8)),
    ("HAM", (170.0, 210.0), (0.5, 0.9)),
    # Sartorius and gracilis: thin superficial straps over the adductor canal (medial)
    # and on the medial side; without their own seeds VM and the adductors would flood
    # them.
    ("SAR", (-95.0, -65.0), (0.8, 1.0)),
    ("GRA", (-125.0, -100.0), (0.88, 1.0)),
    # Gluteus maximus: its lower fibres reach the gluteal tuberosity and the iliotibial
    # tract postero-laterally over the top of the thigh; seeded only there (GMAX_LEVEL)
    # so that VL does not flood it. Not one of our labels: it leaves the label map.
    ("GMAX", (0.0, -1.0), (0.7, 1.0)),
)
GROUPS = tuple(g for g, _, _ in MARKER_MODEL)

# The rectus femoris belly ends in the quadriceps tendon some 6-8 cm above the distal end
# of the femoral shaft (the tendon is not muscle): no RF seed below this level (0.2 of
# SHAFT_MM is 6 cm). The real development case's RF ends between levels 0.2 and 0.36;
# 0.15 seeded RF on its tendon.
RF_MIN_LEVEL = 0.2

# Level-dependent seeds at anatomical levels along the femoral shaft (0 = distal end of
# the shaft above the knee, 1 = proximal end below the trochanters; piecewise linear in
# between; see ``segment_thigh`` for how the level of a slice is found).
# VM is largest distally (its oblique part fills the antero-medial and medial thigh above
# the knee) and shrinks to a thin deep strip proximally; its seed stays deep so that it
# does not sit in the superficial sartorius. The sartorius spirals from the anterior
# superior iliac spine (antero-medial over the upper thigh, just medial of the rectus
# femoris) to the medial side of the knee (postero-medial above it), so its seed turns
# along the thigh; the gracilis stays behind it. The adductors reach antero-medially in
# the upper thigh (adductor longus forms the floor of the femoral triangle) and shrink to
# the postero-medial adductor magnus toward the knee. VI arises from the anterior and
# lateral shaft, but below the greater trochanter the lateral shaft is VL's origin (the
# lower border of the trochanter, the gluteal tuberosity and the lateral lip of the linea
# aspera): VI's seed narrows to the front of the shaft over the top third. The mid-thigh
# keypoints (0.25, 0.75) were set on the reference study's mid-thigh stack; the ends
# follow the anatomy above.
LEVEL_MODEL: dict[str, tuple[tuple[float, tuple[float, float], tuple[float, float]], ...]] = {
    "VI": (
        (0.0, (-30.0, 110.0), (0.0, 0.1)),
        (0.7, (-30.0, 110.0), (0.0, 0.1)),
        (1.0, (-40.0, 20.0), (0.0, 0.1)),
    ),
    # Over the top of the shaft the rectus femoris (from the anterior inferior iliac
    # spine) lies between the tensor fasciae latae laterally and the sartorius, which
    # crosses in front antero-medially: the seed's medial edge moves off the sartorius.
    # Real case, levels 0.84-1: its RF's median angle +6..+13 deg, 5th percentile -11..+2.
    "RF": (
        (RF_MIN_LEVEL, (-12.0, 12.0), (0.75, 0.92)),
        (0.75, (-12.0, 12.0), (0.75, 0.92)),
        (1.0, (-4.0, 16.0), (0.75, 0.92)),
    ),
    # Below the greater trochanter VL arises from the trochanter's anterior and lower
    # borders and is antero-lateral, with the tensor fasciae latae over its front and the
    # gluteus maximus postero-laterally (Gray's): its seed turns forward over the top of
    # the shaft. Real case, levels 0.92-1: its VL's median angle 67-79 deg (mid-thigh
    # seed 60-115 sat behind it and VL took the gluteal side: VL .82/.79 -> .84/.80).
    "VL": (
        (0.0, (60.0, 115.0), (0.55, 0.85)),
        (0.85, (60.0, 115.0), (0.55, 0.85)),
        (1.0, (35.0, 90.0), (0.55, 0.85)),
    ),
    "VM": (
        (0.0, (-100.0, -40.0), (0.25, 0.8)),
        (0.25, (-90.0, -40.0), (0.25, 0.75)),
        # Upper thigh: the deep third only. Both references' VM lies there (real case,
        # levels 0.68-0.92: median u 0.17-0.23; generated studies up to 0.73: 5th
        # percentile 0.17-0.2); a seed reaching u 0.45 sat in the sartorius where that
        # lies deep (real case), and the two split the sartorius between them.
        (0.75, (-55.0, -35.0), (0.2, 0.35)),
        (1.0, (-50.0, -35.0), (0.15, 0.3)),
    ),
    # A strap under the fascia: 10-15 mm thick where femur and fascia lie 40-60 mm apart
    # medially, i.e. the outer fifth to quarter of the depth (generated studies: its
    # median u is 0.70-0.84 along the stack; a band from 0.85 sat in its superficial rim
    # only; from 0.75 it reached into the vastus medialis under a thin strap).
    # Over the top of the shaft the sartorius is a thick belly roofing the femoral
    # triangle, with the iliopsoas and the femoral vessels between it and the femur, not
    # a strap under the fascia: its seed reaches deeper there. Real case, levels 0.9-1:
    # the sartorius' centre lay at u ~0.7, below the strap's band, and the rectus
    # femoris' seed flooded it. It comes from the anterior superior iliac spine, lateral
    # of the rectus' origin, and crosses in front of the rectus toward the medial side:
    # just below the trochanters it lies in front of it and only slightly medial, so
    # its seed reaches to within 10 deg of straight anterior there (a seed ending at
    # -18 deg left the rectus femoris' seed the nearer one over the sartorius' lateral
    # half, which has no septum inside it: real case RF .666/.612 -> .687/.626).
    "SAR": (
        (0.0, (-135.0, -105.0), (0.8, 1.0)),
        (0.25, (-110.0, -80.0), (0.8, 1.0)),
        (0.75, (-70.0, -40.0), (0.8, 1.0)),
        (1.0, (-35.0, -10.0), (0.6, 1.0)),
    ),
    "GRA": (
        (0.0, (-155.0, -130.0), (0.88, 1.0)),
        (0.25, (-135.0, -115.0), (0.88, 1.0)),
        (0.75, (-125.0, -100.0), (0.88, 1.0)),
        (1.0, (-120.0, -95.0), (0.88, 1.0)),
    ),
    "ADD": (
        (0.0, (-165.0, -130.0), (0.3, 0.8)),
        (0.25, (-150.0, -115.0), (0.3, 0.8)),
        (0.75, (-125.0, -85.0), (0.3, 0.8)),
        (1.0, (-110.0, -70.0), (0.3, 0.8)),
    ),
}
GMAX_LEVEL = 0.9
# VM's highest fibres arise from the spiral line below the lesser trochanter; over the top
# tenth of the shaft the medial side of the femur is the iliopsoas (inserting on the
# lesser trochanter) and the pectineus, where a VM seed lands and grows. VM is at most a
# sliver there: what the VM seed takes above this level leaves the label map (like the
# gluteus maximus group). Real development case: its reference has no VM above level
# 0.85, ours took 0.3-0.6k voxels per leg and slice there.
VM_MAX_LEVEL = 0.9
GMAX_DEG = (125.0, 165.0)
# A seed sector is drawn at fixed angles and depths, but the heads' shapes differ between
# subjects: a sector can reach across a fat septum into the neighbouring muscle (real
# case: the hamstrings' sector over the posterior lobe of its large vastus lateralis,
# R_VL .844 -> .861). Cut along the septa (the fat-like dark ridges of the
# septum rule in ``_partition``), a seed keeps only the pieces holding at least this
# share of it, and the watershed decides the rest. Measured (development studies / real
# case / mean of its 8 degraded copies): without .9114/.7515/.7354; 0.1 .9117/.7589/.7410
# (every copy up); 0.08 and 0.15 alike; 0.3 .9096/.7557/.7339. Cutting at every dark
# ridge, fat-like or not, split seeds along the rims of oedema patches (baselines -.004
# to -.010). Cutting also at every wall as high as a closed septum gap (LINK_ELEV: the
# links, strong ridges over fat): .9134/.7606/.7425, held-out studies unchanged.
SEED_MIN_PIECE = 0.1


def _interp(keys, f: float):
    """Piecewise-linear (theta range, u range) at level f from (level, t, u) keypoints."""
    lv = [k[0] for k in keys]
    out = []
    for part in (1, 2):
        lo = [np.interp(f, lv, [k[part][0] for k in keys])]
        hi = [np.interp(f, lv, [k[part][1] for k in keys])]
        out.append((float(lo[0]), float(hi[0])))
    return out[0], out[1]


def _at_level(table, level: float | None) -> float:
    """Piecewise-linear value of ((level, value), ...) keypoints; ``None``: mid-thigh."""
    f = 0.5 if level is None else float(np.clip(level, 0.0, 1.0))
    return float(np.interp(f, [lv for lv, _ in table], [v for _, v in table]))


def vm_posterior_limit(level: float | None = None) -> float:
    """VM's posterior limit (degrees, negative = medial) at a relative level along the
    femoral shaft (0 distal, 1 proximal; ``None``: mid-thigh), from :data:`VM_POST_LEVELS`."""
    return _at_level(VM_POST_LEVELS, level)


def vm_depth_limit(level: float | None = None) -> float:
    """VM's largest relative depth u (0 femur, 1 fascia) at a level along the femoral
    shaft (0 distal, 1 proximal; ``None``: mid-thigh), from :data:`VM_DEPTH_LEVELS`."""
    return _at_level(VM_DEPTH_LEVELS, level)


def vl_depth_limit(level: float | None = None) -> float:
    """VL's largest relative depth u (0 femur, 1 fascia) at a level along the femoral
    shaft (0 distal, 1 proximal; ``None``: mid-thigh), from :data:`VL_DEPTH_LEVELS`."""
    return _at_level(VL_DEPTH_LEVELS, level)


def marker_model(level: float | None = None):
    """Seed model at a relative level along the femoral shaft (0 distal, 1 proximal).

    ``None`` returns the mid-thigh :data:`MARKER_MODEL`. Groups without a seed at that
    level (the rectus femoris near the knee) get an empty theta range.
    """
    if level is None:
        return MARKER_MODEL
    f = float(np.clip(level, 0.0, 1.0))
    out = []
    for g, t, u in MARKER_MODEL:
        if g in LEVEL_MODEL:
            t, u = _interp(LEVEL_MODEL[g], f)
        if g == "RF" and f < RF_MIN_LEVEL:
            t = (0.0, -1.0)  # empty: no seed
        if g == "GMAX" and f >= GMAX_LEVEL:
            t = GMAX_DEG
        out.append((g, t, u))
    return tuple(out)


W_FAT = 0.3
MUSCLE_LIKE_FRAC = 0.4  # of the way from the leg's fat level to its muscle level
# Watershed elevation from fat: W_FAT where the signal is at most FAT_RAMP[0] of the way
# from the leg's fat level to its muscle level, none from FAT_RAMP[1] up, linear between
# (centred on the muscle-like cut; a binary cut made a partly fat-replaced muscle a
# wall as high as fat: real case .729 -> .733, generated studies unchanged).
FAT_RAMP = (MUSCLE_LIKE_FRAC - 0.2, MUSCLE_LIKE_FRAC + 0.2)
# Compact watershed: a pixel's flooding priority is its elevation plus this much per mm
# of distance from the seed, so that where no septum shows the border falls between the
# seeds. Per mm, not per pixel (scikit-image counts pixels): the split of a muscle must
# not depend on the matrix. 0.004 is the former 0.003 per pixel at the real development
# case's 0.74 mm (it is unchanged); the generated studies' 1.05-1.1 mm pixels now get
# 0.0044 (mean Dice .9134 -> .9120: baselines -.004..+.004, follow-ups -.006..-.001), and
# the real case resampled to 0.8 / 1.0 / 1.1 mm .752 / .735 / .744 -> .753 / .740 / .749.
COMPACTNESS_MM = 0.004
SEPTUM_BAND_MM = 2.0  # septum pixels lie this close to a group border (mm)
# VM's posterior limit (degrees from anterior, medial negative) by level along the shaft
# (0 distal, 1 proximal), piecewise linear: the medial intermuscular septum leaves the
# femur postero-medially, and VM wraps furthest back above the knee, where its oblique
# part fills the medial thigh; proximally it is an antero-medial strip with the
# adductors and sartorius medial of it. Checked against both references: the VM of the
# real development case has 95 % of its voxels in front of -70..-100 deg above
# mid-thigh and of -107..-136 deg below it; the generated studies' (levels 0.25-0.77)
# in front of -64..-81 deg.
VM_POST_LEVELS = ((0.0, -135.0), (0.25, -120.0), (0.5, -105.0), (1.0, -95.0))
# VM's depth: above the knee and up to mid-thigh VM reaches the deep fascia
# antero-medially (between RF and sartorius), but over the upper thigh it lies deep,
# under RF, sartorius and the femoral triangle, a strip on the medial side of VI. Its
# relative depth u (0 at the femur, 1 at the fascia) is capped there; what the watershed
# gave VM beyond the cap goes to the nearest other group. Both references agree: 95 % of
# the generated studies' VM lies within u 0.83 / 0.70 / 0.57 at levels 0.55 / 0.62 /
# 0.72, of the real case's within 0.25-0.5 above level 0.75.
VM_DEPTH_LEVELS = ((0.0, 9.0), (0.5, 9.0), (0.75, 0.7), (1.0, 0.5))  # 9: no cap (u <= 1.5)
# VL's depth at the top of the shaft: below the greater trochanter the tensor fasciae
# latae (antero-laterally) and the lower gluteus maximus with the iliotibial tract
# (postero-laterally) cover VL, which is superficial only further down. What the
# watershed gave VL beyond the cap goes to the gluteus maximus group (not one of our
# labels: it leaves the map). No cap below level 0.85 (u <= 1.5). Checked on the real
# development case: 95 % of its reference VL lies within u 0.81-0.82 at level 0.92 and
# 0.67-0.74 at level 1.0 (0.91-0.99 at 0.76-0.84, where VL is superficial); the
# generated studies end near level 0.77, below the cap.
VL_DEPTH_LEVELS = ((0.0, 1.5), (0.85, 1.5), (0.9, 0.85), (1.0, 0.75))
# Adductor canal search radius (mm) around the VM/adductor/sartorius junction, the
# largest vessel-bundle area (mm^2: artery 6-8 mm and vein 8-12 mm wide), and how much
# brighter than healthy muscle flowing blood is on fat-suppressed images (x).
CANAL_RADIUS_MM = 12.0
VESSEL_MAX_MM2 = 200.0
VESSEL_RATIO = 1.5
# On T1-like images: a flow void, below this share of muscle's signal (generated studies:
# blood 0.1 and muscle 0.33 of fat; fat-free muscle is the darkest soft tissue there).
VESSEL_VOID_RATIO = 0.6
# A T1 void is a vessel anywhere if fat (brighter than this multiple of muscle's level:
# a 1-2 mm sheath is partial volume at 1 mm pixels, fat being ~3x muscle) lies within
# VESSEL_RING_MM of it in at least VESSEL_RING_SECTORS of 8 directions.
VESSEL_RING_FAT = 1.5
VESSEL_RING_MM = 2.5
VESSEL_RING_SECTORS = 7
# Fraction of the way from the femur centre to the muscle compartment's centroid where
# the seed angles are measured from (0 = femur centre). Checked on the generated studies
# and the real development case: 0.25 helps the real case (femur far off-centre) and
# leaves the generated ones unchanged; 0.5 and more move the seeds off the heads.
FRAME_SHIFT = 0.25  # 2-degree angular bins for the skin/fascia radius profiles


@dataclass
class LegSlice:
    """Result for one leg on one slice."""

    groups: np.ndarray  # int (j, i): 0 outside, 1.. index+1 into GROUPS
    inside_fascia: np.ndarray  # bool (j, i)
    theta: np.ndarray  # float (j, i) degrees
    u: np.ndarray  # float (j, i)
    # Boundary evidence: summed elevation (septum ridge + fat) on the pixels where two
    # groups meet, and their number; borders on septa score high, borders forced through
    # uniform muscle (seeds in the wrong muscle) low.
    border_elevation: float = 0.0
    border_pixels: int = 0


def _canal_vessels(
    sm: np.ndarray,
    groups: np.ndarray,
    spacing_ij: tuple[float, float],
    fat_bright: bool = False,
) -> np.ndarray:
    """Femoral vessels in the adductor canal: blobs unlike muscle where VM, adductors and
    sartorius meet. On fat-suppressed images blood is bright (like oedema, so only the
    canal's own place is searched); on T1-like ones (``fat_bright``) flowing blood is a
    signal void, darker than muscle. Returns a bool mask (j, i) to take out of the labels.
    """
    si, sj = spacing_ij
    out = np.zeros(groups.shape, dtype=bool)
    ids = [GROUPS.index(g) + 1 for g in ("VM", "ADD", "SAR")]
    healthy = np.isin(groups, [GROUPS.index(g) + 1 for g in ("ADD", "HAM")])
    if healthy.sum() < 50:
        return out
    # Bright: well above muscle of this slice: the adductors and hamstrings (rarely
    # inflamed in myositis) or all labelled muscle, whichever is brighter (fat-replaced
    # adductors and hamstrings, as in dystrophies, are darker than muscle on
    # fat-suppressed images). On T1 fat-replaced muscle is the brighter, so the darker of
    # the two levels is muscle's, and a flow void lies well below it.
    if fat_bright:
        level = min(float(np.median(sm[healthy])), float(np.median(sm[groups > 0])))
        odd = (groups > 0) & (sm < VESSEL_VOID_RATIO * level)
    else:
        level = max(float(np.median(sm[healthy])), float(np.median(sm[groups > 0])))
        odd = (groups > 0) & (sm > VESSEL_RATIO * level)
    lab, n = ndi.label(odd)
    if n == 0:
        return out
    near = np.zeros(groups.shape, dtype=bool)
    if all((groups == i).any() for i in ids):
        # The canal: the point nearest to all three muscles (max of the three distances).
        dist = [ndi.distance_transform_edt(groups != i, sampling=(sj, si)) for i in ids]
        far = np.maximum.reduce(dist)
        j0, i0 = np.unravel_index(np.argmin(far), far.shape)
        if far[j0, i0] <= CANAL_RADIUS_MM:
            jj, ii = np.mgrid[0 : groups.shape[0], 0 : groups.shape[1]]
            near = np.hypot((jj - j0) * sj, (ii - i0) * si) <= CANAL_RADIUS_MM
    # On T1 a void with fat all round it is a vessel wherever it lies (vessels run in a
    # fat sheath; a tendon or aponeurosis, as dark, lies in muscle). On fat-suppressed
    # images the same test took out oedema closed in by septa (see the README, session 22).
    fat = sm > VESSEL_RING_FAT * level if fat_bright else None
    sizes = np.bincount(lab.ravel()) * si * sj
    at_canal = set(np.unique(lab[near]).tolist()) - {0}
    # Each blob is judged in its bounding box widened by the ring (not on the whole slice).
    pad_j, pad_i = int(np.ceil(VESSEL_RING_MM / sj)) + 1, int(np.ceil(VESSEL_RING_MM / si)) + 1
    for lbl, (bj, bi) in enumerate(ndi.find_objects(lab), start=1):
        if sizes[lbl] > VESSEL_MAX_MM2 or (fat is None and lbl not in at_canal):
            continue
        win = (
            slice(max(bj.start - pad_j, 0), min(bj.stop + pad_j, groups.shape[0])),
            slice(max(bi.start - pad_i, 0), min(bi.stop + pad_i, groups.shape[1])),
        )
        blob = lab[win] == lbl
        if lbl in at_canal or _fat_ringed(blob, fat[win], si, sj):
            out[win] |= blob
    return out


def _fat_ringed(blob: np.ndarray, fat: np.ndarray, si: float, sj: float) -> bool:
    """True where ``fat`` (bool (j, i)) lies all round ``blob`` (bool (j, i), with room
    for the ring round it) within VESSEL_RING_MM: in at least VESSEL_RING_SECTORS of 8
    directions from the blob's centre, a fifth or more of the ring's pixels are fat."""
    jj, ii = np.nonzero(blob)
    d = ndi.distance_transform_edt(~blob, sampling=(sj, si))
    rj, ri = np.nonzero((d > 0) & (d <= VESSEL_RING_MM))
    ang = np.arctan2((rj - jj.mean()) * sj, (ri - ii.mean()) * si)
    sector = ((ang + np.pi) / (2 * np.pi) * 8).astype(int) % 8
    n = np.bincount(sector, minlength=8)
    f = np.bincount(sector, weights=fat[rj, ri].astype(float), minlength=8)
    return int(((n > 0) & (f >= 0.2 * n)).sum()) >= VESSEL_RING_SECTORS


def segment_leg_slice(
    sl: np.ndarray,
    leg: np.ndarray,
    femur: np.ndarray,
    femur_xy: tuple[float, float],
    x: np.ndarray,
    y: np.ndarray,
    side: str,
    spacing_ij: tuple[float, float],
    fat_bright: bool,
    level: float | None = None,
    rotation_deg: float = 0.0,
) -> LegSlice:
    """Split one leg's muscle compartment into muscle groups.

    The same as :func:`segment_leg_slice_turned` with the one rotation ``rotation_deg``
    (see there for the parameters).
    """
    (out,) = segment_leg_slice_turned(
        sl, leg, femur, femur_xy, x, y, side, spacing_ij, fat_bright, level, (rotation_deg,)
    )
    return out


def segment_leg_slice_turned(
    sl: np.ndarray,
    leg: np.ndarray,
    femur: np.ndarray,
    femur_xy: tuple[float, float],
    x: np.ndarray,
    y: np.ndarray,
    side: str,
    spacing_ij: tuple[float, float],
    fat_bright: bool,
    level: float | None = None,
    rotations_deg: Sequence[float] = (0.0,),
) -> list[LegSlice]:
    """Split one leg's muscle compartment into muscle groups, once per leg rotation.

    Fascia, ridge and fat maps do not depend on the rotation: they are computed once and
    only the seeds, the watershed and the rules after it are redone per rotation.

    Parameters
    ----------
    sl : ndarray (j, i)
        Slice intensities.
    leg, femur : ndarray of bool (j, i)
        The leg's cross-section and its femur. Pass a crop with a margin of background
        round the leg: where the leg touches the array's border it is taken as cut off by
        the image's field of view (no skin seen there).
    femur_xy : (float, float)
        LPS centre of the femur (mm).
    x, y : ndarray (j, i)
        LPS coordinates of the pixels (mm).
    side : {"R", "L"}
        Patient side of the leg (sets the lateral direction).
    spacing_ij : (float, float)
        Column and row spacing (mm).
    fat_bright : bool
        True for T1-like contrasts (fat bright), False for fat-suppressed ones.
    level : float, optional
        Relative level of the slice along the femoral shaft (0 distal, 1 proximal);
        ``None`` uses the mid-thigh seed model.
    rotations_deg : sequence of float
        Rotations of the leg about the femur (degrees, positive = the front of the thigh
        turned laterally, i.e. external rotation): each turns the seed model and the
        medial septum limit with it.

    Returns
    -------
    list of LegSlice
        One per rotation, in the order given.
    """
    si, sj = spacing_ij
    px = min(si, sj)
    dx = x - femur_xy[0]
    dy = y - femur_xy[1]
    lat_sign = -1.0 if side == "R" else 1.0  # patient right is toward -x in LPS
    ant = -dy  # anterior is -y in LPS
    lat = lat_sign * dx
    theta = np.degrees(np.arctan2(lat, ant))
    r = np.hypot(dx, dy)
    bins = ((theta + 180.0) / 360.0 * N_BINS).astype(int) % N_BINS

    sm = ndi.gaussian_filter(sl.astype(np.float32), sigma=(0.8 / sj, 0.8 / si))
    soft = leg & ~femur
    vals = sm[soft]
    # Fat vs muscle levels of this leg: the subcutaneous fat is the layer just under the
    # skin (3-7 mm deep: below the blurred skin edge, within the fat layer of all but the
    # leanest thighs); the deep thigh (>20 mm) is mostly muscle, but partly fatty or
    # fat-replaced, so its upper quartile stands for muscle (on T1: lower quartile).
    # A pixel is muscle-like from MUSCLE_LIKE_FRAC of the way from fat to muscle on.
    depth = ndi.distance_transform_edt(leg, sampling=(sj, si))
    ring = soft & (depth >= SUBCUT_RING_MM[0]) & (depth <= SUBCUT_RING_MM[1])
    deep = soft & (depth > 20.0)
    fat_level = mus_level = None
    if ring.sum() > 20 and deep.sum() > 20:
        fat_level = float(np.median(sm[ring]))
        mus_level = float(np.percentile(sm[deep], 25 if fat_bright else 75))
        t = fat_level + MUSCLE_LIKE_FRAC * (mus_level - fat_level)
        contrast = abs(mus_level - fat_level)
    else:
        t = float(filters.threshold_otsu(vals)) if vals.size > 10 else float(np.median(sm))
        contrast = float(np.ptp(np.percentile(vals, [10, 90]))) if vals.size > 10 else 1.0
    muscle_like = (sm > t) if not fat_bright else (sm < t)
    muscle_like &= soft

    # Thin dark lines (Hessian scales 0.7 and 1.4 mm): the deep fascia (find_fascia) and,
    # on fat-suppressed images, the intermuscular septa of the watershed below.
    norm = sm / max(float(np.percentile(vals, 99)), 1e-6) if vals.size else sm
    sig = [s / px for s in (0.7, 1.4)]
    dark_lines = filters.sato(norm, sigmas=sig, black_ridges=True, mode="reflect")
    fascia = find_fascia(sm, leg, femur, muscle_like, dark_lines, femur_xy, x, y, lat_sign, r,
                         bins, (si, sj), contrast, fat_bright)  # fmt: skip
    inside, r_fem, r_fascia, soft = fascia.inside, fascia.r_fem, fascia.r_fascia, fascia.soft
    u = np.clip((r - r_fem[bins]) / np.maximum(r_fascia[bins] - r_fem[bins], 1.0), 0.0, 1.5)
    # Seed angles: the femur sits eccentric in the thigh, by an amount that differs
    # between subjects and legs, and an off-centre femur turns every muscle's angle seen
    # from it. Measuring the angles from a point moved part of the way from the femur
    # toward the centre of the muscle compartment cancels part of that; the femur stays
    # the main anchor because the heads are defined by their attachment around it.
    if inside.any():
        cx = femur_xy[0] + FRAME_SHIFT * (float(x[inside].mean()) - femur_xy[0])
        cy = femur_xy[1] + FRAME_SHIFT * (float(y[inside].mean()) - femur_xy[1])
        theta = np.degrees(np.arctan2(lat_sign * (x - cx), -(y - cy)))

    # Elevation: thin fat septa between muscles (dark ridges on fat-suppressed images,
    # bright on T1-like ones), 1-3 mm wide (Hessian scales 0.7 and 1.4 mm).
    if fat_bright:
        # The femur is no septum, but the step from its void cortex up to muscle makes a
        # bright-ridge filter answer on the muscle side (a dark-ridge filter answers on
        # the bone side, which is masked): a ring a few mm wide that walls the vastus
        # intermedius in. Fill the bone and its partial-volume rim with the muscle level.
        bone = ndi.binary_dilation(femur, iterations=max(1, int(round(1.0 / px))))
        filled = norm.copy()
        if (soft & muscle_like).any():
            filled[bone] = float(np.median(norm[soft & muscle_like]))
        ridge = filters.sato(filled, sigmas=sig, black_ridges=False, mode="reflect")
    else:
        ridge = dark_lines
    ridge[~inside] = 0
    ridge = ridge / max(float(np.percentile(ridge[inside], 99)), 1e-6) if inside.any() else ridge
    # Fat itself is a border too (broad intermuscular fat pads), in proportion to how
    # fat-like it is: a partly fat-replaced muscle is less of a border than fat.
    if fat_level is not None and mus_level != fat_level:
        fatness = _fat_elevation(sm, fat_level, mus_level)
    else:
        fatness = (~muscle_like).astype(np.float32) * W_FAT
    elev = ridge + fatness
    # Septa broken on this slice are closed where their ends point at each other, and
    # those that fade out are carried on to what they point at.
    links, extensions = septum_gap_links(ridge, inside, px)
    for jj, ii in links:
        elev[jj, ii] = np.maximum(elev[jj, ii], LINK_ELEV)
    for jj, ii in extensions:
        elev[jj, ii] = np.maximum(elev[jj, ii], EXTEND_ELEV)

    return [
        _partition(elev, inside, theta, u, level, rot, muscle_like, ridge, sm, fat_bright, (si, sj))
        for rot in rotations_deg
    ]


def _fat_elevation(sm: np.ndarray, fat_level: float, mus_level: float) -> np.ndarray:
    """Watershed elevation from fat: W_FAT at up to FAT_RAMP[0] of the way from the fat
    level to the muscle level, 0 from FAT_RAMP[1] on, linear between (either contrast:
    the fraction is measured from fat toward muscle, whichever is brighter)."""
    frac = (sm - fat_level) / (mus_level - fat_level)
    lo, hi = FAT_RAMP
    return np.clip((hi - frac) / (hi - lo), 0.0, 1.0).astype(np.float32) * W_FAT


def _main_pieces(seed: np.ndarray, septum: np.ndarray, min_share: float) -> np.ndarray:
    """The pieces of ``seed`` (bool, (j, i)) that septum pixels cut it into (4-connected)
    holding at least ``min_share`` of its pixels (the largest piece always); ``seed``
    itself where no septum cuts it."""
    pieces, n = ndi.label(seed & ~septum)
    if n <= 1:
        return seed
    sizes = np.bincount(pieces.ravel())
    sizes[0] = 0
    keep = sizes >= min(min_share * sizes.sum(), sizes.max())
    keep[0] = False
    return keep[pieces]


def _partition(
    elev: np.ndarray,
    inside: np.ndarray,
    theta: np.ndarray,
    u: np.ndarray,
    level: float | None,
    rotation_deg: float,
    muscle_like: np.ndarray,
    ridge: np.ndarray,
    sm: np.ndarray,
    fat_bright: bool,
    spacing_ij: tuple[float, float],
) -> LegSlice:
    """Seeds of the (turned) model, watershed on ``elev`` and the rules after it."""
    si, sj = spacing_ij
    markers = np.zeros(inside.shape, dtype=np.int32)
    septum = ~muscle_like & (ridge > SEPTUM_RIDGE)
    # Seeds are cut by the septa and by every wall at least as high as a closed septum gap
    # (a link, or a strong ridge over fat).
    seed_cut = septum | (elev >= LINK_ELEV)
    for n, (_, (t0, t1), (u0, u1)) in enumerate(marker_model(level), start=1):
        if t1 >= t0:  # (an empty range stays empty)
            t0, t1 = t0 + rotation_deg, t1 + rotation_deg
        m = inside & (u >= u0) & (u <= u1)
        # the sector from t0 to t1 (degrees), wherever it crosses +-180
        m &= ((theta - t0) % 360.0 <= t1 - t0) if t1 >= t0 else False
        markers[_main_pieces(m, seed_cut, SEED_MIN_PIECE)] = n
    groups = segmentation.watershed(
        elev, markers=markers, mask=inside, compactness=COMPACTNESS_MM * min(si, sj)
    )
    # VM's posterior limit is the medial intermuscular septum (VM / adductors), which
    # leaves the femur's medial lip of the linea aspera postero-medially; VM does not
    # wrap further back than that where the watershed finds no septum (nor round the
    # back of the femur to the lateral side).
    vm, add = GROUPS.index("VM") + 1, GROUPS.index("ADD") + 1
    turned = (theta - rotation_deg + 180.0) % 360.0 - 180.0
    groups[(groups == vm) & (np.abs(turned) > -vm_posterior_limit(level))] = add
    far = (groups == vm) & (u > vm_depth_limit(level))
    other = (groups > 0) & (groups != vm)
    if far.any() and other.any():
        _, (jj, ii) = ndi.distance_transform_edt(~other, return_indices=True)
        groups[far] = groups[jj[far], ii[far]]
    # VL beyond its depth cap at the top of the shaft is TFL / gluteus maximus (off the map).
    vl, gmax = GROUPS.index("VL") + 1, GROUPS.index("GMAX") + 1
    groups[(groups == vl) & (u > vl_depth_limit(level))] = gmax
    # VM's seed above its highest level sits in the iliopsoas: off the map as well.
    if level is not None and level >= VM_MAX_LEVEL:
        groups[groups == vm] = gmax
    both = np.zeros(groups.shape, dtype=bool)
    for shift in ((0, 1), (1, 0)):
        nb = np.roll(groups, shift, axis=(0, 1))
        both |= (nb != groups) & (nb > 0) & (groups > 0)
    border_elevation, border_pixels = float(elev[both].sum()), int(both.sum())
    # The septa themselves are fat, not muscle: thin fat-like ridges on a group's border
    # (the watershed runs along a septum's middle, so its 1-3 mm width lies within
    # SEPTUM_BAND_MM of the border) leave the labels. The same ridge inside a group is the
    # muscle's own aponeurosis or a streak of fat infiltration, which every reference
    # outline includes (real case: 0.35-0.7k such voxels inside each RF; the 8
    # perturbed copies +.009..+.021 each, generated studies -.003). Broad dark areas
    # (fat-replaced muscle) have little ridge response and stay.
    # (``septum``: the fat-like ridges found for the seeds above.)
    if septum.any():
        edge = both.copy()  # borders between two groups, and the groups' outer edge
        for shift in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            edge |= (np.roll(groups, shift, axis=(0, 1)) == 0) & (groups > 0)
        # Within SEPTUM_BAND_MM of the border: a dilation by that ellipse of pixels (the
        # same set as a distance map's, at a third of its cost in the rotation search).
        ry, rx = int(SEPTUM_BAND_MM / sj), int(SEPTUM_BAND_MM / si)
        oy, ox = np.mgrid[-ry : ry + 1, -rx : rx + 1]
        disk = (oy * sj) ** 2 + (ox * si) ** 2 <= SEPTUM_BAND_MM**2
        septum &= ndi.binary_dilation(edge, structure=disk)
    groups[septum] = 0
    groups[_canal_vessels(sm, groups, (si, sj), fat_bright)] = 0
    return LegSlice(
        groups=groups.astype(np.int32),
        inside_fascia=inside,
        theta=theta,
        u=u,
        border_elevation=border_elevation,
        border_pixels=border_pixels,
    )
