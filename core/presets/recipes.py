"""Presets: one per report, each a whole recipe (dataset, backbone, input size, head, training, early stopping,
fine-tuning, compression) that redoes the report as correctly as this machine allows.

`resolve(name)` turns a preset into a plan for THIS machine, and says why at every step:
* the dataset: the report's own where it is present, otherwise the preset's offline stand-in (the first of
  its stand-ins that is available), with the input size chosen for that stand-in;
* each backbone: where it has no ImageNet weights here, a frozen random backbone would learn nothing
  useful, so the plan substitutes the run's stand-in backbone (MobileNetV2 unless the recipe names a closer one
  that has weights here, as the animals preset's big backbone does) and records the substitution;
  with `substitute=False` it keeps the report's backbone and says plainly that it learns nothing that way;
* runs that end up identical after substitution are trained once;
* the compression techniques (checked against core.compression's registry when it is installed).

`run_preset(name)` trains every run of the plan and compresses each with the preset's techniques. The runs
of one invocation share a `group` id (stored in each run's registry summary as `preset_group`, with the
preset name in the `preset` column and the run's label as `preset_run`), so a report that compares two
models (CIFAR-10: MLP against VGG16) is one comparison. The group's summary is kept in
`<lab home>/presets/<group>.json`.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field, replace

from core.models.backbones import BACKBONES, get_backbone, weights_status
from core.config import EarlyStopping, TrainConfig
from core.data.datasets import DATASETS, get_dataset
from core.errors import LabError
from core.config import HeadConfig
from core.store.paths import lab_home
from core.progress import Progress, ProgressEvent, silent

SUBSTITUTE = "mobilenet_v2"


@dataclass(frozen=True)
class RunRecipe:
    """One trained model of a preset. Sizes: the report's, the one used on the stand-in, and the quick one."""
    label: str
    backbone: str
    image_size: int
    head: HeadConfig
    mode: str = "feature-extraction"
    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_decay: float | None = None
    early_stopping: EarlyStopping | None = None
    fine_tune_at: int | None = None
    fine_tune_epochs: int = 0
    fine_tune_lr: float | None = None
    standin_image_size: int | None = None     # the input size on the (smaller) stand-in images
    quick_image_size: int | None = None       # the input size in quick mode (tests, demos)
    note: str = ""
    recommended: bool = False                 # the run the preset recommends (Results and Predict open on it)
    compression_options: dict = field(default_factory=dict)   # this run's overrides of the preset's options
    substitute: str = SUBSTITUTE              # the pretrained backbone used instead when `backbone` has no weights here


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    description: str
    report: str                                # what the report did, in one line
    dataset: str                               # the report's dataset (registry name)
    standins: tuple[str, ...]                  # offline stand-ins, best first
    standin_reason: str                        # why these stand-ins
    runs: tuple[RunRecipe, ...]
    compression: tuple[str, ...]               # technique names of core.compression
    compression_options: dict = field(default_factory=dict)
    quick_compression_options: dict = field(default_factory=dict)
    shows: str = ""                            # what the results page should make visible
    task: str = ""                             # the title's first words, e.g. "Vehicle colour"
    compression_words: str = ""                # the compression in plain words ("converted to ...")
    compression_title: str = ""                # the same, for the title ("pruning, dynamic-range TFLite")
    method_words: str = ""                     # how it trains, in plain words, if worth saying

    def to_dict(self) -> dict:
        d = asdict(self)
        d["runs"] = [asdict(r) for r in self.runs]
        return d


PRESETS: dict[str, Preset] = {}


def register(p: Preset) -> Preset:
    names = [r.label for r in p.runs]
    if len(set(names)) != len(names):
        raise ValueError(f"preset {p.name}: run labels must be unique")
    PRESETS[p.name] = p
    return p


QUICK_COMPRESSION = {"measure": {"latency_runs": 50, "warmup_runs": 5, "throughput_repeats": 2, "eval_repeats": 1},
                     "fine_tune": {"max_images": 800}}   # quick: one timed test pass; fine-tunes on a sample
ALL_TFLITE = ("tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8", "tflite_int8_io")

