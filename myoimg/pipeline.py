"""End-to-end runs: one visit (``analyze``) or baseline vs follow-up (``compare``).

Data flow per visit::

    scan folder -> pick T2-FS / PET / CT by role -> load (LPS, physical units)
    -> labels on the MRI (automatic, imported, or propagated from baseline)
    -> oedema metrics (N4, healthy-muscle reference, threshold)
    -> SUV -> labels carried onto the PET grid -> uptake metrics

Outputs are built in a hidden sibling folder and renamed onto ``OUT`` only when the
run has finished, so an interrupted run leaves no partial results.json or PDF.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io as _io
import json
import logging
import math
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from myoimg import __version__
from myoimg import labels as vocab
from myoimg.errors import MyoimgError, OutputExistsError, RegistrationError, SeriesSelectionError
from myoimg.io.atomic import atomic_write_text
from myoimg.progress import Progress
from myoimg.quantify.metrics import METRIC_UNITS
from myoimg.quantify.mri import MIN_OEDEMA_CLUSTER_VOXELS, check_min_cluster

__all__ = ["PipelineOptions", "analyze_visit", "run_analyze", "run_compare", "segment_command"]

log = logging.getLogger("myoimg")

#: Visit names in results.json, metrics.csv and the output folder.
VISITS = ("baseline", "followup")


@dataclass
class PipelineOptions:
    """Every parameter of a run; written to results.json so each number is traceable."""

    series: dict[str, dict[str, str]] = field(default_factory=dict)  # visit -> role -> UID|N
    labels: dict[str, str] = field(default_factory=dict)  # visit -> user label file
    label_mapping: str | None = None
    labels_from: str = "auto"  # follow-up: "auto" or "propagate"
    #: With ``labels_from="propagate"``: a B-spline stage after the rigid follow-up ->
    #: baseline registration (:func:`myoimg.segment.register.register_rigid_affine`).
    deformable: bool = False
    reference_labels: tuple[int, ...] | None = None
    oedema_threshold: str | float = "mean+2sd"
    oedema_baseline: str = "per-muscle"  # healthy level: "per-muscle" or "reference"
    oedema_rim: str = "nearest"  # eroded rim: "nearest" interior class or "excluded"
    erode_inplane: int = 1
    oedema_min_cluster: int = MIN_OEDEMA_CLUSTER_VOXELS  # voxels of the smallest oedema cluster
    oedema_partial_volume: bool = True  # cluster edge voxels count by their oedema content
    avid_threshold: str | float | None = None
    suv_type: str = "bw"
    resample_nonuniform: bool = False
    #: Overrides of :class:`myoimg.compare.ResponseThresholds` fields (verdict rules).
    response_thresholds: dict[str, float] = field(default_factory=dict)
    report: bool = True
    per_muscle: bool = False
    anonymize: bool = False
    #: Secret key file of the keyed pseudonym (with ``anonymize``); without it the
    #: MYOIMG_PSEUDONYM_KEY environment variable, else a random key of this run. Only
    #: the path and the method are recorded, never the key.
    pseudonym_key_file: str | None = None
    paper: str = "a4"
    overwrite: bool = False
    quiet: bool = False

    def __post_init__(self) -> None:
        # Check what can be checked now rather than after minutes of processing.
        self.oedema_min_cluster = check_min_cluster(self.oedema_min_cluster, "--oedema-min-cluster")
        if self.pseudonym_key_file is not None:
            if not self.anonymize:
                raise MyoimgError("--pseudonym-key-file is only used with --anonymize")
            from myoimg.report.data import pseudonym_key

            pseudonym_key(self.pseudonym_key_file, warn=False)

    @classmethod
    def from_args(cls, args: Any) -> PipelineOptions:
        """Build from the parsed CLI arguments of ``analyze`` / ``compare``."""
        compare = hasattr(args, "followup")
        single = getattr(args, "visit", None) or "baseline"  # analyze: the one visit's name
        series: dict[str, dict[str, str]] = {}
        for v in args.series or ():
            key, sep, sel = v.partition("=")
            visit, _, role = key.rpartition(":") if compare else ("", "", key)
            if not sep or not role or not sel:
                raise MyoimgError(f"--series expects {'VISIT:' if compare else ''}ROLE=UID|N, got {v!r}")
            visits = [visit] if visit else (list(VISITS) if compare else [single])
            for vis in visits:
                if vis not in VISITS:
                    raise MyoimgError(f"--series: unknown visit {vis!r} (baseline or followup)")
                series.setdefault(vis, {})[role.strip().lower()] = sel.strip()
        labels: dict[str, str] = {}
        if compare:
            if args.labels_baseline:
                labels["baseline"] = str(args.labels_baseline)
            if args.labels_followup:
                labels["followup"] = str(args.labels_followup)
        elif args.labels:
            labels[single] = str(args.labels)
        return cls(
            series=series,
            labels=labels,
            label_mapping=args.label_mapping,
            labels_from=getattr(args, "labels_from", "auto"),
            deformable=bool(getattr(args, "deformable", False)),
            reference_labels=_parse_reference(args.reference),
            oedema_threshold=_number_or_text(args.oedema_threshold),
            oedema_baseline=args.oedema_baseline,
            oedema_rim=args.oedema_rim,
            erode_inplane=0 if args.no_erode else 1,
            oedema_min_cluster=args.oedema_min_cluster,
            oedema_partial_volume=not args.oedema_binary,
            avid_threshold=_number_or_text(args.avid_threshold),
            suv_type=args.suv_type,
            resample_nonuniform=args.resample_nonuniform,
            response_thresholds={
                key: value for key, value in (
                    ("oedema_fraction_abs", getattr(args, "oedema_change", None)),
                    ("suv_rel", getattr(args, "suv_change_rel", None)),
                    ("suv_abs", getattr(args, "suv_change_abs", None)),
                    ("tbr_rel", getattr(args, "tbr_change", None)),
                    ("avid_rel", getattr(args, "avid_change_rel", None)),
                    ("avid_abs", getattr(args, "avid_change_abs", None)),
                    ("volume_rel", getattr(args, "volume_change", None)),
                ) if value is not None},
            report=not args.no_report,
            per_muscle=args.per_muscle,
            anonymize=args.anonymize,
            pseudonym_key_file=(str(args.pseudonym_key_file)
                                if getattr(args, "pseudonym_key_file", None) else None),
            paper=args.paper,
            overwrite=args.overwrite,
            quiet=args.quiet,
        )


def _number_or_text(value: str | None) -> str | float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _parse_reference(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    ids = []
    for token in text.split(","):
        token = token.strip()
        if not token:
            continue
        try:
            ids.append(int(token) if token.isdigit() else vocab.label_id(token.upper()))
        except KeyError:
            raise MyoimgError(f"--reference: unknown muscle {token!r}; use names like R_HAM or ids") from None
    return tuple(ids)


# --------------------------------------------------------------------------- helpers


def _json_safe(obj: Any) -> Any:
    """Recursively turn NumPy scalars/arrays and NaN into JSON-friendly values."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, _dt.datetime | _dt.date | _dt.time):
        return obj.isoformat()
    return obj


