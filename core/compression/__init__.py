"""Compression lab: pruning, weight clustering, QAT and the TFLite post-training levels, measured one way.

    compress(run_id, techniques=None, options=None, progress=silent, threads=2) -> dict

Variants are loaded and run by `core.models.load_variant`.

Importing this package does not import TensorFlow.
"""
from .options import DEFAULTS as OPTION_DEFAULTS
from .runner import SUMMARY_KEYS, compress
from .techniques import DEFAULT_TECHNIQUES, TECHNIQUES, Technique

__all__ = ["TECHNIQUES", "DEFAULT_TECHNIQUES", "OPTION_DEFAULTS", "Technique", "compress", "SUMMARY_KEYS"]
