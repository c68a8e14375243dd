"""Quality-control picture of a segmentation: axial slices with label outlines.

Display convention: radiological, i.e. the patient's right on the image's left and
anterior at the top, whatever the storage order of the image. Each shown slice is
flipped/transposed (never resampled) so that columns run toward +x (patient left) and
rows toward +y (posterior) in LPS.

Layout (all sizes in PNG pixels, rendered at :data:`DPI`):

* every panel shows the same region: the bounding box of all labels over the shown
  slices plus :data:`MARGIN_MM` on each side, clipped to the slice (the whole slice if
  there are no labels or ``crop=False``);
* that region of ``w_mm`` x ``h_mm`` is scaled by ``s = min(PANEL_MAX_PX[0] / w_mm,
  PANEL_MAX_PX[1] / h_mm)`` pixels per mm (same scale both ways: pixel aspect kept),
  giving panels of ``pw = round(s * w_mm)`` x ``ph = round(s * h_mm)`` pixels; a pair of
  thighs (wide region) is thus 800 px wide;
* ``rows = ceil(n / columns)`` and ``cols = ceil(n / rows)`` (balanced grid: 4 slices
  give 2 x 2, 5 give 3 + 2);
* PNG width ``cols * pw + (cols + 1) * GAP_PX``; height ``GAP_PX + rows * (TITLE_PX + ph
  + GAP_PX)`` plus a legend band of ``LEGEND_PAD_PX + LEGEND_ROW_PX * ceil(m / 8)`` for
  ``m`` label ids present (none if ``m == 0``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..io.atomic import atomic_path
from ..labels import BY_ID, colour_table
from .thigh import axial_order

__all__ = ["save_qc_png", "save_steps_png"]

#: Output resolution (dots per inch); a power of two so that pixel sizes / DPI are exact.
DPI = 128
#: Largest panel (width, height) in PNG pixels; the crop is fitted inside at its mm aspect.
PANEL_MAX_PX = (800, 640)
#: Crop margin around the labels (mm).
MARGIN_MM = 10.0
#: Gap between panels and around the grid (px).
GAP_PX = 8
#: Band above each panel for its title (px).
TITLE_PX = 30
#: Legend band: padding plus one row per 8 label names (px).
LEGEND_PAD_PX = 14
LEGEND_ROW_PX = 24
LEGEND_COLUMNS = 8
#: Outline width in image pixels (inner boundary, so neighbouring labels do not overlap).
OUTLINE_PX = 2


def _display_slice(a2d: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Orient a (j, i) slice for display: columns toward +x, rows toward +y (LPS).

    Only flips/transposes the stored slice (no resampling, so oblique slices are shown
    as acquired); the radiological view follows: patient right on the left (x grows
    toward the patient's left), anterior on top (y grows toward posterior).
    """
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    col_dir, row_dir = d[:2, 0], d[:2, 1]  # in-plane LPS (x, y) of the i and j axes
    out = a2d
    if abs(col_dir[1]) > abs(col_dir[0]):  # i runs mostly along y: swap axes
        out = out.T
        col_dir, row_dir = row_dir, col_dir
    if col_dir[0] < 0:
        out = out[:, ::-1]
    if row_dir[1] < 0:
        out = out[::-1, :]
    return out


def _display_spacing(image: sitk.Image) -> tuple[float, float]:
    """(row height, column width) in mm of a slice after :func:`_display_slice`."""
    sp = image.GetSpacing()
    d = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    if abs(d[1, 0]) > abs(d[0, 0]):  # transposed for display: columns are the j axis
        return float(sp[0]), float(sp[1])
    return float(sp[1]), float(sp[0])


def _crop_box(
    masks: np.ndarray, spacing_rc: tuple[float, float], margin_mm: float
) -> tuple[slice, slice]:
    """Row/column slices of the bounding box of ``masks`` (n, rows, cols) plus a margin.

    The margin is ``ceil(margin_mm / spacing)`` pixels per axis, clipped to the slice;
    the whole slice if no pixel is set.
    """
    shape = masks.shape[1:]
    if not masks.any():
        return slice(0, shape[0]), slice(0, shape[1])
    union = masks.any(axis=0)
    box = []
    for axis, (n, sp) in enumerate(zip(shape, spacing_rc, strict=True)):
        idx = np.nonzero(union.any(axis=1 - axis))[0]
        m = int(math.ceil(margin_mm / sp - 1e-9))
        box.append(slice(max(0, int(idx[0]) - m), min(n, int(idx[-1]) + 1 + m)))
    return box[0], box[1]


