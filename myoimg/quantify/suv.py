"""PET standardised uptake value (SUV) conversion following the QIBA vendor-neutral rules.

The conversion is a factor per slice that multiplies the *rescaled* pixel value
(RescaleSlope/Intercept already applied, as in :class:`myoimg.io.Volume`) to give
an SUV. Definitions (C = activity concentration in Bq/mL, D = injected dose in Bq
decayed to the time the pixel values refer to):

- SUVbw  = C * weight[g] / D                        (g/mL)
- SUVlbm = C * LBM[g] / D  ("SUL")                  (g/mL)
- SUVbsa = C * BSA[cm^2] / D                        (cm^2/mL)

Decay handling follows DecayCorrection (0054,1102): START (pixels decay-corrected
to the scan reference time: the dose is decayed from injection to that time),
ADMIN (pixels corrected to the injection time: no decay) and NONE (pixels are the
frame-average of the decaying activity: each slice is corrected to injection
time with its own frame start t_s and duration T,
``e^{lambda (t_s - t_inj)} * lambda T / (1 - e^{-lambda T})``).

The scan reference time (START) is SeriesDate/SeriesTime when not after the
earliest acquisition of the series, else the GE private scan datetime
(0009,xx0D, creator ``GEMS_PETD_01``), else the back-computation from Frame
Reference Time (QIBA: acquisition start - FrameReferenceTime + T_ave,
``T_ave = ln(lambda T / (1 - e^{-lambda T})) / lambda``), else the earliest
acquisition time. All times are compared exactly, to the microsecond, as naive
local times (see :mod:`myoimg.quantify.suv_time`).

Units: dose Bq, weight kg (g inside the factor), height m, times s, half-life s.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from myoimg.errors import SUVError
from myoimg.io.volume import Volume
from myoimg.quantify.suv_time import combine_da_tm, parse_dt, parse_tm

__all__ = [
    "SUVFactor",
    "SUVResult",
    "suv_factor",
    "compute_suv",
    "lean_body_mass_kg",
    "body_surface_area_m2",
    "HALF_LIFE_BY_CODE",
]

KINDS = {"bw": "body weight", "lbm": "lean body mass (SUL)", "bsa": "body surface area"}
LBM_FORMULAS = ("janmahasatian", "james")

#: Half-lives (s) by radionuclide code value of RadionuclideCodeSequence (0054,0300);
#: SNOMED-RT (SRT) and SNOMED-CT (SCT) codes of DICOM CID 4020.
HALF_LIFE_BY_CODE: dict[str, tuple[str, float]] = {
    "C-111A1": ("F-18", 6586.2),
    "77004003": ("F-18", 6586.2),
    "C-131A3": ("Ga-68", 4062.6),
    "35337001": ("Ga-68", 4062.6),
    "C-105A1": ("C-11", 1221.84),
    "40565003": ("C-11", 1221.84),
    "C-107A1": ("N-13", 597.9),
    "21576001": ("N-13", 597.9),
}

# Tags quoted in messages.
T_UNITS = "(0054,1001) Units"
T_DECAY = "(0054,1102) DecayCorrection"
T_CORR = "(0028,0051) CorrectedImage"
T_WEIGHT = "(0010,1030) PatientWeight"
T_SIZE = "(0010,1020) PatientSize"
T_SEX = "(0010,0040) PatientSex"
T_RPSEQ = "(0054,0016) RadiopharmaceuticalInformationSequence"
T_DOSE = "(0018,1074) RadionuclideTotalDose"
T_HALF = "(0018,1075) RadionuclideHalfLife"
T_START_DT = "(0018,1078) RadiopharmaceuticalStartDateTime"
T_START_TM = "(0018,1072) RadiopharmaceuticalStartTime"
T_SERIES_TM = "(0008,0031) SeriesTime"
T_ACQ_TM = "(0008,0032) AcquisitionTime"
T_DUR = "(0018,1242) ActualFrameDuration"
T_SUVTYPE = "(0054,1006) SUVType"
T_PHILIPS_SUV = "(7053,1000) Philips SUV scale factor"
T_PHILIPS_ACT = "(7053,1009) Philips activity concentration scale factor"
T_GE_SCAN = "(0009,100D) GE private scan datetime"
T_ENH_DUR = "(0018,9220) FrameAcquisitionDuration"
T_ENH_ACQ = "(0018,9074) FrameAcquisitionDateTime"

PHILIPS_CREATOR = "Philips PET Private Group"
GE_CREATOR = "GEMS_PETD_01"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class SUVFactor:
    """Per-slice multiplier from rescaled PET pixel values to SUV.

    Attributes
    ----------
    per_slice : numpy.ndarray
        float64, shape (n_slices,), read-only; SUV = rescaled value * per_slice[k]
        for slice k (ascending position along the slice normal, as loaded).
    kind : str
        "bw", "lbm" or "bsa".
    units : str
        The PET Units (0054,1001) of the input, e.g. "BQML".
    derivation : dict
        JSON-serialisable record of every input, rule and conversion used.
    """

    per_slice: np.ndarray
    kind: str
    units: str
    derivation: dict

    @property
    def is_constant(self) -> bool:
        """True when every slice has the same factor (relative tolerance 1e-12)."""
        p = self.per_slice
        return bool(np.allclose(p, p[0], rtol=1e-12, atol=0.0))

    @property
    def value(self) -> float:
        """The single factor of the series; SUVError when it varies per slice."""
        if not self.is_constant:
            raise SUVError(
                f"SUV factor varies per slice ({self.per_slice.min():.6g} to "
                f"{self.per_slice.max():.6g}); use per_slice",
                tag=T_DECAY,
            )
        return float(self.per_slice[0])

    def describe(self) -> str:
        """Multi-line human-readable account of the conversion."""
        d = self.derivation
        lines = [
            f"SUV{self.kind} ({KINDS[self.kind]}, {d.get('suv_units')}) from Units "
            f"{self.units}: {d.get('rule')}"
        ]

        def add(label: str, key: str, fmt: str = "{}", unit: str = "") -> None:
            if d.get(key) is not None:
                lines.append(f"  {label}: {fmt.format(d[key])}{unit}")

        add("decay correction", "decay_correction")
        if d.get("corrected_image"):
            lines.append(f"  corrected image: {', '.join(d['corrected_image'])}")
        if d.get("injected_dose_bq") is not None:
            lines.append(f"  injected dose: {d['injected_dose_bq'] / 1e6:.4g} MBq")
        add("injection time", "injection_datetime")
        add("  rule", "injection_rule")
        add("scan reference time", "scan_reference_datetime")
        add("  rule", "scan_reference_rule")
        add("elapsed", "elapsed_s", "{:.1f}", " s")
        if d.get("half_life_s") is not None:
            lines.append(f"  half-life: {d['half_life_s']:.6g} s ({d.get('half_life_source')})")
        add("decay factor", "decay_factor", "{:.6g}")
        add("weight", "weight_kg", "{:.4g}", " kg")
        add("height", "height_m", "{:.4g}", " m")
        add("sex", "sex")
        add("lean body mass", "lbm_kg", "{:.4g}", " kg")
        add("LBM formula", "lbm_formula")
        add("body surface area", "bsa_m2", "{:.4g}", " m^2")
        add("N (normaliser)", "normaliser")
        if d.get("per_slice_elapsed_s"):
            e = d["per_slice_elapsed_s"]
            lines.append(f"  frame starts: {min(e):.1f} to {max(e):.1f} s after injection")
        p = self.per_slice
        if self.is_constant:
            lines.append(f"  factor: {p[0]:.6g} (all {p.size} slices)")
        else:
            lines.append(f"  factor: {p.min():.6g} to {p.max():.6g} over {p.size} slices")
        for c in d.get("conversions", []):
            lines.append(f"  conversion: {c}")
        for w in d.get("warnings", []):
            lines.append(f"  WARNING: {w}")
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class SUVResult:
    """SUV image (float32, same geometry as the input) and the factor used."""

    image: sitk.Image
    factor: SUVFactor


# --------------------------------------------------------------------------- body size


def lean_body_mass_kg(weight_kg: float, height_m: float, sex: str, formula: str) -> float:
    """Lean body mass (kg).

    James 1976: male 1.10 W - 128 (W/H_cm)^2, female 1.07 W - 148 (W/H_cm)^2.
    Janmahasatian 2005: male 9270 W / (6680 + 216 BMI), female 9270 W / (8780 + 244 BMI),
    BMI = W / H_m^2. W in kg, sex "M" or "F".
    """
    w, h_cm = float(weight_kg), float(height_m) * 100.0
    male = sex == "M"
    if formula == "james":
        if male:
            return 1.10 * w - 128.0 * (w / h_cm) ** 2
        return 1.07 * w - 148.0 * (w / h_cm) ** 2
    if formula == "janmahasatian":
        bmi = w / float(height_m) ** 2
        if male:
            return 9270.0 * w / (6680.0 + 216.0 * bmi)
        return 9270.0 * w / (8780.0 + 244.0 * bmi)
    raise ValueError(f"unknown LBM formula {formula!r}; expected one of {LBM_FORMULAS}")


def body_surface_area_m2(weight_kg: float, height_m: float) -> float:
    """Du Bois body surface area (m^2): 0.007184 W^0.425 H_cm^0.725."""
    return 0.007184 * float(weight_kg) ** 0.425 * (float(height_m) * 100.0) ** 0.725


# --------------------------------------------------------------------------- helpers


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return str(value).strip().strip("\x00").strip()


def _multi_text(value: Any) -> list[str]:
    """Upper-case values of a possibly multi-valued CS element."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        return [v.strip().upper() for v in _text(value).split("\\") if v.strip()]
    return [_text(v).upper() for v in value if _text(v)]


