"""myoimg: quantitative thigh MRI and FAPI-PET/CT for inflammatory myopathy.

Data flow (one sub-package per stage; a stage imports only stages before it)::

    io  ->  segment  ->  quantify  ->  compare / report      (cli, pipeline on top)

Geometry is DICOM patient space (LPS, mm) in memory; NIfTI files carry RAS affines.

The most used functions are re-exported here and imported lazily (``import myoimg``
stays fast): ``myoimg.load_image``, ``myoimg.segment_thigh``, ``myoimg.oedema_metrics``, ...
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "scan": "myoimg.io",
    "select_series": "myoimg.io",
    "load_series": "myoimg.io",
    "load_image": "myoimg.io",
    "read_nifti": "myoimg.io",
    "write_nifti": "myoimg.io",
    "Volume": "myoimg.io",
    "segment_thigh": "myoimg.segment.auto",
    "import_labels": "myoimg.segment.masks",
    "write_seg": "myoimg.segment.export",
    "register_rigid_affine": "myoimg.segment.register",
    "propagate_labels": "myoimg.segment.register",
    "labels_to_pet": "myoimg.segment.register",
    "n4_correct": "myoimg.segment.bias",
    "compute_suv": "myoimg.quantify.suv",
    "suv_factor": "myoimg.quantify.suv",
    "oedema_metrics": "myoimg.quantify.mri",
    "reference_signal": "myoimg.quantify.mri",
    "uptake_metrics": "myoimg.quantify.pet",
    "compare_visits": "myoimg.compare",
    "render_report": "myoimg.report",
    "run_analyze": "myoimg.pipeline",
    "run_compare": "myoimg.pipeline",
    "generate_study": "myoimg.phantom",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'myoimg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
