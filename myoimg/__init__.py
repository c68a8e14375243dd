"""myoimg: quantitative thigh MRI and FAPI-PET/CT for inflammatory myopathy.

Data flow (one sub-package per stage; a stage imports only stages before it)::

    io  ->  segment  ->  quantify  ->  compare / report      (cli, pipeline on top)

Geometry is DICOM patient space (LPS, mm) in memory; NIfTI files carry RAS affines.
"""

__version__ = "0.1.0"
