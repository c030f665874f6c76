"""Scoring a run on real photos it never saw in training (today: the package car photos of the colour datasets)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from core.data.datasets.real_cars import CLEAR_COLOURS, PHOTOS, load_photos
from core.data.images import resize_rgb
from core.errors import LabError
from core.models.predictor import load_variant


def score(run_id: str, variant: str = "original") -> dict:
    """How a colour model of a finished run names the real photos: one row per photo, and the counts.

    Clear colours count as right only when named exactly; grey and silver (shades of each other) when named either.
    """
    predictor = load_variant(run_id, variant)
    names = list(predictor.class_names)
    missing = sorted({p.colour for p in PHOTOS} - set(names))
    if missing:
        raise LabError(f"run {run_id} does not classify car colours (no class {', '.join(missing)})")
    photos = load_photos()
    x = np.stack([resize_rgb(Image.fromarray(a), predictor.image_size) for _, a in photos])
    probs = predictor.predict(x)
    rows = []
    for (photo, _), p in zip(photos, probs):
        got = names[int(p.argmax())]
        clear = photo.colour in CLEAR_COLOURS
        rows.append({"colour": photo.colour, "predicted": got, "p_colour": round(float(p[names.index(photo.colour)]), 3),
                     "p_predicted": round(float(p.max()), 3), "clear": clear,
                     "right": got == photo.colour if clear else got in ("grey", "silver"),
                     "view": photo.view, "source": f"{photo.archive.filename}:{photo.member}",
                     "licence": photo.archive.licence})
    clear_rows = [r for r in rows if r["clear"]]
    return {"run_id": run_id, "variant": variant, "photos": rows,
            "clear_right": sum(r["right"] for r in clear_rows), "clear_total": len(clear_rows),
            "shade_right": sum(r["right"] for r in rows if not r["clear"]),
            "shade_total": len(rows) - len(clear_rows),
            "note": "real photographs from registry packages, never used in training (mostly car fronts in one "
                    "parking garage; the synthetic training set shows rear views)"}
