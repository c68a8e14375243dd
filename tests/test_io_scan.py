"""scan(), guess_role(), select_series(), format_series_table(), load_image() on folders."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_factory import write_series

from myoimg.errors import DicomInputError, SeriesSelectionError
from myoimg.io import (
    format_series_table,
    guess_role,
    load_image,
    load_series,
    plane_from_iop,
    scan,
    select_series,
)

CORONAL = (1, 0, 0, 0, 0, -1)
SAGITTAL = (0, 1, 0, 0, 0, -1)


@pytest.fixture
def exam(tmp_path: Path) -> Path:
    """A thigh MR exam: 3-plane localizer, T1, STIR in a sub-folder, PET, CT, junk."""
    root = tmp_path / "exam"
    write_series(root / "loc", n_slices=3, description="localizer", series_number=1,
                 image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), iop=CORONAL)  # fmt: skip
    write_series(root / "t1", n_slices=6, description="t1_tse_tra", series_number=2)
    write_series(root / "deep" / "er" / "stir", n_slices=8, description="t2_tirm_tra_p2",
                 series_number=4, pixel_spacing=(0.9, 0.8), slice_spacing=6.0)  # fmt: skip
    write_series(root / "pet", modality="PT", n_slices=5, description="PET WB AC",
                 series_number=1001)  # fmt: skip
    write_series(root / "ct", modality="CT", n_slices=5, description="CT 3.0 B30f",
                 series_number=1002)  # fmt: skip
    (root / "notes.txt").write_text("not dicom")
    (root / "deep" / "Thumbs.db").write_bytes(b"\x00" * 300)
    shutil.copy(_dicomdir(), root / "DICOMDIR")
    return root


def _dicomdir() -> Path:
    """pydicom's test DICOMDIR (a real media directory file)."""
    return Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "DICOMDIR"


def test_scan_groups_sorts_and_counts(exam):
    seen = []
    result = scan(exam, progress=lambda d, t: seen.append((d, t)))
    assert result.n_files == 3 + 6 + 8 + 5 + 5 + 3
    assert result.n_skipped == 3  # notes.txt, Thumbs.db, DICOMDIR
    assert seen[-1] == (result.n_files, result.n_files)
    assert [s.series_number for s in result.series] == [1, 2, 4, 1001, 1002]
    assert [s.index for s in result.series] == [1, 2, 3, 4, 5]
    stir = result.series[2]
    assert stir.n_instances == 8 and len(stir.files) == 8
    assert stir.plane == "axial" and (stir.rows, stir.columns) == (12, 10)
    assert stir.pixel_spacing == pytest.approx((0.9, 0.8))
    assert stir.slice_spacing == pytest.approx(6.0)
    assert stir.modality == "MR" and stir.description == "t2_tirm_tra_p2"
    assert result.series[0].plane == "coronal"
    assert [guess_role(s) for s in result.series] == [None, None, "t2fs", "pet", "ct"]


def test_select_series_by_role_index_and_uid(exam):
    result = scan(exam)
    stir = select_series(result, "t2fs")
    assert stir.description == "t2_tirm_tra_p2"  # the localizer beside it is never chosen
    assert select_series(result, "pet").modality == "PT"
    assert select_series(result, "ct").modality == "CT"
    assert select_series(result, "t2fs", series=2).description == "t1_tse_tra"
    assert select_series(result, "t2fs", series="2").index == 2
    pet = result.series[3]
    assert select_series(result, None, series=pet.series_uid) == pet
    assert select_series(result, None, series=pet.series_uid[:-3]) == pet


