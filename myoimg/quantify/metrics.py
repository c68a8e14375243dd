"""Per-muscle metric names and units: one table for results.json, metrics.csv and the report."""

from __future__ import annotations

__all__ = ["METRIC_UNITS"]

#: Metric key (as in results.json "muscles") -> unit. Order = order of tables and CSV rows.
#: "x ref": multiple of the healthy-muscle T2-FS signal; SUV is g/mL (SUVbw).
METRIC_UNITS: dict[str, str] = {
    "volume_ml": "mL",
    "oedema_fraction": "0-1",
    "oedema_volume_ml": "mL",
    "t2fs_norm_mean": "x ref",
    "t2fs_norm_median": "x ref",
    "t2fs_z": "SD",
    "suv_mean": "g/mL",
    "suv_sd": "g/mL",
    "suv_median": "g/mL",
    "suv_max": "g/mL",
    "suv_peak": "g/mL",
    "avid_volume_ml": "mL",
    "tla": "SUV x mL",
    "tbr": "ratio",
}
