"""Rasterise the continuous anatomy on a grid (partial volume) and render images.

Partial volume: every voxel is represented by S sub-samples (a regular 3x3 in-plane
sub-grid, optionally several in z). To keep generation fast, voxels whose centre and
all neighbours share the same tissue (and are far from an oedema boundary) are pure:
their sub-samples all take the centre value; only mixed voxels are sub-sampled. Images
are the mean of the sub-sample signals, so truth fractions and images come from the
same samples.

Oedema edge model: in tissue a region is oedematous or not, so the oedema level of a
sub-sample is a steep sigmoid of the oedema field excess (field minus the muscle's
threshold) with width :data:`OEDEMA_EDGE_WIDTH` (field units). At the patch boundaries the
field gradient is 0.05-0.27 /mm (5th-95th percentile, seeds 1-3, both visits; median
0.14 /mm), so the 10 %-90 % transition is 2 ln(9) x 0.01 / |grad f| = 0.16-0.9 mm (median
0.3 mm) along the gradient, i.e. below the ~1 mm pixel and the 1/3-pixel sub-sample
spacing: the grey rim of an imaged patch is partial volume, not a soft tissue edge.
"Patchy diffuse" oedema comes from the irregular shape of the patches (a smooth random
field above a threshold). Truth: a sub-sample is oedematous when the field excess is > 0
(the sigmoid's 50 % point); truth fractions count such sub-samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from myoimg.labels import MUSCLES
from myoimg.phantom.anatomy import (
    CORTEX,
    FASCIA,
    IMFAT,
    MARROW,
    N_CODES,
    SKIN,
    SUBFAT,
    VESSEL,
    Anatomy,
    classify,
)
from myoimg.phantom.geometry import Grid

__all__ = [
    "Raster",
    "rasterise",
    "render_t2fs",
    "render_t1",
    "render_pet_suv",
    "render_ct",
    "model_suv",
    "bias_field",
    "rician",
]

_MUSCLE_IDS = np.array([m.id for m in MUSCLES])
_IS_MUSCLE = np.zeros(N_CODES, bool)
_IS_MUSCLE[_MUSCLE_IDS] = True
_NO_OEDEMA = np.float16(-60000.0)  # "field minus threshold" of non-oedema-capable points


@dataclass
class Raster:
    """Sub-sampled tissue codes of a grid, stored sparsely.

    Pure voxels are represented by their centre sample; mixed voxels (listed in
    ``mixed``, flat indices into the (K, J, I) grid) by all their S sub-samples.

    Attributes
    ----------
    grid : Grid
    sub : (si, sj, sk) sub-samples per voxel
    codes : (K, J, I) int8 centre tissue code (muscle label id or anatomy tissue code)
    oed : (K, J, I) float16 centre oedema field minus threshold (> 0: oedematous
        muscle; a large negative number where no oedema is possible)
    mixed : (M,) flat indices of the mixed voxels
    mixed_codes : (M, S) int8, mixed_oed : (M, S) float16 sub-sample values
    """

    grid: Grid
    sub: tuple[int, int, int]
    codes: np.ndarray
    oed: np.ndarray
    mixed: np.ndarray
    mixed_codes: np.ndarray
    mixed_oed: np.ndarray

    @property
    def n_sub(self) -> int:
        return int(np.prod(self.sub))

    def voxel_mean(self, fn) -> np.ndarray:
        """Mean over each voxel's sub-samples of fn(codes, oed) (a per-sample signal)."""
        out = np.asarray(fn(self.codes, self.oed), dtype=np.float32).copy()
        if self.mixed.size:
            vals = np.asarray(fn(self.mixed_codes, self.mixed_oed), dtype=np.float32)
            out.reshape(-1)[self.mixed] = vals.mean(axis=-1)
        return out

    def fraction(self, code: int) -> np.ndarray:
        """Partial-volume fraction (0-1) of one tissue code per voxel, (K, J, I) float32."""
        return self.voxel_mean(lambda c, o: c == code)

    def oedema_fraction(self) -> np.ndarray:
        """Fraction of each voxel that is oedematous muscle, (K, J, I) float32."""
        return self.voxel_mean(lambda c, o: o > 0)

    def code_counts(self, where=None) -> np.ndarray:
        """Number of sub-samples per tissue code over the grid, (N_CODES,) int64.

        ``where(codes, oed) -> bool`` restricts the count (e.g. to oedematous samples).
        """
        pure = np.ones(self.codes.size, bool)
        pure[self.mixed] = False
        c = self.codes.reshape(-1)[pure]
        w = None if where is None else where(c, self.oed.reshape(-1)[pure])
        n = np.bincount(c.astype(np.intp), weights=w, minlength=N_CODES) * self.n_sub
        mc = self.mixed_codes.reshape(-1).astype(np.intp)
        mw = None if where is None else where(self.mixed_codes, self.mixed_oed).reshape(-1)
        n = n + np.bincount(mc, weights=mw, minlength=N_CODES)
        return np.round(n).astype(np.int64)

    def code_sums(self, fn) -> np.ndarray:
        """Sum of a per-sample value fn(codes, oed) per tissue code, (N_CODES,) float64."""
        pure = np.ones(self.codes.size, bool)
        pure[self.mixed] = False
        c = self.codes.reshape(-1)[pure]
        v = np.asarray(fn(c, self.oed.reshape(-1)[pure]), dtype=np.float64)
        s = np.bincount(c.astype(np.intp), weights=v, minlength=N_CODES) * self.n_sub
        mv = np.asarray(fn(self.mixed_codes, self.mixed_oed), dtype=np.float64).reshape(-1)
        return s + np.bincount(
            self.mixed_codes.reshape(-1).astype(np.intp), weights=mv, minlength=N_CODES
        )

    def hard_labels(self) -> np.ndarray:
        """Muscle label per voxel: the muscle occupying >= 50 % of it, else 0 (uint8)."""
        out = np.where(_IS_MUSCLE[self.codes.astype(np.intp)], self.codes, 0).astype(np.uint8)
        if self.mixed.size:
            m, S = self.mixed_codes.shape
            flat = np.arange(m)[:, np.newaxis] * N_CODES + self.mixed_codes.astype(np.intp)
            counts = np.bincount(flat.reshape(-1), minlength=m * N_CODES).reshape(m, N_CODES)
            counts[:, ~_IS_MUSCLE] = 0
            best = counts.argmax(axis=1)
            ok = 2 * counts[np.arange(m), best] >= S
            out.reshape(-1)[self.mixed] = np.where(ok, best, 0).astype(np.uint8)
        return out

    def hard_oedema(self) -> np.ndarray:
        """Voxels >= 50 % oedematous muscle (uint8 0/1)."""
        return (self.oedema_fraction() >= 0.5).astype(np.uint8)


