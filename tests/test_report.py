"""Tests of the PDF report (myoimg.report) on a synthetic OUT folder (tests/report_fixture.py).

Expected numbers are computed by hand from the fixture's geometry (see comments), not
by the report code. PDF content is checked with poppler's pdftotext / pdftoppm.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import report_fixture as fx  # tests/ is on sys.path (pytest rootdir-relative import)

from myoimg.errors import MyoimgError
from myoimg.report import render_report
from myoimg.report.data import (
    fmt_change,
    fmt_rel,
    fmt_value,
    largest_area_slice,
    load_report_data,
    pseudonym,
    slice_profile,
)
from myoimg.report.figures import verdict_text

HAVE_POPPLER = shutil.which("pdftotext") is not None and shutil.which("pdftoppm") is not None
needs_poppler = pytest.mark.skipif(
    not HAVE_POPPLER, reason="poppler-utils (pdftotext, pdftoppm) not installed"
)

QUAD = ["R_VL", "R_VM", "R_VI", "R_RF", "L_VL", "L_VM", "L_VI", "L_RF"]


def pdf_pages_text(pdf: Path) -> list[str]:
    """Text of each page (pdftotext -layout separates pages with form feeds)."""
    out = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    pages = out.split("\f")
    return pages[:-1] if pages and not pages[-1].strip() else pages


def png_pages(pdf: Path, tmp: Path) -> list[np.ndarray]:
    from matplotlib.image import imread

    tmp.mkdir(exist_ok=True)
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(pdf), str(tmp / "p")], check=True)
    return [imread(p) for p in sorted(tmp.glob("p-*.png"))]


# ---------------------------------------------------------------- rendered folders (one each)


@pytest.fixture(scope="module")
def compare_out(tmp_path_factory) -> tuple[Path, list[Path], list[tuple]]:
    out = fx.make_out(tmp_path_factory.mktemp("cmp"))
    calls: list[tuple] = []
    paths = render_report(out, progress=lambda *a: calls.append(a))
    return out, paths, calls


@pytest.fixture(scope="module")
def single_out(tmp_path_factory) -> tuple[Path, list[Path]]:
    # analyze folder: one visit, PET without CT (fused on MRI), US Letter paper
    out = fx.make_out(tmp_path_factory.mktemp("one"), visits=("baseline",), ct=False)
    return out, render_report(out, paper="letter")


@pytest.fixture(scope="module")
def nopet_out(tmp_path_factory) -> tuple[Path, list[Path]]:
    # follow-up without PET, one listed volume missing, anonymised
    out = fx.make_out(tmp_path_factory.mktemp("nopet"), pet=("baseline",))
    (out / "followup" / "t2fs_norm.nii.gz").unlink()
    # baseline PET without muscle labels on its grid (as after a rejected MR->PET registration)
    res = json.loads((out / "results.json").read_text())
    res["visits"]["baseline"]["files"]["labels_pet"] = None
    (out / "results.json").write_text(json.dumps(res), encoding="utf-8")
    return out, render_report(out, anonymize=True)


# ---------------------------------------------------------------- formatting and helpers


def test_formatting_by_hand():
    assert fmt_value("oedema_fraction", 0.41) == "0.410"
    assert fmt_value("suv_mean", 2.104) == "2.10"
    assert fmt_value("volume_ml", 250.06) == "250.1"
    assert fmt_value("suv_max", None) == "n/a"
    assert fmt_value("suv_max", float("nan")) == "n/a"
    assert fmt_change("oedema_fraction", -0.38) == "-0.380"
    assert fmt_change("volume_ml", 3.0) == "+3.0"
    assert fmt_rel(-0.93) == "-93%"
    assert fmt_rel(None) == "n/a"


def test_pseudonym_is_stable_and_hides_the_id():
    p = pseudonym("PAT001")
    assert p == pseudonym("PAT001")
    assert p != pseudonym("PAT002")
    assert re.fullmatch(r"anon-[0-9a-f]{12}", p)
    assert "PAT001" not in p


def test_largest_area_slice_and_profile_known_values():
    mr = fx.mr_arrays("baseline")
    assert largest_area_slice(mr["labels"], 1) == fx.R_VL_PEAK_SLICE
    assert largest_area_slice(mr["labels"], 11) is None  # sartorius not in the fixture
    # R_VL oedema = rows j 14..21 of the VL block (rows 14..29) on slices 3..7 -> 8/16 = 0.5
    k, frac = slice_profile(mr["labels"], mr["oedema"], 1)
    np.testing.assert_array_equal(k, np.arange(1, 9))
    np.testing.assert_allclose(frac, [0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0])


def test_volumes_are_reoriented_to_lps(tmp_path):
    # the follow-up MRI is stored with its x axis reversed; after loading it must match
    # the baseline voxel for voxel, with the patient's right thigh at low column index.
    out = fx.make_out(tmp_path, pet=())
    data = load_report_data(out)
    base, fu = data.images["baseline"], data.images["followup"]
    np.testing.assert_array_equal(base.labels_mr, fu.labels_mr)
    cols = np.nonzero(fu.labels_mr == 1)[2]
    assert cols.max() < fu.labels_mr.shape[2] / 2  # R_VL in the image's left half
    np.testing.assert_allclose(base.mr_grid.z, -36.0 + 8.0 * np.arange(10))


def test_bad_input_raises_myoimg_error(tmp_path):
    with pytest.raises(MyoimgError, match="results.json"):
        render_report(tmp_path)
    (tmp_path / "results.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(MyoimgError, match="not valid JSON"):
        render_report(tmp_path)
    with pytest.raises(MyoimgError, match="paper"):
        render_report(tmp_path, paper="a3")


# ---------------------------------------------------------------- compare report


@needs_poppler
def test_compare_report_pages(compare_out):
    out, paths, calls = compare_out
    assert paths == [out / "report.pdf"]
    assert len(pdf_pages_text(out / "report.pdf")) == 10  # summary + 8 heads + methods
    assert calls[-1][0] == calls[-1][1] == 10
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


@needs_poppler
def test_pages_drawn_in_two_processes_equal_one_process(compare_out, tmp_path, monkeypatch):
    import myoimg.report.render as render

    if not render.can_fork():
        pytest.skip("needs two CPUs and the fork start method")
    out = compare_out[0]  # drawn in two processes (the default here)
    serial = tmp_path / "serial"
    shutil.copytree(out, serial)
    (serial / "report.pdf").unlink()
    monkeypatch.setattr(render, "can_fork", lambda: False)
    render_report(serial)
    assert pdf_pages_text(serial / "report.pdf") == pdf_pages_text(out / "report.pdf")


def test_failing_worker_process_raises_and_leaves_nothing(tmp_path, monkeypatch):
    import myoimg.report.render as render

    if not render.can_fork():
        pytest.skip("needs two CPUs and the fork start method")
    out = fx.make_out(tmp_path)
    real = render._save_pages

    def save_pages(build, pages, path, meta, progress=None, total=0):
        if progress is None:  # the worker's call (the parent passes its progress)
            raise RuntimeError("simulated failure in the worker")
        return real(build, pages, path, meta, progress, total)

    monkeypatch.setattr(render, "_save_pages", save_pages)
    with pytest.raises(MyoimgError, match="worker process"):
        render_report(out, progress=lambda *a: None)
    assert not (out / "report.pdf").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@needs_poppler
def test_hanging_worker_is_stopped_and_its_pages_drawn_here(tmp_path, monkeypatch):
    import time

    import myoimg.report.render as render

    if not render.can_fork():
        pytest.skip("needs two CPUs and the fork start method")
    monkeypatch.setattr("myoimg.report.render.quadriceps_names", lambda: ["R_VL", "L_RF"])
    out = fx.make_out(tmp_path, visits=("baseline",), pet=())
    real = render._save_pages
    calls = []

    def save_pages(build, pages, path, meta, progress=None, total=0):
        calls.append(list(pages))
        if progress is None and len(calls) == 1:  # the worker (a fork: its own list)
            time.sleep(60)
        return real(build, pages, path, meta, progress, total)

    monkeypatch.setattr(render, "_save_pages", save_pages)
    monkeypatch.setattr(render, "WORKER_SECONDS_PER_PAGE", 1.0)
    t0 = time.monotonic()
    (pdf,) = render_report(out, progress=lambda *a: None)
    assert time.monotonic() - t0 < 30
    pages = pdf_pages_text(pdf)
    assert len(pages) == 4 and "(L_RF)" in pages[2] and "page 4 / 4" in pages[3]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@needs_poppler
def test_per_muscle_files(tmp_path, monkeypatch):
    # two heads instead of eight keep the test fast; the mechanism is the same
    monkeypatch.setattr("myoimg.report.render.quadriceps_names", lambda: ["R_VL", "L_RF"])
    out = fx.make_out(tmp_path, visits=("baseline",), pet=())
    # One process: all pages share one resource dictionary (matplotlib), the case where a
    # copied page would carry the other pages' images.
    monkeypatch.setattr("myoimg.report.render.can_fork", lambda: False)
    paths = render_report(out, per_muscle=True)
    assert paths == [out / "report.pdf", out / "report_R_VL.pdf", out / "report_L_RF.pdf"]
    report = pdf_pages_text(paths[0])
    assert len(report) == 4
    for i, (m, p) in enumerate(zip(["R_VL", "L_RF"], paths[1:], strict=True), start=1):
        (page,) = pdf_pages_text(p)
        assert page == report[i]  # the report's own page, footer included
        assert f"({m})" in page and f"{m} · page {i + 1} / 4" in page
        assert "no PET at this visit" in page
        assert _images(p, 0) == _images(paths[0], i, drawn_only=True)
        assert _images(p, 0) < _images(paths[0], i)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def _images(pdf: Path, index: int, drawn_only: bool = False) -> int:
    """Image XObjects in page ``index``'s resources (or only those its content draws)."""
    from pypdf import PdfReader

    page = PdfReader(str(pdf)).pages[index]
    xobj = page["/Resources"].get_object()["/XObject"].get_object()
    names = [k for k, v in xobj.items() if v.get_object()["/Subtype"] == "/Image"]
    if drawn_only:
        content = page.get_contents().get_data()
        names = [k for k in names if re.search(re.escape(k).encode() + rb"\s+Do\b", content)]
    return len(names)


