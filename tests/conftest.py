"""Shared fixtures. Tests never write into the repository: use ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = ROOT / "sample_data"
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def sample_data() -> Path:
    if not (SAMPLE_DATA / "baseline").is_dir():
        pytest.skip("sample_data/ not generated yet")
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def test_data() -> Path:
    return TEST_DATA
