"""Fine-tuning the lab's way (the frozen layers below the cut computed once, only the top trains) against the plain
way (`model.fit` on images with the bottom frozen, as the cats-vs-dogs report and the TensorFlow tutorial do).

Both ways run in one warmed-up process (an untimed one-epoch run of each first: the process's first Keras `fit`
pays for lazy set-up; an untimed one-epoch lab run per plan builds and stores that cut's converted bottom, whose
build time is reported apart, `bottom_build_s`, as the feature bench reports its extractor's), alternate lab/plain
within a plan, and report median times and mean accuracies. Each lab run starts with no cached activations, so it pays its pass over the frozen layers; `lab_cached_s` is a rerun that finds them cached. The
machine's load average is recorded with the figures: on shared cores it moves them more than any code change.
"""
from __future__ import annotations

import os
import shutil
import statistics


def _clear_activations() -> None:
    from core.store.paths import cache_dir
    shutil.rmtree(cache_dir() / "cut", ignore_errors=True)


def _one(at: int, epochs: int, size: int, cache: bool, keep_activations: bool = False, seed: int = 0) -> dict:
    from core.config import TrainConfig
    from core.training.train import train
    if cache and not keep_activations:
        _clear_activations()
    s = train(TrainConfig(dataset="shapes", image_size=size, seed=seed, fine_tune_at=at, fine_tune_epochs=epochs,
                          fine_tune_cache=cache))
    e = s["energy"]["stages"]["fine_tune"]
    return {"s": s["timings"]["fine_tune"], "cpu_s": e["cpu_seconds"], "j": e["joules"], "acc": s["test_accuracy"],
            "ft": s["fine_tune"]}


def bench_fine_tune(size: int = 96, plans: tuple[tuple[int, int], ...] = ((-20, 5), (100, 5), (-20, 20)),
                    repeats: tuple[int, ...] = (3, 1, 1)) -> dict:
    """{'fine_tune': [{at, epochs, lab_s, plain_s, speedup, acc_lab, acc_plain, energy_lab_j, energy_plain_j, ...}],
    'ft_speedup', 'ft_accuracy_lab', 'ft_accuracy_plain'} (the headline figures: top 20 layers, 5 epochs), medians
    over `repeats[i]` alternating runs of plan i (run k of each way with seed k: its own split, so the accuracies,
    averaged, are not one split's luck; 225 test images make one image 0.44 points)."""
    med, mean = statistics.median, statistics.fmean
    load_before = os.getloadavg()
    _one(plans[0][0], 1, size, True)                  # warm-up, untimed: lazy set-up, features cached for both
    _one(plans[0][0], 1, size, False)
    rows = []
    for (at, epochs), n in zip(plans, repeats):
        runs: dict[str, list[dict]] = {"lab": [], "plain": []}
        # untimed: builds and stores this cut's converted bottom, as the feature bench builds its extractor first.
        # One per seed: each seed's split may choose other taps for the head, and so another bottom to convert.
        build = max(_one(at, 1, size, True, seed=i)["ft"].get("bottom_engine", {}).get("build_seconds") or 0.0
                    for i in range(n))
        for i in range(n):                            # seed i for both; lab first, then plain first, ...
            for way in (("lab", "plain") if i % 2 == 0 else ("plain", "lab")):
                runs[way].append(_one(at, epochs, size, way == "lab", seed=i))
        lab, plain = runs["lab"], runs["plain"]
        info = lab[-1]["ft"]
        out = {"fine_tune_at": at, "epochs": epochs, "repeats": n,
               "lab_s": round(med(r["s"] for r in lab), 2), "plain_s": round(med(r["s"] for r in plain), 2),
               "lab_runs_s": [round(r["s"], 2) for r in lab], "plain_runs_s": [round(r["s"], 2) for r in plain],
               "lab_cpu_s": round(med(r["cpu_s"] for r in lab), 2),
               "plain_cpu_s": round(med(r["cpu_s"] for r in plain), 2),
               "acc_lab": round(mean(r["acc"] for r in lab), 4), "acc_plain": round(mean(r["acc"] for r in plain), 4),
               "acc_lab_runs": [round(r["acc"], 4) for r in lab], "acc_plain_runs": [round(r["acc"], 4) for r in plain],
               "energy_lab_j": round(med(r["j"] for r in lab), 1), "energy_plain_j": round(med(r["j"] for r in plain), 1),
               "path_lab": info["path"], "path_plain": plain[-1]["ft"]["path"], "cut": info.get("cut"),
               "first_trainable": info["first_trainable"], "check_gap": info.get("check_gap"),
               "bottom_engine": info.get("bottom_engine", {}).get("engine"), "bottom_build_s": build}
        out["speedup"] = round(out["plain_s"] / out["lab_s"], 2)
        out["cpu_speedup"] = round(out["plain_cpu_s"] / out["lab_cpu_s"], 2)
        if at == plans[0][0] and epochs == plans[0][1]:
            out["lab_cached_s"] = round(_one(at, epochs, size, True, keep_activations=True)["s"], 2)
        rows.append(out)
        print(f"fine-tune from {at}, {epochs} epochs: lab {out['lab_s']} s, plain {out['plain_s']} s "
              f"({out['speedup']}x; CPU time {out['cpu_speedup']}x), accuracy {out['acc_lab']} / {out['acc_plain']}",
              flush=True)
    head = rows[0]
    return {"fine_tune": rows, "ft_speedup": head["speedup"], "ft_cpu_speedup": head["cpu_speedup"],
            "ft_accuracy_lab": head["acc_lab"], "ft_accuracy_plain": head["acc_plain"],
            "ft_load_average": {"before": [round(x, 2) for x in load_before],
                                "after": [round(x, 2) for x in os.getloadavg()]}}


if __name__ == "__main__":                            # python -m bench.finetune: this section alone
    import json
    import sys
    from .run import _isolated_home
    home = _isolated_home()
    quick = "--quick" in sys.argv
    try:
        print(json.dumps(bench_fine_tune(repeats=(5, 1, 1) if quick else (5, 3, 3)), indent=1))
    finally:
        shutil.rmtree(home, ignore_errors=True)
