"""Heads and the flat functional model: backbone layers and head layers in one graph.

A backbone nested as a layer would break pruning, clustering and QAT, so the head's layers are applied
directly to the backbone's output tensor. The same layer objects serve the head-only model trained on
cached features and the assembled full model, so trained weights carry over without copying.
"""
from __future__ import annotations

from core.config import HeadConfig


def pooled(backbone, cfg: HeadConfig, taps: tuple[str, ...] = ()):
    """The tensor the head reads: the backbone's output pooled, or, with `taps` (layer names, shallow to deep), each
    tap's output pooled and concatenated in that order. Flat outputs (the MLP) pass through."""
    from core.tfenv import keras
    if len(backbone.output_shape) == 2:
        return backbone.output
    make = {"avg": keras.layers.GlobalAveragePooling2D, "max": keras.layers.GlobalMaxPooling2D,
            "flatten": keras.layers.Flatten}[cfg.pooling]
    if not taps:
        return make(name="head_pool")(backbone.output)
    vectors = [make(name=f"head_pool_{i}")(backbone.get_layer(name).output) for i, name in enumerate(taps)]
    return keras.layers.Concatenate(name="head_taps")(vectors)


def tap_widths(backbone, taps: tuple[str, ...]) -> list[int]:
    """Feature columns each tap contributes to `pooled` (the backbone's output alone when `taps` is empty)."""
    return [int(backbone.get_layer(n).output_shape[-1]) for n in taps] or [int(backbone.output_shape[-1])]


def head_layers(cfg: HeadConfig, n_classes: int) -> list:
    """Feature normalisation, dense/dropout layers and the softmax classifier, in order.

    Pooled CNN features are all positive with a large mean (max pooling over ReLU6 gives ~3.7 +- 2.3 for
    MobileNetV2); a deep head such as Dense 128-64-32 with dropout 0.5 then often fails to train from them.
    BatchNormalization first makes such heads train reliably (0.33 -> 0.94-0.99 test accuracy on shapes).
    """
    from core.tfenv import keras
    layers = [keras.layers.BatchNormalization(name="head_norm")] if cfg.batch_norm else []
    for i, units in enumerate(cfg.dense):
        layers.append(keras.layers.Dense(int(units), activation=cfg.activation, name=f"head_dense_{i}"))
        if cfg.dropout:
            layers.append(keras.layers.Dropout(cfg.dropout, name=f"head_dropout_{i}"))
    if not cfg.dense and cfg.dropout:
        layers.append(keras.layers.Dropout(cfg.dropout, name="head_dropout"))
    layers.append(keras.layers.Dense(n_classes, activation="softmax", name="predictions"))
    return layers


def apply(layers: list, x):
    for layer in layers:
        x = layer(x)
    return x


def feature_extractor(backbone, cfg: HeadConfig, taps: tuple[str, ...] = ()):
    """Backbone plus pooling: the model whose outputs are cached in feature-extraction mode."""
    from core.tfenv import keras
    return keras.Model(backbone.input, pooled(backbone, cfg, taps), name="feature_extractor")


def head_input(model) -> str:
    """Name of the layer whose output the head reads (the pooled features `pooled` makes, as they are cached)."""
    first = next(layer for layer in model.layers if layer.name in ("head_norm", "predictions")
                 or layer.name.startswith(("head_dense_", "head_dropout")))
    return first.inbound_nodes[0].inbound_layers.name


def head_model(feature_dim: int, layers: list):
    from core.tfenv import keras
    inp = keras.Input((feature_dim,), name="features")
    return keras.Model(inp, apply(layers, inp), name="head")


def assemble(backbone, cfg: HeadConfig, layers: list, taps: tuple[str, ...] = (), name: str = "classifier"):
    """The flat full model: Model(backbone.input, head(pooled taps of backbone))."""
    from core.tfenv import keras
    return keras.Model(backbone.input, apply(layers, pooled(backbone, cfg, taps)), name=name)


def set_trainable_from(model, backbone_layers: int, fine_tune_at: int | None) -> int:
    """Freeze backbone layers below `fine_tune_at` (all if None); BatchNorm stays frozen. Return #trainable layers."""
    from core.tfenv import keras
    n = 0
    for i, layer in enumerate(model.layers):
        if i < backbone_layers:
            layer.trainable = (fine_tune_at is not None and i >= fine_tune_at
                               and not isinstance(layer, keras.layers.BatchNormalization))
        else:
            layer.trainable = True
        n += bool(layer.trainable and layer.weights)
    return n
