"""ONNX export of a Keras variant with the lab's preprocessing inside (tf2onnx), run by onnxruntime.

The converted model takes plain RGB pixels (float32, 0-255), like the TFLite bundles; it is checked against the
lab's own model on test images before it is written.
"""
from __future__ import annotations

import numpy as np

from core.errors import LabError
from core.models.backbones import preprocess

OPSET = 17
MIN_AGREEMENT = 0.99
MAX_PROB_DIFF = 1e-3


def available() -> bool:
    """Whether tf2onnx and onnxruntime are installed (they are pinned in requirements.txt)."""
    from importlib.util import find_spec
    return all(find_spec(m) is not None for m in ("tf2onnx", "onnxruntime"))


def convert(model, backbone: str, image_size: int) -> bytes:
    """The Keras `model` as ONNX bytes whose input `image` is (N, S, S, 3) RGB pixels in [0, 255]."""
    if not available():
        raise LabError("ONNX export needs tf2onnx and onnxruntime: run bin/setup (they are in requirements.txt)")
    import tf2onnx

    from core.tfenv import tf
    fn = tf.function(lambda x: model(preprocess(backbone, x), training=False))
    spec = [tf.TensorSpec([None, image_size, image_size, 3], tf.float32, "image")]
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=OPSET)
    return proto.SerializeToString()


def run(blob: bytes, pixels: np.ndarray, threads: int = 2) -> np.ndarray:
    """Class probabilities of an ONNX model from `convert` for uint8 RGB images at its input size."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: pixels.astype(np.float32)})[0]


def agreement(blob: bytes, lab_probs: np.ndarray, pixels: np.ndarray) -> dict:
    """The ONNX model against the lab's own probabilities on the same images; LabError below the bar."""
    y = run(blob, pixels)
    agree = float((y.argmax(1) == lab_probs.argmax(1)).mean())
    diff = float(np.abs(y - lab_probs).max())
    if agree < MIN_AGREEMENT or diff > MAX_PROB_DIFF:
        raise LabError(f"the ONNX model agrees with the lab's model on {agree:.1%} of test images (largest "
                       f"probability gap {diff:.2g}); not exported")
    return {"test_images": len(pixels), "top1_agreement": round(agree, 4), "max_prob_diff": round(diff, 6)}
