"""UFPR Vehicle-Rear, turned into a vehicle-colour class-folder dataset.

The authors distribute it (data.tgz) as
    dataset2/Camera{1,2}/SetNN/classes_carros/<plate>/*.png      car crops, one folder per vehicle
    dataset2/xmls/Camera{1,2}/SetNN/vehicles.xml                  <vehicle placa=... color=... discard=...>
The importer skips every vehicle marked discard="True" in any vehicles.xml, and keeps ONE image per plate
(the middle frame of the first camera/set that has an annotated crop of it), so no vehicle can sit in both the training and the test split,
files it under its colour (`gray` is spelled `grey`, as in the report), keeps the report's eight colours
(others are listed as skipped; `colours=None` keeps them all), drops colours with too few vehicles to be split, and writes `artifacts/datasets/vehicle_rear/<colour>/<plate>.png` with a
`.import.json` manifest saying what was taken and what was skipped and why.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from core.errors import LabError
from .base import MIN_IMAGES_PER_CLASS, Samples
from .folder import load_folder
from .sources import datasets_dir, display, env_path

ENV = "LAB_VEHICLE_REAR"
MANIFEST = ".import.json"
URL = "https://github.com/icarofua/vehicle-rear"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
REPORT_COLOURS = ("black", "blue", "green", "grey", "orange", "red", "silver", "white")
COLOUR_ALIASES = {"gray": "grey", "cinza": "grey", "preto": "black", "branco": "white", "prata": "silver",
                  "vermelho": "red", "azul": "blue", "verde": "green", "laranja": "orange", "amarelo": "yellow",
                  "marrom": "brown", "bege": "beige", "dourado": "gold", "golden": "gold"}


def output_dir() -> Path:
    return datasets_dir() / "vehicle_rear"


def source_candidates() -> list[Path | None]:
    d = datasets_dir()
    return [env_path(ENV), d / "vehicle-rear", d / "vehicle_rear_source", d / "data"]


def locate_dataset2(p: Path) -> Path | None:
    """The `dataset2` folder at or just below p (data.tgz unpacks to data/dataset2/)."""
    for c in (p, p / "dataset2", p / "data" / "dataset2"):
        if c.is_dir() and (c / "xmls").is_dir() and any(c.glob("Camera*")):
            return c
    return None


def find_source() -> Path | None:
    for c in source_candidates():
        if c is not None and (d := locate_dataset2(c)):
            return d
    return None


def normalise_colour(c: str | None) -> str:
    c = (c or "").strip().lower()
    return COLOUR_ALIASES.get(c, c)


def parse_vehicles_xml(path: Path) -> dict[str, dict]:
    """plate -> {"color", "discard"} for every <vehicle> with a plate in one vehicles.xml."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise LabError(f"{path}: not a readable vehicles.xml ({e})") from e
    out: dict[str, dict] = {}
    for v in root.iter("vehicle"):
        plate = (v.attrib.get("placa") or "").strip()
        if not plate:
            continue
        discard = (v.attrib.get("discard") or "").strip().lower() in ("true", "1", "yes")
        prev = out.get(plate)
        # A plate annotated twice in one set: a discarded annotation never replaces a usable one.
        if prev is None or (prev["discard"] and not discard):
            out[plate] = {"color": normalise_colour(v.attrib.get("color")), "discard": discard}
    return out