def test_select_series_errors_list_candidates(exam, tmp_path):
    result = scan(exam)
    with pytest.raises(SeriesSelectionError, match="--series UID or --series N") as err:
        select_series(result, None)  # several non-localizer series
    assert "t2_tirm_tra_p2" in str(err.value) and result.series[2].series_uid in str(err.value)
    with pytest.raises(SeriesSelectionError, match="no series matches index 99"):
        select_series(result, "t2fs", series=99)
    with pytest.raises(SeriesSelectionError, match="unknown role"):
        select_series(result, "dwi")
    # two STIR series -> ambiguous
    write_series(exam / "stir2", n_slices=8, description="STIR_tra_repeat", series_number=5)
    with pytest.raises(SeriesSelectionError, match="2 series match role 't2fs'") as err:
        select_series(scan(exam), "t2fs")
    assert "STIR_tra_repeat" in str(err.value)


def test_stations_of_one_acquisition_are_named_in_the_error(tmp_path):
    """Two STIR stations (upper and lower thigh, one slice of overlap): the refusal says
    they look like stations and why they are not joined; a repeat at the same positions
    or series 5 cm apart are not called stations."""
    study, frame = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
    common = dict(n_slices=8, study_uid=study, frame_of_reference_uid=frame)
    lower = write_series(tmp_path / "st" / "a", origin=(-60.0, -40.0, 100.0),
                         description="STIR_tra_1", series_number=4, **common)  # fmt: skip
    write_series(tmp_path / "st" / "b", origin=(-60.0, -40.0, 135.0),
                 description="STIR_tra_2", series_number=5, **common)  # fmt: skip
    result = scan(tmp_path / "st")
    assert [s.slice_range for s in result.series] == [(100.0, 135.0), (135.0, 170.0)]
    with pytest.raises(SeriesSelectionError, match="stations of one acquisition") as err:
        select_series(result, "t2fs")
    msg = str(err.value)
    assert "100 to 135 mm" in msg and "135 to 170 mm" in msg and "--series N" in msg
    assert select_series(result, "t2fs", series=lower.series_uid).description == "STIR_tra_1"
    # A repeat over the same positions, or a second series 5 cm further: not stations.
    for name, z0 in (("repeat", 100.0), ("far", 220.0)):
        folder = tmp_path / name
        shutil.copytree(tmp_path / "st" / "a", folder / "a")
        write_series(folder / "b", origin=(-60.0, -40.0, z0), description="STIR_tra_2",
                     series_number=5, **common)  # fmt: skip
        with pytest.raises(SeriesSelectionError, match="2 series match") as err:
            select_series(scan(folder), "t2fs")
        assert "stations of one" not in str(err.value)


def test_select_series_in_order_of_preference(exam, tmp_path):
    """A tuple of roles: the first role any series has decides (`myoimg segment` asks for
    the T2-FS series, else the folder's one volume: a T1 series or a 3-D coronal one)."""
    assert select_series(scan(exam), ("t2fs", None)).description == "t2_tirm_tra_p2"
    t1_only = tmp_path / "t1_only"
    write_series(t1_only / "loc", n_slices=3, description="localizer", series_number=1,
                 image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), iop=CORONAL)  # fmt: skip
    write_series(t1_only / "t1", n_slices=6, description="t1_tse_tra", series_number=2)
    with pytest.raises(SeriesSelectionError, match="no series for role 't2fs'"):
        select_series(scan(t1_only), "t2fs")
    assert select_series(scan(t1_only), ("t2fs", None)).description == "t1_tse_tra"
    coronal_only = tmp_path / "coronal_only"
    write_series(coronal_only, n_slices=40, description="dixon_w_cor_3d", iop=CORONAL)
    assert select_series(scan(coronal_only), ("t2fs", None)).plane == "coronal"
    # Several series for the first role that has any: still ambiguous, no fall-through.
    write_series(exam / "stir2", n_slices=8, description="STIR_tra_repeat", series_number=5)
    with pytest.raises(SeriesSelectionError, match="role 't2fs' or a volume"):
        select_series(scan(exam), ("t2fs", None))
    with pytest.raises(SeriesSelectionError, match="unknown role"):
        select_series(scan(exam), ("t2fs", "dwi"))


