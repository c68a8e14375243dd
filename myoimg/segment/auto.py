"""Automatic quadriceps segmentation of axial thigh MRI (classical, no trained model).

Pipeline (every step works slice by slice, because slice gaps can be 1-25 mm):

1. body mask (threshold relative to the image's own air/tissue split);
2. femur on each slice (round signal void, marrow filled; :mod:`.femur`), made consistent
   along z by fitting one straight track per femur (the shaft is straight over the thigh),
   which also gives each slice's level along the shaft (:mod:`.tracks`);
3. legs: body pixels assigned to their femur; sides from LPS geometry (patient right is
   toward -x);
4. per leg: subcutaneous fat profile -> muscle fascia (:mod:`.fascia`); a polar
   compartment model around the femur gives seeds for VI, VL, RF, VM, adductors and
   hamstrings; a watershed on a fat-septum ridge map (broken septa closed, :mod:`.septa`)
   moves the borders onto the intermuscular septa (:mod:`.compartments`);
5. labels made consistent across neighbouring slices (thin slices only), and each
   muscle's edge voxels that are more fat than muscle by signal left out
   (:func:`trim_fat_rim`), borders smoothed (:mod:`.borders`).

Coordinates: SimpleITK image in LPS; arrays are (k, j, i).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..errors import SegmentationError
from ..labels import BY_NAME
from .bias import n4_correct
from .borders import (
    RIM_DEPTH_MM,
    Z_SMOOTH_MAX_SPACING_MM,
    smooth_borders,
    trim_fat_rim,
    z_majority,
)
from .compartments import GROUPS, segment_leg_slice_turned
from .contrast import detect_contrast, normalise_contrast
from .denoise import NOISY, denoise, relative_noise
from .femur import FemurCandidate, find_femurs
from .qc import save_qc_png
from .thigh import (
    body_mask,
    from_lps_storage,
    slice_grid_lps,
    to_lps_storage,
)
from .threads import thread_map
from .tracks import femur_tracks, fill_track_gaps, shaft_levels

__all__ = [
    "SegmentationResult",
    "segment_thigh",
    "detect_contrast",
    "save_qc_png",
    "smooth_borders",
    "trim_fat_rim",
]

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
    tracks, picks = femur_tracks(cands, nz, float(sp[2]))
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
    shaft_ends, track_levels, level_guessed = shaft_levels(zs, detected, names, messages)
    n_filled = fill_track_gaps(
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
    levels = [track_levels[n] for n in order]  # per side, see shaft_levels

    def leg_slices(k: int, side: str, fem: FemurCandidate, rotations: tuple[float, ...]):
        """This leg's cross-section on slice k, its femur mask, bounding box and groups
        (one LegSlice per rotation); None where the leg is too small."""
        x, y = grids[k]
        comp_lab, _ = ndi.label(body[k])
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
        labels = z_majority(labels, muscle > 0)
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