@needs_poppler
def test_summary_table_matches_hand_computed_values(compare_out):
    out, _, _ = compare_out
    page = pdf_pages_text(out / "report.pdf")[0]
    rows = [ln for ln in page.splitlines() if "Oedema fraction (0-1)" in ln]
    assert len(rows) == 8
    # R_VL: 1024 voxels of 0.128 mL (131.072 mL); oedema 336 voxels at baseline
    # (0.328125), 64 at follow-up (0.0625): change -0.265625 (-81 %), improved.
    assert re.search(
        r"R VL\s+Oedema fraction \(0-1\)\s+0\.328\s+0\.062\s+-0\.266\s+-81%\s+✓ improved", rows[0]
    )
    vol = [ln for ln in page.splitlines() if "Volume (mL)" in ln]
    assert re.search(r"131\.1\s+131\.1\s+\+0\.0\s+\+0%\s+= stable", vol[0])
    # every summary cell equals results.json formatted as printed
    res = json.loads((out / "results.json").read_text())
    for m, line in zip(QUAD, rows, strict=True):
        ch = res["changes"][m]["oedema_fraction"]
        expect = [
            fmt_value("oedema_fraction", ch["baseline"]),
            fmt_value("oedema_fraction", ch["followup"]),
            fmt_change("oedema_fraction", ch["abs_change"]),
            fmt_rel(ch["rel_change"]),
            verdict_text(ch["verdict"])[0],
        ]
        assert " ".join(line.split()).endswith(" ".join(expect)), (m, line)
    # L_VM: SUV 1.0 -> 1.5 in every voxel: +0.50 (+50 %), flagged worse
    suv = [ln for ln in page.splitlines() if "SUVmean (g/mL)" in ln]
    assert re.search(r"1\.00\s+1\.50\s+\+0\.50\s+\+50%\s+✗ worse", suv[QUAD.index("L_VM")])
    assert "Interval between visits: 150 days" in page
    assert "Patient: PAT001" in page and "AX T2 STIR FS (series 5)" in page


