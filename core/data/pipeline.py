"""tf.data input pipelines: uint8 images and their labels travel together; preprocessing is applied last."""
from __future__ import annotations

import weakref

import numpy as np

from core.models.backbones import preprocess
from core.config import Augment
from .lazy import LazyRows


def _read_batches(images: LazyRows, labels: np.ndarray | None, batch_size: int, shuffle: bool, seed: int):
    """Batches of uint8 images read from a lazy array as they are needed: the indices are shuffled (the same
    permutation as shuffling the images themselves with this seed) and batched, then each batch is read."""
    from core.tfenv import tf
    ds = tf.data.Dataset.range(len(images))
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    shape = (None,) + tuple(images.shape[1:])
    y_all = None if labels is None else tf.constant(np.asarray(labels))

    def read(idx):
        x = tf.numpy_function(lambda i: images[i], [idx], tf.dtypes.as_dtype(images.dtype), stateful=False)
        x.set_shape(shape)
        return x if y_all is None else (x, tf.gather(y_all, idx))
    return ds.batch(batch_size).map(read, num_parallel_calls=2)


def image_dataset(backbone: str, images: np.ndarray | LazyRows, labels: np.ndarray | None = None,
                  batch_size: int = 64, shuffle: bool = False, seed: int = 0, augment: Augment | None = None):
    """Batches of preprocessed images (and labels); shuffling moves each image with its label. Images too large for
    the memory budget (a lazy array, core.data.lazy) are read batch by batch, in the same order."""
    from core.tfenv import keras, tf
    if isinstance(images, LazyRows):
        ds = _read_batches(images, labels, batch_size, shuffle, seed)
    else:
        ds = tf.data.Dataset.from_tensor_slices(images if labels is None else (images, labels))
        if shuffle:
            ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)
    if augment is not None and augment.active:
        layers = ([keras.layers.RandomFlip("horizontal", seed=seed)] if augment.flip else []) + \
                 ([keras.layers.RandomRotation(augment.rotation, seed=seed)] if augment.rotation else []) + \
                 ([keras.layers.RandomZoom(augment.zoom, seed=seed)] if augment.zoom else [])
        aug = keras.Sequential(layers)

        def _augment(x, *y):
            x = tf.clip_by_value(aug(tf.cast(x, tf.float32), training=True), 0, 255)
            return (x, *y)
        ds = ds.map(_augment, num_parallel_calls=tf.data.AUTOTUNE)

    def _prep(x, *y):
        return (preprocess(backbone, x), *y)
    return ds.map(_prep, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> its compiled inference function


def predict_images(model, backbone: str, images: np.ndarray | LazyRows, batch_size: int = 32) -> np.ndarray:
    """Model outputs for uint8 images (numpy or lazy), in input order: numpy batches through one compiled tf.function.

    (tf.data.from_tensor_slices would embed the whole image array in the graph, which is slow for large sets.)
    """
    from core.tfenv import tf
    fn = _COMPILED.get(model)
    if fn is None:          # any batch size, one trace: a last, smaller batch must not trace the model again
        spec = tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32)
        fn = _COMPILED[model] = tf.function(lambda x: model(x, training=False), input_signature=[spec],
                                            autograph=False)       # no Python control flow to convert: faster trace
    outs = [fn(preprocess(backbone, images[i:i + batch_size])).numpy() for i in range(0, len(images), batch_size)]
    if not outs:
        return np.zeros((0,) + tuple(model.output_shape[1:]), np.float32)
    return np.concatenate(outs)
