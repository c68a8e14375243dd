"""Render ``OUT/report.pdf`` from ``OUT/results.json`` and the saved volumes.

Design choice: matplotlib draws everything (``PdfPages``). One drawing model serves the
images, plots and tables, and the page layout is explicit (figure coordinates), so the
same code renders A4 and Letter. Fonts are embedded as TrueType (``pdf.fonttype = 42``)
so the text is searchable and extractable (e.g. by pdftotext). All matplotlib settings
are applied in an ``rc_context`` and figures are created without pyplot, so rendering
leaves no global state behind.

Drawing a page into the PDF is single-threaded Python (text layout, ~0.5 s per page), so
with two or more CPUs and the ``fork`` start method the later pages (the larger share)
are drawn in a forked process and the two files are joined with pypdf (10 -> 7 s for the
12 pages of a comparison). The pages are the same either way. The per-muscle files
(``--per-muscle``) are the heads' pages copied out of the joined report with pypdf, not
drawn again.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from myoimg.errors import MyoimgError
from myoimg.io.atomic import atomic_path
from myoimg.segment.threads import can_fork

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

#: Seconds to wait for the worker process per page it draws (it needs ~0.5 s a page).
#: A forked process can in rare cases hang on a lock another thread held at the fork:
#: after this it is stopped and its pages are drawn here instead.
WORKER_SECONDS_PER_PAGE = 30.0


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
    meta = {
        "Title": "myoimg report",
        "Creator": f"myoimg {data.results.get('myoimg_version', '')}",
        "Subject": "quantitative thigh MRI / FAPI-PET",
    }
    written: list[Path] = []
    with matplotlib.rc_context(_RC):
        methods = methods_pages(data, size)
        # Page plan: the summary, one page per quadriceps head, the methods pages.
        plan: list[str | Figure] = ["summary", *muscles, *methods]
        n = len(plan)
        cache: dict = {}

        def build(i: int) -> Figure:
            item = plan[i]
            if isinstance(item, Figure):
                fig = item
            elif item == "summary":
                fig = summary_page(data, size)
            else:
                fig = muscle_page(data, item, size, cache)
            # A head's page names it in the footer: its per-muscle file is this page.
            head = f"{item} \u00b7 " if isinstance(item, str) and item != "summary" else ""
            add_footer(fig, data, f"{head}page {i + 1} / {n}")
            return fig

        target = out_dir / "report.pdf"
        # The child gets the larger share: its pages end with the methods pages
        # (text only, ~0.5 s each against ~1 s for an image page) and the parent also
        # joins the two files. Measured on sample_data/ (12 pages): 7.3 s parent / 5.7 s
        # child at n // 2, 6.2 / 6.5 s at (n - 1) // 2.
        split = (n - 1) // 2 if (can_fork() and n >= 4) else n
        with atomic_path(target) as tmp:
            if split < n:
                _render_split(build, n, split, tmp, meta, progress)
            else:
                _save_pages(build, range(n), tmp, meta, progress, n)
        written.append(target)
        if per_muscle:
            heads = {i: m for i, m in enumerate(plan) if isinstance(m, str) and m != "summary"}
            written.extend(_muscle_files(target, heads, meta))
        if progress is not None:
            progress(n, n)
    return written


def _muscle_files(report: Path, heads: dict[int, str], meta: dict[str, Any]) -> list[Path]:
    """``report_<MUSCLE>.pdf`` next to ``report``: page i of the report for each head
    (a copy of the drawn page, so the two cannot differ); all written or none."""
    from pypdf import PdfReader, PdfWriter

    reader = PdfReader(str(report))
    paths = []
    with ExitStack() as stack:
        for i, m in heads.items():
            writer = PdfWriter()
            writer.add_page(_own_images_only(reader.pages[i]))
            writer.add_metadata(_pdf_info({**meta, "Title": f"myoimg report {m}"}))
            target = report.parent / f"report_{m}.pdf"
            with open(stack.enter_context(atomic_path(target)), "wb") as fh:
                writer.write(fh)
            paths.append(target)
    return paths


def _pdf_info(meta: dict[str, Any]) -> dict[str, Any]:
    """matplotlib's ``PdfPages`` metadata keys as pypdf's document-information names."""
    return {f"/{k}": v for k, v in meta.items()}


def _own_images_only(page: Any) -> Any:
    """``page`` with a resource dictionary of its own that lists only the images and
    forms its content draws (``/Name Do``): matplotlib gives all pages of a file one
    shared dictionary, so a copied page would otherwise carry every page's images."""
    from pypdf.generic import DictionaryObject, NameObject

    shared = page["/Resources"].get_object()
    if "/XObject" not in shared:
        return page
    drawn = {n.decode() for n in re.findall(rb"/([^\s/\[\]<>()]+)\s+Do\b",
                                            page.get_contents().get_data())}
    own = DictionaryObject(dict(shared.items()))
    own[NameObject("/XObject")] = DictionaryObject(
        {k: v for k, v in shared["/XObject"].get_object().items() if k[1:] in drawn}
    )
    page[NameObject("/Resources")] = own
    return page


def _save_pages(build: Callable[[int], Figure], pages: Sequence[int], path: Path,
                meta: dict[str, Any], progress: Progress | None = None,
                total: int = 0) -> None:
    """Draw ``build(i)`` for each page index into one PDF at ``path``; ``progress(done,
    total)`` after each page."""
    with PdfPages(path, metadata=meta) as pdf:
        for done, i in enumerate(pages, start=1):
            pdf.savefig(build(i))
            if progress is not None:
                progress(done, total)


def _render_split(build: Callable[[int], Figure], n: int, split: int, target: Path,
                  meta: dict[str, Any], progress: Progress | None) -> None:
    """Pages [0, split) here, [split, n) in a forked process; join them into ``target``."""
    from pypdf import PdfWriter

    parts = []
    for _ in range(2):
        fd, name = tempfile.mkstemp(prefix=".report-part-", suffix=".pdf", dir=target.parent)
        os.close(fd)
        parts.append(Path(name))
    first, second = parts
    # The child inherits the loaded data (copy on write) and draws with matplotlib and
    # numpy only; it reports through its exit code.
    child = multiprocessing.get_context("fork").Process(
        target=_save_pages, args=(build, range(split, n), second, meta), daemon=True
    )
    try:
        child.start()
        _save_pages(build, range(split), first, meta, progress, n)
        child.join(WORKER_SECONDS_PER_PAGE * (n - split))
        if child.is_alive():
            child.terminate()
            child.join()
            logging.getLogger("myoimg").warning(
                "report: the worker process did not finish; drawing pages %d-%d here", split + 1, n
            )
            _save_pages(build, range(split, n), second, meta)
        elif child.exitcode != 0:
            raise MyoimgError(
                f"report: drawing pages {split + 1}-{n} failed in the worker process "
                f"(exit code {child.exitcode}); see the message above"
            )
        writer = PdfWriter()
        writer.append(str(first))
        writer.append(str(second))
        writer.add_metadata(_pdf_info(meta))
        with open(target, "wb") as fh:
            writer.write(fh)
    finally:
        if child.is_alive():
            child.terminate()
            child.join()
        for part in parts:
            with suppress(FileNotFoundError):
                part.unlink()