def _to_float(value: Any) -> float:
    """Float from DS/FD/IS or the raw bytes of an unknown (UN) private element."""
    if isinstance(value, bytes):
        text = _text(value)
        try:
            return float(text)
        except ValueError:
            if len(value) == 8:
                return float(np.frombuffer(value, "<f8")[0])
            if len(value) == 4:
                return float(np.frombuffer(value, "<f4")[0])
            raise
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        if len(value) != 1:
            raise ValueError(f"expected one value, got {len(value)}")
        value = value[0]
    return float(value)


class _Ctx:
    """The headers of one series and the notes collected while converting."""

    def __init__(self, headers: Sequence[Any], source: str | None):
        self.headers = list(headers)
        self.source = source
        self.warnings: list[str] = []
        self.conversions: list[str] = []

    def path(self, k: int = 0) -> str | None:
        name = getattr(self.headers[k], "filename", None) if self.headers else None
        if isinstance(name, (str, Path)) and str(name):
            return str(name)
        return self.source

    def error(self, message: str, tag: str | None, k: int = 0) -> SUVError:
        return SUVError(message, self.path(k), tag)

    @property
    def tz(self) -> str | None:
        tz = _text(self.headers[0].get("TimezoneOffsetFromUTC"))
        return tz or None

    def dt(self, value: Any, tag: str, k: int = 0) -> _dt.datetime:
        try:
            return parse_dt(value, self.tz)
        except ValueError as exc:
            raise self.error(f"invalid DICOM date-time ({exc})", tag, k) from None

    def da_tm(self, da: Any, tm: Any, tag: str, k: int = 0) -> _dt.datetime:
        try:
            return combine_da_tm(da, tm)
        except ValueError as exc:
            raise self.error(f"invalid DICOM date/time ({exc})", tag, k) from None


