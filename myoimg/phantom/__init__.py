"""Digital reference study: synthetic longitudinal thigh MRI + FAPI-PET/CT with exact ground truth."""