@needs_poppler
def test_muscle_pages_tables_and_nulls(compare_out):
    out, _, _ = compare_out
    pages = pdf_pages_text(out / "report.pdf")
    res = json.loads((out / "results.json").read_text())
    for n, m in enumerate(QUAD, start=1):
        page = pages[n]
        assert f"({m})" in page
        b = res["visits"]["baseline"]["muscles"][m]
        f = res["visits"]["followup"]["muscles"][m]
        suv = next(ln for ln in page.splitlines() if ln.strip().startswith("SUVmean "))
        assert (
            fmt_value("suv_mean", b["suv_mean"]) in suv
            and fmt_value("suv_mean", f["suv_mean"]) in suv
        )
        assert "threshold 1.16" in page
    r_vl = pages[1]
    assert re.search(r"SUVmean\s+g/mL\s+3\.00\s+1\.50\s+-1\.50\s+-50%\s+✓ improved", r_vl)
    assert re.search(r"Volume\s+mL\s+131\.1\s+131\.1", r_vl)
    l_vi = pages[QUAD.index("L_VI") + 1]
    zline = next(ln for ln in l_vi.splitlines() if "T2-FS z-score" in ln)
    assert zline.split()[-5:-1] == ["n/a", "n/a", "n/a", "n/a"]


@needs_poppler
def test_methods_page(compare_out):
    out, _, _ = compare_out
    page = pdf_pages_text(out / "report.pdf")[-1]
    for text in (
        "myoimg 0.1.0",
        "half_life_s = 6586.2",
        "factor 0.000123",
        "raw_value = 330",
        "dice_labels = 0.93",
        "synthetic warning for followup",
        "Imaging response criteria for myositis are not validated",
        "/data/incoming/baseline",
    ):
        assert text in " ".join(page.split()), text


