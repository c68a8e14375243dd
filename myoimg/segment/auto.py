"""Automatic quadriceps segmentation of axial thigh MRI (classical, no trained model).

Pipeline (every step works slice by slice, because slice gaps can be 1-25 mm):

1. body mask (threshold relative to the image's own air/tissue split);
2. femur on each slice (round signal void, marrow filled), made consistent along z by
   fitting one straight track per femur (the shaft is straight over the thigh);
3. legs: body pixels assigned to their femur; sides from LPS geometry (patient right is
   toward -x);
4. per leg: subcutaneous fat profile -> muscle fascia; a polar compartment model around
   the femur gives seeds for VI, VL, RF, VM, adductors and hamstrings; a watershed on a
   fat-septum ridge map moves the borders onto the intermuscular septa;
5. labels made consistent across neighbouring slices (thin slices only), and each
   muscle's edge voxels that are more fat than muscle by signal left out
   (:func:`trim_fat_rim`).

Coordinates: SimpleITK image in LPS; arrays are (k, j, i).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from skimage import segmentation

from ..errors import SegmentationError
from ..labels import BY_NAME
from .bias import n4_correct
from .compartments import GROUPS, segment_leg_slice_turned
from .contrast import detect_contrast, normalise_contrast
from .denoise import NOISY, denoise, relative_noise
from .femur import MIN_FEMUR_SEPARATION_MM, FemurCandidate, find_femurs
from .qc import save_qc_png
from .thigh import (
    SUBCUT_RING_MM,
    body_mask,
    from_lps_storage,
    slice_grid_lps,
    to_lps_storage,
)
from .threads import thread_map

__all__ = [
    "SegmentationResult",
    "segment_thigh",
    "detect_contrast",
    "save_qc_png",
    "smooth_borders",
    "trim_fat_rim",
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
# Muscle borders move by < ~1 mm per mm along the thigh (muscles are long and run nearly
# parallel to the femur); with slices up to 6 mm apart, a label that disagrees with both
# neighbours is more likely noise than anatomy.
Z_SMOOTH_MAX_SPACING_MM = 6.0
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
# Leg rotation search: candidate turns of the seed model (degrees; supine legs lie up to
# ~20-30 deg externally rotated), on this many slices spread along each leg; a turn is
# taken only if its borders' mean septum evidence beats the neutral model's by this
# fraction (on unrotated generated studies and the real development case the best wrong
# turn gained <= 9 %; a true 15 deg turn gains >= 22 %). Eight slices rather than four:
# the septum evidence of a few slices tips either way (generated studies turned +-10 deg:
# mean Dice .876 with four, .884 with eight; the searched slices' splits are reused, so
# the cost is a few tenths of a second).
ROTATION_CANDIDATES_DEG = tuple(float(a) for a in range(-20, 21, 5))
ROTATION_SLICES = 8
ROTATION_MIN_GAIN = 0.15
# Patient roll (turned about the body's long axis on the table, or an image turned in
# plane): the two femoral shafts of a supine patient lie side by side, so the line from
# the right femur to the left one runs along the patient's left direction, and its tilt
# in the image is the roll. The seed model's frame (anterior, lateral) turns with it.
# The femurs also sit at different depths within their legs by a few mm, which tilts the
# line without any roll (the real case: -0.7 deg; generated studies: -4..+2 deg; the
# sample study's lines -3.3 / -5.4 deg on true rolls of -0.8 / -2.4 deg): the model is
# turned by the tilt beyond this much (degrees), none below it. (Turning by the whole
# tilt from 3 deg on cost the sample study .815 -> .799 and .872 -> .856.)
ROLL_NOISE_DEG = 3.0


@dataclass
class SegmentationResult:
    """Output of :func:`segment_thigh`.

    Attributes
    ----------
    labels : SimpleITK.Image
        uint8 label map on exactly the input grid (myoimg label ids, 0 = background).
    contrast : str
        Contrast family used, ``"fatsup"`` or ``"t1"``.
    contrast_name : str
        User-facing name of the contrast ("fat-suppressed (STIR/T2-FS/water)" or
        "fat-bright (T1/fat/in-phase)").
    contrast_reason : str
        Why this family was chosen (header attribute, image test, or user choice).
    sides : tuple of str
        Patient sides segmented, among ("R", "L").
    messages : list of str
        Notes for the user (missing femur on some slices, one-leg decisions, ...).
    warnings : list of str
        Findings that make some labels less reliable (a thigh cut by the edge of the
        field of view); also worth showing next to the numbers derived from the labels.
    steps : dict of str -> SimpleITK.Image
        Intermediate results for quality control, all on the input grid: ``prepared``
        (float32: the image the steps ran on, after the N4 bias-field correction and,
        for noisy scans, edge-preserving smoothing), ``thigh`` (1 right leg, 2 left
        leg), ``femur``, ``muscle`` (inside the muscle fascia), ``compartments`` (group
        index + 1 in the order of ``GROUPS``, 0 elsewhere); see
        :func:`myoimg.segment.qc.save_steps_png`.
    roll_deg : float
        Patient roll the muscle model was turned by (degrees, LPS x toward y): the tilt of
        the line from the right femur to the left one less ``ROLL_NOISE_DEG``; 0 under
        it or with one leg.
    """

    labels: sitk.Image
    contrast: str
    contrast_name: str
    contrast_reason: str
    sides: tuple[str, ...]
    messages: list[str] = field(default_factory=list)
    steps: dict[str, sitk.Image] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    roll_deg: float = 0.0


_FAMILY_NAME = {
    "fatsup": "fat-suppressed (T2-FS/STIR/water)",
    "t1": "fat-bright (T1/fat/in-phase)",
}


def _check_input(image) -> tuple[sitk.Image, list[int], list[bool]]:
    """Refuse what cannot be segmented; return :func:`to_lps_storage` of the image."""
    if not isinstance(image, sitk.Image):
        raise SegmentationError(f"expected a SimpleITK.Image, got {type(image).__name__}")
    if image.GetDimension() != 3:
        raise SegmentationError(
            f"automatic segmentation needs a 3-D image (axial slices); got a "
            f"{image.GetDimension()}-D image"
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise SegmentationError("automatic segmentation needs a scalar (grey-level) image")
    restored = to_lps_storage(image)
    if restored is None:
        d = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
        raise SegmentationError(
            "no image axis runs along the body (LPS z): the volume's axes are "
            f"{np.round(d.T, 2).tolist()} in LPS; thigh segmentation needs axial slices, or "
            "a volume that can be re-stacked into them (e.g. 3-D coronal or sagittal)"
        )
    size = restored[0].GetSize()[:2]  # columns and rows of the axial slices
    if min(size) < 32:
        raise SegmentationError(f"image too small in-plane ({size[0]}x{size[1]} pixels)")
    return restored


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


def _femur_tracks(
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


def _shaft_levels(
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


def _fill_track_gaps(
    picks, tracks, body, grids, spacing_ij, dz: float, detected, shaft=None
) -> int:
    """Put a femur where a track misses one: inside its run, or a few mm past its ends.

    The shaft is straight, so the fitted line predicts its centre; its radius is the
    track's median. Past the ends only up to EXTRAPOLATE_MM (the shaft does not stop
    abruptly, but the knee and hip are not shaft), or up to PAIRED_EXTRAPOLATE_MM over
    slices where the other leg's femur is detected; only where the predicted centre is
    deep inside the body. ``detected`` lists, per track, the slices where its femur was
    found (before any filling); ``shaft``, per track, slices its shaft is taken to cover
    (see _shaft_levels), filled as well.
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


