"""DICOM SEG export (highdicom) and round trip through import_labels."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from myoimg.errors import DicomInputError, MyoimgError, OutputExistsError
from myoimg.labels import BY_ID
from myoimg.segment.export import write_seg
from myoimg.segment.masks import import_labels

NX, NY, NZ = 40, 32, 6
SPACING = (0.8, 0.8, 5.0)
ORIGIN = (-16.0, -12.8, 100.0)


def make_series(nz=NZ):
    """Header-only MR datasets in slice order (no pixel data), and the matching grid."""
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    headers = []
    for k in range(nz):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR Image Storage
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality = "MR"
        ds.PatientName = "Test^Phantom"
        ds.PatientID = "PHANTOM"
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.StudyDate, ds.StudyTime = "20261125", "120000"
        ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "", "", "1"
        ds.SeriesNumber, ds.InstanceNumber = 3, k + 1
        ds.Rows, ds.Columns = NY, NX
        ds.PixelSpacing = [SPACING[1], SPACING[0]]  # row spacing (y), column spacing (x)
        ds.SliceThickness = SPACING[2]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [ORIGIN[0], ORIGIN[1], ORIGIN[2] + k * SPACING[2]]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        headers.append(ds)
    ref = sitk.Image(NX, NY, nz, sitk.sitkFloat32)
    ref.SetSpacing(SPACING)
    ref.SetOrigin(ORIGIN)
    return headers, ref


def label_image(ref):
    a = np.zeros((NZ, NY, NX), np.uint8)
    a[1:4, 5:15, 5:20] = 1  # R_VL
    a[2:5, 10:20, 22:35] = 8  # L_RF
    a[0, 0:3, 0:3] = 14  # R_HAM, on the first slice only
    img = sitk.GetImageFromArray(a)
    img.CopyInformation(ref)
    return img, a


def test_seg_round_trip_identical(tmp_path):
    headers, ref = make_series()
    for ds in headers:  # anonymised series often lack Type 2 attributes
        del ds.PatientBirthDate
    labels, arr = label_image(ref)
    path = write_seg(labels, headers, tmp_path / "out" / "seg.dcm")
    assert path.is_file()
    assert not [p for p in path.parent.iterdir() if p.name != "seg.dcm"]  # no temp left
    result = import_labels(path, ref, source_files=headers)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result.labels), arr)
    assert result.unknown == {}
    assert sorted(result.mapping_used.values()) == [1, 8, 14]
    assert "PatientBirthDate" not in headers[0]  # caller's headers untouched


def test_seg_attributes(tmp_path):
    headers, ref = make_series()
    labels, _ = label_image(ref)
    path = write_seg(labels, headers, tmp_path / "seg.dcm", series_description="test seg",
                     algorithm_type="MANUAL")  # fmt: skip
    ds = pydicom.dcmread(path)
    assert ds.Modality == "SEG" and ds.SeriesDescription == "test seg"
    assert ds.FrameOfReferenceUID == headers[0].FrameOfReferenceUID
    assert ds.StudyInstanceUID == headers[0].StudyInstanceUID
    assert ds.SeriesInstanceUID != headers[0].SeriesInstanceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == headers[0].SeriesInstanceUID
    segs = ds.SegmentSequence
    assert [s.SegmentLabel for s in segs] == [BY_ID[i].full_name for i in (1, 8, 14)]
    assert [s.TrackingID for s in segs] == ["R_VL", "L_RF", "R_HAM"]
    for s in segs:
        assert s.SegmentAlgorithmType == "MANUAL"
        assert s.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "85756007"  # Tissue
        assert s.SegmentedPropertyTypeCodeSequence[0].CodeValue == "127954009"  # Skel. muscle
    # Empty frames are omitted: R_VL 3 + L_RF 3 + R_HAM 1 slices.
    assert int(ds.NumberOfFrames) == 7


def test_seg_refuses_overwrite_and_wrong_grid(tmp_path):
    headers, ref = make_series()
    labels, _ = label_image(ref)
    path = write_seg(labels, headers, tmp_path / "seg.dcm")
    with pytest.raises(OutputExistsError):
        write_seg(labels, headers, path)
    write_seg(labels, headers, path, overwrite=True)
    with pytest.raises(MyoimgError, match="slices"):
        write_seg(labels, headers[:-1], tmp_path / "other.dcm")
    moved = sitk.Image(labels)
    moved.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(MyoimgError, match="origin"):
        write_seg(moved, headers, tmp_path / "other.dcm")
    assert not (tmp_path / "other.dcm").exists()


def test_seg_import_onto_other_grid_and_frame_check(tmp_path):
    headers, ref = make_series()
    labels, arr = label_image(ref)
    path = write_seg(labels, headers, tmp_path / "seg.dcm")
    # A 2x finer in-plane reference on the same patient space: each voxel splits into 2x2.
    fine = sitk.Image(2 * NX, 2 * NY, NZ, sitk.sitkFloat32)
    fine.SetSpacing((0.4, 0.4, 5.0))
    fine.SetOrigin((ORIGIN[0] - 0.2, ORIGIN[1] - 0.2, ORIGIN[2]))
    out = sitk.GetArrayFromImage(import_labels(path, fine).labels)
    np.testing.assert_array_equal(out, arr.repeat(2, axis=1).repeat(2, axis=2))
    other = Dataset()
    other.FrameOfReferenceUID = generate_uid()
    with pytest.raises(DicomInputError, match="FrameOfReferenceUID"):
        import_labels(path, ref, source_files=[other])


def test_seg_custom_mapping_by_name(tmp_path):
    headers, ref = make_series()
    labels, arr = label_image(ref)
    path = write_seg(labels, headers, tmp_path / "seg.dcm")
    # Only one segment mapped (to another id); the others are reported as unknown.
    result = import_labels(path, ref, mapping={"right vastus lateralis": "L_VL"})
    out = sitk.GetArrayFromImage(result.labels)
    assert (out == 5).sum() == (arr == 1).sum() and set(np.unique(out)) == {0, 5}
    assert result.unknown == {
        "left rectus femoris": int((arr == 8).sum()),
        "right hamstrings": int((arr == 14).sum()),
    }


def test_fractional_seg_from_another_tool(tmp_path):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    headers, ref = make_series()
    frac = np.zeros((NZ, NY, NX, 2), np.float32)
    frac[1:3, 2:6, 2:8, 0] = 0.8  # "VL_R": 2 x 4 x 6 = 48 voxels
    frac[1:3, 2:6, 2:4, 1] = 0.9  # "RF_R" wins on 2 x 4 x 2 = 16 of them (larger fraction)
    frac[4, 0:2, 0:2, 0] = 0.3  # below 0.5: background
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=name,
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.SkeletalMuscle,
            algorithm_type="MANUAL",
        )
        for n, name in ((1, "VL_R"), (2, "RF_R"))
    ]
    seg = hd.seg.Segmentation(
        source_images=headers, pixel_array=frac, segmentation_type="FRACTIONAL",
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=5,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="other",
        manufacturer_model_name="other", software_versions="1", device_serial_number="1",
    )  # fmt: skip
    seg.save_as(tmp_path / "frac.dcm")
    result = import_labels(tmp_path / "frac.dcm", ref, mapping="dafne")
    out = sitk.GetArrayFromImage(result.labels)
    assert (out == 1).sum() == 32 and (out == 4).sum() == 16
    assert set(np.unique(out)) == {0, 1, 4}
    assert result.mapping_used == {"VL_R": 1, "RF_R": 4}


def test_seg_with_pseudonym_carries_no_identity(tmp_path):
    """--anonymize: highdicom copies the patient module from the source; it is replaced."""
    headers, ref = make_series()
    for ds in headers:
        ds.PatientName, ds.PatientID = "Doe^Jane", "MRN7654321"
        ds.PatientBirthDate, ds.OtherPatientIDs = "19600101", "OTHER99"
    labels, arr = label_image(ref)
    path = write_seg(labels, headers, tmp_path / "seg.dcm", patient_id="anon-0123456789ab")
    seg = pydicom.dcmread(path)
    assert seg.PatientID == "anon-0123456789ab"
    assert seg.PatientName.family_name == "anon-0123456789ab"
    assert seg.get("PatientBirthDate", "") == ""
    raw = path.read_bytes()
    for secret in (b"Doe", b"MRN7654321", b"19600101", b"OTHER99"):
        assert secret not in raw
    assert headers[0].PatientID == "MRN7654321"  # the caller's headers are not modified
    # still references its source series and round-trips
    result = import_labels(path, ref, source_files=headers)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result.labels), arr)
