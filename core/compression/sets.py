"""Named compression sets (what the Train page and sweeps offer): none, quick, standard, or techniques joined by '+'.

A set is a list of technique names; short names drop the `tflite_` prefix ("int8" is tflite_int8).
"""
from __future__ import annotations

from core.errors import LabError

from .techniques import DEFAULT_TECHNIQUES, TECHNIQUES

QUICK_TECHNIQUES: list[str] = ["tflite_float16", "tflite_dynamic", "tflite_int8"]      # TFLite conversions only
SETS: dict[str, list[str]] = {"none": [], "quick": QUICK_TECHNIQUES, "standard": DEFAULT_TECHNIQUES}
SET_WORDS = {"none": "no compression", "quick": "TFLite conversions only", "standard": "the lab's default set"}


def technique_name(word: str) -> str:
    """A technique by its name or short name (int8 -> tflite_int8); LabError naming the choices."""
    w = word.strip().lower()
    for name in (w, f"tflite_{w}"):
        if name in TECHNIQUES:
            return name
    raise LabError(f"unknown compression technique '{word}'; choose from {', '.join(TECHNIQUES)} "
                   f"(or a set: {', '.join(SETS)})")


def parse_set(text: str) -> list[str]:
    """A set's techniques: 'none', 'quick', 'standard', or names joined by '+' (e.g. 'int8+float16')."""
    key = text.strip().lower()
    if not key:
        raise LabError(f"an empty compression set; use one of {', '.join(SETS)} or techniques joined by '+'")
    if key in SETS:
        return list(SETS[key])
    return list(dict.fromkeys(technique_name(w) for w in key.split("+")))


def set_label(techniques: list[str]) -> str:
    """The shortest name of a set of techniques ('none', 'quick', 'int8+float16')."""
    for name, members in SETS.items():
        if list(techniques) == members:
            return name
    return "+".join(t.removeprefix("tflite_") for t in techniques)