def _side_of_single_leg(
    leg_xy: tuple[float, float], femur_xy: tuple[float, float], messages: list[str]
) -> str:
    """Patient side of the only leg in the field of view, from LPS geometry."""
    x_leg = leg_xy[0]
    # The scanner isocentre (x = 0 in LPS) is on the table's midline, where the patient
    # lies: a leg centred more than 2 cm toward -x is the patient's right leg.
    if abs(x_leg) > 20.0:
        side = "R" if x_leg < 0 else "L"
        messages.append(
            f"one leg only in the field of view: its centre is at LPS x = {x_leg:.0f} mm, "
            f"on the patient's {'right' if side == 'R' else 'left'} of the scanner isocentre; "
            f"labelled as the {'right' if side == 'R' else 'left'} leg"
        )
        return side
    # Near the isocentre: the femoral shaft lies lateral to the thigh's soft-tissue centre
    # (the adductor mass makes the medial thigh bulky), so the femur offset points lateral.
    off = femur_xy[0] - x_leg
    side = "R" if off < 0 else "L"
    messages.append(
        "one leg only, centred on the scanner isocentre: side guessed from the femur lying "
        f"{abs(off):.0f} mm toward {'-x' if off < 0 else '+x'} of the thigh centre (femur is "
        f"lateral); labelled as the {'right' if side == 'R' else 'left'} leg - check it"
    )
    return side


