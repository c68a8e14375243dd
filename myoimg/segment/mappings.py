"""Label-name conventions of other segmentation tools, mapped onto the myoimg label table.

A mapping turns a *source label* (an integer value of a label map, or a name of a DICOM
SEG segment / RTSTRUCT ROI) into a myoimg label id (:mod:`myoimg.labels`). Names are
compared after normalisation (lower case; spaces, hyphens and dots become underscores),
so ``"VL_R"``, ``"vl r"`` and ``"Vl-R"`` are the same key.

Shipped conventions (all sides are the *patient's* side)
-------------------------------------------------------
``"dafne"``
    Dafne ROI names ``VL_R``, ``VM_L``, ``VI_R``, ``RF_L``, ``SAR_R``, ``GRA_L``,
    ``ADD_R``, ``HAM_L`` ... and long forms ``vastus_lateralis_right``. Dafne has no fixed
    integer table, so only names are mapped.
``"musclemap"``
    MuscleMap integer label values (``docs/anatomy.md`` of MuscleMap/MuscleMap: thigh
    region 7101-7222, last digit 1 = left, 2 = right) and their names (``"vastus lateralis
    left"``). The four quadriceps heads, sartorius and gracilis map one to one.
    Semimembranosus, semitendinosus and biceps femoris long and short head are *merged*
    into HAM; adductor magnus, longus and brevis into ADD (myoimg has no finer ids).
``"totalsegmentator"``
    TotalSegmentator task ``thigh_shoulder_muscles`` (and ``_mr``): integer values 1-8 and
    names. TotalSegmentator does **not** separate the quadriceps heads
    (``quadriceps_femoris_left/right``) nor the medial compartment into adductors and
    gracilis (``thigh_medial_compartment_left/right``); these are *not* mapped (no split is
    invented) and are reported as unknown. ``thigh_posterior_compartment`` -> HAM,
    ``sartorius`` -> SAR.

With ``mapping=None`` the source is taken to use myoimg's own convention: integer ids of
the label table, short names (``"R_VL"``) or full names (``"right vastus lateralis"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import MyoimgError
from ..labels import BY_ID, BY_NAME, MUSCLES

__all__ = [
    "SHIPPED_MAPPINGS",
    "MAPPING_NOTES",
    "normalise_name",
    "resolve_mapping",
    "map_label",
]

_GROUP_LONG = {
    "VL": "vastus_lateralis",
    "VM": "vastus_medialis",
    "VI": "vastus_intermedius",
    "RF": "rectus_femoris",
    "SAR": "sartorius",
    "GRA": "gracilis",
    "ADD": "adductors",
    "HAM": "hamstrings",
}
_SIDE_LONG = {"R": "right", "L": "left"}


def normalise_name(name: str) -> str:
    """Lower-case a label name and turn runs of spaces, hyphens and dots into ``_``."""
    return re.sub(r"[\s\-.]+", "_", str(name).strip().lower()).strip("_")


def _dafne() -> dict[str | int, int]:
    table: dict[str | int, int] = {}
    for m in MUSCLES:
        table[normalise_name(f"{m.group}_{m.side}")] = m.id
        long = f"{_GROUP_LONG[m.group]}_{_SIDE_LONG[m.side]}"
        table[long] = m.id
        table[f"{_SIDE_LONG[m.side]}_{_GROUP_LONG[m.group]}"] = m.id
    return table


# MuscleMap thigh labels: (value for the LEFT side, anatomy, myoimg group); right = left + 1.
_MUSCLEMAP_THIGH = [
    (7101, "vastus lateralis", "VL"),
    (7111, "vastus intermedius", "VI"),
    (7121, "vastus medialis", "VM"),
    (7131, "rectus femoris", "RF"),
    (7141, "sartorius", "SAR"),
    (7151, "gracilis", "GRA"),
    (7161, "semimembranosus", "HAM"),
    (7171, "semitendinosus", "HAM"),
    (7181, "biceps femoris long head", "HAM"),
    (7191, "biceps femoris short head", "HAM"),
    (7201, "adductor magnus", "ADD"),
    (7211, "adductor longus", "ADD"),
    (7221, "adductor brevis", "ADD"),
]


def _musclemap() -> dict[str | int, int]:
    table: dict[str | int, int] = {}
    for left_value, anatomy, group in _MUSCLEMAP_THIGH:
        for value, side in ((left_value, "L"), (left_value + 1, "R")):
            our = BY_NAME[f"{side}_{group}"].id
            table[value] = our
            table[normalise_name(f"{anatomy} {_SIDE_LONG[side]}")] = our
    return table


# TotalSegmentator "thigh_shoulder_muscles": only the labels with a one-to-one myoimg meaning.
_TOTALSEG_THIGH = {
    5: ("thigh_posterior_compartment_left", "L_HAM"),
    6: ("thigh_posterior_compartment_right", "R_HAM"),
    7: ("sartorius_left", "L_SAR"),
    8: ("sartorius_right", "R_SAR"),
}
#: TotalSegmentator labels deliberately left unmapped (no invented split).
TOTALSEG_UNSPLIT = {
    1: "quadriceps_femoris_left",
    2: "quadriceps_femoris_right",
    3: "thigh_medial_compartment_left",
    4: "thigh_medial_compartment_right",
}


def _totalsegmentator() -> dict[str | int, int]:
    table: dict[str | int, int] = {}
    for value, (name, ours) in _TOTALSEG_THIGH.items():
        table[value] = BY_NAME[ours].id
        table[name] = BY_NAME[ours].id
    return table


SHIPPED_MAPPINGS: dict[str, dict[str | int, int]] = {
    "dafne": _dafne(),
    "musclemap": _musclemap(),
    "totalsegmentator": _totalsegmentator(),
}

#: Messages added to an import that used a shipped mapping.
MAPPING_NOTES: dict[str, list[str]] = {
    "dafne": [],
    "musclemap": [
        "MuscleMap: semimembranosus, semitendinosus and biceps femoris (long and short head) "
        "merged into HAM; adductor magnus, longus and brevis merged into ADD."
    ],
    "totalsegmentator": [
        "TotalSegmentator does not separate the quadriceps heads (quadriceps_femoris_left/right) "
        "nor the adductors from gracilis (thigh_medial_compartment_left/right): these labels "
        "are not mapped (no split invented); only posterior compartment -> HAM and sartorius "
        "-> SAR are."
    ],
}


def _own_convention() -> dict[str | int, int]:
    table: dict[str | int, int] = {}
    for m in MUSCLES:
        table[m.id] = m.id
        table[normalise_name(m.name)] = m.id
        table[normalise_name(m.full_name)] = m.id
    return table


def _to_our_id(value: str | int) -> int:
    if isinstance(value, str) and not value.strip().isdigit():
        key = value.strip()
        if key in BY_NAME:
            return BY_NAME[key].id
        for m in MUSCLES:
            if normalise_name(m.name) == normalise_name(key) or normalise_name(
                m.full_name
            ) == normalise_name(key):
                return m.id
        raise MyoimgError(f"mapping target {value!r} is not a myoimg label name (e.g. 'R_VL')")
    vid = int(value)
    if vid not in BY_ID:
        raise MyoimgError(f"mapping target {value!r} is not a myoimg label id")
    return vid


def _key(source: str | int) -> str | int:
    """Normalised lookup key: integers (also integer strings) as int, names normalised."""
    if isinstance(source, (int,)) or (isinstance(source, str) and source.strip().isdigit()):
        return int(source)
    try:  # numpy integer scalars
        return int(source)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return normalise_name(str(source))


def resolve_mapping(
    mapping: str | Mapping[str | int, str | int] | None,
) -> tuple[dict[str | int, int], list[str]]:
    """Return a lookup table {normalised source key: myoimg id} and notes to report.

    Parameters
    ----------
    mapping : None, str or dict
        None (myoimg's own ids and names), a shipped name (``"dafne"``, ``"musclemap"``,
        ``"totalsegmentator"``) or a dict {source name or id: myoimg name or id}.
    """
    if mapping is None:
        return _own_convention(), []
    if isinstance(mapping, str):
        name = mapping.strip().lower()
        if name not in SHIPPED_MAPPINGS:
            raise MyoimgError(
                f"unknown label mapping {mapping!r}; use one of {sorted(SHIPPED_MAPPINGS)} or a dict"
            )
        return dict(SHIPPED_MAPPINGS[name]), list(MAPPING_NOTES[name])
    table = {_key(k): _to_our_id(v) for k, v in mapping.items()}
    return table, []


def map_label(source: str | int, table: Mapping[str | int, int]) -> int | None:
    """Myoimg id of one source label under ``table`` (from :func:`resolve_mapping`), or None."""
    return table.get(_key(source))
