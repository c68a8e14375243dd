"""Inputs of the report: results.json, the saved NIfTI volumes, and value formatting.

Everything the report shows comes from ``OUT/results.json`` and the volumes it lists
(paths relative to OUT), so a report can be re-rendered without the DICOM input.

Geometry: every volume is re-oriented to DICOM LPS axes after loading, so the NumPy
arrays are indexed ``[k, j, i]`` with i toward patient Left, j toward Posterior and
k toward Superior. Displaying ``array[k]`` with row 0 at the top therefore gives the
radiological view (patient right on the image's left, anterior at the top).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from myoimg.errors import MyoimgError
from myoimg.labels import BY_NAME, QUADRICEPS
from myoimg.quantify.metrics import METRIC_UNITS

__all__ = [
    "METRICS",
    "SUMMARY_METRICS",
    "VisitImages",
    "ReportData",
    "load_report_data",
    "read_lps",
    "pseudonym",
    "pseudonym_key",
    "pseudonym_uid",
    "PseudonymKey",
    "PSEUDONYM_KEY_ENV",
    "fmt_value",
    "fmt_change",
    "fmt_rel",
    "largest_area_slice",
    "slice_profile",
    "muscle_values",
]

# metric key -> (display name, format of a value); units come from myoimg.quantify.metrics.
_DISPLAY: dict[str, tuple[str, str]] = {
    "volume_ml": ("Volume", "{:.1f}"),
    "oedema_fraction": ("Oedema fraction", "{:.3f}"),
    "oedema_volume_ml": ("Oedema volume", "{:.1f}"),
    "t2fs_norm_mean": ("T2-FS norm. mean", "{:.2f}"),
    "t2fs_norm_median": ("T2-FS norm. median", "{:.2f}"),
    "t2fs_z": ("T2-FS z-score", "{:.1f}"),
    "suv_mean": ("SUVmean", "{:.2f}"),
    "suv_sd": ("SUV SD", "{:.2f}"),
    "suv_median": ("SUVmedian", "{:.2f}"),
    "suv_max": ("SUVmax", "{:.2f}"),
    "suv_peak": ("SUVpeak", "{:.2f}"),
    "avid_volume_ml": ("Avid volume", "{:.1f}"),
    "tla": ("TLA", "{:.1f}"),
    "tbr": ("TBR", "{:.2f}"),
}
METRICS: dict[str, tuple[str, str, str]] = {
    key: (_DISPLAY[key][0], unit, _DISPLAY[key][1]) for key, unit in METRIC_UNITS.items()
}
#: Metrics of the summary table (one row per muscle and metric).
SUMMARY_METRICS: tuple[str, ...] = (
    "oedema_fraction",
    "suv_mean",
    "suv_max",
    "suv_peak",
    "volume_ml",
)

NA = "n/a"

log = logging.getLogger("myoimg")


def _number(value: Any) -> float | None:
    """A finite float, or None for null / non-numeric / NaN / inf."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt_value(metric: str, value: Any) -> str:
    """Text of one metric value as printed in every table ("n/a" when missing)."""
    f = _number(value)
    if f is None:
        return NA
    spec = METRICS.get(metric, ("", "", "{:.3g}"))[2]
    return spec.format(f)


def fmt_change(metric: str, value: Any) -> str:
    """Signed absolute change with the metric's precision, e.g. ``-0.380``."""
    f = _number(value)
    if f is None:
        return NA
    spec = METRICS.get(metric, ("", "", "{:.3g}"))[2]
    return spec.replace("{:", "{:+").format(f)


def fmt_rel(value: Any) -> str:
    """Relative change (fraction) as a signed percentage, e.g. ``-93%``."""
    f = _number(value)
    if f is None:
        return NA
    return f"{100.0 * f:+.0f}%"


