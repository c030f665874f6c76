"""Import TensorFlow the one way the lab supports: legacy Keras (tf_keras), quiet logs.

tfmot does not support Keras 3, so TF_USE_LEGACY_KERAS=1 must be set before TensorFlow is imported.
Import `tf` and `keras` from here, never `tensorflow.keras` or `keras` directly.
"""
from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU only: skip the CUDA probe and its error line

try:    # live video's SRTP library (pylibsrtp, via aiortc) links OpenSSL under the names TensorFlow's BoringSSL
    import pylibsrtp  # noqa: F401,E402  exports: imported after TensorFlow it crashes the process; before, both work
except ImportError:
    pass

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

tf.get_logger().setLevel("ERROR")

__all__ = ["tf", "keras"]
