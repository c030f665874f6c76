"""Registry entries for the reports' datasets: each says whether it is here and, if not, what to get and where.

| name | data | here without internet |
|---|---|---|
| cifar10 | CIFAR-10, 60k 32 px colour photos, split 40k/10k/10k | only if cifar-10-python.tar.gz is placed |
| cats_vs_dogs | Microsoft Cats vs Dogs (25k photos), split 80/10/10 | only if the zip or PetImages/ is placed |
| vehicle_rear | UFPR Vehicle-Rear car crops by colour, one per plate | only if the dataset is placed |
| fashion_mnist | Fashion-MNIST, 70k 28 px grey photos | with Debian's dataset-fashion-mnist |
| fashion_mnist_12k | a stratified 12k subset of it (CIFAR-10 stand-in) | as fashion_mnist |
| digits | scikit-learn's 1,797 8 px digits | always |
| vehicle_colors_synthetic | generated rear and front views of cars, 8 colours | always (SYNTHETIC) |
| cats_dogs_silhouettes | Animal-MNIST's cat and dog silhouettes | always (PyPI animal-mnist) |
| basic_shapes, animals10 | Kaggle class folders | only if placed |
"""
from __future__ import annotations

from typing import Callable

from . import catsdogs, cifar, derived, mnistlike, vehicle_rear
from .base import DatasetSpec
from .builtin import animals_availability


def register_all(register: Callable[[DatasetSpec], DatasetSpec]) -> None:
    register(DatasetSpec(
        name="vehicle_colors_synthetic", title="Car colours, rear and front views (SYNTHETIC, generated)",
        description=f"SYNTHETIC: generated rear views and close, elevated front views of cars (body, windows, lights, grille, plate, wheels, bumper; "
                    f"perspective, lighting, highlights, shadows, varied backgrounds, noise) in eight colours; "
                    f"{derived.VEHICLES_PER_CLASS} per colour, {derived.VEHICLES_SIZE} px, deterministic.",
        load=derived.load_vehicle_colors,
        availability=lambda: (True, "SYNTHETIC: generated on first use (about 15 s), then cached"), class_names=("black", "blue", "green", "grey", "orange", "red", "silver",
                                                       "white"),
        native_size=derived.VEHICLES_SIZE, synthetic=True, stands_in_for="UFPR Vehicle-Rear colours (vehicle_rear)",
        check_set="car_photos", first_use_pending=derived.vehicles_pending,
        first_use=lambda progress: derived.load_vehicle_colors(progress=progress) and None))
    register(DatasetSpec(
        name="vehicle_rear", title="UFPR Vehicle-Rear colours (real photos)",
        description="Rear car crops from the UFPR Vehicle-Rear dataset, one image per plate, in the report's eight "
                    "colour folders (colours with fewer than 10 vehicles are dropped).",
        load=vehicle_rear.load, availability=vehicle_rear.availability, class_names=vehicle_rear.REPORT_COLOURS,
        check_set="car_photos", first_use_pending=derived.vehicles_pending,
        first_use=lambda progress: derived.load_vehicle_colors(progress=progress) and None))
    register(DatasetSpec(
        name="cifar10", title="CIFAR-10",
        description="60,000 32 x 32 colour photos in 10 classes; split 40k train / 10k validation / 10k test "
                    "(the official test batch).",
        load=cifar.load, availability=cifar.availability, class_names=cifar.CLASS_NAMES, native_size=32,
        split=cifar.SPLIT))
    register(DatasetSpec(
        name="cats_vs_dogs", title="Cats vs Dogs (Microsoft / Kaggle)",
        description="25,000 photos of cats and dogs (Microsoft's PetImages); known-broken files are skipped; "
                    "split 80/10/10.",
        load=catsdogs.load, availability=catsdogs.availability, class_names=catsdogs.CLASS_NAMES,
        split=catsdogs.SPLIT))
    register(DatasetSpec(
        name="fashion_mnist", title="Fashion-MNIST",
        description="70,000 28 x 28 grey photos of clothing in 10 classes (official 60k/10k train/test kept).",
        load=mnistlike.load_fashion, availability=mnistlike.fashion_availability,
        class_names=mnistlike.FASHION_CLASSES, native_size=28))
    register(DatasetSpec(
        name="fashion_mnist_12k", title="Fashion-MNIST, 12k subset",
        description="A stratified 12,000-image subset of Fashion-MNIST (1,000 train + 200 test images per class), "
                    "split 8k/2k/2k: CIFAR-10's 40k/10k/10k proportions at a fifth of the size.",
        load=mnistlike.load_fashion_12k, availability=mnistlike.fashion_availability,
        class_names=mnistlike.FASHION_CLASSES, native_size=28, split=cifar.SPLIT, stands_in_for="CIFAR-10"))
    register(DatasetSpec(
        name="digits", title="Handwritten digits (scikit-learn)",
        description="1,797 8 x 8 grey handwritten digits from scikit-learn's load_digits().",
        load=mnistlike.load_digits, availability=lambda: (True, "scikit-learn (installed)"), class_names=tuple(str(i) for i in range(10)), native_size=8))
    register(DatasetSpec(
        name="cats_dogs_silhouettes", title="Cat and dog silhouettes (animal-mnist)",
        description="The cat and dog classes of Animal-MNIST: 2 x 1,000 grey 28 x 28 silhouettes; split 80/10/10.",
        load=derived.load_cat_dog_silhouettes, availability=animals_availability,
        class_names=derived.CATDOG, native_size=28, split=catsdogs.SPLIT, stands_in_for="Cats vs Dogs"))
    for k in (derived.BASIC_SHAPES, derived.ANIMALS10):
        register(DatasetSpec(name=k.name, title=k.title, description=f"{k.title} as class folders: {k.layout}.",
                             load=k.load, availability=k.availability, class_names=k.classes))
