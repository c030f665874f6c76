"""Training configuration: one dataclass, validated on creation, stored with every run."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .errors import LabError

MODES = ("feature-extraction", "full")
TAP_TITLES = {"last": "the last layer", "multi": "several depths", "auto": "the last layer or several depths"}
OPTIMIZERS = ("adam", "sgd", "rmsprop")


@dataclass
class HeadConfig:
    pooling: str = "avg"                               # avg | max | flatten
    dense: list[int] = field(default_factory=list)     # hidden units, e.g. [128, 64, 32]
    dropout: float = 0.2                               # after each hidden layer (or before the classifier)
    activation: str = "relu"
    batch_norm: bool = True                            # standardise the pooled features first
    taps: str = "auto"                                 # last | multi (pooled stage ends, concatenated) | auto

    def __post_init__(self) -> None:
        if self.pooling not in ("avg", "max", "flatten"):
            raise LabError(f"pooling must be avg, max or flatten (got {self.pooling!r})")
        if not 0 <= self.dropout < 1:
            raise LabError(f"dropout must be in [0, 1) (got {self.dropout})")
        if self.taps not in ("auto", "last", "multi"):
            raise LabError(f"taps must be auto, last or multi (got {self.taps!r})")
        if self.taps == "multi" and self.pooling == "flatten":
            raise LabError("several depths (taps) need avg or max pooling, not flatten")
        if any(int(u) < 1 for u in self.dense):
            raise LabError(f"dense layer sizes must be positive (got {self.dense})")

    def describe(self) -> str:
        hidden = "-".join(map(str, self.dense)) or "none"
        return (f"global {self.pooling} pooling of {TAP_TITLES[self.taps]}{', batch norm' if self.batch_norm else ''}, "
                f"dense {hidden}, dropout {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EarlyStopping:
    monitor: str = "val_loss"
    patience: int = 3
    min_delta: float = 0.0
    start_epoch: int = 0
    restore_best: bool = True


@dataclass
class Augment:
    flip: bool = False
    rotation: float = 0.0      # fraction of a full turn, as in keras RandomRotation
    zoom: float = 0.0

    @property
    def active(self) -> bool:
        return self.flip or self.rotation > 0 or self.zoom > 0


@dataclass
class TrainConfig:
    dataset: str = "shapes"
    backbone: str = "mobilenet_v2"
    image_size: int | None = None          # None: the backbone's default
    weights: str = "auto"                  # auto | imagenet | random
    head: HeadConfig = field(default_factory=HeadConfig)
    mode: str = "feature-extraction"       # frozen backbone (cached features) or full end-to-end training
    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_decay: float | None = None          # exponential decay factor per epoch, e.g. 0.9
    early_stopping: EarlyStopping | None = None
    fine_tune_at: int | None = None        # unfreeze backbone layers from this index on (negative: top K)
    fine_tune_epochs: int = 0
    fine_tune_lr: float | None = None      # default: learning_rate / 10
    fine_tune_cache: bool = True           # compute the frozen layers below the cut once (core.training.cut)
    augment: Augment = field(default_factory=Augment)
    feature_engine: str = "auto"           # frozen features through: auto | keras | tflite (core.extractor)
    seed: int = 0
    split: tuple[float, float, float] | None = None
    preset: str | None = None
    name: str | None = None
    allow_random_frozen: bool = False      # the user acknowledged a frozen backbone with random weights

    def __post_init__(self) -> None:
        if isinstance(self.head, dict):
            self.head = HeadConfig(**self.head)
        if isinstance(self.early_stopping, dict):
            self.early_stopping = EarlyStopping(**self.early_stopping)
        if isinstance(self.augment, dict):
            self.augment = Augment(**self.augment)
        self.optimizer = self.optimizer.lower()
        checks = [
            (self.mode in MODES, f"mode must be one of {', '.join(MODES)}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.weights in ("auto", "imagenet", "random"), "weights must be auto, imagenet or random"),
            (self.feature_engine in ("auto", "keras", "tflite"), "feature engine must be auto, keras or tflite"),
            (1 <= self.epochs <= 1000, "epochs must be between 1 and 1000"),
            (0 <= self.fine_tune_epochs <= 1000, "fine-tune epochs must be between 0 and 1000"),
            (1 <= self.batch_size <= 4096, "batch size must be between 1 and 4096"),
            (0 < self.learning_rate < 10, "learning rate must be positive"),
            (self.lr_decay is None or 0 < self.lr_decay <= 1, "lr decay must be in (0, 1]"),
            (self.image_size is None or 8 <= self.image_size <= 600, "image size must be between 8 and 600 px"),
        ]
        for ok, msg in checks:
            if not ok:
                raise LabError(msg)
        if self.fine_tune_epochs and self.fine_tune_at is None:
            raise LabError("fine-tune epochs given without --fine-tune-at (the first backbone layer to unfreeze)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if known.get("split") is not None:
            known["split"] = tuple(known["split"])
        return cls(**known)
