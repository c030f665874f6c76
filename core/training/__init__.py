"""How a model learns: a run end to end (train: `train(TrainConfig) -> summary`), the feature cache (features), the
TFLite feature extractor (extractor) and the head fitted on cached features (head_fit)."""
