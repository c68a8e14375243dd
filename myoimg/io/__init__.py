"""Loading: DICOM folders (scan, select, load) and NIfTI, all in LPS patient space."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import SimpleITK as sitk

from myoimg.errors import DicomInputError, MyoimgError
from myoimg.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from myoimg.io.dicom_load import load_files, load_series
from myoimg.io.nifti import is_nifti, lps_to_ras_affine, ras_to_lps_affine, read_nifti, write_nifti
from myoimg.io.scan import ScanResult, SeriesInfo, plane_from_iop, scan
from myoimg.io.select import ROLES, format_series_table, guess_role, select_series
from myoimg.io.volume import Volume, index_to_lps_affine

__all__ = [
    "ROLES",
    "ScanResult",
    "SeriesInfo",
    "Volume",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "format_series_table",
    "guess_role",
    "index_to_lps_affine",
    "is_nifti",
    "load_files",
    "load_image",
    "load_series",
    "lps_to_ras_affine",
    "plane_from_iop",
    "ras_to_lps_affine",
    "read_nifti",
    "scan",
    "select_series",
    "unreadable_files_named",
    "write_nifti",
]


@contextlib.contextmanager
def unreadable_files_named(result: ScanResult) -> Iterator[None]:
    """Add the names of unreadable DICOM files of ``result`` to any loading error.

    A truncated file drops out of its series at scan time, so the error the user
    sees is about the series (a gap, too few slices); this names the likely cause.
    """
    try:
        yield
    except MyoimgError as exc:
        note = result.unreadable_note()
        if note is None:
            raise
        exc.args = (f"{exc.args[0] if exc.args else exc}; note: {note}", *exc.args[1:])
        raise


def load_image(
    path: str | Path,
    *,
    role: str | None | tuple[str | None, ...] = None,
    series: str | int | None = None,
    resample_nonuniform: bool = False,
) -> Volume:
    """Load a NIfTI file or one series of a DICOM folder as a float32 LPS :class:`Volume`.

    Parameters
    ----------
    path : path
        A ``.nii``/``.nii.gz`` file (``headers`` and ``files`` empty) or a folder
        of DICOM files (scanned recursively).
    role : {"t2fs", "pet", "ct"}, or a tuple of roles (None = any volume), optional
        Series role to select in a folder (see :func:`select_series`).
    series : str or int, optional
        SeriesInstanceUID (or unique prefix) or 1-based table index; overrides ``role``.
    resample_nonuniform : bool
        Passed to :func:`load_series`.
    """
    path = Path(path)
    if path.is_file() and is_nifti(path):
        image = read_nifti(path)
        if image.GetPixelID() != sitk.sitkFloat32:
            image = sitk.Cast(image, sitk.sitkFloat32)
        return Volume(image=image, source=str(path))
    if path.is_dir():
        result = scan(path)
        with unreadable_files_named(result):
            info = select_series(result, role, series)
            volume = load_series(info, resample_nonuniform=resample_nonuniform)
        volume.source = str(path)
        if result.unreadable:
            volume.warnings.append(result.unreadable_note())
        return volume
    if path.is_file():
        # A single DICOM file (e.g. an enhanced multi-frame object).
        return load_files([path], resample_nonuniform=resample_nonuniform)
    raise DicomInputError("no such file or folder", path=path)