def _safe_name(plate: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", plate) or "plate"


def import_vehicle_rear(source: str | Path | None = None, dest: str | Path | None = None,
                        min_per_class: int = MIN_IMAGES_PER_CLASS,
                        colours: tuple[str, ...] | None = REPORT_COLOURS) -> dict:
    """Build the colour class folders from a Vehicle-Rear tree; return the manifest (also written as .import.json).

    `colours`: the classes to keep (default: the report's eight); None keeps every colour.
    """
    src = Path(source).expanduser() if source else None
    ds2 = locate_dataset2(src) if src else find_source()
    if ds2 is None:
        raise LabError(f"{display(src) if src else 'Vehicle-Rear'}: no dataset2/ folder with xmls/ and Camera*/ "
                       f"found; {how_to_get()}")
    dest = Path(dest).expanduser() if dest else output_dir()
    chosen: dict[str, dict] = {}        # plate -> {"colour", "file", "camera", "set"}
    skipped: list[tuple[str, str]] = []
    cameras = sorted(d for d in ds2.iterdir() if d.is_dir() and d.name.lower().startswith("camera"))
    metas = {xml: parse_vehicles_xml(xml) for xml in sorted((ds2 / "xmls").glob("*/*/vehicles.xml"))}
    discarded = {plate for m in metas.values() for plate, v in m.items() if v["discard"]}
    for cam in cameras:
        for set_dir in sorted(d for d in cam.iterdir() if d.is_dir()):
            crops = set_dir / "classes_carros"
            if not crops.is_dir():
                continue
            xml = ds2 / "xmls" / cam.name / set_dir.name / "vehicles.xml"
            if not xml.is_file():
                skipped.append((f"{cam.name}/{set_dir.name}", f"no {display(xml)}: its vehicles have no colour"))
                continue
            meta = metas.get(xml) or parse_vehicles_xml(xml)
            for plate_dir in sorted(d for d in crops.iterdir() if d.is_dir()):
                plate, where = plate_dir.name, f"{cam.name}/{set_dir.name}/classes_carros/{plate_dir.name}"
                if plate in chosen:
                    continue                      # one image per plate: the first usable appearance wins
                info = meta.get(plate)
                if info is None:
                    skipped.append((where, "plate not in vehicles.xml"))
                    continue
                if plate in discarded:
                    skipped.append((where, "discarded in vehicles.xml"))
                    continue
                if not info["color"]:
                    skipped.append((where, "no colour in vehicles.xml"))
                    continue
                if colours is not None and info["color"] not in colours:
                    skipped.append((where, f"colour '{info['color']}' is not one of the {len(colours)} kept "
                                           f"({', '.join(colours)})"))
                    continue
                images = sorted(f for f in plate_dir.iterdir()
                                if f.is_file() and not f.is_symlink() and f.suffix.lower() in IMAGE_SUFFIXES)
                if not images:
                    skipped.append((where, "no images"))
                    continue
                chosen[plate] = {"colour": info["color"], "file": images[len(images) // 2],
                                 "camera": cam.name, "set": set_dir.name, "frames": len(images)}
    # Plates skipped in one camera but taken from another are not "skipped".
    skipped = [(w, r) for w, r in skipped if w.rsplit("/", 1)[-1] not in chosen]
    counts = Counter(v["colour"] for v in chosen.values())
    rare = {c for c, n in counts.items() if n < min_per_class}
    for plate, v in list(chosen.items()):
        if v["colour"] in rare:
            skipped.append((plate, f"colour '{v['colour']}' has only {counts[v['colour']]} vehicles "
                                   f"(fewer than {min_per_class})"))
            del chosen[plate]
    if not chosen:
        raise LabError(f"{display(ds2)}: no usable vehicles found ({len(skipped)} skipped)")

    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        used: set[str] = set()
        for plate, v in sorted(chosen.items()):
            name = _safe_name(plate)
            while f"{v['colour']}/{name}" in used:
                name += "_"
            used.add(f"{v['colour']}/{name}")
            (tmp / v["colour"]).mkdir(exist_ok=True)
            shutil.copyfile(v["file"], tmp / v["colour"] / f"{name}{v['file'].suffix.lower()}")
        manifest = {
            "source": str(ds2.resolve()), "vehicles": len(chosen),
            "classes": dict(sorted(Counter(v["colour"] for v in chosen.values()).items())),
            "plates": {p: {"colour": v["colour"], "camera": v["camera"], "set": v["set"],
                           "file": str(v["file"].relative_to(ds2)), "frames": v["frames"]}
                       for p, v in sorted(chosen.items())},
            "skipped": skipped, "min_per_class": min_per_class, "colours": list(colours) if colours else None,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def read_manifest(dest: Path | None = None) -> dict | None:
    p = (dest or output_dir()) / MANIFEST
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def how_to_get() -> str:
    return (f"get the UFPR Vehicle-Rear dataset (data.tgz, from its authors: {URL}), extract it so that "
            f"{display(datasets_dir() / 'vehicle-rear' / 'dataset2')}/ exists (or set {ENV}=the folder holding "
            "dataset2/), then run `python -m core import-vehicle-rear` (it is imported on first use too)")


def availability() -> tuple[bool, str]:
    m = read_manifest()
    if m:
        return True, (f"imported: {m['vehicles']} vehicles in {len(m['classes'])} colours at "
                      f"{display(output_dir())}")
    src = find_source()
    if src is not None:
        return True, f"source at {display(src)}; imported into {display(output_dir())} on first use"
    return False, f"not on this machine (it is not in any package): {how_to_get()}"


def load() -> Samples:
    if read_manifest() is None:
        if find_source() is None:
            raise LabError(f"Vehicle-Rear is not available: {how_to_get()}")
        import_vehicle_rear()
    s = load_folder(output_dir())
    m = read_manifest() or {}
    s.source = f"UFPR Vehicle-Rear, one image per plate ({display(output_dir())}, from {m.get('source', '?')})"
    return s
