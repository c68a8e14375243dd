"""SUV conversion (myoimg.quantify.suv) against hand-computed values.

Headers are built with pydicom in each test: no PET file ships with pydicom's
test data (checked: no Modality PT / Units / DecayCorrection in pydicom or
pydicom-data files), so there is no real-file test.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from myoimg.errors import SUVError
from myoimg.io.volume import Volume
from myoimg.quantify.suv import (
    body_surface_area_m2,
    compute_suv,
    lean_body_mass_kg,
    suv_factor,
)
from myoimg.quantify.suv_time import parse_dt, parse_tm

LN2 = math.log(2)
GA68 = 4062.6
F18 = 6586.2


def pet(
    n=3,
    *,
    units="BQML",
    decay="START",
    corrected=("ATTN", "DECY"),
    weight="70",
    size="1.75",
    sex="M",
    dose="200000000",
    half=str(GA68),
    start_time="090000",
    start_datetime=None,
    series_date="20261125",
    series_time="100000",
    acq_times=None,
    acq_date="20261125",
):
    """``n`` classic PET slice headers; by default a Ga-68 scan 60 min after injection."""
    out = []
    for k in range(n):
        ds = Dataset()
        ds.Modality = "PT"
        ds.Units = units
        ds.DecayCorrection = decay
        ds.CorrectedImage = list(corrected)
        if weight is not None:
            ds.PatientWeight = weight
        if size is not None:
            ds.PatientSize = size
        ds.PatientSex = sex
        ds.SeriesDate = series_date
        ds.SeriesTime = series_time
        ds.AcquisitionDate = acq_date
        ds.AcquisitionTime = acq_times[k] if acq_times else series_time
        item = Dataset()
        if dose is not None:
            item.RadionuclideTotalDose = dose
        if half is not None:
            item.RadionuclideHalfLife = half
        if start_time is not None:
            item.RadiopharmaceuticalStartTime = start_time
        if start_datetime is not None:
            item.RadiopharmaceuticalStartDateTime = start_datetime
        ds.RadiopharmaceuticalInformationSequence = Sequence([item])
        out.append(ds)
    return out


def add_private(ds, group, creator, offset, vr, value, block=0x10):
    # Reserve the block explicitly so tests can also use a non-default slot.
    ds.add_new((group, block), "LO", creator)
    ds.add_new((group, (block << 8) | offset), vr, value)


def test_ga68_start_hand_value():
    f = suv_factor(pet())
    # 70 kg, 200 MBq, Ga-68, 60 min: 70000 g / (200e6 Bq * 2^(-3600/4062.6))
    expected = 70000 / (200e6 * 2 ** (-3600 / 4062.6))
    assert f.value == pytest.approx(expected, rel=1e-12)
    assert f.value == pytest.approx(6.468750e-4, rel=1e-6)
    assert f.per_slice.shape == (3,) and f.per_slice.dtype == np.float64
    d = f.derivation
    assert d["elapsed_s"] == 3600
    assert d["scan_reference_rule"].startswith("SeriesDate/SeriesTime")
    assert d["injection_datetime"] == "2026-11-25T09:00:00"
    assert d["half_life_source"].startswith("RadionuclideHalfLife")
    assert d["decay_factor"] == pytest.approx(2 ** (-3600 / 4062.6))
    json.dumps(d)  # JSON-serialisable
    text = f.describe()
    assert "200 MBq" in text and "3600.0 s" in text and "70 kg" in text


def test_mbq_dose_detected_and_converted():
    f = suv_factor(pet(dose="150.0", half=str(F18)))
    assert f.value == pytest.approx(70000 / (150e6 * 2 ** (-3600 / F18)), rel=1e-12)
    assert f.derivation["injected_dose_bq"] == 150e6
    assert any("MBq" in w for w in f.derivation["warnings"])


@pytest.mark.parametrize("dose", ["0.5", "50000", "0", "2e11"])
def test_implausible_dose_refused(dose):
    with pytest.raises(SUVError, match=r"\(0018,1074\)"):
        suv_factor(pet(dose=dose))


def test_weight_in_grams():
    f = suv_factor(pet(weight="70000"))
    assert f.value == pytest.approx(70000 / (200e6 * 2 ** (-3600 / GA68)), rel=1e-12)
    assert f.derivation["weight_kg"] == 70
    assert any("grams" in w for w in f.derivation["warnings"])


def test_midnight_crossing():
    # Injected 23:35 on the 25th, scanned 00:05 on the 26th: 1800 s.
    f = suv_factor(pet(series_date="20261126", acq_date="20261126",
                       series_time="000500", start_time="233500"))  # fmt: skip
    assert f.derivation["elapsed_s"] == 1800
    assert f.derivation["injection_datetime"] == "2026-11-25T23:35:00"
    assert f.value == pytest.approx(70000 / (200e6 * 2 ** (-1800 / GA68)), rel=1e-12)


def test_start_datetime_preferred_and_offsets():
    # The DateTime says 08:30 (the bare time 09:00 is ignored): 5400 s.
    f = suv_factor(pet(start_datetime="20261125083000"))
    assert f.derivation["elapsed_s"] == 5400
    # Offset +0100 on the DT, local zone +0000: 09:30+01:00 = 08:30 local.
    hs = pet(start_datetime="20261125093000+0100")
    for ds in hs:
        ds.TimezoneOffsetFromUTC = "+0000"
    assert suv_factor(hs).derivation["elapsed_s"] == 5400


def test_ge_private_time_when_series_after_acquisition():
    # Series re-created at 12:00; acquisition 10:00; GE scan time 10:10:00.5 -> 4200.5 s.
    hs = pet(series_time="120000", acq_times=["100000"] * 3)
    for ds in hs:
        add_private(ds, 0x0009, "GEMS_PETD_01", 0x0D, "DT", "20261125101000.5", block=0x11)
    f = suv_factor(hs)
    assert f.derivation["elapsed_s"] == 4200.5
    assert "GE private" in f.derivation["scan_reference_rule"]
    assert f.value == pytest.approx(70000 / (200e6 * 2 ** (-4200.5 / GA68)), rel=1e-12)


def test_ge_private_ignored_when_reserved_by_other_creator():
    hs = pet(series_time="120000", acq_times=["100000", "100500", "101000"])
    for ds in hs:
        add_private(ds, 0x0009, "SOMEONE_ELSE", 0x0D, "DT", "20261125101000")
    f = suv_factor(hs)
    assert "earliest" in f.derivation["scan_reference_rule"]
    assert f.derivation["elapsed_s"] == 3600


def test_microsecond_comparison_of_series_and_acquisition():
    def with_ge(series_time):
        hs = pet(series_time=series_time, acq_times=["100000.000000"] * 3)
        for ds in hs:
            add_private(ds, 0x0009, "GEMS_PETD_01", 0x0D, "DT", "20261125103000")
        return suv_factor(hs).derivation

    equal = with_ge("100000")  # series time == acquisition: series time used
    assert equal["scan_reference_rule"].startswith("SeriesDate")
    assert equal["elapsed_s"] == 3600
    later = with_ge("100000.000001")  # 1 us after the acquisition: GE time used
    assert "GE private" in later["scan_reference_rule"]
    assert later["elapsed_s"] == 5400
    earlier = with_ge("095959.999999")  # 1 us before: series time used
    assert earlier["elapsed_s"] == pytest.approx(3599.999999, abs=1e-9)


def test_earliest_acquisition_fallback():
    hs = pet(series_time="120000", acq_times=["101000", "100500", "102000"])
    f = suv_factor(hs)
    assert f.derivation["elapsed_s"] == 3900  # earliest 10:05 - 09:00
    assert "earliest" in f.derivation["scan_reference_rule"]


def test_frame_reference_back_computation():
    # Bed position starts 10:20, frame 180 s, pixel time 1300 s after the series reference.
    hs = pet(n=1, series_time="120000", acq_times=["102000"])
    hs[0].ActualFrameDuration = 180000
    hs[0].FrameReferenceTime = 1300000
    lam = LN2 / GA68
    t_ave = math.log(lam * 180 / (1 - math.exp(-lam * 180))) / lam  # ~89.6 s, < 90 s
    assert 89 < t_ave < 90
    expected_ref = 20 * 60 + 3600 - 1300 + t_ave  # seconds after injection at 09:00
    f = suv_factor(hs)
    assert f.derivation["elapsed_s"] == pytest.approx(expected_ref, abs=1e-6)
    assert "FrameReferenceTime" in f.derivation["scan_reference_rule"]


def test_decay_none_per_slice():
    hs = pet(decay="NONE", corrected=("ATTN",),
             acq_times=["100000", "100300.250000", "101000"])  # fmt: skip
    durations_ms = [180000, 120000, 240000]
    for ds, d in zip(hs, durations_ms, strict=True):
        ds.ActualFrameDuration = d
    f = suv_factor(hs)
    lam = LN2 / GA68
    starts = [3600.0, 3780.25, 4200.0]
    for k in range(3):
        T = durations_ms[k] / 1000
        # Measured C = C0 e^{-lam t_s} (1 - e^{-lam T}) / (lam T)  ->  C0 = C * this / C
        expected = 70000 / 200e6 * math.exp(lam * starts[k]) * lam * T / (1 - math.exp(-lam * T))
        assert f.per_slice[k] == pytest.approx(expected, rel=1e-12)
    assert f.derivation["per_slice_elapsed_s"] == starts
    with pytest.raises(SUVError, match="varies"):
        _ = f.value


def test_decay_none_frame_average_numerically():
    # Independent check of the frame-average formula by numerical integration.
    lam, ts, T = LN2 / GA68, 3000.0, 300.0
    t = np.linspace(ts, ts + T, 200001)
    measured = np.trapezoid(np.exp(-lam * t), t) / T  # C0 = 1 at injection
    hs = pet(n=1, decay="NONE", corrected=("ATTN",), acq_times=["095000"])
    hs[0].ActualFrameDuration = 300000
    f = suv_factor(hs)
    assert measured * f.value == pytest.approx(70000 / 200e6, rel=1e-9)


def test_decay_none_requires_duration_and_no_decy():
    hs = pet(decay="NONE", corrected=("ATTN",))
    with pytest.raises(SUVError, match=r"\(0018,1242\)"):
        suv_factor(hs)
    with pytest.raises(SUVError, match=r"\(0028,0051\)"):
        suv_factor(pet(decay="NONE", corrected=("ATTN", "DECY")))


def test_admin_no_decay():
    f = suv_factor(pet(decay="ADMIN", start_time=None))
    assert f.value == pytest.approx(70000 / 200e6, rel=1e-12)


def test_start_without_decy_refused():
    with pytest.raises(SUVError, match=r"\(0028,0051\) CorrectedImage"):
        suv_factor(pet(corrected=("ATTN", "NORM")))
    with pytest.raises(SUVError, match=r"\(0028,0051\)"):
        suv_factor(pet(corrected=("DECY",)))


def test_philips_cnts_per_slice_suv_factor():
    hs = pet(units="CNTS", dose=None, weight=None, half=None, start_time=None)
    values = ["0.000512", "0.000520", "0.000531"]
    for ds, v in zip(hs, values, strict=True):
        add_private(ds, 0x7053, "Philips PET Private Group", 0x00, "DS", v)
    f = suv_factor(hs)
    np.testing.assert_array_equal(f.per_slice, [0.000512, 0.000520, 0.000531])
    assert "7053,1000" in f.derivation["rule"]
    arr = np.full((3, 2, 4), 1000.0, dtype=np.float32)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((2.0, 2.0, 3.0))
    img.SetOrigin((1.0, 2.0, 3.0))
    res = compute_suv(Volume(image=img, headers=tuple(hs)))
    out = sitk.GetArrayFromImage(res.image)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [0.512, 0.520, 0.531], rtol=1e-6)
    assert res.image.GetSpacing() == (2.0, 2.0, 3.0)
    assert res.image.GetOrigin() == (1.0, 2.0, 3.0)


def test_philips_cnts_activity_factor_then_bqml_rule():
    hs = pet(units="CNTS")
    for ds in hs:
        add_private(ds, 0x7053, "Philips PET Private Group", 0x09, "DS", "2.5")
    f = suv_factor(hs)
    assert f.value == pytest.approx(2.5 * 70000 / (200e6 * 2 ** (-3600 / GA68)), rel=1e-12)


def test_philips_private_creator_checked():
    hs = pet(units="CNTS")
    for ds in hs:
        add_private(ds, 0x7053, "Other Vendor Group", 0x00, "DS", "0.0005")
    with pytest.raises(SUVError, match=r"\(7053,1000\)"):
        suv_factor(hs)


def test_gml_and_cm2ml():
    f = suv_factor(pet(units="GML"))
    assert f.value == 1.0
    assert any("SUVType" in w for w in f.derivation["warnings"])
    hs = pet(units="GML")
    for ds in hs:
        ds.SUVType = "BW"
    # SUVbw -> SUL by LBM/W (Janmahasatian male 70 kg 1.75 m: 55.857107722577 kg)
    assert suv_factor(hs, kind="lbm").value == pytest.approx(55.857107722577 / 70, rel=1e-10)
    for ds in hs:
        ds.SUVType = "LBM"
    with pytest.raises(SUVError, match=r"\(0054,1006\)"):
        suv_factor(hs, kind="bw")
    with pytest.raises(SUVError, match=r"\(0054,1001\).*"):
        suv_factor(pet(units="CM2ML"))
    assert suv_factor(pet(units="CM2ML"), kind="bsa").value == 1.0


def test_unknown_units_refused():
    with pytest.raises(SUVError, match=r"\(0054,1001\)"):
        suv_factor(pet(units="MGMINML"))


def test_missing_attributes_name_tag_and_file():
    hs = pet(weight=None)
    hs[0].filename = "/data/pet/slice001.dcm"
    with pytest.raises(SUVError, match=r"slice001\.dcm.*\(0010,1030\) PatientWeight"):
        suv_factor(hs)
    with pytest.raises(SUVError, match=r"\(0010,1030\)"):
        suv_factor(pet(weight="0"))
    with pytest.raises(SUVError, match=r"file series7.*\(0018,1074\)"):
        suv_factor(pet(dose=None), source="/x/series7")
    with pytest.raises(SUVError, match=r"\(0018,1075\)"):
        suv_factor(pet(half=None))
    with pytest.raises(SUVError, match=r"\(0018,1072\)"):
        suv_factor(pet(start_time=None))
    hs = pet()
    del hs[0].RadiopharmaceuticalInformationSequence
    with pytest.raises(SUVError, match=r"\(0054,0016\)"):
        suv_factor(hs)


@pytest.mark.parametrize(("code", "half"), [("C-131A3", GA68), ("77004003", F18)])
def test_half_life_from_radionuclide_code(code, half):
    hs = pet(half=None)
    for ds in hs:
        c = Dataset()
        c.CodeValue = code
        c.CodingSchemeDesignator = "SRT" if code.startswith("C-") else "SCT"
        ds.RadiopharmaceuticalInformationSequence[0].RadionuclideCodeSequence = Sequence([c])
    f = suv_factor(hs)
    assert f.derivation["half_life_s"] == half
    assert f.value == pytest.approx(70000 / (200e6 * 2 ** (-3600 / half)), rel=1e-12)


def test_implausible_gaps_refused():
    # Injection after the scan (DateTime given, so no midnight wrap).
    with pytest.raises(SUVError, match=r"\(0018,1078\)"):
        suv_factor(pet(start_datetime="20261125110000"))
    # Ga-68 (half-life < 2 h) 7 h after injection.
    with pytest.raises(SUVError, match="implausible"):
        suv_factor(pet(start_time="030000"))
    # F-18 injected 23:00 and scanned 10:00: wraps to 11 h before -> refused.
    with pytest.raises(SUVError, match="implausible"):
        suv_factor(pet(start_time="230000", half=str(F18)))


def test_sul_and_bsa_hand_values():
    base = 70000 / (200e6 * 2 ** (-3600 / GA68))  # SUVbw factor, per g
    cases = [
        ("M", "janmahasatian", 55.857107722577),  # 9270*70/(6680+216*22.857)
        ("M", "james", 56.52),  # 1.10*70 - 128*(70/175)^2
        ("F", "james", 51.22),  # 1.07*70 - 148*(70/175)^2
        ("F", "janmahasatian", 45.197014925373),  # 9270*70/(8780+244*22.857)
    ]
    for sex, formula, lbm in cases:
        assert lean_body_mass_kg(70, 1.75, sex, formula) == pytest.approx(lbm, rel=1e-10)
        f = suv_factor(pet(sex=sex), kind="lbm", lbm_formula=formula)
        assert f.value == pytest.approx(base * lbm / 70, rel=1e-10)
        assert f.derivation["lbm_kg"] == pytest.approx(lbm, rel=1e-10)
    # Du Bois: 0.007184 * 70^0.425 * 175^0.725 = 1.848143 m^2 -> 18481.43 cm^2
    assert body_surface_area_m2(70, 1.75) == pytest.approx(1.848143018, rel=1e-8)
    f = suv_factor(pet(), kind="bsa")
    assert f.value == pytest.approx(18481.43018 / (200e6 * 2 ** (-3600 / GA68)), rel=1e-8)
    assert f.derivation["suv_units"] == "cm2/mL"
    # Height in cm is converted; missing height or sex refused for SUL.
    assert suv_factor(pet(size="175"), kind="bsa").value == pytest.approx(f.value)
    with pytest.raises(SUVError, match=r"\(0010,1020\)"):
        suv_factor(pet(size=None), kind="lbm")
    with pytest.raises(SUVError, match=r"\(0010,0040\)"):
        suv_factor(pet(sex="O"), kind="lbm")


def test_inconsistent_slices_refused():
    hs = pet()
    hs[2].RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose = "190000000"
    with pytest.raises(SUVError, match=r"slice 3.*\(0018,1074\)"):
        suv_factor(hs)


def _enhanced(decay_corrected="NO"):
    ds = Dataset()
    ds.Modality = "PT"
    ds.Units = "BQML"
    ds.CorrectedImage = ["ATTN"] + (["DECY"] if decay_corrected == "YES" else [])
    ds.DecayCorrected = decay_corrected
    ds.AttenuationCorrected = "YES"
    ds.PatientWeight = "70"
    if decay_corrected == "YES":
        ds.DecayCorrectionDateTime = "20261125100000"
    item = Dataset()
    item.RadionuclideTotalDose = "200000000"
    item.RadionuclideHalfLife = str(GA68)
    item.RadiopharmaceuticalStartDateTime = "20261125090000"
    ds.RadiopharmaceuticalInformationSequence = Sequence([item])
    frames = []
    # Frame 1 is the highest slice: the loader sorts by position, so it ends up last.
    for z, start in ((20.0, "20261125101000"), (10.0, "20261125100500"), (0.0, "20261125100000")):
        fr = Dataset()
        content = Dataset()
        content.FrameAcquisitionDateTime = start
        content.FrameAcquisitionDuration = 120000.0
        fr.FrameContentSequence = Sequence([content])
        pos = Dataset()
        pos.ImagePositionPatient = [0.0, 0.0, z]
        fr.PlanePositionSequence = Sequence([pos])
        frames.append(fr)
    shared = Dataset()
    ori = Dataset()
    ori.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PlaneOrientationSequence = Sequence([ori])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.NumberOfFrames = 3
    return ds


def test_enhanced_multiframe():
    f = suv_factor([_enhanced("NO")])
    lam, T = LN2 / GA68, 120.0
    avg = lam * T / (1 - math.exp(-lam * T))
    # Slice order z = 0, 10, 20 -> frame starts 60, 65, 70 min after injection.
    for k, minutes in enumerate((60, 65, 70)):
        expected = 70000 / 200e6 * math.exp(lam * minutes * 60) * avg
        assert f.per_slice[k] == pytest.approx(expected, rel=1e-12)
    g = suv_factor([_enhanced("YES")])
    assert g.value == pytest.approx(70000 / (200e6 * 2 ** (-3600 / GA68)), rel=1e-12)
    assert "9701" in g.derivation["scan_reference_rule"]


def test_compute_suv_without_headers_refused():
    img = sitk.GetImageFromArray(np.ones((2, 2, 2), np.float32))
    with pytest.raises(SUVError, match="NIfTI"):
        compute_suv(Volume(image=img, source="x.nii.gz"))


def test_time_parsing():
    assert parse_tm("101500.25") == dt.time(10, 15, 0, 250000)
    assert parse_tm("1015") == dt.time(10, 15)
    assert parse_tm("10:15:30.5") == dt.time(10, 15, 30, 500000)
    assert parse_dt("20261125101500.000001") == dt.datetime(2026, 11, 25, 10, 15, 0, 1)
    assert parse_dt("20261125101500-0500", "+0100") == dt.datetime(2026, 11, 25, 16, 15)
    with pytest.raises(ValueError):
        parse_tm("25x")


def test_round_trip_through_implicit_vr_files(tmp_path):
    # Private elements read back from implicit-VR files (possibly as raw bytes),
    # and the file name from a real FileDataset appears in error messages.
    from pydicom import dcmread
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ImplicitVRLittleEndian, generate_uid

    hs = pet(units="CNTS", series_time="120000", acq_times=["100000"] * 3)
    paths = []
    for k, ds in enumerate(hs):
        add_private(ds, 0x7053, "Philips PET Private Group", 0x09, "DS", "2.5")
        add_private(ds, 0x0009, "GEMS_PETD_01", 0x0D, "DT", "20261125101000")
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.128"
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = tmp_path / f"pet{k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    read = [dcmread(p, stop_before_pixels=True) for p in paths]
    f = suv_factor(read)
    # GE time 10:10 -> 4200 s; activity factor 2.5
    assert f.derivation["elapsed_s"] == 4200
    assert f.value == pytest.approx(2.5 * 70000 / (200e6 * 2 ** (-4200 / GA68)), rel=1e-12)
    for ds in read:
        del ds.PatientWeight
    with pytest.raises(SUVError, match=r"pet000\.dcm.*\(0010,1030\)"):
        suv_factor(read)
    read[2].PatientWeight = "70"  # only the third slice has a weight
    with pytest.raises(SUVError, match=r"slice 3 differs.*pet002\.dcm.*\(0010,1030\)"):
        suv_factor(read)


def test_philips_unknown_vr_bytes_and_missing_creator():
    hs = pet(units="CNTS")
    hs[0].add_new((0x7053, 0x1000), "UN", b"0.000512")  # text bytes, even length
    hs[1].add_new((0x7053, 0x1000), "UN", np.float64(0.000520).tobytes())  # binary FD
    hs[2].add_new((0x7053, 0x1000), "UN", b"5.31E-4 ")
    f = suv_factor(hs)
    np.testing.assert_allclose(f.per_slice, [0.000512, 0.000520, 0.000531], rtol=1e-15)
    assert any("without its private creator" in w for w in f.derivation["warnings"])
