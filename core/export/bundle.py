"""One ZIP per variant that runs outside the lab: the model, labels.txt, metadata.json, README.md and predict.py.

TFLite variants converted from a stored Keras model are converted again with the lab's preprocessing inside, so the
bundle's model takes plain RGB pixels; the bundle is checked against the lab's own variant on test images before it
is written. Variants whose Keras source is not stored (QAT) keep their exact file, and predict.py applies the
preprocessing, which metadata.json gives exactly (every backbone's is per-pixel affine: y = x @ M + b).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
import zipfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

from core.compression.context import Workbench
from core.compression.options import resolve
from core.errors import LabError
from core.export import onnx_model
from core.models.backbones import get_backbone, preprocess
from core.models.predictor import open_model, run_info, variant_file
from core.progress import silent
from core.store.runs import atomic_write_bytes, read_json

TEMPLATE = Path(__file__).with_name("predict_template.py")
LEVEL_OF = {f"tflite_{lv}": lv for lv in ("float32", "float16", "dynamic", "int8", "int8_io")}
CHAINED = {"pruning_int8": "pruning", "clustering_int8": "clustering"}   # int8 of a stored Keras variant


def affine_preprocessing(backbone: str) -> tuple[list[list[float]], list[float]]:
    """The backbone's preprocessing as y = x @ M + b per pixel, found by probing it, and checked on random pixels."""
    probe = np.array([[[[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]]], np.float32) * 100.0
    y = np.asarray(preprocess(backbone, probe), np.float64)[0, 0]
    b = y[0]
    m = (y[1:] - b) / 100.0
    x = np.random.default_rng(0).uniform(0, 255, (1, 8, 8, 3)).astype(np.float32)
    if not np.allclose(np.asarray(preprocess(backbone, x)), x @ m + b, atol=1e-3):
        raise LabError(f"the preprocessing of {backbone} is not per-pixel affine; it cannot be exported")
    return m.round(9).tolist(), b.round(9).tolist()


def _row(info, variant: str) -> dict:
    rows = read_json(info.folder / "variants.json") if (info.folder / "variants.json").is_file() else []
    row = next((r for r in rows if r.get("name") == variant), None)
    if row is None and variant == "original":
        m = read_json(info.folder / "metrics.json")
        row = {"name": "original", "technique": "original", "test_accuracy": m.get("accuracy")}
    return row or {"name": variant}


def _keras_source(info, row: dict) -> tuple[Path | None, str | None]:
    """(Keras model to convert, TFLite level) for a variant that can be rebuilt with preprocessing inside."""
    tech = row.get("technique", "")
    if tech in LEVEL_OF:
        return info.folder / "model.keras", LEVEL_OF[tech]
    if tech in CHAINED:
        rows = read_json(info.folder / "variants.json")
        base = next((r for r in rows if r.get("technique") == CHAINED[tech]), None)
        f = info.folder / "variants" / base["name"] / "model.keras" if base else None
        return (f, "int8") if f and f.is_file() else (None, None)
    return None, None


def _convert_inside(info, row: dict, keras_file: Path, level: str, tmp: Path) -> tuple[bytes, Workbench]:
    from core.models.tflite import convert, export_saved_model
    from core.store.runs import load_keras
    from core.tfenv import tf
    options = resolve({g: v for g, v in (row.get("options") or {}).items()})
    wb = Workbench(info, options, silent, 2, tmp)
    raw = wb.representative_images().astype(np.float32)
    sm = export_saved_model(load_keras(keras_file), info.image_size, tmp / "saved_model",
                            prep=lambda x: preprocess(info.backbone, tf.cast(x, tf.float32)))
    return convert(sm, level, (lambda: ([raw[i:i + 1]] for i in range(len(raw)))) if level in ("int8", "int8_io")
                   else None), wb


FORMATS = ("native", "onnx")


def export_bundle(run_id: str, variant: str, out: str | Path, fmt: str = "native") -> dict:
    """Write `out` (.zip) for one variant of a run; return what it holds and how it was checked.

    `fmt` "native" keeps the variant's own kind (.tflite, or .keras for Keras variants); "onnx" converts a Keras
    variant (the original, pruned or clustered) to ONNX with the preprocessing inside."""
    info = run_info(run_id)
    src = variant_file(run_id, variant)
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise LabError(f"{out}: the bundle is a .zip file")
    if fmt not in FORMATS:
        raise LabError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx" and src.suffix != ".keras":
        raise LabError(f"{variant} is a {src.suffix} model; ONNX is exported from a Keras variant (original, "
                       "pruned or clustered); a TFLite variant exports as .tflite")
    row = _row(info, variant)
    matrix, offset = affine_preprocessing(info.backbone)
    spec = get_backbone(info.backbone)
    with tempfile.TemporaryDirectory(prefix="lab-export-") as t:
        tmp = Path(t)
        keras_file, level = _keras_source(info, row) if src.suffix == ".tflite" else (None, None)
        inside = keras_file is not None
        check = None
        if fmt == "onnx":
            blob, check = _onnx(info, row, src, tmp)
            (tmp / "model.onnx").write_bytes(blob)
            model_file, inside = "model.onnx", True
        elif inside:
            blob, wb = _convert_inside(info, row, keras_file, level, tmp)
            (tmp / "model.tflite").write_bytes(blob)
            check = _agreement(tmp / "model.tflite", src, info, wb)
            model_file = "model.tflite"
        else:
            model_file = src.name
            shutil.copyfile(src, tmp / model_file)
        meta = {
            "lab_run": run_id, "variant": variant, "technique": row.get("technique"), "model_file": model_file,
            "class_names": info.class_names, "backbone": info.backbone, "backbone_title": spec.title,
            "input": {"size": info.image_size, "colour_order": "RGB", "dtype": "uint8 pixels 0-255",
                      "resize": "the whole image to size x size, bilinear, no crop; EXIF rotation applied first"},
            "preprocessing": {"inside_model": inside, "matrix": matrix, "offset": offset,
                              "formula": "per pixel: y = x @ matrix + offset (x = RGB in 0-255)",
                              "note": "inside the model: feed the resized RGB pixels as they are" if inside else
                              "outside the model: predict.py applies the formula before the model"},
            "measured": {k: row.get(k) for k in ("test_accuracy", "macro_f1", "size_bytes", "gzip_bytes",
                                                 "latency_ms_p50", "latency_ms_p95", "check_accuracy", "ece")},
            "temperature": row.get("temperature"), "check_against_lab_variant": check,
            "exported": time.strftime("%Y-%m-%d %H:%M:%S"), "tensorflow": version("tensorflow"),
            **({"onnx": {"opset": onnx_model.OPSET, "tf2onnx": version("tf2onnx")}} if fmt == "onnx" else {}),
            "sha256": hashlib.sha256((tmp / model_file).read_bytes()).hexdigest(),
        }
        meta["runtime"] = _runtime(model_file)
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=1))
        (tmp / "labels.txt").write_text("\n".join(info.class_names) + "\n")
        shutil.copyfile(TEMPLATE, tmp / "predict.py")
        (tmp / "README.md").write_text(_readme(meta))
        files = ["README.md", "labels.txt", "metadata.json", "predict.py", model_file]
        buf = tmp / "bundle.zip"
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in files:
                z.write(tmp / f, f"{run_id}-{variant}/{f}")
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, buf.read_bytes())
    return {"out": str(out), "files": files, "preprocessing_inside": inside, "check": check,
            "size_bytes": out.stat().st_size}