#: Edge voxels of a muscle with less than this fraction of the way from fat's signal to
#: the muscle's own are left out (see :func:`trim_fat_rim`): the partial-volume midpoint.
RIM_FAT_FRACTION = 0.5
#: ... only where fat's signal differs from the muscle's by at least this fraction of the
#: larger of the two (STIR fat is at 0.1-0.3 of muscle, T1 muscle at 0.3-0.5 of fat).
RIM_MIN_CONTRAST = 0.6
#: ... judged against the muscle's signal just inside the edge voxel: the mean of its
#: interior (non-edge) voxels within a window this wide (mm; an odd number of pixels), not
#: the muscle's median, which lies between the healthy and the oedematous level of a
#: partly inflamed muscle. Against the median, a voxel half cortex (or fat) and half
#: oedema stayed in the label and counted as oedema (the generated studies' vastus
#: intermedius kept ~1k such voxels on its femur side: baseline oedema +0.03 on
#: average with automatic labels, +0.00 with the true ones). Development studies (Dice)
#: .9120 -> .9132 (3.3 / 7.7 mm: .9127 / .9134); their baseline oedema within 0.05 for
#: 41 -> 42 of 48 heads, the intermedius' errors 0.01 lower; real case unchanged (its
#: fat is too close to muscle for the trim, RIM_MIN_CONTRAST).
RIM_LOCAL_MM = 5.0
#: ... and peeled this deep (mm) from every border of the label, to another muscle's as
#: well as to unlabelled voxels: a fat septum (1-3 mm) or fat pad between two muscles
#: lies inside the watershed's labels, half in each, and is not muscle in any reference
#: outline. Edge voxels that are fat leave, then the new edge is judged, and so on.
#: Development studies (Dice) .9093 -> .9193 (one voxel deep, outer edges only, as
#: before; one voxel, all borders: .9130; 6.5 mm: .9211); real case unchanged (its fat is
#: too close to muscle for the trim). Deeper would start eating fat-replaced parts of a
#: muscle that reach its edge, which belong to its outline.
RIM_DEPTH_MM = 3.0


