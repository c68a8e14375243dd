"""Plausibility checks on a quadriceps label map, whatever made it (automatic, imported,
propagated): gross left/right disagreements are more often segmentation errors than
anatomy, and a reader should look at the QC overlay before trusting the numbers.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from myoimg import labels as vocab

__all__ = ["MAX_SIDE_RATIO", "head_volumes_ml", "label_warnings"]

# Left/right volume ratio of one quadriceps head above which the label map is flagged.
# Thigh muscle volumes of the two sides differ by a few to ~30 % in healthy adults and in
# most myopathies (fat-replaced muscle keeps its outline and stays labelled); a head twice
# the size of its partner means a leg was missed on some slices or a neighbour was
# absorbed. The generated reference study's truth reaches 1.84 (its anatomy is jittered per
# leg), the real development case's 1.23.
MAX_SIDE_RATIO = 2.0


def head_volumes_ml(labels: sitk.Image) -> dict[str, float]:
    """Volume (mL) of each quadriceps head (``R_VL`` ... ``L_RF``) in a label map."""
    arr = sitk.GetArrayViewFromImage(labels).ravel().astype(np.int64).clip(0)
    counts = np.bincount(arr, minlength=max(m.id for m in vocab.QUADRICEPS) + 1)
    voxel_ml = float(np.prod(labels.GetSpacing())) / 1000.0
    return {m.name: float(counts[m.id]) * voxel_ml for m in vocab.QUADRICEPS}


def label_warnings(labels: sitk.Image, max_ratio: float = MAX_SIDE_RATIO) -> list[str]:
    """Warnings about a quadriceps label map (project label ids), empty when it looks sound.

    Parameters
    ----------
    labels : SimpleITK.Image
        Label map with the project's ids (1 R_VL ... 8 L_RF).
    max_ratio : float
        Largest plausible ratio of one head's volumes between the two sides (> 1).

    Returns
    -------
    list of str
        One sentence per finding: a head much larger on one side than on the other, or a
        head labelled on one side only while that leg's other heads are labelled.
    """
    if not max_ratio > 1.0:
        raise ValueError(f"max_ratio must be > 1, got {max_ratio!r}")
    vol = head_volumes_ml(labels)
    leg = {s: any(vol[n] > 0 for n in vol if n.startswith(s + "_")) for s in "RL"}
    out = []
    for head in ("VL", "VM", "VI", "RF"):
        r, l_ = vol[f"R_{head}"], vol[f"L_{head}"]
        if r > 0 and l_ > 0:
            big, small = (("R", r), ("L", l_)) if r >= l_ else (("L", l_), ("R", r))
            if big[1] > max_ratio * small[1]:
                out.append(
                    f"{big[0]}_{head} is {big[1] / small[1]:.1f}x {small[0]}_{head} "
                    f"({big[1]:.4g} vs {small[1]:.4g} mL): a difference this large is more "
                    "often a segmentation error than anatomy; check the QC overlay"
                )
        elif leg["R"] and leg["L"] and (r > 0) != (l_ > 0):
            have, miss = ("R", "L") if r > 0 else ("L", "R")
            out.append(
                f"{miss}_{head} is not labelled while {have}_{head} is: check the label map"
            )
    return out