def _voxel_points(grid: Grid, body_from_patient: np.ndarray, idx: np.ndarray, offs: np.ndarray):
    """Body-frame points of voxel indices idx (M, 3) (i, j, k) plus offsets (S, 3)."""
    m = (body_from_patient @ grid.affine).astype(np.float32)
    pts = idx[:, np.newaxis, :].astype(np.float32) + offs[np.newaxis, :, :].astype(np.float32)
    return pts @ m[:3, :3].T + m[:3, 3]


def _oedema_field(anat: Anatomy, pts: np.ndarray, codes: np.ndarray) -> np.ndarray:
    out = np.full(codes.shape, _NO_OEDEMA, np.float16)
    p = pts.reshape(-1, 3).astype(np.float32)
    c = codes.reshape(-1)
    o = out.reshape(-1)
    for m in MUSCLES:
        t = anat.disease.threshold[m.id]
        if not np.isfinite(t):
            continue
        sel = np.nonzero(c == m.id)[0]
        if sel.size:
            o[sel] = anat.oedema_fields[m.id](p[sel]) - np.float32(t)
    return out


def rasterise(
    anat: Anatomy,
    grid: Grid,
    body_to_patient: np.ndarray,
    sub: tuple[int, int, int] = (3, 3, 1),
) -> Raster:
    """Partial-volume rasterisation of the anatomy on a session grid.

    Parameters
    ----------
    anat : Anatomy
    grid : Grid in the session's patient LPS space
    body_to_patient : (4, 4) rigid matrix placing the body frame in that space
    sub : sub-samples per voxel along (i, j, k); in k they span the slice thickness
    """
    body_from_patient = np.linalg.inv(body_to_patient)
    nk, nj, ni = grid.shape
    si, sj, sk = sub
    oi = (np.arange(si) + 0.5) / si - 0.5
    oj = (np.arange(sj) + 0.5) / sj - 0.5
    ok = ((np.arange(sk) + 0.5) / sk - 0.5) * (grid.thickness / grid.spacing[2])
    offs = np.stack(np.meshgrid(oi, oj, ok, indexing="ij"), axis=-1).reshape(-1, 3)
    kk, jj, ii = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    idx_all = np.stack([ii, jj, kk], axis=-1).reshape(-1, 3)
    # 1) coarse pass on every 2nd column/row: where a coarse sample and its 8 in-plane
    #    neighbours (+-2 voxels) agree, the voxels around it take its tissue code. Every
    #    thin structure (skin, fascia, septa) separates two different codes, and vessels
    #    and bone are wider than 2 voxels, so nothing is lost.
    coarse = (kk % 1 == 0) & (jj % 2 == 0) & (ii % 2 == 0)
    c_idx = np.nonzero(coarse.reshape(-1))[0]
    c_shape = (nk, (nj + 1) // 2, (ni + 1) // 2)
    cpts = _voxel_points(grid, body_from_patient, idx_all[c_idx], np.zeros((1, 3)))[:, 0, :]
    ccode = classify(anat, cpts).reshape(c_shape)
    del cpts
    cpure = ndimage.maximum_filter(ccode, size=(1, 3, 3), mode="nearest") == ndimage.minimum_filter(
        ccode, size=(1, 3, 3), mode="nearest"
    )
    parent = (kk, jj // 2, ii // 2)
    centre = ccode[parent].reshape(-1)
    todo = np.nonzero(~cpure[parent].reshape(-1))[0]
    for start in range(0, todo.size, 400000):
        sel = todo[start : start + 400000]
        pts = _voxel_points(grid, body_from_patient, idx_all[sel], np.zeros((1, 3)))[:, 0, :]
        centre[sel] = classify(anat, pts)
    # 2) oedema field at every muscle voxel centre (smooth; cheap)
    c_oed = np.full(centre.shape, _NO_OEDEMA, np.float16)
    musc = np.nonzero(_IS_MUSCLE[centre.astype(np.intp)])[0]
    for start in range(0, musc.size, 400000):
        sel = musc[start : start + 400000]
        pts = _voxel_points(grid, body_from_patient, idx_all[sel], np.zeros((1, 3)))[:, 0, :]
        c_oed[sel] = _oedema_field(anat, pts, centre[sel])
    centre = centre.reshape(grid.shape)
    c_oed = c_oed.reshape(grid.shape)
    size = (3 if sk > 1 else 1, 3, 3)
    code_mixed = ndimage.maximum_filter(
        centre, size=size, mode="nearest"
    ) != ndimage.minimum_filter(centre, size=size, mode="nearest")
    # oedema boundary near the voxel: field within ~0.4 of the threshold (the tissue
    # code is pure there unless code_mixed, so only the oedema field is sub-sampled)
    oed_mixed = np.abs(c_oed.astype(np.float32)) < 0.4
    mix_idx = np.nonzero((code_mixed | oed_mixed).reshape(-1))[0]
    need_codes = code_mixed.reshape(-1)[mix_idx]
    S = offs.shape[0]
    m_codes = np.repeat(centre.reshape(-1)[mix_idx, np.newaxis], S, axis=1)
    m_oed = np.empty((mix_idx.size, S), np.float16)
    step = max(1, 400000 // S)
    for start in range(0, mix_idx.size, step):
        sel = slice(start, start + step)
        pts = _voxel_points(grid, body_from_patient, idx_all[mix_idx[sel]], offs)
        nc = np.nonzero(need_codes[sel])[0]
        block = m_codes[sel]
        if nc.size:
            block[nc] = classify(anat, pts[nc])
        m_oed[sel] = _oedema_field(anat, pts, block)
    return Raster(grid, sub, centre, c_oed, mix_idx, m_codes, m_oed)


# ----------------------------------------------------------------------------- contrast


def _lut(values: dict[int, float], muscle: float) -> np.ndarray:
    lut = np.zeros(N_CODES, np.float32)
    lut[_MUSCLE_IDS] = muscle
    for k, v in values.items():
        lut[k] = v
    return lut


def _per_label(values: dict[int, float]) -> np.ndarray:
    lut = np.zeros(N_CODES, np.float32)
    for k, v in values.items():
        lut[k] = v
    return lut


#: Width (field units) of the oedema edge sigmoid. Measured boundary gradients of the
#: oedema fields are 0.05-0.27 /mm, so the 10 %-90 % transition (2 ln 9 x width / |grad|)
#: is <= ~0.9 mm: a sharp tissue edge whose grey rim in the image is partial volume only.
#: (It was 0.12, a 4 mm median / 10 mm worst-case soft rim lying outside the truth.)
OEDEMA_EDGE_WIDTH = 0.01


def _oedema_level(oed: np.ndarray) -> np.ndarray:
    """Oedema level 0-1 of sub-samples from their field excess (0.5 at the truth boundary)."""
    f = oed.astype(np.float32)
    return 1.0 / (1.0 + np.exp(np.clip(-f / OEDEMA_EDGE_WIDTH, -50, 50)))


#: T2-FS (STIR) signal relative to normal muscle: fat suppressed, vessels bright.
T2FS_CONTRAST = {SKIN: 0.55, SUBFAT: 0.12, FASCIA: 0.15, IMFAT: 0.12, CORTEX: 0.02,
                 MARROW: 0.10, VESSEL: 2.2}  # fmt: skip
#: T1 TSE signal relative to fat: fat and marrow bright, muscle dark, flow void.
T1_CONTRAST = {SKIN: 0.5, SUBFAT: 1.0, FASCIA: 0.3, IMFAT: 1.0, CORTEX: 0.02,
               MARROW: 0.92, VESSEL: 0.1}  # fmt: skip
#: SUV of non-muscle tissue (FAPI): fat low, bone low, blood pool ~1.5.
SUV_TISSUE = {SKIN: 0.6, SUBFAT: 0.3, FASCIA: 0.4, IMFAT: 0.3, CORTEX: 0.3, MARROW: 0.5,
              VESSEL: 1.5}  # fmt: skip
#: CT numbers (HU).
HU_TISSUE = {0: -1000.0, SKIN: 30.0, SUBFAT: -100.0, FASCIA: -60.0, IMFAT: -100.0,
             CORTEX: 1200.0, MARROW: -30.0, VESSEL: 40.0}  # fmt: skip


def render_t2fs(r: Raster, anat: Anatomy) -> np.ndarray:
    """Noise-free T2-FS signal (muscle = 1) per voxel, (K, J, I) float32.

    Oedematous muscle is 1.6-2.6x muscle: the ratio grows from the per-muscle low to
    high value with the field excess (brighter patch centres), with a sharp edge
    (:data:`OEDEMA_EDGE_WIDTH`).
    """
    lut = _lut(T2FS_CONTRAST, 1.0)
    for k, f in anat.muscle_signal.items():  # healthy muscles differ slightly
        lut[k] = f
    lo = _per_label({k: v[0] for k, v in anat.disease.t2_ratio.items()})
    hi = _per_label({k: v[1] for k, v in anat.disease.t2_ratio.items()})

    def sig(codes, oed):
        c = codes.astype(np.intp)
        ratio = lo[c] + (hi[c] - lo[c]) * np.clip(oed.astype(np.float32), 0.0, 1.0)
        return lut[c] * (1.0 + (ratio - 1.0) * _oedema_level(oed))

    return r.voxel_mean(sig)


def render_t1(r: Raster, anat: Anatomy | None = None) -> np.ndarray:
    """Noise-free T1 TSE signal (fat = 1) per voxel (oedema slightly darkens muscle)."""
    lut = _lut(T1_CONTRAST, 0.33)
    if anat is not None:
        for k, f in anat.muscle_signal.items():
            lut[k] = 0.33 * f
    return r.voxel_mean(lambda c, o: lut[c.astype(np.intp)] * (1.0 - 0.12 * _oedema_level(o)))


def model_suv(codes: np.ndarray, oed: np.ndarray, anat: Anatomy) -> np.ndarray:
    """Model SUV of sub-samples: tissue value, or healthy -> inflamed with the oedema level."""
    lut = _lut(SUV_TISSUE, 0.0)
    h = _per_label(anat.disease.suv_healthy)
    inf = _per_label(anat.disease.suv_inflamed)
    c = codes.astype(np.intp)
    return np.where(_IS_MUSCLE[c], h[c] + (inf[c] - h[c]) * _oedema_level(oed), lut[c])


def render_pet_suv(r: Raster, anat: Anatomy) -> np.ndarray:
    """Noise-free, unblurred SUV per voxel (partial-volume mean of the model SUV)."""
    return r.voxel_mean(lambda c, o: model_suv(c, o, anat))


def render_ct(r: Raster) -> np.ndarray:
    """Noise-free CT number per voxel (HU); oedematous muscle 10 HU lower."""
    lut = _lut(HU_TISSUE, 50.0)

    def hu(codes, oed):
        c = codes.astype(np.intp)
        return lut[c] - 10.0 * _oedema_level(oed) * _IS_MUSCLE[c]

    return r.voxel_mean(hu)


def bias_field(shape: tuple[int, int, int], rng: np.random.Generator, amplitude: float = 0.3):
    """Smooth multiplicative field within 1 +/- amplitude (receive-coil profile)."""
    nk, nj, ni = shape
    z = np.linspace(-1, 1, nk)[:, None, None]
    y = np.linspace(-1, 1, nj)[None, :, None]
    x = np.linspace(-1, 1, ni)[None, None, :]
    f = np.zeros(shape, np.float32)
    for _ in range(4):  # separable products: cheap on large grids
        kx, ky, kz = rng.uniform(0.3, 1.4, 3) * np.array([1, 1, 0.5])
        fx = np.cos(np.pi * (kx * x + rng.uniform(-1, 1)))
        fy = np.cos(np.pi * (ky * y + rng.uniform(-1, 1)))
        fz = np.cos(kz * z + rng.uniform(0, 2 * np.pi))
        f += (fz * fy * fx).astype(np.float32)
    f /= np.abs(f).max() + 1e-9
    return (1.0 + amplitude * f).astype(np.float32)


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise (Rician statistics)."""
    n1 = rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    n2 = rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    return np.sqrt((signal + n1) ** 2 + n2**2)


def blur_mm(image: np.ndarray, grid: Grid, fwhm_mm: float) -> np.ndarray:
    """Isotropic Gaussian blur of a (K, J, I) image given the FWHM in mm."""
    sigma_mm = fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    di, dj, dk = grid.spacing
    return ndimage.gaussian_filter(
        image, sigma=(sigma_mm / dk, sigma_mm / dj, sigma_mm / di), mode="constant"
    )
