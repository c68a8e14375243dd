"""Importing label maps (NIfTI on other grids, RTSTRUCT) and label-name mappings."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from myoimg.errors import DicomInputError, MyoimgError
from myoimg.labels import label_id
from myoimg.segment.mappings import SHIPPED_MAPPINGS, map_label, resolve_mapping
from myoimg.segment.masks import import_labels

# Reference grid: 40 x 32 x 6 voxels of 0.8 x 0.8 x 5 mm, LPS origin (-16, -12.8, 100).
NX, NY, NZ = 40, 32, 6
SPACING = (0.8, 0.8, 5.0)
ORIGIN = (-16.0, -12.8, 100.0)
FRAME_UID = generate_uid()


def reference_image() -> sitk.Image:
    img = sitk.Image(NX, NY, NZ, sitk.sitkFloat32)
    img.SetSpacing(SPACING)
    img.SetOrigin(ORIGIN)
    return img


def write_nifti_ras(path, data_kji, spacing, origin_lps):
    """Write a label map with nibabel (RAS affine), independently of SimpleITK.

    ``data_kji`` is indexed (k, j, i); voxel (i, j, k) lies at LPS
    origin + (i*dx, j*dy, k*dz), i.e. RAS (-x, -y, z).
    """
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [-origin_lps[0], -origin_lps[1], origin_lps[2]]
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data_kji.transpose(2, 1, 0)), affine), path)


def test_nifti_on_coarser_shifted_grid_lands_on_right_voxels(tmp_path):
    # Source: 2x coarser in-plane, origin shifted by 3 source voxels + half a reference voxel,
    # so source voxel i covers exactly reference voxels 2(i+3) and 2(i+3)+1 (no ties).
    src = np.zeros((NZ, 10, 12), np.uint8)
    src[2, 4, 5] = 1  # R_VL
    src[3:5, 1:3, 0:2] = 8  # L_RF
    origin = (ORIGIN[0] + 0.4 + 3 * 1.6, ORIGIN[1] + 0.4 + 2 * 1.6, ORIGIN[2])
    path = tmp_path / "labels.nii.gz"
    write_nifti_ras(path, src, (1.6, 1.6, 5.0), origin)
    ref = reference_image()
    result = import_labels(path, ref)
    out = sitk.GetArrayFromImage(result.labels)
    assert result.labels.GetSize() == ref.GetSize()
    assert result.labels.GetOrigin() == ref.GetOrigin()
    assert result.labels.GetPixelID() == sitk.sitkUInt8
    expected = np.zeros((NZ, NY, NX), np.uint8)
    # source (i, j) -> reference columns 2(i+3)..+1, rows 2(j+2)..+1
    expected[2, 2 * (4 + 2) : 2 * (4 + 2) + 2, 2 * (5 + 3) : 2 * (5 + 3) + 2] = 1
    expected[3:5, 2 * (1 + 2) : 2 * (3 + 2), 2 * 3 : 2 * (2 + 3)] = 8
    np.testing.assert_array_equal(out, expected)
    assert result.mapping_used == {1: 1, 8: 8}
    assert result.unknown == {}


def test_non_overlapping_label_map_refused(tmp_path):
    src = np.ones((NZ, NY, NX), np.uint8)
    path = tmp_path / "far.nii.gz"
    write_nifti_ras(path, src, SPACING, (ORIGIN[0] + 500.0, ORIGIN[1], ORIGIN[2]))
    with pytest.raises(MyoimgError, match="does not overlap") as err:
        import_labels(path, reference_image())
    assert "483.6..515.6" in str(err.value)  # label map extent along x: 484 -+ 0.4 mm
    assert "-16.4..15.6" in str(err.value)  # reference extent along x


def test_unknown_labels_reported_not_dropped_silently(tmp_path):
    src = np.zeros((NZ, NY, NX), np.uint8)
    src[1, 2:4, 2:5] = 1  # 6 voxels, ours
    src[2, 0:2, 0:2] = 99  # 4 voxels, unknown
    path = tmp_path / "labels.nrrd"
    img = sitk.GetImageFromArray(src)
    img.CopyInformation(reference_image())
    sitk.WriteImage(img, str(path))
    result = import_labels(path, reference_image())
    assert result.unknown == {99: 4}
    assert any("99" in m and "4 voxels" in m for m in result.messages)
    out = sitk.GetArrayFromImage(result.labels)
    assert (out == 1).sum() == 6 and (out == 99).sum() == 0


def test_musclemap_values_mapped_and_merged(tmp_path):
    src = np.zeros((NZ, NY, NX), np.int16)
    src[0, 0:2, 0:3] = 7102  # vastus lateralis right -> R_VL
    src[1, 0:2, 0:3] = 7161  # semimembranosus left -> L_HAM
    src[1, 5:7, 0:3] = 7181  # biceps femoris long head left -> L_HAM (merged)
    src[2, 0:1, 0:1] = 8102  # leg anterior compartment: not a thigh muscle -> unknown
    path = tmp_path / "mm.nii.gz"
    write_nifti_ras(path, src, SPACING, ORIGIN)
    result = import_labels(path, reference_image(), mapping="musclemap")
    out = sitk.GetArrayFromImage(result.labels)
    assert (out == label_id("R_VL")).sum() == 6
    assert (out == label_id("L_HAM")).sum() == 12
    assert result.mapping_used == {7102: 1, 7161: 18, 7181: 18}
    assert result.unknown == {8102: 1}
    assert any("merged" in m for m in result.messages)


def test_totalsegmentator_quadriceps_not_split(tmp_path):
    src = np.zeros((NZ, NY, NX), np.uint8)
    src[0, 0:4, 0:4] = 2  # quadriceps_femoris_right: heads not separated
    src[1, 0:2, 0:2] = 8  # sartorius_right
    path = tmp_path / "ts.nii.gz"
    write_nifti_ras(path, src, SPACING, ORIGIN)
    result = import_labels(path, reference_image(), mapping="totalsegmentator")
    out = sitk.GetArrayFromImage(result.labels)
    assert (out == label_id("R_SAR")).sum() == 4
    assert set(np.unique(out)) == {0, label_id("R_SAR")}
    assert result.unknown == {2: 16}
    assert any("quadriceps" in m and "not" in m for m in result.messages)


def test_mapping_tables():
    dafne, _ = resolve_mapping("dafne")
    assert map_label("VL_R", dafne) == label_id("R_VL")
    assert map_label("vm_l", dafne) == label_id("L_VM")
    assert map_label("Vastus_Intermedius_Right", dafne) == label_id("R_VI")
    assert map_label("RF-L", dafne) == label_id("L_RF")
    assert map_label("femur_R", dafne) is None
    own, _ = resolve_mapping(None)
    assert map_label("right vastus lateralis", own) == 1 and map_label(18, own) == 18
    custom, _ = resolve_mapping({"Quad R": "R_VL", 42: 6})
    assert map_label("quad_r", custom) == 1 and map_label(42, custom) == 6
    assert SHIPPED_MAPPINGS["musclemap"][7131] == label_id("L_RF")  # 7131 = left RF
    with pytest.raises(MyoimgError):
        resolve_mapping("nosuchtool")
    with pytest.raises(MyoimgError):
        resolve_mapping({"x": "R_XX"})


# ----------------------------------------------------------------------------- RTSTRUCT


def _square(i0, i1, j0, j1, k):
    """Closed square contour through index-space corners, as LPS ContourData."""
    corners = [(i0, j0), (i1, j0), (i1, j1), (i0, j1)]
    data = []
    for i, j in corners:
        data += [ORIGIN[0] + i * SPACING[0], ORIGIN[1] + j * SPACING[1], ORIGIN[2] + k * SPACING[2]]
    return data


def write_rtstruct(path, rois, frame_uid=FRAME_UID):
    """rois: list of (name, [contour data lists])."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.FrameOfReferenceUID = frame_uid
    ds.StructureSetROISequence = DicomSequence()
    ds.ROIContourSequence = DicomSequence()
    for number, (name, contours) in enumerate(rois, start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ROIName = name
        roi.ReferencedFrameOfReferenceUID = frame_uid
        ds.StructureSetROISequence.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ContourSequence = DicomSequence()
        for data in contours:
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(data) // 3
            c.ContourData = [f"{v:.4f}" for v in data]
            item.ContourSequence.append(c)
        ds.ROIContourSequence.append(item)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_rtstruct_square_rasterised_to_expected_count(tmp_path):
    # Square from column 4.5 to 14.5 and row 2.5 to 9.5 (index space): voxel centres inside
    # are columns 5..14 (10) x rows 3..9 (7) = 70 per slice, on slices 1 and 2 -> 140.
    # A square hole (columns 7.5..9.5, rows 4.5..6.5 -> 2 x 2 = 4 voxels) on slice 2 -> 136.
    rois = [
        ("VL_R", [_square(4.5, 14.5, 2.5, 9.5, 1), _square(4.5, 14.5, 2.5, 9.5, 2),
                  _square(7.5, 9.5, 4.5, 6.5, 2)]),
        ("Femur_R", [_square(20.5, 25.5, 20.5, 25.5, 3)]),  # 5 x 5 = 25 voxels, unknown
    ]  # fmt: skip
    path = write_rtstruct(tmp_path / "rs.dcm", rois)
    result = import_labels(path, reference_image(), mapping="dafne")
    out = sitk.GetArrayFromImage(result.labels)
    assert (out == label_id("R_VL")).sum() == 136
    assert (out[1] == 1).sum() == 70 and out[1, 3:10, 5:15].all()
    assert not out[2, 5:7, 8:10].any()  # the hole
    assert result.mapping_used == {"VL_R": 1}
    assert result.unknown == {"Femur_R": 25}
    assert any("Femur_R" in m for m in result.messages)


def test_rtstruct_other_frame_of_reference_refused(tmp_path):
    path = write_rtstruct(tmp_path / "rs.dcm", [("VL_R", [_square(4.5, 14.5, 2.5, 9.5, 1)])])
    hdr = Dataset()
    hdr.FrameOfReferenceUID = generate_uid()
    with pytest.raises(DicomInputError, match="FrameOfReferenceUID"):
        import_labels(path, reference_image(), mapping="dafne", source_files=[hdr])


def test_rtstruct_outside_reference_refused(tmp_path):
    far = [v + 400.0 if n % 3 == 0 else v for n, v in enumerate(_square(4.5, 14.5, 2.5, 9.5, 1))]
    path = write_rtstruct(tmp_path / "rs.dcm", [("VL_R", [far])])
    with pytest.raises(MyoimgError, match="does not overlap"):
        import_labels(path, reference_image(), mapping="dafne")


def test_not_a_segmentation_refused(tmp_path):
    from pydicom.data import get_testdata_file

    src = get_testdata_file("emri_small.dcm")
    with pytest.raises(DicomInputError, match="neither SEG nor RTSTRUCT"):
        import_labels(src, reference_image())
    assert pydicom.dcmread(src).Modality == "MR"


def test_totalsegmentator_folder_of_binary_masks(tmp_path):
    folder = tmp_path / "ts_out"
    folder.mkdir()
    for name, box in [
        ("sartorius_left", (slice(1, 2), slice(0, 3), slice(0, 4))),  # 12 voxels -> L_SAR
        ("thigh_posterior_compartment_right", (slice(2, 4), slice(5, 7), slice(5, 8))),  # 12
        ("quadriceps_femoris_left", (slice(3, 4), slice(10, 15), slice(10, 15))),  # 25, unsplit
        ("deltoid", (slice(0, 0), slice(0, 0), slice(0, 0))),  # empty: ignored
    ]:
        src = np.zeros((NZ, NY, NX), np.uint8)
        src[box] = 1
        write_nifti_ras(folder / f"{name}.nii.gz", src, SPACING, ORIGIN)
    result = import_labels(folder, reference_image(), mapping="totalsegmentator")
    out = sitk.GetArrayFromImage(result.labels)
    assert (out == label_id("L_SAR")).sum() == 12 and out[1, 0:3, 0:4].all()
    assert (out == label_id("R_HAM")).sum() == 12 and out[2:4, 5:7, 5:8].all()
    assert result.unknown == {"quadriceps_femoris_left": 25}
