"""Segmentation of the thigh muscles: automatic, imported masks, and label propagation.

- :func:`myoimg.segment.auto.segment_thigh`: automatic labels on a T2-FS/STIR/water or T1 image.
- :func:`myoimg.segment.masks.import_labels`: masks drawn elsewhere (NIfTI/NRRD, DICOM SEG, RTSTRUCT).
- :func:`myoimg.segment.export.write_seg`: DICOM SEG referencing the source series.
- :mod:`myoimg.segment.register`: follow-up to baseline and MRI to PET/CT label transfer.
- :func:`myoimg.segment.bias.n4_correct`: N4 bias-field correction.

Submodules are imported on use (``from myoimg.segment.auto import segment_thigh``), so
that importing one route does not load the others.
"""
