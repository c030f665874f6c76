"""The workbench one compress() call shares between techniques: the run, its data, options and
intermediate models (a pruned model feeds both `pruning` and `pruning_int8`, and is trained once)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from core.config import TrainConfig
from core.data.prepare import PreparedData, prepare
from core.errors import LabError
from core.evaluation.evaluator import TestSplit
from core.progress import Progress, ProgressEvent
from core.store.runs import read_json
from core.models.predictor import RunInfo


class Workbench:
    def __init__(self, info: RunInfo, options: dict[str, dict[str, Any]], progress: Progress, threads: int,
                 tmp: Path):
        self.info, self.options, self.progress, self.threads, self.tmp = info, options, progress, threads, tmp
        self.cfg = TrainConfig.from_dict(info.config)
        self.data: PreparedData = prepare(self.cfg.dataset, self.cfg.image_size, self.cfg.seed, self.cfg.split)
        if self.data.class_names != info.class_names:
            raise LabError(f"dataset '{self.cfg.dataset}' now has classes {self.data.class_names}, "
                           f"the run was trained on {info.class_names}")
        stored = info.folder / "predictions.json"
        if stored.is_file() and read_json(stored).get("indices") != self.data.index["test"].tolist():
            raise LabError(f"the test split of '{self.cfg.dataset}' differs from the one the run was evaluated on "
                           "(the dataset changed since training); variants could not be compared honestly")
        run = info.folder / "run.json"
        # small data: the head was fitted on train+val, so the validation split is not held out from it
        self.head_saw_val = run.is_file() and (read_json(run).get("head_fit") or {}).get("fitted_on") == "train+val"
        self._memo: dict[Any, Any] = {}
        self.fine_tune_note: str | None = None

    def say(self, stage: str, message: str) -> None:
        self.progress(ProgressEvent(stage, message))

    def split(self, name: str) -> TestSplit | None:
        """One split ("test", "val") as the evaluator takes it, built once; None when the run has no such images."""
        d = self.data
        return self.memo(("split", name), lambda: TestSplit(d.x(name), d.y(name), d.split_ids(name), d.class_names)
                         if len(d.index[name]) else None)

    def original(self):
        """A fresh copy of the trained model (tfmot's clustering modifies the model it is given)."""
        from core.store.runs import load_keras
        return load_keras(self.info.folder / "model.keras")

    def fine_tune_rows(self) -> np.ndarray:
        """The training rows compression fine-tunes on: all, or a seeded stratified sample of `max_images`."""
        tr = self.data.index["train"]
        n = self.options["fine_tune"]["max_images"]
        if not n or n >= len(tr):
            return tr
        from sklearn.model_selection import train_test_split
        keep, _ = train_test_split(tr, train_size=n, stratify=self.data.labels[tr], random_state=self.cfg.seed)
        return np.sort(keep)

    def fine_tune_data(self):
        """The fine-tuning rows, preprocessed by the same pipeline as training, in shuffled batches."""
        from core.data.pipeline import image_dataset
        from .tfmot_methods import FineTuneData
        tr = self.fine_tune_rows()
        if len(tr) < len(self.data.index["train"]):
            self.fine_tune_note = f"fine-tuned on {len(tr)} of the {len(self.data.index['train'])} training images"
        bs = self.cfg.batch_size
        cached = self.options["fine_tune"]["cache"] and not self.cfg.augment.active
        return FineTuneData(lambda: image_dataset(self.cfg.backbone, self.data.take(tr), self.data.labels[tr], bs,
                                                  True, self.cfg.seed, self.cfg.augment),
                            int(np.ceil(len(tr) / bs)), self.progress, self.cfg.seed,
                            self.head_inputs if cached else None)

    def head_inputs(self, model, layer: str):
        """Batches of what `layer` of the run's model outputs for the fine-tuning rows (computed once per compress()
        call: the layers below it are frozen) and their labels, shuffled exactly as `fine_tune_data`'s images."""
        from core.data.pipeline import predict_images
        from core.store.settings import batch_rows
        from core.tfenv import keras, tf
        tr = self.fine_tune_rows()
        step = batch_rows(self.cfg.image_size ** 2 * 3 * 5)      # images as uint8 and float32, within the budget

        def compute():
            self.say("compress", f"computing the frozen layers below {layer} once for {len(tr)} training images")
            below = keras.Model(model.input, model.get_layer(layer).get_output_at(0))   # the run's own graph
            return np.concatenate([predict_images(below, self.cfg.backbone, self.data.take(tr[i:i + step]))
                                   for i in range(0, len(tr), step)])
        x = self.memo(("head_inputs", layer, tr.tobytes()), compute)
        y, bs, seed = self.data.labels[tr], self.cfg.batch_size, self.cfg.seed
        return lambda: tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True) \
            .batch(bs).prefetch(tf.data.AUTOTUNE)

    def representative_images(self) -> np.ndarray:
        """A seeded sample of training images (uint8) for int8 calibration."""
        tr = self.data.index["train"]
        n = min(self.options["tflite"]["representative_images"], len(tr))
        pick = np.sort(np.random.default_rng(self.cfg.seed).choice(tr, n, replace=False))
        return self.data.images[pick]

    def representative(self) -> Callable[[], Iterator[list[np.ndarray]]]:
        """The converter's representative dataset: the sample, preprocessed exactly as for prediction."""
        from core.models.backbones import preprocess
        x = np.asarray(preprocess(self.cfg.backbone, self.representative_images()), np.float32)
        return lambda: ([x[i:i + 1]] for i in range(len(x)))

    def memo(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def saved_model(self, key: str, model_fn: Callable[[], Any]) -> Path:
        """A lean SavedModel of a Keras model, exported once per compress() call and shared by all TFLite levels."""
        from core.models.tflite import export_saved_model

        def make() -> Path:
            return export_saved_model(model_fn(), self.cfg.image_size, self.tmp / f"saved_model_{key}")
        return self.memo(("saved_model", key), make)
