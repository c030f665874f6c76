"""TFLite conversion at the five post-training levels (plus QAT models) and reading weights back from a .tflite.

Every conversion starts from a lean SavedModel (a tf.Module holding only the variables and one serving
function with a dynamic batch dimension), saved once per Keras model and shared by all levels: handing the
converter the Keras model itself makes it serialise every layer, which costs about 40 s per conversion.
The model input is the preprocessed float image; preprocessing stays outside the model (core.backbones.preprocess).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .measure import WeightCount

LEVELS: dict[str, str] = {
    "float32": "plain conversion, float32 weights and activations",
    "float16": "float16 weights, float32 compute",
    "dynamic": "dynamic range: int8 weights, activations quantized on the fly",
    "int8": "full integer with float fallback: int8 weights and activations, float32 input/output",
    "int8_io": "integer only: int8 weights, activations, input and output",
    "qat": "int8 model from quantization-aware training (ranges learned in training)",
}
NEEDS_REPRESENTATIVE = ("int8", "int8_io")


def export_saved_model(model, image_size: int, folder: Path, prep: Callable | None = None) -> Path:
    """Save `model` as a lean SavedModel with input (None, S, S, 3) float32; return the folder. With `prep` (a
    function of tensors) the input is raw RGB pixels in [0, 255] and `prep` runs inside the model first."""
    from core.tfenv import tf
    module = tf.Module()
    module.variables_ = list(model.variables)
    module.serve = tf.function(lambda x: model(prep(x) if prep else x, training=False),
                               input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32, "image")])
    tf.saved_model.save(module, str(folder), signatures=module.serve.get_concrete_function())
    return folder


def convert(saved_model: Path, level: str,
            representative: Callable[[], Iterator[list[np.ndarray]]] | None = None) -> bytes:
    """Convert a SavedModel at one of LEVELS; int8 levels need a representative dataset of preprocessed images."""
    from core.tfenv import tf
    if level not in LEVELS:
        raise ValueError(f"unknown TFLite level {level!r}")
    c = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if level != "float32":
        c.optimizations = [tf.lite.Optimize.DEFAULT]
    if level == "float16":
        c.target_spec.supported_types = [tf.float16]
    if level in NEEDS_REPRESENTATIVE:
        if representative is None:
            raise ValueError(f"TFLite level {level} needs a representative dataset")
        c.representative_dataset = representative
    if level == "int8_io":
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        c.inference_input_type = tf.int8
        c.inference_output_type = tf.int8
    return c.convert()


def weight_stats(model_bytes: bytes) -> WeightCount:
    """Count stored weights in a .tflite flatbuffer: all constant tensors, and the kernels of
    CONV_2D / FULLY_CONNECTED (prunable) and DEPTHWISE_CONV_2D ops, followed through DEQUANTIZE (float16)."""
    from ai_edge_litert import schema_py_generated as schema
    op = schema.BuiltinOperator
    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    dtypes = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16,
              schema.TensorType.INT8: np.int8, schema.TensorType.UINT8: np.uint8,
              schema.TensorType.INT32: np.int32, schema.TensorType.INT64: np.int64,
              schema.TensorType.INT16: np.int16}
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    count = WeightCount()
    for graph in model.subgraphs:
        values: dict[int, np.ndarray] = {}
        for i, t in enumerate(graph.tensors):
            buf = model.buffers[t.buffer]
            if buf.data is not None and len(buf.data) and t.type in dtypes:
                values[i] = np.frombuffer(np.asarray(buf.data, np.uint8).tobytes(), dtypes[t.type])
        produced_by_dequantize = {o.outputs[0]: o.inputs[0] for o in graph.operators
                                  if codes[o.opcodeIndex] == op.DEQUANTIZE and o.inputs[0] in values}
        groups: dict[int, str] = {}
        biases: set[int] = set()
        for o in graph.operators:
            kind = {op.CONV_2D: "prunable", op.FULLY_CONNECTED: "prunable",
                    op.DEPTHWISE_CONV_2D: "depthwise"}.get(codes[o.opcodeIndex])
            if kind and len(o.inputs) > 1:
                w = produced_by_dequantize.get(o.inputs[1], o.inputs[1])
                if w in values:
                    groups[w] = kind
                if len(o.inputs) > 2 and o.inputs[2] >= 0:
                    biases.add(produced_by_dequantize.get(o.inputs[2], o.inputs[2]))
        for i, v in values.items():
            if v.dtype.kind == "f" or v.dtype in (np.int8, np.uint8, np.int16) or i in biases:
                count.add(v, groups.get(i))   # integer constants that are not biases are shapes and axes
    return count
