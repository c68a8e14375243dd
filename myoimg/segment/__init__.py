"""Segmentation of the thigh muscles: automatic, imported masks, and label propagation."""
