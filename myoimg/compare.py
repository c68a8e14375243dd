"""Baseline vs follow-up comparison of per-muscle metrics with rule-based verdicts.

The verdicts are descriptive flags from user-configurable thresholds, not validated
response criteria (see :data:`RESPONSE_DISCLAIMER`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "RESPONSE_DISCLAIMER",
    "VERDICTS",
    "ResponseThresholds",
    "compare_visits",
    "describe_rules",
    "metric_rule",
]

RESPONSE_DISCLAIMER = (
    "Imaging response criteria for myositis are not validated; the verdicts below are "
    "descriptive flags from thresholds that are the user's to set (defaults: oedema "
    "fraction change >= 0.10, PERCIST-like SUV change >= 30% and >= 0.8, volume change "
    ">= 10%) and must not be read as a clinical response assessment."
)

#: Every verdict string :func:`compare_visits` can return.
VERDICTS: tuple[str, ...] = (
    "improved",
    "stable",
    "worse",
    "increased",
    "decreased",
    "not measurable",
    "no rule",
)

# Metric -> rule family. Metrics not listed here get the verdict "no rule".
_DISEASE_FRACTION = ("oedema_fraction",)
_SUV = ("suv_mean", "suv_median", "suv_max", "suv_peak")
_SIZE = ("volume_ml",)
_RATIO = ("tbr",)
_AVID = ("avid_volume_ml", "tla")

# Tolerance for "at the threshold" comparisons (0.4 - 0.3 = 0.09999999999999998).
_EPS = 1e-9


@dataclass(frozen=True)
class ResponseThresholds:
    """Change thresholds for the verdicts (all inclusive: a change equal to the
    threshold counts).

    Attributes
    ----------
    oedema_fraction_abs : float
        Absolute change of the oedema fraction (0-1) for improved / worse.
    suv_rel : float
        PERCIST-like relative change (0-1) of SUV metrics (suv_mean, suv_median,
        suv_max, suv_peak), required together with ``suv_abs``.
    suv_abs : float
        PERCIST-like absolute SUV change, required together with ``suv_rel``.
    tbr_rel : float
        Relative change of the target-to-background ratio.
    avid_rel : float
        Relative change of avid volume and TLA, required together with ``avid_abs``.
    avid_abs : float
        Absolute change of avid volume (mL) and TLA (SUV x mL).
    volume_rel : float
        Relative change of the muscle volume for increased / decreased.
    """

    oedema_fraction_abs: float = 0.10
    suv_rel: float = 0.30
    suv_abs: float = 0.8
    tbr_rel: float = 0.30
    avid_rel: float = 0.30
    avid_abs: float = 1.0
    volume_rel: float = 0.10

    def as_dict(self) -> dict[str, float]:
        """JSON-serialisable copy (for results.json "parameters")."""
        return asdict(self)


def _num(value: Any) -> float | None:
    """A finite float or None (None, NaN, inf, non-numbers -> None)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _passes(change: float | None, threshold: float) -> bool:
    return change is not None and abs(change) >= threshold - _EPS


def metric_rule(metric: str) -> str | None:
    """Rule family of a metric: "fraction", "suv", "ratio", "avid", "size" or None."""
    if metric in _DISEASE_FRACTION:
        return "fraction"
    if metric in _SUV:
        return "suv"
    if metric in _RATIO:
        return "ratio"
    if metric in _AVID:
        return "avid"
    if metric in _SIZE:
        return "size"
    return None


def _verdict(
    metric: str, abs_change: float, rel_change: float | None, t: ResponseThresholds
) -> str:
    rule = metric_rule(metric)
    if rule is None:
        return "no rule"
    # Relative change from a zero baseline: any non-zero change is "infinitely" large.
    rel = rel_change if rel_change is not None else (math.inf if abs_change != 0 else 0.0)
    if rule == "fraction":
        changed = _passes(abs_change, t.oedema_fraction_abs)
    elif rule == "suv":
        changed = _passes(rel, t.suv_rel) and _passes(abs_change, t.suv_abs)
    elif rule == "ratio":
        changed = _passes(rel, t.tbr_rel)
    elif rule == "avid":
        changed = _passes(rel, t.avid_rel) and _passes(abs_change, t.avid_abs)
    else:  # size
        changed = _passes(rel, t.volume_rel)
    if not changed:
        return "stable"
    if rule == "size":
        return "increased" if abs_change > 0 else "decreased"
    return "worse" if abs_change > 0 else "improved"