register(Preset(
    name="vehicle_colour", title="Vehicle colour: ResNet50, pruning, dynamic-range TFLite", task="Vehicle colour",
    compression_title="pruning, dynamic-range TFLite",
    compression_words="pruned to half its weights and converted to a small dynamic-range TFLite model",
    description="Car body colour (8 classes) from rear views: a frozen ResNet50 with a Dense-128 head, then "
                "pruned to 50% and converted to a dynamic-range TFLite model.",
    report="ResNet50 frozen, global average pooling, Dense 128, Adam 1e-4, 10 epochs; pruning to 50% sparsity "
           "(PolynomialDecay, 5 fine-tune epochs); dynamic-range TFLite; UFPR Vehicle-Rear colours",
    dataset="vehicle_rear", standins=("vehicle_colors_synthetic",),
    standin_reason="no labelled car-colour dataset ships in any package (the 19 real car photos that do are too "
                   "few to train on and are kept for checking the model); the generated rear views (SYNTHETIC) "
                   "have the report's eight colours, with lighting, highlights, backgrounds and noise that vary "
                   "independently of the colour",
    runs=(RunRecipe("the report's way", "resnet50", 224, HeadConfig("avg", [128], 0.2, batch_norm=False, taps="last"),
                    epochs=10, learning_rate=1e-4, standin_image_size=128, quick_image_size=128,
                    note="the report's recipe: last-layer features, a Dense-128 head, Adam 1e-4 for 10 epochs"),
          RunRecipe("the lab's way", "mobilenet_v2", 224, HeadConfig("avg", [], 0.0, taps="multi"),
                    standin_image_size=128, quick_image_size=128, recommended=True,
                    compression_options={"pruning": {"scope": "head"}},
                    note="features from several depths of the backbone (colour lives in the early layers), a "
                         "linear head fitted to convergence, and pruning fine-tuned on the head only so the "
                         "backbone does not drift to cues of the synthetic renders")),
    compression=("pruning", "tflite_dynamic"),
    compression_options={"pruning": {"sparsity": 0.5, "schedule": "polynomial", "epochs": 5}},
    quick_compression_options={"pruning": {"epochs": 1}},
    shows="the pruned model's sparsity, size and accuracy next to the dynamic-range TFLite model",
))

register(Preset(
    name="shapes", title="Shapes: InceptionResNetV2, deep head", task="Shapes",
    compression_title="deep head, 3 TFLite levels", method_words="with a deep head (Dense 128-64-32)",
    compression_words="converted to three TFLite models (float32, dynamic range, int8)",
    description="Circles, squares and triangles: a frozen InceptionResNetV2 with global max pooling and a "
                "Dense 128-64-32 head with dropout 0.5.",
    report="InceptionResNetV2 frozen, global max pooling, Dense 128-64-32, Dropout 0.5, Adam 1e-3, 128 px; "
           "Kaggle \"Basic Shapes\"",
    dataset="basic_shapes", standins=("shapes",),
    standin_reason="the built-in generated hand-drawn circles, squares and triangles have the same three classes",
    runs=(RunRecipe("InceptionResNetV2", "inception_resnet_v2", 128, HeadConfig("max", [128, 64, 32], 0.5),
                    epochs=30, learning_rate=1e-3, early_stopping=EarlyStopping("val_loss", 5, 0.0, 0, True),
                    quick_image_size=96,
                    note="30 epochs at most, early stopping (patience 5) on the validation loss"),),
    compression=("tflite_float32", "tflite_dynamic", "tflite_int8")))

register(Preset(
    name="cifar10", title="CIFAR-10: MLP against frozen VGG16", task="CIFAR-10",
    compression_title="2 TFLite levels",
    compression_words="converted to two TFLite models (float32, dynamic range)",
    description="Raw pixels through an MLP against a frozen VGG16 with a small head, trained the same way and "
                "shown in one comparison.",
    report="MLP on 64x64 flattened pixels (Dense 256-128) against VGG16 frozen with a Dense 50-20 head; early "
           "stopping on val_loss (patience 5, min_delta 0.001); CIFAR-10 split 40k/10k/10k",
    dataset="cifar10", standins=("fashion_mnist_12k", "animals"),
    standin_reason="Fashion-MNIST is the closest 32 px-class set that ships in a package: 10 classes of real "
                   "photographs (grey, 28 px) with an official train/test split, the same shape of benchmark "
                   "as CIFAR-10; its 12k subset keeps CIFAR-10's 4:1:1 split (8k/2k/2k) at a size that trains in "
                   "minutes on 2 cores. Without Debian's dataset-fashion-mnist, Animal-MNIST's 10 animal classes "
                   "(4 of them CIFAR-10 classes) are used at 32 px",
    runs=(RunRecipe("MLP", "mlp", 64, HeadConfig("avg", [256, 128], 0.2), epochs=100, learning_rate=1e-3,
                    early_stopping=EarlyStopping("val_loss", 5, 0.001, 0, True), quick_image_size=32,
                    note="64x64x3 pixels flattened into Dense 256-128"),
          RunRecipe("VGG16", "vgg16", 64, HeadConfig("avg", [50, 20], 0.2), epochs=100, learning_rate=1e-3,
                    early_stopping=EarlyStopping("val_loss", 5, 0.001, 0, True), quick_image_size=32,
                    note="the same 64 px input as the MLP")),
    compression=("tflite_float32", "tflite_dynamic"),
    shows="both runs side by side (same group): accuracy, size and latency of the MLP against the CNN"))

