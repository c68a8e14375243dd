"""Digital reference study: synthetic longitudinal thigh MRI + FAPI-PET/CT with exact ground truth.

Main entry point: :func:`generate_study` (DICOM folders per visit + ``truth/``).
Lower-level pieces (no DICOM): :func:`make_anatomy` (continuous two-thigh model),
:func:`classify` (tissue code at body-frame points), :func:`rasterise` (partial-volume
sub-samples on a grid), ``render_*`` (noise-free contrasts), :func:`plan_study`.
Imports only ``myoimg.labels``, ``myoimg.errors`` and ``myoimg.io``.
"""

from myoimg.phantom.anatomy import TISSUE_NAMES, Anatomy, classify, make_anatomy
from myoimg.phantom.geometry import Grid, axial_grid, rigid_matrix
from myoimg.phantom.render import (
    Raster,
    model_suv,
    rasterise,
    render_ct,
    render_pet_suv,
    render_t1,
    render_t2fs,
)
from myoimg.phantom.study import GA68_HALF_LIFE_S, VARIANTS, generate_study, plan_study

__all__ = [
    "generate_study",
    "VARIANTS",
    "GA68_HALF_LIFE_S",
    "plan_study",
    "make_anatomy",
    "classify",
    "Anatomy",
    "TISSUE_NAMES",
    "Grid",
    "axial_grid",
    "rigid_matrix",
    "Raster",
    "rasterise",
    "render_t2fs",
    "render_t1",
    "render_pet_suv",
    "render_ct",
    "model_suv",
]