#: Environment variable holding a pseudonym key as text (its UTF-8 bytes are the key).
PSEUDONYM_KEY_ENV = "MYOIMG_PSEUDONYM_KEY"
_KEY_SOURCES = {
    "file": "hmac-sha256, key from file",
    "environment": "hmac-sha256, key from environment",
    "random": "hmac-sha256, random key per run",
}
_MIN_KEY_BYTES = 16  # shorter keys can themselves be guessed; warned about, not refused

# Random key of this process (one CLI run), drawn on first use and never written anywhere.
# It is what keeps pseudonyms consistent within a run (baseline and follow-up, results
# and report) when no key is given, while no later run can reproduce them.
_run_key: bytes | None = None


def _process_key() -> bytes:
    global _run_key
    if _run_key is None:
        _run_key = secrets.token_bytes(32)
    return _run_key


@dataclass(frozen=True)
class PseudonymKey:
    """A pseudonym key and where it came from (see :func:`pseudonym_key`).

    ``key`` is kept out of ``repr`` so that it cannot end up in a log line by accident.
    """

    key: bytes = field(repr=False)
    source: str  # "file", "environment" or "random"

    @property
    def method(self) -> str:
        """How pseudonyms are made, for results.json / the report (never the key)."""
        return _KEY_SOURCES[self.source]


def pseudonym_key(
    key_file: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    warn: bool = True,
) -> PseudonymKey:
    """The key of keyed pseudonyms, in order of precedence.

    1. ``key_file`` (CLI ``--pseudonym-key-file``): the file's bytes, without trailing
       newline characters (so ``echo secret > key`` and ``MYOIMG_PSEUDONYM_KEY=secret``
       give the same key).
    2. The environment variable ``MYOIMG_PSEUDONYM_KEY``: its UTF-8 bytes.
    3. Neither: a random 32-byte key drawn once per process (one CLI run). Pseudonyms
       are then consistent within the run (baseline and follow-up of one ``compare``)
       but cannot be linked to any other run.

    With 1 or 2 the same key gives the same pseudonym in every run, so a study can link
    visits and runs; keep the key secret and away from the outputs.

    Parameters
    ----------
    key_file : path, optional
    environ : mapping, optional
        Environment to read (default ``os.environ``).
    warn : bool
        Log a warning (logger "myoimg") when the key is random per run or shorter than
        16 bytes. The id and the key are never logged.

    Raises
    ------
    MyoimgError
        The key file is missing, unreadable or empty, or the environment variable is
        set but empty (an empty key would make the pseudonyms enumerable again).
    """
    if key_file is not None:
        path = Path(key_file)
        try:
            key = path.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            reason = "not found" if isinstance(exc, FileNotFoundError) else exc.strerror or exc
            raise MyoimgError(f"pseudonym key file {path} cannot be read ({reason})") from None
        if not key:
            raise MyoimgError(f"pseudonym key file {path} is empty")
        found = PseudonymKey(key, "file")
    else:
        env = os.environ if environ is None else environ
        text = env.get(PSEUDONYM_KEY_ENV)
        if text is None:
            if warn:
                log.warning(
                    "no pseudonym key given (--pseudonym-key-file or %s): pseudonyms use a "
                    "random key of this run only and cannot be linked to other runs",
                    PSEUDONYM_KEY_ENV,
                )
            return PseudonymKey(_process_key(), "random")
        if not text:
            raise MyoimgError(f"environment variable {PSEUDONYM_KEY_ENV} is set but empty")
        found = PseudonymKey(text.encode("utf-8"), "environment")
    if warn and len(found.key) < _MIN_KEY_BYTES:
        log.warning("the pseudonym key (from %s) is shorter than %d bytes and may be guessed",
                    found.source, _MIN_KEY_BYTES)
    return found


