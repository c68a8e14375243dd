"""load_series/load_files: real pydicom test files, SimpleITK cross-check, geometry quirks."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_factory import write_series
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from myoimg.errors import DicomInputError, GeometryError, MissingAttributeError
from myoimg.io import load_files, load_image, load_series, scan, select_series
from myoimg.io.dicom_load import _native_pixels

# Only names shipped with pydicom / pydicom-data (an unknown name triggers a download).
MR_SMALL = [
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_implicit.dcm",
    "MR_small_padded.dcm",
]
EMRI = [
    "emri_small.dcm",
    "emri_small_big_endian.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_RLE.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
]


def _copy(name: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(get_testdata_file(name), folder / name))


def _sitk_reference(folder: Path) -> sitk.Image:
    """SimpleITK/GDCM's own sorting and reading of a folder (independent implementation)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _assert_same_geometry(image: sitk.Image, ref: sitk.Image, tol: float = 1e-4) -> None:
    assert image.GetSize() == ref.GetSize()
    np.testing.assert_allclose(image.GetOrigin(), ref.GetOrigin(), atol=tol)
    np.testing.assert_allclose(image.GetSpacing(), ref.GetSpacing(), atol=tol)
    np.testing.assert_allclose(image.GetDirection(), ref.GetDirection(), atol=tol)


# ---------------------------------------------------------------- real files


@pytest.mark.filterwarnings("ignore:The pixel data is .* excess padding")
@pytest.mark.parametrize("name", MR_SMALL)
def test_mr_small_every_transfer_syntax_decodes_to_gdcm_pixels(name, tmp_path):
    ref = sitk.ReadImage(get_testdata_file("MR_small.dcm"))  # GDCM decoder, uncompressed
    vol = load_files([_copy(name, tmp_path)])
    assert vol.image.GetPixelID() == sitk.sitkFloat32
    np.testing.assert_array_equal(vol.array[0], sitk.GetArrayViewFromImage(ref)[0])
    hdr = vol.headers[0]
    assert "PixelData" not in hdr
    np.testing.assert_allclose(vol.image.GetOrigin(), [float(v) for v in hdr.ImagePositionPatient])
    ps = [float(v) for v in hdr.PixelSpacing]
    np.testing.assert_allclose(vol.spacing, [ps[1], ps[0], float(hdr.SliceThickness)])


def test_ct_small_in_hounsfield_units(tmp_path):
    path = _copy("CT_small.dcm", tmp_path)
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array.astype(float)
    vol = load_files([path])
    # Stored value * slope + intercept, computed from the header here.
    expected = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(vol.array[0], expected)
    assert float(ds.RescaleIntercept) == -1024.0
    gdcm = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0]
    np.testing.assert_array_equal(vol.array[0], gdcm)


def test_truncated_real_file_names_the_file(tmp_path):
    path = _copy("MR_truncated.dcm", tmp_path)
    with pytest.raises(DicomInputError, match="MR_truncated.dcm"):
        load_files([path])