def segment_thigh(
    image: sitk.Image,
    *,
    contrast: str = "auto",
    header=None,
    progress: Callable[[str, float], None] | None = None,
    bias_correct: bool = True,
) -> SegmentationResult:
    """Segment the quadriceps heads (and neighbouring muscle groups) of both thighs.

    Parameters
    ----------
    image : SimpleITK.Image
        3-D scalar image in LPS with axial slices (any in-plane size and spacing), or a
        volume one of whose axes runs along the body (e.g. 3-D coronal): it is re-stacked
        into axial slices (no resampling) and the results returned on its grid.
    contrast : str
        ``"auto"`` (header, then image), a family (``"fatsup"``, ``"t1"``) or a name such
        as ``"stir"``, ``"t2fs"``, ``"water"``, ``"dixon_fat"``, ``"inphase"``.
    header : pydicom.Dataset, optional
        First header of the series, used by ``contrast="auto"``.
    progress : callable(step: str, fraction: float), optional
        Called with a step name and the fraction done (0-1).
    bias_correct : bool
        Divide the image by its N4 bias field (:func:`myoimg.segment.bias.n4_correct`,
        fitted inside the body outline) before anything else: coil shading makes one
        side of a thigh darker, and the fat/muscle levels are set per leg.

    Returns
    -------
    SegmentationResult
        Labels on the input grid: 1 R_VL, 2 R_VM, 3 R_VI, 4 R_RF, 5-8 the same on the
        left; 13/17 adductors and 14/18 hamstrings where found; 0 elsewhere.

    Raises
    ------
    SegmentationError
        Wrong dimensionality, no image axis along the body (oblique by more than ~37 deg),
        or no femur found on most slices (the series is not a thigh).
    """
    lps, order, flips = _check_input(image)
    if lps is not image:
        # A volume stored another way (a 3-D coronal or sagittal acquisition, axial
        # slices written column-major, a converter's RAS NIfTI, slices head to foot): its
        # voxels re-stacked into axial slices in LPS order, without resampling, so that
        # every storage of one scan is segmented from the same array; results on the
        # input grid.
        res = segment_thigh(
            lps, contrast=contrast, header=header, progress=progress, bias_correct=bias_correct
        )
        res.labels = from_lps_storage(res.labels, order, flips, image)
        res.steps = {k: from_lps_storage(v, order, flips, image) for k, v in res.steps.items()}
        how = []
        if order != [0, 1, 2]:
            how.append(f"in axis order {order} (body axis {order[2]})")
        if any(flips):
            names = [n for n, f in zip(("columns", "rows", "slices"), flips, strict=True) if f]
            listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
            how.append(f"with its {listed} running opposite to LPS")
        res.messages.insert(
            0,
            f"volume stored {' and '.join(how)}: its voxels were re-stacked into axial "
            "slices in LPS order (columns toward the patient's left, rows toward the back, "
            "slices toward the head; no resampling); labels are on the input grid",
        )
        return res

    def report(step: str, frac: float) -> None:
        if progress is not None:
            progress(step, frac)

    messages: list[str] = []
    arr = sitk.GetArrayFromImage(image).astype(np.float32)
    arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    nz = arr.shape[0]
    sp = image.GetSpacing()
    spacing_ij = (float(sp[0]), float(sp[1]))
    body = body_mask(arr, spacing_ij)  # also the contrast check's (one outline, not two)

    if contrast == "auto":
        family, reason = detect_contrast(image, header, body=body)
    else:
        try:
            family = normalise_contrast(contrast)
        except ValueError as exc:
            raise SegmentationError(str(exc)) from None
        reason = f"chosen by the user ({contrast})"
    fat_bright = family == "t1"
    report("contrast", 0.05)

    if bias_correct and body.any():
        raw = sitk.GetImageFromArray(np.maximum(arr, 0.0))
        raw.CopyInformation(image)
        mask = sitk.GetImageFromArray(body.astype(np.uint8))
        mask.CopyInformation(image)
        arr = sitk.GetArrayFromImage(n4_correct(raw, mask))
        messages.append("N4 bias-field correction inside the body outline")
        # Shading can push a dark side's skin and fat below the air threshold: outline
        # the body again on the corrected image.
        body = body_mask(arr, spacing_ij)
    noise = relative_noise(arr, body)
    if noise > NOISY:
        noisy = sitk.GetImageFromArray(arr)
        noisy.CopyInformation(image)
        arr = sitk.GetArrayFromImage(denoise(noisy))
        messages.append(
            f"image noise {100 * noise:.0f} % of the tissue signal (more than "
            f"{100 * NOISY:.1f} %): smoothed with edge-preserving anisotropic diffusion "
            "for the segmentation only (intensities are measured on the original image)"
        )
    report("body", 0.15)

    grids = [slice_grid_lps(image, k) for k in range(nz)]
    cands = list(
        thread_map(
            lambda k: find_femurs(arr[k], body[k], spacing_ij, *grids[k], fat_bright=fat_bright),
            range(nz),
        )
    )
    report("femur", 0.35)
    tracks, picks = _femur_tracks(cands, nz, float(sp[2]))
    found = [any(p[k] is not None for p in picks) for k in range(nz)]
    n_found = int(sum(found))
    if n_found == 0 or n_found < 0.5 * nz:
        # The femur search depends on the contrast family (marrow dark or bright): a
        # family decided from the image alone may be the cause.
        hint = (
            f"; the contrast was taken as {_FAMILY_NAME[family]} ({reason}): if that is "
            f"wrong, give contrast={'t1' if family == 'fatsup' else 't2fs'} (--contrast)"
            if contrast == "auto" and reason.startswith("image")
            else ""
        )
        raise SegmentationError(
            f"this series does not look like a thigh: a femur was found on {n_found} of {nz} "
            f"slices (need at least half); check the series (axial thigh MRI expected){hint}"
        )
    # Where the femur is seen, not filled in: the paired fill and the level model's shaft ends.
    detected = [[k for k in range(nz) if p[k] is not None] for p in picks]
    # LPS z of each slice (grows toward the head).
    zs = np.array(
        [image.TransformContinuousIndexToPhysicalPoint((0.0, 0.0, float(k)))[2] for k in range(nz)]
    )
    # Sides: two femur tracks -> the one toward -x is the patient's right (from the femurs
    # seen; the fill below only adds points on each track's own straight line).
    order = np.argsort([np.mean([c.centre_xy[0] for c in p if c is not None]) for p in picks])
    names = [("right", "left")[int(r)] for r in np.argsort(order)]  # per track
    shaft_ends, track_levels, level_guessed = _shaft_levels(zs, detected, names, messages)
    n_filled = _fill_track_gaps(
        picks, tracks, body, grids, spacing_ij, float(sp[2]), detected,
        [[k for k in range(nz) if lo <= zs[k] <= hi] for lo, hi in shaft_ends],
    )
    if n_filled:
        messages.append(
            f"femur position interpolated along its straight track on {n_filled} slice(s) "
            "where it was not detected"
        )
    found = [any(p[k] is not None for p in picks) for k in range(nz)]
    n_found = int(sum(found))
    if n_found < nz:
        missing = [k for k in range(nz) if not found[k]]
        messages.append(
            f"no femur on slice(s) {missing} (e.g. above the femoral shaft or below the "
            "knee): these slices are not segmented"
        )

    picks = [picks[n] for n in order]  # per side (R, L), see names above
    labels = np.zeros(arr.shape, dtype=np.uint8)
    thigh = np.zeros(arr.shape, dtype=np.uint8)
    femur_mask = np.zeros(arr.shape, dtype=np.uint8)
    muscle = np.zeros(arr.shape, dtype=np.uint8)
    comps = np.zeros(arr.shape, dtype=np.uint8)

    roll = _roll(picks)
    if roll:
        tilt = np.degrees(roll) + np.sign(roll) * ROLL_NOISE_DEG
        messages.append(
            f"patient roll: the line between the femurs tilts {tilt:+.1f} deg; the muscle "
            f"model is turned {np.degrees(roll):+.1f} deg (the tilt beyond {ROLL_NOISE_DEG:.0f} "
            "deg of left-right asymmetry)"
        )
    if len(picks) == 2:
        sides = ("R", "L")
        # A leg whose femur is missed where the other leg's is found would be left out of
        # those slices without a word: say so.
        for n, name in enumerate(("right", "left")):
            only_other = [
                k for k in range(nz) if picks[n][k] is None and picks[1 - n][k] is not None
            ]
            if only_other:
                messages.append(
                    f"{name} femur not found on slice(s) {only_other} where the other one is: "
                    f"the {name} leg is not segmented there"
                )
    else:
        k_mid = [k for k in range(nz) if picks[0][k] is not None]
        leg_x = []
        for k in k_mid:
            x, _ = grids[k]
            if body[k].any():
                leg_x.append(float(x[body[k]].mean()))
        fem_x = float(np.mean([picks[0][k].centre_xy[0] for k in k_mid]))
        sides = (_side_of_single_leg((float(np.mean(leg_x)), 0.0), (fem_x, 0.0), messages),)

    coefs = [tracks[n] for n in order]
    levels = [track_levels[n] for n in order]  # per side, see _shaft_levels

    def leg_slices(k: int, side: str, fem: FemurCandidate, rotations: tuple[float, ...]):
        """This leg's cross-section on slice k, its femur mask, bounding box and groups
        (one LegSlice per rotation); None where the leg is too small."""
        x, y = grids[k]
        comp_lab, _ = _label(body[k])
        leg = body[k] & (comp_lab == comp_lab[fem.mask].max())
        if len(sides) == 2:
            # Legs touching: split along the perpendicular bisector of the two femurs
            # (the other femur from its straight track when not detected here).
            n_other = 1 - sides.index(side)
            other = picks[n_other][k]
            b = (
                np.array(other.centre_xy)
                if other is not None
                else np.array([np.polyval(coefs[n_other][c], k) for c in range(2)])
            )
            a = np.array(fem.centre_xy)
            d = b - a
            proj = (x - (a[0] + b[0]) / 2) * d[0] + (y - (a[1] + b[1]) / 2) * d[1]
            leg &= proj < 0
        if leg.sum() < 10:
            return None
        fmask = fem.mask & leg
        # Work on the leg's bounding box only (filters cost grows with the area).
        jj, ii = np.nonzero(leg)
        pad = 8
        bb = (
            slice(max(0, jj.min() - pad), min(leg.shape[0], jj.max() + pad + 1)),
            slice(max(0, ii.min() - pad), min(leg.shape[1], ii.max() + pad + 1)),
        )
        if roll:
            # LPS coordinates turned by -roll about the femur: the femur line runs
            # along +x, anterior along -y again (the compartment model's frame).
            fx, fy = fem.centre_xy
            c, s_ = np.cos(roll), np.sin(roll)
            x, y = fx + c * (x - fx) + s_ * (y - fy), fy - s_ * (x - fx) + c * (y - fy)
        res = segment_leg_slice_turned(
            arr[k][bb],
            leg[bb],
            fmask[bb],
            fem.centre_xy,
            x[bb],
            y[bb],
            side,
            spacing_ij,
            fat_bright,
            level=float(levels[sides.index(side)][k]),
            rotations_deg=rotations,
        )
        return leg, fmask, bb, res

    # Leg rotation (a supine leg often lies turned outward): the seed model turned by
    # each candidate angle on a few slices; the angle whose group borders lie on septa
    # (highest mean elevation along them) wins if it beats the neutral model clearly.
    rotations = {}
    search_ks = {}
    for n_side, side in enumerate(sides):
        ks = [k for k in range(nz) if picks[n_side][k] is not None]
        search_ks[side] = [
            ks[i] for i in np.linspace(0, len(ks) - 1, min(ROTATION_SLICES, len(ks))).astype(int)
        ]
    # Jobs are (side, k, femur); (side, k) -> leg_slices output of the search slices,
    # kept for reuse.
    jobs = [(side, k, p[k]) for side, p in zip(sides, picks, strict=True) for k in search_ks[side]]
    splits = thread_map(lambda j: leg_slices(j[1], j[0], j[2], ROTATION_CANDIDATES_DEG), jobs)
    searched = {(side, k): out for (side, k, _), out in zip(jobs, splits, strict=True)}
    for n_side, side in enumerate(sides):
        e = np.zeros(len(ROTATION_CANDIDATES_DEG))
        n = np.zeros(len(ROTATION_CANDIDATES_DEG))
        for k in search_ks[side]:
            out = searched[(side, k)]
            if out is not None:
                e += [r.border_elevation for r in out[3]]
                n += [r.border_pixels for r in out[3]]
        mean = np.where(n > 0, e / np.maximum(n, 1), 0.0)
        score = dict(zip(ROTATION_CANDIDATES_DEG, mean.tolist(), strict=True))
        best = max(score, key=score.get)
        rotations[side] = best if score[best] > (1.0 + ROTATION_MIN_GAIN) * score[0.0] else 0.0
        report("leg rotation", 0.35 + 0.15 * (n_side + 1) / len(sides))
    messages.append(
        "leg rotation (seed model turned to fit the septa; + is external): "
        + ", ".join(f"{s} {rotations[s]:+.0f} deg" for s in sides)
    )

    def store(k: int, side: str, leg, fmask, bb, res) -> None:
        # The two legs' masks are disjoint, so the order of the slices does not matter.
        thigh[k][leg] = 1 if side == "R" else 2
        femur_mask[k][fmask] = 1
        muscle[k][bb][res.inside_fascia] = 1
        comps[k][bb][res.groups > 0] = res.groups[res.groups > 0]
        for g, group in enumerate(GROUPS, start=1):
            if f"{side}_{group}" not in BY_NAME:  # a muscle we do not label
                continue
            labels[k][bb][res.groups == g] = BY_NAME[f"{side}_{group}"].id

    # The search already split its slices at every turn: keep the chosen turn's split.
    for (side, k), out in searched.items():
        if out is not None:
            leg, fmask, bb, all_turns = out
            turn = ROTATION_CANDIDATES_DEG.index(rotations[side])
            store(k, side, leg, fmask, bb, all_turns[turn])
    jobs = [
        (side, k, p[k])
        for k in range(nz)
        for side, p in zip(sides, picks, strict=True)
        if p[k] is not None and (side, k) not in searched
    ]
    splits = thread_map(lambda j: leg_slices(j[1], j[0], j[2], (rotations[j[0]],)), jobs)
    for n, ((side, k, _), out) in enumerate(zip(jobs, splits, strict=True)):
        report("compartments", 0.5 + 0.45 * n / max(len(jobs), 1))
        if out is not None:
            leg, fmask, bb, (res,) = out
            store(k, side, leg, fmask, bb, res)
    if sp[2] <= Z_SMOOTH_MAX_SPACING_MM and nz >= 3:
        labels = _z_majority(labels, muscle > 0)
        messages.append(
            f"slices {sp[2]:.1f} mm apart: labels made consistent across neighbouring slices"
        )
    labels, n_trim = trim_fat_rim(labels, arr, thigh > 0, fat_bright, spacing_ij)
    if n_trim:
        messages.append(f"{n_trim} voxels at muscle borders left out (up to {RIM_DEPTH_MM:g} mm "
                        "deep): their signal is nearer fat's than their muscle's (septa, fat "
                        "between muscles, partial volume with the fascia)")
    labels = smooth_borders(labels, spacing_ij)
    warnings = _field_of_view_warnings(thigh, sides)
    if any(level_guessed):
        # The seed model's level-dependent parts (how far VM reaches, where the sartorius
        # and rectus femoris lie) then rest on a guess: the real development case's
        # middle 40 % of slices (scripts/eval_robustness.py, ``middle``) lost its vastus
        # medialis (Dice .77 / .80 -> .38 / .46) to a level 0.14 of the shaft off.
        warnings.append(
            "neither end of the femoral shaft is in the stack, so the level along the thigh "
            "was assumed (stack centred at mid-thigh): the vastus medialis, sartorius and "
            "rectus femoris outlines depend on it; check them on the QC overlay"
        )
    report("done", 1.0)

    def to_img(a: np.ndarray) -> sitk.Image:
        im = sitk.GetImageFromArray(a)
        im.CopyInformation(image)
        return im

    return SegmentationResult(
        labels=to_img(labels),
        contrast=family,
        contrast_name=_FAMILY_NAME[family],
        contrast_reason=reason,
        sides=tuple(sides),
        messages=messages,
        warnings=warnings,
        roll_deg=float(np.degrees(roll)),
        steps={
            "prepared": to_img(arr),
            "thigh": to_img(thigh),
            "femur": to_img(femur_mask),
            "muscle": to_img(muscle),
            "compartments": to_img(comps),
        },
    )


