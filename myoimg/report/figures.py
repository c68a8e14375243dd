"""Drawing primitives of the report: image panels, plots and tables on matplotlib Axes.

Images are shown in the radiological convention: arrays come in (k, j, i) LPS order
(see :mod:`myoimg.report.data`), so ``array[k]`` drawn with row 0 at the top puts the
patient's right on the image's left and anterior at the top. Pixel aspect follows the
voxel spacing. Colour choices are readable in grey-scale and by colour-blind readers:
grey for anatomy, 'inferno' (monotonic luminance) for SUV, Okabe-Ito colours for labels,
and every colour coding is doubled by a line style, hatch, symbol or text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

from myoimg.labels import BY_ID

from .data import NA, Grid

__all__ = [
    "VISIT_STYLE",
    "VERDICT_STYLE",
    "VERDICT_BOLD",
    "verdict_text",
    "display_window",
    "label_bbox",
    "draw_na",
    "draw_mr_panel",
    "draw_pet_panel",
    "draw_histogram",
    "draw_profile",
    "draw_bars",
    "draw_table",
]

OKABE_BLUE = (0.0, 114 / 255, 178 / 255)
OKABE_GREEN = (0.0, 158 / 255, 115 / 255)
OKABE_VERMILLION = (213 / 255, 94 / 255, 0.0)
OKABE_YELLOW = (240 / 255, 228 / 255, 66 / 255)

# Visit 0 (baseline) and visit 1 (follow-up): colour + line style + marker + hatch, so
# that the two visits stay distinguishable in grey-scale.
VISIT_STYLE = (
    {"color": "#333333", "ls": "-", "marker": "o", "hatch": "", "face": "#c8c8c8"},
    {"color": OKABE_BLUE, "ls": "--", "marker": "s", "hatch": "////", "face": OKABE_BLUE},
)

# verdict (vocabulary of myoimg.compare) -> (symbol + text, cell colour or None).
# Okabe-Ito tints; the symbol and the word carry the meaning in grey-scale.
VERDICT_STYLE = {
    "improved": ("\u2713 improved", (*OKABE_GREEN, 0.30)),
    "worse": ("\u2717 worse", (*OKABE_VERMILLION, 0.35)),
    "worsened": ("\u2717 worsened", (*OKABE_VERMILLION, 0.35)),
    "stable": ("= stable", (0.88, 0.88, 0.88, 1.0)),
    "increased": ("\u25b2 increased", None),
    "decreased": ("\u25bc decreased", None),
    "not measurable": ("n/a (not measurable)", None),
    "no rule": ("\u2014", None),
}
#: Verdicts printed in bold (need attention).
VERDICT_BOLD = ("worse", "worsened")

_OUTLINE = [patheffects.Stroke(linewidth=2.8, foreground="black"), patheffects.Normal()]
_TEXT_HALO = [patheffects.withStroke(linewidth=2.0, foreground="black")]


def verdict_text(verdict: str | None) -> tuple[str, tuple | None]:
    """Printed text and cell colour of a verdict (None -> em dash, no colour)."""
    if verdict is None or verdict == "":
        return "\u2014", None
    key = str(verdict).lower()
    if key in VERDICT_STYLE:
        return VERDICT_STYLE[key]  # type: ignore[return-value]
    return f"? {verdict}", None


def display_window(
    volume: np.ndarray | None, lo: float = 1.0, hi: float = 99.5
) -> tuple[float, float]:
    """Grey-scale window (percentiles of a subsample of the volume's nonzero voxels)."""
    if volume is None:
        return 0.0, 1.0
    sub = volume[:, ::3, ::3]
    sub = sub[np.isfinite(sub) & (sub != 0)]
    if sub.size == 0:
        return 0.0, 1.0
    a, b = np.percentile(sub, (lo, hi))
    return float(a), float(b if b > a else a + 1.0)


def label_bbox(labels: np.ndarray | None, grid: Grid | None, margin_mm: float = 15.0):
    """(i0, i1, j0, j1) inclusive bounds of all labels over the volume, plus a margin."""
    if labels is None or grid is None or not labels.any():
        return None
    j = np.nonzero(labels.any(axis=(0, 2)))[0]
    i = np.nonzero(labels.any(axis=(0, 1)))[0]
    mi = int(round(margin_mm / grid.spacing[0]))
    mj = int(round(margin_mm / grid.spacing[1]))
    ni, nj = labels.shape[2], labels.shape[1]
    return max(i[0] - mi, 0), min(i[-1] + mi, ni - 1), max(j[0] - mj, 0), min(j[-1] + mj, nj - 1)


def draw_na(ax: Axes, text: str, title: str | None = None) -> None:
    """An empty panel saying why there is nothing to show."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("#f2f2f2")
    ax.text(0.5, 0.5, f"{NA}\n{text}", ha="center", va="center", fontsize=8, transform=ax.transAxes)
    if title:
        ax.set_title(title, fontsize=8)


def _frame(ax: Axes, grid: Grid, shape: tuple[int, int], bbox) -> None:
    """Crop, aspect, orientation letters and scale bar of an image panel."""
    ny, nx = shape
    i0, i1, j0, j1 = bbox if bbox is not None else (0, nx - 1, 0, ny - 1)
    ax.set_xlim(i0 - 0.5, i1 + 0.5)
    ax.set_ylim(j1 + 0.5, j0 - 0.5)  # row 0 (anterior) at the top
    ax.set_aspect(grid.spacing[1] / grid.spacing[0])
    ax.set_xticks([])
    ax.set_yticks([])
    # Radiological convention: patient right (-x in LPS, low i) on the image's left.
    for x, y, s, ha, va in (
        (0.02, 0.5, "R", "left", "center"),
        (0.98, 0.5, "L", "right", "center"),
        (0.5, 0.98, "A", "center", "top"),
        (0.5, 0.02, "P", "center", "bottom"),
    ):
        ax.text(
            x,
            y,
            s,
            color="white",
            fontsize=8,
            fontweight="bold",
            ha=ha,
            va=va,
            transform=ax.transAxes,
            path_effects=_TEXT_HALO,
        )
    width_mm = (i1 - i0 + 1) * grid.spacing[0]
    bar_mm = next((b for b in (50.0, 20.0, 10.0, 5.0) if b <= 0.4 * width_mm), None)
    if bar_mm is not None:
        px = bar_mm / grid.spacing[0]
        x0 = i1 + 0.5 - 0.05 * (i1 - i0 + 1) - px
        y0 = j1 + 0.5 - 0.06 * (j1 - j0 + 1)
        ax.plot(
            [x0, x0 + px],
            [y0, y0],
            color="white",
            lw=2.5,
            solid_capstyle="butt",
            path_effects=[patheffects.withStroke(linewidth=4.0, foreground="black")],
        )
        label = f"{bar_mm / 10:g} cm" if bar_mm >= 10 else f"{bar_mm:g} mm"
        ax.text(
            x0 + px / 2,
            y0 - 0.035 * (j1 - j0 + 1),
            label,
            color="white",
            fontsize=6.5,
            ha="center",
            va="bottom",
            path_effects=_TEXT_HALO,
        )


def _outline(ax: Axes, mask: np.ndarray, label: int) -> None:
    if not mask.any():
        return
    colour = tuple(c / 255 for c in BY_ID[label].colour) if label in BY_ID else (1.0, 1.0, 1.0)
    cs = ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.3)
    cs.set_path_effects(_OUTLINE)


def draw_mr_panel(
    ax: Axes,
    image: np.ndarray | None,
    labels: np.ndarray | None,
    oedema: np.ndarray | None,
    grid: Grid | None,
    label: int,
    k: int | None,
    window: tuple[float, float],
    bbox,
    title: str,
) -> None:
    """T2-FS slice ``k`` with the muscle outlined and its oedema hatched (yellow tint)."""
    if image is None or grid is None or k is None:
        draw_na(ax, "no T2-FS image or muscle not found", title)
        return
    ax.imshow(image[k], cmap="gray", vmin=window[0], vmax=window[1], interpolation="nearest")
    if labels is not None:
        mask = labels[k] == label
        if oedema is not None:
            oed = mask & (oedema[k] > 0)
            if oed.any():
                ax.contourf(
                    oed.astype(np.float32),
                    levels=[0.5, 1.5],
                    colors=[(*OKABE_YELLOW, 0.35)],
                    hatches=["////"],
                )
        _outline(ax, mask, label)
    _frame(ax, grid, image.shape[1:], bbox)
    ax.set_title(title, fontsize=8)


def draw_pet_panel(
    ax: Axes,
    suv: np.ndarray | None,
    underlay: np.ndarray | None,
    underlay_window: tuple[float, float],
    labels: np.ndarray | None,
    grid: Grid | None,
    label: int,
    k: int | None,
    vmax: float,
    bbox,
    title: str,
):
    """SUV ('inferno', 40 % opaque above 10 % of ``vmax``) fused on a grey underlay.

    Returns the SUV image artist (for a colour bar) or None.
    """
    if suv is None or grid is None:
        draw_na(ax, "no PET at this visit", title)
        return None
    if k is None:
        draw_na(ax, "muscle not found on the PET grid", title)
        return None
    if underlay is not None:
        ax.imshow(
            underlay[k],
            cmap="gray",
            vmin=underlay_window[0],
            vmax=underlay_window[1],
            interpolation="nearest",
        )
    else:
        ax.set_facecolor("black")
    pet = np.ma.masked_less(suv[k], 0.1 * vmax)
    artist = ax.imshow(
        pet,
        cmap="inferno",
        vmin=0.0,
        vmax=vmax,
        alpha=0.6 if underlay is not None else 1.0,
        interpolation="nearest",
    )
    if labels is not None:
        _outline(ax, labels[k] == label, label)
    _frame(ax, grid, suv.shape[1:], bbox)
    ax.set_title(title, fontsize=8)
    return artist


def draw_histogram(
    ax: Axes,
    samples: Sequence[tuple[str, np.ndarray | None, float | None]],
) -> None:
    """Histogram of normalised T2-FS within the muscle, one step line per visit.

    ``samples`` holds (visit title, values, oedema threshold) per visit. Heights are
    fractions of the muscle's voxels so that visits of different volume compare.
    """
    vals = [v for _, v, _ in samples if v is not None and v.size]
    if not vals:
        draw_na(ax, "no normalised T2-FS in this muscle", "Normalised T2-FS signal")
        return
    thresholds = [t for _, _, t in samples if t is not None]
    hi = max([3.0, *[1.3 * t for t in thresholds], *[float(np.percentile(v, 99.5)) for v in vals]])
    bins = np.linspace(0.0, hi, 61)
    for n, (name, v, thr) in enumerate(samples):
        st = VISIT_STYLE[min(n, 1)]
        if v is not None and v.size:
            ax.hist(
                np.clip(v, 0, hi),
                bins=bins,
                weights=np.full(v.size, 1.0 / v.size),
                histtype="step",
                color=st["color"],
                ls=st["ls"],
                lw=1.3,
                label=f"{name} (n={v.size})",
            )
        if thr is not None:
            ax.axvline(thr, color=st["color"], ls=":", lw=1.2)
            ax.text(
                thr,
                0.97 - 0.1 * n,
                f" {name} threshold {thr:.2f}",
                color=st["color"],
                fontsize=5.5,
                transform=ax.get_xaxis_transform(),
                va="top",
            )
    ax.axvline(1.0, color="#999999", lw=0.6)
    ax.set_xlabel("T2-FS / healthy reference (1.0 = healthy)", fontsize=7)
    ax.set_ylabel("fraction of voxels", fontsize=7)
    ax.set_title("Normalised T2-FS signal in the muscle", fontsize=8)
    ax.tick_params(labelsize=6.5)
    ax.legend(fontsize=5.5, loc="upper right", bbox_to_anchor=(1.0, 0.78), frameon=False)


def draw_profile(
    ax: Axes,
    series: Sequence[tuple[str, np.ndarray, np.ndarray]],
    ylabel: str,
    title: str,
) -> None:
    """Per-slice value along the thigh: (visit title, z in mm, value) per visit."""
    if not any(len(z) for _, z, _ in series):
        draw_na(ax, "not measured", title)
        return
    for n, (name, z, y) in enumerate(series):
        if len(z) == 0:
            continue
        st = VISIT_STYLE[min(n, 1)]
        ax.plot(z, y, color=st["color"], ls=st["ls"], marker=st["marker"], ms=3, lw=1.2, label=name)
    ax.set_xlabel("slice position z (LPS, mm; superior \u2192)", fontsize=7)
    ax.set_ylabel(ylabel, fontsize=7)
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=6.5)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=6, frameon=False)


def draw_bars(
    ax: Axes,
    muscles: Sequence[str],
    values: Sequence[tuple[str, Sequence[float | None]]],
    ylabel: str,
    title: str,
) -> None:
    """Grouped bars: one group per muscle, one bar per visit; null values marked n/a."""
    n = max(len(values), 1)
    width = 0.8 / n
    x = np.arange(len(muscles))
    top = max([v for _, vs in values for v in vs if v is not None] + [0.0])
    for b, (name, vs) in enumerate(values):
        st = VISIT_STYLE[min(b, 1)]
        xs = x - 0.4 + width * (b + 0.5)
        h = [v if v is not None else 0.0 for v in vs]
        ax.bar(
            xs, h, width, color=st["face"], edgecolor="black", lw=0.6, hatch=st["hatch"], label=name
        )
        for xi, v in zip(xs, vs, strict=True):
            if v is None:
                ax.text(
                    xi, 0.02 * (top or 1.0), NA, rotation=90, ha="center", va="bottom", fontsize=5.5
                )
    ax.set_xticks(x, [m.replace("_", " ") for m in muscles], fontsize=6.5)
    ax.set_ylabel(ylabel, fontsize=7)
    ax.set_title(title, fontsize=8)
    ax.tick_params(axis="y", labelsize=6.5)
    ax.set_ylim(0, 1.15 * top if top > 0 else 1.0)
    ax.legend(fontsize=6, frameon=False, loc="upper right")


def draw_table(
    ax: Axes,
    columns: Sequence[tuple[str, float, str]],
    rows: Sequence[Sequence[str]],
    *,
    fills: dict[tuple[int, int], tuple] | None = None,
    separators: Sequence[int] = (),
    bold_cells: Sequence[tuple[int, int]] = (),
    fontsize: float = 7.0,
) -> None:
    """Plain table drawn with text on ``ax`` (axes coordinates 0-1).

    columns : (header, width as fraction of the axes, 'left' | 'right' | 'center').
    fills : (row, column) -> RGBA background of a cell.
    separators : rows above which a thin line is drawn (e.g. a new muscle).
    """
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    fills = fills or {}
    h = 1.0 / (len(rows) + 1)
    lefts = np.concatenate([[0.0], np.cumsum([w for _, w, _ in columns])])
    bold = set(bold_cells)

    def put(r_y: float, c: int, text: str, weight: str = "normal") -> None:
        _, w, align = columns[c]
        x = {"left": lefts[c] + 0.008, "right": lefts[c] + w - 0.008, "center": lefts[c] + w / 2}[
            align
        ]
        ax.text(x, r_y, text, ha=align, va="center", fontsize=fontsize, fontweight=weight)

    for c, (head, _, _) in enumerate(columns):
        put(1 - h / 2, c, head, "bold")
    ax.plot([0, lefts[-1]], [1 - h, 1 - h], color="black", lw=0.8)
    for r, row in enumerate(rows):
        y_top = 1 - h * (r + 1)
        for c, text in enumerate(row):
            if (r, c) in fills:
                ax.add_patch(
                    Rectangle(
                        (lefts[c], y_top - h),
                        columns[c][1],
                        h,
                        facecolor=fills[(r, c)],
                        edgecolor="none",
                    )
                )
            put(y_top - h / 2, c, text, "bold" if (r, c) in bold else "normal")
        if r in separators and r > 0:
            ax.plot([0, lefts[-1]], [y_top, y_top], color="#888888", lw=0.4)
    ax.plot([0, lefts[-1]], [0, 0], color="black", lw=0.8)
