"""QC picture: crop to the labels, grid layout, outline width/colours, window, orientation."""

from __future__ import annotations

import math

import matplotlib.image as mpimg
import numpy as np
import pytest
import SimpleITK as sitk

from myoimg.labels import colour_table
from myoimg.segment.qc import _outline_rgba, save_qc_png

SIZE = (256, 256, 6)  # (i, j, k)
TISSUE, MUSCLE, BLOB = 10.0, 100.0, 1000.0


def _lps_points(img: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LPS (x, y, z) in mm of every voxel centre, arrays (k, j, i): origin + D @ (sp * idx)."""
    nx, ny, nz = img.GetSize()
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    idx = np.stack([i, j, k], -1) * np.asarray(img.GetSpacing())
    d = np.asarray(img.GetDirection()).reshape(3, 3)
    p = idx @ d.T + np.asarray(img.GetOrigin())
    return p[..., 0], p[..., 1], p[..., 2]


def _phantom(
    discs,
    *,
    spacing=(0.8, 1.25, 5.0),
    direction=None,
    origin=(-100.0, -150.0, 20.0),
    blob=None,
    slices=(1, 2, 3, 4),
):
    """Grey image + labels: discs = [(label, x_mm, y_mm, r_mm)] on ``slices``; a bright
    square blob = (x_lo, x_hi, y_lo, y_hi) mm on every slice."""
    img = sitk.Image(SIZE, sitk.sitkFloat32)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(tuple(np.asarray(direction, float).ravel()))
    x, y, z = _lps_points(img)
    a = np.full(x.shape, TISSUE, np.float32)
    lab = np.zeros(x.shape, np.uint8)
    on = np.zeros(x.shape, bool)
    on[list(slices)] = True
    for lid, cx, cy, r in discs:
        inside = ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) & on
        lab[inside] = lid
        a[inside] = MUSCLE
    if blob is not None:
        x0, x1, y0, y1 = blob
        a[(x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)] = BLOB
    image = sitk.GetImageFromArray(a)
    image.CopyInformation(img)
    labels = sitk.GetImageFromArray(lab)
    labels.CopyInformation(img)
    return image, labels, lab


def _expected_layout(lab_kji, spacing, n_shown, columns, n_legend, crop=True):
    """PNG (height, width) and scale (px/mm) by the layout rule of myoimg/segment/qc.py's
    docstring: 10 mm margin, panel fitted in 800 x 640 px at the mm aspect, 8 px gaps,
    30 px titles, legend 14 + 24 px per 8 names. Identity-like direction: rows = j,
    columns = i."""
    ny, nx = lab_kji.shape[1:]
    if crop and lab_kji.any():
        jj = np.nonzero(lab_kji.any(axis=(0, 2)))[0]
        ii = np.nonzero(lab_kji.any(axis=(0, 1)))[0]
        mj, mi = math.ceil(10 / spacing[1]), math.ceil(10 / spacing[0])
        rows_px = min(ny, jj[-1] + 1 + mj) - max(0, jj[0] - mj)
        cols_px = min(nx, ii[-1] + 1 + mi) - max(0, ii[0] - mi)
    else:
        rows_px, cols_px = ny, nx
    w_mm, h_mm = cols_px * spacing[0], rows_px * spacing[1]
    s = min(800 / w_mm, 640 / h_mm)
    pw, ph = round(s * w_mm), round(s * h_mm)
    n_rows = math.ceil(n_shown / columns)
    n_cols = math.ceil(n_shown / n_rows)
    legend = 14 + 24 * math.ceil(n_legend / 8) if n_legend else 0
    return (8 + n_rows * (30 + ph + 8) + legend, n_cols * pw + (n_cols + 1) * 8), s


def _expected_shape(*args, **kwargs):
    return _expected_layout(*args, **kwargs)[0]


def _colour_mask(png: np.ndarray, lid: int) -> np.ndarray:
    c = np.asarray(colour_table()[lid])
    return np.all(np.abs(png[..., :3] - c) < 1.0 / 255, axis=-1)


# Two thighs: label 1 (R_VL) at patient right (x < 0), 5 (L_VL) at patient left; a bright
# blob far away (posterior, patient left) outside the labels and their margin.
TWO = [(1, -50.0, -45.0, 25.0), (5, 50.0, -45.0, 25.0)]
FAR_BLOB = (60.0, 95.0, 100.0, 150.0)


@pytest.mark.parametrize(
    ("n_slices", "columns", "grid"),
    [(4, 3, (2, 2)), (5, 3, (2, 3)), (3, 3, (1, 3)), (2, 1, (2, 1))],
)
def test_png_size_follows_layout(tmp_path, n_slices, columns, grid):
    image, labels, lab = _phantom(TWO, blob=FAR_BLOB, slices=range(6))
    out = save_qc_png(
        image, labels, tmp_path / "qc" / "seg.png", n_slices=n_slices, columns=columns
    )
    assert out.is_file()
    assert not [p for p in out.parent.iterdir() if p.name != "seg.png"]  # no temp left
    png = mpimg.imread(out)
    exp = _expected_shape(lab, (0.8, 1.25), n_slices, columns, n_legend=2)
    assert png.shape[:2] == exp
    # Sanity of the rule itself: the pair of discs (100 + 2*25 mm + 20 mm margins = 170 mm
    # wide, 70 mm tall) fills the 800 px panel width.
    n_rows, n_cols = grid
    assert exp[1] == n_cols * 800 + (n_cols + 1) * 8
    assert _colour_mask(png, 1).any() and _colour_mask(png, 5).any()


def test_crop_window_and_aspect_with_labels_on_one_side(tmp_path):
    # One disc at patient right (shown on the image's left); a large bright blob at
    # patient left, 2.4 % of the voxels: with a whole-volume window the disc would be
    # 100/1000 grey; with the crop window it is white.
    image, labels, lab = _phantom([(1, -50.0, 0.0, 25.0)], blob=(40.0, 72.0, 0.0, 50.0))
    a = sitk.GetArrayFromImage(image)
    assert (a == BLOB).mean() > 0.005 and np.percentile(a, 99.5) == BLOB  # the trap is set
    out = save_qc_png(image, labels, tmp_path / "one.png", n_slices=1)
    png = mpimg.imread(out)
    shape, scale = _expected_layout(lab, (0.8, 1.25), 1, 3, n_legend=1)
    assert png.shape[:2] == shape  # cropped around the disc: the blob is left out
    ph, pw = shape[0] - 8 - 30 - 8 - 38, shape[1] - 16  # the single panel (no legend)
    orange = _colour_mask(png, 1)
    orange[38 + ph :] = False  # the legend's R_VL line
    assert orange.sum() > 100
    rr, cc = np.nonzero(orange)
    # The disc's outline is a circle in mm: as wide as tall in the PNG despite the
    # 0.8 x 1.25 mm pixels (pixel aspect kept), 50 mm across (+- one 1.25 mm pixel).
    width, height = cc.max() - cc.min() + 1, rr.max() - rr.min() + 1
    assert abs(width - height) <= 1.25 * scale + 2
    assert width == pytest.approx(50 * scale, abs=1.25 * scale + 2)
    assert height == pytest.approx(50 * scale, abs=1.25 * scale + 2)
    # Window set by the shown region: disc interior white, surrounding tissue black.
    assert np.all(png[int(rr.mean()), int(cc.mean()), :3] > 0.95)
    assert np.all(png[int(rr.mean()), cc.min() - 8, :3] < 0.05)
    # No saturated blob in the panel: white pixels outside the disc are only the
    # "R"/"L" letters (a few hundred pixels; the blob would be > 30 x 30 mm * scale^2).
    panel = png[38 : 38 + ph, 8 : 8 + pw, :3].mean(-1) > 0.95
    panel[rr.min() - 38 : rr.max() - 37, cc.min() - 8 : cc.max() - 7] = False
    assert panel.sum() < 600 < (30 * scale) ** 2


def test_radiological_orientation_of_flipped_storage(tmp_path):
    """i toward -x and j toward -y in storage: patient right still on the image's left,
    anterior still on top."""
    flipped = np.diag([-1.0, -1.0, 1.0])
    discs = [(1, -50.0, -20.0, 20.0), (6, 50.0, -20.0, 20.0), (4, -50.0, -60.0, 8.0)]
    image, labels, _ = _phantom(discs, direction=flipped, origin=(100.0, 150.0, 0.0))
    out = save_qc_png(image, labels, tmp_path / "flip.png", n_slices=2)
    png = mpimg.imread(out)
    r_vl, l_vm, r_rf = (np.nonzero(_colour_mask(png, lid)) for lid in (1, 6, 4))
    panel_w = png.shape[1] // 2
    r_vl_c = r_vl[1][r_vl[1] < panel_w]  # first panel only
    l_vm_c = l_vm[1][l_vm[1] < panel_w]
    assert r_vl_c.size and l_vm_c.size
    assert r_vl_c.mean() < l_vm_c.mean()  # patient right on the image's left
    assert r_rf[0].mean() < r_vl[0].mean()  # anterior (smaller y) on top


def test_titles_give_slice_index_and_z_of_slice_centre(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    titles = []
    orig = Axes.set_title

    def spy(self, label, *args, **kwargs):
        titles.append(label)
        return orig(self, label, *args, **kwargs)

    monkeypatch.setattr(Axes, "set_title", spy)
    t = np.deg2rad(20.0)  # oblique: tilted about x, so z varies along j
    tilt = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    image, labels, lab = _phantom([(1, -50.0, 0.0, 25.0)], direction=tilt, slices=(1, 4))
    save_qc_png(image, labels, tmp_path / "t.png", n_slices=2)
    origin = np.array([-100.0, -150.0, 20.0])
    sp = np.array([0.8, 1.25, 5.0])
    for title, k in zip(titles, (1, 4), strict=True):
        centre = origin + tilt @ (sp * np.array([127.5, 127.5, k]))
        assert title.startswith(f"slice {k} ")
        assert f"z = {centre[2]:.1f} mm" in title
    assert len(titles) == 2


def test_no_labels_shows_whole_slice_without_legend(tmp_path):
    image, labels, lab = _phantom([], blob=FAR_BLOB)
    png = mpimg.imread(save_qc_png(image, labels, tmp_path / "empty.png", n_slices=4))
    assert png.shape[:2] == _expected_shape(lab, (0.8, 1.25), 4, 3, n_legend=0)
    # crop=False on a labelled image also shows the whole slice (with the legend).
    image, labels, lab = _phantom(TWO)
    png = mpimg.imread(save_qc_png(image, labels, tmp_path / "full.png", crop=False))
    assert png.shape[:2] == _expected_shape(lab, (0.8, 1.25), 4, 3, n_legend=2, crop=False)


def test_outline_is_two_pixels_wide_inside_each_label():
    lab = np.zeros((20, 30), np.uint8)
    lab[5:15, 5:15] = 2  # 10 x 10 square
    lab[5:15, 15:25] = 8  # touching square of another label
    rgba = _outline_rgba(lab, colour_table())
    on = rgba[..., 3] > 0
    # Each square: 100 pixels minus its 6 x 6 core = 64 outline pixels, inside itself.
    assert on[lab == 2].sum() == 64 and on[lab == 8].sum() == 64
    assert not on[lab == 0].any()
    assert np.allclose(rgba[5, 5, :3], colour_table()[2])
    assert np.allclose(rgba[5, 24, :3], colour_table()[8])
    assert not on[9, 9] and not on[9, 10]  # core (distance 3 from the edge) stays clear
    assert on[9, 13] and on[9, 14] and not on[9, 12]  # 2 px at the shared edge
