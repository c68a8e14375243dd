"""Keyed pseudonyms (``--anonymize``): HMAC-SHA256 of the patient id with a secret key.

Expected pseudonyms are computed in each test with the stdlib ``hmac`` module, not by
myoimg. The end-to-end part runs ``myoimg analyze`` on the PET/CT series of one visit of
the reference study (the cheapest existing pipeline input, no segmentation).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import shutil
import subprocess

import pytest
import report_fixture as fx  # tests/ is on sys.path (pytest rootdir-relative import)

import myoimg.report.data as data_mod
from myoimg.cli import main
from myoimg.errors import MyoimgError
from myoimg.pipeline import PipelineOptions
from myoimg.report.data import (
    PSEUDONYM_KEY_ENV,
    load_report_data,
    pseudonym,
    pseudonym_key,
    pseudonym_uid,
)

KEY = b"study-42 secret key, 32 bytes.."  # >= 16 bytes: no short-key warning


def expected(patient_id: str, key: bytes) -> str:
    return "anon-" + hmac.new(key, patient_id.encode("utf-8"), "sha256").hexdigest()[:12]


@pytest.fixture
def no_env_key(monkeypatch):
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "study.key"
    path.write_bytes(KEY + b"\n")  # as written by `echo KEY > study.key`
    return path


# ---------------------------------------------------------------- the pseudonym itself


def test_known_value_and_key_dependence():
    assert pseudonym("12345", b"k") == expected("12345", b"k")
    assert re.fullmatch(r"anon-[0-9a-f]{12}", pseudonym("12345", b"k"))
    assert pseudonym("12345", b"k") == pseudonym("12345", b"k")
    assert pseudonym("12345", b"k") != pseudonym("12345", b"l")
    assert pseudonym("12345", b"k") != pseudonym("12346", b"k")
    # Not the former unkeyed hash (which anyone can enumerate over all short ids).
    assert pseudonym("12345", b"k")[5:] != hashlib.sha256(b"12345").hexdigest()[:12]
    # Non-ASCII ids are hashed as UTF-8.
    assert pseudonym("Müller-7", KEY) == expected("Müller-7", KEY)
    with pytest.raises(ValueError):
        pseudonym("12345", b"")


def test_uid_replacement_is_a_valid_keyed_uid():
    uid = "1.2.826.0.1.3680043.8.498.42341157314555186912662622228049903119"
    digest = hmac.new(KEY, uid.encode("ascii"), "sha256").digest()
    want = "2.25." + str(int.from_bytes(digest[:16], "big"))
    assert pseudonym_uid(uid, KEY) == want
    # PS3.5 9.1: digits and dots, no leading zero in a component, at most 64 characters.
    assert re.fullmatch(r"2\.25\.(0|[1-9][0-9]*)", want) and len(want) <= 64
    assert pseudonym_uid(uid, b"other key") != want
    assert pseudonym_uid(uid + "1", KEY) != want
    with pytest.raises(ValueError):
        pseudonym_uid(uid, b"")


def test_key_file_and_environment_give_the_same_pseudonym_as_the_key(key_file, monkeypatch):
    from_file = pseudonym_key(key_file)
    assert from_file.key == KEY and from_file.source == "file"  # trailing newline dropped
    assert from_file.method == "hmac-sha256, key from file"
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, KEY.decode())
    from_env = pseudonym_key()
    assert from_env.source == "environment" and from_env.method == "hmac-sha256, key from environment"
    want = expected("12345", KEY)
    assert pseudonym("12345", from_file.key) == pseudonym("12345", from_env.key) == want
    assert pseudonym("12345") == want  # default key: the environment variable
    # An explicit file wins over the environment.
    other = key_file.parent / "other.key"
    other.write_bytes(b"another key of the study, long enough")
    assert pseudonym_key(other).key == b"another key of the study, long enough"
    # The key never shows in a repr (log lines, tracebacks).
    assert KEY.decode() not in repr(from_file)


def test_bad_keys_are_clear_errors(tmp_path, no_env_key):
    missing = tmp_path / "nowhere.key"
    with pytest.raises(MyoimgError, match="nowhere.key"):
        pseudonym_key(missing)
    empty = tmp_path / "empty.key"
    empty.write_bytes(b"\n")
    with pytest.raises(MyoimgError, match=r"empty\.key is empty"):
        pseudonym_key(empty)
    with pytest.raises(MyoimgError, match=PSEUDONYM_KEY_ENV):
        pseudonym_key(environ={PSEUDONYM_KEY_ENV: ""})
    # Options are checked when built, not after the analysis.
    with pytest.raises(MyoimgError, match="nowhere.key"):
        PipelineOptions(anonymize=True, pseudonym_key_file=str(missing))
    with pytest.raises(MyoimgError, match="--anonymize"):
        PipelineOptions(anonymize=False, pseudonym_key_file=str(empty))


def test_short_key_is_warned_about(tmp_path, caplog):
    short = tmp_path / "short.key"
    short.write_bytes(b"k")
    with caplog.at_level(logging.WARNING, logger="myoimg"):
        assert pseudonym_key(short).key == b"k"
    assert "shorter than 16 bytes" in caplog.text


def test_random_key_per_run(no_env_key, monkeypatch, caplog):
    monkeypatch.setattr(data_mod, "_run_key", None)  # a fresh run (process)
    with caplog.at_level(logging.WARNING, logger="myoimg"):
        first = pseudonym_key()
    assert first.source == "random" and first.method == "hmac-sha256, random key per run"
    assert len(first.key) == 32
    assert "random key of this run only" in caplog.text
    # Consistent within the run ...
    assert pseudonym_key(warn=False).key == first.key
    assert pseudonym("12345") == expected("12345", first.key)
    # ... but a new run draws a new key.
    monkeypatch.setattr(data_mod, "_run_key", None)
    assert pseudonym_key(warn=False).key != first.key


# ---------------------------------------------------------------- report from results.json


def test_report_data_pseudonymises_with_the_key(tmp_path, key_file, no_env_key, caplog):
    out = fx.make_out(tmp_path, visits=("baseline",), pet=())
    with caplog.at_level(logging.WARNING, logger="myoimg"):
        data = load_report_data(out, anonymize=True, pseudonym_key_file=key_file)
    assert data.patient_label == expected("PAT001", KEY)
    assert data.pseudonym_method == "hmac-sha256, key from file"
    assert not caplog.text  # a good key: no warning
    assert load_report_data(out).patient_label == "PAT001"
    with pytest.raises(MyoimgError, match="--anonymize"):
        load_report_data(out, pseudonym_key_file=key_file)
    # No key at all: the run's random key, said in a warning (without id or key).
    with caplog.at_level(logging.WARNING, logger="myoimg"):
        data = load_report_data(out, anonymize=True)
    assert data.pseudonym_method == "hmac-sha256, random key per run"
    assert data.patient_label == expected("PAT001", pseudonym_key(warn=False).key)
    assert "random key" in caplog.text and "PAT001" not in caplog.text
    # Results pseudonymised at analysis time keep their pseudonym and its method.
    res = json.loads((out / "results.json").read_text())
    res["patient"] = {"id": "anon-0123456789ab", "sex": "F", "anonymized": True}
    res.setdefault("parameters", {})["pseudonym"] = "hmac-sha256, key from environment"
    (out / "results.json").write_text(json.dumps(res), encoding="utf-8")
    data = load_report_data(out, anonymize=True, pseudonym_key_file=key_file)
    assert data.patient_label == "anon-0123456789ab"
    assert data.pseudonym_method == "hmac-sha256, key from environment"


def test_cli_report_missing_key_file_fails_before_rendering(tmp_path, capsys):
    out = fx.make_out(tmp_path / "f", visits=("baseline",), pet=())
    code = main(["report", str(out), "--anonymize", "--pseudonym-key-file",
                 str(tmp_path / "lost.key")])
    assert code == 2
    assert "lost.key" in capsys.readouterr().err
    assert not (out / "report.pdf").exists()


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_cli_report_prints_the_keyed_pseudonym(tmp_path, key_file, no_env_key):
    out = fx.make_out(tmp_path / "f", visits=("baseline",), pet=())
    assert main(["report", str(out), "--anonymize", "--pseudonym-key-file", str(key_file),
                 "--quiet"]) == 0
    text = subprocess.run(["pdftotext", "-layout", str(out / "report.pdf"), "-"], check=True,
                          capture_output=True, text=True).stdout
    assert expected("PAT001", KEY) in text
    assert "hmac-sha256, key from file" in text
    assert "PAT001" not in text and KEY.decode() not in text


# ---------------------------------------------------------------- end to end (analyze)


def _pet_ct_visit(sample_data, tmp_path):
    """A visit folder with only the PET and CT series of the reference baseline (copies)."""
    from myoimg.io import guess_role, scan

    folder = tmp_path / "visit"
    folder.mkdir()
    for info in scan(sample_data / "baseline").series:
        if guess_role(info) in ("pet", "ct"):
            for f in info.files:
                shutil.copy2(f, folder / f.name)
    return folder


def test_analyze_anonymized_outputs_hold_no_id_and_no_key(sample_data, tmp_path, key_file,
                                                          no_env_key):
    import pydicom

    # Named as PACS exports often are: after the patient.
    folder = _pet_ct_visit(sample_data, tmp_path).rename(tmp_path / "DOE_JANE_20250520")
    patient_id = str(pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True).PatientID)
    assert patient_id  # the test is void without an id to look for
    out = tmp_path / "out"
    assert main(["analyze", str(folder), "-o", str(out), "--no-report", "--quiet",
                 "--anonymize", "--pseudonym-key-file", str(key_file)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["patient"]["id"] == expected(patient_id, KEY)
    assert results["patient"]["anonymized"] is True
    assert results["parameters"]["pseudonym"] == "hmac-sha256, key from file"
    texts = {name: (out / name).read_text(encoding="utf-8")
             for name in ("results.json", "metrics.csv", "myoimg.log")}
    assert "pseudonym" in texts["myoimg.log"]  # the parameters line is there
    # Source folder and UIDs lead back to the patient: keyed replacements instead.
    head = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    uids = [str(head.SeriesInstanceUID), str(head.FrameOfReferenceUID),
            str(head.StudyInstanceUID)]
    visit = results["visits"]["baseline"]
    assert visit["source"] == "withheld (--anonymize)"
    series = [s for s in visit["series"].values() if s]
    assert pseudonym_uid(str(head.SeriesInstanceUID), KEY) in {s["series_uid"] for s in series}
    for name, text in texts.items():
        assert patient_id not in text, name
        assert KEY.decode() not in text, name
        assert str(folder) not in text and folder.name not in text, name
        for uid in uids:
            assert uid not in text, (name, uid)
