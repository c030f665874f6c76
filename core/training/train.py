"""Train a run end to end: data, backbone, head (on cached features when frozen), optional fine-tuning,
evaluation on the test split, and the run folder with everything needed to re-check every figure."""
from __future__ import annotations

import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from core.store import registry
from core.models.backbones import build_backbone, get_backbone
from core.config import TrainConfig
from core.data.prepare import PreparedData, prepare
from core.evaluation.energy import Energy, meter, total
from core.errors import LabError
from .extractor import make_extractor
from .features import FeatureStore
from .head_fit import fit_features
from core.evaluation.metrics import classification_metrics
from core.models.heads import assemble, feature_extractor, head_layers, head_model, pooling_layer, set_trainable_from
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


def _fit_head(cfg, progress, data: PreparedData, features: FeatureStore, layers: list) -> list[dict]:
    """Train the head on cached features: epochs cost a few milliseconds instead of a backbone pass."""
    head = head_model(features.dim, layers)
    tr, va = data.index["train"], data.index["val"]
    steps = int(np.ceil(len(tr) / cfg.batch_size))
    val = (features.rows(va), data.labels[va]) if len(va) else None
    history = fit_features(head, _optimizer(cfg.optimizer, cfg.learning_rate, cfg.lr_decay, steps),
                           features.rows(tr), data.labels[tr], val, cfg.epochs, cfg.batch_size, cfg.seed,
                           _callbacks(cfg, progress, "head", cfg.epochs, 0, val is not None))
    return _history(history, "head", 0)