def _roll(picks: list) -> float:
    """Patient roll (radians, LPS x toward y) from the femur pairs of ``picks`` (right leg
    first): the median tilt of the right-to-left femur line over the slices where both
    are found, less ROLL_NOISE_DEG (0 under it, and for one leg)."""
    if len(picks) != 2:
        return 0.0
    tilts = [
        np.arctan2(b.centre_xy[1] - a.centre_xy[1], b.centre_xy[0] - a.centre_xy[0])
        for a, b in zip(picks[0], picks[1], strict=True)
        if a is not None and b is not None
    ]
    tilt = float(np.median(tilts)) if tilts else 0.0
    return float(np.sign(tilt) * max(0.0, abs(tilt) - np.radians(ROLL_NOISE_DEG)))


def _field_of_view_warnings(thigh: np.ndarray, sides: tuple[str, ...]) -> list[str]:
    """Legs (``thigh``: 1 right, 2 left, (k, j, i)) that reach the edge of the image.

    A thigh cut by the field of view has no skin there: its fascia and the relative
    depths of the compartment model lean on the image edge, and muscle beyond it is
    missing from the labels and volumes.
    """
    out = []
    for side in sides:
        leg = thigh == (1 if side == "R" else 2)
        edge = leg[:, 0, :].any(axis=1) | leg[:, -1, :].any(axis=1)
        edge |= leg[:, :, 0].any(axis=1) | leg[:, :, -1].any(axis=1)
        cut = [int(k) for k in np.nonzero(edge)[0]]
        if cut:
            n_leg = int(leg.any(axis=(1, 2)).sum())
            name = {"R": "right", "L": "left"}[side]
            out.append(
                f"the {name} thigh reaches the edge of the field of view on {len(cut)} of its "
                f"{n_leg} slice(s) {cut}: muscle cut off there is missing from its labels and "
                "volumes, and the heads next to that edge are less reliable"
            )
    return out


