"""What a network is: the backbone registry, pretrained weights from packages, heads and the flat assembled model,
TFLite conversion, and one Predictor (uint8 images in, probabilities out) for every stored variant.

Importing this package does not import TensorFlow.
"""
from .backbones import BACKBONES, DEFAULT_BACKBONE, BackboneSpec, build_backbone, get_backbone, preprocess, weights_status
from .predictor import Predictor, load_variant, run_info, variant_file, variant_names

__all__ = ["BACKBONES", "DEFAULT_BACKBONE", "BackboneSpec", "build_backbone", "get_backbone", "preprocess",
           "weights_status", "Predictor", "load_variant", "run_info", "variant_file", "variant_names"]
