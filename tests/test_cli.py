"""The command line as a user meets it: exit codes, one-line errors, outputs.

Bad input must give exit status 2 and a single line naming the file and the tag at
fault, never a traceback (unless --debug).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from dicom_factory import write_series
from pydicom.dataset import Dataset

from myoimg.cli import main
from myoimg.io import read_nifti

GA68_HALF_LIFE_S = 4062.6


def _pet_extra(weight="70", dose="200000000", start="091500") -> dict:
    item = Dataset()
    item.Radiopharmaceutical = "68Ga-FAPI-46"
    item.RadionuclideTotalDose = dose
    item.RadionuclideHalfLife = str(GA68_HALF_LIFE_S)
    item.RadiopharmaceuticalStartTime = start
    return {
        "Units": "BQML",
        "DecayCorrection": "START",
        "CorrectedImage": ["ATTN", "DECY"],
        "PatientWeight": weight,
        "RadiopharmaceuticalInformationSequence": [item],
    }


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    # Progress lines ("[  0.0s] stage ...") may precede the error.
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("[")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "myoimg" in capsys.readouterr().out


def test_inspect_lists_series_and_roles(tmp_path, capsys):
    write_series(tmp_path / "d", modality="MR", n_slices=6, description="t2_tirm_tra")
    write_series(tmp_path / "d", modality="MR", n_slices=6, description="t1_tse_tra", series_number=4,
                 seed=1)
    (tmp_path / "d" / "notes.txt").write_text("not DICOM")
    code, out, _ = _run(capsys, "inspect", str(tmp_path / "d"), "--quiet")
    assert code == 0
    assert "t2_tirm_tra" in out and "t1_tse_tra" in out and "t2fs" in out


def test_suv_command_writes_nifti_with_hand_computed_factor(tmp_path, capsys):
    s = write_series(tmp_path / "pet", modality="PT", n_slices=4, extra=_pet_extra())
    out_file = tmp_path / "suv.nii.gz"
    code, out, _ = _run(capsys, "suv", str(tmp_path / "pet"), "-o", str(out_file), "--quiet")
    assert code == 0
    # Series time 10:15:00, injection 09:15:00 -> 3600 s of Ga-68 decay (DecayCorrection START).
    factor = 70_000.0 / (200e6 * 2.0 ** (-3600.0 / GA68_HALF_LIFE_S))
    suv = sitk.GetArrayFromImage(read_nifti(out_file))
    np.testing.assert_allclose(suv, s.values * factor, rtol=1e-5)
    assert "factor" in out


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (_pet_extra(weight="0"), "(0010,1030)"),
        ({k: v for k, v in _pet_extra().items() if k != "PatientWeight"}, "(0010,1030)"),
    ],
)
def test_suv_refuses_bad_weight_with_tag(tmp_path, capsys, extra, fragment):
    write_series(tmp_path / "pet", modality="PT", n_slices=4, extra=extra)
    code, _, err = _run(capsys, "suv", str(tmp_path / "pet"), "-o", str(tmp_path / "s.nii.gz"))
    _assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "s.nii.gz").exists()


def test_suv_refuses_missing_dose_with_tag(tmp_path, capsys):
    extra = _pet_extra()
    del extra["RadiopharmaceuticalInformationSequence"][0].RadionuclideTotalDose
    write_series(tmp_path / "pet", modality="PT", n_slices=4, extra=extra)
    code, _, err = _run(capsys, "suv", str(tmp_path / "pet"), "-o", str(tmp_path / "s.nii.gz"))
    _assert_one_line_error(code, err, "(0018,1074)")


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = _run(capsys, "inspect", str(tmp_path / "empty"))
    _assert_one_line_error(code, err)


def test_folder_without_dicom(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("hello")
    (tmp_path / "d" / "b.bin").write_bytes(b"\x00" * 300)
    code, _, err = _run(capsys, "segment", str(tmp_path / "d"), "-o", str(tmp_path / "l.nii.gz"))
    _assert_one_line_error(code, err)


def test_truncated_file_named(tmp_path, capsys):
    s = write_series(tmp_path / "d", modality="MR", n_slices=5)
    data = s.files[2].read_bytes()
    s.files[2].write_bytes(data[: len(data) // 2])
    code, _, err = _run(capsys, "segment", str(tmp_path / "d"), "-o", str(tmp_path / "l.nii.gz"))
    _assert_one_line_error(code, err, s.files[2].name)


def test_missing_image_position_named(tmp_path, capsys):
    s = write_series(tmp_path / "d", modality="MR", n_slices=5,
                     per_slice=[{}, {}, {"ImagePositionPatient": None}])
    code, _, err = _run(capsys, "segment", str(tmp_path / "d"), "-o", str(tmp_path / "l.nii.gz"))
    _assert_one_line_error(code, err, "(0020,0032)")
    assert any(f.name in err for f in s.files)


def test_mixed_orientation_refused(tmp_path, capsys):
    uid = "1.2.826.0.1.3680043.8.498.1"
    write_series(tmp_path / "d", n_slices=4, series_uid=uid, seed=1)
    write_series(tmp_path / "d", n_slices=4, series_uid=uid, seed=2,
                 iop=(1.0, 0.0, 0.0, 0.0, 0.9659258, -0.2588190))
    code, _, err = _run(capsys, "segment", str(tmp_path / "d"), "-o", str(tmp_path / "l.nii.gz"))
    assert code == 2 and "Traceback" not in err


def test_head_is_refused_as_not_a_thigh(tmp_path, capsys):
    from pydicom.data import get_testdata_file

    code, _, err = _run(capsys, "segment", get_testdata_file("MR_small.dcm"), "-o",
                        str(tmp_path / "l.nii.gz"))
    _assert_one_line_error(code, err)
    assert not (tmp_path / "l.nii.gz").exists()


def test_existing_output_refused_without_overwrite(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("precious")
    write_series(tmp_path / "d", n_slices=3)
    code, _, err = _run(capsys, "analyze", str(tmp_path / "d"), "-o", str(tmp_path / "out"))
    _assert_one_line_error(code, err, "--overwrite")
    assert (tmp_path / "out" / "keep.txt").read_text() == "precious"


def test_console_script_gives_no_traceback(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "myoimg.cli", "inspect", str(tmp_path / "empty")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("myoimg inspect: error:")


def test_kill_stops_compare_and_leaves_nothing(tmp_path, sample_data):
    """SIGTERM (a scheduler's time limit, ``kill``) stops ``compare`` like Ctrl-C: its two
    worker processes are stopped and nothing of the run is left in the output's folder."""
    import signal
    import time

    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "myoimg.cli", "compare", str(sample_data / "baseline"),
         str(sample_data / "followup"), "-o", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # until both visits are being worked on
        workers = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)],
                                 capture_output=True, text=True).stdout.split()
        if len(workers) >= 2:
            break
        time.sleep(0.2)
    assert len(workers) >= 2, "compare did not start its two workers"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no OUT, no hidden staging folder
    left = subprocess.run(["ps", "-o", "pid=", "-s", str(proc.pid)], capture_output=True, text=True)
    assert left.stdout.split() == []  # no worker left running


