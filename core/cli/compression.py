"""`compress` and `predict` sub-commands (registered through core.cli.COMMAND_MODULES; no TensorFlow at import)."""
from __future__ import annotations

import argparse

from .main import _print_progress, command, emit
from core.compression.options import DEFAULTS, HELP
from core.compression.runner import SUMMARY_KEYS
from core.compression.techniques import DEFAULT_TECHNIQUES, TECHNIQUES


def _techniques_epilog() -> str:
    o = {g: dict(v) for g, v in DEFAULTS.items()}
    lines = ["techniques (name -> variant name with the default options: what it does):"]
    lines += [f"  {t.name:16s} -> {t.variant(o):18s} {t.description}" for t in TECHNIQUES.values()]
    lines += ["", f"default set: {','.join(DEFAULT_TECHNIQUES)}", "",
              "options (--set GROUP.KEY=VALUE, repeatable; chains use the options of the step they build on):"]
    lines += [f"  {g:10s} {', '.join(f'{k}={v}' for k, v in DEFAULTS[g].items())}\n  {'':10s} ({HELP[g]})"
              for g in DEFAULTS]
    lines += ["", "The original model is always measured too (variant 'original'). Variants are stored in",
              "runs/<id>/variants/<name>/ and listed by `python -m core show RUN_ID`."]
    return "\n".join(lines)


def _compress_args(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = _techniques_epilog()
    p.add_argument("run_id")
    p.add_argument("--techniques", metavar="LIST",
                   help=f"comma-separated technique names (default: {','.join(DEFAULT_TECHNIQUES)}); "
                        f"one of: {', '.join(TECHNIQUES)}")
    p.add_argument("--set", action="append", metavar="GROUP.KEY=VALUE", dest="options",
                   help="override an option, e.g. --set pruning.sparsity=0.8 --set clustering.clusters=8")
    p.add_argument("--threads", type=int, default=2, help="TFLite interpreter threads (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _compress_text(r: dict) -> str:
    head = f"{'variant':22s} {'acc':>7s} {'size MB':>8s} {'gzip MB':>8s} {'p50 ms':>7s} {'p95 ms':>7s} " \
           f"{'img/s':>7s} {'agree':>6s} {'sparsity':>8s} {'secs':>6s}"
    rows = [head] + [
        f"{v['name']:22s} {v['test_accuracy']:7.4f} {v['size_bytes'] / 1e6:8.2f} {v['gzip_bytes'] / 1e6:8.2f} "
        f"{v['latency_ms_p50']:7.2f} {v['latency_ms_p95']:7.2f} {v['throughput_ips']:7.0f} {v['agreement']:6.3f} "
        f"{_fmt(v['sparsity'], '8.3f')} {v.get('seconds', 0):6.1f}" for v in r["variants"]]
    rows += [f"FAILED {f['technique']}: {f['error']}" for f in r["failed"]]
    rows += [f"{'ok  ' if c['passed'] else 'FAIL'} {c['check']}: {c['value']}" for c in r["checks"]]
    rows.append(f"total {r['seconds']:.1f} s")
    return "\n".join(rows)


@command("build compressed variants of a run (pruning, clustering, QAT, TFLite) and measure them all",
         _compress_args)
def compress(args) -> None:
    from core.compression.options import parse_assignments
    from core.compression.runner import compress as run_compress
    techniques = [t.strip() for t in args.techniques.split(",") if t.strip()] if args.techniques is not None else None
    result = run_compress(args.run_id, techniques, parse_assignments(args.options),
                          progress=(lambda e: None) if args.quiet else _print_progress, threads=args.threads)
    from core.export.mlflow_log import after_run
    after_run(args.run_id)                          # MLflow (the new variants), when LAB_MLFLOW_URI is set
    if args.json:
        extra = ("macro_f1", "loss", "params", "sparsity_all", "throughput_ips", "eval_images_per_s", "max_prob_diff",
                 "temperature", "ece", "ece_calibrated", "build_seconds", "seconds", "notes", "files")
        out = {"run_id": result["run_id"],
               "variants": [{k: v.get(k) for k in SUMMARY_KEYS + extra} for v in result["variants"]],
               "failed": [{k: f[k] for k in ("technique", "error")} for f in result["failed"]],
               "checks": result["checks"], "seconds": result["seconds"]}
        emit(out, True, str)
    else:
        emit(result, False, _compress_text)


def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--variant", default="original",
                   help="'original' or a stored variant, e.g. tflite_int8, pruned_50 (see `show RUN_ID`)")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="TFLite interpreter threads (default 2)")


def _predict_text(r: dict) -> str:
    lines = []
    for p in r["predictions"]:
        top = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in p["top"])
        how = f"calibrated, T = {p['temperature']:g}" if p["calibrated"] else "not calibrated"
        lines.append(f"{p['image']}: {p['label']}  [{top}; {how}]  ({p['latency_ms']:.2f} ms)")
    return "\n".join(lines)


@command("classify images with a run's original model or one of its variants", _predict_args)
def predict(args) -> None:
    from core.evaluation.predict import predict as run_predict
    preds = run_predict(args.run_id, args.images, variant=args.variant, top_k=args.top_k, threads=args.threads)
    emit({"run_id": args.run_id, "variant": args.variant, "predictions": preds}, args.json, _predict_text)
