"""Compression lab: pruning, weight clustering, QAT and the TFLite post-training levels, measured one way.

    compress(run_id, techniques=None, options=None, progress=silent, threads=2) -> dict
    load_variant(run_id, name="original", threads=2) -> Predictor   (.predict(uint8 images) -> probabilities)

Importing this package does not import TensorFlow.
"""
from .options import DEFAULTS as OPTION_DEFAULTS
from .predictor import Predictor, load_variant, variant_names
from .runner import SUMMARY_KEYS, compress
from .techniques import DEFAULT_TECHNIQUES, TECHNIQUES, Technique

__all__ = ["TECHNIQUES", "DEFAULT_TECHNIQUES", "OPTION_DEFAULTS", "Technique", "Predictor", "compress",
           "load_variant", "variant_names", "SUMMARY_KEYS"]
