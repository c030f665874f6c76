"""Scoring a run on its dataset's check set: real photos it never saw in training, named by every variant.

The drop from the test split to the check set is the lesson about domain shift; `score_run` keeps it with the run as
check_set.json, which the Results page shows beside the test accuracy.
"""
from __future__ import annotations

from core.data.checksets import CheckSet, check_set_for
from core.errors import LabError
from core.models.predictor import load_variant, run_info, variant_names
from core.store.runs import run_dir, write_json

CLEAR = "clear"


def _check_set(run_id: str) -> CheckSet:
    dataset = run_info(run_id).config["dataset"]
    cs = check_set_for(dataset)
    if cs is None:
        raise LabError(f"dataset {dataset} has no check set; attach a folder of labelled photos with "
                       f"`python -m core check-set --attach {dataset} FOLDER`")
    return cs


def score(run_id: str, variant: str = "original", check: CheckSet | None = None) -> dict:
    """How one variant names the check set's photos: a row per photo, and the counts.

    Photos whose label is not one of the run's classes are left out (and counted). Labels in one `shades` group
    (grey and silver) count as right when named as any of the group; for such sets the clear labels are counted
    apart too (clear_right of clear_total), as the colour check always did."""
    cs = check or _check_set(run_id)
    predictor = load_variant(run_id, variant)
    names = list(predictor.class_names)
    keep = [i for i, lab in enumerate(cs.labels) if lab in names]
    if not keep:
        raise LabError(f"none of the check set's labels ({', '.join(sorted(set(cs.labels)))}) is a class of run "
                       f"{run_id} ({', '.join(names)})")
    probs = predictor.predict(cs.load(predictor.image_size)[keep])
    rows = []
    for i, p in zip(keep, probs):
        truth, got = cs.labels[i], names[int(p.argmax())]
        shaded = any(truth in s for s in cs.shades)
        rows.append({"label": truth, "predicted": got, "p_label": round(float(p[names.index(truth)]), 3),
                     "p_predicted": round(float(p.max()), 3), CLEAR: not shaded, "right": cs.same(truth, got),
                     "id": cs.ids[i], **(cs.details[i] if cs.details else {})})
    clear = [r for r in rows if r[CLEAR]]
    out = {"run_id": run_id, "variant": variant, "check_set": cs.title, "photos": rows,
           "right": sum(r["right"] for r in rows), "total": len(rows),
           "accuracy": round(sum(r["right"] for r in rows) / len(rows), 4),
           "left_out": len(cs.labels) - len(keep), "note": cs.note}
    if cs.shades:
        out |= {"clear_right": sum(r["right"] for r in clear), "clear_total": len(clear),
                "shade_right": sum(r["right"] for r in rows if not r[CLEAR]), "shade_total": len(rows) - len(clear)}
    return out


SUMMARY = ("accuracy", "right", "total", "clear_right", "clear_total", "shade_right", "shade_total")


def score_run(run_id: str) -> dict:
    """Every stored variant of the run on its check set: {variant: counts and what it named wrong}, or why it could
    not run. Kept with the run as check_set.json."""
    out: dict = {}
    try:
        cs = _check_set(run_id)
        for name in variant_names(run_id):
            r = score(run_id, name, cs)
            out[name] = {k: r[k] for k in SUMMARY if k in r} | {
                "wrong": [f"{x['label']} -> {x['predicted']}" for x in r["photos"] if not x["right"]]}
        out["check_set"], out["note"] = cs.title, cs.note
    except LabError as e:
        out = {"error": str(e)}
    write_json(run_dir(run_id) / "check_set.json", out)
    return out