def _private(ds: Any, group: int, offset: int, creator: str) -> tuple[Any, str | None]:
    """Value of private element ``(group, xx<offset>)`` reserved by ``creator``.

    Returns ``(value, note)``; value None when absent or reserved by another
    creator. Without any private creator element in the group, the conventional
    block 0x10 is read and a note is returned for the warnings.
    """
    creators = {
        tag.element: _text(ds[tag].value)
        for tag in ds.keys()
        if tag.group == group and 0x10 <= tag.element <= 0xFF
    }
    if creators:
        for block, name in creators.items():
            if name == creator:
                elem = ds.get((group, (block << 8) | offset))
                return (elem.value if elem is not None else None), None
        return None, None
    elem = ds.get((group, 0x1000 | offset))
    if elem is None or elem.value in (None, b"", ""):
        return None, None
    note = (
        f"private tag ({group:04X},{0x1000 | offset:04X}) read without its private "
        f"creator element (expected {creator!r})"
    )
    return elem.value, note


@dataclass
class _Frame:
    """Per-slice timing and vendor factors."""

    start: _dt.datetime | None  # acquisition start
    duration_ms: float | None
    reference_ms: float | None  # FrameReferenceTime
    philips_suv: float | None
    philips_act: float | None


def _classic_frames(ctx: _Ctx) -> list[_Frame]:
    frames = []
    date_fallback_noted = False
    for k, ds in enumerate(ctx.headers):
        start = None
        if _text(ds.get("AcquisitionDateTime")):
            start = ctx.dt(ds.AcquisitionDateTime, "(0008,002A) AcquisitionDateTime", k)
        elif _text(ds.get("AcquisitionTime")):
            da = ds.get("AcquisitionDate") or ds.get("SeriesDate") or ds.get("StudyDate")
            if not _text(da):
                raise ctx.error("acquisition time without any date", "(0008,0022)", k)
            if not _text(ds.get("AcquisitionDate")) and not date_fallback_noted:
                ctx.conversions.append("AcquisitionDate missing: SeriesDate/StudyDate used")
                date_fallback_noted = True
            start = ctx.da_tm(da, ds.AcquisitionTime, T_ACQ_TM, k)
        values = []
        for keyword, tag in (("ActualFrameDuration", T_DUR), ("FrameReferenceTime", "(0054,1300)")):
            raw = ds.get(keyword)
            try:
                values.append(_to_float(raw) if _text(raw) else None)
            except (TypeError, ValueError):
                raise ctx.error(f"invalid {keyword} {raw!r}", tag, k) from None
        philips = []
        for offset, tag in ((0x00, T_PHILIPS_SUV), (0x09, T_PHILIPS_ACT)):
            raw, note = _private(ds, 0x7053, offset, PHILIPS_CREATOR)
            if note and note not in ctx.warnings:
                ctx.warnings.append(note)
            try:
                philips.append(_to_float(raw) if raw not in (None, b"", "") else None)
            except (TypeError, ValueError):
                raise ctx.error(f"invalid value {raw!r}", tag, k) from None
        frames.append(_Frame(start, values[0], values[1], philips[0], philips[1]))
    return frames


def _enhanced_frames(ctx: _Ctx) -> tuple[list[_Frame], np.ndarray]:
    """Per-frame timing of an Enhanced PET object, and the loader's slice order."""
    ds = ctx.headers[0]
    per_frame = ds.PerFrameFunctionalGroupsSequence
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared = shared[0] if shared else None

    def group(item: Any, keyword: str) -> Any:
        for container in (item, shared):
            if container is not None and keyword in container and container[keyword].value:
                return container[keyword].value[0]
        return None

    frames, proj = [], []
    for f, item in enumerate(per_frame):
        content = group(item, "FrameContentSequence")
        start = dur = None
        if content is not None:
            if _text(content.get("FrameAcquisitionDateTime")):
                start = ctx.dt(content.FrameAcquisitionDateTime, f"{T_ENH_ACQ} of frame {f + 1}")
            if content.get("FrameAcquisitionDuration") is not None:
                dur = float(content.FrameAcquisitionDuration)
        frames.append(_Frame(start, dur, None, None, None))
        pos, ori = group(item, "PlanePositionSequence"), group(item, "PlaneOrientationSequence")
        try:
            ipp = np.asarray(pos.ImagePositionPatient, float)
            iop = np.asarray(ori.ImageOrientationPatient, float)
            proj.append(float(ipp @ np.cross(iop[:3], iop[3:])))
        except (AttributeError, TypeError, ValueError):
            proj.append(float(f))
    # Same order as myoimg.io: ascending position along the slice normal.
    order = np.argsort(np.asarray(proj), kind="stable")
    return frames, order


