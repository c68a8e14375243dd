"""Shared vocabulary: label ids, muscle names, sides and display colours.

Every stage (phantom truth, segmentation, quantification, reports) uses these ids.
R/L are the *patient's* right and left. In DICOM LPS patient space, patient right
is toward -x (x increases toward the patient's left).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Muscle",
    "MUSCLES",
    "QUADRICEPS",
    "BY_NAME",
    "BY_ID",
    "label_name",
    "label_id",
    "colour_table",
]


@dataclass(frozen=True)
class Muscle:
    """One entry of the label table."""

    id: int
    name: str  # short name used as key in every output, e.g. "R_VL"
    full_name: str  # e.g. "right vastus lateralis"
    side: str  # "R" or "L" (patient side)
    group: str  # "VL", "VM", "VI", "RF", "SAR", "GRA", "ADD", "HAM"
    colour: tuple[int, int, int]  # 0-255 RGB, Okabe-Ito based (colour-blind safe)

    @property
    def is_quadriceps(self) -> bool:
        return self.group in ("VL", "VM", "VI", "RF")


# Okabe-Ito palette: distinguishable for common colour-vision deficiencies.
_GROUP_COLOUR = {
    "VL": (230, 159, 0),  # orange
    "VM": (86, 180, 233),  # sky blue
    "VI": (0, 158, 115),  # bluish green
    "RF": (204, 121, 167),  # reddish purple
    "SAR": (240, 228, 66),  # yellow
    "GRA": (0, 114, 178),  # blue
    "ADD": (213, 94, 0),  # vermillion
    "HAM": (150, 150, 150),  # grey
}
_GROUP_FULL = {
    "VL": "vastus lateralis",
    "VM": "vastus medialis",
    "VI": "vastus intermedius",
    "RF": "rectus femoris",
    "SAR": "sartorius",
    "GRA": "gracilis",
    "ADD": "adductors",
    "HAM": "hamstrings",
}
_SIDE_FULL = {"R": "right", "L": "left"}

_TABLE = [
    (1, "R", "VL"), (2, "R", "VM"), (3, "R", "VI"), (4, "R", "RF"),
    (5, "L", "VL"), (6, "L", "VM"), (7, "L", "VI"), (8, "L", "RF"),
    (11, "R", "SAR"), (12, "R", "GRA"), (13, "R", "ADD"), (14, "R", "HAM"),
    (15, "L", "SAR"), (16, "L", "GRA"), (17, "L", "ADD"), (18, "L", "HAM"),
]  # fmt: skip

MUSCLES: tuple[Muscle, ...] = tuple(
    Muscle(
        id=i,
        name=f"{side}_{group}",
        full_name=f"{_SIDE_FULL[side]} {_GROUP_FULL[group]}",
        side=side,
        group=group,
        colour=_GROUP_COLOUR[group],
    )
    for i, side, group in _TABLE
)
BY_ID: dict[int, Muscle] = {m.id: m for m in MUSCLES}
BY_NAME: dict[str, Muscle] = {m.name: m for m in MUSCLES}
QUADRICEPS: tuple[Muscle, ...] = tuple(m for m in MUSCLES if m.is_quadriceps)

#: Group ids used as default reference ("healthy muscle") regions.
REFERENCE_GROUPS: tuple[str, ...] = ("HAM", "ADD")


def label_name(label: int) -> str:
    """Short name ("R_VL") of a label id; raises KeyError for unknown ids."""
    return BY_ID[int(label)].name


def label_id(name: str) -> int:
    """Label id of a short name ("R_VL" -> 1); raises KeyError for unknown names."""
    return BY_NAME[name].id


def colour_table() -> dict[int, tuple[float, float, float]]:
    """Label id -> RGB in 0-1, for matplotlib."""
    return {m.id: tuple(c / 255.0 for c in m.colour) for m in MUSCLES}  # type: ignore[misc]
