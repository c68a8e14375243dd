"""Which way round are fat and muscle? Contrast family from the header or the image.

Two families matter for segmentation: ``"fatsup"`` (fat dark: T2 fat-suppressed, STIR,
TIRM, SPAIR, Dixon water) and ``"t1"`` (fat bright: T1, Dixon fat / in-phase, T2 without
fat suppression).
"""

from __future__ import annotations

import re

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

__all__ = ["detect_contrast", "normalise_contrast", "CONTRAST_ALIASES"]

#: User-facing names accepted by ``segment_thigh(contrast=...)`` -> family.
CONTRAST_ALIASES: dict[str, str] = {
    "fatsup": "fatsup",
    "t2fs": "fatsup",
    "t2-fs": "fatsup",
    "stir": "fatsup",
    "tirm": "fatsup",
    "spair": "fatsup",
    "water": "fatsup",
    "dixon_water": "fatsup",
    "t1": "t1",
    "fat": "t1",
    "dixon_fat": "t1",
    "inphase": "t1",
    "in-phase": "t1",
    "t2": "t1",
}

# Tokens in SeriesDescription / ProtocolName / SequenceName, checked in this order:
# fat-suppression words win over "fat" (e.g. "T2 FS", "fat sat").
_FATSUP = [
    (r"\bstir\b", "STIR"),
    (r"tirm", "TIRM"),
    (r"spair", "SPAIR"),
    (r"\bspir\b", "SPIR"),
    (r"fat[ _-]?sat|fatsat|fat[ _-]?supp", "fat-saturated"),
    (r"(?<![a-z])fs(?![a-z])", "fat-suppressed"),
    (r"(?<![a-z0-9])w(?![a-z0-9])|water", "Dixon water"),
]
_T1 = [
    (r"(?<![a-z])t1", "T1"),
    # GE "InPhase", Philips mDIXON "IP", Siemens Dixon "_IN" (a bare "in" only next to
    # "dixon": elsewhere it is an English word)
    (r"in[ _-]?phase|(?<![a-z])ip(?![a-z])|dixon.*(?<![a-z0-9])in(?![a-z0-9])", "in-phase"),
    (r"(?<![a-z0-9])f(?![a-z0-9])|\bfat\b", "Dixon fat"),
]


#: Subcutaneous fat over the deep thigh's median (mostly muscle) above which an image is
#: fat-bright (T1-like).
FAT_OVER_MUSCLE = 1.15
#: The deep thigh's 95th percentile over the subcutaneous fat below which an image is
#: fat-bright even when fat and deep thigh are alike (muscles mostly fat-replaced). On
#: fat-suppressed images muscle, oedema and vessels are several times brighter than the
#: suppressed fat (real Dixon water case of a dystrophy 2.9, with its quadriceps made
#: fat-like 2.3; generated STIR 8-18); on fat-bright ones fat and fatty marrow are the
#: brightest tissue (generated T1 1.0-1.4; a T1-like copy of the real case 1.3).
BRIGHTEST_OVER_FAT = 1.8
#: ...provided the subcutaneous ring is clearly brighter than the deep thigh's darker
#: quarter (its remaining muscle on a fat-bright image): on a lean patient's
#: fat-suppressed image the 3-8 mm ring is partly muscle and nothing deep outshines it
#: either, but it is no brighter than the deep muscle. Measured ring / lower quartile:
#: fat-suppressed real case 1.25, generated STIR 0.15-0.36; T1-like copy of the real case
#: 1.63, generated T1 2.2-3.2.
FAT_OVER_DARK_QUARTER = 1.4


def normalise_contrast(name: str) -> str:
    """Map a user-facing contrast name to its family; raise ValueError when unknown."""
    key = name.strip().lower()
    if key not in CONTRAST_ALIASES:
        raise ValueError(
            f"unknown contrast {name!r}; use 'auto' or one of {sorted(CONTRAST_ALIASES)}"
        )
    return CONTRAST_ALIASES[key]


