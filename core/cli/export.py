"""Sub-command `export`: one variant of a run as a ZIP that runs outside the lab."""
from __future__ import annotations

import argparse

from .main import command, emit


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id")
    p.add_argument("--variant", default="tflite_int8", help="the variant to export (default: tflite_int8)")
    p.add_argument("--out", required=True, help="the .zip file to write")
    p.add_argument("--format", default="native", choices=["native", "onnx"],
                   help="native: the variant's own .tflite/.keras (default); onnx: a Keras variant as ONNX, "
                        "preprocessing inside, checked against the lab's model")


@command("export a variant as a ZIP (model, labels.txt, metadata.json, README, predict.py) that runs elsewhere", _args)
def export(args) -> None:
    from core.export import export_bundle
    out = export_bundle(args.run_id, args.variant, args.out, args.format)
    emit(out, args.json, lambda o: f"{o['out']}: {', '.join(o['files'])}"
         + (f"; preprocessing inside, {100 * o['check']['top1_agreement']:.1f}% top-1 agreement with the lab's "
            f"model on {o['check']['test_images']} test images" if o["check"] else "; preprocessing in predict.py"))