def test_select_series_prefers_axial_but_takes_another_plane_when_alone(exam, tmp_path):
    """A coronal STIR beside the axial one is for viewing (the axial one is chosen, no
    ambiguity); a folder whose only STIR is coronal (a 3-D acquisition) uses it."""
    write_series(exam / "stir_cor", n_slices=20, description="t2_tirm_cor", series_number=6,
                 iop=CORONAL)  # fmt: skip
    result = scan(exam)
    cor = next(s for s in result.series if s.description == "t2_tirm_cor")
    assert not cor.is_localizer and guess_role(cor) == "t2fs"
    assert select_series(result, "t2fs").description == "t2_tirm_tra_p2"
    only = tmp_path / "coronal_stir"
    write_series(only / "loc", n_slices=3, description="localizer", series_number=1,
                 image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), iop=SAGITTAL)  # fmt: skip
    write_series(only / "stir", n_slices=20, description="STIR_cor_3d", series_number=2,
                 iop=CORONAL)  # fmt: skip
    chosen = select_series(scan(only), "t2fs")
    assert (chosen.description, chosen.plane) == ("STIR_cor_3d", "coronal")
    # Two coronal candidates and no axial one: ambiguous, as for two axial ones.
    write_series(only / "stir2", n_slices=20, description="STIR_cor_repeat", series_number=3,
                 iop=CORONAL)  # fmt: skip
    with pytest.raises(SeriesSelectionError, match="2 series match role 't2fs'"):
        select_series(scan(only), "t2fs")


def test_format_series_table(exam):
    table = format_series_table(scan(exam))
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["#", "mod", "plane", "n"]
    stir = next(line for line in lines if "t2_tirm" in line)
    assert stir.split()[:5] == ["3", "MR", "axial", "8", "10x12"]
    assert "0.80x0.90x6.00" in stir and "t2fs" in stir and "20260102" in stir
    z0 = scan(exam).series[2].slice_range[0]
    assert f"{z0:.0f}..{z0 + 7 * 6:.0f}" in stir  # 8 slices 6 mm apart
    assert "localizer" in lines[1]
    assert lines[-1].startswith("5 series in 30 files (3 ")


def test_empty_and_non_dicom_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = scan(empty)
    assert result.series == [] and result.n_files == 0
    with pytest.raises(SeriesSelectionError, match=r"no DICOM image series .* \(0 files read"):
        load_image(empty, role="t2fs")
    junk = tmp_path / "junk"
    junk.mkdir()
    for n in range(4):
        (junk / f"f{n}.dcm").write_bytes(np.arange(200, dtype=np.uint8).tobytes())
    result = scan(junk)
    assert (result.n_files, result.n_skipped, result.series) == (4, 4, [])
    with pytest.raises(SeriesSelectionError, match="4 files read, 4 skipped"):
        load_image(junk, role="t2fs")
    with pytest.raises(DicomInputError):
        scan(tmp_path / "does-not-exist")


def test_two_stacks_in_one_uid(tmp_path):
    # Same UID and positions, AcquisitionNumber 1 and 2 (e.g. a repeated acquisition).
    a = write_series(tmp_path / "a", n_slices=4, seed=1)
    write_series(tmp_path / "b", n_slices=4, seed=2, series_uid=a.series_uid,
                 extra={"AcquisitionNumber": 2})  # fmt: skip
    result = scan(tmp_path)
    assert [(s.n_instances, s.stack) for s in result.series] == [(4, 1), (4, 2)]
    with pytest.raises(SeriesSelectionError, match="several series/stacks match"):
        select_series(result, None, series=a.series_uid)
    vol = load_series(select_series(result, None, series=2))
    assert vol.image.GetSize() == (10, 12, 4)