register(Preset(
    name="animals", title="Animals: MobileNet against InceptionResNetV2, all TFLite levels", task="Animals",
    compression_title="all 5 TFLite levels",
    compression_words="converted at all five TFLite levels, from float32 down to integer-only",
    description="Ten animal classes with a small and a big frozen backbone, exponential learning-rate decay and "
                "early stopping, each converted at all five TFLite levels. Offline, where neither has ImageNet "
                "weights, MobileNetV2 (2.3 M parameters without its classifier) stands in for MobileNet and "
                "EfficientNet-Lite2 (4.9 M) for InceptionResNetV2: still a small backbone against a bigger one.",
    report="MobileNet and InceptionResNetV2 frozen, Adam, exponential LR decay, early stopping (start epoch 3, "
           "patience 2, restore best); TFLite float32, float16, dynamic range, int8, int8 with int8 I/O; Animals-10",
    dataset="animals10", standins=("animals",),
    standin_reason="Animal-MNIST (a PyPI package) has ten animal classes like Animals-10 (cat, cow, dog, horse, "
                   "sheep and elephant in both), as 28 px grey silhouettes",
    runs=(RunRecipe("MobileNet", "mobilenet", 224, HeadConfig("avg", [128], 0.2), epochs=30, learning_rate=1e-3,
                    lr_decay=0.9, early_stopping=EarlyStopping("val_loss", 2, 0.0, 3, True),
                    standin_image_size=96, quick_image_size=48),
          RunRecipe("InceptionResNetV2", "inception_resnet_v2", 299, HeadConfig("avg", [128], 0.2), epochs=30,
                    learning_rate=1e-3, lr_decay=0.9, early_stopping=EarlyStopping("val_loss", 2, 0.0, 3, True),
                    standin_image_size=96, quick_image_size=48, substitute="efficientnet_lite2",
                    note="the big backbone: EfficientNet-Lite2 where InceptionResNetV2 has no ImageNet weights")),
    compression=ALL_TFLITE,
    shows="the small backbone against the big one (both runs in one group), five TFLite variants each: size "
          "against accuracy"))

register(Preset(
    name="cats_vs_dogs", title="Cats vs dogs: MobileNetV2, feature extraction then fine-tuning", task="Cats vs dogs",
    compression_title="fine-tuning, 3 TFLite levels", method_words="frozen first, then fine-tuned from layer 100",
    compression_words="converted to three TFLite models (float32, dynamic range, int8)",
    description="MobileNetV2 at 160 px: 10 epochs of feature extraction (RMSprop 1e-4), then 10 epochs of "
                "fine-tuning from layer 100 at a tenth of the learning rate.",
    report="MobileNetV2 160 px, feature extraction 10 epochs with RMSprop 1e-4, then fine-tuning from layer 100 "
           "at 1e-5 for 10 more; learning curves with the fine-tuning start marked; Microsoft Cats vs Dogs",
    dataset="cats_vs_dogs", standins=("cats_dogs_silhouettes",),
    standin_reason="no cat or dog photo collection ships in any package; Animal-MNIST's cat and dog classes are "
                   "real (hand-made) silhouettes of the same two classes, 1,000 each",
    runs=(RunRecipe("MobileNetV2", "mobilenet_v2", 160, HeadConfig("avg", [], 0.2), epochs=10,
                    optimizer="rmsprop", learning_rate=1e-4, fine_tune_at=100, fine_tune_epochs=10,
                    fine_tune_lr=1e-5, standin_image_size=96, quick_image_size=64,
                    note="the learning curves mark the epoch where fine-tuning starts"),),
    compression=("tflite_float32", "tflite_dynamic", "tflite_int8"),
    shows="learning curves with the fine-tuning start marked"))


