"""Exception types of the public API.

Every error a user can cause with bad input derives from :class:`MyoimgError`; the CLI
prints its message on one line and exits with status 2. Messages name the file and
the DICOM tag at fault where there is one.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "MyoimgError",
    "DicomInputError",
    "MissingAttributeError",
    "GeometryError",
    "SeriesSelectionError",
    "SUVError",
    "SegmentationError",
    "RegistrationError",
    "OutputExistsError",
]


class MyoimgError(Exception):
    """Base class of every error caused by input or user choices."""


class DicomInputError(MyoimgError):
    """A file or folder that cannot be read as the DICOM input required."""

    def __init__(self, message: str, path: str | Path | None = None, tag: str | None = None):
        self.path = Path(path) if path is not None else None
        self.tag = tag
        where = []
        if path is not None:
            where.append(f"file {Path(path).name!s}")
        if tag is not None:
            where.append(f"tag {tag}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)


class MissingAttributeError(DicomInputError):
    """A DICOM attribute needed for the computation is missing or invalid."""


class GeometryError(DicomInputError):
    """Slices that do not form one consistent volume (orientation, spacing, gaps)."""


class SeriesSelectionError(MyoimgError):
    """No series, or more than one, matches the requested role."""


class SUVError(MissingAttributeError):
    """PET headers that do not allow a trustworthy SUV conversion."""


class SegmentationError(MyoimgError):
    """The image cannot be segmented (not a thigh, wrong dimensionality, ...)."""


class RegistrationError(MyoimgError):
    """A registration that failed its quality check; its results must not be used."""


class OutputExistsError(MyoimgError):
    """The output location exists and overwriting was not requested."""