def test_acquisition_number_per_slice_is_not_split(tmp_path):
    per = [{"AcquisitionNumber": k + 1} for k in range(5)]
    write_series(tmp_path, n_slices=5, per_slice=per)
    assert [s.n_instances for s in scan(tmp_path).series] == [5]


def test_echoes_are_split(tmp_path):
    a = write_series(tmp_path / "e1", n_slices=4, extra={"EchoNumbers": 1})
    write_series(tmp_path / "e2", n_slices=4, series_uid=a.series_uid, extra={"EchoNumbers": 2})
    assert [s.n_instances for s in scan(tmp_path).series] == [4, 4]


def test_plane_from_iop():
    assert plane_from_iop((1, 0, 0, 0, 1, 0)) == "axial"
    assert plane_from_iop(CORONAL) == "coronal"
    assert plane_from_iop(SAGITTAL) == "sagittal"
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    assert plane_from_iop((1, 0, 0, 0, c, s)) == "axial"  # 20 deg tilt is still axial
    c, s = np.cos(np.radians(45)), np.sin(np.radians(45))
    assert plane_from_iop((1, 0, 0, 0, c, s)) == "oblique"
    assert plane_from_iop(None) == "unknown"


def _mr(tmp_path, **kw):
    write_series(tmp_path / "s", n_slices=kw.pop("n", 6), **kw)
    return scan(tmp_path).series[0]


@pytest.mark.parametrize(
    "kw,role",
    [
        ({"description": "t2_tse_tra"}, None),
        ({"description": "T2 FS tra"}, "t2fs"),
        ({"description": "t2fs_ax"}, "t2fs"),
        ({"description": "AX T2 SPAIR"}, "t2fs"),
        ({"description": "ax T2 fat sat"}, "t2fs"),
        ({"description": "t2_tse_tra", "extra": {"ScanOptions": ["SFS", "PFP"]}}, "t2fs"),
        ({"description": "ax", "extra": {"ScanningSequence": "IR"}}, "t2fs"),
        ({"description": "ax", "extra": {"SequenceName": "*tir2d1_15"}}, "t2fs"),
        ({"description": "offset_tse"}, None),  # "fs" inside a word is not evidence
        ({"description": "t1_tse_fs_tra_post"}, None),  # T1 fat sat is not T2-FS
        # A coronal STIR has the role (an axial one is preferred when selecting).
        ({"description": "STIR", "iop": CORONAL}, "t2fs"),
        ({"description": "STIR", "n": 3}, None),  # too few images: localizer
        ({"description": "STIR", "image_type": ("ORIGINAL", "PRIMARY", "LOCALIZER")}, None),
        ({"description": "PET", "modality": "PT"}, "pet"),
        ({"description": "topogram", "modality": "CT", "n": 1}, None),
    ],
)
def test_guess_role(tmp_path, kw, role):
    assert guess_role(_mr(tmp_path, **kw)) == role


def test_guess_role_uses_protocol_name(tmp_path):
    info = _mr(tmp_path, description="series 4", protocol="t2_stir_tra")
    assert guess_role(info) == "t2fs"
    assert guess_role(replace(info, protocol="t2_tse_tra")) is None


def test_load_image_folder_picks_role(exam):
    vol = load_image(exam, role="t2fs")
    assert vol.info.description == "t2_tirm_tra_p2"
    assert vol.image.GetSize() == (10, 12, 8)
    assert vol.spacing == pytest.approx((0.8, 0.9, 6.0))
    assert vol.source == str(exam)


def test_truncated_file_is_reported_not_silently_skipped(tmp_path):
    s = write_series(tmp_path / "d", n_slices=5)
    data = s.files[2].read_bytes()
    s.files[2].write_bytes(data[: len(data) // 2])  # cut inside the header
    result = scan(tmp_path / "d")
    assert result.unreadable == (s.files[2],)
    assert result.n_skipped == 0
    with pytest.raises(DicomInputError, match=s.files[2].name):
        load_image(tmp_path / "d", role="t2fs")
