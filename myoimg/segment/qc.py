"""Quality-control picture of a segmentation: axial slices with label outlines.

Display convention: radiological, i.e. the patient's right on the image's left and
anterior at the top, whatever the storage order of the image. This is achieved by
resampling each shown slice onto an LPS-aligned grid (columns toward +x = patient left,
rows toward +y = posterior).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..io.atomic import atomic_path
from ..labels import BY_ID, colour_table

__all__ = ["save_qc_png"]


def _to_lps_axis_aligned(image: sitk.Image, interp) -> sitk.Image:
    """Resample onto an identity-direction grid covering the same region."""
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    if np.allclose(d, np.eye(3), atol=1e-3):
        return image
    size = np.asarray(image.GetSize())
    sp = np.asarray(image.GetSpacing())
    corners = []
    for c in np.ndindex(2, 2, 2):
        idx = np.asarray(c) * (size - 1)
        corners.append(image.TransformContinuousIndexToPhysicalPoint(idx.astype(float).tolist()))
    corners = np.asarray(corners)
    lo, hi = corners.min(0), corners.max(0)
    # Keep the slice count (z spacing as the original) and the in-plane pixel size.
    new_sp = np.array([sp[0], sp[1], sp[2]])
    new_size = np.maximum(np.round((hi - lo) / new_sp).astype(int) + 1, 1)
    return sitk.Resample(
        image, new_size.tolist(), sitk.Transform(), interp, lo.tolist(), new_sp.tolist(),
        np.eye(3).ravel().tolist(), 0.0, image.GetPixelID(),
    )


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

    img = _to_lps_axis_aligned(sitk.Cast(image, sitk.sitkFloat32), sitk.sitkLinear)
    lab = _to_lps_axis_aligned(sitk.Cast(labels, sitk.sitkUInt8), sitk.sitkNearestNeighbor)
    if img is not image and lab.GetSize() != img.GetSize():
        lab = sitk.Resample(lab, img, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    a = sitk.GetArrayFromImage(img)
    la = sitk.GetArrayFromImage(lab)
    has = np.nonzero(la.reshape(la.shape[0], -1).any(1))[0]
    pool = has if has.size else np.arange(a.shape[0])
    n = max(1, min(int(n_slices), pool.size))
    ks = pool[np.linspace(0, pool.size - 1, n).round().astype(int)]
    colours = colour_table()
    vmax = float(np.percentile(a[a > 0], 99.5)) if (a > 0).any() else 1.0
    sp = img.GetSpacing()
    fig = Figure(figsize=(4.0 * n, 4.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)
    for ax, k in zip(axes[0], ks, strict=True):
        # Columns run toward +x (patient left) and rows toward +y (posterior): this is
        # already the radiological view (patient right on the left, anterior on top).
        ax.imshow(a[k], cmap="gray", vmin=0, vmax=vmax, aspect=sp[1] / sp[0],
                  interpolation="nearest")
        rgba = np.zeros((*la[k].shape, 4))
        edges = find_boundaries(la[k], mode="inner")
        for lid in np.unique(la[k][edges]):
            if lid == 0 or lid not in colours:
                continue
            rgba[edges & (la[k] == lid)] = (*colours[int(lid)], 1.0)
        ax.imshow(rgba, aspect=sp[1] / sp[0], interpolation="nearest")
        ax.set_title(f"slice {int(k)}", fontsize=9)
        ax.text(0.02, 0.5, "R", transform=ax.transAxes, color="w", fontsize=10, va="center")
        ax.text(0.96, 0.5, "L", transform=ax.transAxes, color="w", fontsize=10, va="center")
        ax.set_axis_off()
    present = sorted(int(v) for v in np.unique(la) if int(v) in BY_ID)
    if present:
        handles = [Line2D([0], [0], color=colours[v], lw=3) for v in present]
        fig.legend(handles, [BY_ID[v].name for v in present], loc="lower center",
                   ncol=min(8, len(present)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    return path