def compare_visits(
    baseline: dict[str, dict],
    followup: dict[str, dict],
    *,
    thresholds: ResponseThresholds | None = None,
) -> dict[str, dict[str, dict]]:
    """Compare per-muscle metrics of two visits.

    Parameters
    ----------
    baseline, followup : dict
        Muscle name -> {metric: value} (the "muscles" dicts of results.json). Missing
        muscles, missing metrics, None and NaN are "not measurable".
    thresholds : ResponseThresholds, optional
        Defaults: see :class:`ResponseThresholds`.

    Returns
    -------
    dict
        Muscle -> metric -> {"baseline", "followup", "abs_change" (followup - baseline),
        "rel_change" (abs_change / |baseline|, None when the baseline is 0),
        "verdict"}. Verdicts: "improved" / "stable" / "worse" for disease metrics
        (oedema fraction, SUV, TBR, avid volume, TLA; lower is better),
        "increased" / "decreased" / "stable" for muscle volume, "not measurable" when
        a value is missing, "no rule" for descriptive metrics without a threshold.
    """
    t = thresholds if thresholds is not None else ResponseThresholds()
    out: dict[str, dict[str, dict]] = {}
    muscles = list(baseline) + [m for m in followup if m not in baseline]
    for muscle in muscles:
        b_metrics = baseline.get(muscle) or {}
        f_metrics = followup.get(muscle) or {}
        metrics = list(b_metrics) + [k for k in f_metrics if k not in b_metrics]
        row: dict[str, dict] = {}
        for metric in metrics:
            b = _num(b_metrics.get(metric))
            f = _num(f_metrics.get(metric))
            if b is None or f is None:
                row[metric] = {
                    "baseline": b,
                    "followup": f,
                    "abs_change": None,
                    "rel_change": None,
                    "verdict": "not measurable",
                }
                continue
            abs_change = f - b
            rel_change = abs_change / abs(b) if b != 0 else None
            row[metric] = {
                "baseline": b,
                "followup": f,
                "abs_change": abs_change,
                "rel_change": rel_change,
                "verdict": _verdict(metric, abs_change, rel_change, t),
            }
        out[muscle] = row
    return out


def describe_rules(thresholds: ResponseThresholds | None = None) -> dict[str, str]:
    """Metric -> plain-language verdict rule (for results.json "verdict_rules" and the PDF)."""
    t = thresholds if thresholds is not None else ResponseThresholds()
    rules: dict[str, str] = {}
    for m in _DISEASE_FRACTION:
        rules[m] = (
            f"improved if it decreases by >= {t.oedema_fraction_abs:g} (absolute fraction), "
            f"worse if it increases by >= {t.oedema_fraction_abs:g}, else stable"
        )
    for m in _SUV:
        rules[m] = (
            f"PERCIST-like: improved if it decreases by >= {t.suv_rel:.0%} and >= "
            f"{t.suv_abs:g} SUV, worse if it increases by both, else stable"
        )
    for m in _RATIO:
        rules[m] = (
            f"improved if it decreases by >= {t.tbr_rel:.0%}, worse if it increases by "
            f">= {t.tbr_rel:.0%}, else stable"
        )
    units = {"avid_volume_ml": "mL", "tla": "SUV x mL"}
    for m in _AVID:
        rules[m] = (
            f"improved if it decreases by >= {t.avid_rel:.0%} and >= {t.avid_abs:g} "
            f"{units[m]}, worse if it increases by both, else stable"
        )
    for m in _SIZE:
        rules[m] = (
            f"increased / decreased if it changes by >= {t.volume_rel:.0%}, else stable "
            "(a volume change is not graded as better or worse)"
        )
    rules["other metrics"] = "no rule: change reported without a verdict"
    rules["missing values"] = "not measurable"
    return rules
