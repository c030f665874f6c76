"""Fine-tuning the lab's way (the frozen layers below the cut computed once, only the top trains) against the plain
way (`model.fit` on images with the bottom frozen, as the cats-vs-dogs report and the TensorFlow tutorial do)."""
from __future__ import annotations


def bench_fine_tune(size: int = 96, plans: tuple[tuple[int, int], ...] = ((-20, 5), (100, 5), (-20, 20))) -> dict:
    """{'fine_tune': [{at, epochs, lab_s, plain_s, speedup, acc_lab, acc_plain, energy_lab_j, energy_plain_j}],
    'ft_speedup', 'ft_accuracy_lab', 'ft_accuracy_plain'} (the headline figures: top 20 layers, 5 epochs)."""
    from core.config import TrainConfig
    from core.training.train import train
    rows = []
    for at, epochs in plans:
        out = {"fine_tune_at": at, "epochs": epochs}
        for way, cache in (("lab", True), ("plain", False)):
            s = train(TrainConfig(dataset="shapes", image_size=size, seed=0, fine_tune_at=at, fine_tune_epochs=epochs,
                                  fine_tune_cache=cache))
            out |= {f"{way}_s": round(s["timings"]["fine_tune"], 2), f"acc_{way}": round(s["test_accuracy"], 4),
                    f"energy_{way}_j": round(s["energy"]["stages"]["fine_tune"]["joules"], 1),
                    f"path_{way}": s["fine_tune"]["path"]}
            if cache:
                out |= {"cut": s["fine_tune"].get("cut"), "first_trainable": s["fine_tune"]["first_trainable"],
                        "lab_activations_were_cached": s["fine_tune"].get("activations_cached")}
        out["speedup"] = round(out["plain_s"] / out["lab_s"], 2)
        rows.append(out)
        print(f"fine-tune from {at}, {epochs} epochs: lab {out['lab_s']} s, plain {out['plain_s']} s "
              f"({out['speedup']}x), accuracy {out['acc_lab']} / {out['acc_plain']}", flush=True)
    head = rows[0]
    return {"fine_tune": rows, "ft_speedup": head["speedup"], "ft_accuracy_lab": head["acc_lab"],
            "ft_accuracy_plain": head["acc_plain"]}