def _emri_with_geometry(name: str, folder: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """emri_small has no functional groups: add them (frames deliberately out of order)."""
    ds = pydicom.dcmread(get_testdata_file(name))
    n = int(ds.NumberOfFrames)
    z = np.array([3, 0, 7, 1, 9, 4, 2, 8, 5, 6], float)[:n] * 2.5 - 40.0  # shuffled positions
    shared = Dataset()
    ori = Dataset()
    ori.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # coronal: normal = +y (posterior)
    shared.PlaneOrientationSequence = Sequence([ori])
    meas = Dataset()
    meas.PixelSpacing = [0.9, 1.1]
    meas.SliceThickness = 2.5
    shared.PixelMeasuresSequence = Sequence([meas])
    pvt = Dataset()
    pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = 2, -5, "US"
    shared.PixelValueTransformationSequence = Sequence([pvt])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for f in range(n):
        item, pos = Dataset(), Dataset()
        pos.ImagePositionPatient = [10.0, z[f], 20.0]
        item.PlanePositionSequence = Sequence([pos])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    out = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(out)
    return out, z, ds.pixel_array.astype(float)


def test_emri_small_without_functional_groups_is_refused(tmp_path):
    with pytest.raises(MissingAttributeError, match="PerFrameFunctionalGroupsSequence"):
        load_files([_copy("emri_small.dcm", tmp_path)])


@pytest.mark.parametrize("name", EMRI)
def test_enhanced_mr_geometry_from_per_frame_groups(name, tmp_path):
    path, z, frames = _emri_with_geometry(name, tmp_path)
    vol = load_files([path])
    order = np.argsort(z)  # normal is +y, so ascending y
    np.testing.assert_array_equal(vol.array, frames[order] * 2 - 5)
    for k, f in enumerate(order):
        point = vol.image.TransformIndexToPhysicalPoint((0, 0, k))
        np.testing.assert_allclose(point, [10.0, z[f], 20.0], atol=1e-6)
    np.testing.assert_allclose(vol.spacing, (1.1, 0.9, 2.5))
    np.testing.assert_allclose(vol.image.GetDirection(), [1, 0, 0, 0, 0, 1, 0, -1, 0], atol=1e-12)
    assert len(vol.headers) == 1 and "PixelData" not in vol.headers[0]


def test_enhanced_ct_supplemental(tmp_path):
    path = _copy("eCT_Supplemental.dcm", tmp_path)
    ds = pydicom.dcmread(path)
    ipps = [
        [float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient]
        for f in ds.PerFrameFunctionalGroupsSequence
    ]
    vol = load_files([path])
    # IOP (-1,0,0 / 0,1,0): normal = -z, so the frame at z=-149 comes before z=-159.
    np.testing.assert_allclose(vol.image.GetOrigin(), ipps[1])
    np.testing.assert_allclose(vol.image.TransformIndexToPhysicalPoint((0, 0, 1)), ipps[0])
    np.testing.assert_allclose(vol.spacing, (0.388672, 0.388672, 10.0))
    np.testing.assert_allclose(vol.image.GetDirection(), [-1, 0, 0, 0, 1, 0, 0, 0, -1])
    np.testing.assert_array_equal(vol.array, ds.pixel_array[::-1].astype(float) - 1024.0)


# ------------------------------------------------ synthetic series vs SimpleITK


@pytest.mark.parametrize(
    "modality,iop",
    [
        ("MR", (1, 0, 0, 0, 1, 0)),
        ("MR", (0.866025, 0.5, 0.0, -0.469846, 0.813798, 0.342020)),  # double oblique
        ("PT", (1, 0, 0, 0, 1, 0)),  # per-slice RescaleSlope
        ("CT", (1, 0, 0, 0, 1, 0)),
    ],
)
def test_matches_simpleitk_series_reader(modality, iop, tmp_path):
    s = write_series(tmp_path / "s", modality=modality, iop=iop, n_slices=7, seed=3)
    info = select_series(scan(tmp_path), None)
    calls = []
    vol = load_series(info, progress=lambda d, t: calls.append((d, t)))
    ref = _sitk_reference(tmp_path / "s")
    _assert_same_geometry(vol.image, ref)
    np.testing.assert_allclose(vol.array, sitk.GetArrayViewFromImage(ref), rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(vol.array, s.values, rtol=1e-6, atol=1e-4)
    assert calls[-1] == (7, 7)
    # headers and files in slice order (ascending along the normal), no pixel data
    proj = [np.dot([float(v) for v in h.ImagePositionPatient], s.normal) for h in vol.headers]
    assert np.all(np.diff(proj) > 0)
    assert list(vol.files) == s.files
    assert all("PixelData" not in h for h in vol.headers)
    if modality == "PT":
        assert np.ptp(s.slopes) > 0.5  # the test really has per-slice slopes


def test_input_files_are_not_modified(tmp_path):
    s = write_series(tmp_path / "s", modality="PT", n_slices=4)
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in s.files}
    load_image(tmp_path)
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in s.files} == digest


# ---------------------------------------------------------------- quirks


def _positions(z, x_shift=None):
    z = np.asarray(z, float)
    pos = np.zeros((len(z), 3))
    pos[:, 2] = z
    if x_shift is not None:
        pos[:, 1] = x_shift
    return pos


def test_missing_slice_refused_then_resampled(tmp_path):
    s = write_series(tmp_path, positions=_positions([0, 5, 10, 20, 25]), random_names=False)
    with pytest.raises(GeometryError, match=r"missing slice.*2 x the 5\.000 mm") as err:
        load_files(s.files)
    assert "0020,0032" in str(err.value)
    vol = load_files(s.files, resample_nonuniform=True)
    assert vol.image.GetSize()[2] == 6 and vol.spacing[2] == pytest.approx(5.0)
    assert vol.warnings and "missing" in vol.warnings[0]
    # the interpolated slice at z=15 is the mean of z=10 and z=20
    np.testing.assert_allclose(vol.array[3], (s.values[2] + s.values[3]) / 2, rtol=1e-6)


def test_nonuniform_spacing_refused_then_resampled_exactly(tmp_path):
    z = np.array([0.0, 4.0, 10.0, 13.0, 20.0])
    # stored value linear in z: linear interpolation must reproduce 50 + 2 z exactly
    stored = np.broadcast_to((50 + 2 * z)[:, None, None], (5, 12, 10)).astype(np.int16)
    s = write_series(tmp_path, positions=_positions(z), stored=stored)
    with pytest.raises(GeometryError, match="non-uniform slice spacing"):
        load_files(s.files)
    vol = load_files(s.files, resample_nonuniform=True)
    n = vol.image.GetSize()[2]
    assert n == 8  # 20 mm / min gap 3 mm -> 7 steps of 2.857 mm
    zk = np.array([vol.image.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in range(n)])
    np.testing.assert_allclose(zk, np.linspace(0, 20, 8), atol=1e-9)
    np.testing.assert_allclose(vol.array[:, 0, 0], 50 + 2 * zk, rtol=1e-6)
    assert "resampled" in vol.warnings[0]


