"""tfmot methods on the lab's flat functional models: pruning, weight clustering, QAT and prune-preserving QAT.

What we learnt with tfmot 0.8.1 and MobileNetV2 (tf_keras 2.21):
- Only layers tfmot can compress are wrapped (clone_model with a clone_function): a smaller training graph,
  and the same mechanism gives the head-only scope.
- No mask is computed at step 0 (the wrapper's step counter already reads 1 on the first batch), so
  ConstantSparsity(begin_step=0, frequency=f) first prunes at step f, and a schedule ending on the last step
  prunes one-shot with no time to recover (measured: 0.64 test accuracy). The schedule here ends at `ramp`
  of the fine-tuning steps; the remaining steps let the network recover under the final mask.
- BatchNormalization is frozen (inference mode) while fine-tuning: batches of 32 would overwrite ImageNet statistics.
- DepthwiseConv2D kernels are neither pruned nor clustered by tfmot (registry entries with no weights).
- quantize_model accepts the flat MobileNetV2 (Conv+BN+ReLU6 patterns, DepthwiseConv2D, Add, ZeroPadding2D) but:
  it rejects a BatchNormalization that does not follow a convolution (the head's `head_norm`); it fake-quantizes
  conv kernels before BN while the converter quantizes the BN-folded kernel (the exported int8 model then lost
  5 points against its own Keras simulation); and its activation ranges start at [-6, 6] with an EMA of 0.999,
  which tens of fine-tuning steps cannot move. So QAT folds BatchNorm into the neighbouring layers first
  (`fold_batchnorm`), annotates any BN left with an output-only config, and calibrates the ranges on a few
  training batches before fine-tuning.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from core.progress import Progress, keras_callback
from core.models.measure import prunable_weight_names, registry_weights
from core.tfenv import keras, tf  # noqa: F401  (tf_keras must be set up before tfmot is imported)

import tensorflow_model_optimization as tfmot  # noqa: E402
from tensorflow_model_optimization.python.core.clustering.keras import clustering_registry  # noqa: E402


@dataclass
class FineTuneData:
    """The run's training split as preprocessed batches, and how many steps one epoch takes.

    `head_inputs(model, layer)`, when given, makes the same batches (same order) of what `layer` outputs instead of
    images: the frozen layers below it computed once, for a scope that trains only what is above it."""
    dataset: Callable[[], "tf.data.Dataset"]
    steps_per_epoch: int
    progress: Progress
    seed: int = 0
    head_inputs: Callable[[object, str], Callable[[], "tf.data.Dataset"]] | None = None


def is_head(layer) -> bool:
    """Layers of the classification head (named by core.model.head_layers / pooling_layer)."""
    return layer.name.startswith("head_") or layer.name == "predictions"


def prepare_fine_tune(model, scope: str = "whole") -> None:
    """Freeze BatchNorm everywhere, and the backbone too when only the head is compressed."""
    for layer in model.layers:
        in_scope = scope == "whole" or is_head(layer)
        layer.trainable = in_scope and not isinstance(layer, keras.layers.BatchNormalization)


def _wrap(model, wrap: Callable, selected: Callable[[object], bool]):
    """Clone the functional graph, wrapping the selected layers (the others are reused as they are)."""
    wrapped = []

    def clone(layer):
        if selected(layer):
            wrapped.append(layer.name)
            return wrap(layer)
        return layer
    out = keras.models.clone_model(model, clone_function=clone)
    if not wrapped:
        raise ValueError("no layer in scope can be compressed")
    return out, wrapped


def _fit(model, data: FineTuneData, epochs: int, lr: float, stage: str, callbacks: list) -> list[dict]:
    """Fine-tune with Adam, the learning rate annealed to zero (cosine): the last steps settle instead of
    jumping around, which made pruned accuracy on small test splits less of a lottery."""
    keras.utils.set_random_seed(data.seed)            # the run's seed: dropout and shuffling are reproducible
    rate = keras.optimizers.schedules.CosineDecay(lr, max(1, epochs * data.steps_per_epoch))
    model.compile(keras.optimizers.Adam(rate), "sparse_categorical_crossentropy", ["accuracy"])
    h = model.fit(data.dataset(), epochs=epochs, verbose=0,
                  callbacks=[*callbacks, keras_callback(data.progress, stage, epochs)])
    n = len(next(iter(h.history.values()), []))
    return [{"epoch": i + 1, **{k: round(float(v[i]), 5) for k, v in h.history.items()}} for i in range(n)]


def _fit_scope(model, wrapped, data: FineTuneData, scope: str, epochs: int, lr: float, stage: str,
               callbacks: list) -> tuple[list[dict], dict]:
    """Fine-tune `wrapped` (`model` with compressed layers). With the head scope the backbone is frozen: when cached
    head inputs are available only the head trains, on them (one backbone pass in all, not one per epoch); else
    every epoch runs the images through the whole model. Returns (history, record of which way)."""
    from dataclasses import replace
    from core.models.graph import model_above
    from core.models.heads import head_input
    if scope == "head" and data.head_inputs is not None:
        cut = head_input(model)
        head = model_above(wrapped, cut, name="compressed_head")   # the wrapped head layers themselves
        history = _fit(head, replace(data, dataset=data.head_inputs(model, cut)), epochs, lr, stage, callbacks)
        return history, {"fine_tuned_on": f"cached head inputs ({cut})", "backbone_passes": 1}
    return _fit(wrapped, data, epochs, lr, stage, callbacks), {"fine_tuned_on": "images", "backbone_passes": epochs}


def prune(model, data: FineTuneData, sparsity: float, schedule: str, epochs: int, lr: float, scope: str,
          ramp: float, stage: str = "compress:pruning") -> tuple[object, dict]:
    """Magnitude pruning to `sparsity` of each prunable kernel in scope; returns (stripped model, info)."""
    total = max(1, epochs * data.steps_per_epoch)
    end = max(1, int(round(total * ramp)))
    freq = max(1, end // 5)
    end = freq * max(1, end // freq)                 # the last mask update lands exactly on end_step
    if schedule == "polynomial":
        sched = tfmot.sparsity.keras.PolynomialDecay(0.0, sparsity, begin_step=0, end_step=end, frequency=freq)
    else:
        sched = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, end_step=end, frequency=freq)
    prepare_fine_tune(model, scope)
    wrapped, names = _wrap(model, lambda l: tfmot.sparsity.keras.prune_low_magnitude(l, pruning_schedule=sched),
                           lambda l: bool(prunable_weight_names(l)) and (scope == "whole" or is_head(l)))
    history, way = _fit_scope(model, wrapped, data, scope, epochs, lr, stage, [tfmot.sparsity.keras.UpdatePruningStep()])
    info = {"pruned_layers": len(names), "schedule": schedule, "mask_updates_every_steps": freq,
            "final_mask_update_step": end, "fine_tune_steps": total, **way, "history": history}
    return tfmot.sparsity.keras.strip_pruning(wrapped), info


def cluster(model, data: FineTuneData, clusters: int, epochs: int, lr: float, scope: str, init: str,
            stage: str = "compress:clustering") -> tuple[object, dict]:
    """Weight clustering of each clusterable kernel in scope to `clusters` centroids; (stripped model, info)."""
    inits = {"kmeans++": tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS,
             "linear": tfmot.clustering.keras.CentroidInitialization.LINEAR,
             "density": tfmot.clustering.keras.CentroidInitialization.DENSITY_BASED}
    prepare_fine_tune(model, scope)
    def selected(layer) -> bool:
        return bool(registry_weights(clustering_registry.ClusteringRegistry, layer)) and \
            (scope == "whole" or is_head(layer))
    wrapped, names = _wrap(model, lambda l: tfmot.clustering.keras.cluster_weights(
        l, number_of_clusters=clusters, cluster_centroids_init=inits[init]), selected)
    history, way = _fit_scope(model, wrapped, data, scope, epochs, lr, stage, []) if epochs else \
        ([], {"fine_tuned_on": None, "backbone_passes": 0})
    return tfmot.clustering.keras.strip_clustering(wrapped), {"clustered_layers": len(names), **way,
                                                              "history": history}


def _copy(model):
    """An independent copy (tfmot's quantize/cluster helpers may modify the layers they are given)."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def qat(model, data: FineTuneData, epochs: int, lr: float, preserve_sparsity: bool = False,
        stage: str = "compress:qat") -> tuple[object, dict]:
    """Quantization-aware training (8-bit, per-channel weights) of the BN-folded model, activation ranges
    calibrated first; with preserve_sparsity, tfmot's prune-preserving scheme keeps an already pruned model's
    zeros. Returns the QAT Keras model, ready for TFLite conversion."""
    model = fold_batchnorm(_copy(model))      # a copy: layers of a pruned model also belong to other graphs
    prepare_fine_tune(model)
    annotated, standalone = _annotate_for_qat(model)
    scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme() if preserve_sparsity else \
        tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()
    with tfmot.quantization.keras.quantize_scope():
        q = tfmot.quantization.keras.quantize_apply(annotated, scheme)
    calibrated = _calibrate_ranges(q, data)
    history = _fit(q, data, epochs, lr, stage, [])
    return q, {"history": history, "batchnorm_folded": True, "calibration_batches": calibrated,
               "output_quantized_batchnorm": standalone}


