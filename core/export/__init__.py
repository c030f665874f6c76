"""Bundles that run outside the lab: a variant's model file, labels, metadata, a README and a predict.py that needs
only ai-edge-litert, numpy and pillow. Sits above compression (it re-converts TFLite variants with the
preprocessing inside)."""
from .bundle import export_bundle

__all__ = ["export_bundle"]