def test_methods_page_states_the_oedema_cluster_rule():
    from myoimg.report.pages import _cluster_note

    assert "clusters of >= 3 in-plane" in _cluster_note({"mri_parameters": {"min_cluster_voxels": 3}})
    assert "every voxel" in _cluster_note({"mri_parameters": {"min_cluster_voxels": 0}})
    assert _cluster_note({"mri_parameters": {}}) == ""  # results from before the rule


@needs_poppler
def test_compare_pages_render_non_blank(compare_out, tmp_path):
    out, _, _ = compare_out
    imgs = png_pages(out / "report.pdf", tmp_path)
    assert len(imgs) == 10
    for n, img in enumerate(imgs):
        ink = (img[..., :3].mean(axis=2) < 0.9).mean()
        assert ink > 0.01, f"page {n + 1} is blank"
    # the muscle pages carry dark image panels: much more ink than the text-only methods page
    assert (imgs[1][..., :3].mean(axis=2) < 0.5).mean() > 0.1


# ---------------------------------------------------------------- single visit / missing data


@needs_poppler
def test_single_visit_report(single_out, tmp_path):
    out, paths = single_out
    assert paths == [out / "report.pdf"]
    pages = pdf_pages_text(out / "report.pdf")
    assert len(pages) == 10
    assert "Change" not in pages[0] and "Verdict" not in pages[0]
    r_vl = next(ln for ln in pages[0].splitlines() if ln.strip().startswith("R VL"))
    assert r_vl.split()[2:] == ["0.328", "3.00", "3.00", "2.70", "131.1"]
    assert "PET on MRI" in pages[1]
    info = subprocess.run(["pdfinfo", str(paths[0])], capture_output=True, text=True).stdout
    assert "612 x 792 pts" in info  # US Letter
    assert all(
        (img[..., :3].mean(axis=2) < 0.9).mean() > 0.01 for img in png_pages(paths[0], tmp_path)
    )


@needs_poppler
def test_visit_without_pet_and_anonymized(nopet_out, tmp_path):
    out, paths = nopet_out
    pages = pdf_pages_text(paths[0])
    assert len(pages) == 10
    text = "\n".join(pages)
    assert "PAT001" not in text and pseudonym("PAT001") in text
    assert "/data/incoming" not in text  # source paths omitted when anonymised
    assert "no PET at this visit" in pages[1]
    # PET still shown, at the z of the MRI slice (same scanner frame here), without outline
    assert "no muscle outline (labels not on the PET grid); z of the MRI slice" in pages[1]
    suv = next(ln for ln in pages[1].splitlines() if ln.strip().startswith("SUVmean "))
    assert re.search(r"3\.00\s+n/a\s+n/a\s+n/a", suv)
    assert "followup/t2fs_norm.nii.gz listed in results.json is missing" in " ".join(
        pages[-1].split()
    )
    assert b"PAT001" not in paths[0].read_bytes()
    assert len(png_pages(paths[0], tmp_path)) == 10


@needs_poppler
def test_sparse_results_render_as_na(tmp_path, monkeypatch):
    # nulls, missing volumes, a null visit and a malformed change entry never crash
    monkeypatch.setattr("myoimg.report.render.quadriceps_names", lambda: ["R_VL"])
    res = {
        "visits": {
            "baseline": {"muscles": {"R_VL": {"volume_ml": None}}, "files": {"t2fs": "no.nii.gz"}},
            "followup": None,
        },
        "changes": {"R_VL": {"volume_ml": "x"}},
        "patient": None,
    }
    (tmp_path / "results.json").write_text(json.dumps(res), encoding="utf-8")
    (pdf,) = render_report(tmp_path)
    pages = pdf_pages_text(pdf)
    assert len(pages) == 3
    vol = next(ln for ln in pages[1].splitlines() if ln.strip().startswith("Volume"))
    assert vol.split()[2:6] == ["n/a"] * 4
    assert "baseline: file no.nii.gz listed in results.json is missing" in " ".join(
        pages[2].split()
    )
