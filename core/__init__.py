"""Green Transfer Learning Lab: the library behind the dashboard and the CLI (`python -m core`).

Importing `core` does not import TensorFlow; modules that need it import `core.tfenv`.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