def _series_summary(volume: Any) -> dict[str, Any] | None:
    if volume is None:
        return None
    info = volume.info
    return {
        "series_uid": getattr(info, "series_uid", None),
        "description": getattr(info, "description", None),
        "series_number": getattr(info, "series_number", None),
        "modality": getattr(info, "modality", None),
        "frame_of_reference_uid": getattr(info, "frame_of_reference_uid", None),
        "n_slices": volume.image.GetSize()[2],
        "spacing_mm": list(volume.image.GetSpacing()),
    }


def _visit_date(volume: Any) -> str | None:
    """ISO date of a loaded series (StudyDate, else SeriesDate/AcquisitionDate)."""
    if volume is None or not volume.headers:
        return None
    ds = volume.headers[0]
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate"):
        value = str(getattr(ds, keyword, "") or "")
        if len(value) >= 8 and value[:8].isdigit():
            return f"{value[:4]}-{value[4:6]}-{value[6:8]}"
    return None


def _pick(scan_result: Any, role: str, choice: str | None, warnings: list[str]) -> Any:
    """Select the series of ``role``; None (with a warning) if the folder has none."""
    from myoimg.io import guess_role, select_series

    if choice is None and not any(guess_role(s) == role for s in scan_result.series):
        warnings.append(f"no {role.upper()} series found in the folder; {role} metrics not computed")
        return None
    return select_series(scan_result, role, choice)