#: Gaussian SD (mm) of the in-plane vote that smooths the borders between muscles (see
#: :func:`smooth_borders`). The watershed's borders follow the septa's evidence pixel by
#: pixel and zigzag where it is faint or noisy; septa are smooth sheets that curve on a
#: scale of centimetres, so a vote over a few mm straightens the zigzag without moving a
#: border off its septum. Development cases (mean Dice over 12 generated visits / the
#: real case): none .9092 / .7510; 2 mm .9105 / .7515; 3 mm .9114 / .7515; 4 mm .9120 /
#: .7516 (every head within -.002 on the real case); 3 mm taken, well under a septum's
#: spacing (the thinnest muscle, the sartorius strap, is 10-15 mm thick).
BORDER_SMOOTH_MM = 3.0


def smooth_borders(
    labels: np.ndarray, spacing_ij: tuple[float, float], sigma_mm: float = BORDER_SMOOTH_MM
) -> np.ndarray:
    """Smooth the borders between labelled muscles, slice by slice.

    Each labelled pixel takes the label with the largest Gaussian-weighted share
    (in-plane SD ``sigma_mm``) among the labelled pixels around it. Background stays
    background and no labelled pixel becomes background: only the borders between two
    muscles move, the outline of the muscle compartment does not.

    Parameters
    ----------
    labels : ndarray of int, shape (k, j, i)
        Label map (0 = background).
    spacing_ij : (float, float)
        Column and row spacing (mm).
    sigma_mm : float
        Gaussian SD (mm); 0 returns ``labels`` unchanged.

    Returns
    -------
    ndarray
        New label map, same shape and dtype.
    """
    if sigma_mm <= 0:
        return labels
    si, sj = spacing_ij
    sigma = (sigma_mm / sj, sigma_mm / si)
    margin = int(np.ceil(3.0 * max(sigma)))

    def one_slice(lab: np.ndarray) -> np.ndarray:
        ids = np.unique(lab)
        ids = ids[ids > 0]
        if ids.size < 2:
            return lab
        jj, ii = np.nonzero(lab)
        bb = (
            slice(max(0, jj.min() - margin), jj.max() + margin + 1),
            slice(max(0, ii.min() - margin), ii.max() + margin + 1),
        )
        crop = lab[bb]
        best = np.zeros(crop.shape, dtype=np.float32)
        out = crop.copy()
        for v in ids:
            share = ndi.gaussian_filter((crop == v).astype(np.float32), sigma=sigma)
            win = share > best
            out[win] = v
            best[win] = share[win]
        res = lab.copy()
        res[bb] = np.where(crop > 0, out, 0)
        return res

    return np.stack(list(thread_map(one_slice, labels))).astype(labels.dtype)


