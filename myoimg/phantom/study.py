"""Generate a complete longitudinal digital reference study (DICOM + truth).

Layout written by :func:`generate_study`::

    out_dir/baseline/<random names>   every series of the visit mixed (MR + PET/CT)
    out_dir/followup/<random names>
    out_dir/truth/truth.json
    out_dir/truth/{baseline,followup}/labels_mr.nii.gz, oedema_mr.nii.gz, labels_pet.nii.gz

Coordinates: each session (MRI, PET/CT; per visit) has its own patient LPS space. The
body (anatomy) frame is placed in a session with a rigid ``body_to_patient`` matrix;
truth transforms between sessions are derived from them.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from myoimg.errors import MyoimgError, OutputExistsError
from myoimg.io.atomic import atomic_write_text
from myoimg.io.nifti import write_nifti
from myoimg.labels import MUSCLES
from myoimg.phantom import dicom_writer as dw
from myoimg.phantom.anatomy import Anatomy, make_anatomy
from myoimg.phantom.geometry import Grid, apply, axial_grid, rigid_matrix
from myoimg.phantom.render import (
    Raster,
    bias_field,
    blur_mm,
    model_suv,
    rasterise,
    render_ct,
    render_pet_suv,
    render_t1,
    render_t2fs,
    rician,
)

__all__ = ["VARIANTS", "generate_study", "StudyPlan", "plan_study", "GA68_HALF_LIFE_S"]

VARIANTS: tuple[str, ...] = ("standard", "philips_cnts", "midnight", "oblique", "thin")
GA68_HALF_LIFE_S = 4062.6
PHILIPS_BQML_PER_COUNT = 1.4372  # "philips_cnts": Bq/mL per count, private (7053,1009)
PET_FWHM_MM = 6.5
VISITS = ("baseline", "followup")


@dataclass
class SessionPlan:
    body_to_patient: np.ndarray
    grid: Grid
    frame_uid: str
    study_uid: str
    start: dt.datetime  # first series start


@dataclass
class VisitPlan:
    visit: str
    anatomy: Anatomy
    mr: SessionPlan
    t1_grid: Grid
    pet: SessionPlan
    ct_grid: Grid
    weight_kg: float
    height_m: float
    dose_bq: float
    injection: dt.datetime
    pet_start: dt.datetime
    t2_scale: float
    t2_snr: float


@dataclass
class StudyPlan:
    seed: int
    variant: str
    sex: str
    age: int
    visits: dict[str, VisitPlan]


def _fmt_date(t: dt.datetime) -> str:
    return t.strftime("%Y%m%d")


def _fmt_time(t: dt.datetime) -> str:
    return t.strftime("%H%M%S.%f")


def plan_study(seed: int = 0, variant: str = "standard", *, quick: bool = False) -> StudyPlan:
    """All random choices of a study (poses, grids, times, doses) without any image.

    ``quick`` keeps every random choice but cuts the number of slices (for tests).
    """
    if variant not in VARIANTS:
        raise MyoimgError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    rng = np.random.default_rng([int(seed), 7303, VARIANTS.index(variant)])
    thin = variant == "thin"
    sex = str(rng.choice(["F", "M"], p=[0.65, 0.35]))  # myositis is more frequent in women
    age = int(rng.integers(35, 75))
    base_weight = rng.uniform(50, 62) if thin else rng.uniform(60, 95)
    height = rng.uniform(1.55, 1.85)
    base_day = dt.datetime(2025, 1, 6) + dt.timedelta(days=int(rng.integers(0, 300)))
    anat0 = make_anatomy(seed, "baseline", thin=thin)
    lo, hi = anat0.bounding_box(-80.0, 80.0)
    width = float(hi[0] - lo[0])
    visits = {}
    mr_pose0 = None
    for vi, visit in enumerate(VISITS):
        anat = anat0 if visit == "baseline" else make_anatomy(seed, visit, thin=thin)
        day = base_day + dt.timedelta(days=0 if vi == 0 else int(rng.integers(140, 161)))
        # MRI session: patient off-centre; follow-up repositioned (<= 15 mm, <= 5 deg)
        if mr_pose0 is None:
            ang = rng.uniform(-2, 2, 3)
            tr = np.array([rng.uniform(-20, 20), rng.uniform(-25, 5), rng.uniform(-380, -300)])
            mr_pose0 = (ang, tr)
        else:
            d_ang = rng.normal(0, 1, 3)
            d_ang *= rng.uniform(2.0, 4.5) / np.linalg.norm(d_ang)
            d_tr = rng.normal(0, 1, 3)
            d_tr *= rng.uniform(6.0, 13.0) / np.linalg.norm(d_tr)
            ang, tr = mr_pose0[0] + d_ang, mr_pose0[1] + d_tr
        body_to_mr = rigid_matrix(ang, tr)
        pixel = float(np.clip(max(rng.uniform(0.9, 1.1), (width + 20) / 384), 0.9, 1.1))
        thick = 3.0 if thin else 5.0
        gap = 0.0 if thin else float(rng.choice([0.0, 0.5]))
        n_sl = 40 if thin else int(rng.integers(28, 33))
        n_t1, n_pet = 20, 47
        if quick:
            n_sl, n_t1, n_pet = 6, 3, 10
        tilt = float(rng.uniform(10, 15) * rng.choice([-1, 1])) if variant == "oblique" else 0.0
        # field of view centred near the thighs (technologist's choice), z near mid-thigh
        mid_body = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, rng.uniform(-10, 10)])
        centre = apply(body_to_mr, mid_body) + np.array([rng.uniform(-8, 8), rng.uniform(-8, 8), 0])
        centre = np.round(centre, 1)
        t2_grid = axial_grid(centre, 384, 288, n_sl, pixel, thick + gap, thick, tilt)
        # T1 distractor: coarser matrix, thicker slices (as often acquired)
        t1_grid = axial_grid(centre, 320, 240, n_t1, round(pixel * 1.2, 4), 6.6, 6.0, 0.0)
        mr_start = day.replace(hour=int(rng.integers(8, 17)), minute=int(rng.integers(0, 60)))
        mr = SessionPlan(
            body_to_patient=body_to_mr,
            grid=t2_grid,
            frame_uid=dw.make_uid(seed, variant, visit, "mr", "frame"),
            study_uid=dw.make_uid(seed, variant, visit, "mr", "study"),
            start=mr_start,
        )
        # PET/CT session: another day, another pose
        pet_ang = rng.uniform(-3, 3, 3)
        pet_tr = np.array([rng.uniform(-15, 15), rng.uniform(60, 110), rng.uniform(-760, -640)])
        body_to_pet = rigid_matrix(pet_ang, pet_tr)
        # PET and CT fields of view are centred on the scanner axis (x = y = 0)
        z_mid = apply(body_to_pet, np.array([mid_body[0], mid_body[1], rng.uniform(-10, 10)]))[2]
        pet_centre = np.array([0.0, 0.0, z_mid])
        pet_pix = 4.07283
        pet_grid = axial_grid(np.round(pet_centre, 1), 128, 128, n_pet, pet_pix, 4.0, 4.0)
        ct_grid = axial_grid(np.round(pet_centre, 1), 256, 256, n_pet, 500 / 256, 4.0, 4.0)
        if variant == "midnight":
            inj = day.replace(hour=23, minute=40)
            uptake = rng.uniform(50, 65) * 60
        else:
            inj = day.replace(hour=int(rng.integers(8, 15)), minute=int(rng.integers(0, 60)))
            inj += dt.timedelta(days=int(rng.integers(1, 4)))
            uptake = rng.uniform(50, 75) * 60
        pet_start = inj + dt.timedelta(seconds=round(uptake))
        pet = SessionPlan(
            body_to_patient=body_to_pet,
            grid=pet_grid,
            frame_uid=dw.make_uid(seed, variant, visit, "petct", "frame"),
            study_uid=dw.make_uid(seed, variant, visit, "petct", "study"),
            start=pet_start - dt.timedelta(seconds=60),  # CT topogram + CT before PET
        )
        visits[visit] = VisitPlan(
            visit=visit,
            anatomy=anat,
            mr=mr,
            t1_grid=t1_grid,
            pet=pet,
            ct_grid=ct_grid,
            weight_kg=round(base_weight + (0 if vi == 0 else rng.uniform(-4, 4)), 1),
            height_m=round(height, 2),
            dose_bq=round(rng.uniform(120e6, 200e6), -4),
            injection=inj,
            pet_start=pet_start,
            t2_scale=float(rng.uniform(300, 500)),
            t2_snr=float(rng.uniform(22, 32)),  # noise sigma vs nominal muscle signal
        )
    return StudyPlan(seed=int(seed), variant=variant, sex=sex, age=age, visits=visits)


# ----------------------------------------------------------------------------- headers


def _patient(plan: StudyPlan, v: VisitPlan) -> dict:
    return {
        "PatientName": f"DRO^THIGH{plan.seed}",
        "PatientID": f"MYOIMG-DRO-{plan.seed:05d}",
        "PatientBirthDate": "",
        "PatientSex": plan.sex,
        "PatientAge": f"{plan.age + (1 if v.visit == 'followup' and plan.age % 2 else 0):03d}Y",
        "PatientWeight": dw.ds_number(v.weight_kg, 5),
        "PatientSize": dw.ds_number(v.height_m, 4),
    }


def _study(s: SessionPlan, desc: str, accession: str) -> dict:
    return {
        "StudyInstanceUID": s.study_uid,
        "StudyDate": _fmt_date(s.start),
        "StudyTime": _fmt_time(s.start),
        "StudyID": accession[-4:],
        "AccessionNumber": accession,
        "ReferringPhysicianName": "",
        "StudyDescription": desc,
        "FrameOfReferenceUID": s.frame_uid,
        "PositionReferenceIndicator": "",
        "BodyPartExamined": "THIGH",
    }


def _mr_series(plan, v, grid, image, role, number, desc, extra, start, window, rle):
    """Datasets of one axial MR series (image is (K, J, I) float, stored as uint16)."""
    seed, variant = plan.seed, plan.variant
    series_uid = dw.make_uid(seed, variant, v.visit, role, "series")
    common = {
        **_patient(plan, v),
        **_study(v.mr, "MR thigh both", f"MR{seed:05d}{VISITS.index(v.visit)}"),
        "Modality": "MR",
        "Manufacturer": "SIEMENS",
        "ManufacturerModelName": "Skyra",
        "InstitutionName": "Digital Reference Hospital",
        "StationName": "MRDRO1",
        "SoftwareVersions": "syngo MR E11",
        "DeviceSerialNumber": "10001",
        "MagneticFieldStrength": "3",
        "ImagingFrequency": "123.2",
        "ImagedNucleus": "1H",
        "MRAcquisitionType": "2D",
        "PatientPosition": "FFS",
        "SeriesInstanceUID": series_uid,
        "SeriesNumber": number,
        "SeriesDescription": desc,
        "ProtocolName": desc,
        "SeriesDate": _fmt_date(start),
        "SeriesTime": _fmt_time(start),
        "ReceiveCoilName": "BO1_2",
        "TransmitCoilName": "Body",
        "NumberOfAverages": "1",
        "PercentSampling": "100",
        "PercentPhaseFieldOfView": "75",
        "InPlanePhaseEncodingDirection": "ROW",
        "WindowCenter": str(window[0]),
        "WindowWidth": str(window[1]),
        **extra,
    }
    out = []
    stored = np.clip(np.round(image), 0, 4095).astype(np.uint16)
    for k in range(grid.shape[0]):
        ds = dw.base_dataset(dw.MR_STORAGE, dw.make_uid(seed, variant, v.visit, role, k), common)
        acq = start + dt.timedelta(seconds=2.0 * ((k * 2) % grid.shape[0]) + 1.0)
        ds.InstanceNumber = k + 1
        ds.AcquisitionNumber = 1
        ds.AcquisitionDate, ds.AcquisitionTime = _fmt_date(acq), _fmt_time(acq)
        ds.ContentDate, ds.ContentTime = (
            _fmt_date(start),
            _fmt_time(start + dt.timedelta(minutes=4)),
        )
        dw.set_geometry(ds, grid, k)
        dw.set_pixels(ds, stored[k], bits_stored=12, signed=False, rle=rle)
        out.append(ds)
    return out


def _localizer(plan, v, rng):
    """Three single-slice planes (sagittal, coronal, axial), T1-like gradient echo."""
    from myoimg.phantom.anatomy import classify
    from myoimg.phantom.render import T1_CONTRAST, _lut

    seed, variant = plan.seed, plan.variant
    s = v.mr
    start = s.start
    series_uid = dw.make_uid(seed, variant, v.visit, "loc", "series")
    common = {
        **_patient(plan, v),
        **_study(s, "MR thigh both", f"MR{seed:05d}{VISITS.index(v.visit)}"),
        "Modality": "MR",
        "Manufacturer": "SIEMENS",
        "ManufacturerModelName": "Skyra",
        "MagneticFieldStrength": "3",
        "ImagedNucleus": "1H",
        "MRAcquisitionType": "2D",
        "PatientPosition": "FFS",
        "SeriesInstanceUID": series_uid,
        "SeriesNumber": 1,
        "SeriesDescription": "localizer",
        "ProtocolName": "localizer",
        "SeriesDate": _fmt_date(start),
        "SeriesTime": _fmt_time(start),
        "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"],
        "ScanningSequence": "GR",
        "SequenceVariant": "SP",
        "ScanOptions": "",
        "SequenceName": "*fl2d1",
        "RepetitionTime": "8.6",
        "EchoTime": "4",
        "FlipAngle": "20",
    }
    centre = apply(s.grid.affine, (np.array(s.grid.shape[::-1]) - 1) / 2)  # T2-FS FOV centre
    planes = {
        "sag": ([0, 1, 0], [0, 0, -1], centre + [-90, 0, 0]),
        "cor": ([1, 0, 0], [0, 0, -1], centre),
        "tra": ([1, 0, 0], [0, 1, 0], centre),
    }
    lut = _lut(T1_CONTRAST, 0.33)
    body_from = np.linalg.inv(s.body_to_patient)
    out = []
    for n, (name, (row, col, c)) in enumerate(planes.items()):
        d = np.stack([row, col, np.cross(row, col)], axis=1).astype(float)
        pix, npx = 1.75, 256
        origin = np.asarray(c) - d @ np.array([(npx - 1) * pix / 2, (npx - 1) * pix / 2, 0])
        g = Grid((1, npx, npx), (pix, pix, 8.0), tuple(origin), tuple(map(tuple, d)), 8.0)
        jj, ii = np.meshgrid(np.arange(npx), np.arange(npx), indexing="ij")
        pts = apply(g.affine, np.stack([ii, jj, np.zeros_like(ii)], -1).astype(float))
        codes = classify(v.anatomy, apply(body_from, pts))
        img = lut[codes.astype(np.intp)] * 600 * bias_field((1, npx, npx), rng, 0.25)[0]
        img = rician(img, 12.0, rng)
        ds = dw.base_dataset(
            dw.MR_STORAGE, dw.make_uid(seed, variant, v.visit, "loc", name), common
        )
        ds.InstanceNumber = n + 1
        ds.AcquisitionDate, ds.AcquisitionTime = _fmt_date(start), _fmt_time(start)
        dw.set_geometry(ds, g, 0, spacing_tag=False)
        dw.set_pixels(ds, np.clip(np.round(img), 0, 4095), bits_stored=12, signed=False)
        out.append(ds)
    return out


def _radiopharm(v: VisitPlan) -> dw.DicomSequence:
    item = dw.Dataset()
    item.Radiopharmaceutical = "68Ga-FAPI-46"
    item.RadiopharmaceuticalRoute = "Intravenous"
    item.RadiopharmaceuticalVolume = "5"
    item.RadiopharmaceuticalStartTime = _fmt_time(v.injection)
    item.RadiopharmaceuticalStartDateTime = v.injection.strftime("%Y%m%d%H%M%S.%f")
    item.RadionuclideTotalDose = dw.ds_number(v.dose_bq, 10)
    item.RadionuclideHalfLife = dw.ds_number(GA68_HALF_LIFE_S, 8)
    item.RadionuclidePositronFraction = "0.8891"
    item.RadionuclideCodeSequence = dw.sequence(dw.code_item("C-131A3", "SRT", "^68^Gallium"))
    return dw.sequence(item)


def decayed_dose(v: VisitPlan) -> float:
    """Injected activity decayed to the PET series start (Bq)."""
    dt_s = (v.pet_start - v.injection).total_seconds()
    return v.dose_bq * 2.0 ** (-dt_s / GA68_HALF_LIFE_S)


def _pet_series(plan, v, bqml, rng):
    seed, variant = plan.seed, plan.variant
    philips = variant == "philips_cnts"
    s = v.pet
    grid = s.grid
    start = v.pet_start
    common = {
        **_patient(plan, v),
        **_study(s, "PET/CT FAPI thighs", f"PT{seed:05d}{VISITS.index(v.visit)}"),
        "Modality": "PT",
        "Manufacturer": "Philips Medical Systems" if philips else "SIEMENS",
        "ManufacturerModelName": "Vereos PET/CT" if philips else "Biograph Vision 600",
        "SoftwareVersions": "4.0" if philips else "VG80B",
        "InstitutionName": "Digital Reference Hospital",
        "PatientPosition": "FFS",
        "SeriesInstanceUID": dw.make_uid(seed, variant, v.visit, "pet", "series"),
        "SeriesNumber": 3,
        "SeriesDescription": "PET FAPI AC thighs",
        "SeriesDate": _fmt_date(start),
        "SeriesTime": _fmt_time(start),
        "ImageType": ["ORIGINAL", "PRIMARY"],
        "Units": "CNTS" if philips else "BQML",
        "DecayCorrection": "START",
        "CorrectedImage": ["NORM", "DTIM", "ATTN", "SCAT", "DECY", "RAN"],
        "SeriesType": ["WHOLE BODY", "IMAGE"],
        "CountsSource": "EMISSION",
        "ReconstructionMethod": "OSEM3D 4i5s PSF+TOF",
        "RandomsCorrectionMethod": "DLYD",
        "AttenuationCorrectionMethod": "measured, AC CT",
        "ScatterCorrectionMethod": "Model-based",
        "DecayCorrectionDateTime": start.strftime("%Y%m%d%H%M%S.%f"),
        "ConvolutionKernel": "XYZ Gauss6.50",
        "CollimatorType": "NONE",
        "AxialAcceptance": "54",
        "NumberOfSlices": grid.shape[0],
        "NumberOfTimeSlices": 1,
        "ActualFrameDuration": 180000,
        "PatientOrientationCodeSequence": dw.sequence(dw.code_item("F-10450", "SRT", "recumbent")),
        "RadiopharmaceuticalInformationSequence": _radiopharm(v),
    }
    lam = np.log(2) / GA68_HALF_LIFE_S
    nk = grid.shape[0]
    cnts_scale = PHILIPS_BQML_PER_COUNT if philips else 1.0
    out = []
    for k in range(nk):
        bed = 0 if k < nk // 2 else 1
        acq = start + dt.timedelta(seconds=180 * bed)
        decay = float(np.exp(lam * 180 * bed))
        ds = dw.base_dataset(dw.PET_STORAGE, dw.make_uid(seed, variant, v.visit, "pet", k), common)
        ds.InstanceNumber = k + 1
        ds.ImageIndex = k + 1
        ds.AcquisitionDate, ds.AcquisitionTime = _fmt_date(acq), _fmt_time(acq)
        ds.ContentDate, ds.ContentTime = (
            _fmt_date(start),
            _fmt_time(start + dt.timedelta(minutes=8)),
        )
        ds.FrameReferenceTime = dw.ds_number(1000 * (180 * bed + 90.0), 8)
        ds.DecayFactor = dw.ds_number(decay, 8)
        ds.DoseCalibrationFactor = "1"
        ds.SliceSensitivityFactor = "1"
        dw.set_geometry(ds, grid, k, spacing_tag=False)
        vals = bqml[k] / cnts_scale
        vmax = float(vals.max())
        slope = vmax / 32767 if vmax > 0 else 1.0
        slope = float(dw.ds_number(slope, 10))
        stored = np.clip(np.round(vals / slope), -32768, 32767)
        dw.set_pixels(ds, stored, bits_stored=16, signed=True, slope=slope)
        ds.RescaleType = "CNTS" if philips else "BQML"
        if philips:
            block = ds.private_block(0x7053, "Philips PET Private Group", create=True)
            suv_factor = cnts_scale * v.weight_kg * 1000.0 / decayed_dose(v)
            block.add_new(0x00, "DS", dw.ds_number(suv_factor, 10))  # SUV scale factor
            block.add_new(0x09, "DS", dw.ds_number(cnts_scale, 10))  # Bq/mL per count
        out.append(ds)
    return out


def _ct_series(plan, v, hu, rle):
    seed, variant = plan.seed, plan.variant
    s = v.pet
    grid = v.ct_grid
    start = s.start
    common = {
        **_patient(plan, v),
        **_study(s, "PET/CT FAPI thighs", f"PT{seed:05d}{VISITS.index(v.visit)}"),
        "Modality": "CT",
        "Manufacturer": "Philips Medical Systems" if variant == "philips_cnts" else "SIEMENS",
        "ManufacturerModelName": "Vereos PET/CT"
        if variant == "philips_cnts"
        else "Biograph Vision 600",
        "PatientPosition": "FFS",
        "SeriesInstanceUID": dw.make_uid(seed, variant, v.visit, "ct", "series"),
        "SeriesNumber": 2,
        "SeriesDescription": "CT AC 4mm",
        "SeriesDate": _fmt_date(start),
        "SeriesTime": _fmt_time(start),
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
        "KVP": "120",
        "XRayTubeCurrent": 45,
        "ExposureTime": 500,
        "ConvolutionKernel": "Br38",
        "RescaleType": "HU",
        "WindowCenter": "40",
        "WindowWidth": "400",
    }
    stored = np.clip(np.round(hu + 1024), 0, 4095)
    out = []
    for k in range(grid.shape[0]):
        ds = dw.base_dataset(dw.CT_STORAGE, dw.make_uid(seed, variant, v.visit, "ct", k), common)
        ds.InstanceNumber = k + 1
        ds.AcquisitionNumber = 1
        ds.AcquisitionDate, ds.AcquisitionTime = _fmt_date(start), _fmt_time(start)
        dw.set_geometry(ds, grid, k, spacing_tag=False)
        dw.set_pixels(ds, stored[k], bits_stored=12, signed=False, intercept=-1024.0, rle=rle)
        ds.RescaleType = "HU"
        out.append(ds)
    return out


# ----------------------------------------------------------------------------- truth


def _write_truth_nifti(path: Path, array_kji: np.ndarray, grid: Grid) -> None:
    """Label map (K, J, I) on a grid -> NIfTI (RAS affine) via myoimg.io.nifti."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(array_kji.astype(np.uint8)))
    img.SetOrigin(tuple(float(v) for v in grid.origin))
    img.SetSpacing(tuple(float(v) for v in grid.spacing))
    img.SetDirection(tuple(float(v) for v in grid.dir.ravel()))
    write_nifti(img, path, dtype=np.uint8)