def _radiopharm(ctx: _Ctx, k: int = 0) -> Any:
    seq = ctx.headers[k].get("RadiopharmaceuticalInformationSequence")
    if not seq:
        raise ctx.error("no radiopharmaceutical information", T_RPSEQ, k)
    if len(seq) > 1 and k == 0:
        ctx.warnings.append(
            f"{len(seq)} radiopharmaceutical items (multiple injections?): the first is used"
        )
    return seq[0]


def _float_attr(ctx: _Ctx, ds: Any, keyword: str, tag: str, k: int = 0) -> float | None:
    raw = ds.get(keyword) if ds is not None else None
    if raw is None or _text(raw) == "":
        return None
    try:
        return _to_float(raw)
    except (TypeError, ValueError):
        raise ctx.error(f"invalid {keyword} {raw!r}", tag, k) from None


def _dose_bq(ctx: _Ctx, deriv: dict) -> float:
    dose = _float_attr(ctx, _radiopharm(ctx), "RadionuclideTotalDose", T_DOSE)
    if dose is None or not math.isfinite(dose) or dose <= 0:
        raise ctx.error("injected dose missing or not positive", T_DOSE)
    if dose < 1e5:
        # Some consoles store MBq: 1 MBq..10 GBq read as MBq; anything else is no dose.
        if 1.0 <= dose <= 1e4:
            ctx.warnings.append(f"RadionuclideTotalDose {dose:g} is implausible in Bq: read as MBq")
            ctx.conversions.append(f"dose {dose:g} MBq -> {dose * 1e6:g} Bq")
            dose *= 1e6
        else:
            raise ctx.error(f"implausible injected dose {dose:g} Bq", T_DOSE)
    if dose > 1e11:
        raise ctx.error(f"implausible injected dose {dose:g} Bq (> 100 GBq)", T_DOSE)
    deriv["injected_dose_bq"] = dose
    return dose


def _half_life_s(ctx: _Ctx, deriv: dict) -> float:
    item = _radiopharm(ctx)
    half = _float_attr(ctx, item, "RadionuclideHalfLife", T_HALF)
    if half is not None and half > 0:
        deriv["half_life_s"], deriv["half_life_source"] = half, "RadionuclideHalfLife (0018,1075)"
        return half
    codes = item.get("RadionuclideCodeSequence") or []
    for code in codes:
        value = _text(code.get("CodeValue"))
        if value in HALF_LIFE_BY_CODE:
            name, half = HALF_LIFE_BY_CODE[value]
            deriv["half_life_s"] = half
            deriv["half_life_source"] = f"RadionuclideCodeSequence code {value} ({name})"
            ctx.conversions.append(f"half-life {half} s of {name} from its radionuclide code")
            return half
    raise ctx.error(
        "radionuclide half-life missing (and no known RadionuclideCodeSequence code)", T_HALF
    )


def _weight_kg(ctx: _Ctx, deriv: dict) -> float:
    w = _float_attr(ctx, ctx.headers[0], "PatientWeight", T_WEIGHT)
    if w is None or not math.isfinite(w) or w <= 0:
        raise ctx.error("patient weight missing or zero", T_WEIGHT)
    if w > 300:
        ctx.warnings.append(f"PatientWeight {w:g} is implausible in kg: read as grams")
        ctx.conversions.append(f"weight {w:g} g -> {w / 1000:g} kg")
        w /= 1000.0
        if w > 300:
            raise ctx.error(f"implausible patient weight {w * 1000:g}", T_WEIGHT)
    deriv["weight_kg"] = w
    return w


def _height_m(ctx: _Ctx, deriv: dict) -> float:
    h = _float_attr(ctx, ctx.headers[0], "PatientSize", T_SIZE)
    if h is None or not math.isfinite(h) or h <= 0:
        raise ctx.error("patient height missing or zero (needed for SUL/SUVbsa)", T_SIZE)
    if 50 <= h <= 300:
        ctx.warnings.append(f"PatientSize {h:g} is implausible in m: read as cm")
        ctx.conversions.append(f"height {h:g} cm -> {h / 100:g} m")
        h /= 100.0
    if not 0.3 <= h <= 3.0:
        raise ctx.error(f"implausible patient height {h:g} m", T_SIZE)
    deriv["height_m"] = h
    return h


