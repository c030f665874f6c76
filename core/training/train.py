"""Train a run end to end: data, backbone, head (on cached features when frozen), optional fine-tuning,
evaluation on the test split (with the model's temperature fitted on validation, `calibration` in run.json), and the
run folder with everything needed to re-check every figure."""
from __future__ import annotations

import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from core.store import registry
from core.models.backbones import build_backbone, frozen_random_problem, get_backbone
from core.config import TrainConfig
from core.data.prepare import PreparedData, prepare
from core.evaluation.calibration import calibration_record
from core.evaluation.energy import Energy, meter, total
from core.evaluation.memory import rss_meter
from core.store.settings import memory_budget
from core.errors import LabError
from .extractor import make_extractor
from .features import FeatureStore
from .cut import ActivationCache, Batches, compute_bottom, split
from .loop import evaluator, fit_batches
from .head_fit import SMALL_PER_CLASS, Candidate, fit_features, select_linear, set_linear_weights
from core.data.checksets import check_set_for
from core.evaluation.checkset import score_run
from core.evaluation.metrics import classification_metrics
from core.models.heads import assemble, feature_extractor, head_layers, head_model, set_trainable_from, tap_widths
from core.data.pipeline import image_dataset, predict_images
from core.progress import Progress, ProgressEvent, keras_callback, silent
from core.store.runs import new_run_id, run_dir, save_keras, write_json


def _optimizer(name: str, lr: float, decay: float | None, steps_per_epoch: int):
    from core.tfenv import keras
    rate = keras.optimizers.schedules.ExponentialDecay(lr, max(steps_per_epoch, 1), decay) if decay else lr
    return {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
            "rmsprop": keras.optimizers.RMSprop}[name](learning_rate=rate)


def _callbacks(cfg: TrainConfig, progress: Progress, stage: str, epochs: int, offset: int, has_val: bool) -> list:
    from core.tfenv import keras
    cbs = [keras_callback(progress, stage, epochs, offset)]
    es = cfg.early_stopping
    if es is not None:
        monitor = es.monitor if has_val or not es.monitor.startswith("val_") else es.monitor[4:]
        cbs.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=es.patience, min_delta=es.min_delta,
                                                 start_from_epoch=es.start_epoch,
                                                 restore_best_weights=es.restore_best, verbose=0))
    return cbs


def _history(history: dict[str, list[float]], stage: str, offset: int) -> list[dict]:
    n = len(next(iter(history.values()), []))
    return [{"epoch": offset + i + 1, "stage": stage,
             **{k: float(v[i]) for k, v in history.items() if k != "lr"}} for i in range(n)]