def _axial(*images: sitk.Image) -> tuple[sitk.Image, ...]:
    """``images`` (same grid) re-stacked into axial slices when the first is stored in
    another axis order (:func:`myoimg.segment.thigh.axial_order`); unchanged otherwise."""
    order = axial_order(images[0]) if images[0].GetDimension() == 3 else None
    if order is None or order == [0, 1, 2]:
        return images
    return tuple(sitk.PermuteAxes(im, order) for im in images)


def _spread_slices(marked: np.ndarray, n_slices: int) -> list[int]:
    """``n_slices`` slice indices evenly spread over the slices of ``marked`` (k, j, i) that
    hold any non-zero pixel (over all slices if none does)."""
    has = np.nonzero(marked.reshape(marked.shape[0], -1).any(1))[0]
    pool = has if has.size else np.arange(marked.shape[0])
    n = max(1, min(int(n_slices), pool.size))
    return [int(k) for k in pool[np.linspace(0, pool.size - 1, n).round().astype(int)]]


def _grey_window(pixels: np.ndarray) -> tuple[float, float]:
    """Display range: the 0.5-99.5 percentiles of the finite ``pixels`` (0-1 if none)."""
    finite = pixels[np.isfinite(pixels)]
    vmin, vmax = (float(v) for v in np.percentile(finite, (0.5, 99.5))) if finite.size else (0.0, 1.0)
    return vmin, (vmax if vmax > vmin else vmin + 1.0)


def _outline_rgba(lab2d: np.ndarray, colours: dict[int, tuple[float, float, float]]) -> np.ndarray:
    """RGBA (rows, cols, 4) overlay: inner label boundaries ``OUTLINE_PX`` pixels wide.

    A labelled pixel is on the outline if a pixel with another value (background or
    another label) lies within city-block distance ``OUTLINE_PX``.
    """
    foot = ndimage.generate_binary_structure(2, 1)
    foot = ndimage.iterate_structure(foot, OUTLINE_PX)  # diamond of radius OUTLINE_PX
    lo = ndimage.grey_erosion(lab2d, footprint=foot, mode="nearest")
    hi = ndimage.grey_dilation(lab2d, footprint=foot, mode="nearest")
    edge = (lab2d != 0) & ((lo != lab2d) | (hi != lab2d))
    rgba = np.zeros((*lab2d.shape, 4), dtype=np.float32)
    for lid in np.unique(lab2d[edge]):
        c = colours.get(int(lid))
        if c is not None:  # unknown ids are not drawn (and not in the legend)
            rgba[edge & (lab2d == lid)] = (*c, 1.0)
    return rgba