def test_compare_options_reach_the_pipeline():
    from myoimg.cli import build_parser
    from myoimg.pipeline import PipelineOptions

    args = build_parser().parse_args([
        "compare", "b", "f", "-o", "out", "--series", "followup:t2fs=5", "--series", "pet=1.2.3",
        "--reference", "R_HAM,18", "--oedema-threshold", "1.5", "--oedema-change", "0.2",
        "--labels-from", "propagate", "--no-erode", "--tbr-change", "0.4",
        "--avid-change-rel", "0.5", "--avid-change-abs", "2", "--deformable",
    ])
    options = PipelineOptions.from_args(args)
    assert options.series == {"followup": {"t2fs": "5", "pet": "1.2.3"}, "baseline": {"pet": "1.2.3"}}
    assert options.reference_labels == (14, 18)
    assert options.oedema_threshold == 1.5 and options.erode_inplane == 0
    assert options.response_thresholds == {"oedema_fraction_abs": 0.2, "tbr_rel": 0.4,
                                           "avid_rel": 0.5, "avid_abs": 2.0}
    assert options.labels_from == "propagate" and options.deformable


def test_unknown_reference_muscle_is_a_clear_error(capsys, tmp_path):
    code, _, err = _run(capsys, "analyze", str(tmp_path), "-o", str(tmp_path / "o"),
                        "--reference", "R_XYZ")
    _assert_one_line_error(code, err, "R_XYZ")


def test_segment_bias_correction_switch_reaches_the_segmenter(tmp_path, capsys, monkeypatch):
    """N4 runs before segmenting unless --no-bias-correction; the note says which."""
    import myoimg.segment.auto as auto

    seen = []
    real = auto.segment_thigh

    def spy(image, **kw):
        seen.append(kw.get("bias_correct", True))
        return real(image, **kw)

    monkeypatch.setattr(auto, "segment_thigh", spy)
    from test_segment_auto_synthetic import make_phantom

    img, _ = make_phantom(False, nz=3)
    src = tmp_path / "thigh.nii.gz"
    sitk.WriteImage(img, str(src))
    outs = []
    for n, extra in enumerate(((), ("--no-bias-correction",))):
        code, out, err = _run(capsys, "segment", str(src), "-o", str(tmp_path / f"l{n}.nii.gz"),
                              *extra)
        assert code == 0, err
        outs.append(out)
    assert seen == [True, False]
    assert "N4" in outs[0] and "N4" not in outs[1]
