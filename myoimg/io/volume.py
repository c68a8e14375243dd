"""The in-memory volume type shared by every stage.

Coordinate convention: DICOM patient space (LPS, millimetres). ``image`` is a
SimpleITK image whose origin, spacing and direction map a voxel index (i, j, k)
(column, row, slice) to an LPS point; ``array`` is the NumPy view in (k, j, i) =
(slice, row, column) order, as SimpleITK returns it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

__all__ = ["Volume", "index_to_lps_affine"]


def index_to_lps_affine(image: sitk.Image) -> np.ndarray:
    """4x4 affine mapping a voxel index (i, j, k, 1) to an LPS point in mm."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing[np.newaxis, :]
    affine[:3, 3] = image.GetOrigin()
    return affine


@dataclass(eq=False)
class Volume:
    """A 3-D image in physical units with the header facts later stages need.

    Attributes
    ----------
    image : SimpleITK.Image
        Scalar float32 image in LPS patient space, values in physical units
        (after RescaleSlope/Intercept, applied per slice).
    headers : tuple of pydicom.Dataset
        Header-only datasets in slice order (index k of ``image``) for a
        single-frame series; a one-element tuple for a multi-frame object.
        Empty for NIfTI input.
    files : tuple of Path
        Source files in slice order (empty for NIfTI: see ``source``).
    info : object, optional
        The :class:`myoimg.io.SeriesInfo` summary the volume was loaded from.
    source : str
        Human-readable origin (folder or NIfTI path) for provenance.
    warnings : list of str
        Problems detected while loading that did not stop it (e.g. resampled
        non-uniform spacing). Reported in results and the PDF methods page.
    """

    image: sitk.Image
    headers: tuple[Any, ...] = ()
    files: tuple[Path, ...] = ()
    info: Any = None
    source: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def array(self) -> np.ndarray:
        """Read-only (k, j, i) NumPy view of the voxel values."""
        return sitk.GetArrayViewFromImage(self.image)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (di, dj, dk) in mm."""
        return tuple(self.image.GetSpacing())  # type: ignore[return-value]

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel-index -> LPS (mm) affine."""
        return index_to_lps_affine(self.image)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL (1 mL = 1000 mm^3)."""
        return float(np.prod(self.image.GetSpacing())) / 1000.0
