"""Quality-control picture of a segmentation: axial slices with label outlines.

Display convention: radiological, i.e. the patient's right on the image's left and
anterior at the top, whatever the storage order of the image. Each shown slice is
flipped/transposed (never resampled) so that columns run toward +x (patient left) and
rows toward +y (posterior) in LPS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..io.atomic import atomic_path
from ..labels import BY_ID, colour_table

__all__ = ["save_qc_png"]


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


def save_qc_png(
    image: sitk.Image, labels: sitk.Image, path: str | Path, *, n_slices: int = 4
) -> Path:
    """Write a PNG of ``n_slices`` axial slices with coloured label outlines.

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

    Returns
    -------
    Path
        The written file.
    """
    # Figure + Agg canvas directly: no pyplot global state, no GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from skimage.segmentation import find_boundaries

    a = sitk.GetArrayFromImage(image).astype(np.float32)
    la = sitk.GetArrayFromImage(labels)
    if a.shape != la.shape:
        raise ValueError("labels must be on the image grid")
    direction = image.GetDirection()
    has = np.nonzero(la.reshape(la.shape[0], -1).any(1))[0]
    pool = has if has.size else np.arange(a.shape[0])
    n = max(1, min(int(n_slices), pool.size))
    ks = pool[np.linspace(0, pool.size - 1, n).round().astype(int)]
    colours = colour_table()
    vmax = float(np.percentile(a[a > 0], 99.5)) if (a > 0).any() else 1.0
    sp = image.GetSpacing()
    d = np.asarray(direction).reshape(3, 3)
    transposed = abs(d[1, 0]) > abs(d[0, 0])
    # Pixel aspect (row height / column width) after the display flips/transpose.
    aspect = sp[0] / sp[1] if transposed else sp[1] / sp[0]
    fig = Figure(figsize=(4.0 * n, 4.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)
    for ax, k in zip(axes[0], ks, strict=True):
        # After _display_slice columns run toward +x (patient left) and rows toward +y
        # (posterior): the radiological view, patient right on the left, anterior on top.
        ax.imshow(
            _display_slice(a[k], direction),
            cmap="gray",
            vmin=0,
            vmax=vmax,
            aspect=aspect,
            interpolation="nearest",
        )
        lk = _display_slice(la[k], direction)
        rgba = np.zeros((*lk.shape, 4))
        edges = find_boundaries(lk, mode="inner")
        for lid in np.unique(lk[edges]):
            if lid == 0 or lid not in colours:
                continue
            rgba[edges & (lk == lid)] = (*colours[int(lid)], 1.0)
        ax.imshow(rgba, aspect=aspect, interpolation="nearest")
        ax.set_title(f"slice {int(k)}", fontsize=9)
        ax.text(0.02, 0.5, "R", transform=ax.transAxes, color="w", fontsize=10, va="center")
        ax.text(0.96, 0.5, "L", transform=ax.transAxes, color="w", fontsize=10, va="center")
        ax.set_axis_off()
    present = sorted(int(v) for v in np.unique(la) if int(v) in BY_ID)
    if present:
        handles = [Line2D([0], [0], color=colours[v], lw=3) for v in present]
        fig.legend(
            handles,
            [BY_ID[v].name for v in present],
            loc="lower center",
            ncol=min(8, len(present)),
            fontsize=7,
            frameon=False,
        )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    return path
