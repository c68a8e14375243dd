"""Quantification: PET SUV conversion, MRI oedema and PET uptake statistics per muscle."""