def _fit_head(cfg, progress, data: PreparedData, x: np.ndarray, layers: list) -> list[dict]:
    """Train a deeper head on cached features (`x`: one row per image): epochs cost milliseconds, so `epochs` is a
    maximum and, with a validation split, training stops when validation loss stalls and keeps its best epoch."""
    from core.tfenv import keras
    head = head_model(x.shape[1], layers)
    tr, va = data.index["train"], data.index["val"]
    steps = int(np.ceil(len(tr) / cfg.batch_size))
    val = (x[va], data.labels[va]) if len(va) else None
    callbacks = _callbacks(cfg, progress, "head", cfg.epochs, 0, val is not None)
    if cfg.early_stopping is None and val is not None:
        callbacks.append(keras.callbacks.EarlyStopping("val_loss", patience=max(10, cfg.epochs // 10),
                                                       restore_best_weights=True))
    history = fit_features(head, _optimizer(cfg.optimizer, cfg.learning_rate, cfg.lr_decay, steps),
                           x[tr], data.labels[tr], val, cfg.epochs, cfg.batch_size, cfg.seed, callbacks)
    return _history(history, "head", 0)


def _head_on_features(cfg, progress, data: PreparedData, features: FeatureStore, candidates: list[Candidate],
                      n_classes: int) -> tuple[Candidate, list, list[dict], dict]:
    """The head for frozen features, and which feature set (taps) it reads: (candidate, layers, history, record).

    The default head (no hidden layer) is a linear softmax: fitted by scikit-learn's L2 logistic regression to
    convergence, with C and the candidate chosen on validation (cross-validation for small data), then written into
    the Keras layers exactly. Deeper heads train by gradient descent, one candidate after another."""
    rows = np.concatenate([data.index["train"], data.index["val"]])
    features.ensure(rows)
    x = features.values             # one row per image (the test rows not known yet): no copy of the features
    tr, va = data.index["train"], data.index["val"]
    per_class = np.bincount(data.labels[tr], minlength=n_classes)
    record: dict = {"train_images_per_class_min": int(per_class.min())}
    if not cfg.head.dense:
        sel = select_linear(x, data.labels, tr, va, n_classes, candidates, cfg.head.batch_norm, cfg.seed)
        layers = head_layers(cfg.head, n_classes)
        head_model(sel.candidate.columns.stop - sel.candidate.columns.start, layers)      # builds the layers
        set_linear_weights(layers, sel.head)
        best = max((r for r in sel.scores if r["taps"] == sel.candidate.name and r["C"] == sel.head.C),
                   key=lambda r: r["val_accuracy"])
        record |= {"fit": "logistic regression (scikit-learn lbfgs, L2)", "C": sel.head.C, "chosen_by": sel.method,
                   "fitted_on": sel.fitted_on, "val_accuracy": best["val_accuracy"], "search": sel.scores}
        history = [{"epoch": i + 1, "stage": "head", **r} for i, r in enumerate(
            r for r in sel.scores if r["taps"] == sel.candidate.name)]
        chosen = sel.candidate
    else:
        best = None
        for cand in candidates:
            layers_c = head_layers(cfg.head, n_classes)
            hist = _fit_head(cfg, progress, data, x[:, cand.columns], layers_c)
            score = max(((h.get("val_accuracy", 0.0), -h.get("val_loss", 0.0)) for h in hist), default=(0.0, 0.0))
            if best is None or score > best[0]:
                best = (score, cand, layers_c, hist)
        _, chosen, layers, history = best
        record |= {"fit": "gradient descent", "val_accuracy": round(best[0][0], 6), "chosen_by": "validation accuracy"}
    if per_class.min() < SMALL_PER_CLASS:
        record["small_data_note"] = (
            f"only {int(per_class.min())} training images in the smallest class (under {SMALL_PER_CLASS}): "
            + ("the head's regularisation and feature set were chosen by cross-validation on the training and "
               "validation images together, and the head was fitted on both" if not cfg.head.dense else
               "expect noisy results; a linear head (no hidden layers) is chosen by cross-validation"))
    return chosen, layers, history, record


def _keep_best(model, evaluate, offset: int):
    """A callback that keeps the weights with the best validation accuracy (ties: the lower val_loss), counting the
    state before this stage (`evaluate()` -> (val loss, val accuracy)): fine-tuning replaces the head-only model only
    when it classifies validation better."""
    from core.tfenv import keras

    class KeepBest(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            loss, acc = evaluate()
            self.best, self.best_epoch, self.best_weights = (acc, -loss), offset, model.get_weights()

        def on_epoch_end(self, epoch, logs=None):
            score = ((logs or {}).get("val_accuracy", -np.inf), -(logs or {}).get("val_loss", np.inf))
            if score > self.best:
                self.best, self.best_epoch, self.best_weights = score, epoch + 1, model.get_weights()

        def on_train_end(self, logs=None):
            model.set_weights(self.best_weights)

    return KeepBest()


def _fit_images(cfg, progress, data: PreparedData, model, stage: str, epochs: int, lr: float,
                offset: int) -> tuple[list[dict], int | None]:
    """Train the full model on images (fine-tuning, augmentation, or end-to-end training).

    Fine-tuning keeps the epoch with the best validation accuracy (then loss), the pre-fine-tuning state included,
    so a stage that only disturbs a good head cannot make the model worse. Returns (history, kept epoch).
    """
    tr, va = data.index["train"], data.index["val"]
    steps = int(np.ceil(len(tr) / cfg.batch_size))
    model.compile(_optimizer(cfg.optimizer, lr, cfg.lr_decay, steps), "sparse_categorical_crossentropy", ["accuracy"])
    train_ds = image_dataset(cfg.backbone, data.take(tr), data.labels[tr], cfg.batch_size, True, cfg.seed + offset,
                             cfg.augment)
    val = image_dataset(cfg.backbone, data.take(va), data.labels[va], 64) if len(va) else None
    callbacks = _callbacks(cfg, progress, stage, epochs, offset, val is not None)
    keep = _keep_best(model, lambda: model.evaluate(val, verbose=0)[:2], offset) \
        if stage == "fine-tune" and val is not None else None
    h = model.fit(train_ds, epochs=offset + epochs, initial_epoch=offset, validation_data=val, verbose=0,
                  callbacks=callbacks + ([keep] if keep else []))
    return _history(h.history, stage, offset), (keep.best_epoch if keep else None)


def _fit_above_cut(cfg, progress, sp, arrays: list[np.ndarray], labels: np.ndarray, tr: np.ndarray,
                   va: np.ndarray, epochs: int, lr: float, offset: int) -> tuple[list[dict], int | None]:
    """Fine-tune the top of a split on the cached activations below its cut (`tr`, `va`: their rows), in the batch
    order the plain way uses, keeping the best validation epoch as `_fit_images` does; the full model's layers are
    the top's, so it is trained too. Trained by `core.training.loop` (the arithmetic of `fit`, without its
    retracing and per-step overhead)."""
    steps = int(np.ceil(len(tr) / cfg.batch_size))
    train = Batches(arrays, tr, labels, cfg.batch_size, True, cfg.seed + offset)
    evaluate = evaluator(sp.top, Batches(arrays, va, labels, 64, False, 0)) if len(va) else None
    callbacks = _callbacks(cfg, progress, "fine-tune", epochs, offset, evaluate is not None)
    keep = _keep_best(sp.top, evaluate, offset) if evaluate is not None else None
    h = fit_batches(sp.top, _optimizer(cfg.optimizer, lr, cfg.lr_decay, steps), train, evaluate, offset + epochs,
                    callbacks + ([keep] if keep else []), initial_epoch=offset)
    return _history(h, "fine-tune", offset), (keep.best_epoch if keep else None)


CHECK_IMAGES = 32    # test images on which the reassembled model must equal the top on cached activations


def _fine_tune(cfg, progress, data: PreparedData, model, n_backbone: int, at: int, weights: str,
               taps: tuple[str, ...], offset: int) -> tuple[list[dict], int | None, dict, np.ndarray | None]:
    """Fine-tune from layer `at`: above a cut on cached activations when the layers below are frozen and the images
    are not augmented, else the plain way (every epoch through every layer).

    Returns (history, kept epoch, record, the top's outputs on the first CHECK_IMAGES test images or None): the
    evaluation compares the reassembled model's outputs on those images with them, at no extra pass."""
    lr = cfg.fine_tune_lr or cfg.learning_rate / 10
    why_plain = "augmentation changes the images every epoch" if cfg.augment.active else \
        "no frozen layers below the first trainable one" if at == 0 else \
        "the cache below the cut was turned off" if not cfg.fine_tune_cache else None
    sp = None if why_plain else split(model, n_backbone, at)
    if sp is None:
        n = set_trainable_from(model, n_backbone, at)
        progress(ProgressEvent("fine-tune", f"fine-tuning from layer {at} ({n} trainable layers), the plain way"))
        hist, kept = _fit_images(cfg, progress, data, model, "fine-tune", cfg.fine_tune_epochs, lr, offset)
        return hist, kept, {"path": "plain", "why": why_plain or f"no single-tensor cut below layer {at}",
                            "requested_layer": at, "first_trainable": at, "trainable_layers": n}, None
    n = set_trainable_from(model, n_backbone, sp.first_trainable)
    tr, va, te = data.index["train"], data.index["val"], data.index["test"][:CHECK_IMAGES]
    rows = np.concatenate([tr, va, te])
    cache = ActivationCache(ActivationCache.key(data.fingerprint, data.dataset, cfg.backbone, weights,
                                                data.image_size, cfg.head.pooling, taps, sp.cut, rows),
                            weights != "random" and bool(data.fingerprint))
    progress(ProgressEvent("fine-tune", f"layers below {sp.cut} (frozen) computed once" +
                           (" (cached)" if cache.was_cached else "") + f"; fine-tuning the {n} layers above"))
    engine = {"engine": "cached", "note": "activations read from the cache"}

    def compute():
        bottom = compute_bottom(sp, data.images, rows, cfg.backbone, weights, data.image_size, cfg.head.pooling,
                                taps, cfg.feature_engine)
        engine.update(bottom.info)
        return bottom
    arrays = cache.arrays(compute)
    at_tr, at_va = np.arange(len(tr)), np.arange(len(tr), len(tr) + len(va))
    hist, kept = _fit_above_cut(cfg, progress, sp, arrays, data.labels[rows], at_tr, at_va, cfg.fine_tune_epochs,
                                lr, offset)
    check = [np.asarray(a[len(tr) + len(va):], np.float32) for a in arrays]
    want = sp.top(check if len(check) > 1 else check[0], training=False).numpy() if len(te) else None
    return hist, kept, {"path": "cached below the cut", "requested_layer": at, "cut": sp.cut,
                        "first_trainable": sp.first_trainable, "trainable_layers": n,
                        "snapped": sp.first_trainable != at, "activations_cached": cache.was_cached,
                        "activation_rows": int(len(rows)), "bottom_engine": engine,
                        "activation_bytes": int(sum(a.nbytes for a in arrays))}, want


def _resolve_fine_tune_at(at: int | None, backbone_layers: int) -> int | None:
    if at is None:
        return None
    idx = backbone_layers + at if at < 0 else at
    if not 0 <= idx < backbone_layers:
        raise LabError(f"fine-tune-at {at} is outside the backbone's {backbone_layers} layers "
                       f"(use 0..{backbone_layers - 1}, or -K for the top K layers)")
    return idx


def train(cfg: TrainConfig, progress: Progress = silent, run_id: str | None = None) -> dict:
    """Train and evaluate one run; return its summary. Failures mark the run failed and re-raise."""
    from core.tfenv import keras
    t_start = time.perf_counter()
    spec = get_backbone(cfg.backbone)
    cfg = replace(cfg, image_size=cfg.image_size or spec.default_size)
    refuse = frozen_random_problem(cfg.backbone, cfg.weights, cfg.mode, cfg.fine_tune_epochs, cfg.allow_random_frozen)
    if refuse:                      # before any folder or registry row exists
        raise LabError(refuse)
    run_id = run_id or new_run_id()
    folder = run_dir(run_id, create=True)
    registry.upsert_run(run_id, {"config": cfg.to_dict()}, status="running", dataset=cfg.dataset,
                        backbone=cfg.backbone, mode=cfg.mode, image_size=cfg.image_size, preset=cfg.preset)
    timings: dict[str, float] = {}
    energies: dict[str, Energy] = {}
    peaks: dict[str, float] = {}

    @contextmanager
    def stage(name: str):
        """Time a stage, measure (or estimate) its energy and its peak resident memory."""
        with meter() as m, rss_meter() as mem:
            t = time.perf_counter()
            yield
        timings[name] = time.perf_counter() - t
        energies[name] = m["energy"]
        peaks[name] = mem["peak_mb"]

    try:
        keras.utils.set_random_seed(cfg.seed)
        progress(ProgressEvent("data", f"loading {cfg.dataset} at {cfg.image_size} px"))
        with stage("data"):
            data = prepare(cfg.dataset, cfg.image_size, cfg.seed, cfg.split)
        progress(ProgressEvent("backbone", f"building {spec.title}"))
        with stage("backbone"):
            backbone, weights = build_backbone(cfg.backbone, cfg.image_size, cfg.weights)
        frozen_random = weights == "random" and cfg.mode == "feature-extraction" and not cfg.fine_tune_epochs
        refuse = frozen_random_problem(cfg.backbone, cfg.weights, cfg.mode, cfg.fine_tune_epochs,
                                       cfg.allow_random_frozen, source=weights)
        if refuse:                  # the weights said to be here could not be loaded: random after all
            raise LabError(refuse)
        warnings = [f"{spec.title} has RANDOM weights here: a frozen random backbone learns nothing useful"] \
            if frozen_random else []
        for w in warnings:
            print(f"WARNING: {w}", file=sys.stderr)
        registry.upsert_run(run_id, weights=weights)

        layers = head_layers(cfg.head, len(data.class_names))
        n_backbone = len(backbone.layers)
        history: list[dict] = []
        use_cache = cfg.mode == "feature-extraction" and not cfg.augment.active
        taps_mode = cfg.head.taps if spec.taps and cfg.head.pooling != "flatten" else "last"
        features_cached = extractor_info = None
        taps_info: dict = {"requested": cfg.head.taps}
        if use_cache:
            extract_taps = spec.taps if taps_mode in ("multi", "auto") else ()
            fit_rows = np.concatenate([data.index["train"], data.index["val"]])
            progress(ProgressEvent("features", f"{spec.title} features of {len(fit_rows)} training and validation "
                                               "images (computed once, then cached)"))
            with stage("features"):        # the training and validation rows; test rows at evaluation
                keras_extractor = feature_extractor(backbone, cfg.head, extract_taps)
                features = FeatureStore(
                    lambda n: make_extractor(keras_extractor, cfg.backbone, weights, cfg.image_size, cfg.head.pooling,
                                             n, data.images[fit_rows[:32]], cfg.feature_engine, extract_taps),
                    int(keras_extractor.output_shape[-1]), data, cfg.backbone, weights, cfg.head.pooling, extract_taps)
                features_cached = features.was_cached
                features.ensure(fit_rows)
            if (fx := features.extractor) is not None:
                extractor_info = {"engine": fx.engine, "note": fx.note, "build_seconds": round(fx.build_seconds, 2)}
                progress(ProgressEvent("features", f"features computed with {fx.note}"))
            widths = tap_widths(backbone, extract_taps)
            total_dim = sum(widths)
            candidates = ([Candidate("multi", slice(0, total_dim))] if extract_taps else []) + \
                ([Candidate("last", slice(total_dim - widths[-1], total_dim))] if taps_mode != "multi" else [])
            progress(ProgressEvent("head", "fitting the head" + (" and choosing between the last layer and several "
                                                                 "depths" if len(candidates) > 1 else "")))
            with stage("head"):
                chosen, layers, head_history, fit_record = _head_on_features(cfg, progress, data, features,
                                                                             candidates, len(data.class_names))
            history += head_history
            taps = spec.taps if chosen.name == "multi" else ()
            taps_info |= {"used": chosen.name, "candidates": [c.name for c in candidates]}
            model = assemble(backbone, cfg.head, layers, taps)
        else:
            taps = spec.taps if taps_mode in ("multi", "auto") and weights != "random" else ()
            taps_info |= {"used": "multi" if taps else "last",
                          "note": "auto: several depths for images (no cached features to choose on)"
                          if taps_mode == "auto" else ""}
            fit_record = {"fit": "gradient descent on images"}
            model = assemble(backbone, cfg.head, layers, taps)
            set_trainable_from(model, n_backbone, 0 if cfg.mode == "full" else None)
            with stage("train"):
                history += _fit_images(cfg, progress, data, model, "train", cfg.epochs, cfg.learning_rate, 0)[0]
        taps_info["layers"] = list(taps) or [backbone.layers[-1].name]

        fine_tune_start = kept_epoch = fine_tune_info = top_check = None
        if cfg.fine_tune_epochs:
            at = _resolve_fine_tune_at(cfg.fine_tune_at, n_backbone)
            fine_tune_start = len(history)
            with stage("fine_tune"):
                ft_history, kept_epoch, fine_tune_info, top_check = _fine_tune(
                    cfg, progress, data, model, n_backbone, at, weights, taps, fine_tune_start)
            history += ft_history
        for layer in model.layers:
            layer.trainable = True

        progress(ProgressEvent("evaluate", f"evaluating on {len(data.index['test'])} test images"))
        with stage("evaluate"):
            x_test, y_test, ids_test = data.x("test"), data.y("test"), data.split_ids("test")
            if use_cache and not cfg.fine_tune_epochs:
                # The backbone is unchanged since its features were cached: evaluate the head on them, after
                # checking on real images that the assembled model gives the same outputs.
                head = head_model(chosen.columns.stop - chosen.columns.start, layers)
                probs = head(features.rows(data.index["test"])[:, chosen.columns], training=False).numpy()
                check = predict_images(model, cfg.backbone, x_test[:32])
                gap = float(np.abs(check - probs[:32]).max()) if len(check) else 0.0
                if gap > 1e-3:
                    raise RuntimeError(f"assembled model disagrees with head-on-features by {gap:.2e}")
            else:
                probs = predict_images(model, cfg.backbone, x_test)
            if top_check is not None:       # fine-tuned above a cut: the reassembled model equals the trained top
                gap = float(np.abs(probs[:len(top_check)] - top_check).max())
                if gap > 1e-3:
                    raise RuntimeError(f"the fine-tuned model disagrees with its top on cached activations by {gap:.2e}")
                fine_tune_info |= {"check_gap": gap, "check_images": len(top_check)}
            metrics = classification_metrics(y_test, probs, data.class_names, ids_test)
            va = data.index["val"]           # the temperature: fitted on validation probabilities, as cheaply
            if not len(va):
                val_probs = None
            elif use_cache and not cfg.fine_tune_epochs:
                val_probs = head(features.rows(va)[:, chosen.columns], training=False).numpy()
            else:
                val_probs = predict_images(model, cfg.backbone, data.x("val"))
            calibration = calibration_record(val_probs, data.labels[va], probs, y_test,
                                             fit_record.get("fitted_on") == "train+val")

        progress(ProgressEvent("save", "saving the model and results"))
        save_keras(model, folder / "model.keras")
        write_json(folder / "class_names.json", data.class_names)
        write_json(folder / "config.json", cfg.to_dict())
        write_json(folder / "history.json", {"epochs": history, "fine_tune_start_epoch": fine_tune_start,
                                             "kept_epoch": kept_epoch, "head_search": fit_record.get("search")})
        write_json(folder / "predictions.json", {"split": "test", "ids": ids_test, "indices": data.index["test"],
                                                 "y_true": y_test, "probs": probs.round(6)})
        write_json(folder / "metrics.json", metrics)
        check_set = None
        if check_set_for(cfg.dataset) is not None:
            progress(ProgressEvent("evaluate", "naming the check set's real photos (never trained on)"))
            got = score_run(run_id)
            check_set = {k: got["original"][k] for k in ("accuracy", "right", "total")} if "original" in got else got
        summary = {
            "run_id": run_id, "status": "done", "test_accuracy": metrics["accuracy"], "test_loss": metrics["loss"],
            "macro_f1": metrics["macro_f1"], "weights": weights, "train_seconds": round(time.perf_counter() - t_start, 2),
            "num_train": len(data.index["train"]), "num_val": len(data.index["val"]), "num_test": metrics["num"],
            "dataset": cfg.dataset, "dataset_source": data.source, "class_names": data.class_names,
            "backbone": cfg.backbone, "image_size": cfg.image_size, "mode": cfg.mode,
            "features_cached": features_cached, "feature_extractor": extractor_info, "taps": taps_info, "check_set": check_set,
            "head_fit": {k: v for k, v in fit_record.items() if k != "search"}, "calibration": calibration,
            "epochs_run": len(history), "fine_tune_start_epoch": fine_tune_start,
            "fine_tune_kept_epoch": kept_epoch, "fine_tune": fine_tune_info, "params": int(model.count_params()), "timings": {k: round(v, 3) for k, v in timings.items()},
            "energy": {"stages": {k: e.to_dict() for k, e in energies.items()},
                       "total": total(list(energies.values())).to_dict()},
            "memory": {"budget_mb": memory_budget() >> 20, "images_in_memory": data.in_memory,
                       "peak_rss_mb": peaks, "process_peak_rss_mb": max(peaks.values(), default=0.0)},
            "skipped_files": data.skipped[:200], "num_skipped": len(data.skipped), "warnings": warnings,
        }
        write_json(folder / "run.json", summary)
        registry.upsert_run(run_id, summary, status="done", weights=weights, test_accuracy=metrics["accuracy"],
                            macro_f1=metrics["macro_f1"], train_seconds=summary["train_seconds"])
        progress(ProgressEvent("done", f"test accuracy {metrics['accuracy']:.4f}", metrics={"test_accuracy": metrics["accuracy"]}))
        return summary
    except BaseException as e:
        msg = str(e) if isinstance(e, LabError) else f"{type(e).__name__}: {e}"
        status = "cancelled" if isinstance(e, KeyboardInterrupt) else "failed"
        registry.upsert_run(run_id, {"error": msg}, status=status, error=msg)
        try:
            write_json(folder / "error.json", {"error": msg, "traceback": traceback.format_exc()})
        except OSError:
            pass  # a full or read-only disk must not hide the original error
        raise