def _mat(m: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 9) for x in row] for row in m]


def _grid_json(g: Grid) -> dict:
    return {
        "shape_kji": list(g.shape),
        "spacing_ijk_mm": [float(x) for x in g.spacing],
        "slice_thickness_mm": g.thickness,
        "index_to_lps": _mat(g.affine),
    }


def generate_study(
    out_dir: str | Path,
    *,
    seed: int = 0,
    variant: str = "standard",
    progress: Callable[[str], None] | None = None,
    compress: bool = True,
    quick: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic longitudinal thigh MRI + FAPI-PET/CT study with exact truth.

    Parameters
    ----------
    out_dir : path
        Created if needed; receives ``baseline/``, ``followup/`` (DICOM) and ``truth/``.
    seed : int
        Patient seed; same seed -> byte-identical files.
    variant : str
        One of :data:`VARIANTS`.
    progress : callable, optional
        Called with a short message per step.
    compress : bool
        RLE Lossless for the large MR and CT series (default True).
    quick : bool
        Same patient and geometry but only a few slices per series (fast tests).
    overwrite : bool
        Replace existing ``baseline/``, ``followup/`` and ``truth/`` folders in
        ``out_dir``; without it, :class:`~myoimg.errors.OutputExistsError` is raised
        (files of two studies must never mix in one visit folder).

    Returns
    -------
    Path of ``out_dir``.
    """
    out = Path(out_dir)
    parts = [out / name for name in (*VISITS, "truth")]
    existing = [p for p in parts if p.exists() and any(p.iterdir())]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{existing[0]} already exists and is not empty; pass overwrite=True to replace it"
        )
    for p in existing:
        shutil.rmtree(p)
    plan = plan_study(seed, variant, quick=quick)
    say = progress or (lambda msg: None)
    truth: dict = {
        "format": "myoimg-dro-truth/1",
        "seed": plan.seed,
        "variant": variant,
        "conventions": {
            "coordinates": "DICOM patient LPS (mm) of each session; matrices are 4x4 and act on "
            "column vectors (x, y, z, 1)",
            "labels": {m.name: m.id for m in MUSCLES},
            "volume": "partial-volume model on the T2-FS grid: sum over voxels of the muscle's "
            "sub-sample fraction x voxel volume (pixel area x slice spacing), mL",
            "oedema_fraction": "oedematous muscle volume / muscle volume (same sub-samples)",
            "suv": "SUVbw = Bq/mL x weight_g / decayed_dose_bq (dose decayed to the PET "
            "series start, DecayCorrection START)",
        },
        "visits": {},
    }
    for v in plan.visits.values():
        vrng = np.random.default_rng(
            [plan.seed, 7304, VISITS.index(v.visit), VARIANTS.index(variant)]
        )
        say(f"{v.visit}: rasterising MRI")
        r_mr = rasterise(v.anatomy, v.mr.grid, v.mr.body_to_patient, sub=(3, 3, 1))
        t2 = render_t2fs(r_mr, v.anatomy)
        bias = bias_field(v.mr.grid.shape, vrng, 0.3)
        t2_img = rician(t2 * bias * v.t2_scale, v.t2_scale / v.t2_snr, vrng)
        if v.t1_grid == v.mr.grid:
            r_t1 = r_mr
        else:
            r_t1 = rasterise(v.anatomy, v.t1_grid, v.mr.body_to_patient, sub=(2, 2, 1))
        t1 = render_t1(r_t1, v.anatomy) * bias_field(v.t1_grid.shape, vrng, 0.3) * 900
        t1_img = rician(t1, 900 * 0.33 / 25, vrng)
        say(f"{v.visit}: rasterising PET/CT")
        r_pet = rasterise(v.anatomy, v.pet.grid, v.pet.body_to_patient, sub=(3, 3, 3))
        suv_model = render_pet_suv(r_pet, v.anatomy)
        suv_blur = blur_mm(suv_model, v.pet.grid, PET_FWHM_MM)
        factor = v.weight_kg * 1000.0 / decayed_dose(v)  # SUV per (Bq/mL)
        bq_clean = suv_blur / factor
        noise = ndimage.gaussian_filter(vrng.normal(size=bq_clean.shape), 0.7)
        noise /= noise.std()
        bq = np.clip(bq_clean + 0.12 * np.sqrt(bq_clean * bq_clean.max() * 0.15) * noise, 0, None)
        r_ct = rasterise(v.anatomy, v.ct_grid, v.pet.body_to_patient, sub=(2, 2, 1))
        hu = blur_mm(render_ct(r_ct) + 1000.0, v.ct_grid, 1.2) - 1000.0
        # quantum noise inside the patient; air outside is reconstructed flat at -1000 HU
        hu = np.where(hu > -950.0, hu + vrng.normal(0, 8.0, hu.shape), -1000.0)

        say(f"{v.visit}: writing DICOM")
        t0 = v.mr.start
        series = []
        series += _localizer(plan, v, vrng)
        series += _mr_series(
            plan, v, v.mr.grid, t2_img, "t2fs", 4,
            "t2_tirm_tra",
            {
                "ImageType": ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"],
                "ScanningSequence": "IR",
                "SequenceVariant": ["SK", "SP", "MP", "OSP"],
                "ScanOptions": ["IR", "FS"],
                "SequenceName": "*tir2d1_15",
                "RepetitionTime": "5200",
                "EchoTime": "56",
                "InversionTime": "220",
                "EchoTrainLength": 15,
                "FlipAngle": "150",
                "PixelBandwidth": "250",
            },
            t0 + dt.timedelta(minutes=9), (int(v.t2_scale * 1.2), int(v.t2_scale * 2.5)), compress,
        )  # fmt: skip
        series += _mr_series(
            plan, v, v.t1_grid, t1_img, "t1", 3,
            "t1_tse_tra",
            {
                "ImageType": ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"],
                "ScanningSequence": "SE",
                "SequenceVariant": ["SK", "SP", "OSP"],
                "ScanOptions": "",
                "SequenceName": "*tse2d1_3",
                "RepetitionTime": "650",
                "EchoTime": "11",
                "EchoTrainLength": 3,
                "FlipAngle": "150",
                "PixelBandwidth": "220",
            },
            t0 + dt.timedelta(minutes=3), (500, 1000), compress,
        )  # fmt: skip
        series += _ct_series(plan, v, hu, compress)
        series += _pet_series(plan, v, bq, vrng)
        dw.write_files(
            out / v.visit, series, np.random.default_rng([plan.seed, 7305, VISITS.index(v.visit)])
        )

        say(f"{v.visit}: truth")
        labels_mr = r_mr.hard_labels()
        oed_mr = r_mr.hard_oedema()
        labels_pet = r_pet.hard_labels()
        tdir = out / "truth" / v.visit
        _write_truth_nifti(tdir / "labels_mr.nii.gz", labels_mr, v.mr.grid)
        _write_truth_nifti(tdir / "oedema_mr.nii.gz", oed_mr, v.mr.grid)
        _write_truth_nifti(tdir / "labels_pet.nii.gz", labels_pet, v.pet.grid)
        truth["visits"][v.visit] = _visit_truth(plan, v, r_mr, r_pet, suv_blur, labels_pet, factor)
    base, fu = plan.visits["baseline"], plan.visits["followup"]
    truth["transforms"] = {
        "followup_mri_to_baseline_mri": {
            "matrix": _mat(base.mr.body_to_patient @ np.linalg.inv(fu.mr.body_to_patient)),
            "direction": "maps a point in follow-up MRI patient LPS (mm) to the same anatomical "
            "point in baseline MRI patient LPS (mm)",
        },
        **{
            f"{vis}_mri_to_{vis}_petct": {
                "matrix": _mat(p.pet.body_to_patient @ np.linalg.inv(p.mr.body_to_patient)),
                "direction": f"maps a point in {vis} MRI patient LPS (mm) to the same anatomical "
                f"point in {vis} PET/CT patient LPS (mm)",
            }
            for vis, p in plan.visits.items()
        },
    }
    atomic_write_text(
        out / "truth" / "truth.json", json.dumps(truth, indent=1, sort_keys=False) + "\n"
    )
    say("done")
    return out


def _pet_voxels_in_mr_fov(v: VisitPlan) -> np.ndarray:
    """(K, J, I) bool: PET voxels whose centre lies inside the T2-FS field of view.

    The MRI covers a slab of the thigh only; PET numbers measured with labels
    carried from the MRI can only describe that slab, so the truth they are compared
    with is restricted to it too. PET centres are mapped into the MRI session
    (MRI body_to_patient after the inverse PET one) and then into MRI voxel indices.
    """
    g, gm = v.pet.grid, v.mr.grid
    k, j, i = np.indices(g.shape)
    ijk = np.stack([i, j, k], axis=-1).reshape(-1, 3).astype(float)
    pet_to_mr = v.mr.body_to_patient @ np.linalg.inv(v.pet.body_to_patient)
    lps_mr = apply(pet_to_mr @ g.affine, ijk)
    idx = apply(np.linalg.inv(gm.affine), lps_mr)
    limits = np.array([gm.shape[2], gm.shape[1], gm.shape[0]], float) - 0.5
    inside = np.all((idx >= -0.5) & (idx <= limits), axis=1)
    return inside.reshape(g.shape)


def _visit_truth(plan, v: VisitPlan, r_mr: Raster, r_pet: Raster, suv_blur, labels_pet, factor):
    vox_mr = v.mr.grid.voxel_volume_ml / r_mr.n_sub
    n_mr = r_mr.code_counts()
    n_oed = r_mr.code_counts(where=lambda c, o: o > 0)
    n_pet = r_pet.code_counts()
    suv_sum = r_pet.code_sums(lambda c, o: model_suv(c, o, v.anatomy))
    lab_mr_counts = np.bincount(r_mr.hard_labels().ravel(), minlength=19)
    in_mr_fov = _pet_voxels_in_mr_fov(v)
    muscles = {}
    for m in MUSCLES:
        n, no = int(n_mr[m.id]), int(n_oed[m.id])
        lab = labels_pet == m.id
        lab_fov = lab & in_mr_fov
        muscles[m.name] = {
            "volume_ml": round(n * vox_mr, 4),
            "oedema_volume_ml": round(no * vox_mr, 4),
            "oedema_fraction": round(no / n, 6) if n else 0.0,
            "oedema_fraction_target": round(v.anatomy.disease.oedema_target[m.id], 6),
            "suv_model_healthy": round(v.anatomy.disease.suv_healthy[m.id], 6),
            "suv_model_inflamed": round(v.anatomy.disease.suv_inflamed[m.id], 6),
            "suv_model_mean": round(float(suv_sum[m.id] / n_pet[m.id]), 6) if n_pet[m.id] else None,
            "suv_mean_pet_truth_labels": round(float(suv_blur[lab].mean()), 6)
            if lab.any()
            else None,
            "suv_mean_pet_truth_labels_mr_fov": round(float(suv_blur[lab_fov].mean()), 6)
            if lab_fov.any()
            else None,
            "suv_max": round(float(suv_blur[lab].max()), 6) if lab.any() else None,
            "n_voxels_labels_mr": int(lab_mr_counts[m.id]),
            "n_voxels_labels_pet": int(lab.sum()),
        }
    dd = decayed_dose(v)
    return {
        "mri": {
            "t2fs_series_uid": dw.make_uid(plan.seed, plan.variant, v.visit, "t2fs", "series"),
            "frame_of_reference_uid": v.mr.frame_uid,
            "grid": _grid_json(v.mr.grid),
            "body_to_patient": _mat(v.mr.body_to_patient),
        },
        "pet": {
            "series_uid": dw.make_uid(plan.seed, plan.variant, v.visit, "pet", "series"),
            "frame_of_reference_uid": v.pet.frame_uid,
            "grid": _grid_json(v.pet.grid),
            "ct_grid": _grid_json(v.ct_grid),
            "body_to_patient": _mat(v.pet.body_to_patient),
            "resolution_fwhm_mm": PET_FWHM_MM,
            "units": "CNTS" if plan.variant == "philips_cnts" else "BQML",
        },
        "suv": {
            "weight_kg": v.weight_kg,
            "injected_dose_bq": v.dose_bq,
            "injection_datetime": v.injection.isoformat(),
            "pet_series_datetime": v.pet_start.isoformat(),
            "uptake_time_s": (v.pet_start - v.injection).total_seconds(),
            "half_life_s": GA68_HALF_LIFE_S,
            "decayed_dose_bq": round(dd, 3),
            "suv_factor_g_per_bq": factor,
            **(
                {
                    "bq_ml_per_count": PHILIPS_BQML_PER_COUNT,
                    "suv_factor_per_count": factor * PHILIPS_BQML_PER_COUNT,
                }
                if plan.variant == "philips_cnts"
                else {}
            ),
        },
        "muscles": muscles,
    }
