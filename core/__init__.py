"""Green Transfer Learning Lab: the library behind the dashboard and the CLI (`python -m core`).

Packages by concept; each imports only the ones listed before it:
  config, errors, progress, tfenv   the shared vocabulary, importable from anywhere
  store        where things are kept: folders, settings, run folders, the registry, package files
  models       what a network is: backbones, weights, heads, TFLite conversion, the Predictor
  data         what images are and where they come from: datasets, generators, decoding, splits, pipelines
  evaluation   how a model is judged: metrics, energy, the variant evaluator, comparisons, check sets
  training     how a model learns: a run end to end, the feature cache and extractor, the head fit
  compression  pruning, clustering, QAT and the TFLite levels
  presets      the five reports as recipes
  jobs         work in the background: the queue and the worker
  cli          the command line

Importing `core` does not import TensorFlow; modules that need it import `core.tfenv`.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
