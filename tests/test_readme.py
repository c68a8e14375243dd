"""The README's Python API example runs as written (from the repository root)."""

from __future__ import annotations

import os
import re

from conftest import ROOT


def _api_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    marker = text.index("<!-- API example")
    match = re.search(r"```python\n(.*?)```", text[marker:], flags=re.S)
    assert match, "README API example block not found"
    return match.group(1)


def test_readme_api_example_runs(sample_data, capsys):
    code = _api_example()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "SUV" in out


def test_readme_quick_start_commands_are_the_ci_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "myoimg compare sample_data/baseline sample_data/followup" in text
    assert "-m pytest -q" in text and "-m pytest -q" in ci
