"""Classify images with this bundle's model: `python predict.py IMAGE [IMAGE ...]` (needs ai-edge-litert, numpy and
pillow; an .onnx bundle needs onnxruntime instead of ai-edge-litert, a .keras bundle tf_keras). Prints
`image class probability` per image, as the lab's predict does."""
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
META = json.loads((HERE / "metadata.json").read_text())
LABELS = (HERE / "labels.txt").read_text().splitlines()


def load(path: str) -> np.ndarray:
    """RGB uint8 at the model's input size: EXIF rotation applied, bilinear resize of the whole image (no crop)."""
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    s = META["input"]["size"]
    return np.asarray(img.resize((s, s), Image.BILINEAR), np.uint8)


def preprocess(x: np.ndarray) -> np.ndarray:
    """Only for models that do not preprocess inside: the lab's exact transform, per pixel y = x @ M + b."""
    p = META["preprocessing"]
    if p["inside_model"]:
        return x.astype(np.float32)
    return (x.astype(np.float32) @ np.array(p["matrix"], np.float32) + np.array(p["offset"], np.float32))


def run_tflite(images: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(HERE / META["model_file"]))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(inp["index"], [1, *images.shape[1:]])
    it.allocate_tensors()
    probs = []
    for img in images:
        x = preprocess(img[None])
        if np.dtype(inp["dtype"]).kind in "iu":          # integer input: quantize with the model's own parameters
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
        it.set_tensor(inp["index"], x)
        it.invoke()
        y = it.get_tensor(out["index"])
        if y.dtype.kind in "iu":
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        probs.append(y[0])
    return np.stack(probs)


def run_keras(images: np.ndarray) -> np.ndarray:
    import os
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras
    model = tf_keras.models.load_model(str(HERE / META["model_file"]), compile=False, safe_mode=True)
    return model.predict(preprocess(images), verbose=0)


def run_onnx(images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(HERE / META["model_file"]), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: preprocess(images)})[0]


RUNNERS = {".tflite": run_tflite, ".onnx": run_onnx, ".keras": run_keras}


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    images = np.stack([load(p) for p in paths])
    probs = RUNNERS[Path(META["model_file"]).suffix](images)
    t = META.get("temperature")
    if t:                                                 # calibrated on the validation split, as the lab does
        z = np.log(np.clip(probs, 1e-12, 1)) / t
        probs = np.exp(z - z.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
    for path, p in zip(paths, probs):
        k = int(p.argmax())
        print(f"{path}\t{LABELS[k]}\t{p[k]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