def _normaliser(ctx: _Ctx, kind: str, lbm_formula: str, deriv: dict) -> float:
    """Weight (g), lean body mass (g) or body surface area (cm^2) for the SUV kind."""
    w = _weight_kg(ctx, deriv)
    if kind == "bw":
        deriv["normaliser"] = f"{w * 1000.0:.6g} g (body weight)"
        return w * 1000.0
    h = _height_m(ctx, deriv)
    if kind == "bsa":
        bsa = body_surface_area_m2(w, h)
        deriv["bsa_m2"] = bsa
        deriv["normaliser"] = f"{bsa * 1e4:.6g} cm^2 (Du Bois body surface area)"
        return bsa * 1e4
    sex = _text(ctx.headers[0].get("PatientSex")).upper()
    if sex not in ("M", "F"):
        raise ctx.error(f"patient sex {sex or 'missing'!r} is not M or F (needed for SUL)", T_SEX)
    lbm = lean_body_mass_kg(w, h, sex, lbm_formula)
    deriv["sex"], deriv["lbm_formula"], deriv["lbm_kg"] = sex, lbm_formula, lbm
    if not lbm > 0:
        raise ctx.error(f"{lbm_formula} formula gives a non-positive lean body mass", T_WEIGHT)
    deriv["normaliser"] = f"{lbm * 1000.0:.6g} g (lean body mass, {lbm_formula})"
    if lbm_formula == "james" and w / h**2 > 35:
        ctx.warnings.append("James LBM formula is unreliable for BMI > 35 (use janmahasatian)")
    return lbm * 1000.0


def _check_gap(ctx: _Ctx, elapsed: float, half: float, tag: str, k: int = 0) -> None:
    if elapsed < 0:
        raise ctx.error(f"injection is {-elapsed:.0f} s after the time the image refers to", tag, k)
    if half < 7200 and elapsed > 6 * 3600:
        raise ctx.error(
            f"implausible {elapsed / 3600:.2f} h between injection and scan for a "
            f"{half:.0f} s half-life",
            tag,
            k,
        )
    if elapsed > 10 * half:
        raise ctx.error(
            f"implausible {elapsed:.0f} s (> 10 half-lives) between injection and scan", tag, k
        )


def _injection(ctx: _Ctx, ref: _dt.datetime, deriv: dict) -> tuple[_dt.datetime, str]:
    """Injection datetime; a bare time-of-day is placed on ``ref``'s date or the day before."""
    item = _radiopharm(ctx)
    if _text(item.get("RadiopharmaceuticalStartDateTime")):
        inj = ctx.dt(item.RadiopharmaceuticalStartDateTime, T_START_DT)
        rule, tag = "RadiopharmaceuticalStartDateTime (0018,1078)", T_START_DT
    elif _text(item.get("RadiopharmaceuticalStartTime")):
        try:
            tod = parse_tm(item.RadiopharmaceuticalStartTime)
        except ValueError as exc:
            raise ctx.error(f"invalid injection time ({exc})", T_START_TM) from None
        inj = _dt.datetime.combine(ref.date(), tod)
        rule = "RadiopharmaceuticalStartTime (0018,1072) on the date of the reference time"
        tag = T_START_TM
        if inj > ref:
            inj -= _dt.timedelta(days=1)
            rule += ", previous day (injection before midnight)"
            ctx.conversions.append("injection time-of-day later than scan: previous day")
    else:
        raise ctx.error("injection time missing", f"{T_START_DT} / {T_START_TM}")
    deriv["injection_datetime"] = inj.isoformat()
    deriv["injection_rule"] = rule
    return inj, tag


def _scan_reference(ctx: _Ctx, frames: list[_Frame], half: float, deriv: dict) -> _dt.datetime:
    """Scan reference datetime for DecayCorrection START (QIBA order of rules)."""
    ds = ctx.headers[0]
    series = None
    if _text(ds.get("SeriesDate")) and _text(ds.get("SeriesTime")):
        series = ctx.da_tm(ds.SeriesDate, ds.SeriesTime, T_SERIES_TM)
    timed = [(f.start, k) for k, f in enumerate(frames) if f.start is not None]
    earliest, k0 = min(timed) if timed else (None, 0)
    if series is not None and (earliest is None or series <= earliest):
        ref, rule = series, "SeriesDate/SeriesTime (not after the earliest acquisition)"
    else:
        why = "SeriesTime missing" if series is None else "series time after acquisition"
        raw, note = _private(ds, 0x0009, 0x0D, GE_CREATOR)
        if raw not in (None, b"", ""):
            if note:
                ctx.warnings.append(note)
            ref, rule = ctx.dt(raw, T_GE_SCAN), f"GE private scan datetime (0009,100D) ({why})"
        elif earliest is None:
            raise ctx.error("no scan reference time (series or acquisition)", T_SERIES_TM)
        elif (frames[k0].reference_ms or 0) > 0 and (frames[k0].duration_ms or 0) > 0:
            lam = math.log(2) / half
            dur = frames[k0].duration_ms / 1000.0
            t_ave = math.log(lam * dur / -math.expm1(-lam * dur)) / lam
            ref = (
                earliest
                - _dt.timedelta(seconds=frames[k0].reference_ms / 1000.0)
                + _dt.timedelta(seconds=t_ave)
            )
            rule = (
                f"back-computed from FrameReferenceTime (0054,1300) and ActualFrameDuration "
                f"(T_ave {t_ave:.3f} s) of the earliest acquisition ({why})"
            )
        else:
            ref, rule = earliest, f"earliest AcquisitionDate/Time of the series ({why})"
    deriv["scan_reference_datetime"] = ref.isoformat()
    deriv["scan_reference_rule"] = rule
    return ref