def pseudonym(patient_id: str, key: bytes | None = None) -> str:
    """Keyed pseudonym of a patient id: ``anon-`` + 12 hex digits of HMAC-SHA256.

    An unkeyed hash of a short id (e.g. a 7-digit MRN) is re-identified by hashing every
    possible id; with a secret key that enumeration needs the key.

    Parameters
    ----------
    patient_id : str
        The identifier (e.g. DICOM PatientID), hashed as UTF-8.
    key : bytes, optional
        Secret key. Default: the key of :func:`pseudonym_key` without a file, i.e.
        ``MYOIMG_PSEUDONYM_KEY`` if set, else this process's random run key.

    Returns
    -------
    str
        E.g. ``anon-3f9a0c1b2d4e``. Same id and key -> same pseudonym.
    """
    if key is None:
        key = pseudonym_key(warn=False).key
    if not key:
        raise ValueError("empty pseudonym key")
    digest = hmac.new(key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"anon-{digest[:12]}"


def pseudonym_uid(uid: str, key: bytes) -> str:
    """Keyed replacement of a DICOM UID: ``2.25.`` + 128 bits of HMAC-SHA256 as a decimal.

    A study/series UID leads back to the patient's record in the PACS, so pseudonymised
    outputs carry this instead (as the de-identification profiles of DICOM PS3.15 E
    replace UIDs). The same UID and key give the same replacement, so outputs of one
    series still match each other; ``2.25.`` is the root for UUID-derived UIDs (PS3.5
    B.2), and the result has at most 44 characters (limit 64).
    """
    if not key:
        raise ValueError("empty pseudonym key")
    digest = hmac.new(key, uid.encode("ascii", "replace"), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def read_lps(path: Path) -> sitk.Image:
    """Read a NIfTI file as a SimpleITK image whose axes are DICOM LPS.

    Uses :func:`myoimg.io.read_nifti` when available (it returns LPS images);
    SimpleITK's own NIfTI reader performs the same RAS->LPS conversion.
    """
    try:
        from myoimg.io import read_nifti  # type: ignore[attr-defined]
    except ImportError:
        read_nifti = None
    img = read_nifti(path) if read_nifti is not None else sitk.ReadImage(str(path))
    if not isinstance(img, sitk.Image):  # a Volume-like wrapper
        img = img.image
    return sitk.DICOMOrient(img, "LPS")


@dataclass
class Grid:
    """Array geometry after LPS orientation: spacing (i, j, k) in mm and slice z (mm)."""

    spacing: tuple[float, float, float]
    z: np.ndarray  # shape (nk,), LPS z of each slice centre, mm


def _grid(img: sitk.Image) -> Grid:
    size = img.GetSize()
    ci, cj = (size[0] - 1) / 2.0, (size[1] - 1) / 2.0
    z = np.array(
        [img.TransformContinuousIndexToPhysicalPoint((ci, cj, float(k)))[2] for k in range(size[2])]
    )
    return Grid(spacing=tuple(float(s) for s in img.GetSpacing()), z=z)  # type: ignore[arg-type]


@dataclass
class VisitImages:
    """The arrays of one visit, indexed [k, j, i] in LPS (None when absent)."""

    t2fs: np.ndarray | None = None
    t2fs_norm: np.ndarray | None = None
    labels_mr: np.ndarray | None = None
    oedema_mr: np.ndarray | None = None
    oedema_content_mr: np.ndarray | None = None  # what each voxel counts as oedema (0-1)
    mr_grid: Grid | None = None
    suv: np.ndarray | None = None
    labels_pet: np.ndarray | None = None
    ct_on_pet: np.ndarray | None = None
    mri_on_pet: np.ndarray | None = None  # T2-FS resampled on the PET grid (underlay without CT)
    pet_grid: Grid | None = None


@dataclass
class ReportData:
    """results.json plus the loaded volumes of every visit."""

    out_dir: Path
    results: dict
    visits: list[str]
    images: dict[str, VisitImages]
    compare: bool
    patient_label: str
    anonymize: bool
    warnings: list[str] = field(default_factory=list)  # problems met while building the report
    #: How the shown pseudonym was made (e.g. "hmac-sha256, key from file"); None if not known.
    pseudonym_method: str | None = None

    def visit(self, name: str) -> dict:
        return self.results.get("visits", {}).get(name) or {}

    def visit_title(self, name: str) -> str:
        return {"baseline": "Baseline", "followup": "Follow-up"}.get(name, name)


def _load_visit(out_dir: Path, name: str, visit: dict, warnings: list[str]) -> VisitImages:
    files = visit.get("files") or {}
    imgs: dict[str, sitk.Image] = {}
    for key in ("t2fs", "t2fs_norm", "labels_mr", "oedema_mr", "oedema_content_mr", "suv",
                "labels_pet", "ct_on_pet"):
        rel = files.get(key)
        if not rel:
            continue
        path = out_dir / rel
        if not path.is_file():
            warnings.append(f"{name}: file {rel} listed in results.json is missing")
            continue
        try:
            imgs[key] = read_lps(path)
        except (RuntimeError, MyoimgError) as exc:  # unreadable file: report, do not crash
            warnings.append(f"{name}: cannot read {rel} ({str(exc).splitlines()[0][:80]})")
    out = VisitImages()
    mr_ref = None
    for key in ("t2fs", "t2fs_norm", "labels_mr", "oedema_mr", "oedema_content_mr"):
        if key in imgs:
            if mr_ref is None:
                mr_ref = imgs[key]
                out.mr_grid = _grid(mr_ref)
            if imgs[key].GetSize() != mr_ref.GetSize():
                warnings.append(f"{name}: {key} is not on the MRI grid; not shown")
                continue
            setattr(out, key, sitk.GetArrayFromImage(imgs[key]))
    pet_ref = None
    for key in ("suv", "labels_pet", "ct_on_pet"):
        if key in imgs:
            if pet_ref is None:
                pet_ref = imgs[key]
                out.pet_grid = _grid(pet_ref)
            if imgs[key].GetSize() != pet_ref.GetSize():
                warnings.append(f"{name}: {key} is not on the PET grid; not shown")
                continue
            setattr(out, key, sitk.GetArrayFromImage(imgs[key]))
    if pet_ref is not None and out.ct_on_pet is None and "t2fs" in imgs:
        # No CT: MRI underlay, resampled in scanner coordinates (identity transform).
        res = sitk.Resample(imgs["t2fs"], pet_ref, sitk.Transform(), sitk.sitkLinear, 0.0)
        out.mri_on_pet = sitk.GetArrayFromImage(res)
    for key in ("labels_mr", "oedema_mr", "labels_pet"):
        arr = getattr(out, key)
        if arr is not None:
            setattr(out, key, arr.astype(np.uint8, copy=False))
    return out


def load_report_data(
    out_dir: str | Path,
    *,
    anonymize: bool = False,
    pseudonym_key_file: str | Path | None = None,
) -> ReportData:
    """Read ``OUT/results.json`` and the volumes it lists.

    Parameters
    ----------
    out_dir : path
        Folder holding results.json.
    anonymize : bool
        Show a pseudonym instead of the patient id. Results already pseudonymised at
        analysis time keep their pseudonym; otherwise it is made here with the key of
        :func:`pseudonym_key` (``pseudonym_key_file``, else ``MYOIMG_PSEUDONYM_KEY``,
        else a random key of this run).
    pseudonym_key_file : path, optional
        Key file for the pseudonym; only valid with ``anonymize``.

    Raises
    ------
    MyoimgError
        When results.json is missing or not valid JSON, or the pseudonym key is
        unusable (see :func:`pseudonym_key`).
    """
    if pseudonym_key_file is not None and not anonymize:
        raise MyoimgError("a pseudonym key file is only used with --anonymize")
    # Check the key before any work so that a bad key file fails fast.
    key = pseudonym_key(pseudonym_key_file) if pseudonym_key_file is not None else None
    out_dir = Path(out_dir)
    path = out_dir / "results.json"
    if not path.is_file():
        raise MyoimgError(f"no results.json in {out_dir} (run 'myoimg analyze' or 'compare' first)")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MyoimgError(f"results.json in {out_dir} is not valid JSON: {exc}") from exc
    if not isinstance(results, dict) or not isinstance(results.get("visits"), dict):
        raise MyoimgError(f"results.json in {out_dir} has no 'visits' object")
    visits = [v for v in ("baseline", "followup") if v in results["visits"]]
    visits += [v for v in results["visits"] if v not in visits]
    warnings: list[str] = []
    images = {v: _load_visit(out_dir, v, results["visits"][v] or {}, warnings) for v in visits}
    patient = results.get("patient") or {}
    pid = str(patient.get("id") or "unknown")
    method = None
    if patient.get("anonymized", False):
        method = (results.get("parameters") or {}).get("pseudonym")
    elif anonymize:
        key = key or pseudonym_key()  # warns when the key is random for this run
        pid, method = pseudonym(pid, key.key), key.method
    compare = bool(results.get("changes")) and len(visits) >= 2
    return ReportData(
        out_dir=out_dir,
        results=results,
        visits=visits,
        images=images,
        compare=compare,
        patient_label=pid,
        anonymize=anonymize,
        warnings=warnings,
        pseudonym_method=method,
    )


def muscle_values(data: ReportData, muscle: str, metric: str) -> dict[str, Any]:
    """Baseline/follow-up values and change of one metric of one muscle.

    Returns a dict with one key per visit plus ``abs_change``, ``rel_change`` and
    ``verdict``. Values from ``results["changes"]`` are used when present; otherwise
    the change is the plain difference of the two visits and the verdict is None.
    """
    out: dict[str, Any] = {}
    for v in data.visits:
        out[v] = ((data.visit(v).get("muscles") or {}).get(muscle) or {}).get(metric)
    out.update(abs_change=None, rel_change=None, verdict=None)
    if data.compare:
        ch = ((data.results.get("changes") or {}).get(muscle) or {}).get(metric)
        if isinstance(ch, dict):
            out.update(
                abs_change=ch.get("abs_change"),
                rel_change=ch.get("rel_change"),
                verdict=ch.get("verdict"),
            )
        else:
            b, f = (_number(out.get(v)) for v in data.visits[:2])
            if b is not None and f is not None:
                out["abs_change"] = f - b
                out["rel_change"] = (f - b) / b if b != 0 else None
    return out


def largest_area_slice(labels: np.ndarray | None, label: int) -> int | None:
    """Index k of the slice with the most voxels of ``label`` (None if absent).

    ``labels`` is a (k, j, i) array; ties go to the lowest k.
    """
    if labels is None:
        return None
    counts = (labels == label).sum(axis=(1, 2))
    if counts.max(initial=0) == 0:
        return None
    return int(np.argmax(counts))


def slice_profile(
    labels: np.ndarray | None, values: np.ndarray | None, label: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice mean of ``values`` inside ``label``.

    Parameters
    ----------
    labels, values : ndarray, shape (k, j, i)
        Label map and values on the same grid (e.g. the 0/1 oedema mask gives the
        oedema fraction per slice; the SUV image gives SUVmean per slice).

    Returns
    -------
    k : ndarray of int
        Slices that contain the label.
    mean : ndarray of float
        Mean value in each of those slices.
    """
    if labels is None or values is None or labels.shape != values.shape:
        return np.zeros(0, dtype=int), np.zeros(0)
    mask = labels == label
    n = mask.sum(axis=(1, 2))
    s = np.where(mask, values.astype(np.float64), 0.0).sum(axis=(1, 2))
    k = np.nonzero(n)[0]
    return k, s[k] / n[k]


def quadriceps_names() -> list[str]:
    """Short names of the 8 quadriceps heads in label order."""
    return [m.name for m in QUADRICEPS]


def full_name(muscle: str) -> str:
    m = BY_NAME.get(muscle)
    return m.full_name if m is not None else muscle
