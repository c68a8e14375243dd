"""End to end on the bundled reference study: `myoimg compare` as a user runs it.

One compare run (module-scoped fixture) feeds the checks of the output folder; the
numbers are compared with the reference study's ground truth in sample_data/truth.
"""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import SimpleITK as sitk

from myoimg import labels as vocab
from myoimg.cli import main
from myoimg.errors import MyoimgError, OutputExistsError
from myoimg.pipeline import PipelineOptions, run_compare


@pytest.fixture(scope="module")
def compare_out(sample_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    code = main(["compare", str(sample_data / "baseline"), str(sample_data / "followup"),
                 "-o", str(out), "--quiet"])
    assert code == 0
    return out


def test_output_folder_layout(compare_out):
    for name in ("results.json", "metrics.csv", "report.pdf", "myoimg.log"):
        assert (compare_out / name).is_file(), name
    for visit in ("baseline", "followup"):
        for name in ("t2fs.nii.gz", "t2fs_norm.nii.gz", "labels_mr.nii.gz", "oedema_mr.nii.gz",
                     "oedema_content_mr.nii.gz", "suv.nii.gz", "labels_pet.nii.gz",
                     "ct_on_pet.nii.gz", "seg_mr.dcm"):
            assert (compare_out / visit / name).is_file(), (visit, name)
    # Nothing left behind by the staging folder.
    assert not [p for p in compare_out.parent.iterdir() if p.name.startswith(".")]


def test_oedema_fraction_is_the_content_maps_mean_over_the_label(compare_out):
    """Traceable from the files alone: each head's oedema fraction is the mean of
    oedema_content_mr.nii.gz over its label (partial-volume weights on cluster edges), and
    the content is 1 on the binary map's interior voxels and 0 off the map."""
    from myoimg.io import read_nifti
    from myoimg.labels import QUADRICEPS

    results = json.loads((compare_out / "results.json").read_text())
    for visit in ("baseline", "followup"):
        lab = sitk.GetArrayFromImage(read_nifti(compare_out / visit / "labels_mr.nii.gz"))
        content = sitk.GetArrayFromImage(
            read_nifti(compare_out / visit / "oedema_content_mr.nii.gz")
        )
        binary = sitk.GetArrayFromImage(read_nifti(compare_out / visit / "oedema_mr.nii.gz"))
        assert results["visits"][visit]["mri_parameters"]["partial_volume"] is True
        assert (content[binary == 0] == 0).all() and (content <= 1).all()
        if visit == "baseline":  # large patches: partial weights on their edges only
            assert 0 < (content[binary == 1] < 1).mean() < 0.5
        for m in QUADRICEPS:
            got = results["visits"][visit]["muscles"][m.name]["oedema_fraction"]
            assert float(content[lab == m.id].mean()) == pytest.approx(got, abs=1e-5), m.name


def test_results_json_schema_and_traceability(compare_out, sample_data):
    results = json.loads((compare_out / "results.json").read_text())
    assert results["myoimg_version"]
    assert "not validated" in results["disclaimer"]
    assert results["parameters"]["oedema_threshold"] == "mean+2sd"
    truth = json.loads((sample_data / "truth" / "truth.json").read_text())
    for visit in ("baseline", "followup"):
        entry = results["visits"][visit]
        assert entry["series"]["t2fs"]["series_uid"] == truth["visits"][visit]["mri"]["t2fs_series_uid"]
        assert set(m.name for m in vocab.QUADRICEPS) <= set(entry["muscles"])
        # SUV factor from the written headers equals the generator's factor.
        assert entry["suv"]["factor"] == pytest.approx(
            truth["visits"][visit]["suv"]["suv_factor_g_per_bq"], rel=1e-6)
        assert entry["suv"]["derivation"]
        # The patient roll the muscle model was turned by is recorded (a number, degrees).
        assert isinstance(entry["segmentation"]["roll_deg"], float)
        for values in entry["muscles"].values():
            f = values["oedema_fraction"]
            assert f is None or 0.0 <= f <= 1.0
    for name in (m.name for m in vocab.QUADRICEPS):
        change = results["changes"][name]["oedema_fraction"]
        assert change["verdict"] in ("improved", "stable", "worse", "not measurable")


# The automatic labels of sample_data/ against its generator's truth (session 13:
# baseline mean .822, lowest head .682; follow-up .885 / .722): floors a little below,
# so that a regression of the segmentation on the generated study fails here.
SAMPLE_DICE_FLOOR = {"baseline": (0.79, 0.64), "followup": (0.85, 0.68)}  # (mean, head)


@pytest.mark.parametrize("visit", ["baseline", "followup"])
def test_automatic_labels_match_the_generated_truth(compare_out, sample_data, visit):
    ours = sitk.ReadImage(str(compare_out / visit / "labels_mr.nii.gz"))
    truth = sitk.Resample(sitk.ReadImage(str(sample_data / "truth" / visit / "labels_mr.nii.gz")),
                          ours, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    a, b = sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(truth)
    scores = {m.name: 2.0 * ((a == m.id) & (b == m.id)).sum() / ((a == m.id).sum() + (b == m.id).sum())
              for m in vocab.QUADRICEPS}
    mean_floor, head_floor = SAMPLE_DICE_FLOOR[visit]
    assert sum(scores.values()) / len(scores) >= mean_floor, scores
    assert min(scores.values()) >= head_floor, scores


def test_per_visit_automatic_labels_are_flagged(compare_out):
    """Volume changes between two independent automatic segmentations include their
    variability: results.json (and so the report's warnings) says so."""
    results = json.loads((compare_out / "results.json").read_text())
    warnings = results["visits"]["followup"]["warnings"]
    assert any("segmentation variability" in w and "--labels-from propagate" in w
               for w in warnings), warnings


def test_metrics_csv_is_tidy(compare_out):
    with open(compare_out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and set(rows[0]) == {"visit", "muscle", "side", "metric", "value", "unit"}
    results = json.loads((compare_out / "results.json").read_text())
    row = next(r for r in rows if r["visit"] == "baseline" and r["muscle"] == "R_VL"
               and r["metric"] == "volume_ml")
    assert float(row["value"]) == pytest.approx(results["visits"]["baseline"]["muscles"]["R_VL"]["volume_ml"])
    assert row["side"] == "R" and row["unit"] == "mL"


def test_baseline_oedema_is_worse_than_followup(compare_out, sample_data):
    truth = json.loads((sample_data / "truth" / "truth.json").read_text())
    results = json.loads((compare_out / "results.json").read_text())
    for name in ("R_VL", "L_VL"):
        t_base = truth["visits"]["baseline"]["muscles"][name]["oedema_fraction"]
        t_follow = truth["visits"]["followup"]["muscles"][name]["oedema_fraction"]
        assert t_base > t_follow + 0.1  # the reference study's design
        m = results["visits"]
        assert m["baseline"]["muscles"][name]["oedema_fraction"] > m["followup"]["muscles"][name]["oedema_fraction"]


def test_existing_output_refused_and_interrupted_run_leaves_nothing(sample_data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OutputExistsError):
        run_compare(sample_data / "baseline", sample_data / "followup", out, PipelineOptions(quiet=True))
    shutil.rmtree(out)

    import myoimg.pipeline as pipeline

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "analyze_visit", boom)
    with pytest.raises(KeyboardInterrupt):
        run_compare(sample_data / "baseline", sample_data / "followup", out, PipelineOptions(quiet=True))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def _copy_series(sample_data, tmp_path, roles):
    """A visit folder holding only the series of ``roles`` (files copied, never moved)."""
    from myoimg.io import guess_role, scan

    folder = tmp_path / "visit"
    folder.mkdir()
    for info in scan(sample_data / "baseline").series:
        if guess_role(info) in roles:
            for f in info.files:
                shutil.copy2(f, folder / f.name)
    return folder


def test_visit_with_pet_but_no_mri_runs_what_it_can(sample_data, tmp_path):
    from myoimg.pipeline import run_analyze

    folder = _copy_series(sample_data, tmp_path, {"pet", "ct"})
    out = tmp_path / "out"
    run_analyze(folder, out, PipelineOptions(quiet=True, report=False))
    entry = json.loads((out / "results.json").read_text())["visits"]["baseline"]
    assert entry["series"]["t2fs"] is None and entry["suv"]["factor"] > 0
    assert any("T2FS" in w for w in entry["warnings"])
    assert any("no MRI labels" in w for w in entry["warnings"])
    assert entry["muscles"]["R_VL"]["oedema_fraction"] is None
    assert (out / "baseline" / "suv.nii.gz").is_file()


def test_propagation_without_baseline_labels_is_not_silent(monkeypatch):
    """--labels-from propagate with no baseline MRI labels: segmented, and said so."""
    import types

    import myoimg.segment.auto as auto
    from myoimg.pipeline import _mri_labels
    from myoimg.progress import Progress

    image = sitk.Image(4, 4, 2, sitk.sitkFloat32)
    stub = auto.SegmentationResult(labels=sitk.Image(4, 4, 2, sitk.sitkUInt8), contrast="fatsup",
                                   contrast_name="fat-suppressed", contrast_reason="test",
                                   sides=("R",))
    monkeypatch.setattr(auto, "segment_thigh", lambda *a, **k: stub)
    entry = {"warnings": [], "registration": {}}
    t2 = types.SimpleNamespace(image=image, headers=[])
    options = PipelineOptions(quiet=True, labels_from="propagate")
    labels = _mri_labels(t2, "followup", options, Progress(quiet=True), None, entry)
    assert labels is stub.labels and entry["segmentation"]["method"] == "automatic"
    assert any("no MRI labels to carry" in w for w in entry["warnings"])


@pytest.mark.parametrize("deformable", [False, True])
def test_propagation_registers_as_asked(monkeypatch, deformable):
    """--deformable reaches the follow-up -> baseline registration and is recorded."""
    import types

    import myoimg.segment.register as register
    from myoimg.pipeline import _mri_labels
    from myoimg.progress import Progress

    image = sitk.Image(4, 4, 2, sitk.sitkFloat32)
    labels = sitk.Image(4, 4, 2, sitk.sitkUInt8)
    calls = []

    def fake_register(fixed, moving, **kw):
        calls.append(kw)
        return types.SimpleNamespace(ok=True, metric=-0.5, quality={}, messages=[],
                                     transform=sitk.Transform())

    monkeypatch.setattr(register, "register_rigid_affine", fake_register)
    entry = {"warnings": [], "registration": {}}
    t2 = types.SimpleNamespace(image=image, headers=[])
    options = PipelineOptions(quiet=True, labels_from="propagate", deformable=deformable)
    _mri_labels(t2, "followup", options, Progress(quiet=True),
                {"image": image, "labels": labels}, entry)
    assert calls == [{"deformable": deformable}]
    assert entry["segmentation"]["method"] == "propagated from baseline"
    assert entry["segmentation"]["registration"] == ("rigid + B-spline" if deformable else "rigid")


def test_anonymize_keeps_patient_id_out_of_outputs(sample_data, tmp_path):
    import pydicom

    from myoimg.pipeline import run_analyze
    from myoimg.report.data import pseudonym

    folder = _copy_series(sample_data, tmp_path, {"pet", "ct"})
    patient_id = str(pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True).PatientID)
    out = tmp_path / "out"
    run_analyze(folder, out, PipelineOptions(quiet=True, report=False, anonymize=True))
    results = (out / "results.json").read_text()
    assert json.loads(results)["patient"]["id"] == pseudonym(patient_id)
    assert patient_id not in results
    assert patient_id not in (out / "myoimg.log").read_text()


def test_analyze_names_the_visit(sample_data, tmp_path):
    """`--visit followup` files the single visit under that name everywhere."""
    from myoimg.pipeline import run_analyze

    folder = _copy_series(sample_data, tmp_path, {"pet", "ct"})
    out = tmp_path / "out"
    run_analyze(folder, out, PipelineOptions(quiet=True, report=False), visit="followup")
    assert list(json.loads((out / "results.json").read_text())["visits"]) == ["followup"]
    with open(out / "metrics.csv", newline="") as fh:
        assert {row["visit"] for row in csv.DictReader(fh)} == {"followup"}
    assert (out / "followup" / "suv.nii.gz").is_file() and not (out / "baseline").exists()
    with pytest.raises(MyoimgError, match="unknown visit"):
        run_analyze(folder, tmp_path / "o2", PipelineOptions(quiet=True), visit="../x")


def test_bad_oedema_min_cluster_refused_before_any_work():
    for bad in (-1, 2.5, True, "3", None, float("nan")):
        with pytest.raises(MyoimgError, match="--oedema-min-cluster"):
            PipelineOptions(oedema_min_cluster=bad)
    assert PipelineOptions(oedema_min_cluster=0).oedema_min_cluster == 0
    # the same rule as oedema_metrics(min_cluster=...): a whole-valued float is a count
    assert PipelineOptions(oedema_min_cluster=2.0).oedema_min_cluster == 2


def test_implausible_label_map_is_flagged_in_results(sample_data, tmp_path):
    """A user's label map without the left RF (the other heads present) gets a warning."""
    from myoimg.pipeline import run_analyze

    folder = _copy_series(sample_data, tmp_path, {"t2fs"})
    truth = sitk.ReadImage(str(sample_data / "truth" / "baseline" / "labels_mr.nii.gz"))
    arr = sitk.GetArrayFromImage(truth)
    arr[arr == 8] = 0  # L_RF
    edited = sitk.GetImageFromArray(arr)
    edited.CopyInformation(truth)
    user = tmp_path / "user_labels.nii.gz"
    sitk.WriteImage(edited, str(user))
    out = tmp_path / "out"
    run_analyze(folder, out, PipelineOptions(quiet=True, report=False, labels={"baseline": str(user)}))
    entry = json.loads((out / "results.json").read_text())["visits"]["baseline"]
    assert entry["segmentation"]["method"] == "imported"
    assert any(w.startswith("L_RF is not labelled while R_RF is") for w in entry["warnings"])
    assert not any("segmentation error" in w for w in entry["warnings"])  # sides otherwise alike


def test_coronal_only_t2fs_runs_on_restacked_axial_slices(test_data, tmp_path):
    """A visit whose only STIR is a coronal series (beside a 3-image localizer): analyze
    picks it, says so, segments and quantifies it on axial slices re-stacked from it, and
    writes the labels on the coronal grid. Checked voxel by voxel against the real case's
    reference written the same way (a mix-up of axes would put the labels elsewhere)."""
    import numpy as np
    from dicom_factory import write_series

    from myoimg.pipeline import run_analyze

    d = test_data / "huashan-001"
    img = sitk.ReadImage(str(d / "image.nii.gz"))
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(d / "labels.nii.gz")))
    a = sitk.GetArrayFromImage(img).astype(np.float64)  # (z, y, x)
    # Coronal storage: one image per y (posterior normal), rows from the head down,
    # columns along x. (The NIfTI's 2.6 deg obliquity is dropped: only the storage matters.)
    sx, sy, sz = img.GetSpacing()
    ox, oy, oz = img.GetOrigin()
    stored = np.transpose(a[::-1], (1, 0, 2))
    stored = np.round(stored - stored.min() + 10).astype(np.uint16)
    top = oz + (a.shape[0] - 1) * sz
    write_series(tmp_path / "visit" / "stir", rows=stored.shape[1], cols=stored.shape[2],
                 iop=(1, 0, 0, 0, 0, -1), pixel_spacing=(sz, sx), stored=stored,
                 positions=np.array([[ox, oy + j * sy, top] for j in range(stored.shape[0])]),
                 description="STIR_cor_3d", series_number=5)  # fmt: skip
    write_series(tmp_path / "visit" / "loc", n_slices=3, description="localizer", series_number=1,
                 image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), iop=(0, 1, 0, 0, 0, -1))  # fmt: skip
    out = tmp_path / "out"
    run_analyze(tmp_path / "visit", out, PipelineOptions(quiet=True, report=False))
    visit = json.loads((out / "results.json").read_text())["visits"]["baseline"]
    assert any("T2-FS series is coronal" in w for w in visit["warnings"])
    assert visit["mri_parameters"]["restacked_axis_order"] == [0, 2, 1]
    labels = sitk.ReadImage(str(out / "baseline" / "labels_mr.nii.gz"))
    assert labels.GetSize() == (stored.shape[2], stored.shape[1], stored.shape[0])
    got = sitk.GetArrayFromImage(labels)  # (y, z from the top, x), as stored
    want = np.transpose(ref[::-1], (1, 0, 2))
    dice = [2 * ((got == i) & (want == i)).sum() / ((got == i).sum() + (want == i).sum())
            for i in (1, 5)]  # the vasti laterales: .84 / .80 on the axial NIfTI
    assert min(dice) > 0.7
    for name in ("R_VL", "L_VL"):
        assert 0.0 <= visit["muscles"][name]["oedema_fraction"] <= 1.0