def _resample_like(image: sitk.Image, reference: sitk.Image, default: float) -> sitk.Image:
    return sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, default, sitk.sitkFloat32)


# --------------------------------------------------------------------------- one visit


def analyze_visit(
    folder: str | Path,
    out_dir: str | Path,
    visit: str,
    options: PipelineOptions,
    progress: Progress | None = None,
    baseline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Quantify one visit and write its volumes into ``out_dir / visit``.

    Parameters
    ----------
    folder : path
        DICOM folder of the visit (all series mixed).
    out_dir : path
        Output root; files go to ``out_dir / visit``.
    visit : str
        "baseline" or "followup".
    options : PipelineOptions
    progress : Progress, optional
    baseline : dict, optional
        ``{"image": sitk.Image, "labels": sitk.Image}`` of the baseline MRI, needed
        when ``options.labels_from == "propagate"`` for the follow-up.

    Returns
    -------
    dict
        The visit's entry of results.json, plus the private keys ``_mr_image`` and
        ``_mr_labels`` (removed before writing) for the follow-up propagation.
    """
    from myoimg.io import load_series, scan, unreadable_files_named, write_nifti
    from myoimg.quantify.mri import FAT_BELOW_NORM, oedema_metrics, without_fat
    from myoimg.quantify.pet import uptake_metrics
    from myoimg.quantify.suv import compute_suv
    from myoimg.segment.register import labels_to_pet

    progress = progress or Progress(quiet=True)
    out_visit = Path(out_dir) / visit
    out_visit.mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []
    choices = options.series.get(visit, {})

    progress.stage(f"{visit}: reading DICOM headers")
    scan_result = scan(folder, progress=progress.items("files"))
    progress.info(f"{scan_result.n_files} files, {len(scan_result.series)} series, "
                  f"{scan_result.n_skipped} non-DICOM skipped")
    if scan_result.unreadable:
        warnings.append(scan_result.unreadable_note())
    with unreadable_files_named(scan_result):
        t2_info = _pick(scan_result, "t2fs", choices.get("t2fs"), warnings)
        pet_info = _pick(scan_result, "pet", choices.get("pet"), warnings)
        ct_info = _pick(scan_result, "ct", choices.get("ct"), warnings) if pet_info else None
        if t2_info is not None and t2_info.plane != "axial":
            warnings.append(
                f"the T2-FS series is {t2_info.plane}, not axial (no axial T2-FS series in the "
                "folder): segmented on axial slices re-stacked from it")
        if t2_info is None and pet_info is None:
            raise SeriesSelectionError(
                f"{visit}: no T2-FS and no PET series found in {folder}; run 'myoimg inspect "
                f"{folder}' and choose with --series")
        progress.stage(f"{visit}: loading series")
        t2, pet, ct = (
            load_series(info, resample_nonuniform=options.resample_nonuniform) if info else None
            for info in (t2_info, pet_info, ct_info)
        )
    for vol in (t2, pet, ct):
        if vol is not None:
            warnings.extend(vol.warnings)
    files: dict[str, str] = {}
    entry: dict[str, Any] = {
        "date": _visit_date(t2) or _visit_date(pet),
        "source": str(folder),
        "series": {"t2fs": _series_summary(t2), "pet": _series_summary(pet), "ct": _series_summary(ct)},
        "suv": None,
        "mri_reference": None,
        "oedema_threshold_norm": None,
        "pet_reference": None,
        "registration": {},
        "segmentation": None,
        "warnings": warnings,
        "files": files,
    }
    muscles: dict[str, dict[str, Any]] = {m.name: {} for m in vocab.QUADRICEPS}

    labels_mr = None
    if t2 is not None:
        labels_mr = _mri_labels(t2, visit, options, progress, baseline, entry)
        from myoimg.segment.checks import label_warnings

        warnings.extend(label_warnings(labels_mr))
        progress.stage(f"{visit}: oedema quantification")
        mri = oedema_metrics(
            t2.image, labels_mr,
            reference_labels=options.reference_labels,
            threshold=options.oedema_threshold,
            erode_inplane=options.erode_inplane,
            healthy_level=options.oedema_baseline,
            rim=options.oedema_rim,
            min_cluster=options.oedema_min_cluster,
            partial_volume=options.oedema_partial_volume,
        )
        entry["mri_reference"] = mri.reference_summary() | {
            "raw_sd": float(mri.reference.sd), "n_voxels": int(mri.reference.n_voxels),
            "label_ids": list(mri.reference.label_ids or [])}
        entry["oedema_threshold_norm"] = float(mri.threshold_norm)
        entry["mri_parameters"] = mri.parameters
        warnings.extend(mri.warnings)
        for name, values in mri.muscles.items():
            muscles.setdefault(name, {}).update(values)
        progress.stage(f"{visit}: writing MRI volumes")
        for key, image in (("t2fs", t2.image), ("t2fs_norm", mri.normalised),
                           ("labels_mr", labels_mr), ("oedema_mr", mri.oedema),
                           ("oedema_content_mr", mri.oedema_content)):
            if image is None:
                continue
            write_nifti(image, out_visit / f"{key}.nii.gz")
            files[key] = f"{visit}/{key}.nii.gz"
        if t2.headers:
            try:
                from myoimg.segment.export import write_seg

                seg_patient = None
                if options.anonymize:  # the SEG copies the source's patient module
                    from myoimg.report.data import pseudonym, pseudonym_key

                    pid = str(getattr(t2.headers[0], "PatientID", "") or "unknown")
                    key = pseudonym_key(options.pseudonym_key_file, warn=False).key
                    seg_patient = pseudonym(pid, key)
                write_seg(labels_mr, t2.headers, out_visit / "seg_mr.dcm", patient_id=seg_patient)
                files["seg_mr"] = f"{visit}/seg_mr.dcm"
            except Exception as exc:  # noqa: BLE001 - an export problem must not lose the numbers
                warnings.append(f"DICOM SEG not written: {exc}")

    if pet is not None:
        progress.stage(f"{visit}: SUV conversion")
        suv = compute_suv(pet, kind=options.suv_type)
        entry["suv"] = {"kind": options.suv_type, "factor": _factor_value(suv.factor),
                        "derivation": suv.factor.derivation}
        progress.info(f"SUV{options.suv_type} factor {entry['suv']['factor']}")
        write_nifti(suv.image, out_visit / "suv.nii.gz")
        files["suv"] = f"{visit}/suv.nii.gz"
        if ct is not None:
            write_nifti(_resample_like(ct.image, suv.image, -1000.0), out_visit / "ct_on_pet.nii.gz")
            files["ct_on_pet"] = f"{visit}/ct_on_pet.nii.gz"
        if labels_mr is not None:
            progress.stage(f"{visit}: carrying labels onto the PET grid")
            same_frame = bool(t2.info and pet.info and t2.info.frame_of_reference_uid
                              and t2.info.frame_of_reference_uid == pet.info.frame_of_reference_uid)
            try:
                # Voxels the T2-FS shows as fat (septa, fascia) stay off the PET grid.
                labels_pet, reg = labels_to_pet(without_fat(labels_mr, mri.normalised),
                                                t2.image, suv.image,
                                                ct_image=ct.image if ct is not None else None,
                                                same_frame=same_frame)
            except RegistrationError as exc:
                warnings.append(f"MRI -> PET registration failed, no PET metrics reported: {exc}")
                labels_pet, reg = None, None
            entry["registration"]["mr_to_pet"] = (
                {"method": "same frame of reference"} if same_frame
                else (_reg_summary(reg) if reg is not None else {"ok": False}))
            if labels_pet is not None:
                write_nifti(labels_pet, out_visit / "labels_pet.nii.gz")
                files["labels_pet"] = f"{visit}/labels_pet.nii.gz"
                progress.stage(f"{visit}: PET uptake quantification")
                petq = uptake_metrics(suv.image, labels_pet, avid_threshold=_avid(options),
                                      reference_labels=options.reference_labels)
                entry["pet_reference"] = petq.reference | {
                    "avid_threshold_suv": float(petq.avid_threshold_suv)}
                entry["pet_parameters"] = petq.parameters | {
                    "mri_fat_excluded_below_norm": FAT_BELOW_NORM}
                warnings.extend(petq.warnings)
                for name, values in petq.muscles.items():
                    muscles.setdefault(name, {}).update(values)
        else:
            warnings.append("no MRI labels: PET metrics per muscle need the T2-FS segmentation")

    for warning in warnings:
        progress.warn(warning)
    entry["muscles"] = _complete_muscles(muscles)
    entry["_mr_image"] = t2.image if t2 is not None else None
    entry["_mr_labels"] = labels_mr
    entry["_patient"] = _patient_facts((t2 or pet).headers)
    progress.done()
    return entry


def _avid(options: PipelineOptions) -> Any:
    return options.avid_threshold if options.avid_threshold is not None else "ref+2sd"


def _factor_value(factor: Any) -> float:
    """The SUV factor; its median where it varies per slice (the derivation has all)."""
    return float(factor.value) if factor.is_constant else float(np.median(factor.per_slice))


def _reg_summary(reg: Any) -> dict[str, Any]:
    return {"ok": bool(reg.ok), "metric": float(reg.metric), "quality": reg.quality,
            "messages": list(reg.messages)}


def _mri_labels(t2: Any, visit: str, options: PipelineOptions, progress: Progress,
                baseline: dict[str, Any] | None, entry: dict[str, Any]) -> sitk.Image:
    """Labels on the T2-FS grid: imported, propagated from baseline, or automatic."""
    user_file = options.labels.get(visit)
    if user_file:
        from myoimg.segment.masks import import_labels

        progress.stage(f"{visit}: importing labels from {Path(user_file).name}")
        imported = import_labels(user_file, t2.image, mapping=options.label_mapping)
        entry["segmentation"] = {"method": "imported", "file": str(user_file),
                                 "mapping": options.label_mapping, "messages": imported.messages}
        entry["warnings"].extend(imported.messages)
        return imported.labels
    if visit == "followup" and options.labels_from == "propagate" and baseline is not None:
        from myoimg.segment.register import propagate_labels, register_rigid_affine, require_ok

        progress.stage(f"{visit}: registering follow-up to baseline MRI")
        # register_rigid_affine masks both images to the thighs itself.
        reg = register_rigid_affine(t2.image, baseline["image"], deformable=options.deformable)
        entry["registration"]["followup_to_baseline"] = _reg_summary(reg)
        require_ok(reg)
        entry["segmentation"] = {"method": "propagated from baseline",
                                 "registration": "rigid + B-spline" if options.deformable else "rigid",
                                 "messages": list(reg.messages)}
        return propagate_labels(baseline["labels"], reg.transform, t2.image)
    from myoimg.segment.auto import segment_thigh

    if visit == "followup" and options.labels_from == "propagate":
        # Asked for, but there is nothing to carry: say so rather than switch silently.
        note = ("--labels-from propagate: the baseline has no MRI labels to carry (no T2-FS "
                "series or no segmentation there), so the follow-up is segmented automatically")
        entry["warnings"].append(note)
        progress.warn(note)
    progress.stage(f"{visit}: automatic segmentation")
    seg = segment_thigh(t2.image, header=t2.headers[0] if t2.headers else None)
    for message in seg.messages:
        progress.info(message)
    entry["warnings"].extend(seg.warnings)
    entry["segmentation"] = {"method": "automatic", "contrast": seg.contrast_name,
                             "contrast_reason": seg.contrast_reason, "sides": list(seg.sides),
                             "roll_deg": round(seg.roll_deg, 2), "messages": list(seg.messages)}
    return seg.labels


def _complete_muscles(muscles: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every quadriceps head listed, every metric key present (None where not measured)."""
    order = [m.name for m in vocab.MUSCLES]
    out = {}
    for name in sorted(muscles, key=lambda n: order.index(n) if n in order else 99):
        values = muscles[name]
        if not values and name not in {m.name for m in vocab.QUADRICEPS}:
            continue
        out[name] = {key: values.get(key) for key in METRIC_UNITS} | {
            k: v for k, v in values.items() if k not in METRIC_UNITS}
    return out


def _patient_facts(headers: Any) -> dict[str, Any]:
    ds = headers[0] if headers else None
    return {
        "id": str(getattr(ds, "PatientID", "") or "") or None,
        "sex": str(getattr(ds, "PatientSex", "") or "") or None,
    }


# --------------------------------------------------------------------------- whole runs


@contextlib.contextmanager
def _staging(out: Path, overwrite: bool):
    """Yield a hidden staging folder next to ``out``; move it onto ``out`` on success."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"output folder {out} exists; use --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    handler = logging.FileHandler(staging / "myoimg.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("myoimg")
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield staging
    except BaseException:
        logger.removeHandler(handler)
        handler.close()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.removeHandler(handler)
    logger.setLevel(previous_level)
    handler.close()
    if out.exists():
        trash = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, trash)
        os.replace(staging, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, out)


def _versions() -> dict[str, str]:
    import nibabel
    import pydicom
    import scipy
    import skimage

    return {"myoimg": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "pydicom": pydicom.__version__,
            "SimpleITK": sitk.Version_VersionString(), "nibabel": nibabel.__version__,
            "scikit-image": skimage.__version__}


def _parameters(options: PipelineOptions) -> dict[str, Any]:
    params = asdict(options)
    for key in ("quiet", "overwrite"):
        params.pop(key, None)
    params["avid_threshold"] = _avid(options)
    from myoimg.compare import ResponseThresholds

    params["response_thresholds"] = ResponseThresholds(**options.response_thresholds).as_dict()
    return params


def _finish(staging: Path, visits: dict[str, dict[str, Any]], options: PipelineOptions,
            progress: Progress, changes: dict | None = None, rules: dict | None = None) -> None:
    from myoimg.compare import RESPONSE_DISCLAIMER
    from myoimg.report.data import (  # one rule for results and reports
        pseudonym,
        pseudonym_key,
        pseudonym_uid,
    )

    patient = next(iter(visits.values()))["_patient"]
    # One key for the whole run (both visits); warns when it is random for this run only.
    pkey = pseudonym_key(options.pseudonym_key_file) if options.anonymize else None
    for entry in visits.values():
        for key in ("_mr_image", "_mr_labels", "_patient"):
            entry.pop(key, None)
        if pkey:
            # Folder names of PACS exports often hold the patient's name, and UIDs lead
            # back to the patient's record: keyed pseudonyms instead (the same key maps a
            # series to the same UID in every run, so runs can still be matched).
            entry["source"] = "withheld (--anonymize)"
            for series in entry["series"].values():
                for tag in ("series_uid", "frame_of_reference_uid"):
                    if series and series.get(tag):
                        series[tag] = pseudonym_uid(series[tag], pkey.key)
    results: dict[str, Any] = {
        "myoimg_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "disclaimer": RESPONSE_DISCLAIMER,
        "parameters": _parameters(options),
        "versions": _versions(),
        "patient": {"id": pseudonym(patient["id"] or "unknown", pkey.key) if pkey
                    else patient["id"],
                    "sex": patient["sex"], "anonymized": options.anonymize},
        "units": METRIC_UNITS,
        "visits": visits,
    }
    # How the pseudonym was made ("hmac-sha256, key from file|environment", or random).
    results["parameters"]["pseudonym"] = pkey.method if pkey else None
    if changes is not None:
        dates = [visits[v].get("date") for v in VISITS]
        results["days_between"] = (
            (_dt.date.fromisoformat(dates[1]) - _dt.date.fromisoformat(dates[0])).days
            if all(dates) else None)
        results["changes"] = changes
        results["verdict_rules"] = rules
    progress.stage("writing results.json and metrics.csv")
    atomic_write_text(staging / "results.json", json.dumps(_json_safe(results), indent=2) + "\n")
    atomic_write_text(staging / "metrics.csv", _metrics_csv(visits))
    log.info("parameters: %s", json.dumps(_json_safe(results["parameters"])))
    log.info("versions: %s", json.dumps(results["versions"]))
    if options.report:
        from myoimg.report import render_report

        progress.stage("rendering the PDF report")
        render_report(staging, per_muscle=options.per_muscle, anonymize=options.anonymize,
                      paper=options.paper)
    progress.done()


def _metrics_csv(visits: dict[str, dict[str, Any]]) -> str:
    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["visit", "muscle", "side", "metric", "value", "unit"])
    for visit, entry in visits.items():
        for name, values in entry["muscles"].items():
            side = vocab.BY_NAME[name].side if name in vocab.BY_NAME else ""
            for metric, unit in METRIC_UNITS.items():
                value = _json_safe(values.get(metric))
                writer.writerow([visit, name, side, metric, "" if value is None else repr(float(value)),
                                 unit])
    return buf.getvalue()



def run_analyze(study: str | Path, out: str | Path, options: PipelineOptions,
                progress: Progress | None = None, visit: str = "baseline") -> Path:
    """Quantify one visit; write OUT (results.json, metrics.csv, volumes, report).

    ``visit`` ("baseline" or "followup") names the visit in results.json, metrics.csv
    and the OUT/<visit>/ folder, e.g. to analyse a follow-up scan on its own.
    """
    if visit not in VISITS:
        raise MyoimgError(f"unknown visit name {visit!r}: use 'baseline' or 'followup'")
    progress = progress or Progress(quiet=options.quiet)
    t0 = time.perf_counter()
    with _staging(Path(out), options.overwrite) as staging:
        entry = analyze_visit(study, staging, visit, options, progress)
        _finish(staging, {visit: entry}, options, progress)
    if not options.quiet:
        print(f"results written to {out} ({time.perf_counter() - t0:.1f} s)")
    return Path(out)


def _analyze_both(baseline: str | Path, followup: str | Path, staging: Path,
                  options: PipelineOptions, progress: Progress
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both visits' entries: in two processes unless the follow-up needs the baseline
    (or the machine has one core, or no ``fork``: then one after the other).

    The visits are independent unless labels are propagated. One visit keeps only 1.4
    of 2 cores busy on average, so running both at once shortens ``compare`` on a 2-core
    machine; in processes rather than threads, because much of a visit is Python glue
    that holds the GIL (pydicom, highdicom, NumPy calls): on sample_data/ the two visits
    took 55.8 s on two threads and 51.4 s in two processes (77 s one after the other,
    before other speed-ups). The results are the same.
    """
    from myoimg.segment.threads import can_fork, fork_map

    if options.labels_from == "propagate" or not can_fork():
        base = analyze_visit(baseline, staging, "baseline", options, progress)
        context = ({"image": base["_mr_image"], "labels": base["_mr_labels"]}
                   if base["_mr_labels"] is not None else None)
        follow = analyze_visit(followup, staging, "followup", options, progress,
                               baseline=context)
        return base, follow

    def one_visit(job: tuple[str | Path, str]) -> tuple[dict[str, Any], dict[str, float]]:
        # In the worker process: the images are needed only for propagation (not
        # here), and would be pickled back for nothing.
        worker = progress.for_worker()
        entry = analyze_visit(job[0], staging, job[1], options, worker)
        entry["_mr_image"] = entry["_mr_labels"] = None
        return entry, worker.timings

    results = fork_map(one_visit, [(baseline, "baseline"), (followup, "followup")])
    for _, timings in results:
        for stage, seconds in timings.items():
            progress.timings[stage] = progress.timings.get(stage, 0.0) + seconds
    return results[0][0], results[1][0]


def run_compare(baseline: str | Path, followup: str | Path, out: str | Path,
                options: PipelineOptions, progress: Progress | None = None) -> Path:
    """Quantify both visits, compare them, write OUT (results, CSV, volumes, report).

    ``progress`` (optional) receives the stages; its ``timings`` then hold the
    seconds spent in each (used by ``scripts/bench_pipeline.py``).
    """
    from myoimg.compare import ResponseThresholds, compare_visits, describe_rules

    progress = progress or Progress(quiet=options.quiet)
    t0 = time.perf_counter()
    with _staging(Path(out), options.overwrite) as staging:
        base, follow = _analyze_both(baseline, followup, staging, options, progress)
        if all((v.get("segmentation") or {}).get("method") == "automatic" for v in (base, follow)):
            note = ("both visits were segmented automatically, each on its own: part of a "
                    "muscle's volume change between them is segmentation variability (with "
                    "--labels-from propagate the follow-up is measured in the baseline's labels)")
            follow["warnings"].append(note)
            progress.warn(note)
        thresholds = ResponseThresholds(**options.response_thresholds)
        changes = compare_visits(base["muscles"], follow["muscles"], thresholds=thresholds)
        _finish(staging, {"baseline": base, "followup": follow}, options, progress,
                changes=changes, rules=describe_rules(thresholds))
    if not options.quiet:
        print(f"results written to {out} ({time.perf_counter() - t0:.1f} s)")
        for name, per_metric in changes.items():
            if name in {m.name for m in vocab.QUADRICEPS}:
                verdicts = ", ".join(f"{k} {v['verdict']}" for k, v in per_metric.items()
                                     if k in ("oedema_fraction", "suv_mean", "suv_peak"))
                print(f"  {name}: {verdicts}")
    return Path(out)


def segment_command(args: Any) -> int:
    """``myoimg segment``: labels for one T2-FS/T1 series (DICOM folder or NIfTI)."""
    from myoimg.io import load_image, write_nifti
    from myoimg.segment.auto import segment_thigh
    from myoimg.segment.qc import save_qc_png, save_steps_png

    progress = Progress(quiet=args.quiet)
    progress.stage("loading")
    # The T2-FS series if the folder has one, else its one volume of any contrast or plane
    # (a T1 or Dixon series, a 3-D coronal acquisition).
    volume = load_image(args.input, role=("t2fs", None), series=args.series,
                        resample_nonuniform=args.resample_nonuniform)
    progress.stage("segmenting")
    result = segment_thigh(volume.image, contrast=args.contrast,
                           header=volume.headers[0] if volume.headers else None,
                           bias_correct=not args.no_bias_correction)
    progress.done()
    write_nifti(result.labels, args.output)
    if args.qc:
        save_qc_png(volume.image, result.labels, args.qc)
    qc_steps = getattr(args, "qc_steps", None)
    if qc_steps:
        save_steps_png(volume.image, result, qc_steps)
    from myoimg.segment.checks import head_volumes_ml, label_warnings

    volumes = head_volumes_ml(result.labels)
    print(f"contrast: {result.contrast_name} ({result.contrast_reason})")
    print(f"legs found: {', '.join({'R': 'right', 'L': 'left'}[s] for s in result.sides) or 'none'}")
    for message in result.messages:
        print(f"note: {message}")
    for m in vocab.QUADRICEPS:
        print(f"  {m.name:5s} {m.full_name:28s} {volumes[m.name]:8.1f} mL")
    for warning in result.warnings + label_warnings(result.labels):
        print(f"warning: {warning}")
    print(f"labels written to {args.output}" + (f"; QC image {args.qc}" if args.qc else "")
          + (f"; steps image {qc_steps}" if qc_steps else ""))
    return 0