def save_qc_png(
    image: sitk.Image,
    labels: sitk.Image,
    path: str | Path,
    *,
    n_slices: int = 4,
    crop: bool = True,
    columns: int = 3,
) -> Path:
    """Write a PNG of ``n_slices`` axial slices with coloured label outlines.

    A volume stored in another axis order (e.g. 3-D coronal) is shown re-stacked into
    axial slices (:func:`myoimg.segment.thigh.axial_order`).

    Panels are laid out on a grid, each cropped to the labelled region (see the module
    docstring for the exact size rule); outlines are ``OUTLINE_PX`` image pixels wide,
    drawn inside each label in its :func:`myoimg.labels.colour_table` colour, with a
    legend of label names. Titles give the slice index ``k`` and the LPS z (mm) of the
    slice centre. Grey levels span the 0.5-99.5 percentiles of the shown (cropped)
    regions, so bright structures outside the crop do not darken the muscles.

    Parameters
    ----------
    image : SimpleITK.Image
        3-D grey-level image (LPS).
    labels : SimpleITK.Image
        Label map on the same grid (myoimg ids); colours from
        :func:`myoimg.labels.colour_table`.
    path : path
        Output PNG; written atomically.
    n_slices : int
        Number of slices, evenly spread over the slices that carry labels (or all).
    crop : bool
        Crop every panel to the labels' bounding box plus ``MARGIN_MM`` (default);
        ``False`` shows the whole field of view.
    columns : int
        Most panels per row (>= 1).

    Returns
    -------
    Path
        The written file.
    """
    if labels.GetSize() == image.GetSize():
        image, labels = _axial(image, labels)
    # Figure + Agg canvas directly: no pyplot global state, no GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    a = sitk.GetArrayFromImage(image).astype(np.float32)
    la = sitk.GetArrayFromImage(labels)
    if a.ndim != 3 or a.shape != la.shape:
        raise ValueError("image must be 3-D and labels must be on the image grid")
    direction = image.GetDirection()
    ks = _spread_slices(la, n_slices)
    n = len(ks)
    colours = colour_table()

    # Display-oriented slices (rows toward +y = posterior, columns toward +x = left).
    imgs = np.stack([_display_slice(a[k], direction) for k in ks])
    labs = np.stack([_display_slice(la[k], direction) for k in ks])
    spacing_rc = _display_spacing(image)
    if crop:
        rs, cs = _crop_box(labs != 0, spacing_rc, MARGIN_MM)
        imgs, labs = imgs[:, rs, cs], labs[:, rs, cs]

    vmin, vmax = _grey_window(imgs)  # from the shown pixels only

    # Layout in PNG pixels (see module docstring).
    h_mm = labs.shape[1] * spacing_rc[0]
    w_mm = labs.shape[2] * spacing_rc[1]
    scale = min(PANEL_MAX_PX[0] / w_mm, PANEL_MAX_PX[1] / h_mm)  # px per mm
    pw = max(1, round(scale * w_mm))
    ph = max(1, round(scale * h_mm))
    n_rows = math.ceil(n / max(1, int(columns)))
    n_cols = math.ceil(n / n_rows)
    present = sorted(int(v) for v in np.unique(labs) if int(v) in BY_ID)  # shown only
    legend_h = LEGEND_PAD_PX + LEGEND_ROW_PX * math.ceil(len(present) / LEGEND_COLUMNS)
    legend_h = legend_h if present else 0
    fig_w = n_cols * pw + (n_cols + 1) * GAP_PX
    fig_h = GAP_PX + n_rows * (TITLE_PX + ph + GAP_PX) + legend_h

    fig = Figure(figsize=(fig_w / DPI, fig_h / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    nx, ny = image.GetSize()[:2]
    for idx, k in enumerate(ks):
        r, c = divmod(idx, n_cols)
        x0 = GAP_PX + c * (pw + GAP_PX)
        top = GAP_PX + r * (TITLE_PX + ph + GAP_PX) + TITLE_PX  # from the figure top
        ax = fig.add_axes((x0 / fig_w, 1.0 - (top + ph) / fig_h, pw / fig_w, ph / fig_h))
        # The axes box has the crop's mm aspect, so aspect="auto" keeps square mm.
        ax.imshow(
            imgs[idx], cmap="gray", vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest"
        )
        ax.imshow(_outline_rgba(labs[idx], colours), aspect="auto", interpolation="nearest")
        z = image.TransformContinuousIndexToPhysicalPoint(
            ((nx - 1) / 2.0, (ny - 1) / 2.0, float(k))
        )[2]
        ax.set_title(f"slice {k}   z = {z:.1f} mm", fontsize=10, pad=4)
        for x, txt, ha in ((0.01, "R", "left"), (0.99, "L", "right")):
            ax.text(
                x,
                0.5,
                txt,
                transform=ax.transAxes,
                color="w",
                fontsize=11,
                ha=ha,
                va="center",
                fontweight="bold",
            )
        ax.set_axis_off()
    if present:
        handles = [Line2D([0], [0], color=colours[v], lw=3) for v in present]
        fig.legend(
            handles,
            [BY_ID[v].name for v in present],
            loc="center",
            bbox_to_anchor=(0.5, legend_h / 2.0 / fig_h),
            ncol=min(LEGEND_COLUMNS, len(present)),
            fontsize=9,
            frameon=False,
            borderaxespad=0.0,
            handlelength=1.5,
            columnspacing=1.2,
        )
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", facecolor="white")
    return path


#: Outline colours of the masks panel of :func:`save_steps_png` (RGB 0-1).
_MASK_COLOURS = {"right leg": (1.0, 0.65, 0.0), "left leg": (0.0, 0.8, 1.0),
                 "inside the muscle fascia": (0.2, 0.9, 0.2), "femur": (1.0, 0.1, 0.1)}


def save_steps_png(
    image: sitk.Image, result, path: str | Path, *, n_slices: int = 3
) -> Path:
    """Write a PNG of the segmentation's intermediate steps on a few axial slices.

    One row per slice (evenly spread over the slices with a thigh), four panels each:
    the image the steps ran on (``result.steps["prepared"]``: after N4 bias correction),
    the masks (each leg's outline, the muscle fascia, the femur), the muscle-group
    compartments of the seed model and watershed (filled, one colour per group of
    :data:`myoimg.segment.compartments.GROUPS`), and the final labels (outlines,
    :func:`myoimg.labels.colour_table`). Radiological display and crop as in
    :func:`save_qc_png` (to the thighs plus ``MARGIN_MM``).

    Parameters
    ----------
    image : SimpleITK.Image
        The segmented image (3-D, LPS); shown where ``prepared`` is missing.
    result : SegmentationResult
        Output of :func:`myoimg.segment.auto.segment_thigh` (its ``steps`` and ``labels``).
    path : path
        Output PNG; written atomically.
    n_slices : int
        Number of slices (rows).

    Returns
    -------
    Path
        The written file.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .compartments import GROUPS

    steps = result.steps
    for key in ("thigh", "femur", "muscle", "compartments"):
        if key not in steps:
            raise ValueError(f"result.steps has no {key!r}: not a segment_thigh result")
    shown = steps.get("prepared", image)
    names = ("thigh", "femur", "muscle", "compartments", "labels")
    shown, *rest = _axial(shown, *(steps[k] for k in names[:-1]), result.labels)
    vols = dict(zip(names, rest, strict=True))
    a = sitk.GetArrayFromImage(shown).astype(np.float32)
    arr = {k: sitk.GetArrayFromImage(v) for k, v in vols.items()}
    direction = shown.GetDirection()
    ks = _spread_slices(arr["thigh"], n_slices)
    n = len(ks)
    disp = {k: np.stack([_display_slice(v[z], direction) for z in ks]) for k, v in arr.items()}
    imgs = np.stack([_display_slice(a[z], direction) for z in ks])
    spacing_rc = _display_spacing(shown)
    rs, cs = _crop_box(disp["thigh"] != 0, spacing_rc, MARGIN_MM)
    imgs = imgs[:, rs, cs]
    disp = {k: v[:, rs, cs] for k, v in disp.items()}
    tab10 = matplotlib.colormaps["tab10"](np.arange(len(GROUPS)) % 10)[:, :3]
    group_rgb = {g + 1: tuple(float(c) for c in rgb) for g, rgb in enumerate(tab10)}
    label_rgb = colour_table()
    h_mm, w_mm = imgs.shape[1] * spacing_rc[0], imgs.shape[2] * spacing_rc[1]
    panel_w = 3.2  # inches
    panel_h = panel_w * h_mm / w_mm
    fig = Figure(figsize=(4 * panel_w, n * (panel_h + 0.35) + 0.9), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    titles = ("image (after N4)", "legs, muscle fascia, femur", "compartments", "labels")
    mask_rgb = dict(enumerate(_MASK_COLOURS.values(), start=1))
    for r, k in enumerate(ks):
        # Grey window per slice (0.5-99.5 percentiles of the shown crop): shading and
        # coverage differ along the stack.
        vmin, vmax = _grey_window(imgs[r])
        for c in range(4):
            ax = fig.add_subplot(n, 4, r * 4 + c + 1)
            ax.imshow(imgs[r], cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
            if c == 1:
                # One overlay per mask: they nest (femur in muscle in leg), so one label
                # image would hide the inner outlines' neighbours.
                for code, m in ((1, disp["thigh"][r] == 1), (2, disp["thigh"][r] == 2),
                                (3, disp["muscle"][r] > 0), (4, disp["femur"][r] > 0)):
                    ax.imshow(_outline_rgba(m.astype(np.int16) * code, mask_rgb),
                              interpolation="nearest")
            elif c == 2:
                g = disp["compartments"][r]
                rgba = np.zeros((*g.shape, 4), dtype=np.float32)
                for gid, rgb in group_rgb.items():
                    rgba[g == gid] = (*rgb, 0.45)
                ax.imshow(rgba, interpolation="nearest")
            elif c == 3:
                ax.imshow(_outline_rgba(disp["labels"][r], label_rgb), interpolation="nearest")
            ax.set_title(f"{titles[c]}  (slice {k})", fontsize=8)
            ax.set_axis_off()
    handles = [Line2D([0], [0], color=v, lw=3) for v in _MASK_COLOURS.values()]
    handles += [Patch(color=group_rgb[i + 1], alpha=0.6) for i in range(len(GROUPS))]
    names = list(_MASK_COLOURS) + list(GROUPS)
    fig.legend(handles, names, loc="lower center", ncol=7, fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.97, bottom=0.9 / fig.get_figheight(),
                        wspace=0.03, hspace=0.12)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=fig.dpi, format="png", facecolor="white")
    return path