def test_duplicate_position(tmp_path):
    s = write_series(tmp_path, positions=_positions([0, 5, 5, 10]))
    with pytest.raises(GeometryError, match="duplicate slice position") as err:
        load_files(s.files)
    assert err.value.tag.startswith("(0020,0032)")
    assert err.value.path in s.files


def test_gantry_tilt_by_positions(tmp_path):
    z = np.arange(5) * 5.0
    s = write_series(
        tmp_path, modality="CT", positions=_positions(z, x_shift=np.tan(np.radians(15)) * z)
    )
    with pytest.raises(GeometryError, match=r"tilted by 15\.00 deg"):
        load_files(s.files)


def test_gantry_tilt_by_header(tmp_path):
    s = write_series(tmp_path, modality="CT", extra={"GantryDetectorTilt": "12.5"})
    with pytest.raises(GeometryError, match="gantry tilt 12.5") as err:
        load_files(s.files)
    assert "GantryDetectorTilt" in err.value.tag


def test_mixed_orientation(tmp_path):
    per = [{}] * 4 + [{"ImageOrientationPatient": ["1", "0", "0", "0", "0", "-1"]}]
    s = write_series(tmp_path, n_slices=5, per_slice=per)
    with pytest.raises(GeometryError, match="orientation") as err:
        load_files(s.files)
    assert "ImageOrientationPatient" in err.value.tag
    # scan() puts the odd slice into its own stack instead
    stacks = scan(tmp_path).series
    assert sorted(x.n_instances for x in stacks) == [1, 4]
    assert {x.stack for x in stacks} == {1, 2}


def test_missing_ipp_names_file_and_tag(tmp_path):
    s = write_series(tmp_path, per_slice=[{}, {}, {"ImagePositionPatient": None}, {}])
    with pytest.raises(MissingAttributeError) as err:
        load_files(s.files)
    assert "(0020,0032) ImagePositionPatient" in str(err.value)
    assert s.files[2].name in str(err.value)


def test_truncated_synthetic_file(tmp_path):
    s = write_series(tmp_path, n_slices=4)
    data = s.files[1].read_bytes()
    s.files[1].write_bytes(data[: len(data) - 100])
    with pytest.raises(DicomInputError, match=s.files[1].name):
        load_files(s.files)


def test_garbage_file_in_series(tmp_path):
    s = write_series(tmp_path, n_slices=3)
    bad = tmp_path / "broken"
    bad.write_bytes(b"not a dicom file at all")
    with pytest.raises(DicomInputError, match="broken"):
        load_files([*s.files, bad])


@pytest.mark.parametrize("signed", [False, True])
def test_fast_native_decoder_matches_pydicom_for_12_bit_data(tmp_path, signed):
    # 12 bits stored in 16: pydicom masks the unused high bits (unsigned) or
    # sign-extends bit 11 (signed); the fast path must give the same values.
    rng = np.random.default_rng(5)
    s = write_series(tmp_path, n_slices=2, modality="CT" if signed else "MR",
                     extra={"BitsStored": 12, "HighBit": 11})  # fmt: skip
    ds = pydicom.dcmread(s.files[0])
    raw = rng.integers(0, 2**16, size=(ds.Rows, ds.Columns)).astype(np.uint16)
    ds.PixelData = raw.tobytes()
    fast = _native_pixels(ds)
    expected = ds.pixel_array
    assert fast is not None and fast.dtype == expected.dtype
    np.testing.assert_array_equal(fast, expected)
    if signed:
        assert expected.min() < 0 and expected.max() < 2048
    else:
        assert expected.max() < 4096 and raw.max() >= 4096


def test_scan_and_load_image_of_enhanced_object(tmp_path):
    path, z, frames = _emri_with_geometry("emri_small_RLE.dcm", tmp_path / "emr")
    (info,) = scan(tmp_path / "emr").series
    assert (info.n_instances, info.n_slices, info.plane) == (1, 10, "coronal")
    assert info.slice_spacing == pytest.approx(2.5)
    assert info.pixel_spacing == pytest.approx((0.9, 1.1))
    vol = load_image(tmp_path / "emr")  # the only series: no role needed
    np.testing.assert_array_equal(vol.array, frames[np.argsort(z)] * 2 - 5)
    assert vol.info == info and vol.files == (path,)
    single = load_image(path)  # a single DICOM file
    np.testing.assert_array_equal(single.array, vol.array)