def _keep_best(model, val_ds, offset: int):
    """A callback that keeps the weights with the best validation accuracy (ties: the lower val_loss), counting the
    state before this stage: fine-tuning replaces the head-only model only when it classifies validation better."""
    from core.tfenv import keras

    class KeepBest(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            loss, acc = model.evaluate(val_ds, verbose=0)[:2]
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
    train_ds = image_dataset(cfg.backbone, data.images[tr], data.labels[tr], cfg.batch_size, True, cfg.seed + offset,
                             cfg.augment)
    val = image_dataset(cfg.backbone, data.images[va], data.labels[va], 64) if len(va) else None
    callbacks = _callbacks(cfg, progress, stage, epochs, offset, val is not None)
    keep = _keep_best(model, val, offset) if stage == "fine-tune" and val is not None else None
    h = model.fit(train_ds, epochs=offset + epochs, initial_epoch=offset, validation_data=val, verbose=0,
                  callbacks=callbacks + ([keep] if keep else []))
    return _history(h.history, stage, offset), (keep.best_epoch if keep else None)


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
    run_id = run_id or new_run_id()
    folder = run_dir(run_id, create=True)
    registry.upsert_run(run_id, {"config": cfg.to_dict()}, status="running", dataset=cfg.dataset,
                        backbone=cfg.backbone, mode=cfg.mode, image_size=cfg.image_size, preset=cfg.preset)
    timings: dict[str, float] = {}
    energies: dict[str, Energy] = {}

    @contextmanager
    def stage(name: str):
        """Time a stage and measure (or estimate) its energy."""
        with meter() as m:
            t = time.perf_counter()
            yield
        timings[name] = time.perf_counter() - t
        energies[name] = m["energy"]

    try:
        keras.utils.set_random_seed(cfg.seed)
        progress(ProgressEvent("data", f"loading {cfg.dataset} at {cfg.image_size} px"))
        with stage("data"):
            data = prepare(cfg.dataset, cfg.image_size, cfg.seed, cfg.split)
        progress(ProgressEvent("backbone", f"building {spec.title}"))
        with stage("backbone"):
            backbone, weights = build_backbone(cfg.backbone, cfg.image_size, cfg.weights)
        frozen_random = weights == "random" and cfg.mode == "feature-extraction" and not cfg.fine_tune_epochs
        warnings = [f"{spec.title} has RANDOM weights here: a frozen random backbone learns nothing useful"] \
            if frozen_random else []
        for w in warnings:
            print(f"WARNING: {w}", file=sys.stderr)
        registry.upsert_run(run_id, weights=weights)

        pool = pooling_layer(cfg.head, len(backbone.output_shape))
        layers = head_layers(cfg.head, len(data.class_names))
        n_backbone = len(backbone.layers)
        history: list[dict] = []
        use_cache = cfg.mode == "feature-extraction" and not cfg.augment.active
        features_cached = extractor_info = None
        if use_cache:
            fit_rows = np.concatenate([data.index["train"], data.index["val"]])
            progress(ProgressEvent("features", f"{spec.title} features of {len(fit_rows)} training and validation "
                                               "images (computed once, then cached)"))
            with stage("features"):        # the training and validation rows; test rows at evaluation
                keras_extractor = feature_extractor(backbone, pool)
                features = FeatureStore(
                    lambda n: make_extractor(keras_extractor, cfg.backbone, weights, cfg.image_size, cfg.head.pooling,
                                             n, data.images[fit_rows[:32]], cfg.feature_engine),
                    int(keras_extractor.output_shape[-1]), data, cfg.backbone, weights, cfg.head.pooling)
                features_cached = features.was_cached
                features.rows(fit_rows)
            if (fx := features.extractor) is not None:
                extractor_info = {"engine": fx.engine, "note": fx.note, "build_seconds": round(fx.build_seconds, 2)}
                progress(ProgressEvent("features", f"features computed with {fx.note}"))
            with stage("head"):
                history += _fit_head(cfg, progress, data, features, layers)
            model = assemble(backbone, pool, layers)
        else:
            model = assemble(backbone, pool, layers)
            set_trainable_from(model, n_backbone, 0 if cfg.mode == "full" else None)
            with stage("train"):
                history += _fit_images(cfg, progress, data, model, "train", cfg.epochs, cfg.learning_rate, 0)[0]

        fine_tune_start = kept_epoch = None
        if cfg.fine_tune_epochs:
            at = _resolve_fine_tune_at(cfg.fine_tune_at, n_backbone)
            n_trainable = set_trainable_from(model, n_backbone, at)
            fine_tune_start = len(history)
            progress(ProgressEvent("fine-tune", f"fine-tuning from layer {at} ({n_trainable} trainable layers)"))
            with stage("fine_tune"):
                ft_history, kept_epoch = _fit_images(cfg, progress, data, model, "fine-tune", cfg.fine_tune_epochs,
                                                     cfg.fine_tune_lr or cfg.learning_rate / 10, fine_tune_start)
            history += ft_history
        for layer in model.layers:
            layer.trainable = True

        progress(ProgressEvent("evaluate", f"evaluating on {len(data.index['test'])} test images"))
        with stage("evaluate"):
            x_test, y_test, ids_test = data.x("test"), data.y("test"), data.split_ids("test")
            if use_cache and not cfg.fine_tune_epochs:
                # The backbone is unchanged since its features were cached: evaluate the head on them, after
                # checking on real images that the assembled model gives the same outputs.
                head = head_model(features.dim, layers)
                probs = head(features.rows(data.index["test"]), training=False).numpy()
                check = predict_images(model, cfg.backbone, x_test[:32])
                gap = float(np.abs(check - probs[:32]).max()) if len(check) else 0.0
                if gap > 1e-3:
                    raise RuntimeError(f"assembled model disagrees with head-on-features by {gap:.2e}")
            else:
                probs = predict_images(model, cfg.backbone, x_test)
            metrics = classification_metrics(y_test, probs, data.class_names, ids_test)

        progress(ProgressEvent("save", "saving the model and results"))
        save_keras(model, folder / "model.keras")
        write_json(folder / "class_names.json", data.class_names)
        write_json(folder / "config.json", cfg.to_dict())
        write_json(folder / "history.json", {"epochs": history, "fine_tune_start_epoch": fine_tune_start,
                                             "kept_epoch": kept_epoch})
        write_json(folder / "predictions.json", {"split": "test", "ids": ids_test, "indices": data.index["test"],
                                                 "y_true": y_test, "probs": probs.round(6)})
        write_json(folder / "metrics.json", metrics)
        summary = {
            "run_id": run_id, "status": "done", "test_accuracy": metrics["accuracy"], "test_loss": metrics["loss"],
            "macro_f1": metrics["macro_f1"], "weights": weights, "train_seconds": round(time.perf_counter() - t_start, 2),
            "num_train": len(data.index["train"]), "num_val": len(data.index["val"]), "num_test": metrics["num"],
            "dataset": cfg.dataset, "dataset_source": data.source, "class_names": data.class_names,
            "backbone": cfg.backbone, "image_size": cfg.image_size, "mode": cfg.mode,
            "features_cached": features_cached, "feature_extractor": extractor_info,
            "epochs_run": len(history), "fine_tune_start_epoch": fine_tune_start,
            "fine_tune_kept_epoch": kept_epoch, "params": int(model.count_params()), "timings": {k: round(v, 3) for k, v in timings.items()},
            "energy": {"stages": {k: e.to_dict() for k, e in energies.items()},
                       "total": total(list(energies.values())).to_dict()},
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
