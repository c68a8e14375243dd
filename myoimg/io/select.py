"""Pick the series for a role ("t2fs", "pet", "ct") and print the series table."""

from __future__ import annotations

import re

import numpy as np

from myoimg.errors import SeriesSelectionError
from myoimg.io.scan import ScanResult, SeriesInfo

__all__ = ["ROLES", "guess_role", "is_fat_suppressed", "select_series", "format_series_table"]

ROLES = ("t2fs", "pet", "ct")

# Fat suppression named in SeriesDescription/ProtocolName (lower case). "fs" only as a
# separate token ("t2_tse_fs", "T2 FS", "t2fs"), not inside words ("fsl", "offset").
_FS_TEXT = re.compile(
    r"stir|tirm|spair|spir|fat[\s_\-]*sat|fat[\s_\-]*supp|fatsup|(?<![a-z])fs(?![a-z])"
)
_T1_TEXT = re.compile(r"(?<![a-z0-9])t1(?![0-9])")
_T2_TEXT = re.compile(r"(?<![a-z0-9])t2(?![0-9])|stir|tirm")


def is_fat_suppressed(info: SeriesInfo) -> bool:
    """True if any header says the series is fat suppressed or inversion-recovery.

    Evidence used (any one suffices): STIR/TIRM/SPAIR/SPIR/FS/fat sat in the series
    description or protocol name; ScanningSequence IR; ScanOptions FS, SFS or IR;
    SequenceName containing "tir" or "stir" (Siemens "*tir2d1_...").
    """
    text = f"{info.description} {info.protocol}".lower()
    if _FS_TEXT.search(text):
        return True
    if "IR" in info.scanning_sequence:
        return True
    if {"FS", "SFS", "IR"} & set(info.scan_options):
        return True
    seq = info.sequence_name.lower()
    return "tir" in seq or "stir" in seq


def guess_role(info: SeriesInfo) -> str | None:
    """Role of a series: "t2fs", "pet", "ct" or None.

    Localizers (ImageType LOCALIZER, or 1-3 images) never get a role.
    An MR series is "t2fs" when it is fat suppressed (:func:`is_fat_suppressed`)
    and not labelled T1 only (post-contrast T1 FS is not a T2-FS series).
    """
    if info.is_localizer:
        return None
    if info.modality == "PT":
        return "pet"
    if info.modality == "CT":
        return "ct"
    if info.modality == "MR" and is_fat_suppressed(info):
        text = f"{info.description} {info.protocol}".lower()
        if _T1_TEXT.search(text) and not _T2_TEXT.search(text):
            return None
        return "t2fs"
    return None


def _station_note(series: list[SeriesInfo]) -> str | None:
    """Why several matches look like stations of one acquisition, or None.

    Stations: one study and frame of reference, one orientation (normals within ~2.5
    deg) and pixel spacing (2 %), slice ranges that follow each other along the normal,
    each overlapping the next by less than half the shorter one and at most three
    slices apart (a repeat of one station covers the same positions instead).
    """
    if len(series) < 2 or len({s.study_uid for s in series}) > 1:
        return None
    fors = {s.frame_of_reference_uid for s in series if s.frame_of_reference_uid}
    if len(fors) > 1 or any(
        s.orientation is None or s.pixel_spacing is None or s.slice_range is None
        or not s.slice_spacing for s in series
    ):  # fmt: skip
        return None
    ref = series[0]
    for s in series[1:]:
        if float(np.dot(ref.normal, s.normal)) < 0.999:
            return None
        if not np.allclose(s.pixel_spacing, ref.pixel_spacing, rtol=0.02):
            return None
    ordered = sorted(series, key=lambda s: s.slice_range[0])
    for a, b in zip(ordered[:-1], ordered[1:], strict=True):
        (a0, a1), (b0, b1) = a.slice_range, b.slice_range
        shorter = min(a1 - a0, b1 - b0)
        step = max(a.slice_spacing, b.slice_spacing)
        if a1 - b0 >= 0.5 * shorter or b0 - a1 > 3.0 * step:
            return None
    ranges = ", ".join(f"#{s.index} {s.slice_range[0]:.0f} to {s.slice_range[1]:.0f} mm"
                       for s in ordered)  # fmt: skip
    return (
        f"they look like stations of one acquisition, one after the other along the body "
        f"(slice positions along the normal: {ranges}). myoimg does not join stations: each "
        "has its own receive-coil scaling, which would bias one oedema reference across the "
        "junction; choose one station (the one that shows the femoral shaft best)"
    )


def _candidates_text(series: list[SeriesInfo]) -> str:
    if not series:
        return "  (none)"
    return "\n".join(
        f"  {s.index:>3}  {s.modality:<2} {s.plane:<8} n={s.n_slices:<4} "
        f"{s.description or '-'}  {s.series_uid}" + (f" stack {s.stack}" if s.stack else "")
        for s in series
    )


