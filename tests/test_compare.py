"""Visit comparison: verdicts at and around the thresholds, None handling, rule texts."""

from __future__ import annotations

import json
import math

import pytest

from myoimg.compare import (
    RESPONSE_DISCLAIMER,
    VERDICTS,
    ResponseThresholds,
    compare_visits,
    describe_rules,
)


def _one(metric, b, f, thresholds=None):
    out = compare_visits({"R_VL": {metric: b}}, {"R_VL": {metric: f}}, thresholds=thresholds)
    return out["R_VL"][metric]


def test_schema_example_values():
    r = _one("oedema_fraction", 0.41, 0.03)
    assert r["baseline"] == 0.41 and r["followup"] == 0.03
    assert r["abs_change"] == pytest.approx(-0.38)
    assert r["rel_change"] == pytest.approx(-0.38 / 0.41)
    assert r["verdict"] == "improved"


@pytest.mark.parametrize(
    ("b", "f", "verdict"),
    [
        (0.40, 0.30, "improved"),  # exactly -0.10 (0.4 - 0.3 = 0.0999...98 in floating point)
        (0.40, 0.31, "stable"),
        (0.30, 0.40, "worse"),  # exactly +0.10
        (0.30, 0.39, "stable"),
        (0.20, 0.20, "stable"),
    ],
)
def test_oedema_fraction_verdicts_at_and_around_threshold(b, f, verdict):
    assert _one("oedema_fraction", b, f)["verdict"] == verdict


@pytest.mark.parametrize(
    ("b", "f", "verdict"),
    [
        (4.0, 2.8, "improved"),  # -30% and -1.2 SUV
        (4.0, 2.81, "stable"),  # -29.75%
        (2.0, 1.2, "improved"),  # -40% and exactly -0.8 SUV
        (2.0, 1.21, "stable"),  # -39.5% but only -0.79 SUV
        (1.0, 0.5, "stable"),  # -50% but only -0.5 SUV: both criteria required
        (2.0, 2.8, "worse"),  # +40%, +0.8
        (10.0, 12.9, "stable"),  # +2.9 SUV but +29%
        (10.0, 13.0, "worse"),  # +30%, +3.0
    ],
)
def test_percist_like_suv_verdicts(b, f, verdict):
    for metric in ("suv_peak", "suv_mean", "suv_max", "suv_median"):
        assert _one(metric, b, f)["verdict"] == verdict


@pytest.mark.parametrize(
    ("b", "f", "verdict"),
    [
        (200.0, 220.0, "increased"),  # exactly +10%
        (200.0, 219.0, "stable"),
        (200.0, 180.0, "decreased"),
        (200.0, 181.0, "stable"),
    ],
)
def test_volume_verdicts_are_not_disease_grades(b, f, verdict):
    assert _one("volume_ml", b, f)["verdict"] == verdict


def test_ratio_and_avid_rules():
    assert _one("tbr", 2.0, 1.4)["verdict"] == "improved"
    assert _one("tbr", 2.0, 1.5)["verdict"] == "stable"
    assert _one("avid_volume_ml", 10.0, 5.0)["verdict"] == "improved"
    assert _one("avid_volume_ml", 2.0, 1.2)["verdict"] == "stable"  # -40% but only -0.8 mL
    # From zero: relative change undefined (None), the absolute rule decides.
    r = _one("avid_volume_ml", 0.0, 3.0)
    assert r["rel_change"] is None and r["verdict"] == "worse"
    assert _one("tla", 0.0, 0.0)["verdict"] == "stable"
    assert _one("t2fs_z", 5.0, 1.0)["verdict"] == "no rule"


def test_custom_thresholds():
    t = ResponseThresholds(oedema_fraction_abs=0.05, suv_rel=0.2, suv_abs=0.1, volume_rel=0.2)
    assert _one("oedema_fraction", 0.30, 0.24, t)["verdict"] == "improved"
    assert _one("suv_peak", 1.0, 0.8, t)["verdict"] == "improved"
    assert _one("volume_ml", 100.0, 115.0, t)["verdict"] == "stable"
    assert t.as_dict()["suv_abs"] == 0.1


def test_none_nan_and_missing_are_not_measurable():
    base = {
        "R_VL": {"oedema_fraction": None, "suv_mean": 2.0, "volume_ml": float("nan")},
        "R_VM": {"oedema_fraction": 0.2},
    }
    fup = {
        "R_VL": {"oedema_fraction": 0.1, "suv_mean": 1.0, "volume_ml": 100.0},
        "L_VL": {"oedema_fraction": 0.5},
    }
    out = compare_visits(base, fup)
    assert set(out) == {"R_VL", "R_VM", "L_VL"}
    r = out["R_VL"]["oedema_fraction"]
    assert r == {
        "baseline": None,
        "followup": 0.1,
        "abs_change": None,
        "rel_change": None,
        "verdict": "not measurable",
    }
    assert out["R_VL"]["volume_ml"]["baseline"] is None
    assert out["R_VL"]["volume_ml"]["verdict"] == "not measurable"
    assert out["R_VL"]["suv_mean"]["verdict"] == "improved"  # -50% and -1.0 SUV
    assert out["R_VM"]["oedema_fraction"]["followup"] is None
    assert out["L_VL"]["oedema_fraction"]["verdict"] == "not measurable"
    # JSON without NaN.
    text = json.dumps(out, allow_nan=False)
    assert "NaN" not in text
    for row in out.values():
        for rec in row.values():
            assert rec["verdict"] in VERDICTS
            assert rec["abs_change"] is None or math.isfinite(rec["abs_change"])


def test_describe_rules_and_disclaimer():
    rules = describe_rules(ResponseThresholds(oedema_fraction_abs=0.15, suv_rel=0.25))
    assert "0.15" in rules["oedema_fraction"]
    assert "25%" in rules["suv_peak"] and "0.8" in rules["suv_peak"]
    assert "10%" in rules["volume_ml"]
    assert set(describe_rules()) >= {"oedema_fraction", "suv_mean", "suv_peak", "volume_ml"}
    assert "not validated" in RESPONSE_DISCLAIMER
    assert "user" in RESPONSE_DISCLAIMER
