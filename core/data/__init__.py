"""What images are and where they come from: the dataset registry (datasets/), the generators (synth/), safe
decoding (images), labelled arrays with seeded splits (prepare: `prepare(dataset, size, seed)`), tf.data pipelines
(pipeline), the dataset check (check)."""
from .check import check_dataset
from .datasets import DATASETS, DEFAULT_DATASET, DatasetSpec, get_dataset
from .prepare import PreparedData

__all__ = ["DATASETS", "DEFAULT_DATASET", "DatasetSpec", "PreparedData", "check_dataset", "get_dataset"]