def _check_consistent(ctx: _Ctx) -> None:
    """Series-level attributes must agree across slices."""

    def norm(value: Any) -> str:
        text = _text(value)
        try:  # "70" and "70.0" are the same weight
            return repr(float(text))
        except ValueError:
            return text

    def sig(ds: Any) -> dict[str, str]:
        seq = ds.get("RadiopharmaceuticalInformationSequence") or [None]
        item = seq[0]
        out = {
            T_UNITS: _text(ds.get("Units")),
            T_DECAY: _text(ds.get("DecayCorrection")),
            T_WEIGHT: norm(ds.get("PatientWeight")),
        }
        if item is not None:
            for key, tag in (
                ("RadionuclideTotalDose", T_DOSE),
                ("RadiopharmaceuticalStartTime", T_START_TM),
                ("RadiopharmaceuticalStartDateTime", T_START_DT),
                ("RadionuclideHalfLife", T_HALF),
            ):
                out[tag] = norm(item.get(key))
        return out

    ref = sig(ctx.headers[0])
    for k, ds in enumerate(ctx.headers[1:], start=1):
        other = sig(ds)
        for tag, value in ref.items():
            if other.get(tag) != value:
                raise ctx.error(
                    f"slice {k + 1} differs from slice 1 ({other.get(tag)!r} vs {value!r})",
                    tag,
                    k,
                )


# --------------------------------------------------------------------------- rules


def _activity_factor(
    ctx: _Ctx,
    frames: list[_Frame],
    normaliser: float,
    decay_mode: str,
    corrected: list[str],
    deriv: dict,
    enhanced_reference: _dt.datetime | None = None,
) -> np.ndarray:
    """Factor from Bq/mL to SUV: normaliser / (dose decayed to the pixels' time)."""
    if "ATTN" not in corrected:
        raise ctx.error(f"image not attenuation corrected (ATTN missing in {corrected})", T_CORR)
    dose = _dose_bq(ctx, deriv)
    half = _half_life_s(ctx, deriv)
    lam = math.log(2) / half
    n = len(frames)
    if decay_mode == "ADMIN":
        if "DECY" not in corrected:
            raise ctx.error("DecayCorrection ADMIN but DECY missing in CorrectedImage", T_CORR)
        deriv["rule"] = "QIBA: decay-corrected to administration; SUV = C * N / dose"
        deriv["decay_factor"] = 1.0
        return np.full(n, normaliser / dose)
    if decay_mode == "START":
        if "DECY" not in corrected:
            raise ctx.error(
                f"DecayCorrection START but DECY missing in CorrectedImage {corrected}", T_CORR
            )
        if enhanced_reference is not None:
            ref = enhanced_reference
            deriv["scan_reference_datetime"] = ref.isoformat()
            deriv["scan_reference_rule"] = "DecayCorrectionDateTime (0018,9701)"
        else:
            ref = _scan_reference(ctx, frames, half, deriv)
        inj, tag = _injection(ctx, ref, deriv)
        elapsed = (ref - inj).total_seconds()
        _check_gap(ctx, elapsed, half, tag)
        decay = 2.0 ** (-elapsed / half)
        deriv["elapsed_s"], deriv["decay_factor"] = elapsed, decay
        deriv["rule"] = "QIBA: decay-corrected to scan start; SUV = C * N / (dose * 2^(-dt/T1/2))"
        return np.full(n, normaliser / (dose * decay))
    if decay_mode == "NONE":
        if "DECY" in corrected:
            raise ctx.error("DecayCorrection NONE contradicts DECY in CorrectedImage", T_CORR)
        missing = [k for k, f in enumerate(frames) if f.start is None]
        if missing:
            raise ctx.error(
                f"DecayCorrection NONE needs each slice's acquisition time; slice "
                f"{missing[0] + 1} has none",
                T_ACQ_TM,
                missing[0] if len(ctx.headers) > 1 else 0,
            )
        earliest = min(f.start for f in frames)
        inj, tag = _injection(ctx, earliest, deriv)
        per = np.empty(n)
        elapsed_all, dur_all = [], []
        for k, f in enumerate(frames):
            kh = k if len(ctx.headers) > 1 else 0
            if f.duration_ms is None or f.duration_ms <= 0:
                tag_d = T_DUR if len(ctx.headers) > 1 else T_ENH_DUR
                raise ctx.error(
                    f"DecayCorrection NONE needs the frame duration of slice {k + 1}", tag_d, kh
                )
            elapsed = (f.start - inj).total_seconds()
            _check_gap(ctx, elapsed, half, tag, kh)
            lt = lam * f.duration_ms / 1000.0
            # Undo the decay to frame start and the decay averaged over the frame.
            per[k] = normaliser / dose * math.exp(lam * elapsed) * lt / -math.expm1(-lt)
            elapsed_all.append(elapsed)
            dur_all.append(f.duration_ms / 1000.0)
        deriv["rule"] = (
            "not decay-corrected: each slice corrected to injection, "
            "SUV = C * N / dose * e^(lambda (t_start - t_inj)) * lambda T / (1 - e^(-lambda T))"
        )
        deriv["per_slice_elapsed_s"] = elapsed_all
        deriv["per_slice_frame_duration_s"] = dur_all
        return per
    raise ctx.error(f"unsupported decay correction {decay_mode!r}", T_DECAY)