# What each dataset is, in a teacher's words (for the one-sentence summary of a plan).
PLAIN_DATA = {
    "vehicle_rear": "photos of cars by body colour (UFPR Vehicle-Rear)",
    "vehicle_colors_synthetic": "generated pictures of cars in eight colours",
    "basic_shapes": "the Kaggle drawings of circles, squares and triangles",
    "shapes": "generated hand-drawn circles, squares and triangles",
    "cifar10": "CIFAR-10's small photos of ten kinds of object",
    "fashion_mnist_12k": "12,000 small grey photos of clothing in ten kinds (Fashion-MNIST)",
    "animals": "grey silhouettes of ten animals",
    "animals10": "photos of ten animals (Animals-10)",
    "cats_vs_dogs": "photos of cats and dogs",
    "cats_dogs_silhouettes": "silhouettes of cats and dogs",
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise LabError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


# ---------------------------------------------------------------- resolving a preset on this machine

def _compression_registry() -> tuple[set[str] | None, str]:
    """The technique names core.compression offers, or None (and why) if it is not installed."""
    try:
        from core import compression
    except ImportError as e:
        return None, f"core.compression is not installed ({e})"
    names = getattr(compression, "TECHNIQUES", None)
    if names is None:
        return None, "core.compression has no TECHNIQUES registry"
    return set(names), ""


def _dataset_choice(p: Preset) -> dict:
    real = get_dataset(p.dataset)
    ok, why = real.availability()
    if ok:
        return {"requested": p.dataset, "used": p.dataset, "real": True, "available": True, "title": real.title,
                "synthetic": real.synthetic, "message": f"{real.title}, the report's dataset, is here ({why})"}
    tried = []
    for name in p.standins:
        s = get_dataset(name)
        s_ok, s_why = s.availability()
        if s_ok:
            label = " (SYNTHETIC)" if s.synthetic and "SYNTHETIC" not in s.title else ""
            skipped = "".join(f"; {t}" for t in tried)
            return {"requested": p.dataset, "used": name, "real": False, "available": True, "title": s.title,
                    "synthetic": s.synthetic, "requested_status": why,
                    "message": f"{real.title} is not here ({why}). Using the offline stand-in '{name}': "
                               f"{s.title}{label}: {p.standin_reason}{skipped}"}
        tried.append(f"stand-in '{name}' is not here either ({s_why})")
    return {"requested": p.dataset, "used": None, "real": False, "available": False, "title": real.title,
            "synthetic": False, "requested_status": why,
            "message": f"{real.title} is not here ({why}); " + "; ".join(tried)}


def resolve(name: str | Preset, quick: bool = False, substitute: bool = True, seed: int = 0) -> dict:
    """The plan this machine would run for a preset: dataset, each run's backbone/size/config, compression.
    `seed` seeds every run's split and training."""
    p = get_preset(name) if isinstance(name, str) else name
    ds = _dataset_choice(p)
    messages = [("dataset: " + ds["message"])]
    runs: list[dict] = []
    seen: dict[str, str] = {}
    for r in p.runs:
        requested = get_backbone(r.backbone)
        size = r.image_size if ds["real"] else (r.standin_image_size or r.image_size)
        if quick and r.quick_image_size:
            size = min(size, r.quick_image_size)
        src, why = weights_status(r.backbone)
        backbone, notes, warnings, substituted = r.backbone, [], [], False
        frozen = r.mode == "feature-extraction" and not r.fine_tune_epochs
        if src == "random":
            if substitute:
                stand_in = r.substitute if weights_status(r.substitute)[0] != "random" else SUBSTITUTE
                sub = get_backbone(stand_in)
                sub_src, sub_why = weights_status(stand_in)
                backbone, substituted = stand_in, True
                notes.append(f"{requested.title}: {why.rstrip('.')}. A frozen backbone with random weights learns "
                             f"nothing useful, so this run uses {sub.title} instead ({sub_why}).")
                src = sub_src
            elif frozen:
                warnings.append(f"{requested.title} has no ImageNet weights on this machine and is trained FROZEN "
                                "with RANDOM weights: a frozen random backbone learns nothing useful that way "
                                "(its features are random projections); expect accuracy near chance.")
            else:
                warnings.append(f"{requested.title} has no ImageNet weights on this machine: it starts from random "
                                "weights, so fine-tuning trains it mostly from scratch.")
        spec = BACKBONES[backbone]
        if size < spec.min_size:
            notes.append(f"input raised from {size} to {spec.min_size} px, the smallest {spec.title} accepts")
            size = spec.min_size
        if not ds["real"] and r.standin_image_size and size != r.image_size:
            notes.append(f"input {size} px on the stand-in (the report used {r.image_size} px on its own images)")
        elif quick and size != r.image_size:
            notes.append(f"quick mode: input {size} px (the preset uses {r.image_size} px)")
        cfg = TrainConfig(dataset=ds["used"] or p.dataset, backbone=backbone, image_size=size,
                          weights="auto", head=replace(r.head, dense=list(r.head.dense)), mode=r.mode,
                          epochs=r.epochs, batch_size=r.batch_size, optimizer=r.optimizer,
                          learning_rate=r.learning_rate, lr_decay=r.lr_decay, early_stopping=r.early_stopping,
                          fine_tune_at=r.fine_tune_at,
                          fine_tune_epochs=min(r.fine_tune_epochs, 1) if quick else r.fine_tune_epochs,
                          fine_tune_lr=r.fine_tune_lr, seed=seed, preset=p.name,
                          name=f"{p.task or p.title}: {BACKBONES[backbone].title} ({r.label})",
                          allow_random_frozen=src == "random" and not substitute)   # --no-substitute: asked for
        if quick and r.fine_tune_epochs > 1:
            notes.append(f"quick mode: 1 fine-tuning epoch (the preset uses {r.fine_tune_epochs})")
        key = json.dumps({k: v for k, v in cfg.to_dict().items() if k != "name"}, sort_keys=True, default=str)
        run = {"label": r.label, "backbone_requested": r.backbone, "backbone": backbone, "substituted": substituted,
               "weights": src, "image_size": size, "config": cfg.to_dict(), "notes": notes, "warnings": warnings,
               "duplicate_of": seen.get(key), "recommended": r.recommended,
               "compression_options": r.compression_options}
        if run["duplicate_of"]:
            run["notes"].append(f"identical to run '{seen[key]}' after substitution: trained once, not twice")
        else:
            seen[key] = r.label
        runs.append(run)
        head = f"run '{r.label}': {get_backbone(backbone).title} ({src}), {size} px, {r.head.describe()}"
        if substituted:
            head += f" [substituted for {requested.title}]"
        messages.append(head)
        messages += [f"  note: {n}" for n in notes] + [f"  WARNING: {w}" for w in warnings]

    options = _merge(p.compression_options, p.quick_compression_options if quick else {})
    if quick:
        options = _merge(options, QUICK_COMPRESSION)
    known, why_not = _compression_registry()
    unknown = sorted(set(p.compression) - known) if known is not None else []
    if known is not None and not unknown:
        try:
            from core.compression.options import resolve as check_options
            check_options(options)
        except LabError as e:
            known, why_not = None, f"invalid compression options: {e}"
    comp = {"techniques": list(p.compression), "options": options, "available": known is not None and not unknown,
            "message": (why_not if known is None else
                        f"unknown technique(s) {', '.join(unknown)}" if unknown else "ok")}
    messages.append(f"compression: {', '.join(p.compression)}" + ("" if comp["available"] else
                                                                  f" (NOT available: {comp['message']})"))
    runnable = ds["available"]
    headline, summary = _plain(p, ds, runs, quick)
    return {"preset": p.name, "title": headline, "report_title": p.title, "summary": summary,
            "description": p.description, "report": p.report,
            "quick": quick, "substitute": substitute, "seed": seed, "dataset": ds, "runs": runs, "compression": comp,
            "recommended": next((r["label"] for r in runs if r["recommended"]), runs[-1]["label"] if runs else None),
            "shows": p.shows, "runnable": runnable, "messages": messages}


def _and(items: list[str]) -> str:
    items = list(dict.fromkeys(i for i in items if i))
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def _plain(p: Preset, ds: dict, runs: list[dict], quick: bool) -> tuple[str, str]:
    """(title naming what runs here, one plain sentence of what will run here and why), for a teacher."""
    trained = [r for r in runs if not r["duplicate_of"]]
    titles = [BACKBONES[r["backbone"]].title.replace("MLP baseline (no backbone)", "MLP") for r in trained]
    distinct = list(dict.fromkeys(titles))
    ways = ""
    if len(distinct) == 1 and len(trained) > 1:
        who_title = who = distinct[0]
        count = {2: "two", 3: "three"}.get(len(trained), str(len(trained)))
        ways = f", {count} ways ({_and([r['label'] for r in trained])})"
        who_title += f" {count} ways"
    else:
        who_title = " against ".join(distinct)
        who = _and([("an " if t == "MLP" else "") + t for t in distinct])
        who = who[:1].upper() + who[1:]
    several = len(trained) > 1
    title = f"{p.task or p.name}: {who_title}" + (f", {p.compression_title}" if p.compression_title else "")
    real = DATASETS[ds["requested"]].title
    if not ds["available"]:
        return title, (f"This preset cannot run here: the report's data ({real}) is not on this machine, and "
                       "neither is a stand-in (see the details).")
    data = PLAIN_DATA.get(ds["used"], ds.get("title") or ds["used"])
    reasons = []
    if not ds["real"]:
        reasons.append(f"the report's data ({real}) is not on this machine")
    missing = list(dict.fromkeys(get_backbone(r["backbone_requested"]).title for r in runs if r["substituted"]))
    if missing:
        reasons.append(f"{_and(missing)} {'has' if len(missing) == 1 else 'have'} no pretrained weights here")
    comp = p.compression_words or ("converted with " + ", ".join(p.compression))
    sentence = (f"{who} {'each learn' if several and not ways else 'learns'} to classify {data}"
                f"{', ' + p.method_words if p.method_words else ''}{ways}, then {'each is' if several else 'is'} {comp}"
                + (f", because {_and(reasons)}." if reasons else ", as in the report."))
    return title, sentence


def _merge(a: dict, b: dict) -> dict:
    out = json.loads(json.dumps(a))
    for k, v in b.items():
        out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def describe_all(quick: bool = False) -> list[dict]:
    return [resolve(n, quick) for n in PRESETS]


# ---------------------------------------------------------------- running a preset

def presets_dir():
    d = lab_home() / "presets"
    d.mkdir(parents=True, exist_ok=True)
    return d


def new_group_id(name: str) -> str:
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def recommended_run(plan: dict, runs: list[dict]) -> str | None:
    """The id of the run the plan recommends, among the trained `runs` ({label, run_id}); a duplicate is its twin."""
    label = next((r["duplicate_of"] or r["label"] for r in plan["runs"] if r["label"] == plan["recommended"]), None)
    return next((r["run_id"] for r in runs if r["label"] == label), None)


def run_options(plan: dict, run: dict) -> dict:
    """The compression options of one run of a plan: the preset's, overlaid with the run's own."""
    return _merge(plan["compression"]["options"], run.get("compression_options") or {})


def run_preset(name: str, progress: Progress = silent, quick: bool = False, substitute: bool = True,
               compress: bool = True, threads: int = 2, seed: int = 0) -> dict:
    """Train each run of the preset's plan, then compress it; return the group's summary (with `recommended_run`,
    the id of the run the preset recommends)."""
    from core.store.runs import new_run_id, write_json
    from core.training.train import train

    plan = resolve(name, quick, substitute, seed)
    if not plan["runnable"]:
        raise LabError(f"preset '{name}' cannot run here: {plan['dataset']['message']}")
    if compress and not plan["compression"]["available"]:
        raise LabError(f"preset '{name}': compression unavailable ({plan['compression']['message']})")
    group = new_group_id(plan["preset"])
    t0 = time.perf_counter()
    out_runs: list[dict] = []
    todo = [r for r in plan["runs"] if not r["duplicate_of"]]
    summary = {"preset": plan["preset"], "group": group, "status": "running", "plan": plan, "runs": out_runs,
               "started": time.time()}
    write_json(presets_dir() / f"{group}.json", summary)
    try:
        for i, r in enumerate(todo, 1):
            progress(ProgressEvent("preset", f"{plan['title']}: run {i}/{len(todo)} ({r['label']})"))
            cfg = TrainConfig.from_dict(r["config"])
            run_id = new_run_id()
            info = preset_info(plan, r, group)
            mark_run(run_id, info)
            s = train(cfg, progress, run_id)
            record_run(run_id, info, plan)
            entry = {"label": r["label"], "run_id": run_id, "backbone": r["backbone"],
                     "backbone_requested": r["backbone_requested"], "substituted": r["substituted"],
                     "test_accuracy": s["test_accuracy"], "macro_f1": s["macro_f1"], "weights": s["weights"],
                     "train_seconds": s["train_seconds"], "epochs_run": s["epochs_run"],
                     "fine_tune_start_epoch": s["fine_tune_start_epoch"], "warnings": s["warnings"] + r["warnings"],
                     "variants": []}
            out_runs.append(entry)
            if compress:
                progress(ProgressEvent("preset", f"compressing {r['label']}: {', '.join(plan['compression']['techniques'])}"))
                from core.compression import compress as do_compress
                res = do_compress(run_id, list(plan["compression"]["techniques"]), run_options(plan, r),
                                  progress, threads=threads)
                entry["variants"] = [_variant_row(v) for v in res.get("variants", [])]
                entry["compression_failed"] = [{k: f.get(k) for k in ("technique", "error")}
                                               for f in res.get("failed", [])]
                entry["check_set"] = res.get("check_set")
            write_json(presets_dir() / f"{group}.json", summary)
        summary.update(status="done", seconds=round(time.perf_counter() - t0, 1),
                       recommended_run=recommended_run(plan, out_runs))
        return summary
    except BaseException as e:
        summary.update(status="failed", error=str(e) if isinstance(e, LabError) else f"{type(e).__name__}: {e}")
        raise
    finally:
        write_json(presets_dir() / f"{group}.json", summary)


def preset_info(plan: dict, r: dict, group: str) -> dict:
    """What a run of a preset records about where it came from (registry summary and preset.json)."""
    return {"preset": plan["preset"], "preset_group": group, "preset_run": r["label"],
            "backbone_requested": r["backbone_requested"], "substituted": r["substituted"],
            "dataset_requested": plan["dataset"]["requested"], "dataset_real": plan["dataset"]["real"],
            "notes": r["notes"], "warnings": r["warnings"], "quick": plan["quick"],
            "recommended": r["label"] == plan.get("recommended")}


def mark_run(run_id: str, info: dict) -> None:
    """Register a preset's run before it trains, so the group lists it from the start."""
    from core.store import registry
    registry.upsert_run(run_id, {k: info[k] for k in ("preset", "preset_group", "preset_run")}, status="created",
                        preset=info["preset"])


def record_run(run_id: str, info: dict, plan: dict | None = None) -> None:
    """After training: the preset's notes in the registry and in the run folder (preset.json)."""
    from core.store import registry
    from core.store.runs import run_dir, write_json
    registry.upsert_run(run_id, info)
    write_json(run_dir(run_id) / "preset.json", info | ({"plan": plan} if plan else {}))


def _variant_row(v: dict) -> dict:
    keys = ("name", "technique", "test_accuracy", "size_bytes", "gzip_bytes", "latency_ms_p50", "sparsity",
            "agreement", "status", "error")
    return {k: v.get(k) for k in keys if k in v}


def group_runs(group: str) -> list[dict]:
    """The registry rows of one preset invocation, in the order they were trained."""
    from core.store import registry
    rows = [r for r in registry.list_runs(10_000) if (r.get("summary") or {}).get("preset_group") == group]
    return sorted(rows, key=lambda r: r["created"])


def list_groups(preset: str | None = None) -> list[dict]:
    """Stored preset invocations, newest first."""
    out = []
    for f in sorted(presets_dir().glob("*.json"), reverse=True):
        try:
            d = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if preset is None or d.get("preset") == preset:
            out.append(d)
    return out


__all__ = ["PRESETS", "Preset", "RunRecipe", "get_preset", "group_runs", "list_groups", "resolve", "run_preset"]
assert all(p.dataset in DATASETS and all(s in DATASETS for s in p.standins) for p in PRESETS.values())
assert all(r.backbone in BACKBONES and r.substitute in BACKBONES for p in PRESETS.values() for r in p.runs)