def select_series(
    result: ScanResult,
    role: str | None | tuple[str | None, ...],
    series: str | int | None = None,
) -> SeriesInfo:
    """The one series of ``result`` for ``role``, or the one named by ``series``.

    Parameters
    ----------
    result : ScanResult
        From :func:`myoimg.io.scan`.
    role : {"t2fs", "pet", "ct"} or None, or a tuple of them
        Wanted role (see :func:`guess_role`). None accepts any non-localizer series
        (or the only series of the folder). A tuple is a preference order: the first
        role that any series has decides (several series for it are still an error).
        Among the series for a role, axial ones are preferred: a coronal or sagittal
        series is taken only when no axial one has the role.
    series : str or int, optional
        Override: the 1-based index of the series table, or a SeriesInstanceUID
        (or a unique prefix of one).

    Raises
    ------
    SeriesSelectionError
        No match or several matches; the message lists the candidates.
    """
    roles = role if isinstance(role, tuple) else (role,)
    for r in roles:
        if r is not None and r not in ROLES:
            raise SeriesSelectionError(f"unknown role {r!r}; expected one of {', '.join(ROLES)}")
    how = "with --series UID or --series N (N = index in `myoimg inspect`)"
    hint = f"choose {how}"
    if not result.series:
        raise SeriesSelectionError(
            f"no DICOM image series in {result.folder} ({result.n_files} files read, "
            f"{result.n_skipped} skipped as non-DICOM or non-image)"
        )
    if series is not None:
        key = str(series).strip()
        if key.isdigit():
            matches = [s for s in result.series if s.index == int(key)]
            what = f"index {key}"
        else:
            matches = [s for s in result.series if s.series_uid == key]
            if not matches:
                matches = [s for s in result.series if s.series_uid.startswith(key)]
            what = f"UID {key}"
        if len(matches) == 1:
            return matches[0]
        reason = "no series matches" if not matches else "several series/stacks match"
        listed = matches or result.series
        raise SeriesSelectionError(
            f"{reason} {what} in {result.folder}; {hint}. Candidates:\n{_candidates_text(listed)}"
        )
    for r in roles:
        if r is None:
            matches = [s for s in result.series if not s.is_localizer]
            if not matches and len(result.series) == 1:
                matches = list(result.series)  # the folder's only series, whatever its plane
        else:
            matches = [s for s in result.series if guess_role(s) == r]
        # An axial series is the one meant when there is one (a coronal STIR or a PET
        # reformat beside the axial acquisition is for viewing); another plane is taken
        # only when it is all there is.
        axial = [s for s in matches if s.plane == "axial"]
        if axial:
            matches = axial
        if matches:
            break
    if len(matches) == 1:
        return matches[0]
    label = " or ".join(f"role {r!r}" if r else "a volume" for r in roles)
    if not matches:
        raise SeriesSelectionError(
            f"no series for {label} in {result.folder} ({len(result.series)} series found); "
            f"{hint}. Candidates:\n{_candidates_text(result.series)}"
        )
    note = _station_note(matches)
    raise SeriesSelectionError(
        f"{len(matches)} series match {label} in {result.folder}; "
        + (f"{note}, {how}. " if note else f"{hint}. ")
        + f"Candidates:\n{_candidates_text(matches)}"
    )


def _short_uid(uid: str, n: int = 14) -> str:
    return uid if len(uid) <= n else "..." + uid[-(n - 3) :]


def format_series_table(result: ScanResult) -> str:
    """Plain-text table of the series of a scan, one line per series/stack.

    Columns: index, modality, plane, number of images, matrix (columns x rows),
    voxel spacing in mm (column x row x slice), first and last slice position along the
    slice normal in mm (tells stations of one acquisition apart), series date,
    description, role guess, shortened SeriesInstanceUID (with /stack when one UID holds
    several stacks).
    """
    header = ("#", "mod", "plane", "n", "matrix", "spacing mm", "slices mm", "date",
              "description", "role", "uid")  # fmt: skip
    rows = []
    for s in result.series:
        if s.pixel_spacing:
            sp = f"{s.pixel_spacing[1]:.2f}x{s.pixel_spacing[0]:.2f}"
            sp += f"x{s.slice_spacing:.2f}" if s.slice_spacing else "x?"
        else:
            sp = "?"
        uid = _short_uid(s.series_uid) + (f"/{s.stack}" if s.stack else "")
        desc = s.description or s.protocol or "-"
        rows.append(
            (
                str(s.index),
                s.modality or "?",
                s.plane,
                str(s.n_slices),
                f"{s.columns}x{s.rows}",
                sp,
                f"{s.slice_range[0]:.0f}..{s.slice_range[1]:.0f}" if s.slice_range else "-",
                s.series_date or s.study_date or "-",
                desc if len(desc) <= 32 else desc[:31] + "~",
                guess_role(s) or ("localizer" if s.is_localizer else "-"),
                uid,
            )
        )
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]
    lines.append(
        f"{len(result.series)} series in {result.n_files} files "
        f"({result.n_skipped} non-image/non-DICOM files skipped)"
    )
    return "\n".join(lines)