def trim_fat_rim(
    labels: np.ndarray,
    image: np.ndarray,
    thigh: np.ndarray,
    fat_bright: bool,
    spacing_ij: tuple[float, float],
    fraction: float | None = None,
) -> tuple[np.ndarray, int]:
    """Drop edge voxels of each muscle whose signal is nearer fat's than the muscle's own.

    The watershed gives every voxel up to the fascia and the septa to a muscle, but a
    voxel on a muscle's edge is partly fat (partial volume) and belongs to the muscle
    only if muscle fills most of it. Per slice, fat's level ``f`` is the median of the
    subcutaneous layer (``SUBCUT_RING_MM`` under the skin, as in the compartment model)
    and the muscle's level ``m`` next to an edge voxel the mean of the muscle's interior
    voxels within :data:`RIM_LOCAL_MM` of it (its median where there is none or that
    mean is fat-like), so that a
    fat-replaced, oedematous or partly oedematous muscle is judged against itself. An
    edge voxel (in-plane 4-neighbour of an unlabelled voxel or of another muscle) leaves
    when ``(s - f) / (m - f) < fraction``, ``s`` its lightly smoothed signal (either
    contrast); the new edge is judged in turn, up to :data:`RIM_DEPTH_MM` deep, so that
    fat septa and fat pads between two muscles leave both. A muscle whose median differs
    from fat's by less than :data:`RIM_MIN_CONTRAST` of the larger is left as it is: with poor fat
    suppression or water-fat separation (the real development case's subcutaneous fat is
    at 0.86 of muscle) the midpoint lies within the muscle's own texture.

    Parameters
    ----------
    labels : ndarray of uint8, shape (k, j, i)
    image : ndarray, shape (k, j, i)
        The (bias-corrected) intensities the labels were drawn on.
    thigh : ndarray of bool, shape (k, j, i)
        The legs (for the subcutaneous layer).
    fat_bright : bool
        True for T1-like contrasts; a muscle whose level is on fat's wrong side for the
        contrast is left as it is.
    spacing_ij : (float, float)
        Column and row spacing (mm).
    fraction : float, optional
        Default :data:`RIM_FAT_FRACTION` (0.5: a voxel more than half fat by signal).

    Returns
    -------
    labels : ndarray
        A trimmed copy.
    n : int
        Voxels removed.
    """
    fraction = RIM_FAT_FRACTION if fraction is None else fraction
    out = labels.copy()
    window = max(1, int(round(RIM_LOCAL_MM / min(spacing_ij))) | 1) if RIM_LOCAL_MM > 0 else 1
    passes = max(1, int(round(RIM_DEPTH_MM / min(spacing_ij))))

    def one_slice(k: int) -> int:  # trims out[k] in place (slices are independent)
        lab = out[k]
        if not lab.any():
            return 0
        depth = ndi.distance_transform_edt(thigh[k], sampling=spacing_ij[::-1])
        lo, hi = SUBCUT_RING_MM
        fat_layer = thigh[k] & (depth >= lo) & (depth <= hi) & (lab == 0)
        if fat_layer.sum() < 50:
            return 0
        fat = float(np.median(image[k][fat_layer]))
        sm = ndi.gaussian_filter(image[k].astype(np.float32), 0.5)
        n = 0
        for _ in range(passes):
            dropped = _trim_edge_once(lab, image[k], sm, fat, fat_bright, window, fraction)
            n += dropped
            if not dropped:
                break
        return n

    return out, int(sum(thread_map(one_slice, range(labels.shape[0]))))


