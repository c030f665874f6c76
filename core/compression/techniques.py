"""The technique registry. Each technique builds one variant (a .keras or .tflite file) from a run;
adding a technique is adding one entry to TECHNIQUES."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .options import DEFAULTS
from core.models.tflite import LEVELS, NEEDS_REPRESENTATIVE

if TYPE_CHECKING:
    from .context import Workbench


@dataclass
class Built:
    """What a technique produced: its model file, notes for the reader and technique details."""
    file: Path
    notes: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Technique:
    name: str                                        # what --techniques takes
    title: str
    description: str
    groups: tuple[str, ...]                          # option groups it reads (see options.DEFAULTS)
    variant: Callable[[dict], str]                   # variant name under the resolved options
    build: Callable[["Workbench", Path], Built]      # writes the model file into the folder
    expect_identical: bool = False                   # must agree 100% with the original (float32 TFLite)

    @property
    def defaults(self) -> dict:
        return {g: dict(DEFAULTS[g]) for g in self.groups}


# ---- shared steps (memoised per compress() call) ----

def _pruned(wb: "Workbench"):
    from .tfmot_methods import prune
    o = wb.options["pruning"]

    def make():
        wb.say("compress:pruning",
               f"pruning to {o['sparsity']:.0%} ({o['schedule']}, {o['epochs']} epochs, {o['scope']})")
        return prune(wb.original(), wb.fine_tune_data(), o["sparsity"], o["schedule"], o["epochs"], o["lr"],
                     o["scope"], o["ramp"])
    return wb.memo(("pruned", tuple(sorted(o.items()))), make)


def _clustered(wb: "Workbench"):
    from .tfmot_methods import cluster
    o = wb.options["clustering"]

    def make():
        wb.say("compress:clustering", f"clustering to {o['clusters']} centroids per kernel ({o['epochs']} epochs)")
        return cluster(wb.original(), wb.fine_tune_data(), o["clusters"], o["epochs"], o["lr"], o["scope"], o["init"])
    return wb.memo(("clustered", tuple(sorted(o.items()))), make)


def _save_keras(model, folder: Path) -> Path:
    from core.store.runs import save_keras
    save_keras(model, folder / "model.keras")
    return folder / "model.keras"


def _write_tflite(data: bytes, folder: Path) -> Path:
    from core.store.runs import atomic_write_bytes
    atomic_write_bytes(folder / "model.tflite", data)
    return folder / "model.tflite"


def _convert(wb: "Workbench", key: str, model_fn: Callable, level: str, folder: Path) -> Path:
    from core.models.tflite import convert
    wb.say(f"compress:{level}", f"converting the {key} model to TFLite ({level})")
    sm = wb.saved_model(key, model_fn)
    return _write_tflite(convert(sm, level, wb.representative() if level in NEEDS_REPRESENTATIVE else None), folder)


_TFLITE_NOTES = {
    "float32": [],
    "float16": ["weights stored as float16, dequantized to float32 at load time"],
    "dynamic": ["int8 weights, activations quantized at run time (hybrid kernels: the slowest level on x86)"],
    "int8": ["int8 weights and activations, float32 input and output (quantize/dequantize ops inside)"],
    "int8_io": ["integer only: feed int8 = round(preprocessed / scale + zero_point); output int8 probabilities"],
}


def _calibration_note(wb: "Workbench", level: str) -> list[str]:
    if level not in NEEDS_REPRESENTATIVE:
        return []
    n = len(wb.representative_images())
    note = f"calibrated on {n} training images, preprocessed as for prediction"
    return [note + (" (fewer than the 100 recommended: the training split is small)" if n < 100 else "")]


def _tflite_level(level: str) -> Callable[["Workbench", Path], Built]:
    def build(wb: "Workbench", folder: Path) -> Built:
        f = _convert(wb, "original", wb.original, level, folder)
        return Built(f, _TFLITE_NOTES[level] + _calibration_note(wb, level))
    return build


_DENSE_FILE = ("the .keras file stores zeros and repeated values densely: its raw size does not shrink, "
               "its gzipped size does")


def _build_pruning(wb: "Workbench", folder: Path) -> Built:
    model, info = _pruned(wb)
    return Built(_save_keras(model, folder),
                 ["DepthwiseConv2D kernels are not pruned by tfmot and stay dense (see sparsity_depthwise)",
                  _DENSE_FILE, "BatchNorm frozen during fine-tuning"], info)


def _build_clustering(wb: "Workbench", folder: Path) -> Built:
    model, info = _clustered(wb)
    return Built(_save_keras(model, folder),
                 [f"{wb.options['clustering']['clusters']} centroids per Conv2D/Dense kernel; DepthwiseConv2D kernels, "
                  "biases and BatchNorm are not clustered by tfmot", _DENSE_FILE], info)


def _build_pruning_int8(wb: "Workbench", folder: Path) -> Built:
    f = _convert(wb, "pruned", lambda: _pruned(wb)[0], "int8", folder)
    return Built(f, ["pruned Keras model, then full-integer int8 (zeros stay zero: weights are symmetric int8)"]
                 + _calibration_note(wb, "int8"), _pruned(wb)[1])


def _build_clustering_int8(wb: "Workbench", folder: Path) -> Built:
    f = _convert(wb, "clustered", lambda: _clustered(wb)[0], "int8", folder)
    return Built(f, ["clustered Keras model, then full-integer int8 (per-channel int8 may split a cluster's value)"]
                 + _calibration_note(wb, "int8"), _clustered(wb)[1])


def _build_qat(wb: "Workbench", folder: Path, preserve_sparsity: bool = False) -> Built:
    from .tfmot_methods import qat
    group = "pqat" if preserve_sparsity else "qat"
    o = wb.options[group]
    source = _pruned(wb)[0] if preserve_sparsity else wb.original()
    wb.say(f"compress:{group}", f"quantization-aware training ({o['epochs']} epochs)")
    model, info = qat(source, wb.fine_tune_data(), o["epochs"], o["lr"], preserve_sparsity, f"compress:{group}")
    f = _convert(wb, group, lambda: model, "qat", folder)
    notes = ["BatchNorm folded into the convolutions before QAT, so training simulates the exported int8 model",
             f"activation ranges calibrated on {info['calibration_batches']} training batches, then {o['epochs']} "
             "epoch(s) of fine-tuning; int8 weights and activations, float32 input and output"]
    if preserve_sparsity:
        notes.append("pruned first (pruning options), then QAT with tfmot's Default8BitPrunePreserveQuantizeScheme")
        info = {**info, "pruning": _pruned(wb)[1]}
    return Built(f, notes, info)


def _pct(x: float) -> int:
    return int(round(x * 100))


def _scoped(name: str, o: dict) -> str:
    return name + ("_head" if o["scope"] == "head" else "")


def _pruned_name(o: dict) -> str:
    return _scoped(f"pruned_{_pct(o['pruning']['sparsity'])}", o["pruning"])


def _clustered_name(o: dict) -> str:
    return _scoped(f"clustered_{o['clustering']['clusters']}", o["clustering"])


TECHNIQUES: dict[str, Technique] = {}


def register(t: Technique) -> Technique:
    TECHNIQUES[t.name] = t
    return t


register(Technique("pruning", "Magnitude pruning",
                   "tfmot prune_low_magnitude, fine-tuned with UpdatePruningStep, stripped",
                   ("pruning",), _pruned_name, _build_pruning))
register(Technique("clustering", "Weight clustering", "tfmot cluster_weights, fine-tuned, stripped",
                   ("clustering",), _clustered_name, _build_clustering))
for _level, _title in (("float32", "TFLite float32"), ("float16", "TFLite float16"),
                       ("dynamic", "TFLite dynamic range"), ("int8", "TFLite full integer (float fallback)"),
                       ("int8_io", "TFLite integer only (int8 input/output)")):
    register(Technique(f"tflite_{_level}", _title, f"post-training: {LEVELS[_level]}",
                       ("tflite",), (lambda lv: lambda o: f"tflite_{lv}")(_level), _tflite_level(_level),
                       expect_identical=_level == "float32"))
register(Technique("qat", "Quantization-aware training", "tfmot quantize_model, fine-tuned, converted to int8 TFLite",
                   ("qat",), lambda o: "qat_int8", _build_qat))
register(Technique("pruning_int8", "Pruning, then int8", "the pruned model converted to full-integer TFLite",
                   ("pruning", "tflite"), lambda o: _pruned_name(o) + "_int8", _build_pruning_int8))
register(Technique("clustering_int8", "Clustering, then int8", "the clustered model converted to full-integer TFLite",
                   ("clustering", "tflite"), lambda o: _clustered_name(o) + "_int8", _build_clustering_int8))
register(Technique("pqat", "Pruning-preserving QAT",
                   "prune, then QAT keeping the zeros (collaborative optimization), int8 TFLite",
                   ("pruning", "pqat"), lambda o: f"pqat_{_pct(o['pruning']['sparsity'])}_int8",
                   lambda wb, folder: _build_qat(wb, folder, preserve_sparsity=True)))

DEFAULT_TECHNIQUES: list[str] = ["pruning", "clustering", "tflite_float32", "tflite_float16", "tflite_dynamic",
                                 "tflite_int8", "tflite_int8_io"]