def suv_factor(
    headers: Sequence[Any],
    *,
    kind: str = "bw",
    lbm_formula: str = "janmahasatian",
    source: str | None = None,
) -> SUVFactor:
    """SUV conversion factor per slice of one PET series, by the QIBA rules.

    Parameters
    ----------
    headers : sequence of pydicom.Dataset
        Header-only datasets of one PET series in slice order (one per slice), or a
        single Enhanced PET multi-frame dataset (per-frame timing from
        PerFrameFunctionalGroupsSequence/FrameContentSequence; frames are ordered
        by position along the slice normal like :mod:`myoimg.io`).
    kind : {"bw", "lbm", "bsa"}
        SUV normalisation: body weight (g/mL), lean body mass (SUL, g/mL) or Du Bois
        body surface area (cm^2/mL).
    lbm_formula : {"janmahasatian", "james"}
        Lean body mass formula for ``kind="lbm"``.
    source : str, optional
        Name used in error messages when the datasets carry no ``filename``.

    Returns
    -------
    SUVFactor
        ``per_slice`` (n_slices,) multiplies the rescaled pixel values.

    Raises
    ------
    SUVError
        Any missing, invalid or contradictory attribute (file and tag named).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown SUV kind {kind!r}; expected one of {tuple(KINDS)}")
    if lbm_formula not in LBM_FORMULAS:
        raise ValueError(f"unknown LBM formula {lbm_formula!r}; expected one of {LBM_FORMULAS}")
    if not headers:
        raise SUVError("no PET headers (NIfTI input cannot be converted to SUV)", source, None)
    ctx = _Ctx(headers, source)
    first = ctx.headers[0]
    enhanced = len(ctx.headers) == 1 and "PerFrameFunctionalGroupsSequence" in first
    order = None
    if enhanced:
        frames, order = _enhanced_frames(ctx)
    else:
        frames = _classic_frames(ctx)
        _check_consistent(ctx)
    units = _text(first.get("Units")).upper()
    deriv: dict[str, Any] = {
        "kind": kind,
        "suv_units": "cm2/mL" if kind == "bsa" else "g/mL",
        "units": units,
        "n_slices": len(frames),
        "enhanced_multiframe": enhanced,
    }
    corrected = _multi_text(first.get("CorrectedImage"))
    deriv["corrected_image"] = corrected

    if units == "GML":
        per = _gml(ctx, kind, lbm_formula, len(frames), deriv)
    elif units == "CM2ML":
        if kind != "bsa":
            raise ctx.error(
                f"Units CM2ML are SUVbsa; refusing to report them as SUV{kind}", T_UNITS
            )
        deriv["rule"] = "Units CM2ML: pixels already SUVbsa (factor 1)"
        per = np.ones(len(frames))
    elif units in ("BQML", "CNTS"):
        decay_mode, enhanced_ref = _decay_mode(ctx, enhanced, corrected)
        deriv["decay_correction"] = decay_mode
        if units == "CNTS":
            per = _philips(ctx, frames, kind, lbm_formula, decay_mode, corrected, deriv)
        else:
            normaliser = _normaliser(ctx, kind, lbm_formula, deriv)
            per = _activity_factor(
                ctx, frames, normaliser, decay_mode, corrected, deriv, enhanced_ref
            )
    elif not units:
        raise ctx.error("PET Units missing", T_UNITS)
    else:
        raise ctx.error(f"unsupported PET Units {units!r}", T_UNITS)

    per = np.asarray(per, dtype=np.float64)
    if order is not None:
        per = per[order]
        if "per_slice_elapsed_s" in deriv:
            for key in ("per_slice_elapsed_s", "per_slice_frame_duration_s"):
                deriv[key] = [deriv[key][i] for i in order]
    if not np.all(np.isfinite(per)) or np.any(per <= 0):
        raise ctx.error("SUV factor is not a positive finite number", T_UNITS)
    per.setflags(write=False)
    deriv["factor_min"], deriv["factor_max"] = float(per.min()), float(per.max())
    deriv["conversions"] = list(ctx.conversions)
    deriv["warnings"] = list(ctx.warnings)
    return SUVFactor(per_slice=per, kind=kind, units=units, derivation=_jsonable(deriv))


def _decay_mode(ctx: _Ctx, enhanced: bool, corrected: list[str]) -> tuple[str, _dt.datetime | None]:
    ds = ctx.headers[0]
    mode = _text(ds.get("DecayCorrection")).upper()
    if enhanced and not mode:
        # Enhanced PET: DecayCorrected (0018,9758) and DecayCorrectionDateTime (0018,9701).
        flag = _text(ds.get("DecayCorrected")).upper()
        if _text(ds.get("AttenuationCorrected")).upper() == "YES" and "ATTN" not in corrected:
            corrected.append("ATTN")
        if flag == "YES":
            if "DECY" not in corrected:
                corrected.append("DECY")
            raw = ds.get("DecayCorrectionDateTime")
            if not _text(raw):
                raise ctx.error("decay-corrected but no reference time", "(0018,9701)")
            return "START", ctx.dt(raw, "(0018,9701) DecayCorrectionDateTime")
        if flag == "NO":
            return "NONE", None
        raise ctx.error("decay correction state missing", "(0018,9758) DecayCorrected")
    if not mode:
        raise ctx.error("DecayCorrection missing", T_DECAY)
    if mode not in ("START", "ADMIN", "NONE"):
        raise ctx.error(f"unsupported DecayCorrection {mode!r}", T_DECAY)
    return mode, None


def _philips(
    ctx: _Ctx,
    frames: list[_Frame],
    kind: str,
    lbm_formula: str,
    decay_mode: str,
    corrected: list[str],
    deriv: dict,
) -> np.ndarray:
    suv = [f.philips_suv for f in frames]
    act = [f.philips_act for f in frames]
    if any(v is not None for v in suv):
        if any(v is None or v <= 0 for v in suv):
            k = next(i for i, v in enumerate(suv) if v is None or v <= 0)
            raise ctx.error(f"slice {k + 1} lacks a positive SUV scale factor", T_PHILIPS_SUV, k)
        if "ATTN" not in corrected:
            raise ctx.error(f"image not attenuation corrected ({corrected})", T_CORR)
        per = np.asarray(suv, float)
        deriv["rule"] = "Units CNTS: Philips private SUV scale factor (7053,1000) per slice"
        if kind != "bw":
            normaliser = _normaliser(ctx, kind, lbm_formula, deriv)
            w_g = deriv["weight_kg"] * 1000.0
            ctx.conversions.append(f"SUVbw -> SUV{kind}: x {normaliser:g} / {w_g:g} g")
            per = per * normaliser / w_g
        return per
    if any(v is not None for v in act):
        if any(v is None or v <= 0 for v in act):
            k = next(i for i, v in enumerate(act) if v is None or v <= 0)
            raise ctx.error(f"slice {k + 1} lacks a positive activity factor", T_PHILIPS_ACT, k)
        ctx.conversions.append("Units CNTS: Bq/mL = rescaled value x Philips (7053,1009) per slice")
        normaliser = _normaliser(ctx, kind, lbm_formula, deriv)
        per = _activity_factor(ctx, frames, normaliser, decay_mode, corrected, deriv)
        deriv["rule"] = "Units CNTS via Philips (7053,1009) to Bq/mL, then " + deriv["rule"]
        return per * np.asarray(act, float)
    raise ctx.error(
        "Units CNTS without Philips SUV (7053,1000) or activity (7053,1009) scale factor",
        T_PHILIPS_SUV,
    )


def _gml(ctx: _Ctx, kind: str, lbm_formula: str, n: int, deriv: dict) -> np.ndarray:
    suv_type = _text(ctx.headers[0].get("SUVType")).upper()
    if not suv_type:
        suv_type = "BW"
        ctx.warnings.append("Units GML without SUVType (0054,1006): assumed body weight (BW)")
    deriv["suv_type"] = suv_type
    stored = {"BW": "bw", "LBM": "lbm", "BSA": "bsa"}.get(suv_type)
    if stored == kind:
        deriv["rule"] = f"Units GML with SUVType {suv_type}: pixels already SUV{kind} (factor 1)"
        if kind == "lbm":
            ctx.warnings.append("vendor SUL: the lean body mass formula used is not recorded")
        return np.ones(n)
    if stored == "bw":
        # SUVbw = C W / D, so SUVx = SUVbw * N / W.
        normaliser = _normaliser(ctx, kind, lbm_formula, deriv)
        w_g = deriv["weight_kg"] * 1000.0
        ctx.conversions.append(f"SUVbw -> SUV{kind}: x {normaliser:g} / {w_g:g} g")
        deriv["rule"] = f"Units GML (SUVbw) converted to SUV{kind}"
        return np.full(n, normaliser / w_g)
    raise ctx.error(
        f"Units GML with SUVType {suv_type!r} cannot be converted to SUV{kind}", T_SUVTYPE
    )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    return obj


# --------------------------------------------------------------------------- images


def compute_suv(
    volume: Volume, *, kind: str = "bw", lbm_formula: str = "janmahasatian"
) -> SUVResult:
    """Convert a loaded PET volume to SUV.

    Parameters
    ----------
    volume : Volume
        PET volume (rescaled values, array (k, j, i)) with its DICOM headers.
    kind, lbm_formula
        See :func:`suv_factor`.

    Returns
    -------
    SUVResult
        ``image``: float32 SUV image with the geometry of ``volume.image``;
        ``factor``: the :class:`SUVFactor` applied (slice k multiplied by
        ``per_slice[k]``).
    """
    factor = suv_factor(
        volume.headers, kind=kind, lbm_formula=lbm_formula, source=volume.source or None
    )
    array = sitk.GetArrayViewFromImage(volume.image)
    n = array.shape[0] if array.ndim == 3 else 1
    per = factor.per_slice
    if per.size != n:
        if not factor.is_constant:
            raise SUVError(
                f"{per.size} slice factors for {n} image slices (resampled volume?) "
                "and the factor varies per slice",
                volume.source or None,
                T_DECAY,
            )
        per = np.full(n, per[0])
    shape = (n,) + (1,) * (array.ndim - 1) if array.ndim == 3 else ()
    scale = per.reshape(shape) if shape else per[0]
    out = sitk.GetImageFromArray((array.astype(np.float64) * scale).astype(np.float32))
    out.CopyInformation(volume.image)
    return SUVResult(image=out, factor=factor)
