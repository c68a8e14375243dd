"""PDF report built from results.json and the saved volumes.

``render_report(OUT)`` writes ``OUT/report.pdf``: a summary page, one page per
quadriceps head and a methods page. It needs only ``OUT/results.json`` and the NIfTI
volumes listed there, so a report can be re-rendered alone (``myoimg report OUT``).
"""

from .render import render_report

__all__ = ["render_report"]
