"""Image grids and rigid transforms of the digital reference object.

Convention: every grid lives in the DICOM patient space (LPS, mm) of one imaging
session. The anatomy lives in a fixed *body* frame (also LPS-oriented, mm, origin
near the middle of the thighs at mid-thigh height). A session places the body on
the table with a rigid transform ``body_to_patient`` (4x4, maps body points to
that session's patient LPS points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Grid", "rigid_matrix", "apply", "axial_grid"]


def rigid_matrix(angles_deg=(0.0, 0.0, 0.0), translation_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 rigid matrix: rotation about x, then y, then z (degrees), then translation (mm)."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=float))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = rz @ ry @ rx
    m[:3, 3] = translation_mm
    return m


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 affine to points of shape (..., 3)."""
    return points @ matrix[:3, :3].T + matrix[:3, 3]


@dataclass(frozen=True)
class Grid:
    """A voxel grid in a session's patient space (LPS, mm).

    Voxel (i, j, k) (column, row, slice) is centred at
    ``origin + i*di*row + j*dj*col + k*dk*normal``; arrays are (k, j, i).

    Attributes
    ----------
    shape : (nk, nj, ni)
    spacing : (di, dj, dk) in mm (dk = distance between slice centres)
    origin : (3,) LPS centre of voxel (0, 0, 0)
    direction : (3, 3) columns are the unit row, column and slice-normal vectors
    thickness : nominal slice thickness in mm (may be < dk if there is a gap)
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[tuple[float, ...], ...]
    thickness: float

    @property
    def dir(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float)

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel-index (i, j, k) -> LPS mm."""
        m = np.eye(4)
        m[:3, :3] = self.dir * np.asarray(self.spacing)[np.newaxis, :]
        m[:3, 3] = self.origin
        return m

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def slice_position(self, k: int) -> np.ndarray:
        """LPS position (ImagePositionPatient) of slice k."""
        return apply(self.affine, np.array([0.0, 0.0, float(k)]))


def axial_grid(
    centre: np.ndarray,
    n_cols: int,
    n_rows: int,
    n_slices: int,
    pixel: float,
    slice_spacing: float,
    thickness: float,
    tilt_deg: float = 0.0,
) -> Grid:
    """Axial (optionally tilted about the x axis) grid centred on an LPS point.

    Rows run along +x (toward patient left), columns along +y (posterior) rotated by
    ``tilt_deg`` about x, slices along the normal (toward the head for tilt 0).
    """
    t = np.deg2rad(tilt_deg)
    row = np.array([1.0, 0.0, 0.0])
    col = np.array([0.0, np.cos(t), np.sin(t)])
    normal = np.cross(row, col)
    d = np.stack([row, col, normal], axis=1)
    half = (
        np.array([(n_cols - 1) * pixel, (n_rows - 1) * pixel, (n_slices - 1) * slice_spacing]) / 2
    )
    origin = np.asarray(centre, dtype=float) - d @ half
    return Grid(
        shape=(n_slices, n_rows, n_cols),
        spacing=(pixel, pixel, slice_spacing),
        origin=tuple(float(v) for v in origin),
        direction=tuple(tuple(float(v) for v in r) for r in d),
        thickness=thickness,
    )
