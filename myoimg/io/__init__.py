"""Loading: DICOM folders (scan, select, load) and NIfTI, all in LPS patient space."""
