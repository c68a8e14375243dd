"""NIfTI round trip: LPS in memory, RAS on disk, same physical points as SimpleITK's reader."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from myoimg.errors import MyoimgError
from myoimg.io import (
    index_to_lps_affine,
    load_image,
    lps_to_ras_affine,
    ras_to_lps_affine,
    read_nifti,
    write_nifti,
)

VOXELS = [(0, 0, 0), (6, 0, 0), (0, 4, 0), (0, 0, 2), (5, 3, 1), (6, 4, 2)]


def _oblique_image(pixel=sitk.sitkFloat32) -> sitk.Image:
    rng = np.random.default_rng(7)
    arr = rng.normal(100, 20, size=(3, 5, 7))  # (k, j, i)
    if pixel == sitk.sitkUInt8:
        arr = rng.integers(0, 19, size=(3, 5, 7))
    image = sitk.Cast(sitk.GetImageFromArray(arr), pixel)
    # rotation of 20 deg about x then 35 deg about z: a genuinely oblique direction
    a, b = np.radians(20), np.radians(35)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    image.SetDirection(tuple((rz @ rx).ravel()))
    image.SetSpacing((0.7, 0.9, 5.0))
    image.SetOrigin((-80.5, 33.25, 120.0))
    return image


def _points(image: sitk.Image) -> np.ndarray:
    return np.array([image.TransformIndexToPhysicalPoint(v) for v in VOXELS])


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_round_trip_and_simpleitk_agree_on_physical_points(tmp_path, suffix):
    image = _oblique_image()
    path = write_nifti(image, tmp_path / f"vol{suffix}")
    ours = read_nifti(path)
    itk = sitk.ReadImage(str(path))  # ITK's own NIfTI reader: also LPS in memory
    np.testing.assert_allclose(_points(ours), _points(image), atol=1e-4)
    np.testing.assert_allclose(_points(itk), _points(image), atol=1e-4)
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(ours), sitk.GetArrayViewFromImage(image))
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(itk), sitk.GetArrayViewFromImage(image))
    assert ours.GetPixelID() == sitk.sitkFloat32
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_file_holds_ras_affine_with_scanner_codes(tmp_path):
    image = _oblique_image()
    path = write_nifti(image, tmp_path / "v.nii.gz")
    nii = nib.load(str(path))
    lps = index_to_lps_affine(image)
    # RAS = LPS with x and y negated, written out by hand
    expected = lps.copy()
    expected[0, :] *= -1
    expected[1, :] *= -1
    np.testing.assert_allclose(nii.affine, expected, atol=1e-4)
    assert int(nii.header["qform_code"]) == 1 and int(nii.header["sform_code"]) == 1
    np.testing.assert_allclose(nii.get_qform(), expected, atol=1e-4)
    np.testing.assert_allclose(ras_to_lps_affine(lps_to_ras_affine(lps)), lps)


def test_labels_stored_as_uint8(tmp_path):
    labels = _oblique_image(sitk.sitkUInt8)
    path = write_nifti(labels, tmp_path / "seg.nii.gz")
    assert nib.load(str(path)).get_data_dtype() == np.uint8
    back = read_nifti(path)
    assert back.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back),
                                  sitk.GetArrayViewFromImage(labels))  # fmt: skip
    wide = sitk.Cast(labels, sitk.sitkInt32) * 100
    assert nib.load(str(write_nifti(wide, tmp_path / "w.nii"))).get_data_dtype() == np.int16


def test_qform_used_when_sform_unset(tmp_path):
    image = _oblique_image()
    ras = lps_to_ras_affine(index_to_lps_affine(image))
    data = np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))
    nii = nib.Nifti1Image(data, None)
    nii.set_qform(ras, code=1)
    nii.set_sform(np.eye(4), code=0)
    nib.save(nii, str(tmp_path / "q.nii"))
    np.testing.assert_allclose(_points(read_nifti(tmp_path / "q.nii")), _points(image), atol=1e-4)


def test_4d_and_2d_are_refused(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.float32), np.eye(4)), tmp_path / "4d.nii")
    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), tmp_path / "2d.nii")
    with pytest.raises(MyoimgError, match="3-D"):
        read_nifti(tmp_path / "4d.nii")
    with pytest.raises(MyoimgError, match="3-D"):
        read_nifti(tmp_path / "2d.nii")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 1), np.int16), np.eye(4)), tmp_path / "s.nii")
    assert read_nifti(tmp_path / "s.nii").GetSize() == (4, 4, 3)


def test_load_image_nifti_gives_float_volume(tmp_path):
    labels = _oblique_image(sitk.sitkUInt8)
    vol = load_image(write_nifti(labels, tmp_path / "l.nii.gz"))
    assert vol.image.GetPixelID() == sitk.sitkFloat32
    assert vol.headers == () and vol.files == ()
    np.testing.assert_allclose(vol.affine, index_to_lps_affine(labels), atol=1e-4)
