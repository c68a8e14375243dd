"""Render ``OUT/report.pdf`` from ``OUT/results.json`` and the saved volumes.

Design choice: matplotlib alone (``PdfPages``), no extra dependency. One drawing model
serves the images, plots and tables, and the page layout is explicit (figure
coordinates), so the same code renders A4 and Letter. Fonts are embedded as TrueType
(``pdf.fonttype = 42``) so the text is searchable and extractable (e.g. by pdftotext).
All matplotlib settings are applied in an ``rc_context`` and figures are created
without pyplot, so rendering leaves no global state behind.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_pdf import PdfPages

from myoimg.errors import MyoimgError
from myoimg.io.atomic import atomic_path

from .data import load_report_data, quadriceps_names
from .pages import PAPER_SIZES, add_footer, methods_pages, muscle_page, summary_page

__all__ = ["render_report"]

_RC = {
    "pdf.fonttype": 42,
    "font.family": "DejaVu Sans",
    "hatch.color": "black",
    "hatch.linewidth": 0.6,
    "axes.linewidth": 0.6,
}

Progress = Callable[[int, int], None]


def render_report(
    out_dir: str | Path,
    *,
    per_muscle: bool = False,
    anonymize: bool = False,
    paper: str = "a4",
    progress: Progress | None = None,
    pseudonym_key_file: str | Path | None = None,
) -> list[Path]:
    """Write the PDF report of an analysis folder.

    Parameters
    ----------
    out_dir : path
        Folder written by ``myoimg analyze`` / ``compare`` (holds results.json).
    per_muscle : bool
        Also write ``report_<MUSCLE>.pdf`` (one page) for each quadriceps head.
    anonymize : bool
        Replace the patient id by a keyed pseudonym (``anon-`` + 12 hex digits of
        HMAC-SHA256, see :func:`myoimg.report.data.pseudonym_key`) and omit source folder
        paths and UIDs. Results pseudonymised at analysis time keep their pseudonym.
        No patient name is ever printed.
    paper : {"a4", "letter"}
        Page size (portrait).
    progress : callable, optional
        Called as ``progress(done, total)`` (pages) after each page is drawn and once
        the files are written (the project's per-item progress convention).
    pseudonym_key_file : path, optional
        Secret key file of the pseudonym (only with ``anonymize``). Without it the
        environment variable ``MYOIMG_PSEUDONYM_KEY`` is used, else a random key of
        this run (pseudonym then not comparable with other runs).

    Returns
    -------
    list of Path
        ``OUT/report.pdf`` first, then the per-muscle files.

    Raises
    ------
    MyoimgError
        Missing or invalid results.json, an unknown paper size, or an unusable
        pseudonym key file.
    """
    key = str(paper).lower()
    if key not in PAPER_SIZES:
        raise MyoimgError(f"unknown paper size {paper!r}; use one of {sorted(PAPER_SIZES)}")
    size = PAPER_SIZES[key]
    data = load_report_data(out_dir, anonymize=anonymize, pseudonym_key_file=pseudonym_key_file)
    out_dir = Path(out_dir)
    muscles = quadriceps_names()
    written: list[Path] = []
    with matplotlib.rc_context(_RC):
        figures = []  # (figure, footer artist, muscle or None)
        total_est = 2 + len(muscles)

        def tick() -> None:
            if progress is not None:
                progress(len(figures), total_est)

        figures.append((summary_page(data, size), None))
        tick()
        cache: dict = {}
        for m in muscles:
            figures.append((muscle_page(data, m, size, cache), m))
            tick()
        for fig in methods_pages(data, size):
            figures.append((fig, None))
        total_est = len(figures)
        tick()
        n = len(figures)
        footers = [
            add_footer(fig, data, f"page {i + 1} / {n}") for i, (fig, _) in enumerate(figures)
        ]
        meta = {
            "Title": "myoimg report",
            "Creator": f"myoimg {data.results.get('myoimg_version', '')}",
            "Subject": "quantitative thigh MRI / FAPI-PET",
        }
        target = out_dir / "report.pdf"
        with atomic_path(target) as tmp, PdfPages(tmp, metadata=meta) as pdf:
            for fig, _ in figures:
                pdf.savefig(fig)
        written.append(target)
        if per_muscle:
            with ExitStack() as stack:
                for (fig, m), footer in zip(figures, footers, strict=True):
                    if m is None:
                        continue
                    footer.set_text(f"{m} \u00b7 page {figures.index((fig, m)) + 1} of report.pdf")
                    target = out_dir / f"report_{m}.pdf"
                    tmp = stack.enter_context(atomic_path(target))
                    with PdfPages(tmp, metadata={**meta, "Title": f"myoimg report {m}"}) as pdf:
                        pdf.savefig(fig)
                    written.append(target)
        if progress is not None:
            progress(n, n)
    return written