def _onnx(info, row: dict, keras_file: Path, tmp: Path) -> tuple[bytes, dict]:
    """The Keras variant as ONNX with the preprocessing inside, and its agreement with the lab's model."""
    from core.store.runs import load_keras
    options = resolve({g: v for g, v in (row.get("options") or {}).items()})
    x = Workbench(info, options, silent, 2, tmp).data.x("test")[:200]
    blob = onnx_model.convert(load_keras(keras_file), info.backbone, info.image_size)
    return blob, onnx_model.agreement(blob, open_model(keras_file, info).predict(x), x)


def _agreement(bundle_model: Path, lab_file: Path, info, wb: Workbench) -> dict:
    """The re-converted model (raw pixels in) against the lab's own variant (preprocessed in) on the test images."""
    from ai_edge_litert.interpreter import Interpreter
    x = wb.data.x("test")[:200]
    lab = open_model(lab_file, info).predict(x)
    it = Interpreter(model_path=str(bundle_model))
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(inp["index"], [len(x), info.image_size, info.image_size, 3])
    it.allocate_tensors()
    feed = x.astype(np.float32)
    if np.dtype(inp["dtype"]).kind in "iu":
        scale, zero = inp["quantization"]
        lim = np.iinfo(inp["dtype"])
        feed = np.clip(np.round(feed / scale + zero), lim.min, lim.max).astype(inp["dtype"])
    it.set_tensor(inp["index"], feed)
    it.invoke()
    y = it.get_tensor(outp["index"])
    if y.dtype.kind in "iu":
        scale, zero = outp["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    agree = float((y.argmax(1) == lab.argmax(1)).mean())
    if agree < 0.97:
        raise LabError(f"the exported model agrees with the lab's {lab_file.parent.name} on only {agree:.1%} of "
                       "test images; not exported")
    return {"test_images": len(x), "top1_agreement": round(agree, 4),
            "max_prob_diff": round(float(np.abs(y - lab).max()), 6)}


def _runtime(model_file: str) -> str:
    """What predict.py needs for this bundle's model."""
    return {".onnx": "onnxruntime numpy pillow", ".keras": "tf_keras numpy pillow"}.get(
        Path(model_file).suffix, "ai-edge-litert numpy pillow")


def _readme(m: dict) -> str:
    acc = m["measured"].get("test_accuracy")
    return f"""# {m['variant']} of lab run {m['lab_run']}

{m['backbone_title']} classifier of {len(m['class_names'])} classes: {', '.join(m['class_names'])}.
Test accuracy in the lab: {'-' if acc is None else f'{100 * acc:.1f}%'}.

    pip install {m['runtime']}
    python predict.py photo.jpg [more.jpg ...]

Input: RGB, resized whole (no crop, bilinear) to {m['input']['size']} x {m['input']['size']} px.
Preprocessing: {m['preprocessing']['note']} ({m['preprocessing']['formula']}).
`metadata.json` holds the class names, the exact preprocessing, the temperature that calibrates the probabilities,
and the accuracy, size and latency measured in the lab; `labels.txt` holds one class name per line, in output order.
"""