def _trim_edge_once(
    lab: np.ndarray, raw: np.ndarray, sm: np.ndarray, fat: float, fat_bright: bool,
    window: int, fraction: float,
) -> int:
    """One pass of :func:`trim_fat_rim` on one slice: ``lab`` (j, i) is changed in place;
    returns the number of pixels dropped."""
    # labelled pixels with a 4-neighbour of another value (0 or another label)
    edge = segmentation.find_boundaries(lab, connectivity=1, mode="inner")
    n = 0
    for v in np.unique(lab[edge]):
        own = lab == v
        if own.sum() < 30:
            continue
        mus = float(np.median(raw[own]))
        if (mus > fat) == fat_bright:
            continue
        if abs(mus - fat) < RIM_MIN_CONTRAST * max(abs(mus), abs(fat)):
            continue
        # Judged on the muscle's padded bounding box (the local mean reaches no further).
        jj, ii = np.nonzero(own)
        box = (slice(max(jj.min() - window, 0), jj.max() + window + 1),
               slice(max(ii.min() - window, 0), ii.max() + window + 1))
        o, e, s_ = own[box], edge[box], sm[box]
        level = np.full(s_.shape, mus, dtype=np.float32)
        if window > 1:
            inner = (o & ~e).astype(np.float32)
            num = ndi.uniform_filter(s_ * inner, window)
            den = ndi.uniform_filter(inner, window)
            local = num / np.maximum(den, 1e-6)
            # Only a local level on the muscle's side of fat, with the contrast the
            # median needed above (not a fat-like patch of the muscle), replaces it.
            ok = ((den > 1e-3) & ((local > fat) == (mus > fat))
                  & (np.abs(local - fat) >= RIM_MIN_CONTRAST * np.maximum(np.abs(local), abs(fat))))
            level[ok] = local[ok]
        frac = (s_ - fat) / (level - fat)  # |level - fat| > 0: the contrast gates above
        drop = e & o & (frac < fraction)
        lab[box][drop] = 0  # lab[box] is a view of the slice
        n += int(drop.sum())
    return n


def _z_majority(labels: np.ndarray, muscle: np.ndarray) -> np.ndarray:
    """Per voxel, the most frequent label over slices k-1, k, k+1 (ties: keep own)."""
    ids = [int(v) for v in np.unique(labels) if v != 0]
    if not ids:
        return labels
    counts = np.zeros((len(ids),) + labels.shape, dtype=np.uint8)
    for n, v in enumerate(ids):
        m = (labels == v).astype(np.uint8)
        c = m.copy()
        c[1:] += m[:-1]
        c[:-1] += m[1:]
        # Own label counts 1.5 (x2 scale) so ties keep the slice's own decision.
        counts[n] = 2 * c + m
    best = np.asarray(ids, dtype=np.uint8)[np.argmax(counts, axis=0)]
    out = labels.copy()
    upd = muscle & (labels != 0)
    out[upd] = best[upd]
    return out


def _label(mask: np.ndarray):
    from scipy import ndimage as ndi

    return ndi.label(mask)