def _from_header(header) -> tuple[str, str] | None:
    opts = getattr(header, "ScanOptions", None)
    if opts is not None:
        items = [str(o).upper() for o in (opts if isinstance(opts, (list, tuple)) else [opts])]
        items = [p for o in items for p in re.split(r"[\\/ ,]+", o)]
        if "FS" in items or "IR" in items:
            return "fatsup", f"ScanOptions (0018,0022) contains {'FS' if 'FS' in items else 'IR'}"
    for kw in ("SeriesDescription", "ProtocolName", "SequenceName"):
        text = str(getattr(header, kw, "") or "").lower()
        if not text:
            continue
        for pat, name in _FATSUP:
            if re.search(pat, text):
                return "fatsup", f"{kw} mentions {name}"
        for pat, name in _T1:
            if re.search(pat, text):
                return "t1", f"{kw} mentions {name}"
    return None


def _from_image(image: sitk.Image, body: np.ndarray | None = None) -> tuple[str, str]:
    arr = sitk.GetArrayViewFromImage(image).astype(np.float32)
    sp = image.GetSpacing()
    if body is None:
        from .thigh import body_mask  # local: avoid a cycle at import time

        body = body_mask(arr, (sp[0], sp[1]))
    ring_vals, deep_vals = [], []
    for k in range(arr.shape[0]):
        if not body[k].any():
            continue
        depth = ndi.distance_transform_edt(body[k], sampling=(sp[1], sp[0]))
        # Subcutaneous fat: the outer 3-8 mm of the limb (skin excluded); the deep thigh
        # (beyond 25 mm) is mostly muscle in every adult thigh.
        ring_vals.append(arr[k][(depth > 3.0) & (depth < 8.0)])
        deep_vals.append(arr[k][depth > 25.0])
    if not ring_vals or sum(v.size for v in deep_vals) == 0:
        return "fatsup", "no body found in the image; assumed fat-suppressed"
    ring = float(np.median(np.concatenate(ring_vals)))
    deep_all = np.concatenate(deep_vals)
    low, deep, top = (float(v) for v in np.percentile(deep_all, [25, 50, 95]))
    ratio = ring / max(deep, 1e-6)
    if ratio > FAT_OVER_MUSCLE:
        return "t1", f"image: subcutaneous fat brighter than muscle (ratio {ratio:.2f})"
    over = top / max(ring, 1e-6)
    if over < BRIGHTEST_OVER_FAT and ring > FAT_OVER_DARK_QUARTER * low:
        return "t1", (
            f"image: subcutaneous fat about as bright as the deep thigh (ratio {ratio:.2f}), "
            f"but nothing there much brighter than it (95th percentile {over:.2f} x the fat): "
            "fat-bright, with much of the muscle fat-replaced"
        )
    return "fatsup", (
        f"image: subcutaneous fat not brighter than muscle (ratio {ratio:.2f}; the deep "
        f"thigh's 95th percentile {over:.2f} x the fat)"
    )


def detect_contrast(
    image: sitk.Image, header=None, body: np.ndarray | None = None
) -> tuple[str, str]:
    """Contrast family (``"fatsup"`` or ``"t1"``) and the reason for the decision.

    The header decides when it names the sequence (ScanOptions FS/IR; descriptions with
    STIR/TIRM/SPAIR/FS/water vs T1/fat/in-phase); otherwise the image decides: fat bright
    relative to the deep thigh (mostly muscle) means a T1-like contrast, and so does fat
    that nothing in the deep thigh much outshines (a T1 of fat-replaced muscles; see
    FAT_OVER_MUSCLE and BRIGHTEST_OVER_FAT). Subcutaneous fat: the outer 3-8 mm of the
    body outline; deep thigh: more than 25 mm inside it. ``body``: the
    (k, j, i) body mask of ``image`` when the caller has it
    (:func:`myoimg.segment.thigh.body_mask`); computed here otherwise.
    """
    if header is not None:
        got = _from_header(header)
        if got is not None:
            return got
    return _from_image(image, body)