@contextlib.contextmanager
def _moving_average_decay(decay: float):
    """Temporarily run tfmot's activation range quantizers with another EMA decay (it is fixed at 0.999)."""
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops, quantizers
    original = quantizers.MovingAverageQuantizer.__call__

    def call(self, inputs, training, weights, **kwargs):
        return quant_ops.MovingAvgQuantize(inputs, weights["min_var"], weights["max_var"], ema_decay=decay,
                                           is_training=training, num_bits=self.num_bits, per_channel=self.per_axis,
                                           symmetric=self.symmetric, narrow_range=self.narrow_range)
    quantizers.MovingAverageQuantizer.__call__ = call
    try:
        yield
    finally:
        quantizers.MovingAverageQuantizer.__call__ = original


def _calibrate_ranges(q, data: FineTuneData, batches: int = 4) -> int:
    """Set activation ranges from training batches before QAT fine-tuning.

    tfmot starts every activation range at [-6, 6] and moves it with an EMA of decay 0.999: on a few hundred
    images (tens of steps) the ranges never leave their initial value, so linear bottlenecks and residual sums
    are clipped. A few forward passes in training mode with a fast EMA (no gradient step) fix that."""
    n = 0
    for i, (x, _) in enumerate(data.dataset().take(batches)):
        with _moving_average_decay(0.0 if i == 0 else 0.5):
            q(x, training=True)
        n += 1
    return n


