"""Pages of the report, each a matplotlib :class:`~matplotlib.figure.Figure`.

summary_page -> one page; muscle_page -> one page per quadriceps head;
methods_pages -> one or more pages of text (parameters, SUV, registration, warnings,
disclaimer). Figures are created with :class:`Figure` directly (no pyplot), so no
global figure state is kept between calls.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.text import Text

from myoimg.labels import label_id

from .data import (
    METRICS,
    NA,
    SUMMARY_METRICS,
    ReportData,
    _number,
    fmt_change,
    fmt_rel,
    fmt_value,
    full_name,
    largest_area_slice,
    muscle_values,
    quadriceps_names,
    slice_profile,
)
from .figures import (
    VERDICT_BOLD,
    display_window,
    draw_bars,
    draw_histogram,
    draw_mr_panel,
    draw_pet_panel,
    draw_profile,
    draw_table,
    label_bbox,
    verdict_text,
)

__all__ = ["PAPER_SIZES", "summary_page", "muscle_page", "methods_pages", "add_footer"]

#: Paper sizes in inches (width, height), portrait.
PAPER_SIZES: dict[str, tuple[float, float]] = {
    "a4": (210 / 25.4, 297 / 25.4),
    "letter": (8.5, 11.0),
}

CT_WINDOW = (-160.0, 240.0)  # HU, soft-tissue window (level 40, width 400)


def add_footer(fig: Figure, data: ReportData, text_right: str) -> Text:
    """Footer line of every page; returns the right-hand text (page number) artist."""
    version = data.results.get("myoimg_version", "?")
    fig.text(
        0.06,
        0.018,
        f"myoimg {version} \u00b7 patient {data.patient_label} \u00b7 "
        "research use only, not validated for clinical decisions (see Methods)",
        fontsize=6,
        color="#555555",
    )
    return fig.text(0.94, 0.018, text_right, fontsize=6, color="#555555", ha="right")


def _series_text(series: dict | None) -> str:
    if not series:
        return NA
    desc = str(series.get("description") or "no description")
    if len(desc) > 40:
        desc = desc[:39] + "\u2026"
    num = series.get("series_number")
    return f"{desc} (series {num})" if num is not None else desc


def _visit_lines(data: ReportData) -> list[str]:
    lines = []
    for v in data.visits:
        vis = data.visit(v)
        series = vis.get("series") or {}
        lines.append(
            f"{data.visit_title(v)}: {vis.get('date') or NA}   T2-FS: {_series_text(series.get('t2fs'))}"
            f"   PET: {_series_text(series.get('pet'))}   CT: {_series_text(series.get('ct'))}"
        )
    return lines


def summary_page(data: ReportData, size: tuple[float, float]) -> Figure:
    """Identifiers, visits, table of the 8 quadriceps heads x key metrics, bar charts."""
    fig = Figure(figsize=size)
    res = data.results
    patient = res.get("patient") or {}
    title = (
        "Quadriceps MRI / FAPI-PET follow-up report"
        if data.compare
        else "Quadriceps MRI / FAPI-PET report"
    )
    fig.text(0.06, 0.965, title, fontsize=13, fontweight="bold")
    y = 0.94
    sex = patient.get("sex") or NA
    pseud = " (pseudonymised)" if data.anonymize or patient.get("anonymized") else ""
    fig.text(0.06, y, f"Patient: {data.patient_label}{pseud}    Sex: {sex}", fontsize=8.5)
    for line in _visit_lines(data):
        y -= 0.016
        fig.text(0.06, y, line, fontsize=7.5)
    if data.compare:
        y -= 0.016
        days = res.get("days_between")
        fig.text(
            0.06,
            y,
            f"Interval between visits: {days if days is not None else NA} days",
            fontsize=7.5,
        )

    muscles = quadriceps_names()
    top = y - 0.02
    if data.compare:
        _summary_table_compare(data, muscles, fig.add_axes((0.06, 0.33, 0.88, top - 0.33)))
    else:  # one visit: one row per muscle, one column per metric
        rows = [
            [m.replace("_", " ")]
            + [fmt_value(k, muscle_values(data, m, k)[data.visits[0]]) for k in SUMMARY_METRICS]
            for m in muscles
        ]
        cols = [("Muscle", 0.16, "left")] + [
            (f"{METRICS[k][0]} ({METRICS[k][1]})", 0.168, "right") for k in SUMMARY_METRICS
        ]
        fig.text(
            0.06,
            top - 0.005,
            f"{data.visit_title(data.visits[0])} values",
            fontsize=8,
            fontweight="bold",
        )
        draw_table(
            fig.add_axes((0.06, top - 0.25, 0.88, 0.23)),
            cols,
            rows,
            fontsize=7.0,
            bold_cells=[(r, 0) for r in range(len(rows))],
        )

    shown = data.visits[:2] if data.compare else data.visits[:1]
    for n, (metric, ylabel) in enumerate(
        (("oedema_fraction", "oedema fraction (0-1)"), ("suv_mean", "SUVmean (g/mL)"))
    ):
        bax = fig.add_axes(
            (0.08 + 0.47 * n, 0.07, 0.39, 0.2)
            if data.compare
            else (0.08 + 0.47 * n, 0.2, 0.39, 0.3)
        )
        values = [
            (data.visit_title(v), [_number(muscle_values(data, m, metric)[v]) for m in muscles])
            for v in shown
        ]
        draw_bars(bax, muscles, values, ylabel, METRICS[metric][0] + " per muscle")
    return fig


def _summary_table_compare(data: ReportData, muscles: list[str], ax) -> None:
    """Rows: muscle x key metric; columns: both visits, change, relative change, verdict."""
    rows: list[list[str]] = []
    fills: dict[tuple[int, int], tuple] = {}
    bold: list[tuple[int, int]] = []
    seps = []
    for m in muscles:
        seps.append(len(rows))
        bold.append((len(rows), 0))
        for n, metric in enumerate(SUMMARY_METRICS):
            name, unit, _ = METRICS[metric]
            vals = muscle_values(data, m, metric)
            text, colour = verdict_text(vals["verdict"])
            row = [m.replace("_", " ") if n == 0 else "", f"{name} ({unit})"]
            row += [fmt_value(metric, vals[v]) for v in data.visits[:2]]
            row += [fmt_change(metric, vals["abs_change"]), fmt_rel(vals["rel_change"]), text]
            if colour is not None:
                fills[(len(rows), 6)] = colour
            if str(vals["verdict"]).lower() in VERDICT_BOLD:
                bold.append((len(rows), 6))
            rows.append(row)
    b, f = (data.visit_title(v) for v in data.visits[:2])
    cols = [
        ("Muscle", 0.10, "left"),
        ("Metric", 0.24, "left"),
        (b, 0.13, "right"),
        (f, 0.13, "right"),
        ("Change", 0.13, "right"),
        ("Rel.", 0.10, "right"),
        ("Verdict", 0.17, "left"),
    ]
    draw_table(ax, cols, rows, fills=fills, separators=seps, bold_cells=bold, fontsize=6.6)


def _vmax_suv(data: ReportData, cache: dict) -> float:
    """SUV display maximum shared by every PET panel of the report (so colours compare
    between muscles and visits): 99.5th percentile of SUV inside the muscle labels."""
    if "suv_vmax" not in cache:
        cand = []
        for v in data.visits:
            im = data.images[v]
            if (
                im.suv is not None
                and im.labels_pet is not None
                and im.labels_pet.shape == im.suv.shape
            ):
                inside = im.suv[im.labels_pet > 0]
                if inside.size:
                    cand.append(float(np.percentile(inside, 99.5)))
        if not cand:  # no labels on the PET grid: whole image
            for v in data.visits:
                suv = data.images[v].suv
                if suv is not None and (suv > 0).any():
                    cand.append(float(np.percentile(suv[suv > 0], 99.5)))
        cache["suv_vmax"] = max(cand + [1.0])
    return cache["suv_vmax"]


def _cluster_note(vis: dict) -> str:
    """The smallest oedema cluster counted (methods page); empty for older results."""
    n = (vis.get("mri_parameters") or {}).get("min_cluster_voxels")
    if n is None:
        return ""
    if n <= 1:
        note = "; every voxel above it counted"
    else:
        note = f"; counted in clusters of >= {int(n)} in-plane connected voxels (smaller: noise)"
    if (vis.get("mri_parameters") or {}).get("partial_volume"):
        note += "; a cluster's edge voxels count by their oedema content (partial volume)"
    return note


def _healthy_level_note(vis: dict) -> str:
    """How the per-muscle healthy levels moved the oedema threshold (methods page)."""
    par = vis.get("mri_parameters") or {}
    if par.get("healthy_level") != "per-muscle":
        return ""
    return (
        "; each muscle's threshold is raised or lowered with its own healthy level (lowest "
        f"histogram mode, within +-{100 * float(par.get('healthy_level_bound', 0.1)):.0f} % of "
        "the reference; results.json mri_parameters.thresholds_norm)"
    )


def muscle_page(data: ReportData, muscle: str, size: tuple[float, float], cache: dict) -> Figure:
    """One quadriceps head: images of each visit, metric table, histogram and profiles."""
    fig = Figure(figsize=size)
    lid = label_id(muscle)
    visits = data.visits[:2]
    fig.text(
        0.06, 0.965, f"{full_name(muscle).capitalize()} ({muscle})", fontsize=13, fontweight="bold"
    )
    fig.text(
        0.06,
        0.943,
        "Images in radiological convention (patient right on the image's left, "
        "anterior at top). Outline: muscle. Yellow hatched: oedema (normalised T2-FS above "
        "threshold). Slice: largest muscle area of each visit.",
        fontsize=6.5,
        wrap=True,
    )
    compare = len(visits) >= 2
    # image grid: compare -> rows (T2-FS, PET) x columns (visits); single visit -> one row.
    cells = (
        [
            (0.06, 0.70, 0.40, 0.21),
            (0.52, 0.70, 0.40, 0.21),
            (0.06, 0.46, 0.40, 0.21),
            (0.52, 0.46, 0.40, 0.21),
        ]
        if compare
        else [(0.06, 0.655, 0.40, 0.265), (0.52, 0.655, 0.40, 0.265)]
    )
    artist = None
    vmax = _vmax_suv(data, cache)
    for n, v in enumerate(visits):
        im = data.images[v]
        vis = data.visit(v)
        c = cache.setdefault(v, {})
        if "mr_window" not in c:
            raw = _number((vis.get("mri_reference") or {}).get("raw_value"))
            # Window relative to the healthy-muscle reference so that the grey levels of
            # the two visits compare (healthy muscle at 40 % grey); else percentiles.
            c["mr_window"] = (0.0, 2.5 * raw) if raw and raw > 0 else display_window(im.t2fs)
            c["mr_bbox"] = label_bbox(im.labels_mr, im.mr_grid)
            c["pet_bbox"] = label_bbox(im.labels_pet, im.pet_grid)
            if c["pet_bbox"] is None and im.ct_on_pet is not None:  # crop to the body instead
                c["pet_bbox"] = label_bbox(im.ct_on_pet > -400.0, im.pet_grid)
            c["mri_on_pet_window"] = display_window(im.mri_on_pet)
        k = largest_area_slice(im.labels_mr, lid)
        zt = f", z {im.mr_grid.z[k]:.0f} mm" if k is not None and im.mr_grid is not None else ""
        head = f"{data.visit_title(v)} {vis.get('date') or ''}"
        mr_cell = cells[n] if compare else cells[0]
        pet_cell = cells[2 + n] if compare else cells[1]
        draw_mr_panel(
            fig.add_axes(mr_cell),
            im.t2fs,
            im.labels_mr,
            im.oedema_mr,
            im.mr_grid,
            lid,
            k,
            c["mr_window"],
            c["mr_bbox"],
            f"{head} \u00b7 T2-FS{zt}",
        )
        kp = largest_area_slice(im.labels_pet, lid)
        if im.ct_on_pet is not None:
            under, win, kind = im.ct_on_pet, CT_WINDOW, "PET/CT"
        else:
            under, win, kind = im.mri_on_pet, c["mri_on_pet_window"], "PET on MRI"
        note = ""
        if kp is None and im.suv is not None and im.pet_grid is not None:
            # No muscle labels on the PET grid (e.g. MR->PET registration rejected): still
            # show the PET at the z of the MRI slice (scanner coordinates), without outline.
            zref = im.mr_grid.z[k] if k is not None and im.mr_grid is not None else None
            pz = im.pet_grid.z
            inside = zref is not None and pz.min() <= zref <= pz.max()
            kp = int(np.argmin(np.abs(pz - zref))) if inside else len(pz) // 2
            where = "z of the MRI slice" if inside else "middle slice"
            note = f"\nno muscle outline (labels not on the PET grid); {where}"
        zp = f", z {im.pet_grid.z[kp]:.0f} mm" if kp is not None and im.pet_grid is not None else ""
        a = draw_pet_panel(
            fig.add_axes(pet_cell),
            im.suv,
            under,
            win,
            im.labels_pet,
            im.pet_grid,
            lid,
            kp,
            vmax,
            c["pet_bbox"],
            f"{head} \u00b7 {kind}{zp}{note}",
        )
        artist = artist or a
    if artist is not None:
        y0, h = (cells[2][1], cells[2][3]) if compare else (cells[1][1], cells[1][3])
        cax = fig.add_axes((0.935, y0 + 0.15 * h, 0.012, 0.7 * h))
        cb = fig.colorbar(artist, cax=cax)
        cb.set_label("SUV (g/mL)", fontsize=6.5)
        cb.ax.tick_params(labelsize=6)

    # metric table
    rows, fills, bold = [], {}, []
    for metric, (name, unit, _) in METRICS.items():
        vals = muscle_values(data, muscle, metric)
        row = [name, unit] + [fmt_value(metric, vals[v]) for v in visits]
        if compare:
            text, colour = verdict_text(vals["verdict"])
            row += [fmt_change(metric, vals["abs_change"]), fmt_rel(vals["rel_change"]), text]
            if colour is not None:
                fills[(len(rows), 6)] = colour
            if str(vals["verdict"]).lower() in VERDICT_BOLD:
                bold.append((len(rows), 6))
        rows.append(row)
    if compare:
        cols = [
            ("Metric", 0.22, "left"),
            ("Unit", 0.10, "left"),
            (data.visit_title(visits[0]), 0.13, "right"),
            (data.visit_title(visits[1]), 0.13, "right"),
            ("Change", 0.13, "right"),
            ("Rel.", 0.10, "right"),
            ("Verdict", 0.19, "left"),
        ]
        tab = (0.06, 0.225, 0.88, 0.215)
    else:
        cols = [
            ("Metric", 0.40, "left"),
            ("Unit", 0.25, "left"),
            (data.visit_title(visits[0]), 0.35, "right"),
        ]
        tab = (0.06, 0.33, 0.55, 0.31)
    draw_table(fig.add_axes(tab), cols, rows, fills=fills, bold_cells=bold, fontsize=6.6)

    # histogram and profiles
    samples = []
    oed_series, suv_series = [], []
    for v in visits:
        im = data.images[v]
        t = data.visit_title(v)
        # the muscle's own threshold (per-muscle healthy level), else the visit's one
        own = (data.visit(v).get("mri_parameters") or {}).get("thresholds_norm") or {}
        thr = _number(own.get(muscle, data.visit(v).get("oedema_threshold_norm")))
        vals = (
            im.t2fs_norm[im.labels_mr == lid]
            if im.t2fs_norm is not None and im.labels_mr is not None
            else None
        )
        samples.append((t, vals, thr))
        # Per-slice oedema fraction counted as the per-muscle one is (partial volume).
        counted = im.oedema_content_mr if im.oedema_content_mr is not None else im.oedema_mr
        k, frac = slice_profile(im.labels_mr, counted, lid)
        z = im.mr_grid.z[k] if im.mr_grid is not None else np.zeros(0)
        oed_series.append((t, z, frac))
        k, suv = slice_profile(im.labels_pet, im.suv, lid)
        z = im.pet_grid.z[k] if im.pet_grid is not None else np.zeros(0)
        suv_series.append((t, z, suv))
    if compare:
        boxes = [(0.07, 0.06, 0.25, 0.12), (0.39, 0.06, 0.25, 0.12), (0.71, 0.06, 0.25, 0.12)]
    else:
        boxes = [(0.68, 0.50, 0.28, 0.12), (0.08, 0.08, 0.38, 0.17), (0.58, 0.08, 0.38, 0.17)]
    draw_histogram(fig.add_axes(boxes[0]), samples)
    draw_profile(fig.add_axes(boxes[1]), oed_series, "oedema fraction", "Oedema fraction per slice")
    draw_profile(fig.add_axes(boxes[2]), suv_series, "SUVmean (g/mL)", "SUVmean per slice")
    return fig


def _fmt_scalar(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return NA
    return str(value)


def _flatten(obj: Any, prefix: str = "") -> Iterator[str]:
    """``key.sub = value`` lines of a nested dict (lists of scalars joined)."""
    if isinstance(obj, dict):
        if not obj:
            yield f"{prefix} = (empty)" if prefix else "(empty)"
        for key, val in obj.items():
            yield from _flatten(val, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, list) and all(not isinstance(x, (dict, list)) for x in obj):
        yield f"{prefix} = [{', '.join(_fmt_scalar(x) for x in obj)}]"
    elif isinstance(obj, list):
        for n, val in enumerate(obj):
            yield from _flatten(val, f"{prefix}[{n}]")
    else:
        yield f"{prefix} = {_fmt_scalar(obj)}" if prefix else _fmt_scalar(obj)


def _methods_lines(data: ReportData) -> list[tuple[str, str]]:
    """(style, text) lines of the methods section; style is 'h1', 'h2' or 'body'."""
    import matplotlib

    res = data.results
    out: list[tuple[str, str]] = [("h1", "Methods, quality and warnings")]
    out.append(
        (
            "body",
            f"Software: myoimg {res.get('myoimg_version', NA)}; results created "
            f"{res.get('created', NA)}; report drawn with matplotlib {matplotlib.__version__}.",
        )
    )
    pseud = ""
    if data.anonymize:  # say how the pseudonym was made (never the key)
        how = f": {data.pseudonym_method}" if data.pseudonym_method else ""
        pseud = f" (pseudonymised in this report{how})"
    out.append(("body", f"Patient: {data.patient_label}{pseud}"))
    if data.compare:
        out.append(("body", f"Interval between visits: {res.get('days_between', NA)} days."))
    versions = res.get("versions")
    if versions:
        out.append(("body", "Versions: " + "; ".join(_flatten(versions))))
    out.append(("h2", "Parameters"))
    out += [("body", s) for s in _flatten(res.get("parameters") or {})]
    for v in data.visits:
        vis = data.visit(v)
        out.append(("h2", f"{data.visit_title(v)} ({vis.get('date') or NA})"))
        if not data.anonymize and vis.get("source"):
            out.append(("body", f"Source folder: {vis['source']}"))
        for role, series in (vis.get("series") or {}).items():
            if series and data.anonymize:  # UIDs link back to the patient's studies
                series = {k: v for k, v in series.items() if "uid" not in str(k).lower()}
            out.append(
                ("body", f"Series {role}: " + ("; ".join(_flatten(series)) if series else NA))
            )
        suv = vis.get("suv")
        if suv:
            out.append(
                (
                    "body",
                    f"SUV: kind {suv.get('kind', NA)}, factor {_fmt_scalar(suv.get('factor'))} "
                    "(SUV = activity concentration x factor)",
                )
            )
            out += [
                ("body", "  SUV derivation: " + s) for s in _flatten(suv.get("derivation") or {})
            ]
        else:
            out.append(("body", "SUV: n/a (no PET at this visit)"))
        ref = vis.get("mri_reference")
        out.append(
            ("body", "MRI healthy-muscle reference: " + ("; ".join(_flatten(ref)) if ref else NA))
        )
        out.append(
            (
                "body",
                "Oedema threshold (normalised T2-FS) at the reference level: "
                + _fmt_scalar(vis.get("oedema_threshold_norm"))
                + _healthy_level_note(vis)
                + _cluster_note(vis),
            )
        )
        pref = vis.get("pet_reference")
        out.append(("body", "PET reference region: " + ("; ".join(_flatten(pref)) if pref else NA)))
        out += [("body", "Registration: " + s) for s in _flatten(vis.get("registration") or {})]
        seg = vis.get("segmentation") or {}
        out.append(
            (
                "body",
                f"Segmentation: method {seg.get('method', NA)}, contrast {seg.get('contrast', NA)}",
            )
        )
        out += [("body", "  " + str(m)) for m in seg.get("messages") or []]
    rules = res.get("verdict_rules")
    if rules:
        out.append(("h2", "Verdict rules"))
        out += [("body", s) for s in _flatten(rules)]
    out.append(("h2", "Warnings"))
    warn = [
        (data.visit_title(v), w) for v in data.visits for w in data.visit(v).get("warnings") or []
    ]
    warn += [("Report", w) for w in data.warnings]
    out += [("body", f"[{who}] {w}") for who, w in warn] or [("body", "none")]
    out.append(("h2", "Disclaimer"))
    out.append(
        (
            "body",
            str(
                res.get("disclaimer")
                or "Research software; results are not validated for clinical decisions."
            ),
        )
    )
    return out


def methods_pages(data: ReportData, size: tuple[float, float]) -> list[Figure]:
    """The methods section, paginated (as many pages as the text needs)."""
    wrap = textwrap.TextWrapper(width=118, subsequent_indent="    ", break_long_words=True)
    lines: list[tuple[str, str]] = []
    for style, text in _methods_lines(data):
        if style == "body":
            lines += [("body", s) for s in (wrap.wrap(text) or [""])]
        else:
            lines.append((style, text))
    step = {"h1": 0.030, "h2": 0.024, "body": 0.0125}
    pages: list[Figure] = []
    fig, y = None, 0.0
    for style, text in lines:
        if fig is None or y - step[style] < 0.05:
            fig = Figure(figsize=size)
            pages.append(fig)
            y = 0.97
        y -= step[style]
        if style == "h1":
            fig.text(0.06, y, text, fontsize=13, fontweight="bold")
        elif style == "h2":
            fig.text(0.06, y, text, fontsize=9, fontweight="bold")
        else:
            fig.text(0.06, y, text, fontsize=7)
    return pages