def _consumers(model) -> dict[str, list]:
    out: dict[str, list] = {layer.name: [] for layer in model.layers}
    for layer in model.layers:
        for node in layer.inbound_nodes:
            for parent in tf.nest.flatten(node.inbound_layers):
                out[parent.name].append(layer)
    return out


def _bn_scale_shift(bn) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm at inference as y = x * scale + shift."""
    mean, var = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    gamma = bn.gamma.numpy() if bn.gamma is not None else np.ones_like(var)
    beta = bn.beta.numpy() if bn.beta is not None else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.epsilon)
    return scale, beta - mean * scale


def _foldable_batchnorms(model) -> tuple[dict[str, object], dict[str, object]]:
    """({producer: BN after it}, {Dense: BN before it}) for every BN that can be folded into a neighbour."""
    consumers = _consumers(model)
    linear = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    after, before = {}, {}
    for bn in model.layers:
        channels_last = isinstance(bn, keras.layers.BatchNormalization) and \
            list(bn.axis) in ([-1], [len(bn.input_shape) - 1])
        if not channels_last:
            continue
        prev = bn.inbound_nodes[0].inbound_layers
        if isinstance(prev, linear) and len(consumers[prev.name]) == 1 \
                and prev.get_config().get("activation") == "linear":
            after[prev.name] = bn
            continue
        nxt = bn
        while len(consumers[nxt.name]) == 1 and isinstance(consumers[nxt.name][0], keras.layers.Dropout):
            nxt = consumers[nxt.name][0]
        if len(consumers[nxt.name]) == 1 and isinstance(consumers[nxt.name][0], keras.layers.Dense):
            before[consumers[nxt.name][0].name] = bn
    return after, before


def fold_batchnorm(model):
    """An equivalent model without foldable BatchNormalization layers: each is folded into the
    Conv2D/DepthwiseConv2D/Dense before it (linear activation, sole consumer) or the Dense after it (via Dropout).

    tfmot's QAT quantizes a convolution's kernel before BN is applied, while the TFLite converter folds BN into the
    kernel and quantizes the result, so the int8 model that runs is not the one trained; folding first makes QAT
    simulate exactly the exported model, and removes the standalone head BN tfmot's registry rejects."""
    if any(len(layer.inbound_nodes) != 1 for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)):
        raise ValueError("BatchNorm folding needs a model whose layers are used once")
    after, before = _foldable_batchnorms(model)
    folded = {bn.name for bn in [*after.values(), *before.values()]}
    inputs = keras.Input(model.input_shape[1:], name=model.layers[0].name)
    new: dict[int, object] = {id(model.input): inputs}          # id(old tensor) -> new tensor
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        x = tf.nest.map_structure(lambda t: new[id(t)], layer.input)
        if layer.name in folded:
            new[id(layer.output)] = x
            continue
        config, weights = layer.get_config(), layer.get_weights()
        if layer.name in after or layer.name in before:
            kernel, bias = weights[0], (weights[1] if config.get("use_bias") else 0.0)
            if layer.name in before:                              # Dense(x * s + t) = x (s W) + (t W + b)
                scale, shift = _bn_scale_shift(before[layer.name])
                kernel, bias = kernel * scale[:, None], bias + shift @ kernel
            if layer.name in after:                               # BN(x K + b) = x (K s) + (b s + t)
                scale, shift = _bn_scale_shift(after[layer.name])
                if isinstance(layer, keras.layers.DepthwiseConv2D):
                    scale = scale.reshape(kernel.shape[2], kernel.shape[3])
                kernel, bias = kernel * scale, bias * scale.reshape(-1) + shift
            depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
            n_out = kernel.shape[2] * kernel.shape[3] if depthwise else kernel.shape[-1]
            config["use_bias"], weights = True, [kernel, (np.zeros(n_out, np.float32) + bias).astype(np.float32)]
        clone = layer.__class__.from_config(config)
        new[id(layer.output)] = clone(x)
        clone.set_weights(weights)
    return keras.Model(inputs, new[id(model.output)], name=model.name)


def _annotate_for_qat(model) -> tuple[object, list[str]]:
    """quantize_annotate_model, except that a BatchNormalization not fed by a convolution (the head's
    `head_norm`) gets an output-only 8-bit config: tfmot's default registry only quantizes BatchNorm as part
    of a Conv+BN(+ReLU) pattern and rejects a standalone one."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_configs \
        import Default8BitOutputQuantizeConfig
    convs = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    standalone = [l.name for l in model.layers if isinstance(l, keras.layers.BatchNormalization)
                  and not all(isinstance(p, convs) for n in l.inbound_nodes for p in tf.nest.flatten(n.inbound_layers))]

    def annotate(layer):
        config = Default8BitOutputQuantizeConfig() if layer.name in standalone else None
        return tfmot.quantization.keras.quantize_annotate_layer(layer, config)
    return keras.models.clone_model(model, clone_function=annotate), standalone
